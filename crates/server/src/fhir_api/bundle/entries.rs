//! Reading a bundle's entries: their request, URL and shape, a PATCH entry's JSON Patch,
//! and the references between entries.

use super::*;

pub(super) fn parse_entry(st: &AppState, v: &Value) -> ApiResult<Entry> {
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
pub(super) fn parse_url(st: &AppState, url: &str) -> ApiResult<Target> {
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
pub(super) fn check_shape(e: &Entry) -> ApiResult<()> {
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
pub(super) fn patch_document(e: &Entry) -> ApiResult<json_patch::Patch> {
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
pub(super) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    pub(super) fn value(c: u8) -> Option<u32> {
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
pub(super) fn for_each_reference(
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

pub(super) fn is_local_urn(s: &str) -> bool {
    s.starts_with("urn:uuid:") || s.starts_with("urn:oid:")
}
