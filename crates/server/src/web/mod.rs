//! The web pages: server-rendered HTML on the NHS.UK design system, working without
//! JavaScript. Every route of this surface is in one table, [`table`], that the router is
//! built from and the tests iterate.
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
//! - [`passport`]: the passport at a glance, the template's forms, "what changed" and
//!   review, a professional's children (`/passport/{id}`, `/passports`).
//! - `sharing`: the family's sharing choices (a Consent), `/passport/{id}/sharing`.
//! - `access_log`: the family's access log, `/passport/{id}/access-log`.
//! - `emergency`: the emergency view, `/passport/{id}/emergency` (break-glass and the card
//!   link show the same page).
//! - `card_link`: card links, made and stopped by the family
//!   (`/passport/{id}/card-links`) and opened by whoever holds one (`/card/{token}`).
//! - `print`: the printed passport, the wallet card and the family's copy.
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
pub mod authorize;
pub mod errors;
mod forgot;
pub use domain::{auth, directory};
mod admin;
mod admin_templates;
pub mod assets;
mod break_glass;
mod card_link;
pub mod child_facts;
mod emergency;
pub(crate) mod guard;
mod nav;
pub mod oidc;
pub mod onboarding;
mod pages;
pub mod passport;
mod photo;
mod print;
mod privacy;
pub mod session;
mod sharing;
pub mod templates;
mod zip;

pub(crate) use errors::PageError;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{self, MethodRouter};

use crate::AppState;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; \
     manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
     object-src 'none'";

/// What a POST to a page route changes, as the route table declares it; the tests hold
/// every route to its declaration (`tests/pages.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A form step that keeps nothing (a lookup, or an answer the next step needs).
    Nothing,
    /// The person's own sign-in: signing in or out, a password, a registration, an app
    /// they allow to act for them. Sign-ins and sign-outs are audited.
    Account,
    /// Who may see a child's record, or what they see: a passport and its care team, a
    /// family link asked for, confirmed or refused, an invitation accepted, sharing
    /// choices, break-glass. Each leaves an AuditEvent naming who made it.
    Access,
    /// The service's own records: organisations, staff, OAuth clients, reviews of
    /// break-glass. Directory records are audited as who made them.
    Service,
    /// An item of a child's passport added, changed, ended or checked (`domain::passport`):
    /// each leaves an AuditEvent naming who did it.
    Record,
}

/// What a GET of a page route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// Nothing (a POST-only route).
    Nothing,
    /// An HTML page.
    Page,
    /// A redirect onwards (an external sign-in's callback).
    Redirect,
    /// Static files.
    Assets,
    /// A child's photo (image bytes), decided and audited like the passport.
    Image,
    /// A file to download (a PDF, a ZIP), decided like the passport and audited as an
    /// export.
    Download,
}

/// One route of this surface: the router is built from the table, and tests iterate it.
pub struct Route {
    pub path: &'static str,
    pub get: Serves,
    pub post: Option<Effect>,
    handler: MethodRouter<Arc<AppState>>,
}

impl Route {
    /// A page (GET only).
    fn page<H: Handler<T, Arc<AppState>>, T: 'static>(path: &'static str, get: H) -> Route {
        Route {
            path,
            get: Serves::Page,
            post: None,
            handler: routing::get(get),
        }
    }

    /// A page with a form posted back to it.
    fn form<G, TG, P, TP>(path: &'static str, get: G, effect: Effect, post: P) -> Route
    where
        G: Handler<TG, Arc<AppState>>,
        P: Handler<TP, Arc<AppState>>,
        TG: 'static,
        TP: 'static,
    {
        Route {
            path,
            get: Serves::Page,
            post: Some(effect),
            handler: routing::get(get).post(post),
        }
    }

    /// A page with a file-upload form posted back to it: the body may be up to `limit`
    /// bytes (the default elsewhere is 2 MB).
    fn upload<G, TG, P, TP>(
        path: &'static str,
        get: G,
        effect: Effect,
        post: P,
        limit: usize,
    ) -> Route
    where
        G: Handler<TG, Arc<AppState>>,
        P: Handler<TP, Arc<AppState>>,
        TG: 'static,
        TP: 'static,
    {
        Route {
            path,
            get: Serves::Page,
            post: Some(effect),
            handler: routing::get(get)
                .post(post)
                .layer(axum::extract::DefaultBodyLimit::max(limit)),
        }
    }

    /// A form's target that is not a page of its own (POST only).
    fn action<P: Handler<T, Arc<AppState>>, T: 'static>(
        path: &'static str,
        effect: Effect,
        post: P,
    ) -> Route {
        Route {
            path,
            get: Serves::Nothing,
            post: Some(effect),
            handler: routing::post(post),
        }
    }

    /// A GET that is not a page: a redirect onwards, or static files.
    fn other<H: Handler<T, Arc<AppState>>, T: 'static>(
        path: &'static str,
        serves: Serves,
        get: H,
    ) -> Route {
        Route {
            path,
            get: serves,
            post: None,
            handler: routing::get(get),
        }
    }
}

