//! The shared hub state every handler and operation reaches: the store, who
//! may connect, the activity feed and the limits.
//!
//! This is a leaf of the module graph: it knows the store and the
//! configuration and nothing that serves a transport, so the operations,
//! the namespaces and the web all sit above it. Shared as [`Hub`]; cloning
//! is shallow.

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use governor::Quota;

use crate::activity::Activity;
use crate::config::Credentials;
use crate::metrics::Metrics;
use crate::store::SharedStore;

/// Per-socket event budget (also each vendor's budget of API requests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub rate_per_second: u32,
    pub burst: u32,
}

impl Limits {
    /// The budget as a rate-limiter quota; `None` when limits are off.
    pub(crate) fn quota(&self) -> Option<Quota> {
        NonZeroU32::new(self.rate_per_second).map(|rate| {
            let burst = NonZeroU32::new(self.burst).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        })
    }
}

/// What every handler may reach.
#[derive(Debug)]
pub(crate) struct HubState {
    pub store: SharedStore,
    pub credentials: Credentials,
    pub activity: Activity,
    pub limits: Limits,
    pub started: Instant,
    /// This hub's Prometheus metrics (`GET /metrics`).
    pub metrics: Metrics,
    /// This hub's Socket.IO server id (the `hub` of sockets in a cluster).
    /// Set once the Socket.IO layer exists, which needs this state first.
    hub_id: OnceLock<String>,
}

pub(crate) type Hub = Arc<HubState>;

impl HubState {
    pub(crate) fn new(store: SharedStore, credentials: Credentials, limits: Limits) -> Self {
        let metrics = Metrics::new();
        store.observe_commits(metrics.store_commits(store.kind()));
        metrics.set_build_info(store.kind());
        Self {
            store,
            credentials,
            activity: Activity::with_metrics(metrics.clone()),
            limits,
            started: Instant::now(),
            metrics,
            hub_id: OnceLock::new(),
        }
    }

    /// This hub's id: the Socket.IO server id other hubs know it by.
    pub(crate) fn hub_id(&self) -> &str {
        self.hub_id.get().map(String::as_str).unwrap_or_default()
    }

    /// Records the hub's id, once.
    pub(crate) fn set_hub_id(&self, id: String) {
        if self.hub_id.set(id).is_err() {
            tracing::warn!("the hub id was already set");
        }
    }
}
