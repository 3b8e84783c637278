//! The fast strict walk (`r4check::fast_check`) never accepts what fhirbolt's Strict mode
//! refuses, and `check_strict` gives fhirbolt's verdict: over every HL7 R4 example and over
//! mutations of valid Observations, Patients and Bundles (elements removed, renamed, retyped,
//! repeated, arrays for single values and back, wrong primitives, unknown fields, `_element`
//! companions, empty arrays, nulls), nested in components, extensions and contained resources.

mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use healthanalyzer_fhir::check_strict;
use healthanalyzer_fhir::r4check::{Verdict, fast_check, fhirbolt_check};
use proptest::prelude::*;
use serde_json::{Value, json};

/// fhirbolt's verdict, the fast walk's, and check_strict's must agree for `text`.
fn agree(text: &str) -> Result<(), String> {
    let fhirbolt = fhirbolt_check(text);
    let fast = fast_check(text);
    let strict = check_strict(text);
    if let Verdict::Valid(t) = fast
        && let Err(e) = &fhirbolt
    {
        return Err(format!(
            "fast walk accepts a {t} fhirbolt refuses ({e}): {text}"
        ));
    }
    let observation = serde_json::from_str::<Value>(text)
        .ok()
        .is_some_and(|v| v["resourceType"] == "Observation");
    match (&fhirbolt, &strict) {
        (Err(_), Ok(())) => Err(format!(
            "check_strict accepts what fhirbolt refuses: {text}"
        )),
        // check_strict holds an Observation to the mapping's structure as well.
        (Ok(()), Err(e)) if !observation => Err(format!(
            "check_strict refuses ({e}) what fhirbolt accepts: {text}"
        )),
        _ => Ok(()),
    }
}

fn json_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

#[test]
fn every_hl7_example_gets_fhirbolts_verdict() {
    let Some(dir) = common::hl7_examples("every_hl7_example_gets_fhirbolts_verdict") else {
        return;
    };
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    files.sort();
    assert!(files.len() >= 100, "found only {} examples", files.len());
    let (mut accepted, mut fast) = (0, 0);
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        if let Err(e) = agree(&text) {
            failures.push(format!("{}: {}", f.display(), &e[..e.len().min(300)]));
        }
        if fhirbolt_check(&text).is_ok() {
            accepted += 1;
        }
        if matches!(fast_check(&text), Verdict::Valid(_)) {
            fast += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The walk decides most of them itself (the rest use `_element` companions and the like).
    assert!(
        fast * 10 >= accepted * 5,
        "the walk decided only {fast} of the {accepted} examples fhirbolt accepts"
    );
    let _ = writeln!(
        std::io::stderr(),
        "{} examples: fhirbolt accepts {accepted}, the fast walk decides {fast}",
        files.len()
    );
}

fn observation() -> Value {
    json!({
        "resourceType": "Observation", "id": "bp-1",
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"], "lastUpdated": "2024-05-01T07:31:00Z"},
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"}],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure"}], "text": "BP"},
        "subject": {"reference": "#p1", "display": "someone"},
        "effectiveDateTime": "2024-05-01T07:31:00+02:00",
        "issued": "2024-05-01T07:32:00+02:00",
        "performer": [{"identifier": {"system": "urn:oid:1.2.3", "value": "x"}}],
        "device": {"display": "Omron M7"},
        "extension": [{"url": "http://example.org/a", "valueString": "s"},
                      {"url": "http://example.org/b", "extension": [{"url": "c", "valueInteger": 3}, {"url": "d", "valueBoolean": true}]}],
        "note": [{"text": "calm"}],
        "contained": [{"resourceType": "Patient", "id": "p1", "gender": "female", "active": true}],
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 120.5, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
             "interpretation": [{"text": "normal"}],
             "referenceRange": [{"low": {"value": 90, "unit": "mmHg"}, "high": {"value": 140}, "text": "ok"}]},
            {"code": {"text": "dia"}, "valueInteger": 80,
             "extension": [{"url": "http://example.org/c", "valueCodeableConcept": {"text": "t"}}]}
        ]
    })
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient", "id": "p1",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">p</div>"},
        "identifier": [{"use": "official", "system": "urn:oid:1.2.208.176.1.2", "value": "0101701234",
                        "period": {"start": "2020-01-01"}}],
        "active": true,
        "name": [{"use": "official", "family": "Jensen", "given": ["Anna", "Marie"],
                  "_given": [null, {"id": "g2", "extension": [{"url": "http://example.org/g", "valueCode": "x"}]}]}],
        "telecom": [{"system": "phone", "value": "+45 1234", "rank": 1}],
        "gender": "female", "birthDate": "1970-01-01", "deceasedBoolean": false,
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                      "valueDateTime": "1970-01-01T10:00:00+01:00"}]},
        "address": [{"line": ["Vej 1"], "city": "Aarhus", "postalCode": "8000", "country": "DK"}],
        "multipleBirthInteger": 2,
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "da"}]}, "preferred": true}],
        "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}],
        "extension": [{"url": "http://example.org/x", "valueQuantity": {"value": 1.5, "code": "kg"}}]
    })
}

