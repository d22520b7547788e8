//! Several hubs behind one Redis: rooms span hubs, the queue is shared,
//! a killed hub loses nothing, racing hubs move an order once, and losing
//! Redis is answered with `internal` until it is back.
//!
//! These tests need `PARCEL_HUB_TEST_REDIS` (a URL) when the tests are
//! built; without it they show as ignored, with the reason. Each test uses its own key prefix, so they run in
//! parallel on one Redis and leave nothing behind.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::*;

/// A hub process that joins the cluster of `keys`.
fn hub(keys: &RedisPrefix) -> HubProcess {
    HubProcess::start([
        "--redis",
        keys.url.as_str(),
        "--redis-prefix",
        keys.prefix.as_str(),
    ])
}

/// Connects to `namespace` of the hub at `url` over WebSocket.
async fn on(url: &str, namespace: &str, auth: Value, label: &str) -> Client {
    let mut client = try_connect(url, namespace, Some(auth), Transport::WebSocket)
        .await
        .unwrap_or_else(|e| panic!("{label}: connect refused: {e}"));
    client.label = label.to_owned();
    client
}

/// A vendor's socket on the hub at `url`, labelled for failures.
async fn vendor_on(url: &str, id: &str, label: &str) -> Client {
    on(url, "/vendor", vendor_auth(id), label).await
}

/// A distributor's socket on the hub at `url`, labelled for failures.
async fn distributor_on(url: &str, id: &str, label: &str) -> Client {
    on(url, "/distributor", distributor_auth(id), label).await
}

fn order_ref(order: &str) -> Value {
    json!({ "vendorId": "acme-widgets", "orderId": order })
}

fn message_ids(get_all: &Value) -> Vec<String> {
    get_all["messages"]
        .as_array()
        .expect("getAll lists messages")
        .iter()
        .map(|m| m["messageId"].as_str().expect("a messageId").to_owned())
        .collect()
}

#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the cluster tests"
)]
async fn a_pickup_reaches_every_hub_and_the_news_come_back_across_hubs() {
    let url = test_redis();
    let keys = RedisPrefix::new(&url);
    let (a, b) = (hub(&keys), hub(&keys));
    let acme = vendor_on(&a.url, "acme-widgets", "acme on A").await;
    let north_a = distributor_on(&a.url, "north-hub", "north on A").await;
    let north_b = distributor_on(&b.url, "north-hub", "north on B").await;
    let south_b = distributor_on(&b.url, "south-hub", "south on B").await;

    let ack = acme.ack("pickup", pickup("o-1", "north-hub")).await;
    assert_ok(&ack);
    for north in [&north_a, &north_b] {
        let message = north.expect("pickup").await;
        assert_eq!(message["messageId"], ack["messageId"], "{}", north.label);
    }
    south_b.expect_none("pickup").await;

    for event in ["in-transit", "delivered"] {
        let moved = north_b.ack(event, order_ref("o-1")).await;
        assert_ok(&moved);
        assert_eq!(moved["duplicate"], json!(false));
        let news = acme.expect(event).await;
        assert_eq!(news["messageId"], moved["messageId"]);
        assert_eq!(news["order"]["status"], json!(event));
    }
}

/// A vendor tab and a distributor tab on each hub: the `order` notices of
/// one hub's tab reach the party's tabs on the other hub, and `orders`
/// lists the same on both.
#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the cluster tests"
)]
async fn notices_and_listings_of_current_state_span_the_hubs() {
    let url = test_redis();
    let keys = RedisPrefix::new(&url);
    let (a, b) = (hub(&keys), hub(&keys));
    let acme_a = vendor_on(&a.url, "acme-widgets", "acme on A").await;
    let acme_b = vendor_on(&b.url, "acme-widgets", "acme on B").await;
    let north_a = distributor_on(&a.url, "north-hub", "north on A").await;
    let north_b = distributor_on(&b.url, "north-hub", "north on B").await;

    let ack = acme_a.ack("pickup", pickup("o-1", "north-hub")).await;
    assert_ok(&ack);
    assert_eq!(acme_b.expect("order").await["order"], ack["order"]);
    acme_a.expect_none("order").await;
    let moved = north_b.ack("in-transit", order_ref("o-1")).await;
    assert_eq!(north_a.expect("order").await["order"], moved["order"]);
    north_b.expect_none("order").await;

    for (client, query) in [
        (&acme_a, json!({})),
        (&acme_b, json!({})),
        (&north_a, json!({ "status": "in-transit" })),
        (&north_b, json!({ "status": "in-transit" })),
    ] {
        let listed = client.ack("orders", query).await;
        assert_eq!(
            listed["orders"],
            json!([moved["order"]]),
            "{}",
            client.label
        );
        assert_eq!(listed["next"], Value::Null);
    }
}

