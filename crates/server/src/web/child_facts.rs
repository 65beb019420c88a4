//! A child's passport as the pages show it: the access facts (from `authz::facts`, the one
//! loader) and the child's name, NHS Number and date of birth.

use domain::Domain;
use domain::types::StoreError;
use serde_json::Value;

use access::ChildFacts;

use crate::AppState;

/// A child's passport: the facts, and what pages show about the child.
pub struct Passport {
    pub facts: ChildFacts,
    pub patient: Value,
    pub name: String,
    pub nhs_number: String,
    pub birth_date: String,
}

/// The child's passport, or `None` if there is no such (non-deleted) Patient. The facts
/// come from the one loader the API uses (`authz::facts`), cached and kept fresh there.
pub async fn load(st: &AppState, patient_id: &str) -> Result<Option<Passport>, StoreError> {
    let Some(stored) = st
        .domain
        .records()
        .read("Patient", patient_id)
        .await?
        .filter(|s| !s.deleted)
    else {
        return Ok(None);
    };
    let patient: Value = serde_json::from_slice(&stored.body).unwrap_or_default();
    let facts = crate::authz::facts::child_facts(&st.domain, patient_id)
        .await?
        .as_ref()
        .clone();
    let birth_date = patient["birthDate"].as_str().unwrap_or_default().to_owned();
    let name = &patient["name"][0];
    let display = match name["text"].as_str() {
        Some(t) => t.to_owned(),
        None => format!(
            "{} {}",
            name["given"][0].as_str().unwrap_or_default(),
            name["family"].as_str().unwrap_or_default()
        )
        .trim()
        .to_owned(),
    };
    let nhs_number = fhir::nhs_number::of(&patient)
        .unwrap_or_default()
        .to_owned();
    Ok(Some(Passport {
        facts,
        patient,
        name: display,
        nhs_number,
        birth_date,
    }))
}

/// The children a family member's Person is actively linked to: `(patient id, name)`.
pub async fn family_children(
    d: &Domain,
    person_id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::new();
    for patient in super::onboarding::linked_patients(d, person_id, true).await? {
        let patient = patient.as_str();
        if let Some(c) = d
            .records()
            .read("Patient", patient)
            .await?
            .filter(|s| !s.deleted)
        {
            let cv: Value = serde_json::from_slice(&c.body).unwrap_or_default();
            let name = cv["name"][0]["given"][0]
                .as_str()
                .or(cv["name"][0]["text"].as_str())
                .unwrap_or("your child")
                .to_owned();
            out.push((patient.to_owned(), name));
        }
    }
    Ok(out)
}

/// How long before the hand-over the family and the young person are reminded.
pub const HANDOVER_REMINDER_DAYS: u32 = 90;

/// The reminder to show while the young person's hand-over is near (growing up:
/// `access::handover_reminder_due`), in plain words; `None` otherwise.
pub fn handover_reminder(p: &Passport, now_us: i64) -> Option<String> {
    let policy = access::RegionalPolicy::default();
    let now = crate::authz::facts::timestamp(now_us);
    if !access::handover_reminder_due(&p.facts, &policy, now, HANDOVER_REMINDER_DAYS) {
        return None;
    }
    let date = access::handover_date(&p.facts, &policy)?;
    let day = crate::audit::uk_time(date.start().unix() * 1_000_000);
    let day = day.split(" at ").next().unwrap_or(&day);
    Some(format!(
        "{name} turns {age} on {day}. From that day {name} decides who can see the passport, \
         including what you see. Talk to {name} about it before then.",
        name = p.name,
        age = policy.handover_age,
    ))
}
