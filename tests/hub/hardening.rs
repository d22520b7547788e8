//! What no client may do to the hub, whatever it sends: hold memory with
//! binary attachments, hold connections with half-sent HTTP, flood the log,
//! keep the hub from stopping. Each test drives the attack with a real
//! client or raw frames and checks that the attacker is refused and that
//! everyone else is still served.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw WebSocket that has joined `/chat` as `name`, for frames no client sends.
async fn raw_chatter(app: &TestApp, name: &str) -> RawSocket {
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let open = ws.next().await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with('0'), "{open:?}");
    ws.send(Message::Text(
        format!("40/chat,{}", json!({ "name": name })).into(),
    ))
    .await
    .unwrap();
    loop {
        let frame = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("the hub answers CONNECT")
            .unwrap()
            .unwrap();
        if frame.to_text().unwrap_or_default().starts_with("40/chat,") {
            return ws;
        }
    }
}

/// Sends `frames` and reads until the hub closes the connection.
async fn closed_by_the_hub(mut ws: RawSocket, frames: Vec<Message>) {
    for frame in frames {
        if ws.send(frame).await.is_err() {
            break;
        }
    }
    let closed = tokio::time::timeout(TIMEOUT, async {
        while let Some(Ok(frame)) = ws.next().await {
            if frame.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the hub closes the connection");
}

async fn scrape(app: &TestApp) -> String {
    reqwest::Client::new()
        .get(format!("{}/metrics", app.url()))
        .bearer_auth("demo-admin")
        .timeout(TIMEOUT)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn binary_attachments_past_the_limits_close_the_connection() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    // Announces 10,000 attachments (socketioxide's default limit) in one packet.
    let many = raw_chatter(&app, "mallory-many").await;
    closed_by_the_hub(
        many,
        vec![Message::Text(
            "4510000-/chat,[\"chat message\",{\"_placeholder\":true,\"num\":0}]".into(),
        )],
    )
    .await;
    // Announces one attachment, then sends more bytes than one packet may buffer.
    let heavy = raw_chatter(&app, "mallory-heavy").await;
    closed_by_the_hub(
        heavy,
        vec![
            Message::Text("451-/chat,[\"chat message\",{\"_placeholder\":true,\"num\":0}]".into()),
            Message::Binary(vec![0_u8; 32 * 1024].into()),
        ],
    )
    .await;
    bob.expect_none("chat message").await;
    assert_ok(&alice.ack("chat message", json!("still served")).await);
    assert_eq!(
        bob.expect("chat message").await["text"],
        json!("still served")
    );
    let metrics = scrape(&app).await;
    assert!(
        metrics.contains(
            "parcel_hub_sockets_dropped_total{namespace=\"/chat\",reason=\"packet_refused\"} 2"
        ),
        "{metrics}"
    );
}
