//! `parcel-hub scenario list|run`: scenarios in the terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;
use serde_json::Value;

use super::runner::{CleanUp, Launcher, Run, StepReport, Target};
use super::{Library, ScenarioFile};

/// The `scenario` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ScenarioCommand {
    /// List the scenarios with what each teaches.
    List {
        /// A folder of scenario files instead of the built-in lessons.
        #[arg(long, env = "PARCEL_HUB_SCENARIOS", value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Play a scenario with real Socket.IO clients.
    Run {
        /// The scenario: its number (`3`), its name (`03-rooms-join-and-leave`)
        /// or the path of a `.toml` file.
        #[arg(value_name = "SCENARIO")]
        which: String,
        /// Wait for Enter before each step, so you can predict first.
        #[arg(long)]
        step: bool,
        /// Use the hub at this URL instead of a private in-process one.
        /// Runs can be repeated: the ids the lesson creates there get a
        /// suffix of their own, and what it queued is confirmed at the end.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Show the log lines of the lesson's hub too (they are hidden so
        /// that the lesson reads in one piece; `RUST_LOG` also shows them).
        #[arg(long, short)]
        verbose: bool,
        /// A folder of scenario files instead of the built-in lessons.
        #[arg(long, env = "PARCEL_HUB_SCENARIOS", value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// ANSI styling, only when stdout is a terminal and `NO_COLOR` is unset.
#[derive(Debug, Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn detect() -> Self {
        Paint(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
    }
    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn bold(self, t: &str) -> String {
        self.wrap("1", t)
    }
    fn dim(self, t: &str) -> String {
        self.wrap("2", t)
    }
    fn green(self, t: &str) -> String {
        self.wrap("32", t)
    }
    fn red(self, t: &str) -> String {
        self.wrap("31", t)
    }
    fn cyan(self, t: &str) -> String {
        self.wrap("36", t)
    }
    fn yellow(self, t: &str) -> String {
        self.wrap("33", t)
    }
}

/// Runs a `scenario` subcommand; the exit code is 0 only when everything
/// passed. In-process hubs come from `launcher`.
pub async fn main(command: ScenarioCommand, launcher: Arc<dyn Launcher>) -> anyhow::Result<i32> {
    match command {
        ScenarioCommand::List { dir } => {
            let paint = Paint::detect();
            for file in Library::from_dir(dir).load_all()? {
                crate::out!(
                    "{:>3}  {}  {}",
                    file.number,
                    paint.bold(&file.scenario.title),
                    paint.dim(&format!("({})", file.slug))
                );
                crate::out!("     {}", file.scenario.teaches);
                if file.scenario.needs_redis() {
                    crate::out!(
                        "     {}",
                        paint.dim(
                            "needs Redis: parcel-hub --redis redis://127.0.0.1:6379 scenario run N"
                        )
                    );
                }
            }
            crate::out!("\nRun one with: parcel-hub scenario run NUMBER [--step]");
            Ok(0)
        }
        ScenarioCommand::Run {
            which,
            step,
            url,
            dir,
            verbose,
        } => {
            let file = Library::from_dir(dir).find(&which)?;
            if file.scenario.needs_redis() && launcher.redis().is_none() {
                anyhow::bail!(
                    "lesson {n} runs {hubs} hubs that share one Redis, and none was given; \
                     start Redis and give its URL: `parcel-hub --redis redis://127.0.0.1:6379 scenario run {n}` \
                     (or set PARCEL_HUB_REDIS=redis://127.0.0.1:6379)",
                    n = file.number,
                    hubs = file.scenario.hubs,
                );
            }
            let target = url.map_or(Target::InProcess(launcher), Target::Url);
            let passed = play(&file, target, step, verbose).await?;
            Ok(if passed { 0 } else { 1 })
        }
    }
}

impl ScenarioCommand {
    /// Whether the hub's log lines should be shown (`run --verbose`).
    pub fn verbose(&self) -> bool {
        matches!(self, ScenarioCommand::Run { verbose: true, .. })
    }
}

async fn wait_for_enter() {
    // Reading stdin blocks; keep it off the runtime's threads.
    let read = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)
    });
    if let Ok(Err(e)) = read.await {
        tracing::warn!(error = %e, "cannot read from stdin; continuing");
    }
}

