//! A TestScript against the deliberately broken server: each fault it can express is found and
//! given to the server (the receiver). Malformed JSON (the server's 500) cannot be sent from a
//! TestScript, whose fixtures are FHIR resources: `broken.rs` covers it with a TOML scenario.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::broken_server::broken_server;
use healthanalyzer_check::testscript::TestScript;
use healthanalyzer_check::{Outcome, Owner, Runner, Severity, report};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_of_the_broken_server_is_found_and_owned() {
    let base = broken_server(true).await;
    let script = TestScript::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testscripts/broken/broken.json"),
    )
    .unwrap();
    let runner = Runner::new(&base).unwrap().timeout(Duration::from_secs(2));
    let ran = runner.run_testscripts(&[script]).await;
    let summary = report::summary(&ran.run);
    let steps = &ran.run.scenarios[0].steps;
    let failed = |label: &str, says: &str| {
        let st = steps
            .iter()
            .find(|s| s.name.ends_with(label))
            .unwrap_or_else(|| panic!("no step {label}: {summary}"));
        assert_eq!(st.outcome, Outcome::Failed, "{label}: {summary}");
        let f = st
            .findings
            .iter()
            .find(|f| f.message.contains(says))
            .unwrap_or_else(|| panic!("{label}: no finding saying {says}: {summary}"));
        assert_eq!(
            (f.severity, f.owner),
            (Severity::Error, Owner::Receiver),
            "{summary}"
        );
        f.clone()
    };
    // 200 instead of 201 for a created body weight.
    failed("assert: weight created", "expected equals `201`, got `200`");
    // Components lost on read.
    failed("assert: bp as sent", "component");
    // An unknown id "found", empty.
    failed("assert: not found", "expected equals `404`, got `200`");
    // Oxygen saturation acknowledged, never stored: read back empty.
    failed("assert: spo2 as sent", "code");
    // Good data refused.
    failed("assert: heart rate created", "got `400`");
    // A next link that is the page itself.
    failed("assert: page 2 links", "a loop");
    // $lastn stalls: a transport finding within the time limit, and the assert after it is
    // skipped (it has no answer to judge), not judged on the search before.
    let stall = failed("operation lastn", "no answer within 2 s");
    assert!(stall.transport);
    let after = steps
        .iter()
        .find(|s| s.name.ends_with("assert: lastn answered"))
        .unwrap();
    assert!(matches!(after.outcome, Outcome::Skipped(_)), "{summary}");
    // What the server gets right passes: the patient created, the teardown delete sent.
    for ok in [
        "assert: patient created",
        "assert: bp created",
        "assert: page 2",
    ] {
        let st = steps.iter().find(|s| s.name.ends_with(ok)).unwrap();
        assert_eq!(st.outcome, Outcome::Passed, "{ok}: {summary}");
    }
    // The TestReport: fail, the stall an error, the faults fail; valid R4.
    let r = &ran.reports[0];
    assert_eq!(r["result"], "fail");
    let text = r.to_string();
    assert!(text.contains("\"result\":\"error\""), "{r:#}");
    healthanalyzer_fhir::check_strict(&text).unwrap();
    // The triage report gives the faults to the receiver.
    let md = report::markdown(&ran.run);
    assert!(md.contains("| receiver | 7 | 0 |"), "{md}");
    common::validate_junit(&report::junit(&ran.run));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhirpath_asserts_find_the_lost_components_and_give_them_to_the_server() {
    let base = broken_server(true).await;
    let script = TestScript::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testscripts/fhirpath/fhirpath.json"),
    )
    .unwrap();
    let ran = Runner::new(&base)
        .unwrap()
        .timeout(Duration::from_secs(2))
        .run_testscripts(&[script])
        .await;
    let summary = report::summary(&ran.run);
    let step = |label: &str| common::step(&ran.run, label);
    // The read loses the components: the expression, the value and the comparison see it.
    for (label, says) in [
        ("assert: both components", "is false"),
        ("assert: systolic value", "got nothing"),
        ("assert: values as sent", "expected equals [`120`, `80`]"),
    ] {
        let st = step(label);
        assert_eq!(st.outcome, Outcome::Failed, "{label}: {summary}");
        let f = &st.findings[0];
        assert!(f.message.contains(says), "{label}: {}", f.message);
        assert_eq!(
            (f.severity, f.owner),
            (Severity::Error, Owner::Receiver),
            "{summary}"
        );
    }
    // What it keeps passes: the code, the status, the fixture read by sourceId.
    for ok in [
        "assert: codes as sent",
        "assert: status",
        "assert: the fixture itself",
    ] {
        assert_eq!(step(ok).outcome, Outcome::Passed, "{ok}: {summary}");
    }
    assert_eq!(ran.reports[0]["result"], "fail");
}
