//! The command line says what it takes: value shapes, defaults, every
//! variable, examples; each bench workload lists its own options; shell
//! completions come out.

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
        .args(args)
        .output()
        .expect("run parcel-hub");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn help_shows_value_shapes_defaults_variables_and_examples() {
    let help = run(&["--help"]);
    for shape in [
        "--listen <ADDR:PORT>",
        "--db <PATH>",
        "--credentials <FILE>",
        "--durability <MODE>",
        "--max-payload <BYTES>",
        "--redis <URL>",
        "--log-format <FORMAT>",
        "--cors-origin <ORIGIN>",
        "--retain-delivered <DAYS>",
        "[default: 127.0.0.1:3000]",
        "Examples:",
        "RUST_LOG",
        "NO_COLOR",
    ] {
        assert!(help.contains(shape), "--help lacks {shape:?}");
    }
    for variable in [
        "LISTEN",
        "DB",
        "CREDENTIALS",
        "DURABILITY",
        "MAX_PAYLOAD",
        "RATE_LIMIT",
        "RATE_BURST",
        "SOCKET_BUFFER",
        "CLIENT_JS",
        "REDIS",
        "REDIS_PREFIX",
        "SCENARIOS",
        "LEARN_SESSIONS",
        "LOG_FORMAT",
        "METRICS_PUBLIC",
        "CORS_ORIGIN",
        "DEMO",
        "RETAIN_DELIVERED",
    ] {
        let named = format!("[env: PARCEL_HUB_{variable}=");
        assert!(help.contains(&named), "--help lacks {named}");
    }
    assert!(
        !help.contains("<LISTEN>"),
        "field names are not value shapes"
    );
    let run_help = run(&["scenario", "run", "--help"]);
    assert!(
        run_help.contains("<SCENARIO>") && run_help.contains("its number"),
        "{run_help}"
    );
    let backup_help = run(&["backup", "--help"]);
    assert!(
        backup_help.contains("<FILE>") && backup_help.contains("restore"),
        "{backup_help}"
    );
}

#[test]
fn each_bench_workload_lists_only_its_own_options() {
    let options = |workload: &str| run(&["bench", workload, "--help"]);
    let w1 = options("w1");
    for own in [
        "--pickups <N>",
        "--window <N>",
        "--sockets-per-distributor <N>",
        "--runs <N>",
    ] {
        assert!(w1.contains(own), "w1 lacks {own}");
    }
    assert!(!w1.contains("--idle") && !w1.contains("--rate ") && !w1.contains("--chat-sockets"));
    let w2 = options("w2");
    assert!(w2.contains("--rate <N>") && w2.contains("--seconds <SECONDS>"));
    assert!(!w2.contains("--pickups") && !w2.contains("--window"));
    let w3 = options("w3");
    assert!(w3.contains("--idle <N>") && !w3.contains("--pickups") && !w3.contains("--messages"));
    let w4 = options("w4");
    assert!(w4.contains("--chat-sockets <N>") && w4.contains("--window <N>"));
    assert!(!w4.contains("--distributors") && !w4.contains("--pickups"));
}

#[test]
fn completions_come_out_for_each_shell() {
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("_parcel-hub()") || bash.contains("_parcel__hub()"),
        "{bash}"
    );
    for word in [
        "--retain-delivered",
        "--cors-origin",
        "backup",
        "completions",
        "scenario",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let zsh = run(&["completions", "zsh"]);
    assert!(
        zsh.starts_with("#compdef parcel-hub"),
        "{}",
        &zsh[..zsh.len().min(200)]
    );
    let fish = run(&["completions", "fish"]);
    assert!(fish.contains("complete -c parcel-hub"));
}

