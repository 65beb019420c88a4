//! The privacy officer's view, `/privacy` (privacy officers and the regional admin): the
//! break-glass grants made by staff of their organisation (unreviewed first) with a form to
//! mark each reviewed — for the regional admin also those of every organisation of the
//! region that has no active privacy officer — and the access log of one child found by NHS Number — including
//! the safeguarding records the family never sees.

use std::collections::HashMap;
use std::sync::Arc;

use access::Role;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use domain::types::{AuditQuery, Sensitivity};
use serde_json::{Value, json};

use super::guard::{self, PageResult, SignedIn, forbidden, form};
use super::onboarding::{find_child, parse_nhs_number};
use super::templates::{csrf_refused, field_error, page, see_other};
use crate::audit::{plain_words, uk_time};
use crate::{AppState, clock};

/// How many access-log records the page lists.
const LOG_PAGE: usize = 100;

async fn officer(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Result<SignedIn, Response>, guard::PageError> {
    let who = match guard::signed_in(st, headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(Err(r)),
    };
    if !matches!(who.role(), Some(Role::PrivacyOfficer | Role::RegionalAdmin)) {
        return Ok(Err(forbidden(
            "Only privacy officers can review emergency access and the access log.",
        )));
    }
    Ok(Ok(who))
}

/// The organisations whose break-glass grants this reviewer reviews: a privacy officer,
/// their own; the regional admin, their own and those of every organisation of their
/// region that has no active privacy officer (someone must review every grant).
async fn reviewed_organisations(
    st: &AppState,
    who: &SignedIn,
) -> Result<Vec<String>, guard::PageError> {
    let Some(staff) = who.staff() else {
        return Ok(Vec::new());
    };
    let mut orgs = vec![staff.organisation.clone()];
    if staff.role != Role::RegionalAdmin {
        return Ok(orgs);
    }
    let with_officer: std::collections::HashSet<String> = st
        .domain
        .data()
        .list_accounts()
        .await?
        .into_iter()
        .filter(|a| a.active && a.role.as_deref() == Some(Role::PrivacyOfficer.code()))
        .filter_map(|a| a.organisation_id)
        .collect();
    for o in super::directory::list_organisations(&st.domain).await? {
        if o.region == staff.region && o.id != staff.organisation && !with_officer.contains(&o.id) {
            orgs.push(o.id);
        }
    }
    Ok(orgs)
}

/// Display names of accounts and children, looked up once each.
async fn grants_view(st: &AppState, orgs: &[String]) -> Result<Vec<Value>, guard::PageError> {
    let mut grants = Vec::new();
    for org in orgs {
        grants.extend(
            st.domain
                .data()
                .break_glass_for_organisation(org, false)
                .await?,
        );
    }
    // Unreviewed first; newest first within each.
    grants.sort_by_key(|g| (g.reviewed_us.is_some(), std::cmp::Reverse(g.starts_us)));
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for g in grants {
        if !names.contains_key(&g.account_id) {
            let n = st
                .domain
                .data()
                .account(&g.account_id)
                .await?
                .map(|a| a.display_name)
                .unwrap_or_default();
            names.insert(g.account_id.clone(), n);
        }
        let child = match st
            .domain
            .records()
            .read("Patient", &g.patient_id)
            .await?
            .filter(|s| !s.deleted)
        {
            Some(s) => {
                let v: Value = serde_json::from_slice(&s.body).unwrap_or_default();
                let nhs = fhir::nhs_number::of(&v).unwrap_or_default().to_owned();
                let name = v["name"][0]["text"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        format!(
                            "{} {}",
                            v["name"][0]["given"][0].as_str().unwrap_or_default(),
                            v["name"][0]["family"].as_str().unwrap_or_default()
                        )
                    });
                format!("{} (NHS Number {nhs})", name.trim())
            }
            None => "A passport that no longer exists".to_owned(),
        };
        out.push(json!({
            "id": g.id, "who": names[&g.account_id], "child": child, "reason": g.reason,
            "when": uk_time(g.starts_us), "expires": uk_time(g.expires_us),
            "reviewed": g.reviewed_us.map(uk_time),
        }));
    }
    Ok(out)
}

/// `GET /privacy[?nhs_number=…]`
pub async fn view(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> PageResult {
    let who = match officer(&st, &headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    let grants = grants_view(&st, &reviewed_organisations(&st, &who).await?).await?;
    let query: HashMap<String, String> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let typed = query
        .get("nhs_number")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mut errors = Vec::new();
    let mut log: Option<Vec<Value>> = None;
    if query.contains_key("nhs_number") {
        match parse_nhs_number(&typed) {
            None => errors.push(field_error(
                "nhs_number",
                "Enter a valid 10-digit NHS Number",
            )),
            Some(n) => match find_child(&st.domain, &n).await? {
                None => errors.push(field_error(
                    "nhs_number",
                    "There is no passport with this NHS Number",
                )),
                Some(child) => {
                    let entries = st
                        .domain
                        .data()
                        .list_audit(&AuditQuery {
                            patient_id: Some(child.id),
                            include_safeguarding: true,
                            count: LOG_PAGE,
                            ..AuditQuery::default()
                        })
                        .await?;
                    log = Some(entries.iter().map(|e| json!({
                        "text": plain_words(&e.record.event).unwrap_or_default(),
                        "safeguarding": e.record.sensitivity == Sensitivity::Safeguarding,
                    })).collect());
                }
            },
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(page(
        status,
        "privacy.html",
        json!({ "grants": grants, "log": log, "nhs_number": typed, "errors": errors,
                "csrf_token": who.csrf_token() }),
    ))
}

/// `POST /privacy/break-glass/{id}/reviewed`: only grants of the officer's organisation.
pub async fn reviewed(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let who = match officer(&st, &headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    if !who.csrf_ok(&form(&body)) {
        return Ok(csrf_refused(Some((
            "/privacy",
            "Go back to the privacy page",
        ))));
    }
    let mut ours = false;
    for org in reviewed_organisations(&st, &who).await? {
        ours |= st
            .domain
            .data()
            .break_glass_for_organisation(&org, false)
            .await?
            .iter()
            .any(|g| g.id == id);
    }
    if !ours {
        return Ok(guard::not_found());
    }
    st.domain
        .data()
        .mark_break_glass_reviewed(&id, &who.cur.account.id, clock::now_us())
        .await?;
    Ok(see_other("/privacy"))
}
