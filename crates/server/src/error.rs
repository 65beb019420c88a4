//! The API's one error type, turned into an HTTP status and an `OperationOutcome` in one
//! place. Storage errors never leak their detail to the client: they are logged (without
//! personal data) and answered with a generic 500 outcome.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::types::StoreError;
use fhir::{Issue, IssueType};

use crate::fhir_api::response::FHIR_JSON;

/// Seconds a client should wait before trying again after a 503.
pub const RETRY_AFTER: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request")]
    BadRequest(Vec<Issue>),
    #[error("unprocessable entity")]
    Unprocessable(Vec<Issue>),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("gone")]
    Gone {
        message: String,
        etag: Option<String>,
    },
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    #[error("payload too large")]
    PayloadTooLarge(usize),
    /// One resource larger than `--max-resource-bytes`.
    #[error("resource too large")]
    ResourceTooLarge(usize),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// No valid bearer token (401 with `WWW-Authenticate`); the text says why, never
    /// who.
    #[error("unauthorised: {message}")]
    Unauthorized { message: String, token_given: bool },
    /// Allowed to see it, not to do this to it (a refused *read* is [`ApiError::NotFound`],
    /// so that nothing leaks).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The token's scopes do not cover this type at all (403 with `WWW-Authenticate:
    /// Bearer error="insufficient_scope"`, RFC 6750 §3.1): `scope` is the one it would
    /// need, `message` says so in words.
    #[error("insufficient scope: {scope}")]
    InsufficientScope { scope: String, message: String },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn bad_request(expression: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest(vec![Issue::error(IssueType::Invalid, expression, message)])
    }

    fn status_and_issues(&self) -> (StatusCode, Vec<Issue>) {
        use ApiError::*;
        let one = |code, msg: &str| vec![Issue::error(code, "", msg)];
        match self {
            BadRequest(issues) => (StatusCode::BAD_REQUEST, issues.clone()),
            Unprocessable(issues) => (StatusCode::UNPROCESSABLE_ENTITY, issues.clone()),
            NotFound(m) => (StatusCode::NOT_FOUND, one(IssueType::NotFound, m)),
            Gone { message, .. } => (StatusCode::GONE, one(IssueType::Deleted, message)),
            PreconditionFailed(m) => (StatusCode::PRECONDITION_FAILED, one(IssueType::Conflict, m)),
            Conflict(m) => (StatusCode::CONFLICT, one(IssueType::Conflict, m)),
            MethodNotAllowed(m) => (
                StatusCode::METHOD_NOT_ALLOWED,
                one(IssueType::NotSupported, m),
            ),
            UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                one(IssueType::NotSupported, m),
            ),
            NotAcceptable(m) => (StatusCode::NOT_ACCEPTABLE, one(IssueType::NotSupported, m)),
            PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                one(
                    IssueType::TooLong,
                    &format!("the request body is larger than the limit of {limit} bytes"),
                ),
            ),
            ResourceTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                one(
                    IssueType::TooLong,
                    &format!(
                        "the resource is larger than the server's limit of {limit} bytes \
                         (--max-resource-bytes)"
                    ),
                ),
            ),
            Unauthorized { message, .. } => {
                (StatusCode::UNAUTHORIZED, one(IssueType::Login, message))
            }
            Forbidden(m) => (StatusCode::FORBIDDEN, one(IssueType::Forbidden, m)),
            InsufficientScope { message, .. } => {
                (StatusCode::FORBIDDEN, one(IssueType::Forbidden, message))
            }
            Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                one(IssueType::Exception, m),
            ),
            Store(StoreError::Busy(why)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![Issue::error(
                    IssueType::Transient,
                    "",
                    format!("the service is busy ({why}); nothing was changed; try again shortly"),
                )],
            ),
            Store(StoreError::Closed) => (
                StatusCode::SERVICE_UNAVAILABLE,
                one(
                    IssueType::Exception,
                    "the server is shutting down; try again shortly",
                ),
            ),
            Store(e) => {
                tracing::error!(error = %e, "storage error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    one(
                        IssueType::Exception,
                        "an internal error occurred; nothing was changed",
                    ),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, issues) = self.status_and_issues();
        let body = serde_json::to_vec(&fhir::outcome::operation_outcome(&issues))
            .expect("an OperationOutcome always serialises");
        let mut resp = (status, [(header::CONTENT_TYPE, FHIR_JSON)], body).into_response();
        if let ApiError::Gone {
            etag: Some(etag), ..
        } = &self
            && let Ok(v) = HeaderValue::from_str(etag)
        {
            resp.headers_mut().insert(header::ETAG, v);
        }
        if let ApiError::InsufficientScope { scope, .. } = &self
            && let Ok(v) = HeaderValue::from_str(&format!(
                r#"Bearer realm="passport", error="insufficient_scope", scope="{scope}""#
            ))
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if matches!(
            self,
            ApiError::Unavailable(_) | ApiError::Store(StoreError::Busy(_) | StoreError::Closed)
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
        }
        if let ApiError::Unauthorized { token_given, .. } = &self {
            // RFC 6750 §3: an error code only when a token was sent. The reason is in the
            // OperationOutcome, not repeated here.
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(if *token_given {
                    r#"Bearer realm="passport", error="invalid_token""#
                } else {
                    r#"Bearer realm="passport""#
                }),
            );
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<domain::guard::Refused> for ApiError {
    fn from(r: domain::guard::Refused) -> ApiError {
        use domain::guard::Refused;
        match r {
            not_found @ Refused::NotFound { .. } => ApiError::NotFound(not_found.to_string()),
            Refused::Forbidden(why) => ApiError::Forbidden(why),
            Refused::InsufficientScope { scope, message } => {
                ApiError::InsufficientScope { scope, message }
            }
            Refused::Store(e) => ApiError::Store(e),
        }
    }
}
