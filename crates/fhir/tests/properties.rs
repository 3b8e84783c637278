//! model -> FHIR -> model is the identity on everything the Observation carries.

use healthanalyzer_fhir::{
    BundleKind, EUI64_SYSTEM, Profile, ReadOptions, WriteOptions, read_observation, write_bundle,
    write_bundle_text, write_observation, write_observation_text,
};
use healthanalyzer_model::jiff::{Timestamp, tz};
use healthanalyzer_model::{
    AbsentReason, Catalog, DateTime, Decimal, DeviceRef, Identifier, Measurement, Provenance,
    Status, Subject, Value,
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
        let options = ReadOptions::new(catalog, "p");
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

/// A device reference with any of its parts, and text that needs escaping.
fn device() -> impl Strategy<Value = Option<DeviceRef>> {
    prop::option::of(
        (
            prop::option::of("Device/[a-z0-9]{1,8}"),
            prop::option::of((prop::option::of("[a-z:./]{1,12}"), "[ -~]{1,12}")),
            prop::option::of("[ -~\t\n\u{1}\u{7f}é\\\\\"]{0,24}"),
        )
            .prop_map(|(reference, identifier, display)| DeviceRef {
                reference,
                identifier: identifier.map(|(system, value)| match system {
                    Some(s) => Identifier::new(s, value),
                    None => Identifier {
                        system: None,
                        value,
                    },
                }),
                display,
                ..DeviceRef::default()
            }),
    )
}

proptest! {
    /// The text writer writes what the `Value` writer writes, byte for byte, for fresh
    /// Observations; and for every profile the two are equal as JSON.
    #[test]
    fn the_text_writer_writes_what_the_value_writer_writes(
        mut m in measurement(),
        device in device(),
        profile in prop::sample::select(Profile::ALL.to_vec()),
        method in prop::option::of("[ -~\"\\\\]{1,20}"),
    ) {
        let catalog = Catalog::builtin();
        m.device = device;
        m.context.method = method;
        let options = WriteOptions::new(catalog).with_profile(profile);
        let value = write_observation(&m, &options).expect("value writer");
        let text = write_observation_text(&m, &options).expect("text writer");
        if profile == Profile::VitalSigns {
            prop_assert_eq!(&text, &value.to_string());
        }
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        prop_assert_eq!(parsed, value);
    }

    /// A kept payload that still says what the measurement says is spliced in as its source
    /// wrote it, on one line; a changed measurement is written anew, like the `Value` writer.
    #[test]
    fn kept_payloads_are_spliced_only_while_unchanged(m in measurement(), change in any::<bool>()) {
        let catalog = Catalog::builtin();
        let options = WriteOptions::new(catalog);
        let fresh = write_observation(&m, &options).expect("write");
        // As another system might send it: indented, over several lines.
        let sent = serde_json::to_string_pretty(&fresh).expect("pretty");
        let read = ReadOptions::new(catalog, "p");
        let mut kept = read_observation(&sent, &read, None).expect("read");
        prop_assert!(kept.provenance.payload.is_some());
        if change {
            kept.status = if kept.status == Status::Final { Status::Amended } else { Status::Final };
        }
        let text = write_observation_text(&kept, &options).expect("text writer");
        prop_assert!(!text.contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        prop_assert_eq!(&parsed, &write_observation(&kept, &options).expect("value writer"));
        if !change {
            let one_line: String = sent.chars().filter(|c| *c != '\n').collect();
            prop_assert_eq!(text, one_line);
        }
    }
}

proptest! {
    /// The text Bundle writer writes the Bundle the `Value` writer writes, equal as JSON, for
    /// every kind and profile, with fresh Observations, kept ones, their devices and Patients.
    #[test]
    fn the_text_bundle_is_the_value_bundle(
        ms in prop::collection::vec((measurement(), device(), any::<bool>()), 0..4),
        kind in prop::sample::select(vec![BundleKind::Collection, BundleKind::Searchset, BundleKind::Transaction]),
        profile in prop::sample::select(Profile::ALL.to_vec()),
        with_patient in any::<bool>(),
    ) {
        let catalog = Catalog::builtin();
        let options = WriteOptions::new(catalog).with_profile(profile);
        let read = ReadOptions::new(catalog, "p");
        let mut measurements = Vec::new();
        for (mut m, device, kept) in ms {
            m.device = device;
            if kept {
                let sent = write_observation(&m, &WriteOptions::new(catalog)).expect("write");
                m = read_observation(&sent.to_string(), &read, None).expect("read");
            }
            measurements.push(m);
        }
        let subjects: Vec<Subject> = measurements
            .iter()
            .take(usize::from(with_patient))
            .map(|m| Subject::new(m.subject.clone()))
            .collect();
        let value = write_bundle(kind, &subjects, &measurements, &options).expect("value writer");
        let text = write_bundle_text(kind, &subjects, &measurements, &options).expect("text writer");
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        prop_assert_eq!(parsed, value);
    }
}
