//! `/admin`: the official Socket.IO Admin UI (`@socket.io/admin-ui` 0.5).
//!
//! The UI is a web page that connects to this namespace and speaks the
//! protocol of the package's server half (`dist/index.js`), which this file
//! implements for the hub:
//!
//! - auth `{ username: "admin", password: <admin token> }`, answered with a
//!   `session` id the UI reconnects with (`{ sessionId }`);
//! - on connect: `config { supportedFeatures }` and `all_sockets`;
//! - every 2 s `server_stats` (this hub as one server: its id, uptime,
//!   clients, namespaces and socket counts, aggregated events);
//! - live `socket_connected`, `socket_disconnected`, `room_joined`,
//!   `room_left`, `event_received`, `event_sent`, fed from the activity feed
//!   like the inspector (so only while an Admin UI watches);
//! - the actions `_disconnect` (any namespace), and `join`, `leave`, `emit`
//!   in `/chat` only: in `/vendor` and `/distributor` a room is who may
//!   read an identity's messages, and an emit would forge a queued
//!   message, so those are refused. Every action is logged.
//!
//! In a cluster every hub runs its own feed and sends its stats and live
//! events to every `/admin` socket of the cluster (through the adapter),
//! so the UI shows each hub as its own server.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use super::Session;
use super::connect::{log_connected, on_disconnect_logged, settle};
use super::sockets::{ClusterSocket, sockets};
use crate::activity::{ActivityRecord, Direction};
use crate::domain::{Identity, RoomName};
use crate::protocol::{ConnectRefusal, event, ns};
use crate::rooms;
use crate::state::Hub;

/// The user name the Admin UI signs in with; the password is the admin token.
pub(crate) const ADMIN_USER: &str = "admin";

/// How often `server_stats` goes out (the package's own interval).
const STATS_EVERY: Duration = Duration::from_secs(2);

/// Session ids remembered at most (the oldest are forgotten first).
const MAX_SESSIONS: usize = 256;

/// What the hub offers the UI (`config.supportedFeatures`).
const FEATURES: [&str; 9] = [
    "EMIT",
    "JOIN",
    "LEAVE",
    "DISCONNECT",
    "MJOIN",
    "MLEAVE",
    "MDISCONNECT",
    "AGGREGATED_EVENTS",
    "ALL_EVENTS",
];

/// Every namespace the UI is told about (`/caps` only while it is served:
/// the others are skipped where they are not registered).
const NAMESPACES: [&str; 6] = [
    ns::VENDOR,
    ns::DISTRIBUTOR,
    ns::CHAT,
    ns::INSPECTOR,
    ns::ADMIN,
    ns::CAPS,
];

/// The `/admin` state, registered beside the [`Hub`]: the session ids
/// handed out, and a bell that wakes the feed when an Admin UI arrives.
#[derive(Debug, Default, Clone)]
pub(crate) struct AdminState {
    sessions: Arc<Mutex<VecDeque<String>>>,
    arrived: Arc<Notify>,
}

impl AdminState {
    fn new_session(&self) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= MAX_SESSIONS {
            sessions.pop_front();
        }
        sessions.push_back(id.clone());
        id
    }

    fn knows(&self, session: &str) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        // Every entry is compared, in constant time each.
        sessions.iter().fold(false, |found, s| {
            found | bool::from(s.as_bytes().ct_eq(session.as_bytes()))
        })
    }
}

/// A session id handed to a socket that signed in with the password; sent
/// to it as `session` once it is connected.
#[derive(Debug, Clone)]
struct NewSession(String);

