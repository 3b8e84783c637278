//! The built-in catalog: every kind, every coding, every unit.

#![allow(clippy::unwrap_used)] // In tests a panic is a failure with a message.

use healthanalyzer_model::{
    Catalog, CodeMatch, Coding, Conversion, Error, KindDef, KindId, Quantity, Range, UnitCode,
    UnitDef, ValueSpec, parse_decimal, systems,
};

fn q(v: &str, unit: &str) -> Quantity {
    Quantity::parse(v, unit).unwrap()
}

#[test]
fn has_the_kinds_of_the_architecture() {
    let cat = Catalog::builtin();
    let expected = [
        ("blood-pressure", "85354-9"),
        ("heart-rate", "8867-4"),
        ("body-weight", "29463-7"),
        ("body-height", "8302-2"),
        ("bmi", "39156-5"),
        ("body-temperature", "8310-5"),
        ("respiratory-rate", "9279-1"),
        ("oxygen-saturation", "2708-6"),
        ("blood-glucose", "2339-0"),
        ("capillary-glucose", "41653-7"),
        ("steps", "55423-8"),
        ("mean-blood-pressure", "8478-0"),
        ("head-circumference", "9843-4"),
    ];
    for (id, loinc) in expected {
        let k = cat.kind(id).unwrap_or_else(|| panic!("missing kind {id}"));
        let primary = k.primary().unwrap();
        assert_eq!(
            (primary.system.as_ref(), primary.code.as_ref()),
            (systems::LOINC, loinc)
        );
    }
    assert_eq!(cat.kinds().len(), expected.len());
}

