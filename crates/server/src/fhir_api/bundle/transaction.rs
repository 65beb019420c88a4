//! A transaction: every entry planned against the same versions, then all the writes in
//! one store transaction.

use super::*;

/// What a transaction entry comes to.
pub(super) enum Plan {
    /// A version to write: the resource (`None` for a deletion) and what it replaces.
    Write {
        resource_type: String,
        id: String,
        resource: Option<Map<String, Value>>,
        existing: Option<Stored>,
        unless_exists: Option<Vec<TokenCriterion>>,
    },
    /// Nothing to write; answer with this version (a conditional create that matched, a
    /// delete of something already deleted).
    Found(Stored, StatusCode, &'static str),
    /// Nothing to write or read (a conditional delete that matched nothing).
    Nothing(StatusCode, &'static str),
    /// A GET/HEAD, run after the commit.
    Read,
}

/// `Failed::index` when the transaction as a whole failed (the database, a shutdown).
pub(super) const WHOLE: usize = usize::MAX;

/// A failed attempt: the entry (or [`WHOLE`]), the error, and whether planning again could
/// succeed.
pub(super) struct Failed {
    index: usize,
    error: ApiError,
    retry: bool,
}

pub(super) fn fail(index: usize, error: ApiError) -> Failed {
    Failed {
        index,
        error,
        retry: false,
    }
}

pub(super) async fn transaction(
    st: &Arc<AppState>,
    caller: &Arc<Caller>,
    raw: &[Value],
    ret: Return,
) -> ApiResult<Response> {
    let mut entries = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        match parse_entry(st, v) {
            Ok(e) => entries.push(e),
            Err(err) => {
                let label = v
                    .get("request")
                    .map(|r| {
                        format!(
                            "{} {}",
                            r.get("method").and_then(Value::as_str).unwrap_or("?"),
                            r.get("url").and_then(Value::as_str).unwrap_or("?")
                        )
                    })
                    .unwrap_or_else(|| "no request".into());
                return Ok(entry_failure(i, &label, err).await);
            }
        }
    }
    let mut attempt = 0;
    let (plans, stored) = loop {
        if attempt > 0 {
            crud::backoff(attempt).await;
        }
        attempt += 1;
        match attempt_transaction(st, caller, &entries).await {
            Ok(done) => break done,
            Err(f) if f.retry && attempt < MAX_TRANSACTION_RETRIES => continue,
            Err(f) if f.index == WHOLE => return Err(f.error),
            Err(mut f) => {
                if f.retry {
                    f.error = ApiError::Conflict(
                        "the resources this transaction changes are being changed by others too often; try again".into(),
                    );
                }
                return Ok(entry_failure(f.index, &entries[f.index].label(), f.error).await);
            }
        }
    };
    let mut stored = stored.into_iter();
    let mut out = Vec::with_capacity(entries.len());
    for (e, plan) in entries.iter().zip(plans) {
        out.push(match plan {
            Plan::Write {
                existing, resource, ..
            } => {
                let s = stored.next().expect("one stored version per write");
                let created = existing.as_ref().is_none_or(|x| x.deleted);
                let (status, message) = match (resource.is_some(), created) {
                    (false, _) => (StatusCode::OK, "deleted"),
                    (true, true) => (StatusCode::CREATED, "created"),
                    (true, false) => (StatusCode::OK, "updated"),
                };
                EntryOut::stored(st, &s, status, ret, message)
            }
            Plan::Found(s, status, message) => EntryOut::stored(st, &s, status, ret, message),
            Plan::Nothing(status, message) => EntryOut {
                status: status_text(status),
                outcome: (ret != Return::Minimal)
                    .then(|| outcome_bytes(&[Issue::information(message)])),
                ..Default::default()
            },
            Plan::Read => {
                EntryOut::from_response(st, Some(e), execute(st, caller, e, ret).await).await
            }
        });
    }
    Ok(bundle_response("transaction-response", &out))
}

/// Plans every entry against the current state, rewrites references, validates, and
/// commits the writes in one `write_all`. Returns the plans (in entry order) and the
/// versions stored (in the order of the `Plan::Write`s among them).
pub(super) async fn attempt_transaction(
    st: &AppState,
    caller: &Caller,
    entries: &[Entry],
) -> Result<(Vec<Plan>, Vec<Stored>), Failed> {
    let mut guard = Guard::new(st, caller);
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (entries[i].method.order(), i));

