//! Shared test helpers: a real hub on 127.0.0.1:0 and real Socket.IO clients.
//!
//! Clients are the library's own [`parcel_hub::client::Client`] (the real
//! protocol over a real WebSocket or long-polling), wrapped so a test can
//! wait for one event while the others stay buffered. Every wait has a
//! timeout; proving that something did *not* arrive uses [`QUIET_WINDOW`].

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parcel_hub::app::HubIo;
use parcel_hub::client::{Client as LibClient, ClientError, Received};
use parcel_hub::{App, Config};
use redis::Commands;
use serde_json::{Value, json};
use tokio::sync::{Mutex, oneshot};

pub(crate) use parcel_hub::client::Transport;

/// How long we wait for something that should happen.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// How long we watch to prove that something does not happen.
pub(crate) const QUIET_WINDOW: Duration = Duration::from_millis(300);

/// A hub running in this process, on its own database file.
pub(crate) struct TestApp {
    pub addr: SocketAddr,
    pub db: PathBuf,
    /// The hub's Socket.IO handle, to ask it what it sees (e.g. the cluster's sockets).
    pub io: HubIo,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Keeps the database directory alive as long as the app.
    _dir: Arc<tempfile::TempDir>,
}

impl TestApp {
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the hub gracefully and waits until it has finished.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).expect("the hub is running");
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(TIMEOUT, server)
                .await
                .expect("the hub stops within the timeout")
                .expect("the hub task did not panic")
                .expect("the hub stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _already_stopped = tx.send(());
        }
    }
}

/// Hub logs go through the test harness, so only failing tests show them.
fn init_test_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(parcel_hub::telemetry::DEFAULT_FILTER)
    });
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Starts a hub with default settings on a fresh database.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a hub after `adjust` has changed the test configuration.
pub(crate) async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut config = Config::for_tests(dir.path().join("hub.db"));
    adjust(&mut config);
    init_test_logs();
    let app = App::build(&config).await.expect("the hub builds");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let io = app.io.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        db: config.db.clone(),
        io,
        shutdown: Some(tx),
        server: Some(server),
        _dir: dir,
    }
}

/// The real binary on a free loopback port, with extra `args`.
pub(crate) struct HubProcess {
    pub child: Child,
    pub url: String,
}

impl HubProcess {
    pub(crate) fn start<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self::start_binary(Path::new(env!("CARGO_BIN_EXE_parcel-hub")), None, args)
    }

    /// Starts `binary` (in `dir` as its working folder, if given).
    pub(crate) fn start_binary<I, S>(binary: &Path, dir: Option<&Path>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut command = Command::new(binary);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .args(args.into_iter().map(Into::into))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start parcel-hub");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _test_ended = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the hub prints its address");
        Self { child, url }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _already_dead = self.child.kill();
        let _reaped = self.child.wait();
    }
}

/// The Redis for cluster tests and the Redis store suite: `PARCEL_HUB_TEST_REDIS`.
///
/// The tests that call this are marked ignored unless the variable was set
/// when they were built (the build script's `redis_tests` cfg); once they
/// run, Redis must answer.
pub(crate) fn test_redis() -> String {
    match std::env::var("PARCEL_HUB_TEST_REDIS") {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => panic!(
            "PARCEL_HUB_TEST_REDIS is not set: run the Redis tests with it (redis://127.0.0.1:6379)"
        ),
    }
}

/// A fresh key prefix in a Redis that must answer; its keys go on drop.
pub(crate) struct RedisPrefix {
    pub url: String,
    pub prefix: String,
}

impl RedisPrefix {
    pub(crate) fn new(url: &str) -> Self {
        let answer = redis::Client::open(url)
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if let Err(e) = answer {
            panic!("PARCEL_HUB_TEST_REDIS={url} is set but Redis does not answer: {e}");
        }
        Self {
            url: url.to_owned(),
            prefix: format!("parcel-hub-test-{}", uuid::Uuid::now_v7().simple()),
        }
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let cleaned = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut c| {
                let keys: Vec<String> = c
                    .scan_match::<_, String>(format!("{}:*", self.prefix))?
                    .filter_map(Result::ok)
                    .collect();
                for chunk in keys.chunks(500) {
                    redis::cmd("DEL").arg(chunk).query::<()>(&mut c)?;
                }
                Ok(())
            });
        if let Err(e) = cleaned {
            eprintln!("could not delete the test keys {}:*: {e}", self.prefix);
        }
    }
}

