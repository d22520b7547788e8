//! The HTTP long-polling transport (Engine.IO v4, never upgraded).
//!
//! Some networks let no WebSocket through, and socketioxide serves both
//! transports with different code, so the hub is tested over both. A GET
//! opens the session; then one long-poll GET at a time brings the
//! server's packets and one POST at a time carries ours, each body a
//! payload of packets joined by the record separator. A second GET (or an
//! oversized POST) would make the server close the session, so the reader
//! and the writer each run one request at a time and the writer cuts its
//! payloads to the server's `maxPayload`.

use std::collections::VecDeque;

use reqwest::header::CONTENT_TYPE;
use tokio::sync::mpsc;

use super::ClientError;
use super::packet::{self, EnginePacket, Open};
use super::transport::{Outgoing, Transport, engine_url};

fn transport_error(e: reqwest::Error) -> ClientError {
    ClientError::Transport(e.to_string())
}

/// The reading side of a polling session: long-poll GETs, one at a time.
#[derive(Debug)]
pub(super) struct Reader {
    http: reqwest::Client,
    /// `/socket.io/?EIO=4&transport=polling&sid=…`
    url: String,
    /// Packets of the last GET not yet handed out.
    queued: VecDeque<String>,
}

/// Opens a session: the handshake GET, then a writer task for our packets.
pub(super) async fn open(
    base_url: &str,
) -> Result<(Reader, mpsc::UnboundedSender<Outgoing>, Open), ClientError> {
    // Small POSTs (a pong, one emit) must not wait for Nagle's algorithm.
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(transport_error)?;
    let base = engine_url(base_url, Transport::Polling);
    let body = get(&http, &base).await?;
    let mut packets = packet::split_payload(&body);
    let open = match packets.next().map(EnginePacket::decode) {
        Some(Ok(EnginePacket::Open(open))) => open,
        Some(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
        _ => {
            return Err(ClientError::Protocol(format!(
                "expected the Engine.IO open packet, got {body:?}"
            )));
        }
    };
    let url = format!("{base}&sid={}", open.sid);
    let reader = Reader {
        http: http.clone(),
        url: url.clone(),
        queued: packets.map(str::to_owned).collect(),
    };
    let (outbox, frames) = mpsc::unbounded_channel();
    let max_payload = usize::try_from(open.max_payload).unwrap_or(usize::MAX);
    tokio::spawn(post_frames(http, url, frames, max_payload));
    Ok((reader, outbox, open))
}

async fn get(http: &reqwest::Client, url: &str) -> Result<String, ClientError> {
    let response = http.get(url).send().await.map_err(transport_error)?;
    let status = response.status();
    let body = response.text().await.map_err(transport_error)?;
    if !status.is_success() {
        return Err(ClientError::Protocol(format!(
            "GET answered {status}: {body}"
        )));
    }
    Ok(body)
}

impl Reader {
    /// The next Engine.IO packet, long-polling when none is queued; `None`
    /// once the server has ended the session.
    pub(super) async fn next_packet(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            if let Some(packet) = self.queued.pop_front() {
                return Ok(Some(packet));
            }
            let body = get(&self.http, &self.url).await?;
            // socketioxide answers a poll pending while the session closes
            // with an empty body.
            if body.is_empty() {
                return Ok(None);
            }
            self.queued
                .extend(packet::split_payload(&body).map(str::to_owned));
        }
    }
}

/// Sends what arrives on `frames`, one POST at a time, each holding as
/// many waiting packets as fit in `max_payload` bytes.
async fn post_frames(
    http: reqwest::Client,
    url: String,
    mut frames: mpsc::UnboundedReceiver<Outgoing>,
    max_payload: usize,
) {
    // A packet taken from the channel that did not fit in the last payload.
    let mut carried: Option<Outgoing> = None;
    loop {
        let first = match carried.take() {
            Some(outgoing) => outgoing,
            None => match frames.recv().await {
                Some(outgoing) => outgoing,
                None => return,
            },
        };
        let mut batch: Vec<String> = Vec::new();
        let mut size = 0;
        let mut closing = false;
        let mut next = Some(first);
        while let Some(outgoing) = next.take() {
            let is_close = matches!(outgoing, Outgoing::Close);
            let text = match outgoing {
                Outgoing::Packet(text) => text,
                Outgoing::Close => EnginePacket::Close.encode(),
            };
            // One separator before every packet but the first.
            let grown = size + text.len() + usize::from(!batch.is_empty());
            if !batch.is_empty() && grown > max_payload {
                carried = Some(if is_close {
                    Outgoing::Close
                } else {
                    Outgoing::Packet(text)
                });
                break;
            }
            size = grown;
            batch.push(text);
            if is_close {
                closing = true;
                break;
            }
            next = frames.try_recv().ok();
        }
        if let Err(e) = post(&http, &url, packet::join_payload(&batch)).await {
            tracing::debug!(error = %e, "the polling session is closed; dropping what was left to send");
            return;
        }
        if closing {
            return;
        }
    }
}

async fn post(http: &reqwest::Client, url: &str, body: String) -> Result<(), ClientError> {
    let response = http
        .post(url)
        .header(CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body(body)
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let body = response.text().await.map_err(transport_error)?;
        Err(ClientError::Protocol(format!(
            "POST answered {status}: {body}"
        )))
    }
}
