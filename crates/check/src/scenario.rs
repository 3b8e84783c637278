//! Scenarios: what a check does, as data read from TOML (`docs/scenarios.md`).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::path::ElementPath;

/// A named sequence of steps: `setup` first, then `steps`, then `teardown`, which always runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name (a JUnit test suite).
    pub name: String,
    /// What it checks, for the report.
    #[serde(default)]
    pub description: String,
    /// Variables with their default values; `--var` overrides them.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Steps that prepare the scenario (create a Patient, say).
    #[serde(default)]
    pub setup: Vec<Step>,
    /// The checks.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Steps that clean up; they run even when earlier steps failed.
    #[serde(default)]
    pub teardown: Vec<Step>,
    /// The folder that `body_file` paths are relative to (the scenario file's folder).
    #[serde(skip)]
    pub dir: Option<PathBuf>,
}

/// Who should act on a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// The party that sends the data: the source system or the client.
    Sender,
    /// The party that receives it: the server or the exchange that stores and serves it.
    Receiver,
    /// Neither party's code: the test data (or the profile it should follow).
    Data,
    /// The test script itself: it contradicts the FHIR specification (the finding names the
    /// rule), or it asks for what the checker cannot evaluate yet (a `skipped` finding).
    Script,
}

impl Owner {
    /// The lowercase name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sender => "sender",
            Self::Receiver => "receiver",
            Self::Data => "data",
            Self::Script => "script",
        }
    }
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Must be fixed: the run fails.
    Error,
    /// Should be looked at (an optional feature missing, say).
    Warning,
    /// For information.
    Info,
}

impl Severity {
    /// The lowercase name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

/// One step: exactly one of `request`, `command` or `compare`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The step's name, unique within the scenario.
    pub name: String,
    /// What it checks, for the report.
    #[serde(default)]
    pub description: String,
    /// An HTTP request.
    #[serde(default)]
    pub request: Option<Request>,
    /// A command to run (a sync, say).
    #[serde(default)]
    pub command: Option<Command>,
    /// A comparison of the entries two earlier steps collected.
    #[serde(default)]
    pub compare: Option<Compare>,
    /// What the response must be like.
    #[serde(default)]
    pub expect: Expect,
    /// Values to keep in variables: variable name -> where it comes from.
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
    /// Steps that must have passed for this one to run (otherwise it is skipped).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Seconds this step may take (default: the run's timeout).
    #[serde(default)]
    pub timeout_secs: Option<f64>,
    /// The party this step talks to, who owns its failures (default: receiver).
    #[serde(default)]
    pub owner: Option<Owner>,
    /// The severity of this step's failures (default: error).
    #[serde(default)]
    pub severity: Option<Severity>,
    /// A FHIR feature this step needs, e.g. `Observation/$lastn`, `Observation?date`,
    /// `Observation:delete`. When the step fails and the server's CapabilityStatement does not
    /// declare the feature, the failure is reported as "not supported" (a warning).
    #[serde(default)]
    pub feature: Option<String>,
}

/// An HTTP request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The method (default GET).
    #[serde(default = "get")]
    pub method: String,
    /// A path relative to the base URL (`Observation?patient=${patient}`) or an absolute URL.
    pub url: String,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body: a TOML table (sent as JSON) or a string (sent as it is).
    #[serde(default)]
    pub body: Option<Body>,
    /// The body from a file, relative to the scenario file.
    #[serde(default)]
    pub body_file: Option<PathBuf>,
    /// Follow the Bundle's `next` links, at most this many pages; the entries of every page
    /// are collected (for `expect.entries` and `compare`).
    #[serde(default)]
    pub follow_next: Option<u32>,
    /// National profile rules the body sent must keep (checked before it is sent; a broken
    /// rule is a finding for the test data, and the request is still sent).
    #[serde(default)]
    pub rules: Vec<RuleSet>,
}

