//! What a workload runs against: a hub or the relay the run starts itself
//! (`--spawn`), several hubs on one Redis (`--redis URL --hubs N`), or a
//! hub already running (`--url`); and how their CPU time and memory are read.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{BenchArgs, bench_credentials};

/// CPU seconds (user + system), peak RSS (MB) and current RSS (KB) of a
/// process, from /proc.
pub(crate) fn process_stats(pid: u32) -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports CPU time in USER_HZ, which is 100 on every mainstream kernel.
    let cpu = ticks / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<f64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((cpu, kb("VmHWM:")? / 1024.0, kb("VmRSS:")?))
}

/// [`process_stats`] summed over `pids` (`None` if any cannot be read).
pub(crate) fn stats_of(pids: &[u32]) -> Option<(f64, f64, f64)> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .try_fold((0.0, 0.0, 0.0), |(cpu, peak, rss), pid| {
            let (c, p, r) = process_stats(*pid)?;
            Some((cpu + c, peak + p, rss + r))
        })
}

/// A hub or relay this run started; killed when dropped.
#[derive(Debug)]
pub(crate) struct Spawned {
    child: Child,
    pub url: String,
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Spawned {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lines of the hub's log at ERROR level so far.
    pub(crate) fn errors_logged(&self) -> u64 {
        std::fs::read_to_string(&self.log)
            .map(|log| log.lines().filter(|l| l.contains("ERROR")).count() as u64)
            .unwrap_or(0)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            tracing::warn!(error = %e, "could not stop the spawned hub");
        }
        if let Err(e) = self.child.wait() {
            tracing::warn!(error = %e, "could not reap the spawned hub");
        }
    }
}

/// Where spawned hubs keep their data: a SQLite file of their own, or one
/// Redis under a key prefix of this run.
#[derive(Debug, Clone, Copy)]
enum Storage<'a> {
    Sqlite,
    Redis { url: &'a str, prefix: &'a str },
}

/// Starts the hub (or the relay) on a free loopback port and waits for its address.
fn spawn_one(
    args: &BenchArgs,
    storage: Storage<'_>,
    workers: Option<u16>,
) -> anyhow::Result<Spawned> {
    let dir = tempfile::tempdir()?;
    let bin = match &args.hub_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?,
    };
    let log = dir.path().join("hub.log");
    let mut cmd = Command::new(bin);
    if args.relay_only {
        cmd.args(["bench", "relay", "--listen", "127.0.0.1:0"]);
    } else {
        let creds = dir.path().join("credentials.toml");
        std::fs::write(&creds, bench_credentials(args.distributors))?;
        cmd.args(["--listen", "127.0.0.1:0", "--rate-limit", "0", "--db"])
            .arg(dir.path().join("bench.db"))
            .arg("--credentials")
            .arg(&creds)
            .arg("--durability")
            .arg(args.durability.name());
        if let Storage::Redis { url, prefix } = storage {
            cmd.args(["--redis", url, "--redis-prefix", prefix]);
        }
        if let Some(workers) = workers {
            cmd.arg("--workers").arg(workers.to_string());
        }
    }
    let mut child = cmd
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout from the hub"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("listening on ") {
                // The receiver may have given up waiting; nothing to do then.
                let _gave_up = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(url) => url,
        Err(_) => {
            let _already_dead = child.kill();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            anyhow::bail!("the hub did not start within 30 s:\n{log}");
        }
    };
    Ok(Spawned {
        child,
        url,
        log,
        _dir: dir,
    })
}

/// The Redis a cluster run uses: its connection (for `INFO cpu`) and the
/// key prefix of this run, removed at the end.
struct RedisSide {
    connection: redis::aio::MultiplexedConnection,
    prefix: String,
}

