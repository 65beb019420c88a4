//! Sign-in with external OpenID Connect providers: NHS login (families), NHS CIS2 (staff)
//! and any other OIDC provider (Keycloak, Entra ID…), configured in a JSON file
//! (`passport serve --oidc-providers FILE`, see [`load_providers`]).
//!
//! The flow is the authorization-code flow with PKCE (S256), `state` and `nonce`:
//!
//! 1. `POST /signin/oidc/{provider}` (a form with the sign-in page's CSRF token) stores a
//!    sign-in in progress — the hash of `state`, the `nonce`, the PKCE verifier and the hash
//!    of a browser-binding cookie — and redirects to the provider's authorisation endpoint
//!    (from its discovery document).
//! 2. `GET /signin/oidc/{provider}/callback` takes that record (single use, 10 minutes),
//!    checks the binding cookie, exchanges the code at the token endpoint (client secret, or
//!    `private_key_jwt` signed with our key) and validates the ID token: signature with the
//!    provider's JWKS (refetched once on an unknown `kid`), `iss`, `aud`/`azp`, `exp` and
//!    `iat` within [`SKEW_SECS`], and `nonce`. Claims may be completed from userinfo.
//! 3. The identity (provider, `sub`) maps to an account through a stored link. The first
//!    sign-in links by email only when the provider is trusted for it
//!    (`link_by_verified_email`) and says the email is verified; otherwise a page explains.
//!
//! NHS login: `identity_proofing_level` must be `P9` for family data; lower levels are
//! signed in but the session is marked as allowed no child's data (and the page says so).
//! The `nhs_number` claim is recorded as the ADULT's own identifier and never links them to
//! a child. CIS2: a staff provider; role and organisation claims are not mapped yet (the
//! staff account's own role and organisation apply). A staff provider is trusted to have
//! done its own strong authentication: no TOTP step follows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::types::StoreError;
use domain::types::accounts::{Account, AccountKind, SessionStage};
use domain::types::identities::{ExternalIdentity, OidcPending, OidcSession};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::auth;
use super::errors::PageResult;
use super::session::{self, CSRF_COOKIE, SESSION_COOKIE};
use super::templates::{message, page};
use super::{Effect, Route, Serves};
use crate::oauth::jwt;
use crate::{AppState, clock};

/// Allowed clock difference with a provider, seconds.
pub const SKEW_SECS: i64 = 120;
/// An ID token issued longer ago than this (plus skew) is refused.
pub const MAX_ID_TOKEN_AGE_SECS: i64 = 600;
/// How long a sign-in may take at the provider.
pub const PENDING_SECS: i64 = 10 * 60;
/// The cookie binding a sign-in in progress to the browser that started it. `SameSite=Lax`
/// (it must come back on the provider's top-level redirect), `HttpOnly`, path-limited.
pub const BROWSER_COOKIE: &str = "passport_oidc";

/// What kind of provider: decides the claims we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    NhsLogin,
    Cis2,
    Generic,
}

/// Whose accounts a provider signs in to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    Staff,
    Family,
}

/// How we authenticate to the provider's token endpoint.
#[derive(Clone, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientAuth {
    ClientSecretBasic {
        secret: String,
    },
    ClientSecretPost {
        secret: String,
    },
    /// A private JWK (EC P-256, signs ES256) in a file; its public half is registered at
    /// the provider.
    PrivateKeyJwt {
        key_file: PathBuf,
    },
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::ClientSecretBasic { .. } => f.write_str("client_secret_basic"),
            ClientAuth::ClientSecretPost { .. } => f.write_str("client_secret_post"),
            ClientAuth::PrivateKeyJwt { key_file } => {
                write!(f, "private_key_jwt({})", key_file.display())
            }
        }
    }
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

/// One configured provider (an element of the `--oidc-providers` JSON list).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// In URLs: letters, digits, `-`, `_`.
    pub name: String,
    /// On the button: "Sign in with {label}". Default: the name.
    #[serde(default)]
    pub label: Option<String>,
    pub kind: ProviderKind,
    /// Exactly as the provider's discovery document and ID tokens give it.
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    pub audience: Audience,
    /// Trusted to link a first sign-in to the existing account with its verified email.
    #[serde(default)]
    pub link_by_verified_email: bool,
    /// Complete the ID token's claims from the userinfo endpoint.
    #[serde(default)]
    pub userinfo: bool,
    /// Extra authorisation parameters (NHS login: `vtr`, e.g. `["P9.Cp.Cd"]`).
    #[serde(default)]
    pub extra_auth_params: HashMap<String, String>,
}

