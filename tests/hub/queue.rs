//! The durable queue: `getAll`, `received`, idempotent retries.

use serde_json::json;

use crate::helpers::*;

fn ids(envelope: &serde_json::Value) -> Vec<String> {
    envelope["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["messageId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_offline_distributor_catches_up_with_get_all_after_reconnecting() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let mut sent = Vec::new();
    for n in 1..=3 {
        let ack = acme
            .ack("pickup", pickup(&format!("o-{n}"), "north-hub"))
            .await;
        sent.push(ack["messageId"].as_str().unwrap().to_owned());
    }
    let north = distributor(&app, "north-hub").await;
    let all = north.ack("getAll", json!({})).await;
    assert_ok(&all);
    assert_eq!(ids(&all), sent, "oldest first, nothing missing");
    let orders: Vec<_> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["order"]["orderId"].clone())
        .collect();
    assert_eq!(orders, [json!("o-1"), json!("o-2"), json!("o-3")]);
    // Not confirmed yet: it is still there on the next read.
    assert_eq!(ids(&north.ack("getAll", json!({})).await), sent);
}

#[tokio::test]
async fn received_removes_the_message_for_every_socket_of_that_identity() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let north_a = distributor(&app, "north-hub").await;
    let north_b = distributor(&app, "north-hub").await;
    let ack = acme.ack("pickup", pickup("o-1", "north-hub")).await;
    let message_id = ack["messageId"].clone();
    north_a.expect("pickup").await;

    let confirmed = north_a
        .ack("received", json!({ "messageId": message_id }))
        .await;
    assert_eq!(confirmed, json!({ "ok": true, "removed": true }));
    assert_eq!(
        ids(&north_b.ack("getAll", json!({})).await),
        Vec::<String>::new()
    );
    let again = north_b
        .ack("received", json!({ "messageId": message_id }))
        .await;
    assert_eq!(again, json!({ "ok": true, "removed": false }));
}

#[tokio::test]
async fn nobody_can_confirm_a_message_of_another_queue() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let south = distributor(&app, "south-hub").await;
    let ack = acme.ack("pickup", pickup("o-1", "north-hub")).await;
    let stolen = south
        .ack("received", json!({ "messageId": ack["messageId"] }))
        .await;
    assert_eq!(stolen["removed"], json!(false));
    let north = distributor(&app, "north-hub").await;
    assert_eq!(
        north.ack("getAll", json!({})).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn get_all_without_a_callback_re_emits_each_queued_message() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    acme.ack("pickup", pickup("o-1", "north-hub")).await;
    acme.ack("pickup", pickup("o-2", "north-hub")).await;
    let north = distributor(&app, "north-hub").await;
    north.emit("getAll", json!({})).await;
    let mut got = vec![
        north.expect("pickup").await["order"]["orderId"].clone(),
        north.expect("pickup").await["order"]["orderId"].clone(),
    ];
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, [json!("o-1"), json!("o-2")]);
}

#[tokio::test]
async fn get_all_accepts_no_payload_at_all() {
    let app = spawn_app().await;
    let north = distributor(&app, "north-hub").await;
    let all = north.ack("getAll", json!(null)).await;
    assert_eq!(all, json!({ "ok": true, "messages": [], "more": false }));
    let acme = vendor(&app, "acme-widgets").await;
    assert_ok(&acme.ack("pickup", pickup("o-1", "north-hub")).await);
    let all = north.ack_with_nothing("getAll").await;
    assert_eq!(
        all["messages"][0]["order"]["orderId"],
        json!("o-1"),
        "{all}"
    );
}

#[tokio::test]
async fn a_repeated_pickup_returns_the_stored_order_and_queues_nothing_new() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let north = distributor(&app, "north-hub").await;
    let first = acme.ack("pickup", pickup("o-1", "north-hub")).await;
    north.expect("pickup").await;
    let retry = acme.ack("pickup", pickup("o-1", "north-hub")).await;
    assert_ok(&retry);
    assert_eq!(retry["duplicate"], json!(true));
    assert_eq!(retry["order"], first["order"]);
    north.expect_none("pickup").await;
    assert_eq!(
        north.ack("getAll", json!({})).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let mut changed = pickup("o-1", "north-hub");
    changed["address"] = json!("Portland, OR");
    let conflict = acme.ack("pickup", changed).await;
    assert!(assert_error(&conflict, "invalid_payload").contains("o-1"));
}

#[tokio::test]
async fn repeated_transitions_are_duplicates_and_queue_nothing() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let north = distributor(&app, "north-hub").await;
    acme.ack("pickup", pickup("o-1", "north-hub")).await;
    let order = json!({ "vendorId": "acme-widgets", "orderId": "o-1" });
    for event in ["in-transit", "delivered"] {
        let first = north.ack(event, order.clone()).await;
        assert_eq!(first["duplicate"], json!(false));
        acme.expect(event).await;
        let again = north.ack(event, order.clone()).await;
        assert_ok(&again);
        assert_eq!(again["duplicate"], json!(true));
        assert_eq!(again["messageId"], json!(null));
        acme.expect_none(event).await;
    }
    let queued = acme.ack("getAll", json!({})).await;
    let events: Vec<_> = queued["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["event"].clone())
        .collect();
    assert_eq!(events, [json!("in-transit"), json!("delivered")]);
}
