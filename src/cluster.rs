//! Several hubs behind one Redis (`--redis URL`).
//!
//! Every hub of a cluster shares two things through Redis: the store (orders
//! and queues, [`crate::store::RedisStore`]) and Socket.IO broadcasts
//! (socketioxide's Redis adapter, so a room spans every hub). Both ride on one
//! [`ConnectionManager`] per hub, which reconnects after Redis comes back and
//! then re-subscribes the adapter's channels by itself. That is why the
//! adapter runs on [`PubSubDriver`] here rather than on the crate's own
//! driver, whose plain multiplexed connection does not reconnect (redis-rs
//! leaves reconnection to `ConnectionManager`), so a restarted Redis would
//! cut the hubs apart for good.
//!
//! Broadcasts to the other hubs go out through one [`Publisher`] task per
//! hub: `publish` queues the message and returns, and the task sends what
//! is queued in one pipeline per round trip, in the order it was queued. A
//! room's local sockets so hear a pickup without waiting for Redis, and a
//! burst of pickups costs one round trip rather than one each (`bench w1
//! --redis`, README "Performance").
//!
//! A [`Watchdog`] pings Redis every second, so the connection is re-made
//! (and the hub hears broadcasts again) even when no client is sending
//! anything, and logs once when Redis is lost and once when it is back.
//!
//! [`HubAdapter`] is the seam between the two adapters a hub runs on (the
//! local one, or this one): everything above it is generic over it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{PushInfo, PushKind, RedisError};
use socketioxide::adapter::{Adapter, Emitter, LocalAdapter};
use socketioxide_core::adapter::DefinedAdapter;
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use socketioxide_redis::{CustomRedisAdapter, InitRes};
use tokio::sync::mpsc;

/// An adapter the hub can run on, and how to wait until a namespace is ready on it.
///
/// With the local adapter a namespace is ready at once; with the cluster's
/// Redis adapter, `io.ns(..)` returns a future that subscribes the namespace
/// to its pub/sub channels and must be awaited.
pub(crate) trait HubAdapter: Adapter + DefinedAdapter {
    /// Resolves once the namespace whose `io.ns(..)` returned `init` is ready.
    fn ready(init: Self::InitRes) -> impl Future<Output = Result<(), String>> + Send;
}

impl HubAdapter for LocalAdapter {
    fn ready(_init: ()) -> impl Future<Output = Result<(), String>> + Send {
        std::future::ready(Ok(()))
    }
}

/// The adapter of a hub in a cluster.
pub(crate) type ClusterAdapter = CustomRedisAdapter<Emitter, PubSubDriver>;

impl HubAdapter for ClusterAdapter {
    async fn ready(init: InitRes<PubSubDriver>) -> Result<(), String> {
        init.await.map_err(|e| e.to_string())
    }
}

/// Where each subscribed channel's messages go.
type Channels = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// The ids this hub's adapter sends its requests under (one per Socket.IO
/// server; learnt from what it publishes).
type OwnIds = Arc<RwLock<Vec<Vec<u8>>>>;

/// The id of the server that sent an adapter request, as its bytes:
/// socketioxide's requests are msgpack arrays whose first element is the
/// sender's id, a string. `None` if `payload` does not start that way (a
/// response, whose first element is a request id, or another format).
fn sender_of(payload: &[u8]) -> Option<&[u8]> {
    let rest = match *payload.first()? {
        0x90..=0x9f => payload.get(1..)?,
        0xdc => payload.get(3..)?,
        _ => return None,
    };
    let (len, start) = match *rest.first()? {
        b @ 0xa0..=0xbf => (usize::from(b & 0x1f), 1_usize),
        0xd9 => (usize::from(*rest.get(1)?), 2),
        _ => return None,
    };
    rest.get(start..start.checked_add(len)?)
}

