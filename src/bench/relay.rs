//! The yardstick: a bare socketioxide relay with the same rooms and events
//! as the hub but no validation, no queue and no logging. The load
//! generator measures it with the same workloads (`--relay-only`), so the
//! hub's numbers read as a fraction of what socketioxide itself does here.

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};

/// Serves the relay on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, socket_buffer: usize) -> anyhow::Result<()> {
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(socket_buffer)
        .build_layer();

    io.ns(
        "/distributor",
        async |socket: SocketRef, Data(auth): Data<Value>| {
            if let Some(id) = auth["distributorId"].as_str() {
                socket.join(format!("distributor:{id}"));
            }
        },
    );
    io.ns("/vendor", async |socket: SocketRef| {
        socket.on(
            "pickup",
            async |io: SocketIo, Data(payload): Data<Value>, ack: AckSender| {
                let room = format!(
                    "distributor:{}",
                    payload["distributorId"].as_str().unwrap_or_default()
                );
                if let Some(ns) = io.of("/distributor")
                    && let Err(e) = ns.to(room).emit("pickup", &payload).await
                {
                    tracing::warn!(error = %e, "relay emit failed");
                }
                if let Err(e) = ack.send(&serde_json::json!({ "ok": true })) {
                    tracing::warn!(error = %e, "relay ack failed");
                }
            },
        );
    });
    io.ns("/chat", async |socket: SocketRef| {
        socket.on(
            "chat message",
            async |socket: SocketRef, Data(payload): Data<Value>, ack: AckSender| {
                if let Err(e) = socket.broadcast().emit("chat message", &payload).await {
                    tracing::warn!(error = %e, "relay broadcast failed");
                }
                if let Err(e) = ack.send(&serde_json::json!({ "ok": true })) {
                    tracing::warn!(error = %e, "relay ack failed");
                }
            },
        );
    });

    let app = axum::Router::new().layer(layer);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app).await?;
    Ok(())
}