impl RedisSide {
    async fn open(url: &str, prefix: String) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("--redis {url} is not a Redis URL: {e}"))?;
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| anyhow::anyhow!("Redis at {url} does not answer: {e}"))?;
        Ok(Self { connection, prefix })
    }

    /// Redis's own counters so far: CPU seconds (user + system, all its
    /// threads), commands processed, network bytes in and out.
    async fn sample(&mut self) -> Option<RedisSample> {
        let mut info = String::new();
        for section in ["cpu", "stats"] {
            let text: String = redis::cmd("INFO")
                .arg(section)
                .query_async(&mut self.connection)
                .await
                .ok()?;
            info.push_str(&text);
        }
        Some(RedisSample::of(&info))
    }

    /// Deletes every key of this run's prefix.
    async fn clean_up(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let mut cursor = 0u64;
        loop {
            let scanned: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.connection)
                .await;
            let Ok((next, keys)) = scanned else {
                tracing::warn!(prefix = %self.prefix, "could not list the run's Redis keys; they stay");
                return;
            };
            if !keys.is_empty() {
                let deleted: redis::RedisResult<u64> = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut self.connection)
                    .await;
                if let Err(e) = deleted {
                    tracing::warn!(prefix = %self.prefix, error = %e, "could not delete the run's Redis keys");
                    return;
                }
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

/// Redis's counters at one moment (from `INFO cpu` and `INFO stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RedisSample {
    /// `used_cpu_sys` + `used_cpu_user`, seconds.
    pub cpu: f64,
    /// `total_commands_processed`.
    pub commands: u64,
    /// `total_net_input_bytes`.
    pub bytes_in: u64,
    /// `total_net_output_bytes`.
    pub bytes_out: u64,
}

impl RedisSample {
    fn of(info: &str) -> Self {
        let mut sample = Self::default();
        for line in info.lines() {
            let Some((key, value)) = line.trim().split_once(':') else {
                continue;
            };
            let count = || value.parse::<u64>().unwrap_or(0);
            match key {
                "used_cpu_sys" | "used_cpu_user" => {
                    sample.cpu += value.parse::<f64>().unwrap_or(0.0)
                }
                "total_commands_processed" => sample.commands = count(),
                "total_net_input_bytes" => sample.bytes_in = count(),
                "total_net_output_bytes" => sample.bytes_out = count(),
                _ => {}
            }
        }
        sample
    }

    /// What happened between `before` and `self`.
    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            cpu: self.cpu - before.cpu,
            commands: self.commands.saturating_sub(before.commands),
            bytes_in: self.bytes_in.saturating_sub(before.bytes_in),
            bytes_out: self.bytes_out.saturating_sub(before.bytes_out),
        }
    }
}

/// The hubs (or the relay) under test.
pub(crate) struct Target {
    /// The first is where senders connect; receivers are spread over all.
    pub urls: Vec<String>,
    /// Pids whose CPU time and memory are summed (none for `--url` without `--pid`).
    pub pids: Vec<u32>,
    spawned: Vec<Spawned>,
    redis: Option<RedisSide>,
    /// `parcel-hub`, `relay`, `parcel-hub on Redis`, `2 parcel-hubs on Redis`.
    pub name: String,
    /// The `--workers` each spawned hub was given, if any.
    pub workers: Option<u16>,
}

/// The `--workers` each of `hubs` spawned hubs gets: what was `asked`;
/// else, with several hubs, the machine's `cores` shared between them (at
/// least one each), as hubs on machines of their own would have them; one
/// hub keeps the hub's own default (a thread per core).
pub(crate) fn workers_per_hub(asked: Option<u16>, hubs: usize, cores: usize) -> Option<u16> {
    asked.or_else(|| (hubs > 1).then(|| u16::try_from((cores / hubs).max(1)).unwrap_or(u16::MAX)))
}

