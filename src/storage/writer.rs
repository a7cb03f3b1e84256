//! Group commit for SQLite. SQLite has one writer at a time and a durable commit costs an fsync,
//! so a dedicated thread owns the write connection, takes every write waiting in its queue, runs
//! them in one transaction, commits once, and only then answers each caller. Nothing is
//! acknowledged before the commit returns.
//!
//! A failed write must undo itself alone. A savepoint per write does that, but SQLite copies
//! every page a savepoint touches into a sub-journal first, which made those copies outnumber
//! the WAL writes more than three to one. So a batch first runs without savepoints; only when
//! one of its writes fails is it rolled back and run again with a savepoint per write. Writes
//! are therefore re-runnable (`Fn`), and run again with the same timestamp.
//!
//! Checkpoints (copying the WAL back into the database file) run on a thread of their own, so
//! the writer does not stop committing while one runs: SQLite's automatic checkpoint runs in
//! the commit that crosses its threshold, and took a tenth of the writer's time under creates.
//! The WAL file starts over only when a write begins with every frame copied, which a thread
//! running beside a busy writer never sees: so once the WAL is long, the writer copies the
//! frames the checkpoint thread has not reached yet, right after a commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use tokio::sync::oneshot;

use super::connection::DbConnection;
use super::{StorageError, StorageResult};
use crate::clock::SharedClock;
use crate::fhir::instant::EpochMillis;

/// Most writes committed together.
const MAX_BATCH: usize = 512;
/// Least time between two checkpoints: a page written many times in that span is copied once.
const CHECKPOINT_SPACING: Duration = Duration::from_millis(100);
/// WAL frames (pages) past which the writer finishes a checkpoint so that the WAL starts over:
/// 16 MiB of 4 KiB pages.
const RESTART_FRAMES: i64 = 4096;

/// One queued write and the caller waiting for it.
trait Job: Send {
    /// Runs the write (in its own savepoint when `isolated`) and keeps its result; returns
    /// whether it succeeded.
    fn run(&mut self, conn: &mut DbConnection, now: EpochMillis, isolated: bool) -> bool;
    /// Answers the caller once the batch's commit is known (`Some` when the commit failed).
    fn answer(self: Box<Self>, commit_failure: Option<&StorageError>);
}

struct Pending<T, F> {
    work: F,
    result: Option<StorageResult<T>>,
    /// Gets the result, and `work` back: what a write captured (a parsed resource, its index
    /// rows) is dropped on the caller's thread, not on the writer's.
    caller: oneshot::Sender<(StorageResult<T>, F)>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: Fn(&mut DbConnection, EpochMillis) -> StorageResult<T> + Send + 'static,
{
    fn run(&mut self, conn: &mut DbConnection, now: EpochMillis, isolated: bool) -> bool {
        let result = if isolated {
            // A nested transaction is a savepoint: this write's failure undoes this write only.
            conn.transaction(|conn| (self.work)(conn, now))
        } else {
            (self.work)(conn, now)
        };
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn answer(self: Box<Self>, commit_failure: Option<&StorageError>) {
        let Pending {
            work,
            result,
            caller,
        } = *self;
        let result = match (commit_failure, result) {
            (Some(error), _) => Err(StorageError::Task(format!("commit failed: {error}"))),
            (None, Some(result)) => result,
            (None, None) => Err(StorageError::Task(
                "the SQLite writer skipped a write".into(),
            )),
        };
        let _ = caller.send((result, work));
    }
}

/// Why a batch's transaction ended without committing.
enum Abandoned {
    /// One of the writes failed; nothing of the batch was kept.
    WriteFailed,
    /// The database failed (beginning or committing the transaction).
    Database(StorageError),
}

impl From<diesel::result::Error> for Abandoned {
    fn from(error: diesel::result::Error) -> Self {
        Abandoned::Database(StorageError::Database(error))
    }
}

/// Runs a batch in one transaction and commits it; returns the commit's failure, if any.
fn commit_batch(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Job>],
    now: EpochMillis,
) -> Option<StorageError> {
    let quick = conn.transaction::<_, Abandoned, _>(|conn| {
        for job in batch.iter_mut() {
            if !job.run(conn, now, false) {
                return Err(Abandoned::WriteFailed);
            }
        }
        Ok(())
    });
    match quick {
        Ok(()) => None,
        // Alone in its batch, the failed write's rollback was the whole transaction's.
        Err(Abandoned::WriteFailed) if batch.len() == 1 => None,
        Err(Abandoned::WriteFailed) => conn
            .transaction::<_, StorageError, _>(|conn| {
                for job in batch.iter_mut() {
                    job.run(conn, now, true);
                }
                Ok(())
            })
            .err(),
        Err(Abandoned::Database(error)) => Some(error),
    }
}

/// The counts `PRAGMA wal_checkpoint` answers with.
#[derive(diesel::QueryableByName)]
struct CheckpointCounts {
    /// Frames in the WAL.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    log: i64,
}

/// Copies what the WAL holds into the database file, without waiting for readers or the
/// writer (`PASSIVE`); returns the frames in the WAL.
fn checkpoint(conn: &mut DbConnection) -> StorageResult<i64> {
    use diesel::RunQueryDsl;
    let counts =
        diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<CheckpointCounts>(conn)?;
    Ok(counts.log)
}

/// The checkpoint thread's side of the writer.
struct Checkpoints {
    /// Tells the thread of a commit (full means it is already told).
    committed: mpsc::SyncSender<()>,
    /// Set by the thread when the WAL is longer than [`RESTART_FRAMES`].
    restart_due: Arc<AtomicBool>,
}

impl Checkpoints {
    /// Starts the checkpoint thread on `conn`: after each commit it is told of, it checkpoints,
    /// then rests [`CHECKPOINT_SPACING`]. It stops when the `Checkpoints` is dropped.
    fn start(mut conn: DbConnection) -> StorageResult<Checkpoints> {
        let (committed, commits) = mpsc::sync_channel::<()>(1);
        let restart_due = Arc::new(AtomicBool::new(false));
        let due = restart_due.clone();
        std::thread::Builder::new()
            .name("hearth-sqlite-checkpoint".into())
            .spawn(move || {
                while commits.recv().is_ok() {
                    match checkpoint(&mut conn) {
                        Ok(frames) => due.store(frames >= RESTART_FRAMES, Ordering::Relaxed),
                        Err(error) => {
                            tracing::warn!(%error, "a WAL checkpoint failed; the next commit retries")
                        }
                    }
                    std::thread::sleep(CHECKPOINT_SPACING);
                }
            })
            .map_err(|e| {
                StorageError::Setup(format!("cannot start the SQLite checkpoints: {e}"))
            })?;
        Ok(Checkpoints {
            committed,
            restart_due,
        })
    }

