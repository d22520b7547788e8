//! `/chat`: the Socket.IO chat example, with rooms.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_chat_message_reaches_everyone_but_the_sender() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    let carol = chatter(&app, "carol").await;

    let ack = alice.ack("chat message", json!({ "text": "hello" })).await;
    assert_ok(&ack);
    assert!(ack["at"].as_str().unwrap().ends_with('Z'));
    for other in [&bob, &carol] {
        let msg = other.expect("chat message").await;
        assert_eq!(msg["from"], json!("alice"));
        assert_eq!(msg["text"], json!("hello"));
        assert_eq!(msg["at"], ack["at"]);
    }
    alice.expect_none("chat message").await;
}

#[tokio::test]
async fn a_bare_string_is_a_chat_message_too() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    assert_ok(&alice.ack("chat message", json!("hi bob")).await);
    assert_eq!(bob.expect("chat message").await["text"], json!("hi bob"));
}

#[tokio::test]
async fn newcomers_and_leavers_are_announced_with_who_is_online() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    let hello = alice.expect("user connected").await;
    assert_eq!(hello, json!({ "name": "bob", "users": ["alice", "bob"] }));
    bob.expect_none("user connected").await;
    bob.disconnect().await;
    let bye = alice.expect("user disconnected").await;
    assert_eq!(bye, json!({ "name": "bob", "users": ["alice"] }));
}

#[tokio::test]
async fn two_chat_rooms_do_not_leak_into_each_other() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    let carol = chatter(&app, "carol").await;
    let dave = chatter(&app, "dave").await;

    let joined = alice.ack("join", json!({ "room": "lobby" })).await;
    assert_eq!(
        joined,
        json!({ "ok": true, "room": "lobby", "members": ["alice"] })
    );
    let joined = bob.ack("join", json!({ "room": "lobby" })).await;
    assert_eq!(joined["members"], json!(["alice", "bob"]));
    let notice = alice.expect("user joined").await;
    assert_eq!(
        notice,
        json!({ "name": "bob", "room": "lobby", "members": ["alice", "bob"] })
    );
    carol.ack("join", json!({ "room": "kitchen" })).await;
    dave.ack("join", json!({ "room": "kitchen" })).await;

    let ack = alice
        .ack(
            "chat message",
            json!({ "text": "lobby only", "room": "lobby" }),
        )
        .await;
    assert_ok(&ack);
    let msg = bob.expect("chat message").await;
    assert_eq!(msg["room"], json!("lobby"));
    assert_eq!(msg["text"], json!("lobby only"));
    alice.expect_none("chat message").await;
    carol.expect_none("chat message").await;
    dave.expect_none("chat message").await;

    carol
        .ack(
            "chat message",
            json!({ "text": "kitchen only", "room": "kitchen" }),
        )
        .await;
    assert_eq!(
        dave.expect("chat message").await["text"],
        json!("kitchen only")
    );
    alice.expect_none("chat message").await;
    bob.expect_none("chat message").await;
}

#[tokio::test]
async fn leaving_a_room_stops_its_messages_and_tells_the_others() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    alice.ack("join", json!({ "room": "lobby" })).await;
    bob.ack("join", json!({ "room": "lobby" })).await;
    let left = bob.ack("leave", json!({ "room": "lobby" })).await;
    assert_eq!(
        left,
        json!({ "ok": true, "room": "lobby", "members": ["alice"] })
    );
    let notice = alice.expect("user left").await;
    assert_eq!(
        notice,
        json!({ "name": "bob", "room": "lobby", "members": ["alice"] })
    );
    alice
        .ack(
            "chat message",
            json!({ "text": "anyone?", "room": "lobby" }),
        )
        .await;
    bob.expect_none("chat message").await;
    let refused = bob
        .ack("chat message", json!({ "text": "hi", "room": "lobby" }))
        .await;
    assert_error(&refused, "forbidden");
}

#[tokio::test]
async fn typing_is_relayed_to_the_others_with_the_name() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    alice.emit("typing", json!({})).await;
    assert_eq!(bob.expect("typing").await, json!({ "name": "alice" }));
    alice.emit("stop typing", json!(null)).await;
    assert_eq!(bob.expect("stop typing").await, json!({ "name": "alice" }));
    alice.expect_none("typing").await;
}

#[tokio::test]
async fn chat_text_is_relayed_verbatim_as_data() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    let markup = "<img src=x onerror=alert(1)>";
    alice.ack("chat message", json!({ "text": markup })).await;
    assert_eq!(bob.expect("chat message").await["text"], json!(markup));
    let too_long = alice
        .ack("chat message", json!({ "text": "x".repeat(2001) }))
        .await;
    assert_error(&too_long, "invalid_payload");
    let empty = alice.ack("chat message", json!({ "text": "   " })).await;
    assert_error(&empty, "invalid_payload");
}

#[tokio::test]
async fn typing_with_nothing_at_all_is_relayed() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    assert_ok(&alice.ack_with_nothing("typing").await);
    assert_eq!(bob.expect("typing").await, json!({ "name": "alice" }));
    assert_ok(&alice.ack_with_nothing("stop typing").await);
    assert_eq!(bob.expect("stop typing").await, json!({ "name": "alice" }));
}
