//! The `parcel-hub` binary: parse the command line, start tracing, bind, serve.

use std::io::Write;
use std::sync::Arc;

use clap::Parser;
use parcel_hub::app::{App, LessonHubs};
use parcel_hub::cli::{Cli, Command};
use parcel_hub::telemetry;

/// mimalloc rather than the C library's allocator: a frame is allocated on
/// one thread and freed on another (the worker that broadcasts, the socket
/// writer that sends), and glibc's arenas took a lock for each such free,
/// most of the hub's futex calls under W1. Without transparent huge pages
/// (`no_thp`), which made the kernel zero 2 MiB at a time while thousands
/// of sockets connected and raised the RSS of an idle connection by a
/// quarter.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Built by hand rather than by `#[tokio::main]`: `--workers` sets how
    // many threads run it.
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = cli.config.workers {
        runtime.worker_threads(usize::from(workers));
    }
    let outcome = match runtime.build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => Err(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match outcome {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            // One readable line (with its causes), not a debug dump.
            eprintln!("parcel-hub: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let Cli { config, command } = cli;
    match command {
        Some(Command::Scenario { command }) => {
            // The learner reads the runner's own output, in one piece: the
            // lesson hub's lines only when asked (`--verbose` or RUST_LOG).
            let filter = if command.verbose() {
                telemetry::DEFAULT_FILTER
            } else {
                "off"
            };
            let _logs = telemetry::init_with(filter);
            let launcher = Arc::new(LessonHubs::new(&config));
            let code = parcel_hub::scenario::cli::main(command, launcher).await?;
            return Ok(exit_code(code));
        }
        Some(Command::Bench { command }) => {
            let _logs = telemetry::init_with("warn");
            return Ok(exit_code(parcel_hub::bench::main(command).await?));
        }
        Some(Command::Backup { file, db }) => {
            let _logs = telemetry::init_with("warn");
            parcel_hub::cli::backup(&file, db.as_deref().unwrap_or(&config.db))?;
            return Ok(0);
        }
        Some(Command::Completions { shell }) => {
            parcel_hub::cli::completions(shell);
            return Ok(0);
        }
        None => {}
    }
    // Dropped when `run` returns, after the last line is logged.
    let _logs = telemetry::init_as(config.log_format);
    let app = App::build(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    // A closed stdout (a supervisor that stopped reading) must not stop
    // the hub, as `println!` would by panicking.
    let banner = app.banner(addr, &config);
    if let Err(e) = writeln!(std::io::stdout().lock(), "{banner}") {
        tracing::warn!(error = %e, "cannot print the start-up message to stdout; serving anyway");
    }
    app.serve(listener, shutdown_signal()).await?;
    Ok(0)
}

fn exit_code(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(1)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
