//! The versioned resource store, the only module that names diesel: r2d2 pools over SQLite or
//! PostgreSQL, embedded migrations, an append-only version table with a current-version table,
//! tombstones for deletes, and history. Blocking database work runs on dedicated database threads,
//! never on the async executor.

pub mod accounts;
mod clauses;
mod conditional;
mod connection;
mod contents;
mod counts;
mod history;
mod import;
mod includes;
mod index;
pub mod oauth;
mod plans;
mod predicates;
mod projection;
mod reindex;
mod schema;
mod search;
mod sql;
mod threads;
mod transaction;
mod versions;
mod writer;

use std::sync::Arc;

use diesel::Connection;
use serde_json::Value;

use crate::clock::SharedClock;
use crate::config::DatabaseUrl;
use crate::fhir::instant::EpochMillis;
use crate::fhir::{ResourceId, Unstamped, VersionId};
use crate::search::IndexRows;
pub use conditional::{Conditional, MAX_CONDITIONAL_DELETES};
use connection::{ConnectionManager, DbConnection};
pub use history::{HistoryQuery, HistoryScope};
pub use import::{ImportItem, Imported};
pub use projection::IndexValue;
pub use reindex::Current;
pub use search::{Hit, SearchPage};
pub use threads::{below_the_writer, run_at};
pub use transaction::{Expect, Source, TxDone, TxStep};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `If-Match` named a version that is not the current one.
    #[error("version conflict: expected version {expected}, current is {current:?}")]
    VersionConflict {
        /// The version the client expected.
        expected: VersionId,
        /// The current version, if the resource exists.
        current: Option<VersionId>,
    },
    /// Concurrent writers kept colliding on the same resource.
    #[error("the resource is being changed by another request")]
    Contention,
    /// No connection could be had from the pool in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database could not be opened or migrated at start.
    #[error("database setup failed: {0}")]
    Setup(String),
    /// A query failed.
    #[error("database error: {0}")]
    Database(diesel::result::Error),
    /// A statement ran past the database's time limit.
    #[error("statement timeout: {0}")]
    Timeout(String),
    /// A paging cursor that this server did not issue, or for another search.
    #[error("{0}")]
    BadCursor(String),
    /// A blocking task failed to complete.
    #[error("storage task failed: {0}")]
    Task(String),
    /// What a transaction read while it was planned changed before it was written.
    #[error("{0}")]
    Stale(String),
    /// The database lacks a row another of its rows names (restored or edited underneath).
    #[error("the database is inconsistent: {0}")]
    Inconsistent(String),
    /// A step of a transaction failed (and the whole transaction with it).
    #[error("entry {entry}: {source}")]
    Entry {
        /// The Bundle entry of the step.
        entry: usize,
        /// Why it failed.
        source: Box<StorageError>,
    },
}

impl From<diesel::result::Error> for StorageError {
    fn from(error: diesel::result::Error) -> Self {
        match error {
            diesel::result::Error::DatabaseError(_, ref info)
                if info.message().contains("statement timeout") =>
            {
                StorageError::Timeout(info.message().to_owned())
            }
            other => StorageError::Database(other),
        }
    }
}

/// Runs `sql` on its own connection to the SQLite file at `path` (tests that shape a database,
/// such as a trigger that refuses some writes).
#[cfg(test)]
pub(crate) fn sqlite_execute(path: &std::path::Path, sql: &str) {
    use diesel::Connection as _;
    use diesel::connection::SimpleConnection as _;
    let mut conn = diesel::sqlite::SqliteConnection::establish(&path.to_string_lossy())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    conn.batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

impl StorageError {
    /// Whether the database refused the data itself (a constraint, a value its type cannot
    /// hold): the same write would fail again. Lost connections, timeouts, serialization
    /// failures and the like are not: the same write may succeed later.
    pub fn refused_data(&self) -> bool {
        use diesel::result::DatabaseErrorKind as Kind;
        match self {
            StorageError::Database(diesel::result::Error::DatabaseError(kind, _)) => !matches!(
                kind,
                Kind::ClosedConnection | Kind::SerializationFailure | Kind::ReadOnlyTransaction
            ),
            StorageError::Entry { source, .. } => source.refused_data(),
            _ => false,
        }
    }
}

/// Result of storage operations.
pub type StorageResult<T> = Result<T, StorageError>;

/// How a version came to be, as FHIR's `Bundle.entry.request.method` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    /// Create.
    Post,
    /// Update or update-as-create.
    Put,
    /// Delete (a tombstone).
    Delete,
}

