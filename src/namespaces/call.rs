//! The one shape of an event handler: a [`Call`] carries everything an
//! event brings (its name, its payload or why it could not be decoded, the
//! sender's session and the ack callback), checks it, and answers it.
//!
//! A handler is then a few lines of what is particular to it:
//!
//! ```text
//! async fn on_received<A: Adapter>(call: Call<A>) {
//!     let result = async {
//!         let message = call.request(parse_received)?;
//!         let removed = ops::confirm(call.hub(), &call.recipient()?, &message).await?;
//!         Ok(ok_envelope(&ReceivedAck { removed }))
//!     }
//!     .await;
//!     call.answer(result);
//! }
//! ```
//!
//! It takes the payload as [`TryData`], never `Data`: a failing `Data`
//! extractor skips the handler silently, with no ack and no log, where a
//! `Call` answers `invalid_payload`.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;

use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, Extension, SocketRef, State, TryData};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;

use super::Session;
use crate::activity::{self, Incoming};
use crate::domain::Recipient;
use crate::protocol::{ErrorCode, Refusal, ns};
use crate::state::Hub;
use crate::telemetry::clip_name;

/// An incoming event, ready to be checked and answered.
pub(crate) struct Call<A: Adapter> {
    socket: SocketRef<A>,
    hub: Hub,
    session: Session,
    event: String,
    payload: Value,
    /// Whether the payload could be decoded at all.
    decoded: Result<(), Refusal>,
    ack: AckSender<A>,
    wants_ack: bool,
    /// When the event arrived, for the ack latency histogram.
    arrived: Instant,
}

impl<A: Adapter> std::fmt::Debug for Call<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("event", &self.event)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// Why a [`Call`] could not be built: the socket lacks what its connect
/// middleware should have given it (a bug, logged by socketioxide).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("the socket has no session (its connect middleware did not run)")]
    NoSession,
    #[error("the hub state is not registered")]
    NoState,
}

impl<A: Adapter> FromMessageParts<A> for Call<A> {
    type Error = CallError;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, CallError> {
        let arrived = Instant::now();
        let event = Event::from_message_parts(s, v, ack_id)
            .map(|Event(name)| name)
            .unwrap_or_default();
        let TryData(data) = TryData::<Value>::from_message_parts(s, v, ack_id)
            .unwrap_or_else(|never| match never {});
        let (payload, decoded) = match data {
            Ok(payload) => (payload, Ok(())),
            // `emit("getAll")` sends the event name alone: nothing, which
            // reads as `null`, not as a payload that failed to decode.
            Err(_) if only_the_event_name(v) => (Value::Null, Ok(())),
            Err(e) => {
                tracing::debug!(error = %e, "payload could not be decoded");
                (Value::Null, Err(Refusal::undecodable()))
            }
        };
        let Extension(session) = Extension::<Session>::from_message_parts(s, v, ack_id)
            .map_err(|_| CallError::NoSession)?;
        let State(hub) =
            State::<Hub>::from_message_parts(s, v, ack_id).map_err(|_| CallError::NoState)?;
        let ack =
            AckSender::from_message_parts(s, v, ack_id).unwrap_or_else(|never| match never {});
        let socket =
            SocketRef::from_message_parts(s, v, ack_id).unwrap_or_else(|never| match never {});
        Ok(Self {
            socket,
            hub,
            session,
            event,
            payload,
            decoded,
            ack,
            wants_ack: ack_id.is_some(),
            arrived,
        })
    }
}

/// Whether the event came with no argument at all (`["getAll"]`).
fn only_the_event_name(v: &socketioxide::handler::Value) -> bool {
    v.as_str()
        .and_then(|text| serde_json::from_str::<Vec<serde::de::IgnoredAny>>(text).ok())
        .is_some_and(|items| items.len() == 1)
}

impl<A: Adapter> Call<A> {
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    pub(crate) fn socket(&self) -> &SocketRef<A> {
        &self.socket
    }

    /// The event's name, as the client spelled it.
    pub(crate) fn event(&self) -> &str {
        &self.event
    }

    /// Whether the client sent an ack callback.
    pub(crate) fn wants_ack(&self) -> bool {
        self.wants_ack
    }

    /// The request, or why not: the payload must have decoded, the sender
    /// must have budget left, and `parse` must accept it.
    pub(crate) fn request<T>(
        &self,
        parse: impl FnOnce(&Value) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        self.decoded.clone()?;
        self.session.admit()?;
        parse(&self.payload)
    }

    /// The queue this socket reads (vendors and distributors only).
    pub(crate) fn recipient(&self) -> Result<Recipient, Refusal> {
        self.session
            .recipient()
            .ok_or_else(|| Refusal::new(ErrorCode::Forbidden, "this namespace has no queue"))
    }

    /// Answers the client's callback (if it sent one) and reports the event
    /// to the log and the activity feed.
    pub(crate) fn answer(self, result: Result<Value, Refusal>) {
        let (outcome, reason, envelope) = match result {
            Ok(envelope) => ("ok", None, envelope),
            Err(refusal) => (
                refusal.code.as_str(),
                Some(refusal.message.clone()),
                refusal.envelope(),
            ),
        };
        let namespace = namespace_of(&self.socket);
        self.hub.activity.incoming(Incoming {
            namespace,
            event: &self.event,
            socket: &self.socket.id.to_string(),
            identity: &self.session.label,
            outcome,
            reason: reason.as_deref(),
            payload: &self.payload,
            peer: self.session.peer,
        });
        if let Err(e) = self.ack.send(&envelope) {
            tracing::warn!(ns = self.socket.ns(), event = %clip_name(&self.event), sid = %self.socket.id, error = %e, "could not send the ack");
        }
        if self.wants_ack {
            self.hub
                .metrics
                .ack_duration(namespace, &self.event, self.arrived.elapsed());
        }
    }
}

/// `handler`, with its feed records in cause-then-effect order: the event
/// first, then the emits it caused (see [`activity::cause_first`]).
/// Register every `Call` handler through it.
pub(crate) fn cause_first<A, F, Fut>(
    handler: F,
) -> impl FnOnce(Call<A>) -> BoxFuture<'static, ()> + Clone + Send + Sync + 'static
where
    A: Adapter,
    F: FnOnce(Call<A>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    move |call: Call<A>| {
        let hub = call.hub.clone();
        Box::pin(async move { activity::cause_first(&hub.activity, handler(call)).await })
    }
}

/// The static path of a socket's namespace, for logs.
pub(crate) fn namespace_of<A: Adapter>(socket: &SocketRef<A>) -> &'static str {
    ns::ALL
        .iter()
        .chain([&ns::ADMIN, &ns::CAPS])
        .find(|name| **name == socket.ns())
        .copied()
        .unwrap_or(ns::INSPECTOR)
}

/// Answers any event a namespace does not know with `unknown_event`.
pub(crate) async fn on_unknown_event<A: Adapter>(call: Call<A>) {
    // Whatever its payload, an unknown event is answered as unknown (once
    // the sender's budget allows).
    let result = call.session.admit().and_then(|()| {
        Err(Refusal::new(
            ErrorCode::UnknownEvent,
            format!(
                "{:?} is not an event of {}",
                clip_name(&call.event),
                call.socket.ns()
            ),
        ))
    });
    call.answer(result);
}
