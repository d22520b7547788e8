//! The queues: what waits for a recipient, its confirmation, their depths.
//!
//! A queue belongs to an identity, not to a connection: any socket of that
//! vendor or distributor reads and confirms it.

use crate::domain::{Message, MessageId, Recipient};
use crate::protocol::Refusal;
use crate::state::HubState;
use crate::store::QueueDepth;

/// Removes a message from `recipient`'s queue; false if it was already gone.
pub(crate) async fn confirm(
    hub: &HubState,
    recipient: &Recipient,
    message: &MessageId,
) -> Result<bool, Refusal> {
    let removed = hub.store.confirm(recipient, message).await?;
    if removed {
        hub.metrics.message_confirmed(recipient);
    }
    Ok(removed)
}

/// Everything still queued for `recipient`, oldest first (for the
/// sandbox's own look-ups, whose queues it bounds).
pub(crate) async fn pending_for(
    hub: &HubState,
    recipient: &Recipient,
) -> Result<Vec<Message>, Refusal> {
    Ok(hub.store.pending_for(recipient, usize::MAX).await?)
}

/// The oldest `limit` messages queued for `recipient`, and whether more
/// wait past them: `getAll` never loads a whole queue of any length.
pub(crate) async fn pending_page(
    hub: &HubState,
    recipient: &Recipient,
    limit: usize,
) -> Result<(Vec<Message>, bool), Refusal> {
    let mut messages = hub
        .store
        .pending_for(recipient, limit.saturating_add(1))
        .await?;
    let more = messages.len() > limit;
    messages.truncate(limit);
    Ok((messages, more))
}

/// Every non-empty queue and its depth.
pub(crate) async fn queue_depths(hub: &HubState) -> Result<Vec<QueueDepth>, Refusal> {
    Ok(hub.store.queue_depths().await?)
}
