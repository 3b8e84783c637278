//! TestScript `path`: XPath 1.0 over the FHIR XML of a response or fixture (through
//! sxd-xpath), or a JSONPath when the path starts with `$`.
//!
//! R4 defines `path` as "XPath or JSONPath". The checker decides by the first character: `$`
//! is JSONPath (the dotted subset `$.a.b[0].c`, over the FHIR JSON), anything else is XPath;
//! there is no fall-back from one to the other, and each finding says which was used. XPath
//! follows the rules of the reference engine (fhir-crucible's testscript-engine), which
//! published scripts rely on (`Patient/id`):
//! - an unprefixed step of a plain location path gets the `fhir:` prefix;
//! - a path ending in an element gets `/@value` (FHIR XML keeps primitive values there);
//! - a relative path is evaluated anywhere in the document (`//` before it);
//! - the first match, in document order, is the value.
//!
//! Paths with functions, unions or predicates are evaluated as written, with the prefixes
//! `fhir` / `f` (`http://hl7.org/fhir`), `xhtml` / `h` (XHTML) and `atom` bound. The XML is
//! bounded in size and nesting before it is parsed, and so is the path: the parsers recurse.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::Value;
use sxd_xpath::{Context, Factory};

use super::asserts::compare;
use super::exec::{Done, State, finding, script_error, skip_finding};
use super::variables::{subst, subst_json};
use crate::run::{Finding, Outcome};
use crate::scenario::{Owner, Severity};

/// The longest `path` evaluated.
const MAX_PATH_CHARS: usize = 2_000;
/// The deepest bracket nesting in a `path`.
const MAX_PATH_NESTING: usize = 32;

/// Which language a `path` was evaluated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    /// XPath 1.0 over FHIR XML.
    XPath,
    /// The dotted JSONPath subset over FHIR JSON.
    JsonPath,
}

impl Lang {
    /// The language of a path: `$…` is JSONPath, the rest XPath.
    pub(super) fn of(path: &str) -> Self {
        if path.trim_start().starts_with('$') {
            Self::JsonPath
        } else {
            Self::XPath
        }
    }

    /// Its name in findings.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::XPath => "XPath",
            Self::JsonPath => "JSONPath",
        }
    }
}

/// What a document is, for a `path`: the text of an answer (FHIR XML or JSON) and its JSON.
pub(super) struct Doc<'a> {
    /// The text as received (XML is used as is for XPath).
    pub(super) text: &'a str,
    /// The FHIR JSON (from the text, or converted from XML).
    pub(super) json: Option<&'a Value>,
}

/// The value of `path` in `doc`: `Ok(None)` when nothing matches; `Err` says why the path
/// cannot be evaluated (its language named).
pub(super) fn evaluate(path: &str, doc: &Doc<'_>) -> Result<Option<String>, PathError> {
    let lang = Lang::of(path);
    bound_path(path).map_err(|e| PathError::Path(format!("{} `{path}`: {e}", lang.name())))?;
    match lang {
        Lang::JsonPath => {
            let Some(json) = doc.json else {
                return Err(PathError::Document(format!(
                    "JSONPath `{path}`: the document is not JSON"
                )));
            };
            json_path(path, json).map_err(PathError::Path)
        }
        Lang::XPath => {
            let owned;
            let xml = if doc.text.trim_start().starts_with('<') {
                doc.text
            } else {
                let Some(json) = doc.json else {
                    return Err(PathError::Document(format!(
                        "XPath `{path}`: the document is neither FHIR XML nor FHIR JSON"
                    )));
                };
                owned = healthanalyzer_fhir::json_to_xml(&json.to_string()).map_err(|e| {
                    PathError::Document(format!(
                        "XPath `{path}`: the JSON has no FHIR XML form ({e})"
                    ))
                })?;
                owned.as_str()
            };
            xpath_doc(path, xml)
        }
    }
}

