//! The library calls behind the command line's commands: configuration, report set-up, the
//! patient listing, the demo and the FHIR exports.

use std::collections::HashMap;
use std::sync::Arc;

use healthanalyzer_fhir::{BundleKind, WriteOptions};
use healthanalyzer_model::Catalog;
use healthanalyzer_pipeline::{
    Config, DemoOptions, Error, ReportRequest, StopFlag, SyncOptions, demo, export_bundle,
    file_source_id, open_store, patients, sync,
};
use healthanalyzer_source_sim::{SimConfig, SimSource};
use healthanalyzer_store::{Filter, MeasurementStoreExt, Order, Store};
use serde_json::Value;

async fn filled(patients: usize, days: u32) -> Arc<dyn Store> {
    let store = open_store("memory:").await.expect("open");
    let sim = SimSource::new(SimConfig {
        patients,
        days,
        start: "2024-01-01".parse().expect("date"),
        ..SimConfig::default()
    })
    .expect("sim");
    let out = sync(
        store.clone(),
        &[Arc::new(sim)],
        &SyncOptions::default(),
        &StopFlag::new(),
        &|_| {},
    )
    .await;
    assert!(out[0].inserted > 0);
    store
}

#[tokio::test]
async fn a_bundle_written_page_by_page_holds_the_entries_of_one_written_at_once() {
    let store = filled(10, 60).await;
    let all = store
        .query_all(&Filter::default(), Order::Ascending, 500)
        .await
        .expect("query");
    assert!(
        all.len() > 2_000,
        "more than two pages of 1,000: {}",
        all.len()
    );
    let mut subjects = Vec::new();
    for id in store.measured_subjects().await.expect("subjects") {
        subjects.extend(store.subject(&id).await.expect("subject"));
    }
    let options = WriteOptions {
        catalog: Catalog::builtin(),
        profile: Default::default(),
        national: None,
    };
    let mut out = Vec::new();
    let (p, n) = export_bundle(store.as_ref(), None, None, &options, &mut out)
        .await
        .expect("export");
    assert_eq!((p, n), (subjects.len(), all.len()));
    let streamed: Value = serde_json::from_slice(&out).expect("the output is one JSON document");
    assert_eq!(streamed["resourceType"], "Bundle");
    assert_eq!(streamed["type"], "collection");
    let whole =
        healthanalyzer_fhir::write_bundle(BundleKind::Collection, &subjects, &all, &options)
            .expect("write_bundle");
    let by_url = |b: &Value| -> HashMap<String, Value> {
        b["entry"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["fullUrl"].as_str().expect("fullUrl").to_string(),
                    e.clone(),
                )
            })
            .collect()
    };
    let (s, w) = (by_url(&streamed), by_url(&whole));
    assert_eq!(
        s.len(),
        streamed["entry"].as_array().map_or(0, Vec::len),
        "every fullUrl once (bdl-7), Devices too"
    );
    assert_eq!(s, w);
}

#[tokio::test]
async fn patients_are_listed_with_their_counts() {
    let store = filled(4, 3).await;
    let first = store.measured_subjects().await.expect("subjects")[0].clone();
    let mut named = healthanalyzer_model::Subject::new(first);
    named.name = Some(healthanalyzer_model::HumanName {
        family: Some("Jensen".into()),
        given: vec![],
        text: None,
    });
    store.put_subjects(&[named]).await.expect("put");
    let rows = patients(store.as_ref()).await.expect("patients");
    let ids = store.measured_subjects().await.expect("subjects");
    assert_eq!(rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), ids);
    for r in &rows {
        let n = store
            .count(&Filter::subject(r.id.clone()))
            .await
            .expect("count");
        assert_eq!(r.measurements, n);
        let name = store
            .subject(&r.id)
            .await
            .expect("subject")
            .and_then(|s| s.name)
            .and_then(|n| n.text.or(n.family));
        assert_eq!(r.name, name);
    }
    assert_eq!(rows[0].name.as_deref(), Some("Jensen"));
}

