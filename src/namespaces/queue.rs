//! `received` and `getAll`, the same for vendors and distributors.
//!
//! A queue belongs to an identity, not to a connection: any socket of that
//! vendor or distributor reads and confirms it.

use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};

use super::{AckRequested, Session, answer, payload, refusal_from};
use crate::app::Hub;
use crate::protocol::{
    ErrorCode, Fields, GetAllAck, ReceivedAck, Refusal, event, ok_envelope, parse_received,
};

fn recipient_of(session: &Session) -> Result<crate::domain::Recipient, Refusal> {
    session
        .recipient()
        .ok_or_else(|| Refusal::new(ErrorCode::Forbidden, "this namespace has no queue"))
}

/// `received { messageId }`: removes the message from this identity's queue.
pub async fn on_received<A: Adapter>(
    socket: SocketRef<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
) {
    let (payload, decoded) = payload(data);
    let result = async {
        decoded?;
        session.admit()?;
        let message = parse_received(&payload)?;
        let removed = hub
            .store
            .confirm(&recipient_of(&session)?, &message)
            .await
            .map_err(refusal_from)?;
        Ok(ok_envelope(&ReceivedAck { removed }))
    }
    .await;
    answer(
        &hub,
        &socket,
        &session,
        event::RECEIVED,
        &payload,
        ack,
        result,
    );
}

/// `getAll`: everything queued, oldest first, in the ack; without a
/// callback, each message is re-emitted to this socket as its own event.
pub async fn on_get_all<A: Adapter>(
    socket: SocketRef<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    AckRequested(wants_ack): AckRequested,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
) {
    let (payload, decoded) = payload(data);
    let result = async {
        decoded?;
        session.admit()?;
        Fields::of_optional(&payload)?;
        hub.store
            .pending_for(&recipient_of(&session)?)
            .await
            .map_err(refusal_from)
    }
    .await;
    let result = match result {
        Ok(messages) if wants_ack => Ok(ok_envelope(&GetAllAck {
            messages: &messages,
        })),
        Ok(messages) => {
            for envelope in &messages {
                if let Err(e) = socket.emit(&envelope.event, envelope) {
                    tracing::warn!(ns = socket.ns(), sid = %socket.id, message = %envelope.message_id, error = %e, "could not re-emit a queued message; it stays queued");
                }
            }
            Ok(Value::Null)
        }
        Err(refusal) => Err(refusal),
    };
    answer(
        &hub,
        &socket,
        &session,
        event::GET_ALL,
        &payload,
        ack,
        result,
    );
}
