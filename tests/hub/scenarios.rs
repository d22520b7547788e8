//! Every scenario in `scenarios/` is replayed, so none can rot.

use std::sync::Arc;

use parcel_hub::Config;
use parcel_hub::app::LessonHubs;
use parcel_hub::scenario::runner::{CleanUp, Run, Target};
use parcel_hub::scenario::{self, Library, Scenario};

/// Private hubs as `parcel-hub scenario run` starts them.
fn in_process() -> Target {
    Target::InProcess(Arc::new(LessonHubs::new(&Config::default())))
}

/// Private hubs as `parcel-hub --redis URL scenario run` starts them.
fn with_redis(url: &str) -> Target {
    let config = Config {
        redis: Some(url.to_owned()),
        ..Config::default()
    };
    Target::InProcess(Arc::new(LessonHubs::new(&config)))
}

async fn play(scenario: Scenario, target: Target) -> Result<usize, String> {
    play_and_clean_up(scenario, target)
        .await
        .map(|(steps, _)| steps)
}

/// Plays every step; answers how many ran and, against a hub at a URL,
/// what the run cleaned up there.
async fn play_and_clean_up(
    scenario: Scenario,
    target: Target,
) -> Result<(usize, Option<CleanUp>), String> {
    let mut run = Run::start(scenario, target)
        .await
        .map_err(|e| e.to_string())?;
    let reports = run.run_all().await;
    let clean_up = run.finish().await;
    match reports.iter().find_map(|r| r.failure()) {
        Some(failure) => Err(failure),
        None => Ok((reports.len(), clean_up)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_file_plays_through() {
    let files = Library::BuiltIn.load_all().expect("scenarios load");
    assert!(
        files.len() >= 16,
        "the curriculum has at least 16 scenarios"
    );
    let redis = std::env::var("PARCEL_HUB_TEST_REDIS").ok();
    let runs = files.into_iter().filter_map(|file| {
        let target = match (file.scenario.needs_redis(), &redis) {
            (false, _) => in_process(),
            (true, Some(url)) => with_redis(url),
            (true, None) => {
                eprintln!(
                    "skipping {}: it runs hubs that share a Redis; set PARCEL_HUB_TEST_REDIS=redis://127.0.0.1:6379",
                    file.slug
                );
                return None;
            }
        };
        Some(tokio::spawn(async move {
            let steps = file.scenario.steps.len();
            let result = play(file.scenario, target).await;
            (file.slug, steps, result)
        }))
    });
    let mut failures = Vec::new();
    for run in futures_util::future::join_all(runs).await {
        let (slug, steps, result) = run.expect("the scenario task did not panic");
        match result {
            Ok(played) => assert_eq!(played, steps, "{slug} played every step"),
            Err(failure) => failures.push(format!("{slug}: {failure}")),
        }
    }
    assert!(
        failures.is_empty(),
        "failing scenarios:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_wrong_expectation_fails_naming_the_step_actor_and_event() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hub/fixtures/wrong-expectation.toml");
    let file = scenario::load(&path).unwrap();
    let failure = play(file.scenario, in_process()).await.unwrap_err();
    assert!(failure.starts_with("step 2:"), "{failure}");
    assert!(
        failure.contains("alice receives \"chat message\""),
        "{failure}"
    );
    assert!(failure.contains("it received nothing"), "{failure}");
}

#[tokio::test]
async fn a_scenario_can_play_against_a_hub_at_a_url() {
    let app = crate::helpers::spawn_app().await;
    let file = Library::BuiltIn.find("6").unwrap();
    let steps = play(file.scenario, Target::Url(app.url())).await.unwrap();
    assert!(steps >= 3);
}

#[tokio::test]
async fn restart_is_refused_for_a_hub_at_a_url() {
    let app = crate::helpers::spawn_app().await;
    let file = Library::BuiltIn.find("12").unwrap();
    let failure = play(file.scenario, Target::Url(app.url()))
        .await
        .unwrap_err();
    assert!(
        failure.contains("restart needs the in-process hub"),
        "{failure}"
    );
}

/// The hub's non-empty queues, as the inspector's snapshot lists them.
async fn queues(app: &crate::helpers::TestApp) -> serde_json::Value {
    let snapshot: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/inspect", app.url()))
        .header("authorization", "Bearer demo-admin")
        .send()
        .await
        .expect("GET /api/inspect")
        .json()
        .await
        .expect("a JSON snapshot");
    snapshot["queues"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_run_can_be_repeated_and_leaves_no_queued_message_behind() {
    let app = crate::helpers::spawn_app().await;
    // Lessons that queue pickups and statuses, confirm some, leave others,
    // reuse one order id on purpose (10) and make lab orders (13).
    for number in ["8", "9", "10", "13", "14", "16"] {
        let file = Library::BuiltIn.find(number).unwrap();
        for round in 1..=2 {
            let (steps, clean_up) =
                play_and_clean_up(file.scenario.clone(), Target::Url(app.url()))
                    .await
                    .unwrap_or_else(|failure| panic!("{} run {round}: {failure}", file.slug));
            assert_eq!(
                steps,
                file.scenario.steps.len(),
                "{} run {round}",
                file.slug
            );
            let clean_up = clean_up.expect("a run at a URL cleans up");
            assert!(clean_up.problems.is_empty(), "{:?}", clean_up.problems);
            assert!(
                !clean_up.orders.is_empty() || clean_up.chat,
                "{} names what stays",
                file.slug
            );
        }
    }
    assert_eq!(
        queues(&app).await,
        serde_json::json!([]),
        "nothing stays queued"
    );
}

#[tokio::test]
async fn a_step_shows_the_event_before_what_it_caused_and_refusals_too() {
    let chat = Library::BuiltIn.find("1").unwrap();
    let mut run = Run::start(chat.scenario, in_process()).await.unwrap();
    let reports = run.run_all().await;
    run.finish().await;
    let said: Vec<(String, String)> = reports[2]
        .activity
        .iter()
        .map(|r| {
            let direction = serde_json::to_value(r.direction).unwrap();
            (direction.as_str().unwrap().to_owned(), r.event.clone())
        })
        .collect();
    let pair = |d: &str, e: &str| (d.to_owned(), e.to_owned());
    assert_eq!(
        said,
        [pair("in", "chat message"), pair("out", "chat message")],
        "cause, then effect"
    );

    let middleware = Library::BuiltIn.find("5").unwrap();
    let mut run = Run::start(middleware.scenario, in_process()).await.unwrap();
    let first = run.step().await.unwrap();
    run.finish().await;
    let refused = first
        .activity
        .iter()
        .find(|r| r.event == "connect")
        .expect("the refused connect is in the step's activity");
    assert_eq!(refused.outcome, Some("bad_auth"));
    assert_eq!(refused.reason.as_deref(), Some("distributorId is required"));
}

#[tokio::test]
async fn a_lesson_with_two_hubs_asks_for_a_redis_or_plays_across_hubs() {
    let file = Library::BuiltIn.find("15").unwrap();
    assert!(file.scenario.needs_redis());
    let without = play(file.scenario.clone(), in_process()).await.unwrap_err();
    assert!(without.contains("--redis redis://"), "{without}");
    let app = crate::helpers::spawn_app().await;
    let at_url = play(file.scenario.clone(), Target::Url(app.url()))
        .await
        .unwrap_err();
    assert!(at_url.contains("leave out --url"), "{at_url}");
    let Ok(url) = std::env::var("PARCEL_HUB_TEST_REDIS") else {
        eprintln!("skipping the two-hub run: set PARCEL_HUB_TEST_REDIS=redis://127.0.0.1:6379");
        return;
    };
    let steps = play(file.scenario.clone(), with_redis(&url)).await.unwrap();
    assert_eq!(steps, file.scenario.steps.len());
}
