//! The wire format of the client, in one place: Engine.IO v4 packets, the
//! Socket.IO v5 packets they carry, and long-polling payloads.
//!
//! Both transports and the load generator's raw connections read and write
//! frames through these functions, so a protocol detail (where the ack id
//! goes, how a namespace is prefixed, what separates polling packets) is
//! decided once. Only the text protocol is spoken: binary packets are
//! answered with [`PacketError::Unsupported`], never a panic.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Separates Engine.IO packets in a long-polling payload.
pub const RECORD_SEPARATOR: char = '\x1e';

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("empty packet")]
    Empty,
    #[error("unknown Engine.IO packet type {0:?}")]
    UnknownEngineType(char),
    #[error("unknown Socket.IO packet type {0:?}")]
    UnknownSocketType(char),
    #[error("{0} are not supported by this client (text protocol only)")]
    Unsupported(&'static str),
    #[error("invalid Engine.IO open packet: {0}")]
    BadOpen(String),
    #[error("invalid JSON in a Socket.IO packet: {0}")]
    BadJson(String),
    #[error("invalid ack id {0:?}")]
    BadAckId(String),
    #[error("an ACK packet without an ack id")]
    MissingAckId,
    #[error("an EVENT packet without an event name")]
    MissingEventName,
}

/// The Engine.IO handshake the server sends first (`0{...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Open {
    /// The Engine.IO session id (the `sid` query parameter of polling requests).
    pub sid: String,
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// Milliseconds between the server's pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong.
    pub ping_timeout: u64,
    /// The most bytes the server accepts in one polling payload.
    #[serde(default = "default_max_payload")]
    pub max_payload: u64,
}

/// The Engine.IO default, for a server that does not say.
fn default_max_payload() -> u64 {
    100_000
}

impl Open {
    /// How long the server may stay silent before the connection counts as
    /// dead: it pings every interval and waits `ping_timeout` for the pong.
    pub fn silence_limit(&self) -> Duration {
        Duration::from_millis(self.ping_interval.saturating_add(self.ping_timeout))
    }
}

