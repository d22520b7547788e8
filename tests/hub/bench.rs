//! The load generator builds with the tests and runs every workload at a
//! tiny size, against the hub and the bare relay. Numbers are printed by
//! `parcel-hub bench`, never asserted here; completeness is.

use clap::Parser;
use parcel_hub::bench::{BenchCommand, Report, Workload, run_workload};

/// Parses `parcel-hub bench <args>` the way the CLI does.
fn args(line: &str) -> (Workload, parcel_hub::bench::BenchArgs) {
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        bench: BenchCommand,
    }
    let hub = env!("CARGO_BIN_EXE_parcel-hub");
    let argv = format!("bench {line} --hub-bin {hub}");
    let cli = Cli::try_parse_from(argv.split_whitespace()).expect("valid bench arguments");
    match cli.bench {
        BenchCommand::W1(a) => (Workload::W1, a),
        BenchCommand::W2(a) => (Workload::W2, a),
        BenchCommand::W3(a) => (Workload::W3, a),
        BenchCommand::W4(a) => (Workload::W4, a),
        other => panic!("not a workload: {other:?}"),
    }
}

async fn run(line: &str) -> Report {
    let (workload, args) = args(line);
    let report = run_workload(workload, &args)
        .await
        .expect("the workload runs");
    println!("{}", report.table());
    report
}

