//! The printed passport, the wallet card and the family's copy.
//!
//! - `/passport/{patient}/print`: choose sections (only those the reader may see), then
//!   `/passport/{patient}/print/pdf` is the PDF of those sections, audited as an export.
//! - `/passport/{patient}/card-links/card` (POST, with the card link just made): the
//!   wallet card, whose QR code holds the link.
//! - `/passport/{patient}/download` and `…/download/copy`: "Download a copy of Mia's
//!   passport" — one ZIP holding the PDF and the FHIR R4 Bundle of everything the person
//!   may see (`domain::passport::copy`).
//!
//! Every PDF says when it was printed and that the online passport is the current one.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::passport::{self, Emergency, SectionView, View};
use serde_json::json;

use super::guard::{PageResult, field, form};
use super::passport::{caller, failed, spaced_nhs_number};
use super::templates::{csrf_refused, long_date, message, page};
use crate::AppState;
use crate::audit::uk_time;
use crate::clock;

/// A file to download (never cached: the security headers add `no-store`).
fn download(content_type: &'static str, filename: &str, body: Vec<u8>) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// "mia-jones": a file name from the child's name.
fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.trim_matches('-').to_owned();
    if stem.is_empty() {
        "passport".into()
    } else {
        stem
    }
}

fn printed(by: &str) -> String {
    format!("Printed on {} by {by}", uk_time(clock::now_us()))
}

/// Status words for a printed item (as the pages say them).
fn status(s: &passport::Status) -> String {
    match s {
        passport::Status::Waiting { .. } => "Patient-reported, awaiting review".into(),
        passport::Status::Checked { by, date, .. } => format!("Checked by {by}, {date}"),
        passport::Status::Recorded => "Recorded by the care team".into(),
    }
}

fn block(s: &SectionView, heading: &str) -> ::print::Block {
    ::print::Block {
        heading: heading.to_owned(),
        empty: if s.shared {
            "None recorded.".into()
        } else {
            "Not shared with you.".into()
        },
        entries: s
            .items
            .iter()
            .map(|i| ::print::Entry {
                heading: i.label.clone(),
                rows: i
                    .details
                    .iter()
                    .map(|d| (d.key.clone(), d.value.clone()))
                    .collect(),
                status: status(&i.status),
            })
            .collect(),
    }
}

fn notes(waiting: usize, overdue: bool, next_review: Option<&str>) -> Vec<String> {
    let mut notes = Vec::new();
    if overdue {
        notes.push(format!(
            "Review overdue: this passport was due to be reviewed by {}.",
            next_review.and_then(long_date).unwrap_or_default()
        ));
    }
    if waiting > 0 {
        notes.push(format!(
            "{waiting} item(s) added or changed by the family are waiting for the care team to check them."
        ));
    }
    notes
}

/// The passport's chosen sections as a printable document.
fn document(v: &View, chosen: &HashSet<String>, by: &str) -> ::print::Document {
    ::print::Document {
        title: format!("{}'s passport", v.name),
        identity: vec![
            format!(
                "Born {}",
                long_date(&v.birth_date).unwrap_or_else(|| "not recorded".into())
            ),
            format!("NHS Number {}", spaced_nhs_number(&v.nhs_number)),
        ],
        printed: printed(by),
        notes: notes(v.waiting, v.review_overdue, v.next_review.as_deref()),
        blocks: v
            .sections
            .iter()
            .filter(|s| s.shared && chosen.contains(s.code))
            .map(|s| block(s, s.title))
            .collect(),
    }
}

