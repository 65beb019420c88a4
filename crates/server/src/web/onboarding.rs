//! Family onboarding: the ways a parent or carer gets into a child's passport.
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
//! times are in the store ([`domain::types::onboarding`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use domain::Domain;
use domain::types::accounts::{
    Account, AccountKind, Registration, RegistrationRefused, SessionStage,
};
use domain::types::onboarding::{Invitation, InvitationRefused};
use domain::types::{StoreError, SystemMatch, TokenCriterion, Write};
use serde_json::{Value, json};

use super::auth;
use super::directory::{self, DirectoryError, LOGIN_SYSTEM};
use super::session::{self, CSRF_COOKIE, Current, SESSION_COOKIE};
use super::templates::{
    FieldError, csrf_refused, field_error, message, page, see_other, with_cookie,
};
use super::{Effect, Route};
use crate::audit::{Named, Purpose, Who};
use crate::rate_limit::{self, Limit};
use crate::records::{self, Agent, new_version};
use crate::{AppState, clock};

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

fn relationship_label(code: &str) -> Option<&'static str> {
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

/// The QR code of `text` as an inline SVG element with a text alternative.
pub fn qr_svg(text: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].replacen(
        "<svg",
        "<svg role=\"img\" aria-label=\"QR code of the invitation link\" focusable=\"false\"",
        1,
    )
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
    fn of(id: &str, body: &[u8]) -> Option<Child> {
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

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The writes that create a child's passport: the `Patient` (refused if a passport with
/// this NHS Number appeared meanwhile) and an active `CareTeam` with `organisation_id`.
pub fn new_child_writes(
    child: &Child,
    organisation_id: &str,
) -> Result<Vec<Write>, DirectoryError> {
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
            "participant": [{ "member": { "reference": format!("Organization/{organisation_id}") } }],
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

// ---------------------------------------------------------------------------------------
// Pages

/// The person signed in to `account`, as the actor of a page's change.
pub(crate) async fn account_actor(st: &AppState, account: &Account, purpose: Purpose) -> Agent {
    Agent::new(
        super::directory::account_who(&st.domain, account).await,
        purpose,
    )
}

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::form("/onboarding/invite", invite_form, Effect::Access, invite),
        Route::page("/onboarding/requests", requests),
        Route::action("/onboarding/requests/{id}", Effect::Access, decide_request),
        Route::form("/join", join_form, Effect::Nothing, join_lookup),
        Route::form("/join/{code}", join_code_form, Effect::Access, join_code),
        Route::form("/register", register_form, Effect::Account, register),
        // Confirming the address makes the sign-in, then redeems the invitation or asks
        // for the link the registration named.
        Route::form("/verify-email/{token}", verify_form, Effect::Access, verify),
    ]
}

use super::errors::{PageError, PageResult};

