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
//! - `P:messages:<owner>`: a hash from message id to its envelope as JSON.
//! - `P:queues`: the set of owners that ever had a queue (for depths).
//! - `P:seq`: the counter that orders messages.
//!
//! A write returns once Redis has applied it, which is when the hub may ack
//! `ok`. How much an applied write survives is Redis's own persistence
//! setting (`appendonly`, `appendfsync`); the README says what to choose.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, IntoConnectionInfo, ProtocolVersion, Script};

use super::{QueueDepth, Queued, Recorded, Store, StoreError, envelope};
use crate::domain::{
    DistributorId, MessageId, Order, OrderId, Recipient, Status, TransitionOutcome, VendorId,
};
use crate::protocol::{MessageEnvelope, PickupRequest, event, transition_event};

/// How often a write re-reads and retries after losing a race.
const MAX_ATTEMPTS: usize = 32;

/// How many bodies one `HMGET` fetches.
const READ_CHUNK: usize = 500;

/// Sets the order to its new body and queues its message, but only if the
/// order is still what the caller read (`ARGV[1]`, empty: "does not exist").
///
/// KEYS: order, seq, queue, messages, queues.
/// ARGV: expected body, new body, message id, envelope, owner.
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

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A client for `url` that speaks RESP3 (pub/sub pushes need it), whatever the URL says.
pub fn client(url: &str) -> redis::RedisResult<Client> {
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
pub fn connection_config() -> ConnectionManagerConfig {
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
}

/// Handle to the shared Redis. Cloning is shallow (one multiplexed connection).
#[derive(Clone)]
pub struct RedisStore {
    /// Reconnects by itself after Redis comes back.
    conn: ConnectionManager,
    keys: Keys,
    commit: Script,
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
    /// A store over an existing connection, keys under `prefix`.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            keys: Keys {
                prefix: prefix.to_owned(),
            },
            commit: Script::new(COMMIT_SCRIPT),
        }
    }

    /// Connects to `url` (fails if Redis does not answer now), keys under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = client(url).map_err(backend)?;
        let conn = ConnectionManager::new_with_config(client, connection_config())
            .await
            .map_err(backend)?;
        Ok(Self::new(conn, prefix))
    }

    /// The order's stored JSON, if any.
    async fn load(&self, key: &str) -> Result<Option<(String, Order)>, StoreError> {
        let body: Option<String> = self.conn.clone().get(key).await.map_err(backend)?;
        body.map(|b| {
            let order = serde_json::from_str(&b).map_err(backend)?;
            Ok((b, order))
        })
        .transpose()
    }

    /// Writes `order` and queues `event` for `recipient`, if the order is
    /// still `expected` (`None`: still absent).
    async fn commit(
        &self,
        expected: Option<&str>,
        order: Order,
        recipient: Recipient,
        event: &str,
        at: DateTime<Utc>,
    ) -> Result<Attempt, StoreError> {
        let owner = recipient.key();
        let envelope = envelope(event, &order, at);
        let body = serde_json::to_string(&order).map_err(backend)?;
        let message = serde_json::to_string(&envelope).map_err(backend)?;
        let written: i64 = self
            .commit
            .key(self.keys.order(&order.vendor_id, &order.order_id))
            .key(self.keys.seq())
            .key(self.keys.queue(&owner))
            .key(self.keys.messages(&owner))
            .key(self.keys.queues())
            .arg(expected.unwrap_or(""))
            .arg(body)
            .arg(envelope.message_id.as_str())
            .arg(message)
            .arg(&owner)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(if written == 1 {
            Attempt::Done(Box::new(Recorded {
                order,
                queued: Some(Queued {
                    recipient,
                    envelope,
                }),
            }))
        } else {
            Attempt::LostRace
        })
    }

    async fn try_pickup(
        &self,
        vendor: &VendorId,
        request: &PickupRequest,
        at: DateTime<Utc>,
    ) -> Result<Attempt, StoreError> {
        let key = self.keys.order(vendor, &request.order_id);
        if let Some((_, order)) = self.load(&key).await? {
            if order.same_request(&request.distributor_id, &request.customer, &request.address) {
                return Ok(Attempt::Done(Box::new(Recorded {
                    order,
                    queued: None,
                })));
            }
            return Err(StoreError::ConflictingPickup(request.order_id.clone()));
        }
        let order = Order::new_pending(
            vendor.clone(),
            request.order_id.clone(),
            request.distributor_id.clone(),
            request.customer.clone(),
            request.address.clone(),
            at,
        );
        let recipient = Recipient::Distributor(request.distributor_id.clone());
        self.commit(None, order, recipient, event::PICKUP, at).await
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
            TransitionOutcome::AlreadyThere => Ok(Attempt::Done(Box::new(Recorded {
                order,
                queued: None,
            }))),
            TransitionOutcome::Moved => {
                let recipient = Recipient::Vendor(vendor.clone());
                self.commit(Some(&body), order, recipient, transition_event(to), at)
                    .await
            }
        }
    }
}

/// Runs `attempt` until it does not lose a race (or gives up).
async fn until_settled<F, Fut>(what: &str, mut attempt: F) -> Result<Recorded, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Attempt, StoreError>>,
{
    for _ in 0..MAX_ATTEMPTS {
        if let Attempt::Done(recorded) = attempt().await? {
            return Ok(*recorded);
        }
    }
    Err(StoreError::Backend(format!(
        "{what}: the order kept changing; gave up after {MAX_ATTEMPTS} attempts"
    )))
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn record_pickup(
        &self,
        vendor: &VendorId,
        request: &PickupRequest,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        until_settled("pickup", || self.try_pickup(vendor, request, at)).await
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
            .map_err(backend)?;
        Ok(removed > 0)
    }

    async fn pending_for(&self, recipient: &Recipient) -> Result<Vec<MessageEnvelope>, StoreError> {
        let owner = recipient.key();
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn
            .zrange(self.keys.queue(&owner), 0, -1)
            .await
            .map_err(backend)?;
        let mut messages = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(READ_CHUNK) {
            let bodies: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.keys.messages(&owner))
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            // A body confirmed between the two reads is simply gone.
            for body in bodies.into_iter().flatten() {
                messages.push(serde_json::from_str(&body).map_err(backend)?);
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
        let mut owners: Vec<String> = conn.smembers(self.keys.queues()).await.map_err(backend)?;
        owners.sort();
        let mut pipe = redis::pipe();
        for owner in &owners {
            pipe.zcard(self.keys.queue(owner));
        }
        let depths: Vec<u64> = if owners.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await.map_err(backend)?
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
            .map_err(backend)
    }
}
