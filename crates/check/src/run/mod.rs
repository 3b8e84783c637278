//! Running scenarios: the runner and a step's course. What each kind of step does lives in its
//! own module: [`http`] (requests, paging, bounded answers), [`command`] (programs, bounded
//! output), [`compare`], [`expect`] (expectations), [`national`] (the national exchanges' rules,
//! echoes and privacy), [`capture`], [`capability`] (what the server declares); [`results`]
//! holds what a run produces.

mod capability;
mod capture;
mod command;
mod compare;
mod expect;
pub(crate) mod http;
mod national;
mod results;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::info;

use crate::error::{Error, Result};
use crate::scenario::{Owner, Phase, Scenario, Severity, Step};
use crate::vars::substitute;

pub use capability::declares;
pub use command::MAX_COMMAND_OUTPUT_BYTES;
pub use http::MAX_RESPONSE_BYTES;
pub use results::{Exchange, FeatureSupport, Finding, Outcome, Run, ScenarioResult, StepResult};

use capability::not_supported;
use capture::capture;
use command::command;
use compare::compare;
use expect::expect_response;
use http::Response;

/// Runs scenarios against one FHIR base URL.
#[derive(Debug, Clone)]
pub struct Runner {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) timeout: Duration,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) vars: BTreeMap<String, String>,
    pub(crate) run_id: String,
    /// TestScript destinations mapped to base URLs.
    pub(crate) dests: BTreeMap<String, String>,
}

/// The state of one scenario's run.
struct State {
    vars: BTreeMap<String, String>,
    passed: HashSet<String>,
    entries: HashMap<String, Vec<Value>>,
}

/// What the action of a step produced, before the expectations are checked.
enum Done {
    Http(Response),
    Exit(i32),
    Compared,
}

