//! The national profile rules (`healthanalyzer_fhir::rules`): one test per rule. Each test starts
//! from a resource that keeps every rule (asserted first), breaks exactly that rule, and
//! asserts the one violation reported: its rule name and location.

use healthanalyzer_fhir::rules::{
    EHEALTH_OBSERVATION_PROFILE, EPISODE_OF_CARE_EXTENSION, ORG_SYSTEM, PMD_BUNDLE_PROFILE,
    RESOLVED_TIMING_EXTENSION, RESOLVED_TIMING_TYPE_SYSTEM, Violation, check_fut_observation,
    check_fut_submission, check_nl_core_observation, check_pmd_bundle, check_vkp_observation,
};
use proptest::prelude::*;
use serde_json::{Value as Json, json};

const FNR: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
/// A made-up Norwegian number (the IG's example value): no message may quote it.
const FNR_VALUE: &str = "05073500186";
const VKP_SD: &str = "http://hl7.no/fhir/vkpobservation/StructureDefinition/";
const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

type Check = fn(&Json) -> Vec<Violation>;

/// Asserts `base` passes `check`, applies `mutate`, and asserts exactly one violation of `rule`
/// at `location`.
#[track_caller]
fn broken(base: Json, check: Check, mutate: impl FnOnce(&mut Json), rule: &str, location: &str) {
    let before = check(&base);
    assert!(
        before.is_empty(),
        "the base resource must pass: {before:#?}"
    );
    let mut r = base;
    mutate(&mut r);
    let v = check(&r);
    assert_eq!(v.len(), 1, "expected exactly one violation: {v:#?}");
    assert_eq!(v[0].rule, rule, "{v:#?}");
    assert_eq!(v[0].location, location, "{v:#?}");
    assert!(!v[0].message.is_empty());
}

fn remove_at(v: &mut Json, i: usize) {
    if let Some(a) = v.as_array_mut() {
        a.remove(i);
    }
}

fn push(v: &mut Json, item: Json) {
    if let Some(a) = v.as_array_mut() {
        a.push(item);
    }
}

fn remove(r: &mut Json, key: &str) {
    if let Some(o) = r.as_object_mut() {
        o.remove(key);
    }
}

// --- FUT ehealth-observation -------------------------------------------------------------------

fn fut_observation() -> Json {
    json!({
        "resourceType": "Observation",
        "meta": {"profile": [EHEALTH_OBSERVATION_PROFILE]},
        "extension": [
            {"url": EPISODE_OF_CARE_EXTENSION,
             "valueReference": {"reference": "https://careplan.example.dk/fhir/EpisodeOfCare/39765"}},
            {"url": RESOLVED_TIMING_EXTENSION, "extension": [
                {"url": "serviceRequestVersionId", "valueId": "42"},
                {"url": "type", "valueCodeableConcept": {"coding": [
                    {"system": RESOLVED_TIMING_TYPE_SYSTEM, "code": "Adhoc"}]}}]}
        ],
        "status": "final",
        "basedOn": [{"reference": "https://careplan.example.dk/fhir/ServiceRequest/37067"}],
        "code": {"coding": [{"system": "urn:oid:1.2.208.176.2.1", "code": "NPU03804"}]},
        "subject": {"reference": "https://patient.example.dk/fhir/Patient/76312"},
        "effectiveDateTime": "2025-02-06T14:40:50+00:00",
        "performer": [{"reference": "https://patient.example.dk/fhir/Patient/76312"}],
        "valueQuantity": {"value": 72.4, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    })
}

#[test]
fn fut_resource_type() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| r["resourceType"] = json!("Media"),
        "ehealth-observation.resourceType",
        "Observation",
    );
}

#[test]
fn fut_meta_profile() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| remove(r, "meta"),
        "ehealth-observation.meta.profile",
        "Observation.meta.profile",
    );
}

#[test]
fn fut_status() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| remove(r, "status"),
        "ehealth-observation.status",
        "Observation.status",
    );
}

