//! SMART on FHIR scopes: parsing and "does this token allow this interaction".
//!
//! Supported forms:
//! - v2: `patient/Condition.rs`, `user/*.cruds`, `system/*.rs`, with an optional granular
//!   query `patient/Observation.rs?category=laboratory`. The permission letters must be a
//!   non-empty subsequence of `cruds` in that order.
//! - v1: `patient/*.read`, `user/Observation.write`, `system/*.*`
//!   (read = `rs`, write = `cud`, `*` = `cruds`).
//! - `openid`, `fhirUser`, `profile`, `launch`, `launch/patient`, `launch/encounter`,
//!   `offline_access`, `online_access`; anything else is kept in [`Scopes::other`] and
//!   grants nothing.
//!
//! Scopes only ever narrow: [`crate::decide`] allows an interaction only if the policy
//! allows it *and* a scope covers it. `patient/` scopes cover only the launch patient's
//! compartment (plus reading non-patient reference data such as Organization); `user/`
//! scopes count only for people, `system/` scopes only for backend clients.
//!
//! Granular queries are treated conservatively: the only parameter understood is `_tag`
//! with passport section codes (`?_tag=<section system>|medicines`, comma = or), checked
//! against the resource's own tags. A scope with any other query grants nothing here; the
//! API layer may still use it to narrow a search.

use crate::AccessError;
use crate::resource::{Action, ResourceFacts};
use crate::section::{SECTION_SYSTEM, Section, SectionSet};

/// The compartment a resource scope applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeContext {
    Patient,
    User,
    System,
}

/// Permission letters (`c r u d s`) as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    pub const CREATE: Permissions = Permissions(1);
    pub const READ: Permissions = Permissions(2);
    pub const UPDATE: Permissions = Permissions(4);
    pub const DELETE: Permissions = Permissions(8);
    pub const SEARCH: Permissions = Permissions(16);
    pub const ALL: Permissions = Permissions(31);

    pub const fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }
    const fn union(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }

    /// Letters needed for an action: read/history `r`, search `s`, create `c`, update
    /// `u`, delete `d`, export `rs`, aggregate `r` (on `MeasureReport`).
    pub const fn for_action(action: Action) -> Permissions {
        match action {
            Action::Read | Action::History | Action::Aggregate => Permissions::READ,
            Action::Search => Permissions::SEARCH,
            Action::Create => Permissions::CREATE,
            Action::Update => Permissions::UPDATE,
            Action::Delete => Permissions::DELETE,
            Action::Export => Permissions::READ.union(Permissions::SEARCH),
        }
    }

    fn parse_v2(s: &str) -> Option<Permissions> {
        let mut bits = Permissions::default();
        let mut next = 0;
        for ch in s.chars() {
            let pos = "cruds".find(ch)?;
            if pos < next {
                return None;
            }
            next = pos + 1;
            bits.0 |= 1 << pos;
        }
        (bits.0 != 0).then_some(bits)
    }
}

/// One resource scope, e.g. `patient/Condition.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    pub context: ScopeContext,
    /// `None` for `*`.
    pub resource_type: Option<String>,
    pub permissions: Permissions,
    /// Granular query parameters (`?a=b&c=d`), in order.
    pub query: Vec<(String, String)>,
    /// Written in SMART v1 syntax (`.read`, `.write`, `.*`).
    pub v1: bool,
}

impl ResourceScope {
    fn parse(token: &str) -> Result<Option<ResourceScope>, AccessError> {
        let bad = || AccessError::InvalidScope(token.to_owned());
        let Some((ctx, rest)) = token.split_once('/') else {
            return Ok(None);
        };
        let context = match ctx {
            "patient" => ScopeContext::Patient,
            "user" => ScopeContext::User,
            "system" => ScopeContext::System,
            _ => return Ok(None),
        };
        let (body, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (ty, perms) = body.split_once('.').ok_or_else(bad)?;
        let resource_type = match ty {
            "*" => None,
            t if t.starts_with(|c: char| c.is_ascii_uppercase())
                && t.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                Some(t.to_owned())
            }
            _ => return Err(bad()),
        };
        let (permissions, v1) = match perms {
            "read" => (Permissions::READ.union(Permissions::SEARCH), true),
            "write" => (
                Permissions::CREATE
                    .union(Permissions::UPDATE)
                    .union(Permissions::DELETE),
                true,
            ),
            "*" => (Permissions::ALL, true),
            p => (Permissions::parse_v2(p).ok_or_else(bad)?, false),
        };
        let mut pairs = Vec::new();
        if let Some(q) = query {
            if v1 || q.is_empty() {
                return Err(bad());
            }
            for part in q.split('&') {
                let (k, v) = part.split_once('=').ok_or_else(bad)?;
                if k.is_empty() {
                    return Err(bad());
                }
                pairs.push((k.to_owned(), v.to_owned()));
            }
        }
        Ok(Some(ResourceScope {
            context,
            resource_type,
            permissions,
            query: pairs,
            v1,
        }))
    }