/// Plays a scenario in the terminal; true when every step passed. The
/// hub's own log lines show only when `verbose`.
pub async fn play(
    file: &ScenarioFile,
    target: Target,
    interactive: bool,
    verbose: bool,
) -> anyhow::Result<bool> {
    let paint = Paint::detect();
    let scenario = &file.scenario;
    crate::out!(
        "{}",
        paint.bold(&format!("{} ({})", scenario.title, file.slug))
    );
    crate::out!("{}", scenario.teaches);
    if let Some(reading) = &scenario.reading {
        crate::out!("{}", paint.dim(&format!("From the readings: {reading}")));
    }
    let in_process = matches!(target, Target::InProcess(_));
    let mut run = Run::start(scenario.clone(), target).await?;
    let logs = if verbose || !in_process {
        ""
    } else {
        " (its log lines are hidden; --verbose shows them)"
    };
    let hubs = match run.urls() {
        [one] => format!("hub: {one}"),
        many => format!("hubs: {}", many.join(", ")),
    };
    crate::out!("{}", paint.dim(&format!("{hubs}{logs}")));
    if !in_process {
        crate::out!(
            "{}",
            paint.dim(&format!(
                "ids made fresh for this run: order ids, chat rooms and lab stores end in -{}",
                run.run_id()
            ))
        );
    }
    let total = scenario.steps.len();
    let mut passed_steps = 0;
    let mut failure = None;
    while let Some(index) = run.next_step() {
        let step = &scenario.steps[index];
        crate::out!(
            "\n{}",
            paint.cyan(&format!("── Step {}/{total} ──", index + 1))
        );
        crate::out!("{}", step.say);
        if let Some(ask) = &step.ask {
            crate::out!("{} {ask}", paint.yellow("?"));
        }
        if interactive {
            let mut stdout = std::io::stdout().lock();
            // A prompt that cannot be shown only leaves the learner without the hint.
            let _prompt_lost = write!(
                stdout,
                "{}",
                paint.dim("  (think, then press Enter to run it) ")
            )
            .and_then(|()| stdout.flush());
            drop(stdout);
            wait_for_enter().await;
        }
        let Some(report) = run.step().await else {
            break;
        };
        print_report(paint, &report);
        if report.passed() {
            passed_steps += 1;
        } else {
            failure = report.failure();
            break;
        }
    }
    if let Some(clean_up) = run.finish().await {
        print_clean_up(paint, &clean_up);
    }
    crate::out!();
    match failure {
        None => {
            crate::out!(
                "{} {}: {passed_steps}/{total} steps",
                paint.green("PASS"),
                file.slug
            );
            Ok(true)
        }
        Some(why) => {
            crate::out!("{} {}: {why}", paint.red("FAIL"), file.slug);
            Ok(false)
        }
    }
}

/// Text cut to `max` characters, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

/// An order as its id and status: `o-1001 (pending)`.
fn order_brief(order: &Value) -> Option<String> {
    let id = order["orderId"].as_str()?;
    match order["status"].as_str() {
        Some(status) => Some(format!("{id} ({status})")),
        None => Some(id.to_owned()),
    }
}

/// The fields a learner looks for, in the order they are shown; `at` and
/// the ids of queued messages change on every run and come last or not at all.
const KEY_FIELDS: [&str; 12] = [
    "from", "text", "room", "name", "users", "members", "online", "offset", "store", "orderId",
    "customer", "status",
];
const HIDDEN_FIELDS: [&str; 3] = ["at", "messageId", "event"];

/// A JSON object with its key fields first and the noise left out.
fn fields_brief(object: &serde_json::Map<String, Value>, skip: &[&str]) -> Vec<String> {
    let shown = |key: &str| !HIDDEN_FIELDS.contains(&key) && !skip.contains(&key);
    let mut parts: Vec<String> = KEY_FIELDS
        .iter()
        .filter(|key| shown(key))
        .filter_map(|key| object.get(*key).map(|v| format!("{key}: {v}")))
        .collect();
    parts.extend(
        object
            .iter()
            .filter(|(key, _)| shown(key) && !KEY_FIELDS.contains(&key.as_str()))
            .map(|(key, value)| format!("{key}: {}", cut(&value.to_string(), 60))),
    );
    parts
}

/// An event's payload in one line: a queued envelope by the order it
/// carries, anything else by its key fields.
fn event_brief(payload: &Value) -> String {
    let Some(object) = payload.as_object() else {
        return cut(&payload.to_string(), 140);
    };
    let mut parts = Vec::new();
    if let Some(order) = object.get("order").and_then(order_brief) {
        parts.push(format!("order {order}"));
    }
    // A /caps envelope repeats the lab's own fields beside the order.
    let skip = ["order", "orderId", "status"];
    let skip: &[&str] = if parts.is_empty() { &[] } else { &skip };
    parts.extend(fields_brief(object, skip));
    cut(&parts.join(", "), 160)
}

