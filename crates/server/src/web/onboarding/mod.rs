//! Family onboarding, the pages (the service is `domain::onboarding`), one module per
//! journey: [`invite`] (staff), [`join`] (an invitation code), [`register`]
//! (self-registration and the email check), [`email`] (verifying a new sign-in's address).
//!
//! The ways a parent or carer gets into a child's passport:
//!
//! - **Clinic invitation** (`/onboarding/invite`, staff): find the child by NHS Number or
//!   create their passport (a `Patient` and a `CareTeam` with the staff member's
//!   organisation), then issue a one-time code (also a link and a QR code). The parent
//!   redeems it at `/join` (or `/join/{code}`), using their family sign-in or asking for a
//!   new one (verified by email, below), and is bound to the child.
//! - **Self-registration** (`/register`): the parent gives the child's NHS Number and date
//!   of birth; if they match a passport, a *pending* link is made (`RelatedPerson.active =
//!   false`), which a professional in the child's care team confirms or declines at
//!   `/onboarding/requests`. The answer is the same whether or not the child exists.
//! - **New sign-ins wait for their email address to be verified** ([`begin_registration`],
//!   `/verify-email/{token}`): the same "check your email" page whether or not the address
//!   already has a sign-in, rate limits per address and per client IP, and the sign-in is
//!   made only when the emailed link is followed (docs/SECURITY.md, "Self-registration").
//! - **Bulk import**: `passport admin import-clinic-list` ([`import_clinic_list`]).
//!
//! The family link is FHIR (docs/DATA-MODEL.md): the adult's `Person.link[].target` names
//! one `RelatedPerson` per child; `RelatedPerson.patient` is the child, `relationship` a
//! v3-RoleCode, the [`PARENTAL_RESPONSIBILITY_EXTENSION`] a boolean. Everything is written
//! through the validated, versioned, indexed resource path. Invitation codes and activity
//! times are in the store ([`domain::types::onboarding`]).

mod email;
mod invite;
mod join;
mod register;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use domain::types::StoreError;
use domain::types::accounts::AccountKind;
use serde_json::{Value, json};

use super::{Effect, Route};
use crate::AppState;
use crate::web::guard::csrf_for;
use crate::web::session::{self, CSRF_COOKIE, Current};
use crate::web::templates::{message, page, see_other, with_cookie};

pub use domain::onboarding::*;
pub use email::VERIFY_LINK_SECS;
pub(crate) use email::{BAD_EMAIL, too_many_registrations};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::form(
            "/onboarding/invite",
            invite::invite_form,
            Effect::Access,
            invite::invite,
        ),
        Route::page("/onboarding/requests", invite::requests),
        Route::action(
            "/onboarding/requests/{id}",
            Effect::Access,
            invite::decide_request,
        ),
        Route::form("/join", join::join_form, Effect::Nothing, join::join_lookup),
        Route::form(
            "/join/{code}",
            join::join_code_form,
            Effect::Access,
            join::join_code,
        ),
        // Signed out: a new sign-in, waiting for its email check; signed in: a request to
        // be linked to a child (a pending family link).
        Route::form(
            "/register",
            register::register_form,
            Effect::Access,
            register::register,
        ),
        // Confirming the address makes the sign-in, then redeems the invitation or asks
        // for the link the registration named.
        Route::form(
            "/verify-email/{token}",
            register::verify_form,
            Effect::Access,
            register::verify,
        ),
    ]
}

/// The signed-in (fully) session, if any.
pub(super) async fn signed_in(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Current>, StoreError> {
    Ok(session::current(st, headers)
        .await?
        .filter(Current::is_full))
}

/// Renders a form page, adding the CSRF token (and its cookie when new).
pub(super) fn form_page(
    st: &AppState,
    status: StatusCode,
    name: &str,
    cur: Option<&Current>,
    headers: &HeaderMap,
    mut ctx: Value,
) -> Response {
    let (csrf, new) = csrf_for(cur, headers);
    ctx["csrf_token"] = json!(csrf);
    ctx["relationships"] = json!(
        RELATIONSHIPS
            .iter()
            .map(|(c, l)| json!({ "code": c, "label": l }))
            .collect::<Vec<_>>()
    );
    let resp = page(status, name, ctx);
    match new {
        Some(t) => with_cookie(
            resp,
            session::set_cookie(CSRF_COOKIE, &t, session::secure(st)),
        ),
        None => resp,
    }
}

/// A signed-in member of staff who works with children's records, or the response to send.
pub(super) async fn staff(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Result<Current, Response>, StoreError> {
    let Some(cur) = session::current(st, headers).await? else {
        return Ok(Err(see_other("/sign-in")));
    };
    if !cur.is_full() {
        return Ok(Err(see_other("/sign-in/code")));
    }
    let ok = cur.account.kind == AccountKind::Staff
        && matches!(session::identity(st, &cur.account).await?,
            access::Identity::Staff(s) if s.role.sees_child_records());
    if !ok {
        return Ok(Err(message(
            StatusCode::FORBIDDEN,
            "You cannot use this page",
            &[
                "Only staff who work with children's records can invite families or confirm their requests.",
            ],
            Some(("/", "Go to the home page")),
        )));
    }
    Ok(Ok(cur))
}

/// The QR code of `text` as an inline SVG element with a text alternative.
pub fn qr_svg(text: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].replacen(
        "<svg",
        "<svg role=\"img\" aria-label=\"QR code of the invitation link\" focusable=\"false\"",
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_is_inline_svg_with_a_name() {
        let svg = qr_svg("http://127.0.0.1/join/0123456789");
        assert!(svg.starts_with("<svg role=\"img\" aria-label="), "{svg}");
        assert!(!svg.contains("<?xml"));
    }
}
