//! The directory: organisations and the people who sign in.
//!
//! Who someone IS lives in FHIR, written through the ordinary resource path (validated,
//! versioned, indexed): an organisation is an `Organization` (its sector as a `type` coding
//! in [`access::SECTOR_SYSTEM`], ODS code / school URN identifiers, region as an extension);
//! a member of staff is a `Practitioner` plus a `PractitionerRole` (role code in
//! [`ROLE_SYSTEM`], organisation); a family member is a `Person`. What signing in needs
//! (password hash, TOTP secret, active flag) is an account in the store
//! ([`passport_store::accounts`]). Used by `passport admin …` and by tests.
//!
//! The resources and the account are two writes, not one transaction: the login is checked
//! first, so a clash leaves nothing behind; a crash between the two leaves unreferenced
//! resources, which are harmless.

use access::{Role, SECTOR_SYSTEM, Sector};
use passport_store::accounts::{Account, AccountKind};
use passport_store::{StoreError, SystemMatch, TokenCriterion};

use crate::Domain;
use crate::audit::{Named, Purpose, Who};
use crate::records::{Agent, new_version};
use serde_json::{Value, json};

use crate::auth;
use crate::clock;

/// Code system of staff roles (codes are [`access::Role::code`]).
pub const ROLE_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/passport-role";
/// The region an organisation belongs to.
pub const REGION_EXTENSION: &str = "https://passport.nhs.uk/fhir/StructureDefinition/region";
/// NHS ODS organisation codes.
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// School unique reference numbers (DfE "Get Information about Schools").
pub const SCHOOL_URN_SYSTEM: &str = "https://passport.nhs.uk/fhir/Id/school-urn";
/// Marks an Organization as the region's own (valueBoolean true): the organisation that
/// runs the passport for the region, and the only one whose staff may be regional admins
/// or commissioners (`access::Role::allowed_in`, docs/SECURITY.md §3).
pub const REGIONAL_ORGANISATION_EXTENSION: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/regional-organisation";
/// Sign-in logins on Practitioner / Person resources.
pub const LOGIN_SYSTEM: &str = "https://passport.nhs.uk/fhir/Id/login";

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Duplicate(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::records::Invalid> for DirectoryError {
    fn from(e: crate::records::Invalid) -> DirectoryError {
        DirectoryError::Invalid(e.0)
    }
}

type Result<T> = std::result::Result<T, DirectoryError>;

pub struct NewOrganisation {
    pub name: String,
    pub sector: Sector,
    pub ods: Option<String>,
    pub school_urn: Option<String>,
    pub region: String,
}

/// An organisation as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    pub id: String,
    pub name: String,
    pub sector: Sector,
    pub ods: Option<String>,
    pub school_urn: Option<String>,
    pub region: String,
    /// The region's own organisation ([`REGIONAL_ORGANISATION_EXTENSION`]).
    pub regional: bool,
}

pub struct NewStaff {
    /// Organisation id or ODS code.
    pub organisation: String,
    pub role: Role,
    pub email: String,
    pub name: String,
    pub password: String,
}

pub struct NewFamily {
    pub email: String,
    pub name: String,
    pub password: String,
}

