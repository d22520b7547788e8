//! The hub's Prometheus metrics (`GET /metrics`), through the `metrics`
//! crate family.
//!
//! Each hub owns its recorder rather than installing a global one: several
//! hubs in one process (the tests, the `/learn` lesson hubs) then count
//! apart, and a hub's numbers are exactly its own. Handles are registered
//! once where that is possible (per recipient kind, per store) and looked up
//! by their labels otherwise (events, acks); either way recording is a few
//! atomic operations, and per event, never per delivery to a socket.
//!
//! Event-name labels are bounded: an event the hub does not know counts
//! under `unknown`, so a client cannot grow the label set.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `parcel_hub_connected_sockets` | gauge | `namespace` | sockets connected to this hub now (read at scrape) |
//! | `parcel_hub_events_received_total` | counter | `namespace`, `event`, `outcome` | events clients sent, by the outcome of their ack (`ok` or an error code) |
//! | `parcel_hub_events_sent_total` | counter | `namespace`, `event`, `outcome` | emits the hub made to a room or broadcast, or to one socket (the chat's `users`) (`ok` or `internal`); one per emit, not per socket |
//! | `parcel_hub_ack_duration_seconds` | histogram | `namespace`, `event` | from an event's arrival to its answer |
//! | `parcel_hub_store_commit_duration_seconds` | histogram | `store` | one SQLite commit (a batch of writes), or one Redis script round trip |
//! | `parcel_hub_queue_depth` | gauge | `recipient` | messages waiting for confirmation, summed per recipient kind, refreshed every few seconds |
//! | `parcel_hub_messages_queued_total` | counter | `recipient` | messages committed to a queue by this hub |
//! | `parcel_hub_messages_confirmed_total` | counter | `recipient` | messages removed from a queue by `received` on this hub |
//! | `parcel_hub_retention_deleted_orders_total` | counter | | delivered orders deleted by `--retain-delivered` |
//! | `parcel_hub_redis_up` | gauge | | 1 while the cluster's Redis answers the watchdog, else 0 (cluster only) |
//! | `parcel_hub_sockets_dropped_total` | counter | `namespace`, `reason` | sockets the hub disconnected itself: `packet_refused` (over a packet limit or unparsable), `slow_consumer` (its send buffer was full) |
//! | `parcel_hub_log_suppressed_total` | counter | | refusal log lines left out because one socket sent too many |
//! | `parcel_hub_build_info` | gauge | `version`, `store` | always 1 |

use std::sync::Arc;
use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::domain::Recipient;
use crate::protocol::event;

/// Histogram buckets (seconds): from a fast in-place commit to a slow one.
const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Every event name the hub knows, in or out; anything else is `unknown`.
const KNOWN_EVENTS: [&str; 17] = [
    event::PICKUP,
    event::IN_TRANSIT,
    event::DELIVERED,
    event::RECEIVED,
    event::GET_ALL,
    event::ORDERS,
    event::ORDER,
    event::CHAT_MESSAGE,
    event::JOIN,
    event::LEAVE,
    event::TYPING,
    event::STOP_TYPING,
    event::USER_CONNECTED,
    event::USER_DISCONNECTED,
    event::USER_JOINED,
    event::USER_LEFT,
    event::USERS,
];

const EVENTS_RECEIVED: &str = "parcel_hub_events_received_total";
const EVENTS_SENT: &str = "parcel_hub_events_sent_total";
const ACK_DURATION: &str = "parcel_hub_ack_duration_seconds";
const CONNECTED: &str = "parcel_hub_connected_sockets";
const STORE_COMMIT: &str = "parcel_hub_store_commit_duration_seconds";
const QUEUE_DEPTH: &str = "parcel_hub_queue_depth";
const QUEUED: &str = "parcel_hub_messages_queued_total";
const CONFIRMED: &str = "parcel_hub_messages_confirmed_total";
const RETENTION_DELETED: &str = "parcel_hub_retention_deleted_orders_total";
const REDIS_UP: &str = "parcel_hub_redis_up";
const BUILD_INFO: &str = "parcel_hub_build_info";
const WORKER_THREADS: &str = "parcel_hub_worker_threads";
const SOCKETS_DROPPED: &str = "parcel_hub_sockets_dropped_total";
const LOG_SUPPRESSED: &str = "parcel_hub_log_suppressed_total";

/// Where registrations come from (the recorder ignores it; the API wants one).
static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// The label value of an event name: itself if the hub knows it, else `unknown`.
pub(crate) fn event_label(name: &str) -> &'static str {
    KNOWN_EVENTS
        .iter()
        .find(|known| **known == name)
        .copied()
        .unwrap_or("unknown")
}

/// Handles kept per recipient kind.
#[derive(Debug)]
struct PerRecipient<T> {
    vendor: T,
    distributor: T,
}

