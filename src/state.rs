//! The shared hub state every handler and operation reaches: the store, who
//! may connect, the activity feed and the metrics, the limits, and who is in the chat.
//!
//! This is a leaf of the module graph: it knows the store and the
//! configuration and nothing that serves a transport, so the operations,
//! the namespaces and the web all sit above it. Shared as [`Hub`]; cloning
//! is shallow.

mod deliveries;
mod sandbox;

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use futures_util::future::BoxFuture;
use governor::Quota;
use tokio::sync::RwLock;

use crate::activity::Activity;
use crate::config::Credentials;
use crate::domain::{ChatName, DistributorId, LabStore, VendorId, is_lab_drivers, is_reserved};
use crate::metrics::Metrics;
use crate::store::SharedStore;

pub(crate) use deliveries::{Counted, Deliveries, Delivery};
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
    pub chat: ChatState,
    /// This hub's Prometheus metrics (`GET /metrics`).
    pub metrics: Metrics,
    /// This hub's Socket.IO server id (the `hub` of sockets in a cluster).
    /// Set once the Socket.IO layer exists, which needs this state first.
    hub_id: OnceLock<String>,
    /// True when this hub is one of a cluster (`--redis`): its broadcasts
    /// then also go to the other hubs' sockets, through the adapter.
    clustered: std::sync::atomic::AtomicBool,
    /// The `/caps` sandbox, while `/caps` is served (the demo credentials
    /// or `--caps`); `None` otherwise.
    pub caps: Option<Sandbox>,
    /// Failed sign-ins per client address: past a budget, that address's
    /// sign-ins are refused for a while without looking at the token.
    pub sign_ins: SignInThrottle,
    /// `/chat` joins per client address (see [`ChatJoins`]).
    pub chat_joins: ChatJoins,
    /// Broadcast targets where some socket's buffer was full (see [`SlowTargets`]).
    pub slow_targets: SlowTargets,
    /// Where the live emits of committed steps wait for their turn.
    pub deliveries: Deliveries,
    /// Set when the hub starts shutting down: emits then find the
    /// namespaces gone, which is expected and not worth an error each.
    closing: std::sync::atomic::AtomicBool,
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
            chat: ChatState::default(),
            metrics,
            hub_id: OnceLock::new(),
            clustered: std::sync::atomic::AtomicBool::new(false),
            caps: None,
            closing: std::sync::atomic::AtomicBool::new(false),
            sign_ins: SignInThrottle::default(),
            slow_targets: SlowTargets::default(),
            deliveries: Deliveries::default(),
            // With the rate limits off (benchmarks, lesson hubs), so is this one.
            chat_joins: ChatJoins::new(limits.rate_per_second > 0),
        }
    }

    /// Marks the hub as shutting down (see [`HubState::is_closing`]).
    pub(crate) fn start_closing(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the hub is shutting down: its namespaces may be gone.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Relaxed)
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

    /// Records the hub's id, once, and whether it is one of a cluster.
    pub(crate) fn set_hub_id(&self, id: String, clustered: bool) {
        if self.hub_id.set(id).is_err() {
            tracing::warn!("the hub id was already set");
        }
        self.clustered
            .store(clustered, std::sync::atomic::Ordering::Relaxed);
    }

    /// True when this hub is one of a cluster.
    pub(crate) fn clustered(&self) -> bool {
        self.clustered.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Who is in this hub's chat, and the gate that keeps replays in order.
#[derive(Debug, Default)]
pub(crate) struct ChatState {
    pub roster: Arc<ChatRoster>,
    /// Held shared while a chat message is stored and relayed, and
    /// exclusively while a socket is handed what it missed and starts
    /// hearing live messages: so on this hub no live message overtakes, or
    /// slips past, a replay.
    pub quiet: RwLock<()>,
    pub presence: PresenceList,
}

/// Who has been announced to the chat, and the `user connected` / `user
/// disconnected` notices waiting to go out together (each an emit, not yet
/// started).
///
/// In a join storm every arrival is told to everyone already there: sent
/// one by one, each notice woke every socket's writer for one small frame.
/// Sent a few milliseconds later in a batch, a socket's writer wakes less
/// often and writes several frames at once (W4: about 10 % less hub CPU).
/// An arrival or a departure changes the list and queues its notice under
/// one lock, so notices go out in the order of the changes, each once,
/// with the count of that moment, and a newcomer's `users` (the list as its
/// own notice is queued) names exactly those announced before it.
#[derive(Default)]
pub(crate) struct PresenceList {
    queue: Mutex<PresenceQueue>,
    /// Held while a batch is sent, so batches never overtake each other.
    sending: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct PresenceQueue {
    /// Name key -> name, of everyone announced and not yet gone.
    here: BTreeMap<String, String>,
    notices: Vec<BoxFuture<'static, ()>>,
}

impl std::fmt::Debug for PresenceList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceList").finish_non_exhaustive()
    }
}

