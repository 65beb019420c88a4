//! The page handlers: sign-in (password, then a TOTP code for staff), sign-out, the
//! signed-in home page and redemption of an admin-issued password-reset link.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use domain::types::StoreError;
use domain::types::accounts::{AccountKind, ResetRefused, SessionStage, Throttle};
use serde_json::json;

use super::auth;
use super::session::{self, CSRF_COOKIE, Current, SESSION_COOKIE};
use super::templates::{
    FieldError, csrf_refused, field_error, message, page, see_other, with_cookie,
};
use crate::audit::{EventKind, Outcome};
use crate::authz::audit::sign_in_event;
use crate::{AppState, clock};

use super::errors::PageResult;

fn form(body: &Bytes) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(f: &'a HashMap<String, String>, name: &str) -> &'a str {
    f.get(name).map(String::as_str).unwrap_or_default()
}

/// The anonymous CSRF token (double submit): the request's cookie, or a new one to set.
fn anonymous_csrf(headers: &HeaderMap) -> (String, Option<String>) {
    match session::cookie(headers, CSRF_COOKIE).filter(|t| t.len() >= 32) {
        Some(t) => (t, None),
        None => {
            let t = auth::random_token();
            (t.clone(), Some(t))
        }
    }
}

fn anonymous_csrf_ok(headers: &HeaderMap, f: &HashMap<String, String>) -> bool {
    session::cookie(headers, CSRF_COOKIE)
        .is_some_and(|c| c.len() >= 32 && auth::same(&c, field(f, "csrf_token")))
}

fn session_csrf_ok(cur: &Current, f: &HashMap<String, String>) -> bool {
    auth::same(&cur.session.csrf_token, field(f, "csrf_token"))
}

fn minutes(us: i64) -> String {
    let m = (us.max(0) + 59_999_999) / 60_000_000;
    if m <= 1 {
        "1 minute".into()
    } else if m < 120 {
        format!("{m} minutes")
    } else {
        format!("{} hours", (m + 59) / 60)
    }
}

/// Where to go after signing in, if `next` is a safe one: only a local path to the OAuth
/// authorisation endpoint (so an app's sign-in request can resume), in visible ASCII (it
/// goes into a `Location` header), never another site.
pub fn safe_next(next: &str) -> Option<&str> {
    let rest = next.strip_prefix("/oauth/authorize")?;
    let ok = (rest.is_empty() || rest.starts_with('?'))
        && next.len() <= 8192
        && next.bytes().all(|b| (0x21..=0x7e).contains(&b));
    ok.then_some(next)
}

/// The safe `next` of a query string or form, if any.
fn next_of<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    pairs
        .into_iter()
        .find(|(k, _)| *k == "next")
        .and_then(|(_, v)| safe_next(v).map(str::to_owned))
}

