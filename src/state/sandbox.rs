//! The `/caps` sandbox: its limits, the lab stores it has taken pickups
//! for, and what lab clients said that the store does not keep.
//!
//! Lab orders are real orders, stored and queued like any other; what a
//! lab client adds around them (the spelling of its event names, the extra
//! fields of its pickup payload) is remembered here, in memory and within
//! bounds, so the messages the hub sends back speak the client's dialect
//! and carry its fields. A hub that restarts (or another hub of a cluster)
//! does not have these notes: its messages then carry the standard lab
//! fields and the asking client's style of names (see `protocol::caps`).

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{Map, Value};

use crate::domain::{OrderId, Status, VendorId};

/// Extra fields kept per order at most, as JSON bytes; larger ones are not kept.
const MAX_EXTRAS_BYTES: usize = 2 * 1024;
/// Orders whose extra fields are remembered at most (the oldest go first).
const MAX_NOTED_ORDERS: usize = 10_000;

/// What `/caps` may take (`--caps-*`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CapsLimits {
    /// Events per second all `/caps` sockets of this hub share (0: no limit).
    pub rate_per_second: u32,
    pub burst: u32,
    /// Lab stores with open orders at once (as this hub counts them).
    pub stores: usize,
    /// Open orders one lab store may have at once (1 to 500).
    pub open_orders: usize,
}

/// Why the sandbox did not take a new store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this hub's /caps sandbox has {limit} lab stores with open orders, the most it keeps at once: \
     deliver some first"
)]
pub(crate) struct TooManyStores {
    pub limit: usize,
}

/// The `/caps` sandbox of one hub (present only while `/caps` is served).
#[derive(Debug)]
pub(crate) struct Sandbox {
    pub limits: CapsLimits,
    /// The one budget every `/caps` socket of this hub spends from: lab
    /// clients have no identity to give each a budget of its own.
    pub budget: Option<Arc<DefaultDirectRateLimiter>>,
    /// The lab stores with open orders, and how many (as this hub saw
    /// them opened and delivered; a restarted hub starts from none).
    open: Mutex<HashMap<VendorId, usize>>,
    /// The lab stores that sent a pickup lately, newest last (for the pages).
    recent: Mutex<VecDeque<VendorId>>,
    notes: Mutex<Notes>,
}

/// Lab stores the pages offer at most.
const RECENT_STORES: usize = 20;