#[test]
fn a_workload_keeps_the_defaults_of_the_options_it_does_not_take() {
    use clap::Parser;
    use parcel_hub::bench::BenchCommand;
    use parcel_hub::cli::{Cli, Command};
    let parse = |line: &str| match Cli::try_parse_from(line.split_whitespace()) {
        Ok(Cli {
            command: Some(Command::Bench { command }),
            ..
        }) => command,
        other => panic!("{line}: {other:?}"),
    };
    let BenchCommand::W3(w3) = parse("parcel-hub bench w3 --idle 5 --distributors 2") else {
        panic!("not w3");
    };
    assert_eq!((w3.idle, w3.distributors), (5, 2));
    assert_eq!((w3.pickups, w3.rate, w3.chat_sockets), (10_000, 500, 1_000));
    let BenchCommand::W1(w1) = parse("parcel-hub bench w1 --pickups 7") else {
        panic!("not w1");
    };
    assert_eq!(
        (w1.pickups, w1.window, w1.seconds, w1.idle),
        (7, 100, 20, 10_000)
    );
    assert!(Cli::try_parse_from(["parcel-hub", "bench", "w1", "--idle", "3"]).is_err());
}

/// `scenario run N` as a learner sees it, with the private hub's port
/// (different on every run) written as PORT.
fn lesson_output(number: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
        .args(["scenario", "run", number])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run parcel-hub");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(out.status.success(), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.is_empty(),
        "no hub log line without --verbose: {stderr}"
    );
    stdout
        .lines()
        .map(|line| match line.find("127.0.0.1:") {
            Some(at) => {
                let port_end = line[at + 10..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(line.len(), |n| at + 10 + n);
                format!("{}127.0.0.1:PORT{}", &line[..at], &line[port_end..])
            }
            None => line.to_owned(),
        })
        .collect()
}

fn assert_lines(number: &str, expected: &str) {
    let got = lesson_output(number);
    let want: Vec<&str> = expected.lines().collect();
    for (i, (got, want)) in got.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "line {} of lesson {number}", i + 1);
    }
    assert_eq!(
        got.len(),
        want.len(),
        "lines of lesson {number}:\n{}",
        got.join("\n")
    );
}

#[test]
fn the_offline_catch_up_lesson_reads_line_by_line() {
    assert_lines(
        "8",
        r#"An offline distributor catches up with getAll and received (08-offline-catch-up)
Every notice waits in a durable queue until the recipient confirms it; getAll returns what is still queued, received removes one.
From the readings: Message queues: nothing a vendor was told ok about is lost, even if the recipient is offline.
hub: http://127.0.0.1:PORT (its log lines are hidden; --verbose shows them)

── Step 1/6 ──
Only the shop is online; north-hub's driver is offline.
▶ connect shop
  shop  nothing
  north nothing (offline)

── Step 2/6 ──
The shop asks north-hub for a pickup.
? The ack says ok. Where is the pickup now?
▶ shop emits "pickup" {"address":"Spokane, WA","customer":"Lee Chen","distributorId":"north-hub","orderId":"o-8001"} (with ack)
  ack: ok, duplicate: false, order o-8001 (pending)
  shop  nothing
  north nothing (offline)
  ✔ the ack contains {"ok":true}
  Why: In north-hub's queue, stored before the ack was sent. Nobody was in the room to receive it live.

── Step 3/6 ──
The north-hub driver comes online.
? Will the pickup arrive by itself?
▶ connect north
  shop  nothing
  north nothing
  ✔ north receives nothing
  Why: No: the hub pushes only new notices. A client catches up by asking.

── Step 4/6 ──
The driver asks for everything queued.
? What will the list hold?
▶ north asks for everything queued (getAll)
  ack: ok, messages: [pickup o-8001 (pending)]
  shop  nothing
  north ⇐ getAll lists "pickup" order o-8001 (pending)
  ✔ the ack contains {"messages":[{"event":"pickup","order":{"orderId":"o-8001"}}],"ok":true}
  Why: The pickup o-8001 waited in north-hub's queue while the driver was offline; getAll lists it, oldest first, with its messageId. It is listed, not removed: it stays queued until the driver says received.

── Step 5/6 ──
The driver has handled it and confirms.
▶ north confirms the last "pickup" it got (received)
  ack: ok, removed: true
  shop  nothing
  north nothing
  ✔ the ack contains {"ok":true,"removed":true}
  Why: received names the messageId getAll listed; removed: true says the hub took it off the queue.

── Step 6/6 ──
The driver asks again.
▶ north asks for everything queued (getAll)
  ack: ok, messages: []
  shop  nothing
  north nothing
  ✔ the ack contains {"messages":[],"ok":true}
  Why: Confirmed messages are gone for every socket of north-hub: the queue belongs to the identity, not the connection.

PASS 08-offline-catch-up: 6/6 steps"#,
    );
}