    let mut plans: Vec<Option<Plan>> = (0..entries.len()).map(|_| None).collect();
    // fullUrl → `Type/id`.
    let mut resolved: HashMap<String, String> = HashMap::new();
    // (type, id) → the entry changing it.
    let mut touched: HashMap<(String, String), usize> = HashMap::new();
    let mut deleted: HashSet<(String, String)> = HashSet::new();

    for &i in &order {
        let e = &entries[i];
        let plan = plan_entry(&mut guard, e, &deleted)
            .await
            .map_err(|f| Failed { index: i, ..f })?;
        if let Plan::Write {
            resource_type,
            id,
            resource,
            ..
        } = &plan
        {
            let key = (resource_type.clone(), id.clone());
            if let Some(&j) = touched.get(&key) {
                return Err(fail(
                    i,
                    ApiError::bad_request(
                        "request.url",
                        format!(
                            "{resource_type}/{id} is changed by entry {j} too; a transaction may change a resource once"
                        ),
                    ),
                ));
            }
            touched.insert(key.clone(), i);
            if resource.is_none() {
                deleted.insert(key);
            }
        }
        let target = match &plan {
            Plan::Write {
                resource_type,
                id,
                resource: Some(_),
                ..
            } => Some(format!("{resource_type}/{id}")),
            Plan::Found(s, ..) => Some(format!("{}/{}", s.resource_type, s.id)),
            _ => None,
        };
        if let (Some(full), Some(target)) = (&e.full_url, target) {
            resolved.insert(full.clone(), target);
        }
        plans[i] = Some(plan);
    }
    let mut plans: Vec<Plan> = plans
        .into_iter()
        .map(|p| p.expect("every entry planned"))
        .collect();

