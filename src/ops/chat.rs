//! The chat's history: a message is stored (and given its offset) before
//! it is relayed, and a client that was away is handed what it missed.
//!
//! Both go through the hub's chat gate ([`crate::state::ChatState`]): a
//! message is stored and relayed under a shared hold, a replay is read and
//! handed over under an exclusive one, so on this hub a live message never
//! reaches a socket before its replay, nor falls between the two.

use std::future::Future;

use tokio::sync::RwLockWriteGuard;

use crate::domain::{ChatMessage, ChatPost, RoomName};
use crate::protocol::Refusal;
use crate::state::HubState;

/// Sends a freshly stored chat message to its audience (the Socket.IO
/// layer: everyone but the sender, or the sender's room). It is already
/// stored: if an emit fails, it is logged and the history still has it.
pub(crate) trait Relay: Sync {
    fn relay(&self, message: &ChatMessage) -> impl Future<Output = ()> + Send;
}

/// Stores `post`, then relays it; returns it with its offset.
pub(crate) async fn post(
    hub: &HubState,
    relay: &impl Relay,
    post: ChatPost,
) -> Result<ChatMessage, Refusal> {
    let _relaying = hub.chat.quiet.read().await;
    let message = hub.store.record_chat(&post).await?;
    relay.relay(&message).await;
    Ok(message)
}

/// What a socket missed, read while no chat message is relayed on this
/// hub: until the replay is dropped, nothing overtakes what the caller
/// sends with it.
#[derive(Debug)]
pub(crate) struct Replay<'a> {
    pub history: Vec<ChatMessage>,
    _quiet: RwLockWriteGuard<'a, ()>,
}

/// Calls `enter` (the socket starts hearing live messages of `room`, or of
/// the whole namespace), then reads the newest `limit` messages there after
/// `after`. Entering first means that a message from another hub of a
/// cluster is at worst heard twice (clients de-duplicate on the offset),
/// never missed.
pub(crate) async fn replay<'a>(
    hub: &'a HubState,
    room: Option<&RoomName>,
    after: u64,
    limit: usize,
    enter: impl FnOnce(),
) -> Result<Replay<'a>, Refusal> {
    let quiet = hub.chat.quiet.write().await;
    enter();
    let history = hub.store.chat_after(room, after, limit).await?;
    Ok(Replay {
        history,
        _quiet: quiet,
    })
}
