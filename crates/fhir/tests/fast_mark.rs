//! The payload mark: a measurement read from FHIR is written back as its kept payload without
//! a re-read while it still says what the payload says, and anew when it does not.

use healthanalyzer_fhir::{
    ReadOptions, Validation, WriteOptions, read_ndjson, read_observation, write_observation,
    write_observation_text,
};
use healthanalyzer_model::{Catalog, Decimal, Identifier, Measurement, Observed, Value};
use proptest::prelude::*;

const WEIGHT: &str = r#"{"resourceType":"Observation","id":"w1","status":"final","note":[{"text":"kept"}],"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-03-31T08:15:00+02:00","valueQuantity":{"value":72.40,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}"#;

fn options() -> ReadOptions<'static> {
    ReadOptions::new(Catalog::builtin(), "clinic").with_validation(Validation::Lenient)
}

fn read(json: &str) -> Measurement {
    read_observation(json, &options(), None).expect("reads")
}

fn write(m: &Measurement) -> String {
    write_observation_text(m, &WriteOptions::new(Catalog::builtin())).expect("writes")
}

fn set_weight(m: &mut Measurement, d: Decimal) {
    m.value = Value::Quantity(Observed::from(healthanalyzer_model::Quantity::new(d, "kg")));
}

#[test]
fn unchanged_is_spliced_and_marked() {
    let m = read(WEIGHT);
    assert!(m.provenance.payload_mark.get().is_some());
    assert_eq!(write(&m), WEIGHT);
    // A clone keeps the mark and the payload.
    assert_eq!(write(&m.clone()), WEIGHT);
}

#[test]
fn a_changed_value_is_written_anew() {
    let mut m = read(WEIGHT);
    set_weight(&mut m, Decimal::new(7300, 2));
    let text = write(&m);
    assert!(text.contains("73.00"), "{text}");
    assert!(!text.contains("72.40"), "{text}");
    // What the original held beside the value stays.
    assert!(text.contains("\"kept\""), "{text}");
}

#[test]
fn the_same_number_at_another_scale_is_a_change() {
    let mut m = read(WEIGHT);
    // 72.4 == 72.40 as a Decimal, but it is not what the payload says.
    set_weight(&mut m, Decimal::new(724, 1));
    let text = write(&m);
    assert!(text.contains("\"value\":72.4,"), "{text}");
}

#[test]
fn a_changed_subject_is_written_anew() {
    let mut m = read(WEIGHT);
    m.subject = Identifier::local("someone-else");
    let text = write(&m);
    assert!(text.contains("someone-else"), "{text}");
    assert!(!text.contains("Patient/p1"), "{text}");
}

#[test]
fn a_payload_replaced_under_the_mark_is_read_again() {
    let mut m = read(WEIGHT);
    let other = WEIGHT.replace("72.40", "80.00");
    if let Some(p) = &mut m.provenance.payload {
        p.content = other.clone();
    }
    // The mark was made over the old text: the new one is read again, and it says 80.00
    // where the measurement says 72.40, so the value is written anew over it.
    let text = write(&m);
    assert!(text.contains("72.40"), "{text}");
    assert!(!text.contains("80.00"), "{text}");
}

#[test]
fn the_mark_is_neither_serialised_nor_compared_nor_printed() {
    let m = read(WEIGHT);
    let json = serde_json::to_string(&m).expect("serialises");
    assert!(!json.contains("mark"), "{json}");
    let back: Measurement = serde_json::from_str(&json).expect("deserialises");
    assert!(back.provenance.payload_mark.get().is_none());
    assert_eq!(back, m);
    assert!(!format!("{m:?}").contains("mark"));
    // Without the mark it is still spliced (after a re-read).
    assert_eq!(write(&back), WEIGHT);
}

#[test]
fn ndjson_without_ids_gets_them_from_the_mark() {
    let line = WEIGHT.replace(
        r#""id":"w1","#,
        r#""identifier":[{"system":"urn:x","value":"1"}],"#,
    );
    let c = read_ndjson(&line, &options()).expect("reads");
    assert_eq!(c.measurements.len(), 1, "{:?}", c.errors);
    let out = healthanalyzer_fhir::write_ndjson(
        &[],
        &c.measurements,
        &WriteOptions::new(Catalog::builtin()),
    )
    .expect("writes");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one line");
    assert_eq!(v["id"], c.measurements[0].id.to_string());
    assert_eq!(v["valueQuantity"]["value"].to_string(), "72.40");
}

proptest! {
    /// With or without the mark, the text written equals the `Value` writer's, and whatever the
    /// value is changed to, the written text reads back to it.
    #[test]
    fn marked_and_unmarked_write_the_same(mantissa in 0i64..1_000_000, scale in 0u32..4) {
        let mut m = read(WEIGHT);
        let d = Decimal::new(mantissa, scale);
        set_weight(&mut m, d);
        let text = write(&m);
        let value = write_observation(&m, &WriteOptions::new(Catalog::builtin())).expect("writes");
        prop_assert_eq!(serde_json::from_str::<serde_json::Value>(&text).expect("json"), value);
        let again = read(&text);
        prop_assert_eq!(format!("{:?}", again.value), format!("{:?}", m.value));
        let mut unmarked = m.clone();
        unmarked.provenance.payload_mark = Default::default();
        prop_assert_eq!(write(&unmarked), text);
    }
}
