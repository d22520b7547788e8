//! The load generator: `parcel-hub bench <workload>`.
//!
//! It speaks PROTOCOL.md over WebSocket with lean raw connections
//! ([`conn`]), measures latency in one process on one monotonic clock, and
//! samples the hub's CPU time and peak RSS when it knows the hub's pid
//! (`--spawn` starts the hub itself). Four workloads (see the README's
//! Performance section) and a bare socketioxide relay ([`relay`]) as the
//! yardstick.

pub(crate) mod conn;
pub(crate) mod relay;
mod target;
mod workloads;

use std::path::PathBuf;

use clap::{Args, FromArgMatches, Subcommand, ValueEnum};
use serde::Serialize;

use crate::store::Durability;

pub use workloads::run_workload;

/// Distributors, vendor and token the workloads use.
pub(crate) const BENCH_VENDOR: &str = "bench-vendor";
pub(crate) const BENCH_TOKEN: &str = "bench-token";

/// The distributor id of bench distributor `n`.
pub(crate) fn bench_distributor(n: usize) -> String {
    format!("bench-d{n:02}")
}

/// A credentials file with the bench identities (`parcel-hub bench credentials`).
pub(crate) fn bench_credentials(distributors: usize) -> String {
    let mut out = format!(
        "admin_token = \"{BENCH_TOKEN}\"\n\n[vendors]\n{BENCH_VENDOR} = \"{BENCH_TOKEN}\"\n\n[distributors]\n"
    );
    for n in 0..distributors {
        out.push_str(&format!("{} = \"{BENCH_TOKEN}\"\n", bench_distributor(n)));
    }
    out
}

/// The `bench` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// W1 fan-out: pickups with acks to rooms of distributor sockets.
    #[command(after_help = "Example:\n  parcel-hub bench w1 --versus-relay --runs 5")]
    W1(BenchArgs),
    /// W2 paced latency: a steady rate of pickups to the same sockets.
    #[command(after_help = "Example:\n  parcel-hub bench w2 --versus-relay --runs 3")]
    W2(BenchArgs),
    /// W3 footprint: idle distributor sockets, RSS per connection.
    #[command(after_help = "Example:\n  parcel-hub bench w3 --versus-relay --runs 3")]
    W3(BenchArgs),
    /// W4 chat fan-out: one sender, every other /chat socket receives.
    #[command(after_help = "Example:\n  parcel-hub bench w4 --versus-relay --runs 3")]
    W4(BenchArgs),
    /// Print a credentials file with the bench identities (for a hub at --url).
    Credentials {
        /// Bench distributors to list.
        #[arg(long, value_name = "N", default_value_t = 10)]
        distributors: usize,
    },
    /// Serve the bare socketioxide relay (the yardstick) on --listen.
    Relay {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:3001")]
        listen: std::net::SocketAddr,
        /// Packets buffered per socket.
        #[arg(long, value_name = "N", default_value_t = 4096)]
        socket_buffer: usize,
    },
}

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    W1,
    W2,
    W3,
    W4,
}

/// Options every workload takes.
#[derive(Debug, Clone, Args)]
pub struct SharedArgs {
    /// Start the hub (or the relay) as a child process on a free port (the default).
    #[arg(long, conflicts_with = "url")]
    pub spawn: bool,
    /// A running hub instead (it needs `parcel-hub bench credentials` and `--rate-limit 0`).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The pid of the hub at --url, to sample its CPU time and RSS.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Measure the bare socketioxide relay instead of parcel-hub.
    #[arg(long, conflicts_with = "versus_relay")]
    pub relay_only: bool,
    /// Measure parcel-hub and the bare relay in turns (hub, relay, hub, ...),
    /// so both see the same machine; prints the medians and their ratio.
    #[arg(long, conflicts_with = "url")]
    pub versus_relay: bool,
    /// The parcel-hub binary to spawn [default: this one].
    #[arg(long, value_name = "FILE")]
    pub hub_bin: Option<PathBuf>,
    /// Durability of a spawned hub.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = Durability::Process)]
    pub durability: Durability,
    /// Connections opened at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Repeat the workload this many times and report the median run too.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub runs: usize,
    /// Also write the (median) result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Spawned hubs join a cluster on this Redis (under a key prefix of
    /// their own, removed after the run); Redis's CPU time is reported
    /// beside the hubs'. With --url, only Redis's CPU time is read.
    #[arg(long, value_name = "URL", conflicts_with = "relay_only")]
    pub redis: Option<String>,
    /// Hubs to spawn on --redis: senders connect to the first, each room's
    /// receiving sockets are spread over all of them; CPU and RSS are summed.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8), conflicts_with = "url")]
    pub hubs: u16,
    /// `--workers` of each spawned hub [default: with several hubs, this
    /// machine's cores shared between them, at least one each; one hub
    /// takes the hub's own default, a thread per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024), conflicts_with = "url")]
    pub hub_workers: Option<u16>,
    /// With --redis: measure the cluster and one SQLite hub by turns; prints
    /// both medians and their ratio.
    #[arg(long, requires = "redis", conflicts_with_all = ["versus_relay", "url"])]
    pub versus_sqlite: bool,
}

