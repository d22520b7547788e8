//! Pickups reach only the chosen distributor; news reaches only the owning vendor.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn pickup_reaches_every_socket_of_the_chosen_distributor_and_nobody_else() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let acme_second_tab = vendor(&app, "acme-widgets").await;
    let flowers = vendor(&app, "1-800-flowers").await;
    let north_a = distributor(&app, "north-hub").await;
    let north_b = distributor(&app, "north-hub").await;
    let south = distributor(&app, "south-hub").await;

    let ack = acme.ack("pickup", pickup("o-1001", "north-hub")).await;
    assert_ok(&ack);
    assert_eq!(ack["duplicate"], json!(false));
    assert_eq!(ack["order"]["status"], json!("pending"));
    assert_eq!(ack["order"]["vendorId"], json!("acme-widgets"));
    let message_id = ack["messageId"].as_str().expect("a messageId").to_owned();

    for north in [&north_a, &north_b] {
        let envelope = north.expect("pickup").await;
        assert_eq!(envelope["messageId"], json!(message_id));
        assert_eq!(envelope["event"], json!("pickup"));
        assert_eq!(envelope["order"]["orderId"], json!("o-1001"));
        assert_eq!(envelope["order"]["distributorId"], json!("north-hub"));
        assert_eq!(envelope["order"]["customer"], json!("Jamie Doe"));
        assert!(envelope["at"].as_str().unwrap().ends_with('Z'));
    }
    south.expect_silence().await;
    acme.expect_silence().await;
    // The other tab hears of the new order by the live notice, not a message.
    let notice = acme_second_tab.expect("order").await;
    assert_eq!(notice["order"], ack["order"]);
    acme_second_tab.expect_silence().await;
    flowers.expect_silence().await;
}

#[tokio::test]
async fn in_transit_and_delivered_reach_only_the_owning_vendor() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let acme_second_tab = vendor(&app, "acme-widgets").await;
    let flowers = vendor(&app, "1-800-flowers").await;
    let north = distributor(&app, "north-hub").await;
    let north_other_driver = distributor(&app, "north-hub").await;

    assert_ok(&acme.ack("pickup", pickup("o-7", "north-hub")).await);
    north.expect("pickup").await;
    north_other_driver.expect("pickup").await;

    let order = json!({ "vendorId": "acme-widgets", "orderId": "o-7" });
    let ack = north.ack("in-transit", order.clone()).await;
    assert_ok(&ack);
    assert_eq!(ack["order"]["status"], json!("in-transit"));
    for tab in [&acme, &acme_second_tab] {
        let news = tab.expect("in-transit").await;
        assert_eq!(news["order"]["status"], json!("in-transit"));
        assert_eq!(news["messageId"], ack["messageId"]);
    }

    let ack = north.ack("delivered", order).await;
    assert_ok(&ack);
    for tab in [&acme, &acme_second_tab] {
        let news = tab.expect("delivered").await;
        assert_eq!(news["order"]["status"], json!("delivered"));
        let history: Vec<_> = news["order"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(history, ["pending", "in-transit", "delivered"]);
    }
    flowers.expect_silence().await;
    north.expect_silence().await;
    // The other driver hears of each move by the live notice, not a message.
    for step in ["in-transit", "delivered"] {
        let notice = north_other_driver.expect("order").await;
        assert_eq!(notice["order"]["status"], json!(step));
    }
    north_other_driver.expect_silence().await;
}

#[tokio::test]
async fn a_vendor_id_in_the_payload_cannot_impersonate_another_vendor() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let mut payload = pickup("o-5", "south-hub");
    payload["vendorId"] = json!("1-800-flowers");
    let ack = acme.ack("pickup", payload).await;
    assert_eq!(ack["order"]["vendorId"], json!("acme-widgets"));
}

#[tokio::test]
async fn a_pickup_sent_without_a_callback_is_still_recorded_and_delivered() {
    let app = spawn_app().await;
    let acme = vendor(&app, "acme-widgets").await;
    let north = distributor(&app, "north-hub").await;
    acme.emit("pickup", pickup("o-no-ack", "north-hub")).await;
    let envelope = north.expect("pickup").await;
    assert_eq!(envelope["order"]["orderId"], json!("o-no-ack"));
    acme.expect_silence().await;
}

#[tokio::test]
async fn the_same_flow_works_over_http_long_polling() {
    let app = spawn_app().await;
    let acme = try_connect(
        &app.url(),
        "/vendor",
        Some(vendor_auth("acme-widgets")),
        Transport::Polling,
    )
    .await
    .unwrap();
    let north = try_connect(
        &app.url(),
        "/distributor",
        Some(distributor_auth("north-hub")),
        Transport::Polling,
    )
    .await
    .unwrap();
    assert_ok(&acme.ack("pickup", pickup("o-poll", "north-hub")).await);
    assert_eq!(
        north.expect("pickup").await["order"]["orderId"],
        json!("o-poll")
    );
    let ack = north
        .ack(
            "in-transit",
            json!({ "vendorId": "acme-widgets", "orderId": "o-poll" }),
        )
        .await;
    assert_ok(&ack);
    assert_eq!(
        acme.expect("in-transit").await["order"]["status"],
        json!("in-transit")
    );
}

/// socketioxide sends CONNECT before it runs the connect handler; rooms and
/// events are set up in a middleware, so a client that emits at once is heard.
/// (The real binary, for its multi-threaded runtime; see also the cluster test.)
#[tokio::test]
async fn an_event_sent_the_moment_a_client_is_connected_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::start([
        std::ffi::OsStr::new("--db"),
        dir.path().join("hub.db").as_os_str(),
    ]);
    for (namespace, auth, event) in [
        ("/vendor", vendor_auth("acme-widgets"), "getAll"),
        ("/distributor", distributor_auth("north-hub"), "getAll"),
        ("/chat", json!({ "name": "alice" }), "join"),
    ] {
        for n in 0..10 {
            let payload = json!({ "room": "lobby" });
            // Chat names are unique while connected: a name of its own each
            // time, since the previous client may not be gone yet.
            let auth = match auth.get("name") {
                Some(_) => json!({ "name": format!("alice {n}") }),
                None => auth.clone(),
            };
            let ack = ack_right_after_connect(&hub.url, namespace, &auth, event, &payload)
                .await
                .unwrap_or_else(|| panic!("{namespace}: no ack for the first event"));
            assert_ok(&ack);
        }
    }
}
