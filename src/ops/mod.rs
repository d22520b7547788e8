//! The hub's operations: submit a pickup, move an order, confirm a message,
//! read a queue, look up an order, list a party's orders, count the queues,
//! post and replay chat messages; and the same for the `/caps` sandbox's
//! lab clients ([`caps`]).
//!
//! Each one is a plain async function over the hub state and its store,
//! with no Socket.IO or HTTP type in its signature. The namespace handlers
//! and the HTTP API are adapters: they parse the payload, call one
//! operation and answer, so a rule is written once and both doors obey it
//! by construction. Every store failure becomes a [`Refusal`] here, and
//! only here.
//!
//! An operation that queues a message hands it to a [`Notify`] right after
//! the commit, with the order's new state for the other pages of the party
//! that took the step; the Socket.IO layer implements it (emits to the
//! parties' rooms), and the operation cannot forget it, whichever door it
//! came in by.

pub(crate) mod caps;
pub(crate) mod chat;
mod orders;
mod queue;

use std::future::Future;

use crate::domain::{Message, Order, Recipient};
use crate::protocol::{ErrorCode, Refusal};
use crate::state::HubState;
use crate::store::{Recorded, StoreError};

pub(crate) use orders::{list_orders, move_order, order_of, submit_pickup};
pub(crate) use queue::{confirm, pending_for, pending_page, queue_depths};

/// Tells a message's recipient about it, right after it was committed.
///
/// The message is already in the queue: if nobody is online, or an emit
/// fails, it waits there for `getAll`. So this cannot fail; it logs.
pub(crate) trait Notify: Sync {
    fn deliver(&self, message: &Message) -> impl Future<Output = ()> + Send;

    /// Tells the other open pages of `party` how `order` stands now: the
    /// live `order` notice, not queued (the queued message went to the
    /// other party). Like `deliver`, it cannot fail; it logs.
    fn announce(&self, party: &Recipient, order: &Order) -> impl Future<Output = ()> + Send;
}

/// Tells both parties of a step just committed: the queued message to the
/// one that must hear of it, the new state to the other pages of the one
/// that took it (and counts the message). A repeat changed nothing and
/// tells nobody.
async fn tell_parties(hub: &HubState, notify: &impl Notify, recorded: &Recorded) {
    if let Some(message) = &recorded.queued {
        caps::count_open(hub, message);
        hub.metrics.message_queued(&message.recipient);
        notify.deliver(message).await;
        notify.announce(&message.author(), &recorded.order).await;
    }
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
            | StoreError::Unavailable(_)
            | StoreError::Unusable(_)) => {
                let cause = std::error::Error::source(&e).map(ToString::to_string);
                tracing::error!(error = %e, cause, "store failure");
                Refusal::internal()
            }
        }
    }
}