/// The distributor rooms (W1, W2, W3).
#[derive(Debug, Clone, Args)]
pub struct RoomArgs {
    /// Distributors (rooms).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub distributors: usize,
}

/// The sockets in each room (W1, W2).
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Sockets per distributor room.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub sockets_per_distributor: usize,
}

/// W1's pickups.
#[derive(Debug, Clone, Args)]
pub struct FanOutArgs {
    /// Pickups to send.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub pickups: usize,
}

/// How many requests wait for their ack at once (W1, W4).
#[derive(Debug, Clone, Args)]
pub struct WindowArgs {
    /// Pickups (W1) or chat messages (W4) in flight before waiting for acks.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub window: usize,
}

/// W2's pace.
#[derive(Debug, Clone, Args)]
pub struct PacedArgs {
    /// Pickups per second.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub rate: u32,
    /// Seconds of paced load.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    pub seconds: u64,
}

/// W3's idle sockets.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Idle sockets.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub idle: usize,
}

/// W4's chat.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// Chat sockets including the sender.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub chat_sockets: usize,
    /// Chat messages.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub messages: usize,
}

/// Knobs of a workload; defaults are the sizes of the issue.
///
/// Each workload's command line lists only the options it uses: the
/// shared ones and its own groups (see [`BenchArgs::groups_of`]); a group
/// a workload does not take keeps its defaults here.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    pub spawn: bool,
    pub url: Option<String>,
    pub pid: Option<u32>,
    pub relay_only: bool,
    pub versus_relay: bool,
    pub hub_bin: Option<PathBuf>,
    pub durability: Durability,
    pub connect_concurrency: usize,
    pub runs: usize,
    pub json: Option<PathBuf>,
    pub redis: Option<String>,
    pub hubs: u16,
    pub hub_workers: Option<u16>,
    pub versus_sqlite: bool,
    pub distributors: usize,
    pub sockets_per_distributor: usize,
    pub pickups: usize,
    pub window: usize,
    pub rate: u32,
    pub seconds: u64,
    pub idle: usize,
    pub chat_sockets: usize,
    pub messages: usize,
}

/// An option group of a workload's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Rooms,
    Fleet,
    FanOut,
    Window,
    Paced,
    Idle,
    Chat,
}

/// The defaults of an option group, as its command line gives them.
fn defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults"));
    match T::from_arg_matches(&command.get_matches_from(["defaults"])) {
        Ok(defaults) => defaults,
        // Only a mistake in the attributes can get here; the bench tests parse every group.
        Err(e) => unreachable!("bench defaults do not parse: {e}"),
    }
}

/// A group's values if the workload's command line has it, else its defaults.
fn group<T: Args + FromArgMatches>(
    matches: &clap::ArgMatches,
    present: bool,
) -> Result<T, clap::Error> {
    if present {
        T::from_arg_matches(matches)
    } else {
        Ok(defaults())
    }
}

