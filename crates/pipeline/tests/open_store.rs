//! Stores opened by URL are the real backends, usable through `Arc<dyn Store>`.

use healthanalyzer_model::Identifier;
use healthanalyzer_pipeline::{Error, open_store};
use healthanalyzer_store::{Filter, MeasurementStore, testkit};

#[tokio::test]
async fn a_sqlite_url_opens_a_file_that_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("p.db").display());
    let m = testkit::heart_rate("src", "p", 1, 70);
    {
        let store = open_store(&url).await.expect("open");
        store
            .write(std::slice::from_ref(&m), None)
            .await
            .expect("write");
    }
    let store = open_store(&url).await.expect("reopen");
    assert_eq!(store.get(&m.id).await.expect("get"), Some(m));
    // Upcasts to either trait.
    let as_measurements: std::sync::Arc<dyn MeasurementStore> = store;
    assert_eq!(
        as_measurements
            .count(&Filter::subject(Identifier::local("p")))
            .await
            .expect("count"),
        1
    );
}

#[tokio::test]
async fn memory_urls_open_empty_stores() {
    for url in ["memory:", "sqlite::memory:"] {
        let store = open_store(url).await.expect(url);
        testkit::upsert_is_idempotent(store.as_ref()).await;
        testkit::subjects_found_by_any_identifier(store.as_ref()).await;
    }
}

#[tokio::test]
async fn bad_urls_say_what_would_work() {
    let err = open_store("mysql://user:secret@h/db")
        .await
        .expect_err("unknown");
    let text = err.to_string();
    assert!(matches!(err, Error::UnknownScheme { .. }), "{text}");
    assert!(
        text.contains("sqlite:") && text.contains("postgres://"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
    let err = open_store("sqlite:x.db?journal=off")
        .await
        .expect_err("bad parameter");
    assert!(err.to_string().contains("journal"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let notes = dir.path().join("notes.txt");
    std::fs::write(
        &notes,
        "not a database, just some words that are long enough".repeat(4),
    )
    .expect("write");
    let err = open_store(&format!("sqlite:{}", notes.display()))
        .await
        .expect_err("not a database");
    // The store's error names the backend; its cause, the SQLite store's, says what is wrong.
    let text = healthanalyzer_pipeline::error_chain(&err);
    assert_eq!(text.matches("not an SQLite database").count(), 1, "{text}");
}
