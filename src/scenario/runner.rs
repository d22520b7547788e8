//! Plays a scenario with real Socket.IO clients against a real hub.
//!
//! The hub is either a private one started in this process on a fresh
//! database (the default, and the only way `restart` works) or an existing
//! one at a URL. Steps run one at a time so a learner (CLI `--step`, or the
//! `/learn` pages) can predict before each one; every step returns a
//! [`StepReport`] saying what arrived where and which expectations held.
//!
//! The runner does not know how to build a hub: whoever starts a run hands
//! it a [`Launcher`] (the app does), so the runner sits below the server
//! it plays against rather than in a circle with it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Action, Expectation, Scenario};
use crate::activity::ActivityRecord;
use crate::client::{Client, ClientError, Received};

/// How long an expected event may take.
pub(crate) const EXPECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a step watches for events nobody expected, unless it says otherwise.
pub(crate) const DEFAULT_QUIET: Duration = Duration::from_millis(300);

/// Starts private hubs for lessons.
pub trait Launcher: Send + Sync + Debug {
    /// Starts a hub on loopback as `spec` says.
    fn launch(&self, spec: HubSpec) -> BoxFuture<'static, anyhow::Result<LessonHub>>;

    /// The Redis URL lessons with several hubs may share, if any.
    fn redis(&self) -> Option<String> {
        None
    }

    /// Deletes the keys a lesson's hubs wrote under `prefix` in the Redis
    /// at `url`, once they have stopped.
    fn clear_redis(&self, _url: String, _prefix: String) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// What a lesson's private hub is to be.
#[derive(Debug, Clone)]
pub struct HubSpec {
    /// Its SQLite database (created if new; unused with `redis`).
    pub db: PathBuf,
    /// Names the lesson in the hub's log lines (`lesson{run=..}`), so a
    /// lesson hub's `shutting down` is never read as the main hub's.
    pub tag: String,
    /// A Redis URL and key prefix: the hub joins a cluster there instead
    /// of using SQLite.
    pub redis: Option<(String, String)>,
}

/// A private hub running in this process, and how to stop it.
#[derive(Debug)]
pub struct LessonHub {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    /// Its activity feed, subscribed before the hub took any connection.
    pub activity: broadcast::Receiver<ActivityRecord>,
    /// Sending (or dropping) it stops the hub.
    pub stop: oneshot::Sender<()>,
    /// The serving task; it ends once the hub has stopped.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Where the hub is.
#[derive(Debug, Clone)]
pub enum Target {
    /// A private hub started by this launcher on a fresh database.
    InProcess(Arc<dyn Launcher>),
    /// Use the hub at this base URL (`http://127.0.0.1:3000`).
    Url(String),
}

/// One expectation checked.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub passed: bool,
    /// The expectation in words.
    pub expected: String,
    /// What happened instead, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What one actor received during a step.
#[derive(Debug, Clone, Serialize)]
pub struct ActorView {
    pub actor: String,
    pub namespace: String,
    pub connected: bool,
    pub received: Vec<ReceivedEvent>,
    /// What its `getAll` listed in this step (queued for it, not pushed).
    pub listed: Vec<ReceivedEvent>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReceivedEvent {
    pub event: String,
    pub payload: Value,
}

/// Everything a step did, for the CLI and the web stepper.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// 1-based.
    pub number: usize,
    pub say: String,
    pub ask: Option<String>,
    pub action: String,
    /// The ack the action got, if it asked for one.
    pub ack: Option<Value>,
    /// The refusal a connect got, if any.
    pub connect_error: Option<String>,
    pub actors: Vec<ActorView>,
    pub checks: Vec<Check>,
    pub explain: Option<String>,
    /// The hub's activity feed during the step (in-process hubs only).
    pub activity: Vec<ActivityRecord>,
    /// A step-level failure (the action itself could not run).
    pub error: Option<String>,
}

impl StepReport {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.passed)
    }

    /// The first failure as one line naming the step, the actor and the event.
    pub fn failure(&self) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(format!("step {}: {e}", self.number));
        }
        self.checks.iter().find(|c| !c.passed).map(|c| {
            format!(
                "step {}: expected {}; {}",
                self.number,
                c.expected,
                c.detail.as_deref().unwrap_or("it did not happen")
            )
        })
    }
}

