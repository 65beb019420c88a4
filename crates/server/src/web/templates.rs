//! Page templates (minijinja, compiled into the binary from `crates/server/templates/`),
//! written in the NHS.UK design system's markup. HTML auto-escaping is on for every
//! template (their names end in `.html`).

use std::sync::OnceLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;
use serde_json::{Value, json};

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../../templates/layout.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("sign_in.html", include_str!("../../templates/sign_in.html")),
    ("totp.html", include_str!("../../templates/totp.html")),
    ("home.html", include_str!("../../templates/home.html")),
    ("reset.html", include_str!("../../templates/reset.html")),
    ("forgot.html", include_str!("../../templates/forgot.html")),
    (
        "onboarding_check.html",
        include_str!("../../templates/onboarding_check.html"),
    ),
    ("message.html", include_str!("../../templates/message.html")),
    (
        "emergency.html",
        include_str!("../../templates/emergency.html"),
    ),
    (
        "card_links.html",
        include_str!("../../templates/card_links.html"),
    ),
    ("print.html", include_str!("../../templates/print.html")),
    (
        "download.html",
        include_str!("../../templates/download.html"),
    ),
    (
        "card_passcode.html",
        include_str!("../../templates/card_passcode.html"),
    ),
    ("radios.html", include_str!("../../templates/radios.html")),
    (
        "onboarding_invite.html",
        include_str!("../../templates/onboarding_invite.html"),
    ),
    (
        "onboarding_issued.html",
        include_str!("../../templates/onboarding_issued.html"),
    ),
    (
        "onboarding_requests.html",
        include_str!("../../templates/onboarding_requests.html"),
    ),
    ("join.html", include_str!("../../templates/join.html")),
    (
        "join_code.html",
        include_str!("../../templates/join_code.html"),
    ),
    (
        "register.html",
        include_str!("../../templates/register.html"),
    ),
    (
        "verify_email.html",
        include_str!("../../templates/verify_email.html"),
    ),
    (
        "admin_organisations.html",
        include_str!("../../templates/admin_organisations.html"),
    ),
    (
        "admin_clients.html",
        include_str!("../../templates/admin_clients.html"),
    ),
    (
        "admin_client_created.html",
        include_str!("../../templates/admin_client_created.html"),
    ),
    (
        "admin_staff.html",
        include_str!("../../templates/admin_staff.html"),
    ),
    (
        "admin_staff_created.html",
        include_str!("../../templates/admin_staff_created.html"),
    ),
    ("sharing.html", include_str!("../../templates/sharing.html")),
    ("photo.html", include_str!("../../templates/photo.html")),
    (
        "care_team_join.html",
        include_str!("../../templates/care_team_join.html"),
    ),
    (
        "sharing_question.html",
        include_str!("../../templates/sharing_question.html"),
    ),
    (
        "care_team.html",
        include_str!("../../templates/care_team.html"),
    ),
    (
        "admin_templates.html",
        include_str!("../../templates/admin_templates.html"),
    ),
    (
        "admin_template.html",
        include_str!("../../templates/admin_template.html"),
    ),
    (
        "passport.html",
        include_str!("../../templates/passport.html"),
    ),
    (
        "passport_form.html",
        include_str!("../../templates/passport_form.html"),
    ),
    (
        "passport_changes.html",
        include_str!("../../templates/passport_changes.html"),
    ),
    (
        "passport_caseload.html",
        include_str!("../../templates/passport_caseload.html"),
    ),
    (
        "break_glass.html",
        include_str!("../../templates/break_glass.html"),
    ),
    ("privacy.html", include_str!("../../templates/privacy.html")),
    (
        "access_log.html",
        include_str!("../../templates/access_log.html"),
    ),
    (
        "authorize_pick.html",
        include_str!("../../templates/authorize_pick.html"),
    ),
    (
        "authorize_approve.html",
        include_str!("../../templates/authorize_approve.html"),
    ),
    ("launch.html", include_str!("../../templates/launch.html")),
    (
        "oidc_signed_in.html",
        include_str!("../../templates/oidc_signed_in.html"),
    ),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        env
    })
}

/// One error of a form: the field it belongs to (its id) and the message.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub text: String,
}

pub fn field_error(field: &'static str, text: impl Into<String>) -> FieldError {
    FieldError {
        field,
        text: text.into(),
    }
}

