//! The passport pages: the passport at a glance (`/passport/{child}`), the template's forms
//! to add and change items, ending an item the FHIR way, the care team's "what changed"
//! and review, and a professional's list of the children in their care team. Every read
//! and write is the domain's (`domain::passport`): decided for the signed-in person,
//! audited, and never a write of its own.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use domain::guard::Caller;
use domain::passport::{self, End, Failed, Opened, Target, care_team, forms};
use serde_json::{Value, json};

use super::guard::{self, PageResult, SignedIn, field, form};
use super::templates::{csrf_refused, long_date, message, page, see_other};
use crate::AppState;

/// The signed-in person and their caller, or where to send them.
pub(super) async fn caller(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Result<(SignedIn, Caller), Response>, guard::PageError> {
    let who = match guard::signed_in(st, headers).await? {
        Ok(w) => w,
        Err(r) => return Ok(Err(r)),
    };
    let c = Caller::signed_in(&st.domain, &who.cur.account, who.identity.clone()).await;
    Ok(Ok((who, c)))
}

/// A posted form of the passport pages: the signed-in person, their caller and the fields,
/// or the answer to send (sign in first; a form without this session's CSRF token is
/// refused, with a link back to `back`).
async fn posted(
    st: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    back: (&str, &str),
) -> Result<Result<(SignedIn, Caller, HashMap<String, String>), Response>, guard::PageError> {
    let (who, c) = match caller(st, headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(Err(r)),
    };
    let f = form(body);
    if !who.csrf_ok(&f) {
        return Ok(Err(csrf_refused(Some(back))));
    }
    Ok(Ok((who, c, f)))
}

/// The page for a passport action that did not happen.
pub(super) fn failed(f: Failed, patient: &str, back: &str) -> PageResult {
    Ok(match f {
        Failed::NotFound => guard::no_such_passport(),
        Failed::Forbidden(why) => guard::forbidden(&why),
        Failed::Conflict => message(
            StatusCode::CONFLICT,
            "Someone else changed this item",
            &[
                "Another person saved a change to this item after you opened it, so your change was not saved. Nothing has been overwritten.",
                "Open the item again to see what it says now, then make your change again if it is still needed.",
            ],
            Some((back, "Open the item again")),
        ),
        Failed::Invalid(why) => message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "This could not be saved",
            &[&why],
            Some((&format!("/passport/{patient}"), "Go back to the passport")),
        ),
        Failed::Store(e) => return Err(e.into()),
    })
}

pub use domain::passport::spaced_nhs_number;

pub(super) fn is_family(c: &Caller) -> bool {
    matches!(
        c.subject.identity,
        access::Identity::Family { .. } | access::Identity::YoungPerson { .. }
    )
}

/// `GET /passport/{patient}/sharing/{organisation}`: what that organisation's staff see,
/// for the person in control of the passport.
pub async fn preview(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, org)): Path<(String, String)>,
) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let Some(organisation) = super::directory::organisation(&st.domain, &org).await? else {
        return Ok(guard::no_such_passport());
    };
    let v = match passport::preview(&st.domain, &c, &patient, &organisation).await {
        Ok(v) => v,
        Err(f) => return failed(f, &patient, "/"),
    };
    let mut sections: Vec<Value> = v.sections.iter().map(|s| section_json(s, false)).collect();
    sections.sort_by_key(|s| s["code"] != "emergency");
    for s in &mut sections {
        s["forms"] = json!([]);
    }
    Ok(page(
        StatusCode::OK,
        "passport.html",
        json!({
            "patient": v.patient, "name": v.name, "preview": organisation.name,
            "birth_date": long_date(&v.birth_date).unwrap_or_else(|| "not recorded".into()),
            "nhs_number": spaced_nhs_number(&v.nhs_number),
            "sections": sections, "waiting": 0, "family": true,
            "csrf_token": who.csrf_token(),
        }),
    ))
}

