//! What no client may do to the hub, whatever it sends: hold memory with
//! binary attachments, hold connections with half-sent HTTP, flood the log,
//! keep the hub from stopping. Each test drives the attack with a real
//! client or raw frames and checks that the attacker is refused and that
//! everyone else is still served.

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
    scrape_metrics(&app.url()).await
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

/// Reads what the hub sends on `tcp` until it closes the connection.
async fn until_closed(tcp: &mut tokio::net::TcpStream) -> String {
    let mut seen = Vec::new();
    tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut seen))
        .await
        .expect("the hub closes the connection")
        .unwrap_or_default();
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn idle_and_half_sent_http_connections_are_closed() {
    let app = spawn_app_with(|c| {
        c.header_timeout = 1;
        c.request_timeout = 2;
    })
    .await;
    let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut half_head = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    half_head
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut half_body = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    half_body
        .write_all(
            b"POST /api/pickups HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Authorization: Basic YWNtZS13aWRnZXRzOmRlbW8tYWNtZQ==\r\nContent-Length: 100\r\n\r\n{\"orderId\"",
        )
        .await
        .unwrap();
    assert_eq!(until_closed(&mut idle).await, "");
    let answer = until_closed(&mut half_head).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    let answer = until_closed(&mut half_body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    let health = reqwest::get(format!("{}/api/health", app.url()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn half_sent_requests_and_open_sockets_do_not_hold_the_stop() {
    let app = spawn_app().await;
    let _alice = chatter(&app, "alice").await;
    let _polling = chat_with(&app.url(), json!({ "name": "bob" }), Transport::Polling).await;
    let mut half = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"POST /api/pickups HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let _idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // `stop` waits at most TIMEOUT (5 s) and fails the test otherwise.
    app.stop().await;
    assert_eq!(until_closed(&mut half).await, "");
}

#[tokio::test]
async fn refused_names_are_clipped_and_one_client_cannot_flood_the_log() {
    let app = spawn_app().await;
    let mallory = chatter(&app, "mallory").await;
    let long = "x".repeat(60_000);
    let ack = mallory.ack(&long, json!({})).await;
    let message = assert_error(&ack, "unknown_event");
    assert!(message.len() < 200, "{message}");
    assert!(message.contains("x..."), "{message}");
    // 3,000 refused events at once: over the socket's rate limit and over
    // the client's budget of refusal log lines.
    let refusals = (0..3_000).map(|i| mallory.ack("no such event", json!({ "i": i })));
    let answers = futures_util::future::join_all(refusals).await;
    assert!(answers.iter().all(|a| a["ok"] == json!(false)));
    let metrics = scrape(&app).await;
    let suppressed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("parcel_hub_log_suppressed_total "))
        .expect("the suppressed lines are counted")
        .trim()
        .parse()
        .unwrap();
    assert!(suppressed > 0, "{metrics}");
    // Everyone else is still answered, and logged.
    let alice = chatter(&app, "alice").await;
    assert_ok(&alice.ack("chat message", json!("hello")).await);
}

/// What an HTML form on another site can send: `text/plain`, no preflight,
/// the vendor's cached Basic credentials, its own `Origin`.
#[tokio::test]
async fn a_cross_site_form_post_creates_no_pickup() {
    let app = spawn_app_with(|c| c.cors_origin = vec!["https://admin.example".into()]).await;
    let north = distributor(&app, "north-hub").await;
    let post = |content_type: &'static str, origin: Option<String>, order: &str| {
        let mut request = reqwest::Client::new()
            .post(format!("{}/api/pickups", app.url()))
            .basic_auth("acme-widgets", Some("demo-acme"))
            .header("content-type", content_type)
            .body(pickup(order, "north-hub").to_string());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, answer) = post(
        "text/plain",
        Some("https://evil.example".into()),
        "o-csrf-1",
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = post("text/plain", None, "o-csrf-2").await;
    assert_eq!(status, 415, "{answer}");
    assert_eq!(answer["error"]["code"], json!("unsupported_media_type"));
    let (status, _) = post(
        "application/json",
        Some("https://evil.example".into()),
        "o-csrf-3",
    )
    .await;
    assert_eq!(status, 403);
    north.expect_none("pickup").await;
    let own = format!("http://{}", app.addr);
    let (status, _) = post("application/json; charset=utf-8", Some(own), "o-same").await;
    assert_eq!(status, 201);
    let (status, _) = post(
        "application/json",
        Some("https://admin.example".into()),
        "o-cors",
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = post("application/json", None, "o-script").await;
    assert_eq!(status, 201);
    let all = north.ack("getAll", json!({})).await;
    let ids: Vec<_> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["order"]["orderId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["o-same", "o-cors", "o-script"]);
}

/// "`{}` or nothing": the events whose payload is optional take no
/// argument at all, `null` or `[]`, on every namespace and both transports.
#[tokio::test]
async fn optional_payloads_take_nothing_null_or_an_empty_list_everywhere() {
    let app = spawn_app().await;
    for transport in [Transport::WebSocket, Transport::Polling] {
        let acme = try_connect(
            &app.url(),
            "/vendor",
            Some(vendor_auth("acme-widgets")),
            transport,
        )
        .await
        .unwrap();
        let north = try_connect(
            &app.url(),
            "/distributor",
            Some(distributor_auth("north-hub")),
            transport,
        )
        .await
        .unwrap();
        let chat = chat_with(
            &app.url(),
            json!({ "name": format!("nothing-{}", transport.as_str()) }),
            transport,
        )
        .await;
        let lab = try_connect(&app.url(), "/caps", None, transport)
            .await
            .unwrap();
        let cases: [(&Client, &str); 5] = [
            (&acme, "getAll"),
            (&north, "getAll"),
            (&chat, "typing"),
            (&chat, "stop typing"),
            (&lab, "getAll"),
        ];
        for (client, event) in cases {
            let ack = client.ack_with_nothing(event).await;
            assert_eq!(ack["ok"], json!(true), "{event} with nothing: {ack}");
            for payload in [json!(null), json!([]), json!({})] {
                let ack = client.ack(event, payload.clone()).await;
                assert_eq!(ack["ok"], json!(true), "{event} with {payload}: {ack}");
            }
        }
        // Without a callback, a bare `getAll` re-emits what is queued.
        let order = format!("o-nothing-{}", transport.as_str());
        assert_ok(&acme.ack("pickup", pickup(&order, "north-hub")).await);
        assert_eq!(
            north.expect("pickup").await["order"]["orderId"],
            json!(order)
        );
        north.emit_args("getAll", &[]).await;
        let again = north.expect("pickup").await;
        assert_eq!(again["order"]["orderId"], json!(order));
        assert_ok(
            &north
                .ack("received", json!({ "messageId": again["messageId"] }))
                .await,
        );
    }
}

/// `getAll` answers a page of a long queue, oldest first, and says `more`.
#[tokio::test]
async fn get_all_answers_a_page_of_a_long_queue_and_says_more() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let north = distributor(&app, "north-hub").await;
    for chunk in (0..600).collect::<Vec<_>>().chunks(150) {
        let sends = chunk
            .iter()
            .map(|i| acme.ack("pickup", pickup(&format!("o-long-{i:04}"), "north-hub")));
        for ack in futures_util::future::join_all(sends).await {
            assert_ok(&ack);
        }
    }
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["order"]["orderId"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = north.ack("getAll", json!({})).await;
    assert_eq!(first["more"], json!(true));
    let first_ids = ids(&first);
    assert_eq!(first_ids.len(), 100);
    let mut sorted = first_ids.clone();
    sorted.sort();
    assert_eq!(
        first_ids.first().map(String::as_str),
        sorted.first().map(String::as_str)
    );
    let big = north.ack("getAll", json!({ "limit": 500 })).await;
    assert_eq!((ids(&big).len(), &big["more"]), (500, &json!(true)));
    assert_eq!(ids(&big)[..100], first_ids[..]);
    for limit in [json!(0), json!(501), json!("all")] {
        assert_error(
            &north.ack("getAll", json!({ "limit": limit })).await,
            "invalid_payload",
        );
    }
    for message in big["messages"].as_array().unwrap() {
        assert_ok(
            &north
                .ack("received", json!({ "messageId": message["messageId"] }))
                .await,
        );
    }
    let rest = north.ack("getAll", json!(null)).await;
    assert_eq!((ids(&rest).len(), &rest["more"]), (100, &json!(false)));
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_address() {
    let app = spawn_app().await;
    let wrong = json!({ "vendorId": "acme-widgets", "token": "guess" });
    for _ in 0..20 {
        let refusal = refusal(&app, "/vendor", Some(wrong.clone())).await;
        assert!(refusal.starts_with("unauthorized"), "{refusal}");
    }
    let refusal_now = refusal(&app, "/vendor", Some(wrong)).await;
    assert!(
        refusal_now.starts_with("rate_limited: too many failed sign-ins"),
        "{refusal_now}"
    );
    // While throttled, even the right token is not tried.
    let right = refusal(&app, "/vendor", Some(vendor_auth("acme-widgets"))).await;
    assert!(right.starts_with("rate_limited"), "{right}");
}

/// Failed HTTP Basic sign-ins spend the same per-address budget as the
/// Socket.IO ones; past it the address gets 429 with `Retry-After`,
/// whatever it sends. Missing credentials are not guesses.
#[tokio::test]
async fn failed_http_basic_sign_ins_are_throttled_per_address() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let post = |credentials: Option<(&str, &str)>, order: &str| {
        let request = client
            .post(format!("{}/api/pickups", app.url()))
            .json(&pickup(order, "north-hub"))
            .timeout(TIMEOUT);
        match credentials {
            Some((user, token)) => request.basic_auth(user, Some(token)),
            None => request,
        }
        .send()
    };
    for _ in 0..25 {
        assert_eq!(post(None, "o-none").await.unwrap().status(), 401);
    }
    let right = Some(("acme-widgets", "demo-acme"));
    assert_eq!(post(right, "o-first").await.unwrap().status(), 201);
    for _ in 0..20 {
        let wrong = post(Some(("acme-widgets", "guess")), "o-guess")
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
    }
    let throttled = post(Some(("acme-widgets", "guess")), "o-guess")
        .await
        .unwrap();
    assert_eq!(throttled.status(), 429);
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&wait), "Retry-After: {wait}");
    let body: serde_json::Value = throttled.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("rate_limited"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("too many failed sign-ins from your address; try again in"),
        "{message}"
    );
    // While throttled, even the right token is not tried, at either door.
    assert_eq!(post(right, "o-second").await.unwrap().status(), 429);
    let socket = refusal(&app, "/vendor", Some(vendor_auth("acme-widgets"))).await;
    assert!(socket.starts_with("rate_limited"), "{socket}");
}

/// A raw Engine.IO long-polling session signed in to `namespace`, which
/// then stops polling: what the hub sends it waits in its buffer.
struct StalledPolling {
    http: reqwest::Client,
    url: String,
}

impl StalledPolling {
    async fn join(app: &TestApp, namespace: &str, auth: serde_json::Value) -> Self {
        let http = reqwest::Client::new();
        let base = format!("{}/socket.io/?EIO=4&transport=polling", app.url());
        let open = http.get(&base).timeout(TIMEOUT).send().await.unwrap();
        let open = open.text().await.unwrap();
        let handshake: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
        let url = format!("{base}&sid={}", handshake["sid"].as_str().unwrap());
        let stalled = Self { http, url };
        stalled.send(&format!("40{namespace},{auth}")).await;
        let joined = tokio::time::timeout(TIMEOUT, async {
            loop {
                let packets = stalled.poll().await.expect("the session is open");
                if packets
                    .iter()
                    .any(|p| p.starts_with(&format!("40{namespace},")))
                {
                    return;
                }
            }
        })
        .await;
        assert!(joined.is_ok(), "the hub accepts {namespace}");
        stalled
    }

    async fn send(&self, packet: &str) {
        let sent = self
            .http
            .post(&self.url)
            .body(packet.to_owned())
            .timeout(TIMEOUT)
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200);
    }

    /// Polls what the buffer held until the DISCONNECT of `namespace`
    /// comes (or the session is closed): true if within the time limit.
    async fn until_disconnected(&self, namespace: &str) -> bool {
        let disconnect = format!("41{namespace},");
        tokio::time::timeout(TIMEOUT, async {
            loop {
                match self.poll().await {
                    Some(packets) if !packets.contains(&disconnect) => {}
                    _ => return,
                }
            }
        })
        .await
        .is_ok()
    }

    /// One poll: the packets the hub had for this session; `None` once
    /// the hub has closed the session.
    async fn poll(&self) -> Option<Vec<String>> {
        let answer = self
            .http
            .get(&self.url)
            .timeout(TIMEOUT)
            .send()
            .await
            .unwrap();
        if answer.status() != 200 {
            return None;
        }
        let body = answer.text().await.unwrap();
        Some(body.split('\u{1e}').map(str::to_owned).collect())
    }
}

/// A distributor's socket that stops reading while pickups are broadcast
/// to its room is disconnected as a slow consumer, once, like one that
/// stops reading its own re-emits (the broadcast that finds its buffer
/// full cannot say whose it is; the next emit to the room goes to each
/// socket and finds it); the pickups stay queued for `getAll`.
#[tokio::test]
async fn a_socket_that_stops_reading_room_emits_is_disconnected_and_loses_nothing() {
    let app = spawn_app_with(|c| c.socket_buffer = 8).await;
    let stalled = StalledPolling::join(&app, "/distributor", distributor_auth("south-hub")).await;
    let acme = vendor(&app, "acme-widgets").await;
    acme.pickups_ok("o-stall", 30, "south-hub").await;
    let metrics = scrape(&app).await;
    assert!(
        metrics.contains(
            "parcel_hub_sockets_dropped_total{namespace=\"/distributor\",reason=\"slow_consumer\"} 1"
        ),
        "{metrics}"
    );
    // Polling again, it reads what its buffer held, then the DISCONNECT
    // (or finds its session closed).
    assert!(
        stalled.until_disconnected("/distributor").await,
        "the slow consumer is disconnected"
    );
    let again = distributor(&app, "south-hub").await;
    let all = again.ack("getAll", json!({ "limit": 100 })).await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 30, "{all}");
}

/// A chat socket that stops reading while messages are broadcast to
/// everyone is disconnected as a slow consumer, as in a party's room.
#[tokio::test]
async fn a_chat_socket_that_stops_reading_broadcasts_is_disconnected() {
    let app = spawn_app_with(|c| c.socket_buffer = 8).await;
    let stalled = StalledPolling::join(&app, "/chat", json!({ "name": "sleepy" })).await;
    let alice = chatter(&app, "alice").await;
    for i in 0..20 {
        assert_ok(
            &alice
                .ack("chat message", json!({ "text": format!("m{i}") }))
                .await,
        );
    }
    let metrics = scrape(&app).await;
    assert!(
        metrics.contains(
            "parcel_hub_sockets_dropped_total{namespace=\"/chat\",reason=\"slow_consumer\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        stalled.until_disconnected("/chat").await,
        "the slow consumer is disconnected"
    );
}

#[tokio::test]
async fn a_socket_whose_buffer_is_full_is_disconnected_and_catches_up() {
    let app = spawn_app_with(|c| c.socket_buffer = 8).await;
    let acme = vendor(&app, "acme-widgets").await;
    acme.pickups_ok("o-slow", 40, "south-hub").await;
    let south = distributor(&app, "south-hub").await;
    // Re-emits 40 messages at once into a buffer of 8.
    south.emit_args("getAll", &[]).await;
    let dropped = tokio::time::timeout(TIMEOUT, async {
        while south.is_connected() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(dropped.is_ok(), "the slow consumer is disconnected");
    let metrics = scrape(&app).await;
    assert!(
        metrics.contains(
            "parcel_hub_sockets_dropped_total{namespace=\"/distributor\",reason=\"slow_consumer\"} 1"
        ),
        "{metrics}"
    );
    // Reconnected, it reads everything a page at a time.
    let again = distributor(&app, "south-hub").await;
    let all = again.ack("getAll", json!({})).await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 40);
}

#[tokio::test]
async fn a_second_hub_on_one_database_file_does_not_start() {
    let app = spawn_app().await;
    let config = parcel_hub::Config::for_tests(app.db.clone());
    let refused = parcel_hub::App::build(&config).await.unwrap_err();
    let refused = format!("{refused:#}");
    assert!(refused.contains("another parcel-hub is using"), "{refused}");
    let acme = vendor(&app, "acme-widgets").await;
    assert_ok(&acme.ack("pickup", pickup("o-one-hub", "north-hub")).await);
}

#[tokio::test]
async fn a_deleted_database_file_refuses_writes_and_fails_health() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    assert_ok(&acme.ack("pickup", pickup("o-before", "north-hub")).await);
    std::fs::remove_file(&app.db).unwrap();
    // Acknowledged now, it would be lost on restart: refused instead.
    assert_error(
        &acme.ack("pickup", pickup("o-after", "north-hub")).await,
        "internal",
    );
    let health = reqwest::get(format!("{}/api/health", app.url()))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["checks"]["write"], json!(false), "{body}");
}

#[tokio::test]
async fn a_read_only_shm_file_stops_the_start_with_words() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let shm = dir.path().join("hub.db-shm");
    std::fs::write(&shm, vec![0_u8; 32 * 1024]).unwrap();
    std::fs::set_permissions(&shm, std::fs::Permissions::from_mode(0o444)).unwrap();
    if std::fs::OpenOptions::new().write(true).open(&shm).is_ok() {
        eprintln!("skipped: running as root, a read-only file is still writable");
        return;
    }
    let refused = parcel_hub::App::build(&parcel_hub::Config::for_tests(db))
        .await
        .unwrap_err();
    let refused = format!("{refused:#}");
    assert!(refused.contains("hub.db-shm"), "{refused}");
}

/// Every join is announced to every chat socket: one address may not
/// join without limit.
#[tokio::test]
async fn a_storm_of_chat_joins_from_one_address_is_refused_past_its_budget() {
    let app = spawn_app().await;
    let alice = chatter(&app, "alice").await;
    let joins = (0..120).map(|i| {
        let url = app.url();
        async move {
            try_connect(
                &url,
                "/chat",
                Some(json!({ "name": format!("storm-{i}") })),
                Transport::WebSocket,
            )
            .await
        }
    });
    let outcomes = futures_util::future::join_all(joins).await;
    let refused: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(!refused.is_empty(), "some joins are refused");
    assert!(
        refused
            .iter()
            .all(|r| r.starts_with("rate_limited: too many chat joins")),
        "{refused:?}"
    );
    assert_ok(&alice.ack("chat message", json!("still here")).await);
}