fn bound_path(path: &str) -> Result<(), String> {
    if path.chars().count() > MAX_PATH_CHARS {
        return Err(format!("longer than {MAX_PATH_CHARS} characters"));
    }
    let (mut depth, mut max) = (0usize, 0usize);
    for c in path.chars() {
        match c {
            '(' | '[' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max > MAX_PATH_NESTING {
        return Err(format!("nested deeper than {MAX_PATH_NESTING} brackets"));
    }
    Ok(())
}

/// The path as the reference engine evaluates it (see the module docs).
pub(super) fn rewrite(path: &str) -> String {
    let p = path.trim();
    let plain = !p.is_empty()
        && p.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '/' | ':' | '@' | '_' | '-' | '.' | '*'));
    if !plain || p.contains("::") {
        return p.to_owned();
    }
    let absolute = p.starts_with('/');
    let steps: Vec<String> = p
        .split('/')
        .map(|s| {
            if s.is_empty()
                || s.contains(':')
                || s.starts_with('@')
                || s == "."
                || s == ".."
                || s == "*"
            {
                s.to_owned()
            } else {
                format!("fhir:{s}")
            }
        })
        .collect();
    let mut out = steps.join("/");
    let last = steps.last().map(String::as_str).unwrap_or_default();
    let element_last = !last.is_empty() && !last.starts_with('@') && last != "." && last != "..";
    if element_last {
        out.push_str("/@value");
    }
    if absolute { out } else { format!("//{out}") }
}

/// XPath 1.0 over FHIR XML: the first match's string value.
#[cfg(test)]
fn xpath(path: &str, xml: &str) -> Result<Option<String>, String> {
    xpath_doc(path, xml).map_err(|e| match e {
        PathError::Path(m) | PathError::Document(m) => m,
    })
}

