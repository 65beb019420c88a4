//! `POST /oauth/token`, `/oauth/introspect` and `/oauth/revoke`, and client authentication:
//! `private_key_jwt` (SMART Backend Services, RFC 7523), `client_secret_basic` /
//! `client_secret_post`, or none (a public client, identified by `client_id`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::types::oauth::{CodeUse, OAuthClient, RefreshToken, RefreshUse};
use serde_json::{Value, json};

use super::{OAuthError, jwt, no_store_json};
use crate::AppState;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Client-assertion signature algorithms accepted (SMART requires RS384 and ES384).
pub const ASSERTION_ALGS: [&str; 4] = ["RS384", "ES384", "RS256", "ES256"];
/// The furthest ahead a client assertion's `exp` may be (SMART: five minutes), plus skew.
const ASSERTION_MAX_AHEAD_S: i64 = 300 + 10;

type Form = HashMap<String, String>;

/// Parses an `application/x-www-form-urlencoded` body; a repeated parameter is an error
/// (RFC 6749 §3.2).
fn form(headers: &HeaderMap, body: &Bytes) -> Result<Form, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.split(';').next().is_some_and(|m| {
        m.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    }) {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut out = Form::new();
    for (k, v) in form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {k} is repeated"
            )));
        }
    }
    Ok(out)
}

fn required<'a>(f: &'a Form, name: &str) -> Result<&'a str, OAuthError> {
    f.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

/// How the client proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `private_key_jwt`.
    Assertion,
    /// `client_secret_basic` / `client_secret_post`.
    Secret,
    /// A public client (no credentials).
    None,
}

fn now_s() -> i64 {
    crate::clock::now_us() / 1_000_000
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    use base64::Engine;
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let v = v.to_str().map_err(|_| bad())?;
    let Some(b64) = v
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("basic "))
        .map(|_| v[6..].trim())
    else {
        return Err(OAuthError::invalid_client(
            "only Basic client authentication is accepted in the Authorization header",
        ));
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded.
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((decode(id), decode(secret))))
}

/// Authenticates the client of a token, introspection or revocation request.
pub async fn authenticate(
    st: &AppState,
    headers: &HeaderMap,
    f: &Form,
) -> Result<(OAuthClient, ClientAuth), OAuthError> {
    let basic = basic_credentials(headers)?;
    let assertion = f.get("client_assertion");
    let post_secret = f.get("client_secret");
    let methods = [basic.is_some(), assertion.is_some(), post_secret.is_some()]
        .iter()
        .filter(|m| **m)
        .count();
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        ));
    }
    if let Some(assertion) = assertion {
        if f.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_client(format!(
                "client_assertion_type must be {JWT_BEARER}"
            )));
        }
        let client = verify_assertion(st, assertion, f.get("client_id")).await?;
        return Ok((client, ClientAuth::Assertion));
    }
    let (id, secret) = match (basic, post_secret) {
        (Some((id, secret)), _) => (id, Some(secret)),
        (None, Some(secret)) => (required(f, "client_id")?.to_owned(), Some(secret.clone())),
        (None, None) => (
            f.get("client_id")
                .filter(|s| !s.is_empty())
                .cloned()
                .ok_or_else(|| OAuthError::invalid_client("no client authentication"))?,
            None,
        ),
    };
    if f.get("client_id").is_some_and(|c| *c != id) {
        return Err(OAuthError::invalid_client(
            "client_id does not match the credentials",
        ));
    }
    let client = st
        .domain
        .data()
        .oauth_client(&id)
        .await?
        .filter(|c| c.active)
        .ok_or_else(|| OAuthError::invalid_client("unknown or inactive client"))?;
    match (secret, &client.secret_hash) {
        (Some(s), Some(hash)) if jwt::sha256_hex(&s) == *hash => Ok((client, ClientAuth::Secret)),
        (Some(_), _) => Err(OAuthError::invalid_client("client authentication failed")),
        (None, _) if client.public => Ok((client, ClientAuth::None)),
        (None, _) => Err(OAuthError::invalid_client(
            "this client must authenticate (private_key_jwt or a client secret)",
        )),
    }
}

