//! The FHIR REST API under `/fhir`: one file per interaction in `interactions/`, content
//! negotiation, preconditions, and the edge middleware that makes every error an
//! OperationOutcome.

mod edge;
mod error;
mod format;
pub mod interactions;
pub mod openapi;
mod preconditions;
mod response;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use serde_json::Value;

pub use error::ApiError;
use interactions::{capabilities, create, delete, history, read, update, vread};

use crate::fhir::ResourceId;
use crate::fhir::outcome::IssueType;
use crate::storage::Storage;

/// What the FHIR handlers share.
#[derive(Clone)]
pub struct RestState {
    /// The versioned store.
    pub storage: Storage,
    /// The FHIR base URL, `{public}/fhir`.
    pub base: Arc<str>,
    /// The CapabilityStatement, built once at start.
    pub capabilities: Arc<Value>,
}

impl RestState {
    /// State for a server whose FHIR base URL is `base`.
    pub fn new(storage: Storage, base: String, started_at: String) -> Self {
        let capabilities = Arc::new(capabilities::capability_statement(&base, &started_at));
        RestState {
            storage,
            base: base.into(),
            capabilities,
        }
    }
}

/// The routes under `/fhir`. Its fallback answers every other URL: with an OperationOutcome
/// under `/fhir`, with a plain 404 elsewhere.
pub fn router(state: RestState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/fhir/metadata", get(capabilities::read_capabilities))
        .route("/fhir/_history", get(history::system_history))
        .route(
            "/fhir/{resource_type}",
            get(type_search_unavailable).post(create::create_resource),
        )
        .route("/fhir/{resource_type}/_history", get(history::type_history))
        .route(
            "/fhir/{resource_type}/{id}",
            get(read::read_resource)
                .put(update::update_resource)
                .delete(delete::delete_resource),
        )
        .route(
            "/fhir/{resource_type}/{id}/_history",
            get(history::instance_history),
        )
        .route(
            "/fhir/{resource_type}/{id}/_history/{version}",
            get(vread::vread_resource),
        )
        .fallback(edge::unknown_route)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // A panic becomes a 500 here, which the edge turns into an OperationOutcome; the
        // connection and the server carry on.
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(middleware::from_fn(edge::fhir_edge))
        .with_state(state)
}

/// Checks the resource type of a URL: unknown types are 404.
fn known_type(resource_type: &str) -> Result<(), ApiError> {
    crate::fhir::check_resource_type(resource_type)
        .map_err(|issue| ApiError::with_issues(axum::http::StatusCode::NOT_FOUND, vec![issue]))
}

/// Checks the id of a URL.
fn url_id(id: &str) -> Result<ResourceId, ApiError> {
    ResourceId::parse(id).map_err(ApiError::from)
}

/// Type-level search is not part of this server version; say so instead of answering wrongly.
async fn type_search_unavailable(
    axum::extract::Path(resource_type): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Err(unknown) = known_type(&resource_type) {
        return unknown.into_response();
    }
    let refusal = ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        IssueType::NotSupported,
        format!(
            "search on {resource_type} is not supported by this server version (see /fhir/metadata)"
        ),
    );
    // A 405 names the methods the URL does allow.
    ([(axum::http::header::ALLOW, "POST")], refusal).into_response()
}
