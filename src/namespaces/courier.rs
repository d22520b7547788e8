//! Every emit the hub makes to a group of sockets goes through [`emit`]:
//! it is awaited (a broadcast future does nothing otherwise), its failure
//! is logged (a full socket buffer loses events silently otherwise), and it
//! is reported to the log and the activity feed. [`Courier`] uses it to
//! deliver freshly queued messages to their recipient's room, and the live
//! `order` notices to the room of the party that took a step.
//!
//! A message for a lab store or for the lab drivers (`/caps`) also goes to
//! the lab clients, in the lab's shape and spelling ([`lab_target`]): its
//! vendor or distributor room in `/vendor` or `/distributor` is where a
//! person watching the sandbox from the consoles hears of it.

use std::borrow::Cow;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::operators::BroadcastOperators;

use crate::activity::{Activity, Outgoing};
use crate::domain::{LabStore, Message, MessageId, Order, Recipient, is_lab_drivers};
use crate::ops::Notify;
use crate::protocol::caps::{Style, lab_message};
use crate::protocol::{MessageEnvelope, OrderNotice, OrderView, event, ns, status_event};
use crate::rooms;
use crate::state::{Counted, Delivery, Hub, HubState};

/// Where an emit goes and what it is, for the log and the feed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out<'a> {
    pub namespace: &'static str,
    /// `room distributor:north-hub`, `broadcast`.
    pub target: &'a str,
    pub event: &'a str,
    /// The queued message it carries, if any (for the log line).
    pub message_id: Option<&'a str>,
}

/// Emits `data` to `to` and reports it; true when every socket took it.
///
/// A socket that stops reading must be found and disconnected (see
/// [`drop_if_slow`]) rather than silently miss live events, but
/// socketioxide's broadcast reports a full buffer without saying whose.
/// So an emit is one broadcast, serialised once (a room of W1 holds 100
/// sockets, the chat thousands: an emit per socket cost W1 a fifth more
/// CPU per delivery); when it finds a full buffer, the next emit to that
/// target goes to each socket on its own and finds the slow one
/// ([`SlowTargets`]). A socket that stops reading stops for good, so the
/// next emit finds it still full; what it missed stays queued for
/// `getAll` (and in the chat's history). In a cluster a broadcast also
/// reaches other hubs' sockets, which only the broadcast can do; there a
/// full buffer is logged and counted, as every failed emit is.
///
/// [`SlowTargets`]: crate::state::SlowTargets
pub(crate) async fn emit<A: Adapter, T: Serialize + ?Sized>(
    hub: &HubState,
    to: BroadcastOperators<A>,
    out: Out<'_>,
    data: &T,
) -> bool {
    let activity = &hub.activity;
    // Counting recipients and copying the payload cost per message; only
    // while an inspector watches.
    let watched = activity.watched();
    let each = !hub.clustered() && hub.slow_targets.take(out.namespace, out.target);
    let (recipients, failure) = if each {
        let sockets = to.sockets();
        (Some(sockets.len()), emit_each(hub, &sockets, out, data))
    } else {
        let recipients = watched.then(|| to.clone().sockets().len());
        let failure = match to.emit(out.event, data).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(ns = out.namespace, event = out.event, target = out.target, error = %e, "emit failed");
                if !hub.clustered() && some_buffer_full(&e) {
                    hub.slow_targets.suspect(out.namespace, out.target);
                }
                Some(e.to_string())
            }
        };
        (recipients, failure)
    };
    let outcome = if failure.is_none() { "ok" } else { "internal" };
    let payload = if watched {
        serde_json::to_value(data).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    activity.outgoing(Outgoing {
        namespace: out.namespace,
        event: out.event,
        target: out.target,
        recipients: recipients.filter(|_| watched),
        outcome,
        reason: failure.as_deref(),
        message_id: out.message_id,
        payload: &payload,
    });
    failure.is_none()
}

/// True when a broadcast failed because some socket's buffer was full.
fn some_buffer_full(error: &socketioxide::BroadcastError) -> bool {
    use socketioxide_core::adapter::errors::SocketError;
    matches!(error, socketioxide::BroadcastError::Socket(errors)
        if errors.iter().any(|e| matches!(e, SocketError::InternalChannelFull)))
}

