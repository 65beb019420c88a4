//! Reading a FHIR request: media types, body size, JSON, its preconditions and
//! preferences ([`Ask`]).

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use fhir::{Issue, IssueType};
use serde_json::{Map, Value};

use super::response::Return;
use crate::error::{ApiError, ApiResult};

/// Media types a resource body may be sent as.
pub const RESOURCE_MEDIA_TYPES: &[&str] = &["application/fhir+json", "application/json"];
pub const JSON_PATCH: &str = "application/json-patch+json";

fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Refuses a body sent as anything but one of `allowed` (415).
pub fn require_media_type(headers: &HeaderMap, allowed: &[&str]) -> ApiResult<()> {
    match media_type(headers) {
        Some(mt) if allowed.contains(&mt.as_str()) => Ok(()),
        Some(mt) => Err(ApiError::UnsupportedMediaType(format!(
            "content type '{mt}' is not supported here; send {}",
            allowed.join(" or ")
        ))),
        None => Err(ApiError::UnsupportedMediaType(format!(
            "the request has no Content-Type; send {}",
            allowed.join(" or ")
        ))),
    }
}

/// Refuses requests that accept only formats we do not produce (406). JSON is the only
/// format served; `*/*`, `application/json` and `application/fhir+json` are fine, and so is
/// no `Accept` at all or a `_format` of json.
pub fn check_accept(headers: &HeaderMap) -> ApiResult<()> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ok = accept.split(',').any(|part| {
        let mt = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        matches!(
            mt.as_str(),
            "" | "*/*"
                | "application/*"
                | "application/json"
                | "application/fhir+json"
                | "application/json+fhir"
        )
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::NotAcceptable(
            "this server answers only in JSON (application/fhir+json)".to_owned(),
        ))
    }
}

/// Reads the whole body, refusing more than `limit` bytes (413) before reading it all.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> ApiResult<Bytes> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        // Read (and drop) a moderately oversized body before answering, so the client,
        // still sending, receives the 413 rather than a reset connection; a huge one is
        // refused at once (the connection then closes).
        if len <= DRAIN_LIMIT {
            let _ = axum::body::to_bytes(body, DRAIN_LIMIT).await;
        }
        return Err(ApiError::PayloadTooLarge(limit));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(limit))
}

/// The most of an oversized body read and dropped before its 413 (see [`read_body`]).
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Parses a resource body (400 if it is not a JSON object with a string `resourceType`).
pub fn parse_resource(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(vec![Issue::error(
            IssueType::Structure,
            "",
            format!("the body is not valid JSON: {e}"),
        )])
    })?;
    resource_object(value)
}

/// A parsed body (or a bundle entry's `resource`) as a resource: a JSON object that says
/// what type it is (400 otherwise).
pub fn resource_object(value: Value) -> ApiResult<Map<String, Value>> {
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "",
            "the body must be a JSON object (a FHIR resource)",
        ));
    };
    match map.get("resourceType") {
        Some(Value::String(_)) => Ok(map),
        _ => Err(ApiError::bad_request(
            "",
            "the body has no resourceType; a FHIR resource must say what type it is",
        )),
    }
}

/// Checks the body's `resourceType` matches the URL (400).
pub fn require_type(map: &Map<String, Value>, resource_type: &str) -> ApiResult<()> {
    let found = map
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if found == resource_type {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "resourceType",
            format!("the body is a {found} but the URL is for {resource_type}"),
        ))
    }
}

/// The write path's checks: the resource's size (`--max-resource-bytes`: 413), then
/// [`domain::records::validate`] (422 with the issues).
pub fn validate(st: &crate::AppState, map: Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let limit = st.config.max_resource_bytes;
    if serialised_len(&map) > limit {
        return Err(ApiError::ResourceTooLarge(limit));
    }
    domain::records::validate(map).map_err(ApiError::Unprocessable)
}

/// The length of `map` as JSON, counted without building it.
fn serialised_len(map: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    let _ = serde_json::to_writer(&mut n, map);
    n.0
}

pub use domain::records::with_sections;

/// What a request asks besides its target and body — its preconditions and preferences —
/// read from the HTTP headers ([`Ask::from_headers`]) or, for a bundle entry, from its
/// `request` (`ifMatch`, `ifNoneMatch`, `ifNoneExist`) and the bundle's `Prefer`. The
/// interactions take this, so the handlers and the bundle entries call the same functions.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    /// `If-Match`, as sent.
    pub if_match: Option<String>,
    /// `If-None-Match`, as sent.
    pub if_none_match: Option<String>,
    /// `If-None-Exist`: a create's condition (a search query).
    pub if_none_exist: Option<String>,
    /// `Prefer: return=…`.
    pub ret: Return,
    /// `Prefer: handling=strict` (unknown search parameters are errors).
    pub strict: bool,
}

impl Ask {
    pub fn from_headers(headers: &HeaderMap) -> Ask {
        let text = |v: Option<&axum::http::HeaderValue>| {
            v.map(|v| v.to_str().unwrap_or_default().to_owned())
        };
        Ask {
            if_match: text(headers.get(header::IF_MATCH)),
            if_none_match: text(headers.get(header::IF_NONE_MATCH)),
            if_none_exist: text(headers.get("if-none-exist")),
            ret: Return::from_headers(headers),
            strict: headers.get_all("prefer").iter().any(|v| {
                v.to_str().is_ok_and(|s| {
                    s.split([',', ';'])
                        .any(|p| p.trim().eq_ignore_ascii_case("handling=strict"))
                })
            }),
        }
    }

    /// The version `If-Match: W/"n"` (or `"n"`) names, if it was sent.
    pub fn if_match(&self) -> ApiResult<Option<i64>> {
        version(self.if_match.as_deref(), "if-match")
    }

    /// The version `If-None-Match` names (conditional reads).
    pub fn if_none_match(&self) -> ApiResult<Option<i64>> {
        version(self.if_none_match.as_deref(), "if-none-match")
    }
}

fn version(sent: Option<&str>, name: &str) -> ApiResult<Option<i64>> {
    let Some(s) = sent else {
        return Ok(None);
    };
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    s.parse::<i64>().map(Some).map_err(|_| {
        ApiError::bad_request(
            "",
            format!("{name} must name a version as W/\"n\", e.g. W/\"3\""),
        )
    })
}

/// 404 for a resource type this server does not serve.
pub fn require_supported(resource_type: &str) -> ApiResult<()> {
    if fhir::types::is_supported(resource_type) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "resource type '{resource_type}' is not supported by this server"
        )))
    }
}

/// 400 for an id FHIR does not allow.
pub fn require_id(id: &str) -> ApiResult<()> {
    if fhir::types::is_valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "id",
            "a resource id is 1 to 64 letters, digits, '-' or '.'",
        ))
    }
}
