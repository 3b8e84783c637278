//! FHIRPath in TestScripts: `expression` asserts (with a `value` and an operator, or on their
//! own), `compareToSourceId` with `compareToSourceExpression`, and `expression` variables. The
//! engine is behind [`fhirpath`](super::fhirpath).
//!
//! Rules:
//! - an `expression` assert without `value` (operator `equals`) holds when the result is not
//!   empty and holds no `false`; `empty` / `notEmpty` look at the result collection;
//! - with a `value`, the result must be one item (several: the script's error), compared as text,
//!   numbers as decimal text (`72.50` equals `72.5`, never through `f64`);
//! - `compareToSourceId` evaluates `compareToSourceExpression` over that fixture or response and
//!   the assert's `expression` over the response, and compares the two collections item by item;
//! - what the engine cannot answer (a type test on a data type, a function it lacks) is skipped,
//!   never passed; an expression that does not parse is the script's failure.

use serde_json::Value;

use super::exec::{Done, State, list, script_error};
use super::fhirpath::{Evaluation, Item};
use super::variables::{subst, subst_json};

/// A verdict as [`conclude`](super::asserts::conclude) takes it: `Ok(None)` holds, `Ok(Some(why))`
/// fails, `Err(why)` is skipped.
type Verdict = std::result::Result<Option<String>, String>;

/// What the assert's expression (and compareToSource) gives; `Err` is a step of its own (the
/// script's failure).
pub(super) async fn verdict(
    st: &State<'_>,
    a: &Value,
    name: &str,
    op: &str,
    value: Option<&str>,
) -> std::result::Result<Verdict, Done> {
    let script = st.script;
    if a.get("compareToSourceExpression").is_some() && a.get("compareToSourcePath").is_some() {
        return Err(script_error(
            script,
            name,
            "the assert sets both compareToSourceExpression and compareToSourcePath (TestScript.setup.action.assert.compareToSourceId: either one, not both)".to_owned(),
        ));
    }
    let Some(expr) = a["expression"].as_str() else {
        return Err(script_error(
            script,
            name,
            "compareToSourceId is compared with the assert's own expression, and the assert has none".to_owned(),
        ));
    };
    let (body, label) = match subject(st, a["sourceId"].as_str()) {
        Ok(Ok(s)) => s,
        Ok(Err(fails)) => return Ok(Ok(Some(fails))),
        Err(skip) => return Ok(Err(skip)),
    };
    let items = match evaluate(st, name, expr, &body).await? {
        Ok(i) => i,
        Err(skip) => return Ok(Err(skip)),
    };
    if let Some(cid) = a["compareToSourceId"].as_str() {
        let Some(cexpr) = a["compareToSourceExpression"].as_str() else {
            return Err(script_error(
                script,
                name,
                "compareToSourceId needs compareToSourceExpression (or compareToSourcePath) to say what to compare".to_owned(),
            ));
        };
        let (source, slabel) = match subject(st, Some(cid)) {
            Ok(Ok(s)) => s,
            Ok(Err(fails)) => return Ok(Ok(Some(fails))),
            Err(skip) => return Ok(Err(skip)),
        };
        let want = match evaluate(st, name, cexpr, &source).await? {
            Ok(i) => i,
            Err(skip) => return Ok(Err(skip)),
        };
        let holds = match compare_items(&items, &want, op) {
            Ok(h) => h,
            Err(skip) => return Ok(Err(skip)),
        };
        return Ok(Ok((!holds).then(|| {
            format!(
                "expression `{expr}` over {label} gave {}, expected {op} {} (`{cexpr}` over {slabel})",
                show(&items),
                show(&want)
            )
        })));
    }
    Ok(match (op, value) {
        ("empty", _) => Ok((!items.is_empty()).then(|| {
            format!(
                "expression `{expr}` over {label}: expected empty, got {}",
                show(&items)
            )
        })),
        ("notEmpty", _) => Ok(items
            .is_empty()
            .then(|| format!("expression `{expr}` over {label} gave nothing, expected notEmpty"))),
        ("equals", None) => Ok(if items.is_empty() {
            Some(format!(
                "expression `{expr}` over {label} gave nothing (an empty result)"
            ))
        } else if items.contains(&Item::Boolean(false)) {
            Some(format!("expression `{expr}` over {label} is false"))
        } else {
            None
        }),
        (_, value) => {
            let expected = value.unwrap_or_default();
            if items.len() > 1 {
                return Err(script_error(
                    script,
                    name,
                    format!(
                        "expression `{expr}` over {label} gave {} items ({}); an assert with a value compares one",
                        items.len(),
                        show(&items)
                    ),
                ));
            }
            let actual = items.first();
            match compare_value(actual, expected, op) {
                Ok(true) => Ok(None),
                Ok(false) => Ok(Some(format!(
                    "expression `{expr}` over {label}: expected {op} `{expected}`, got {}",
                    show(&items)
                ))),
                Err(skip) => Err(skip),
            }
        }
    })
}

