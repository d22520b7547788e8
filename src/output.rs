//! Standard output for the subcommands (`scenario`, `bench`).
//!
//! `println!` panics when the reader of a pipe goes away
//! (`parcel-hub scenario list | head`). A command-line tool should stop
//! quietly then, like any Unix filter; the [`out!`](crate::out) macro does.

use std::io::Write;

/// Writes one line to stdout; a closed pipe ends the process with success.
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{args}").and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        tracing::warn!(error = %e, "cannot write to stdout");
    }
}

/// `println!` for the subcommands, quiet on a closed pipe.
#[macro_export]
macro_rules! out {
    () => { $crate::output::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}
