//! The command line: the hub's settings ([`Config`]) and the subcommands.
//!
//! This sits above everything it starts: the server ([`crate::app`]), the
//! lessons in the terminal ([`crate::scenario::cli`]) and the load
//! generator ([`crate::bench`]). Nothing below imports it, so the server
//! does not depend on the load generator.

use clap::Parser;

use crate::config::Config;

/// The command line: the hub's settings, or a subcommand.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "parcel-hub",
    version,
    about = "A real-time parcel-delivery hub on Socket.IO"
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
}
