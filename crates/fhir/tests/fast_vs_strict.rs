//! The fast path is held to fhirbolt's full R4 model: for every Observation the fast path
//! accepts, the strict path (fhirbolt, Strict mode) accepts it too and gives the same
//! measurement. Inputs are valid R4 Observations of every kind, varied where the mapping reads.

mod common;

use healthanalyzer_fhir::{
    Profile, ReadOptions, WriteOptions, read_observation, read_observation_strict,
    write_observation,
};
use healthanalyzer_model::jiff::{Timestamp, tz};
use healthanalyzer_model::{
    Catalog, DateTime, Decimal, Identifier, Measurement, Provenance, Value,
};
use proptest::prelude::*;
use serde_json::{Value as Json, json};

fn options() -> ReadOptions<'static> {
    // The fast path on its own, to compare with the strict one.
    ReadOptions::new(Catalog::builtin(), "s")
        .with_validation(healthanalyzer_fhir::Validation::Lenient)
}

/// Both paths on one input: when the fast path accepts it, the strict path must agree.
fn agree(json: &str) -> Result<(), TestCaseError> {
    let fast = read_observation(json, &options(), Some("r"));
    let strict = read_observation_strict(json, &options(), Some("r"));
    if let Ok(fast) = fast {
        match strict {
            Ok(strict) => prop_assert_eq!(fast, strict, "{}", json),
            Err(e) => prop_assert!(false, "fast path accepted, fhirbolt refused ({e}): {json}"),
        }
    }
    Ok(())
}

#[test]
fn every_hl7_vital_sign_example_reads_the_same_both_ways() {
    let Some(dir) = common::hl7_examples("every_hl7_vital_sign_example_reads_the_same_both_ways")
    else {
        return;
    };
    let mut compared = 0;
    for entry in std::fs::read_dir(dir.join("observation")).expect("fixtures") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        if !text.contains("\"vital-signs\"") {
            continue;
        }
        if read_observation(&text, &options(), None).is_ok() {
            agree(&text).map_err(|e| e.to_string()).expect("agree");
            compared += 1;
        }
    }
    // The 15 vital-sign examples the mapping reads (the vitals panel has no value of its own).
    assert_eq!(compared, 15);
}

/// A valid R4 Observation of any kind, from the writer, under any profile.
fn observation() -> impl Strategy<Value = Json> {
    let kinds = prop::sample::select(vec![
        ("heart-rate", "/min"),
        ("body-weight", "kg"),
        ("body-height", "cm"),
        ("body-temperature", "Cel"),
        ("oxygen-saturation", "%"),
        ("blood-glucose", "mg/dL"),
        ("steps", "{steps}"),
        ("blood-pressure", "mm[Hg]"),
    ]);
    (
        kinds,
        (0i64..1_000_000, 0u32..4),
        0i64..4_000_000_000,
        -12i8..=14,
        prop::sample::select(Profile::ALL.to_vec()),
    )
        .prop_map(|((kind, unit), (mantissa, scale), secs, hours, profile)| {
            let v = Decimal::new(mantissa, scale);
            let value = if kind == "blood-pressure" {
                Value::blood_pressure(v, Decimal::new(mantissa / 2, scale))
            } else {
                Value::quantity(v, unit)
            };
            let t = DateTime::from_timestamp(
                Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH),
                tz::Offset::from_hours(hours).unwrap_or(tz::Offset::UTC),
            );
            let m = Measurement::new(
                Provenance::new("s", "r"),
                Identifier::new("urn:oid:1.2.208.176.1.2", "0101709995"),
                kind,
                value,
                t,
            );
            let options = WriteOptions::new(Catalog::builtin()).with_profile(profile);
            write_observation(&m, &options).unwrap_or(Json::Null)
        })
}

/// Changes where the mapping reads: numbers written in every way JSON allows, units, times,
/// statuses, references, absent values, and elements the mapping does not read.
fn variation() -> impl Strategy<Value = (usize, usize)> {
    (0usize..12, 0usize..16)
}

