//! The wire contract of `PROTOCOL.md` in one module.
//!
//! Event names, payload shapes, the ack envelope and its error codes live
//! here and nowhere else: handlers, pages, tests and the scenario runner all
//! import them, so renaming an event breaks the build, not the demo.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::{
    DistributorId, InvalidValue, MessageId, Order, OrderId, RoomName, Status, VendorId, rfc3339,
};

/// Namespace paths (literal, with the slash).
pub mod ns {
    pub const VENDOR: &str = "/vendor";
    pub const DISTRIBUTOR: &str = "/distributor";
    pub const CHAT: &str = "/chat";
    pub const INSPECTOR: &str = "/inspector";
}

/// Event names, spelled as in the CAPS labs.
pub mod event {
    pub const PICKUP: &str = "pickup";
    pub const IN_TRANSIT: &str = "in-transit";
    pub const DELIVERED: &str = "delivered";
    pub const RECEIVED: &str = "received";
    pub const GET_ALL: &str = "getAll";

    pub const CHAT_MESSAGE: &str = "chat message";
    pub const JOIN: &str = "join";
    pub const LEAVE: &str = "leave";
    pub const TYPING: &str = "typing";
    pub const STOP_TYPING: &str = "stop typing";
    pub const USER_CONNECTED: &str = "user connected";
    pub const USER_DISCONNECTED: &str = "user disconnected";
    pub const USER_JOINED: &str = "user joined";
    pub const USER_LEFT: &str = "user left";

    pub const SNAPSHOT: &str = "snapshot";
    pub const ACTIVITY: &str = "activity";
}

/// Limits on free text fields.
pub const MAX_TEXT_FIELD: usize = 200;
pub const MAX_CHAT_TEXT: usize = 2_000;

/// Error codes of the ack envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidPayload,
    UnknownDistributor,
    UnknownOrder,
    Forbidden,
    InvalidTransition,
    RateLimited,
    UnknownEvent,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::UnknownDistributor => "unknown_distributor",
            ErrorCode::UnknownOrder => "unknown_order",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UnknownEvent => "unknown_event",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A refusal sent to the client: a code and a sentence safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The `{ ok: false, error: { code, message } }` envelope.
    pub fn envelope(&self) -> Value {
        serde_json::json!({
            "ok": false,
            "error": { "code": self.code, "message": self.message },
        })
    }
}

impl From<InvalidValue> for Refusal {
    fn from(e: InvalidValue) -> Self {
        Refusal::new(ErrorCode::InvalidPayload, e.0)
    }
}

/// Builds the `{ ok: true, ...fields }` envelope from a struct of fields.
pub fn ok_envelope<T: Serialize>(fields: &T) -> Value {
    let mut map = match serde_json::to_value(fields) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    map.insert("ok".into(), Value::Bool(true));
    Value::Object(map)
}

/// Codes of a refused connection (`connect_error` message prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectRefusal {
    #[error("bad_auth: {0}")]
    BadAuth(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
}

/// The single argument of `pickup`, `in-transit` and `delivered` as the hub sends them.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEnvelope {
    pub message_id: MessageId,
    pub event: String,
    pub order: Order,
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
}

/// Ack fields of `pickup`, `in-transit` and `delivered`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderAck<'a> {
    pub order: &'a Order,
    pub message_id: Option<&'a MessageId>,
    pub duplicate: bool,
}

/// Ack fields of `received`.
#[derive(Debug, Serialize)]
pub struct ReceivedAck {
    pub removed: bool,
}

/// Ack fields of `getAll`.
#[derive(Debug, Serialize)]
pub struct GetAllAck<'a> {
    pub messages: &'a [MessageEnvelope],
}

/// A JSON object from the client, read field by field with clear errors.
#[derive(Debug)]
pub struct Fields<'a>(&'a Map<String, Value>);

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl<'a> Fields<'a> {
    /// The payload must be a JSON object.
    pub fn of(value: &'a Value) -> Result<Self, Refusal> {
        match value {
            Value::Object(map) => Ok(Self(map)),
            _ => Err(Refusal::new(
                ErrorCode::InvalidPayload,
                "payload must be a JSON object",
            )),
        }
    }

    /// An object, or nothing at all (`getAll`), which reads as `{}`.
    pub fn of_optional(value: &'a Value) -> Result<Self, Refusal> {
        match value {
            Value::Null => Ok(Self(&EMPTY)),
            Value::Array(items) if items.is_empty() => Ok(Self(&EMPTY)),
            other => Self::of(other),
        }
    }

    fn string(&self, field: &str) -> Result<Option<&'a str>, Refusal> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Refusal::new(
                ErrorCode::InvalidPayload,
                format!("{field} must be a string"),
            )),
        }
    }

    /// A required identity-like field, parsed by `parse`.
    pub fn required<T>(
        &self,
        field: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Result<T, Refusal> {
        let raw = self.string(field)?.unwrap_or("");
        Ok(parse(raw)?)
    }

    /// An optional identity-like field.
    pub fn optional<T>(
        &self,
        field: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Result<Option<T>, Refusal> {
        match self.string(field)? {
            None => Ok(None),
            Some(raw) => Ok(Some(parse(raw)?)),
        }
    }

    /// Required free text: trimmed, 1 to `max` characters.
    pub fn text(&self, field: &str, max: usize) -> Result<String, Refusal> {
        let raw = self.string(field)?.unwrap_or("").trim();
        check_text(field, raw, max)
    }
}

/// Free text rule: non-empty after trimming, at most `max` characters.
pub fn check_text(field: &str, raw: &str, max: usize) -> Result<String, Refusal> {
    if raw.is_empty() {
        return Err(Refusal::new(
            ErrorCode::InvalidPayload,
            format!("{field} is required"),
        ));
    }
    if raw.chars().count() > max {
        return Err(Refusal::new(
            ErrorCode::InvalidPayload,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(raw.to_owned())
}

/// `pickup` from a vendor. A `vendorId` in the payload is ignored on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickupRequest {
    pub order_id: OrderId,
    pub distributor_id: DistributorId,
    pub customer: String,
    pub address: String,
}

impl PickupRequest {
    pub fn parse(value: &Value) -> Result<Self, Refusal> {
        let f = Fields::of(value)?;
        Ok(Self {
            order_id: f.required(OrderId::FIELD, OrderId::parse)?,
            distributor_id: f.required(DistributorId::FIELD, DistributorId::parse)?,
            customer: f.text("customer", MAX_TEXT_FIELD)?,
            address: f.text("address", MAX_TEXT_FIELD)?,
        })
    }
}

/// `in-transit` / `delivered` from a distributor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRequest {
    pub vendor_id: VendorId,
    pub order_id: OrderId,
}

impl TransitionRequest {
    pub fn parse(value: &Value) -> Result<Self, Refusal> {
        let f = Fields::of(value)?;
        Ok(Self {
            vendor_id: f.required(VendorId::FIELD, VendorId::parse)?,
            order_id: f.required(OrderId::FIELD, OrderId::parse)?,
        })
    }
}

/// `received` from a vendor or distributor.
pub fn parse_received(value: &Value) -> Result<MessageId, Refusal> {
    Fields::of(value)?.required(MessageId::FIELD, MessageId::parse)
}

/// The event a distributor sends for each target status.
pub fn transition_event(status: Status) -> &'static str {
    match status {
        Status::Pending => event::PICKUP,
        Status::InTransit => event::IN_TRANSIT,
        Status::Delivered => event::DELIVERED,
    }
}

/// `chat message`: `{ text, room? }` or a bare string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessageRequest {
    pub text: String,
    pub room: Option<RoomName>,
}

