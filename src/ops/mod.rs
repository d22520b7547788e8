//! The hub's operations: submit a pickup, move an order, confirm a message,
//! read a queue, look up an order, count the queues, post and replay chat
//! messages.
//!
//! Each one is a plain async function over the hub state and its store,
//! with no Socket.IO or HTTP type in its signature. The namespace handlers
//! and the HTTP API are adapters: they parse the payload, call one
//! operation and answer, so a rule is written once and both doors obey it
//! by construction. Every store failure becomes a [`Refusal`] here, and
//! only here.
//!
//! An operation that queues a message hands it to a [`Notify`] right after
//! the commit; the Socket.IO layer implements it (emit to the recipient's
//! room), and the operation cannot forget it, whichever door it came in by.

pub(crate) mod chat;
mod orders;
mod queue;

use std::future::Future;

use crate::domain::Message;
use crate::protocol::{ErrorCode, Refusal};
use crate::store::StoreError;

pub(crate) use orders::{move_order, order_of, submit_pickup};
pub(crate) use queue::{confirm, pending_for, queue_depths};

/// Tells a message's recipient about it, right after it was committed.
///
/// The message is already in the queue: if nobody is online, or an emit
/// fails, it waits there for `getAll`. So this cannot fail; it logs.
pub(crate) trait Notify: Sync {
    fn deliver(&self, message: &Message) -> impl Future<Output = ()> + Send;
}

/// What the client is told when the store refused or failed; the cause of
/// a failure goes to the log, never to the client.
impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownOrder(order) => Refusal::new(
                ErrorCode::UnknownOrder,
                format!("order {order} does not exist"),
            ),
            StoreError::ConflictingPickup(order) => Refusal::new(
                ErrorCode::InvalidPayload,
                format!("orderId {order} was already used for a pickup with other details"),
            ),
            StoreError::Forbidden(order) => Refusal::new(
                ErrorCode::Forbidden,
                format!("order {order} was sent to another distributor"),
            ),
            e @ StoreError::InvalidTransition { .. } => {
                Refusal::new(ErrorCode::InvalidTransition, e.to_string())
            }
            e @ (StoreError::Backend { .. }
            | StoreError::Corrupt(_)
            | StoreError::Unavailable(_)) => {
                let cause = std::error::Error::source(&e).map(ToString::to_string);
                tracing::error!(error = %e, cause, "store failure");
                Refusal::internal()
            }
        }
    }
}
