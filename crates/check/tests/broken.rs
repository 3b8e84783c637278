//! The checker against a deliberately broken FHIR server: wrong status codes, components lost
//! on read, a `next` link loop, an operation that stalls for 30 s, dropped data at a source,
//! and refusals of good and bad data. Each fault must be found and given to the right owner.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use common::broken_server::broken_server;
use common::{assert_owner, finding};
use healthanalyzer_check::{Outcome, Owner, Runner, Scenario, Severity, report, suites};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_is_found_and_given_to_its_owner() {
    let base = broken_server(false).await;
    let runner = Runner::new(&base).unwrap().timeout(Duration::from_secs(2));
    let scenarios = [
        suites::builtin("vital-signs").unwrap(),
        suites::builtin("errors").unwrap(),
    ];
    let clock = Instant::now();
    let run = runner.run(&scenarios).await;
    // The 30-second stall is cut at the step's limit: the run does not hang on it.
    assert!(
        clock.elapsed() < Duration::from_secs(25),
        "{:?}",
        clock.elapsed()
    );
    eprintln!("{}", report::summary(&run));

    // Components lost on read.
    let f = finding(
        &run,
        "read blood-pressure",
        "component[code.coding.code=8480-6].valueQuantity.value: expected 128",
    );
    assert_owner(f, Owner::Receiver, Severity::Error);
    assert!(
        f.message.ends_with("expected 128, found nothing"),
        "{}",
        f.message
    );
    // The next-link loop.
    let f = finding(
        &run,
        "paging",
        "Paging loops: page 2's `next` link leads back to page 2",
    );
    assert_owner(f, Owner::Receiver, Severity::Error);
    // One finding for the one fault: the short count is its consequence, not another fault.
    assert_eq!(run.findings().filter(|f| f.step == "paging").count(), 1);
    // The stall: declared in the CapabilityStatement, so an error, not "not supported".
    let f = finding(&run, "lastn", "did not answer within 2 s");
    assert_owner(f, Owner::Receiver, Severity::Error);
    assert!(f.transport);
    let lastn = run.scenarios[0]
        .steps
        .iter()
        .find(|s| s.name == "lastn")
        .unwrap();
    assert!(
        lastn.elapsed < Duration::from_secs(5),
        "{:?}",
        lastn.elapsed
    );
    // A crash on malformed JSON.
    let f = finding(&run, "malformed JSON", "Status 500, expected 4xx");
    assert_owner(f, Owner::Receiver, Severity::Error);
    assert!(f.reason.contains("5xx"), "{}", f.reason);
    // An unknown id that is "found".
    let f = finding(&run, "unknown Observation", "Status 200, expected 404");
    assert_owner(f, Owner::Receiver, Severity::Error);
    // A bare 404 without an OperationOutcome (axum's own).
    let f = finding(&run, "unknown resource type", "not an OperationOutcome");
    assert_owner(f, Owner::Receiver, Severity::Error);
    // Invalid data accepted.
    let f = finding(&run, "missing status and code", "Status 201, expected 4xx");
    assert_owner(f, Owner::Receiver, Severity::Error);

    // Nothing here is the sender's or the data's.
    assert!(
        run.findings().all(|f| f.owner == Owner::Receiver),
        "{}",
        report::summary(&run)
    );
    assert!(run.has_errors());

    // Every finding in the triage report carries the request and its correlation id.
    let md = report::markdown(&run);
    for needle in [
        ". error · receiver · vital-signs › paging",
        "- **Request:** `GET http://127.0.0.1:",
        &format!("- **X-Request-Id:** `hc-{}-", run.run_id),
        "(not echoed by the server)",
        "| vital-signs | Observation/$lastn | yes | no (0/1) |",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in\n{md}");
    }
    let junit = report::junit(&run);
    assert!(
        junit.contains("<error message=\"The server did not answer within 2 s"),
        "{junit}"
    );
    common::validate_junit(&junit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_create_status_fails_the_create_and_skips_what_depends_on_it() {
    let base = broken_server(true).await;
    let run = Runner::new(&base)
        .unwrap()
        .run(&[suites::builtin("vital-signs").unwrap()])
        .await;
    let f = finding(&run, "create body-weight", "Status 200, expected 201");
    assert_owner(f, Owner::Receiver, Severity::Error);
    let steps = &run.scenarios[0].steps;
    for name in [
        "read body-weight",
        "search body-weight by code",
        "paging",
        "lastn",
    ] {
        let st = steps.iter().find(|s| s.name == name).unwrap();
        assert!(
            matches!(&st.outcome, Outcome::Skipped(r) if r == "step `create body-weight` did not pass"),
            "{name}: {:?}",
            st.outcome
        );
    }
    let md = report::markdown(&run);
    assert!(md.contains("## Skipped steps"), "{md}");
    assert!(
        md.contains("- vital-signs › read body-weight: step `create body-weight` did not pass")
    );
    let junit = report::junit(&run);
    assert!(junit.contains("<skipped>step `create body-weight` did not pass</skipped>"));
    assert!(
        junit.contains("<failure message=\"Status 200, expected 201."),
        "{junit}"
    );
    common::validate_junit(&junit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_bad_data_go_to_the_data_and_of_good_data_to_the_receiver() {
    let base = broken_server(false).await;
    let scenario = Scenario::from_toml(
        r#"
name = "refusals"
[[steps]]
name = "invalid data"
request = { method = "POST", url = "Observation", body = { resourceType = "Observation", status = 5, code = { text = "x" } } }
expect = { status = 201 }
[[steps]]
name = "valid data"
request = { method = "POST", url = "Observation", body = { resourceType = "Observation", status = "final", meta = { tag = [{ code = "refuse-me" }] }, code = { text = "x" } } }
expect = { status = 201 }
"#,
        "test",
    )
    .unwrap();
    let run = Runner::new(&base).unwrap().run(&[scenario]).await;
    let f = finding(&run, "invalid data", "Status 400, expected 201");
    assert_owner(f, Owner::Data, Severity::Error);
    assert!(
        f.message.contains("Observation.status: not a code"),
        "{}",
        f.message
    );
    assert!(f.reason.contains("fix the test data"), "{}", f.reason);
    let f = finding(&run, "valid data", "Status 400, expected 201");
    assert_owner(f, Owner::Receiver, Severity::Error);
    assert!(f.reason.contains("valid FHIR R4"), "{}", f.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_drops_data_is_the_senders_fault() {
    let base = broken_server(false).await;
    let run = Runner::new(&base)
        .unwrap()
        .var("source", &base)
        .var("sync", "true")
        .run(&[suites::builtin("chain").unwrap()])
        .await;
    // The source said 201 to the oxygen saturation, but does not have it.
    let f = finding(&run, "read back at the source", "3 entries, expected 4");
    assert_owner(f, Owner::Sender, Severity::Error);
    let compare = run.scenarios[0]
        .steps
        .iter()
        .find(|s| s.name == "compare")
        .unwrap();
    assert!(
        matches!(compare.outcome, Outcome::Skipped(_)),
        "{:?}",
        compare.outcome
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_finding_for_every_step_not_a_hang() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let run = Runner::new(&format!("http://{addr}/fhir"))
        .unwrap()
        .timeout(Duration::from_secs(2))
        .run(&[suites::builtin("errors").unwrap()])
        .await;
    let f = finding(&run, "create patient", "could not connect");
    assert_owner(f, Owner::Receiver, Severity::Error);
    assert!(f.transport);
    let f = finding(&run, "unknown Observation", "could not connect");
    assert!(f.transport);
    assert!(run.has_errors());
}
