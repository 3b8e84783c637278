//! The checks of the national exchanges (Denmark's FUT, Norway's PMD, the Netherlands'
//! MedMij): profile rules through `healthanalyzer_fhir::rules`, `fullUrl` echoes in batch
//! answers, self links that name every parameter sent, and national person numbers kept out
//! of every URL the server returns.

use std::collections::BTreeMap;

use healthanalyzer_fhir::rules::{self, Violation};
use serde_json::Value;

use super::StepCtx;
use super::http::Response;
use crate::scenario::{Owner, RuleSet};
use crate::vars::substitute;

/// Every broken rule of `set` in `body`, each with where in the body the checked resource is
/// (`entry[2].resource`; empty for the body itself).
pub(crate) fn violations(set: RuleSet, body: &Value) -> Vec<(String, Violation)> {
    let whole = |v: Vec<Violation>| v.into_iter().map(|v| (String::new(), v)).collect();
    match set {
        RuleSet::FutSubmission => whole(rules::check_fut_submission(body)),
        RuleSet::PmdBundle => whole(rules::check_pmd_bundle(body)),
        RuleSet::FutObservation | RuleSet::VkpObservation | RuleSet::NlCore => {
            let check = match set {
                RuleSet::FutObservation => rules::check_fut_observation,
                RuleSet::VkpObservation => rules::check_vkp_observation,
                _ => rules::check_nl_core_observation,
            };
            let mut found = Vec::new();
            observations(body, String::new(), &mut found);
            found
                .into_iter()
                .flat_map(|(at, o)| check(o).into_iter().map(move |v| (at.clone(), v)))
                .collect()
        }
    }
}

/// The Observations of a body, with their paths: the body itself, a Bundle's entries (and the
/// Bundles among them, as `$search-measurements` answers), a Parameters' resources.
fn observations<'v>(v: &'v Value, at: String, out: &mut Vec<(String, &'v Value)>) {
    match v.get("resourceType").and_then(Value::as_str) {
        Some("Observation") => out.push((at, v)),
        Some("Bundle") => {
            for (i, e) in array(v, "entry").iter().enumerate() {
                if let Some(r) = e.get("resource") {
                    observations(r, join(&at, &format!("entry[{i}].resource")), out);
                }
            }
        }
        Some("Parameters") => {
            for (i, p) in array(v, "parameter").iter().enumerate() {
                if let Some(r) = p.get("resource") {
                    observations(r, join(&at, &format!("parameter[{i}].resource")), out);
                }
            }
        }
        _ => {}
    }
}

fn join(at: &str, more: &str) -> String {
    if at.is_empty() {
        more.to_owned()
    } else {
        format!("{at}.{more}")
    }
}

fn array<'v>(v: &'v Value, key: &str) -> &'v [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn describe(set: RuleSet, at: &str, v: &Violation) -> String {
    let place = if at.is_empty() {
        v.location.clone()
    } else {
        format!("{at} ({})", v.location)
    };
    format!(
        "{} rule `{}` broken at {place}: {}.",
        set.as_str(),
        v.rule,
        v.message.trim_end_matches('.')
    )
}

/// The rules the body sent must keep: a broken one is the test data's to fix.
pub(super) fn sent_rules(ctx: &mut StepCtx<'_>, sets: &[RuleSet]) {
    if sets.is_empty() {
        return;
    }
    let Some(body) = ctx
        .sent
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
    else {
        ctx.finding(
            "The body sent is not JSON, so its profile rules cannot be checked.".to_owned(),
            Owner::Data,
            "The step names rules for its body; give it a JSON body.",
            false,
        );
        return;
    };
    for set in sets {
        for (at, v) in violations(*set, &body) {
            ctx.finding(
                format!(
                    "The body sent breaks its profile: {}",
                    describe(*set, &at, &v)
                ),
                Owner::Data,
                "The test data does not keep the national profile it claims; fix the data \
                 (or the profile the sender exports) before judging the receiver.",
                false,
            );
        }
    }
}

