//! Running TestScripts: fixtures, variables, operations and asserts.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::info;

use super::TestScript;
use super::report::{Kind, Record, Section, test_report};
use crate::run::http::{BodyError, header, read_body, transport_reason};
use crate::run::{Exchange, Finding, Outcome, Run, Runner, ScenarioResult, StepResult};
use crate::scenario::{Owner, Phase, Severity};

/// The Touchstone extension R4 scripts carry for R5's `stopTestOnFail`.
const STOP_TEST_ON_FAIL: &str = "testscript-assert-stopTestOnFail";

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
struct Resp {
    method: String,
    url: String,
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Option<Value>,
    text: String,
}

/// One script's state while it runs.
struct State<'a> {
    script: &'a TestScript,
    /// `--var`s and the runner's own (`base`, `run`).
    vars: BTreeMap<String, String>,
    fixtures: BTreeMap<String, Value>,
    fixture_errors: BTreeMap<String, String>,
    responses: BTreeMap<String, Rc<Resp>>,
    last: Option<Rc<Resp>>,
    /// The last exchange, quoted by the asserts' findings.
    last_exchange: Option<Exchange>,
    /// Fixtures created on the server: fixture id -> (type, id).
    created: BTreeMap<String, (String, String)>,
    /// The FHIR rule the last operation broke (its failures are the script's).
    script_fault: Option<String>,
    seq: usize,
}

/// What one action did.
struct Done {
    outcome: Outcome,
    findings: Vec<Finding>,
    exchange: Option<Exchange>,
    message: String,
    /// An assert with stopTestOnFail failed: the rest of the test is skipped.
    stop: bool,
}