/// What a change of [`PresenceList`] did: the caller sends the batch when `first`.
#[derive(Debug)]
pub(crate) struct Announced {
    /// Everyone here after the change, in the order of their keys (ignoring case).
    pub users: Vec<String>,
    /// Whether this notice starts a batch ([`PresenceList::send_batch`] is the caller's).
    pub first: bool,
}

impl PresenceList {
    /// How long the first notice of a batch waits for others.
    pub(crate) const WINDOW: std::time::Duration = std::time::Duration::from_millis(10);

    /// Announces `seat`'s name, if the seat is still held (its socket has
    /// not left already): adds it to the list and queues `notice(online)`.
    pub(crate) fn arrive(
        &self,
        seat: &Seat,
        notice: impl FnOnce(usize) -> BoxFuture<'static, ()>,
    ) -> Announced {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if seat.held() {
            queue.here.insert(seat.key.clone(), seat.name.clone());
            let online = queue.here.len();
            queue.notices.push(notice(online));
        }
        Announced {
            users: queue.here.values().cloned().collect(),
            first: queue.notices.len() == 1,
        }
    }

    /// Gives `seat`'s name back and, if it was announced, takes it off the
    /// list and queues `notice(online)`.
    pub(crate) fn leave(
        &self,
        seat: &Seat,
        notice: impl FnOnce(usize) -> BoxFuture<'static, ()>,
    ) -> Announced {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        seat.release();
        if queue.here.remove(&seat.key).is_some() {
            let online = queue.here.len();
            queue.notices.push(notice(online));
        }
        Announced {
            users: Vec::new(),
            first: queue.notices.len() == 1,
        }
    }

    /// Sends what is queued after [`Self::WINDOW`], in order.
    pub(crate) async fn send_batch(&self) {
        tokio::time::sleep(Self::WINDOW).await;
        let _turn = self.sending.lock().await;
        let batch = std::mem::take(
            &mut self
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .notices,
        );
        for notice in batch {
            notice.await;
        }
    }
}

/// The names of the chat users connected to this hub, each once (compared
/// by [`ChatName::key`]). A name is claimed in the connect middleware under
/// one lock, so two sockets that connect with one name at once cannot both
/// get it.
#[derive(Debug, Default)]
pub(crate) struct ChatRoster {
    /// Name key -> the seat holding it.
    names: Mutex<HashMap<String, u64>>,
    next_seat: AtomicU64,
}

impl ChatRoster {
    /// Claims `name`; `None` when a connected user already has it.
    pub(crate) fn claim(self: &Arc<Self>, name: &ChatName) -> Option<Seat> {
        let key = name.key();
        let id = self.next_seat.fetch_add(1, Ordering::Relaxed);
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if names.contains_key(&key) {
            return None;
        }
        names.insert(key.clone(), id);
        Some(Seat {
            roster: self.clone(),
            key,
            name: name.as_str().to_owned(),
            id,
        })
    }

    fn holds(&self, key: &str, id: u64) -> bool {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .is_some_and(|holder| *holder == id)
    }

    fn release(&self, key: &str, id: u64) {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        // Only this seat's claim: the name may have been claimed anew since.
        if names.get(key).is_some_and(|holder| *holder == id) {
            names.remove(key);
        }
    }
}

/// One socket's hold on its chat name, released when the socket leaves
/// ([`PresenceList::leave`]) or, whatever happens to the socket, when it is
/// dropped with the socket.
#[derive(Debug)]
pub(crate) struct Seat {
    roster: Arc<ChatRoster>,
    key: String,
    name: String,
    id: u64,
}

impl Seat {
    /// Whether the name is still this seat's (its socket has not left).
    fn held(&self) -> bool {
        self.roster.holds(&self.key, self.id)
    }

    /// Gives the name back (again is harmless).
    fn release(&self) {
        self.roster.release(&self.key, self.id);
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.release();
    }
}

/// Failed sign-ins one client address may make per window.
pub(crate) const SIGN_IN_FAILURES: u32 = 20;
/// The window of [`SIGN_IN_FAILURES`].
pub(crate) const SIGN_IN_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
/// Addresses remembered at most (the table is pruned past it).
const SIGN_IN_ADDRESSES: usize = 10_000;

