//! `/caps`: the Code Fellows CAPS lab's protocol, as learners' own clients
//! speak it, read into the hub's values, and the hub's messages written
//! back in the lab's shape.
//!
//! The lab text prescribes the events and payloads loosely, and every
//! cohort (and every learner) spells them a little differently. What is
//! accepted is this module's tables, in one place (README "Bring your CAPS
//! lab" shows them):
//!
//! - event names ([`SPELLINGS`]): compared *folded*, lowercased with `-`,
//!   `_`, `.` and spaces removed, so `in-transit`, `IN-TRANSIT`,
//!   `inTransit` and `in_transit` are one event;
//! - payload fields ([`STORE_KEYS`], [`ORDER_ID_KEYS`], ...): a flat
//!   Phase 2 pickup `{ store, orderId, customer, address }`, a wrapped
//!   Phase 3 one `{ event, messageId, clientId, order: { ... } }`, or one
//!   wrapped in `payload`; each field under any of its names, looked up
//!   in the order object first (for what describes the order) or the
//!   payload first (for who sends it);
//! - driver names ([`DRIVER_NAMES`]): a `clientId` / `queueId` / room that
//!   names the drivers rather than a store.
//!
//! Messages go back with the lab's fields at the top level (so Phase 2
//! handlers reading `payload.customer` and drivers echoing the payload
//! work) and the hub's envelope fields beside them ([`lab_message`]).
//!
//! - this file: the tables, the spellings, names and styles;
//! - [`read`]: payloads read through the tables (pickups, steps,
//!   catch-ups, confirmations, joins);
//! - [`message`]: the hub's messages in the lab's shape.

mod message;
mod read;

pub(crate) use message::lab_message;
pub(crate) use read::{
    Confirmed, LabPickup, LabStep, parse_lab_confirm, parse_lab_join, parse_lab_pickup,
    parse_lab_queue_ask, parse_lab_step,
};

use super::{ErrorCode, Refusal};
use crate::domain::{LAB_DRIVERS, LabStore, Status};

/// What a lab event means, whatever its spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabEvent {
    /// A vendor asks for a pickup.
    Pickup,
    /// A driver reports a step: `in-transit` or `delivered`.
    Step(Status),
    /// A client confirms a message; some spellings imply which step.
    Received(Option<Status>),
    /// A client catches up on its queue; some spellings imply which step.
    GetAll(Option<Status>),
    /// A client names its store (or says it is a driver).
    Join,
}

/// Every accepted event name, folded, with what it means and where the
/// spelling was seen (for the README and the tests).
pub(crate) const SPELLINGS: &[(&str, LabEvent, &str)] = &[
    ("pickup", LabEvent::Pickup, "pickup, PICKUP, pick-up"),
    (
        "intransit",
        LabEvent::Step(Status::InTransit),
        "in-transit, IN-TRANSIT, inTransit, in_transit",
    ),
    (
        "delivered",
        LabEvent::Step(Status::Delivered),
        "delivered, DELIVERED",
    ),
    (
        "delivery",
        LabEvent::Step(Status::Delivered),
        "DELIVERY (Phase 2 review code)",
    ),
    ("received", LabEvent::Received(None), "received, RECEIVED"),
    (
        "recieved",
        LabEvent::Received(None),
        "recieved (a common misspelling)",
    ),
    (
        "deliveryreceipt",
        LabEvent::Received(Some(Status::Delivered)),
        "delivery-receipt",
    ),
    (
        "getall",
        LabEvent::GetAll(None),
        "getAll, get-all, GET-ALL, getall",
    ),
    ("getorders", LabEvent::GetAll(None), "get-orders"),
    (
        "catchuppickup",
        LabEvent::GetAll(Some(Status::Pending)),
        "catchup-pickup",
    ),
    (
        "getdeliveries",
        LabEvent::GetAll(Some(Status::Delivered)),
        "get-deliveries",
    ),
    ("join", LabEvent::Join, "join, JOIN"),
    ("joinroom", LabEvent::Join, "join-room"),
    ("joingroup", LabEvent::Join, "join-group"),
    ("subscribe", LabEvent::Join, "subscribe"),
];

/// Names that mean the drivers, not a store (folded).
pub(crate) const DRIVER_NAMES: &[&str] = &["driver", "drivers", "driverclient", "capsdrivers"];

/// Where a pickup's store may be named.
pub(crate) const STORE_KEYS: &[&str] = &[
    "store",
    "storeName",
    "storeId",
    "vendor",
    "vendorId",
    "vendorName",
    "clientId",
    "clientID",
    "queueId",
    "queueID",
];
/// Where an order's id may be given (a string or an integer).
pub(crate) const ORDER_ID_KEYS: &[&str] = &["orderId", "orderID", "order_id", "id"];
/// Where the customer's name may be given.
pub(crate) const CUSTOMER_KEYS: &[&str] = &["customer", "customerName", "name"];
/// Where the address may be given.
pub(crate) const ADDRESS_KEYS: &[&str] = &["address", "customerAddress"];
/// Where a confirmation's message id may be given.
pub(crate) const MESSAGE_ID_KEYS: &[&str] = &["messageId", "messageID"];
/// Where an event name may be given inside a payload.
pub(crate) const EVENT_KEYS: &[&str] = &["event", "eventName"];
/// Where `join` may name a room.
pub(crate) const ROOM_KEYS: &[&str] = &[
    "store",
    "storeName",
    "storeId",
    "roomName",
    "room",
    "vendor",
    "vendorId",
    "vendorName",
];
/// Where `join`, `getAll` and `received` may name who asks.
pub(crate) const CLIENT_KEYS: &[&str] = &["clientId", "clientID", "queueId", "queueID"];