fn bundle() -> Value {
    json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:1", "resource": patient()}, {"resource": observation()}]
    })
}

/// Every node of a JSON tree, as a path of keys and indices.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn nodes(v: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(path.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                path.push(Step::Key(k.clone()));
                nodes(c, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                path.push(Step::Index(i));
                nodes(c, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    let mut v = v;
    for s in path {
        v = match s {
            Step::Key(k) => &mut v[k.as_str()],
            Step::Index(i) => &mut v[*i],
        };
    }
    v
}

/// Element names to rename to or add: known ones in the wrong place, choices, companions.
const NAMES: &[&str] = &[
    "status",
    "code",
    "value",
    "valueString",
    "valueQuantity",
    "valueInteger",
    "valueBoolean",
    "system",
    "unit",
    "url",
    "extension",
    "modifierExtension",
    "id",
    "_status",
    "_value",
    "_given",
    "resourceType",
    "text",
    "coding",
    "display",
    "subject",
    "component",
    "contained",
    "effectivePeriod",
    "effectiveInstant",
    "given",
    "family",
    "gender",
    "birthDate",
    "active",
    "deceasedDateTime",
    "multipleBirthBoolean",
    "rank",
    "preferred",
    "foo",
    "",
    "Status",
    "reference",
    "meta",
    "div",
    "line",
    "_birthDate",
    "_valueString",
    "_valueInteger",
    "_div",
    "_id",
    "_code",
    "_url",
    "_effectiveDateTime",
    "_family",
    "_line",
];

fn replacement() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(Value::from),
        Just(json!(1.5)),
        Just(json!(4294967296u64)),
        Just(json!(-1)),
        Just(json!(2147483648u64)),
        Just(json!("")),
        Just(json!("final")),
        Just(json!("7")),
        Just(json!("true")),
        Just(json!([])),
        Just(json!({})),
        Just(json!([null])),
        Just(json!({"url": "u"})),
        Just(json!({"text": "t"})),
        Just(json!({"value": 1})),
        Just(json!({"resourceType": "Patient"})),
        Just(json!({"resourceType": "Basic", "code": {"text": "b"}})),
        Just(json!({"extension": [{"url": "u", "valueString": "s"}]})),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(Value::Array),
            (prop::sample::select(NAMES), inner).prop_map(|(k, v)| json!({ k: v })),
        ]
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Remove,
    Rename(&'static str),
    Replace(Value),
    /// The key written twice (the copy right after the original).
    Duplicate,
    Wrap,
    Unwrap,
    Add(&'static str, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Remove),
        prop::sample::select(NAMES).prop_map(Mutation::Rename),
        replacement().prop_map(Mutation::Replace),
        Just(Mutation::Duplicate),
        Just(Mutation::Wrap),
        Just(Mutation::Unwrap),
        (prop::sample::select(NAMES), replacement()).prop_map(|(k, v)| Mutation::Add(k, v)),
    ]
}

