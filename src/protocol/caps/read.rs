//! What lab clients send, read through every shape and spelling of the
//! table in [`super`]: pickups, steps, catch-ups, confirmations, joins.

use serde_json::{Map, Value};

use super::{
    ADDRESS_KEYS, CLIENT_KEYS, CUSTOMER_KEYS, EVENT_KEYS, LabEvent, LabName, MESSAGE_ID_KEYS,
    ORDER_ID_KEYS, ROOM_KEYS, STORE_KEYS, WRITTEN, is_driver_name, lab_event, refused, store_named,
};
use crate::domain::{InvalidValue, LabStore, MessageId, OrderId, Pickup, Status, lab_drivers};
use crate::protocol::{MAX_TEXT_FIELD, Refusal};

/// A payload read field by field through the lab's shapes: the payload
/// itself, its `order` object, and a `payload` object some cohorts wrap
/// the original in.
#[derive(Debug, Clone, Copy)]
struct Lab<'a> {
    top: Option<&'a Map<String, Value>>,
}

impl<'a> Lab<'a> {
    fn of(value: &'a Value) -> Self {
        Self {
            top: value.as_object(),
        }
    }

    fn nested(&self, key: &str) -> Option<&'a Map<String, Value>> {
        self.top?.get(key)?.as_object()
    }

    /// The layers in which to look, in order.
    fn layers(&self, order_first: bool) -> Vec<&'a Map<String, Value>> {
        let mut layers = Vec::with_capacity(4);
        let inner = [self.nested("order"), self.nested("payload")];
        let payload_order = self
            .nested("payload")
            .and_then(|p| p.get("order")?.as_object());
        if order_first {
            layers.extend(inner.into_iter().flatten());
            layers.extend(payload_order);
            layers.extend(self.top);
        } else {
            layers.extend(self.top);
            layers.extend(inner.into_iter().flatten());
            layers.extend(payload_order);
        }
        layers
    }

    /// The first text under any of `keys` (a number reads as its digits)
    /// that `accept` takes.
    fn text(
        &self,
        keys: &[&str],
        order_first: bool,
        accept: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.layers(order_first).into_iter().find_map(|layer| {
            keys.iter().find_map(|key| match layer.get(*key)? {
                Value::String(s) if !s.trim().is_empty() && accept(s) => Some(s.clone()),
                Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
                _ => None,
            })
        })
    }

    /// A store named anywhere a store may be named (not a driver name).
    fn store(&self) -> Result<Option<LabStore>, Refusal> {
        match self.text(STORE_KEYS, false, |s| !is_driver_name(s)) {
            Some(name) => Ok(Some(store_named(&name)?)),
            None => Ok(None),
        }
    }

    fn order_id(&self) -> Result<Option<OrderId>, Refusal> {
        match self.text(ORDER_ID_KEYS, true, |_| true) {
            Some(raw) => Ok(Some(OrderId::parse(&raw)?)),
            None => Ok(None),
        }
    }

    /// The step an `event` / `eventName` field names, if it names one.
    fn step(&self) -> Option<Status> {
        let name = self.text(EVENT_KEYS, false, |_| true)?;
        match lab_event(&name)? {
            LabEvent::Pickup => Some(Status::Pending),
            LabEvent::Step(step) => Some(step),
            _ => None,
        }
    }

    /// Who a `getAll` / `received` says is asking: the drivers, a store, or nobody.
    fn client(&self) -> Result<LabName, Refusal> {
        match self.text(CLIENT_KEYS, false, |_| true) {
            Some(name) => LabName::parse(&name),
            None => Ok(LabName::Unnamed),
        }
    }
}

/// A lab pickup: the store, the hub's pickup (for the lab drivers), and
/// the payload's other fields, to send back with every message about it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LabPickup {
    pub(crate) store: LabStore,
    pub(crate) pickup: Pickup,
    pub(crate) extras: Map<String, Value>,
}

