//! The in-memory store runs the whole conformance kit.

use healthanalyzer_store::{MemoryStore, testkit};

#[tokio::test]
async fn memory_store_passes_the_conformance_kit() {
    let store = MemoryStore::new();
    testkit::run_all(&store).await;
    testkit::run_subject_checks(&store).await;
}