/// Connects to `namespace` of the hub at `url` (`http://…`) and sends
/// `event` with an ack the very moment `connect` returns (right after the
/// CONNECT reply), as a fast client does. Returns the ack's first argument,
/// or `None` if no ack came.
pub(crate) async fn ack_right_after_connect(
    url: &str,
    namespace: &str,
    auth: &Value,
    event: &str,
    payload: &Value,
) -> Option<Value> {
    let client = LibClient::connect(url, namespace, Some(auth), TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("connect to {namespace}: {e}"));
    client.emit_with_ack(event, payload, TIMEOUT).await.ok()
}

/// A connected Socket.IO client that records everything it receives.
pub(crate) struct Client {
    pub label: String,
    inner: LibClient,
    /// Events read while waiting for another one, in arrival order.
    skipped: Mutex<Vec<Received>>,
}

/// The `auth` of each role with the demo credentials.
pub(crate) fn vendor_auth(id: &str) -> Value {
    let token = parcel_hub::config::DEMO_VENDORS
        .iter()
        .find(|(v, _)| *v == id)
        .map(|(_, t)| *t)
        .expect("a demo vendor");
    json!({ "vendorId": id, "token": token })
}

pub(crate) fn distributor_auth(id: &str) -> Value {
    let token = parcel_hub::config::DEMO_DISTRIBUTORS
        .iter()
        .find(|(d, _)| *d == id)
        .map(|(_, t)| *t)
        .expect("a demo distributor");
    json!({ "distributorId": id, "token": token })
}

/// Opens a connection; `Err` carries the `connect_error` message (or says
/// why the hub could not be reached).
pub(crate) async fn try_connect(
    url: &str,
    namespace: &str,
    auth: Option<Value>,
    transport: Transport,
) -> Result<Client, String> {
    match LibClient::connect_with(url, namespace, auth.as_ref(), transport, TIMEOUT).await {
        Ok(inner) => Ok(Client {
            label: namespace.to_owned(),
            inner,
            skipped: Mutex::new(Vec::new()),
        }),
        Err(ClientError::Refused(message)) => Err(message),
        Err(other) => Err(other.to_string()),
    }
}

/// Connects over WebSocket and panics with the refusal if refused.
pub(crate) async fn connect(app: &TestApp, namespace: &str, auth: Value) -> Client {
    try_connect(&app.url(), namespace, Some(auth), Transport::WebSocket)
        .await
        .unwrap_or_else(|e| panic!("connect to {namespace} refused: {e}"))
}

pub(crate) async fn vendor(app: &TestApp, id: &str) -> Client {
    let mut c = connect(app, "/vendor", vendor_auth(id)).await;
    c.label = format!("vendor {id}");
    c
}

pub(crate) async fn distributor(app: &TestApp, id: &str) -> Client {
    let mut c = connect(app, "/distributor", distributor_auth(id)).await;
    c.label = format!("distributor {id}");
    c
}

pub(crate) async fn chatter(app: &TestApp, name: &str) -> Client {
    let mut c = connect(app, "/chat", json!({ "name": name })).await;
    c.label = format!("chat {name}");
    c
}

/// Connects to `/chat` of the hub at `url` with `auth` over `transport`,
/// and panics with the refusal if refused.
pub(crate) async fn chat_with(url: &str, auth: Value, transport: Transport) -> Client {
    let label = format!("chat {} ({transport})", auth["name"]);
    let mut c = try_connect(url, "/chat", Some(auth), transport)
        .await
        .unwrap_or_else(|e| panic!("{label}: connect refused: {e}"));
    c.label = label;
    c
}

/// Both transports, for tests that must hold on either.
pub(crate) const BOTH_TRANSPORTS: [Transport; 2] = [Transport::WebSocket, Transport::Polling];

/// The `connect_error` message a connection attempt gets.
pub(crate) async fn refusal(app: &TestApp, namespace: &str, auth: Option<Value>) -> String {
    match try_connect(&app.url(), namespace, auth, Transport::WebSocket).await {
        Ok(_) => panic!("connecting to {namespace} should have been refused"),
        Err(message) => message,
    }
}

/// A pickup payload for `distributor` with fixed details.
pub(crate) fn pickup(order_id: &str, distributor: &str) -> Value {
    json!({
        "orderId": order_id,
        "distributorId": distributor,
        "customer": "Jamie Doe",
        "address": "Seattle, WA",
    })
}

impl Client {
    /// Sends `count` pickups to `distributor`, orders `{prefix}-0` onwards,
    /// each acked `ok`.
    pub(crate) async fn pickups_ok(&self, prefix: &str, count: usize, distributor: &str) {
        for n in 0..count {
            assert_ok(
                &self
                    .ack("pickup", pickup(&format!("{prefix}-{n}"), distributor))
                    .await,
            );
        }
    }

