//! The wire contract of `PROTOCOL.md` in one module.
//!
//! Event names, payload shapes, the ack envelope and its error codes live
//! here and nowhere else: handlers, pages, tests and the scenario runner all
//! import them, so renaming an event breaks the build, not the demo.
//!
//! - this file: namespaces, event names, error codes, refusals, envelopes;
//! - [`parse`]: what clients send, read into domain values with clear errors;
//! - [`caps`]: the CAPS lab's own spellings and payload shapes (`/caps`),
//!   read into the same values, and the hub's messages in the lab's shape;
//! - [`wire`]: what the hub sends, as structs with explicit field names,
//!   built from domain values (the domain and the store never serialize
//!   themselves onto the wire).

pub(crate) mod caps;
mod cursor;
mod parse;
mod wire;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::{InvalidValue, Status};

pub(crate) use parse::{
    ChatMessageRequest, Fields, JoinRequest, OrdersRequest, TransitionRequest, parse_get_all,
    parse_offset, parse_optional_room, parse_pickup, parse_received, parse_room,
};
pub(crate) use wire::{
    ChatMessageAck, ChatMessageOut, GetAllAck, JoinAck, OrderAck, OrderNotice, OrdersAck, Presence,
    ReceivedAck, RoomPresence, Typing, Users, rfc3339,
};
pub use wire::{MessageEnvelope, OrderView};

/// Namespace paths (literal, with the slash).
pub mod ns {
    pub const VENDOR: &str = "/vendor";
    pub const DISTRIBUTOR: &str = "/distributor";
    pub const CHAT: &str = "/chat";
    pub const INSPECTOR: &str = "/inspector";
    /// The official Socket.IO Admin UI's namespace (not in [`ALL`]: the
    /// inspector lists the hub's own namespaces).
    pub const ADMIN: &str = "/admin";
    /// Learners' own CAPS lab clients (served with the demo credentials or
    /// `--caps`; not in [`ALL`], the inspector lists it only when served).
    pub const CAPS: &str = "/caps";

    /// Every namespace the hub serves, in the order the inspector lists them.
    pub const ALL: [&str; 4] = [VENDOR, DISTRIBUTOR, CHAT, INSPECTOR];
}

/// Event names, spelled as in the CAPS labs.
pub mod event {
    pub const PICKUP: &str = "pickup";
    pub const IN_TRANSIT: &str = "in-transit";
    pub const DELIVERED: &str = "delivered";
    pub const RECEIVED: &str = "received";
    pub const GET_ALL: &str = "getAll";
    /// A page of the caller's orders (vendors and distributors).
    pub const ORDERS: &str = "orders";
    /// The live notice of an order's new state (not queued).
    pub const ORDER: &str = "order";

    pub const CHAT_MESSAGE: &str = "chat message";
    pub const JOIN: &str = "join";
    pub const LEAVE: &str = "leave";
    pub const TYPING: &str = "typing";
    pub const STOP_TYPING: &str = "stop typing";
    pub const USER_CONNECTED: &str = "user connected";
    pub const USER_DISCONNECTED: &str = "user disconnected";
    pub const USER_JOINED: &str = "user joined";
    pub const USER_LEFT: &str = "user left";
    pub const USERS: &str = "users";

    pub const SNAPSHOT: &str = "snapshot";
    pub const ACTIVITY: &str = "activity";

    /// The lifecycle records of the activity feed (not events of any namespace).
    pub const CONNECT: &str = "connect";
    pub const DISCONNECT: &str = "disconnect";
}

/// The event that reports an order reaching `status` (what a distributor
/// sends to move it there, and what the hub queues about it).
pub(crate) fn status_event(status: Status) -> &'static str {
    match status {
        Status::Pending => event::PICKUP,
        Status::InTransit => event::IN_TRANSIT,
        Status::Delivered => event::DELIVERED,
    }
}

