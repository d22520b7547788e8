//! Storage written by earlier releases opens under this one with nothing
//! lost: every order, every queued message (same id, same place in its
//! queue, same content on the wire), listed; and it gains the chat's
//! history. The fixtures were made by the 0.1.0 and 0.2.0 binaries (see
//! `tests/hub/fixtures/README.md`): 0.1.0's file goes through schema
//! versions 1 and 2 to 3, 0.2.0's (version 1) through 2 to 3.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parcel_hub::domain::{
    ChatName, ChatPost, DistributorId, Order, OrderId, OrderPosition, Recipient, RoomName, Status,
    StatusFilter, VendorId,
};
use parcel_hub::protocol::MessageEnvelope;
use parcel_hub::store::{OrderListing, RedisStore, SqliteStore, Store};
use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hub/fixtures")
        .join(name)
}

/// A copy of the 0.1.0 database in a fresh folder (the fixture stays as it is).
fn copy_of_the_old_database() -> (tempfile::TempDir, PathBuf) {
    copy_of("sqlite-0.1.0.db")
}

fn copy_of(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    std::fs::copy(fixture(name), &db).unwrap();
    (dir, db)
}

/// The schema version written in the file at `db`.
fn file_version(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// The upgraded store keeps a chat history, in rooms and for everyone.
async fn assert_the_chat_history_works(store: &dyn Store) -> u64 {
    assert!(store.chat_after(None, 0, 100).await.unwrap().is_empty());
    let lobby = RoomName::parse("lobby").unwrap();
    let mut last = 0;
    for room in [None, Some(lobby.clone())] {
        let post = ChatPost {
            from: ChatName::parse("José Ñúñez").unwrap(),
            text: "hello after the upgrade".into(),
            room: room.clone(),
            at: parcel_hub::domain::millis(chrono::Utc::now()),
        };
        let stored = store.record_chat(&post).await.unwrap();
        assert!(stored.offset > last);
        last = stored.offset;
        let read = store.chat_after(room.as_ref(), 0, 100).await.unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0], stored);
    }
    last
}

/// What 0.1.0 had queued: owner -> message bodies (its wire JSON), in queue order.
fn old_queues() -> BTreeMap<String, Vec<Value>> {
    // Read from a copy: even a read-only open of a WAL file leaves `-shm`
    // and `-wal` files beside it, and the fixture must stay as 0.1.0 left it.
    let (_dir, copy) = copy_of_the_old_database();
    let conn =
        rusqlite::Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut st = conn
        .prepare("SELECT owner, body FROM messages ORDER BY seq")
        .unwrap();
    let mut queues: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for row in st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (owner, body) = row.unwrap();
        queues
            .entry(owner)
            .or_default()
            .push(serde_json::from_str(&body).unwrap());
    }
    queues
}

fn recipient(owner: &str) -> Recipient {
    Recipient::from_key(owner).unwrap()
}

/// Every queue of `store` is, message for message, what 0.1.0 had queued.
async fn assert_every_queue_kept(store: &dyn Store, old: &BTreeMap<String, Vec<Value>>) {
    assert_eq!(old.values().map(Vec::len).sum::<usize>(), 7, "the fixture");
    for (owner, bodies) in old {
        let messages = store
            .pending_for(&recipient(owner), usize::MAX)
            .await
            .unwrap();
        let now: Vec<Value> = messages
            .iter()
            .map(|m| serde_json::to_value(MessageEnvelope::from(m)).unwrap())
            .collect();
        assert_eq!(&now, bodies, "the queue of {owner}");
    }
}