/// The body an expression reads: `sourceId`'s fixture or response, else the last response.
/// `Ok(Err)`: the assert fails (a response without a JSON body); `Err`: skipped.
fn subject(
    st: &State<'_>,
    source_id: Option<&str>,
) -> std::result::Result<std::result::Result<(Value, String), String>, String> {
    match source_id {
        Some(s) => {
            if let Some(f) = st.fixtures.get(s) {
                let f = subst_json(st, f)?;
                return Ok(Ok((f, format!("fixture `{s}`"))));
            }
            match st.responses.get(s) {
                Some(r) => Ok(r
                    .body
                    .clone()
                    .map(|b| (b, format!("response `{s}`")))
                    .ok_or_else(|| format!("response `{s}` has no JSON body"))),
                None => Err(st.fixture_errors.get(s).cloned().unwrap_or_else(|| {
                    format!("sourceId `{s}` names no fixture and no response received")
                })),
            }
        }
        None => match &st.last {
            Some(r) => Ok(r
                .body
                .clone()
                .map(|b| (b, "the response".to_owned()))
                .ok_or_else(|| "the response has no JSON body".to_owned())),
            None => {
                Err("there is no response to assert on (no operation ran before it)".to_owned())
            }
        },
    }
}

/// Evaluates `expr` (variables substituted) over `body`: the items, `Ok(Err)` skipped, `Err` the
/// script's failure (not FHIRPath).
async fn evaluate(
    st: &State<'_>,
    name: &str,
    expr: &str,
    body: &Value,
) -> std::result::Result<std::result::Result<Vec<Item>, String>, Done> {
    let e = match subst(st, expr) {
        Ok(e) => e,
        Err(skip) => return Ok(Err(skip)),
    };
    match st.fhirpath.evaluate(&e, body).await {
        Evaluation::Items(items) => Ok(Ok(items)),
        Evaluation::Syntax(why) => Err(script_error(
            st.script,
            name,
            format!("`{e}` is not a FHIRPath expression: {why}"),
        )),
        Evaluation::Failed(why) => Ok(Err(format!(
            "the FHIRPath engine could not evaluate `{e}`: {why}"
        ))),
        Evaluation::Unsupported(why) => Ok(Err(why)),
    }
}

