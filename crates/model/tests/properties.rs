//! Property tests: conversion round trips, parsers that never panic, serde round trips, stable
//! ids, and validation that returns Ok or Err for any input.

#![allow(clippy::unwrap_used)] // In tests a panic is a failure with a message.

use healthanalyzer_model::{
    AbsentReason, BodySite, Catalog, Component, ComponentId, ComponentValue, Context, DateTime,
    Decimal, Effective, Identifier, Measurement, MeasurementId, Observed, Provenance, Quantity,
    Status, Validator, Value, ValueSpec, jiff, parse_decimal, systems,
};
use proptest::prelude::*;

/// The number of cases: `PROPTEST_CASES` when set (for a long soak), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every (name, spec) of the built-in catalog: kinds and panel components.
fn specs() -> Vec<(String, &'static ValueSpec)> {
    let mut out = Vec::new();
    for k in Catalog::builtin().kinds() {
        if let Some(v) = &k.value {
            out.push((k.id.to_string(), v));
        }
        for c in &k.components {
            out.push((format!("{}.{}", k.id, c.id), &c.value));
        }
    }
    out
}

fn decimal() -> impl Strategy<Value = Decimal> {
    (0i64..100_000_000, 0u32..5).prop_map(|(m, s)| Decimal::new(m, s))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2000)))]

    /// A → B → A, rounded back to the input's decimal places, is the input, for every pair of
    /// units of every kind.
    #[test]
    fn unit_conversion_round_trips(spec_idx in 0usize..64, a in 0usize..8, b in 0usize..8, x in decimal()) {
        let specs = specs();
        let (name, spec) = &specs[spec_idx % specs.len()];
        let ua = &spec.units[a % spec.units.len()];
        let ub = &spec.units[b % spec.units.len()];
        let q = Quantity::new(x, ua.code.clone());
        let there = spec.convert(&q, ub.code.as_str(), name).unwrap();
        let back = spec.convert(&there, ua.code.as_str(), name).unwrap();
        prop_assert_eq!(
            back.value.round_dp(x.scale()), x,
            "{}: {} -> {} -> {}", name, q, there, back
        );
        prop_assert_eq!(back.unit, ua.code.clone());
    }

    /// Decimals print back exactly as parsed, scale included.
    #[test]
    fn decimal_text_round_trips(m in any::<i64>(), s in 0u32..12) {
        let d = Decimal::new(m, s);
        let text = d.to_string();
        let back = parse_decimal(&text).unwrap();
        prop_assert_eq!(back.to_string(), text);
        prop_assert_eq!(back.scale(), d.scale());
    }

    /// Any string: Ok or Err, never a panic.
    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}") {
        let _ = DateTime::parse(&s);
        let _ = parse_decimal(&s);
        let _ = s.parse::<Status>();
        let _ = s.parse::<MeasurementId>();
    }

    /// Strings close to valid date-times (the interesting failures): never a panic.
    #[test]
    fn near_valid_date_times_never_panic(s in "[0-9]{1,5}(-[0-9]{1,3}(-[0-9]{1,3}(T[0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3}(\\.[0-9]{0,12})?)?)?)?)?(Z|[+-][0-9]{1,3}:[0-9]{1,3})?") {
        if let Ok(dt) = DateTime::parse(&s) {
            prop_assert_eq!(dt.to_string(), s);
        }
    }

    /// Generated date-times print back exactly, and full date-times denote the instant an
    /// independent RFC 3339 parser (jiff's) finds.
    #[test]
    fn date_time_text_round_trips(dt in date_time()) {
        let text = dt.to_string();
        let back = DateTime::parse(&text).unwrap();
        prop_assert_eq!(back, dt);
        prop_assert_eq!(back.to_string(), text.clone());
        if !dt.precision().is_date_only() {
            let reference: jiff::Timestamp = text.parse().unwrap();
            prop_assert_eq!(dt.instant(), reference);
        }
    }

    /// The same (source, record) always gives the same id; different ones give different ids.
    #[test]
    fn ids_are_stable_and_distinct(s in "\\PC{0,20}", r in "\\PC{0,20}", s2 in "\\PC{0,20}", r2 in "\\PC{0,20}") {
        prop_assert_eq!(MeasurementId::from_source(&s, &r), MeasurementId::from_source(&s, &r));
        if (s.as_str(), r.as_str()) != (s2.as_str(), r2.as_str()) {
            prop_assert_ne!(MeasurementId::from_source(&s, &r), MeasurementId::from_source(&s2, &r2));
        }
        let id = MeasurementId::from_source(&s, &r);
        prop_assert_eq!(id.to_string().parse::<MeasurementId>().unwrap(), id);
    }

    /// Any measurement survives JSON exactly.
    #[test]
    fn serde_round_trips(m in measurement()) {
        let json = serde_json::to_string(&m).unwrap();
        let back: Measurement = serde_json::from_str(&json).unwrap();
        // `==` on decimals ignores scale; the text comparison catches `107.50` -> `107.5`.
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
        prop_assert_eq!(back, m);
    }

    /// Validation and normalisation return Ok or Err for any measurement; what validates
    /// normalises, into canonical units, idempotently, and still validates.
    #[test]
    fn validation_is_total_and_normalisation_sound(m in measurement()) {
        let v = Validator::new(Catalog::builtin()).at("2025-01-01T00:00:00Z".parse().unwrap());
        let valid = v.validate(&m).is_ok();
        let normalised = v.normalize(m.clone());
        prop_assert_eq!(valid, normalised.is_ok());
        if let Ok(n) = normalised {
            prop_assert!(v.validate(&n).is_ok());
            prop_assert_eq!(v.normalize(n.clone()).unwrap(), n.clone());
            let kind = Catalog::builtin().kind(n.kind.as_str()).unwrap();
            if let (Value::Quantity(o), Some(spec)) = (&n.value, &kind.value) {
                prop_assert_eq!(&o.quantity.unit, &spec.unit);
            }
        }
    }
}

