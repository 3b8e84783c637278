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

/// The complete example in `docs/scenarios.md` (when the crate is built inside the repository)
/// runs clean against our server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_example_scenario_passes() {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scenarios.md");
    let Ok(text) = std::fs::read_to_string(&doc) else {
        eprintln!(
            "notice: {} is not here; the documented example is not checked",
            doc.display()
        );
        return;
    };
    let start = text.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + text[start..].find("```").unwrap();
    let scenario =
        healthanalyzer_check::Scenario::from_toml(&text[start..end], "docs/scenarios.md").unwrap();
    let own = common::own_server().await;
    let run = Runner::new(&own.base).unwrap().run(&[scenario]).await;
    assert_eq!(run.findings().count(), 0, "{}", report::summary(&run));
    let steps = &run.scenarios[0].steps;
    assert_eq!(steps.len(), 5);
    assert!(steps.iter().all(|s| s.outcome == Outcome::Passed));
}
