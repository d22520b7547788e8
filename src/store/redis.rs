//! The clustered backend: orders and queues in one Redis shared by every hub.
//!
//! Hubs race: two of them may move the same order at the same moment. The
//! rules stay in Rust ([`Order::apply`], exactly as for SQLite); Redis only
//! commits the result with a compare-and-set script that also queues the
//! message, in one atomic step. If the order changed since it was read, the
//! script writes nothing and the hub reads it again and re-applies the rules,
//! so exactly one racer moves the order and queues one message; the others
//! then find it already there (a duplicate) or see why it cannot move.
//!
//! `WATCH`/`MULTI` would do the same, but a watch belongs to a connection,
//! and the hub multiplexes every request over one connection, so a script is
//! the only safe way to make a read-check-write atomic here.
//!
//! Keys, under a configurable prefix `P` (ids never contain `:`):
//!
//! - `P:order:<vendorId>:<orderId>`: the order as JSON.
//! - `P:queue:<owner>`: a sorted set of message ids, scored by `P:seq`, so
//!   `pending_for` is oldest first across every hub.
//! - `P:messages:<owner>`: a hash from message id to the message as JSON.
//! - `P:queues`: the set of owners that ever had a queue (for depths).
//! - `P:seq`: the counter that orders messages.
//!
//! - `P:version`: the layout version (see [`LAYOUT_VERSION`]).
//! - `P:health`: written by health checks (`/api/health`) to prove Redis
//!   takes writes; expires after 10 s, and nothing reads it.
//!
//! The values are this store's own row format ([`OrderRow`], [`MessageRow`]):
//! JSON that happens to be byte for byte what 0.1.0 wrote (its wire format
//! of the day), so a Redis written by 0.1.0 is read as it is; it only gains
//! the version key. A Redis whose version is newer than this release knows
//! is refused, never rewritten.
//!
//! A write returns once Redis has applied it, which is when the hub may ack
//! `ok`. How much an applied write survives is Redis's own persistence
//! setting (`appendonly`, `appendfsync`); the README says what to choose.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, IntoConnectionInfo, ProtocolVersion, Script};
use serde::{Deserialize, Serialize};

use super::{QueueDepth, Recorded, Store, StoreError};
use crate::domain::{
    DistributorId, HistoryEntry, Message, MessageId, Order, OrderId, Pickup, Recipient, Status,
    TransitionOutcome, VendorId,
};

/// The key layout this release writes: 1 added `P:version` to 0.1.0's layout.
pub(super) const LAYOUT_VERSION: i64 = 1;

/// How often a write re-reads and retries after losing a race.
const MAX_ATTEMPTS: usize = 32;

/// How many bodies one `HMGET` fetches.
const READ_CHUNK: usize = 500;

/// Sets the order to its new body and queues its message, but only if the
/// order is still what the caller read (`ARGV[1]`, empty: "does not exist").
///
/// KEYS: order, seq, queue, messages, queues.
/// ARGV: expected body, new body, message id, message body, owner.
/// Returns 1 when written, 0 when the order changed in the meantime.
const COMMIT_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if current then return 0 end
elseif current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[3], seq, ARGV[3])
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[5], ARGV[5])
return 1
";

/// Maps a Redis error met while doing `what` to a [`StoreError`] with its cause.
fn backend(what: &'static str) -> impl Fn(redis::RedisError) -> StoreError {
    move |e| StoreError::backend(what)(Box::new(e))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// A time as stored: RFC 3339, UTC, milliseconds.
fn stored_time<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// How a status is stored (the store's own names, whatever the wire calls them).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StatusRow {
    Pending,
    InTransit,
    Delivered,
}

impl From<Status> for StatusRow {
    fn from(s: Status) -> Self {
        match s {
            Status::Pending => StatusRow::Pending,
            Status::InTransit => StatusRow::InTransit,
            Status::Delivered => StatusRow::Delivered,
        }
    }
}

