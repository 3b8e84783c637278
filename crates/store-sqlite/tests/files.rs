//! Files: reopening, migration from an older schema, and refusing files that are not ours
//! (foreign, corrupt, newer) without changing a byte.

use std::path::{Path, PathBuf};

use healthanalyzer_model::{Identifier, Subject};
use healthanalyzer_store::{Filter, MeasurementStore, SubjectStore, testkit};
use healthanalyzer_store_sqlite::{
    APPLICATION_ID, SCHEMA_VERSION, SqliteError, SqliteStore, create_at_version,
};

/// The file's bytes and which of its `-wal`/`-shm` companions exist.
fn snapshot(path: &Path) -> (Vec<u8>, bool, bool) {
    let side = |ext: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p).exists()
    };
    (
        std::fs::read(path).expect("read"),
        side("-wal"),
        side("-shm"),
    )
}

async fn refused(path: &Path) -> SqliteError {
    let before = snapshot(path);
    let err = SqliteStore::open(path)
        .await
        .expect_err("the file must be refused");
    assert_eq!(snapshot(path), before, "a refused file must not change");
    // The message names the file and says it was not changed.
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("not changed"), "{text}");
    err
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.db");
    let rows: Vec<_> = (0..100)
        .map(|i| testkit::heart_rate("src", "p", i, 60))
        .collect();
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store.write(&rows, None).await.expect("write");
    }
    let store = SqliteStore::open_url(&format!("sqlite:{}", path.display()))
        .await
        .expect("reopen");
    assert_eq!(
        store
            .count(&Filter::subject(Identifier::local("p")))
            .await
            .expect("count"),
        100
    );
    assert_eq!(
        store.get(&rows[42].id).await.expect("get"),
        Some(rows[42].clone())
    );
}

#[tokio::test]
async fn an_older_schema_migrates_on_open_and_keeps_its_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v1.db");
    create_at_version(&path, 1).expect("v1 file");
    let m = testkit::heart_rate("src", "p", 1, 61);
    {
        // A row as a version-1 build wrote it.
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, 1);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'subject'",
                [],
                |r| r.get(0),
            )
            .expect("tables");
        assert_eq!(tables, 0, "version 1 has no subject table");
        let secs = m.effective.instant().as_second();
        conn.execute(
            "INSERT INTO measurement (id, subject, kind, t_s, t_ns, body) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
            rusqlite::params![
                &m.id.as_uuid().as_u128().to_be_bytes()[..],
                healthanalyzer_store::backend::identifier_key(&m.subject),
                m.kind.as_str(),
                secs,
                serde_json::to_string(&m).expect("json"),
            ],
        )
        .expect("v1 row");
    }
    let store = SqliteStore::open(&path).await.expect("open migrates");
    assert_eq!(store.get(&m.id).await.expect("get"), Some(m.clone()));
    store
        .put_subjects(&[Subject::new(Identifier::local("p"))])
        .await
        .expect("version 2 adds subjects");
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(v, SCHEMA_VERSION);
}

#[tokio::test]
async fn versions_kept_in_fhir_payloads_become_stored_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v2.db");
    create_at_version(&path, 2).expect("v2 file");
    let legacy = testkit::legacy_records();
    {
        // Rows as a version-2 build wrote them.
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        for (m, _) in &legacy.measurements {
            conn.execute(
                "INSERT INTO measurement (id, subject, kind, t_s, t_ns, body) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                rusqlite::params![
                    &m.id.as_uuid().as_u128().to_be_bytes()[..],
                    healthanalyzer_store::backend::identifier_key(&m.subject),
                    m.kind.as_str(),
                    m.effective.instant().as_second(),
                    serde_json::to_string(m).expect("json"),
                ],
            )
            .expect("v2 row");
        }
        let subject = &legacy.subject.0;
        let key = healthanalyzer_store::backend::identifier_key(&subject.id);
        conn.execute(
            "INSERT INTO subject (key, body) VALUES (?1, ?2)",
            rusqlite::params![key, serde_json::to_string(subject).expect("json")],
        )
        .expect("v2 subject");
        conn.execute(
            "INSERT INTO subject_identifier (identifier, subject) VALUES (?1, ?1)",
            [&key],
        )
        .expect("v2 identifier");
    }
    let store = SqliteStore::open(&path).await.expect("open migrates");
    testkit::migrated_versions_are_kept(&store).await;
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "Dear diary, my blood pressure was fine today.\n".repeat(10),
    )
    .expect("write");
    let err = refused(&path).await;
    assert!(matches!(err, SqliteError::NotSqlite { .. }), "{err}");
}

