//! Admin pages under `/admin/`: the regional admin's organisations and OAuth clients, and an
//! organisation admin's staff. Everything else gets a 403 page. The work itself is done by
//! [`super::directory`] and [`crate::oauth::clients`] (the code `passport admin` uses), so
//! the pages and the command line check the same things.

use std::sync::Arc;

use access::{Role, Sector};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::directory::{self, DirectoryError, NewOrganisation, NewStaff};
use super::guard::{self, PageResult, SignedIn, field, forbidden, form};
use super::templates::{FieldError, csrf_refused, field_error, page, see_other};
use super::{Effect, Route};
use crate::audit::Purpose;
use crate::oauth::clients::{self, ClientSpec, GRANT_TYPES};
use crate::{AppState, clock};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::form(
            "/admin/organisations",
            organisations,
            Effect::Service,
            create_organisation,
        ),
        Route::form(
            "/admin/clients",
            client_list,
            Effect::Service,
            create_client,
        ),
        Route::action(
            "/admin/clients/{id}/deactivate",
            Effect::Service,
            deactivate_client,
        ),
        Route::form("/admin/staff", staff_list, Effect::Service, create_staff),
        Route::action("/admin/staff/{id}/{change}", Effect::Service, change_staff),
    ]
}

/// The signed-in person if they hold `role`, else the response to send.
pub(super) async fn admin(
    st: &AppState,
    headers: &HeaderMap,
    role: Role,
) -> Result<SignedIn, Response> {
    let who = match guard::signed_in(st, headers).await {
        Ok(Ok(w)) => w,
        Ok(Err(r)) => return Err(r),
        Err(e) => {
            return Err(axum::response::IntoResponse::into_response(
                guard::PageError::from(e),
            ));
        }
    };
    if who.role() != Some(role) {
        return Err(forbidden(match role {
            Role::RegionalAdmin => {
                "Only the regional administrator can manage organisations and connected systems."
            }
            _ => "Only your organisation's administrator can manage staff accounts.",
        }));
    }
    Ok(who)
}

fn sectors() -> Vec<Value> {
    Sector::ALL
        .iter()
        .map(|s| json!({ "code": s.code(), "label": sector_name(*s) }))
        .collect()
}

/// A sector in words.
pub fn sector_name(s: Sector) -> &'static str {
    match s {
        Sector::HospitalTrust => "Hospital trust",
        Sector::GpPractice => "GP practice",
        Sector::CommunityHealth => "Community health",
        Sector::SocialCare => "Children's social care",
        Sector::Education => "School, nursery or college",
        Sector::Leisure => "Leisure or voluntary organisation",
        Sector::EmergencyServices => "Emergency services",
    }
}

// ---------------------------------------------------------------------------------------
// Organisations (regional admin)

async fn organisations_page(
    st: &AppState,
    who: &SignedIn,
    status: StatusCode,
    errors: Vec<FieldError>,
    v: Value,
) -> PageResult {
    let orgs: Vec<Value> = directory::list_organisations(&st.domain)
        .await?
        .into_iter()
        .map(|o| {
            json!({ "name": o.name, "sector": sector_name(o.sector), "region": o.region,
                    "ods": o.ods, "urn": o.school_urn })
        })
        .collect();
    Ok(page(
        status,
        "admin_organisations.html",
        json!({ "orgs": orgs, "sectors": sectors(), "errors": errors, "v": v,
                "csrf_token": who.csrf_token() }),
    ))
}

