//! The Socket.IO namespaces: the only place that calls `io.ns(..)`.
//!
//! Each namespace file has the same shape: `authenticate` (connect
//! middleware), `enter` (connect middleware: rooms and handler
//! registration), `on_connect` (logs, announcements), one `on_<event>`
//! function per event, and `on_disconnect`. Handlers are adapters: they
//! take a [`Call`] (the payload, the sender's session and budget, the ack),
//! parse the payload, call one operation of [`crate::ops`] and answer.
//!
//! - [`call`]: the one handler shape (decode, rate check, answer, log);
//! - [`connect`]: what every connect middleware shares (auth fields,
//!   refusals, connection logs) and the per-socket [`Session`];
//! - [`courier`]: every emit the hub makes, logged and fed to the inspector,
//!   and the delivery of queued messages to their recipient's room;
//! - [`sockets`]: the sockets of every hub, for the inspector.
//! - [`admin`]: the official Socket.IO Admin UI's namespace, fed like the
//!   inspector.
//! - [`caps`]: learners' own CAPS lab clients (`/caps`, served with the
//!   demo credentials or `--caps`).
//! - [`refused`]: every other namespace, refused as Socket.IO does, but
//!   logged and shown in the feed.
//!
//! Rooms and handlers are set up in a middleware, not in `on_connect`,
//! because socketioxide sends CONNECT to the client first and only then
//! spawns the connect handler: a client that emits the moment it is
//! connected could beat the registration, and socketioxide drops an event
//! that has no handler without a word (no ack, no log). Middlewares run
//! before CONNECT is sent.

pub(crate) mod admin;
pub(crate) mod call;
pub(crate) mod caps;
pub(crate) mod chat;
pub(crate) mod connect;
pub(crate) mod courier;
pub(crate) mod distributor;
pub(crate) mod inspector;
pub(crate) mod orders;
pub(crate) mod queue;
pub(crate) mod refused;
pub(crate) mod sockets;
pub(crate) mod vendor;

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::handler::ConnectHandler;

pub(crate) use call::Call;
pub(crate) use connect::Session;
pub(crate) use courier::Courier;

use crate::cluster::HubAdapter;
use crate::domain::Recipient;
use crate::protocol::{OrderAck, OrderView, OrdersAck, OrdersRequest, ns, ok_envelope};
use crate::store::{OrderPage, Recorded};

/// A namespace that could not be set up (its adapter could not start).
#[derive(Debug, thiserror::Error)]
#[error("namespace {namespace} could not start: {cause}")]
pub(crate) struct RegisterError {
    pub namespace: &'static str,
    pub cause: String,
}

/// Registers every namespace on `io` (`/caps` when `serve_caps`). There
/// is deliberately no `/`: it, and any other name, reaches [`refused`].
pub(crate) async fn register<A: HubAdapter>(
    io: &SocketIo<A>,
    serve_caps: bool,
) -> Result<(), RegisterError> {
    let ready = |namespace: &'static str, init| async move {
        A::ready(init)
            .await
            .map_err(|cause| RegisterError { namespace, cause })
    };
    ready(
        ns::VENDOR,
        io.ns(
            ns::VENDOR,
            connect::on_connect_logged
                .with(vendor::enter)
                .with(vendor::authenticate),
        ),
    )
    .await?;
    ready(
        ns::DISTRIBUTOR,
        io.ns(
            ns::DISTRIBUTOR,
            connect::on_connect_logged
                .with(distributor::enter)
                .with(distributor::authenticate),
        ),
    )
    .await?;
    ready(
        ns::CHAT,
        io.ns(
            ns::CHAT,
            chat::on_connect.with(chat::enter).with(chat::authenticate),
        ),
    )
    .await?;
    ready(
        ns::INSPECTOR,
        io.ns(
            ns::INSPECTOR,
            inspector::on_connect
                .with(inspector::enter)
                .with(inspector::authenticate),
        ),
    )
    .await?;
    ready(
        ns::ADMIN,
        io.ns(
            ns::ADMIN,
            admin::on_connect
                .with(admin::enter)
                .with(admin::authenticate),
        ),
    )
    .await?;
    if serve_caps {
        ready(
            ns::CAPS,
            io.ns(
                ns::CAPS,
                connect::on_connect_logged
                    .with(caps::enter)
                    .with(caps::authenticate),
            ),
        )
        .await?;
    }
    for pattern in refused::PATTERNS {
        io.dyn_ns(pattern, refused::on_connect.with(refused::refuse))
            .map_err(|e| RegisterError {
                namespace: pattern,
                cause: e.to_string(),
            })?;
    }
    Ok(())
}

/// The ack of a write, over either door: `{ ok, order, messageId, duplicate }`.
pub(crate) fn order_ack(recorded: &Recorded) -> Value {
    ok_envelope(&OrderAck {
        order: OrderView::from(&recorded.order),
        message_id: recorded.queued.as_ref().map(|m| &m.id),
        duplicate: recorded.duplicate(),
    })
}

/// The answer of a listing, over either door: `{ ok, orders, next }`.
pub(crate) fn orders_ack(party: &Recipient, request: &OrdersRequest, page: &OrderPage) -> Value {
    ok_envelope(&OrdersAck::new(
        &page.orders,
        party,
        request.filter,
        page.next.as_ref(),
    ))
}
