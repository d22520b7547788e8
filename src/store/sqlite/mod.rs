//! The embedded backend: one SQLite file in WAL mode.
//!
//! - [`writer`]: the one connection that writes, with group commit.
//! - [`readers`]: read-only connections for everything that only reads
//!   (`getAll`, the inspector's queue depths, order lookups and listings,
//!   the chat history), run off the async workers, so a long read never
//!   waits behind the writer and the writer never waits behind a long read
//!   (WAL lets both run at once).
//! - [`schema`]: the schema version and its migrations.
//! - [`rows`]: rows to and from domain values.
//! - [`backup`]: a consistent copy of a database file, while a hub serves
//!   it (`parcel-hub backup`).
//!
//! A checkpoint thread moves the WAL into the database file in the
//! background, on a connection of its own.

mod backup;
mod guard;
mod readers;
mod rows;
mod schema;
mod writer;

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::{CHAT_KEPT, OrderListing, OrderPage, QueueDepth, Recorded, Store, StoreError};
use crate::domain::{
    ChatMessage, ChatPost, DistributorId, Message, MessageId, Order, OrderId, Pickup, Recipient,
    RoomName, Status, TransitionOutcome, VendorId,
};
pub use backup::BackupReport;
use readers::Readers;
use writer::Writer;

/// How much a committed write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// An acknowledged write survives the hub being killed (WAL, no fsync per commit).
    #[default]
    Process,
    /// An acknowledged write also survives power loss (fsync on every commit).
    Power,
}

impl Durability {
    /// The name the flag takes (`process`, `power`).
    pub fn name(self) -> &'static str {
        match self {
            Durability::Process => "process",
            Durability::Power => "power",
        }
    }
}

/// The page size of a new database file (an existing file keeps its own).
///
/// A commit writes every page it changed to the WAL in full, and each
/// pickup changes a leaf of `orders` at its own place in the key order:
/// with SQLite's default 4 KiB pages, the WAL grew by 8 to 10 KiB per W1
/// pickup. 2 KiB pages cut that to about 6 KiB, and the hub's CPU time on
/// W1 by about 15 %; 1 KiB pages wrote less still but were slower.
const PAGE_SIZE: u32 = 2048;

/// Orders one retention job deletes at most (one short write of the writer).
const RETENTION_BATCH: usize = 64;

/// How often the background thread moves the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Maps a SQLite error met while doing `what` to a [`StoreError`] with its cause.
fn db(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(what)(Box::new(e))
}

