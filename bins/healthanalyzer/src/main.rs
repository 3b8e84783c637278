//! `healthanalyzer`: the command line of Health Analyzer. The command line itself is the
//! `healthanalyzer-cli` library, over the built-in connector kinds; this binary adds the
//! allocator.

use std::process::ExitCode;

/// mimalloc: an import allocates and frees a few strings per record; with the system allocator
/// malloc and free took 12 % of an import's profile (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    healthanalyzer_cli::main(healthanalyzer_cli::Registry::builtin())
}
