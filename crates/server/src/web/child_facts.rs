//! Loads what the access decision needs to know about one child (`access::ChildFacts`)
//! from the FHIR resources and the store, as docs/DATA-MODEL.md describes them: the
//! Patient, the child's RelatedPersons (family links; the adult's Person is found through
//! the login identifier the RelatedPerson repeats), active CareTeams, the sharing Consents
//! and the break-glass grants.
//!
//! Not yet represented in FHIR, so never set here: Gillick competence, lack of capacity,
//! looked-after status, court orders and social-worker grants (all default to "no").
//! CareTeam members given as `PractitionerRole/…` are not resolved (onboarding writes
//! organisations).

use access::{BreakGlassGrant, CareTeamMember, ChildFacts, FamilyLink, FamilyRole};
use passport_store::{Store, StoreError};
use serde_json::Value;

use super::directory::LOGIN_SYSTEM;
use super::guard::timestamp;
use super::onboarding::PARENTAL_RESPONSIBILITY_EXTENSION;

/// A child's passport: the facts, and what pages show about the child.
pub struct Passport {
    pub facts: ChildFacts,
    pub patient: Value,
    pub name: String,
    pub nhs_number: String,
    pub birth_date: String,
}

/// Current, non-deleted resources of `resource_type` whose reference `param` names the
/// child.
pub async fn of_child(
    store: &Store,
    resource_type: &str,
    param: &str,
    patient_id: &str,
) -> Result<Vec<(String, i64, Value)>, StoreError> {
    Ok(store
        .revinclude(
            resource_type,
            Some(param),
            "Patient",
            &[patient_id.to_owned()],
        )
        .await?
        .into_iter()
        .filter_map(|m| {
            let v = serde_json::from_slice(&m.body).ok()?;
            Some((m.id, m.version_id, v))
        })
        .collect())
}

fn family_role(related: &Value) -> FamilyRole {
    let code = related
        .pointer("/relationship/0/coding/0/code")
        .and_then(Value::as_str)
        .unwrap_or("");
    match code {
        "MTH" | "FTH" | "PRN" => FamilyRole::Parent,
        "PRNFOST" => FamilyRole::FosterCarer,
        _ => FamilyRole::Other,
    }
}

fn parental_responsibility(related: &Value) -> bool {
    related["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["url"] == PARENTAL_RESPONSIBILITY_EXTENSION && e["valueBoolean"] == true)
}

/// The child's passport, or `None` if there is no such (non-deleted) Patient.
pub async fn load(
    store: &Store,
    patient_id: &str,
    now_us: i64,
) -> Result<Option<Passport>, StoreError> {
    let Some(stored) = store
        .read("Patient", patient_id)
        .await?
        .filter(|s| !s.deleted)
    else {
        return Ok(None);
    };
    let patient: Value = serde_json::from_slice(&stored.body).unwrap_or_default();
    let now = timestamp(now_us);
    let mut facts = ChildFacts::new(patient_id);
    let birth_date = patient["birthDate"].as_str().unwrap_or_default().to_owned();
    facts.birth_date = access::Date::parse(&birth_date).ok();
    facts.address_hidden = access::address_hidden(&patient);

    for (id, _, rp) in of_child(store, "RelatedPerson", "patient", patient_id).await? {
        if rp["active"] != true {
            continue;
        }
        let login = rp["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["system"] == LOGIN_SYSTEM)
            .and_then(|i| i["value"].as_str());
        let Some(login) = login else { continue };
        let person = store
            .account_by_login(login)
            .await?
            .and_then(|a| a.person_id);
        if let Some(person) = person {
            facts.family.push(FamilyLink::new(
                &person,
                &id,
                family_role(&rp),
                parental_responsibility(&rp),
            ));
        }
    }

    let teams: Vec<Value> = of_child(store, "CareTeam", "subject", patient_id)
        .await?
        .into_iter()
        .map(|(_, _, v)| v)
        .collect();
    facts.care_team = CareTeamMember::from_care_teams(&teams, now);

    let consents: Vec<Value> = of_child(store, "Consent", "patient", patient_id)
        .await?
        .into_iter()
        .map(|(_, _, v)| v)
        .collect();
    facts.sharing = access::SharingChoices::from_consents(&consents);

    facts.break_glass = store
        .break_glass_for_patient(patient_id)
        .await?
        .into_iter()
        .map(|g| BreakGlassGrant {
            practitioner: g.practitioner_id,
            reason: g.reason,
            starts: timestamp(g.starts_us),
            expires: timestamp(g.expires_us),
        })
        .collect();

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
    let nhs_number = patient["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["system"] == fhir::nhs_number::SYSTEM)
        .and_then(|i| i["value"].as_str())
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
    store: &Store,
    person_id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let Some(person) = store
        .read("Person", person_id)
        .await?
        .filter(|s| !s.deleted)
    else {
        return Ok(Vec::new());
    };
    let pv: Value = serde_json::from_slice(&person.body).unwrap_or_default();
    let mut out = Vec::new();
    for l in pv["link"].as_array().into_iter().flatten() {
        let Some(rp) = l["target"]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("RelatedPerson/"))
        else {
            continue;
        };
        let Some(s) = store
            .read("RelatedPerson", rp)
            .await?
            .filter(|s| !s.deleted)
        else {
            continue;
        };
        let v: Value = serde_json::from_slice(&s.body).unwrap_or_default();
        let Some(patient) = v["patient"]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("Patient/"))
            .filter(|_| v["active"] == true)
        else {
            continue;
        };
        if let Some(c) = store.read("Patient", patient).await?.filter(|s| !s.deleted) {
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