/// The national checks of an answer: its profile rules, the echoed `fullUrl`s and the self
/// link (only when the status was what the step expects).
pub(super) fn answer(ctx: &mut StepCtx<'_>, resp: &Response, vars: &BTreeMap<String, String>) {
    let e = &ctx.step.expect;
    let (sets, echo, self_link) = (e.rules.clone(), e.echo_full_urls, e.self_link_echoes);
    let private = private_values(ctx, vars);
    let owner = ctx.owner;
    if let Some(body) = resp.body.as_ref() {
        for set in sets {
            for (at, v) in violations(set, body) {
                ctx.finding(
                    describe(set, &at, &v),
                    owner,
                    "What the server returns must keep the national profile. The suite's data \
                     keeps it (its upload step checks the same rules on the body it sends), so \
                     the element was lost or changed on the way.",
                    false,
                );
            }
        }
    }
    if echo {
        echo_full_urls(ctx, resp);
    }
    if self_link {
        self_link_echoes(ctx, resp, &private);
    }
}

/// The private values of the step, substituted (an unset or empty one is left out).
fn private_values(ctx: &StepCtx<'_>, vars: &BTreeMap<String, String>) -> Vec<String> {
    ctx.step
        .expect
        .private
        .iter()
        .filter_map(|p| substitute(p, vars).ok())
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

fn echo_full_urls(ctx: &mut StepCtx<'_>, resp: &Response) {
    let sent: Option<Value> = ctx
        .sent
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    let Some(sent) = sent else {
        ctx.finding(
            "The step checks echoed fullUrls but sent no JSON Bundle.".to_owned(),
            Owner::Script,
            "`echo_full_urls` compares the request Bundle's entries with the answer's.",
            false,
        );
        return;
    };
    let asked = array(&sent, "entry");
    let answered = resp.body.as_ref().map_or(&[][..], |b| array(b, "entry"));
    let owner = ctx.owner;
    if asked.len() != answered.len() {
        ctx.finding(
            format!(
                "The answer has {} entries for the {} sent.",
                answered.len(),
                asked.len()
            ),
            owner,
            "A batch- or transaction-response has one entry per request entry, in the same \
             order (FHIR R4 http.html#transaction-response).",
            false,
        );
    }
    for (i, (a, b)) in asked.iter().zip(answered).enumerate() {
        let Some(want) = a.get("fullUrl").and_then(Value::as_str) else {
            continue;
        };
        match b.get("fullUrl").and_then(Value::as_str) {
            Some(got) if got == want => {}
            got => ctx.finding(
                format!(
                    "entry[{i}].fullUrl {}, expected the request entry's fullUrl {want}.",
                    got.map_or("is missing".to_owned(), |g| format!("is {g}"))
                ),
                owner,
                "The sender matches each answer to its entry by the fullUrl it sent \
                 (pmd-Bundle-Response: fullUrl 1..1, the request entry's); without it a failed \
                 entry cannot be told from a stored one.",
                false,
            ),
        }
    }
}

/// The parameters of a query string, decoded.
fn pairs(query: &str) -> Vec<(String, String)> {
    form_pairs(query.as_bytes())
}

fn form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    // application/x-www-form-urlencoded, as FHIR search uses it.
    let text = String::from_utf8_lossy(bytes);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn self_link_echoes(ctx: &mut StepCtx<'_>, resp: &Response, private: &[String]) {
    let owner = ctx.owner;
    let url = ctx
        .exchange
        .request
        .split_once(' ')
        .map_or(String::new(), |(_, u)| u.to_owned());
    let mut sent = url
        .split_once('?')
        .map(|(_, q)| pairs(q))
        .unwrap_or_default();
    let form = ctx.step.request.as_ref().is_some_and(|r| {
        r.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("content-type") && v.contains("x-www-form-urlencoded")
        })
    });
    if form && let Some(body) = ctx.sent.as_deref() {
        sent.extend(form_pairs(body.as_bytes()));
    }
    let link = resp.body.as_ref().and_then(|b| {
        array(b, "link")
            .iter()
            .find(|l| l.get("relation").and_then(Value::as_str) == Some("self"))
            .and_then(|l| l.get("url"))
            .and_then(Value::as_str)
    });
    let Some(link) = link else {
        ctx.finding(
            "The answer has no `self` link.".to_owned(),
            owner,
            "A searchset Bundle's self link says which search the server ran (FHIR R4 \
             search.html#conformance); a client checks it against what it asked.",
            false,
        );
        return;
    };
    let echoed = link
        .split_once('?')
        .map(|(_, q)| pairs(q))
        .unwrap_or_default();
    let mut missing = Vec::new();
    for (name, value) in &sent {
        if private.iter().any(|p| value.contains(p.as_str())) {
            continue;
        }
        if !echoed.iter().any(|(n, v)| n == name && v == value) {
            missing.push(format!("{name}={value}"));
        }
    }
    if !missing.is_empty() {
        ctx.finding(
            format!(
                "The self link does not name {} of the parameters sent: {}.",
                missing.len(),
                missing.join(", ")
            ),
            owner,
            "The self link must name every parameter the server used (MedMij: the PGO checks \
             it); a parameter left out was ignored, and the answer is not what was asked.",
            false,
        );
    }
}