/// Verifies a `private_key_jwt` client assertion (RFC 7523 §3, SMART Backend Services).
async fn verify_assertion(
    st: &AppState,
    assertion: &str,
    form_client_id: Option<&String>,
) -> Result<OAuthClient, OAuthError> {
    fn bad(d: impl Into<String>) -> OAuthError {
        OAuthError::invalid_client(d)
    }
    let jwt = jwt::parse(assertion).ok_or_else(|| bad("the client assertion is not a JWT"))?;
    let alg = jwt.header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !ASSERTION_ALGS.contains(&alg) {
        return Err(bad(format!(
            "client assertion algorithm {alg:?} is not accepted (use RS384 or ES384)"
        )));
    }
    let claim = |n: &str| jwt.claims.get(n).and_then(Value::as_str);
    let (Some(iss), Some(sub)) = (claim("iss"), claim("sub")) else {
        return Err(bad("the client assertion needs iss and sub"));
    };
    if iss != sub {
        return Err(bad(
            "the client assertion's iss and sub must both be the client_id",
        ));
    }
    if form_client_id.is_some_and(|c| c != iss) {
        return Err(bad("client_id does not match the client assertion"));
    }
    let client = st
        .domain
        .data()
        .oauth_client(iss)
        .await?
        .filter(|c| c.active)
        .ok_or_else(|| bad("unknown or inactive client"))?;
    let endpoint = super::token_endpoint(st);
    let aud_ok = match jwt.claims.get("aud") {
        Some(Value::String(a)) => *a == endpoint,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(&endpoint)),
        _ => false,
    };
    if !aud_ok {
        return Err(bad(format!(
            "the client assertion's aud must be the token endpoint, {endpoint}"
        )));
    }
    let exp = jwt
        .claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("the client assertion needs exp"))?;
    let now = now_s();
    if exp <= now {
        return Err(bad("the client assertion has expired"));
    }
    if exp > now + ASSERTION_MAX_AHEAD_S {
        return Err(bad(
            "the client assertion's exp is more than five minutes ahead",
        ));
    }
    let jti = claim("jti")
        .filter(|j| !j.is_empty())
        .ok_or_else(|| bad("the client assertion needs jti"))?;
    let Some(jwks) = &client.jwks else {
        return Err(bad(if client.jwks_url.is_some() {
            "this server does not fetch JWKS URLs yet; register the public keys inline"
        } else {
            "this client has no registered keys"
        }));
    };
    let jwks: Value =
        serde_json::from_str(jwks).map_err(|_| bad("the client's JWKS is unreadable"))?;
    let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
    let kty = if alg.starts_with("RS") { "RSA" } else { "EC" };
    let candidates: Vec<&Value> = match jwt.header.get("kid").and_then(Value::as_str) {
        Some(kid) => keys.iter().filter(|k| k["kid"] == kid).collect(),
        None => keys.iter().filter(|k| k["kty"] == kty).collect(),
    };
    if candidates.is_empty() {
        return Err(bad("no registered key matches the client assertion's kid"));
    }
    if jwt::is_high_s(alg, &jwt.signature) {
        return Err(bad(
            "the client assertion's ECDSA signature is in high-S form; Passport accepts the \
             low-S form only (s at most n/2: replace s with n - s), or sign with RS384",
        ));
    }
    if !candidates
        .iter()
        .any(|k| jwt::verify_with_jwk(alg, k, jwt.signing_input, &jwt.signature))
    {
        return Err(bad("the client assertion's signature does not verify"));
    }
    // Only after the signature: an unauthenticated party cannot use up a client's jtis.
    if !st
        .domain
        .data()
        .oauth_record_jti(&client.client_id, jti, exp * 1_000_000)
        .await?
    {
        return Err(bad("the client assertion's jti has been used before"));
    }
    Ok(client)
}

/// Which kind of scopes a grant may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Backend services: `system/` scopes only.
    System,
    /// A user's app: `patient/` and `user/` scopes, plus `openid`, `fhirUser`, `launch…`,
    /// `offline_access`, `online_access`.
    User,
}

