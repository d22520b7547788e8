//! Chat messages as the hub keeps them: what was said, by whom, where and
//! when, and the offset the store gave it.
//!
//! An offset is a number that grows with every chat message the store
//! keeps (in any room), so "everything after offset n" is how a client
//! that was away asks for what it missed.

use chrono::{DateTime, Utc};

use super::{ChatName, RoomName};

/// A chat message about to be stored: it has no offset yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPost {
    pub from: ChatName,
    pub text: String,
    /// The room it was said in; `None` for the whole namespace.
    pub room: Option<RoomName>,
    pub at: DateTime<Utc>,
}

/// A stored chat message: the post and its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub offset: u64,
    pub post: ChatPost,
}
