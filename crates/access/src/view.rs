//! Visibility inside queries: the decision for [`Action::Search`] as data that a search
//! applies inside its SQL, so that hidden resources take no part in criteria, chains,
//! `_has`, `_include`, sorting, paging or totals (docs/SECURITY.md §5.4).
//!
//! Filtering results after the query runs leaks: whether a result comes back answers a
//! question about hidden data. So, per request, [`search_view`] turns the caller and the
//! facts of the children it relates to into a [`TypeView`] per resource type — which
//! children's resources it may find, under which [`Rule`] on the decision inputs the store
//! keeps per resource (its child, sections, labels, current-medicine flag) — and the store
//! restricts every subquery to the rows the view admits.
//!
//! It is built from the same steps as [`crate::decide`] (the scopes, the relationship,
//! the Consent and reference-data rules), and `tests::view_equals_decide` asserts, for
//! generated callers, children and resources, that [`TypeView::admits`] equals
//! `decide(Search).allow`. Reads by id still call [`crate::decide`] directly.

use crate::child::ChildFacts;
use crate::decide::{Access, REFERENCE_TYPES, consent, relationship};
use crate::emergency::EMERGENCY_SECTIONS;
use crate::label::LabelSet;
use crate::policy::RegionalPolicy;
use crate::redact::sees_hidden_address;
use crate::resource::{Action, ResourceFacts};
use crate::scopes::ScopeContext;
use crate::section::{Section, SectionSet};
use crate::subject::{Identity, Role, Subject};
use crate::time::Timestamp;

/// A test on a resource's decision inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The resource carries one of these sections...
    pub sections: SectionSet,
    /// ...or no section at all (when true)...
    pub untagged: bool,
    /// ...or is a current medicine (an active MedicationStatement in the medicines
    /// section: what break-glass opens beyond its sections).
    pub current_medicines: bool,
    /// And it carries one section of each of these (a granular `_tag` scope).
    pub tags: Vec<SectionSet>,
    /// And every security label it carries is one of these.
    pub cleared: LabelSet,
}

impl Rule {
    /// Everything in the record (Consent for those involved; the access log's reviewers).
    fn everything() -> Rule {
        Rule {
            sections: SectionSet::ALL,
            untagged: true,
            current_medicines: false,
            tags: Vec::new(),
            cleared: LabelSet::ALL,
        }
    }

    pub fn admits(&self, r: &ResourceFacts) -> bool {
        let sections = (r.sections.is_empty() && self.untagged)
            || r.sections.intersects(self.sections)
            || (self.current_medicines
                && r.active_medication
                && r.sections.contains(Section::Medicines));
        sections
            && r.labels.within(self.cleared)
            && self.tags.iter().all(|t| r.sections.intersects(*t))
    }
}

/// Whose records a [`Grant`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Children {
    /// Every child (a trusted regional system).
    All,
    /// These children only (logical ids of their Patients).
    Listed(Vec<String>),
}

impl Children {
    fn contains(&self, patient: &str) -> bool {
        match self {
            Children::All => true,
            Children::Listed(ids) => ids.iter().any(|p| p == patient),
        }
    }
}

/// Resources in these children's records that pass the rule are visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub children: Children,
    pub rule: Rule,
    /// The caller may see these children's addresses. Where false, criteria and sort keys
    /// on the elements [`crate::redact`] removes match nothing ([`redacted_param`]).
    pub address: bool,
}

/// What one caller may find among resources of one type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TypeView {
    /// Resources that belong to no child: visible if one of these rules admits them.
    pub no_child: Vec<Rule>,
    /// Resources in children's records: visible if, for every child whose record holds
    /// it, some grant naming that child admits it.
    pub grants: Vec<Grant>,
}

impl TypeView {
    /// Does the view admit a resource with these facts, in the records of `children`
    /// (empty: it belongs to no child)? The meaning the store's SQL must implement.
    pub fn admits(&self, r: &ResourceFacts, children: &[&str]) -> bool {
        if children.is_empty() {
            return self.no_child.iter().any(|rule| rule.admits(r));
        }
        children.iter().all(|p| self.grant_for(r, p).is_some())
    }

    /// The grant under which `patient`'s resource `r` is visible, if any.
    pub fn grant_for(&self, r: &ResourceFacts, patient: &str) -> Option<&Grant> {
        self.grants
            .iter()
            .find(|g| g.children.contains(patient) && g.rule.admits(r))
    }

