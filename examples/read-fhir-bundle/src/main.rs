//! A FHIR R4 Bundle into measurements and patients:
//!
//! ```text
//! cargo run -p example-read-fhir-bundle -- bundle.json
//! cargo run -p example-read-fhir-bundle            # a small built-in Bundle
//! ```
//!
//! Prints one line per measurement (kind, subject, time, value in the catalog's canonical
//! unit) and one per entry it could not use, with the reason.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use healthanalyzer_fhir::{ReadOptions, read_bundle};
use healthanalyzer_model::{Catalog, ComponentValue, Validator, Value};

const SAMPLE: &str = r#"{
  "resourceType": "Bundle", "type": "collection",
  "entry": [
    {"fullUrl": "urn:uuid:8f3c1a64-0d1e-4a47-9f3a-5c1c0a4f1b01",
     "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:example:mrn", "value": "12345"}],
                  "name": [{"family": "Jensen", "given": ["Anna"]}]}},
    {"resource": {"resourceType": "Observation", "id": "bw-1", "status": "final",
                  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                  "subject": {"reference": "urn:uuid:8f3c1a64-0d1e-4a47-9f3a-5c1c0a4f1b01"},
                  "effectiveDateTime": "2024-03-01T07:30:00+01:00",
                  "valueQuantity": {"value": 185, "unit": "lb", "system": "http://unitsofmeasure.org", "code": "[lb_av]"}}},
    {"resource": {"resourceType": "Observation", "id": "bp-1", "status": "final",
                  "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
                  "subject": {"reference": "urn:uuid:8f3c1a64-0d1e-4a47-9f3a-5c1c0a4f1b01"},
                  "effectiveDateTime": "2024-03-01T07:35:00+01:00",
                  "component": [
                    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                     "valueQuantity": {"value": 142, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
                    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                     "valueQuantity": {"value": 88, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]}},
    {"resource": {"resourceType": "Observation", "id": "x", "status": "final",
                  "code": {"coding": [{"system": "http://loinc.org", "code": "0000-0"}]}}}
  ]
}"#;

fn main() -> ExitCode {
    let text = match std::env::args().nth(1) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {path}: {e}");
                return ExitCode::from(2);
            }
        },
        None => SAMPLE.to_string(),
    };
    let catalog = Catalog::builtin();
    let options = ReadOptions::new(catalog, "example-bundle");
    let contents = match read_bundle(&text, &options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: not a FHIR Bundle I can read: {e}");
            return ExitCode::FAILURE;
        }
    };
    for s in &contents.subjects {
        let name = s
            .name
            .as_ref()
            .and_then(|n| n.family.clone())
            .unwrap_or_default();
        println!(
            "patient {}|{} {name}",
            s.id.system.as_deref().unwrap_or(""),
            s.id.value
        );
    }
    // Normalise: every quantity in its kind's canonical unit, the recorded one kept.
    let validator = Validator::new(catalog);
    for m in contents.measurements {
        let m = match validator.normalize(m) {
            Ok(m) => m,
            Err(e) => {
                println!("rejected: {e}");
                continue;
            }
        };
        let value = match &m.value {
            Value::Quantity(o) => format!("{} {}", o.quantity.value, o.quantity.unit),
            Value::Components(cs) => cs
                .iter()
                .map(|c| match &c.value {
                    ComponentValue::Quantity(o) => {
                        format!("{}={} {}", c.id, o.quantity.value, o.quantity.unit)
                    }
                    ComponentValue::Absent(r) => format!("{}=absent ({r:?})", c.id),
                })
                .collect::<Vec<_>>()
                .join(" "),
            Value::Absent(r) => format!("absent ({r:?})"),
        };
        println!(
            "{} {} {} {value}",
            m.kind,
            m.subject.value,
            m.effective.start()
        );
    }
    for e in &contents.errors {
        println!("entry {} not used: {}", e.index, e.error);
    }
    ExitCode::SUCCESS
}
