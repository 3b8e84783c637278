//! The `healthanalyzer-server` binary as a process: it serves, shuts down gracefully on
//! SIGTERM, warns when listening beyond loopback, refuses a bad store, and passes the
//! third-party client probes (`$HEALTHANALYZER_FHIR_TOOLS`: fhirpy and fhirclient in Python,
//! fhir-kit-client in JavaScript). Without the tools the probes are skipped with a notice, unless
//! `HEALTHANALYZER_REQUIRE_FHIR=1` (CI), which makes missing tools a failure.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Running {
    child: Child,
    base: String,
    log: mpsc::Receiver<String>,
    /// The log lines up to the address line.
    early: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port over a fresh SQLite file and waits for its address.
fn start(listen: &str) -> Running {
    start_with(listen, |_| Vec::new())
}

/// As [`start`], with more arguments made from the temporary directory.
fn start_with(listen: &str, extra: impl FnOnce(&std::path::Path) -> Vec<String>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let args = extra(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_healthanalyzer-server"))
        .args([
            "--db",
            &format!("sqlite:{}", dir.path().join("s.db").display()),
        ])
        .args(["--listen", listen])
        .args(&args)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no address announced; log: {seen:#?}"));
        let found = line
            .split("FHIR API at ")
            .nth(1)
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string());
        seen.push(line);
        if let Some(base) = found {
            break base;
        }
    };
    Running {
        child,
        base,
        log: rx,
        early: seen,
        _dir: dir,
    }
}

fn terminate(mut r: Running) -> (Option<i32>, Vec<String>) {
    let pid = r.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = r.child.wait().unwrap();
    let mut lines = std::mem::take(&mut r.early);
    while let Ok(l) = r.log.recv_timeout(Duration::from_secs(2)) {
        lines.push(l);
    }
    (status.code(), lines)
}

#[tokio::test]
async fn serves_and_stops_gracefully_on_sigterm() {
    let r = start("127.0.0.1:0");
    healthanalyzer_source::http::install_crypto_provider();
    let res = reqwest::get(format!("{}/metadata", r.base)).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let caps: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(caps["fhirVersion"], "4.0.1");
    let (code, log) = terminate(r);
    assert_eq!(code, Some(0), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("stopped")), "{log:#?}");
}

#[tokio::test]
async fn warns_when_listening_beyond_loopback_without_auth() {
    let r = start("0.0.0.0:0");
    let (_, log) = terminate(r);
    assert!(
        log.iter()
            .any(|l| l.contains("WARN") && l.contains("WITHOUT authentication")),
        "{log:#?}"
    );
    let r = start("127.0.0.1:0");
    let (_, log) = terminate(r);
    assert!(
        !log.iter().any(|l| l.contains("WITHOUT authentication")),
        "no warning on loopback: {log:#?}"
    );
}

