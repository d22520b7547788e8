//! The four workloads: W1 fan-out, W2 paced latency, W3 footprint, W4 chat fan-out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use super::conn::{Sender, Tally, elapsed_ns, spawn_receiver};
use super::target::{Target, stats_of};
use super::{
    BENCH_TOKEN, BENCH_VENDOR, BenchArgs, Percentiles, RedisTraffic, Report, Workload,
    bench_distributor,
};

/// A payload marker the receivers find without parsing JSON (see `conn::read_stamp`).
fn stamp(origin: Instant) -> String {
    format!("~t{}", elapsed_ns(origin))
}

/// How long deliveries may pause before the run counts what it has.
const IDLE_LIMIT: Duration = Duration::from_secs(10);

/// Where receiving sockets connect, what they listen for, and what they share.
struct Listeners<'a> {
    /// Socket `i` connects to `target.url_for(i, spread)`.
    target: &'a Target,
    spread: usize,
    namespace: &'a str,
    event: &'a str,
    origin: Instant,
    tally: &'a Arc<Tally>,
    stop: &'a watch::Receiver<bool>,
}

/// Opens `count` receiving sockets with bounded concurrency; returns their
/// tasks and each connection's handshake time.
async fn connect_receivers(
    to: &Listeners<'_>,
    count: usize,
    concurrency: usize,
    auth_of: impl Fn(usize) -> Value,
) -> anyhow::Result<(Vec<Receiver>, Vec<u64>)> {
    let attempts = (0..count).map(|i| {
        let auth = auth_of(i);
        let (tally, stop) = (to.tally.clone(), to.stop.clone());
        let url = to.target.url_for(i, to.spread);
        let (namespace, event, origin) = (to.namespace, to.event, to.origin);
        async move {
            let started = Instant::now();
            let task = spawn_receiver(url, namespace, &auth, event, origin, tally, stop).await;
            (
                task,
                u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            )
        }
    });
    let results: Vec<_> = futures_util::stream::iter(attempts)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut tasks = Vec::with_capacity(count);
    let mut times = Vec::with_capacity(count);
    for (task, took) in results {
        tasks.push(task.map_err(|e| anyhow::anyhow!("a receiver could not connect: {e}"))?);
        times.push(took);
    }
    Ok((tasks, times))
}

type Receiver = tokio::task::JoinHandle<Vec<u64>>;

/// Waits until `expected` deliveries arrived, or none came for [`IDLE_LIMIT`];
/// returns the count and the last arrival time.
async fn wait_for(tally: &Tally, expected: u64) -> (u64, u64) {
    let mut seen = 0;
    let mut last_progress = Instant::now();
    loop {
        let now = tally.delivered.load(Ordering::Relaxed);
        if now >= expected {
            break;
        }
        if now != seen {
            seen = now;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > IDLE_LIMIT {
            break;
        }
        // A load generator may poll: this is not on any measured path.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (
        tally.delivered.load(Ordering::Relaxed),
        tally.last_ns.load(Ordering::Relaxed),
    )
}

/// A delivery workload (W1, W2, W4) whose sender has sent everything.
struct Deliveries<'a> {
    /// When the first event was sent, in nanoseconds since the run's origin.
    start: u64,
    tally: &'a Tally,
    stop: &'a watch::Sender<bool>,
    receivers: Vec<Receiver>,
    sender: &'a Sender,
    /// The hubs' pids, to read their CPU time and RSS once the workload is done.
    pids: &'a [u32],
}

impl Deliveries<'_> {
    /// Waits for the deliveries, reads the hub's CPU time and RSS, stops
    /// the receivers and fills in `report` from them and from what the
    /// sender's acks said (`sent`). Returns the hub's stats at the end of
    /// the workload: before the receivers leave, so the hub's work on their
    /// departure (W4: a `user disconnected` to everyone still there, for
    /// each) is not counted, or counted only in part, by chance of timing.
    async fn settle(
        self,
        report: &mut Report,
        sent: (Vec<u64>, u64, u64),
    ) -> Option<(f64, f64, f64)> {
        let (mut rtts, ok, failed) = sent;
        report.ack_ms = Percentiles::of(&mut rtts);
        report.acks_ok = ok;
        report.acks_failed = failed;
        let (delivered, last) = wait_for(self.tally, report.expected).await;
        let stats = stats_of(self.pids);
        report.delivered = delivered;
        let span = last.saturating_sub(self.start);
        report.seconds = span as f64 / 1e9;
        report.messages_per_second = per_second(report.delivered, span);
        report.latency_ms = Percentiles::of(&mut gather(self.stop, self.receivers).await);
        report.unexpected_to_sender = self.sender.events_received.load(Ordering::Relaxed);
        stats
    }
}

/// Stops the receivers and gathers their latencies.
async fn gather(stop: &watch::Sender<bool>, receivers: Vec<Receiver>) -> Vec<u64> {
    // Receivers that already ended have dropped their side; that is fine.
    let _some_gone = stop.send(true);
    let mut all = Vec::new();
    for r in receivers {
        match r.await {
            Ok(mut latencies) => all.append(&mut latencies),
            Err(e) => tracing::warn!(error = %e, "a receiver task failed"),
        }
    }
    all
}