/// Connect middleware: `{ username, password }` (the admin token), or a
/// `{ sessionId }` handed out earlier.
pub(crate) async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(hub): State<Hub>,
    State(admin): State<AdminState>,
) -> Result<(), ConnectRefusal> {
    let auth = auth.unwrap_or(Value::Null);
    let field = |name: &str| auth.get(name).and_then(Value::as_str);
    let result = match (field("sessionId"), field("username"), field("password")) {
        (Some(session), _, _) if admin.knows(session) => Ok(None),
        (_, Some(ADMIN_USER), Some(password)) if hub.credentials.admin_token_ok(password) => {
            Ok(Some(NewSession(admin.new_session())))
        }
        _ => Err(ConnectRefusal::Unauthorized("invalid credentials".into())),
    };
    settle(&socket, &hub, ns::ADMIN, result, |_| Identity::Admin)
}

/// Connect middleware, after `authenticate`: the UI's actions.
pub(crate) async fn enter<A: Adapter>(socket: SocketRef<A>) -> Result<(), ConnectRefusal> {
    socket.on("_disconnect", on_disconnect_sockets::<A>);
    socket.on("join", on_join::<A>);
    socket.on("leave", on_leave::<A>);
    socket.on("emit", on_emit::<A>);
    socket.on_fallback(on_unknown::<A>);
    socket.on_disconnect(on_disconnect_logged::<A>);
    Ok(())
}

/// Greets the UI: its session, the features, every socket; wakes the feed.
pub(crate) async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
    State(admin): State<AdminState>,
) {
    log_connected(&hub, &socket, &session);
    admin.arrived.notify_one();
    if let Some(NewSession(id)) = socket.extensions.get::<Option<NewSession>>().flatten()
        && let Err(e) = socket.emit("session", &id)
    {
        tracing::warn!(ns = ns::ADMIN, sid = %socket.id, error = %e, "could not send the session id");
    }
    if let Err(e) = socket.emit("config", &json!({ "supportedFeatures": FEATURES })) {
        tracing::warn!(ns = ns::ADMIN, sid = %socket.id, error = %e, "could not send the config");
    }
    match sockets(&io, &NAMESPACES).await {
        Ok(all) => {
            let all: Vec<Value> = all.iter().map(|s| serialize(&io, s)).collect();
            if let Err(e) = socket.emit("all_sockets", &all) {
                tracing::warn!(ns = ns::ADMIN, sid = %socket.id, error = %e, "could not send all_sockets");
            }
        }
        Err(e) => tracing::warn!(ns = ns::ADMIN, error = %e, "could not list the sockets"),
    }
}

/// The arguments of an event, every one (the Admin UI sends several).
#[derive(Debug)]
pub(crate) struct Args(Vec<Value>);

impl<A: Adapter> FromMessageParts<A> for Args {
    type Error = std::convert::Infallible;

    fn from_message_parts(
        _: &Arc<Socket<A>>,
        v: &mut socketioxide::handler::Value,
        _: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        let mut items = v
            .as_str()
            .and_then(|text| serde_json::from_str::<Vec<Value>>(text).ok())
            .unwrap_or_default();
        // The first item is the event's name.
        if !items.is_empty() {
            items.remove(0);
        }
        Ok(Args(items))
    }
}

