//! `/chat` history: every message carries an offset, is stored before it
//! is relayed, and is handed again to a client that reconnects with the
//! last offset it saw (`auth.offset`) or joins a room with one.

use std::ffi::OsStr;

use serde_json::{Value, json};

use crate::helpers::*;

fn offset(v: &Value) -> u64 {
    v["offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("no offset in {v}"))
}

/// Sends `count` namespace-wide messages `<prefix> <n>` and returns their acks.
async fn say(client: &Client, prefix: &str, count: usize) -> Vec<Value> {
    let mut acks = Vec::with_capacity(count);
    for n in 1..=count {
        let ack = client
            .ack("chat message", json!({ "text": format!("{prefix} {n}") }))
            .await;
        assert_ok(&ack);
        acks.push(ack);
    }
    acks
}

/// The texts of `count` `chat message` events `client` receives next.
async fn hear(client: &Client, count: usize) -> Vec<Value> {
    let mut heard = Vec::with_capacity(count);
    for _ in 0..count {
        heard.push(client.expect("chat message").await);
    }
    heard
}

fn texts(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_chat_message_carries_an_offset_that_grows() {
    for transport in BOTH_TRANSPORTS {
        let app = spawn_app().await;
        let url = app.url();
        let alice = chat_with(&url, json!({ "name": "alice" }), transport).await;
        let bob = chat_with(&url, json!({ "name": "bob" }), transport).await;
        alice.ack("join", json!({ "room": "lobby" })).await;
        bob.ack("join", json!({ "room": "lobby" })).await;
        let mut last = 0;
        for payload in [
            json!("bare"),
            json!({ "text": "to everyone" }),
            json!({ "text": "to the lobby", "room": "lobby" }),
        ] {
            let ack = alice.ack("chat message", payload).await;
            let heard = bob.expect("chat message").await;
            assert_eq!(offset(&heard), offset(&ack), "{transport}: {heard}");
            assert!(offset(&ack) > last, "{transport}: {ack} after {last}");
            last = offset(&ack);
        }
        let from_bob = bob.ack("chat message", json!("and back")).await;
        assert!(offset(&from_bob) > last);
        assert_eq!(
            offset(&alice.expect("chat message").await),
            offset(&from_bob)
        );
    }
}

#[tokio::test]
async fn a_client_that_reconnects_with_its_offset_first_gets_what_it_missed() {
    for transport in BOTH_TRANSPORTS {
        let app = spawn_app().await;
        let url = app.url();
        let alice = chat_with(&url, json!({ "name": "alice" }), transport).await;
        let bob = chat_with(&url, json!({ "name": "bob" }), transport).await;
        alice.ack("join", json!({ "room": "lobby" })).await;
        say(&alice, "before", 2).await;
        let seen = hear(&bob, 2).await;
        let last_seen = offset(&seen[1]);
        bob.disconnect().await;
        alice.expect("user disconnected").await;

        say(&alice, "missed", 3).await;
        // A room message is not part of the namespace-wide replay.
        alice
            .ack(
                "chat message",
                json!({ "text": "lobby only", "room": "lobby" }),
            )
            .await;
        let bob = chat_with(
            &url,
            json!({ "name": "bob", "offset": last_seen }),
            transport,
        )
        .await;
        // First what it missed, then `users` (the end of the replay).
        let mut missed = Vec::new();
        for _ in 0..3 {
            let (event, payload) = bob.next_any().await;
            assert_eq!(event, "chat message", "{transport}: {payload}");
            missed.push(payload);
        }
        let (event, users) = bob.next_any().await;
        assert_eq!(event, "users", "{transport}");
        assert_eq!(users, json!({ "users": ["alice", "bob"], "online": 2 }));
        assert_eq!(
            texts(&missed),
            ["missed 1", "missed 2", "missed 3"],
            "{transport}"
        );
        let offsets: Vec<u64> = missed.iter().map(offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        assert!(offsets[0] > last_seen);
        assert_eq!(missed[0]["from"], json!("alice"));
        assert!(missed[0]["at"].as_str().unwrap().ends_with('Z'));
        // Then live messages, and nothing twice.
        say(&alice, "live", 1).await;
        assert_eq!(
            bob.expect("chat message").await["text"],
            json!("live 1"),
            "{transport}"
        );
        bob.expect_none("chat message").await;
    }
}

#[tokio::test]
async fn a_reconnect_replays_at_most_the_newest_100_missed_messages() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let acks = say(&alice, "m", 120).await;
    let carol = chat_with(
        &app.url(),
        json!({ "name": "carol", "offset": 0 }),
        Transport::WebSocket,
    )
    .await;
    let missed = hear(&carol, 100).await;
    assert_eq!(missed[0]["text"], json!("m 21"));
    assert_eq!(missed[99]["text"], json!("m 120"));
    assert_eq!(offset(&missed[99]), offset(&acks[119]));
    carol.expect_none("chat message").await;
}

#[tokio::test]
async fn a_client_without_an_offset_hears_only_live_messages() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    say(&alice, "old", 3).await;
    let bob = chatter(&app, "bob").await;
    bob.expect_none("chat message").await;
    say(&alice, "new", 1).await;
    assert_eq!(bob.expect("chat message").await["text"], json!("new 1"));
}

#[tokio::test]
async fn join_answers_with_the_rooms_history_after_the_offset() {
    for transport in BOTH_TRANSPORTS {
        let app = spawn_app().await;
        let url = app.url();
        let alice = chat_with(&url, json!({ "name": "alice" }), transport).await;
        alice.ack("join", json!({ "room": "lobby" })).await;
        let mut acks = Vec::new();
        for n in 1..=60 {
            let ack = alice
                .ack(
                    "chat message",
                    json!({ "text": format!("lobby {n}"), "room": "lobby" }),
                )
                .await;
            acks.push(ack);
        }
        say(&alice, "everyone", 2).await;
        let bob = chat_with(&url, json!({ "name": "bob" }), transport).await;

        // No offset: the newest 50, oldest first.
        let joined = bob.ack("join", json!({ "room": "lobby" })).await;
        assert_ok(&joined);
        assert_eq!(joined["members"], json!(["alice", "bob"]));
        let history = joined["history"].as_array().unwrap();
        assert_eq!(history.len(), 50, "{transport}");
        assert_eq!(history[0]["text"], json!("lobby 11"));
        assert_eq!(
            history[49],
            json!({
                "from": "alice", "text": "lobby 60", "room": "lobby",
                "at": acks[59]["at"], "offset": acks[59]["offset"],
            })
        );
        // With an offset: only what came after it.
        bob.ack("leave", json!({ "room": "lobby" })).await;
        let joined = bob
            .ack(
                "join",
                json!({ "room": "lobby", "offset": acks[56]["offset"] }),
            )
            .await;
        assert_eq!(
            texts(joined["history"].as_array().unwrap()),
            ["lobby 58", "lobby 59", "lobby 60"],
            "{transport}"
        );
        let joined = bob
            .ack("join", json!({ "room": "kitchen", "offset": 0 }))
            .await;
        assert_eq!(joined["history"], json!([]));
        let refused = bob
            .ack("join", json!({ "room": "lobby", "offset": -1 }))
            .await;
        assert_eq!(
            assert_error(&refused, "invalid_payload"),
            "offset must be a whole number, 0 or more"
        );
    }
}

#[tokio::test]
async fn an_offset_that_is_not_a_whole_number_is_refused_at_connect() {
    let app = spawn_app().await;
    for bad in [json!("12"), json!(-3), json!(1.5)] {
        assert_eq!(
            refusal(&app, "/chat", Some(json!({ "name": "bob", "offset": bad }))).await,
            "bad_auth: offset must be a whole number, 0 or more"
        );
    }
}

#[tokio::test]
async fn the_history_survives_a_hub_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let app = spawn_app_with(|c| c.db = db.clone()).await;
    let alice = chatter(&app, "alice").await;
    alice.ack("join", json!({ "room": "lobby" })).await;
    let acks = say(&alice, "before the restart", 2).await;
    alice
        .ack(
            "chat message",
            json!({ "text": "in the lobby", "room": "lobby" }),
        )
        .await;
    drop(alice);
    app.stop().await;

    let app = spawn_app_with(|c| c.db = db.clone()).await;
    let bob = chat_with(
        &app.url(),
        json!({ "name": "bob", "offset": 0 }),
        Transport::WebSocket,
    )
    .await;
    let replayed = hear(&bob, 2).await;
    assert_eq!(
        texts(&replayed),
        ["before the restart 1", "before the restart 2"]
    );
    assert_eq!(offset(&replayed[1]), offset(&acks[1]));
    let joined = bob.ack("join", json!({ "room": "lobby" })).await;
    assert_eq!(
        texts(joined["history"].as_array().unwrap()),
        ["in the lobby"]
    );
    // Offsets go on growing after the restart.
    let next = bob.ack("chat message", json!("after")).await;
    assert!(offset(&next) > offset(&joined["history"][0]));
}

