//! The delivery lanes: where the live emits of committed steps wait for
//! their turn, so that a burst of pickups reaches each socket together.
//!
//! A step's emits (the queued message to its recipient's room, the `order`
//! notice to the party that took it) used to run in the task of the event
//! that caused it, right after its commit. Under load the writer thread
//! finishes a commit for a dozen pickups at once and wakes a dozen tasks;
//! each broadcast woke the writers of its room's sockets, and each writer
//! ran before the next pickup's broadcast could queue behind it, so it sent
//! one frame per system call. A lane instead takes every emit waiting for
//! it, lets the runtime run whatever else is ready for a few turns (more
//! commits finish, more pickups arrive) and takes what came meanwhile, then
//! runs them all, in the order they came: a socket's writer then wakes once
//! for several frames. On W1 that took a fifth off the hub's CPU per
//! delivery (README, "Round five on W1"). When the hub is idle, a turn
//! finds nothing else to run and costs a few microseconds.
//!
//! Emits for one room always take the same lane, so they keep their order;
//! the hub has one lane per async worker, so a machine with many cores
//! still broadcasts on all of them.

use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::OnceLock;

use tokio::sync::mpsc;

/// One step's emits, ready to run.
pub(crate) type Delivery = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How many times a lane lets the runtime run other ready tasks before it
/// runs what it holds (measured on W1: 2, 5, 12 and 40 turns; see the
/// README). Each turn also takes the emits that came meanwhile.
const TURNS: usize = 12;

/// At most this many emits run in one go; the rest wait for the next.
const MAX_BATCH: usize = 1_024;

/// The lanes, started on first use (inside the runtime).
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    lanes: OnceLock<Lanes>,
}

#[derive(Debug)]
struct Lanes {
    senders: Vec<mpsc::UnboundedSender<Delivery>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Deliveries {
    /// Queues `delivery` on the lane of `room`. Called from a task on the
    /// hub's runtime.
    pub(crate) fn send(&self, room: &str, delivery: Delivery) {
        let lanes = self.lanes.get_or_init(Lanes::start);
        let lane = lanes.hasher.hash_one(room) as usize % lanes.senders.len();
        if let Err(mpsc::error::SendError(delivery)) = lanes.senders[lane].send(delivery) {
            // The lane's task ended with its runtime; nothing would run it.
            drop(delivery);
            tracing::warn!(
                room,
                "delivery lane closed; the message stays queued for getAll"
            );
        }
    }
}

impl Lanes {
    fn start() -> Self {
        let count = tokio::runtime::Handle::try_current()
            .map(|runtime| runtime.metrics().num_workers())
            .unwrap_or(1)
            .max(1);
        let senders = (0..count)
            .map(|_| {
                let (sender, inbox) = mpsc::unbounded_channel();
                tokio::spawn(run_lane(inbox));
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
async fn run_lane(mut inbox: mpsc::UnboundedReceiver<Delivery>) {
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
        for delivery in batch.drain(..) {
            delivery.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_room_s_deliveries_run_in_the_order_they_came() {
        let deliveries = Deliveries::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (done, finished) = tokio::sync::oneshot::channel();
        let mut done = Some(done);
        for n in 0..500 {
            let seen = seen.clone();
            let last = (n == 499).then(|| done.take()).flatten();
            deliveries.send(
                "distributor:north-hub",
                Box::pin(async move {
                    seen.lock().expect("not poisoned").push(n);
                    if let Some(last) = last {
                        let _ = last.send(());
                    }
                }),
            );
        }
        finished.await.expect("the last delivery ran");
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            (0..500).collect::<Vec<_>>()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_room_s_deliveries_run() {
        let deliveries = Deliveries::default();
        let (sender, mut ran) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..100 {
            let sender = sender.clone();
            deliveries.send(
                &format!("vendor:v{n}"),
                Box::pin(async move {
                    let _ = sender.send(n);
                }),
            );
        }
        let mut got = Vec::new();
        while got.len() < 100 {
            got.push(ran.recv().await.expect("a delivery ran"));
        }
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }
}
