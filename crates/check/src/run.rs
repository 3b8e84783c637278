//! Running scenarios: requests, commands, comparisons, expectations, findings.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{debug, info};

use crate::error::{Error, Result};
use crate::path::{ElementPath, text_of};
use crate::scenario::{
    Body, Capture, Check, CommandLine, Compare, Owner, Phase, Request, Scenario, Severity, Step,
};
use crate::vars::{substitute, substitute_json};

/// The longest response body kept (larger bodies are cut and reported as such).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How much of a request or response body a finding quotes.
const EXCERPT_CHARS: usize = 1_200;

/// Runs scenarios against one FHIR base URL.
#[derive(Debug, Clone)]
pub struct Runner {
    base: String,
    client: reqwest::Client,
    timeout: Duration,
    headers: Vec<(String, String)>,
    vars: BTreeMap<String, String>,
    run_id: String,
}

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

/// The state of one scenario's run.
struct State {
    vars: BTreeMap<String, String>,
    passed: HashSet<String>,
    entries: HashMap<String, Vec<Value>>,
}

/// A response as the checks see it.
struct Response {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Option<Value>,
    entries: Vec<Value>,
    /// Paging stopped at a broken `next` link (already a finding): counts would only repeat it.
    paging_broken: bool,
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
        let _ = rustls::crypto::ring::default_provider().install_default();
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

    /// The server's CapabilityStatement, to tell "not supported" from "broken".
    async fn capability(&self) -> Option<Value> {
        let mut req = self
            .client
            .get(format!("{}/metadata", self.base))
            .header("Accept", "application/fhir+json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = tokio::time::timeout(self.timeout, req.send())
            .await
            .ok()?
            .ok()?;
        let text = tokio::time::timeout(self.timeout, resp.text())
            .await
            .ok()?
            .ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        (v.get("resourceType").and_then(Value::as_str) == Some("CapabilityStatement")).then_some(v)
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

    async fn request(
        &self,
        s: &Scenario,
        state: &State,
        r: &Request,
        seq: usize,
        ctx: &mut StepCtx<'_>,
    ) -> std::result::Result<Response, Stop> {
        let url = sub(&r.url, &state.vars)?;
        let url = self.absolute(&url);
        let body: Option<String> = match (&r.body, &r.body_file) {
            (Some(Body::Text(t)), _) => Some(sub(t, &state.vars)?),
            (Some(Body::Json(j)), _) => {
                let j = substitute_json(j, &state.vars).map_err(missing)?;
                Some(serde_json::to_string_pretty(&j).unwrap_or_default())
            }
            (None, Some(file)) => {
                let path = s
                    .dir
                    .as_ref()
                    .map_or_else(|| file.clone(), |d| d.join(file));
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    Stop::Skip(format!("cannot read body_file {}: {e}", path.display()))
                })?;
                Some(sub(&text, &state.vars)?)
            }
            (None, None) => None,
        };
        let method = reqwest::Method::from_bytes(r.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Stop::Skip(format!("`{}` is not an HTTP method", r.method)))?;
        let request_id = format!("hc-{}-{seq}", self.run_id);
        ctx.exchange.request = format!("{method} {url}");
        ctx.exchange.request_id = Some(request_id.clone());
        ctx.exchange.request_body = body.as_deref().map(excerpt);
        ctx.sent.clone_from(&body);

        let mut headers = Vec::new();
        for (k, v) in &r.headers {
            headers.push((k.clone(), sub(v, &state.vars)?));
        }
        let first = self
            .send(&method, &url, &headers, body.clone(), &request_id, ctx)
            .await?;
        let mut resp = first;
        resp.entries = entries_of(resp.body.as_ref());
        if let Some(max_pages) = r.follow_next {
            let mut seen_urls = vec![url.clone()];
            let mut pages = 1u32;
            let mut next = next_link(resp.body.as_ref());
            while let Some(link) = next {
                let link = self.absolute(&link);
                if let Some(at) = seen_urls.iter().position(|u| *u == link) {
                    ctx.finding(
                        format!(
                            "Paging loops: page {pages}'s `next` link leads back to page {}.",
                            at + 1
                        ),
                        ctx.owner,
                        "The server builds the next links; a client following them never ends.",
                        false,
                    );
                    resp.paging_broken = true;
                    break;
                }
                if pages >= max_pages {
                    ctx.finding_with(
                        Severity::Warning,
                        format!("More than {max_pages} pages; the rest were not read."),
                        ctx.owner,
                        "Raise `follow_next`, or the server pages more finely than expected.",
                    );
                    break;
                }
                seen_urls.push(link.clone());
                pages += 1;
                let rid = format!("hc-{}-{seq}-p{pages}", self.run_id);
                ctx.exchange.request = format!("GET {link}");
                ctx.exchange.request_id = Some(rid.clone());
                ctx.exchange.request_body = None;
                let page = self
                    .send(&reqwest::Method::GET, &link, &headers, None, &rid, ctx)
                    .await?;
                if page.status != 200 {
                    ctx.finding(
                        format!("Page {pages} (a `next` link) answered {}.", page.status),
                        ctx.owner,
                        "A next link the server gave out must work.",
                        false,
                    );
                    resp.paging_broken = true;
                    break;
                }
                resp.entries.extend(entries_of(page.body.as_ref()));
                next = next_link(page.body.as_ref());
            }
        }
        Ok(resp)
    }