fn xpath_doc(path: &str, xml: &str) -> Result<Option<String>, PathError> {
    let bad_doc = |e: String| PathError::Document(format!("XPath `{path}`: {e}"));
    let bad = |e: String| PathError::Path(format!("XPath `{path}`: {e}"));
    bound_xml(xml).map_err(bad_doc)?;
    let package = sxd_document::parser::parse(xml)
        .map_err(|e| bad_doc(format!("the document is not well-formed XML ({e:?})")))?;
    let doc = package.as_document();
    let rewritten = rewrite(path);
    if let Some(p) = unknown_prefix(&rewritten) {
        return Err(bad(format!(
            "the prefix `{p}` is not bound (bound: {})",
            NAMESPACES
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let compiled = Factory::new()
        .build(&rewritten)
        .map_err(|e| bad(format!("not an XPath 1.0 expression ({e})")))?
        .ok_or_else(|| bad("empty".to_owned()))?;
    let mut ctx = Context::new();
    for (prefix, uri) in NAMESPACES {
        ctx.set_namespace(prefix, uri);
    }
    // sxd-xpath panics on some input (a prefix it cannot resolve): that is the path's error.
    let evaluated = catch_unwind(AssertUnwindSafe(|| {
        compiled
            .evaluate(&ctx, doc.root())
            .map(|value| match value {
                sxd_xpath::Value::Nodeset(ns) => {
                    ns.document_order_first().map(|n| n.string_value())
                }
                other => Some(other.string()),
            })
    }));
    match evaluated {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(bad(format!("cannot be evaluated (as `{rewritten}`): {e}"))),
        Err(_) => Err(bad(format!(
            "the XPath engine failed on it (as `{rewritten}`)"
        ))),
    }
}

/// The namespace prefixes bound for XPath.
const NAMESPACES: [(&str, &str); 5] = [
    ("fhir", "http://hl7.org/fhir"),
    ("f", "http://hl7.org/fhir"),
    ("xhtml", "http://www.w3.org/1999/xhtml"),
    ("h", "http://www.w3.org/1999/xhtml"),
    ("atom", "http://www.w3.org/2005/Atom"),
];

/// The first `prefix:` in a path (outside string literals, not an axis `::`) that is not bound.
fn unknown_prefix(path: &str) -> Option<String> {
    let mut quote: Option<char> = None;
    let chars: Vec<char> = path.chars().collect();
    let mut start: Option<usize> = None;
    for (i, &c) in chars.iter().enumerate() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            start = None;
            continue;
        }
        let name_char = c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
        if name_char {
            if start.is_none() {
                start = Some(i);
            }
            continue;
        }
        if c == ':' {
            let axis = chars.get(i + 1) == Some(&':') || (i > 0 && chars[i - 1] == ':');
            if let Some(s) = start
                && !axis
            {
                let prefix: String = chars[s..i].iter().collect();
                if !NAMESPACES.iter().any(|(p, _)| *p == prefix) {
                    return Some(prefix);
                }
            }
        }
        start = None;
    }
    None
}

/// Refuses XML larger than a resource may be or nested deeper than
/// [`MAX_XML_DEPTH`](healthanalyzer_fhir::MAX_XML_DEPTH) elements.
fn bound_xml(xml: &str) -> Result<(), String> {
    let max = healthanalyzer_fhir::MAX_RESOURCE_BYTES;
    if xml.len() > max {
        return Err(format!("the document is larger than {max} bytes"));
    }
    let bytes = xml.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while let Some(off) = bytes[i..].iter().position(|b| *b == b'<') {
        let at = i + off;
        let rest = &bytes[at + 1..];
        let end = rest
            .iter()
            .position(|b| *b == b'>')
            .map_or(bytes.len(), |e| at + 1 + e);
        match rest.first() {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(b'?' | b'!') => {}
            _ if end < bytes.len() && end > 0 && bytes[end - 1] == b'/' => {}
            _ => {
                depth += 1;
                if depth > healthanalyzer_fhir::MAX_XML_DEPTH {
                    return Err(format!(
                        "the document is nested deeper than {} elements",
                        healthanalyzer_fhir::MAX_XML_DEPTH
                    ));
                }
            }
        }
        i = end.min(bytes.len());
        if i >= bytes.len() {
            break;
        }
    }
    Ok(())
}

/// The dotted JSONPath subset: `$`, `.name`, `['name']` and `[n]`; the first value found
/// (a string as is, anything else as JSON text).
pub(super) fn json_path(path: &str, json: &Value) -> Result<Option<String>, String> {
    let bad = |e: &str| format!("JSONPath `{path}`: {e}");
    let p = path.trim();
    let mut rest = p
        .strip_prefix('$')
        .ok_or_else(|| bad("does not start with `$`"))?;
    let mut at = json;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() {
                return Err(bad(
                    "an empty name after `.` (only the dotted subset is supported)",
                ));
            }
            at = match at {
                Value::Array(a) => match a.first() {
                    Some(x) => &x[name],
                    None => return Ok(None),
                },
                other => &other[name],
            };
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| bad("`[` without `]`"))?;
            let inner = r[..end].trim();
            if let Ok(n) = inner.parse::<usize>() {
                at = &at[n];
            } else if let Some(name) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                at = &at[name];
            } else {
                return Err(bad(&format!(
                    "`[{inner}]` is not an index or a quoted name (only the dotted subset is supported)"
                )));
            }
            rest = &r[end + 1..];
        } else {
            return Err(bad(
                "expected `.` or `[` (only the dotted subset is supported)",
            ));
        }
    }
    Ok(match at {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    })
}