#[test]
fn fut_based_on_missing() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| remove(r, "basedOn"),
        "ehealth-observation.basedOn",
        "Observation.basedOn",
    );
}

#[test]
fn fut_based_on_not_a_service_request() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| r["basedOn"][0]["reference"] = json!("https://careplan.example.dk/fhir/CarePlan/1"),
        "ehealth-observation.basedOn",
        "Observation.basedOn[0].reference",
    );
}

#[test]
fn fut_based_on_two() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| {
            r["basedOn"] =
                json!([{"reference": "ServiceRequest/1"}, {"reference": "ServiceRequest/2"}])
        },
        "ehealth-observation.basedOn",
        "Observation.basedOn",
    );
}

#[test]
fn fut_subject_logical() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| {
            r["subject"] =
                json!({"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101701234"}})
        },
        "ehealth-observation.subject",
        "Observation.subject.reference",
    );
}

#[test]
fn fut_effective() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| remove(r, "effectiveDateTime"),
        "ehealth-observation.effective",
        "Observation.effective[x]",
    );
}

#[test]
fn fut_performer() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| remove(r, "performer"),
        "ehealth-observation.performer",
        "Observation.performer",
    );
}

#[test]
fn fut_code() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| {
            r["code"] =
                json!({"coding": [{"system": "http://snomed.info/sct", "code": "27113001"}]})
        },
        "ehealth-observation.code",
        "Observation.code",
    );
}

#[test]
fn fut_value() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| {
            remove(r, "valueQuantity");
            r["valueString"] = json!("72.4 kg");
        },
        "ehealth-observation.value",
        "Observation.value[x]",
    );
}

#[test]
fn fut_episode_of_care_missing() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| {
            remove_at(&mut r["extension"], 0);
        },
        "ehealth-observation.extension.episodeOfCare",
        "Observation.extension",
    );
}

#[test]
fn fut_episode_of_care_wrong_target() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| r["extension"][0]["valueReference"]["reference"] = json!("Encounter/1"),
        "ehealth-observation.extension.episodeOfCare",
        "Observation.extension[0].valueReference",
    );
}

#[test]
fn fut_resolved_timing() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| {
            remove_at(&mut r["extension"], 1);
        },
        "ehealth-observation.extension.resolvedTiming",
        "Observation.extension",
    );
}

#[test]
fn fut_resolved_timing_version() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| {
            remove_at(&mut r["extension"][1]["extension"], 0);
        },
        "ehealth-resolved-timing.serviceRequestVersionId",
        "Observation.extension[1].extension",
    );
}

#[test]
fn fut_resolved_timing_type() {
    broken(
        fut_observation(),
        check_fut_observation,
        |r| {
            r["extension"][1]["extension"][1]["valueCodeableConcept"]["coding"][0]["code"] =
                json!("Sometime")
        },
        "ehealth-resolved-timing.type",
        "Observation.extension[1].extension",
    );
}

// --- FUT $submit-measurement -------------------------------------------------------------------

fn submission() -> Json {
    let mut second = fut_observation();
    second["code"] = json!({"coding": [{"system": "urn:oid:1.2.208.176.2.1", "code": "NPU21692"}]});
    json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "measurement", "resource": {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"fullUrl": "urn:uuid:d6b354bf-5561-4308-a1a3-63d5324fdfc1",
                 "resource": fut_observation(),
                 "request": {"method": "POST", "url": "Observation"}},
                {"fullUrl": "urn:uuid:d6b354bf-5561-4308-a1a3-63d5324fdfc2",
                 "resource": second,
                 "request": {"method": "POST", "url": "Observation"}},
                {"fullUrl": "urn:uuid:d6b354bf-5561-4308-a1a3-63d5324fdfc3",
                 "resource": {"resourceType": "Provenance",
                   "target": [{"reference": "urn:uuid:d6b354bf-5561-4308-a1a3-63d5324fdfc1"}]},
                 "request": {"method": "POST", "url": "Provenance"}}
            ]
        }}]
    })
}