    async fn send(
        &self,
        method: &reqwest::Method,
        url: &str,
        headers: &[(String, String)],
        body: Option<String>,
        request_id: &str,
        ctx: &mut StepCtx<'_>,
    ) -> std::result::Result<Response, Stop> {
        let mut req = self
            .client
            .request(method.clone(), url)
            .header("Accept", "application/fhir+json")
            .header("X-Request-Id", request_id);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("Content-Type", "application/fhir+json");
        }
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let clock = Instant::now();
        debug!(request_id, %method, "request");
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                ctx.finding(
                    format!("The request failed: {}.", transport_reason(&e)),
                    ctx.owner,
                    "The server could not be reached or broke the connection; check that it \
                     runs at this address and accepts connections.",
                    true,
                );
                return Err(Stop::Done);
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = match read_body(resp).await {
            Ok(t) => t,
            Err(e) => {
                ctx.finding(
                    format!("The response body could not be read: {e}."),
                    ctx.owner,
                    "The server broke off its answer.",
                    true,
                );
                return Err(Stop::Done);
            }
        };
        ctx.exchange.elapsed = clock.elapsed();
        ctx.exchange.status = Some(i32::from(status));
        ctx.exchange.echoed_request_id = header(&headers, "x-request-id");
        ctx.exchange.headers = ["content-type", "location", "etag"]
            .iter()
            .filter_map(|h| header(&headers, h).map(|v| ((*h).to_owned(), v)))
            .collect();
        ctx.exchange.response_excerpt = (!text.is_empty()).then(|| excerpt(&text));
        let body = serde_json::from_str::<Value>(&text).ok();
        Ok(Response {
            status,
            headers,
            body,
            entries: Vec::new(),
            paging_broken: false,
        })
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else {
            format!("{}/{}", self.base, url.trim_start_matches('/'))
        }
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

fn transport_reason(e: &reqwest::Error) -> String {
    let mut s = if e.is_connect() {
        "could not connect".to_owned()
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else {
        "broken".to_owned()
    };
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s = format!("{s}: {inner}");
        src = inner.source();
    }
    s
}

async fn read_body(mut resp: reqwest::Response) -> std::result::Result<String, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("larger than {} MiB", MAX_BODY_BYTES >> 20));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The start of a text, cut at a character boundary.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((at, _)) => format!("{}\n… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}

/// A Bundle's matches: entries that `_include` added (`search.mode` include) or that carry an
/// OperationOutcome (`outcome`) are not counted.
fn entries_of(body: Option<&Value>) -> Vec<Value> {
    body.filter(|b| b.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
        .and_then(|b| b.get("entry"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter(|e| {
                    !matches!(
                        e.pointer("/search/mode").and_then(Value::as_str),
                        Some("include" | "outcome")
                    )
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn next_link(body: Option<&Value>) -> Option<String> {
    body?
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
        .map(str::to_owned)
}

fn is_outcome(body: Option<&Value>) -> bool {
    body.is_some_and(|b| {
        b.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome")
            && b.get("issue")
                .and_then(Value::as_array)
                .is_some_and(|i| !i.is_empty())
    })
}

fn diagnostics(body: Option<&Value>) -> Option<String> {
    let issues = body?.get("issue")?.as_array()?;
    let parts: Vec<String> = issues
        .iter()
        .filter_map(|i| {
            i.get("diagnostics")
                .or_else(|| i.pointer("/details/text"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn expect_response(ctx: &mut StepCtx<'_>, resp: &Response, vars: &BTreeMap<String, String>) {
    let e = &ctx.step.expect;
    let owner = ctx.owner;
    let body = resp.body.as_ref();
    if let Some(want) = &e.status
        && !want.accepts(resp.status)
    {
        let (who, reason) = attribute_status(ctx, want.expects_success(), resp);
        let detail = diagnostics(body)
            .map(|d| format!(" The server says: {d}"))
            .unwrap_or_default();
        ctx.finding(
            format!("Status {}, expected {want}.{detail}", resp.status),
            who,
            &reason,
            false,
        );
        // The body checks below would only repeat that the answer is not the expected one.
        if want.expects_success() != (200..300).contains(&resp.status) {
            return;
        }
    }
    if e.outcome == Some(true) && !is_outcome(body) {
        ctx.finding(
            "The error answer is not an OperationOutcome with an issue.".to_owned(),
            owner,
            "FHIR servers explain a refusal with an OperationOutcome; without it the sender \
             cannot tell what to fix.",
            false,
        );
    }
    if let Some(rt) = &e.resource_type {
        let got = body
            .and_then(|b| b.get("resourceType"))
            .and_then(Value::as_str);
        if got != Some(rt.as_str()) {
            ctx.finding(
                format!(
                    "The body is {}, expected a {rt}.",
                    got.map_or("not a FHIR resource".to_owned(), |g| format!("a {g}"))
                ),
                owner,
                "The server answered with the wrong kind of content.",
                false,
            );
        }
    }
    if let Some(want) = &e.total {
        match body.and_then(|b| b.get("total")).and_then(Value::as_u64) {
            Some(n) if want.accepts(n).unwrap_or(false) => {}
            got => ctx.finding(
                format!(
                    "Bundle.total is {}, expected {want}.",
                    got.map_or("missing".to_owned(), |n| n.to_string())
                ),
                owner,
                "The server counts the matches of its own search.",
                false,
            ),
        }
    }
    if let Some(want) = e.entries.as_ref().filter(|_| !resp.paging_broken) {
        let n = resp.entries.len() as u64;
        if !want.accepts(n).unwrap_or(false) {
            ctx.finding(
                format!("{n} entries, expected {want}."),
                owner,
                "The search did not return the resources that were stored for it (lost, \
                 doubled, or not found by this search parameter).",
                false,
            );
        }
    }
    if e.unique_entries && !resp.paging_broken {
        let mut seen = HashSet::new();
        let mut doubled = Vec::new();
        for entry in &resp.entries {
            let k = ident(entry);
            if !seen.insert(k.clone()) {
                doubled.push(k);
            }
        }
        if !doubled.is_empty() {
            ctx.finding(
                format!(
                    "{} resources appear twice across the pages: {}.",
                    doubled.len(),
                    doubled
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                owner,
                "Paging must give every match once; the next links or the sort are unstable.",
                false,
            );
        }
    }
    for c in &e.headers {
        let values: Vec<Value> = resp
            .headers
            .get_all(c.path.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| Value::String(v.to_owned()))
            .collect();
        let refs: Vec<&Value> = values.iter().collect();
        if let Err(m) = check(&resolved(c, vars), &refs) {
            ctx.finding(
                format!("Header {}: {m}", c.path),
                owner,
                "The server sets its response headers.",
                false,
            );
        }
    }
    for c in &e.body {
        let Ok(path) = ElementPath::parse(&c.path) else {
            continue;
        };
        let nodes = body.map(|b| path.eval(b)).unwrap_or_default();
        if let Err(m) = check(&resolved(c, vars), &nodes) {
            ctx.finding(
                format!("{}: {m}", c.path),
                owner,
                "The resource the server returned differs from what was stored or expected \
                 (an element lost or changed on the way).",
                false,
            );
        }
    }
}

/// Who owns a wrong status, and why.
fn attribute_status(ctx: &StepCtx<'_>, expected_success: bool, resp: &Response) -> (Owner, String) {
    let owner = ctx.owner;
    let party = owner.as_str();
    if resp.status >= 500 {
        return (
            owner,
            format!("A 5xx status is the {party}'s own failure, whatever the request was."),
        );
    }
    if !expected_success {
        return (
            owner,
            format!(
                "The request is wrong on purpose; the {party} should refuse it with the status \
                 FHIR gives for this case."
            ),
        );
    }
    if (400..500).contains(&resp.status) {
        if let Some(full) = ctx.sent.as_deref() {
            if serde_json::from_str::<Value>(full).is_ok() {
                return match healthanalyzer_fhir::check_strict(full) {
                    Err(e) => (
                        Owner::Data,
                        format!(
                            "The resource sent fails the FHIR R4 model here too ({e}); fix the \
                             test data."
                        ),
                    ),
                    Ok(()) => (
                        owner,
                        format!(
                            "The resource sent is valid FHIR R4 (checked here with fhirbolt's \
                             strict R4 model), yet the {party} refused it."
                        ),
                    ),
                };
            }
            return (
                Owner::Data,
                "The body sent is not JSON; fix the test data.".to_owned(),
            );
        }
        return (
            owner,
            format!("The request is a plain FHIR interaction that the {party} refused."),
        );
    }
    (
        owner,
        format!("The {party} answered with a status FHIR does not give for this interaction."),
    )
}

/// The check with the variables in its expected values substituted (an unset variable stays
/// as written, so the check fails and shows it).
fn resolved(c: &Check, vars: &BTreeMap<String, String>) -> Check {
    let mut c = c.clone();
    if let Some(e) = &c.equals {
        c.equals = Some(substitute_json(e, vars).unwrap_or_else(|_| e.clone()));
    }
    for text in [&mut c.contains, &mut c.matches].into_iter().flatten() {
        if let Ok(t) = substitute(text, vars) {
            *text = t;
        }
    }
    c
}

/// Checks the values a path or header reached; the error says what was found.
fn check(c: &Check, nodes: &[&Value]) -> std::result::Result<(), String> {
    let first = nodes.first().copied();
    let shown = || first.map_or("nothing".to_owned(), show);
    if let Some(want) = c.exists
        && want == first.is_none()
    {
        return Err(if want {
            "missing".to_owned()
        } else {
            format!("should be absent, found {}", shown())
        });
    }
    if let Some(want) = &c.equals
        && !first.is_some_and(|v| same_value(v, want))
    {
        return Err(format!("expected {}, found {}", show(want), shown()));
    }
    if let Some(part) = &c.contains
        && !first
            .and_then(text_of)
            .is_some_and(|t| t.contains(part.as_str()))
    {
        return Err(format!(
            "expected text containing {part:?}, found {}",
            shown()
        ));
    }
    if let Some(re) = &c.matches {
        let ok = regex::Regex::new(re)
            .ok()
            .zip(first.and_then(text_of))
            .is_some_and(|(r, t)| r.is_match(&t));
        if !ok {
            return Err(format!("expected a match of /{re}/, found {}", shown()));
        }
    }
    if let Some(want) = c.approx {
        let tol = c.tolerance.unwrap_or(0.001);
        let got = first.and_then(number_of);
        if !got.is_some_and(|g| (g - want).abs() <= tol) {
            let within = if tol < 1e-6 {
                String::new()
            } else {
                format!(" ± {tol}")
            };
            return Err(format!("expected {want}{within}, found {}", shown()));
        }
    }
    if let Some(want) = &c.count
        && !want.accepts(nodes.len() as u64).unwrap_or(false)
    {
        return Err(format!("expected {want} values, found {}", nodes.len()));
    }
    Ok(())
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Equal, with numbers compared by value (`72.40` equals `72.4`) and objects by their
/// members.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => number_of(a) == number_of(b),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

fn capture(state: &mut State, ctx: &mut StepCtx<'_>, resp: &Response) {
    for (var, cap) in &ctx.step.capture {
        match captured(cap, resp) {
            Some(v) => {
                state.vars.insert(var.clone(), v);
            }
            None => {
                let from = cap.path.as_deref().map_or_else(
                    || format!("header {}", cap.header.as_deref().unwrap_or("")),
                    |p| format!("element {p}"),
                );
                let owner = ctx.owner;
                ctx.finding(
                    format!("Could not capture `{var}` from {from}."),
                    owner,
                    "The answer lacks a value later steps need (a created resource's id in \
                     `Location`, say).",
                    false,
                );
            }
        }
    }
}

fn captured(cap: &Capture, resp: &Response) -> Option<String> {
    let raw = match (&cap.path, &cap.header) {
        (Some(p), _) => ElementPath::parse(p)
            .ok()?
            .first(resp.body.as_ref()?)
            .and_then(text_of)?,
        (None, Some(h)) => header(&resp.headers, h)?,
        (None, None) => return None,
    };
    match &cap.regex {
        None => Some(raw),
        Some(re) => {
            let caps = regex::Regex::new(re).ok()?.captures(&raw)?;
            caps.get(1)
                .or_else(|| caps.get(0))
                .map(|m| m.as_str().to_owned())
        }
    }
}

async fn command(
    state: &State,
    c: &crate::scenario::Command,
    ctx: &mut StepCtx<'_>,
) -> std::result::Result<i32, Stop> {
    let args: Vec<String> = match &c.run {
        CommandLine::Line(line) => shell_words::split(&sub(line, &state.vars)?)
            .map_err(|e| Stop::Skip(format!("cannot split the command line: {e}")))?,
        CommandLine::Args(args) => args
            .iter()
            .map(|a| sub(a, &state.vars))
            .collect::<std::result::Result<_, _>>()?,
    };
    let Some((program, rest)) = args.split_first() else {
        return Err(Stop::Skip("the command is empty".to_owned()));
    };
    ctx.exchange.request = format!("$ {}", shell_words::join(&args));
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in &c.env {
        cmd.env(k, sub(v, &state.vars)?);
    }
    if let Some(dir) = &c.cwd {
        cmd.current_dir(dir);
    }
    let clock = Instant::now();
    let out = match cmd.output().await {
        Ok(o) => o,
        Err(e) => {
            ctx.finding(
                format!("Cannot start `{program}`: {e}."),
                Owner::Data,
                "The scenario names a program this machine cannot run: install it or pass its \
                 path in a variable.",
                false,
            );
            return Err(Stop::Done);
        }
    };
    ctx.exchange.elapsed = clock.elapsed();
    let code = out.status.code().unwrap_or(-1);
    ctx.exchange.status = Some(code);
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    // The end of the output is where a failing command says why.
    let tail: String = {
        let chars: Vec<char> = text.chars().collect();
        chars[chars.len().saturating_sub(EXCERPT_CHARS)..]
            .iter()
            .collect()
    };
    ctx.exchange.response_excerpt = (!tail.trim().is_empty()).then_some(tail);
    Ok(code)
}

fn compare(state: &State, c: &Compare, ctx: &mut StepCtx<'_>) {
    let owner = ctx.owner;
    let (Some(expected), Some(actual)) =
        (state.entries.get(&c.expected), state.entries.get(&c.actual))
    else {
        ctx.finding(
            format!(
                "`{}` or `{}` collected no entries to compare.",
                c.expected, c.actual
            ),
            Owner::Data,
            "Both steps must be searches that ran (with follow_next).",
            false,
        );
        return;
    };
    let keys: Vec<ElementPath> = c
        .key
        .iter()
        .filter_map(|k| ElementPath::parse(k).ok())
        .collect();
    let fields: Vec<ElementPath> = c
        .fields
        .iter()
        .filter_map(|k| ElementPath::parse(k).ok())
        .collect();
    let key_of = |entry: &Value| -> Vec<String> {
        let r = res(entry);
        keys.iter()
            .map(|k| {
                k.eval(r)
                    .iter()
                    .filter_map(|v| normal_text(v))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    };
    let describe = |k: &[String]| -> String {
        c.key
            .iter()
            .zip(k)
            .map(|(path, v)| format!("{path} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut want: BTreeMap<Vec<String>, Vec<&Value>> = BTreeMap::new();
    for e in expected {
        want.entry(key_of(e)).or_default().push(e);
    }
    let mut got: BTreeMap<Vec<String>, Vec<&Value>> = BTreeMap::new();
    for e in actual {
        got.entry(key_of(e)).or_default().push(e);
    }
    for (k, w) in &want {
        let g = got.get(k).map_or(&[][..], Vec::as_slice);
        if g.is_empty() {
            ctx.finding(
                format!(
                    "Lost: {} at the sender ({}) is not at the receiver.",
                    ident(w[0]),
                    describe(k)
                ),
                owner,
                "The sender holds it and the receiver does not: it was lost on the way in.",
                false,
            );
            continue;
        }
        if g.len() > w.len() {
            ctx.finding(
                format!(
                    "Doubled: {} is at the receiver {} times ({}), expected {}.",
                    describe(k),
                    g.len(),
                    g.iter().map(|e| ident(e)).collect::<Vec<_>>().join(", "),
                    w.len()
                ),
                owner,
                "The receiver stored one resource more than once (a replay that is not \
                 idempotent).",
                false,
            );
        }
        let (a, b) = (res(w[0]), res(g[0]));
        for f in &fields {
            let x: Vec<String> = f.eval(a).iter().filter_map(|v| normal_text(v)).collect();
            let y: Vec<String> = f.eval(b).iter().filter_map(|v| normal_text(v)).collect();
            if x != y {
                ctx.finding(
                    format!(
                        "Changed: {} is [{}] in {} at the sender and [{}] in {} at the receiver ({}).",
                        f.as_str(),
                        x.join(", "),
                        ident(w[0]),
                        y.join(", "),
                        ident(g[0]),
                        describe(k)
                    ),
                    owner,
                    "The receiver serves a different value than the sender holds.",
                    false,
                );
            }
        }
    }
    for (k, g) in &got {
        if !want.contains_key(k) {
            ctx.finding_with(
                Severity::Warning,
                format!(
                    "Extra: {} at the receiver ({}) is not at the sender.",
                    g.iter().map(|e| ident(e)).collect::<Vec<_>>().join(", "),
                    describe(k)
                ),
                owner,
                "Left over from an earlier run, or made up on the way.",
            );
        }
    }
}

/// `Type/id` of an entry's resource, for messages.
fn ident(entry: &Value) -> String {
    let r = res(entry);
    format!(
        "{}/{}",
        r.get("resourceType").and_then(Value::as_str).unwrap_or("?"),
        r.get("id").and_then(Value::as_str).unwrap_or("?")
    )
}

fn res(entry: &Value) -> &Value {
    entry.get("resource").unwrap_or(entry)
}

/// A scalar's text for comparison: numbers by value (`72.40` and `72.4` are the same).
/// Instants by value too (`08:10:00+01:00` is `07:10:00Z`).
fn normal_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(_) => number_of(v).map(|n| n.to_string()),
        Value::String(s) => Some(
            s.parse::<jiff::Timestamp>()
                .map_or_else(|_| s.clone(), |t| t.to_string()),
        ),
        other => text_of(other),
    }
}

/// Whether a CapabilityStatement declares a feature: `Type/$op` (an operation), `Type?param`
/// (a search parameter), `Type:interaction` (an interaction), or `transaction`/`batch`.
pub fn declares(capability: &Value, feature: &str) -> bool {
    let rest = capability.pointer("/rest/0").unwrap_or(&Value::Null);
    let resource = |ty: &str| {
        rest.get("resource")
            .and_then(Value::as_array)
            .and_then(|rs| {
                rs.iter()
                    .find(|r| r.get("type").and_then(Value::as_str) == Some(ty))
            })
    };
    let named = |list: Option<&Value>, key: &str, want: &str| {
        list.and_then(Value::as_array).is_some_and(|l| {
            l.iter()
                .any(|x| x.get(key).and_then(Value::as_str) == Some(want))
        })
    };
    if let Some((ty, op)) = feature.split_once("/$") {
        return resource(ty).is_some_and(|r| named(r.get("operation"), "name", op))
            || named(rest.get("operation"), "name", op);
    }
    if let Some((ty, param)) = feature.split_once('?') {
        return resource(ty).is_some_and(|r| named(r.get("searchParam"), "name", param));
    }
    if let Some((ty, interaction)) = feature.split_once(':') {
        return resource(ty).is_some_and(|r| named(r.get("interaction"), "code", interaction));
    }
    named(rest.get("interaction"), "code", feature)
}

/// Turns a failed step whose feature the server does not declare into one warning.
fn not_supported(result: &mut StepResult, feature: &str) {
    let first = result.findings.first().cloned();
    if let Some(mut f) = first {
        f.severity = Severity::Warning;
        f.message = format!(
            "Not supported: {feature} (not declared in the CapabilityStatement). {}",
            f.message
        );
        f.reason = format!(
            "The server does not claim this feature, so this is a gap to know about rather than \
             a fault; it is the {}'s to add if the chain needs it.",
            f.owner.as_str()
        );
        result.findings = vec![f];
        result.outcome = Outcome::Warned;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn c(toml_text: &str) -> Check {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn checks_say_what_they_found() {
        let v = json!(72.40);
        let s = json!("Patient/abc");
        assert!(check(&c("path='x'\nequals=72.4"), &[&v]).is_ok());
        assert!(check(&c("path='x'\napprox=72.5\ntolerance=0.2"), &[&v]).is_ok());
        let e = check(&c("path='x'\napprox=73"), &[&v]).unwrap_err();
        assert!(e.contains("found 72.4"), "{e}");
        assert!(check(&c("path='x'\nmatches='^Patient/[a-z]+$'"), &[&s]).is_ok());
        assert!(check(&c("path='x'\ncontains='tient'"), &[&s]).is_ok());
        assert_eq!(
            check(&c("path='x'\nexists=true"), &[]).unwrap_err(),
            "missing"
        );
        assert!(check(&c("path='x'\nexists=false"), &[&s]).is_err());
        assert!(check(&c("path='x'\ncount='>=2'"), &[&s]).is_err());
        assert!(same_value(
            &json!({"a": [1.0, "x"]}),
            &json!({"a": [1, "x"]})
        ));
        assert!(!same_value(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }

    #[test]
    fn capability_features() {
        let cap = json!({"resourceType": "CapabilityStatement", "rest": [{
            "interaction": [{"code": "transaction"}],
            "resource": [{"type": "Observation",
                "interaction": [{"code": "read"}, {"code": "create"}],
                "searchParam": [{"name": "date"}],
                "operation": [{"name": "lastn"}]}]}]});
        assert!(declares(&cap, "Observation/$lastn"));
        assert!(!declares(&cap, "Observation/$stats"));
        assert!(declares(&cap, "Observation?date"));
        assert!(!declares(&cap, "Observation?code"));
        assert!(declares(&cap, "Observation:create"));
        assert!(!declares(&cap, "Observation:delete"));
        assert!(!declares(&cap, "Patient:read"));
        assert!(declares(&cap, "transaction"));
        assert!(!declares(&cap, "batch"));
    }

    #[test]
    fn compare_finds_lost_doubled_changed_and_extra() {
        let step: Step = toml::from_str(
            r#"
name = "compare"
compare = { expected = "a", actual = "b", key = ["code.coding[0].code", "effectiveDateTime"], fields = ["valueQuantity.value", "component.valueQuantity.value"] }
"#,
        )
        .unwrap();
        let obs = |id: &str, code: &str, when: &str, v: f64| {
            json!({"resource": {"resourceType": "Observation", "id": id,
                "code": {"coding": [{"code": code}]}, "effectiveDateTime": when,
                "valueQuantity": {"value": v}}})
        };
        let sender = vec![
            obs("s1", "29463-7", "2026-03-02T08:12:00+01:00", 81.35),
            obs("s2", "8867-4", "2026-03-02T08:10:00+01:00", 72.0),
            obs("s3", "59408-5", "2026-03-03T21:40:00+01:00", 94.0),
        ];
        let receiver = vec![
            // The same weight, written differently: equal.
            obs("r1", "29463-7", "2026-03-02T07:12:00Z", 81.350),
            // The pulse twice, once changed.
            obs("r2", "8867-4", "2026-03-02T07:10:00Z", 72.0),
            obs("r3", "8867-4", "2026-03-02T07:10:00Z", 73.0),
            // SpO2 lost; something the sender never had.
            obs("r4", "2708-6", "2026-03-04T10:00:00Z", 95.0),
        ];
        let state = State {
            vars: BTreeMap::new(),
            passed: HashSet::new(),
            entries: [("a".to_owned(), sender), ("b".to_owned(), receiver)].into(),
        };
        let mut ctx = StepCtx {
            scenario: "chain",
            step: &step,
            owner: Owner::Receiver,
            findings: Vec::new(),
            exchange: Exchange::default(),
            sent: None,
        };
        let Some(c) = &step.compare else { panic!() };
        compare(&state, c, &mut ctx);
        let messages: Vec<(Severity, &str)> = ctx
            .findings
            .iter()
            .map(|f| (f.severity, f.message.as_str()))
            .collect();
        assert_eq!(messages.len(), 3, "{messages:#?}");
        assert_eq!(messages[0].0, Severity::Error);
        assert!(messages[1].1.starts_with("Doubled: code.coding[0].code = 8867-4, effectiveDateTime = 2026-03-02T07:10:00Z is at the receiver 2 times (Observation/r2, Observation/r3), expected 1."), "{messages:#?}");
        assert!(
            messages[0]
                .1
                .starts_with("Lost: Observation/s3 at the sender (code.coding[0].code = 59408-5"),
            "{messages:#?}"
        );
        assert_eq!(messages[2].0, Severity::Warning);
        assert!(
            messages[2]
                .1
                .starts_with("Extra: Observation/r4 at the receiver"),
            "{messages:#?}"
        );
        // Changed, when the receiver's only copy differs.
        let mut state = state;
        if let Some(b) = state.entries.get_mut("b") {
            b.remove(1);
        }
        ctx.findings.clear();
        compare(&state, c, &mut ctx);
        let changed: Vec<&str> = ctx
            .findings
            .iter()
            .map(|f| f.message.as_str())
            .filter(|m| m.starts_with("Changed"))
            .collect();
        assert_eq!(
            changed,
            [
                "Changed: valueQuantity.value is [72] in Observation/s2 at the sender and [73] in Observation/r3 at the receiver (code.coding[0].code = 8867-4, effectiveDateTime = 2026-03-02T07:10:00Z)."
            ]
        );
    }

    #[test]
    fn only_matches_count_as_entries() {
        let b = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Observation", "id": "o1"}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "Observation", "id": "o2"}},
            {"resource": {"resourceType": "Patient", "id": "p1"}, "search": {"mode": "include"}},
            {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}}]});
        let ids: Vec<String> = entries_of(Some(&b)).iter().map(ident).collect();
        assert_eq!(ids, ["Observation/o1", "Observation/o2"]);
        assert!(entries_of(Some(&json!({"resourceType": "Patient", "entry": [{}]}))).is_empty());
    }

    #[test]
    fn excerpts_cut_at_characters() {
        let long = "ø".repeat(EXCERPT_CHARS + 10);
        let e = excerpt(&long);
        assert!(e.starts_with(&"ø".repeat(EXCERPT_CHARS)));
        assert!(e.contains("bytes in all"));
        assert_eq!(excerpt("short"), "short");
    }
}