impl BenchArgs {
    /// The option groups a workload's command (`w1` ... `w4`) takes.
    fn groups_of(workload: &str) -> &'static [Group] {
        match workload {
            "w1" => &[Group::Rooms, Group::Fleet, Group::FanOut, Group::Window],
            "w2" => &[Group::Rooms, Group::Fleet, Group::Paced],
            "w3" => &[Group::Rooms, Group::Idle],
            "w4" => &[Group::Chat, Group::Window],
            _ => &[],
        }
    }

    fn from_groups(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        // Which groups the matched command was built with: every option has
        // a default, so an option of the command is always among the ids.
        // (`try_contains_id` tells unknown ids apart in debug builds only.)
        let has = |id: &str| matches.ids().any(|known| known.as_str() == id);
        let shared = SharedArgs::from_arg_matches(matches)?;
        let rooms: RoomArgs = group(matches, has("distributors"))?;
        let fleet: FleetArgs = group(matches, has("sockets_per_distributor"))?;
        let fan_out: FanOutArgs = group(matches, has("pickups"))?;
        let window: WindowArgs = group(matches, has("window"))?;
        let paced: PacedArgs = group(matches, has("rate"))?;
        let idle: IdleArgs = group(matches, has("idle"))?;
        let chat: ChatArgs = group(matches, has("chat_sockets"))?;
        Ok(Self {
            spawn: shared.spawn,
            url: shared.url,
            pid: shared.pid,
            relay_only: shared.relay_only,
            versus_relay: shared.versus_relay,
            hub_bin: shared.hub_bin,
            durability: shared.durability,
            connect_concurrency: shared.connect_concurrency,
            runs: shared.runs,
            json: shared.json,
            redis: shared.redis,
            hubs: shared.hubs,
            hub_workers: shared.hub_workers,
            versus_sqlite: shared.versus_sqlite,
            distributors: rooms.distributors,
            sockets_per_distributor: fleet.sockets_per_distributor,
            pickups: fan_out.pickups,
            window: window.window,
            rate: paced.rate,
            seconds: paced.seconds,
            idle: idle.idle,
            chat_sockets: chat.chat_sockets,
            messages: chat.messages,
        })
    }
}

impl FromArgMatches for BenchArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Self::from_groups(matches)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_groups(matches)?;
        Ok(())
    }
}

impl Args for BenchArgs {
    /// The shared options, then the groups of the workload this command is
    /// (clap names the subcommand before it asks for its arguments).
    fn augment_args(command: clap::Command) -> clap::Command {
        let groups = Self::groups_of(command.get_name());
        let mut command = SharedArgs::augment_args(command);
        for group in groups {
            command = match group {
                Group::Rooms => RoomArgs::augment_args(command),
                Group::Fleet => FleetArgs::augment_args(command),
                Group::FanOut => FanOutArgs::augment_args(command),
                Group::Window => WindowArgs::augment_args(command),
                Group::Paced => PacedArgs::augment_args(command),
                Group::Idle => IdleArgs::augment_args(command),
                Group::Chat => ChatArgs::augment_args(command),
            };
        }
        command
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// From nanosecond samples (sorted in place).
    pub fn of(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let last = samples.len() - 1;
            // Nearest-rank percentile; float rounding is fine for reporting.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let i = ((last as f64) * q).round() as usize;
            ms(samples[i.min(last)])
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: ms(samples[samples.len() - 1]),
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e4).round() / 100.0
}

/// What crossed Redis during a cluster run, in all and per request sent
/// (a pickup in W1 and W2, a chat message in W4).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisTraffic {
    pub commands: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub commands_per_request: f64,
    pub bytes_in_per_request: f64,
    pub bytes_out_per_request: f64,
}

impl RedisTraffic {
    #[allow(clippy::cast_precision_loss)]
    fn of(used: target::RedisSample, requests: u64) -> Self {
        let per = |n: u64| {
            if requests == 0 {
                0.0
            } else {
                (n as f64 / requests as f64 * 10.0).round() / 10.0
            }
        };
        Self {
            commands: used.commands,
            bytes_in: used.bytes_in,
            bytes_out: used.bytes_out,
            commands_per_request: per(used.commands),
            bytes_in_per_request: per(used.bytes_in),
            bytes_out_per_request: per(used.bytes_out),
        }
    }
}