fn assert_complete(r: &Report) {
    assert!(r.complete(), "{r:?}");
    assert!(r.expected > 0);
    assert_eq!(r.hub_errors_logged, Some(0), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_fan_out_delivers_everything_at_a_tiny_size() {
    let r = run("w1 --distributors 3 --sockets-per-distributor 4 --pickups 60 --window 10").await;
    assert_complete(&r);
    assert_eq!(r.expected, 60 * 4);
    assert_eq!(r.acks_ok, 60);
    assert!(r.hub_cpu_seconds.is_some() && r.hub_peak_rss_mb.is_some());
}

/// `--hub-workers` reaches the spawned hub as its `--workers`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_runs_on_a_hub_with_one_worker_thread() {
    let r =
        run("w1 --hub-workers 1 --distributors 2 --sockets-per-distributor 3 --pickups 40").await;
    assert_complete(&r);
    assert_eq!(r.hub_workers, Some(1));
    assert!(r.table().contains("workers        1"), "{}", r.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_runs_against_the_bare_relay_too() {
    let r = run("w1 --relay-only --distributors 2 --sockets-per-distributor 3 --pickups 40").await;
    assert_complete(&r);
    assert_eq!(r.target, "relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w2_paced_latency_runs_at_a_tiny_size() {
    let r = run("w2 --distributors 2 --sockets-per-distributor 3 --rate 50 --seconds 1").await;
    assert_complete(&r);
    assert_eq!(r.expected, 50 * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w3_footprint_opens_idle_sockets_and_reports_rss() {
    let r = run("w3 --idle 200").await;
    assert_complete(&r);
    assert!(r.rss_per_connection_kb.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w4_chat_fan_out_skips_the_sender() {
    let r = run("w4 --chat-sockets 20 --messages 30 --window 5").await;
    assert_complete(&r);
    assert_eq!(r.expected, 30 * 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_durability_runs_too() {
    let r = run("w1 --durability power --distributors 1 --sockets-per-distributor 2 --pickups 20")
        .await;
    assert_complete(&r);
    assert_eq!(r.durability.as_deref(), Some("power"));
}

/// `--versus-relay` measures the hub and the relay by turns and prints
/// both medians and their ratio (the number itself is not judged here).
#[test]
fn versus_relay_takes_turns_and_prints_the_ratio() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
        .args(
            "bench w1 --versus-relay --runs 2 --distributors 2 --sockets-per-distributor 3 --pickups 30"
                .split_whitespace(),
        )
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = |target: &str| stdout.matches(&format!("W1 against {target}\n")).count();
    // Two runs of each, plus the median table of each.
    assert_eq!((runs("parcel-hub"), runs("relay")), (3, 3), "{stdout}");
    assert!(
        stdout
            .contains("parcel-hub / relay (messages/s, medians of 2 runs each, taken by turns): "),
        "{stdout}"
    );
}

/// Keys a cluster run left under its prefix in Redis (none: the run removes them).
fn bench_keys_left(url: &str) -> Vec<String> {
    let mut redis = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("Redis answers");
    redis::cmd("KEYS")
        .arg("parcel-hub-bench-*")
        .query(&mut redis)
        .expect("KEYS answers")
}

/// `--redis` spawns the hub as a node of a cluster and reads Redis's own
/// CPU time beside the hub's; `--hubs 2` spreads each room's sockets over
/// two hubs, so every pickup crosses from the vendor's hub to the other,
/// and sums the hubs' CPU and memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(redis_tests),
    ignore = "set PARCEL_HUB_TEST_REDIS to run the cluster benches"
)]
async fn w1_and_w4_run_on_one_hub_and_on_two_hubs_behind_redis() {
    let url = crate::helpers::test_redis();
    let one = run(&format!(
        "w1 --redis {url} --distributors 3 --sockets-per-distributor 4 --pickups 60 --window 10"
    ))
    .await;
    assert_complete(&one);
    assert_eq!((one.target.as_str(), one.hubs), ("parcel-hub on Redis", 1));
    assert_eq!(one.hub_workers, None, "one hub keeps its default");
    assert!(one.redis_cpu_seconds.is_some(), "{one:?}");

    let two = run(&format!(
        "w1 --redis {url} --hubs 2 --distributors 3 --sockets-per-distributor 4 --pickups 60 --window 10"
    ))
    .await;
    assert_complete(&two);
    assert_eq!(
        (two.target.as_str(), two.hubs),
        ("2 parcel-hubs on Redis", 2)
    );
    assert_eq!(two.expected, 60 * 4);
    // The two hubs share this machine's cores, as on machines of their own.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let each = u16::try_from((cores / 2).max(1)).unwrap();
    assert_eq!(two.hub_workers, Some(each), "{two:?}");
    assert!(two.redis_cpu_seconds.is_some() && two.hub_cpu_us_per_delivery.is_some());
    let crossed = two.redis.as_ref().expect("what crossed Redis");
    assert!(
        crossed.commands_per_request >= 1.0 && crossed.bytes_out > 0,
        "{crossed:?}"
    );

    // W4 across two hubs: the chat's receivers alternate between the hubs.
    let chat = run(&format!(
        "w4 --redis {url} --hubs 2 --chat-sockets 20 --messages 30 --window 5"
    ))
    .await;
    assert_complete(&chat);
    assert_eq!(chat.expected, 30 * 19);
    // (Only this test runs cluster benches, so no other run's keys are there.)
    assert!(
        bench_keys_left(&url).is_empty(),
        "the runs remove their keys"
    );
}

/// Two hubs need somewhere to share their rooms: `--hubs 2` without
/// `--redis` is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_without_redis_are_refused() {
    let (workload, args) = args("w1 --hubs 2 --pickups 10");
    let e = run_workload(workload, &args)
        .await
        .expect_err("refused without --redis");
    assert!(e.to_string().contains("--hubs 2 needs --redis"), "{e}");
}

/// The relay's `/chat` sends the frames PROTOCOL.md asks of a chat server
/// (`users` to the newcomer, `user connected` and `user disconnected`
/// with a count to the others), so W4 compares the same wire traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_tells_who_is_here_like_the_hub() {
    use crate::helpers::{BOTH_TRANSPORTS, HubProcess, chat_with};
    use serde_json::json;
    let relay = HubProcess::start(["bench", "relay", "--listen", "127.0.0.1:0"]);
    let [websocket, polling] = BOTH_TRANSPORTS;
    let ana = chat_with(&relay.url, json!({ "name": "ana" }), websocket).await;
    assert_eq!(
        ana.expect("users").await,
        json!({ "users": ["ana"], "online": 1 })
    );
    let ben = chat_with(&relay.url, json!({ "name": "ben" }), polling).await;
    assert_eq!(
        ben.expect("users").await,
        json!({ "users": ["ana", "ben"], "online": 2 })
    );
    assert_eq!(
        ana.expect("user connected").await,
        json!({ "name": "ben", "online": 2 })
    );
    ben.expect_none("user connected").await;
    ben.disconnect().await;
    assert_eq!(
        ana.expect("user disconnected").await,
        json!({ "name": "ben", "online": 1 })
    );
}