/// The fields the hub writes itself in every message (the lab's four and
/// the envelope's four); a pickup's other fields ride along.
pub(crate) const WRITTEN: &[&str] = &[
    "store",
    "orderId",
    "customer",
    "address",
    "messageId",
    "event",
    "order",
    "at",
];

/// `Eh-Vent_Name` -> `eventname`: how names are compared.
pub(crate) fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// What an event name means, if it is one of [`SPELLINGS`].
pub(crate) fn lab_event(name: &str) -> Option<LabEvent> {
    let folded = fold(name);
    SPELLINGS
        .iter()
        .find(|(spelling, _, _)| *spelling == folded)
        .map(|(_, meaning, _)| *meaning)
}

/// The names [`SPELLINGS`] accepts, for the refusal of any other.
pub(crate) const ACCEPTED_NAMES: &str = "pickup, in-transit, delivered (or delivery), \
     received (or recieved, delivery-receipt), getAll (or get-all, get-orders, catchup-pickup, \
     get-deliveries), join (or join-room, join-group, subscribe); in any case, with or without - and _";

/// How a client writes event names: in capitals (`PICKUP`, `IN-TRANSIT`)
/// or as the lab text does (`pickup`, `in-transit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Style {
    #[default]
    AsInTheLab,
    Capitals,
}

impl Style {
    /// The style of a name a client used.
    pub(crate) fn of(name: &str) -> Self {
        let mut letters = name.chars().filter(char::is_ascii_alphabetic).peekable();
        if letters.peek().is_some() && letters.all(|c| c.is_ascii_uppercase()) {
            Style::Capitals
        } else {
            Style::AsInTheLab
        }
    }

    /// The name of the event that reports `step`, in this style.
    pub(crate) fn spell(self, step: Status) -> String {
        let name = super::status_event(step);
        match self {
            Style::AsInTheLab => name.to_owned(),
            Style::Capitals => name.to_ascii_uppercase(),
        }
    }
}

/// Whether `name` names the drivers rather than a store.
pub(crate) fn is_driver_name(name: &str) -> bool {
    DRIVER_NAMES.contains(&fold(name).as_str()) || name == LAB_DRIVERS
}

pub(super) fn refused(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::InvalidPayload, message)
}

/// A store name from a lab client (an id that is already a lab store's,
/// `caps.…`, reads as that store).
pub(super) fn store_named(raw: &str) -> Result<LabStore, Refusal> {
    if let Ok(id) = crate::domain::VendorId::parse(raw)
        && let Some(store) = LabStore::from_vendor_id(&id)
    {
        return Ok(store);
    }
    LabStore::parse(raw).map_err(Refusal::from)
}

/// Who a client names: the drivers, a store, or nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LabName {
    Drivers,
    Store(LabStore),
    Unnamed,
}

impl LabName {
    pub(super) fn parse(raw: &str) -> Result<Self, Refusal> {
        if is_driver_name(raw) {
            Ok(LabName::Drivers)
        } else {
            store_named(raw).map(LabName::Store)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_seen_in_the_labs_means_its_event() {
        for (folded, meaning, seen) in SPELLINGS {
            assert_eq!(fold(folded), *folded, "table entries are folded");
            for spelling in seen.split(", ") {
                let spelling = spelling.split(' ').next().unwrap();
                assert_eq!(lab_event(spelling), Some(*meaning), "{spelling}");
            }
        }
        for (name, meaning) in [
            ("PICKUP", LabEvent::Pickup),
            ("IN-TRANSIT", LabEvent::Step(Status::InTransit)),
            ("inTransit", LabEvent::Step(Status::InTransit)),
            ("DELIVERY", LabEvent::Step(Status::Delivered)),
            ("recieved", LabEvent::Received(None)),
            ("GET-ALL", LabEvent::GetAll(None)),
            ("get-orders", LabEvent::GetAll(None)),
            ("JOIN", LabEvent::Join),
        ] {
            assert_eq!(lab_event(name), Some(meaning), "{name}");
        }
        assert_eq!(lab_event("orders"), None);
        assert_eq!(lab_event("leave"), None);
    }

    #[test]
    fn names_keep_the_clients_style() {
        assert_eq!(Style::of("PICKUP"), Style::Capitals);
        assert_eq!(Style::of("GET-ALL"), Style::Capitals);
        assert_eq!(Style::of("getAll"), Style::AsInTheLab);
        assert_eq!(Style::Capitals.spell(Status::InTransit), "IN-TRANSIT");
        assert_eq!(Style::AsInTheLab.spell(Status::Delivered), "delivered");
    }
}
