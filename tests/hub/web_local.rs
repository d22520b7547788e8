//! Stand-in for `helpers` while this branch has no `tests/hub/main.rs`:
//! the same names and signatures as the helpers module of the main
//! checkout (`spawn_app`, `connect`, `vendor`, `Client::ack`/`expect`/
//! `expect_none`, `assert_error`, `spawn_app_with`, ...), so `api` and `inspector` switch to
//! `use crate::helpers::*` by changing one import. Only `Client::within`
//! is extra (the inspector's debounce check counts snapshots in a window).

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use parcel_hub::{App, Config};
use serde_json::{Value, json};
use tf_rust_socketio::asynchronous::{Client as RawClient, ClientBuilder};
use tf_rust_socketio::{Event, Payload, TransportType};
use tokio::sync::{Mutex, mpsc, oneshot};

/// How long we wait for something that should happen.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long we watch to prove that something does not happen.
pub const QUIET_WINDOW: Duration = Duration::from_millis(300);

/// A hub running in this process on a fresh database; stops when dropped.
pub struct TestApp {
    addr: std::net::SocketAddr,
    /// Dropping it resolves the hub's shutdown future.
    _shutdown: oneshot::Sender<()>,
    /// The database directory lives as long as the hub.
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a hub after `adjust` has changed the test configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_tests(dir.path().join("hub.db"));
    adjust(&mut config);
    let app = App::build(&config).expect("the hub builds");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.serve(listener, async move {
        // A dropped sender means the test is over: stop as well.
        let _either_way = rx.await;
    }));
    TestApp {
        addr,
        _shutdown: tx,
        _dir: dir,
    }
}

pub fn vendor_auth(id: &str) -> Value {
    let (_, token) = parcel_hub::config::DEMO_VENDORS
        .iter()
        .find(|(v, _)| *v == id)
        .expect("a demo vendor");
    json!({ "vendorId": id, "token": token })
}

