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

pub mod forms;
pub mod templates;

use std::collections::BTreeMap;

use access::{Action, Identity, Section, SectionSet};
use passport_store::search::{EverythingQuery, Visibility};
use passport_store::{StoreError, Stored};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Domain;
use crate::audit::{AuditEventSpec, EventKind, Interaction, Purpose};
use crate::guard::{Caller, Guard, Refused};
use crate::records::{Agent, deletion, new_version};

pub use forms::{FORMS, Form};

/// The code system of an item's review state (`meta.tag`).
pub const REVIEW_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/review-status";
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
    pub details: Vec<(String, String)>,
    pub status: Status,
    /// The form that changes it, if any.
    pub form: Option<&'static str>,
    /// Made inactive the FHIR way (resolved, stopped…): history, not the current view.
    pub current: bool,
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
    if matches!(
        v["status"].as_str(),
        Some("stopped" | "completed" | "inactive" | "revoked" | "not-taken")
    ) {
        return false;
    }
    v["active"] != false
}

fn entered_in_error(v: &Value) -> bool {
    v["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
        || v["status"] == "entered-in-error"
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
fn details(v: &Value) -> Vec<(String, String)> {
    let ty = v["resourceType"].as_str().unwrap_or_default();
    if let Some(form) = forms::form_for_type(ty)
        && let Some(q) = templates::shipped(form.questionnaire)
    {
        let qs = forms::questions(form, &q);
        return forms::read_back(v, &qs)
            .into_iter()
            .skip(1) // the first answer is the label
            .filter_map(|(id, a)| {
                let q = qs.iter().find(|q| q.link_id == id)?;
                Some((q.text.clone(), sentence_case(&a.words())))
            })
            .collect();
    }
    let mut out = Vec::new();
    if ty == "Patient" {
        if let Some(d) = v["birthDate"].as_str().and_then(crate::dates::long_date) {
            out.push(("Date of birth".to_owned(), d));
        }
        if let Some(n) = v["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["system"] == fhir::nhs_number::SYSTEM)
            .and_then(|i| i["value"].as_str())
        {
            out.push(("NHS Number".to_owned(), spaced_nhs_number(n)));
        }
        return out;
    }
    if let Some(t) = v.pointer("/dosage/0/text").and_then(Value::as_str) {
        out.push(("Dose".to_owned(), t.to_owned()));
    }
    if let Some(t) = v.pointer("/telecom/0/value").and_then(Value::as_str) {
        out.push(("Phone".to_owned(), t.to_owned()));
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

/// Every version-current resource in the child's record, undecided (the caller's guard
/// decides each before anything is shown).
async fn compartment(d: &Domain, patient: &str) -> Result<Vec<Value>, StoreError> {
    let members: Vec<(String, Vec<String>)> = fhir::types::SUPPORTED_TYPES
        .iter()
        .map(|t| {
            (
                t.to_string(),
                fhir::compartment::patient_params(t)
                    .iter()
                    .filter(|p| p.as_str() != fhir::compartment::SELF)
                    .cloned()
                    .collect(),
            )
        })
        .collect();
    let rows = d
        .records()
        .everything(
            &EverythingQuery {
                patient_id: patient.to_owned(),
                members,
                since_us: None,
                count: 5000,
                after: None,
            },
            Visibility::System,
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|m| serde_json::from_slice(&m.body).ok())
        .collect())
}

/// The child's passport as `caller` may see it, audited as one read of the record.
pub async fn view(d: &Domain, caller: &Caller, patient: &str) -> Result<View, Failed> {
    view_as(d, caller, patient, Interaction::Read).await
}

/// A child's passport for a list (a professional's caseload): as [`view`], audited as a
/// search that found the child rather than as opening the passport.
pub async fn summary(d: &Domain, caller: &Caller, patient: &str) -> Result<View, Failed> {
    view_as(d, caller, patient, Interaction::SearchType).await
}

async fn view_as(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    interaction: Interaction,
) -> Result<View, Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    if facts.patient.is_empty() {
        return Err(Failed::NotFound);
    }
    let now = crate::clock::now_us();
    let readable = access::readable_sections(
        &d.policy,
        &caller.subject,
        &facts,
        crate::facts::timestamp(now),
    );
    let mut guard = Guard::new(d, caller);
    let patient_row = d
        .records()
        .read("Patient", patient)
        .await?
        .filter(|s| !s.deleted)
        .ok_or(Failed::NotFound)?;
    let patient_json = body(&patient_row);
    // Someone with no relationship (or a refused one) sees no passport at all.
    if readable == SectionSet::EMPTY && !guard.decide(Action::Read, &patient_json).await?.allow {
        return Err(Failed::NotFound);
    }
    let all = compartment(d, patient).await?;
    let mut provenance = Vec::new();
    let mut items: Vec<Value> = Vec::new();
    for v in all {
        let ty = v["resourceType"].as_str().unwrap_or_default().to_owned();
        if !guard.decide(Action::Read, &v).await?.allow {
            continue;
        }
        if ty == "Provenance" {
            provenance.push(v);
        } else if !NOT_ITEMS.contains(&ty.as_str()) && !is_family_link(&v) {
            items.push(v);
        }
    }
    let checked = checks(&provenance);
    let writable = writable_forms(d, caller, &facts, now);
    let mut sections: Vec<SectionView> = Section::ALL
        .iter()
        .map(|&s| SectionView {
            code: s.code(),
            title: s.display(),
            shared: readable.contains(s),
            items: Vec::new(),
            earlier: Vec::new(),
            forms: writable
                .iter()
                .filter(|f| f.section == s)
                .map(|f| f.key)
                .collect(),
        })
        .collect();
    let mut waiting = 0;
    for v in items {
        if entered_in_error(&v) {
            continue;
        }
        let ty = v["resourceType"].as_str().unwrap_or_default().to_owned();
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        let status = if awaiting(&v) {
            Status::Waiting { by_family: true }
        } else {
            checked
                .get(&format!("{ty}/{id}"))
                .map(|(_, s)| s.clone())
                .unwrap_or(Status::Recorded)
        };
        let item = Item {
            version: v["meta"]["versionId"]
                .as_str()
                .and_then(|x| x.parse().ok())
                .unwrap_or(1),
            label: label(&v),
            details: details(&v),
            form: forms::form_for_type(&ty).map(|f| f.key),
            current: is_current(&v),
            status,
            resource_type: ty,
            id,
        };
        if item.current && matches!(item.status, Status::Waiting { .. }) {
            waiting += 1;
        }
        // Shown under each section it is tagged with that the caller may see.
        for s in Section::from_resource_meta(&v).iter() {
            let view = &mut sections[Section::ALL.iter().position(|x| *x == s).unwrap_or(0)];
            if !view.shared {
                continue;
            }
            if item.current {
                view.items.push(item.clone());
            } else {
                view.earlier.push(item.clone());
            }
        }
    }
    audit_read(d, caller, &guard, patient, now, interaction).await?;
    let name = &patient_json["name"][0];
    Ok(View {
        patient: patient.to_owned(),
        name: format!(
            "{} {}",
            name["given"][0].as_str().unwrap_or_default(),
            name["family"].as_str().unwrap_or_default()
        )
        .trim()
        .to_owned(),
        birth_date: patient_json["birthDate"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        nhs_number: patient_json["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["system"] == fhir::nhs_number::SYSTEM)
            .and_then(|i| i["value"].as_str())
            .unwrap_or_default()
            .to_owned(),
        sections,
        waiting,
    })
}

/// A RelatedPerson that is a family member's sign-in link (shown on the sharing pages, not
/// as a contact item).
fn is_family_link(v: &Value) -> bool {
    v["resourceType"] == "RelatedPerson"
        && v["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["system"] == crate::directory::LOGIN_SYSTEM)
}

/// The forms whose items `caller` may create in this child's record (decided on a
/// sample item of each form's section).
fn writable_forms(
    d: &Domain,
    caller: &Caller,
    facts: &access::ChildFacts,
    now: i64,
) -> Vec<&'static Form> {
    FORMS
        .iter()
        .filter(|f| {
            let r = access::ResourceFacts::new(
                f.resource_type,
                SectionSet::of(&[f.section]),
                access::LabelSet::EMPTY,
            );
            access::decide(
                &d.policy,
                &caller.subject,
                Action::Create,
                &r,
                Some(facts),
                crate::facts::timestamp(now),
            )
            .allow
        })
        .collect()
}

async fn audit_read(
    d: &Domain,
    caller: &Caller,
    guard: &Guard<'_>,
    patient: &str,
    now: i64,
    interaction: Interaction,
) -> Result<(), StoreError> {
    let mut spec = AuditEventSpec::new(EventKind::Rest(interaction), caller.who.clone());
    spec.recorded_us = now;
    spec.purpose = if guard.safeguarding {
        Purpose::Safeguarding
    } else if guard.break_glass {
        Purpose::EmergencyTreatment
    } else {
        caller.purpose
    };
    spec.patient_id = Some(patient.to_owned());
    spec.resource = Some((
        "Patient".into(),
        (interaction == Interaction::Read).then(|| patient.to_owned()),
        None,
    ));
    d.audit
        .submit(spec.to_record(d.base_url()))
        .await
        .map_err(|_| StoreError::Closed)
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

/// What a professional's check adds: the Provenance of `target` (`Type/id/_history/n`)
/// in `patient`'s record, tagged as the item is.
fn provenance(caller: &Caller, patient: &str, target: &str, item: &Value, now_us: i64) -> Value {
    let mut meta = json!({});
    let sections: Vec<Value> = item["meta"]["tag"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["system"] == access::SECTION_SYSTEM)
        .cloned()
        .collect();
    if !sections.is_empty() {
        meta["tag"] = json!(sections);
    }
    if let Some(security) = item["meta"]["security"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        meta["security"] = json!(security);
    }
    let role = match &caller.subject.identity {
        Identity::Staff(s) => s.role.code().replace('-', " "),
        _ => String::new(),
    };
    let mut agent = json!({
        "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "verifier", "display": "Verifier" }] },
        "who": { "display": caller.who.person.display },
    });
    if let Some(r) = &caller.who.person.reference {
        agent["who"]["reference"] = json!(r);
    }
    if !role.is_empty() {
        agent["role"] = json!([{ "text": role }]);
    }
    if let Some(org) = &caller.who.organisation {
        agent["onBehalfOf"] = json!({ "display": org.display });
        if let Some(r) = &org.reference {
            agent["onBehalfOf"]["reference"] = json!(r);
        }
    }
    let mut p = json!({
        "resourceType": "Provenance",
        "id": crate::onboarding::new_id(),
        "target": [{ "reference": target }, { "reference": format!("Patient/{patient}") }],
        "recorded": crate::clock::instant(now_us),
        "activity": { "coding": [{ "system": REVIEW_ACTIVITY_SYSTEM, "code": "checked", "display": "Checked by the care team" }] },
        "agent": [agent],
    });
    if meta.as_object().is_some_and(|m| !m.is_empty()) {
        p["meta"] = meta;
    }
    p
}

/// What a save is: a new item, or a change to the version the person opened.
pub enum Target<'a> {
    New,
    Change { id: &'a str, version: i64 },
}

/// Adds or changes an item through its form. A family member's version waits for review;
/// a professional's is checked by them. The decision is the caller's (create or update, on
/// the old and the new content), then one transaction: the item, its answers, and (for a
/// professional) the Provenance, with an AuditEvent each naming the caller. Returns the id.
pub async fn save(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    form: &Form,
    target: Target<'_>,
    answers: &[(String, forms::Answer)],
) -> Result<String, Failed> {
    let questionnaire = templates::in_use(d, form.questionnaire)
        .await
        .map_err(|e| match e {
            templates::PublishError::Store(e) => Failed::Store(e),
            other => Failed::Invalid(other.to_string()),
        })?;
    let qs = forms::questions(form, &questionnaire);
    let current = match target {
        Target::New => None,
        Target::Change { id, version } => {
            let (stored, _) = item(d, caller, patient, form.resource_type, id).await?;
            if stored.version_id != version {
                return Err(Failed::Conflict);
            }
            Some(stored)
        }
    };
    let mut v = match &current {
        Some(s) => {
            let mut v = body(s);
            // What the form answers is replaced whole (an answer left empty is removed).
            for q in &qs {
                if let Some(first) = q
                    .definition
                    .as_deref()
                    .and_then(fhir::defs::path_shape)
                    .and_then(|steps| steps.into_iter().next())
                    && let Some(m) = v.as_object_mut()
                {
                    m.remove(&first.name);
                }
            }
            v
        }
        None => {
            let mut v =
                json!({ "resourceType": form.resource_type, "id": crate::onboarding::new_id() });
            v["meta"] = json!({ "tag": [form.section.tag()] });
            v
        }
    };
    forms::fill(&mut v, &qs, answers);
    let subject = json!({ "reference": format!("Patient/{patient}") });
    match form.resource_type {
        "AllergyIntolerance" => {
            v["patient"] = subject;
            if v["clinicalStatus"].is_null() {
                v["clinicalStatus"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active" }] });
            }
            if v["reaction"].is_array() && v["reaction"][0]["manifestation"].is_null() {
                return Err(Failed::Invalid(
                    "Enter the reaction: a severity needs the reaction it describes".into(),
                ));
            }
        }
        "Condition" => {
            v["subject"] = subject;
            if v["clinicalStatus"].is_null() {
                v["clinicalStatus"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active" }] });
            }
        }
        _ => {
            v["subject"] = subject;
            if v["status"].is_null() {
                v["status"] = json!("active");
            }
        }
    }
    let family = is_family(caller);
    set_awaiting(&mut v, family);
    set_verification(&mut v, if family { "unconfirmed" } else { "confirmed" });
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    // The answers: this form's, in its section; the item points at them.
    let qr_id = v["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == ANSWERS_EXTENSION)
        .and_then(|e| e["valueReference"]["reference"].as_str())
        .and_then(|r| r.strip_prefix("QuestionnaireResponse/"))
        .map(str::to_owned);
    let qr_current = match &qr_id {
        Some(q) => d.records().read("QuestionnaireResponse", q).await?,
        None => None,
    };
    let qr_id = qr_id.unwrap_or_else(crate::onboarding::new_id);
    let now = crate::clock::now_us();
    let mut qr = json!({
        "resourceType": "QuestionnaireResponse", "id": qr_id,
        "meta": { "tag": [form.section.tag()] },
        "questionnaire": format!("{}|{}", questionnaire["url"].as_str().unwrap_or_default(),
                                 questionnaire["version"].as_str().unwrap_or_default()),
        "status": "completed",
        "subject": { "reference": format!("Patient/{patient}") },
        "authored": crate::clock::instant(now),
        "item": forms::response_items(form, answers),
    });
    if let Some(r) = author(d, caller, patient).await? {
        qr["author"] = json!({ "reference": r, "display": caller.who.person.display });
    }
    if let Some(labels) = v["meta"]["security"].as_array().filter(|a| !a.is_empty()) {
        qr["meta"]["security"] = json!(labels);
    }
    let mut exts: Vec<Value> = v["extension"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["url"] != ANSWERS_EXTENSION)
        .collect();
    exts.push(json!({ "url": ANSWERS_EXTENSION, "valueReference": { "reference": format!("QuestionnaireResponse/{qr_id}") } }));
    v["extension"] = json!(exts);
    let mut guard = Guard::new(d, caller);
    let action = if current.is_some() {
        Action::Update
    } else {
        Action::Create
    };
    guard
        .write(
            action,
            form.resource_type,
            &id,
            current.as_ref().map(|s| &s.body),
            Some(&v),
        )
        .await?;
    let item_write = new_version(v.clone(), current.as_ref()).map_err(|e| Failed::Invalid(e.0))?;
    let version = current.as_ref().map_or(1, |s| s.version_id + 1);
    let qr_write = new_version(qr, qr_current.as_ref()).map_err(|e| Failed::Invalid(e.0))?;
    let mut writes = vec![item_write, qr_write];
    if !family {
        let target = format!("{}/{id}/_history/{version}", form.resource_type);
        let p = provenance(caller, patient, &target, &v, now);
        writes.push(new_version(p, None).map_err(|e| Failed::Invalid(e.0))?);
    }
    store(d, caller, writes).await?;
    Ok(id)
}

/// Who wrote the answers, as `QuestionnaireResponse.author` may name them: a family member
/// by their RelatedPerson for this child, the young person by their Patient, staff by
/// their Practitioner.
async fn author(d: &Domain, caller: &Caller, patient: &str) -> Result<Option<String>, StoreError> {
    Ok(match &caller.subject.identity {
        Identity::Family { person } => crate::facts::child_facts(d, patient)
            .await?
            .family_link(person)
            .map(|l| format!("RelatedPerson/{}", l.related_person)),
        Identity::YoungPerson { patient } => Some(format!("Patient/{patient}")),
        _ => caller
            .who
            .person
            .reference
            .clone()
            .filter(|r| r.starts_with("Practitioner/")),
    })
}

async fn store(
    d: &Domain,
    caller: &Caller,
    writes: Vec<passport_store::Write>,
) -> Result<(), Failed> {
    let agent = Agent::new(caller.who.clone(), caller.purpose);
    match d.records().write_all(&agent, writes).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.error, StoreError::VersionConflict { .. }) => Err(Failed::Conflict),
        Err(e) => Err(Failed::Store(e.error)),
    }
}

/// A professional checks the version of an item they opened: a new version without the
/// awaiting tag, confirmed where the type has a verification status, and its Provenance.
pub async fn check(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    resource_type: &str,
    id: &str,
    version: i64,
) -> Result<(), Failed> {
    if is_family(caller) {
        return Err(Failed::Forbidden(
            "Only the care team checks items in the passport.".into(),
        ));
    }
    let (stored, mut v) = item(d, caller, patient, resource_type, id).await?;
    if stored.version_id != version {
        return Err(Failed::Conflict);
    }
    set_awaiting(&mut v, false);
    set_verification(&mut v, "confirmed");
    Guard::new(d, caller)
        .write(
            Action::Update,
            resource_type,
            id,
            Some(&stored.body),
            Some(&v),
        )
        .await?;
    let now = crate::clock::now_us();
    let target = format!("{resource_type}/{id}/_history/{}", version + 1);
    let p = provenance(caller, patient, &target, &v, now);
    let writes = vec![
        new_version(v, Some(&stored)).map_err(|e| Failed::Invalid(e.0))?,
        new_version(p, None).map_err(|e| Failed::Invalid(e.0))?,
    ];
    store(d, caller, writes).await
}

/// How an item stops being current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It was true and no longer is: resolved, stopped, inactive (with the date).
    NoLongerTrue,
    /// It was never true: kept in history, hidden from current views.
    EnteredInError,
    /// The family's own item nobody has checked: removed (its versions stay in history).
    Delete,
}

/// Ends an item the FHIR way, or deletes a family's unchecked one.
pub async fn end(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    resource_type: &str,
    id: &str,
    version: i64,
    how: End,
) -> Result<(), Failed> {
    let (stored, mut v) = item(d, caller, patient, resource_type, id).await?;
    if stored.version_id != version {
        return Err(Failed::Conflict);
    }
    let mut guard = Guard::new(d, caller);
    if how == End::Delete {
        if !is_family(caller) || !awaiting(&v) || ever_checked(d, resource_type, id).await? {
            return Err(Failed::Forbidden(
                "Only an item you added that nobody has checked can be deleted. Mark it as no longer true instead.".into(),
            ));
        }
        guard
            .write(Action::Delete, resource_type, id, Some(&stored.body), None)
            .await?;
        return store(d, caller, vec![deletion(&stored)]).await;
    }
    let today = crate::dates::today();
    match (resource_type, how) {
        ("AllergyIntolerance", End::NoLongerTrue) => {
            v["clinicalStatus"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "resolved" }] });
            v["lastOccurrence"] = v["lastOccurrence"]
                .as_str()
                .map_or(json!(today), |s| json!(s));
        }
        ("Condition", End::NoLongerTrue) => {
            v["clinicalStatus"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved" }] });
            v["abatementDateTime"] = json!(today);
        }
        ("AllergyIntolerance" | "Condition", End::EnteredInError) => {
            // FHIR: an entered-in-error item has no clinical status (ait-2, con-5).
            if let Some(m) = v.as_object_mut() {
                m.remove("clinicalStatus");
            }
            set_verification(&mut v, "entered-in-error");
        }
        ("MedicationStatement", End::NoLongerTrue) => {
            v["status"] = json!("stopped");
            v["effectivePeriod"]["end"] = json!(today);
            if let Some(m) = v.as_object_mut() {
                m.remove("effectiveDateTime");
            }
        }
        (_, End::EnteredInError) => v["status"] = json!("entered-in-error"),
        _ => v["active"] = json!(false),
    }
    let family = is_family(caller);
    set_awaiting(&mut v, family && how == End::NoLongerTrue);
    guard
        .write(
            Action::Update,
            resource_type,
            id,
            Some(&stored.body),
            Some(&v),
        )
        .await?;
    store(
        d,
        caller,
        vec![new_version(v, Some(&stored)).map_err(|e| Failed::Invalid(e.0))?],
    )
    .await
}

/// Whether any version of an item was ever checked (a version without the awaiting tag
/// after the first, or the first written by a professional).
async fn ever_checked(d: &Domain, resource_type: &str, id: &str) -> Result<bool, StoreError> {
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
pub async fn changes(d: &Domain, caller: &Caller, patient: &str) -> Result<Vec<Change>, Failed> {
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
            let (_, now_v) = item(d, caller, patient, &it.resource_type, &it.id).await?;
            let before: Option<Value> = versions(d, &it.resource_type, &it.id)
                .await?
                .into_iter()
                .filter(|(v, _)| *v < it.version)
                .map(|(_, b)| b)
                .find(|b| !awaiting(b));
            let rows = match forms::form_for_type(&it.resource_type).zip(templates::shipped("core"))
            {
                Some((form, q)) => {
                    let qs = forms::questions(form, &q);
                    let after = forms::read_back(&now_v, &qs);
                    let was = before
                        .as_ref()
                        .map(|b| forms::read_back(b, &qs))
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
    Ok(out)
}