fn offset_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Z".to_string()),
        Just("-00:00".to_string()),
        (any::<bool>(), 0i32..14, 0i32..60).prop_map(|(neg, h, m)| {
            if h == 0 && m == 0 && neg {
                "+00:00".to_string()
            } else {
                format!("{}{:02}:{:02}", if neg { '-' } else { '+' }, h, m)
            }
        }),
        Just("+14:00".to_string()),
    ]
}

fn date_time() -> impl Strategy<Value = DateTime> {
    (
        1i32..=9998,
        1i32..=12,
        1i32..=28,
        0i32..24,
        0i32..60,
        0i32..60,
        0usize..=9,
        0u32..1_000_000_000,
        offset_text(),
        0u8..5,
    )
        .prop_map(|(y, mo, d, h, mi, s, digits, frac, off, prec)| {
            let text = match prec {
                0 => format!("{y:04}"),
                1 => format!("{y:04}-{mo:02}"),
                2 => format!("{y:04}-{mo:02}-{d:02}"),
                _ => {
                    let f = if digits == 0 {
                        String::new()
                    } else {
                        format!(".{:0>9}", frac)[..=digits].to_string()
                    };
                    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{f}{off}")
                }
            };
            DateTime::parse(&text).unwrap()
        })
}

fn unit() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("kg".to_string()),
        Just("[lb_av]".to_string()),
        Just("mm[Hg]".to_string()),
        Just("kPa".to_string()),
        Just("/min".to_string()),
        Just("Cel".to_string()),
        Just("[degF]".to_string()),
        Just("%".to_string()),
        Just("mmol/L".to_string()),
        Just("mg/dL".to_string()),
        Just("{steps}".to_string()),
        Just("cm".to_string()),
        Just("[in_i]".to_string()),
        Just("kg/m2".to_string()),
        "\\PC{0,6}",
    ]
}

fn any_decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        decimal(),
        (any::<i64>(), 0u32..28).prop_map(|(m, s)| Decimal::new(m, s)),
        Just(Decimal::MAX),
        Just(Decimal::MIN),
    ]
}

fn observed() -> impl Strategy<Value = Observed> {
    (
        any_decimal(),
        unit(),
        proptest::option::of((any_decimal(), unit())),
    )
        .prop_map(|(v, u, orig)| Observed {
            quantity: Quantity::new(v, u),
            original: orig.map(|(v, u)| Quantity::new(v, u)),
        })
}

fn absent() -> impl Strategy<Value = AbsentReason> {
    proptest::sample::select(AbsentReason::ALL.to_vec())
}

fn value() -> impl Strategy<Value = Value> {
    let component = (
        prop_oneof![
            Just("systolic".to_string()),
            Just("diastolic".to_string()),
            "[a-z]{1,8}"
        ],
        prop_oneof![
            observed().prop_map(ComponentValue::Quantity),
            absent().prop_map(ComponentValue::Absent)
        ],
    )
        .prop_map(|(id, value)| Component {
            id: ComponentId::new(id),
            value,
        });
    prop_oneof![
        observed().prop_map(Value::Quantity),
        proptest::collection::vec(component, 0..4).prop_map(Value::Components),
        absent().prop_map(Value::Absent),
    ]
}

fn kind() -> impl Strategy<Value = String> {
    let ids: Vec<String> = Catalog::builtin()
        .kinds()
        .iter()
        .map(|k| k.id.to_string())
        .collect();
    prop_oneof![4 => proptest::sample::select(ids), 1 => "\\PC{0,12}"]
}

fn subject() -> impl Strategy<Value = Identifier> {
    prop_oneof![
        "[0-9]{10}".prop_map(Identifier::cpr),
        "[0-9]{9}".prop_map(Identifier::bsn),
        "[0-9]{11}".prop_map(Identifier::fnr),
        "\\PC{0,12}".prop_map(Identifier::local),
        ("\\PC{0,12}", "\\PC{0,12}").prop_map(|(s, v)| Identifier::new(s, v)),
    ]
}

