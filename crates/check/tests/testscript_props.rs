//! Any mutation of a valid TestScript is either an error naming the script and what is wrong,
//! or a run (against a server that refuses connections): never a panic. FHIRPath is in play:
//! the mutated scripts hold expression asserts and variables, and mutations write bad FHIRPath.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use healthanalyzer_check::testscript::TestScript;
use healthanalyzer_check::{Runner, report};
use proptest::prelude::*;
use serde_json::{Value, json};

fn dir(folder: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testscripts")
        .join(folder)
}

/// The scripts mutated: every operation and assert kind, and FHIRPath (expression asserts and
/// variables, compareToSourceId).
const SCRIPTS: &[(&str, &str)] = &[("own", "server.json"), ("fhirpath", "fhirpath.json")];

/// Every JSON pointer in a value.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

fn mutate(v: &mut Value, pointer: &str, how: u8) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let Some(p) = v.pointer_mut(parent) else {
        return;
    };
    let replacement = match how {
        0 => None,
        1 => Some(Value::Null),
        2 => Some(json!(42)),
        3 => Some(json!("${nope} ${UUID} $${x} ${")),
        4 => Some(json!([])),
        5 => Some(json!({})),
        6 => Some(json!("Observation.where((( $this.is(Coding) or %x.ofType(")),
        7 => Some(json!("descendants().repeat(descendants()).count() > 'a'")),
        _ => Some(json!([{"x": []}])),
    };
    match (p, replacement) {
        (Value::Object(m), None) => {
            m.remove(key);
        }
        (Value::Object(m), Some(r)) => {
            m.insert(key.to_owned(), r);
        }
        (Value::Array(a), r) => {
            let i: usize = key.parse().unwrap();
            match r {
                None => {
                    a.remove(i);
                }
                Some(r) => a[i] = r,
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_script_is_an_error_or_a_run_never_a_panic(which in 0..SCRIPTS.len(), pick in any::<prop::sample::Index>(), how in 0u8..9) {
        let (folder, file) = SCRIPTS[which];
        let text = std::fs::read_to_string(dir(folder).join(file)).unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        let mut all = Vec::new();
        pointers(&v, String::new(), &mut all);
        let pointer = pick.get(&all).clone();
        mutate(&mut v, &pointer, how);
        match TestScript::from_value(v, "mutated.json") {
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("mutated.json") && msg.contains("TestScript"), "{msg}");
            }
            Ok(mut script) => {
                script.dir = Some(dir(folder));
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let ran = rt.block_on(async {
                    Runner::new("http://127.0.0.1:1/fhir").unwrap().run_testscripts(&[script]).await
                });
                prop_assert_eq!(ran.reports.len(), 1);
                prop_assert!(ran.reports[0]["result"].is_string());
                let _ = report::markdown(&ran.run);
                let _ = report::junit(&ran.run);
            }
        }
    }
}
