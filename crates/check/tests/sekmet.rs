//! The built-in suites against SEKMET, a third-party FHIR R4 server (`HEALTHANALYZER_FHIR_URL`,
//! started by `.ci/run` with `../shared/tools/start-reference-server.sh`). The suites must run to
//! the end, and the report must be right about what SEKMET supports: checked by hand, it does
//! everything the suites ask except `Observation/$lastn`, which it neither declares nor serves
//! (404 "Operation $lastn is not supported on Observation").
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use healthanalyzer_check::{Outcome, Owner, Runner, Severity, report, suites, testscript};

fn sekmet() -> Option<String> {
    match std::env::var("HEALTHANALYZER_FHIR_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var("HEALTHANALYZER_REQUIRE_FHIR").as_deref() != Ok("1"),
                "HEALTHANALYZER_REQUIRE_FHIR=1 but HEALTHANALYZER_FHIR_URL is not set"
            );
            eprintln!("notice: HEALTHANALYZER_FHIR_URL is not set; the SEKMET checks are skipped");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suites_run_to_the_end_against_sekmet_and_report_what_it_lacks() {
    let Some(base) = sekmet() else { return };
    let runner = Runner::new(&base).unwrap();
    let run = runner
        .run(&[
            suites::builtin("vital-signs").unwrap(),
            suites::builtin("errors").unwrap(),
        ])
        .await;
    eprintln!("{}", report::summary(&run));
    // To the end: nothing skipped, nothing unanswered.
    for s in &run.scenarios {
        for st in &s.steps {
            assert!(
                !matches!(st.outcome, Outcome::Skipped(_)),
                "{} / {}",
                s.name,
                st.name
            );
        }
    }
    assert!(
        run.findings().all(|f| !f.transport),
        "{}",
        report::summary(&run)
    );
    // The one gap: $lastn, not declared, so a warning for the receiver, not an error.
    let findings: Vec<_> = run.findings().collect();
    assert_eq!(findings.len(), 1, "{}", report::summary(&run));
    let f = findings[0];
    assert_eq!(
        (f.step.as_str(), f.owner, f.severity),
        ("lastn", Owner::Receiver, Severity::Warning)
    );
    assert!(
        f.message.starts_with("Not supported: Observation/$lastn"),
        "{}",
        f.message
    );
    assert!(f.message.contains("Status 404"), "{}", f.message);
    assert!(!run.has_errors());
    let md = report::markdown(&run);
    for row in [
        "| vital-signs | Observation/$lastn | no | no (0/1) |",
        "| vital-signs | Observation?date | yes | yes (2/2) |",
        "| vital-signs | Observation?code | yes | yes (13/13) |",
        "| vital-signs | Observation:delete | yes | yes (13/13) |",
        "| errors | Patient:delete | yes | yes (1/1) |",
    ] {
        assert!(md.contains(row), "missing {row:?} in\n{md}");
    }
    common::validate_junit(&report::junit(&run));
}

/// Our own TestScripts (tests/testscripts/own and tests/testscripts/xml) against SEKMET: the
/// run goes to the end with a TestReport per script, and every finding is given to someone
/// with a reason. Whether SEKMET passes them is what the findings say, not asserted here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_testscripts_run_to_the_end_against_sekmet_and_every_finding_has_an_owner() {
    let Some(base) = sekmet() else { return };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testscripts");
    let mut scripts = testscript::load(&dir.join("own")).unwrap();
    scripts.extend(testscript::load(&dir.join("xml")).unwrap());
    let runner = Runner::new(&base)
        .unwrap()
        .var("given", "Ada")
        .destination("1", &base)
        .unwrap();
    let ran = runner.run_testscripts(&scripts).await;
    let summary = report::summary(&ran.run);
    eprintln!("{summary}");
    assert_eq!(ran.reports.len(), scripts.len(), "{summary}");
    assert_eq!(ran.run.scenarios.len(), scripts.len(), "{summary}");
    for (script, (result, r)) in scripts
        .iter()
        .zip(ran.run.scenarios.iter().zip(&ran.reports))
    {
        assert_eq!(result.name, script.name);
        assert_eq!(r["resourceType"], "TestReport");
        assert_eq!(r["status"], "completed", "{}: {r:#}", script.name);
        assert!(
            matches!(r["result"].as_str(), Some("pass" | "fail" | "pending")),
            "{}: {r:#}",
            script.name
        );
        healthanalyzer_fhir::check_strict(&r.to_string()).unwrap();
        // To the end: every action of the script is a step (none lost on the way).
        let actions: usize = ["setup", "teardown"]
            .iter()
            .map(|p| script.resource[p]["action"].as_array().map_or(0, Vec::len))
            .sum::<usize>()
            + script.resource["test"].as_array().map_or(0, |ts| {
                ts.iter()
                    .map(|t| t["action"].as_array().map_or(0, Vec::len))
                    .sum()
            });
        assert!(
            result.steps.len() >= actions,
            "{}: {} steps for {actions} actions\n{summary}",
            script.name,
            result.steps.len()
        );
    }
    for f in ran.run.findings() {
        assert!(
            matches!(
                f.owner,
                Owner::Sender | Owner::Receiver | Owner::Data | Owner::Script
            ) && !f.reason.trim().is_empty()
                && !f.message.trim().is_empty(),
            "{f:?}"
        );
    }
    common::validate_junit(&report::junit(&ran.run));
}
