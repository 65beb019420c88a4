//! The child's care team as people manage it: who is in it (the organisations of the
//! child's active `CareTeam`s), and adding or removing an organisation.
//!
//! Who may change it (docs/SECURITY.md §5.3): a member of the team in a health or
//! social-care role (clinician, nurse, allied health professional, social worker) adds or
//! removes organisations; the person in control of the passport may remove one. The
//! change is a new version of the `CareTeam` through `Records`, with an AuditEvent naming
//! who made it, and the family sees it in the access log. For a child whose address is
//! hidden, schools and GP practices — which say where the child studies or lives — are
//! listed only to those who may see the address.

use access::{Action, CareTeamMember, Identity, Role, Sector};
use passport_store::StoreError;
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

/// What the caller sees of the care team and may do with it.
#[derive(Debug, Clone, Serialize)]
pub struct Team {
    /// The child's name, for headings.
    pub name: String,
    pub members: Vec<Member>,
    /// Organisations left out because they would reveal a hidden address.
    pub withheld: usize,
    pub may_add: bool,
    pub may_remove: bool,
}

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

/// May the caller remove organisations: a member who may add, or whoever controls the
/// passport (decided as a change to the sharing Consent, which only they may make).
fn may_remove(d: &Domain, caller: &Caller, facts: &access::ChildFacts) -> bool {
    may_add(caller, facts)
        || access::decide(
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

/// The care team as `caller` may see it; not found for someone with no relationship.
pub async fn team(d: &Domain, caller: &Caller, patient: &str) -> Result<Team, Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    let now = crate::facts::timestamp(crate::clock::now_us());
    let (may_add, may_remove) = (may_add(caller, &facts), may_remove(d, caller, &facts));
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
    let patient_json = d
        .records()
        .read("Patient", patient)
        .await?
        .and_then(|s| serde_json::from_slice::<Value>(&s.body).ok())
        .unwrap_or(Value::Null);
    Ok(Team {
        name: super::label(&patient_json),
        members,
        withheld,
        may_add,
        may_remove,
    })
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
async fn active_team(d: &Domain, patient: &str) -> Result<passport_store::Stored, Failed> {
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
    let org = directory::organisation(d, organisation)
        .await?
        .filter(|o| !o.regional)
        .ok_or_else(|| Failed::Invalid("Choose an organisation from the list".into()))?;
    change(d, caller, patient, |team| {
        let list = team["participant"].as_array_mut();
        let entry = json!({ "member": { "reference": format!("Organization/{}", org.id), "display": org.name } });
        match list {
            Some(l) if !l.iter().any(|p| p["member"]["reference"] == format!("Organization/{}", org.id)) => l.push(entry),
            Some(_) => {}
            None => team["participant"] = json!([entry]),
        }
    })
    .await
}

/// Removes `organisation` from the child's care team.
pub async fn remove(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    organisation: &str,
) -> Result<(), Failed> {
    let facts = crate::facts::child_facts(d, patient).await?;
    if !may_remove(d, caller, &facts) {
        return Err(forbidden_or_missing(d, caller, patient).await?);
    }
    let reference = format!("Organization/{organisation}");
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