const NUMBERS: &[&str] = &[
    "72",
    "72.0",
    "72.50",
    "0",
    "-0",
    "0.000",
    "-1.5",
    "1e2",
    "1E-2",
    "2.5e+1",
    "123456789012345678",
    "0.000000000000000001",
    "1e400",
    "\"72\"",
    "true",
    "null",
    "{}",
    "[]",
];
const TIMES: &[&str] = &[
    "2024",
    "2024-05",
    "2024-05-01",
    "2024-05-01T07:31:00Z",
    "2024-05-01T07:31:00+02:00",
    "2024-05-01T07:31:00.123456789-03:30",
    "2024-05-01T07:31:00.5+14:00",
    "2024-05-01T07:31Z",
    "2024-02-30T07:31:00Z",
    "yesterday",
    "",
    "2024-05-01T24:00:00Z",
    "2024-05-01T07:31:60Z",
    "1900-01-01T00:00:00-00:00",
    "9999-12-31T23:59:59Z",
    "2024-05-01T07:31:00",
];

fn vary(mut o: Json, (what, pick): (usize, usize)) -> Json {
    let value_path = if o.get("component").is_some() {
        "/component/0/valueQuantity"
    } else {
        "/valueQuantity"
    };
    match what {
        0 => {
            if let Some(q) = o.pointer_mut(value_path) {
                q["value"] =
                    serde_json::from_str(NUMBERS[pick % NUMBERS.len()]).unwrap_or(Json::Null);
            }
        }
        1 => {
            let t = TIMES[pick % TIMES.len()];
            if o.get("effectivePeriod").is_some() {
                o["effectivePeriod"]["start"] = json!(t);
            } else {
                o["effectiveDateTime"] = json!(t);
            }
        }
        2 => {
            let units = [
                "[lb_av]", "g", "[degF]", "mmol/L", "1", "kPa", "[in_i]", "m", "bogus",
            ];
            if let Some(q) = o.pointer_mut(value_path) {
                q["code"] = json!(units[pick % units.len()]);
            }
        }
        3 => {
            let statuses = ["final", "amended", "corrected", "preliminary", "bogus", ""];
            o["status"] = json!(statuses[pick % statuses.len()]);
        }
        4 => {
            let refs = [
                json!({"reference": "Patient/p1"}),
                json!({"reference": "urn:uuid:0b3f0c5e-0000-4000-8000-000000000001"}),
                json!({"identifier": {"value": "x"}}),
                json!({"display": "someone"}),
                json!({"reference": ""}),
            ];
            o["subject"] = refs[pick % refs.len()].clone();
        }
        5 => {
            let reason = ["unknown", "error", "asked-declined", "bogus"][pick % 4];
            if let Some(map) = o.as_object_mut() {
                map.shift_remove("valueQuantity");
                map.shift_remove("component");
                map.insert(
                    "dataAbsentReason".into(),
                    json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": reason}]}),
                );
            }
        }
        6 => {
            // Elements the mapping does not read.
            o["interpretation"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N"}]}]);
            o["note"] = json!([{"text": "after exercise"}]);
            o["extension"] = json!([{"url": "http://example.org/x", "valueInteger": pick}]);
        }
        7 => {
            o["issued"] = json!(TIMES[pick % TIMES.len()]);
        }
        8 => {
            if let Some(q) = o.pointer_mut(value_path) {
                q["comparator"] = json!("<");
            }
        }
        9 => {
            o["valueString"] = json!("a second value[x]");
        }
        10 => {
            o["bodySite"] = json!({"coding": [{"system": "http://snomed.info/sct", "code": "368209003", "display": "Right arm"}]});
            let method = ["automatic", "manual"][pick % 2];
            o["method"] = json!({ "text": method });
        }
        _ => {
            if let Some(q) = o.pointer_mut(value_path).and_then(Json::as_object_mut) {
                q.shift_remove("system");
                if pick % 2 == 0 {
                    q.shift_remove("code");
                }
            }
        }
    }
    o
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_fast_path_agrees_with_fhirbolt(o in observation(), changes in prop::collection::vec(variation(), 0..3)) {
        let mut o = o;
        for c in changes {
            o = vary(o, c);
        }
        agree(&o.to_string())?;
    }
}
