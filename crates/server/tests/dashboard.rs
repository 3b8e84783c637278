//! The dashboard: the overview at `/` and the patient pages, from a real SQLite store filled by
//! a sync of simulated patients; checked over HTTP and in headless Chromium
//! (`tests/dashboard_check.py`, needs `HEALTHANALYZER_BROWSER_PYTHON` and Chromium; `.ci/run`
//! installs both and sets `HEALTHANALYZER_REQUIRE_BROWSER=1`).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use healthanalyzer_server::{FhirServer, ServerConfig};
use healthanalyzer_store::Store;
use healthanalyzer_store_sqlite::SqliteStore;
use serde_json::Value;

struct Dash {
    base: String,
    _dir: tempfile::TempDir,
}

async fn dashboard(patients: usize) -> Dash {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("d.db")).await.unwrap());
    // The demo's patients: measuring for 30 days up to yesterday.
    let today = healthanalyzer_model::jiff::Zoned::now().date();
    let source = healthanalyzer_source_sim::SimSource::new(healthanalyzer_source_sim::SimConfig {
        source_id: "demo-sim".into(),
        patients,
        days: 30,
        start: today
            .checked_sub(healthanalyzer_model::jiff::ToSpan::days(30))
            .unwrap(),
        ..Default::default()
    })
    .unwrap();
    let cursor = healthanalyzer_source::Cursor::start();
    for batch in healthanalyzer_source::testkit::pull_all(&source, &cursor, 1000).await {
        store.put_subjects(&batch.subjects).await.unwrap();
        store.write(&batch.measurements, None).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = FhirServer::new(store)
        .config(ServerConfig::default())
        .dashboard(Some(healthanalyzer_server::DashboardConfig::demo()));
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
    Dash {
        base: format!("http://{addr}"),
        _dir: dir,
    }
}

#[tokio::test]
async fn the_overview_lists_patients_red_first_and_links_by_patient_id() {
    let d = dashboard(4).await;
    let http = common::client();
    let res = http.get(format!("{}/", d.base)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let csp = res
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = res.text().await.unwrap();
    let rows = html.matches("<tr").count();
    assert!(rows >= 4, "{rows} rows");
    // Red before yellow before ok, as the report sorts (the demo's heart-failure patient is
    // red, its lapsed one yellow).
    let statuses: Vec<&str> = html
        .split("<span class=\"badge ")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(statuses.len(), 4, "{statuses:?}");
    let rank = |s: &str| match s {
        "red" => 0,
        "yellow" => 1,
        _ => 2,
    };
    assert!(
        statuses.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "{statuses:?}"
    );
    assert_eq!(statuses[0], "red", "{statuses:?}");
    let links: Vec<&str> = html
        .split("href=\"patient/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(links.len(), 4, "{links:?}");
    for l in &links {
        assert!(
            l.len() == 36 && !l.contains('|'),
            "a Patient id, not an identifier: {l}"
        );
        let page = http
            .get(format!("{}/patient/{l}", d.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let text = page.text().await.unwrap();
        assert!(text.contains("<svg"), "charts on the patient page");
    }
    let missing = http
        .get(format!("{}/patient/no-such-patient", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    // The FHIR API serves the same patients: the dashboard's ids are Patient ids.
    let p = http
        .get(format!("{}/fhir/Patient/{}", d.base, links[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(p.status().as_u16(), 200);
    let obs = http
        .get(format!(
            "{}/fhir/Observation?patient={}&_summary=count",
            d.base, links[0]
        ))
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&obs.text().await.unwrap()).unwrap();
    assert!(body["total"].as_u64().unwrap() > 30, "{body}");
}

fn browser() -> Option<(PathBuf, PathBuf)> {
    let required = std::env::var("HEALTHANALYZER_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let chromium = std::env::var_os("HEALTHANALYZER_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    match std::env::var_os("HEALTHANALYZER_BROWSER_PYTHON").map(PathBuf::from) {
        Some(p) if chromium.exists() => Some((p, chromium)),
        _ => {
            let why = format!(
                "HEALTHANALYZER_BROWSER_PYTHON (a Python with playwright) unset or {} missing",
                chromium.display()
            );
            assert!(!required, "HEALTHANALYZER_REQUIRE_BROWSER=1 but {why}");
            eprintln!("notice: dashboard browser test skipped: {why}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_in_chromium_without_errors() {
    let Some((python, chromium)) = browser() else {
        return;
    };
    let d = dashboard(6).await;
    let shots = std::env::var_os("HEALTHANALYZER_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let prefix = shots.join("healthanalyzer-dashboard");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard_check.py");
    let base = d.base.clone();
    let prefix_text = prefix.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(base)
            .arg(prefix_text)
            .arg(chromium)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dashboard_check.py failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    for key in ["console", "page_errors", "failed", "outside"] {
        assert_eq!(seen[key], serde_json::json!([]), "{key}: {seen}");
    }
    assert!(
        seen["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s == 200),
        "{seen}"
    );
    assert_eq!(seen["overview_rows"], 6, "{seen}");
    assert!(
        seen["patient_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/patient/", d.base)),
        "{seen}"
    );
    assert!(
        seen["charts"].as_u64().unwrap() >= 3,
        "charts laid out: {seen}"
    );
    for shot in ["overview", "patient", "patient-charts"] {
        let path = PathBuf::from(format!("{}-{shot}.png", prefix.display()));
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{}",
            path.display()
        );
        eprintln!("screenshot: {}", path.display());
    }
}
