//! Bundles and NDJSON: references between entries are resolved, bad entries reported without
//! losing the others, and what we write reads back.

mod common;

use std::io::Write;

use healthanalyzer_fhir::{
    BundleKind, ReadOptions, WriteOptions, read_bundle, read_ndjson, write_bundle, write_ndjson,
};
use healthanalyzer_model::{Catalog, Identifier, systems};
use serde_json::json;

fn options() -> ReadOptions<'static> {
    ReadOptions::new(Catalog::builtin(), "bundle-test")
}

fn sample() -> serde_json::Value {
    json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:8e1a6a5e-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
                "subject": {"reference": "urn:uuid:8e1a6a5e-0000-4000-8000-0000000000aa"},
                "effectiveDateTime": "2024-05-01T07:30:00+02:00",
                "component": [
                    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                     "valueQuantity": {"value": 128, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
                    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                     "valueQuantity": {"value": 82, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
                ]}},
            {"fullUrl": "urn:uuid:8e1a6a5e-0000-4000-8000-0000000000aa",
             "resource": {"resourceType": "Patient", "id": "p1",
                "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": "0101701234"}],
                "gender": "female", "birthDate": "1970-01-01"}},
            {"fullUrl": "urn:uuid:8e1a6a5e-0000-4000-8000-000000000002",
             "resource": {"resourceType": "Observation", "id": "hr1", "status": "final",
                "code": {"coding": [{"system": "urn:iso:std:iso:11073:10101", "code": "147842"}]},
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2024-05-01T07:31:00+02:00",
                "valueQuantity": {"value": 64, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}},
            {"fullUrl": "urn:uuid:8e1a6a5e-0000-4000-8000-000000000003",
             "resource": {"resourceType": "Observation", "id": "bad", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "not a time",
                "valueQuantity": {"value": 64, "code": "/min"}}},
            {"resource": {"resourceType": "Practitioner", "id": "dr"}}
        ]
    })
}

#[test]
fn references_resolve_and_bad_entries_are_reported() {
    let c = read_bundle(&sample().to_string(), &options()).expect("bundle");
    assert_eq!(c.bundle_type, "collection");
    assert_eq!(c.subjects.len(), 1);
    let cpr = Identifier::new(systems::CPR, "0101701234");
    assert_eq!(c.subjects[0].id, cpr);
    assert_eq!(c.measurements.len(), 2);
    assert!(
        c.measurements.iter().all(|m| m.subject == cpr),
        "both forms of reference resolve"
    );
    // The entry without an id is named by its fullUrl.
    assert_eq!(
        c.measurements[0].provenance.record_id,
        "urn:uuid:8e1a6a5e-0000-4000-8000-000000000001"
    );
    assert_eq!(c.errors.len(), 1);
    assert_eq!(c.errors[0].index, 3);
    assert_eq!(
        c.errors[0].error.path(),
        "entry[3].resource.Observation.effectiveDateTime"
    );
    assert_eq!(c.skipped, vec![(4, "Practitioner".to_string())]);
}

#[test]
fn a_transaction_we_write_reads_back_and_is_conditional() {
    let catalog = Catalog::builtin();
    let c = read_bundle(&sample().to_string(), &options()).expect("bundle");
    let tx = write_bundle(
        BundleKind::Transaction,
        &c.subjects,
        &c.measurements,
        &WriteOptions::new(catalog),
    )
    .expect("write");
    assert_eq!(tx["type"], "transaction");
    let entries = tx["entry"].as_array().expect("entries");
    assert_eq!(entries.len(), 3);
    for e in entries {
        assert_eq!(e["request"]["method"], "POST");
        assert!(
            e["request"]["ifNoneExist"]
                .as_str()
                .is_some_and(|q| q.starts_with("identifier="))
        );
    }
    // Writing twice gives the same Bundle: the conditions make a resend create nothing.
    let again = write_bundle(
        BundleKind::Transaction,
        &c.subjects,
        &c.measurements,
        &WriteOptions::new(catalog),
    )
    .expect("write");
    assert_eq!(tx, again);
    let back = read_bundle(&tx.to_string(), &options()).expect("read back");
    assert!(back.errors.is_empty(), "{:?}", back.errors);
    assert_eq!(back.measurements.len(), 2);
    for (a, b) in back.measurements.iter().zip(&c.measurements) {
        assert_eq!(a.subject, b.subject);
        assert_eq!(format!("{:?}", a.value), format!("{:?}", b.value));
        assert_eq!(a.effective, b.effective);
    }
}

#[test]
fn ndjson_round_trips_and_reports_lines() {
    let catalog = Catalog::builtin();
    let c = read_bundle(&sample().to_string(), &options()).expect("bundle");
    let text =
        write_ndjson(&c.subjects, &c.measurements, &WriteOptions::new(catalog)).expect("ndjson");
    assert_eq!(text.lines().count(), 3);
    let mut with_bad = text.clone();
    with_bad.push_str("{not json\n");
    let back = read_ndjson(&with_bad, &options()).expect("read");
    assert_eq!(back.subjects.len(), 1);
    assert_eq!(back.measurements.len(), 2);
    assert_eq!(back.errors.len(), 1);
    assert_eq!(back.errors[0].index, 4);
    let cpr = Identifier::new(systems::CPR, "0101701234");
    assert!(back.measurements.iter().all(|m| m.subject == cpr));
}

#[test]
fn a_searchset_counts_its_matches() {
    let catalog = Catalog::builtin();
    let c = read_bundle(&sample().to_string(), &options()).expect("bundle");
    let s = write_bundle(
        BundleKind::Searchset,
        &[],
        &c.measurements,
        &WriteOptions::new(catalog),
    )
    .expect("write");
    assert_eq!(s["total"], 2);
    assert_eq!(s["entry"][0]["search"]["mode"], "match");
}

#[test]
fn not_a_bundle_is_an_error() {
    for bad in [
        "",
        "{}",
        "[]",
        "{\"resourceType\": \"Patient\"}",
        "{\"resourceType\":\"Bundle\",\"entry\":{}}",
    ] {
        read_bundle(bad, &options()).expect_err(bad);
    }
}

#[test]
fn every_hl7_example_bundle_reads_without_losing_an_observation() {
    let Some(dir) =
        common::hl7_examples("every_hl7_example_bundle_reads_without_losing_an_observation")
    else {
        return;
    };
    let dir = dir.join("bundle");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("bundles")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    fn observation_entries(v: &serde_json::Value) -> usize {
        v["entry"].as_array().map_or(0, |entries| {
            entries
                .iter()
                .map(|e| match e["resource"]["resourceType"].as_str() {
                    Some("Observation") => 1,
                    Some("Bundle") => observation_entries(&e["resource"]),
                    _ => 0,
                })
                .sum()
        })
    }
    let (mut mapped, mut patients) = (0, 0);
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let c = read_bundle(&text, &options()).expect("every example is a Bundle");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let observations = observation_entries(&v);
        let reported = c
            .errors
            .iter()
            .filter(|e| e.error.path().contains("Observation"))
            .count();
        assert_eq!(
            c.measurements.len() + reported,
            observations,
            "{}: every Observation entry is mapped or reported, never dropped",
            path.display()
        );
        mapped += c.measurements.len();
        patients += c.subjects.len();
    }
    let _ = writeln!(
        std::io::stderr(),
        "HL7 example bundles: {mapped} measurements and {patients} patients mapped"
    );
    // The example Bundles hold laboratory results, not vital signs: they are reported as not
    // supported (the assertion above), and their Patients are read.
    assert!(patients > 0);
}
