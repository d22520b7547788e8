//! `/distributor`: delivery companies take pickups and move orders along.

use crate::activity;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State, TryData};

use super::connect::{party_from_auth, register_party_events, settle};
use super::{Call, Courier, order_ack};
use crate::domain::{DistributorId, Identity, Status};
use crate::ops;
use crate::protocol::{ConnectRefusal, TransitionRequest, event, ns};
use crate::rooms;
use crate::state::Hub;

/// Connect middleware: `{ distributorId, token }` must match the credentials
/// (the lab drivers, `caps.drivers`, need no token while `/caps` is served).
pub(crate) async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(hub): State<Hub>,
) -> Result<(), ConnectRefusal> {
    let result = party_from_auth(
        &auth,
        DistributorId::FIELD,
        DistributorId::parse,
        DistributorId::as_str,
        |distributor, token| hub.distributor_sign_in(distributor, token),
    );
    settle(
        &socket,
        &hub,
        ns::DISTRIBUTOR,
        result,
        Identity::Distributor,
    )
}

/// Connect middleware, after `authenticate`: joins the distributor's room
/// and registers its events before the client hears CONNECT (see [`super`]
/// for why this is not done in `on_connect`).
pub(crate) async fn enter<A: Adapter>(
    socket: SocketRef<A>,
    Extension(distributor): Extension<DistributorId>,
) -> Result<(), ConnectRefusal> {
    socket.join(rooms::distributor(&distributor));
    socket.on(
        event::IN_TRANSIT,
        |call: Call<A>, io: SocketIo<A>, distributor: Extension<DistributorId>| {
            let hub = call.hub().clone();
            async move {
                activity::cause_first(&hub.activity, on_in_transit(call, io, distributor)).await
            }
        },
    );
    socket.on(
        event::DELIVERED,
        |call: Call<A>, io: SocketIo<A>, distributor: Extension<DistributorId>| {
            let hub = call.hub().clone();
            async move {
                activity::cause_first(&hub.activity, on_delivered(call, io, distributor)).await
            }
        },
    );
    register_party_events(&socket);
    Ok(())
}

/// `in-transit { vendorId, orderId }`.
pub(crate) async fn on_in_transit<A: Adapter>(
    call: Call<A>,
    io: SocketIo<A>,
    Extension(distributor): Extension<DistributorId>,
) {
    transition(call, io, distributor, Status::InTransit).await;
}

/// `delivered { vendorId, orderId }`.
pub(crate) async fn on_delivered<A: Adapter>(
    call: Call<A>,
    io: SocketIo<A>,
    Extension(distributor): Extension<DistributorId>,
) {
    transition(call, io, distributor, Status::Delivered).await;
}

/// Moves the order and tells its vendor.
async fn transition<A: Adapter>(call: Call<A>, io: SocketIo<A>, by: DistributorId, to: Status) {
    // The answer takes `call`; the courier settles the step around it.
    let (hub, sender) = (call.hub().clone(), call.socket().clone());
    let courier = Courier::for_sender(&io, &hub, &sender);
    let result = async {
        let request = call.request(TransitionRequest::parse)?;
        let recorded = ops::move_order(
            call.hub(),
            &courier,
            &by,
            &request.vendor_id,
            &request.order_id,
            to,
        )
        .await?;
        Ok(order_ack(&recorded))
    }
    .await;
    courier.settle(|| call.answer(result)).await;
}
