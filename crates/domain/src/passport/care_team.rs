//! The child's care team as people manage it: who is in it (the organisations and the
//! individual professionals of the child's active `CareTeam`s), adding and removing them,
//! and the requests that ask for a change.
//!
//! Who may change it (docs/SECURITY.md §5.3): a member of the team in a health or
//! social-care role (clinician, nurse, allied health professional, social worker) adds or
//! removes organisations and professionals; the person in control of the passport may
//! remove either. Requests are FHIR `Communication`s about the child (`category` in
//! [`REQUEST_SYSTEM`], `sender` who asks, `about` the organisation or professional,
//! `in-progress` while waiting, then `completed` when agreed or `not-done` when declined;
//! R4 has no Task in the Patient compartment, and a request must stay in the child's
//! record so that it is decided and audited as the record is):
//!
//! - the family (anyone linked to the child, or the young person) **asks to add** an
//!   organisation; a health or social-care member of the team agrees (it is added) or
//!   declines;
//! - a professional outside the team **asks to join** by the child's NHS Number and date
//!   of birth; the person in control of the passport agrees (the professional joins as an
//!   individual member, not their whole organisation) or declines. Asking tells the
//!   professional nothing: the answer is the same whether or not there is such a child.
//!
//! Every change is a new version of the `CareTeam` or the request through `Records`, both
//! in one transaction where a request is agreed, each with an AuditEvent naming who made
//! it, so the family sees it in the access log. For a child whose address is hidden,
//! schools and GP practices (organisations, or professionals on their behalf) — which say
//! where the child studies or lives — are listed only to those who may see the address.

use access::{Action, CareTeamMember, Identity, Role, Sector};
use passport_store::StoreError;
use passport_store::Stored;
use serde::Serialize;
use serde_json::{Value, json};

use super::Failed;
use crate::Domain;
use crate::directory::{self, Organisation};
use crate::guard::Caller;
use crate::records::{Agent, new_version};

/// One organisation of the care team, as a page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub sector: &'static str,
}

/// One professional of the care team (a member in their own right, not their whole
/// organisation).
#[derive(Debug, Clone, Serialize)]
pub struct Professional {
    /// `Practitioner/{id}`.
    pub reference: String,
    pub name: String,
    /// "Clinician, Riverside Children's Hospital".
    pub role: String,
}

/// A request to change the care team, waiting for an answer.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub id: String,
    pub version: i64,
    /// `add-organisation` or `join`.
    pub kind: &'static str,
    /// What is asked, in words: "Add Hill Primary School", "Olu Oyelaran (Nurse, Hill GP
    /// Practice) asks to join".
    pub summary: String,
    pub asked_by: String,
    /// "2 December 2026".
    pub date: String,
    /// The caller may agree or decline it.
    pub may_answer: bool,
}

/// What the caller sees of the care team and may do with it.
#[derive(Debug, Clone, Serialize)]
pub struct Team {
    /// The child's name, for headings.
    pub name: String,
    pub members: Vec<Member>,
    pub professionals: Vec<Professional>,
    /// Organisations and professionals left out because they would reveal a hidden address.
    pub withheld: usize,
    pub may_add: bool,
    pub may_remove: bool,
    /// The family may ask for an organisation to be added.
    pub may_ask: bool,
    /// Requests the caller may answer, or made by them and still waiting.
    pub requests: Vec<Request>,
}

/// The code system of care-team requests (`Communication.category`).
pub const REQUEST_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/care-team-request";
/// The sector a professional member works in (`CareTeam.participant.role`), so that one
/// from a school or GP practice can be withheld where the child's address is hidden.
pub const MEMBER_SECTOR_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/member-sector";
/// The role a professional asks to join with (valueCodeableConcept, on the request).
pub const JOIN_ROLE_EXTENSION: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/care-team-role";

/// Sectors whose membership says where a child lives or studies.
fn reveals_location(sector: Sector) -> bool {
    matches!(sector, Sector::Education | Sector::GpPractice)
}

fn sector_words(sector: Sector) -> &'static str {
    match sector {
        Sector::HospitalTrust => "Hospital",
        Sector::GpPractice => "GP practice",
        Sector::CommunityHealth => "Community health",
        Sector::SocialCare => "Children's social care",
        Sector::Education => "School or nursery",
        Sector::Leisure => "Club or leisure",
        Sector::EmergencyServices => "Emergency services",
    }
}

