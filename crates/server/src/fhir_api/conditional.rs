//! Conditional interactions: the criteria of `If-None-Exist`, conditional update
//! (`PUT /fhir/{type}?query`) and conditional delete (`DELETE /fhir/{type}?query`), and the
//! matching both they and transaction bundles use.
//!
//! A condition is a search (`crate::fhir_api::search`): any parameter the type declares,
//! with modifiers, chains, prefixes and OR values, all of which must match. A parameter the
//! server does not know, or a result parameter (`_count`, `_sort`, `_include`, …), is refused
//! with 400 rather than ignored, since ignoring a criterion would update or delete the wrong
//! resource (or create a duplicate). `_format` is not a criterion and is skipped.
//!
//! R4 rules (http.html#cond-update, #cdelete):
//! * update — no match: a create (with the body's id if it has one and that id has never
//!   been used, 409 if it has; a server id otherwise); one match: an update of that one (a
//!   body id must be the match's); several: 412.
//! * delete — no match: nothing to delete, 204; one: an ordinary delete of it; several: 412
//!   (this server deletes one resource at a time: `conditionalDelete: single`).
//!
//! The match and the write are two steps: a resource changing between them is handled by
//! the write's own version check (an update names the version it replaces). A create after
//! no match is race-safe when the condition is **simple tokens** — every criterion
//! `identifier` or `_id` with one `[system|]code` value (see [`race_check`]): the criteria
//! travel to the store, which re-checks them inside the write transaction (SQLite: on its
//! one writer; PostgreSQL: under advisory locks that every write of a resource with such an
//! identifier or id takes) and refuses the create if a match appeared meanwhile (then the
//! whole decision is taken again). For **any other condition** the search runs before the
//! write and nothing re-checks it inside the transaction: two concurrent conditional creates
//! (or a conditional create and an ordinary write) with the same non-token criteria can both
//! see no match and both create. What remains guaranteed there: each answer is right for the
//! state the search saw, a match is never updated or deleted blindly (version checks), and
//! several matches are always a 412. Clients that need exactly-once creation should put an
//! `identifier` in the condition.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::types::{StoreError, SystemMatch, TokenCriterion};
use serde_json::Value;

use crate::audit::Interaction;
use crate::authz::{Caller, Guard};

use super::crud::{self, require_supported};
use super::request;
use super::response::{self, Return};
use super::search;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Parameters that shape a result rather than select resources: not criteria.
const RESULT_PARAMS: &[&str] = &[
    "_count",
    "_sort",
    "_include",
    "_include:iterate",
    "_revinclude",
    "_revinclude:iterate",
    "_summary",
    "_elements",
    "_total",
    "_cursor",
    "_before",
    "_contained",
    "_containedType",
];

/// A condition's query as `(name, value)` pairs (`identifier=sys|val&_id=x`; a leading
/// `Type?` or `?` is allowed), without `_format`. `what` names the condition in error
/// messages (e.g. "If-None-Exist"). 400 for an empty condition or a result parameter;
/// whether the parameters exist is for the search to say.
pub fn criteria(query: &str, what: &str) -> ApiResult<Vec<(String, String)>> {
    let query = query.trim_start_matches('?');
    let query = query.split_once('?').map_or(query, |(_, q)| q);
    let mut out = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "_format" || name == "_pretty" {
            continue;
        }
        if RESULT_PARAMS.contains(&name.as_ref()) {
            return Err(ApiError::bad_request(
                "",
                format!("{what}: '{name}' is not a search criterion"),
            ));
        }
        out.push((name.into_owned(), value.into_owned()));
    }
    if out.is_empty() {
        return Err(ApiError::bad_request(
            "",
            format!("{what}: the condition is empty"),
        ));
    }
    Ok(out)
}

/// The criteria as tokens the store re-checks inside a create's transaction, when every
/// criterion is `identifier` or `_id` with one `[system|]code` value; `None` otherwise (the
/// condition is then only a search before the write: see the module documentation).
pub fn race_check(criteria: &[(String, String)]) -> Option<Vec<TokenCriterion>> {
    let mut out = Vec::new();
    for (name, value) in criteria {
        if name != "identifier" && name != "_id" {
            return None;
        }
        if value.contains([',', '\\']) {
            return None;
        }
        let (system, code) = match value.split_once('|') {
            None => (SystemMatch::Any, value.clone()),
            Some(("", code)) => (SystemMatch::Absent, code.to_owned()),
            Some((system, code)) => (SystemMatch::Is(system.to_owned()), code.to_owned()),
        };
        if code.is_empty() {
            return None;
        }
        out.push(TokenCriterion {
            param: name.clone(),
            system,
            code,
        });
    }
    Some(out)
}

