//! Simulated patients, analysed against TOML rules, reported as HTML, Markdown and JSON:
//!
//! ```text
//! cargo run -p example-sim-report -- [OUT_DIR] [--patients N] [--days D]
//! ```
//!
//! writes `OUT_DIR/report.html` (open it in a browser), `report.md` and `report.json`
//! (default `OUT_DIR`: `report`). The report's "now" is noon after the last simulated day.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use healthanalyzer_analysis::RuleSet;
use healthanalyzer_model::Catalog;
use healthanalyzer_model::jiff::ToSpan;
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_report::{Options, Report};
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_sim::{SimConfig, SimSource};

fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}\nusage: sim-report [OUT_DIR] [--patients N] [--days D]");
    ExitCode::from(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut out = PathBuf::from("report");
    let mut config = SimConfig {
        patients: 12,
        days: 20,
        ..SimConfig::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = |what: &str| {
            args.next()
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or(format!("{what} needs a whole number"))
        };
        match a.as_str() {
            "--patients" => match number("--patients") {
                Ok(n) => config.patients = n as usize,
                Err(e) => return usage(e),
            },
            "--days" => match number("--days") {
                Ok(n) => config.days = n,
                Err(e) => return usage(e),
            },
            flag if flag.starts_with('-') => return usage(format!("unknown option {flag}")),
            dir => out = PathBuf::from(dir),
        }
    }
    let start = config.start;
    let days = config.days;
    let sim = match SimSource::new(config) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let mut data = Vec::new();
    let mut cursor = Cursor::start();
    loop {
        match sim.pull(&cursor, 10_000).await {
            Ok(b) => {
                data.extend(b.measurements);
                cursor = b.cursor;
                if b.exhausted {
                    break;
                }
            }
            Err(e) => return usage(e),
        }
    }
    let tz = TimeZone::get("Europe/Copenhagen").unwrap_or(TimeZone::UTC);
    let now = match start
        .checked_add(i64::from(days).days())
        .and_then(|d| d.at(12, 0, 0, 0).to_zoned(tz.clone()))
    {
        Ok(z) => z.timestamp(),
        Err(e) => return usage(e),
    };
    let mut options = Options::new(now, tz);
    options.days = days;
    options.title = "Simulated home monitoring".into();
    let result = Report::build(&data, &[], Catalog::builtin(), &RuleSet::demo(), &options)
        .map_err(|e| e.to_string())
        .and_then(|report| {
            let html = report.to_html().map_err(|e| e.to_string())?;
            let md = report.to_markdown().map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            for (name, text) in [
                ("report.html", html),
                ("report.md", md),
                ("report.json", report.to_json()),
            ] {
                let path = out.join(name);
                std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Ok(report)
        });
    match result {
        Ok(r) => {
            println!(
                "{} measurements, {} patients: {} red, {} yellow, {} without alerts",
                data.len(),
                r.totals.patients,
                r.totals.red,
                r.totals.yellow,
                r.totals.ok
            );
            println!(
                "wrote {}/report.html, report.md and report.json",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
