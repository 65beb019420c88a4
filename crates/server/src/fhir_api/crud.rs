//! The instance and type interactions: create, read, vread, update, patch, delete.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::types::{StoreError, Stored};
use fhir::{Issue, IssueType};
use serde_json::{Map, Value};

use super::request::{self, Ask, JSON_PATCH, require_id, require_supported};
use super::response::{self, Return, etag, location};
use crate::AppState;
use crate::audit::Interaction;
use crate::authz::{Caller, Guard};
use crate::error::{ApiError, ApiResult};

/// How often an update without `If-Match` is retried when another write got in first
/// (retries back off a little, see [`backoff`], so that many writers to one resource take
/// turns instead of colliding again).
pub(crate) use domain::records::MAX_RETRIES;
pub(crate) use domain::records::{deletion, stamp as prepare};

/// Sleeps a short, growing, jittered time before retry number `attempt` (from 1).
pub(crate) async fn backoff(attempt: u32) {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 8;
    let ms = u64::from(attempt.min(8)) + jitter;
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// `POST /fhir/{type}`.
pub async fn create(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    request::require_media_type(&headers, request::RESOURCE_MEDIA_TYPES)?;
    let bytes = request::read_body(&headers, body, st.config.max_body_bytes).await?;
    domain::guard::one_large_at_a_time(bytes.len(), async {
        let map = request::parse_resource(&bytes)?;
        create_resource(
            &st,
            &caller,
            &resource_type,
            map,
            &Ask::from_headers(&headers),
        )
        .await
    })
    .await
}

/// Create (and conditional create, `ask.if_none_exist`).
pub async fn create_resource(
    st: &AppState,
    caller: &Caller,
    resource_type: &str,
    map: Map<String, Value>,
    ask: &Ask,
) -> ApiResult<Response> {
    let resource_type = resource_type.to_owned();
    require_supported(&resource_type)?;
    request::require_type(&map, &resource_type)?;
    let mut map = request::with_sections(request::validate(st, map)?, None);
    // The server assigns ids: a client-sent one plays no part in the decision either.
    map.remove("id");
    let mut guard = Guard::new(st, caller);
    let new = Value::Object(map);
    guard
        .write(access::Action::Create, &resource_type, "", None, Some(&new))
        .await?;
    let Value::Object(map) = new else {
        unreachable!("built from a map above")
    };
    let mut condition = None;
    if let Some(query) = ask.if_none_exist.as_deref() {
        let criteria = super::matching::criteria(query, "If-None-Exist")?;
        // A search first, as the caller sees it (see `conditional`); simple tokens are
        // checked again inside the write's transaction, unless a hidden resource matches
        // (it plays no part, so it must not trip the check either).
        let m = super::matching::visible_matches(
            &mut guard,
            &resource_type,
            &criteria,
            &Default::default(),
        )
        .await?;
        if !m.visible.is_empty() {
            return create_matched(&mut guard, &resource_type, m.visible, ask.ret).await;
        }
        super::matching::refuse_hidden_passport(&guard, &resource_type, &m)?;
        if !m.hidden {
            condition = super::matching::race_check(&criteria);
        }
    }
    // A client-sent id is ignored on create: the server assigns ids (time-ordered, so
    // inserts land at the right-hand edge of the index).
    let id = uuid::Uuid::now_v7().to_string();
    let mut write = prepare(&resource_type, &id, map, None);
    write.unless_exists = condition;
    let audit = crate::authz::audit::written(st, &guard, Interaction::Create, &write);
    write.audit.extend(audit.records);
    match st.domain.records().store_one(write).await {
        Ok(stored) => Ok(audit.note.attach(response::written(
            StatusCode::CREATED,
            &stored,
            Some(location(st, &stored)),
            ask.ret,
            "created",
        ))),
        // A match committed meanwhile (it was visible to the search's caller or absent).
        Err(StoreError::ConditionMatched(ids)) => {
            create_matched(&mut guard, &resource_type, ids, ask.ret).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The answer to an `If-None-Exist` that matched: one match is 200 with the existing
/// resource (the spec's answer), several a 412.
async fn create_matched(
    guard: &mut Guard<'_>,
    resource_type: &str,
    ids: Vec<String>,
    ret: Return,
) -> ApiResult<Response> {
    let st = guard.st;
    let [id] = ids.as_slice() else {
        return Err(ApiError::PreconditionFailed(format!(
            "If-None-Exist matched {} resources; it must match at most one",
            super::matching::several(ids.len())
        )));
    };
    let existing = st
        .domain
        .records()
        .read(resource_type, id)
        .await?
        .filter(|s| !s.deleted)
        .ok_or_else(|| ApiError::Conflict("the matching resource vanished; retry".into()))?;
    // The match is shown only to someone who may read it; to anyone else the create is
    // refused without saying why (a 412 would tell them something exists).
    if guard
        .readable(access::Action::Read, &existing.body)
        .await?
        .is_none()
    {
        return Err(ApiError::Forbidden(
            "you may not create this resource here".into(),
        ));
    }
    Ok(
        crate::authz::audit::Note::read(guard, Interaction::Read, &existing).attach(
            response::written(
                StatusCode::OK,
                &existing,
                Some(location(st, &existing)),
                ret,
                "a matching resource already exists",
            ),
        ),
    )
}

/// `GET /fhir/{type}/{id}`.
pub async fn read(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    request::check_accept(&headers)?;
    read_resource(
        &st,
        &caller,
        &resource_type,
        &id,
        &Ask::from_headers(&headers),
    )
    .await
}

/// Read (304 when `ask.if_none_match` names the current version).
pub async fn read_resource(
    st: &AppState,
    caller: &Caller,
    resource_type: &str,
    id: &str,
    ask: &Ask,
) -> ApiResult<Response> {
    require_supported(resource_type)?;
    let mut guard = Guard::new(st, caller);
    guard.require_scope(resource_type, access::Action::Read)?;
    let mut stored = current(&mut guard, resource_type, id).await?;
    stored.body = guard
        .read(access::Action::Read, resource_type, id, &stored.body)
        .await?;
    let note = crate::authz::audit::Note::read(&guard, Interaction::Read, &stored);
    if ask.if_none_match()? == Some(stored.version_id) {
        return Ok(note.attach(
            (StatusCode::NOT_MODIFIED, response::version_headers(&stored)).into_response(),
        ));
    }
    Ok(note.attach(response::resource(StatusCode::OK, &stored)))
}

/// The current, non-deleted version (404 if never created, 410 if deleted). A deletion is
/// reported only to someone who could read the version it deleted: to anyone else the
/// resource never existed.
async fn current(guard: &mut Guard<'_>, resource_type: &str, id: &str) -> ApiResult<Stored> {
    let st = guard.st;
    match st.domain.records().read(resource_type, id).await? {
        None => Err(not_found(resource_type, id)),
        Some(s) if s.deleted => {
            if !deletion_visible(guard, &s).await? {
                return Err(not_found(resource_type, id));
            }
            Err(ApiError::Gone {
                message: format!("{resource_type}/{id} was deleted"),
                etag: Some(etag(s.version_id)),
            })
        }
        Some(s) => Ok(s),
    }
}

pub(crate) use crate::authz::not_found;

/// The body of the version a deletion deleted (the one before it), if any.
pub(crate) async fn deleted_body(st: &AppState, deletion: &Stored) -> ApiResult<Option<Bytes>> {
    let Some(v) = deletion.version_id.checked_sub(1).filter(|v| *v > 0) else {
        return Ok(None);
    };
    Ok(st
        .domain
        .records()
        .vread(&deletion.resource_type, &deletion.id, v)
        .await?
        .filter(|b| !b.deleted)
        .map(|b| b.body))
}

/// Refuses a write over a deleted id whose history the caller may not see: exactly the
/// not-found a hidden live resource gets. A deleted id is restored (updated again) only by
/// someone who may read what it last held; an id never used may still be created by
/// update (ids are UUIDs, not guessable: docs/SECURITY.md §15).
pub(crate) async fn refuse_hidden_history(
    guard: &mut Guard<'_>,
    existing: Option<&Stored>,
) -> ApiResult<()> {
    if let Some(e) = existing.filter(|e| e.deleted)
        && !deletion_visible(guard, e).await?
    {
        return Err(not_found(&e.resource_type, &e.id));
    }
    Ok(())
}

/// Refuses a new version that would put a resource in another child's record than its
/// earlier versions (`existing`: the current version, or a deletion, whose deleted content
/// is compared): every version of a resource belongs to the same children. Someone who may
/// read the old content is told (409); anyone else gets the not-found a hidden resource
/// gets, so the refusal says nothing about whose it was.
pub(crate) async fn refuse_other_child(
    guard: &mut Guard<'_>,
    existing: Option<&Stored>,
    new: &Value,
) -> ApiResult<()> {
    let Some(existing) = existing else {
        return Ok(());
    };
    let old = if existing.deleted {
        deleted_body(guard.st, existing).await?
    } else {
        Some(existing.body.clone())
    };
    let Some(old) = old else {
        return Ok(());
    };
    let old_value: Value = serde_json::from_slice(&old).unwrap_or(Value::Null);
    if fhir::compartment::patients_of(&old_value) == fhir::compartment::patients_of(new) {
        return Ok(());
    }
    if guard.readable(access::Action::Read, &old).await?.is_none() {
        return Err(not_found(&existing.resource_type, &existing.id));
    }
    Err(ApiError::Conflict(format!(
        "{}/{} belongs to another child's record (its subject or patient differs); an update cannot move it — create a new resource instead",
        existing.resource_type, existing.id
    )))
}

/// A deletion is shown (as 410 Gone, or in a history) only to someone who could read
/// what it deleted; to anyone else the resource never existed.
pub(crate) async fn deletion_visible(guard: &mut Guard<'_>, deletion: &Stored) -> ApiResult<bool> {
    Ok(match deleted_body(guard.st, deletion).await? {
        Some(b) => guard.readable(access::Action::Read, &b).await?.is_some(),
        None => false,
    })
}

/// `GET /fhir/{type}/{id}/_history/{version}`.
pub async fn vread(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path((resource_type, id, version)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    request::check_accept(&headers)?;
    vread_resource(&st, &caller, &resource_type, &id, &version).await
}

/// Vread: one version, as the caller may see it.
pub async fn vread_resource(
    st: &AppState,
    caller: &Caller,
    resource_type: &str,
    id: &str,
    version: &str,
) -> ApiResult<Response> {
    let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
    require_supported(&resource_type)?;
    let version: i64 = version.parse().map_err(|_| {
        ApiError::NotFound(format!("{resource_type}/{id} has no version '{version}'"))
    })?;
    let mut guard = Guard::new(st, caller);
    guard.require_scope(&resource_type, access::Action::Read)?;
    let missing = || ApiError::NotFound(format!("{resource_type}/{id} has no version {version}"));
    match st
        .domain
        .records()
        .vread(&resource_type, &id, version)
        .await?
    {
        None => Err(missing()),
        Some(s) if s.deleted => {
            if !deletion_visible(&mut guard, &s).await? {
                return Err(missing());
            }
            Err(ApiError::Gone {
                message: format!("version {version} of {resource_type}/{id} is its deletion"),
                etag: Some(etag(version)),
            })
        }
        Some(mut s) => {
            s.body = guard
                .readable(access::Action::Read, &s.body)
                .await?
                .ok_or_else(missing)?;
            let note = crate::authz::audit::Note::read(&guard, Interaction::Vread, &s);
            Ok(note.attach(response::resource(StatusCode::OK, &s)))
        }
    }
}

/// `PUT /fhir/{type}/{id}`.
pub async fn update(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    require_id(&id)?;
    request::require_media_type(&headers, request::RESOURCE_MEDIA_TYPES)?;
    let bytes = request::read_body(&headers, body, st.config.max_body_bytes).await?;
    domain::guard::one_large_at_a_time(bytes.len(), async {
        let map = request::parse_resource(&bytes)?;
        update_resource(
            &st,
            &caller,
            &resource_type,
            &id,
            map,
            &Ask::from_headers(&headers),
        )
        .await
    })
    .await
}

/// Update (or create with a client-chosen id), `ask.if_match` the version it replaces.
pub async fn update_resource(
    st: &AppState,
    caller: &Caller,
    resource_type: &str,
    id: &str,
    map: Map<String, Value>,
    ask: &Ask,
) -> ApiResult<Response> {
    let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
    require_supported(&resource_type)?;
    require_id(&id)?;
    request::require_type(&map, &resource_type)?;
    match map.get("id").and_then(Value::as_str) {
        Some(body_id) if body_id == id => {}
        Some(body_id) => {
            return Err(ApiError::bad_request(
                "id",
                format!("the body's id '{body_id}' does not match the URL's id '{id}'"),
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "id",
                "an update must carry the resource's id in the body",
            ));
        }
    }
    let map = request::validate(st, map)?;
    let wanted = ask.if_match()?;
    let mut guard = Guard::new(st, caller);
    write_with_retry(
        &mut guard,
        &resource_type,
        &id,
        wanted,
        ask.ret,
        Interaction::Update,
        |_current| Ok(map.clone()),
    )
    .await
}

/// `PATCH /fhir/{type}/{id}` (JSON Patch).
pub async fn patch(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    request::require_media_type(&headers, &[JSON_PATCH])?;
    let bytes = request::read_body(&headers, body, st.config.max_body_bytes).await?;
    let ops: json_patch::Patch = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("", format!("the body is not a JSON Patch document: {e}"))
    })?;
    patch_resource(
        &st,
        &caller,
        &resource_type,
        &id,
        ops,
        &Ask::from_headers(&headers),
    )
    .await
}

/// Patch: `ops` applied to the current version, `ask.if_match` the version it replaces.
pub async fn patch_resource(
    st: &AppState,
    caller: &Caller,
    resource_type: &str,
    id: &str,
    ops: json_patch::Patch,
    ask: &Ask,
) -> ApiResult<Response> {
    require_supported(resource_type)?;
    let wanted = ask.if_match()?;
    let (rt, rid) = (resource_type.to_owned(), id.to_owned());
    let mut guard = Guard::new(st, caller);
    write_with_retry(
        &mut guard,
        resource_type,
        id,
        wanted,
        ask.ret,
        Interaction::Patch,
        move |current| {
            let Some(current) = current else {
                return Err(not_found(&rt, &rid));
            };
            let mut doc: Value = serde_json::from_slice(&current.body).map_err(|e| {
                ApiError::Store(StoreError::Backend(format!("stored body unreadable: {e}")))
            })?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::Unprocessable(vec![Issue::error(
                    IssueType::Processing,
                    "",
                    format!("the patch could not be applied: {e}"),
                )])
            })?;
            let Value::Object(map) = doc else {
                return Err(ApiError::Unprocessable(vec![Issue::error(
                    IssueType::Processing,
                    "",
                    "the patch must leave a resource (a JSON object)",
                )]));
            };
            if map.get("resourceType").and_then(Value::as_str) != Some(rt.as_str())
                || map.get("id").and_then(Value::as_str) != Some(rid.as_str())
            {
                return Err(ApiError::Unprocessable(vec![Issue::error(
                    IssueType::Processing,
                    "",
                    "a patch may not change the resource's type or id",
                )]));
            }
            request::validate(st, map)
        },
    )
    .await
}

/// Reads the current version, builds the next from it (`next` gets `None` if the resource
/// has never existed or is deleted), and writes it naming the version it replaces. With
/// `If-Match`, a mismatch (now or at commit) is a 412; without it, a write that lost a race
/// is rebuilt from the newer version and tried again.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_with_retry(
    guard: &mut Guard<'_>,
    resource_type: &str,
    id: &str,
    wanted: Option<i64>,
    ret: Return,
    interaction: Interaction,
    next: impl Fn(Option<&Stored>) -> ApiResult<Map<String, Value>>,
) -> ApiResult<Response> {
    let st = guard.st;
    for attempt in 0..MAX_RETRIES {
        if attempt > 0 {
            backoff(attempt).await;
        }
        let existing = st.domain.records().read(resource_type, id).await?;
        let live = existing.as_ref().filter(|s| !s.deleted);
        // The version check sees a hidden resource as missing (a 412 naming its version, or
        // a 404 where a missing one gets a 412, would tell that it exists); without
        // `If-Match`, one the caller may not touch (or a deletion it may not see) is not
        // found.
        let current = visible_version(guard, access::Action::Update, existing.as_ref()).await?;
        if let Some(w) = wanted
            && current != Some(w)
        {
            return Err(precondition_failed(resource_type, id, w, current));
        }
        if existing.is_some() && current.is_none() {
            return Err(crate::authz::not_found(resource_type, id));
        }
        let map = request::with_sections(next(live)?, live);
        let new = Value::Object(map);
        refuse_other_child(guard, existing.as_ref(), &new).await?;
        let created = live.is_none();
        let action = if created {
            access::Action::Create
        } else {
            access::Action::Update
        };
        guard
            .write(action, resource_type, id, live.map(|l| &l.body), Some(&new))
            .await?;
        let Value::Object(map) = new else {
            unreachable!("built from a map above")
        };
        let mut write = prepare(resource_type, id, map, existing.as_ref());
        let interaction = if created {
            Interaction::Create
        } else {
            interaction
        };
        let audit = crate::authz::audit::written(st, guard, interaction, &write);
        write.audit.extend(audit.records);
        match st.domain.records().store_one(write).await {
            Ok(stored) => {
                let (status, message) = if created {
                    (StatusCode::CREATED, "created")
                } else {
                    (StatusCode::OK, "updated")
                };
                let loc = created.then(|| location(st, &stored));
                return Ok(audit
                    .note
                    .attach(response::written(status, &stored, loc, ret, message)));
            }
            Err(StoreError::VersionConflict { current }) => {
                if let Some(w) = wanted {
                    return Err(precondition_failed(resource_type, id, w, current));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(format!(
        "{resource_type}/{id} is being changed by others too often; try again"
    )))
}

/// The version an `If-Match` is compared with: the current one, or none when the resource
/// is missing or hidden from the caller (a live one it may not read or `action`, a deletion
/// it may not see) — so a hidden resource answers exactly as a missing one.
pub(crate) async fn visible_version(
    guard: &mut Guard<'_>,
    action: access::Action,
    existing: Option<&Stored>,
) -> ApiResult<Option<i64>> {
    Ok(match existing {
        Some(e) if !e.deleted => crate::authz::may_touch(guard, action, &e.body)
            .await?
            .then_some(e.version_id),
        Some(e) => deletion_visible(guard, e).await?.then_some(e.version_id),
        None => None,
    })
}

pub(crate) fn precondition_failed(
    resource_type: &str,
    id: &str,
    wanted: i64,
    current: Option<i64>,
) -> ApiError {
    ApiError::PreconditionFailed(match current {
        Some(c) => format!(
            "{resource_type}/{id} is at version {c}, not {wanted}: someone else changed it; read it again and reapply your change"
        ),
        None => format!("{resource_type}/{id} does not exist, so it cannot be at version {wanted}"),
    })
}

/// `DELETE /fhir/{type}/{id}`.
pub async fn delete(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    delete_resource(
        &st,
        &caller,
        &resource_type,
        &id,
        &Ask::from_headers(&headers),
    )
    .await
}

/// Delete, `ask.if_match` the version it deletes.
pub async fn delete_resource(
    st: &AppState,
    caller: &Caller,
    resource_type: &str,
    id: &str,
    ask: &Ask,
) -> ApiResult<Response> {
    let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
    require_supported(&resource_type)?;
    let wanted = ask.if_match()?;
    let mut guard = Guard::new(st, caller);
    for attempt in 0..MAX_RETRIES {
        if attempt > 0 {
            backoff(attempt).await;
        }
        let existing = st.domain.records().read(&resource_type, &id).await?;
        // A hidden resource answers `If-Match` exactly as a missing one.
        if let Some(w) = wanted {
            let current =
                visible_version(&mut guard, access::Action::Delete, existing.as_ref()).await?;
            if current != Some(w) {
                return Err(precondition_failed(&resource_type, &id, w, current));
            }
        }
        if let Some(e) = existing.as_ref().filter(|e| !e.deleted) {
            guard
                .write(
                    access::Action::Delete,
                    &resource_type,
                    &id,
                    Some(&e.body),
                    None,
                )
                .await?;
        } else if existing.is_some() {
            // Already deleted: say so only to someone who could read what was deleted.
            current(&mut guard, &resource_type, &id)
                .await
                .or_else(|e| match e {
                    ApiError::Gone { .. } => Ok(existing.clone().expect("checked above")),
                    other => Err(other),
                })?;
        }
        let Some(existing) = existing else {
            return Err(not_found(&resource_type, &id));
        };
        if existing.deleted {
            // Deleting twice changes nothing and makes no new version.
            return Ok(response::written(
                StatusCode::OK,
                &existing,
                None,
                Return::OperationOutcome,
                "already deleted",
            ));
        }
        let mut write = deletion(&existing);
        let audit = crate::authz::audit::written(st, &guard, Interaction::Delete, &write);
        write.audit.extend(audit.records);
        match st.domain.records().store_one(write).await {
            Ok(stored) => {
                return Ok(audit.note.attach(response::written(
                    StatusCode::OK,
                    &stored,
                    None,
                    Return::OperationOutcome,
                    &format!("{resource_type}/{id} deleted"),
                )));
            }
            Err(StoreError::VersionConflict { current }) => {
                if let Some(w) = wanted {
                    return Err(precondition_failed(&resource_type, &id, w, current));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(format!(
        "{resource_type}/{id} is being changed by others too often; try again"
    )))
}

#[cfg(test)]
mod tests {
    use super::super::matching::{criteria, race_check};
    use domain::types::SystemMatch;

    #[test]
    fn conditions() {
        // If-None-Exist: simple tokens go to the store's in-transaction check; anything
        // else is a search (see `conditional`).
        let tokens = |q: &str| criteria(q, "If-None-Exist").map(|c| race_check(&c));
        let c = tokens("identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number|9990000018")
            .unwrap()
            .unwrap();
        assert_eq!(
            c[0].system,
            SystemMatch::Is("https://fhir.nhs.uk/Id/nhs-number".into())
        );
        assert_eq!(c[0].code, "9990000018");
        let c = tokens("Patient?identifier=|x&_id=y").unwrap().unwrap();
        assert_eq!(c[0].system, SystemMatch::Absent);
        assert_eq!(c[1].param, "_id");
        assert!(tokens("name=smith").unwrap().is_none());
        assert!(tokens("").is_err());
    }
}
