//! The regional admin's templates: `/admin/templates` lists the passport templates with the
//! version shipped in this release and the one published; `/admin/templates/{id}` previews
//! a template as forms will show it (each question with its type, whether it is required,
//! the section its answers belong to, and the escalation rules); publishing makes the
//! shipped version the one new answers are given against (`domain::passport::templates`).

use std::sync::Arc;

use access::Role;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use domain::passport::templates::{self, PublishError};
use domain::records::Agent;
use serde_json::{Value, json};

use super::admin::admin;
use super::guard::{PageResult, field, form};
use super::templates::{csrf_refused, page, see_other};
use super::{Effect, Route};
use crate::AppState;
use crate::audit::Purpose;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::form("/admin/templates", list, Effect::Service, publish),
        Route::page("/admin/templates/{id}", preview),
    ]
}

/// `GET /admin/templates`
async fn list(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let who = match admin(&st, &headers, Role::RegionalAdmin).await {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    let states = templates::states(&st.domain).await?;
    Ok(page(
        StatusCode::OK,
        "admin_templates.html",
        json!({ "templates": states, "csrf_token": who.csrf_token() }),
    ))
}

/// `POST /admin/templates`: publishes the shipped version of `template`.
async fn publish(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> PageResult {
    let who = match admin(&st, &headers, Role::RegionalAdmin).await {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    let f = form(&body);
    if !who.csrf_ok(&f) {
        return Ok(csrf_refused(Some((
            "/admin/templates",
            "Go back to templates",
        ))));
    }
    let by = Agent::for_account(&st.domain, &who.cur.account, Purpose::Operations).await;
    match templates::publish(&st.domain, &by, field(&f, "template")).await {
        Ok(_) => Ok(see_other("/admin/templates")),
        Err(PublishError::Unknown(_)) => Ok(super::guard::not_found()),
        Err(PublishError::Invalid(m)) => Err(super::guard::PageError::new("a shipped template", m)),
        Err(PublishError::Store(e)) => Err(e.into()),
    }
}

/// One question or rule of a template, for the preview.
fn rows(items: &Value, depth: usize, out: &mut Vec<Value>) {
    for item in items.as_array().into_iter().flatten() {
        let ext = |name: &str| {
            item["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| {
                    e["url"].as_str()
                        == Some(&format!(
                            "https://passport.nhs.uk/fhir/StructureDefinition/{name}"
                        ))
                })
        };
        let section = ext("passport-section")
            .and_then(|e| e["valueCode"].as_str())
            .and_then(access::Section::from_code)
            .map(|s| s.display());
        let rule = ext("escalation-rule").is_some();
        out.push(json!({
            "depth": depth, "text": item["text"], "type": item["type"],
            "required": item["required"].as_bool().unwrap_or(false),
            "repeats": item["repeats"].as_bool().unwrap_or(false),
            "when": ext("required-when").and_then(|e| e["valueString"].as_str()),
            "clinician": ext("clinician-entered").is_some(),
            "options": item["answerOption"].as_array().map(|a| a.len()).unwrap_or(0),
            "section": section, "rule": rule, "id": item["linkId"],
        }));
        rows(&item["item"], depth + 1, out);
    }
}

/// `GET /admin/templates/{id}`: the shipped version, as the forms will show it.
async fn preview(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let who = match admin(&st, &headers, Role::RegionalAdmin).await {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    let Some(q) = templates::shipped(&id) else {
        return Ok(super::guard::not_found());
    };
    let state = templates::states(&st.domain)
        .await?
        .into_iter()
        .find(|s| s.id == id);
    let mut out = Vec::new();
    rows(&q["item"], 0, &mut out);
    Ok(page(
        StatusCode::OK,
        "admin_template.html",
        json!({ "id": id, "title": q["title"], "description": q["description"],
                "version": q["version"], "state": state, "rows": out,
                "csrf_token": who.csrf_token() }),
    ))
}