impl ProviderConfig {
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

/// Reads and checks the providers file: a JSON list of [`ProviderConfig`].
pub fn load_providers(path: &Path) -> Result<Vec<ProviderConfig>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let list: Vec<ProviderConfig> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    check_providers(&list)?;
    Ok(list)
}

/// The checks [`load_providers`] makes (names, issuers, NHS login's client authentication).
pub fn check_providers(list: &[ProviderConfig]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for p in list {
        if p.name.is_empty()
            || !p
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "provider name {:?}: use letters, digits, - or _",
                p.name
            ));
        }
        if !seen.insert(p.name.as_str()) {
            return Err(format!("provider {}: named twice", p.name));
        }
        let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|l| p.issuer.starts_with(l));
        if !p.issuer.starts_with("https://") && !local {
            return Err(format!("provider {}: the issuer must be https", p.name));
        }
        if p.issuer.starts_with("https://") && !cfg!(feature = "oidc-https") {
            return Err(format!(
                "provider {}: this build has no HTTPS client (build with the oidc-https feature)",
                p.name
            ));
        }
        if p.kind == ProviderKind::NhsLogin
            && !matches!(p.client_auth, ClientAuth::PrivateKeyJwt { .. })
        {
            return Err(format!(
                "provider {}: NHS login requires client_auth private_key_jwt",
                p.name
            ));
        }
        if p.kind == ProviderKind::NhsLogin && p.audience != Audience::Family {
            return Err(format!("provider {}: NHS login is for families", p.name));
        }
        if p.kind == ProviderKind::Cis2 && p.audience != Audience::Staff {
            return Err(format!("provider {}: CIS2 is for staff", p.name));
        }
        if !p.scopes.iter().any(|s| s == "openid") {
            return Err(format!("provider {}: scopes must include openid", p.name));
        }
        if let ClientAuth::PrivateKeyJwt { key_file } = &p.client_auth {
            signing_key(key_file).map_err(|e| format!("provider {}: {e}", p.name))?;
        }
    }
    Ok(())
}

/// Reads a private EC P-256 JWK (`kty`, `crv`, `x`, `y`, `d`, optional `kid`).
fn signing_key(path: &Path) -> Result<(p256::ecdsa::SigningKey, Option<String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let jwk: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
        return Err(format!(
            "{}: only EC P-256 private JWKs are supported",
            path.display()
        ));
    }
    let d = jwk["d"]
        .as_str()
        .and_then(jwt::unb64)
        .ok_or_else(|| format!("{}: no private part (d)", path.display()))?;
    let key = p256::ecdsa::SigningKey::from_slice(&d)
        .map_err(|_| format!("{}: not a P-256 private key", path.display()))?;
    Ok((key, jwk["kid"].as_str().map(str::to_owned)))
}

// ---------------------------------------------------------------------------------------
// Provider metadata: discovery and keys, cached per issuer.

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
}

#[derive(Clone)]
struct Cached {
    discovery: Discovery,
    keys: Vec<Value>,
    fetched_us: i64,
}

const CACHE_US: i64 = 3600 * 1_000_000;

fn cache() -> &'static Mutex<HashMap<String, Cached>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Cached>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("an HTTP client")
    })
}

/// Why a sign-in with a provider failed (logged; the page says less).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("provider unreachable or answered badly: {0}")]
    Provider(String),
    #[error("ID token refused: {0}")]
    IdToken(#[from] IdTokenError),
}

async fn get_json(url: &str, bearer: Option<&str>) -> Result<Value, OidcError> {
    let mut req = http().get(url).header("accept", "application/json");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| OidcError::Provider(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(OidcError::Provider(format!("{url}: {}", resp.status())));
    }
    resp.json()
        .await
        .map_err(|e| OidcError::Provider(format!("{url}: {e}")))
}

