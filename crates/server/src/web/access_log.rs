//! The family's access log, `/passport/{patient}/access-log`: who looked at or changed the
//! child's passport, from which organisation, when and what, in plain words, newest first,
//! a page at a time. For a family member with an active link to the child, or the young
//! person. Records of accesses for safeguarding are left out (only the privacy officer
//! sees them); emergency (break-glass) openings are shown first and prominently, with the
//! reason the clinician gave.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use domain::types::AuditQuery;
use serde_json::{Value, json};

use super::child_facts;
use super::directory;
use super::guard::{self, PageResult};
use super::templates::page;
use crate::AppState;
use crate::audit::{plain_words, uk_time};

/// Records a page.
pub const PAGE: usize = 20;

/// `GET /passport/{patient}/access-log[?before=SEQ]`
pub async fn view(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
    RawQuery(q): RawQuery,
) -> PageResult {
    let who = match guard::signed_in(&st, &headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    let Some(p) = child_facts::load(&st, &patient).await? else {
        return Ok(guard::no_such_passport());
    };
    let allowed = match &who.identity {
        access::Identity::Family { person } => p.facts.family_link(person).is_some(),
        access::Identity::YoungPerson { patient: own } => *own == patient,
        _ => false,
    };
    if !allowed {
        return Ok(guard::no_such_passport());
    }
    let query: HashMap<String, String> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let before = query.get("before").and_then(|b| b.parse::<i64>().ok());
    let mut entries = st
        .domain
        .data()
        .list_audit(&AuditQuery {
            patient_id: Some(patient.clone()),
            before_seq: before,
            include_safeguarding: false,
            count: PAGE + 1,
            ..AuditQuery::default()
        })
        .await?;
    let older = (entries.len() > PAGE).then(|| entries[PAGE - 1].seq);
    entries.truncate(PAGE);
    let lines: Vec<String> = entries
        .iter()
        .filter_map(|e| plain_words(&e.record.event))
        .collect();
    // Emergency openings, first page only (they are few, and the family must not miss them).
    let mut emergencies = Vec::new();
    if before.is_none() {
        for g in st.domain.data().break_glass_for_patient(&patient).await? {
            let name = st
                .domain
                .data()
                .account(&g.account_id)
                .await?
                .map(|a| a.display_name)
                .unwrap_or_default();
            let org = directory::organisation(&st.domain, &g.organisation_id)
                .await?
                .map(|o| o.name)
                .unwrap_or_default();
            emergencies.push(json!({ "who": name, "org": org, "reason": g.reason,
                                     "when": uk_time(g.starts_us), "until": uk_time(g.expires_us) }));
        }
    }
    Ok(page(
        StatusCode::OK,
        "access_log.html",
        json!({ "child": p.name, "patient": patient, "lines": lines, "emergencies": emergencies,
                "older": older.map(|s| Value::from(format!("/passport/{patient}/access-log?before={s}"))),
                "newer": before.is_some() }),
    ))
}
