//! What the hub sends on `/caps`: its messages in the lab's shape.

use chrono::SecondsFormat;
use serde_json::{Map, Value};

use crate::domain::{LabStore, Message};
use crate::protocol::OrderView;

/// A message as the hub sends it on `/caps`: the lab's fields at the top
/// level (`store`, `orderId`, `customer`, `address`, and whatever else the
/// pickup carried, when the hub remembers it), the envelope's beside them
/// (`messageId`, `event` spelled as it is emitted, `order`, `at`). `order`
/// is the hub's order, over the fields of the lab's own order object.
pub(crate) fn lab_message(
    message: &Message,
    store: &LabStore,
    event_name: &str,
    extras: Option<&Map<String, Value>>,
) -> Value {
    let mut top = extras.cloned().unwrap_or_default();
    let mut order = match top.remove("order") {
        Some(Value::Object(order)) => order,
        _ => Map::new(),
    };
    if let Ok(Value::Object(view)) = serde_json::to_value(OrderView::from(&message.order)) {
        order.extend(view);
    }
    order
        .entry("store")
        .or_insert_with(|| Value::from(store.name()));
    let at = message.at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let the = &message.order;
    top.insert("store".into(), Value::from(store.name()));
    top.insert("orderId".into(), Value::from(the.order_id.as_str()));
    top.insert("customer".into(), Value::from(the.customer.as_str()));
    top.insert("address".into(), Value::from(the.address.as_str()));
    top.insert("messageId".into(), Value::from(message.id.as_str()));
    top.insert("event".into(), Value::from(event_name));
    top.insert("order".into(), Value::Object(order));
    top.insert("at".into(), Value::from(at));
    Value::Object(top)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{Order, OrderId, Pickup, VendorId, lab_drivers};
    use crate::protocol::caps::parse_lab_step;
    use chrono::Utc;
    use serde_json::json;

    #[test]
    fn a_message_carries_the_lab_fields_and_the_envelope() {
        let store = LabStore::parse("ACME Widgets").unwrap();
        let order = Order::new_pending(
            VendorId::parse(store.vendor_id().as_str()).unwrap(),
            Pickup {
                order_id: OrderId::parse("o-1").unwrap(),
                distributor_id: lab_drivers(),
                customer: "Jamie Doe".into(),
                address: "Seattle, WA".into(),
            },
            Utc::now(),
        );
        let message = Message::about(&order);
        let mut extras = Map::new();
        extras.insert("vendorId".into(), json!("ACME Widgets"));
        extras.insert(
            "order".into(),
            json!({ "id": "o-1", "store": "ACME Widgets" }),
        );
        let out = lab_message(&message, &store, "PICKUP", Some(&extras));
        assert_eq!(out["store"], json!("ACME Widgets"));
        assert_eq!(out["customer"], json!("Jamie Doe"));
        assert_eq!(out["orderId"], json!("o-1"));
        assert_eq!(out["vendorId"], json!("ACME Widgets"), "extras ride along");
        assert_eq!(out["event"], json!("PICKUP"));
        assert_eq!(out["messageId"], json!(message.id.as_str()));
        assert_eq!(out["order"]["customer"], json!("Jamie Doe"));
        assert_eq!(out["order"]["vendorId"], json!("caps.ACME_20Widgets"));
        assert_eq!(out["order"]["id"], json!("o-1"));
        assert_eq!(out["order"]["store"], json!("ACME Widgets"));
        assert!(out["at"].is_string());
        let echoed = parse_lab_step(&out).unwrap();
        assert_eq!(echoed.store, store);
    }
}