/// The per-store spellings and per-order extras, bounded.
#[derive(Debug, Default)]
struct Notes {
    /// The event name each lab store last used for each step.
    spellings: HashMap<VendorId, HashMap<Status, String>>,
    extras: HashMap<(VendorId, OrderId), Map<String, Value>>,
    /// Noted orders, oldest first, so the oldest notes go first.
    order: VecDeque<(VendorId, OrderId)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sandbox {
    pub(crate) fn new(limits: CapsLimits) -> Self {
        let budget = NonZeroU32::new(limits.rate_per_second).map(|rate| {
            let burst = NonZeroU32::new(limits.burst).unwrap_or(rate);
            Arc::new(RateLimiter::direct(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        Self {
            limits,
            budget,
            open: Mutex::default(),
            recent: Mutex::default(),
            notes: Mutex::default(),
        }
    }

    /// Whether `store` may have one more open order: a store that has open
    /// orders may, a new one only while fewer than the limit have.
    pub(crate) fn admit_store(&self, store: &VendorId) -> Result<(), TooManyStores> {
        let open = lock(&self.open);
        if open.contains_key(store) || open.len() < self.limits.stores {
            Ok(())
        } else {
            Err(TooManyStores {
                limit: self.limits.stores,
            })
        }
    }

    /// A lab store's order was created.
    pub(crate) fn opened(&self, store: &VendorId) {
        *lock(&self.open).entry(store.clone()).or_default() += 1;
        let mut recent = lock(&self.recent);
        recent.retain(|s| s != store);
        recent.push_back(store.clone());
        if recent.len() > RECENT_STORES {
            recent.pop_front();
        }
    }

    /// A lab store's order was delivered.
    pub(crate) fn closed(&self, store: &VendorId) {
        let mut open = lock(&self.open);
        if let Some(count) = open.get_mut(store) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(store);
            }
        }
    }

    /// The lab stores that sent a pickup lately, newest first (for the pages).
    pub(crate) fn stores(&self) -> Vec<VendorId> {
        lock(&self.recent).iter().rev().cloned().collect()
    }

    /// Remembers that `store`'s clients call `step` by `name`.
    pub(crate) fn note_spelling(&self, store: &VendorId, step: Status, name: &str) {
        let mut notes = lock(&self.notes);
        // A name per step of each store; the stores are bounded by pickups.
        if !notes.spellings.contains_key(store) && notes.spellings.len() >= MAX_NOTED_ORDERS {
            return;
        }
        notes
            .spellings
            .entry(store.clone())
            .or_default()
            .insert(step, name.to_owned());
    }

    /// The name `store`'s clients last used for `step`, if this hub heard one.
    pub(crate) fn spelling(&self, store: &VendorId, step: Status) -> Option<String> {
        lock(&self.notes)
            .spellings
            .get(store)
            .and_then(|steps| steps.get(&step))
            .cloned()
    }

    /// Remembers the extra fields a lab client sent with an order's
    /// pickup; the first pickup of an order is the one remembered (a
    /// repeat is a duplicate, a pickup with other details is refused).
    pub(crate) fn note_extras(
        &self,
        store: &VendorId,
        order: &OrderId,
        extras: Map<String, Value>,
    ) {
        if extras.is_empty() || Value::Object(extras.clone()).to_string().len() > MAX_EXTRAS_BYTES {
            return;
        }
        let key = (store.clone(), order.clone());
        let mut notes = lock(&self.notes);
        if notes.extras.contains_key(&key) {
            return;
        }
        notes.extras.insert(key.clone(), extras);
        notes.order.push_back(key);
        while notes.order.len() > MAX_NOTED_ORDERS {
            if let Some(oldest) = notes.order.pop_front() {
                notes.extras.remove(&oldest);
            }
        }
    }

    /// The extra fields of an order's pickup, if this hub remembers them.
    pub(crate) fn extras(&self, store: &VendorId, order: &OrderId) -> Option<Map<String, Value>> {
        lock(&self.notes)
            .extras
            .get(&(store.clone(), order.clone()))
            .cloned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sandbox(stores: usize) -> Sandbox {
        Sandbox::new(CapsLimits {
            rate_per_second: 0,
            burst: 0,
            stores,
            open_orders: 10,
        })
    }

    #[test]
    fn stores_with_open_orders_are_taken_up_to_the_limit() {
        let s = sandbox(2);
        let id = |name: &str| VendorId::parse(name).unwrap();
        for store in ["caps.a", "caps.b"] {
            assert!(s.admit_store(&id(store)).is_ok());
            s.opened(&id(store));
        }
        assert!(
            s.admit_store(&id("caps.a")).is_ok(),
            "a store with open orders stays"
        );
        assert_eq!(
            s.admit_store(&id("caps.c")),
            Err(TooManyStores { limit: 2 })
        );
        s.closed(&id("caps.b"));
        assert!(s.admit_store(&id("caps.c")).is_ok(), "b has none open now");
        assert_eq!(s.stores(), [id("caps.b"), id("caps.a")], "newest first");
    }

    #[test]
    fn notes_are_kept_per_store_and_order() {
        let s = sandbox(2);
        let store = VendorId::parse("caps.a").unwrap();
        let order = OrderId::parse("o-1").unwrap();
        s.note_spelling(&store, Status::Pending, "PICKUP");
        assert_eq!(
            s.spelling(&store, Status::Pending).as_deref(),
            Some("PICKUP")
        );
        assert_eq!(s.spelling(&store, Status::Delivered), None);
        let mut extras = Map::new();
        extras.insert("time".into(), Value::from("now"));
        s.note_extras(&store, &order, extras.clone());
        assert_eq!(s.extras(&store, &order), Some(extras));
        let mut huge = Map::new();
        huge.insert("x".into(), Value::from("y".repeat(3000)));
        let other = OrderId::parse("o-2").unwrap();
        s.note_extras(&store, &other, huge);
        assert_eq!(s.extras(&store, &other), None, "too large to keep");
    }
}
