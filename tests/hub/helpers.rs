//! Shared test helpers: a real hub on 127.0.0.1:0 and real Socket.IO clients.
//!
//! Clients are `tf-rust-socketio` (a third-party Rust client that speaks the
//! real protocol over a real WebSocket or long-polling). Every wait has a
//! timeout; proving that something did *not* arrive uses [`QUIET_WINDOW`].

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use parcel_hub::app::HubIo;
use parcel_hub::{App, Config};
use redis::Commands;
use serde_json::{Value, json};
use tf_rust_socketio::asynchronous::{Client as RawClient, ClientBuilder};
use tf_rust_socketio::{Event, Payload, TransportType};
use tokio::sync::{Mutex, mpsc, oneshot};

/// How long we wait for something that should happen.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long we watch to prove that something does not happen.
pub const QUIET_WINDOW: Duration = Duration::from_millis(300);

/// A hub running in this process, on its own database file.
pub struct TestApp {
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
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the hub gracefully and waits until it has finished.
    pub async fn stop(mut self) {
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
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a hub after `adjust` has changed the test configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
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
pub struct HubProcess {
    pub child: Child,
    pub url: String,
}

impl HubProcess {
    pub fn start<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
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
pub fn test_redis() -> String {
    match std::env::var("PARCEL_HUB_TEST_REDIS") {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => panic!(
            "PARCEL_HUB_TEST_REDIS is not set: run the Redis tests with it (redis://127.0.0.1:6379)"
        ),
    }
}

/// A fresh key prefix in a Redis that must answer; its keys go on drop.
pub struct RedisPrefix {
    pub url: String,
    pub prefix: String,
}

impl RedisPrefix {
    pub fn new(url: &str) -> Self {
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

/// Connects a raw WebSocket to `namespace` of the hub at `url` (`http://…`),
/// and sends `event` the very moment the CONNECT reply arrives, as a fast
/// client does. Returns the ack's first argument, or `None` if no ack came.
pub async fn ack_right_after_connect(
    url: &str,
    namespace: &str,
    auth: &Value,
    event: &str,
    payload: &Value,
) -> Option<Value> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let ws_url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        url.replacen("http://", "ws://", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("websocket");
    ws.send(Message::Text(format!("40{namespace},{auth}").into()))
        .await
        .expect("send CONNECT");
    let connected = format!("40{namespace},");
    let acked = format!("43{namespace},1");
    let frame = json!([event, payload]);
    tokio::time::timeout(TIMEOUT, async {
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            if text.starts_with(&connected) {
                ws.send(Message::Text(format!("42{namespace},1{frame}").into()))
                    .await
                    .expect("send the event");
            } else if let Some(args) = text.strip_prefix(&acked) {
                let mut args: Vec<Value> = serde_json::from_str(args).expect("ack arguments");
                return Some(args.swap_remove(0));
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// What a client saw, in arrival order.
#[derive(Debug, Clone)]
enum Signal {
    Connected,
    ConnectError(String),
    Event(String, Value),
}

/// Signals not yet read, and events read while looking for another one.
type Inbox = (mpsc::UnboundedReceiver<Signal>, Vec<(String, Value)>);

/// A connected Socket.IO client that records everything it receives.
pub struct Client {
    pub label: String,
    raw: RawClient,
    signals: Mutex<Inbox>,
}

/// The `auth` of each role with the demo credentials.
pub fn vendor_auth(id: &str) -> Value {
    let token = parcel_hub::config::DEMO_VENDORS
        .iter()
        .find(|(v, _)| *v == id)
        .map(|(_, t)| *t)
        .expect("a demo vendor");
    json!({ "vendorId": id, "token": token })
}

pub fn distributor_auth(id: &str) -> Value {
    let token = parcel_hub::config::DEMO_DISTRIBUTORS
        .iter()
        .find(|(d, _)| *d == id)
        .map(|(_, t)| *t)
        .expect("a demo distributor");
    json!({ "distributorId": id, "token": token })
}

/// Opens a connection; `Err` carries the `connect_error` message.
pub async fn try_connect(
    url: &str,
    namespace: &str,
    auth: Option<Value>,
    transport: TransportType,
) -> Result<Client, String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let on_event = tx.clone();
    let on_connect = tx.clone();
    let on_error = tx;
    let mut builder = ClientBuilder::new(url)
        .namespace(namespace)
        .transport_type(transport)
        .reconnect(false)
        .on_any(move |event, payload, _| {
            let tx = on_event.clone();
            async move {
                let name = match event {
                    Event::Custom(name) => name,
                    other => other.as_str().to_owned(),
                };
                let _test_ended = tx.send(Signal::Event(name, first_arg(payload)));
            }
            .boxed()
        })
        .on(Event::Connect, move |_, _| {
            let tx = on_connect.clone();
            async move {
                let _test_ended = tx.send(Signal::Connected);
            }
            .boxed()
        })
        .on(Event::Error, move |payload, _| {
            let tx = on_error.clone();
            async move {
                let text = match first_arg(payload) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                if let Some(data) = text.strip_prefix("Received an ConnectError frame: ") {
                    let message = serde_json::from_str::<Value>(data)
                        .ok()
                        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                        .unwrap_or_else(|| data.to_owned());
                    let _test_ended = tx.send(Signal::ConnectError(message));
                }
            }
            .boxed()
        });
    if let Some(auth) = auth {
        builder = builder.auth(auth);
    }
    let raw = builder
        .connect()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let client = Client {
        label: namespace.to_owned(),
        raw,
        signals: Mutex::new((rx, Vec::new())),
    };
    // Events sent before the server's CONNECT reply are dropped: wait for it.
    let outcome = tokio::time::timeout(TIMEOUT, async {
        let mut guard = client.signals.lock().await;
        loop {
            match guard.0.recv().await {
                Some(Signal::Connected) => return Ok(()),
                Some(Signal::ConnectError(message)) => return Err(message),
                Some(Signal::Event(name, value)) => guard.1.push((name, value)),
                None => return Err("connection closed".to_owned()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no CONNECT reply within the timeout".to_owned()));
    match outcome {
        Ok(()) => Ok(client),
        Err(message) => {
            let _best_effort = client.raw.disconnect().await;
            Err(message)
        }
    }
}

fn first_arg(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values, _) if !values.is_empty() => values.swap_remove(0),
        Payload::Text(..) => Value::Null,
        #[allow(deprecated)]
        Payload::String(s, _) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        Payload::Binary(bytes, _) => Value::String(format!("<{} binary bytes>", bytes.len())),
    }
}

/// Connects over WebSocket and panics with the refusal if refused.
pub async fn connect(app: &TestApp, namespace: &str, auth: Value) -> Client {
    try_connect(&app.url(), namespace, Some(auth), TransportType::Websocket)
        .await
        .unwrap_or_else(|e| panic!("connect to {namespace} refused: {e}"))
}

pub async fn vendor(app: &TestApp, id: &str) -> Client {
    let mut c = connect(app, "/vendor", vendor_auth(id)).await;
    c.label = format!("vendor {id}");
    c
}

pub async fn distributor(app: &TestApp, id: &str) -> Client {
    let mut c = connect(app, "/distributor", distributor_auth(id)).await;
    c.label = format!("distributor {id}");
    c
}

pub async fn chatter(app: &TestApp, name: &str) -> Client {
    let mut c = connect(app, "/chat", json!({ "name": name })).await;
    c.label = format!("chat {name}");
    c
}

/// The `connect_error` message a connection attempt gets.
pub async fn refusal(app: &TestApp, namespace: &str, auth: Option<Value>) -> String {
    match try_connect(&app.url(), namespace, auth, TransportType::Websocket).await {
        Ok(_) => panic!("connecting to {namespace} should have been refused"),
        Err(message) => message,
    }
}

/// A pickup payload for `distributor` with fixed details.
pub fn pickup(order_id: &str, distributor: &str) -> Value {
    json!({
        "orderId": order_id,
        "distributorId": distributor,
        "customer": "Jamie Doe",
        "address": "Seattle, WA",
    })
}

impl Client {
    /// Emits with a callback and returns the ack envelope.
    pub async fn ack(&self, event: &str, payload: Value) -> Value {
        let (tx, rx) = oneshot::channel();
        let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
        self.raw
            .emit_with_ack(event, payload, TIMEOUT, move |reply, _| {
                let tx = tx.clone();
                async move {
                    if let Some(tx) = tx.lock().expect("ack lock").take() {
                        // This client hands ack arguments over as one array.
                        let reply = match first_arg(reply) {
                            Value::Array(mut args) if args.len() == 1 => args.swap_remove(0),
                            other => other,
                        };
                        let _test_ended = tx.send(reply);
                    }
                }
                .boxed()
            })
            .await
            .expect("emit");
        tokio::time::timeout(TIMEOUT, rx)
            .await
            .unwrap_or_else(|_| panic!("{}: no ack for {event} within the timeout", self.label))
            .expect("ack callback")
    }

    /// Emits without a callback.
    pub async fn emit(&self, event: &str, payload: Value) {
        self.raw.emit(event, payload).await.expect("emit");
    }

    /// Waits for the next `event` (other events stay buffered) and returns its payload.
    pub async fn expect(&self, event: &str) -> Value {
        self.next_matching(event, TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("{}: no {event:?} within {TIMEOUT:?}", self.label))
    }

    /// Asserts that no `event` arrives within the quiet window.
    pub async fn expect_none(&self, event: &str) {
        if let Some(v) = self.next_matching(event, QUIET_WINDOW).await {
            panic!("{}: unexpected {event:?}: {v}", self.label);
        }
    }

    /// Asserts that nothing at all arrives within the quiet window.
    pub async fn expect_silence(&self) {
        let mut guard = self.signals.lock().await;
        if let Some((name, v)) = guard.1.first() {
            panic!("{}: unexpected {name:?}: {v}", self.label);
        }
        if let Ok(Some(signal)) = tokio::time::timeout(QUIET_WINDOW, guard.0.recv()).await {
            panic!("{}: unexpected {signal:?}", self.label);
        }
    }

    /// The next `event` if one arrives within `window` (others stay buffered).
    pub async fn within(&self, event: &str, window: Duration) -> Option<Value> {
        self.next_matching(event, window).await
    }

    async fn next_matching(&self, event: &str, within: Duration) -> Option<Value> {
        let mut guard = self.signals.lock().await;
        if let Some(pos) = guard.1.iter().position(|(name, _)| name == event) {
            return Some(guard.1.remove(pos).1);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, guard.0.recv()).await {
                Ok(Some(Signal::Event(name, value))) if name == event => return Some(value),
                Ok(Some(Signal::Event(name, value))) => guard.1.push((name, value)),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    pub async fn disconnect(self) {
        self.raw.disconnect().await.expect("disconnect");
    }
}

/// Asserts an `{ ok: false }` envelope with `code`, and returns its message.
#[track_caller]
pub fn assert_error(envelope: &Value, code: &str) -> String {
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
pub fn assert_ok(envelope: &Value) {
    assert_eq!(envelope["ok"], json!(true), "expected ok: {envelope}");
}