/// An ack in one line, its point first: `ok` or the error code and its
/// message, `duplicate`, the order and its status, what is queued or removed.
fn ack_brief(ack: &Value) -> String {
    if ack["ok"] == Value::Bool(false) {
        let code = ack["error"]["code"].as_str().unwrap_or("error");
        let message = ack["error"]["message"].as_str().unwrap_or("");
        return format!("error {code}: {message}");
    }
    let Some(object) = ack.as_object() else {
        return cut(&ack.to_string(), 140);
    };
    let mut parts = vec!["ok".to_owned()];
    for key in ["duplicate", "removed"] {
        if let Some(value) = object.get(key) {
            parts.push(format!("{key}: {value}"));
        }
    }
    if let Some(order) = object.get("order").and_then(order_brief) {
        parts.push(format!("order {order}"));
    }
    let list = |items: &Value, one: &dyn Fn(&Value) -> String| -> String {
        let items = items.as_array().map(Vec::as_slice).unwrap_or_default();
        let shown: Vec<String> = items.iter().map(one).collect();
        format!("[{}]", shown.join("; "))
    };
    if let Some(messages) = object.get("messages") {
        let one = |m: &Value| {
            let event = m["event"].as_str().unwrap_or("message");
            let order = order_brief(&m["order"]).unwrap_or_default();
            format!("{event} {order}")
        };
        parts.push(format!("messages: {}", list(messages, &one)));
        // Only a page that is not the last says so (`more: false` is the usual case).
        if object.get("more") == Some(&Value::Bool(true)) {
            parts.push("more: true (ask again for the next page)".to_owned());
        }
    }
    if let Some(orders) = object.get("orders") {
        let one = |o: &Value| order_brief(o).unwrap_or_default();
        parts.push(format!("orders: {}", list(orders, &one)));
    }
    if let Some(history) = object.get("history") {
        let one = |m: &Value| event_brief(m);
        parts.push(format!("history: {}", list(history, &one)));
    }
    let done = [
        "ok",
        "duplicate",
        "removed",
        "order",
        "messages",
        "more",
        "orders",
        "history",
    ];
    parts.extend(fields_brief(object, &done));
    cut(&parts.join(", "), 200)
}

/// What a run against a hub at a URL confirmed, and what stays there.
fn print_clean_up(paint: Paint, done: &CleanUp) {
    crate::out!("\n{}", paint.cyan("── Cleaning up ──"));
    crate::out!(
        "confirmed {} queued message{} of this run (received), so no queue keeps any of it",
        done.confirmed,
        if done.confirmed == 1 { "" } else { "s" }
    );
    if !done.orders.is_empty() {
        let orders: Vec<String> = done
            .orders
            .iter()
            .map(|(id, status)| format!("{id} ({status})"))
            .collect();
        crate::out!(
            "stays: the orders {}: orders are records, listed on the hub's pages \
             (delivered ones are removed after --retain-delivered days)",
            orders.join(", ")
        );
    }
    if done.chat {
        crate::out!("stays: the chat messages, in the chat's history (the newest 1,000 are kept)");
    }
    for problem in &done.problems {
        crate::out!("  {}", paint.red(problem));
    }
}

fn print_report(paint: Paint, report: &StepReport) {
    crate::out!("{} {}", paint.bold("▶"), report.action);
    if let Some(e) = &report.error {
        crate::out!("  {}", paint.red(e));
    }
    if let Some(ack) = &report.ack {
        crate::out!("  ack: {}", ack_brief(ack));
    }
    if let Some(refusal) = &report.connect_error {
        crate::out!("  connect_error: {refusal}");
    }
    let width = report
        .actors
        .iter()
        .map(|a| a.actor.len())
        .max()
        .unwrap_or(0);
    for actor in &report.actors {
        let name = format!("{:<width$}", actor.actor);
        let state = if actor.connected { "" } else { " (offline)" };
        if actor.received.is_empty() && actor.listed.is_empty() {
            crate::out!(
                "  {} {}",
                paint.bold(&name),
                paint.dim(&format!("nothing{state}"))
            );
        }
        let pushed = actor.received.iter().map(|got| ("←", got));
        let listed = actor.listed.iter().map(|got| ("⇐ getAll lists", got));
        for (i, (how, got)) in pushed.chain(listed).enumerate() {
            let label = if i == 0 {
                name.clone()
            } else {
                " ".repeat(width)
            };
            crate::out!(
                "  {} {how} {:?} {}",
                paint.bold(&label),
                got.event,
                event_brief(&got.payload)
            );
        }
    }
    for check in &report.checks {
        if check.passed {
            crate::out!("  {} {}", paint.green("✔"), check.expected);
        } else {
            crate::out!(
                "  {} {}: {}",
                paint.red("✘"),
                check.expected,
                check.detail.as_deref().unwrap_or("")
            );
        }
    }
    if let Some(explain) = &report.explain {
        crate::out!("  {} {explain}", paint.dim("Why:"));
    }
}
