//! Discovery: the SMART configuration (`/fhir/.well-known/smart-configuration`), the OpenID
//! provider configuration (`/.well-known/openid-configuration`) and the JWKS (`/oauth/jwks`).
//! Every URL is built from the configured base URL.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AppState;
use crate::config::Config;

pub const SCOPES_SUPPORTED: [&str; 14] = [
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "patient/*.cruds",
    "user/*.rs",
    "user/*.cruds",
    "system/*.rs",
    "system/*.cruds",
    "patient/*.read",
];

/// The SMART `oauth-uris` extension for the CapabilityStatement's `rest.security`.
pub fn capability_security(config: &Config) -> Value {
    let base = config.base();
    json!({
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                { "url": "token", "valueUri": format!("{base}/oauth/token") },
                { "url": "authorize", "valueUri": format!("{base}/oauth/authorize") },
                { "url": "introspect", "valueUri": format!("{base}/oauth/introspect") },
                { "url": "revoke", "valueUri": format!("{base}/oauth/revoke") },
            ],
        }],
        "service": [{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR",
            }],
            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
        }],
        "description": "SMART App Launch 2 and SMART Backend Services; see /fhir/.well-known/smart-configuration",
    })
}

fn smart(config: &Config) -> Value {
    let base = config.base();
    json!({
        "issuer": format!("{base}/fhir"),
        "jwks_uri": format!("{base}/oauth/jwks"),
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "token_endpoint_auth_methods_supported": [
            "private_key_jwt", "client_secret_basic", "client_secret_post", "none"
        ],
        "token_endpoint_auth_signing_alg_values_supported": super::token::ASSERTION_ALGS,
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-ehr",
            "launch-standalone",
            "authorize-post",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "context-ehr-patient",
            "context-standalone-patient",
            "permission-offline",
            "permission-online",
            "permission-patient",
            "permission-user",
            "permission-v1",
            "permission-v2",
            "sso-openid-connect",
        ],
    })
}

fn json_response(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

pub async fn smart_configuration(State(st): State<Arc<AppState>>) -> Response {
    json_response(&smart(&st.config))
}

pub async fn openid_configuration(State(st): State<Arc<AppState>>) -> Response {
    let mut v = smart(&st.config);
    v["subject_types_supported"] = json!(["public"]);
    v["id_token_signing_alg_values_supported"] = json!(["ES256"]);
    v["claims_supported"] = json!(["iss", "sub", "aud", "exp", "iat", "fhirUser"]);
    json_response(&v)
}

pub async fn jwks(State(st): State<Arc<AppState>>) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        st.oauth.keys.ring().jwks.clone(),
    )
        .into_response()
}