/// A set of national profile rules, checked with `healthanalyzer_fhir::rules`.
///
/// The Observation sets apply to every Observation in a body (the body itself, the entries of
/// a Bundle, the Bundles inside it, a Parameters' resources); the exchange sets apply to the
/// body as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleSet {
    /// Denmark's FUT `ehealth-observation` (`rules::check_fut_observation`).
    FutObservation,
    /// A FUT `$submit-measurement` Parameters or its transaction Bundle
    /// (`rules::check_fut_submission`): one Patient, one EpisodeOfCare, allowed types.
    FutSubmission,
    /// Norway's `VkpObservation` (`rules::check_vkp_observation`).
    VkpObservation,
    /// Norway's `pmd-Bundle-Observation` batch (`rules::check_pmd_bundle`).
    PmdBundle,
    /// The Netherlands' nl-core vital signs (`rules::check_nl_core_observation`).
    NlCore,
}

impl RuleSet {
    /// The name used in scenarios (`fut-observation`, `pmd-bundle`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FutObservation => "fut-observation",
            Self::FutSubmission => "fut-submission",
            Self::VkpObservation => "vkp-observation",
            Self::PmdBundle => "pmd-bundle",
            Self::NlCore => "nl-core",
        }
    }
}

fn get() -> String {
    "GET".to_owned()
}

/// A request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Body {
    /// Sent exactly as written (malformed JSON for an error check, say).
    Text(String),
    /// Sent as JSON.
    Json(Value),
}

/// A command to run, with the scenario's variables substituted in every argument.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// The program and its arguments, or one line split as a shell would (no shell runs).
    pub run: CommandLine,
    /// Environment variables to set.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working folder.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}

/// A command line.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CommandLine {
    /// One string, split into words with shell quoting rules.
    Line(String),
    /// The program and its arguments.
    Args(Vec<String>),
}

/// A comparison between the entries two request steps collected: nothing lost, changed or
/// doubled on the way from `expected` to `actual`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// The step whose entries are the reference (what the sender holds).
    pub expected: String,
    /// The step whose entries must match them (what the receiver serves).
    pub actual: String,
    /// Element paths (in each entry's resource) that identify a resource on both sides.
    pub key: Vec<String>,
    /// Element paths whose values must be equal on both sides (numbers compared as numbers).
    #[serde(default)]
    pub fields: Vec<String>,
}

/// What a response must be like. Everything is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The status: a number, a list of numbers, or a class such as `"2xx"` or `"4xx"`.
    #[serde(default)]
    pub status: Option<StatusSpec>,
    /// The body's `resourceType`.
    #[serde(default)]
    pub resource_type: Option<String>,
    /// The body must be an OperationOutcome with at least one issue (for error checks).
    #[serde(default)]
    pub outcome: Option<bool>,
    /// A Bundle's `total`.
    #[serde(default)]
    pub total: Option<Count>,
    /// The number of matches: Bundle entries that are not `_include`d resources or outcomes
    /// (of every page when `follow_next` is set).
    #[serde(default)]
    pub entries: Option<Count>,
    /// No resource appears twice among the entries (by `resourceType/id`).
    #[serde(default)]
    pub unique_entries: bool,
    /// Checks on headers; `path` is the header name.
    #[serde(default)]
    pub headers: Vec<Check>,
    /// Checks on the body; `path` is an element path.
    #[serde(default)]
    pub body: Vec<Check>,
    /// A command's exit code.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// National profile rules every Observation in the answer (or, for `fut-submission` and
    /// `pmd-bundle`, the answer itself) must keep; each broken rule is a finding naming the
    /// rule and its location.
    #[serde(default)]
    pub rules: Vec<RuleSet>,
    /// Each entry of the answer (a batch- or transaction-response) carries the `fullUrl` of
    /// the request entry at the same index (PMD's `pmd-Bundle-Response`).
    #[serde(default)]
    pub echo_full_urls: bool,
    /// The answer's `self` link names every search parameter sent, in the URL or in a form
    /// body (the server may add its own, such as `_count`); a parameter whose value holds a
    /// `private` value must not be named (the server names what it resolved it to instead).
    #[serde(default)]
    pub self_link_echoes: bool,
    /// Values (national person numbers: CPR, FNR, DNR, FHN, BSN) that must appear in no URL
    /// the server returns: the `Location` and `Content-Location` headers, and every `url`,
    /// `fullUrl`, `location` and `reference` in the body. Checked whatever the status.
    #[serde(default)]
    pub private: Vec<String>,
}