async fn assert_every_order_kept(store: &dyn Store) {
    for (vendor, order, distributor, status, steps) in OLD_ORDERS {
        let stored = store
            .order(
                &VendorId::parse(vendor).unwrap(),
                &OrderId::parse(order).unwrap(),
            )
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{vendor} {order} was lost"));
        assert_eq!(stored.status, status, "{vendor} {order}");
        assert_eq!(stored.history.len(), steps, "{vendor} {order}");
        assert_eq!(
            stored.distributor_id,
            DistributorId::parse(distributor).unwrap()
        );
    }
    let jose = store
        .order(
            &VendorId::parse("acme-widgets").unwrap(),
            &OrderId::parse("o-1002").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(jose.customer, "José Ñúñez \"the 2nd\"");
    assert_eq!(jose.address, "1 Rue de l'Église, Montréal");
}

/// The fixture's orders: (vendor, order, distributor, status, steps).
const OLD_ORDERS: [(&str, &str, &str, Status, usize); 5] = [
    ("acme-widgets", "o-1001", "north-hub", Status::Delivered, 3),
    ("acme-widgets", "o-1002", "north-hub", Status::Pending, 1),
    ("acme-widgets", "o-1003", "south-hub", Status::InTransit, 2),
    ("1-800-flowers", "o-1001", "north-hub", Status::InTransit, 2),
    ("1-800-flowers", "f-2", "south-hub", Status::Pending, 1),
];

fn old_order_ids() -> Vec<(&'static str, &'static str)> {
    OLD_ORDERS.iter().map(|(v, o, ..)| (*v, *o)).collect()
}

/// The whole of one listing, 2 orders a page.
async fn whole_listing(store: &dyn Store, party: &Recipient, filter: StatusFilter) -> Vec<Order> {
    let mut orders = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_orders(&OrderListing {
                party: party.clone(),
                filter,
                limit: 2,
                before,
            })
            .await
            .unwrap();
        orders.extend(page.orders);
        match page.next {
            Some(next) => before = Some(next),
            None => return orders,
        }
    }
}

/// Every party of a fixture lists its orders (`orders`: vendor and order
/// ids), newest first, each under its status only.
async fn assert_every_listing_kept(store: &dyn Store, orders: &[(&str, &str)]) {
    let mut stored = Vec::new();
    for (vendor, order) in orders {
        let vendor = VendorId::parse(vendor).unwrap();
        let order = OrderId::parse(order).unwrap();
        stored.push(store.order(&vendor, &order).await.unwrap().unwrap());
    }
    let parties = [
        Recipient::Vendor(VendorId::parse("acme-widgets").unwrap()),
        Recipient::Vendor(VendorId::parse("1-800-flowers").unwrap()),
        Recipient::Distributor(DistributorId::parse("north-hub").unwrap()),
        Recipient::Distributor(DistributorId::parse("south-hub").unwrap()),
    ];
    for party in &parties {
        for filter in [
            StatusFilter::All,
            StatusFilter::Open,
            StatusFilter::Only(Status::Delivered),
        ] {
            let mut want: Vec<Order> = stored
                .iter()
                .filter(|o| match party {
                    Recipient::Vendor(v) => &o.vendor_id == v,
                    Recipient::Distributor(d) => &o.distributor_id == d,
                })
                .filter(|o| filter.admits(o.status))
                .cloned()
                .collect();
            want.sort_by_key(|o| std::cmp::Reverse(OrderPosition::of(o)));
            let got = whole_listing(store, party, filter).await;
            assert_eq!(got, want, "{party}, status {filter}");
        }
    }
}

#[tokio::test]
async fn a_database_written_by_0_1_0_opens_with_nothing_lost() {
    let (_dir, db) = copy_of_the_old_database();
    let store = SqliteStore::open(&db, Default::default()).unwrap();
    assert_eq!(store.opened_version(), 0, "the fixture predates versions");
    assert_eq!(SqliteStore::SCHEMA_VERSION, 3);
    assert_eq!(file_version(&db), 3, "through versions 1 and 2 to 3");
    assert_every_order_kept(&store).await;
    assert_every_queue_kept(&store, &old_queues()).await;
    assert_every_listing_kept(&store, &old_order_ids()).await;
    let last = assert_the_chat_history_works(&store).await;
    drop(store);

    // Opened again, it is already current and still whole.
    let store = SqliteStore::open(&db, Default::default()).unwrap();
    assert_eq!(store.opened_version(), SqliteStore::SCHEMA_VERSION);
    assert_every_queue_kept(&store, &old_queues()).await;
    let kept = store.chat_after(None, 0, 100).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].offset < last, "the room's message came last");
}

