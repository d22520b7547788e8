//! `/learn`: the lesson pages and their session API (each session a real
//! scenario run with its own private hub).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use parcel_hub::scenario::Library;

const ROOMS: &str = "03-rooms-join-and-leave";

async fn request(method: reqwest::Method, url: String) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .request(method, url)
        .send()
        .await
        .expect("the hub answers");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

async fn start_session(app: &TestApp, slug: &str) -> (StatusCode, Value) {
    request(
        reqwest::Method::POST,
        format!("{}/learn/{slug}/session", app.url()),
    )
    .await
}

async fn step(app: &TestApp, session: &str) -> (StatusCode, Value) {
    request(
        reqwest::Method::POST,
        format!("{}/learn/session/{session}/step", app.url()),
    )
    .await
}

async fn close(app: &TestApp, session: &str) -> (StatusCode, Value) {
    request(
        reqwest::Method::DELETE,
        format!("{}/learn/session/{session}", app.url()),
    )
    .await
}

async fn page(app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = reqwest::get(format!("{}{path}", app.url()))
        .await
        .expect("GET");
    let status = response.status();
    (status, response.text().await.expect("a page"))
}

/// Starts a session and returns its id.
async fn session_of(app: &TestApp, slug: &str) -> String {
    let (status, started) = start_session(app, slug).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    started["session"]
        .as_str()
        .expect("a session id")
        .to_owned()
}

/// The events `actor` received in a step report.
fn received<'a>(report: &'a Value, actor: &str) -> Vec<&'a str> {
    report["actors"]
        .as_array()
        .expect("actors")
        .iter()
        .find(|a| a["actor"] == json!(actor))
        .unwrap_or_else(|| panic!("no pane for {actor}: {report}"))["received"]
        .as_array()
        .expect("received")
        .iter()
        .filter_map(|r| r["event"].as_str())
        .collect()
}

