//! Every error code of the ack envelope, each from a real request.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_malformed_pickup_is_an_invalid_payload_naming_the_field() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let north = distributor(&app, "north-hub").await;
    let cases = [
        (json!({}), "orderId is required"),
        (json!("o-1"), "payload must be a JSON object"),
        (json!([1, 2]), "payload must be a JSON object"),
        (json!({ "orderId": 17 }), "orderId must be a string"),
        (json!({ "orderId": "o-1" }), "distributorId is required"),
        (
            json!({ "orderId": "o-1", "distributorId": "north-hub" }),
            "customer is required",
        ),
        (
            json!({ "orderId": "o 1", "distributorId": "north-hub", "customer": "c", "address": "a" }),
            "orderId may contain only A-Z a-z 0-9 . _ -",
        ),
        (
            json!({ "orderId": "o-1", "distributorId": "north-hub", "customer": "c", "address": "x".repeat(201) }),
            "address must be at most 200 characters",
        ),
    ];
    for (payload, expected) in cases {
        let ack = acme.ack("pickup", payload.clone()).await;
        assert_eq!(
            assert_error(&ack, "invalid_payload"),
            expected,
            "for {payload}"
        );
    }
    north.expect_silence().await;
}

#[tokio::test]
async fn a_pickup_for_an_unknown_distributor_is_refused() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let ack = acme.ack("pickup", pickup("o-1", "west-hub")).await;
    assert_eq!(
        assert_error(&ack, "unknown_distributor"),
        "distributor west-hub does not exist"
    );
}

#[tokio::test]
async fn moving_an_order_that_does_not_exist_is_unknown_order() {
    let app = spawn_app().await;
    let north = distributor(&app, "north-hub").await;
    let ack = north
        .ack(
            "in-transit",
            json!({ "vendorId": "acme-widgets", "orderId": "o-404" }),
        )
        .await;
    assert_error(&ack, "unknown_order");
}

#[tokio::test]
async fn a_distributor_may_not_move_another_distributors_order() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let south = distributor(&app, "south-hub").await;
    acme.ack("pickup", pickup("o-1", "north-hub")).await;
    let ack = south
        .ack(
            "in-transit",
            json!({ "vendorId": "acme-widgets", "orderId": "o-1" }),
        )
        .await;
    assert_error(&ack, "forbidden");
    acme.expect_none("in-transit").await;
}

#[tokio::test]
async fn delivered_before_in_transit_is_an_invalid_transition() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let north = distributor(&app, "north-hub").await;
    acme.ack("pickup", pickup("o-1", "north-hub")).await;
    let ack = north
        .ack(
            "delivered",
            json!({ "vendorId": "acme-widgets", "orderId": "o-1" }),
        )
        .await;
    assert_eq!(
        assert_error(&ack, "invalid_transition"),
        "order o-1 is pending; it cannot become delivered"
    );
    acme.expect_none("delivered").await;
}

#[tokio::test]
async fn an_unknown_event_is_answered_with_unknown_event() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let ack = acme.ack("teleport", json!({})).await;
    assert_error(&ack, "unknown_event");
    let chat = chatter(&app, "alice").await;
    assert_error(&chat.ack("pickup", json!({})).await, "unknown_event");
}

#[tokio::test]
async fn events_over_the_rate_limit_are_refused_and_the_socket_keeps_working() {
    let app = spawn_app_with(|c| {
        c.rate_limit = 1;
        c.rate_burst = 2;
    })
    .await;
    let alice = chatter(&app, "alice").await;
    let bob = chatter(&app, "bob").await;
    let mut codes = Vec::new();
    for n in 0..4 {
        let ack = alice
            .ack("chat message", json!({ "text": format!("m{n}") }))
            .await;
        codes.push(if ack["ok"] == json!(true) {
            "ok".to_owned()
        } else {
            ack["error"]["code"].as_str().unwrap().to_owned()
        });
    }
    assert_eq!(codes, ["ok", "ok", "rate_limited", "rate_limited"]);
    // Another socket has its own budget.
    assert_ok(&bob.ack("chat message", json!("still here")).await);
}

#[tokio::test]
async fn a_storage_failure_is_internal_and_reveals_nothing() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    // Break the database under the running hub, keeping how to mend it.
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    let mend: Vec<String> = conn
        .prepare("SELECT sql FROM sqlite_master WHERE tbl_name = 'messages' AND sql IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    conn.execute_batch("DROP TABLE messages;").unwrap();
    let ack = acme.ack("pickup", pickup("o-1", "north-hub")).await;
    let message = assert_error(&ack, "internal");
    assert!(!message.contains("messages"), "no internals in {message}");
    // Nothing half-done: the order was rolled back with its message.
    for sql in &mend {
        conn.execute_batch(sql).unwrap();
    }
    let retry = acme.ack("pickup", pickup("o-1", "north-hub")).await;
    assert_eq!(retry["duplicate"], json!(false), "{retry}");
}
