//! The project's one Socket.IO client (Engine.IO v4 + Socket.IO v5, text
//! packets, over WebSocket or HTTP long-polling).
//!
//! The scenario runner, the load generator and the integration tests need
//! a client that lives in the library, answers pings, reports
//! `connect_error` messages, gives every ack its own id (a counter: a
//! thousand acks in flight on one socket each get their own answer), and
//! costs little per message. It speaks the same packets as
//! `socket.io-client` over a real connection; it is not a test double.
//!
//! - [`packet`]: the wire format, the only place that reads or writes it.
//! - `transport`, `websocket`, `polling`: the two ways to reach the hub.
//! - this file: [`Client`], one namespace over one Engine.IO session.

pub mod packet;
mod polling;
mod transport;
mod websocket;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot};

pub use packet::namespace_prefix;
pub use transport::Transport;
pub use websocket::{Connected, handshake};

use packet::{EnginePacket, SocketPacket};
use transport::{Link, Outgoing, Reader};

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
    /// Every argument, in order.
    pub args: Vec<Value>,
}

impl Received {
    fn new(event: String, args: Vec<Value>) -> Self {
        let payload = args.first().cloned().unwrap_or(Value::Null);
        Self {
            event,
            payload,
            args,
        }
    }
}

/// Ack waiters by id. `None` once the connection is over, so an
/// `emit_with_ack` after that fails at once instead of at its timeout.
type PendingAcks = std::sync::Mutex<Option<HashMap<u64, oneshot::Sender<Vec<Value>>>>>;

/// What the client and its reader task both see.
#[derive(Debug)]
struct Shared {
    pending: PendingAcks,
    /// False once the server disconnected us, the transport closed, or
    /// [`Client::disconnect`] was called.
    connected: AtomicBool,
}

impl Shared {
    /// Marks the connection over and wakes every ack waiter with `Closed`.
    fn close(&self) {
        self.connected.store(false, Ordering::SeqCst);
        let waiters = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(waiters);
    }
}

/// A connection to one namespace.
#[derive(Debug)]
pub struct Client {
    /// Packets to send; the transport's writer task owns the connection's
    /// sending side, so `emit` needs no lock and no await.
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// Events from the hub, in arrival order; the reader task holds the sender.
    inbox: Mutex<mpsc::UnboundedReceiver<Received>>,
    shared: Arc<Shared>,
    /// Ack ids, unique on this socket.
    next_ack: AtomicU64,
    namespace: String,
    transport: Transport,
    /// Set by the first [`Client::disconnect`], so the goodbye is sent once.
    leaving: AtomicBool,
    /// The Socket.IO session id the hub gave this namespace connection.
    pub sid: String,
}

impl Client {
    /// Opens a WebSocket to `base_url` and connects to `namespace` with `auth`.
    pub async fn connect(
        base_url: &str,
        namespace: &str,
        auth: Option<&Value>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        Self::connect_with(base_url, namespace, auth, Transport::WebSocket, timeout).await
    }

    /// Connects to `namespace` over `transport`. Returns once the server has
    /// answered CONNECT (events sent before that answer would be dropped).
    pub async fn connect_with(
        base_url: &str,
        namespace: &str,
        auth: Option<&Value>,
        transport: Transport,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let connecting = async {
            let mut link = Link::open(base_url, transport).await?;
            let sid = link.join(namespace, auth).await?;
            Ok::<_, ClientError>((link, sid))
        };
        let (link, sid) = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        let shared = Arc::new(Shared {
            pending: std::sync::Mutex::new(Some(HashMap::new())),
            connected: AtomicBool::new(true),
        });
        let (events, inbox) = mpsc::unbounded_channel();
        tokio::spawn(read_packets(
            link.reader,
            link.open.silence_limit(),
            namespace.to_owned(),
            link.outbox.clone(),
            events,
            shared.clone(),
        ));
        Ok(Self {
            outbox: link.outbox,
            inbox: Mutex::new(inbox),
            shared,
            next_ack: AtomicU64::new(0),
            namespace: namespace.to_owned(),
            transport,
            leaving: AtomicBool::new(false),
            sid,
        })
    }

    fn send(&self, packet: String) -> Result<(), ClientError> {
        if !self.is_connected() {
            return Err(ClientError::Closed);
        }
        self.outbox
            .send(Outgoing::Packet(packet))
            .map_err(|_| ClientError::Closed)
    }

    /// Sends an event without asking for an ack.
    pub fn emit(&self, event: &str, payload: &Value) -> Result<(), ClientError> {
        self.send(packet::event_message(
            &self.namespace,
            None,
            event,
            &[payload],
        ))
    }