#[tokio::test]
async fn the_index_lists_every_scenario_file_with_a_link_to_its_stepper() {
    let app = spawn_app().await;
    let (status, html) = page(&app, "/learn").await;
    assert_eq!(status, StatusCode::OK);
    let files = Library::BuiltIn.load_all().unwrap();
    assert!(files.len() >= 10);
    for file in &files {
        assert!(
            html.contains(&format!(r#"href="/learn/{}""#, file.slug)),
            "no link to {}",
            file.slug
        );
    }
    assert_eq!(
        html.matches(r#"class="card link-card lesson""#).count(),
        files.len()
    );
    assert!(html.contains("scenario run N --step"), "no CLI equivalent");
    assert!(html.contains(r#"<a href="/learn" aria-current="page">Learn</a>"#));
    let (_, home) = page(&app, "/").await;
    assert!(
        home.contains(r#"href="/learn""#),
        "the home page links /learn"
    );
}

#[tokio::test]
async fn a_scenario_page_lists_its_steps_and_loads_no_socket_client() {
    let app = spawn_app().await;
    let (status, html) = page(&app, &format!("/learn/{ROOMS}")).await;
    assert_eq!(status, StatusCode::OK);
    let file = Library::BuiltIn.find(ROOMS).unwrap();
    assert_eq!(
        html.matches(r#"class="card step""#).count(),
        file.scenario.steps.len()
    );
    assert!(html.contains(&format!(r#"data-slug="{ROOMS}""#)));
    assert!(html.contains("Run this step"));
    assert!(html.contains(r#"<script src="/assets/learn.js"></script>"#));
    assert!(!html.contains("socket.io.min.js"), "{html}");
}

#[tokio::test]
async fn a_session_plays_every_step_and_every_check_passes() {
    let app = spawn_app().await;
    let file = Library::BuiltIn.find(ROOMS).unwrap();
    let total = file.scenario.steps.len();
    let (status, started) = start_session(&app, ROOMS).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_ok(&started);
    assert_eq!(started["scenario"], json!(ROOMS));
    assert_eq!(started["steps"].as_array().unwrap().len(), total);
    assert_eq!(
        started["steps"][0]["say"],
        json!(file.scenario.steps[0].say)
    );
    let session = started["session"].as_str().unwrap().to_owned();

    let mut reports = Vec::new();
    for n in 1..=total {
        let (status, report) = step(&app, &session).await;
        assert_eq!(status, StatusCode::OK, "step {n}: {report}");
        assert_ok(&report);
        assert_eq!(report["number"], json!(n));
        assert_eq!(report["passed"], json!(true), "step {n}: {report}");
        assert_eq!(report["stepsLeft"], json!(total - n));
        for check in report["checks"].as_array().unwrap() {
            assert_eq!(check["passed"], json!(true), "step {n}: {check}");
        }
        reports.push(report);
    }
    // Step 3: Bob joins the kitchen; only Alice, already in it, hears about it.
    assert_eq!(received(&reports[2], "alice"), ["user joined"]);
    assert!(received(&reports[2], "carol").is_empty());
    assert!(
        reports[2]["activity"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["event"] == json!("join") && r["namespace"] == json!("/chat")),
        "the step's activity shows the join: {}",
        reports[2]["activity"]
    );
    assert_eq!(reports[2]["ack"]["ok"], json!(true));

    let (status, past_the_end) = step(&app, &session).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&past_the_end, "scenario_finished");

    let (status, closed) = close(&app, &session).await;
    assert_eq!(status, StatusCode::OK);
    assert_ok(&closed);
    let (status, gone) = step(&app, &session).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&gone, "unknown_session");
}

#[tokio::test]
async fn unknown_scenarios_and_sessions_are_404s() {
    let app = spawn_app().await;
    let (status, html) = page(&app, "/learn/99-no-such-lesson").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Nothing here"), "{html}");
    // A slug is never a path, even when it names a real file.
    let (status, _) = page(&app, "/learn/..%2Fscenarios%2F03-rooms-join-and-leave.toml").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = start_session(&app, "99-no-such-lesson").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "unknown_scenario");
    let (status, body) = step(&app, "no-such-session").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "unknown_session");
    let (status, body) = close(&app, "no-such-session").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "unknown_session");
}

#[tokio::test]
async fn past_the_cap_the_least_recently_used_session_is_closed() {
    let app = spawn_app_with(|config| config.learn_sessions = 2).await;
    let first = session_of(&app, ROOMS).await;
    let second = session_of(&app, ROOMS).await;
    // Using the first makes the second the least recently used.
    let (status, report) = step(&app, &first).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let third = session_of(&app, ROOMS).await;

    let (status, body) = step(&app, &second).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "unknown_session");
    for (session, number) in [(&first, 2), (&third, 1)] {
        let (status, report) = step(&app, session).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["number"], json!(number));
    }
}

#[tokio::test]
async fn with_no_lesson_sessions_allowed_a_start_is_refused_with_503() {
    let app = spawn_app_with(|config| config.learn_sessions = 0).await;
    let response = reqwest::Client::new()
        .post(format!("{}/learn/{ROOMS}/session", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body: Value = response.json().await.unwrap();
    assert_error(&body, "too_many_sessions");
}

#[tokio::test]
async fn a_lesson_with_two_hubs_needs_a_hub_started_with_redis() {
    let app = spawn_app().await;
    let slug = "15-two-hubs-one-redis";
    let (status, body) = start_session(&app, slug).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], json!("needs_redis"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--redis"),
        "{body}"
    );
    let (_, index) = page(&app, "/learn").await;
    assert!(index.contains("Needs a hub started with <code>--redis</code>"));
    let (status, stepper) = page(&app, &format!("/learn/{slug}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(stepper.contains("id=\"needs-redis\""));
}

/// In the main hub's log, every line a lesson hub writes about its sockets
/// (connected, events in and out, disconnected) carries `lesson{run=..}`,
/// not only its start-up and shutdown lines.
#[tokio::test]
async fn a_lesson_hubs_socket_lines_are_tagged_in_the_main_log() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hub.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_parcel-hub"))
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("hub.db"))
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start parcel-hub");
    // Read stdout to its end on a thread of its own: a hub whose stdout is
    // closed stops when it next prints.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _test_ended = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the hub prints its address");
    let client = reqwest::Client::new();
    let started: Value = client
        .post(format!("{url}/learn/{ROOMS}/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = started["session"]
        .as_str()
        .expect("a session id")
        .to_owned();
    for _ in 0..3 {
        let stepped = client
            .post(format!("{url}/learn/session/{session}/step"))
            .send()
            .await
            .unwrap();
        assert!(stepped.status().is_success());
    }
    let closed = client
        .delete(format!("{url}/learn/session/{session}"))
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success());
    let _ = child.kill();
    let _ = child.wait();

    let text = std::fs::read_to_string(&log).unwrap();
    let about_sockets: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains(" connected ") || l.contains(" event in") || l.contains(" event out")
        })
        .collect();
    assert!(
        about_sockets.iter().any(|l| l.contains(" connected ")),
        "{text}"
    );
    assert!(
        about_sockets.iter().any(|l| l.contains(" event in")),
        "{text}"
    );
    for line in &about_sockets {
        assert!(
            line.contains("lesson{run="),
            "an untagged lesson line: {line}\n{text}"
        );
    }
}

/// A client bound to its own loopback address: another learner.
fn learner(number: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, number]))
        .build()
        .unwrap()
}

#[tokio::test]
async fn concurrent_starts_never_pass_the_cap() {
    let app = spawn_app_with(|config| config.learn_sessions = 2).await;
    let starts = (10..30).map(|n| {
        let url = format!("{}/learn/{ROOMS}/session", app.url());
        async move { learner(n).post(url).send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(starts).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!((created, refused), (2, 18), "{statuses:?}");
}

#[tokio::test]
async fn nobody_evicts_another_learners_session() {
    let app = spawn_app_with(|config| config.learn_sessions = 2).await;
    let start = |n: u8| {
        let url = format!("{}/learn/{ROOMS}/session", app.url());
        async move {
            let response = learner(n).post(url).send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, alice) = start(2).await;
    assert_eq!(status, StatusCode::CREATED, "{alice}");
    for _ in 0..40 {
        let (status, body) = start(3).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, report) = step(&app, alice["session"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
}