    /// After a commit on the writer's `conn`: finishes the checkpoint there when the WAL should
    /// start over, and tells the thread.
    fn after_commit(&self, conn: &mut DbConnection) {
        if self.restart_due.swap(false, Ordering::Relaxed)
            && let Err(error) = checkpoint(conn)
        {
            tracing::warn!(%error, "a WAL checkpoint failed; the next one retries");
        }
        let _ = self.committed.try_send(());
    }
}

/// Hands writes to the writer thread.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn`, and the checkpoint thread on `checkpoints`; they
    /// stop when every `Writer` is dropped.
    pub(super) fn start(
        mut conn: DbConnection,
        checkpoints: DbConnection,
        clock: SharedClock,
    ) -> StorageResult<Writer> {
        // A savepoint, or a multi-row INSERT that may abort (the import's versions; index rows
        // are inserted `OR FAIL` and need none), first copies each page it changes to a
        // statement journal; past 64 KiB that journal is a temporary file, and its writes were
        // nearly as many as the WAL's during an import. On the writer it stays in memory.
        conn.batch_execute("PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 0")?;
        let checkpoints = Checkpoints::start(checkpoints)?;
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("hearth-sqlite-writer".into())
            .spawn(move || {
                while let Ok(first) = jobs.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match jobs.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let failure = commit_batch(&mut conn, &mut batch, clock.now_millis());
                    if let Some(error) = &failure {
                        tracing::error!(%error, writes = batch.len(), "group commit failed");
                    }
                    for job in batch {
                        job.answer(failure.as_ref());
                    }
                    if failure.is_none() {
                        checkpoints.after_commit(&mut conn);
                    }
                }
            })
            .map_err(|e| StorageError::Setup(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Writer { queue })
    }