const B: &str = "Parameters.parameter[0].resource";

fn bundle_of(p: &mut Json) -> &mut Json {
    &mut p["parameter"][0]["resource"]
}

#[test]
fn submission_parameter() {
    broken(
        submission(),
        check_fut_submission,
        |p| p["parameter"][0]["name"] = json!("measurements"),
        "fut-submission.parameter",
        "Parameters.parameter",
    );
}

#[test]
fn submission_bare_bundle_is_accepted() {
    let bundle = submission()["parameter"][0]["resource"].clone();
    assert!(check_fut_submission(&bundle).is_empty());
    let mut bad = bundle;
    bad["type"] = json!("batch");
    let v = check_fut_submission(&bad);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(
        (v[0].rule, v[0].location.as_str()),
        ("fut-submission.type", "Bundle.type")
    );
}

#[test]
fn submission_type() {
    broken(
        submission(),
        check_fut_submission,
        |p| bundle_of(p)["type"] = json!("batch"),
        "fut-submission.type",
        &format!("{B}.type"),
    );
}

#[test]
fn submission_entry() {
    broken(
        submission(),
        check_fut_submission,
        |p| bundle_of(p)["entry"] = json!([]),
        "fut-submission.entry",
        &format!("{B}.entry"),
    );
}

#[test]
fn submission_entry_resource() {
    broken(
        submission(),
        check_fut_submission,
        |p| bundle_of(p)["entry"][2]["resource"] = json!({"resourceType": "Patient"}),
        "fut-submission.entry.resource",
        &format!("{B}.entry[2].resource"),
    );
}

#[test]
fn submission_entry_full_url() {
    broken(
        submission(),
        check_fut_submission,
        |p| remove(&mut bundle_of(p)["entry"][1], "fullUrl"),
        "fut-submission.entry.fullUrl",
        &format!("{B}.entry[1].fullUrl"),
    );
}

#[test]
fn submission_entry_request() {
    broken(
        submission(),
        check_fut_submission,
        |p| bundle_of(p)["entry"][0]["request"]["method"] = json!("PUT"),
        "fut-submission.entry.request",
        &format!("{B}.entry[0].request"),
    );
}

#[test]
fn submission_status() {
    broken(
        submission(),
        check_fut_submission,
        |p| bundle_of(p)["entry"][1]["resource"]["status"] = json!("preliminary"),
        "fut-submission.status",
        &format!("{B}.entry[1].resource.status"),
    );
}

#[test]
fn submission_patient() {
    broken(
        submission(),
        check_fut_submission,
        |p| {
            let r = &mut bundle_of(p)["entry"][1]["resource"];
            r["subject"]["reference"] = json!("https://patient.example.dk/fhir/Patient/2");
        },
        "fut-submission.patient",
        &format!("{B}.entry[1].resource.subject"),
    );
}

#[test]
fn submission_episode_of_care() {
    broken(
        submission(),
        check_fut_submission,
        |p| {
            let r = &mut bundle_of(p)["entry"][1]["resource"];
            r["extension"][0]["valueReference"]["reference"] =
                json!("https://careplan.example.dk/fhir/EpisodeOfCare/2");
        },
        "fut-submission.episodeOfCare",
        &format!("{B}.entry[1].resource.extension"),
    );
}

#[test]
fn submission_checks_each_observation() {
    broken(
        submission(),
        check_fut_submission,
        |p| remove(&mut bundle_of(p)["entry"][1]["resource"], "basedOn"),
        "ehealth-observation.basedOn",
        &format!("{B}.entry[1].resource.basedOn"),
    );
}

// --- VKP Observation ---------------------------------------------------------------------------

