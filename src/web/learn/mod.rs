//! `/learn`: the scenarios as step-by-step lessons in the browser.
//!
//! The index lists the scenario files; a scenario's page shows its steps,
//! and its script (`assets/learn.js`) plays them one click at a time
//! through the session API in [`api`]. Each session is the same
//! [`Run`](crate::scenario::runner::Run) the CLI uses, with its own private
//! hub (started by the [`Launcher`] the app gives), kept in [`sessions`].
//! With `--scenarios DIR` the files are read on every request, so an
//! edited lesson shows on the next reload.

pub(crate) mod api;
pub(crate) mod sessions;

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use socketioxide::adapter::Adapter;

use super::WebState;
use super::pages::{Layout, not_found_page, render};
use crate::scenario::runner::Launcher;
use crate::scenario::{Library, ScenarioError, ScenarioFile};
use sessions::Sessions;

/// What `/learn` needs: where the lessons are, how to start their hubs,
/// and the ones being played.
#[derive(Debug, Clone)]
pub(crate) struct Learn {
    pub library: Arc<Library>,
    pub launcher: Arc<dyn Launcher>,
    pub sessions: Arc<Sessions>,
}

impl Learn {
    /// Lessons from `library` on hubs from `launcher`, at most
    /// `max_sessions` played at once.
    pub(crate) fn new(library: Library, launcher: Arc<dyn Launcher>, max_sessions: usize) -> Self {
        Self {
            library: Arc::new(library),
            launcher,
            sessions: Arc::new(Sessions::new(max_sessions)),
        }
    }

    /// Every scenario, by number.
    pub(crate) fn all(&self) -> Result<Vec<ScenarioFile>, ScenarioError> {
        self.library.load_all()
    }

    /// The scenario whose file stem is `slug` (never a path: the slug comes from a URL).
    pub(crate) fn find(&self, slug: &str) -> Result<Option<ScenarioFile>, ScenarioError> {
        Ok(self.all()?.into_iter().find(|f| f.slug == slug))
    }
}

/// A scenario in the index.
#[derive(Debug)]
pub(crate) struct ScenarioEntry {
    pub number: u32,
    pub slug: String,
    pub title: String,
    pub teaches: String,
    pub reading: Option<String>,
    pub steps: usize,
    /// The namespaces its actors use, in order of first use.
    pub namespaces: Vec<String>,
    /// It runs several hubs sharing a Redis...
    pub needs_redis: bool,
    /// ...and this hub has none to give it (it was started without `--redis`).
    pub redis_missing: bool,
}

impl From<&ScenarioFile> for ScenarioEntry {
    fn from(file: &ScenarioFile) -> Self {
        let mut namespaces: Vec<String> = Vec::new();
        for actor in &file.scenario.actors {
            if !namespaces.contains(&actor.namespace) {
                namespaces.push(actor.namespace.clone());
            }
        }
        Self {
            number: file.number,
            slug: file.slug.clone(),
            title: file.scenario.title.clone(),
            teaches: file.scenario.teaches.clone(),
            reading: file.scenario.reading.clone(),
            steps: file.scenario.steps.len(),
            namespaces,
            needs_redis: file.scenario.needs_redis(),
            redis_missing: file.scenario.needs_redis(),
        }
    }
}

impl ScenarioEntry {
    /// The entry as this hub can play it: `redis` says whether it has a
    /// Redis for lessons with several hubs.
    fn on(mut self, redis: bool) -> Self {
        self.redis_missing = self.needs_redis && !redis;
        self
    }
}

/// `/learn`: every scenario, how to use them, the CLI equivalent.
#[derive(Debug, Template)]
#[template(path = "learn_index.html")]
pub(crate) struct LearnIndexPage {
    pub layout: Layout,
    pub scenarios: Vec<ScenarioEntry>,
    /// Set when the scenario files could not be read (the log says why).
    pub unreadable: bool,
}

/// A step as listed before it runs.
#[derive(Debug)]
pub(crate) struct StepEntry {
    pub say: String,
    pub ask: Option<String>,
}

/// An actor of the scenario.
#[derive(Debug)]
pub(crate) struct ActorEntry {
    pub name: String,
    pub namespace: String,
}

/// A neighbouring scenario, for the links at the end.
#[derive(Debug)]
pub(crate) struct Neighbour {
    pub slug: String,
    pub title: String,
}

/// `/learn/{slug}`: the stepper.
#[derive(Debug, Template)]
#[template(path = "learn_scenario.html")]
pub(crate) struct LearnScenarioPage {
    pub layout: Layout,
    pub scenario: ScenarioEntry,
    pub steps: Vec<StepEntry>,
    pub actors: Vec<ActorEntry>,
    pub previous: Option<Neighbour>,
    pub next: Option<Neighbour>,
}

/// `GET /learn`.
pub(crate) async fn index<A: Adapter>(State(state): State<WebState<A>>) -> Response {
    let (scenarios, unreadable) = match state.learn.all() {
        Ok(files) => {
            let redis = state.learn.launcher.redis().is_some();
            let entries = files.iter().map(|f| ScenarioEntry::from(f).on(redis));
            (entries.collect(), false)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot list the scenarios for /learn");
            (Vec::new(), true)
        }
    };
    let page = LearnIndexPage {
        layout: Layout::new(&state, "/learn", None),
        scenarios,
        unreadable,
    };
    let status = if unreadable {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    render(&page, &state.client, status)
}

/// `GET /learn/{slug}`; an unknown slug gets the 404 page.
pub(crate) async fn scenario<A: Adapter>(
    State(state): State<WebState<A>>,
    OriginalUri(uri): OriginalUri,
    slug: Result<UrlPath<String>, PathRejection>,
) -> Response {
    let not_found = |state: &WebState<A>| not_found_page(state, uri.path());
    let Ok(UrlPath(slug)) = slug else {
        return not_found(&state);
    };
    let Ok(files) = state.learn.all() else {
        // The index says the files are unreadable (and logs why).
        return index(State(state)).await;
    };
    let Some(at) = files.iter().position(|f| f.slug == slug) else {
        return not_found(&state);
    };
    let neighbour = |file: &ScenarioFile| Neighbour {
        slug: file.slug.clone(),
        title: file.scenario.title.clone(),
    };
    let file = &files[at];
    let page = LearnScenarioPage {
        layout: Layout::without_socket(&state, "/learn", "learn.js"),
        scenario: ScenarioEntry::from(file).on(state.learn.launcher.redis().is_some()),
        steps: file
            .scenario
            .steps
            .iter()
            .map(|s| StepEntry {
                say: s.say.clone(),
                ask: s.ask.clone(),
            })
            .collect(),
        actors: file
            .scenario
            .actors
            .iter()
            .map(|a| ActorEntry {
                name: a.name.clone(),
                namespace: a.namespace.clone(),
            })
            .collect(),
        previous: at.checked_sub(1).and_then(|i| files.get(i)).map(neighbour),
        next: files.get(at + 1).map(neighbour),
    };
    render(&page, &state.client, StatusCode::OK)
}
