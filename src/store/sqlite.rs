//! The embedded backend: one SQLite file, one connection, group commit.
//!
//! One writer at a time holds the connection. When the store is idle and
//! durability is `process`, the caller takes it and commits its own job on
//! the spot: a lone pickup pays no hand-off to another thread, which on a
//! busy 2-core machine waited half a millisecond on average for a CPU
//! (and up to two), the largest part of the W2 latency tail. Otherwise
//! the job goes to the writer thread, which takes every job waiting in its
//! channel, runs each inside its own savepoint of one transaction, commits
//! once, and only then answers the callers. Many pickups in flight
//! therefore share one commit; with `power` durability every job goes to
//! the thread, so an fsync never blocks an async worker. Either way a caller
//! never hears `ok` before its write is in the database file.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{QueueDepth, Queued, Recorded, Store, StoreError, envelope};
use crate::domain::{
    DistributorId, MessageId, Order, OrderId, Recipient, Status, TransitionError,
    TransitionOutcome, VendorId,
};
use crate::protocol::{MessageEnvelope, PickupRequest, event, transition_event};

/// How much a committed write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
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

/// Under load, how long the writer waits for more jobs to share a commit.
const LINGER: Duration = Duration::from_micros(200);

/// The page size of a new database file (an existing file keeps its own).
///
/// A commit writes every page it changed to the WAL in full, and each
/// pickup changes a leaf of `orders` at its own place in the key order:
/// with SQLite's default 4 KiB pages, the WAL grew by 8 to 10 KiB per W1
/// pickup. 2 KiB pages cut that to about 6 KiB, and the hub's CPU time on
/// W1 by about 15 %; 1 KiB pages wrote less still but were slower (an
/// order's JSON no longer fits in a leaf of a `WITHOUT ROWID` table).
const PAGE_SIZE: u32 = 2048;

/// How long (microseconds) the store must have had no new job for a caller
/// to commit its own job in place rather than hand it to the writer thread.
const QUIET_US: u64 = 1_000;

/// How many jobs at most share one commit.
const MAX_BATCH: usize = 512;

/// Called with the fate of the batch's commit once it is known.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Work for a writer; it reports whether its savepoint should be kept.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// Handle to the store. Cloning is not offered: share it in an `Arc`.
#[derive(Debug)]
pub struct SqliteStore {
    /// The only connection that writes; whoever holds the lock is the writer.
    conn: Arc<Mutex<Connection>>,
    /// Whether a caller may commit its own job when the store is idle.
    inline: bool,
    /// Jobs submitted and not yet answered.
    in_flight: AtomicUsize,
    /// When the store opened, and the last job came (microseconds after it).
    opened: std::time::Instant,
    last_job_us: AtomicU64,
    /// Jobs their callers committed in place (see [`SqliteStore::committed_in_place`]).
    in_place: AtomicU64,
    /// Jobs for the writer thread; dropping it lets the thread drain and exit.
    jobs: mpsc::Sender<Job>,
    /// Dropping it stops the checkpoint thread (file databases only).
    _stop_checkpoints: Option<mpsc::Sender<()>>,
}