impl Args {
    fn text(&self, i: usize) -> Option<&str> {
        self.0
            .get(i)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// Why an action was not carried out (logged, since the UI sends no ack).
fn refuse<A: Adapter>(socket: &SocketRef<A>, action: &str, reason: &str) {
    tracing::warn!(ns = ns::ADMIN, sid = %socket.id, action, reason, "admin action refused");
}

/// The namespace an action names, if the hub serves it.
fn namespace(name: Option<&str>) -> Option<&'static str> {
    NAMESPACES.iter().find(|n| Some(**n) == name).copied()
}

/// `_disconnect(nsp, close, filter)`: disconnects the sockets of a
/// namespace, of a room in it, or one socket (the filter is its id).
async fn on_disconnect_sockets<A: Adapter>(socket: SocketRef<A>, io: SocketIo<A>, args: Args) {
    let Some(nsp) = namespace(args.text(0)) else {
        return refuse(&socket, "_disconnect", "unknown namespace");
    };
    let Some(operators) = io.of(nsp) else {
        return refuse(&socket, "_disconnect", "namespace not registered");
    };
    let filter = args.text(2);
    tracing::info!(ns = ns::ADMIN, sid = %socket.id, action = "_disconnect", target_ns = nsp, filter, "admin action");
    let done = match filter {
        Some(id) if local_socket(&io, nsp, id).is_some() => {
            local_socket(&io, nsp, id).map_or(Ok(()), |s| s.disconnect().map_err(|e| e.to_string()))
        }
        Some(room) => operators
            .within(room.to_owned())
            .disconnect()
            .await
            .map_err(|e| e.to_string()),
        None => operators.disconnect().await.map_err(|e| e.to_string()),
    };
    if let Err(e) = done {
        tracing::warn!(ns = ns::ADMIN, action = "_disconnect", error = %e, "admin action failed");
    }
}

/// A room the UI may move chat sockets in and out of: `chat:<room>`.
fn chat_room(name: Option<&str>) -> Option<String> {
    let room = name?.strip_prefix("chat:").unwrap_or(name?);
    RoomName::parse(room).ok().map(|r| rooms::chat(&r))
}

/// `join(nsp, room, filter)` and `leave(nsp, room, filter)`, `/chat` only.
async fn move_sockets<A: Adapter>(
    socket: &SocketRef<A>,
    io: &SocketIo<A>,
    args: &Args,
    action: &'static str,
) {
    if namespace(args.text(0)) != Some(ns::CHAT) {
        return refuse(
            socket,
            action,
            "rooms outside /chat say who may read whose messages",
        );
    }
    let Some(room) = chat_room(args.text(1)) else {
        return refuse(socket, action, "not a chat room name");
    };
    let Some(operators) = io.of(ns::CHAT) else {
        return refuse(socket, action, "namespace not registered");
    };
    let filter = args.text(2);
    tracing::info!(ns = ns::ADMIN, sid = %socket.id, action, room = %room, filter, "admin action");
    let joining = action == "join";
    let done = match filter {
        Some(id) if local_socket(io, ns::CHAT, id).is_some() => {
            if let Some(target) = local_socket(io, ns::CHAT, id) {
                if joining {
                    target.join(room);
                } else {
                    target.leave(room);
                }
            }
            Ok(())
        }
        Some(within) => {
            let operators = operators.within(within.to_owned());
            if joining {
                operators.join(room).await
            } else {
                operators.leave(room).await
            }
        }
        None if joining => operators.join(room).await,
        None => operators.leave(room).await,
    };
    if let Err(e) = done {
        tracing::warn!(ns = ns::ADMIN, action, error = %e, "admin action failed");
    }
}

async fn on_join<A: Adapter>(socket: SocketRef<A>, io: SocketIo<A>, args: Args) {
    move_sockets(&socket, &io, &args, "join").await;
}

async fn on_leave<A: Adapter>(socket: SocketRef<A>, io: SocketIo<A>, args: Args) {
    move_sockets(&socket, &io, &args, "leave").await;
}

/// `emit(nsp, filter, event, ...args)`, `/chat` only.
async fn on_emit<A: Adapter>(socket: SocketRef<A>, io: SocketIo<A>, args: Args) {
    if namespace(args.text(0)) != Some(ns::CHAT) {
        return refuse(
            &socket,
            "emit",
            "outside /chat an emit would pose as the hub's queued messages",
        );
    }
    let Some(name) = args.text(2).filter(|n| n.len() <= 64) else {
        return refuse(&socket, "emit", "no event name (or one over 64 bytes)");
    };
    let Some(operators) = io.of(ns::CHAT) else {
        return refuse(&socket, "emit", "namespace not registered");
    };
    let payload: Vec<Value> = args.0.iter().skip(3).cloned().collect();
    let filter = args.text(1);
    tracing::info!(ns = ns::ADMIN, sid = %socket.id, action = "emit", event = name, filter, "admin action");
    let target = match filter {
        Some(room) => operators.within(room.to_owned()),
        None => operators,
    };
    // A tuple is sent as separate arguments; one argument as itself.
    let sent = match payload.as_slice() {
        [] => target.emit(name, &()).await,
        [one] => target.emit(name, one).await,
        [a, b] => target.emit(name, &(a, b)).await,
        [a, b, c, ..] => target.emit(name, &(a, b, c)).await,
    };
    if let Err(e) = sent {
        tracing::warn!(ns = ns::ADMIN, action = "emit", error = %e, "admin action failed");
    }
}

async fn on_unknown<A: Adapter>(
    socket: SocketRef<A>,
    socketioxide::extract::Event(name): socketioxide::extract::Event,
) {
    tracing::warn!(ns = ns::ADMIN, sid = %socket.id, event = %name, "unknown admin event ignored");
}

/// A socket of this hub in `namespace` whose id is `id`.
fn local_socket<A: Adapter>(io: &SocketIo<A>, namespace: &str, id: &str) -> Option<SocketRef<A>> {
    let sid = id.parse().ok()?;
    io.of(namespace)?.get_socket(sid)
}

/// A socket as the Admin UI's `SerializedSocket`.
fn serialize<A: Adapter>(io: &SocketIo<A>, socket: &ClusterSocket) -> Value {
    let here = socket
        .local
        .then(|| local_socket(io, socket.namespace, &socket.id))
        .flatten();
    let handshake = match &here {
        Some(s) => handshake(s),
        None => json!({}),
    };
    json!({
        "id": socket.id,
        "clientId": socket.id,
        "transport": socket.transport,
        "nsp": socket.namespace,
        "data": { "identity": socket.identity, "hub": socket.hub },
        "handshake": handshake,
        "rooms": socket.rooms,
    })
}

/// What the UI shows of a handshake: the request, without cookies or
/// credentials.
fn handshake<A: Adapter>(socket: &SocketRef<A>) -> Value {
    let parts = socket.req_parts();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "cookie" | "authorization"))
        .filter_map(|(name, value)| {
            Some((
                name.as_str().to_owned(),
                Value::String(value.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let address = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let connected = socket
        .extensions
        .get::<Session>()
        .map_or_else(Utc::now, |s| s.connected_at);
    json!({
        "address": address,
        "headers": headers,
        "query": parts.uri.query().unwrap_or_default(),
        "issued": connected.timestamp_millis(),
        "secure": false,
        "time": connected.to_rfc2822(),
        "url": parts.uri.to_string(),
        "xdomain": parts.headers.contains_key("origin"),
    })
}

/// One of the UI's aggregated counts (`server_stats.aggregatedEvents`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Aggregate {
    timestamp: i64,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_type: Option<String>,
    count: u64,
}

/// The counts of the current stats period, per second.
#[derive(Debug, Default)]
struct Aggregates(HashMap<(i64, &'static str, Option<String>), u64>);

impl Aggregates {
    fn add(&mut self, at: DateTime<Utc>, kind: &'static str, sub_type: Option<String>, count: u64) {
        let second = at.timestamp() * 1000;
        *self.0.entry((second, kind, sub_type)).or_default() += count;
    }

    fn take(&mut self) -> Vec<Aggregate> {
        self.0
            .drain()
            .map(|((timestamp, kind, sub_type), count)| Aggregate {
                timestamp,
                kind,
                sub_type,
                count,
            })
            .collect()
    }
}

/// Starts this hub's `/admin` feed: stats every 2 s, and the live events of
/// the activity feed while an Admin UI is connected anywhere in the cluster.
/// Abort the task to stop it.
pub(crate) fn start_feed<A: Adapter>(
    hub: Hub,
    io: SocketIo<A>,
    admin: AdminState,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run_feed(hub, io, admin))
}

async fn run_feed<A: Adapter>(hub: Hub, io: SocketIo<A>, admin: AdminState) {
    let mut tick = tokio::time::interval(STATS_EVERY);
    let mut feed: Option<Receiver<ActivityRecord>> = None;
    let mut rooms_of: HashMap<(&'static str, String), BTreeSet<String>> = HashMap::new();
    let mut counts = Aggregates::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                refresh(&hub, &io, &mut feed, &mut rooms_of, &mut counts).await;
            }
            () = admin.arrived.notified() => {
                refresh(&hub, &io, &mut feed, &mut rooms_of, &mut counts).await;
            }
            received = next_record(&mut feed) => match received {
                Ok(record) => forward(&io, &record, &mut rooms_of, &mut counts).await,
                Err(RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "the admin feed fell behind; records skipped");
                }
                Err(RecvError::Closed) => feed = None,
            },
        }
    }
}

/// The next record while subscribed; never, otherwise.
async fn next_record(
    feed: &mut Option<Receiver<ActivityRecord>>,
) -> Result<ActivityRecord, RecvError> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}

