//! Card links: the family's page to make and stop them
//! (`/passport/{patient}/card-links`), and the link itself (`/card/{token}`), which opens
//! the child's emergency view for whoever holds it — after its passcode, if it has one.
//! The rules are `domain::card_link`'s. The token is in the path, so it never leaves in a
//! Referer (every page sends `Referrer-Policy: no-referrer`) and nothing logs paths.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use domain::card_link::{self, CardLinkRow, MAX_DAYS, MIN_PASSCODE, Opened};
use serde_json::{Value, json};

use super::guard::{PageResult, field, form};
use super::passport::{caller, failed};
use super::templates::{FieldError, csrf_refused, field_error, message, page, see_other};
use crate::AppState;
use crate::audit::uk_time;
use crate::clock;

/// How long a link may last, as the page offers it: (days, words).
const LENGTHS: &[(i64, &str)] = &[
    (31, "1 month"),
    (92, "3 months"),
    (183, "6 months"),
    (MAX_DAYS, "1 year"),
];

fn link_json(l: &CardLinkRow, now: i64) -> Value {
    let state = if l.revoked_us.is_some() {
        "Stopped"
    } else if now >= l.expires_us {
        "Expired"
    } else if l.failed_attempts >= card_link::MAX_ATTEMPTS {
        "Locked after wrong passcodes"
    } else {
        "Working"
    };
    json!({ "id": l.id, "by": l.created_by_name, "made": uk_time(l.created_us),
            "ends": uk_time(l.expires_us), "passcode": l.passcode_hash.is_some(),
            "state": state, "working": state == "Working" })
}

/// The family's page: their links, the form to make one, and (once) a new link.
async fn links_page(
    st: &AppState,
    who: &super::guard::SignedIn,
    c: &domain::guard::Caller,
    patient: &str,
    status: StatusCode,
    errors: Vec<FieldError>,
    made: Option<(String, String)>,
) -> PageResult {
    let links = match card_link::list(&st.domain, c, patient).await {
        Ok(l) => l,
        Err(f) => return failed(f, patient, &format!("/passport/{patient}")),
    };
    let name = match domain::passport::name(&st.domain, c, patient).await {
        Ok(n) => n,
        Err(f) => return failed(f, patient, "/"),
    };
    let now = clock::now_us();
    let links: Vec<Value> = links.iter().map(|l| link_json(l, now)).collect();
    let lengths: Vec<Value> = LENGTHS
        .iter()
        .map(|(d, w)| json!({ "days": d, "words": w }))
        .collect();
    Ok(page(
        status,
        "card_links.html",
        json!({ "patient": patient, "name": name, "links": links, "lengths": lengths,
                "errors": errors, "made": made.as_ref().map(|m| &m.0),
                "made_token": made.as_ref().map(|m| &m.1), "min_passcode": MIN_PASSCODE,
                "attempts": card_link::MAX_ATTEMPTS, "csrf_token": who.csrf_token() }),
    ))
}

/// `GET /passport/{patient}/card-links`
pub async fn list(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    links_page(&st, &who, &c, &patient, StatusCode::OK, Vec::new(), None).await
}

/// `POST /passport/{patient}/card-links`: makes a link and shows it, once.
pub async fn make(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
    body: Bytes,
) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let f = form(&body);
    let back = format!("/passport/{patient}/card-links");
    if !who.csrf_ok(&f) {
        return Ok(csrf_refused(Some((&back, "Go back to card links"))));
    }
    let days = LENGTHS
        .iter()
        .map(|(d, _)| *d)
        .find(|d| field(&f, "days") == d.to_string());
    let passcode = field(&f, "passcode");
    let mut errors = Vec::new();
    if days.is_none() {
        errors.push(field_error("days", "Choose how long the card link works"));
    }
    if !passcode.is_empty() && passcode.chars().count() < MIN_PASSCODE {
        errors.push(field_error(
            "passcode",
            format!("Enter a passcode of at least {MIN_PASSCODE} characters, or leave it empty"),
        ));
    }
    let Some(days) = days.filter(|_| errors.is_empty()) else {
        return links_page(
            &st,
            &who,
            &c,
            &patient,
            StatusCode::BAD_REQUEST,
            errors,
            None,
        )
        .await;
    };
    let passcode = (!passcode.is_empty()).then_some(passcode);
    let token = match card_link::create(
        &st.domain,
        &c,
        &who.cur.account.id,
        &patient,
        days,
        passcode,
    )
    .await
    {
        Ok((_, token)) => token,
        Err(f) => return failed(f, &patient, &back),
    };
    let url = format!("{}/card/{token}", st.config.base());
    links_page(
        &st,
        &who,
        &c,
        &patient,
        StatusCode::OK,
        Vec::new(),
        Some((url, token)),
    )
    .await
}

/// `POST /passport/{patient}/card-links/{id}/stop`
pub async fn stop(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, id)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let back = format!("/passport/{patient}/card-links");
    if !who.csrf_ok(&form(&body)) {
        return Ok(csrf_refused(Some((&back, "Go back to card links"))));
    }
    match card_link::revoke(&st.domain, &c, &patient, &id).await {
        Ok(_) => Ok(see_other(&back)),
        Err(f) => failed(f, &patient, &back),
    }
}

/// What a link that opens nothing shows: the same for stopped, expired, locked and
/// unknown links, and nothing of the child.
fn closed() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "This card link does not work",
        &[
            "It may have been stopped by the family, have expired, or been locked after too many wrong passcodes. The address may also be wrong.",
            "In an emergency, call 999. Ask the child's family or care team for the current card.",
        ],
        None,
    )
}

async fn open(st: &AppState, token: &str, passcode: Option<&str>) -> PageResult {
    let opened = match card_link::open(&st.domain, token, passcode).await {
        Ok(o) => o,
        Err(domain::passport::Failed::Store(e)) => return Err(e.into()),
        Err(_) => return Ok(closed()),
    };
    Ok(match opened {
        Opened::Closed => closed(),
        Opened::Passcode { wrong } => {
            let errors = if wrong {
                vec![field_error(
                    "passcode",
                    "That passcode is not right. Check it with the family",
                )]
            } else {
                Vec::new()
            };
            let status = if wrong {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            page(
                status,
                "card_passcode.html",
                json!({ "errors": errors, "action": format!("/card/{token}") }),
            )
        }
        Opened::Emergency(v) => {
            let notice = format!(
                "You opened the emergency card of {}. This is the online passport as it is now ({}); a printed card may be older. The family can see that it was opened.",
                v.name,
                uk_time(clock::now_us())
            );
            super::emergency::render(&v, false, json!({ "notice": notice }))
        }
    })
}

/// `GET /card/{token}`
pub async fn view(State(st): State<Arc<AppState>>, Path(token): Path<String>) -> PageResult {
    open(&st, &token, None).await
}

/// `POST /card/{token}`: the passcode. (No session, so no CSRF token: the passcode is
/// the secret, and a forged post can only spend the attempts of someone holding the link.)
pub async fn passcode(
    State(st): State<Arc<AppState>>,
    Path(token): Path<String>,
    body: Bytes,
) -> PageResult {
    let f = form(&body);
    open(&st, &token, Some(field(&f, "passcode"))).await
}