fn covers(allowed: &access::ResourceScope, asked: &access::ResourceScope) -> bool {
    allowed.context == asked.context
        && allowed
            .resource_type
            .as_ref()
            .is_none_or(|t| Some(t) == asked.resource_type.as_ref())
        && allowed.permissions.contains(asked.permissions)
        && (allowed.query.is_empty() || allowed.query == asked.query)
}

/// Checks `requested` is well formed, fits `context`, and is within `allowed` (the client's
/// registered scope, or the grant being refreshed). Parsing is `access::Scopes::parse`.
pub fn check_scope(requested: &str, allowed: &str, context: Context) -> Result<(), OAuthError> {
    let asked =
        access::Scopes::parse(requested).map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
    let allowed_scopes = access::Scopes::parse(allowed)
        .map_err(|_| OAuthError::invalid_scope("the client's registered scope is malformed"))?;
    if requested.split_ascii_whitespace().next().is_none() {
        return Err(OAuthError::invalid_scope("no scope requested"));
    }
    for s in &asked.resources {
        let fits = match context {
            Context::System => s.context == access::ScopeContext::System,
            Context::User => s.context != access::ScopeContext::System,
        };
        if !fits {
            return Err(OAuthError::invalid_scope(match context {
                Context::System => "backend services may request system/ scopes only",
                Context::User => "system/ scopes are for backend services only",
            }));
        }
        if !allowed_scopes.resources.iter().any(|a| covers(a, s)) {
            return Err(OAuthError::invalid_scope(
                "a requested scope is wider than this client may be granted",
            ));
        }
    }
    let allowed_words: Vec<&str> = allowed.split_ascii_whitespace().collect();
    for word in requested.split_ascii_whitespace() {
        let is_resource = access::Scopes::parse(word).is_ok_and(|s| !s.resources.is_empty());
        if is_resource {
            continue;
        }
        if context == Context::System {
            return Err(OAuthError::invalid_scope(format!(
                "scope {word} is not available to backend services"
            )));
        }
        if !allowed_words.contains(&word) {
            return Err(OAuthError::invalid_scope(format!(
                "scope {word} is not allowed for this client"
            )));
        }
    }
    Ok(())
}

/// What an access token is about.
struct Grant<'a> {
    client_id: &'a str,
    sub: &'a str,
    scope: &'a str,
    patient: Option<&'a str>,
    fhir_user: Option<&'a str>,
}

struct Issued {
    token: String,
    jti: String,
    expires_us: i64,
    expires_in: i64,
}

fn sign(st: &AppState, claims: &Value) -> Result<String, OAuthError> {
    let ring = st.oauth.keys.ring();
    let Some((kid, key)) = &ring.current else {
        return Err(OAuthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: "no signing key is available".into(),
        });
    };
    Ok(jwt::sign_es256(key, kid, claims))
}

fn issue_access(st: &AppState, g: &Grant<'_>) -> Result<Issued, OAuthError> {
    let now = crate::clock::now_us();
    let lifetime = st.config.oauth.access_us();
    let expires_us = now + lifetime;
    let jti = uuid::Uuid::new_v4().to_string();
    let issuer = super::issuer(st);
    let mut claims = json!({
        "iss": issuer,
        "aud": issuer,
        "sub": g.sub,
        "client_id": g.client_id,
        "scope": g.scope,
        "iat": now / 1_000_000,
        "exp": expires_us / 1_000_000,
        "jti": jti,
    });
    if let Some(p) = g.patient {
        claims["patient"] = Value::from(p);
    }
    if let Some(u) = g.fhir_user {
        claims["fhirUser"] = Value::from(u);
    }
    Ok(Issued {
        token: sign(st, &claims)?,
        jti,
        expires_us,
        expires_in: lifetime / 1_000_000,
    })
}

