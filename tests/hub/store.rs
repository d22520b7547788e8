//! The store contract, run against every backend.
//!
//! Every case runs twice, as `store::sqlite::<case>` and `store::redis::<case>`.
//! SQLite always runs. The Redis cases run when `PARCEL_HUB_TEST_REDIS`
//! named a Redis when the tests were built (each case on its own key
//! prefix; set but unreachable, they fail); otherwise they show as ignored.

use std::any::Any;
use std::sync::Arc;

use std::collections::BTreeMap;

use chrono::Utc;
use parcel_hub::domain::{
    ChatName, ChatPost, DistributorId, MessageId, Order, OrderId, OrderPosition, Pickup, Recipient,
    RoomName, Status, StatusFilter, VendorId,
};
use parcel_hub::store::{
    CHAT_KEPT, OrderListing, Recorded, RedisStore, SharedStore, SqliteStore, Store, StoreError,
};

use crate::helpers::{RedisPrefix, test_redis};

fn vendor(id: &str) -> VendorId {
    VendorId::parse(id).unwrap()
}
fn distributor(id: &str) -> DistributorId {
    DistributorId::parse(id).unwrap()
}
fn request(order: &str, to: &str) -> Pickup {
    Pickup {
        order_id: OrderId::parse(order).unwrap(),
        distributor_id: distributor(to),
        customer: "Jamie".into(),
        address: "Seattle".into(),
    }
}

/// acme's pickup `o-<n>` for north, recorded now.
async fn acme_pickup_for_north<S: Store + ?Sized>(
    store: &S,
    n: usize,
) -> Result<Recorded, StoreError> {
    store
        .record_pickup(
            &vendor("acme"),
            &request(&format!("o-{n}"), "north"),
            Utc::now(),
        )
        .await
}

/// A fresh SQLite store, and what keeps its file.
fn sqlite() -> (SharedStore, Box<dyn Any>) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("store.db"), Default::default()).unwrap();
    (Arc::new(sqlite), Box::new(dir))
}

/// A Redis store on a fresh key prefix, and what removes its keys.
async fn redis() -> (SharedStore, Box<dyn Any>) {
    let url = test_redis();
    let keys = RedisPrefix::new(&url);
    let redis = RedisStore::connect(&keys.url, &keys.prefix)
        .await
        .unwrap_or_else(|e| panic!("PARCEL_HUB_TEST_REDIS={url}: {e}"));
    (Arc::new(redis), Box::new(keys))
}

/// Runs each case on SQLite and, where a test Redis is configured, on Redis.
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _keep) = super::sqlite();
                    super::$case("sqlite", store).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(redis_tests), ignore = "set PARCEL_HUB_TEST_REDIS to run the Redis cases")]
                async fn $case() {
                    let (store, _keep) = super::redis().await;
                    super::$case("redis", store).await;
                }
            )*
        }
    };
}

on_every_backend!(
    a_pickup_is_stored_and_queued_once,
    a_conflicting_pickup_changes_nothing,
    the_same_order_id_is_separate_per_vendor,
    transitions_follow_the_lifecycle_and_queue_for_the_vendor,
    confirm_removes_only_from_the_owners_queue,
    queue_depths_count_what_waits,
    concurrent_pickups_of_one_order_record_it_exactly_once,
    many_concurrent_pickups_are_all_kept,
    concurrent_transitions_of_one_order_move_it_exactly_once,
    chat_messages_get_growing_offsets_and_are_read_back_after_one,
    chat_keeps_the_newest_thousand_per_room_and_for_everyone,
    listings_page_through_a_partys_orders_newest_first,
    a_listing_ends_with_no_next_and_an_empty_one_is_empty,
    a_moved_order_leaves_its_old_place_in_the_listings,
);

fn chat_post(text: &str, room: Option<&str>) -> ChatPost {
    ChatPost {
        from: ChatName::parse("José Ñúñez").unwrap(),
        text: text.into(),
        room: room.map(|r| RoomName::parse(r).unwrap()),
        at: parcel_hub::domain::millis(Utc::now()),
    }
}

