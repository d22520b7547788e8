//! Scripted scenarios: files in `scenarios/` that learners step through.
//!
//! A scenario names its actors (real Socket.IO clients, each bound to one
//! namespace and auth) and a list of steps. A step narrates, may ask the
//! learner to predict, performs one action, and states what must happen:
//! who receives which event with which fields, who receives nothing, what
//! the ack or the `connect_error` says. The [`runner`] plays it against a
//! real hub; the CLI and the `/learn` pages show it. The format is
//! documented in `scenarios/README.md`.
//!
//! The files of `scenarios/` are compiled into the binary (the build
//! script lists them), so a copied binary teaches every lesson; a
//! [`Library`] reads them from there, or from a folder given instead.

pub mod cli;
pub mod runner;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

include!(concat!(env!("OUT_DIR"), "/scenarios.rs"));

/// A scenario file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub title: String,
    /// The one idea this scenario teaches.
    pub teaches: String,
    /// Where in the readings the idea comes from (optional).
    #[serde(default)]
    pub reading: Option<String>,
    /// How many hubs the lesson runs (default 1); more than one share a
    /// Redis, so the lesson needs one.
    #[serde(default = "one")]
    pub hubs: usize,
    pub actors: Vec<Actor>,
    pub steps: Vec<Step>,
}

/// A client of the hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub name: String,
    pub namespace: String,
    /// The handshake `auth`; omitted means none at all.
    #[serde(default)]
    pub auth: Option<Value>,
    /// Which of the lesson's hubs it connects to, from 1 (default 1).
    #[serde(default = "one")]
    pub hub: usize,
}

fn one() -> usize {
    1
}

/// One step: narration, an optional prediction question, one action, expectations.
///
/// (Unknown keys are caught by [`Action`], which receives every key the
/// step itself does not know.)
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    pub say: String,
    #[serde(default)]
    pub ask: Option<String>,
    #[serde(flatten)]
    pub action: Action,
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// Why it happened the way it did.
    #[serde(default)]
    pub explain: Option<String>,
    /// How long to watch for events nobody expected, in ms (default 300).
    #[serde(default)]
    pub quiet_ms: Option<u64>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Connect one actor (or several, in order).
    Connect {
        #[serde(alias = "actor")]
        actors: OneOrMany,
    },
    /// Disconnect one actor (or several), as a crash or a closed tab would.
    Disconnect {
        #[serde(alias = "actor")]
        actors: OneOrMany,
    },
    /// Send an event; with `ack` (the default) the step records the answer.
    Emit {
        actor: String,
        event: String,
        #[serde(default)]
        payload: Option<Value>,
        #[serde(default = "yes")]
        ack: bool,
    },
    /// `/chat` join, with the ack.
    Join { actor: String, room: String },
    /// `/chat` leave, with the ack.
    Leave { actor: String, room: String },
    /// `getAll` with an ack: what is still queued for the actor's identity.
    GetAll { actor: String },
    /// `received` for the last message of event `of` this actor saw
    /// (pushed, or listed by `getAll`).
    Received { actor: String, of: String },
    /// Stop the hub and start it again on the same database (in-process hub only).
    Restart {},
}

fn yes() -> bool {
    true
}

/// One actor name or a list of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn names(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(name) => vec![name.as_str()],
            OneOrMany::Many(names) => names.iter().map(String::as_str).collect(),
        }
    }
}

/// What must be true after the action. Exactly one kind per entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The actor this expectation is about (not needed for `ack`).
    #[serde(default)]
    pub actor: Option<String>,
    /// The actor receives this event (with `with` fields, `count` times).
    #[serde(default)]
    pub receives: Option<String>,
    /// Fields the received payload must contain (a subset; `a.b` paths are nested objects).
    #[serde(default)]
    pub with: Option<Value>,
    /// How many such events (default 1).
    #[serde(default)]
    pub count: Option<usize>,
    /// The actor receives nothing at all during the quiet window.
    #[serde(default)]
    pub nothing: bool,
    /// The actor does not receive this event.
    #[serde(default)]
    pub not_receives: Option<String>,
    /// The ack of this step's action contains these fields.
    #[serde(default)]
    pub ack: Option<Value>,
    /// The connection was refused with a message starting with this.
    #[serde(default)]
    pub connect_error: Option<String>,
    /// The actor is connected once the action is done (the hub let it in).
    #[serde(default)]
    pub connected: bool,
}

