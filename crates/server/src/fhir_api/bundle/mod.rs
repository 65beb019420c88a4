//! `POST /fhir`: batch and transaction bundles (R4 http.html#transaction).
//!
//! * **batch**: every entry is an independent request, processed in order through the same
//!   interaction functions as the REST API, its `ifMatch`/`ifNoneMatch`/`ifNoneExist` read
//!   into the same `request::Ask` the headers are (so it has exactly their semantics: `If-Match` retries,
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
//!   the store in ONE `Records::store_all`, each naming the version it
//!   replaces. A failing entry fails the whole transaction with its status and an
//!   OperationOutcome naming it (`Bundle.entry[n]`); nothing is stored.
//! * **Concurrency**: if another write changes a resource between the planning and the
//!   commit, the store refuses the transaction. For an entry with `ifMatch` that is a 412
//!   (the client named a version); otherwise the whole transaction is planned again from
//!   the new state (a fresh decision, never a blind overwrite), a bounded number of times,
//!   then 409.
//! * **Limits**: one resource may be changed by one entry only (two entries resolving to
//!   the same resource fail with 400, as R4 requires). GET/HEAD entries run after the
//!   commit, through the REST interactions; their failure (a 404, say) is reported in their
//!   entry and does not undo the writes. Conditional references and conditions are
//!   resolved against what was committed before the transaction (not against resources the
//!   transaction itself creates). PATCH takes a `Binary` holding a JSON Patch; FHIRPath
//!   Patch is not supported.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
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
use super::request::{self, Ask, JSON_PATCH};
use super::response::{self, BundleWriter, Return, etag};
use super::search;
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
    domain::guard::one_large_at_a_time(bytes.len(), async {
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
    })
    .await
}

mod answer;
mod batch;
mod entries;
mod transaction;

use answer::*;
use batch::*;
use entries::*;
use transaction::*;

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
