//! Registering clients (`passport admin create-client`).
//!
//! Client secrets are 256-bit random values, stored as their SHA-256: a fast hash is enough
//! for a machine-generated secret of that entropy (nothing to brute-force, unlike a
//! password), and it keeps the token endpoint cheap. The secret is shown once, at creation.

use domain::Data;
use domain::types::oauth::OAuthClient;
use serde_json::{Value, json};

use super::jwt;

pub const GRANT_TYPES: [&str; 3] = ["authorization_code", "client_credentials", "refresh_token"];

/// What the administrator asked for.
#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    pub name: String,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    /// A public client (a browser or mobile app: no secret, PKCE only).
    pub public: bool,
    pub scope: String,
    /// Inline JWKS for `private_key_jwt` (JSON text).
    pub jwks: Option<String>,
    pub jwks_url: Option<String>,
    /// The organisation (Organization id, ODS code or URN) a backend-services client acts
    /// for. Checked to exist by the caller (`web::directory::find_organisation`).
    pub organisation_id: Option<String>,
    /// A trusted regional integration (reaches every child's record; docs/SECURITY.md).
    pub regional: bool,
    /// Security-label codes the client is cleared to see.
    pub cleared: Vec<String>,
    /// Where Passport opens the app for an EHR launch (`?iss=…&launch=…` is added).
    pub launch_uri: Option<String>,
}

/// A newly registered client, and its secret if one was issued (shown once).
#[derive(Debug, Clone)]
pub struct CreatedClient {
    pub client: OAuthClient,
    pub client_secret: Option<String>,
}

impl CreatedClient {
    pub fn to_json(&self) -> Value {
        let mut v = client_json(&self.client);
        if let Some(s) = &self.client_secret {
            v["client_secret"] = Value::from(s.clone());
        }
        v
    }
}

/// A client as JSON (never the secret's hash or key material beyond the public JWKS's size).
pub fn client_json(c: &OAuthClient) -> Value {
    json!({
        "client_id": c.client_id,
        "client_name": c.name,
        "grant_types": c.grant_types,
        "redirect_uris": c.redirect_uris,
        "token_endpoint_auth_method": if c.public {
            "none"
        } else if c.jwks.is_some() || c.jwks_url.is_some() {
            "private_key_jwt"
        } else {
            "client_secret_basic"
        },
        "scope": c.scope,
        "jwks_uri": c.jwks_url,
        "jwks_keys": c.jwks.as_deref().and_then(|j| serde_json::from_str::<Value>(j).ok())
            .and_then(|j| j["keys"].as_array().map(Vec::len)),
        "launch_uri": c.launch_uri,
        "active": c.active,
        "created": crate::clock::instant(c.created_us),
        "organisation": c.organisation_id,
        "regional": c.regional,
        "cleared": c.cleared,
    })
}

/// A JSON array (for the CLI, which has no JSON dependency of its own).
pub fn json_array(items: Vec<Value>) -> Value {
    Value::Array(items)
}

/// An absolute http(s) URI without a fragment (the query is ours to add to).
/// An absolute `https` URI without a fragment — or plain `http` to this machine only
/// (`localhost`, `127.0.0.0/8`, `[::1]`: a native app's loopback redirect, RFC 8252 §7.3).
/// A plain-`http` redirect elsewhere would carry authorisation codes, and a launch its
/// context, across the network in the clear.
fn absolute_http(uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else {
        return false;
    };
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    (u.scheme() == "https" || (u.scheme() == "http" && loopback))
        && u.has_host()
        && !uri.contains('#')
}

/// Validates `spec`, registers the client and returns it (with a secret for a confidential
/// client that has no keys).
pub async fn create_client(store: &Data, spec: ClientSpec) -> Result<CreatedClient, String> {
    if spec.name.trim().is_empty() {
        return Err("a client needs a --name".into());
    }
    if spec.grant_types.is_empty() {
        return Err("a client needs at least one --grant".into());
    }
    for g in &spec.grant_types {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return Err(format!(
                "unknown grant type {g:?} (expected one of {})",
                GRANT_TYPES.join(", ")
            ));
        }
    }
    let has = |g: &str| spec.grant_types.iter().any(|x| x == g);
    if has("authorization_code") && spec.redirect_uris.is_empty() {
        return Err("the authorization_code grant needs at least one --redirect-uri".into());
    }
    for uri in &spec.redirect_uris {
        if !absolute_http(uri) {
            return Err(format!(
                "redirect URI {uri:?} must be an absolute https URI without a fragment \
                 (plain http only to this machine: localhost, 127.0.0.1 or [::1])"
            ));
        }
    }
    if let Some(uri) = &spec.launch_uri {
        if !absolute_http(uri) {
            return Err(format!(
                "launch URI {uri:?} must be an absolute https URI without a fragment \
                 (plain http only to this machine: localhost, 127.0.0.1 or [::1])"
            ));
        }
        if !has("authorization_code") {
            return Err("an EHR launch (--launch-uri) needs the authorization_code grant".into());
        }
    }
    if spec.public && (spec.jwks.is_some() || spec.jwks_url.is_some()) {
        return Err("a public client has no keys".into());
    }
    if spec.public && has("client_credentials") {
        return Err("a public client cannot use the client_credentials grant".into());
    }
    let scopes = access::Scopes::parse(&spec.scope).map_err(|e| e.to_string())?;
    if has("client_credentials")
        && !has("authorization_code")
        && scopes
            .resources
            .iter()
            .any(|s| s.context != access::ScopeContext::System)
    {
        return Err("a backend-services client is granted system/ scopes only".into());
    }
    if let Some(jwks) = &spec.jwks {
        let parsed: Value =
            serde_json::from_str(jwks).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
        let keys = parsed["keys"]
            .as_array()
            .filter(|k| !k.is_empty())
            .ok_or("the JWKS has no \"keys\"")?;
        for k in keys {
            if k.get("d").is_some() || k.get("p").is_some() {
                return Err("the JWKS holds a private key; register the public keys only".into());
            }
            if !matches!(k["kty"].as_str(), Some("RSA" | "EC")) {
                return Err("JWKS keys must be RSA or EC".into());
            }
        }
    }
    for code in &spec.cleared {
        if access::SecurityLabel::from_code(code).is_none() {
            return Err(format!(
                "unknown security label {code:?} for --cleared (expected codes of {})",
                access::LABEL_SYSTEM
            ));
        }
    }
    let system = has("client_credentials");
    if (spec.regional || spec.organisation_id.is_some() || !spec.cleared.is_empty()) && !system {
        return Err(
            "--organisation, --regional and --cleared apply to client_credentials clients only"
                .into(),
        );
    }
    let client_secret =
        (!spec.public && spec.jwks.is_none() && spec.jwks_url.is_none()).then(jwt::random_token);
    let client = OAuthClient {
        client_id: uuid::Uuid::new_v4().to_string(),
        name: spec.name.trim().to_owned(),
        grant_types: spec.grant_types,
        redirect_uris: spec.redirect_uris,
        public: spec.public,
        secret_hash: client_secret.as_deref().map(jwt::sha256_hex),
        scope: spec.scope,
        jwks: spec.jwks,
        jwks_url: spec.jwks_url,
        active: true,
        created_us: crate::clock::now_us(),
        organisation_id: spec.organisation_id,
        regional: spec.regional,
        cleared: spec.cleared,
        launch_uri: spec.launch_uri,
    };
    store
        .oauth_insert_client(&client)
        .await
        .map_err(|e| e.to_string())?;
    Ok(CreatedClient {
        client,
        client_secret,
    })
}