/// A status expectation.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    /// Exactly this status.
    One(u16),
    /// Any of these.
    Any(Vec<u16>),
    /// A class: `"2xx"`, `"4xx"`.
    Class(String),
}

impl StatusSpec {
    /// True when `status` is what is expected.
    pub fn accepts(&self, status: u16) -> bool {
        match self {
            Self::One(s) => *s == status,
            Self::Any(list) => list.contains(&status),
            Self::Class(c) => c
                .chars()
                .next()
                .and_then(|d| d.to_digit(10))
                .is_some_and(|d| u32::from(status / 100) == d),
        }
    }

    /// True when the expectation is a success (2xx).
    pub fn expects_success(&self) -> bool {
        match self {
            Self::One(s) => (200..300).contains(s),
            Self::Any(list) => list.iter().all(|s| (200..300).contains(s)),
            Self::Class(c) => c.starts_with('2'),
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        match self {
            Self::Class(c) if !matches!(c.as_str(), "1xx" | "2xx" | "3xx" | "4xx" | "5xx") => {
                Err(format!("status `{c}` is not a number nor 2xx/3xx/4xx/5xx"))
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::One(s) => write!(f, "{s}"),
            Self::Any(list) => {
                let parts: Vec<String> = list.iter().map(u16::to_string).collect();
                write!(f, "one of {}", parts.join(", "))
            }
            Self::Class(c) => write!(f, "{c}"),
        }
    }
}

/// A count expectation: a number, or a comparison such as `">=1"` or `"<=50"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Count {
    /// Exactly this many.
    Exactly(u64),
    /// `>=N`, `>N`, `<=N`, `<N` or `N`.
    Compare(String),
}

impl Count {
    /// True when `n` satisfies the expectation; `Err` when the expectation is malformed.
    pub fn accepts(&self, n: u64) -> std::result::Result<bool, String> {
        let text = match self {
            Self::Exactly(want) => return Ok(n == *want),
            Self::Compare(t) => t.trim(),
        };
        let (op, rest) = [">=", "<=", ">", "<", "="]
            .iter()
            .find_map(|op| text.strip_prefix(op).map(|r| (*op, r)))
            .unwrap_or(("=", text));
        let want: u64 = rest.trim().parse().map_err(|_| {
            format!("count `{text}` is not a number with an optional >=, <=, > or <")
        })?;
        Ok(match op {
            ">=" => n >= want,
            "<=" => n <= want,
            ">" => n > want,
            "<" => n < want,
            _ => n == want,
        })
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exactly(n) => write!(f, "{n}"),
            Self::Compare(t) => write!(f, "{t}"),
        }
    }
}

/// A check on a header or on the values an element path reaches. Give one or more of
/// `exists`, `equals`, `contains`, `matches`, `approx` (with `tolerance`) and `count`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// The element path (body checks) or the header name (header checks).
    pub path: String,
    /// Whether anything must be there (`true`) or nothing (`false`).
    #[serde(default)]
    pub exists: Option<bool>,
    /// The first value must equal this (numbers are compared as numbers).
    #[serde(default)]
    pub equals: Option<Value>,
    /// The first value's text must contain this.
    #[serde(default)]
    pub contains: Option<String>,
    /// The first value's text must match this regular expression.
    #[serde(default)]
    pub matches: Option<String>,
    /// The first value must be a number within `tolerance` of this.
    #[serde(default)]
    pub approx: Option<f64>,
    /// The tolerance for `approx` (default 0.001).
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// How many values the path must reach.
    #[serde(default)]
    pub count: Option<Count>,
}

