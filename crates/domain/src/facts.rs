//! Facts about a child for `access::decide`, loaded from the FHIR data described in
//! docs/DATA-MODEL.md and cached per child.
//!
//! | fact | from |
//! |---|---|
//! | birth date, hidden address | the `Patient` |
//! | Gillick competence, lack of capacity, looked after | `Patient` extensions [`GILLICK_EXTENSION`], [`LACKS_CAPACITY_EXTENSION`], [`LOOKED_AFTER_EXTENSION`] (valueBoolean) |
//! | family links | active `RelatedPerson`s of the child, each with the `Person` whose `link` names it |
//! | court order, granted sections | `RelatedPerson` extensions [`COURT_ORDER_EXTENSION`], [`GRANTED_EXTENSION`] (valueCode: a section code, or `all`) |
//! | care team | active `CareTeam`s of the child; `PractitionerRole` members resolve to their practitioner |
//! | sharing choices | active `Consent`s of the child |
//! | break-glass | `Store::break_glass_for_patient` (a new grant calls [`FactsCache::forget`]) |
//!
//! **Freshness.** A writer of any of those resources calls [`FactsCache::wrote`] (through
//! `Records`, as one of its observers), which forgets the children concerned — or everything,
//! for changes whose old version could have named another child (updates and deletes of
//! RelatedPerson, CareTeam, Consent; any Person or PractitionerRole). Entries also expire
//! after [`MAX_AGE_US`], so time-limited facts (a care team's `period`) and writes by other
//! processes (`passport admin`) are seen within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use access::{
    BreakGlassGrant, CareTeamMember, ChildFacts, Date, FamilyLink, FamilyRole, Section, SectionSet,
    SharingChoices, Timestamp,
};
use passport_store::StoreError;
use serde_json::Value;

use crate::Domain;

pub const GILLICK_EXTENSION: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/gillick-competent";
pub const LACKS_CAPACITY_EXTENSION: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/lacks-capacity";
pub const LOOKED_AFTER_EXTENSION: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/looked-after";
pub const PARENTAL_RESPONSIBILITY_EXTENSION: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/parental-responsibility";
pub const COURT_ORDER_EXTENSION: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/court-order-restricts";
pub const GRANTED_EXTENSION: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/granted-section";

/// How long a child's facts are trusted without a reload.
pub const MAX_AGE_US: i64 = 30_000_000;
/// The most children whose facts are kept (the cache is emptied when it fills).
const MAX_CHILDREN: usize = 50_000;
/// The most related resources of one kind read for one child.
const MAX_RELATED: usize = 1_000;

/// Resource types whose writes change some child's facts.
pub const FACT_TYPES: &[&str] = &[
    "Patient",
    "RelatedPerson",
    "Person",
    "CareTeam",
    "Consent",
    "PractitionerRole",
];

#[derive(Default)]
pub struct FactsCache {
    map: Mutex<HashMap<String, (i64, Arc<ChildFacts>)>>,
    /// Moves on every change that may alter some child's facts, so what was built from
    /// them (a caller's search views) is rebuilt.
    generation: std::sync::atomic::AtomicU64,
}

impl FactsCache {
    fn get(&self, patient: &str, now_us: i64) -> Option<Arc<ChildFacts>> {
        let m = self.map.lock().ok()?;
        m.get(patient)
            .filter(|(at, _)| now_us - at < MAX_AGE_US)
            .map(|(_, f)| f.clone())
    }

    fn put(&self, patient: &str, now_us: i64, facts: Arc<ChildFacts>) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= MAX_CHILDREN {
                m.clear();
            }
            m.insert(patient.to_owned(), (now_us, facts));
        }
    }

    /// The current generation (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Forgets what a write may have changed: `resource_type`, whether it replaced an
    /// earlier version, and the new body (empty for a deletion).
    pub fn wrote(&self, resource_type: &str, id: &str, replaced: bool, body: &[u8]) {
        if !FACT_TYPES.contains(&resource_type) {
            return;
        }
        // Forget first, then move the generation: a view built in between sees the old
        // generation and is not kept.
        let _moved = Moved(self);
        let Ok(mut m) = self.map.lock() else { return };
        match resource_type {
            "Patient" => {
                m.remove(id);
            }
            "RelatedPerson" | "CareTeam" | "Consent" if !replaced => {
                let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                for p in fhir::compartment::patients_of(&v) {
                    m.remove(&p);
                }
            }
            _ => m.clear(),
        }
    }

    /// Forgets one child's facts (after a change made outside [`crate::Records`], e.g. a
    /// break-glass grant or a family link made by the onboarding pages).
    pub fn forget(&self, patient: &str) {
        let _moved = Moved(self);
        if let Ok(mut m) = self.map.lock() {
            m.remove(patient);
        }
    }

    /// Forgets every child's facts.
    pub fn forget_all(&self) {
        let _moved = Moved(self);
        if let Ok(mut m) = self.map.lock() {
            m.clear();
        }
    }
}

