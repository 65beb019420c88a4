//! Search: `GET /fhir/{type}?…`, `POST /fhir/{type}/_search`, compartment search
//! `GET /fhir/Patient/{id}/{type}?…` and `GET /fhir/Patient/{id}/$everything`.
//!
//! The query string is parsed into a [`domain::types::search::SearchQuery`] (one indexed
//! SQL statement per page), and the `searchset` Bundle is written as bytes around the stored
//! bodies ([`super::response::BundleWriter`]). Paging is keyset, both ways, so pages stay
//! correct while others write: `next` links carry `_cursor`, the opaque position after the
//! page's last row; `previous` links carry `_before`, the position of the page's first row
//! (the store runs the query in reverse order from there and turns the page round).
//!
//! * `_summary=true`: the elements the R4 definitions mark `isSummary` (`fhir::defs::is_summary`).
//!
//! * `_count`: default [`DEFAULT_COUNT`], at most [`MAX_COUNT`].
//! * `_total`: `none` (no total unless the whole result fits on the first page, when it is
//!   free), `estimate` and `accurate` (counted); the default is `none`.
//! * Unknown parameters: ignored and reported in an OperationOutcome entry
//!   (`search.mode = outcome`) unless `Prefer: handling=strict`, when they are a 400.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use domain::types::SystemMatch;
use domain::types::search::{
    Condition, Cursor, EverythingQuery, Filter, Match, Prefix, SearchQuery, Second, SortBy,
    SortKey, SortValue, StringMode, Table, UriMode, Visibility,
};
use fhir::search::{ParamType, SearchParam};
use serde_json::Value;

use super::paging::PageSealer;
use super::request;
use super::request::{Ask, require_supported};
use super::response::BundleWriter;
use crate::AppState;
use crate::audit::Interaction;
use crate::authz::{Caller, Guard};
use crate::clock;
use crate::error::{ApiError, ApiResult};

pub const DEFAULT_COUNT: usize = 20;
pub const MAX_COUNT: usize = 1000;
/// Most resources `_include`/`_revinclude` add to one page.
const MAX_INCLUDED: usize = 1000;
/// Most rounds of `:iterate`.
const MAX_ITERATE: usize = 4;

/// A problem with one parameter.
mod everything;
mod params;

use everything::*;
use params::*;
pub use params::{date_range, searchable};

/// Ids of the current resources of `ty` matching every criterion (conditional create,
/// update, delete and transaction conditional references): the same parsing and SQL as a
/// search, strictly (an unknown parameter is a 400, never ignored), at most `limit` ids.
pub async fn matching_ids(
    guard: &mut Guard<'_>,
    ty: &str,
    criteria: &[(String, String)],
    limit: usize,
) -> ApiResult<Vec<String>> {
    let st = guard.st;
    let mut parsed = parse(st, ty, criteria, true)?;
    parsed.query.count = limit;
    let views = guard.views().await?;
    let result = st
        .domain
        .records()
        .search(&parsed.query, Visibility::Caller(&views.searching()))
        .await?;
    Ok(result.matches.into_iter().map(|m| m.id).collect())
}

