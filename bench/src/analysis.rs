//! `analysis-bench`: the whole analysis of about 1,000,000 simulated measurements over 1,000
//! patients (series, summaries, daily aggregates in the patients' zone, 7/30/90-day trends,
//! glucose statistics, home blood pressure, every rule), one thread; then the report over the
//! same data (the document, the HTML overview, JSON, Markdown and the full HTML with charts).
//!
//! ```text
//! cargo run --release -p healthanalyzer-bench --bin analysis-bench -- [--patients 1000] [--days 228]
//! ```

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use healthanalyzer_analysis::{RuleSet, Summary, daily, glucose, home_bp, series, trend};
use healthanalyzer_model::Catalog;
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_report::{Options, Report};
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_sim::{SimConfig, SimSource};

const RULES: &str = r#"
[[threshold]]
kind = "oxygen-saturation"
red_low = 88
yellow_low = 92
[[threshold]]
kind = "blood-pressure.systolic"
red_high = 180
yellow_high = 150
[[threshold]]
kind = "heart-rate"
red_high = 130
yellow_high = 110
red_low = 40
[[delta]]
name = "weight gain"
kind = "body-weight"
rise = 2.0
within_days = 3
severity = "red"
[[stale]]
name = "no blood pressure"
kind = "blood-pressure.systolic"
days = 3
severity = "yellow"
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut patients = 1000;
    let mut days = 228;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse().ok()).expect("a number");
        match a.as_str() {
            "--patients" => patients = value(),
            "--days" => days = value() as u32,
            other => panic!("unknown argument {other}"),
        }
    }
    let sim = SimSource::new(SimConfig {
        patients,
        days,
        ..SimConfig::default()
    })
    .unwrap();
    let mut data = Vec::new();
    let mut cursor = Cursor::start();
    loop {
        let b = sim.pull(&cursor, 100_000).await.unwrap();
        data.extend(b.measurements);
        cursor = b.cursor;
        if b.exhausted {
            break;
        }
    }
    let rules = RuleSet::from_toml(RULES).unwrap();
    let tz = TimeZone::get("Europe/Copenhagen").unwrap();
    let now = data
        .iter()
        .map(|m| m.effective.start().instant())
        .max()
        .unwrap();

    let mut timings: Vec<(&str, Duration)> = Vec::new();
    let t = Instant::now();
    let s = series(&data, Catalog::builtin());
    timings.push(("series (group, convert, sort)", t.elapsed()));

    let t = Instant::now();
    let mut summaries = 0;
    let mut day_rows = 0;
    let mut trends = 0;
    for points in s.values() {
        summaries += usize::from(Summary::of_points(points).is_some());
        day_rows += daily(points, &tz).len();
        for window in [7, 30, 90] {
            trends += usize::from(trend(points, now, window).is_some());
        }
    }
    timings.push((
        "summaries, daily aggregates, 3 trends per series",
        t.elapsed(),
    ));

    let t = Instant::now();
    let mut glucose_stats = 0;
    let mut bp_stats = 0;
    for (key, points) in &s {
        if key.kind == "capillary-glucose" {
            glucose_stats += usize::from(glucose(points, &tz).is_some());
        }
        if key.component.as_deref() == Some("systolic") {
            let dia = s
                .get(&healthanalyzer_analysis::SeriesKey {
                    component: Some("diastolic".into()),
                    ..key.clone()
                })
                .map(Vec::as_slice)
                .unwrap_or_default();
            bp_stats += usize::from(home_bp(points, dia, &tz).is_some());
        }
    }
    timings.push(("glucose statistics and home blood pressure", t.elapsed()));

    let t = Instant::now();
    let alerts = rules.evaluate(&s, now, &[]);
    timings.push(("every rule (thresholds, delta, stale)", t.elapsed()));

    let total: Duration = timings.iter().map(|(_, d)| *d).sum();
    println!(
        "{} measurements, {patients} patients, {} series; one thread",
        data.len(),
        s.len()
    );
    println!(
        "({summaries} summaries, {day_rows} day rows, {trends} trends, {glucose_stats} glucose and {bp_stats} blood-pressure reports, {} alerts)",
        alerts.len()
    );
    println!();
    println!("| step | ms |");
    println!("|---|---:|");
    for (name, d) in &timings {
        println!("| {name} | {:.0} |", d.as_secs_f64() * 1e3);
    }
    println!(
        "| **total** (target: under 1,000) | **{:.0}** |",
        total.as_secs_f64() * 1e3
    );

    // The report over the same data: the document (which runs the analysis again, per
    // patient, over the last 90 days), then each output.
    let mut options = Options::new(now, tz.clone());
    options.days = 90;
    let mut steps: Vec<(&str, Duration, usize)> = Vec::new();
    let t = Instant::now();
    let report = Report::build(&data, &[], Catalog::builtin(), &rules, &options).unwrap();
    steps.push(("report document (analysis included)", t.elapsed(), 0));
    let t = Instant::now();
    let overview = report
        .to_overview_html(|i, _| format!("#patient-{i}"))
        .unwrap();
    steps.push(("HTML overview", t.elapsed(), overview.len()));
    let t = Instant::now();
    let json = report.to_json();
    steps.push(("JSON", t.elapsed(), json.len()));
    let t = Instant::now();
    let md = report.to_markdown().unwrap();
    steps.push(("Markdown", t.elapsed(), md.len()));
    let t = Instant::now();
    let html = report.to_html().unwrap();
    let charts = html.matches("<svg").count();
    steps.push(("HTML, every patient with charts", t.elapsed(), html.len()));
    println!();
    println!(
        "Report: {} patients ({} red, {} yellow), {charts} charts",
        report.totals.patients, report.totals.red, report.totals.yellow
    );
    println!();
    println!("| report step | ms | output, MB |");
    println!("|---|---:|---:|");
    for (name, d, bytes) in &steps {
        println!(
            "| {name} | {:.0} | {} |",
            d.as_secs_f64() * 1e3,
            if *bytes == 0 {
                "-".to_string()
            } else {
                format!("{:.1}", *bytes as f64 / 1e6)
            }
        );
    }
}
