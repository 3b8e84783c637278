//! Expectations: a response's status, body and headers against a step's `expect`.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::StepCtx;
use super::compare::ident;
use super::http::Response;
use crate::path::{ElementPath, text_of};
use crate::scenario::{Check, Owner};
use crate::vars::{substitute, substitute_json};

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

pub(super) fn expect_response(
    ctx: &mut StepCtx<'_>,
    resp: &Response,
    vars: &BTreeMap<String, String>,
) {
    super::national::private_urls(ctx, resp, vars);
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
        // Variables in filters (`entry[resource.id=${obs}]`) are substituted first.
        let text = substitute(&c.path, vars).unwrap_or_else(|_| c.path.clone());
        let Ok(path) = ElementPath::parse(&text) else {
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
    super::national::answer(ctx, resp, vars);
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

pub(super) fn number_of(v: &Value) -> Option<f64> {
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
}
