//! The HTML report in a real browser: headless Chromium, driven by Playwright
//! (`tests/browser_check.py`).
//!
//! Needs `HEALTHANALYZER_BROWSER_PYTHON`, a Python with the `playwright` package, and Chromium
//! (`/usr/bin/chromium`, or `HEALTHANALYZER_CHROMIUM`); `.ci/run` installs both. Without them the
//! test prints a notice and passes, unless `HEALTHANALYZER_REQUIRE_BROWSER=1`.

#![allow(clippy::print_stderr)] // the skip notice and the screenshot paths

use std::path::{Path, PathBuf};
use std::process::Command;

use healthanalyzer_analysis::RuleSet;
use healthanalyzer_model::Catalog;
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_report::{Options, Report};
use healthanalyzer_source::{Cursor, testkit};
use healthanalyzer_source_sim::{SimConfig, SimSource};
use serde_json::Value;

const RULES: &str = r#"
[[threshold]]
kind = "oxygen-saturation"
red_low = 88
yellow_low = 92
[[threshold]]
kind = "blood-pressure.systolic"
red_high = 180
yellow_high = 150
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

/// Python and Chromium, or `None` (after a notice) when the test should be skipped.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let required = std::env::var("HEALTHANALYZER_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let chromium = std::env::var_os("HEALTHANALYZER_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let python = std::env::var_os("HEALTHANALYZER_BROWSER_PYTHON").map(PathBuf::from);
    match python {
        Some(p) if chromium.exists() => Some((p, chromium)),
        _ => {
            let why = format!(
                "HEALTHANALYZER_BROWSER_PYTHON (a Python with playwright) unset or {} missing",
                chromium.display()
            );
            assert!(!required, "HEALTHANALYZER_REQUIRE_BROWSER=1 but {why}");
            eprintln!("notice: browser test skipped: {why}");
            None
        }
    }
}

fn check(python: &Path, chromium: &Path, html: &Path, shot: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser_check.py");
    let out = Command::new(python)
        .arg(script)
        .arg(html)
        .arg(shot)
        .arg(chromium)
        .output()
        .expect("run browser_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser_check.py failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn report() -> Report {
    let sim = SimSource::new(SimConfig {
        patients: 6,
        days: 20,
        seed: 5,
        ..SimConfig::default()
    })
    .expect("sim");
    let data: Vec<_> = testkit::pull_all(&sim, &Cursor::start(), 10_000)
        .await
        .into_iter()
        .flat_map(|b| b.measurements)
        .collect();
    let rules = RuleSet::from_toml(RULES).expect("rules");
    let tz = TimeZone::get("Europe/Copenhagen").expect("tz");
    let mut options = Options::new("2024-01-21T12:00:00+01:00".parse().expect("t"), tz);
    options.days = 20;
    options.title = "Simulated ward".into();
    Report::build(&data, &[], Catalog::builtin(), &rules, &options).expect("report")
}

#[tokio::test]
async fn the_report_renders_in_chromium_with_its_charts_and_no_errors() {
    let Some((python, chromium)) = browser() else {
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&dir).expect("dir");
    let r = report().await;
    let html = dir.join("report.html");
    std::fs::write(&html, r.to_html().expect("html")).expect("write");
    let shot = dir.join("report.png");
    let seen = check(&python, &chromium, &html, &shot);
    eprintln!("screenshots: {} and report-charts.png", shot.display());

    assert_eq!(seen["console"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["failed"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["outside"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["title"], "Simulated ward");
    assert_eq!(seen["patients"], 6);
    assert_eq!(seen["overview_rows"], 6);
    // The heart-failure patient is red (weight gain), the lapsed one yellow (stale).
    assert_eq!((r.totals.red, r.totals.yellow), (1, 1), "{:?}", r.totals);
    let charts: usize = r.patients.iter().map(|p| p.series.len()).sum::<usize>() + 1;
    assert_eq!(
        seen["charts"], charts,
        "every chart laid out with a size: {seen}"
    );
    assert!(seen["chart_marks"].as_u64() > Some(100), "{seen}");
    for png in [shot.clone(), dir.join("report-charts.png")] {
        let bytes = std::fs::read(&png).expect("screenshot");
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
            "{}",
            png.display()
        );
    }
}

/// The check itself can fail: a page with a script error and a remote image is caught.
#[test]
fn the_browser_check_sees_errors_and_remote_requests() {
    let Some((python, chromium)) = browser() else {
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser-bad");
    std::fs::create_dir_all(&dir).expect("dir");
    let html = dir.join("bad.html");
    std::fs::write(
        &html,
        "<!DOCTYPE html><title>bad</title><img src=\"http://192.0.2.1/x.png\">\
         <script>console.error('boom'); undefinedFunction();</script>",
    )
    .expect("write");
    let seen = check(&python, &chromium, &html, &dir.join("bad.png"));
    assert!(seen["console"].to_string().contains("boom"), "{seen}");
    assert!(
        seen["page_errors"]
            .to_string()
            .contains("undefinedFunction"),
        "{seen}"
    );
    assert!(seen["outside"].to_string().contains("192.0.2.1"), "{seen}");
    assert_eq!(seen["charts"], 0);
}
