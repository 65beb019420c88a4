//! Passport's HTTP server. Surfaces live in their own modules, each with one routes
//! function: [`fhir_api`] (FHIR R4 REST) and the health checks here.

pub mod audit;
pub mod authz;
pub mod config;
pub mod error;
pub mod fhir_api;
pub mod listen;
pub mod mail;
pub mod oauth;
pub mod rate_limit;
pub mod web;

pub use domain::{Domain, clock, demo, records, region, startup};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

pub use config::Config;
use error::ApiError;

/// What every handler shares.
pub struct AppState {
    /// The one path to what is stored (records, accounts, OAuth data, the audit log), the
    /// auditor, the child facts and the regional policy.
    pub domain: Arc<Domain>,
    pub config: Config,
    /// The CapabilityStatement, serialised once.
    pub capability: Bytes,
    /// The OAuth / SMART authorisation server's keys (see [`oauth`]).
    pub oauth: oauth::OAuth,
    /// Access enforcement: verified tokens.
    pub authz: authz::Authz,
    /// Seals search and history page positions (see [`fhir_api::paging`]).
    pub pages: fhir_api::paging::PageSealer,
    /// Outgoing email (see [`mail`]).
    pub mail: mail::Mailer,
    /// Self-registrations per email address and per client IP (see [`rate_limit`]).
    pub registrations: rate_limit::RateLimiter,
}

/// The whole application's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(
            fhir_api::routes()
                // Every FHIR route needs a token (the layer lets `metadata` through).
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    authz::authenticate::layer,
                ))
                // API requests never take the connections kept for the pages and /readyz.
                .route_layer(axum::middleware::from_fn(api_request))
                .merge(oauth::routes())
                // Set before the layer, so that CORS also wraps it and answers preflight
                // (OPTIONS) requests, which no route handles.
                .method_not_allowed_fallback(method_not_allowed)
                .layer(api_cors()),
        )
        .merge(web::routes(state.clone()))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(audit::refuse_audit_event_writes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_control_characters,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(state)
}

/// CORS for the FHIR API and the OAuth endpoints, so that browser apps on other origins
/// (SMART public clients) can discover, exchange codes and call the API. Any origin, but
/// never credentials: these endpoints take bearer tokens and client credentials in the
/// request, not cookies (the pages, which use cookies, get no CORS headers).
fn api_cors() -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method, header};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::ACCEPT,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            HeaderName::from_static("if-none-exist"),
            HeaderName::from_static("prefer"),
        ])
        .expose_headers([
            header::LOCATION,
            header::CONTENT_LOCATION,
            header::ETAG,
            header::LAST_MODIFIED,
            header::WWW_AUTHENTICATE,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Opens the store, migrates it and builds the state.
pub async fn prepare(config: Config) -> Result<Arc<AppState>, domain::types::StoreError> {
    // Load the R4 definitions now rather than on the first write.
    fhir::defs::preload();
    web::assets::preload();
    let started = clock::instant(clock::now_us());
    let capability = Bytes::from(
        serde_json::to_vec(&fhir_api::capability::capability_statement(
            &config, &started,
        ))
        .expect("the CapabilityStatement serialises"),
    );
    let key =
        domain::types::audit::AuditKey::load_or_create(&config.audit_key_file).map_err(|e| {
            domain::types::StoreError::Backend(format!(
                "audit key {}: {e}",
                config.audit_key_file.display()
            ))
        })?;
    let pages = fhir_api::paging::PageSealer::new(key.derive(b"passport page positions v1"));
    let domain = Domain::open(domain::Settings {
        database_url: config.database_url.clone(),
        base_url: config.base().to_owned(),
        auditor: config.auditor(),
        audit_key: Some(key),
        limits: config.db.clone(),
    })
    .await?;
    let mail = mail::Mailer::from_config(&config).map_err(domain::types::StoreError::Backend)?;
    if !mail.sends() && !config.demo {
        tracing::warn!(
            "email is not configured (--smtp-url): people who register cannot verify their \
             address, so self-registration cannot finish"
        );
    }
    let state = Arc::new(AppState {
        domain,
        config,
        capability,
        oauth: oauth::OAuth::default(),
        authz: authz::Authz::default(),
        pages,
        mail,
        registrations: rate_limit::RateLimiter::new(3600 * 1_000_000),
    });
    oauth::start(&state).await?;
    // After the SQL migrations: bring stored data in line with the rules (see `startup`).
    let report = startup::run(&state.domain).await?;
    if !report.accounts_deactivated.is_empty() {
        // Their sessions and tokens must not keep working from the cache.
        state.authz.tokens.forget_callers();
    }
    Ok(state)
}

/// Serves until `shutdown` completes, then lets in-flight requests finish and closes the
/// store (which commits any queued writes) before returning.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    // Each request carries its peer address (`ConnectInfo`), which goes into AuditEvents.
    listen::serve(listener, app, state.config.connections.clone(), shutdown).await?;
    // Queued audit records, then the final checkpoint, then the store.
    if let Err(e) = state.domain.audit.close().await {
        tracing::error!(error = %e, "closing the audit recorder");
    }
    state.domain.close().await;
    Ok(())
}

/// Registers a trusted regional integration client (every child's record, every security
/// label, `system/*.cruds`) and returns its id and secret — what the integration tests and
/// the benchmark use to get an access token through the real `client_credentials` flow. An
/// operator does the same with `passport admin create-client --regional`.
pub async fn register_regional_client(
    state: &AppState,
    name: &str,
) -> Result<(String, String), String> {
    let created = oauth::create_client(
        state.domain.data(),
        oauth::ClientSpec {
            name: name.to_owned(),
            grant_types: vec!["client_credentials".into()],
            scope: "system/*.cruds".into(),
            regional: true,
            cleared: access::SecurityLabel::ALL
                .iter()
                .map(|l| l.code().to_owned())
                .collect(),
            ..Default::default()
        },
    )
    .await?;
    let secret = created
        .client_secret
        .ok_or("a confidential client without keys gets a secret")?;
    Ok((created.client.client_id, secret))
}

/// A server running in the background, for tests and the benchmark.
pub struct Running {
    pub addr: SocketAddr,
    pub base_url: String,
    /// The server's state (tests and the benchmark register clients through it).
    pub state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Graceful stop: waits for in-flight requests and queued writes.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.handle.await.expect("server task panicked")
    }
}

