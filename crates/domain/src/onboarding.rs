//! Family onboarding, the service: the ways a parent or carer gets into a child's passport.
//! The pages are the server's `web::onboarding`.
//!
//! - **Clinic invitation** (`/onboarding/invite`, staff): find the child by NHS Number or
//!   create their passport (a `Patient` and a `CareTeam` with the staff member's
//!   organisation), then issue a one-time code (also a link and a QR code). The parent
//!   redeems it at `/join` (or `/join/{code}`), using their family sign-in or asking for a
//!   new one (verified by email, below), and is bound to the child.
//! - **Self-registration** (`/register`): the parent gives the child's NHS Number and date
//!   of birth; if they match a passport, a *pending* link is made (`RelatedPerson.active =
//!   false`), which a professional in the child's care team confirms or declines at
//!   `/onboarding/requests`. The answer is the same whether or not the child exists.
//! - **New sign-ins wait for their email address to be verified** ([`begin_registration`],
//!   `/verify-email/{token}`): the same "check your email" page whether or not the address
//!   already has a sign-in, rate limits per address and per client IP, and the sign-in is
//!   made only when the emailed link is followed (docs/SECURITY.md, "Self-registration").
//! - **Bulk import**: `passport admin import-clinic-list` ([`import_clinic_list`]).
//!
//! The family link is FHIR (docs/DATA-MODEL.md): the adult's `Person.link[].target` names
//! one `RelatedPerson` per child; `RelatedPerson.patient` is the child, `relationship` a
//! v3-RoleCode, the [`PARENTAL_RESPONSIBILITY_EXTENSION`] a boolean. Everything is written
//! through the validated, versioned, indexed resource path. Invitation codes and activity
//! times are in the store (`passport_store::onboarding`).

use std::collections::HashSet;

use passport_store::accounts::Account;
use passport_store::onboarding::Invitation;
use passport_store::{StoreError, SystemMatch, TokenCriterion, Write};
use serde_json::{Value, json};

use crate::Domain;
use crate::auth;
use crate::clock;
use crate::directory::{self, DirectoryError, LOGIN_SYSTEM};
use crate::records::{self, Agent, new_version};

/// Whether the adult holds parental responsibility for the child (valueBoolean).
pub const PARENTAL_RESPONSIBILITY_EXTENSION: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/parental-responsibility";
/// HL7 v3 RoleCode (R4): the family relationship of a RelatedPerson.
pub const ROLE_CODE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
/// `meta.tag` of a self-registered link waiting for a professional (code `pending`).
pub const LINK_STATUS_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/passport-link-status";
/// How long an invitation works unless told otherwise.
pub const DEFAULT_INVITATION_SECS: i64 = 14 * 24 * 3600;
/// Invitation codes: Crockford's base-32 alphabet (no I, L, O, U), 10 characters = 50 bits.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
pub const CODE_CHARS: usize = 10;

/// The relationships offered (v3-RoleCode code, label). Parental responsibility is
/// recorded for all but foster parents and other family members (see docs/DATA-MODEL.md).
pub const RELATIONSHIPS: &[(&str, &str)] = &[
    ("MTH", "Mother"),
    ("FTH", "Father"),
    ("PRN", "Parent"),
    ("GUARD", "Guardian"),
    ("PRNFOST", "Foster parent"),
    ("FAMMEMB", "Other family member"),
];

pub fn relationship_label(code: &str) -> Option<&'static str> {
    RELATIONSHIPS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, l)| *l)
}

/// Parental responsibility implied by the relationship (a foster parent's sits with the
/// local authority; another family member's needs a court order, recorded by staff).
pub fn implies_parental_responsibility(code: &str) -> bool {
    !matches!(code, "PRNFOST" | "FAMMEMB")
}

// ---------------------------------------------------------------------------------------
// Codes

/// A new random invitation code (10 characters of [`CODE_ALPHABET`]).
pub fn new_code() -> String {
    auth::random_bytes::<CODE_CHARS>()
        .iter()
        .map(|b| char::from(CODE_ALPHABET[usize::from(b & 31)]))
        .collect()
}

