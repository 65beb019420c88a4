//! What a caller's search may see, applied inside the store's SQL (docs/SECURITY.md §5.4).
//!
//! [`CallerViews`] holds the facts of the children the caller may relate to
//! (`access::reach`, answered by one indexed query) and turns them, per resource type and
//! on demand, into the store's [`View`] with `access::search_view` — the decision's own
//! steps as data. The store only compares the bits it keeps per version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use access::{Action, ChildFacts, Children, Reach, Rule, Section, Subject, Timestamp, TypeView};
use passport_store::StoreError;
use passport_store::search::{CareTeamOf, GrantChildren, RowGrant, RowRule, View, Views};
use serde_json::Value;

use crate::Domain;
pub use crate::inputs::access_inputs;

/// How long a caller's views are reused (time-limited rules — a break-glass grant's
/// expiry, a sharing choice's end date — are seen within this).
const MAX_AGE_US: i64 = 1_000_000;
/// The most callers whose views are kept (emptied when full).
const MAX_CALLERS: usize = 10_000;

/// Callers' views, reused for a second and only while no child's facts have changed (see
/// `FactsCache::generation`), so a burst of searches by one caller loads the facts of the
/// children it relates to once.
#[derive(Default)]
pub struct ViewCache {
    /// Keyed by the subject itself (hashed per request: cheaper than rendering it).
    map: Mutex<HashMap<Subject, Kept>>,
    /// One load at a time per caller: concurrent requests of a caller whose views expired
    /// wait for the one load instead of each running it (a care team's few queries, a
    /// family's children's facts).
    loading: Mutex<HashMap<Subject, Arc<tokio::sync::Mutex<()>>>>,
}

/// Views kept: when built (µs), the facts generation they were built from, the views.
type Kept = (i64, u64, Arc<CallerViews>);

impl ViewCache {
    /// The views of `subject`: reused, or loaded (and kept).
    pub async fn get(
        &self,
        st: &Domain,
        subject: &Subject,
        now_us: i64,
        memo: &mut HashMap<String, Arc<ChildFacts>>,
    ) -> Result<Arc<CallerViews>, StoreError> {
        if let Some(v) = self.kept(subject, st.facts.generation(), now_us) {
            return Ok(v);
        }
        let gate = {
            let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            if loading.len() >= MAX_CALLERS {
                loading.retain(|_, g| Arc::strong_count(g) > 1);
            }
            loading.entry(subject.clone()).or_default().clone()
        };
        let _one_at_a_time = gate.lock().await;
        // Read before loading: a change while loading leaves the new views unkept.
        let generation = st.facts.generation();
        if let Some(v) = self.kept(subject, generation, now_us) {
            return Ok(v);
        }
        let now = crate::facts::timestamp(now_us);
        let v = Arc::new(CallerViews::load(st, subject, now, memo).await?);
        let mut map = self.lock();
        if map.len() >= MAX_CALLERS {
            map.clear();
        }
        map.insert(subject.clone(), (now_us, generation, v.clone()));
        Ok(v)
    }

