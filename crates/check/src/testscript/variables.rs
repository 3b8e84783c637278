//! TestScript variables and `${name}` substitution (built-in placeholders, `--var`s, the
//! script's own variables).

use std::collections::BTreeMap;

use serde_json::Value;

use super::exec::{State, list};
use crate::run::http::header;

/// The value of `${name}`: a built-in placeholder, a `--var`, or a script variable.
pub(super) fn resolve(
    st: &State<'_>,
    vars: &BTreeMap<String, String>,
    name: &str,
) -> std::result::Result<String, String> {
    let mut lookup = |n: &str| resolve(st, vars, n);
    if let Some(v) = super::placeholders::builtin(name, &mut lookup)? {
        return Ok(v);
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
        return st.expr_vars.get(name).cloned().unwrap_or_else(|| {
            Err(format!(
                "variable `{name}` (a FHIRPath expression) is not evaluated yet"
            ))
        });
    }
    if var.get("path").is_some() {
        return super::xpath::variable(st, var, name);
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
        .ok_or_else(|| format!("variable `{name}` has no value: pass --var {name}=…"))
        .and_then(super::placeholders::in_default)
}

/// Substitutes every `${name}` in `text` (`$${` is a literal `${`); the error is why not.
pub(super) fn subst(st: &State<'_>, text: &str) -> std::result::Result<String, String> {
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

pub(super) fn subst_json(st: &State<'_>, v: &Value) -> std::result::Result<Value, String> {
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
