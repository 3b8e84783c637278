//! Shared by the checker's integration tests: our own server in-process, and the JUnit schema.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::print_stderr)]

pub mod broken_server;

use std::sync::Arc;

use healthanalyzer_check::{Finding, Owner, Run, Severity, StepResult, report};
use healthanalyzer_server::{FhirServer, ServerConfig};
use healthanalyzer_store::Store;
use healthanalyzer_store_sqlite::SqliteStore;

/// Our FHIR server on SQLite, on a free port; stops when dropped.
pub struct OwnServer {
    pub base: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn own_server() -> OwnServer {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = FhirServer::new(store).config(ServerConfig::default());
    tokio::spawn(async move {
        let _ = server
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    OwnServer {
        base: format!("http://{addr}/fhir"),
        _dir: dir,
        stop: Some(tx),
    }
}

/// Validates JUnit XML against the Jenkins JUnit schema that `.ci/run` fetches
/// (`HEALTHANALYZER_JUNIT_XSD`), with xmllint. Skips with a notice when it is not set, unless
/// `HEALTHANALYZER_REQUIRE_JUNIT_XSD=1`.
pub fn validate_junit(xml: &str) {
    let Ok(xsd) = std::env::var("HEALTHANALYZER_JUNIT_XSD") else {
        assert!(
            std::env::var("HEALTHANALYZER_REQUIRE_JUNIT_XSD").as_deref() != Ok("1"),
            "HEALTHANALYZER_REQUIRE_JUNIT_XSD=1 but HEALTHANALYZER_JUNIT_XSD is not set"
        );
        eprintln!("notice: HEALTHANALYZER_JUNIT_XSD is not set; JUnit schema validation skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, xml).unwrap();
    let out = std::process::Command::new("xmllint")
        .args(["--noout", "--schema", &xsd])
        .arg(&file)
        .output()
        .expect("xmllint (Debian's libxml2-utils) must be installed");
    assert!(
        out.status.success(),
        "JUnit XML does not validate:\n{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The findings of a run, as `(scenario, step, severity, owner, message)`, for assertion
/// messages.
pub fn listing(run: &Run) -> String {
    report::summary(run)
}

/// The finding of a step whose message contains `says`.
pub fn finding<'r>(run: &'r Run, step: &str, says: &str) -> &'r Finding {
    run.findings()
        .find(|f| f.step == step && f.message.contains(says))
        .unwrap_or_else(|| panic!("no finding on `{step}` saying {says:?}:\n{}", listing(run)))
}

pub fn assert_owner(f: &Finding, owner: Owner, severity: Severity) {
    assert_eq!((f.owner, f.severity), (owner, severity), "{f:#?}");
}

/// The step of the run's first scenario whose name ends in `label`; panics with the run's
/// findings when there is none.
pub fn step<'r>(run: &'r Run, label: &str) -> &'r StepResult {
    run.scenarios[0]
        .steps
        .iter()
        .find(|s| s.name.ends_with(label))
        .unwrap_or_else(|| panic!("no step {label}: {}", listing(run)))
}
