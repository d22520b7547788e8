//! Tracing set-up, done once at start-up.

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str =
    "parcel_hub=info,socketioxide=warn,engineioxide=warn,tower_http=warn";

/// Logs to stderr, filtered by `RUST_LOG` (or [`DEFAULT_FILTER`]).
pub fn init() {
    init_with(DEFAULT_FILTER);
}

/// Like [`init`] with another default filter (quieter for the scenario CLI).
pub fn init_with(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // A second call (tests starting several hubs) keeps the first subscriber.
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