/// Why an actor is not connected.
enum Unconnected {
    /// The hub answered with a `connect_error` (what lessons check).
    Refused(String),
    /// The hub could not be reached, or did not answer.
    Failed(String),
}

/// One actor's live connection.
struct Live {
    client: Arc<Client>,
}

/// A scenario being played.
pub struct Run {
    scenario: Scenario,
    target: Target,
    /// The database directory of an in-process hub; removed when the run ends.
    dir: Option<tempfile::TempDir>,
    /// The in-process hubs (one, or as many as the scenario's `hubs`).
    hubs: Vec<LessonHub>,
    /// Their base URLs, or the one URL given; actor `hub = N` uses the Nth.
    urls: Vec<String>,
    live: HashMap<String, Live>,
    /// Every event from every actor, tagged with the actor's name.
    events_tx: mpsc::UnboundedSender<(String, Received)>,
    events_rx: mpsc::UnboundedReceiver<(String, Received)>,
    /// The last message id per (actor, event), for `received`.
    last_message: HashMap<(String, String), Value>,
    next_step: usize,
    /// A few characters naming this run: in its hubs' log lines, and
    /// (against a hub at a URL) on the ids it creates there.
    run_id: String,
    /// The greatest chat offset each actor has seen, for `"$last-offset"`.
    offsets: HashMap<String, u64>,
    /// The orders this run created, with their last known status (for
    /// the clean-up note of a run against a hub at a URL).
    orders: Vec<(String, String)>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("title", &self.scenario.title)
            .field("urls", &self.urls)
            .field("next_step", &self.next_step)
            .finish_non_exhaustive()
    }
}

impl LessonHub {
    async fn shut(self) {
        // The hub may already have stopped by itself; then nothing listens.
        let _already_stopped = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(10), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "scenario hub stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "scenario hub task failed"),
            Err(_) => tracing::warn!("scenario hub did not stop within 10 s"),
        }
    }
}

/// The placeholder for "the greatest chat offset this actor has seen".
pub const LAST_OFFSET: &str = "$last-offset";

/// Why a lesson with several hubs cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum NeedsRedis {
    /// No Redis was given to the runner.
    #[error(
        "this lesson runs {0} hubs that share one Redis, and none was given: \
         start it as `parcel-hub --redis redis://127.0.0.1:6379 scenario run N` \
         (or set PARCEL_HUB_REDIS); on /learn, start the hub itself with --redis"
    )]
    NoRedis(usize),
    /// A hub at a URL is only one hub.
    #[error(
        "this lesson runs {0} hubs that share one Redis, so it cannot play against one hub \
         at a URL: leave out --url and give a Redis (`parcel-hub --redis redis://127.0.0.1:6379 scenario run N`)"
    )]
    NotAtUrl(usize),
}

/// The Redis key prefix of one run's hubs.
fn redis_prefix(run_id: &str) -> String {
    format!("parcel-hub-lesson-{run_id}")
}

/// Starts the hubs of a scenario: one on SQLite, or several sharing the
/// launcher's Redis under a key prefix of this run's own.
async fn launch_all(
    launcher: &dyn Launcher,
    scenario: &Scenario,
    dir: &std::path::Path,
    run_id: &str,
) -> anyhow::Result<Vec<LessonHub>> {
    let redis = if scenario.hubs > 1 {
        let url = launcher.redis().ok_or(NeedsRedis::NoRedis(scenario.hubs))?;
        Some((url, redis_prefix(run_id)))
    } else {
        None
    };
    let mut hubs = Vec::new();
    for n in 1..=scenario.hubs.max(1) {
        let spec = HubSpec {
            db: dir.join(format!("scenario-{n}.db")),
            tag: if scenario.hubs > 1 {
                format!("{run_id}/hub{n}")
            } else {
                run_id.to_owned()
            },
            redis: redis.clone(),
        };
        match launcher.launch(spec).await {
            Ok(hub) => hubs.push(hub),
            Err(e) => {
                for hub in hubs {
                    hub.shut().await;
                }
                return Err(e);
            }
        }
    }
    Ok(hubs)
}