#[tokio::test]
async fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("other.db");
    rusqlite::Connection::open(&plain)
        .and_then(|c| {
            c.execute_batch("CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('x');")
        })
        .expect("other db");
    let err = refused(&plain).await;
    assert!(matches!(err, SqliteError::NotOurs { .. }), "{err}");
    assert!(err.to_string().contains("notes"), "{err}");

    let marked = dir.path().join("marked.db");
    rusqlite::Connection::open(&marked)
        .and_then(|c| c.execute_batch("PRAGMA application_id = 1481264199; CREATE TABLE t (x);"))
        .expect("other db");
    let err = refused(&marked).await;
    assert!(matches!(err, SqliteError::NotOurs { .. }), "{err}");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new.db");
    drop(SqliteStore::open(&path).await.expect("create"));
    rusqlite::Connection::open(&path)
        .and_then(|c| {
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)?;
            c.pragma_update(None, "journal_mode", "DELETE")
        })
        .expect("bump");
    let err = refused(&path).await;
    assert!(
        matches!(err, SqliteError::TooNew { found, .. } if found == SCHEMA_VERSION + 1),
        "{err}"
    );
}

#[tokio::test]
async fn a_corrupt_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corrupt.db");
    {
        let store = SqliteStore::open(&path).await.expect("create");
        let rows: Vec<_> = (0..500)
            .map(|i| testkit::heart_rate("src", "p", i, 60))
            .collect();
        store.write(&rows, None).await.expect("write");
    }
    // Fold the WAL back into the file, so the file alone holds the database.
    rusqlite::Connection::open(&path)
        .and_then(|c| c.pragma_update(None, "journal_mode", "DELETE"))
        .expect("checkpoint");
    let mut bytes = std::fs::read(&path).expect("read");
    // Keep the 100-byte header (magic, application id) but overwrite the schema page's b-tree.
    for b in &mut bytes[100..400] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).expect("write");
    let err = refused(&path).await;
    assert!(matches!(err, SqliteError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn application_id_is_set_on_new_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("id.db");
    drop(SqliteStore::open(&path).await.expect("create"));
    let id: i32 = rusqlite::Connection::open(&path)
        .and_then(|c| c.pragma_query_value(None, "application_id", |r| r.get(0)))
        .expect("id");
    assert_eq!(id, APPLICATION_ID);
    // An empty file (e.g. made by `touch`) is taken as a new database.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("touch");
    drop(SqliteStore::open(&empty).await.expect("empty file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_write_and_read_concurrently() {
    // Two independent opens behave like two processes: each has its own writer connection.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shared.db");
    let a = SqliteStore::open(&path).await.expect("a");
    let b = SqliteStore::open(&path).await.expect("b");
    let write = |store: SqliteStore, src: &'static str| {
        tokio::spawn(async move {
            for k in 0..20 {
                let batch: Vec<_> = (0..500)
                    .map(|i| testkit::heart_rate(src, src, k * 500 + i, 60))
                    .collect();
                store
                    .write(&batch, None)
                    .await
                    .expect("write under contention");
            }
        })
    };
    let reader = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..50 {
                let n = a
                    .count(&Filter::default())
                    .await
                    .expect("read during writes");
                assert!(n >= last, "counts never go backwards");
                last = n;
            }
        })
    };
    let (x, y) = (write(a.clone(), "a"), write(b.clone(), "b"));
    x.await.expect("writer a");
    y.await.expect("writer b");
    reader.await.expect("reader");
    assert_eq!(b.count(&Filter::default()).await.expect("count"), 20_000);
}

