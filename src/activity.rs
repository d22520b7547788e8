//! Proof of life: every event in and out is logged here, and offered to watchers.
//!
//! Handlers report what passed through them; this module turns each report
//! into one structured log line and, when someone watches (the inspector),
//! into an `activity` record on a broadcast channel. Connects and
//! disconnects are records too, so a watcher sees every change of the hub.
//! With nobody watching, no payload is copied. Every event in and out is
//! also counted in the hub's [`Metrics`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::metrics::Metrics;
use crate::protocol::{event, rfc3339};
use crate::telemetry::{REASON_CHARS, clip, clip_name};

tokio::task_local! {
    /// The feed records of what an incoming event caused (its emits),
    /// held until the event's own record is out: a watcher reads the
    /// cause before its effects, as the log of a step should.
    static EFFECTS: RefCell<Effects>;
}

/// Where the feed records of a handled event's emits go.
#[derive(Debug)]
enum Effects {
    /// The event is not recorded yet: hold them.
    Held(Vec<ActivityRecord>),
    /// The event is recorded: publish at once.
    Released,
}

/// Runs the handling of one incoming event so that the feed shows the
/// event (published by [`Activity::incoming`]) before what it caused.
/// Records still held when `handling` ends (an event never answered)
/// are published then.
pub(crate) async fn cause_first<F: Future>(activity: &Activity, handling: F) -> F::Output {
    let (output, held) = EFFECTS
        .scope(RefCell::new(Effects::Held(Vec::new())), async {
            let output = handling.await;
            (output, release())
        })
        .await;
    held.into_iter().for_each(|record| activity.send(record));
    output
}

/// Stops holding in this task; answers what was held.
fn release() -> Vec<ActivityRecord> {
    EFFECTS
        .try_with(|effects| match effects.replace(Effects::Released) {
            Effects::Held(records) => records,
            Effects::Released => Vec::new(),
        })
        .unwrap_or_default()
}

/// Payloads in the feed are cut to this many bytes.
pub(crate) const MAX_FEED_PAYLOAD: usize = 2 * 1024;

/// Which way an event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// One record of the feed (PROTOCOL.md `activity`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityRecord {
    pub seq: u64,
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// The namespace; for a refused connection, the name the client asked
    /// for (which the hub may not serve).
    pub namespace: Cow<'static, str>,
    pub direction: Direction,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// Why, when the outcome is not `ok`: the refusal's sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub payload: Value,
}

/// An incoming event as a handler saw it.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    pub namespace: &'static str,
    pub event: &'a str,
    pub socket: &'a str,
    pub identity: &'a str,
    /// `ok` or an error code.
    pub outcome: &'static str,
    /// The refusal's sentence, when the outcome is an error code.
    pub reason: Option<&'a str>,
    pub payload: &'a Value,
    /// The sender's address, for its budget of refusal log lines.
    pub peer: Option<IpAddr>,
}

/// An outgoing event: what it was sent to and how many sockets it reached.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    pub namespace: &'static str,
    pub event: &'a str,
    /// `room distributor:north-hub`, `broadcast`, `socket <id>`.
    pub target: &'a str,
    pub recipients: Option<usize>,
    pub outcome: &'static str,
    /// Why the emit failed, when it did.
    pub reason: Option<&'a str>,
    /// The queued message it carries, if any (logged, not in the feed).
    pub message_id: Option<&'a str>,
    pub payload: &'a Value,
}

/// A connection refused before it reached a namespace's handlers.
#[derive(Debug)]
pub(crate) struct RefusedConnection<'a> {
    /// The namespace asked for, served or not.
    pub namespace: Cow<'static, str>,
    pub socket: &'a str,
    /// `bad_auth`, `unauthorized`, or `invalid_namespace`.
    pub code: &'static str,
    pub reason: &'a str,
    pub transport: &'a str,
}