/// What a run against a hub at a URL did to leave nothing behind.
#[derive(Debug, Clone, Default)]
pub struct CleanUp {
    /// Queued messages about this run's orders, confirmed at the end.
    pub confirmed: usize,
    /// The orders the run created, with their last status: orders are
    /// records, so they stay.
    pub orders: Vec<(String, String)>,
    /// Whether the scenario chatted (chat messages stay in the history).
    pub chat: bool,
    /// Identities whose queue could not be read, and why.
    pub problems: Vec<String>,
}

/// Connects as one identity and confirms every queued message about an
/// order whose id ends with `suffix`; answers how many were removed.
async fn confirm_run_messages(
    url: &str,
    namespace: &str,
    auth: Option<&Value>,
    suffix: &str,
) -> Result<usize, String> {
    // Who, without the token: a token is never printed.
    let who = auth
        .and_then(|a| a.get("vendorId").or_else(|| a.get("distributorId")))
        .and_then(Value::as_str)
        .unwrap_or("(no id)");
    let client = Client::connect(url, namespace, auth, EXPECT_TIMEOUT)
        .await
        .map_err(|e| format!("cannot read the queue of {who} on {namespace}: {e}"))?;
    let mut confirmed = 0;
    let result = async {
        // `getAll` may answer in pages (`more`): read until a page holds
        // nothing of this run or nothing more is queued.
        loop {
            let ack = client
                .emit_with_ack(
                    crate::protocol::event::GET_ALL,
                    &serde_json::json!({}),
                    EXPECT_TIMEOUT,
                )
                .await
                .map_err(|e| format!("getAll on {namespace}: {e}"))?;
            let mine: Vec<Value> = ack["messages"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|m| {
                    m["order"]["orderId"]
                        .as_str()
                        .is_some_and(|id| id.ends_with(suffix))
                })
                .filter_map(|m| m.get("messageId").cloned())
                .collect();
            for id in &mine {
                let answer = client
                    .emit_with_ack(
                        crate::protocol::event::RECEIVED,
                        &serde_json::json!({ "messageId": id }),
                        EXPECT_TIMEOUT,
                    )
                    .await
                    .map_err(|e| format!("received on {namespace}: {e}"))?;
                if answer["removed"] == Value::Bool(true) {
                    confirmed += 1;
                }
            }
            if mine.is_empty() || ack["more"] != Value::Bool(true) {
                return Ok(confirmed);
            }
        }
    }
    .await;
    client.disconnect();
    result
}

/// Gives the ids a scenario creates in a hub (orders, chat rooms, lab
/// stores) the run's `suffix`, so a run against a shared hub meets
/// nothing an earlier run left there.
fn fresh_ids(scenario: &mut Scenario, suffix: &str) {
    for actor in &mut scenario.actors {
        if let Some(auth) = &mut actor.auth {
            fresh_value(auth, suffix);
        }
    }
    for step in &mut scenario.steps {
        match &mut step.action {
            Action::Emit {
                event,
                payload: Some(payload),
                ..
            } => {
                // The lab's `join` names its store as a bare string.
                if event == crate::protocol::event::JOIN && payload.is_string() {
                    suffix_id(payload, suffix);
                }
                fresh_value(payload, suffix);
            }
            Action::Join { room, .. } | Action::Leave { room, .. } => room.push_str(suffix),
            _ => {}
        }
        for e in &mut step.expect {
            for value in [&mut e.with, &mut e.ack].into_iter().flatten() {
                fresh_value(value, suffix);
            }
        }
    }
}

