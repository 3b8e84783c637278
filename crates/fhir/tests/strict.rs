//! The strict fhirbolt path accepts valid resources and refuses bad ones without panicking or
//! hanging, including the inputs a spike found to break fhirbolt.

use healthanalyzer_fhir::check_strict;
use serde_json::json;

fn base() -> serde_json::Value {
    json!({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-31T08:15:00+02:00",
        "valueQuantity": {"value": 61, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

#[test]
fn a_valid_observation_passes() {
    check_strict(&base().to_string()).expect("valid");
}

#[test]
fn an_empty_array_is_an_error_not_a_panic() {
    let mut v = base();
    v["performer"] = json!([]);
    let e = check_strict(&v.to_string()).expect_err("empty array");
    assert_eq!(e.issue_code(), "structure");
}

#[test]
fn an_unknown_array_of_objects_is_refused_without_hanging() {
    let mut v = base();
    v["x"] = json!([{"a": 1}]);
    check_strict(&v.to_string()).expect_err("unknown element");
}

#[test]
fn wrong_types_are_refused() {
    for (k, bad) in [("status", json!(7)), ("code", json!("8867-4"))] {
        let mut v = base();
        v[k] = bad;
        check_strict(&v.to_string()).expect_err(k);
    }
    // fhirbolt alone accepts an array where one object belongs (`"subject": [{…}]`) and an
    // object where an array belongs (`"coding": {…}`); check_strict holds an Observation to the
    // mapping's structure as well, so both are refused, by every entry point alike.
    let mut v = base();
    v["subject"] = json!([{"reference": "Patient/p1"}]);
    let e = check_strict(&v.to_string()).expect_err("an array for one object");
    assert_eq!(e.issue_code(), "structure");
    let mut v = base();
    v["code"]["coding"] = json!({"system": "http://loinc.org", "code": "8867-4"});
    check_strict(&v.to_string()).expect_err("an object for an array");
    check_strict("{").expect_err("truncated");
    check_strict("{\"resourceType\": \"NoSuchThing\"}").expect_err("unknown type");
}