impl<T> PerRecipient<T> {
    fn of(&self, recipient: &Recipient) -> &T {
        match recipient {
            Recipient::Vendor(_) => &self.vendor,
            Recipient::Distributor(_) => &self.distributor,
        }
    }
}

/// One hub's metrics. Cloning is shallow.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    queued: PerRecipient<Counter>,
    confirmed: PerRecipient<Counter>,
    depth: PerRecipient<Gauge>,
    retention_deleted: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .unwrap_or_else(|_| unreachable!("the bucket list is not empty"))
            .build_recorder();
        describe(&recorder);
        let handle = recorder.handle();
        let key = |name: &'static str, kind: &'static str| {
            Key::from_parts(name, vec![Label::from_static_parts("recipient", kind)])
        };
        let counters = |name: &'static str| PerRecipient {
            vendor: recorder.register_counter(&key(name, "vendor"), &METADATA),
            distributor: recorder.register_counter(&key(name, "distributor"), &METADATA),
        };
        let queued = counters(QUEUED);
        let confirmed = counters(CONFIRMED);
        let depth = PerRecipient {
            vendor: recorder.register_gauge(&key(QUEUE_DEPTH, "vendor"), &METADATA),
            distributor: recorder.register_gauge(&key(QUEUE_DEPTH, "distributor"), &METADATA),
        };
        let retention_deleted =
            recorder.register_counter(&Key::from_static_name(RETENTION_DELETED), &METADATA);
        Self {
            inner: Arc::new(Inner {
                recorder,
                handle,
                queued,
                confirmed,
                depth,
                retention_deleted,
            }),
        }
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.inner
            .recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.inner
            .recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    fn event_labels(namespace: &'static str, event: &str, outcome: &'static str) -> Vec<Label> {
        vec![
            Label::from_static_parts("namespace", namespace),
            Label::from_static_parts("event", event_label(event)),
            Label::from_static_parts("outcome", outcome),
        ]
    }

    /// An event a client sent, and how it was answered.
    pub(crate) fn event_received(
        &self,
        namespace: &'static str,
        event: &str,
        outcome: &'static str,
    ) {
        self.counter(
            EVENTS_RECEIVED,
            Self::event_labels(namespace, event, outcome),
        )
        .increment(1);
    }

    /// An emit the hub made.
    pub(crate) fn event_sent(&self, namespace: &'static str, event: &str, outcome: &'static str) {
        self.counter(EVENTS_SENT, Self::event_labels(namespace, event, outcome))
            .increment(1);
    }

    /// How long an event waited for its answer.
    pub(crate) fn ack_duration(&self, namespace: &'static str, event: &str, took: Duration) {
        let labels = vec![
            Label::from_static_parts("namespace", namespace),
            Label::from_static_parts("event", event_label(event)),
        ];
        self.inner
            .recorder
            .register_histogram(&Key::from_parts(ACK_DURATION, labels), &METADATA)
            .record(took.as_secs_f64());
    }

    /// The histogram a store records its commits in.
    pub(crate) fn store_commits(&self, store: &'static str) -> Histogram {
        let labels = vec![Label::from_static_parts("store", store)];
        self.inner
            .recorder
            .register_histogram(&Key::from_parts(STORE_COMMIT, labels), &METADATA)
    }

    /// A message committed to `recipient`'s queue.
    pub(crate) fn message_queued(&self, recipient: &Recipient) {
        self.inner.queued.of(recipient).increment(1);
    }

    /// A message confirmed (removed from its queue).
    pub(crate) fn message_confirmed(&self, recipient: &Recipient) {
        self.inner.confirmed.of(recipient).increment(1);
    }

    /// The queue depths, summed per recipient kind.
    pub(crate) fn set_queue_depths<'a>(
        &self,
        depths: impl IntoIterator<Item = (&'a Recipient, u64)>,
    ) {
        let (mut vendor, mut distributor) = (0_u64, 0_u64);
        for (owner, depth) in depths {
            match owner {
                Recipient::Vendor(_) => vendor += depth,
                Recipient::Distributor(_) => distributor += depth,
            }
        }
        #[allow(clippy::cast_precision_loss)]
        {
            self.inner.depth.vendor.set(vendor as f64);
            self.inner.depth.distributor.set(distributor as f64);
        }
    }

    /// Delivered orders deleted by the retention sweep.
    pub(crate) fn retention_deleted(&self, orders: u64) {
        self.inner.retention_deleted.increment(orders);
    }

    /// The gauge the cluster watchdog keeps at 1 (Redis answers) or 0.
    pub(crate) fn redis_up(&self) -> Gauge {
        self.gauge(REDIS_UP, Vec::new())
    }

    /// The sockets connected to this hub per namespace, read at scrape time.
    pub(crate) fn set_connected(&self, namespace: &'static str, sockets: usize) {
        #[allow(clippy::cast_precision_loss)]
        self.gauge(
            CONNECTED,
            vec![Label::from_static_parts("namespace", namespace)],
        )
        .set(sockets as f64);
    }

    /// A socket the hub disconnected itself, and why (`packet_refused`,
    /// `slow_consumer`).
    pub(crate) fn socket_dropped(&self, namespace: &'static str, reason: &'static str) {
        let labels = vec![
            Label::from_static_parts("namespace", namespace),
            Label::from_static_parts("reason", reason),
        ];
        self.counter(SOCKETS_DROPPED, labels).increment(1);
    }

    /// Refusal log lines left out by the per-socket log budget.
    pub(crate) fn log_suppressed(&self, lines: u64) {
        self.counter(LOG_SUPPRESSED, Vec::new()).increment(lines);
    }

    /// The build info gauge (version and store kind).
    pub(crate) fn set_build_info(&self, store: &'static str) {
        let labels = vec![
            Label::from_static_parts("version", env!("CARGO_PKG_VERSION")),
            Label::from_static_parts("store", store),
        ];
        self.gauge(BUILD_INFO, labels).set(1.0);
        // How many threads run the sockets (`--workers`), for an operator
        // checking how co-located hubs share a machine. Outside a
        // multi-threaded runtime (a test's), whatever runs this hub.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            #[allow(clippy::cast_precision_loss)]
            let workers = runtime.metrics().num_workers() as f64;
            self.gauge(WORKER_THREADS, Vec::new()).set(workers);
        }
    }

    /// Drains recorded histogram samples into their buckets; called now and
    /// then so samples do not pile up between scrapes.
    pub(crate) fn upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// The text exposition format.
    pub(crate) fn render(&self) -> String {
        self.inner.handle.render()
    }
}