impl Runner {
    /// A runner for the FHIR base URL (the one `/metadata` hangs off).
    pub fn new(base_url: &str) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::BaseUrl(base_url.to_owned()));
        }
        healthanalyzer_source::http::install_crypto_provider();
        let client = reqwest::Client::builder()
            .user_agent(concat!("healthanalyzer-check/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let mut vars = BTreeMap::new();
        vars.insert("base".to_owned(), base.clone());
        vars.insert("run".to_owned(), run_id.clone());
        Ok(Self {
            base,
            client,
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            vars,
            run_id,
            dests: BTreeMap::new(),
        })
    }

    /// The per-step time limit (default 10 s); a step may set its own.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A header sent with every request (`Authorization: Bearer …`, say). Never reported.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets a variable for every scenario (over the scenario's own default).
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Maps a TestScript destination (its index, or its profile code) to a base URL; a
    /// destination not mapped goes to the runner's base URL.
    pub fn destination(mut self, name: &str, base_url: &str) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::BaseUrl(base_url.to_owned()));
        }
        self.dests.insert(name.to_owned(), base);
        Ok(self)
    }

    /// This run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Fails when a scenario uses a variable that neither the scenario, a capture, nor this
    /// runner (`var`, and the built-in `base` and `run`) sets: its steps would all be skipped,
    /// and a run that skips everything must not look like a pass.
    pub fn check_variables(&self, scenarios: &[Scenario]) -> Result<()> {
        let given: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        for s in scenarios {
            let names = s.unset_variables(&given);
            if !names.is_empty() {
                return Err(Error::UnsetVariables {
                    scenario: s.name.clone(),
                    names,
                });
            }
        }
        Ok(())
    }

    /// Runs the scenarios one after the other. Never fails: what goes wrong is a finding.
    pub async fn run(&self, scenarios: &[Scenario]) -> Run {
        let started = jiff::Timestamp::now();
        let clock = Instant::now();
        let capability = self.capability().await;
        let mut results = Vec::new();
        for s in scenarios {
            results.push(self.run_scenario(s, capability.as_ref()).await);
        }
        Run {
            base_url: self.base.clone(),
            run_id: self.run_id.clone(),
            started,
            scenarios: results,
            elapsed: clock.elapsed(),
        }
    }

    async fn run_scenario(&self, s: &Scenario, capability: Option<&Value>) -> ScenarioResult {
        let clock = Instant::now();
        let mut vars = s.vars.clone();
        vars.extend(self.vars.clone());
        let mut state = State {
            vars,
            passed: HashSet::new(),
            entries: HashMap::new(),
        };
        let mut steps = Vec::new();
        let mut features = Vec::new();
        for (seq, (phase, step)) in s.all_steps().enumerate() {
            let mut result = self.run_step(s, &mut state, phase, step, seq).await;
            if let Some(feature) = &step.feature
                && !matches!(result.outcome, Outcome::Skipped(_))
            {
                let declared = capability.map(|c| declares(c, feature));
                let works = matches!(result.outcome, Outcome::Passed | Outcome::Warned);
                if !works && declared == Some(false) {
                    not_supported(&mut result, feature);
                }
                features.push(FeatureSupport {
                    scenario: s.name.clone(),
                    feature: feature.clone(),
                    declared,
                    works,
                });
            }
            if matches!(result.outcome, Outcome::Passed | Outcome::Warned) {
                state.passed.insert(step.name.clone());
            }
            steps.push(result);
        }
        ScenarioResult {
            name: s.name.clone(),
            description: s.description.clone(),
            steps,
            features,
            elapsed: clock.elapsed(),
        }
    }

    async fn run_step(
        &self,
        s: &Scenario,
        state: &mut State,
        phase: Phase,
        step: &Step,
        seq: usize,
    ) -> StepResult {
        let clock = Instant::now();
        let mut result = StepResult {
            phase,
            name: step.name.clone(),
            description: step.description.clone(),
            outcome: Outcome::Passed,
            findings: Vec::new(),
            exchange: None,
            elapsed: Duration::ZERO,
        };
        if let Some(dep) = step.depends_on.iter().find(|d| !state.passed.contains(*d)) {
            result.outcome = Outcome::Skipped(format!("step `{dep}` did not pass"));
            info!(scenario = %s.name, step = %step.name, outcome = ?result.outcome, "step");
            return result;
        }
        let owner = step.owner.unwrap_or(Owner::Receiver);
        let mut ctx = StepCtx {
            scenario: &s.name,
            step,
            owner,
            findings: Vec::new(),
            exchange: Exchange::default(),
            sent: None,
        };
        let limit = step
            .timeout_secs
            .map_or(self.timeout, Duration::from_secs_f64);
        let action = async {
            if let Some(r) = &step.request {
                self.request(s, state, r, seq, &mut ctx)
                    .await
                    .map(Done::Http)
            } else if let Some(c) = &step.command {
                command(state, c, &mut ctx).await.map(Done::Exit)
            } else if let Some(c) = &step.compare {
                compare(state, c, &mut ctx);
                Ok(Done::Compared)
            } else {
                Err(Stop::Skip("the step has nothing to do".to_owned()))
            }
        };
        let done = match tokio::time::timeout(limit, action).await {
            Ok(r) => r,
            Err(_) => {
                let what = if step.command.is_some() {
                    "The command did not finish"
                } else {
                    "The server did not answer"
                };
                ctx.finding(
                    format!(
                        "{what} within {:.0} s (the step's time limit).",
                        limit.as_secs_f64()
                    ),
                    owner,
                    "Whoever serves this step must answer within the time limit; a stalled \
                     answer blocks every client behind it.",
                    true,
                );
                Err(Stop::Done)
            }
        };
        match done {
            Ok(Done::Http(resp)) => {
                if let Some(r) = &step.request {
                    national::sent_rules(&mut ctx, &r.rules);
                }
                expect_response(&mut ctx, &resp, &state.vars);
                capture(state, &mut ctx, &resp);
                if !resp.entries.is_empty()
                    || step
                        .request
                        .as_ref()
                        .is_some_and(|r| r.follow_next.is_some())
                {
                    state.entries.insert(step.name.clone(), resp.entries);
                }
            }
            Ok(Done::Exit(code)) => {
                let want = step.expect.exit_code.unwrap_or(0);
                if code != want {
                    ctx.finding(
                        format!("The command exited with {code}, expected {want}."),
                        owner,
                        "The command's own output (quoted) says why it failed.",
                        false,
                    );
                }
            }
            Ok(Done::Compared) => {}
            Err(Stop::Skip(reason)) => {
                result.outcome = Outcome::Skipped(reason);
                result.elapsed = clock.elapsed();
                info!(scenario = %s.name, step = %step.name, outcome = ?result.outcome, "step");
                return result;
            }
            Err(Stop::Done) => {}
        }
        let StepCtx {
            mut findings,
            exchange,
            ..
        } = ctx;
        if let Some(sev) = step.severity {
            for f in &mut findings {
                f.severity = sev;
            }
        }
        result.outcome = if findings.iter().any(|f| f.severity == Severity::Error) {
            Outcome::Failed
        } else if findings.iter().any(|f| f.severity == Severity::Warning) {
            Outcome::Warned
        } else {
            Outcome::Passed
        };
        let has_exchange = !exchange.request.is_empty();
        for f in &mut findings {
            if has_exchange {
                f.exchange = Some(exchange.clone());
            }
        }
        result.findings = findings;
        result.exchange = has_exchange.then_some(exchange);
        result.elapsed = clock.elapsed();
        info!(
            scenario = %s.name,
            step = %step.name,
            outcome = ?result.outcome,
            ms = result.elapsed.as_millis(),
            "step"
        );
        result
    }
}

/// Why a step stopped early.
enum Stop {
    /// It could not run (and is reported as skipped).
    Skip(String),
    /// It ran, and its findings say what went wrong.
    Done,
}

fn missing(name: String) -> Stop {
    Stop::Skip(format!(
        "variable `{name}` is not set (the step that captures it did not pass, or pass --var {name}=…)"
    ))
}

fn sub(text: &str, vars: &BTreeMap<String, String>) -> std::result::Result<String, Stop> {
    substitute(text, vars).map_err(missing)
}

struct StepCtx<'a> {
    scenario: &'a str,
    step: &'a Step,
    owner: Owner,
    findings: Vec<Finding>,
    exchange: Exchange,
    /// The whole body sent, to tell bad data from a refusing receiver.
    sent: Option<String>,
}

impl StepCtx<'_> {
    fn finding(&mut self, message: String, owner: Owner, reason: &str, transport: bool) {
        self.findings.push(Finding {
            severity: Severity::Error,
            scenario: self.scenario.to_owned(),
            step: self.step.name.clone(),
            message,
            owner,
            reason: reason.to_owned(),
            transport,
            exchange: None,
        });
    }

    fn finding_with(&mut self, severity: Severity, message: String, owner: Owner, reason: &str) {
        self.finding(message, owner, reason, false);
        if let Some(f) = self.findings.last_mut() {
            f.severity = severity;
        }
    }
}