/// `v` as a template value. Every page's context passes through here, never through
/// minijinja's serde support: with serde_json's `arbitrary_precision` (on in this workspace,
/// so stored decimals keep their text) a number serialises as a one-key map, which a page
/// would show as `{'$serde_json::private::Number': '4'}`. Here numbers become numbers
/// (integers when they are integers) and the rest maps one to one.
pub fn template_value(v: &Value) -> minijinja::Value {
    use minijinja::Value as T;
    match v {
        Value::Null => T::from(()),
        Value::Bool(b) => T::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                T::from(i)
            } else if let Some(u) = n.as_u64() {
                T::from(u)
            } else if let Some(f) = n.as_f64() {
                T::from(f)
            } else {
                T::from(n.to_string())
            }
        }
        Value::String(s) => T::from(s.as_str()),
        Value::Array(items) => T::from(items.iter().map(template_value).collect::<Vec<_>>()),
        Value::Object(map) => T::from(
            map.iter()
                .map(|(k, v)| (T::from(k.as_str()), template_value(v)))
                .collect::<std::collections::BTreeMap<T, T>>(),
        ),
    }
}

/// Renders `name` with `ctx` as an HTML response with `status`.
pub fn page(status: StatusCode, name: &str, mut ctx: Value) -> Response {
    // The header of a signed-in person (`nav`), on every page without each handler asking.
    if let (Some(nav), Some(m)) = (super::nav::current(), ctx.as_object_mut()) {
        m.entry("nav")
            .or_insert_with(|| serde_json::to_value(nav).unwrap_or(Value::Null));
    }
    let (status, rendered) = match env()
        .get_template(name)
        .and_then(|t| t.render(template_value(&ctx)))
    {
        Ok(r) => (status, r),
        Err(e) => {
            tracing::error!(error = %e, template = name, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                String::from(
                    "<!DOCTYPE html><html lang=\"en-GB\"><head><title>Error – Passport</title></head><body><main><h1>Sorry, there is a problem with the service</h1></main></body></html>",
                ),
            )
        }
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        rendered,
    )
        .into_response()
}

/// A page with a heading, some paragraphs and an optional link.
pub fn message(
    status: StatusCode,
    heading: &str,
    paragraphs: &[&str],
    link: Option<(&str, &str)>,
) -> Response {
    page(
        status,
        "message.html",
        json!({ "heading": heading, "paragraphs": paragraphs, "is_error": status.is_client_error() || status.is_server_error(), "link": link.map(|(href, text)| json!({ "href": href, "text": text })) }),
    )
}

pub use domain::dates::long_date;

/// A 303 to `to` (after a form POST).
pub fn see_other(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, HeaderValue::from_str(to).expect("a path"))],
    )
        .into_response()
}

/// `resp` with one more `Set-Cookie`.
pub fn with_cookie(mut resp: Response, cookie: HeaderValue) -> Response {
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

/// The refusal of a form whose CSRF token is missing or wrong: a 403 page that says what
/// to do, with an optional way on (`(href, text)`).
pub fn csrf_refused(next: Option<(&str, &str)>) -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Your form could not be sent",
        &[
            "For your security, we could not accept this form. This can happen if the page was open for a long time, or if you signed in or out in another tab.",
            "Nothing has been changed. Go back, reload the page and try again.",
        ],
        next,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes() {
        let _ = env();
        let resp = page(
            StatusCode::OK,
            "sign_in.html",
            json!({ "email": "<script>", "csrf_token": "t", "errors": Vec::<FieldError>::new() }),
        );
        assert_eq!(resp.status(), StatusCode::OK);
    }

    /// Numbers reach a template as numbers, not as serde_json's `arbitrary_precision` map.
    #[test]
    fn numbers_render_as_numbers() {
        let ctx = json!({ "n": 4, "big": u64::MAX, "x": 1.5, "list": [12], "m": { "k": 7 } });
        let out = env()
            .template_from_str("{{ n }} {{ big }} {{ x }} {{ list[0] }} {{ m.k }} {{ n + 1 }}")
            .unwrap()
            .render(template_value(&ctx))
            .unwrap();
        assert_eq!(out, format!("4 {} 1.5 12 7 5", u64::MAX));
    }
}
