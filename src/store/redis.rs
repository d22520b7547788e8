//! The clustered backend: orders and queues in one Redis shared by every hub.
//!
//! Hubs race: two of them may move the same order at the same moment. The
//! rules stay in Rust ([`Order::apply`], exactly as for SQLite); Redis only
//! commits the result with a compare-and-set script that also queues the
//! message, in one atomic step. If the order changed since it was read, the
//! script writes nothing and the hub reads it again and re-applies the rules,
//! so exactly one racer moves the order and queues one message; the others
//! then find it already there (a duplicate) or see why it cannot move.
//! A pickup needs no rule beyond "the order does not exist yet", so its
//! script checks that itself and records the order in one round trip.
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
//! - `P:orders:<owner>:<status>` (layout 2): a sorted set of the orders of
//!   a vendor (`vendor:<id>`) or a distributor (`distributor:<id>`) that
//!   have that status, scored by their update time in milliseconds;
//!   members are `<vendorId>,<orderId>` (`,` sorts below every identity
//!   character, so members with one score sort as (vendorId, orderId)).
//!   The commit script moves an order between these sets in the same
//!   atomic step that writes it, so a listing is a range of one to three
//!   sets, however many orders the party has.
//!
//! - `P:version`: the layout version (see [`LAYOUT_VERSION`]).
//! - `P:health`: written by health checks (`/api/health`) to prove Redis
//!   takes writes; expires after 10 s, and nothing reads it.
//!
//! The chat's history (added in 0.3.0):
//!
//! - `P:chat:offset`: the counter that gives every chat message its offset
//!   (one counter for the whole cluster, so offsets grow across hubs).
//! - `P:chat:everyone`: the namespace-wide messages; `P:chat:room:<room>`:
//!   one room's. Each is a sorted set scored by offset whose members are
//!   `<offset>\n<JSON row>` ([`ChatRow`]), trimmed to the newest
//!   [`CHAT_KEPT`] by the same script that adds to it.
//!
//! These keys are additive: no other key changed for them and nothing
//! has to be built from older data (a Redis written by 0.1.0 or 0.2.0
//! starts with an empty history), so they raise no layout version of their
//! own; the version 0.3.0 writes is 2, for the listing sets above.
//!
//! The values are this store's own row format ([`OrderRow`], [`MessageRow`]):
//! JSON that happens to be byte for byte what 0.1.0 wrote (its wire format
//! of the day), so a Redis written by 0.1.0 or 0.2.0 is read as it is; on
//! start-up it gains the listing sets, built from every `P:order:*` key,
//! and the version key. A Redis whose version is newer than this release
//! knows is refused, never rewritten.
//!
//! The write scripts go through one [`Committer`] task per hub, which keeps
//! one pipeline in flight and sends what queued meanwhile as the next: the
//! group commit of the SQLite store, for Redis. Under load the answers of a
//! whole pipeline come back together, so the hub delivers their messages in
//! one burst and every socket's writer sends several frames per system
//! call (README, "What each optimisation bought").
//!
//! A write returns once Redis has applied it, which is when the hub may ack
//! `ok`. How much an applied write survives is Redis's own persistence
//! setting (`appendonly`, `appendfsync`); the README says what to choose.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    AsyncCommands, Client, Cmd, ErrorKind, IntoConnectionInfo, ProtocolVersion, RedisError,
    RedisResult, Script, ServerErrorKind, Value,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{CHAT_KEPT, OrderListing, OrderPage, QueueDepth, Recorded, Store, StoreError};
use crate::domain::{
    ChatMessage, ChatName, ChatPost, DistributorId, HistoryEntry, Message, MessageId, Order,
    OrderId, OrderPosition, Pickup, Recipient, RoomName, Status, TransitionOutcome, VendorId,
};

/// The key layout this release writes: 1 added `P:version` to 0.1.0's
/// layout, 2 the listing sets `P:orders:<owner>:<status>`. The chat's keys
/// (`P:chat:*`, also 0.3.0) are additive and raise no version.
pub(super) const LAYOUT_VERSION: i64 = 2;