/// What creating an account made.
#[derive(Debug, Clone)]
pub struct Created {
    pub account_id: String,
    /// Staff: the `otpauth://` URI to enrol their authenticator app (shown once).
    pub totp_uri: Option<String>,
    /// Staff: the raw TOTP secret (for tests that compute codes).
    pub totp_secret: Option<Vec<u8>>,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Stores a new resource (version 1) through the one write path, audited as `by`.
async fn write_new(d: &Domain, by: &Agent, resource: Value) -> Result<String> {
    let write = new_version(resource, None)?;
    let id = write.id.clone();
    d.records().write(by, write).await?;
    Ok(id)
}

/// The login of a typed email address (trimmed, lower-cased), if it looks like one.
pub fn normalise_login(email: &str) -> Result<String> {
    let login = email.trim().to_lowercase();
    let ok = login.len() <= 254
        && login
            .split_once('@')
            .is_some_and(|(a, d)| !a.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !login.chars().any(char::is_whitespace);
    if ok {
        Ok(login)
    } else {
        Err(DirectoryError::Invalid(format!(
            "not an email address: {email:?}"
        )))
    }
}

pub(crate) fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < auth::MIN_PASSWORD_CHARS {
        return Err(DirectoryError::Invalid(format!(
            "the password must be at least {} characters",
            auth::MIN_PASSWORD_CHARS
        )));
    }
    Ok(())
}

fn human_name(name: &str) -> Value {
    let mut parts: Vec<&str> = name.split_whitespace().collect();
    let family = parts.pop().unwrap_or_default();
    let mut n = json!({ "text": name.trim(), "family": family });
    if !parts.is_empty() {
        n["given"] = json!(parts);
    }
    json!([n])
}

pub async fn create_organisation(d: &Domain, by: &Agent, org: NewOrganisation) -> Result<String> {
    create_organisation_as(d, by, org, false).await
}

/// The region's own organisation (`passport admin create-org --regional`): where the
/// regional admin and commissioners work.
pub async fn create_regional_organisation(
    d: &Domain,
    by: &Agent,
    org: NewOrganisation,
) -> Result<String> {
    create_organisation_as(d, by, org, true).await
}

async fn create_organisation_as(
    d: &Domain,
    by: &Agent,
    org: NewOrganisation,
    regional: bool,
) -> Result<String> {
    if org.name.trim().is_empty() || org.region.trim().is_empty() {
        return Err(DirectoryError::Invalid(
            "an organisation needs a name and a region".into(),
        ));
    }
    let mut identifiers = Vec::new();
    for (system, value) in [(ODS_SYSTEM, &org.ods), (SCHOOL_URN_SYSTEM, &org.school_urn)] {
        if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            let taken = d
                .store()
                .find_by_tokens(
                    "Organization",
                    &[TokenCriterion {
                        param: "identifier".into(),
                        system: SystemMatch::Is(system.into()),
                        code: v.to_owned(),
                    }],
                )
                .await?;
            if !taken.is_empty() {
                return Err(DirectoryError::Duplicate(format!(
                    "an organisation with identifier {v} already exists"
                )));
            }
            identifiers.push(json!({ "system": system, "value": v }));
        }
    }
    let mut resource = json!({
        "resourceType": "Organization",
        "id": new_id(),
        "extension": [{ "url": REGION_EXTENSION, "valueString": org.region.trim() }],
        "active": true,
        "type": [{ "coding": [{ "system": SECTOR_SYSTEM, "code": org.sector.code() }] }],
        "name": org.name.trim(),
    });
    if !identifiers.is_empty() {
        resource["identifier"] = Value::Array(identifiers);
    }
    if regional {
        resource["extension"]
            .as_array_mut()
            .expect("built above")
            .push(json!({ "url": REGIONAL_ORGANISATION_EXTENSION, "valueBoolean": true }));
    }
    write_new(d, by, resource).await
}

fn organisation_of(id: &str, body: &[u8]) -> Option<Organisation> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let ident = |system: &str| {
        v["identifier"].as_array().and_then(|a| {
            a.iter()
                .find(|i| i["system"] == system)
                .and_then(|i| i["value"].as_str().map(str::to_owned))
        })
    };
    let sector = v["type"].as_array()?.iter().find_map(|t| {
        t["coding"].as_array()?.iter().find_map(|c| {
            (c["system"] == SECTOR_SYSTEM)
                .then(|| c["code"].as_str().and_then(Sector::from_code))
                .flatten()
        })
    })?;
    let region = v["extension"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["url"] == REGION_EXTENSION))
        .and_then(|e| e["valueString"].as_str())
        .unwrap_or_default()
        .to_owned();
    let regional = v["extension"].as_array().is_some_and(|a| {
        a.iter()
            .any(|e| e["url"] == REGIONAL_ORGANISATION_EXTENSION && e["valueBoolean"] == true)
    });
    Some(Organisation {
        id: id.to_owned(),
        name: v["name"].as_str().unwrap_or_default().to_owned(),
        sector,
        ods: ident(ODS_SYSTEM),
        school_urn: ident(SCHOOL_URN_SYSTEM),
        region,
        regional,
    })
}

/// One organisation by id.
pub async fn organisation(d: &Domain, id: &str) -> Result<Option<Organisation>> {
    let now = clock::now_us();
    if let Some(o) = d.organisations.get(id, now) {
        return Ok(Some(o));
    }
    let found = d
        .store()
        .read("Organization", id)
        .await?
        .filter(|s| !s.deleted)
        .and_then(|s| organisation_of(id, &s.body));
    if let Some(o) = &found {
        d.organisations.keep(o, now);
    }
    Ok(found)
}

/// How long an organisation read is reused.
const ORGANISATION_MAX_AGE_US: i64 = 1_000_000;
/// The most organisations kept (emptied when full).
const MAX_ORGANISATIONS: usize = 10_000;

