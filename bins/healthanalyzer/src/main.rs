//! `healthanalyzer`: the command line of Health Analyzer. Argument parsing, progress and exit
//! codes only; the work is done by `healthanalyzer-pipeline` and the crates below it.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command line prints

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use healthanalyzer_analysis::RuleSet;
use healthanalyzer_fhir::{BundleKind, Profile, WriteOptions};
use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_model::{Catalog, Identifier};
use healthanalyzer_pipeline::{
    Config, Event, Outcome, Registry, SourceSummary, StopFlag, SyncOptions,
};
use healthanalyzer_report::{Options, Report};
use healthanalyzer_source::Source;
use healthanalyzer_source_files::FileOptions;
use healthanalyzer_store::{Filter, Store};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// `println!` that survives a closed pipe: `healthanalyzer patients | head` ends quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        print_line(format_args!($($arg)*))
    };
}

/// Where the demo writes its rules (unless the file exists).
const DEMO_RULES_FILE: &str = "healthanalyzer-demo-rules.toml";

const EXIT_CODES: &str = "\
Exit codes:
  0    done
  1    something failed at run time (a source, the store, a server); what was stored stays
  2    bad usage or configuration; nothing was written
  3    import or sync: records were refused (the summary and --json list them); the valid ones
       are stored. --accept-partial makes this 0
  130  interrupted (Ctrl-C): every source stored the batch in hand and its cursor; run again to go on

A closed stdout (`| head`) is not an error: the command ends with the exit code it would have had.

The store is --db, else $HEALTHANALYZER_DB, else `store` in healthanalyzer.toml, else
sqlite:healthanalyzer.db in the working directory.";

/// Health Analyzer: fetch, store, analyse and report health measurements; FHIR R4 on both sides.
#[derive(Parser)]
#[command(name = "healthanalyzer", version, after_help = EXIT_CODES)]
struct Cli {
    /// The store: sqlite:FILE, postgres://…, or memory:.
    #[arg(long, global = true, value_name = "URL")]
    db: Option<String>,
    /// The configuration file (default: healthanalyzer.toml, if there is one).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulated patients into the store, analysed, and an HTML report: no configuration needed.
    Demo {
        /// How many simulated patients (six scenarios in turn: steady, heart failure, COPD,
        /// diabetes, active, lapsed).
        #[arg(long, default_value_t = 12)]
        patients: usize,
        /// How many days of measurements, up to yesterday.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Where to write the report.
        #[arg(long, default_value = "healthanalyzer-report.html")]
        out: PathBuf,
    },
    /// Pull every source of the configuration into the store (resumes where the last sync stopped).
    Sync {
        /// Exit 0 even when records were refused (default: exit 3).
        #[arg(long)]
        accept_partial: bool,
    },
    /// Import files (format detected, or given) into the store; importing a file again adds nothing.
    Import {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The format (default: detected from the name and the first bytes).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(healthanalyzer_pipeline::FORMATS))]
        format: Option<String>,
        /// Who the files are about, `system|value`, when their records do not say.
        #[arg(long)]
        subject: Option<String>,
        /// The time zone of times written without an offset (default UTC).
        #[arg(long)]
        time_zone: Option<String>,
        /// The source id (default `file:<file name>`); part of every measurement id.
        #[arg(long)]
        source_id: Option<String>,
        /// Exit 0 even when records were refused (default: exit 3, with the valid ones stored).
        #[arg(long)]
        accept_partial: bool,
        /// How much of each FHIR resource is checked: `strict`, the whole R4 model as the server
        /// checks it (an element R4 does not define refuses the resource), or `lenient`, only
        /// what is mapped (faster; for sources trusted to send valid R4).
        #[arg(long, default_value = "strict", value_parser = ["strict", "lenient"])]
        validation: String,
    },
    /// Export measurements as FHIR (a Bundle or NDJSON), to a file, stdout, or a FHIR server.
    Export {
        /// `bundle` (a collection Bundle) or `ndjson`.
        #[arg(long, value_enum, default_value_t = ExportFormat::Bundle)]
        format: ExportFormat,
        /// Only this patient, `system|value`.
        #[arg(long)]
        patient: Option<String>,
        /// Only measurements taken at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<Timestamp>,
        /// The profile: vital-signs, dk-core, nl-core or no-basis.
        #[arg(long, default_value = "vital-signs")]
        profile: String,
        /// Write to this file (default: stdout).
        #[arg(long, conflicts_with = "push")]
        out: Option<PathBuf>,
        /// Push to this FHIR server instead, as transactions of conditional creates.
        #[arg(long, value_name = "FHIR_BASE_URL")]
        push: Option<String>,
    },
    /// A report: HTML (default, to healthanalyzer-report.html), Markdown or JSON (to stdout).
    Report {
        /// Only this patient, `system|value`.
        #[arg(long)]
        patient: Option<String>,
        /// html, md or json.
        #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
        format: ReportFormat,
        /// Where to write it (`-` for stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        analysis: AnalysisArgs,
    },
    /// The alerts the rules raise now, most urgent first.
    Alerts {
        /// Only this patient, `system|value`.
        #[arg(long)]
        patient: Option<String>,
        #[command(flatten)]
        analysis: AnalysisArgs,
    },
    /// The patients in the store, with how many measurements each.
    Patients,
}

