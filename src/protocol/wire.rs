//! What the hub sends: one struct per shape, every field named as on the wire.
//!
//! These are views: they borrow domain values and decide how they look on
//! the wire (camelCase names, statuses as `in-transit`, times as RFC 3339
//! with milliseconds), so neither the domain nor the store has a say in it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use super::{cursor, status_event};
use crate::domain::{
    ChatMessage, HistoryEntry, Message, MessageId, Order, OrderPosition, Recipient, RoomName,
    Status, StatusFilter,
};

/// Serializes a time as PROTOCOL.md wants it: RFC 3339, UTC, milliseconds, `Z`.
pub(crate) fn rfc3339<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn status<S: Serializer>(status: &Status, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.as_str())
}

/// One step of an order's timeline: `{ status, at }`.
#[derive(Debug, Serialize)]
struct HistoryView<'a> {
    #[serde(serialize_with = "status")]
    status: &'a Status,
    #[serde(serialize_with = "rfc3339")]
    at: &'a DateTime<Utc>,
}

fn history<S: Serializer>(history: &&[HistoryEntry], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(history.len()))?;
    for entry in *history {
        seq.serialize_element(&HistoryView {
            status: &entry.status,
            at: &entry.at,
        })?;
    }
    seq.end()
}

/// An order as the wire shows it (PROTOCOL.md "The order").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView<'a> {
    order_id: &'a str,
    vendor_id: &'a str,
    distributor_id: &'a str,
    customer: &'a str,
    address: &'a str,
    #[serde(serialize_with = "status")]
    status: &'a Status,
    #[serde(serialize_with = "rfc3339")]
    created_at: &'a DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    updated_at: &'a DateTime<Utc>,
    #[serde(serialize_with = "history")]
    history: &'a [HistoryEntry],
}

impl<'a> From<&'a Order> for OrderView<'a> {
    fn from(order: &'a Order) -> Self {
        Self {
            order_id: order.order_id.as_str(),
            vendor_id: order.vendor_id.as_str(),
            distributor_id: order.distributor_id.as_str(),
            customer: &order.customer,
            address: &order.address,
            status: &order.status,
            created_at: &order.created_at,
            updated_at: &order.updated_at,
            history: &order.history,
        }
    }
}

/// The single argument of `pickup`, `in-transit` and `delivered` as the hub
/// sends them: `{ messageId, event, order, at }`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEnvelope<'a> {
    message_id: &'a MessageId,
    event: &'static str,
    order: OrderView<'a>,
    #[serde(serialize_with = "rfc3339")]
    at: &'a DateTime<Utc>,
}

impl<'a> From<&'a Message> for MessageEnvelope<'a> {
    fn from(message: &'a Message) -> Self {
        Self {
            message_id: &message.id,
            event: status_event(message.status()),
            order: OrderView::from(&message.order),
            at: &message.at,
        }
    }
}

/// Ack fields of `pickup`, `in-transit` and `delivered`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderAck<'a> {
    pub(crate) order: OrderView<'a>,
    pub(crate) message_id: Option<&'a MessageId>,
    pub(crate) duplicate: bool,
}

fn orders<S: Serializer>(orders: &&[Order], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(orders.iter().map(OrderView::from))
}

/// Ack fields of `orders` (and the answer of the HTTP listing): a page of
/// orders and the cursor of the next one.
#[derive(Debug, Serialize)]
pub(crate) struct OrdersAck<'a> {
    #[serde(serialize_with = "orders")]
    orders: &'a [Order],
    next: Option<String>,
}

impl<'a> OrdersAck<'a> {
    /// A page of `party`'s listing of `filter`; `next` is where the
    /// following page starts, if there is one.
    pub(crate) fn new(
        orders: &'a [Order],
        party: &Recipient,
        filter: StatusFilter,
        next: Option<&OrderPosition>,
    ) -> Self {
        Self {
            orders,
            next: next.map(|p| cursor::encode(party, filter, p)),
        }
    }
}

/// `order { order }`: how an order stands now, for a party's other pages.
#[derive(Debug, Serialize)]
pub(crate) struct OrderNotice<'a> {
    pub(crate) order: OrderView<'a>,
}