    // References, then validation, then stamping — in processing order.
    let mut conditional_refs: HashMap<String, ApiResult<String>> = HashMap::new();
    let mut writes: Vec<Write> = Vec::new();
    let mut write_entries: Vec<usize> = Vec::new();
    for &i in &order {
        let Plan::Write {
            resource_type,
            id,
            resource,
            existing,
            unless_exists,
        } = &mut plans[i]
        else {
            continue;
        };
        // Each entry is decided on its own, and audited for its own children.
        guard.patients.clear();
        let live = existing.as_ref().filter(|x| !x.deleted);
        let mut write = match resource.take() {
            None => {
                let old = existing.as_ref().expect("a deletion replaces a version");
                guard
                    .write(
                        access::Action::Delete,
                        resource_type,
                        id,
                        Some(&old.body),
                        None,
                    )
                    .await
                    .map_err(|e| fail(i, e.into()))?;
                crud::deletion(old)
            }
            Some(map) => {
                let mut v = Value::Object(map);
                let mut refs = Vec::new();
                for_each_reference(&mut v, &mut |s| {
                    refs.push(s.clone());
                    Ok(())
                })
                .map_err(|e| fail(i, e))?;
                for r in refs {
                    if resolved.contains_key(&r) || conditional_refs.contains_key(&r) {
                        continue;
                    }
                    if is_local_urn(&r) {
                        return Err(fail(
                            i,
                            ApiError::bad_request(
                                "resource",
                                format!(
                                    "'{r}' is not the fullUrl of any resource this transaction creates or updates"
                                ),
                            ),
                        ));
                    }
                    if let Some((t, q)) = r.split_once('?')
                        && !t.contains(':')
                        && !t.contains('/')
                    {
                        let answer =
                            resolve_conditional_reference(&mut guard, t, q, &deleted).await;
                        conditional_refs.insert(r.clone(), answer);
                    }
                }
                for_each_reference(&mut v, &mut |s| {
                    if let Some(to) = resolved.get(s.as_str()) {
                        *s = to.clone();
                    } else if let Some(answer) = conditional_refs.get(s.as_str()) {
                        match answer {
                            Ok(to) => *s = to.clone(),
                            Err(e) => return Err(clone_error(e)),
                        }
                    }
                    Ok(())
                })
                .map_err(|e| fail(i, e))?;
                let Value::Object(map) = v else {
                    unreachable!()
                };
                let map = request::validate(st, map).map_err(|e| fail(i, e))?;
                let map = request::with_sections(map, live);
                if let Some(l) = live
                    && !crate::authz::may_touch(&mut guard, access::Action::Update, &l.body)
                        .await
                        .map_err(|e| fail(i, e.into()))?
                {
                    return Err(fail(i, crate::authz::not_found(resource_type, id)));
                }
                crud::refuse_hidden_history(&mut guard, existing.as_ref())
                    .await
                    .map_err(|e| fail(i, e))?;
                let action = if live.is_some() {
                    access::Action::Update
                } else {
                    access::Action::Create
                };
                let new = Value::Object(map);
                crud::refuse_other_child(&mut guard, existing.as_ref(), &new)
                    .await
                    .map_err(|e| fail(i, e))?;
                guard
                    .write(action, resource_type, id, live.map(|l| &l.body), Some(&new))
                    .await
                    .map_err(|e| fail(i, e.into()))?;
                let Value::Object(map) = new else {
                    unreachable!()
                };
                let mut w = crud::prepare(resource_type, id, map, existing.as_ref());
                w.unless_exists = unless_exists.clone();
                // Keep a marker that this was not a deletion (for the response).
                *resource = Some(Map::new());
                w
            }
        };
        let interaction = match (write.deleted, live.is_some()) {
            (true, _) => Interaction::Delete,
            (false, true) => Interaction::Update,
            (false, false) => Interaction::Create,
        };
        let audit = crate::authz::audit::written(st, &guard, interaction, &write);
        write.audit.extend(audit.records);
        writes.push(write);
        write_entries.push(i);
    }
    // A conditional create that matched shows the match only to someone who may read it.
    for (i, plan) in plans.iter().enumerate() {
        if let Plan::Found(s, ..) = plan
            && !s.deleted
            && guard
                .readable(access::Action::Read, &s.body)
                .await
                .map_err(|e| fail(i, e.into()))?
                .is_none()
        {
            return Err(fail(
                i,
                ApiError::Forbidden("you may not create this resource here".into()),
            ));
        }
    }

    let stored = match st.domain.records().store_all(writes).await {
        Ok(s) => s,
        Err(WriteAllError {
            index: Some(k),
            error,
        }) => {
            let i = write_entries[k];
            let e = &entries[i];
            return Err(match error {
                StoreError::VersionConflict { current } if e.if_match.is_some() => {
                    let wanted = e.wanted().ok().flatten().unwrap_or(0);
                    let (t, id) = match &plans[i] {
                        Plan::Write {
                            resource_type, id, ..
                        } => (resource_type.clone(), id.clone()),
                        _ => (e.target.resource_type.clone(), String::new()),
                    };
                    fail(i, crud::precondition_failed(&t, &id, wanted, current))
                }
                StoreError::VersionConflict { .. } | StoreError::ConditionMatched(_) => Failed {
                    index: i,
                    error: ApiError::Conflict("changed concurrently".into()),
                    retry: true,
                },
                other => fail(i, other.into()),
            });
        }
        Err(WriteAllError { index: None, error }) => {
            return Err(fail(WHOLE, error.into()));
        }
    };
    // `stored` is in processing order; the response walks the entries in request order.
    let mut by_entry: HashMap<usize, Stored> = write_entries.into_iter().zip(stored).collect();
    let in_entry_order: Vec<Stored> = (0..entries.len())
        .filter_map(|i| by_entry.remove(&i))
        .collect();
    Ok((plans, in_entry_order))
}

