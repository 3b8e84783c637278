//! The built-in suites against our own server: everything passes, and the reports say so.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use healthanalyzer_check::{Outcome, Runner, report, suites};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_suite_passes_against_our_server() {
    let own = common::own_server().await;
    let runner = Runner::new(&own.base).unwrap();
    let scenarios = [
        suites::builtin("vital-signs").unwrap(),
        suites::builtin("errors").unwrap(),
    ];
    let run = runner.run(&scenarios).await;
    assert!(!run.has_errors(), "{}", report::summary(&run));
    assert_eq!(run.findings().count(), 0, "{}", report::summary(&run));
    for s in &run.scenarios {
        for st in &s.steps {
            assert_eq!(st.outcome, Outcome::Passed, "{} / {}", s.name, st.name);
        }
    }
    // Every feature the suite needs is declared and works.
    let features: Vec<_> = run.scenarios.iter().flat_map(|s| &s.features).collect();
    assert!(features.iter().any(|f| f.feature == "Observation/$lastn"));
    for f in features {
        assert_eq!((f.declared, f.works), (Some(true), true), "{f:?}");
    }
    let md = report::markdown(&run);
    assert!(md.contains("0 errors, 0 warnings: passed"), "{md}");
    assert!(
        md.contains("| vital-signs | Observation/$lastn | yes | yes (1/1) |"),
        "{md}"
    );
    let junit = report::junit(&run);
    assert!(
        !junit.contains("<failure") && !junit.contains("<error"),
        "{junit}"
    );
    common::validate_junit(&junit);
}