/// Where a captured value comes from: an element path in the body, or a header (with an
/// optional regular expression whose first group is kept).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// An element path in the response body.
    #[serde(default)]
    pub path: Option<String>,
    /// A response header.
    #[serde(default)]
    pub header: Option<String>,
    /// A regular expression applied to the value; its first group (or the whole match) is kept.
    #[serde(default)]
    pub regex: Option<String>,
}

impl Scenario {
    /// Reads a scenario from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let scenario: Self = toml::from_str(text).map_err(|e| Error::Scenario {
            origin: origin.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        scenario.validate().map_err(|reason| Error::Scenario {
            origin: origin.to_owned(),
            reason,
        })?;
        Ok(scenario)
    }

    /// Reads a scenario file; `body_file` paths are then relative to its folder.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut s = Self::from_toml(&text, &path.display().to_string())?;
        s.dir = path.parent().map(Path::to_owned);
        Ok(s)
    }

    /// The variables this scenario uses (`${name}` in URLs, headers, bodies, commands and
    /// expected values) that neither its `[vars]`, nor a capture, nor `given` sets: each must
    /// come from `--var`, or the steps that use it would be skipped.
    pub fn unset_variables(&self, given: &[&str]) -> Vec<String> {
        let mut used = std::collections::BTreeSet::new();
        let mut set: HashSet<&str> = given.iter().copied().collect();
        set.extend(self.vars.keys().map(String::as_str));
        for (_, step) in self.all_steps() {
            set.extend(step.capture.keys().map(String::as_str));
            let mut texts: Vec<&str> = Vec::new();
            if let Some(r) = &step.request {
                texts.push(&r.url);
                texts.extend(r.headers.values().map(String::as_str));
                match &r.body {
                    Some(Body::Text(t)) => texts.push(t),
                    Some(Body::Json(j)) => json_strings(j, &mut texts),
                    None => {}
                }
            }
            if let Some(c) = &step.command {
                match &c.run {
                    CommandLine::Line(l) => texts.push(l),
                    CommandLine::Args(a) => texts.extend(a.iter().map(String::as_str)),
                }
                texts.extend(c.env.values().map(String::as_str));
            }
            texts.extend(step.expect.private.iter().map(String::as_str));
            for c in step.expect.body.iter().chain(&step.expect.headers) {
                texts.extend(c.contains.as_deref());
                texts.extend(c.matches.as_deref());
                if let Some(e) = &c.equals {
                    json_strings(e, &mut texts);
                }
            }
            for t in texts {
                let mut rest = t;
                while let Some(at) = rest.find("${") {
                    let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
                    let tail = &rest[at + 2..];
                    let Some(end) = tail.find('}') else { break };
                    if !escaped {
                        used.insert(tail[..end].trim().to_owned());
                    }
                    rest = &tail[end + 1..];
                }
            }
        }
        used.into_iter()
            .filter(|v| !set.contains(v.as_str()))
            .collect()
    }

    /// Every step, in the order they run.
    pub fn all_steps(&self) -> impl Iterator<Item = (Phase, &Step)> {
        self.setup
            .iter()
            .map(|s| (Phase::Setup, s))
            .chain(self.steps.iter().map(|s| (Phase::Step, s)))
            .chain(self.teardown.iter().map(|s| (Phase::Teardown, s)))
    }

    /// Checks what serde cannot: one action per step, unique names, known dependencies
    /// (earlier steps only), parsable paths, regular expressions and counts.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let mut seen = HashSet::new();
        for (_, step) in self.all_steps() {
            let at = |m: String| format!("step `{}`: {m}", step.name);
            if step.name.trim().is_empty() {
                return Err("a step has an empty name".to_owned());
            }
            let actions = usize::from(step.request.is_some())
                + usize::from(step.command.is_some())
                + usize::from(step.compare.is_some());
            if actions != 1 {
                return Err(at(
                    "needs exactly one of `request`, `command` or `compare`".to_owned()
                ));
            }
            for dep in &step.depends_on {
                if !seen.contains(dep.as_str()) {
                    return Err(at(format!(
                        "depends on `{dep}`, which is not an earlier step"
                    )));
                }
            }
            if let Some(c) = &step.compare {
                for s in [&c.expected, &c.actual] {
                    if !seen.contains(s.as_str()) {
                        return Err(at(format!("compares `{s}`, which is not an earlier step")));
                    }
                }
                if c.key.is_empty() {
                    return Err(at(
                        "`compare.key` needs at least one element path".to_owned()
                    ));
                }
                for p in c.key.iter().chain(&c.fields) {
                    ElementPath::parse(p).map_err(|e| at(e.to_string()))?;
                }
            }
            if let Some(r) = &step.request {
                if r.body.is_some() && r.body_file.is_some() {
                    return Err(at("give `body` or `body_file`, not both".to_owned()));
                }
                if r.method.trim().is_empty() || !r.method.bytes().all(|b| b.is_ascii_alphabetic())
                {
                    return Err(at(format!("method `{}` is not an HTTP method", r.method)));
                }
            }
            if let Some(t) = step.timeout_secs
                && !(t.is_finite() && t > 0.0 && t <= 86_400.0)
            {
                return Err(at(format!(
                    "timeout_secs {t} must be above 0 and at most a day"
                )));
            }
            let e = &step.expect;
            if let Some(s) = &e.status {
                s.validate().map_err(at)?;
            }
            for c in [&e.total, &e.entries].into_iter().flatten() {
                c.accepts(0).map_err(at)?;
            }
            for c in &e.body {
                ElementPath::parse(&c.path).map_err(|e| at(e.to_string()))?;
                check_check(c).map_err(at)?;
            }
            for c in &e.headers {
                check_check(c).map_err(at)?;
            }
            for (var, cap) in &step.capture {
                match (&cap.path, &cap.header) {
                    (Some(p), None) => {
                        ElementPath::parse(p).map_err(|e| at(e.to_string()))?;
                    }
                    (None, Some(_)) => {}
                    _ => {
                        return Err(at(format!(
                            "capture `{var}` needs exactly one of `path` or `header`"
                        )));
                    }
                }
                if let Some(r) = &cap.regex {
                    regex::Regex::new(r).map_err(|e| at(format!("capture `{var}`: {e}")))?;
                }
            }
            if !seen.insert(step.name.as_str()) {
                return Err(at("the name is used twice".to_owned()));
            }
        }
        Ok(())
    }
}

