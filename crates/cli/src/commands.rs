//! What each command does: one library call each, and what is printed.

#![allow(clippy::print_stderr)] // notes and summaries of file output go to stderr

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use healthanalyzer_fhir::{Profile, WriteOptions};
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_model::{Catalog, Identifier};
use healthanalyzer_pipeline::{
    Config, DemoOptions, Outcome, Registry, ReportRequest, SourceSummary, StopFlag, error_chain,
};
use healthanalyzer_report::Report;
use healthanalyzer_source::Source;
use healthanalyzer_source_files::FileOptions;
use healthanalyzer_store::Store;

use crate::Failure;
use crate::args::{AnalysisArgs, Cli, Command, ExportFormat, ReportFormat};
use crate::output::{emit, out, write_out};
use crate::progress::Progress;

type Result<T, E = Failure> = std::result::Result<T, E>;

/// Where the demo writes its rules (unless the file exists).
const DEMO_RULES_FILE: &str = "healthanalyzer-demo-rules.toml";

/// Runs one parsed command line with the connector kinds of `registry`: what [`main`](crate::main)
/// does between parsing and exiting.
///
/// # Errors
/// A [`Failure`], whose [`exit_code`](Failure::exit_code) the process should exit with.
pub async fn run(cli: Cli, registry: &Registry) -> Result<()> {
    let config = Config::find(cli.config.as_deref())?;
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
            let sources = registry.build_all(&config)?;
            // Before the store is opened: a sync that cannot start writes nothing. A
            // citizen's missing or revoked grant is theirs alone: the others go on.
            let failed =
                healthanalyzer_pipeline::check_sources(&sources, &config.sync_options()).await;
            let (personal, fatal): (Vec<_>, Vec<_>) = failed.into_iter().partition(|(_, e)| {
                matches!(e, healthanalyzer_source::Error::Authorization { .. })
            });
            if !fatal.is_empty() {
                let lines: Vec<String> = fatal
                    .iter()
                    .map(|(id, why)| format!("source {id}: {}", error_chain(why)))
                    .collect();
                return Err(Failure::Run(format!(
                    "{}; nothing was written",
                    lines.join("; ")
                )));
            }
            let (not_started, ready): (Vec<_>, Vec<_>) = sources
                .into_iter()
                .partition(|s| personal.iter().any(|(id, _)| id == s.id()));
            let store = store(&cli, &config).await?;
            let mut summaries = sync(&cli, &config, store, &ready).await;
            for (id, e) in personal {
                if let Some(s) = not_started.iter().find(|s| s.id() == id) {
                    summaries.push(SourceSummary::not_started(s.as_ref(), e));
                }
            }
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
            let subject = identifier(subject.as_deref().unwrap_or("unknown"))?;
            let mut options = FileOptions::new(subject);
            options.validation = validation
                .parse()
                .map_err(|e: healthanalyzer_fhir::Error| Failure::Usage(e.to_string()))?;
            options.identifiers = config.sync.identifiers;
            options.zone = match time_zone {
                Some(z) => healthanalyzer_pipeline::time_zone(z)?,
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
                let id = source_id
                    .clone()
                    .unwrap_or_else(|| healthanalyzer_pipeline::file_source_id(f));
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
            push_token_env,
        } => {
            if let Some(name) = profile {
                name.parse::<Profile>()
                    .map_err(|e: healthanalyzer_fhir::Error| Failure::Usage(e.to_string()))?;
            }
            // The profile from --profile or [export], and the settings fut and pmd need.
            let (profile, national) = config.export_options(profile.as_deref())?;
            let store = store(&cli, &config).await?;
            let who = patient.as_deref().map(identifier).transpose()?;
            let options = WriteOptions {
                catalog: Catalog::builtin(),
                profile,
                national: Some(&national),
            };
            if let Some(url) = push {
                let mut server = healthanalyzer_source_fhir::ServerConfig::new(url.clone());
                if let Some(var) = push_token_env {
                    let token = std::env::var(var).map_err(|_| {
                        Failure::Usage(format!(
                            "--push-token-env {var}: the environment variable {var} is not set"
                        ))
                    })?;
                    server.auth = healthanalyzer_source_fhir::Auth::Bearer(token);
                }
                let client = healthanalyzer_source_fhir::FhirClient::new(server)
                    .map_err(|e| Failure::Usage(format!("{url}: {e}")))?;
                let sink = healthanalyzer_source_fhir::FhirSink::new(client, options);
                let (patients, measurements, pushed) =
                    healthanalyzer_pipeline::push(store.as_ref(), who.as_ref(), *since, &sink)
                        .await?;
                let requests = match profile {
                    Profile::Fut => "submissions",
                    Profile::Pmd | Profile::NlCore => "batches",
                    _ => "transactions",
                };
                if cli.json {
                    let refused: Vec<serde_json::Value> = pushed
                        .refused
                        .iter()
                        .map(|r| serde_json::json!({"measurement": r.measurement.to_string(), "status": r.status, "reason": r.reason}))
                        .collect();
                    out!(
                        "{}",
                        serde_json::json!({"created": pushed.created, "existing": pushed.existing, "bundles": pushed.bundles, "refused": refused})
                    );
                } else {
                    out!(
                        "pushed {patients} patients and {measurements} measurements to {url}: {} created, {} already there ({} {requests})",
                        pushed.created,
                        pushed.existing,
                        pushed.bundles
                    );
                    for r in &pushed.refused {
                        out!(
                            "refused: measurement {} ({}): {}",
                            r.measurement,
                            r.status,
                            r.reason
                        );
                    }
                }
                if !pushed.refused.is_empty() {
                    return Err(Failure::Run(format!(
                        "{} of {measurements} measurements were refused (listed above); the others were pushed",
                        pushed.refused.len()
                    )));
                }
                return Ok(());
            }
            // Written a page of the store at a time: flat memory for any size.
            let mut sink: Box<dyn std::io::Write + Send> = match out {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .map_err(|e| Failure::Run(format!("writing {}: {e}", path.display())))?;
                    Box::new(std::io::BufWriter::new(file))
                }
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let written = match format {
                ExportFormat::Ndjson => {
                    healthanalyzer_pipeline::export_ndjson(
                        store.as_ref(),
                        who.as_ref(),
                        *since,
                        &options,
                        &mut sink,
                    )
                    .await
                }
                ExportFormat::Bundle => {
                    healthanalyzer_pipeline::export_bundle(
                        store.as_ref(),
                        who.as_ref(),
                        *since,
                        &options,
                        &mut sink,
                    )
                    .await
                }
            };
            let (patients, measurements) = match written {
                // `| head`: not a failure.
                Err(e) if out.is_none() && e.is_broken_pipe() => return Ok(()),
                other => other?,
            };
            if out.is_some() && !cli.json {
                eprintln!("exported {patients} patients and {measurements} measurements");
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
        Command::Connect {
            source,
            subject,
            timeout_seconds,
        } => {
            let cloud = healthanalyzer_pipeline::find_cloud_source(&config, source)?;
            let citizen = cloud
                .citizen(subject)
                .map_err(|e| Failure::Usage(e.to_string()))?
                .name
                .clone();
            let vendor = cloud.vendor().name();
            let listens = cloud.listens_for_the_browser();
            let grant = cloud
                .connect_or_paste(
                    &citizen,
                    std::time::Duration::from_secs(*timeout_seconds),
                    |url| {
                        // The URL carries no secret (the PKCE verifier stays here), but it
                        // goes to the terminal only, never to a log.
                        eprintln!(
                            "Open this address in a browser and log in to {vendor} as citizen {citizen}:\n\n  {url}\n"
                        );
                        if listens {
                            eprintln!("Waiting for the browser (Ctrl-C to give up)…");
                        } else {
                            eprintln!(
                                "After access is allowed, the browser goes to the redirect URI (the page need not load).\nCopy the whole address from its address bar and paste it here (some vendors' codes expire within 30 seconds):"
                            );
                        }
                    },
                    || {
                        let mut line = String::new();
                        std::io::stdin().read_line(&mut line)?;
                        Ok(line)
                    },
                )
                .await
                .map_err(|e| Failure::Run(error_chain(&e)))?;
            let store = cloud
                .token_store_path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "the token store".into());
            if cli.json {
                emit(
                    &serde_json::json!({
                        "source": source, "citizen": citizen, "connected": true,
                        "expires_at": grant.expires_at, "token_store": store,
                    })
                    .to_string(),
                );
            } else {
                out!(
                    "connected citizen {citizen} at {vendor}; the grant is kept in {store}. The next sync reads their data."
                );
            }
            Ok(())
        }
        Command::Patients => {
            let store = store(&cli, &config).await?;
            let rows = healthanalyzer_pipeline::patients(store.as_ref()).await?;
            if cli.json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "subject": r.id.key(), "name": r.name, "measurements": r.measurements,
                        })
                    })
                    .collect();
                emit(&serde_json::Value::Array(v).to_string());
            } else if rows.is_empty() {
                out!("no patients yet: run `healthanalyzer demo`, `import` or `sync`");
            } else {
                for r in rows {
                    out!(
                        "{:>9}  {}{}",
                        r.measurements,
                        r.id.key(),
                        r.name.map(|n| format!("  ({n})")).unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
    }
}

fn identifier(text: &str) -> Result<Identifier> {
    text.parse()
        .map_err(|e: healthanalyzer_model::Error| Failure::Usage(e.to_string()))
}

async fn store(cli: &Cli, config: &Config) -> Result<Arc<dyn Store>> {
    let url = cli.db.clone().unwrap_or_else(|| config.store_url());
    Ok(healthanalyzer_pipeline::open_store(&url).await?)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

async fn build_report(
    config: &Config,
    store: &dyn Store,
    args: &AnalysisArgs,
    patient: Option<&str>,
) -> Result<Report> {
    let request = ReportRequest {
        rules_file: args.rules.clone(),
        at: args.at,
        days: args.days,
        time_zone: args.time_zone.clone(),
        glucose_unit: args.glucose_unit.clone(),
    };
    let (rules, options) = config.report_setup(&request)?;
    if rules == healthanalyzer_analysis::RuleSet::default() {
        eprintln!(
            "note: no rules configured (--rules FILE, or [rules] in healthanalyzer.toml): no alerts"
        );
    }
    let who = patient.map(identifier).transpose()?;
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

/// A stop flag that Ctrl-C sets (a second Ctrl-C exits at once with 130).
fn stop_on_ctrl_c(quiet: bool) -> (StopFlag, tokio::task::JoinHandle<()>) {
    let stop = StopFlag::new();
    let flag = stop.clone();
    let handler = tokio::spawn(async move {
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
    (stop, handler)
}

async fn sync(
    cli: &Cli,
    config: &Config,
    store: Arc<dyn Store>,
    sources: &[Arc<dyn Source>],
) -> Vec<SourceSummary> {
    let (stop, ctrl_c) = stop_on_ctrl_c(cli.json);
    let progress = Progress::new(cli.json);
    let summaries =
        healthanalyzer_pipeline::sync(store, sources, &config.sync_options(), &stop, &|e| {
            progress.on(e)
        })
        .await;
    ctrl_c.abort();
    summaries
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Complete => "complete".into(),
        Outcome::Stopped => "stopped (run again to go on)".into(),
        Outcome::Failed(why) => format!("FAILED: {}", why.chain()),
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
                    "error": match &s.outcome { Outcome::Failed(w) => Some(w.chain()), _ => None },
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
    let url = cli.db.clone().unwrap_or_else(|| config.store_url());
    let store = healthanalyzer_pipeline::open_store(&url).await?;
    let options = DemoOptions {
        patients,
        days,
        out: out.to_path_buf(),
        rules_file: Some(PathBuf::from(DEMO_RULES_FILE)),
        time_zone: TimeZone::get("Europe/Copenhagen").unwrap_or_else(|_| TimeZone::system()),
        sync: config.sync_options(),
    };
    let (stop, ctrl_c) = stop_on_ctrl_c(cli.json);
    let progress = Progress::new(cli.json);
    let run = healthanalyzer_pipeline::demo(store, &options, &stop, &|e| progress.on(e)).await;
    ctrl_c.abort();
    let run = run?;
    let Some(report) = &run.report else {
        return finish(cli, std::slice::from_ref(&run.sync), false);
    };
    let s = &run.sync;
    let total = run.total;
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
