//! The authorisation matrix: a hand-written table of situations and the answer each must
//! get. It is written from the rules in `docs/SECURITY.md`, **not** derived from the policy
//! code, so that a change in the code that changes an answer shows up as a failing row.
//! The same table drives the HTTP-level matrix test (through the feature `testing`).
//!
//! # Columns
//!
//! | column | meaning |
//! |---|---|
//! | `who` | the signed-in subject: [`Who::Staff`]`(role, sector)`; [`Who::Cleared`]`(role, sector, label)` — staff cleared for one security label; [`Who::Family`] (an adult's sign-in); [`Who::YoungPerson`]; [`Who::System`]`(sector)` (backend client of an organisation); [`Who::Regional`] (a trusted regional integration client); [`Who::Anonymous`] |
//! | `rel` | the subject's relationship to the child, see [`Rel`] ([`Rel::NoChild`]: the resource belongs to no child) |
//! | `child` | the child's situation: age band, Gillick competence, lack of capacity, looked after ([`Child`]) |
//! | `resource` | FHIR resource type, optionally `Type:status` (e.g. `MedicationStatement:stopped`) |
//! | `section` | the passport section code in `meta.tag` (`""` = untagged) |
//! | `label` | a security-label code ([`crate::LABEL_SYSTEM`]) in `meta.security` (`""` = none) |
//! | `action` | the interaction |
//! | `sharing` | the family's Consent choices in force ([`Sharing`]); `D` = none (regional default) |
//! | `token` | [`Token::Session`] (`S`, first-party pages: no scope limits), [`Token::Scopes`] (a SMART token launched for this child), [`Token::OtherPatient`] (the same scopes launched for another child) |
//! | `expect` | `allow(reason)` or `deny(reason)` |
//!
//! Fixed facts behind the fixtures: now is 2026-05-01T12:00:00Z; the child is
//! `Patient/child-1`; staff are `Practitioner/staff-1` of `Organization/org-1`; the family
//! adult is `Person/person-1` with `RelatedPerson/rp-1`; granted sections (foster carer)
//! are about me, communication, emergency, medicines; a granted parent of a looked-after
//! child has about me and emergency; break-glass was granted an hour ago for four hours
//! (expired: granted five hours ago).

use serde_json::{Value, json};

