//! Composition root: opens storage, builds the state of each surface and assembles the router
//! (`/fhir`, `/console`, `/healthz`, `/openapi.json`, `/docs`), then serves it until shutdown. At start it
//! installs Hearth's own definitions (`profiles/`) and, when asked, the demo data.

mod demo;
pub mod import;
mod install;
pub mod people;
pub mod smart;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::{Auth, AuthSettings};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, TriageSettings};
use crate::console::ConsoleState;
use crate::fhir::instant::format_instant;
use crate::rest::{self, RestState};
use crate::storage::{Storage, StorageError};
use crate::triage::{Calendar, CalendarSettings, Pathways, Region, Triage, Window};

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
    /// A setting cannot be used.
    #[error("invalid {name}: {message}")]
    Config {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Hearth's own definitions or the demo data could not be stored.
    #[error("{0}")]
    Install(String),
    /// An account command failed.
    #[error("{0}")]
    Accounts(String),
}

/// How often the planner statistics are refreshed.
const MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Opens the configured database and runs its migrations.
pub async fn open_storage(config: &Config, clock: SharedClock) -> Result<Storage, AppError> {
    let (url, size) = (config.database.clone(), config.db_pool_size);
    let cache = config.content_cache_bytes;
    // Opened on a thread started from the caller's, not on a runtime thread (which may run
    // below the writer, see [`runtime_thread_start`]): the SQLite writer started there keeps
    // the caller's priority.
    let (sender, opened) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("hearth-open".into())
        .spawn(move || {
            let _ = sender.send(Storage::open(&url, size, clock));
        })
        .map_err(|e| AppError::Storage(StorageError::Task(e.to_string())))?;
    opened
        .await
        .map_err(|e| AppError::Storage(StorageError::Task(e.to_string())))?
        .map(|storage| storage.with_content_cache(cache))
        .map_err(AppError::from)
}

/// What each thread of the async runtime runs first. On SQLite they serve requests below the
/// writer ([`crate::storage::below_the_writer`]); call this on the thread that will open the
/// storage, before the runtime starts.
pub fn runtime_thread_start(config: &Config) -> impl Fn() + Send + Sync + 'static {
    let nice = crate::storage::below_the_writer(&config.database);
    move || crate::storage::run_at(nice)
}

/// The working-hours calendar settings of the configuration.
pub fn calendar_settings(settings: &TriageSettings) -> Result<CalendarSettings, AppError> {
    let region = match &settings.region {
        None => Region::EnglandAndWales,
        Some(text) => Region::parse(text).ok_or_else(|| AppError::Config {
            name: "HEARTH_TRIAGE_REGION",
            message: format!(
                "'{text}' is not a region; use england-and-wales, scotland or northern-ireland"
            ),
        })?,
    };
    let window = match &settings.window {
        None => None,
        Some(text) => Some(Window::parse(text).map_err(|message| AppError::Config {
            name: "HEARTH_TRIAGE_WINDOW",
            message,
        })?),
    };
    let dates = |name: &'static str, list: &[String]| {
        list.iter()
            .map(|text| {
                chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| AppError::Config {
                    name,
                    message: format!("'{text}' is not a date such as 2026-12-24"),
                })
            })
            .collect::<Result<std::collections::BTreeSet<_>, _>>()
    };
    Ok(CalendarSettings {
        region,
        window,
        added: dates("HEARTH_TRIAGE_EXTRA_HOLIDAYS", &settings.extra_holidays)?,
        removed: dates("HEARTH_TRIAGE_REMOVED_HOLIDAYS", &settings.removed_holidays)?,
    })
}

/// The FHIR state: the official search parameters plus those stored in the database, and the
/// triage service over `calendar` with the shipped pathways (until the stored ones are read).
pub async fn rest_state(
    storage: Storage,
    public_url: &str,
    clock: SharedClock,
    calendar: CalendarSettings,
) -> Result<RestState, AppError> {
    let registry = rest::search_parameters::rebuild(&storage).await?;
    let calendar = tokio::task::spawn_blocking(move || Calendar::new(calendar))
        .await
        .map_err(|e| AppError::Install(format!("cannot build the calendar: {e}")))?;
    let shipped = crate::fhir::profiles::find("CodeSystem", crate::triage::PATHWAY_CODE_SYSTEM_ID)
        .ok_or_else(|| AppError::Install("the pathway CodeSystem is not built in".into()))?;
    let pathways = Pathways::from_code_system(&shipped).map_err(AppError::Install)?;
    Ok(RestState::new(
        storage,
        format!("{public_url}/fhir"),
        format_instant(clock.now_millis()),
        crate::search::SharedRegistry::new(registry),
        Triage::new(calendar, pathways),
        clock,
    ))
}