/// Pub/sub for socketioxide's Redis adapter over a reconnecting connection.
#[derive(Clone)]
pub struct PubSubDriver {
    /// Shared with the store; subscriptions survive its reconnections.
    conn: ConnectionManager,
    /// Filled by `subscribe`, read by the push handler for every message.
    channels: Channels,
    /// Set once every namespace of the hub is subscribed ([`Self::seal`]).
    sealed: Arc<AtomicBool>,
    /// Broadcasts to the other hubs, in order ([`Publisher`]).
    outbox: mpsc::Sender<(String, Vec<u8>)>,
    /// Filled by `publish`, read by the push handler: Redis sends a hub
    /// its own broadcasts back, which the adapter would decode only to
    /// ignore them.
    own: OwnIds,
}

/// Messages waiting for the publisher at most; `publish` waits for room past this.
const OUTBOX: usize = 16_384;
/// Messages sent in one pipeline at most.
const PIPELINE: usize = 512;

/// Sends the queued broadcasts to Redis, in order, one pipeline per round
/// trip; ends when every [`PubSubDriver`] is dropped.
struct Publisher {
    conn: ConnectionManager,
    inbox: mpsc::Receiver<(String, Vec<u8>)>,
}

impl Publisher {
    async fn run(mut self) {
        let mut batch = Vec::with_capacity(PIPELINE);
        while self.inbox.recv_many(&mut batch, PIPELINE).await > 0 {
            let mut pipe = redis::pipe();
            for (chan, message) in batch.drain(..) {
                pipe.cmd("PUBLISH").arg(chan).arg(message).ignore();
            }
            if let Err(e) = pipe.query_async::<()>(&mut self.conn).await {
                // The watchdog says when Redis is gone and back; the other
                // hubs' sockets catch up on what they missed with getAll.
                tracing::warn!(error = %e, "could not publish broadcasts to the other hubs");
            }
        }
    }
}

impl std::fmt::Debug for PubSubDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let channels = self
            .channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("PubSubDriver")
            .field("channels", &channels)
            .finish_non_exhaustive()
    }
}

impl PubSubDriver {
    /// Every namespace of the hub is subscribed: a namespace socketioxide
    /// makes after this (the catch-all that refuses unknown names makes one
    /// per name tried) stays on this hub, with no Redis channel, and
    /// nothing is unsubscribed before the hub stops. So names tried by a
    /// client cost Redis nothing, and cannot take a channel from the
    /// hub's own namespaces.
    pub(crate) fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
    }

    fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// The channel map; a panic elsewhere while holding it leaves it usable.
    fn channels(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, mpsc::Sender<ChanItem>>> {
        self.channels
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hands a pushed message to the stream of its channel, unless this hub
/// sent it (the adapter ignores its own requests; dropped here, they cost
/// neither a copy nor a decoding).
fn route(channels: &Channels, own: &OwnIds, push: PushInfo) {
    if push.kind != PushKind::Message {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
        return;
    };
    if let redis::Value::BulkString(bytes) = &payload
        && let Some(sender) = sender_of(bytes)
        && own
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|id| id == sender)
    {
        return;
    }
    let (channel, payload) = match (
        redis::from_redis_value::<String>(channel),
        redis::from_redis_value::<Vec<u8>>(payload),
    ) {
        (Ok(c), Ok(p)) => (c, p),
        _ => {
            tracing::warn!("unreadable pub/sub message from redis; dropped");
            return;
        }
    };
    let sender = channels
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&channel)
        .cloned();
    match sender {
        Some(tx) => {
            if let Err(e) = tx.try_send((channel.clone(), payload)) {
                tracing::warn!(%channel, error = %e, "cluster message dropped: the adapter is not keeping up");
            }
        }
        None => tracing::debug!(%channel, "message for a channel nobody listens to"),
    }
}

/// The hub's connection to the cluster's Redis.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// For the store, and for publishing.
    pub conn: ConnectionManager,
    /// For the adapter.
    pub driver: PubSubDriver,
}