/// One Engine.IO packet; text borrowed from the frame it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// `0{json}`: the handshake.
    Open(Open),
    /// `1`: the session is over.
    Close,
    /// `2[data]`: answer with a pong carrying the same data.
    Ping(&'a str),
    /// `3[data]`
    Pong(&'a str),
    /// `4<socket.io packet>`
    Message(&'a str),
    /// `5`: transport upgrade (never started by this client).
    Upgrade,
    /// `6`: nothing; a polling server sends it to end a request.
    Noop,
}

impl<'a> EnginePacket<'a> {
    /// Reads one packet (one WebSocket frame, or one record of a polling payload).
    pub fn decode(text: &'a str) -> Result<Self, PacketError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(PacketError::Empty)?;
        let rest = chars.as_str();
        Ok(match kind {
            '0' => Self::Open(
                serde_json::from_str(rest).map_err(|e| PacketError::BadOpen(e.to_string()))?,
            ),
            '1' => Self::Close,
            '2' => Self::Ping(rest),
            '3' => Self::Pong(rest),
            '4' => Self::Message(rest),
            '5' => Self::Upgrade,
            '6' => Self::Noop,
            // Base64 binary data on a polling transport.
            'b' => return Err(PacketError::Unsupported("binary Engine.IO packets")),
            other => return Err(PacketError::UnknownEngineType(other)),
        })
    }

    /// The packet's text.
    pub fn encode(&self) -> String {
        match self {
            // An `Open` always serializes: strings and integers only.
            Self::Open(open) => format!("0{}", serde_json::json!(open)),
            Self::Close => "1".to_owned(),
            Self::Ping(data) => format!("2{data}"),
            Self::Pong(data) => format!("3{data}"),
            Self::Message(body) => format!("4{body}"),
            Self::Upgrade => "5".to_owned(),
            Self::Noop => "6".to_owned(),
        }
    }
}

/// One Socket.IO packet (the body of an Engine.IO message).
#[derive(Debug, Clone, PartialEq)]
pub enum SocketPacket {
    /// `0`: from the client with its `auth`, from the server with `{ "sid" }`.
    Connect {
        namespace: String,
        data: Option<Value>,
    },
    /// `1`: leaving the namespace, or being made to leave it.
    Disconnect { namespace: String },
    /// `2`: `["event", args...]`, with an ack id if the sender wants an answer.
    Event {
        namespace: String,
        id: Option<u64>,
        event: String,
        args: Vec<Value>,
    },
    /// `3`: the answer to the event that carried `id`.
    Ack {
        namespace: String,
        id: u64,
        args: Vec<Value>,
    },
    /// `4`: the server refused the namespace connection (`{ "message" }`).
    ConnectError { namespace: String, data: Value },
}

impl SocketPacket {
    /// The namespace the packet belongs to (`/` if it names none).
    pub fn namespace(&self) -> &str {
        match self {
            Self::Connect { namespace, .. }
            | Self::Disconnect { namespace }
            | Self::Event { namespace, .. }
            | Self::Ack { namespace, .. }
            | Self::ConnectError { namespace, .. } => namespace,
        }
    }

    /// Reads a Socket.IO packet: `<type>[<namespace>,][<ack id>][<json>]`.
    pub fn decode(text: &str) -> Result<Self, PacketError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(PacketError::Empty)?;
        if matches!(kind, '5' | '6') {
            return Err(PacketError::Unsupported("binary Socket.IO packets"));
        }
        let (namespace, rest) = split_namespace(chars.as_str());
        let namespace = namespace.to_owned();
        match kind {
            '0' => Ok(Self::Connect {
                namespace,
                data: if rest.is_empty() {
                    None
                } else {
                    Some(json(rest)?)
                },
            }),
            '1' => Ok(Self::Disconnect { namespace }),
            '2' => {
                let (id, rest) = split_ack_id(rest)?;
                let mut args = json_array(rest)?.into_iter();
                let Some(Value::String(event)) = args.next() else {
                    return Err(PacketError::MissingEventName);
                };
                Ok(Self::Event {
                    namespace,
                    id,
                    event,
                    args: args.collect(),
                })
            }
            '3' => {
                let (id, rest) = split_ack_id(rest)?;
                Ok(Self::Ack {
                    namespace,
                    id: id.ok_or(PacketError::MissingAckId)?,
                    args: json_array(rest)?,
                })
            }
            '4' => Ok(Self::ConnectError {
                namespace,
                data: if rest.is_empty() {
                    Value::Null
                } else {
                    json(rest)?
                },
            }),
            other => Err(PacketError::UnknownSocketType(other)),
        }
    }

    /// The packet as the body of an Engine.IO message (without the `4`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }

    /// The packet as a whole Engine.IO message (`4` included): what a
    /// WebSocket frame or one record of a polling payload carries.
    pub fn to_message(&self) -> String {
        let mut out = String::from("4");
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut String) {
        match self {
            Self::Connect { namespace, data } => {
                write_header(out, '0', namespace, None);
                if let Some(data) = data {
                    out.push_str(&data.to_string());
                }
            }
            Self::Disconnect { namespace } => write_header(out, '1', namespace, None),
            Self::Event {
                namespace,
                id,
                event,
                args,
            } => {
                let args: Vec<&Value> = args.iter().collect();
                write_event(out, namespace, *id, event, &args);
            }
            Self::Ack {
                namespace,
                id,
                args,
            } => {
                write_header(out, '3', namespace, Some(*id));
                out.push_str(&Value::Array(args.clone()).to_string());
            }
            Self::ConnectError { namespace, data } => {
                write_header(out, '4', namespace, None);
                out.push_str(&data.to_string());
            }
        }
    }
}

/// The Engine.IO message of an EVENT (`42/vendor,7["pickup",{...}]`),
/// written straight from borrowed arguments so an emit copies no JSON value.
pub fn event_message(namespace: &str, id: Option<u64>, event: &str, args: &[&Value]) -> String {
    let mut out = String::from("4");
    write_event(&mut out, namespace, id, event, args);
    out
}

fn write_event(out: &mut String, namespace: &str, id: Option<u64>, event: &str, args: &[&Value]) {
    write_header(out, '2', namespace, id);
    out.push('[');
    // A `&str` always serializes (the JSON string is escaped here).
    out.push_str(&Value::from(event).to_string());
    for arg in args {
        out.push(',');
        out.push_str(&arg.to_string());
    }
    out.push(']');
}

fn write_header(out: &mut String, kind: char, namespace: &str, id: Option<u64>) {
    out.push(kind);
    out.push_str(&namespace_prefix(namespace));
    if let Some(id) = id {
        // Writing into a `String` cannot fail.
        let _infallible = write!(out, "{id}");
    }
}

/// `/vendor,`: the prefix of every packet of a namespace (none for `/`).
pub fn namespace_prefix(namespace: &str) -> String {
    if namespace == "/" || namespace.is_empty() {
        String::new()
    } else {
        format!("{namespace},")
    }
}

/// Splits `/vendor,rest` into the namespace and the rest (`/` if none is named).
fn split_namespace(text: &str) -> (&str, &str) {
    if !text.starts_with('/') {
        return ("/", text);
    }
    match text.split_once(',') {
        Some((namespace, rest)) => (namespace, rest),
        None => (text, ""),
    }
}

/// Splits `[ack id]<json>` (what follows the namespace prefix) without
/// allocating; the load generator reads its acks with it.
pub fn split_ack_id(text: &str) -> Result<(Option<u64>, &str), PacketError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Ok((None, text));
    }
    let (id, rest) = text.split_at(digits);
    let id = id
        .parse()
        .map_err(|_| PacketError::BadAckId(id.to_owned()))?;
    Ok((Some(id), rest))
}