    /// Nothing is visible.
    pub fn is_empty(&self) -> bool {
        self.no_child.is_empty() && self.grants.is_empty()
    }
}

/// Which children a caller may relate to: the server loads their facts for
/// [`search_view`]. A superset is harmless (the view decides per child); a child left
/// out is hidden from searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// No child's record.
    Nothing,
    /// Every child: the view needs no list.
    Everyone,
    /// Children whose care team names this practitioner or organisation, and children
    /// with a break-glass grant for the practitioner.
    CareTeam {
        practitioner: Option<String>,
        organisation: Option<String>,
    },
    /// Children this Person (a family sign-in) is linked to.
    Family { person: String },
    /// These children only.
    Listed(Vec<String>),
}

/// The children whose facts [`search_view`] needs for this subject.
pub fn reach(subject: &Subject) -> Reach {
    // Only `patient/` scopes: the launch patient at most.
    let scopes = &subject.scopes;
    if !scopes.is_unrestricted()
        && !scopes.resources.is_empty()
        && scopes
            .resources
            .iter()
            .all(|s| s.context == ScopeContext::Patient)
    {
        return match &scopes.patient {
            Some(p) => Reach::Listed(vec![p.clone()]),
            None => Reach::Nothing,
        };
    }
    match &subject.identity {
        Identity::Anonymous => Reach::Nothing,
        Identity::Staff(s) if !s.role.sees_child_records() => Reach::Nothing,
        Identity::Staff(s) => Reach::CareTeam {
            practitioner: Some(s.practitioner.clone()),
            organisation: Some(s.organisation.clone()),
        },
        Identity::System(c) if c.regional => Reach::Everyone,
        Identity::System(c) => match &c.organisation {
            Some(o) => Reach::CareTeam {
                practitioner: None,
                organisation: Some(o.clone()),
            },
            None => Reach::Nothing,
        },
        Identity::Family { person } => Reach::Family {
            person: person.clone(),
        },
        Identity::YoungPerson { patient } | Identity::CardLink { patient } => {
            Reach::Listed(vec![patient.clone()])
        }
    }
}

/// The patient id of [`typical_child`] (no FHIR id is empty).
pub const TYPICAL_CHILD: &str = "";

/// For a caller whose [`reach`] is a care team: the facts of a child in that care team
/// with nothing of its own that changes what the caller sees — no sharing choice in force
/// and no break-glass grant. Every such child gets the grants this one gets
/// (`tests::the_typical_child_stands_for_every_plain_child`), so the server passes this
/// child (patient [`TYPICAL_CHILD`]) instead of loading thousands, and the store applies
/// its grants to the children its care-team membership finds. Children with sharing
/// choices, break-glass grants or a launch context are passed with their own facts and
/// left out of those grants. `None` for other reaches.
pub fn typical_child(reach: &Reach) -> Option<ChildFacts> {
    let Reach::CareTeam {
        practitioner,
        organisation,
    } = reach
    else {
        return None;
    };
    let mut child = ChildFacts::new(TYPICAL_CHILD);
    if let Some(p) = practitioner {
        child
            .care_team
            .push(crate::child::CareTeamMember::Practitioner(p.clone()));
    }
    if let Some(o) = organisation {
        child
            .care_team
            .push(crate::child::CareTeamMember::Organisation(o.clone()));
    }
    Some(child)
}