impl Target {
    /// Starts what `args` asks for (or finds it at `--url`); `run_id` names
    /// the Redis key prefix of a cluster run.
    pub(crate) async fn start(args: &BenchArgs, run_id: &str) -> anyhow::Result<Self> {
        let hubs = usize::from(args.hubs.max(1));
        let on_redis = args.redis.as_deref().filter(|_| !args.relay_only);
        if hubs > 1 && on_redis.is_none() {
            anyhow::bail!("--hubs {hubs} needs --redis URL: the hubs share its queue and rooms");
        }
        let name = match (args.relay_only, on_redis, hubs) {
            (true, _, _) => "relay".to_owned(),
            (false, None, _) => "parcel-hub".to_owned(),
            (false, Some(_), 1) => "parcel-hub on Redis".to_owned(),
            (false, Some(_), n) => format!("{n} parcel-hubs on Redis"),
        };
        let prefix = format!("parcel-hub-bench-{run_id}");
        let mut redis = match on_redis {
            Some(url) => Some(RedisSide::open(url, prefix.clone()).await?),
            None => None,
        };
        if let Some(url) = &args.url {
            return Ok(Self {
                urls: vec![url.clone()],
                pids: args.pid.into_iter().collect(),
                spawned: Vec::new(),
                redis: redis.take(),
                name,
                workers: None,
            });
        }
        let storage = match on_redis {
            Some(url) => Storage::Redis {
                url,
                prefix: &prefix,
            },
            None => Storage::Sqlite,
        };
        let count = if on_redis.is_some() { hubs } else { 1 };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = if args.relay_only {
            None
        } else {
            workers_per_hub(args.hub_workers, count, cores)
        };
        let mut spawned = Vec::with_capacity(count);
        for _ in 0..count {
            spawned.push(spawn_one(args, storage, workers)?);
        }
        Ok(Self {
            urls: spawned.iter().map(|s| s.url.clone()).collect(),
            pids: spawned.iter().map(Spawned::pid).collect(),
            spawned,
            redis,
            name,
            workers,
        })
    }

    /// The hub receiving socket `i` of `rooms` rooms connects to: each
    /// room's sockets are spread over every hub, so a delivery to a room
    /// crosses hubs.
    pub(crate) fn url_for(&self, i: usize, rooms: usize) -> &str {
        &self.urls[(i / rooms.max(1)) % self.urls.len()]
    }

    /// The hubs' CPU seconds, peak RSS (MB) and RSS (KB), summed.
    pub(crate) fn stats(&self) -> Option<(f64, f64, f64)> {
        stats_of(&self.pids)
    }

    /// Redis's counters so far, in a cluster run.
    pub(crate) async fn redis_sample(&mut self) -> Option<RedisSample> {
        match &mut self.redis {
            Some(redis) => redis.sample().await,
            None => None,
        }
    }

    /// ERROR lines the spawned hubs logged, summed (`None` for `--url`).
    pub(crate) fn errors_logged(&self) -> Option<u64> {
        (!self.spawned.is_empty()).then(|| self.spawned.iter().map(Spawned::errors_logged).sum())
    }

    /// Stops the spawned hubs and removes the keys they left in Redis (a
    /// hub at `--url` keeps its own).
    pub(crate) async fn finish(mut self) {
        let ours = !self.spawned.is_empty();
        self.spawned.clear();
        if ours && let Some(redis) = &mut self.redis {
            redis.clean_up().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_sample_reads_cpu_commands_and_bytes() {
        let info = "# CPU\r\nused_cpu_sys:1.25\r\nused_cpu_user:2.5\r\nused_cpu_sys_children:9.0\r\nused_cpu_sys_main_thread:1.0\r\n# Stats\r\ntotal_connections_received:3\r\ntotal_commands_processed:120\r\ntotal_net_input_bytes:4000\r\ntotal_net_output_bytes:9000\r\n";
        let sample = RedisSample::of(info);
        assert!((sample.cpu - 3.75).abs() < 1e-9);
        assert_eq!(
            (sample.commands, sample.bytes_in, sample.bytes_out),
            (120, 4000, 9000)
        );
        let later = RedisSample {
            cpu: 4.0,
            commands: 150,
            bytes_in: 5000,
            bytes_out: 9500,
        };
        assert_eq!(later.since(sample).commands, 30);
    }

    #[test]
    fn hubs_sharing_a_machine_share_its_cores() {
        // One hub keeps the hub's default, a thread per core.
        assert_eq!(workers_per_hub(None, 1, 8), None);
        assert_eq!(workers_per_hub(None, 2, 8), Some(4));
        assert_eq!(workers_per_hub(None, 2, 2), Some(1));
        // More hubs than cores: one each, never none.
        assert_eq!(workers_per_hub(None, 3, 2), Some(1));
        // What was asked wins.
        assert_eq!(workers_per_hub(Some(3), 2, 8), Some(3));
        assert_eq!(workers_per_hub(Some(2), 1, 8), Some(2));
    }
}
