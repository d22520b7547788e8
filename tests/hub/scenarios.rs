//! Every scenario in `scenarios/` is replayed, so none can rot.

use std::sync::Arc;

use parcel_hub::Config;
use parcel_hub::app::LessonHubs;
use parcel_hub::scenario::runner::{Run, Target};
use parcel_hub::scenario::{self, Library, Scenario};

/// Private hubs as `parcel-hub scenario run` starts them.
fn in_process() -> Target {
    Target::InProcess(Arc::new(LessonHubs::new(&Config::default())))
}

async fn play(scenario: Scenario, target: Target) -> Result<usize, String> {
    let mut run = Run::start(scenario, target)
        .await
        .map_err(|e| e.to_string())?;
    let reports = run.run_all().await;
    run.finish().await;
    match reports.iter().find_map(|r| r.failure()) {
        Some(failure) => Err(failure),
        None => Ok(reports.len()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_file_plays_through() {
    let files = Library::BuiltIn.load_all().expect("scenarios load");
    assert!(
        files.len() >= 10,
        "the curriculum has at least 10 scenarios"
    );
    let runs = files.into_iter().map(|file| {
        tokio::spawn(async move {
            let steps = file.scenario.steps.len();
            let result = play(file.scenario, in_process()).await;
            (file.slug, steps, result)
        })
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