/// Every route of the pages, in one table.
pub fn table() -> Vec<Route> {
    use Effect::{Access, Account, Nothing, Record, Service};
    let mut t = vec![
        Route::page("/", pages::home),
        Route::form("/sign-in", pages::sign_in_form, Account, pages::sign_in),
        Route::form("/sign-in/code", pages::code_form, Account, pages::code),
        Route::action("/sign-out", Account, pages::sign_out),
        Route::form("/forgot-password", forgot::form_page, Account, forgot::send),
        Route::form(
            "/reset-password/{token}",
            pages::reset_form,
            Account,
            pages::reset,
        ),
        Route::page("/passport/{patient}/sharing", sharing::summary),
        Route::form(
            "/passport/{patient}/sharing/sector/{sector}",
            sharing::sector_form,
            Access,
            sharing::save_sector,
        ),
        Route::form(
            "/passport/{patient}/sharing/organisation/{org}",
            sharing::organisation_form,
            Access,
            sharing::save_organisation,
        ),
        Route::page("/passport/{patient}/access-log", access_log::view),
        Route::page("/passport/{patient}", passport::view),
        Route::page("/passport/{patient}/emergency", emergency::view),
        Route::form(
            "/passport/{patient}/card-links",
            card_link::list,
            Access,
            card_link::make,
        ),
        Route::action(
            "/passport/{patient}/card-links/{id}/stop",
            Access,
            card_link::stop,
        ),
        Route::form(
            "/card/{token}",
            card_link::view,
            Nothing,
            card_link::passcode,
        ),
        Route::action(
            "/passport/{patient}/card-links/card",
            Nothing,
            print::wallet_card,
        ),
        Route::page("/passport/{patient}/print", print::choose),
        Route::other(
            "/passport/{patient}/print/pdf",
            Serves::Download,
            print::pdf,
        ),
        Route::page("/passport/{patient}/download", print::copy_page),
        Route::other(
            "/passport/{patient}/download/copy",
            Serves::Download,
            print::copy,
        ),
        Route::page("/passport/{patient}/sharing/{org}", passport::preview),
        Route::form(
            "/passport/{patient}/care-team",
            passport::care_team,
            Access,
            passport::change_care_team,
        ),
        Route::form(
            "/passport/{patient}/add/{form}",
            passport::add_form,
            Record,
            passport::add,
        ),
        Route::form(
            "/passport/{patient}/item/{type}/{id}",
            passport::change_form,
            Record,
            passport::change,
        ),
        Route::action(
            "/passport/{patient}/item/{type}/{id}/end",
            Record,
            passport::end,
        ),
        Route::action(
            "/passport/{patient}/item/{type}/{id}/checked",
            Record,
            passport::checked,
        ),
        Route::page("/passport/{patient}/changes", passport::changes),
        Route::upload(
            "/passport/{patient}/photo",
            photo::form_page,
            Record,
            photo::upload,
            photo::UPLOAD_LIMIT,
        ),
        Route::other(
            "/passport/{patient}/photo/{id}",
            Serves::Image,
            photo::image,
        ),
        Route::action(
            "/passport/{patient}/review-date",
            Record,
            passport::review_date,
        ),
        Route::form("/passports", passport::caseload, Nothing, passport::find),
        Route::form(
            "/passports/join",
            passport::join_form,
            Record,
            passport::join,
        ),
        Route::form(
            "/break-glass",
            break_glass::start,
            Access,
            break_glass::open,
        ),
        Route::page("/break-glass/{grant}", break_glass::content),
        Route::page("/privacy", privacy::view),
        Route::action(
            "/privacy/break-glass/{id}/reviewed",
            Service,
            privacy::reviewed,
        ),
        Route::other("/assets/{*path}", Serves::Assets, assets::serve),
    ];
    t.extend(onboarding::routes());
    t.extend(admin::routes());
    t.extend(admin_templates::routes());
    t.extend(oidc::routes());
    // The authorisation pages (OAuth, but pages: they get this surface's headers).
    t.extend(authorize::routes());
    t
}

/// The pages and their assets, built from [`table`].
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    table()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .layer(axum::middleware::from_fn_with_state(state, nav::layer))
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
    with_security_headers(next.run(req).await, is_asset)
}

/// The security headers of a page (or, `is_asset`, of a static file).
fn with_security_headers(mut resp: Response, is_asset: bool) -> Response {
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

/// The NHS.UK "Page not found" page, for an address no page answers.
/// The pages' answer to a request no page can take (400): `title`, then why.
pub fn bad_request(title: &str, why: &str) -> Response {
    with_security_headers(
        templates::message(
            axum::http::StatusCode::BAD_REQUEST,
            title,
            &[why, "Go back, correct it and try again."],
            Some(("/", "Go to the home page")),
        ),
        false,
    )
}

pub fn page_not_found() -> Response {
    with_security_headers(
        templates::message(
            axum::http::StatusCode::NOT_FOUND,
            "Page not found",
            &[
                "If you typed the web address, check it is correct. If you pasted the web address, check you copied the entire address.",
            ],
            Some(("/", "Go to the home page")),
        ),
        false,
    )
}