#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the cluster tests"
)]
async fn a_distributor_offline_during_the_pickup_catches_up_on_another_hub() {
    let url = test_redis();
    let keys = RedisPrefix::new(&url);
    let (a, b) = (hub(&keys), hub(&keys));
    let acme = vendor_on(&a.url, "acme-widgets", "acme on A").await;
    let ack = acme.ack("pickup", pickup("o-1", "north-hub")).await;
    assert_ok(&ack);

    let north = distributor_on(&b.url, "north-hub", "north on B").await;
    let all = north.ack("getAll", json!({})).await;
    assert_ok(&all);
    assert_eq!(all["messages"][0]["messageId"], ack["messageId"]);
    assert_eq!(all["messages"][0]["order"], ack["order"]);
    let confirmed = north
        .ack("received", json!({ "messageId": ack["messageId"] }))
        .await;
    assert_eq!(confirmed["removed"], json!(true));
    let again = distributor_on(&a.url, "north-hub", "north on A").await;
    assert_eq!(message_ids(&again.ack("getAll", json!({})).await).len(), 0);
}

#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the cluster tests"
)]
async fn killing_a_hub_loses_nothing_it_acknowledged() {
    let url = test_redis();
    let keys = RedisPrefix::new(&url);
    let (mut a, b) = (hub(&keys), hub(&keys));
    let acme = vendor_on(&a.url, "acme-widgets", "acme on A").await;
    let mut acknowledged = Vec::new();
    for n in 0..30 {
        let ack = acme
            .ack("pickup", pickup(&format!("o-{n}"), "north-hub"))
            .await;
        assert_ok(&ack);
        acknowledged.push(ack["messageId"].as_str().unwrap().to_owned());
    }
    // SIGKILL: hub A gets no chance to flush or say goodbye.
    a.child.kill().unwrap();
    a.child.wait().unwrap();

    let north = distributor_on(&b.url, "north-hub", "north on B").await;
    let all = north.ack("getAll", json!({})).await;
    assert_eq!(message_ids(&all), acknowledged, "oldest first, none lost");
    let moved = north.ack("in-transit", order_ref("o-7")).await;
    assert_ok(&moved);
}

