//! The hub's background chores, on one task per hub: the queue-depth
//! gauges (read every few seconds from the read path, never counted per
//! event), the metrics' housekeeping, and the retention sweep of
//! `--retain-delivered`.
//!
//! The sweep deletes delivered orders older than the retention whose
//! messages have all been confirmed, a small batch per write (see
//! [`crate::store::Store::delete_delivered_before`]), so the writer never
//! stalls behind it. A message still queued is never deleted, and keeps
//! its order.

use std::time::Duration;

use crate::ops;
use crate::state::Hub;

/// How often the gauges are refreshed (and the sweep considered): each
/// refresh is one grouped count of the queues on the read path.
const TICK: Duration = Duration::from_secs(5);

/// How often the retention sweep runs (every tick when the retention is 0).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Orders one sweep deletes at most; the next sweep goes on from there.
const SWEEP_AT_MOST: usize = 10_000;

/// The chores' tasks; dropping it stops them.
#[derive(Debug)]
pub(crate) struct Upkeep(
    /// Aborted on drop, so a stopped hub leaves nothing running.
    Vec<tokio::task::JoinHandle<()>>,
);

impl Drop for Upkeep {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Upkeep {
    /// Starts the chores; `retain` is how long delivered orders are kept
    /// (`None`: forever).
    pub(crate) fn start(hub: Hub, retain: Option<Duration>) -> Self {
        Self(vec![tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            let mut last_sweep: Option<tokio::time::Instant> = None;
            loop {
                tick.tick().await;
                refresh_depths(&hub).await;
                hub.metrics.upkeep();
                hub.activity.forget_quiet_clients();
                hub.chat_joins.forget_quiet_clients();
                let Some(retain) = retain else { continue };
                let due =
                    last_sweep.is_none_or(|at| retain.is_zero() || at.elapsed() >= SWEEP_EVERY);
                if due {
                    last_sweep = Some(tokio::time::Instant::now());
                    sweep(&hub, retain).await;
                }
            }
        })])
    }

    /// Another task of the hub's that stops with it (the `/admin` feed).
    pub(crate) fn with_task(mut self, task: tokio::task::JoinHandle<()>) -> Self {
        self.0.push(task);
        self
    }
}

async fn refresh_depths(hub: &Hub) {
    match ops::queue_depths(hub).await {
        Ok(depths) => hub
            .metrics
            .set_queue_depths(depths.iter().map(|q| (&q.owner, q.depth))),
        // Logged where store failures are turned into refusals.
        Err(refusal) => tracing::debug!(%refusal, "queue depths not refreshed"),
    }
}

/// Deletes what the retention lets go of, one sweep's worth.
async fn sweep(hub: &Hub, retain: Duration) {
    let Ok(retain) = chrono::Duration::from_std(retain) else {
        return;
    };
    let cutoff = chrono::Utc::now() - retain;
    match hub
        .store
        .delete_delivered_before(cutoff, SWEEP_AT_MOST)
        .await
    {
        Ok(0) => {}
        Ok(deleted) => {
            hub.metrics.retention_deleted(deleted);
            tracing::info!(
                deleted,
                cutoff = %cutoff.to_rfc3339(),
                "retention: delivered orders deleted"
            );
        }
        Err(e) => tracing::warn!(error = %e, "retention sweep failed; will retry"),
    }
}
