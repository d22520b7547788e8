//! `/caps`: learners' own CAPS lab clients (PROTOCOL.md "/caps"). When it
//! is served, lab orders as real orders of the sandbox, kept apart from
//! configured vendors and distributors, within the sandbox's limits; and
//! refusals that are never silent: a namespace the hub does not serve is
//! logged with its name and shown in the feed, and every refusal record
//! carries its reason. (The lab clients themselves, in JavaScript, are
//! `tests/caps/`.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// A lab client: `/caps`, no auth at all.
async fn lab(app: &TestApp, label: &str) -> Client {
    let mut client = try_connect(&app.url(), "/caps", None, Transport::WebSocket)
        .await
        .unwrap_or_else(|e| panic!("/caps refused: {e}"));
    client.label = label.into();
    client
}

async fn inspector(app: &TestApp) -> Client {
    let mut client = connect(app, "/inspector", json!({ "token": "demo-admin" })).await;
    client.label = "inspector".into();
    client.expect("snapshot").await;
    client
}

/// Reads activity records until one satisfies `wanted`.
async fn record_where(client: &Client, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
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

/// A credentials file with one vendor and one distributor (no demo set).
fn credentials(dir: &tempfile::TempDir, extra: &str) -> std::path::PathBuf {
    let path = dir.path().join("creds.toml");
    std::fs::write(
        &path,
        format!(
            "admin_token = \"admin\"\n[vendors]\nshop = \"t\"\n{extra}[distributors]\ntruck = \"t\"\n"
        ),
    )
    .unwrap();
    path
}

fn flat_pickup(store: &str, order: &str) -> Value {
    json!({ "store": store, "orderId": order, "customer": "Jamie Doe", "address": "Seattle, WA" })
}

#[tokio::test]
async fn caps_is_served_with_the_demo_credentials_or_the_flag_and_never_otherwise() {
    let demo = spawn_app().await;
    lab(&demo, "lab").await;

    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(&dir, "");
    let real = spawn_app_with(|c| c.credentials = Some(creds.clone())).await;
    assert_eq!(refusal(&real, "/caps", None).await, "Invalid namespace");
    // Nor can a person sign in as a lab identity on the consoles.
    assert_eq!(
        refusal(&real, "/vendor", Some(json!({ "vendorId": "caps.acme" }))).await,
        "unauthorized: lab identities (caps.…) sign in only while this hub serves /caps"
    );

    let flagged = spawn_app_with(|c| {
        c.credentials = Some(creds.clone());
        c.caps = true;
    })
    .await;
    lab(&flagged, "lab").await;
}

#[tokio::test]
async fn a_credentials_file_may_not_use_the_reserved_lab_ids() {
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(&dir, "\"caps.1-800-flowers\" = \"t\"\n");
    let mut config = parcel_hub::Config::for_tests(dir.path().join("hub.db"));
    config.credentials = Some(creds);
    let refused = parcel_hub::App::build(&config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("caps.1-800-flowers") && refused.contains("reserved"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_lab_pickup_goes_round_to_the_vendors_thank_you_with_the_lab_fields_on_top() {
    let app = spawn_app().await;
    let vendor = lab(&app, "lab vendor").await;
    let driver = lab(&app, "lab driver").await;
    let ack = vendor.ack("join", json!("1-206-flowers")).await;
    assert_eq!(ack["stores"], json!(["1-206-flowers"]));
    vendor
        .emit("pickup", flat_pickup("1-206-flowers", "o-1"))
        .await;
    let pickup = driver.expect("pickup").await;
    assert_eq!(pickup["store"], json!("1-206-flowers"));
    assert_eq!(pickup["orderId"], json!("o-1"));
    assert_eq!(pickup["customer"], json!("Jamie Doe"));
    assert_eq!(pickup["event"], json!("pickup"));
    assert!(pickup["messageId"].as_str().unwrap().starts_with("m-"));
    assert_eq!(pickup["order"]["vendorId"], json!("caps.1-206-flowers"));
    assert_eq!(pickup["order"]["distributorId"], json!("caps.drivers"));
    vendor.expect_none("pickup").await;

    // The driver echoes what it got, back to back.
    driver.emit("in-transit", pickup.clone()).await;
    driver.emit("delivered", pickup).await;
    let moving = vendor.expect("in-transit").await;
    assert_eq!(moving["order"]["status"], json!("in-transit"));
    let done = vendor.expect("delivered").await;
    assert_eq!(done["customer"], json!("Jamie Doe"));
    assert_eq!(done["order"]["status"], json!("delivered"));
    driver.expect_none("delivered").await;
}

#[tokio::test]
async fn events_keep_the_spelling_of_the_store_that_sent_them() {
    let app = spawn_app().await;
    let vendor = lab(&app, "lab vendor").await;
    let driver = lab(&app, "lab driver").await;
    vendor
        .emit(
            "PICKUP",
            json!({ "event": "PICKUP", "messageId": "x", "queueId": "Flowers R Us",
                    "order": { "store": "Flowers R Us", "id": 7, "customer": "Ana", "address": "Here" } }),
        )
        .await;
    let pickup = driver.expect("PICKUP").await;
    assert_eq!(pickup["event"], json!("PICKUP"));
    assert_eq!(
        pickup["queueId"],
        json!("Flowers R Us"),
        "its extra fields ride along"
    );
    assert_eq!(pickup["orderId"], json!("7"));
    assert_eq!(
        pickup["order"]["id"],
        json!(7),
        "the lab's own order fields too"
    );
    driver.emit("IN-TRANSIT", pickup.clone()).await;
    driver.emit("DELIVERY", pickup).await;
    vendor.expect("IN-TRANSIT").await;
    let done = vendor.expect("DELIVERY").await;
    assert_eq!(done["order"]["customer"], json!("Ana"));
}

#[tokio::test]
async fn an_offline_driver_catches_up_with_get_all_and_confirms_with_received() {
    let app = spawn_app().await;
    let vendor = lab(&app, "lab vendor").await;
    for order in ["o-1", "o-2"] {
        let ack = vendor
            .ack("pickup", flat_pickup("acme-widgets", order))
            .await;
        assert_ok(&ack);
    }
    let driver = lab(&app, "lab driver").await;
    driver
        .emit("getAll", json!({ "clientId": "driver", "event": "pickup" }))
        .await;
    let first = driver.expect("pickup").await;
    let second = driver.expect("pickup").await;
    assert_eq!(
        (first["orderId"].clone(), second["orderId"].clone()),
        (json!("o-1"), json!("o-2"))
    );
    // The lab text's confirmation: the order id as the message id.
    let ack = driver
        .ack(
            "received",
            json!({ "clientId": "driver", "event": "pickup", "messageId": "o-1" }),
        )
        .await;
    assert_eq!(ack["removed"], json!(true));
    // The misspelling, with the hub's message id.
    let ack = driver
        .ack("recieved", json!({ "messageId": second["messageId"] }))
        .await;
    assert_eq!(ack["removed"], json!(true));
    let left = driver.ack("get-all", json!({ "queueId": "driver" })).await;
    assert_eq!(left["messages"], json!([]));
}

#[tokio::test]
async fn a_lab_store_is_not_the_configured_vendor_of_the_same_name() {
    let app = spawn_app().await;
    let lab_vendor = lab(&app, "lab vendor").await;
    let ack = lab_vendor
        .ack("pickup", flat_pickup("1-800-flowers", "o-1"))
        .await;
    assert_eq!(ack["order"]["vendorId"], json!("caps.1-800-flowers"));

    let real = vendor(&app, "1-800-flowers").await;
    let mine = real.ack("orders", json!({ "status": "all" })).await;
    assert_eq!(
        mine["orders"],
        json!([]),
        "the demo vendor has no lab order"
    );
    // The real vendor's order of the same id is its own.
    let ack = real.ack("pickup", pickup("o-1", "north-hub")).await;
    assert_eq!(ack["duplicate"], json!(false));

    // A person watches the lab store on the vendor console: no token.
    let watcher = connect(&app, "/vendor", json!({ "vendorId": "caps.1-800-flowers" })).await;
    let lab_orders = watcher.ack("orders", json!({ "status": "all" })).await;
    assert_eq!(lab_orders["orders"].as_array().unwrap().len(), 1);
    assert_eq!(lab_orders["orders"][0]["customer"], json!("Jamie Doe"));
}

#[tokio::test]
async fn a_lab_client_cannot_reach_a_real_order_and_real_parties_cannot_reach_the_lab() {
    let app = spawn_app().await;
    let shop = vendor(&app, "acme-widgets").await;
    let north = distributor(&app, "north-hub").await;
    let lab_client = lab(&app, "lab").await;
    assert_ok(&shop.ack("pickup", pickup("o-1", "north-hub")).await);
    north.expect("pickup").await;
    lab_client.expect_none("pickup").await;

    // Naming the real vendor from /caps names the lab store of that name.
    let refused = lab_client
        .ack(
            "delivered",
            json!({ "store": "acme-widgets", "orderId": "o-1" }),
        )
        .await;
    assert_eq!(
        assert_error(&refused, "unknown_order"),
        "order o-1 does not exist"
    );
    let real = shop.ack("orders", json!({ "status": "all" })).await;
    assert_eq!(real["orders"][0]["status"], json!("pending"));

    // Lab pickups never reach a configured distributor.
    assert_ok(
        &lab_client
            .ack("pickup", flat_pickup("acme-widgets", "o-2"))
            .await,
    );
    north.expect_none("pickup").await;

    // Neither door crosses over.
    let to_lab = shop.ack("pickup", pickup("o-3", "caps.drivers")).await;
    assert_error(&to_lab, "unknown_distributor");
    let lab_shop = connect(&app, "/vendor", json!({ "vendorId": "caps.acme-widgets" })).await;
    let to_real = lab_shop.ack("pickup", pickup("o-4", "north-hub")).await;
    assert_error(&to_real, "forbidden");
}

#[tokio::test]
async fn the_lab_drivers_console_takes_lab_pickups_and_the_lab_vendor_hears_it() {
    let app = spawn_app().await;
    let console = connect(
        &app,
        "/distributor",
        json!({ "distributorId": "caps.drivers" }),
    )
    .await;
    let lab_vendor = lab(&app, "lab vendor").await;
    assert_ok(
        &lab_vendor
            .ack("pickup", flat_pickup("ACME Widgets", "o-1"))
            .await,
    );
    let pickup = console.expect("pickup").await;
    assert_eq!(pickup["order"]["vendorId"], json!("caps.ACME_20Widgets"));
    let ack = console
        .ack(
            "in-transit",
            json!({ "vendorId": "caps.ACME_20Widgets", "orderId": "o-1" }),
        )
        .await;
    assert_ok(&ack);
    let heard = lab_vendor.expect("in-transit").await;
    assert_eq!(heard["store"], json!("ACME Widgets"));
    assert_eq!(heard["customer"], json!("Jamie Doe"));
}

#[tokio::test]
async fn the_sandbox_takes_so_many_stores_and_open_orders_and_no_more() {
    let app = spawn_app_with(|c| {
        c.caps_stores = 1;
        c.caps_open_orders = 2;
    })
    .await;
    let client = lab(&app, "lab").await;
    for order in ["o-1", "o-2"] {
        assert_ok(&client.ack("pickup", flat_pickup("first", order)).await);
    }
    let full = client.ack("pickup", flat_pickup("first", "o-3")).await;
    let message = assert_error(&full, "forbidden");
    assert!(message.contains("2 open orders"), "{message}");
    // A repeat of a recorded pickup is still a duplicate, not refused.
    let again = client.ack("pickup", flat_pickup("first", "o-1")).await;
    assert_eq!(again["duplicate"], json!(true));
    // Delivering one makes room.
    client.ack("in-transit", flat_pickup("first", "o-1")).await;
    assert_ok(&client.ack("delivered", flat_pickup("first", "o-1")).await);
    assert_ok(&client.ack("pickup", flat_pickup("first", "o-3")).await);

    let second = client.ack("pickup", flat_pickup("second", "o-1")).await;
    let message = assert_error(&second, "forbidden");
    assert!(
        message.contains("1 lab stores with open orders"),
        "{message}"
    );
    // The same limits hold for a lab store signed in on the vendor console.
    let console = connect(&app, "/vendor", json!({ "vendorId": "caps.second" })).await;
    let refused = console.ack("pickup", pickup("o-1", "caps.drivers")).await;
    assert!(assert_error(&refused, "forbidden").contains("1 lab stores with open orders"));
    // Once the first store has nothing open, another may come.
    for order in ["o-2", "o-3"] {
        client.ack("in-transit", flat_pickup("first", order)).await;
        assert_ok(&client.ack("delivered", flat_pickup("first", order)).await);
    }
    assert_ok(&client.ack("pickup", flat_pickup("second", "o-1")).await);
}

#[tokio::test]
async fn every_caps_socket_spends_from_one_budget() {
    let app = spawn_app_with(|c| {
        c.caps_rate_limit = 1;
        c.caps_rate_burst = 2;
    })
    .await;
    let one = lab(&app, "one").await;
    let two = lab(&app, "two").await;
    assert_ok(&one.ack("join", json!("s")).await);
    assert_ok(&two.ack("join", json!("s")).await);
    let over = one.ack("join", json!("s")).await;
    assert_eq!(
        assert_error(&over, "rate_limited"),
        "too many events; slow down"
    );
    // Other namespaces keep their own budgets.
    let shop = vendor(&app, "acme-widgets").await;
    assert_ok(&shop.ack("orders", json!({})).await);
}

#[tokio::test]
async fn lab_refusals_say_what_is_missing_and_unknown_events_name_the_lab_events() {
    let app = spawn_app().await;
    let client = lab(&app, "lab").await;
    let no_store = client.ack("pickup", json!({ "orderId": "1" })).await;
    assert!(assert_error(&no_store, "invalid_payload").contains("no store"));
    let unknown = client.ack("teleport", json!({})).await;
    let message = assert_error(&unknown, "unknown_event");
    assert!(
        message.starts_with("\"teleport\" is not an event of /caps") && message.contains("getAll"),
        "{message}"
    );
}

#[tokio::test]
async fn a_refused_namespace_is_shown_in_the_feed_with_its_name_and_reason() {
    let app = spawn_app().await;
    let watcher = inspector(&app).await;
    assert_eq!(refusal(&app, "/nowhere", None).await, "Invalid namespace");
    let record = record_where(&watcher, "a refused /nowhere", |r| {
        r["namespace"] == json!("/nowhere")
    })
    .await;
    assert_eq!(record["event"], json!("connect"));
    assert_eq!(record["outcome"], json!("invalid_namespace"));
    assert!(
        record["reason"]
            .as_str()
            .unwrap()
            .contains("no such namespace"),
        "{record}"
    );
    // Refused again, and again: each time, nothing left behind.
    assert_eq!(refusal(&app, "/nowhere", None).await, "Invalid namespace");
    assert_eq!(refusal(&app, "/", None).await, "Invalid namespace");
    let root = record_where(&watcher, "a refused /", |r| r["namespace"] == json!("/")).await;
    assert!(root["reason"].as_str().unwrap().contains("/caps"), "{root}");
}

#[tokio::test]
async fn every_refusal_in_the_feed_carries_its_reason() {
    let app = spawn_app().await;
    let watcher = inspector(&app).await;
    refusal(&app, "/vendor", Some(json!({ "vendorId": "acme-widgets" }))).await;
    let connect = record_where(&watcher, "a refused vendor", |r| {
        r["namespace"] == json!("/vendor") && r["event"] == json!("connect")
    })
    .await;
    assert_eq!(connect["outcome"], json!("bad_auth"));
    assert_eq!(connect["reason"], json!("token is required"));

    let shop = vendor(&app, "acme-widgets").await;
    shop.emit("pickup", json!({ "distributorId": "north-hub" }))
        .await;
    let event = record_where(&watcher, "a refused pickup", |r| {
        r["event"] == json!("pickup") && r["outcome"] != json!("ok")
    })
    .await;
    assert_eq!(event["outcome"], json!("invalid_payload"));
    assert_eq!(event["reason"], json!("orderId is required"));
}

#[tokio::test]
async fn the_snapshot_lists_caps_while_it_is_served() {
    let app = spawn_app().await;
    let _client = lab(&app, "lab").await;
    let watcher = connect(&app, "/inspector", json!({ "token": "demo-admin" })).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let snapshot = watcher
            .within("snapshot", left)
            .await
            .expect("a snapshot with the lab client");
        let caps = snapshot["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == json!("/caps"))
            .cloned();
        if let Some(caps) = caps
            && caps["sockets"].as_array().is_some_and(|s| s.len() == 1)
        {
            assert_eq!(caps["sockets"][0]["identity"], json!("caps lab client"));
            break;
        }
    }
}

#[test]
fn a_refused_namespace_is_logged_with_its_name_and_reason() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
        .args(["--listen", "127.0.0.1:0", "--db", ":memory:"])
        .env("RUST_LOG", "parcel_hub=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start parcel-hub");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let out = tx.clone();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _test_ended = out.send(line);
        }
    });
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _test_ended = tx.send(line);
        }
    });
    let wait_for = |what: &dyn Fn(&str) -> bool| -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if what(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("no such line from the hub"),
            }
        }
    };
    let url = wait_for(&|l| l.starts_with("listening on "))
        .trim_start_matches("listening on ")
        .to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let message = runtime.block_on(async {
        match try_connect(&url, "/nowhere", None, Transport::Polling).await {
            Ok(_) => panic!("/nowhere should have been refused"),
            Err(message) => message,
        }
    });
    assert_eq!(message, "Invalid namespace");
    let line = wait_for(&|l| l.contains("connection refused"));
    assert!(
        line.contains("ns=/nowhere") && line.contains("reason=no such namespace"),
        "{line}"
    );
    let _killed = child.kill();
    let _reaped = child.wait();
}

#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the Redis cases"
)]
#[tokio::test]
async fn in_a_cluster_a_refused_namespace_subscribes_nothing_in_redis() {
    let redis = RedisPrefix::new(&test_redis());
    let app = spawn_app_with(|c| {
        c.redis = Some(redis.url.clone());
        c.redis_prefix = redis.prefix.clone();
    })
    .await;
    for _ in 0..3 {
        assert_eq!(refusal(&app, "/nowhere", None).await, "Invalid namespace");
    }
    // The hub still works across its own namespaces.
    let shop = vendor(&app, "acme-widgets").await;
    assert_ok(&shop.ack("orders", json!({})).await);
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(format!("{}*", redis.prefix))
        .query(&mut conn)
        .unwrap();
    assert!(
        channels.iter().any(|c| c.contains("#/vendor#")),
        "the hub's namespaces are subscribed: {channels:?}"
    );
    assert!(
        !channels.iter().any(|c| c.contains("/nowhere")),
        "a name tried is not: {channels:?}"
    );
}
