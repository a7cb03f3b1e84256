//! The FHIR REST API under `/fhir`: one file per interaction in `interactions/`, content
//! negotiation, preconditions, and the edge middleware that makes every error an
//! OperationOutcome.

pub mod audit;
mod bundles;
mod edge;
mod error;
mod format;
pub mod guard;
pub mod interactions;
pub mod openapi;
pub mod operations;
mod preconditions;
mod response;
pub mod search_parameters;
mod writes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use serde_json::Value;

pub use error::ApiError;
use interactions::{
    capabilities, create, delete, history, patch, read, reindex, search, update, vread,
};
pub use writes::Prepared;

use crate::clock::SharedClock;
use crate::fhir::ResourceId;
use crate::hooks::WriteHook;
use crate::search::{IndexRows, SharedRegistry};
use crate::storage::Storage;
use crate::triage::Triage;

/// Most entries of a batch or transaction Bundle, unless configured.
pub const DEFAULT_MAX_BUNDLE_ENTRIES: usize = 10_000;

/// What the FHIR handlers share.
#[derive(Clone)]
pub struct RestState {
    /// The versioned store.
    pub storage: Storage,
    /// The FHIR base URL, `{public}/fhir`.
    pub base: Arc<str>,
    /// The CapabilityStatement, built at start and again when the search parameters change.
    pub capabilities: Arc<std::sync::RwLock<Arc<Value>>>,
    /// When the server started (the statement's date).
    started_at: Arc<str>,
    /// The search parameters.
    pub registry: SharedRegistry,
    /// The domain rules that take part in writes.
    hooks: Arc<Vec<Arc<dyn WriteHook>>>,
    /// Echo triage: the calendar, the pathways and the rules of the triage operations.
    pub triage: Triage,
    /// The time.
    pub clock: SharedClock,
    /// Most entries a batch or transaction Bundle may have (more is a 413).
    pub max_bundle_entries: usize,
    /// The authorization server whose tokens every request must carry (`None` only for
    /// in-process use, such as `hearth import`, where no HTTP request arrives).
    pub auth: Option<crate::auth::Auth>,
    /// Where requests on patient data are recorded (`None` for in-process use).
    pub audit: Option<audit::AuditTrail>,
}

impl RestState {
    /// State for a server whose FHIR base URL is `base`.
    pub fn new(
        storage: Storage,
        base: String,
        started_at: String,
        registry: SharedRegistry,
        triage: Triage,
        clock: SharedClock,
    ) -> Self {
        let capabilities = Arc::new(capabilities::capability_statement(
            &base,
            &started_at,
            &registry.current(),
        ));
        RestState {
            storage,
            base: base.into(),
            capabilities: Arc::new(std::sync::RwLock::new(capabilities)),
            started_at: started_at.into(),
            registry,
            hooks: Arc::new(vec![Arc::new(triage.clone()) as Arc<dyn WriteHook>]),
            triage,
            clock,
            max_bundle_entries: DEFAULT_MAX_BUNDLE_ENTRIES,
            auth: None,
            audit: None,
        }
    }

    /// Rebuilds the CapabilityStatement from the current search parameters.
    pub fn refresh_capabilities(&self) {
        let statement = Arc::new(capabilities::capability_statement(
            &self.base,
            &self.started_at,
            &self.registry.current(),
        ));
        match self.capabilities.write() {
            Ok(mut guard) => *guard = statement,
            Err(poisoned) => *poisoned.into_inner() = statement,
        }
    }

    /// The current CapabilityStatement.
    pub fn capability_statement(&self) -> Arc<Value> {
        match self.capabilities.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The index rows of a resource about to be written.
    pub fn index(&self, resource: &Value) -> IndexRows {
        crate::search::extract(&self.registry.current(), resource, &self.base)
    }
}

/// The routes under `/fhir`. Its fallback answers every other URL: with an OperationOutcome
/// under `/fhir`, with a plain 404 elsewhere.
pub fn router(state: RestState, max_body_bytes: usize) -> Router {
    let routed = routes(&state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // A panic becomes a 500 here, which the edge turns into an OperationOutcome; the
        // connection and the server carry on.
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state);
    // The edge wraps the routing, not each route: axum adds a 405's `Allow` header after the
    // layers of a route have run, and the edge's OperationOutcome names those methods.
    Router::new().fallback_service(tower::Layer::layer(
        &middleware::from_fn(edge::fhir_edge),
        routed,
    ))
}

/// The interactions, without the edge: what the entries of a batch or transaction Bundle are
/// dispatched to (their answers keep their FHIR bodies unrendered).
fn routes(state: &RestState) -> Router<RestState> {
    Router::new()
        .route(
            "/fhir",
            get(search::system_search).post(bundles::process_bundle),
        )
        .route(
            "/fhir/_search",
            axum::routing::post(search::system_search_post),
        )
        .route(
            "/fhir/$reindex",
            axum::routing::post(reindex::reindex_system),
        )
        .route(
            "/fhir/{resource_type}/$reindex",
            axum::routing::post(reindex::reindex_type),
        )
        .route(
            "/fhir/{resource_type}/{id}/$reindex",
            axum::routing::post(reindex::reindex_instance),
        )
        .route(
            "/fhir/{resource_type}/$deadline",
            get(operations::deadline::compute_deadline),
        )
        .route(
            "/fhir/{resource_type}/$triage-stats",
            get(operations::triage_stats::triage_stats),
        )
        .route(
            "/fhir/{resource_type}/{id}/$triage",
            axum::routing::post(operations::triage::triage_request),
        )
        .route(
            "/fhir/{resource_type}/{id}/$extend-deadline",
            axum::routing::post(operations::extend_deadline::extend_deadline),
        )
        .route("/fhir/metadata", get(capabilities::read_capabilities))
        .route("/fhir/_history", get(history::system_history))
        .route(
            "/fhir/{resource_type}",
            get(search::type_search)
                .post(create::create_resource)
                .put(update::conditional_update)
                .patch(patch::conditional_patch)
                .delete(delete::conditional_delete),
        )
        .route(
            "/fhir/{resource_type}/_search",
            axum::routing::post(search::type_search_post),
        )
        .route("/fhir/{resource_type}/_history", get(history::type_history))
        .route(
            "/fhir/{resource_type}/{id}",
            get(read::read_resource)
                .put(update::update_resource)
                .patch(patch::patch_resource)
                .delete(delete::delete_resource),
        )
        .route(
            "/fhir/{resource_type}/{id}/_history",
            get(history::instance_history),
        )
        .route(
            "/fhir/{resource_type}/{id}/{target_type}",
            get(search::compartment_search),
        )
        .route(
            "/fhir/{resource_type}/{id}/_history/{version}",
            get(vread::vread_resource),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .fallback(edge::unknown_route)
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