/// Reads a pickup: flat, wrapped in `order`, or wrapped in `payload`.
pub(crate) fn parse_lab_pickup(value: &Value) -> Result<LabPickup, Refusal> {
    let Some(top) = value.as_object() else {
        return Err(refused("payload must be a JSON object"));
    };
    let lab = Lab::of(value);
    let store = lab.store()?.ok_or_else(|| {
        refused("the pickup names no store: send store (or storeName, clientId, queueId, vendorId)")
    })?;
    let order_id = lab
        .order_id()?
        .ok_or_else(|| refused("the pickup names no order: send orderId (or orderID, id)"))?;
    let text = |keys: &[&str], field: &str| -> Result<String, Refusal> {
        let raw = lab
            .text(keys, true, |_| true)
            .ok_or_else(|| refused(format!("{field} is required (as {})", keys.join(", "))))?;
        let raw = raw.trim();
        if raw.chars().count() > MAX_TEXT_FIELD {
            return Err(refused(format!(
                "{field} must be at most {} characters",
                MAX_TEXT_FIELD
            )));
        }
        Ok(raw.to_owned())
    };
    let customer = text(CUSTOMER_KEYS, "customer")?;
    let address = text(ADDRESS_KEYS, "address")?;
    let extras = top
        .iter()
        .filter(|(key, _)| !WRITTEN.contains(&key.as_str()) || key.as_str() == "order")
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Ok(LabPickup {
        store,
        pickup: Pickup {
            order_id,
            distributor_id: lab_drivers(),
            customer,
            address,
        },
        extras,
    })
}

/// A driver's `in-transit` / `delivered`: which order (usually the pickup
/// it received, echoed back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabStep {
    pub(crate) store: LabStore,
    pub(crate) order_id: OrderId,
}

pub(crate) fn parse_lab_step(value: &Value) -> Result<LabStep, Refusal> {
    if !value.is_object() {
        return Err(refused("payload must be a JSON object"));
    }
    let lab = Lab::of(value);
    let store = lab.store()?.ok_or_else(|| {
        refused(
            "the payload names no store: send back the pickup you received (or store and orderId)",
        )
    })?;
    let order_id = lab.order_id()?.ok_or_else(|| {
        refused(
            "the payload names no order: send back the pickup you received (or store and orderId)",
        )
    })?;
    Ok(LabStep { store, order_id })
}

/// Which queue a `getAll` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabQueueAsk {
    /// Who asks: the drivers, a store, or nobody (the socket's own rooms decide).
    pub(crate) name: LabName,
    /// Only messages about this step, if named.
    pub(crate) step: Option<Status>,
}

/// Reads `getAll`: nothing, a bare name, or `{ clientId | queueId | store…, event? }`.
pub(crate) fn parse_lab_queue_ask(
    value: &Value,
    implied: Option<Status>,
) -> Result<LabQueueAsk, Refusal> {
    let (name, step) = match value {
        Value::Null => (LabName::Unnamed, None),
        Value::Array(items) if items.is_empty() => (LabName::Unnamed, None),
        Value::String(raw) if raw.trim().is_empty() => (LabName::Unnamed, None),
        Value::String(raw) => (LabName::parse(raw)?, None),
        Value::Object(_) => {
            let lab = Lab::of(value);
            let name = match lab.client()? {
                LabName::Unnamed => lab.store()?.map_or(LabName::Unnamed, LabName::Store),
                named => named,
            };
            (name, lab.step())
        }
        _ => {
            return Err(refused(
                "payload must be nothing, a name or a JSON object such as { clientId, event }",
            ));
        }
    };
    Ok(LabQueueAsk {
        name,
        step: step.or(implied),
    })
}

/// What a `received` points at: the hub's message id, or an order's id
/// (the Phase 3 lab text sends the order id as `messageId`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Confirmed {
    Message(MessageId),
    Order(OrderId),
}

/// A `received`: what it confirms, and what it says about whose queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabConfirm {
    pub(crate) confirmed: Confirmed,
    /// `clientId` / `queueId`: the drivers, a store, or nobody.
    pub(crate) name: LabName,
    /// The store the payload is about (an echoed message names it).
    pub(crate) store: Option<LabStore>,
    /// The step it confirms, if named (`event`) or implied.
    pub(crate) step: Option<Status>,
}

/// Reads `received`: `{ messageId }`, `{ clientId, event, messageId }`,
/// or the whole message echoed back.
pub(crate) fn parse_lab_confirm(
    value: &Value,
    implied: Option<Status>,
) -> Result<LabConfirm, Refusal> {
    if !value.is_object() {
        return Err(refused(
            "payload must be a JSON object: the message you received, or { clientId, event, messageId }",
        ));
    }
    let lab = Lab::of(value);
    let message_id = lab.text(MESSAGE_ID_KEYS, false, |_| true);
    let confirmed = match message_id {
        Some(id) if id.starts_with("m-") => Confirmed::Message(MessageId::parse(&id)?),
        Some(id) => Confirmed::Order(OrderId::parse(&id).map_err(|InvalidValue(e)| {
            refused(format!(
                "messageId is neither a message id of this hub nor an order id: {e}"
            ))
        })?),
        None => match lab.order_id()? {
            Some(order) => Confirmed::Order(order),
            None => {
                return Err(refused(
                    "received names no message: send messageId (the hub's, or your orderId)",
                ));
            }
        },
    };
    let name = lab.client()?;
    let store = match &name {
        LabName::Store(store) => Some(store.clone()),
        _ => lab.store()?,
    };
    Ok(LabConfirm {
        confirmed,
        name,
        store,
        step: lab.step().or(implied),
    })
}