async fn chat_messages_get_growing_offsets_and_are_read_back_after_one(
    name: &str,
    store: SharedStore,
) {
    let lobby = RoomName::parse("lobby").unwrap();
    let mut offsets = Vec::new();
    for (text, room) in [("a", None), ("b", Some("lobby")), ("c", None), ("d", None)] {
        let post = chat_post(text, room);
        let stored = store.record_chat(&post).await.unwrap();
        assert_eq!(stored.post, post, "{name}");
        offsets.push(stored.offset);
    }
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "{name}: {offsets:?}"
    );
    let everyone = store.chat_after(None, 0, 100).await.unwrap();
    let texts: Vec<&str> = everyone.iter().map(|m| m.post.text.as_str()).collect();
    assert_eq!(texts, ["a", "c", "d"], "{name}");
    assert_eq!(
        everyone[0].post,
        chat_post("a", None).with_at(everyone[0].post.at)
    );
    let after_a = store.chat_after(None, offsets[0], 100).await.unwrap();
    assert_eq!(after_a.len(), 2, "{name}");
    assert_eq!(after_a[0].offset, offsets[2], "{name}");
    let newest = store.chat_after(None, 0, 1).await.unwrap();
    assert_eq!(
        newest[0].post.text, "d",
        "{name}: the newest, not the oldest"
    );
    let room = store.chat_after(Some(&lobby), 0, 100).await.unwrap();
    assert_eq!(room.len(), 1, "{name}");
    assert_eq!(room[0].post.room, Some(lobby.clone()), "{name}");
    assert!(
        store
            .chat_after(Some(&lobby), offsets[3], 100)
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
}

async fn chat_keeps_the_newest_thousand_per_room_and_for_everyone(name: &str, store: SharedStore) {
    let kitchen = RoomName::parse("kitchen").unwrap();
    let extra = 7;
    for n in 0..CHAT_KEPT + extra {
        for room in [None, Some("kitchen")] {
            store
                .record_chat(&chat_post(&n.to_string(), room))
                .await
                .unwrap();
        }
    }
    for room in [None, Some(&kitchen)] {
        let kept = store.chat_after(room, 0, 5_000).await.unwrap();
        assert_eq!(kept.len(), CHAT_KEPT, "{name}: {room:?}");
        assert_eq!(kept[0].post.text, extra.to_string(), "{name}: oldest kept");
        assert_eq!(
            kept[CHAT_KEPT - 1].post.text,
            (CHAT_KEPT + extra - 1).to_string(),
            "{name}"
        );
    }
}

/// `post` as sent at `at` (times are compared to the millisecond).
trait WithAt {
    fn with_at(self, at: chrono::DateTime<Utc>) -> Self;
}

impl WithAt for ChatPost {
    fn with_at(mut self, at: chrono::DateTime<Utc>) -> Self {
        self.at = at;
        self
    }
}

/// Every page of `party`'s listing of `filter`, `limit` at a time.
async fn every_page(
    store: &dyn Store,
    party: &Recipient,
    filter: StatusFilter,
    limit: usize,
) -> Vec<Vec<Order>> {
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_orders(&OrderListing {
                party: party.clone(),
                filter,
                limit,
                before: before.take(),
            })
            .await
            .unwrap();
        assert!(page.orders.len() <= limit, "a page holds at most its limit");
        pages.push(page.orders);
        match page.next {
            Some(next) => before = Some(next),
            None => return pages,
        }
        assert!(pages.len() <= 10_000, "the listing never ends");
    }
}

/// What a listing must show: the orders of `party` that `filter` admits,
/// the most recently updated first (ties by vendorId, then orderId).
fn expected(
    orders: &BTreeMap<(VendorId, OrderId), Order>,
    party: &Recipient,
    filter: StatusFilter,
) -> Vec<Order> {
    let mut list: Vec<Order> = orders
        .values()
        .filter(|o| match party {
            Recipient::Vendor(v) => &o.vendor_id == v,
            Recipient::Distributor(d) => &o.distributor_id == d,
        })
        .filter(|o| filter.admits(o.status))
        .cloned()
        .collect();
    list.sort_by_key(|o| std::cmp::Reverse(OrderPosition::of(o)));
    list
}

