//! The `/inspector` namespace: who may connect, the `snapshot` it keeps
//! current, and the `activity` feed of every event in and out.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

fn admin() -> Value {
    json!({ "token": parcel_hub::config::DEMO_ADMIN_TOKEN })
}

async fn inspector(app: &TestApp) -> Client {
    let mut client = connect(app, "/inspector", admin()).await;
    client.label = "inspector".into();
    client
}

/// The namespace entry `name` of a snapshot.
fn namespace<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["namespaces"]
        .as_array()
        .and_then(|all| all.iter().find(|ns| ns["name"] == json!(name)))
        .unwrap_or_else(|| panic!("no {name} in {snapshot}"))
}

fn identities(snapshot: &Value, name: &str) -> Vec<String> {
    namespace(snapshot, name)["sockets"]
        .as_array()
        .map(|sockets| {
            sockets
                .iter()
                .filter_map(|s| s["identity"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads snapshots until one satisfies `wanted`.
async fn snapshot_where(client: &Client, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.within("snapshot", left).await {
            Some(snapshot) if wanted(&snapshot) => return snapshot,
            Some(_) => {}
            None => panic!("no snapshot where {what} within {TIMEOUT:?}"),
        }
    }
}

/// Every activity record until the feed has been quiet for [`QUIET_WINDOW`].
async fn drain_activity(client: &Client) -> Vec<Value> {
    let mut records = Vec::new();
    while let Some(record) = client.within("activity", QUIET_WINDOW).await {
        records.push(record);
    }
    records
}

/// Reads activity records until one satisfies `wanted`.
async fn activity_where(client: &Client, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.within("activity", left).await {
            Some(record) if wanted(&record) => return record,
            Some(_) => {}
            None => panic!("no activity record where {what} within {TIMEOUT:?}"),
        }
    }
}

#[tokio::test]
async fn the_inspector_wants_the_admin_token() {
    let app = spawn_app().await;
    let message = refusal(&app, "/inspector", Some(json!({ "token": "demo-acme" }))).await;
    assert_eq!(message, "unauthorized: wrong admin token");
    let message = refusal(&app, "/inspector", None).await;
    assert!(message.starts_with("bad_auth: "), "{message}");
    let message = refusal(&app, "/inspector", Some(json!({ "token": 42 }))).await;
    assert!(message.starts_with("bad_auth: "), "{message}");
    assert!(
        !message.contains("42"),
        "the token is not echoed: {message}"
    );
}

#[tokio::test]
async fn an_inspector_gets_a_snapshot_as_soon_as_it_connects() {
    let app = spawn_app().await;
    let _north = distributor(&app, "north-hub").await;
    let watcher = inspector(&app).await;
    let snapshot = watcher.expect("snapshot").await;
    assert!(snapshot["at"].as_str().is_some());
    assert_eq!(
        identities(&snapshot, "/distributor"),
        ["distributor north-hub"]
    );
    assert_eq!(identities(&snapshot, "/inspector"), ["inspector"]);
    let socket = &namespace(&snapshot, "/distributor")["sockets"][0];
    assert_eq!(socket["transport"], json!("websocket"));
    assert_eq!(socket["rooms"], json!(["distributor:north-hub"]));
    assert!(
        socket["connectedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(snapshot["queues"], json!([]));
}

#[tokio::test]
async fn snapshots_follow_connects_joins_and_disconnects_everywhere() {
    let app = spawn_app().await;
    let watcher = inspector(&app).await;
    watcher.expect("snapshot").await;

    let acme = vendor(&app, "acme-widgets").await;
    snapshot_where(&watcher, "acme is connected", |s| {
        identities(s, "/vendor") == ["vendor acme-widgets"]
            && namespace(s, "/vendor")["rooms"][0]["name"] == json!("vendor:acme-widgets")
    })
    .await;

    let alice = chatter(&app, "alice").await;
    assert_ok(&alice.ack("join", json!({ "room": "lobby" })).await);
    snapshot_where(&watcher, "alice is in chat:lobby", |s| {
        namespace(s, "/chat")["rooms"]
            .as_array()
            .is_some_and(|rooms| rooms.iter().any(|r| r["name"] == json!("chat:lobby")))
    })
    .await;

    acme.disconnect().await;
    snapshot_where(&watcher, "acme is gone", |s| {
        identities(s, "/vendor").is_empty()
    })
    .await;

    // Queue depths move with the queues.
    let flowers = vendor(&app, "1-800-flowers").await;
    assert_ok(&flowers.ack("pickup", pickup("o-insp-1", "north-hub")).await);
    snapshot_where(&watcher, "north-hub has one queued pickup", |s| {
        s["queues"] == json!([{ "owner": "distributor:north-hub", "depth": 1 }])
    })
    .await;
}

#[tokio::test]
async fn every_event_in_and_out_reaches_the_activity_feed() {
    let app = spawn_app().await;
    let watcher = inspector(&app).await;
    let north = distributor(&app, "north-hub").await;
    let acme = vendor(&app, "acme-widgets").await;
    assert_ok(&acme.ack("pickup", pickup("o-insp-2", "north-hub")).await);
    north.expect("pickup").await;
    assert_error(&acme.ack("pickup", json!({})).await, "invalid_payload");
    let feed = drain_activity(&watcher).await;
    let find = |what: &str, wanted: &dyn Fn(&Value) -> bool| -> Value {
        feed.iter()
            .find(|r| wanted(r))
            .cloned()
            .unwrap_or_else(|| panic!("no record where {what} in {feed:#?}"))
    };

    let connect = find("acme connected", &|r| {
        r["event"] == json!("connect") && r["namespace"] == json!("/vendor")
    });
    assert_eq!(connect["identity"], json!("vendor acme-widgets"));
    assert_eq!(connect["direction"], json!("in"));

    let incoming = find("the pickup came in", &|r| {
        r["event"] == json!("pickup")
            && r["direction"] == json!("in")
            && r["outcome"] == json!("ok")
    });
    assert_eq!(incoming["namespace"], json!("/vendor"));
    assert_eq!(incoming["identity"], json!("vendor acme-widgets"));
    assert_eq!(incoming["payload"]["orderId"], json!("o-insp-2"));

    let outgoing = find("the pickup went out", &|r| {
        r["event"] == json!("pickup") && r["direction"] == json!("out")
    });
    assert_eq!(outgoing["namespace"], json!("/distributor"));
    assert_eq!(outgoing["target"], json!("room distributor:north-hub"));
    assert_eq!(outgoing["recipients"], json!(1));
    assert_eq!(outgoing["payload"]["order"]["orderId"], json!("o-insp-2"));

    let refused = find("a refused pickup", &|r| {
        r["event"] == json!("pickup") && r["outcome"] == json!("invalid_payload")
    });
    assert_eq!(refused["direction"], json!("in"));

    // Numbered in order, each once.
    let seqs: Vec<u64> = feed.iter().filter_map(|r| r["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test]
async fn tokens_never_reach_the_feed_or_the_snapshot() {
    let app = spawn_app().await;
    let watcher = inspector(&app).await;
    let acme = vendor(&app, "acme-widgets").await;
    assert_ok(&acme.ack("pickup", pickup("o-insp-3", "south-hub")).await);
    let mut seen: Vec<String> = drain_activity(&watcher)
        .await
        .iter()
        .map(Value::to_string)
        .collect();
    seen.push(watcher.expect("snapshot").await.to_string());
    assert!(
        seen.len() > 2,
        "the feed saw the connect and the pickup: {seen:?}"
    );
    for text in &seen {
        for token in ["demo-acme", "demo-admin"] {
            assert!(!text.contains(token), "{token} leaked: {text}");
        }
    }
}

#[tokio::test]
async fn snapshots_come_at_most_ten_per_second_even_under_a_burst() {
    let app = spawn_app().await;
    let watcher = inspector(&app).await;
    watcher.expect("snapshot").await;
    let alice = chatter(&app, "alice").await;
    // Each join and leave changes the rooms: a hundred changes in a burst.
    for i in 0..50 {
        let room = format!("room-{i}");
        assert_ok(&alice.ack("join", json!({ "room": room })).await);
        assert_ok(&alice.ack("leave", json!({ "room": room })).await);
    }
    let window = Duration::from_secs(1);
    let start = tokio::time::Instant::now();
    let mut snapshots = 0;
    while let Some(_snapshot) = watcher
        .within("snapshot", window.saturating_sub(start.elapsed()))
        .await
    {
        snapshots += 1;
    }
    // Ten per second plus the one that may already be on its way.
    assert!(snapshots <= 11, "{snapshots} snapshots in {window:?}");
}

#[tokio::test]
async fn every_inspector_gets_the_feed_and_it_resumes_after_all_left() {
    let app = spawn_app().await;
    let first = inspector(&app).await;
    let second = inspector(&app).await;
    let alice = chatter(&app, "alice").await;
    for watcher in [&first, &second] {
        activity_where(watcher, "alice connected", |r| {
            r["event"] == json!("connect") && r["identity"] == json!("chat alice")
        })
        .await;
    }
    first.disconnect().await;
    second.disconnect().await;

    // With nobody watching the feed stops; a new inspector starts it again.
    let third = inspector(&app).await;
    third.expect("snapshot").await;
    assert_ok(&alice.ack("join", json!({ "room": "lobby" })).await);
    let join = activity_where(&third, "alice joined", |r| r["event"] == json!("join")).await;
    assert_eq!(join["identity"], json!("chat alice"));
}

#[tokio::test]
async fn an_http_pickup_shows_in_the_feed_as_the_vendors_pickup() {
    let app = spawn_app().await;
    let watcher = inspector(&app).await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/pickups", app.url()))
        .basic_auth("acme-widgets", Some("demo-acme"))
        .json(&pickup("o-insp-http", "north-hub"))
        .send()
        .await
        .expect("POST /api/pickups");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let record = activity_where(&watcher, "the HTTP pickup came in", |r| {
        r["event"] == json!("pickup") && r["direction"] == json!("in")
    })
    .await;
    assert_eq!(record["namespace"], json!("/vendor"));
    assert_eq!(record["socket"], json!("http"));
    assert_eq!(record["identity"], json!("vendor acme-widgets"));
    assert_eq!(record["outcome"], json!("ok"));
}
