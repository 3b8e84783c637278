//! Standard output that survives a closed pipe.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command line prints

use std::path::Path;

use crate::Failure;

/// `println!` that survives a closed pipe: `healthanalyzer patients | head` ends quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::print_line(format_args!($($arg)*))
    };
}
pub(crate) use out;

/// Writes `text` to `path`, or to stdout when there is none.
pub(crate) fn write_out(path: Option<&Path>, text: &str) -> Result<(), Failure> {
    match path {
        Some(p) => std::fs::write(p, text)
            .map_err(|e| Failure::Run(format!("writing {}: {e}", p.display()))),
        None => {
            emit(text);
            Ok(())
        }
    }
}

/// Writes `text` and a newline to stdout; a closed pipe (`| head`) ends the program quietly.
pub(crate) fn emit(text: &str) {
    print_line(format_args!("{text}"));
}

/// Set once stdout is found closed: nothing more is written to it.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes a line to stdout. After a closed pipe (`| head`) the rest of the output is dropped
/// quietly and the command goes on to the exit code it would have had; any other failure to
/// write is exit 1.
pub(crate) fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            return;
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}