/// May the caller add organisations (a health or social-care member of the team)?
fn may_add(caller: &Caller, facts: &access::ChildFacts) -> bool {
    match &caller.subject.identity {
        Identity::Staff(s) => {
            matches!(
                s.role,
                Role::Clinician | Role::Nurse | Role::AlliedHealthProfessional | Role::SocialWorker
            ) && facts.in_care_team(Some(&s.practitioner), Some(&s.organisation))
        }
        _ => false,
    }
}

/// May the caller remove members: a member who may add, or whoever controls the passport.
fn may_remove(d: &Domain, caller: &Caller, facts: &access::ChildFacts) -> bool {
    may_add(caller, facts) || controls(d, caller, facts)
}

/// Is the caller the person in control of the passport (decided as a change to the sharing
/// Consent, which only they may make)?
fn controls(d: &Domain, caller: &Caller, facts: &access::ChildFacts) -> bool {
    access::decide(
        &d.policy,
        &caller.subject,
        Action::Update,
        &access::ResourceFacts::new(
            "Consent",
            access::SectionSet::EMPTY,
            access::LabelSet::EMPTY,
        ),
        Some(facts),
        crate::facts::timestamp(crate::clock::now_us()),
    )
    .allow
}

/// Is the caller family linked to the child (or the young person themself)?
fn is_family_of(caller: &Caller, facts: &access::ChildFacts) -> Option<String> {
    match &caller.subject.identity {
        Identity::Family { person } => facts
            .family_link(person)
            .map(|l| format!("RelatedPerson/{}", l.related_person)),
        Identity::YoungPerson { patient } if *patient == facts.patient => {
            Some(format!("Patient/{patient}"))
        }
        _ => None,
    }
}