/// `PUT /fhir/{type}?query`.
pub async fn update(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    let query = require_query(query, "update")?;
    let conditions = criteria(&query, "conditional update")?;
    let tokens = race_check(&conditions);
    request::require_media_type(&headers, request::RESOURCE_MEDIA_TYPES)?;
    let bytes = request::read_body(&headers, body, st.config.max_body_bytes).await?;
    let map = request::parse_resource(&bytes)?;
    request::require_type(&map, &resource_type)?;
    let body_id = map.get("id").and_then(Value::as_str).map(str::to_owned);
    if let Some(id) = &body_id {
        crud::require_id(id)?;
    }
    let map = request::validate(map)?;
    let wanted = request::if_match(&headers)?;
    let ret = Return::from_headers(&headers);
    let mut guard = Guard::new(&st, &caller);
    for attempt in 0..crud::MAX_RETRIES {
        if attempt > 0 {
            crud::backoff(attempt).await;
        }
        let m =
            visible_matches(&mut guard, &resource_type, &conditions, &Default::default()).await?;
        refuse_hidden_passport(&guard, &resource_type, &m)?;
        let ids = m.visible;
        match ids.as_slice() {
            [] => {
                if wanted.is_some() {
                    return Err(ApiError::PreconditionFailed(format!(
                        "If-Match names a version, but no {resource_type} matches the condition"
                    )));
                }
                let id = match &body_id {
                    Some(id) => {
                        if st
                            .domain
                            .records()
                            .read(&resource_type, id)
                            .await?
                            .is_some()
                        {
                            return Err(ApiError::Conflict(format!(
                                "no {resource_type} matches the condition, but the body's id '{id}' is already taken by a resource that does not match"
                            )));
                        }
                        id.clone()
                    }
                    None => uuid::Uuid::now_v7().to_string(),
                };
                let created = request::with_sections(map.clone(), None);
                let new = Value::Object(created.clone());
                guard
                    .write(
                        access::Action::Create,
                        &resource_type,
                        &id,
                        None,
                        Some(&new),
                    )
                    .await?;
                let mut write = crud::prepare(&resource_type, &id, created, None);
                // A hidden match would trip the in-transaction check: it plays no part.
                write.unless_exists = if m.hidden { None } else { tokens.clone() };
                let audit = crate::authz::audit::written(&st, &guard, Interaction::Create, &write);
                write.audit.extend(audit.records);
                match st.write(write).await {
                    Ok(stored) => {
                        let loc = crud::location(&st, &stored);
                        return Ok(audit.note.attach(response::written(
                            StatusCode::CREATED,
                            &stored,
                            Some(loc),
                            ret,
                            "created",
                        )));
                    }
                    // A match (or the id) appeared meanwhile: decide again.
                    Err(StoreError::ConditionMatched(_) | StoreError::VersionConflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            [id] => {
                if let Some(b) = &body_id
                    && b != id
                {
                    return Err(ApiError::bad_request(
                        "id",
                        format!(
                            "the body's id '{b}' is not that of the matching {resource_type} ('{id}')"
                        ),
                    ));
                }
                let mut map = map.clone();
                map.insert("id".into(), Value::String(id.clone()));
                return crud::write_with_retry(
                    &mut guard,
                    &resource_type,
                    id,
                    wanted,
                    ret,
                    Interaction::Update,
                    |_| Ok(map.clone()),
                )
                .await;
            }
            many => {
                return Err(ApiError::PreconditionFailed(format!(
                    "the condition matches {} {resource_type} resources; it must match at most one",
                    several(many.len())
                )));
            }
        }
    }
    Err(ApiError::Conflict(format!(
        "matching {resource_type} resources are being changed by others too often; try again"
    )))
}

/// `DELETE /fhir/{type}?query`.
pub async fn delete(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    let query = require_query(query, "delete")?;
    let conditions = criteria(&query, "conditional delete")?;
    let mut guard = Guard::new(&st, &caller);
    let ids = visible_matches(&mut guard, &resource_type, &conditions, &Default::default())
        .await?
        .visible;
    match ids.as_slice() {
        [] => Ok(StatusCode::NO_CONTENT.into_response()),
        [id] => {
            crud::delete(
                State(st.clone()),
                Extension(caller.clone()),
                Path((resource_type, id.clone())),
                headers,
            )
            .await
        }
        many => Err(ApiError::PreconditionFailed(format!(
            "the condition matches {} {resource_type} resources; this server deletes one at a time (conditionalDelete: single)",
            several(many.len())
        ))),
    }
}

/// Most matches of a condition looked at to find those the caller may see.
pub const VISIBLE_SCAN: usize = 1000;

/// The matches of a condition, as the caller sees them.
pub struct Matches {
    /// Those the caller may see (at most [`VISIBLE_SCAN`] looked at).
    pub visible: Vec<String>,
    /// Some matches were hidden from the caller.
    pub hidden: bool,
}

/// Evaluates a condition for the caller: matches they may not see play no part — the
/// search runs inside the caller's view, so hidden resources neither match nor help
/// anything else match. `hidden` says whether a resource the caller cannot see has the
/// same identifier (only for conditions made of identifier / `_id` tokens: what the
/// store re-checks inside a create's transaction, and what one-passport-per-child needs).
/// `excluded`: resources to leave out (those a transaction deletes).
pub async fn visible_matches(
    guard: &mut Guard<'_>,
    resource_type: &str,
    criteria: &[(String, String)],
    excluded: &std::collections::HashSet<(String, String)>,
) -> ApiResult<Matches> {
    let ids = search::matching_ids(guard, resource_type, criteria, VISIBLE_SCAN).await?;
    let mut m = Matches {
        visible: Vec::new(),
        hidden: false,
    };
    for id in ids {
        if excluded.contains(&(resource_type.to_owned(), id.clone())) {
            continue;
        }
        let Some(s) = guard
            .st
            .domain
            .records()
            .read(resource_type, &id)
            .await?
            .filter(|s| !s.deleted)
        else {
            continue;
        };
        if guard
            .readable(access::Action::Search, &s.body)
            .await?
            .is_some()
        {
            m.visible.push(id);
        }
    }
    if let Some(tokens) = race_check(criteria).filter(|t| !t.is_empty()) {
        m.hidden = guard
            .st
            .domain
            .records()
            .find_by_tokens(resource_type, &tokens)
            .await?
            .into_iter()
            .any(|id| {
                !m.visible.contains(&id)
                    && !excluded.contains(&(resource_type.to_owned(), id.clone()))
            });
    }
    Ok(m)
}

/// The one deliberate exception to "hidden matches play no part": a passport (Patient)
/// the caller cannot see that matches their condition (in practice its NHS Number). One
/// passport per child is the point of Passport, so a second one is refused, saying only
/// that one exists — never whose or where. The refusal is audited like any request.
///
/// Only for callers whose role may create passports ([`Guard::may_create_passport`]):
/// to anyone else (a school's system, a family's app) the hidden match plays no part, so
/// a used NHS Number gets exactly the answer an unused one gets.
pub fn refuse_hidden_passport(
    guard: &Guard<'_>,
    resource_type: &str,
    m: &Matches,
) -> ApiResult<()> {
    if resource_type == "Patient" && m.hidden && m.visible.is_empty() && guard.may_create_passport()
    {
        return Err(ApiError::Conflict(
            "a passport for this child already exists; ask the child's care team to add you to it"
                .into(),
        ));
    }
    Ok(())
}

/// "1000 or more" when the search stopped at its limit ([`VISIBLE_SCAN`]).
pub fn several(n: usize) -> String {
    if n >= VISIBLE_SCAN {
        format!("{n} or more")
    } else {
        n.to_string()
    }
}

fn require_query(query: Option<String>, what: &str) -> ApiResult<String> {
    match query {
        Some(q) if !q.is_empty() => Ok(q),
        _ => Err(ApiError::MethodNotAllowed(format!(
            "a {what} at type level needs search criteria (conditional {what}), e.g. ?identifier=system|value"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        let c = criteria(
            "identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number|9990000018",
            "t",
        )
        .unwrap();
        let t = race_check(&c).unwrap();
        assert_eq!(
            t[0].system,
            SystemMatch::Is("https://fhir.nhs.uk/Id/nhs-number".into())
        );
        assert_eq!(t[0].code, "9990000018");
        let c = criteria("Patient?identifier=|x&_id=y&_format=json", "t").unwrap();
        assert_eq!(c.len(), 2);
        let t = race_check(&c).unwrap();
        assert_eq!(t[0].system, SystemMatch::Absent);
        assert_eq!(t[1].param, "_id");
        // Other criteria are searched, without an in-transaction re-check.
        let c = criteria("family=smith&birthdate=2019-01-01", "t").unwrap();
        assert!(race_check(&c).is_none());
        assert!(race_check(&criteria("identifier=a,b", "t").unwrap()).is_none());
        assert!(race_check(&criteria("identifier:not=a", "t").unwrap()).is_none());
        assert!(criteria("", "t").is_err());
        assert!(criteria("_format=json", "t").is_err());
        assert!(criteria("name=x&_count=1", "t").is_err());
    }
}
