//! Sessions and CSRF: cookies, expiry and idle timeout, the signed-in person.
//!
//! A session id is 256 random bits, sent only in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` when the base URL is https); the store keeps its SHA-256. A session ends at
//! [`SESSION_SECS`] after sign-in, after [`IDLE_SECS`] without a request, at sign-out, and
//! at once for every session of an account that is deactivated or has its password reset.
//!
//! CSRF: every form carries a token that must match — the session's own token once signed
//! in; before that (sign-in, password reset) a random token in a separate cookie
//! (double submit). `SameSite=Strict` cookies are the second line.

use axum::http::{HeaderMap, HeaderValue, header};
use domain::types::StoreError;
use domain::types::accounts::{Account, Session, SessionStage};

use super::auth;
use crate::{AppState, clock};

pub const SESSION_COOKIE: &str = "passport_session";
pub const CSRF_COOKIE: &str = "passport_csrf";
/// Absolute lifetime of a signed-in session.
pub const SESSION_SECS: i64 = 12 * 3600;
/// A session unused this long ends.
pub const IDLE_SECS: i64 = 30 * 60;
/// Time allowed between the password and the TOTP code.
pub const PENDING_SECS: i64 = 10 * 60;
/// `last_seen` is written at most this often (not on every request).
const TOUCH_EVERY_US: i64 = 60 * 1_000_000;

/// The value of cookie `name` in the request, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure on https.
pub fn set_cookie(name: &str, value: &str, secure: bool) -> HeaderValue {
    let s = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&s).expect("cookie values are URL-safe base64")
}

/// A `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    let s = format!(
        "{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&s).expect("static cookie")
}

/// Whether cookies get `Secure`.
pub fn secure(st: &AppState) -> bool {
    st.config.base().starts_with("https://")
}

/// The request's session, if it is live, and its account.
#[derive(Clone)]
pub struct Current {
    pub session: Session,
    pub account: Account,
}

impl Current {
    pub fn is_full(&self) -> bool {
        self.session.stage == SessionStage::Full
    }
}

tokio::task_local! {
    /// The session a page request found (the hash of its cookie, and what was found), so
    /// the header layer and the handler look it up once (see [`remembering`]).
    static FOUND: (Vec<u8>, Option<Current>);
}

/// Runs `f` (the rest of a GET request) with the session `headers` name looked up once:
/// every [`current`] inside it with the same cookie gets that answer. Only for requests
/// that do not change the session (a GET reads it; sign-in and sign-out are POSTs).
pub async fn remembering<F: std::future::Future>(
    st: &AppState,
    headers: &HeaderMap,
    f: impl FnOnce(Result<Option<Current>, StoreError>) -> F,
) -> F::Output {
    let hash = cookie(headers, SESSION_COOKIE).map(|t| auth::token_hash(&t));
    let found = current(st, headers).await;
    match (hash, &found) {
        (Some(h), Ok(cur)) => {
            let cur = cur.clone();
            FOUND.scope((h, cur), f(found)).await
        }
        _ => f(found).await,
    }
}

/// Finds the live session named by the request's cookie. An expired or idle session, or
/// one whose account is gone or inactive, is deleted and treated as none.
pub async fn current(st: &AppState, headers: &HeaderMap) -> Result<Option<Current>, StoreError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let hash = auth::token_hash(&token);
    if let Ok(Some(found)) = FOUND.try_with(|(h, cur)| (*h == hash).then(|| cur.clone())) {
        return Ok(found);
    }
    let Some((session, account)) = st.domain.data().session(&hash).await? else {
        return Ok(None);
    };
    let now = clock::now_us();
    let idle_limit = match session.stage {
        SessionStage::Full => IDLE_SECS,
        SessionStage::Password => PENDING_SECS,
    } * 1_000_000;
    let live = session.expires_us > now
        && now - session.last_seen_us <= idle_limit
        && account.as_ref().is_some_and(|a| a.active);
    let Some(account) = account.filter(|_| live) else {
        st.domain.data().delete_session(&hash).await?;
        return Ok(None);
    };
    if now - session.last_seen_us > TOUCH_EVERY_US {
        st.domain.data().touch_session(&hash, now).await?;
    }
    Ok(Some(Current { session, account }))
}

/// Starts a session for `account` at `stage`; returns the cookie token.
pub async fn start(
    st: &AppState,
    account: &Account,
    stage: SessionStage,
) -> Result<String, StoreError> {
    let token = auth::random_token();
    let now = clock::now_us();
    let lifetime = match stage {
        SessionStage::Full => SESSION_SECS,
        SessionStage::Password => PENDING_SECS,
    };
    st.domain
        .data()
        .create_session(&Session {
            id_hash: auth::token_hash(&token),
            account_id: account.id.clone(),
            stage,
            csrf_token: auth::random_token(),
            created_us: now,
            last_seen_us: now,
            expires_us: now + lifetime * 1_000_000,
        })
        .await?;
    Ok(token)
}

/// Ends the request's session (if any).
pub async fn end(st: &AppState, headers: &HeaderMap) -> Result<(), StoreError> {
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        st.domain
            .data()
            .delete_session(&auth::token_hash(&token))
            .await?;
    }
    Ok(())
}

/// The access identity of a signed-in account (`domain::directory::identity`).
pub async fn identity(st: &AppState, account: &Account) -> Result<access::Identity, StoreError> {
    domain::directory::identity(&st.domain, account).await
}