/// Organisations as recently read: every staff request reads its own (the caller's sector
/// and region), so each is kept for a second — as long as a caller's search views are — and
/// forgotten at once when it is written here (another server process's change is seen
/// within the second).
#[derive(Default)]
pub struct OrganisationCache {
    map: std::sync::Mutex<std::collections::HashMap<String, (i64, Organisation)>>,
}

impl OrganisationCache {
    fn get(&self, id: &str, now_us: i64) -> Option<Organisation> {
        let m = self.map.lock().ok()?;
        m.get(id)
            .filter(|(at, _)| (0..ORGANISATION_MAX_AGE_US).contains(&(now_us - at)))
            .map(|(_, o)| o.clone())
    }

    fn keep(&self, o: &Organisation, now_us: i64) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= MAX_ORGANISATIONS {
                m.clear();
            }
            m.insert(o.id.clone(), (now_us, o.clone()));
        }
    }
}

impl crate::records::Observer for OrganisationCache {
    fn stored(&self, w: &crate::records::Observed) {
        if w.resource_type == "Organization"
            && let Ok(mut m) = self.map.lock()
        {
            m.remove(&w.id);
        }
    }
}

/// An organisation by id, ODS code or school URN.
pub async fn find_organisation(d: &Domain, key: &str) -> Result<Organisation> {
    if let Some(o) = organisation(d, key).await? {
        return Ok(o);
    }
    for system in [ODS_SYSTEM, SCHOOL_URN_SYSTEM] {
        let ids = d
            .store()
            .find_by_tokens(
                "Organization",
                &[TokenCriterion {
                    param: "identifier".into(),
                    system: SystemMatch::Is(system.into()),
                    code: key.to_owned(),
                }],
            )
            .await?;
        if let Some(id) = ids.first()
            && let Some(o) = organisation(d, id).await?
        {
            return Ok(o);
        }
    }
    Err(DirectoryError::NotFound(format!(
        "no organisation with id, ODS code or URN {key:?}"
    )))
}