/// `GET /passport/{patient}`
pub async fn view(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let v = match passport::view(&st.domain, &c, &patient).await {
        Ok(v) => v,
        Err(f) => return failed(f, &patient, "/"),
    };
    let family = is_family(&c);
    // Professionals meet the emergency protocol first; the family reads in passport order.
    let mut sections: Vec<Value> = v.sections.iter().map(|s| section_json(s, family)).collect();
    if !family {
        sections.sort_by_key(|s| s["code"] != "emergency");
    }
    Ok(page(
        StatusCode::OK,
        "passport.html",
        json!({
            "patient": v.patient, "name": v.name,
            "birth_date": long_date(&v.birth_date).unwrap_or_else(|| "not recorded".into()),
            "nhs_number": spaced_nhs_number(&v.nhs_number),
            "sections": sections, "waiting": v.waiting, "family": family,
            "controls": v.controls,
            "last_checked": v.last_checked,
            "next_review": v.next_review.as_deref().and_then(long_date),
            "review_overdue": v.review_overdue,
            "csrf_token": who.csrf_token(),
        }),
    ))
}

fn section_json(s: &passport::SectionView, family: bool) -> Value {
    let items = |list: &[passport::Item]| -> Vec<Value> {
        list.iter().map(|i| item_json(i, family)).collect()
    };
    let forms: Vec<Value> = s
        .forms
        .iter()
        .filter_map(|k| forms::form(k))
        .map(|f| json!({ "key": f.key, "noun": f.noun }))
        .collect();
    json!({ "code": s.code, "title": s.title, "shared": s.shared, "items": items(&s.items),
            "earlier": items(&s.earlier), "forms": forms, "writable": s.writable,
            "photo": s.items.iter().any(|i| i.photo.is_some()) })
}

pub(super) fn item_json(i: &passport::Item, family: bool) -> Value {
    let status = match &i.status {
        passport::Status::Waiting { .. } if family => {
            json!({ "kind": "waiting", "text": "Added by family — waiting for review" })
        }
        passport::Status::Waiting { .. } => {
            json!({ "kind": "waiting", "text": "Patient-reported, awaiting review" })
        }
        passport::Status::Checked {
            by,
            role,
            organisation,
            date,
        } => {
            let mut who = by.clone();
            for part in [role, organisation] {
                if !part.is_empty() {
                    who.push_str(", ");
                    who.push_str(part);
                }
            }
            json!({ "kind": "checked", "text": format!("Checked by {who}, {date}") })
        }
        passport::Status::Recorded => {
            json!({ "kind": "recorded", "text": "Recorded by the care team" })
        }
    };
    json!({ "type": i.resource_type, "id": i.id, "version": i.version, "label": i.label,
            "details": i.details, "status": status, "form": i.form, "photo": i.photo })
}

/// The form page: `errors` and `fields` when it comes back with problems.
#[allow(clippy::too_many_arguments)]
fn form_page(
    status: StatusCode,
    who: &SignedIn,
    patient: &str,
    name: &str,
    f: &forms::Form,
    qs: &[forms::Question],
    fields: &HashMap<String, String>,
    errors: &[forms::FieldError],
    change: Option<(&str, i64, bool, bool)>,
) -> Response {
    let family = guard_is_family(who);
    let questions: Vec<Value> = qs
        .iter()
        .map(|q| {
            let value = fields.get(&q.link_id).cloned().unwrap_or_default();
            // The label of a chosen option, for an answer shown but not changed.
            let shown = q
                .options
                .iter()
                .find(|o| o.value == value)
                .map_or(value.clone(), |o| o.label.clone());
            json!({
                "id": q.link_id, "text": q.text, "kind": q.kind, "required": q.required,
                "locked": family && q.clinician_only, "shown": shown,
                "options": q.options, "no_code": q.no_code, "unit": q.unit, "value": value,
                "other": fields.get(&format!("{}-other", q.link_id)).cloned().unwrap_or_default(),
                "day": fields.get(&format!("{}-day", q.link_id)).cloned().unwrap_or_default(),
                "month": fields.get(&format!("{}-month", q.link_id)).cloned().unwrap_or_default(),
                "year": fields.get(&format!("{}-year", q.link_id)).cloned().unwrap_or_default(),
            })
        })
        .collect();
    let errors: Vec<Value> = errors
        .iter()
        .map(|e| json!({ "field": e.field, "text": e.message }))
        .collect();
    let (id, version, waiting, family_own) = change.unwrap_or(("", 0, false, false));
    page(
        status,
        "passport_form.html",
        json!({
            "patient": patient, "name": name, "form": f.key, "noun": f.noun,
            "type": f.resource_type, "questions": questions, "errors": errors,
            "id": id, "version": version, "change": change.is_some(), "waiting": waiting,
            "may_delete": family_own, "family": guard_is_family(who),
            "csrf_token": who.csrf_token(),
        }),
    )
}

