//! Hostile or broken input never takes the hub down or disturbs other sockets.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// A raw WebSocket speaking Engine.IO by hand, for frames no client library sends.
async fn raw_socket(
    app: &TestApp,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let open = ws.next().await.unwrap().unwrap();
    assert!(
        open.to_text().unwrap().starts_with('0'),
        "engine.io open: {open:?}"
    );
    ws
}

async fn assert_hub_still_serves(app: &TestApp, alice: &Client, bob: &Client) {
    assert_ok(&alice.ack("chat message", json!("still alive")).await);
    assert_eq!(
        bob.expect("chat message").await["text"],
        json!("still alive")
    );
    let fresh = chatter(app, "newcomer").await;
    assert_ok(&fresh.ack("chat message", json!("hi")).await);
}

#[tokio::test]
async fn deeply_nested_json_is_refused_without_harm() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    // Built as text: a `Value` this deep would overflow the test's own stack.
    let nested = format!("{}\"bottom\"{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut ws = raw_socket(&app).await;
    ws.send(Message::Text("40/chat,{\"name\":\"mallory\"}".into()))
        .await
        .unwrap();
    ws.send(Message::Text(
        format!("42/chat,1[\"chat message\",{nested}]").into(),
    ))
    .await
    .unwrap();
    drop(ws);
    bob.expect_none("chat message").await;
    assert_hub_still_serves(&app, &alice, &bob).await;
}

#[tokio::test]
async fn garbage_frames_and_invalid_utf8_do_not_disturb_others() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    let frames = [
        Message::Binary(vec![0xff, 0xfe, 0x00, 0x80].into()),
        Message::Text("42/chat,[\"chat message\"".into()),
        Message::Text("4".into()),
        Message::Text("zzz".into()),
    ];
    for frame in frames {
        let mut ws = raw_socket(&app).await;
        ws.send(Message::Text("40/chat,{\"name\":\"mallory\"}".into()))
            .await
            .unwrap();
        let _closed_by_server = ws.send(frame).await;
    }
    // Invalid UTF-8 inside a text frame is rejected by the WebSocket layer itself.
    let url = format!("{}:{}", "127.0.0.1", app.addr.port());
    let mut tcp = tokio::net::TcpStream::connect(url).await.unwrap();
    use tokio::io::AsyncWriteExt;
    tcp.write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n\xff\xfe")
        .await
        .unwrap();
    drop(tcp);
    assert_hub_still_serves(&app, &alice, &bob).await;
}

#[tokio::test]
async fn an_oversized_message_is_refused_by_the_transport() {
    let app = spawn_app_with(|c| c.max_payload = 4 * 1024).await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    let mut ws = raw_socket(&app).await;
    ws.send(Message::Text("40/chat,{\"name\":\"mallory\"}".into()))
        .await
        .unwrap();
    let big = "x".repeat(8 * 1024);
    let _closed_by_server = ws
        .send(Message::Text(
            format!("42/chat,[\"chat message\",\"{big}\"]").into(),
        ))
        .await;
    bob.expect_none("chat message").await;
    assert_hub_still_serves(&app, &alice, &bob).await;
}

#[tokio::test]
async fn wrong_types_everywhere_get_an_envelope_not_silence() {
    let app = spawn_app().await;
    let north = distributor(&app, "north-hub").await;
    for payload in [
        json!(null),
        json!(7),
        json!("x"),
        json!([]),
        json!({ "vendorId": [] }),
    ] {
        for event in ["in-transit", "delivered", "received"] {
            let ack = north.ack(event, payload.clone()).await;
            assert_error(&ack, "invalid_payload");
        }
    }
    let chat = chatter(&app, "alice").await;
    for event in ["join", "leave", "chat message"] {
        assert_error(
            &chat.ack(event, json!({ "room": 5 })).await,
            "invalid_payload",
        );
    }
    assert_error(
        &north.ack("getAll", json!("everything")).await,
        "invalid_payload",
    );
}