/// Schema 3 kept each measurement as one JSON text (the kept record escaped inside it) under
/// text subject and kind keys. Schema 4 re-encodes every row: the records read back exactly,
/// queries by subject and kind find them, and the kept record is stored compressed apart.
#[tokio::test]
async fn a_schema_3_file_is_re_encoded_and_reads_back_exactly() {
    use healthanalyzer_model::Payload;
    use healthanalyzer_store::{Query, WriteSetStore};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v3.db");
    create_at_version(&path, 3).expect("v3 file");
    let mut rows = Vec::new();
    for i in 0..50 {
        let mut m = testkit::heart_rate("fhir-api", if i % 2 == 0 { "a" } else { "b" }, i, 60 + i);
        m.provenance.payload = Some(Payload {
            media_type: "application/fhir+json".into(),
            content: format!(
                r#"{{"resourceType":"Observation","id":"hr-{i}","status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}}]}}],"code":{{"coding":[{{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}}]}},"subject":{{"reference":"Patient/a"}},"valueQuantity":{{"value":{},"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}}}"#,
                60 + i
            ),
        });
        rows.push((m, 1 + (i as u64 % 3)));
    }
    // One row whose body this build cannot read: it must survive the migration untouched.
    let damaged_id = [7u8; 16];
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        for (m, version) in &rows {
            let nanos = m.effective.instant().as_nanosecond();
            conn.execute(
                "INSERT INTO measurement (id, subject, kind, t_s, t_ns, body, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    &m.id.as_uuid().as_u128().to_be_bytes()[..],
                    healthanalyzer_store::backend::identifier_key(&m.subject),
                    m.kind.as_str(),
                    nanos.div_euclid(1_000_000_000) as i64,
                    nanos.rem_euclid(1_000_000_000) as i64,
                    serde_json::to_string(m).expect("json"),
                    *version as i64,
                ],
            )
            .expect("v3 row");
        }
        conn.execute(
            "INSERT INTO measurement (id, subject, kind, t_s, t_ns, body) VALUES (?1, ?2, 'heart-rate', 0, 0, '{not json')",
            rusqlite::params![
                &damaged_id[..],
                healthanalyzer_store::backend::identifier_key(&Identifier::local("x"))
            ],
        )
        .expect("damaged row");
    }
    let store = SqliteStore::open(&path).await.expect("open migrates");
    for (m, version) in &rows {
        let got = store
            .get_versioned(&m.id)
            .await
            .expect("get")
            .expect("kept");
        assert_eq!((&got.value, got.version), (m, *version));
    }
    let page = store
        .query(&Query::new(
            Filter::subject(Identifier::local("a")).kinds([m_kind(&rows)]),
            100,
        ))
        .await
        .expect("query");
    let want: Vec<_> = rows
        .iter()
        .map(|(m, _)| m.clone())
        .filter(|m| m.subject == Identifier::local("a"))
        .collect();
    assert_eq!(page.items, want);
    assert_eq!(
        store.measured_subjects().await.expect("subjects").len(),
        3,
        "a, b and the damaged row's subject"
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let (kept, stored): (i64, i64) = conn
        .query_row(
            "SELECT sum(length(payload)), count(*) FROM measurement WHERE payload IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("sizes");
    let original: usize = rows
        .iter()
        .map(|(m, _)| m.provenance.payload.as_ref().map_or(0, |p| p.content.len()))
        .sum();
    assert_eq!(stored, 50);
    assert!(
        (kept as usize) * 2 < original,
        "{kept} bytes kept for {original} bytes of records"
    );
    let damaged: Vec<u8> = conn
        .query_row(
            "SELECT body FROM measurement WHERE id = ?1",
            [&damaged_id[..]],
            |r| r.get(0),
        )
        .expect("damaged row kept");
    assert_eq!(
        &damaged[1..],
        b"{not json",
        "kept as it was, behind the raw tag"
    );
}

fn m_kind(rows: &[(healthanalyzer_model::Measurement, u64)]) -> healthanalyzer_model::KindId {
    rows[0].0.kind.clone()
}

/// A set that fails after it added a new subject to the `series` dictionary is rolled back
/// with that row: the writer must not keep the number it was given, or the next write for the
/// subject would store rows under a number no key owns, and queries by the subject would not
/// find them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_set_leaves_no_dictionary_number_behind() {
    use healthanalyzer_store::{Precondition, Query, WriteSet, WriteSetStore};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dict.db");
    let store = SqliteStore::open(&path).await.expect("open");
    // Another subject first, so that the rolled-back number is not simply reused.
    store
        .write(&[testkit::heart_rate("src", "first", 1, 60)], None)
        .await
        .expect("first subject");
    let fresh = testkit::heart_rate("src", "newcomer", 2, 61);
    let missing = testkit::heart_rate("src", "newcomer", 3, 62);
    let failed = WriteSet::new()
        .put_measurement(fresh.clone(), Precondition::Any)
        .put_measurement(missing, Precondition::Version(5));
    assert!(
        store.apply(&failed).await.is_err(),
        "the second record is not at version 5"
    );
    // A third subject takes the number the failed set had been given.
    store
        .write(&[testkit::heart_rate("src", "third", 4, 63)], None)
        .await
        .expect("third subject");
    store
        .write(std::slice::from_ref(&fresh), None)
        .await
        .expect("write again");
    let page = store
        .query(&Query::new(
            Filter::subject(Identifier::local("newcomer")),
            10,
        ))
        .await
        .expect("query");
    assert_eq!(
        page.items,
        vec![fresh],
        "the newcomer's row is found by its subject"
    );
    let third = store
        .query(&Query::new(Filter::subject(Identifier::local("third")), 10))
        .await
        .expect("query");
    assert_eq!(third.items.len(), 1, "the third subject keeps its own rows");
}

