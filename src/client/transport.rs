//! What both transports share, so [`super::Client`] drives either one the
//! same way: a reader that yields Engine.IO packets, a channel to a writer
//! task, and the namespace-connect step (the one place that decides what
//! a server's reply to CONNECT means).

use futures_util::stream::SplitStream;
use serde_json::Value;
use tokio::sync::mpsc;

use super::ClientError;
use super::packet::{EnginePacket, Open, SocketPacket};
use super::{polling, websocket};

/// How the client reaches the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One WebSocket, one Engine.IO packet per text frame.
    WebSocket,
    /// HTTP long-polling, never upgraded.
    Polling,
}

impl Transport {
    /// The name Engine.IO uses in its `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Polling => "polling",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the writer task is asked to send.
#[derive(Debug)]
pub(super) enum Outgoing {
    /// One encoded Engine.IO packet.
    Packet(String),
    /// End the session (Engine.IO close, or the WebSocket close frame).
    Close,
}

/// The reading side of an open transport.
pub(super) enum Reader {
    WebSocket(SplitStream<websocket::Connected>),
    Polling(polling::Reader),
}

impl Reader {
    /// The next Engine.IO packet; `None` once the server has closed.
    pub(super) async fn next_packet(&mut self) -> Result<Option<String>, ClientError> {
        match self {
            Self::WebSocket(stream) => websocket::next_packet(stream).await,
            Self::Polling(reader) => reader.next_packet().await,
        }
    }
}

/// An open Engine.IO session, not yet in any namespace.
pub(super) struct Link {
    pub open: Open,
    pub reader: Reader,
    /// Packets to send; the transport's writer task owns the sending side.
    pub outbox: mpsc::UnboundedSender<Outgoing>,
}

impl Link {
    pub(super) async fn open(base_url: &str, transport: Transport) -> Result<Self, ClientError> {
        match transport {
            Transport::WebSocket => {
                let (ws, open) = websocket::open(base_url).await?;
                let (stream, outbox) = websocket::start(ws);
                Ok(Self {
                    open,
                    reader: Reader::WebSocket(stream),
                    outbox,
                })
            }
            Transport::Polling => {
                let (reader, outbox, open) = polling::open(base_url).await?;
                Ok(Self {
                    open,
                    reader: Reader::Polling(reader),
                    outbox,
                })
            }
        }
    }

    /// Joins `namespace`: sends CONNECT and waits for the server's reply,
    /// answering pings meanwhile. Packets after the reply stay unread.
    pub(super) async fn join(
        &mut self,
        namespace: &str,
        auth: Option<&Value>,
    ) -> Result<String, ClientError> {
        self.send(connect_message(namespace, auth))?;
        loop {
            let packet = self
                .reader
                .next_packet()
                .await?
                .ok_or(ClientError::Closed)?;
            match connect_step(&packet, namespace)? {
                ConnectStep::Answer(pong) => self.send(pong)?,
                ConnectStep::Connected(sid) => return Ok(sid),
                ConnectStep::Wait => {}
            }
        }
    }

    fn send(&self, packet: String) -> Result<(), ClientError> {
        self.outbox
            .send(Outgoing::Packet(packet))
            .map_err(|_| ClientError::Closed)
    }
}

/// Turns `http://127.0.0.1:3000` into the Engine.IO URL of `transport`
/// (`ws://…` for a WebSocket).
pub(super) fn engine_url(base: &str, transport: Transport) -> String {
    let base = base.trim_end_matches('/');
    let base = if transport == Transport::WebSocket {
        base.strip_prefix("http://")
            .map(|r| format!("ws://{r}"))
            .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")))
            .unwrap_or_else(|| base.to_owned())
    } else {
        base.to_owned()
    };
    format!("{base}/socket.io/?EIO=4&transport={transport}")
}

/// The CONNECT message for `namespace`, with `auth` if any.
pub(super) fn connect_message(namespace: &str, auth: Option<&Value>) -> String {
    SocketPacket::Connect {
        namespace: namespace.to_owned(),
        data: auth.cloned(),
    }
    .to_message()
}

/// What to do with a packet that arrived while waiting for the CONNECT reply.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ConnectStep {
    /// Send this packet back (the pong to a ping) and keep waiting.
    Answer(String),
    /// The server accepted: the namespace's session id.
    Connected(String),
    /// Nothing to do; keep waiting.
    Wait,
}

/// Reads one packet received while waiting for the reply to CONNECT;
/// a `connect_error` becomes [`ClientError::Refused`] with its message.
pub(super) fn connect_step(packet: &str, namespace: &str) -> Result<ConnectStep, ClientError> {
    let protocol = |e: super::packet::PacketError| ClientError::Protocol(e.to_string());
    let message = match EnginePacket::decode(packet).map_err(protocol)? {
        EnginePacket::Ping(data) => {
            return Ok(ConnectStep::Answer(EnginePacket::Pong(data).encode()));
        }
        EnginePacket::Close => return Err(ClientError::Closed),
        EnginePacket::Message(message) => message,
        _ => return Ok(ConnectStep::Wait),
    };
    let packet = SocketPacket::decode(message).map_err(protocol)?;
    if packet.namespace() != namespace {
        return Ok(ConnectStep::Wait);
    }
    match packet {
        SocketPacket::Connect { data, .. } => {
            let sid = data
                .as_ref()
                .and_then(|d| d.get("sid"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ClientError::Protocol(format!("CONNECT without a sid: {message}"))
                })?;
            Ok(ConnectStep::Connected(sid.to_owned()))
        }
        SocketPacket::ConnectError { data, .. } => Err(ClientError::Refused(
            data.get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| data.to_string()),
        )),
        SocketPacket::Disconnect { .. } => Err(ClientError::Closed),
        // Nothing else can come before the reply; skip it.
        SocketPacket::Event { .. } | SocketPacket::Ack { .. } => Ok(ConnectStep::Wait),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_protocol() {
        assert_eq!(
            engine_url("http://127.0.0.1:3000/", Transport::WebSocket),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            engine_url("http://127.0.0.1:3000", Transport::Polling),
            "http://127.0.0.1:3000/socket.io/?EIO=4&transport=polling"
        );
    }

    #[test]
    fn the_reply_to_connect_is_read_and_pings_are_answered() {
        assert_eq!(
            connect_step("2", "/vendor").unwrap(),
            ConnectStep::Answer("3".into())
        );
        assert_eq!(
            connect_step(r#"40/vendor,{"sid":"s-1"}"#, "/vendor").unwrap(),
            ConnectStep::Connected("s-1".into())
        );
        assert_eq!(
            connect_step(r#"40/chat,{"sid":"s-1"}"#, "/vendor").unwrap(),
            ConnectStep::Wait
        );
        assert_eq!(
            connect_step(r#"44/vendor,{"message":"bad_auth: no"}"#, "/vendor"),
            Err(ClientError::Refused("bad_auth: no".into()))
        );
        assert_eq!(
            connect_step(r#"44{"message":"Invalid namespace"}"#, "/"),
            Err(ClientError::Refused("Invalid namespace".into()))
        );
        assert_eq!(connect_step("1", "/"), Err(ClientError::Closed));
        assert!(matches!(
            connect_step("40/vendor,{}", "/vendor"),
            Err(ClientError::Protocol(_))
        ));
        assert!(matches!(
            connect_step("x", "/vendor"),
            Err(ClientError::Protocol(_))
        ));
    }
}