/// The feed. Shared by every namespace; cheap when nobody listens.
#[derive(Debug)]
pub(crate) struct Activity {
    /// Watchers (inspector sockets) subscribe here; lagging ones skip records.
    feed: broadcast::Sender<ActivityRecord>,
    /// Sequence numbers let a watcher see that it skipped records.
    seq: AtomicU64,
    /// Counts every event in and out (`parcel_hub_events_*_total`).
    metrics: Metrics,
    /// The span the hub was built in (a lesson hub's `lesson{run=..}`),
    /// entered for every line logged about a socket: socketioxide runs the
    /// handlers on tasks of its own, which do not carry the caller's span.
    span: tracing::Span,
    /// How many refusal lines each client may write to the log.
    log_budget: LogBudget,
}

/// Refusal log lines per second one client (one peer address) may cause,
/// and their burst. A line is at most about 600 bytes (names and reasons
/// are clipped), so one client writes at most about 120 KB/s of log.
const LOG_LINES_PER_SECOND: u32 = 200;
const LOG_LINES_BURST: u32 = 400;
/// How often a summary of the lines left out is logged.
const SUPPRESSED_NOTE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The per-client budget of refusal log lines: a client that sends nothing
/// but refused events at full speed must not fill the disk. Lines over the
/// budget are counted (`parcel_hub_log_suppressed_total`) and summed up in
/// one line a second.
struct LogBudget {
    limiter: governor::DefaultKeyedRateLimiter<IpAddr>,
    /// Lines left out since the last summary.
    suppressed: AtomicU64,
    /// When the last summary was written.
    last_note: std::sync::Mutex<std::time::Instant>,
}

impl std::fmt::Debug for LogBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBudget")
            .field("suppressed", &self.suppressed)
            .finish_non_exhaustive()
    }
}