fn vkp_weight() -> Json {
    json!({
        "resourceType": "Observation",
        "meta": {"profile": [format!("{VKP_SD}vkp-Observation-Bodyweight")]},
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [
            {"system": "http://loinc.org", "code": "29463-7"},
            {"system": "http://snomed.info/sct", "code": "27113001"}]},
        "subject": {"identifier": {"system": FNR, "value": FNR_VALUE}, "display": "Pasient"},
        "effectiveDateTime": "2024-03-31T08:15:00+02:00",
        "performer": [{"identifier": {"system": FNR, "value": "13116900216"}, "display": "Helsepersonell"}],
        "valueQuantity": {"value": 72.4, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    })
}

fn vkp_news2() -> Json {
    json!({
        "resourceType": "Observation",
        "meta": {"profile": [format!("{VKP_SD}vkp-Observation-NEWS2score")]},
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1104051000000101"}]},
        "subject": {"identifier": {"system": FNR, "value": FNR_VALUE}, "display": "Pasient"},
        "effectiveDateTime": "2024-03-31T08:15:00+02:00",
        "performer": [{"identifier": {"system": ORG_SYSTEM, "value": "974589095"}, "display": "Sykehus"}],
        "valueInteger": 3
    })
}

#[test]
fn vkp_resource_type() {
    broken(
        vkp_weight(),
        check_vkp_observation,
        |r| r["resourceType"] = json!("Patient"),
        "vkp-observation.resourceType",
        "Observation",
    );
}

#[test]
fn vkp_subject_missing() {
    broken(
        vkp_weight(),
        check_vkp_observation,
        |r| remove(r, "subject"),
        "vkp-observation.subject",
        "Observation.subject",
    );
}

#[test]
fn vkp_subject_literal_reference() {
    broken(
        vkp_weight(),
        check_vkp_observation,
        |r| r["subject"] = json!({"reference": "Patient/1", "display": "Pasient"}),
        "vkp-observation.subject",
        "Observation.subject.identifier",
    );
}

#[test]
fn vkp_subject_system() {
    broken(
        vkp_weight(),
        check_vkp_observation,
        |r| r["subject"]["identifier"]["system"] = json!("urn:oid:1.2.208.176.1.2"),
        "vkp-observation.subject.identifier.system",
        "Observation.subject.identifier.system",
    );
}

#[test]
fn vkp_subject_dnr_and_fhn_are_allowed() {
    for system in [
        "urn:oid:2.16.578.1.12.4.1.4.2",
        "urn:oid:2.16.578.1.12.4.1.4.3",
    ] {
        let mut r = vkp_weight();
        r["subject"]["identifier"]["system"] = json!(system);
        assert_eq!(check_vkp_observation(&r), vec![]);
    }
}

#[test]
fn vkp_subject_display() {
    broken(
        vkp_weight(),
        check_vkp_observation,
        |r| remove(&mut r["subject"], "display"),
        "vkp-observation.subject.display",
        "Observation.subject.display",
    );
}

#[test]
fn vkp_performer_organisation_under_a_vital_sign_profile() {
    broken(
        vkp_weight(),
        check_vkp_observation,
        |r| {
            push(
                &mut r["performer"],
                json!({"identifier": {"system": ORG_SYSTEM, "value": "974589095"}}),
            );
        },
        "vkp-observation.performer",
        "Observation.performer[1].identifier",
    );
}

#[test]
fn vkp_performer_unknown_system() {
    broken(
        vkp_news2(),
        check_vkp_observation,
        |r| r["performer"][0]["identifier"]["system"] = json!("urn:oid:1.2.3"),
        "vkp-observation.performer",
        "Observation.performer[0].identifier",
    );
}

#[test]
fn vkp_performer_resh_is_an_organisation() {
    let mut r = vkp_news2();
    r["performer"][0]["identifier"]["system"] = json!("urn:oid:2.16.578.1.12.4.1.4.102");
    assert_eq!(check_vkp_observation(&r), vec![]);
}

#[test]
fn vkp_code_loinc() {
    broken(
        vkp_weight(),
        check_vkp_observation,
        |r| {
            remove_at(&mut r["code"]["coding"], 0);
        },
        "vkp-observation.code.loinc",
        "Observation.code.coding",
    );
}

