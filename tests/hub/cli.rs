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
                format!("{}PORT{}", &line[..at], &line[port_end..])
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
