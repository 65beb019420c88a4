//! The one decision function. Checks run in this order, and the first that settles the
//! question gives the reason:
//!
//! 1. anonymous → deny;
//! 2. a commissioner and a child's resource → deny;
//! 3. the token's scopes (they only narrow);
//! 4. aggregate figures; resources that belong to no child (reference data, onboarding);
//!    the access log (AuditEvent);
//! 5. sharing choices themselves (Consent): read by those involved, changed only by the
//!    controller;
//! 6. the subject's relationship to the child (care team; family link; the young person;
//!    else break-glass), which gives the sections they may read and write;
//! 7. the resource's section tags: reading needs *any* tagged section visible, writing
//!    needs *every* tagged section writable; untagged items only for the care team and
//!    the controller;
//! 8. security labels;
//! 9. a family member or the young person never changes the records the decision rests
//!    on ([`FACT_TYPES`]: Patient, RelatedPerson, CareTeam).

use crate::child::{ChildFacts, Controller, FamilyLink, FamilyRole, controller};
use crate::decision::{Decision, Reason};
use crate::emergency::{EMERGENCY_READABLE, in_emergency_sections, is_emergency_content};
use crate::label::{LabelSet, SecurityLabel};
use crate::policy::RegionalPolicy;
use crate::resource::{Action, ResourceFacts};
use crate::scopes::ScopeCheck;
use crate::section::SectionSet;
use crate::subject::{Identity, Role, Sector, Staff, Subject, SystemClient};
use crate::time::Timestamp;

/// Types that belong to no child: readable by anyone signed in.
pub(crate) const REFERENCE_TYPES: &[&str] = &[
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "HealthcareService",
    "Endpoint",
    "Medication",
    "Substance",
    "Questionnaire",
    "ValueSet",
    "CodeSystem",
    "ConceptMap",
    "StructureDefinition",
    "SearchParameter",
    "CapabilityStatement",
    "MeasureReport",
    "Measure",
];
/// Reference types an organisation admin maintains (their directory entries).
const DIRECTORY_TYPES: &[&str] = &[
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "HealthcareService",
    "Endpoint",
];
/// Reference types clinical staff and health systems may add (from prescriptions).
const CLINICAL_REFERENCE_TYPES: &[&str] = &["Medication", "Substance"];

/// Labels a young person may see in their own passport (their own confidential care).
const YOUNG_PERSON_LABELS: LabelSet =
    LabelSet::of(&[SecurityLabel::SexualHealth, SecurityLabel::MentalHealth]);

/// Decides whether `subject` may perform `action` on a resource.
///
/// - `resource`: facts from the resource JSON ([`ResourceFacts::from_json`]); for
///   create/update the new body (and for update, call again with the stored version).
/// - `child`: facts about the child whose compartment the resource is in; `None` only for
///   resources that belong to no child (reference data, aggregates, a new child's Patient).
/// - `now`: the current time (break-glass expiry, age, Consent periods).
///
/// Pure and cheap (no allocation on the common paths): call it for every search result.
pub fn decide(
    policy: &RegionalPolicy,
    subject: &Subject,
    action: Action,
    resource: &ResourceFacts,
    child: Option<&ChildFacts>,
    now: Timestamp,
) -> Decision {
    use Reason::*;
    let identity = &subject.identity;
    if matches!(identity, Identity::Anonymous) {
        return Decision::deny(DeniedAnonymous);
    }
    let staff = match identity {
        Identity::Staff(s) => Some(s),
        _ => None,
    };
    if child.is_some() && staff.is_some_and(|s| s.role == Role::Commissioner) {
        return Decision::deny(DeniedCommissioner);
    }
    let is_system = matches!(identity, Identity::System(_));
    match subject.scopes.check(
        resource,
        action,
        is_system,
        child.map(|c| c.patient.as_str()),
    ) {
        ScopeCheck::Granted => {}
        ScopeCheck::NotCovered => return Decision::deny(DeniedScope),
        ScopeCheck::OtherPatient => return Decision::deny(DeniedScopeOtherPatient),
    }
    if action == Action::Aggregate {
        if child.is_some() {
            return Decision::deny(DeniedNotAggregate);
        }
        return match staff.map(|s| s.role) {
            Some(Role::Commissioner | Role::RegionalAdmin) => Decision::allow(AllowedAggregate),
            _ => Decision::deny(DeniedRole),
        };
    }
    if resource.resource_type == "AuditEvent" {
        return match (staff.map(|s| s.role), action) {
            (
                Some(Role::PrivacyOfficer | Role::RegionalAdmin),
                Action::Read | Action::Search | Action::History,
            ) => Decision::allow(AllowedAuditReview),
            _ => Decision::deny(DeniedRole),
        };
    }
    let Some(child) = child else {
        return no_child(policy, identity, action, resource);
    };
    if resource.resource_type == "Consent" {
        return consent(policy, identity, action, child, now);
    }
    match relationship(policy, identity, child, now) {
        Ok(Access::Emergency(by)) => emergency(action, resource, by),
        Ok(Access::Sections(a)) => {
            let d = sections(&a, action, resource);
            // The records the decision itself rests on are changed by professionals only.
            if d.allow
                && action.is_write()
                && matches!(
                    identity,
                    Identity::Family { .. } | Identity::YoungPerson { .. }
                )
                && FACT_TYPES.contains(&resource.resource_type.as_str())
            {
                return Decision::deny(Reason::DeniedReadOnly);
            }
            d
        }
        Err(reason) => Decision::deny(reason),
    }
}

