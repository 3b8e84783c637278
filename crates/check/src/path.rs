//! Element paths: a small, FHIRPath-like way to point into a JSON resource.
//!
//! `entry[0].resource.valueQuantity.value`, `link[relation=next].url`,
//! `component[code.coding.code=8480-6].valueQuantity.value`, `entry[*].resource.id`.
//!
//! - A name steps into an element. Arrays are flattened as in FHIRPath: `entry.resource` is the
//!   resource of every entry.
//! - `[n]` keeps the n-th node (from 0) of what the step produced, `[*]` keeps them all.
//! - `[path=value]` keeps the nodes where the sub-path has a value whose text is `value`.
//! - An empty path, or `$`, is the whole body.

use serde_json::Value;

use crate::error::{Error, Result};

/// A parsed element path.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementPath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
struct Step {
    name: String,
    filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Index(usize),
    All,
    Equals(ElementPath, String),
}

fn error(path: &str, reason: impl Into<String>) -> Error {
    Error::Path {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

impl ElementPath {
    /// Parses a path; the error says where it went wrong.
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed == "$" {
            return Ok(Self {
                text: text.to_owned(),
                steps: Vec::new(),
            });
        }
        let mut steps = Vec::new();
        let bytes = trimmed.as_bytes();
        let mut i = 0;
        loop {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            if i == start {
                return Err(error(
                    text,
                    format!("expected an element name at character {}", start + 1),
                ));
            }
            let mut step = Step {
                name: trimmed[start..i].to_owned(),
                filters: Vec::new(),
            };
            while i < bytes.len() && bytes[i] == b'[' {
                let open = i;
                let mut depth = 0usize;
                let mut close = None;
                for (j, b) in bytes.iter().enumerate().skip(open) {
                    match b {
                        b'[' => depth += 1,
                        b']' => {
                            depth -= 1;
                            if depth == 0 {
                                close = Some(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let Some(close) = close else {
                    return Err(error(
                        text,
                        format!("`[` at character {} is never closed", open + 1),
                    ));
                };
                step.filters
                    .push(parse_filter(text, &trimmed[open + 1..close])?);
                i = close + 1;
            }
            steps.push(step);
            if i == bytes.len() {
                break;
            }
            if bytes[i] != b'.' {
                return Err(error(
                    text,
                    format!("expected `.` or `[` at character {}", i + 1),
                ));
            }
            i += 1;
        }
        Ok(Self {
            text: text.to_owned(),
            steps,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Every node the path reaches in `root`, in document order.
    pub fn eval<'v>(&self, root: &'v Value) -> Vec<&'v Value> {
        let mut nodes = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for node in nodes {
                let children: Vec<&Value> = match node {
                    Value::Array(items) => items.iter().filter_map(|v| v.get(&step.name)).collect(),
                    other => other.get(&step.name).into_iter().collect(),
                };
                for child in children {
                    match child {
                        Value::Array(items) => next.extend(items.iter()),
                        other => next.push(other),
                    }
                }
            }
            for filter in &step.filters {
                next = match filter {
                    Filter::All => next,
                    Filter::Index(n) => next.get(*n).copied().into_iter().collect(),
                    Filter::Equals(sub, want) => next
                        .into_iter()
                        .filter(|n| {
                            sub.eval(n)
                                .iter()
                                .any(|v| text_of(v).as_deref() == Some(want))
                        })
                        .collect(),
                };
            }
            nodes = next;
        }
        nodes
    }

    /// The first node the path reaches.
    pub fn first<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.eval(root).into_iter().next()
    }
}

fn parse_filter(path: &str, inner: &str) -> Result<Filter> {
    let inner = inner.trim();
    if inner == "*" {
        return Ok(Filter::All);
    }
    if let Ok(n) = inner.parse::<usize>() {
        return Ok(Filter::Index(n));
    }
    match inner.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok(Filter::Equals(
            ElementPath::parse(key.trim()).map_err(|e| error(path, e.to_string()))?,
            value.trim().to_owned(),
        )),
        _ => Err(error(
            path,
            format!("`[{inner}]` is neither an index, `*`, nor `path=value`"),
        )),
    }
}

/// The text of a scalar JSON value (strings without quotes, numbers as written); `None` for
/// objects, arrays and null.
pub(crate) fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn bundle() -> Value {
        json!({
            "resourceType": "Bundle",
            "link": [{"relation": "self", "url": "a"}, {"relation": "next", "url": "b"}],
            "entry": [
                {"resource": {"id": "o1", "component": [
                    {"code": {"coding": [{"code": "8480-6"}]}, "valueQuantity": {"value": 120}},
                    {"code": {"coding": [{"code": "8462-4"}]}, "valueQuantity": {"value": 80}}]}},
                {"resource": {"id": "o2", "valueQuantity": {"value": 72.4}}}
            ]
        })
    }

    fn texts(path: &str, v: &Value) -> Vec<String> {
        ElementPath::parse(path)
            .unwrap()
            .eval(v)
            .into_iter()
            .filter_map(text_of)
            .collect()
    }

    #[test]
    fn steps_flatten_arrays_like_fhirpath() {
        let b = bundle();
        assert_eq!(texts("entry.resource.id", &b), ["o1", "o2"]);
        assert_eq!(texts("entry[1].resource.id", &b), ["o2"]);
        assert_eq!(texts("entry[*].resource.id", &b), ["o1", "o2"]);
        assert_eq!(texts("link[relation=next].url", &b), ["b"]);
        assert_eq!(
            texts(
                "entry.resource.component[code.coding.code=8462-4].valueQuantity.value",
                &b
            ),
            ["80"]
        );
        assert_eq!(
            texts("entry.resource.component.valueQuantity.value", &b),
            ["120", "80"]
        );
        assert_eq!(texts("resourceType", &b), ["Bundle"]);
        assert!(texts("entry[5].resource.id", &b).is_empty());
        assert!(texts("nothing.here", &b).is_empty());
        assert_eq!(ElementPath::parse("").unwrap().eval(&b), vec![&b]);
    }

    #[test]
    fn bad_paths_are_errors_that_say_where() {
        for (bad, says) in [
            ("entry..id", "character 7"),
            ("entry[0", "never closed"),
            ("entry[x]", "neither an index"),
            ("entry[=3]", "neither an index"),
            ("entry]", "character 6"),
            (".id", "character 1"),
        ] {
            let e = ElementPath::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errors_without_panicking(s in "\\PC{0,40}") {
            if let Ok(p) = ElementPath::parse(&s) {
                let _ = p.eval(&bundle());
            }
        }

        #[test]
        fn names_and_indexes_round_trip_to_the_node(i in 0usize..2) {
            let b = bundle();
            let p = ElementPath::parse(&format!("entry[{i}].resource.id")).unwrap();
            let want = if i == 0 { "o1" } else { "o2" };
            let got = p.first(&b).and_then(text_of);
            prop_assert_eq!(got.as_deref(), Some(want));
            prop_assert_eq!(p.as_str(), format!("entry[{i}].resource.id"));
        }
    }
}