/// Emits `data` to each of `sockets`; a full buffer drops its socket.
/// The last failure, if any.
fn emit_each<A: Adapter, T: Serialize + ?Sized>(
    hub: &HubState,
    sockets: &[SocketRef<A>],
    out: Out<'_>,
    data: &T,
) -> Option<String> {
    let mut failure = None;
    for socket in sockets {
        if let Err(e) = socket.emit(out.event, data) {
            tracing::warn!(ns = out.namespace, event = out.event, target = out.target, sid = %socket.id, error = %e, "emit failed");
            drop_if_slow(hub, socket, out.namespace, &e);
            failure = Some(e.to_string());
        }
    }
    failure
}

/// Marks a socket being disconnected as a slow consumer, so it is
/// counted and logged once however many emits it misses meanwhile.
#[derive(Debug, Clone, Copy)]
struct Dropping;

/// Disconnects `socket` if `error` says its send buffer is full (a slow
/// consumer): it would silently miss live events; disconnected, it
/// reconnects and catches up (`getAll`, the chat's offset). True if so.
pub(crate) fn drop_if_slow<A: Adapter>(
    hub: &HubState,
    socket: &SocketRef<A>,
    namespace: &'static str,
    error: &socketioxide::SendError,
) -> bool {
    use socketioxide::SendError;
    use socketioxide_core::adapter::errors::SocketError;
    if !matches!(error, SendError::Socket(SocketError::InternalChannelFull)) {
        return false;
    }
    if socket.extensions.get::<Dropping>().is_some() {
        return true;
    }
    socket.extensions.insert(Dropping);
    // Out of its rooms it misses nothing more quietly than it would
    // anyway, and no later broadcast waits on its full buffer.
    socket.leave_all();
    tracing::warn!(ns = namespace, sid = %socket.id, code = "slow_consumer", reason = "its send buffer (--socket-buffer) is full", "disconnecting a slow consumer");
    hub.metrics.socket_dropped(namespace, "slow_consumer");
    // The DISCONNECT packet needs room in that same buffer: try again as
    // it drains (a buffer that never drains fails Engine.IO's heartbeat).
    let socket = socket.clone();
    tokio::spawn(async move {
        for _ in 0..50 {
            match socket.clone().disconnect() {
                Err(socketioxide_core::adapter::errors::SocketError::InternalChannelFull) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                _ => return,
            }
        }
        tracing::warn!(ns = namespace, sid = %socket.id, "a slow consumer's buffer did not drain in 5 s; Engine.IO's heartbeat will close it");
    });
    true
}

/// Emits `data` to one socket (the chat's `users` to a newcomer) and
/// reports it with the target `socket <id>`.
pub(crate) fn emit_to_socket<A: Adapter, T: Serialize + ?Sized>(
    activity: &Activity,
    socket: &SocketRef<A>,
    namespace: &'static str,
    event: &str,
    data: &T,
) {
    let target = format!("socket {}", socket.id);
    let (outcome, failure) = match socket.emit(event, data) {
        Ok(()) => ("ok", None),
        Err(e) => {
            tracing::warn!(ns = namespace, event, target, error = %e, "emit failed");
            ("internal", Some(e.to_string()))
        }
    };
    let payload = if activity.watched() {
        serde_json::to_value(data).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    activity.outgoing(Outgoing {
        namespace,
        event,
        target: &target,
        recipients: Some(1),
        outcome,
        reason: failure.as_deref(),
        message_id: None,
        payload: &payload,
    });
}

/// Delivers queued messages and live notices through one hub's Socket.IO
/// server.
///
/// An operation hands it a step's news right after the commit, and it
/// holds the emits until the handler settles the step ([`Courier::settle`]).
/// On a quiet hub they run then, before the answer, as a lone step's always
/// did. On a busy one the answer comes first (the sender's ack, the feed's
/// record of the event), then the emits join the other steps' in a lane of
/// the hub's [`Deliveries`], and a burst of steps reaches each socket
/// together.
///
/// [`Deliveries`]: crate::state::Deliveries
pub(crate) struct Courier<'a, A: Adapter> {
    io: &'a SocketIo<A>,
    hub: &'a Hub,
    /// The socket whose event caused the step, if it came by Socket.IO: a
    /// notice to its own party's room skips it (its ack already says it).
    sender: Option<&'a SocketRef<A>>,
    /// The emits held until [`Courier::settle`], each with its room.
    outbox: Mutex<Vec<(String, Delivery)>>,
    /// The emits a busy hub did not run at once, waiting for the answer.
    counted: Mutex<Option<Counted>>,
}

impl<A: Adapter> std::fmt::Debug for Courier<'_, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Courier")
            .field("sender", &self.sender.map(|s| s.id))
            .finish_non_exhaustive()
    }
}