async fn fetch_keys(jwks_uri: &str) -> Result<Vec<Value>, OidcError> {
    let jwks = get_json(jwks_uri, None).await?;
    Ok(jwks["keys"].as_array().cloned().unwrap_or_default())
}

/// The provider's metadata and keys; `refresh_keys` refetches the JWKS.
async fn metadata(p: &ProviderConfig, refresh_keys: bool) -> Result<Cached, OidcError> {
    let now = clock::now_us();
    let cached = cache().lock().expect("cache").get(&p.issuer).cloned();
    let mut entry = match cached {
        Some(c) if now - c.fetched_us < CACHE_US => c,
        _ => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                p.issuer.trim_end_matches('/')
            );
            let doc = get_json(&url, None).await?;
            let discovery: Discovery = serde_json::from_value(doc)
                .map_err(|e| OidcError::Provider(format!("{url}: {e}")))?;
            if discovery.issuer != p.issuer {
                return Err(OidcError::Provider(format!(
                    "{url}: names issuer {:?}, configured {:?}",
                    discovery.issuer, p.issuer
                )));
            }
            let keys = fetch_keys(&discovery.jwks_uri).await?;
            Cached {
                discovery,
                keys,
                fetched_us: now,
            }
        }
    };
    if refresh_keys {
        entry.keys = fetch_keys(&entry.discovery.jwks_uri).await?;
    }
    cache()
        .lock()
        .expect("cache")
        .insert(p.issuer.clone(), entry.clone());
    Ok(entry)
}

// ---------------------------------------------------------------------------------------
// ID token validation (pure: keys and time are given).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("not a JWT")]
    Malformed,
    #[error("algorithm {0:?} not accepted")]
    Algorithm(String),
    #[error("no key with that kid")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("not for this client")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("issued in the future or too long ago")]
    IssuedAt,
    #[error("nonce does not match")]
    Nonce,
    #[error("no subject")]
    Subject,
}

/// Algorithms accepted for ID tokens.
pub const ID_TOKEN_ALGS: &[&str] = &["RS256", "ES256", "RS512"];

fn verify_rs512(jwk: &Value, input: &str, sig: &[u8]) -> bool {
    use rsa::signature::Verifier;
    if jwk["kty"] != "RSA" || jwk.get("alg").is_some_and(|a| a != "RS512") {
        return false;
    }
    let (Some(n), Some(e)) = (
        jwk["n"].as_str().and_then(jwt::unb64),
        jwk["e"].as_str().and_then(jwt::unb64),
    ) else {
        return false;
    };
    let Ok(key) = rsa::PublicKey::new(
        rsa::BoxedUint::from_be_slice_vartime(&n),
        rsa::BoxedUint::from_be_slice_vartime(&e),
    ) else {
        return false;
    };
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha512>::new(key)
        .verify(input.as_bytes(), &sig)
        .is_ok()
}

/// Validates an ID token against the provider's `keys`; returns its claims.
pub fn validate_id_token(
    token: &str,
    keys: &[Value],
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now_s: i64,
) -> Result<Map<String, Value>, IdTokenError> {
    let parsed = jwt::parse(token).ok_or(IdTokenError::Malformed)?;
    let alg = parsed
        .header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !ID_TOKEN_ALGS.contains(&alg) {
        return Err(IdTokenError::Algorithm(alg.to_owned()));
    }
    let kid = parsed.header.get("kid").and_then(Value::as_str);
    let kty = if alg.starts_with("ES") { "EC" } else { "RSA" };
    let candidates: Vec<&Value> = keys
        .iter()
        .filter(|k| k["kty"] == kty)
        .filter(|k| k.get("use").is_none_or(|u| u == "sig"))
        .filter(|k| kid.is_none_or(|kid| k["kid"] == kid))
        .collect();
    if candidates.is_empty() {
        return Err(IdTokenError::UnknownKey);
    }
    let ok = candidates.iter().any(|k| match alg {
        "RS512" => verify_rs512(k, parsed.signing_input, &parsed.signature),
        _ => jwt::verify_with_jwk(alg, k, parsed.signing_input, &parsed.signature),
    });
    if !ok {
        return Err(IdTokenError::Signature);
    }
    let c = parsed.claims;
    if c.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(IdTokenError::Issuer);
    }
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(list)) => {
            list.iter().any(|a| a == client_id)
                && (list.len() == 1 || c.get("azp").and_then(Value::as_str) == Some(client_id))
        }
        _ => false,
    };
    if !aud_ok
        || c.get("azp")
            .and_then(Value::as_str)
            .is_some_and(|azp| azp != client_id)
    {
        return Err(IdTokenError::Audience);
    }
    let num = |name: &str| c.get(name).and_then(Value::as_i64);
    match num("exp") {
        Some(exp) if exp + SKEW_SECS > now_s => {}
        _ => return Err(IdTokenError::Expired),
    }
    match num("iat") {
        Some(iat)
            if iat <= now_s + SKEW_SECS && iat >= now_s - MAX_ID_TOKEN_AGE_SECS - SKEW_SECS => {}
        _ => return Err(IdTokenError::IssuedAt),
    }
    match c.get("nonce").and_then(Value::as_str) {
        Some(n) if auth::same(n, nonce) => {}
        _ => return Err(IdTokenError::Nonce),
    }
    if c.get("sub")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(IdTokenError::Subject);
    }
    Ok(c)
}