/// `GET /admin/organisations`
async fn organisations(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let who = match admin(&st, &headers, Role::RegionalAdmin).await {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    organisations_page(&st, &who, StatusCode::OK, Vec::new(), json!({})).await
}

/// `POST /admin/organisations`
async fn create_organisation(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let who = match admin(&st, &headers, Role::RegionalAdmin).await {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    let f = form(&body);
    if !who.csrf_ok(&f) {
        return Ok(csrf_refused(Some((
            "/admin/organisations",
            "Go back to organisations",
        ))));
    }
    let (name, sector, ods, urn, region) = (
        field(&f, "name"),
        field(&f, "sector"),
        field(&f, "ods"),
        field(&f, "urn"),
        field(&f, "region"),
    );
    let v = json!({ "name": name, "sector": sector, "ods": ods, "urn": urn, "region": region });
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push(field_error("name", "Enter the organisation's name"));
    }
    let sector_code = Sector::from_code(sector);
    if sector_code.is_none() {
        errors.push(field_error("sector", "Select the organisation's sector"));
    }
    // Both codes are optional; when given they must look right.
    let ods_ok = (3..=10).contains(&ods.len()) && ods.bytes().all(|b| b.is_ascii_alphanumeric());
    let urn_ok = urn.len() == 6 && urn.bytes().all(|b| b.is_ascii_digit());
    if !ods.is_empty() && !ods_ok {
        errors.push(field_error(
            "ods",
            "ODS code must be 3 to 10 letters and numbers",
        ));
    }
    if !urn.is_empty() && !urn_ok {
        errors.push(field_error("urn", "School URN must be 6 digits"));
    }
    if region.is_empty() {
        errors.push(field_error("region", "Enter the region"));
    }
    if let (true, Some(sector)) = (errors.is_empty(), sector_code) {
        let by =
            crate::records::Agent::for_account(&st.domain, &who.cur.account, Purpose::Operations)
                .await;
        let made = directory::create_organisation(
            &st.domain,
            &by,
            NewOrganisation {
                name: name.to_owned(),
                sector,
                ods: (!ods.is_empty()).then(|| ods.to_uppercase()),
                school_urn: (!urn.is_empty()).then(|| urn.to_owned()),
                region: region.to_owned(),
            },
        )
        .await;
        match made {
            Ok(_) => return Ok(see_other("/admin/organisations")),
            Err(DirectoryError::Duplicate(_)) => errors.push(field_error(
                if ods.is_empty() { "urn" } else { "ods" },
                "An organisation with this code already exists",
            )),
            Err(e) => return Err(e.into()),
        }
    }
    organisations_page(&st, &who, StatusCode::BAD_REQUEST, errors, v).await
}

// ---------------------------------------------------------------------------------------
// OAuth clients (regional admin)

async fn clients_page(
    st: &AppState,
    who: &SignedIn,
    status: StatusCode,
    errors: Vec<FieldError>,
    v: Value,
) -> PageResult {
    let list: Vec<Value> = st
        .domain
        .data()
        .oauth_clients()
        .await?
        .iter()
        .map(clients::client_json)
        .collect();
    Ok(page(
        status,
        "admin_clients.html",
        json!({ "clients": list, "grants": GRANT_TYPES, "errors": errors, "v": v,
                "csrf_token": who.csrf_token() }),
    ))
}

/// `GET /admin/clients`
async fn client_list(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let who = match admin(&st, &headers, Role::RegionalAdmin).await {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    clients_page(
        &st,
        &who,
        StatusCode::OK,
        Vec::new(),
        json!({ "grants": [] }),
    )
    .await
}

/// `POST /admin/clients`: registers a client; its secret is shown on this one response.
async fn create_client(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let who = match admin(&st, &headers, Role::RegionalAdmin).await {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let f = form(&body);
    if !who.csrf_ok(&f) {
        return Ok(csrf_refused(Some((
            "/admin/clients",
            "Go back to connected systems",
        ))));
    }
    let grants: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "grant")
        .map(|(_, v)| v.clone())
        .collect();
    let redirect_uris: Vec<String> = field(&f, "redirect_uris")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let (name, scope, jwks) = (field(&f, "name"), field(&f, "scope"), field(&f, "jwks"));
    let organisation = field(&f, "organisation");
    let public = field(&f, "public") == "yes";
    let v = json!({ "name": name, "scope": scope, "jwks": jwks, "public": public, "organisation": organisation,
                    "redirect_uris": field(&f, "redirect_uris"), "grants": grants });
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push(field_error("name", "Enter the system's name"));
    }
    if grants.is_empty() {
        errors.push(field_error(
            "grant",
            "Select at least one way the system gets tokens",
        ));
    }
    if scope.is_empty() {
        errors.push(field_error(
            "scope",
            "Enter the scopes the system may be granted",
        ));
    }
    let mut organisation_id = None;
    if !organisation.is_empty() {
        match super::directory::find_organisation(&st.domain, organisation).await {
            Ok(o) => organisation_id = Some(o.id),
            Err(super::directory::DirectoryError::Store(e)) => return Err(e.into()),
            Err(_) => errors.push(field_error(
                "organisation",
                "Enter the ODS code, school URN or id of an organisation in the directory",
            )),
        }
    }
    if errors.is_empty() {
        let spec = ClientSpec {
            name: name.to_owned(),
            grant_types: grants,
            redirect_uris,
            public,
            scope: scope.to_owned(),
            jwks: (!jwks.is_empty()).then(|| jwks.to_owned()),
            jwks_url: None,
            organisation_id,
            regional: false,
            cleared: Vec::new(),
            launch_uri: None,
        };
        match clients::create_client(st.domain.data(), spec).await {
            Ok(made) => {
                return Ok(page(
                    StatusCode::OK,
                    "admin_client_created.html",
                    json!({ "client_id": made.client.client_id, "name": made.client.name,
                            "secret": made.client_secret }),
                ));
            }
            // The shared validation speaks in the command line's terms; say which field.
            Err(e) => {
                let at = if e.contains("--organisation") {
                    "organisation"
                } else if e.contains("redirect") {
                    "redirect_uris"
                } else if e.contains("JWKS") || e.contains("keys") {
                    "jwks"
                } else if e.contains("grant") {
                    "grant"
                } else {
                    "scope"
                };
                errors.push(field_error(at, e.replace("--", "")));
            }
        }
    }
    clients_page(&st, &who, StatusCode::BAD_REQUEST, errors, v).await
}

/// `POST /admin/clients/{id}/deactivate`: the client can no longer get tokens, and what it
/// holds is revoked.
async fn deactivate_client(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let who = match admin(&st, &headers, Role::RegionalAdmin).await {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    if !who.csrf_ok(&form(&body)) {
        return Ok(csrf_refused(Some((
            "/admin/clients",
            "Go back to connected systems",
        ))));
    }
    if !st
        .domain
        .data()
        .oauth_set_client_active(&id, false, clock::now_us())
        .await?
    {
        return Ok(guard::not_found());
    }
    st.authz.tokens.forget_callers();
    Ok(see_other("/admin/clients"))
}

// ---------------------------------------------------------------------------------------
// Staff (organisation admin, own organisation only)

/// Roles an organisation admin may give: those their organisation's sector may have
/// (`Role::allowed_in`, docs/SECURITY.md §3), never the regional ones (the operator gives
/// those, on the command line).
fn assignable(org: Option<&directory::Organisation>) -> impl Iterator<Item = Role> + '_ {
    Role::ALL.into_iter().filter(move |r| {
        !matches!(r, Role::RegionalAdmin | Role::Commissioner)
            && org.is_some_and(|o| r.allowed_in(o.sector, o.regional))
    })
}

async fn staff_page(
    st: &AppState,
    who: &SignedIn,
    status: StatusCode,
    errors: Vec<FieldError>,
    v: Value,
) -> PageResult {
    let org = who
        .staff()
        .map(|s| s.organisation.clone())
        .unwrap_or_default();
    let organisation = directory::organisation(&st.domain, &org).await?;
    let org_name = organisation
        .as_ref()
        .map(|o| o.name.clone())
        .unwrap_or_default();
    let staff: Vec<Value> = st
        .domain
        .data()
        .list_accounts()
        .await?
        .into_iter()
        .filter(|a| a.organisation_id.as_deref() == Some(org.as_str()))
        .map(|a| {
            let role = a.role.as_deref().and_then(Role::from_code).map(Role::words);
            json!({ "id": a.id, "name": a.display_name, "email": a.login, "role": role,
                    "active": a.active, "me": a.id == who.cur.account.id })
        })
        .collect();
    let roles: Vec<Value> = assignable(organisation.as_ref())
        .map(|r| json!({ "code": r.code(), "label": r.words() }))
        .collect();
    Ok(page(
        status,
        "admin_staff.html",
        json!({ "org_name": org_name, "staff": staff, "roles": roles, "errors": errors, "v": v,
                "csrf_token": who.csrf_token() }),
    ))
}

/// `GET /admin/staff`
async fn staff_list(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let who = match admin(&st, &headers, Role::OrganisationAdmin).await {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    staff_page(&st, &who, StatusCode::OK, Vec::new(), json!({})).await
}

/// `POST /admin/staff`: a new member of staff with a random password; the page shows a
/// single-use link to choose their own and their authenticator enrolment, once.
async fn create_staff(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let who = match admin(&st, &headers, Role::OrganisationAdmin).await {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    let f = form(&body);
    if !who.csrf_ok(&f) {
        return Ok(csrf_refused(Some(("/admin/staff", "Go back to staff"))));
    }
    let (name, email, role) = (field(&f, "name"), field(&f, "email"), field(&f, "role"));
    let v = json!({ "name": name, "email": email, "role": role });
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push(field_error("name", "Enter their full name"));
    }
    if email.is_empty() {
        errors.push(field_error("email", "Enter their work email address"));
    } else if !email.contains('@') || email.contains(char::is_whitespace) {
        errors.push(field_error(
            "email",
            "Enter an email address in the correct format, like name@example.nhs.uk",
        ));
    }
    let org = match who.staff() {
        Some(s) => directory::organisation(&st.domain, &s.organisation).await?,
        None => None,
    };
    let role_code = Role::from_code(role);
    if role_code.is_none() {
        errors.push(field_error("role", "Select their role"));
    } else if !role_code.is_some_and(|r| assignable(org.as_ref()).any(|a| a == r)) {
        errors.push(field_error(
            "role",
            "Select a role your organisation can have (clinical roles are for health organisations only)",
        ));
    }
    if let (true, Some(role), Some(staff)) = (errors.is_empty(), role_code, who.staff()) {
        let by =
            crate::records::Agent::for_account(&st.domain, &who.cur.account, Purpose::Operations)
                .await;
        let made = directory::create_staff(
            &st.domain,
            &by,
            NewStaff {
                organisation: staff.organisation.clone(),
                role,
                email: email.to_owned(),
                name: name.to_owned(),
                password: super::auth::random_token(),
            },
        )
        .await;
        match made {
            Ok(created) => {
                let link = directory::issue_password_reset(
                    &st.domain,
                    email,
                    st.config.base(),
                    directory::RESET_LINK_SECS,
                )
                .await?;
                return Ok(page(
                    StatusCode::OK,
                    "admin_staff_created.html",
                    json!({ "name": name, "link": link, "totp_uri": created.totp_uri }),
                ));
            }
            Err(DirectoryError::Duplicate(_)) => errors.push(field_error(
                "email",
                "There is already an account with this email address",
            )),
            Err(DirectoryError::Invalid(_)) => errors.push(field_error(
                "email",
                "Enter an email address in the correct format, like name@example.nhs.uk",
            )),
            Err(e) => return Err(e.into()),
        }
    }
    staff_page(&st, &who, StatusCode::BAD_REQUEST, errors, v).await
}

/// `POST /admin/staff/{id}/deactivate|reactivate`: only accounts of the admin's own
/// organisation, never their own. Deactivation signs the leaver out everywhere at once.
async fn change_staff(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, change)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let who = match admin(&st, &headers, Role::OrganisationAdmin).await {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    if !who.csrf_ok(&form(&body)) {
        return Ok(csrf_refused(Some(("/admin/staff", "Go back to staff"))));
    }
    let active = match change.as_str() {
        "deactivate" => false,
        "reactivate" => true,
        _ => return Ok(guard::not_found()),
    };
    let org = who.staff().map(|s| s.organisation.as_str());
    let target = st.domain.data().account(&id).await?;
    let Some(target) = target.filter(|a| a.organisation_id.as_deref() == org) else {
        return Ok(guard::not_found());
    };
    if target.id == who.cur.account.id {
        return Ok(forbidden(
            "You cannot deactivate your own account. Ask another administrator.",
        ));
    }
    match directory::set_account_active(&st.domain, &target.id, active).await {
        Ok(_) => {}
        Err(DirectoryError::Invalid(_)) => {
            return Ok(forbidden(
                "This account's role cannot be given in your organisation, so it stays deactivated.",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    st.authz.tokens.forget_callers();
    Ok(see_other("/admin/staff"))
}
