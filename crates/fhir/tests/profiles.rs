//! Output profiles: what each adds, checked element by element, plus a reviewed snapshot of a
//! fresh Observation of every kind under every profile.

use healthanalyzer_fhir::{
    BundleKind, EUI64_SYSTEM, Profile, ReadOptions, WriteOptions, phd_identifier, read_bundle,
    read_observation, write_bundle, write_observation, write_patient,
};
use healthanalyzer_model::{
    AbsentReason, Catalog, DateTime, DeviceRef, Effective, HumanName, Identifier, KindDef,
    Measurement, Provenance, Subject, Value, parse_decimal, systems,
};
use serde_json::{Value as Json, json};

fn national_id(profile: Profile) -> Identifier {
    match profile {
        Profile::NlCore => Identifier::new(systems::BSN, "999911120"),
        Profile::NoBasis => Identifier::new(systems::FNR, "13116900216"),
        _ => Identifier::new(systems::CPR, "0101709995"),
    }
}

fn device() -> DeviceRef {
    DeviceRef {
        identifier: Some(Identifier::new(EUI64_SYSTEM, "74E8FFFEFF051C00")),
        display: Some("Home monitor".into()),
        manufacturer: Some("Acme".into()),
        model: Some("HM-1".into()),
        ..DeviceRef::default()
    }
}

/// A typical value of every kind, in its canonical unit, taken at a fixed time.
fn sample(kind: &KindDef, subject: Identifier) -> Measurement {
    let q = |v: &str, unit: &str| Value::quantity(parse_decimal(v).expect("decimal"), unit);
    let value = match kind.id.as_str() {
        "blood-pressure" => Value::blood_pressure(
            parse_decimal("128").expect("decimal"),
            parse_decimal("82").expect("decimal"),
        ),
        "body-weight" => q("72.40", "kg"),
        "body-height" => q("178", "cm"),
        "head-circumference" => q("51.5", "cm"),
        "bmi" => q("22.9", "kg/m2"),
        "body-temperature" => q("36.8", "Cel"),
        "oxygen-saturation" => q("97", "%"),
        "blood-glucose" | "capillary-glucose" => q("104", "mg/dL"),
        "steps" => q("8042", "{steps}"),
        "mean-blood-pressure" => q("93", "mm[Hg]"),
        _ => q("64", "/min"),
    };
    let t = DateTime::parse("2024-05-01T07:31:00.25+02:00").expect("time");
    let effective = if kind.id.as_str() == "steps" {
        Effective::Period {
            start: t,
            end: Some(DateTime::parse("2024-05-01T23:59:59+02:00").expect("time")),
        }
    } else {
        Effective::At(t)
    };
    let mut m = Measurement::new(
        Provenance::new("home-monitor", kind.id.as_str()),
        subject,
        kind.id.clone(),
        value,
        effective,
    );
    m.device = Some(device());
    m
}

