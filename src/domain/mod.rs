//! Domain values, parsed once at the edge.
//!
//! Handlers never hold a raw `String` they have not validated: identities,
//! order ids and statuses are newtypes and enums built here, so a value that
//! exists is a value that is allowed. Parsing errors carry a sentence that is
//! safe to send back to the client. Nothing here knows the wire format or
//! the storage format: the protocol and the store each keep
//! their own, built from these types.

mod chat;
mod ids;
mod lab;
mod listing;
mod order;

pub use chat::{ChatMessage, ChatPost};
pub use ids::{ChatName, DistributorId, Identity, MessageId, OrderId, RoomName, VendorId};
pub use lab::{LAB_DRIVERS, LAB_PREFIX, LabStore, is_lab_drivers, is_reserved, lab_drivers};
pub use listing::{OrderPosition, StatusFilter};
pub use order::{
    HistoryEntry, Message, Order, Pickup, Recipient, Status, TransitionError, TransitionOutcome,
    millis,
};

/// Why a value from the outside was not accepted; the text is for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);