// ---------------------------------------------------------------------------------------
// Pages.

/// The routes of this module (merged into `web::routes`).
pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::action("/signin/oidc/{provider}", Effect::Account, start),
        Route::other(
            "/signin/oidc/{provider}/callback",
            Serves::Redirect,
            callback,
        ),
    ]
}

/// The sign-in page's buttons: `[{name, label}]`.
pub fn buttons(st: &AppState) -> Value {
    Value::Array(
        st.config
            .oidc_providers
            .iter()
            .map(|p| json!({ "name": p.name, "label": p.label() }))
            .collect(),
    )
}

/// Whether this signed-in session may see family (children's) data: `false` only for a
/// session from NHS login below P9.
pub async fn family_data_allowed(st: &AppState, headers: &HeaderMap) -> Result<bool, StoreError> {
    let Some(token) = session::cookie(headers, SESSION_COOKIE) else {
        return Ok(false);
    };
    Ok(st
        .domain
        .data()
        .oidc_session(&auth::token_hash(&token))
        .await?
        .is_none_or(|o| o.family_data))
}

fn provider<'a>(st: &'a AppState, name: &str) -> Option<&'a ProviderConfig> {
    st.config.oidc_providers.iter().find(|p| p.name == name)
}

fn sha256_hex(s: &str) -> String {
    jwt::sha256_hex(s)
}

fn browser_cookie(value: &str, secure: bool, clear: bool) -> HeaderValue {
    let s = format!(
        "{BROWSER_COOKIE}={value}; Path=/signin/oidc/; HttpOnly; SameSite=Lax{}{}",
        if clear { "; Max-Age=0" } else { "" },
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&s).expect("cookie")
}

fn redirect_uri(st: &AppState, p: &ProviderConfig) -> String {
    format!("{}/signin/oidc/{}/callback", st.config.base(), p.name)
}

fn unavailable(label: &str) -> Response {
    message(
        StatusCode::BAD_GATEWAY,
        &format!("Sorry, {label} is not available"),
        &[
            "We could not connect to the sign-in service. Try again later, or sign in with your email address and password if you have one.",
        ],
        Some(("/sign-in", "Go to the sign-in page")),
    )
}

fn refused(heading: &str, text: &str) -> Response {
    message(
        StatusCode::BAD_REQUEST,
        heading,
        &[text, "Nothing has been changed. Start signing in again."],
        Some(("/sign-in", "Go to the sign-in page")),
    )
}

