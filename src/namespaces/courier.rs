//! Every emit the hub makes to a group of sockets goes through [`emit`]:
//! it is awaited (a broadcast future does nothing otherwise), its failure
//! is logged (a full socket buffer loses events silently otherwise), and it
//! is reported to the log and the activity feed. [`Courier`] uses it to
//! deliver freshly queued messages to their recipient's room, and the live
//! `order` notices to the room of the party that took a step.

use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::operators::BroadcastOperators;

use crate::activity::{Activity, Outgoing};
use crate::domain::{Message, Order, Recipient};
use crate::ops::Notify;
use crate::protocol::{MessageEnvelope, OrderNotice, OrderView, event, ns, status_event};
use crate::rooms;
use crate::state::HubState;

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

/// Emits `data` to `to` and reports it; true when the emit was accepted.
pub(crate) async fn emit<A: Adapter, T: Serialize + ?Sized>(
    activity: &Activity,
    to: BroadcastOperators<A>,
    out: Out<'_>,
    data: &T,
) -> bool {
    // Counting recipients and copying the payload cost per message; only
    // while an inspector watches.
    let watched = activity.watched();
    let recipients = watched.then(|| to.clone().sockets().len());
    let outcome = match to.emit(out.event, data).await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(ns = out.namespace, event = out.event, target = out.target, error = %e, "emit failed");
            "internal"
        }
    };
    let payload = if watched {
        serde_json::to_value(data).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    activity.outgoing(Outgoing {
        namespace: out.namespace,
        event: out.event,
        target: out.target,
        recipients,
        outcome,
        message_id: out.message_id,
        payload: &payload,
    });
    outcome == "ok"
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
    let outcome = match socket.emit(event, data) {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(ns = namespace, event, target, error = %e, "emit failed");
            "internal"
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
        message_id: None,
        payload: &payload,
    });
}

/// Delivers queued messages and live notices through one hub's Socket.IO server.
#[derive(Debug)]
pub(crate) struct Courier<'a, A: Adapter> {
    io: &'a SocketIo<A>,
    hub: &'a HubState,
    /// The socket whose event caused the step, if it came by Socket.IO: a
    /// notice to its own party's room skips it (its ack already says it).
    sender: Option<&'a SocketRef<A>>,
}

impl<'a, A: Adapter> Courier<'a, A> {
    /// For a step that came over HTTP: notices reach every page of the party.
    pub(crate) fn new(io: &'a SocketIo<A>, hub: &'a HubState) -> Self {
        Self {
            io,
            hub,
            sender: None,
        }
    }

    /// For a step asked by `sender`: notices reach its party's other pages.
    pub(crate) fn for_sender(
        io: &'a SocketIo<A>,
        hub: &'a HubState,
        sender: &'a SocketRef<A>,
    ) -> Self {
        Self {
            io,
            hub,
            sender: Some(sender),
        }
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
    /// Emits the message to its recipient's room. It is already committed:
    /// if no socket is online, or the emit fails, it waits in the queue for
    /// `getAll`.
    async fn deliver(&self, message: &Message) {
        let namespace = namespace_of(&message.recipient);
        let Some(operators) = self.io.of(namespace) else {
            tracing::error!(
                ns = namespace,
                "namespace is not registered; the message stays queued"
            );
            return;
        };
        let room = rooms::of_recipient(&message.recipient);
        let target = format!("room {room}");
        let out = Out {
            namespace,
            target: &target,
            event: status_event(message.status()),
            message_id: Some(message.id.as_str()),
        };
        emit(
            &self.hub.activity,
            operators.to(room),
            out,
            &MessageEnvelope::from(message),
        )
        .await;
    }

    /// Emits `order { order }` to the party's room, except the socket
    /// that asked for the step. Not queued: a page that misses it reads the
    /// order with `orders` when it reconnects.
    async fn announce(&self, party: &Recipient, order: &Order) {
        let namespace = namespace_of(party);
        let room = rooms::of_recipient(party);
        let to = match self.sender {
            Some(sender) if sender.ns() == namespace => sender.to(room.clone()),
            _ => match self.io.of(namespace) {
                Some(operators) => operators.to(room.clone()),
                None => {
                    tracing::error!(
                        ns = namespace,
                        "namespace is not registered; no notice sent"
                    );
                    return;
                }
            },
        };
        let target = format!("room {room}");
        let out = Out {
            namespace,
            target: &target,
            event: event::ORDER,
            message_id: None,
        };
        let notice = OrderNotice {
            order: OrderView::from(order),
        };
        emit(&self.hub.activity, to, out, &notice).await;
    }
}
