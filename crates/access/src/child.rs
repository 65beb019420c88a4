//! Facts about one child that callers load from the store and pass to [`crate::decide`]:
//! who their family is, who is in their care team, break-glass grants, sharing choices,
//! and growing up ([`controller`], [`handover_reminder_due`]).

use serde_json::Value;

use crate::consent::SharingChoices;
use crate::policy::RegionalPolicy;
use crate::section::SectionSet;
use crate::subject::Staff;
use crate::time::{Date, Timestamp};

/// How an adult family member is related to the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilyRole {
    Parent,
    FosterCarer,
    /// Grandparent, step-parent, other relative or carer.
    Other,
}

/// One adult's link to the child: their sign-in (Person) and their RelatedPerson.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyLink {
    /// Logical id of the Person (the sign-in account).
    pub person: String,
    /// Logical id of the RelatedPerson for this child.
    pub related_person: String,
    pub role: FamilyRole,
    pub parental_responsibility: bool,
    /// Sections a court order withholds from this person ([`SectionSet::ALL`] = the whole
    /// passport); `None` if no order.
    pub court_order: Option<SectionSet>,
    /// Sections the child's social worker has granted (foster carers; and every family
    /// member of a looked-after child). Ignored for others.
    pub granted: SectionSet,
}

impl FamilyLink {
    pub fn new(
        person: &str,
        related_person: &str,
        role: FamilyRole,
        parental_responsibility: bool,
    ) -> FamilyLink {
        FamilyLink {
            person: person.to_owned(),
            related_person: related_person.to_owned(),
            role,
            parental_responsibility,
            court_order: None,
            granted: SectionSet::EMPTY,
        }
    }
}

/// A participant in one of the child's *active* CareTeams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CareTeamMember {
    /// Logical id of a Practitioner.
    Practitioner(String),
    /// Logical id of an Organization (every member of its staff is related).
    Organisation(String),
}

/// Who a CareTeam participant reference names, as stored for searches (see
/// [`CareTeamMember::spans`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberKind {
    Practitioner,
    Organisation,
    /// A PractitionerRole: the practitioner it names (resolved when it is used, as a role
    /// can change after the CareTeam was written).
    PractitionerRole,
}

/// One member of one CareTeam and when it is a member: from the later of the team's and
/// the participant's `period.start` (inclusive) to the earlier of their ends (exclusive);
/// `None` is open. A team whose `status` is not `active` has no spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpan {
    pub kind: MemberKind,
    /// Logical id of the Practitioner, Organization or PractitionerRole.
    pub id: String,
    pub starts: Option<Timestamp>,
    pub ends: Option<Timestamp>,
}

impl MemberSpan {
    pub fn covers(&self, now: Timestamp) -> bool {
        now.within(self.starts, self.ends)
    }
}

