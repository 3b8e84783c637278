//! The exchange profiles `fut` (Denmark) and `pmd` (Norway): a reviewed snapshot of a fresh
//! Observation of every kind under each, every one of them keeping the profile's rules
//! (`healthanalyzer_fhir::rules`), the batch and submission builders, and the errors for what
//! the settings lack.
//!
//! With `HEALTHANALYZER_EXCHANGE_OUT` set to a folder, the snapshot test also writes every
//! resource and Bundle it made there, one JSON file each, for `.ci/run` to hand to the shared
//! validators.

use healthanalyzer_fhir::rules::{
    EHEALTH_OBSERVATION_PROFILE, ORG_SYSTEM, check_fut_observation, check_fut_submission,
    check_pmd_bundle, check_vkp_observation,
};
use healthanalyzer_fhir::{
    DEFAULT_SUBJECT_DISPLAY, FutContext, FutPerformer, FutSubject, National, PmdContext, Profile,
    ReadOptions, WriteOptions, fut_submission, pmd_bundle, read_observation, write_observation,
};
use healthanalyzer_model::{
    Catalog, DateTime, Effective, Identifier, KindDef, Measurement, Provenance, Status, Value,
    parse_decimal, systems,
};
use serde_json::{Value as Json, json};

const CPR: &str = "0101709995";
const FNR: &str = "13116900216";

