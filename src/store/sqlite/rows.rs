//! Rows of the current schema (see [`super::schema`]) to and from domain values.
//!
//! An order is one row with a time per step it reached; a queued message
//! names its order and the step it reports, and reads back as the order as
//! of that step ([`Order::as_of`]), so an order is never stored twice.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use super::db;
use crate::domain::{
    ChatMessage, ChatName, ChatPost, DistributorId, HistoryEntry, Message, MessageId, Order,
    OrderId, OrderPosition, Recipient, RoomName, Status, VendorId,
};
use crate::store::{OrderListing, OrderPage, StoreError};

/// The columns [`order_from_row`] reads, in its order.
pub(super) const ORDER_COLUMNS: &str = "o.vendor_id, o.order_id, o.distributor_id, o.customer, \
     o.address, o.status, o.pending_ms, o.in_transit_ms, o.delivered_ms";

/// How a status is written in the file (the store's own names, whatever
/// the wire calls them).
pub(super) fn status_code(status: Status) -> &'static str {
    match status {
        Status::Pending => "pending",
        Status::InTransit => "in-transit",
        Status::Delivered => "delivered",
    }
}

fn status_from_code(code: &str) -> Result<Status, StoreError> {
    match code {
        "pending" => Ok(Status::Pending),
        "in-transit" => Ok(Status::InTransit),
        "delivered" => Ok(Status::Delivered),
        other => Err(StoreError::Corrupt(format!("unknown status {other:?}"))),
    }
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn time(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("time {ms} is out of range")))
}

/// The time `order` reached `status`, if it did.
fn reached(order: &Order, status: Status) -> Option<i64> {
    order
        .history
        .iter()
        .find(|h| h.status == status)
        .map(|h| ms(h.at))
}

/// Inserts or replaces an order.
pub(super) fn save_order(conn: &Connection, order: &Order) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO orders (vendor_id, order_id, distributor_id, customer, address, status,
                             pending_ms, in_transit_ms, delivered_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (vendor_id, order_id) DO UPDATE SET
             status = excluded.status, in_transit_ms = excluded.in_transit_ms,
             delivered_ms = excluded.delivered_ms, updated_ms = excluded.updated_ms",
    )
    .and_then(|mut st| {
        st.execute(params![
            order.vendor_id.as_str(),
            order.order_id.as_str(),
            order.distributor_id.as_str(),
            order.customer,
            order.address,
            status_code(order.status),
            reached(order, Status::Pending).unwrap_or_else(|| ms(order.created_at)),
            reached(order, Status::InTransit),
            reached(order, Status::Delivered),
            ms(order.updated_at),
        ])
    })
    .map_err(db("saving an order"))?;
    Ok(())
}

/// Reads an order from the [`ORDER_COLUMNS`] of `row`, starting at `at`.
pub(super) fn order_from_row(row: &Row<'_>, at: usize) -> Result<Order, StoreError> {
    let text = |i: usize| -> Result<String, StoreError> {
        row.get::<_, String>(at + i).map_err(db("reading an order"))
    };
    let moment = |i: usize| -> Result<Option<i64>, StoreError> {
        row.get::<_, Option<i64>>(at + i)
            .map_err(db("reading an order"))
    };
    let id = |e: crate::domain::InvalidValue| StoreError::Corrupt(format!("an order: {e}"));
    let pending =
        moment(6)?.ok_or_else(|| StoreError::Corrupt("an order without a pickup time".into()))?;
    let mut history = vec![HistoryEntry {
        status: Status::Pending,
        at: time(pending)?,
    }];
    for (status, column) in [(Status::InTransit, 7), (Status::Delivered, 8)] {
        if let Some(at) = moment(column)? {
            history.push(HistoryEntry {
                status,
                at: time(at)?,
            });
        }
    }
    let status = status_from_code(&text(5)?)?;
    let updated_at = history
        .iter()
        .find(|h| h.status == status)
        .map(|h| h.at)
        .ok_or_else(|| StoreError::Corrupt(format!("an order is {status} with no time for it")))?;
    Ok(Order {
        vendor_id: VendorId::parse(&text(0)?).map_err(id)?,
        order_id: OrderId::parse(&text(1)?).map_err(id)?,
        distributor_id: DistributorId::parse(&text(2)?).map_err(id)?,
        customer: text(3)?,
        address: text(4)?,
        status,
        created_at: history[0].at,
        updated_at,
        history,
    })
}

