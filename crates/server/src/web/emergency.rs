//! The emergency view, `/passport/{patient}/emergency`: one screen per child for an
//! emergency department, an ambulance crew or a school first aider, legible on a phone
//! and readable in 30 seconds — allergies, the emergency protocol as the clinician wrote
//! it, current medicines with their doses, who to call, how the child communicates and
//! what calms them. What it holds is the emergency content defined in
//! `access::emergency`, decided for the reader; break-glass (`/break-glass/{grant}`) and
//! the card link render the same page.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use domain::passport::{self, Emergency};
use serde_json::{Value, json};

use super::guard::PageResult;
use super::passport::{caller, failed, is_family, item_json, spaced_nhs_number};
use super::templates::{long_date, page};
use crate::AppState;

/// `GET /passport/{patient}/emergency`
pub async fn view(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
) -> PageResult {
    let (_, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let v = match passport::emergency(&st.domain, &c, &patient).await {
        Ok(v) => v,
        Err(f) => return failed(f, &patient, "/"),
    };
    let back = format!("/passport/{patient}");
    Ok(render(
        &v,
        is_family(&c),
        json!({ "back": back, "full_passport": true }),
    ))
}

/// The emergency page for `v`; `extra` adds to what the template gets (a notice, where
/// to go back to).
pub(super) fn render(v: &Emergency, family: bool, extra: Value) -> Response {
    let parts: Vec<Value> = v
        .parts
        .iter()
        .map(|p| {
            let sections: Vec<Value> = p
                .sections
                .iter()
                .map(|s| {
                    let items: Vec<Value> = s.items.iter().map(|i| item_json(i, family)).collect();
                    json!({ "code": s.code, "title": s.title, "shared": s.shared, "items": items })
                })
                .collect();
            json!({ "code": p.code, "title": p.title, "sections": sections })
        })
        .collect();
    let mut ctx = json!({
        "patient": v.patient, "name": v.name,
        "birth_date": long_date(&v.birth_date).unwrap_or_else(|| "not recorded".into()),
        "nhs_number": spaced_nhs_number(&v.nhs_number),
        "parts": parts, "waiting": v.waiting,
        "last_checked": v.last_checked,
        "next_review": v.next_review.as_deref().and_then(long_date),
        "review_overdue": v.review_overdue,
    });
    if let (Some(c), Some(e)) = (ctx.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    page(StatusCode::OK, "emergency.html", ctx)
}
