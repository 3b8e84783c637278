//! The checker's `chain` suite with the real `healthanalyzer sync` in the middle: Observations
//! put into a source FHIR server, synced into a SQLite store, read back from our FHIR API over
//! that store, and compared.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::sync::Arc;

use healthanalyzer_check::{Outcome, Owner, Run, Runner, Severity, report, suites};
use healthanalyzer_server::FhirServer;
use healthanalyzer_store::Store;
use healthanalyzer_store_sqlite::SqliteStore;

struct Api {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Our FHIR server over the SQLite file `db`.
async fn api(db: &Path) -> Api {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = FhirServer::new(store)
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    Api {
        base: format!("http://{addr}/fhir"),
        _stop: tx,
    }
}

/// A `healthanalyzer.toml` that syncs the chain's patient from the chain's source into `db`.
fn sync_command(dir: &Path, db: &Path, extra: &str) -> String {
    let config = dir.join("chain.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"sqlite:{}\"\n\n[[source]]\nid = \"partner\"\nkind = \"fhir\"\nbase_url = \"${{CHAIN_SOURCE}}\"\npatient = \"${{CHAIN_PATIENT}}\"\n{extra}",
            db.display()
        ),
    )
    .unwrap();
    format!(
        "'{}' sync --config '{}'",
        env!("CARGO_BIN_EXE_healthanalyzer"),
        config.display()
    )
}

async fn chain(source: &str, receiver: &str, sync: &str) -> Run {
    Runner::new(receiver)
        .unwrap()
        .var("source", source)
        .var("sync", sync)
        .run(&[suites::builtin("chain").unwrap()])
        .await
}

fn assert_clean(run: &Run) {
    assert_eq!(run.findings().count(), 0, "{}", report::summary(run));
    for st in &run.scenarios[0].steps {
        assert_eq!(st.outcome, Outcome::Passed, "{}", st.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_to_sync_to_our_server_loses_changes_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = api(&dir.path().join("source.db")).await;
    let db = dir.path().join("receiver.db");
    let receiver = api(&db).await;
    let run = chain(
        &source.base,
        &receiver.base,
        &sync_command(dir.path(), &db, ""),
    )
    .await;
    assert_clean(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sekmet_to_sync_to_our_server_loses_changes_and_doubles_nothing() {
    let Ok(sekmet) = std::env::var("HEALTHANALYZER_FHIR_URL") else {
        assert!(
            std::env::var("HEALTHANALYZER_REQUIRE_FHIR").as_deref() != Ok("1"),
            "HEALTHANALYZER_REQUIRE_FHIR=1 but HEALTHANALYZER_FHIR_URL is not set"
        );
        eprintln!("notice: HEALTHANALYZER_FHIR_URL is not set; the SEKMET chain is skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("receiver.db");
    let receiver = api(&db).await;
    let run = chain(&sekmet, &receiver.base, &sync_command(dir.path(), &db, "")).await;
    assert_clean(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_leaves_data_behind_is_found_by_the_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let source = api(&dir.path().join("source.db")).await;
    let db = dir.path().join("receiver.db");
    let receiver = api(&db).await;
    // Only heart rate is synced: three of the four readings stay behind.
    let sync = sync_command(dir.path(), &db, "codes = [\"http://loinc.org|8867-4\"]\n");
    let run = chain(&source.base, &receiver.base, &sync).await;
    let lost: Vec<_> = run
        .findings()
        .filter(|f| f.step == "compare" && f.message.starts_with("Lost:"))
        .collect();
    assert_eq!(lost.len(), 3, "{}", report::summary(&run));
    for f in &lost {
        assert_eq!(
            (f.owner, f.severity),
            (Owner::Receiver, Severity::Error),
            "{f:?}"
        );
    }
    assert!(
        lost.iter().any(|f| f.message.contains("85354-9")),
        "{lost:?}"
    );
    assert!(
        !lost.iter().any(|f| f.message.contains("8867-4")),
        "{lost:?}"
    );
    assert_eq!(run.findings().count(), 3, "{}", report::summary(&run));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sync_is_a_finding_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let source = api(&dir.path().join("source.db")).await;
    let db = dir.path().join("receiver.db");
    let receiver = api(&db).await;
    // A misspelt key: the sync refuses the configuration.
    let sync = sync_command(dir.path(), &db, "pateint = \"x\"\n");
    let run = chain(&source.base, &receiver.base, &sync).await;
    let f = run
        .findings()
        .find(|f| f.step == "sync")
        .unwrap_or_else(|| panic!("{}", report::summary(&run)));
    assert_eq!((f.owner, f.severity), (Owner::Receiver, Severity::Error));
    assert!(f.message.contains("exited with 2"), "{}", f.message);
    let out = f
        .exchange
        .as_ref()
        .and_then(|x| x.response_excerpt.as_deref())
        .unwrap();
    assert!(out.contains("pateint"), "{out}");
}
