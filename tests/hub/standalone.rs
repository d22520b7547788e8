//! The binary stands alone: copied into an empty folder, with nothing of
//! the source tree around it, it serves every page and plays every lesson.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// The built binary, copied into a fresh empty folder.
///
/// `cp` copies it in a process of its own: a copy written by this process
/// would hold the file open for writing while other tests' threads fork
/// (each child keeps the descriptor until it execs), and running the copy
/// in that moment fails with "Text file busy" (ETXTBSY).
fn copied_binary() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("parcel-hub");
    let copied = std::process::Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_parcel-hub"))
        .arg(&copy)
        .status()
        .expect("cp runs");
    assert!(copied.success(), "cp could not copy the binary");
    (dir, copy)
}

async fn get(url: &str) -> (StatusCode, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn post(url: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new().post(url).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

/// Plays every step of the lesson `slug` on `hub`; the steps that ran.
async fn play_lesson(hub: &str, slug: &str) -> Result<usize, String> {
    let (status, started) = post(&format!("{hub}/learn/{slug}/session")).await;
    if status != StatusCode::CREATED {
        return Err(format!("{slug}: {status} {started}"));
    }
    let session = started["session"].as_str().unwrap().to_owned();
    let steps = started["steps"].as_array().unwrap().len();
    for n in 1..=steps {
        let (status, report) = post(&format!("{hub}/learn/session/{session}/step")).await;
        if status != StatusCode::OK || report["passed"] != json!(true) {
            return Err(format!("{slug} step {n}: {status} {report}"));
        }
    }
    Ok(steps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_binary_serves_every_page_and_every_lesson() {
    let (dir, binary) = copied_binary();
    let hub = HubProcess::start_binary(&binary, Some(dir.path()), ["--db", "hub.db"]);
    for path in [
        "/",
        "/vendor",
        "/distributor",
        "/chat",
        "/inspector",
        "/learn",
    ] {
        let (status, html) = get(&format!("{}{path}", hub.url)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        assert!(html.contains("</html>"), "{path} is a whole page");
    }
    for asset in [
        "style.css",
        "common.js",
        "vendor.js",
        "learn.js",
        "favicon.svg",
    ] {
        let (status, _) = get(&format!("{}/assets/{asset}", hub.url)).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
    }
    let (_, index) = get(&format!("{}/learn", hub.url)).await;
    let slugs: Vec<String> = index
        .split(r#"href="/learn/"#)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    assert!(
        slugs.len() >= 12,
        "every built-in lesson is listed: {slugs:?}"
    );
    let lessons = slugs.iter().map(|slug| {
        let (hub, slug) = (hub.url.clone(), slug.clone());
        tokio::spawn(async move {
            let (status, page) = get(&format!("{hub}/learn/{slug}")).await;
            assert_eq!(status, StatusCode::OK, "{slug}: {page}");
            if page.contains(r#"id="needs-redis""#) {
                // Two hubs sharing a Redis, and this hub has none: it says so.
                let (status, refused) = post(&format!("{hub}/learn/{slug}/session")).await;
                assert_eq!(status, StatusCode::CONFLICT, "{slug}: {refused}");
                assert_eq!(refused["error"]["code"], json!("needs_redis"));
                return Ok(0);
            }
            play_lesson(&hub, &slug).await
        })
    });
    let mut failures = Vec::new();
    for result in futures_util::future::join_all(lessons).await {
        if let Err(why) = result.unwrap() {
            failures.push(why);
        }
    }
    assert!(
        failures.is_empty(),
        "lessons failed:\n{}",
        failures.join("\n")
    );
    assert!(
        dir.path().join("hub.db").exists(),
        "the database is in its folder"
    );
}

#[test]
fn a_copied_binary_lists_its_lessons_and_names_no_source_path() {
    let (dir, binary) = copied_binary();
    let list = std::process::Command::new(&binary)
        .args(["scenario", "list"])
        .current_dir(dir.path())
        .env_remove("PARCEL_HUB_SCENARIOS")
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("01-chat-proof-of-life"), "{text}");
    let help = std::process::Command::new(&binary)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).display().to_string();
    assert!(
        !help.contains(&source),
        "--help names the source tree: {help}"
    );
}

/// A hub whose stdout is closed (a supervisor that stopped reading) keeps
/// serving: the start-up message is not worth a crash.
#[tokio::test]
async fn a_hub_keeps_serving_when_its_stdout_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was free a moment ago: the hub cannot tell its own here.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--db"])
        .arg(dir.path().join("hub.db"))
        .stdout(writer)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start parcel-hub");
    let url = format!("http://127.0.0.1:{port}");
    let mut served = 0;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(format!("{url}/api/health/live")).await
            && response.status() == StatusCode::OK
        {
            served += 1;
            if served == 3 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(running, "the hub stopped when it could not print");
    assert_eq!(served, 3, "the hub answered");
}

/// `--workers N` sets how many threads run the hub's sockets and handlers
/// (hubs that share a machine each take their share of its cores); 0 is
/// refused with the reason.
#[tokio::test]
async fn workers_sets_the_hubs_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let hub = HubProcess::start(["--workers", "1", "--db", db.to_str().unwrap()]);
    let (status, body) = get(&format!("{}/api/health/live", hub.url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let metrics = scrape_metrics(&hub.url).await;
    assert!(
        metrics.lines().any(|l| l == "parcel_hub_worker_threads 1"),
        "{metrics}"
    );

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
        .args(["--workers", "0"])
        .output()
        .expect("run parcel-hub");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("'--workers <N>'") && stderr.contains("not in 1..=1024"),
        "{stderr}"
    );
}
