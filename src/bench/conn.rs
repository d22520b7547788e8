//! Lean load-generator connections: handshake with the library client,
//! then raw text frames with as little work per message as possible.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::client::packet::split_ack_id;
use crate::client::{ClientError, handshake, namespace_prefix};

/// Counters every receiving socket of a run shares.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Events received so far, by all sockets.
    pub delivered: AtomicU64,
    /// The latest arrival, in nanoseconds since the run's origin.
    pub last_ns: AtomicU64,
}

/// The marker a sender writes into a payload (`"t<nanos>"`) so receivers
/// can measure latency without parsing the JSON.
pub(crate) const STAMP_KEY: &str = "\"~t";

/// Reads the first send stamp in a frame, if any.
pub(crate) fn read_stamp(frame: &str) -> Option<u64> {
    let start = frame.find(STAMP_KEY)? + STAMP_KEY.len();
    let digits = frame[start..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    frame[start..start + digits].parse().ok()
}

/// Opens one receiving socket. It answers pings, counts every `event` in
/// `tally` and keeps its latencies (from the payload's stamp) locally, so the
/// hot loop shares nothing but two atomics; it returns them when `stop` fires.
pub(crate) async fn spawn_receiver(
    url: &str,
    namespace: &str,
    auth: &Value,
    event: &str,
    origin: Instant,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<Vec<u64>>, ClientError> {
    let (ws, _) = handshake(url, namespace, Some(auth)).await?;
    let marker = format!("42{}[\"{event}\"", namespace_prefix(namespace));
    Ok(tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let mut latencies = Vec::new();
        loop {
            let msg = tokio::select! {
                msg = stream.next() => msg,
                _ = stop.changed() => break,
            };
            let Some(Ok(msg)) = msg else { break };
            let Message::Text(text) = msg else { continue };
            let text = text.as_str();
            if text == "2" {
                if sink.send(Message::Text("3".into())).await.is_err() {
                    break;
                }
                continue;
            }
            if text.starts_with(&marker) {
                let received_at_ns = elapsed_ns(origin);
                let sent_at_ns = read_stamp(text).unwrap_or(received_at_ns);
                latencies.push(received_at_ns.saturating_sub(sent_at_ns));
                tally.delivered.fetch_add(1, Ordering::Relaxed);
                tally.last_ns.fetch_max(received_at_ns, Ordering::Relaxed);
            }
        }
        latencies
    }))
}

/// Nanoseconds since `origin`.
pub(crate) fn elapsed_ns(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A sending socket: emits events with ack ids and matches the acks.
#[derive(Debug)]
pub(crate) struct Sender {
    /// Frames to send; a writer task owns the socket's sink.
    outbox: mpsc::UnboundedSender<Message>,
    acks: mpsc::UnboundedReceiver<(i64, bool)>,
    prefix: String,
    next_id: i64,
    /// How often the hub pushed the watched event to this sender (a broadcast must skip it).
    pub events_received: Arc<AtomicU64>,
}

impl Sender {
    /// Connects; `watched_event` is counted if the hub ever pushes it here.
    pub(crate) async fn connect(
        url: &str,
        namespace: &str,
        auth: &Value,
        watched_event: &str,
    ) -> Result<Self, ClientError> {
        let (ws, _) = handshake(url, namespace, Some(auth)).await?;
        let (mut sink, mut stream) = ws.split();
        let (outbox, mut frames) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(frame) = frames.recv().await {
                if sink.send(frame).await.is_err() {
                    break;
                }
            }
        });
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let prefix = namespace_prefix(namespace);
        let ack_marker = format!("43{prefix}");
        let pong = outbox.clone();
        let events_received = Arc::new(AtomicU64::new(0));
        let counter = events_received.clone();
        let event_marker = format!("42{prefix}[\"{watched_event}\"");
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let text = text.as_str();
                if text == "2" {
                    if pong.send(Message::Text("3".into())).is_err() {
                        break;
                    }
                    continue;
                }
                if text.starts_with("42") {
                    if text.starts_with(event_marker.as_str()) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                if let Some(rest) = text.strip_prefix(ack_marker.as_str()) {
                    let Ok((Some(id), args)) = split_ack_id(rest) else {
                        continue;
                    };
                    let Ok(id) = i64::try_from(id) else { continue };
                    let ok = args.contains("\"ok\":true");
                    if ack_tx.send((id, ok)).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Self {
            outbox,
            acks,
            prefix,
            next_id: 1,
            events_received,
        })
    }

    fn push(&self, frame: String) -> Result<(), ClientError> {
        self.outbox
            .send(Message::Text(frame.into()))
            .map_err(|_| ClientError::Closed)
    }

    /// Sends `event` with `payload_json` (already serialized) and an ack id.
    pub(crate) fn send(&mut self, event: &str, payload_json: &str) -> Result<i64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.push(format!("42{}{id}[\"{event}\",{payload_json}]", self.prefix))?;
        Ok(id)
    }

    /// The next ack: its id and whether it said `ok: true`.
    pub(crate) async fn next_ack(&mut self, within: Duration) -> Option<(i64, bool)> {
        tokio::time::timeout(within, self.acks.recv())
            .await
            .ok()
            .flatten()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_found_without_parsing_json() {
        let frame = r#"42/distributor,["pickup",{"order":{"customer":"~t123456","x":1}}]"#;
        assert_eq!(
            read_stamp(r#"42/chat,["chat message",{"text":"~t77"}]"#),
            Some(77)
        );
        assert_eq!(read_stamp(frame), Some(123_456));
        assert_eq!(read_stamp("42[\"x\",{}]"), None);
    }
}
