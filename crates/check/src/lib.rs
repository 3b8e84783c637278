//! Scripted checks of a FHIR R4 data-exchange chain, for hackathons and for CI.
//!
//! A [`Scenario`] (TOML, described in `docs/scenarios.md` in the repository) is a list of
//! steps: HTTP requests with expectations on the status, headers and FHIR body, commands (a
//! sync, say), and comparisons between what two servers hold. A [`Runner`] runs scenarios
//! against a FHIR base URL and never fails: everything that goes wrong is a [`Finding`] with a
//! severity, the step, the request, the correlation id sent as `X-Request-Id`, the start of the
//! answer, and a suggested [`Owner`] (sender, receiver or data) with the reason. The
//! [`report`] module turns a [`Run`] into a console summary, JUnit XML and a Markdown triage
//! report.
//!
//! [`Options`] is a whole check as the `healthanalyzer-check` command runs it: the arguments as
//! text ([`parse_var`], [`parse_header`]), the scenarios loaded, the run, the report files.
//!
//! FHIR R4 TestScripts ([`testscript`]: JSON or XML, a file or a folder) run through the same
//! runner ([`Runner::run_testscripts`]) into the same [`Run`], and write a FHIR `TestReport` per
//! script; a finding the script itself is to blame for (it contradicts FHIR) is owned by
//! [`Owner::Script`].
//!
//! Built-in suites ([`suites::builtin`]): `vital-signs` (each catalog kind created, read back
//! equal, found by patient, code and date; paging; `$lastn`), `errors` (bad input gets 4xx with
//! an OperationOutcome, unknown ids 404) and `chain` (source server -> sync -> receiving API,
//! nothing lost, changed or doubled); the national exchanges `fut` (Denmark's
//! `$submit-measurement` / `$search-measurements`), `pmd` (Norway's PMD batch and
//! `POST Observation/_search`) and `medmij` (the Netherlands' PGO searches with a patient
//! token), each with its profile rules ([`RuleSet`], checked with `healthanalyzer_fhir::rules`),
//! fullUrl and self-link echoes, no national person number in any URL, and refusals of what the
//! exchange forbids; and their chains end to end, `chain-fut`, `chain-pmd`, `chain-medmij`.
//!
//! ```no_run
//! use healthanalyzer_check::{Runner, Scenario, report, suites};
//!
//! # async fn f() -> Result<(), healthanalyzer_check::Error> {
//! let mine = Scenario::from_toml(r#"
//!     name = "smoke"
//!     [[steps]]
//!     name = "metadata"
//!     request = { url = "metadata" }
//!     expect = { status = 200, resource_type = "CapabilityStatement" }
//! "#, "inline")?;
//! let runner = Runner::new("http://127.0.0.1:8080/fhir")?;
//! let run = runner.run(&[mine, suites::builtin("errors")?]).await;
//! std::fs::write("triage.md", report::markdown(&run)).ok();
//! std::fs::write("junit.xml", report::junit(&run)).ok();
//! assert!(!run.has_errors(), "{}", report::summary(&run));
//! # Ok(()) }
//! ```
//!
//! TestScripts, with destination 1 on a second server:
//!
//! ```no_run
//! use healthanalyzer_check::{Runner, report, testscript};
//!
//! # async fn f() -> Result<(), healthanalyzer_check::Error> {
//! let scripts = testscript::load("testscripts/".as_ref())?;
//! let runner = Runner::new("http://127.0.0.1:8080/fhir")?
//!     .var("patient-token-id", "Bearer …")
//!     .destination("1", "http://127.0.0.1:8081/fhir")?;
//! let ran = runner.run_testscripts(&scripts).await;
//! for (script, test_report) in scripts.iter().zip(&ran.reports) {
//!     std::fs::write(format!("{}.testreport.json", script.name), test_report.to_string()).ok();
//! }
//! std::fs::write("triage.md", report::markdown(&ran.run)).ok();
//! # Ok(()) }
//! ```

mod error;
mod options;
mod path;
pub mod report;
mod run;
mod scenario;
pub mod suites;
pub mod testscript;
mod vars;

pub use error::{Error, Result};
pub use options::{Options, parse_header, parse_timeout_secs, parse_var};
pub use path::ElementPath;
pub use run::{
    Exchange, FeatureSupport, Finding, MAX_COMMAND_OUTPUT_BYTES, MAX_RESPONSE_BYTES, Outcome, Run,
    Runner, ScenarioResult, StepResult, declares,
};
pub use scenario::{
    Body, Capture, Check, Command, CommandLine, Compare, Count, Expect, Owner, Phase, Request,
    RuleSet, Scenario, Severity, StatusSpec, Step,
};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
