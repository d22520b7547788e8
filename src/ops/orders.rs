//! Orders: a vendor's pickup, a distributor's transitions, one order's
//! lookup, a party's listing.

use chrono::Utc;

use super::{Notify, tell_parties};
use crate::domain::{
    DistributorId, LAB_DRIVERS, Order, OrderId, Pickup, Recipient, Status, VendorId,
    is_lab_drivers, is_reserved,
};
use crate::protocol::{ErrorCode, OrdersRequest, Refusal};
use crate::state::HubState;
use crate::store::{OrderListing, OrderPage, Recorded};

/// A vendor asks for a pickup: the order is recorded and `pickup` queued
/// for its distributor (and delivered), and the vendor's other pages are
/// told; or the stored order is returned when the same pickup was already
/// recorded.
pub(crate) async fn submit_pickup(
    hub: &HubState,
    notify: &impl Notify,
    vendor: &VendorId,
    pickup: Pickup,
) -> Result<Recorded, Refusal> {
    check_route(hub, vendor, &pickup.distributor_id)?;
    if is_reserved(vendor.as_str()) {
        super::caps::check_lab_pickup(hub, vendor, &pickup.order_id).await?;
    }
    let recorded = hub.store.record_pickup(vendor, &pickup, Utc::now()).await?;
    tell_parties(hub, notify, &recorded).await;
    Ok(recorded)
}

/// Whether `vendor` may send a pickup to `distributor`: a configured
/// vendor to a configured distributor, a lab store to the lab drivers, and
/// never across (the sandbox is kept apart from real parties).
fn check_route(
    hub: &HubState,
    vendor: &VendorId,
    distributor: &DistributorId,
) -> Result<(), Refusal> {
    match (is_reserved(vendor.as_str()), is_lab_drivers(distributor)) {
        (true, true) => Ok(()),
        (true, false) => Err(Refusal::new(
            ErrorCode::Forbidden,
            format!(
                "lab store {vendor} sends pickups to {LAB_DRIVERS} only: the sandbox is kept apart from real distributors"
            ),
        )),
        (false, true) => Err(Refusal::new(
            ErrorCode::UnknownDistributor,
            format!("distributor {LAB_DRIVERS} takes the pickups of /caps lab stores only"),
        )),
        (false, false) if hub.credentials.is_distributor(distributor) => Ok(()),
        (false, false) => Err(Refusal::new(
            ErrorCode::UnknownDistributor,
            format!("distributor {distributor} does not exist"),
        )),
    }
}

/// A distributor moves one of its orders to `to`; the news is queued for
/// the vendor (and delivered), and the distributor's other pages are told.
/// A repeat of the current status queues and tells nothing.
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
    tell_parties(hub, notify, &recorded).await;
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

/// A page of `party`'s orders (a vendor's own; a distributor's, those sent
/// to it), from the store's read path.
pub(crate) async fn list_orders(
    hub: &HubState,
    party: &Recipient,
    request: &OrdersRequest,
) -> Result<OrderPage, Refusal> {
    let listing = OrderListing {
        party: party.clone(),
        filter: request.filter,
        limit: request.limit,
        before: request.before.clone(),
    };
    Ok(hub.store.list_orders(&listing).await?)
}