/// Connects to `url` (fails if Redis does not answer now).
pub(crate) async fn connect(url: &str) -> Result<Connection, RedisError> {
    let client = crate::store::redis_client(url)?;
    let channels: Channels = Arc::default();
    let own: OwnIds = Arc::default();
    let routed = channels.clone();
    let own_routed = own.clone();
    let config = crate::store::redis_connection_config()
        .set_push_sender(move |push: PushInfo| {
            route(&routed, &own_routed, push);
            Ok::<(), std::convert::Infallible>(())
        })
        .set_automatic_resubscription();
    let conn = ConnectionManager::new_with_config(client, config).await?;
    let (outbox, inbox) = mpsc::channel(OUTBOX);
    tokio::spawn(
        Publisher {
            conn: conn.clone(),
            inbox,
        }
        .run(),
    );
    Ok(Connection {
        driver: PubSubDriver {
            conn: conn.clone(),
            channels,
            sealed: Arc::default(),
            outbox,
            own,
        },
        conn,
    })
}

impl Driver for PubSubDriver {
    type Error = RedisError;

    /// Queues the message for the [`Publisher`]: the caller does not wait
    /// for Redis, and messages leave in the order they were queued.
    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), RedisError> {
        if let Some(sender) = sender_of(&val) {
            let known = self
                .own
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|id| id == sender);
            if !known {
                self.own
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(sender.to_vec());
            }
        }
        self.outbox.send((chan, val)).await.map_err(|_| {
            RedisError::from((redis::ErrorKind::Client, "the hub's publisher has stopped"))
        })
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, RedisError> {
        let (tx, rx) = mpsc::channel(size);
        if self.is_sealed() {
            tracing::debug!(%chan, "a namespace made after start-up stays on this hub");
            return Ok(MessageStream::new(rx));
        }
        // Listen before subscribing, so no message slips by in between.
        self.channels().insert(chan.clone(), tx);
        if let Err(e) = self.conn.clone().subscribe(&chan).await {
            self.channels().remove(&chan);
            return Err(e);
        }
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), RedisError> {
        if self.is_sealed() {
            return Ok(());
        }
        self.channels().remove(&chan);
        self.conn.clone().unsubscribe(chan).await
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, RedisError> {
        let counts: HashMap<String, u16> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(counts.get(chan).copied().unwrap_or(0))
    }
}

impl PubSubDriver {
    /// Whether this hub's connection is subscribed to every channel the
    /// adapter listens on (after Redis came back, once it re-subscribed):
    /// Redis itself says how many channels the connection holds.
    pub(crate) async fn subscribed(&self) -> Result<bool, RedisError> {
        let wanted = self
            .channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        let info: String = redis::cmd("CLIENT")
            .arg("INFO")
            .query_async(&mut self.conn.clone())
            .await?;
        let held = info
            .split_whitespace()
            .find_map(|field| field.strip_prefix("sub="))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        Ok(wanted > 0 && held >= wanted)
    }
}

/// Pings Redis every second while it lives; dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Watchdog(
    /// The pinging task, aborted on drop so a stopped hub leaves nothing running.
    tokio::task::JoinHandle<()>,
);

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Watchdog {
    /// Starts pinging; `up` (`parcel_hub_redis_up`) says 1 while Redis answers.
    pub(crate) fn start(conn: ConnectionManager, up_gauge: metrics::Gauge) -> Self {
        Self(tokio::spawn(async move {
            let mut conn = conn;
            let ping = redis::cmd("PING");
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut was_up = true;
            loop {
                tick.tick().await;
                let answer = ping.query_async::<()>(&mut conn);
                let up = match tokio::time::timeout(Duration::from_secs(2), answer).await {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) => {
                        if was_up {
                            tracing::error!(error = %e, "lost the connection to redis; events are answered `internal` until it is back");
                        }
                        false
                    }
                    Err(_) => {
                        if was_up {
                            tracing::error!(
                                "redis does not answer; events are answered `internal` until it does"
                            );
                        }
                        false
                    }
                };
                if up && !was_up {
                    tracing::info!("redis is back; the hub serves again");
                }
                up_gauge.set(if up { 1.0 } else { 0.0 });
                was_up = up;
            }
        }))
    }
}
