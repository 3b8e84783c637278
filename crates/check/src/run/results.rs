//! What a run produces: exchanges, findings, step, scenario and run results.

use std::time::Duration;

use crate::scenario::{Owner, Phase, Severity};

/// How much of a request or response body a finding quotes.
pub(super) const EXCERPT_CHARS: usize = 1_200;

/// What happened to one HTTP exchange (or command), as the report quotes it.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// `GET https://…` or the command line.
    pub request: String,
    /// The start of the request body.
    pub request_body: Option<String>,
    /// The `X-Request-Id` the checker sent.
    pub request_id: Option<String>,
    /// The `X-Request-Id` the server answered with, when it did.
    pub echoed_request_id: Option<String>,
    /// The status (or a command's exit code).
    pub status: Option<i32>,
    /// A few response headers: Content-Type, Location, ETag.
    pub headers: Vec<(String, String)>,
    /// The start of the response body (or a command's output).
    pub response_excerpt: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Something the run found that a person should look at.
#[derive(Debug, Clone)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// The scenario.
    pub scenario: String,
    /// The step.
    pub step: String,
    /// What was wrong, in one sentence.
    pub message: String,
    /// Who should act on it.
    pub owner: Owner,
    /// Why that party.
    pub reason: String,
    /// True when the server could not be reached or did not answer in time.
    pub transport: bool,
    /// The exchange it is about.
    pub exchange: Option<Exchange>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every expectation held.
    Passed,
    /// Expectations held but there are warnings.
    Warned,
    /// At least one error finding.
    Failed,
    /// Not run, with the reason (a dependency did not pass, a variable was not set).
    Skipped(String),
}

/// One step's result.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// The section it was in.
    pub phase: Phase,
    /// The step's name.
    pub name: String,
    /// What it checks.
    pub description: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Its findings.
    pub findings: Vec<Finding>,
    /// The (last) exchange.
    pub exchange: Option<Exchange>,
    /// How long it took.
    pub elapsed: Duration,
}

/// A feature a step needed, whether the server declares it, and whether it worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureSupport {
    /// The scenario.
    pub scenario: String,
    /// The feature, as the step names it.
    pub feature: String,
    /// Whether the CapabilityStatement declares it (`None`: no CapabilityStatement read).
    pub declared: Option<bool>,
    /// Whether the step passed.
    pub works: bool,
}

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    /// The scenario's name.
    pub name: String,
    /// What it checks.
    pub description: String,
    /// Every step, in order.
    pub steps: Vec<StepResult>,
    /// Features the steps needed.
    pub features: Vec<FeatureSupport>,
    /// How long it took.
    pub elapsed: Duration,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The base URL checked.
    pub base_url: String,
    /// This run's id (part of every `X-Request-Id` sent and of the test data).
    pub run_id: String,
    /// When it started.
    pub started: jiff::Timestamp,
    /// Every scenario.
    pub scenarios: Vec<ScenarioResult>,
    /// How long it took.
    pub elapsed: Duration,
}

impl Run {
    /// Every finding, in run order.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.scenarios
            .iter()
            .flat_map(|s| s.steps.iter().flat_map(|st| st.findings.iter()))
    }

    /// True when a finding is an error (the run fails).
    pub fn has_errors(&self) -> bool {
        self.findings().any(|f| f.severity == Severity::Error)
    }

    /// Steps by outcome: (passed, warned, failed, skipped).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0);
        for st in self.scenarios.iter().flat_map(|s| &s.steps) {
            match st.outcome {
                Outcome::Passed => c.0 += 1,
                Outcome::Warned => c.1 += 1,
                Outcome::Failed => c.2 += 1,
                Outcome::Skipped(_) => c.3 += 1,
            }
        }
        c
    }
}

/// The start of a text, cut at a character boundary.
pub(super) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((at, _)) => format!("{}\n… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn excerpts_cut_at_characters() {
        let long = "ø".repeat(EXCERPT_CHARS + 10);
        let e = excerpt(&long);
        assert!(e.starts_with(&"ø".repeat(EXCERPT_CHARS)));
        assert!(e.contains("bytes in all"));
        assert_eq!(excerpt("short"), "short");
    }
}
