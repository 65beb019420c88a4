//! The FHIR R4 REST API at `/fhir`. Every route of this surface is in [`routes`].

pub mod capability;
pub mod crud;
pub mod history;
pub mod request;
pub mod response;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/_history", get(history::system))
        .route("/fhir/{type}", get(search_not_yet).post(crud::create))
        .route("/fhir/{type}/_history", get(history::type_level))
        .route(
            "/fhir/{type}/{id}",
            get(crud::read)
                .put(crud::update)
                .patch(crud::patch)
                .delete(crud::delete),
        )
        .route("/fhir/{type}/{id}/_history", get(history::instance))
        .route("/fhir/{type}/{id}/_history/{vid}", get(crud::vread))
}

async fn metadata(State(st): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Response> {
    request::check_accept(&headers)?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(response::FHIR_JSON),
        )],
        st.capability.clone(),
    )
        .into_response())
}

/// Type-level search is not offered yet (the CapabilityStatement does not declare it).
async fn search_not_yet(
    axum::extract::Path(resource_type): axum::extract::Path<String>,
) -> ApiResult<Response> {
    crud::require_supported(&resource_type)?;
    Err(ApiError::MethodNotAllowed(format!(
        "search on {resource_type} is not supported yet"
    )))
}
