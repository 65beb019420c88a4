//! "What changed since the care team last checked": each waiting item against its last
//! checked version, built from stored versions.

use passport_store::StoreError;
use passport_store::search::Visibility;
use serde::Serialize;
use serde_json::Value;

use super::*;
use crate::Domain;
use crate::guard::Caller;

/// Whether any version of an item was ever checked (a version without the awaiting tag
/// after the first, or the first written by a professional).
pub(super) async fn ever_checked(
    d: &Domain,
    resource_type: &str,
    id: &str,
) -> Result<bool, StoreError> {
    Ok(versions(d, resource_type, id)
        .await?
        .iter()
        .any(|(_, b)| !awaiting(b)))
}

/// Every stored version of an item, newest first (deletions left out).
async fn versions(
    d: &Domain,
    resource_type: &str,
    id: &str,
) -> Result<Vec<(i64, Value)>, StoreError> {
    let history = d
        .records()
        .history(
            &passport_store::HistoryQuery {
                resource_type: Some(resource_type.to_owned()),
                id: Some(id.to_owned()),
                since_us: None,
                at_us: None,
                before_seq: None,
                count: 1000,
            },
            Visibility::System,
        )
        .await?;
    Ok(history
        .into_iter()
        .filter(|e| !e.version.deleted)
        .map(|e| (e.version.version_id, body(&e.version)))
        .collect())
}

/// One change waiting for the care team: what the item said when last checked, and what
/// it says now.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub section: &'static str,
    pub label: String,
    /// (question, before, after) for each answer that differs; before is empty for a new item.
    pub rows: Vec<(String, String, String)>,
    pub new: bool,
    pub ended: bool,
}

/// What changed since the care team last checked: every item the caller may see whose
/// current version waits for review, compared with its last checked version (built from
/// stored versions). Reviews are shared by the care team: a check by any professional in
/// it counts (docs/DATA-MODEL.md, "Review").
/// Returns the child's name (for the page's heading) and the changes.
pub async fn changes(
    d: &Domain,
    caller: &Caller,
    patient: &str,
) -> Result<(String, Vec<Change>), Failed> {
    let view = view(d, caller, patient).await?;
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in &view.sections {
        for it in s.items.iter().chain(s.earlier.iter()) {
            if !matches!(it.status, Status::Waiting { .. })
                || !seen.insert((it.resource_type.clone(), it.id.clone()))
            {
                continue;
            }
            // The version the page read and decided (no second read).
            let Some(now_v) = view.waiting_items.iter().find(|v| {
                v["resourceType"] == it.resource_type.as_str() && v["id"] == it.id.as_str()
            }) else {
                continue;
            };
            let before: Option<Value> = versions(d, &it.resource_type, &it.id)
                .await?
                .into_iter()
                .filter(|(v, _)| *v < it.version)
                .map(|(_, b)| b)
                .find(|b| !awaiting(b));
            let form = forms::form_of(now_v);
            let rows = match form {
                Some(form) => {
                    let qs = forms::shipped_questions(form);
                    let after = forms::answers_of(now_v, form, qs);
                    let was = before
                        .as_ref()
                        .map(|b| forms::answers_of(b, form, qs))
                        .unwrap_or_default();
                    qs.iter()
                        .filter_map(|q| {
                            let a = after
                                .iter()
                                .find(|(id, _)| *id == q.link_id)
                                .map(|(_, a)| sentence_case(&a.words()))
                                .unwrap_or_default();
                            let b = was
                                .iter()
                                .find(|(id, _)| *id == q.link_id)
                                .map(|(_, a)| sentence_case(&a.words()))
                                .unwrap_or_default();
                            (a != b).then(|| (q.text.clone(), b, a))
                        })
                        .collect()
                }
                None => Vec::new(),
            };
            out.push(Change {
                resource_type: it.resource_type.clone(),
                id: it.id.clone(),
                version: it.version,
                section: s.code,
                label: it.label.clone(),
                rows,
                new: before.is_none(),
                ended: !it.current,
            });
        }
    }
    Ok((view.name, out))
}

/// The code system of the passport's own plans (`CarePlan.category`): `review` is the
/// passport's next review, its date in `period.end`.
pub const PLAN_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/passport-plan";

/// Whether a resource is the passport's review plan.
pub fn is_review_plan(v: &Value) -> bool {
    v["resourceType"] == "CarePlan"
        && v["category"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["coding"].as_array().into_iter().flatten())
            .any(|c| c["system"] == PLAN_SYSTEM && c["code"] == "review")
}

/// Sets when the passport is next to be reviewed (a professional of the care team): the
/// child's review `CarePlan`, created or given a new version, in the about-me section (the
/// date tells nothing about the child's care), audited as the caller.
pub async fn set_next_review(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    date: &str,
) -> Result<(), Failed> {
    if is_family(caller) {
        return Err(Failed::Forbidden(
            "The care team sets when the passport is next reviewed.".into(),
        ));
    }
    let existing = super::compartment(d, patient)
        .await?
        .into_iter()
        .find(is_review_plan);
    let current = match existing.as_ref().and_then(|v| v["id"].as_str()) {
        Some(id) => d.records().read("CarePlan", id).await?,
        None => None,
    };
    let id = existing
        .as_ref()
        .and_then(|v| v["id"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(crate::onboarding::new_id);
    let plan = serde_json::json!({
        "resourceType": "CarePlan", "id": id,
        "meta": { "tag": [access::Section::AboutMe.tag()] },
        "status": "active", "intent": "plan",
        "category": [{ "coding": [{ "system": PLAN_SYSTEM, "code": "review", "display": "Passport review" }] }],
        "title": "Passport review",
        "subject": { "reference": format!("Patient/{patient}") },
        "period": { "end": date },
        "author": { "display": caller.who.person.display },
    });
    let action = if current.is_some() {
        access::Action::Update
    } else {
        access::Action::Create
    };
    crate::guard::Guard::new(d, caller)
        .write(
            action,
            "CarePlan",
            &id,
            current.as_ref().map(|s| &s.body),
            Some(&plan),
        )
        .await?;
    let write =
        crate::records::new_version(plan, current.as_ref()).map_err(|e| Failed::Invalid(e.0))?;
    super::change::store_all(d, caller, vec![write]).await
}