/// A hub process that joins the cluster of `keys`.
fn cluster_hub(keys: &RedisPrefix) -> HubProcess {
    HubProcess::start([
        OsStr::new("--redis"),
        OsStr::new(&keys.url),
        OsStr::new("--redis-prefix"),
        OsStr::new(&keys.prefix),
    ])
}

#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the cluster tests"
)]
async fn two_hubs_on_one_redis_share_the_history() {
    let keys = RedisPrefix::new(&test_redis());
    let (a, b) = (cluster_hub(&keys), cluster_hub(&keys));
    let alice = chat_with(&a.url, json!({ "name": "alice" }), Transport::WebSocket).await;
    let bob = chat_with(&b.url, json!({ "name": "bob" }), Transport::WebSocket).await;
    alice.ack("join", json!({ "room": "lobby" })).await;
    let on_a = say(&alice, "from A", 2).await;
    let on_b = say(&bob, "from B", 1).await;
    // One counter for the cluster: offsets grow across hubs.
    assert!(offset(&on_b[0]) > offset(&on_a[1]));
    assert_eq!(offset(&bob.expect("chat message").await), offset(&on_a[0]));
    alice
        .ack(
            "chat message",
            json!({ "text": "lobby on A", "room": "lobby" }),
        )
        .await;

    // Carol comes back on hub B with an old offset: A's messages too.
    let carol = chat_with(
        &b.url,
        json!({ "name": "carol", "offset": offset(&on_a[0]) }),
        Transport::WebSocket,
    )
    .await;
    assert_eq!(texts(&hear(&carol, 2).await), ["from A 2", "from B 1"]);
    let joined = carol.ack("join", json!({ "room": "lobby" })).await;
    assert_eq!(texts(joined["history"].as_array().unwrap()), ["lobby on A"]);
}