/// `ApiError` is not `Clone`; a cached conditional-reference failure is rebuilt.
pub(super) fn clone_error(e: &ApiError) -> ApiError {
    match e {
        ApiError::NotFound(m) => ApiError::NotFound(m.clone()),
        ApiError::PreconditionFailed(m) => ApiError::PreconditionFailed(m.clone()),
        ApiError::BadRequest(i) => ApiError::BadRequest(i.clone()),
        other => ApiError::Conflict(other.to_string()),
    }
}

/// `Type?query` in a `Reference.reference` → `Type/id` of its one match.
pub(super) async fn resolve_conditional_reference(
    guard: &mut Guard<'_>,
    resource_type: &str,
    query: &str,
    deleted: &HashSet<(String, String)>,
) -> ApiResult<String> {
    let r = format!("{resource_type}?{query}");
    require_supported(resource_type)
        .map_err(|_| ApiError::bad_request("resource", format!("'{r}': unknown resource type")))?;
    let ids = live_matches(guard, resource_type, query, deleted)
        .await?
        .visible;
    match ids.as_slice() {
        [id] => Ok(format!("{resource_type}/{id}")),
        [] => Err(ApiError::NotFound(format!(
            "the conditional reference '{r}' matches no {resource_type}"
        ))),
        many => Err(ApiError::PreconditionFailed(format!(
            "the conditional reference '{r}' matches {} resources; it must match exactly one",
            matching::several(many.len())
        ))),
    }
}

/// Matches of a condition the caller may see, leaving out resources this transaction
/// deletes (see `matching::visible_matches`).
pub(super) async fn live_matches(
    guard: &mut Guard<'_>,
    resource_type: &str,
    query: &str,
    deleted: &HashSet<(String, String)>,
) -> ApiResult<matching::Matches> {
    let criteria = matching::criteria(query, "condition")?;
    let m = matching::visible_matches(guard, resource_type, &criteria, deleted).await?;
    matching::refuse_hidden_passport(guard, resource_type, &m)?;
    Ok(m)
}

/// An entry's `ifMatch` against the version committed now, as for a single update: a
/// resource hidden from the caller answers exactly as a missing one
/// (`crud::visible_version`).
pub(super) async fn check_version(
    guard: &mut Guard<'_>,
    action: access::Action,
    (t, id): (&str, &str),
    existing: &Option<Stored>,
    wanted: Option<i64>,
) -> ApiResult<()> {
    let Some(w) = wanted else { return Ok(()) };
    let current = crud::visible_version(guard, action, existing.as_ref()).await?;
    if current != Some(w) {
        return Err(crud::precondition_failed(t, id, w, current));
    }
    Ok(())
}

