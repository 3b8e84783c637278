//! TestScript asserts: what each assert kind checks in a response, and the operators.

use serde_json::Value;

use super::exec::{Done, STOP_TEST_ON_FAIL, State, finding, list, skip_finding, unknown_extension};
use super::fixtures::source;
use super::variables::{subst, subst_json};
use crate::run::Finding;
use crate::run::Outcome;
use crate::run::http::header;
use crate::scenario::{Owner, Severity};

/// The assert codes for status codes (R4 assert-response-code-types).
pub(super) const RESPONSES: &[(&str, u16)] = &[
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
pub(super) fn compare(
    actual: Option<&str>,
    expected: &str,
    op: &str,
) -> std::result::Result<bool, String> {
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
pub(super) fn missing(want: &Value, have: &Value, path: &str, out: &mut Vec<String>) {
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

pub(super) async fn assertion(st: &mut State<'_>, a: &Value, name: &str, base: &str) -> Done {
    super::expression::refresh_variables(st).await;
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
    if a.get("path").is_some() || a.get("compareToSourcePath").is_some() {
        return super::xpath::assert_path(st, a, name, stop_on_fail);
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
    if a.get("expression").is_some() || a.get("compareToSourceId").is_some() {
        if request_side {
            return skip_finding(
                script,
                name,
                "a request-direction assert would test the checker's own request (client-role scripts come later)",
            );
        }
        let verdict = match super::expression::verdict(st, a, name, op, value.as_deref()).await {
            Ok(v) => v,
            Err(done) => return done,
        };
        return conclude(st, a, name, "expression", verdict, stop_on_fail);
    }
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
    conclude(st, a, name, kind, verdict, stop_on_fail)
}

/// The step an assert's verdict makes: `Ok(None)` holds, `Ok(Some(why))` fails (a warning with
/// `warningOnly`), `Err(why)` is skipped. `kind` names what was checked in the pass message.
pub(super) fn conclude(
    st: &State<'_>,
    a: &Value,
    name: &str,
    kind: &str,
    verdict: std::result::Result<Option<String>, String>,
    stop_on_fail: bool,
) -> Done {
    let script = st.script;
    match verdict {
        Err(reason) => skip_finding(script, name, &reason),
        Ok(None) => Done {
            outcome: Outcome::Passed,
            findings: Vec::new(),
            exchange: None,
            message: if kind == "validateProfileId" {
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
}