/// A file of schema version 1 (0.2.0) gains the status indexes (version
/// 2) and the chat's history (version 3), and keeps every order and every
/// queued message, in its place.
#[tokio::test]
async fn a_database_written_by_0_2_0_is_listed_and_keeps_a_chat_history_with_nothing_lost() {
    let (_dir, db) = copy_of("sqlite-0.2.0.db");
    assert_eq!(file_version(&db), 1, "the fixture is schema version 1");
    let queued: Vec<(String, String)> = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut st = conn
            .prepare("SELECT owner, message_id FROM messages ORDER BY seq")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(queued.len(), 7, "the fixture");
    let store = SqliteStore::open(&db, Default::default()).unwrap();
    assert_eq!(store.opened_version(), 1);
    assert_eq!(file_version(&db), 3, "through version 2 to 3");
    for owner in [
        "distributor:north-hub",
        "distributor:south-hub",
        "vendor:acme-widgets",
        "vendor:1-800-flowers",
    ] {
        let ids: Vec<String> = store
            .pending_for(&recipient(owner), usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id.to_string())
            .collect();
        let want: Vec<String> = queued
            .iter()
            .filter(|(o, _)| o == owner)
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(ids, want, "the queue of {owner}");
    }
    let orders = [
        ("acme-widgets", "a-1"),
        ("acme-widgets", "a-2"),
        ("acme-widgets", "a-3"),
        ("1-800-flowers", "a-1"),
        ("1-800-flowers", "f-2"),
    ];
    assert_every_listing_kept(&store, &orders).await;
    let acme = VendorId::parse("acme-widgets").unwrap();
    let jose = store
        .order(&acme, &OrderId::parse("a-2").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(jose.customer, "José Ñúñez");
    // 0.2.0 kept no chat: the history starts empty, and works.
    let last = assert_the_chat_history_works(&store).await;
    drop(store);
    let indexes: Vec<String> = rusqlite::Connection::open(&db)
        .unwrap()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        indexes,
        ["orders_by_distributor_status", "orders_by_vendor_status"],
        "version 1's listing indexes are replaced, not kept beside"
    );
    let store = SqliteStore::open(&db, Default::default()).unwrap();
    assert_eq!(store.opened_version(), SqliteStore::SCHEMA_VERSION);
    let kept = store.chat_after(None, 0, 100).await.unwrap();
    assert_eq!(kept.len(), 1, "the namespace-wide message, kept");
    assert!(kept[0].offset < last, "the room's message came last");
}

#[tokio::test]
async fn a_hub_on_a_0_2_0_database_keeps_chat_history_across_a_restart() {
    let (_dir, db) = copy_of("sqlite-0.2.0.db");
    let app = spawn_app_with(|c| c.db = db.clone()).await;
    let alice = chatter(&app, "alice").await;
    let said = alice.ack("chat message", json!("first words")).await;
    assert_ok(&said);
    drop(alice);
    app.stop().await;
    let app = spawn_app_with(|c| c.db = db.clone()).await;
    let bob = try_connect(
        &app.url(),
        "/chat",
        Some(json!({ "name": "bob", "offset": 0 })),
        Transport::WebSocket,
    )
    .await
    .unwrap();
    let heard = bob.expect("chat message").await;
    assert_eq!(heard["text"], json!("first words"));
    assert_eq!(heard["offset"], said["offset"]);
}