/// `POST /signin/oidc/{provider}`: starts a sign-in and redirects to the provider.
pub async fn start(
    State(st): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let csrf_ok = session::cookie(&headers, CSRF_COOKIE).is_some_and(|c| {
        c.len() >= 32 && auth::same(&c, f.get("csrf_token").map(String::as_str).unwrap_or(""))
    });
    if !csrf_ok {
        return Ok(refused(
            "Your form could not be sent",
            "For your security, we could not accept this form. Reload the sign-in page and try again.",
        ));
    }
    let Some(p) = provider(&st, &name) else {
        return Ok(message(
            StatusCode::NOT_FOUND,
            "Page not found",
            &["There is no such sign-in service."],
            Some(("/sign-in", "Go to the sign-in page")),
        ));
    };
    let meta = match metadata(p, false).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(provider = %p.name, error = %e, "OIDC discovery failed");
            return Ok(unavailable(p.label()));
        }
    };
    let state = auth::random_token();
    let nonce = auth::random_token();
    let verifier = auth::random_token();
    let browser = auth::random_token();
    let challenge = jwt::b64(&Sha256::digest(verifier.as_bytes()));
    let now = clock::now_us();
    st.domain
        .data()
        .oidc_insert_pending(
            &OidcPending {
                state_hash: sha256_hex(&state),
                provider: p.name.clone(),
                nonce: nonce.clone(),
                pkce_verifier: verifier,
                browser_hash: sha256_hex(&browser),
                expires_us: now + PENDING_SECS * 1_000_000,
            },
            now,
        )
        .await?;
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &p.client_id)
        .append_pair("redirect_uri", &redirect_uri(&st, p))
        .append_pair("scope", &p.scopes.join(" "))
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut extra: Vec<_> = p.extra_auth_params.iter().collect();
    extra.sort();
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    let endpoint = &meta.discovery.authorization_endpoint;
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    let to = format!("{endpoint}{sep}{}", q.finish());
    let mut resp = (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(&to).map_err(|e| StoreError::Backend(e.to_string()))?,
        )],
    )
        .into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        browser_cookie(&browser, session::secure(&st), false),
    );
    Ok(resp)
}

/// Exchanges the code; returns the token response.
async fn exchange(
    p: &ProviderConfig,
    token_endpoint: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Value, OidcError> {
    let mut basic = None;
    let body = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", verifier);
        match &p.client_auth {
            ClientAuth::ClientSecretBasic { secret } => {
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                basic = Some((enc(&p.client_id), enc(secret)));
            }
            ClientAuth::ClientSecretPost { secret } => {
                form.append_pair("client_id", &p.client_id)
                    .append_pair("client_secret", secret);
            }
            ClientAuth::PrivateKeyJwt { key_file } => {
                let (key, kid) = signing_key(key_file).map_err(OidcError::Provider)?;
                let now = clock::now_us() / 1_000_000;
                let claims = json!({
                    "iss": p.client_id, "sub": p.client_id, "aud": token_endpoint,
                    "jti": auth::random_token(), "iat": now, "exp": now + 300,
                });
                let kid = kid.unwrap_or_else(|| {
                    jwt::ec_thumbprint(&jwt::es256_public_jwk(key.verifying_key()))
                });
                form.append_pair("client_id", &p.client_id)
                    .append_pair(
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    )
                    .append_pair("client_assertion", &jwt::sign_es256(&key, &kid, &claims));
            }
        }
        form.finish()
    };
    let mut req = http().post(token_endpoint);
    if let Some((user, pass)) = basic {
        req = req.basic_auth(user, Some(pass));
    }
    let resp = req
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| OidcError::Provider(format!("token endpoint: {e}")))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| OidcError::Provider(format!("token endpoint: {e}")))?;
    if !status.is_success() {
        return Err(OidcError::Provider(format!(
            "token endpoint {status}: {}",
            body["error"]
        )));
    }
    Ok(body)
}

/// The validated claims of the sign-in (ID token, then userinfo if configured).
async fn claims(
    p: &ProviderConfig,
    tokens: &Value,
    nonce: &str,
) -> Result<Map<String, Value>, OidcError> {
    let id_token = tokens["id_token"]
        .as_str()
        .ok_or_else(|| OidcError::Provider("no id_token".into()))?;
    let now = clock::now_us() / 1_000_000;
    let meta = metadata(p, false).await?;
    let mut c = match validate_id_token(id_token, &meta.keys, &p.issuer, &p.client_id, nonce, now) {
        Err(IdTokenError::UnknownKey) => {
            let meta = metadata(p, true).await?;
            validate_id_token(id_token, &meta.keys, &p.issuer, &p.client_id, nonce, now)?
        }
        other => other?,
    };
    if p.userinfo
        && let (Some(url), Some(at)) = (
            meta.discovery.userinfo_endpoint.as_deref(),
            tokens["access_token"].as_str(),
        )
    {
        let info = get_json(url, Some(at)).await?;
        if info["sub"] != c["sub"] {
            return Err(OidcError::Provider(
                "userinfo is for another subject".into(),
            ));
        }
        if let Value::Object(info) = info {
            for (k, v) in info {
                c.entry(k).or_insert(v);
            }
        }
    }
    Ok(c)
}

