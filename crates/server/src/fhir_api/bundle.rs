//! `POST /fhir`: batch and transaction bundles (R4 http.html#transaction).
//!
//! * **batch**: every entry is an independent request, processed in order through the same
//!   handlers as the REST API (so it has exactly their semantics: `If-Match` retries,
//!   conditional create, update-as-create…), and answered in its own `response` (status,
//!   `location`, `etag`, `lastModified`, and `outcome` on failure). The batch as a whole
//!   answers 200. Batch entries may not refer to each other (by `fullUrl`): that is what a
//!   transaction is for, so such an entry fails with 400.
//! * **transaction**: all or nothing. Entries are planned in the spec's order (DELETE,
//!   POST, PUT/PATCH, then GET/HEAD) against the versions current when the transaction
//!   starts: POSTs get server ids, conditional create/update/delete are resolved
//!   ([`super::conditional`]), every `Reference.reference` to an entry's `fullUrl`
//!   (`urn:uuid:`/`urn:oid:`, at any depth, `contained` included) is rewritten to
//!   `Type/id`, and conditional references (`Patient?identifier=s|v`) are resolved to their
//!   one match. Only then is every resource validated and stamped, and all the writes go to
//!   the store in ONE [`domain::types::Store::write_all`], each naming the version it
//!   replaces. A failing entry fails the whole transaction with its status and an
//!   OperationOutcome naming it (`Bundle.entry[n]`); nothing is stored.
//! * **Concurrency**: if another write changes a resource between the planning and the
//!   commit, the store refuses the transaction. For an entry with `ifMatch` that is a 412
//!   (the client named a version); otherwise the whole transaction is planned again from
//!   the new state (a fresh decision, never a blind overwrite), a bounded number of times,
//!   then 409.
//! * **Limits**: one resource may be changed by one entry only (two entries resolving to
//!   the same resource fail with 400, as R4 requires). GET/HEAD entries run after the
//!   commit, through the REST handlers; their failure (a 404, say) is reported in their
//!   entry and does not undo the writes. Conditional references and conditions are
//!   resolved against what was committed before the transaction (not against resources the
//!   transaction itself creates). PATCH takes a `Binary` holding a JSON Patch; FHIRPath
//!   Patch is not supported.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::types::{StoreError, Stored, TokenCriterion, Write, WriteAllError};
use fhir::{Issue, IssueType};
use serde_json::{Map, Value};

use super::conditional;
use super::crud;
use super::history;
use super::matching;
use super::request::require_supported;
use super::request::{self, JSON_PATCH};
use super::response::{self, BundleWriter, Return, etag};
use crate::AppState;
use crate::audit::Interaction;
use crate::authz::{Caller, Guard};
use crate::clock;
use crate::error::{ApiError, ApiResult};

/// How often a transaction is planned again after losing a race (entries without `ifMatch`).
const MAX_TRANSACTION_RETRIES: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// The order a transaction processes entries in (R4: DELETE, POST, PUT/PATCH, GET).
    fn order(self) -> u8 {
        match self {
            Method::Delete => 0,
            Method::Post => 1,
            Method::Put | Method::Patch => 2,
            Method::Get | Method::Head => 3,
        }
    }

    fn is_read(self) -> bool {
        matches!(self, Method::Get | Method::Head)
    }
}

/// `request.url`, relative to `/fhir`: the type, the path segments after it, the query.
#[derive(Debug, Clone)]
struct Target {
    resource_type: String,
    path: Vec<String>,
    query: Option<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    full_url: Option<String>,
    method: Method,
    url: String,
    target: Target,
    resource: Option<Map<String, Value>>,
    if_match: Option<String>,
    if_none_exist: Option<String>,
    if_none_match: Option<String>,
}

impl Entry {
    fn label(&self) -> String {
        format!("{} {}", self.method.as_str(), self.url)
    }

    /// The version `ifMatch` names.
    fn wanted(&self) -> ApiResult<Option<i64>> {
        let Some(m) = &self.if_match else {
            return Ok(None);
        };
        let s = m.trim();
        let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
        s.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(
                "request.ifMatch",
                "ifMatch must name a version as W/\"n\", e.g. W/\"3\"",
            )
        })
    }
}

/// `POST /fhir` with a Bundle of type `batch` or `transaction`.
pub async fn process(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    request::require_media_type(&headers, request::RESOURCE_MEDIA_TYPES)?;
    request::check_accept(&headers)?;
    let bytes = request::read_body(&headers, body, st.config.max_body_bytes).await?;
    let bundle = request::parse_resource(&bytes)?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(ApiError::bad_request(
            "resourceType",
            "POST to the base takes a Bundle of type batch or transaction",
        ));
    }
    let entries: &[Value] = match bundle.get("entry") {
        None => &[],
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(ApiError::bad_request(
                "Bundle.entry",
                "entry must be a list",
            ));
        }
    };
    let ret = Return::from_headers(&headers);
    match bundle.get("type").and_then(Value::as_str) {
        Some("batch") => Ok(batch(&st, &caller, entries, ret).await),
        Some("transaction") => transaction(&st, &caller, entries, ret).await,
        Some(other) => Err(ApiError::Unprocessable(vec![Issue::error(
            IssueType::NotSupported,
            "Bundle.type",
            format!(
                "a Bundle of type '{other}' cannot be processed; send a batch or a transaction"
            ),
        )])),
        None => Err(ApiError::bad_request(
            "Bundle.type",
            "the Bundle has no type; send a batch or a transaction",
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Parsing entries

fn parse_entry(st: &AppState, v: &Value) -> ApiResult<Entry> {
    let bad = |expr: &str, msg: String| ApiError::bad_request(expr, msg);
    let Value::Object(e) = v else {
        return Err(bad("", "an entry must be an object".into()));
    };
    let Some(Value::Object(req)) = e.get("request") else {
        return Err(bad("request", "the entry has no request".into()));
    };
    let text = |k: &str| -> ApiResult<Option<String>> {
        match req.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(
                &format!("request.{k}"),
                format!("request.{k} must be a string"),
            )),
        }
    };
    let method_text = text("method")?.unwrap_or_default();
    let method = Method::parse(&method_text).ok_or_else(|| {
        bad(
            "request.method",
            format!(
                "request.method '{method_text}' is not one of GET, HEAD, POST, PUT, PATCH, DELETE"
            ),
        )
    })?;
    let url =
        text("url")?.ok_or_else(|| bad("request.url", "the entry has no request.url".into()))?;
    let target = parse_url(st, &url)?;
    let resource = match e.get("resource") {
        None => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => return Err(bad("resource", "resource must be an object".into())),
    };
    let full_url = match e.get("fullUrl") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("fullUrl", "fullUrl must be a string".into())),
    };
    let entry = Entry {
        full_url,
        method,
        url,
        target,
        resource,
        if_match: text("ifMatch")?,
        if_none_exist: text("ifNoneExist")?,
        if_none_match: text("ifNoneMatch")?,
    };
    check_shape(&entry)?;
    Ok(entry)
}

