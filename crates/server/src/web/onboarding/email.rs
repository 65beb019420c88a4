//! New sign-ins wait for their email address to be verified: the same "check your email"
//! page whether or not the address has a sign-in, rate limits per address and per client
//! IP, and the sign-in made only when the emailed link is followed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use domain::types::accounts::Registration;

use crate::AppState;
use crate::clock;
use crate::rate_limit::{self, Limit};
use crate::web::auth;
use crate::web::errors::{PageError, PageResult};
use crate::web::templates::message;

pub(crate) const BAD_EMAIL: &str =
    "Enter an email address in the correct format, like name@example.com";

/// How long an emailed verification link works.
pub const VERIFY_LINK_SECS: i64 = 24 * 3600;

/// What a self-registration does once its email address is verified (stored with it, as
/// JSON, in the `registrations` table).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum AfterVerify {
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
pub(super) async fn begin_registration(
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
pub(crate) fn too_many_registrations() -> Response {
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
pub(super) async fn send_registration_email(
    st: &AppState,
    login: &str,
    token: &str,
    joining: bool,
) {
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