/// What one entry comes to, from the state committed now (and the deletions planned).
pub(super) async fn plan_entry(
    guard: &mut Guard<'_>,
    e: &Entry,
    deleted: &HashSet<(String, String)>,
) -> Result<Plan, Failed> {
    let st = guard.st;
    let f = |error: ApiError| fail(0, error);
    let t = e.target.resource_type.clone();
    let wanted = e.wanted().map_err(f)?;
    let read = |id: String| {
        let t = t.clone();
        async move {
            st.domain
                .records()
                .read(&t, &id)
                .await
                .map_err(|e| f(e.into()))
        }
    };
    match e.method {
        Method::Get | Method::Head => Ok(Plan::Read),
        Method::Delete => {
            let id = match (&e.target.path[..], &e.target.query) {
                ([id], None) => id.clone(),
                (_, Some(q)) => {
                    let ids = live_matches(guard, &t, q, deleted)
                        .await
                        .map_err(f)?
                        .visible;
                    match ids.as_slice() {
                        [] => {
                            return Ok(Plan::Nothing(
                                StatusCode::NO_CONTENT,
                                "nothing matched; nothing deleted",
                            ));
                        }
                        [id] => id.clone(),
                        many => {
                            return Err(f(ApiError::PreconditionFailed(format!(
                                "the condition matches {} {t} resources; this server deletes one at a time (conditionalDelete: single)",
                                matching::several(many.len())
                            ))));
                        }
                    }
                }
                _ => unreachable!("checked by check_shape"),
            };
            let existing = read(id.clone()).await?;
            check_version(guard, access::Action::Delete, (&t, &id), &existing, wanted)
                .await
                .map_err(f)?;
            match existing {
                None => Err(f(crud::not_found(&t, &id))),
                Some(s) if s.deleted => Ok(Plan::Found(s, StatusCode::OK, "already deleted")),
                Some(s) => Ok(Plan::Write {
                    resource_type: t,
                    id,
                    resource: None,
                    existing: Some(s),
                    unless_exists: None,
                }),
            }
        }
        Method::Post => {
            let map = e.resource.clone().expect("checked by check_shape");
            let mut unless_exists = None;
            if let Some(q) = &e.if_none_exist {
                let criteria = matching::criteria(q, "ifNoneExist").map_err(f)?;
                let m = live_matches(guard, &t, q, deleted).await.map_err(f)?;
                match m.visible.as_slice() {
                    // A hidden match plays no part, so it must not trip the store's check.
                    [] if m.hidden => {}
                    [] => unless_exists = matching::race_check(&criteria),
                    [id] => {
                        return match read(id.clone()).await? {
                            Some(s) if !s.deleted => Ok(Plan::Found(
                                s,
                                StatusCode::OK,
                                "a matching resource already exists",
                            )),
                            // Deleted since the match: plan again.
                            _ => Err(Failed {
                                index: 0,
                                error: ApiError::Conflict("changed concurrently".into()),
                                retry: true,
                            }),
                        };
                    }
                    many => {
                        return Err(f(ApiError::PreconditionFailed(format!(
                            "ifNoneExist matches {} {t} resources; it must match at most one",
                            matching::several(many.len())
                        ))));
                    }
                }
            }
            Ok(Plan::Write {
                resource_type: t,
                id: uuid::Uuid::now_v7().to_string(),
                resource: Some(map),
                existing: None,
                unless_exists,
            })
        }
        Method::Put => {
            let mut map = e.resource.clone().expect("checked by check_shape");
            let body_id = map.get("id").and_then(Value::as_str).map(str::to_owned);
            match (&e.target.path[..], &e.target.query) {
                ([id], None) => {
                    match &body_id {
                        Some(b) if b == id => {}
                        Some(b) => {
                            return Err(f(ApiError::bad_request(
                                "id",
                                format!(
                                    "the resource's id '{b}' does not match the URL's id '{id}'"
                                ),
                            )));
                        }
                        None => {
                            return Err(f(ApiError::bad_request(
                                "id",
                                "an update must carry the resource's id",
                            )));
                        }
                    }
                    let existing = read(id.clone()).await?;
                    check_version(guard, access::Action::Update, (&t, id), &existing, wanted)
                        .await
                        .map_err(f)?;
                    Ok(Plan::Write {
                        resource_type: t,
                        id: id.clone(),
                        resource: Some(map),
                        existing,
                        unless_exists: None,
                    })
                }
                (_, Some(q)) => {
                    let criteria = matching::criteria(q, "conditional update").map_err(f)?;
                    if let Some(b) = &body_id {
                        request::require_id(b).map_err(f)?;
                    }
                    let m = live_matches(guard, &t, q, deleted).await.map_err(f)?;
                    let hidden = m.hidden;
                    match m.visible.as_slice() {
                        [] => {
                            if wanted.is_some() {
                                return Err(f(ApiError::PreconditionFailed(format!(
                                    "ifMatch names a version, but no {t} matches the condition"
                                ))));
                            }
                            let id = match body_id {
                                Some(b) => {
                                    if read(b.clone()).await?.is_some() {
                                        return Err(f(ApiError::Conflict(format!(
                                            "no {t} matches the condition, but the resource's id '{b}' is already taken by one that does not match"
                                        ))));
                                    }
                                    b
                                }
                                None => uuid::Uuid::now_v7().to_string(),
                            };
                            Ok(Plan::Write {
                                resource_type: t,
                                id,
                                resource: Some(map),
                                existing: None,
                                unless_exists: if hidden {
                                    None
                                } else {
                                    matching::race_check(&criteria)
                                },
                            })
                        }
                        [id] => {
                            if let Some(b) = &body_id
                                && b != id
                            {
                                return Err(f(ApiError::bad_request(
                                    "id",
                                    format!(
                                        "the resource's id '{b}' is not that of the matching {t} ('{id}')"
                                    ),
                                )));
                            }
                            map.insert("id".into(), Value::String(id.clone()));
                            let existing = read(id.clone()).await?;
                            check_version(
                                guard,
                                access::Action::Update,
                                (&t, id),
                                &existing,
                                wanted,
                            )
                            .await
                            .map_err(f)?;
                            Ok(Plan::Write {
                                resource_type: t,
                                id: id.clone(),
                                resource: Some(map),
                                existing,
                                unless_exists: None,
                            })
                        }
                        many => Err(f(ApiError::PreconditionFailed(format!(
                            "the condition matches {} {t} resources; it must match at most one",
                            matching::several(many.len())
                        )))),
                    }
                }
                _ => unreachable!("checked by check_shape"),
            }
        }
        Method::Patch => {
            let id = e.target.path[0].clone();
            let ops = patch_document(e).map_err(f)?;
            let existing = read(id.clone()).await?;
            check_version(guard, access::Action::Update, (&t, &id), &existing, wanted)
                .await
                .map_err(f)?;
            // A deletion says "gone" only to someone who could read what was deleted.
            crud::refuse_hidden_history(guard, existing.as_ref())
                .await
                .map_err(f)?;
            let current = match &existing {
                None => return Err(f(crud::not_found(&t, &id))),
                Some(s) if s.deleted => {
                    return Err(f(ApiError::Gone {
                        message: format!("{t}/{id} was deleted"),
                        etag: Some(etag(s.version_id)),
                    }));
                }
                Some(s) => s,
            };
            let mut doc: Value = serde_json::from_slice(&current.body).map_err(|e| {
                f(ApiError::Store(StoreError::Backend(format!(
                    "stored body unreadable: {e}"
                ))))
            })?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                f(ApiError::Unprocessable(vec![Issue::error(
                    IssueType::Processing,
                    "",
                    format!("the patch could not be applied: {e}"),
                )]))
            })?;
            let Value::Object(map) = doc else {
                return Err(f(ApiError::Unprocessable(vec![Issue::error(
                    IssueType::Processing,
                    "",
                    "the patch must leave a resource (a JSON object)",
                )])));
            };
            if map.get("resourceType").and_then(Value::as_str) != Some(t.as_str())
                || map.get("id").and_then(Value::as_str) != Some(id.as_str())
            {
                return Err(f(ApiError::Unprocessable(vec![Issue::error(
                    IssueType::Processing,
                    "",
                    "a patch may not change the resource's type or id",
                )])));
            }
            Ok(Plan::Write {
                resource_type: t,
                id,
                resource: Some(map),
                existing,
                unless_exists: None,
            })
        }
    }
}
