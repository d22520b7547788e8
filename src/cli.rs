//! The command line: the hub's settings ([`Config`]) and the subcommands.
//!
//! This sits above everything it starts: the server ([`crate::app`]), the
//! lessons in the terminal ([`crate::scenario::cli`]), the load generator
//! ([`crate::bench`]), the backup of a database file and the shell
//! completions. Nothing below imports it, so the server does not depend
//! on the load generator.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use crate::config::Config;

/// Shown under `--help`: what to type for the common cases, and the
/// environment the hub reads.
const AFTER_HELP: &str = "\
Examples:
  parcel-hub                                   serve on http://127.0.0.1:3000 with the demo credentials
  parcel-hub --listen 0.0.0.0:3000 --credentials hub.toml
                                               serve on every interface with real credentials
  parcel-hub --redis redis://127.0.0.1:6379    join a cluster of hubs sharing one Redis
  parcel-hub --log-format json --retain-delivered 30
                                               JSON logs; delivered orders kept 30 days
  parcel-hub --cors-origin https://admin.socket.io
                                               let the hosted Socket.IO Admin UI connect
  parcel-hub backup backup.db                  copy parcel-hub.db while a hub serves it
  parcel-hub scenario run 3 --step             play a lesson in the terminal
  parcel-hub bench w1 --versus-relay --runs 5  measure fan-out against the bare relay
  parcel-hub completions bash > /etc/bash_completion.d/parcel-hub

Environment:
  Every flag also reads the variable shown beside it ([env: PARCEL_HUB_...]);
  a flag given on the command line wins. PARCEL_HUB_CORS_ORIGIN takes several
  origins separated by commas.
  RUST_LOG    what is logged (default parcel_hub=info,socketioxide=warn,engineioxide=warn,tower_http=warn)
  NO_COLOR    no colours in logs and lesson output";

/// The command line: the hub's settings, or a subcommand.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "parcel-hub",
    version,
    about = "A real-time parcel-delivery hub on Socket.IO",
    long_about = "A real-time parcel-delivery hub on Socket.IO.\n\n\
                  Without a subcommand it serves: the pages, the JSON API, /metrics \
                  and the Socket.IO namespaces /vendor, /distributor, /chat, /inspector \
                  and /admin (the official Socket.IO Admin UI).",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Scripted lessons: list them, or play one with real clients.
    Scenario {
        #[command(subcommand)]
        command: crate::scenario::cli::ScenarioCommand,
    },
    /// The load generator: four workloads, and the bare relay to compare with.
    Bench {
        #[command(subcommand)]
        command: crate::bench::BenchCommand,
    },
    /// Copy the SQLite database to FILE, consistent even while a hub serves it.
    ///
    /// Uses SQLite's online backup: the copy holds every order and queued
    /// message acknowledged before it began. To restore, stop the hub and
    /// start it with `--db FILE` (or move FILE to the database's path,
    /// removing any `-wal` and `-shm` files left beside the old one).
    #[command(
        after_help = "Example:\n  parcel-hub backup --db /var/lib/parcel-hub/hub.db /backups/hub-$(date +%F).db"
    )]
    Backup {
        /// Where to write the copy (a new file; an existing one is not overwritten).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The database to copy [default: the hub's --db, PARCEL_HUB_DB, or parcel-hub.db].
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Print the completion script of a shell to stdout.
    #[command(after_help = "Examples:\n  \
        parcel-hub completions bash > /etc/bash_completion.d/parcel-hub\n  \
        parcel-hub completions zsh > \"${fpath[1]}/_parcel-hub\"\n  \
        parcel-hub completions fish > ~/.config/fish/completions/parcel-hub.fish")]
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

/// Runs `parcel-hub backup`; prints what the copy holds.
pub fn backup(file: &std::path::Path, db: &std::path::Path) -> anyhow::Result<()> {
    let report = crate::store::SqliteStore::backup(db, file).map_err(|e| {
        let cause = std::error::Error::source(&e)
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "cannot back up {} to {}: {e}{cause}",
            db.display(),
            file.display()
        )
    })?;
    crate::out!(
        "backed up {} to {}: {} orders, {} queued messages, {} bytes",
        db.display(),
        file.display(),
        report.orders,
        report.queued_messages,
        report.bytes
    );
    Ok(())
}

/// Writes the completion script for `shell` to stdout (quietly stopping
/// if stdout closes, as `| head` does).
pub fn completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "parcel-hub", &mut script);
    crate::out!("{}", String::from_utf8_lossy(&script).trim_end());
}
