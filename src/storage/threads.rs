//! The database threads: a fixed set of threads, each holding a pooled connection, that run the
//! blocking diesel work handed to them through a channel, so no database call runs on the async
//! executor. Compared with a blocking task per call, a thread that is already awake takes the
//! next piece of work without a wake-up, which under load is most of the cost of a read.
//!
//! On SQLite the threads that serve requests run below the writer ([`below_the_writer`]).

use crossbeam_channel::{Receiver, Sender};

use super::connection::{ConnectionManager, DbConnection};
use super::{StorageError, StorageResult};
use crate::config::DatabaseUrl;

/// A piece of work, given the thread's connection (or why there is none).
type Job = Box<dyn FnOnce(StorageResult<&mut DbConnection>) + Send>;

/// Hands work to the database threads. Threads stop when every `DbThreads` is dropped.
#[derive(Clone)]
pub(super) struct DbThreads {
    jobs: Sender<Job>,
}

/// How far below the SQLite writer (in nice steps) the threads that serve requests run.
const BELOW: i32 = 2;

/// The scheduling priority (nice) for the threads that serve requests on the database at
/// `url`: on SQLite, [`BELOW`] steps below the calling thread's, which is the writer's when the
/// writer is started from the same thread. `None` on PostgreSQL, and where threads have no
/// priority of their own (not Linux).
///
/// On SQLite every write commits on one writer thread, the audit trail's AuditEvent for every
/// read of patient data included. With both cores busy serving searches, an equal share of
/// the CPU left the writer behind: its queue filled within seconds, and then every request
/// waited for room in it (p99 35 to 49 ms over 30 s of single-patient searches, where it was 6
/// to 9 ms until the queue filled; see `benches/README.md`). Below the writer, requests slow
/// down a little and evenly instead. Two steps, not more: at five, the writer's commits took
/// the CPU from requests often enough to raise the p99 where it would have kept up anyway. A
/// thread may always lower its own priority, so this needs no privilege.
pub fn below_the_writer(url: &DatabaseUrl) -> Option<i32> {
    if matches!(url, DatabaseUrl::Postgres(_)) {
        return None;
    }
    #[cfg(target_os = "linux")]
    {
        rustix::process::getpriority_process(None)
            .ok()
            .map(|nice| (nice + BELOW).min(19))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Runs the calling thread at `nice` (on Linux a priority is the thread's own, not the
/// process's). A failure leaves it as it was: only the writer's head start is lost.
pub fn run_at(nice: Option<i32>) {
    #[cfg(target_os = "linux")]
    if let Some(nice) = nice
        && let Err(e) = rustix::process::setpriority_process(None, nice)
    {
        tracing::debug!("cannot set a thread's priority to {nice}: {e}");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

impl DbThreads {
    /// Starts `count` threads taking connections from `pool`, at priority `nice` (see
    /// [`run_at`]; `None` leaves them as they are).
    pub(super) fn start(
        pool: r2d2::Pool<ConnectionManager>,
        count: usize,
        nice: Option<i32>,
    ) -> std::io::Result<DbThreads> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for n in 0..count.max(1) {
            let (pool, queue): (_, Receiver<Job>) = (pool.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("hearth-db-{n}"))
                .spawn(move || {
                    run_at(nice);
                    let mut held = None;
                    while let Ok(job) = queue.recv() {
                        if held.is_none() {
                            held = pool.get().ok();
                            super::connection::held_anew();
                        }
                        match held.as_mut() {
                            Some(conn) => {
                                job(Ok(&mut **conn));
                                // A broken connection goes back to the pool, which discards it.
                                if diesel::r2d2::R2D2Connection::is_broken(&mut **conn) {
                                    held = None;
                                }
                            }
                            None => job(Err(StorageError::Unavailable(
                                "no database connection".into(),
                            ))),
                        }
                    }
                })?;
        }
        Ok(DbThreads { jobs })
    }

    /// Runs `work` on a database thread and returns its result.
    pub(super) async fn run<T, F>(&self, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> StorageResult<T> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = answer.send(conn.and_then(work));
        });
        self.jobs
            .send(job)
            .map_err(|_| StorageError::Task("the database threads have stopped".into()))?;
        answered
            .await
            .map_err(|_| StorageError::Task("a database thread dropped its work".into()))?
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's priority (nice).
    fn own_priority() -> i32 {
        rustix::process::getpriority_process(None).unwrap()
    }

    #[test]
    fn on_sqlite_requests_are_served_below_the_writer() {
        // On a thread of its own, so that the test's thread keeps its priority.
        std::thread::spawn(|| {
            let base = own_priority();
            let dir = tempfile::tempdir().unwrap();
            let url = crate::config::DatabaseUrl::Sqlite(dir.path().join("priority.db"));
            let clock: crate::clock::SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
            let storage = super::super::Storage::open(&url, 2, clock).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (reader, writer) = runtime.block_on(async {
                let reader = storage.threads.run(|_| Ok(own_priority())).await;
                let writer = storage.write(|_, _| Ok(own_priority())).await;
                (reader.unwrap(), writer.unwrap())
            });
            let below = (base + BELOW).min(19);
            assert_eq!(
                writer, base,
                "the writer keeps the priority of the thread that opened the storage"
            );
            assert_eq!(
                reader, below,
                "a database thread serving a request runs below the writer"
            );
            // What the async runtime's threads do as they start: no privilege needed.
            let started = std::thread::spawn(move || {
                run_at(below_the_writer(&url));
                own_priority()
            });
            assert_eq!(started.join().unwrap(), below);
            let postgres = DatabaseUrl::Postgres("postgres://localhost/none".into());
            assert_eq!(below_the_writer(&postgres), None);
            assert_eq!(
                own_priority(),
                base,
                "lowering one thread leaves the others"
            );
        })
        .join()
        .unwrap();
    }
}