fn json(text: &str) -> Result<Value, PacketError> {
    serde_json::from_str(text).map_err(|e| PacketError::BadJson(e.to_string()))
}

fn json_array(text: &str) -> Result<Vec<Value>, PacketError> {
    match json(text)? {
        Value::Array(values) => Ok(values),
        other => Err(PacketError::BadJson(format!(
            "expected an array, got {other}"
        ))),
    }
}

/// The Engine.IO packets of a long-polling payload, in order.
pub fn split_payload(body: &str) -> impl Iterator<Item = &str> {
    body.split(RECORD_SEPARATOR)
}

/// One long-polling payload of `packets` (each an encoded Engine.IO packet).
pub fn join_payload<S: AsRef<str>>(packets: &[S]) -> String {
    let mut out = String::new();
    for (n, packet) in packets.iter().enumerate() {
        if n > 0 {
            out.push(RECORD_SEPARATOR);
        }
        out.push_str(packet.as_ref());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn round_trip(packet: &SocketPacket) {
        let text = packet.encode();
        assert_eq!(&SocketPacket::decode(&text).unwrap(), packet, "{text}");
        let message = packet.to_message();
        assert_eq!(
            EnginePacket::decode(&message).unwrap(),
            EnginePacket::Message(&text)
        );
    }

    #[test]
    fn engine_packets_round_trip() {
        let open = Open {
            sid: "abc".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: 25_000,
            ping_timeout: 20_000,
            max_payload: 65_536,
        };
        for packet in [
            EnginePacket::Open(open.clone()),
            EnginePacket::Close,
            EnginePacket::Ping(""),
            EnginePacket::Ping("probe"),
            EnginePacket::Pong(""),
            EnginePacket::Message("2[\"x\"]"),
            EnginePacket::Upgrade,
            EnginePacket::Noop,
        ] {
            let text = packet.encode();
            assert_eq!(EnginePacket::decode(&text).unwrap(), packet, "{text}");
        }
        assert_eq!(open.silence_limit(), Duration::from_secs(45));
    }

    #[test]
    fn a_ping_is_answered_by_a_pong_with_the_same_data() {
        for (ping, pong) in [("2", "3"), ("2probe", "3probe")] {
            let EnginePacket::Ping(data) = EnginePacket::decode(ping).unwrap() else {
                panic!("{ping} is a ping");
            };
            assert_eq!(EnginePacket::Pong(data).encode(), pong);
        }
    }

    #[test]
    fn the_servers_open_packet_is_read() {
        let text = r#"0{"sid":"s1","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100000}"#;
        let EnginePacket::Open(open) = EnginePacket::decode(text).unwrap() else {
            panic!("an open packet");
        };
        assert_eq!(open.sid, "s1");
        assert_eq!(open.max_payload, 100_000);
        assert!(matches!(
            EnginePacket::decode("0{\"sid\":1}"),
            Err(PacketError::BadOpen(_))
        ));
    }

    #[test]
    fn socket_packets_round_trip() {
        let packets = [
            SocketPacket::Connect {
                namespace: "/vendor".into(),
                data: Some(json!({ "vendorId": "acme", "token": "t" })),
            },
            SocketPacket::Connect {
                namespace: "/".into(),
                data: None,
            },
            SocketPacket::Disconnect {
                namespace: "/chat".into(),
            },
            SocketPacket::Disconnect {
                namespace: "/".into(),
            },
            SocketPacket::Event {
                namespace: "/vendor".into(),
                id: Some(12),
                event: "pickup".into(),
                args: vec![json!({ "orderId": "o-1" })],
            },
            SocketPacket::Event {
                namespace: "/".into(),
                id: None,
                event: "two, args \"quoted\"".into(),
                args: vec![json!(1), json!("x")],
            },
            SocketPacket::Event {
                namespace: "/".into(),
                id: Some(0),
                event: "no-args".into(),
                args: vec![],
            },
            SocketPacket::Ack {
                namespace: "/vendor".into(),
                id: u64::MAX,
                args: vec![json!({ "ok": true })],
            },
            SocketPacket::Ack {
                namespace: "/".into(),
                id: 3,
                args: vec![],
            },
            SocketPacket::ConnectError {
                namespace: "/vendor".into(),
                data: json!({ "message": "bad_auth: vendorId is required" }),
            },
        ];
        for packet in &packets {
            round_trip(packet);
        }
    }

    #[test]
    fn frames_are_written_as_socket_io_clients_write_them() {
        let payload = json!({ "orderId": "o-1" });
        assert_eq!(
            event_message("/vendor", Some(7), "pickup", &[&payload]),
            r#"42/vendor,7["pickup",{"orderId":"o-1"}]"#
        );
        assert_eq!(event_message("/", None, "x", &[]), r#"42["x"]"#);
        let connect = SocketPacket::Connect {
            namespace: "/chat".into(),
            data: Some(json!({ "name": "alice" })),
        };
        assert_eq!(connect.to_message(), r#"40/chat,{"name":"alice"}"#);
        let leave = SocketPacket::Disconnect {
            namespace: "/chat".into(),
        };
        assert_eq!(leave.to_message(), "41/chat,");
        assert_eq!(namespace_prefix("/"), "");
        assert_eq!(namespace_prefix("/chat"), "/chat,");
    }

    #[test]
    fn the_servers_replies_are_read() {
        assert_eq!(
            SocketPacket::decode(r#"0/vendor,{"sid":"x1"}"#).unwrap(),
            SocketPacket::Connect {
                namespace: "/vendor".into(),
                data: Some(json!({ "sid": "x1" })),
            }
        );
        assert_eq!(
            SocketPacket::decode(r#"4{"message":"Invalid namespace"}"#).unwrap(),
            SocketPacket::ConnectError {
                namespace: "/".into(),
                data: json!({ "message": "Invalid namespace" }),
            }
        );
        // A namespace with no trailing comma (nothing follows it).
        assert_eq!(
            SocketPacket::decode("1/vendor").unwrap(),
            SocketPacket::Disconnect {
                namespace: "/vendor".into()
            }
        );
        let ack = SocketPacket::decode(r#"3/vendor,42[{"ok":true},2]"#).unwrap();
        assert_eq!(
            ack,
            SocketPacket::Ack {
                namespace: "/vendor".into(),
                id: 42,
                args: vec![json!({ "ok": true }), json!(2)],
            }
        );
        assert_eq!(ack.namespace(), "/vendor");
    }

    #[test]
    fn ack_ids_are_split_without_allocating() {
        assert_eq!(split_ack_id("12[\"x\"]").unwrap(), (Some(12), "[\"x\"]"));
        assert_eq!(split_ack_id("[\"x\"]").unwrap(), (None, "[\"x\"]"));
        assert_eq!(split_ack_id("").unwrap(), (None, ""));
        assert!(matches!(
            split_ack_id("99999999999999999999999[]"),
            Err(PacketError::BadAckId(_))
        ));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for (text, expected) in [
            ("", PacketError::Empty),
            ("7", PacketError::UnknownEngineType('7')),
            ("é", PacketError::UnknownEngineType('é')),
            (
                "bAAEC",
                PacketError::Unsupported("binary Engine.IO packets"),
            ),
        ] {
            assert_eq!(EnginePacket::decode(text), Err(expected), "{text:?}");
        }
        for (text, expected) in [
            ("", PacketError::Empty),
            ("9", PacketError::UnknownSocketType('9')),
            (
                r#"51-["x",{"_placeholder":true,"num":0}]"#,
                PacketError::Unsupported("binary Socket.IO packets"),
            ),
            (
                r#"6/vendor,1-3[{"_placeholder":true,"num":0}]"#,
                PacketError::Unsupported("binary Socket.IO packets"),
            ),
            ("2", PacketError::BadJson(String::new())),
            ("2[]", PacketError::MissingEventName),
            ("2[1,2]", PacketError::MissingEventName),
            ("2/vendor,{\"a\":1}", PacketError::BadJson(String::new())),
            ("3[]", PacketError::MissingAckId),
            ("3/vendor,1{}", PacketError::BadJson(String::new())),
            ("3/vendor,1[", PacketError::BadJson(String::new())),
            ("0/vendor,not json", PacketError::BadJson(String::new())),
        ] {
            let got = SocketPacket::decode(text);
            match (&got, &expected) {
                // The JSON parser's wording is its own: only the kind matters.
                (Err(PacketError::BadJson(_)), PacketError::BadJson(_)) => {}
                _ => assert_eq!(got, Err(expected), "{text:?}"),
            }
        }
    }

    #[test]
    fn polling_payloads_are_records_joined_by_the_separator() {
        let packets = ["2", r#"42/chat,["m",{"text":"a\u001eb"}]"#, "6"];
        let body = join_payload(&packets);
        assert_eq!(body.matches(RECORD_SEPARATOR).count(), 2);
        assert_eq!(split_payload(&body).collect::<Vec<_>>(), packets);
        assert_eq!(join_payload::<&str>(&[]), "");
        assert_eq!(split_payload("3").collect::<Vec<_>>(), ["3"]);
    }
}
