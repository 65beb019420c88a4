//! The child's photo: `/passport/{patient}/photo` shows it and takes a new one (a plain
//! `multipart/form-data` form, so it works without JavaScript), and
//! `/passport/{patient}/photo/{id}` serves the image to those who may see it. Checking,
//! cleaning (size, type, location metadata) and storing are the domain's
//! (`domain::passport::set_photo`); a refused photo is an inline error and nothing is kept.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::passport::{self, Failed};
use serde_json::{Value, json};

use super::guard::{PageResult, SignedIn};
use super::passport::{caller, failed};
use super::templates::{csrf_refused, page, see_other};
use crate::AppState;

/// The largest request the upload route reads: well above the photo limit, so that a photo
/// a little too large gets the page's own error rather than a bare refusal.
pub const UPLOAD_LIMIT: usize = 4 * domain::photo::MAX_BYTES;

/// The photo's address on the passport, if the caller may see one.
async fn current(
    st: &AppState,
    c: &domain::guard::Caller,
    patient: &str,
) -> Result<(String, Option<String>), Failed> {
    let view = passport::view(&st.domain, c, patient).await?;
    let photo = view
        .sections
        .iter()
        .flat_map(|s| s.items.iter())
        .find_map(|i| i.photo.clone());
    Ok((view.name, photo))
}

fn photo_page(
    status: StatusCode,
    who: &SignedIn,
    patient: &str,
    name: &str,
    photo: Option<&str>,
    error: Option<&str>,
) -> Response {
    let errors: Vec<Value> = error
        .map(|e| json!({ "field": "photo", "text": e }))
        .into_iter()
        .collect();
    page(
        status,
        "photo.html",
        json!({ "patient": patient, "name": name, "photo": photo, "errors": errors,
                "max_mb": domain::photo::MAX_BYTES / (1024 * 1024),
                "family": matches!(who.identity, access::Identity::Family { .. } | access::Identity::YoungPerson { .. }),
                "csrf_token": who.csrf_token() }),
    )
}

/// `GET /passport/{patient}/photo`
pub async fn form_page(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    match current(&st, &c, &patient).await {
        Ok((name, photo)) => Ok(photo_page(
            StatusCode::OK,
            &who,
            &patient,
            &name,
            photo.as_deref(),
            None,
        )),
        Err(e) => failed(e, &patient, "/"),
    }
}

/// `POST /passport/{patient}/photo`: a new photo, from a multipart form.
pub async fn upload(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
    body: Bytes,
) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let back = format!("/passport/{patient}/photo");
    let Some(parts) = multipart(&headers, &body) else {
        return Ok(csrf_refused(Some((&back, "Go back to the photo"))));
    };
    let fields: HashMap<String, String> = parts
        .iter()
        .filter(|p| p.filename.is_none())
        .map(|p| (p.name.clone(), String::from_utf8_lossy(p.data).into_owned()))
        .collect();
    if !who.csrf_ok(&fields) {
        return Ok(csrf_refused(Some((&back, "Go back to the photo"))));
    }
    let file = parts
        .iter()
        .find(|p| p.name == "photo" && p.filename.is_some())
        .map(|p| p.data)
        .unwrap_or_default();
    match passport::set_photo(&st.domain, &c, &patient, file).await {
        Ok(_) => Ok(see_other(&format!("/passport/{patient}#about-me"))),
        Err(Failed::Invalid(why)) => {
            let (name, photo) = match current(&st, &c, &patient).await {
                Ok(x) => x,
                Err(e) => return failed(e, &patient, "/"),
            };
            Ok(photo_page(
                StatusCode::BAD_REQUEST,
                &who,
                &patient,
                &name,
                photo.as_deref(),
                Some(&why),
            ))
        }
        Err(e) => failed(e, &patient, &back),
    }
}

/// `GET /passport/{patient}/photo/{id}`: the image, decided and audited as a read.
pub async fn image(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, id)): Path<(String, String)>,
) -> PageResult {
    let (_, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    match passport::photo(&st.domain, &c, &patient, &id).await {
        Ok((content_type, bytes)) => {
            let mut resp = bytes.into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&content_type)
                    .unwrap_or(HeaderValue::from_static("image/jpeg")),
            );
            // Like every page, `no-store` (the security headers): personal, so never kept.
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("inline"),
            );
            Ok(resp)
        }
        Err(e) => failed(e, &patient, "/"),
    }
}

/// One part of a `multipart/form-data` body.
struct Part<'a> {
    name: String,
    filename: Option<String>,
    data: &'a [u8],
}

/// The parts of a `multipart/form-data` body (RFC 7578): `None` if the request is not one
/// or does not hold together. Only what a browser's form sends is read: a name, maybe a
/// file name, and the bytes.
fn multipart<'a>(headers: &HeaderMap, body: &'a [u8]) -> Option<Vec<Part<'a>>> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let (mime, params) = ct.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("boundary")
            .then(|| v.trim_matches('"').to_owned())
    })?;
    if boundary.is_empty() || boundary.len() > 70 {
        return None;
    }
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut at = find(body, &delimiter, 0)? + delimiter.len();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Some(parts);
        }
        at += 2; // CRLF after the delimiter
        let head_end = find(body, b"\r\n\r\n", at)?;
        let head = std::str::from_utf8(body.get(at..head_end)?).ok()?;
        let data_start = head_end + 4;
        let next = find(body, &[b"\r\n".as_slice(), &delimiter].concat(), data_start)?;
        let mut name = None;
        let mut filename = None;
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for param in v.split(';').skip(1) {
                if let Some((pk, pv)) = param.trim().split_once('=') {
                    let pv = pv.trim().trim_matches('"').to_owned();
                    match pk.trim() {
                        "name" => name = Some(pv),
                        "filename" => filename = Some(pv),
                        _ => {}
                    }
                }
            }
        }
        parts.push(Part {
            name: name?,
            filename,
            data: body.get(data_start..next)?,
        });
        at = next + 2 + delimiter.len();
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_form_is_read() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=----x1"),
        );
        let body = b"------x1\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\nabc\r\n------x1\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"me.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xFF\xD8\r\n--\xFF\xD9\r\n------x1--\r\n";
        let parts = multipart(&h, body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].name.as_str(), parts[0].data),
            ("csrf_token", &b"abc"[..])
        );
        assert_eq!(parts[1].filename.as_deref(), Some("me.jpg"));
        assert_eq!(parts[1].data, b"\xFF\xD8\r\n--\xFF\xD9");
        // Not multipart, no boundary, cut short: nothing.
        let mut plain = HeaderMap::new();
        plain.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert!(multipart(&plain, body).is_none());
        assert!(multipart(&h, &body[..60]).is_none());
    }
}