fn issue_id_token(
    st: &AppState,
    g: &Grant<'_>,
    scopes: &access::Scopes,
) -> Result<String, OAuthError> {
    let now = crate::clock::now_us() / 1_000_000;
    let mut claims = json!({
        "iss": super::issuer(st),
        "sub": g.sub,
        "aud": g.client_id,
        "iat": now,
        "exp": now + st.config.oauth.access_us() / 1_000_000,
    });
    if scopes.fhir_user
        && let Some(u) = g.fhir_user
    {
        claims["fhirUser"] = Value::from(format!("{}/{u}", super::issuer(st)));
    }
    sign(st, &claims)
}

fn token_response(body: Value) -> Response {
    (StatusCode::OK, no_store_json(body.to_string())).into_response()
}

/// `POST /oauth/token`.
pub async fn token(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    match token_inner(&st, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn token_inner(
    st: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, OAuthError> {
    let f = form(headers, body)?;
    let grant_type = required(&f, "grant_type")?.to_owned();
    if !super::clients::GRANT_TYPES.contains(&grant_type.as_str()) {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant_type {grant_type} is not supported"
        )));
    }
    let (client, auth) = authenticate(st, headers, &f).await?;
    if !client.grant_types.contains(&grant_type) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client may not use the {grant_type} grant"
        )));
    }
    match grant_type.as_str() {
        "client_credentials" => client_credentials(st, &f, &client, auth).await,
        "authorization_code" => authorization_code(st, &f, &client).await,
        _ => refresh_token(st, &f, &client).await,
    }
}

async fn client_credentials(
    st: &AppState,
    f: &Form,
    client: &OAuthClient,
    auth: ClientAuth,
) -> Result<Response, OAuthError> {
    if auth == ClientAuth::None {
        return Err(OAuthError::invalid_client(
            "client_credentials needs an authenticated confidential client",
        ));
    }
    let scope = required(f, "scope")?;
    check_scope(scope, &client.scope, Context::System)?;
    let issued = issue_access(
        st,
        &Grant {
            client_id: &client.client_id,
            sub: &client.client_id,
            scope,
            patient: None,
            fhir_user: None,
        },
    )?;
    Ok(token_response(json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": scope,
    })))
}

fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    use sha2::{Digest, Sha256};
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        && jwt::b64(&Sha256::digest(verifier.as_bytes())) == challenge
}

fn context_of(text: &str) -> (Option<String>, Option<String>) {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    (
        v["patient"].as_str().map(str::to_owned),
        v["fhirUser"].as_str().map(str::to_owned),
    )
}

/// Issues the access token (and refresh and id tokens the scope asks for) of a user grant.
async fn user_tokens(
    st: &AppState,
    client: &OAuthClient,
    sub: &str,
    scope: &str,
    context: &str,
    refresh: Option<(&RefreshToken, &str)>,
) -> Result<(Value, Issued, Option<String>), OAuthError> {
    let scopes =
        access::Scopes::parse(scope).map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
    let (patient, fhir_user) = context_of(context);
    let grant = Grant {
        client_id: &client.client_id,
        sub,
        scope,
        patient: patient.as_deref(),
        fhir_user: fhir_user.as_deref(),
    };
    let issued = issue_access(st, &grant)?;
    let mut body = json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": scope,
    });
    if let Some(p) = &patient {
        body["patient"] = Value::from(p.clone());
    }
    if scopes.openid {
        body["id_token"] = Value::from(issue_id_token(st, &grant, &scopes)?);
    }
    let mut family = None;
    let wants_refresh = (scopes.offline_access || scopes.online_access)
        && client.grant_types.iter().any(|g| g == "refresh_token");
    if wants_refresh {
        let new = jwt::random_token();
        let row = match refresh {
            // Rotation: the same family, scope and expiry as the token it replaces.
            Some((old, _)) => RefreshToken {
                token_hash: jwt::sha256_hex(&new),
                used_us: None,
                access_jti: Some(issued.jti.clone()),
                access_expires_us: Some(issued.expires_us),
                ..old.clone()
            },
            None => RefreshToken {
                token_hash: jwt::sha256_hex(&new),
                family: uuid::Uuid::new_v4().to_string(),
                client_id: client.client_id.clone(),
                scope: scope.to_owned(),
                subject: Some(sub.to_owned()),
                context: context.to_owned(),
                expires_us: crate::clock::now_us()
                    + st.config.oauth.refresh_token_lifetime.as_micros() as i64,
                used_us: None,
                access_jti: Some(issued.jti.clone()),
                access_expires_us: Some(issued.expires_us),
            },
        };
        if !st
            .domain
            .data()
            .oauth_insert_refresh(&row, refresh.map(|(_, h)| h))
            .await?
        {
            return Err(OAuthError::invalid_grant(
                "the refresh token has been revoked",
            ));
        }
        family = Some(row.family);
        body["refresh_token"] = Value::from(new);
    }
    Ok((body, issued, family))
}