impl<'a, A: Adapter> Courier<'a, A> {
    /// For a step that came over HTTP: notices reach every page of the party.
    pub(crate) fn new(io: &'a SocketIo<A>, hub: &'a Hub) -> Self {
        Self {
            io,
            hub,
            sender: None,
            outbox: Mutex::default(),
            counted: Mutex::default(),
        }
    }

    /// For a step asked by `sender`: notices reach its party's other pages.
    pub(crate) fn for_sender(io: &'a SocketIo<A>, hub: &'a Hub, sender: &'a SocketRef<A>) -> Self {
        Self {
            io,
            hub,
            sender: Some(sender),
            outbox: Mutex::default(),
            counted: Mutex::default(),
        }
    }

    /// Sends what the step held around its `answer` (see [`Deliveries`]):
    /// on a quiet hub at once, then the answer; on a busy one the answer,
    /// then to the delivery lanes.
    ///
    /// [`Deliveries`]: crate::state::Deliveries
    pub(crate) async fn settle(self, answer: impl FnOnce()) {
        self.now_if_quiet().await;
        answer();
        self.dispatch();
    }

    /// The first half of [`Courier::settle`], for a door that answers
    /// elsewhere (the HTTP API): the held emits run now if the hub is quiet.
    pub(crate) async fn now_if_quiet(&self) {
        let left = self.hub.deliveries.now_if_quiet(self.take_held()).await;
        *self
            .counted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = left;
    }

    /// The second half: what is still held goes to the lanes.
    pub(crate) fn dispatch(&self) {
        let counted = self
            .counted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(counted) = counted {
            self.hub.deliveries.queue(counted);
        }
        let held = self.take_held();
        if !held.is_empty() {
            self.hub.deliveries.send(held);
        }
    }

    fn take_held(&self) -> Vec<(String, Delivery)> {
        std::mem::take(
            &mut *self
                .outbox
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Holds the emit of `payload` to `to` (an emit for `room`, reported as
    /// `out` says).
    fn hold_emit<P: Serialize + Send + Sync + 'static>(
        &self,
        room: String,
        to: BroadcastOperators<A>,
        out: HeldOut,
        payload: P,
    ) {
        let hub = self.hub.clone();
        self.hold(
            room,
            Box::pin(async move {
                let out = Out {
                    namespace: out.namespace,
                    target: &out.target,
                    event: &out.event,
                    message_id: out.message_id.as_ref().map(MessageId::as_str),
                };
                emit(&hub, to, out, &payload).await;
            }),
        );
    }

    fn hold(&self, room: String, delivery: Delivery) {
        self.outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((room, delivery));
    }
}

/// [`Out`] for an emit held until later.
#[derive(Debug)]
struct HeldOut {
    namespace: &'static str,
    target: String,
    event: Cow<'static, str>,
    message_id: Option<MessageId>,
}

/// A queued message's envelope, owning the message until it is emitted.
#[derive(Debug)]
struct EnvelopeOf(Message);

impl Serialize for EnvelopeOf {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MessageEnvelope::from(&self.0).serialize(serializer)
    }
}

/// An `order` notice, owning the order until it is emitted.
#[derive(Debug)]
struct NoticeOf(Order);

impl Serialize for NoticeOf {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        OrderNotice {
            order: OrderView::from(&self.0),
        }
        .serialize(serializer)
    }
}

/// A handler that forgot [`Courier::settle`] (a bug) still gets its
/// emits out, late, and the log says so.
impl<A: Adapter> Drop for Courier<'_, A> {
    fn drop(&mut self) {
        let left = self.take_held().len()
            + self
                .counted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
                .map_or(0, Counted::len);
        if left > 0 {
            tracing::error!(
                emits = left,
                "a step's emits were not sent by its handler; sending them now"
            );
            self.dispatch();
        }
    }
}

/// Where a message for the sandbox goes in `/caps`, if it is one.
#[derive(Debug)]
enum LabTarget {
    /// The lab store's room (its vendors, and whoever joined it).
    Store(LabStore),
    /// A pickup of this store for the lab drivers: every `/caps` socket
    /// but the sender, as the lab's hub broadcasts it.
    Drivers(LabStore),
}

