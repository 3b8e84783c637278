//! Comparisons: the entries two steps collected, by key.

use std::collections::BTreeMap;

use serde_json::Value;

use super::expect::number_of;
use super::{State, StepCtx};
use crate::path::{ElementPath, text_of};
use crate::scenario::{Compare, Owner, Severity};

pub(super) fn compare(state: &State, c: &Compare, ctx: &mut StepCtx<'_>) {
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
    // FUT's $search-measurements answers one collection Bundle per submission: its
    // Observations are what is compared.
    let (expected, actual) = (observations_of(expected), observations_of(actual));
    let (expected, actual) = (&expected, &actual);
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
pub(super) fn ident(entry: &Value) -> String {
    let r = res(entry);
    format!(
        "{}/{}",
        r.get("resourceType").and_then(Value::as_str).unwrap_or("?"),
        r.get("id").and_then(Value::as_str).unwrap_or("?")
    )
}

/// The entries, with each entry that is a Bundle replaced by the entries of its Observations.
fn observations_of(entries: &[Value]) -> Vec<Value> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let r = res(e);
        if r.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
            let inner = r.get("entry").and_then(Value::as_array);
            out.extend(
                inner
                    .into_iter()
                    .flatten()
                    .filter(|x| {
                        res(x).get("resourceType").and_then(Value::as_str) == Some("Observation")
                    })
                    .cloned(),
            );
        } else {
            out.push(e.clone());
        }
    }
    out
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::run::Exchange;
    use crate::scenario::Step;
    use serde_json::json;
    use std::collections::HashSet;

    #[test]
    fn submission_bundles_are_compared_by_their_observations() {
        let entries = vec![
            json!({"resource": {"resourceType": "Bundle", "type": "collection", "entry": [
                {"resource": {"resourceType": "Observation", "id": "o1"}},
                {"resource": {"resourceType": "Provenance", "id": "p1"}},
                {"resource": {"resourceType": "Observation", "id": "o2"}}]}}),
            json!({"resource": {"resourceType": "Observation", "id": "o3"}}),
        ];
        let ids: Vec<String> = observations_of(&entries).iter().map(ident).collect();
        assert_eq!(ids, ["Observation/o1", "Observation/o2", "Observation/o3"]);
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
}
