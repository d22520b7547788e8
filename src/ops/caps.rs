//! The `/caps` sandbox's operations: a lab store's pickup, a lab driver's
//! step, a lab client's catch-up and confirmation.
//!
//! They are the hub's own operations (the same store, queues and
//! notifications as `/vendor` and `/distributor`), with the sandbox in
//! front: its limits, and who a lab client may act as. A lab client acts
//! for the lab stores it names, and as the lab drivers (`caps.drivers`),
//! the one pool every lab pickup goes to; it can never name a configured
//! vendor or distributor, since every store name maps into `caps.…`.
//!
//! Which queue a `getAll` or a `received` means is decided here, from what
//! the payload names and what the socket has said about itself
//! ([`LabClient`]), by [`queues_for`] (see its table).

use super::{Notify, confirm, move_order, pending_for, submit_pickup};
use crate::domain::{
    LabStore, Message, MessageId, OrderId, Recipient, Status, StatusFilter, VendorId, lab_drivers,
};
use crate::protocol::caps::{Confirmed, LabName, LabPickup, LabStep};
use crate::protocol::{ErrorCode, GET_ALL_MAX, Refusal};
use crate::state::{HubState, Sandbox};
use crate::store::{OrderListing, Recorded};

/// What a lab socket has said about itself so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabClient {
    /// It sent a step, or named the drivers.
    pub(crate) driver: bool,
    /// The stores it joined (or sent a pickup for), oldest first.
    pub(crate) stores: Vec<LabStore>,
}

impl LabClient {
    /// Adds a store it names, once.
    pub(crate) fn names(&mut self, store: &LabStore) {
        if !self.stores.contains(store) {
            self.stores.push(store.clone());
        }
    }
}

/// A queue of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LabQueue {
    /// The lab drivers' pickups, of these stores only (all when empty).
    Drivers(Vec<LabStore>),
    /// A lab store's news (`in-transit`, `delivered`).
    Store(LabStore),
}

impl LabQueue {
    fn recipient(&self) -> Recipient {
        match self {
            LabQueue::Drivers(_) => Recipient::Distributor(lab_drivers()),
            LabQueue::Store(store) => Recipient::Vendor(store.vendor_id().clone()),
        }
    }

    /// Whether `message` of this queue is one the client asks about.
    fn holds(&self, message: &Message, step: Option<Status>) -> bool {
        let store_ok = match self {
            LabQueue::Drivers(stores) => {
                stores.is_empty()
                    || stores
                        .iter()
                        .any(|s| *s.vendor_id() == message.order.vendor_id)
            }
            LabQueue::Store(_) => true,
        };
        store_ok && step.is_none_or(|step| message.status() == step)
    }
}

/// The queues a `getAll` reads:
///
/// | the payload names | step | queues |
/// |---|---|---|
/// | the drivers (`driver`, `drivers`) | any | the drivers' pickups |
/// | store S | `pickup` | the drivers' pickups of S |
/// | store S | `in-transit`, `delivered` | S's news |
/// | store S | none | a driver: the drivers' pickups of S; anyone else: S's news |
/// | nobody | `pickup` | the drivers' pickups (of the stores a driver joined) |
/// | nobody | `in-transit`, `delivered` | the news of the stores the socket joined |
/// | nobody | none | a driver, or a socket that joined nothing: the drivers' pickups (of the stores a driver joined); else the news of the stores it joined |
///
/// `store` is the store an echoed message names, when the payload names
/// no client (`received` of a whole message).
pub(crate) fn queues_for(
    client: &LabClient,
    name: &LabName,
    store: Option<&LabStore>,
    step: Option<Status>,
) -> Vec<LabQueue> {
    let pickups = step == Some(Status::Pending);
    let news = matches!(step, Some(Status::InTransit | Status::Delivered));
    let named = match name {
        LabName::Drivers => return vec![LabQueue::Drivers(Vec::new())],
        LabName::Store(store) => Some(store),
        LabName::Unnamed => store,
    };
    if let Some(store) = named {
        let drivers = LabQueue::Drivers(vec![store.clone()]);
        return match (pickups, news, client.driver) {
            (true, _, _) | (false, false, true) => vec![drivers],
            _ => vec![LabQueue::Store(store.clone())],
        };
    }
    let drivers = LabQueue::Drivers(if client.driver {
        client.stores.clone()
    } else {
        Vec::new()
    });
    let joined =
        || -> Vec<LabQueue> { client.stores.iter().cloned().map(LabQueue::Store).collect() };
    if pickups || (!news && (client.driver || client.stores.is_empty())) {
        vec![drivers]
    } else {
        joined()
    }
}