#[tokio::test]
async fn a_hub_on_an_old_database_serves_its_queues_and_takes_new_pickups() {
    let (_dir, db) = copy_of_the_old_database();
    let app = spawn_app_with(|c| c.db = db.clone()).await;
    let north = distributor(&app, "north-hub").await;
    let all = north.ack("getAll", json!({})).await;
    assert_ok(&all);
    assert_eq!(
        &all["messages"],
        &json!(old_queues()["distributor:north-hub"])
    );

    let acme = vendor(&app, "acme-widgets").await;
    let retry = acme
        .ack(
            "pickup",
            json!({
                "orderId": "o-1002", "distributorId": "north-hub",
                "customer": "José Ñúñez \"the 2nd\"", "address": "1 Rue de l'Église, Montréal",
            }),
        )
        .await;
    assert_eq!(retry["duplicate"], json!(true), "{retry}");
    let fresh = acme.ack("pickup", pickup("o-2001", "north-hub")).await;
    assert_eq!(fresh["duplicate"], json!(false), "{fresh}");
    north.expect("pickup").await;
    let all = north.ack("getAll", json!({})).await;
    let ids: Vec<&str> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["order"]["orderId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["o-1002", "o-1001", "o-2001"],
        "new messages queue after the old"
    );
    // Moving an old order queues news as before.
    let moved = north
        .ack(
            "in-transit",
            json!({ "vendorId": "acme-widgets", "orderId": "o-1002" }),
        )
        .await;
    assert_ok(&moved);
    assert_eq!(moved["order"]["history"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_database_from_a_newer_release_is_refused_untouched() {
    let (_dir, db) = copy_of_the_old_database();
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = SqliteStore::open(&db, Default::default()).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
    let tables: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('orders', 'messages')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 2);
}

/// Writes the 0.1.0 key dump under `prefix`.
fn load_redis_fixture(url: &str, prefix: &str) {
    let dump: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("redis-0.1.0.json")).unwrap())
            .unwrap();
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    for (key, value) in dump {
        let key = format!("{prefix}:{key}");
        if let Some(text) = value["string"].as_str() {
            let () = conn.set(&key, text).unwrap();
        } else if let Some(members) = value["set"].as_array() {
            for m in members {
                let () = conn.sadd(&key, m.as_str().unwrap()).unwrap();
            }
        } else if let Some(entries) = value["zset"].as_array() {
            for e in entries {
                let () = conn
                    .zadd(&key, e[0].as_str().unwrap(), e[1].as_i64().unwrap())
                    .unwrap();
            }
        } else if let Some(fields) = value["hash"].as_object() {
            for (field, v) in fields {
                let () = conn.hset(&key, field, v.as_str().unwrap()).unwrap();
            }
        } else {
            panic!("unknown entry {key}: {value}");
        }
    }
}

/// What 0.1.0 had queued in Redis: owner -> message bodies, oldest first.
fn old_redis_queues() -> BTreeMap<String, Vec<Value>> {
    let dump: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("redis-0.1.0.json")).unwrap())
            .unwrap();
    let mut queues = BTreeMap::new();
    for (key, value) in &dump {
        let Some(owner) = key.strip_prefix("queue:") else {
            continue;
        };
        let bodies = &dump[&format!("messages:{owner}")]["hash"];
        let mut ids: Vec<(i64, &str)> = value["zset"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e[1].as_i64().unwrap(), e[0].as_str().unwrap()))
            .collect();
        ids.sort();
        queues.insert(
            owner.to_owned(),
            ids.iter()
                .map(|(_, id)| serde_json::from_str(bodies[*id].as_str().unwrap()).unwrap())
                .collect(),
        );
    }
    queues
}

#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the Redis cases"
)]
async fn a_redis_written_by_0_1_0_is_read_with_nothing_lost() {
    let keys = RedisPrefix::new(&test_redis());
    load_redis_fixture(&keys.url, &keys.prefix);
    let store = RedisStore::connect(&keys.url, &keys.prefix).await.unwrap();
    assert_eq!(
        store.layout_version().await.unwrap(),
        Some(RedisStore::LAYOUT_VERSION)
    );
    assert_every_order_kept(&store).await;
    assert_every_queue_kept(&store, &old_redis_queues()).await;
    assert_every_listing_kept(&store, &old_order_ids()).await;
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(depths.iter().map(|d| d.depth).sum::<u64>(), 7);
    // The chat's keys are additive: they raise no layout version.
    assert_the_chat_history_works(&store).await;
    assert_eq!(
        store.layout_version().await.unwrap(),
        Some(RedisStore::LAYOUT_VERSION)
    );
}

