//! Conditional interactions: the criteria of `If-None-Exist`, conditional update
//! (`PUT /fhir/{type}?query`) and conditional delete (`DELETE /fhir/{type}?query`), and the
//! matching both they and transaction bundles use.
//!
//! Until general search lands, the criteria a condition can use are `identifier` and
//! `_id` (tokens, `[system|]code`, all of which must match); any other parameter is refused
//! with 400 rather than ignored, since ignoring a criterion would update or delete the
//! wrong resource (or create a duplicate). `_format` is not a criterion and is skipped.
//!
//! R4 rules (http.html#cond-update, #cdelete):
//! * update — no match: a create (with the body's id if it has one and that id has never
//!   been used, 409 if it has; a server id otherwise); one match: an update of that one (a
//!   body id must be the match's); several: 412.
//! * delete — no match: nothing to delete, 204; one: an ordinary delete of it; several: 412
//!   (this server deletes one resource at a time: `conditionalDelete: single`).
//!
//! The match and the write are two steps: a resource changing between them is handled by
//! the write's own version check (an update names the version it replaces), and a create
//! after no match carries the criteria to the store, which refuses it if a match appeared
//! meanwhile (then the whole decision is taken again).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use passport_store::{StoreError, SystemMatch, TokenCriterion};
use serde_json::Value;

use super::crud::{self, require_supported};
use super::request;
use super::response::{self, Return};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Parses a condition's query (`identifier=sys|val&_id=x`; a leading `Type?` or `?` is
/// allowed). `what` names the condition in error messages (e.g. "If-None-Exist").
pub fn criteria(query: &str, what: &str) -> ApiResult<Vec<TokenCriterion>> {
    let query = query.trim_start_matches('?');
    let query = query.split_once('?').map_or(query, |(_, q)| q);
    let mut out = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "_format" {
            continue;
        }
        if name != "identifier" && name != "_id" {
            return Err(ApiError::bad_request(
                "",
                format!("{what}: parameter '{name}' is not supported (use identifier or _id)"),
            ));
        }
        if value.contains(',') {
            return Err(ApiError::bad_request(
                "",
                format!("{what}: '{name}' with several values (a,b) is not supported"),
            ));
        }
        let (system, code) = match value.split_once('|') {
            None => (SystemMatch::Any, value.to_string()),
            Some(("", code)) => (SystemMatch::Absent, code.to_owned()),
            Some((system, code)) => (SystemMatch::Is(system.to_owned()), code.to_owned()),
        };
        if code.is_empty() {
            return Err(ApiError::bad_request(
                "",
                format!("{what}: '{name}' needs a value"),
            ));
        }
        out.push(TokenCriterion {
            param: name.into_owned(),
            system,
            code,
        });
    }
    if out.is_empty() {
        return Err(ApiError::bad_request(
            "",
            format!("{what}: the condition is empty"),
        ));
    }
    Ok(out)
}

/// Ids of the current, non-deleted resources of `resource_type` matching `query` (every
/// criterion). 400 for criteria this server cannot evaluate.
pub async fn matching_ids(
    st: &AppState,
    resource_type: &str,
    query: &str,
) -> ApiResult<Vec<String>> {
    let c = criteria(query, "condition")?;
    Ok(st.store.find_by_tokens(resource_type, &c).await?)
}

/// `PUT /fhir/{type}?query`.
pub async fn update(
    State(st): State<Arc<AppState>>,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    let query = require_query(query, "update")?;
    let conditions = criteria(&query, "conditional update")?;
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
    for attempt in 0..crud::MAX_RETRIES {
        if attempt > 0 {
            crud::backoff(attempt).await;
        }
        let ids = st.store.find_by_tokens(&resource_type, &conditions).await?;
        match ids.as_slice() {
            [] => {
                if wanted.is_some() {
                    return Err(ApiError::PreconditionFailed(format!(
                        "If-Match names a version, but no {resource_type} matches the condition"
                    )));
                }
                let id = match &body_id {
                    Some(id) => {
                        if st.store.read(&resource_type, id).await?.is_some() {
                            return Err(ApiError::Conflict(format!(
                                "no {resource_type} matches the condition, but the body's id '{id}' is already taken by a resource that does not match"
                            )));
                        }
                        id.clone()
                    }
                    None => uuid::Uuid::now_v7().to_string(),
                };
                let mut write = crud::prepare(&resource_type, &id, map.clone(), None);
                write.unless_exists = Some(conditions.clone());
                match st.store.write(write).await {
                    Ok(stored) => {
                        let loc = crud::location(&st, &stored);
                        return Ok(response::written(
                            StatusCode::CREATED,
                            &stored,
                            Some(loc),
                            ret,
                            "created",
                        ));
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
                return crud::write_with_retry(&st, &resource_type, id, wanted, ret, |_| {
                    Ok(map.clone())
                })
                .await;
            }
            many => {
                return Err(ApiError::PreconditionFailed(format!(
                    "the condition matches {} {resource_type} resources; it must match at most one",
                    many.len()
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
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    let query = require_query(query, "delete")?;
    let ids = matching_ids(&st, &resource_type, &query).await?;
    match ids.as_slice() {
        [] => Ok(StatusCode::NO_CONTENT.into_response()),
        [id] => {
            crud::delete(
                State(st.clone()),
                Path((resource_type, id.clone())),
                headers,
            )
            .await
        }
        many => Err(ApiError::PreconditionFailed(format!(
            "the condition matches {} {resource_type} resources; this server deletes one at a time (conditionalDelete: single)",
            many.len()
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
        assert_eq!(
            c[0].system,
            SystemMatch::Is("https://fhir.nhs.uk/Id/nhs-number".into())
        );
        assert_eq!(c[0].code, "9990000018");
        let c = criteria("Patient?identifier=|x&_id=y&_format=json", "t").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].system, SystemMatch::Absent);
        assert_eq!(c[1].param, "_id");
        assert!(criteria("name=smith", "t").is_err());
        assert!(criteria("identifier=a,b", "t").is_err());
        assert!(criteria("", "t").is_err());
        assert!(criteria("_format=json", "t").is_err());
    }
}