/// `# HELP` lines and units for every metric.
fn describe(recorder: &PrometheusRecorder) {
    let counters = [
        (
            EVENTS_RECEIVED,
            "Events clients sent, by namespace, event and the outcome of their ack",
        ),
        (
            EVENTS_SENT,
            "Emits the hub made to a room or a broadcast, by namespace, event and outcome",
        ),
        (
            QUEUED,
            "Messages committed to a recipient's queue by this hub",
        ),
        (
            CONFIRMED,
            "Messages confirmed with `received` (removed from their queue) on this hub",
        ),
        (
            RETENTION_DELETED,
            "Delivered orders deleted by --retain-delivered",
        ),
        (
            SOCKETS_DROPPED,
            "Sockets the hub disconnected itself, by namespace and reason",
        ),
        (
            LOG_SUPPRESSED,
            "Refusal log lines left out because one socket sent too many",
        ),
    ];
    for (name, help) in counters {
        recorder.describe_counter(
            KeyName::from_const_str(name),
            Some(Unit::Count),
            help.into(),
        );
    }
    let gauges = [
        (CONNECTED, "Sockets connected to this hub, by namespace"),
        (
            QUEUE_DEPTH,
            "Messages waiting for confirmation, by recipient kind",
        ),
        (REDIS_UP, "1 while the cluster's Redis answers, else 0"),
        (
            BUILD_INFO,
            "Always 1; the labels say the version and the store",
        ),
        (
            WORKER_THREADS,
            "Threads running the hub's sockets and handlers (--workers)",
        ),
    ];
    for (name, help) in gauges {
        recorder.describe_gauge(KeyName::from_const_str(name), None, help.into());
    }
    let histograms = [
        (
            ACK_DURATION,
            "Seconds from an event's arrival to its answer, by namespace and event",
        ),
        (
            STORE_COMMIT,
            "Seconds one store commit took (a SQLite batch, a Redis script round trip)",
        ),
    ];
    for (name, help) in histograms {
        recorder.describe_histogram(
            KeyName::from_const_str(name),
            Some(Unit::Seconds),
            help.into(),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::VendorId;

    #[test]
    fn unknown_event_names_share_one_label() {
        assert_eq!(event_label("pickup"), "pickup");
        assert_eq!(event_label("orders"), "orders");
        assert_eq!(event_label("users"), "users");
        assert_eq!(event_label("no-such-event"), "unknown");
        assert_eq!(event_label("x".repeat(100).as_str()), "unknown");
    }

    #[test]
    fn two_hubs_count_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let vendor = Recipient::Vendor(VendorId::parse("acme").unwrap());
        a.message_queued(&vendor);
        a.event_received("/vendor", "pickup", "ok");
        a.ack_duration("/vendor", "pickup", Duration::from_millis(3));
        let text = a.render();
        assert!(
            text.contains(r#"parcel_hub_messages_queued_total{recipient="vendor"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"parcel_hub_events_received_total{namespace="/vendor",event="pickup",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("parcel_hub_ack_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains("# HELP parcel_hub_messages_queued_total"),
            "{text}"
        );
        assert!(
            b.render()
                .contains(r#"parcel_hub_messages_queued_total{recipient="vendor"} 0"#)
        );
    }
}