impl ChatMessageRequest {
    pub fn parse(value: &Value) -> Result<Self, Refusal> {
        if let Value::String(s) = value {
            return Ok(Self {
                text: check_text("text", s, MAX_CHAT_TEXT)?,
                room: None,
            });
        }
        let f = Fields::of(value)?;
        // Chat text keeps its inner whitespace; only emptiness is judged trimmed.
        let raw = f.string("text")?.unwrap_or("");
        check_text("text", raw.trim(), MAX_CHAT_TEXT)?;
        Ok(Self {
            text: check_text("text", raw, MAX_CHAT_TEXT)?,
            room: f.optional(RoomName::FIELD, RoomName::parse)?,
        })
    }
}

/// `join` / `leave`: `{ room }`.
pub fn parse_room(value: &Value) -> Result<RoomName, Refusal> {
    Fields::of(value)?.required(RoomName::FIELD, RoomName::parse)
}

/// `typing` / `stop typing`: `{ room? }` or nothing.
pub fn parse_optional_room(value: &Value) -> Result<Option<RoomName>, Refusal> {
    Fields::of_optional(value)?.optional(RoomName::FIELD, RoomName::parse)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pickup_names_the_missing_field() {
        let err = PickupRequest::parse(&json!({})).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPayload);
        assert_eq!(err.message, "orderId is required");
        let err = PickupRequest::parse(&json!({"orderId": 5})).unwrap_err();
        assert_eq!(err.message, "orderId must be a string");
        let err = PickupRequest::parse(&json!("x")).unwrap_err();
        assert_eq!(err.message, "payload must be a JSON object");
    }

    #[test]
    fn pickup_ignores_a_vendor_id_in_the_payload() {
        let p = PickupRequest::parse(&json!({
            "orderId": "o-1", "distributorId": "north-hub",
            "customer": " Jamie ", "address": "Seattle", "vendorId": "someone-else"
        }))
        .unwrap();
        assert_eq!(p.customer, "Jamie");
    }

    #[test]
    fn chat_message_takes_a_bare_string_or_an_object() {
        assert_eq!(ChatMessageRequest::parse(&json!("hi")).unwrap().text, "hi");
        let m = ChatMessageRequest::parse(&json!({"text": "hi", "room": "lobby"})).unwrap();
        assert_eq!(m.room.unwrap().as_str(), "lobby");
        assert!(ChatMessageRequest::parse(&json!({"text": "  "})).is_err());
        assert!(ChatMessageRequest::parse(&json!("x".repeat(2001))).is_err());
    }

    #[test]
    fn envelopes_have_the_protocol_shape() {
        let e = Refusal::new(ErrorCode::UnknownOrder, "no such order").envelope();
        assert_eq!(
            e,
            json!({"ok": false, "error": {"code": "unknown_order", "message": "no such order"}})
        );
        assert_eq!(
            ok_envelope(&ReceivedAck { removed: true }),
            json!({"ok": true, "removed": true})
        );
    }
}

/// `chat message` as the hub relays it.
#[derive(Debug, Clone, Serialize)]
pub struct ChatMessageOut<'a> {
    pub from: &'a str,
    pub text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<&'a str>,
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
}

/// Ack of `chat message`.
#[derive(Debug, Serialize)]
pub struct ChatMessageAck {
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
}

/// `user connected` / `user disconnected`.
#[derive(Debug, Serialize)]
pub struct Presence<'a> {
    pub name: &'a str,
    pub users: &'a [String],
}

/// `user joined` / `user left`, and the ack of `join` / `leave` (without `name`).
#[derive(Debug, Serialize)]
pub struct RoomPresence<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub room: &'a str,
    pub members: &'a [String],
}

/// `typing` / `stop typing` as relayed.
#[derive(Debug, Serialize)]
pub struct Typing<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<&'a str>,
}