/// Suffixes the ids under the keys that name things a run creates:
/// `orderId`, `room`, `store`/`stores`, and a lab store's `vendorId` (`caps.…`).
fn fresh_value(value: &mut Value, suffix: &str) {
    match value {
        Value::Object(fields) => {
            for (key, v) in fields.iter_mut() {
                let last = key.rsplit('.').next().unwrap_or(key);
                match last {
                    "orderId" | "room" | "store" => suffix_id(v, suffix),
                    "stores" => v
                        .as_array_mut()
                        .into_iter()
                        .flatten()
                        .for_each(|s| suffix_id(s, suffix)),
                    "vendorId" if v.as_str().is_some_and(|id| id.starts_with("caps.")) => {
                        suffix_id(v, suffix);
                    }
                    _ => fresh_value(v, suffix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| fresh_value(v, suffix)),
        _ => {}
    }
}

fn suffix_id(value: &mut Value, suffix: &str) {
    if let Value::String(id) = value {
        id.push_str(suffix);
    }
}

/// Six characters, fresh for every run.
fn new_run_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..6].to_owned()
}

/// Does `actual` contain everything in `expected`? Objects: every expected
/// key (a key `a.b` means nested `a` then `b`); arrays: same length, each
/// element contained; anything else: equal.
pub fn contains(actual: &Value, expected: &Value) -> bool {
    match expected {
        Value::Object(fields) => fields.iter().all(|(key, want)| {
            let got = key
                .split('.')
                .try_fold(actual, |v, part| v.get(part))
                .unwrap_or(&Value::Null);
            contains(got, want)
        }),
        Value::Array(items) => actual.as_array().is_some_and(|got| {
            got.len() == items.len() && got.iter().zip(items).all(|(g, w)| contains(g, w))
        }),
        other => actual == other,
    }
}

impl Run {
    /// Prepares a run; an in-process hub starts now.
    pub async fn start(mut scenario: Scenario, target: Target) -> anyhow::Result<Self> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let run_id = new_run_id();
        let (dir, hubs, urls) = match &target {
            Target::InProcess(launcher) => {
                let dir = tempfile::tempdir()?;
                let hubs = launch_all(launcher.as_ref(), &scenario, dir.path(), &run_id).await?;
                let urls = hubs.iter().map(|h| h.url.clone()).collect();
                (Some(dir), hubs, urls)
            }
            Target::Url(url) => {
                if scenario.hubs > 1 {
                    return Err(NeedsRedis::NotAtUrl(scenario.hubs).into());
                }
                // A shared hub keeps what every run made: this run's ids are its own.
                fresh_ids(&mut scenario, &format!("-{run_id}"));
                (None, Vec::new(), vec![url.trim_end_matches('/').to_owned()])
            }
        };
        Ok(Self {
            scenario,
            target,
            dir,
            hubs,
            urls,
            live: HashMap::new(),
            events_tx,
            events_rx,
            last_message: HashMap::new(),
            next_step: 0,
            run_id,
            offsets: HashMap::new(),
            orders: Vec::new(),
        })
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The few characters that name this run (in its hubs' logs, and on
    /// the ids it creates in a hub at a URL).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The (first) hub's base URL.
    pub fn url(&self) -> &str {
        self.urls.first().map_or("", String::as_str)
    }

    /// Every hub's base URL, in the order actors' `hub` numbers them.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The 0-based index of the next step, or `None` when all have run.
    pub fn next_step(&self) -> Option<usize> {
        (self.next_step < self.scenario.steps.len()).then_some(self.next_step)
    }

    /// Runs the next step and reports it.
    pub async fn step(&mut self) -> Option<StepReport> {
        let index = self.next_step()?;
        self.next_step += 1;
        Some(self.run_step(index).await)
    }

    /// Runs every remaining step; stops at the first failing one.
    pub async fn run_all(&mut self) -> Vec<StepReport> {
        let mut reports = Vec::new();
        while let Some(report) = self.step().await {
            let failed = !report.passed();
            reports.push(report);
            if failed {
                break;
            }
        }
        reports
    }

    /// Disconnects every actor and stops an in-process hub. Against a hub
    /// at a URL it first confirms what this run left queued there, and
    /// says what stays.
    pub async fn finish(mut self) -> Option<CleanUp> {
        for live in self.live.values() {
            live.client.disconnect();
        }
        self.live.clear();
        let clean_up = match self.target {
            Target::Url(_) => Some(self.clean_up().await),
            Target::InProcess(_) => None,
        };
        for hub in self.hubs.drain(..) {
            hub.shut().await;
        }
        if let (Target::InProcess(launcher), true) = (&self.target, self.scenario.needs_redis()) {
            launcher
                .clear_redis(
                    launcher.redis().unwrap_or_default(),
                    redis_prefix(&self.run_id),
                )
                .await;
        }
        drop(self.dir.take());
        clean_up
    }

    /// Confirms, for every vendor and distributor identity of the
    /// scenario, the queued messages about this run's orders.
    async fn clean_up(&mut self) -> CleanUp {
        let suffix = format!("-{}", self.run_id);
        let mut done = CleanUp {
            orders: self.orders.clone(),
            chat: self
                .scenario
                .actors
                .iter()
                .any(|a| a.namespace == crate::protocol::ns::CHAT),
            ..CleanUp::default()
        };
        let mut identities: Vec<(&str, Option<&Value>)> = Vec::new();
        for actor in &self.scenario.actors {
            let queued = [
                crate::protocol::ns::VENDOR,
                crate::protocol::ns::DISTRIBUTOR,
            ];
            let who = (actor.namespace.as_str(), actor.auth.as_ref());
            if queued.contains(&who.0) && !identities.contains(&who) {
                identities.push(who);
            }
        }
        for (namespace, auth) in identities {
            match confirm_run_messages(self.url(), namespace, auth, &suffix).await {
                Ok(confirmed) => done.confirmed += confirmed,
                Err(e) => done.problems.push(e),
            }
        }
        done
    }

    fn actor(&self, name: &str) -> Option<&super::Actor> {
        self.scenario.actors.iter().find(|a| a.name == name)
    }

    async fn connect(&mut self, name: &str) -> Result<(), Unconnected> {
        let actor = self
            .actor(name)
            .cloned()
            .ok_or_else(|| Unconnected::Failed(format!("unknown actor {name}")))?;
        if let Some(old) = self.live.remove(name) {
            old.client.disconnect();
        }
        let url = self
            .urls
            .get(actor.hub.saturating_sub(1))
            .cloned()
            .ok_or_else(|| {
                Unconnected::Failed(format!("{name}'s hub {} is not running", actor.hub))
            })?;
        let auth = actor.auth.clone().map(|mut auth| {
            self.fill_in(name, &mut auth);
            auth
        });
        let client = Client::connect(&url, &actor.namespace, auth.as_ref(), EXPECT_TIMEOUT)
            .await
            .map_err(|e| match e {
                ClientError::Refused(message) => Unconnected::Refused(message),
                other => Unconnected::Failed(format!("{name} could not connect: {other}")),
            })?;
        let client = Arc::new(client);
        let forward = client.clone();
        let tx = self.events_tx.clone();
        let actor_name = name.to_owned();
        tokio::spawn(async move {
            while let Some(event) = forward.recv().await {
                if tx.send((actor_name.clone(), event)).is_err() {
                    break;
                }
            }
        });
        self.live.insert(name.to_owned(), Live { client });
        Ok(())
    }

    fn client(&self, name: &str) -> Result<Arc<Client>, String> {
        self.live
            .get(name)
            .map(|l| l.client.clone())
            .ok_or_else(|| format!("{name} is not connected"))
    }

    async fn ack(&self, actor: &str, event: &str, payload: &Value) -> Result<Value, String> {
        self.client(actor)?
            .emit_with_ack(event, payload, EXPECT_TIMEOUT)
            .await
            .map_err(|e| format!("{actor} emitted {event:?}: {e}"))
    }

    /// Replaces the placeholder `"$last-offset"` (anywhere in `value`) with
    /// the greatest chat offset `actor` has seen, or 0.
    fn fill_in(&self, actor: &str, value: &mut Value) {
        match value {
            Value::String(text) if text == LAST_OFFSET => {
                *value = Value::from(self.offsets.get(actor).copied().unwrap_or(0));
            }
            Value::Object(fields) => fields.values_mut().for_each(|v| self.fill_in(actor, v)),
            Value::Array(items) => items.iter_mut().for_each(|v| self.fill_in(actor, v)),
            _ => {}
        }
    }

    /// Notes the chat offsets in what `actor` got (a message, or an ack
    /// with `offset` or a `history`).
    fn note_offsets(&mut self, actor: &str, value: &Value) {
        let mut seen: Vec<u64> = value["offset"].as_u64().into_iter().collect();
        if let Some(history) = value["history"].as_array() {
            seen.extend(history.iter().filter_map(|m| m["offset"].as_u64()));
        }
        if let Some(greatest) = seen.into_iter().max() {
            let known = self.offsets.entry(actor.to_owned()).or_insert(0);
            *known = (*known).max(greatest);
        }
    }

    /// Keeps the last status of an order this run created (in a hub at a
    /// URL, where it stays after the run).
    fn note_order(&mut self, order: &Value) {
        let (Some(id), Some(status)) = (order["orderId"].as_str(), order["status"].as_str()) else {
            return;
        };
        if !id.ends_with(&format!("-{}", self.run_id)) {
            return;
        }
        // Two vendors may use one order id.
        let id = match order["vendorId"].as_str() {
            Some(vendor) => format!("{id} of {vendor}"),
            None => id.to_owned(),
        };
        let id = id.as_str();
        match self.orders.iter_mut().find(|(known, _)| known == id) {
            Some(entry) => status.clone_into(&mut entry.1),
            None => self.orders.push((id.to_owned(), status.to_owned())),
        }
    }

    /// Remembers message ids an actor has seen, for `received`.
    fn remember(&mut self, actor: &str, envelope: &Value) {
        if let (Some(event), Some(id)) = (
            envelope.get("event").and_then(Value::as_str),
            envelope.get("messageId"),
        ) {
            self.last_message
                .insert((actor.to_owned(), event.to_owned()), id.clone());
        }
    }

    /// Performs the action; returns its ack and connect refusal.
    async fn act(&mut self, action: &Action) -> Result<(Option<Value>, Option<String>), String> {
        match action {
            Action::Connect { actors } => {
                let mut refusal = None;
                for name in actors.names() {
                    match self.connect(name).await {
                        Ok(()) => {}
                        Err(Unconnected::Refused(message)) => refusal = Some(message),
                        // Not the hub's answer: the step itself failed.
                        Err(Unconnected::Failed(why)) => return Err(why),
                    }
                }
                Ok((None, refusal))
            }
            Action::Disconnect { actors } => {
                for name in actors.names() {
                    if let Some(live) = self.live.remove(name) {
                        live.client.disconnect();
                    }
                }
                Ok((None, None))
            }
            Action::Emit {
                actor,
                event,
                payload,
                ack,
            } => {
                let mut payload = payload.clone().unwrap_or(Value::Null);
                self.fill_in(actor, &mut payload);
                if *ack {
                    Ok((Some(self.ack(actor, event, &payload).await?), None))
                } else {
                    self.client(actor)?
                        .emit(event, &payload)
                        .map_err(|e| format!("{actor} emitted {event:?}: {e}"))?;
                    Ok((None, None))
                }
            }
            Action::Join { actor, room } => {
                let ack = self
                    .ack(actor, "join", &serde_json::json!({ "room": room }))
                    .await?;
                Ok((Some(ack), None))
            }
            Action::Leave { actor, room } => {
                let ack = self
                    .ack(actor, "leave", &serde_json::json!({ "room": room }))
                    .await?;
                Ok((Some(ack), None))
            }
            Action::GetAll { actor } => {
                let ack = self.ack(actor, "getAll", &serde_json::json!({})).await?;
                for message in ack["messages"].as_array().cloned().unwrap_or_default() {
                    self.remember(actor, &message);
                }
                Ok((Some(ack), None))
            }
            Action::Received { actor, of } => {
                let id = self
                    .last_message
                    .get(&(actor.clone(), of.clone()))
                    .cloned()
                    .ok_or_else(|| format!("{actor} has seen no {of:?} message to confirm"))?;
                let ack = self
                    .ack(actor, "received", &serde_json::json!({ "messageId": id }))
                    .await?;
                Ok((Some(ack), None))
            }
            Action::Restart {} => {
                let Target::InProcess(launcher) = &self.target else {
                    return Err("restart needs the in-process hub (not --url)".into());
                };
                let launcher = launcher.clone();
                for live in self.live.values() {
                    live.client.disconnect();
                }
                self.live.clear();
                for hub in self.hubs.drain(..) {
                    hub.shut().await;
                }
                let dir = self
                    .dir
                    .as_ref()
                    .ok_or("the in-process hub has no database")?;
                let hubs = launch_all(launcher.as_ref(), &self.scenario, dir.path(), &self.run_id)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                self.urls = hubs.iter().map(|h| h.url.clone()).collect();
                self.hubs = hubs;
                Ok((None, None))
            }
        }
    }

    async fn run_step(&mut self, index: usize) -> StepReport {
        let step = self.scenario.steps[index].clone();
        // Whatever arrived between steps belongs to no step.
        while self.events_rx.try_recv().is_ok() {}
        for hub in &mut self.hubs {
            while hub.activity.try_recv().is_ok() {}
        }
        let mut report = StepReport {
            number: index + 1,
            say: step.say.clone(),
            ask: step.ask.clone(),
            action: step.action.describe(),
            ack: None,
            connect_error: None,
            actors: Vec::new(),
            checks: Vec::new(),
            explain: step.explain.clone(),
            activity: Vec::new(),
            error: None,
        };
        match self.act(&step.action).await {
            Ok((ack, refusal)) => {
                report.ack = ack;
                report.connect_error = refusal;
            }
            Err(e) => report.error = Some(e),
        }

        let received = self.collect(&step.expect, step.quiet_ms).await;
        for (actor, event) in &received {
            self.remember(actor, &event.payload);
            self.note_order(&event.payload["order"]);
            self.note_offsets(actor, &event.payload);
        }
        if let Some(ack) = &report.ack {
            self.note_order(&ack["order"]);
            if let Some(actor) = step.action.actor_names().first() {
                self.note_offsets(actor, ack);
            }
        }
        let connected: Vec<&str> = self.live.keys().map(String::as_str).collect();
        report.checks = step
            .expect
            .iter()
            .map(|e| check(e, &report, &received, &connected))
            .collect();
        let listed = match (&step.action, &report.ack) {
            (Action::GetAll { actor }, Some(ack)) => Some((actor.clone(), ack["messages"].clone())),
            _ => None,
        };
        report.actors = self
            .scenario
            .actors
            .iter()
            .map(|a| ActorView {
                actor: a.name.clone(),
                namespace: a.namespace.clone(),
                connected: self.live.contains_key(&a.name),
                received: received
                    .iter()
                    .filter(|(who, _)| *who == a.name)
                    .map(|(_, r)| ReceivedEvent {
                        event: r.event.clone(),
                        payload: r.payload.clone(),
                    })
                    .collect(),
                listed: listed
                    .as_ref()
                    .filter(|(who, _)| *who == a.name)
                    .and_then(|(_, messages)| messages.as_array())
                    .map(|messages| {
                        messages
                            .iter()
                            .map(|m| ReceivedEvent {
                                event: m["event"].as_str().unwrap_or("message").to_owned(),
                                payload: m.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        for hub in &mut self.hubs {
            while let Ok(record) = hub.activity.try_recv() {
                report.activity.push(record);
            }
        }
        // Several hubs: one story, in the order things happened.
        if self.hubs.len() > 1 {
            report.activity.sort_by_key(|r| r.at);
        }
        report
    }

    /// Gathers events until every `receives` expectation could be met (or
    /// the timeout passes), then for the quiet window.
    async fn collect(
        &mut self,
        expect: &[Expectation],
        quiet_ms: Option<u64>,
    ) -> Vec<(String, Received)> {
        let mut got: Vec<(String, Received)> = Vec::new();
        let wanted: Vec<(&str, &str, usize)> = expect
            .iter()
            .filter_map(|e| {
                Some((
                    e.actor.as_deref()?,
                    e.receives.as_deref()?,
                    e.count.unwrap_or(1),
                ))
            })
            .collect();
        let satisfied = |got: &[(String, Received)]| {
            wanted.iter().all(|(actor, event, count)| {
                got.iter()
                    .filter(|(a, r)| a == actor && r.event == *event)
                    .count()
                    >= *count
            })
        };
        let deadline = tokio::time::Instant::now() + EXPECT_TIMEOUT;
        while !satisfied(&got) {
            match tokio::time::timeout_at(deadline, self.events_rx.recv()).await {
                Ok(Some(item)) => got.push(item),
                _ => break,
            }
        }
        let quiet = quiet_ms.map_or(DEFAULT_QUIET, Duration::from_millis);
        let quiet_end = tokio::time::Instant::now() + quiet;
        while let Ok(Some(item)) = tokio::time::timeout_at(quiet_end, self.events_rx.recv()).await {
            got.push(item);
        }
        got
    }
}

fn check(
    e: &Expectation,
    report: &StepReport,
    got: &[(String, Received)],
    connected: &[&str],
) -> Check {
    let actor = e.actor.as_deref().unwrap_or("");
    let of_actor = || got.iter().filter(move |(a, _)| a == actor).map(|(_, r)| r);
    let summary = |events: Vec<&Received>| -> String {
        if events.is_empty() {
            "it received nothing".into()
        } else {
            let list: Vec<String> = events
                .iter()
                .map(|r| format!("{:?} {}", r.event, r.payload))
                .collect();
            format!("it received {}", list.join(", "))
        }
    };
    if let Some(event) = &e.receives {
        let want = e.count.unwrap_or(1);
        let with = e.with.clone().unwrap_or(Value::Object(Default::default()));
        let matching = of_actor()
            .filter(|r| &r.event == event && contains(&r.payload, &with))
            .count();
        let expected = match &e.with {
            Some(w) => format!("{actor} receives {event:?} x{want} with {w}"),
            None => format!("{actor} receives {event:?} x{want}"),
        };
        let passed = matching == want;
        return Check {
            passed,
            detail: (!passed).then(|| summary(of_actor().collect())),
            expected,
        };
    }
    if e.nothing {
        let events: Vec<&Received> = of_actor().collect();
        return Check {
            passed: events.is_empty(),
            detail: (!events.is_empty()).then(|| summary(events)),
            expected: format!("{actor} receives nothing"),
        };
    }
    if let Some(event) = &e.not_receives {
        let events: Vec<&Received> = of_actor().filter(|r| &r.event == event).collect();
        return Check {
            passed: events.is_empty(),
            detail: (!events.is_empty()).then(|| summary(events)),
            expected: format!("{actor} does not receive {event:?}"),
        };
    }
    if let Some(want) = &e.ack {
        let passed = report.ack.as_ref().is_some_and(|ack| contains(ack, want));
        return Check {
            passed,
            detail: (!passed).then(|| match &report.ack {
                Some(ack) => format!("the ack was {ack}"),
                None => "there was no ack".into(),
            }),
            expected: format!("the ack contains {want}"),
        };
    }
    if e.connected {
        let passed = connected.contains(&actor);
        return Check {
            passed,
            detail: (!passed).then(|| match &report.connect_error {
                Some(m) => format!("the hub refused it: {m:?}"),
                None => "it is not connected".into(),
            }),
            expected: format!("{actor} is connected"),
        };
    }
    if let Some(prefix) = &e.connect_error {
        let passed = report
            .connect_error
            .as_deref()
            .is_some_and(|m| m.starts_with(prefix.as_str()));
        return Check {
            passed,
            detail: (!passed).then(|| match &report.connect_error {
                Some(m) => format!("the refusal said {m:?}"),
                None => "the connection was accepted".into(),
            }),
            expected: format!("{actor}'s connection is refused with {prefix:?}"),
        };
    }
    Check {
        passed: false,
        expected: "a valid expectation".into(),
        detail: Some("the expectation names nothing to check".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contains_matches_subsets_and_dotted_paths() {
        let actual = json!({"order": {"status": "pending", "id": 1}, "list": [{"a": 1, "b": 2}]});
        assert!(contains(&actual, &json!({"order.status": "pending"})));
        assert!(contains(&actual, &json!({"order": {"id": 1}})));
        assert!(contains(&actual, &json!({"list": [{"a": 1}]})));
        assert!(!contains(&actual, &json!({"list": []})));
        assert!(!contains(&actual, &json!({"order.status": "delivered"})));
        assert!(!contains(&actual, &json!({"missing": 1})));
    }
}