fn json_strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| json_strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| json_strings(i, out)),
        _ => {}
    }
}

fn check_check(c: &Check) -> std::result::Result<(), String> {
    if c.exists.is_none()
        && c.equals.is_none()
        && c.contains.is_none()
        && c.matches.is_none()
        && c.approx.is_none()
        && c.count.is_none()
    {
        return Err(format!(
            "check on `{}` says nothing: give exists, equals, contains, matches, approx or count",
            c.path
        ));
    }
    if let Some(r) = &c.matches {
        // Variables are substituted before the match: check the pattern with a stand-in.
        let probe = regex::Regex::new(r"\$\{[^}]*\}")
            .map(|v| v.replace_all(r, "x").into_owned())
            .unwrap_or_else(|_| r.clone());
        regex::Regex::new(&probe).map_err(|e| format!("check on `{}`: {e}", c.path))?;
    }
    if let Some(n) = &c.count {
        n.accepts(0)?;
    }
    Ok(())
}

/// Where in a scenario a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `setup`.
    Setup,
    /// `steps`.
    Step,
    /// `teardown`.
    Teardown,
}

impl Phase {
    /// The section's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Step => "steps",
            Self::Teardown => "teardown",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"
name = "smoke"
vars = { kind = "8867-4" }

[[setup]]
name = "patient"
request = { method = "POST", url = "Patient", body = { resourceType = "Patient" } }
expect = { status = 201 }
capture.pid = { header = "Location", regex = "Patient/([^/]+)" }

[[steps]]
name = "search"
depends_on = ["patient"]
request = { url = "Observation?patient=${pid}", follow_next = 10 }
expect = { status = "2xx", entries = ">=0", body = [{ path = "resourceType", equals = "Bundle" }] }
"#;

