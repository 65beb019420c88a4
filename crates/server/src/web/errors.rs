//! The pages' one error type. A mistake the person can put right is not an error here: it
//! is a field error on the form it came from (`templates::field_error`). What is left —
//! the database failing, a stored record that cannot be read — is [`PageError`]: logged
//! with a short reference (never the person's data: store errors name no patient), and
//! shown as the NHS.UK "Sorry, there is a problem with the service" page quoting that
//! reference, so a support call can find the log line.
//!
//! There is no blanket conversion: each kind of failure a page may pass on with `?` has its
//! own `From`, so a new kind has to be thought about rather than becoming a 500 silently.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::audit::AuditClosed;
use domain::directory::DirectoryError;
use domain::records::Invalid;
use domain::types::{StoreError, WriteAllError};

use super::templates::message;

/// An unexpected failure of a page (see the module documentation).
#[derive(Debug)]
pub struct PageError {
    what: &'static str,
    cause: String,
    /// The database was busy (`StoreError::Busy`): 503 with `Retry-After`, not a fault.
    busy: bool,
}

impl PageError {
    /// A failure of `what` (a few words: "the database", "a stored record") with its cause.
    pub fn new(what: &'static str, cause: impl std::fmt::Display) -> PageError {
        PageError {
            what,
            cause: cause.to_string(),
            busy: false,
        }
    }
}

/// What every page handler returns.
pub type PageResult = Result<Response, PageError>;

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if self.busy {
            tracing::warn!(what = self.what, error = %self.cause, "page refused: busy");
            let mut resp = message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sorry, the service is busy",
                &[
                    "Try again in a minute. Nothing you entered has been saved.",
                    "In an emergency, call 999.",
                ],
                None,
            );
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(crate::error::RETRY_AFTER),
            );
            return resp;
        }
        let reference = reference();
        tracing::error!(%reference, what = self.what, error = %self.cause, "page failed");
        message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sorry, there is a problem with the service",
            &[
                "Try again later. Nothing you entered has been saved.",
                &format!("If you contact the service desk, give them this reference: {reference}"),
            ],
            None,
        )
    }
}

/// A short reference for one failure: 8 characters, unambiguous to read out.
fn reference() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    domain::auth::random_bytes::<8>()
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> PageError {
        PageError {
            busy: matches!(e, StoreError::Busy(_)),
            ..PageError::new("the database", e)
        }
    }
}

impl From<WriteAllError> for PageError {
    fn from(e: WriteAllError) -> PageError {
        e.error.into()
    }
}

impl From<DirectoryError> for PageError {
    fn from(e: DirectoryError) -> PageError {
        PageError::new("the directory", e)
    }
}

impl From<Invalid> for PageError {
    fn from(e: Invalid) -> PageError {
        PageError::new("a record the service built", e)
    }
}

impl From<serde_json::Error> for PageError {
    fn from(e: serde_json::Error) -> PageError {
        PageError::new("a stored record", e)
    }
}

impl From<AuditClosed> for PageError {
    fn from(e: AuditClosed) -> PageError {
        PageError::new("the audit recorder", e)
    }
}