/// What a `path` is evaluated over: a fixture (variables substituted) or an earlier response
/// by id, else the last response. The bool says whether it is a response (its faults are the
/// server's).
fn document(st: &State<'_>, id: Option<&str>) -> Result<(String, Option<Value>, bool), String> {
    let response = |r: &super::exec::Resp| (r.text.clone(), r.body.clone(), true);
    match id {
        Some(id) => {
            if let Some(r) = st.responses.get(id) {
                return Ok(response(r));
            }
            if let Some(f) = st.fixtures.get(id) {
                let f = subst_json(st, f)?;
                return Ok((f.to_string(), Some(f), false));
            }
            Err(st
                .fixture_errors
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("`{id}` names no fixture and no response received")))
        }
        None => match &st.last {
            Some(r) => Ok(response(r)),
            None => Err(
                "there is no response to evaluate it on (no operation ran before it)".to_owned(),
            ),
        },
    }
}

/// A variable's `path` over its `sourceId` (a fixture or a response; none: the last
/// response); nothing found is its `defaultValue`, else an error.
pub(super) fn variable(st: &State<'_>, var: &Value, name: &str) -> Result<String, String> {
    let path = var["path"].as_str().unwrap_or_default();
    let lang = Lang::of(path).name();
    let src = var["sourceId"].as_str();
    let (text, json, _) =
        document(st, src).map_err(|e| format!("variable `{name}` ({lang} `{path}`): {e}"))?;
    let found = evaluate(
        path,
        &Doc {
            text: &text,
            json: json.as_ref(),
        },
    )
    .map_err(|e| match e {
        PathError::Path(m) | PathError::Document(m) => format!("variable `{name}`: {m}"),
    })?;
    match (found, var["defaultValue"].as_str()) {
        (Some(v), _) => Ok(v),
        (None, Some(d)) => Ok(d.to_owned()),
        (None, None) => Err(format!(
            "variable `{name}`: {lang} `{path}` matches nothing in {}",
            src.map_or_else(|| "the last response".to_owned(), |s| format!("`{s}`"))
        )),
    }
}