    /// Emits with an ack and returns the ack envelope.
    pub(crate) async fn ack(&self, event: &str, payload: Value) -> Value {
        self.inner
            .emit_with_ack(event, &payload, TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{}: no ack for {event}: {e}", self.label))
    }

    /// Emits `event` with no argument at all (`socket.emit("getAll", cb)`)
    /// and returns the ack envelope.
    pub(crate) async fn ack_with_nothing(&self, event: &str) -> Value {
        self.inner
            .emit_args_with_ack(event, &[], TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{}: no ack for {event}: {e}", self.label))
    }

    /// Emits without an ack.
    pub(crate) async fn emit(&self, event: &str, payload: Value) {
        self.inner
            .emit(event, &payload)
            .unwrap_or_else(|e| panic!("{}: emit {event}: {e}", self.label));
    }

    /// Whether the hub still has this client connected.
    pub(crate) fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Emits with several arguments and no ack (the Admin UI's actions).
    pub(crate) async fn emit_args(&self, event: &str, args: &[Value]) {
        let args: Vec<&Value> = args.iter().collect();
        self.inner
            .emit_args(event, &args)
            .unwrap_or_else(|e| panic!("{}: emit {event}: {e}", self.label));
    }

    /// Waits for the next `event` (other events stay buffered) and returns its payload.
    pub(crate) async fn expect(&self, event: &str) -> Value {
        self.next_matching(event, TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("{}: no {event:?} within {TIMEOUT:?}", self.label))
    }

    /// Asserts that no `event` arrives within the quiet window.
    pub(crate) async fn expect_none(&self, event: &str) {
        if let Some(v) = self.next_matching(event, QUIET_WINDOW).await {
            panic!("{}: unexpected {event:?}: {v}", self.label);
        }
    }

    /// Asserts that nothing at all arrives within the quiet window.
    pub(crate) async fn expect_silence(&self) {
        let skipped = self.skipped.lock().await;
        if let Some(got) = skipped.first() {
            panic!(
                "{}: unexpected {:?}: {}",
                self.label, got.event, got.payload
            );
        }
        if let Some(got) = self.inner.next_event(QUIET_WINDOW).await {
            panic!(
                "{}: unexpected {:?}: {}",
                self.label, got.event, got.payload
            );
        }
    }

    /// The next event of any name, in arrival order: `(event, payload)`.
    pub(crate) async fn next_any(&self) -> (String, Value) {
        let mut skipped = self.skipped.lock().await;
        if !skipped.is_empty() {
            let got = skipped.remove(0);
            return (got.event, got.payload);
        }
        let got = self
            .inner
            .next_event(TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("{}: no event within {TIMEOUT:?}", self.label));
        (got.event, got.payload)
    }

    /// The next `event` if one arrives within `window` (others stay buffered).
    pub(crate) async fn within(&self, event: &str, window: Duration) -> Option<Value> {
        self.next_matching(event, window).await
    }

    /// Waits for the next `event` and returns every argument it came with
    /// (the Admin UI's events carry several).
    pub(crate) async fn expect_args(&self, event: &str) -> Vec<Value> {
        self.next_received(event, TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("{}: no {event:?} within {TIMEOUT:?}", self.label))
            .args
    }

    async fn next_matching(&self, event: &str, within: Duration) -> Option<Value> {
        self.next_received(event, within)
            .await
            .map(|got| got.payload)
    }

    async fn next_received(&self, event: &str, within: Duration) -> Option<Received> {
        let mut skipped = self.skipped.lock().await;
        if let Some(pos) = skipped.iter().position(|got| got.event == event) {
            return Some(skipped.remove(pos));
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let got = self.inner.next_event(left).await?;
            if got.event == event {
                return Some(got);
            }
            skipped.push(got);
        }
    }

    /// Leaves the namespace; what was emitted before is still sent.
    pub(crate) async fn disconnect(self) {
        self.inner.disconnect();
    }
}

/// Asserts an `{ ok: false }` envelope with `code`, and returns its message.
#[track_caller]
pub(crate) fn assert_error(envelope: &Value, code: &str) -> String {
    assert_eq!(
        envelope["ok"],
        json!(false),
        "expected an error envelope: {envelope}"
    );
    assert_eq!(
        envelope["error"]["code"],
        json!(code),
        "wrong code: {envelope}"
    );
    let message = envelope["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "error without a message: {envelope}");
    message.to_owned()
}

/// Asserts an `{ ok: true }` envelope.
#[track_caller]
pub(crate) fn assert_ok(envelope: &Value) {
    assert_eq!(envelope["ok"], json!(true), "expected ok: {envelope}");
}

/// The text of `GET /metrics` at `base` (a hub's URL), with the demo admin token.
pub(crate) async fn scrape_metrics(base: &str) -> String {
    reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(parcel_hub::config::DEMO_ADMIN_TOKEN)
        .timeout(TIMEOUT)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics text")
}