/// One order of a vendor.
pub(super) fn load_order(
    conn: &Connection,
    vendor: &VendorId,
    order: &OrderId,
) -> Result<Option<Order>, StoreError> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders o WHERE o.vendor_id = ?1 AND o.order_id = ?2"
        ))
        .map_err(db("reading an order"))?;
    let mut rows = st
        .query(params![vendor.as_str(), order.as_str()])
        .map_err(db("reading an order"))?;
    match rows.next().map_err(db("reading an order"))? {
        Some(row) => Ok(Some(order_from_row(row, 0)?)),
        None => Ok(None),
    }
}

/// The statement that reads one page of a party's orders of `statuses`
/// statuses: one range of the listing index per status (`?6`, `?7`, ...),
/// merged newest first as SQLite walks them, so it reads no more rows than
/// the page holds. Parameters: `?1` the party, `?2`..`?4` the position the
/// page starts below (update time, vendorId, orderId), `?5` how many rows
/// to read.
fn listing_sql(party: &Recipient, statuses: usize) -> String {
    let (column, below) = match party {
        // Every order of a vendor has its vendorId: ties go by orderId.
        Recipient::Vendor(_) => ("vendor_id", "(o.updated_ms, o.order_id) < (?2, ?4)"),
        Recipient::Distributor(_) => (
            "distributor_id",
            "(o.updated_ms, o.vendor_id, o.order_id) < (?2, ?3, ?4)",
        ),
    };
    let ranges: Vec<String> = (0..statuses)
        .map(|n| {
            format!(
                "SELECT {ORDER_COLUMNS}, o.updated_ms FROM orders o
                 WHERE o.{column} = ?1 AND o.status = ?{status} AND {below}",
                status = n + 6
            )
        })
        .collect();
    // Column 10 is updated_ms, 1 vendor_id, 2 order_id.
    format!(
        "{} ORDER BY 10 DESC, 1 DESC, 2 DESC LIMIT ?5",
        ranges.join(" UNION ALL ")
    )
}

/// One page of a party's orders, most recently updated first.
pub(super) fn list_orders(
    conn: &Connection,
    listing: &OrderListing,
) -> Result<OrderPage, StoreError> {
    let statuses: Vec<&str> = listing
        .filter
        .statuses()
        .iter()
        .map(|s| status_code(*s))
        .collect();
    let mut st = conn
        .prepare_cached(&listing_sql(&listing.party, statuses.len()))
        .map_err(db("listing orders"))?;
    let party = match &listing.party {
        Recipient::Vendor(id) => id.as_str(),
        Recipient::Distributor(id) => id.as_str(),
    };
    // No position yet: start above every order.
    let (below_ms, below_vendor, below_order) = match &listing.before {
        Some(p) => (p.updated_ms(), p.vendor_id.as_str(), p.order_id.as_str()),
        None => (i64::MAX, "", ""),
    };
    // One more row than asked says whether another page follows.
    let read = i64::try_from(listing.limit.saturating_add(1)).unwrap_or(i64::MAX);
    let mut values: Vec<&dyn ToSql> = vec![&party, &below_ms, &below_vendor, &below_order, &read];
    for status in &statuses {
        values.push(status);
    }
    let mut rows = st.query(values.as_slice()).map_err(db("listing orders"))?;
    let mut orders = Vec::with_capacity(listing.limit.min(512));
    let mut more = false;
    while let Some(row) = rows.next().map_err(db("listing orders"))? {
        if orders.len() == listing.limit {
            more = true;
            break;
        }
        orders.push(order_from_row(row, 0)?);
    }
    let next = if more {
        orders.last().map(OrderPosition::of)
    } else {
        None
    };
    Ok(OrderPage { orders, next })
}

/// Queues `message` for its recipient.
pub(super) fn enqueue(conn: &Connection, message: &Message) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO messages (message_id, owner, vendor_id, order_id, status)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut st| {
        st.execute(params![
            message.id.as_str(),
            message.recipient.key(),
            message.order.vendor_id.as_str(),
            message.order.order_id.as_str(),
            status_code(message.status()),
        ])
    })
    .map_err(db("queueing a message"))?;
    Ok(())
}

