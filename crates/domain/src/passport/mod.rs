//! The passport as people use it: a child's items section by section, as one caller may
//! see them; the family adding and changing items through the template's forms; the care
//! team checking them.
//!
//! Every read is decided per item by the caller's [`Guard`] and audited once per page;
//! every change goes through [`Records`] with the caller's decision taken first and an
//! AuditEvent naming them. Review state is data, readable by any FHIR client:
//!
//! - a version written by the family carries `meta.tag` [`REVIEW_SYSTEM`]`|awaiting-review`
//!   ("patient-reported, awaiting review") and, where the type has one,
//!   `verificationStatus` `unconfirmed`;
//! - checking it writes a new version without the tag, `verificationStatus` `confirmed`,
//!   and a `Provenance` (agent: who checked; target: that version and the child; tagged
//!   with the item's sections and security labels, so it reveals nothing the item would
//!   not); an item a professional adds or changes is checked by them in the same step;
//! - the answers of each form are kept as a `QuestionnaireResponse` holding that form's
//!   answers only (one section), referenced from the item ([`ANSWERS_EXTENSION`]); the
//!   structured resource is the authoritative record.

pub mod care_team;
mod change;
mod copy;
pub mod forms;
pub mod photo;
mod review;
pub mod templates;
mod view;

use std::collections::BTreeMap;

use access::{Action, Identity};
use passport_store::{StoreError, Stored};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Domain;
use crate::guard::{Caller, Guard, Refused};

pub use change::{End, Opened, Target, check, end, save};
pub use copy::{audit_export, copy};
pub use forms::{FORMS, Form};
pub use photo::{PHOTO_FORM, photo, set_photo};
pub use review::{Change, PLAN_SYSTEM, changes, is_review_plan, set_next_review};
pub use view::{
    Emergency, compartment, controls, emergency, may_open, name, preview, summary, typical_role,
    view,
};

/// The code system of an item's review state (`meta.tag`).
pub const REVIEW_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/review-status";
/// The status of an item whose type has none of its own (`meta.tag`: `entered-in-error`).
pub const ITEM_STATUS_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/item-status";
/// The item's QuestionnaireResponse (valueReference).
pub const ANSWERS_EXTENSION: &str = "https://passport.nhs.uk/fhir/StructureDefinition/answers";
/// The Provenance activity of a check by the care team.
pub const REVIEW_ACTIVITY_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/review";

/// Types that are the passport's own machinery, not items a person reads as such.
const NOT_ITEMS: &[&str] = &[
    "CareTeam",
    "Consent",
    "Provenance",
    "QuestionnaireResponse",
    "AuditEvent",
    "Person",
];

/// Where an item stands with the care team.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Status {
    /// Added or changed by the family; not yet checked.
    Waiting { by_family: bool },
    /// Checked (or entered) by a professional.
    Checked {
        by: String,
        role: String,
        organisation: String,
        date: String,
    },
    /// Recorded by a connected system or before reviews were kept.
    Recorded,
}

/// One item as a page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub label: String,
    /// Plain-words details: ("Reaction", "Swollen lips").
    pub details: Vec<Detail>,
    pub status: Status,
    /// The form that changes it, if any.
    pub form: Option<&'static str>,
    /// Made inactive the FHIR way (resolved, stopped…): history, not the current view.
    pub current: bool,
    /// The child's photo: where the page loads the image from.
    pub photo: Option<String>,
}

/// One answer of an item as a page shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Detail {
    /// The question, or the element's name: "Reaction".
    pub key: String,
    /// The answer in words: "Swollen lips".
    pub value: String,
    /// A phone number (a page makes it a link to call).
    pub phone: bool,
}

impl Detail {
    fn new(key: &str, value: String) -> Detail {
        Detail {
            key: key.to_owned(),
            value,
            phone: false,
        }
    }
}

/// One section as a page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SectionView {
    pub code: &'static str,
    pub title: &'static str,
    /// The caller may see this section: decided from the sharing policy alone
    /// (`access::readable_sections`), never from what the section holds.
    pub shared: bool,
    pub items: Vec<Item>,
    pub earlier: Vec<Item>,
    /// Forms that add an item to this section (for those who may write here).
    pub forms: Vec<&'static str>,
    /// The caller may add and change items here.
    pub writable: bool,
}

/// The passport as one caller may see it.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub patient: String,
    pub name: String,
    pub birth_date: String,
    pub nhs_number: String,
    pub sections: Vec<SectionView>,
    pub waiting: usize,
    /// When anything in it was last checked by the care team, and by whom.
    pub last_checked: Option<LastChecked>,
    /// When the care team means to review it next (`YYYY-MM-DD`).
    pub next_review: Option<String>,
    /// That date has passed.
    pub review_overdue: bool,
    /// Whether the reader controls the passport's sharing ([`controls`]): chooses who sees
    /// what and makes card links.
    pub controls: bool,
    /// The current version of each item waiting for review, as read and decided for this
    /// page (what "what changed" compares; not shown as such).
    #[serde(skip)]
    pub waiting_items: Vec<Value>,
}

