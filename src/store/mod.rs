//! Durable orders and per-recipient message queues behind one small trait.
//!
//! The hub only ever talks to [`Store`]; the embedded SQLite backend and the
//! clustered backend are interchangeable and pass the same test suite
//! (`tests/hub/store.rs`). Every method that writes returns only after the
//! write is committed, which is what lets a handler ack `ok`.
//!
//! - [`SqliteStore`]: one file, one hub (the default).
//! - [`RedisStore`]: one Redis shared by every hub of a cluster (`--redis`).

mod redis;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{DistributorId, MessageId, Order, OrderId, Recipient, Status, VendorId};
use crate::protocol::{MessageEnvelope, PickupRequest};

pub use self::redis::{
    RedisStore, client as redis_client, connection_config as redis_connection_config,
};
pub use sqlite::{Durability, SqliteStore};

/// A shared handle to whichever backend runs. Cloning is shallow.
pub type SharedStore = Arc<dyn Store>;

/// What a write did: the order as it stands and the message it queued, if any.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub order: Order,
    /// `None` when the request repeated one already applied (idempotent retry).
    pub queued: Option<Queued>,
}

impl Recorded {
    pub fn duplicate(&self) -> bool {
        self.queued.is_none()
    }
}

/// A message that was committed to a recipient's queue.
#[derive(Debug, Clone)]
pub struct Queued {
    pub recipient: Recipient,
    pub envelope: MessageEnvelope,
}

/// The envelope a write queues: a fresh message id, the event, the order as it stands.
fn envelope(event: &str, order: &Order, at: DateTime<Utc>) -> MessageEnvelope {
    MessageEnvelope {
        message_id: MessageId::generate(),
        event: event.to_owned(),
        order: order.clone(),
        at: crate::domain::wire_time(at),
    }
}

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("order {0} does not exist")]
    UnknownOrder(OrderId),
    #[error("order {0} exists with other details")]
    ConflictingPickup(OrderId),
    #[error("order {0} is sent to another distributor")]
    Forbidden(OrderId),
    #[error("order {order} is {from}; it cannot become {to}")]
    InvalidTransition {
        order: OrderId,
        from: Status,
        to: Status,
    },
    /// The backend failed; the cause is for the log only.
    #[error("storage failure: {0}")]
    Backend(String),
}

/// Queue depth of one recipient, for the inspector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub owner: Recipient,
    pub depth: u64,
}

/// The hub's persistence. Methods are named for what they do.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which backend this is (`sqlite`, `redis`), for `/api/health`.
    fn kind(&self) -> &'static str;

    /// Creates a pending order and queues `pickup` for its distributor, or
    /// returns the stored order when the same request was already recorded.
    async fn record_pickup(
        &self,
        vendor: &VendorId,
        request: &PickupRequest,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError>;

    /// Moves an order on behalf of its distributor and queues the news for
    /// its vendor; a repeat of the current status queues nothing.
    async fn record_transition(
        &self,
        by: &DistributorId,
        vendor: &VendorId,
        order: &OrderId,
        to: Status,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError>;

    /// Removes a message from the recipient's queue; false if it was not there.
    async fn confirm(&self, recipient: &Recipient, message: &MessageId)
    -> Result<bool, StoreError>;

    /// Everything still queued for the recipient, oldest first.
    async fn pending_for(&self, recipient: &Recipient) -> Result<Vec<MessageEnvelope>, StoreError>;

    /// One order of a vendor.
    async fn order(&self, vendor: &VendorId, order: &OrderId) -> Result<Option<Order>, StoreError>;

    /// Every non-empty queue and its depth.
    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError>;

    /// Succeeds when the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