async fn authorization_code(
    st: &AppState,
    f: &Form,
    client: &OAuthClient,
) -> Result<Response, OAuthError> {
    let code = required(f, "code")?;
    let redirect_uri = required(f, "redirect_uri")?;
    let hash = jwt::sha256_hex(code);
    let now = crate::clock::now_us();
    let found = match st.domain.data().oauth_consume_code(&hash, now).await? {
        CodeUse::Unknown => return Err(OAuthError::invalid_grant("unknown authorization code")),
        CodeUse::Replayed(c) => {
            if let Some(family) = &c.family {
                st.domain.data().oauth_revoke_family(family, now).await?;
                st.authz.tokens.forget_callers();
            }
            if let (Some(jti), Some(exp)) = (&c.access_jti, c.access_expires_us) {
                st.domain.data().oauth_revoke_access(jti, exp).await?;
            }
            tracing::warn!(client_id = %c.client_id, "authorization code replayed; its tokens are revoked");
            return Err(OAuthError::invalid_grant(
                "the authorization code has already been used; the tokens issued for it are revoked",
            ));
        }
        CodeUse::Fresh(c) => c,
    };
    if found.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if found.expires_us <= now {
        return Err(OAuthError::invalid_grant(
            "the authorization code has expired",
        ));
    }
    if found.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    let Some(verifier) = f.get("code_verifier").filter(|v| !v.is_empty()) else {
        return Err(OAuthError::invalid_request(
            "code_verifier is required (PKCE)",
        ));
    };
    if !pkce_ok(verifier, &found.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "the PKCE code_verifier does not match",
        ));
    }
    let sub = found
        .subject
        .clone()
        .unwrap_or_else(|| client.client_id.clone());
    let (body, issued, family) =
        user_tokens(st, client, &sub, &found.scope, &found.context, None).await?;
    st.domain
        .data()
        .oauth_attach_code_tokens(&hash, family.as_deref(), &issued.jti, issued.expires_us)
        .await?;
    Ok(token_response(body))
}

async fn refresh_token(
    st: &AppState,
    f: &Form,
    client: &OAuthClient,
) -> Result<Response, OAuthError> {
    let token = required(f, "refresh_token")?;
    let hash = jwt::sha256_hex(token);
    let Some(row) = st.domain.data().oauth_refresh_token(&hash).await? else {
        return Err(OAuthError::invalid_grant(
            "unknown or revoked refresh token",
        ));
    };
    if row.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    // A narrower scope may be asked for; checked before the token is used up.
    let scope = match f.get("scope").filter(|s| !s.is_empty()) {
        Some(narrower) => {
            check_scope(narrower, &row.scope, Context::User)?;
            narrower.clone()
        }
        None => row.scope.clone(),
    };
    let now = crate::clock::now_us();
    let old = match st.domain.data().oauth_use_refresh(&hash, now).await? {
        RefreshUse::Unknown => {
            return Err(OAuthError::invalid_grant(
                "unknown or revoked refresh token",
            ));
        }
        RefreshUse::Expired => {
            return Err(OAuthError::invalid_grant("the refresh token has expired"));
        }
        RefreshUse::Reused => {
            tracing::warn!(client_id = %client.client_id, "refresh token reused; its family is revoked");
            return Err(OAuthError::invalid_grant(
                "the refresh token has already been used; every token of this grant is now revoked",
            ));
        }
        RefreshUse::Fresh(old) => old,
    };
    let sub = old
        .subject
        .clone()
        .unwrap_or_else(|| client.client_id.clone());
    let (body, _, _) =
        user_tokens(st, client, &sub, &scope, &old.context, Some((&old, &hash))).await?;
    Ok(token_response(body))
}