/// A result as a finding quotes it.
fn show(items: &[Item]) -> String {
    match items {
        [] => "nothing".to_owned(),
        [one] => format!("`{}`", one.text()),
        many => format!(
            "[{}]",
            many.iter()
                .map(|i| format!("`{}`", i.text()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn numeric(i: &Item) -> bool {
    matches!(i, Item::Integer(_) | Item::Decimal(_))
}

/// Two items alike: numbers by their decimal text, the rest by text.
fn same(a: &Item, b: &Item) -> bool {
    if numeric(a) && numeric(b) {
        return same_number(&a.text(), &b.text());
    }
    a.text() == b.text()
}

/// One result item against an assert's `value` with `op`; `Err` is an operator not supported.
fn compare_value(
    actual: Option<&Item>,
    expected: &str,
    op: &str,
) -> std::result::Result<bool, String> {
    if let Some(a) = actual.filter(|a| numeric(a)) {
        let t = a.text();
        let any = |list: &str| list.split(',').any(|e| same_number(&t, e.trim()));
        match op {
            "equals" if is_number(expected) => return Ok(same_number(&t, expected.trim())),
            "notEquals" if is_number(expected) => {
                return Ok(!same_number(&t, expected.trim()));
            }
            "in" => return Ok(any(expected)),
            "notIn" => return Ok(!any(expected)),
            _ => {}
        }
    }
    let text = actual.map(Item::text);
    super::asserts::compare(text.as_deref(), expected, op)
}

/// Two result collections with `op` (compareToSource): `equals` item by item in order, `in` every
/// item among the source's, `contains` every source item among these.
fn compare_items(actual: &[Item], want: &[Item], op: &str) -> std::result::Result<bool, String> {
    let among = |i: &Item, list: &[Item]| list.iter().any(|x| same(i, x));
    let equal = actual.len() == want.len() && actual.iter().zip(want).all(|(a, b)| same(a, b));
    Ok(match op {
        "equals" => equal,
        "notEquals" => !equal,
        "in" => !actual.is_empty() && actual.iter().all(|i| among(i, want)),
        "notIn" => !actual.iter().any(|i| among(i, want)),
        "contains" => !actual.is_empty() && want.iter().all(|i| among(i, actual)),
        "notContains" => !want.iter().any(|i| among(i, actual)),
        "empty" => actual.is_empty(),
        "notEmpty" => !actual.is_empty(),
        "greaterThan" | "lessThan" => match (actual, want) {
            ([a], [b]) => {
                let (Ok(x), Ok(y)) = (a.text().parse::<f64>(), b.text().parse::<f64>()) else {
                    return Ok(false);
                };
                if op == "greaterThan" { x > y } else { x < y }
            }
            _ => false,
        },
        other => return Err(format!("operator `{other}` is not supported")),
    })
}

fn is_number(s: &str) -> bool {
    normal_number(s.trim()).is_some()
}

/// Two decimals written alike up to leading/trailing zeros and a `+` (`72.50` = `72.5`,
/// `-0` = `0`); exponents compare as written.
fn same_number(a: &str, b: &str) -> bool {
    match (normal_number(a.trim()), normal_number(b.trim())) {
        (Some(x), Some(y)) => x == y,
        _ => a.trim() == b.trim(),
    }
}

/// A plain decimal (`[+-]digits[.digits]`) without redundant zeros, or `None`.
fn normal_number(s: &str) -> Option<String> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let zero = int == "0" && frac.is_empty();
    let sign = if neg && !zero { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// Evaluates every `expression` variable of the script over the current state (its `sourceId`'s
/// fixture or response, else the last response), for `${name}` to read; what cannot be evaluated
/// is kept as the reason.
pub(super) async fn refresh_variables(st: &mut State<'_>) {
    let script = st.script;
    let mut out = Vec::new();
    for var in list(&script.resource["variable"]) {
        let (Some(name), Some(expr)) = (var["name"].as_str(), var["expression"].as_str()) else {
            continue;
        };
        let value = variable(st, var, name, expr).await;
        out.push((name.to_owned(), value));
    }
    for (name, value) in out {
        st.expr_vars.insert(name, value);
    }
}

async fn variable(
    st: &State<'_>,
    var: &Value,
    name: &str,
    expr: &str,
) -> std::result::Result<String, String> {
    let default = var["defaultValue"].as_str().map(str::to_owned);
    let body = match subject(st, var["sourceId"].as_str()) {
        Ok(Ok((b, _))) => b,
        Ok(Err(why)) | Err(why) => {
            return default.ok_or_else(|| format!("variable `{name}` (`{expr}`): {why}"));
        }
    };
    // Variables used inside the expression are the earlier refresh's.
    let e = subst(st, expr).map_err(|why| format!("variable `{name}`: {why}"))?;
    match st.fhirpath.evaluate(&e, &body).await {
        Evaluation::Items(items) => match items.as_slice() {
            [] => default.ok_or_else(|| {
                format!("variable `{name}`: `{e}` gives nothing, and it has no defaultValue")
            }),
            [one] => Ok(one.text()),
            many => Err(format!(
                "variable `{name}`: `{e}` gives {} items, and a variable holds one",
                many.len()
            )),
        },
        Evaluation::Syntax(why) => Err(format!(
            "variable `{name}`: `{e}` is not a FHIRPath expression: {why}"
        )),
        Evaluation::Failed(why) => Err(format!(
            "variable `{name}`: the FHIRPath engine could not evaluate `{e}`: {why}"
        )),
        Evaluation::Unsupported(why) => Err(format!("variable `{name}`: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_decimal_text() {
        assert!(same_number("72.50", "72.5"));
        assert!(same_number("+007", "7.000"));
        assert!(same_number("-0.0", "0"));
        assert!(!same_number("0.1", "0.10000000000000001"));
        assert!(!same_number("1e2", "100"));
        let d = |s: &str| Item::Decimal(s.to_owned());
        assert_eq!(compare_value(Some(&d("72.50")), "72.5", "equals"), Ok(true));
        assert_eq!(
            compare_value(Some(&d("72.50")), "72.4,72.5", "in"),
            Ok(true)
        );
        assert_eq!(
            compare_value(Some(&Item::Integer(3)), "3.0", "notEquals"),
            Ok(false)
        );
        assert_eq!(
            compare_value(Some(&Item::Integer(3)), "2", "greaterThan"),
            Ok(true)
        );
        assert_eq!(compare_value(None, "x", "equals"), Ok(false));
    }

    #[test]
    fn collections_compare_item_by_item() {
        let s = |v: &[&str]| {
            v.iter()
                .map(|x| Item::String((*x).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            compare_items(&s(&["a", "b"]), &s(&["a", "b"]), "equals"),
            Ok(true)
        );
        assert_eq!(
            compare_items(&s(&["b", "a"]), &s(&["a", "b"]), "equals"),
            Ok(false)
        );
        assert_eq!(compare_items(&s(&["a"]), &s(&["a", "b"]), "in"), Ok(true));
        assert_eq!(
            compare_items(&s(&["a", "b", "c"]), &s(&["c", "a"]), "contains"),
            Ok(true)
        );
        assert_eq!(compare_items(&[], &s(&["a"]), "in"), Ok(false));
        assert_eq!(
            compare_items(
                &[Item::Decimal("1.50".into())],
                &[Item::Decimal("1.5".into())],
                "equals"
            ),
            Ok(true)
        );
        assert!(compare_items(&[], &[], "eval").is_err());
    }
}
