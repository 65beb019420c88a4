//! Break-glass, `/break-glass`: a clinician, nurse or allied health professional of a
//! hospital trust or emergency service (`access::break_glass_eligible`) with no
//! relationship to a child opens the child's emergency content, stating a reason, for the
//! policy's limited time (default 4 hours).
//!
//! The child is found by NHS Number AND date of birth (both must match: a number alone is
//! not enough to open a record). The decision is `access::request_break_glass`; the grant
//! is stored (`domain::break_glass::open`, flagged to the privacy officer of the user's
//! organisation until reviewed) and an AuditEvent `BreakGlass` with purpose
//! `EmergencyTreatment` is recorded; the family sees it in their access log. The content
//! page (`/break-glass/{grant}`) shows only what `access::decide` allows under the grant:
//! the emergency, allergies, communication and contacts sections and active medicines.

use std::sync::Arc;

use access::{RegionalPolicy, Subject};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::child_facts;
use super::guard::{self, PageResult, SignedIn, field, forbidden, form};
use super::onboarding::{find_child, parse_birth_date, parse_nhs_number};
use super::templates::{FieldError, csrf_refused, field_error, message, page, see_other};
use crate::audit::{Named, Who, uk_time};
use crate::{AppState, clock};

/// The signed-in member of staff if they may use break-glass, else the response to send.
async fn eligible(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Result<SignedIn, Response>, guard::PageError> {
    let who = match guard::signed_in(st, headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(Err(r)),
    };
    if !who.staff().is_some_and(access::break_glass_eligible) {
        return Ok(Err(forbidden(
            "Emergency access is only for clinicians, nurses and allied health professionals (such as paramedics) of hospitals and emergency services. GP and community staff use their care-team relationship.",
        )));
    }
    Ok(Ok(who))
}

fn form_view(who: &SignedIn, status: StatusCode, errors: Vec<FieldError>, v: Value) -> Response {
    let hours = RegionalPolicy::default().break_glass_seconds / 3600;
    page(
        status,
        "break_glass.html",
        json!({ "errors": errors, "v": v, "hours": hours, "csrf_token": who.csrf_token() }),
    )
}

/// `GET /break-glass`
pub async fn start(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let who = match eligible(&st, &headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    Ok(form_view(&who, StatusCode::OK, Vec::new(), json!({})))
}

/// The AuditEvent's "who": the person and their organisation, by name.
async fn who_named(
    st: &AppState,
    who: &SignedIn,
    staff: &access::Staff,
) -> Result<Who, guard::PageError> {
    let org = super::directory::organisation(&st.domain, &staff.organisation)
        .await?
        .map(|o| o.name)
        .unwrap_or_default();
    Ok(Who {
        person: Named::new(
            format!("Practitioner/{}", staff.practitioner),
            who.cur.account.display_name.clone(),
        ),
        organisation: Some(Named::new(
            format!("Organization/{}", staff.organisation),
            org,
        )),
        ..Who::default()
    })
}

/// `POST /break-glass`: checks the form, finds the child, asks for the grant, stores it,
/// audits it and sends the user to the content.
pub async fn open(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> PageResult {
    let who = match eligible(&st, &headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    let f = form(&body);
    if !who.csrf_ok(&f) {
        return Ok(csrf_refused(Some((
            "/break-glass",
            "Go back to emergency access",
        ))));
    }
    let (nhs, dob, reason) = (
        field(&f, "nhs_number"),
        field(&f, "birth_date"),
        field(&f, "reason"),
    );
    let confirmed = field(&f, "confirm") == "yes";
    let v = json!({ "nhs_number": nhs, "birth_date": dob, "reason": reason, "confirm": confirmed });
    let mut errors = Vec::new();
    let nhs_number = parse_nhs_number(nhs);
    if nhs.is_empty() {
        errors.push(field_error("nhs_number", "Enter the child's NHS Number"));
    } else if nhs_number.is_none() {
        errors.push(field_error(
            "nhs_number",
            "Enter a valid 10-digit NHS Number",
        ));
    }
    let birth_date = parse_birth_date(dob);
    if dob.is_empty() {
        errors.push(field_error("birth_date", "Enter the child's date of birth"));
    } else if birth_date.is_none() {
        errors.push(field_error(
            "birth_date",
            "Enter a real date of birth, like 27/03/2019",
        ));
    }
    if reason.is_empty() {
        errors.push(field_error("reason", "Enter why you need emergency access"));
    }
    if !confirmed {
        errors.push(field_error(
            "confirm",
            "Confirm that you understand emergency access is recorded and reviewed",
        ));
    }
    let child = match (&nhs_number, &birth_date) {
        (Some(n), Some(d)) if errors.is_empty() => find_child(&st.domain, n)
            .await?
            .filter(|c| &c.birth_date == d),
        _ => None,
    };
    let Some(child) = child else {
        if errors.is_empty() {
            errors.push(field_error(
                "nhs_number",
                "No passport matches this NHS Number and date of birth. Check both",
            ));
        }
        return Ok(form_view(&who, StatusCode::BAD_REQUEST, errors, v));
    };
    let Some(p) = child_facts::load(&st, &child.id).await? else {
        return Ok(guard::no_such_passport());
    };
    let subject = Subject::session(who.identity.clone());
    let staff = who.staff().expect("eligible staff").clone();
    let request = domain::break_glass::Request {
        child_id: &child.id,
        reason,
        subject: &subject,
        account_id: &who.cur.account.id,
        organisation_id: &staff.organisation,
        who: who_named(&st, &who, &staff).await?,
    };
    let row = match domain::break_glass::open(&st.domain, &p.facts, request).await? {
        Ok(row) => row,
        Err(access::Reason::DeniedBreakGlassNotNeeded) => {
            return Ok(message(
                StatusCode::CONFLICT,
                "You do not need emergency access",
                &["You are part of this child's care team, so you can already see their passport."],
                Some(("/", "Go to the home page")),
            ));
        }
        Err(access::Reason::DeniedBreakGlassNoReason) => {
            let errors = vec![field_error("reason", "Enter why you need emergency access")];
            return Ok(form_view(&who, StatusCode::BAD_REQUEST, errors, v));
        }
        Err(_) => return Ok(forbidden("You cannot use emergency access.")),
    };
    Ok(see_other(&format!("/break-glass/{}", row.id)))
}

/// `GET /break-glass/{grant}`: the emergency content, while the user's grant lasts.
pub async fn content(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(grant_id): Path<String>,
) -> PageResult {
    let who = match eligible(&st, &headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(r),
    };
    // Find the grant among the user's organisation's grants; only its own user may use it.
    let staff = who.staff().expect("eligible staff").clone();
    let grant = st
        .domain
        .data()
        .break_glass_for_organisation(&staff.organisation, false)
        .await?
        .into_iter()
        .find(|g| g.id == grant_id && g.account_id == who.cur.account.id);
    let Some(grant) = grant else {
        return Ok(guard::no_such_passport());
    };
    let now = clock::now_us();
    if now >= grant.expires_us {
        return Ok(message(
            StatusCode::FORBIDDEN,
            "Your emergency access has ended",
            &[&format!(
                "It ended on {}. If you still need it, ask again and give the reason.",
                uk_time(grant.expires_us)
            )],
            Some(("/break-glass", "Ask for emergency access")),
        ));
    }
    let c =
        domain::guard::Caller::signed_in(&st.domain, &who.cur.account, who.identity.clone()).await;
    let v = match domain::passport::emergency(&st.domain, &c, &grant.patient_id).await {
        Ok(v) => v,
        Err(f) => return super::passport::failed(f, &grant.patient_id, "/"),
    };
    let notice = format!(
        "Your emergency access ends on {}. Your reason: {}",
        uk_time(grant.expires_us),
        grant.reason
    );
    Ok(super::emergency::render(
        &v,
        false,
        json!({ "notice": notice, "back": "/" }),
    ))
}
