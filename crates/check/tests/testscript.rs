//! TestScripts against our own server: every operation and assert kind passes (FHIRPath
//! expressions, variables and compareToSourceId too), the skipped ones say why, and the
//! TestReports are valid R4.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};

use healthanalyzer_check::testscript::{self, TestScript};
use healthanalyzer_check::{Outcome, Owner, Runner, Severity, report};

fn scripts(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testscripts")
        .join(dir)
}

fn load(file: &str) -> TestScript {
    TestScript::from_file(&scripts(file)).unwrap()
}

/// Keeps a TestReport in `$HEALTHANALYZER_TESTREPORT_DIR`, when it is set, for validators
/// written by others (`.ci/run` checks them with `../shared/tools/validate_fhir.py`).
fn keep(report: &serde_json::Value, name: &str) {
    if let Some(dir) = std::env::var_os("HEALTHANALYZER_TESTREPORT_DIR") {
        let path = Path::new(&dir).join(format!("TestReport-{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(report).unwrap()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_and_assert_passes_against_our_server() {
    let own = common::own_server().await;
    let runner = Runner::new(&own.base)
        .unwrap()
        .var("given", "Ada")
        .destination("1", &own.base)
        .unwrap();
    let json = load("own/server.json");
    let xml = load("own/server.xml");
    let ran = runner.run_testscripts(&[json, xml]).await;
    let summary = report::summary(&ran.run);
    assert!(!ran.run.has_errors(), "{summary}");
    for s in &ran.run.scenarios {
        for st in &s.steps {
            assert!(
                matches!(st.outcome, Outcome::Passed),
                "{} / {}: {:?}\n{summary}",
                s.name,
                st.name,
                st.outcome
            );
        }
    }
    let steps: Vec<&str> = ran.run.scenarios[0]
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    for code in [
        "capabilities",
        "update",
        "create",
        "read",
        "search",
        "lastn",
        "vread",
        "history",
        "transaction",
        "batch",
        "delete",
    ] {
        assert!(
            steps
                .iter()
                .any(|s| s.contains(&format!("operation {code}"))),
            "{code} not run: {steps:?}"
        );
    }
    assert!(
        steps
            .iter()
            .any(|s| s.contains("autocreate fixture `auto`"))
    );
    assert!(
        steps
            .iter()
            .any(|s| s.contains("autodelete fixture `auto`"))
    );
    assert_eq!(ran.reports.len(), 2);
    for (i, r) in ran.reports.iter().enumerate() {
        assert_eq!(r["result"], "pass", "{r:#}");
        assert_eq!(r["status"], "completed");
        healthanalyzer_fhir::check_strict(&r.to_string()).unwrap();
        keep(r, &format!("own-{i}"));
    }
    assert_eq!(
        ran.reports[0]["testScript"]["reference"],
        "TestScript/own-server-json"
    );
    // The JUnit XML and the triage report work unchanged.
    let junit = report::junit(&ran.run);
    assert!(
        !junit.contains("<failure") && !junit.contains("<error"),
        "{junit}"
    );
    common::validate_junit(&junit);
    let md = report::markdown(&ran.run);
    assert!(md.contains("0 errors, 0 warnings: passed"), "{md}");
    assert!(md.contains("70 passed"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_tests_and_the_unknown_are_skipped_naming_script_action_and_reason() {
    let own = common::own_server().await;
    let runner = Runner::new(&own.base).unwrap();
    let ran = runner.run_testscripts(&[load("own/skipped.json")]).await;
    let summary = report::summary(&ran.run);
    assert!(!ran.run.has_errors(), "{summary}");
    let steps = &ran.run.scenarios[0].steps;
    let skipped = |label: &str, why: &str| {
        let st = steps
            .iter()
            .find(|s| s.name.ends_with(label))
            .unwrap_or_else(|| panic!("no step {label}: {summary}"));
        let Outcome::Skipped(reason) = &st.outcome else {
            panic!("{label} is not skipped: {:?}", st.outcome);
        };
        assert!(reason.contains(why), "{label}: {reason}");
        let f = st.findings.first().unwrap();
        assert_eq!((f.severity, f.owner), (Severity::Info, Owner::Script));
        assert!(f.message.contains("TestScript not-yet"), "{}", f.message);
        assert!(f.message.contains(&st.name), "{}", f.message);
        assert!(f.message.contains(why), "{}", f.message);
    };
    // A type test on a data type: the engine has no FHIR type model, so it is never passed.
    skipped(
        "assert: fhirpath type test",
        "`is(Coding)` tests a FHIR data type",
    );
    // A type name that is no FHIR type matches nothing: the assert could never fail.
    skipped(
        "assert: unknown type",
        "(FHIR type names are case-sensitive: `Coding`?)",
    );
    skipped("assert: eval", "operator `eval` is not supported");
    skipped("assert: groovy", "testscript-assert-rule");
    // A FHIRPath variable the engine cannot answer (a data-type test) skips what uses it; the
    // assert after it has no response of its own and is judged on the last one (the
    // capabilities).
    let var_step = steps
        .iter()
        .find(|s| s.name.contains("operation read"))
        .unwrap();
    assert!(
        matches!(&var_step.outcome, Outcome::Skipped(r) if r.contains("variable `pid`: `ofType(Identifier)` tests a FHIR data type")),
        "{:?}",
        var_step.outcome
    );
    // The TestReport says skip for each, and is valid R4.
    let r = &ran.reports[0];
    keep(r, "skipped");
    let results: Vec<&str> = r["test"][0]["action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a["assert"]["result"]
                .as_str()
                .or_else(|| a["operation"]["result"].as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(
        results,
        ["pass", "skip", "skip", "skip", "skip", "skip", "pass"]
    );
    healthanalyzer_fhir::check_strict(&r.to_string()).unwrap();
    let junit = report::junit(&ran.run);
    assert_eq!(junit.matches("<skipped").count(), 5, "{junit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_whose_body_id_differs_from_the_url_is_the_scripts_fault() {
    let own = common::own_server().await;
    let runner = Runner::new(&own.base).unwrap();
    let ran = runner
        .run_testscripts(&[load("mismatch/put-mismatch.json")])
        .await;
    let summary = report::summary(&ran.run);
    assert!(ran.run.has_errors(), "{summary}");
    let errors: Vec<_> = ran
        .run
        .findings()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    // The update itself, and the assert that expected the server to accept it.
    assert_eq!(errors.len(), 2, "{summary}");
    for f in &errors {
        assert_eq!(f.owner, Owner::Script, "{summary}");
        assert!(f.reason.contains("http.html#update"), "{}", f.reason);
    }
    assert!(
        errors[0].message.contains("`someone-else`"),
        "{}",
        errors[0].message
    );
    // Our server refused it, as R4 says it must.
    assert_eq!(errors[1].exchange.as_ref().unwrap().status, Some(400));
    assert_eq!(ran.reports[0]["result"], "fail");
    healthanalyzer_fhir::check_strict(&ran.reports[0].to_string()).unwrap();
    keep(&ran.reports[0], "mismatch");
    let md = report::markdown(&ran.run);
    assert!(md.contains("| script | 2 | 0 |"), "{md}");
}

#[test]
fn a_folder_loads_every_script_in_it_and_leaves_fixtures_alone() {
    let all = testscript::load(&scripts("own")).unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["own-server-json", "own-server-xml", "not-yet"]);
    let e = testscript::load(&scripts("nothing-here")).unwrap_err();
    assert!(e.with_causes().contains("nothing-here"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_search_parameters_is_the_scripts_fault() {
    let own = common::own_server().await;
    let ran = Runner::new(&own.base)
        .unwrap()
        .run_testscripts(&[load("mismatch/read-with-params.json")])
        .await;
    let summary = report::summary(&ran.run);
    let errors: Vec<_> = ran
        .run
        .findings()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    // The read itself, and the assert that expected a Patient where a search answers a Bundle.
    assert_eq!(errors.len(), 2, "{summary}");
    for f in &errors {
        assert_eq!(f.owner, Owner::Script, "{summary}");
        assert!(f.reason.contains("http.html#read"), "{}", f.reason);
    }
    assert!(errors[1].message.contains("got `Bundle`"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_goes_where_dest_maps_it_by_index_or_profile_code() {
    let own = common::own_server().await;
    let elsewhere = "http://127.0.0.1:1/fhir";
    for name in ["1", "FHIR-Server"] {
        let ran = Runner::new(&own.base)
            .unwrap()
            .var("given", "Ada")
            .destination(name, elsewhere)
            .unwrap()
            .run_testscripts(&[load("own/server.json")])
            .await;
        let steps = &ran.run.scenarios[0].steps;
        // The capabilities names destination 1: it goes to the unreachable server.
        let first = &steps[1];
        assert!(
            first.name.contains("operation capabilities"),
            "{}",
            first.name
        );
        let sent = &first.exchange.as_ref().unwrap().request;
        assert_eq!(sent, &format!("GET {elsewhere}/metadata"), "{name}");
        assert!(first.findings.iter().any(|f| f.transport), "{name}");
        // The autocreate before it names no destination: it went to --base and passed.
        assert_eq!(steps[0].outcome, Outcome::Passed, "{}", steps[0].name);
        assert!(
            steps[0]
                .exchange
                .as_ref()
                .unwrap()
                .request
                .contains(&own.base),
            "{name}"
        );
        assert_eq!(ran.reports[0]["result"], "fail");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhirpath_asserts_variables_and_compare_to_source_pass_against_our_server() {
    let own = common::own_server().await;
    let ran = Runner::new(&own.base)
        .unwrap()
        .run_testscripts(&[load("fhirpath/fhirpath.json")])
        .await;
    let summary = report::summary(&ran.run);
    let steps = &ran.run.scenarios[0].steps;
    assert_eq!(steps.len(), 15, "{summary}");
    for st in steps {
        assert_eq!(st.outcome, Outcome::Passed, "{}: {summary}", st.name);
    }
    assert_eq!(ran.reports[0]["result"], "pass");
    healthanalyzer_fhir::check_strict(&ran.reports[0].to_string()).unwrap();
    keep(&ran.reports[0], "fhirpath");
}