/// The passport's last check.
#[derive(Debug, Clone, Serialize)]
pub struct LastChecked {
    pub date: String,
    pub by: String,
}

/// Why a passport action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    /// Nothing the caller may know of (answer as for a missing page).
    #[error("not found")]
    NotFound,
    /// The caller may see it but not do this: the plain-English reason.
    #[error("{0}")]
    Forbidden(String),
    /// Someone else changed the item since the caller opened it.
    #[error("changed by someone else")]
    Conflict,
    /// The answers do not make a valid record (a message for the person).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::directory::DirectoryError> for Failed {
    fn from(e: crate::directory::DirectoryError) -> Failed {
        use crate::directory::DirectoryError as E;
        match e {
            E::Store(e) => Failed::Store(e),
            E::NotFound(_) => Failed::NotFound,
            other => Failed::Invalid(other.to_string()),
        }
    }
}

impl From<Refused> for Failed {
    fn from(r: Refused) -> Failed {
        match r {
            Refused::NotFound { .. } => Failed::NotFound,
            Refused::Forbidden(m) | Refused::InsufficientScope { message: m, .. } => {
                Failed::Forbidden(m)
            }
            Refused::Store(e) => Failed::Store(e),
        }
    }
}

fn is_family(caller: &Caller) -> bool {
    matches!(
        caller.subject.identity,
        Identity::Family { .. } | Identity::YoungPerson { .. }
    )
}

fn body(s: &Stored) -> Value {
    serde_json::from_slice(&s.body).unwrap_or(Value::Null)
}

/// Whether a version carries the awaiting-review tag.
pub fn awaiting(v: &Value) -> bool {
    v["meta"]["tag"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["system"] == REVIEW_SYSTEM && t["code"] == "awaiting-review")
}

fn set_awaiting(v: &mut Value, on: bool) {
    let tags = v["meta"]["tag"].as_array().cloned().unwrap_or_default();
    let mut tags: Vec<Value> = tags
        .into_iter()
        .filter(|t| t["system"] != REVIEW_SYSTEM)
        .collect();
    if on {
        tags.push(json!({ "system": REVIEW_SYSTEM, "code": "awaiting-review",
                          "display": "Patient-reported, awaiting review" }));
    }
    if tags.is_empty() {
        if let Some(m) = v["meta"].as_object_mut() {
            m.remove("tag");
        }
    } else {
        v["meta"]["tag"] = json!(tags);
    }
}

/// Types with a `verificationStatus` (and their code system).
fn verification_system(resource_type: &str) -> Option<&'static str> {
    match resource_type {
        "AllergyIntolerance" => {
            Some("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification")
        }
        "Condition" => Some("http://terminology.hl7.org/CodeSystem/condition-ver-status"),
        _ => None,
    }
}

fn set_verification(v: &mut Value, code: &str) {
    let ty = v["resourceType"].as_str().unwrap_or_default().to_owned();
    if let Some(system) = verification_system(&ty) {
        v["verificationStatus"] = json!({ "coding": [{ "system": system, "code": code }] });
    }
}

/// Whether an item is current (not resolved, stopped, inactive or entered in error).
pub fn is_current(v: &Value) -> bool {
    let clinical = v["clinicalStatus"]["coding"][0]["code"].as_str();
    let verification = v["verificationStatus"]["coding"][0]["code"].as_str();
    if verification == Some("entered-in-error") || v["status"] == "entered-in-error" {
        return false;
    }
    if matches!(clinical, Some("inactive" | "resolved" | "remission")) {
        return false;
    }
    // Answers stand while completed (or amended); "stopped" answers no longer do.
    if v["resourceType"] == "QuestionnaireResponse" {
        return matches!(v["status"].as_str(), Some("completed" | "amended"));
    }
    if matches!(
        v["status"].as_str(),
        Some("stopped" | "completed" | "inactive" | "revoked" | "not-taken" | "superseded")
    ) {
        return false;
    }
    v["active"] != false
}

fn entered_in_error(v: &Value) -> bool {
    v["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
        || v["status"] == "entered-in-error"
        || v["meta"]["tag"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["system"] == ITEM_STATUS_SYSTEM && t["code"] == "entered-in-error")
}

/// Marks an item of a type with no status of its own (RelatedPerson) as entered in error.
fn tag_entered_in_error(v: &mut Value) {
    let tag = json!({ "system": ITEM_STATUS_SYSTEM, "code": "entered-in-error", "display": "Entered in error" });
    match v["meta"]["tag"].as_array_mut() {
        Some(tags) => tags.push(tag),
        None => v["meta"]["tag"] = json!([tag]),
    }
}

/// "943 476 5919": an NHS Number as people read it.
pub fn spaced_nhs_number(n: &str) -> String {
    if n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()) {
        format!("{} {} {}", &n[..3], &n[3..6], &n[6..])
    } else {
        n.to_owned()
    }
}