#[test]
fn vkp_code_sct() {
    broken(
        vkp_news2(),
        check_vkp_observation,
        |r| r["code"]["coding"][0]["code"] = json!("1104301000000104"),
        "vkp-observation.code.sct",
        "Observation.code.coding",
    );
}

#[test]
fn vkp_category() {
    broken(
        vkp_weight(),
        check_vkp_observation,
        |r| remove(r, "category"),
        "vkp-observation.category",
        "Observation.category",
    );
}

#[test]
fn vkp_effective() {
    broken(
        vkp_weight(),
        check_vkp_observation,
        |r| remove(r, "effectiveDateTime"),
        "vkp-observation.effective",
        "Observation.effective[x]",
    );
}

// --- PMD batch ---------------------------------------------------------------------------------

fn pmd_bundle() -> Json {
    let mut second = vkp_weight();
    second["valueQuantity"]["value"] = json!(73.0);
    json!({
        "resourceType": "Bundle",
        "meta": {"profile": [PMD_BUNDLE_PROFILE]},
        "type": "batch",
        "entry": [
            {"fullUrl": "urn:uuid:7f0c7d0e-0000-4000-8000-000000000001", "resource": vkp_weight(),
             "request": {"method": "POST", "url": "Observation"}},
            {"fullUrl": "urn:uuid:7f0c7d0e-0000-4000-8000-000000000002", "resource": second,
             "request": {"method": "PUT", "url": "Observation/2"}}
        ]
    })
}

#[test]
fn pmd_resource_type() {
    broken(
        pmd_bundle(),
        check_pmd_bundle,
        |b| b["resourceType"] = json!("Parameters"),
        "pmd-bundle.resourceType",
        "Bundle",
    );
}

#[test]
fn pmd_type() {
    broken(
        pmd_bundle(),
        check_pmd_bundle,
        |b| b["type"] = json!("transaction"),
        "pmd-bundle.type",
        "Bundle.type",
    );
}

#[test]
fn pmd_entry_resource() {
    broken(
        pmd_bundle(),
        check_pmd_bundle,
        |b| b["entry"][1]["resource"] = json!({"resourceType": "Patient"}),
        "pmd-bundle.entry.resource",
        "Bundle.entry[1].resource",
    );
}

#[test]
fn pmd_entry_full_url_missing() {
    broken(
        pmd_bundle(),
        check_pmd_bundle,
        |b| remove(&mut b["entry"][0], "fullUrl"),
        "pmd-bundle.entry.fullUrl",
        "Bundle.entry[0].fullUrl",
    );
}

#[test]
fn pmd_entry_full_url_duplicate() {
    broken(
        pmd_bundle(),
        check_pmd_bundle,
        |b| b["entry"][1]["fullUrl"] = b["entry"][0]["fullUrl"].clone(),
        "pmd-bundle.entry.fullUrl",
        "Bundle.entry[1].fullUrl",
    );
}

#[test]
fn pmd_entry_request() {
    broken(
        pmd_bundle(),
        check_pmd_bundle,
        |b| b["entry"][1]["request"]["method"] = json!("DELETE"),
        "pmd-bundle.entry.request",
        "Bundle.entry[1].request.method",
    );
}

#[test]
fn pmd_checks_each_observation() {
    broken(
        pmd_bundle(),
        check_pmd_bundle,
        |b| b["entry"][1]["resource"]["subject"]["identifier"]["system"] = json!("urn:oid:1.2.3"),
        "vkp-observation.subject.identifier.system",
        "Bundle.entry[1].resource.subject.identifier.system",
    );
}

// --- nl-core -----------------------------------------------------------------------------------

fn nl_bp() -> Json {
    json!({
        "resourceType": "Observation",
        "meta": {"profile": ["http://nictiz.nl/fhir/StructureDefinition/nl-core-BloodPressure"]},
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-31T08:15:00+02:00",
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
        ]
    })
}