/// The sections `subject` may read in `child`'s passport, from the policy, the care team,
/// the family links and the sharing choices alone — never from what the passport holds. A
/// page shows each section as shared or "not shared with you" from this, so the answer is
/// the same whether or not a hidden section holds anything. An item with no security label
/// and with sections is readable iff its sections meet this set (`decide` agrees: tested in
/// `view/tests.rs`). Break-glass reads medicines too, but only current ones.
pub fn readable_sections(
    policy: &RegionalPolicy,
    subject: &Subject,
    child: &ChildFacts,
    now: Timestamp,
) -> SectionSet {
    let staff_role = match &subject.identity {
        Identity::Staff(s) => Some(s.role),
        _ => None,
    };
    if matches!(subject.identity, Identity::Anonymous) || staff_role == Some(Role::Commissioner) {
        return SectionSet::EMPTY;
    }
    match relationship(policy, &subject.identity, child, now) {
        Ok(Access::Sections(a)) => a.read,
        Ok(Access::Emergency(_)) => EMERGENCY_READABLE,
        Err(_) => SectionSet::EMPTY,
    }
}

/// Types whose content the decision reads about the child and the family (Gillick
/// competence, capacity, looked-after, hidden address; parental responsibility, court
/// orders, grants, whether a link is in force; the care team). A family member or the
/// young person reads them as their sections allow but never changes them through the API:
/// a parent must not be able to lift a court order or an address hidden from them. (Before
/// every item had a section, these were untagged, which families could not change either.)
const FACT_TYPES: &[&str] = &["Patient", "RelatedPerson", "CareTeam"];

/// Step 6: the subject's relationship to the child, and what it opens.
pub(crate) fn relationship(
    policy: &RegionalPolicy,
    identity: &Identity,
    child: &ChildFacts,
    now: Timestamp,
) -> Result<Access, Reason> {
    match identity {
        Identity::Staff(s) => staff_access(policy, s, child, now),
        Identity::System(c) => system_access(policy, c, child, now),
        Identity::YoungPerson { patient } => young_person_access(policy, patient, child, now),
        Identity::Family { person } => match child.family_link(person) {
            Some(link) => family_access(policy, link, child, now),
            None => Err(Reason::DeniedNoRelationship),
        },
        Identity::CardLink { patient } if *patient == child.patient => {
            Ok(Access::Emergency(Reason::AllowedByCardLink))
        }
        Identity::CardLink { .. } => Err(Reason::DeniedNoRelationship),
        Identity::Anonymous => Err(Reason::DeniedAnonymous),
    }
}

/// What a related subject may do with the child's record.
pub(crate) struct SectionAccess {
    pub(crate) read: SectionSet,
    write: SectionSet,
    /// Sections read only because of a sharing choice (for the reason code).
    by_choice: SectionSet,
    pub(crate) cleared: LabelSet,
    /// May see items without a section tag.
    pub(crate) untagged: bool,
    /// May change items without a section tag.
    untagged_write: bool,
    allowed: Reason,
    /// Why reading a section outside `read` is refused.
    not_visible: Reason,
}

pub(crate) enum Access {
    Sections(SectionAccess),
    /// The emergency content only ([`crate::emergency`]), read only; the reason an
    /// allowed read gives (break-glass, a card link).
    Emergency(Reason),
}