fn audience_kind(a: Audience) -> AccountKind {
    match a {
        Audience::Staff => AccountKind::Staff,
        Audience::Family => AccountKind::Family,
    }
}

/// `GET /signin/oidc/{provider}/callback`
pub async fn callback(
    State(st): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> PageResult {
    let q: HashMap<String, String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let Some(p) = provider(&st, &name) else {
        return Ok(refused(
            "This sign-in cannot be used",
            "There is no such sign-in service.",
        ));
    };
    let secure = session::secure(&st);
    let expired = || {
        refused(
            "This sign-in cannot be used",
            "It has expired, was already used, or was not started in this browser.",
        )
    };
    let Some(state) = q.get("state") else {
        return Ok(expired());
    };
    let now = clock::now_us();
    let Some(pending) = st
        .domain
        .data()
        .oidc_take_pending(&sha256_hex(state), now)
        .await?
    else {
        return Ok(expired());
    };
    let browser_ok = session::cookie(&headers, BROWSER_COOKIE)
        .is_some_and(|b| auth::same(&sha256_hex(&b), &pending.browser_hash));
    if pending.provider != p.name || !browser_ok {
        return Ok(expired());
    }
    if let Some(err) = q.get("error") {
        tracing::info!(provider = %p.name, error = %err, "OIDC sign-in not completed at the provider");
        return Ok(refused(
            "You did not finish signing in",
            &format!("{} did not sign you in.", p.label()),
        ));
    }
    let Some(code) = q.get("code") else {
        return Ok(expired());
    };
    let result = match exchange(
        p,
        &metadata(p, false)
            .await
            .map(|m| m.discovery.token_endpoint)
            .unwrap_or_default(),
        code,
        &redirect_uri(&st, p),
        &pending.pkce_verifier,
    )
    .await
    {
        Ok(tokens) => claims(p, &tokens, &pending.nonce).await,
        Err(e) => Err(e),
    };
    let c = match result {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(provider = %p.name, error = %e, "OIDC sign-in refused");
            crate::authz::audit::sign_in_event(
                &st,
                crate::audit::EventKind::Login,
                super::directory::login_tried(&format!("({} sign-in)", p.label())),
                crate::audit::Outcome::MinorFailure,
                Some("the identity provider's answer was refused"),
            )
            .await;
            return Ok(match e {
                OidcError::Provider(_) => unavailable(p.label()),
                OidcError::IdToken(_) => refused(
                    "We could not sign you in",
                    &format!("The answer from {} could not be accepted.", p.label()),
                ),
            });
        }
    };
    let sub = c["sub"].as_str().unwrap_or_default().to_owned();
    let text = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
    let (nhs_number, level) = match p.kind {
        ProviderKind::NhsLogin => (text("nhs_number"), text("identity_proofing_level")),
        _ => (None, None),
    };
    let kind = audience_kind(p.audience);
    let account = match st.domain.data().external_identity(&p.name, &sub).await? {
        Some(link) => st.domain.data().account(&link.account_id).await?,
        None => {
            link_first(
                &st,
                p,
                &sub,
                &c,
                nhs_number.as_deref(),
                level.as_deref(),
                now,
            )
            .await?
        }
    };
    let Some(account) = account.filter(|a| a.active && a.kind == kind) else {
        crate::authz::audit::sign_in_event(
            &st,
            crate::audit::EventKind::Login,
            super::directory::login_tried(&format!("({} sign-in)", p.label())),
            crate::audit::Outcome::MinorFailure,
            Some("no active Passport account is connected to this identity"),
        )
        .await;
        return Ok(message(
            StatusCode::FORBIDDEN,
            "You do not have a Passport account yet",
            &[
                &format!(
                    "You signed in with {}, but it is not connected to a Passport account.",
                    p.label()
                ),
                match p.audience {
                    Audience::Family => {
                        "Ask the team that invited you for an invitation, or sign in with your email address and password."
                    }
                    Audience::Staff => {
                        "Ask your organisation's Passport administrator to set up your account."
                    }
                },
            ],
            Some(("/sign-in", "Go to the sign-in page")),
        ));
    };
    st.domain
        .data()
        .touch_external_identity(&p.name, &sub, nhs_number.as_deref(), level.as_deref(), now)
        .await?;
    let family_data = p.kind != ProviderKind::NhsLogin || level.as_deref() == Some("P9");
    session::end(&st, &headers).await?;
    let token = session::start(&st, &account, SessionStage::Full).await?;
    let who = super::directory::account_who(&st.domain, &account).await;
    crate::authz::audit::sign_in_event(
        &st,
        crate::audit::EventKind::Login,
        who,
        crate::audit::Outcome::Success,
        None,
    )
    .await;
    st.domain
        .data()
        .oidc_record_session(&OidcSession {
            id_hash: auth::token_hash(&token),
            provider: p.name.clone(),
            identity_level: level.clone(),
            family_data,
            expires_us: now + session::SESSION_SECS * 1_000_000,
        })
        .await?;
    tracing::info!(provider = %p.name, account = %account.id, family_data, "signed in with OIDC");
    // A page rather than a redirect: the session cookie is SameSite=Strict, and a browser
    // does not send it on a redirect chain that began at another site.
    let mut resp = page(
        StatusCode::OK,
        "oidc_signed_in.html",
        json!({ "name": account.display_name, "provider": p.label(), "family_data": family_data }),
    );
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::set_cookie(SESSION_COOKIE, &token, secure),
    );
    h.append(header::SET_COOKIE, browser_cookie("", secure, true));
    Ok(resp)
}

