//! The database threads: a fixed set of threads, each holding a pooled connection, that run the
//! blocking diesel work handed to them through a channel, so no database call runs on the async
//! executor. Compared with a blocking task per call, a thread that is already awake takes the
//! next piece of work without a wake-up, which under load is most of the cost of a read.

use crossbeam_channel::{Receiver, Sender};

use super::connection::{ConnectionManager, DbConnection};
use super::{StorageError, StorageResult};

/// A piece of work, given the thread's connection (or why there is none).
type Job = Box<dyn FnOnce(StorageResult<&mut DbConnection>) + Send>;

/// Hands work to the database threads. Threads stop when every `DbThreads` is dropped.
#[derive(Clone)]
pub(super) struct DbThreads {
    jobs: Sender<Job>,
}

impl DbThreads {
    /// Starts `count` threads taking connections from `pool`.
    pub(super) fn start(
        pool: r2d2::Pool<ConnectionManager>,
        count: usize,
    ) -> std::io::Result<DbThreads> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for n in 0..count.max(1) {
            let (pool, queue): (_, Receiver<Job>) = (pool.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("hearth-db-{n}"))
                .spawn(move || {
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