#[test]
fn every_coding_finds_its_own_kind_or_component() {
    let cat = Catalog::builtin();
    for k in cat.kinds() {
        for c in &k.codings {
            match cat.lookup(&c.system, &c.code) {
                Some(CodeMatch::Kind(found)) => assert_eq!(found.id, k.id, "{c}"),
                other => panic!("{c}: {other:?}"),
            }
        }
        for comp in &k.components {
            for c in &comp.codings {
                match cat.lookup(&c.system, &c.code) {
                    Some(CodeMatch::Component(kind, found)) => {
                        assert_eq!((&kind.id, &found.id), (&k.id, &comp.id), "{c}")
                    }
                    other => panic!("{c}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn alternative_codings_map_to_the_same_kind() {
    let cat = Catalog::builtin();
    let kind = |system, code| cat.lookup(system, code).map(|m| m.kind().id.to_string());
    let some = |s: &str| Some(s.to_string());
    assert_eq!(kind(systems::LOINC, "55284-4"), some("blood-pressure"));
    assert_eq!(kind(systems::SNOMED, "27113001"), some("body-weight"));
    assert_eq!(kind(systems::MDC, "150456"), some("oxygen-saturation"));
    assert_eq!(kind(systems::NPU, "NPU03011"), some("oxygen-saturation"));
    assert_eq!(kind(systems::NPU, "DNK05472"), some("blood-pressure"));
    assert_eq!(kind(systems::LOINC, "15074-8"), some("blood-glucose"));
    assert_eq!(kind(systems::LOINC, "14743-9"), some("capillary-glucose"));
    assert_eq!(kind(systems::LOINC, "41950-7"), some("steps"));
    assert_eq!(kind(systems::LOINC, "8306-3"), some("body-height"));
    // The same code in another system is not a match.
    assert_eq!(kind(systems::SNOMED, "8867-4"), None);
    assert_eq!(kind(systems::LOINC, "0000-0"), None);
    // A CodeableConcept whose first coding is local still finds the kind.
    let found = cat.lookup_any([
        ("http://acme.org/devices/clinical-codes", "body-weight"),
        (systems::LOINC, "3141-9"),
    ]);
    assert_eq!(found.map(|m| m.kind().id.to_string()), some("body-weight"));
}

/// (kind or kind.component, value, unit, expected canonical value)
const CONVERSIONS: &[(&str, &str, &str, &str)] = &[
    ("body-weight", "83.9", "kg", "83.9"),
    ("body-weight", "185", "[lb_av]", "83.91"),
    ("body-weight", "185", "lbs", "83.91"),
    ("body-weight", "3500", "g", "3.5000"),
    ("body-weight", "112", "[oz_av]", "3.175"),
    ("body-height", "66.9", "[in_i]", "169.93"),
    ("body-height", "175.5", "cm", "175.5"),
    ("body-height", "1.80", "m", "180.0"),
    ("body-height", "1800", "mm", "180.00"),
    ("body-height", "6", "[ft_i]", "183"),
    ("body-height", "6.00", "ft", "182.88"),
    ("head-circumference", "20.2", "[in_i]", "51.31"),
    ("head-circumference", "51.2", "cm", "51.2"),
    ("head-circumference", "0.512", "m", "51.20"),
    ("head-circumference", "512", "mm", "51.20"),
    ("head-circumference", "1.5", "[ft_i]", "45.7"),
    ("body-temperature", "36.5", "Cel", "36.5"),
    ("body-temperature", "98.6", "[degF]", "37.000"),
    ("body-temperature", "101.3", "°F", "38.500"),
    ("body-temperature", "101.2", "°F", "38.444"),
    ("body-temperature", "310.15", "K", "37.000"),
    ("blood-pressure.systolic", "120", "mmHg", "120"),
    ("blood-pressure.systolic", "16.0", "kPa", "120.01"),
    ("blood-pressure.diastolic", "10.7", "kPa", "80.26"),
    ("blood-pressure.diastolic", "80", "mm[Hg]", "80"),
    ("mean-blood-pressure", "80", "mm[Hg]", "80"),
    ("mean-blood-pressure", "10.7", "kPa", "80.26"),
    ("heart-rate", "72", "{beats}/min", "72"),
    ("heart-rate", "72", "bpm", "72"),
    ("respiratory-rate", "16", "{breaths}/min", "16"),
    ("oxygen-saturation", "97", "%", "97"),
    ("oxygen-saturation", "0.97", "1", "97.0"),
    ("blood-glucose", "100", "mg/dL", "100"),
    ("blood-glucose", "5.5", "mmol/L", "99.1"),
    ("capillary-glucose", "10.0", "mmol/l", "180.2"),
    ("capillary-glucose", "10.00", "mmol/L", "180.16"),
    ("capillary-glucose", "120", "mg/dL", "120"),
    ("bmi", "16.2", "kg/m2", "16.2"),
    ("bmi", "22.5", "kg/m²", "22.5"),
    ("steps", "10432", "{steps}", "10432"),
    ("steps", "10432", "steps", "10432"),
];

fn spec_of<'c>(cat: &'c Catalog, what: &str) -> &'c ValueSpec {
    match what.split_once('.') {
        Some((kind, comp)) => &cat.kind(kind).unwrap().component(comp).unwrap().value,
        None => cat.kind(what).unwrap().value.as_ref().unwrap(),
    }
}

#[test]
fn converts_every_unit_to_the_canonical_unit() {
    let cat = Catalog::builtin();
    for (what, v, unit, expected) in CONVERSIONS {
        let spec = spec_of(cat, what);
        let got = spec.to_canonical(&q(v, unit), what).unwrap();
        assert_eq!(got.value.to_string(), *expected, "{what}: {v} {unit}");
        assert_eq!(got.unit, spec.unit, "{what}");
    }
}

#[test]
fn every_accepted_unit_has_a_conversion_test() {
    let cat = Catalog::builtin();
    let mut missing = Vec::new();
    for k in cat.kinds() {
        let specs: Vec<(String, &ValueSpec)> = match &k.value {
            Some(s) => vec![(k.id.to_string(), s)],
            None => k
                .components
                .iter()
                .map(|c| (format!("{}.{}", k.id, c.id), &c.value))
                .collect(),
        };
        for (what, spec) in specs {
            for u in &spec.units {
                let covered = CONVERSIONS.iter().any(|(w, _, unit, _)| {
                    *w == what && spec.unit_def(unit).is_some_and(|d| d.code == u.code)
                });
                if !covered {
                    missing.push(format!("{what} in {}", u.code));
                }
            }
        }
    }
    assert!(missing.is_empty(), "no conversion test for: {missing:?}");
}

#[test]
fn converts_between_non_canonical_units() {
    let spec = spec_of(Catalog::builtin(), "body-weight");
    let got = spec
        .convert(&q("1000", "g"), "[lb_av]", "body-weight")
        .unwrap();
    assert_eq!(got.to_string(), "2.20462 [lb_av]");
    let temp = spec_of(Catalog::builtin(), "body-temperature");
    let got = temp.convert(&q("37.0", "Cel"), "[degF]", "t").unwrap();
    assert_eq!(got.to_string(), "98.60 [degF]");
}

#[test]
fn unknown_unit_names_the_accepted_ones() {
    let spec = spec_of(Catalog::builtin(), "body-weight");
    let err = spec
        .to_canonical(&q("80", "stone"), "body-weight")
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"stone\"") && msg.contains("kg, g, [lb_av], [oz_av]"),
        "{msg}"
    );
}

#[test]
fn the_catalog_is_data_a_new_kind_is_one_entry() {
    let json = r#"{
        "id": "waist-circumference",
        "display": "Waist Circumference at umbilicus by Tape measure",
        "category": "vital-signs",
        "codings": [{"system": "http://loinc.org", "code": "8280-0"}],
        "value": {
            "unit": "cm",
            "units": [
                {"code": "cm", "to_canonical": {"numerator": "1", "denominator": "1"}},
                {"code": "[in_i]", "to_canonical": {"numerator": "2.54", "denominator": "1"},
                 "aliases": ["in"]}
            ],
            "range": {"min": "30", "max": "300"}
        }
    }"#;
    let kind: KindDef = serde_json::from_str(json).unwrap();
    let cat = Catalog::with_kinds([kind]).unwrap();
    let found = cat.lookup(systems::LOINC, "8280-0").unwrap().kind();
    assert_eq!(found.id, "waist-circumference");
    let got = found
        .value
        .as_ref()
        .unwrap()
        .to_canonical(&q("34", "in"), "waist")
        .unwrap();
    assert_eq!(got.to_string(), "86.4 cm", "one guard digit beyond 1 in");
    // Built-ins are still there.
    assert!(cat.kind("body-weight").is_some());
}

