//! The SQLite store, on a real file and in memory, runs the whole conformance kit.

use std::time::Duration;

use healthanalyzer_store::testkit;
use healthanalyzer_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("kit.db"))
        .await
        .expect("open");
    testkit::run_all(&store).await;
    testkit::run_subject_checks(&store).await;
    // A second open of the file has its own connections, as another process would: the
    // concurrency checks run across both.
    let other = SqliteStore::open(dir.path().join("kit.db"))
        .await
        .expect("second open");
    testkit::run_write_set_checks(&store, &[&other], Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_conformance_kit() {
    let store = SqliteStore::open_url("sqlite::memory:")
        .await
        .expect("open");
    testkit::run_all(&store).await;
    testkit::run_subject_checks(&store).await;
    testkit::run_write_set_checks(&store, &[], Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn works_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("ct.db"))
        .await
        .expect("open");
    testkit::upsert_is_idempotent(&store).await;
    testkit::reads_back_exactly_what_was_written(&store).await;
}
