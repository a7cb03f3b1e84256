//! Composition root: opens storage, builds the state of each surface and assembles the router
//! (`/fhir`, `/healthz`, `/openapi.json`, `/docs`), then serves it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::Config;
use crate::fhir::instant::format_instant;
use crate::rest::{self, RestState};
use crate::storage::{Storage, StorageError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// How often the planner statistics are refreshed.
const MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Opens the configured database and runs its migrations.
pub async fn open_storage(config: &Config, clock: SharedClock) -> Result<Storage, AppError> {
    let (url, size) = (config.database.clone(), config.db_pool_size);
    tokio::task::spawn_blocking(move || Storage::open(&url, size, clock))
        .await
        .map_err(|e| AppError::Storage(StorageError::Task(e.to_string())))?
        .map_err(AppError::from)
}

/// The FHIR state: the official search parameters plus those stored in the database.
pub async fn rest_state(
    storage: Storage,
    public_url: &str,
    clock: &dyn Clock,
) -> Result<RestState, AppError> {
    let registry = rest::search_parameters::rebuild(&storage).await?;
    Ok(RestState::new(
        storage,
        format!("{public_url}/fhir"),
        format_instant(clock.now_millis()),
        crate::search::SharedRegistry::new(registry),
    ))
}

/// The whole HTTP application.
pub fn router(config: &Config, rest_state: RestState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(rest::router(rest_state, config.max_body_bytes))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", rest::openapi::ApiDoc::openapi()))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// A running server.
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its external base URL.
    pub public_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), AppError>>,
    /// Background work: search parameters kept in step with other nodes, planner statistics.
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting connections, finishes requests in flight and waits for the server.
    pub async fn stop(mut self) -> Result<(), AppError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for task in &self.background {
            task.abort();
        }
        self.task
            .await
            .map_err(|e| AppError::Serve(std::io::Error::other(e.to_string())))?
    }
}

/// Opens storage, binds `config.addr` and serves in the background.
pub async fn start(config: &Config) -> Result<RunningServer, AppError> {
    let clock: SharedClock = Arc::new(SystemClock);
    let storage = open_storage(config, clock.clone()).await?;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| AppError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AppError::Bind {
        addr: config.addr,
        source,
    })?;
    let public_url = config.public_url(addr);
    let seen = storage.latest_seq("SearchParameter").await?;
    let state = rest_state(storage, &public_url, clock.as_ref()).await?;
    let sync = rest::search_parameters::spawn_sync(state.clone(), seen);
    let maintenance = {
        let storage = state.storage.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(MAINTENANCE_INTERVAL).await;
                if let Err(e) = storage.optimize().await {
                    tracing::warn!("refreshing the planner statistics failed: {e}");
                }
            }
        })
    };
    let app = router(config, state);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .map_err(AppError::Serve)
    });
    Ok(RunningServer {
        addr,
        public_url,
        shutdown: Some(tx),
        task,
        background: vec![sync, maintenance],
    })
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn serve(config: &Config) -> Result<(), AppError> {
    let server = start(config).await?;
    tracing::info!(addr = %server.addr, public_url = server.public_url, database = config.database.redacted(), "Hearth is serving FHIR at {}/fhir", server.public_url);
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