#[tokio::test]
async fn with_a_token_file_every_access_is_audited_without_identifiers() {
    let r = start_with("0.0.0.0:0", |dir| {
        let file = dir.join("tokens");
        std::fs::write(
            &file,
            "clinic-dashboard 0123456789abcdef0123456789 system/*.cruds\n",
        )
        .unwrap();
        vec!["--token-file".into(), file.display().to_string()]
    });
    assert!(
        !r.early.iter().any(|l| l.contains("WITHOUT authentication")),
        "no warning with authentication on: {:#?}",
        r.early
    );
    let base = r.base.replace("0.0.0.0", "127.0.0.1");
    healthanalyzer_source::http::install_crypto_provider();
    let http = reqwest::Client::new();
    let patient = r#"{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.208.176.1.2","value":"0101701234"}]}"#;
    let res = http
        .post(format!("{base}/Patient"))
        .header("authorization", "Bearer 0123456789abcdef0123456789")
        .header("content-type", "application/fhir+json")
        .header("x-request-id", "audit-check-1")
        .body(patient)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let id: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    let id = id["id"].as_str().unwrap().to_string();
    let res = http
        .get(format!("{base}/Patient/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let (_, log) = terminate(r);
    let audit: Vec<&String> = log.iter().filter(|l| l.contains("audit")).collect();
    assert!(
        audit.iter().any(|l| l.contains("who=clinic-dashboard")
            && l.contains("audit-check-1")
            && l.contains("outcome=201")),
        "{audit:#?}"
    );
    assert!(
        audit.iter().any(|l| l.contains("outcome=401")),
        "{audit:#?}"
    );
    for line in &log {
        assert!(
            !line.contains("0101701234"),
            "a CPR number in the log: {line}"
        );
        assert!(!line.contains(&id), "a Patient id in the log: {line}");
    }
}

#[test]
fn a_bad_store_url_exits_2_with_the_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_healthanalyzer-server"))
        .args(["--db", "mysql://nowhere", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mysql"), "{err}");
}

/// The client probes' directory; without one, a notice and `None` (the probes are skipped),
/// unless `HEALTHANALYZER_REQUIRE_FHIR=1` (`.ci/run` sets it with the tools), which makes a
/// missing one a failure.
fn tools() -> Option<std::path::PathBuf> {
    match std::env::var_os("HEALTHANALYZER_FHIR_TOOLS") {
        Some(t) if !t.is_empty() => Some(t.into()),
        _ => {
            assert!(
                std::env::var("HEALTHANALYZER_REQUIRE_FHIR").as_deref() != Ok("1"),
                "HEALTHANALYZER_REQUIRE_FHIR=1 but HEALTHANALYZER_FHIR_TOOLS is not set: the client probes cannot run"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED the client probes: HEALTHANALYZER_FHIR_TOOLS is not set (.ci/run sets it to ../shared/tools)"
            );
            None
        }
    }
}

#[test]
fn python_clients_probe_passes_29_of_29() {
    let Some(tools) = tools() else { return };
    let r = start("127.0.0.1:0");
    let out = Command::new("python3")
        .arg(tools.join("probe_server.py"))
        .arg(&r.base)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("29 passed, 0 failed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn javascript_client_probe_passes_7_of_7() {
    let Some(tools) = tools() else { return };
    let r = start("127.0.0.1:0");
    let out = Command::new("bash")
        .arg(tools.join("run-fhirkit-probe.sh"))
        .arg(&r.base)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("7 passed, 0 failed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_dashboard_takes_the_clinics_rules_or_says_it_runs_on_the_demos() {
    healthanalyzer_source::http::install_crypto_provider();
    let root = |r: &Running| r.base.trim_end_matches("/fhir").to_string() + "/";
    // No --rules: the demo's thresholds, with a warning and a title that says so.
    let demo = start("127.0.0.1:0");
    assert!(
        demo.early.iter().any(|l| l.contains("demo thresholds")),
        "{:#?}",
        demo.early
    );
    let page = reqwest::get(root(&demo)).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Health Analyzer (demo thresholds)")
    );
    // --rules: the clinic's, no warning.
    let clinic = start_with("127.0.0.1:0", |dir| {
        let rules = dir.join("rules.toml");
        std::fs::write(
            &rules,
            "[[threshold]]\nkind = \"oxygen-saturation\"\nred_low = 90\n",
        )
        .unwrap();
        vec!["--rules".into(), rules.display().to_string()]
    });
    assert!(
        !clinic.early.iter().any(|l| l.contains("demo thresholds")),
        "{:#?}",
        clinic.early
    );
    let html = reqwest::get(root(&clinic))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<title>Health Analyzer"), "{html}");
    assert!(!html.contains("demo thresholds"), "{html}");
    // --no-dashboard: the FHIR API only.
    let off = start_with("127.0.0.1:0", |_| vec!["--no-dashboard".into()]);
    assert_eq!(
        reqwest::get(root(&off)).await.unwrap().status().as_u16(),
        404
    );
    let api = reqwest::get(format!("{}/metadata", off.base))
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 200);
    // Rules that cannot be read: exit 2, naming the file, before listening.
    let out = Command::new(env!("CARGO_BIN_EXE_healthanalyzer-server"))
        .args(["--db", "memory:", "--listen", "127.0.0.1:0"])
        .args(["--rules", "/nonexistent/rules.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/rules.toml"), "{err}");
    assert!(!err.contains("FHIR API at"), "{err}");
}
