//! The FHIR R4 REST API at `/fhir`. Every route of this surface is in [`routes`].

pub mod audit_search;
pub mod bundle;
pub mod capability;
pub mod conditional;
pub mod crud;
pub mod history;
pub mod matching;
pub mod paging;
pub mod request;
pub mod response;
pub mod search;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/fhir", axum::routing::post(bundle::process))
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/_history", get(history::system))
        .route(
            "/fhir/{type}",
            get(search::type_get)
                .post(crud::create)
                .put(conditional::update)
                .delete(conditional::delete),
        )
        .route("/fhir/{type}/_history", get(history::type_level))
        .route(
            "/fhir/{type}/_search",
            axum::routing::post(search::type_post),
        )
        .route(
            "/fhir/{type}/{id}",
            get(crud::read)
                .put(crud::update)
                .patch(crud::patch)
                .delete(crud::delete),
        )
        .route("/fhir/{type}/{id}/_history", get(history::instance))
        .route("/fhir/{type}/{id}/{compartment}", get(search::compartment))
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