/// 0.2.0 wrote 0.1.0's values with `P:version` 1: the same upgrade.
#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the Redis cases"
)]
async fn a_redis_of_layout_1_gains_its_listings_on_start_up() {
    let keys = RedisPrefix::new(&test_redis());
    load_redis_fixture(&keys.url, &keys.prefix);
    let mut conn = redis::Client::open(keys.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let () = conn.set(format!("{}:version", keys.prefix), 1).unwrap();
    let store = RedisStore::connect(&keys.url, &keys.prefix).await.unwrap();
    assert_eq!(
        store.layout_version().await.unwrap(),
        Some(RedisStore::LAYOUT_VERSION)
    );
    assert_every_listing_kept(&store, &old_order_ids()).await;
    assert_every_queue_kept(&store, &old_redis_queues()).await;
}

/// Several hubs start at once on a Redis of layout 1 holding many orders,
/// while a hub already on layout 2 keeps moving them: every order ends up
/// listed once, under the status and time it has now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the Redis cases"
)]
async fn hubs_starting_at_once_on_an_old_redis_list_every_order_exactly_once() {
    let keys = RedisPrefix::new(&test_redis());
    load_redis_fixture(&keys.url, &keys.prefix);
    let serving = std::sync::Arc::new(RedisStore::connect(&keys.url, &keys.prefix).await.unwrap());
    let acme = VendorId::parse("acme-widgets").unwrap();
    let north = DistributorId::parse("north-hub").unwrap();
    let many = 1_500;
    for n in 0..many {
        let pickup = parcel_hub::domain::Pickup {
            order_id: OrderId::parse(&format!("m-{n}")).unwrap(),
            distributor_id: north.clone(),
            customer: "Jamie".into(),
            address: "Seattle".into(),
        };
        serving
            .record_pickup(&acme, &pickup, chrono::Utc::now())
            .await
            .unwrap();
    }
    // Back to layout 1: no listing sets, version 1.
    let mut conn = redis::Client::open(keys.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let sets: Vec<String> = conn
        .scan_match::<_, String>(format!("{}:orders:*", keys.prefix))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(sets.len() >= 4, "the listing sets of layout 2: {sets:?}");
    let () = redis::cmd("DEL").arg(&sets).query(&mut conn).unwrap();
    let () = conn.set(format!("{}:version", keys.prefix), 1).unwrap();

    let mover = {
        let serving = serving.clone();
        let (acme, north) = (acme.clone(), north.clone());
        tokio::spawn(async move {
            for n in (0..many).step_by(5) {
                let order = OrderId::parse(&format!("m-{n}")).unwrap();
                serving
                    .record_transition(&north, &acme, &order, Status::InTransit, chrono::Utc::now())
                    .await
                    .unwrap();
            }
        })
    };
    let starting: Vec<_> = (0..3)
        .map(|_| {
            let (url, prefix) = (keys.url.clone(), keys.prefix.clone());
            tokio::spawn(async move { RedisStore::connect(&url, &prefix).await })
        })
        .collect();
    for hub in starting {
        hub.await.unwrap().unwrap();
    }
    mover.await.unwrap();
    let store = RedisStore::connect(&keys.url, &keys.prefix).await.unwrap();
    assert_eq!(
        store.layout_version().await.unwrap(),
        Some(RedisStore::LAYOUT_VERSION)
    );
    let acme_party = Recipient::Vendor(acme.clone());
    let listed = whole_listing(&store, &acme_party, StatusFilter::All).await;
    let mut want = Vec::new();
    for n in 0..many {
        let order = OrderId::parse(&format!("m-{n}")).unwrap();
        want.push(store.order(&acme, &order).await.unwrap().unwrap());
    }
    for (_, order, ..) in OLD_ORDERS.iter().filter(|o| o.0 == "acme-widgets") {
        want.push(
            store
                .order(&acme, &OrderId::parse(order).unwrap())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    want.sort_by_key(|o| std::cmp::Reverse(OrderPosition::of(o)));
    assert_eq!(listed.len(), want.len(), "each order once");
    assert!(listed == want, "every order as it stands, newest first");
    let moved = whole_listing(&store, &acme_party, StatusFilter::Only(Status::InTransit)).await;
    assert_eq!(
        moved.len(),
        many / 5 + 1,
        "the moved ones and the old o-1003"
    );
}

#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the Redis cases"
)]
async fn a_redis_from_a_newer_release_is_refused() {
    let keys = RedisPrefix::new(&test_redis());
    let mut conn = redis::Client::open(keys.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let () = conn.set(format!("{}:version", keys.prefix), 99).unwrap();
    let err = RedisStore::connect(&keys.url, &keys.prefix)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("layout version 99"), "{err}");
}