/// `Type[/…][?query]`, relative or under this server's base; other servers' URLs are refused.
fn parse_url(st: &AppState, url: &str) -> ApiResult<Target> {
    let base = format!("{}/fhir/", st.config.base());
    let rel = if let Some(r) = url.strip_prefix(&base) {
        r
    } else if url.split('?').next().unwrap_or("").contains("://") {
        return Err(ApiError::bad_request(
            "request.url",
            format!("'{url}' is not on this server; request.url must be relative to {base}"),
        ));
    } else {
        url.trim_start_matches('/')
    };
    let (path, query) = match rel.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (rel, None),
    };
    let mut segments = path.split('/').filter(|s| !s.is_empty()).map(str::to_owned);
    let resource_type = segments.next().ok_or_else(|| {
        ApiError::bad_request("request.url", "request.url names no resource type")
    })?;
    if resource_type.starts_with('$') || resource_type.starts_with('_') {
        return Err(ApiError::bad_request(
            "request.url",
            format!(
                "'{url}': system-level interactions and operations are not supported in a bundle"
            ),
        ));
    }
    require_supported(&resource_type)?;
    Ok(Target {
        resource_type,
        path: segments.collect(),
        query: query.filter(|q| !q.is_empty()),
    })
}

/// The (method, url) shapes this server processes.
fn check_shape(e: &Entry) -> ApiResult<()> {
    if !e.method.is_read() {
        crate::audit::refuse_client_write(&e.target.resource_type)?;
    }
    let path: Vec<&str> = e.target.path.iter().map(String::as_str).collect();
    let q = e.target.query.is_some();
    let ok = match e.method {
        Method::Get | Method::Head => {
            matches!(
                (path.as_slice(), q),
                ([], _)
                    | (["_history"], _)
                    | ([_], false)
                    | ([_, "_history"], _)
                    | ([_, "_history", _], false)
            ) && !path.first().is_some_and(|p| p.starts_with('$'))
        }
        Method::Post => path.is_empty() && !q,
        Method::Put | Method::Delete => matches!((path.as_slice(), q), ([], true) | ([_], false)),
        Method::Patch => matches!((path.as_slice(), q), ([_], false)),
    };
    if !ok {
        return Err(ApiError::bad_request(
            "request.url",
            format!(
                "{} {} is not an interaction this server supports in a bundle",
                e.method.as_str(),
                e.url
            ),
        ));
    }
    if let [id, ..] = path.as_slice()
        && *id != "_history"
    {
        request::require_id(id)?;
    }
    match e.method {
        Method::Post | Method::Put => {
            let Some(r) = &e.resource else {
                return Err(ApiError::bad_request(
                    "resource",
                    format!("a {} entry needs a resource", e.method.as_str()),
                ));
            };
            request::require_type(r, &e.target.resource_type)?;
        }
        Method::Patch => {
            patch_document(e)?;
        }
        _ => {}
    }
    if e.if_none_exist.is_some() && e.method != Method::Post {
        return Err(ApiError::bad_request(
            "request.ifNoneExist",
            "ifNoneExist belongs to POST entries only",
        ));
    }
    Ok(())
}

/// The JSON Patch a PATCH entry carries, in a `Binary` (R4 http.html#patch).
fn patch_document(e: &Entry) -> ApiResult<json_patch::Patch> {
    let bad = |m: &str| ApiError::bad_request("resource", m.to_owned());
    let Some(r) = &e.resource else {
        return Err(bad(
            "a PATCH entry needs a Binary resource holding a JSON Patch",
        ));
    };
    if r.get("resourceType").and_then(Value::as_str) != Some("Binary") {
        return Err(bad(
            "a PATCH entry's resource must be a Binary holding a JSON Patch (FHIRPath Patch is not supported)",
        ));
    }
    let ct = r.get("contentType").and_then(Value::as_str).unwrap_or("");
    if ct.split(';').next().unwrap_or("").trim() != JSON_PATCH {
        return Err(bad(&format!(
            "the Binary's contentType must be {JSON_PATCH}, not '{ct}'"
        )));
    }
    let data = r.get("data").and_then(Value::as_str).unwrap_or("");
    let bytes = base64_decode(data).ok_or_else(|| bad("the Binary's data is not valid base64"))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        bad(&format!(
            "the Binary's data is not a JSON Patch document: {e}"
        ))
    })
}

/// Standard base64 (padding optional, whitespace ignored).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let trimmed = clean
        .strip_suffix(b"==")
        .or_else(|| clean.strip_suffix(b"="))
        .unwrap_or(&clean);
    if trimmed.len() % 4 == 1 || (clean.len() != trimmed.len() && !clean.len().is_multiple_of(4)) {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for chunk in trimmed.chunks(4) {
        let mut acc: u32 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// Visits every `reference` string in a resource, at any depth (contained resources too).
fn for_each_reference(
    v: &mut Value,
    f: &mut dyn FnMut(&mut String) -> ApiResult<()>,
) -> ApiResult<()> {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                match child {
                    Value::String(s) if k == "reference" => f(s)?,
                    _ => for_each_reference(child, f)?,
                }
            }
            Ok(())
        }
        Value::Array(a) => a.iter_mut().try_for_each(|c| for_each_reference(c, f)),
        _ => Ok(()),
    }
}

