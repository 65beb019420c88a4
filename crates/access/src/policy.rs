//! The regional policy: what each sector sees by default, what each role may write, the
//! hand-over age and break-glass terms. The family's Consent choices are applied on top
//! of the sector defaults (see [`crate::consent`]).
//!
//! Built-in default ([`RegionalPolicy::default`]), for a care-team member:
//!
//! | sector | sees by default |
//! |---|---|
//! | hospital trust, GP practice, community health | about me, communication, what matters, conditions, allergies, medicines, equipment, contacts, emergency, education |
//! | social care | all eleven sections |
//! | education | about me, communication, allergies, medicines, emergency, education |
//! | leisure / voluntary | about me, communication, emergency |
//! | emergency services | about me, communication, conditions, allergies, medicines, equipment, contacts, emergency |
//!
//! | role | may write (within what they can see) |
//! |---|---|
//! | clinician, nurse, allied health professional | about me, communication, what matters, conditions, allergies, medicines, equipment, contacts, emergency |
//! | clinical admin | contacts |
//! | social worker | about me, what matters, contacts, social care |
//! | school staff | education |
//! | leisure staff, organisation admin, privacy officer, regional admin, commissioner | nothing |
//!
//! Family (parents with parental responsibility, granted foster carers, the young person)
//! may write every section except education and social care. Hand-over age 16;
//! break-glass lasts 4 hours and shows emergency, allergies, communication, contacts and
//! active MedicationStatements in medicines.

use crate::section::{Section, SectionSet};
use crate::subject::{Role, Sector};

const HEALTH: SectionSet = SectionSet::of(&[
    Section::AboutMe,
    Section::Communication,
    Section::WhatMatters,
    Section::Conditions,
    Section::Allergies,
    Section::Medicines,
    Section::Equipment,
    Section::Contacts,
    Section::Emergency,
]);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionalPolicy {
    /// Sections each sector sees by default, indexed like [`Sector::ALL`].
    pub sector_defaults: [SectionSet; 7],
    /// Sections each role may write, indexed like [`Role::ALL`].
    pub role_writes: [SectionSet; 11],
    /// Sections a family member (or the young person) may write.
    pub family_writes: SectionSet,
    /// Age at which the young person becomes the passport's controller.
    pub handover_age: u8,
    /// How long a break-glass grant lasts.
    pub break_glass_seconds: i64,
    /// What parents with parental responsibility keep seeing once the young person is
    /// the controller, before the young person makes any choice about them.
    pub parents_after_handover: SectionSet,
}

impl Default for RegionalPolicy {
    fn default() -> Self {
        use Section::*;
        let emergency_services = SectionSet::of(&[
            AboutMe,
            Communication,
            Conditions,
            Allergies,
            Medicines,
            Equipment,
            Contacts,
            Emergency,
        ]);
        let clinical = HEALTH;
        // Health services see the child's education too (how a condition affects school,
        // support plans); a product decision (issue 9), reading only: clinical roles
        // still write only `clinical`.
        let health = HEALTH.union(SectionSet::of(&[Education]));
        // Schools see allergies and medicines: staff give medicines and manage allergies
        // at school (issue 9); school staff still write only education.
        let education = SectionSet::of(&[
            AboutMe,
            Communication,
            Allergies,
            Medicines,
            Emergency,
            Education,
        ]);
        RegionalPolicy {
            sector_defaults: [
                health,                                               // hospital trust
                health,                                               // GP practice
                health,                                               // community health
                SectionSet::ALL,                                      // social care
                education,                                            // education
                SectionSet::of(&[AboutMe, Communication, Emergency]), // leisure
                emergency_services,                                   // emergency services
            ],
            role_writes: [
                clinical,                                                      // clinician
                clinical,                                                      // nurse
                clinical,                    // allied health professional
                SectionSet::of(&[Contacts]), // clinical admin
                SectionSet::of(&[AboutMe, WhatMatters, Contacts, SocialCare]), // social worker
                SectionSet::of(&[Education]), // school staff
                SectionSet::EMPTY,           // leisure staff
                SectionSet::EMPTY,           // organisation admin
                SectionSet::EMPTY,           // privacy officer
                SectionSet::EMPTY,           // regional admin
                SectionSet::EMPTY,           // commissioner
            ],
            family_writes: SectionSet::ALL.minus(SectionSet::of(&[Education, SocialCare])),
            handover_age: 16,
            break_glass_seconds: 4 * 3600,
            parents_after_handover: SectionSet::ALL,
        }
    }
}

impl RegionalPolicy {
    pub fn sector_default(&self, sector: Sector) -> SectionSet {
        self.sector_defaults[sector as usize]
    }
    pub fn set_sector_default(&mut self, sector: Sector, sections: SectionSet) {
        self.sector_defaults[sector as usize] = sections;
    }
    pub fn role_writes(&self, role: Role) -> SectionSet {
        self.role_writes[role as usize]
    }

    /// What a backend client of a sector may write (as the matching staff role would).
    pub fn system_writes(&self, sector: Sector) -> SectionSet {
        match sector {
            s if s.is_health() => self.role_writes(Role::Clinician),
            Sector::SocialCare => self.role_writes(Role::SocialWorker),
            Sector::Education => self.role_writes(Role::SchoolStaff),
            _ => SectionSet::EMPTY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_line_up_with_the_enums() {
        let p = RegionalPolicy::default();
        assert!(
            p.sector_default(Sector::Education)
                .contains(Section::Education)
        );
        assert!(
            !p.sector_default(Sector::Leisure)
                .contains(Section::Education)
        );
        assert!(
            p.sector_default(Sector::SocialCare)
                .contains(Section::SocialCare)
        );
        assert!(
            !p.sector_default(Sector::GpPractice)
                .contains(Section::SocialCare)
        );
        assert_eq!(
            p.role_writes(Role::SchoolStaff),
            SectionSet::of(&[Section::Education])
        );
        assert!(p.role_writes(Role::Commissioner).is_empty());
        assert!(
            p.role_writes(Role::SocialWorker)
                .contains(Section::SocialCare)
        );
    }
}
