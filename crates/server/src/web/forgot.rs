//! `/forgot-password`: a family member resets their own password by an emailed link.
//!
//! The answer is the same "check your email" page whether or not the address has a
//! sign-in, and the lookup and the email happen afterwards in a task, so neither the page
//! nor its timing says which addresses have accounts. Only an active family account gets a
//! link (valid one hour, used once, `directory::issue_password_reset`); staff are told by
//! email to ask their organisation's administrator, because their sign-in also needs the
//! authenticator their administrator enrolled. Rate limits per address and per client IP.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use domain::types::accounts::AccountKind;
use serde_json::json;

use super::guard::{PageResult, csrf_for, csrf_ok, field, form};
use super::onboarding::too_many_registrations;
use super::session;
use super::templates::{csrf_refused, message, page, with_cookie};
use crate::rate_limit::{self, Limit};
use crate::{AppState, clock};

/// How long an emailed reset link works.
const RESET_LINK_SECS: i64 = 3600;

/// `GET /forgot-password`
pub async fn form_page(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let cur = session::current(&st, &headers).await?;
    let (csrf, set) = csrf_for(cur.as_ref(), &headers);
    let resp = page(
        StatusCode::OK,
        "forgot.html",
        json!({ "csrf_token": csrf, "errors": [], "email": "" }),
    );
    Ok(match set {
        Some(t) => with_cookie(
            resp,
            session::set_cookie(session::CSRF_COOKIE, &t, session::secure(&st)),
        ),
        None => resp,
    })
}

/// `POST /forgot-password`
pub async fn send(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = form(&body);
    let cur = session::current(&st, &headers).await?;
    if !csrf_ok(cur.as_ref(), &headers, &f) {
        return Ok(csrf_refused(Some(("/forgot-password", "Try again"))));
    }
    let typed = field(&f, "email");
    let Ok(login) = super::directory::normalise_login(typed) else {
        let (csrf, _) = csrf_for(cur.as_ref(), &headers);
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "forgot.html",
            json!({ "csrf_token": csrf, "email": typed,
                    "errors": [{ "field": "email", "text": super::onboarding::BAD_EMAIL }] }),
        ));
    };
    let ip = rate_limit::client_key(peer.ip());
    let limits = [
        Limit {
            kind: "reset-address",
            key: &login,
            max: st.config.register_limit_per_address,
        },
        Limit {
            kind: "reset-ip",
            key: &ip,
            max: st.config.register_limit_per_ip,
        },
    ];
    if !st.registrations.allow(&limits, clock::now_us()) {
        return Ok(too_many_registrations());
    }
    let task = st.clone();
    tokio::spawn(async move { send_reset_email(&task, &login).await });
    Ok(message(
        StatusCode::OK,
        "Check your email",
        &[
            "If this email address has a Passport family sign-in, we have sent it a link to choose a new password. The link works for 1 hour and only once.",
            "If no email arrives within a few minutes, check your spam or junk folder. Staff: ask your organisation's administrator for a reset link.",
        ],
        Some(("/sign-in", "Go to the sign-in page")),
    ))
}

/// The email: a reset link for an active family account, a note for staff, nothing for an
/// address without a sign-in. Nothing about the address or the link is logged.
async fn send_reset_email(st: &AppState, login: &str) {
    let account = match st.domain.data().account_by_login(login).await {
        Ok(Some(a)) if a.active => a,
        Ok(_) => return,
        Err(e) => {
            tracing::error!(error = %e, "password reset email: looking up the sign-in failed");
            return;
        }
    };
    let base = st.config.base();
    let (subject, text) = if account.kind == AccountKind::Family {
        let link =
            match super::directory::issue_password_reset(&st.domain, login, base, RESET_LINK_SECS)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "password reset email: the link could not be made");
                    return;
                }
            };
        (
            "Choose a new password for Passport",
            format!(
                "Hello,\n\n\
                 Someone, we hope you, asked to reset the password of the Passport sign-in \
                 with this email address. To choose a new password, open this link within \
                 1 hour (it works once):\n\n{link}\n\n\
                 If it was not you, ignore this email: your password has not been changed.\n\n\
                 Passport\n"
            ),
        )
    } else {
        (
            "Resetting your Passport password",
            format!(
                "Hello,\n\n\
                 Someone asked to reset the password of the Passport staff sign-in with this \
                 email address. Staff passwords are reset by your organisation's \
                 administrator: ask them for a reset link. Nothing has been changed.\n\n\
                 Sign in at {base}/sign-in\n\n\
                 Passport\n"
            ),
        )
    };
    if let Err(e) = st.mail.send(login, subject, &text).await {
        tracing::warn!(error = %e, "a password reset email was not delivered");
    }
}