impl From<StatusRow> for Status {
    fn from(s: StatusRow) -> Self {
        match s {
            StatusRow::Pending => Status::Pending,
            StatusRow::InTransit => Status::InTransit,
            StatusRow::Delivered => Status::Delivered,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StepRow {
    status: StatusRow,
    #[serde(serialize_with = "stored_time")]
    at: DateTime<Utc>,
}

/// An order as stored under `P:order:<vendorId>:<orderId>`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderRow {
    order_id: String,
    vendor_id: String,
    distributor_id: String,
    customer: String,
    address: String,
    status: StatusRow,
    #[serde(serialize_with = "stored_time")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "stored_time")]
    updated_at: DateTime<Utc>,
    history: Vec<StepRow>,
}

impl From<&Order> for OrderRow {
    fn from(o: &Order) -> Self {
        Self {
            order_id: o.order_id.to_string(),
            vendor_id: o.vendor_id.to_string(),
            distributor_id: o.distributor_id.to_string(),
            customer: o.customer.clone(),
            address: o.address.clone(),
            status: o.status.into(),
            created_at: o.created_at,
            updated_at: o.updated_at,
            history: o
                .history
                .iter()
                .map(|h| StepRow {
                    status: h.status.into(),
                    at: h.at,
                })
                .collect(),
        }
    }
}

impl OrderRow {
    fn into_order(self) -> Result<Order, StoreError> {
        let id = |e: crate::domain::InvalidValue| corrupt("an order", e);
        Ok(Order {
            order_id: OrderId::parse(&self.order_id).map_err(id)?,
            vendor_id: VendorId::parse(&self.vendor_id).map_err(id)?,
            distributor_id: DistributorId::parse(&self.distributor_id).map_err(id)?,
            customer: self.customer,
            address: self.address,
            status: self.status.into(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            history: self
                .history
                .into_iter()
                .map(|h| HistoryEntry {
                    status: h.status.into(),
                    at: h.at,
                })
                .collect(),
        })
    }

    fn encode(order: &Order) -> Result<String, StoreError> {
        serde_json::to_string(&OrderRow::from(order)).map_err(|e| corrupt("encoding an order", e))
    }

    fn decode(body: &str) -> Result<Order, StoreError> {
        serde_json::from_str::<OrderRow>(body)
            .map_err(|e| corrupt("an order", e))?
            .into_order()
    }
}

/// A queued message as stored in `P:messages:<owner>`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageRow {
    message_id: String,
    /// The step it reports, by the name of its event (as 0.1.0 wrote it).
    event: String,
    order: OrderRow,
    #[serde(serialize_with = "stored_time")]
    at: DateTime<Utc>,
}

fn step_name(status: Status) -> &'static str {
    match status {
        Status::Pending => "pickup",
        Status::InTransit => "in-transit",
        Status::Delivered => "delivered",
    }
}

impl MessageRow {
    fn encode(message: &Message) -> Result<String, StoreError> {
        serde_json::to_string(&MessageRow {
            message_id: message.id.to_string(),
            event: step_name(message.status()).to_owned(),
            order: OrderRow::from(&message.order),
            at: message.at,
        })
        .map_err(|e| corrupt("encoding a message", e))
    }

    fn decode(body: &str, recipient: &Recipient) -> Result<Message, StoreError> {
        let row: MessageRow = serde_json::from_str(body).map_err(|e| corrupt("a message", e))?;
        let order = row.order.into_order()?;
        let reported = match row.event.as_str() {
            "pickup" => Status::Pending,
            "in-transit" => Status::InTransit,
            "delivered" => Status::Delivered,
            other => return Err(corrupt("a message", format!("unknown event {other:?}"))),
        };
        if order.status != reported {
            return Err(corrupt(
                "a message",
                format!("it reports {reported} but carries a {} order", order.status),
            ));
        }
        Ok(Message {
            id: MessageId::parse(&row.message_id).map_err(|e| corrupt("a message id", e))?,
            recipient: recipient.clone(),
            order,
            at: row.at,
        })
    }
}

/// A client for `url` that speaks RESP3 (pub/sub pushes need it), whatever the URL says.
pub(crate) fn client(url: &str) -> redis::RedisResult<Client> {
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Client::open(info.set_redis_settings(settings))
}

/// Connection settings for a hub: fail fast while Redis is away (so events
/// are answered `internal` well within the client's ack timeout), and
/// reconnect on the next command or watchdog ping once it is back.
pub(crate) fn connection_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_millis(500))
}

/// Key names under one prefix.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn order(&self, vendor: &VendorId, order: &OrderId) -> String {
        format!("{}:order:{vendor}:{order}", self.prefix)
    }
    fn seq(&self) -> String {
        format!("{}:seq", self.prefix)
    }
    fn queue(&self, owner: &str) -> String {
        format!("{}:queue:{owner}", self.prefix)
    }
    fn messages(&self, owner: &str) -> String {
        format!("{}:messages:{owner}", self.prefix)
    }
    fn queues(&self) -> String {
        format!("{}:queues", self.prefix)
    }
    fn version(&self) -> String {
        format!("{}:version", self.prefix)
    }
    fn health(&self) -> String {
        format!("{}:health", self.prefix)
    }
}

