//! `GET /fhir/metadata`: a CapabilityStatement that lists exactly what this server does.
//! Built from the same list of types the router serves, so the two cannot disagree.

use serde_json::{Value, json};

use crate::config::Config;

/// The interactions every supported type has.
const TYPE_INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
];

pub fn capability_statement(config: &Config, software_started: &str) -> Value {
    let resources: Vec<Value> = fhir::types::SUPPORTED_TYPES
        .iter()
        .map(|t| {
            json!({
                "type": t,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{t}"),
                "interaction": TYPE_INTERACTIONS.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": false,
                "conditionalDelete": "not-supported",
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": software_started,
        "publisher": "Passport",
        "kind": "instance",
        "software": { "name": "Passport", "version": env!("CARGO_PKG_VERSION") },
        "implementation": {
            "description": "Passport: a regional children's and young people's digital health passport",
            "url": format!("{}/fhir", config.base()),
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Writes are validated against the FHIR R4 structure definitions. Conditional create (If-None-Exist) accepts the identifier and _id parameters.",
            "resource": resources,
            "interaction": [{ "code": "history-system" }],
        }],
    })
}
