//! The WebSocket transport: one Engine.IO packet per text frame.
//!
//! Besides serving [`super::Client`], [`handshake`] hands the load
//! generator a raw socket that has joined its namespace, so its hot loop
//! reads frames with no channel or task in between.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::ClientError;
use super::packet::{EnginePacket, Open};
use super::transport::{
    ConnectStep, Outgoing, Transport, connect_message, connect_step, engine_url,
};

/// Bytes read from the socket at a time (frames larger than this still arrive whole).
const READ_BUFFER: usize = 8 * 1024;

/// A WebSocket that has finished the Socket.IO handshake.
pub type Connected =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn transport_error(e: tokio_tungstenite::tungstenite::Error) -> ClientError {
    ClientError::Transport(e.to_string())
}

/// Opens the WebSocket and reads the Engine.IO open packet.
pub(super) async fn open(base_url: &str) -> Result<(Connected, Open), ClientError> {
    // tungstenite zeroes its whole read buffer (128 KiB by default) for every
    // read; with small frames that memset was half the load generator's CPU.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    // Small frames must not wait for Nagle's algorithm on our side either.
    let disable_nagle = true;
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        engine_url(base_url, Transport::WebSocket),
        Some(config),
        disable_nagle,
    )
    .await
    .map_err(transport_error)?;
    let open = match ws.next().await {
        Some(Ok(Message::Text(text))) => match EnginePacket::decode(&text) {
            Ok(EnginePacket::Open(open)) => open,
            Ok(other) => {
                return Err(ClientError::Protocol(format!(
                    "expected the Engine.IO open packet, got {other:?}"
                )));
            }
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        },
        Some(Ok(other)) => {
            return Err(ClientError::Protocol(format!(
                "expected the Engine.IO open packet, got {other:?}"
            )));
        }
        Some(Err(e)) => return Err(transport_error(e)),
        None => return Err(ClientError::Closed),
    };
    Ok((ws, open))
}

/// Opens a WebSocket and connects to `namespace`: returns the socket, ready
/// for events, and the namespace's session id, or the `connect_error`.
pub async fn handshake(
    base_url: &str,
    namespace: &str,
    auth: Option<&Value>,
) -> Result<(Connected, String), ClientError> {
    let (mut ws, _) = open(base_url).await?;
    ws.send(Message::Text(connect_message(namespace, auth).into()))
        .await
        .map_err(transport_error)?;
    loop {
        let frame = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => return Err(ClientError::Closed),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(transport_error(e)),
        };
        match connect_step(&frame, namespace)? {
            ConnectStep::Answer(pong) => ws
                .send(Message::Text(pong.into()))
                .await
                .map_err(transport_error)?,
            ConnectStep::Connected(sid) => return Ok((ws, sid)),
            ConnectStep::Wait => {}
        }
    }
}

/// Splits an open socket: a task owns the writing half and sends what
/// arrives on the returned channel; the reading half goes to the caller.
pub(super) fn start(ws: Connected) -> (SplitStream<Connected>, mpsc::UnboundedSender<Outgoing>) {
    let (sink, stream) = ws.split();
    let (outbox, frames) = mpsc::unbounded_channel();
    tokio::spawn(write_frames(sink, frames));
    (stream, outbox)
}

async fn write_frames(
    mut sink: SplitSink<Connected, Message>,
    mut frames: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(first) = frames.recv().await {
        // Queue whatever is already waiting and flush once: many emits in a
        // row then cost one write, not one each.
        let mut next = Some(first);
        let mut closing = false;
        while let Some(outgoing) = next.take() {
            let message = match outgoing {
                Outgoing::Packet(text) => Message::Text(text.into()),
                Outgoing::Close => {
                    closing = true;
                    Message::Close(None)
                }
            };
            if let Err(e) = sink.feed(message).await {
                tracing::debug!(error = %e, "the WebSocket is closed; dropping what was left to send");
                return;
            }
            if closing {
                break;
            }
            next = frames.try_recv().ok();
        }
        if let Err(e) = sink.flush().await {
            tracing::debug!(error = %e, "the WebSocket is closed; dropping what was left to send");
            return;
        }
        if closing {
            return;
        }
    }
}

/// The next Engine.IO packet of the reading half; `None` once the socket is closed.
pub(super) async fn next_packet(
    stream: &mut SplitStream<Connected>,
) -> Result<Option<String>, ClientError> {
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => return Ok(Some(text.as_str().to_owned())),
            Some(Ok(Message::Close(_))) | None => return Ok(None),
            Some(Ok(Message::Binary(_))) => {
                tracing::warn!(
                    "skipping a binary WebSocket frame: binary packets are not supported"
                );
            }
            // WebSocket-level pings are answered by tungstenite itself.
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(transport_error(e)),
        }
    }
}