impl CareTeamMember {
    /// Members of the CareTeams that are active now: `status` `active`, `period` covering
    /// now, and each participant's own `period` covering now. Reads `member`
    /// (`Practitioner/…`, `Organization/…`, `PractitionerRole/…` is not resolved here —
    /// callers resolve PractitionerRoles to their practitioner and organisation) and
    /// `onBehalfOf` (`Organization/…`). The same reading as [`CareTeamMember::spans`],
    /// which searches use.
    pub fn from_care_teams(care_teams: &[Value], now: Timestamp) -> Vec<CareTeamMember> {
        let mut out = Vec::new();
        for span in care_teams.iter().flat_map(CareTeamMember::spans) {
            if !span.covers(now) {
                continue;
            }
            let m = match span.kind {
                MemberKind::Practitioner => CareTeamMember::Practitioner(span.id),
                MemberKind::Organisation => CareTeamMember::Organisation(span.id),
                MemberKind::PractitionerRole => continue,
            };
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }

    /// Every member of one CareTeam with the time it is a member (empty unless the team's
    /// `status` is `active`). Kept beside the CareTeam by the store, so that a search can
    /// find the children whose care team names a caller without loading every child.
    pub fn spans(team: &Value) -> Vec<MemberSpan> {
        if team.get("resourceType").and_then(Value::as_str) != Some("CareTeam")
            || team.get("status").and_then(Value::as_str) != Some("active")
        {
            return Vec::new();
        }
        let at = |v: &Value, k: &str| {
            v.pointer(&format!("/period/{k}"))
                .and_then(Value::as_str)
                .and_then(|s| Timestamp::parse(s).ok())
        };
        let later = |a: Option<Timestamp>, b: Option<Timestamp>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let earlier = |a: Option<Timestamp>, b: Option<Timestamp>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (team_starts, team_ends) = (at(team, "start"), at(team, "end"));
        let mut out = Vec::new();
        for p in team
            .get("participant")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let starts = later(team_starts, at(p, "start"));
            let ends = earlier(team_ends, at(p, "end"));
            for key in ["member", "onBehalfOf"] {
                let r = p
                    .pointer(&format!("/{key}/reference"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let (kind, id) = if let Some(id) = r.strip_prefix("Practitioner/") {
                    (MemberKind::Practitioner, id)
                } else if let Some(id) = r.strip_prefix("Organization/") {
                    (MemberKind::Organisation, id)
                } else if let Some(id) = r.strip_prefix("PractitionerRole/") {
                    (MemberKind::PractitionerRole, id)
                } else {
                    continue;
                };
                let span = MemberSpan {
                    kind,
                    id: id.to_owned(),
                    starts,
                    ends,
                };
                if !out.contains(&span) {
                    out.push(span);
                }
            }
        }
        out
    }
}

/// A break-glass grant: a clinician with no relationship to the child opened the
/// emergency content, stating a reason, until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassGrant {
    /// Logical id of the Practitioner.
    pub practitioner: String,
    pub reason: String,
    pub starts: Timestamp,
    pub expires: Timestamp,
}

impl BreakGlassGrant {
    /// A grant starting now for the policy's break-glass duration.
    pub fn new(
        staff: &Staff,
        reason: &str,
        now: Timestamp,
        policy: &RegionalPolicy,
    ) -> BreakGlassGrant {
        BreakGlassGrant {
            practitioner: staff.practitioner.clone(),
            reason: reason.to_owned(),
            starts: now,
            expires: now.plus_seconds(policy.break_glass_seconds),
        }
    }
    pub fn active(&self, now: Timestamp) -> bool {
        self.starts <= now && now < self.expires
    }
}

/// Everything about one child the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildFacts {
    /// The child's Patient logical id.
    pub patient: String,
    pub birth_date: Option<Date>,
    /// A clinician has recorded that the young person is Gillick competent: they control
    /// the passport before the hand-over age.
    pub gillick_competent: bool,
    /// A clinician has recorded that the young person lacks capacity: the hand-over is
    /// held and parents stay in control.
    pub lacks_capacity: bool,
    /// The local authority holds parental responsibility; family members see only what
    /// the social worker grants them ([`FamilyLink::granted`]).
    pub looked_after: bool,
    /// The child's address must never be shown outside the care team
    /// (see [`crate::redact`]).
    pub address_hidden: bool,
    pub family: Vec<FamilyLink>,
    /// Members of the child's active CareTeams.
    pub care_team: Vec<CareTeamMember>,
    pub break_glass: Vec<BreakGlassGrant>,
    pub sharing: SharingChoices,
}

impl ChildFacts {
    pub fn new(patient: &str) -> ChildFacts {
        ChildFacts {
            patient: patient.to_owned(),
            birth_date: None,
            gillick_competent: false,
            lacks_capacity: false,
            looked_after: false,
            address_hidden: false,
            family: Vec::new(),
            care_team: Vec::new(),
            break_glass: Vec::new(),
            sharing: SharingChoices::default(),
        }
    }

    /// Is this member of staff (or their organisation) in the child's care team?
    pub fn in_care_team(&self, practitioner: Option<&str>, organisation: Option<&str>) -> bool {
        self.care_team.iter().any(|m| match m {
            CareTeamMember::Practitioner(p) => Some(p.as_str()) == practitioner,
            CareTeamMember::Organisation(o) => Some(o.as_str()) == organisation,
        })
    }

    pub fn family_link(&self, person: &str) -> Option<&FamilyLink> {
        self.family.iter().find(|l| l.person == person)
    }
}

/// Who controls the passport: decides sharing choices and what parents see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// The adults with parental responsibility (for a looked-after child, the local
    /// authority, acting through the child's social worker).
    Parents,
    YoungPerson,
}

/// The date the young person takes control (birth date + hand-over age), if the birth
/// date is known. Gillick competence and lack of capacity do not move it; they override
/// it (see [`controller`]).
pub fn handover_date(child: &ChildFacts, policy: &RegionalPolicy) -> Option<Date> {
    child
        .birth_date
        .map(|b| b.add_years(i32::from(policy.handover_age)))
}