fn distributor_auth(n: usize) -> Value {
    json!({ "distributorId": bench_distributor(n), "token": BENCH_TOKEN })
}

/// Sends `total` events with acks, at most `window` in flight; returns ack
/// round trips and how many acks said ok / not ok.
async fn send_windowed(
    sender: &mut Sender,
    event: &str,
    total: usize,
    window: usize,
    origin: Instant,
    payload_of: impl Fn(usize, &str) -> String,
) -> (Vec<u64>, u64, u64) {
    let mut sent_at: HashMap<i64, u64> = HashMap::with_capacity(window * 2);
    let mut rtts = Vec::with_capacity(total);
    let (mut sent, mut ok, mut failed) = (0, 0, 0);
    while (ok + failed) < total as u64 {
        while sent_at.len() < window.max(1) && sent < total {
            let payload = payload_of(sent, &stamp(origin));
            match sender.send(event, &payload) {
                Ok(id) => {
                    sent_at.insert(id, elapsed_ns(origin));
                }
                Err(e) => {
                    tracing::error!(error = %e, "the sender's connection closed");
                    return (rtts, ok, failed + (total - sent) as u64);
                }
            }
            sent += 1;
        }
        match sender.next_ack(IDLE_LIMIT).await {
            Some((id, was_ok)) => {
                if let Some(at) = sent_at.remove(&id) {
                    rtts.push(elapsed_ns(origin).saturating_sub(at));
                }
                if was_ok { ok += 1 } else { failed += 1 }
            }
            None => {
                failed += (total as u64) - ok - failed;
                break;
            }
        }
    }
    (rtts, ok, failed)
}

#[allow(clippy::cast_precision_loss)]
fn per_second(count: u64, ns: u64) -> f64 {
    if ns == 0 {
        0.0
    } else {
        count as f64 / (ns as f64 / 1e9)
    }
}

