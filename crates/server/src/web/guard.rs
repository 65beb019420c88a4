//! What every signed-in page of the newer surfaces (admin, sharing, break-glass, privacy,
//! access log) needs: the fully signed-in person and their identity, the refusal pages,
//! CSRF checking and form fields. One place, so each page states only its own rule.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use domain::types::StoreError;

use super::auth;
use super::session::{self, Current};
use super::templates::{message, see_other};
use crate::AppState;

pub use super::errors::{PageError, PageResult};

/// A fully signed-in person (password and, for staff, TOTP) and who they are.
pub struct SignedIn {
    pub cur: Current,
    pub identity: access::Identity,
}

impl SignedIn {
    pub fn staff(&self) -> Option<&access::Staff> {
        match &self.identity {
            access::Identity::Staff(s) => Some(s),
            _ => None,
        }
    }

    pub fn role(&self) -> Option<access::Role> {
        self.staff().map(|s| s.role)
    }

    pub fn csrf_ok(&self, f: &HashMap<String, String>) -> bool {
        auth::same(
            self.csrf_token(),
            f.get("csrf_token").map(String::as_str).unwrap_or_default(),
        )
    }

    pub fn csrf_token(&self) -> &str {
        &self.cur.session.csrf_token
    }
}

/// The signed-in person, or where to send them (sign-in, or the TOTP step).
pub async fn signed_in(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Result<SignedIn, Response>, StoreError> {
    let Some(cur) = session::current(st, headers).await? else {
        return Ok(Err(see_other("/sign-in")));
    };
    if !cur.is_full() {
        return Ok(Err(see_other("/sign-in/code")));
    }
    let identity = session::identity(st, &cur.account).await?;
    Ok(Ok(SignedIn { cur, identity }))
}

/// 403: the person is signed in but this page is not for them.
pub fn forbidden(why: &str) -> Response {
    message(
        StatusCode::FORBIDDEN,
        "You cannot use this page",
        &[why],
        Some(("/", "Go to the home page")),
    )
}

/// 404 for a child's page the person has no link to: the same answer as for a child that
/// does not exist, so the page says nothing about which passports exist.
pub fn no_such_passport() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Page not found",
        &["There is no passport here that you can see. Check the address or go to the home page."],
        Some(("/", "Go to the home page")),
    )
}

/// 404 for anything else that is not there (or not the person's to change).
pub fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Page not found",
        &["Check the address or go back to the list."],
        Some(("/", "Go to the home page")),
    )
}

/// A CSRF token for a form: the session's, or (signed out) the anonymous double-submit
/// cookie's, with a new one to set when it is missing.
pub fn csrf_for(cur: Option<&Current>, headers: &HeaderMap) -> (String, Option<String>) {
    if let Some(c) = cur {
        return (c.session.csrf_token.clone(), None);
    }
    match session::cookie(headers, session::CSRF_COOKIE).filter(|t| t.len() >= 32) {
        Some(t) => (t, None),
        None => {
            let t = auth::random_token();
            (t.clone(), Some(t))
        }
    }
}

/// Whether a posted form carries the CSRF token of [`csrf_for`].
pub fn csrf_ok(cur: Option<&Current>, headers: &HeaderMap, f: &HashMap<String, String>) -> bool {
    let sent = f.get("csrf_token").map(String::as_str).unwrap_or_default();
    match cur {
        Some(c) => auth::same(&c.session.csrf_token, sent),
        None => session::cookie(headers, session::CSRF_COOKIE)
            .is_some_and(|c| c.len() >= 32 && auth::same(&c, sent)),
    }
}

pub fn form(body: &Bytes) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// A form field, trimmed ("" when absent).
pub fn field<'a>(f: &'a HashMap<String, String>, name: &str) -> &'a str {
    f.get(name).map(String::as_str).unwrap_or_default().trim()
}

pub use crate::authz::facts::timestamp;