    fn covers_type(&self, resource_type: &str) -> bool {
        self.resource_type
            .as_deref()
            .is_none_or(|t| t == resource_type)
    }

    /// Whether the granular query (if any) is satisfied by the resource's facts.
    fn query_matches(&self, resource: Option<&ResourceFacts>) -> bool {
        self.query.iter().all(|(k, v)| {
            k == "_tag"
                && resource.is_some_and(|r| {
                    v.split(',').any(|alt| {
                        alt.split_once('|')
                            .filter(|(sys, _)| *sys == SECTION_SYSTEM)
                            .and_then(|(_, code)| Section::from_code(code))
                            .is_some_and(|s| r.sections.contains(s))
                    })
                })
        })
    }
}

/// Outcome of checking a token's scopes against one interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeCheck {
    Granted,
    /// No scope covers this type and action.
    NotCovered,
    /// Only `patient/` scopes cover it, and the resource is another patient's.
    OtherPatient,
}

/// The scopes of one token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Scopes {
    unrestricted: bool,
    pub resources: Vec<ResourceScope>,
    pub openid: bool,
    pub fhir_user: bool,
    pub profile: bool,
    pub launch: bool,
    pub launch_patient: bool,
    pub launch_encounter: bool,
    pub offline_access: bool,
    pub online_access: bool,
    pub other: Vec<String>,
    /// The patient in context (from the launch), which `patient/` scopes are limited to.
    pub patient: Option<String>,
}

impl Scopes {
    /// No token: the passport's own pages, where only the policy applies.
    pub fn unrestricted() -> Scopes {
        Scopes {
            unrestricted: true,
            ..Scopes::default()
        }
    }

    pub fn is_unrestricted(&self) -> bool {
        self.unrestricted
    }

    /// Parses a space-separated scope string. A token that looks like a resource scope
    /// but is malformed (`patient/Condition.xyz`) is an error, so the authorisation
    /// server can refuse it when the client asks rather than silently grant less.
    pub fn parse(s: &str) -> Result<Scopes, AccessError> {
        let mut scopes = Scopes::default();
        for token in s.split_ascii_whitespace() {
            match token {
                "openid" => scopes.openid = true,
                "fhirUser" => scopes.fhir_user = true,
                "profile" => scopes.profile = true,
                "launch" => scopes.launch = true,
                "launch/patient" => scopes.launch_patient = true,
                "launch/encounter" => scopes.launch_encounter = true,
                "offline_access" => scopes.offline_access = true,
                "online_access" => scopes.online_access = true,
                t => match ResourceScope::parse(t)? {
                    Some(rs) => scopes.resources.push(rs),
                    None => scopes.other.push(t.to_owned()),
                },
            }
        }
        Ok(scopes)
    }

    /// Sets the launch patient that `patient/` scopes are limited to.
    pub fn with_patient(mut self, patient: impl Into<String>) -> Scopes {
        self.patient = Some(patient.into());
        self
    }

    /// Does any non-granular scope allow `action` on `resource_type` at all (ignoring
    /// which patient)? Cheap pre-check for a type-level search or a capability answer.
    pub fn permits(&self, resource_type: &str, action: Action) -> bool {
        self.unrestricted
            || self.resources.iter().any(|s| {
                s.query.is_empty()
                    && s.covers_type(resource_type)
                    && s.permissions.contains(Permissions::for_action(action))
            })
    }

    /// Does any scope cover `action` on `resource_type` at all — granular or not, for any
    /// patient? `is_system` as in [`Scopes::check`]. When this is false the token was
    /// never given this type, and reading or searching it is refused as such (403
    /// `insufficient_scope`) rather than answered as if there were nothing there: for an
    /// app, an empty list of allergies must mean "none recorded", never "not asked for".
    /// When it is true, individual resources the scopes do not reach (another patient's,
    /// outside a granular query) are still hidden exactly as missing ones are.
    pub fn covers(&self, resource_type: &str, action: Action, is_system: bool) -> bool {
        if self.unrestricted {
            return true;
        }
        let needed = Permissions::for_action(action);
        self.resources.iter().any(|s| {
            s.covers_type(resource_type)
                && s.permissions.contains(needed)
                && match s.context {
                    ScopeContext::System => is_system,
                    ScopeContext::User => !is_system,
                    ScopeContext::Patient => self.patient.is_some(),
                }
        })
    }

