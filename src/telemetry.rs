//! Tracing set-up, done once at start-up: `pretty` lines for people, or
//! `json` (one object per line with its fields) for log collectors.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// How log lines look (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, coloured on a terminal.
    #[default]
    Pretty,
    /// One JSON object per line: `timestamp`, `level`, `target`, and the
    /// event's `fields` (its message included).
    Json,
}

/// Characters of a client-supplied string (an event or namespace name)
/// that a log line keeps.
pub const CLIENT_TEXT_CHARS: usize = 64;
/// Characters of a refusal's reason that a log line keeps (the reason may
/// quote what the client sent).
pub const REASON_CHARS: usize = 256;

/// `text` cut to `max` characters, with `...` when something was cut: a
/// client must not be able to write 60 KB into one log line.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}...", &text[..end])),
    }
}

/// A client-supplied name, clipped to [`CLIENT_TEXT_CHARS`].
pub fn clip_name(text: &str) -> std::borrow::Cow<'_, str> {
    clip(text, CLIENT_TEXT_CHARS)
}

/// Crates whose debug and trace lines print whole packets or requests,
/// handshake `auth` (tokens) and `Authorization` headers included.
const PACKET_LOGGERS: [&str; 5] = [
    "socketioxide",
    "engineioxide",
    "hyper",
    "tungstenite",
    "tokio_tungstenite",
];

/// Whether a log line may be written whatever `RUST_LOG` says: never the
/// debug and trace lines of [`PACKET_LOGGERS`], which would print tokens.
pub fn no_secrets(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() <= tracing::Level::INFO
        || !PACKET_LOGGERS
            .iter()
            .any(|name| meta.target().starts_with(name))
}

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str =
    "parcel_hub=info,socketioxide=warn,engineioxide=warn,tower_http=warn";

/// Keeps the log writer thread running; dropping it writes out what is left.
/// Hold it for as long as the process logs.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Logs to stderr, filtered by `RUST_LOG` (or [`DEFAULT_FILTER`]).
pub fn init() -> LogGuard {
    init_with(DEFAULT_FILTER)
}

/// Like [`init`], in the given format.
pub fn init_as(format: LogFormat) -> LogGuard {
    init_formatted(DEFAULT_FILTER, format)
}

/// Like [`init`] with another default filter (quieter for the scenario CLI).
///
/// Lines are formatted where they are logged but written by a thread of
/// their own through a buffer, flushed whenever no line is waiting: under
/// load many lines share one `write`, and no async worker ever waits on
/// stderr. Nothing is dropped; a full channel (128k lines) slows the
/// loggers down instead. Colours only on a terminal, and never with `NO_COLOR`.
pub fn init_with(default_filter: &str) -> LogGuard {
    init_formatted(default_filter, LogFormat::Pretty)
}

fn init_formatted(default_filter: &str, format: LogFormat) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let most_verbose = filter.max_level_hint();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // A second call (tests starting several hubs) keeps the first subscriber.
    let installed = match format {
        LogFormat::Pretty => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(writer)
                    .with_filter(filter)
                    .with_filter(tracing_subscriber::filter::filter_fn(no_secrets)),
            )
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(writer)
                    .with_filter(filter)
                    .with_filter(tracing_subscriber::filter::filter_fn(no_secrets)),
            )
            .try_init(),
    };
    match installed {
        Ok(()) => {
            bridge_only_what_is_kept(most_verbose);
            LogGuard {
                _writer: Some(guard),
            }
        }
        Err(_already_set) => LogGuard { _writer: None },
    }
}

/// Tells the `log` crate which levels the filter may keep. The bridge
/// that forwards `log` records to tracing is installed open to every level
/// (the `no_secrets` layer gives no hint), so every `log::trace!` of a
/// dependency (tungstenite: one per WebSocket frame sent) went through
/// tracing's dispatch before being dropped, about 3 % of a hub's CPU under
/// W1. With the filter's own most verbose level, it stops at one compare.
fn bridge_only_what_is_kept(most_verbose: Option<tracing::level_filters::LevelFilter>) {
    use tracing::level_filters::LevelFilter;
    let level = match most_verbose {
        None | Some(LevelFilter::TRACE) => log::LevelFilter::Trace,
        Some(LevelFilter::DEBUG) => log::LevelFilter::Debug,
        Some(LevelFilter::INFO) => log::LevelFilter::Info,
        Some(LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(_) => log::LevelFilter::Off,
    };
    log::set_max_level(level);
}