#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the cluster tests"
)]
async fn two_hubs_racing_in_transit_move_the_order_exactly_once() {
    let url = test_redis();
    let keys = RedisPrefix::new(&url);
    let (a, b) = (hub(&keys), hub(&keys));
    let acme = vendor_on(&a.url, "acme-widgets", "acme on A").await;
    assert_ok(&acme.ack("pickup", pickup("o-race", "north-hub")).await);
    let mut drivers = Vec::new();
    for n in 0..6 {
        let url = if n % 2 == 0 { &a.url } else { &b.url };
        drivers.push(
            on(
                url,
                "/distributor",
                distributor_auth("north-hub"),
                &format!("north #{n}"),
            )
            .await,
        );
    }
    let attempts = drivers
        .iter()
        .flat_map(|d| (0..10).map(move |_| d.ack("in-transit", order_ref("o-race"))));
    let acks = join_all(attempts).await;
    assert_eq!(acks.len(), 60);
    for ack in &acks {
        assert_ok(ack);
    }
    let fresh: Vec<&Value> = acks
        .iter()
        .filter(|ack| ack["duplicate"] == json!(false))
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one transition");

    let news = acme.ack("getAll", json!({})).await;
    let in_transit: Vec<&Value> = news["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["event"] == json!("in-transit"))
        .collect();
    assert_eq!(in_transit.len(), 1, "exactly one queued message");
    assert_eq!(in_transit[0]["messageId"], fresh[0]["messageId"]);
    assert_eq!(
        in_transit[0]["order"]["history"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the cluster tests"
)]
async fn the_socket_list_spans_every_hub() {
    let url = test_redis();
    let keys = RedisPrefix::new(&url);
    let join = |c: &mut parcel_hub::Config| {
        c.redis = Some(keys.url.clone());
        c.redis_prefix = keys.prefix.clone();
    };
    let a = spawn_app_with(join).await;
    let b = spawn_app_with(join).await;
    let _north = distributor(&a, "north-hub").await;
    let _acme = vendor(&b, "acme-widgets").await;

    let seen_from_a = a.io.sockets().await.unwrap();
    let seen_from_b = b.io.sockets().await.unwrap();
    assert_eq!(seen_from_a.len(), 2, "{seen_from_a:?}");
    let find = |list: &[parcel_hub::app::ClusterSocket], ns: &str| {
        list.iter()
            .find(|s| s.namespace == ns)
            .cloned()
            .unwrap_or_else(|| panic!("no socket in {ns}: {list:?}"))
    };
    let (north, acme) = (
        find(&seen_from_a, "/distributor"),
        find(&seen_from_a, "/vendor"),
    );
    assert!(north.local && !acme.local);
    assert_ne!(north.hub, acme.hub);
    assert_eq!(north.rooms, ["distributor:north-hub"]);
    assert_eq!(north.identity.as_deref(), Some("distributor north-hub"));
    assert_eq!(north.transport, Some("websocket"));
    assert_eq!(acme.rooms, ["vendor:acme-widgets"]);
    assert_eq!(acme.identity.as_deref(), Some("vendor acme-widgets"));
    let (north_b, acme_b) = (
        find(&seen_from_b, "/distributor"),
        find(&seen_from_b, "/vendor"),
    );
    assert_eq!((&north_b.id, &north_b.hub), (&north.id, &north.hub));
    assert_eq!((&acme_b.id, &acme_b.hub), (&acme.id, &acme.hub));
    assert!(acme_b.local && !north_b.local);

    // The inspector's snapshot (here through GET /api/inspect) shows both hubs.
    let snapshot: Value = reqwest::Client::new()
        .get(format!("{}/api/inspect", a.url()))
        .bearer_auth("demo-admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sockets_of = |ns: &str| -> Vec<Value> {
        snapshot["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == ns)
            .map(|n| n["sockets"].as_array().unwrap().clone())
            .unwrap_or_default()
    };
    let vendors = sockets_of("/vendor");
    assert_eq!(vendors.len(), 1, "{snapshot}");
    assert_eq!(vendors[0]["hub"], json!(acme.hub), "{snapshot}");
    assert_eq!(vendors[0]["rooms"], json!(["vendor:acme-widgets"]));
    let distributors = sockets_of("/distributor");
    assert_eq!(distributors[0]["hub"], json!(north.hub), "{snapshot}");
    assert_eq!(snapshot["hub"], json!(north.hub), "hub A took it");
}

/// A Redis of this test's own, on a free loopback port, that it may kill.
struct PrivateRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port, tempfile::tempdir().unwrap())
    }

    fn start_on(port: u16, dir: tempfile::TempDir) -> Self {
        let child = Self::spawn(port, &dir);
        let redis = Self { child, port, dir };
        redis.wait_until_it_answers();
        redis
    }

    fn spawn(port: u16, dir: &tempfile::TempDir) -> Child {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)")
    }

    fn wait_until_it_answers(&self) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !self.answers() {
            assert!(
                std::time::Instant::now() < deadline,
                "the private redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn answers(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// Starts a fresh, empty one on the same port after [`Self::stop`].
    fn restart(&mut self) {
        self.child = Self::spawn(self.port, &self.dir);
        self.wait_until_it_answers();
    }

    /// SIGKILL: gone at once, as when Redis crashes.
    fn stop(&mut self) {
        let _already_dead = self.child.kill();
        let _reaped = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn health(app: &TestApp) -> (u16, Value) {
    let response = reqwest::get(format!("{}/api/health", app.url()))
        .await
        .expect("the hub answers HTTP");
    let status = response.status().as_u16();
    (status, response.json().await.expect("health is JSON"))
}

#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the cluster tests"
)]
async fn losing_redis_is_answered_with_internal_errors_and_the_hubs_recover() {
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let join = |c: &mut parcel_hub::Config| c.redis = Some(url.clone());
    let a = spawn_app_with(join).await;
    let b = spawn_app_with(join).await;
    let acme = vendor(&a, "acme-widgets").await;
    let north = distributor(&b, "north-hub").await;
    assert_ok(&acme.ack("pickup", pickup("o-1", "north-hub")).await);
    north.expect("pickup").await;

    redis.stop();
    assert_error(
        &acme.ack("pickup", pickup("o-2", "north-hub")).await,
        "internal",
    );
    assert_error(&north.ack("getAll", json!({})).await, "internal");
    let (status, body) = health(&a).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ok"], json!(false));
    assert_eq!(body["store"], json!("redis"));

    redis.restart();
    for app in [&a, &b] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = health(app).await;
            if status == 200 {
                assert_eq!(body["ok"], json!(true));
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hub did not recover: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Both hubs are subscribed again: a pickup on A reaches B.
    let ack = acme.ack("pickup", pickup("o-3", "north-hub")).await;
    assert_ok(&ack);
    let message = north.expect("pickup").await;
    assert_eq!(message["messageId"], ack["messageId"]);
    a.stop().await;
    b.stop().await;
}

/// socketioxide sends CONNECT before it runs the connect handler; rooms and
/// events are set up in a middleware, so a client that emits at once is heard
/// (with the Redis adapter this race was lost about one time in three).
#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the cluster tests"
)]
async fn an_event_sent_the_moment_a_client_is_connected_is_answered() {
    let url = test_redis();
    let keys = RedisPrefix::new(&url);
    let a = hub(&keys);
    for _ in 0..30 {
        let ack = ack_right_after_connect(
            &a.url,
            "/vendor",
            &vendor_auth("acme-widgets"),
            "pickup",
            &json!({}),
        )
        .await
        .expect("an ack for the first event");
        assert_error(&ack, "invalid_payload");
    }
}
