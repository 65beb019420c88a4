//! What a caller's search may see, applied inside the store's SQL (docs/SECURITY.md §5.4).
//!
//! [`CallerViews`] holds the facts of the children the caller may relate to
//! (`access::reach`, answered by one indexed query) and turns them, per resource type and
//! on demand, into the store's [`View`] with `access::search_view` — the decision's own
//! steps as data. The store only compares the bits it keeps per version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use access::{Action, ChildFacts, Children, Reach, Rule, Section, Subject, Timestamp, TypeView};
use passport_store::search::{ChildrenQuery, RowGrant, RowRule, View, Views};
use passport_store::{AccessInputs, StoreError};
use serde_json::Value;

use crate::AppState;

/// The decision's inputs the store keeps beside a version: its children (compartment),
/// sections, labels and current-medicine flag, read by the `access` crate's own readers.
pub fn access_inputs(resource: &Value) -> AccessInputs {
    let facts = access::ResourceFacts::from_json(resource);
    AccessInputs {
        patients: fhir::compartment::patients_of(resource),
        sections: facts.sections.bits(),
        labels: facts.labels.bits(),
        active_medication: facts.active_medication,
    }
}

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
    map: Mutex<HashMap<String, Kept>>,
}

/// Views kept: when built (µs), the facts generation they were built from, the views.
type Kept = (i64, u64, Arc<CallerViews>);

impl ViewCache {
    /// The views of `subject`: reused, or loaded (and kept).
    pub async fn get(
        &self,
        st: &AppState,
        subject: &Subject,
        now_us: i64,
        memo: &mut HashMap<String, Arc<ChildFacts>>,
    ) -> Result<Arc<CallerViews>, StoreError> {
        let key = format!("{subject:?}");
        // Read before loading: a change while loading leaves the new views unkept.
        let generation = st.authz.facts.generation();
        if let Some((at, g, v)) = self.lock().get(&key)
            && *g == generation
            && now_us - *at < MAX_AGE_US
        {
            return Ok(v.clone());
        }
        let now = super::facts::timestamp(now_us);
        let v = Arc::new(CallerViews::load(st, subject, now, memo).await?);
        let mut map = self.lock();
        if map.len() >= MAX_CALLERS {
            map.clear();
        }
        map.insert(key, (now_us, generation, v.clone()));
        Ok(v)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One caller's views, per resource type.
pub struct CallerViews {
    policy: access::RegionalPolicy,
    subject: Subject,
    children: Vec<Arc<ChildFacts>>,
    now: Timestamp,
    memo: Mutex<HashMap<(Action, String), Arc<View>>>,
}

impl CallerViews {
    /// Loads the facts of every child in the caller's reach (cached per child).
    async fn load(
        st: &AppState,
        subject: &Subject,
        now: Timestamp,
        memo: &mut HashMap<String, Arc<ChildFacts>>,
    ) -> Result<CallerViews, StoreError> {
        let ids = match access::reach(subject) {
            Reach::Nothing | Reach::Everyone => Vec::new(),
            Reach::Listed(ids) => ids,
            Reach::CareTeam {
                practitioner,
                organisation,
            } => {
                st.store
                    .related_children(&ChildrenQuery::CareTeam {
                        practitioner,
                        organisation,
                    })
                    .await?
            }
            Reach::Family { person } => {
                st.store
                    .related_children(&ChildrenQuery::Family { person })
                    .await?
            }
        };
        let mut children = Vec::with_capacity(ids.len());
        for id in ids {
            let facts = match memo.get(&id) {
                Some(f) => f.clone(),
                None => {
                    let f = super::facts::child_facts(st, &id).await?;
                    memo.insert(id, f.clone());
                    f
                }
            };
            children.push(facts);
        }
        Ok(CallerViews {
            policy: st.authz.policy.clone(),
            subject: subject.clone(),
            children,
            now,
            memo: Mutex::new(HashMap::new()),
        })
    }

    /// The `access` view of one type for `action` (search or history).
    pub fn type_view(&self, action: Action, resource_type: &str) -> TypeView {
        access::search_view(
            &self.policy,
            &self.subject,
            action,
            resource_type,
            self.children.iter().map(|c| &**c),
            self.now,
        )
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
        let key = (self.action, resource_type.to_owned());
        let mut memo = self.views.memo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = memo.get(&key) {
            return v.clone();
        }
        let v = Arc::new(to_store(&self.views.type_view(self.action, resource_type)));
        memo.insert(key, v.clone());
        v
    }

    fn redacted(&self, resource_type: &str, param: &str) -> bool {
        access::redacted_param(resource_type, param)
    }
}

fn to_store(v: &TypeView) -> View {
    View {
        no_child: v.no_child.iter().map(row_rule).collect(),
        grants: v
            .grants
            .iter()
            .map(|g| RowGrant {
                children: match &g.children {
                    Children::All => None,
                    Children::Listed(ids) => Some(ids.clone()),
                },
                rule: row_rule(&g.rule),
                address: g.address,
            })
            .collect(),
    }
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
