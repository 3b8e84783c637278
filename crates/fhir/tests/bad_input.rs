//! Bad input gives an error naming the element, never a panic; the error converts to an
//! OperationOutcome.

use healthanalyzer_fhir::{Error, ReadOptions, read_observation};
use healthanalyzer_model::Catalog;
use proptest::prelude::*;
use serde_json::{Value, json};

fn options() -> ReadOptions<'static> {
    ReadOptions::new(Catalog::builtin(), "test")
}

fn weight() -> Value {
    json!({
        "resourceType": "Observation", "id": "w1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-31T08:15:00+02:00",
        "valueQuantity": {"value": 72.40, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    })
}

fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut v = weight();
    if let Value::Object(o) = &mut v {
        change(o);
    }
    v.to_string()
}

fn err(json: &str) -> Error {
    read_observation(json, &options(), None).expect_err("must be refused")
}

#[test]
fn the_base_case_reads() {
    let m = read_observation(&weight().to_string(), &options(), None).expect("read");
    assert_eq!(m.kind, "body-weight");
}

#[test]
fn each_fault_names_its_element() {
    let cases: Vec<(String, &str, &str)> = vec![
        ("not json".into(), "Observation", "structure"),
        ("[]".into(), "Observation", "structure"),
        (
            with(|o| {
                o.insert("resourceType".into(), "Patient".into());
            }),
            "resourceType",
            "value",
        ),
        (
            with(|o| {
                o.remove("status");
            }),
            "Observation.status",
            "required",
        ),
        (
            with(|o| {
                o.insert("status".into(), "bogus".into());
            }),
            "Observation.status",
            "value",
        ),
        (
            with(|o| {
                o.remove("code");
            }),
            "Observation.code",
            "required",
        ),
        (
            with(|o| {
                o.insert(
                    "code".into(),
                    json!({"coding": [{"system": "http://loinc.org", "code": "0000-0"}]}),
                );
            }),
            "Observation.code",
            "not-supported",
        ),
        (
            with(|o| {
                o.remove("subject");
            }),
            "Observation.subject",
            "required",
        ),
        (
            with(|o| {
                o.insert("subject".into(), json!({}));
            }),
            "Observation.subject",
            "value",
        ),
        (
            with(|o| {
                o.insert("effectiveDateTime".into(), "yesterday".into());
            }),
            "Observation.effectiveDateTime",
            "value",
        ),
        (
            with(|o| {
                o.remove("effectiveDateTime");
            }),
            "Observation.effective[x]",
            "required",
        ),
        (
            with(|o| {
                o.insert("effectivePeriod".into(), json!({"start": "2024-01-01"}));
            }),
            "Observation.effective[x]",
            "value",
        ),
        (
            with(|o| {
                o.insert("valueString".into(), "heavy".into());
            }),
            "Observation.valueString",
            "not-supported",
        ),
        (
            with(|o| {
                o.insert("dataAbsentReason".into(), json!({"text": "x"}));
            }),
            "Observation.dataAbsentReason",
            "value",
        ),
        (
            with(|o| {
                o.remove("valueQuantity");
            }),
            "Observation.value[x]",
            "required",
        ),
        (
            with(|o| {
                o.insert("valueQuantity".into(), json!({"value": "72", "code": "kg"}));
            }),
            "Observation",
            "structure",
        ),
        (
            weight().to_string().replace("72.4", "1e400"),
            "Observation.valueQuantity.value",
            "value",
        ),
        (
            with(|o| {
                o.insert("valueQuantity".into(), json!({"code": "kg"}));
            }),
            "Observation.valueQuantity.value",
            "required",
        ),
        (
            with(|o| {
                o.insert(
                    "valueQuantity".into(),
                    json!({"value": 1, "comparator": "<", "code": "kg"}),
                );
            }),
            "Observation.valueQuantity.comparator",
            "not-supported",
        ),
        (
            with(|o| {
                o.insert(
                    "valueQuantity".into(),
                    json!({"value": 1, "system": "http://example.org/units", "code": "kg"}),
                );
            }),
            "Observation.valueQuantity.system",
            "not-supported",
        ),
        (
            with(|o| {
                o.insert("valueQuantity".into(), Value::Null);
                o.remove("valueQuantity");
                o.insert("status".into(), Value::Null);
            }),
            "Observation.status",
            "required",
        ),
        (
            with(|o| {
                o.remove("id");
            }),
            "Observation.id",
            "required",
        ),
    ];
    for (json, path, code) in cases {
        let e = err(&json);
        assert!(
            e.path().starts_with(path),
            "{json}\n  -> {e} (expected path {path})"
        );
        assert_eq!(e.issue_code(), code, "{json}\n  -> {e}");
        let oo = e.to_operation_outcome();
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert_eq!(oo["issue"][0]["code"], code);
        assert_eq!(oo["issue"][0]["expression"][0], e.path());
    }
}

#[test]
fn errors_do_not_repeat_identifiers() {
    let json = with(|o| {
        o.insert(
            "subject".into(),
            json!({"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101701234"}}),
        );
        o.insert("effectiveDateTime".into(), "garbage".into());
    });
    let e = err(&json);
    assert!(!e.to_string().contains("0101701234"), "{e}");
}

#[test]
fn deep_nesting_and_huge_input_are_errors() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(err(&deep).issue_code(), "structure");
    let huge = format!(
        "{{\"resourceType\":\"Observation\",\"note\":\"{}\"}}",
        "x".repeat(5 * 1024 * 1024)
    );
    assert_eq!(err(&huge).issue_code(), "too-long");
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = read_observation(&s, &options(), None);
    }

    #[test]
    fn mangled_observations_never_panic(cut in 0usize..400, byte in any::<u8>()) {
        let mut bytes = weight().to_string().into_bytes();
        if cut < bytes.len() {
            bytes[cut] = byte;
        }
        let s = String::from_utf8_lossy(&bytes);
        let _ = read_observation(&s, &options(), None);
    }
}

#[test]
fn an_array_where_one_object_belongs_is_refused() {
    // fhirbolt's Strict mode lets this through (tests/strict.rs); the fast path does not.
    let json = with(|o| {
        o.insert("subject".into(), json!([{"reference": "Patient/p1"}]));
    });
    assert_eq!(err(&json).issue_code(), "structure");
}

/// Arbitrary JSON, with FHIR's own element names among the keys so the parsers go deep.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "resourceType",
        "status",
        "code",
        "coding",
        "system",
        "subject",
        "reference",
        "identifier",
        "value",
        "valueQuantity",
        "component",
        "effectiveDateTime",
        "effectivePeriod",
        "start",
        "dataAbsentReason",
        "entry",
        "resource",
        "fullUrl",
        "birthDate",
        "gender",
        "name",
        "given",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![
            "Observation",
            "Patient",
            "Bundle",
            "final",
            "http://loinc.org",
            "85354-9",
            "8480-6",
            "2024-01-01",
            "Patient/1",
            "mm[Hg]",
            "",
        ])
        .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_json_never_panics(v in arbitrary_json(), kind in 0usize..3) {
        let mut v = v;
        if let Value::Object(o) = &mut v {
            o.insert(
                "resourceType".into(),
                ["Observation", "Patient", "Bundle"][kind].into(),
            );
        }
        let text = v.to_string();
        let _ = read_observation(&text, &options(), Some("r"));
        let _ = healthanalyzer_fhir::read_patient(&text);
        let _ = healthanalyzer_fhir::read_bundle(&text, &options());
        let _ = healthanalyzer_fhir::read_ndjson(&text, &options());
    }
}
