//! Read-only connections to the database file, for reads only.
//!
//! A read runs on tokio's blocking pool with a connection of its own, so
//! it neither holds an async worker nor waits for the writer's lock; in WAL
//! mode it sees every commit made before it started. Connections are kept
//! for reuse, a few at most, and opened on demand beyond that.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OpenFlags};

use super::db;
use crate::store::StoreError;

/// Idle connections kept for the next reads.
const KEEP_IDLE: usize = 4;

#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    /// Connections no read is using right now.
    idle: Mutex<Vec<Connection>>,
    /// Set on shutdown: no read opens a connection after it.
    closed: std::sync::atomic::AtomicBool,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
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
        if idle.len() < KEEP_IDLE && !self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            idle.push(conn);
        }
    }

    /// Runs `work` on a read connection, off the async workers.
    pub(super) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = work(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|_| StoreError::Unavailable("a read stopped before it finished (see the log)"))?
    }
}