/// Who controls the passport now. Lack of capacity holds the hand-over (parents stay);
/// recorded Gillick competence brings it forward; otherwise the young person takes over
/// from the start (midnight UTC) of their hand-over birthday. Unknown birth date: parents.
pub fn controller(child: &ChildFacts, policy: &RegionalPolicy, now: Timestamp) -> Controller {
    if child.lacks_capacity {
        Controller::Parents
    } else if child.gillick_competent
        || handover_date(child, policy).is_some_and(|d| d <= now.date())
    {
        Controller::YoungPerson
    } else {
        Controller::Parents
    }
}

/// True when the hand-over is coming within `lead_days` days (and has not happened, is not
/// held by lack of capacity, and has not been brought forward by Gillick competence):
/// time to remind the family and the young person.
pub fn handover_reminder_due(
    child: &ChildFacts,
    policy: &RegionalPolicy,
    now: Timestamp,
    lead_days: u32,
) -> bool {
    if controller(child, policy, now) != Controller::Parents || child.lacks_capacity {
        return false;
    }
    handover_date(child, policy).is_some_and(|d| {
        let days = now.date().days_until(d);
        days > 0 && days <= i64::from(lead_days)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn child(birth: &str) -> ChildFacts {
        let mut c = ChildFacts::new("p1");
        c.birth_date = Some(Date::parse(birth).unwrap());
        c
    }

    #[test]
    fn control_passes_on_the_sixteenth_birthday() {
        let p = RegionalPolicy::default();
        let c = child("2010-06-15");
        assert_eq!(
            controller(&c, &p, at("2026-06-14T23:59:59Z")),
            Controller::Parents
        );
        assert_eq!(
            controller(&c, &p, at("2026-06-15T00:00:00Z")),
            Controller::YoungPerson
        );
        let mut gillick = c.clone();
        gillick.gillick_competent = true;
        assert_eq!(
            controller(&gillick, &p, at("2024-01-01T00:00:00Z")),
            Controller::YoungPerson
        );
        let mut held = c.clone();
        held.lacks_capacity = true;
        assert_eq!(
            controller(&held, &p, at("2030-01-01T00:00:00Z")),
            Controller::Parents
        );
        assert_eq!(
            controller(&ChildFacts::new("x"), &p, at("2030-01-01T00:00:00Z")),
            Controller::Parents
        );
    }

    #[test]
    fn reminders_fall_in_the_lead_window_only() {
        let p = RegionalPolicy::default();
        let c = child("2010-06-15");
        assert!(!handover_reminder_due(
            &c,
            &p,
            at("2026-03-01T09:00:00Z"),
            90
        ));
        assert!(handover_reminder_due(
            &c,
            &p,
            at("2026-03-17T09:00:00Z"),
            90
        ));
        assert!(handover_reminder_due(
            &c,
            &p,
            at("2026-06-14T09:00:00Z"),
            90
        ));
        assert!(!handover_reminder_due(
            &c,
            &p,
            at("2026-06-15T09:00:00Z"),
            90
        ));
        let mut held = c.clone();
        held.lacks_capacity = true;
        assert!(!handover_reminder_due(
            &held,
            &p,
            at("2026-06-01T09:00:00Z"),
            90
        ));
        let mut gillick = c;
        gillick.gillick_competent = true;
        assert!(!handover_reminder_due(
            &gillick,
            &p,
            at("2026-06-01T09:00:00Z"),
            90
        ));
    }

    #[test]
    fn reads_active_care_team_members() {
        let now = at("2026-05-01T12:00:00Z");
        let teams = [
            json!({"resourceType": "CareTeam", "status": "active", "participant": [
                {"member": {"reference": "Practitioner/dr-a"}, "onBehalfOf": {"reference": "Organization/trust"}},
                {"member": {"reference": "Organization/school"}},
                {"member": {"reference": "Practitioner/left"}, "period": {"end": "2026-01-01"}},
                {"member": {"reference": "RelatedPerson/mum"}}
            ]}),
            json!({"resourceType": "CareTeam", "status": "inactive", "participant": [
                {"member": {"reference": "Practitioner/old"}}]}),
            json!({"resourceType": "CareTeam", "status": "active", "period": {"end": "2026-04-01"}, "participant": [
                {"member": {"reference": "Practitioner/ended"}}]}),
        ];
        let m = CareTeamMember::from_care_teams(&teams, now);
        assert_eq!(
            m,
            [
                CareTeamMember::Practitioner("dr-a".into()),
                CareTeamMember::Organisation("trust".into()),
                CareTeamMember::Organisation("school".into()),
            ]
        );
    }
}
