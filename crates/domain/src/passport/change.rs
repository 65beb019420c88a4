//! Changing a passport: adding and changing items through the template's forms, the care
//! team's check, and ending items the FHIR way — each decided for the caller first, then
//! one transaction through `Records` with an AuditEvent naming them.

use access::{Action, Identity};
use passport_store::StoreError;
use serde_json::{Value, json};

use super::*;
use crate::Domain;
use crate::guard::{Caller, Guard};
use crate::records::{Agent, deletion, new_version};

/// What a professional's check adds: the Provenance of `target` (`Type/id/_history/n`)
/// in `patient`'s record, tagged as the item is.
pub(super) fn provenance(
    caller: &Caller,
    patient: &str,
    target: &str,
    item: &Value,
    now_us: i64,
) -> Value {
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
    let family = is_family(caller);
    if family && form.clinical {
        return Err(Failed::Forbidden(format!(
            "{} is written by the child's clinical team. Ask them to change it.",
            sentence_case(form.noun.trim_start_matches("the "))
        )));
    }
    // Doses and when to give them are the clinician's alone: never from the family.
    if family
        && answers
            .iter()
            .any(|(id, _)| qs.iter().any(|q| q.link_id == *id && q.clinician_only))
    {
        return Err(Failed::Forbidden(
            "Doses and when to give them are entered by the child's clinician.".into(),
        ));
    }
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
    // A family change keeps what the clinician entered.
    let mut answers = answers.to_vec();
    if family && let Some(cur) = &current {
        answers.extend(
            forms::answers_of(&body(cur), form, &qs)
                .into_iter()
                .filter(|(id, _)| qs.iter().any(|q| q.link_id == *id && q.clinician_only)),
        );
    }
    let answers = answers.as_slice();
    if form.answers_only() {
        return save_answers(d, caller, patient, form, &questionnaire, current, answers).await;
    }
    let mut v = match &current {
        Some(s) => {
            let mut v = body(s);
            // What the form answers is replaced whole (an answer left empty is removed).
            for q in &qs {
                if let Some(first) = forms::own_steps(q, form.resource_type)
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
            let mut tags = vec![form.section.tag()];
            if form.tagged {
                tags.push(form.tag());
            }
            v["meta"] = json!({ "tag": tags });
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
        "CarePlan" => {
            v["subject"] = subject;
            v["status"] = json!(v["status"].as_str().unwrap_or("active"));
            v["intent"] = json!("plan");
            v["title"] = json!(form.title);
            // The emergency category (access reads it as the emergency section too).
            v["category"] = json!([{ "coding": [{ "system": access::SECTION_SYSTEM,
                "code": access::Section::Emergency.code(), "display": "Emergency protocol" }] }]);
            // An activity's detail needs a status: the protocol is what to do when an
            // emergency happens, not something already under way.
            if let Some(acts) = v["activity"].as_array_mut() {
                for a in acts {
                    if a["detail"].is_object() && a["detail"]["status"].is_null() {
                        a["detail"]["status"] = json!("not-started");
                    }
                }
            }
        }
        "Observation" => {
            v["subject"] = subject;
            v["status"] = json!("final");
            v["category"] = json!([{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs" }] }]);
            // The curated subset has no code for body weight: named in words (the page says
            // so), never a code typed from memory.
            v["code"] = json!({ "text": "Body weight" });
            // A weight without its date cannot be judged stale: a hazard for doses.
            if v["effectiveDateTime"].is_null() {
                return Err(Failed::Invalid(
                    "Enter the date the weight was measured".into(),
                ));
            }
        }
        _ => {
            v["subject"] = subject;
            if v["status"].is_null() {
                v["status"] = json!("active");
            }
        }
    }
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
    let qr = response(
        d,
        caller,
        patient,
        form,
        &questionnaire,
        &qr_id,
        answers,
        &v,
    )
    .await?;
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
    store_all(d, caller, writes).await?;
    Ok(id)
}

/// One form's answers as a QuestionnaireResponse `id` in the form's section, against the
/// published template version, carrying `item`'s security labels.
#[allow(clippy::too_many_arguments)]
async fn response(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    form: &Form,
    questionnaire: &Value,
    id: &str,
    answers: &[(String, forms::Answer)],
    item: &Value,
) -> Result<Value, Failed> {
    let mut qr = json!({
        "resourceType": "QuestionnaireResponse", "id": id,
        "meta": { "tag": [form.section.tag()] },
        "questionnaire": format!("{}|{}", questionnaire["url"].as_str().unwrap_or_default(),
                                 questionnaire["version"].as_str().unwrap_or_default()),
        "status": "completed",
        "subject": { "reference": format!("Patient/{patient}") },
        "authored": crate::clock::instant(crate::clock::now_us()),
        "item": forms::response_items(form, answers),
    });
    if let Some(r) = author(d, caller, patient).await? {
        qr["author"] = json!({ "reference": r, "display": caller.who.person.display });
    }
    if let Some(labels) = item["meta"]["security"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        qr["meta"]["security"] = json!(labels);
    }
    Ok(qr)
}

/// Saves an answers-only item (the QuestionnaireResponse is the item): waiting for review
/// when the family wrote it, checked by the professional who did.
async fn save_answers(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    form: &Form,
    questionnaire: &Value,
    current: Option<Stored>,
    answers: &[(String, forms::Answer)],
) -> Result<String, Failed> {
    if answers.is_empty() {
        return Err(Failed::Invalid(
            "Answer at least one question to save".into(),
        ));
    }
    let previous = current.as_ref().map(body).unwrap_or(Value::Null);
    let id = previous["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(crate::onboarding::new_id);
    let mut qr = response(
        d,
        caller,
        patient,
        form,
        questionnaire,
        &id,
        answers,
        &previous,
    )
    .await?;
    set_awaiting(&mut qr, is_family(caller));
    write_item(d, caller, patient, qr, current.as_ref()).await?;
    Ok(id)
}

/// Writes one item that is the whole change (`v`, replacing `current`): decided for the
/// caller on both contents, then stored with, for a professional, the Provenance of their
/// check, in one transaction.
pub(super) async fn write_item(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    v: Value,
    current: Option<&Stored>,
) -> Result<(), Failed> {
    let ty = v["resourceType"].as_str().unwrap_or_default().to_owned();
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    let action = if current.is_some() {
        Action::Update
    } else {
        Action::Create
    };
    Guard::new(d, caller)
        .write(action, &ty, &id, current.map(|s| &s.body), Some(&v))
        .await?;
    let version = current.map_or(1, |s| s.version_id + 1);
    let mut writes = vec![new_version(v.clone(), current).map_err(|e| Failed::Invalid(e.0))?];
    if !is_family(caller) {
        let target = format!("{ty}/{id}/_history/{version}");
        let p = provenance(caller, patient, &target, &v, crate::clock::now_us());
        writes.push(new_version(p, None).map_err(|e| Failed::Invalid(e.0))?);
    }
    store_all(d, caller, writes).await
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

pub(super) async fn store_all(
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

/// The version of an item a person opened (a form's hidden `version`).
#[derive(Debug, Clone, Copy)]
pub struct Opened<'a> {
    pub patient: &'a str,
    pub resource_type: &'a str,
    pub id: &'a str,
    pub version: i64,
}

/// The item as stored if it is still the version the person opened; a conflict if someone
/// changed it since.
async fn opened(d: &Domain, caller: &Caller, o: &Opened<'_>) -> Result<(Stored, Value), Failed> {
    let (stored, v) = item(d, caller, o.patient, o.resource_type, o.id).await?;
    if stored.version_id != o.version {
        return Err(Failed::Conflict);
    }
    Ok((stored, v))
}

/// A professional checks the version of an item they opened: a new version without the
/// awaiting tag, confirmed where the type has a verification status, and its Provenance.
pub async fn check(d: &Domain, caller: &Caller, o: &Opened<'_>) -> Result<(), Failed> {
    let Opened {
        patient,
        resource_type,
        id,
        version,
    } = *o;
    if is_family(caller) {
        return Err(Failed::Forbidden(
            "Only the care team checks items in the passport.".into(),
        ));
    }
    let (stored, mut v) = opened(d, caller, o).await?;
    set_awaiting(&mut v, false);
    set_verification(&mut v, "confirmed");
    may_update(&mut Guard::new(d, caller), &stored, &v).await?;
    let now = crate::clock::now_us();
    let target = format!("{resource_type}/{id}/_history/{}", version + 1);
    let p = provenance(caller, patient, &target, &v, now);
    let writes = vec![
        new_version(v, Some(&stored)).map_err(|e| Failed::Invalid(e.0))?,
        new_version(p, None).map_err(|e| Failed::Invalid(e.0))?,
    ];
    store_all(d, caller, writes).await
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
pub async fn end(d: &Domain, caller: &Caller, o: &Opened<'_>, how: End) -> Result<(), Failed> {
    let (resource_type, id) = (o.resource_type, o.id);
    let (stored, mut v) = opened(d, caller, o).await?;
    let mut guard = Guard::new(d, caller);
    if how == End::Delete {
        if !is_family(caller) || !awaiting(&v) || review::ever_checked(d, resource_type, id).await?
        {
            return Err(Failed::Forbidden(
                "Only an item you added that nobody has checked can be deleted. Mark it as no longer true instead.".into(),
            ));
        }
        guard
            .write(Action::Delete, resource_type, id, Some(&stored.body), None)
            .await?;
        return store_all(d, caller, vec![deletion(&stored)]).await;
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
        // Answers kept as the item: "stopped" is the status FHIR has for answers that no
        // longer stand (they stay in the record's history).
        ("QuestionnaireResponse", End::NoLongerTrue) => v["status"] = json!("stopped"),
        ("CarePlan", End::NoLongerTrue) => {
            v["status"] = json!("revoked");
            v["period"]["end"] = json!(today);
        }
        // A photo no longer like the child: replaced by none (kept in history).
        ("DocumentReference", End::NoLongerTrue) => v["status"] = json!("superseded"),
        ("Flag", End::NoLongerTrue) => {
            v["status"] = json!("inactive");
            v["period"]["end"] = json!(today);
        }
        ("Observation", End::NoLongerTrue) => {
            return Err(Failed::Invalid(
                "A measurement stays true for the date it was taken: add the new one instead."
                    .into(),
            ));
        }
        ("RelatedPerson", how) => {
            // RelatedPerson has no status: inactive from today, and an entry made in error
            // says so in its tag (kept in history, hidden from current views).
            v["active"] = json!(false);
            v["period"]["end"] = json!(today);
            if how == End::EnteredInError {
                tag_entered_in_error(&mut v);
            }
        }
        (_, End::EnteredInError) => v["status"] = json!("entered-in-error"),
        _ => v["active"] = json!(false),
    }
    let family = is_family(caller);
    set_awaiting(&mut v, family && how == End::NoLongerTrue);
    may_update(&mut guard, &stored, &v).await?;
    store_all(
        d,
        caller,
        vec![new_version(v, Some(&stored)).map_err(|e| Failed::Invalid(e.0))?],
    )
    .await
}

/// The caller's decision on replacing `stored` with `new` (both contents decided).
async fn may_update(guard: &mut Guard<'_>, stored: &Stored, new: &Value) -> Result<(), Failed> {
    guard
        .write(
            Action::Update,
            &stored.resource_type,
            &stored.id,
            Some(&stored.body),
            Some(new),
        )
        .await?;
    Ok(())
}
