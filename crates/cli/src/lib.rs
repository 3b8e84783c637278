//! The [Health Analyzer](https://github.com/os2health/health-analyzer) command line as a
//! library: `healthanalyzer demo | sync | import | export | report | alerts | patients`, with
//! progress on stderr, Ctrl-C handling (the batch in hand is stored with its cursor),
//! `--db`, `--config`, `--json` and the exit codes of [`EXIT_CODES`].
//!
//! The `healthanalyzer` binary is [`main`] over [`Registry::builtin`]. A team with a connector
//! of its own makes the same command line with its kind added, and names the kind in
//! `healthanalyzer.toml` (`[[source]] kind = "gateway"`):
//!
//! ```no_run
//! use std::process::ExitCode;
//! use std::sync::Arc;
//!
//! use healthanalyzer_cli::Registry;
//! # use healthanalyzer_source::{Batch, Cursor, Source};
//! # #[derive(Debug)]
//! # struct Gateway { id: String }
//! # #[async_trait::async_trait]
//! # impl Source for Gateway {
//! #     fn id(&self) -> &str { &self.id }
//! #     fn kind(&self) -> &str { "gateway" }
//! #     async fn pull(&self, _: &Cursor, _: usize) -> healthanalyzer_source::Result<Batch> {
//! #         Ok(Batch::done(Cursor::start()))
//! #     }
//! # }
//!
//! fn main() -> ExitCode {
//!     let mut registry = Registry::builtin();
//!     registry.register("gateway", |spec, _cx| {
//!         Ok(Arc::new(Gateway { id: spec.id.clone() }))
//!     });
//!     healthanalyzer_cli::main(registry)
//! }
//! ```
//!
//! [`run`] is the same without the process around it (arguments already parsed, no exit):
//! for a program that adds commands of its own.

mod args;
mod commands;
mod output;
mod progress;

pub use args::{AnalysisArgs, Cli, Command, EXIT_CODES, ExportFormat, ReportFormat};
pub use commands::run;
/// The connector registry [`main`] and [`run`] build sources from.
pub use healthanalyzer_pipeline::Registry;

use std::process::ExitCode;

use clap::Parser;

/// How a command failed, and so the process's exit code ([`Failure::exit_code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// Bad usage or configuration; nothing was written (exit 2).
    Usage(String),
    /// A run-time failure: a source, the store, a server (exit 1).
    Run(String),
    /// Records were refused; the valid ones are stored (exit 3).
    Refused(u64),
    /// Interrupted (exit 130).
    Interrupted,
}

impl Failure {
    /// The exit code of [`EXIT_CODES`].
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Run(_) => 1,
            Failure::Refused(_) => 3,
            Failure::Interrupted => 130,
        }
    }

    /// What to print on stderr (after `error: `); `None` for an interruption, which the
    /// Ctrl-C handler has announced.
    pub fn message(&self) -> Option<String> {
        match self {
            Failure::Usage(m) | Failure::Run(m) => Some(m.clone()),
            Failure::Refused(n) => Some(format!(
                "{n} record{} refused (listed above); the valid ones are stored. Fix the input, or pass --accept-partial to accept a partial import",
                if *n == 1 { " was" } else { "s were" }
            )),
            Failure::Interrupted => None,
        }
    }
}

impl From<healthanalyzer_pipeline::Error> for Failure {
    fn from(e: healthanalyzer_pipeline::Error) -> Failure {
        let text = healthanalyzer_pipeline::error_chain(&e);
        match e {
            healthanalyzer_pipeline::Error::Config(_)
            | healthanalyzer_pipeline::Error::UnknownScheme { .. } => Failure::Usage(text),
            _ => Failure::Run(text),
        }
    }
}

impl From<healthanalyzer_store::Error> for Failure {
    fn from(e: healthanalyzer_store::Error) -> Failure {
        Failure::Run(healthanalyzer_pipeline::error_chain(&e))
    }
}

/// The whole command line: parses the process's arguments, runs the command on a Tokio
/// runtime with the connector kinds of `registry`, prints a failure on stderr and returns the
/// exit code. A binary's `main` is this one call.
pub fn main(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    // Diagnostics on stderr, for `RUST_LOG=debug healthanalyzer sync`; warnings only by
    // default (the commands say what they do on their own). Nothing logged names a person's
    // identifier, a token or a value.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return report(&Failure::Run(format!("starting the async runtime: {e}"))),
    };
    match runtime.block_on(run(cli, &registry)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report(&f),
    }
}

#[allow(clippy::print_stderr)] // a command line reports its failure on stderr
fn report(f: &Failure) -> ExitCode {
    if let Some(m) = f.message() {
        eprintln!("error: {m}");
    }
    ExitCode::from(f.exit_code())
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
