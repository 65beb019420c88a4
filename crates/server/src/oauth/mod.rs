//! The OAuth 2 / SMART App Launch 2 authorisation server. Every route of this surface is in
//! [`routes`]:
//!
//! | route | what |
//! |---|---|
//! | `POST /oauth/token` | `client_credentials` (SMART Backend Services, `private_key_jwt`), `authorization_code` (PKCE S256), `refresh_token` (rotating) |
//! | `POST /oauth/introspect` | RFC 7662, for confidential clients |
//! | `POST /oauth/revoke` | RFC 7009 |
//! | `GET /oauth/jwks` | the token-signing keys (current and recently retired) |
//! | `GET /fhir/.well-known/smart-configuration`, `GET /.well-known/openid-configuration` | discovery |
//!
//! `/oauth/authorize` and `/launch` (sign-in, patient picker, consent, EHR launch) are pages:
//! [`crate::web::authorize`] has their routes, merged into the pages' router; "Allow" calls
//! [`issue_authorization_code`]. The FHIR API will check tokens with
//! [`verify_access_token`].

pub mod clients;
pub mod discovery;
pub mod jwt;
pub mod keys;
pub mod token;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::Data;
use domain::types::StoreError;
use domain::types::oauth::AuthCode;

use crate::AppState;

pub use clients::{ClientSpec, CreatedClient, create_client};
pub use keys::rotate_signing_key;
pub use verify::{AuthError, TokenClaims, verify_access_token};

/// Token lifetimes and key rotation.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Access (and id) token lifetime; at most one hour.
    pub access_token_lifetime: Duration,
    /// Refresh-token family lifetime (rotation keeps the family's original expiry).
    pub refresh_token_lifetime: Duration,
    /// Authorisation-code lifetime (60 s by default; at most 10 minutes).
    pub code_lifetime: Duration,
    /// How often a new signing key replaces the current one.
    pub key_rotation: Duration,
    /// How often this process reloads keys (picking up other processes' rotations), rotates
    /// when due and purges expired rows.
    pub maintenance_interval: Duration,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            access_token_lifetime: Duration::from_secs(15 * 60),
            refresh_token_lifetime: Duration::from_secs(14 * 24 * 3600),
            code_lifetime: Duration::from_secs(60),
            key_rotation: Duration::from_secs(30 * 24 * 3600),
            maintenance_interval: Duration::from_secs(60),
        }
    }
}

impl OAuthConfig {
    pub(crate) fn access_us(&self) -> i64 {
        self.access_token_lifetime
            .min(Duration::from_secs(3600))
            .as_micros() as i64
    }
    pub(crate) fn code_us(&self) -> i64 {
        self.code_lifetime.min(Duration::from_secs(600)).as_micros() as i64
    }
}

/// The authorisation server's per-process state (in [`AppState::oauth`]).
#[derive(Default)]
pub struct OAuth {
    pub keys: keys::Keys,
}

/// One endpoint of the authorisation server: its path, method and what it is. The router
/// is built from [`table`], and the tests iterate it.
pub struct Route {
    pub path: &'static str,
    pub method: axum::http::Method,
    /// A discovery document anyone may read (the others need client authentication or a
    /// token in the request).
    pub public: bool,
    handler: axum::routing::MethodRouter<Arc<AppState>>,
}

/// Every endpoint of the authorisation server (the authorisation *pages*, `/oauth/authorize`
/// and `/launch`, are in the pages' table).
pub fn table() -> Vec<Route> {
    use axum::http::Method;
    let route = |path, method: Method, public, handler| Route {
        path,
        method,
        public,
        handler,
    };
    vec![
        route("/oauth/token", Method::POST, false, post(token::token)),
        route(
            "/oauth/introspect",
            Method::POST,
            false,
            post(token::introspect),
        ),
        route("/oauth/revoke", Method::POST, false, post(token::revoke)),
        route("/oauth/jwks", Method::GET, true, get(discovery::jwks)),
        route(
            "/fhir/.well-known/smart-configuration",
            Method::GET,
            true,
            get(discovery::smart_configuration),
        ),
        route(
            "/.well-known/openid-configuration",
            Method::GET,
            true,
            get(discovery::openid_configuration),
        ),
    ]
}

/// The authorisation server's router, built from [`table`].
pub fn routes() -> Router<Arc<AppState>> {
    table()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
}