/// Handle to the shared Redis. Cloning is shallow (one multiplexed connection).
#[derive(Clone)]
pub struct RedisStore {
    /// Reconnects by itself after Redis comes back.
    conn: ConnectionManager,
    keys: Keys,
    commit: Script,
    /// Where each commit script's round trip goes, once the hub's metrics exist.
    commits: Arc<OnceLock<metrics::Histogram>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix)
            .finish_non_exhaustive()
    }
}

/// What one compare-and-set attempt did.
enum Attempt {
    Done(Box<Recorded>),
    LostRace,
}

impl RedisStore {
    /// A store over an existing connection, keys under `prefix`; checks the
    /// layout version (and marks a 0.1.0 layout as version 1).
    pub async fn open(conn: ConnectionManager, prefix: &str) -> Result<Self, StoreError> {
        let store = Self {
            conn,
            keys: Keys {
                prefix: prefix.to_owned(),
            },
            commit: Script::new(COMMIT_SCRIPT),
            commits: Arc::default(),
        };
        store.check_layout().await?;
        Ok(store)
    }

    /// Connects to `url` (fails if Redis does not answer now), keys under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = client(url).map_err(backend("reading the Redis URL"))?;
        let conn = ConnectionManager::new_with_config(client, connection_config())
            .await
            .map_err(backend("connecting to Redis"))?;
        Self::open(conn, prefix).await
    }

    /// The layout version stored under this prefix.
    pub async fn layout_version(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .clone()
            .get(self.keys.version())
            .await
            .map_err(backend("reading the layout version"))
    }

    /// Sets the version key on a new or 0.1.0 layout (the values of 0.1.0
    /// are read as they are); refuses a layout newer than this release.
    async fn check_layout(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        // Several hubs may start at once: only one sets it, all read it back.
        let _: bool = conn
            .set_nx(self.keys.version(), LAYOUT_VERSION)
            .await
            .map_err(backend("setting the layout version"))?;
        match self.layout_version().await? {
            Some(v) if v > LAYOUT_VERSION => Err(StoreError::Corrupt(format!(
                "the keys under {}:* have layout version {v}, written by a newer parcel-hub; \
                 this one knows versions up to {LAYOUT_VERSION}",
                self.keys.prefix
            ))),
            _ => Ok(()),
        }
    }

    /// The order's stored JSON, if any.
    async fn load(&self, key: &str) -> Result<Option<(String, Order)>, StoreError> {
        let body: Option<String> = self
            .conn
            .clone()
            .get(key)
            .await
            .map_err(backend("reading an order"))?;
        body.map(|b| {
            let order = OrderRow::decode(&b)?;
            Ok((b, order))
        })
        .transpose()
    }

    /// Writes the order of `recorded` and queues its message, if the order
    /// is still `expected` (`None`: still absent).
    async fn commit(
        &self,
        expected: Option<&str>,
        recorded: Recorded,
    ) -> Result<Attempt, StoreError> {
        let Some(message) = &recorded.queued else {
            return Ok(Attempt::Done(Box::new(recorded)));
        };
        let owner = message.recipient.key();
        let body = OrderRow::encode(&recorded.order)?;
        let row = MessageRow::encode(message)?;
        let started = Instant::now();
        let written: i64 = self
            .commit
            .key(
                self.keys
                    .order(&recorded.order.vendor_id, &recorded.order.order_id),
            )
            .key(self.keys.seq())
            .key(self.keys.queue(&owner))
            .key(self.keys.messages(&owner))
            .key(self.keys.queues())
            .arg(expected.unwrap_or(""))
            .arg(body)
            .arg(message.id.as_str())
            .arg(row)
            .arg(&owner)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend("committing a write"))?;
        if let Some(commits) = self.commits.get() {
            commits.record(started.elapsed().as_secs_f64());
        }
        Ok(if written == 1 {
            Attempt::Done(Box::new(recorded))
        } else {
            Attempt::LostRace
        })
    }

    async fn try_pickup(
        &self,
        vendor: &VendorId,
        pickup: &Pickup,
        at: DateTime<Utc>,
    ) -> Result<Attempt, StoreError> {
        let key = self.keys.order(vendor, &pickup.order_id);
        if let Some((_, order)) = self.load(&key).await? {
            if order.same_request(pickup) {
                return Ok(Attempt::Done(Box::new(Recorded::repeated(order))));
            }
            return Err(StoreError::ConflictingPickup(pickup.order_id.clone()));
        }
        let order = Order::new_pending(vendor.clone(), pickup.clone(), at);
        self.commit(None, Recorded::moved(order)).await
    }

    async fn try_transition(
        &self,
        by: &DistributorId,
        vendor: &VendorId,
        order_id: &OrderId,
        to: Status,
        at: DateTime<Utc>,
    ) -> Result<Attempt, StoreError> {
        let key = self.keys.order(vendor, order_id);
        let (body, mut order) = self
            .load(&key)
            .await?
            .ok_or_else(|| StoreError::UnknownOrder(order_id.clone()))?;
        match order.apply(by, to, at)? {
            TransitionOutcome::AlreadyThere => {
                Ok(Attempt::Done(Box::new(Recorded::repeated(order))))
            }
            TransitionOutcome::Moved => self.commit(Some(&body), Recorded::moved(order)).await,
        }
    }
}