/// How often a write re-reads and retries after losing a race.
const MAX_ATTEMPTS: usize = 32;

/// How many bodies one `HMGET` fetches.
const READ_CHUNK: usize = 500;

/// Write scripts waiting for the [`Committer`] at most; a write waits for
/// room past this.
const WRITES_QUEUED: usize = 4_096;

/// Write scripts sent in one pipeline at most.
const WRITES_PER_PIPELINE: usize = 256;

/// A write script for the [`Committer`], and where its answer goes.
type Write = (Cmd, oneshot::Sender<RedisResult<Value>>);

/// Sends the store's write scripts to Redis in pipelines, in the order
/// they were queued, with one pipeline in flight: what queues while Redis
/// answers leaves together in the next. Alone, a write leaves at once;
/// under load, a pipeline's answers wake their callers together (see the
/// module's doc). Ends when every clone of the store is dropped.
struct Committer {
    conn: ConnectionManager,
    inbox: mpsc::Receiver<Write>,
}

impl Committer {
    async fn run(mut self) {
        let mut batch: Vec<Write> = Vec::with_capacity(WRITES_PER_PIPELINE);
        while self.inbox.recv_many(&mut batch, WRITES_PER_PIPELINE).await > 0 {
            let mut pipe = redis::pipe();
            // One script's error (a lost script cache) is its caller's, not the batch's.
            pipe.ignore_errors();
            let mut answers = Vec::with_capacity(batch.len());
            for (cmd, answer) in batch.drain(..) {
                pipe.add_command(cmd);
                answers.push(answer);
            }
            let results: RedisResult<Vec<RedisResult<Value>>> =
                pipe.query_async(&mut self.conn).await;
            match results {
                Ok(results) if results.len() == answers.len() => {
                    for (answer, result) in answers.into_iter().zip(results) {
                        // A caller that stopped waiting (its client left) needs no answer.
                        let _gone = answer.send(result);
                    }
                }
                Ok(results) => {
                    let e = RedisError::from((
                        ErrorKind::Client,
                        "a pipeline of writes was answered with the wrong number of replies",
                        format!("{} for {}", results.len(), answers.len()),
                    ));
                    for answer in answers {
                        let _gone = answer.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for answer in answers {
                        let _gone = answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

/// The start of an `EVALSHA` of `script` with `keys` keys: the keys and
/// then the arguments follow.
fn evalsha(script: &Script, keys: usize) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys);
    cmd
}

/// How many orders one step of the layout 2 migration lists.
const MIGRATION_CHUNK: usize = 500;

/// The Lua both scripts below share: files an order under its status in
/// its vendor's and its distributor's listing sets and takes it out of
/// the other statuses' sets. `first` is the index in `KEYS` of six keys:
/// the vendor's pending, in-transit, delivered sets, then the
/// distributor's; `status` is 1, 2 or 3 in that order.
const LIST_LUA: &str = r"
local function list(first, status, score, member)
  for i = 0, 2 do
    if i + 1 == status then
      redis.call('ZADD', KEYS[first + i], score, member)
      redis.call('ZADD', KEYS[first + 3 + i], score, member)
    else
      redis.call('ZREM', KEYS[first + i], member)
      redis.call('ZREM', KEYS[first + 3 + i], member)
    end
  end
end
";

/// Moves an order to its next step: sets it to its new body, lists it
/// under its new status and queues its message, but only if the order is
/// still what the caller read (`ARGV[1]`).
///
/// KEYS: order, seq, queue, messages, queues, then the six listing sets.
/// ARGV: expected body, new body, message id, message body, owner, status
/// (1 to 3), update time (ms), listing member.
/// Returns 1 when written, 0 when the order changed in the meantime.
const COMMIT_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[3], seq, ARGV[3])
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[5], ARGV[5])
list(6, tonumber(ARGV[6]), ARGV[7], ARGV[8])
return 1
";

/// Records a new order and queues its `pickup` in one round trip: if the
/// order already exists, writes nothing and returns its stored body (the
/// hub then tells a repeat from a conflict); otherwise writes it, files it
/// in its vendor's and its distributor's `pending` listings, queues the
/// message and returns nil. A new order is in no listing yet (orders are
/// never deleted in a cluster), so nothing is taken out of the others.
///
/// KEYS: order, seq, queue, messages, queues, the vendor's and the
/// distributor's `pending` listing sets.
/// ARGV: new body, message id, message body, owner, update time (ms),
/// listing member.
const PICKUP_LUA: &str = r"
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1])
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[3], seq, ARGV[2])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[5], ARGV[4])
redis.call('ZADD', KEYS[6], ARGV[5], ARGV[6])
redis.call('ZADD', KEYS[7], ARGV[5], ARGV[6])
return false
";