/// A person's name as written: "Sam Demo".
fn person_name(name: &Value) -> Option<String> {
    if let Some(t) = name["text"].as_str().filter(|t| !t.is_empty()) {
        return Some(t.to_owned());
    }
    let mut parts: Vec<&str> = name["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    parts.extend(name["family"].as_str());
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A short label for an item (its code's text or display, or its title).
pub fn label(v: &Value) -> String {
    if let Some(f) = forms::form_of(v).filter(|f| f.answers_only()) {
        return f.title.to_owned();
    }
    if let Some(n) = person_name(&v["name"][0]) {
        return n;
    }
    for p in [
        "/code/text",
        "/code/coding/0/display",
        "/medicationCodeableConcept/text",
        "/medicationCodeableConcept/coding/0/display",
        "/title",
        "/description",
    ] {
        if let Some(s) = v
            .pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            return s.to_owned();
        }
    }
    "No description recorded".to_owned()
}

/// The details a page shows for an item: its form's answers read back, or a few
/// well-known elements for items made elsewhere.
fn details(v: &Value) -> Vec<Detail> {
    let ty = v["resourceType"].as_str().unwrap_or_default();
    if let Some(form) = forms::form_of(v) {
        let qs = forms::shipped_questions(form);
        let answers = forms::answers_of(v, form, qs);
        // An answer that is the item's label (the allergy's substance) is its heading.
        let named = label(v);
        let skip = usize::from(
            answers
                .first()
                .is_some_and(|(_, a)| sentence_case(&a.words()) == named || a.words() == named),
        );
        return answers
            .into_iter()
            .skip(skip)
            .filter_map(|(id, a)| {
                let q = qs.iter().find(|q| q.link_id == id)?;
                // A quantity is never shown without its unit (a weight in kg).
                let value = match (&a, &q.unit) {
                    (forms::Answer::Decimal(n), Some(unit)) => format!("{n} {unit}"),
                    _ => sentence_case(&a.words()),
                };
                Some(Detail {
                    key: q.text.clone(),
                    value,
                    phone: q.kind == "phone",
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    if ty == "Patient" {
        if let Some(d) = v["birthDate"].as_str().and_then(crate::dates::long_date) {
            out.push(Detail::new("Date of birth", d));
        }
        if let Some(n) = fhir::nhs_number::of(v) {
            out.push(Detail::new("NHS Number", spaced_nhs_number(n)));
        }
        return out;
    }
    if let Some(t) = v.pointer("/dosage/0/text").and_then(Value::as_str) {
        out.push(Detail::new("Dose", t.to_owned()));
    }
    for t in v["telecom"].as_array().into_iter().flatten() {
        if let Some(n) = t["value"].as_str().filter(|_| t["system"] != "email") {
            out.push(Detail {
                key: "Phone".to_owned(),
                value: n.to_owned(),
                phone: true,
            });
        }
    }
    out
}

/// "moderate" → "Moderate" (codes read back as their lower-case option).
fn sentence_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The latest check of each item (by `Type/id`), from the child's Provenance.
fn checks(provenance: &[Value]) -> BTreeMap<String, (i64, Status)> {
    let mut out: BTreeMap<String, (i64, Status)> = BTreeMap::new();
    for p in provenance {
        let is_review = p["activity"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["system"] == REVIEW_ACTIVITY_SYSTEM);
        if !is_review {
            continue;
        }
        let agent = &p["agent"][0];
        let status = Status::Checked {
            by: agent["who"]["display"]
                .as_str()
                .unwrap_or("A professional")
                .to_owned(),
            role: agent["role"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            organisation: agent["onBehalfOf"]["display"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            date: p["recorded"]
                .as_str()
                .and_then(crate::dates::long_date)
                .unwrap_or_default(),
        };
        for t in p["target"].as_array().into_iter().flatten() {
            let Some(r) = t["reference"].as_str() else {
                continue;
            };
            let mut parts = r.split('/');
            let (Some(ty), Some(id)) = (parts.next(), parts.next()) else {
                continue;
            };
            if ty == "Patient" {
                continue;
            }
            let version: i64 = match (parts.next(), parts.next()) {
                (Some("_history"), Some(v)) => v.parse().unwrap_or(0),
                _ => 0,
            };
            let key = format!("{ty}/{id}");
            if out.get(&key).is_none_or(|(v, _)| *v <= version) {
                out.insert(key, (version, status.clone()));
            }
        }
    }
    out
}

/// One stored item of the child's record that the caller may read.
pub async fn item(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    resource_type: &str,
    id: &str,
) -> Result<(Stored, Value), Failed> {
    let stored = d
        .records()
        .read(resource_type, id)
        .await?
        .filter(|s| !s.deleted)
        .ok_or(Failed::NotFound)?;
    let v = body(&stored);
    if !fhir::compartment::patients_of(&v)
        .iter()
        .any(|p| p == patient)
    {
        return Err(Failed::NotFound);
    }
    let mut guard = Guard::new(d, caller);
    guard
        .read(Action::Read, resource_type, id, &stored.body)
        .await?;
    Ok((stored, v))
}
