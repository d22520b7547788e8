//! `/vendor`: shops ask for pickups and hear back about their orders.

use chrono::Utc;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;

use super::{Session, answer, deliver, log_connected, log_disconnected, payload, refusal_from};
use crate::app::Hub;
use crate::domain::{Identity, VendorId};
use crate::protocol::{
    ConnectRefusal, ErrorCode, OrderAck, PickupRequest, Refusal, event, ns, ok_envelope,
};
use crate::rooms;
use crate::store::Recorded;

/// Connect middleware: `{ vendorId, token }` must match the credentials.
pub async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(hub): State<Hub>,
) -> Result<(), ConnectRefusal> {
    let result = super::credentials_from_auth(auth, VendorId::FIELD, VendorId::parse).and_then(
        |(vendor, token)| {
            if hub.credentials.vendor_token_ok(&vendor, &token) {
                Ok(vendor)
            } else {
                Err(ConnectRefusal::Unauthorized(
                    "unknown vendor or wrong token".into(),
                ))
            }
        },
    );
    super::settle(&socket, &hub, ns::VENDOR, result, Identity::Vendor)
}

/// Connect middleware, after `authenticate`: joins the vendor's room and
/// registers the vendor's events before the client hears CONNECT (see
/// [`super`] for why this is not done in `on_connect`).
pub async fn enter<A: Adapter>(
    socket: SocketRef<A>,
    Extension(vendor): Extension<VendorId>,
) -> Result<(), ConnectRefusal> {
    socket.join(rooms::vendor(&vendor));
    socket.on(event::PICKUP, on_pickup::<A>);
    socket.on(event::RECEIVED, super::queue::on_received::<A>);
    socket.on(event::GET_ALL, super::queue::on_get_all::<A>);
    socket.on_fallback(super::on_unknown_event::<A>);
    socket.on_disconnect(on_disconnect::<A>);
    Ok(())
}

/// The vendor is in: log it.
pub async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
) {
    log_connected(&hub, &socket, &session);
}

/// `pickup`: record the order, queue it for the distributor, tell them.
pub async fn on_pickup<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    Extension(session): Extension<Session>,
    Extension(vendor): Extension<VendorId>,
    State(hub): State<Hub>,
) {
    let (payload, decoded) = payload(data);
    let result = match decoded.and_then(|()| session.admit()) {
        Ok(()) => submit_pickup(&hub, &io, &vendor, &payload)
            .await
            .map(|recorded| order_ack(&recorded)),
        Err(refusal) => Err(refusal),
    };
    answer(
        &hub,
        &socket,
        &session,
        event::PICKUP,
        &payload,
        ack,
        result,
    );
}

/// The pickup itself, shared by the `pickup` event and `POST /api/pickups`.
pub async fn submit_pickup<A: Adapter>(
    hub: &Hub,
    io: &SocketIo<A>,
    vendor: &VendorId,
    payload: &Value,
) -> Result<Recorded, Refusal> {
    let request = PickupRequest::parse(payload)?;
    if !hub.credentials.is_distributor(&request.distributor_id) {
        return Err(Refusal::new(
            ErrorCode::UnknownDistributor,
            format!("distributor {} does not exist", request.distributor_id),
        ));
    }
    let recorded = hub
        .store
        .record_pickup(vendor, &request, Utc::now())
        .await
        .map_err(refusal_from)?;
    if let Some(queued) = &recorded.queued {
        deliver(hub, io, queued).await;
    }
    Ok(recorded)
}

/// The ack of a write: `{ ok, order, messageId, duplicate }`.
pub fn order_ack(recorded: &Recorded) -> Value {
    ok_envelope(&OrderAck {
        order: &recorded.order,
        message_id: recorded.queued.as_ref().map(|q| &q.envelope.message_id),
        duplicate: recorded.duplicate(),
    })
}

pub async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    reason: DisconnectReason,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
) {
    log_disconnected(&hub, &socket, &session, reason);
}