/// One workload's result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub workload: Workload,
    /// `parcel-hub` or `relay`.
    pub target: String,
    pub durability: Option<String>,
    pub sockets: usize,
    pub delivered: u64,
    pub expected: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
    pub latency_ms: Percentiles,
    pub ack_ms: Percentiles,
    pub acks_ok: u64,
    pub acks_failed: u64,
    pub connect_ms: Percentiles,
    pub unexpected_to_sender: u64,
    /// Hubs measured (their CPU and RSS are summed).
    pub hubs: usize,
    /// The `--workers` each spawned hub was given, if any.
    pub hub_workers: Option<u16>,
    /// CPU seconds of the hubs, summed.
    pub hub_cpu_seconds: Option<f64>,
    /// Hub CPU per delivered message, in microseconds.
    pub hub_cpu_us_per_delivery: Option<f64>,
    /// Redis's own CPU seconds during the run (a cluster run).
    pub redis_cpu_seconds: Option<f64>,
    /// What crossed Redis during the run (a cluster run).
    pub redis: Option<RedisTraffic>,
    /// Peak RSS of the hubs, summed.
    pub hub_peak_rss_mb: Option<f64>,
    pub rss_per_connection_kb: Option<f64>,
    pub hub_errors_logged: Option<u64>,
}

impl Report {
    /// Everything expected arrived, every ack was ok, the sender heard
    /// nothing it should not have, and the hub logged no error.
    pub fn complete(&self) -> bool {
        self.delivered == self.expected
            && self.acks_failed == 0
            && self.unexpected_to_sender == 0
            && self.hub_errors_logged.unwrap_or(0) == 0
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let opt = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.2}{unit}"));
        let mut rows = vec![
            (
                "workload",
                format!("{:?} against {}", self.workload, self.target),
            ),
            ("sockets", self.sockets.to_string()),
            (
                "delivered",
                format!("{} / {}", self.delivered, self.expected),
            ),
            ("time", format!("{:.2} s", self.seconds)),
            ("messages/s", format!("{:.0}", self.messages_per_second)),
            (
                "latency ms",
                format!(
                    "p50 {} p90 {} p99 {} max {}",
                    self.latency_ms.p50,
                    self.latency_ms.p90,
                    self.latency_ms.p99,
                    self.latency_ms.max
                ),
            ),
            (
                "ack ms",
                format!(
                    "p50 {} p99 {} ({} ok, {} failed)",
                    self.ack_ms.p50, self.ack_ms.p99, self.acks_ok, self.acks_failed
                ),
            ),
            (
                "connect ms",
                format!(
                    "p50 {} p99 {} max {}",
                    self.connect_ms.p50, self.connect_ms.p99, self.connect_ms.max
                ),
            ),
            ("to sender", self.unexpected_to_sender.to_string()),
            ("hub cpu", opt(self.hub_cpu_seconds, " s")),
            ("cpu/delivery", opt(self.hub_cpu_us_per_delivery, " us")),
            ("redis cpu", opt(self.redis_cpu_seconds, " s")),
            (
                "redis traffic",
                self.redis.as_ref().map_or("-".into(), |r| {
                    format!(
                        "{} commands, {} B in, {} B out; per request {} commands, {} B in, {} B out",
                        r.commands,
                        r.bytes_in,
                        r.bytes_out,
                        r.commands_per_request,
                        r.bytes_in_per_request,
                        r.bytes_out_per_request
                    )
                }),
            ),
            ("hub peak rss", opt(self.hub_peak_rss_mb, " MB")),
            ("rss/conn", opt(self.rss_per_connection_kb, " KB")),
            (
                "hub errors",
                self.hub_errors_logged.map_or("-".into(), |n| n.to_string()),
            ),
        ];
        if let Some(d) = &self.durability {
            rows.insert(1, ("durability", d.clone()));
        }
        let workers = self
            .hub_workers
            .map(|n| format!(", --workers {n} each"))
            .unwrap_or_default();
        if self.hubs > 1 {
            rows.insert(
                1,
                (
                    "hubs",
                    format!("{} (cpu and rss summed{workers})", self.hubs),
                ),
            );
        } else if let Some(n) = self.hub_workers {
            rows.insert(1, ("workers", n.to_string()));
        }
        rows.iter().map(|(k, v)| format!("{k:<14} {v}\n")).collect()
    }
}

