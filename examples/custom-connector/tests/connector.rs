//! The PulseBand connector passes the connector test kit and reports its bad reading.

use example_custom_connector::PulseBand;
use healthanalyzer_source::{Cursor, Source, testkit};

const EXPORT: &str = include_str!("../data/pulseband.json");

#[tokio::test]
async fn it_keeps_the_source_contract() {
    let a = PulseBand::from_json(EXPORT).expect("export");
    let b = PulseBand::from_json(EXPORT).expect("export");
    testkit::run_all(&a, &b, 3).await;
}

#[tokio::test]
async fn it_reads_seven_readings_and_reports_the_one_without_a_value() {
    let source = PulseBand::from_json(EXPORT).expect("export");
    assert_eq!(source.id(), "pulseband");
    let batches = testkit::pull_all(&source, &Cursor::start(), 100).await;
    let measurements: usize = batches.iter().map(|b| b.measurements.len()).sum();
    let rejected: Vec<_> = batches.iter().flat_map(|b| &b.rejected).collect();
    assert_eq!(measurements, 7);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].location, "readings[3] (r-004)");
    assert!(rejected[0].reason.contains("`value` is missing"));
}

#[tokio::test]
async fn a_file_that_is_not_an_export_is_an_error_that_retrying_cannot_fix() {
    let e = match PulseBand::from_json("{\"readings\": 3}") {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("not a PulseBand export"), "{e}");
}
