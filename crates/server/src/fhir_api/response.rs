//! Building FHIR responses. Stored bodies are sent as the bytes that were stored; bundles
//! are written by concatenating those bytes, never by parsing and re-serialising them.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::types::Stored;

use crate::clock;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// `W/"n"`.
pub fn etag(version_id: i64) -> String {
    let mut s = String::with_capacity(24);
    s.push_str("W/\"");
    s.push_str(&version_id.to_string());
    s.push('"');
    s
}

/// What the client asked for with `Prefer: return=…` (a whole resource unless it said).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Return {
    Minimal,
    #[default]
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

/// The headers that describe a stored version: `ETag` and `Last-Modified`.
pub fn version_headers(stored: &Stored) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(4);
    insert_version_headers(&mut h, stored);
    h
}

/// Adds `ETag` and `Last-Modified` to `headers` (the read path's hot spot: no format
/// machinery, no intermediate map).
pub fn insert_version_headers(headers: &mut HeaderMap, stored: &Stored) {
    headers.insert(header::ETAG, header_value(&etag(stored.version_id)));
    headers.insert(
        header::LAST_MODIFIED,
        header_value(&clock::http_date(stored.last_updated_us)),
    );
}

pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("server-made header values are ASCII")
}

/// A stored resource as the body of a 200.
pub fn resource(status: StatusCode, stored: &Stored) -> Response {
    let mut resp = Response::new(axum::body::Body::from(stored.body.clone()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    insert_version_headers(headers, stored);
    resp
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

/// A Bundle written around stored bytes, the one way every bundle response is made
/// (searchset, history, batch/transaction responses): `new` writes the header, then any
/// [`link`](Self::link)s, then [`entry`](Self::entry)s, then [`finish`](Self::finish).
/// Links after the first entry are a bug (debug-asserted).
pub struct BundleWriter {
    w: JsonWriter,
    links: usize,
    entries: usize,
}

impl BundleWriter {
    /// `{"resourceType":"Bundle","id":…,"meta":{"lastUpdated":…},"type":kind[,"total":n]`.
    pub fn new(kind: &str, total: Option<u64>) -> Self {
        let mut w = JsonWriter::new();
        w.raw(br#"{"resourceType":"Bundle","id":"#)
            .string(&uuid::Uuid::now_v7().to_string())
            .raw(br#","meta":{"lastUpdated":"#)
            .string(&clock::instant(clock::now_us()))
            .raw(br#"},"type":"#)
            .string(kind);
        if let Some(t) = total {
            w.raw(br#","total":"#).raw(t.to_string().as_bytes());
        }
        BundleWriter {
            w,
            links: 0,
            entries: 0,
        }
    }

    /// `{"relation":…,"url":…}` in `link`.
    pub fn link(&mut self, relation: &str, url: &str) -> &mut Self {
        debug_assert_eq!(self.entries, 0, "links come before entries");
        self.w.raw(if self.links == 0 {
            br#","link":["#
        } else {
            b","
        });
        self.links += 1;
        self.w
            .raw(br#"{"relation":"#)
            .string(relation)
            .raw(br#","url":"#)
            .string(url)
            .raw(b"}");
        self
    }

    fn close_links(&mut self) {
        if self.links > 0 {
            self.w.raw(b"]");
            self.links = 0;
        }
    }

    /// One entry: `fullUrl`, `resource` (stored bytes, as they are), then whatever `rest`
    /// writes — members each starting with a comma (e.g. `,"search":{"mode":"match"}`).
    pub fn entry(
        &mut self,
        full_url: Option<&str>,
        resource: Option<&[u8]>,
        rest: impl FnOnce(&mut JsonWriter),
    ) -> &mut Self {
        if self.entries == 0 {
            self.close_links();
            self.w.raw(br#","entry":["#);
        } else {
            self.w.raw(b",");
        }
        self.entries += 1;
        // `{` and the first member, so `rest` can always start with a comma.
        self.w.raw(b"{");
        let mut first = true;
        if let Some(u) = full_url {
            self.w.raw(br#""fullUrl":"#).string(u);
            first = false;
        }
        if let Some(r) = resource {
            if !first {
                self.w.raw(b",");
            }
            self.w.raw(br#""resource":"#).raw(r);
            first = false;
        }
        if first {
            // Neither: `rest` writes the first member, without its leading comma.
            let mut inner = JsonWriter::new();
            rest(&mut inner);
            let bytes = inner.into_bytes();
            self.w.raw(bytes.strip_prefix(b",").unwrap_or(&bytes));
        } else {
            rest(&mut self.w);
        }
        self.w.raw(b"}");
        self
    }

    /// The finished bundle as a 200 `application/fhir+json` response. Without entries it
    /// has no `entry` at all: FHIR JSON has no empty arrays (R4 §2.6.2).
    pub fn finish(mut self) -> Response {
        if self.entries == 0 {
            self.close_links();
            self.w.raw(b"}");
        } else {
            self.w.raw(b"]}");
        }
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
            self.w.into_bytes(),
        )
            .into_response()
    }
}

/// The `Location` of a stored version.
pub fn location(st: &crate::AppState, stored: &Stored) -> String {
    format!(
        "{}/fhir/{}/{}/_history/{}",
        st.config.base(),
        stored.resource_type,
        stored.id,
        stored.version_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(resp: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn an_empty_bundle_has_no_entry_member() {
        let empty = body(BundleWriter::new("searchset", Some(0)).finish()).await;
        assert!(empty.get("entry").is_none(), "{empty}");
        assert_eq!(empty["total"], 0);
        let mut w = BundleWriter::new("searchset", Some(0));
        w.link("self", "http://x/fhir/Patient");
        let linked = body(w.finish()).await;
        assert!(linked.get("entry").is_none(), "{linked}");
        assert_eq!(linked["link"][0]["relation"], "self");
        let mut w = BundleWriter::new("history", None);
        w.entry(
            Some("http://x/fhir/Patient/1"),
            Some(br#"{"resourceType":"Patient"}"#),
            |_| {},
        );
        let one = body(w.finish()).await;
        assert_eq!(one["entry"].as_array().map(Vec::len), Some(1), "{one}");
    }
}
