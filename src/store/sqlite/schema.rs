//! The database file's schema, its version (`PRAGMA user_version`) and the
//! migrations that bring a file written by an older release up to date.
//!
//! Migrations run in order, all in one transaction when the store opens:
//! either the file reaches the current version with everything it held, or
//! it is left as it was and the hub does not start. A file written by a
//! newer release than this one is refused, never rewritten.
//!
//! | version | release | what |
//! |---|---|---|
//! | 0 | 0.1.0 | `orders` and `messages` rows each hold one JSON body (the wire format of the day), no version |
//! | 1 | 0.2.0 | orders in columns, one time per step; a message names its order and step (its content is the order as of that step); indexes for listing a party's orders |
//! | 2 | 0.3.0 | the listing indexes lead with the status after the party, so a page of one status (or a merge of two or three) is a range of an index however many orders the party has |
//! | 3 | 0.3.0 | `chat_messages`: the chat's history, the row id is the message's offset (`AUTOINCREMENT`, so an offset is never given twice, even after old rows are dropped); room `''` holds the namespace-wide messages |
//!
//! Versions 2 and 3 both arrive in 0.3.0 (they were built side by side and
//! merged): a 0.2.0 file (version 1) takes both steps on its first open, a
//! 0.1.0 file all three.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, params};
use serde::Deserialize;

use super::{db, rows};
use crate::domain::{DistributorId, HistoryEntry, Order, OrderId, Status, VendorId};
use crate::store::StoreError;

/// The version this release writes.
pub(super) const VERSION: i64 = 3;

/// Brings the database up to [`VERSION`]; returns the version it had.
pub(super) fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db("reading the schema version"))?;
    if found > VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {found}, written by a newer parcel-hub; \
             this one knows versions up to {VERSION}"
        )));
    }
    if found == VERSION {
        return Ok(found);
    }
    let tx = conn.transaction().map_err(db("starting the migration"))?;
    for version in found..VERSION {
        match version {
            0 => to_v1(&tx)?,
            1 => to_v2(&tx)?,
            2 => to_v3(&tx)?,
            _ => unreachable_version(version)?,
        }
    }
    tx.pragma_update(None, "user_version", VERSION)
        .map_err(db("setting the schema version"))?;
    tx.commit().map_err(db("committing the migration"))?;
    Ok(found)
}

fn unreachable_version(version: i64) -> Result<(), StoreError> {
    Err(StoreError::Corrupt(format!(
        "no migration from schema version {version}"
    )))
}

/// Version 1: orders in columns; messages point at their order and step.
fn to_v1(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let legacy = has_column(tx, "orders", "body")?;
    if legacy {
        tx.execute_batch(
            "ALTER TABLE orders RENAME TO orders_v0;
             ALTER TABLE messages RENAME TO messages_v0;
             DROP INDEX IF EXISTS messages_by_owner;",
        )
        .map_err(db("setting the 0.1.0 tables aside"))?;
    }
    tx.execute_batch(
        "CREATE TABLE orders (
             vendor_id      TEXT NOT NULL,
             order_id       TEXT NOT NULL,
             distributor_id TEXT NOT NULL,
             customer       TEXT NOT NULL,
             address        TEXT NOT NULL,
             status         TEXT NOT NULL,
             pending_ms     INTEGER NOT NULL,
             in_transit_ms  INTEGER,
             delivered_ms   INTEGER,
             updated_ms     INTEGER NOT NULL,
             PRIMARY KEY (vendor_id, order_id)
         ) WITHOUT ROWID;
         CREATE INDEX orders_by_vendor ON orders (vendor_id, updated_ms, order_id);
         CREATE INDEX orders_by_distributor
             ON orders (distributor_id, updated_ms, vendor_id, order_id);
         CREATE TABLE messages (
             seq        INTEGER PRIMARY KEY AUTOINCREMENT,
             message_id TEXT NOT NULL UNIQUE,
             owner      TEXT NOT NULL,
             vendor_id  TEXT NOT NULL,
             order_id   TEXT NOT NULL,
             status     TEXT NOT NULL
         );
         CREATE INDEX messages_by_owner ON messages (owner, seq);",
    )
    .map_err(db("creating the version 1 tables"))?;
    if legacy {
        let (orders, messages) = copy_v0(tx)?;
        tx.execute_batch("DROP TABLE orders_v0; DROP TABLE messages_v0;")
            .map_err(db("dropping the 0.1.0 tables"))?;
        tracing::info!(
            orders,
            messages,
            "upgraded a 0.1.0 database to schema version 1"
        );
    }
    Ok(())
}

/// Version 2: the listing indexes by party, then status, then update time.
///
/// Version 1 indexed (party, updated_ms, ...): a page of open orders had
/// to step over every delivered one, and a vendor with 100,000 delivered
/// orders made each page of its open ones read all of them. Replacing the
/// two indexes rather than adding two more keeps each write as cheap as
/// before.
fn to_v2(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "DROP INDEX IF EXISTS orders_by_vendor;
         DROP INDEX IF EXISTS orders_by_distributor;
         CREATE INDEX orders_by_vendor_status
             ON orders (vendor_id, status, updated_ms, order_id);
         CREATE INDEX orders_by_distributor_status
             ON orders (distributor_id, status, updated_ms, vendor_id, order_id);",
    )
    .map_err(db("creating the version 2 indexes"))
}