/// What a throttled address is told, on every door (Socket.IO and HTTP).
pub(crate) fn throttled_message(wait: std::time::Duration) -> String {
    format!(
        "too many failed sign-ins from your address; try again in {} s",
        retry_seconds(wait)
    )
}

/// Whole seconds to wait, rounded up (`Retry-After`).
pub(crate) fn retry_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Failed sign-ins per client address, in fixed windows, whatever the door
/// (a namespace's connect, HTTP Basic or the admin token): an address past
/// [`SIGN_IN_FAILURES`] in one [`SIGN_IN_WINDOW`] is refused (`rate_limited`)
/// until its window ends, whatever token it sends, so guessing costs time.
#[derive(Debug, Default)]
pub(crate) struct SignInThrottle {
    failures: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (Instant, u32)>>,
}

impl SignInThrottle {
    fn table(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<std::net::IpAddr, (Instant, u32)>>
    {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `peer` must still wait, if it is over its budget.
    pub(crate) fn blocked(&self, peer: std::net::IpAddr) -> Option<std::time::Duration> {
        let table = self.table();
        let (since, count) = table.get(&peer)?;
        let left = SIGN_IN_WINDOW.checked_sub(since.elapsed())?;
        (*count >= SIGN_IN_FAILURES).then_some(left)
    }

    /// Counts a failed sign-in of `peer`.
    pub(crate) fn failed(&self, peer: std::net::IpAddr) {
        let mut table = self.table();
        if table.len() >= SIGN_IN_ADDRESSES {
            table.retain(|_, (since, _)| since.elapsed() < SIGN_IN_WINDOW);
        }
        let entry = table.entry(peer).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= SIGN_IN_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// Targets suspected at most (a target is a namespace and a room).
const SLOW_TARGETS: usize = 1_024;

/// Broadcast targets (a namespace and `room <name>` or `broadcast`) whose
/// last broadcast found a socket's buffer full: socketioxide does not say
/// whose, so the next emit there goes to each socket on its own, which
/// finds the slow consumer and disconnects it.
#[derive(Debug, Default)]
pub(crate) struct SlowTargets {
    suspected: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl SlowTargets {
    fn key(namespace: &str, target: &str) -> String {
        format!("{namespace} {target}")
    }

    fn set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.suspected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes that a broadcast to `target` found a full buffer.
    pub(crate) fn suspect(&self, namespace: &str, target: &str) {
        let mut suspected = self.set();
        if suspected.len() < SLOW_TARGETS {
            suspected.insert(Self::key(namespace, target));
        }
    }

    /// Whether `target` is suspected; forgets it (its next emit goes to
    /// each socket, which settles it).
    pub(crate) fn take(&self, namespace: &str, target: &str) -> bool {
        let mut suspected = self.set();
        !suspected.is_empty() && suspected.remove(&Self::key(namespace, target))
    }
}

/// `/chat` joins one client address may make per second, and their burst.
pub(crate) const CHAT_JOINS_PER_SECOND: u32 = 10;
pub(crate) const CHAT_JOINS_BURST: u32 = 50;

/// The per-address budget of `/chat` joins: a join costs every connected
/// chat socket a `user connected` notice, so a storm of joins from one
/// address is refused (`rate_limited`) past [`CHAT_JOINS_PER_SECOND`].
pub(crate) struct ChatJoins {
    /// `None` when the hub's rate limits are off (`--rate-limit 0`).
    limiter: Option<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
}

impl std::fmt::Debug for ChatJoins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatJoins").finish_non_exhaustive()
    }
}

impl ChatJoins {
    fn new(enabled: bool) -> Self {
        let quota = governor::Quota::per_second(
            std::num::NonZeroU32::new(CHAT_JOINS_PER_SECOND).unwrap_or(std::num::NonZeroU32::MIN),
        )
        .allow_burst(
            std::num::NonZeroU32::new(CHAT_JOINS_BURST).unwrap_or(std::num::NonZeroU32::MIN),
        );
        Self {
            limiter: enabled.then(|| governor::RateLimiter::keyed(quota)),
        }
    }

    /// Whether `peer` may join `/chat` now.
    pub(crate) fn admit(&self, peer: std::net::IpAddr) -> bool {
        self.limiter
            .as_ref()
            .is_none_or(|limiter| limiter.check_key(&peer).is_ok())
    }

    /// Forgets addresses that have been quiet a while (the upkeep).
    pub(crate) fn forget_quiet_clients(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}