/// Binds `config.addr` (port 0 picks a free port), then serves in the background. The
/// base URL becomes the bound address unless the configuration names one explicitly.
pub async fn start(
    mut config: Config,
    explicit_base_url: bool,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    if !explicit_base_url {
        config.base_url = format!("http://{addr}");
    }
    let base_url = config.base().to_owned();
    let state = prepare(config).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(serve(state.clone(), listener, async {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        base_url,
        state,
        stop: Some(tx),
        handle,
    })
}

async fn api_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    domain::types::api_request(next.run(req)).await
}

/// A request whose path or query holds a control character (percent-encoded: `%00`…`%1F`,
/// `%7F`) is refused with 400 before any handler sees it: no identifier, search value or
/// parameter has a use for one, and PostgreSQL cannot store U+0000 at all.
///
/// The same for a posted form (`application/x-www-form-urlencoded`: the pages, OAuth),
/// except tab and line ends, which a text box sends: a field must not carry a character
/// that no record may hold (R4 §2.24.0.1).
async fn refuse_control_characters(
    State(st): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = req.uri().clone();
    let in_address = [Some(uri.path()), uri.query()]
        .into_iter()
        .flatten()
        .find_map(|s| encoded_control_character(s.as_bytes(), b""));
    if let Some(byte) = in_address {
        return match is_api_path(uri.path()) {
            true => ApiError::bad_request(
                "",
                format!(
                    "the address contains the control character U+{byte:04X}, which no \
                     identifier or search value may hold"
                ),
            )
            .into_response(),
            false => web::bad_request(
                "There is a problem with the web address",
                &format!(
                    "The web address contains the control character U+{byte:04X}, which no \
                     page can use."
                ),
            ),
        };
    }
    let is_form = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, st.config.max_body_bytes).await else {
        return ApiError::PayloadTooLarge(st.config.max_body_bytes).into_response();
    };
    if let Some(byte) = encoded_control_character(&bytes, b"\t\r\n") {
        return match is_api_path(uri.path()) {
            true => ApiError::bad_request(
                "",
                format!("a field contains the control character U+{byte:04X}"),
            )
            .into_response(),
            false => web::bad_request(
                "There is a problem with what you entered",
                &format!(
                    "Something you entered contains the control character U+{byte:04X}, \
                     which cannot be saved. It may have come with text you pasted."
                ),
            ),
        };
    }
    next.run(axum::extract::Request::from_parts(parts, bytes.into()))
        .await
}

/// The first control character (U+0000–U+001F, U+007F) `s` carries, percent-encoded or
/// as it is, other than those `allowed`.
fn encoded_control_character(s: &[u8], allowed: &[u8]) -> Option<u8> {
    let control = |b: u8| (b < 0x20 || b == 0x7f) && !allowed.contains(&b);
    (0..s.len()).find_map(|i| {
        if control(s[i]) {
            return Some(s[i]);
        }
        let hex = s.get(i + 1..i + 3).filter(|_| s[i] == b'%')?;
        let byte = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        control(byte).then_some(byte)
    })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    match st.domain.data().ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(_) => ApiError::Unavailable("the database is not reachable".into()).into_response(),
    }
}

/// An address nothing answers: to a browser (it asks for HTML) outside the API and OAuth
/// paths, the pages' "Page not found" — never JSON to a person; to anything else, and on
/// the API's paths, an OperationOutcome.
async fn unknown_route(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    let wants_html = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.contains("text/html")));
    if wants_html && !is_api_path(uri.path()) {
        web::page_not_found()
    } else {
        ApiError::NotFound("no such endpoint".into()).into_response()
    }
}

/// Paths of the machine surfaces: the FHIR API, OAuth and discovery documents.
fn is_api_path(path: &str) -> bool {
    path == "/fhir"
        || ["/fhir/", "/oauth/", "/.well-known/"]
            .iter()
            .any(|p| path.starts_with(p))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("this endpoint does not support that HTTP method".into())
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::Store(domain::types::StoreError::Backend(
        "handler panicked".into(),
    ))
    .into_response()
}
