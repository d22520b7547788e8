//! `/inspector`: a read-only, live view of the hub for the inspector page.
//!
//! An inspector socket gets a `snapshot` (namespaces, rooms, sockets, queue
//! depths) when it connects and whenever the hub changes, at most ten per
//! second, and every record of the activity feed as `activity`. One task per
//! hub does this for all inspector sockets; it runs only while at least one
//! is connected, so with nobody watching the feed copies nothing. What it
//! emits is not itself reported to the feed, or it would feed on itself.
//! In a cluster each hub feeds its own inspector sockets: the activity of
//! that hub, and snapshots that list the sockets of every hub.

use super::call::cause_first;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::operators::BroadcastOperators;
use tokio::sync::broadcast::{Receiver, error::RecvError};
use tokio::time::Instant;

use super::Session;
use super::connect::{log_connected, on_disconnect_logged, settle, token_from_auth};
use super::sockets::{ClusterSocket, sockets};
use crate::activity::ActivityRecord;
use crate::domain::Identity;
use crate::ops;
use crate::protocol::{ConnectRefusal, ErrorCode, Refusal, event, ns, rfc3339};
use crate::state::Hub;

/// At most this many snapshots per second reach an inspector.
const SNAPSHOT_SPACING: Duration = Duration::from_millis(100);

/// Changes no event reports (a transport upgrade) show up within this.
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// The `snapshot` an inspector receives, and `GET /api/inspect` answers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Snapshot {
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// The hub that took it (its Socket.IO server id).
    pub hub: String,
    #[serde(flatten)]
    pub view: HubView,
}

/// A snapshot without its time, so two can be compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct HubView {
    pub namespaces: Vec<NamespaceView>,
    pub queues: Vec<QueueView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct NamespaceView {
    pub name: &'static str,
    /// Every socket of the namespace, on this hub and (in a cluster) the others.
    pub sockets: Vec<ClusterSocket>,
    pub rooms: Vec<RoomView>,
}

/// A room and the ids of the sockets in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RoomView {
    pub name: String,
    pub members: Vec<String>,
}

/// One non-empty queue (`vendor:acme-widgets`, `distributor:north-hub`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct QueueView {
    pub owner: String,
    pub depth: u64,
}

/// Whether the hub's feed task runs; registered as a Socket.IO state of
/// its own beside the [`Hub`]. The lock makes "the last inspector left,
/// stop" and "an inspector arrived, start if stopped" exclusive, so an
/// inspector can never be left without a feed.
#[derive(Debug, Default, Clone)]
pub(crate) struct FeedTask {
    running: Arc<Mutex<bool>>,
}

impl FeedTask {
    fn lock(&self) -> MutexGuard<'_, bool> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Connect middleware: `{ token }` must be the admin token.
pub(crate) async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(hub): State<Hub>,
) -> Result<(), ConnectRefusal> {
    let result = token_from_auth(&auth).and_then(|token| {
        if hub.credentials.admin_token_ok(&token) {
            Ok(())
        } else {
            Err(ConnectRefusal::Unauthorized("wrong admin token".into()))
        }
    });
    settle(&socket, &hub, ns::INSPECTOR, result, |()| {
        Identity::Inspector
    })
}

/// Connect middleware, after `authenticate`: registers the handlers before
/// the client hears CONNECT (see [`super`] for why).
pub(crate) async fn enter<A: Adapter>(socket: SocketRef<A>) -> Result<(), ConnectRefusal> {
    socket.on_fallback(cause_first(super::call::on_unknown_event::<A>));
    socket.on_disconnect(on_disconnect_logged::<A>);
    Ok(())
}

/// Makes sure the feed runs, then greets the inspector with a snapshot.
pub(crate) async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
    State(feed): State<FeedTask>,
) {
    // Before the connect is reported, so the feed sees this one too.
    start_feed(&hub, &feed, &io);
    log_connected(&hub, &socket, &session);
    match snapshot(&hub, &io).await {
        Ok(snapshot) => {
            if let Err(e) = socket.emit(event::SNAPSHOT, &snapshot) {
                tracing::warn!(ns = ns::INSPECTOR, sid = %socket.id, error = %e, "could not send the first snapshot");
            }
        }
        Err(refusal) => {
            tracing::warn!(ns = ns::INSPECTOR, sid = %socket.id, %refusal, "no first snapshot")
        }
    }
}

/// The hub as it is now: every namespace, its sockets and rooms (across the
/// cluster with `--redis`), and the queues.
pub(crate) async fn snapshot<A: Adapter>(hub: &Hub, io: &SocketIo<A>) -> Result<Snapshot, Refusal> {
    let queues = ops::queue_depths(hub)
        .await?
        .into_iter()
        .map(|q| QueueView {
            owner: q.owner.key(),
            depth: q.depth,
        })
        .collect();
    // The hub's own namespaces, and `/caps` after them while it is served.
    let listed: Vec<&'static str> = ns::ALL
        .into_iter()
        .chain(hub.caps.as_ref().map(|_| ns::CAPS))
        .collect();
    let sockets = sockets(io, &listed).await.map_err(|e| {
        tracing::error!(error = %e, "could not list the sockets");
        Refusal::new(ErrorCode::Internal, "the hub could not list its sockets")
    })?;
    let namespaces = listed
        .iter()
        .map(|&name| namespace_view(name, &sockets))
        .collect();
    Ok(Snapshot {
        at: Utc::now(),
        hub: hub.hub_id().to_owned(),
        view: HubView { namespaces, queues },
    })
}