impl LogBudget {
    fn new() -> Self {
        let quota = governor::Quota::per_second(
            NonZeroU32::new(LOG_LINES_PER_SECOND).unwrap_or(NonZeroU32::MIN),
        )
        .allow_burst(NonZeroU32::new(LOG_LINES_BURST).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: governor::RateLimiter::keyed(quota),
            suppressed: AtomicU64::new(0),
            last_note: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    /// Whether a refusal line caused by `peer` may be written now.
    fn admit(&self, peer: IpAddr, metrics: &Metrics) -> bool {
        if self.limiter.check_key(&peer).is_ok() {
            return true;
        }
        metrics.log_suppressed(1);
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        let mut last = self
            .last_note
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.elapsed() >= SUPPRESSED_NOTE_EVERY {
            *last = std::time::Instant::now();
            let left_out = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(%peer, left_out, "refusal log lines left out: a client sends more refused requests than the log takes");
        }
        false
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// Cuts a payload to the feed limit, keeping it valid JSON.
fn feed_payload(payload: &Value) -> Value {
    let text = payload.to_string();
    if text.len() <= MAX_FEED_PAYLOAD {
        return payload.clone();
    }
    let mut end = MAX_FEED_PAYLOAD;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Value::String(format!("{}… ({} bytes)", &text[..end], text.len()))
}

/// A connect or disconnect, which the feed shows like an incoming event.
fn lifecycle_record(
    namespace: &'static str,
    event: &str,
    socket: &str,
    identity: &str,
    payload: Value,
) -> ActivityRecord {
    ActivityRecord {
        seq: 0,
        at: Utc::now(),
        namespace: Cow::Borrowed(namespace),
        direction: Direction::In,
        event: event.to_owned(),
        socket: Some(socket.to_owned()),
        identity: Some(identity.to_owned()),
        target: None,
        recipients: None,
        outcome: Some("ok"),
        reason: None,
        payload,
    }
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self::with_metrics(Metrics::new())
    }

    /// A feed that counts events in the hub's `metrics`.
    pub(crate) fn with_metrics(metrics: Metrics) -> Self {
        let (feed, _) = broadcast::channel(1024);
        Self {
            feed,
            seq: AtomicU64::new(0),
            metrics,
            span: tracing::Span::current(),
            log_budget: LogBudget::new(),
        }
    }

    /// Whether a refusal caused by `peer` may be logged now (each client
    /// has a budget of refusal lines per second); `None` (no address known)
    /// is always logged.
    pub(crate) fn may_log_refusal(&self, peer: Option<IpAddr>) -> bool {
        peer.is_none_or(|peer| self.log_budget.admit(peer, &self.metrics))
    }

    /// Forgets the log budgets of clients that have been quiet a while
    /// (called by the upkeep, so the table does not grow).
    pub(crate) fn forget_quiet_clients(&self) {
        self.log_budget.limiter.retain_recent();
        self.log_budget.limiter.shrink_to_fit();
    }

    /// A new watcher of the feed.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ActivityRecord> {
        self.feed.subscribe()
    }

    /// True when someone watches; callers skip costly counting otherwise.
    pub(crate) fn watched(&self) -> bool {
        self.feed.receiver_count() > 0
    }

    /// The hub's span (see the field): enter it to log a line about a socket.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    pub(crate) fn incoming(&self, e: Incoming<'_>) {
        self.metrics.event_received(e.namespace, e.event, e.outcome);
        let _hub = self.span.enter();
        let event = clip_name(e.event);
        let event = event.as_ref();
        if e.outcome == "ok" {
            tracing::info!(
                ns = e.namespace,
                event,
                sid = e.socket,
                identity = e.identity,
                outcome = e.outcome,
                "event in"
            );
        } else if self.may_log_refusal(e.peer) {
            tracing::warn!(
                ns = e.namespace,
                event,
                sid = e.socket,
                identity = e.identity,
                outcome = e.outcome,
                reason = e.reason.map(|r| clip(r, REASON_CHARS)).as_deref(),
                "event in refused"
            );
        }
        // What the event caused waits no longer, whether watched or not.
        let effects = release();
        if self.watched() {
            self.send(ActivityRecord {
                seq: 0,
                at: Utc::now(),
                namespace: Cow::Borrowed(e.namespace),
                direction: Direction::In,
                event: event.to_owned(),
                socket: Some(e.socket.to_owned()),
                identity: Some(e.identity.to_owned()),
                target: None,
                recipients: None,
                outcome: Some(e.outcome),
                reason: e.reason.map(str::to_owned),
                payload: feed_payload(e.payload),
            });
        }
        effects.into_iter().for_each(|record| self.send(record));
    }

    pub(crate) fn outgoing(&self, e: Outgoing<'_>) {
        self.metrics.event_sent(e.namespace, e.event, e.outcome);
        let _hub = self.span.enter();
        tracing::info!(
            ns = e.namespace,
            event = e.event,
            target = e.target,
            recipients = e.recipients,
            message_id = e.message_id,
            outcome = e.outcome,
            reason = e.reason,
            "event out"
        );
        if self.watched() {
            self.publish(ActivityRecord {
                seq: 0,
                at: Utc::now(),
                namespace: Cow::Borrowed(e.namespace),
                direction: Direction::Out,
                event: e.event.to_owned(),
                socket: None,
                identity: None,
                target: Some(e.target.to_owned()),
                recipients: e.recipients,
                outcome: Some(e.outcome),
                reason: e.reason.map(str::to_owned),
                payload: feed_payload(e.payload),
            });
        }
    }

    /// A socket was accepted into a namespace (`connect`, direction `in`).
    pub(crate) fn connected(
        &self,
        namespace: &'static str,
        socket: &str,
        identity: &str,
        transport: &str,
    ) {
        if self.watched() {
            self.publish(lifecycle_record(
                namespace,
                event::CONNECT,
                socket,
                identity,
                serde_json::json!({ "transport": transport }),
            ));
        }
    }

    /// A socket left a namespace (`disconnect`, direction `in`), with the reason.
    pub(crate) fn disconnected(
        &self,
        namespace: &'static str,
        socket: &str,
        identity: &str,
        reason: &str,
    ) {
        if self.watched() {
            self.publish(lifecycle_record(
                namespace,
                event::DISCONNECT,
                socket,
                identity,
                serde_json::json!({ "reason": reason }),
            ));
        }
    }

    /// A connection the hub refused (`connect`, direction `in`): a
    /// middleware's refusal, or a namespace the hub does not serve, whose
    /// name (`namespace`) is the one the client asked for. Logged by the
    /// caller, which knows the reason's context.
    pub(crate) fn refused_connection(&self, refused: RefusedConnection<'_>) {
        if self.watched() {
            self.publish(ActivityRecord {
                seq: 0,
                at: Utc::now(),
                namespace: refused.namespace,
                direction: Direction::In,
                event: event::CONNECT.to_owned(),
                socket: Some(refused.socket.to_owned()),
                identity: None,
                target: None,
                recipients: None,
                outcome: Some(refused.code),
                reason: Some(refused.reason.to_owned()),
                payload: serde_json::json!({ "transport": refused.transport }),
            });
        }
    }

    /// Publishes a record, or holds it while the event that caused it is
    /// not recorded yet (see [`cause_first`]).
    fn publish(&self, record: ActivityRecord) {
        let holding = EFFECTS
            .try_with(|effects| matches!(*effects.borrow(), Effects::Held(_)))
            .unwrap_or(false);
        if holding {
            // Checked just above, in this same task.
            let _held = EFFECTS.try_with(|effects| {
                if let Effects::Held(records) = &mut *effects.borrow_mut() {
                    records.push(record);
                }
            });
            return;
        }
        self.send(record);
    }

    fn send(&self, mut record: ActivityRecord) {
        record.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        // No receiver left between the check and the send is not an error.
        let _nobody_listening = self.feed.send(record);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn long_payloads_are_cut_for_the_feed() {
        let big = Value::String("é".repeat(5000));
        let cut = feed_payload(&big);
        assert!(cut.to_string().len() < MAX_FEED_PAYLOAD + 100);
        let small = serde_json::json!({"a": 1});
        assert_eq!(feed_payload(&small), small);
    }

    #[tokio::test]
    async fn an_event_is_fed_before_the_emits_it_caused() {
        let a = Activity::new();
        let mut rx = a.subscribe();
        let payload = serde_json::json!({});
        cause_first(&a, async {
            a.outgoing(Outgoing {
                namespace: "/chat",
                event: "chat message",
                target: "broadcast",
                recipients: Some(1),
                outcome: "ok",
                reason: None,
                message_id: None,
                payload: &payload,
            });
            a.incoming(Incoming {
                namespace: "/chat",
                event: "chat message",
                socket: "s1",
                identity: "chat alice",
                outcome: "ok",
                reason: None,
                payload: &payload,
                peer: None,
            });
        })
        .await;
        let first = rx.recv().await.unwrap();
        assert_eq!((first.direction, first.seq), (Direction::In, 1));
        let second = rx.recv().await.unwrap();
        assert_eq!((second.direction, second.seq), (Direction::Out, 2));
    }

    #[tokio::test]
    async fn watchers_get_numbered_records() {
        let a = Activity::new();
        let mut rx = a.subscribe();
        let payload = serde_json::json!({});
        for _ in 0..2 {
            a.outgoing(Outgoing {
                namespace: "/vendor",
                event: "x",
                target: "broadcast",
                recipients: Some(1),
                outcome: "ok",
                reason: None,
                message_id: None,
                payload: &payload,
            });
        }
        assert_eq!(rx.recv().await.unwrap().seq, 1);
        assert_eq!(rx.recv().await.unwrap().seq, 2);
    }
}
