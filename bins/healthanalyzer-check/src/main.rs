//! `healthanalyzer-check`: runs scenarios against a FHIR R4 base URL and reports what it found.
//!
//! Exit codes: 0 no error findings, 1 at least one error finding, 2 bad arguments or scenario
//! files (nothing was run).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use healthanalyzer_check::{Error, Runner, Scenario, report, suites};

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
                eprintln!("healthanalyzer-check: {e}");
            }
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, Error> {
    if args.list {
        let mut text = String::new();
        for name in suites::SUITES {
            let s = suites::builtin(name)?;
            text.push_str(&format!("{name:<12} {}\n", s.description));
        }
        print_out(&text);
        return Ok(ExitCode::SUCCESS);
    }
    let base = args
        .base
        .ok_or_else(|| Error::BaseUrl("(none given: pass --base URL)".to_owned()))?;
    if !(args.timeout_secs.is_finite() && args.timeout_secs > 0.0) {
        return Err(Error::BadVariable(format!(
            "--timeout-secs {}",
            args.timeout_secs
        )));
    }
    let mut scenarios = Vec::new();
    let names = if args.suites.is_empty() && args.scenarios.is_empty() {
        vec!["vital-signs".to_owned(), "errors".to_owned()]
    } else {
        args.suites
    };
    for name in &names {
        scenarios.push(suites::builtin(name)?);
    }
    for file in &args.scenarios {
        scenarios.push(Scenario::from_file(file)?);
    }
    let mut runner = Runner::new(&base)?.timeout(Duration::from_secs_f64(args.timeout_secs));
    for v in &args.vars {
        let (k, val) = v
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| Error::BadVariable(v.clone()))?;
        runner = runner.var(k.trim(), val);
    }
    for h in &args.headers {
        let (k, val) = h
            .split_once(':')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| Error::BadVariable(format!("header `{h}` (want \"Name: value\")")))?;
        runner = runner.header(k.trim(), val.trim());
    }
    if let Some(t) = &args.token {
        runner = runner.header("Authorization", &format!("Bearer {t}"));
    }
    runner.check_variables(&scenarios)?;
    let run = runner.run(&scenarios).await;
    if let Some(path) = &args.junit {
        write(path, &report::junit(&run))?;
    }
    if let Some(path) = &args.report {
        write(path, &report::markdown(&run))?;
    }
    print_out(&report::summary(&run));
    Ok(if run.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn write(path: &std::path::Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
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