/// Runs a `bench` subcommand.
pub async fn main(command: BenchCommand) -> anyhow::Result<i32> {
    let (workload, args) = match command {
        BenchCommand::Credentials { distributors } => {
            crate::out!("{}", bench_credentials(distributors).trim_end());
            return Ok(0);
        }
        BenchCommand::Relay {
            listen,
            socket_buffer,
        } => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            crate::out!("listening on http://{}", listener.local_addr()?);
            relay::serve(listener, socket_buffer).await?;
            return Ok(0);
        }
        BenchCommand::W1(a) => (Workload::W1, a),
        BenchCommand::W2(a) => (Workload::W2, a),
        BenchCommand::W3(a) => (Workload::W3, a),
        BenchCommand::W4(a) => (Workload::W4, a),
    };
    // The targets in turn: the hub alone, the relay alone, or both by turns.
    let targets: Vec<BenchArgs> = if args.versus_relay {
        vec![
            args.clone(),
            BenchArgs {
                relay_only: true,
                ..args.clone()
            },
        ]
    } else if args.versus_sqlite {
        vec![
            args.clone(),
            BenchArgs {
                redis: None,
                hubs: 1,
                ..args.clone()
            },
        ]
    } else {
        vec![args.clone()]
    };
    let runs = args.runs.max(1);
    let mut reports: Vec<Vec<Report>> = vec![Vec::with_capacity(runs); targets.len()];
    for run in 1..=runs {
        for (target, done) in targets.iter().zip(reports.iter_mut()) {
            let report = run_workload(workload, target).await?;
            if runs > 1 || targets.len() > 1 {
                crate::out!("-- run {run} of {runs} --");
            }
            crate::out!("{}", report.table().trim_end());
            crate::out!("{}", serde_json::to_string(&report)?);
            done.push(report);
        }
    }
    let complete = reports.iter().flatten().all(Report::complete);
    let (metric_name, metric) = key_metric(workload);
    let mut medians = Vec::with_capacity(reports.len());
    for target_reports in reports {
        let median =
            median_run(target_reports).ok_or_else(|| anyhow::anyhow!("no run was made"))?;
        if runs > 1 || targets.len() > 1 {
            crate::out!("-- median run (by {metric_name}) --");
            crate::out!("{}", median.table().trim_end());
        }
        medians.push(median);
    }
    let json = match medians.as_slice() {
        [first, second] => {
            let ratio = metric(first) / metric(second);
            crate::out!(
                "{} / {} ({metric_name}, medians of {runs} runs each, taken by turns): {:.0} %",
                first.target,
                second.target,
                ratio * 100.0
            );
            let (a, b) = if args.versus_relay {
                ("hub", "relay")
            } else {
                ("cluster", "sqlite")
            };
            serde_json::json!({ a: first, b: second, "ratio": ratio })
        }
        [only] => serde_json::to_value(only)?,
        _ => serde_json::Value::Null,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string(&json)?)?;
    }
    Ok(if complete { 0 } else { 1 })
}

/// What a workload is judged by, and whether lower is better.
fn key_metric(workload: Workload) -> (&'static str, fn(&Report) -> f64) {
    match workload {
        Workload::W1 | Workload::W4 => ("messages/s", |r| r.messages_per_second),
        Workload::W2 => ("latency p99", |r| r.latency_ms.p99),
        Workload::W3 => ("rss/conn", |r| r.rss_per_connection_kb.unwrap_or(0.0)),
    }
}

/// The run whose key metric is the median of all runs.
fn median_run(mut reports: Vec<Report>) -> Option<Report> {
    let (_, metric) = key_metric(reports.first()?.workload);
    reports.sort_by(|a, b| metric(a).total_cmp(&metric(b)));
    let middle = reports.len() / 2;
    Some(reports.swap_remove(middle))
}