fn guard_is_family(who: &SignedIn) -> bool {
    matches!(
        who.identity,
        access::Identity::Family { .. } | access::Identity::YoungPerson { .. }
    )
}

/// The child's name for headings, if the caller may see the passport.
async fn child_name(st: &AppState, c: &Caller, patient: &str) -> Result<String, Failed> {
    passport::name(&st.domain, c, patient).await
}

/// `GET /passport/{patient}/add/{form}`
pub async fn add_form(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, key)): Path<(String, String)>,
) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let Some(f) = forms::form(&key) else {
        return Ok(guard::not_found());
    };
    let name = match child_name(&st, &c, &patient).await {
        Ok(n) => n,
        Err(e) => return failed(e, &patient, "/"),
    };
    if f.clinical && guard_is_family(&who) {
        return Ok(guard::forbidden(&format!(
            "{name}'s clinical team writes {}. Ask them to add or change it.",
            f.noun
        )));
    }
    let q = passport::templates::published(&st.domain, f.questionnaire).await?;
    let qs = forms::questions(f, &q);
    Ok(form_page(
        StatusCode::OK,
        &who,
        &patient,
        &name,
        f,
        &qs,
        &HashMap::new(),
        &[],
        None,
    ))
}

/// `POST /passport/{patient}/add/{form}`
pub async fn add(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, key)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    save(&st, &headers, &patient, &key, None, &body).await
}

/// `GET /passport/{patient}/item/{type}/{id}`: the change form of one item.
pub async fn change_form(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, ty, id)): Path<(String, String, String)>,
) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let (stored, v) = match passport::item(&st.domain, &c, &patient, &ty, &id).await {
        Ok(x) => x,
        Err(e) => return failed(e, &patient, "/"),
    };
    let Some(f) = forms::form_of(&v) else {
        return Ok(guard::not_found());
    };
    let name = match child_name(&st, &c, &patient).await {
        Ok(n) => n,
        Err(e) => return failed(e, &patient, "/"),
    };
    let q = passport::templates::published(&st.domain, f.questionnaire).await?;
    let qs = forms::questions(f, &q);
    let fields = forms::fields_of(&qs, &forms::answers_of(&v, f, &qs));
    let waiting = passport::awaiting(&v);
    Ok(form_page(
        StatusCode::OK,
        &who,
        &patient,
        &name,
        f,
        &qs,
        &fields,
        &[],
        Some((&id, stored.version_id, waiting, waiting && is_family(&c))),
    ))
}