/// `GET /passport/{patient}/print`: which sections to print.
pub async fn choose(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
) -> PageResult {
    let (_, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let v = match passport::view(&st.domain, &c, &patient).await {
        Ok(v) => v,
        Err(f) => return failed(f, &patient, "/"),
    };
    let sections: Vec<_> = v
        .sections
        .iter()
        .filter(|s| s.shared)
        .map(|s| json!({ "code": s.code, "title": s.title }))
        .collect();
    Ok(page(
        StatusCode::OK,
        "print.html",
        json!({ "patient": patient, "name": v.name, "sections": sections }),
    ))
}

/// `GET /passport/{patient}/print/pdf?section=…`: the chosen sections (every section the
/// reader may see when none is chosen), as a PDF; audited as an export.
pub async fn pdf(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, super::PageError> {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let v = match passport::view(&st.domain, &c, &patient).await {
        Ok(v) => v,
        Err(f) => return failed(f, &patient, "/"),
    };
    let mut chosen: HashSet<String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "section")
        .map(|(_, v)| v.into_owned())
        .collect();
    if chosen.is_empty() {
        chosen = v.sections.iter().map(|s| s.code.to_owned()).collect();
    }
    let doc = document(&v, &chosen, &who.cur.account.display_name);
    passport::audit_export(&st.domain, &c, &patient, clock::now_us()).await?;
    Ok(download(
        "application/pdf",
        &format!("{}-passport.pdf", file_stem(&v.name)),
        ::print::passport(&doc),
    ))
}

/// The wallet card of the emergency information `v`, with `url` in its QR code.
fn card(v: &Emergency, url: &str, passcode: bool) -> ::print::Card {
    let items = |code: &str| {
        v.parts
            .iter()
            .filter(|p| p.code == code)
            .flat_map(|p| p.sections.iter())
            .flat_map(|s| s.items.iter())
            .collect::<Vec<_>>()
    };
    let allergies = items("allergies")
        .into_iter()
        .map(|i| {
            let details: Vec<&str> = i
                .details
                .iter()
                .filter(|d| !d.key.to_lowercase().contains("date"))
                .map(|d| d.value.as_str())
                .collect();
            if details.is_empty() {
                i.label.clone()
            } else {
                format!("{}: {}", i.label, details.join(", "))
            }
        })
        .collect();
    // Who to call by name and role (an answers-only contact's label is its form's title).
    let contacts = items("who-to-call")
        .into_iter()
        .filter_map(|i| {
            let phone = i.details.iter().find(|d| d.phone)?;
            let named = |word: &str| {
                i.details
                    .iter()
                    .find(|d| !d.phone && d.key.to_lowercase().contains(word))
                    .map(|d| d.value.clone())
            };
            let name = named("name").unwrap_or_else(|| i.label.clone());
            let who = match named("role").or_else(|| named("relationship")) {
                Some(role) => format!("{name} ({role})"),
                None => name,
            };
            Some((who, phone.value.clone()))
        })
        .collect();
    ::print::Card {
        name: v.name.clone(),
        identity: vec![
            format!(
                "Born {}",
                long_date(&v.birth_date).unwrap_or_else(|| "not recorded".into())
            ),
            format!("NHS Number {}", spaced_nhs_number(&v.nhs_number)),
        ],
        allergies,
        contacts,
        url: url.to_owned(),
        passcode,
        printed: format!("Printed on {}", uk_time(clock::now_us())),
    }
}

/// `POST /passport/{patient}/card-links/card`: the wallet card for a card link the person
/// in control has (its token, shown once when it was made); audited as an export.
pub async fn wallet_card(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
    body: Bytes,
) -> Result<Response, super::PageError> {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let f = form(&body);
    let back = format!("/passport/{patient}/card-links");
    if !who.csrf_ok(&f) {
        return Ok(csrf_refused(Some((&back, "Go back to card links"))));
    }
    let token = field(&f, "token");
    let link = match domain::card_link::working(&st.domain, &c, &patient, token).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Ok(message(
                StatusCode::NOT_FOUND,
                "This card link does not work",
                &["Make a new card link, then print its card."],
                Some((&back, "Go back to card links")),
            ));
        }
        Err(f) => return failed(f, &patient, &back),
    };
    let v = match passport::emergency(&st.domain, &c, &patient).await {
        Ok(v) => v,
        Err(f) => return failed(f, &patient, &back),
    };
    let url = format!("{}/card/{token}", st.config.base());
    passport::audit_export(&st.domain, &c, &patient, clock::now_us()).await?;
    Ok(download(
        "application/pdf",
        &format!("{}-emergency-card.pdf", file_stem(&v.name)),
        ::print::card(&card(&v, &url, link.passcode_hash.is_some())),
    ))
}

/// `GET /passport/{patient}/download`
pub async fn copy_page(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
) -> PageResult {
    let (_, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let name = match passport::name(&st.domain, &c, &patient).await {
        Ok(n) => n,
        Err(f) => return failed(f, &patient, "/"),
    };
    Ok(page(
        StatusCode::OK,
        "download.html",
        json!({ "patient": patient, "name": name }),
    ))
}

/// `GET /passport/{patient}/download/copy`: one ZIP with the PDF and the FHIR Bundle.
pub async fn copy(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
) -> Result<Response, super::PageError> {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let (v, bundle) = match passport::copy(&st.domain, &c, &patient).await {
        Ok(x) => x,
        Err(f) => return failed(f, &patient, "/"),
    };
    let everything: HashSet<String> = v.sections.iter().map(|s| s.code.to_owned()).collect();
    let pdf = ::print::passport(&document(&v, &everything, &who.cur.account.display_name));
    let json = serde_json::to_vec_pretty(&bundle).unwrap_or_default();
    let stem = file_stem(&v.name);
    let zip = super::zip::stored(&[
        (&format!("{stem}-passport.pdf"), &pdf),
        (&format!("{stem}-passport-fhir.json"), &json),
    ]);
    Ok(download(
        "application/zip",
        &format!("{stem}-passport.zip"),
        zip,
    ))
}
