//! Schema 4 and the bulk path on a real server: a schema 3 database migrates with every row
//! reading back equal (the kept payload byte for byte); a bulk-sized write set stays atomic
//! against a concurrent writer, and re-applied changes nothing.

mod common;

use healthanalyzer_model::{Identifier, Measurement, Provenance};
use healthanalyzer_store::testkit;
use healthanalyzer_store::{
    Error, Filter, MeasurementStore, Precondition, Query, WriteSet, WriteSetStore,
};
use healthanalyzer_store_postgres::PostgresStore;

/// A measurement keeping `content` as its original record.
fn with_record(source: &str, subject: &str, i: i64, content: &str) -> Measurement {
    let mut m = testkit::heart_rate(source, subject, i, 50 + i % 70);
    m.provenance =
        Provenance::new(source, format!("r{i}")).with_payload("application/fhir+json", content);
    m.id = m.provenance.measurement_id();
    m
}

/// FHIR text with what a re-serialisation would not keep: spacing, key order, escapes, non-ASCII.
fn record(i: i64) -> String {
    format!(
        "{{ \"resourceType\" : \"Observation\",\n  \"id\":\"o{i}\", \"note\":[{{\"text\":\"Åse \\u00e6 \\\"{i}\\\"\\t\"}}],\
         \"valueQuantity\":{{\"value\":{i}.50,\"unit\":\"/min\"}}, \"status\":\"final\" }}   "
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_3_database_migrates_and_reads_back_every_row() {
    let Some(url) = common::url("a_schema_3_database_migrates_and_reads_back_every_row") else {
        return;
    };
    let url = common::fresh_schema(&url, "v3to4").await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    common::old_schema(&client, 3).await;
    // Several subjects and kinds, with and without kept records, some at later versions; more
    // rows than one migration chunk.
    let mut rows: Vec<(Measurement, i64)> = Vec::new();
    for i in 0..12_345 {
        let subject = format!("p{}", i % 7);
        let mut m = if i % 3 == 0 {
            testkit::heart_rate("src", &subject, i, 60 + i % 50)
        } else {
            with_record("fhir", &subject, i, &record(i))
        };
        if i % 5 == 0 {
            m.kind = healthanalyzer_model::KindId::new("body-weight");
        }
        rows.push((m, 1 + i % 4));
    }
    for (m, v) in &rows {
        common::old_measurement(&client, m, *v).await;
    }
    let store = PostgresStore::connect(&url)
        .await
        .expect("connect migrates");
    for (m, v) in &rows {
        let got = store
            .get_versioned(&m.id)
            .await
            .expect("get")
            .expect("kept");
        assert_eq!((&got.value, got.version), (m, *v as u64));
        assert_eq!(format!("{:?}", got.value), format!("{m:?}"));
        assert_eq!(
            got.value.provenance.payload.map(|p| p.content.into_bytes()),
            m.provenance
                .payload
                .as_ref()
                .map(|p| p.content.clone().into_bytes()),
            "the kept record byte for byte"
        );
    }
    assert_eq!(
        store.count(&Filter::default()).await.expect("count"),
        rows.len() as u64
    );
    let p3 = Filter::subject(Identifier::local("p3"));
    let want = rows
        .iter()
        .filter(|(m, _)| m.subject == Identifier::local("p3"))
        .count();
    assert_eq!(store.count(&p3).await.expect("count"), want as u64);
    let page = store
        .query(&Query::new(
            Filter::subject(Identifier::local("p3")).kinds(["body-weight"]),
            10_000,
        ))
        .await
        .expect("query");
    assert!(!page.items.is_empty());
    assert!(
        page.items
            .iter()
            .all(|m| m.kind.as_str() == "body-weight" && m.subject == Identifier::local("p3"))
    );
    let version: String = client
        .query_one(
            "SELECT value FROM healthanalyzer_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .expect("version")
        .get(0);
    assert_eq!(version, "4");
    // Writing a migrated row again as it was changes nothing.
    let again: Vec<Measurement> = rows.iter().take(2_000).map(|(m, _)| m.clone()).collect();
    let w = store.write(&again, None).await.expect("rewrite");
    assert_eq!((w.inserted, w.updated, w.unchanged), (0, 0, 2_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_set_is_atomic_against_a_concurrent_writer_and_idempotent() {
    let Some(url) = common::url("a_bulk_set_is_atomic_against_a_concurrent_writer_and_idempotent")
    else {
        return;
    };
    let url = common::fresh_schema(&url, "bulk").await;
    let store = PostgresStore::connect(&url).await.expect("connect");
    let other = PostgresStore::connect(&url)
        .await
        .expect("a second process");
    let contested = with_record("cas", "q", 0, &record(0));
    store
        .apply(&WriteSet::new().put_measurement(contested.clone(), Precondition::Absent))
        .await
        .expect("create");
    for round in 0..6_i64 {
        // A bulk-sized set (new rows of a new subject, beside the contested record at version
        // 1 + round) against a second process updating the contested record at the same
        // version: exactly one wins, and the loser wrote nothing.
        let bulk: Vec<Measurement> = (0..3_000)
            .map(|i| with_record(&format!("bulk{round}"), &format!("s{round}"), i, &record(i)))
            .collect();
        let mut mine = contested.clone();
        mine.value = healthanalyzer_model::Value::quantity((1000 + round).into(), "/min");
        let mut theirs = contested.clone();
        theirs.value = healthanalyzer_model::Value::quantity((2000 + round).into(), "/min");
        let stored = store
            .get_versioned(&contested.id)
            .await
            .expect("get")
            .expect("exists")
            .version;
        let mut set = WriteSet::batch(&bulk, None);
        set = set.put_measurement(mine, Precondition::Version(stored));
        let a = store.apply(&set);
        let their_set = WriteSet::new().put_measurement(theirs, Precondition::Version(stored));
        let b = other.apply(&their_set);
        let (a, b) = tokio::join!(a, b);
        let n = store
            .count(&Filter::subject(Identifier::local(format!("s{round}"))))
            .await
            .expect("count");
        match (&a, &b) {
            (Ok(applied), Err(Error::PreconditionFailed(_))) => {
                assert_eq!(applied.measurements.inserted, 3_000);
                assert_eq!(n, 3_000, "the bulk set won: all of it");
            }
            (Err(Error::PreconditionFailed(_)), Ok(_)) => {
                assert_eq!(n, 0, "the bulk set lost: nothing of it");
            }
            other => panic!("exactly one must win: {other:?}"),
        }
        let after = store
            .get_versioned(&contested.id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(after.version, stored + 1);
        if a.is_ok() {
            // Re-applied, the bulk part changes nothing and keeps its versions.
            let again = store
                .apply(&WriteSet::batch(&bulk, None))
                .await
                .expect("again");
            assert_eq!(
                (
                    again.measurements.inserted,
                    again.measurements.updated,
                    again.measurements.unchanged
                ),
                (0, 0, 3_000)
            );
            assert!(again.measurement_versions.iter().all(|v| *v == 1));
            assert_eq!(
                store
                    .count(&Filter::subject(Identifier::local(format!("s{round}"))))
                    .await
                    .expect("count"),
                3_000
            );
            for m in bulk.iter().step_by(97) {
                assert_eq!(store.get(&m.id).await.expect("get").as_ref(), Some(m));
            }
        }
    }
    // A bulk set with a changed row and a subject correction inside: counted and versioned.
    let base: Vec<Measurement> = (0..2_000)
        .map(|i| with_record("fix", "f", i, &record(i)))
        .collect();
    store.write(&base, None).await.expect("base");
    let mut next = base.clone();
    next[10].value = healthanalyzer_model::Value::quantity(1.into(), "/min");
    next[20].subject = Identifier::local("g");
    let applied = store
        .apply(&WriteSet::batch(&next, None))
        .await
        .expect("corrections");
    assert_eq!(
        (
            applied.measurements.inserted,
            applied.measurements.updated,
            applied.measurements.unchanged
        ),
        (0, 2, 1_998)
    );
    assert_eq!(applied.measurement_versions[10], 2);
    assert_eq!(applied.measurement_versions[20], 2);
    assert_eq!(applied.measurement_versions[0], 1);
    assert_eq!(
        store.get(&next[20].id).await.expect("get").as_ref(),
        Some(&next[20])
    );
    assert_eq!(
        store
            .count(&Filter::subject(Identifier::local("f")))
            .await
            .expect("count"),
        1_999
    );
}
