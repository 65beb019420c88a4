//! Building FHIR responses. Stored bodies are sent as the bytes that were stored; bundles
//! are written by concatenating those bytes, never by parsing and re-serialising them.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use passport_store::Stored;

use crate::clock;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// `W/"n"`.
pub fn etag(version_id: i64) -> String {
    format!("W/\"{version_id}\"")
}

/// What the client asked for with `Prefer: return=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    Minimal,
    Representation,
    OperationOutcome,
}

impl Return {
    pub fn from_headers(headers: &HeaderMap) -> Return {
        for value in headers.get_all("prefer") {
            let Ok(value) = value.to_str() else { continue };
            for part in value.split([',', ';']) {
                match part
                    .trim()
                    .strip_prefix("return=")
                    .map(|v| v.trim_matches('"'))
                {
                    Some("minimal") => return Return::Minimal,
                    Some("OperationOutcome") => return Return::OperationOutcome,
                    Some("representation") => return Return::Representation,
                    _ => {}
                }
            }
        }
        Return::Representation
    }
}

/// The headers that describe a stored version: `ETag`, `Last-Modified`, `Content-Location`-free.
pub fn version_headers(stored: &Stored) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::ETAG, header_value(&etag(stored.version_id)));
    h.insert(
        header::LAST_MODIFIED,
        header_value(&clock::http_date(stored.last_updated_us)),
    );
    h
}

pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("server-made header values are ASCII")
}

/// A stored resource as the body of a 200.
pub fn resource(status: StatusCode, stored: &Stored) -> Response {
    let mut headers = version_headers(stored);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    (status, headers, stored.body.clone()).into_response()
}

/// The answer to a write: status, `Location` (for creates), version headers, and a body
/// as `Prefer` asks.
pub fn written(
    status: StatusCode,
    stored: &Stored,
    location: Option<String>,
    ret: Return,
    message: &str,
) -> Response {
    let mut headers = version_headers(stored);
    if let Some(loc) = location {
        headers.insert(header::LOCATION, header_value(&loc));
    }
    match ret {
        Return::Minimal => (status, headers).into_response(),
        Return::Representation if !stored.deleted => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
            (status, headers, stored.body.clone()).into_response()
        }
        _ => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
            let oo = fhir::outcome::operation_outcome(&[fhir::Issue::information(message)]);
            (
                status,
                headers,
                Bytes::from(serde_json::to_vec(&oo).unwrap_or_default()),
            )
                .into_response()
        }
    }
}

/// Writes JSON by hand around stored bytes.
pub struct JsonWriter {
    buf: Vec<u8>,
}

impl JsonWriter {
    pub fn new() -> Self {
        JsonWriter {
            buf: Vec::with_capacity(4096),
        }
    }
    pub fn raw(&mut self, s: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(s);
        self
    }
    /// A JSON string literal, escaped.
    pub fn string(&mut self, s: &str) -> &mut Self {
        serde_json::to_writer(&mut self.buf, s).expect("writing to a Vec cannot fail");
        self
    }
    pub fn into_bytes(self) -> Bytes {
        Bytes::from(self.buf)
    }
}

impl Default for JsonWriter {
    fn default() -> Self {
        Self::new()
    }
}