/// The view of `resource_type` for `subject` listing resources with `action` —
/// [`Action::Search`] for searches, [`Action::History`] for history (stricter: break-glass
/// and patient scopes on reference data give no history) — given the facts of the
/// children in its [`reach`] (ignored for [`Reach::Everyone`]).
pub fn search_view<'a>(
    policy: &RegionalPolicy,
    subject: &Subject,
    action: Action,
    resource_type: &str,
    children: impl IntoIterator<Item = &'a ChildFacts>,
    now: Timestamp,
) -> TypeView {
    debug_assert!(matches!(action, Action::Search | Action::History));
    let identity = &subject.identity;
    let is_system = matches!(identity, Identity::System(_));
    let scopes = subject
        .scopes
        .search_scopes(resource_type, action, is_system);
    let mut view = TypeView::default();
    if matches!(identity, Identity::Anonymous) || scopes.is_empty() {
        return view;
    }
    let role = match identity {
        Identity::Staff(s) => Some(s.role),
        _ => None,
    };

    // What the caller may see, before the scopes narrow it: for no child, and per child.
    let mut no_child: Option<Rule> = None;
    let mut per_child: Vec<(Children, Rule, bool)> = Vec::new();
    if resource_type == "AuditEvent" {
        // The access log's reviewers see every record; nobody else any.
        if matches!(role, Some(Role::PrivacyOfficer | Role::RegionalAdmin)) {
            no_child = Some(Rule::everything());
            // (No address is ever shown through an AuditEvent: `address` plays no part.)
            per_child.push((Children::All, Rule::everything(), false));
        }
    } else {
        no_child = match identity {
            Identity::System(c) if c.regional => Some(Rule::everything()),
            Identity::CardLink { .. } => None,
            _ if REFERENCE_TYPES.contains(&resource_type) => Some(Rule {
                sections: SectionSet::EMPTY,
                untagged: true,
                current_medicines: false,
                tags: Vec::new(),
                cleared: LabelSet::ALL,
            }),
            _ => None,
        };
        if role != Some(Role::Commissioner) {
            match (identity, reach(subject)) {
                (Identity::System(c), Reach::Everyone) => {
                    let rule = if resource_type == "Consent" {
                        Rule::everything()
                    } else {
                        Rule {
                            cleared: c.cleared,
                            ..Rule::everything()
                        }
                    };
                    per_child.push((Children::All, rule, true));
                }
                (_, Reach::Nothing) => {}
                _ => {
                    for child in children {
                        if let Some(rule) =
                            child_rule(policy, identity, action, resource_type, child, now)
                        {
                            let address =
                                !child.address_hidden || sees_hidden_address(subject, child);
                            let id = child.patient.clone();
                            match per_child
                                .iter_mut()
                                .find(|(_, r, a)| *r == rule && *a == address)
                            {
                                Some((Children::Listed(ids), _, _)) => ids.push(id),
                                _ => per_child.push((Children::Listed(vec![id]), rule, address)),
                            }
                        }
                    }
                }
            }
        }
    }

    // The scopes narrow it: each scope that covers the type is one way to see.
    for scope in &scopes {
        if scope.no_child
            && let Some(rule) = &no_child
        {
            push_unique(
                &mut view.no_child,
                Rule {
                    tags: scope.tags.clone(),
                    ..rule.clone()
                },
            );
        }
        let Some(only) = &scope.child else { continue };
        for (children, rule, address) in &per_child {
            let children = match (only, children) {
                (None, c) => c.clone(),
                (Some(p), c) if c.contains(p) => Children::Listed(vec![p.clone()]),
                (Some(_), _) => continue,
            };
            let grant = Grant {
                children,
                rule: Rule {
                    tags: scope.tags.clone(),
                    ..rule.clone()
                },
                address: *address,
            };
            if !view.grants.contains(&grant) {
                view.grants.push(grant);
            }
        }
    }
    // A rule that admits only untagged resources but requires a section tag matches
    // nothing: drop it.
    view.no_child
        .retain(|r| !(r.sections.is_empty() && !r.current_medicines && !r.tags.is_empty()));
    view
}

fn push_unique(rules: &mut Vec<Rule>, rule: Rule) {
    if !rules.contains(&rule) {
        rules.push(rule);
    }
}

/// The rule for resources of `resource_type` in this child's record (before scopes).
fn child_rule(
    policy: &RegionalPolicy,
    identity: &Identity,
    action: Action,
    resource_type: &str,
    child: &ChildFacts,
    now: Timestamp,
) -> Option<Rule> {
    if resource_type == "Consent" {
        return consent(policy, identity, action, child, now)
            .allow
            .then(Rule::everything);
    }
    match relationship(policy, identity, child, now).ok()? {
        Access::Sections(a) => Some(Rule {
            sections: a.read,
            untagged: a.untagged,
            current_medicines: false,
            tags: Vec::new(),
            cleared: a.cleared,
        }),
        // Emergency access opens reading only: no history.
        Access::Emergency(_) if action != Action::Search => None,
        Access::Emergency(_) => Some(Rule {
            sections: EMERGENCY_SECTIONS,
            untagged: false,
            current_medicines: true,
            tags: Vec::new(),
            cleared: LabelSet::EMPTY,
        }),
    }
}

/// Is `param` of `resource_type` a search parameter on elements [`crate::redact`] removes
/// (the address of a child whose address is hidden, and of their family)? Criteria and
/// sort keys on it match only where the caller may see the address.
pub fn redacted_param(resource_type: &str, param: &str) -> bool {
    matches!(resource_type, "Patient" | "RelatedPerson") && param.starts_with("address")
}

#[cfg(test)]
mod tests;