/// A few hundred orders of two vendors for two distributors, written by
/// concurrent callers (so many share a millisecond), some moved on: every
/// party's listing of every filter, read in pages of several sizes, is
/// each of its orders exactly once, newest first.
async fn listings_page_through_a_partys_orders_newest_first(name: &str, store: SharedStore) {
    let plan: Vec<(&str, usize, &str)> = (0..360)
        .map(|n| {
            let vendor = if n % 4 == 3 { "flowers" } else { "acme" };
            let to = if n % 3 == 2 { "south" } else { "north" };
            (vendor, n, to)
        })
        .collect();
    let tasks: Vec<_> = plan
        .iter()
        .map(|(vendor, n, to)| {
            let (store, vendor, pickup) = (
                store.clone(),
                self::vendor(vendor),
                request(&format!("o-{n}"), to),
            );
            tokio::spawn(async move { store.record_pickup(&vendor, &pickup, Utc::now()).await })
        })
        .collect();
    let mut orders = BTreeMap::new();
    for task in tasks {
        let order = task.await.unwrap().unwrap().order;
        orders.insert((order.vendor_id.clone(), order.order_id.clone()), order);
    }
    // Every third order goes in transit, every ninth on to delivered.
    let moves: Vec<_> = orders
        .values()
        .enumerate()
        .filter(|(n, _)| n % 3 == 0)
        .map(|(n, o)| (n, o.clone()))
        .collect();
    let tasks: Vec<_> = moves
        .into_iter()
        .map(|(n, o)| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut last = store
                    .record_transition(
                        &o.distributor_id,
                        &o.vendor_id,
                        &o.order_id,
                        Status::InTransit,
                        Utc::now(),
                    )
                    .await?;
                if n % 9 == 0 {
                    last = store
                        .record_transition(
                            &o.distributor_id,
                            &o.vendor_id,
                            &o.order_id,
                            Status::Delivered,
                            Utc::now(),
                        )
                        .await?;
                }
                Ok::<_, StoreError>(last.order)
            })
        })
        .collect();
    for task in tasks {
        let order = task.await.unwrap().unwrap();
        orders.insert((order.vendor_id.clone(), order.order_id.clone()), order);
    }
    let parties = [
        Recipient::Vendor(vendor("acme")),
        Recipient::Vendor(vendor("flowers")),
        Recipient::Distributor(distributor("north")),
        Recipient::Distributor(distributor("south")),
    ];
    let filters = [
        StatusFilter::Open,
        StatusFilter::Only(Status::Pending),
        StatusFilter::Only(Status::InTransit),
        StatusFilter::Only(Status::Delivered),
        StatusFilter::All,
    ];
    for party in &parties {
        for filter in filters {
            let want = expected(&orders, party, filter);
            assert!(
                !want.is_empty(),
                "{name}: the plan gives {party} some {filter} orders"
            );
            for limit in [1, 7, 100, 500] {
                let pages = every_page(&*store, party, filter, limit).await;
                let got: Vec<Order> = pages.concat();
                assert_eq!(got.len(), want.len(), "{name}: {party} {filter} by {limit}");
                assert!(
                    got == want,
                    "{name}: {party} {filter} by {limit}: wrong orders or order"
                );
                assert!(
                    pages.iter().rev().skip(1).all(|p| p.len() == limit),
                    "{name}: only the last page may be short"
                );
            }
        }
    }
}

async fn a_listing_ends_with_no_next_and_an_empty_one_is_empty(name: &str, store: SharedStore) {
    let acme = Recipient::Vendor(vendor("acme"));
    let listing = |limit, before| OrderListing {
        party: acme.clone(),
        filter: StatusFilter::All,
        limit,
        before,
    };
    let empty = store.list_orders(&listing(10, None)).await.unwrap();
    assert!(empty.orders.is_empty() && empty.next.is_none(), "{name}");
    for n in 0..10 {
        acme_pickup_for_north(&*store, n).await.unwrap();
    }
    let first = store.list_orders(&listing(5, None)).await.unwrap();
    assert_eq!(first.orders.len(), 5, "{name}");
    let next = first.next.clone().expect("a second page");
    assert_eq!(next, OrderPosition::of(&first.orders[4]), "{name}");
    let second = store.list_orders(&listing(5, Some(next))).await.unwrap();
    assert_eq!(second.orders.len(), 5, "{name}");
    assert!(
        second.next.is_none(),
        "{name}: exactly ten, so no third page"
    );
    let whole = store.list_orders(&listing(10, None)).await.unwrap();
    assert!(whole.next.is_none(), "{name}");
    let others = Recipient::Distributor(distributor("south"));
    let page = store
        .list_orders(&OrderListing {
            party: others,
            ..listing(10, None)
        })
        .await
        .unwrap();
    assert!(page.orders.is_empty(), "{name}: south has none of them");
}