/// How often the background thread moves the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` (`:memory:` for a throwaway one).
    pub fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        let synchronous = match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE};
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {synchronous};
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS orders (
                 vendor_id TEXT NOT NULL,
                 order_id  TEXT NOT NULL,
                 body      TEXT NOT NULL,
                 PRIMARY KEY (vendor_id, order_id)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS messages (
                 seq        INTEGER PRIMARY KEY AUTOINCREMENT,
                 message_id TEXT NOT NULL UNIQUE,
                 owner      TEXT NOT NULL,
                 body       TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS messages_by_owner ON messages (owner, seq);"
        ))
        .map_err(backend)?;

        // Checkpoints (copying the WAL into the database, with an fsync) run
        // on a connection of their own: left to the writer, every thousandth
        // page stalled the commit that crossed it, and every ack behind it.
        let in_memory = path.as_os_str() == ":memory:";
        let stop_checkpoints = if in_memory {
            None
        } else {
            conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
                .map_err(backend)?;
            let checkpointer = Connection::open(path).map_err(backend)?;
            checkpointer
                .execute_batch("PRAGMA busy_timeout = 5000;")
                .map_err(backend)?;
            let (stop, stopped) = mpsc::channel::<()>();
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || checkpoint_loop(&checkpointer, &stopped))
                .map_err(backend)?;
            Some(stop)
        };

        let conn = Arc::new(Mutex::new(conn));
        let (jobs, inbox) = mpsc::channel::<Job>();
        let for_writer = conn.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(&for_writer, &inbox))
            .map_err(backend)?;
        Ok(Self {
            conn,
            inline: durability == Durability::Process,
            in_flight: AtomicUsize::new(0),
            opened: std::time::Instant::now(),
            last_job_us: AtomicU64::new(0),
            in_place: AtomicU64::new(0),
            jobs,
            _stop_checkpoints: stop_checkpoints,
        })
    }

    /// How many jobs so far were committed by their caller in place rather
    /// than by the writer thread (for tests and diagnostics).
    pub fn committed_in_place(&self) -> u64 {
        self.in_place.load(Ordering::Relaxed)
    }

    /// Runs `work` inside a commit and waits for it: at once on this
    /// thread when the store is idle (and durability allows), else on the
    /// writer thread with whatever else is waiting.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = work(conn);
            let keep = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                // The caller may have gone away (its socket closed); the write stands.
                let _ignored = reply.send(commit.and(result));
            });
            (keep, completion)
        });
        // A caller that finds the store idle (no other job in flight, none
        // in the last millisecond) commits its own; under load jobs go to
        // the writer thread, which batches them: in bursts, committing the
        // first job of each burst alone made most of W1's commits.
        let in_flight = InFlight::enter(&self.in_flight);
        let now_us = u64::try_from(self.opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        let previous_us = self.last_job_us.swap(now_us, Ordering::Relaxed);
        let quiet = now_us.saturating_sub(previous_us) >= QUIET_US;
        let alone = self.inline && in_flight.alone && quiet;
        match alone.then(|| try_lock(&self.conn)).flatten() {
            Some(conn) => {
                self.in_place.fetch_add(1, Ordering::Relaxed);
                commit_batch(conn, vec![job]);
            }
            // Busy (other jobs in flight, or the writer is still finishing
            // up), or `power`.
            None => self
                .jobs
                .send(job)
                .map_err(|_| StoreError::Backend("the store is shut down".into()))?,
        }
        answer
            .await
            .map_err(|_| StoreError::Backend("the store writer stopped".into()))?
    }
}

/// Counts a job from the moment it is submitted until its caller has the
/// answer (or went away).
struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// Whether no other job was in flight when this one came.
    alone: bool,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let alone = count.fetch_add(1, Ordering::AcqRel) == 0;
        Self { count, alone }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Moves committed pages from the WAL into the database file, without ever
/// blocking the writer (PASSIVE), until the store is dropped.
fn checkpoint_loop(conn: &Connection, stop: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "sqlite checkpoint failed; will retry");
        }
    }
}

/// Locks the connection, even if a job once panicked while holding it
/// (the transaction it was in rolled back when it unwound).
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Like [`lock`], without waiting: `None` while someone else writes.
fn try_lock(conn: &Mutex<Connection>) -> Option<MutexGuard<'_, Connection>> {
    match conn.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Runs `batch` in one commit, lets go of the connection, then answers
/// every job with the commit's fate.
fn commit_batch(mut conn: MutexGuard<'_, Connection>, batch: Vec<Job>) {
    let mut completions = Vec::with_capacity(batch.len());
    let commit = run_batch(&mut conn, batch, &mut completions);
    drop(conn);
    if let Err(e) = &commit {
        tracing::error!(error = %e, "sqlite commit failed; the batch is rolled back");
    }
    for done in completions {
        done(commit.clone());
    }
}