/// Ack fields of `received`.
#[derive(Debug, Serialize)]
pub(crate) struct ReceivedAck {
    pub(crate) removed: bool,
}

fn envelopes<S: Serializer>(messages: &&[Message], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(messages.iter().map(MessageEnvelope::from))
}

/// Ack fields of `getAll`.
#[derive(Debug, Serialize)]
pub(crate) struct GetAllAck<'a> {
    #[serde(serialize_with = "envelopes")]
    pub(crate) messages: &'a [Message],
    /// More messages wait past these: confirm them (`received`) and ask again.
    pub(crate) more: bool,
}

/// `chat message` as the hub sends it: relayed live, or replayed from the
/// history (on a reconnect with an offset, and in a `join` ack).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatMessageOut<'a> {
    pub(crate) from: &'a str,
    pub(crate) text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) room: Option<&'a str>,
    #[serde(serialize_with = "rfc3339")]
    pub(crate) at: &'a DateTime<Utc>,
    pub(crate) offset: u64,
}

impl<'a> From<&'a ChatMessage> for ChatMessageOut<'a> {
    fn from(message: &'a ChatMessage) -> Self {
        Self {
            from: message.post.from.as_str(),
            text: &message.post.text,
            room: message.post.room.as_ref().map(RoomName::as_str),
            at: &message.post.at,
            offset: message.offset,
        }
    }
}

/// Ack of `chat message`: when it was sent and the offset it was stored at.
#[derive(Debug, Serialize)]
pub(crate) struct ChatMessageAck {
    #[serde(serialize_with = "rfc3339")]
    pub(crate) at: DateTime<Utc>,
    pub(crate) offset: u64,
}

/// `user connected` / `user disconnected`: who, and how many are online now.
#[derive(Debug, Serialize)]
pub(crate) struct Presence<'a> {
    pub(crate) name: &'a str,
    pub(crate) online: usize,
}

/// `users`, to a newcomer: everyone online (itself included) and how many.
#[derive(Debug, Serialize)]
pub(crate) struct Users<'a> {
    pub(crate) users: &'a [String],
    pub(crate) online: usize,
}

fn chat_messages<S: Serializer>(messages: &&[ChatMessage], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(messages.iter().map(ChatMessageOut::from))
}

/// The ack of `join`: the room, who is in it, and what was said in it
/// after the offset the client gave.
#[derive(Debug, Serialize)]
pub(crate) struct JoinAck<'a> {
    pub(crate) room: &'a str,
    pub(crate) members: &'a [String],
    #[serde(serialize_with = "chat_messages")]
    pub(crate) history: &'a [ChatMessage],
}

/// `user joined` / `user left`, and the ack of `leave` (without `name`).
#[derive(Debug, Serialize)]
pub(crate) struct RoomPresence<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<&'a str>,
    pub(crate) room: &'a str,
    pub(crate) members: &'a [String],
}

/// `typing` / `stop typing` as relayed.
#[derive(Debug, Serialize)]
pub(crate) struct Typing<'a> {
    pub(crate) name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) room: Option<&'a str>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{DistributorId, OrderId, Pickup, VendorId};
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn an_envelope_has_the_protocol_shape() {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 10, 15, 0).unwrap();
        let order = Order::new_pending(
            VendorId::parse("acme-widgets").unwrap(),
            Pickup {
                order_id: OrderId::parse("o-1001").unwrap(),
                distributor_id: DistributorId::parse("north-hub").unwrap(),
                customer: "Jamie Doe".into(),
                address: "Seattle, WA".into(),
            },
            at,
        );
        let message = Message::about(&order);
        let wire = serde_json::to_value(MessageEnvelope::from(&message)).unwrap();
        let time = "2026-11-28T10:15:00.000Z";
        assert_eq!(
            wire,
            json!({
                "messageId": message.id.as_str(),
                "event": "pickup",
                "order": {
                    "orderId": "o-1001", "vendorId": "acme-widgets", "distributorId": "north-hub",
                    "customer": "Jamie Doe", "address": "Seattle, WA", "status": "pending",
                    "createdAt": time, "updatedAt": time,
                    "history": [{ "status": "pending", "at": time }],
                },
                "at": time,
            })
        );
    }
}
