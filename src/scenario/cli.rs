//! `parcel-hub scenario list|run`: scenarios in the terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;

use super::runner::{Launcher, Run, StepReport, Target};
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
        #[arg(long, value_name = "URL")]
        url: Option<String>,
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
            }
            crate::out!("\nRun one with: parcel-hub scenario run NUMBER [--step]");
            Ok(0)
        }
        ScenarioCommand::Run {
            which,
            step,
            url,
            dir,
        } => {
            let file = Library::from_dir(dir).find(&which)?;
            let target = url.map_or(Target::InProcess(launcher), Target::Url);
            let passed = play(&file, target, step).await?;
            Ok(if passed { 0 } else { 1 })
        }
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

/// Plays a scenario in the terminal; true when every step passed.
pub async fn play(file: &ScenarioFile, target: Target, interactive: bool) -> anyhow::Result<bool> {
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
    let mut run = Run::start(scenario.clone(), target).await?;
    crate::out!("{}", paint.dim(&format!("hub: {}", run.url())));
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
    run.finish().await;
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

/// A payload in one short line: queued envelopes by what they are about,
/// anything else as JSON cut to fit.
fn brief(payload: &serde_json::Value) -> String {
    let order = &payload["order"];
    if let (Some(id), Some(status)) = (order["orderId"].as_str(), order["status"].as_str()) {
        let message = payload["messageId"].as_str().unwrap_or("");
        let kind = payload["event"].as_str().unwrap_or("order");
        return format!("{kind} of order {id}, now {status} {message}");
    }
    let text = payload.to_string();
    if text.chars().count() <= 140 {
        return text;
    }
    let cut: String = text.chars().take(140).collect();
    format!("{cut}…")
}

fn print_report(paint: Paint, report: &StepReport) {
    crate::out!("{} {}", paint.bold("▶"), report.action);
    if let Some(e) = &report.error {
        crate::out!("  {}", paint.red(e));
    }
    if let Some(ack) = &report.ack {
        crate::out!("  ack: {}", brief(ack));
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
        if actor.received.is_empty() {
            crate::out!(
                "  {} {}",
                paint.bold(&name),
                paint.dim(&format!("nothing{state}"))
            );
        }
        for (i, got) in actor.received.iter().enumerate() {
            let label = if i == 0 {
                name.clone()
            } else {
                " ".repeat(width)
            };
            crate::out!(
                "  {} ← {:?} {}",
                paint.bold(&label),
                got.event,
                brief(&got.payload)
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
