//! Orders: a vendor's pickup, a distributor's transitions, one order's lookup.

use chrono::Utc;

use super::Notify;
use crate::domain::{DistributorId, Order, OrderId, Pickup, Status, VendorId};
use crate::protocol::{ErrorCode, Refusal};
use crate::state::HubState;
use crate::store::Recorded;

/// A vendor asks for a pickup: the order is recorded and `pickup` queued
/// for its distributor (and delivered), or the stored order is returned
/// when the same pickup was already recorded.
pub(crate) async fn submit_pickup(
    hub: &HubState,
    notify: &impl Notify,
    vendor: &VendorId,
    pickup: Pickup,
) -> Result<Recorded, Refusal> {
    if !hub.credentials.is_distributor(&pickup.distributor_id) {
        return Err(Refusal::new(
            ErrorCode::UnknownDistributor,
            format!("distributor {} does not exist", pickup.distributor_id),
        ));
    }
    let recorded = hub.store.record_pickup(vendor, &pickup, Utc::now()).await?;
    if let Some(message) = &recorded.queued {
        hub.metrics.message_queued(&message.recipient);
        notify.deliver(message).await;
    }
    Ok(recorded)
}

/// A distributor moves one of its orders to `to`; the news is queued for
/// the vendor (and delivered). A repeat of the current status queues nothing.
pub(crate) async fn move_order(
    hub: &HubState,
    notify: &impl Notify,
    by: &DistributorId,
    vendor: &VendorId,
    order: &OrderId,
    to: Status,
) -> Result<Recorded, Refusal> {
    let recorded = hub
        .store
        .record_transition(by, vendor, order, to, Utc::now())
        .await?;
    if let Some(message) = &recorded.queued {
        hub.metrics.message_queued(&message.recipient);
        notify.deliver(message).await;
    }
    Ok(recorded)
}

/// One order of `vendor`, or `unknown_order`.
pub(crate) async fn order_of(
    hub: &HubState,
    vendor: &VendorId,
    order: &OrderId,
) -> Result<Order, Refusal> {
    hub.store.order(vendor, order).await?.ok_or_else(|| {
        Refusal::new(
            ErrorCode::UnknownOrder,
            format!("order {order} does not exist"),
        )
    })
}
