//! TestScript operations: the request an operation makes (its method, URL, headers and body)
//! and sending it with the runner's client.

use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::info;

use super::TestScript;
use super::exec::{
    Done, Resp, State, excerpt, finding, list, script_error, skip_finding, unknown_extension,
};
use super::fixtures::{identity, source, target_of};
use super::variables::{subst, subst_json};
use super::xml_body::Formats;
use crate::run::http::{BodyError, header, read_body, transport_reason};
use crate::run::{Exchange, Finding, Outcome, Runner};
use crate::scenario::{Owner, Severity};

impl Runner {
    /// The base URL an operation goes to: its destination by index or profile code, mapped
    /// with `--dest`, else the runner's base.
    pub(super) fn base_for(&self, script: &TestScript, op: &Value) -> String {
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

    pub(super) async fn operation(&self, st: &mut State<'_>, op: &Value, name: &str) -> Done {
        super::expression::refresh_variables(st).await;
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
        let formats = match Formats::of(op, &params) {
            Ok(f) => f,
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
        let text = match formats.body_text(body.as_ref()) {
            Ok(t) => t,
            Err(reason) => return script_error(script, name, reason),
        };
        headers.splice(0..0, formats.headers(text.is_some(), &headers));
        st.seq += 1;
        let request_id = format!("hc-{}-ts{}", self.run_id, st.seq);
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
        let mut resp = match sent {
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
        findings.extend(formats.answer(&mut resp, script, name));
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
    pub(super) async fn send_raw(
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
            .header("X-Request-Id", request_id);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            req = req.header("Accept", "application/fhir+json");
        }
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
pub(super) fn absolute(base: &str, u: &str) -> String {
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
pub(super) const KNOWN_CODES: &[&str] = &[
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