/// `POST /passport/{patient}/item/{type}/{id}`: saves a change.
pub async fn change(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, ty, id)): Path<(String, String, String)>,
    body: Bytes,
) -> PageResult {
    let (_, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let f = match passport::item(&st.domain, &c, &patient, &ty, &id).await {
        Ok((_, v)) => forms::form_of(&v),
        Err(e) => return failed(e, &patient, "/"),
    };
    let Some(f) = f else {
        return Ok(guard::not_found());
    };
    save(&st, &headers, &patient, f.key, Some(&id), &body).await
}

async fn save(
    st: &AppState,
    headers: &HeaderMap,
    patient: &str,
    key: &str,
    id: Option<&str>,
    body: &Bytes,
) -> PageResult {
    let back = format!("/passport/{patient}");
    let (who, c, fields) =
        match posted(st, headers, body, (&back, "Go back to the passport")).await? {
            Ok(x) => x,
            Err(r) => return Ok(r),
        };
    let Some(f) = forms::form(key) else {
        return Ok(guard::not_found());
    };
    let name = match child_name(st, &c, patient).await {
        Ok(n) => n,
        Err(e) => return failed(e, patient, "/"),
    };
    let q = passport::templates::published(&st.domain, f.questionnaire).await?;
    let qs = forms::questions(f, &q);
    let version: i64 = field(&fields, "version").parse().unwrap_or(0);
    // A family member answers every question but those the clinician alone enters.
    let family = guard_is_family(&who);
    let theirs: Vec<forms::Question> = qs
        .iter()
        .filter(|q| !(family && q.clinician_only))
        .cloned()
        .collect();
    let answers = match forms::answers(&theirs, &fields, &domain::dates::today()) {
        Ok(a) => a,
        Err(errors) => {
            let change = id.map(|i| (i, version, false, false));
            return Ok(form_page(
                StatusCode::BAD_REQUEST,
                &who,
                patient,
                &name,
                f,
                &qs,
                &fields,
                &errors,
                change,
            ));
        }
    };
    let target = match id {
        Some(id) => Target::Change { id, version },
        None => Target::New,
    };
    let back = match id {
        Some(id) => format!("/passport/{patient}/item/{}/{id}", f.resource_type),
        None => format!("/passport/{patient}"),
    };
    match passport::save(&st.domain, &c, patient, f, target, &answers).await {
        Ok(_) => Ok(see_other(&format!(
            "/passport/{patient}#{}",
            f.section.code()
        ))),
        Err(e) => failed(e, patient, &back),
    }
}

/// `POST /passport/{patient}/item/{type}/{id}/end`: no longer true, entered by mistake,
/// or (the family's own unchecked item) deleted.
pub async fn end(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, ty, id)): Path<(String, String, String)>,
    body: Bytes,
) -> PageResult {
    let passport = format!("/passport/{patient}");
    let (_, c, f) =
        match posted(&st, &headers, &body, (&passport, "Go back to the passport")).await? {
            Ok(x) => x,
            Err(r) => return Ok(r),
        };
    let how = match field(&f, "how") {
        "no-longer-true" => End::NoLongerTrue,
        "entered-in-error" => End::EnteredInError,
        "delete" => End::Delete,
        _ => return Ok(guard::not_found()),
    };
    let version: i64 = field(&f, "version").parse().unwrap_or(0);
    let back = format!("/passport/{patient}/item/{ty}/{id}");
    let opened = Opened {
        patient: &patient,
        resource_type: &ty,
        id: &id,
        version,
    };
    match passport::end(&st.domain, &c, &opened, how).await {
        Ok(()) => Ok(see_other(&format!("/passport/{patient}"))),
        Err(e) => failed(e, &patient, &back),
    }
}

/// `POST /passport/{patient}/item/{type}/{id}/checked`: a professional checks the version
/// they read.
pub async fn checked(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((patient, ty, id)): Path<(String, String, String)>,
    body: Bytes,
) -> PageResult {
    let changes = format!("/passport/{patient}/changes");
    let (_, c, f) =
        match posted(&st, &headers, &body, (&changes, "Go back to what changed")).await? {
            Ok(x) => x,
            Err(r) => return Ok(r),
        };
    let version: i64 = field(&f, "version").parse().unwrap_or(0);
    let back = changes;
    let opened = Opened {
        patient: &patient,
        resource_type: &ty,
        id: &id,
        version,
    };
    match passport::check(&st.domain, &c, &opened).await {
        Ok(()) => Ok(see_other(&back)),
        Err(e) => failed(e, &patient, &back),
    }
}

/// `GET /passport/{patient}/changes`: what changed since the care team last checked.
pub async fn changes(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    if is_family(&c) {
        return Ok(guard::forbidden(
            "This page is for the care team. Your passport shows which items are waiting for review.",
        ));
    }
    let (name, list) = match passport::changes(&st.domain, &c, &patient).await {
        Ok(x) => x,
        Err(e) => return failed(e, &patient, "/"),
    };
    let changes: Vec<Value> = list
        .iter()
        .map(|ch| {
            let rows: Vec<Value> = ch
                .rows
                .iter()
                .map(|(q, b, a)| json!({ "question": q, "before": b, "after": a }))
                .collect();
            json!({ "type": ch.resource_type, "id": ch.id, "version": ch.version,
                    "section": access::Section::from_code(ch.section).map(|s| s.display()),
                    "label": ch.label, "rows": rows, "new": ch.new, "ended": ch.ended })
        })
        .collect();
    changes_page(
        &who,
        &patient,
        &name,
        &changes,
        StatusCode::OK,
        &[],
        &HashMap::new(),
    )
}