fn is_local_urn(s: &str) -> bool {
    s.starts_with("urn:uuid:") || s.starts_with("urn:oid:")
}

// ---------------------------------------------------------------------------------------
// Responses

/// One `entry` of the response bundle.
#[derive(Default)]
struct EntryOut {
    full_url: Option<String>,
    status: String,
    location: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
    resource: Option<Bytes>,
    outcome: Option<Bytes>,
}

fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

fn outcome_bytes(issues: &[Issue]) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&fhir::outcome::operation_outcome(issues))
            .expect("an OperationOutcome always serialises"),
    )
}

impl EntryOut {
    /// The answer for a version a transaction wrote or found.
    fn stored(st: &AppState, s: &Stored, status: StatusCode, ret: Return, message: &str) -> Self {
        let mut out = EntryOut {
            status: status_text(status),
            etag: Some(etag(s.version_id)),
            last_modified: Some(clock::instant(s.last_updated_us)),
            ..Default::default()
        };
        if !s.deleted {
            out.full_url = Some(format!(
                "{}/fhir/{}/{}",
                st.config.base(),
                s.resource_type,
                s.id
            ));
            out.location = Some(response::location(st, s));
        }
        match ret {
            Return::Representation if !s.deleted => out.resource = Some(s.body.clone()),
            Return::Minimal => {}
            _ => out.outcome = Some(outcome_bytes(&[Issue::information(message)])),
        }
        out
    }