/// Runs one workload and measures it.
pub async fn run_workload(workload: Workload, args: &BenchArgs) -> anyhow::Result<Report> {
    let run_id = format!("r{}", chrono::Utc::now().timestamp_millis());
    let mut target = Target::start(args, &run_id).await?;
    let origin = Instant::now();
    let before = target.stats();
    let redis_before = target.redis_sample().await;
    let url = target.urls[0].clone();
    let url = url.as_str();
    let mut report = Report {
        workload,
        target: target.name.clone(),
        durability: (!args.relay_only).then(|| args.durability.name().to_owned()),
        sockets: 0,
        delivered: 0,
        expected: 0,
        seconds: 0.0,
        messages_per_second: 0.0,
        latency_ms: Percentiles::default(),
        ack_ms: Percentiles::default(),
        acks_ok: 0,
        acks_failed: 0,
        connect_ms: Percentiles::default(),
        unexpected_to_sender: 0,
        hubs: target.urls.len(),
        hub_workers: target.workers,
        hub_cpu_seconds: None,
        hub_cpu_us_per_delivery: None,
        redis_cpu_seconds: None,
        redis: None,
        hub_peak_rss_mb: None,
        rss_per_connection_kb: None,
        hub_errors_logged: None,
    };
    let tally = Arc::new(Tally::default());
    let (stop, stop_rx) = watch::channel(false);
    // Distributor sockets spread over the bench distributors' rooms.
    let distributors = Listeners {
        target: &target,
        spread: args.distributors.max(1),
        namespace: "/distributor",
        event: "pickup",
        origin,
        tally: &tally,
        stop: &stop_rx,
    };
    let rooms = args.distributors.max(1);
    let connect_distributors = |count: usize| {
        connect_receivers(&distributors, count, args.connect_concurrency, move |i| {
            distributor_auth(i % rooms)
        })
    };

    // The hub's stats at the end of a delivery workload (see `Deliveries::settle`).
    let mut end = None;
    match workload {
        Workload::W1 | Workload::W2 => {
            let sockets = args.distributors * args.sockets_per_distributor;
            let (tasks, mut times) = connect_distributors(sockets).await?;
            report.sockets = sockets + 1;
            report.connect_ms = Percentiles::of(&mut times);
            let mut vendor = Sender::connect(
                url,
                "/vendor",
                &json!({ "vendorId": BENCH_VENDOR, "token": BENCH_TOKEN }),
                "pickup",
            )
            .await?;
            let pickup = |n: usize, stamp: &str| {
                format!(
                    r#"{{"orderId":"{run_id}-{n}","distributorId":"{}","customer":"{stamp}","address":"bench"}}"#,
                    bench_distributor(n % rooms)
                )
            };
            let per_pickup = args.sockets_per_distributor as u64;
            let start = elapsed_ns(origin);
            let sent = if workload == Workload::W1 {
                report.expected = args.pickups as u64 * per_pickup;
                send_windowed(
                    &mut vendor,
                    "pickup",
                    args.pickups,
                    args.window,
                    origin,
                    pickup,
                )
                .await
            } else {
                let total = usize::try_from(u64::from(args.rate) * args.seconds).unwrap_or(0);
                report.expected = total as u64 * per_pickup;
                send_paced(&mut vendor, total, args.rate, origin, pickup).await
            };
            let run = Deliveries {
                start,
                tally: &tally,
                stop: &stop,
                receivers: tasks,
                sender: &vendor,
                pids: &target.pids,
            };
            end = run.settle(&mut report, sent).await;
        }
        Workload::W3 => {
            let idle_before = target.stats();
            let (tasks, mut times) = connect_distributors(args.idle).await?;
            report.sockets = tasks.len();
            report.expected = args.idle as u64;
            report.delivered = tasks.len() as u64;
            report.connect_ms = Percentiles::of(&mut times);
            report.seconds = elapsed_ns(origin) as f64 / 1e9;
            report.messages_per_second = per_second(report.delivered, elapsed_ns(origin));
            // Let the hub finish every handshake's bookkeeping before reading RSS.
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let (Some((_, _, rss_before)), Some((_, _, rss_after))) =
                (idle_before, target.stats())
            {
                report.rss_per_connection_kb =
                    Some((rss_after - rss_before) / args.idle.max(1) as f64);
            }
            gather(&stop, tasks).await;
        }
        Workload::W4 => {
            let mut sender =
                Sender::connect(url, "/chat", &json!({ "name": "sender" }), "chat message").await?;
            let others = args.chat_sockets.saturating_sub(1);
            let to = Listeners {
                target: &target,
                spread: 1,
                namespace: "/chat",
                event: "chat message",
                origin,
                tally: &tally,
                stop: &stop_rx,
            };
            let (tasks, mut times) = connect_receivers(
                &to,
                others,
                args.connect_concurrency,
                |i| json!({ "name": format!("listener {i}") }),
            )
            .await?;
            report.sockets = args.chat_sockets;
            report.connect_ms = Percentiles::of(&mut times);
            report.expected = args.messages as u64 * others as u64;
            let start = elapsed_ns(origin);
            let sent = send_windowed(
                &mut sender,
                "chat message",
                args.messages,
                args.window,
                origin,
                |_, stamp| format!(r#"{{"text":"{stamp}"}}"#),
            )
            .await;
            let run = Deliveries {
                start,
                tally: &tally,
                stop: &stop,
                receivers: tasks,
                sender: &sender,
                pids: &target.pids,
            };
            end = run.settle(&mut report, sent).await;
        }
    };

    if let Some((cpu_before, _, _)) = before
        && let Some((cpu_after, peak, _)) = end.or_else(|| target.stats())
    {
        let cpu = cpu_after - cpu_before;
        report.hub_cpu_seconds = Some((cpu * 100.0).round() / 100.0);
        report.hub_peak_rss_mb = Some((peak * 10.0).round() / 10.0);
        #[allow(clippy::cast_precision_loss)]
        if report.delivered > 0 {
            let us = cpu * 1e6 / report.delivered as f64;
            report.hub_cpu_us_per_delivery = Some((us * 100.0).round() / 100.0);
        }
    }
    if let (Some(before), Some(after)) = (redis_before, target.redis_sample().await) {
        let used = after.since(before);
        report.redis_cpu_seconds = Some((used.cpu * 100.0).round() / 100.0);
        report.redis = Some(RedisTraffic::of(used, report.acks_ok + report.acks_failed));
    }
    report.hub_errors_logged = target.errors_logged();
    target.finish().await;
    Ok(report)
}

/// Sends `total` pickups at `rate` per second regardless of acks.
async fn send_paced(
    sender: &mut Sender,
    total: usize,
    rate: u32,
    origin: Instant,
    payload_of: impl Fn(usize, &str) -> String,
) -> (Vec<u64>, u64, u64) {
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut sent_at: HashMap<i64, u64> = HashMap::new();
    let mut rtts = Vec::with_capacity(total);
    let (mut sent, mut ok, mut failed) = (0usize, 0u64, 0u64);
    while (ok + failed) < total as u64 {
        tokio::select! {
            _ = interval.tick(), if sent < total => {
                let payload = payload_of(sent, &stamp(origin));
                match sender.send("pickup", &payload) {
                    Ok(id) => { sent_at.insert(id, elapsed_ns(origin)); }
                    Err(e) => {
                        tracing::error!(error = %e, "the sender's connection closed");
                        return (rtts, ok, failed + (total - sent) as u64);
                    }
                }
                sent += 1;
            }
            ack = sender.next_ack(IDLE_LIMIT) => match ack {
                Some((id, was_ok)) => {
                    if let Some(at) = sent_at.remove(&id) {
                        rtts.push(elapsed_ns(origin).saturating_sub(at));
                    }
                    if was_ok { ok += 1 } else { failed += 1 }
                }
                None => {
                    failed += total as u64 - ok - failed;
                    break;
                }
            }
        }
    }
    (rtts, ok, failed)
}