/// Version 3: the chat's history. Nothing older is touched.
fn to_v3(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "CREATE TABLE chat_messages (
             seq     INTEGER PRIMARY KEY AUTOINCREMENT,
             room    TEXT NOT NULL,
             sender  TEXT NOT NULL,
             text    TEXT NOT NULL,
             at_ms   INTEGER NOT NULL
         );
         CREATE INDEX chat_messages_by_room ON chat_messages (room, seq);",
    )
    .map_err(db("creating the version 3 tables"))
}

fn has_column(tx: &Transaction<'_>, table: &str, column: &str) -> Result<bool, StoreError> {
    let mut st = tx
        .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")
        .map_err(db("reading the table layout"))?;
    st.exists(params![table, column])
        .map_err(db("reading the table layout"))
}

/// An order as 0.1.0 stored it (its wire JSON of the day).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V0Order {
    order_id: String,
    vendor_id: String,
    distributor_id: String,
    customer: String,
    address: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    history: Vec<V0Step>,
}

#[derive(Deserialize)]
struct V0Step {
    status: String,
    at: DateTime<Utc>,
}

/// A queued message as 0.1.0 stored it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V0Envelope {
    message_id: String,
    event: String,
    order: V0Order,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn v0_status(name: &str) -> Result<Status, StoreError> {
    match name {
        "pending" | "pickup" => Ok(Status::Pending),
        "in-transit" => Ok(Status::InTransit),
        "delivered" => Ok(Status::Delivered),
        other => Err(corrupt("a 0.1.0 row", format!("unknown status {other:?}"))),
    }
}

impl V0Order {
    fn into_order(self) -> Result<Order, StoreError> {
        let id = |e: crate::domain::InvalidValue| corrupt("a 0.1.0 order", e);
        let history = self
            .history
            .into_iter()
            .map(|step| {
                Ok(HistoryEntry {
                    status: v0_status(&step.status)?,
                    at: step.at,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Order {
            order_id: OrderId::parse(&self.order_id).map_err(id)?,
            vendor_id: VendorId::parse(&self.vendor_id).map_err(id)?,
            distributor_id: DistributorId::parse(&self.distributor_id).map_err(id)?,
            customer: self.customer,
            address: self.address,
            status: v0_status(&self.status)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            history,
        })
    }
}

/// Copies every 0.1.0 order and queued message into the version 1 tables,
/// keeping each message's place in its queue (its `seq`).
fn copy_v0(tx: &Transaction<'_>) -> Result<(usize, usize), StoreError> {
    let mut orders = 0;
    {
        let mut st = tx
            .prepare("SELECT body FROM orders_v0")
            .map_err(db("reading 0.1.0 orders"))?;
        let mut rows = st.query([]).map_err(db("reading 0.1.0 orders"))?;
        while let Some(row) = rows.next().map_err(db("reading 0.1.0 orders"))? {
            let body: String = row.get(0).map_err(db("reading 0.1.0 orders"))?;
            let order: V0Order =
                serde_json::from_str(&body).map_err(|e| corrupt("a 0.1.0 order", e))?;
            rows::save_order(tx, &order.into_order()?)?;
            orders += 1;
        }
    }
    let mut messages = 0;
    let mut st = tx
        .prepare("SELECT seq, owner, body FROM messages_v0 ORDER BY seq")
        .map_err(db("reading 0.1.0 messages"))?;
    let mut rows = st.query([]).map_err(db("reading 0.1.0 messages"))?;
    while let Some(row) = rows.next().map_err(db("reading 0.1.0 messages"))? {
        let seq: i64 = row.get(0).map_err(db("reading 0.1.0 messages"))?;
        let owner: String = row.get(1).map_err(db("reading 0.1.0 messages"))?;
        let body: String = row.get(2).map_err(db("reading 0.1.0 messages"))?;
        let envelope: V0Envelope =
            serde_json::from_str(&body).map_err(|e| corrupt("a 0.1.0 message", e))?;
        let status = v0_status(&envelope.event)?;
        let snapshot = envelope.order.into_order()?;
        // Orders were never deleted in 0.1.0, so the order is there; if a
        // damaged file lacks it, the message's own copy takes its place
        // rather than the message being lost.
        if rows::load_order(tx, &snapshot.vendor_id, &snapshot.order_id)?.is_none() {
            rows::save_order(tx, &snapshot)?;
        }
        tx.prepare_cached(
            "INSERT INTO messages (seq, message_id, owner, vendor_id, order_id, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut st| {
            st.execute(params![
                seq,
                envelope.message_id,
                owner,
                snapshot.vendor_id.as_str(),
                snapshot.order_id.as_str(),
                rows::status_code(status),
            ])
        })
        .map_err(db("copying a 0.1.0 message"))?;
        messages += 1;
    }
    Ok((orders, messages))
}
