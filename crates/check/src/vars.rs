//! `${name}` substitution.

use std::collections::BTreeMap;

use serde_json::Value;

/// Replaces every `${name}` in `text` with the variable's value; `$${` is a literal `${`.
/// A variable that is not set is an error naming it.
pub(crate) fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err(format!("`${{` without a closing `}}` in `{text}`"));
            };
            let name = tail[..end].trim();
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => return Err(name.to_owned()),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Substitutes in every string of a JSON value (keys stay as they are).
pub(crate) fn substitute_json(v: &Value, vars: &BTreeMap<String, String>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(substitute(s, vars)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| substitute_json(i, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(k.clone(), substitute_json(v, vars)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn vars() -> BTreeMap<String, String> {
        [("pid", "p-1"), ("base", "http://x/fhir")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn substitutes_and_escapes() {
        let v = vars();
        assert_eq!(substitute("Patient/${pid}", &v).unwrap(), "Patient/p-1");
        assert_eq!(
            substitute("${base}/x?a=${ pid }", &v).unwrap(),
            "http://x/fhir/x?a=p-1"
        );
        assert_eq!(
            substitute("cost $5 and $${pid}", &v).unwrap(),
            "cost $5 and ${pid}"
        );
        assert_eq!(substitute("${nope}", &v).unwrap_err(), "nope");
        assert!(substitute("${pid", &v).unwrap_err().contains("closing"));
        let j = serde_json::json!({"subject": {"reference": "Patient/${pid}"}, "n": [1, "${pid}"]});
        assert_eq!(
            substitute_json(&j, &v).unwrap(),
            serde_json::json!({"subject": {"reference": "Patient/p-1"}, "n": [1, "p-1"]})
        );
    }

    proptest! {
        #[test]
        fn text_without_dollars_is_unchanged(s in "[^$]{0,60}") {
            prop_assert_eq!(substitute(&s, &vars()).unwrap(), s);
        }

        #[test]
        fn any_text_substitutes_or_errors(s in "\\PC{0,60}") {
            let _ = substitute(&s, &vars());
        }
    }
}
