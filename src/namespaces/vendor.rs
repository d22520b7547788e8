//! `/vendor`: shops ask for pickups and hear back about their orders.

use crate::activity;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State, TryData};

use super::connect::{party_from_auth, register_party_events, settle};
use super::{Call, Courier, order_ack};
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
    register_party_events(&socket);
    Ok(())
}

/// `pickup`: record the order, queue it for the distributor, tell them.
pub(crate) async fn on_pickup<A: Adapter>(
    call: Call<A>,
    io: SocketIo<A>,
    Extension(vendor): Extension<VendorId>,
) {
    // The answer takes `call`; the courier settles the step around it.
    let (hub, sender) = (call.hub().clone(), call.socket().clone());
    let courier = Courier::for_sender(&io, &hub, &sender);
    let result = async {
        let pickup = call.request(parse_pickup)?;
        let recorded = ops::submit_pickup(call.hub(), &courier, &vendor, pickup).await?;
        Ok(order_ack(&recorded))
    }
    .await;
    courier.settle(|| call.answer(result)).await;
}
