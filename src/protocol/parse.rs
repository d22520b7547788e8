//! What clients send, read into domain values.
//!
//! Every payload is a JSON value read field by field, so each refusal names
//! the field and what is wrong with it (`orderId is required`,
//! `customer must be a string`), in the client's own vocabulary.

use serde_json::{Map, Value};

use super::{ErrorCode, MAX_CHAT_TEXT, MAX_TEXT_FIELD, Refusal};
use crate::domain::{DistributorId, InvalidValue, MessageId, OrderId, Pickup, RoomName, VendorId};

/// A JSON object from the client, read field by field with clear errors.
#[derive(Debug)]
pub(crate) struct Fields<'a>(&'a Map<String, Value>);

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl<'a> Fields<'a> {
    /// The payload must be a JSON object.
    pub(crate) fn of(value: &'a Value) -> Result<Self, Refusal> {
        match value {
            Value::Object(map) => Ok(Self(map)),
            _ => Err(Refusal::new(
                ErrorCode::InvalidPayload,
                "payload must be a JSON object",
            )),
        }
    }

    /// An object, or nothing at all (`getAll`), which reads as `{}`.
    pub(crate) fn of_optional(value: &'a Value) -> Result<Self, Refusal> {
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
    pub(crate) fn required<T>(
        &self,
        field: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Result<T, Refusal> {
        let raw = self.string(field)?.unwrap_or("");
        Ok(parse(raw)?)
    }

    /// An optional identity-like field.
    pub(crate) fn optional<T>(
        &self,
        field: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Result<Option<T>, Refusal> {
        match self.string(field)? {
            None => Ok(None),
            Some(raw) => Ok(Some(parse(raw)?)),
        }
    }

    /// An optional whole number, 0 or more (a chat `offset`).
    pub(crate) fn count(&self, field: &str) -> Result<Option<u64>, Refusal> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(_) => Err(Refusal::new(
                ErrorCode::InvalidPayload,
                format!("{field} must be a whole number, 0 or more"),
            )),
        }
    }

    /// Required free text: trimmed, 1 to `max` characters.
    pub(crate) fn text(&self, field: &str, max: usize) -> Result<String, Refusal> {
        let raw = self.string(field)?.unwrap_or("").trim();
        check_text(field, raw, max)
    }
}

/// Free text rule: non-empty after trimming, at most `max` characters.
fn check_text(field: &str, raw: &str, max: usize) -> Result<String, Refusal> {
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

/// `pickup { orderId, distributorId, customer, address }` from a vendor.
/// A `vendorId` in the payload is ignored on purpose: the order belongs to
/// the authenticated vendor.
pub(crate) fn parse_pickup(value: &Value) -> Result<Pickup, Refusal> {
    let f = Fields::of(value)?;
    Ok(Pickup {
        order_id: f.required(OrderId::FIELD, OrderId::parse)?,
        distributor_id: f.required(DistributorId::FIELD, DistributorId::parse)?,
        customer: f.text("customer", MAX_TEXT_FIELD)?,
        address: f.text("address", MAX_TEXT_FIELD)?,
    })
}

/// `in-transit` / `delivered` from a distributor: which order to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransitionRequest {
    pub(crate) vendor_id: VendorId,
    pub(crate) order_id: OrderId,
}

impl TransitionRequest {
    pub(crate) fn parse(value: &Value) -> Result<Self, Refusal> {
        let f = Fields::of(value)?;
        Ok(Self {
            vendor_id: f.required(VendorId::FIELD, VendorId::parse)?,
            order_id: f.required(OrderId::FIELD, OrderId::parse)?,
        })
    }
}

/// `received { messageId }` from a vendor or distributor.
pub(crate) fn parse_received(value: &Value) -> Result<MessageId, Refusal> {
    Fields::of(value)?.required(MessageId::FIELD, MessageId::parse)
}

/// `chat message`: `{ text, room? }` or a bare string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChatMessageRequest {
    pub(crate) text: String,
    pub(crate) room: Option<RoomName>,
}

impl ChatMessageRequest {
    pub(crate) fn parse(value: &Value) -> Result<Self, Refusal> {
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

/// `leave`: `{ room }`.
pub(crate) fn parse_room(value: &Value) -> Result<RoomName, Refusal> {
    Fields::of(value)?.required(RoomName::FIELD, RoomName::parse)
}

/// The `offset` of a chat client: the last message it saw.
const OFFSET_FIELD: &str = "offset";

/// The optional `offset` of a `/chat` handshake.
pub(crate) fn parse_offset(fields: &Fields<'_>) -> Result<Option<u64>, Refusal> {
    fields.count(OFFSET_FIELD)
}

/// `join { room, offset? }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinRequest {
    pub(crate) room: RoomName,
    /// The last offset the client saw in the room; `None`: it saw nothing.
    pub(crate) offset: Option<u64>,
}

impl JoinRequest {
    pub(crate) fn parse(value: &Value) -> Result<Self, Refusal> {
        let f = Fields::of(value)?;
        Ok(Self {
            room: f.required(RoomName::FIELD, RoomName::parse)?,
            offset: f.count(OFFSET_FIELD)?,
        })
    }
}

/// `typing` / `stop typing`: `{ room? }` or nothing.
pub(crate) fn parse_optional_room(value: &Value) -> Result<Option<RoomName>, Refusal> {
    Fields::of_optional(value)?.optional(RoomName::FIELD, RoomName::parse)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pickup_names_the_missing_field() {
        let err = parse_pickup(&json!({})).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPayload);
        assert_eq!(err.message, "orderId is required");
        let err = parse_pickup(&json!({"orderId": 5})).unwrap_err();
        assert_eq!(err.message, "orderId must be a string");
        let err = parse_pickup(&json!("x")).unwrap_err();
        assert_eq!(err.message, "payload must be a JSON object");
    }

    #[test]
    fn pickup_ignores_a_vendor_id_in_the_payload() {
        let p = parse_pickup(&json!({
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
    fn join_takes_an_optional_offset() {
        let j = JoinRequest::parse(&json!({"room": "lobby", "offset": 7})).unwrap();
        assert_eq!(j.offset, Some(7));
        assert_eq!(
            JoinRequest::parse(&json!({"room": "lobby"}))
                .unwrap()
                .offset,
            None
        );
        for bad in [json!(-1), json!(1.5), json!("7")] {
            let err = JoinRequest::parse(&json!({"room": "lobby", "offset": bad})).unwrap_err();
            assert_eq!(err.message, "offset must be a whole number, 0 or more");
        }
    }
}