/// A `path` or `compareToSourcePath` assert. `path` is evaluated over the response (or
/// `sourceId`); with `compareToSourceId`, its value is compared with `compareToSourcePath`
/// over that source (the response side defaults to the same path), else with `value`. With
/// neither value nor operator, the path must match something (`notEmpty`).
pub(super) fn assert_path(st: &State<'_>, a: &Value, name: &str, stop_on_fail: bool) -> Done {
    let script = st.script;
    if a["compareToSourceExpression"].is_string() && a["compareToSourcePath"].is_string() {
        return script_error(
            script,
            name,
            "the assert has both compareToSourceExpression and compareToSourcePath: R4 \
             (TestScript.setup.action.assert.compareToSourcePath) allows one, not both"
                .to_owned(),
        );
    }
    if a["direction"] == "request" {
        return skip_finding(
            script,
            name,
            "a request-direction assert would test the checker's own request (client-role scripts come later)",
        );
    }
    let source_path = a["compareToSourcePath"].as_str();
    let Some(path) = a["path"].as_str().or(source_path) else {
        return script_error(script, name, "`path` must be a string".to_owned());
    };
    if source_path.is_some() && a["path"].is_null() && a["expression"].is_string() {
        return skip_finding(
            script,
            name,
            "compareToSourcePath compared with an `expression` on the response mixes XPath and FHIRPath; give `path`",
        );
    }
    let lang = Lang::of(path).name();
    let op_given = a["operator"].as_str();
    let op = op_given.unwrap_or("equals");
    if compare(Some(""), "", op).is_err() {
        return skip_finding(script, name, &format!("operator `{op}` is not supported"));
    }
    let (text, json, is_response) = match document(st, a["sourceId"].as_str()) {
        Ok(d) => d,
        Err(e) => return skip_finding(script, name, &format!("{lang} `{path}`: {e}")),
    };
    let path_error = |e: PathError, is_response: bool| match e {
        PathError::Path(m) => script_error(script, name, m),
        PathError::Document(m) if is_response => fail(st, a, name, m, stop_on_fail),
        PathError::Document(m) => script_error(script, name, m),
    };
    let actual = match evaluate(
        path,
        &Doc {
            text: &text,
            json: json.as_ref(),
        },
    ) {
        Ok(v) => v,
        Err(e) => return path_error(e, is_response),
    };
    let expected = if let Some(src) = a["compareToSourceId"].as_str() {
        let Some(sp) = source_path else {
            // compareToSourceId with an expression is FHIRPath's business.
            return skip_finding(
                script,
                name,
                "compareToSourceId without compareToSourcePath",
            );
        };
        let (stext, sjson, s_is_response) = match document(st, Some(src)) {
            Ok(d) => d,
            Err(e) => return script_error(script, name, format!("compareToSourceId: {e}")),
        };
        match evaluate(
            sp,
            &Doc {
                text: &stext,
                json: sjson.as_ref(),
            },
        ) {
            Ok(Some(v)) => Some(v),
            Ok(None) => {
                return script_error(
                    script,
                    name,
                    format!(
                        "compareToSourcePath {} `{sp}` matches nothing in `{src}`: there is nothing to compare with",
                        Lang::of(sp).name()
                    ),
                );
            }
            Err(e) => return path_error(e, s_is_response),
        }
    } else {
        match a["value"].as_str().map(|v| subst(st, v)).transpose() {
            Ok(v) => v,
            Err(reason) => return skip_finding(script, name, &reason),
        }
    };
    let (op, expected) = match (&expected, op_given) {
        (None, None) => ("notEmpty", String::new()),
        (e, _) => (op, e.clone().unwrap_or_default()),
    };
    let holds = match compare(actual.as_deref(), &expected, op) {
        Ok(h) => h,
        Err(reason) => return skip_finding(script, name, &reason),
    };
    let shown = if lang == "XPath" && rewrite(path) != path {
        format!("{lang} `{path}` (evaluated as `{}`)", rewrite(path))
    } else {
        format!("{lang} `{path}`")
    };
    if holds {
        return Done {
            outcome: Outcome::Passed,
            findings: Vec::new(),
            exchange: None,
            message: format!("{shown} holds ({op} `{expected}`)"),
            stop: false,
        };
    }
    let message = format!(
        "{shown}: expected {op} `{expected}`, got `{}`",
        actual.as_deref().unwrap_or("(nothing)")
    );
    fail(st, a, name, message, stop_on_fail)
}

