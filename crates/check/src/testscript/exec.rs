//! Running TestScripts: the script's phases (setup, tests, teardown), one action at a time,
//! and the helpers the actions share (findings, step records). Operations are in
//! [`operation`](super::operation), asserts in [`asserts`](super::asserts), fixtures in
//! [`fixtures`](super::fixtures) and `${name}` substitution in [`variables`](super::variables).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::info;

use super::TestScript;
use super::asserts::assertion;
use super::fhirpath::FhirPath;
use super::fixtures::load_fixtures;
use super::report::{Kind, Record, Section, test_report};
use crate::run::{Exchange, Finding, Outcome, Run, Runner, ScenarioResult, StepResult};
use crate::scenario::{Owner, Phase, Severity};

/// The Touchstone extension R4 scripts carry for R5's `stopTestOnFail`.
pub(super) const STOP_TEST_ON_FAIL: &str = "testscript-assert-stopTestOnFail";

/// How much of a body an exchange quotes.
const EXCERPT_CHARS: usize = 1_200;

/// What running TestScripts produced: the checker's [`Run`] (one
/// [`ScenarioResult`] per script, one [`StepResult`] per action, so
/// [`report::junit`](crate::report::junit) and [`report::markdown`](crate::report::markdown)
/// work unchanged) and a FHIR R4 `TestReport` (JSON) per script, in the same order.
#[derive(Debug, Clone)]
pub struct TestScriptRun {
    /// The run, as the checker's reports read it.
    pub run: Run,
    /// One `TestReport` per script.
    pub reports: Vec<Value>,
}

/// An answer, as asserts see it.
pub(super) struct Resp {
    pub(super) method: String,
    pub(super) url: String,
    pub(super) status: u16,
    pub(super) headers: reqwest::header::HeaderMap,
    pub(super) body: Option<Value>,
    pub(super) text: String,
}

/// One script's state while it runs.
pub(super) struct State<'a> {
    pub(super) script: &'a TestScript,
    /// `--var`s and the runner's own (`base`, `run`).
    pub(super) vars: BTreeMap<String, String>,
    pub(super) fixtures: BTreeMap<String, Value>,
    pub(super) fixture_errors: BTreeMap<String, String>,
    pub(super) responses: BTreeMap<String, Rc<Resp>>,
    pub(super) last: Option<Rc<Resp>>,
    /// The last exchange, quoted by the asserts' findings.
    pub(super) last_exchange: Option<Exchange>,
    /// Fixtures created on the server: fixture id -> (type, id).
    pub(super) created: BTreeMap<String, (String, String)>,
    /// The FHIR rule the last operation broke (its failures are the script's).
    pub(super) script_fault: Option<String>,
    pub(super) seq: usize,
    /// The FHIRPath engine of the run.
    pub(super) fhirpath: &'a FhirPath,
    /// `expression` variables as last evaluated (before each action): value, or why not.
    pub(super) expr_vars: BTreeMap<String, std::result::Result<String, String>>,
}

/// What one action did.
pub(super) struct Done {
    pub(super) outcome: Outcome,
    pub(super) findings: Vec<Finding>,
    pub(super) exchange: Option<Exchange>,
    pub(super) message: String,
    /// An assert with stopTestOnFail failed: the rest of the test is skipped.
    pub(super) stop: bool,
}

impl Done {
    pub(super) fn skip(reason: String) -> Self {
        Self {
            outcome: Outcome::Skipped(reason.clone()),
            findings: Vec::new(),
            exchange: None,
            message: reason,
            stop: false,
        }
    }
}

impl Runner {
    /// Runs TestScripts one after the other against the runner's base URL (and the
    /// destinations mapped with [`Runner::destination`]). Never fails: what goes wrong is a
    /// finding, and what the checker cannot evaluate is a skipped step with a finding saying why.
    pub async fn run_testscripts(&self, scripts: &[TestScript]) -> TestScriptRun {
        let started = jiff::Timestamp::now();
        let clock = Instant::now();
        let mut results = Vec::new();
        let mut reports = Vec::new();
        let fhirpath = FhirPath::new().await;
        for s in scripts {
            let (result, records) = self.run_script(s, &fhirpath).await;
            reports.push(test_report(s, &self.base, &records));
            results.push(result);
        }
        TestScriptRun {
            run: Run {
                base_url: self.base.clone(),
                run_id: self.run_id.clone(),
                started,
                scenarios: results,
                elapsed: clock.elapsed(),
            },
            reports,
        }
    }