/// Why a scenario file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name} is not a valid scenario: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
    #[error("no scenario {0} (see `parcel-hub scenario list`)")]
    NotFound(String),
}

/// A scenario with where it came from.
#[derive(Debug, Clone)]
pub struct ScenarioFile {
    /// Where it was read: a path, or `built-in 03-rooms.toml`.
    pub source: String,
    /// The file stem, e.g. `02-broadcast`, used in URLs.
    pub slug: String,
    /// The leading number of the file name.
    pub number: u32,
    pub scenario: Scenario,
}

/// Where the scenarios come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Library {
    /// The files of `scenarios/`, compiled into the binary.
    BuiltIn,
    /// Every `*.toml` of a folder, read on every request (edits show at once).
    Dir(PathBuf),
}

impl Library {
    /// A folder if one is given, else the built-in lessons.
    pub fn from_dir(dir: Option<PathBuf>) -> Self {
        dir.map_or(Library::BuiltIn, Library::Dir)
    }

    /// Every scenario, by number.
    pub fn load_all(&self) -> Result<Vec<ScenarioFile>, ScenarioError> {
        let mut files = match self {
            Library::BuiltIn => BUILT_IN
                .iter()
                .map(|(name, text)| parse_file(&format!("built-in {name}"), name, text))
                .collect::<Result<Vec<_>, _>>()?,
            Library::Dir(dir) => load_dir(dir)?,
        };
        files.sort_by(|a, b| (a.number, &a.slug).cmp(&(b.number, &b.slug)));
        Ok(files)
    }

    /// Finds a scenario by number (`3`), slug (`03-rooms`), or the path of
    /// a `.toml` file anywhere.
    pub fn find(&self, which: &str) -> Result<ScenarioFile, ScenarioError> {
        let as_path = Path::new(which);
        if which.ends_with(".toml") && as_path.exists() {
            return load(as_path);
        }
        let by_number = which.parse::<u32>().ok();
        self.load_all()?
            .into_iter()
            .find(|f| f.slug == which || Some(f.number) == by_number)
            .ok_or_else(|| ScenarioError::NotFound(which.to_owned()))
    }
}

impl std::fmt::Display for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Library::BuiltIn => f.write_str("the lessons built into this binary"),
            Library::Dir(dir) => write!(f, "the scenario files in {}", dir.display()),
        }
    }
}

impl Scenario {
    /// Whether the lesson needs a Redis (it runs several hubs).
    pub fn needs_redis(&self) -> bool {
        self.hubs > 1
    }

    /// Parses and checks a scenario (actor names, one kind per expectation).
    pub fn parse(text: &str) -> Result<Self, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        scenario.check()?;
        Ok(scenario)
    }

    fn check(&self) -> Result<(), String> {
        let known = |name: &str| self.actors.iter().any(|a| a.name == name);
        for (i, step) in self.steps.iter().enumerate() {
            let n = i + 1;
            for name in step.action.actor_names() {
                if !known(name) {
                    return Err(format!("step {n}: unknown actor {name:?}"));
                }
            }
            for e in &step.expect {
                let kinds = [
                    e.receives.is_some(),
                    e.nothing,
                    e.not_receives.is_some(),
                    e.ack.is_some(),
                    e.connect_error.is_some(),
                    e.connected,
                ]
                .iter()
                .filter(|k| **k)
                .count();
                if kinds != 1 {
                    return Err(format!(
                        "step {n}: each expectation needs exactly one of receives, nothing, not_receives, ack, connect_error, connected"
                    ));
                }
                let needs_actor = e.ack.is_none();
                match (&e.actor, needs_actor) {
                    (None, true) => return Err(format!("step {n}: expectation without an actor")),
                    (Some(name), _) if !known(name) => {
                        return Err(format!("step {n}: unknown actor {name:?}"));
                    }
                    _ => {}
                }
            }
        }
        if let Some(actor) = self
            .actors
            .iter()
            .find(|a| a.hub == 0 || a.hub > self.hubs.max(1))
        {
            return Err(format!(
                "actor {:?} names hub {}, but the scenario runs {} (hubs = N)",
                actor.name, actor.hub, self.hubs
            ));
        }
        let mut names: Vec<_> = self.actors.iter().map(|a| a.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err("two actors share a name".into());
        }
        Ok(())
    }
}