/// JSON text of `v`, with the key at `dup` (a path to an object member) written twice.
fn write(v: &Value, path: &mut Vec<String>, dup: Option<&[String]>, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            let mut first = true;
            for (k, c) in m {
                path.push(k.clone());
                let times = if dup == Some(path.as_slice()) { 2 } else { 1 };
                for _ in 0..times {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    let _ = write!(out, "{}:", Value::String(k.clone()));
                    write(c, path, dup, out);
                }
                path.pop();
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, c) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                path.push(format!("[{i}]"));
                write(c, path, dup, out);
                path.pop();
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn mutate(base: &Value, pick: prop::sample::Index, m: &Mutation) -> String {
    let mut v = base.clone();
    let mut all = Vec::new();
    nodes(&v, &mut Vec::new(), &mut all);
    let path = pick.get(&all).clone();
    let mut dup = None;
    match m {
        Mutation::Remove | Mutation::Rename(_) | Mutation::Duplicate => {
            if let Some((Step::Key(k), parent)) = path.split_last() {
                let obj = at(&mut v, parent);
                if let Some(map) = obj.as_object_mut() {
                    match m {
                        Mutation::Remove => {
                            map.shift_remove(k);
                        }
                        Mutation::Rename(n) => {
                            if let Some(val) = map.shift_remove(k) {
                                map.insert((*n).to_string(), val);
                            }
                        }
                        _ => {
                            dup = Some(
                                path.iter()
                                    .map(|s| match s {
                                        Step::Key(k) => k.clone(),
                                        Step::Index(i) => format!("[{i}]"),
                                    })
                                    .collect::<Vec<_>>(),
                            );
                        }
                    }
                }
            } else if let Some((Step::Index(i), parent)) = path.split_last()
                && let Some(a) = at(&mut v, parent).as_array_mut()
                && !matches!(m, Mutation::Rename(_))
            {
                // Remove or repeat an array item.
                if matches!(m, Mutation::Remove) {
                    a.remove(*i);
                } else {
                    let item = a[*i].clone();
                    a.insert(*i, item);
                }
            }
        }
        Mutation::Replace(r) => *at(&mut v, &path) = r.clone(),
        Mutation::Wrap => {
            let node = at(&mut v, &path);
            *node = Value::Array(vec![node.take()]);
        }
        Mutation::Unwrap => {
            let node = at(&mut v, &path);
            if let Some(first) = node.as_array().and_then(|a| a.first()).cloned() {
                *node = first;
            }
        }
        Mutation::Add(k, r) => {
            if let Some(map) = at(&mut v, &path).as_object_mut() {
                map.insert((*k).to_string(), r.clone());
            }
        }
    }
    let mut out = String::new();
    write(&v, &mut Vec::new(), dup.as_deref(), &mut out);
    out
}

#[test]
fn the_valid_bases_are_decided_by_the_fast_walk() {
    for (name, v) in [
        ("Observation", observation()),
        ("Patient", patient()),
        ("Bundle", bundle()),
    ] {
        let text = v.to_string();
        fhirbolt_check(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fast_check(&text), Verdict::Valid(name), "{name}");
        check_strict(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_refusal_names_the_element() {
    let mut v = observation();
    v["component"][1]["valeu"] = json!(1);
    let e = check_strict(&v.to_string()).expect_err("unknown element");
    assert!(
        e.to_string().starts_with("Observation.component[1].valeu:"),
        "{e}"
    );
    let mut v = patient();
    v["name"][0]
        .as_object_mut()
        .map(|m| m.insert("familly".into(), json!("x")));
    let e = check_strict(&v.to_string()).expect_err("unknown element");
    assert!(e.to_string().starts_with("Patient.name[0].familly:"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn mutated_observations_get_fhirbolts_verdict(pick: prop::sample::Index, m in mutation()) {
        let text = mutate(&observation(), pick, &m);
        let verdict = agree(&text);
        prop_assert!(verdict.is_ok(), "{}", verdict.err().unwrap_or_default());
    }

    #[test]
    fn mutated_patients_get_fhirbolts_verdict(pick: prop::sample::Index, m in mutation()) {
        let text = mutate(&patient(), pick, &m);
        let verdict = agree(&text);
        prop_assert!(verdict.is_ok(), "{}", verdict.err().unwrap_or_default());
    }

    #[test]
    fn mutated_bundles_get_fhirbolts_verdict(pick: prop::sample::Index, m in mutation()) {
        let text = mutate(&bundle(), pick, &m);
        let verdict = agree(&text);
        prop_assert!(verdict.is_ok(), "{}", verdict.err().unwrap_or_default());
    }

    #[test]
    fn twice_mutated_observations_get_fhirbolts_verdict(
        p1: prop::sample::Index, m1 in mutation(), p2: prop::sample::Index, m2 in mutation()
    ) {
        let once: Value = match serde_json::from_str(&mutate(&observation(), p1, &m1)) {
            Ok(v) => v,
            Err(_) => return Ok(()),
        };
        let text = mutate(&once, p2, &m2);
        let verdict = agree(&text);
        prop_assert!(verdict.is_ok(), "{}", verdict.err().unwrap_or_default());
    }
}

/// The agreement above is not vacuous: most mutations fhirbolt accepts, the walk decides
/// itself, and most it refuses, it leaves to fhirbolt.
#[test]
fn the_walk_decides_most_mutations_fhirbolt_accepts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (any::<prop::sample::Index>(), mutation(), 0..3usize);
    let bases = [observation(), patient(), bundle()];
    let (mut accepted, mut decided, mut refused) = (0, 0, 0);
    for _ in 0..600 {
        let (pick, m, b) = strategy.new_tree(&mut runner).expect("tree").current();
        let text = mutate(&bases[b], pick, &m);
        agree(&text).unwrap_or_else(|e| panic!("{e}"));
        if fhirbolt_check(&text).is_ok() {
            accepted += 1;
            if matches!(fast_check(&text), Verdict::Valid(_)) {
                decided += 1;
            }
        } else {
            refused += 1;
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "600 mutations: fhirbolt accepts {accepted} (the walk decides {decided}), refuses {refused}"
    );
    assert!(refused >= 100, "only {refused} mutations refused");
    assert!(
        decided * 2 >= accepted,
        "the walk decided {decided} of {accepted}"
    );
}
