//! The delivery lanes: where the live emits of committed steps wait for
//! their turn under load, so that a burst of pickups reaches each socket
//! together.
//!
//! A step's emits (the queued message to its recipient's room, the `order`
//! notice to the party that took it) used to run in the task of the event
//! that caused it, right after its commit. Under load the writer thread
//! finishes a commit for a dozen pickups at once and wakes a dozen tasks;
//! each broadcast woke the writers of its room's sockets, and each writer
//! ran before the next pickup's broadcast could queue behind it, so it sent
//! few frames per system call. A lane instead takes every emit waiting for
//! it, lets the runtime run whatever else is ready for a few turns (more
//! commits finish, more pickups arrive) and takes what came meanwhile, then
//! runs them all, in the order they came: a socket's writer then wakes once
//! for several frames (README, "Round five on W1").
//!
//! A lone step has no burst to join, and the turns would only delay it: when
//! no emit is waiting or running and none came in the last millisecond, the
//! step's emits run at once, in its own task, before its answer (as every
//! step's did before the lanes).
//!
//! Emits for one room always take the same lane, so they keep their order
//! (and none runs at once while any waits); the hub has one lane per async
//! worker, so a machine with many cores still broadcasts on all of them.
//! In a cluster an emit publishes to Redis before it reaches this hub's
//! sockets: a lane starts its batch's emits in order and waits for Redis's
//! answers together, so a batch costs one round trip, not one each.

use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::mpsc;

/// One step's emits, ready to run.
pub(crate) type Delivery = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How many times a lane lets the runtime run other ready tasks before it
/// runs what it holds (measured on W1: 0, 2, 12 and 40 turns; see the
/// README). Each turn also takes the emits that came meanwhile.
const TURNS: usize = 12;

/// At most this many emits run in one go; the rest wait for the next.
const MAX_BATCH: usize = 1_024;

/// How long (microseconds) no step may have sent emits for the next one's
/// to run at once rather than in a lane (the store's own rule for a lone
/// commit).
const QUIET_US: u64 = 1_000;

/// Emits counted as waiting, not yet on their lanes. Dropped unqueued,
/// they are counted off again (and never run).
#[must_use = "counted emits are queued with `Deliveries::queue`"]
pub(crate) struct Counted {
    held: Vec<(String, Delivery)>,
    pending: Arc<AtomicUsize>,
}

impl Counted {
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.pending.fetch_sub(self.held.len(), Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Counted").field(&self.held.len()).finish()
    }
}

/// `last_us` before the first step.
const NEVER: u64 = u64::MAX;

/// The lanes, started on first use (inside the runtime).
#[derive(Debug)]
pub(crate) struct Deliveries {
    lanes: OnceLock<Lanes>,
    /// Emits handed over and not yet run, in the lanes or at once.
    pending: Arc<AtomicUsize>,
    /// When the state was made, and when the last step sent its emits
    /// (microseconds after it).
    opened: Instant,
    last_us: AtomicU64,
}

impl Default for Deliveries {
    fn default() -> Self {
        Self {
            lanes: OnceLock::new(),
            pending: Arc::default(),
            opened: Instant::now(),
            last_us: AtomicU64::new(NEVER),
        }
    }
}