/// The `/caps` target of a message, if it is about a lab store.
fn lab_target(message: &Message) -> Option<LabTarget> {
    match &message.recipient {
        Recipient::Vendor(vendor) => LabStore::from_vendor_id(vendor).map(LabTarget::Store),
        Recipient::Distributor(distributor) if is_lab_drivers(distributor) => {
            LabStore::from_vendor_id(&message.order.vendor_id).map(LabTarget::Drivers)
        }
        Recipient::Distributor(_) => None,
    }
}

impl<A: Adapter> Courier<'_, A> {
    /// Logs an emit that found no namespace: while the hub shuts down the
    /// namespaces are closed first and writes in flight still finish, so
    /// that is expected there (one debug line each); otherwise it is a bug.
    fn namespace_gone(&self, namespace: &'static str, consequence: &'static str) {
        if self.hub.is_closing() {
            tracing::debug!(
                ns = namespace,
                consequence,
                "shutting down: namespace closed"
            );
        } else {
            tracing::error!(ns = namespace, consequence, "namespace is not registered");
        }
    }

    /// Holds the emit of a message about a lab store to `/caps`, in the
    /// lab's shape, under the name that store's clients use for the step.
    fn deliver_to_lab(&self, message: &Message) {
        let Some(sandbox) = &self.hub.caps else {
            return;
        };
        let Some(target) = lab_target(message) else {
            return;
        };
        let Some(operators) = self.io.of(ns::CAPS) else {
            self.namespace_gone(ns::CAPS, "the message stays queued");
            return;
        };
        let sender = self.sender.filter(|s| s.ns() == ns::CAPS);
        let (store, to, room, target) = match target {
            LabTarget::Store(store) => {
                let room = rooms::lab_store(&store);
                let target = format!("room {room}");
                let to = match sender {
                    Some(sender) => sender.to(room.clone()),
                    None => operators.to(room.clone()),
                };
                (store, to, room, target)
            }
            LabTarget::Drivers(store) => {
                let to = match sender {
                    Some(sender) => sender.broadcast(),
                    None => operators,
                };
                (store, to, ns::CAPS.to_owned(), "broadcast".to_owned())
            }
        };
        let step = message.status();
        let name = sandbox
            .spelling(store.vendor_id(), step)
            .unwrap_or_else(|| Style::default().spell(step));
        let extras = sandbox.extras(store.vendor_id(), &message.order.order_id);
        let payload = lab_message(message, &store, &name, extras.as_ref());
        let out = HeldOut {
            namespace: ns::CAPS,
            target,
            event: Cow::Owned(name),
            message_id: Some(message.id.clone()),
        };
        self.hold_emit(room, to, out, payload);
    }
}

/// The namespace where a party's sockets are.
fn namespace_of(party: &Recipient) -> &'static str {
    match party {
        Recipient::Vendor(_) => ns::VENDOR,
        Recipient::Distributor(_) => ns::DISTRIBUTOR,
    }
}

impl<A: Adapter> Notify for Courier<'_, A> {
    /// Holds the emit of the message to its recipient's room (and to the
    /// lab's, for the sandbox). It is already committed: if no socket is
    /// online, or the emit fails, it waits in the queue for `getAll`.
    async fn deliver(&self, message: &Message) {
        let namespace = namespace_of(&message.recipient);
        let Some(operators) = self.io.of(namespace) else {
            self.namespace_gone(namespace, "the message stays queued");
            return;
        };
        let room = rooms::of_recipient(&message.recipient);
        let to = operators.to(room.clone());
        let out = HeldOut {
            namespace,
            target: format!("room {room}"),
            event: Cow::Borrowed(status_event(message.status())),
            message_id: Some(message.id.clone()),
        };
        self.hold_emit(room, to, out, EnvelopeOf(message.clone()));
        self.deliver_to_lab(message);
    }

    /// Holds the emit of `order { order }` to the party's room, except the
    /// socket that asked for the step. Not queued: a page that misses it
    /// reads the order with `orders` when it reconnects.
    async fn announce(&self, party: &Recipient, order: &Order) {
        let namespace = namespace_of(party);
        let room = rooms::of_recipient(party);
        let to = match self.sender {
            Some(sender) if sender.ns() == namespace => sender.to(room.clone()),
            _ => match self.io.of(namespace) {
                Some(operators) => operators.to(room.clone()),
                None => {
                    self.namespace_gone(namespace, "no notice sent");
                    return;
                }
            },
        };
        let out = HeldOut {
            namespace,
            target: format!("room {room}"),
            event: Cow::Borrowed(event::ORDER),
            message_id: None,
        };
        self.hold_emit(room, to, out, NoticeOf(order.clone()));
    }
}
