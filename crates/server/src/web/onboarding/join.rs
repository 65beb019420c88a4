//! A family joining with an invitation code (`/join`, `/join/{code}`): with their family
//! sign-in, or asking for a new one (verified by email first, [`super::email`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use domain::Domain;
use domain::onboarding::*;
use domain::types::StoreError;
use domain::types::accounts::{Account, AccountKind, SessionStage};
use domain::types::onboarding::{Invitation, InvitationRefused};
use serde_json::{Value, json};

use super::email::*;
use super::{form_page, signed_in};
use crate::AppState;
use crate::audit::Purpose;
use crate::clock;
use crate::records::Agent;
use crate::web::auth;
use crate::web::directory::{self};
use crate::web::errors::{PageError, PageResult};
use crate::web::guard::{csrf_ok, field, form};
use crate::web::session::{self, Current, SESSION_COOKIE};
use crate::web::templates::{
    FieldError, csrf_refused, field_error, message, see_other, with_cookie,
};

pub(super) fn invitation_refused(why: InvitationRefused) -> Response {
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
pub(super) async fn join_form(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
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
pub(super) async fn join_lookup(
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
pub(super) async fn open_invitation(
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

pub(super) async fn child_first_name(d: &Domain, id: &str) -> Result<String, StoreError> {
    Ok(d.records()
        .read("Patient", id)
        .await?
        .filter(|s| !s.deleted)
        .and_then(|s| Child::of(id, &s.body))
        .map(|c| c.given)
        .unwrap_or_else(|| "your child".into()))
}

/// `GET /join/{code}`
pub(super) async fn join_code_form(
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
pub(super) fn join_code_page(
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
pub(super) async fn family_password(
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
pub(super) async fn join_code(
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
pub(super) async fn redeem(
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
    let actor = Agent::for_account(&st.domain, account, Purpose::FamilyRequest).await;
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
