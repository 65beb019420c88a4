//! The family's copy of a passport ("Download a copy of Mia's passport"): everything in
//! the child's record the person downloading may see — decided per resource by the same
//! decision as every read, with hidden addresses removed — as a FHIR R4 Bundle, with the
//! passport as they see it for the printed copy. Audited as an export.

use access::Action;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Failed, View, compartment, view};
use crate::Domain;
use crate::audit::{AuditEventSpec, EventKind};
use crate::guard::{Caller, Guard};

/// The passport as `caller` sees it, and the resources they may export as a `collection`
/// Bundle.
pub async fn copy(d: &Domain, caller: &Caller, patient: &str) -> Result<(View, Value), Failed> {
    let shown = view(d, caller, patient).await?;
    let mut guard = Guard::new(d, caller);
    let mut entries = Vec::new();
    for v in compartment(d, patient).await? {
        let body = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
        let Some(readable) = guard.readable(Action::Export, &body).await? else {
            continue;
        };
        let Ok(resource) = serde_json::from_slice::<Value>(&readable) else {
            continue;
        };
        let url = format!(
            "{}/fhir/{}/{}",
            d.base_url(),
            resource["resourceType"].as_str().unwrap_or_default(),
            resource["id"].as_str().unwrap_or_default()
        );
        entries.push(json!({ "fullUrl": url, "resource": resource }));
    }
    let now = crate::clock::now_us();
    audit_export(d, caller, patient, now).await?;
    let bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::now_v7().to_string(),
        "meta": { "lastUpdated": crate::clock::instant(now) },
        "type": "collection",
        "timestamp": crate::clock::instant(now),
        "entry": entries,
    });
    Ok((shown, bundle))
}

/// Records that `caller` printed or downloaded the child's passport.
pub async fn audit_export(
    d: &Domain,
    caller: &Caller,
    patient: &str,
    now: i64,
) -> Result<(), passport_store::StoreError> {
    let mut spec = AuditEventSpec::new(EventKind::Export, caller.who.clone());
    spec.recorded_us = now;
    spec.purpose = caller.purpose;
    spec.patient_id = Some(patient.to_owned());
    spec.resource = Some(("Patient".into(), Some(patient.to_owned()), None));
    d.records()
        .append_audit(vec![spec.to_record(d.base_url())])
        .await
}