fn namespace_view(name: &'static str, all: &[ClusterSocket]) -> NamespaceView {
    let mut sockets: Vec<ClusterSocket> = all
        .iter()
        .filter(|socket| socket.namespace == name)
        .cloned()
        .collect();
    sockets.sort_by(|a, b| (a.connected_at, &a.hub, &a.id).cmp(&(b.connected_at, &b.hub, &b.id)));
    let mut rooms: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for socket in &sockets {
        for room in &socket.rooms {
            rooms.entry(room).or_default().push(socket.id.clone());
        }
    }
    let rooms = rooms
        .into_iter()
        .map(|(name, members)| RoomView {
            name: name.to_owned(),
            members,
        })
        .collect();
    NamespaceView {
        name,
        sockets,
        rooms,
    }
}

/// Starts the hub's feed task unless it runs already.
fn start_feed<A: Adapter>(hub: &Hub, task: &FeedTask, io: &SocketIo<A>) {
    let mut running = task.lock();
    if !*running {
        *running = true;
        // Subscribed here, not in the task, so no record slips by in between.
        let feed = hub.activity.subscribe();
        tokio::spawn(run_feed(hub.clone(), task.clone(), io.clone(), feed));
    }
}

/// Marks the feed stopped when no inspector is left; true if it should stop.
fn stop_if_unwatched<A: Adapter>(task: &FeedTask, inspectors: &BroadcastOperators<A>) -> bool {
    let mut running = task.lock();
    let watched = inspectors.clone().sockets().iter().any(|s| s.connected());
    if !watched {
        *running = false;
    }
    !watched
}

/// Forwards the activity feed and sends snapshots when the hub changed.
async fn run_feed<A: Adapter>(
    hub: Hub,
    task: FeedTask,
    io: SocketIo<A>,
    mut feed: Receiver<ActivityRecord>,
) {
    // Each hub feeds its own inspectors; in a cluster, its snapshots list every hub.
    let Some(inspectors) = io.of(ns::INSPECTOR).map(BroadcastOperators::local) else {
        tracing::error!(ns = ns::INSPECTOR, "namespace is not registered");
        *task.lock() = false;
        return;
    };
    tracing::debug!("inspector feed started");
    let mut last_view: Option<HubView> = None;
    let mut last_sent = Instant::now();
    let mut changed = true;
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    loop {
        tokio::select! {
            received = feed.recv() => match received {
                Ok(record) => {
                    let inspector_left =
                        record.namespace == ns::INSPECTOR && record.event == event::DISCONNECT;
                    forward(&inspectors, &record).await;
                    changed = true;
                    if inspector_left && stop_if_unwatched(&task, &inspectors) {
                        break;
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "the inspector feed fell behind; records skipped");
                    changed = true;
                }
                Err(RecvError::Closed) => break,
            },
            () = tokio::time::sleep_until(last_sent + SNAPSHOT_SPACING), if changed => {
                send_if_changed(&hub, &io, &inspectors, &mut last_view).await;
                last_sent = Instant::now();
                changed = false;
            }
            _ = refresh.tick() => {
                if stop_if_unwatched(&task, &inspectors) {
                    break;
                }
                send_if_changed(&hub, &io, &inspectors, &mut last_view).await;
            }
        }
    }
    tracing::debug!("inspector feed stopped: no inspector left");
}

async fn forward<A: Adapter>(inspectors: &BroadcastOperators<A>, record: &ActivityRecord) {
    if let Err(e) = inspectors.clone().emit(event::ACTIVITY, record).await {
        tracing::warn!(ns = ns::INSPECTOR, seq = record.seq, error = %e, "could not forward an activity record");
    }
}

async fn send_if_changed<A: Adapter>(
    hub: &Hub,
    io: &SocketIo<A>,
    inspectors: &BroadcastOperators<A>,
    last_view: &mut Option<HubView>,
) {
    let snapshot = match snapshot(hub, io).await {
        Ok(snapshot) => snapshot,
        Err(refusal) => {
            tracing::warn!(ns = ns::INSPECTOR, %refusal, "no snapshot");
            return;
        }
    };
    if last_view.as_ref() == Some(&snapshot.view) {
        return;
    }
    match inspectors.clone().emit(event::SNAPSHOT, &snapshot).await {
        Ok(()) => *last_view = Some(snapshot.view),
        Err(e) => tracing::warn!(ns = ns::INSPECTOR, error = %e, "could not send a snapshot"),
    }
}
