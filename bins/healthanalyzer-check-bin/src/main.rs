//! `healthanalyzer-check`: runs scenarios and FHIR TestScripts against a FHIR R4 base URL and
//! reports what it found.
//!
//! Exit codes: 0 no error findings, 1 at least one error finding, 2 bad arguments or scenario
//! files (nothing was run).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use healthanalyzer_check::{Error, Options, report, suites};

/// Runs scripted checks against a FHIR R4 server: the built-in suites (vital-signs, errors,
/// chain) and scenario files. Writes a console summary, and optionally JUnit XML and a Markdown
/// triage report that names who should fix each finding.
#[derive(Debug, Parser)]
#[command(version, name = "healthanalyzer-check")]
struct Args {
    /// The FHIR base URL (the one /metadata hangs off), e.g. http://127.0.0.1:8080/fhir.
    #[arg(long, env = "HEALTHANALYZER_CHECK_BASE")]
    base: Option<String>,
    /// A built-in suite to run (vital-signs, errors, chain); repeat for more. Without --suite
    /// and --scenario: vital-signs and errors.
    #[arg(long = "suite", value_name = "NAME")]
    suites: Vec<String>,
    /// A scenario file (TOML, see docs/scenarios.md); repeat for more.
    #[arg(long = "scenario", value_name = "FILE")]
    scenarios: Vec<PathBuf>,
    /// A variable for the scenarios, NAME=VALUE (e.g. source=http://partner/fhir); repeat.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// A header sent with every request, "Name: value"; repeat. Never written to reports.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// A bearer token sent with every request (better: set it in the environment).
    #[arg(long, env = "HEALTHANALYZER_CHECK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Seconds a step may take before it is a finding (a step may set its own).
    #[arg(long, default_value_t = 10.0)]
    timeout_secs: f64,
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the Markdown triage report here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// A FHIR R4 TestScript (JSON or XML), or a folder of them; repeat for more. Fixtures are
    /// read relative to the script.
    #[arg(long = "testscript", value_name = "PATH")]
    testscripts: Vec<PathBuf>,
    /// Maps a TestScript destination (its index or profile code) to a base URL, NAME=URL;
    /// repeat. Destinations not mapped go to --base.
    #[arg(long = "dest", value_name = "NAME=URL")]
    dests: Vec<String>,
    /// Write each TestScript's FHIR TestReport (JSON) into this folder.
    #[arg(long, value_name = "DIR")]
    testreports: Option<PathBuf>,
    /// List the built-in suites and stop.
    #[arg(long)]
    list: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("healthanalyzer-check: {}", e.with_causes());
            }
            ExitCode::from(2)
        }
    }
}

/// Runs what the arguments ask for; `Err` is exit code 2 (nothing ran, or a report could not be
/// written).
async fn run(args: Args) -> Result<ExitCode, Error> {
    if args.list {
        print_out(&suites::list()?);
        return Ok(ExitCode::SUCCESS);
    }
    let options = Options {
        base: args.base,
        suites: args.suites,
        scenarios: args.scenarios,
        vars: args.vars,
        headers: args.headers,
        token: args.token,
        timeout_secs: args.timeout_secs,
        junit: args.junit,
        report: args.report,
        testscripts: args.testscripts,
        dests: args.dests,
        testreports: args.testreports,
    };
    let run = options.run().await?;
    print_out(&report::summary(&run));
    Ok(if run.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes to stdout; a closed pipe (`| head`) is not an error, the exit code stays the run's.
fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed pipe is ignored; a failure of another kind leaves the written report files as
    // the record of the run.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
