//! `/chat`: the Socket.IO chat example, with rooms; who is online, and
//! names (any script, unique on a hub). The history is `chat_history`.

use futures_util::future::join_all;
use serde_json::{Value, json};

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
        assert_eq!(msg["offset"], ack["offset"]);
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
async fn a_newcomer_is_told_who_is_online_and_the_others_how_many() {
    for transport in BOTH_TRANSPORTS {
        let app = spawn_app().await;
        let url = app.url();
        let alice = chat_with(&url, json!({ "name": "alice" }), transport).await;
        assert_eq!(
            alice.expect("users").await,
            json!({ "users": ["alice"], "online": 1 }),
            "{transport}"
        );
        let bob = chat_with(&url, json!({ "name": "Bob" }), transport).await;
        assert_eq!(
            bob.expect("users").await,
            json!({ "users": ["alice", "Bob"], "online": 2 }),
            "{transport}"
        );
        let hello = alice.expect("user connected").await;
        assert_eq!(hello, json!({ "name": "Bob", "online": 2 }), "{transport}");
        bob.expect_none("user connected").await;
        alice.expect_none("users").await;
        let carol = chat_with(&url, json!({ "name": "carol" }), transport).await;
        assert_eq!(carol.expect("users").await["online"], json!(3));
        assert_eq!(alice.expect("user connected").await["online"], json!(3));
        assert_eq!(bob.expect("user connected").await["online"], json!(3));

        bob.disconnect().await;
        for left in [&alice, &carol] {
            let bye = left.expect("user disconnected").await;
            assert_eq!(bye, json!({ "name": "Bob", "online": 2 }), "{transport}");
        }
    }
}

#[tokio::test]
async fn a_second_dana_is_refused_while_the_first_is_here() {
    for transport in BOTH_TRANSPORTS {
        let app = spawn_app().await;
        let url = app.url();
        let dana = chat_with(&url, json!({ "name": "dana" }), transport).await;
        for twin in ["dana", " dana ", "DANA", "Dana"] {
            let refused = try_connect(&url, "/chat", Some(json!({ "name": twin })), transport)
                .await
                .err()
                .unwrap_or_else(|| panic!("{transport}: a second {twin:?} got in"));
            assert_eq!(
                refused,
                format!("name_taken: someone called {} is already here", twin.trim()),
                "{transport}"
            );
        }
        dana.expect_none("user connected").await;
        // Once she has left, the name is free again.
        dana.disconnect().await;
        let again = within_timeout(async {
            loop {
                match try_connect(&url, "/chat", Some(json!({ "name": "dana" })), transport).await {
                    Ok(client) => return client,
                    Err(e) if e.starts_with("name_taken") => tokio::task::yield_now().await,
                    Err(e) => panic!("{transport}: {e}"),
                }
            }
        })
        .await;
        assert_eq!(again.expect("users").await["users"], json!(["dana"]));
    }
}

/// Resolves `f` or panics after the test timeout.
async fn within_timeout<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .expect("within the timeout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_danas_connecting_at_once_exactly_one_gets_in() {
    for transport in BOTH_TRANSPORTS {
        let app = spawn_app().await;
        let url = app.url();
        let attempts = (0..12).map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                try_connect(&url, "/chat", Some(json!({ "name": "dana" })), transport).await
            })
        });
        let results: Vec<_> = join_all(attempts)
            .await
            .into_iter()
            .map(|joined| joined.unwrap())
            .collect();
        let admitted: Vec<&Client> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(admitted.len(), 1, "{transport}");
        for refused in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(
                refused, "name_taken: someone called dana is already here",
                "{transport}"
            );
        }
        assert_eq!(
            admitted[0].expect("users").await,
            json!({ "users": ["dana"], "online": 1 })
        );
    }
}

