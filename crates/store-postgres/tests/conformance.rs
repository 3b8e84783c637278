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
