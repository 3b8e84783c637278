//! FHIR JSON to FHIR XML and back ([`json_to_xml`], [`xml_to_json`]): the HL7 R4 examples the
//! other tests read come back equal, and what is not FHIR is an error, never a panic.

mod common;

use std::path::Path;

use healthanalyzer_fhir::{Error, json_to_xml, xml_to_json};
use proptest::prelude::*;
use serde_json::Value;

/// Every `.json` example under the HL7 examples' `observation` and `patient` folders.
fn examples(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for sub in ["observation", "patient"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).expect("read");
            out.push((p.display().to_string(), text));
        }
    }
    out
}

/// The narrative's XHTML with its whitespace removed: the XML reader drops whitespace-only
/// text between XHTML elements (`</b> <span>`), which changes no rendering FHIR defines.
fn without_div_whitespace(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s) if k == "div" => s.retain(|c| !c.is_whitespace()),
                    _ => without_div_whitespace(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(without_div_whitespace),
        _ => {}
    }
}

fn round_trip(json: &str) -> Value {
    let xml = json_to_xml(json).expect("to XML");
    assert!(xml.contains("xmlns=\"http://hl7.org/fhir\""), "{xml}");
    serde_json::from_str(&xml_to_json(&xml).expect("back to JSON")).expect("JSON")
}

#[test]
fn hl7_examples_go_to_xml_and_back_unchanged() {
    let Some(dir) = common::hl7_examples("hl7_examples_go_to_xml_and_back_unchanged") else {
        return;
    };
    let all = examples(&dir);
    assert!(all.len() >= 14, "found only {} examples", all.len());
    for (name, text) in &all {
        let mut want: Value = serde_json::from_str(text).expect("JSON");
        let mut got = round_trip(text);
        without_div_whitespace(&mut want);
        without_div_whitespace(&mut got);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn a_small_resource_goes_to_xml_and_back_unchanged() {
    let json = r#"{"resourceType":"Observation","id":"o1","status":"final",
        "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
        "valueQuantity":{"value":72.50,"unit":"kg"},"_status":{"extension":[{"url":"http://x","valueString":"y"}]}}"#;
    let want: Value = serde_json::from_str(json).unwrap();
    let xml = json_to_xml(json).unwrap();
    assert!(xml.contains(r#"<code value="29463-7"/>"#), "{xml}");
    assert_eq!(round_trip(json), want);
}

#[test]
fn what_is_not_fhir_json_is_an_error() {
    for bad in [
        "",
        "[]",
        "{",
        r#"{"id":"no type"}"#,
        r#"{"resourceType":"Patient","nonsense":1}"#,
    ] {
        assert!(
            matches!(json_to_xml(bad), Err(Error::Structure { .. })),
            "{bad}"
        );
    }
    let deep = format!(
        r#"{{"resourceType":"Patient","extension":{}{}}}"#,
        "[{\"extension\":".repeat(200),
        "[]}]".repeat(200)
    );
    assert!(matches!(json_to_xml(&deep), Err(Error::TooLarge { .. })));
    let big = format!(
        r#"{{"resourceType":"Patient","id":"{}"}}"#,
        "a".repeat(5 * 1024 * 1024)
    );
    assert!(matches!(json_to_xml(&big), Err(Error::TooLarge { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any text is XML or an error, never a panic.
    #[test]
    fn any_text_is_converted_or_refused(text in ".{0,200}") {
        let _ = json_to_xml(&text);
        let _ = xml_to_json(&text);
    }

    /// A Patient with arbitrary strings in its primitives comes back unchanged.
    #[test]
    fn patients_with_any_strings_round_trip(
        family in "[^\u{0}-\u{1f}]{1,40}",
        given in proptest::collection::vec("[a-zA-Z<>&\"' ]{1,12}", 1..4),
        active in any::<bool>(),
    ) {
        let p = serde_json::json!({
            "resourceType": "Patient",
            "active": active,
            "name": [{"family": family, "given": given}],
        });
        let text = p.to_string();
        prop_assert_eq!(round_trip(&text), p);
    }
}
