//! Observations coded the national way (made for this test from the structures of HL7
//! Denmark's dk-core, the FUT infrastructure and HL7 Norway's VkpObservation): each finds its
//! kind and its value in the canonical unit.
#![allow(clippy::unwrap_used)]

use healthanalyzer_fhir::{ReadOptions, read_observation};
use healthanalyzer_model::{Catalog, Value};
use serde_json::json;

fn read(system: &str, code: &str, value: f64, unit: &str) -> (String, String) {
    let o = json!({
        "resourceType": "Observation", "id": "n1", "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101010000"}},
        "effectiveDateTime": "2023-11-01T12:00:00+01:00",
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    });
    let m = read_observation(
        &o.to_string(),
        &ReadOptions::new(Catalog::builtin(), "national"),
        None,
    )
    .unwrap_or_else(|e| panic!("{system}|{code}: {e}"));
    let Value::Quantity(o) = &m.value else {
        panic!("{system}|{code}: not a quantity")
    };
    // The quantity in the kind's canonical unit (the original is kept beside it).
    let q = &o.quantity;
    (
        m.kind.to_string(),
        format!("{} {}", q.value.normalize(), q.unit),
    )
}

#[test]
fn national_codes_find_their_kind_and_convert() {
    let cases = [
        // dk-core's oxygen saturation example: NPU under its URI, a fraction in UCUM `1`.
        (
            "http://npu-terminology.org",
            "NPU27280",
            0.97,
            "1",
            "oxygen-saturation",
            "97 %",
        ),
        (
            "http://npu-terminology.org",
            "NPU27280",
            0.97,
            "{fraction}",
            "oxygen-saturation",
            "97 %",
        ),
        // The FUT infrastructure's NPU under the Danish OID.
        (
            "urn:oid:1.2.208.176.2.1",
            "NPU03011",
            0.95,
            "1",
            "oxygen-saturation",
            "95 %",
        ),
        (
            "urn:oid:1.2.208.176.2.1",
            "NPU03804",
            72.4,
            "kg",
            "body-weight",
            "72.4 kg",
        ),
        (
            "urn:oid:1.2.208.176.2.1",
            "NPU03794",
            1.78,
            "m",
            "body-height",
            "178 cm",
        ),
        (
            "urn:oid:1.2.208.176.2.1",
            "NPU21692",
            64.0,
            "/min",
            "heart-rate",
            "64 /min",
        ),
        (
            "urn:oid:1.2.208.184.100.8",
            "MCS88122",
            16.0,
            "/min",
            "respiratory-rate",
            "16 /min",
        ),
        // HL7 Norway's VkpObservation: NLK for glucose in mmol/L.
        (
            "urn:oid:2.16.578.1.12.4.1.1.7280",
            "NPU02187",
            5.5,
            "mmol/L",
            "blood-glucose",
            "99.1 mg/dL",
        ),
        (
            "http://snomed.info/sct",
            "434912009",
            5.5,
            "mmol/L",
            "blood-glucose",
            "99.1 mg/dL",
        ),
    ];
    for (system, code, value, unit, kind, canonical) in cases {
        assert_eq!(
            read(system, code, value, unit),
            (kind.to_string(), canonical.to_string()),
            "{system}|{code}"
        );
    }
}

/// Danish home readings send systolic and diastolic as two Observations (DNK05472/DNK05473).
#[test]
fn a_lone_component_reading_is_read_written_fresh_and_read_back_as_itself() {
    use healthanalyzer_fhir::{WriteOptions, write_observation, write_observation_text};
    let catalog = Catalog::builtin();
    for (code, component, value) in [("DNK05472", "systolic", 138), ("DNK05473", "diastolic", 86)] {
        let o = json!({
            "resourceType": "Observation", "id": format!("dk-{code}"), "status": "final",
            "code": {"coding": [{"system": "urn:oid:1.2.208.176.2.1", "code": code}]},
            "subject": {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101010000"}},
            "effectiveDateTime": "2026-11-15T07:30:00+01:00",
            "valueQuantity": {"value": value, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}
        });
        let read = ReadOptions::new(catalog, "dk-home");
        let m = read_observation(&o.to_string(), &read, None).unwrap();
        assert_eq!(m.kind, "blood-pressure");
        assert!(m.value.is_lone_component(), "{:?}", m.value);
        let m = healthanalyzer_model::Validator::new(catalog)
            .normalize(m)
            .expect("a lone component reading is valid");
        assert_eq!(
            m.value.component(component).map(|q| q.value.to_string()),
            Some(value.to_string())
        );
        // With the payload kept, what is written is what came.
        let text = write_observation_text(&m, &WriteOptions::new(catalog)).unwrap();
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, o, "{code}: kept payload");
        // Written fresh, it is one Observation coded with the component's codes.
        let mut fresh = m.clone();
        fresh.provenance.payload = None;
        let w = write_observation(&fresh, &WriteOptions::new(catalog)).unwrap();
        assert!(w.get("component").is_none(), "{w}");
        let codes: Vec<&str> = w["code"]["coding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&code), "{codes:?}");
        assert!(!codes.contains(&"85354-9"), "{codes:?}");
        assert_eq!(w["valueQuantity"]["value"], json!(value));
        assert_eq!(
            w["meta"]["profile"],
            json!(["http://hl7.org/fhir/StructureDefinition/vitalsigns"])
        );
        assert_eq!(
            write_observation_text(&fresh, &WriteOptions::new(catalog)).unwrap(),
            w.to_string()
        );
        let again = read_observation(&w.to_string(), &read, Some("again")).unwrap();
        assert_eq!(again.value, fresh.value, "{code}");
    }
}

/// A code that names its unit is written only beside a value in that unit: NPU03011 is a
/// fraction, so SpO2 written in % does not carry it, and SpO2 written as a fraction does.
#[test]
fn an_npu_code_is_written_only_with_its_own_unit() {
    use healthanalyzer_fhir::{WriteOptions, write_observation, write_observation_text};
    let catalog = Catalog::builtin();
    let codes_of = |value: f64, unit: &str| {
        let o = json!({
            "resourceType": "Observation", "id": "s1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2708-6"}]},
            "subject": {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101010000"}},
            "effectiveDateTime": "2023-11-01T12:00:00+01:00",
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
        });
        let mut m =
            read_observation(&o.to_string(), &ReadOptions::new(catalog, "units"), None).unwrap();
        m.provenance.payload = None;
        let w = write_observation(&m, &WriteOptions::new(catalog)).unwrap();
        assert_eq!(
            write_observation_text(&m, &WriteOptions::new(catalog)).unwrap(),
            w.to_string()
        );
        w["code"]["coding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let percent = codes_of(97.0, "%");
    assert!(percent.contains(&"2708-6".to_string()), "{percent:?}");
    assert!(!percent.contains(&"NPU03011".to_string()), "{percent:?}");
    let fraction = codes_of(0.97, "1");
    assert!(fraction.contains(&"NPU03011".to_string()), "{fraction:?}");
}