/// Loads (or creates) the signing keys, then keeps them fresh in the background: reloads,
/// rotates when due, purges expired codes, tokens and jtis. Called by [`crate::prepare`].
pub async fn start(state: &Arc<AppState>) -> Result<(), StoreError> {
    let now = crate::clock::now_us();
    state
        .oauth
        .keys
        .refresh(state.domain.data(), &state.config.oauth, now)
        .await?;
    let weak = Arc::downgrade(state);
    let every = state.config.oauth.maintenance_interval;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(st) = weak.upgrade() else { break };
            let now = crate::clock::now_us();
            if let Err(e) = st
                .oauth
                .keys
                .refresh(st.domain.data(), &st.config.oauth, now)
                .await
            {
                tracing::warn!(error = %e, "OAuth key maintenance");
            }
            if let Err(e) = st.domain.data().oauth_purge(now).await {
                tracing::warn!(error = %e, "purging expired OAuth rows");
            }
        }
    });
    Ok(())
}

/// The token endpoint's URL (the `aud` of client assertions): from the configured base URL,
/// never from the request.
pub fn token_endpoint(st: &AppState) -> String {
    format!("{}/oauth/token", st.config.base())
}

/// The issuer of our tokens and the audience of access tokens: the FHIR base URL.
pub fn issuer(st: &AppState) -> String {
    format!("{}/fhir", st.config.base())
}

/// What the authorise page knows when the user has consented.
#[derive(Debug, Clone, Default)]
pub struct CodeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// The scope granted (already narrowed to what the client may have and the user chose).
    pub scope: String,
    /// PKCE S256 challenge from the authorisation request.
    pub code_challenge: String,
    /// The signed-in user (`sub` of the tokens), e.g. an account id.
    pub subject: String,
    /// `fhirUser`, e.g. `Practitioner/123` or `RelatedPerson/9`.
    pub fhir_user: Option<String>,
    /// The launch patient (`patient` in the token response).
    pub patient: Option<String>,
}

/// Issues an authorisation code for `/oauth/authorize` (after sign-in and consent): checks the
/// client, redirect URI (exact), grant type and scope, stores the code's hash and returns the
/// code to put in the redirect. Lives [`OAuthConfig::code_lifetime`].
pub async fn issue_authorization_code(
    st: &AppState,
    req: &CodeRequest,
) -> Result<String, OAuthError> {
    let client = st
        .domain
        .data()
        .oauth_client(&req.client_id)
        .await?
        .filter(|c| c.active)
        .ok_or_else(|| OAuthError::invalid_client("unknown or inactive client"))?;
    if !client.grant_types.iter().any(|g| g == "authorization_code") {
        return Err(OAuthError::unauthorized_client(
            "this client may not use the authorization_code grant",
        ));
    }
    if !client.redirect_uris.contains(&req.redirect_uri) {
        return Err(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        ));
    }
    if req.code_challenge.len() != 43 || jwt::unb64(&req.code_challenge).is_none() {
        return Err(OAuthError::invalid_request(
            "code_challenge must be an S256 PKCE challenge",
        ));
    }
    token::check_scope(&req.scope, &client.scope, token::Context::User)?;
    let code = jwt::random_token();
    let context = serde_json::json!({ "patient": req.patient, "fhirUser": req.fhir_user });
    st.domain
        .data()
        .oauth_insert_code(&AuthCode {
            code_hash: jwt::sha256_hex(&code),
            client_id: client.client_id,
            redirect_uri: req.redirect_uri.clone(),
            scope: req.scope.clone(),
            code_challenge: req.code_challenge.clone(),
            subject: Some(req.subject.clone()),
            context: context.to_string(),
            expires_us: crate::clock::now_us() + st.config.oauth.code_us(),
            used_us: None,
            family: None,
            access_jti: None,
            access_expires_us: None,
        })
        .await?;
    Ok(code)
}

/// An OAuth 2 error response (RFC 6749 §5.2): JSON `error` + `error_description`,
/// `Cache-Control: no-store`. Client misuse is never a 500.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, d: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: d.into(),
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the server is shutting down; try again shortly",
            ),
            StoreError::Busy(why) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                format!("the service is busy ({why}); try again shortly"),
            ),
            e => {
                tracing::error!(error = %e, "storage error in the OAuth server");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "an internal error occurred",
                )
            }
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({ "error": self.error, "error_description": self.description });
        let mut resp = (self.status, no_store_json(body.to_string())).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(crate::error::RETRY_AFTER),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"passport\""),
            );
        }
        resp
    }
}

/// A JSON body with `Cache-Control: no-store` and `Pragma: no-cache`.
pub(crate) fn no_store_json(body: String) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        body,
    )
}

/// For the CLI: opens nothing itself; rotates on an open store.
pub async fn rotate_keys_now(store: &Data, cfg: &OAuthConfig) -> Result<String, StoreError> {
    rotate_signing_key(store, cfg, crate::clock::now_us()).await
}