    /// The answer a REST handler gave, as an entry.
    async fn from_response(st: &AppState, e: Option<&Entry>, resp: Response) -> Self {
        let status = resp.status();
        let h = resp.headers();
        let get = |n: &HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let location = get(&header::LOCATION);
        let etag = get(&header::ETAG);
        let last_modified = get(&header::LAST_MODIFIED).and_then(|d| http_date_to_instant(&d));
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        let mut out = EntryOut {
            status: status_text(status),
            location,
            etag,
            last_modified,
            ..Default::default()
        };
        let method = e.map(|e| e.method);
        if body.is_empty() || method == Some(Method::Head) {
            return out;
        }
        let is_outcome = !status.is_success()
            || method == Some(Method::Delete)
            || body.starts_with(br#"{"resourceType":"OperationOutcome""#);
        if is_outcome {
            out.outcome = Some(body);
            return out;
        }
        out.full_url = match (&out.location, e) {
            (Some(loc), _) => Some(loc.split("/_history/").next().unwrap_or(loc).to_owned()),
            (None, Some(e)) if e.method.is_read() && e.target.path.len() != 1 => None,
            (None, Some(e)) => e
                .target
                .path
                .first()
                .map(|id| format!("{}/fhir/{}/{id}", st.config.base(), e.target.resource_type)),
            (None, None) => None,
        };
        out.resource = Some(body);
        out
    }
}

/// `Thu, 26 Nov 2026 03:50:00 GMT` → a FHIR instant.
fn http_date_to_instant(d: &str) -> Option<String> {
    use time::format_description::well_known::Rfc2822;
    let s = d.strip_suffix("GMT")?.trim_end().to_owned() + " +0000";
    let dt = time::OffsetDateTime::parse(&s, &Rfc2822).ok()?;
    Some(clock::instant((dt.unix_timestamp_nanos() / 1_000) as i64))
}

fn bundle_response(kind: &str, entries: &[EntryOut]) -> Response {
    let mut w = BundleWriter::new(kind, None);
    for e in entries {
        w.entry(e.full_url.as_deref(), e.resource.as_deref(), |w| {
            w.raw(br#","response":{"status":"#).string(&e.status);
            for (k, v) in [
                ("location", &e.location),
                ("etag", &e.etag),
                ("lastModified", &e.last_modified),
            ] {
                if let Some(v) = v {
                    w.raw(b",").string(k).raw(b":").string(v);
                }
            }
            if let Some(o) = &e.outcome {
                w.raw(br#","outcome":"#).raw(o);
            }
            w.raw(b"}");
        });
    }
    w.finish()
}

/// The whole transaction's failure: the failing entry's status, and an OperationOutcome
/// whose issues name the entry (`Bundle.entry[n]`, and element paths within its resource).
async fn entry_failure(index: usize, label: &str, err: ApiError) -> Response {
    let resp = err.into_response();
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let Ok(mut oo) = serde_json::from_slice::<Value>(&bytes) else {
        return (parts.status, parts.headers, bytes).into_response();
    };
    let entry = format!("Bundle.entry[{index}]");
    if let Some(Value::Array(issues)) = oo.get_mut("issue") {
        for issue in issues.iter_mut() {
            let Value::Object(m) = issue else { continue };
            let mut exprs = vec![Value::String(entry.clone())];
            if let Some(Value::Array(old)) = m.get("expression") {
                for x in old.iter().filter_map(Value::as_str) {
                    // `Patient.name[0]` (or `name[0]`) → `Bundle.entry[n].resource.name[0]`.
                    let inner = match x.split_once('.') {
                        Some((head, rest))
                            if head.starts_with(|c: char| c.is_ascii_uppercase()) =>
                        {
                            rest
                        }
                        _ if x.starts_with(|c: char| c.is_ascii_uppercase())
                            && !x.contains('.') =>
                        {
                            ""
                        }
                        _ => x,
                    };
                    let path = if inner.is_empty() {
                        format!("{entry}.resource")
                    } else if inner.starts_with("request.") || inner == "resource" {
                        format!("{entry}.{inner}")
                    } else {
                        format!("{entry}.resource.{inner}")
                    };
                    exprs.push(Value::String(path));
                }
            }
            m.insert("expression".into(), Value::Array(exprs));
            let d = m
                .get("diagnostics")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            m.insert(
                "diagnostics".into(),
                Value::String(format!("{entry} ({label}): {d}")),
            );
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    (
        parts.status,
        parts.headers,
        Bytes::from(serde_json::to_vec(&oo).unwrap_or_default()),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Batch

async fn batch(st: &Arc<AppState>, caller: &Arc<Caller>, raw: &[Value], ret: Return) -> Response {
    let urns: HashSet<&str> = raw
        .iter()
        .filter_map(|e| e.get("fullUrl").and_then(Value::as_str))
        .filter(|u| is_local_urn(u))
        .collect();
    let mut out = Vec::with_capacity(raw.len());
    for v in raw {
        let (entry, resp) = match parse_entry(st, v) {
            Ok(mut e) => {
                let resp = match refers_to_entries(&mut e, &urns) {
                    Ok(()) => execute(st, caller, &e, ret).await,
                    Err(err) => err.into_response(),
                };
                (Some(e), resp)
            }
            Err(err) => (None, err.into_response()),
        };
        out.push(EntryOut::from_response(st, entry.as_ref(), resp).await);
    }
    bundle_response("batch-response", &out)
}

/// Refuses a batch entry that refers to another entry by its `fullUrl`.
fn refers_to_entries(e: &mut Entry, urns: &HashSet<&str>) -> ApiResult<()> {
    let Some(r) = e.resource.take() else {
        return Ok(());
    };
    let mut v = Value::Object(r);
    let result = for_each_reference(&mut v, &mut |s| {
        if urns.contains(s.as_str()) {
            Err(ApiError::bad_request(
                "resource",
                format!(
                    "'{s}' refers to another entry of the batch; batch entries are independent (use a transaction)"
                ),
            ))
        } else {
            Ok(())
        }
    });
    let Value::Object(r) = v else { unreachable!() };
    e.resource = Some(r);
    result
}

/// Runs one entry through the REST handlers, and records its AuditEvents as if it had
/// been a request of its own.
async fn execute(st: &Arc<AppState>, caller: &Arc<Caller>, e: &Entry, ret: Return) -> Response {
    let resp = execute_inner(st, caller, e, ret)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    let method = match e.method {
        Method::Get | Method::Head => axum::http::Method::GET,
        Method::Post => axum::http::Method::POST,
        Method::Put => axum::http::Method::PUT,
        Method::Patch => axum::http::Method::PATCH,
        Method::Delete => axum::http::Method::DELETE,
    };
    let path = format!(
        "/fhir/{}/{}",
        e.target.resource_type,
        e.target.path.join("/")
    );
    crate::authz::audit::record(st, caller, &method, &path, resp).await
}

async fn execute_inner(
    st: &Arc<AppState>,
    caller: &Arc<Caller>,
    e: &Entry,
    ret: Return,
) -> ApiResult<Response> {
    let caller = || Extension(caller.clone());
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    h.insert(
        HeaderName::from_static("prefer"),
        HeaderValue::from_static(match ret {
            Return::Minimal => "return=minimal",
            Return::Representation => "return=representation",
            Return::OperationOutcome => "return=OperationOutcome",
        }),
    );
    let value = |s: &str, what: &str| {
        HeaderValue::from_str(s)
            .map_err(|_| ApiError::bad_request(what, format!("{what} is not a valid header value")))
    };
    if let Some(m) = &e.if_match {
        h.insert(header::IF_MATCH, value(m, "request.ifMatch")?);
    }
    if let Some(m) = &e.if_none_match {
        h.insert(header::IF_NONE_MATCH, value(m, "request.ifNoneMatch")?);
    }
    if let Some(q) = &e.if_none_exist {
        h.insert(
            HeaderName::from_static("if-none-exist"),
            value(q, "request.ifNoneExist")?,
        );
    }
    let state = || State(st.clone());
    let t = e.target.resource_type.clone();
    let q = e.target.query.clone();
    let body = || {
        Body::from(
            e.resource
                .as_ref()
                .map(|r| serde_json::to_vec(r).unwrap_or_default())
                .unwrap_or_default(),
        )
    };
    let path: Vec<&str> = e.target.path.iter().map(String::as_str).collect();
    match (e.method, path.as_slice()) {
        (Method::Get | Method::Head, []) => {
            super::search::type_get(state(), caller(), Path(t), RawQuery(q), h).await
        }
        (Method::Get | Method::Head, ["_history"]) => {
            history::type_level(state(), caller(), Path(t), RawQuery(q), h).await
        }
        (Method::Get | Method::Head, [id]) => {
            crud::read(state(), caller(), Path((t, id.to_string())), h).await
        }
        (Method::Get | Method::Head, [id, "_history"]) => {
            history::instance(state(), caller(), Path((t, id.to_string())), RawQuery(q), h).await
        }
        (Method::Get | Method::Head, [id, "_history", v]) => {
            crud::vread(
                state(),
                caller(),
                Path((t, id.to_string(), v.to_string())),
                h,
            )
            .await
        }
        (Method::Post, []) => crud::create(state(), caller(), Path(t), h, body()).await,
        (Method::Put, [id]) => {
            crud::update(state(), caller(), Path((t, id.to_string())), h, body()).await
        }
        (Method::Put, []) => {
            conditional::update(state(), caller(), Path(t), RawQuery(q), h, body()).await
        }
        (Method::Patch, [id]) => {
            let ops = patch_document(e)?;
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_PATCH));
            let bytes = serde_json::to_vec(&ops).unwrap_or_default();
            crud::patch(
                state(),
                caller(),
                Path((t, id.to_string())),
                h,
                Body::from(bytes),
            )
            .await
        }
        (Method::Delete, [id]) => {
            crud::delete(state(), caller(), Path((t, id.to_string())), h).await
        }
        (Method::Delete, []) => {
            conditional::delete(state(), caller(), Path(t), RawQuery(q), h).await
        }
        _ => Err(ApiError::bad_request(
            "request.url",
            format!("{} is not supported in a bundle", e.label()),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Transaction

/// What a transaction entry comes to.
enum Plan {
    /// A version to write: the resource (`None` for a deletion) and what it replaces.
    Write {
        resource_type: String,
        id: String,
        resource: Option<Map<String, Value>>,
        existing: Option<Stored>,
        unless_exists: Option<Vec<TokenCriterion>>,
    },
    /// Nothing to write; answer with this version (a conditional create that matched, a
    /// delete of something already deleted).
    Found(Stored, StatusCode, &'static str),
    /// Nothing to write or read (a conditional delete that matched nothing).
    Nothing(StatusCode, &'static str),
    /// A GET/HEAD, run after the commit.
    Read,
}

/// `Failed::index` when the transaction as a whole failed (the database, a shutdown).
const WHOLE: usize = usize::MAX;

/// A failed attempt: the entry (or [`WHOLE`]), the error, and whether planning again could
/// succeed.
struct Failed {
    index: usize,
    error: ApiError,
    retry: bool,
}

fn fail(index: usize, error: ApiError) -> Failed {
    Failed {
        index,
        error,
        retry: false,
    }
}

async fn transaction(
    st: &Arc<AppState>,
    caller: &Arc<Caller>,
    raw: &[Value],
    ret: Return,
) -> ApiResult<Response> {
    let mut entries = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        match parse_entry(st, v) {
            Ok(e) => entries.push(e),
            Err(err) => {
                let label = v
                    .get("request")
                    .map(|r| {
                        format!(
                            "{} {}",
                            r.get("method").and_then(Value::as_str).unwrap_or("?"),
                            r.get("url").and_then(Value::as_str).unwrap_or("?")
                        )
                    })
                    .unwrap_or_else(|| "no request".into());
                return Ok(entry_failure(i, &label, err).await);
            }
        }
    }
    let mut attempt = 0;
    let (plans, stored) = loop {
        if attempt > 0 {
            crud::backoff(attempt).await;
        }
        attempt += 1;
        match attempt_transaction(st, caller, &entries).await {
            Ok(done) => break done,
            Err(f) if f.retry && attempt < MAX_TRANSACTION_RETRIES => continue,
            Err(f) if f.index == WHOLE => return Err(f.error),
            Err(mut f) => {
                if f.retry {
                    f.error = ApiError::Conflict(
                        "the resources this transaction changes are being changed by others too often; try again".into(),
                    );
                }
                return Ok(entry_failure(f.index, &entries[f.index].label(), f.error).await);
            }
        }
    };
    let mut stored = stored.into_iter();
    let mut out = Vec::with_capacity(entries.len());
    for (e, plan) in entries.iter().zip(plans) {
        out.push(match plan {
            Plan::Write {
                existing, resource, ..
            } => {
                let s = stored.next().expect("one stored version per write");
                let created = existing.as_ref().is_none_or(|x| x.deleted);
                let (status, message) = match (resource.is_some(), created) {
                    (false, _) => (StatusCode::OK, "deleted"),
                    (true, true) => (StatusCode::CREATED, "created"),
                    (true, false) => (StatusCode::OK, "updated"),
                };
                EntryOut::stored(st, &s, status, ret, message)
            }
            Plan::Found(s, status, message) => EntryOut::stored(st, &s, status, ret, message),
            Plan::Nothing(status, message) => EntryOut {
                status: status_text(status),
                outcome: (ret != Return::Minimal)
                    .then(|| outcome_bytes(&[Issue::information(message)])),
                ..Default::default()
            },
            Plan::Read => {
                EntryOut::from_response(st, Some(e), execute(st, caller, e, ret).await).await
            }
        });
    }
    Ok(bundle_response("transaction-response", &out))
}

/// Plans every entry against the current state, rewrites references, validates, and
/// commits the writes in one `write_all`. Returns the plans (in entry order) and the
/// versions stored (in the order of the `Plan::Write`s among them).
async fn attempt_transaction(
    st: &AppState,
    caller: &Caller,
    entries: &[Entry],
) -> Result<(Vec<Plan>, Vec<Stored>), Failed> {
    let mut guard = Guard::new(st, caller);
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (entries[i].method.order(), i));

    let mut plans: Vec<Option<Plan>> = (0..entries.len()).map(|_| None).collect();
    // fullUrl → `Type/id`.
    let mut resolved: HashMap<String, String> = HashMap::new();
    // (type, id) → the entry changing it.
    let mut touched: HashMap<(String, String), usize> = HashMap::new();
    let mut deleted: HashSet<(String, String)> = HashSet::new();

    for &i in &order {
        let e = &entries[i];
        let plan = plan_entry(&mut guard, e, &deleted)
            .await
            .map_err(|f| Failed { index: i, ..f })?;
        if let Plan::Write {
            resource_type,
            id,
            resource,
            ..
        } = &plan
        {
            let key = (resource_type.clone(), id.clone());
            if let Some(&j) = touched.get(&key) {
                return Err(fail(
                    i,
                    ApiError::bad_request(
                        "request.url",
                        format!(
                            "{resource_type}/{id} is changed by entry {j} too; a transaction may change a resource once"
                        ),
                    ),
                ));
            }
            touched.insert(key.clone(), i);
            if resource.is_none() {
                deleted.insert(key);
            }
        }
        let target = match &plan {
            Plan::Write {
                resource_type,
                id,
                resource: Some(_),
                ..
            } => Some(format!("{resource_type}/{id}")),
            Plan::Found(s, ..) => Some(format!("{}/{}", s.resource_type, s.id)),
            _ => None,
        };
        if let (Some(full), Some(target)) = (&e.full_url, target) {
            resolved.insert(full.clone(), target);
        }
        plans[i] = Some(plan);
    }
    let mut plans: Vec<Plan> = plans
        .into_iter()
        .map(|p| p.expect("every entry planned"))
        .collect();

    // References, then validation, then stamping — in processing order.
    let mut conditional_refs: HashMap<String, ApiResult<String>> = HashMap::new();
    let mut writes: Vec<Write> = Vec::new();
    let mut write_entries: Vec<usize> = Vec::new();
    for &i in &order {
        let Plan::Write {
            resource_type,
            id,
            resource,
            existing,
            unless_exists,
        } = &mut plans[i]
        else {
            continue;
        };
        // Each entry is decided on its own, and audited for its own children.
        guard.patients.clear();
        let live = existing.as_ref().filter(|x| !x.deleted);
        let mut write = match resource.take() {
            None => {
                let old = existing.as_ref().expect("a deletion replaces a version");
                guard
                    .write(
                        access::Action::Delete,
                        resource_type,
                        id,
                        Some(&old.body),
                        None,
                    )
                    .await
                    .map_err(|e| fail(i, e))?;
                crud::deletion(old)
            }
            Some(map) => {
                let mut v = Value::Object(map);
                let mut refs = Vec::new();
                for_each_reference(&mut v, &mut |s| {
                    refs.push(s.clone());
                    Ok(())
                })
                .map_err(|e| fail(i, e))?;
                for r in refs {
                    if resolved.contains_key(&r) || conditional_refs.contains_key(&r) {
                        continue;
                    }
                    if is_local_urn(&r) {
                        return Err(fail(
                            i,
                            ApiError::bad_request(
                                "resource",
                                format!(
                                    "'{r}' is not the fullUrl of any resource this transaction creates or updates"
                                ),
                            ),
                        ));
                    }
                    if let Some((t, q)) = r.split_once('?')
                        && !t.contains(':')
                        && !t.contains('/')
                    {
                        let answer =
                            resolve_conditional_reference(&mut guard, t, q, &deleted).await;
                        conditional_refs.insert(r.clone(), answer);
                    }
                }
                for_each_reference(&mut v, &mut |s| {
                    if let Some(to) = resolved.get(s.as_str()) {
                        *s = to.clone();
                    } else if let Some(answer) = conditional_refs.get(s.as_str()) {
                        match answer {
                            Ok(to) => *s = to.clone(),
                            Err(e) => return Err(clone_error(e)),
                        }
                    }
                    Ok(())
                })
                .map_err(|e| fail(i, e))?;
                let Value::Object(map) = v else {
                    unreachable!()
                };
                let map = request::validate(map).map_err(|e| fail(i, e))?;
                let map = request::with_sections(map, live);
                if let Some(l) = live
                    && !crate::authz::may_touch(&mut guard, access::Action::Update, &l.body)
                        .await
                        .map_err(|e| fail(i, e.into()))?
                {
                    return Err(fail(i, crate::authz::not_found(resource_type, id)));
                }
                crud::refuse_hidden_history(&mut guard, existing.as_ref())
                    .await
                    .map_err(|e| fail(i, e))?;
                let action = if live.is_some() {
                    access::Action::Update
                } else {
                    access::Action::Create
                };
                let new = Value::Object(map);
                crud::refuse_other_child(&mut guard, existing.as_ref(), &new)
                    .await
                    .map_err(|e| fail(i, e))?;
                guard
                    .write(action, resource_type, id, live.map(|l| &l.body), Some(&new))
                    .await
                    .map_err(|e| fail(i, e))?;
                let Value::Object(map) = new else {
                    unreachable!()
                };
                let mut w = crud::prepare(resource_type, id, map, existing.as_ref());
                w.unless_exists = unless_exists.clone();
                // Keep a marker that this was not a deletion (for the response).
                *resource = Some(Map::new());
                w
            }
        };
        let interaction = match (write.deleted, live.is_some()) {
            (true, _) => Interaction::Delete,
            (false, true) => Interaction::Update,
            (false, false) => Interaction::Create,
        };
        let audit = crate::authz::audit::written(st, &guard, interaction, &write);
        write.audit.extend(audit.records);
        writes.push(write);
        write_entries.push(i);
    }
    // A conditional create that matched shows the match only to someone who may read it.
    for (i, plan) in plans.iter().enumerate() {
        if let Plan::Found(s, ..) = plan
            && !s.deleted
            && guard
                .readable(access::Action::Read, &s.body)
                .await
                .map_err(|e| fail(i, e.into()))?
                .is_none()
        {
            return Err(fail(
                i,
                ApiError::Forbidden("you may not create this resource here".into()),
            ));
        }
    }

    let stored = match st.write_all(writes).await {
        Ok(s) => s,
        Err(WriteAllError {
            index: Some(k),
            error,
        }) => {
            let i = write_entries[k];
            let e = &entries[i];
            return Err(match error {
                StoreError::VersionConflict { current } if e.if_match.is_some() => {
                    let wanted = e.wanted().ok().flatten().unwrap_or(0);
                    let (t, id) = match &plans[i] {
                        Plan::Write {
                            resource_type, id, ..
                        } => (resource_type.clone(), id.clone()),
                        _ => (e.target.resource_type.clone(), String::new()),
                    };
                    fail(i, crud::precondition_failed(&t, &id, wanted, current))
                }
                StoreError::VersionConflict { .. } | StoreError::ConditionMatched(_) => Failed {
                    index: i,
                    error: ApiError::Conflict("changed concurrently".into()),
                    retry: true,
                },
                other => fail(i, other.into()),
            });
        }
        Err(WriteAllError { index: None, error }) => {
            return Err(fail(WHOLE, error.into()));
        }
    };
    // `stored` is in processing order; the response walks the entries in request order.
    let mut by_entry: HashMap<usize, Stored> = write_entries.into_iter().zip(stored).collect();
    let in_entry_order: Vec<Stored> = (0..entries.len())
        .filter_map(|i| by_entry.remove(&i))
        .collect();
    Ok((plans, in_entry_order))
}

/// `ApiError` is not `Clone`; a cached conditional-reference failure is rebuilt.
fn clone_error(e: &ApiError) -> ApiError {
    match e {
        ApiError::NotFound(m) => ApiError::NotFound(m.clone()),
        ApiError::PreconditionFailed(m) => ApiError::PreconditionFailed(m.clone()),
        ApiError::BadRequest(i) => ApiError::BadRequest(i.clone()),
        other => ApiError::Conflict(other.to_string()),
    }
}

/// `Type?query` in a `Reference.reference` → `Type/id` of its one match.
async fn resolve_conditional_reference(
    guard: &mut Guard<'_>,
    resource_type: &str,
    query: &str,
    deleted: &HashSet<(String, String)>,
) -> ApiResult<String> {
    let r = format!("{resource_type}?{query}");
    require_supported(resource_type)
        .map_err(|_| ApiError::bad_request("resource", format!("'{r}': unknown resource type")))?;
    let ids = live_matches(guard, resource_type, query, deleted)
        .await?
        .visible;
    match ids.as_slice() {
        [id] => Ok(format!("{resource_type}/{id}")),
        [] => Err(ApiError::NotFound(format!(
            "the conditional reference '{r}' matches no {resource_type}"
        ))),
        many => Err(ApiError::PreconditionFailed(format!(
            "the conditional reference '{r}' matches {} resources; it must match exactly one",
            matching::several(many.len())
        ))),
    }
}

/// Matches of a condition the caller may see, leaving out resources this transaction
/// deletes (see `matching::visible_matches`).
async fn live_matches(
    guard: &mut Guard<'_>,
    resource_type: &str,
    query: &str,
    deleted: &HashSet<(String, String)>,
) -> ApiResult<matching::Matches> {
    let criteria = matching::criteria(query, "condition")?;
    let m = matching::visible_matches(guard, resource_type, &criteria, deleted).await?;
    matching::refuse_hidden_passport(guard, resource_type, &m)?;
    Ok(m)
}

/// An entry's `ifMatch` against the version committed now, as for a single update: a
/// resource hidden from the caller answers exactly as a missing one
/// (`crud::visible_version`).
async fn check_version(
    guard: &mut Guard<'_>,
    action: access::Action,
    (t, id): (&str, &str),
    existing: &Option<Stored>,
    wanted: Option<i64>,
) -> ApiResult<()> {
    let Some(w) = wanted else { return Ok(()) };
    let current = crud::visible_version(guard, action, existing.as_ref()).await?;
    if current != Some(w) {
        return Err(crud::precondition_failed(t, id, w, current));
    }
    Ok(())
}

/// What one entry comes to, from the state committed now (and the deletions planned).
async fn plan_entry(
    guard: &mut Guard<'_>,
    e: &Entry,
    deleted: &HashSet<(String, String)>,
) -> Result<Plan, Failed> {
    let st = guard.st;
    let f = |error: ApiError| fail(0, error);
    let t = e.target.resource_type.clone();
    let wanted = e.wanted().map_err(f)?;
    let read = |id: String| {
        let t = t.clone();
        async move {
            st.domain
                .records()
                .read(&t, &id)
                .await
                .map_err(|e| f(e.into()))
        }
    };
    match e.method {
        Method::Get | Method::Head => Ok(Plan::Read),
        Method::Delete => {
            let id = match (&e.target.path[..], &e.target.query) {
                ([id], None) => id.clone(),
                (_, Some(q)) => {
                    let ids = live_matches(guard, &t, q, deleted)
                        .await
                        .map_err(f)?
                        .visible;
                    match ids.as_slice() {
                        [] => {
                            return Ok(Plan::Nothing(
                                StatusCode::NO_CONTENT,
                                "nothing matched; nothing deleted",
                            ));
                        }
                        [id] => id.clone(),
                        many => {
                            return Err(f(ApiError::PreconditionFailed(format!(
                                "the condition matches {} {t} resources; this server deletes one at a time (conditionalDelete: single)",
                                matching::several(many.len())
                            ))));
                        }
                    }
                }
                _ => unreachable!("checked by check_shape"),
            };
            let existing = read(id.clone()).await?;
            check_version(guard, access::Action::Delete, (&t, &id), &existing, wanted)
                .await
                .map_err(f)?;
            match existing {
                None => Err(f(crud::not_found(&t, &id))),
                Some(s) if s.deleted => Ok(Plan::Found(s, StatusCode::OK, "already deleted")),
                Some(s) => Ok(Plan::Write {
                    resource_type: t,
                    id,
                    resource: None,
                    existing: Some(s),
                    unless_exists: None,
                }),
            }
        }
        Method::Post => {
            let map = e.resource.clone().expect("checked by check_shape");
            let mut unless_exists = None;
            if let Some(q) = &e.if_none_exist {
                let criteria = matching::criteria(q, "ifNoneExist").map_err(f)?;
                let m = live_matches(guard, &t, q, deleted).await.map_err(f)?;
                match m.visible.as_slice() {
                    // A hidden match plays no part, so it must not trip the store's check.
                    [] if m.hidden => {}
                    [] => unless_exists = matching::race_check(&criteria),
                    [id] => {
                        return match read(id.clone()).await? {
                            Some(s) if !s.deleted => Ok(Plan::Found(
                                s,
                                StatusCode::OK,
                                "a matching resource already exists",
                            )),
                            // Deleted since the match: plan again.
                            _ => Err(Failed {
                                index: 0,
                                error: ApiError::Conflict("changed concurrently".into()),
                                retry: true,
                            }),
                        };
                    }
                    many => {
                        return Err(f(ApiError::PreconditionFailed(format!(
                            "ifNoneExist matches {} {t} resources; it must match at most one",
                            matching::several(many.len())
                        ))));
                    }
                }
            }
            Ok(Plan::Write {
                resource_type: t,
                id: uuid::Uuid::now_v7().to_string(),
                resource: Some(map),
                existing: None,
                unless_exists,
            })
        }
        Method::Put => {
            let mut map = e.resource.clone().expect("checked by check_shape");
            let body_id = map.get("id").and_then(Value::as_str).map(str::to_owned);
            match (&e.target.path[..], &e.target.query) {
                ([id], None) => {
                    match &body_id {
                        Some(b) if b == id => {}
                        Some(b) => {
                            return Err(f(ApiError::bad_request(
                                "id",
                                format!(
                                    "the resource's id '{b}' does not match the URL's id '{id}'"
                                ),
                            )));
                        }
                        None => {
                            return Err(f(ApiError::bad_request(
                                "id",
                                "an update must carry the resource's id",
                            )));
                        }
                    }
                    let existing = read(id.clone()).await?;
                    check_version(guard, access::Action::Update, (&t, id), &existing, wanted)
                        .await
                        .map_err(f)?;
                    Ok(Plan::Write {
                        resource_type: t,
                        id: id.clone(),
                        resource: Some(map),
                        existing,
                        unless_exists: None,
                    })
                }
                (_, Some(q)) => {
                    let criteria = matching::criteria(q, "conditional update").map_err(f)?;
                    if let Some(b) = &body_id {
                        request::require_id(b).map_err(f)?;
                    }
                    let m = live_matches(guard, &t, q, deleted).await.map_err(f)?;
                    let hidden = m.hidden;
                    match m.visible.as_slice() {
                        [] => {
                            if wanted.is_some() {
                                return Err(f(ApiError::PreconditionFailed(format!(
                                    "ifMatch names a version, but no {t} matches the condition"
                                ))));
                            }
                            let id = match body_id {
                                Some(b) => {
                                    if read(b.clone()).await?.is_some() {
                                        return Err(f(ApiError::Conflict(format!(
                                            "no {t} matches the condition, but the resource's id '{b}' is already taken by one that does not match"
                                        ))));
                                    }
                                    b
                                }
                                None => uuid::Uuid::now_v7().to_string(),
                            };
                            Ok(Plan::Write {
                                resource_type: t,
                                id,
                                resource: Some(map),
                                existing: None,
                                unless_exists: if hidden {
                                    None
                                } else {
                                    matching::race_check(&criteria)
                                },
                            })
                        }
                        [id] => {
                            if let Some(b) = &body_id
                                && b != id
                            {
                                return Err(f(ApiError::bad_request(
                                    "id",
                                    format!(
                                        "the resource's id '{b}' is not that of the matching {t} ('{id}')"
                                    ),
                                )));
                            }
                            map.insert("id".into(), Value::String(id.clone()));
                            let existing = read(id.clone()).await?;
                            check_version(
                                guard,
                                access::Action::Update,
                                (&t, id),
                                &existing,
                                wanted,
                            )
                            .await
                            .map_err(f)?;
                            Ok(Plan::Write {
                                resource_type: t,
                                id: id.clone(),
                                resource: Some(map),
                                existing,
                                unless_exists: None,
                            })
                        }
                        many => Err(f(ApiError::PreconditionFailed(format!(
                            "the condition matches {} {t} resources; it must match at most one",
                            matching::several(many.len())
                        )))),
                    }
                }
                _ => unreachable!("checked by check_shape"),
            }
        }
        Method::Patch => {
            let id = e.target.path[0].clone();
            let ops = patch_document(e).map_err(f)?;
            let existing = read(id.clone()).await?;
            check_version(guard, access::Action::Update, (&t, &id), &existing, wanted)
                .await
                .map_err(f)?;
            // A deletion says "gone" only to someone who could read what was deleted.
            crud::refuse_hidden_history(guard, existing.as_ref())
                .await
                .map_err(f)?;
            let current = match &existing {
                None => return Err(f(crud::not_found(&t, &id))),
                Some(s) if s.deleted => {
                    return Err(f(ApiError::Gone {
                        message: format!("{t}/{id} was deleted"),
                        etag: Some(etag(s.version_id)),
                    }));
                }
                Some(s) => s,
            };
            let mut doc: Value = serde_json::from_slice(&current.body).map_err(|e| {
                f(ApiError::Store(StoreError::Backend(format!(
                    "stored body unreadable: {e}"
                ))))
            })?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                f(ApiError::Unprocessable(vec![Issue::error(
                    IssueType::Processing,
                    "",
                    format!("the patch could not be applied: {e}"),
                )]))
            })?;
            let Value::Object(map) = doc else {
                return Err(f(ApiError::Unprocessable(vec![Issue::error(
                    IssueType::Processing,
                    "",
                    "the patch must leave a resource (a JSON object)",
                )])));
            };
            if map.get("resourceType").and_then(Value::as_str) != Some(t.as_str())
                || map.get("id").and_then(Value::as_str) != Some(id.as_str())
            {
                return Err(f(ApiError::Unprocessable(vec![Issue::error(
                    IssueType::Processing,
                    "",
                    "a patch may not change the resource's type or id",
                )])));
            }
            Ok(Plan::Write {
                resource_type: t,
                id,
                resource: Some(map),
                existing,
                unless_exists: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVs\nbG8h").unwrap(), b"hello!");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a*==").is_none());
    }

    #[test]
    fn references_at_any_depth() {
        let mut v: Value = serde_json::json!({
            "subject": {"reference": "urn:uuid:1"},
            "contained": [{"resourceType": "Observation", "performer": [{"reference": "urn:uuid:2"}]}],
            "note": [{"text": "reference"}]
        });
        let mut seen = Vec::new();
        for_each_reference(&mut v, &mut |s| {
            seen.push(s.clone());
            *s = "X/1".into();
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec!["urn:uuid:1", "urn:uuid:2"]);
        assert_eq!(v["contained"][0]["performer"][0]["reference"], "X/1");
    }

    #[test]
    fn processing_order() {
        let mut m = [
            Method::Get,
            Method::Put,
            Method::Post,
            Method::Delete,
            Method::Patch,
        ];
        m.sort_by_key(|m| m.order());
        assert_eq!(m[0], Method::Delete);
        assert_eq!(m[1], Method::Post);
        assert_eq!(m[4], Method::Get);
    }
}
