//! The in-memory store runs the whole conformance kit.

use std::time::Duration;

use healthanalyzer_store::{MemoryStore, testkit};

#[tokio::test]
async fn memory_store_passes_the_conformance_kit() {
    let store = MemoryStore::new();
    testkit::run_all(&store).await;
    testkit::run_subject_checks(&store).await;
    testkit::run_write_set_checks(&store, &[], Duration::from_secs(5)).await;
}