/// A first sign-in: links to the account with the verified email, if the provider is
/// trusted for that.
async fn link_first(
    st: &AppState,
    p: &ProviderConfig,
    sub: &str,
    c: &Map<String, Value>,
    nhs_number: Option<&str>,
    level: Option<&str>,
    now: i64,
) -> Result<Option<Account>, StoreError> {
    let verified = c
        .get("email_verified")
        .is_some_and(|v| v == true || v == "true");
    let Some(email) = c.get("email").and_then(Value::as_str).filter(|_| verified) else {
        return Ok(None);
    };
    if !p.link_by_verified_email {
        return Ok(None);
    }
    let Some(account) = st
        .domain
        .data()
        .account_by_login(&email.to_lowercase())
        .await?
    else {
        return Ok(None);
    };
    if !account.active || account.kind != audience_kind(p.audience) {
        return Ok(None);
    }
    let linked = st
        .domain
        .data()
        .link_external_identity(&ExternalIdentity {
            provider: p.name.clone(),
            subject: sub.to_owned(),
            account_id: account.id.clone(),
            email: Some(email.to_owned()),
            nhs_number: nhs_number.map(str::to_owned),
            identity_level: level.map(str::to_owned),
            created_us: now,
            last_seen_us: now,
        })
        .await?;
    if !linked {
        // Linked concurrently: follow the stored link.
        return match st.domain.data().external_identity(&p.name, sub).await? {
            Some(l) => st.domain.data().account(&l.account_id).await,
            None => Ok(None),
        };
    }
    Ok(Some(account))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (p256::ecdsa::SigningKey, Value) {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let mut jwk = jwt::es256_public_jwk(key.verifying_key());
        jwk["kid"] = json!("k1");
        (key, jwk)
    }

    fn token(claims: Value) -> (String, Value) {
        let (key, jwk) = key();
        (jwt::sign_es256(&key, "k1", &claims), jwk)
    }

    fn good(now: i64) -> Value {
        json!({ "iss": "https://idp.example", "aud": "passport", "sub": "u1",
                "nonce": "n1", "iat": now, "exp": now + 300 })
    }

    fn check(claims: Value, now: i64) -> Result<Map<String, Value>, IdTokenError> {
        let (t, jwk) = token(claims);
        validate_id_token(&t, &[jwk], "https://idp.example", "passport", "n1", now)
    }

    #[test]
    fn id_token_checks() {
        let now = 1_800_000_000;
        assert_eq!(check(good(now), now).unwrap()["sub"], "u1");
        let mut c = good(now);
        c["iss"] = json!("https://other.example");
        assert_eq!(check(c, now), Err(IdTokenError::Issuer));
        let mut c = good(now);
        c["aud"] = json!("someone-else");
        assert_eq!(check(c, now), Err(IdTokenError::Audience));
        let mut c = good(now);
        c["aud"] = json!(["passport", "other"]);
        assert_eq!(check(c, now), Err(IdTokenError::Audience));
        let mut c = good(now);
        c["aud"] = json!(["passport", "other"]);
        c["azp"] = json!("passport");
        assert!(check(c, now).is_ok());
        let mut c = good(now - 3600);
        c["exp"] = json!(now - SKEW_SECS - 1);
        assert_eq!(check(c, now), Err(IdTokenError::Expired));
        assert_eq!(check(good(now + 3600), now), Err(IdTokenError::IssuedAt));
        let mut c = good(now);
        c["nonce"] = json!("n2");
        assert_eq!(check(c, now), Err(IdTokenError::Nonce));
        let mut c = good(now);
        c.as_object_mut().unwrap().remove("nonce");
        assert_eq!(check(c, now), Err(IdTokenError::Nonce));
        // Another key, an unknown kid, a tampered payload, alg none.
        let (t, _) = token(good(now));
        let other = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        let mut jwk = jwt::es256_public_jwk(other.verifying_key());
        jwk["kid"] = json!("k1");
        assert_eq!(
            validate_id_token(
                &t,
                &[jwk.clone()],
                "https://idp.example",
                "passport",
                "n1",
                now
            ),
            Err(IdTokenError::Signature)
        );
        jwk["kid"] = json!("k2");
        assert_eq!(
            validate_id_token(&t, &[jwk], "https://idp.example", "passport", "n1", now),
            Err(IdTokenError::UnknownKey)
        );
        let (_, good_jwk) = key();
        let parts: Vec<&str> = t.split('.').collect();
        let mut evil = good(now);
        evil["sub"] = json!("admin");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            jwt::b64(evil.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(
            validate_id_token(
                &forged,
                std::slice::from_ref(&good_jwk),
                "https://idp.example",
                "passport",
                "n1",
                now
            ),
            Err(IdTokenError::Signature)
        );
        let none = format!(
            "{}.{}.",
            jwt::b64(br#"{"alg":"none"}"#),
            jwt::b64(good(now).to_string().as_bytes())
        );
        assert!(matches!(
            validate_id_token(
                &none,
                &[good_jwk],
                "https://idp.example",
                "passport",
                "n1",
                now
            ),
            Err(IdTokenError::Algorithm(_) | IdTokenError::Malformed)
        ));
    }

    #[test]
    fn provider_checks() {
        let p = |json: Value| serde_json::from_value::<ProviderConfig>(json).unwrap();
        let nhs = p(
            json!({ "name": "nhs", "kind": "nhs-login", "issuer": "http://127.0.0.1:9",
            "client_id": "c", "audience": "family",
            "client_auth": { "method": "client_secret_basic", "secret": "s" } }),
        );
        assert!(
            check_providers(&[nhs])
                .unwrap_err()
                .contains("private_key_jwt")
        );
        let plain = p(
            json!({ "name": "kc", "kind": "generic", "issuer": "http://idp.example",
            "client_id": "c", "audience": "staff",
            "client_auth": { "method": "client_secret_post", "secret": "s" } }),
        );
        assert!(check_providers(&[plain]).unwrap_err().contains("https"));
        let ok = p(
            json!({ "name": "kc", "kind": "generic", "issuer": "http://127.0.0.1:8080",
            "client_id": "c", "audience": "staff",
            "client_auth": { "method": "client_secret_post", "secret": "s" } }),
        );
        assert!(check_providers(std::slice::from_ref(&ok)).is_ok());
        assert!(
            check_providers(&[ok.clone(), ok])
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            !format!(
                "{:?}",
                ClientAuth::ClientSecretBasic {
                    secret: "hush".into()
                }
            )
            .contains("hush")
        );
    }
}