    /// The views kept for `key`, if built from this generation less than
    /// [`MAX_AGE_US`] before `now_us`.
    fn kept(&self, key: &Subject, generation: u64, now_us: i64) -> Option<Arc<CallerViews>> {
        match self.lock().get(key) {
            Some((at, g, v)) if *g == generation && now_us - *at < MAX_AGE_US => Some(v.clone()),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, Kept>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One caller's views, per resource type.
pub struct CallerViews {
    policy: access::RegionalPolicy,
    subject: Subject,
    /// The children whose facts were loaded (for a care team: only its exceptions).
    children: Vec<Arc<ChildFacts>>,
    /// For a care-team reach: the typical child ([`access::typical_child`]), whose grants
    /// the store applies to every other child of the care team.
    care_team: Option<(ChildFacts, CareTeamOf)>,
    now: Timestamp,
    memo: Mutex<HashMap<Action, HashMap<String, Arc<View>>>>,
}

impl CallerViews {
    /// Loads the facts of every child in the caller's reach (cached per child).
    async fn load(
        st: &Domain,
        subject: &Subject,
        now: Timestamp,
        memo: &mut HashMap<String, Arc<ChildFacts>>,
    ) -> Result<CallerViews, StoreError> {
        let reach = access::reach(subject);
        let mut care_team = None;
        let ids = match &reach {
            Reach::Nothing | Reach::Everyone => Vec::new(),
            Reach::Listed(ids) => ids.clone(),
            // Not every child of the care team: the store finds them inside each query.
            // Only the children whose own facts may change the view are loaded: those with
            // sharing choices or break-glass grants, and the launch patient (a
            // patient-context scope names it).
            Reach::CareTeam {
                practitioner,
                organisation,
            } => {
                let mut of = CareTeamOf {
                    organisation: organisation.clone(),
                    practitioner: practitioner.clone(),
                    roles: match practitioner {
                        Some(p) => practitioner_roles(st, p).await?,
                        None => Vec::new(),
                    },
                    except: Vec::new(),
                    now: now.unix(),
                };
                let mut ids = st.store().care_team_exceptions(&of).await?;
                if let Some(p) = &subject.scopes.patient
                    && !ids.contains(p)
                {
                    ids.push(p.clone());
                }
                of.except = ids.clone();
                care_team = access::typical_child(&reach).map(|c| (c, of));
                ids
            }
            Reach::Family { person } => st.store().family_children(person).await?,
        };
        let mut children = Vec::with_capacity(ids.len());
        for id in ids {
            let facts = match memo.get(&id) {
                Some(f) => f.clone(),
                None => {
                    let f = crate::facts::child_facts(st, &id).await?;
                    memo.insert(id, f.clone());
                    f
                }
            };
            children.push(facts);
        }
        Ok(CallerViews {
            policy: st.policy.clone(),
            subject: subject.clone(),
            children,
            care_team,
            now,
            memo: Mutex::new(HashMap::new()),
        })
    }

    /// The `access` view of one type for `action` (search or history). For a care team,
    /// the grants of [`access::TYPICAL_CHILD`] stand for the care team's other children.
    pub fn type_view(&self, action: Action, resource_type: &str) -> TypeView {
        access::search_view(
            &self.policy,
            &self.subject,
            action,
            resource_type,
            self.children
                .iter()
                .map(|c| &**c)
                .chain(self.care_team.as_ref().map(|(c, _)| c)),
            self.now,
        )
    }

    /// The store's view of one type for `action`.
    fn store_view(&self, action: Action, resource_type: &str) -> View {
        let v = self.type_view(action, resource_type);
        let care_team = self.care_team.as_ref().map(|(_, of)| of);
        View {
            no_child: v.no_child.iter().map(row_rule).collect(),
            grants: v
                .grants
                .iter()
                .flat_map(|g| row_grants(g, care_team))
                .collect(),
        }
    }

    /// What searches may see.
    pub fn searching(&self) -> ActionViews<'_> {
        ActionViews {
            views: self,
            action: Action::Search,
        }
    }

    /// What history listings may see (stricter than searches: break-glass and patient
    /// scopes on reference data give no history).
    pub fn history(&self) -> ActionViews<'_> {
        ActionViews {
            views: self,
            action: Action::History,
        }
    }
}

/// A caller's views for one kind of listing, as the store applies them.
pub struct ActionViews<'a> {
    views: &'a CallerViews,
    action: Action,
}

impl Views for ActionViews<'_> {
    fn view(&self, resource_type: &str) -> Arc<View> {
        let mut memo = self.views.memo.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up by `&str`: no key is built for the (usual) hit.
        let of_action = memo.entry(self.action).or_default();
        if let Some(v) = of_action.get(resource_type) {
            return v.clone();
        }
        let v = Arc::new(self.views.store_view(self.action, resource_type));
        of_action.insert(resource_type.to_owned(), v.clone());
        v
    }

    fn redacted(&self, resource_type: &str, param: &str) -> bool {
        access::redacted_param(resource_type, param)
    }
}

/// The store's grants for one `access` grant: the typical child's stand for the care
/// team (`care_team`); the other children are listed.
fn row_grants(g: &access::Grant, care_team: Option<&CareTeamOf>) -> Vec<RowGrant> {
    let grant = |children| RowGrant {
        children,
        rule: row_rule(&g.rule),
        address: g.address,
    };
    match &g.children {
        Children::All => vec![grant(GrantChildren::All)],
        Children::Listed(ids) => {
            let mut out = Vec::new();
            let others: Vec<String> = ids
                .iter()
                .filter(|id| id.as_str() != access::TYPICAL_CHILD)
                .cloned()
                .collect();
            if let Some(of) = care_team.filter(|_| others.len() < ids.len()) {
                out.push(grant(GrantChildren::CareTeam(of.clone())));
            }
            if !others.is_empty() {
                out.push(grant(GrantChildren::Listed(others)));
            }
            out
        }
    }
}

/// The caller's PractitionerRoles, read as the child facts read a CareTeam member that is
/// a role (its current `practitioner` reference names the practitioner).
async fn practitioner_roles(st: &Domain, practitioner: &str) -> Result<Vec<String>, StoreError> {
    let target = format!("Practitioner/{practitioner}");
    let roles = crate::facts::referring(
        &st.records(),
        "PractitionerRole",
        "practitioner",
        "Practitioner",
        &[practitioner.to_owned()],
    )
    .await?;
    Ok(roles
        .iter()
        .filter(|r| {
            r.pointer("/practitioner/reference").and_then(Value::as_str) == Some(target.as_str())
        })
        .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect())
}

fn row_rule(r: &Rule) -> RowRule {
    let medicines = access::SectionSet::of(&[Section::Medicines]).bits();
    RowRule {
        sections: i64::from(r.sections.bits()),
        untagged: r.untagged,
        current_medicines: r.current_medicines.then_some(i64::from(medicines)),
        tags: r.tags.iter().map(|t| i64::from(t.bits())).collect(),
        not_cleared: i64::from(access::LabelSet::ALL.bits() & !r.cleared.bits()),
    }
}