pub fn distributor_auth(id: &str) -> Value {
    let (_, token) = parcel_hub::config::DEMO_DISTRIBUTORS
        .iter()
        .find(|(d, _)| *d == id)
        .expect("a demo distributor");
    json!({ "distributorId": id, "token": token })
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

enum Signal {
    Connected,
    Refused(String),
    Event(String, Value),
}

/// Arrivals not yet read, and events set aside while looking for another.
type Inbox = (mpsc::UnboundedReceiver<Signal>, Vec<(String, Value)>);

/// A connected client that keeps every event it receives until asked for it.
pub struct Client {
    pub label: String,
    raw: RawClient,
    inbox: Mutex<Inbox>,
}

fn first_arg(payload: Payload) -> Value {
    match payload {
        Payload::Text(values, _) => values.into_iter().next().unwrap_or(Value::Null),
        Payload::Binary(bytes, _) => json!(format!("<{} bytes>", bytes.len())),
        #[allow(deprecated)]
        Payload::String(text, _) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn try_connect(url: &str, namespace: &str, auth: Option<Value>) -> Result<Client, String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (events, connected, errors) = (tx.clone(), tx.clone(), tx);
    let mut builder = ClientBuilder::new(url)
        .namespace(namespace)
        .transport_type(TransportType::Websocket)
        .reconnect(false)
        .on_any(move |event, payload, _| {
            let tx = events.clone();
            async move {
                let name = match event {
                    Event::Custom(name) => name,
                    other => other.as_str().to_owned(),
                };
                let _test_over = tx.send(Signal::Event(name, first_arg(payload)));
            }
            .boxed()
        })
        .on(Event::Connect, move |_, _| {
            let tx = connected.clone();
            async move {
                let _test_over = tx.send(Signal::Connected);
            }
            .boxed()
        })
        .on(Event::Error, move |payload, _| {
            let tx = errors.clone();
            async move {
                let text = match first_arg(payload) {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                if let Some(data) = text.strip_prefix("Received an ConnectError frame: ") {
                    let message = serde_json::from_str::<Value>(data)
                        .ok()
                        .and_then(|v| v["message"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| data.to_owned());
                    let _test_over = tx.send(Signal::Refused(message));
                }
            }
            .boxed()
        });
    if let Some(auth) = auth {
        builder = builder.auth(auth);
    }
    let raw = builder.connect().await.map_err(|e| e.to_string())?;
    let client = Client {
        label: namespace.to_owned(),
        raw,
        inbox: Mutex::new((rx, Vec::new())),
    };
    // Events sent before the server's CONNECT reply would be dropped.
    let outcome = tokio::time::timeout(TIMEOUT, async {
        let mut inbox = client.inbox.lock().await;
        loop {
            match inbox.0.recv().await {
                Some(Signal::Connected) => return Ok(()),
                Some(Signal::Refused(message)) => return Err(message),
                Some(Signal::Event(name, value)) => inbox.1.push((name, value)),
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

pub async fn connect(app: &TestApp, namespace: &str, auth: Value) -> Client {
    try_connect(&app.url(), namespace, Some(auth))
        .await
        .unwrap_or_else(|e| panic!("connect to {namespace} refused: {e}"))
}

pub async fn vendor(app: &TestApp, id: &str) -> Client {
    let mut client = connect(app, "/vendor", vendor_auth(id)).await;
    client.label = format!("vendor {id}");
    client
}

pub async fn distributor(app: &TestApp, id: &str) -> Client {
    let mut client = connect(app, "/distributor", distributor_auth(id)).await;
    client.label = format!("distributor {id}");
    client
}

pub async fn chatter(app: &TestApp, name: &str) -> Client {
    let mut client = connect(app, "/chat", json!({ "name": name })).await;
    client.label = format!("chat {name}");
    client
}

/// The `connect_error` message a connection attempt gets.
pub async fn refusal(app: &TestApp, namespace: &str, auth: Option<Value>) -> String {
    match try_connect(&app.url(), namespace, auth).await {
        Ok(_) => panic!("connecting to {namespace} should have been refused"),
        Err(message) => message,
    }
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
                    let taken = tx.lock().map(|mut slot| slot.take());
                    if let Ok(Some(tx)) = taken {
                        // This client hands the ack arguments over as one array.
                        let reply = match first_arg(reply) {
                            Value::Array(mut args) if args.len() == 1 => args.swap_remove(0),
                            other => other,
                        };
                        let _test_over = tx.send(reply);
                    }
                }
                .boxed()
            })
            .await
            .expect("emit");
        tokio::time::timeout(TIMEOUT, rx)
            .await
            .unwrap_or_else(|_| panic!("{}: no ack for {event}", self.label))
            .expect("ack callback")
    }

    /// The next `event` (others stay buffered), or a panic after [`TIMEOUT`].
    pub async fn expect(&self, event: &str) -> Value {
        self.within(event, TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("{}: no {event:?} within {TIMEOUT:?}", self.label))
    }

    /// Asserts that no `event` arrives within [`QUIET_WINDOW`].
    pub async fn expect_none(&self, event: &str) {
        if let Some(value) = self.within(event, QUIET_WINDOW).await {
            panic!("{}: unexpected {event:?}: {value}", self.label);
        }
    }

    /// The next `event` if one arrives within `window`.
    pub async fn within(&self, event: &str, window: Duration) -> Option<Value> {
        let mut inbox = self.inbox.lock().await;
        if let Some(at) = inbox.1.iter().position(|(name, _)| name == event) {
            return Some(inbox.1.remove(at).1);
        }
        let deadline = tokio::time::Instant::now() + window;
        loop {
            match tokio::time::timeout_at(deadline, inbox.0.recv()).await {
                Ok(Some(Signal::Event(name, value))) if name == event => return Some(value),
                Ok(Some(Signal::Event(name, value))) => inbox.1.push((name, value)),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    pub async fn disconnect(self) {
        self.raw.disconnect().await.expect("disconnect");
    }
}

/// Asserts an `{ ok: false }` envelope with `code` and returns its message.
#[track_caller]
pub fn assert_error(envelope: &Value, code: &str) -> String {
    assert_eq!(
        envelope["ok"],
        json!(false),
        "expected an error: {envelope}"
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