    #[test]
    fn a_good_scenario_reads() {
        let s = Scenario::from_toml(GOOD, "t").unwrap();
        assert_eq!(s.setup.len(), 1);
        assert_eq!(s.steps[0].depends_on, ["patient"]);
        assert!(matches!(
            s.setup[0].request.as_ref().unwrap().body,
            Some(Body::Json(_))
        ));
        assert_eq!(s.steps[0].request.as_ref().unwrap().method, "GET");
    }

    #[test]
    fn mistakes_are_named() {
        for (change, says) in [
            (
                ("depends_on = [\"patient\"]", "depends_on = [\"later\"]"),
                "not an earlier step",
            ),
            (("status = \"2xx\"", "status = \"6xx\""), "6xx"),
            (("entries = \">=0\"", "entries = \"lots\""), "not a number"),
            (
                ("path = \"resourceType\"", "path = \"a..b\""),
                "element path",
            ),
            (("equals = \"Bundle\"", "colour = 1"), "unknown field"),
            (("name = \"search\"", "name = \"patient\""), "used twice"),
            (
                ("regex = \"Patient/([^/]+)\"", "regex = \"(\""),
                "capture `pid`",
            ),
            (
                ("equals = \"Bundle\"", "matches = \"${x}(\""),
                "regex parse error",
            ),
            (("follow_next = 10", "follow_next = -1"), "invalid value"),
        ] {
            let text = GOOD.replace(change.0, change.1);
            assert_ne!(text, GOOD, "{}", change.0);
            let e = Scenario::from_toml(&text, "t.toml")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(says) && e.contains("t.toml"),
                "{}: {e}",
                change.1
            );
        }
    }

    #[test]
    fn unset_variables_are_named() {
        let s = Scenario::from_toml(GOOD, "t").unwrap();
        assert!(s.unset_variables(&[]).is_empty(), "pid is captured");
        let s = Scenario::from_toml(
            &GOOD.replace(
                "Observation?patient=${pid}",
                "${source}/Observation?patient=${pid}&x=$${not}",
            ),
            "t",
        )
        .unwrap();
        assert_eq!(s.unset_variables(&[]), ["source"]);
        assert!(s.unset_variables(&["source"]).is_empty());
        let chain = crate::suites::builtin("chain").unwrap();
        assert_eq!(chain.unset_variables(&["base", "run"]), ["source"]);
    }

    #[test]
    fn counts_and_statuses() {
        assert!(Count::Compare(">=2".into()).accepts(2).unwrap());
        assert!(!Count::Compare("<2".into()).accepts(2).unwrap());
        assert!(Count::Compare("3".into()).accepts(3).unwrap());
        assert!(Count::Exactly(0).accepts(0).unwrap());
        assert!(Count::Compare("x".into()).accepts(0).is_err());
        assert!(StatusSpec::Class("4xx".into()).accepts(422));
        assert!(!StatusSpec::Class("4xx".into()).accepts(500));
        assert!(StatusSpec::Any(vec![200, 201]).accepts(201));
        assert!(!StatusSpec::Any(vec![400, 404]).expects_success());
    }

    proptest! {
        #[test]
        fn any_text_is_a_scenario_or_an_error(s in "\\PC{0,200}") {
            let _ = Scenario::from_toml(&s, "fuzz");
        }

        #[test]
        fn mutated_scenarios_never_panic(cut in 0usize..600, ch in "[\\[\\]{}=\"., a-z0-9]") {
            let mut text = GOOD.to_owned();
            let at = cut.min(text.len());
            if text.is_char_boundary(at) {
                text.insert_str(at, &ch);
            }
            let _ = Scenario::from_toml(&text, "fuzz");
        }
    }
}
