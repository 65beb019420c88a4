//! A batch: each entry an independent request, through the same interactions as the REST
//! routes.

use super::*;

pub(super) async fn batch(
    st: &Arc<AppState>,
    caller: &Arc<Caller>,
    raw: &[Value],
    ret: Return,
) -> Response {
    let urns: HashSet<&str> = raw
        .iter()
        .filter_map(|e| e.get("fullUrl").and_then(Value::as_str))
        .filter(|u| is_local_urn(u))
        .collect();
    let mut out = Vec::with_capacity(raw.len());
    for v in raw {
        let (entry, resp) = match parse_entry(st, v) {
            Ok(mut e) => {
                let resp = match refers_to_entries(&mut e, &urns) {
                    Ok(()) => execute(st, caller, &e, ret).await,
                    Err(err) => err.into_response(),
                };
                (Some(e), resp)
            }
            Err(err) => (None, err.into_response()),
        };
        out.push(EntryOut::from_response(st, entry.as_ref(), resp).await);
    }
    bundle_response("batch-response", &out)
}

/// Refuses a batch entry that refers to another entry by its `fullUrl`.
pub(super) fn refers_to_entries(e: &mut Entry, urns: &HashSet<&str>) -> ApiResult<()> {
    let Some(r) = e.resource.take() else {
        return Ok(());
    };
    let mut v = Value::Object(r);
    let result = for_each_reference(&mut v, &mut |s| {
        if urns.contains(s.as_str()) {
            Err(ApiError::bad_request(
                "resource",
                format!(
                    "'{s}' refers to another entry of the batch; batch entries are independent (use a transaction)"
                ),
            ))
        } else {
            Ok(())
        }
    });
    let Value::Object(r) = v else { unreachable!() };
    e.resource = Some(r);
    result
}

/// Runs one entry through the REST handlers, and records its AuditEvents as if it had
/// been a request of its own.
pub(super) async fn execute(
    st: &Arc<AppState>,
    caller: &Arc<Caller>,
    e: &Entry,
    ret: Return,
) -> Response {
    let resp = execute_inner(st, caller, e, ret)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    let method = match e.method {
        Method::Get | Method::Head => axum::http::Method::GET,
        Method::Post => axum::http::Method::POST,
        Method::Put => axum::http::Method::PUT,
        Method::Patch => axum::http::Method::PATCH,
        Method::Delete => axum::http::Method::DELETE,
    };
    let path = format!(
        "/fhir/{}/{}",
        e.target.resource_type,
        e.target.path.join("/")
    );
    crate::authz::audit::record(st, caller, &method, &path, resp).await
}

/// Runs one entry through the same interaction the REST route runs, with the entry's
/// preconditions (`ifMatch`, `ifNoneMatch`, `ifNoneExist`) and the bundle's `Prefer`.
pub(super) async fn execute_inner(
    st: &Arc<AppState>,
    caller: &Arc<Caller>,
    e: &Entry,
    ret: Return,
) -> ApiResult<Response> {
    let ask = Ask {
        if_match: e.if_match.clone(),
        if_none_match: e.if_none_match.clone(),
        if_none_exist: e.if_none_exist.clone(),
        ret,
        strict: false,
    };
    let t = e.target.resource_type.as_str();
    let q = e.target.query.clone();
    let resource =
        || request::resource_object(e.resource.clone().map_or(Value::Null, Value::Object));
    let path: Vec<&str> = e.target.path.iter().map(String::as_str).collect();
    match (e.method, path.as_slice()) {
        (Method::Get | Method::Head, []) => {
            let pairs = form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
            search::search_type(st, caller, t, pairs, &ask).await
        }
        (Method::Get | Method::Head, ["_history"]) => history::type_history(st, caller, t, q).await,
        (Method::Get | Method::Head, [id]) => crud::read_resource(st, caller, t, id, &ask).await,
        (Method::Get | Method::Head, [id, "_history"]) => {
            history::instance_history(st, caller, t, id, q).await
        }
        (Method::Get | Method::Head, [id, "_history", v]) => {
            crud::vread_resource(st, caller, t, id, v).await
        }
        (Method::Post, []) => crud::create_resource(st, caller, t, resource()?, &ask).await,
        (Method::Put, [id]) => crud::update_resource(st, caller, t, id, resource()?, &ask).await,
        (Method::Put, []) => {
            conditional::update_matching(st, caller, t, q, resource()?, &ask).await
        }
        (Method::Patch, [id]) => {
            crud::patch_resource(st, caller, t, id, patch_document(e)?, &ask).await
        }
        (Method::Delete, [id]) => crud::delete_resource(st, caller, t, id, &ask).await,
        (Method::Delete, []) => conditional::delete_matching(st, caller, t, q, &ask).await,
        _ => Err(ApiError::bad_request(
            "request.url",
            format!("{} is not supported in a bundle", e.label()),
        )),
    }
}
