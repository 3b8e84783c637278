//! model -> FHIR -> model is the identity on everything the Observation carries.

use healthanalyzer_fhir::{ReadOptions, read_observation, write_observation};
use healthanalyzer_model::jiff::{Timestamp, tz};
use healthanalyzer_model::{
    AbsentReason, Catalog, DateTime, Decimal, Identifier, Measurement, Provenance, Status, Value,
};
use proptest::prelude::*;

fn kinds() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop::sample::select(vec![
        ("heart-rate", "/min"),
        ("body-weight", "kg"),
        ("body-height", "cm"),
        ("bmi", "kg/m2"),
        ("body-temperature", "Cel"),
        ("respiratory-rate", "/min"),
        ("oxygen-saturation", "%"),
        ("blood-glucose", "mg/dL"),
        ("steps", "{steps}"),
    ])
}

fn decimal() -> impl Strategy<Value = Decimal> {
    (0i64..10_000_000, 0u32..5).prop_map(|(m, scale)| Decimal::new(m, scale))
}

fn time() -> impl Strategy<Value = DateTime> {
    (0i64..4_000_000_000, -12i8..=14, 0u32..3).prop_map(|(s, h, frac)| {
        let ts = Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH);
        let off = tz::Offset::from_hours(h).unwrap_or(tz::Offset::UTC);
        let t = DateTime::from_timestamp(ts, off);
        match frac {
            0 => t,
            n => t.with_fraction_digits(n as u8 * 3),
        }
    })
}

fn measurement() -> impl Strategy<Value = Measurement> {
    (
        kinds(),
        decimal(),
        time(),
        "[a-zA-Z0-9-]{1,20}",
        prop::option::of("[a-z:./0-9]{1,30}"),
        prop::sample::select(Status::ALL.to_vec()),
        prop::option::of(time()),
        prop::option::of(prop::sample::select(AbsentReason::ALL.to_vec())),
        prop::option::of((decimal(), decimal())),
    )
        .prop_map(
            |((kind, unit), v, t, subj, system, status, issued, absent, bp)| {
                let subject = match system {
                    Some(s) => Identifier::new(s, subj),
                    None => Identifier::local(subj),
                };
                let (kind, value) = match (absent, bp) {
                    (Some(r), _) => (kind, Value::Absent(r)),
                    (None, Some((sys, dia))) => ("blood-pressure", Value::blood_pressure(sys, dia)),
                    (None, None) => (kind, Value::quantity(v, unit)),
                };
                let mut m = Measurement::new(Provenance::new("p", "r"), subject, kind, value, t);
                m.status = status;
                m.issued = issued;
                m
            },
        )
}

proptest! {
    #[test]
    fn model_to_fhir_to_model_is_the_identity(m in measurement()) {
        let catalog = Catalog::builtin();
        let json = write_observation(&m, catalog).expect("write").to_string();
        let options = ReadOptions { catalog, source_id: "p" };
        let back = read_observation(&json, &options, None).expect("read back");
        prop_assert_eq!(&back.subject, &m.subject);
        prop_assert_eq!(&back.kind, &m.kind);
        prop_assert_eq!(format!("{:?}", back.value), format!("{:?}", m.value));
        prop_assert_eq!(format!("{:?}", back.effective), format!("{:?}", m.effective));
        prop_assert_eq!(format!("{:?}", back.issued), format!("{:?}", m.issued));
        prop_assert_eq!(back.status, m.status);
    }
}
