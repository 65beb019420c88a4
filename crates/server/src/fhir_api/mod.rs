//! The FHIR R4 REST API at `/fhir`. Every route of this surface is in one table, [`table`],
//! that the router is built from and the tests iterate.

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
use axum::handler::Handler;
use axum::http::Method;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, MethodFilter, MethodRouter};

use crate::AppState;
use crate::error::ApiResult;

/// One route of the FHIR API: its path, each method with the FHIR interaction it is, and
/// the handlers. The router is built from [`table`], and the tests iterate it.
pub struct Route {
    pub path: &'static str,
    pub interactions: Vec<(Method, &'static str)>,
    handler: MethodRouter<Arc<AppState>>,
}

/// `method` on a route: the interaction `name` (R4 restful-interaction codes), `handler`.
fn on<H, T>(
    method: Method,
    name: &'static str,
    handler: H,
) -> (Method, &'static str, MethodRouter<Arc<AppState>>)
where
    H: Handler<T, Arc<AppState>>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    (method, name, routing::on(filter, handler))
}

fn route(
    path: &'static str,
    methods: Vec<(Method, &'static str, MethodRouter<Arc<AppState>>)>,
) -> Route {
    let mut handler = MethodRouter::new();
    let mut interactions = Vec::new();
    for (m, name, h) in methods {
        handler = handler.merge(h);
        interactions.push((m, name));
    }
    Route {
        path,
        interactions,
        handler,
    }
}

/// Every route of the FHIR API, in one table.
pub fn table() -> Vec<Route> {
    use Method as M;
    vec![
        route(
            "/fhir",
            vec![on(M::POST, "batch/transaction", bundle::process)],
        ),
        route("/fhir/metadata", vec![on(M::GET, "capabilities", metadata)]),
        route(
            "/fhir/_history",
            vec![on(M::GET, "history-system", history::system)],
        ),
        route(
            "/fhir/{type}",
            vec![
                on(M::GET, "search-type", search::type_get),
                on(M::POST, "create", crud::create),
                on(M::PUT, "update (conditional)", conditional::update),
                on(M::DELETE, "delete (conditional)", conditional::delete),
            ],
        ),
        route(
            "/fhir/{type}/_history",
            vec![on(M::GET, "history-type", history::type_level)],
        ),
        route(
            "/fhir/{type}/_search",
            vec![on(M::POST, "search-type", search::type_post)],
        ),
        route(
            "/fhir/{type}/{id}",
            vec![
                on(M::GET, "read", crud::read),
                on(M::PUT, "update", crud::update),
                on(M::PATCH, "patch", crud::patch),
                on(M::DELETE, "delete", crud::delete),
            ],
        ),
        route(
            "/fhir/{type}/{id}/_history",
            vec![on(M::GET, "history-instance", history::instance)],
        ),
        route(
            "/fhir/{type}/{id}/{compartment}",
            vec![on(
                M::GET,
                "search-compartment / $everything",
                search::compartment,
            )],
        ),
        route(
            "/fhir/{type}/{id}/_history/{vid}",
            vec![on(M::GET, "vread", crud::vread)],
        ),
    ]
}

/// The FHIR API's router, built from [`table`].
pub fn routes() -> Router<Arc<AppState>> {
    table()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
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