/// A file written by schema 4 (measurements, subjects, a checkpoint) migrates to schema 5 on
/// open: every record reads back as it was, at its version, and documents can be written and
/// found beside them, also after reopening.
#[tokio::test]
async fn a_schema_4_file_gains_documents_and_keeps_its_records() {
    use healthanalyzer_store::{
        Checkpoint, Document, DocumentQuery, Precondition, WriteSet, WriteSetStore,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v4.db");
    let old = healthanalyzer_store_sqlite::open_at_version(&path, 4)
        .await
        .expect("v4 store");
    let rows: Vec<_> = (0..20)
        .map(|i| testkit::heart_rate("src", "p", i, 60 + i))
        .collect();
    old.write(&rows, Some(&Checkpoint::new("src", "offset=20")))
        .await
        .expect("v4 write");
    let mut changed = rows[3].clone();
    changed.value = healthanalyzer_model::Value::quantity(99.into(), "/min");
    old.apply(&WriteSet::new().put_measurement(changed.clone(), Precondition::Version(1)))
        .await
        .expect("v4 update");
    let person = Subject::new(Identifier::local("p"));
    old.put_subjects(std::slice::from_ref(&person))
        .await
        .expect("v4 subject");
    let refused = old
        .apply(
            &WriteSet::new()
                .put_document(Document::new("Provenance", "x", "{}"), Precondition::Any),
        )
        .await;
    assert!(refused.is_err(), "schema 4 has no document table");
    drop(old);

    let store = SqliteStore::open(&path).await.expect("open migrates");
    for (i, m) in rows.iter().enumerate() {
        let got = store
            .get_versioned(&m.id)
            .await
            .expect("get")
            .expect("kept");
        if i == 3 {
            assert_eq!((&got.value, got.version), (&changed, 2));
        } else {
            assert_eq!((&got.value, got.version), (m, 1));
        }
    }
    assert_eq!(
        store
            .checkpoint("src")
            .await
            .expect("checkpoint")
            .map(|c| c.cursor),
        Some("offset=20".to_string())
    );
    let got = store
        .subject_versioned(&person.id)
        .await
        .expect("subject")
        .expect("kept");
    assert_eq!((got.value, got.version), (person.clone(), 1));

    let t = rows[0].effective.instant();
    let provenance = Document::new(
        "Provenance",
        "sub-1",
        r#"{"resourceType":"Provenance","id":"sub-1"}"#,
    )
    .key("patient|Patient/p")
    .key(format!("target|Observation/{}", rows[0].id))
    .span(t, rows[19].effective.instant());
    let applied = store
        .apply(
            &WriteSet::new()
                .put_measurement(
                    testkit::heart_rate("src", "p", 20, 80),
                    Precondition::Absent,
                )
                .put_document(provenance.clone(), Precondition::Absent),
        )
        .await
        .expect("documents after the migration");
    assert_eq!(applied.document_versions, vec![1]);
    drop(store);
    let store = SqliteStore::open(&path).await.expect("reopen");
    let found = store
        .find_documents(
            &DocumentQuery::new("Provenance", 10)
                .key("patient|Patient/p")
                .period(Some(t), Some(t)),
        )
        .await
        .expect("find");
    assert_eq!(found.len(), 1);
    assert_eq!((&found[0].value, found[0].version), (&provenance, 1));
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(v, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 5);
}
