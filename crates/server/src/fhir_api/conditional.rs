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
use domain::types::StoreError;
use serde_json::{Map, Value};

use crate::audit::Interaction;
use crate::authz::{Caller, Guard};

use super::crud;
use super::matching::{criteria, race_check, refuse_hidden_passport, several, visible_matches};
use super::request::require_supported;
use super::request::{self, Ask};
use super::response;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

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
    criteria(&query, "conditional update")?;
    request::require_media_type(&headers, request::RESOURCE_MEDIA_TYPES)?;
    let bytes = request::read_body(&headers, body, st.config.max_body_bytes).await?;
    domain::guard::one_large_at_a_time(bytes.len(), async {
        let map = request::parse_resource(&bytes)?;
        update_matching(
            &st,
            &caller,
            &resource_type,
            Some(query),
            map,
            &Ask::from_headers(&headers),
        )
        .await
    })
    .await
}

/// Conditional update: the resource matching `query` (see the module documentation).
pub async fn update_matching(
    st: &AppState,
    caller: &Caller,
    resource_type: &str,
    query: Option<String>,
    map: Map<String, Value>,
    ask: &Ask,
) -> ApiResult<Response> {
    let resource_type = resource_type.to_owned();
    require_supported(&resource_type)?;
    let query = require_query(query, "update")?;
    let conditions = criteria(&query, "conditional update")?;
    let tokens = race_check(&conditions);
    request::require_type(&map, &resource_type)?;
    let body_id = map.get("id").and_then(Value::as_str).map(str::to_owned);
    if let Some(id) = &body_id {
        request::require_id(id)?;
    }
    let map = request::validate(st, map)?;
    let wanted = ask.if_match()?;
    let ret = ask.ret;
    let mut guard = Guard::new(st, caller);
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
                let audit = crate::authz::audit::written(st, &guard, Interaction::Create, &write);
                write.audit.extend(audit.records);
                match st.domain.records().store_one(write).await {
                    Ok(stored) => {
                        let loc = response::location(st, &stored);
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
    delete_matching(
        &st,
        &caller,
        &resource_type,
        query,
        &Ask::from_headers(&headers),
    )
    .await
}

/// Conditional delete: the one resource matching `query` (several: 412).
pub async fn delete_matching(
    st: &AppState,
    caller: &Caller,
    resource_type: &str,
    query: Option<String>,
    ask: &Ask,
) -> ApiResult<Response> {
    require_supported(resource_type)?;
    let query = require_query(query, "delete")?;
    let conditions = criteria(&query, "conditional delete")?;
    let mut guard = Guard::new(st, caller);
    let ids = visible_matches(&mut guard, resource_type, &conditions, &Default::default())
        .await?
        .visible;
    match ids.as_slice() {
        [] => Ok(StatusCode::NO_CONTENT.into_response()),
        [id] => crud::delete_resource(st, caller, resource_type, id, ask).await,
        many => Err(ApiError::PreconditionFailed(format!(
            "the condition matches {} {resource_type} resources; this server deletes one at a time (conditionalDelete: single)",
            several(many.len())
        ))),
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