fn sections(a: &SectionAccess, action: Action, r: &ResourceFacts) -> Decision {
    use Reason::*;
    if r.sections.is_empty() {
        if !a.untagged || (action.is_write() && !a.untagged_write) {
            return Decision::deny(DeniedUntagged);
        }
    } else {
        if !r.sections.intersects(a.read) {
            return Decision::deny(a.not_visible);
        }
        if action.is_write() && r.sections.minus(a.write.intersection(a.read)) != SectionSet::EMPTY
        {
            return Decision::deny(DeniedReadOnly);
        }
    }
    if !r.labels.within(a.cleared) {
        return Decision::deny(DeniedLabel);
    }
    let only_by_choice = !r.sections.is_empty()
        && r.sections
            .intersection(a.read)
            .minus(a.by_choice)
            .is_empty();
    Decision::allow(if only_by_choice {
        AllowedBySharingChoice
    } else {
        a.allowed
    })
}

fn staff_access(
    policy: &RegionalPolicy,
    s: &Staff,
    child: &ChildFacts,
    now: Timestamp,
) -> Result<Access, Reason> {
    if !s.role.sees_child_records() {
        return Err(Reason::DeniedRole);
    }
    if !child.in_care_team(Some(&s.practitioner), Some(&s.organisation)) {
        let mut grants = child
            .break_glass
            .iter()
            .filter(|g| g.practitioner == s.practitioner)
            .peekable();
        if grants.peek().is_none() {
            return Err(Reason::DeniedNoRelationship);
        }
        if !break_glass_eligible(s) {
            return Err(Reason::DeniedBreakGlassNotEligible);
        }
        return if grants.any(|g| g.active(now)) {
            Ok(Access::Emergency(Reason::AllowedByBreakGlass))
        } else {
            Err(Reason::DeniedBreakGlassExpired)
        };
    }
    let view = child
        .sharing
        .staff_view(policy, &s.organisation, s.sector, now);
    Ok(Access::Sections(SectionAccess {
        read: view.visible,
        write: policy.role_writes(s.role),
        by_choice: view.by_choice,
        cleared: s.cleared,
        untagged: s.sector.is_health() || s.sector == Sector::SocialCare,
        untagged_write: matches!(
            s.role,
            Role::Clinician | Role::Nurse | Role::AlliedHealthProfessional | Role::SocialWorker
        ),
        allowed: Reason::AllowedCareTeam,
        not_visible: Reason::DeniedSectionNotShared,
    }))
}

/// Who may use break-glass: clinicians, nurses and allied health professionals
/// (paramedics are AHPs) of hospital trusts and emergency services — the people who meet a
/// child they do not know in an emergency. GP and community staff work through the
/// child's care team instead, and no other sector's role is clinical (a role is assignable
/// only in its sectors, [`Role::allowed_in`], so a school cannot mint a clinician).
pub fn break_glass_eligible(s: &Staff) -> bool {
    matches!(
        s.role,
        Role::Clinician | Role::Nurse | Role::AlliedHealthProfessional
    ) && matches!(s.sector, Sector::HospitalTrust | Sector::EmergencyServices)
}

/// Emergency access (break-glass, a card link) reads the emergency content and nothing
/// else ([`crate::emergency`]); an allowed read gives `allowed`.
fn emergency(action: Action, r: &ResourceFacts, allowed: Reason) -> Decision {
    use Reason::*;
    if !matches!(action, Action::Read | Action::Search) {
        return Decision::deny(DeniedBreakGlassAction);
    }
    if !in_emergency_sections(r) {
        return Decision::deny(DeniedBreakGlassSection);
    }
    if !is_emergency_content(r) {
        return Decision::deny(DeniedLabel);
    }
    Decision::allow(allowed)
}

fn system_access(
    policy: &RegionalPolicy,
    c: &SystemClient,
    child: &ChildFacts,
    now: Timestamp,
) -> Result<Access, Reason> {
    if c.regional {
        // Every section, read and write; security labels still need clearance.
        return Ok(Access::Sections(SectionAccess {
            read: SectionSet::ALL,
            write: SectionSet::ALL,
            by_choice: SectionSet::EMPTY,
            cleared: c.cleared,
            untagged: true,
            untagged_write: true,
            allowed: Reason::AllowedRegionalSystem,
            not_visible: Reason::DeniedSectionNotShared,
        }));
    }
    let Some(org) = c
        .organisation
        .as_deref()
        .filter(|o| child.in_care_team(None, Some(o)))
    else {
        return Err(Reason::DeniedNoRelationship);
    };
    let view = child.sharing.staff_view(policy, org, c.sector, now);
    Ok(Access::Sections(SectionAccess {
        read: view.visible,
        write: policy.system_writes(c.sector),
        by_choice: view.by_choice,
        cleared: c.cleared,
        untagged: c.sector.is_health() || c.sector == Sector::SocialCare,
        untagged_write: c.sector.is_health() || c.sector == Sector::SocialCare,
        allowed: Reason::AllowedCareTeam,
        not_visible: Reason::DeniedSectionNotShared,
    }))
}