fn pairs_of(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub async fn type_get(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(resource_type): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    request::check_accept(&headers)?;
    let pairs = pairs_of(q.as_deref().unwrap_or(""));
    search_type(
        &st,
        &caller,
        &resource_type,
        pairs,
        &Ask::from_headers(&headers),
    )
    .await
}

/// Search of one type (`GET`/`POST /fhir/{type}`, and bundle entries).
pub async fn search_type(
    st: &AppState,
    caller: &Caller,
    resource_type: &str,
    pairs: Vec<(String, String)>,
    ask: &Ask,
) -> ApiResult<Response> {
    require_supported(resource_type)?;
    let mut guard = Guard::new(st, caller);
    guard.require_scope(resource_type, access::Action::Search)?;
    if resource_type == "AuditEvent" {
        return super::audit_search::search(&mut guard, &pairs).await;
    }
    run(&mut guard, resource_type, None, pairs, ask.strict).await
}

pub async fn type_post(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(resource_type): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    request::check_accept(&headers)?;
    request::require_media_type(&headers, &["application/x-www-form-urlencoded"])?;
    let bytes = request::read_body(&headers, body, st.config.max_body_bytes).await?;
    let mut pairs = pairs_of(q.as_deref().unwrap_or(""));
    pairs.extend(pairs_of(&String::from_utf8_lossy(&bytes)));
    search_type(
        &st,
        &caller,
        &resource_type,
        pairs,
        &Ask::from_headers(&headers),
    )
    .await
}

/// `GET /fhir/Patient/{id}/{type}` (compartment search) and `…/$everything`.
pub async fn compartment(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path((ctype, id, member)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_supported(&ctype)?;
    request::check_accept(&headers)?;
    if ctype != "Patient" {
        return Err(ApiError::NotFound(format!(
            "only the Patient compartment is supported, not {ctype}"
        )));
    }
    let pairs = pairs_of(q.as_deref().unwrap_or(""));
    let mut guard = Guard::new(&st, &caller);
    if member == "$everything" {
        return everything(&mut guard, &id, pairs).await;
    }
    require_supported(&member)?;
    guard.require_scope(&member, access::Action::Search)?;
    let params: Vec<&String> = fhir::compartment::patient_params(&member)
        .iter()
        .filter(|p| p.as_str() != fhir::compartment::SELF)
        .collect();
    let mut any_of: Vec<Condition> = params
        .iter()
        .map(|p| Condition::Reference {
            param: p.to_string(),
            target_type: Some("Patient".into()),
            target_id: Some(id.clone()),
            url: None,
        })
        .collect();
    if member == "Patient" {
        any_of.push(Condition::Id { id: id.clone() });
    }
    if any_of.is_empty() {
        return Err(ApiError::NotFound(format!(
            "{member} is not in the Patient compartment"
        )));
    }
    run(
        &mut guard,
        &member,
        Some((format!("Patient/{id}/{member}"), Filter { any_of })),
        pairs,
        Ask::from_headers(&headers).strict,
    )
    .await
}

/// Parses, searches and writes the searchset bundle. `compartment`: the path (after
/// `/fhir/`) and the extra filter of a compartment search.
async fn run(
    guard: &mut Guard<'_>,
    ty: &str,
    compartment: Option<(String, Filter)>,
    pairs: Vec<(String, String)>,
    strict: bool,
) -> ApiResult<Response> {
    let st = guard.st;
    let base = st.config.base();
    let mut parsed = parse(st, ty, &pairs, strict)?;
    let path = match &compartment {
        Some((p, _)) => format!("{base}/fhir/{p}"),
        None => format!("{base}/fhir/{ty}"),
    };
    if let Some((_, f)) = compartment {
        parsed.query.filters.push(f);
    }
    let count_only = parsed.summary == Summary::Count;
    // Every statement runs inside the caller's view (criteria, chains, `_has`, sort keys,
    // paging and totals see only what the caller may see); the decision then checks each
    // match again and redacts it.
    parsed.query.total = count_only || parsed.total == Some(true);
    if count_only {
        parsed.query.count = 0;
    }
    let views = guard.views().await?;
    let mut result = st
        .domain
        .records()
        .search(&parsed.query, Visibility::Caller(&views.searching()))
        .await?;
    if count_only {
        result.matches.clear();
        result.next = None;
        result.previous = None;
    }
    result.matches = visible(guard, result.matches).await?;
    // A page holds at most --max-bundle-bytes of resources (at least one): past that it ends
    // early, and its `next` link goes on from the last entry it holds. (Paging backwards
    // keeps its page whole: its links are the other way round.)
    let max_bytes = st.config.max_bundle_bytes;
    if parsed.query.before.is_none()
        && let Some(keep) = crate::fhir_api::paging::cut_at_bytes(
            result.matches.iter().map(|m| m.body.len()),
            max_bytes,
        )
    {
        result.matches.truncate(keep);
        result.next = result.matches.last().map(Match::cursor);
    }
    let mut room = max_bytes.saturating_sub(result.matches.iter().map(|m| m.body.len()).sum());
    let single_page =
        parsed.query.after.is_none() && parsed.query.before.is_none() && result.next.is_none();
    let mut total = result.total;
    if total.is_none() && single_page && !count_only && parsed.total != Some(false) {
        total = Some(result.matches.len() as u64);
    }

    // _include / _revinclude.
    let mut included: Vec<Match> = Vec::new();
    if !parsed.includes.is_empty() && !result.matches.is_empty() {
        let mut seen: HashSet<(String, String)> = result
            .matches
            .iter()
            .map(|m| (m.resource_type.clone(), m.id.clone()))
            .collect();
        let mut frontier: Vec<Match> = result.matches.clone();
        for round in 0..=MAX_ITERATE {
            let mut found = Vec::new();
            for inc in &parsed.includes {
                if round > 0 && !inc.iterate {
                    continue;
                }
                if inc.reverse {
                    let target_types: HashSet<&str> =
                        frontier.iter().map(|m| m.resource_type.as_str()).collect();
                    for tt in target_types {
                        let ids: Vec<String> = frontier
                            .iter()
                            .filter(|m| m.resource_type == tt)
                            .map(|m| m.id.clone())
                            .collect();
                        found.extend(
                            st.domain
                                .records()
                                .revinclude(&inc.source_type, inc.param.as_deref(), tt, &ids)
                                .await?,
                        );
                    }
                } else {
                    let ids: Vec<String> = frontier
                        .iter()
                        .filter(|m| m.resource_type == inc.source_type)
                        .map(|m| m.id.clone())
                        .collect();
                    found.extend(
                        st.domain
                            .records()
                            .include(
                                &inc.source_type,
                                &ids,
                                inc.param.as_deref(),
                                inc.target_type.as_deref(),
                            )
                            .await?,
                    );
                }
            }
            // Included resources pass the same decision as matches, in every round: a
            // hidden resource never leads an iteration on to others.
            let fresh = found
                .into_iter()
                .filter(|m| seen.insert((m.resource_type.clone(), m.id.clone())))
                .collect();
            frontier = visible(guard, fresh).await?;
            included.extend(frontier.iter().cloned());
            if frontier.is_empty() || included.len() >= MAX_INCLUDED {
                break;
            }
        }
        included.truncate(MAX_INCLUDED);
    }
    // Included resources fill what room the page has left; any left out are said so.
    let wanted = included.len();
    included.retain(|m| {
        let fits = m.body.len() <= room;
        if fits {
            room -= m.body.len();
        }
        fits
    });
    let left_out = wanted - included.len();

    // Links: every parameter as given, but the page position.
    let kept: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "_cursor" && k != "_before")
        .collect();
    let link = |position: Option<(&str, &Cursor)>| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            ser.append_pair(k, v);
        }
        if let Some((name, c)) = position {
            ser.append_pair(name, &encode_cursor(&st.pages, c));
        }
        let q = ser.finish();
        if q.is_empty() {
            path.clone()
        } else {
            format!("{path}?{q}")
        }
    };

    let mut w = BundleWriter::new("searchset", total);
    let here = match (&parsed.query.before, &parsed.query.after) {
        (Some(b), _) => Some(("_before", b)),
        (None, Some(a)) => Some(("_cursor", a)),
        (None, None) => None,
    };
    w.link("self", &link(here));
    if here.is_some() {
        w.link("first", &link(None));
    }
    if !count_only {
        if let Some(prev) = &result.previous {
            w.link("previous", &link(Some(("_before", prev))));
        }
        if let Some(next) = &result.next {
            w.link("next", &link(Some(("_cursor", next))));
        }
    }
    let entries = result
        .matches
        .iter()
        .map(|m| (m, "match"))
        .chain(included.iter().map(|m| (m, "include")));
    for (m, mode) in entries {
        if count_only {
            break;
        }
        let full_url = format!("{base}/fhir/{}/{}", m.resource_type, m.id);
        let subsetted;
        let body: &[u8] = match (parsed.summary, &parsed.elements) {
            (Summary::None, None) => &m.body,
            (summary, elements) => {
                subsetted = subset(&m.body, summary, elements.as_deref());
                &subsetted
            }
        };
        w.entry(Some(&full_url), Some(body), |w| {
            w.raw(br#","search":{"mode":"#).string(mode).raw(b"}");
        });
    }
    let mut issues: Vec<fhir::Issue> = parsed
        .ignored
        .iter()
        .map(|n| {
            fhir::Issue::warning(
                fhir::IssueType::NotSupported,
                "",
                format!("unknown search parameter '{n}' for {ty} was ignored"),
            )
        })
        .collect();
    if left_out > 0 {
        issues.push(fhir::Issue::warning(
            fhir::IssueType::TooCostly,
            "",
            format!(
                "{left_out} included resource(s) were left out: this page reached the server's \
                 limit of {max_bytes} bytes (--max-bundle-bytes); ask for fewer matches a page \
                 (_count) to have them all"
            ),
        ));
    }
    if !issues.is_empty() {
        let oo = fhir::outcome::operation_outcome(&issues);
        let oo = serde_json::to_vec(&oo).unwrap_or_default();
        w.entry(None, Some(&oo), |w| {
            w.raw(br#","search":{"mode":"outcome"}"#);
        });
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter())
        .finish();
    let note =
        crate::authz::audit::Note::search(guard, Interaction::SearchType, Some(ty), Some(query));
    Ok(note.attach(w.finish()))
}

/// The matches the caller may see, bodies redacted where an address is hidden from them.
/// Matches the store found inside the caller's view pass (the view is the decision); for
/// `_include`d resources this is where the decision is made.
async fn visible(guard: &mut Guard<'_>, matches: Vec<Match>) -> ApiResult<Vec<Match>> {
    let mut out = Vec::with_capacity(matches.len());
    for mut m in matches {
        if let Some(body) = guard.readable(access::Action::Search, &m.body).await? {
            m.body = body;
            out.push(m);
        }
    }
    Ok(out)
}

/// A subset of a stored body (`_summary`, `_elements`), tagged `SUBSETTED`. The one place
/// search parses a stored body: the client asked for something other than what is stored.
fn subset(body: &[u8], summary: Summary, elements: Option<&[String]>) -> Vec<u8> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    const ALWAYS: &[&str] = &["resourceType", "id", "meta"];
    match (summary, elements) {
        (Summary::Text, _) => map.retain(|k, _| ALWAYS.contains(&k.as_str()) || k == "text"),
        (Summary::Data, _) => {
            map.remove("text");
        }
        // The elements the R4 definitions mark `isSummary` (for the type the body says).
        (Summary::True, _) => {
            let rt = map
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            map.retain(|k, _| ALWAYS.contains(&k.as_str()) || fhir::defs::is_summary(&rt, k))
        }
        (_, Some(els)) => {
            map.retain(|k, _| ALWAYS.contains(&k.as_str()) || els.iter().any(|e| e == k))
        }
        _ => return body.to_vec(),
    }
    let meta = map
        .entry("meta")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(meta) = meta {
        let tags = meta
            .entry("tag")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(tags) = tags {
            tags.push(serde_json::json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                "code": "SUBSETTED"
            }));
        }
    }
    serde_json::to_vec(&Value::Object(map)).unwrap_or_else(|_| body.to_vec())
}