fn nl_temperature() -> Json {
    json!({
        "resourceType": "Observation",
        "meta": {"profile": ["http://nictiz.nl/fhir/StructureDefinition/nl-core-BodyTemperature"]},
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-31T08:15:00+02:00",
        "valueQuantity": {"value": 37.2, "unit": "°C", "system": "http://unitsofmeasure.org", "code": "Cel"}
    })
}

#[test]
fn nl_resource_type() {
    broken(
        nl_bp(),
        check_nl_core_observation,
        |r| r["resourceType"] = json!("Condition"),
        "nl-core.resourceType",
        "Observation",
    );
}

#[test]
fn nl_meta_profile() {
    broken(
        nl_bp(),
        check_nl_core_observation,
        |r| remove(r, "meta"),
        "nl-core.meta.profile",
        "Observation.meta.profile",
    );
}

#[test]
fn nl_category() {
    broken(
        nl_bp(),
        check_nl_core_observation,
        |r| r["category"][0]["coding"][0]["code"] = json!("laboratory"),
        "nl-core.category",
        "Observation.category",
    );
}

#[test]
fn nl_code() {
    broken(
        nl_bp(),
        check_nl_core_observation,
        |r| r["code"]["coding"][0]["code"] = json!("55284-4"),
        "nl-core.code",
        "Observation.code",
    );
}