fn young_person_access(
    policy: &RegionalPolicy,
    patient: &str,
    child: &ChildFacts,
    now: Timestamp,
) -> Result<Access, Reason> {
    if patient != child.patient {
        return Err(Reason::DeniedNoRelationship);
    }
    Ok(Access::Sections(SectionAccess {
        read: SectionSet::ALL,
        write: policy.family_writes,
        by_choice: SectionSet::EMPTY,
        cleared: YOUNG_PERSON_LABELS,
        untagged: controller(child, policy, now) == Controller::YoungPerson,
        untagged_write: false,
        allowed: Reason::AllowedAsYoungPerson,
        not_visible: Reason::DeniedSectionNotShared,
    }))
}

fn family_access(
    policy: &RegionalPolicy,
    link: &FamilyLink,
    child: &ChildFacts,
    now: Timestamp,
) -> Result<Access, Reason> {
    use Reason::*;
    let restricted = link.court_order.unwrap_or(SectionSet::EMPTY);
    if restricted == SectionSet::ALL {
        return Err(DeniedCourtOrder);
    }
    let family = |read: SectionSet, untagged, allowed, not_visible| {
        let read = read.minus(restricted);
        Access::Sections(SectionAccess {
            read,
            write: read.intersection(policy.family_writes),
            by_choice: SectionSet::EMPTY,
            cleared: LabelSet::EMPTY,
            untagged: untagged && restricted.is_empty(),
            untagged_write: false,
            allowed,
            // A section withheld by the court order reads as the order's refusal.
            not_visible,
        })
    };
    let court_or = |r| {
        if restricted.is_empty() {
            r
        } else {
            DeniedCourtOrder
        }
    };
    if child.looked_after || link.role == FamilyRole::FosterCarer {
        return Ok(family(
            link.granted,
            false,
            AllowedByGrant,
            court_or(DeniedNotGranted),
        ));
    }
    if link.parental_responsibility {
        return Ok(match controller(child, policy, now) {
            Controller::Parents => family(SectionSet::ALL, true, AllowedAsParent, DeniedCourtOrder),
            Controller::YoungPerson => {
                let (permit, deny) = child.sharing.family_rules(&link.related_person, now);
                let read = policy.parents_after_handover.union(permit).minus(deny);
                family(
                    read,
                    false,
                    AllowedAsParent,
                    court_or(DeniedYoungPersonChoice),
                )
            }
        });
    }
    let (permit, deny) = child.sharing.family_rules(&link.related_person, now);
    let read = permit.minus(deny);
    let mut a = family(
        read,
        false,
        AllowedBySharingChoice,
        court_or(DeniedNoParentalResponsibility),
    );
    if let Access::Sections(s) = &mut a {
        s.write = SectionSet::EMPTY;
    }
    Ok(a)
}

