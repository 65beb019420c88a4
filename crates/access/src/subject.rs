//! Who is asking: organisations' sectors, staff roles, and the [`Subject`] of a request
//! (built by the caller from the session or the access token).

use crate::label::LabelSet;
use crate::scopes::Scopes;

/// The code system of organisation sectors (also used in Consent actors, see
/// [`crate::consent`]).
pub const SECTOR_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/passport-sector";

/// The sector an organisation works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sector {
    HospitalTrust,
    GpPractice,
    CommunityHealth,
    /// Local-authority children's social care.
    SocialCare,
    /// Schools, nurseries, colleges.
    Education,
    /// Leisure and voluntary organisations.
    Leisure,
    /// Ambulance, fire, police.
    EmergencyServices,
}

impl Sector {
    pub const ALL: [Sector; 7] = [
        Sector::HospitalTrust,
        Sector::GpPractice,
        Sector::CommunityHealth,
        Sector::SocialCare,
        Sector::Education,
        Sector::Leisure,
        Sector::EmergencyServices,
    ];

    /// The code in [`SECTOR_SYSTEM`].
    pub const fn code(self) -> &'static str {
        match self {
            Sector::HospitalTrust => "hospital-trust",
            Sector::GpPractice => "gp-practice",
            Sector::CommunityHealth => "community-health",
            Sector::SocialCare => "social-care",
            Sector::Education => "education",
            Sector::Leisure => "leisure",
            Sector::EmergencyServices => "emergency-services",
        }
    }

    pub fn from_code(code: &str) -> Option<Sector> {
        Sector::ALL.into_iter().find(|s| s.code() == code)
    }

    /// NHS-funded health care (hospital, GP, community).
    pub const fn is_health(self) -> bool {
        matches!(
            self,
            Sector::HospitalTrust | Sector::GpPractice | Sector::CommunityHealth
        )
    }
}

/// A member of staff's role. The role decides what they may *write* and whether they may
/// see children's records at all; their organisation's sector decides what they may *read*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Clinician,
    Nurse,
    AlliedHealthProfessional,
    ClinicalAdmin,
    SocialWorker,
    SchoolStaff,
    LeisureStaff,
    /// Manages their organisation's staff accounts and directory entries; no child records.
    OrganisationAdmin,
    /// Reviews the access log; no child records.
    PrivacyOfficer,
    /// Configures the regional policy and reference data; no child records.
    RegionalAdmin,
    /// Aggregate figures only; never a child's record.
    Commissioner,
}

impl Role {
    pub const ALL: [Role; 11] = [
        Role::Clinician,
        Role::Nurse,
        Role::AlliedHealthProfessional,
        Role::ClinicalAdmin,
        Role::SocialWorker,
        Role::SchoolStaff,
        Role::LeisureStaff,
        Role::OrganisationAdmin,
        Role::PrivacyOfficer,
        Role::RegionalAdmin,
        Role::Commissioner,
    ];

    pub const fn code(self) -> &'static str {
        match self {
            Role::Clinician => "clinician",
            Role::Nurse => "nurse",
            Role::AlliedHealthProfessional => "allied-health-professional",
            Role::ClinicalAdmin => "clinical-admin",
            Role::SocialWorker => "social-worker",
            Role::SchoolStaff => "school-staff",
            Role::LeisureStaff => "leisure-staff",
            Role::OrganisationAdmin => "organisation-admin",
            Role::PrivacyOfficer => "privacy-officer",
            Role::RegionalAdmin => "regional-admin",
            Role::Commissioner => "commissioner",
        }
    }

    pub fn from_code(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The role in words, for pages ("Allied health professional").
    pub const fn words(self) -> &'static str {
        match self {
            Role::Clinician => "Clinician",
            Role::Nurse => "Nurse",
            Role::AlliedHealthProfessional => "Allied health professional",
            Role::ClinicalAdmin => "Clinical administrator",
            Role::SocialWorker => "Social worker",
            Role::SchoolStaff => "School staff",
            Role::LeisureStaff => "Leisure staff",
            Role::OrganisationAdmin => "Organisation administrator",
            Role::PrivacyOfficer => "Privacy officer",
            Role::RegionalAdmin => "Regional administrator",
            Role::Commissioner => "Commissioner",
        }
    }

    /// Whether this role may be given to staff of an organisation in `sector`
    /// (docs/SECURITY.md §3). `regional_organisation`: the organisation is the region's
    /// own (flagged as such in the directory), the only place for the regional admin and
    /// the commissioner. Checked wherever accounts are made or reactivated (the command
    /// line, the admin pages), and at start-up against every existing account, so that a
    /// school cannot mint a clinician (who could then use break-glass).
    pub const fn allowed_in(self, sector: Sector, regional_organisation: bool) -> bool {
        use Sector::*;
        match self {
            Role::Clinician
            | Role::Nurse
            | Role::AlliedHealthProfessional
            | Role::ClinicalAdmin => {
                matches!(
                    sector,
                    HospitalTrust | GpPractice | CommunityHealth | EmergencyServices
                )
            }
            Role::SocialWorker => matches!(sector, SocialCare),
            Role::SchoolStaff => matches!(sector, Education),
            Role::LeisureStaff => matches!(sector, Leisure),
            Role::OrganisationAdmin | Role::PrivacyOfficer => true,
            Role::RegionalAdmin | Role::Commissioner => regional_organisation,
        }
    }

    /// Roles that work with individual children's records (given a relationship).
    pub const fn sees_child_records(self) -> bool {
        !matches!(
            self,
            Role::OrganisationAdmin
                | Role::PrivacyOfficer
                | Role::RegionalAdmin
                | Role::Commissioner
        )
    }
}