/// National person numbers in the URLs of an answer (checked whatever its status): each URL
/// that holds one is a finding for the server, naming where but never the number.
pub(super) fn private_urls(
    ctx: &mut StepCtx<'_>,
    resp: &Response,
    vars: &BTreeMap<String, String>,
) {
    let private = private_values(ctx, vars);
    if private.is_empty() {
        return;
    }
    let mut urls: Vec<(String, String)> = Vec::new();
    for h in ["location", "content-location"] {
        for v in resp.headers.get_all(h) {
            if let Ok(v) = v.to_str() {
                urls.push((format!("the {h} header"), v.to_owned()));
            }
        }
    }
    if let Some(body) = resp.body.as_ref() {
        url_strings(body, String::new(), &mut urls);
    }
    let owner = ctx.owner;
    for (place, url) in urls {
        let decoded = decode(&url);
        if private
            .iter()
            .any(|p| url.contains(p.as_str()) || decoded.contains(p.as_str()))
        {
            ctx.finding(
                format!(
                    "A national person number the suite sent appears in a URL the server \
                     returned: {place}."
                ),
                owner,
                "National person numbers (CPR, FNR, DNR, FHN, BSN) must never be in a URL: URLs \
                 end up in logs, proxies and browser histories. Name the resource by its id, \
                 and search by the number only in a POST body.",
                false,
            );
        }
    }
}

/// Every `url`, `fullUrl`, `location` and `reference` string in a body, with its path.
fn url_strings(v: &Value, at: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                let here = join(&at, k);
                match x {
                    Value::String(s)
                        if matches!(k.as_str(), "url" | "fullUrl" | "location" | "reference") =>
                    {
                        out.push((here, s.clone()));
                    }
                    _ => url_strings(x, here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                url_strings(x, format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn observations_are_found_at_any_depth() {
        let body = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "Provenance"}},
                {"resource": {"resourceType": "Observation"}}]}},
            {"resource": {"resourceType": "Observation"}}]});
        let mut found = Vec::new();
        observations(&body, String::new(), &mut found);
        let at: Vec<&str> = found.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            at,
            ["entry[0].resource.entry[1].resource", "entry[1].resource"]
        );
    }

    #[test]
    fn a_violation_names_the_rule_and_where() {
        let body = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Observation", "status": "final"}}]});
        let v = violations(RuleSet::NlCore, &body);
        assert!(!v.is_empty());
        let text = describe(RuleSet::NlCore, &v[0].0, &v[0].1);
        assert!(
            text.starts_with("nl-core rule `nl-core.meta.profile` broken at entry[0].resource (Observation.meta.profile)"),
            "{text}"
        );
        let pmd = violations(
            RuleSet::PmdBundle,
            &json!({"resourceType": "Bundle", "type": "transaction"}),
        );
        assert_eq!(pmd[0].1.rule, "pmd-bundle.type");
        assert_eq!(pmd[0].0, "");
    }

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            pairs("code=http%3A%2F%2Floinc.org%7C85354-9&date=ge2026&x=a+b&flag"),
            [
                ("code".to_owned(), "http://loinc.org|85354-9".to_owned()),
                ("date".to_owned(), "ge2026".to_owned()),
                ("x".to_owned(), "a b".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%C3%A6"), "æ");
    }

    #[test]
    fn url_strings_are_found_with_their_paths() {
        let body = json!({"link": [{"relation": "self", "url": "u1"}],
            "entry": [{"fullUrl": "u2", "response": {"location": "u3"},
                       "resource": {"subject": {"reference": "u4", "display": "not a url"}}}]});
        let mut out = Vec::new();
        url_strings(&body, String::new(), &mut out);
        let mut got: Vec<(&str, &str)> =
            out.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        got.sort_unstable();
        assert_eq!(
            got,
            [
                ("entry[0].fullUrl", "u2"),
                ("entry[0].resource.subject.reference", "u4"),
                ("entry[0].response.location", "u3"),
                ("link[0].url", "u1"),
            ]
        );
    }
}
