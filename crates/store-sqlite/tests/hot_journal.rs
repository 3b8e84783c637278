//! A process killed inside a rollback-journal transaction leaves a hot journal beside the
//! file (this happens while a new file is created, before it switches to WAL). The store must
//! open such a file, rolling the journal back, not refuse it as read-only.

use healthanalyzer_store::{Checkpoint, MeasurementStore};
use healthanalyzer_store_sqlite::SqliteStore;

#[tokio::test]
async fn a_file_with_a_hot_journal_opens_at_its_last_committed_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("h.db");
    {
        let store = SqliteStore::open(&db).await.expect("create");
        store
            .write(&[], Some(&Checkpoint::new("kept", "1")))
            .await
            .expect("checkpoint");
    }
    // A transaction in rollback-journal mode, caught half-way: the file and its journal are
    // copied while it is open, as a SIGKILL would leave them.
    let copy = dir.path().join("copy.db");
    {
        let conn = rusqlite::Connection::open(&db).expect("open");
        let mode: String = conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .expect("journal mode");
        assert_eq!(mode, "delete");
        conn.execute_batch("PRAGMA cache_size = 1; BEGIN IMMEDIATE;")
            .expect("begin");
        for i in 0..2000 {
            conn.execute(
                "INSERT INTO checkpoint (source_id, cursor) VALUES (?1, ?2)",
                rusqlite::params![format!("lost-{i:05}"), "x".repeat(200)],
            )
            .expect("insert");
        }
        std::fs::copy(&db, &copy).expect("copy the file");
        std::fs::copy(
            dir.path().join("h.db-journal"),
            dir.path().join("copy.db-journal"),
        )
        .expect("copy the journal");
        conn.execute_batch("ROLLBACK").expect("rollback");
    }
    // The journal is hot: a read-only connection cannot read the copy.
    let ro =
        rusqlite::Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open read-only");
    let read = ro.query_row("PRAGMA application_id", [], |r| r.get::<_, i64>(0));
    assert!(
        matches!(&read, Err(rusqlite::Error::SqliteFailure(f, _))
            if f.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK),
        "expected a hot journal, got {read:?}"
    );
    drop(ro);

    let store = SqliteStore::open(&copy)
        .await
        .expect("a file with a hot journal opens");
    let kept = store.checkpoint("kept").await.expect("read");
    assert_eq!(kept.map(|c| c.cursor).as_deref(), Some("1"));
    assert!(
        store
            .checkpoint("lost-00000")
            .await
            .expect("read")
            .is_none(),
        "the uncommitted transaction was not rolled back"
    );
}