/// A member of staff, as their session or token describes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Staff {
    /// Logical id of their Practitioner resource.
    pub practitioner: String,
    pub role: Role,
    /// Logical id of their Organization resource.
    pub organisation: String,
    pub sector: Sector,
    pub region: String,
    /// Labels this person is cleared to see (e.g. a designated safeguarding lead:
    /// `Safeguarding`; a sexual-health clinician: `SexualHealth`). Set by their
    /// organisation's admin; empty for most people.
    pub cleared: LabelSet,
}

/// A backend (system-to-system) client, acting for one organisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SystemClient {
    pub client_id: String,
    /// The organisation the client acts for; without one it reaches no child's record.
    pub organisation: Option<String>,
    pub sector: Sector,
    pub region: String,
    pub cleared: LabelSet,
    /// A trusted regional integration (bulk load, EPR sync for the whole region): reaches
    /// every child's record in the region, not only its organisation's care teams. Granted
    /// only by an operator (`passport admin create-client --regional`), and every access is
    /// audited like any other. See docs/SECURITY.md ("Trusted regional systems").
    pub regional: bool,
}

/// Who is asking, without their token's limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Staff(Staff),
    /// An adult family member's sign-in: the logical id of their Person resource. Their
    /// relationship to each child is a [`crate::FamilyLink`] in that child's facts.
    Family {
        person: String,
    },
    /// A young person signed in to their own passport: their Patient's logical id.
    YoungPerson {
        patient: String,
    },
    System(SystemClient),
    /// Whoever holds a child's card link (the QR on the wallet card): nobody signed in,
    /// reading the child's emergency content only ([`crate::emergency`]). The link's
    /// expiry, revocation and passcode are checked before this identity is given.
    CardLink {
        patient: String,
    },
    Anonymous,
}

/// The subject of a request: who, plus what their token allows. A first-party session
/// (the passport's own pages) carries [`Scopes::unrestricted`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub identity: Identity,
    pub scopes: Scopes,
}

impl Subject {
    pub fn new(identity: Identity, scopes: Scopes) -> Subject {
        Subject { identity, scopes }
    }
    /// A first-party session: no scope narrowing.
    pub fn session(identity: Identity) -> Subject {
        Subject {
            identity,
            scopes: Scopes::unrestricted(),
        }
    }
    pub fn anonymous() -> Subject {
        Subject::session(Identity::Anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_assignable_only_in_their_sectors() {
        use Sector::*;
        let clinical = [
            Role::Clinician,
            Role::Nurse,
            Role::AlliedHealthProfessional,
            Role::ClinicalAdmin,
        ];
        for r in clinical {
            for s in [
                HospitalTrust,
                GpPractice,
                CommunityHealth,
                EmergencyServices,
            ] {
                assert!(r.allowed_in(s, false), "{r:?} in {s:?}");
            }
            for s in [SocialCare, Education, Leisure] {
                assert!(!r.allowed_in(s, false), "{r:?} in {s:?}");
                assert!(!r.allowed_in(s, true), "{r:?} in {s:?}");
            }
        }
        for s in Sector::ALL {
            assert_eq!(Role::SocialWorker.allowed_in(s, false), s == SocialCare);
            assert_eq!(Role::SchoolStaff.allowed_in(s, false), s == Education);
            assert_eq!(Role::LeisureStaff.allowed_in(s, false), s == Leisure);
            assert!(Role::OrganisationAdmin.allowed_in(s, false));
            assert!(Role::PrivacyOfficer.allowed_in(s, false));
            for r in [Role::RegionalAdmin, Role::Commissioner] {
                assert!(!r.allowed_in(s, false));
                assert!(r.allowed_in(s, true));
            }
        }
    }
}
