//! The one connection that writes, and how jobs reach it: in place when the
//! store is idle, else through the writer thread's group commit.
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

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError, mpsc};
use std::time::{Duration, Instant};

use metrics::Histogram;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::db;
use crate::store::StoreError;

/// Under load, how long the writer sleeps for more jobs to share a commit.
const LINGER: Duration = Duration::from_micros(200);

/// How long (microseconds) the store must have had no new job for a caller
/// to commit its own job in place rather than hand it to the writer thread.
const QUIET_US: u64 = 1_000;

/// How many jobs at most share one commit.
const MAX_BATCH: usize = 512;

/// Called with the fate of the batch's commit once it is known.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Work for a writer; it reports whether its savepoint should be kept.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// The writing side of the store.
#[derive(Debug)]
pub(super) struct Writer {
    /// The only connection that writes; whoever holds the lock is the writer.
    conn: Arc<Mutex<Connection>>,
    /// Whether a caller may commit its own job when the store is idle.
    inline: bool,
    /// Jobs submitted and not yet answered.
    in_flight: AtomicUsize,
    /// When the store opened, and the last job came (microseconds after it).
    opened: Instant,
    last_job_us: AtomicU64,
    /// Jobs their callers committed in place (see [`Writer::committed_in_place`]).
    in_place: AtomicU64,
    /// Jobs for the writer thread; taking it out (shutdown) lets the thread
    /// drain and exit.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// The writer thread, joined on shutdown.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set on shutdown: no job runs after it.
    closed: std::sync::atomic::AtomicBool,
    /// The database file opened (none in memory): a write is refused once
    /// its path names another file, or none.
    file: Option<super::guard::FileIdentity>,
    /// Writes refused because the file was gone, for a log line now and then.
    refused_gone: AtomicU64,
    /// Where each commit's duration goes, once the hub's metrics exist
    /// (shared with the writer thread).
    commits: Arc<OnceLock<Histogram>>,
}

impl Writer {
    /// Starts the writer thread over `conn`; `inline` lets idle callers commit in place.
    pub(super) fn start(
        conn: Connection,
        inline: bool,
        file: Option<super::guard::FileIdentity>,
    ) -> Result<Self, StoreError> {
        let conn = Arc::new(Mutex::new(conn));
        let (jobs, inbox) = mpsc::channel::<Job>();
        let for_writer = conn.clone();
        let commits: Arc<OnceLock<Histogram>> = Arc::default();
        let timer = commits.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(&for_writer, &inbox, &timer))
            .map_err(|e| StoreError::backend("starting the writer thread")(Box::new(e)))?;
        Ok(Self {
            conn,
            inline,
            in_flight: AtomicUsize::new(0),
            opened: Instant::now(),
            last_job_us: AtomicU64::new(0),
            in_place: AtomicU64::new(0),
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
            closed: std::sync::atomic::AtomicBool::new(false),
            file,
            refused_gone: AtomicU64::new(0),
            commits,
        })
    }

    /// Lets the writer thread finish the jobs it has and exit, waits for
    /// it, and closes the database file (the connection is swapped for an
    /// empty in-memory one). Later jobs fail with `Unavailable`.
    pub(super) fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        drop(
            self.jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the sqlite writer thread panicked");
        }
        match Connection::open_in_memory() {
            Ok(empty) => {
                let file = std::mem::replace(
                    &mut *self
                        .conn
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    empty,
                );
                if let Err((_, e)) = file.close() {
                    tracing::warn!(error = %e, "could not close the database file");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not close the database file"),
        }
    }

    /// Records every commit's duration in `commits` from now on.
    pub(super) fn observe_commits(&self, commits: Histogram) {
        if self.commits.set(commits).is_err() {
            tracing::warn!("the store's commits were already observed");
        }
    }

    pub(super) fn committed_in_place(&self) -> u64 {
        self.in_place.load(Ordering::Relaxed)
    }

    /// Runs `work` inside a commit and waits for it: at once on this
    /// thread when the store is idle (and durability allows), else on the
    /// writer thread with whatever else is waiting.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is shut down"));
        }
        if let Some(file) = &self.file
            && !file.still_there()
        {
            // Written now, it would go to a file nobody will open again.
            let refused = self.refused_gone.fetch_add(1, Ordering::Relaxed);
            if refused.is_power_of_two() || refused == 0 {
                tracing::error!(db = %file.path().display(), refused = refused + 1, "the database file was deleted or replaced; refusing writes (restart the hub)");
            }
            return Err(StoreError::Unavailable(
                "the database file was deleted or replaced",
            ));
        }
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
                commit_batch(conn, vec![job], &self.commits);
            }
            // Busy (other jobs in flight, or the writer is still finishing
            // up), or `power`.
            None => self
                .jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
                .ok_or(StoreError::Unavailable("the store is shut down"))?
                .send(job)
                .map_err(|_| StoreError::Unavailable("the store is shut down"))?,
        }
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the write could not run (see the log)"))?
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
fn commit_batch(
    mut conn: MutexGuard<'_, Connection>,
    batch: Vec<Job>,
    commits: &OnceLock<Histogram>,
) {
    let mut completions = Vec::with_capacity(batch.len());
    let started = Instant::now();
    let commit = run_batch(&mut conn, batch, &mut completions);
    drop(conn);
    if let Some(commits) = commits.get() {
        commits.record(started.elapsed().as_secs_f64());
    }
    if let Err(e) = &commit {
        tracing::error!(error = %e, cause = ?std::error::Error::source(e), "sqlite commit failed; the batch is rolled back");
    }
    for done in completions {
        done(commit.clone());
    }
}

fn writer_loop(
    conn: &Mutex<Connection>,
    inbox: &mpsc::Receiver<Job>,
    commits: &OnceLock<Histogram>,
) {
    // Under load (a job was already waiting, or the last batch held more
    // than one) the writer lingers a moment for more jobs: bigger batches
    // mean fewer commits and, after them, deliveries that reach each socket
    // together. The connection is held while lingering, so callers that
    // arrive meanwhile queue up and share the commit. It sleeps through
    // the linger rather than waiting on its channel: waiting there, each
    // job sent meanwhile woke the thread from an async worker (a futex
    // call and a context switch each) only for it to take that one job
    // and wait again.
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
        if busy {
            std::thread::sleep(LINGER);
        }
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        last_batch = batch.len();
        commit_batch(guard, batch, commits);
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
            // Jobs never ran; their callers hear that the write was dropped.
            for job in batch {
                completions.push(job_failed(job, &e));
            }
            return Err(db("beginning a transaction")(e));
        }
    };
    for job in batch {
        completions.push(run_job(&tx, job));
    }
    tx.commit().map_err(db("committing"))
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
        return job_failed(job, &e);
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
            let e = db("ending a savepoint")(e);
            Box::new(move |_| done(Err(e)))
        }
    }
}

/// A job that cannot run is dropped (its caller hears so) and the reason logged.
fn job_failed(job: Job, e: &rusqlite::Error) -> Completion {
    let message = e.to_string();
    drop(job);
    Box::new(move |_| {
        tracing::error!(error = %message, "sqlite job could not run");
    })
}