#[derive(Debug)]
struct Lanes {
    senders: Vec<mpsc::UnboundedSender<Delivery>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Deliveries {
    /// Runs one step's emits (each with its room) at once if the hub is
    /// quiet, and answers `None`; else answers them, counted as waiting,
    /// for [`Deliveries::queue`] once the step is answered. Called from a
    /// task on the hub's runtime.
    pub(crate) async fn now_if_quiet(&self, held: Vec<(String, Delivery)>) -> Option<Counted> {
        if held.is_empty() {
            return None;
        }
        let now_us = u64::try_from(self.opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        let previous_us = self.last_us.swap(now_us, Ordering::Relaxed);
        let quiet = previous_us == NEVER || now_us.saturating_sub(previous_us) >= QUIET_US;
        let count = held.len();
        // Counted from now: a step that comes before these are queued finds
        // them waiting and does not overtake them.
        let waiting = self.pending.fetch_add(count, Ordering::AcqRel);
        if quiet && waiting == 0 {
            for (_, delivery) in held {
                delivery.await;
            }
            self.pending.fetch_sub(count, Ordering::AcqRel);
            None
        } else {
            Some(Counted {
                held,
                pending: self.pending.clone(),
            })
        }
    }

    /// Puts emits that [`Deliveries::now_if_quiet`] did not run on their lanes.
    pub(crate) fn queue(&self, mut counted: Counted) {
        for (room, delivery) in std::mem::take(&mut counted.held) {
            self.put(&room, delivery);
        }
    }

    /// Puts emits on their lanes, however quiet the hub is (for emits that
    /// never had the choice).
    pub(crate) fn send(&self, held: Vec<(String, Delivery)>) {
        self.pending.fetch_add(held.len(), Ordering::AcqRel);
        self.queue(Counted {
            held,
            pending: self.pending.clone(),
        });
    }

    /// Puts a delivery already counted in `pending` on its lane.
    fn put(&self, room: &str, delivery: Delivery) {
        let lanes = self
            .lanes
            .get_or_init(|| Lanes::start(self.pending.clone()));
        let lane = lanes.hasher.hash_one(room) as usize % lanes.senders.len();
        if let Err(mpsc::error::SendError(delivery)) = lanes.senders[lane].send(delivery) {
            // The lane's task ended with its runtime; nothing would run it.
            drop(delivery);
            self.pending.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(
                room,
                "delivery lane closed; the message stays queued for getAll"
            );
        }
    }
}

impl Lanes {
    fn start(pending: Arc<AtomicUsize>) -> Self {
        let count = tokio::runtime::Handle::try_current()
            .map(|runtime| runtime.metrics().num_workers())
            .unwrap_or(1)
            .max(1);
        let senders = (0..count)
            .map(|_| {
                let (sender, inbox) = mpsc::unbounded_channel();
                tokio::spawn(run_lane(inbox, pending.clone()));
                sender
            })
            .collect();
        Self {
            senders,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

/// Runs a lane until the hub's state (its senders) is gone.
async fn run_lane(mut inbox: mpsc::UnboundedReceiver<Delivery>, pending: Arc<AtomicUsize>) {
    let mut batch = Vec::new();
    while inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for _ in 0..TURNS {
            if batch.len() >= MAX_BATCH {
                break;
            }
            tokio::task::yield_now().await;
            while batch.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Ok(delivery) => batch.push(delivery),
                    Err(_) => break,
                }
            }
        }
        // Each emit starts in the order it came. On one hub that is the
        // whole emit; in a cluster an emit first publishes to Redis, and
        // those that wait for Redis's answer wait for it together.
        let ran = batch.len();
        let mut waiting = Vec::new();
        for mut delivery in batch.drain(..) {
            if futures_util::poll!(delivery.as_mut()).is_pending() {
                waiting.push(delivery);
            }
        }
        if !waiting.is_empty() {
            futures_util::future::join_all(waiting).await;
        }
        pending.fetch_sub(ran, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// One step's emits: `emit`, for `room`.
    fn step_of(
        room: impl Into<String>,
        emit: impl Future<Output = ()> + Send + 'static,
    ) -> Vec<(String, Delivery)> {
        vec![(room.into(), Box::pin(emit))]
    }

    /// Whether every emit handed over was counted off within 5 s.
    async fn all_counted_off(deliveries: &Deliveries) -> bool {
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while deliveries.pending.load(Ordering::Acquire) != 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
        .await
        .is_ok()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_room_s_deliveries_run_in_the_order_they_came() {
        let deliveries = Deliveries::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (done, finished) = tokio::sync::oneshot::channel();
        let mut done = Some(done);
        for n in 0..500 {
            let seen = seen.clone();
            let last = (n == 499).then(|| done.take()).flatten();
            deliveries.send(step_of("distributor:north-hub", async move {
                seen.lock().expect("not poisoned").push(n);
                if let Some(last) = last {
                    let _ = last.send(());
                }
            }));
        }
        finished.await.expect("the last delivery ran");
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            (0..500).collect::<Vec<_>>()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_step_runs_at_once_and_a_step_behind_a_waiting_one_waits_its_turn() {
        let deliveries = Deliveries::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let step = |n: u32| {
            let seen = seen.clone();
            step_of("vendor:v1", async move {
                seen.lock().expect("not poisoned").push(n);
            })
        };
        // Quiet: it has run when `now_if_quiet` returns.
        assert!(deliveries.now_if_quiet(step(1)).await.is_none());
        assert_eq!(*seen.lock().expect("not poisoned"), vec![1]);
        // Right after it, the next step goes to the lane, and the one after
        // that (however long after) waits behind it rather than overtake.
        for n in [2, 3] {
            if let Some(counted) = deliveries.now_if_quiet(step(n)).await {
                deliveries.queue(counted);
            }
        }
        let (done, finished) = tokio::sync::oneshot::channel();
        deliveries.send(step_of("vendor:v1", async move {
            let _ = done.send(());
        }));
        finished.await.expect("the lane ran");
        assert_eq!(*seen.lock().expect("not poisoned"), vec![1, 2, 3]);
        // The lane counts its batch off once the whole batch has run.
        assert!(
            all_counted_off(&deliveries).await,
            "emits still counted as waiting"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn emits_counted_and_dropped_are_counted_off() {
        let deliveries = Deliveries::default();
        // An emit that waits in its lane keeps the hub busy.
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        deliveries.send(step_of("vendor:v1", async move {
            let _ = released.await;
        }));
        let counted = deliveries
            .now_if_quiet(step_of("vendor:v2", async {}))
            .await;
        assert_eq!(counted.as_ref().map(Counted::len), Some(1));
        assert_eq!(deliveries.pending.load(Ordering::Acquire), 2);
        drop(counted);
        assert_eq!(deliveries.pending.load(Ordering::Acquire), 1);
        let _ = release.send(());
        assert!(
            all_counted_off(&deliveries).await,
            "the waiting emit was never counted off"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_room_s_deliveries_run() {
        let deliveries = Deliveries::default();
        let (sender, mut ran) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..100 {
            let sender = sender.clone();
            deliveries.send(step_of(format!("vendor:v{n}"), async move {
                let _ = sender.send(n);
            }));
        }
        let mut got = Vec::new();
        while got.len() < 100 {
            got.push(ran.recv().await.expect("a delivery ran"));
        }
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }
}