/// Handle to the store. Cloning is not offered: share it in an `Arc`.
#[derive(Debug)]
pub struct SqliteStore {
    writer: Writer,
    /// `None` for an in-memory database, which other connections cannot
    /// see: its reads go through the writer.
    readers: Option<Arc<Readers>>,
    /// The schema version the file had before this store opened it.
    opened_version: i64,
    /// Dropping the sender stops the checkpoint thread (file databases
    /// only); shutdown drops it and joins the thread.
    checkpoints: std::sync::Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    /// The exclusive lock on `<db>.lock` that keeps a second hub off this
    /// file; released on shutdown (or when the store is dropped).
    lock: std::sync::Mutex<Option<std::fs::File>>,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` (`:memory:` for a throwaway
    /// one), migrating a file written by an older release.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        let in_memory = path.as_os_str() == ":memory:";
        // Before SQLite maps anything: a second hub, or files it could
        // not write (a read-only `-shm` is mapped, and a write to it
        // would kill the process with SIGBUS), stop the start here.
        let lock = if in_memory {
            None
        } else {
            Some(guard::lock(path)?)
        };
        if !in_memory {
            guard::check_writable(path)?;
        }
        let mut conn = Connection::open(path).map_err(db("opening the database"))?;
        let synchronous = match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE};
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {synchronous};
             PRAGMA busy_timeout = 5000;"
        ))
        .map_err(db("setting up the connection"))?;
        let opened_version = schema::migrate(&mut conn)?;

        // Checkpoints (copying the WAL into the database, with an fsync) run
        // on a connection of their own: left to the writer, every thousandth
        // page stalled the commit that crossed it, and every ack behind it.
        let (stop_checkpoints, readers) = if in_memory {
            (None, None)
        } else {
            conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
                .map_err(db("setting up the connection"))?;
            let checkpointer = Connection::open(path).map_err(db("opening the database"))?;
            checkpointer
                .execute_batch("PRAGMA busy_timeout = 5000;")
                .map_err(db("setting up the checkpointer"))?;
            let (stop, stopped) = mpsc::channel::<()>();
            let thread = std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || checkpoint_loop(&checkpointer, &stopped))
                .map_err(|e| StoreError::backend("starting the checkpointer")(Box::new(e)))?;
            (Some((stop, thread)), Some(Arc::new(Readers::new(path))))
        };
        Ok(Self {
            writer: Writer::start(
                conn,
                durability == Durability::Process,
                if in_memory {
                    None
                } else {
                    Some(guard::FileIdentity::of(path)?)
                },
            )?,
            lock: std::sync::Mutex::new(lock),
            readers,
            opened_version,
            checkpoints: std::sync::Mutex::new(stop_checkpoints),
        })
    }

    /// How many jobs so far were committed by their caller in place rather
    /// than by the writer thread (for tests and diagnostics).
    pub fn committed_in_place(&self) -> u64 {
        self.writer.committed_in_place()
    }

    /// The schema version the file had when this store opened it (0 for a
    /// file written by 0.1.0, or a new file); it is now [`Self::SCHEMA_VERSION`].
    pub fn opened_version(&self) -> i64 {
        self.opened_version
    }

    /// The schema version this release writes.
    pub const SCHEMA_VERSION: i64 = schema::VERSION;

    /// Copies the database at `source` to a new file `target` with SQLite's
    /// online backup, consistent even while a hub writes to `source`.
    pub fn backup(source: &Path, target: &Path) -> Result<BackupReport, StoreError> {
        backup::backup(source, target)
    }

    /// Runs a read: on a read-only connection off the async workers, or
    /// through the writer for an in-memory database.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.readers {
            Some(readers) => readers.run(work).await,
            None => self.writer.run(work).await,
        }
    }
}

/// Moves committed pages from the WAL into the database file, without ever
/// blocking the writer (PASSIVE), until the store is dropped.
fn checkpoint_loop(conn: &Connection, stop: &mpsc::Receiver<()>) {
    // A failure that lasts (a deleted file, a full disk) is logged once a
    // minute, not twice a second.
    let mut failing: u32 = 0;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) if failing > 0 => {
                tracing::info!(failed = failing, "sqlite checkpoints work again");
                failing = 0;
            }
            Ok(()) => {}
            Err(e) => {
                if failing.is_multiple_of(120) {
                    tracing::warn!(error = %e, failed = failing + 1, "sqlite checkpoint failed; will retry");
                }
                failing = failing.saturating_add(1);
            }
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn record_pickup(
        &self,
        vendor: &VendorId,
        pickup: &Pickup,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let (vendor, pickup) = (vendor.clone(), pickup.clone());
        self.writer
            .run(move |conn| {
                if let Some(order) = rows::load_order(conn, &vendor, &pickup.order_id)? {
                    return if order.same_request(&pickup) {
                        Ok(Recorded::repeated(order))
                    } else {
                        Err(StoreError::ConflictingPickup(pickup.order_id))
                    };
                }
                let recorded = Recorded::moved(Order::new_pending(vendor, pickup, at));
                rows::save_order(conn, &recorded.order)?;
                if let Some(message) = &recorded.queued {
                    rows::enqueue(conn, message)?;
                }
                Ok(recorded)
            })
            .await
    }

    async fn record_transition(
        &self,
        by: &DistributorId,
        vendor: &VendorId,
        order: &OrderId,
        to: Status,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let (by, vendor, order_id) = (by.clone(), vendor.clone(), order.clone());
        self.writer
            .run(move |conn| {
                let mut order = rows::load_order(conn, &vendor, &order_id)?
                    .ok_or_else(|| StoreError::UnknownOrder(order_id.clone()))?;
                match order.apply(&by, to, at)? {
                    TransitionOutcome::AlreadyThere => Ok(Recorded::repeated(order)),
                    TransitionOutcome::Moved => {
                        let recorded = Recorded::moved(order);
                        rows::save_order(conn, &recorded.order)?;
                        if let Some(message) = &recorded.queued {
                            rows::enqueue(conn, message)?;
                        }
                        Ok(recorded)
                    }
                }
            })
            .await
    }

    async fn confirm(
        &self,
        recipient: &Recipient,
        message: &MessageId,
    ) -> Result<bool, StoreError> {
        let (recipient, message) = (recipient.clone(), message.clone());
        self.writer
            .run(move |conn| rows::confirm(conn, &recipient, &message))
            .await
    }

    async fn pending_for(
        &self,
        recipient: &Recipient,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let recipient = recipient.clone();
        self.read(move |conn| rows::pending_for(conn, &recipient, limit))
            .await
    }

    async fn order(&self, vendor: &VendorId, order: &OrderId) -> Result<Option<Order>, StoreError> {
        let (vendor, order) = (vendor.clone(), order.clone());
        self.read(move |conn| rows::load_order(conn, &vendor, &order))
            .await
    }

    async fn list_orders(&self, listing: &OrderListing) -> Result<OrderPage, StoreError> {
        let listing = listing.clone();
        self.read(move |conn| rows::list_orders(conn, &listing))
            .await
    }

    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError> {
        let depths = self.read(rows::queue_depths).await?;
        Ok(depths
            .into_iter()
            .map(|(owner, depth)| QueueDepth { owner, depth })
            .collect())
    }

    async fn record_chat(&self, post: &ChatPost) -> Result<ChatMessage, StoreError> {
        let post = post.clone();
        self.writer
            .run(move |conn| rows::record_chat(conn, &post, CHAT_KEPT))
            .await
    }

    async fn chat_after(
        &self,
        room: Option<&RoomName>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let room = room.cloned();
        self.read(move |conn| rows::chat_after(conn, room.as_ref(), after, limit))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.writer.run(rows::answers).await
    }

    async fn shutdown(&self) {
        let checkpoints = self
            .checkpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(readers) = &self.readers {
            readers.shutdown();
        }
        // Joining waits at most for a commit or a checkpoint in progress;
        // this runs once, when the hub has stopped.
        if let Some((stop, thread)) = checkpoints {
            drop(stop);
            if thread.join().is_err() {
                tracing::error!("the sqlite checkpoint thread panicked");
            }
        }
        self.writer.shutdown();
        drop(
            self.lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
    }

    async fn check_write(&self) -> Result<(), StoreError> {
        self.writer.run(rows::rewrite_version).await
    }

    fn observe_commits(&self, commits: metrics::Histogram) {
        self.writer.observe_commits(commits);
    }

    async fn delete_delivered_before(
        &self,
        cutoff: DateTime<Utc>,
        at_most: usize,
    ) -> Result<u64, StoreError> {
        let cutoff_ms = cutoff.timestamp_millis();
        let expired = self
            .read(move |conn| rows::expired_orders(conn, cutoff_ms, at_most))
            .await?;
        let mut deleted = 0;
        // Small jobs: other writes queue between them, never behind all of them.
        for chunk in expired.chunks(RETENTION_BATCH) {
            let keys = chunk.to_vec();
            deleted += self
                .writer
                .run(move |conn| rows::delete_orders(conn, &keys, cutoff_ms))
                .await?;
        }
        Ok(deleted)
    }
}