    /// Runs `work` in the next batch and returns its result after the batch is committed.
    /// `work` may run twice (see the module's note), always with the same timestamp.
    pub(super) async fn submit<T, F>(&self, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: Fn(&mut DbConnection, EpochMillis) -> StorageResult<T> + Send + 'static,
    {
        let (caller, answered) = oneshot::channel::<(StorageResult<T>, F)>();
        let job = Pending {
            work,
            result: None,
            caller,
        };
        self.queue
            .send(Box::new(job))
            .map_err(|_| StorageError::Task("the SQLite writer has stopped".into()))?;
        let (result, _work) = answered
            .await
            .map_err(|_| StorageError::Task("the SQLite writer dropped a write".into()))?;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::RunQueryDsl;
    use diesel::sql_types::BigInt;
    use std::sync::atomic::AtomicUsize;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        v: i64,
    }

    /// Inserts `values` in one multi-row `INSERT OR FAIL`, as index rows are written: a row
    /// that fails leaves the rows before it in place, for the transaction to undo.
    fn insert(conn: &mut DbConnection, values: &[i64]) -> StorageResult<()> {
        let rows: Vec<String> = values.iter().map(|v| format!("({v})")).collect();
        diesel::sql_query(format!(
            "INSERT OR FAIL INTO t (v) VALUES {}",
            rows.join(", ")
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(StorageError::Database)
    }

    /// A job inserting `values` in order, and where its caller's answer arrives.
    fn job(
        values: &'static [i64],
        runs: &Arc<AtomicUsize>,
    ) -> (
        Box<dyn Job>,
        oneshot::Receiver<(StorageResult<()>, impl Send + 'static)>,
    ) {
        let (caller, answered) = oneshot::channel();
        let runs = runs.clone();
        let work = move |conn: &mut DbConnection, _now: EpochMillis| {
            runs.fetch_add(1, Ordering::SeqCst);
            insert(conn, values)
        };
        let pending = Pending {
            work,
            result: None,
            caller,
        };
        (Box::new(pending), answered)
    }

    fn run_batch(jobs: &[&'static [i64]]) -> (Vec<bool>, Vec<i64>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::DatabaseUrl::Sqlite(dir.path().join("w.db"));
        let mut conn = r2d2::ManageConnection::connect(&super::super::manager_for(&url)).unwrap();
        conn.batch_execute("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
            .unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let (mut batch, mut answers): (Vec<_>, Vec<_>) =
            jobs.iter().map(|values| job(values, &runs)).unzip();
        let failure = commit_batch(&mut conn, &mut batch, 0);
        assert!(failure.is_none(), "{failure:?}");
        for job in batch {
            job.answer(None);
        }
        let answers = answers
            .iter_mut()
            .map(|answer| answer.try_recv().unwrap().0.is_ok())
            .collect();
        let kept = diesel::sql_query("SELECT v FROM t ORDER BY v")
            .load::<Row>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|row| row.v)
            .collect();
        (answers, kept, runs.load(Ordering::SeqCst))
    }

    #[test]
    fn a_batch_without_failures_runs_each_write_once() {
        let (answers, kept, runs) = run_batch(&[&[1, 2], &[3], &[4, 5]]);
        assert_eq!(answers, [true, true, true]);
        assert_eq!(kept, [1, 2, 3, 4, 5]);
        assert_eq!(runs, 3);
    }

    #[test]
    fn a_failed_write_leaves_no_trace_and_the_others_are_kept() {
        // The third write inserts 9, then fails on 2 (taken by the first): its 9 must go.
        let (answers, kept, runs) = run_batch(&[&[1, 2], &[3], &[9, 2], &[4]]);
        assert_eq!(answers, [true, true, false, true]);
        assert_eq!(kept, [1, 2, 3, 4]);
        // Three ran before the failure, then all four again in savepoints.
        assert_eq!(runs, 7);
    }

    #[test]
    fn a_write_failing_alone_is_not_run_again_and_leaves_no_trace() {
        let (answers, kept, runs) = run_batch(&[&[7, 7]]);
        assert_eq!(answers, [false]);
        assert!(kept.is_empty(), "{kept:?}");
        assert_eq!(runs, 1);
    }

    /// A writer on a new file with a table `t` of blobs, and the file's path.
    fn blob_writer(dir: &tempfile::TempDir) -> (std::path::PathBuf, Writer) {
        let path = dir.path().join("w.db");
        let url = crate::config::DatabaseUrl::Sqlite(path.clone());
        let open = || r2d2::ManageConnection::connect(&super::super::manager_for(&url)).unwrap();
        open()
            .batch_execute("CREATE TABLE t (v BLOB NOT NULL)")
            .unwrap();
        let clock: SharedClock = Arc::new(crate::clock::SystemClock);
        (path, Writer::start(open(), open(), clock).unwrap())
    }

    /// Commits `count` writes of 256 KiB through `writer`, one after another.
    async fn write_blobs(writer: &Writer, count: usize) {
        for _ in 0..count {
            writer
                .submit(|conn, _| {
                    diesel::sql_query("INSERT INTO t (v) VALUES (randomblob(262144))")
                        .execute(conn)
                        .map(|_| ())
                        .map_err(StorageError::Database)
                })
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn the_checkpoint_thread_copies_commits_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = blob_writer(&dir);
        let before = std::fs::metadata(&path).unwrap().len();
        // 2 MiB: under SQLite's automatic threshold (1,000 pages), which the writer turns off
        // anyway; only the checkpoint thread moves these pages into the file.
        write_blobs(&writer, 8).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut size = before;
        while size < before + 2 * 1024 * 1024 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            size = std::fs::metadata(&path).unwrap().len();
        }
        assert!(
            size >= before + 2 * 1024 * 1024,
            "the database file stayed at {size} bytes (from {before}): nothing was checkpointed"
        );
    }

    #[tokio::test]
    async fn the_wal_starts_over_while_writes_keep_coming() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = blob_writer(&dir);
        // 128 MiB, one commit after another: the checkpoint thread never finds the WAL fully
        // copied, so without the writer's help the WAL would hold all of it.
        write_blobs(&writer, 512).await;
        let wal = std::fs::metadata(path.with_extension("db-wal"))
            .unwrap()
            .len();
        assert!(
            wal < 60 * 1024 * 1024,
            "the WAL grew to {wal} bytes for 128 MiB written: it never started over"
        );
    }
}