/// Runs `attempt` until it does not lose a race (or gives up).
async fn until_settled<F, Fut>(what: &'static str, mut attempt: F) -> Result<Recorded, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Attempt, StoreError>>,
{
    for _ in 0..MAX_ATTEMPTS {
        if let Attempt::Done(recorded) = attempt().await? {
            return Ok(*recorded);
        }
    }
    tracing::warn!(
        what,
        attempts = MAX_ATTEMPTS,
        "an order kept changing under a write; gave up"
    );
    Err(StoreError::Unavailable(
        "the order kept changing under this write; gave up",
    ))
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn record_pickup(
        &self,
        vendor: &VendorId,
        pickup: &Pickup,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        until_settled("pickup", || self.try_pickup(vendor, pickup, at)).await
    }

    async fn record_transition(
        &self,
        by: &DistributorId,
        vendor: &VendorId,
        order: &OrderId,
        to: Status,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        until_settled("transition", || {
            self.try_transition(by, vendor, order, to, at)
        })
        .await
    }

    async fn confirm(
        &self,
        recipient: &Recipient,
        message: &MessageId,
    ) -> Result<bool, StoreError> {
        let owner = recipient.key();
        let (removed, _): (i64, i64) = redis::pipe()
            .atomic()
            .zrem(self.keys.queue(&owner), message.as_str())
            .hdel(self.keys.messages(&owner), message.as_str())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend("confirming a message"))?;
        Ok(removed > 0)
    }

    async fn pending_for(&self, recipient: &Recipient) -> Result<Vec<Message>, StoreError> {
        let owner = recipient.key();
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn
            .zrange(self.keys.queue(&owner), 0, -1)
            .await
            .map_err(backend("reading a queue"))?;
        let mut messages = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(READ_CHUNK) {
            let bodies: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.keys.messages(&owner))
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(backend("reading a queue"))?;
            // A body confirmed between the two reads is simply gone.
            for body in bodies.into_iter().flatten() {
                messages.push(MessageRow::decode(&body, recipient)?);
            }
        }
        Ok(messages)
    }

    async fn order(&self, vendor: &VendorId, order: &OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self
            .load(&self.keys.order(vendor, order))
            .await?
            .map(|(_, order)| order))
    }

    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError> {
        let mut conn = self.conn.clone();
        let mut owners: Vec<String> = conn
            .smembers(self.keys.queues())
            .await
            .map_err(backend("counting the queues"))?;
        owners.sort();
        let mut pipe = redis::pipe();
        for owner in &owners {
            pipe.zcard(self.keys.queue(owner));
        }
        let depths: Vec<u64> = if owners.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn)
                .await
                .map_err(backend("counting the queues"))?
        };
        Ok(owners
            .iter()
            .zip(depths)
            .filter(|(_, depth)| *depth > 0)
            .filter_map(|(owner, depth)| {
                Recipient::from_key(owner).map(|owner| QueueDepth { owner, depth })
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(backend("pinging Redis"))
    }

    async fn check_write(&self) -> Result<(), StoreError> {
        // A read-only replica, a failed RDB save (`MISCONF`) or a full
        // `maxmemory` refuses this like any other write.
        redis::cmd("SET")
            .arg(self.keys.health())
            .arg(Utc::now().timestamp_millis())
            .arg("PX")
            .arg(10_000)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(backend("checking that Redis takes writes"))
    }

    fn observe_commits(&self, commits: metrics::Histogram) {
        if self.commits.set(commits).is_err() {
            tracing::warn!("the store's commits were already observed");
        }
    }
}