/// The queues a `received` may mean: those of [`queues_for`], then, when
/// the step is not named, the other side of the same stores (a message id
/// is one message wherever it is; an order id is looked up in each).
pub(crate) fn confirm_queues(
    client: &LabClient,
    name: &LabName,
    store: Option<&LabStore>,
    step: Option<Status>,
) -> Vec<LabQueue> {
    let mut queues = queues_for(client, name, store, step);
    if step.is_none() {
        let other: Vec<LabQueue> = queues
            .iter()
            .flat_map(|queue| match queue {
                LabQueue::Drivers(stores) => stores.iter().cloned().map(LabQueue::Store).collect(),
                LabQueue::Store(store) => vec![LabQueue::Drivers(vec![store.clone()])],
            })
            .collect();
        for queue in other {
            if !queues.contains(&queue) {
                queues.push(queue);
            }
        }
    }
    queues
}

/// The sandbox, or the refusal of a hub that does not serve `/caps`.
fn sandbox(hub: &HubState) -> Result<&Sandbox, Refusal> {
    hub.caps
        .as_ref()
        .ok_or_else(|| Refusal::new(ErrorCode::Forbidden, "this hub does not serve /caps"))
}

/// Counts a lab store's open orders as steps are taken (whichever door
/// they came by): a pickup opens one, a delivery closes it.
pub(super) fn count_open(hub: &HubState, message: &Message) {
    let Some(sandbox) = &hub.caps else {
        return;
    };
    let vendor = &message.order.vendor_id;
    if LabStore::from_vendor_id(vendor).is_none() {
        return;
    }
    match message.status() {
        Status::Pending => sandbox.opened(vendor),
        Status::Delivered => sandbox.closed(vendor),
        Status::InTransit => {}
    }
}

/// The sandbox's limits on a lab store's pickup, whichever door it came
/// by (`/caps`, or a person on the vendor console or the HTTP API): the
/// stores this hub takes, and the open orders of one store. A repeat of an
/// order already recorded passes (it is a duplicate, as for vendors).
pub(super) async fn check_lab_pickup(
    hub: &HubState,
    vendor: &VendorId,
    order: &OrderId,
) -> Result<(), Refusal> {
    let sandbox = sandbox(hub)?;
    sandbox
        .admit_store(vendor)
        .map_err(|full| Refusal::new(ErrorCode::Forbidden, full.to_string()))?;
    if hub.store.order(vendor, order).await?.is_some() {
        return Ok(());
    }
    let limit = sandbox.limits.open_orders;
    let open = hub
        .store
        .list_orders(&OrderListing {
            party: Recipient::Vendor(vendor.clone()),
            filter: StatusFilter::Open,
            limit,
            before: None,
        })
        .await?;
    if open.orders.len() >= limit {
        let store = LabStore::from_vendor_id(vendor)
            .map_or_else(|| vendor.to_string(), |store| store.name().to_owned());
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!(
                "lab store {store:?} has {limit} open orders, the most the sandbox keeps at once: deliver some first"
            ),
        ));
    }
    Ok(())
}

/// A lab store's pickup from `/caps`: a real order of `caps.<store>` for
/// the lab drivers (through [`submit_pickup`], which holds it to the
/// sandbox's limits), with the payload's other fields noted for the
/// messages about it.
pub(crate) async fn lab_pickup(
    hub: &HubState,
    notify: &impl Notify,
    lab: LabPickup,
) -> Result<Recorded, Refusal> {
    let sandbox = sandbox(hub)?;
    let vendor = lab.store.vendor_id();
    // Noted before the order is, so the first messages about it carry them.
    sandbox.note_extras(vendor, &lab.pickup.order_id, lab.extras);
    submit_pickup(hub, notify, vendor, lab.pickup).await
}

/// A lab driver moves an order of a lab store (as the lab drivers). The
/// step shows the drivers got the pickup, so it confirms the order's
/// pickup if it is still queued for them: Phase 2 drivers never send
/// `received`, and their pickups would otherwise wait forever.
pub(crate) async fn lab_step(
    hub: &HubState,
    notify: &impl Notify,
    step: &LabStep,
    to: Status,
) -> Result<Recorded, Refusal> {
    sandbox(hub)?;
    let recorded = move_order(
        hub,
        notify,
        &lab_drivers(),
        step.store.vendor_id(),
        &step.order_id,
        to,
    )
    .await?;
    let drivers = Recipient::Distributor(lab_drivers());
    let pickups = pending_for(hub, &drivers).await?.into_iter().filter(|m| {
        m.order.order_id == step.order_id && m.order.vendor_id == *step.store.vendor_id()
    });
    for pickup in pickups {
        confirm(hub, &drivers, &pickup.id).await?;
    }
    Ok(recorded)
}