/// Orders per page of `orders`: when not given, and at most.
pub(crate) const DEFAULT_PAGE: usize = 100;
pub(crate) const MAX_PAGE: usize = 500;
/// Messages one `getAll` answers when it names no `limit` (a page of
/// about 40 KB of JSON), and the largest `limit` it may name: as for
/// `orders`. Pages of 500 and 1,000 made every answer cost the async
/// workers a 200 KB to 400 KB serialisation, felt by other clients' acks.
pub(crate) const GET_ALL_DEFAULT: usize = DEFAULT_PAGE;
pub(crate) const GET_ALL_MAX: usize = MAX_PAGE;

/// Limits on free text fields.
pub(crate) const MAX_TEXT_FIELD: usize = 200;
pub(crate) const MAX_CHAT_TEXT: usize = 2_000;

/// How many missed namespace-wide messages a reconnect with `auth.offset`
/// replays, and how many of a room's messages a `join` answers with.
pub(crate) const REPLAY_ON_CONNECT: usize = 100;
pub(crate) const HISTORY_ON_JOIN: usize = 50;

/// Error codes of the ack envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorCode {
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
    pub(crate) fn as_str(self) -> &'static str {
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
#[error("{}: {message}", code.as_str())]
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The refusal of a payload that could not be decoded at all.
    pub(crate) fn undecodable() -> Self {
        Refusal::new(ErrorCode::InvalidPayload, "payload is not valid JSON data")
    }

    /// The refusal of an event over the sender's rate limit.
    pub(crate) fn rate_limited() -> Self {
        Refusal::new(ErrorCode::RateLimited, "too many events; slow down")
    }

    /// The refusal every failure inside the hub becomes; the cause goes to the log.
    pub(crate) fn internal() -> Self {
        Refusal::new(
            ErrorCode::Internal,
            "the hub could not complete this request",
        )
    }

    /// The `{ ok: false, error: { code, message } }` envelope.
    pub(crate) fn envelope(&self) -> Value {
        error_envelope(self.code.as_str(), &self.message)
    }
}

impl From<InvalidValue> for Refusal {
    fn from(e: InvalidValue) -> Self {
        Refusal::new(ErrorCode::InvalidPayload, e.0)
    }
}

/// The error envelope `{ ok: false, error: { code, message } }` for any code
/// (the HTTP API and `/learn` have codes of their own beside [`ErrorCode`]).
pub(crate) fn error_envelope(code: &str, message: &str) -> Value {
    serde_json::json!({ "ok": false, "error": { "code": code, "message": message } })
}

/// Builds the `{ ok: true, ...fields }` envelope from a struct of fields.
pub(crate) fn ok_envelope<T: Serialize>(fields: &T) -> Value {
    let mut map = match serde_json::to_value(fields) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    map.insert("ok".into(), Value::Bool(true));
    Value::Object(map)
}

/// Codes of a refused connection (`connect_error` message prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConnectRefusal {
    #[error("bad_auth: {0}")]
    BadAuth(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// `/chat`: someone connected to this hub already has this name.
    #[error("name_taken: someone called {0} is already here")]
    NameTaken(String),
    /// Too many failed sign-ins from the client's address lately.
    #[error("rate_limited: {0}")]
    Throttled(String),
}

impl ConnectRefusal {
    /// The code (`bad_auth`, `unauthorized`, `name_taken`), for logs and the feed.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ConnectRefusal::BadAuth(_) => "bad_auth",
            ConnectRefusal::Unauthorized(_) => "unauthorized",
            ConnectRefusal::NameTaken(_) => "name_taken",
            ConnectRefusal::Throttled(_) => "rate_limited",
        }
    }

    /// The sentence after the code.
    pub(crate) fn message(&self) -> String {
        match self {
            ConnectRefusal::BadAuth(message)
            | ConnectRefusal::Unauthorized(message)
            | ConnectRefusal::Throttled(message) => message.clone(),
            ConnectRefusal::NameTaken(name) => format!("someone called {name} is already here"),
        }
    }
}

/// The refusal of a namespace the hub does not serve: Socket.IO's own
/// `connect_error` message, unchanged, so clients see what they always did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Invalid namespace")]
pub(crate) struct InvalidNamespace;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(
            Refusal::rate_limited().to_string(),
            "rate_limited: too many events; slow down"
        );
    }
}