#[test]
fn a_coding_can_belong_to_one_kind_only() {
    let dup = KindDef {
        id: KindId::new("my-weight"),
        display: "weight again".into(),
        category: "vital-signs".into(),
        codings: vec![Coding::new(systems::LOINC, "29463-7", "Body weight")],
        value: Some(ValueSpec {
            unit: UnitCode::new("kg"),
            units: vec![UnitDef {
                code: UnitCode::new("kg"),
                to_canonical: Conversion::IDENTITY,
                aliases: vec![],
            }],
            range: Some(Range {
                min: parse_decimal("1").unwrap(),
                max: parse_decimal("2").unwrap(),
            }),
        }),
        components: vec![],
        constraints: vec![],
    };
    let err = Catalog::with_kinds([dup.clone()]).unwrap_err();
    assert!(
        matches!(err, Error::Catalog(ref m) if m.contains("29463-7")),
        "{err}"
    );
    let mut same_id = dup;
    same_id.codings = vec![Coding::new("urn:x", "1", "x")];
    same_id.id = KindId::new("body-weight");
    assert!(Catalog::with_kinds([same_id]).is_err());
}

#[test]
fn the_builtin_catalog_round_trips_through_json() {
    let kinds = Catalog::builtin().kinds();
    let json = serde_json::to_string(kinds).unwrap();
    let back: Vec<KindDef> = serde_json::from_str(&json).unwrap();
    assert_eq!(back.as_slice(), kinds);
    assert_eq!(Catalog::new(back).unwrap().kinds().len(), kinds.len());
}