/// The oldest `limit` messages queued for `recipient`, oldest first.
pub(super) fn pending_for(
    conn: &Connection,
    recipient: &Recipient,
    limit: usize,
) -> Result<Vec<Message>, StoreError> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT m.message_id, m.status, {ORDER_COLUMNS}
             FROM messages m JOIN orders o USING (vendor_id, order_id)
             WHERE m.owner = ?1 ORDER BY m.seq LIMIT ?2"
        ))
        .map_err(db("reading a queue"))?;
    let mut rows = st
        .query(params![
            recipient.key(),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ])
        .map_err(db("reading a queue"))?;
    let mut messages = Vec::new();
    while let Some(row) = rows.next().map_err(db("reading a queue"))? {
        let id: String = row.get(0).map_err(db("reading a queue"))?;
        let step: String = row.get(1).map_err(db("reading a queue"))?;
        let status = status_from_code(&step)?;
        let order = order_from_row(row, 2)?;
        let order = order.as_of(status).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "message {id} reports {status}, which order {} never reached",
                order.order_id
            ))
        })?;
        messages.push(Message {
            id: MessageId::parse(&id)
                .map_err(|e| StoreError::Corrupt(format!("a message id: {e}")))?,
            recipient: recipient.clone(),
            at: order.updated_at,
            order,
        });
    }
    Ok(messages)
}

/// Removes a message from `recipient`'s queue; true if it was there.
pub(super) fn confirm(
    conn: &Connection,
    recipient: &Recipient,
    message: &MessageId,
) -> Result<bool, StoreError> {
    conn.prepare_cached("DELETE FROM messages WHERE message_id = ?1 AND owner = ?2")
        .and_then(|mut st| st.execute(params![message.as_str(), recipient.key()]))
        .map(|n| n > 0)
        .map_err(db("confirming a message"))
}

/// Every non-empty queue's owner and depth.
pub(super) fn queue_depths(conn: &Connection) -> Result<Vec<(Recipient, u64)>, StoreError> {
    let mut st = conn
        .prepare_cached("SELECT owner, COUNT(*) FROM messages GROUP BY owner ORDER BY owner")
        .map_err(db("counting the queues"))?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(db("counting the queues"))?;
    let mut depths = Vec::new();
    for row in rows {
        let (owner, depth) = row.map_err(db("counting the queues"))?;
        if let Some(owner) = Recipient::from_key(&owner) {
            depths.push((owner, u64::try_from(depth).unwrap_or(0)));
        }
    }
    Ok(depths)
}

/// How a chat message's room is filed: its name, or `''` for the whole
/// namespace (no room is called `''`).
fn chat_room_key(room: Option<&RoomName>) -> &str {
    room.map_or("", RoomName::as_str)
}

/// Keeps a chat message and drops the oldest of its room beyond `keep`.
pub(super) fn record_chat(
    conn: &Connection,
    post: &ChatPost,
    keep: usize,
) -> Result<ChatMessage, StoreError> {
    let room = chat_room_key(post.room.as_ref());
    conn.prepare_cached(
        "INSERT INTO chat_messages (room, sender, text, at_ms) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut st| st.execute(params![room, post.from.as_str(), post.text, ms(post.at)]))
    .map_err(db("storing a chat message"))?;
    let seq = conn.last_insert_rowid();
    // The row `keep` places below the newest is the first one to go.
    conn.prepare_cached(
        "DELETE FROM chat_messages WHERE room = ?1 AND seq <= (
             SELECT seq FROM chat_messages WHERE room = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
    )
    .and_then(|mut st| st.execute(params![room, i64::try_from(keep).unwrap_or(i64::MAX)]))
    .map_err(db("dropping old chat messages"))?;
    Ok(ChatMessage {
        offset: u64::try_from(seq)
            .map_err(|_| StoreError::Corrupt(format!("chat offset {seq} is negative")))?,
        post: post.clone(),
    })
}

/// The newest `limit` chat messages of `room` after `after`, oldest first.
pub(super) fn chat_after(
    conn: &Connection,
    room: Option<&RoomName>,
    after: u64,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    let mut st = conn
        .prepare_cached(
            "SELECT seq, sender, text, at_ms FROM chat_messages
             WHERE room = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT ?3",
        )
        .map_err(db("reading the chat history"))?;
    let mut rows = st
        .query(params![
            chat_room_key(room),
            i64::try_from(after).unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX),
        ])
        .map_err(db("reading the chat history"))?;
    let mut messages = Vec::new();
    while let Some(row) = rows.next().map_err(db("reading the chat history"))? {
        let read = db("reading the chat history");
        let seq: i64 = row.get(0).map_err(&read)?;
        let sender: String = row.get(1).map_err(&read)?;
        messages.push(ChatMessage {
            offset: u64::try_from(seq)
                .map_err(|_| StoreError::Corrupt(format!("chat offset {seq} is negative")))?,
            post: ChatPost {
                from: ChatName::parse(&sender)
                    .map_err(|e| StoreError::Corrupt(format!("a chat sender: {e}")))?,
                text: row.get(2).map_err(&read)?,
                room: room.cloned(),
                at: time(row.get(3).map_err(&read)?)?,
            },
        });
    }
    messages.reverse();
    Ok(messages)
}