/// The care team as `caller` may see it; not found for someone with no relationship.
pub async fn team(d: &Domain, caller: &Caller, patient: &str) -> Result<Team, Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    let now = crate::facts::timestamp(crate::clock::now_us());
    let (may_add, may_remove) = (may_add(caller, &facts), may_remove(d, caller, &facts));
    let family = is_family_of(caller, &facts);
    // Anyone who may read some of the passport, or change the team, sees who is in it.
    if facts.patient.is_empty()
        || (!may_add
            && !may_remove
            && access::readable_sections(&d.policy, &caller.subject, &facts, now)
                == access::SectionSet::EMPTY)
    {
        return Err(Failed::NotFound);
    }
    let sees_address =
        !facts.address_hidden || access::sees_hidden_address(&caller.subject, &facts);
    let mut members = Vec::new();
    let mut withheld = 0;
    for m in &facts.care_team {
        let CareTeamMember::Organisation(id) = m else {
            continue;
        };
        let Some(o) = directory::organisation(d, id).await? else {
            continue;
        };
        if !sees_address && reveals_location(o.sector) {
            withheld += 1;
            continue;
        }
        members.push(Member {
            id: o.id,
            name: o.name,
            sector: sector_words(o.sector),
        });
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = super::compartment(d, patient).await?;
    let mut professionals = Vec::new();
    for team in rows
        .iter()
        .filter(|v| v["resourceType"] == "CareTeam" && v["status"] == "active")
    {
        for p in team["participant"].as_array().into_iter().flatten() {
            let Some(reference) = p["member"]["reference"]
                .as_str()
                .filter(|r| r.starts_with("Practitioner/"))
            else {
                continue;
            };
            if professionals
                .iter()
                .any(|x: &Professional| x.reference == reference)
            {
                continue;
            }
            let sector = p["role"][0]["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["system"] == MEMBER_SECTOR_SYSTEM)
                .and_then(|c| c["code"].as_str())
                .and_then(Sector::from_code);
            if !sees_address && sector.is_some_and(reveals_location) {
                withheld += 1;
                continue;
            }
            professionals.push(Professional {
                reference: reference.to_owned(),
                name: p["member"]["display"]
                    .as_str()
                    .unwrap_or("A professional")
                    .to_owned(),
                role: p["role"][0]["text"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    let controls = controls(d, caller, &facts);
    let mut requests = Vec::new();
    for t in rows.iter().filter(|v| is_open_request(v)) {
        let kind = request_kind(t);
        let may_answer = match kind {
            "add-organisation" => may_add,
            "join" => controls,
            _ => false,
        };
        let mine = family
            .as_deref()
            .is_some_and(|r| t["sender"]["reference"] == r);
        if !may_answer && !mine {
            continue;
        }
        requests.push(Request {
            id: t["id"].as_str().unwrap_or_default().to_owned(),
            version: t["meta"]["versionId"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            kind,
            summary: t["payload"][0]["contentString"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            asked_by: t["sender"]["display"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            date: t["sent"]
                .as_str()
                .and_then(crate::dates::long_date)
                .unwrap_or_default(),
            may_answer,
        });
    }
    let patient_json = d
        .records()
        .read("Patient", patient)
        .await?
        .and_then(|s| serde_json::from_slice::<Value>(&s.body).ok())
        .unwrap_or(Value::Null);
    Ok(Team {
        name: super::label(&patient_json),
        members,
        professionals,
        withheld,
        may_add,
        may_remove,
        may_ask: family.is_some() && !may_add,
        requests,
    })
}

/// A care-team request still waiting for an answer.
fn is_open_request(v: &Value) -> bool {
    v["resourceType"] == "Communication"
        && v["status"] == "in-progress"
        && !request_kind(v).is_empty()
}

fn request_kind(v: &Value) -> &'static str {
    let code = v["category"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .find(|c| c["system"] == REQUEST_SYSTEM)
        .and_then(|c| c["code"].as_str());
    match code {
        Some("add-organisation") => "add-organisation",
        Some("join") => "join",
        _ => "",
    }
}

/// An organisation that may join a care team (any in the directory but the region's own).
async fn team_organisation(d: &Domain, id: &str) -> Result<Organisation, Failed> {
    directory::organisation(d, id)
        .await?
        .filter(|o| !o.regional)
        .ok_or_else(|| Failed::Invalid("Choose an organisation from the list".into()))
}

/// Whether a request about `member` (`Type/id`) already waits in `patient`'s record.
async fn waiting(d: &Domain, patient: &str, member: &str) -> Result<bool, Failed> {
    Ok(super::compartment(d, patient)
        .await?
        .iter()
        .any(|t| is_open_request(t) && t["about"][0]["reference"] == member))
}

/// Stores a new request, audited as the caller who asks.
async fn store_request(d: &Domain, caller: &Caller, request: Value) -> Result<(), Failed> {
    let write = new_version(request, None).map_err(|e| Failed::Invalid(e.0))?;
    super::change::store_all(d, caller, vec![write]).await
}

/// A new request about `patient`'s care team, by `requester` (`Type/id`).
fn request(
    patient: &str,
    kind: &'static str,
    description: String,
    requester: (&str, &str),
    input: Value,
) -> Value {
    let display = match kind {
        "join" => "Asks to join the care team",
        _ => "Asks to add an organisation to the care team",
    };
    json!({
        "resourceType": "Communication",
        "id": crate::onboarding::new_id(),
        "status": "in-progress",
        "category": [{ "coding": [{ "system": REQUEST_SYSTEM, "code": kind, "display": display }] }],
        "subject": { "reference": format!("Patient/{patient}") },
        "sent": crate::clock::instant(crate::clock::now_us()),
        "sender": { "reference": requester.0, "display": requester.1 },
        "about": [input],
        "payload": [{ "contentString": description }],
    })
}

/// The family asks for `organisation` to be added to the care team: a request a health or
/// social-care member of the team answers. Asking again while one waits changes nothing.
pub async fn ask_to_add(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    organisation: &str,
) -> Result<(), Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    let Some(requester) = is_family_of(caller, &facts) else {
        return Err(Failed::NotFound);
    };
    let org = team_organisation(d, organisation).await?;
    if facts.in_care_team(None, Some(&org.id)) {
        return Err(Failed::Invalid(format!(
            "{} is already in the care team",
            org.name
        )));
    }
    let reference = format!("Organization/{}", org.id);
    if waiting(d, patient, &reference).await? {
        return Ok(());
    }
    let task = request(
        patient,
        "add-organisation",
        format!("Add {}", org.name),
        (&requester, &caller.who.person.display),
        json!({ "reference": reference, "display": org.name }),
    );
    store_request(d, caller, task).await
}

/// A professional asks to join the care team of the child with this NHS Number and date
/// of birth: a request the person in control of the passport answers. The answer is the
/// same whether or not there is such a child, or the professional is already in the team.
pub async fn ask_to_join(
    d: &Domain,
    caller: &Caller,
    nhs_number: &str,
    birth_date: &str,
) -> Result<(), Failed> {
    let Identity::Staff(s) = &caller.subject.identity else {
        return Err(Failed::Forbidden(
            "Only professionals ask to join a care team.".into(),
        ));
    };
    let Some(child) = crate::onboarding::find_child(d, nhs_number)
        .await?
        .filter(|c| c.birth_date == birth_date)
    else {
        return Ok(());
    };
    let facts = crate::facts::child_facts(d, &child.id).await?;
    if facts.in_care_team(Some(&s.practitioner), Some(&s.organisation)) {
        return Ok(());
    }
    let reference = format!("Practitioner/{}", s.practitioner);
    if waiting(d, &child.id, &reference).await? {
        return Ok(());
    }
    let org = directory::organisation(d, &s.organisation).await?;
    let org_name = org
        .as_ref()
        .map_or("their organisation", |o| o.name.as_str());
    let role = format!("{}, {org_name}", s.role.words());
    let name = &caller.who.person.display;
    let mut task = request(
        &child.id,
        "join",
        format!("{name} ({role}) asks to join"),
        (&reference, name),
        json!({ "reference": reference, "display": name }),
    );
    // The role and sector the professional would join with.
    task["extension"] = json!([{ "url": JOIN_ROLE_EXTENSION, "valueCodeableConcept": {
        "coding": [{ "system": MEMBER_SECTOR_SYSTEM, "code": s.sector.code() }],
        "text": role,
    } }]);
    store_request(d, caller, task).await
}

/// Agrees to or declines a request the caller may answer (the version they saw): agreed,
/// the member is added and the request completed in one transaction; declined, the
/// request is rejected.
pub async fn answer(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    request_id: &str,
    version: i64,
    agree: bool,
) -> Result<(), Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    let stored = d
        .records()
        .read("Communication", request_id)
        .await?
        .filter(|s| !s.deleted)
        .ok_or(Failed::NotFound)?;
    let mut task: Value = serde_json::from_slice(&stored.body).unwrap_or(Value::Null);
    if task["subject"]["reference"] != format!("Patient/{patient}").as_str()
        || !is_open_request(&task)
    {
        return Err(Failed::NotFound);
    }
    let kind = request_kind(&task);
    let may = match kind {
        "add-organisation" => may_add(caller, &facts),
        _ => controls(d, caller, &facts),
    };
    if !may {
        // Someone who may not see the team learns nothing of it, nor of its requests.
        return Err(match Box::pin(team(d, caller, patient)).await {
            Err(Failed::Store(e)) => Failed::Store(e),
            Err(_) => Failed::NotFound,
            Ok(_) if kind == "join" => Failed::Forbidden(
                "Only the person in control of the passport answers a request to join.".into(),
            ),
            Ok(_) => Failed::Forbidden(
                "A health or social-care professional in the care team answers this request."
                    .into(),
            ),
        });
    }
    if stored.version_id != version {
        return Err(Failed::Conflict);
    }
    task["status"] = json!(if agree { "completed" } else { "not-done" });
    if !agree {
        task["statusReason"] = json!({ "text": "Declined" });
    }
    task["received"] = json!(crate::clock::instant(crate::clock::now_us()));
    let mut answered_by = json!({ "display": caller.who.person.display });
    // The family by their RelatedPerson (or the young person's Patient), staff by their
    // Practitioner: what a Communication's recipient may name.
    let reference = is_family_of(caller, &facts).or_else(|| {
        caller
            .who
            .person
            .reference
            .clone()
            .filter(|r| r.starts_with("Practitioner/"))
    });
    if let Some(r) = reference {
        answered_by["reference"] = json!(r);
    }
    task["recipient"] = json!([answered_by]);
    let mut writes =
        vec![new_version(task.clone(), Some(&stored)).map_err(|e| Failed::Invalid(e.0))?];
    if agree {
        let member = &task["about"][0];
        let reference = member["reference"].as_str().unwrap_or_default();
        let mut entry = json!({ "member": member.clone() });
        if kind == "join" {
            // The professional alone, never their whole organisation (no onBehalfOf).
            if !reference.starts_with("Practitioner/") {
                return Err(Failed::Invalid("this request names no professional".into()));
            }
            let role = task["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["url"] == JOIN_ROLE_EXTENSION)
                .map(|e| e["valueCodeableConcept"].clone());
            if let Some(role) = role {
                entry["role"] = json!([role]);
            }
        } else if !reference.starts_with("Organization/") {
            return Err(Failed::Invalid("this request names no organisation".into()));
        }
        let team = active_team(d, patient).await?;
        let mut v: Value = serde_json::from_slice(&team.body).unwrap_or(Value::Null);
        add_participant(&mut v, entry);
        writes.push(new_version(v, Some(&team)).map_err(|e| Failed::Invalid(e.0))?);
    }
    super::change::store_all(d, caller, writes).await
}

/// Adds a participant unless one with the same member is there.
fn add_participant(team: &mut Value, entry: Value) {
    let reference = entry["member"]["reference"].clone();
    match team["participant"].as_array_mut() {
        Some(l) if l.iter().any(|p| p["member"]["reference"] == reference) => {}
        Some(l) => l.push(entry),
        None => team["participant"] = json!([entry]),
    }
}

/// The organisations a member may add (every organisation of the directory not in the team,
/// except the region's own).
pub async fn addable(d: &Domain, patient: &str) -> Result<Vec<Organisation>, Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    Ok(directory::list_organisations(d)
        .await?
        .into_iter()
        .filter(|o| !o.regional && !facts.in_care_team(None, Some(&o.id)))
        .collect())
}

/// The child's active CareTeam that the passport keeps (the first active one).
async fn active_team(d: &Domain, patient: &str) -> Result<Stored, Failed> {
    let rows = super::compartment(d, patient).await?;
    let team = rows
        .into_iter()
        .find(|v| v["resourceType"] == "CareTeam" && v["status"] == "active")
        .ok_or_else(|| Failed::Invalid("this passport has no active care team".into()))?;
    let id = team["id"].as_str().unwrap_or_default().to_owned();
    d.records()
        .read("CareTeam", &id)
        .await?
        .ok_or(Failed::NotFound)
}

/// Adds `organisation` to the child's care team.
pub async fn add(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    organisation: &str,
) -> Result<(), Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    if !may_add(caller, &facts) {
        return Err(forbidden_or_missing(d, caller, patient).await?);
    }
    let org = team_organisation(d, organisation).await?;
    change(d, caller, patient, |team| {
        add_participant(
            team,
            json!({ "member": { "reference": format!("Organization/{}", org.id), "display": org.name } }),
        );
    })
    .await
}

/// Removes a member from the child's care team: `member` is an organisation's id, or a
/// professional's `Practitioner/{id}`.
pub async fn remove(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    member: &str,
) -> Result<(), Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    if !may_remove(d, caller, &facts) {
        return Err(forbidden_or_missing(d, caller, patient).await?);
    }
    let reference = if member.starts_with("Practitioner/") {
        member.to_owned()
    } else {
        format!("Organization/{member}")
    };
    change(d, caller, patient, |team| {
        if let Some(l) = team["participant"].as_array_mut() {
            l.retain(|p| p["member"]["reference"] != reference.as_str());
        }
    })
    .await
}

async fn forbidden_or_missing(
    d: &Domain,
    caller: &Caller,
    patient: &str,
) -> Result<Failed, StoreError> {
    Ok(match team(d, caller, patient).await {
        Ok(_) => Failed::Forbidden(
            "Only health and social-care members of the care team add organisations; they, or whoever controls the passport, remove them.".into(),
        ),
        Err(Failed::Store(e)) => return Err(e),
        Err(_) => Failed::NotFound,
    })
}

/// A new version of the active CareTeam with `edit` applied, audited as the caller.
async fn change(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    edit: impl Fn(&mut Value),
) -> Result<(), Failed> {
    for _ in 0..crate::records::MAX_RETRIES {
        let stored = active_team(d, patient).await?;
        let mut v: Value = serde_json::from_slice(&stored.body).unwrap_or(Value::Null);
        edit(&mut v);
        let write = new_version(v, Some(&stored)).map_err(|e| Failed::Invalid(e.0))?;
        let agent = Agent::new(caller.who.clone(), caller.purpose);
        match d.records().write(&agent, write).await {
            Ok(_) => return Ok(()),
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Failed::Conflict)
}