async fn a_moved_order_leaves_its_old_place_in_the_listings(name: &str, store: SharedStore) {
    let acme = vendor("acme");
    for n in 0..3 {
        acme_pickup_for_north(&*store, n).await.unwrap();
    }
    let oldest = OrderId::parse("o-0").unwrap();
    // A second later, so it is the most recently updated whatever the clock did.
    let later = Utc::now() + chrono::TimeDelta::seconds(1);
    let moved = store
        .record_transition(
            &distributor("north"),
            &acme,
            &oldest,
            Status::InTransit,
            later,
        )
        .await
        .unwrap()
        .order;
    for party in [
        Recipient::Vendor(acme.clone()),
        Recipient::Distributor(distributor("north")),
    ] {
        let ids = |filter| {
            let store = store.clone();
            let party = party.clone();
            async move {
                every_page(&*store, &party, filter, 100)
                    .await
                    .concat()
                    .into_iter()
                    .map(|o| o.order_id.to_string())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            ids(StatusFilter::Open).await,
            ["o-0", "o-2", "o-1"],
            "{name}: {party}"
        );
        assert_eq!(
            ids(StatusFilter::Only(Status::Pending)).await,
            ["o-2", "o-1"],
            "{name}"
        );
        assert_eq!(
            ids(StatusFilter::Only(Status::InTransit)).await,
            ["o-0"],
            "{name}"
        );
        assert!(
            ids(StatusFilter::Only(Status::Delivered)).await.is_empty(),
            "{name}"
        );
    }
    let listed = store
        .list_orders(&OrderListing {
            party: Recipient::Vendor(acme),
            filter: StatusFilter::Only(Status::InTransit),
            limit: 1,
            before: None,
        })
        .await
        .unwrap();
    assert_eq!(listed.orders, [moved], "{name}: the order as it stands now");
}

async fn a_pickup_is_stored_and_queued_once(name: &str, store: SharedStore) {
    let acme = vendor("acme");
    let north = Recipient::Distributor(distributor("north"));
    let first = store
        .record_pickup(&acme, &request("o-1", "north"), Utc::now())
        .await
        .unwrap();
    let queued = first.queued.clone().expect("queued");
    assert_eq!(queued.recipient, north, "{name}");
    let again = store
        .record_pickup(&acme, &request("o-1", "north"), Utc::now())
        .await
        .unwrap();
    assert!(again.duplicate(), "{name}");
    assert_eq!(again.order, first.order, "{name}");
    let pending = store.pending_for(&north, usize::MAX).await.unwrap();
    assert_eq!(pending.len(), 1, "{name}");
    assert_eq!(pending[0].id, queued.id, "{name}");
    let stored = store
        .order(&acme, &OrderId::parse("o-1").unwrap())
        .await
        .unwrap();
    assert_eq!(stored, Some(first.order), "{name}");
}

async fn a_conflicting_pickup_changes_nothing(name: &str, store: SharedStore) {
    let acme = vendor("acme");
    store
        .record_pickup(&acme, &request("o-1", "north"), Utc::now())
        .await
        .unwrap();
    let err = store
        .record_pickup(&acme, &request("o-1", "south"), Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ConflictingPickup(_)),
        "{name}: {err}"
    );
    let south = Recipient::Distributor(distributor("south"));
    assert!(
        store
            .pending_for(&south, usize::MAX)
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
}

async fn the_same_order_id_is_separate_per_vendor(name: &str, store: SharedStore) {
    store
        .record_pickup(&vendor("a"), &request("o-1", "north"), Utc::now())
        .await
        .unwrap();
    let other = store
        .record_pickup(&vendor("b"), &request("o-1", "north"), Utc::now())
        .await
        .unwrap();
    assert!(!other.duplicate(), "{name}");
}

async fn transitions_follow_the_lifecycle_and_queue_for_the_vendor(name: &str, store: SharedStore) {
    let acme = vendor("acme");
    let north = distributor("north");
    let order = OrderId::parse("o-1").unwrap();
    let missing = store
        .record_transition(&north, &acme, &order, Status::InTransit, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::UnknownOrder(_)), "{name}");
    store
        .record_pickup(&acme, &request("o-1", "north"), Utc::now())
        .await
        .unwrap();
    let early = store
        .record_transition(&north, &acme, &order, Status::Delivered, Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(early, StoreError::InvalidTransition { .. }),
        "{name}"
    );
    let stranger = store
        .record_transition(
            &distributor("south"),
            &acme,
            &order,
            Status::InTransit,
            Utc::now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(stranger, StoreError::Forbidden(_)), "{name}");
    let moved = store
        .record_transition(&north, &acme, &order, Status::InTransit, Utc::now())
        .await
        .unwrap();
    assert_eq!(moved.order.status, Status::InTransit, "{name}");
    let repeat = store
        .record_transition(&north, &acme, &order, Status::InTransit, Utc::now())
        .await
        .unwrap();
    assert!(repeat.duplicate(), "{name}");
    store
        .record_transition(&north, &acme, &order, Status::Delivered, Utc::now())
        .await
        .unwrap();
    let news: Vec<_> = store
        .pending_for(&Recipient::Vendor(acme.clone()), usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.status())
        .collect();
    assert_eq!(news, [Status::InTransit, Status::Delivered], "{name}");
}