#[derive(clap::Args)]
struct AnalysisArgs {
    /// Rules (TOML) instead of the configuration's.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// The report's "now" (RFC 3339; default: now).
    #[arg(long)]
    at: Option<Timestamp>,
    /// The period in days (default: the configuration's, else 90).
    #[arg(long)]
    days: Option<u32>,
    /// The patients' time zone (default: the configuration's, else the system's).
    #[arg(long)]
    time_zone: Option<String>,
    /// Glucose in `mmol/L` or `mg/dL` (default: the configuration's, else the unit most
    /// glucose readings came in, mmol/L when they do not say).
    #[arg(long, value_parser = ["mmol/L", "mg/dL"])]
    glucose_unit: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Bundle,
    Ndjson,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Html,
    Md,
    Json,
}

/// How a command failed.
enum Failure {
    /// Bad usage or configuration (exit 2).
    Usage(String),
    /// A run-time failure (exit 1).
    Run(String),
    /// Records were refused; the valid ones are stored (exit 3).
    Refused(u64),
    /// Interrupted (exit 130).
    Interrupted,
}

impl From<healthanalyzer_pipeline::Error> for Failure {
    fn from(e: healthanalyzer_pipeline::Error) -> Failure {
        match e {
            healthanalyzer_pipeline::Error::Config(_)
            | healthanalyzer_pipeline::Error::UnknownScheme { .. } => Failure::Usage(e.to_string()),
            other => Failure::Run(other.to_string()),
        }
    }
}

impl From<healthanalyzer_store::Error> for Failure {
    fn from(e: healthanalyzer_store::Error) -> Failure {
        Failure::Run(e.to_string())
    }
}

type Result<T> = std::result::Result<T, Failure>;

/// mimalloc: an import allocates and frees a few strings per record; with the system allocator
/// malloc and free took 12 % of an import's profile (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Run(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Refused(n)) => {
            eprintln!(
                "error: {n} record{} refused (listed above); the valid ones are stored. Fix the input, or pass --accept-partial to accept a partial import",
                if n == 1 { " was" } else { "s were" }
            );
            ExitCode::from(3)
        }
        Err(Failure::Interrupted) => ExitCode::from(130),
    }
}

fn config(cli: &Cli) -> Result<Config> {
    match &cli.config {
        Some(path) => Ok(Config::load(path)?),
        None if Path::new("healthanalyzer.toml").exists() => {
            Ok(Config::load(Path::new("healthanalyzer.toml"))?)
        }
        None => Ok(Config::default()),
    }
}

async fn store(cli: &Cli, config: &Config) -> Result<Arc<dyn Store>> {
    let url = cli.db.clone().unwrap_or_else(|| config.store_url());
    Ok(healthanalyzer_pipeline::open_store(&url).await?)
}

fn identifier(text: &str) -> Identifier {
    match text.split_once('|') {
        Some((system, value)) => Identifier::new(system, value),
        None => Identifier::local(text),
    }
}

