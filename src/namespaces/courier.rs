//! Every emit the hub makes to a group of sockets goes through [`emit`]:
//! it is awaited (a broadcast future does nothing otherwise), its failure
//! is logged (a full socket buffer loses events silently otherwise), and it
//! is reported to the log and the activity feed. [`Courier`] uses it to
//! deliver freshly queued messages to their recipient's room.

use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::operators::BroadcastOperators;

use crate::activity::{Activity, Outgoing};
use crate::domain::{Message, Recipient};
use crate::ops::Notify;
use crate::protocol::{MessageEnvelope, ns, status_event};
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

/// Delivers queued messages through one hub's Socket.IO server.
#[derive(Debug)]
pub(crate) struct Courier<'a, A: Adapter> {
    io: &'a SocketIo<A>,
    hub: &'a HubState,
}

impl<'a, A: Adapter> Courier<'a, A> {
    pub(crate) fn new(io: &'a SocketIo<A>, hub: &'a HubState) -> Self {
        Self { io, hub }
    }
}

impl<A: Adapter> Notify for Courier<'_, A> {
    /// Emits the message to its recipient's room. It is already committed:
    /// if no socket is online, or the emit fails, it waits in the queue for
    /// `getAll`.
    async fn deliver(&self, message: &Message) {
        let namespace = match &message.recipient {
            Recipient::Vendor(_) => ns::VENDOR,
            Recipient::Distributor(_) => ns::DISTRIBUTOR,
        };
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
}
