//! The official HL7 R4 vital-sign examples (`../shared/fixtures/hl7-fhir-r4-examples`, found
//! through `HEALTHANALYZER_FIXTURES`): each reads into a measurement, writes back equal as JSON,
//! and, written fresh from the measurement alone, reads back into the same measurement.

mod common;

use std::path::Path;

use healthanalyzer_fhir::{ReadOptions, WriteOptions, read_observation, write_observation};
use healthanalyzer_model::{Catalog, Measurement};
use serde_json::Value;

/// Every Observation example in the vital-signs category, by file name.
fn vital_signs(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir.join("observation"))
        .expect("observation examples")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path).expect("read");
        if text.contains("\"vital-signs\"") {
            out.push((
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
                text,
            ));
        }
    }
    out
}

/// The examples the mapping reads, and why the others are refused.
const NOT_MAPPED: &[(&str, &str)] = &[
    // The vital-signs panel 85353-1 groups other Observations (hasMember) and has no value of
    // its own: its members are mapped one by one.
    ("Observation-vitals-panel.json", "Observation.code"),
];

#[test]
fn vital_sign_examples_round_trip_exactly() {
    let Some(dir) = common::hl7_examples("vital_sign_examples_round_trip_exactly") else {
        return;
    };
    let catalog = Catalog::builtin();
    let options = ReadOptions::new(catalog, "hl7-examples");
    let examples = vital_signs(&dir);
    assert!(
        examples.len() >= 14,
        "found only {} examples",
        examples.len()
    );
    let mut mapped = 0;
    let mut unexpected = Vec::new();
    for (name, text) in &examples {
        let m: Measurement = match read_observation(text, &options, None) {
            Ok(m) => m,
            Err(e) => {
                let expected = NOT_MAPPED.iter().find(|(n, _)| n == name);
                if !expected.is_some_and(|(_, why)| e.path().contains(why)) {
                    unexpected.push(format!("{name}: {e}"));
                }
                continue;
            }
        };
        mapped += 1;
        let back = write_observation(&m, &WriteOptions::new(catalog)).expect("write");
        let input: Value = serde_json::from_str(text).expect("json");
        assert_eq!(back, input, "{name}: written back differs from the input");

        // The measurement alone (no payload) makes a fresh Observation that reads back the same.
        let mut bare = m.clone();
        bare.provenance.payload = None;
        let fresh = write_observation(&bare, &WriteOptions::new(catalog)).expect("fresh");
        let again = read_observation(&fresh.to_string(), &options, None).expect("read fresh");
        assert_eq!(again.kind, m.kind, "{name}");
        assert_eq!(
            format!("{:?}", again.value),
            format!("{:?}", m.value),
            "{name}: value"
        );
        assert_eq!(again.subject, m.subject, "{name}");
        assert_eq!(
            format!("{:?}", again.effective),
            format!("{:?}", m.effective),
            "{name}"
        );
        assert_eq!(again.status, m.status, "{name}");
    }
    assert!(
        unexpected.is_empty(),
        "unexpected refusals:\n{}",
        unexpected.join("\n")
    );
    assert!(mapped >= 13, "mapped only {mapped} of {}", examples.len());
}

#[test]
fn pounds_and_inches_are_converted_and_kept() {
    let Some(dir) = common::hl7_examples("pounds_and_inches_are_converted_and_kept") else {
        return;
    };
    let catalog = Catalog::builtin();
    let options = ReadOptions::new(catalog, "hl7-examples");
    for (file, kind, canonical, original) in [
        (
            "Observation-example.json",
            "body-weight",
            "kg",
            "185 [lb_av]",
        ),
        (
            "Observation-body-height.json",
            "body-height",
            "cm",
            "[in_i]",
        ),
    ] {
        let text = std::fs::read_to_string(dir.join("observation").join(file)).expect("read");
        let m = read_observation(&text, &options, None).expect(file);
        assert_eq!(m.kind, kind);
        let healthanalyzer_model::Value::Quantity(o) = &m.value else {
            panic!("{file}: not a quantity");
        };
        assert_eq!(o.quantity.unit, canonical, "{file}");
        let recorded = o.original.as_ref().expect("the recorded quantity is kept");
        assert!(
            format!("{} {}", recorded.value, recorded.unit).ends_with(original),
            "{file}: {recorded:?}"
        );
    }
}

#[test]
fn a_correction_keeps_what_the_mapping_does_not_hold() {
    let Some(dir) = common::hl7_examples("a_correction_keeps_what_the_mapping_does_not_hold")
    else {
        return;
    };
    let catalog = Catalog::builtin();
    let options = ReadOptions::new(catalog, "hl7-examples");
    let text = std::fs::read_to_string(dir.join("observation/Observation-blood-pressure.json"))
        .expect("read");
    let original: Value = serde_json::from_str(&text).expect("json");
    let mut m = read_observation(&text, &options, None).expect("read");
    m.status = healthanalyzer_model::Status::Corrected;
    m.value = healthanalyzer_model::Value::blood_pressure(
        healthanalyzer_model::parse_decimal("109").expect("decimal"),
        healthanalyzer_model::parse_decimal("61").expect("decimal"),
    );
    let out = write_observation(&m, &WriteOptions::new(catalog)).expect("write");
    assert_eq!(out["status"], "corrected");
    for kept in [
        "identifier",
        "basedOn",
        "performer",
        "interpretation",
        "bodySite",
        "text",
        "id",
        "meta",
        "code",
    ] {
        assert_eq!(
            out[kept], original[kept],
            "{kept} must survive a correction"
        );
    }
    let again = read_observation(&out.to_string(), &options, None).expect("re-read");
    assert_eq!(format!("{:?}", again.value), format!("{:?}", m.value));
    assert_eq!(again.status, m.status);
    assert_eq!(again.subject, m.subject);
}