#[test]
fn nl_code_o2_saturation_needs_both_codes() {
    let mut r = nl_temperature();
    r["meta"]["profile"][0] =
        json!("http://nictiz.nl/fhir/StructureDefinition/nl-core-O2Saturation");
    r["code"] = json!({"coding": [{"system": "http://loinc.org", "code": "2708-6"},
                                  {"system": "http://loinc.org", "code": "59408-5"}]});
    r["valueQuantity"] =
        json!({"value": 97, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"});
    broken(
        r,
        check_nl_core_observation,
        |r| {
            remove_at(&mut r["code"]["coding"], 1);
        },
        "nl-core.code",
        "Observation.code",
    );
}

#[test]
fn nl_subject() {
    broken(
        nl_bp(),
        check_nl_core_observation,
        |r| remove(r, "subject"),
        "nl-core.subject",
        "Observation.subject",
    );
}

#[test]
fn nl_effective() {
    broken(
        nl_bp(),
        check_nl_core_observation,
        |r| remove(r, "effectiveDateTime"),
        "nl-core.effective",
        "Observation.effective[x]",
    );
}

#[test]
fn nl_value_unit() {
    broken(
        nl_temperature(),
        check_nl_core_observation,
        |r| r["valueQuantity"]["code"] = json!("[degF]"),
        "nl-core.value.unit",
        "Observation.valueQuantity",
    );
}

#[test]
fn nl_component_missing() {
    broken(
        nl_bp(),
        check_nl_core_observation,
        |r| {
            remove_at(&mut r["component"], 1);
        },
        "nl-core.component",
        "Observation.component",
    );
}

#[test]
fn nl_component_unit() {
    broken(
        nl_bp(),
        check_nl_core_observation,
        |r| r["component"][0]["valueQuantity"]["code"] = json!("kPa"),
        "nl-core.component",
        "Observation.component[0].valueQuantity",
    );
}

// --- across the checks -------------------------------------------------------------------------

#[test]
fn messages_never_quote_identifier_values() {
    // Every Observation check on inputs that break many rules around an FNR subject.
    let mut broken_vkp = vkp_weight();
    broken_vkp["subject"]["identifier"]["system"] = json!("urn:oid:9.9");
    remove(&mut broken_vkp["subject"], "display");
    broken_vkp["performer"] = json!([{"identifier": {"system": "urn:x", "value": FNR_VALUE}}]);
    let mut fut = fut_observation();
    fut["subject"] =
        json!({"identifier": {"system": FNR, "value": FNR_VALUE}, "display": FNR_VALUE});
    fut["basedOn"] = json!([{"reference": FNR_VALUE}]);
    let mut bundle = pmd_bundle();
    bundle["entry"][0]["fullUrl"] = json!(FNR_VALUE);
    bundle["entry"][1]["fullUrl"] = json!(FNR_VALUE);
    bundle["entry"][1]["resource"] = broken_vkp.clone();
    let mut all = Vec::new();
    all.extend(check_vkp_observation(&broken_vkp));
    all.extend(check_fut_observation(&fut));
    all.extend(check_fut_observation(&broken_vkp));
    all.extend(check_nl_core_observation(&broken_vkp));
    all.extend(check_pmd_bundle(&bundle));
    all.extend(check_fut_submission(
        &json!({"resourceType": "Parameters", "parameter": [
        {"name": "measurement", "resource": {"resourceType": "Bundle", "type": "transaction",
         "entry": [{"fullUrl": FNR_VALUE, "resource": fut}]}}]}),
    ));
    assert!(all.len() >= 15, "the inputs break many rules: {all:#?}");
    for v in &all {
        assert!(!v.message.contains(FNR_VALUE), "{v:?}");
        assert!(!v.location.contains(FNR_VALUE), "{v:?}");
        assert!(!v.to_string().contains(FNR_VALUE), "{v:?}");
    }
}

#[test]
fn non_objects_are_violations_not_panics() {
    for input in [
        json!(null),
        json!([]),
        json!("Observation"),
        json!(7),
        json!({}),
    ] {
        assert_eq!(
            check_fut_observation(&input)[0].rule,
            "ehealth-observation.resourceType"
        );
        assert_eq!(
            check_vkp_observation(&input)[0].rule,
            "vkp-observation.resourceType"
        );
        assert_eq!(
            check_nl_core_observation(&input)[0].rule,
            "nl-core.resourceType"
        );
        assert_eq!(check_pmd_bundle(&input)[0].rule, "pmd-bundle.resourceType");
        assert_eq!(
            check_fut_submission(&input)[0].rule,
            "fut-submission.parameter"
        );
    }
}

/// JSON values whose object keys come mostly from the names the checks look at, so that the
/// walk goes deep.
fn json_value() -> impl Strategy<Value = Json> {
    let key = prop::sample::select(vec![
        "resourceType",
        "type",
        "entry",
        "resource",
        "fullUrl",
        "request",
        "method",
        "url",
        "parameter",
        "name",
        "meta",
        "profile",
        "extension",
        "valueReference",
        "reference",
        "valueId",
        "valueCodeableConcept",
        "coding",
        "system",
        "code",
        "subject",
        "identifier",
        "value",
        "display",
        "performer",
        "basedOn",
        "status",
        "category",
        "component",
        "valueQuantity",
        "effectiveDateTime",
        "valueString",
        "dataAbsentReason",
    ])
    .prop_map(str::to_string);
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "Observation",
            "Bundle",
            "Parameters",
            "batch",
            "transaction",
            "POST",
            "PUT",
            "measurement",
            "final",
            "vital-signs",
            "Patient/1",
            "ServiceRequest/2",
            "EpisodeOfCare/3",
            "http://loinc.org",
            "urn:oid:2.16.578.1.12.4.1.4.1",
            EPISODE_OF_CARE_EXTENSION,
            RESOLVED_TIMING_EXTENSION,
            EHEALTH_OBSERVATION_PROFILE,
            "/_history/",
            "",
            "/",
            "a/b/_history",
        ])
        .prop_map(|s| json!(s)),
        ".*".prop_map(Json::String),
    ];
    leaf.prop_recursive(6, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Json::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_json_gives_violations_or_none_never_a_panic(v in json_value()) {
        for check in [
            check_fut_observation as Check,
            check_fut_submission,
            check_vkp_observation,
            check_pmd_bundle,
            check_nl_core_observation,
        ] {
            for violation in check(&v) {
                prop_assert!(!violation.rule.is_empty());
                prop_assert!(!violation.location.is_empty());
                prop_assert!(!violation.message.is_empty());
            }
        }
    }
}
