//! The session API behind the `/learn` stepper.
//!
//! - `POST /learn/{slug}/session` starts a lesson: a [`Run`] with its own
//!   private hub on a fresh database; answers `201 { ok, session, steps }`.
//! - `POST /learn/session/{id}/step` runs the next step; answers the
//!   [`StepReport`] with `ok: true`, `passed` and `stepsLeft`. After the
//!   last step the lesson's hub stops; one more step is a 409.
//! - `DELETE /learn/session/{id}` stops the lesson's hub.
//!
//! Every failure is one [`LearnError`]: one status, one error envelope.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use serde_json::Value;
use socketioxide::adapter::Adapter;

use super::sessions::Full;
use crate::protocol::{error_envelope, ok_envelope};
use crate::scenario::ScenarioError;
use crate::scenario::runner::{Run, StepReport, Target};
use crate::web::WebState;

/// Why a `/learn` API request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LearnError {
    /// No scenario file has this slug (404).
    #[error("there is no scenario with this name")]
    UnknownScenario,
    /// No open session has this id: never was, closed, idle too long or evicted (404).
    #[error("there is no such lesson session (it may have been closed); start over")]
    UnknownSession,
    /// Every step has run (409).
    #[error("every step of this scenario has run; start over for a fresh hub")]
    Finished,
    /// Too many lessons at once, all of them busy (503).
    #[error(transparent)]
    Full(#[from] Full),
    /// The scenario files could not be read (500, logged).
    #[error("cannot read the scenarios: {0}")]
    Scenarios(#[from] ScenarioError),
    /// The lesson runs several hubs sharing a Redis, and this hub has none (409).
    #[error(
        "this lesson runs two hubs that share one Redis: start this hub with --redis to play it here, \
         or in a terminal: parcel-hub --redis redis://127.0.0.1:6379 scenario run {0}"
    )]
    NeedsRedis(u32),
    /// The lesson's private hub did not start (500, logged).
    #[error("the lesson's hub did not start: {0:#}")]
    HubStart(anyhow::Error),
}

impl LearnError {
    fn status(&self) -> StatusCode {
        match self {
            LearnError::UnknownScenario | LearnError::UnknownSession => StatusCode::NOT_FOUND,
            LearnError::Finished | LearnError::NeedsRedis(_) => StatusCode::CONFLICT,
            LearnError::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
            LearnError::Scenarios(_) | LearnError::HubStart(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            LearnError::UnknownScenario => "unknown_scenario",
            LearnError::UnknownSession => "unknown_session",
            LearnError::Finished => "scenario_finished",
            LearnError::NeedsRedis(_) => "needs_redis",
            LearnError::Full(_) => "too_many_sessions",
            LearnError::Scenarios(_) | LearnError::HubStart(_) => "internal",
        }
    }
}

impl IntoResponse for LearnError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "a /learn request failed");
            "the hub could not start this lesson; its log says why".to_owned()
        } else {
            self.to_string()
        };
        let mut response = (status, Json(error_envelope(self.code(), &message))).into_response();
        if let LearnError::Full(_) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// A step as listed when a session starts.
#[derive(Debug, Serialize)]
struct StepOutline<'a> {
    number: usize,
    say: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ask: Option<&'a str>,
}

/// The answer of `POST /learn/{slug}/session`.
#[derive(Debug, Serialize)]
struct Started<'a> {
    session: String,
    scenario: &'a str,
    title: &'a str,
    steps: Vec<StepOutline<'a>>,
}

/// The answer of `POST /learn/session/{id}/step`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Stepped {
    #[serde(flatten)]
    report: StepReport,
    passed: bool,
    steps_left: usize,
}

fn path_param(
    path: Result<Path<String>, PathRejection>,
    unknown: LearnError,
) -> Result<String, LearnError> {
    path.map(|Path(value)| value).map_err(|_| unknown)
}

/// `POST /learn/{slug}/session`: a fresh hub and a run of that scenario.
pub(crate) async fn start<A: Adapter>(
    State(state): State<WebState<A>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    slug: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), LearnError> {
    let slug = path_param(slug, LearnError::UnknownScenario)?;
    let sessions = &state.learn.sessions;
    sessions.sweep();
    let file = state
        .learn
        .find(&slug)?
        .ok_or(LearnError::UnknownScenario)?;
    if file.scenario.needs_redis() && state.learn.launcher.redis().is_none() {
        return Err(LearnError::NeedsRedis(file.number));
    }
    // The place is taken before the hub starts, so concurrent starts
    // cannot pass the cap; a failed start gives it back.
    let owner = peer.map_or(std::net::Ipv4Addr::LOCALHOST.into(), |p| p.0.0.ip());
    let reservation = sessions.reserve(owner)?;
    let target = Target::InProcess(state.learn.launcher.clone());
    let run = Run::start(file.scenario.clone(), target)
        .await
        .map_err(LearnError::HubStart)?;
    let run_id = run.run_id().to_owned();
    let session = sessions.insert(reservation, &file.slug, run);
    // `run` names the lesson hub's own lines (`lesson{run=..}`) in this log.
    tracing::info!(scenario = %file.slug, run = %run_id, open = sessions.len(), "lesson session started");
    let started = Started {
        session,
        scenario: &file.slug,
        title: &file.scenario.title,
        steps: file
            .scenario
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepOutline {
                number: i + 1,
                say: &s.say,
                ask: s.ask.as_deref(),
            })
            .collect(),
    };
    Ok((StatusCode::CREATED, Json(ok_envelope(&started))))
}

/// `POST /learn/session/{id}/step`: runs the next step and reports it.
pub(crate) async fn step<A: Adapter>(
    State(state): State<WebState<A>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, LearnError> {
    let id = path_param(id, LearnError::UnknownSession)?;
    let sessions = &state.learn.sessions;
    sessions.sweep();
    let session = sessions.get(&id).ok_or(LearnError::UnknownSession)?;
    let mut run = session.run().await;
    let report = match run.as_mut() {
        Some(active) => active.step().await.ok_or(LearnError::Finished)?,
        None => return Err(LearnError::Finished),
    };
    let steps_left = run.as_ref().map_or(0, |r| {
        r.next_step()
            .map_or(0, |next| r.scenario().steps.len() - next)
    });
    if steps_left == 0 {
        // The lesson is over: stop its hub now rather than at expiry. The
        // session stays, so one more step is a clear 409, not a 404.
        if let Some(finished) = run.take() {
            tokio::spawn(finished.finish());
        }
    }
    Ok(Json(ok_envelope(&Stepped {
        passed: report.passed(),
        report,
        steps_left,
    })))
}

/// `DELETE /learn/session/{id}`: stops the lesson's hub.
pub(crate) async fn stop<A: Adapter>(
    State(state): State<WebState<A>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, LearnError> {
    let id = path_param(id, LearnError::UnknownSession)?;
    let session = state
        .learn
        .sessions
        .remove(&id)
        .ok_or(LearnError::UnknownSession)?;
    session.finish().await;
    tracing::info!(scenario = %session.slug, "lesson session closed");
    Ok(Json(ok_envelope(&serde_json::json!({}))))
}
