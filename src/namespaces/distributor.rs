//! `/distributor`: delivery companies take pickups and move orders along.

use chrono::Utc;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;

use super::vendor::order_ack;
use super::{Session, answer, deliver, log_connected, log_disconnected, payload, refusal_from};
use crate::app::Hub;
use crate::domain::{DistributorId, Identity, Status};
use crate::protocol::{ConnectRefusal, Refusal, TransitionRequest, event, ns, transition_event};
use crate::rooms;
use crate::store::Recorded;

/// Connect middleware: `{ distributorId, token }` must match the credentials.
pub async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(hub): State<Hub>,
) -> Result<(), ConnectRefusal> {
    let result = super::credentials_from_auth(auth, DistributorId::FIELD, DistributorId::parse)
        .and_then(|(distributor, token)| {
            if hub.credentials.distributor_token_ok(&distributor, &token) {
                Ok(distributor)
            } else {
                Err(ConnectRefusal::Unauthorized(
                    "unknown distributor or wrong token".into(),
                ))
            }
        });
    super::settle(
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
pub async fn enter<A: Adapter>(
    socket: SocketRef<A>,
    Extension(distributor): Extension<DistributorId>,
) -> Result<(), ConnectRefusal> {
    socket.join(rooms::distributor(&distributor));
    socket.on(event::IN_TRANSIT, on_in_transit::<A>);
    socket.on(event::DELIVERED, on_delivered::<A>);
    socket.on(event::RECEIVED, super::queue::on_received::<A>);
    socket.on(event::GET_ALL, super::queue::on_get_all::<A>);
    socket.on_fallback(super::on_unknown_event::<A>);
    socket.on_disconnect(on_disconnect::<A>);
    Ok(())
}

/// The distributor is in: log it.
pub async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
) {
    log_connected(&hub, &socket, &session);
}

/// `in-transit { vendorId, orderId }`.
pub async fn on_in_transit<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    Extension(session): Extension<Session>,
    Extension(distributor): Extension<DistributorId>,
    State(hub): State<Hub>,
) {
    on_transition(
        socket,
        io,
        data,
        ack,
        session,
        distributor,
        hub,
        Status::InTransit,
    )
    .await;
}

/// `delivered { vendorId, orderId }`.
pub async fn on_delivered<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    Extension(session): Extension<Session>,
    Extension(distributor): Extension<DistributorId>,
    State(hub): State<Hub>,
) {
    on_transition(
        socket,
        io,
        data,
        ack,
        session,
        distributor,
        hub,
        Status::Delivered,
    )
    .await;
}

#[allow(clippy::too_many_arguments)]
async fn on_transition<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    session: Session,
    distributor: DistributorId,
    hub: Hub,
    to: Status,
) {
    let (payload, decoded) = payload(data);
    let result = match decoded.and_then(|()| session.admit()) {
        Ok(()) => move_order(&hub, &io, &distributor, &payload, to)
            .await
            .map(|recorded| order_ack(&recorded)),
        Err(refusal) => Err(refusal),
    };
    answer(
        &hub,
        &socket,
        &session,
        transition_event(to),
        &payload,
        ack,
        result,
    );
}

/// Applies a transition and tells the owning vendor.
pub async fn move_order<A: Adapter>(
    hub: &Hub,
    io: &SocketIo<A>,
    distributor: &DistributorId,
    payload: &Value,
    to: Status,
) -> Result<Recorded, Refusal> {
    let request = TransitionRequest::parse(payload)?;
    let recorded = hub
        .store
        .record_transition(
            distributor,
            &request.vendor_id,
            &request.order_id,
            to,
            Utc::now(),
        )
        .await
        .map_err(refusal_from)?;
    if let Some(queued) = &recorded.queued {
        deliver(hub, io, queued).await;
    }
    Ok(recorded)
}

pub async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    reason: DisconnectReason,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
) {
    log_disconnected(&hub, &socket, &session, reason);
}