impl WriteMethod {
    /// The HTTP method.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMethod::Post => "POST",
            WriteMethod::Put => "PUT",
            WriteMethod::Delete => "DELETE",
        }
    }

    fn parse(text: &str) -> WriteMethod {
        match text {
            "POST" => WriteMethod::Post,
            "DELETE" => WriteMethod::Delete,
            _ => WriteMethod::Put,
        }
    }
}

/// One stored version of a resource.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// Position in the global write order.
    pub seq: i64,
    /// The resource type.
    pub resource_type: String,
    /// The logical id.
    pub id: String,
    /// The version.
    pub version_id: VersionId,
    /// When it was written.
    pub last_updated: EpochMillis,
    /// How it was written.
    pub method: WriteMethod,
    /// True for a delete tombstone.
    pub deleted: bool,
    /// True when this version brought the resource into existence (first version, or the first
    /// after a delete).
    pub created: bool,
    /// The resource as served (canonical JSON); empty for a tombstone.
    pub content: Vec<u8>,
}

/// What a delete did.
#[derive(Debug)]
pub enum DeleteOutcome {
    /// There was no such resource.
    NotFound,
    /// It was already deleted; nothing was written.
    AlreadyDeleted(StoredVersion),
    /// A tombstone version was written.
    Deleted(StoredVersion),
}

fn manager_for(url: &DatabaseUrl) -> ConnectionManager {
    ConnectionManager::new(url.clone())
}

/// Threads (and connections) writing imports on PostgreSQL: the audit trail keeps two of its
/// writes in flight, so one can be built while the other commits.
const IMPORT_THREADS: u32 = 2;

/// Starts the PostgreSQL import threads, on a pool of their own.
fn import_threads(url: &DatabaseUrl) -> StorageResult<threads::DbThreads> {
    let pool = r2d2::Pool::builder()
        .max_size(IMPORT_THREADS)
        .min_idle(Some(0))
        .test_on_check_out(false)
        .connection_timeout(std::time::Duration::from_secs(10))
        .build_unchecked(manager_for(url));
    threads::DbThreads::start(pool, IMPORT_THREADS as usize, None)
        .map_err(|e| StorageError::Setup(format!("cannot start the import threads: {e}")))
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    clock: SharedClock,
    /// The threads that run database work.
    threads: threads::DbThreads,
    /// On PostgreSQL, the threads that write imports (the audit trail's AuditEvents, bulk
    /// imports), on connections of their own: a request never waits for a thread while an
    /// import commits. SQLite writes everything through its one writer.
    imports: Option<threads::DbThreads>,
    /// On SQLite, the group-commit writer; PostgreSQL writes from any pooled connection.
    sqlite_writer: Option<writer::Writer>,
    /// The contents of versions that searches have read.
    contents: Arc<contents::Contents>,
    /// Bounded counts that searches made lately to choose their plans.
    counts: Arc<counts::Counts>,
}

