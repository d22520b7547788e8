//! The shared hub state every handler and operation reaches: the store, who
//! may connect, the activity feed and the limits.
//!
//! This is a leaf of the module graph: it knows the store and the
//! configuration and nothing that serves a transport, so the operations,
//! the namespaces and the web all sit above it. Shared as [`Hub`]; cloning
//! is shallow.

mod sandbox;

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use governor::Quota;

use crate::activity::Activity;
use crate::config::Credentials;
use crate::domain::{DistributorId, LabStore, VendorId, is_lab_drivers, is_reserved};
use crate::metrics::Metrics;
use crate::store::SharedStore;

pub(crate) use sandbox::{CapsLimits, Sandbox};

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
    /// The `/caps` sandbox, while `/caps` is served (the demo credentials
    /// or `--caps`); `None` otherwise.
    pub caps: Option<Sandbox>,
}

/// Why a sign-in on `/vendor` or `/distributor` (or over HTTP) was refused.
pub(crate) const WRONG_VENDOR: &str = "unknown vendor or wrong token";
pub(crate) const WRONG_DISTRIBUTOR: &str = "unknown distributor or wrong token";
pub(crate) const LAB_CLOSED: &str =
    "lab identities (caps.…) sign in only while this hub serves /caps";

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
            caps: None,
        }
    }

    /// The same state, serving `/caps` with `sandbox` (or not, with `None`).
    pub(crate) fn with_caps(self, sandbox: Option<Sandbox>) -> Self {
        Self {
            caps: sandbox,
            ..self
        }
    }

    /// Whether `token` signs `vendor` in: a configured vendor with its
    /// token; a lab store (`caps.…`) with any token or none, while `/caps`
    /// is served (the sandbox has no credentials, so a person can watch a
    /// lab store's orders on the vendor page). Otherwise the sentence of
    /// the refusal.
    pub(crate) fn vendor_sign_in(
        &self,
        vendor: &VendorId,
        token: Option<&str>,
    ) -> Result<(), &'static str> {
        if is_reserved(vendor.as_str()) {
            return match (&self.caps, LabStore::from_vendor_id(vendor)) {
                (Some(_), Some(_)) => Ok(()),
                (None, _) => Err(LAB_CLOSED),
                (Some(_), None) => Err(WRONG_VENDOR),
            };
        }
        match token {
            Some(token) if self.credentials.vendor_token_ok(vendor, token) => Ok(()),
            _ => Err(WRONG_VENDOR),
        }
    }

    /// As [`Self::vendor_sign_in`], for distributors: the lab drivers
    /// (`caps.drivers`) sign in with no token while `/caps` is served.
    pub(crate) fn distributor_sign_in(
        &self,
        distributor: &DistributorId,
        token: Option<&str>,
    ) -> Result<(), &'static str> {
        if is_reserved(distributor.as_str()) {
            return match (&self.caps, is_lab_drivers(distributor)) {
                (Some(_), true) => Ok(()),
                (None, _) => Err(LAB_CLOSED),
                (Some(_), false) => Err(WRONG_DISTRIBUTOR),
            };
        }
        match token {
            Some(token) if self.credentials.distributor_token_ok(distributor, token) => Ok(()),
            _ => Err(WRONG_DISTRIBUTOR),
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