    /// The scope a token would need for `action` on `resource_type`, to name in an
    /// `insufficient_scope` answer: `system/` for a backend client, `patient/` for an app
    /// launched with a patient whose token has patient scopes, `user/` otherwise; the
    /// letters the action needs (`r` to read or see history, `s` to search…).
    pub fn needed_scope(&self, resource_type: &str, action: Action, is_system: bool) -> String {
        let context = if is_system {
            "system"
        } else if self.patient.is_some()
            && self
                .resources
                .iter()
                .any(|s| s.context == ScopeContext::Patient)
        {
            "patient"
        } else {
            "user"
        };
        let needed = Permissions::for_action(action);
        let letters: String = "cruds"
            .chars()
            .enumerate()
            .filter(|(i, _)| needed.contains(Permissions(1 << i)))
            .map(|(_, c)| c)
            .collect();
        format!("{context}/{resource_type}.{letters}")
    }

    /// The full check used by [`crate::decide`]: `is_system` says whether the subject is a
    /// backend client (`system/` scopes) or a person (`user/` scopes); `child_patient` is
    /// the logical id of the child whose compartment the resource is in (`None` for
    /// reference data).
    pub fn check(
        &self,
        resource: &ResourceFacts,
        action: Action,
        is_system: bool,
        child_patient: Option<&str>,
    ) -> ScopeCheck {
        if self.unrestricted {
            return ScopeCheck::Granted;
        }
        let needed = Permissions::for_action(action);
        let mut other_patient = false;
        for s in &self.resources {
            if !s.covers_type(&resource.resource_type)
                || !s.permissions.contains(needed)
                || !s.query_matches(Some(resource))
            {
                continue;
            }
            let fits = match s.context {
                ScopeContext::System => is_system,
                ScopeContext::User => !is_system,
                ScopeContext::Patient => match (child_patient, self.patient.as_deref()) {
                    (Some(child), Some(launch)) if child == launch => true,
                    (Some(_), _) => {
                        other_patient = true;
                        false
                    }
                    // Reference data (not in any patient's compartment): reading only.
                    (None, Some(_)) => matches!(action, Action::Read | Action::Search),
                    (None, None) => false,
                },
            };
            if fits {
                return ScopeCheck::Granted;
            }
        }
        if other_patient {
            ScopeCheck::OtherPatient
        } else {
            ScopeCheck::NotCovered
        }
    }
}

/// One way a token's scopes let a search (or a history listing) see resources of one
/// type: the query form of [`Scopes::check`], used by [`crate::search_view`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchScope {
    /// Resources in a child's record: of any child (`Some(None)`), only of the launch
    /// patient (`Some(Some(id))`), or none (`None`).
    pub child: Option<Option<String>>,
    /// Resources that belong to no child.
    pub no_child: bool,
    /// Section tags the resource must carry: one of each set (a granular `_tag` query).
    pub tags: Vec<SectionSet>,
}

impl Scopes {
    /// The scopes that let `action` (search or history) see resources of `resource_type` at
    /// all, each as a [`SearchScope`]; empty when none does. Mirrors [`Scopes::check`].
    pub(crate) fn search_scopes(
        &self,
        resource_type: &str,
        action: Action,
        is_system: bool,
    ) -> Vec<SearchScope> {
        if self.unrestricted {
            return vec![SearchScope {
                child: Some(None),
                no_child: true,
                tags: Vec::new(),
            }];
        }
        let needed = Permissions::for_action(action);
        let mut out = Vec::new();
        for s in &self.resources {
            if !s.covers_type(resource_type) || !s.permissions.contains(needed) {
                continue;
            }
            let Some(tags) = s.tag_requirements() else {
                continue;
            };
            let (child, no_child) = match s.context {
                ScopeContext::System => (is_system.then_some(None), is_system),
                ScopeContext::User => ((!is_system).then_some(None), !is_system),
                // Reference data through a patient scope: reading and searching only.
                ScopeContext::Patient => (
                    self.patient.clone().map(Some),
                    self.patient.is_some() && matches!(action, Action::Read | Action::Search),
                ),
            };
            if child.is_some() || no_child {
                out.push(SearchScope {
                    child,
                    no_child,
                    tags,
                });
            }
        }
        out
    }
}