impl Action {
    /// Every actor the action names.
    pub fn actor_names(&self) -> Vec<&str> {
        match self {
            Action::Connect { actors } | Action::Disconnect { actors } => actors.names(),
            Action::Emit { actor, .. }
            | Action::Join { actor, .. }
            | Action::Leave { actor, .. }
            | Action::GetAll { actor }
            | Action::Received { actor, .. } => vec![actor.as_str()],
            Action::Restart {} => vec![],
        }
    }

    /// The action in a few words, for people.
    pub fn describe(&self) -> String {
        match self {
            Action::Connect { actors } => format!("connect {}", actors.names().join(", ")),
            Action::Disconnect { actors } => format!("disconnect {}", actors.names().join(", ")),
            Action::Emit {
                actor,
                event,
                payload,
                ack,
            } => {
                let payload = payload.as_ref().map(Value::to_string).unwrap_or_default();
                let ack = if *ack { " (with ack)" } else { "" };
                format!("{actor} emits {event:?} {payload}{ack}")
            }
            Action::Join { actor, room } => format!("{actor} joins room {room:?}"),
            Action::Leave { actor, room } => format!("{actor} leaves room {room:?}"),
            Action::GetAll { actor } => format!("{actor} asks for everything queued (getAll)"),
            Action::Received { actor, of } => {
                format!("{actor} confirms the last {of:?} it got (received)")
            }
            Action::Restart {} => "the hub restarts".into(),
        }
    }
}

/// Parses the text of the file `file_name` (its slug and number come from the name).
fn parse_file(source: &str, file_name: &str, text: &str) -> Result<ScenarioFile, ScenarioError> {
    let scenario = Scenario::parse(text).map_err(|message| ScenarioError::Invalid {
        source_name: source.to_owned(),
        message,
    })?;
    let slug = file_name
        .strip_suffix(".toml")
        .unwrap_or(file_name)
        .to_owned();
    let number = slug
        .split(['-', '_'])
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(ScenarioFile {
        source: source.to_owned(),
        slug,
        number,
        scenario,
    })
}

/// Loads one scenario file.
pub fn load(path: &Path) -> Result<ScenarioFile, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_owned(),
        source,
    })?;
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_file(&path.display().to_string(), &name, &text)
}

/// Every `*.toml` in `dir`.
fn load_dir(dir: &Path) -> Result<Vec<ScenarioFile>, ScenarioError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ScenarioError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| ScenarioError::Read {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|e| e == "toml") {
            files.push(load(&path)?);
        }
    }
    Ok(files)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
title = "t"
teaches = "x"
[[actors]]
name = "alice"
namespace = "/chat"
auth = { name = "alice" }
[[steps]]
say = "connect"
action = "connect"
actors = ["alice"]
[[steps]]
say = "talk"
action = "emit"
actor = "alice"
event = "chat message"
payload = { text = "hi" }
[[steps.expect]]
ack = { ok = true }
[[steps.expect]]
actor = "alice"
nothing = true
"#;

    #[test]
    fn a_scenario_file_parses_into_steps() {
        let s = Scenario::parse(SAMPLE).unwrap();
        assert_eq!(s.steps.len(), 2);
        assert!(matches!(&s.steps[1].action, Action::Emit { ack: true, .. }));
        assert_eq!(s.steps[1].expect.len(), 2);
    }

    #[test]
    fn every_built_in_scenario_parses() {
        let files = Library::BuiltIn.load_all().unwrap();
        assert_eq!(files.len(), BUILT_IN.len());
        assert_eq!(Library::BuiltIn.find("3").unwrap().number, 3);
    }

    #[test]
    fn mistakes_in_a_scenario_are_named() {
        let bad = SAMPLE.replace("actor = \"alice\"\nevent", "actor = \"bob\"\nevent");
        assert!(
            Scenario::parse(&bad)
                .unwrap_err()
                .contains("unknown actor \"bob\"")
        );
        let bad = SAMPLE.replace("nothing = true", "nothing = true\nreceives = \"x\"");
        assert!(Scenario::parse(&bad).unwrap_err().contains("exactly one"));
        let bad = SAMPLE.replace("action = \"connect\"", "action = \"teleport\"");
        assert!(Scenario::parse(&bad).is_err());
    }
}