/// A code as typed → its canonical form: case, spaces and hyphens ignored; O read as 0,
/// I and L as 1. `None` if it cannot be a code.
pub fn normalise_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    (code.len() == CODE_CHARS && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

/// `ABCDE-FGHJK`, as shown to people.
pub fn display_code(code: &str) -> String {
    if code.len() == CODE_CHARS {
        format!("{}-{}", &code[..5], &code[5..])
    } else {
        code.to_owned()
    }
}

pub fn join_link(base_url: &str, code: &str) -> String {
    format!("{}/join/{code}", base_url.trim_end_matches('/'))
}

// ---------------------------------------------------------------------------------------
// Children (passports)

/// A child's passport as onboarding sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub id: String,
    pub nhs_number: String,
    pub given: String,
    pub family: String,
    pub birth_date: String,
}

impl Child {
    pub fn of(id: &str, body: &[u8]) -> Option<Child> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let nhs = v["identifier"]
            .as_array()?
            .iter()
            .find(|i| i["system"] == fhir::nhs_number::SYSTEM)?["value"]
            .as_str()?
            .to_owned();
        let name = &v["name"][0];
        Some(Child {
            id: id.to_owned(),
            nhs_number: nhs,
            given: name["given"][0].as_str().unwrap_or_default().to_owned(),
            family: name["family"].as_str().unwrap_or_default().to_owned(),
            birth_date: v["birthDate"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

/// An NHS Number as typed (spaces allowed) → 10 digits, if the modulus-11 check passes.
pub fn parse_nhs_number(typed: &str) -> Option<String> {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    fhir::nhs_number::NhsNumber::parse(&digits).ok()?;
    Some(digits)
}

/// A date of birth as typed (`YYYY-MM-DD`, `D/M/YYYY` or `D M YYYY`) → `YYYY-MM-DD`, if it
/// is a real date and not in the future.
pub fn parse_birth_date(typed: &str) -> Option<String> {
    let t = typed.trim();
    let parts: Vec<&str> = if t.contains('-') {
        t.split('-').collect()
    } else {
        let mut p: Vec<&str> = t.split(['/', ' ']).filter(|s| !s.is_empty()).collect();
        p.reverse();
        p
    };
    let [y, m, d] = parts.as_slice() else {
        return None;
    };
    if y.len() != 4 {
        return None;
    }
    let (y, m, d): (i32, u8, u8) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    let today = time::OffsetDateTime::from_unix_timestamp(clock::now_us() / 1_000_000)
        .ok()?
        .date();
    (date <= today && y >= 1900).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

/// The child with this NHS Number (10 digits), if there is a passport.
pub async fn find_child(d: &Domain, nhs_number: &str) -> Result<Option<Child>, StoreError> {
    let ids = d
        .records()
        .find_by_tokens(
            "Patient",
            &[TokenCriterion {
                param: "identifier".into(),
                system: SystemMatch::Is(fhir::nhs_number::SYSTEM.into()),
                code: nhs_number.to_owned(),
            }],
        )
        .await?;
    for id in ids {
        if let Some(s) = d
            .records()
            .read("Patient", &id)
            .await?
            .filter(|s| !s.deleted)
            && let Some(c) = Child::of(&id, &s.body)
        {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The writes that create a child's passport: the `Patient` (refused if a passport with
/// this NHS Number appeared meanwhile) and an active `CareTeam` with `organisation_id`.
pub fn new_child_writes(
    child: &Child,
    organisation_id: &str,
) -> Result<Vec<Write>, DirectoryError> {
    new_child_writes_with_team(child, &[organisation_id.to_owned()])
}

/// As [`new_child_writes`], with every organisation in `organisation_ids` in the care team.
pub fn new_child_writes_with_team(
    child: &Child,
    organisation_ids: &[String],
) -> Result<Vec<Write>, DirectoryError> {
    let participants: Vec<Value> = organisation_ids
        .iter()
        .map(|id| json!({ "member": { "reference": format!("Organization/{id}") } }))
        .collect();
    let mut patient = new_version(
        json!({
            "resourceType": "Patient", "id": child.id,
            "identifier": [{ "system": fhir::nhs_number::SYSTEM, "value": child.nhs_number }],
            "name": [{ "use": "official", "family": child.family, "given": [child.given] }],
            "birthDate": child.birth_date,
        }),
        None,
    )?;
    patient.unless_exists = Some(vec![TokenCriterion {
        param: "identifier".into(),
        system: SystemMatch::Is(fhir::nhs_number::SYSTEM.into()),
        code: child.nhs_number.clone(),
    }]);
    let team = new_version(
        json!({
            "resourceType": "CareTeam", "id": new_id(), "status": "active",
            "name": "Passport care team",
            "subject": { "reference": format!("Patient/{}", child.id) },
            "participant": participants,
        }),
        None,
    )?;
    Ok(vec![patient, team])
}

/// A new invitation for `patient_id` and its code (shown once; only the hash is kept).
pub fn new_invitation(
    patient_id: &str,
    issued_by: Option<&Account>,
    organisation_id: Option<&str>,
    parent_email: Option<&str>,
    now: i64,
    valid_secs: i64,
) -> (Invitation, String) {
    let code = new_code();
    (
        Invitation {
            id: new_id(),
            code_hash: auth::token_hash(&code),
            patient_id: patient_id.to_owned(),
            issued_by_account: issued_by.map(|a| a.id.clone()),
            organisation_id: organisation_id.map(str::to_owned),
            parent_email: parent_email.map(str::to_owned),
            created_us: now,
            expires_us: now + valid_secs * 1_000_000,
            redeemed_us: None,
            redeemed_by: None,
            revoked_us: None,
        },
        code,
    )
}

// ---------------------------------------------------------------------------------------
// Family links

/// Links the family account's `Person` to the child through a new `RelatedPerson`, in one
/// transaction (RelatedPerson + the Person's next version with the new `link`). `active`
/// false makes it a pending self-registration (tagged [`LINK_STATUS_SYSTEM`]`|pending`).
/// Returns the RelatedPerson id.
pub async fn bind(
    d: &Domain,
    actor: &Agent,
    account: &Account,
    patient_id: &str,
    relationship: &str,
    active: bool,
) -> Result<String, DirectoryError> {
    let records = d.records();
    let person_id = account
        .person_id
        .clone()
        .ok_or_else(|| DirectoryError::Invalid("not a family account".into()))?;
    let rp_id = new_id();
    let label = relationship_label(relationship).unwrap_or("Parent");
    for _ in 0..3 {
        let person = d
            .records()
            .read("Person", &person_id)
            .await?
            .filter(|s| !s.deleted)
            .ok_or_else(|| DirectoryError::NotFound("the family member's Person".into()))?;
        let mut pv: Value = serde_json::from_slice(&person.body)
            .map_err(|e| DirectoryError::Invalid(e.to_string()))?;
        let mut rp = json!({
            "resourceType": "RelatedPerson", "id": rp_id,
            "extension": [{ "url": PARENTAL_RESPONSIBILITY_EXTENSION,
                            "valueBoolean": implies_parental_responsibility(relationship) }],
            "identifier": [{ "system": LOGIN_SYSTEM, "value": account.login }],
            "active": active,
            "patient": { "reference": format!("Patient/{patient_id}") },
            "relationship": [{ "coding": [{ "system": ROLE_CODE_SYSTEM, "code": relationship, "display": label }] }],
            "telecom": [{ "system": "email", "value": account.login, "use": "home" }],
        });
        if !pv["name"].is_null() {
            rp["name"] = pv["name"].clone();
        }
        if !active {
            rp["meta"] = json!({ "tag": [{ "system": LINK_STATUS_SYSTEM, "code": "pending" }] });
        }
        let link = json!({ "target": { "reference": format!("RelatedPerson/{rp_id}") } });
        match pv["link"].as_array_mut() {
            Some(a) => a.push(link),
            None => pv["link"] = json!([link]),
        }
        let writes = vec![new_version(rp, None)?, new_version(pv, Some(&person))?];
        match records.write_all(actor, writes).await {
            Ok(_) => return Ok(rp_id),
            Err(e) if matches!(e.error, StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(DirectoryError::Store(e.error)),
        }
    }
    Err(DirectoryError::Invalid(
        "the family member's record kept changing; try again".into(),
    ))
}

/// The children this Person is linked to, as patient ids: every link (active or waiting
/// for a professional), or with `active_only` just those in force. The one reading of
/// family links from `Person.link` (docs/DATA-MODEL.md); access decisions read them from
/// the child's side (`authz::facts`).
pub async fn linked_patients(
    d: &Domain,
    person_id: &str,
    active_only: bool,
) -> Result<Vec<String>, StoreError> {
    let Some(person) = d
        .records()
        .read("Person", person_id)
        .await?
        .filter(|s| !s.deleted)
    else {
        return Ok(Vec::new());
    };
    let pv: Value = serde_json::from_slice(&person.body).unwrap_or_default();
    let mut out = Vec::new();
    for l in pv["link"].as_array().into_iter().flatten() {
        if let Some(rp) = l["target"]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("RelatedPerson/"))
            && let Some(s) = d
                .records()
                .read("RelatedPerson", rp)
                .await?
                .filter(|s| !s.deleted)
        {
            let v: Value = serde_json::from_slice(&s.body).unwrap_or_default();
            // `active = false` (e.g. waiting for a professional) is no access.
            if active_only && v["active"] != Value::Bool(true) {
                continue;
            }
            if let Some(p) = v["patient"]["reference"]
                .as_str()
                .and_then(|r| r.strip_prefix("Patient/"))
            {
                out.push(p.to_owned());
            }
        }
    }
    Ok(out)
}

/// The patient ids whose active care team includes this member of staff (their
/// organisation, their Practitioner or their PractitionerRole).
pub async fn care_team_patients(
    d: &Domain,
    staff: &Account,
) -> Result<HashSet<String>, StoreError> {
    let mine: Vec<String> = [
        staff
            .organisation_id
            .as_ref()
            .map(|o| format!("Organization/{o}")),
        staff
            .practitioner_id
            .as_ref()
            .map(|p| format!("Practitioner/{p}")),
        staff
            .practitioner_role_id
            .as_ref()
            .map(|r| format!("PractitionerRole/{r}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let teams = d
        .records()
        .find_by_tokens(
            "CareTeam",
            &[TokenCriterion {
                param: "status".into(),
                system: SystemMatch::Any,
                code: "active".into(),
            }],
        )
        .await?;
    let mut out = HashSet::new();
    for id in teams {
        let Some(s) = d
            .records()
            .read("CareTeam", &id)
            .await?
            .filter(|s| !s.deleted)
        else {
            continue;
        };
        let v: Value = serde_json::from_slice(&s.body).unwrap_or_default();
        let member = v["participant"].as_array().into_iter().flatten().any(|p| {
            p["member"]["reference"]
                .as_str()
                .is_some_and(|r| mine.iter().any(|m| m == r))
        });
        if member
            && let Some(p) = v["subject"]["reference"]
                .as_str()
                .and_then(|r| r.strip_prefix("Patient/"))
        {
            out.insert(p.to_owned());
        }
    }
    Ok(out)
}

/// A self-registration waiting for a professional.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PendingRequest {
    pub related_person: String,
    pub child_id: String,
    pub child_name: String,
    pub child_nhs_number: String,
    pub adult_name: String,
    pub adult_email: String,
    pub relationship: String,
}

/// Pending requests for children in this member of staff's care teams.
pub async fn pending_requests(
    d: &Domain,
    staff: &Account,
) -> Result<Vec<PendingRequest>, StoreError> {
    let patients = care_team_patients(d, staff).await?;
    let ids = d
        .records()
        .find_by_tokens(
            "RelatedPerson",
            &[TokenCriterion {
                param: "_tag".into(),
                system: SystemMatch::Is(LINK_STATUS_SYSTEM.into()),
                code: "pending".into(),
            }],
        )
        .await?;
    let mut out = Vec::new();
    for id in ids {
        let Some(s) = d
            .records()
            .read("RelatedPerson", &id)
            .await?
            .filter(|s| !s.deleted)
        else {
            continue;
        };
        let v: Value = serde_json::from_slice(&s.body).unwrap_or_default();
        let Some(child_id) = v["patient"]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("Patient/"))
            .filter(|p| patients.contains(*p))
        else {
            continue;
        };
        let Some(child) = d
            .records()
            .read("Patient", child_id)
            .await?
            .filter(|s| !s.deleted)
            .and_then(|s| Child::of(child_id, &s.body))
        else {
            continue;
        };
        let code = v["relationship"][0]["coding"][0]["code"]
            .as_str()
            .unwrap_or_default();
        out.push(PendingRequest {
            related_person: id.clone(),
            child_id: child.id.clone(),
            child_name: format!("{} {}", child.given, child.family),
            child_nhs_number: child.nhs_number.clone(),
            adult_name: v["name"][0]["text"].as_str().unwrap_or_default().to_owned(),
            adult_email: v["telecom"][0]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            relationship: relationship_label(code).unwrap_or(code).to_owned(),
        });
    }
    out.sort_by(|a, b| a.child_name.cmp(&b.child_name));
    Ok(out)
}

/// Confirms (active = true, pending tag removed) or declines (the RelatedPerson deleted and
/// the Person's link to it removed) a pending request; `false` if it is not pending for a
/// child in this staff member's care teams.
pub async fn decide(
    d: &Domain,
    actor: &Agent,
    staff: &Account,
    related_person: &str,
    confirm: bool,
) -> Result<bool, DirectoryError> {
    let records = d.records();
    let Some(req) = pending_requests(d, staff)
        .await?
        .into_iter()
        .find(|r| r.related_person == related_person)
    else {
        return Ok(false);
    };
    let Some(rp) = d
        .records()
        .read("RelatedPerson", related_person)
        .await?
        .filter(|s| !s.deleted)
    else {
        return Ok(false);
    };
    let mut v: Value =
        serde_json::from_slice(&rp.body).map_err(|e| DirectoryError::Invalid(e.to_string()))?;
    let now = clock::now_us();
    let account = d.data().account_by_login(&req.adult_email).await?;
    if confirm {
        v["active"] = json!(true);
        // The pending tag goes (other tags, such as its section, stay); `meta` is stamped
        // afresh.
        if let Some(meta) = v.get_mut("meta").and_then(Value::as_object_mut) {
            if let Some(tags) = meta.get_mut("tag").and_then(Value::as_array_mut) {
                tags.retain(|t| t["system"] != LINK_STATUS_SYSTEM);
                if tags.is_empty() {
                    meta.remove("tag");
                }
            }
            meta.remove("versionId");
            meta.remove("lastUpdated");
        }
        records.write(actor, new_version(v, Some(&rp))?).await?;
        if let Some(person) = account.and_then(|a| a.person_id) {
            d.data()
                .record_family_link(&req.child_id, &person, related_person, now, false)
                .await?;
        }
    } else {
        let mut writes = vec![records::deletion(&rp)];
        if let Some(person_id) = account.and_then(|a| a.person_id)
            && let Some(person) = d
                .records()
                .read("Person", &person_id)
                .await?
                .filter(|s| !s.deleted)
        {
            let mut pv: Value = serde_json::from_slice(&person.body)
                .map_err(|e| DirectoryError::Invalid(e.to_string()))?;
            let target = format!("RelatedPerson/{related_person}");
            if let Some(a) = pv["link"].as_array_mut() {
                a.retain(|l| l["target"]["reference"] != target.as_str());
                if a.is_empty() {
                    pv.as_object_mut().map(|m| m.remove("link"));
                }
            }
            writes.push(new_version(pv, Some(&person))?);
        }
        records
            .write_all(actor, writes)
            .await
            .map_err(|e| DirectoryError::Store(e.error))?;
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------
// Bulk import (`passport admin import-clinic-list`)

/// One issued invitation of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    pub nhs_number: String,
    pub patient_id: String,
    pub created: bool,
    pub code: String,
    pub link: String,
    pub parent_email: String,
}

/// Imports a clinic list (CSV with a header: `nhs_number, given, family, birth_date` and
/// optionally `parent_email`): every row is checked first; any error (`line N: …`) and
/// nothing is written. Otherwise the new children's Patients and CareTeams are written in
/// ONE store transaction, then every row's invitation in one transaction.
pub async fn import_clinic_list(
    d: &Domain,
    actor: &Agent,
    organisation: &str,
    csv: &str,
    base_url: &str,
    valid_secs: i64,
) -> Result<Vec<Imported>, Vec<String>> {
    let records = d.records();
    let org = directory::find_organisation(d, organisation)
        .await
        .map_err(|e| vec![e.to_string()])?;
    let mut lines = csv
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, head)) = lines.next() else {
        return Err(vec!["the file is empty".into()]);
    };
    let cols: Vec<String> = head.split(',').map(|c| c.trim().to_lowercase()).collect();
    let col = |name: &str| cols.iter().position(|c| c == name);
    let (Some(c_nhs), Some(c_given), Some(c_family), Some(c_dob)) = (
        col("nhs_number"),
        col("given"),
        col("family"),
        col("birth_date"),
    ) else {
        return Err(vec![
            "line 1: the header must name nhs_number, given, family, birth_date (and optionally parent_email)".into(),
        ]);
    };
    let c_email = col("parent_email");
    let mut errors = Vec::new();
    let mut rows: Vec<(Child, bool, String)> = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in lines {
        let n = i + 1;
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |c: usize| cells.get(c).copied().unwrap_or_default();
        let mut bad = Vec::new();
        let nhs = parse_nhs_number(cell(c_nhs));
        if nhs.is_none() {
            bad.push(format!("NHS Number {:?} is not valid", cell(c_nhs)));
        }
        let dob = parse_birth_date(cell(c_dob));
        if dob.is_none() {
            bad.push(format!(
                "date of birth {:?} is not a real past date",
                cell(c_dob)
            ));
        }
        if cell(c_given).is_empty() || cell(c_family).is_empty() {
            bad.push("given and family names are needed".into());
        }
        let email = c_email.map(cell).unwrap_or_default().to_lowercase();
        if !email.is_empty() && !email.contains('@') {
            bad.push(format!("parent_email {email:?} is not an email address"));
        }
        if let Some(nhs) = &nhs
            && !seen.insert(nhs.clone())
        {
            bad.push(format!("NHS Number {nhs} appears twice"));
        }
        if !bad.is_empty() {
            errors.push(format!("line {n}: {}", bad.join("; ")));
            continue;
        }
        let (nhs, dob) = (nhs.unwrap_or_default(), dob.unwrap_or_default());
        let existing = find_child(d, &nhs).await.map_err(|e| vec![e.to_string()])?;
        match existing {
            Some(c) if c.birth_date != dob => errors.push(format!(
                "line {n}: a passport with NHS Number {nhs} has a different date of birth"
            )),
            Some(c) => rows.push((c, false, email)),
            None => rows.push((
                Child {
                    id: new_id(),
                    nhs_number: nhs,
                    given: cell(c_given).to_owned(),
                    family: cell(c_family).to_owned(),
                    birth_date: dob,
                },
                true,
                email,
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let now = clock::now_us();
    let mut writes = Vec::new();
    for (child, created, _) in &rows {
        if *created {
            writes.extend(new_child_writes(child, &org.id).map_err(|e| vec![e.to_string()])?);
        }
    }
    records
        .write_all(actor, writes)
        .await
        .map_err(|e| vec![format!("nothing was written: {e}")])?;
    let mut invitations = Vec::new();
    let mut out = Vec::new();
    for (child, created, email) in rows {
        let (inv, code) = new_invitation(
            &child.id,
            None,
            Some(&org.id),
            Some(email.as_str()).filter(|e| !e.is_empty()),
            now,
            valid_secs,
        );
        invitations.push(inv);
        out.push(Imported {
            link: join_link(base_url, &code),
            code: display_code(&code),
            nhs_number: child.nhs_number,
            patient_id: child.id,
            created,
            parent_email: email,
        });
    }
    d.data()
        .create_invitations(invitations)
        .await
        .map_err(|e| vec![format!("the invitations were not stored: {e}")])?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_typeable() {
        let c = new_code();
        assert_eq!(c.len(), CODE_CHARS);
        assert_eq!(normalise_code(&c).as_deref(), Some(c.as_str()));
        assert_eq!(
            normalise_code(&display_code(&c).to_lowercase()).as_deref(),
            Some(c.as_str())
        );
        assert_eq!(normalise_code("o1il2-34567").as_deref(), Some("0111234567"));
        assert_eq!(normalise_code("UUUUU-UUUUU"), None);
        assert_eq!(normalise_code("12345"), None);
    }

    #[test]
    fn dates_and_nhs_numbers() {
        assert_eq!(
            parse_birth_date("2019-03-27").as_deref(),
            Some("2019-03-27")
        );
        assert_eq!(parse_birth_date("27/3/2019").as_deref(), Some("2019-03-27"));
        assert_eq!(
            parse_birth_date("27 03 2019").as_deref(),
            Some("2019-03-27")
        );
        assert_eq!(parse_birth_date("31/02/2019"), None);
        assert_eq!(parse_birth_date("01/01/2999"), None);
        assert_eq!(
            parse_nhs_number("943 476 5919").as_deref(),
            Some("9434765919")
        );
        assert_eq!(parse_nhs_number("9434765918"), None);
    }
}