impl ResourceScope {
    /// The granular query as section-tag requirements (one of each set), or `None` if it
    /// can match nothing (another parameter, or no known section) — as [`Self::query_matches`].
    fn tag_requirements(&self) -> Option<Vec<SectionSet>> {
        let mut out = Vec::new();
        for (k, v) in &self.query {
            if k != "_tag" {
                return None;
            }
            let mut set = SectionSet::EMPTY;
            for alt in v.split(',') {
                if let Some(s) = alt
                    .split_once('|')
                    .filter(|(sys, _)| *sys == SECTION_SYSTEM)
                    .and_then(|(_, code)| Section::from_code(code))
                {
                    set.insert(s);
                }
            }
            if set.is_empty() {
                return None;
            }
            out.push(set);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_v2_and_launch_scopes() {
        let s = Scopes::parse(
            "openid fhirUser launch launch/patient offline_access patient/Condition.rs user/*.cruds system/*.* user/Observation.write patient/*.read email",
        )
        .unwrap();
        assert!(s.openid && s.fhir_user && s.launch && s.launch_patient && s.offline_access);
        assert_eq!(s.resources.len(), 5);
        assert_eq!(s.other, ["email"]);
        let cond = &s.resources[0];
        assert_eq!(cond.context, ScopeContext::Patient);
        assert_eq!(cond.resource_type.as_deref(), Some("Condition"));
        assert!(
            cond.permissions
                .contains(Permissions::READ.union(Permissions::SEARCH))
        );
        assert!(!cond.permissions.contains(Permissions::UPDATE));
        assert!(s.resources[2].v1 && s.resources[2].permissions == Permissions::ALL);
        assert_eq!(s.resources[3].permissions.0, 1 | 4 | 8);
    }

    #[test]
    fn rejects_malformed_resource_scopes() {
        for bad in [
            "patient/Condition.xyz",
            "patient/Condition.sr",
            "patient/Condition",
            "user/condition.r",
            "user/Observation.read?category=x",
            "user/Observation.rs?",
            "user/Observation.rs?=x",
        ] {
            assert!(Scopes::parse(bad).is_err(), "{bad}");
        }
        let s = Scopes::parse("patient/Observation.rs?category=laboratory&code=x").unwrap();
        assert_eq!(
            s.resources[0].query,
            [
                ("category".into(), "laboratory".into()),
                ("code".into(), "x".into())
            ]
        );
    }

    #[test]
    fn covers_counts_granular_scopes_and_the_context() {
        let s = Scopes::parse(
            "user/Condition.rs user/Observation.rs?category=vital-signs user/MedicationStatement.rs?_tag=x",
        )
        .unwrap();
        for ty in ["Condition", "Observation", "MedicationStatement"] {
            assert!(s.covers(ty, Action::Read, false), "{ty}");
            assert!(s.covers(ty, Action::Search, false), "{ty}");
            // user/ scopes do nothing for a backend client.
            assert!(!s.covers(ty, Action::Read, true), "{ty}");
        }
        assert!(!s.covers("AllergyIntolerance", Action::Search, false));
        assert!(!s.covers("Condition", Action::Update, false));
        assert_eq!(
            s.needed_scope("AllergyIntolerance", Action::Search, false),
            "user/AllergyIntolerance.s"
        );
        let read_only = Scopes::parse("user/AllergyIntolerance.r").unwrap();
        assert!(read_only.covers("AllergyIntolerance", Action::Read, false));
        assert!(!read_only.covers("AllergyIntolerance", Action::Search, false));
        // patient/ scopes cover their types once a patient is in context.
        let p = Scopes::parse("launch/patient patient/Observation.rs?_tag=x").unwrap();
        assert!(!p.covers("Observation", Action::Search, false));
        let p = p.with_patient("child-1");
        assert!(p.covers("Observation", Action::Search, false));
        assert!(!p.covers("Condition", Action::Read, false));
        assert_eq!(
            p.needed_scope("Condition", Action::Read, false),
            "patient/Condition.r"
        );
        let sys = Scopes::parse("system/Patient.rs").unwrap();
        assert!(sys.covers("Patient", Action::Read, true));
        assert_eq!(
            sys.needed_scope("Condition", Action::History, true),
            "system/Condition.r"
        );
        assert!(Scopes::unrestricted().covers("Anything", Action::Search, false));
        assert!(
            !Scopes::parse("openid fhirUser")
                .unwrap()
                .covers("Patient", Action::Read, false)
        );
    }

    #[test]
    fn permits_ignores_granular_scopes() {
        let s =
            Scopes::parse("user/Condition.rs user/Observation.rs?category=vital-signs").unwrap();
        assert!(s.permits("Condition", Action::Read));
        assert!(s.permits("Condition", Action::Search));
        assert!(s.permits("Condition", Action::Export));
        assert!(!s.permits("Condition", Action::Update));
        assert!(!s.permits("Observation", Action::Read));
        assert!(Scopes::unrestricted().permits("Anything", Action::Delete));
        assert!(
            !Scopes::parse("openid fhirUser")
                .unwrap()
                .permits("Patient", Action::Read)
        );
    }
}
