//! Durable orders and per-recipient message queues behind one small trait.
//!
//! The hub only ever talks to [`Store`]; the embedded SQLite backend and the
//! clustered backend are interchangeable and pass the same test suite
//! (`tests/hub/store.rs`). Every method that writes returns only after the
//! write is committed, which is what lets a handler ack `ok`.
//!
//! The store takes and returns domain values ([`Order`], [`Message`]) and
//! keeps its own row format with a schema version, migrated in order when a
//! file or a Redis written by an older release is opened: a change of the
//! wire protocol can never strand what is on disk.
//!
//! It also keeps the chat's history: the last [`CHAT_KEPT`] messages of
//! each chat room and of the whole namespace, each with its offset.
//!
//! - [`SqliteStore`]: one file, one hub (the default).
//! - [`RedisStore`]: one Redis shared by every hub of a cluster (`--redis`).

mod redis;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    ChatMessage, ChatPost, DistributorId, Message, MessageId, Order, OrderId, OrderPosition,
    Pickup, Recipient, RoomName, Status, StatusFilter, TransitionError, VendorId,
};

pub use self::redis::RedisStore;
pub(crate) use self::redis::{
    client as redis_client, connection_config as redis_connection_config,
};
pub use sqlite::{BackupReport, Durability, SqliteStore};

/// How many chat messages are kept per room, and for the whole namespace
/// (the messages sent to no room); older ones are dropped as new ones come.
pub const CHAT_KEPT: usize = 1_000;

/// A shared handle to whichever backend runs. Cloning is shallow.
pub type SharedStore = Arc<dyn Store>;

/// What a write did: the order as it stands and the message it queued, if any.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub order: Order,
    /// `None` when the request repeated one already applied (idempotent retry).
    pub queued: Option<Message>,
}

impl Recorded {
    pub fn duplicate(&self) -> bool {
        self.queued.is_none()
    }

    /// A write that changed `order` and queued the news of its new step.
    fn moved(order: Order) -> Self {
        let queued = Message::about(&order);
        Self {
            order,
            queued: Some(queued),
        }
    }

    /// A repeat of a write already applied: the order as it stands, nothing queued.
    fn repeated(order: Order) -> Self {
        Self {
            order,
            queued: None,
        }
    }
}

/// The cause of a backend failure, kept for the log (never sent to a client).
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

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
    /// The backend failed while doing `what`; the cause is for the log only.
    #[error("storage failure while {what}")]
    Backend {
        what: &'static str,
        #[source]
        cause: Cause,
    },
    /// Something stored could not be read back (a bug or a damaged file).
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    /// The store is not there to take the request (shut down, or its
    /// writer gone).
    #[error("the store is unavailable: {0}")]
    Unavailable(&'static str),
    /// The database cannot be used as given (held by another hub, not
    /// writable): said at start-up.
    #[error("{0}")]
    Unusable(String),
}

impl StoreError {
    /// A backend failure while doing `what`, keeping its cause.
    pub(crate) fn backend(
        what: &'static str,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Self {
        move |cause| StoreError::Backend {
            what,
            cause: Arc::from(cause),
        }
    }
}

impl From<TransitionError> for StoreError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::Forbidden { order } => StoreError::Forbidden(order),
            TransitionError::Invalid { order, from, to } => {
                StoreError::InvalidTransition { order, from, to }
            }
        }
    }
}

/// Queue depth of one recipient, for the inspector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub owner: Recipient,
    pub depth: u64,
}

/// What a listing of orders asks for: whose, which, how many, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderListing {
    /// A vendor (its own orders) or a distributor (those sent to it).
    pub party: Recipient,
    pub filter: StatusFilter,
    /// At most this many orders (the protocol keeps it to 1..=500).
    pub limit: usize,
    /// Only orders below this position (the end of the previous page).
    pub before: Option<OrderPosition>,
}

/// One page of a listing, most recently updated first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Where the next page starts below, or `None` on the last page.
    pub next: Option<OrderPosition>,
}

/// The hub's persistence. Methods are named for what they do.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which backend this is (`sqlite`, `redis`), for `/api/health`.
    fn kind(&self) -> &'static str;

    /// Creates a pending order for `vendor` and queues `pickup` for its
    /// distributor, or returns the stored order when the same pickup was
    /// already recorded.
    async fn record_pickup(
        &self,
        vendor: &VendorId,
        pickup: &Pickup,
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

    /// The oldest `limit` messages still queued for the recipient, oldest
    /// first (`usize::MAX`: all of them).
    async fn pending_for(
        &self,
        recipient: &Recipient,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;

    /// One order of a vendor.
    async fn order(&self, vendor: &VendorId, order: &OrderId) -> Result<Option<Order>, StoreError>;

    /// One page of a party's orders, most recently updated first (see
    /// [`OrderPosition`] for the order of ties). Each page is read on its
    /// own, in time proportional to its size, however many orders the
    /// party has: an order updated between two pages moves up, above
    /// where the reader started.
    async fn list_orders(&self, listing: &OrderListing) -> Result<OrderPage, StoreError>;

    /// Every non-empty queue and its depth.
    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError>;

    /// Keeps a chat message, with the next offset (greater than every
    /// offset given before, in any room), and drops the oldest of its room
    /// (or of the namespace-wide messages) beyond [`CHAT_KEPT`].
    async fn record_chat(&self, post: &ChatPost) -> Result<ChatMessage, StoreError>;

    /// The chat messages of `room` (`None`: those sent to the whole
    /// namespace) whose offset is greater than `after`: the newest `limit`
    /// of them, oldest first.
    async fn chat_after(
        &self,
        room: Option<&RoomName>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// Succeeds when the backend answers; answers only after every write
    /// handed to the store before it has been committed.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stops the store's threads and closes its files (the hub has
    /// stopped); every later call fails with `Unavailable`. A hub that
    /// stops within a running process (a `/learn` lesson hub) must not
    /// leave threads or open files behind, whoever still holds the store.
    async fn shutdown(&self) {}

    /// Succeeds when a write would be committed now: a write that changes
    /// nothing the hub keeps goes all the way through the write path, so a
    /// read-only or full disk (or a Redis that refuses writes) fails it.
    /// For `/api/health`.
    async fn check_write(&self) -> Result<(), StoreError>;

    /// Records how long each commit takes in `commits`
    /// (`parcel_hub_store_commit_duration_seconds`); called once, when the
    /// hub's metrics exist.
    fn observe_commits(&self, commits: ::metrics::Histogram);

    /// Deletes up to `at_most` delivered orders that were delivered before
    /// `cutoff` and have no message left in any queue (`--retain-delivered`),
    /// in small writes that other writes pass between; returns how many.
    /// A message still queued keeps its order, whatever its age.
    async fn delete_delivered_before(
        &self,
        cutoff: DateTime<Utc>,
        at_most: usize,
    ) -> Result<u64, StoreError> {
        let _unused = (cutoff, at_most);
        Err(StoreError::Unavailable(
            "this store does not delete delivered orders",
        ))
    }
}
