//! `GET /fhir/AuditEvent?patient=…`: the access log through the API, for those the
//! decision lets review it (privacy officers and the regional admin). AuditEvents live in
//! the hash-chained audit log, not with the resources, so this search reads the chain:
//! newest first, by child (`patient`, or `entity` naming a Patient), `_count` (default 20,
//! at most 100), and sealed `_cursor` paging. To anyone else the search finds nothing
//! (an empty Bundle, as if there were no records).

use access::Action;
use axum::response::Response;
use serde_json::json;

use super::response::BundleWriter;
use crate::audit::Interaction;
use crate::authz::Guard;
use crate::authz::audit::Note;
use crate::error::{ApiError, ApiResult};

const DEFAULT_COUNT: usize = 20;
const MAX_COUNT: usize = 100;

/// Every record the query matches, counted a page at a time from the newest.
async fn count_all(
    st: &crate::AppState,
    query: &domain::types::audit::AuditQuery,
) -> ApiResult<u64> {
    let mut q = query.clone();
    q.before_seq = None;
    q.count = 1000;
    let mut n = 0u64;
    loop {
        let page = st.domain.data().list_audit(&q).await?;
        n += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == q.count => q.before_seq = Some(last.seq),
            _ => return Ok(n),
        }
    }
}

pub async fn search(guard: &mut Guard<'_>, pairs: &[(String, String)]) -> ApiResult<Response> {
    let st = guard.st;
    let base = st.config.base();
    let mut query = domain::types::audit::AuditQuery {
        count: DEFAULT_COUNT,
        ..Default::default()
    };
    let (mut accurate, mut count_only, mut has_patient) = (false, false, false);
    for (k, v) in pairs {
        let bad = |what: &str| ApiError::bad_request("", format!("{k}: {what}"));
        match k.as_str() {
            "patient" | "entity" => {
                let id = v.strip_prefix("Patient/").unwrap_or(v);
                if id.is_empty() || id.contains('/') {
                    return Err(bad("expected Patient/<id>"));
                }
                query.patient_id = Some(id.to_owned());
            }
            "_count" => {
                query.count = v
                    .parse::<usize>()
                    .map_err(|_| bad("expected a whole number"))?
                    .clamp(1, MAX_COUNT)
            }
            "_cursor" => {
                query.before_seq = Some(
                    st.pages
                        .open(v)
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| bad("not a page position this server made"))?,
                )
            }
            "_total" if matches!(v.as_str(), "none" | "estimate" | "accurate") => {
                accurate = v == "accurate"
            }
            "_summary" if v == "count" => count_only = true,
            // "has a child": true of every match once a child is named (checked below).
            "patient:missing" | "entity:missing" if v == "false" => has_patient = true,
            "_format" => {}
            _ => {
                return Err(ApiError::bad_request(
                    "",
                    format!(
                        "{k}: AuditEvent searches support patient (or entity), _count, _total, _summary=count and paging"
                    ),
                ));
            }
        }
    }
    if has_patient && query.patient_id.is_none() {
        return Err(ApiError::bad_request(
            "",
            ":missing=false is supported only together with patient (or entity)",
        ));
    }
    let allowed = guard
        .decide(Action::Search, &json!({"resourceType": "AuditEvent"}))
        .await?
        .allow;
    // Those who may review the log see safeguarding records too (families never reach
    // this API for the log: they have the plain-words page without them).
    query.include_safeguarding = true;
    let mut fetch = query.clone();
    fetch.count = query.count + 1;
    let mut rows = if allowed {
        st.domain.data().list_audit(&fetch).await?
    } else {
        Vec::new()
    };
    let more = rows.len() > query.count;
    rows.truncate(query.count);
    // A total only when it is known: one page from the start, or counted on request.
    let total = if allowed && (accurate || count_only) && (more || query.before_seq.is_some()) {
        Some(count_all(st, &query).await?)
    } else if !more && query.before_seq.is_none() || !allowed {
        Some(rows.len() as u64)
    } else {
        None
    };
    if count_only {
        rows.clear();
    }
    let path = format!("{base}/fhir/AuditEvent");
    let link = |cursor: Option<i64>| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs.iter().filter(|(k, _)| k != "_cursor") {
            ser.append_pair(k, v);
        }
        if let Some(c) = cursor {
            ser.append_pair("_cursor", &st.pages.seal(&c.to_string()));
        }
        let q = ser.finish();
        if q.is_empty() {
            path.clone()
        } else {
            format!("{path}?{q}")
        }
    };
    let mut w = BundleWriter::new("searchset", total);
    w.link("self", &link(query.before_seq));
    if more
        && !count_only
        && let Some(last) = rows.last()
    {
        w.link("next", &link(Some(last.seq)));
    }
    for e in &rows {
        let id = serde_json::from_slice::<serde_json::Value>(&e.record.event)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let full_url = format!("{base}/fhir/AuditEvent/{id}");
        w.entry(Some(&full_url), Some(&e.record.event), |w| {
            w.raw(br#","search":{"mode":"match"}"#);
        });
    }
    let query_text = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter())
        .finish();
    if let Some(p) = &query.patient_id
        && allowed
    {
        guard.patients.insert(p.clone());
    }
    Ok(Note::search(
        guard,
        Interaction::SearchType,
        Some("AuditEvent"),
        Some(query_text),
    )
    .attach(w.finish()))
}
