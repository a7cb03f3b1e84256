//! Connections: one diesel `MultiConnection` over SQLite and PostgreSQL, an r2d2 manager that
//! picks the backend from the URL scheme (keeping the real connect error), per-connection SQLite
//! PRAGMAs, and the embedded migrations.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// The embedded default.
    Sqlite(SqliteConnection),
    /// The multi-node backend.
    Postgres(PgConnection),
}

/// Runs a diesel query on the concrete connection of either backend (the expression is compiled
/// once per backend). Queries through the `MultiConnection` wrapper are prepared anew on every
/// call; on the concrete connections each backend's prepared-statement cache is used.
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::storage::connection::DbConnection::Sqlite($c) => $body,
            $crate::storage::connection::DbConnection::Postgres($c) => $body,
        }
    };
}
pub(super) use on_backend;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Every SQLite connection gets these: a busy timeout instead of instant errors (first, so that
/// the PRAGMAs after it wait too: switching to WAL fails at once while another process holds
/// the file, as one that is closing it does), WAL so readers never block the writer, FULL sync
/// so a commit is on disk before the client hears of it.
///
/// Reads go through a 64 MiB page cache per connection (a search touches hundreds of index
/// pages) and no memory map: after every commit, by any connection, SQLite drops a reader's
/// whole map at its next read and maps and faults the file in again. With the audit trail
/// committing twice a second under load, that cost as much as the system calls it saved and
/// made the slowest requests several times slower (see `benches/README.md`). After a burst of
/// writes has grown the WAL file, the next checkpoint that restarts it cuts it back to 64 MiB.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
    PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
    PRAGMA mmap_size = 0; PRAGMA cache_size = -65536; \
    PRAGMA journal_size_limit = 67108864;";

/// Every PostgreSQL connection gets these. Statements are prepared once and cached, and after
/// five runs PostgreSQL would switch a search to a generic plan made without the values, which
/// for a chained search on a million resources meant minutes instead of milliseconds: plans are
/// made with the values each time. No statement runs longer than 30 s (the client gets a 500
/// OperationOutcome rather than a connection held forever); migrations lift the limit.
const POSTGRES_SETTINGS: &str =
    "SET plan_cache_mode = force_custom_plan; SET statement_timeout = '30s';";

thread_local! {
    /// Whether the PostgreSQL connection this database thread holds plans its statements once
    /// for all values ([`plan_once`]). Connections start planning with each run's values.
    static PLANS_ONCE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tells that this thread holds a new connection, which plans with each run's values.
pub(super) fn held_anew() {
    PLANS_ONCE.with(|p| p.set(false));
}

/// On PostgreSQL, plans the connection's next statements once for all values (`true`), or
/// again with each run's values (`false`, how every connection starts). Planning a search is
/// a third of its cost on the server (for a search by a patient and a code, two thirds), and
/// the plan of a search of one type by plain conditions whose driver is narrow and found by
/// equality does not depend on the values; other searches keep their plans made with the
/// values (see
/// [`POSTGRES_SETTINGS`]). The setting is changed only when it differs from what this thread's
/// connection has, and never inside a transaction: a transaction that rolls back would undo it
/// behind our back.
pub(super) fn plan_once(conn: &mut DbConnection, once: bool) -> diesel::QueryResult<()> {
    if let DbConnection::Postgres(c) = conn
        && PLANS_ONCE.with(std::cell::Cell::get) != once
    {
        c.batch_execute(if once {
            "SET plan_cache_mode = force_generic_plan"
        } else {
            "SET plan_cache_mode = force_custom_plan"
        })?;
        PLANS_ONCE.with(|p| p.set(once));
    }
    Ok(())
}

/// Hands out connections to the configured database.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: DatabaseUrl) -> Self {
        ConnectionManager { url }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => {
                let mut conn =
                    PgConnection::establish(url).map_err(diesel::r2d2::Error::ConnectionError)?;
                conn.batch_execute(POSTGRES_SETTINGS)
                    .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Postgres(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        diesel::r2d2::R2D2Connection::is_broken(conn)
    }
}

/// Refreshes the query planner's statistics where they are stale, as a search's plan depends
/// on them. On SQLite, `PRAGMA optimize` (sampling at most a thousand rows per index). On
/// PostgreSQL, `ANALYZE` of this schema's tables that were never analysed or changed by more
/// than a tenth since (autovacuum's own rule): autovacuum gets there too, but only on its next
/// round, and until then a freshly loaded table is planned as if empty.
pub fn optimize(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            c.batch_execute("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
        }
        DbConnection::Postgres(c) => analyze_listed(
            c,
            "SELECT quote_ident(relname) AS name FROM pg_stat_user_tables \
             WHERE schemaname = current_schema() AND n_live_tup + n_mod_since_analyze > 0 \
             AND (COALESCE(last_analyze, last_autoanalyze) IS NULL \
                  OR n_mod_since_analyze > 50 + n_live_tup / 10)",
        ),
    }
}

/// `ANALYZE` of the PostgreSQL tables that `list` names (a query of one `name` column).
fn analyze_listed(c: &mut diesel::PgConnection, list: &str) -> diesel::QueryResult<()> {
    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let tables: Vec<Table> = diesel::sql_query(list).load(c)?;
    if tables.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = tables.into_iter().map(|t| t.name).collect();
    c.batch_execute(&format!("ANALYZE {}", names.join(", ")))
}

/// Refreshes the planner statistics of every table, after a bulk load. [`optimize`] goes by
/// PostgreSQL's change counters, which each connection reports only every second or so (and an
/// idle one later still): right after a load they may not show it yet.
pub fn analyze(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => c.batch_execute("PRAGMA analysis_limit = 1000; ANALYZE;"),
        DbConnection::Postgres(c) => analyze_listed(
            c,
            "SELECT quote_ident(tablename) AS name FROM pg_tables \
             WHERE schemaname = current_schema()",
        ),
    }
}