async fn confirm_removes_only_from_the_owners_queue(name: &str, store: SharedStore) {
    let north = Recipient::Distributor(distributor("north"));
    let south = Recipient::Distributor(distributor("south"));
    let recorded = store
        .record_pickup(&vendor("acme"), &request("o-1", "north"), Utc::now())
        .await
        .unwrap();
    let id = recorded.queued.unwrap().id;
    assert!(!store.confirm(&south, &id).await.unwrap(), "{name}");
    assert!(store.confirm(&north, &id).await.unwrap(), "{name}");
    assert!(!store.confirm(&north, &id).await.unwrap(), "{name}");
    assert!(
        !store.confirm(&north, &MessageId::generate()).await.unwrap(),
        "{name}"
    );
    assert!(
        store
            .pending_for(&north, usize::MAX)
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
}

async fn queue_depths_count_what_waits(name: &str, store: SharedStore) {
    for n in 0..3 {
        acme_pickup_for_north(&*store, n).await.unwrap();
    }
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(depths.len(), 1, "{name}");
    assert_eq!(depths[0].depth, 3, "{name}");
    store.ping().await.unwrap();
}

async fn concurrent_pickups_of_one_order_record_it_exactly_once(name: &str, store: SharedStore) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .record_pickup(&vendor("acme"), &request("o-race", "north"), Utc::now())
                .await
        }));
    }
    let mut fresh = 0;
    for task in tasks {
        if !task.await.unwrap().unwrap().duplicate() {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "{name}");
    let north = Recipient::Distributor(distributor("north"));
    assert_eq!(
        store.pending_for(&north, usize::MAX).await.unwrap().len(),
        1,
        "{name}"
    );
}

/// Many writers at once on two worker threads: whichever way a job is
/// committed (by its caller while the store is idle, or by the writer
/// thread in a batch), every pickup is stored and queued exactly once.
async fn many_concurrent_pickups_are_all_kept(name: &str, store: SharedStore) {
    let tasks: Vec<_> = (0..300)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { acme_pickup_for_north(&*store, n).await })
        })
        .collect();
    for task in tasks {
        let recorded = task.await.unwrap().unwrap();
        assert!(!recorded.duplicate(), "{name}");
        assert!(recorded.queued.is_some(), "{name}");
    }
    let north = Recipient::Distributor(distributor("north"));
    assert_eq!(
        store.pending_for(&north, usize::MAX).await.unwrap().len(),
        300,
        "{name}"
    );
}

/// At a walking pace (a job every few milliseconds) each caller commits its
/// own job in place; a refused job there leaves nothing behind either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_store_commits_in_place_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.db"), Default::default()).unwrap();
    let acme = vendor("acme");
    for n in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let recorded = acme_pickup_for_north(&store, n).await.unwrap();
        assert!(recorded.queued.is_some());
    }
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let mut conflicting = request("o-0", "north");
    conflicting.address = "elsewhere".into();
    assert!(matches!(
        store.record_pickup(&acme, &conflicting, Utc::now()).await,
        Err(StoreError::ConflictingPickup(_))
    ));
    assert!(
        store.committed_in_place() >= 5,
        "only {} of 6 jobs were committed in place",
        store.committed_in_place()
    );
    let north = Recipient::Distributor(distributor("north"));
    let pending = store.pending_for(&north, usize::MAX).await.unwrap();
    assert_eq!(pending.len(), 5);
    assert!(pending.iter().all(|m| m.order.address != "elsewhere"));
}

