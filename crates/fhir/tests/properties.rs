//! model -> FHIR -> model is the identity on everything the Observation carries.

use healthanalyzer_fhir::{
    EUI64_SYSTEM, Profile, ReadOptions, WriteOptions, read_observation, write_observation,
};
use healthanalyzer_model::jiff::{Timestamp, tz};
use healthanalyzer_model::{
    AbsentReason, Catalog, DateTime, Decimal, DeviceRef, Identifier, Measurement, Provenance,
    Status, Value,
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
    fn model_to_fhir_to_model_is_the_identity(
        mut m in measurement(),
        profile in prop::sample::select(Profile::ALL.to_vec()),
        eui in prop::option::of("[0-9A-F]{16}"),
    ) {
        let catalog = Catalog::builtin();
        m.device = eui.map(|e| DeviceRef {
            identifier: Some(Identifier::new(EUI64_SYSTEM, e)),
            ..DeviceRef::default()
        });
        let write = WriteOptions::new(catalog).with_profile(profile);
        let json = write_observation(&m, &write).expect("write").to_string();
        let options = ReadOptions { catalog, source_id: "p" };
        let back = read_observation(&json, &options, None).expect("read back");
        prop_assert_eq!(&back.subject, &m.subject);
        prop_assert_eq!(&back.kind, &m.kind);
        prop_assert_eq!(format!("{:?}", back.value), format!("{:?}", m.value));
        prop_assert_eq!(format!("{:?}", back.effective), format!("{:?}", m.effective));
        prop_assert_eq!(format!("{:?}", back.issued), format!("{:?}", m.issued));
        prop_assert_eq!(back.status, m.status);
        prop_assert_eq!(&back.device, &m.device);
    }
}
