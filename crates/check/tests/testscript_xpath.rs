//! TestScript `path` (XPath 1.0 and JSONPath), XML bodies and Touchstone placeholders,
//! against our own server: the paths pass, what the server cannot do in XML is its finding,
//! and what the script gets wrong is the script's, naming it.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::Path;

use healthanalyzer_check::testscript::TestScript;
use healthanalyzer_check::{Outcome, Owner, Runner, Severity, report};

fn load(file: &str) -> TestScript {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testscripts/xml")
        .join(file);
    TestScript::from_file(&path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xpath_jsonpath_and_date_placeholders_pass_against_our_server() {
    let own = common::own_server().await;
    let ran = Runner::new(&own.base)
        .unwrap()
        .run_testscripts(&[load("xpath.xml")])
        .await;
    let summary = report::summary(&ran.run);
    let steps = &ran.run.scenarios[0].steps;
    for st in steps {
        assert!(
            matches!(st.outcome, Outcome::Passed),
            "{}: {:?} {:?}\n{summary}",
            st.name,
            st.outcome,
            st.findings
        );
    }
    assert!(steps.len() >= 18, "{summary}");
    assert!(
        steps
            .iter()
            .any(|s| s.name.ends_with("assert: compare to fixture"))
    );
    assert_eq!(ran.reports[0]["result"], "pass");
    healthanalyzer_fhir::check_strict(&ran.reports[0].to_string()).unwrap();
    // The fixture went with T's date moved by 30 years.
    let put = steps[0].exchange.as_ref().unwrap();
    let want = jiff::Zoned::now()
        .date()
        .checked_sub(jiff::Span::new().years(30))
        .unwrap()
        .to_string();
    assert!(
        put.request_body.as_deref().unwrap().contains(&want),
        "{:?}",
        put.request_body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_from_the_command_line_moves_the_dates() {
    let own = common::own_server().await;
    let ran = Runner::new(&own.base)
        .unwrap()
        .var("T", "2026-01-01")
        .run_testscripts(&[load("xpath.xml")])
        .await;
    let summary = report::summary(&ran.run);
    assert!(!ran.run.has_errors(), "{summary}");
    let put = ran.run.scenarios[0].steps[0].exchange.as_ref().unwrap();
    assert!(
        put.request_body
            .as_deref()
            .unwrap()
            .contains("\"birthDate\": \"1996-01-01\""),
        "{:?}",
        put.request_body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_speaks_only_json_is_told_so_and_owns_it() {
    let own = common::own_server().await;
    let ran = Runner::new(&own.base)
        .unwrap()
        .run_testscripts(&[load("formats.json")])
        .await;
    let summary = report::summary(&ran.run);
    let step = |label: &str| common::step(&ran.run, label);
    for (label, status, sent) in [
        ("accept xml", 406, "application/fhir+xml"),
        ("format xml", 406, "_format=xml"),
        ("send xml", 415, "<Patient xmlns=\"http://hl7.org/fhir\">"),
    ] {
        let st = step(label);
        let f = st
            .findings
            .iter()
            .find(|f| f.message.contains("does not speak XML"))
            .unwrap_or_else(|| panic!("{label}: {:?}\n{summary}", st.findings));
        assert_eq!((f.owner, f.severity), (Owner::Receiver, Severity::Warning));
        assert!(f.message.contains(&status.to_string()), "{}", f.message);
        let ex = st.exchange.as_ref().unwrap();
        assert_eq!(ex.status, Some(status), "{label}");
        let request = format!(
            "{} {}",
            ex.request,
            ex.request_body.as_deref().unwrap_or_default()
        );
        if label == "accept xml" {
            assert!(matches!(st.outcome, Outcome::Passed), "{:?}", st.outcome);
        } else {
            assert!(request.contains(sent), "{label}: {request}");
        }
    }
    let turtle = step("turtle");
    assert!(
        matches!(&turtle.outcome, Outcome::Skipped(r) if r.contains("accept `ttl`")),
        "{:?}",
        turtle.outcome
    );
    healthanalyzer_fhir::check_strict(&ran.reports[0].to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_and_placeholders_are_the_scripts_and_name_themselves() {
    let own = common::own_server().await;
    let ran = Runner::new(&own.base)
        .unwrap()
        .run_testscripts(&[load("bad.json")])
        .await;
    let step = |label: &str| common::step(&ran.run, label);
    for (label, says) in [
        ("broken xpath", "XPath `CapabilityStatement/[`"),
        ("unbound prefix", "prefix `x` is not bound"),
        ("broken jsonpath", "JSONPath `$..kind`"),
        ("both compares", "not both"),
        ("bad unit", "malformed placeholder `${DATE, T, Q, 1}`"),
    ] {
        let st = step(label);
        let f = st
            .findings
            .first()
            .unwrap_or_else(|| panic!("{label}: no finding"));
        assert_eq!(f.owner, Owner::Script, "{label}: {f:?}");
        assert!(f.message.contains(says), "{label}: {}", f.message);
        assert!(!matches!(st.outcome, Outcome::Passed), "{label}");
    }
    let wrong = step("wrong value");
    let f = wrong.findings.first().unwrap();
    assert_eq!((f.owner, f.severity), (Owner::Receiver, Severity::Error));
    assert!(
        f.message.contains("XPath `CapabilityStatement/fhirVersion` (evaluated as `//fhir:CapabilityStatement/fhir:fhirVersion/@value`)"),
        "{}",
        f.message
    );
    assert!(f.message.contains("got `4.0.1`"), "{}", f.message);
    assert_eq!(ran.reports[0]["result"], "fail");
    healthanalyzer_fhir::check_strict(&ran.reports[0].to_string()).unwrap();
}
