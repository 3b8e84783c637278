//! The command line's arguments (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use healthanalyzer_model::jiff::Timestamp;

/// The exit codes, as `--help` lists them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    done
  1    something failed at run time (a source, the store, a server); what was stored stays
  2    bad usage or configuration; nothing was written
  3    import or sync: records were refused (the summary and --json list them); the valid ones
       are stored. --accept-partial makes this 0
  130  interrupted (Ctrl-C): every source stored the batch in hand and its cursor; run again to go on

A closed stdout (`| head`) is not an error: the command ends with the exit code it would have had.

The store is --db, else $HEALTHANALYZER_DB, else `store` in healthanalyzer.toml, else
sqlite:healthanalyzer.db in the working directory.

Diagnostics go to stderr: RUST_LOG=debug (or info, trace; default warn).";

/// Health Analyzer: fetch, store, analyse and report health measurements; FHIR R4 on both sides.
#[derive(Debug, Parser)]
#[command(name = "healthanalyzer", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The store: sqlite:FILE, postgres://…, or memory:.
    #[arg(long, global = true, value_name = "URL")]
    pub db: Option<String>,
    /// The configuration file (default: healthanalyzer.toml, if there is one).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// The profile: vital-signs, dk-core, nl-core, no-basis, fut (Denmark's FUT, with the
        /// `[export.fut]` settings) or pmd (Norway's PMD/VKP, also `vkp`; `[export.pmd]`).
        /// Default: `[export] profile` of the configuration, else vital-signs.
        #[arg(long)]
        profile: Option<String>,
        /// Write to this file (default: stdout).
        #[arg(long, conflicts_with = "push")]
        out: Option<PathBuf>,
        /// Push to this FHIR server instead, in the profile's upload shape: transactions of
        /// conditional creates; under fut one $submit-measurement per measurement time, under
        /// pmd a pmd-Bundle-Observation batch, under nl-core a MedMij batch (Prefer:
        /// return=representation). Measurements the server refuses are listed one by one.
        #[arg(long, value_name = "FHIR_BASE_URL")]
        push: Option<String>,
        /// The environment variable holding the bearer token for --push (the token stays out
        /// of the command line and the shell history).
        #[arg(long, value_name = "VAR", requires = "push")]
        push_token_env: Option<String>,
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
        /// What the report is computed with.
        #[command(flatten)]
        analysis: AnalysisArgs,
    },
    /// The alerts the rules raise now, most urgent first.
    Alerts {
        /// Only this patient, `system|value`.
        #[arg(long)]
        patient: Option<String>,
        /// What the report is computed with.
        #[command(flatten)]
        analysis: AnalysisArgs,
    },
    /// The patients in the store, with how many measurements each.
    Patients,
    /// Authorise a citizen at a device cloud (Withings, Fitbit, iHealth, Dexcom): prints the
    /// URL to open in a browser, waits on the loopback redirect, and keeps the grant in the
    /// source's token store. Run it again when a sync says the grant was revoked.
    Connect {
        /// The `[[source]]`: its id, or its kind when only one source has it.
        source: String,
        /// The citizen: their `name` in the source's `[[source.citizen]]` tables.
        #[arg(long)]
        subject: String,
        /// How long to wait for the browser, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout_seconds: u64,
    },
}

/// What a report or an alert listing is computed with (over the configuration's `[report]`).
#[derive(Debug, Clone, clap::Args)]
pub struct AnalysisArgs {
    /// Rules (TOML) instead of the configuration's.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// The report's "now" (RFC 3339; default: now).
    #[arg(long)]
    pub at: Option<Timestamp>,
    /// The period in days (default: the configuration's, else 90).
    #[arg(long)]
    pub days: Option<u32>,
    /// The patients' time zone (default: the configuration's, else the system's).
    #[arg(long)]
    pub time_zone: Option<String>,
    /// Glucose in `mmol/L` or `mg/dL` (default: the configuration's, else the unit most
    /// glucose readings came in, mmol/L when they do not say).
    #[arg(long, value_parser = ["mmol/L", "mg/dL"])]
    pub glucose_unit: Option<String>,
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A FHIR `collection` Bundle.
    Bundle,
    /// FHIR NDJSON, one resource per line.
    Ndjson,
}

/// What `report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A self-contained HTML page.
    Html,
    /// Markdown.
    Md,
    /// The JSON document (`healthanalyzer-report/2`).
    Json,
}