fn zone(name: Option<&str>) -> Result<TimeZone> {
    match name {
        Some(n) => TimeZone::get(n).map_err(|e| {
            Failure::Usage(format!(
                "time zone {n:?}: {e} (use an IANA name such as Europe/Copenhagen)"
            ))
        }),
        None => Ok(TimeZone::system()),
    }
}

async fn run(cli: Cli) -> Result<()> {
    let config = config(&cli)?;
    match &cli.command {
        Command::Demo {
            patients,
            days,
            out,
        } => demo(&cli, &config, *patients, *days, out).await,
        Command::Sync { accept_partial } => {
            if config.sources.is_empty() {
                return Err(Failure::Usage(
                    "no sources to sync: write [[source]] tables in healthanalyzer.toml (see docs/configuration.md), or try `healthanalyzer demo`".into(),
                ));
            }
            let sources = Registry::builtin().build_all(&config)?;
            // Before the store is opened: a sync that cannot start writes nothing.
            let failed =
                healthanalyzer_pipeline::check_sources(&sources, &sync_options(&config)).await;
            if !failed.is_empty() {
                let lines: Vec<String> = failed
                    .iter()
                    .map(|(id, why)| format!("source {id}: {why}"))
                    .collect();
                return Err(Failure::Run(format!(
                    "{}; nothing was written",
                    lines.join("; ")
                )));
            }
            let store = store(&cli, &config).await?;
            let summaries = sync(&cli, &config, store, &sources).await;
            finish(&cli, &summaries, *accept_partial)
        }
        Command::Import {
            files,
            format,
            subject,
            time_zone,
            source_id,
            accept_partial,
            validation,
        } => {
            let mut options = FileOptions::new(identifier(subject.as_deref().unwrap_or("unknown")));
            options.validation = validation
                .parse()
                .map_err(|e: healthanalyzer_fhir::Error| Failure::Usage(e.to_string()))?;
            options.identifiers = config.sync.identifiers;
            options.zone = match time_zone {
                Some(_) => zone(time_zone.as_deref())?,
                None => TimeZone::UTC,
            };
            if source_id.is_some() && files.len() > 1 {
                return Err(Failure::Usage(
                    "--source-id names one source: import one file with it".into(),
                ));
            }
            let mut sources: Vec<Arc<dyn Source>> = Vec::new();
            for f in files {
                if !f.is_file() {
                    return Err(Failure::Usage(format!("{}: no such file", f.display())));
                }
                let id = source_id.clone().unwrap_or_else(|| {
                    format!(
                        "file:{}",
                        f.file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
                    )
                });
                let s = healthanalyzer_pipeline::file_source(
                    &id,
                    f,
                    format.as_deref(),
                    options.clone(),
                )?;
                sources.push(Arc::new(s));
            }
            let store = store(&cli, &config).await?;
            let summaries = sync(&cli, &config, store, &sources).await;
            finish(&cli, &summaries, *accept_partial)
        }
        Command::Export {
            format,
            patient,
            since,
            profile,
            out,
            push,
        } => {
            let profile: Profile = profile
                .parse()
                .map_err(|e: healthanalyzer_fhir::Error| Failure::Usage(e.to_string()))?;
            let store = store(&cli, &config).await?;
            let who = patient.as_deref().map(identifier);
            let options = WriteOptions {
                catalog: Catalog::builtin(),
                profile,
            };
            if push.is_none() && matches!(format, ExportFormat::Ndjson) {
                // Streamed a page at a time: flat memory for any size.
                let (patients, measurements) = match out {
                    Some(path) => {
                        let file = std::fs::File::create(path).map_err(|e| {
                            Failure::Run(format!("writing {}: {e}", path.display()))
                        })?;
                        let mut w = std::io::BufWriter::new(file);
                        healthanalyzer_pipeline::export_ndjson(
                            store.as_ref(),
                            who.as_ref(),
                            *since,
                            &options,
                            &mut w,
                        )
                        .await?
                    }
                    None => {
                        let mut w = std::io::BufWriter::new(std::io::stdout());
                        match healthanalyzer_pipeline::export_ndjson(
                            store.as_ref(),
                            who.as_ref(),
                            *since,
                            &options,
                            &mut w,
                        )
                        .await
                        {
                            Err(healthanalyzer_pipeline::Error::Output(m))
                                if m.contains("Broken pipe") =>
                            {
                                return Ok(());
                            }
                            other => other?,
                        }
                    }
                };
                if out.is_some() && !cli.json {
                    eprintln!("exported {patients} patients and {measurements} measurements");
                }
                return Ok(());
            }
            let (subjects, measurements) =
                healthanalyzer_pipeline::load(store.as_ref(), who.as_ref(), *since).await?;
            if let Some(url) = push {
                let client = healthanalyzer_source_fhir::FhirClient::new(
                    healthanalyzer_source_fhir::ServerConfig::new(url.clone()),
                )
                .map_err(|e| Failure::Usage(format!("{url}: {e}")))?;
                let sink = healthanalyzer_source_fhir::FhirSink::new(client, options);
                let pushed = sink
                    .push(&subjects, &measurements)
                    .await
                    .map_err(|e| Failure::Run(format!("pushing to {url}: {e}")))?;
                if cli.json {
                    out!(
                        "{}",
                        serde_json::json!({"created": pushed.created, "existing": pushed.existing, "bundles": pushed.bundles})
                    );
                } else {
                    out!(
                        "pushed {} patients and {} measurements to {url}: {} created, {} already there ({} transactions)",
                        subjects.len(),
                        measurements.len(),
                        pushed.created,
                        pushed.existing,
                        pushed.bundles
                    );
                }
                return Ok(());
            }
            let text = match format {
                ExportFormat::Bundle => healthanalyzer_fhir::write_bundle(
                    BundleKind::Collection,
                    &subjects,
                    &measurements,
                    &options,
                )
                .map(|j| j.to_string()),
                ExportFormat::Ndjson => {
                    healthanalyzer_fhir::write_ndjson(&subjects, &measurements, &options)
                }
            }
            .map_err(|e| Failure::Run(format!("writing FHIR: {e}")))?;
            write_out(out.as_deref(), &text)?;
            if out.is_some() && !cli.json {
                eprintln!(
                    "exported {} patients and {} measurements",
                    subjects.len(),
                    measurements.len()
                );
            }
            Ok(())
        }
        Command::Report {
            patient,
            format,
            out,
            analysis,
        } => {
            let store = store(&cli, &config).await?;
            let report =
                build_report(&config, store.as_ref(), analysis, patient.as_deref()).await?;
            let (text, default_out) = match format {
                ReportFormat::Html => (
                    report.to_html().map_err(|e| Failure::Run(e.to_string()))?,
                    Some(PathBuf::from("healthanalyzer-report.html")),
                ),
                ReportFormat::Md => (
                    report
                        .to_markdown()
                        .map_err(|e| Failure::Run(e.to_string()))?,
                    None,
                ),
                ReportFormat::Json => (report.to_json(), None),
            };
            let target = out.clone().or(default_out);
            let target = target.filter(|p| p.as_os_str() != "-");
            write_out(target.as_deref(), &text)?;
            if let Some(p) = target {
                eprintln!(
                    "report of {} patients ({} red, {} yellow): {}",
                    report.totals.patients,
                    report.totals.red,
                    report.totals.yellow,
                    absolute(&p).display()
                );
            }
            Ok(())
        }
        Command::Alerts { patient, analysis } => {
            let store = store(&cli, &config).await?;
            let report =
                build_report(&config, store.as_ref(), analysis, patient.as_deref()).await?;
            print_alerts(&cli, &report);
            Ok(())
        }
        Command::Patients => {
            let store = store(&cli, &config).await?;
            let ids = store.subjects().await?;
            let mut rows = Vec::with_capacity(ids.len());
            for id in &ids {
                let n = store
                    .count(&Filter {
                        subject: Some(id.clone()),
                        ..Filter::default()
                    })
                    .await?;
                let name = store
                    .subject(id)
                    .await?
                    .and_then(|s| s.name)
                    .and_then(|n| n.text.or(n.family));
                rows.push((healthanalyzer_analysis::subject_key(id), name, n));
            }
            if cli.json {
                let v: Vec<_> = rows
                    .iter()
                    .map(
                        |(k, n, c)| serde_json::json!({"subject": k, "name": n, "measurements": c}),
                    )
                    .collect();
                emit(&serde_json::Value::Array(v).to_string());
            } else if rows.is_empty() {
                out!("no patients yet: run `healthanalyzer demo`, `import` or `sync`");
            } else {
                for (k, n, c) in rows {
                    out!(
                        "{c:>9}  {k}{}",
                        n.map(|n| format!("  ({n})")).unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn write_out(path: Option<&Path>, text: &str) -> Result<()> {
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
fn emit(text: &str) {
    print_line(format_args!("{text}"));
}

/// Set once stdout is found closed: nothing more is written to it.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes a line to stdout. After a closed pipe (`| head`) the rest of the output is dropped
/// quietly and the command goes on to the exit code it would have had; any other failure to
/// write is exit 1.
fn print_line(line: std::fmt::Arguments<'_>) {
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

fn rules(config: &Config, file: Option<&Path>) -> Result<RuleSet> {
    match file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| Failure::Usage(format!("{}: {e}", f.display())))?;
            RuleSet::from_toml(&text).map_err(|e| Failure::Usage(format!("{}: {e}", f.display())))
        }
        None => Ok(config.rules()?),
    }
}

async fn build_report(
    config: &Config,
    store: &dyn Store,
    args: &AnalysisArgs,
    patient: Option<&str>,
) -> Result<Report> {
    let rules = rules(config, args.rules.as_deref())?;
    if rules == RuleSet::default() {
        eprintln!(
            "note: no rules configured (--rules FILE, or [rules] in healthanalyzer.toml): no alerts"
        );
    }
    let tz = match &args.time_zone {
        Some(z) => zone(Some(z))?,
        None => config.time_zone()?,
    };
    let mut options = Options::new(args.at.unwrap_or_else(Timestamp::now), tz);
    // A "now" given on purpose is kept; the default one follows the data (an imported
    // history ends before today).
    options.follow_data = args.at.is_none();
    options.days = args.days.or(config.report.days).unwrap_or(90);
    if let Some(u) = args
        .glucose_unit
        .as_deref()
        .or(config.report.glucose_unit.as_deref())
    {
        options.glucose_unit = Some(u.parse().map_err(|e: healthanalyzer_report::Error| {
            Failure::Usage(format!("report.glucose_unit: {e}"))
        })?);
    }
    if let Some(t) = &config.report.title {
        options.title = t.clone();
    }
    let who = patient.map(identifier);
    let report = healthanalyzer_pipeline::report(store, &rules, &options, who.as_ref()).await?;
    if let Some(note) = &report.period_note {
        eprintln!("note: {note}");
    }
    Ok(report)
}

fn print_alerts(cli: &Cli, report: &Report) {
    let alerts: Vec<_> = report
        .patients
        .iter()
        .flat_map(|p| p.alerts.iter().map(move |a| (p, a)))
        .collect();
    if cli.json {
        let v: Vec<_> = alerts
            .iter()
            .map(|(p, a)| {
                serde_json::json!({"subject": p.subject, "severity": a.severity, "rule": a.rule, "kind": a.kind, "at": a.at, "message": a.message})
            })
            .collect();
        emit(&serde_json::Value::Array(v).to_string());
        return;
    }
    if alerts.is_empty() {
        out!("no alerts");
    }
    for (p, a) in alerts {
        out!(
            "{:<6}  {}  {}  {}: {}",
            a.severity.as_str().to_uppercase(),
            &a.at[..a.at.len().min(16)],
            p.subject,
            a.rule,
            a.message
        );
    }
}

/// Progress on a terminal (a spinner per source), or a line now and then in a log.
struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    last_line: Mutex<Instant>,
    quiet: bool,
}

impl Progress {
    fn new(json: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        Progress {
            multi: terminal.then(MultiProgress::new),
            bars: Mutex::new(HashMap::new()),
            last_line: Mutex::new(Instant::now()),
            quiet: json && !terminal,
        }
    }

    fn on(&self, e: Event) {
        match e {
            Event::Started {
                source,
                kind,
                resumed,
            } => {
                let from = if resumed {
                    "resuming"
                } else {
                    "from the start"
                };
                if let Some(m) = &self.multi {
                    let bar = m.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(format!("{source} ({kind})"));
                    bar.set_message(from);
                    bar.enable_steady_tick(Duration::from_millis(120));
                    if let Ok(mut b) = self.bars.lock() {
                        b.insert(source, bar);
                    }
                } else if !self.quiet {
                    eprintln!("{source} ({kind}): {from}");
                }
            }
            Event::Stored {
                source,
                total,
                rejected,
                ..
            } => {
                let msg = format!(
                    "{total} pulled{}",
                    if rejected > 0 { ", some rejected" } else { "" }
                );
                if self.multi.is_some() {
                    if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(&source).cloned()) {
                        bar.set_message(msg);
                    }
                } else if !self.quiet
                    && let Ok(mut last) = self.last_line.lock()
                    && last.elapsed() > Duration::from_secs(2)
                {
                    *last = Instant::now();
                    eprintln!("{source}: {msg}");
                }
            }
            Event::Retrying {
                source,
                attempt,
                reason,
                wait,
            } => {
                let msg = format!(
                    "attempt {attempt} failed ({reason}); retrying in {:.1} s",
                    wait.as_secs_f64()
                );
                match self.bars.lock().ok().and_then(|b| b.get(&source).cloned()) {
                    Some(bar) => bar.set_message(msg),
                    None if !self.quiet => eprintln!("{source}: {msg}"),
                    None => {}
                }
            }
            Event::Finished(s) => {
                if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(&s.source)) {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
    }
}

async fn sync(
    cli: &Cli,
    config: &Config,
    store: Arc<dyn Store>,
    sources: &[Arc<dyn Source>],
) -> Vec<SourceSummary> {
    let stop = StopFlag::new();
    let flag = stop.clone();
    let quiet = cli.json;
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.stop();
            if !quiet {
                eprintln!(
                    "stopping: storing the batch in hand and its cursor (Ctrl-C again to abort)"
                );
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let options = sync_options(config);
    let progress = Progress::new(cli.json);
    let summaries =
        healthanalyzer_pipeline::sync(store, sources, &options, &stop, &|e| progress.on(e)).await;
    ctrl_c.abort();
    summaries
}

fn sync_options(config: &Config) -> SyncOptions {
    let mut options = SyncOptions {
        batch_size: config.sync.batch_size,
        concurrency: config.sync.concurrency.unwrap_or(4),
        ..SyncOptions::default()
    };
    if let Some(n) = config.sync.max_attempts {
        options.retry.max_attempts = n.max(1);
    }
    options.identifiers = config.sync.identifiers;
    options
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Complete => "complete".into(),
        Outcome::Stopped => "stopped (run again to go on)".into(),
        Outcome::Failed(why) => format!("FAILED: {why}"),
    }
}

/// Prints the summaries; the exit status follows the worst outcome: a failed source, then an
/// interruption, then refused records (unless `accept_partial`).
fn finish(cli: &Cli, summaries: &[SourceSummary], accept_partial: bool) -> Result<()> {
    if cli.json {
        let v: Vec<_> = summaries
            .iter()
            .map(|s| {
                serde_json::json!({
                    "source": s.source, "kind": s.kind,
                    "outcome": match &s.outcome { Outcome::Complete => "complete", Outcome::Stopped => "stopped", Outcome::Failed(_) => "failed" },
                    "error": match &s.outcome { Outcome::Failed(w) => Some(w.as_str()), _ => None },
                    "pulled": s.pulled, "inserted": s.inserted, "updated": s.updated, "unchanged": s.unchanged,
                    "rejected": s.rejected_count,
                    "rejections": s.rejected.iter().map(|r| serde_json::json!({"location": r.location, "reason": r.reason})).collect::<Vec<_>>(),
                    "batches": s.batches, "seconds": s.duration.as_secs_f64(),
                })
            })
            .collect();
        emit(&serde_json::Value::Array(v).to_string());
    } else {
        for s in summaries {
            out!(
                "{} ({}): {} pulled, {} new, {} changed, {} unchanged, {} rejected in {:.1} s; {}",
                s.source,
                s.kind,
                s.pulled,
                s.inserted,
                s.updated,
                s.unchanged,
                s.rejected_count,
                s.duration.as_secs_f64(),
                outcome_text(&s.outcome)
            );
            for r in s.rejected.iter().take(5) {
                out!("  rejected {}: {}", r.location, r.reason);
            }
            if s.rejected_count > 5 {
                out!(
                    "  … {} more rejected (--json lists the first 100)",
                    s.rejected_count - 5
                );
            }
        }
    }
    if summaries
        .iter()
        .any(|s| matches!(s.outcome, Outcome::Failed(_)))
    {
        return Err(Failure::Run("a source failed (see above); what it stored before stays, and the next run resumes there".into()));
    }
    if summaries.iter().any(|s| s.outcome == Outcome::Stopped) {
        return Err(Failure::Interrupted);
    }
    let refused: u64 = summaries.iter().map(|s| s.rejected_count).sum();
    if refused > 0 && !accept_partial {
        return Err(Failure::Refused(refused));
    }
    Ok(())
}

async fn demo(cli: &Cli, config: &Config, patients: usize, days: u32, out: &Path) -> Result<()> {
    let started = Instant::now();
    let source = healthanalyzer_pipeline::demo_source(patients, days)?;
    let url = cli.db.clone().unwrap_or_else(|| config.store_url());
    let store = healthanalyzer_pipeline::open_store(&url).await?;
    // The demo's patients measure up to yesterday: regenerate them from the start each run
    // (the same ids, so a second run the same day stores nothing new).
    healthanalyzer_pipeline::reset_cursor(store.as_ref(), source.id()).await?;
    let summaries = sync(cli, config, store.clone(), &[source]).await;
    if summaries
        .iter()
        .any(|s| !matches!(s.outcome, Outcome::Complete))
    {
        return finish(cli, &summaries, false);
    }
    let rules = RuleSet::from_toml(healthanalyzer_pipeline::DEMO_RULES)
        .map_err(|e| Failure::Run(e.to_string()))?;
    let tz = TimeZone::get("Europe/Copenhagen").unwrap_or_else(|_| TimeZone::system());
    let mut options = Options::new(Timestamp::now(), tz);
    options.days = days;
    options.title = format!("Health Analyzer demo: {patients} simulated patients");
    let report = healthanalyzer_pipeline::report(store.as_ref(), &rules, &options, None).await?;
    let html = report.to_html().map_err(|e| Failure::Run(e.to_string()))?;
    std::fs::write(out, html)
        .map_err(|e| Failure::Run(format!("writing {}: {e}", out.display())))?;
    // The demo's rules, for `alerts` and `report` on the demo's data afterwards.
    let rules_file = Path::new(DEMO_RULES_FILE);
    if !rules_file.exists() {
        std::fs::write(rules_file, healthanalyzer_pipeline::DEMO_RULES.trim_start())
            .map_err(|e| Failure::Run(format!("writing {DEMO_RULES_FILE}: {e}")))?;
    }
    let total = store.count(&Filter::default()).await?;
    let s = &summaries[0];
    if cli.json {
        out!(
            "{}",
            serde_json::json!({
                "store": url, "measurements": total, "new": s.inserted, "patients": report.totals.patients,
                "red": report.totals.red, "yellow": report.totals.yellow, "ok": report.totals.ok,
                "report": absolute(out), "seconds": started.elapsed().as_secs_f64(),
            })
        );
        return Ok(());
    }
    out!(
        "Simulated {patients} patients over {days} days: {} measurements, {} new, {} changed, {} already stored, in {url} ({total} in all).",
        s.pulled,
        s.inserted,
        s.updated,
        s.unchanged
    );
    out!(
        "Analysed with the demo rules: {} red, {} yellow, {} without alerts.",
        report.totals.red,
        report.totals.yellow,
        report.totals.ok
    );
    for p in report.patients.iter().filter(|p| !p.alerts.is_empty()) {
        if let Some(a) = p.alerts.first() {
            out!(
                "  {:<6} {}: {}",
                p.status.as_str().to_uppercase(),
                p.subject,
                a.message
            );
        }
    }
    out!(
        "Report: {} (open it in a browser). Done in {:.1} s.",
        absolute(out).display(),
        started.elapsed().as_secs_f64()
    );
    out!(
        "Next: `healthanalyzer patients`, `healthanalyzer alerts --rules {DEMO_RULES_FILE}`, `healthanalyzer export --format ndjson --out demo.ndjson`."
    );
    Ok(())
}