    async fn run_script(
        &self,
        script: &TestScript,
        fhirpath: &FhirPath,
    ) -> (ScenarioResult, Vec<Record>) {
        let clock = Instant::now();
        let mut st = State {
            script,
            vars: self.vars.clone(),
            fixtures: BTreeMap::new(),
            fixture_errors: BTreeMap::new(),
            responses: BTreeMap::new(),
            last: None,
            last_exchange: None,
            created: BTreeMap::new(),
            script_fault: None,
            seq: 0,
            fhirpath,
            expr_vars: BTreeMap::new(),
        };
        load_fixtures(&mut st);
        let r = &script.resource;
        let mut steps = Vec::new();
        let mut records = Vec::new();

        // Setup: autocreate, then the setup actions; a failure skips the rest and the tests.
        let mut broken: Option<String> = None;
        for f in list(&r["fixture"]) {
            if f["autocreate"] == true
                && let Some(id) = f["id"].as_str()
            {
                let name = format!("setup autocreate fixture `{id}`");
                let op = serde_json::json!({"type": {"code": "create"}, "sourceId": id});
                let done = self.operation(&mut st, &op, &name).await;
                if matches!(done.outcome, Outcome::Failed) {
                    broken = Some(name.clone());
                }
                push(
                    &mut steps,
                    &mut records,
                    script,
                    Phase::Setup,
                    Section::Setup,
                    Kind::Operation,
                    name,
                    done,
                );
            }
        }
        for (i, a) in list(&r["setup"]["action"]).iter().enumerate() {
            let (kind, label) = describe(a);
            let name = format!("setup action[{i}] {label}");
            let done = match &broken {
                Some(b) => Done::skip(format!("setup step `{b}` failed")),
                None => self.action(&mut st, a, &name).await,
            };
            if broken.is_none() && matches!(done.outcome, Outcome::Failed) {
                broken = Some(name.clone());
            }
            push(
                &mut steps,
                &mut records,
                script,
                Phase::Setup,
                Section::Setup,
                kind,
                name,
                done,
            );
        }
        for (t, test) in list(&r["test"]).iter().enumerate() {
            let tname = test["name"]
                .as_str()
                .map_or_else(|| format!("test[{t}]"), |n| format!("test[{t}] {n}"));
            let mut stopped: Option<String> =
                broken.as_ref().map(|b| format!("setup step `{b}` failed"));
            for (i, a) in list(&test["action"]).iter().enumerate() {
                let (kind, label) = describe(a);
                let name = format!("{tname} action[{i}] {label}");
                let done = match &stopped {
                    Some(why) => Done::skip(why.clone()),
                    None => self.action(&mut st, a, &name).await,
                };
                if stopped.is_none() && done.stop {
                    stopped = Some(format!(
                        "`{name}` failed and stops the test (stopTestOnFail)"
                    ));
                }
                push(
                    &mut steps,
                    &mut records,
                    script,
                    Phase::Step,
                    Section::Test(t),
                    kind,
                    name,
                    done,
                );
            }
        }
        for (i, a) in list(&r["teardown"]["action"]).iter().enumerate() {
            let (kind, label) = describe(a);
            let name = format!("teardown action[{i}] {label}");
            let done = if a.get("operation").is_some() {
                self.action(&mut st, a, &name).await
            } else {
                skip_finding(
                    script,
                    &name,
                    "an R4 teardown action holds an operation only",
                )
            };
            push(
                &mut steps,
                &mut records,
                script,
                Phase::Teardown,
                Section::Teardown,
                kind,
                name,
                done,
            );
        }
        for f in list(&r["fixture"]) {
            if f["autodelete"] == true
                && let Some(id) = f["id"].as_str()
            {
                let name = format!("teardown autodelete fixture `{id}`");
                let done = if st.created.contains_key(id) {
                    let op = serde_json::json!({"type": {"code": "delete"}, "targetId": id});
                    self.operation(&mut st, &op, &name).await
                } else {
                    Done::skip(format!("fixture `{id}` was not created on the server"))
                };
                push(
                    &mut steps,
                    &mut records,
                    script,
                    Phase::Teardown,
                    Section::Teardown,
                    Kind::Operation,
                    name,
                    done,
                );
            }
        }
        let result = ScenarioResult {
            name: script.name.clone(),
            description: script.resource["description"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            steps,
            features: Vec::new(),
            elapsed: clock.elapsed(),
        };
        (result, records)
    }

    async fn action(&self, st: &mut State<'_>, a: &Value, name: &str) -> Done {
        match (a.get("operation"), a.get("assert")) {
            (Some(op), None) => self.operation(st, op, name).await,
            (None, Some(asrt)) => assertion(st, asrt, name, &self.base).await,
            _ => Done {
                outcome: Outcome::Failed,
                findings: vec![finding(
                    st.script,
                    name,
                    Severity::Error,
                    "The action must hold exactly one of operation and assert.".to_owned(),
                    Owner::Script,
                    "TestScript rule tst-3 (setup) / tst-4 (test): an action has an operation or \
                     an assert, never both or neither.",
                )],
                exchange: None,
                message: "neither or both of operation and assert".to_owned(),
                stop: false,
            },
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn push(
    steps: &mut Vec<StepResult>,
    records: &mut Vec<Record>,
    script: &TestScript,
    phase: Phase,
    section: Section,
    kind: Kind,
    name: String,
    done: Done,
) {
    let transport = done.findings.iter().any(|f| f.transport);
    let result = match (&done.outcome, transport) {
        (Outcome::Failed, true) => "error",
        (Outcome::Passed, _) => "pass",
        (Outcome::Warned, _) => "warning",
        (Outcome::Failed, false) => "fail",
        (Outcome::Skipped(_), _) => "skip",
    };
    let message = match done.findings.iter().find(|f| f.severity != Severity::Info) {
        Some(f) => format!("{} ({}: {})", f.message, f.owner.as_str(), f.reason),
        None => done.message.clone(),
    };
    info!(script = %script.name, action = %name, result, "testscript action");
    records.push(Record {
        section,
        kind,
        result,
        message,
    });
    steps.push(StepResult {
        phase,
        name,
        description: String::new(),
        outcome: done.outcome,
        findings: done.findings,
        exchange: done.exchange,
        elapsed: Duration::ZERO,
    });
}

pub(super) fn finding(
    script: &TestScript,
    step: &str,
    severity: Severity,
    message: String,
    owner: Owner,
    reason: &str,
) -> Finding {
    Finding {
        severity,
        scenario: script.name.clone(),
        step: step.to_owned(),
        message,
        owner,
        reason: reason.to_owned(),
        transport: false,
        exchange: None,
    }
}

/// A skipped action, with an information finding naming the script, the action and why.
pub(super) fn skip_finding(script: &TestScript, name: &str, reason: &str) -> Done {
    let mut d = Done::skip(format!("skipped: {reason}"));
    d.findings.push(finding(
        script,
        name,
        Severity::Info,
        format!("TestScript {}, {name}: skipped: {reason}.", script.name),
        Owner::Script,
        "The checker does not evaluate this yet; it is reported, never passed.",
    ));
    d
}

/// A failed action the script is to blame for.
pub(super) fn script_error(script: &TestScript, name: &str, message: String) -> Done {
    Done {
        outcome: Outcome::Failed,
        findings: vec![finding(
            script,
            name,
            Severity::Error,
            format!("{message}."),
            Owner::Script,
            "The script does not give what this action needs.",
        )],
        exchange: None,
        message,
        stop: false,
    }
}

pub(super) fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

pub(super) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((at, _)) => format!("{}\n… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}

/// The kind and a label of an action, for step names.
pub(super) fn describe(a: &Value) -> (Kind, String) {
    if let Some(op) = a.get("operation") {
        let code = op["type"]["code"].as_str().unwrap_or("operation");
        let label = op["label"].as_str().or_else(|| op["description"].as_str());
        (
            Kind::Operation,
            label.map_or_else(
                || format!("operation {code}"),
                |l| format!("operation {code}: {l}"),
            ),
        )
    } else {
        let label = a["assert"]["label"]
            .as_str()
            .or_else(|| a["assert"]["description"].as_str());
        (
            Kind::Assert,
            label.map_or_else(|| "assert".to_owned(), |l| format!("assert: {l}")),
        )
    }
}

/// The first extension (or modifier extension) whose URL does not end with one of `known`.
pub(super) fn unknown_extension(v: &Value, known: &[&str]) -> Option<String> {
    ["extension", "modifierExtension"]
        .iter()
        .flat_map(|k| list(&v[*k]))
        .filter_map(|e| e["url"].as_str())
        .find(|u| !known.iter().any(|k| u.ends_with(k)))
        .map(str::to_owned)
}
