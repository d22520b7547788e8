//! `/vendor`: shops ask for pickups and hear back about their orders.

use super::call::cause_first;
use crate::activity;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;

use super::connect::{log_connected, log_disconnected, party_from_auth, settle};
use super::{Call, Courier, Session, order_ack, orders, queue};
use crate::domain::{Identity, VendorId};
use crate::ops;
use crate::protocol::{ConnectRefusal, event, ns, parse_pickup};
use crate::rooms;
use crate::state::Hub;

/// Connect middleware: `{ vendorId, token }` must match the credentials
/// (a lab store, `caps.…`, needs no token while `/caps` is served).
pub(crate) async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(hub): State<Hub>,
) -> Result<(), ConnectRefusal> {
    let result = party_from_auth(
        &auth,
        VendorId::FIELD,
        VendorId::parse,
        VendorId::as_str,
        |vendor, token| hub.vendor_sign_in(vendor, token),
    );
    settle(&socket, &hub, ns::VENDOR, result, Identity::Vendor)
}

/// Connect middleware, after `authenticate`: joins the vendor's room and
/// registers the vendor's events before the client hears CONNECT (see
/// [`super`] for why this is not done in `on_connect`).
pub(crate) async fn enter<A: Adapter>(
    socket: SocketRef<A>,
    Extension(vendor): Extension<VendorId>,
) -> Result<(), ConnectRefusal> {
    socket.join(rooms::vendor(&vendor));
    socket.on(
        event::PICKUP,
        |call: Call<A>, io: SocketIo<A>, vendor: Extension<VendorId>| {
            let hub = call.hub().clone();
            async move { activity::cause_first(&hub.activity, on_pickup(call, io, vendor)).await }
        },
    );
    socket.on(event::RECEIVED, cause_first(queue::on_received::<A>));
    socket.on(event::GET_ALL, cause_first(queue::on_get_all::<A>));
    socket.on(event::ORDERS, cause_first(orders::on_orders::<A>));
    socket.on_fallback(cause_first(super::call::on_unknown_event::<A>));
    socket.on_disconnect(on_disconnect::<A>);
    Ok(())
}

/// The vendor is in: log it.
pub(crate) async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
) {
    log_connected(&hub, &socket, &session);
}

/// `pickup`: record the order, queue it for the distributor, tell them.
pub(crate) async fn on_pickup<A: Adapter>(
    call: Call<A>,
    io: SocketIo<A>,
    Extension(vendor): Extension<VendorId>,
) {
    let result = async {
        let pickup = call.request(parse_pickup)?;
        let courier = Courier::for_sender(&io, call.hub(), call.socket());
        let recorded = ops::submit_pickup(call.hub(), &courier, &vendor, pickup).await?;
        Ok(order_ack(&recorded))
    }
    .await;
    call.answer(result);
}

pub(crate) async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    reason: DisconnectReason,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
) {
    log_disconnected(&hub, &socket, &session, reason);
}