#[tokio::test]
async fn names_in_any_script_are_accepted_and_normalized() {
    for transport in BOTH_TRANSPORTS {
        let app = spawn_app().await;
        let url = app.url();
        let mut clients = Vec::new();
        // "Jose" + COMBINING ACUTE ACCENT is stored as its NFC form "José".
        for name in ["José Ñúñez", "देवनागरी", "สมชาย", "O'Brien", "Jose\u{301}"]
        {
            clients.push(chat_with(&url, json!({ "name": name }), transport).await);
        }
        let last = clients.last().unwrap();
        let users = last.expect("users").await;
        let mut names: Vec<&str> = users["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        names.sort_unstable();
        let mut expected = vec!["José", "José Ñúñez", "देवनागरी", "สมชาย", "O'Brien"];
        expected.sort_unstable();
        assert_eq!(names, expected, "{transport}");
        let bob = chat_with(&url, json!({ "name": "bob" }), transport).await;
        clients[1].ack("chat message", json!("नमस्ते")).await;
        let heard = bob.expect("chat message").await;
        assert_eq!(heard["from"], json!("देवनागरी"));
        // The normalized name is taken by its other spelling too.
        let refused = try_connect(&url, "/chat", Some(json!({ "name": "José" })), transport)
            .await
            .err()
            .unwrap();
        assert!(refused.starts_with("name_taken"), "{refused}");
    }
}

#[tokio::test]
async fn control_and_formatting_characters_in_names_are_refused_clearly() {
    let app = spawn_app().await;
    let cases: [(Value, &str); 6] = [
        (
            json!("bell\u{7}"),
            "bad_auth: name may not contain control characters (found U+0007)",
        ),
        (
            json!("tab\tbed"),
            "bad_auth: name may not contain control characters (found U+0009)",
        ),
        (
            json!("zero\u{200B}width"),
            "bad_auth: name may not contain invisible formatting characters (found U+200B)",
        ),
        (
            json!("evil\u{202E}txt"),
            "bad_auth: name may not contain invisible formatting characters (found U+202E)",
        ),
        (
            json!("<b>"),
            "bad_auth: name may contain only letters, digits, spaces and . _ - ' (not '<')",
        ),
        (
            json!("x".repeat(33)),
            "bad_auth: name must be at most 32 characters",
        ),
    ];
    for (name, message) in cases {
        for transport in BOTH_TRANSPORTS {
            let refused = try_connect(
                &app.url(),
                "/chat",
                Some(json!({ "name": name })),
                transport,
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{name} got in"));
            assert_eq!(refused, message, "{transport}");
        }
    }
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
        json!({ "ok": true, "room": "lobby", "members": ["alice"], "history": [] })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_join_storm_everyone_learns_of_everyone_else_exactly_once() {
    let app = spawn_app().await;
    let url = app.url();
    let names: Vec<String> = (0..24).map(|i| format!("guest {i}")).collect();
    let clients = join_all(
        names
            .iter()
            .map(|name| chat_with(&url, json!({ "name": name }), Transport::WebSocket)),
    )
    .await;
    for client in &clients {
        let users = client.expect("users").await;
        let mut known: std::collections::BTreeSet<String> = users["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect();
        // `users` names who came first; each later arrival is told once.
        while known.len() < names.len() {
            let hello = client.expect("user connected").await;
            let name = hello["name"].as_str().unwrap().to_owned();
            assert!(
                known.insert(name.clone()),
                "{}: told twice about {name}",
                client.label
            );
        }
    }
    tokio::time::sleep(QUIET_WINDOW).await;
    for client in &clients {
        let extra = client
            .within("user connected", std::time::Duration::ZERO)
            .await;
        assert!(extra.is_none(), "{}: also told {extra:?}", client.label);
    }
}

/// The chat's events and notices are counted in `/metrics` under their own
/// names: `users` to the newcomer, the presence and room notices, and a
/// chat message (stored with its offset, then relayed).
#[tokio::test]
async fn chat_events_and_notices_are_counted_by_name() {
    let app = spawn_app().await;
    let ana = chatter(&app, "ana").await;
    ana.expect("users").await;
    let bo = chatter(&app, "bo").await;
    bo.expect("users").await;
    ana.expect("user connected").await;
    let said = ana.ack("chat message", json!({ "text": "hi" })).await;
    assert_ok(&said);
    assert_eq!(bo.expect("chat message").await["offset"], said["offset"]);
    assert_ok(&ana.ack("join", json!({ "room": "lobby" })).await);
    let metrics = scrape_metrics(&app.url()).await;
    for series in [
        r#"parcel_hub_events_received_total{namespace="/chat",event="chat message",outcome="ok"} 1"#,
        r#"parcel_hub_events_received_total{namespace="/chat",event="join",outcome="ok"} 1"#,
        r#"parcel_hub_events_sent_total{namespace="/chat",event="users",outcome="ok"} 2"#,
        r#"parcel_hub_events_sent_total{namespace="/chat",event="user connected",outcome="ok"} 2"#,
        r#"parcel_hub_events_sent_total{namespace="/chat",event="chat message",outcome="ok"} 1"#,
        r#"parcel_hub_events_sent_total{namespace="/chat",event="user joined",outcome="ok"} 1"#,
        r#"parcel_hub_ack_duration_seconds_count{namespace="/chat",event="chat message"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == series),
            "{series} in {metrics}"
        );
    }
    assert!(
        !metrics.contains(r#"namespace="/chat",event="unknown""#),
        "{metrics}"
    );
}