use crate::Reason::{self, *};
use crate::Role::*;
use crate::Sector::*;
use crate::{
    Action, Actor, BreakGlassGrant, CareTeamMember, ChildFacts, Date, FamilyLink, FamilyRole,
    Identity, LABEL_SYSTEM, LabelSet, RegionalPolicy, ResourceFacts, Role, SECTION_SYSTEM, Scopes,
    Section, SectionSet, Sector, SecurityLabel, SharingChoices, Staff, Subject, SystemClient,
    Timestamp,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Staff(Role, Sector),
    Cleared(Role, Sector, SecurityLabel),
    Family,
    YoungPerson,
    System(Sector),
    /// A trusted regional integration client (no organisation, no care team needed).
    Regional,
    /// Whoever holds the child's card link (for [`Rel::OtherChild`]: another child's).
    CardLink,
    Anonymous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    /// No relationship to the child.
    None,
    /// The practitioner (or backend client's organisation) is in an active CareTeam.
    CareTeam,
    /// Their organisation is in an active CareTeam.
    CareTeamOrg,
    ParentWithPr,
    ParentWithoutPr,
    /// Parent with PR, under a court order withholding the whole passport.
    ParentCourtOrder,
    /// Parent with PR, under a court order withholding the education section.
    ParentCourtOrderEducation,
    /// Parent with PR of a looked-after child, granted about me + emergency.
    ParentGranted,
    FosterCarerGranted,
    FosterCarerNotGranted,
    /// The young person's own account.
    OwnAccount,
    /// A family adult or young person linked to a different child.
    OtherChild,
    /// Active break-glass grant, no care-team link.
    BreakGlass,
    BreakGlassExpired,
    /// The resource belongs to no child (reference data, aggregates, a new Patient).
    NoChild,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child {
    /// Aged 12.
    Under16,
    /// Aged 17.
    Over16,
    Under16Gillick,
    Over16LacksCapacity,
    /// Aged 12, looked after by the local authority.
    LookedAfter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Default,
    /// The family permits this section to the subject's sector.
    SectorPermits(&'static str),
    SectorDenies(&'static str),
    /// Permits it to the subject's own organisation.
    OrgPermits(&'static str),
    /// Denies it to the sector but permits it to the subject's organisation.
    OrgPermitsOverSectorDeny(&'static str),
    /// Permits it to another organisation of the same sector.
    OtherOrgPermits(&'static str),
    /// The young person denies this section to the family adult (RelatedPerson rp-1).
    YoungPersonDeniesParent(&'static str),
    /// The controller permits this section to the family adult (RelatedPerson rp-1).
    PermitsFamilyMember(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Session,
    Scopes(&'static str),
    OtherPatient(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    pub allow: bool,
    pub reason: Reason,
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub who: Who,
    pub rel: Rel,
    pub child: Child,
    pub resource: &'static str,
    pub section: &'static str,
    pub label: &'static str,
    pub action: Action,
    pub sharing: Sharing,
    pub token: Token,
    pub expect: Expect,
}

#[allow(clippy::too_many_arguments)]
const fn c(
    who: Who,
    rel: Rel,
    child: Child,
    resource: &'static str,
    section: &'static str,
    label: &'static str,
    action: Action,
    sharing: Sharing,
    token: Token,
    expect: Expect,
) -> Case {
    Case {
        who,
        rel,
        child,
        resource,
        section,
        label,
        action,
        sharing,
        token,
        expect,
    }
}
const fn allow(reason: Reason) -> Expect {
    Expect {
        allow: true,
        reason,
    }
}
const fn deny(reason: Reason) -> Expect {
    Expect {
        allow: false,
        reason,
    }
}
const fn st(role: Role, sector: Sector) -> Who {
    Who::Staff(role, sector)
}

use Action::{Aggregate, Create, Export, History, Read, Search, Update};
use Child::*;
use Rel::{
    BreakGlass, BreakGlassExpired, CareTeam, CareTeamOrg, FosterCarerGranted,
    FosterCarerNotGranted, NoChild, OtherChild, OwnAccount, ParentCourtOrder,
    ParentCourtOrderEducation, ParentGranted, ParentWithPr, ParentWithoutPr,
};
use Sharing::{
    OrgPermits, OrgPermitsOverSectorDeny, OtherOrgPermits, PermitsFamilyMember, SectorDenies,
    SectorPermits, YoungPersonDeniesParent,
};
use Token::{OtherPatient, Scopes as Tok};
const D: Sharing = Sharing::Default;
const S: Token = Token::Session;
const NOREL: Rel = Rel::None;
const FAM: Who = Who::Family;
const YP: Who = Who::YoungPerson;
const ANON: Who = Who::Anonymous;
const CARD: Who = Who::CardLink;
const QR: &str = "QuestionnaireResponse";
const MS: &str = "MedicationStatement:active";
const TAG_CONDITIONS: &str =
    "user/Condition.rs?_tag=https://passport.nhs.uk/fhir/CodeSystem/passport-section|conditions";
const TAG_MEDICINES: &str =
    "user/Condition.rs?_tag=https://passport.nhs.uk/fhir/CodeSystem/passport-section|medicines";

/// The matrix. Grouped by theme; every row written by hand.
#[rustfmt::skip]
pub const MATRIX: &[Case] = &[
    // ---- health staff in the care team (child aged 12, no sharing choices, pages) ----
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Update, D, S, allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, QR, "education", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "CarePlan", "social-care", "", Read, D, S, deny(DeniedSectionNotShared)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "CarePlan", "emergency", "", Update, D, S, allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Over16, "Condition", "conditions", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(Clinician, GpPractice), CareTeam, Under16, MS, "medicines", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(Clinician, GpPractice), CareTeamOrg, Under16, "AllergyIntolerance", "allergies", "", Update, D, S, allow(AllowedCareTeam)),
    c(st(Clinician, GpPractice), NOREL, Under16, "Condition", "conditions", "", Read, D, S, deny(DeniedNoRelationship)),
    c(st(Nurse, CommunityHealth), CareTeam, Under16, MS, "medicines", "", Update, D, S, allow(AllowedCareTeam)),
    c(st(Nurse, CommunityHealth), CareTeam, Under16, QR, "about-me", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(Nurse, HospitalTrust), CareTeam, Under16, QR, "education", "", Update, D, S, deny(DeniedReadOnly)),
    c(st(Nurse, HospitalTrust), NOREL, Under16, "Condition", "conditions", "", Read, D, S, deny(DeniedNoRelationship)),
    c(st(AlliedHealthProfessional, CommunityHealth), CareTeam, Under16, "DeviceUseStatement", "equipment", "", Update, D, S, allow(AllowedCareTeam)),
    c(st(AlliedHealthProfessional, CommunityHealth), CareTeam, Under16, "Observation", "communication", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(AlliedHealthProfessional, CommunityHealth), NOREL, Under16, "DeviceUseStatement", "equipment", "", Read, D, S, deny(DeniedNoRelationship)),
    c(st(ClinicalAdmin, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(ClinicalAdmin, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Update, D, S, deny(DeniedReadOnly)),
    c(st(ClinicalAdmin, HospitalTrust), CareTeam, Under16, "RelatedPerson", "contacts", "", Update, D, S, allow(AllowedCareTeam)),
    c(st(ClinicalAdmin, GpPractice), NOREL, Under16, "RelatedPerson", "contacts", "", Read, D, S, deny(DeniedNoRelationship)),

    // ---- social care ----
    c(st(SocialWorker, SocialCare), CareTeam, Under16, "CarePlan", "social-care", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(SocialWorker, SocialCare), CareTeam, Under16, "CarePlan", "social-care", "", Update, D, S, allow(AllowedCareTeam)),
    c(st(SocialWorker, SocialCare), CareTeam, Under16, "Condition", "conditions", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(SocialWorker, SocialCare), CareTeam, Under16, "Condition", "conditions", "", Update, D, S, deny(DeniedReadOnly)),
    c(st(SocialWorker, SocialCare), CareTeam, Under16, QR, "education", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(SocialWorker, SocialCare), CareTeamOrg, Under16, QR, "what-matters", "", Update, D, S, allow(AllowedCareTeam)),
    c(st(SocialWorker, SocialCare), CareTeam, LookedAfter, "CarePlan", "social-care", "", Update, D, S, allow(AllowedCareTeam)),
    c(st(SocialWorker, SocialCare), NOREL, Under16, "CarePlan", "social-care", "", Read, D, S, deny(DeniedNoRelationship)),

    // ---- education ----
    c(st(SchoolStaff, Education), CareTeam, Under16, QR, "about-me", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "Observation", "communication", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "CarePlan", "emergency", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(SchoolStaff, Education), CareTeam, Under16, QR, "education", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(SchoolStaff, Education), CareTeam, Under16, QR, "education", "", Update, D, S, allow(AllowedCareTeam)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "Condition", "conditions", "", Read, D, S, deny(DeniedSectionNotShared)),
    c(st(SchoolStaff, Education), CareTeam, Under16, MS, "medicines", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "AllergyIntolerance", "allergies", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "CarePlan", "social-care", "", Read, D, S, deny(DeniedSectionNotShared)),
    c(st(SchoolStaff, Education), CareTeam, Under16, QR, "about-me", "", Update, D, S, deny(DeniedReadOnly)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "CarePlan", "emergency", "", Update, D, S, deny(DeniedReadOnly)),
    c(st(SchoolStaff, Education), CareTeamOrg, Under16, QR, "education", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(SchoolStaff, Education), CareTeamOrg, Over16, "CarePlan", "emergency", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(SchoolStaff, Education), NOREL, Under16, QR, "about-me", "", Read, D, S, deny(DeniedNoRelationship)),

    // ---- leisure / voluntary ----
    c(st(LeisureStaff, Leisure), CareTeam, Under16, QR, "about-me", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(LeisureStaff, Leisure), CareTeam, Under16, "Observation", "communication", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(LeisureStaff, Leisure), CareTeam, Under16, "CarePlan", "emergency", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(LeisureStaff, Leisure), CareTeam, Under16, QR, "education", "", Read, D, S, deny(DeniedSectionNotShared)),
    c(st(LeisureStaff, Leisure), CareTeam, Under16, "Condition", "conditions", "", Read, D, S, deny(DeniedSectionNotShared)),
    c(st(LeisureStaff, Leisure), CareTeam, Under16, QR, "about-me", "", Update, D, S, deny(DeniedReadOnly)),
    c(st(LeisureStaff, Leisure), CareTeamOrg, Under16, QR, "what-matters", "", Read, D, S, deny(DeniedSectionNotShared)),
    c(st(LeisureStaff, Leisure), NOREL, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedNoRelationship)),

    // ---- emergency services in the care team ----
    c(st(Clinician, EmergencyServices), CareTeam, Under16, "AllergyIntolerance", "allergies", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(AlliedHealthProfessional, EmergencyServices), CareTeam, Under16, "Condition", "conditions", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(AlliedHealthProfessional, EmergencyServices), CareTeam, Under16, QR, "education", "", Read, D, S, deny(DeniedSectionNotShared)),
    c(st(Nurse, EmergencyServices), CareTeam, Under16, "CarePlan", "emergency", "", Update, D, S, allow(AllowedCareTeam)),

    // ---- administrative roles never open a child's record ----
    c(st(OrganisationAdmin, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, S, deny(DeniedRole)),
    c(st(OrganisationAdmin, Education), CareTeamOrg, Under16, QR, "about-me", "", Read, D, S, deny(DeniedRole)),
    c(st(OrganisationAdmin, HospitalTrust), NOREL, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedRole)),
    c(st(PrivacyOfficer, HospitalTrust), CareTeamOrg, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedRole)),
    c(st(PrivacyOfficer, HospitalTrust), CareTeamOrg, Under16, "AuditEvent", "", "", Read, D, S, allow(AllowedAuditReview)),
    c(st(PrivacyOfficer, HospitalTrust), NOREL, Under16, "AuditEvent", "", "", Update, D, S, deny(DeniedRole)),
    c(st(RegionalAdmin, CommunityHealth), NOREL, Under16, QR, "about-me", "", Read, D, S, deny(DeniedRole)),
    c(st(RegionalAdmin, CommunityHealth), NOREL, Under16, "AuditEvent", "", "", Search, D, S, allow(AllowedAuditReview)),
    c(st(RegionalAdmin, CommunityHealth), NoChild, Under16, "MeasureReport", "", "", Aggregate, D, S, allow(AllowedAggregate)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "AuditEvent", "", "", Read, D, S, deny(DeniedRole)),
    c(st(Clinician, HospitalTrust), NoChild, Under16, "MeasureReport", "", "", Aggregate, D, S, deny(DeniedRole)),

    // ---- commissioners: aggregates only, never a child's record ----
    c(st(Commissioner, CommunityHealth), NOREL, Under16, QR, "about-me", "", Read, D, S, deny(DeniedCommissioner)),
    c(st(Commissioner, CommunityHealth), CareTeam, Under16, "Condition", "conditions", "", Read, D, S, deny(DeniedCommissioner)),
    c(st(Commissioner, CommunityHealth), CareTeamOrg, Under16, "CarePlan", "emergency", "", Update, D, S, deny(DeniedCommissioner)),
    c(st(Commissioner, CommunityHealth), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedCommissioner)),
    c(st(Commissioner, CommunityHealth), NOREL, Under16, "Patient", "about-me", "", Export, D, S, deny(DeniedCommissioner)),
    c(st(Commissioner, CommunityHealth), NOREL, Under16, "AuditEvent", "", "", Read, D, S, deny(DeniedCommissioner)),
    c(st(Commissioner, CommunityHealth), CareTeam, Under16, "MeasureReport", "", "", Aggregate, D, S, deny(DeniedCommissioner)),
    c(st(Commissioner, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok("system/*.* user/*.*"), deny(DeniedCommissioner)),
    c(st(Commissioner, CommunityHealth), NoChild, Under16, "MeasureReport", "", "", Aggregate, D, S, allow(AllowedAggregate)),
    c(st(Commissioner, CommunityHealth), NoChild, Under16, "Patient", "", "", Read, D, S, deny(DeniedMissingChildFacts)),

    // ---- security labels ----
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "sexual-health", Read, D, S, deny(DeniedLabel)),
    c(Who::Cleared(Clinician, HospitalTrust, SecurityLabel::SexualHealth), CareTeam, Under16, "Condition", "conditions", "sexual-health", Read, D, S, allow(AllowedCareTeam)),
    c(Who::Cleared(Clinician, HospitalTrust, SecurityLabel::SexualHealth), CareTeam, Under16, "Condition", "conditions", "safeguarding", Read, D, S, deny(DeniedLabel)),
    c(st(SocialWorker, SocialCare), CareTeam, Under16, "CarePlan", "social-care", "social-care", Read, D, S, deny(DeniedLabel)),
    c(Who::Cleared(SocialWorker, SocialCare, SecurityLabel::SocialCare), CareTeam, Under16, "CarePlan", "social-care", "social-care", Read, D, S, allow(AllowedCareTeam)),
    c(Who::Cleared(SocialWorker, SocialCare, SecurityLabel::SocialCare), CareTeam, Under16, "CarePlan", "social-care", "social-care", Update, D, S, allow(AllowedCareTeam)),
    c(Who::Cleared(SocialWorker, SocialCare, SecurityLabel::Safeguarding), CareTeam, Under16, "CarePlan", "social-care", "safeguarding", Read, D, S, allow(AllowedCareTeam)),
    c(st(SchoolStaff, Education), CareTeam, Under16, QR, "education", "safeguarding", Read, D, S, deny(DeniedLabel)),
    c(Who::Cleared(SchoolStaff, Education, SecurityLabel::Safeguarding), CareTeam, Under16, QR, "education", "safeguarding", Read, D, S, allow(AllowedCareTeam)),
    c(Who::Cleared(SchoolStaff, Education, SecurityLabel::Safeguarding), CareTeam, Under16, "Condition", "conditions", "safeguarding", Read, D, S, deny(DeniedSectionNotShared)),
    c(st(Nurse, CommunityHealth), CareTeam, Under16, "Condition", "conditions", "mental-health", Read, D, S, deny(DeniedLabel)),
    c(Who::Cleared(Nurse, CommunityHealth, SecurityLabel::MentalHealth), CareTeam, Under16, "Condition", "conditions", "mental-health", Read, D, S, allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "restricted", Read, D, S, deny(DeniedLabel)),

    // ---- family: parent with parental responsibility, child aged 12 ----
    c(FAM, ParentWithPr, Under16, QR, "about-me", "", Read, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16, "Condition", "conditions", "", Read, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16, QR, "education", "", Read, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16, "CarePlan", "social-care", "", Read, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16, QR, "about-me", "", Update, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16, MS, "medicines", "", Update, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16, QR, "education", "", Update, D, S, deny(DeniedReadOnly)),
    c(FAM, ParentWithPr, Under16, "CarePlan", "social-care", "", Update, D, S, deny(DeniedReadOnly)),
    c(FAM, ParentWithPr, Under16, "Condition", "conditions", "safeguarding", Read, D, S, deny(DeniedLabel)),
    c(FAM, ParentWithPr, Under16, "Condition", "conditions", "sexual-health", Read, D, S, deny(DeniedLabel)),
    c(FAM, ParentWithPr, Under16, "CarePlan", "social-care", "social-care", Read, D, S, deny(DeniedLabel)),
    c(FAM, ParentWithPr, Under16, "RelatedPerson", "contacts", "", Read, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16, "RelatedPerson", "contacts", "", Update, D, S, deny(DeniedReadOnly)),
    c(FAM, ParentWithPr, Under16, "Patient", "about-me", "", Update, D, S, deny(DeniedReadOnly)),
    c(FAM, ParentWithPr, Under16, "Observation", "", "", Read, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16, "Observation", "", "", Update, D, S, deny(DeniedUntagged)),
    c(FAM, ParentWithPr, Under16, "CarePlan", "emergency", "", Export, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16, MS, "medicines", "", Read, SectorDenies("medicines"), S, allow(AllowedAsParent)),
    c(FAM, OtherChild, Under16, QR, "about-me", "", Read, D, S, deny(DeniedNoRelationship)),

    // ---- family: parent without parental responsibility ----
    c(FAM, ParentWithoutPr, Under16, QR, "about-me", "", Read, D, S, deny(DeniedNoParentalResponsibility)),
    c(FAM, ParentWithoutPr, Under16, "CarePlan", "emergency", "", Read, PermitsFamilyMember("emergency"), S, allow(AllowedBySharingChoice)),
    c(FAM, ParentWithoutPr, Under16, "CarePlan", "emergency", "", Update, PermitsFamilyMember("emergency"), S, deny(DeniedReadOnly)),
    c(FAM, ParentWithoutPr, Under16, "Condition", "conditions", "", Read, PermitsFamilyMember("emergency"), S, deny(DeniedNoParentalResponsibility)),
    c(FAM, ParentWithoutPr, Under16, "Consent", "", "", Create, D, S, deny(DeniedNotController)),

    // ---- family: court orders ----
    c(FAM, ParentCourtOrder, Under16, QR, "about-me", "", Read, D, S, deny(DeniedCourtOrder)),
    c(FAM, ParentCourtOrder, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedCourtOrder)),
    c(FAM, ParentCourtOrder, Under16, "Consent", "", "", Read, D, S, deny(DeniedCourtOrder)),
    c(FAM, ParentCourtOrder, Under16, "Consent", "", "", Update, D, S, deny(DeniedNotController)),
    c(FAM, ParentCourtOrder, Over16, "Condition", "conditions", "", Read, D, S, deny(DeniedCourtOrder)),
    c(FAM, ParentCourtOrderEducation, Under16, QR, "education", "", Read, D, S, deny(DeniedCourtOrder)),
    c(FAM, ParentCourtOrderEducation, Under16, QR, "about-me", "", Read, D, S, allow(AllowedAsParent)),
    c(FAM, ParentCourtOrderEducation, Under16, "Observation", "", "", Read, D, S, deny(DeniedUntagged)),

    // ---- looked-after child: foster carers and parents see what the social worker grants ----
    c(FAM, FosterCarerGranted, LookedAfter, QR, "about-me", "", Read, D, S, allow(AllowedByGrant)),
    c(FAM, FosterCarerGranted, LookedAfter, MS, "medicines", "", Read, D, S, allow(AllowedByGrant)),
    c(FAM, FosterCarerGranted, LookedAfter, MS, "medicines", "", Update, D, S, allow(AllowedByGrant)),
    c(FAM, FosterCarerGranted, LookedAfter, "Condition", "conditions", "", Read, D, S, deny(DeniedNotGranted)),
    c(FAM, FosterCarerGranted, LookedAfter, QR, "education", "", Read, D, S, deny(DeniedNotGranted)),
    c(FAM, FosterCarerGranted, LookedAfter, "CarePlan", "emergency", "safeguarding", Read, D, S, deny(DeniedLabel)),
    c(FAM, FosterCarerGranted, LookedAfter, "Observation", "", "", Read, D, S, deny(DeniedUntagged)),
    c(FAM, FosterCarerGranted, LookedAfter, "Consent", "", "", Update, D, S, deny(DeniedNotController)),
    c(FAM, FosterCarerNotGranted, LookedAfter, QR, "about-me", "", Read, D, S, deny(DeniedNotGranted)),
    c(FAM, FosterCarerNotGranted, LookedAfter, "CarePlan", "emergency", "", Read, D, S, deny(DeniedNotGranted)),
    c(FAM, ParentWithPr, LookedAfter, QR, "about-me", "", Read, D, S, deny(DeniedNotGranted)),
    c(FAM, ParentGranted, LookedAfter, QR, "about-me", "", Read, D, S, allow(AllowedByGrant)),
    c(FAM, ParentGranted, LookedAfter, "Condition", "conditions", "", Read, D, S, deny(DeniedNotGranted)),
    c(FAM, ParentWithPr, LookedAfter, "Consent", "", "", Create, D, S, deny(DeniedNotController)),
    c(st(SocialWorker, SocialCare), CareTeam, LookedAfter, "Consent", "", "", Create, D, S, allow(AllowedAsController)),
    c(st(SocialWorker, SocialCare), CareTeam, Under16, "Consent", "", "", Create, D, S, deny(DeniedNotController)),
    c(st(SocialWorker, SocialCare), NOREL, LookedAfter, "Consent", "", "", Create, D, S, deny(DeniedNotController)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Consent", "", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Consent", "", "", Update, D, S, deny(DeniedNotController)),
    c(st(Clinician, HospitalTrust), NOREL, Under16, "Consent", "", "", Read, D, S, deny(DeniedNoRelationship)),

    // ---- the young person, and growing up ----
    c(YP, OwnAccount, Under16, "Condition", "conditions", "", Read, D, S, allow(AllowedAsYoungPerson)),
    c(YP, OwnAccount, Under16, QR, "about-me", "", Update, D, S, allow(AllowedAsYoungPerson)),
    c(YP, OwnAccount, Under16, QR, "education", "", Update, D, S, deny(DeniedReadOnly)),
    c(YP, OwnAccount, Under16, "Condition", "conditions", "sexual-health", Read, D, S, allow(AllowedAsYoungPerson)),
    c(YP, OwnAccount, Under16, "Condition", "conditions", "safeguarding", Read, D, S, deny(DeniedLabel)),
    c(YP, OwnAccount, Under16, "CarePlan", "social-care", "social-care", Read, D, S, deny(DeniedLabel)),
    c(YP, OwnAccount, Under16, "Observation", "", "", Read, D, S, deny(DeniedUntagged)),
    c(YP, OwnAccount, Over16, "Observation", "", "", Read, D, S, allow(AllowedAsYoungPerson)),
    c(YP, OwnAccount, Over16, "Patient", "about-me", "", Update, D, S, deny(DeniedReadOnly)),
    c(YP, OwnAccount, Over16LacksCapacity, QR, "about-me", "", Read, D, S, allow(AllowedAsYoungPerson)),
    c(YP, OwnAccount, Under16, "Consent", "", "", Read, D, S, allow(AllowedAsYoungPerson)),
    c(YP, OwnAccount, Under16, "Consent", "", "", Create, D, S, deny(DeniedNotController)),
    c(YP, OwnAccount, Over16, "Consent", "", "", Create, D, S, allow(AllowedAsController)),
    c(YP, OwnAccount, Under16Gillick, "Consent", "", "", Create, D, S, allow(AllowedAsController)),
    c(YP, OwnAccount, Over16LacksCapacity, "Consent", "", "", Create, D, S, deny(DeniedNotController)),
    c(YP, OtherChild, Over16, QR, "about-me", "", Read, D, S, deny(DeniedNoRelationship)),
    c(FAM, ParentWithPr, Under16, "Consent", "", "", Create, D, S, allow(AllowedAsController)),
    c(FAM, ParentWithPr, Over16, "Consent", "", "", Create, D, S, deny(DeniedNotController)),
    c(FAM, ParentWithPr, Under16Gillick, "Consent", "", "", Update, D, S, deny(DeniedNotController)),
    c(FAM, ParentWithPr, Over16LacksCapacity, "Consent", "", "", Update, D, S, allow(AllowedAsController)),
    c(FAM, ParentWithPr, Over16, "Consent", "", "", Read, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Over16, "Condition", "conditions", "", Read, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Over16, QR, "about-me", "", Update, D, S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Over16, MS, "medicines", "", Read, YoungPersonDeniesParent("medicines"), S, deny(DeniedYoungPersonChoice)),
    c(FAM, ParentWithPr, Over16, MS, "medicines", "", Update, YoungPersonDeniesParent("medicines"), S, deny(DeniedYoungPersonChoice)),
    c(FAM, ParentWithPr, Over16, "Condition", "conditions", "", Read, YoungPersonDeniesParent("medicines"), S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16Gillick, MS, "medicines", "", Read, YoungPersonDeniesParent("medicines"), S, deny(DeniedYoungPersonChoice)),
    c(FAM, ParentWithPr, Over16LacksCapacity, MS, "medicines", "", Read, YoungPersonDeniesParent("medicines"), S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16, MS, "medicines", "", Read, YoungPersonDeniesParent("medicines"), S, allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Over16, "Observation", "", "", Read, D, S, deny(DeniedUntagged)),
    c(FAM, ParentWithoutPr, Over16, "CarePlan", "emergency", "", Read, PermitsFamilyMember("emergency"), S, allow(AllowedBySharingChoice)),

    // ---- break-glass: no relationship, emergency content only, read only, time-limited ----
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, S, allow(AllowedByBreakGlass)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "", Search, D, S, allow(AllowedByBreakGlass)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "AllergyIntolerance", "allergies", "", Read, D, S, allow(AllowedByBreakGlass)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "Observation", "communication", "", Read, D, S, allow(AllowedByBreakGlass)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "RelatedPerson", "contacts", "", Read, D, S, allow(AllowedByBreakGlass)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, MS, "medicines", "", Read, D, S, allow(AllowedByBreakGlass)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "MedicationStatement:stopped", "medicines", "", Read, D, S, deny(DeniedBreakGlassSection)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "MedicationRequest:active", "medicines", "", Read, D, S, deny(DeniedBreakGlassSection)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "Condition", "conditions", "", Read, D, S, deny(DeniedBreakGlassSection)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, QR, "about-me", "", Read, D, S, deny(DeniedBreakGlassSection)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, QR, "education", "", Read, D, S, deny(DeniedBreakGlassSection)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "CarePlan", "social-care", "", Read, D, S, deny(DeniedBreakGlassSection)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "Observation", "", "", Read, D, S, deny(DeniedBreakGlassSection)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "", Update, D, S, deny(DeniedBreakGlassAction)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "", Export, D, S, deny(DeniedBreakGlassAction)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "", History, D, S, deny(DeniedBreakGlassAction)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "safeguarding", Read, D, S, deny(DeniedLabel)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "", Read, SectorDenies("emergency"), S, allow(AllowedByBreakGlass)),
    c(st(Clinician, HospitalTrust), BreakGlass, Over16, "CarePlan", "emergency", "", Read, D, S, allow(AllowedByBreakGlass)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, Tok("user/CarePlan.rs"), allow(AllowedByBreakGlass)),
    c(st(Clinician, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, Tok("user/Condition.rs"), deny(DeniedScope)),
    c(st(Clinician, HospitalTrust), BreakGlassExpired, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedBreakGlassExpired)),
    // GP and community clinicians are not eligible (they use their care-team relationship).
    c(st(Clinician, GpPractice), BreakGlassExpired, Under16, "AllergyIntolerance", "allergies", "", Read, D, S, deny(DeniedBreakGlassNotEligible)),
    c(st(Clinician, GpPractice), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedBreakGlassNotEligible)),
    c(st(Nurse, CommunityHealth), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedBreakGlassNotEligible)),
    c(st(AlliedHealthProfessional, CommunityHealth), BreakGlass, Under16, "AllergyIntolerance", "allergies", "", Read, D, S, deny(DeniedBreakGlassNotEligible)),
    c(st(AlliedHealthProfessional, EmergencyServices), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, S, allow(AllowedByBreakGlass)),
    c(st(Nurse, EmergencyServices), BreakGlass, Under16, "AllergyIntolerance", "allergies", "", Read, D, S, allow(AllowedByBreakGlass)),
    c(st(Clinician, EmergencyServices), BreakGlass, Under16, MS, "medicines", "", Read, D, S, allow(AllowedByBreakGlass)),
    // Hospital nurses and allied health professionals (emergency departments) are eligible.
    c(st(Nurse, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, S, allow(AllowedByBreakGlass)),
    c(st(AlliedHealthProfessional, HospitalTrust), BreakGlass, Under16, "AllergyIntolerance", "allergies", "", Read, D, S, allow(AllowedByBreakGlass)),
    c(st(ClinicalAdmin, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedBreakGlassNotEligible)),
    c(st(SchoolStaff, Education), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedBreakGlassNotEligible)),
    c(st(SocialWorker, SocialCare), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedBreakGlassNotEligible)),
    c(st(LeisureStaff, Leisure), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedBreakGlassNotEligible)),
    c(st(OrganisationAdmin, HospitalTrust), BreakGlass, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedRole)),

    // ---- sharing choices over the regional default ----
    c(st(SchoolStaff, Education), CareTeam, Under16, "AllergyIntolerance", "allergies", "", Read, SectorDenies("allergies"), S, deny(DeniedSectionNotShared)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "AllergyIntolerance", "allergies", "", Update, SectorPermits("allergies"), S, deny(DeniedReadOnly)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "CarePlan", "emergency", "", Read, SectorDenies("emergency"), S, deny(DeniedSectionNotShared)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "CarePlan", "emergency", "", Read, OrgPermitsOverSectorDeny("emergency"), S, allow(AllowedCareTeam)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "Condition", "conditions", "", Read, OrgPermits("conditions"), S, allow(AllowedBySharingChoice)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "Condition", "conditions", "", Read, OtherOrgPermits("conditions"), S, deny(DeniedSectionNotShared)),
    c(st(LeisureStaff, Leisure), CareTeam, Under16, QR, "about-me", "", Read, SectorDenies("about-me"), S, deny(DeniedSectionNotShared)),
    c(st(LeisureStaff, Leisure), CareTeam, Under16, MS, "medicines", "", Read, SectorPermits("medicines"), S, allow(AllowedBySharingChoice)),
    c(st(LeisureStaff, Leisure), CareTeam, Under16, MS, "medicines", "mental-health", Read, SectorPermits("medicines"), S, deny(DeniedLabel)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, MS, "medicines", "", Read, SectorDenies("medicines"), S, deny(DeniedSectionNotShared)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, QR, "education", "", Read, SectorDenies("education"), S, deny(DeniedSectionNotShared)),
    c(st(SocialWorker, SocialCare), CareTeam, Under16, "CarePlan", "social-care", "", Read, SectorDenies("social-care"), S, deny(DeniedSectionNotShared)),

    // ---- SMART scopes only narrow ----
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok("user/*.cruds"), allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Update, D, Tok("user/Condition.rs"), deny(DeniedScope)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok("user/Condition.rs"), allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Search, D, Tok("user/Condition.rs"), allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Search, D, Tok("user/Condition.r"), deny(DeniedScope)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok("user/Observation.rs"), deny(DeniedScope)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Update, D, Tok("user/*.read"), deny(DeniedScope)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok("user/*.read"), allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Update, D, Tok("user/*.*"), allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Update, D, Tok("user/Condition.write"), allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok("user/Condition.write"), deny(DeniedScope)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok("openid fhirUser launch offline_access"), deny(DeniedScope)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok("system/*.rs"), deny(DeniedScope)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok("launch patient/*.rs"), allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, OtherPatient("launch patient/*.rs"), deny(DeniedScopeOtherPatient)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, OtherPatient("patient/*.rs user/Condition.rs"), allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok(TAG_CONDITIONS), allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok(TAG_MEDICINES), deny(DeniedScope)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Observation", "communication", "", Read, D, Tok("user/Observation.rs?category=social-history"), deny(DeniedScope)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "Condition", "conditions", "", Read, D, Tok("user/*.cruds"), deny(DeniedSectionNotShared)),
    c(FAM, ParentWithPr, Under16, "Condition", "conditions", "", Read, D, Tok("patient/*.read"), allow(AllowedAsParent)),
    c(FAM, ParentWithPr, Under16, "Condition", "conditions", "", Read, D, OtherPatient("patient/*.read"), deny(DeniedScopeOtherPatient)),
    c(FAM, ParentWithPr, Under16, "Condition", "conditions", "", Update, D, Tok("patient/Condition.rs"), deny(DeniedScope)),
    c(FAM, ParentWithPr, Under16, "Condition", "conditions", "", Update, D, Tok("patient/Condition.cruds"), allow(AllowedAsParent)),
    c(YP, OwnAccount, Over16, QR, "about-me", "", Read, D, Tok("patient/*.rs"), allow(AllowedAsYoungPerson)),
    c(YP, OwnAccount, Over16, QR, "about-me", "", Read, D, OtherPatient("patient/*.rs"), deny(DeniedScopeOtherPatient)),
    c(Who::System(HospitalTrust), CareTeamOrg, Under16, "Condition", "conditions", "", Read, D, Tok("system/*.rs"), allow(AllowedCareTeam)),
    c(Who::System(HospitalTrust), CareTeamOrg, Under16, "Condition", "conditions", "", Update, D, Tok("system/*.rs"), deny(DeniedScope)),
    c(Who::System(HospitalTrust), CareTeamOrg, Under16, "Condition", "conditions", "", Update, D, Tok("system/Condition.cud"), allow(AllowedCareTeam)),
    c(Who::System(HospitalTrust), CareTeamOrg, Under16, "Condition", "conditions", "", Read, D, Tok("user/*.rs"), deny(DeniedScope)),
    c(Who::System(HospitalTrust), NOREL, Under16, "Condition", "conditions", "", Read, D, Tok("system/*.rs"), deny(DeniedNoRelationship)),
    c(Who::System(HospitalTrust), CareTeamOrg, Under16, "Condition", "conditions", "", Export, D, Tok("system/*.read"), allow(AllowedCareTeam)),
    c(Who::System(HospitalTrust), CareTeamOrg, Under16, "Condition", "conditions", "", Export, D, Tok("system/Condition.r"), deny(DeniedScope)),
    c(Who::System(HospitalTrust), CareTeamOrg, Under16, "Condition", "conditions", "sexual-health", Read, D, Tok("system/*.rs"), deny(DeniedLabel)),
    c(Who::System(Education), CareTeamOrg, Under16, "Condition", "conditions", "", Read, D, Tok("system/*.*"), deny(DeniedSectionNotShared)),
    c(Who::System(Education), CareTeamOrg, Under16, QR, "education", "", Update, D, Tok("system/*.*"), allow(AllowedCareTeam)),

    // ---- trusted regional integration (bulk load, regional sync) ----
    c(Who::Regional, NOREL, Under16, "Condition", "conditions", "", Read, D, Tok("system/*.rs"), allow(AllowedRegionalSystem)),
    c(Who::Regional, NOREL, Under16, "Condition", "conditions", "", Create, D, Tok("system/*.cruds"), allow(AllowedRegionalSystem)),
    c(Who::Regional, NOREL, Under16, "Condition", "conditions", "", Update, D, Tok("system/*.rs"), deny(DeniedScope)),
    c(Who::Regional, NOREL, Under16, "Observation", "", "", Update, D, Tok("system/*.cruds"), allow(AllowedRegionalSystem)),
    c(Who::Regional, NOREL, Under16, "Condition", "conditions", "safeguarding", Read, D, Tok("system/*.rs"), deny(DeniedLabel)),
    c(Who::Regional, NOREL, Under16, "Consent", "", "", Read, D, Tok("system/*.rs"), allow(AllowedRegionalSystem)),
    c(Who::Regional, NOREL, Under16, "AuditEvent", "", "", Read, D, Tok("system/*.rs"), deny(DeniedRole)),
    c(Who::Regional, NoChild, Under16, "Patient", "", "", Create, D, Tok("system/*.cruds"), allow(AllowedOnboarding)),
    c(Who::Regional, NoChild, Under16, "Organization", "", "", Create, D, Tok("system/*.cruds"), allow(AllowedRegionalSystem)),
    c(Who::Regional, NoChild, Under16, "Observation", "", "", Create, D, Tok("system/*.cruds"), allow(AllowedRegionalSystem)),
    c(Who::Regional, NoChild, Under16, "Observation", "", "", Create, D, Tok("system/*.rs"), deny(DeniedScope)),

    // ---- anonymous ----
    c(ANON, NOREL, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedAnonymous)),

    // ---- a card link: the emergency content of its own child, read only ----
    c(CARD, NOREL, Under16, "CarePlan", "emergency", "", Read, D, S, allow(AllowedByCardLink)),
    c(CARD, NOREL, Under16, "AllergyIntolerance", "allergies", "", Read, D, S, allow(AllowedByCardLink)),
    c(CARD, NOREL, Under16, QR, "what-matters", "", Read, D, S, allow(AllowedByCardLink)),
    c(CARD, NOREL, Under16, "RelatedPerson", "contacts", "", Read, D, S, allow(AllowedByCardLink)),
    c(CARD, NOREL, Under16, MS, "medicines", "", Read, D, S, allow(AllowedByCardLink)),
    c(CARD, NOREL, Under16, "MedicationStatement:stopped", "medicines", "", Read, D, S, deny(DeniedBreakGlassSection)),
    c(CARD, NOREL, Under16, "Condition", "conditions", "", Read, D, S, deny(DeniedBreakGlassSection)),
    c(CARD, NOREL, Under16, QR, "education", "", Read, D, S, deny(DeniedBreakGlassSection)),
    c(CARD, NOREL, Under16, "Patient", "about-me", "", Read, D, S, deny(DeniedBreakGlassSection)),
    c(CARD, NOREL, Under16, "AllergyIntolerance", "allergies", "mental-health", Read, D, S, deny(DeniedLabel)),
    c(CARD, NOREL, Under16, "CarePlan", "emergency", "", Update, D, S, deny(DeniedBreakGlassAction)),
    c(CARD, NOREL, Under16, "CarePlan", "emergency", "", History, D, S, deny(DeniedBreakGlassAction)),
    c(CARD, OtherChild, Under16, "CarePlan", "emergency", "", Read, D, S, deny(DeniedNoRelationship)),
    c(CARD, NoChild, Under16, "Organization", "", "", Read, D, S, deny(DeniedRole)),
    c(CARD, NOREL, Under16, "Consent", "", "", Read, D, S, deny(DeniedNoRelationship)),
    c(ANON, NoChild, Under16, "Organization", "", "", Read, D, S, deny(DeniedAnonymous)),

    // ---- items without a section tag ----
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Observation", "", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(Clinician, HospitalTrust), CareTeam, Under16, "Observation", "", "", Update, D, S, allow(AllowedCareTeam)),
    c(st(SocialWorker, SocialCare), CareTeam, Under16, "Observation", "", "", Read, D, S, allow(AllowedCareTeam)),
    c(st(ClinicalAdmin, HospitalTrust), CareTeam, Under16, "Observation", "", "", Update, D, S, deny(DeniedUntagged)),
    c(st(SchoolStaff, Education), CareTeam, Under16, "Observation", "", "", Read, D, S, deny(DeniedUntagged)),
    c(st(LeisureStaff, Leisure), CareTeam, Under16, "Observation", "", "", Read, D, S, deny(DeniedUntagged)),

    // ---- resources that belong to no child ----
    c(st(SchoolStaff, Education), NoChild, Under16, "Organization", "", "", Read, D, S, allow(AllowedReferenceData)),
    c(FAM, NoChild, Under16, "Questionnaire", "", "", Read, D, S, allow(AllowedReferenceData)),
    c(st(Commissioner, CommunityHealth), NoChild, Under16, "Questionnaire", "", "", Read, D, S, allow(AllowedReferenceData)),
    c(st(OrganisationAdmin, HospitalTrust), NoChild, Under16, "Organization", "", "", Update, D, S, allow(AllowedAdministration)),
    c(st(OrganisationAdmin, HospitalTrust), NoChild, Under16, "Questionnaire", "", "", Update, D, S, deny(DeniedRole)),
    c(st(RegionalAdmin, CommunityHealth), NoChild, Under16, "Questionnaire", "", "", Update, D, S, allow(AllowedAdministration)),
    c(st(Clinician, HospitalTrust), NoChild, Under16, "Organization", "", "", Update, D, S, deny(DeniedRole)),
    c(st(Clinician, HospitalTrust), NoChild, Under16, "Medication", "", "", Create, D, S, allow(AllowedAdministration)),
    c(st(Clinician, HospitalTrust), NoChild, Under16, "Condition", "conditions", "", Read, D, S, deny(DeniedMissingChildFacts)),
    c(st(Clinician, HospitalTrust), NoChild, Under16, "Patient", "about-me", "", Create, D, S, allow(AllowedOnboarding)),
    c(st(SocialWorker, SocialCare), NoChild, Under16, "Patient", "about-me", "", Create, D, S, allow(AllowedOnboarding)),
    c(st(SchoolStaff, Education), NoChild, Under16, "Patient", "about-me", "", Create, D, S, deny(DeniedRole)),
    c(FAM, NoChild, Under16, "Patient", "about-me", "", Create, D, S, deny(DeniedRole)),
    c(FAM, NoChild, Under16, "Organization", "", "", Read, D, Tok("patient/*.read"), allow(AllowedReferenceData)),
    c(FAM, NoChild, Under16, "Organization", "", "", Update, D, Tok("patient/*.*"), deny(DeniedScope)),
];

/// The fixed "now" of the matrix.
pub fn now() -> Timestamp {
    Timestamp::parse("2026-05-01T12:00:00Z").expect("valid instant")
}

const CHILD: &str = "child-1";
const OTHER_CHILD: &str = "child-2";
const PRACTITIONER: &str = "staff-1";
const ORGANISATION: &str = "org-1";
const PERSON: &str = "person-1";
const RELATED_PERSON: &str = "rp-1";

fn section(code: &str) -> SectionSet {
    Section::from_code(code).map_or(SectionSet::EMPTY, |s| SectionSet::of(&[s]))
}

impl Case {
    /// A short description for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "{:?} {:?} {:?} {} [{}] <{}> {:?} {:?} {:?} → expected {} {}",
            self.who,
            self.rel,
            self.child,
            self.resource,
            self.section,
            self.label,
            self.action,
            self.sharing,
            self.token,
            if self.expect.allow { "allow" } else { "deny" },
            self.expect.reason.code()
        )
    }

    /// The resource this row is about, as FHIR JSON (for the HTTP-level test to store).
    pub fn resource_json(&self) -> Value {
        let (ty, status) = match self.resource.split_once(':') {
            Some((t, s)) => (t, Some(s)),
            None => (self.resource, None),
        };
        let mut r = json!({"resourceType": ty, "id": "item-1", "meta": {}});
        if !self.section.is_empty() {
            r["meta"]["tag"] = json!([{"system": SECTION_SYSTEM, "code": self.section}]);
        }
        if !self.label.is_empty() {
            r["meta"]["security"] = json!([{"system": LABEL_SYSTEM, "code": self.label}]);
        }
        if let Some(s) = status {
            r["status"] = json!(s);
        }
        if self.rel != Rel::NoChild {
            match ty {
                "Patient" => r["id"] = json!(CHILD),
                "RelatedPerson" | "Consent" | "AuditEvent" | "AllergyIntolerance" => {
                    r["patient"] = json!({"reference": format!("Patient/{CHILD}")})
                }
                _ => r["subject"] = json!({"reference": format!("Patient/{CHILD}")}),
            }
        }
        r
    }

    /// The facts about the child (None for [`Rel::NoChild`]).
    pub fn child_facts(&self) -> Option<ChildFacts> {
        if self.rel == Rel::NoChild {
            return None;
        }
        let mut c = ChildFacts::new(CHILD);
        let birth = match self.child {
            Child::Over16 | Child::Over16LacksCapacity => "2009-02-01",
            _ => "2014-03-10",
        };
        c.birth_date = Some(Date::parse(birth).expect("valid date"));
        c.gillick_competent = self.child == Child::Under16Gillick;
        c.lacks_capacity = self.child == Child::Over16LacksCapacity;
        c.looked_after = self.child == Child::LookedAfter;
        let link = |role, pr| FamilyLink::new(PERSON, RELATED_PERSON, role, pr);
        let granted = |mut l: FamilyLink, s: &[Section]| {
            l.granted = SectionSet::of(s);
            l
        };
        let court = |mut l: FamilyLink, s: SectionSet| {
            l.court_order = Some(s);
            l
        };
        use Section::*;
        match self.rel {
            Rel::CareTeam => {
                if matches!(self.who, Who::System(_)) {
                    c.care_team
                        .push(CareTeamMember::Organisation(ORGANISATION.into()));
                } else {
                    c.care_team
                        .push(CareTeamMember::Practitioner(PRACTITIONER.into()));
                }
            }
            Rel::CareTeamOrg => c
                .care_team
                .push(CareTeamMember::Organisation(ORGANISATION.into())),
            Rel::ParentWithPr => c.family.push(link(FamilyRole::Parent, true)),
            Rel::ParentWithoutPr => c.family.push(link(FamilyRole::Parent, false)),
            Rel::ParentCourtOrder => c
                .family
                .push(court(link(FamilyRole::Parent, true), SectionSet::ALL)),
            Rel::ParentCourtOrderEducation => c.family.push(court(
                link(FamilyRole::Parent, true),
                SectionSet::of(&[Education]),
            )),
            Rel::ParentGranted => c.family.push(granted(
                link(FamilyRole::Parent, true),
                &[AboutMe, Emergency],
            )),
            Rel::FosterCarerGranted => c.family.push(granted(
                link(FamilyRole::FosterCarer, false),
                &[AboutMe, Communication, Emergency, Medicines],
            )),
            Rel::FosterCarerNotGranted => c.family.push(link(FamilyRole::FosterCarer, false)),
            Rel::BreakGlass | Rel::BreakGlassExpired => {
                let start = if self.rel == Rel::BreakGlass {
                    -3600
                } else {
                    -5 * 3600
                };
                c.break_glass.push(BreakGlassGrant {
                    practitioner: PRACTITIONER.into(),
                    reason: "Unconscious in A&E".into(),
                    starts: now().plus_seconds(start),
                    expires: now().plus_seconds(start + 4 * 3600),
                });
            }
            Rel::None | Rel::OwnAccount | Rel::OtherChild | Rel::NoChild => {}
        }
        let sector = match self.who {
            Who::Staff(_, s) | Who::Cleared(_, s, _) | Who::System(s) => s,
            _ => Sector::HospitalTrust,
        };
        let rp = || Actor::RelatedPerson(RELATED_PERSON.into());
        c.sharing = match self.sharing {
            Sharing::Default => SharingChoices::new(),
            Sharing::SectorPermits(s) => {
                SharingChoices::new().permit(Actor::Sector(sector), section(s))
            }
            Sharing::SectorDenies(s) => {
                SharingChoices::new().deny(Actor::Sector(sector), section(s))
            }
            Sharing::OrgPermits(s) => {
                SharingChoices::new().permit(Actor::Organisation(ORGANISATION.into()), section(s))
            }
            Sharing::OrgPermitsOverSectorDeny(s) => SharingChoices::new()
                .deny(Actor::Sector(sector), section(s))
                .permit(Actor::Organisation(ORGANISATION.into()), section(s)),
            Sharing::OtherOrgPermits(s) => {
                SharingChoices::new().permit(Actor::Organisation("org-2".into()), section(s))
            }
            Sharing::YoungPersonDeniesParent(s) => SharingChoices::new().deny(rp(), section(s)),
            Sharing::PermitsFamilyMember(s) => SharingChoices::new().permit(rp(), section(s)),
        };
        // Round-trip through FHIR Consent JSON, as the store would hold it.
        let consent = c
            .sharing
            .to_consent(CHILD, "RelatedPerson/rp-1", "2026-04-01T10:00:00Z");
        c.sharing = SharingChoices::from_consents(&[consent]);
        Some(c)
    }

    /// The subject of this row.
    pub fn subject(&self) -> Subject {
        let staff = |role, sector, cleared| Staff {
            practitioner: PRACTITIONER.into(),
            role,
            organisation: ORGANISATION.into(),
            sector,
            region: "north".into(),
            cleared,
        };
        let identity = match self.who {
            Who::Staff(r, s) => Identity::Staff(staff(r, s, LabelSet::EMPTY)),
            Who::Cleared(r, s, l) => Identity::Staff(staff(r, s, LabelSet::of(&[l]))),
            Who::Family => Identity::Family {
                person: if self.rel == Rel::OtherChild {
                    "person-9".into()
                } else {
                    PERSON.into()
                },
            },
            Who::YoungPerson => Identity::YoungPerson {
                patient: if self.rel == Rel::OtherChild {
                    OTHER_CHILD.into()
                } else {
                    CHILD.into()
                },
            },
            Who::System(s) => Identity::System(SystemClient {
                client_id: "client-1".into(),
                organisation: Some(ORGANISATION.into()),
                sector: s,
                region: "north".into(),
                cleared: LabelSet::EMPTY,
                regional: false,
            }),
            Who::Regional => Identity::System(SystemClient {
                client_id: "regional-1".into(),
                organisation: None,
                sector: Sector::HospitalTrust,
                region: "north".into(),
                cleared: LabelSet::EMPTY,
                regional: true,
            }),
            Who::CardLink => Identity::CardLink {
                patient: if self.rel == Rel::OtherChild {
                    OTHER_CHILD.into()
                } else {
                    CHILD.into()
                },
            },
            Who::Anonymous => Identity::Anonymous,
        };
        let scopes = match self.token {
            Token::Session => Scopes::unrestricted(),
            Token::Scopes(s) => Scopes::parse(s)
                .expect("matrix scopes parse")
                .with_patient(CHILD),
            Token::OtherPatient(s) => Scopes::parse(s)
                .expect("matrix scopes parse")
                .with_patient(OTHER_CHILD),
        };
        Subject::new(identity, scopes)
    }

    /// Runs this row through [`crate::decide`] with the default regional policy.
    pub fn run(&self) -> crate::Decision {
        let facts = ResourceFacts::from_json(&self.resource_json());
        let child = self.child_facts();
        crate::decide(
            &RegionalPolicy::default(),
            &self.subject(),
            self.action,
            &facts,
            child.as_ref(),
            now(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_gets_its_expected_answer() {
        let failures: Vec<String> = MATRIX
            .iter()
            .enumerate()
            .filter_map(|(i, case)| {
                let d = case.run();
                (d.allow != case.expect.allow || d.reason != case.expect.reason).then(|| {
                    format!(
                        "row {i}: {}\n        got {} {}",
                        case.describe(),
                        if d.allow { "allow" } else { "deny" },
                        d.reason.code()
                    )
                })
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} rows differ:\n{}",
            failures.len(),
            MATRIX.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn the_table_is_well_formed_and_covers_every_role() {
        for case in MATRIX {
            assert!(
                case.section.is_empty() || Section::from_code(case.section).is_some(),
                "{}",
                case.describe()
            );
            assert!(
                case.label.is_empty() || SecurityLabel::from_code(case.label).is_some(),
                "{}",
                case.describe()
            );
            assert_eq!(
                case.expect.allow,
                case.expect.reason.code().starts_with("Allowed"),
                "{}",
                case.describe()
            );
            // Every row is a situation that can exist: the role is one its organisation's
            // sector may have (the regional roles sit in the region's own organisation).
            if let Who::Staff(r, s) | Who::Cleared(r, s, _) = case.who {
                assert!(r.allowed_in(s, true), "{}", case.describe());
            }
        }
        for role in Role::ALL {
            let rows: Vec<_> = MATRIX
                .iter()
                .filter(|c| matches!(c.who, Who::Staff(r, _) | Who::Cleared(r, _, _) if r == role))
                .collect();
            assert!(rows.len() >= 3, "{role:?} has only {} rows", rows.len());
        }
        for sector in Sector::ALL {
            assert!(
                MATRIX
                    .iter()
                    .any(|c| matches!(c.who, Who::Staff(_, s) if s == sector)),
                "{sector:?} not covered"
            );
        }
    }
}