pub(crate) fn consent(
    policy: &RegionalPolicy,
    identity: &Identity,
    action: Action,
    child: &ChildFacts,
    now: Timestamp,
) -> Decision {
    use Reason::*;
    let ctrl = controller(child, policy, now);
    if matches!(
        action,
        Action::Read | Action::Search | Action::History | Action::Export
    ) {
        return match identity {
            Identity::Staff(s) if !s.role.sees_child_records() => Decision::deny(DeniedRole),
            Identity::Staff(s)
                if child.in_care_team(Some(&s.practitioner), Some(&s.organisation)) =>
            {
                Decision::allow(AllowedCareTeam)
            }
            Identity::System(c) if c.regional => Decision::allow(AllowedRegionalSystem),
            Identity::System(c) if child.in_care_team(None, c.organisation.as_deref()) => {
                Decision::allow(AllowedCareTeam)
            }
            Identity::YoungPerson { patient } if *patient == child.patient => {
                Decision::allow(AllowedAsYoungPerson)
            }
            Identity::Family { person } => match child.family_link(person) {
                None => Decision::deny(DeniedNoRelationship),
                Some(l) if l.court_order.is_some() => Decision::deny(DeniedCourtOrder),
                Some(l) if l.parental_responsibility && !child.looked_after => {
                    Decision::allow(AllowedAsParent)
                }
                Some(l) if child.looked_after || l.role == FamilyRole::FosterCarer => {
                    Decision::deny(DeniedNotGranted)
                }
                Some(_) => Decision::deny(DeniedNoParentalResponsibility),
            },
            _ => Decision::deny(DeniedNoRelationship),
        };
    }
    let is_controller = match (ctrl, identity) {
        (Controller::YoungPerson, Identity::YoungPerson { patient }) => *patient == child.patient,
        (Controller::Parents, Identity::Family { person }) if !child.looked_after => {
            child.family_link(person).is_some_and(|l| {
                l.parental_responsibility
                    && l.court_order.is_none()
                    && l.role != FamilyRole::FosterCarer
            })
        }
        // Migrating existing sharing choices from another system.
        (_, Identity::System(c)) if c.regional => return Decision::allow(AllowedRegionalSystem),
        (Controller::Parents, Identity::Staff(s)) if child.looked_after => {
            s.role == Role::SocialWorker
                && child.in_care_team(Some(&s.practitioner), Some(&s.organisation))
        }
        _ => false,
    };
    if is_controller {
        Decision::allow(AllowedAsController)
    } else {
        Decision::deny(DeniedNotController)
    }
}