fn changes_page(
    who: &SignedIn,
    patient: &str,
    name: &str,
    changes: &[Value],
    status: StatusCode,
    errors: &[forms::FieldError],
    fields: &HashMap<String, String>,
) -> PageResult {
    let errors: Vec<Value> = errors
        .iter()
        .map(|e| json!({ "field": e.field, "text": e.message }))
        .collect();
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    Ok(page(
        status,
        "passport_changes.html",
        json!({ "patient": patient, "name": name, "changes": changes, "errors": errors,
                "day": get("next-review-day"), "month": get("next-review-month"),
                "year": get("next-review-year"), "csrf_token": who.csrf_token() }),
    ))
}

/// `POST /passport/{patient}/review-date`: when the care team next reviews the passport.
pub async fn review_date(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
    body: Bytes,
) -> PageResult {
    let back = format!("/passport/{patient}/changes");
    let (who, c, f) = match posted(&st, &headers, &body, (&back, "Go back to what changed")).await?
    {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let date = domain::dates::parse_parts(
        field(&f, "next-review-day"),
        field(&f, "next-review-month"),
        field(&f, "next-review-year"),
    );
    let today = domain::dates::today();
    let Some(date) = date.filter(|d| d.as_str() > today.as_str()) else {
        let name = match child_name(&st, &c, &patient).await {
            Ok(n) => n,
            Err(e) => return failed(e, &patient, "/"),
        };
        let e = [forms::FieldError {
            field: "next-review".into(),
            message: "Enter a real date in the future for the next review".into(),
        }];
        return changes_page(&who, &patient, &name, &[], StatusCode::BAD_REQUEST, &e, &f);
    };
    match passport::set_next_review(&st.domain, &c, &patient, &date).await {
        Ok(()) => Ok(see_other(&format!("/passport/{patient}"))),
        Err(e) => failed(e, &patient, &back),
    }
}

/// `GET /passports`: a professional's children (their care teams), and finding one by NHS
/// Number and date of birth.
pub async fn caseload(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    if !who.staff().is_some_and(|s| s.role.sees_child_records()) {
        return Ok(guard::forbidden(
            "This page lists the children in your care team; your role does not work with children's records.",
        ));
    }
    let mut children = Vec::new();
    let mut ids: Vec<String> = domain::onboarding::care_team_patients(&st.domain, &who.cur.account)
        .await?
        .into_iter()
        .collect();
    // Each child's summary reads their whole record: an organisation whose care teams hold
    // thousands of children (a hospital trust) gets the first of them listed and the search
    // below, rather than a page that never finishes. (A caseload index of waiting items
    // and review dates is the way to list them all.)
    let total = ids.len();
    ids.sort();
    ids.truncate(CASELOAD_LIMIT);
    for id in ids {
        // Each passport is read as this person would read it: its waiting count is theirs.
        if let Ok(v) = passport::summary(&st.domain, &c, &id).await {
            children.push(json!({ "id": v.patient, "name": v.name,
                "birth_date": long_date(&v.birth_date).unwrap_or_default(),
                "nhs_number": spaced_nhs_number(&v.nhs_number), "waiting": v.waiting,
                "next_review": v.next_review.as_deref().and_then(long_date),
                "overdue": v.review_overdue }));
        }
    }
    // Overdue reviews first, then the most changes waiting, then by name.
    children.sort_by(|a, b| {
        (
            b["overdue"].as_bool(),
            b["waiting"].as_u64(),
            a["name"].as_str(),
        )
            .cmp(&(
                a["overdue"].as_bool(),
                a["waiting"].as_u64(),
                b["name"].as_str(),
            ))
    });
    Ok(page(
        StatusCode::OK,
        "passport_caseload.html",
        json!({ "children": children, "errors": [], "csrf_token": who.csrf_token(),
                "total": total, "limit": CASELOAD_LIMIT }),
    ))
}

/// How many children a professional's list reads at most (see [`caseload`]).
const CASELOAD_LIMIT: usize = 200;

/// `POST /passports`: finds a child in the care team by NHS Number and date of birth.
pub async fn find(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> PageResult {
    let (who, c, f) =
        match posted(&st, &headers, &body, ("/passports", "Go back to your list")).await? {
            Ok(x) => x,
            Err(r) => return Ok(r),
        };
    // By NHS Number and date of birth, or (no NHS Number to hand) by name and date of birth
    // among the children of the person's care teams.
    let typed_nhs = field(&f, "nhs_number");
    let name = field(&f, "name").to_lowercase();
    let nhs = domain::onboarding::parse_nhs_number(typed_nhs);
    let dob = domain::onboarding::parse_birth_date(field(&f, "birth_date"));
    let mut errors = Vec::new();
    if typed_nhs.is_empty() && name.is_empty() {
        errors.push(
            json!({ "field": "nhs_number", "text": "Enter the child's NHS Number, or their name" }),
        );
    } else if !typed_nhs.is_empty() && nhs.is_none() {
        errors.push(json!({ "field": "nhs_number", "text": "Enter a 10-digit NHS Number that passes its check, like 943 476 5919" }));
    }
    if dob.is_none() {
        errors.push(
            json!({ "field": "birth_date", "text": "Enter the date of birth, like 27/3/2019" }),
        );
    }
    if errors.is_empty()
        && let Some(dob) = dob
    {
        let found = match nhs {
            Some(nhs) => domain::onboarding::find_child(&st.domain, &nhs)
                .await?
                .filter(|c| c.birth_date == dob)
                .map(|c| c.id),
            None => {
                let mut hit = None;
                for id in
                    domain::onboarding::care_team_patients(&st.domain, &who.cur.account).await?
                {
                    let Some(p) = st.domain.records().read("Patient", &id).await? else {
                        continue;
                    };
                    let v: Value = serde_json::from_slice(&p.body).unwrap_or(Value::Null);
                    let full = passport::label(&v).to_lowercase();
                    let matches_name = full == name
                        || full.split_whitespace().last() == name.split_whitespace().last()
                            && full.starts_with(name.split_whitespace().next().unwrap_or(""));
                    if v["birthDate"] == dob.as_str() && matches_name {
                        hit = Some(id);
                        break;
                    }
                }
                hit
            }
        };
        if let Some(id) = found
            && passport::summary(&st.domain, &c, &id).await.is_ok()
        {
            return Ok(see_other(&format!("/passport/{id}")));
        }
        errors.push(json!({ "field": "nhs_number", "text": "No child in your care team has these details. Check them, or ask the family for the NHS Number" }));
    }
    Ok(page(
        StatusCode::BAD_REQUEST,
        "passport_caseload.html",
        json!({ "children": [], "errors": errors, "csrf_token": who.csrf_token(),
                "nhs_number": field(&f, "nhs_number"), "name": field(&f, "name"),
                "birth_date": field(&f, "birth_date") }),
    ))
}

/// `GET /passport/{patient}/care-team`: who is in the child's care team.
pub async fn care_team(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    care_team_page(&st, &who, &c, &patient, StatusCode::OK, &[]).await
}

async fn care_team_page(
    st: &AppState,
    who: &SignedIn,
    c: &Caller,
    patient: &str,
    status: StatusCode,
    errors: &[Value],
) -> PageResult {
    let team = match care_team::team(&st.domain, c, patient).await {
        Ok(t) => t,
        Err(e) => return failed(e, patient, "/"),
    };
    let name = team.name.clone();
    let addable: Vec<Value> = if team.may_add || team.may_ask {
        care_team::addable(&st.domain, patient)
            .await
            .map_err(|e| guard::PageError::new("the directory", e))?
            .into_iter()
            .map(|o| json!({ "code": o.id, "label": o.name }))
            .collect()
    } else {
        Vec::new()
    };
    Ok(page(
        status,
        "care_team.html",
        json!({ "patient": patient, "name": name, "team": team, "addable": addable,
                "errors": errors, "csrf_token": who.csrf_token() }),
    ))
}

/// `POST /passport/{patient}/care-team`: adds or removes an organisation.
pub async fn change_care_team(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(patient): Path<String>,
    body: Bytes,
) -> PageResult {
    let back = format!("/passport/{patient}/care-team");
    let (who, c, f) =
        match posted(&st, &headers, &body, (&back, "Go back to the care team")).await? {
            Ok(x) => x,
            Err(r) => return Ok(r),
        };
    let org = field(&f, "organisation");
    let request = field(&f, "request");
    let version = field(&f, "version").parse().unwrap_or(0);
    let done = match field(&f, "action") {
        "add" | "ask" if org.is_empty() => {
            let e = [json!({ "field": "organisation", "text": "Choose the organisation to add" })];
            return care_team_page(&st, &who, &c, &patient, StatusCode::BAD_REQUEST, &e).await;
        }
        "add" => care_team::add(&st.domain, &c, &patient, org).await,
        "ask" => care_team::ask_to_add(&st.domain, &c, &patient, org).await,
        // An organisation's id, or a professional's `Practitioner/{id}`.
        "remove" => {
            let member = if org.is_empty() {
                field(&f, "member")
            } else {
                org
            };
            care_team::remove(&st.domain, &c, &patient, member).await
        }
        "agree" => care_team::answer(&st.domain, &c, &patient, request, version, true).await,
        "decline" => care_team::answer(&st.domain, &c, &patient, request, version, false).await,
        _ => return Ok(guard::not_found()),
    };
    match done {
        Ok(()) => Ok(see_other(&back)),
        Err(e) => failed(e, &patient, &back),
    }
}

/// `GET /passports/join`: a professional asks to join a child's care team.
pub async fn join_form(State(st): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let (who, c) = match caller(&st, &headers).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    if !matches!(c.subject.identity, access::Identity::Staff(_)) {
        return Ok(guard::forbidden(
            "Only professionals ask to join a care team.",
        ));
    }
    Ok(page(
        StatusCode::OK,
        "care_team_join.html",
        json!({ "errors": [], "csrf_token": who.csrf_token() }),
    ))
}

/// `POST /passports/join`: asks, by NHS Number and date of birth, to join the care team of
/// the child with those details. The answer is the same whether or not there is one.
pub async fn join(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> PageResult {
    let (who, c, f) = match posted(
        &st,
        &headers,
        &body,
        ("/passports/join", "Go back to the request"),
    )
    .await?
    {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let nhs = domain::onboarding::parse_nhs_number(field(&f, "nhs_number"));
    let dob = domain::onboarding::parse_birth_date(field(&f, "birth_date"));
    let mut errors = Vec::new();
    if nhs.is_none() {
        errors.push(json!({ "field": "nhs_number", "text": "Enter a 10-digit NHS Number that passes its check, like 943 476 5919" }));
    }
    if dob.is_none() {
        errors.push(
            json!({ "field": "birth_date", "text": "Enter the date of birth, like 27/3/2019" }),
        );
    }
    if let (Some(nhs), Some(dob)) = (nhs, dob) {
        return match care_team::ask_to_join(&st.domain, &c, &nhs, &dob).await {
            Ok(()) => Ok(super::templates::message(
                StatusCode::OK,
                "Your request has been sent",
                &[
                    "If there is a passport for a child with these details, the person in control of it has been asked whether you may join the care team. You will see the passport in your list if they agree.",
                ],
                Some(("/passports", "Go back to your list")),
            )),
            Err(e) => failed(e, "", "/passports"),
        };
    }
    Ok(page(
        StatusCode::BAD_REQUEST,
        "care_team_join.html",
        json!({ "errors": errors, "csrf_token": who.csrf_token(),
                "nhs_number": field(&f, "nhs_number"), "birth_date": field(&f, "birth_date") }),
    ))
}
