//! What an operator relies on: `/metrics` whose numbers move, health that
//! reflects writes, JSON logs, CORS for the allowed origins only, the demo
//! credentials kept on loopback, retention, and a backup taken under load
//! that restores every acknowledged order.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const ADMIN: &str = "demo-admin";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("an HTTP client")
}

async fn scrape(app: &TestApp) -> String {
    let response = http()
        .get(format!("{}/metrics", app.url()))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of one sample (`name{labels}`), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

#[tokio::test]
async fn metrics_need_the_admin_token_unless_public() {
    let app = spawn_app().await;
    let url = format!("{}/metrics", app.url());
    let bare = http().get(&url).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    assert!(
        bare.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let wrong = http().get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let public = spawn_app_with(|c| c.metrics_public = true).await;
    let open = http()
        .get(format!("{}/metrics", public.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    assert!(open.text().await.unwrap().contains("parcel_hub_build_info"));
}

#[tokio::test]
async fn scraped_numbers_move_with_the_traffic() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    let queued = r#"parcel_hub_messages_queued_total{recipient="distributor"}"#;
    let pickups_ok =
        r#"parcel_hub_events_received_total{namespace="/vendor",event="pickup",outcome="ok"}"#;
    assert_eq!(sample(&before, queued), 0.0);

    let shop = vendor(&app, "acme-widgets").await;
    let truck = distributor(&app, "north-hub").await;
    shop.pickups_ok("m", 3, "north-hub").await;
    let first = truck.expect("pickup").await;
    assert_ok(
        &truck
            .ack("received", json!({ "messageId": first["messageId"] }))
            .await,
    );
    // An event nobody knows is counted, under one label whatever its name.
    assert_error(
        &shop.ack("no-such-event-1", json!({})).await,
        "unknown_event",
    );
    assert_error(
        &shop.ack("no-such-event-2", json!({})).await,
        "unknown_event",
    );

    let after = scrape(&app).await;
    assert_eq!(sample(&after, pickups_ok), 3.0, "{after}");
    assert_eq!(sample(&after, queued), 3.0);
    assert_eq!(
        sample(
            &after,
            r#"parcel_hub_messages_confirmed_total{recipient="distributor"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"parcel_hub_events_received_total{namespace="/vendor",event="unknown",outcome="unknown_event"}"#
        ),
        2.0
    );
    assert!(
        !after.contains("no-such-event"),
        "event labels stay bounded"
    );
    assert_eq!(
        sample(
            &after,
            r#"parcel_hub_events_sent_total{namespace="/distributor",event="pickup",outcome="ok"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &after,
            r#"parcel_hub_connected_sockets{namespace="/vendor"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"parcel_hub_connected_sockets{namespace="/distributor"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"parcel_hub_ack_duration_seconds_count{namespace="/vendor",event="pickup"}"#
        ),
        3.0
    );
    assert!(
        sample(
            &after,
            r#"parcel_hub_store_commit_duration_seconds_count{store="sqlite"}"#
        ) >= 3.0,
        "{after}"
    );
    // The depth gauge is refreshed in the background: two of three still wait.
    let depth = r#"parcel_hub_queue_depth{recipient="distributor"}"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if sample(&scrape(&app).await, depth) == 2.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue depth never read 2"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn health_splits_liveness_from_readiness() {
    let app = spawn_app().await;
    for path in ["/api/health", "/api/health/ready"] {
        let response = http()
            .get(format!("{}{path}", app.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["ok"], json!(true));
        assert_eq!(body["store"], json!("sqlite"));
        assert_eq!(
            body["checks"],
            json!({ "read": true, "write": true }),
            "{body}"
        );
        assert!(body["hub"].as_str().is_some_and(|h| !h.is_empty()));
        assert!(body["uptimeSeconds"].is_u64() && body["version"].is_string());
    }
    let live = http()
        .get(format!("{}/api/health/live", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.json::<Value>().await.unwrap()["ok"], json!(true));
}

/// Another process holding the database's write lock makes every write
/// wait and fail: health must say so, while reads still answer.
#[tokio::test]
async fn health_says_unavailable_while_writes_cannot_commit() {
    let app = spawn_app().await;
    let health = || async {
        let response = http()
            .get(format!("{}/api/health", app.url()))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    assert_eq!(health().await.0, 200);
    let blocker = rusqlite::Connection::open(&app.db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (status, body) = health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ok"], json!(false));
    assert_eq!(body["checks"]["read"], json!(true), "{body}");
    assert_eq!(body["checks"]["write"], json!(false), "{body}");
    let ready = http()
        .get(format!("{}/api/health/ready", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let live = http()
        .get(format!("{}/api/health/live", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200, "the process still answers");
    blocker.execute_batch("ROLLBACK").unwrap();
    // The write that waited behind the lock finishes; then health is ok again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = health().await;
        if status == 200 {
            assert_eq!(body["checks"]["write"], json!(true));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health never recovered: {body}"
        );
    }
}

/// Starts the binary with `args`, its stderr in `log`; returns it and its URL.
fn start_logging(args: &[&str], log: &Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start parcel-hub");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Keep reading: a closed stdout would fail the hub's next line.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _test_ended = tx.send(url.to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the hub prints its address");
    (child, url)
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hub.log");
    let db = dir.path().join("hub.db");
    let (mut child, url) = start_logging(
        &["--log-format", "json", "--db", db.to_str().unwrap()],
        &log,
    );
    let shop = try_connect(
        &url,
        "/vendor",
        Some(vendor_auth("acme-widgets")),
        Transport::WebSocket,
    )
    .await
    .unwrap();
    assert_ok(&shop.ack("pickup", pickup("j-1", "north-hub")).await);
    // Lines are written by the log thread; wait until the event's line is out.
    let deadline = std::time::Instant::now() + TIMEOUT;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("\"event in\"") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event line: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _killed = child.kill();
    let _reaped = child.wait();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{text}");
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let event_in = lines
        .iter()
        .find(|l| l["fields"]["message"] == json!("event in"))
        .unwrap();
    assert_eq!(event_in["level"], json!("INFO"));
    assert_eq!(event_in["fields"]["ns"], json!("/vendor"));
    assert_eq!(event_in["fields"]["event"], json!("pickup"));
    assert_eq!(event_in["fields"]["outcome"], json!("ok"));
    assert_eq!(event_in["target"], json!("parcel_hub::activity"));
    assert!(!text.contains("demo-acme"), "tokens never appear");
}

/// The hub refuses the demo credentials off loopback before it binds: the
/// address below is only checked, never listened on.
#[test]
fn a_non_loopback_start_without_credentials_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
        .args(["--listen", "0.0.0.0:0", "--db", ":memory:"])
        .env_remove("PARCEL_HUB_CREDENTIALS")
        .env_remove("PARCEL_HUB_DEMO")
        .output()
        .expect("run parcel-hub");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to serve the demo credentials on 0.0.0.0:0")
            && stderr.contains("--credentials FILE")
            && stderr.contains("--demo"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
}

#[tokio::test]
async fn demo_credentials_off_loopback_need_demo_and_real_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = parcel_hub::Config::for_tests(dir.path().join("hub.db"));
    config.listen = "0.0.0.0:0".parse().unwrap();
    let refused = parcel_hub::App::build(&config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("refusing to serve the demo credentials"),
        "{refused}"
    );
    config.demo = true;
    assert!(
        parcel_hub::App::build(&config).await.is_ok(),
        "--demo insists"
    );
    config.demo = false;
    // The hub built above still holds its database (its lock goes with
    // its last task); this one gets a file of its own.
    config.db = dir.path().join("hub-2.db");
    let creds = dir.path().join("creds.toml");
    std::fs::write(&creds, "admin_token = \"t\"\n[vendors]\nv = \"t\"\n").unwrap();
    config.credentials = Some(creds);
    assert!(parcel_hub::App::build(&config).await.is_ok());
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let allowed = "http://allowed.example:8080";
    let app = spawn_app_with(|c| c.cors_origin = vec![allowed.into()]).await;
    let client = http();
    let cors_headers = |r: &reqwest::Response| -> Vec<String> {
        r.headers()
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .map(|k| k.as_str().to_owned())
            .collect()
    };
    // A simple request, the API and the Socket.IO polling handshake.
    for path in ["/api/health", "/socket.io/?EIO=4&transport=polling"] {
        let yes = client
            .get(format!("{}{path}", app.url()))
            .header("origin", allowed)
            .send()
            .await
            .unwrap();
        assert_eq!(yes.status(), 200, "{path}");
        assert_eq!(
            yes.headers()["access-control-allow-origin"],
            allowed,
            "{path}"
        );
        assert_eq!(yes.headers()["access-control-allow-credentials"], "true");
        let no = client
            .get(format!("{}{path}", app.url()))
            .header("origin", "http://evil.example")
            .send()
            .await
            .unwrap();
        assert!(cors_headers(&no).is_empty(), "{path}: {:?}", no.headers());
    }
    // A preflight, as a page on the allowed origin sends before a POST.
    let preflight = |origin: &'static str| {
        client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/pickups", app.url()),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let yes = preflight(allowed).await.unwrap();
    assert!(yes.status().is_success(), "{}", yes.status());
    assert_eq!(yes.headers()["access-control-allow-origin"], allowed);
    assert_eq!(yes.headers()["access-control-allow-credentials"], "true");
    let methods = yes.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = yes.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(headers.contains("authorization") && headers.contains("content-type"));
    let no = preflight("http://evil.example").await.unwrap();
    assert!(cors_headers(&no).is_empty(), "{:?}", no.headers());

    // Without --cors-origin: same origin only, no CORS header for anyone.
    let plain = spawn_app().await;
    let r = client
        .get(format!("{}/api/health", plain.url()))
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert!(cors_headers(&r).is_empty());
}

#[tokio::test]
async fn a_wildcard_or_a_path_is_not_a_cors_origin() {
    for bad in [
        "*",
        "admin.socket.io",
        "https://admin.socket.io/page",
        "ftp://x",
    ] {
        let mut config = parcel_hub::Config::for_tests(":memory:");
        config.cors_origin = vec![bad.into()];
        let e = parcel_hub::App::build(&config)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cors-origin"), "{bad}: {e}");
    }
}

async fn order_status(app: &TestApp, order: &str) -> u16 {
    http()
        .get(format!("{}/api/orders/acme-widgets/{order}", app.url()))
        .basic_auth("acme-widgets", Some("demo-acme"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Delivers `order` to the end, every message confirmed unless `keep_last`.
async fn deliver(shop: &Client, truck: &Client, order: &str, keep_last: bool) {
    assert_ok(&shop.ack("pickup", pickup(order, "north-hub")).await);
    let picked = truck.expect("pickup").await;
    assert_ok(
        &truck
            .ack("received", json!({ "messageId": picked["messageId"] }))
            .await,
    );
    let step = json!({ "vendorId": "acme-widgets", "orderId": order });
    assert_ok(&truck.ack("in-transit", step.clone()).await);
    let moving = shop.expect("in-transit").await;
    assert_ok(
        &shop
            .ack("received", json!({ "messageId": moving["messageId"] }))
            .await,
    );
    assert_ok(&truck.ack("delivered", step).await);
    let done = shop.expect("delivered").await;
    if !keep_last {
        assert_ok(
            &shop
                .ack("received", json!({ "messageId": done["messageId"] }))
                .await,
        );
    }
}

#[tokio::test]
async fn retention_deletes_confirmed_deliveries_and_keeps_what_is_still_queued() {
    let app = spawn_app_with(|c| c.retain_delivered = Some(0.0)).await;
    let shop = vendor(&app, "acme-widgets").await;
    let truck = distributor(&app, "north-hub").await;
    deliver(&shop, &truck, "r-done", false).await;
    deliver(&shop, &truck, "r-unconfirmed", true).await;
    assert_ok(&shop.ack("pickup", pickup("r-pending", "north-hub")).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while order_status(&app, "r-done").await != 404 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "r-done was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(order_status(&app, "r-unconfirmed").await, 200);
    assert_eq!(order_status(&app, "r-pending").await, 200);
    let queued = shop.ack("getAll", json!({})).await;
    let kept: Vec<&str> = queued["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["order"]["orderId"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["r-unconfirmed"], "the unconfirmed message stays");
    assert_eq!(
        sample(
            &scrape(&app).await,
            "parcel_hub_retention_deleted_orders_total"
        ),
        1.0
    );
}

#[tokio::test]
async fn retention_is_refused_in_a_cluster_and_must_be_days() {
    let mut config = parcel_hub::Config::for_tests(":memory:");
    config.retain_delivered = Some(-1.0);
    let e = parcel_hub::App::build(&config)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--retain-delivered"), "{e}");
    config.retain_delivered = Some(30.0);
    config.redis = Some("redis://127.0.0.1:1".into());
    let e = parcel_hub::App::build(&config)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("SQLite only"), "{e}");
}

/// A backup taken while a vendor keeps sending pickups holds every order
/// acknowledged before the backup began, and a hub starts on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_acknowledged_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let copy = dir.path().join("copy.db");
    let hub = HubProcess::start(["--db", db.to_str().unwrap(), "--rate-limit", "0"]);
    let shop = try_connect(
        &hub.url,
        "/vendor",
        Some(vendor_auth("acme-widgets")),
        Transport::WebSocket,
    )
    .await
    .unwrap();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let load = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !*stopped.borrow_and_update() {
                let order = format!("b-{n}");
                let ack = shop.ack("pickup", pickup(&order, "north-hub")).await;
                assert_ok(&ack);
                acked.lock().unwrap().push(order);
                n += 1;
            }
            n
        })
    };
    // Some load first, then the backup while the load goes on.
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let backup = tokio::task::spawn_blocking({
        let (db, copy) = (db.clone(), copy.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
                .args(["backup", "--db"])
                .arg(&db)
                .arg(&copy)
                .output()
                .expect("run parcel-hub backup")
        }
    })
    .await
    .unwrap();
    let during = acked.lock().unwrap().len();
    stop.send(true).unwrap();
    let sent = load.await.unwrap();
    let stdout = String::from_utf8_lossy(&backup.stdout);
    assert!(
        backup.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(
        stdout.contains("backed up") && stdout.contains("orders"),
        "{stdout}"
    );
    assert!(during > before.len(), "the load went on during the backup");
    assert!(sent > before.len());
    drop(hub);

    let restored = HubProcess::start(["--db", copy.to_str().unwrap()]);
    let client = http();
    for order in &before {
        let status = client
            .get(format!("{}/api/orders/acme-widgets/{order}", restored.url))
            .basic_auth("acme-widgets", Some("demo-acme"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            status, 200,
            "order {order} acknowledged before the backup is missing"
        );
    }
    // The queued pickups came along too: the distributor can still read them.
    let truck = try_connect(
        &restored.url,
        "/distributor",
        Some(distributor_auth("north-hub")),
        Transport::WebSocket,
    )
    .await
    .unwrap();
    // A page at a time: each read page is confirmed, then the next is asked.
    let mut queued = 0;
    loop {
        let page = truck.ack("getAll", json!({ "limit": 500 })).await;
        let messages = page["messages"].as_array().unwrap();
        queued += messages.len();
        let confirms = messages
            .iter()
            .map(|m| truck.ack("received", json!({ "messageId": m["messageId"] })));
        futures_util::future::join_all(confirms).await;
        if page["more"] != json!(true) {
            break;
        }
    }
    assert!(
        queued >= before.len(),
        "{queued} queued, {} before",
        before.len()
    );
}

#[test]
fn a_backup_never_overwrites_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("taken.db");
    std::fs::write(&taken, "x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
        .args(["backup", "--db"])
        .arg(dir.path().join("missing.db"))
        .arg(&taken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "x");
}

/// A private `redis-server` on a free loopback port, stopped when dropped.
struct OwnRedis {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + TIMEOUT;
        while redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url,
            _dir: dir,
        }
    }

    fn config_set(&self, key: &str, value: &str) {
        let mut conn = redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(key)
            .arg(value)
            .query::<()>(&mut conn)
            .unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _already_dead = self.child.kill();
        let _reaped = self.child.wait();
    }
}

/// A Redis that refuses writes (here: no replica to acknowledge them)
/// still answers reads: health must say 503, and `redis_up` stays 1.
#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the cluster tests"
)]
async fn in_a_cluster_health_checks_writes_and_the_adapter() {
    let redis = OwnRedis::start();
    let app = spawn_app_with(|c| c.redis = Some(redis.url.clone())).await;
    let health = || async {
        let response = http()
            .get(format!("{}/api/health", app.url()))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, body) = health().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["checks"],
        json!({ "read": true, "write": true, "adapter": true })
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sample(&scrape(&app).await, "parcel_hub_redis_up") != 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis_up never read 1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    redis.config_set("min-replicas-to-write", "1");
    let (status, body) = health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["checks"],
        json!({ "read": true, "write": false, "adapter": true })
    );
    redis.config_set("min-replicas-to-write", "0");
    assert_eq!(health().await.0, 200);
}