/// Every organisation with a sector, by name.
pub async fn list_organisations(d: &Domain) -> Result<Vec<Organisation>> {
    let mut out = Vec::new();
    for sector in Sector::ALL {
        let ids = d
            .store()
            .find_by_tokens(
                "Organization",
                &[TokenCriterion {
                    param: "type".into(),
                    system: SystemMatch::Is(SECTOR_SYSTEM.into()),
                    code: sector.code().into(),
                }],
            )
            .await?;
        for id in ids {
            if let Some(o) = organisation(d, &id).await? {
                out.push(o);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(out)
}

async fn login_free(d: &Domain, login: &str) -> Result<()> {
    if d.store().account_by_login(login).await?.is_some() {
        return Err(DirectoryError::Duplicate(format!(
            "an account with the email address {login} already exists"
        )));
    }
    Ok(())
}

/// Refuses a role its organisation may not have (docs/SECURITY.md §3): the one check the
/// command line and the admin pages share, for new accounts and reactivated ones.
pub fn check_role(role: Role, org: &Organisation) -> Result<()> {
    if role.allowed_in(org.sector, org.regional) {
        return Ok(());
    }
    Err(DirectoryError::Invalid(
        if org.regional || !matches!(role, Role::RegionalAdmin | Role::Commissioner) {
            format!(
                "the role {} cannot be given in an organisation of the sector {}",
                role.code(),
                org.sector.code()
            )
        } else {
            format!(
                "the role {} belongs to the region's own organisation only",
                role.code()
            )
        },
    ))
}

/// Whether an account's role is one its organisation may have: `None` when it cannot be
/// told (not staff, an unknown role code, or the organisation is gone).
pub async fn account_role_allowed(d: &Domain, account: &Account) -> Result<Option<bool>> {
    let (Some(role), Some(org)) = (
        account.role.as_deref().and_then(Role::from_code),
        account.organisation_id.as_deref(),
    ) else {
        return Ok(None);
    };
    Ok(organisation(d, org)
        .await?
        .map(|o| role.allowed_in(o.sector, o.regional)))
}

/// A member of staff: Practitioner + PractitionerRole, and an account with a new TOTP secret.
pub async fn create_staff(d: &Domain, by: &Agent, new: NewStaff) -> Result<Created> {
    create_staff_with_totp(d, by, new, None).await
}

/// [`create_staff`] with a given TOTP secret (the demo region's, published in
/// docs/DEMO.md and refused outside demo mode) instead of a random one.
pub async fn create_staff_with_totp(
    d: &Domain,
    by: &Agent,
    new: NewStaff,
    totp: Option<Vec<u8>>,
) -> Result<Created> {
    let login = normalise_login(&new.email)?;
    check_password(&new.password)?;
    if new.name.trim().is_empty() {
        return Err(DirectoryError::Invalid("a name is needed".into()));
    }
    let org = find_organisation(d, &new.organisation).await?;
    check_role(new.role, &org)?;
    login_free(d, &login).await?;
    let practitioner = write_new(
        d,
        by,
        json!({
            "resourceType": "Practitioner", "id": new_id(), "active": true,
            "identifier": [{ "system": LOGIN_SYSTEM, "value": login }],
            "name": human_name(&new.name),
            "telecom": [{ "system": "email", "value": login, "use": "work" }],
        }),
    )
    .await?;
    let role = write_new(
        d,
        by,
        json!({
            "resourceType": "PractitionerRole", "id": new_id(), "active": true,
            "practitioner": { "reference": format!("Practitioner/{practitioner}") },
            "organization": { "reference": format!("Organization/{}", org.id) },
            "code": [{ "coding": [{ "system": ROLE_SYSTEM, "code": new.role.code() }] }],
        }),
    )
    .await?;
    let secret = totp.unwrap_or_else(|| auth::random_bytes::<20>().to_vec());
    let password = new.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .expect("hashing does not panic");
    let account = Account {
        id: new_id(),
        login: login.clone(),
        kind: AccountKind::Staff,
        password_hash: hash,
        totp_secret: Some(secret.clone()),
        role: Some(new.role.code().to_owned()),
        organisation_id: Some(org.id),
        practitioner_id: Some(practitioner),
        practitioner_role_id: Some(role),
        person_id: None,
        display_name: new.name.trim().to_owned(),
        active: true,
        created_us: clock::now_us(),
        cleared: Vec::new(),
    };
    if !d.store().create_account(&account).await? {
        return Err(DirectoryError::Duplicate(format!(
            "an account with the email address {login} already exists"
        )));
    }
    Ok(Created {
        account_id: account.id,
        totp_uri: Some(auth::totp_uri(&secret, &login)),
        totp_secret: Some(secret),
    })
}

/// A family member: a Person and an account (password only; NHS login comes later).
pub async fn create_family(d: &Domain, by: &Agent, new: NewFamily) -> Result<Created> {
    check_password(&new.password)?;
    let password = new.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .expect("hashing does not panic");
    create_family_hashed(d, by, &new.email, &new.name, hash).await
}

/// A family member whose password was hashed earlier (a self-registration, hashed when it
/// was made and kept only as the hash until the email address was verified).
pub async fn create_family_hashed(
    d: &Domain,
    by: &Agent,
    email: &str,
    name: &str,
    password_hash: String,
) -> Result<Created> {
    let login = normalise_login(email)?;
    if name.trim().is_empty() {
        return Err(DirectoryError::Invalid("a name is needed".into()));
    }
    login_free(d, &login).await?;
    let person = write_new(
        d,
        by,
        json!({
            "resourceType": "Person", "id": new_id(), "active": true,
            "identifier": [{ "system": LOGIN_SYSTEM, "value": login }],
            "name": human_name(name),
            "telecom": [{ "system": "email", "value": login, "use": "home" }],
        }),
    )
    .await?;
    let account = Account {
        id: new_id(),
        login: login.clone(),
        kind: AccountKind::Family,
        password_hash,
        totp_secret: None,
        role: None,
        organisation_id: None,
        practitioner_id: None,
        practitioner_role_id: None,
        person_id: Some(person),
        display_name: name.trim().to_owned(),
        active: true,
        created_us: clock::now_us(),
        cleared: Vec::new(),
    };
    if !d.store().create_account(&account).await? {
        return Err(DirectoryError::Duplicate(format!(
            "an account with the email address {login} already exists"
        )));
    }
    Ok(Created {
        account_id: account.id,
        totp_uri: None,
        totp_secret: None,
    })
}

/// How long an admin-issued password-reset link works.
pub const RESET_LINK_SECS: i64 = 24 * 3600;

/// Issues a single-use password-reset link for the account with `login` (an admin hands it
/// over); valid for `valid_secs`. Only the token's hash is stored.
pub async fn issue_password_reset(
    d: &Domain,
    login: &str,
    base_url: &str,
    valid_secs: i64,
) -> Result<String> {
    let login = login.trim().to_lowercase();
    let account = d
        .store()
        .account_by_login(&login)
        .await?
        .ok_or_else(|| DirectoryError::NotFound(format!("no account {login}")))?;
    if !account.active {
        return Err(DirectoryError::Invalid(format!(
            "the account {login} is deactivated"
        )));
    }
    let token = auth::random_token();
    let now = clock::now_us();
    d.store()
        .create_password_reset(
            &auth::token_hash(&token),
            &account.id,
            now,
            now + valid_secs * 1_000_000,
        )
        .await?;
    Ok(format!(
        "{}/reset-password/{token}",
        base_url.trim_end_matches('/')
    ))
}

/// Activates or deactivates the account with `login`; deactivating signs it out everywhere
/// at once.
pub async fn set_active(d: &Domain, login: &str, active: bool) -> Result<()> {
    let login = login.trim().to_lowercase();
    let account = d
        .store()
        .account_by_login(&login)
        .await?
        .ok_or_else(|| DirectoryError::NotFound(format!("no account {login}")))?;
    set_account_active(d, &account.id, active).await?;
    Ok(())
}

/// Activates or deactivates an account by id. Deactivating (a leaver) takes effect at once:
/// its sessions are deleted with the change, then every refresh token and unused code
/// issued to it is revoked (the API separately refuses access tokens of inactive
/// accounts). `false` if there is no such account.
pub async fn set_account_active(d: &Domain, account_id: &str, active: bool) -> Result<bool> {
    // An account deactivated because its role does not fit its organisation stays so.
    if active
        && let Some(account) = d.store().account(account_id).await?
        && account_role_allowed(d, &account).await? == Some(false)
    {
        return Err(DirectoryError::Invalid(format!(
            "the account's role {} cannot be given in its organisation; it stays deactivated",
            account.role.as_deref().unwrap_or_default()
        )));
    }
    let found = d.store().set_account_active(account_id, active).await?;
    if found && !active {
        d.store()
            .oauth_revoke_subject(account_id, clock::now_us())
            .await?;
    }
    Ok(found)
}

/// The audit trail's name for an account.
pub async fn account_who(d: &Domain, account: &Account) -> Who {
    let reference = match (&account.practitioner_id, &account.person_id) {
        (Some(p), _) => Some(format!("Practitioner/{p}")),
        (None, Some(p)) => Some(format!("Person/{p}")),
        _ => None,
    };
    let organisation = match &account.organisation_id {
        Some(id) => organisation(d, id)
            .await
            .ok()
            .flatten()
            .map(|o| Named::new(format!("Organization/{}", o.id), o.name)),
        None => None,
    };
    Who {
        person: Named {
            reference,
            display: account.display_name.clone(),
        },
        organisation,
        ..Default::default()
    }
}

/// A failed attempt names only the login tried.
pub fn login_tried(login: &str) -> Who {
    Who {
        person: Named {
            reference: None,
            display: login.to_owned(),
        },
        ..Default::default()
    }
}

impl Agent {
    /// The person signed in to `account`, as the agent of a change they make.
    pub async fn for_account(d: &Domain, account: &Account, purpose: Purpose) -> Agent {
        Agent::new(account_who(d, account).await, purpose)
    }
}

/// The labels in a list of security-label codes (unknown codes clear nothing).
pub fn cleared(codes: &[String]) -> access::LabelSet {
    let mut set = access::LabelSet::default();
    for l in codes
        .iter()
        .filter_map(|c| access::SecurityLabel::from_code(c))
    {
        set.insert(l);
    }
    set
}

/// The access-control identity of an account (see `access::Identity`): a family member's
/// Person, or a member of staff in their organisation's sector and region.
pub async fn identity(
    d: &Domain,
    account: &Account,
) -> std::result::Result<access::Identity, StoreError> {
    Ok(match account.kind {
        AccountKind::Family => access::Identity::Family {
            person: account.person_id.clone().unwrap_or_default(),
        },
        AccountKind::Staff => {
            let org = match &account.organisation_id {
                Some(id) => organisation(d, id).await.map_err(|e| match e {
                    DirectoryError::Store(s) => s,
                    other => StoreError::Backend(other.to_string()),
                })?,
                None => None,
            };
            let role = account.role.as_deref().and_then(access::Role::from_code);
            match (org, role) {
                (Some(org), Some(role)) => access::Identity::Staff(access::Staff {
                    practitioner: account.practitioner_id.clone().unwrap_or_default(),
                    role,
                    organisation: org.id,
                    sector: org.sector,
                    region: org.region,
                    cleared: cleared(&account.cleared),
                }),
                _ => access::Identity::Anonymous,
            }
        }
    })
}