    /// Sends an event with any number of arguments, without asking for an
    /// ack (the Admin UI's actions: `emit("join", nsp, room, filter)`).
    pub fn emit_args(&self, event: &str, args: &[&Value]) -> Result<(), ClientError> {
        self.send(packet::event_message(&self.namespace, None, event, args))
    }

    /// Sends an event with an ack id and waits for the ack's first argument.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        payload: &Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.emit_args_with_ack(event, &[payload], timeout).await
    }

    /// Like [`Client::emit_with_ack`] with any number of arguments (none:
    /// `emit("getAll", callback)` in JavaScript).
    pub async fn emit_args_with_ack(
        &self,
        event: &str,
        args: &[&Value],
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending(|acks| acks.insert(id, tx))
            .ok_or(ClientError::Closed)?;
        let frame = packet::event_message(&self.namespace, Some(id), event, args);
        if let Err(e) = self.send(frame) {
            self.pending(|acks| acks.remove(&id));
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(args)) => Ok(args.into_iter().next().unwrap_or(Value::Null)),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                self.pending(|acks| acks.remove(&id));
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    /// Runs `f` on the ack waiters; `None` if the connection is over.
    fn pending<T>(
        &self,
        f: impl FnOnce(&mut HashMap<u64, oneshot::Sender<Vec<Value>>>) -> T,
    ) -> Option<T> {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .map(f)
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

    /// The next event from the hub; `None` once the connection is closed
    /// (and every event before that was read).
    pub async fn recv(&self) -> Option<Received> {
        self.inbox.lock().await.recv().await
    }

    /// Whether the namespace connection is still up: false once the server
    /// disconnected this client, the transport closed, or we left.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// The transport this client connected with.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The namespace this client is connected to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Leaves the namespace (Socket.IO DISCONNECT) and closes the transport.
    /// The packets already emitted are sent first.
    pub fn disconnect(&self) {
        if self.leaving.swap(true, Ordering::SeqCst) {
            return;
        }
        let goodbye = SocketPacket::Disconnect {
            namespace: self.namespace.clone(),
        }
        .to_message();
        // Either failing means the writer task has already stopped: the
        // connection is gone and there is nobody left to tell.
        let _gone = self.outbox.send(Outgoing::Packet(goodbye));
        let _gone = self.outbox.send(Outgoing::Close);
        self.shared.close();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.disconnect();
    }
}

/// Reads the connection until it ends: answers pings, hands events to the
/// inbox in order and acks to their waiters. The connection counts as dead
/// when the server stays silent past its ping interval plus ping timeout.
async fn read_packets(
    mut reader: Reader,
    silence_limit: Duration,
    namespace: String,
    outbox: mpsc::UnboundedSender<Outgoing>,
    events: mpsc::UnboundedSender<Received>,
    shared: Arc<Shared>,
) {
    loop {
        let text = match tokio::time::timeout(silence_limit, reader.next_packet()).await {
            Ok(Ok(Some(text))) => text,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                tracing::debug!(ns = %namespace, error = %e, "the connection failed");
                break;
            }
            Err(_) => {
                tracing::warn!(ns = %namespace, ?silence_limit, "no ping from the server; closing");
                break;
            }
        };
        let message = match EnginePacket::decode(&text) {
            Ok(EnginePacket::Message(message)) => message,
            Ok(EnginePacket::Ping(data)) => {
                if outbox
                    .send(Outgoing::Packet(EnginePacket::Pong(data).encode()))
                    .is_err()
                {
                    break;
                }
                continue;
            }
            Ok(EnginePacket::Close) => break,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(ns = %namespace, error = %e, "skipping a packet this client cannot read");
                continue;
            }
        };
        let packet = match SocketPacket::decode(message) {
            Ok(packet) if packet.namespace() == namespace => packet,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(ns = %namespace, error = %e, "skipping a packet this client cannot read");
                continue;
            }
        };
        match packet {
            SocketPacket::Event { event, args, .. } => {
                if events.send(Received::new(event, args)).is_err() {
                    // The client was dropped: nobody reads any more.
                    break;
                }
            }
            SocketPacket::Ack { id, args, .. } => {
                let waiter = shared
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                    .and_then(|acks| acks.remove(&id));
                if let Some(waiter) = waiter {
                    // The caller may have timed out and left; nothing to do then.
                    let _caller_gone = waiter.send(args);
                }
            }
            SocketPacket::Disconnect { .. } => break,
            SocketPacket::Connect { .. } | SocketPacket::ConnectError { .. } => {}
        }
    }
    shared.close();
    // The session may still be open on our side (server DISCONNECT, silent
    // server): close it. An error means the writer is already gone.
    let _gone = outbox.send(Outgoing::Close);
    // Dropping `events` tells readers of the inbox the connection is over.
}
