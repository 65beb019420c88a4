//! `Patient/{id}/$everything`: the child's whole record as the caller may see it.

use super::*;

/// `GET /fhir/Patient/{id}/$everything`: the patient and every resource in its
/// compartment, by (type, id), keyset-paged; `_count`, `_since`, `_type`.
pub(super) async fn everything(
    guard: &mut Guard<'_>,
    id: &str,
    pairs: Vec<(String, String)>,
) -> ApiResult<Response> {
    let st = guard.st;
    let base = st.config.base();
    // The operation reads the child's Patient record: the token must cover Patient (the
    // other types it does not cover are left out of the result, not refused), and the
    // caller must be able to see that record, or there is no child.
    guard.require_scope("Patient", access::Action::Read)?;
    let patient = st
        .domain
        .records()
        .read("Patient", id)
        .await?
        .filter(|s| !s.deleted);
    let seen = match &patient {
        Some(p) => guard
            .readable(access::Action::Read, &p.body)
            .await?
            .is_some(),
        None => false,
    };
    if !seen {
        return Err(crate::authz::not_found("Patient", id));
    }
    let mut count = DEFAULT_COUNT;
    let mut since_us = None;
    let mut types: Option<Vec<String>> = None;
    let mut after = None;
    for (k, v) in &pairs {
        match k.as_str() {
            "_count" => {
                count = v
                    .parse::<usize>()
                    .map_err(|_| ApiError::bad_request("", "_count: expected a whole number"))?
                    .clamp(1, MAX_COUNT)
            }
            "_since" => {
                since_us =
                    Some(clock::parse_fhir_datetime(v).ok_or_else(|| {
                        ApiError::bad_request("", "_since: expected a FHIR instant")
                    })?)
            }
            "_type" => types = Some(v.split(',').map(str::to_owned).collect()),
            "_cursor" => {
                let bad =
                    || ApiError::bad_request("", "_cursor: not a page position this server made");
                let v = st.pages.open(v).ok_or_else(bad)?;
                let c: Vec<String> = serde_json::from_str(&v).map_err(|_| {
                    ApiError::bad_request("", "_cursor: not a page position this server made")
                })?;
                let [t, i] = <[String; 2]>::try_from(c).map_err(|_| {
                    ApiError::bad_request("", "_cursor: not a page position this server made")
                })?;
                after = Some((t, i));
            }
            _ => {}
        }
    }
    let wanted = |t: &str| types.as_ref().is_none_or(|ts| ts.iter().any(|x| x == t));
    let members = fhir::compartment::everything_members(wanted);
    let q = EverythingQuery {
        patient_id: id.to_owned(),
        members,
        since_us,
        count,
        after,
    };
    let views = guard.views().await?;
    let mut rows = st
        .domain
        .records()
        .everything(&q, Visibility::Caller(&views.searching()))
        .await?;
    if !wanted("Patient") {
        rows.retain(|m| !(m.resource_type == "Patient" && m.id == id));
    }
    let mut more = rows.len() > count;
    rows.truncate(count);
    if let Some(keep) = crate::fhir_api::paging::cut_at_bytes(
        rows.iter().map(|m| m.body.len()),
        st.config.max_bundle_bytes,
    ) {
        rows.truncate(keep);
        more = true;
    }
    // The rows are the caller's view already; the decision checks and redacts each.
    let last_row = rows.last().map(|m| (m.resource_type.clone(), m.id.clone()));
    let rows = visible(guard, rows).await?;
    let path = format!("{base}/fhir/Patient/{id}/$everything");
    let kept: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "_cursor").collect();
    let link = |cursor: Option<String>| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            ser.append_pair(k, v);
        }
        if let Some(c) = cursor {
            ser.append_pair("_cursor", &c);
        }
        let q = ser.finish();
        if q.is_empty() {
            path.clone()
        } else {
            format!("{path}?{q}")
        }
    };
    let mut w = BundleWriter::new("searchset", None);
    w.link(
        "self",
        &link(
            q.after
                .as_ref()
                .map(|(t, i)| st.pages.seal(&serde_json::json!([t, i]).to_string())),
        ),
    );
    if more && let Some((t, i)) = &last_row {
        w.link(
            "next",
            &link(Some(st.pages.seal(&serde_json::json!([t, i]).to_string()))),
        );
    }
    for m in &rows {
        let full_url = format!("{base}/fhir/{}/{}", m.resource_type, m.id);
        w.entry(Some(&full_url), Some(&m.body), |w| {
            w.raw(br#","search":{"mode":"match"}"#);
        });
    }
    let note =
        crate::authz::audit::Note::search(guard, Interaction::Operation, Some("Patient"), None);
    Ok(note.attach(w.finish()))
}