fn form(body: &Bytes) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(f: &'a HashMap<String, String>, name: &str) -> &'a str {
    f.get(name).map(String::as_str).unwrap_or_default().trim()
}

/// The signed-in (fully) session, if any.
async fn signed_in(st: &AppState, headers: &HeaderMap) -> Result<Option<Current>, StoreError> {
    Ok(session::current(st, headers)
        .await?
        .filter(Current::is_full))
}

/// A CSRF token for a form: the session's, or the anonymous double-submit cookie's (a new
/// one to set when missing).
fn csrf_for(cur: Option<&Current>, headers: &HeaderMap) -> (String, Option<String>) {
    if let Some(c) = cur {
        return (c.session.csrf_token.clone(), None);
    }
    match session::cookie(headers, CSRF_COOKIE).filter(|t| t.len() >= 32) {
        Some(t) => (t, None),
        None => {
            let t = auth::random_token();
            (t.clone(), Some(t))
        }
    }
}

fn csrf_ok(cur: Option<&Current>, headers: &HeaderMap, f: &HashMap<String, String>) -> bool {
    let sent = f.get("csrf_token").map(String::as_str).unwrap_or_default();
    match cur {
        Some(c) => auth::same(&c.session.csrf_token, sent),
        None => session::cookie(headers, CSRF_COOKIE)
            .is_some_and(|c| c.len() >= 32 && auth::same(&c, sent)),
    }
}

/// Renders a form page, adding the CSRF token (and its cookie when new).
fn form_page(
    st: &AppState,
    status: StatusCode,
    name: &str,
    cur: Option<&Current>,
    headers: &HeaderMap,
    mut ctx: Value,
) -> Response {
    let (csrf, new) = csrf_for(cur, headers);
    ctx["csrf_token"] = json!(csrf);
    ctx["relationships"] = json!(
        RELATIONSHIPS
            .iter()
            .map(|(c, l)| json!({ "code": c, "label": l }))
            .collect::<Vec<_>>()
    );
    let resp = page(status, name, ctx);
    match new {
        Some(t) => with_cookie(
            resp,
            session::set_cookie(CSRF_COOKIE, &t, session::secure(st)),
        ),
        None => resp,
    }
}

/// A signed-in member of staff who works with children's records, or the response to send.
async fn staff(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Result<Current, Response>, StoreError> {
    let Some(cur) = session::current(st, headers).await? else {
        return Ok(Err(see_other("/sign-in")));
    };
    if !cur.is_full() {
        return Ok(Err(see_other("/sign-in/code")));
    }
    let ok = cur.account.kind == AccountKind::Staff
        && matches!(session::identity(st, &cur.account).await?,
            access::Identity::Staff(s) if s.role.sees_child_records());
    if !ok {
        return Ok(Err(message(
            StatusCode::FORBIDDEN,
            "You cannot use this page",
            &[
                "Only staff who work with children's records can invite families or confirm their requests.",
            ],
            Some(("/", "Go to the home page")),
        )));
    }
    Ok(Ok(cur))
}

/// `GET /onboarding/invite`
async fn invite_form(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let cur = match staff(&st, &headers).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    Ok(form_page(
        &st,
        StatusCode::OK,
        "onboarding_invite.html",
        Some(&cur),
        &headers,
        json!({ "errors": Vec::<FieldError>::new(), "v": {} }),
    ))
}

/// `POST /onboarding/invite`: finds (in the staff member's care teams) or creates the
/// child's passport, then issues an invitation.
async fn invite(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> PageResult {
    let cur = match staff(&st, &headers).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let f = form(&body);
    if !csrf_ok(Some(&cur), &headers, &f) {
        return Ok(csrf_refused(None));
    }
    let v = json!({
        "nhs_number": field(&f, "nhs_number"), "given": field(&f, "given"),
        "family": field(&f, "family"), "birth_date": field(&f, "birth_date"),
        "parent_email": field(&f, "parent_email"),
    });
    let retry = |errors: Vec<FieldError>| {
        form_page(
            &st,
            StatusCode::BAD_REQUEST,
            "onboarding_invite.html",
            Some(&cur),
            &headers,
            json!({ "errors": errors, "v": v }),
        )
    };
    let mut errors = Vec::new();
    let nhs = parse_nhs_number(field(&f, "nhs_number"));
    if field(&f, "nhs_number").is_empty() {
        errors.push(field_error("nhs_number", "Enter the child's NHS Number"));
    } else if nhs.is_none() {
        errors.push(field_error(
            "nhs_number",
            "Enter a valid NHS Number, 10 digits like 999 123 4560",
        ));
    }
    let dob_typed = field(&f, "birth_date");
    let dob = parse_birth_date(dob_typed);
    if !dob_typed.is_empty() && dob.is_none() {
        errors.push(field_error(
            "birth_date",
            "Date of birth must be a real date in the past, like 27/03/2019",
        ));
    }
    let email = field(&f, "parent_email").to_lowercase();
    if !email.is_empty() && !email.contains('@') {
        errors.push(field_error(
            "parent_email",
            "Enter an email address in the correct format, like name@example.com",
        ));
    }
    if !errors.is_empty() {
        return Ok(retry(errors));
    }
    let nhs = nhs.unwrap_or_default();
    let org = cur.account.organisation_id.clone().unwrap_or_default();
    let now = clock::now_us();
    let child = match find_child(&st.domain, &nhs).await? {
        Some(c) => {
            if !care_team_patients(&st.domain, &cur.account)
                .await?
                .contains(&c.id)
            {
                return Ok(retry(vec![field_error(
                    "nhs_number",
                    "This child's passport exists, but your organisation is not in their care team. Ask their care team to invite the family",
                )]));
            }
            if dob.as_ref().is_some_and(|d| *d != c.birth_date) {
                return Ok(retry(vec![field_error(
                    "birth_date",
                    "The date of birth does not match this child's passport. Check the NHS Number and date of birth",
                )]));
            }
            c
        }
        None => {
            let mut errors = Vec::new();
            if field(&f, "given").is_empty() {
                errors.push(field_error("given", "Enter the child's first name"));
            }
            if field(&f, "family").is_empty() {
                errors.push(field_error("family", "Enter the child's last name"));
            }
            if dob.is_none() {
                errors.push(field_error("birth_date", "Enter the child's date of birth"));
            }
            if !errors.is_empty() {
                return Ok(retry(errors));
            }
            let child = Child {
                id: new_id(),
                nhs_number: nhs.clone(),
                given: field(&f, "given").to_owned(),
                family: field(&f, "family").to_owned(),
                birth_date: dob.clone().unwrap_or_default(),
            };
            let actor = account_actor(&st, &cur.account, Purpose::Treatment).await;
            match st
                .domain
                .records()
                .write_all(&actor, new_child_writes(&child, &org)?)
                .await
            {
                Ok(_) => child,
                Err(e) if matches!(e.error, StoreError::ConditionMatched(_)) => {
                    return Ok(retry(vec![field_error(
                        "nhs_number",
                        "A passport with this NHS Number was created a moment ago. Try again",
                    )]));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let (inv, code) = new_invitation(
        &child.id,
        Some(&cur.account),
        Some(&org),
        Some(email.as_str()).filter(|e| !e.is_empty()),
        now,
        DEFAULT_INVITATION_SECS,
    );
    let expires = clock::instant(inv.expires_us);
    st.domain.data().create_invitations(vec![inv]).await?;
    let link = join_link(st.config.base(), &code);
    Ok(page(
        StatusCode::OK,
        "onboarding_issued.html",
        json!({
            "child": format!("{} {}", child.given, child.family),
            "code": display_code(&code), "link": link, "qr": qr_svg(&link),
            "expires": &expires[..10], "email": email,
        }),
    ))
}

/// `GET /onboarding/requests`
async fn requests(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let cur = match staff(&st, &headers).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let pending = pending_requests(&st.domain, &cur.account).await?;
    Ok(page(
        StatusCode::OK,
        "onboarding_requests.html",
        json!({ "requests": pending, "csrf_token": cur.session.csrf_token }),
    ))
}

/// `POST /onboarding/requests/{id}`: `decision=confirm|decline`.
async fn decide_request(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let cur = match staff(&st, &headers).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let f = form(&body);
    if !csrf_ok(Some(&cur), &headers, &f) {
        return Ok(csrf_refused(None));
    }
    let confirm = match field(&f, "decision") {
        "confirm" => true,
        "decline" => false,
        _ => return Ok(see_other("/onboarding/requests")),
    };
    let actor = account_actor(&st, &cur.account, Purpose::Treatment).await;
    let decided = decide(&st.domain, &actor, &cur.account, &id, confirm).await?;
    if !decided {
        return Ok(message(
            StatusCode::NOT_FOUND,
            "This request cannot be found",
            &["It may have been confirmed or declined already by someone else in the care team."],
            Some(("/onboarding/requests", "Back to requests")),
        ));
    }
    Ok(message(
        StatusCode::OK,
        if confirm {
            "Request confirmed"
        } else {
            "Request declined"
        },
        &[if confirm {
            "The family member can now see the child's passport."
        } else {
            "The family member has not been given access."
        }],
        Some(("/onboarding/requests", "Back to requests")),
    ))
}

fn invitation_refused(why: InvitationRefused) -> Response {
    let (status, text) = match why {
        InvitationRefused::Used => (
            StatusCode::GONE,
            "This invitation code has already been used. Each code works once.",
        ),
        InvitationRefused::Expired => (StatusCode::GONE, "This invitation code has expired."),
        InvitationRefused::Revoked => {
            (StatusCode::GONE, "This invitation code has been cancelled.")
        }
        InvitationRefused::Unknown => (
            StatusCode::NOT_FOUND,
            "This invitation code is not valid. Check you typed all 10 characters.",
        ),
    };
    message(
        status,
        "This invitation cannot be used",
        &[text, "Ask the team that invited you for a new code."],
        Some(("/join", "Enter a different code")),
    )
}

/// `GET /join`
async fn join_form(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let cur = signed_in(&st, &headers).await?;
    Ok(form_page(
        &st,
        StatusCode::OK,
        "join.html",
        cur.as_ref(),
        &headers,
        json!({ "errors": Vec::<FieldError>::new(), "code": "" }),
    ))
}

/// `POST /join`: the code typed in → `/join/{code}`.
async fn join_lookup(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let cur = signed_in(&st, &headers).await?;
    let f = form(&body);
    if !csrf_ok(cur.as_ref(), &headers, &f) {
        return Ok(csrf_refused(None));
    }
    let typed = field(&f, "code");
    match normalise_code(typed) {
        Some(code) => Ok(see_other(&format!("/join/{code}"))),
        None => Ok(form_page(
            &st,
            StatusCode::BAD_REQUEST,
            "join.html",
            cur.as_ref(),
            &headers,
            json!({
                "errors": [field_error("code", if typed.is_empty() {
                    "Enter your invitation code"
                } else {
                    "Enter the 10-character invitation code, like 7K3M9-QX2PD"
                })],
                "code": typed,
            }),
        )),
    }
}

/// The open invitation for a code in a URL, or the refusal page.
async fn open_invitation(
    st: &AppState,
    typed: &str,
) -> Result<Result<(Invitation, String), Response>, StoreError> {
    let Some(code) = normalise_code(typed) else {
        return Ok(Err(invitation_refused(InvitationRefused::Unknown)));
    };
    match st
        .domain
        .data()
        .invitation_by_code(&auth::token_hash(&code))
        .await?
    {
        None => Ok(Err(invitation_refused(InvitationRefused::Unknown))),
        Some(inv) => match inv.refusal(clock::now_us()) {
            Some(why) => Ok(Err(invitation_refused(why))),
            None => Ok(Ok((inv, code))),
        },
    }
}

async fn child_first_name(d: &Domain, id: &str) -> Result<String, StoreError> {
    Ok(d.records()
        .read("Patient", id)
        .await?
        .filter(|s| !s.deleted)
        .and_then(|s| Child::of(id, &s.body))
        .map(|c| c.given)
        .unwrap_or_else(|| "your child".into()))
}

/// `GET /join/{code}`
async fn join_code_form(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(typed): Path<String>,
) -> PageResult {
    let (inv, code) = match open_invitation(&st, &typed).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let cur = signed_in(&st, &headers).await?;
    let child = child_first_name(&st.domain, &inv.patient_id).await?;
    Ok(join_code_page(
        &st,
        StatusCode::OK,
        cur.as_ref(),
        &headers,
        &code,
        &child,
        Vec::new(),
        json!({}),
    ))
}

#[allow(clippy::too_many_arguments)]
fn join_code_page(
    st: &AppState,
    status: StatusCode,
    cur: Option<&Current>,
    headers: &HeaderMap,
    code: &str,
    child: &str,
    errors: Vec<FieldError>,
    v: Value,
) -> Response {
    let family = cur
        .filter(|c| c.account.kind == AccountKind::Family)
        .map(|c| c.account.display_name.clone());
    form_page(
        st,
        status,
        "join_code.html",
        cur,
        headers,
        json!({
            "code": code, "shown_code": display_code(code), "child": child,
            "family": family, "staff": cur.is_some() && family.is_none(),
            "errors": errors, "v": v,
        }),
    )
}

/// Signs in an existing family account with email and password (throttled like
/// `/sign-in`), or explains why not.
async fn family_password(
    st: &AppState,
    email: &str,
    password: &str,
) -> Result<Result<Account, FieldError>, StoreError> {
    let login = email.to_lowercase();
    let now = clock::now_us();
    if st.domain.data().login_throttle(&login).await?.locked(now) {
        return Ok(Err(field_error(
            "email",
            "There have been too many attempts to sign in with this email address. Try again later",
        )));
    }
    let account = st.domain.data().account_by_login(&login).await?;
    let phc = account.as_ref().map(|a| a.password_hash.clone());
    let typed = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&typed, phc.as_deref()))
        .await
        .unwrap_or(false);
    match account.filter(|a| ok && a.active && a.kind == AccountKind::Family) {
        Some(a) => {
            st.domain.data().clear_login_failures(&login).await?;
            Ok(Ok(a))
        }
        None => {
            st.domain.data().record_login_failure(&login, now).await?;
            Ok(Err(field_error(
                "email",
                "Enter the correct email address and password of your Passport family sign-in",
            )))
        }
    }
}

/// `POST /join/{code}`: binds the signed-in family member, or signs in / creates a family
/// account first, then redeems the code (once) and links them to the child.
async fn join_code(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(typed): Path<String>,
    body: Bytes,
) -> PageResult {
    let cur = signed_in(&st, &headers).await?;
    let f = form(&body);
    if !csrf_ok(cur.as_ref(), &headers, &f) {
        return Ok(csrf_refused(None));
    }
    let (inv, code) = match open_invitation(&st, &typed).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let child = child_first_name(&st.domain, &inv.patient_id).await?;
    let relationship = field(&f, "relationship");
    let v = json!({
        "relationship": relationship, "has_account": field(&f, "has_account"),
        "name": field(&f, "name"), "email": field(&f, "email"),
    });
    let mut errors = Vec::new();
    if relationship_label(relationship).is_none() {
        errors.push(field_error(
            "relationship",
            format!("Select how you are related to {child}"),
        ));
    }
    let signed_family = cur
        .as_ref()
        .filter(|c| c.account.kind == AccountKind::Family)
        .map(|c| c.account.clone());
    let mut new_session = false;
    let account = if let Some(a) = signed_family {
        if !errors.is_empty() {
            return Ok(join_code_page(
                &st,
                StatusCode::BAD_REQUEST,
                cur.as_ref(),
                &headers,
                &code,
                &child,
                errors,
                v,
            ));
        }
        a
    } else {
        let (email, password, name) =
            (field(&f, "email"), field(&f, "password"), field(&f, "name"));
        let has = field(&f, "has_account");
        if has != "yes" && has != "no" {
            errors.push(field_error(
                "has_account",
                "Select whether you already have a Passport sign-in",
            ));
        }
        if email.is_empty() {
            errors.push(field_error("email", "Enter your email address"));
        } else if !email.contains('@') {
            errors.push(field_error(
                "email",
                "Enter an email address in the correct format, like name@example.com",
            ));
        }
        if has == "no" && name.is_empty() {
            errors.push(field_error("name", "Enter your full name"));
        }
        if password.is_empty() {
            errors.push(field_error("password", "Enter a password"));
        } else if has == "no" && password.chars().count() < auth::MIN_PASSWORD_CHARS {
            errors.push(field_error(
                "password",
                format!(
                    "Password must be {} characters or more",
                    auth::MIN_PASSWORD_CHARS
                ),
            ));
        }
        if !errors.is_empty() {
            return Ok(join_code_page(
                &st,
                StatusCode::BAD_REQUEST,
                cur.as_ref(),
                &headers,
                &code,
                &child,
                errors,
                v,
            ));
        }
        if has == "no" {
            // A new sign-in waits for its email address to be verified; the invitation is
            // redeemed when the emailed link is followed. The answer is the same whether or
            // not the address already has a sign-in (that is told only by email).
            let Ok(login) = directory::normalise_login(email) else {
                return Ok(join_code_page(
                    &st,
                    StatusCode::BAD_REQUEST,
                    cur.as_ref(),
                    &headers,
                    &code,
                    &child,
                    vec![field_error("email", BAD_EMAIL)],
                    v,
                ));
            };
            return begin_registration(
                &st,
                peer,
                login,
                name.to_owned(),
                password.to_owned(),
                AfterVerify::Join {
                    code: code.clone(),
                    relationship: relationship.to_owned(),
                },
                &format!(
                    "Once you confirm it, your sign-in is made and you are linked to {child}'s passport."
                ),
            )
            .await;
        }
        match family_password(&st, email, password).await? {
            Ok(a) => {
                new_session = true;
                a
            }
            Err(e) => {
                return Ok(join_code_page(
                    &st,
                    StatusCode::BAD_REQUEST,
                    cur.as_ref(),
                    &headers,
                    &code,
                    &child,
                    vec![e],
                    v,
                ));
            }
        }
    };
    if let Err(why) = redeem(&st, &account, &code, relationship).await? {
        return Ok(invitation_refused(why));
    }
    let resp = message(
        StatusCode::OK,
        "You are now linked to the passport",
        &[&format!(
            "You can now see {child}'s passport when you sign in to Passport."
        )],
        Some(("/", "Continue to Passport")),
    );
    if new_session {
        session::end(&st, &headers).await?;
        let token = session::start(&st, &account, SessionStage::Full).await?;
        return Ok(with_cookie(
            resp,
            session::set_cookie(SESSION_COOKIE, &token, session::secure(&st)),
        ));
    }
    Ok(resp)
}

/// Redeems the invitation `code` (once) for `account` and links it to the child; or why
/// the code cannot be used (then nothing changed).
async fn redeem(
    st: &AppState,
    account: &Account,
    code: &str,
    relationship: &str,
) -> Result<Result<(), InvitationRefused>, PageError> {
    let hash = auth::token_hash(code);
    let now = clock::now_us();
    let inv = match st
        .domain
        .data()
        .redeem_invitation(&hash, &account.id, now)
        .await?
    {
        Ok(inv) => inv,
        Err(why) => return Ok(Err(why)),
    };
    let actor = account_actor(st, account, Purpose::FamilyRequest).await;
    let bound = bind(
        &st.domain,
        &actor,
        account,
        &inv.patient_id,
        relationship,
        true,
    )
    .await;
    let rp = match bound {
        Ok(rp) => rp,
        Err(e) => {
            st.domain.data().unredeem_invitation(&hash).await?;
            return Err(e.into());
        }
    };
    let person = account.person_id.clone().unwrap_or_default();
    st.domain
        .data()
        .record_family_link(&inv.patient_id, &person, &rp, now, true)
        .await?;
    Ok(Ok(()))
}

/// `GET /register`
async fn register_form(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let cur = signed_in(&st, &headers).await?;
    if cur
        .as_ref()
        .is_some_and(|c| c.account.kind != AccountKind::Family)
    {
        return Ok(see_other("/"));
    }
    let family = cur.as_ref().map(|c| c.account.display_name.clone());
    Ok(form_page(
        &st,
        StatusCode::OK,
        "register.html",
        cur.as_ref(),
        &headers,
        json!({ "errors": Vec::<FieldError>::new(), "v": {}, "family": family, "min_chars": auth::MIN_PASSWORD_CHARS }),
    ))
}

/// `POST /register`: asks to be linked to a child by NHS Number and date of birth; if
/// they match a passport, a pending link is made. The answer is the same either way.
///
/// Signed in as a family member, the request is made at once. Otherwise a new sign-in is
/// needed first: the request waits, with the new sign-in, for the email address to be
/// verified ([`begin_registration`]), and the answer is the same "check your email" page
/// whether or not the address already has a sign-in.
async fn register(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let cur = signed_in(&st, &headers).await?;
    if cur
        .as_ref()
        .is_some_and(|c| c.account.kind != AccountKind::Family)
    {
        return Ok(see_other("/"));
    }
    let f = form(&body);
    if !csrf_ok(cur.as_ref(), &headers, &f) {
        return Ok(csrf_refused(None));
    }
    let family = cur.as_ref().map(|c| c.account.display_name.clone());
    let relationship = field(&f, "relationship");
    let v = json!({
        "relationship": relationship, "name": field(&f, "name"), "email": field(&f, "email"),
        "nhs_number": field(&f, "nhs_number"), "birth_date": field(&f, "birth_date"),
    });
    let mut errors = Vec::new();
    let mut login = None;
    if cur.is_none() {
        if field(&f, "name").is_empty() {
            errors.push(field_error("name", "Enter your full name"));
        }
        let email = field(&f, "email");
        if email.is_empty() {
            errors.push(field_error("email", "Enter your email address"));
        } else {
            match directory::normalise_login(email) {
                Ok(l) => login = Some(l),
                Err(_) => errors.push(field_error("email", BAD_EMAIL)),
            }
        }
        if field(&f, "password").chars().count() < auth::MIN_PASSWORD_CHARS {
            errors.push(field_error(
                "password",
                format!(
                    "Password must be {} characters or more",
                    auth::MIN_PASSWORD_CHARS
                ),
            ));
        }
    }
    if relationship_label(relationship).is_none() {
        errors.push(field_error(
            "relationship",
            "Select how you are related to the child",
        ));
    }
    let nhs = parse_nhs_number(field(&f, "nhs_number"));
    if field(&f, "nhs_number").is_empty() {
        errors.push(field_error("nhs_number", "Enter the child's NHS Number"));
    } else if nhs.is_none() {
        errors.push(field_error(
            "nhs_number",
            "Enter a valid NHS Number, 10 digits like 999 123 4560",
        ));
    }
    let dob = parse_birth_date(field(&f, "birth_date"));
    if field(&f, "birth_date").is_empty() {
        errors.push(field_error("birth_date", "Enter the child's date of birth"));
    } else if dob.is_none() {
        errors.push(field_error(
            "birth_date",
            "Date of birth must be a real date in the past, like 27/03/2019",
        ));
    }
    if !errors.is_empty() {
        return Ok(form_page(
            &st,
            StatusCode::BAD_REQUEST,
            "register.html",
            cur.as_ref(),
            &headers,
            json!({ "errors": errors, "v": v, "family": family, "min_chars": auth::MIN_PASSWORD_CHARS }),
        ));
    }
    let (nhs, dob) = (nhs.unwrap_or_default(), dob.unwrap_or_default());
    let Some(cur) = cur else {
        return begin_registration(
            &st,
            peer,
            login.unwrap_or_default(),
            field(&f, "name").to_owned(),
            field(&f, "password").to_owned(),
            AfterVerify::Link {
                relationship: relationship.to_owned(),
                nhs_number: nhs,
                birth_date: dob,
            },
            "Once you confirm it, your request is sent. If the NHS Number and date of birth match a child's passport, a professional in the child's care team will check it.",
        )
        .await;
    };
    request_link(&st, &cur.account, relationship, &nhs, &dob).await?;
    Ok(request_sent(&[]))
}

/// The answer to a link request (the same whether or not the child was found).
fn request_sent(first: &[&str]) -> Response {
    let mut paragraphs = first.to_vec();
    paragraphs.extend([
        "If the NHS Number and date of birth match a child's passport, a professional in the child's care team will check your request.",
        "You will be able to see the passport once they confirm it. Until then, no information about the child is shown.",
    ]);
    message(
        StatusCode::OK,
        "Your request has been sent",
        &paragraphs,
        Some(("/", "Continue to Passport")),
    )
}

/// Makes a pending link from `account` to the child with this NHS Number, if the date of
/// birth matches and no link exists yet; otherwise nothing (the caller answers the same).
async fn request_link(
    st: &AppState,
    account: &Account,
    relationship: &str,
    nhs: &str,
    dob: &str,
) -> Result<(), PageError> {
    if let Some(child) = find_child(&st.domain, nhs).await?
        && child.birth_date == dob
    {
        let person = account.person_id.clone().unwrap_or_default();
        if !linked_patients(&st.domain, &person, false)
            .await?
            .contains(&child.id)
        {
            let actor = account_actor(st, account, Purpose::FamilyRequest).await;
            bind(&st.domain, &actor, account, &child.id, relationship, false).await?;
        }
    }
    Ok(())
}

const BAD_EMAIL: &str = "Enter an email address in the correct format, like name@example.com";

/// How long an emailed verification link works.
pub const VERIFY_LINK_SECS: i64 = 24 * 3600;

/// What a self-registration does once its email address is verified (stored with it, as
/// JSON, in the `registrations` table).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum AfterVerify {
    /// From `/register`: ask to be linked to the child with this NHS Number and date of birth.
    Link {
        relationship: String,
        nhs_number: String,
        birth_date: String,
    },
    /// From `/join/{code}`: redeem this invitation.
    Join { code: String, relationship: String },
}

/// Starts a self-registration for `login` (already validated) that waits for its email
/// address to be verified, and answers the one "check your email" page.
///
/// Whether the address already has a sign-in must not show, in the answer or in how long
/// it takes: so the work before answering is the same either way (the rate limits, hashing
/// the password, storing the registration), and the lookup happens afterwards, in the task
/// that sends the email — the verification link, or a note that the address already has a
/// sign-in (and the stored registration is then deleted). Sending is never awaited: the
/// SMTP server's speed does not show either.
async fn begin_registration(
    st: &Arc<AppState>,
    peer: SocketAddr,
    login: String,
    name: String,
    password: String,
    after: AfterVerify,
    what_next: &str,
) -> PageResult {
    let now = clock::now_us();
    let ip = rate_limit::client_key(peer.ip());
    let limits = [
        Limit {
            kind: "register-address",
            key: &login,
            max: st.config.register_limit_per_address,
        },
        Limit {
            kind: "register-ip",
            key: &ip,
            max: st.config.register_limit_per_ip,
        },
    ];
    if !st.registrations.allow(&limits, now) {
        return Ok(too_many_registrations());
    }
    let password_hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|_| PageError::new("password hashing", "failed"))?;
    let token = auth::random_token();
    let joining = matches!(after, AfterVerify::Join { .. });
    st.domain
        .data()
        .create_registration(&Registration {
            token_hash: auth::token_hash(&token),
            login: login.clone(),
            display_name: name.trim().to_owned(),
            password_hash,
            request: serde_json::to_string(&after)?,
            created_us: now,
            expires_us: now + VERIFY_LINK_SECS * 1_000_000,
        })
        .await?;
    let task_state = st.clone();
    tokio::spawn(async move {
        send_registration_email(&task_state, &login, &token, joining).await;
    });
    Ok(message(
        StatusCode::OK,
        "Check your email",
        &[
            "We have sent an email to the address you gave. Open the link in it within 24 hours to confirm your email address.",
            what_next,
            "Nothing is set up until you confirm. If no email arrives within a few minutes, check your spam or junk folder.",
        ],
        None,
    ))
}

/// The 429 page when a rate limit of [`begin_registration`] is reached.
fn too_many_registrations() -> Response {
    let mut resp = message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        &[
            "There have been too many requests to set up a Passport sign-in from this email address or this network.",
            "Nothing has been changed. Wait an hour, then try again.",
        ],
        Some(("/", "Go to the Passport home page")),
    );
    resp.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("3600"),
    );
    resp
}

/// The email of a registration: the verification link, or (when the address already has a
/// sign-in) a note saying so, with no link. Never includes anything the registrant typed
/// (their name, the child's details): anyone can make Passport email any address, so what
/// it sends must be ours alone. Nothing about the address or the token is logged.
async fn send_registration_email(st: &AppState, login: &str, token: &str, joining: bool) {
    let base = st.config.base();
    let known = match st.domain.data().account_by_login(login).await {
        Ok(found) => found.is_some(),
        Err(e) => {
            tracing::error!(error = %e, "registration email: looking up the sign-in failed");
            return;
        }
    };
    let (subject, text) = if known {
        if let Err(e) = st
            .domain
            .data()
            .delete_registration(&auth::token_hash(token))
            .await
        {
            tracing::error!(error = %e, "registration email: deleting the registration failed");
        }
        let then = if joining {
            ", then open your invitation link again and choose \"Yes\" when asked if you have a Passport sign-in"
        } else {
            ""
        };
        (
            "You already have a Passport sign-in",
            format!(
                "Hello,\n\n\
                 Someone asked to set up a new Passport sign-in with this email address. \
                 This address already has a Passport sign-in, so nothing has been changed.\n\n\
                 If it was you, sign in at {base}/sign-in{then}. If you have forgotten your \
                 password, ask the team who look after your child, or your organisation's \
                 administrator, for a password reset link.\n\n\
                 If it was not you, you do not need to do anything.\n\n\
                 Passport\n"
            ),
        )
    } else {
        (
            "Confirm your email address for Passport",
            format!(
                "Hello,\n\n\
                 Someone, we hope you, asked to set up a Passport sign-in with this email \
                 address. To confirm it, open this link within 24 hours:\n\n\
                 {base}/verify-email/{token}\n\n\
                 If it was not you, ignore this email: nothing is set up unless the link is \
                 opened.\n\n\
                 Passport\n"
            ),
        )
    };
    if let Err(e) = st.mail.send(login, subject, &text).await {
        tracing::warn!(error = %e, "a registration email was not delivered");
    }
}

/// The page of a verification link that cannot be used.
fn verification_refused(why: RegistrationRefused) -> Response {
    let (status, text) = match why {
        RegistrationRefused::Used => (
            StatusCode::GONE,
            "This link has already been used. Each link works once.",
        ),
        RegistrationRefused::Expired => (
            StatusCode::GONE,
            "This link has expired. Links work for 24 hours.",
        ),
        RegistrationRefused::Unknown => (
            StatusCode::NOT_FOUND,
            "This link is not valid. Check you copied all of it from the email.",
        ),
    };
    message(
        status,
        "This link cannot be used",
        &[
            text,
            "If you have already confirmed your email address, sign in. Otherwise, start again to get a new link.",
        ],
        Some(("/sign-in", "Sign in")),
    )
}

/// `GET /verify-email/{token}`: a button that confirms (a GET changes nothing, so mail
/// scanners that open links do not use them up).
async fn verify_form(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> PageResult {
    let hash = auth::token_hash(&token);
    if let Err(why) = st
        .domain
        .data()
        .check_registration(&hash, clock::now_us())
        .await?
    {
        return Ok(verification_refused(why));
    }
    let cur = signed_in(&st, &headers).await?;
    Ok(form_page(
        &st,
        StatusCode::OK,
        "verify_email.html",
        cur.as_ref(),
        &headers,
        json!({ "token": token }),
    ))
}

/// `POST /verify-email/{token}`: uses the link up, makes the family sign-in, signs it in
/// and does what the registration asked for (a link request, or redeeming an invitation).
async fn verify(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> PageResult {
    let cur = signed_in(&st, &headers).await?;
    let f = form(&body);
    if !csrf_ok(cur.as_ref(), &headers, &f) {
        return Ok(csrf_refused(None));
    }
    let reg = match st
        .domain
        .data()
        .claim_registration(&auth::token_hash(&token), clock::now_us())
        .await?
    {
        Ok(reg) => reg,
        Err(why) => return Ok(verification_refused(why)),
    };
    let after: AfterVerify = serde_json::from_str(&reg.request)?;
    // The person registering, whose email address was just verified, is the agent.
    let by = Agent::new(
        Who {
            person: Named {
                reference: None,
                display: format!("{} (self-registration)", reg.display_name),
            },
            ..Who::default()
        },
        Purpose::FamilyRequest,
    );
    let account = match directory::create_family_hashed(
        &st.domain,
        &by,
        &reg.login,
        &reg.display_name,
        reg.password_hash,
    )
    .await
    {
        Ok(created) => match st.domain.data().account(&created.account_id).await? {
            Some(a) => a,
            None => return Err(PageError::new("the database", "the new account vanished")),
        },
        // Made since the registration (whoever follows the link owns the address, so
        // saying so here reveals nothing to anyone else).
        Err(DirectoryError::Duplicate(_)) => {
            return Ok(message(
                StatusCode::CONFLICT,
                "You already have a Passport sign-in",
                &[
                    "This email address already has a Passport sign-in, so no new one was made.",
                    "Sign in with it. If you have forgotten the password, ask the team who look after your child for a password reset link.",
                ],
                Some(("/sign-in", "Sign in")),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let confirmed = "Your email address is confirmed and you are signed in to Passport.";
    let resp = match after {
        AfterVerify::Link {
            relationship,
            nhs_number,
            birth_date,
        } => {
            request_link(&st, &account, &relationship, &nhs_number, &birth_date).await?;
            request_sent(&[confirmed])
        }
        AfterVerify::Join { code, relationship } => {
            match redeem(&st, &account, &code, &relationship).await? {
                Ok(()) => message(
                    StatusCode::OK,
                    "You are now linked to the passport",
                    &[
                        confirmed,
                        "You can now see your child's passport when you sign in to Passport.",
                    ],
                    Some(("/", "Continue to Passport")),
                ),
                Err(_) => message(
                    StatusCode::OK,
                    "Your sign-in is ready, but the invitation cannot be used",
                    &[
                        confirmed,
                        "The invitation code has been used, cancelled or has expired since you asked. Ask the team that invited you for a new code.",
                    ],
                    Some(("/", "Continue to Passport")),
                ),
            }
        }
    };
    session::end(&st, &headers).await?;
    let session_token = session::start(&st, &account, SessionStage::Full).await?;
    Ok(with_cookie(
        resp,
        session::set_cookie(SESSION_COOKIE, &session_token, session::secure(&st)),
    ))
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

    #[test]
    fn qr_is_inline_svg_with_a_name() {
        let svg = qr_svg("http://127.0.0.1/join/0123456789");
        assert!(svg.starts_with("<svg role=\"img\" aria-label="), "{svg}");
        assert!(!svg.contains("<?xml"));
    }
}