#[test]
fn the_retries_lesson_shows_duplicate_true_and_the_error_line_by_line() {
    assert_lines(
        "10",
        r#"Retries and duplicates: idempotent pickups (10-retries-and-duplicates)
A vendor whose ack got lost retries with the same orderId; the hub returns the stored order with duplicate: true and queues nothing new.
hub: http://127.0.0.1:PORT (its log lines are hidden; --verbose shows them)

── Step 1/6 ──
The shop and north-hub are online.
▶ connect shop, north
  shop  nothing
  north nothing

── Step 2/6 ──
The shop sends a pickup.
▶ shop emits "pickup" {"address":"Seattle, WA","customer":"Jamie Doe","distributorId":"north-hub","orderId":"o-1001"} (with ack)
  ack: ok, duplicate: false, order o-1001 (pending)
  shop  nothing
  north ← "pickup" order o-1001 (pending)
  ✔ the ack contains {"duplicate":false,"ok":true}
  ✔ north receives "pickup" x1

── Step 3/6 ──
The shop's network hiccups; not sure the pickup went through, it sends exactly the same pickup again.
? Will north-hub get a second pickup?
▶ shop emits "pickup" {"address":"Seattle, WA","customer":"Jamie Doe","distributorId":"north-hub","orderId":"o-1001"} (with ack)
  ack: ok, duplicate: true, order o-1001 (pending)
  shop  nothing
  north nothing
  ✔ the ack contains {"duplicate":true,"ok":true,"order":{"orderId":"o-1001"}}
  ✔ north receives nothing
  Why: No: the orderId is the idempotency key. The retry is answered with the stored order and nothing is queued.

── Step 4/6 ──
The shop reuses the same orderId for a different address.
▶ shop emits "pickup" {"address":"Portland, OR","customer":"Jamie Doe","distributorId":"north-hub","orderId":"o-1001"} (with ack)
  ack: error invalid_payload: orderId o-1001 was already used for a pickup with other details
  shop  nothing
  north nothing
  ✔ the ack contains {"error":{"code":"invalid_payload"},"ok":false}
  Why: Same key, other details: that is a mistake, not a retry, and the hub says so.

── Step 5/6 ──
north-hub marks it in transit, twice (a double tap).
▶ north emits "in-transit" {"orderId":"o-1001","vendorId":"acme-widgets"} (with ack)
  ack: ok, duplicate: false, order o-1001 (in-transit)
  shop  ← "in-transit" order o-1001 (in-transit)
  north nothing
  ✔ the ack contains {"duplicate":false,"ok":true}
  ✔ shop receives "in-transit" x1
  Why: The first tap moves the order and queues the news for its vendor, who gets it live.

── Step 6/6 ──
The second tap.
? Does the shop hear about it twice?
▶ north emits "in-transit" {"orderId":"o-1001","vendorId":"acme-widgets"} (with ack)
  ack: ok, duplicate: true, order o-1001 (in-transit)
  shop  nothing
  north nothing
  ✔ the ack contains {"duplicate":true,"ok":true}
  ✔ shop receives nothing
  Why: No: the order is already in transit, so the step is a duplicate (duplicate: true) and nothing new is queued or sent. Statuses are idempotent too, so a driver may retry safely.

PASS 10-retries-and-duplicates: 6/6 steps"#,
    );
}

#[test]
fn a_lesson_that_needs_redis_says_how_to_give_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
        .args(["scenario", "run", "15"])
        .env_remove("PARCEL_HUB_REDIS")
        .output()
        .expect("run parcel-hub");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("parcel-hub --redis redis://127.0.0.1:6379 scenario run 15"),
        "{stderr}"
    );
    let list = run(&["scenario", "list"]);
    assert!(list.contains("needs Redis"), "{list}");
}