/// Whether the database answers at all.
pub(super) fn answers(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("SELECT 1", [], |_| Ok(()))
        .optional()
        .map(|_| ())
        .map_err(db("pinging the database"))
}

/// A write that changes nothing: the schema version written again as it
/// is. It still dirties the file's first page, so it is appended to the
/// WAL and committed like any other write, and fails where they would
/// (a read-only file, a full disk, a lock held elsewhere).
pub(super) fn rewrite_version(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db("checking the write path"))?;
    conn.pragma_update(None, "user_version", version)
        .map_err(db("checking the write path"))
}

/// The key of an order: (vendorId, orderId) as stored.
pub(super) type OrderKey = (String, String);

/// Up to `at_most` delivered orders delivered before `cutoff_ms` that no
/// queued message names. Run on a read connection: it scans, the writer
/// does not wait for it.
pub(super) fn expired_orders(
    conn: &Connection,
    cutoff_ms: i64,
    at_most: usize,
) -> Result<Vec<OrderKey>, StoreError> {
    let mut named = std::collections::HashSet::new();
    {
        let mut st = conn
            .prepare_cached("SELECT DISTINCT vendor_id, order_id FROM messages")
            .map_err(db("finding expired orders"))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db("finding expired orders"))?;
        for row in rows {
            named.insert(row.map_err(db("finding expired orders"))?);
        }
    }
    let mut st = conn
        .prepare_cached(
            "SELECT vendor_id, order_id FROM orders
             WHERE status = 'delivered' AND delivered_ms < ?1",
        )
        .map_err(db("finding expired orders"))?;
    let rows = st
        .query_map(params![cutoff_ms], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(db("finding expired orders"))?;
    let mut expired = Vec::new();
    for row in rows {
        let key = row.map_err(db("finding expired orders"))?;
        if !named.contains(&key) {
            expired.push(key);
            if expired.len() >= at_most {
                break;
            }
        }
    }
    Ok(expired)
}

/// Deletes the given orders if they are still delivered before
/// `cutoff_ms`; returns how many went. Each is found by its primary key,
/// so a batch is quick. No message can name them: a delivered order
/// never queues another message, and the read that chose them saw every
/// message queued until then.
pub(super) fn delete_orders(
    conn: &Connection,
    keys: &[OrderKey],
    cutoff_ms: i64,
) -> Result<u64, StoreError> {
    let mut st = conn
        .prepare_cached(
            "DELETE FROM orders WHERE vendor_id = ?1 AND order_id = ?2
             AND status = 'delivered' AND delivered_ms < ?3",
        )
        .map_err(db("deleting expired orders"))?;
    let mut deleted = 0;
    for (vendor, order) in keys {
        deleted += st
            .execute(params![vendor, order, cutoff_ms])
            .map_err(db("deleting expired orders"))? as u64;
    }
    Ok(deleted)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::DistributorId;

    /// Every range of a listing is a search of a listing index, merged as
    /// it is read: never a scan of the party's orders, never a sort. A page
    /// costs its own size however many orders the party has.
    #[test]
    fn a_listing_reads_ranges_of_the_status_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let parties = [
            Recipient::Vendor(VendorId::parse("acme").unwrap()),
            Recipient::Distributor(DistributorId::parse("north").unwrap()),
        ];
        for party in &parties {
            for statuses in 1..=3 {
                let sql = listing_sql(party, statuses);
                let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                let values = [
                    "p",
                    "1",
                    "v",
                    "o",
                    "2",
                    "pending",
                    "in-transit",
                    "delivered",
                ];
                let bound: Vec<&dyn ToSql> = values[..5 + statuses]
                    .iter()
                    .map(|v| v as &dyn ToSql)
                    .collect();
                let plan: Vec<String> = st
                    .query_map(bound.as_slice(), |row| row.get::<_, String>(3))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let searches = plan
                    .iter()
                    .filter(|step| step.starts_with("SEARCH o USING INDEX orders_by_"))
                    .count();
                assert_eq!(searches, statuses, "{party}: {plan:#?}");
                assert!(
                    plan.iter()
                        .all(|step| !step.starts_with("SCAN") && !step.contains("TEMP B-TREE")),
                    "{party}: {plan:#?}"
                );
            }
        }
    }
}
