//! Against a real, third-party FHIR server (SEKMET, started by `.ci/run`): what the sink pushes
//! is created once, found again by the source, and the source keeps the connector contract.
//! Needs `HEALTHANALYZER_FHIR_URL`; skips with a notice without it, unless
//! `HEALTHANALYZER_REQUIRE_FHIR=1` (CI), which makes a missing server a failure.

use std::collections::BTreeSet;
use std::io::Write;

use healthanalyzer_fhir::{Profile, WriteOptions};
use healthanalyzer_model::{Catalog, Measurement};
use healthanalyzer_source::{Cursor, testkit};
use healthanalyzer_source_fhir::{FhirClient, FhirSink, FhirSource, Query, ServerConfig};
use healthanalyzer_source_sim::{SimConfig, SimSource};

fn server() -> Option<String> {
    match std::env::var("HEALTHANALYZER_FHIR_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("HEALTHANALYZER_REQUIRE_FHIR").as_deref() != Ok("1"),
                "HEALTHANALYZER_REQUIRE_FHIR=1 but HEALTHANALYZER_FHIR_URL is not set"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED the SEKMET tests: HEALTHANALYZER_FHIR_URL is not set (.ci/run starts a server)"
            );
            None
        }
    }
}

/// What identifies a reading, whoever stored it.
fn key(m: &Measurement) -> String {
    format!(
        "{:?}|{}|{}|{:?}",
        m.subject,
        m.kind.as_str(),
        m.effective.start(),
        m.value
    )
}

#[tokio::test]
async fn pushed_measurements_are_created_once_and_read_back() {
    let Some(base) = server() else { return };
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let sim = SimSource::new(SimConfig {
        source_id: format!("sim-{nonce}"),
        seed: nonce,
        patients: 3,
        days: 2,
        ..SimConfig::default()
    })
    .expect("sim");
    let batch = testkit::pull_all(&sim, &Cursor::start(), 1000).await;
    let pushed: Vec<Measurement> = batch.into_iter().flat_map(|b| b.measurements).collect();
    let subjects: Vec<_> = sim
        .subjects()
        .iter()
        .cloned()
        .map(healthanalyzer_model::Subject::new)
        .collect();

    let client = FhirClient::new(ServerConfig::new(&base)).expect("client");
    let options = WriteOptions::new(Catalog::builtin()).with_profile(Profile::DkCore);
    let sink = FhirSink::new(client.clone(), options).with_batch(10);
    let first = sink.push(&subjects, &pushed).await.expect("push");
    // Each Bundle carries the Patients its measurements refer to: created once, then found.
    assert_eq!(first.created, pushed.len() + subjects.len(), "{first:?}");
    let again = sink.push(&subjects, &pushed).await.expect("push again");
    assert_eq!(
        again.created, 0,
        "a repeated push created something: {again:?}"
    );
    assert_eq!(again.existing, first.created + first.existing);

    let source = FhirSource::new("sekmet", client.clone(), Query::default());
    let read: Vec<Measurement> = testkit::pull_all(&source, &Cursor::start(), 25)
        .await
        .into_iter()
        .flat_map(|b| b.measurements)
        .filter(|m| m.subject.value.starts_with(&format!("sim-{nonce}-")))
        .collect();
    let want: BTreeSet<String> = pushed.iter().map(key).collect();
    let got: BTreeSet<String> = read.iter().map(key).collect();
    assert_eq!(
        got, want,
        "what the source read back differs from what was pushed"
    );

    let second = FhirSource::new("sekmet", client, Query::default());
    testkit::run_all(&source, &second, 9).await;
}