fn national() -> National {
    National {
        fut: Some(FutContext {
            patient_base: "https://patient.example.dk/fhir".into(),
            careplan_base: "https://careplan.example.dk/fhir/".into(),
            organization_base: "https://organization.example.dk/fhir".into(),
            subjects: vec![
                FutSubject {
                    subject: Identifier::cpr(CPR),
                    patient: "76312".into(),
                    episode_of_care: "39765".into(),
                    service_request: "37067".into(),
                    service_request_version: "42".into(),
                    performer: FutPerformer::Patient,
                },
                FutSubject {
                    subject: Identifier::cpr("0202709996"),
                    patient: "76313".into(),
                    episode_of_care: "39766".into(),
                    service_request: "37068".into(),
                    service_request_version: "3".into(),
                    performer: FutPerformer::Practitioner("501".into()),
                },
            ],
        }),
        pmd: Some(PmdContext {
            subject_display: DEFAULT_SUBJECT_DISPLAY.into(),
            author: Some((Identifier::fnr("05073500186"), "Helsepersonell".into())),
            organization: Some((Identifier::new(ORG_SYSTEM, "974589095"), "Sykehuset".into())),
        }),
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
    Measurement::new(
        Provenance::new("home-monitor", kind.id.as_str()),
        subject,
        kind.id.clone(),
        value,
        effective,
    )
}

fn subject_of(profile: Profile) -> Identifier {
    match profile {
        Profile::Pmd => Identifier::fnr(FNR),
        _ => Identifier::cpr(CPR),
    }
}

/// Writes `value` to `$HEALTHANALYZER_EXCHANGE_OUT/<name>.json` when the variable is set.
fn emit(name: &str, value: &Json) {
    if let Some(dir) = std::env::var_os("HEALTHANALYZER_EXCHANGE_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("output folder");
        let text = serde_json::to_string_pretty(value).expect("json");
        std::fs::write(dir.join(format!("{name}.json")), text).expect("write");
    }
}

#[test]
fn every_kind_under_fut_and_pmd_matches_its_reviewed_snapshot_and_keeps_the_rules() {
    let catalog = Catalog::builtin();
    let national = national();
    for &profile in Profile::EXCHANGES {
        let options = WriteOptions::new(catalog)
            .with_profile(profile)
            .with_national(&national);
        let mut all = serde_json::Map::new();
        let mut measurements = Vec::new();
        for kind in catalog.kinds() {
            let m = sample(kind, subject_of(profile));
            let o = write_observation(&m, &options).expect("write");
            let violations = match profile {
                Profile::Fut => check_fut_observation(&o),
                _ => check_vkp_observation(&o),
            };
            assert_eq!(violations, vec![], "{profile} {}", kind.id.as_str());
            // It still reads as the same kind and value.
            let read = ReadOptions::new(catalog, "home-monitor");
            let back = read_observation(&o.to_string(), &read, None).expect("read back");
            assert_eq!(back.kind, m.kind);
            assert_eq!(format!("{:?}", back.value), format!("{:?}", m.value));
            emit(&format!("Observation-{}.{profile}", kind.id.as_str()), &o);
            all.insert(kind.id.as_str().to_string(), o);
            measurements.push(m);
        }
        let pretty = serde_json::to_string_pretty(&all).expect("json");
        insta::assert_snapshot!(format!("fresh-{profile}"), pretty);
        match profile {
            Profile::Fut => {
                let p = fut_submission(&measurements, &options).expect("submission");
                assert_eq!(check_fut_submission(&p), vec![]);
                emit("Parameters-submit-measurement.fut", &p);
                emit(
                    "Bundle-submit-measurement.fut",
                    &p["parameter"][0]["resource"],
                );
            }
            _ => {
                let b = pmd_bundle(&measurements, &options).expect("batch");
                assert_eq!(check_pmd_bundle(&b), vec![]);
                emit("Bundle-pmd-batch.pmd", &b);
            }
        }
    }
}

#[test]
fn fut_writes_the_references_from_its_settings() {
    let catalog = Catalog::builtin();
    let national = national();
    let options = WriteOptions::new(catalog)
        .with_profile(Profile::Fut)
        .with_national(&national);
    let kind = catalog.kind("heart-rate").expect("kind");
    let mut m = sample(kind, Identifier::cpr("0202709996"));
    m.status = Status::Corrected;
    let o = write_observation(&m, &options).expect("write");
    assert_eq!(o["meta"]["profile"], json!([EHEALTH_OBSERVATION_PROFILE]));
    assert_eq!(o["status"], "final");
    assert_eq!(
        o["subject"],
        json!({"reference": "https://patient.example.dk/fhir/Patient/76313"})
    );
    // The trailing slash of a base URL is not doubled.
    assert_eq!(
        o["basedOn"],
        json!([{"reference": "https://careplan.example.dk/fhir/ServiceRequest/37068"}])
    );
    assert_eq!(
        o["performer"],
        json!([{"reference": "https://organization.example.dk/fhir/Practitioner/501"}])
    );
    assert_eq!(
        o["extension"][0]["valueReference"]["reference"],
        "https://careplan.example.dk/fhir/EpisodeOfCare/39766"
    );
    assert_eq!(o["extension"][1]["extension"][0]["valueId"], "3");
    assert_eq!(
        o["extension"][1]["extension"][1]["valueCodeableConcept"]["coding"][0]["code"],
        "Adhoc"
    );
    // The NPU code of the catalog is there beside LOINC.
    let codes: Vec<&str> = o["code"]["coding"]
        .as_array()
        .expect("codings")
        .iter()
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert!(
        codes.contains(&"NPU21692") && codes.contains(&"8867-4"),
        "{codes:?}"
    );
    assert!(
        !o.to_string().contains("0202709996"),
        "no CPR in FUT output"
    );
}

#[test]
fn fut_without_settings_or_for_an_unknown_subject_is_an_error_naming_the_setting() {
    let catalog = Catalog::builtin();
    let kind = catalog.kind("body-weight").expect("kind");
    let m = sample(kind, Identifier::cpr("0303709997"));
    let bare = WriteOptions::new(catalog).with_profile(Profile::Fut);
    let e = write_observation(&m, &bare)
        .expect_err("no settings")
        .to_string();
    assert!(e.contains("[export.fut]"), "{e}");
    assert!(e.contains("<10 chars redacted>"), "{e}");
    assert!(!e.contains("0303709997"), "{e}");
    let national = national();
    let options = bare.with_national(&national);
    let e = write_observation(&m, &options)
        .expect_err("unknown subject")
        .to_string();
    assert!(e.contains("[[export.fut.subject]]"), "{e}");
    assert!(
        e.contains("urn:oid:1.2.208.176.1.2|<10 chars redacted>"),
        "{e}"
    );
    assert!(!e.contains("0303709997"), "{e}");
}

#[test]
fn fut_takes_final_measurements_only() {
    let catalog = Catalog::builtin();
    let national = national();
    let options = WriteOptions::new(catalog)
        .with_profile(Profile::Fut)
        .with_national(&national);
    let mut m = sample(
        catalog.kind("body-weight").expect("kind"),
        Identifier::cpr(CPR),
    );
    m.status = Status::Preliminary;
    let e = write_observation(&m, &options)
        .expect_err("preliminary")
        .to_string();
    assert!(
        e.contains("Observation.status") && e.contains("final"),
        "{e}"
    );
}

#[test]
fn a_fut_submission_holds_one_patient_and_episode() {
    let catalog = Catalog::builtin();
    let national = national();
    let options = WriteOptions::new(catalog).with_national(&national);
    let kind = catalog.kind("heart-rate").expect("kind");
    let one = sample(kind, Identifier::cpr(CPR));
    let other = sample(kind, Identifier::cpr("0202709996"));
    // The builder writes under fut whatever profile the options name.
    let p = fut_submission(std::slice::from_ref(&one), &options).expect("one");
    assert_eq!(check_fut_submission(&p), vec![]);
    let bundle = &p["parameter"][0]["resource"];
    assert_eq!(bundle["type"], "transaction");
    assert_eq!(
        bundle["entry"][0]["fullUrl"],
        format!("urn:uuid:{}", one.id).as_str()
    );
    assert_eq!(bundle["entry"][0]["request"]["method"], "POST");
    let e = fut_submission(&[one, other], &options)
        .expect_err("two patients")
        .to_string();
    assert!(
        e.contains("entry[1]") && e.contains("one FUT patient"),
        "{e}"
    );
    assert!(fut_submission(&[], &options).is_err());
}

#[test]
fn fut_adds_to_a_passed_through_observation_and_replaces_the_subject() {
    let catalog = Catalog::builtin();
    let json = r#"{"resourceType": "Observation", "id": "w1", "status": "final",
      "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
      "subject": {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101709995"}},
      "note": [{"text": "after breakfast"}],
      "effectiveDateTime": "2024-03-31T08:15:00+02:00",
      "valueQuantity": {"value": 72.40, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}"#;
    let m = read_observation(json, &ReadOptions::new(catalog, "clinic"), None).expect("read");
    let national = national();
    let options = WriteOptions::new(catalog)
        .with_profile(Profile::Fut)
        .with_national(&national);
    let o = write_observation(&m, &options).expect("write");
    assert_eq!(check_fut_observation(&o), vec![]);
    assert_eq!(o["note"][0]["text"], "after breakfast");
    assert_eq!(o["id"], "w1");
    assert_eq!(
        o["subject"]["reference"],
        "https://patient.example.dk/fhir/Patient/76312"
    );
}

#[test]
fn pmd_writes_a_logical_subject_with_a_neutral_display_and_vkp_performers() {
    let catalog = Catalog::builtin();
    let national = national();
    let options = WriteOptions::new(catalog)
        .with_profile(Profile::Pmd)
        .with_national(&national);
    let weight = write_observation(
        &sample(
            catalog.kind("body-weight").expect("kind"),
            Identifier::fnr(FNR),
        ),
        &options,
    )
    .expect("write");
    assert_eq!(
        weight["meta"]["profile"],
        json!(["http://hl7.no/fhir/vkpobservation/StructureDefinition/vkp-Observation-Bodyweight"])
    );
    assert_eq!(
        weight["subject"],
        json!({"identifier": {"system": systems::FNR, "value": FNR}, "display": "Pasient"})
    );
    // The vital-sign profiles allow a Practitioner (FNR) performer only.
    assert_eq!(weight["performer"].as_array().map(Vec::len), Some(1));
    assert_eq!(weight["performer"][0]["identifier"]["system"], systems::FNR);
    let snomed: Vec<&str> = weight["code"]["coding"]
        .as_array()
        .expect("codings")
        .iter()
        .filter(|c| c["system"] == systems::SNOMED)
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert_eq!(snomed, vec!["27113001"]);
    // Glucose has no VKP profile of its own: the general one, with the organisation too.
    let glucose = write_observation(
        &sample(
            catalog.kind("blood-glucose").expect("kind"),
            Identifier::fnr(FNR),
        ),
        &options,
    )
    .expect("write");
    assert_eq!(
        glucose["meta"]["profile"],
        json!(["http://hl7.no/fhir/vkpobservation/StructureDefinition/vkp-Observation"])
    );
    assert_eq!(glucose["performer"][1]["identifier"]["system"], ORG_SYSTEM);
    assert_eq!(check_vkp_observation(&glucose), vec![]);
}

#[test]
fn pmd_without_settings_writes_defaults_and_needs_a_norwegian_identifier() {
    let catalog = Catalog::builtin();
    let options = WriteOptions::new(catalog).with_profile(Profile::Pmd);
    let kind = catalog.kind("heart-rate").expect("kind");
    let dnr = Identifier::new(systems::DNR, "41116900216");
    let o = write_observation(&sample(kind, dnr), &options).expect("write");
    assert_eq!(o["subject"]["display"], DEFAULT_SUBJECT_DISPLAY);
    assert!(o.get("performer").is_none());
    assert_eq!(check_vkp_observation(&o), vec![]);
    let e = write_observation(&sample(kind, Identifier::cpr(CPR)), &options)
        .expect_err("a CPR number")
        .to_string();
    assert!(
        e.contains("FNR, DNR or FHN") && e.contains("<10 chars redacted>"),
        "{e}"
    );
    assert!(!e.contains(CPR), "{e}");
}

#[test]
fn a_pmd_batch_has_a_unique_full_url_per_measurement() {
    let catalog = Catalog::builtin();
    let options = WriteOptions::new(catalog);
    let kind = catalog.kind("heart-rate").expect("kind");
    let a = sample(kind, Identifier::fnr(FNR));
    let b = Measurement::new(
        Provenance::new("home-monitor", "second"),
        a.subject.clone(),
        a.kind.clone(),
        a.value.clone(),
        a.effective,
    );
    assert_ne!(a.id, b.id);
    let bundle = pmd_bundle(&[a.clone(), b.clone()], &options).expect("batch");
    assert_eq!(check_pmd_bundle(&bundle), vec![]);
    assert_eq!(bundle["type"], "batch");
    assert_eq!(
        bundle["entry"][0]["fullUrl"],
        format!("urn:uuid:{}", a.id).as_str()
    );
    assert_eq!(
        bundle["entry"][1]["fullUrl"],
        format!("urn:uuid:{}", b.id).as_str()
    );
    assert_eq!(bundle["entry"][1]["request"]["method"], "POST");
    // A wrong organisation system in the settings is refused before anything is written.
    let national = National {
        fut: None,
        pmd: Some(PmdContext {
            organization: Some((Identifier::new("urn:oid:1.2.3", "1"), "X".into())),
            ..PmdContext::default()
        }),
    };
    let e = pmd_bundle(&[a], &options.with_national(&national))
        .expect_err("bad organisation")
        .to_string();
    assert!(e.contains("pmd.organization"), "{e}");
}

#[test]
fn exchange_profile_names_parse_and_vkp_is_pmd() {
    for &p in Profile::EXCHANGES {
        assert_eq!(p.as_str().parse::<Profile>().expect("parse"), p);
    }
    assert_eq!("vkp".parse::<Profile>().expect("alias"), Profile::Pmd);
    let e = "fu".parse::<Profile>().expect_err("unknown").to_string();
    assert!(e.contains("fut") && e.contains("pmd"), "{e}");
}
