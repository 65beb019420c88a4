//! Self-registration (`/register`): asking to be linked to a child by NHS Number and date
//! of birth, and confirming the email address (`/verify-email/{token}`), after which the
//! sign-in is made and the invitation redeemed or the link asked for.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use domain::onboarding::*;
use domain::types::accounts::{Account, AccountKind, RegistrationRefused, SessionStage};
use serde_json::json;

use super::email::*;
use super::join::redeem;
use super::{form_page, signed_in};
use crate::AppState;
use crate::audit::{Named, Purpose, Who};
use crate::clock;
use crate::records::Agent;
use crate::web::auth;
use crate::web::directory::{self, DirectoryError};
use crate::web::errors::{PageError, PageResult};
use crate::web::guard::{csrf_ok, field, form};
use crate::web::session::{self, SESSION_COOKIE};
use crate::web::templates::{
    FieldError, csrf_refused, field_error, message, see_other, with_cookie,
};

/// `GET /register`
pub(super) async fn register_form(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> PageResult {
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
pub(super) async fn register(
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
pub(super) fn request_sent(first: &[&str]) -> Response {
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
pub(super) async fn request_link(
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
            let actor = Agent::for_account(&st.domain, account, Purpose::FamilyRequest).await;
            bind(&st.domain, &actor, account, &child.id, relationship, false).await?;
        }
    }
    Ok(())
}

/// The page of a verification link that cannot be used.
pub(super) fn verification_refused(why: RegistrationRefused) -> Response {
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
pub(super) async fn verify_form(
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
pub(super) async fn verify(
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