impl crate::records::Observer for FactsCache {
    fn stored(&self, w: &crate::records::Observed) {
        self.wrote(&w.resource_type, &w.id, w.replaced, &w.body);
    }
}

/// Moves the generation when dropped, i.e. after the forgetting it guards.
struct Moved<'a>(&'a FactsCache);

impl Drop for Moved<'_> {
    fn drop(&mut self) {
        self.0
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The facts about `patient` (cached). A patient that does not exist has empty facts:
/// no family, no care team — nobody but a regional system reaches its records.
pub async fn child_facts(st: &Domain, patient: &str) -> Result<Arc<ChildFacts>, StoreError> {
    let now_us = crate::clock::now_us();
    if let Some(f) = st.facts.get(patient, now_us) {
        return Ok(f);
    }
    let facts = Arc::new(load(st, patient, now_us).await?);
    st.facts.put(patient, now_us, facts.clone());
    Ok(facts)
}

fn flag(resource: &Value, url: &str) -> bool {
    extensions(resource, url).any(|e| e.get("valueBoolean").and_then(Value::as_bool) == Some(true))
}

fn extensions<'a>(resource: &'a Value, url: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    resource
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |e| e.get("url").and_then(Value::as_str) == Some(url))
}

/// The sections named by `valueCode`s of the extension `url` (`all` = every section).
fn sections(resource: &Value, url: &str) -> Option<SectionSet> {
    let mut set = SectionSet::EMPTY;
    let mut any = false;
    for e in extensions(resource, url) {
        any = true;
        match e.get("valueCode").and_then(Value::as_str) {
            Some("all") => set = SectionSet::ALL,
            Some(code) => {
                if let Some(s) = Section::from_code(code) {
                    set.insert(s);
                }
            }
            None => {}
        }
    }
    any.then_some(set)
}

fn family_role(rp: &Value) -> FamilyRole {
    let codes = rp
        .get("relationship")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|cc| cc.get("coding").and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("code").and_then(Value::as_str));
    let mut role = FamilyRole::Other;
    for code in codes {
        match code {
            "MTH" | "FTH" | "PRN" | "NMTH" | "NFTH" => role = FamilyRole::Parent,
            "PRNFOST" => return FamilyRole::FosterCarer,
            _ => {}
        }
    }
    role
}

/// Current resources of `resource_type` whose reference parameter `param` names one of
/// `targets` (of type `target_type`), bodies parsed: one indexed query (the store's
/// `_revinclude`).
pub async fn referring(
    records: &crate::Records<'_>,
    resource_type: &str,
    param: &str,
    target_type: &str,
    targets: &[String],
) -> Result<Vec<Value>, StoreError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = records
        .revinclude(resource_type, Some(param), target_type, targets)
        .await?;
    found.truncate(MAX_RELATED);
    Ok(found
        .into_iter()
        .filter_map(|m| serde_json::from_slice(&m.body).ok())
        .collect())
}

/// The child's own resources the facts come from, in one statement, by resource type: the
/// Patient, and the current RelatedPersons, CareTeams and Consents naming it (`patient`), at
/// most [`MAX_RELATED`] of each. A child's facts are loaded on the first decision about the
/// child in 30 seconds — every page of a caseload — so one round trip, not four.
async fn own_resources(
    st: &Domain,
    patient: &str,
) -> Result<HashMap<String, Vec<Value>>, StoreError> {
    let kinds = ["RelatedPerson", "CareTeam", "Consent"];
    let q = passport_store::search::EverythingQuery {
        patient_id: patient.to_owned(),
        members: kinds
            .iter()
            .map(|t| (t.to_string(), vec!["patient".to_owned()]))
            .collect(),
        since_us: None,
        count: (kinds.len() + 1) * MAX_RELATED,
        after: None,
    };
    let found = st
        .records()
        .everything(&q, passport_store::search::Visibility::System)
        .await?;
    if found.len() >= q.count {
        // Cut short: one type's rows could have crowded out another's — the Patient's
        // itself, which would leave the child with no facts. Read each type on its own.
        return own_resources_by_type(st, patient, &kinds).await;
    }
    let mut by_type: HashMap<String, Vec<Value>> = HashMap::new();
    for m in found {
        let of_type = by_type.entry(m.resource_type).or_default();
        if of_type.len() < MAX_RELATED
            && let Ok(v) = serde_json::from_slice(&m.body)
        {
            of_type.push(v);
        }
    }
    Ok(by_type)
}

