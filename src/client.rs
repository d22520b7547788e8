//! A small Socket.IO client (Engine.IO v4 + Socket.IO v5 over WebSocket).
//!
//! The scenario runner and the load generator need a client that lives in
//! the library, answers pings, reports `connect_error` messages, matches
//! acks, and costs little per message. It speaks the same text frames as
//! `socket.io-client` over a real WebSocket; it is not a test double.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the hub: {0}")]
    Transport(String),
    /// The hub refused the namespace connection (`connect_error` message).
    #[error("connect_error: {0}")]
    Refused(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the connection is closed")]
    Closed,
    #[error("unexpected frame from the hub: {0}")]
    Protocol(String),
}

/// An event the hub sent to this client.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub event: String,
    /// The first argument (`null` if none).
    pub payload: Value,
}

type PendingAcks = Arc<std::sync::Mutex<HashMap<i64, oneshot::Sender<Value>>>>;

/// A connection to one namespace.
#[derive(Debug)]
pub struct Client {
    /// Frames to send; the writer task owns the socket's sink.
    outbox: mpsc::UnboundedSender<Message>,
    /// Events from the hub, in arrival order.
    inbox: Mutex<mpsc::UnboundedReceiver<Received>>,
    /// Acks we wait for, by id.
    pending: PendingAcks,
    next_ack: AtomicI64,
    /// `/vendor,` — the prefix every packet of this namespace carries.
    prefix: String,
    /// The Socket.IO session id the hub gave this namespace connection.
    pub sid: String,
}

/// Turns `http://127.0.0.1:3000` into the Engine.IO WebSocket URL.
fn websocket_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .map(|r| format!("ws://{r}"))
        .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .unwrap_or_else(|| base.to_owned());
    format!("{rest}/socket.io/?EIO=4&transport=websocket")
}

/// `/vendor,`: the prefix of every packet of a namespace (none for `/`).
pub fn namespace_prefix(namespace: &str) -> String {
    if namespace == "/" {
        String::new()
    } else {
        format!("{namespace},")
    }
}

/// Splits `[ack id]<json>` after the namespace prefix.
fn split_ack_id(rest: &str) -> (Option<i64>, &str) {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return (None, rest);
    }
    (rest[..digits].parse().ok(), &rest[digits..])
}

/// Bytes read from the socket at a time (frames larger than this still arrive whole).
const READ_BUFFER: usize = 8 * 1024;

/// A WebSocket that has finished the Socket.IO handshake.
pub type Connected =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket and connects to `namespace`: returns the socket, ready
/// for events, and the namespace's session id, or the `connect_error`.
pub async fn handshake(
    base_url: &str,
    namespace: &str,
    auth: Option<&Value>,
) -> Result<(Connected, String), ClientError> {
    // tungstenite zeroes its whole read buffer (128 KiB by default) for every
    // read; with small frames that memset was half the load generator's CPU.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    // Small frames must not wait for Nagle's algorithm on our side either.
    let disable_nagle = true;
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        websocket_url(base_url),
        Some(config),
        disable_nagle,
    )
    .await
    .map_err(|e| ClientError::Transport(e.to_string()))?;
    // Engine.IO open packet first.
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
        other => return Err(ClientError::Protocol(format!("{other:?}"))),
    }
    let prefix = namespace_prefix(namespace);
    let connect = match auth {
        Some(auth) => format!("40{prefix}{auth}"),
        None => format!("40{prefix}"),
    };
    let send_err = |e: tokio_tungstenite::tungstenite::Error| ClientError::Transport(e.to_string());
    ws.send(Message::Text(connect.into()))
        .await
        .map_err(send_err)?;
    // Wait for CONNECT or CONNECT_ERROR of our namespace, answering pings.
    loop {
        let frame = match ws.next().await {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ClientError::Transport(e.to_string())),
            None => return Err(ClientError::Closed),
        };
        if frame == "2" {
            ws.send(Message::Text("3".into())).await.map_err(send_err)?;
            continue;
        }
        if let Some(body) = frame.strip_prefix(&format!("40{prefix}")) {
            let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let sid = v["sid"].as_str().unwrap_or_default().to_owned();
            return Ok((ws, sid));
        }
        if let Some(body) = frame.strip_prefix(&format!("44{prefix}")) {
            let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let message = v["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| body.to_owned());
            return Err(ClientError::Refused(message));
        }
    }
}