/// The whole HTTP application. The FHIR routes demand the tokens of `auth`.
pub fn router(
    config: &Config,
    mut rest_state: RestState,
    console: ConsoleState,
    auth: Auth,
    audit: rest::audit::AuditTrail,
) -> Router {
    rest_state.max_bundle_entries = config.max_bundle_entries;
    rest_state.auth = Some(auth.clone());
    rest_state.audit = Some(audit);
    let directory = Arc::new(smart::RestDirectory(rest_state.clone()));
    let fhir = rest::router(rest_state, config.max_body_bytes);
    let console = console.connect(crate::console::fhir::Fhir::new(fhir.clone(), auth.clone()));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::auth::http::router(crate::auth::http::AuthState {
            auth,
            directory,
        }))
        .merge(fhir)
        .merge(crate::console::router(console))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", rest::openapi::ApiDoc::openapi()))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// A running server.
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its external base URL.
    pub public_url: String,
    /// Its authorization server (tests and operators mint tokens and launches with it).
    pub auth: Auth,
    /// Its accounts.
    pub accounts: crate::accounts::Accounts,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), AppError>>,
    /// Background work: search parameters kept in step with other nodes, planner statistics.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// The audit writer: it ends once the server (holding the trail) has stopped and every
    /// queued AuditEvent is stored.
    audit_writer: Option<tokio::task::JoinHandle<()>>,
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
        // The aborted tasks hold the storage; wait until they are gone so its connections close.
        for task in self.background.drain(..) {
            let _ = task.await;
        }
        let served = self
            .task
            .await
            .map_err(|e| AppError::Serve(std::io::Error::other(e.to_string())))?;
        if let Some(mut writer) = self.audit_writer.take()
            && tokio::time::timeout(std::time::Duration::from_secs(10), &mut writer)
                .await
                .is_err()
        {
            tracing::error!("the audit writer did not finish within 10 s; stopping it");
            writer.abort();
        }
        served
    }
}

/// Opens storage, binds `config.addr` and serves in the background.
pub async fn start(config: &Config) -> Result<RunningServer, AppError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// [`start`] with a given clock (tests fix the time).
pub async fn start_with_clock(
    config: &Config,
    clock: SharedClock,
) -> Result<RunningServer, AppError> {
    let calendar = calendar_settings(&config.triage)?;
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
    let state = rest_state(storage, &public_url, clock.clone(), calendar).await?;
    install::install_profiles(&state).await?;
    if config.demo {
        demo::load(&state).await?;
    }
    let accounts = people::accounts(config, &state, &public_url, clock.clone())?;
    people::bootstrap_admin(config, &accounts).await?;
    let auth = open_auth(&state, &accounts, &public_url, clock.clone()).await?;
    let auth_maintenance = auth.spawn_maintenance();
    let auth_accounts = accounts.clone();
    let mailer = Arc::new(people::mailer(config)?);
    let (changes, watcher) = crate::console::watch_changes(state.storage.clone());
    let console = ConsoleState::new(accounts.clone(), &public_url, mailer.writes_files())
        .map_err(AppError::Install)?
        .with_clinical(
            state.triage.clone(),
            changes,
            config.triage.guidelines_url.clone(),
        );
    let delivery = {
        let accounts = accounts.clone();
        tokio::spawn(async move { accounts.deliver_mail(mailer).await })
    };
    let seen = state.storage.latest_seq("SearchParameter").await?;
    let sync = rest::search_parameters::spawn_sync(state.clone(), seen);
    let maintenance = {
        let storage = state.storage.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(MAINTENANCE_INTERVAL).await;
                if let Err(e) = storage.optimize().await {
                    tracing::warn!("refreshing the planner statistics failed: {e}");
                }
                if let Err(e) = accounts.sweep().await {
                    tracing::warn!("removing ended sessions failed: {e}");
                }
            }
        })
    };
    let (audit, audit_writer) = rest::audit::AuditTrail::start(state.clone());
    let app = router(config, state, console, auth.clone(), audit)
        .into_make_service_with_connect_info::<SocketAddr>();
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
        auth,
        accounts: auth_accounts,
        shutdown: Some(tx),
        task,
        background: vec![sync, maintenance, delivery, auth_maintenance, watcher],
        audit_writer: Some(audit_writer),
    })
}

/// The authorization server over `state`'s storage, its keys loaded (made on first start).
pub async fn open_auth(
    state: &RestState,
    accounts: &crate::accounts::Accounts,
    public_url: &str,
    clock: SharedClock,
) -> Result<Auth, AppError> {
    Auth::start(
        state.storage.clone(),
        accounts.clone(),
        clock,
        AuthSettings::new(public_url),
    )
    .await
    .map_err(|e| AppError::Install(format!("authorization server: {e}")))
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