prop_compose! {
    fn measurement()(
        source in "[a-z-]{0,10}",
        record in "\\PC{0,16}",
        subject in subject(),
        kind in kind(),
        value in value(),
        status in proptest::sample::select(Status::ALL.to_vec()),
        start in date_time(),
        end in proptest::option::of(date_time()),
        period in any::<bool>(),
        issued in proptest::option::of(date_time()),
        site in proptest::option::of(prop_oneof![Just(BodySite::LeftArm), "[a-z]{1,8}".prop_map(|s| BodySite::parse(&s))]),
        method in proptest::option::of("\\PC{0,10}"),
        payload in proptest::option::of("\\PC{0,30}"),
        tamper_id in proptest::bool::weighted(0.05),
    ) -> Measurement {
        let mut provenance = Provenance::new(source, record);
        if let Some(p) = payload {
            provenance = provenance.with_payload("application/fhir+json", p);
        }
        let effective = if period { Effective::Period { start, end } } else { Effective::At(start) };
        let mut m = Measurement::new(provenance, subject, kind.as_str(), value, effective);
        m.status = status;
        m.issued = issued;
        m.context = Context { site, method, ..Context::default() };
        if tamper_id {
            m.id = MeasurementId::from_source("tampered", "id");
        }
        m
    }
}

#[test]
fn generated_subjects_include_valid_national_ids() {
    // Guards the generator: validation is exercised on both outcomes.
    assert!(
        Identifier::new(systems::CPR, "0101901234")
            .check_format()
            .is_ok()
    );
    assert!(
        Identifier::new(systems::CPR, "9999999999")
            .check_format()
            .is_err()
    );
}

fn plausible_in(spec: &ValueSpec, frac: u32, unit_idx: usize, name: &str) -> Quantity {
    let r = spec.range.unwrap();
    // A value 10–90 % into the range, one decimal place, in the canonical unit.
    let canonical = (r.min + (r.max - r.min) * Decimal::new(i64::from(frac), 3)).round_dp(1);
    let unit = &spec.units[unit_idx % spec.units.len()];
    spec.convert(
        &Quantity::new(canonical, spec.unit.clone()),
        unit.code.as_str(),
        name,
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1000)))]

    /// Plausible measurements of every kind, in any accepted unit, validate and normalise to the
    /// canonical unit with the recorded quantity kept.
    #[test]
    fn plausible_measurements_validate_and_normalise(
        kind_idx in 0usize..64,
        frac in 100u32..900,
        frac2 in 100u32..400,
        unit_idx in 0usize..8,
        unit_idx2 in 0usize..8,
        minutes_ago in 0i64..1_000_000,
    ) {
        let cat = Catalog::builtin();
        let kind = &cat.kinds()[kind_idx % cat.kinds().len()];
        let value = match &kind.value {
            Some(spec) => Value::Quantity(plausible_in(spec, frac, unit_idx, kind.id.as_str()).into()),
            None => {
                // Systolic from the upper part of its range, diastolic from the lower part of its.
                let sys = kind.component("systolic").unwrap();
                let dia = kind.component("diastolic").unwrap();
                let frac_sys = 450 + frac / 2;
                Value::Components(vec![
                    Component { id: sys.id.clone(), value: ComponentValue::Quantity(plausible_in(&sys.value, frac_sys, unit_idx, "systolic").into()) },
                    Component { id: dia.id.clone(), value: ComponentValue::Quantity(plausible_in(&dia.value, frac2, unit_idx2, "diastolic").into()) },
                ])
            }
        };
        let now: jiff::Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let at = now - jiff::SignedDuration::from_mins(minutes_ago);
        let m = Measurement::new(
            Provenance::new("gen", format!("{kind_idx}-{frac}")),
            Identifier::cpr("0101901234"),
            kind.id.clone(),
            value.clone(),
            DateTime::from_timestamp(at, jiff::tz::Offset::from_hours(1).unwrap()),
        );
        let v = Validator::new(cat).at(now);
        prop_assert!(v.validate(&m).is_ok(), "{:?}", v.validate(&m));
        let n = v.normalize(m).unwrap();
        let check = |o: &Observed, spec: &ValueSpec, recorded: &Quantity| -> Result<(), TestCaseError> {
            prop_assert_eq!(&o.quantity.unit, &spec.unit);
            if recorded.unit == spec.unit {
                prop_assert_eq!(&o.quantity, recorded);
                prop_assert!(o.original.is_none());
            } else {
                prop_assert_eq!(o.original.as_ref(), Some(recorded));
            }
            Ok(())
        };
        match (&n.value, &value) {
            (Value::Quantity(o), Value::Quantity(rec)) => check(o, kind.value.as_ref().unwrap(), &rec.quantity)?,
            (Value::Components(cs), Value::Components(recs)) => {
                for (c, rec) in cs.iter().zip(recs) {
                    let (ComponentValue::Quantity(o), ComponentValue::Quantity(r)) = (&c.value, &rec.value) else {
                        panic!("components keep their shape")
                    };
                    check(o, &kind.component(c.id.as_str()).unwrap().value, &r.quantity)?;
                }
            }
            _ => prop_assert!(false, "the value changed shape"),
        }
    }
}