fn writer_loop(conn: &Mutex<Connection>, inbox: &mpsc::Receiver<Job>) {
    // Under load (a job was already waiting, or the last batch held more
    // than one) the writer lingers a moment for more jobs: bigger batches
    // mean fewer commits and, after them, deliveries that reach each socket
    // together. The connection is held while lingering, so callers that
    // arrive meanwhile queue up and share the commit.
    let mut last_batch = 1;
    loop {
        let (first, waiting) = match inbox.try_recv() {
            Ok(job) => (job, true),
            Err(mpsc::TryRecvError::Empty) => match inbox.recv() {
                Ok(job) => (job, false),
                Err(_) => break,
            },
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        let guard = lock(conn);
        let mut batch = vec![first];
        let busy = waiting || last_batch > 1;
        let linger_until = std::time::Instant::now() + if busy { LINGER } else { Duration::ZERO };
        while batch.len() < MAX_BATCH {
            let next = match linger_until.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => inbox.recv_timeout(left).ok(),
                _ => inbox.try_recv().ok(),
            };
            match next {
                Some(job) => batch.push(job),
                None => break,
            }
        }
        last_batch = batch.len();
        commit_batch(guard, batch);
    }
}

fn run_batch(
    conn: &mut Connection,
    batch: Vec<Job>,
    completions: &mut Vec<Completion>,
) -> Result<(), StoreError> {
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            // Jobs never ran; answer each with the failure.
            for job in batch {
                let (_, done) = job_failed(job, &e);
                completions.push(done);
            }
            return Err(backend(e));
        }
    };
    for job in batch {
        completions.push(run_job(&tx, job));
    }
    tx.commit().map_err(backend)
}

/// Runs one job of a batch inside its own savepoint, so a failed job
/// leaves no trace and the others still commit. The savepoint statements
/// are prepared once and cached rather than parsed again for every job.
fn run_job(conn: &Connection, job: Job) -> Completion {
    let exec = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut st| st.execute([]))
            .map(|_| ())
    };
    if let Err(e) = exec("SAVEPOINT job") {
        return job_failed(job, &e).1;
    }
    let (keep, done) = job(conn);
    let ended = if keep {
        exec("RELEASE job")
    } else {
        exec("ROLLBACK TO job").and_then(|()| exec("RELEASE job"))
    };
    match ended {
        Ok(()) => done,
        Err(e) => {
            let e = backend(e);
            Box::new(move |_| done(Err(e)))
        }
    }
}

/// A job that cannot run answers with the error instead.
fn job_failed(job: Job, e: &rusqlite::Error) -> (bool, Completion) {
    let message = e.to_string();
    drop(job);
    (
        false,
        Box::new(move |_| {
            tracing::error!(error = %message, "sqlite job could not run");
        }),
    )
}

fn load_order(
    conn: &Connection,
    vendor: &VendorId,
    order: &OrderId,
) -> Result<Option<Order>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM orders WHERE vendor_id = ?1 AND order_id = ?2")
        .and_then(|mut st| {
            st.query_row(params![vendor.as_str(), order.as_str()], |r| r.get(0))
                .optional()
        })
        .map_err(backend)?;
    body.map(|b| serde_json::from_str(&b).map_err(backend))
        .transpose()
}

fn save_order(conn: &Connection, order: &Order) -> Result<(), StoreError> {
    let body = serde_json::to_string(order).map_err(backend)?;
    conn.prepare_cached(
        "INSERT INTO orders (vendor_id, order_id, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (vendor_id, order_id) DO UPDATE SET body = excluded.body",
    )
    .and_then(|mut st| {
        st.execute(params![
            order.vendor_id.as_str(),
            order.order_id.as_str(),
            body
        ])
    })
    .map_err(backend)?;
    Ok(())
}