#[test]
fn a_report_request_overrides_the_configuration_which_overrides_the_defaults() {
    let config = Config::parse(
        r#"
        [report]
        days = 30
        time_zone = "Europe/Oslo"
        glucose_unit = "mg/dL"
        title = "Ward 7"
        "#,
    )
    .expect("config");
    let (_, options) = config
        .report_setup(&ReportRequest::default())
        .expect("setup");
    assert_eq!(options.days, 30);
    assert_eq!(options.time_zone.iana_name(), Some("Europe/Oslo"));
    assert_eq!(options.title, "Ward 7");
    assert!(options.follow_data, "a default now follows the data");
    let at = "2025-03-01T00:00:00Z".parse().expect("instant");
    let (_, options) = config
        .report_setup(&ReportRequest {
            days: Some(7),
            time_zone: Some("Europe/Amsterdam".into()),
            at: Some(at),
            glucose_unit: Some("mmol/L".into()),
            ..ReportRequest::default()
        })
        .expect("setup");
    assert_eq!(options.days, 7);
    assert_eq!(options.now, at);
    assert!(!options.follow_data, "a now given on purpose is kept");
    assert_eq!(options.time_zone.iana_name(), Some("Europe/Amsterdam"));
    assert_eq!(
        options.glucose_unit,
        Some(healthanalyzer_report::GlucoseUnit::MmolL)
    );
    let (_, defaults) = Config::default()
        .report_setup(&ReportRequest::default())
        .expect("setup");
    assert_eq!(defaults.days, 90);
    for bad in [
        ReportRequest {
            time_zone: Some("Mars/Olympus".into()),
            ..ReportRequest::default()
        },
        ReportRequest {
            glucose_unit: Some("g/L".into()),
            ..ReportRequest::default()
        },
        ReportRequest {
            rules_file: Some("/nonexistent/rules.toml".into()),
            ..ReportRequest::default()
        },
    ] {
        assert!(
            matches!(config.report_setup(&bad), Err(Error::Config(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn sync_options_follow_the_sync_section() {
    let config = Config::parse(
        r#"
        [sync]
        batch_size = 250
        concurrency = 2
        max_attempts = 0
        identifiers = "refuse"
        "#,
    )
    .expect("config");
    let o = config.sync_options();
    assert_eq!(o.batch_size, Some(250));
    assert_eq!(o.concurrency, 2);
    assert_eq!(o.retry.max_attempts, 1, "0 attempts means one, no retries");
    assert_eq!(
        o.identifiers,
        healthanalyzer_model::IdentifierPolicy::Refuse
    );
    assert_eq!(Config::default().sync_options().concurrency, 4);
}

#[test]
fn a_named_configuration_file_must_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.toml");
    match Config::find(Some(&path)) {
        Err(Error::Config(m)) => assert!(m.contains("h.toml"), "{m}"),
        other => panic!("{other:?}"),
    }
    std::fs::write(&path, "store = \"memory:\"\n").expect("write");
    let c = Config::find(Some(&path)).expect("found");
    assert_eq!(c.store.as_deref(), Some("memory:"));
    assert_eq!(c.base, dir.path());
}

#[test]
fn an_imported_file_is_named_by_its_file_name() {
    assert_eq!(
        file_source_id(std::path::Path::new("/data/ward 7/export.ndjson")),
        "file:export.ndjson"
    );
}

#[tokio::test]
async fn the_demo_reports_and_a_second_run_stores_nothing_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store("memory:").await.expect("open");
    let options = DemoOptions {
        patients: 6,
        days: 10,
        out: dir.path().join("report.html"),
        rules_file: Some(dir.path().join("rules.toml")),
        time_zone: healthanalyzer_model::jiff::tz::TimeZone::UTC,
        sync: SyncOptions::default(),
    };
    let first = demo(store.clone(), &options, &StopFlag::new(), &|_| {})
        .await
        .expect("demo");
    let report = first.report.expect("a complete sync is reported");
    assert_eq!(report.totals.patients, 6);
    assert_eq!(first.total, first.sync.inserted);
    let html = std::fs::read_to_string(&options.out).expect("report written");
    assert!(html.contains("<svg"), "charts in the report");
    let rules =
        std::fs::read_to_string(options.rules_file.as_ref().expect("path")).expect("rules written");
    assert!(healthanalyzer_analysis::RuleSet::from_toml(&rules).is_ok());
    let second = demo(store, &options, &StopFlag::new(), &|_| {})
        .await
        .expect("demo again");
    assert_eq!(second.sync.inserted, 0);
    assert_eq!(second.total, first.total);
}
