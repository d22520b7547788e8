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
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    use tracing_subscriber::util::SubscriberInitExt;
    // A second call (tests starting several hubs) keeps the first subscriber.
    let installed = subscriber(filter, format, ansi, writer).try_init();
    match installed {
        Ok(()) => LogGuard {
            _writer: Some(guard),
        },
        Err(_already_set) => LogGuard { _writer: None },
    }
}

/// The subscriber `init` installs: `format` lines to `writer`, through
/// `no_secrets` and then `filter`.
///
/// The filter applied last (`filter`, the outermost) gives the subscriber
/// its level hint, which `try_init` also hands to the `log` crate. With
/// `no_secrets` outermost the hint was "everything", and every
/// `log::trace!` of tungstenite (several per frame sent) went through the
/// log bridge only to be refused: W1 spent 15 % more CPU.
fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::SubscriberExt;
    match format {
        LogFormat::Pretty => Box::new(
            tracing_subscriber::registry().with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(writer)
                    .with_filter(filter_fn(no_secrets))
                    .with_filter(filter),
            ),
        ),
        LogFormat::Json => Box::new(
            tracing_subscriber::registry().with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(writer)
                    .with_filter(filter_fn(no_secrets))
                    .with_filter(filter),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;

    /// The level hint is the filter's, in both formats: lines below it
    /// (the `log` crate's included) are skipped before any filter runs.
    #[test]
    fn the_subscriber_tells_the_filters_level() {
        for format in [LogFormat::Pretty, LogFormat::Json] {
            for (directives, level) in [
                (DEFAULT_FILTER, LevelFilter::INFO),
                ("warn", LevelFilter::WARN),
                ("parcel_hub=debug,warn", LevelFilter::DEBUG),
            ] {
                let built = subscriber(EnvFilter::new(directives), format, false, std::io::sink);
                assert_eq!(
                    built.max_level_hint(),
                    Some(level),
                    "{format:?} {directives}"
                );
            }
        }
    }

    /// `no_secrets` still holds whatever the filter lets through.
    #[test]
    fn packet_loggers_never_log_below_info() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lines").extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let built = subscriber(
            EnvFilter::new("trace"),
            LogFormat::Pretty,
            false,
            move || writer.clone(),
        );
        tracing::subscriber::with_default(built, || {
            tracing::debug!(target: "socketioxide::packet", "a packet with a token");
            tracing::info!(target: "socketioxide::packet", "a socketioxide info line");
            tracing::trace!(target: "parcel_hub", "a hub trace line");
        });
        let written = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
        assert!(!written.contains("a packet with a token"), "{written}");
        assert!(written.contains("a socketioxide info line"), "{written}");
        assert!(written.contains("a hub trace line"), "{written}");
    }
}