/// Runs the pending migrations of the connection's backend. On PostgreSQL an advisory lock
/// keeps several nodes starting at once from racing.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, String> {
    match conn {
        DbConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|m| m.len())
            .map_err(|e| e.to_string()),
        DbConnection::Postgres(c) => {
            const LOCK: &str = "SET statement_timeout = 0; SELECT pg_advisory_lock(7262011)";
            c.batch_execute(LOCK).map_err(|e| e.to_string())?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|m| m.len())
                .map_err(|e| e.to_string());
            c.batch_execute("SELECT pg_advisory_unlock(7262011)")
                .map_err(|e| e.to_string())?;
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use r2d2::ManageConnection;

    #[derive(QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = diesel::sql_types::Text)]
        compile_options: String,
    }

    #[derive(QueryableByName)]
    struct MmapSize {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        mmap_size: i64,
    }

    #[derive(QueryableByName)]
    struct Limit {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        journal_size_limit: i64,
    }

    /// The bundled SQLite carries the options of `.cargo/config.toml` (a build outside this
    /// directory, or a dropped file, would quietly lose them), and every connection the pool
    /// opens gets the PRAGMAs.
    #[test]
    fn sqlite_is_built_and_set_up_as_configured() {
        let dir = tempfile::tempdir().unwrap();
        let manager = ConnectionManager::new(DatabaseUrl::Sqlite(dir.path().join("t.db")));
        let DbConnection::Sqlite(mut conn) = manager.connect().unwrap() else {
            unreachable!("a SQLite URL gives a SQLite connection")
        };
        let options: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<CompileOption>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        for present in ["THREADSAFE=2", "DEFAULT_MEMSTATUS=0", "ENABLE_QPSG"] {
            assert!(options.iter().any(|o| o == present), "{options:?}");
        }
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        let limit = diesel::sql_query("PRAGMA journal_size_limit")
            .load::<Limit>(&mut conn)
            .unwrap();
        assert_eq!(limit[0].journal_size_limit, 64 << 20);
        let mapped = diesel::sql_query("PRAGMA mmap_size")
            .load::<MmapSize>(&mut conn)
            .unwrap();
        assert_eq!(mapped[0].mmap_size, 0);
    }

    /// A new connection waits for another one's exclusive lock instead of failing at once.
    #[test]
    fn a_new_connection_waits_out_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        // A file in rollback-journal mode, locked: switching it to WAL must wait.
        let mut holder = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
        holder
            .batch_execute("CREATE TABLE t (v INTEGER); BEGIN EXCLUSIVE;")
            .unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            holder.batch_execute("COMMIT").unwrap();
        });
        let opened = ConnectionManager::new(DatabaseUrl::Sqlite(path)).connect();
        release.join().unwrap();
        assert!(opened.is_ok(), "{:?}", opened.err());
    }

    #[derive(QueryableByName, Debug, PartialEq)]
    struct TokenRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        resource_id: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        ord: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }

    #[derive(QueryableByName)]
    struct Plan {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }

    fn plan(conn: &mut SqliteConnection, query: &str) -> String {
        diesel::sql_query(format!("EXPLAIN QUERY PLAN {query}"))
            .load::<Plan>(conn)
            .unwrap()
            .into_iter()
            .map(|p| p.detail)
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn sqlite(conn: &mut DbConnection) -> &mut SqliteConnection {
        let DbConnection::Sqlite(c) = conn else {
            unreachable!("a SQLite URL gives a SQLite connection")
        };
        c
    }

    fn tokens(conn: &mut SqliteConnection) -> Vec<TokenRow> {
        diesel::sql_query(
            "SELECT resource_id, ord, value FROM search_token ORDER BY resource_id, value",
        )
        .load(conn)
        .unwrap()
    }

    /// The migration that clusters the index rows by their owner keeps every row written
    /// before it, and afterwards a write numbers its rows anew, a probe of one resource's rows
    /// reads the primary key, the URL index holds only the rows that have a URL, and references
    /// are looked up by their target first.
    #[test]
    fn index_rows_survive_their_tables_being_clustered_by_owner() {
        let dir = tempfile::tempdir().unwrap();
        let manager = ConnectionManager::new(DatabaseUrl::Sqlite(dir.path().join("t.db")));
        let mut conn = manager.connect().unwrap();
        run_migrations(&mut conn).unwrap();
        let c = sqlite(&mut conn);
        // Back to before `2026-12-06-000010_clustered_index_rows` (the migrations after it are
        // reverted first).
        for version in [
            "20261207000014",
            "20261207000012",
            "20261206000011",
            "20261206000010",
        ] {
            let reverted = c.revert_last_migration(SQLITE_MIGRATIONS).unwrap();
            assert_eq!(reverted.to_string(), version);
        }
        c.batch_execute(
            "INSERT INTO search_token (resource_type, resource_id, code, system, value) VALUES \
               ('Patient', 'a', 'identifier', 's', '1'), ('Patient', 'a', 'identifier', 's', '2'), \
               ('Patient', 'b', 'gender', NULL, 'female'); \
             INSERT INTO search_reference (resource_type, resource_id, code, target_type, target_id, target_url) VALUES \
               ('Observation', 'o', 'subject', 'Patient', 'a', NULL), \
               ('Observation', 'o', 'performer', NULL, NULL, 'http://elsewhere/Practitioner/1');",
        )
        .unwrap();
        assert_eq!(run_migrations(&mut conn), Ok(4));
        let c = sqlite(&mut conn);
        let kept = tokens(c);
        assert_eq!(
            kept.iter()
                .map(|r| (r.resource_id.as_str(), r.value.as_str()))
                .collect::<Vec<_>>(),
            [("a", "1"), ("a", "2"), ("b", "female")]
        );
        assert_ne!(kept[0].ord, kept[1].ord, "{kept:?}");
        assert!(
            diesel::sql_query("SELECT rowid FROM search_token")
                .execute(c)
                .is_err(),
            "the index tables are WITHOUT ROWID"
        );

        let rows = crate::search::IndexRows {
            tokens: ["3", "4"]
                .map(|v| crate::search::extract::TokenRow {
                    code: "identifier".into(),
                    system: Some("s".into()),
                    value: Some(v.into()),
                    display: None,
                })
                .to_vec(),
            ..Default::default()
        };
        super::super::index::clear(&mut conn, "Patient", "a").unwrap();
        super::super::index::insert(
            &mut conn,
            "Patient",
            "a",
            super::super::index::Rows::Extracted(&rows),
        )
        .unwrap();
        let c = sqlite(&mut conn);
        let written: Vec<(String, i64, String)> = tokens(c)
            .into_iter()
            .map(|r| (r.resource_id, r.ord, r.value))
            .collect();
        assert_eq!(
            written,
            [
                ("a".into(), 0, "3".into()),
                ("a".into(), 1, "4".into()),
                ("b".into(), kept[2].ord, "female".into())
            ]
        );

        let probe = plan(
            c,
            "SELECT value FROM search_token INDEXED BY sqlite_autoindex_search_token_1 \
             WHERE resource_type = 'Patient' AND resource_id = 'a' AND code = 'identifier'",
        );
        assert!(probe.contains("USING PRIMARY KEY"), "{probe}");
        let by_url = plan(
            c,
            "SELECT resource_id FROM search_reference WHERE resource_type = 'Observation' \
             AND code = 'performer' AND target_url = 'http://elsewhere/Practitioner/1'",
        );
        assert!(by_url.contains("search_reference_url"), "{by_url}");
        let urls: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM pragma_index_list('search_reference') \
              WHERE name = 'search_reference_url' AND partial = 1)",
        ))
        .get_result(c)
        .unwrap();
        assert_eq!(urls, 1);
        // References are looked up by target first: one resource's references to one target
        // under several parameters share a page of the index.
        let lookup: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "(SELECT group_concat(name, ',') FROM \
              (SELECT name FROM pragma_index_info('search_reference_lookup') ORDER BY seqno))",
        ))
        .get_result(c)
        .unwrap();
        assert_eq!(
            lookup,
            "resource_type,target_id,code,target_type,resource_id"
        );
        let by_target = plan(
            c,
            "SELECT resource_id FROM search_reference WHERE resource_type = 'Observation' \
             AND code = 'subject' AND target_id = '1' AND target_type = 'Patient'",
        );
        assert!(by_target.contains("search_reference_lookup"), "{by_target}");
    }
}
