//! The shared hub state every handler and operation reaches: the store, who
//! may connect, the activity feed, the limits, and who is in the chat.
//!
//! This is a leaf of the module graph: it knows the store and the
//! configuration and nothing that serves a transport, so the operations,
//! the namespaces and the web all sit above it. Shared as [`Hub`]; cloning
//! is shallow.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use governor::Quota;
use tokio::sync::RwLock;

use crate::activity::Activity;
use crate::config::Credentials;
use crate::domain::ChatName;
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
    pub chat: ChatState,
    /// This hub's Socket.IO server id (the `hub` of sockets in a cluster).
    /// Set once the Socket.IO layer exists, which needs this state first.
    hub_id: OnceLock<String>,
}

pub(crate) type Hub = Arc<HubState>;

impl HubState {
    pub(crate) fn new(store: SharedStore, credentials: Credentials, limits: Limits) -> Self {
        Self {
            store,
            credentials,
            activity: Activity::new(),
            limits,
            started: Instant::now(),
            chat: ChatState::default(),
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

/// Who is in this hub's chat, and the gate that keeps replays in order.
#[derive(Debug, Default)]
pub(crate) struct ChatState {
    pub roster: Arc<ChatRoster>,
    /// Held shared while a chat message is stored and relayed, and
    /// exclusively while a socket is handed what it missed and starts
    /// hearing live messages: so on this hub no live message overtakes, or
    /// slips past, a replay.
    pub quiet: RwLock<()>,
}

/// The names of the chat users connected to this hub, each once (compared
/// by [`ChatName::key`]). A name is claimed in the connect middleware under
/// one lock, so two sockets that connect with one name at once cannot both
/// get it.
#[derive(Debug, Default)]
pub(crate) struct ChatRoster {
    /// Name key -> (the name as given, the seat holding it).
    names: Mutex<BTreeMap<String, (ChatName, u64)>>,
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
        names.insert(key.clone(), (name.clone(), id));
        Some(Seat {
            roster: self.clone(),
            key,
            id,
        })
    }

    /// How many chat users are connected.
    pub(crate) fn online(&self) -> usize {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Every connected name, in the order of their keys (ignoring case).
    pub(crate) fn names(&self) -> Vec<String> {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|(name, _)| name.as_str().to_owned())
            .collect()
    }

    fn release(&self, key: &str, id: u64) {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        // Only this seat's claim: the name may have been claimed anew since.
        if names.get(key).is_some_and(|(_, holder)| *holder == id) {
            names.remove(key);
        }
    }
}

/// One socket's hold on its chat name, released when the socket leaves
/// ([`Seat::release`]) or, whatever happens to the socket, when it is
/// dropped with the socket.
#[derive(Debug)]
pub(crate) struct Seat {
    roster: Arc<ChatRoster>,
    key: String,
    id: u64,
}

impl Seat {
    /// Gives the name back (again is harmless).
    pub(crate) fn release(&self) {
        self.roster.release(&self.key, self.id);
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.release();
    }
}