fn enqueue(
    conn: &Connection,
    recipient: Recipient,
    event: &str,
    order: &Order,
    at: DateTime<Utc>,
) -> Result<Queued, StoreError> {
    let envelope = envelope(event, order, at);
    let body = serde_json::to_string(&envelope).map_err(backend)?;
    conn.prepare_cached("INSERT INTO messages (message_id, owner, body) VALUES (?1, ?2, ?3)")
        .and_then(|mut st| st.execute(params![envelope.message_id.as_str(), recipient.key(), body]))
        .map_err(backend)?;
    Ok(Queued {
        recipient,
        envelope,
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn record_pickup(
        &self,
        vendor: &VendorId,
        request: &PickupRequest,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let vendor = vendor.clone();
        let request = request.clone();
        self.run(move |conn| {
            if let Some(order) = load_order(conn, &vendor, &request.order_id)? {
                if order.same_request(&request.distributor_id, &request.customer, &request.address)
                {
                    return Ok(Recorded {
                        order,
                        queued: None,
                    });
                }
                return Err(StoreError::ConflictingPickup(request.order_id));
            }
            let order = Order::new_pending(
                vendor,
                request.order_id,
                request.distributor_id.clone(),
                request.customer,
                request.address,
                at,
            );
            save_order(conn, &order)?;
            let queued = enqueue(
                conn,
                Recipient::Distributor(request.distributor_id),
                event::PICKUP,
                &order,
                at,
            )?;
            Ok(Recorded {
                order,
                queued: Some(queued),
            })
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
        self.run(move |conn| {
            let mut order = load_order(conn, &vendor, &order_id)?
                .ok_or_else(|| StoreError::UnknownOrder(order_id.clone()))?;
            match order.apply(&by, to, at)? {
                TransitionOutcome::AlreadyThere => Ok(Recorded {
                    order,
                    queued: None,
                }),
                TransitionOutcome::Moved => {
                    save_order(conn, &order)?;
                    let queued = enqueue(
                        conn,
                        Recipient::Vendor(vendor),
                        transition_event(to),
                        &order,
                        at,
                    )?;
                    Ok(Recorded {
                        order,
                        queued: Some(queued),
                    })
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
        let (owner, message) = (recipient.key(), message.clone());
        self.run(move |conn| {
            conn.prepare_cached("DELETE FROM messages WHERE message_id = ?1 AND owner = ?2")
                .and_then(|mut st| st.execute(params![message.as_str(), owner]))
                .map(|n| n > 0)
                .map_err(backend)
        })
        .await
    }

    async fn pending_for(&self, recipient: &Recipient) -> Result<Vec<MessageEnvelope>, StoreError> {
        let owner = recipient.key();
        self.run(move |conn| {
            let mut st = conn
                .prepare_cached("SELECT body FROM messages WHERE owner = ?1 ORDER BY seq")
                .map_err(backend)?;
            let rows = st
                .query_map(params![owner], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.map(|body| {
                let body = body.map_err(backend)?;
                serde_json::from_str(&body).map_err(backend)
            })
            .collect()
        })
        .await
    }

    async fn order(&self, vendor: &VendorId, order: &OrderId) -> Result<Option<Order>, StoreError> {
        let (vendor, order) = (vendor.clone(), order.clone());
        self.run(move |conn| load_order(conn, &vendor, &order))
            .await
    }

    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError> {
        self.run(|conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT owner, COUNT(*) FROM messages GROUP BY owner ORDER BY owner",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(backend)?;
            let mut depths = Vec::new();
            for row in rows {
                let (owner, depth) = row.map_err(backend)?;
                if let Some(owner) = Recipient::from_key(&owner) {
                    depths.push(QueueDepth {
                        owner,
                        depth: u64::try_from(depth).unwrap_or(0),
                    });
                }
            }
            Ok(depths)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }
}

impl From<TransitionError> for StoreError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::Forbidden { order } => StoreError::Forbidden(order),
            TransitionError::Invalid { order, from, to } => {
                StoreError::InvalidTransition { order, from, to }
            }
        }
    }
}