fn query_next(query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    next_of(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// `path` with `?next=…` when there is somewhere to go back to.
fn with_next(path: &str, next: Option<&str>) -> String {
    match next {
        Some(n) => format!(
            "{path}?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("next", n)
                .finish()
        ),
        None => path.to_owned(),
    }
}

#[allow(clippy::too_many_arguments)]
fn sign_in_page(
    st: &AppState,
    status: StatusCode,
    headers: &HeaderMap,
    email: &str,
    errors: Vec<FieldError>,
    notice: Option<&str>,
    locked: Option<String>,
    next: Option<&str>,
) -> Response {
    let (csrf, new) = anonymous_csrf(headers);
    let resp = page(
        status,
        "sign_in.html",
        json!({ "email": email, "errors": errors, "notice": notice, "locked": locked, "csrf_token": csrf, "providers": super::oidc::buttons(st), "next": next }),
    );
    match new {
        Some(t) => with_cookie(
            resp,
            session::set_cookie(CSRF_COOKIE, &t, session::secure(st)),
        ),
        None => resp,
    }
}

/// `GET /sign-in`
pub async fn sign_in_form(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> PageResult {
    let next = query_next(query.as_deref());
    if let Some(cur) = session::current(&st, &headers).await?
        && cur.is_full()
    {
        return Ok(see_other(next.as_deref().unwrap_or("/")));
    }
    let notice = match query.as_deref() {
        Some("signed-out") => Some("You have signed out."),
        Some("password-changed") => {
            Some("Your password has been changed. Sign in with your new password.")
        }
        Some("expired") => {
            Some("For your security, you were signed out. Sign in again to continue.")
        }
        _ => None,
    };
    Ok(sign_in_page(
        &st,
        StatusCode::OK,
        &headers,
        "",
        Vec::new(),
        notice,
        None,
        next.as_deref(),
    ))
}

/// `POST /sign-in`: checks the password; staff go on to the TOTP step.
pub async fn sign_in(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = form(&body);
    if !anonymous_csrf_ok(&headers, &f) {
        return Ok(csrf_refused(Some(("/sign-in", "Go to the sign-in page"))));
    }
    let next = next_of(f.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let next = next.as_deref();
    let email = field(&f, "email").trim();
    let password = field(&f, "password");
    let mut errors = Vec::new();
    if email.is_empty() {
        errors.push(field_error("email", "Enter your email address"));
    } else if !email.contains('@') {
        errors.push(field_error(
            "email",
            "Enter an email address in the correct format, like name@example.com",
        ));
    }
    if password.is_empty() {
        errors.push(field_error("password", "Enter your password"));
    }
    if !errors.is_empty() {
        return Ok(sign_in_page(
            &st,
            StatusCode::BAD_REQUEST,
            &headers,
            email,
            errors,
            None,
            None,
            next,
        ));
    }
    let login = email.to_lowercase();
    let now = clock::now_us();
    let throttle = st.domain.data().login_throttle(&login).await?;
    if throttle.locked(now) {
        return Ok(locked_page(&st, &headers, email, throttle, now, next));
    }
    let account = st.domain.data().account_by_login(&login).await?;
    let phc = account.as_ref().map(|a| a.password_hash.clone());
    let typed = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&typed, phc.as_deref()))
        .await
        .unwrap_or(false);
    // The demo's published sign-ins work only on a server started with `--demo`.
    let account = account
        .filter(|a| ok && a.active && (st.config.demo || !domain::demo::is_demo_login(&a.login)));
    let Some(account) = account else {
        sign_in_event(
            &st,
            EventKind::Login,
            super::directory::login_tried(&login),
            Outcome::MinorFailure,
            Some("wrong email address or password, or the account is deactivated"),
        )
        .await;
        let after = st.domain.data().record_login_failure(&login, now).await?;
        if after.locked(now) {
            return Ok(locked_page(&st, &headers, email, after, now, next));
        }
        let errors = vec![
            field_error("email", "Enter a correct email address and password"),
            field_error("password", "Enter a correct email address and password"),
        ];
        return Ok(sign_in_page(
            &st,
            StatusCode::BAD_REQUEST,
            &headers,
            email,
            errors,
            None,
            None,
            next,
        ));
    };
    // A new session either way (never reuse one the browser already had).
    session::end(&st, &headers).await?;
    let secure = session::secure(&st);
    let (stage, to) = match account.kind {
        AccountKind::Staff => (SessionStage::Password, with_next("/sign-in/code", next)),
        AccountKind::Family => {
            st.domain.data().clear_login_failures(&login).await?;
            if let Some(person) = &account.person_id {
                // Family activity: feeds the passport states (web/onboarding.rs).
                st.domain.data().record_family_activity(person, now).await?;
            }
            let who = super::directory::account_who(&st.domain, &account).await;
            sign_in_event(&st, EventKind::Login, who, Outcome::Success, None).await;
            (SessionStage::Full, next.unwrap_or("/").to_owned())
        }
    };
    let token = session::start(&st, &account, stage).await?;
    Ok(with_cookie(
        see_other(&to),
        session::set_cookie(SESSION_COOKIE, &token, secure),
    ))
}

fn locked_page(
    st: &AppState,
    headers: &HeaderMap,
    email: &str,
    t: Throttle,
    now: i64,
    next: Option<&str>,
) -> Response {
    sign_in_page(
        st,
        StatusCode::TOO_MANY_REQUESTS,
        headers,
        email,
        Vec::new(),
        None,
        Some(minutes(t.locked_until_us - now)),
        next,
    )
}

/// `GET /sign-in/code`
pub async fn code_form(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> PageResult {
    let next = query_next(query.as_deref());
    match session::current(&st, &headers).await? {
        Some(cur) if cur.is_full() => Ok(see_other(next.as_deref().unwrap_or("/"))),
        Some(cur) => Ok(page(
            StatusCode::OK,
            "totp.html",
            json!({ "errors": Vec::<FieldError>::new(), "csrf_token": cur.session.csrf_token, "next": next }),
        )),
        None => Ok(see_other("/sign-in?expired")),
    }
}

/// `POST /sign-in/code`: the TOTP step. Failures count towards the same lockout as
/// passwords; success replaces the half-signed-in session with a new one.
pub async fn code(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> PageResult {
    let f = form(&body);
    let Some(cur) = session::current(&st, &headers).await? else {
        return Ok(see_other("/sign-in?expired"));
    };
    if !session_csrf_ok(&cur, &f) {
        return Ok(csrf_refused(Some(("/sign-in", "Go to the sign-in page"))));
    }
    let next = next_of(f.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let next = next.as_deref();
    if cur.is_full() {
        return Ok(see_other(next.unwrap_or("/")));
    }
    let code = field(&f, "code").trim();
    let retry = |text: &str| {
        page(
            StatusCode::BAD_REQUEST,
            "totp.html",
            json!({ "errors": vec![field_error("code", text)], "csrf_token": cur.session.csrf_token.clone(), "next": next }),
        )
    };
    if code.is_empty() {
        return Ok(retry(
            "Enter the 6-digit security code from your authenticator app",
        ));
    }
    let now = clock::now_us();
    let login = cur.account.login.clone();
    let throttle = st.domain.data().login_throttle(&login).await?;
    let secret = cur.account.totp_secret.clone().unwrap_or_default();
    let step = (!throttle.locked(now) && !secret.is_empty())
        .then(|| auth::totp_step(&secret, code, now / 1_000_000))
        .flatten();
    // A code works once: a replay within its window is a failure like a wrong code.
    let ok = match step {
        Some(step) => {
            st.domain
                .data()
                .accept_totp_step(&cur.account.id, step)
                .await?
        }
        None => false,
    };
    if !ok {
        let who = super::directory::account_who(&st.domain, &cur.account).await;
        sign_in_event(
            &st,
            EventKind::Login,
            who,
            Outcome::MinorFailure,
            Some("wrong security code"),
        )
        .await;
        let after = if throttle.locked(now) {
            throttle
        } else {
            st.domain.data().record_login_failure(&login, now).await?
        };
        if after.locked(now) {
            session::end(&st, &headers).await?;
            let resp = locked_page(&st, &headers, "", after, now, next);
            return Ok(with_cookie(
                resp,
                session::clear_cookie(SESSION_COOKIE, session::secure(&st)),
            ));
        }
        return Ok(retry(
            "The security code is not correct. Enter the code your app shows now",
        ));
    }
    st.domain.data().clear_login_failures(&login).await?;
    let who = super::directory::account_who(&st.domain, &cur.account).await;
    sign_in_event(&st, EventKind::Login, who, Outcome::Success, None).await;
    session::end(&st, &headers).await?;
    let token = session::start(&st, &cur.account, SessionStage::Full).await?;
    Ok(with_cookie(
        see_other(next.unwrap_or("/")),
        session::set_cookie(SESSION_COOKIE, &token, session::secure(&st)),
    ))
}

fn describe_role(code: &str) -> String {
    let mut s = code.replace('-', " ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

/// The pages this person can use, as `{href, text}` links — and, for a child's page the
/// person may not open, a note (`href` empty) saying why, never a link to a refusal.
async fn home_links(
    st: &AppState,
    cur: &Current,
    identity: &access::Identity,
) -> Result<Vec<serde_json::Value>, StoreError> {
    use access::Role;
    let mut links = Vec::new();
    let mut add = |href: String, text: String| links.push(json!({ "href": href, "text": text }));
    match identity {
        access::Identity::Staff(s) => {
            if s.role.sees_child_records() {
                add("/passports".into(), "Children in your care team".into());
                add(
                    "/onboarding/invite".into(),
                    "Invite a parent or carer".into(),
                );
                add(
                    "/onboarding/requests".into(),
                    "Requests from families".into(),
                );
            }
            if access::break_glass_eligible(s) {
                add(
                    "/break-glass".into(),
                    "Emergency access to a passport".into(),
                );
            }
            if s.role == Role::OrganisationAdmin {
                add("/admin/staff".into(), "Staff accounts".into());
            }
            if s.role == Role::RegionalAdmin {
                add("/admin/organisations".into(), "Organisations".into());
                add("/admin/templates".into(), "Passport templates".into());
                add("/admin/clients".into(), "Connected systems".into());
            }
            if matches!(s.role, Role::PrivacyOfficer | Role::RegionalAdmin) {
                add("/privacy".into(), "Privacy review".into());
            }
        }
        access::Identity::Family { person } => {
            let caller =
                domain::guard::Caller::signed_in(&st.domain, &cur.account, identity.clone()).await;
            let who = super::guard::SignedIn {
                cur: cur.clone(),
                identity: identity.clone(),
            };
            let policy = access::RegionalPolicy::default();
            let now = clock::now_us();
            for (id, name) in super::child_facts::family_children(&st.domain, person).await? {
                if domain::passport::may_open(&st.domain, &caller, &id).await? {
                    add(format!("/passport/{id}"), format!("{name}'s passport"));
                } else {
                    // No link (an empty `href`): a note.
                    add(
                        String::new(),
                        format!(
                            "Nothing of {name}'s passport is shared with you yet. The person in \
                             control of it can share it with you."
                        ),
                    );
                }
                let Some(p) = super::child_facts::load(st, &id).await? else {
                    continue;
                };
                let young = access::controller(&p.facts, &policy, domain::facts::timestamp(now))
                    == access::Controller::YoungPerson;
                if super::sharing::performer(&who, &p, &policy, now).is_some() {
                    add(
                        format!("/passport/{id}/sharing"),
                        format!("Who can see {name}'s passport"),
                    );
                } else if young {
                    add(
                        String::new(),
                        format!("{name} now chooses who sees their passport."),
                    );
                } else {
                    add(
                        String::new(),
                        format!(
                            "Who sees {name}'s passport is chosen by the person in control of \
                             it: a parent with parental responsibility (for a looked-after \
                             child, their social worker)."
                        ),
                    );
                }
                add(
                    format!("/passport/{id}/access-log"),
                    format!("Who has seen {name}'s passport"),
                );
            }
        }
        access::Identity::YoungPerson { patient } => {
            add(format!("/passport/{patient}"), "Your passport".into());
            add(
                format!("/passport/{patient}/sharing"),
                "Who can see your passport".into(),
            );
            add(
                format!("/passport/{patient}/access-log"),
                "Who has seen your passport".into(),
            );
        }
        _ => {}
    }
    Ok(links)
}

/// `GET /`: the signed-in home page.
pub async fn home(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let cur = match session::current(&st, &headers).await? {
        Some(cur) if cur.is_full() => cur,
        Some(_) => return Ok(see_other("/sign-in/code")),
        None => return Ok(see_other("/sign-in")),
    };
    let identity = session::identity(&st, &cur.account).await?;
    let links = home_links(&st, &cur, &identity).await?;
    // Growing up: remind the family before each child's hand-over.
    let mut reminders = Vec::new();
    if let access::Identity::Family { person } = &identity {
        for (id, _) in super::child_facts::family_children(&st.domain, person).await? {
            if let Some(p) = super::child_facts::load(&st, &id).await?
                && let Some(r) = super::child_facts::handover_reminder(&p, clock::now_us())
            {
                reminders.push(r);
            }
        }
    }
    let describe = match identity {
        access::Identity::Staff(staff) => {
            let org = super::directory::organisation(&st.domain, &staff.organisation)
                .await
                .ok()
                .flatten()
                .map(|o| o.name)
                .unwrap_or_default();
            format!("{}, {org}", describe_role(staff.role.code()))
        }
        access::Identity::Family { .. } => "family member".to_owned(),
        _ => "no role".to_owned(),
    };
    Ok(page(
        StatusCode::OK,
        "home.html",
        json!({ "name": cur.account.display_name, "describe": describe, "csrf_token": cur.session.csrf_token, "links": links,
                "reminders": reminders,
                "no_child_access": !super::oidc::family_data_allowed(&st, &headers).await? }),
    ))
}

/// `POST /sign-out`
pub async fn sign_out(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = form(&body);
    let Some(cur) = session::current(&st, &headers).await? else {
        return Ok(see_other("/sign-in"));
    };
    if !session_csrf_ok(&cur, &f) {
        return Ok(csrf_refused(Some(("/sign-in", "Go to the sign-in page"))));
    }
    session::end(&st, &headers).await?;
    let who = super::directory::account_who(&st.domain, &cur.account).await;
    sign_in_event(&st, EventKind::Logout, who, Outcome::Success, None).await;
    Ok(with_cookie(
        see_other("/sign-in?signed-out"),
        session::clear_cookie(SESSION_COOKIE, session::secure(&st)),
    ))
}

fn reset_refused(why: ResetRefused) -> Response {
    let (status, text) = match why {
        ResetRefused::Used => (
            StatusCode::GONE,
            "This link has already been used. Each link works once.",
        ),
        ResetRefused::Expired => (StatusCode::GONE, "This link has expired."),
        ResetRefused::Unknown | ResetRefused::Inactive => (
            StatusCode::NOT_FOUND,
            "This link is not valid. Check you copied all of it.",
        ),
    };
    message(
        status,
        "This password reset link cannot be used",
        &[
            text,
            "Ask your organisation's administrator for a new link.",
        ],
        Some(("/sign-in", "Go to the sign-in page")),
    )
}

fn reset_page(
    st: &AppState,
    status: StatusCode,
    headers: &HeaderMap,
    token: &str,
    errors: Vec<FieldError>,
) -> Response {
    let (csrf, new) = anonymous_csrf(headers);
    let resp = page(
        status,
        "reset.html",
        json!({ "token": token, "errors": errors, "csrf_token": csrf, "min_chars": auth::MIN_PASSWORD_CHARS }),
    );
    match new {
        Some(t) => with_cookie(
            resp,
            session::set_cookie(CSRF_COOKIE, &t, session::secure(st)),
        ),
        None => resp,
    }
}

fn plausible_token(token: &str) -> bool {
    (20..=100).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET /reset-password/{token}`
pub async fn reset_form(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> PageResult {
    if !plausible_token(&token) {
        return Ok(reset_refused(ResetRefused::Unknown));
    }
    match st
        .domain
        .data()
        .check_password_reset(&auth::token_hash(&token), clock::now_us())
        .await?
    {
        Ok(_) => Ok(reset_page(
            &st,
            StatusCode::OK,
            &headers,
            &token,
            Vec::new(),
        )),
        Err(why) => Ok(reset_refused(why)),
    }
}

/// `POST /reset-password/{token}`: sets the new password, uses up the link and ends every
/// session of the account.
pub async fn reset(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> PageResult {
    let f = form(&body);
    if !anonymous_csrf_ok(&headers, &f) {
        return Ok(csrf_refused(Some(("/sign-in", "Go to the sign-in page"))));
    }
    if !plausible_token(&token) {
        return Ok(reset_refused(ResetRefused::Unknown));
    }
    let hash = auth::token_hash(&token);
    if let Err(why) = st
        .domain
        .data()
        .check_password_reset(&hash, clock::now_us())
        .await?
    {
        return Ok(reset_refused(why));
    }
    let password = field(&f, "password");
    let confirm = field(&f, "confirm");
    let mut errors = Vec::new();
    if password.is_empty() {
        errors.push(field_error("password", "Enter a new password"));
    } else if password.chars().count() < auth::MIN_PASSWORD_CHARS {
        errors.push(field_error(
            "password",
            format!(
                "Password must be {} characters or more",
                auth::MIN_PASSWORD_CHARS
            ),
        ));
    }
    if errors.is_empty() && confirm != password {
        errors.push(field_error(
            "confirm",
            "The passwords do not match. Type the same password twice",
        ));
    }
    if !errors.is_empty() {
        return Ok(reset_page(
            &st,
            StatusCode::BAD_REQUEST,
            &headers,
            &token,
            errors,
        ));
    }
    let typed = password.to_owned();
    let phc = tokio::task::spawn_blocking(move || auth::hash_password(&typed))
        .await
        .expect("hashing does not panic");
    match st
        .domain
        .data()
        .redeem_password_reset(&hash, clock::now_us(), &phc)
        .await?
    {
        Ok(_) => Ok(with_cookie(
            see_other("/sign-in?password-changed"),
            session::clear_cookie(SESSION_COOKIE, session::secure(&st)),
        )),
        Err(why) => Ok(reset_refused(why)),
    }
}