/// `POST /oauth/introspect` (RFC 7662): for confidential clients (resource servers).
pub async fn introspect(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let f = form(&headers, &body)?;
        let (client, auth) = authenticate(&st, &headers, &f).await?;
        if auth == ClientAuth::None {
            return Err(OAuthError::invalid_client(
                "introspection is for authenticated confidential clients",
            ));
        }
        let token = required(&f, "token")?;
        let answer = introspection(&st, token).await?;
        // A client learns about its own tokens only: another client's token (its subject,
        // scope, patient) reads as inactive, as RFC 7662 §4 allows. Passport is the only
        // resource server for its tokens, so no client introspects on another's behalf.
        Ok(if answer["client_id"] == client.client_id.as_str() {
            answer
        } else {
            json!({ "active": false })
        })
    }
    .await;
    match result {
        Ok(v) => token_response(v),
        Err(e) => e.into_response(),
    }
}

async fn introspection(st: &AppState, token: &str) -> Result<Value, OAuthError> {
    if token.contains('.') {
        return Ok(match super::verify_access_token(st, token).await {
            Ok(c) => {
                let mut v = json!({
                    "active": true,
                    "token_type": "Bearer",
                    "scope": c.scope,
                    "client_id": c.client_id,
                    "sub": c.sub,
                    "iss": c.iss,
                    "aud": c.aud,
                    "exp": c.exp,
                    "iat": c.iat,
                    "jti": c.jti,
                });
                if let Some(p) = c.patient {
                    v["patient"] = Value::from(p);
                }
                if let Some(u) = c.fhir_user {
                    v["fhirUser"] = Value::from(u);
                }
                v
            }
            Err(super::AuthError::Unavailable) => {
                return Err(OAuthError::from(domain::types::StoreError::Backend(
                    "revocation list unavailable".into(),
                )));
            }
            Err(_) => json!({ "active": false }),
        });
    }
    let now = crate::clock::now_us();
    Ok(
        match st
            .domain
            .data()
            .oauth_refresh_token(&jwt::sha256_hex(token))
            .await?
        {
            Some(r) if r.used_us.is_none() && r.expires_us > now => json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": r.scope,
                "client_id": r.client_id,
                "sub": r.subject,
                "exp": r.expires_us / 1_000_000,
            }),
            _ => json!({ "active": false }),
        },
    )
}

/// `POST /oauth/revoke` (RFC 7009): an access token's jti goes on the revocation list until
/// it expires; a refresh token takes its whole family with it. Always 200 for an unknown
/// token.
pub async fn revoke(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let f = form(&headers, &body)?;
        let (client, _) = authenticate(&st, &headers, &f).await?;
        let token = required(&f, "token")?;
        let now = crate::clock::now_us();
        if token.contains('.') {
            if let Ok(c) = super::verify::verify_signature(&st, token).await
                && c.client_id == client.client_id
                && c.exp * 1_000_000 > now
            {
                st.domain
                    .data()
                    .oauth_revoke_access(&c.jti, c.exp * 1_000_000)
                    .await?;
            }
        } else if let Some(r) = st
            .domain
            .data()
            .oauth_refresh_token(&jwt::sha256_hex(token))
            .await?
            && r.client_id == client.client_id
        {
            st.domain.data().oauth_revoke_family(&r.family, now).await?;
        }
        // The API checks revoked tokens again at once.
        st.authz.tokens.forget_callers();
        Ok::<_, OAuthError>(())
    }
    .await;
    match result {
        Ok(()) => (StatusCode::OK, no_store_json(String::new())).into_response(),
        Err(e) => e.into_response(),
    }
}
