//! Read-only connections to the database file, for reads only.
//!
//! A read runs on tokio's blocking pool with a connection of its own, so
//! it neither holds an async worker nor waits for the writer's lock; in WAL
//! mode it sees every commit made before it started.
//!
//! At most [`AT_ONCE`] reads run at a time, each on a connection kept for
//! reuse; the others wait their turn without holding a thread. Twenty
//! `getAll`s at once on a long queue, each on a thread and a connection of
//! its own, kept both cores busy with reads: the writer thread, and the
//! async workers answering other clients' acks, then waited for a CPU
//! (acks up to 122 ms; README "Failure modes").

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OpenFlags};

use super::db;
use crate::store::StoreError;

/// Reads that run at once (and read connections kept): fewer than the
/// cores of a small machine, so a burst of reads leaves a core to the
/// writer and to the async workers.
const AT_ONCE: usize = 2;

#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    /// Connections no read is using right now.
    idle: Mutex<Vec<Connection>>,
    /// A read's turn: [`AT_ONCE`] permits.
    turns: Arc<tokio::sync::Semaphore>,
    /// Set on shutdown: no read opens a connection after it.
    closed: std::sync::atomic::AtomicBool,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            turns: Arc::new(tokio::sync::Semaphore::new(AT_ONCE)),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Closes the idle connections; later reads fail with `Unavailable`.
    pub(super) fn shutdown(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn take(&self) -> Result<Connection, StoreError> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is shut down"));
        }
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(db("opening a read connection"))?;
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(db("opening a read connection"))?;
                Ok(conn)
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < AT_ONCE && !self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            idle.push(conn);
        }
    }

    /// Runs `work` on a read connection, off the async workers.
    pub(super) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // The turn goes with the work: a caller that stops waiting does
        // not free it while its read still runs.
        let turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is shut down"))?;
        let readers = self.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let conn = readers.take()?;
            let result = work(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|_| StoreError::Unavailable("a read stopped before it finished (see the log)"))?
    }
}