/// What is queued in `queues` (of `step`, if given), oldest first per
/// queue: at most [`GET_ALL_MAX`] messages, as for `getAll` on `/vendor`
/// and `/distributor` (a lab client confirms them and asks again).
pub(crate) async fn lab_pending(
    hub: &HubState,
    queues: &[LabQueue],
    step: Option<Status>,
) -> Result<Vec<Message>, Refusal> {
    sandbox(hub)?;
    let mut out = Vec::new();
    for queue in queues {
        let messages = pending_for(hub, &queue.recipient()).await?;
        out.extend(messages.into_iter().filter(|m| queue.holds(m, step)));
    }
    out.truncate(GET_ALL_MAX);
    Ok(out)
}

/// Confirms what a lab client received, in the first of `queues` that
/// holds it: the message with the hub's id, or (an order id, as the lab
/// text sends) the oldest message about that order, of `step` if named.
/// Confirming a `delivered` also confirms that order's `in-transit` still
/// queued there: the lab queues only `delivered` for its vendors, so its
/// clients never confirm the step before. False when no queue holds it.
pub(crate) async fn lab_confirm(
    hub: &HubState,
    queues: &[LabQueue],
    confirmed: &Confirmed,
    step: Option<Status>,
) -> Result<bool, Refusal> {
    sandbox(hub)?;
    let (by_id, by_order): (Option<&MessageId>, Option<OrderId>) = match confirmed {
        // An order id of the lab's own may look like one of the hub's.
        Confirmed::Message(id) => (Some(id), OrderId::parse(id.as_str()).ok()),
        Confirmed::Order(order) => (None, Some(order.clone())),
    };
    for queue in queues {
        let recipient = queue.recipient();
        let queued = pending_for(hub, &recipient).await?;
        let found = by_id
            .and_then(|id| queued.iter().find(|m| m.id == *id))
            .or_else(|| {
                let order = by_order.as_ref()?;
                queued
                    .iter()
                    .find(|m| m.order.order_id == *order && queue.holds(m, step))
            });
        let Some(message) = found else {
            continue;
        };
        let removed = confirm(hub, &recipient, &message.id).await?;
        if message.status() == Status::Delivered {
            let before = queued.iter().filter(|m| {
                m.order.order_id == message.order.order_id
                    && m.order.vendor_id == message.order.vendor_id
                    && m.status() == Status::InTransit
            });
            for earlier in before {
                confirm(hub, &recipient, &earlier.id).await?;
            }
        }
        return Ok(removed);
    }
    Ok(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn store(name: &str) -> LabStore {
        LabStore::parse(name).unwrap()
    }

    #[test]
    fn the_drivers_name_their_pool() {
        let anyone = LabClient::default();
        assert_eq!(
            queues_for(&anyone, &LabName::Drivers, None, None),
            [LabQueue::Drivers(vec![])]
        );
        assert_eq!(
            queues_for(&anyone, &LabName::Unnamed, None, None),
            [LabQueue::Drivers(vec![])],
            "a socket that named nothing is a driver"
        );
    }

    #[test]
    fn a_named_store_means_its_news_or_its_pickups() {
        let s = store("1-800-flowers");
        let vendor = LabClient::default();
        let name = LabName::Store(s.clone());
        assert_eq!(
            queues_for(&vendor, &name, None, Some(Status::Delivered)),
            [LabQueue::Store(s.clone())]
        );
        assert_eq!(
            queues_for(&vendor, &name, None, Some(Status::Pending)),
            [LabQueue::Drivers(vec![s.clone()])]
        );
        assert_eq!(
            queues_for(&vendor, &name, None, None),
            [LabQueue::Store(s.clone())]
        );
        assert_eq!(
            confirm_queues(&vendor, &name, None, None),
            [
                LabQueue::Store(s.clone()),
                LabQueue::Drivers(vec![s.clone()])
            ]
        );
        let driver = LabClient {
            driver: true,
            stores: vec![],
        };
        assert_eq!(
            queues_for(&driver, &name, None, None)[0],
            LabQueue::Drivers(vec![s])
        );
    }

    #[test]
    fn an_unnamed_ask_uses_what_the_socket_joined() {
        let a = store("a");
        let vendor = LabClient {
            driver: false,
            stores: vec![a.clone()],
        };
        assert_eq!(
            queues_for(&vendor, &LabName::Unnamed, None, None),
            [LabQueue::Store(a.clone())]
        );
        let driver = LabClient {
            driver: true,
            stores: vec![a.clone()],
        };
        assert_eq!(
            queues_for(&driver, &LabName::Unnamed, None, None),
            [LabQueue::Drivers(vec![a])]
        );
    }
}