/// Emits to every `/admin` socket of the cluster; failures are logged.
async fn to_admins<A: Adapter, T: Serialize + ?Sized>(io: &SocketIo<A>, name: &str, data: &T) {
    let Some(admins) = io.of(ns::ADMIN) else {
        return;
    };
    if let Err(e) = admins.emit(name, data).await {
        tracing::warn!(ns = ns::ADMIN, event = name, error = %e, "could not send to the admin UI");
    }
}

/// Watches the feed only while an Admin UI is connected (on any hub),
/// sends the stats, and reports room changes no event announced.
async fn refresh<A: Adapter>(
    hub: &Hub,
    io: &SocketIo<A>,
    feed: &mut Option<Receiver<ActivityRecord>>,
    rooms_of: &mut HashMap<(&'static str, String), BTreeSet<String>>,
    counts: &mut Aggregates,
) {
    let watched = match io.of(ns::ADMIN) {
        Some(admins) => match admins.fetch_sockets().await {
            Ok(admins) => !admins.is_empty(),
            Err(e) => {
                tracing::warn!(ns = ns::ADMIN, error = %e, "could not count the admin sockets");
                feed.is_some()
            }
        },
        None => false,
    };
    if !watched {
        // Nobody watches: the activity feed copies nothing for us.
        *feed = None;
        rooms_of.clear();
        counts.take();
        return;
    }
    if feed.is_none() {
        *feed = Some(hub.activity.subscribe());
        // Start from what is there now; only changes are announced.
        for namespace in NAMESPACES {
            if let Some(operators) = io.of(namespace) {
                for socket in operators.sockets() {
                    rooms_of.insert((namespace, socket.id.to_string()), room_set(&socket));
                }
            }
        }
    }
    for namespace in NAMESPACES {
        if let Some(operators) = io.of(namespace) {
            for socket in operators.sockets() {
                announce_rooms(
                    io,
                    namespace,
                    &socket.id.to_string(),
                    room_set(&socket),
                    rooms_of,
                )
                .await;
            }
        }
    }
    to_admins(io, "server_stats", &stats(hub, io, counts.take())).await;
}

fn room_set<A: Adapter>(socket: &SocketRef<A>) -> BTreeSet<String> {
    socket.rooms().into_iter().map(|r| r.to_string()).collect()
}

/// Sends `room_joined` / `room_left` for what changed in a socket's rooms.
async fn announce_rooms<A: Adapter>(
    io: &SocketIo<A>,
    namespace: &'static str,
    sid: &str,
    now: BTreeSet<String>,
    rooms_of: &mut HashMap<(&'static str, String), BTreeSet<String>>,
) {
    let before = rooms_of
        .insert((namespace, sid.to_owned()), now.clone())
        .unwrap_or_default();
    let at = Utc::now();
    for room in now.difference(&before) {
        to_admins(io, "room_joined", &(namespace, room, sid, at)).await;
    }
    for room in before.difference(&now) {
        to_admins(io, "room_left", &(namespace, room, sid, at)).await;
    }
}

/// Turns one activity record into the Admin UI's live events.
async fn forward<A: Adapter>(
    io: &SocketIo<A>,
    record: &ActivityRecord,
    rooms_of: &mut HashMap<(&'static str, String), BTreeSet<String>>,
    counts: &mut Aggregates,
) {
    // A refused connection never made a socket the UI could show, and a
    // namespace the hub does not serve is none of the UI's.
    let Some(namespace) = NAMESPACES
        .into_iter()
        .find(|name| *name == record.namespace)
    else {
        return;
    };
    let sid = record.socket.clone().unwrap_or_default();
    let at = record.at;
    match (record.direction, record.event.as_str()) {
        (Direction::In, event::CONNECT) if record.outcome != Some("ok") => {}
        (Direction::In, event::CONNECT) => {
            counts.add(at, "rawConnection", None, 1);
            let Some(socket) = local_socket(io, namespace, &sid) else {
                return;
            };
            let session = socket.extensions.get::<Session>();
            let rooms: Vec<String> = room_set(&socket).into_iter().collect();
            let view = ClusterSocket {
                namespace,
                id: sid.clone(),
                hub: io.config().server_id.to_string(),
                local: true,
                rooms,
                identity: session.as_ref().map(|s| s.label.to_string()),
                transport: Some(socket.transport_type().into()),
                connected_at: session.map(|s| s.connected_at),
            };
            to_admins(io, "socket_connected", &(serialize(io, &view), at)).await;
            announce_rooms(io, namespace, &sid, room_set(&socket), rooms_of).await;
        }
        (Direction::In, event::DISCONNECT) => {
            let reason = record
                .payload
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("");
            counts.add(at, "rawDisconnection", Some(reason.to_owned()), 1);
            to_admins(io, "socket_disconnected", &(namespace, &sid, reason, at)).await;
            let gone = rooms_of
                .remove(&(namespace, sid.clone()))
                .unwrap_or_default();
            for room in gone {
                to_admins(io, "room_left", &(namespace, room, &sid, at)).await;
            }
        }
        (Direction::In, name) => {
            counts.add(at, "packetsIn", None, 1);
            to_admins(
                io,
                "event_received",
                &(namespace, &sid, (name, &record.payload), at),
            )
            .await;
            if let Some(socket) = local_socket(io, namespace, &sid) {
                announce_rooms(io, namespace, &sid, room_set(&socket), rooms_of).await;
            }
        }
        (Direction::Out, name) => {
            let reached = record.recipients.unwrap_or(0) as u64;
            counts.add(at, "packetsOut", None, reached);
            // One socket (the chat's `users`, target `socket <id>`) is named
            // by its id, as the UI expects; for a room or a broadcast the
            // target stands in for the id.
            let target = record.target.as_deref().unwrap_or("");
            let target = target.strip_prefix("socket ").unwrap_or(target);
            to_admins(
                io,
                "event_sent",
                &(namespace, target, (name, &record.payload), at),
            )
            .await;
        }
    }
}

/// `server_stats`: this hub as one server of the UI.
fn stats<A: Adapter>(hub: &Hub, io: &SocketIo<A>, aggregated: Vec<Aggregate>) -> Value {
    let mut clients = BTreeSet::new();
    let mut polling = BTreeSet::new();
    let mut namespaces = Vec::new();
    for namespace in NAMESPACES {
        let Some(operators) = io.of(namespace) else {
            continue;
        };
        let here = operators.sockets();
        for socket in &here {
            let id = socket.id.to_string();
            if matches!(
                socket.transport_type(),
                socketioxide::TransportType::Polling
            ) {
                polling.insert(id.clone());
            }
            clients.insert(id);
        }
        namespaces.push(json!({ "name": namespace, "socketsCount": here.len() }));
    }
    json!({
        "serverId": hub.hub_id(),
        "hostname": hostname(),
        "pid": std::process::id(),
        "uptime": hub.started.elapsed().as_secs_f64(),
        "clientsCount": clients.len(),
        "pollingClientsCount": polling.len(),
        "aggregatedEvents": aggregated,
        "namespaces": namespaces,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "parcel-hub".into())
}
