//! Group commit for SQLite. SQLite has one writer at a time and a durable commit costs an fsync,
//! so a dedicated thread owns the write connection, takes every write waiting in its queue, runs
//! each in its own savepoint inside one transaction, commits once, and only then answers each
//! caller. A failed write rolls back its savepoint alone; a failed commit fails the whole batch.
//! Nothing is acknowledged before the commit returns.

use std::sync::mpsc;

use diesel::Connection;
use tokio::sync::oneshot;

use super::connection::DbConnection;
use super::{StorageError, StorageResult};
use crate::clock::SharedClock;
use crate::fhir::instant::EpochMillis;

/// Most writes committed together.
const MAX_BATCH: usize = 512;

/// Answers a caller once the batch's commit is known (`Some` when the commit failed).
type Reply = Box<dyn FnOnce(Option<&StorageError>) + Send>;
/// One write: runs in a savepoint and returns how to answer its caller.
type Job = Box<dyn FnOnce(&mut DbConnection, EpochMillis) -> Reply + Send>;

/// Hands writes to the writer thread.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`; it stops when every `Writer` is dropped.
    pub(super) fn start(mut conn: DbConnection, clock: SharedClock) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel::<Job>();
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
                    let now = clock.now_millis();
                    let mut replies = Vec::with_capacity(batch.len());
                    let committed = conn.transaction::<_, StorageError, _>(|conn| {
                        replies.extend(batch.into_iter().map(|job| job(conn, now)));
                        Ok(())
                    });
                    let failure = committed.err();
                    if let Some(error) = &failure {
                        tracing::error!(%error, writes = replies.len(), "group commit failed");
                    }
                    for reply in replies {
                        reply(failure.as_ref());
                    }
                }
            })?;
        Ok(Writer { queue })
    }

    /// Runs `work` in the next batch and returns its result after the batch is committed.
    pub(super) async fn submit<T, F>(&self, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection, EpochMillis) -> StorageResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<StorageResult<T>>();
        let job: Job = Box::new(move |conn, now| {
            // A nested transaction is a savepoint: this write's failure undoes this write only.
            let result = conn.transaction(|conn| work(conn, now));
            Box::new(move |commit_failure: Option<&StorageError>| {
                let result = match commit_failure {
                    Some(error) => Err(StorageError::Task(format!("commit failed: {error}"))),
                    None => result,
                };
                let _ = answer.send(result);
            })
        });
        self.queue
            .send(job)
            .map_err(|_| StorageError::Task("the SQLite writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| StorageError::Task("the SQLite writer dropped a write".into()))?
    }
}
