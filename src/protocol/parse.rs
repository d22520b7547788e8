//! What clients send, read into domain values.
//!
//! Every payload is a JSON value read field by field, so each refusal names
//! the field and what is wrong with it (`orderId is required`,
//! `customer must be a string`), in the client's own vocabulary.

use serde_json::{Map, Value};

use super::{
    DEFAULT_PAGE, ErrorCode, GET_ALL_DEFAULT, GET_ALL_MAX, MAX_CHAT_TEXT, MAX_PAGE, MAX_TEXT_FIELD,
    Refusal, cursor,
};
use crate::domain::{
    DistributorId, InvalidValue, MessageId, OrderId, OrderPosition, Pickup, Recipient, RoomName,
    StatusFilter, VendorId,
};

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

/// `getAll { limit? }` (or nothing, `null`, `[]`): how many queued
/// messages to answer at most, from 1 to [`GET_ALL_MAX`] (default
/// [`GET_ALL_DEFAULT`]). Other fields are ignored.
pub(crate) fn parse_get_all(value: &Value) -> Result<usize, Refusal> {
    let refusal = || {
        Refusal::new(
            ErrorCode::InvalidPayload,
            format!("limit must be an integer from 1 to {GET_ALL_MAX}"),
        )
    };
    match Fields::of_optional(value)?.0.get("limit") {
        None | Some(Value::Null) => Ok(GET_ALL_DEFAULT),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=GET_ALL_MAX).contains(n))
            .ok_or_else(refusal),
        Some(_) => Err(refusal()),
    }
}

/// `orders { status?, limit?, before? }` (or nothing) from a vendor or a
/// distributor, and the same as the query of the HTTP listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrdersRequest {
    pub(crate) filter: StatusFilter,
    pub(crate) limit: usize,
    /// Where the previous page ended (its `next`).
    pub(crate) before: Option<OrderPosition>,
}

fn limit_refusal() -> Refusal {
    Refusal::new(
        ErrorCode::InvalidPayload,
        format!("limit must be an integer from 1 to {MAX_PAGE}"),
    )
}

impl OrdersRequest {
    /// The event's payload; `party` is who asks (a cursor must be theirs).
    pub(crate) fn parse(value: &Value, party: &Recipient) -> Result<Self, Refusal> {
        let f = Fields::of_optional(value)?;
        let limit = match f.0.get("limit") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(limit_refusal)?),
            Some(_) => return Err(limit_refusal()),
        };
        Self::build(f.string("status")?, limit, f.string("before")?, party)
    }

    /// The query string of `GET /api/{vendors,distributors}/{id}/orders`:
    /// the same fields, each at most once; others are ignored.
    pub(crate) fn from_query(
        pairs: &[(String, String)],
        party: &Recipient,
    ) -> Result<Self, Refusal> {
        let mut fields: [Option<&str>; 3] = [None; 3];
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "status" => &mut fields[0],
                "limit" => &mut fields[1],
                "before" => &mut fields[2],
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(Refusal::new(
                    ErrorCode::InvalidPayload,
                    format!("{name} must be given at most once"),
                ));
            }
        }
        let [status, limit, before] = fields;
        let limit = match limit {
            None | Some("") => None,
            Some(raw) => Some(raw.parse::<u64>().map_err(|_| limit_refusal())?),
        };
        Self::build(status, limit, before, party)
    }

    fn build(
        status: Option<&str>,
        limit: Option<u64>,
        before: Option<&str>,
        party: &Recipient,
    ) -> Result<Self, Refusal> {
        let filter = match status {
            None | Some("") => StatusFilter::default(),
            Some(raw) => StatusFilter::parse(raw)?,
        };
        let limit = match limit {
            None => DEFAULT_PAGE,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(limit_refusal)?,
        };
        let before = match before {
            None | Some("") => None,
            Some(raw) => Some(cursor::decode(raw, party, filter)?),
        };
        Ok(Self {
            filter,
            limit,
            before,
        })
    }
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
    fn orders_reads_its_fields_or_their_defaults() {
        let acme = Recipient::Vendor(VendorId::parse("acme").unwrap());
        let plain = OrdersRequest::parse(&Value::Null, &acme).unwrap();
        assert_eq!(
            (plain.filter, plain.limit, plain.before),
            (StatusFilter::Open, DEFAULT_PAGE, None)
        );
        let given = OrdersRequest::parse(&json!({"status": "all", "limit": 500}), &acme).unwrap();
        assert_eq!((given.filter, given.limit), (StatusFilter::All, 500));
        for bad in [
            json!({"limit": 0}),
            json!({"limit": 501}),
            json!({"limit": 2.5}),
            json!({"limit": "9"}),
            json!({"limit": -1}),
        ] {
            let refusal = OrdersRequest::parse(&bad, &acme).unwrap_err();
            assert_eq!(
                refusal.message, "limit must be an integer from 1 to 500",
                "{bad}"
            );
        }
        let status = OrdersRequest::parse(&json!({"status": "done"}), &acme).unwrap_err();
        assert!(status.message.starts_with("status must be one of"));
        let before = OrdersRequest::parse(&json!({"before": 7}), &acme).unwrap_err();
        assert_eq!(before.message, "before must be a string");
        assert!(OrdersRequest::parse(&json!("open"), &acme).is_err());
    }

    #[test]
    fn an_orders_query_string_reads_like_the_event() {
        let acme = Recipient::Vendor(VendorId::parse("acme").unwrap());
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        let asked = OrdersRequest::from_query(
            &pairs(&[("status", "delivered"), ("limit", "7"), ("other", "x")]),
            &acme,
        )
        .unwrap();
        assert_eq!((asked.filter.as_str(), asked.limit), ("delivered", 7));
        let empty =
            OrdersRequest::from_query(&pairs(&[("before", ""), ("limit", "")]), &acme).unwrap();
        assert_eq!((empty.limit, empty.before), (DEFAULT_PAGE, None));
        let twice = OrdersRequest::from_query(&pairs(&[("limit", "1"), ("limit", "2")]), &acme)
            .unwrap_err();
        assert_eq!(twice.message, "limit must be given at most once");
        assert!(OrdersRequest::from_query(&pairs(&[("limit", "ten")]), &acme).is_err());
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
