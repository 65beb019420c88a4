//! Staff: inviting a family (`/onboarding/invite`: the child's passport found or made, a
//! one-time code issued) and answering the link requests of self-registered families
//! (`/onboarding/requests`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use domain::onboarding::*;
use domain::types::StoreError;
use serde_json::json;

use super::{form_page, qr_svg, staff};
use crate::AppState;
use crate::audit::Purpose;
use crate::clock;
use crate::records::Agent;
use crate::web::errors::PageResult;
use crate::web::guard::{csrf_ok, field, form};
use crate::web::templates::{FieldError, csrf_refused, field_error, message, page, see_other};

/// `GET /onboarding/invite`
pub(super) async fn invite_form(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let cur = match staff(&st, &headers).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    Ok(form_page(
        &st,
        StatusCode::OK,
        "onboarding_invite.html",
        Some(&cur),
        &headers,
        json!({ "errors": Vec::<FieldError>::new(), "v": {} }),
    ))
}

/// `POST /onboarding/invite`: finds (in the staff member's care teams) or creates the
/// child's passport, then issues an invitation.
pub(super) async fn invite(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let cur = match staff(&st, &headers).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let f = form(&body);
    if !csrf_ok(Some(&cur), &headers, &f) {
        return Ok(csrf_refused(None));
    }
    let v = json!({
        "nhs_number": field(&f, "nhs_number"), "given": field(&f, "given"),
        "family": field(&f, "family"), "birth_date": field(&f, "birth_date"),
        "parent_email": field(&f, "parent_email"),
    });
    let retry = |errors: Vec<FieldError>| {
        form_page(
            &st,
            StatusCode::BAD_REQUEST,
            "onboarding_invite.html",
            Some(&cur),
            &headers,
            json!({ "errors": errors, "v": v }),
        )
    };
    // "Change the details" from the check page: the form again, filled in.
    if field(&f, "edit") == "yes" {
        return Ok(form_page(
            &st,
            StatusCode::OK,
            "onboarding_invite.html",
            Some(&cur),
            &headers,
            json!({ "errors": [], "v": v }),
        ));
    }
    let mut errors = Vec::new();
    let nhs = parse_nhs_number(field(&f, "nhs_number"));
    if field(&f, "nhs_number").is_empty() {
        errors.push(field_error("nhs_number", "Enter the child's NHS Number"));
    } else if nhs.is_none() {
        errors.push(field_error(
            "nhs_number",
            "Enter a valid NHS Number, 10 digits like 999 123 4560",
        ));
    }
    let dob_typed = field(&f, "birth_date");
    let dob = parse_birth_date(dob_typed);
    if !dob_typed.is_empty() && dob.is_none() {
        errors.push(field_error(
            "birth_date",
            "Date of birth must be a real date in the past, like 27/03/2019",
        ));
    }
    let email = field(&f, "parent_email").to_lowercase();
    if !email.is_empty() && !email.contains('@') {
        errors.push(field_error(
            "parent_email",
            "Enter an email address in the correct format, like name@example.com",
        ));
    }
    if !errors.is_empty() {
        return Ok(retry(errors));
    }
    let nhs = nhs.unwrap_or_default();
    let org = cur.account.organisation_id.clone().unwrap_or_default();
    let now = clock::now_us();
    let child = match find_child(&st.domain, &nhs).await? {
        Some(c) => {
            if !care_team_patients(&st.domain, &cur.account)
                .await?
                .contains(&c.id)
            {
                return Ok(retry(vec![field_error(
                    "nhs_number",
                    "This child's passport exists, but your organisation is not in their care team. Ask their care team to invite the family",
                )]));
            }
            if dob.as_ref().is_some_and(|d| *d != c.birth_date) {
                return Ok(retry(vec![field_error(
                    "birth_date",
                    "The date of birth does not match this child's passport. Check the NHS Number and date of birth",
                )]));
            }
            c
        }
        None => {
            let mut errors = Vec::new();
            if field(&f, "given").is_empty() {
                errors.push(field_error("given", "Enter the child's first name"));
            }
            if field(&f, "family").is_empty() {
                errors.push(field_error("family", "Enter the child's last name"));
            }
            if dob.is_none() {
                errors.push(field_error("birth_date", "Enter the child's date of birth"));
            }
            if !errors.is_empty() {
                return Ok(retry(errors));
            }
            // Check your answers: a new passport is made only once the person has seen
            // what it will hold (a wrong NHS Number or date of birth is costly to undo).
            if field(&f, "confirmed") != "yes" {
                return Ok(page(
                    StatusCode::OK,
                    "onboarding_check.html",
                    json!({
                        "v": v, "csrf_token": cur.session.csrf_token,
                        "nhs_spaced": domain::passport::spaced_nhs_number(&nhs),
                        "birth_date_long": dob.as_deref().and_then(domain::dates::long_date),
                    }),
                ));
            }
            let child = Child {
                id: new_id(),
                nhs_number: nhs.clone(),
                given: field(&f, "given").to_owned(),
                family: field(&f, "family").to_owned(),
                birth_date: dob.clone().unwrap_or_default(),
            };
            let actor = Agent::for_account(&st.domain, &cur.account, Purpose::Treatment).await;
            match st
                .domain
                .records()
                .write_all(&actor, new_child_writes(&child, &org)?)
                .await
            {
                Ok(_) => child,
                Err(e) if matches!(e.error, StoreError::ConditionMatched(_)) => {
                    return Ok(retry(vec![field_error(
                        "nhs_number",
                        "A passport with this NHS Number was created a moment ago. Try again",
                    )]));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let (inv, code) = new_invitation(
        &child.id,
        Some(&cur.account),
        Some(&org),
        Some(email.as_str()).filter(|e| !e.is_empty()),
        now,
        DEFAULT_INVITATION_SECS,
    );
    let expires = clock::instant(inv.expires_us);
    st.domain.data().create_invitations(vec![inv]).await?;
    let link = join_link(st.config.base(), &code);
    Ok(page(
        StatusCode::OK,
        "onboarding_issued.html",
        json!({
            "child": format!("{} {}", child.given, child.family),
            "code": display_code(&code), "link": link, "qr": qr_svg(&link),
            "expires": &expires[..10], "email": email,
        }),
    ))
}

/// `GET /onboarding/requests`
pub(super) async fn requests(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let cur = match staff(&st, &headers).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let pending = pending_requests(&st.domain, &cur.account).await?;
    Ok(page(
        StatusCode::OK,
        "onboarding_requests.html",
        json!({ "requests": pending, "csrf_token": cur.session.csrf_token }),
    ))
}

/// `POST /onboarding/requests/{id}`: `decision=confirm|decline`.
pub(super) async fn decide_request(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let cur = match staff(&st, &headers).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let f = form(&body);
    if !csrf_ok(Some(&cur), &headers, &f) {
        return Ok(csrf_refused(None));
    }
    let confirm = match field(&f, "decision") {
        "confirm" => true,
        "decline" => false,
        _ => return Ok(see_other("/onboarding/requests")),
    };
    let actor = Agent::for_account(&st.domain, &cur.account, Purpose::Treatment).await;
    let decided = decide(&st.domain, &actor, &cur.account, &id, confirm).await?;
    if !decided {
        return Ok(message(
            StatusCode::NOT_FOUND,
            "This request cannot be found",
            &["It may have been confirmed or declined already by someone else in the care team."],
            Some(("/onboarding/requests", "Back to requests")),
        ));
    }
    Ok(message(
        StatusCode::OK,
        if confirm {
            "Request confirmed"
        } else {
            "Request declined"
        },
        &[if confirm {
            "The family member can now see the child's passport."
        } else {
            "The family member has not been given access."
        }],
        Some(("/onboarding/requests", "Back to requests")),
    ))
}