async fn concurrent_transitions_of_one_order_move_it_exactly_once(name: &str, store: SharedStore) {
    let acme = vendor("acme");
    let order = OrderId::parse("o-race").unwrap();
    store
        .record_pickup(&acme, &request("o-race", "north"), Utc::now())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (store, acme, order) = (store.clone(), acme.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            store
                .record_transition(
                    &distributor("north"),
                    &acme,
                    &order,
                    Status::InTransit,
                    Utc::now(),
                )
                .await
        }));
    }
    let mut fresh = 0;
    for task in tasks {
        if !task.await.unwrap().unwrap().duplicate() {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "{name}");
    let news = store
        .pending_for(&Recipient::Vendor(acme), usize::MAX)
        .await
        .unwrap();
    assert_eq!(news.len(), 1, "{name}");
    assert_eq!(news[0].order.history.len(), 2, "{name}");
}

/// Two hubs are two connections to one Redis: they must agree as one store does.
#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the Redis cases"
)]
async fn two_redis_connections_racing_on_one_order_move_it_exactly_once() {
    let url = test_redis();
    let keys = RedisPrefix::new(&url);
    let hubs = [
        Arc::new(RedisStore::connect(&url, &keys.prefix).await.unwrap()),
        Arc::new(RedisStore::connect(&url, &keys.prefix).await.unwrap()),
    ];
    let acme = vendor("acme");
    let order = OrderId::parse("o-race").unwrap();
    let mut pickups = Vec::new();
    for n in 0..20 {
        let (hub, acme) = (hubs[n % 2].clone(), acme.clone());
        pickups.push(tokio::spawn(async move {
            hub.record_pickup(&acme, &request("o-race", "north"), Utc::now())
                .await
        }));
    }
    let mut fresh = 0;
    for task in pickups {
        fresh += usize::from(!task.await.unwrap().unwrap().duplicate());
    }
    assert_eq!(fresh, 1, "one pickup recorded");
    for to in [Status::InTransit, Status::Delivered] {
        let mut moves = Vec::new();
        for n in 0..40 {
            let (hub, acme, order) = (hubs[n % 2].clone(), acme.clone(), order.clone());
            moves.push(tokio::spawn(async move {
                hub.record_transition(&distributor("north"), &acme, &order, to, Utc::now())
                    .await
            }));
        }
        let mut fresh = 0;
        for task in moves {
            fresh += usize::from(!task.await.unwrap().unwrap().duplicate());
        }
        assert_eq!(fresh, 1, "exactly one {to}");
    }
    let news: Vec<_> = hubs[0]
        .pending_for(&Recipient::Vendor(acme.clone()), usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.status(), m.order.status))
        .collect();
    assert_eq!(
        news,
        [
            (Status::InTransit, Status::InTransit),
            (Status::Delivered, Status::Delivered)
        ]
    );
    let stored = hubs[1].order(&acme, &order).await.unwrap().unwrap();
    assert_eq!(stored.history.len(), 3);
    let north = Recipient::Distributor(distributor("north"));
    assert_eq!(
        hubs[1].pending_for(&north, usize::MAX).await.unwrap().len(),
        1
    );
}

/// Redis forgets its scripts when it restarts (or on `SCRIPT FLUSH`): the
/// store's writes, which go out in pipelines as bare `EVALSHA`, load their
/// script again and go through, each exactly once.
#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the Redis cases"
)]
async fn writes_go_through_after_redis_forgot_the_scripts() {
    let url = test_redis();
    let keys = RedisPrefix::new(&url);
    let store = RedisStore::connect(&url, &keys.prefix).await.unwrap();
    let mut admin = ::redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut forget = || {
        ::redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query::<()>(&mut admin)
            .unwrap();
    };
    forget();
    let first = acme_pickup_for_north(&store, 1).await.unwrap();
    assert!(!first.duplicate());
    forget();
    let again = acme_pickup_for_north(&store, 1).await.unwrap();
    assert!(again.duplicate(), "the same pickup again is a repeat");
    forget();
    let moved = store
        .record_transition(
            &distributor("north"),
            &vendor("acme"),
            &OrderId::parse("o-1").unwrap(),
            Status::InTransit,
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(!moved.duplicate());
    let north = Recipient::Distributor(distributor("north"));
    let acme = Recipient::Vendor(vendor("acme"));
    assert_eq!(
        store.pending_for(&north, usize::MAX).await.unwrap().len(),
        1
    );
    assert_eq!(store.pending_for(&acme, usize::MAX).await.unwrap().len(), 1);
}
