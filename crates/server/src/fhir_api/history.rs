//! `_history` at instance, type and system level, with `_since`, `_at`, `_count` and
//! keyset paging (`_before`, an opaque position the `next` link carries), so pages stay
//! correct while others write.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use domain::types::HistoryQuery;

use super::request;
use super::request::require_supported;
use super::response::{BundleWriter, etag};
use crate::AppState;
use crate::audit::Interaction;
use crate::authz::{Caller, Guard};
use crate::clock;
use crate::error::{ApiError, ApiResult};

const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 1000;

pub async fn system(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    request::check_accept(&headers)?;
    let mut guard = Guard::new(&st, &caller);
    history(&mut guard, None, None, q).await
}

pub async fn type_level(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(resource_type): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    request::check_accept(&headers)?;
    type_history(&st, &caller, &resource_type, q).await
}

/// The history of one type.
pub async fn type_history(
    st: &AppState,
    caller: &Caller,
    resource_type: &str,
    q: Option<String>,
) -> ApiResult<Response> {
    require_supported(resource_type)?;
    let mut guard = Guard::new(st, caller);
    guard.require_scope(resource_type, access::Action::History)?;
    history(&mut guard, Some(resource_type.to_owned()), None, q).await
}

pub async fn instance(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    request::check_accept(&headers)?;
    instance_history(&st, &caller, &resource_type, &id, q).await
}

/// The history of one resource.
pub async fn instance_history(
    st: &AppState,
    caller: &Caller,
    resource_type: &str,
    id: &str,
    q: Option<String>,
) -> ApiResult<Response> {
    let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
    require_supported(&resource_type)?;
    let mut guard = Guard::new(st, caller);
    guard.require_scope(&resource_type, access::Action::History)?;
    // The resource's history exists for the caller only if its latest content is theirs
    // to see.
    let visible = match latest_body(st, &resource_type, &id).await? {
        Some(body) => guard
            .readable(access::Action::History, &body)
            .await?
            .is_some(),
        None => false,
    };
    if !visible {
        return Err(crate::authz::not_found(&resource_type, &id));
    }
    history(&mut guard, Some(resource_type), Some(id), q).await
}

/// The body of the latest version with content (the one before a deletion).
async fn latest_body(
    st: &AppState,
    resource_type: &str,
    id: &str,
) -> ApiResult<Option<bytes::Bytes>> {
    Ok(match st.domain.records().read(resource_type, id).await? {
        None => None,
        Some(s) if !s.deleted => Some(s.body),
        Some(s) => super::crud::deleted_body(st, &s).await?,
    })
}

fn parse_query(st: &AppState, raw: &str, mut query: HistoryQuery) -> ApiResult<HistoryQuery> {
    query.count = DEFAULT_COUNT;
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        let bad = |what: &str| ApiError::bad_request("", format!("{name}: {what}"));
        match name.as_ref() {
            "_since" => {
                query.since_us = Some(
                    clock::parse_fhir_datetime(&value)
                        .ok_or_else(|| bad("expected a FHIR instant, e.g. 2026-01-31T09:00:00Z"))?,
                )
            }
            "_at" => {
                query.at_us =
                    Some(clock::parse_fhir_datetime(&value).ok_or_else(|| {
                        bad("expected a FHIR dateTime, e.g. 2026-01-31T09:00:00Z")
                    })?)
            }
            "_count" => {
                let n: usize = value.parse().map_err(|_| bad("expected a whole number"))?;
                query.count = n.min(MAX_COUNT);
            }
            "_before" => {
                query.before_seq = Some(
                    st.pages
                        .open(&value)
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| bad("not a page position this server made"))?,
                )
            }
            // Other parameters (e.g. _format) do not change a history listing.
            _ => {}
        }
    }
    Ok(query)
}

async fn history(
    guard: &mut Guard<'_>,
    resource_type: Option<String>,
    id: Option<String>,
    raw_query: Option<String>,
) -> ApiResult<Response> {
    let st = guard.st;
    let raw_query = raw_query.unwrap_or_default();
    let query = parse_query(
        st,
        &raw_query,
        HistoryQuery {
            resource_type: resource_type.clone(),
            id: id.clone(),
            ..Default::default()
        },
    )?;
    let mut fetch = query.clone();
    fetch.count = query.count + 1;
    // Only versions the caller may see are listed (and counted for paging).
    let views = guard.views().await?;
    let mut entries = st
        .domain
        .records()
        .history(
            &fetch,
            domain::types::search::Visibility::Caller(&views.history()),
        )
        .await?;
    let mut more = entries.len() > query.count;
    entries.truncate(query.count);
    if let Some(keep) = super::paging::cut_at_bytes(
        entries.iter().map(|e| e.version.body.len()),
        st.config.max_bundle_bytes,
    ) {
        entries.truncate(keep);
        more = true;
    }

    let base = st.config.base();
    let path = match (&resource_type, &id) {
        (Some(t), Some(i)) => format!("{base}/fhir/{t}/{i}/_history"),
        (Some(t), None) => format!("{base}/fhir/{t}/_history"),
        _ => format!("{base}/fhir/_history"),
    };
    let kept: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .filter(|(k, _)| k != "_before")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let link = |before: Option<i64>| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            ser.append_pair(k, v);
        }
        if let Some(b) = before {
            ser.append_pair("_before", &st.pages.seal(&b.to_string()));
        }
        let q = ser.finish();
        if q.is_empty() {
            path.clone()
        } else {
            format!("{path}?{q}")
        }
    };

    let mut w = BundleWriter::new("history", None);
    w.link("self", &link(query.before_seq));
    if more && let Some(last) = entries.last() {
        w.link("next", &link(Some(last.seq)));
    }
    for e in &entries {
        let v = &e.version;
        // Each version is shown only if the caller may see it; a deletion only if they
        // could see what it deleted. Pages may hold fewer entries than asked for.
        let shown = if v.deleted {
            super::crud::deletion_visible(guard, v)
                .await?
                .then(bytes::Bytes::new)
        } else {
            guard.readable(access::Action::History, &v.body).await?
        };
        let Some(shown) = shown else { continue };
        let full_url = format!("{base}/fhir/{}/{}", v.resource_type, v.id);
        let body = (!v.deleted).then_some(&shown[..]);
        let (method, url, status) = if v.deleted {
            ("DELETE", format!("{}/{}", v.resource_type, v.id), "204")
        } else if v.version_id == 1 {
            ("POST", v.resource_type.clone(), "201")
        } else {
            ("PUT", format!("{}/{}", v.resource_type, v.id), "200")
        };
        w.entry(Some(&full_url), body, |w| {
            w.raw(br#","request":{"method":"#)
                .string(method)
                .raw(br#","url":"#)
                .string(&url)
                .raw(br#"},"response":{"status":"#)
                .string(status)
                .raw(br#","etag":"#)
                .string(&etag(v.version_id))
                .raw(br#","lastModified":"#)
                .string(&clock::instant(v.last_updated_us))
                .raw(b"}");
        });
    }
    let interaction = match (&resource_type, &id) {
        (Some(_), Some(_)) => Interaction::HistoryInstance,
        (Some(_), None) => Interaction::HistoryType,
        _ => Interaction::HistorySystem,
    };
    let note = crate::authz::audit::Note::search(
        guard,
        interaction,
        resource_type.as_deref(),
        Some(raw_query.clone()),
    );
    Ok(note.attach(w.finish()))
}
