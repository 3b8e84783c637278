//! Validation and normalisation rules, one test per rule.

#![allow(clippy::unwrap_used)] // In tests a panic is a failure with a message.

use healthanalyzer_model::{
    AbsentReason, Catalog, Component, ComponentId, ComponentValue, DateTime, Effective, Error,
    Identifier, Measurement, MeasurementId, Provenance, Quantity, Validator, Value, jiff,
    parse_decimal,
};

fn now() -> jiff::Timestamp {
    "2024-06-01T12:00:00Z".parse().unwrap()
}

fn validator() -> Validator<'static> {
    Validator::new(Catalog::builtin()).at(now())
}

fn d(s: &str) -> healthanalyzer_model::Decimal {
    parse_decimal(s).unwrap()
}

fn m(kind: &str, value: Value) -> Measurement {
    Measurement::new(
        Provenance::new("test", "r1"),
        Identifier::cpr("0101901234"),
        kind,
        value,
        DateTime::parse("2024-06-01T08:00:00+02:00").unwrap(),
    )
}

/// A component with a quantity.
fn component(id: &str, value: &str, unit: &str) -> Component {
    Component {
        id: ComponentId::new(id),
        value: ComponentValue::Quantity(Quantity::new(d(value), unit).into()),
    }
}

/// The issues as (field, reason fragment) for compact assertions.
fn issues(result: Result<(), Error>) -> Vec<(String, String)> {
    match result {
        Ok(()) => vec![],
        Err(Error::Invalid(e)) => e
            .issues
            .into_iter()
            .map(|i| (i.field, format!("{} {:?}", i.reason, i.value)))
            .collect(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn assert_has(found: &[(String, String)], field: &str, fragment: &str) {
    assert!(
        found
            .iter()
            .any(|(f, r)| f == field && r.contains(fragment)),
        "expected {field}: …{fragment}… in {found:?}"
    );
}

fn assert_issue(result: Result<(), Error>, field: &str, fragment: &str) {
    assert_has(&issues(result), field, fragment);
}

#[test]
fn a_good_measurement_of_every_kind_passes() {
    let cases = [
        ("blood-pressure", Value::blood_pressure(d("120"), d("80"))),
        ("mean-blood-pressure", Value::quantity(d("93"), "mm[Hg]")),
        ("heart-rate", Value::quantity(d("72"), "/min")),
        ("body-weight", Value::quantity(d("72.5"), "kg")),
        ("body-height", Value::quantity(d("180"), "cm")),
        ("head-circumference", Value::quantity(d("51.2"), "cm")),
        ("bmi", Value::quantity(d("22.4"), "kg/m2")),
        ("body-temperature", Value::quantity(d("36.8"), "Cel")),
        ("respiratory-rate", Value::quantity(d("16"), "/min")),
        ("oxygen-saturation", Value::quantity(d("97"), "%")),
        ("blood-glucose", Value::quantity(d("5.6"), "mmol/L")),
        ("capillary-glucose", Value::quantity(d("101"), "mg/dL")),
        ("steps", Value::quantity(d("8042"), "{steps}")),
    ];
    assert_eq!(cases.len(), Catalog::builtin().kinds().len());
    for (kind, value) in cases {
        let meas = m(kind, value);
        assert_eq!(issues(validator().validate(&meas)), vec![], "{kind}");
    }
}

#[test]
fn unknown_unit_for_the_kind() {
    let r = validator().validate(&m("heart-rate", Value::quantity(d("72"), "kg")));
    assert_issue(r, "value.unit", "accepted units: /min");
}

#[test]
fn value_outside_the_plausible_range() {
    let r = validator().validate(&m("body-temperature", Value::quantity(d("57"), "Cel")));
    assert_issue(r, "value", "outside the plausible range 25 to 45 Cel");
    // The range applies after conversion: 110 °F is 43.3 °C, plausible.
    let ok = validator().validate(&m("body-temperature", Value::quantity(d("110"), "[degF]")));
    assert_eq!(issues(ok), vec![]);
}

#[test]
fn the_implausible_312_over_315_reading_is_rejected_on_every_count() {
    // This row is in a real export of an open-source blood-pressure app.
    let r = validator().validate(&m(
        "blood-pressure",
        Value::blood_pressure(d("312"), d("315")),
    ));
    let found = issues(r);
    assert_has(&found, "value.systolic", "plausible range 40 to 300");
    assert_has(&found, "value.diastolic", "plausible range 20 to 200");
    assert_has(&found, "value.systolic", "greater than diastolic");
}

#[test]
fn systolic_not_above_diastolic() {
    let r = validator().validate(&m(
        "blood-pressure",
        Value::blood_pressure(d("80"), d("80")),
    ));
    assert_issue(r, "value.systolic", "must be greater than diastolic");
    // Compared in the canonical unit: 16 kPa (120 mm[Hg]) over 80 mm[Hg] is fine.
    let mixed = Value::Components(vec![
        component("systolic", "16.0", "kPa"),
        component("diastolic", "80", "mm[Hg]"),
    ]);
    assert_eq!(
        issues(validator().validate(&m("blood-pressure", mixed))),
        vec![]
    );
}

#[test]
fn missing_unknown_and_repeated_components() {
    // One component alone is a lone component reading (ADR 0009): valid, and checked as a
    // component.
    let only_systolic = Value::Components(vec![component("systolic", "120", "mm[Hg]")]);
    assert_eq!(
        issues(validator().validate(&m("blood-pressure", only_systolic))),
        vec![]
    );
    let implausible = Value::Components(vec![component("diastolic", "900", "mm[Hg]")]);
    assert_issue(
        validator().validate(&m("blood-pressure", implausible)),
        "value.diastolic",
        "plausible range",
    );
    // Two or more components are a panel reading: every required one must be there.
    let no_diastolic = Value::Components(vec![
        component("systolic", "120", "mm[Hg]"),
        Component {
            id: ComponentId::new("pulse"),
            value: ComponentValue::Absent(AbsentReason::Unknown),
        },
    ]);
    assert_issue(
        validator().validate(&m("blood-pressure", no_diastolic)),
        "value.diastolic",
        "is missing",
    );
    // A data-absent reason counts as present (the HL7 blood-pressure-dar example).
    let dar = Value::Components(vec![
        component("systolic", "109", "mm[Hg]"),
        Component {
            id: ComponentId::new("diastolic"),
            value: ComponentValue::Absent(AbsentReason::NotPerformed),
        },
    ]);
    assert_eq!(
        issues(validator().validate(&m("blood-pressure", dar))),
        vec![]
    );
    let mut odd = Value::blood_pressure(d("120"), d("80"));
    if let Value::Components(cs) = &mut odd {
        cs.push(cs[0].clone());
        cs.push(Component {
            id: ComponentId::new("pulse"),
            value: ComponentValue::Absent(AbsentReason::Unknown),
        });
    }
    let found = issues(validator().validate(&m("blood-pressure", odd)));
    assert_has(&found, "value.systolic", "more than once");
    assert_has(&found, "value.pulse", "not a component");
}

#[test]
fn panel_and_single_value_are_not_interchangeable() {
    assert_issue(
        validator().validate(&m("blood-pressure", Value::quantity(d("120"), "mm[Hg]"))),
        "value",
        "is a panel: give its components (systolic, diastolic)",
    );
    assert_issue(
        validator().validate(&m("heart-rate", Value::blood_pressure(d("120"), d("80")))),
        "value",
        "takes a single quantity",
    );
}

#[test]
fn time_in_the_future_beyond_the_tolerance() {
    let mut meas = m("heart-rate", Value::quantity(d("72"), "/min"));
    // 5 minutes ahead (a device clock running fast) is tolerated.
    meas.effective = Effective::At(DateTime::parse("2024-06-01T14:05:00+02:00").unwrap());
    assert_eq!(issues(validator().validate(&meas)), vec![]);
    meas.effective = Effective::At(DateTime::parse("2024-06-01T14:30:00+02:00").unwrap());
    assert_issue(
        validator().validate(&meas),
        "effective",
        "lies in the future (more than 10 min",
    );
    meas.effective = Effective::At(DateTime::parse("2024-06-01T08:00:00+02:00").unwrap());
    meas.issued = Some(DateTime::parse("2025-01-01T00:00:00Z").unwrap());
    assert_issue(validator().validate(&meas), "issued", "in the future");
}

#[test]
fn a_period_must_not_end_before_it_starts() {
    let mut meas = m("steps", Value::quantity(d("8000"), "{steps}"));
    meas.effective = Effective::Period {
        start: DateTime::parse("2024-05-31T00:00:00+02:00").unwrap(),
        end: Some(DateTime::parse("2024-05-30T00:00:00+02:00").unwrap()),
    };
    assert_issue(
        validator().validate(&meas),
        "effective.end",
        "before the start",
    );
}

#[test]
fn bad_identifier_is_reported_without_its_value() {
    let mut meas = m("heart-rate", Value::quantity(d("72"), "/min"));
    meas.subject = Identifier::bsn("123456789");
    let err = validator()
        .identifiers(healthanalyzer_model::IdentifierPolicy::Refuse)
        .validate(&meas)
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("subject: the BSN fails the 11-test"), "{msg}");
    assert!(
        !msg.contains("123456789"),
        "the identifier must not appear: {msg}"
    );
}

#[test]
fn unknown_kind_and_mismatched_id() {
    let mut meas = m("blood-alcohol", Value::quantity(d("0.5"), "g/L"));
    meas.id = MeasurementId::from_source("other", "r1");
    let found = issues(validator().validate(&meas));
    assert!(found.iter().any(|(f, _)| f == "kind"), "{found:?}");
    assert_has(&found, "id", "provenance");
}

#[test]
fn all_issues_are_reported_at_once() {
    let mut meas = m("blood-pressure", Value::blood_pressure(d("312"), d("315")));
    meas.subject = Identifier::cpr("x");
    meas.effective = Effective::At(DateTime::parse("2030-01-01T00:00:00Z").unwrap());
    let refusing = validator().identifiers(healthanalyzer_model::IdentifierPolicy::Refuse);
    assert!(issues(refusing.validate(&meas)).len() >= 5);
}

#[test]
fn normalize_converts_and_keeps_the_original() {
    let meas = m("body-temperature", Value::quantity(d("98.7"), "°F"));
    let n = validator().normalize(meas).unwrap();
    let Value::Quantity(o) = &n.value else {
        panic!()
    };
    assert_eq!(o.quantity.to_string(), "37.056 Cel");
    assert_eq!(o.original.as_ref().unwrap().to_string(), "98.7 °F");
    // Normalising again changes nothing.
    assert_eq!(validator().normalize(n.clone()).unwrap(), n);

    let bp = m(
        "blood-pressure",
        Value::blood_pressure(d("16.0"), d("10.7")),
    );
    let Value::Components(mut cs) = bp.value.clone() else {
        panic!()
    };
    for c in &mut cs {
        if let ComponentValue::Quantity(o) = &mut c.value {
            o.quantity.unit = "kPa".into();
        }
    }
    let n = validator()
        .normalize(Measurement {
            value: Value::Components(cs),
            ..bp
        })
        .unwrap();
    assert_eq!(
        n.value.component("systolic").unwrap().to_string(),
        "120.01 mm[Hg]"
    );
    assert_eq!(
        n.value.component("diastolic").unwrap().to_string(),
        "80.26 mm[Hg]"
    );
}

#[test]
fn normalize_refuses_invalid_input() {
    let meas = m("heart-rate", Value::quantity(d("400"), "/min"));
    assert!(matches!(
        validator().normalize(meas),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn identifiers_that_fail_national_rules_are_marked_by_default_and_refused_on_request() {
    use healthanalyzer_model::{IdentifierPolicy, systems};
    let with = |id: Identifier| {
        let mut x = m("heart-rate", Value::quantity(d("64"), "/min"));
        x.subject = id;
        x
    };
    // A 7-digit number under the FNR system, as published IG examples carry; a BSN that
    // fails the 11-test; a CPR with no valid date.
    for id in [
        Identifier::new(systems::FNR, "1234567"),
        Identifier::new(systems::BSN, "123456789"),
        Identifier::new(systems::CPR, "9999999999"),
    ] {
        let reason = id.national_issue().expect("fails its rules");
        assert_eq!(
            issues(validator().validate(&with(id.clone()))),
            vec![],
            "{reason}"
        );
        let refused = validator()
            .identifiers(IdentifierPolicy::Refuse)
            .validate(&with(id.clone()));
        assert_issue(refused, "subject", reason);
    }
    // A valid number has no issue; an empty value is refused whatever the policy.
    assert_eq!(Identifier::cpr("0101901234").national_issue(), None);
    assert_eq!(Identifier::new("urn:other", "x").national_issue(), None);
    assert_issue(
        validator().validate(&with(Identifier::new(systems::FNR, " "))),
        "subject",
        "empty",
    );
    assert_eq!(
        "refuse".parse::<IdentifierPolicy>().unwrap(),
        IdentifierPolicy::Refuse
    );
    assert!("lenient".parse::<IdentifierPolicy>().is_err());
}