fn profiles_of(o: &Json) -> Vec<&str> {
    o["meta"]["profile"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn every_kind_under_every_profile_matches_its_reviewed_snapshot_and_reads_back() {
    let catalog = Catalog::builtin();
    for &profile in Profile::ALL {
        let options = WriteOptions::new(catalog).with_profile(profile);
        let mut all = serde_json::Map::new();
        for kind in catalog.kinds() {
            let m = sample(kind, national_id(profile));
            let o = write_observation(&m, &options).expect("write");
            // What was written reads back as the same measurement.
            let read = ReadOptions::new(catalog, "home-monitor");
            let back = read_observation(&o.to_string(), &read, None).expect("read back");
            assert_eq!(back.kind, m.kind);
            assert_eq!(back.subject, m.subject);
            assert_eq!(format!("{:?}", back.value), format!("{:?}", m.value));
            assert_eq!(
                back.device.as_ref().map(|d| &d.identifier),
                Some(&device().identifier)
            );
            all.insert(kind.id.as_str().to_string(), o);
        }
        // serde_json's own pretty printer: numbers stay as written (insta's JSON serializer
        // would show arbitrary-precision numbers as private maps).
        let pretty = serde_json::to_string_pretty(&all).expect("json");
        insta::assert_snapshot!(format!("fresh-{profile}"), pretty);
    }
}

#[test]
fn vital_signs_profile_names_the_specific_hl7_profile_and_other_kinds_their_own_category() {
    let catalog = Catalog::builtin();
    let options = WriteOptions::new(catalog);
    let kind = |id: &str| catalog.kind(id).expect("kind");
    let bp = write_observation(
        &sample(kind("blood-pressure"), national_id(Profile::VitalSigns)),
        &options,
    )
    .expect("write");
    assert_eq!(
        profiles_of(&bp),
        [
            "http://hl7.org/fhir/StructureDefinition/vitalsigns",
            "http://hl7.org/fhir/StructureDefinition/bp"
        ]
    );
    assert_eq!(bp["category"][0]["coding"][0]["code"], "vital-signs");
    let glucose = write_observation(
        &sample(kind("blood-glucose"), national_id(Profile::VitalSigns)),
        &options,
    )
    .expect("write");
    assert!(
        glucose.get("meta").is_none(),
        "glucose is not a vital sign: {glucose}"
    );
    assert_eq!(glucose["category"][0]["coding"][0]["code"], "laboratory");
    let steps = write_observation(
        &sample(kind("steps"), national_id(Profile::VitalSigns)),
        &options,
    )
    .expect("write");
    assert_eq!(steps["category"][0]["coding"][0]["code"], "activity");
    // No PHD identifier outside dk-core.
    assert_eq!(bp["identifier"].as_array().map(Vec::len), Some(1));
}

#[test]
fn dk_core_uses_the_basic_observation_for_vital_signs_and_adds_the_phd_identifier() {
    let catalog = Catalog::builtin();
    let options = WriteOptions::new(catalog).with_profile(Profile::DkCore);
    for kind in catalog.kinds() {
        let m = sample(kind, national_id(Profile::DkCore));
        let o = write_observation(&m, &options).expect("write");
        let vital = kind.category == "vital-signs";
        let expected = if vital {
            "http://hl7.dk/fhir/core/StructureDefinition/dk-core-basic-observation"
        } else {
            "http://hl7.dk/fhir/core/StructureDefinition/dk-core-observation"
        };
        assert_eq!(profiles_of(&o), [expected], "{}", kind.id.as_str());
        if vital {
            // dk-core-basic-observation: exactly one category, vital-signs; a LOINC code.
            assert_eq!(o["category"].as_array().map(Vec::len), Some(1));
            assert_eq!(o["category"][0]["coding"][0]["code"], "vital-signs");
        }
        assert!(
            o["code"]["coding"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["system"] == systems::LOINC))
        );
        let has_mdc = kind.codings.iter().any(|c| c.system == systems::MDC);
        let phd = o["identifier"]
            .as_array()
            .expect("identifiers")
            .iter()
            .find(|i| i.get("system").is_none())
            .and_then(|i| i["value"].as_str());
        assert_eq!(phd.is_some(), has_mdc, "{}: {o}", kind.id.as_str());
        if let Some(phd) = phd {
            let mdc = &kind
                .codings
                .iter()
                .find(|c| c.system == systems::MDC)
                .expect("mdc")
                .code;
            assert_eq!(
                phd,
                format!(
                    "74E8FFFEFF051C00-0101709995-urn:oid:1.2.208.176.1.2-{mdc}-20240501073100.25"
                )
            );
        }
    }
}

#[test]
fn the_phd_identifier_needs_an_eui64_a_subject_system_and_an_mdc_code() {
    let catalog = Catalog::builtin();
    let hr = catalog.kind("heart-rate").expect("kind");
    let m = sample(hr, national_id(Profile::DkCore));
    assert!(phd_identifier(&m, hr).is_some());
    let mut serial = m.clone();
    serial.device = Some(DeviceRef {
        identifier: Some(Identifier::new("urn:example:serial", "SN1")),
        ..DeviceRef::default()
    });
    assert_eq!(phd_identifier(&serial, hr), None);
    let mut local = m.clone();
    local.subject = Identifier::local("p1");
    assert_eq!(phd_identifier(&local, hr), None);
    let head = catalog.kind("head-circumference").expect("kind");
    assert_eq!(phd_identifier(&sample(head, m.subject.clone()), head), None);
    // Same reading, same identifier; another time, another identifier.
    let mut later = m.clone();
    later.effective = Effective::At(DateTime::parse("2024-05-01T07:32:00+02:00").expect("time"));
    assert_ne!(phd_identifier(&later, hr), phd_identifier(&m, hr));
    assert_eq!(phd_identifier(&m.clone(), hr), phd_identifier(&m, hr));
}

#[test]
fn nl_core_names_the_zib_profile_on_top_of_the_vital_signs() {
    let catalog = Catalog::builtin();
    let options = WriteOptions::new(catalog).with_profile(Profile::NlCore);
    let cases = [
        ("blood-pressure", Some("nl-core-BloodPressure")),
        ("heart-rate", Some("nl-core-HeartRate")),
        ("body-weight", Some("nl-core-BodyWeight")),
        ("body-height", Some("nl-core-BodyHeight")),
        ("body-temperature", Some("nl-core-BodyTemperature")),
        ("oxygen-saturation", Some("nl-core-O2Saturation")),
        ("respiratory-rate", None),
        ("blood-glucose", None),
    ];
    for (id, nl) in cases {
        let kind = catalog.kind(id).expect("kind");
        let o = write_observation(&sample(kind, national_id(Profile::NlCore)), &options)
            .expect("write");
        let profiles = profiles_of(&o);
        match nl {
            Some(nl) => {
                assert_eq!(
                    profiles.first().copied(),
                    Some(format!("http://nictiz.nl/fhir/StructureDefinition/{nl}").as_str())
                );
                assert!(profiles.contains(&"http://hl7.org/fhir/StructureDefinition/vitalsigns"));
            }
            None => assert!(profiles.iter().all(|p| !p.contains("nictiz")), "{id}"),
        }
        assert_eq!(o["subject"]["identifier"]["system"], systems::BSN);
    }
}

#[test]
fn patients_carry_the_national_patient_profile() {
    let mut s = Subject::new(Identifier::new(systems::CPR, "0101709995"));
    s.name = Some(HumanName {
        family: Some("Berggren".into()),
        given: vec!["Max".into()],
        text: None,
    });
    let cases = [
        (Profile::VitalSigns, None),
        (
            Profile::DkCore,
            Some("http://hl7.dk/fhir/core/StructureDefinition/dk-core-patient"),
        ),
        (
            Profile::NlCore,
            Some("http://nictiz.nl/fhir/StructureDefinition/nl-core-Patient"),
        ),
        (
            Profile::NoBasis,
            Some("http://hl7.no/fhir/StructureDefinition/no-basis-Patient"),
        ),
    ];
    for (profile, url) in cases {
        let p = write_patient(&s, profile).expect("write");
        assert_eq!(profiles_of(&p).first().copied(), url, "{profile}");
        assert_eq!(p["name"][0]["family"], "Berggren");
    }
}

#[test]
fn a_national_profile_adds_to_a_passed_through_resource_and_removes_nothing() {
    let catalog = Catalog::builtin();
    let original = json!({
        "resourceType": "Observation", "id": "hr1", "status": "final",
        "meta": {"profile": ["http://example.org/our-own-profile"]},
        "extension": [{"url": "http://example.org/x", "valueString": "kept"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"identifier": {"system": systems::CPR, "value": "0101709995"}},
        "effectiveDateTime": "2024-05-01T07:31:00+02:00",
        "valueQuantity": {"value": 64, "unit": "beats/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    });
    let read = ReadOptions::new(catalog, "clinic");
    let m = read_observation(&original.to_string(), &read, None).expect("read");
    // Under the default profile, it goes out as it came in.
    assert_eq!(
        write_observation(&m, &WriteOptions::new(catalog)).expect("write"),
        original
    );
    let dk = write_observation(
        &m,
        &WriteOptions::new(catalog).with_profile(Profile::DkCore),
    )
    .expect("write");
    assert_eq!(
        profiles_of(&dk),
        [
            "http://example.org/our-own-profile",
            "http://hl7.dk/fhir/core/StructureDefinition/dk-core-basic-observation"
        ]
    );
    let mut without_meta = dk.clone();
    without_meta["meta"] = original["meta"].clone();
    assert_eq!(without_meta, original, "only meta.profile changed");
}

#[test]
fn a_dk_core_transaction_creates_on_the_phd_identifier_and_writes_the_device() {
    let catalog = Catalog::builtin();
    let options = WriteOptions::new(catalog).with_profile(Profile::DkCore);
    let subject = national_id(Profile::DkCore);
    let hr = sample(catalog.kind("heart-rate").expect("kind"), subject.clone());
    let mut spo2 = sample(
        catalog.kind("oxygen-saturation").expect("kind"),
        subject.clone(),
    );
    spo2.value = Value::Absent(AbsentReason::Error);
    let tx = write_bundle(
        BundleKind::Transaction,
        &[Subject::new(subject)],
        &[hr.clone(), spo2],
        &options,
    )
    .expect("write");
    let entries = tx["entry"].as_array().expect("entries");
    let types: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    assert_eq!(
        types,
        ["Patient", "Device", "Observation", "Observation"],
        "one Device for both"
    );
    let dev = &entries[1];
    assert_eq!(
        dev["request"]["ifNoneExist"],
        format!("identifier={EUI64_SYSTEM}|74E8FFFEFF051C00")
    );
    assert_eq!(dev["resource"]["manufacturer"], "Acme");
    let obs = &entries[2];
    assert_eq!(obs["resource"]["device"]["reference"], dev["fullUrl"]);
    let phd = phd_identifier(&hr, catalog.kind("heart-rate").expect("kind")).expect("phd");
    assert_eq!(obs["request"]["ifNoneExist"], format!("identifier={phd}"));

    // Read back: the Device's details come back into the measurements' device reference.
    let read = ReadOptions::new(catalog, "home-monitor");
    let back = read_bundle(&tx.to_string(), &read).expect("read");
    assert!(back.errors.is_empty(), "{:?}", back.errors);
    assert_eq!(back.devices.len(), 1);
    let d = back.measurements[0].device.as_ref().expect("device");
    assert_eq!(d.identifier, device().identifier);
    assert_eq!(d.manufacturer.as_deref(), Some("Acme"));
    assert_eq!(d.model.as_deref(), Some("HM-1"));
    assert_eq!(d.display.as_deref(), Some("Home monitor"));
}

#[test]
fn conditional_create_queries_escape_what_would_change_the_query() {
    let catalog = Catalog::builtin();
    let odd = Identifier::new("urn:example:ids", "a|b,c$d&e=f g+h");
    let tx = write_bundle(
        BundleKind::Transaction,
        &[Subject::new(odd)],
        &[],
        &WriteOptions::new(catalog),
    )
    .expect("write");
    assert_eq!(
        tx["entry"][0]["request"]["ifNoneExist"],
        r"identifier=urn:example:ids|a\|b\,c\$d%26e%3Df%20g%2Bh"
    );
}

#[test]
fn profile_names_parse_and_unknown_ones_say_what_is_known() {
    for &p in Profile::ALL {
        assert_eq!(p.as_str().parse::<Profile>().expect("parse"), p);
    }
    let e = "dk".parse::<Profile>().expect_err("unknown");
    assert!(e.to_string().contains("dk-core"), "{e}");
}