/// Gives a chat message the next offset, adds it to its sorted set and
/// drops the oldest beyond the cap, in one atomic step.
///
/// KEYS: offset counter, the room's (or the namespace's) sorted set.
/// ARGV: the JSON row, how many to keep. Returns the offset.
const CHAT_LUA: &str = r"
local offset = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], offset, string.format('%d', offset) .. '\n' .. ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
return offset
";

/// Lists orders written before layout 2, each only if its body is still
/// the one the caller read (a hub that committed it since has listed it).
///
/// KEYS: per order, its key and then its six listing sets.
/// ARGV: per order, the body read, its status (1 to 3), update time (ms)
/// and listing member.
/// Returns the 0-based places of the orders whose body had changed.
const MIGRATE_LUA: &str = r"
local changed = {}
for i = 0, #KEYS / 7 - 1 do
  if redis.call('GET', KEYS[i * 7 + 1]) == ARGV[i * 4 + 1] then
    list(i * 7 + 2, tonumber(ARGV[i * 4 + 2]), ARGV[i * 4 + 3], ARGV[i * 4 + 4])
  else
    table.insert(changed, i)
  end
end
return changed
";

/// Raises the layout version to `ARGV[1]` unless it is already higher;
/// returns the version now stored.
const VERSION_LUA: &str = r"
local found = tonumber(redis.call('GET', KEYS[1]) or '0')
if found < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return tonumber(ARGV[1])
end
return found
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

/// A status's place among a party's listing sets (1 to 3, as the scripts count).
fn status_place(status: Status) -> u8 {
    match status {
        Status::Pending => 1,
        Status::InTransit => 2,
        Status::Delivered => 3,
    }
}

/// The member that stands for an order in the listing sets.
fn member(vendor: &VendorId, order: &OrderId) -> String {
    format!("{vendor},{order}")
}

/// Where a listing member stands, from its member and score.
fn position(member: &str, score: f64) -> Result<OrderPosition, StoreError> {
    let bad = |why: &str| corrupt("a listing member", format!("{member:?}: {why}"));
    let (vendor, order) = member.split_once(',').ok_or_else(|| bad("no comma"))?;
    // Scores are whole milliseconds, well inside f64's exact integers.
    #[allow(clippy::cast_possible_truncation)]
    let updated_at = DateTime::from_timestamp_millis(score as i64).ok_or_else(|| bad("score"))?;
    Ok(OrderPosition {
        updated_at,
        vendor_id: VendorId::parse(vendor).map_err(|e| bad(&e.0))?,
        order_id: OrderId::parse(order).map_err(|e| bad(&e.0))?,
    })
}

/// Escapes `*?[]\` so a prefix matches itself in a `SCAN MATCH` pattern.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
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

/// A chat message as stored after its offset in `P:chat:...` (its room is
/// the key it is filed under).
#[derive(Debug, Serialize, Deserialize)]
struct ChatRow {
    from: String,
    text: String,
    #[serde(serialize_with = "stored_time")]
    at: DateTime<Utc>,
}

impl ChatRow {
    fn encode(post: &ChatPost) -> Result<String, StoreError> {
        serde_json::to_string(&ChatRow {
            from: post.from.to_string(),
            text: post.text.clone(),
            at: post.at,
        })
        .map_err(|e| corrupt("encoding a chat message", e))
    }

