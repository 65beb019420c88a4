//! The response bundle: one `entry.response` per entry, and an entry's failure.

use super::*;

/// One `entry` of the response bundle.
#[derive(Default)]
pub(super) struct EntryOut {
    pub(super) full_url: Option<String>,
    pub(super) status: String,
    pub(super) location: Option<String>,
    pub(super) etag: Option<String>,
    pub(super) last_modified: Option<String>,
    pub(super) resource: Option<Bytes>,
    pub(super) outcome: Option<Bytes>,
}

pub(super) fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

pub(super) fn outcome_bytes(issues: &[Issue]) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&fhir::outcome::operation_outcome(issues))
            .expect("an OperationOutcome always serialises"),
    )
}

impl EntryOut {
    /// The answer for a version a transaction wrote or found.
    pub(super) fn stored(
        st: &AppState,
        s: &Stored,
        status: StatusCode,
        ret: Return,
        message: &str,
    ) -> Self {
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
    pub(super) async fn from_response(st: &AppState, e: Option<&Entry>, resp: Response) -> Self {
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
pub(super) fn http_date_to_instant(d: &str) -> Option<String> {
    use time::format_description::well_known::Rfc2822;
    let s = d.strip_suffix("GMT")?.trim_end().to_owned() + " +0000";
    let dt = time::OffsetDateTime::parse(&s, &Rfc2822).ok()?;
    Some(clock::instant((dt.unix_timestamp_nanos() / 1_000) as i64))
}

pub(super) fn bundle_response(kind: &str, entries: &[EntryOut]) -> Response {
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
pub(super) async fn entry_failure(index: usize, label: &str, err: ApiError) -> Response {
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
