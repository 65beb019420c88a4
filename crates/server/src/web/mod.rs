//! The web pages: server-rendered HTML on the NHS.UK design system, working without
//! JavaScript. Every route of this surface is in [`routes`].
//!
//! - [`assets`]: the `nhsuk-frontend` package, self-hosted at `/assets/…`.
//! - [`templates`]: minijinja templates (one layout every page extends).
//! - [`session`]: session cookies, expiry, CSRF.
//! - [`auth`]: argon2id, TOTP, tokens.
//! - [`directory`]: organisations, staff and family accounts (for `passport admin`).
//! - [`onboarding`]: family onboarding: invitations (`/join`), self-registration
//!   (`/register`), staff pages under `/onboarding/`, the clinic-list import.
//! - `pages`: the handlers of sign-in, the home page and password reset.
//! - `admin`: organisations and OAuth clients (regional admin), staff (organisation admin).
//! - `sharing`: the family's sharing choices (a Consent), `/passport/{id}/sharing`.
//! - `access_log`: the family's access log, `/passport/{id}/access-log`.
//! - `break_glass`: emergency access, `/break-glass`.
//! - `privacy`: the privacy officer's review, `/privacy`.
//! - [`child_facts`]: loads `access::ChildFacts` for a child; `guard`: shared page checks.
//!
//! Every response of this surface carries a strict Content-Security-Policy (no inline
//! script or style, nothing from another host), `frame-ancestors 'none'` /
//! `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` (reset links carry a secret in
//! their path), `X-Content-Type-Options: nosniff`, and `Cache-Control: no-store` on pages.
//! Signing in is not yet required by the FHIR API (a later step).

mod access_log;
pub use domain::{auth, directory};
mod admin;
pub mod assets;
mod break_glass;
pub mod child_facts;
mod guard;
pub mod oidc;
pub mod onboarding;
mod pages;
mod privacy;
pub mod session;
mod sharing;
pub mod templates;

pub(crate) use pages::WebError;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;

use crate::AppState;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; \
     manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
     object-src 'none'";

/// The pages and their assets.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(pages::home))
        .route("/sign-in", get(pages::sign_in_form).post(pages::sign_in))
        .route("/sign-in/code", get(pages::code_form).post(pages::code))
        .route("/sign-out", axum::routing::post(pages::sign_out))
        .route(
            "/reset-password/{token}",
            get(pages::reset_form).post(pages::reset),
        )
        .merge(onboarding::routes())
        .merge(admin::routes())
        .route(
            "/passport/{patient}/sharing",
            get(sharing::form_page).post(sharing::save),
        )
        .route("/passport/{patient}/access-log", get(access_log::view))
        .route(
            "/break-glass",
            get(break_glass::start).post(break_glass::open),
        )
        .route("/break-glass/{grant}", get(break_glass::content))
        .route("/privacy", get(privacy::view))
        .route(
            "/privacy/break-glass/{id}/reviewed",
            axum::routing::post(privacy::reviewed),
        )
        .route("/assets/{*path}", get(assets::serve))
        .merge(oidc::routes())
        // The authorisation pages (OAuth, but pages: they get this surface's headers).
        .merge(crate::oauth::authorize::routes())
        .layer(axum::middleware::from_fn(security_headers))
}

/// The Content-Security-Policy of a page whose forms lead (through a redirect) to other
/// origins: the OAuth approval page (to the app's redirect URI) and the app-launch page (to
/// apps' launch URIs). Browsers apply `form-action` to the redirects that follow a form,
/// so without this, "Allow" would be blocked. `origins` are ASCII-serialised URL origins.
pub fn csp_with_form_targets<'a>(origins: impl IntoIterator<Item = &'a str>) -> HeaderValue {
    let mut targets = String::from("'self'");
    for o in origins {
        // An origin as serialised by the url crate: scheme://host[:port], no spaces or ';'.
        if !o.contains([' ', ';', ',', '\'']) && !targets.split(' ').any(|t| t == o) {
            targets.push(' ');
            targets.push_str(o);
        }
    }
    let csp =
        CONTENT_SECURITY_POLICY.replace("form-action 'self'", &format!("form-action {targets}"));
    HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(CONTENT_SECURITY_POLICY))
}

/// Adds the security headers to every response of the pages.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // A handler may have widened form-action (see `csp_with_form_targets`); otherwise the
    // strict policy.
    let own_csp = h.contains_key(header::CONTENT_SECURITY_POLICY);
    let mut set = |name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    if !own_csp {
        set("content-security-policy", CONTENT_SECURITY_POLICY);
    }
    set("x-frame-options", "DENY");
    set("referrer-policy", "no-referrer");
    set("x-content-type-options", "nosniff");
    set("cross-origin-opener-policy", "same-origin");
    set(
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