fn no_child(
    policy: &RegionalPolicy,
    identity: &Identity,
    action: Action,
    r: &ResourceFacts,
) -> Decision {
    use Reason::*;
    let _ = policy;
    // A card link opens one child's emergency content and nothing else.
    if matches!(identity, Identity::CardLink { .. }) {
        return Decision::deny(DeniedRole);
    }
    let ty = r.resource_type.as_str();
    if ty == "Patient" && action == Action::Create {
        let ok = match identity {
            Identity::Staff(s) => {
                matches!(
                    s.role,
                    Role::Clinician
                        | Role::Nurse
                        | Role::AlliedHealthProfessional
                        | Role::ClinicalAdmin
                ) && s.sector.is_health()
                    || s.role == Role::SocialWorker
            }
            Identity::System(c) => {
                c.regional
                    || c.organisation.is_some()
                        && (c.sector.is_health() || c.sector == Sector::SocialCare)
            }
            _ => false,
        };
        return if ok {
            Decision::allow(AllowedOnboarding)
        } else {
            Decision::deny(DeniedRole)
        };
    }
    // A regional integration also loads what belongs to no child (or to a child not yet
    // loaded: references may arrive before their target).
    if matches!(identity, Identity::System(c) if c.regional) {
        return Decision::allow(AllowedRegionalSystem);
    }
    if !r.sections.is_empty() || !REFERENCE_TYPES.contains(&ty) {
        return Decision::deny(DeniedMissingChildFacts);
    }
    if !action.is_write() {
        return Decision::allow(AllowedReferenceData);
    }
    let ok = match identity {
        Identity::Staff(s) => match s.role {
            Role::RegionalAdmin => true,
            Role::OrganisationAdmin => DIRECTORY_TYPES.contains(&ty),
            Role::Clinician | Role::Nurse | Role::AlliedHealthProfessional => {
                CLINICAL_REFERENCE_TYPES.contains(&ty)
            }
            _ => false,
        },
        // A regional integration loads the directory and reference data too.
        Identity::System(c) => {
            c.regional || c.sector.is_health() && CLINICAL_REFERENCE_TYPES.contains(&ty)
        }
        _ => false,
    };
    if ok {
        Decision::allow(AllowedAdministration)
    } else {
        Decision::deny(DeniedRole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::CareTeamMember;
    use crate::request_break_glass;
    use crate::scopes::Scopes;
    use crate::section::Section;

    fn clinician(role: Role, sector: Sector) -> Subject {
        Subject::session(Identity::Staff(Staff {
            practitioner: "dr".into(),
            role,
            organisation: "er".into(),
            sector,
            region: "north".into(),
            cleared: LabelSet::EMPTY,
        }))
    }

    #[test]
    fn break_glass_request_then_use_then_expiry() {
        let policy = RegionalPolicy::default();
        let now = Timestamp::parse("2026-05-01T12:00:00Z").unwrap();
        let mut child = ChildFacts::new("c1");
        let who = clinician(Role::Clinician, Sector::HospitalTrust);
        let emergency = ResourceFacts::new(
            "CarePlan",
            SectionSet::of(&[Section::Emergency]),
            LabelSet::EMPTY,
        );

        assert_eq!(
            decide(&policy, &who, Action::Read, &emergency, Some(&child), now).reason,
            Reason::DeniedNoRelationship
        );
        assert_eq!(
            request_break_glass(&policy, &who, &child, "  ", now),
            Err(Reason::DeniedBreakGlassNoReason)
        );
        // GP and community clinicians use their care-team relationship; other sectors
        // have no clinical roles.
        for (role, sector) in [
            (Role::Clinician, Sector::GpPractice),
            (Role::Nurse, Sector::CommunityHealth),
            (Role::Clinician, Sector::Education),
            (Role::ClinicalAdmin, Sector::HospitalTrust),
        ] {
            assert_eq!(
                request_break_glass(&policy, &clinician(role, sector), &child, "collapsed", now),
                Err(Reason::DeniedBreakGlassNotEligible),
                "{role:?} in {sector:?}"
            );
        }
        let nurse = clinician(Role::Nurse, Sector::HospitalTrust);
        assert!(request_break_glass(&policy, &nurse, &child, "collapsed", now).is_ok());
        let grant = request_break_glass(&policy, &who, &child, "collapsed at school", now).unwrap();
        assert_eq!(grant.expires.unix() - grant.starts.unix(), 4 * 3600);
        child.break_glass.push(grant);

        let d = decide(
            &policy,
            &who,
            Action::Read,
            &emergency,
            Some(&child),
            now.plus_seconds(3600),
        );
        assert!(d.is_break_glass());
        let later = now.plus_seconds(4 * 3600);
        assert_eq!(
            decide(&policy, &who, Action::Read, &emergency, Some(&child), later).reason,
            Reason::DeniedBreakGlassExpired
        );

        child
            .care_team
            .push(CareTeamMember::Organisation("er".into()));
        assert_eq!(
            request_break_glass(&policy, &who, &child, "x", now),
            Err(Reason::DeniedBreakGlassNotNeeded)
        );
        let d = decide(&policy, &who, Action::Read, &emergency, Some(&child), later);
        assert!(d.allow && !d.is_break_glass());
    }

    #[test]
    fn writes_need_every_tagged_section_reads_need_any() {
        let policy = RegionalPolicy::default();
        let now = Timestamp::parse("2026-05-01T12:00:00Z").unwrap();
        let mut child = ChildFacts::new("c1");
        child
            .care_team
            .push(CareTeamMember::Organisation("er".into()));
        let school = clinician(Role::SchoolStaff, Sector::Education);
        let both = ResourceFacts::new(
            "CarePlan",
            SectionSet::of(&[Section::Emergency, Section::Education]),
            LabelSet::EMPTY,
        );
        assert!(decide(&policy, &school, Action::Read, &both, Some(&child), now).allow);
        assert_eq!(
            decide(&policy, &school, Action::Update, &both, Some(&child), now).reason,
            Reason::DeniedReadOnly
        );
        let hidden = ResourceFacts::new(
            "CarePlan",
            SectionSet::of(&[Section::Conditions, Section::Education]),
            LabelSet::EMPTY,
        );
        assert_eq!(
            decide(&policy, &school, Action::Update, &hidden, Some(&child), now).reason,
            Reason::DeniedReadOnly
        );
    }

    #[test]
    fn a_policy_change_moves_the_defaults() {
        let mut policy = RegionalPolicy::default();
        policy.set_sector_default(Sector::Education, SectionSet::of(&[Section::Allergies]));
        let now = Timestamp::parse("2026-05-01T12:00:00Z").unwrap();
        let mut child = ChildFacts::new("c1");
        child
            .care_team
            .push(CareTeamMember::Organisation("er".into()));
        let school = clinician(Role::SchoolStaff, Sector::Education);
        let allergy = ResourceFacts::new(
            "AllergyIntolerance",
            SectionSet::of(&[Section::Allergies]),
            LabelSet::EMPTY,
        );
        assert_eq!(
            decide(&policy, &school, Action::Read, &allergy, Some(&child), now).reason,
            Reason::AllowedCareTeam
        );
        let scoped = Subject::new(
            school.identity.clone(),
            Scopes::parse("user/Condition.rs").unwrap(),
        );
        assert_eq!(
            decide(&policy, &scoped, Action::Read, &allergy, Some(&child), now).reason,
            Reason::DeniedScope
        );
    }
}