impl Client {
    /// Opens a WebSocket to `base_url` and connects to `namespace` with `auth`.
    pub async fn connect(
        base_url: &str,
        namespace: &str,
        auth: Option<&Value>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        tokio::time::timeout(timeout, Self::connect_inner(base_url, namespace, auth))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    async fn connect_inner(
        base_url: &str,
        namespace: &str,
        auth: Option<&Value>,
    ) -> Result<Self, ClientError> {
        let (ws, sid) = handshake(base_url, namespace, auth).await?;
        let (mut sink, mut stream) = ws.split();
        let prefix = namespace_prefix(namespace);
        let (outbox, mut to_send) = mpsc::unbounded_channel::<Message>();
        let (events, inbox) = mpsc::unbounded_channel();
        let pending: PendingAcks = Arc::default();

        tokio::spawn(async move {
            while let Some(frame) = to_send.recv().await {
                let closing = matches!(frame, Message::Close(_));
                if sink.send(frame).await.is_err() || closing {
                    break;
                }
            }
        });

        let reader_outbox = outbox.clone();
        let reader_pending = pending.clone();
        let reader_prefix = prefix.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let text = text.as_str();
                if text == "2" {
                    if reader_outbox.send(Message::Text("3".into())).is_err() {
                        break;
                    }
                    continue;
                }
                let Some(rest) = text
                    .strip_prefix('4')
                    .and_then(|r| r.get(1..).map(|body| (&r[..1], body)))
                else {
                    continue;
                };
                let (kind, body) = rest;
                let Some(body) = body.strip_prefix(reader_prefix.as_str()) else {
                    continue;
                };
                match kind {
                    // EVENT: [ack id]["name", arg, ...]
                    "2" => {
                        let (_, json) = split_ack_id(body);
                        if let Ok(Value::Array(mut args)) = serde_json::from_str::<Value>(json)
                            && let Some(Value::String(event)) = args.first().cloned()
                        {
                            let payload = if args.len() > 1 {
                                args.swap_remove(1)
                            } else {
                                Value::Null
                            };
                            if events.send(Received { event, payload }).is_err() {
                                break;
                            }
                        }
                    }
                    // ACK: id[args]
                    "3" => {
                        let (id, json) = split_ack_id(body);
                        let args = serde_json::from_str::<Value>(json).unwrap_or(Value::Null);
                        let first = match args {
                            Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
                            _ => Value::Null,
                        };
                        let waiter = id.and_then(|id| {
                            reader_pending
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .remove(&id)
                        });
                        if let Some(waiter) = waiter {
                            // The caller may have timed out and left; nothing to do then.
                            let _caller_gone = waiter.send(first);
                        }
                    }
                    // DISCONNECT from the server.
                    "1" => break,
                    _ => {}
                }
            }
            // Dropping `events` tells readers the connection is over.
        });

        Ok(Self {
            outbox,
            inbox: Mutex::new(inbox),
            pending,
            next_ack: AtomicI64::new(1),
            prefix,
            sid,
        })
    }

    fn send_event(
        &self,
        ack: Option<i64>,
        event: &str,
        payload: &Value,
    ) -> Result<(), ClientError> {
        let args = Value::Array(vec![Value::String(event.to_owned()), payload.clone()]);
        let id = ack.map(|a| a.to_string()).unwrap_or_default();
        let frame = format!("42{}{id}{args}", self.prefix);
        self.outbox
            .send(Message::Text(frame.into()))
            .map_err(|_| ClientError::Closed)
    }

    /// Sends an event without asking for an ack.
    pub fn emit(&self, event: &str, payload: &Value) -> Result<(), ClientError> {
        self.send_event(None, event, payload)
    }

    /// Sends an event with an ack callback and waits for the ack's first argument.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        payload: &Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, tx);
        self.send_event(Some(id), event, payload)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                self.pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&id);
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    /// The next event from the hub, or `None` if nothing came within `within`
    /// (or the connection closed).
    pub async fn next_event(&self, within: Duration) -> Option<Received> {
        let mut inbox = self.inbox.lock().await;
        tokio::time::timeout(within, inbox.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next event from the hub; `None` once the connection is closed.
    pub async fn recv(&self) -> Option<Received> {
        self.inbox.lock().await.recv().await
    }

    /// Leaves the namespace and closes the WebSocket.
    pub fn disconnect(&self) {
        // Either frame failing means the connection is already gone.
        let _gone = self
            .outbox
            .send(Message::Text(format!("41{}", self.prefix).into()));
        let _gone = self.outbox.send(Message::Close(None));
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_prefixes_follow_the_protocol() {
        assert_eq!(
            websocket_url("http://127.0.0.1:3000/"),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(namespace_prefix("/"), "");
        assert_eq!(namespace_prefix("/chat"), "/chat,");
        assert_eq!(split_ack_id("12[\"x\"]"), (Some(12), "[\"x\"]"));
        assert_eq!(split_ack_id("[\"x\"]"), (None, "[\"x\"]"));
    }
}