    /// Reads a member `<offset>\n<row>` of the sorted set of `room`.
    fn decode(member: &str, room: Option<&RoomName>) -> Result<ChatMessage, StoreError> {
        let (offset, body) = member
            .split_once('\n')
            .ok_or_else(|| corrupt("a chat message", "no offset"))?;
        let row: ChatRow = serde_json::from_str(body).map_err(|e| corrupt("a chat message", e))?;
        Ok(ChatMessage {
            offset: offset
                .parse()
                .map_err(|e| corrupt("a chat message's offset", e))?,
            post: ChatPost {
                from: ChatName::parse(&row.from).map_err(|e| corrupt("a chat sender", e))?,
                text: row.text,
                room: room.cloned(),
                at: row.at,
            },
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
    fn chat_offset(&self) -> String {
        format!("{}:chat:offset", self.prefix)
    }
    fn chat_log(&self, room: Option<&RoomName>) -> String {
        match room {
            None => format!("{}:chat:everyone", self.prefix),
            Some(room) => format!("{}:chat:room:{room}", self.prefix),
        }
    }
    fn health(&self) -> String {
        format!("{}:health", self.prefix)
    }
    /// The sorted set of `owner`'s orders with `status`.
    fn listing(&self, owner: &str, status: Status) -> String {
        let status = match status {
            Status::Pending => "pending",
            Status::InTransit => "in-transit",
            Status::Delivered => "delivered",
        };
        format!("{}:orders:{owner}:{status}", self.prefix)
    }
    /// The six listing sets an order belongs in: its vendor's three, then
    /// its distributor's, in the scripts' order.
    fn listings_of(&self, order: &Order) -> [String; 6] {
        let vendor = Recipient::Vendor(order.vendor_id.clone()).key();
        let distributor = Recipient::Distributor(order.distributor_id.clone()).key();
        let [pending, moving, delivered] = [Status::Pending, Status::InTransit, Status::Delivered];
        [
            self.listing(&vendor, pending),
            self.listing(&vendor, moving),
            self.listing(&vendor, delivered),
            self.listing(&distributor, pending),
            self.listing(&distributor, moving),
            self.listing(&distributor, delivered),
        ]
    }
    /// The pattern of every order key.
    fn every_order(&self) -> String {
        format!("{}:order:*", glob_escape(&self.prefix))
    }
}

/// Handle to the shared Redis. Cloning is shallow (one multiplexed connection).
#[derive(Clone)]
pub struct RedisStore {
    /// Reconnects by itself after Redis comes back.
    conn: ConnectionManager,
    keys: Keys,
    commit: Script,
    pickup: Script,
    chat: Script,
    migrate: Script,
    /// The write scripts' way to Redis, through the [`Committer`].
    writes: mpsc::Sender<Write>,
    /// Where each write script's time in the committer goes, once the hub's metrics exist.
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
    /// The key layout this release writes.
    pub const LAYOUT_VERSION: i64 = LAYOUT_VERSION;

    /// A store over an existing connection, keys under `prefix`; checks the
    /// layout version and brings a 0.1.0 or 0.2.0 layout to this one.
    pub async fn open(conn: ConnectionManager, prefix: &str) -> Result<Self, StoreError> {
        let (writes, inbox) = mpsc::channel(WRITES_QUEUED);
        tokio::spawn(
            Committer {
                conn: conn.clone(),
                inbox,
            }
            .run(),
        );
        let store = Self {
            writes,
            conn,
            keys: Keys {
                prefix: prefix.to_owned(),
            },
            commit: Script::new(&format!("{LIST_LUA}{COMMIT_LUA}")),
            pickup: Script::new(PICKUP_LUA),
            commits: Arc::default(),
            migrate: Script::new(&format!("{LIST_LUA}{MIGRATE_LUA}")),
            chat: Script::new(CHAT_LUA),
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

    /// Brings a new, 0.1.0 or 0.2.0 layout to this one (their values are
    /// read as they are; layout 2 adds the listing sets) and refuses a
    /// layout newer than this release.
    ///
    /// Several hubs may start at once: each lists every order (which is
    /// idempotent, and never undoes what a hub already serving committed,
    /// see [`MIGRATE_LUA`]), then raises the version; only a full pass sets
    /// it. Hubs of 0.2.0 must be stopped first: they refuse to start on
    /// layout 2, but one already running would keep writing unlisted orders.
    async fn check_layout(&self) -> Result<(), StoreError> {
        let found = self.layout_version().await?;
        let found = match found {
            Some(v) if v >= LAYOUT_VERSION => v,
            _ => {
                let listed = self.list_every_order().await?;
                let now: i64 = Script::new(VERSION_LUA)
                    .key(self.keys.version())
                    .arg(LAYOUT_VERSION)
                    .invoke_async(&mut self.conn.clone())
                    .await
                    .map_err(backend("setting the layout version"))?;
                if listed > 0 {
                    tracing::info!(
                        prefix = %self.keys.prefix,
                        from_version = ?found,
                        orders = listed,
                        "upgraded the Redis layout to version {LAYOUT_VERSION}"
                    );
                }
                now
            }
        };
        if found > LAYOUT_VERSION {
            return Err(StoreError::Corrupt(format!(
                "the keys under {}:* have layout version {found}, written by a newer parcel-hub; \
                 this one knows versions up to {LAYOUT_VERSION}",
                self.keys.prefix
            )));
        }
        Ok(())
    }

    /// Files every stored order in its listing sets (the layout 2
    /// migration); returns how many orders it listed.
    async fn list_every_order(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut listed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.keys.every_order())
                .arg("COUNT")
                .arg(MIGRATION_CHUNK)
                .query_async(&mut conn)
                .await
                .map_err(backend("finding the orders to list"))?;
            for chunk in keys.chunks(MIGRATION_CHUNK) {
                listed += self.list_orders_of_keys(chunk).await?;
            }
            if next == 0 {
                return Ok(listed);
            }
            cursor = next;
        }
    }

    /// Lists the orders stored under `keys` in one script call, reading
    /// again (up to [`MAX_ATTEMPTS`] times) those that changed meanwhile.
    async fn list_orders_of_keys(&self, keys: &[String]) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let mut keys: Vec<String> = keys.to_vec();
        let mut listed = 0;
        for _ in 0..MAX_ATTEMPTS {
            if keys.is_empty() {
                return Ok(listed);
            }
            let bodies: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(backend("reading the orders to list"))?;
            let mut invocation = self.migrate.prepare_invoke();
            let mut sent = Vec::new();
            // A key gone since SCAN (never, today: orders are not deleted) needs nothing.
            for (key, body) in keys.iter().zip(bodies) {
                let Some(body) = body else { continue };
                let order = OrderRow::decode(&body)?;
                invocation.key(key).key(&self.keys.listings_of(&order)[..]);
                invocation
                    .arg(body)
                    .arg(status_place(order.status))
                    .arg(order.updated_at.timestamp_millis())
                    .arg(member(&order.vendor_id, &order.order_id));
                sent.push(key.clone());
            }
            if sent.is_empty() {
                return Ok(listed);
            }
            let changed: Vec<usize> = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(backend("listing the stored orders"))?;
            listed += sent.len() - changed.len();
            keys = changed
                .into_iter()
                .filter_map(|at| sent.get(at).cloned())
                .collect();
        }
        tracing::warn!(
            orders = keys.len(),
            "orders kept changing while they were being listed; gave up"
        );
        Err(StoreError::Unavailable(
            "orders kept changing while the Redis layout was upgraded; gave up",
        ))
    }

    /// Records how long a write took, from `started`, in the commit
    /// histogram (once metrics observe it).
    fn record_commit(&self, started: Instant) {
        if let Some(commits) = self.commits.get() {
            commits.record(started.elapsed().as_secs_f64());
        }
    }

    /// Runs the write script `script` through the [`Committer`], as the
    /// command `build` makes; loads the script first if Redis does not
    /// have it (a restarted Redis, `SCRIPT FLUSH`) and runs it again.
    async fn write<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        build: impl Fn() -> Cmd,
    ) -> RedisResult<T> {
        let stopped = || RedisError::from((ErrorKind::Client, "the store's committer has stopped"));
        let mut loaded = false;
        loop {
            let (answer, answered) = oneshot::channel();
            self.writes
                .send((build(), answer))
                .await
                .map_err(|_| stopped())?;
            match answered.await.map_err(|_| stopped())? {
                Err(e) if !loaded && e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.load_async(&mut self.conn.clone()).await?;
                    loaded = true;
                }
                result => return redis::from_redis_value(result?).map_err(RedisError::from),
            }
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
    /// is still `expected`.
    async fn commit(&self, expected: &str, recorded: Recorded) -> Result<Attempt, StoreError> {
        let Some(message) = &recorded.queued else {
            return Ok(Attempt::Done(Box::new(recorded)));
        };
        let owner = message.recipient.key();
        let order = &recorded.order;
        let body = OrderRow::encode(order)?;
        let row = MessageRow::encode(message)?;
        let started = Instant::now();
        let keys = [
            self.keys.order(&order.vendor_id, &order.order_id),
            self.keys.seq(),
            self.keys.queue(&owner),
            self.keys.messages(&owner),
            self.keys.queues(),
        ];
        let listings = self.keys.listings_of(order);
        let member = member(&order.vendor_id, &order.order_id);
        let written: i64 = self
            .write(&self.commit, || {
                let mut cmd = evalsha(&self.commit, keys.len() + listings.len());
                cmd.arg(&keys[..])
                    .arg(&listings[..])
                    .arg(expected)
                    .arg(&body)
                    .arg(message.id.as_str())
                    .arg(&row)
                    .arg(&owner)
                    .arg(status_place(order.status))
                    .arg(order.updated_at.timestamp_millis())
                    .arg(&member);
                cmd
            })
            .await
            .map_err(backend("committing a write"))?;
        self.record_commit(started);
        Ok(if written == 1 {
            Attempt::Done(Box::new(recorded))
        } else {
            Attempt::LostRace
        })
    }

    /// Records a new order in one round trip ([`PICKUP_LUA`]), or finds
    /// the one stored under its id: the same request repeated, or a
    /// conflicting one. It cannot lose a race: the script checks and
    /// writes in one atomic step.
    async fn try_pickup(
        &self,
        vendor: &VendorId,
        pickup: &Pickup,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let order = Order::new_pending(vendor.clone(), pickup.clone(), at);
        let message = Message::about(&order);
        let owner = message.recipient.key();
        let member = member(&order.vendor_id, &order.order_id);
        let vendor_key = Recipient::Vendor(order.vendor_id.clone()).key();
        let distributor_key = Recipient::Distributor(order.distributor_id.clone()).key();
        let keys = [
            self.keys.order(&order.vendor_id, &order.order_id),
            self.keys.seq(),
            self.keys.queue(&owner),
            self.keys.messages(&owner),
            self.keys.queues(),
            self.keys.listing(&vendor_key, Status::Pending),
            self.keys.listing(&distributor_key, Status::Pending),
        ];
        let body = OrderRow::encode(&order)?;
        let row = MessageRow::encode(&message)?;
        let started = Instant::now();
        let stored: Option<String> = self
            .write(&self.pickup, || {
                let mut cmd = evalsha(&self.pickup, keys.len());
                cmd.arg(&keys[..])
                    .arg(&body)
                    .arg(message.id.as_str())
                    .arg(&row)
                    .arg(&owner)
                    .arg(order.updated_at.timestamp_millis())
                    .arg(&member);
                cmd
            })
            .await
            .map_err(backend("recording a pickup"))?;
        self.record_commit(started);
        let Some(body) = stored else {
            return Ok(Recorded {
                order,
                queued: Some(message),
            });
        };
        let order = OrderRow::decode(&body)?;
        if order.same_request(pickup) {
            return Ok(Recorded::repeated(order));
        }
        Err(StoreError::ConflictingPickup(pickup.order_id.clone()))
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
            TransitionOutcome::Moved => self.commit(&body, Recorded::moved(order)).await,
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
        self.try_pickup(vendor, pickup, at).await
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

    async fn pending_for(
        &self,
        recipient: &Recipient,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let owner = recipient.key();
        let mut conn = self.conn.clone();
        let last = isize::try_from(limit).map_or(-1, |limit| limit - 1);
        let ids: Vec<String> = conn
            .zrange(self.keys.queue(&owner), 0, last)
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

    async fn list_orders(&self, listing: &OrderListing) -> Result<OrderPage, StoreError> {
        let owner = listing.party.key();
        let statuses = listing.filter.statuses();
        let read = listing.limit.saturating_add(1);
        // One atomic read of every set: an order is in exactly one of them.
        let mut pipe = redis::pipe();
        pipe.atomic();
        let below = listing
            .before
            .as_ref()
            .map(|p| (p.updated_ms(), member(&p.vendor_id, &p.order_id)));
        for status in statuses {
            let key = self.keys.listing(&owner, *status);
            match &below {
                None => {
                    pipe.cmd("ZRANGE")
                        .arg(&key)
                        .arg("+inf")
                        .arg("-inf")
                        .arg("BYSCORE")
                        .arg("REV")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(read)
                        .arg("WITHSCORES");
                }
                Some((ms, _)) => {
                    // The orders updated in the very millisecond the page
                    // starts at (a few at most), then the older ones.
                    pipe.cmd("ZRANGE")
                        .arg(&key)
                        .arg(ms)
                        .arg(ms)
                        .arg("BYSCORE")
                        .arg("REV")
                        .arg("WITHSCORES");
                    pipe.cmd("ZRANGE")
                        .arg(&key)
                        .arg(format!("({ms}"))
                        .arg("-inf")
                        .arg("BYSCORE")
                        .arg("REV")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(read)
                        .arg("WITHSCORES");
                }
            }
        }
        let mut conn = self.conn.clone();
        let ranges: Vec<Vec<(String, f64)>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(backend("listing orders"))?;
        let mut found: Vec<(f64, String)> = Vec::with_capacity(read * statuses.len());
        for (n, range) in ranges.into_iter().enumerate() {
            let ties = below.is_some() && n % 2 == 0;
            found.extend(
                range
                    .into_iter()
                    .filter(|(m, _)| match &below {
                        Some((_, start)) if ties => m < start,
                        _ => true,
                    })
                    .take(read)
                    .map(|(m, score)| (score, m)),
            );
        }
        // Newest first; one millisecond's orders by member, descending.
        found.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        let more = found.len() > listing.limit;
        found.truncate(listing.limit);
        let next = match found.last() {
            Some((score, m)) if more => Some(position(m, *score)?),
            _ => None,
        };
        let mut keys = Vec::with_capacity(found.len());
        for (score, m) in &found {
            let p = position(m, *score)?;
            keys.push(self.keys.order(&p.vendor_id, &p.order_id));
        }
        let bodies: Vec<Option<String>> = if keys.is_empty() {
            Vec::new()
        } else {
            redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(backend("listing orders"))?
        };
        let mut orders = Vec::with_capacity(bodies.len());
        // An order that moved between the two reads is shown as it stands
        // now if it still belongs in this listing, and left out if not.
        for body in bodies.into_iter().flatten() {
            let order = OrderRow::decode(&body)?;
            if listing.filter.admits(order.status) {
                orders.push(order);
            }
        }
        Ok(OrderPage { orders, next })
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

    async fn record_chat(&self, post: &ChatPost) -> Result<ChatMessage, StoreError> {
        let offset: u64 = self
            .chat
            .key(self.keys.chat_offset())
            .key(self.keys.chat_log(post.room.as_ref()))
            .arg(ChatRow::encode(post)?)
            .arg(CHAT_KEPT)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend("storing a chat message"))?;
        Ok(ChatMessage {
            offset,
            post: post.clone(),
        })
    }

    async fn chat_after(
        &self,
        room: Option<&RoomName>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        // Newest first, from the top score down to just above `after`.
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.chat_log(room))
            .arg("+inf")
            .arg(format!("({after}"))
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend("reading the chat history"))?;
        members
            .iter()
            .rev()
            .map(|member| ChatRow::decode(member, room))
            .collect()
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