impl Storage {
    /// Opens the database, creating the SQLite file's folder if needed, and runs migrations.
    pub fn open(url: &DatabaseUrl, pool_size: u32, clock: SharedClock) -> StorageResult<Storage> {
        if let DatabaseUrl::Sqlite(path) = url
            && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StorageError::Setup(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let manager = manager_for(url);
        // A SQLite file another connection is still closing (a restart in the same process,
        // a backup) is locked for a moment: retry for a few seconds before giving up.
        let mut attempts = 0;
        let mut first = loop {
            match r2d2::ManageConnection::connect(&manager) {
                Ok(conn) => break conn,
                Err(e) if attempts < 50 && e.to_string().contains("locked") => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(StorageError::Setup(format!(
                        "cannot connect to {}: {e}",
                        url.redacted()
                    )));
                }
            }
        };
        connection::run_migrations(&mut first).map_err(StorageError::Setup)?;
        connection::optimize(&mut first).map_err(|e| StorageError::Setup(e.to_string()))?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            // Broken connections are found by `has_broken`; a test query per checkout would
            // double the cost of a read.
            .test_on_check_out(false)
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(manager)
            .map_err(|e| {
                StorageError::Setup(format!("cannot open a pool to {}: {e}", url.redacted()))
            })?;
        let sqlite_writer = match url {
            DatabaseUrl::Sqlite(_) => {
                let open = || {
                    r2d2::ManageConnection::connect(&manager_for(url)).map_err(|e| {
                        StorageError::Setup(format!("cannot open the SQLite writer: {e}"))
                    })
                };
                Some(writer::Writer::start(open()?, open()?, clock.clone())?)
            }
            DatabaseUrl::Postgres(_) => None,
        };
        // SQLite reads are CPU work: one thread per core. PostgreSQL calls wait on the network,
        // so every pooled connection gets a thread.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let thread_count = match url {
            DatabaseUrl::Sqlite(_) => cores.max(2).min(pool_size as usize),
            DatabaseUrl::Postgres(_) => pool_size as usize,
        };
        // On SQLite reads run below the writer, which is started from this thread.
        let nice = threads::below_the_writer(url);
        let threads = threads::DbThreads::start(pool, thread_count, nice)
            .map_err(|e| StorageError::Setup(format!("cannot start the database threads: {e}")))?;
        let imports = match url {
            DatabaseUrl::Postgres(_) => Some(import_threads(url)?),
            DatabaseUrl::Sqlite(_) => None,
        };
        Ok(Storage {
            clock,
            threads,
            imports,
            sqlite_writer,
            contents: Arc::new(contents::Contents::new(contents::DEFAULT_BYTES)),
            counts: Arc::default(),
        })
    }

    /// Keeps at most `bytes` of the versions' contents that searches read in memory (none
    /// when 0), instead of the default 128 MiB.
    pub fn with_content_cache(mut self, bytes: u64) -> Storage {
        self.contents = Arc::new(contents::Contents::new(bytes));
        self
    }

    /// Whether the database is PostgreSQL (SQLite otherwise).
    fn postgres(&self) -> bool {
        self.sqlite_writer.is_none()
    }

    /// Runs blocking database work on a database thread, its statements planned with their
    /// values on PostgreSQL. A plain search leaves its connection planning once for all values
    /// (`connection::plan_once`), and a plan made once can be far worse for other statements:
    /// a type's newest versions, planned for any type, were read by walking every version.
    async fn with_conn<T, F>(&self, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection, &Storage) -> StorageResult<T> + Send + 'static,
    {
        self.with_conn_as_set(move |conn, storage| {
            connection::plan_once(conn, false)?;
            work(conn, storage)
        })
        .await
    }

    /// [`Storage::with_conn`] leaving the connection's planning as it is: for a search, which
    /// sets it itself, and for a statement planned the same either way.
    async fn with_conn_as_set<T, F>(&self, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection, &Storage) -> StorageResult<T> + Send + 'static,
    {
        let storage = self.clone();
        self.threads.run(move |conn| work(conn, &storage)).await
    }

    /// The current version of a resource (a tombstone if it was deleted), if it ever existed.
    pub async fn find_current(
        &self,
        resource_type: &str,
        id: &ResourceId,
    ) -> StorageResult<Option<StoredVersion>> {
        let (t, id) = (resource_type.to_owned(), id.clone());
        self.with_conn(move |conn, _| versions::find_current(conn, &t, &id))
            .await
    }

    /// One version of a resource.
    pub async fn find_version(
        &self,
        resource_type: &str,
        id: &ResourceId,
        version: VersionId,
    ) -> StorageResult<Option<StoredVersion>> {
        let (t, id) = (resource_type.to_owned(), id.clone());
        self.with_conn(move |conn, _| versions::find_version(conn, &t, &id, version))
            .await
    }

    /// Creates a resource with a new server-assigned id.
    pub async fn create(
        &self,
        resource_type: &str,
        resource: Value,
        index: IndexRows,
    ) -> StorageResult<StoredVersion> {
        // The id, the stored bytes (but for the version) and the index inserts are made here,
        // so that the write itself (on SQLite, the one writer thread) only runs them.
        let (t, id) = (resource_type.to_owned(), ResourceId::generate());
        let resource = Unstamped::new(&resource);
        let inserts = index::Inserts::new(self.postgres(), &[(&t, id.as_str(), &index)]);
        drop(index);
        if self.postgres() {
            // A new id cannot meet a concurrent write: no retry, no transaction around it.
            // One INSERT, planned the same either way.
            return self
                .with_conn_as_set(move |conn, storage| {
                    let now = storage.clock.now_millis();
                    versions::create_postgres(conn, (&t, &id), &resource, &inserts, now)
                })
                .await;
        }
        self.write(move |conn, now| {
            let rows = index::Rows::Built(&inserts);
            versions::create(conn, (&t, &id), &resource, rows, now)
        })
        .await
    }

    /// Updates a resource, or creates it with the given id; `if_match` is the version the client
    /// expects to replace.
    pub async fn update(
        &self,
        resource_type: &str,
        id: &ResourceId,
        resource: Value,
        index: IndexRows,
        if_match: Option<VersionId>,
    ) -> StorageResult<StoredVersion> {
        let (t, id) = (resource_type.to_owned(), id.clone());
        let resource = Unstamped::new(&resource);
        let inserts = index::Inserts::new(self.postgres(), &[(&t, id.as_str(), &index)]);
        drop(index);
        self.write(move |conn, now| {
            let rows = index::Rows::Built(&inserts);
            versions::update(conn, &t, &id, &resource, rows, if_match, now)
        })
        .await
    }

    /// Deletes a resource by writing a tombstone version.
    pub async fn delete(
        &self,
        resource_type: &str,
        id: &ResourceId,
        if_match: Option<VersionId>,
    ) -> StorageResult<DeleteOutcome> {
        let (t, id) = (resource_type.to_owned(), id.clone());
        self.write(move |conn, now| versions::delete(conn, &t, &id, if_match, now))
            .await
    }

    /// Runs the steps of a FHIR transaction in one database transaction: all of them, in
    /// order, or none.
    pub async fn transaction(&self, steps: Vec<TxStep>) -> StorageResult<Vec<TxDone>> {
        let inserts = transaction::inserts(self.postgres(), &steps);
        self.write(move |conn, now| transaction::run(conn, &steps, &inserts, now))
            .await
    }

    /// Imports resources with their ids in one database transaction (see `import`).
    pub async fn import(&self, items: Vec<ImportItem>) -> StorageResult<Vec<Imported>> {
        self.import_shared(std::sync::Arc::new(items)).await
    }

    /// [`Storage::import`] of items the caller keeps, to try again after a failure.
    pub async fn import_shared(
        &self,
        items: std::sync::Arc<Vec<ImportItem>>,
    ) -> StorageResult<Vec<Imported>> {
        // Serializing and building the inserts of many resources is CPU work: not on an async
        // worker, and not on the SQLite writer either (see `import::Prepared`).
        let postgres = self.postgres();
        let shared = items.clone();
        let prepared = tokio::task::spawn_blocking(move || import::prepare(postgres, &shared))
            .await
            .map_err(|e| StorageError::Task(format!("preparing an import failed: {e}")))?;
        let work =
            move |conn: &mut DbConnection, now| import::run(conn, &items, Some(&prepared), now);
        match &self.imports {
            // An import only inserts, and reads what is stored by key: its statements plan the
            // same for every value, so they are planned once, on threads that keep the setting
            // (planning took a tenth of the audit trail's index inserts: 3.7 to 6.1 ms a part
            // of 128 AuditEvents, `benches/README.md`).
            Some(imports) => self.write_on(imports, true, work).await,
            None => self.write(work).await,
        }
    }

    /// Runs a search.
    pub async fn search(
        &self,
        query: crate::search::query::SearchQuery,
    ) -> StorageResult<SearchPage> {
        self.with_conn_as_set(move |conn, storage| {
            search::search(conn, &storage.contents, &storage.counts, &query)
        })
        .await
    }

    /// The token and date index values (`tokens`, `dates`) of the resources of `resource_type`
    /// that match any of `queries`.
    pub async fn project(
        &self,
        resource_type: &str,
        queries: Vec<crate::search::query::SearchQuery>,
        tokens: Vec<String>,
        dates: Vec<String>,
    ) -> StorageResult<Vec<IndexValue>> {
        let t = resource_type.to_owned();
        self.with_conn(move |conn, _| projection::project(conn, &t, &queries, &tokens, &dates))
            .await
    }

    /// Refreshes the planner statistics (SQLite; see `connection::optimize`). Search plans
    /// depend on them: without statistics SQLite may scan a whole index for a sort key.
    pub async fn optimize(&self) -> StorageResult<()> {
        self.write(|conn, _| Ok(connection::optimize(conn)?)).await
    }

    /// Refreshes the planner statistics of every table (after a bulk load; see
    /// `connection::analyze`).
    pub async fn analyze(&self) -> StorageResult<()> {
        self.write(|conn, _| Ok(connection::analyze(conn)?)).await
    }

    /// The database's query plans for a search (see `benches/README.md`).
    pub async fn explain(&self, query: crate::search::query::SearchQuery) -> StorageResult<String> {
        self.with_conn(move |conn, _| search::explain(conn, &query))
            .await
    }

    /// Ids of the live resources that match `query`, at most `limit` (conditional
    /// interactions).
    pub async fn matching(
        &self,
        query: crate::search::query::SearchQuery,
        limit: usize,
    ) -> StorageResult<Vec<String>> {
        self.with_conn(move |conn, _| search::matching(conn, &query, limit))
            .await
    }

    /// Conditional create: creates unless `query` matches; `key` names the criteria.
    pub async fn create_if_none(
        &self,
        query: crate::search::query::SearchQuery,
        key: String,
        resource: Value,
        index: IndexRows,
    ) -> StorageResult<Conditional> {
        let resource = Unstamped::new(&resource);
        self.write(move |conn, now| conditional::create(conn, &query, &key, &resource, &index, now))
            .await
    }

    /// Conditional update: updates the one resource `query` matches, or creates one.
    pub async fn update_matching(
        &self,
        query: crate::search::query::SearchQuery,
        key: String,
        resource: Value,
        index: IndexRows,
        if_match: Option<VersionId>,
    ) -> StorageResult<Conditional> {
        let body_id = resource
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let resource = Unstamped::new(&resource);
        self.write(move |conn, now| {
            let body = (&resource, body_id.as_deref());
            conditional::update(conn, &query, &key, body, &index, if_match, now)
        })
        .await
    }

    /// Conditional delete: deletes every resource `query` matches, or returns how many there
    /// were when they are more than [`MAX_CONDITIONAL_DELETES`].
    pub async fn delete_matching(
        &self,
        query: crate::search::query::SearchQuery,
        key: String,
    ) -> StorageResult<Result<Vec<StoredVersion>, usize>> {
        self.write(move |conn, now| conditional::delete(conn, &query, &key, now))
            .await
    }

    /// The live resources of a type (or one resource), in key order, `limit` at a time after
    /// `after`.
    pub async fn current_batch(
        &self,
        only_type: Option<String>,
        only_id: Option<String>,
        after: Option<(String, String)>,
        limit: i64,
    ) -> StorageResult<Vec<Current>> {
        self.with_conn(move |conn, _| {
            reindex::batch(
                conn,
                only_type.as_deref(),
                only_id.as_deref(),
                after.as_ref(),
                limit,
            )
        })
        .await
    }

    /// Rebuilds the index rows of every live resource in scope with `extract`; returns how
    /// many were reindexed.
    pub async fn reindex(
        &self,
        only_type: Option<String>,
        only_id: Option<String>,
        extract: impl Fn(&serde_json::Value) -> IndexRows + Send + Sync + 'static,
    ) -> StorageResult<usize> {
        let extract = std::sync::Arc::new(extract);
        let mut after = None;
        let mut total = 0;
        loop {
            let batch = self
                .current_batch(only_type.clone(), only_id.clone(), after.clone(), 200)
                .await?;
            let Some(last) = batch.last() else {
                return Ok(total);
            };
            after = Some((last.resource_type.clone(), last.id.clone()));
            let rows: Vec<(Current, IndexRows)> = batch
                .into_iter()
                .map(|c| {
                    let value: serde_json::Value =
                        serde_json::from_slice(&c.content).unwrap_or_default();
                    let rows = extract(&value);
                    (c, rows)
                })
                .collect();
            let rows = std::sync::Arc::new(rows);
            total += self
                .write(move |conn, _| reindex::rewrite(conn, &rows))
                .await?;
        }
    }

    /// The position in the write order of the newest version of any resource of type `t`.
    ///
    /// Read as the last entry of the type's range in `(resource_type, seq)`, the only index
    /// ordered that way. Written as `max(seq)` for one type, PostgreSQL may walk the whole
    /// write order backwards instead, filtering by type: with plans made once for all types
    /// (the setting a plain search leaves on its connection), always, and with the type's
    /// value, for a type whose newest version is not among the last written. For a type with
    /// no version at all, that reads every version on each of the once-a-second watches.
    pub async fn latest_seq(&self, t: &str) -> StorageResult<Option<i64>> {
        let t = t.to_owned();
        self.with_conn(move |conn, _| {
            use diesel::prelude::*;
            use schema::resource_versions::dsl;
            Ok(connection::on_backend!(conn, c => dsl::resource_versions
                .filter(dsl::resource_type.ge(&t))
                .filter(dsl::resource_type.le(&t))
                .order((dsl::resource_type.desc(), dsl::seq.desc()))
                .select(dsl::seq)
                .first::<i64>(c)
                .optional())?)
        })
        .await
    }

    /// Versions in a history scope, newest first.
    pub async fn history(&self, query: HistoryQuery) -> StorageResult<Vec<StoredVersion>> {
        self.with_conn(move |conn, _| history::history(conn, &query))
            .await
    }

    /// Runs one write to the small tables (accounts, authorization) as its own transaction
    /// (SQLite: through the writer), without the version-collision retries of resource writes.
    async fn small_write<T, F>(&self, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: Fn(&mut DbConnection, i64) -> StorageResult<T> + Send + 'static,
    {
        if let Some(writer) = &self.sqlite_writer {
            return writer.submit(work).await;
        }
        self.with_conn(move |conn, storage| {
            let now = storage.clock.now_millis();
            conn.transaction(|conn| work(conn, now))
        })
        .await
    }

    /// Runs one write: through the group-commit writer on SQLite; on PostgreSQL as its own
    /// transaction, retried when a concurrent writer took the same version number first (the
    /// unique key on versions is what keeps updates from being lost).
    async fn write<T, F>(&self, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: Fn(&mut DbConnection, EpochMillis) -> StorageResult<T> + Send + 'static,
    {
        if let Some(writer) = &self.sqlite_writer {
            return writer.submit(work).await;
        }
        self.write_on(&self.threads, false, work).await
    }

    /// [`Storage::write`] on PostgreSQL, on one of `threads`, its statements planned once for
    /// all values (`once`) or with their values.
    async fn write_on<T, F>(
        &self,
        threads: &threads::DbThreads,
        once: bool,
        work: F,
    ) -> StorageResult<T>
    where
        T: Send + 'static,
        F: Fn(&mut DbConnection, EpochMillis) -> StorageResult<T> + Send + 'static,
    {
        let clock = self.clock.clone();
        threads
            .run(move |conn| {
                // A write may search (conditional writes): with the values, unless it is an
                // import, and set outside the transaction.
                connection::plan_once(conn, once)?;
                for _ in 0..20 {
                    let now = clock.now_millis();
                    match conn.transaction(|conn| work(conn, now)) {
                        Err(StorageError::Database(diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::UniqueViolation
                            | diesel::result::DatabaseErrorKind::SerializationFailure,
                            _,
                        ))) => continue,
                        other => return other,
                    }
                }
                Err(StorageError::Contention)
            })
            .await
    }
}
