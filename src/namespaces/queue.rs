//! `received` and `getAll`, the same for vendors and distributors.

use serde_json::Value;
use socketioxide::adapter::Adapter;

use super::Call;
use super::call::namespace_of;
use super::courier::drop_if_slow;
use crate::ops;
use crate::protocol::{
    GetAllAck, MessageEnvelope, ReceivedAck, ok_envelope, parse_get_all, parse_received,
    status_event,
};

/// `received { messageId }`: removes the message from this identity's queue.
pub(crate) async fn on_received<A: Adapter>(call: Call<A>) {
    let result = async {
        let message = call.request(parse_received)?;
        let removed = ops::confirm(call.hub(), &call.recipient()?, &message).await?;
        Ok(ok_envelope(&ReceivedAck { removed }))
    }
    .await;
    call.answer(result);
}

/// `getAll { limit? }`: the oldest queued messages (at most `limit`), and
/// whether more wait, in the ack; without a callback, each of them is
/// re-emitted to this socket as its own event.
pub(crate) async fn on_get_all<A: Adapter>(call: Call<A>) {
    let result = async {
        let limit = call.request(parse_get_all)?;
        let (messages, more) = ops::pending_page(call.hub(), &call.recipient()?, limit).await?;
        if call.wants_ack() {
            return Ok(ok_envelope(&GetAllAck {
                messages: &messages,
                more,
            }));
        }
        let socket = call.socket();
        for message in &messages {
            let event = status_event(message.status());
            if let Err(e) = socket.emit(event, &MessageEnvelope::from(message)) {
                tracing::warn!(ns = socket.ns(), sid = %socket.id, message = %message.id, error = %e, "could not re-emit a queued message; it stays queued");
                if drop_if_slow(call.hub(), socket, namespace_of(socket), &e) {
                    break;
                }
            }
        }
        Ok(Value::Null)
    }
    .await;
    call.answer(result);
}
