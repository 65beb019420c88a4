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
    "search-type",
];

/// The `searchParam` list of a type: exactly the parameters search implements.
fn search_params(t: &str) -> Vec<Value> {
    fhir::search::params_for(t)
        .iter()
        .filter(|p| crate::fhir_api::search::searchable(p))
        .map(|p| {
            let definition = if p.code.starts_with('_') {
                format!(
                    "http://hl7.org/fhir/SearchParameter/Resource-{}",
                    &p.code[1..]
                )
            } else {
                format!(
                    "http://hl7.org/fhir/SearchParameter/{}-{}",
                    p.resource_type, p.code
                )
            };
            json!({ "name": p.code, "definition": definition, "type": p.kind.code() })
        })
        .collect()
}

/// `_include` values for a type: `*` and `Type:param` for each reference parameter.
fn includes(t: &str) -> Vec<String> {
    let mut out = vec!["*".to_owned()];
    out.extend(
        fhir::search::params_for(t)
            .iter()
            .filter(|p| p.kind == fhir::search::ParamType::Reference)
            .map(|p| format!("{t}:{}", p.code)),
    );
    out
}

/// `_revinclude` values for a type: every other type's reference parameter that may point
/// at it.
fn revincludes(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in fhir::types::SUPPORTED_TYPES {
        for p in fhir::search::params_for(s) {
            if p.kind == fhir::search::ParamType::Reference
                && (p.targets.is_empty() || p.targets.iter().any(|x| x == t))
            {
                out.push(format!("{s}:{}", p.code));
            }
        }
    }
    out
}

/// AuditEvents are written by the server only (405 to clients) and searched in the audit
/// chain by child (`fhir_api::audit_search`), by those who review the log.
fn audit_event_resource() -> Value {
    let param = |name: &str| {
        json!({
            "name": name,
            "definition": format!("http://hl7.org/fhir/SearchParameter/AuditEvent-{name}"),
            "type": "reference",
        })
    };
    json!({
        "type": "AuditEvent",
        "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
        "documentation": "The access log: searched by privacy officers and the regional admin; written only by the server.",
        "interaction": [{"code": "search-type"}],
        "searchParam": [param("patient"), param("entity")],
    })
}

pub fn capability_statement(config: &Config, software_started: &str) -> Value {
    let resources: Vec<Value> = fhir::types::SUPPORTED_TYPES
        .iter()
        .map(|t| {
            if *t == "AuditEvent" {
                return audit_event_resource();
            }
            json!({
                "type": t,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{t}"),
                "interaction": TYPE_INTERACTIONS.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "searchParam": search_params(t),
                "searchInclude": includes(t),
                "searchRevInclude": revincludes(t),
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
            "documentation": "Writes are validated against the FHIR R4 structure definitions. Conditional create (If-None-Exist), conditional update and conditional delete (one match at a time) accept the identifier and _id parameters.",
            "security": crate::oauth::discovery::capability_security(config),
            "resource": resources,
            "interaction": [
                { "code": "transaction", "documentation": "All or nothing; entries processed DELETE, POST, PUT/PATCH, GET; urn:uuid: fullUrls and conditional references resolved." },
                { "code": "batch" },
                { "code": "history-system" },
            ],
        }],
    })
}
