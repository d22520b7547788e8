//! The yardstick: a bare socketioxide relay with the same rooms and events
//! as the hub but no validation, no queue and no logging. The load
//! generator measures it with the same workloads (`--relay-only`), so the
//! hub's numbers read as a fraction of what socketioxide itself does here.
//!
//! A pickup goes out wrapped like the hub's message envelope
//! (`{ messageId, event, order: { .., status, createdAt, updatedAt,
//! history }, at }`), about 390 bytes instead of the 110-byte request:
//! the wire carries the same bytes for both, so the comparison measures
//! the hub's own work rather than PROTOCOL.md's payload size. (Forwarding
//! the bare request instead, the relay ran about 10 % faster on W1 here:
//! the hub measured 62 % of it, and 74 % of this one in the next set.)
//!
//! `/chat` sends the frames PROTOCOL.md asks of any chat server, like
//! socketioxide's own chat example: the newcomer hears `users { users,
//! online }`, everyone else `user connected { name, online }`, and a
//! departure is told as `user disconnected`. (Without them the relay sent
//! a third fewer frames in a join storm, and W4 compared the protocol's
//! frame count rather than the hub's work: 1.96x against 1.45x with the
//! hub's notices switched off.)

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef, State};
use socketioxide::handler::ConnectHandler;

/// Serves the relay on `listener` until the process ends.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    socket_buffer: usize,
) -> anyhow::Result<()> {
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(socket_buffer)
        .with_state(Online::default())
        .build_layer();

    // Rooms and handlers are set up in middlewares, which run before the
    // client hears CONNECT (a connect handler runs after, and would race
    // the client's first event).
    io.ns("/distributor", noop.with(join_distributor_room));
    io.ns("/vendor", noop.with(register_vendor));
    io.ns("/chat", arrive.with(register_chat));

    let app = axum::Router::new().layer(layer);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app).await?;
    Ok(())
}

async fn noop() {}

async fn join_distributor_room(socket: SocketRef, Data(auth): Data<Value>) -> Result<(), Refused> {
    let id = auth["distributorId"].as_str().ok_or(Refused)?;
    socket.join(format!("distributor:{id}"));
    Ok(())
}

async fn register_vendor(socket: SocketRef) -> Result<(), Refused> {
    socket.on("pickup", on_pickup);
    Ok(())
}

async fn register_chat(socket: SocketRef) -> Result<(), Refused> {
    socket.on("chat message", on_chat_message);
    Ok(())
}

/// The names of the connected chat sockets, in order of arrival.
#[derive(Clone, Default)]
struct Online(Arc<Mutex<Vec<(socketioxide::socket::Sid, String)>>>);

impl Online {
    /// Runs `change` on the list and answers the names after it; a
    /// poisoned lock (a panic elsewhere) is taken over, never re-panicked.
    fn change(
        &self,
        change: impl FnOnce(&mut Vec<(socketioxide::socket::Sid, String)>),
    ) -> Vec<String> {
        let mut list = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut list);
        list.iter().map(|(_, name)| name.clone()).collect()
    }
}

/// Tells the newcomer who is here and everyone else who came; the same
/// frames the hub sends, without the hub's checks, batching or history.
async fn arrive(socket: SocketRef, Data(auth): Data<Value>, State(online): State<Online>) {
    let name = auth["name"].as_str().unwrap_or("someone").to_owned();
    let users = online.change(|list| list.push((socket.id, name.clone())));
    let count = users.len();
    if let Err(e) = socket.emit("users", &json!({ "users": users, "online": count })) {
        tracing::warn!(error = %e, "relay emit failed");
    }
    if let Err(e) = socket
        .broadcast()
        .emit("user connected", &json!({ "name": name, "online": count }))
        .await
    {
        tracing::warn!(error = %e, "relay broadcast failed");
    }
    socket.on_disconnect(
        async move |socket: SocketRef, State(online): State<Online>| {
            let left = online.change(|list| list.retain(|(sid, _)| *sid != socket.id));
            let notice = json!({ "name": name, "online": left.len() });
            if let Err(e) = socket.broadcast().emit("user disconnected", &notice).await {
                tracing::warn!(error = %e, "relay broadcast failed");
            }
        },
    );
}

async fn on_pickup(io: SocketIo, Data(payload): Data<Value>, ack: AckSender) {
    let room = format!(
        "distributor:{}",
        payload["distributorId"].as_str().unwrap_or_default()
    );
    if let Some(ns) = io.of("/distributor")
        && let Err(e) = ns.to(room).emit("pickup", &envelope_like(payload)).await
    {
        tracing::warn!(error = %e, "relay emit failed");
    }
    if let Err(e) = ack.send(&json!({ "ok": true })) {
        tracing::warn!(error = %e, "relay ack failed");
    }
}

/// The request in the shape (and size) of the hub's message envelope;
/// nothing is checked, and the fields the hub would add are filled in blindly.
fn envelope_like(mut order: Value) -> Value {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if let Some(fields) = order.as_object_mut() {
        fields.insert("vendorId".into(), Value::from("relay"));
        fields.insert("status".into(), Value::from("pending"));
        fields.insert("createdAt".into(), Value::from(at.clone()));
        fields.insert("updatedAt".into(), Value::from(at.clone()));
        fields.insert("history".into(), json!([{ "status": "pending", "at": at }]));
    }
    json!({
        "messageId": format!("m-{}", uuid::Uuid::now_v7().simple()),
        "event": "pickup",
        "order": order,
        "at": at,
    })
}

async fn on_chat_message(socket: SocketRef, Data(payload): Data<Value>, ack: AckSender) {
    if let Err(e) = socket.broadcast().emit("chat message", &payload).await {
        tracing::warn!(error = %e, "relay broadcast failed");
    }
    if let Err(e) = ack.send(&json!({ "ok": true })) {
        tracing::warn!(error = %e, "relay ack failed");
    }
}

/// A relay connection without a distributorId.
#[derive(Debug, thiserror::Error)]
#[error("distributorId is required")]
struct Refused;