impl Done {
    fn skip(reason: String) -> Self {
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
        for s in scripts {
            let (result, records) = self.run_script(s).await;
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

    async fn run_script(&self, script: &TestScript) -> (ScenarioResult, Vec<Record>) {
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
            (None, Some(asrt)) => assertion(st, asrt, name, &self.base),
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

    /// The base URL an operation goes to: its destination by index or profile code, mapped
    /// with `--dest`, else the runner's base.
    fn base_for(&self, script: &TestScript, op: &Value) -> String {
        let Some(index) = op["destination"].as_i64() else {
            return self.base.clone();
        };
        if let Some(url) = self.dests.get(&index.to_string()) {
            return url.clone();
        }
        let code = list(&script.resource["destination"])
            .iter()
            .find(|d| d["index"].as_i64() == Some(index))
            .and_then(|d| d["profile"]["code"].as_str());
        code.and_then(|c| self.dests.get(c))
            .cloned()
            .unwrap_or_else(|| self.base.clone())
    }

    async fn operation(&self, st: &mut State<'_>, op: &Value, name: &str) -> Done {
        let script = st.script;
        st.script_fault = None;
        if let Some(url) = unknown_extension(op, &[]) {
            return skip_finding(
                script,
                name,
                &format!(
                    "the operation carries extension `{url}`, which the checker does not know"
                ),
            );
        }
        for key in ["accept", "contentType"] {
            if let Some(ct) = op[key].as_str()
                && !ct.contains("json")
            {
                return skip_finding(
                    script,
                    name,
                    &format!(
                        "the operation asks for {key} `{ct}`: only JSON is sent and read in this round"
                    ),
                );
            }
        }
        let code = op["type"]["code"].as_str().unwrap_or_default().to_owned();
        let base = self.base_for(script, op);
        let mut findings = Vec::new();
        let mut fault: Option<String> = None;

        // The body: a fixture or an earlier response, variables substituted.
        let mut body: Option<Value> = match op["sourceId"].as_str() {
            None => None,
            Some(id) => match source(st, id) {
                Ok(v) => match subst_json(st, &v) {
                    Ok(v) => Some(v),
                    Err(reason) => return skip_finding(script, name, &reason),
                },
                Err(reason) => return script_error(script, name, reason),
            },
        };
        let rtype = op["resource"].as_str().map(str::to_owned).or_else(|| {
            body.as_ref()
                .and_then(|b| b["resourceType"].as_str())
                .map(str::to_owned)
        });
        let target = match op["targetId"].as_str() {
            None => None,
            Some(t) => match target_of(st, t) {
                Some(x) => Some(x),
                None => {
                    return script_error(
                        script,
                        name,
                        format!(
                            "targetId `{t}` names no fixture or response with a type and an id (did the operation that makes it fail?)"
                        ),
                    );
                }
            },
        };
        let params = match op["params"].as_str().map(|p| subst(st, p)).transpose() {
            Ok(p) => p.unwrap_or_default(),
            Err(reason) => return skip_finding(script, name, &reason),
        };
        let ty = target.as_ref().map(|t| t.0.clone()).or(rtype.clone());
        let mut put_id: Option<String> = None;
        let join = |path: &str| format!("{base}/{}", path.trim_start_matches('/'));
        let (method, url) = if let Some(u) = op["url"].as_str() {
            let u = match subst(st, u) {
                Ok(u) => u,
                Err(reason) => return skip_finding(script, name, &reason),
            };
            let m = if body.is_some() { "POST" } else { "GET" };
            (m.to_owned(), absolute(&base, &u))
        } else {
            let need_type = || {
                ty.clone().ok_or_else(|| format!("the `{code}` operation names no resource type (resource, targetId or sourceId)"))
            };
            let with_params = |path: String| format!("{}{params}", join(&path));
            match code.as_str() {
                "read" | "vread" | "history" | "delete" => {
                    let t = match need_type() {
                        Ok(t) => t,
                        Err(e) => return script_error(script, name, e),
                    };
                    if code == "read" && target.is_none() && !params.is_empty() {
                        fault = Some("FHIR R4 http.html#read: a read is GET [type]/[id]; search parameters make it a search".to_owned());
                    }
                    let path = match (&target, code.as_str()) {
                        (Some((_, id, _)), "history") => format!("{t}/{id}/_history"),
                        (None, "history") => format!("{t}/_history"),
                        (Some((_, id, Some(v))), "vread") => format!("{t}/{id}/_history/{v}"),
                        (Some((_, id, None)), "vread") => {
                            return script_error(
                                script,
                                name,
                                format!(
                                    "vread of {t}/{id}: the target has no version id (meta.versionId or an ETag)"
                                ),
                            );
                        }
                        (Some((_, id, _)), _) => format!("{t}/{id}"),
                        (None, _) if !params.is_empty() => t.clone(),
                        (None, _) => {
                            return script_error(
                                script,
                                name,
                                format!("the `{code}` operation has neither targetId nor params"),
                            );
                        }
                    };
                    let m = if code == "delete" { "DELETE" } else { "GET" };
                    (m.to_owned(), with_params(path))
                }
                "create" => match need_type() {
                    Ok(t) => ("POST".to_owned(), with_params(t)),
                    Err(e) => return script_error(script, name, e),
                },
                "update" | "updateCreate" => {
                    let t = match need_type() {
                        Ok(t) => t,
                        Err(e) => return script_error(script, name, e),
                    };
                    let body_id = body
                        .as_ref()
                        .and_then(|b| b["id"].as_str())
                        .map(str::to_owned);
                    let Some(id) = target.as_ref().map(|x| x.1.clone()).or(body_id.clone()) else {
                        return script_error(
                            script,
                            name,
                            "the update has no targetId and its body no id".to_owned(),
                        );
                    };
                    if let Some(b) = &body_id
                        && *b != id
                    {
                        let rule = "FHIR R4 http.html#update: the id in the body must be the id in the URL; a server SHALL refuse an update whose ids differ with 400 Bad Request";
                        findings.push(finding(
                            script,
                            name,
                            Severity::Error,
                            format!("The script updates {t}/{id} with a body whose id is `{b}`."),
                            Owner::Script,
                            rule,
                        ));
                        fault = Some(rule.to_owned());
                    }
                    put_id = Some(id.clone());
                    ("PUT".to_owned(), with_params(format!("{t}/{id}")))
                }
                "search" => match need_type() {
                    Ok(t) => ("GET".to_owned(), with_params(t)),
                    Err(_) => ("GET".to_owned(), format!("{base}{params}")),
                },
                "capabilities" => ("GET".to_owned(), join("metadata")),
                "transaction" | "batch" => {
                    if body.as_ref().is_none_or(|b| b["resourceType"] != "Bundle") {
                        return script_error(
                            script,
                            name,
                            format!("a {code} sends a Bundle (sourceId)"),
                        );
                    }
                    ("POST".to_owned(), base.clone())
                }
                "" => {
                    return script_error(
                        script,
                        name,
                        "the operation has no type and no url".to_owned(),
                    );
                }
                other if other.starts_with('$') || !KNOWN_CODES.contains(&other) => {
                    let opname = format!("${}", other.trim_start_matches('$'));
                    let path = match (&target, &ty) {
                        (Some((t, id, _)), _) => format!("{t}/{id}/{opname}"),
                        (None, Some(t)) => format!("{t}/{opname}"),
                        (None, None) => opname,
                    };
                    let m = if body.is_some() { "POST" } else { "GET" };
                    (m.to_owned(), with_params(path))
                }
                other => {
                    return skip_finding(
                        script,
                        name,
                        &format!("operation type `{other}` is not run by the checker yet"),
                    );
                }
            }
        };
        let method = op["method"]
            .as_str()
            .map_or(method, str::to_ascii_uppercase);
        // An update's body carries the id of its URL (R4 http.html#update).
        if let (Some(id), Some(Value::Object(b))) = (put_id, body.as_mut()) {
            b.entry("id").or_insert(Value::String(id));
        }
        if let Some(f) = &fault
            && !findings.iter().any(|x| x.owner == Owner::Script)
        {
            findings.push(finding(
                script,
                name,
                Severity::Error,
                format!("The script's `{code}` contradicts FHIR."),
                Owner::Script,
                f,
            ));
        }
        let mut headers = Vec::new();
        for h in list(&op["requestHeader"]) {
            let (Some(k), Some(v)) = (h["field"].as_str(), h["value"].as_str()) else {
                return script_error(
                    script,
                    name,
                    "a requestHeader needs field and value".to_owned(),
                );
            };
            match subst(st, v) {
                Ok(v) => headers.push((k.to_owned(), v)),
                Err(reason) => return skip_finding(script, name, &reason),
            }
        }
        st.seq += 1;
        let request_id = format!("hc-{}-ts{}", self.run_id, st.seq);
        let text = body
            .as_ref()
            .map(|b| serde_json::to_string_pretty(b).unwrap_or_default());
        let mut exchange = Exchange {
            request: format!("{method} {url}"),
            request_body: text.as_deref().map(excerpt),
            request_id: Some(request_id.clone()),
            ..Exchange::default()
        };
        let clock = Instant::now();
        let sent = self
            .send_raw(&method, &url, &headers, text, &request_id)
            .await;
        exchange.elapsed = clock.elapsed();
        st.script_fault = fault;
        let resp = match sent {
            Ok(r) => r,
            Err(why) => {
                // Asserts after it must not judge an earlier answer.
                st.last = None;
                st.last_exchange = Some(exchange.clone());
                findings.push(Finding {
                    transport: true,
                    exchange: Some(exchange.clone()),
                    ..finding(script, name, Severity::Error, format!("The request failed: {why}."), Owner::Receiver,
                        "The server could not be reached, broke the connection or did not answer in time.")
                });
                info!(script = %script.name, action = %name, "testscript operation failed");
                return Done {
                    outcome: Outcome::Failed,
                    findings,
                    exchange: Some(exchange),
                    message: format!("{method} {url}: the request failed"),
                    stop: false,
                };
            }
        };
        exchange.status = Some(i32::from(resp.status));
        exchange.echoed_request_id = header(&resp.headers, "x-request-id");
        exchange.headers = ["content-type", "location", "etag"]
            .iter()
            .filter_map(|h| header(&resp.headers, h).map(|v| ((*h).to_owned(), v)))
            .collect();
        exchange.response_excerpt = Some(excerpt(&resp.text));
        let resp = Rc::new(Resp {
            method: method.clone(),
            ..resp
        });
        if code == "create"
            && let Some(src) = op["sourceId"].as_str()
            && let Some((t, id, _)) = identity(&resp)
        {
            st.created.insert(src.to_owned(), (t, id));
        }
        if let Some(rid) = op["responseId"].as_str() {
            st.responses.insert(rid.to_owned(), resp.clone());
        }
        let message = format!("{method} {url} answered {}", resp.status);
        st.last = Some(resp);
        st.last_exchange = Some(exchange.clone());
        for f in &mut findings {
            f.exchange = Some(exchange.clone());
        }
        let outcome = if findings.iter().any(|f| f.severity == Severity::Error) {
            Outcome::Failed
        } else {
            Outcome::Passed
        };
        Done {
            outcome,
            findings,
            exchange: Some(exchange),
            message,
            stop: false,
        }
    }

    /// One request with the runner's client, headers and time limit; the body bounded.
    async fn send_raw(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<String>,
        request_id: &str,
    ) -> std::result::Result<Resp, String> {
        let m = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("`{method}` is not an HTTP method"))?;
        let mut req = self
            .client
            .request(m, url)
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
        let go = async {
            let resp = req.send().await.map_err(|e| transport_reason(&e))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let text = match read_body(resp).await {
                Ok(t) => t,
                Err(BodyError::Broken(e)) => return Err(format!("the answer broke off: {e}")),
                Err(BodyError::TooLarge { .. }) => {
                    return Err("the answer is larger than 16 MiB".to_owned());
                }
            };
            Ok((status, headers, text))
        };
        let limit: Duration = self.timeout;
        let (status, headers, text) = tokio::time::timeout(limit, go).await.map_err(|_| {
            format!(
                "no answer within {:.0} s (the time limit)",
                limit.as_secs_f64()
            )
        })??;
        let body = serde_json::from_str(&text).ok();
        Ok(Resp {
            method: method.to_owned(),
            url: url.to_owned(),
            status,
            headers,
            body,
            text,
        })
    }
}

/// A URL as a script or a `Location` header writes it, made absolute against `base`: as is when
/// it has a scheme, against the server's origin when it starts with `/`, else under `base`.
fn absolute(base: &str, u: &str) -> String {
    if u.starts_with("http://") || u.starts_with("https://") {
        return u.to_owned();
    }
    if u.starts_with('/') {
        let origin_end = base
            .find("://")
            .and_then(|s| base[s + 3..].find('/').map(|p| s + 3 + p))
            .unwrap_or(base.len());
        return format!("{}{u}", &base[..origin_end]);
    }
    format!("{base}/{u}")
}

/// The R4 operation codes the checker knows by name (others are named operations, `$code`).
const KNOWN_CODES: &[&str] = &[
    "read",
    "vread",
    "update",
    "updateCreate",
    "patch",
    "delete",
    "deleteCondSingle",
    "deleteCondMultiple",
    "history",
    "create",
    "search",
    "batch",
    "transaction",
    "capabilities",
];

#[allow(clippy::too_many_arguments)]
fn push(
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

fn finding(
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
fn skip_finding(script: &TestScript, name: &str, reason: &str) -> Done {
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
fn script_error(script: &TestScript, name: &str, message: String) -> Done {
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

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((at, _)) => format!("{}\n… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}

/// The kind and a label of an action, for step names.
fn describe(a: &Value) -> (Kind, String) {
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
fn unknown_extension(v: &Value, known: &[&str]) -> Option<String> {
    ["extension", "modifierExtension"]
        .iter()
        .flat_map(|k| list(&v[*k]))
        .filter_map(|e| e["url"].as_str())
        .find(|u| !known.iter().any(|k| u.ends_with(k)))
        .map(str::to_owned)
}

fn load_fixtures(st: &mut State<'_>) {
    let script = st.script;
    for f in list(&script.resource["fixture"]) {
        let Some(id) = f["id"].as_str() else { continue };
        let Some(reference) = f["resource"]["reference"].as_str() else {
            st.fixture_errors.insert(
                id.to_owned(),
                format!("fixture `{id}` has no resource.reference"),
            );
            continue;
        };
        match fixture(script, reference) {
            Ok(v) => {
                st.fixtures.insert(id.to_owned(), v);
            }
            Err(e) => {
                st.fixture_errors
                    .insert(id.to_owned(), format!("fixture `{id}` ({reference}): {e}"));
            }
        }
    }
}

/// A fixture: `#id` (contained), `Type/id` (a file `Type-id.json` or `.xml` next to the script)
/// or a file relative to the script.
fn fixture(script: &TestScript, reference: &str) -> std::result::Result<Value, String> {
    if let Some(id) = reference.strip_prefix('#') {
        return list(&script.resource["contained"])
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .ok_or_else(|| format!("the script contains no resource with id `{id}`"));
    }
    let dir = script.dir.clone().unwrap_or_default();
    let typed = reference.split_once('/').filter(|(t, id)| {
        t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && t.chars().all(|c| c.is_ascii_alphabetic())
            && !id.contains('/')
            && !id.contains('.')
    });
    let candidates: Vec<std::path::PathBuf> = match typed {
        Some((t, id)) => vec![
            dir.join(format!("{t}-{id}.json")),
            dir.join(format!("{t}-{id}.xml")),
        ],
        None => vec![dir.join(reference)],
    };
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        return Err(format!(
            "no file {}",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    };
    read_fixture(path)
}

fn read_fixture(path: &Path) -> std::result::Result<Value, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if len > super::MAX_FILE_BYTES {
        return Err(format!("{} is larger than 16 MiB", path.display()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if super::is_xml(path, &text) {
        super::xml_to_json(&text)
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
    }
}

/// A fixture or an earlier response's body, by id.
fn source(st: &State<'_>, id: &str) -> std::result::Result<Value, String> {
    if let Some(v) = st.fixtures.get(id) {
        return Ok(v.clone());
    }
    if let Some(r) = st.responses.get(id) {
        return r
            .body
            .clone()
            .ok_or_else(|| format!("response `{id}` has no JSON body"));
    }
    Err(st
        .fixture_errors
        .get(id)
        .cloned()
        .unwrap_or_else(|| format!("`{id}` names no fixture and no earlier response")))
}

/// (type, id, version) of what a response is about: its body, else its Location.
fn identity(r: &Resp) -> Option<(String, String, Option<String>)> {
    if let Some(b) = &r.body
        && let (Some(t), Some(id)) = (b["resourceType"].as_str(), b["id"].as_str())
        && t != "OperationOutcome"
    {
        let v = b["meta"]["versionId"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| etag_version(r));
        return Some((t.to_owned(), id.to_owned(), v));
    }
    let loc = header(&r.headers, "location")?;
    let parts: Vec<&str> = loc.split('/').collect();
    let at = parts.iter().rposition(|p| *p == "_history");
    let (t, id, v) = match at {
        Some(i) if i >= 2 => (
            parts[i - 2],
            parts[i - 1],
            parts.get(i + 1).map(|s| (*s).to_owned()),
        ),
        _ if parts.len() >= 2 => (parts[parts.len() - 2], parts[parts.len() - 1], None),
        _ => return None,
    };
    Some((t.to_owned(), id.to_owned(), v))
}

fn etag_version(r: &Resp) -> Option<String> {
    let e = header(&r.headers, "etag")?;
    Some(e.trim_start_matches("W/").trim_matches('"').to_owned())
}

/// What a targetId points at: a response's resource, a created fixture, or a fixture's own id.
fn target_of(st: &State<'_>, id: &str) -> Option<(String, String, Option<String>)> {
    if let Some(r) = st.responses.get(id) {
        return identity(r);
    }
    if let Some((t, i)) = st.created.get(id) {
        return Some((t.clone(), i.clone(), None));
    }
    let f = st.fixtures.get(id)?;
    Some((
        f["resourceType"].as_str()?.to_owned(),
        f["id"].as_str()?.to_owned(),
        f["meta"]["versionId"].as_str().map(str::to_owned),
    ))
}

/// The value of `${name}`: a built-in placeholder, a `--var`, or a script variable.
fn resolve(
    st: &State<'_>,
    vars: &BTreeMap<String, String>,
    name: &str,
) -> std::result::Result<String, String> {
    match name {
        "UUID" => return Ok(uuid::Uuid::new_v4().to_string()),
        "CURRENTDATE" => return Ok(jiff::Zoned::now().date().to_string()),
        "CURRENTDATETIME" => {
            return Ok(jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .map(|t| t.to_string())
                .unwrap_or_default());
        }
        _ => {}
    }
    if name.starts_with("DATE,") {
        return Err(format!(
            "the placeholder `${{{name}}}` (a date offset) is not supported in this round"
        ));
    }
    if let Some(v) = vars.get(name) {
        return Ok(v.clone());
    }
    let Some(var) = list(&st.script.resource["variable"])
        .iter()
        .find(|v| v["name"] == name)
    else {
        return Err(format!(
            "`${{{name}}}` is used, but the script defines no variable `{name}` (pass --var {name}=…)"
        ));
    };
    if var.get("expression").is_some() {
        return Err(format!(
            "variable `{name}` is a FHIRPath expression, not evaluated in this round"
        ));
    }
    if var.get("path").is_some() {
        return Err(format!(
            "variable `{name}` is an XPath/JSONPath path, not evaluated in this round"
        ));
    }
    if let Some(h) = var["headerField"].as_str() {
        let resp = match var["sourceId"].as_str() {
            Some(s) => st.responses.get(s),
            None => st.last.as_ref(),
        };
        let Some(resp) = resp else {
            return Err(format!(
                "variable `{name}` reads header {h} of a response not received (yet)"
            ));
        };
        if let Some(v) = header(&resp.headers, h) {
            return Ok(v);
        }
        if let Some(d) = var["defaultValue"].as_str() {
            return Ok(d.to_owned());
        }
        return Err(format!("variable `{name}`: the response has no header {h}"));
    }
    var["defaultValue"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("variable `{name}` has no value: pass --var {name}=…"))
}

/// Substitutes every `${name}` in `text` (`$${` is a literal `${`); the error is why not.
fn subst(st: &State<'_>, text: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if at > 0 && rest.as_bytes()[at - 1] == b'$' {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let Some(end) = tail.find('}') else {
            return Err(format!("`${{` without a closing `}}` in `{text}`"));
        };
        out.push_str(&resolve(st, &st.vars, tail[..end].trim())?);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn subst_json(st: &State<'_>, v: &Value) -> std::result::Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(subst(st, s)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| subst_json(st, x))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Value::Object(o) => {
            let mut m = serde_json::Map::new();
            for (k, x) in o {
                m.insert(k.clone(), subst_json(st, x)?);
            }
            Value::Object(m)
        }
        other => other.clone(),
    })
}

/// The assert codes for status codes (R4 assert-response-code-types).
const RESPONSES: &[(&str, u16)] = &[
    ("okay", 200),
    ("created", 201),
    ("noContent", 204),
    ("notModified", 304),
    ("bad", 400),
    ("forbidden", 403),
    ("notFound", 404),
    ("methodNotAllowed", 405),
    ("conflict", 409),
    ("gone", 410),
    ("preconditionFailed", 412),
    ("unprocessable", 422),
];

/// Compares with an assert operator; `Err` is an operator the checker does not know.
fn compare(actual: Option<&str>, expected: &str, op: &str) -> std::result::Result<bool, String> {
    let a = actual.unwrap_or_default();
    Ok(match op {
        "equals" => actual.is_some() && a == expected,
        "notEquals" => a != expected,
        "in" => actual.is_some() && expected.split(',').any(|e| e.trim() == a),
        "notIn" => !expected.split(',').any(|e| e.trim() == a),
        "greaterThan" | "lessThan" => {
            let (Ok(x), Ok(y)) = (a.trim().parse::<f64>(), expected.trim().parse::<f64>()) else {
                return Ok(false);
            };
            if op == "greaterThan" { x > y } else { x < y }
        }
        "empty" => a.is_empty(),
        "notEmpty" => !a.is_empty(),
        "contains" => actual.is_some() && a.contains(expected),
        "notContains" => !a.contains(expected),
        other => return Err(format!("operator `{other}` is not supported")),
    })
}

/// The elements of `want` missing from `have` (arrays: every wanted item matches some item).
fn missing(want: &Value, have: &Value, path: &str, out: &mut Vec<String>) {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            for (k, v) in w {
                if path.is_empty() && matches!(k.as_str(), "id" | "meta" | "text") {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match h.get(k) {
                    Some(x) => missing(v, x, &p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(w), Value::Array(h)) => {
            for (i, item) in w.iter().enumerate() {
                let found = h.iter().any(|x| {
                    let mut m = Vec::new();
                    missing(item, x, "", &mut m);
                    m.is_empty()
                });
                if !found {
                    out.push(format!("{path}[{i}]"));
                }
            }
        }
        (w, h) if w == h => {}
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        _ => out.push(path.to_owned()),
    }
}

fn assertion(st: &mut State<'_>, a: &Value, name: &str, base: &str) -> Done {
    let script = st.script;
    if let Some(url) = unknown_extension(a, &[STOP_TEST_ON_FAIL]) {
        return skip_finding(
            script,
            name,
            &format!(
                "the assert carries extension `{url}`, which the checker does not know (a Touchstone rule, say)"
            ),
        );
    }
    let stop_on_fail = list(&a["extension"]).iter().any(|e| {
        e["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(STOP_TEST_ON_FAIL))
            && e["valueBoolean"] == true
    }) || a["stopTestOnFail"] == true;
    for (key, why) in [
        (
            "expression",
            "a FHIRPath `expression` assert (FHIRPath comes in the next round)",
        ),
        (
            "path",
            "an XPath/JSONPath `path` assert (XPath comes in the next round)",
        ),
        (
            "compareToSourceExpression",
            "a `compareToSourceExpression` assert (FHIRPath comes in the next round)",
        ),
        (
            "compareToSourcePath",
            "a `compareToSourcePath` assert (XPath comes in the next round)",
        ),
        (
            "compareToSourceId",
            "a `compareToSourceId` assert (it compares expressions, next round)",
        ),
    ] {
        if a.get(key).is_some() {
            return skip_finding(script, name, why);
        }
    }
    let op = a["operator"].as_str().unwrap_or("equals");
    if compare(Some(""), "", op).is_err() {
        return skip_finding(script, name, &format!("operator `{op}` is not supported"));
    }
    let value = match a["value"].as_str().map(|v| subst(st, v)).transpose() {
        Ok(v) => v,
        Err(reason) => return skip_finding(script, name, &reason),
    };
    let request_side = a["direction"] == "request";
    let resp = match a["sourceId"].as_str() {
        Some(s) => match st.responses.get(s) {
            Some(r) => Some(r.clone()),
            None if st.fixtures.contains_key(s) => None,
            None => {
                return skip_finding(
                    script,
                    name,
                    &format!("sourceId `{s}` names no response received"),
                );
            }
        },
        None => st.last.clone(),
    };
    let kinds = [
        "response",
        "responseCode",
        "contentType",
        "resource",
        "headerField",
        "minimumId",
        "navigationLinks",
        "requestURL",
        "requestMethod",
        "validateProfileId",
    ];
    let Some(kind) = kinds.iter().find(|k| a.get(**k).is_some()) else {
        return skip_finding(script, name, "the assert checks nothing the checker knows");
    };
    if request_side && !matches!(*kind, "requestURL" | "requestMethod") {
        return skip_finding(
            script,
            name,
            "a request-direction assert would test the checker's own request (client-role scripts come later)",
        );
    }
    let Some(resp) = resp else {
        return skip_finding(
            script,
            name,
            "there is no response to assert on (no operation ran before it)",
        );
    };
    let body_type = resp.body.as_ref().and_then(|b| b["resourceType"].as_str());
    // Ok(None): holds; Ok(Some(msg)): fails; Err: skipped.
    let verdict: std::result::Result<Option<String>, String> = (|| {
        let check = |what: &str,
                     actual: Option<&str>,
                     expected: &str|
         -> std::result::Result<Option<String>, String> {
            Ok((!compare(actual, expected, op)?).then(|| {
                format!(
                    "{what}: expected {op} `{expected}`, got `{}`",
                    actual.unwrap_or("(none)")
                )
            }))
        };
        match *kind {
            "response" => {
                let code = a["response"].as_str().unwrap_or_default();
                let Some((_, n)) = RESPONSES.iter().find(|(c, _)| *c == code) else {
                    return Err(format!(
                        "response `{code}` is not an R4 assert response code"
                    ));
                };
                let actual = resp.status.to_string();
                check("response status", Some(&actual), &n.to_string())
                    .map(|m| m.map(|m| format!("{m} ({code})")))
            }
            "responseCode" => {
                let actual = resp.status.to_string();
                check(
                    "response code",
                    Some(&actual),
                    a["responseCode"].as_str().unwrap_or_default(),
                )
            }
            "contentType" => {
                let want = match a["contentType"].as_str().unwrap_or_default() {
                    "json" => "application/fhir+json",
                    "xml" => "application/fhir+xml",
                    x => x,
                };
                let got = header(&resp.headers, "content-type");
                let mime = got
                    .as_deref()
                    .map(|g| g.split(';').next().unwrap_or_default().trim().to_owned());
                check("Content-Type", mime.as_deref(), want)
            }
            "resource" => check(
                "resource type",
                body_type,
                a["resource"].as_str().unwrap_or_default(),
            ),
            "headerField" => {
                let h = a["headerField"].as_str().unwrap_or_default();
                let got = header(&resp.headers, h);
                check(
                    &format!("header {h}"),
                    got.as_deref(),
                    value.as_deref().unwrap_or_default(),
                )
            }
            "minimumId" => {
                let id = a["minimumId"].as_str().unwrap_or_default();
                let want = source(st, id).map_err(|e| format!("minimumId: {e}"))?;
                let want = subst_json(st, &want)?;
                let Some(have) = &resp.body else {
                    return Ok(Some("minimumId: the response has no JSON body".to_owned()));
                };
                let mut out = Vec::new();
                missing(&want, have, "", &mut out);
                Ok((!out.is_empty()).then(|| {
                    format!(
                        "minimumId `{id}`: the response lacks or differs at {}",
                        out.join(", ")
                    )
                }))
            }
            "navigationLinks" => {
                let Some(b) = resp.body.as_ref().filter(|_| body_type == Some("Bundle")) else {
                    return Ok(Some(
                        "navigationLinks: the response is not a Bundle".to_owned(),
                    ));
                };
                let links = list(&b["link"]);
                let has = |rel: &str| {
                    links
                        .iter()
                        .any(|l| l["relation"] == rel && l["url"].is_string())
                };
                let entries = list(&b["entry"]).len() as u64;
                let more = b["total"].as_u64().is_some_and(|t| t > entries);
                let mut lacking = Vec::new();
                if !has("self") {
                    lacking.push("self");
                }
                if more && !has("next") {
                    lacking.push("next (the total is more than this page)");
                }
                let url_of = |rel: &str| {
                    links
                        .iter()
                        .find(|l| l["relation"] == rel)
                        .and_then(|l| l["url"].as_str())
                };
                if url_of("next").is_some() && url_of("next") == url_of("self") {
                    lacking.push("next that leads on (next is this page itself: a loop)");
                }
                let holds = lacking.is_empty();
                let want = a["navigationLinks"] != false;
                Ok((holds != want).then(|| {
                    if want {
                        format!(
                            "navigationLinks: the Bundle has no {} link",
                            lacking.join(", ")
                        )
                    } else {
                        "navigationLinks: expected no navigation links, found them".to_owned()
                    }
                }))
            }
            "requestURL" => {
                let want = a["requestURL"].as_str().unwrap_or_default();
                let want = subst(st, want)?;
                let want = if want.starts_with("http") || op.contains("ontains") {
                    want
                } else {
                    format!("{base}/{}", want.trim_start_matches('/'))
                };
                check("request URL", Some(&resp.url), &want)
            }
            "requestMethod" => {
                let got = resp.method.to_ascii_lowercase();
                check(
                    "request method",
                    Some(&got),
                    &a["requestMethod"]
                        .as_str()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                )
            }
            "validateProfileId" => {
                let pid = a["validateProfileId"].as_str().unwrap_or_default();
                let Some(profile) = list(&st.script.resource["profile"])
                    .iter()
                    .find(|p| p["id"] == pid)
                else {
                    return Err(format!(
                        "validateProfileId `{pid}` names no TestScript.profile"
                    ));
                };
                let reference = profile["reference"]
                    .as_str()
                    .unwrap_or("(no reference)")
                    .to_owned();
                if resp.body.is_none() {
                    return Ok(Some(
                        "validateProfileId: the response has no JSON body".to_owned(),
                    ));
                }
                match healthanalyzer_fhir::check_strict(&resp.text) {
                    Ok(()) => Ok(None),
                    Err(e) => Ok(Some(format!(
                        "the response is not valid R4 (base structure; profile {reference} not checked): {e}"
                    ))),
                }
            }
            _ => Err("the assert checks nothing the checker knows".to_owned()),
        }
    })();
    match verdict {
        Err(reason) => skip_finding(script, name, &reason),
        Ok(None) => Done {
            outcome: Outcome::Passed,
            findings: Vec::new(),
            exchange: None,
            message: if *kind == "validateProfileId" {
                "valid under the base R4 structure; the profile's own constraints (slices, fixed values, bindings, invariants) are not checked".to_owned()
            } else {
                format!("{kind} holds")
            },
            stop: false,
        },
        Ok(Some(message)) => {
            let warning = a["warningOnly"] == true;
            let severity = if warning {
                Severity::Warning
            } else {
                Severity::Error
            };
            let (owner, reason) = match &st.script_fault {
                Some(rule) => (
                    Owner::Script,
                    format!(
                        "The operation before contradicts FHIR ({rule}), so what the server answers is the script's doing."
                    ),
                ),
                None => (
                    Owner::Receiver,
                    "The server's answer is not what the script (and FHIR) expect of it."
                        .to_owned(),
                ),
            };
            Done {
                outcome: if warning {
                    Outcome::Warned
                } else {
                    Outcome::Failed
                },
                findings: vec![Finding {
                    exchange: st.last_exchange.clone(),
                    ..finding(
                        script,
                        name,
                        severity,
                        format!("{message}."),
                        owner,
                        &reason,
                    )
                }],
                exchange: st.last_exchange.clone(),
                message,
                stop: stop_on_fail && !warning,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn operators_compare_as_the_spec_says() {
        assert_eq!(compare(Some("201"), "200,201", "in"), Ok(true));
        assert_eq!(compare(Some("404"), "200, 201", "in"), Ok(false));
        assert_eq!(compare(Some("404"), "200,201", "notIn"), Ok(true));
        assert_eq!(compare(Some("10"), "9", "greaterThan"), Ok(true));
        assert_eq!(compare(Some("abc"), "9", "greaterThan"), Ok(false));
        assert_eq!(compare(Some("8"), "9", "lessThan"), Ok(true));
        assert_eq!(compare(None, "", "empty"), Ok(true));
        assert_eq!(compare(None, "x", "equals"), Ok(false));
        assert_eq!(compare(Some("a-b"), "-", "contains"), Ok(true));
        assert!(
            compare(Some("x"), "x", "eval")
                .unwrap_err()
                .contains("`eval`")
        );
    }

    #[test]
    fn minimum_id_lists_what_is_missing_and_ignores_array_order() {
        let want = json!({"id": "x", "code": {"coding": [{"code": "a"}, {"code": "b"}]}, "valueQuantity": {"value": 1.0}});
        let have = json!({"id": "y", "code": {"coding": [{"code": "b", "system": "s"}, {"code": "a"}]}, "valueQuantity": {"value": 1}});
        let mut out = Vec::new();
        missing(&want, &have, "", &mut out);
        assert!(out.is_empty(), "{out:?}");
        let have = json!({"code": {"coding": [{"code": "a"}]}});
        missing(&want, &have, "", &mut out);
        assert_eq!(out, ["code.coding[1]", "valueQuantity"]);
    }

    #[test]
    fn urls_are_made_absolute_against_the_base() {
        let base = "http://h:1/fhir";
        assert_eq!(
            absolute(base, "/fhir/Patient/1/_history/2"),
            "http://h:1/fhir/Patient/1/_history/2"
        );
        assert_eq!(absolute(base, "Patient?x=1"), "http://h:1/fhir/Patient?x=1");
        assert_eq!(
            absolute(base, "https://o/fhir/metadata"),
            "https://o/fhir/metadata"
        );
        assert_eq!(absolute("http://h:1", "/metadata"), "http://h:1/metadata");
    }
}
