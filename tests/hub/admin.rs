//! `/admin`, the official Socket.IO Admin UI's namespace, spoken by a real
//! client: sign-in, config, every socket, live events, the stats, and the
//! actions it may and may not take. (The UI itself is driven in headless
//! Chromium by `tests/browser/admin-ui.test.mjs`.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

fn admin_auth(password: &str) -> Value {
    json!({ "username": "admin", "password": password })
}

async fn admin(app: &TestApp) -> Client {
    let mut c = connect(app, "/admin", admin_auth("demo-admin")).await;
    c.label = "admin".into();
    c
}

#[tokio::test]
async fn the_admin_ui_signs_in_with_the_admin_token_and_gets_a_session() {
    let app = spawn_app().await;
    for auth in [
        admin_auth("wrong"),
        json!({ "username": "root", "password": "demo-admin" }),
        json!({ "sessionId": "made-up" }),
        json!({}),
    ] {
        assert_eq!(
            refusal(&app, "/admin", Some(auth)).await,
            "unauthorized: invalid credentials"
        );
    }
    let ui = admin(&app).await;
    let session = ui.expect("session").await;
    let session = session.as_str().expect("a session id").to_owned();
    let config = ui.expect("config").await;
    let features: Vec<&str> = config["supportedFeatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for feature in [
        "EMIT",
        "JOIN",
        "LEAVE",
        "DISCONNECT",
        "AGGREGATED_EVENTS",
        "ALL_EVENTS",
    ] {
        assert!(features.contains(&feature), "{features:?}");
    }
    let all = ui.expect("all_sockets").await;
    let own = all.as_array().unwrap();
    assert!(own.iter().any(|s| s["nsp"] == json!("/admin")), "{all}");
    // Reconnecting with the session id needs no password.
    try_connect(
        &app.url(),
        "/admin",
        Some(json!({ "sessionId": session })),
        Transport::Polling,
    )
    .await
    .expect("the session id is accepted");
}

#[tokio::test]
async fn the_admin_ui_sees_sockets_events_and_stats_live() {
    let app = spawn_app().await;
    let ui = admin(&app).await;
    ui.expect("all_sockets").await;
    let stats = ui.expect("server_stats").await;
    let shop = vendor(&app, "acme-widgets").await;
    let connected = ui.expect("socket_connected").await;
    assert_eq!(connected["nsp"], json!("/vendor"));
    assert_eq!(connected["rooms"], json!(["vendor:acme-widgets"]));
    assert_eq!(connected["data"]["identity"], json!("vendor acme-widgets"));
    assert_eq!(ui.expect("room_joined").await, json!("/vendor"));
    assert_ok(&shop.ack("pickup", pickup("a-1", "north-hub")).await);
    assert_eq!(ui.expect("event_received").await, json!("/vendor"));
    assert_eq!(ui.expect("event_sent").await, json!("/distributor"));
    let hub_id = stats["serverId"].as_str().unwrap().to_owned();
    assert!(!hub_id.is_empty());
    // The next stats count the vendor, under this hub's id.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    loop {
        let stats = ui.expect("server_stats").await;
        assert_eq!(stats["serverId"], json!(hub_id));
        let vendors = stats["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == json!("/vendor"))
            .unwrap()["socketsCount"]
            .clone();
        if vendors == json!(1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stats never counted the vendor"
        );
    }
    shop.disconnect().await;
    assert_eq!(ui.expect("socket_disconnected").await, json!("/vendor"));
}

#[tokio::test]
async fn admin_actions_move_chat_sockets_and_never_vendor_rooms() {
    let app = spawn_app().await;
    let ui = admin(&app).await;
    ui.expect("all_sockets").await;
    let dana = chatter(&app, "dana").await;
    let connected = ui.expect("socket_connected").await;
    let dana_id = connected["id"].as_str().unwrap().to_owned();
    ui.emit_args("join", &[json!("/chat"), json!("chat:vip"), json!(dana_id)])
        .await;
    ui.emit_args(
        "emit",
        &[
            json!("/chat"),
            json!("chat:vip"),
            json!("chat message"),
            json!({ "from": "admin", "text": "hello" }),
        ],
    )
    .await;
    assert_eq!(dana.expect("chat message").await["text"], json!("hello"));

    // A vendor socket is never put in a distributor's room, nor sent a forged event.
    let shop = vendor(&app, "acme-widgets").await;
    let shop_id = ui.expect("socket_connected").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ui.emit_args(
        "join",
        &[
            json!("/vendor"),
            json!("distributor:north-hub"),
            json!(shop_id),
        ],
    )
    .await;
    ui.emit_args(
        "emit",
        &[json!("/vendor"), Value::Null, json!("delivered"), json!({})],
    )
    .await;
    let truck = distributor(&app, "north-hub").await;
    let other = vendor(&app, "1-800-flowers").await;
    assert_ok(&other.ack("pickup", pickup("x-1", "north-hub")).await);
    truck.expect("pickup").await;
    shop.expect_none("pickup").await;
    shop.expect_none("delivered").await;

    // `_disconnect` of one socket.
    ui.emit_args(
        "_disconnect",
        &[json!("/chat"), json!(false), json!(dana_id)],
    )
    .await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while dana.is_connected() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "dana was not disconnected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The chat's rooms and its one-socket `users` reach the UI as they are:
/// a chat socket shows in `everyone` (and, until its arrival has been
/// announced, in `arriving:<hub id>`, which it then leaves), and the
/// `users` sent to it alone is an `event_sent` that names its socket.
#[tokio::test]
async fn the_admin_ui_sees_chat_sockets_in_their_rooms_and_the_users_sent_to_one() {
    let app = spawn_app().await;
    let ui = admin(&app).await;
    ui.expect("all_sockets").await;
    let hub_id = ui.expect("server_stats").await["serverId"]
        .as_str()
        .unwrap()
        .to_owned();
    let arriving = format!("arriving:{hub_id}");
    let dana = chatter(&app, "dana").await;
    dana.expect("users").await;
    let connected = ui.expect("socket_connected").await;
    assert_eq!(connected["nsp"], json!("/chat"));
    assert_eq!(connected["data"]["identity"], json!("chat dana"));
    let dana_id = connected["id"].as_str().unwrap().to_owned();
    let rooms: Vec<&str> = connected["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(rooms.contains(&"everyone"), "{rooms:?}");
    assert!(
        rooms.iter().all(|r| *r == "everyone" || *r == arriving),
        "{rooms:?}"
    );
    let users = loop {
        let sent = ui.expect_args("event_sent").await;
        if sent[2][0] == json!("users") {
            break sent;
        }
    };
    assert_eq!(users[0], json!("/chat"));
    assert_eq!(users[1], json!(dana_id), "the socket it was sent to");
    assert_eq!(users[2][1], json!({ "users": ["dana"], "online": 1 }));
    if rooms.contains(&arriving.as_str()) {
        // Left once its `user connected` went out; the UI hears of it at
        // the latest with the next comparison of rooms (every 2 s).
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let left = ui.expect_args("room_left").await;
            if left[1] == json!(arriving) {
                assert_eq!(left[2], json!(dana_id));
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the UI never saw dana leave {arriving}"
            );
        }
    }
    assert_ok(&dana.ack("chat message", json!("hello")).await);
    assert_eq!(ui.expect_args("event_received").await[1], json!(dana_id));
}