/// [`own_resources`] one type at a time (at most [`MAX_RELATED`] of each, none crowding out
/// another), for the rare child whose rows overflow the single statement.
async fn own_resources_by_type(
    st: &Domain,
    patient: &str,
    kinds: &[&str],
) -> Result<HashMap<String, Vec<Value>>, StoreError> {
    let mut by_type = HashMap::new();
    let stored = st.store().read("Patient", patient).await?;
    let body = stored.filter(|s| !s.deleted).map(|s| s.body);
    let p = body.and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    by_type.insert("Patient".to_owned(), p.into_iter().collect());
    let me = [patient.to_owned()];
    for kind in kinds {
        let found = referring(&st.records(), kind, "patient", "Patient", &me).await?;
        by_type.insert((*kind).to_owned(), found);
    }
    Ok(by_type)
}

async fn load(st: &Domain, patient: &str, now_us: i64) -> Result<ChildFacts, StoreError> {
    let mut facts = ChildFacts::new(patient);
    let mut own = own_resources(st, patient).await?;
    let mut of_type = |t: &str| own.remove(t).unwrap_or_default();
    let patients = of_type("Patient");
    let Some(p) = patients
        .iter()
        .find(|v| v.get("id").and_then(Value::as_str) == Some(patient))
    else {
        return Ok(facts);
    };
    facts.birth_date = p
        .get("birthDate")
        .and_then(Value::as_str)
        .and_then(|d| Date::parse(d).ok());
    facts.gillick_competent = flag(p, GILLICK_EXTENSION);
    facts.lacks_capacity = flag(p, LACKS_CAPACITY_EXTENSION);
    facts.looked_after = flag(p, LOOKED_AFTER_EXTENSION);
    facts.address_hidden = access::address_hidden(p);
    let store = st.store();

    // Family: active RelatedPersons, and the Person (sign-in) linking to each.
    let related = of_type("RelatedPerson");
    let active: Vec<&Value> = related
        .iter()
        .filter(|rp| rp.get("active").and_then(Value::as_bool) == Some(true))
        .collect();
    let ids: Vec<String> = active
        .iter()
        .filter_map(|rp| rp.get("id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let people = referring(&st.records(), "Person", "link", "RelatedPerson", &ids).await?;
    for rp in active {
        let Some(rp_id) = rp.get("id").and_then(Value::as_str) else {
            continue;
        };
        let target = format!("RelatedPerson/{rp_id}");
        let person = people.iter().find(|person| {
            person.get("active").and_then(Value::as_bool) != Some(false)
                && person
                    .get("link")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|l| {
                        l.pointer("/target/reference").and_then(Value::as_str)
                            == Some(target.as_str())
                    })
        });
        let Some(person_id) = person.and_then(|p| p.get("id")).and_then(Value::as_str) else {
            continue;
        };
        let mut link = FamilyLink::new(
            person_id,
            rp_id,
            family_role(rp),
            flag(rp, PARENTAL_RESPONSIBILITY_EXTENSION),
        );
        link.court_order = sections(rp, COURT_ORDER_EXTENSION);
        link.granted = sections(rp, GRANTED_EXTENSION).unwrap_or(SectionSet::EMPTY);
        facts.family.push(link);
    }

    // Care team: active CareTeams (filtered by `from_care_teams`); PractitionerRole
    // members are their practitioner.
    let now = timestamp(now_us);
    let mut teams = of_type("CareTeam");
    for team in &mut teams {
        resolve_practitioner_roles(st, team).await?;
    }
    facts.care_team = CareTeamMember::from_care_teams(&teams, now);

    let consents = of_type("Consent");
    facts.sharing = SharingChoices::from_consents(&consents);

    facts.break_glass = store
        .break_glass_for_patient(patient)
        .await?
        .into_iter()
        .map(|g| BreakGlassGrant {
            practitioner: g.practitioner_id,
            reason: g.reason,
            starts: timestamp(g.starts_us),
            expires: timestamp(g.expires_us),
        })
        .collect();
    Ok(facts)
}

/// A store time (microseconds) as the decision's time (seconds).
pub fn timestamp(us: i64) -> Timestamp {
    Timestamp::from_unix(us.div_euclid(1_000_000))
}

/// Rewrites `participant[].member` references to PractitionerRoles as the practitioner
/// they name (a PractitionerRole member is one person, not their whole organisation).
async fn resolve_practitioner_roles(st: &Domain, team: &mut Value) -> Result<(), StoreError> {
    let Some(parts) = team.get_mut("participant").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for p in parts {
        let Some(id) = p
            .pointer("/member/reference")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("PractitionerRole/"))
            .map(str::to_owned)
        else {
            continue;
        };
        let practitioner = match st.store().read("PractitionerRole", &id).await? {
            Some(s) if !s.deleted => serde_json::from_slice::<Value>(&s.body).ok().and_then(|r| {
                r.pointer("/practitioner/reference")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
            _ => None,
        };
        p["member"] = match practitioner {
            Some(r) => serde_json::json!({ "reference": r }),
            None => Value::Null,
        };
    }
    Ok(())
}
