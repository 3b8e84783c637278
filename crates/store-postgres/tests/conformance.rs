//! The PostgreSQL store, on a real server, runs the whole conformance kit.

mod common;

use healthanalyzer_store::testkit;
use healthanalyzer_store_postgres::{PostgresError, PostgresStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_conformance_kit() {
    let Some(url) = common::url("postgres_store_passes_the_conformance_kit") else {
        return;
    };
    let url = common::fresh_schema(&url, "kit").await;
    let store = PostgresStore::connect(&url).await.expect("connect");
    testkit::run_all(&store).await;
    testkit::run_subject_checks(&store).await;
    // A second store on the same schema (another replica) finds it migrated and shares the data.
    let replica = PostgresStore::connect(&url).await.expect("replica");
    testkit::upsert_is_idempotent(&replica).await;
    // Write sets, with the concurrency checks across both pools (as two server processes).
    testkit::run_write_set_checks(&store, &[&replica], std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn versions_kept_in_fhir_payloads_become_stored_versions() {
    let Some(url) = common::url("versions_kept_in_fhir_payloads_become_stored_versions") else {
        return;
    };
    let url = common::fresh_schema(&url, "v1").await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    // The schema as a version-1 build made it, with rows it wrote.
    client
        .batch_execute(
            "CREATE TABLE healthanalyzer_meta (key text PRIMARY KEY, value text NOT NULL);
             INSERT INTO healthanalyzer_meta VALUES ('application', 'health-analyzer'), ('schema_version', '1');
             CREATE TABLE measurement (subject text NOT NULL, id uuid NOT NULL, kind text NOT NULL,
                 t_s bigint NOT NULL, t_ns int NOT NULL, body text NOT NULL, PRIMARY KEY (subject, id));
             CREATE INDEX measurement_id ON measurement (id);
             CREATE TABLE checkpoint (source_id text NOT NULL PRIMARY KEY, cursor text NOT NULL);
             CREATE TABLE subject (key text NOT NULL PRIMARY KEY, body text NOT NULL);
             CREATE TABLE subject_identifier (identifier text NOT NULL PRIMARY KEY, subject text NOT NULL);",
        )
        .await
        .expect("a version-1 schema");
    let legacy = testkit::legacy_records();
    for (m, _) in &legacy.measurements {
        client
            .execute(
                "INSERT INTO measurement (subject, id, kind, t_s, t_ns, body) VALUES ($1, $2, $3, $4, 0, $5)",
                &[
                    &healthanalyzer_store::backend::identifier_key(&m.subject),
                    m.id.as_uuid(),
                    &m.kind.as_str(),
                    &m.effective.instant().as_second(),
                    &serde_json::to_string(m).expect("json"),
                ],
            )
            .await
            .expect("v1 row");
    }
    let subject = &legacy.subject.0;
    let key = healthanalyzer_store::backend::identifier_key(&subject.id);
    client
        .execute(
            "INSERT INTO subject (key, body) VALUES ($1, $2)",
            &[&key, &serde_json::to_string(subject).expect("json")],
        )
        .await
        .expect("v1 subject");
    client
        .execute(
            "INSERT INTO subject_identifier (identifier, subject) VALUES ($1, $1)",
            &[&key],
        )
        .await
        .expect("v1 identifier");
    let store = PostgresStore::connect(&url)
        .await
        .expect("connect migrates");
    testkit::migrated_versions_are_kept(&store).await;
}

#[tokio::test]
async fn tables_that_are_not_ours_are_refused_untouched() {
    let Some(url) = common::url("tables_that_are_not_ours_are_refused_untouched") else {
        return;
    };
    let url = common::fresh_schema(&url, "foreign").await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute("CREATE TABLE measurement (x int); INSERT INTO measurement VALUES (7)")
        .await
        .expect("foreign table");
    let err = PostgresStore::connect(&url).await.expect_err("must refuse");
    assert!(
        matches!(err, PostgresError::NotOurs { ref table } if table == "measurement"),
        "{err}"
    );
    let n: i64 = client
        .query_one("SELECT count(*) FROM measurement WHERE x = 7", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
    let meta: bool = client
        .query_one("SELECT to_regclass('healthanalyzer_meta') IS NOT NULL", &[])
        .await
        .expect("meta")
        .get(0);
    assert!(!meta, "nothing was created");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let Some(url) = common::url("a_newer_schema_is_refused") else {
        return;
    };
    let url = common::fresh_schema(&url, "newer").await;
    drop(PostgresStore::connect(&url).await.expect("create"));
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .execute(
            "UPDATE healthanalyzer_meta SET value = '99' WHERE key = 'schema_version'",
            &[],
        )
        .await
        .expect("bump");
    let err = PostgresStore::connect(&url).await.expect_err("must refuse");
    assert!(
        matches!(err, PostgresError::TooNew { found: 99, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error() {
    // Port 1 on loopback: nothing listens there.
    let err = PostgresStore::connect("postgres://nobody@127.0.0.1:1/db?connect_timeout=2")
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(err, PostgresError::Connect { .. }), "{err}");
    let err: healthanalyzer_store::Error = err.into();
    assert!(err.is_retryable(), "{err}");
}

/// A schema at version 2 (as a build before documents left it, with measurements, a subject and
/// a checkpoint) migrates to the current version on connect: every record reads back as it was, at its
/// version, and documents can be written and found beside them.
#[tokio::test]
async fn a_schema_2_database_gains_documents_and_keeps_its_records() {
    use healthanalyzer_model::{Identifier, Subject};
    use healthanalyzer_store::{
        Document, DocumentQuery, MeasurementStore, Precondition, WriteSet, WriteSetStore,
    };
    let Some(url) = common::url("a_schema_2_database_gains_documents_and_keeps_its_records") else {
        return;
    };
    let url = common::fresh_schema(&url, "v2docs").await;
    let rows: Vec<_> = (0..20)
        .map(|i| testkit::heart_rate("src", "p", i, 60 + i))
        .collect();
    let mut changed = rows[3].clone();
    changed.value = healthanalyzer_model::Value::quantity(99.into(), "/min");
    let person = Subject::new(Identifier::local("p"));
    // Schema 2 as a build of that version wrote it (no document tables), with those rows.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    common::old_schema(&client, 2).await;
    for (i, m) in rows.iter().enumerate() {
        if i == 3 {
            common::old_measurement(&client, &changed, 2).await;
        } else {
            common::old_measurement(&client, m, 1).await;
        }
    }
    let key = healthanalyzer_store::backend::identifier_key(&person.id);
    client
        .execute(
            "INSERT INTO subject (key, body, version) VALUES ($1, $2, 1)",
            &[&key, &serde_json::to_string(&person).expect("json")],
        )
        .await
        .expect("subject");
    client
        .execute(
            "INSERT INTO subject_identifier (identifier, subject) VALUES ($1, $1)",
            &[&key],
        )
        .await
        .expect("identifier");
    client
        .execute(
            "INSERT INTO checkpoint (source_id, cursor) VALUES ('src', 'offset=20')",
            &[],
        )
        .await
        .expect("checkpoint");

    let store = PostgresStore::connect(&url)
        .await
        .expect("connect migrates");
    for (i, m) in rows.iter().enumerate() {
        let got = store
            .get_versioned(&m.id)
            .await
            .expect("get")
            .expect("kept");
        let want = if i == 3 { (&changed, 2) } else { (m, 1) };
        assert_eq!((&got.value, got.version), want);
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
    assert_eq!((got.value, got.version), (person, 1));
    let t = rows[0].effective.instant();
    let provenance = Document::new(
        "Provenance",
        "sub-1",
        r#"{"resourceType":"Provenance","id":"sub-1"}"#,
    )
    .key("patient|Patient/p")
    .span(t, rows[19].effective.instant());
    store
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
    let version: String = client
        .query_one(
            "SELECT value FROM healthanalyzer_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .expect("version")
        .get(0);
    assert_eq!(
        version,
        healthanalyzer_store_postgres::SCHEMA_VERSION.to_string()
    );
    assert_eq!(healthanalyzer_store_postgres::SCHEMA_VERSION, 4);
}