/// A failed assert: the server's, unless the operation before broke a FHIR rule (then the
/// script's); a warning with `warningOnly`.
fn fail(st: &State<'_>, a: &Value, name: &str, message: String, stop_on_fail: bool) -> Done {
    let warning = a["warningOnly"] == true;
    let (owner, reason) = match &st.script_fault {
        Some(rule) => (
            Owner::Script,
            format!(
                "The operation before contradicts FHIR ({rule}), so what the server answers is the script's doing."
            ),
        ),
        None => (
            Owner::Receiver,
            "The server's answer is not what the script (and FHIR) expect of it.".to_owned(),
        ),
    };
    let severity = if warning {
        Severity::Warning
    } else {
        Severity::Error
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
                st.script,
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

/// Why a `path` could not be evaluated: the path itself (the script's), or the document it
/// was evaluated over (not FHIR XML, too deep…).
#[derive(Debug)]
pub(super) enum PathError {
    /// The path is not one the checker can evaluate.
    Path(String),
    /// The document is not one a path can be evaluated over.
    Document(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const PATIENT: &str = r#"<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><name><family value="Lovelace"/><given value="Ada"/><given value="Augusta"/></name><name><family value="Byron"/></name></Patient>"#;

    #[test]
    fn unprefixed_steps_get_fhir_and_value_and_search_anywhere() {
        assert_eq!(rewrite("Patient/id"), "//fhir:Patient/fhir:id/@value");
        assert_eq!(
            rewrite("/f:Patient/f:name/f:family/@value"),
            "/f:Patient/f:name/f:family/@value"
        );
        assert_eq!(rewrite("name/family"), "//fhir:name/fhir:family/@value");
        assert_eq!(rewrite("fhir:id"), "//fhir:id/@value");
        assert_eq!(
            rewrite("count(fhir:Patient/fhir:name)"),
            "count(fhir:Patient/fhir:name)"
        );
        assert_eq!(
            rewrite("fhir:name[fhir:family/@value='Byron']"),
            "fhir:name[fhir:family/@value='Byron']"
        );
    }

    #[test]
    fn the_first_match_is_the_value() {
        assert_eq!(xpath("Patient/id", PATIENT).unwrap().as_deref(), Some("p1"));
        assert_eq!(
            xpath("name/given", PATIENT).unwrap().as_deref(),
            Some("Ada")
        );
        assert_eq!(
            xpath("family", PATIENT).unwrap().as_deref(),
            Some("Lovelace")
        );
        assert_eq!(
            xpath("/f:Patient/f:name[2]/f:family/@value", PATIENT)
                .unwrap()
                .as_deref(),
            Some("Byron")
        );
        assert_eq!(
            xpath("count(//fhir:given)", PATIENT).unwrap().as_deref(),
            Some("2")
        );
        assert_eq!(xpath("Patient/gender", PATIENT).unwrap(), None);
        assert_eq!(
            xpath("boolean(//f:Patient)", PATIENT).unwrap().as_deref(),
            Some("true")
        );
    }

    #[test]
    fn json_answers_are_converted_to_fhir_xml() {
        let j = json!({"resourceType": "Patient", "id": "p2", "name": [{"family": "Hopper"}]});
        let doc = Doc {
            text: &j.to_string(),
            json: Some(&j),
        };
        assert_eq!(
            evaluate("Patient/name/family", &doc).unwrap().as_deref(),
            Some("Hopper")
        );
        assert_eq!(
            evaluate("$.name[0].family", &doc).unwrap().as_deref(),
            Some("Hopper")
        );
        assert_eq!(
            evaluate("$.name.family", &doc).unwrap().as_deref(),
            Some("Hopper")
        );
        assert_eq!(evaluate("$['id']", &doc).unwrap().as_deref(), Some("p2"));
        assert_eq!(evaluate("$.gender", &doc).unwrap(), None);
    }

    #[test]
    fn bad_paths_and_documents_are_errors_naming_the_language() {
        for bad in [
            "Patient/[",
            "//",
            "fhir:Patient[",
            "nope:Patient",
            "unknown-fn()",
        ] {
            let e = xpath(bad, PATIENT).unwrap_err();
            assert!(e.starts_with("XPath `"), "{bad}: {e}");
        }
        let e = xpath("Patient/id", "<Patient").unwrap_err();
        assert!(e.contains("not well-formed"), "{e}");
        let deep = format!("{}{}", "<a>".repeat(200), "</a>".repeat(200));
        assert!(xpath("a", &deep).unwrap_err().contains("nested deeper"));
        let nested = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        let doc = Doc {
            text: PATIENT,
            json: None,
        };
        assert!(
            matches!(evaluate(&nested, &doc), Err(PathError::Path(m)) if m.contains("nested deeper"))
        );
        let j = json!({});
        for bad in ["$..x", "$[x]", "$.a[", "$x"] {
            let e = json_path(bad, &j).unwrap_err();
            assert!(e.starts_with("JSONPath `"), "{bad}: {e}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any path string is a value, nothing, or an error: never a panic.
        #[test]
        fn any_path_is_evaluated_or_refused(path in "[a-zA-Z:/@\\[\\]()'=*.$|, 0-9-]{0,40}") {
            let j = json!({"resourceType": "Patient", "id": "p", "name": [{"family": "F"}]});
            let text = j.to_string();
            let _ = evaluate(&path, &Doc { text: &text, json: Some(&j) });
            let _ = evaluate(&path, &Doc { text: PATIENT, json: None });
        }
    }
}
