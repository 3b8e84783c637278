//! The FHIR R4 `TestReport` of one script's run.

use serde_json::{Value, json};

use super::TestScript;

/// Where an action sits in the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Setup,
    Test(usize),
    Teardown,
}

/// Whether an action is an operation or an assert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Operation,
    Assert,
}

/// One action's result, as the report writes it.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) section: Section,
    pub(crate) kind: Kind,
    /// pass | skip | fail | warning | error.
    pub(crate) result: &'static str,
    pub(crate) message: String,
}

fn action(r: &Record) -> Value {
    let body = json!({"result": r.result, "message": r.message});
    // R4 teardown actions hold operations only.
    match (r.kind, r.section) {
        (Kind::Assert, Section::Setup | Section::Test(_)) => json!({"assert": body}),
        _ => json!({"operation": body}),
    }
}

/// A `TestReport` (R4, JSON): status completed; result fail when an action failed or erred,
/// pending when nothing ran but skipped actions, else pass; participants the checker and the
/// server; the actions in the script's setup, test and teardown order.
pub(crate) fn test_report(script: &TestScript, base: &str, records: &[Record]) -> Value {
    let count = |r: &str| records.iter().filter(|x| x.result == r).count();
    let failed = count("fail") + count("error");
    let passed = count("pass") + count("warning");
    let result = if failed > 0 {
        "fail"
    } else if passed == 0 && !records.is_empty() {
        "pending"
    } else {
        "pass"
    };
    let score = if records.is_empty() {
        100.0
    } else {
        (passed as f64 * 1000.0 / records.len() as f64).round() / 10.0
    };
    let mut report = json!({
        "resourceType": "TestReport",
        "name": script.name,
        "status": "completed",
        "testScript": {"display": script.name},
        "result": result,
        "score": score,
        "tester": concat!("healthanalyzer-check ", env!("CARGO_PKG_VERSION")),
        "participant": [
            {"type": "test-engine", "uri": "urn:healthanalyzer-check", "display": "healthanalyzer-check"},
            {"type": "server", "uri": base},
        ],
    });
    if let Ok(now) = jiff::Timestamp::now().round(jiff::Unit::Second) {
        report["issued"] = json!(now.to_string());
    }
    if let Some(id) = script.resource["id"].as_str() {
        report["testScript"]["reference"] = json!(format!("TestScript/{id}"));
    } else if let Some(url) = script.resource["url"].as_str() {
        report["testScript"]["reference"] = json!(url);
    }
    let of = |s: Section| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r.section == s)
            .map(action)
            .collect()
    };
    let setup = of(Section::Setup);
    if !setup.is_empty() {
        report["setup"] = json!({ "action": setup });
    }
    let mut tests = Vec::new();
    for (i, t) in script.resource["test"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let actions = of(Section::Test(i));
        if actions.is_empty() {
            continue;
        }
        let mut test = json!({ "action": actions });
        if let Some(n) = t["name"].as_str() {
            test["name"] = json!(n);
        }
        if let Some(d) = t["description"].as_str() {
            test["description"] = json!(d);
        }
        tests.push(test);
    }
    if !tests.is_empty() {
        report["test"] = json!(tests);
    }
    let teardown = of(Section::Teardown);
    if !teardown.is_empty() {
        report["teardown"] = json!({ "action": teardown });
    }
    report
}