/// A `join`: the stores it names, and whether it says it is a driver.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LabJoin {
    pub(crate) stores: Vec<LabStore>,
    pub(crate) driver: bool,
}

/// Reads `join`: a bare name, a list of names, or an object naming a
/// store (`storeName`, `roomName`, `store`, ...) or a client (`clientId`,
/// `queueId`), a whole pickup included.
pub(crate) fn parse_lab_join(value: &Value) -> Result<LabJoin, Refusal> {
    let mut join = LabJoin::default();
    let add = |raw: &str, join: &mut LabJoin| -> Result<(), Refusal> {
        match LabName::parse(raw)? {
            LabName::Drivers => join.driver = true,
            LabName::Store(store) => {
                if !join.stores.contains(&store) {
                    join.stores.push(store);
                }
            }
            LabName::Unnamed => {}
        }
        Ok(())
    };
    match value {
        Value::String(raw) => add(raw, &mut join)?,
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(raw) => add(raw, &mut join)?,
                    _ => return Err(refused("join takes names: every item must be a string")),
                }
            }
        }
        Value::Object(_) => {
            let lab = Lab::of(value);
            let client = lab.text(CLIENT_KEYS, false, |_| true);
            if client.as_deref().is_some_and(is_driver_name) {
                join.driver = true;
            }
            let room = lab.text(ROOM_KEYS, false, |s| !is_driver_name(s));
            match (room, client) {
                (Some(room), _) => add(&room, &mut join)?,
                (None, Some(client)) => add(&client, &mut join)?,
                (None, None) => {}
            }
        }
        _ => {}
    }
    if join.stores.is_empty() && !join.driver {
        return Err(refused(
            "join names no store: send the store's name (a string, or { storeName }, { roomName }, { clientId }, { queueId })",
        ));
    }
    Ok(join)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::LAB_DRIVERS;
    use serde_json::json;

    #[test]
    fn a_flat_phase_2_pickup_reads() {
        let p = parse_lab_pickup(&json!({
            "store": "1-206-flowers", "orderId": "e3669048", "customer": "Jamal Braun", "address": "Schmittfort, LA"
        }))
        .unwrap();
        assert_eq!(p.store.vendor_id().as_str(), "caps.1-206-flowers");
        assert_eq!(p.pickup.order_id.as_str(), "e3669048");
        assert_eq!(p.pickup.distributor_id.as_str(), LAB_DRIVERS);
        assert_eq!(p.pickup.customer, "Jamal Braun");
        assert!(p.extras.is_empty());
    }

    #[test]
    fn a_wrapped_phase_3_pickup_reads_with_its_extra_fields() {
        let p = parse_lab_pickup(&json!({
            "event": "pickup", "messageId": "abc", "clientId": "ACME Widgets", "queueId": "ACME Widgets",
            "order": { "store": "ACME Widgets", "id": 42, "name": "Jo", "address": "Here" }
        }))
        .unwrap();
        assert_eq!(p.store.name(), "ACME Widgets");
        assert_eq!(p.pickup.order_id.as_str(), "42");
        assert_eq!(p.pickup.customer, "Jo");
        assert_eq!(p.extras.get("queueId"), Some(&json!("ACME Widgets")));
        assert!(
            p.extras.contains_key("order"),
            "the lab's order rides along"
        );
        assert!(
            !p.extras.contains_key("messageId"),
            "the hub writes its own"
        );
    }

    #[test]
    fn a_pickup_says_what_it_lacks() {
        let no_store = parse_lab_pickup(&json!({ "orderId": "1" })).unwrap_err();
        assert!(no_store.message.contains("no store"), "{no_store}");
        let no_order = parse_lab_pickup(&json!({ "store": "s" })).unwrap_err();
        assert!(no_order.message.contains("no order"), "{no_order}");
        let no_customer =
            parse_lab_pickup(&json!({ "store": "s", "orderId": "1", "address": "a" })).unwrap_err();
        assert!(no_customer.message.starts_with("customer is required"));
        let driver_only =
            parse_lab_pickup(&json!({ "clientId": "driver", "orderId": "1" })).unwrap_err();
        assert!(driver_only.message.contains("no store"));
    }

    #[test]
    fn an_echoed_message_names_its_store_and_order() {
        let step = parse_lab_step(&json!({
            "messageId": "m-1", "event": "pickup",
            "order": { "orderId": "o-1", "vendorId": "caps.ACME_20Widgets" }
        }))
        .unwrap();
        assert_eq!(step.store.name(), "ACME Widgets");
        assert_eq!(step.order_id.as_str(), "o-1");
        let d44 = parse_lab_step(&json!({
            "messageID": "x", "payload": { "store": "s", "orderID": "o-2" }
        }))
        .unwrap();
        assert_eq!((d44.store.name(), d44.order_id.as_str()), ("s", "o-2"));
    }

    #[test]
    fn get_all_reads_every_shape() {
        let ask = |v: Value| parse_lab_queue_ask(&v, None).unwrap();
        assert_eq!(ask(Value::Null).name, LabName::Unnamed);
        assert_eq!(ask(json!({ "queueId": "driver" })).name, LabName::Drivers);
        assert_eq!(ask(json!("DRIVERS")).name, LabName::Drivers);
        let vendor = ask(json!({ "clientId": "1-800-flowers", "event": "delivered" }));
        assert!(matches!(vendor.name, LabName::Store(ref s) if s.name() == "1-800-flowers"));
        assert_eq!(vendor.step, Some(Status::Delivered));
        let driver = ask(json!({ "clientId": "acme", "eventName": "pickup" }));
        assert_eq!(driver.step, Some(Status::Pending));
        let unknown_event = ask(json!({ "storeId": "x", "eventName": "test-event-name" }));
        assert_eq!(unknown_event.step, None);
        assert_eq!(
            parse_lab_queue_ask(&Value::Null, Some(Status::Delivered))
                .unwrap()
                .step,
            Some(Status::Delivered)
        );
    }

    #[test]
    fn received_reads_a_message_id_or_an_order_id() {
        let by_hub =
            parse_lab_confirm(&json!({ "queueId": "driver", "messageId": "m-0190" }), None)
                .unwrap();
        assert_eq!(
            by_hub.confirmed,
            Confirmed::Message(MessageId::parse("m-0190").unwrap())
        );
        assert_eq!(by_hub.name, LabName::Drivers);
        let by_order = parse_lab_confirm(
            &json!({ "clientId": "1-800-flowers", "event": "delivered", "messageId": "e366" }),
            None,
        )
        .unwrap();
        assert_eq!(
            by_order.confirmed,
            Confirmed::Order(OrderId::parse("e366").unwrap())
        );
        assert_eq!(by_order.step, Some(Status::Delivered));
        assert_eq!(by_order.store.unwrap().name(), "1-800-flowers");
        let receipt = parse_lab_confirm(
            &json!({ "store": "s", "orderId": "o-9" }),
            Some(Status::Delivered),
        )
        .unwrap();
        assert_eq!(receipt.step, Some(Status::Delivered));
        assert!(parse_lab_confirm(&json!({ "clientId": "s" }), None).is_err());
    }

    #[test]
    fn join_reads_a_name_a_list_or_an_object() {
        let names =
            |j: LabJoin| -> Vec<String> { j.stores.iter().map(|s| s.name().to_owned()).collect() };
        assert_eq!(
            names(parse_lab_join(&json!("1-800-flowers")).unwrap()),
            ["1-800-flowers"]
        );
        assert_eq!(
            names(parse_lab_join(&json!({ "storeName": "One Piece" })).unwrap()),
            ["One Piece"]
        );
        let d59 = parse_lab_join(&json!({ "store": "401d59", "clientId": "driver" })).unwrap();
        assert!(d59.driver);
        assert_eq!(names(d59), ["401d59"]);
        let vendor = parse_lab_join(&json!({ "store": "401d59", "clientId": "vendor" })).unwrap();
        assert!(!vendor.driver);
        assert!(parse_lab_join(&json!("driver")).unwrap().driver);
        assert_eq!(
            names(parse_lab_join(&json!(["acme-widgets", "1-800-flowers"])).unwrap()).len(),
            2
        );
        assert!(parse_lab_join(&json!({})).is_err());
    }
}
