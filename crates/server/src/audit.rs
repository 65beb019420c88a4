//! The AuditEvent recorder and builder live in the domain ([`domain::audit`]); the API's
//! refusal of client-written AuditEvents lives here.

pub use domain::audit::*;

// ---------------------------------------------------------------------------------------
// Only the server writes AuditEvents

/// 405 for a client's create, update, patch or delete of an AuditEvent (only the server
/// records them). Called for bundle entries; [`refuse_audit_event_writes`] covers the routes.
pub fn refuse_client_write(resource_type: &str) -> Result<(), crate::error::ApiError> {
    if resource_type == "AuditEvent" {
        Err(crate::error::ApiError::MethodNotAllowed(
            "AuditEvents are recorded by the server only: they cannot be created, changed or deleted through the API".into(),
        ))
    } else {
        Ok(())
    }
}

/// Middleware: answers 405 (with an OperationOutcome) to POST/PUT/PATCH/DELETE under
/// `/fhir/AuditEvent`, except a search by POST (`/fhir/AuditEvent/_search`).
pub async fn refuse_audit_event_writes(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    use axum::response::IntoResponse;
    let mut segments = request.uri().path().split('/').filter(|s| !s.is_empty());
    let audit_event = segments.next() == Some("fhir") && segments.next() == Some("AuditEvent");
    let rest: Vec<&str> = segments.collect();
    let write = match *request.method() {
        Method::POST => rest != ["_search"],
        Method::PUT | Method::PATCH | Method::DELETE => true,
        _ => false,
    };
    if audit_event
        && write
        && let Err(e) = refuse_client_write("AuditEvent")
    {
        return e.into_response();
    }
    next.run(request).await
}
