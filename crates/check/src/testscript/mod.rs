//! FHIR R4 `TestScript` resources: loading them (JSON, or FHIR XML read by `healthanalyzer-fhir`), running
//! them with the checker's [`Runner`](crate::Runner) and writing a FHIR `TestReport` per script.
//!
//! A script becomes a [`ScenarioResult`](crate::ScenarioResult) named after the script, and
//! each of its actions a [`StepResult`](crate::StepResult) (setup, test and teardown), so the
//! JUnit XML and the Markdown triage report work as they do for TOML scenarios. What the checker
//! cannot evaluate (a FHIRPath type test on a data type, a Turtle body, an unknown extension
//! or operator…) is a skipped step with a finding that
//! names the script, the action and the reason: never a silent pass. FHIRPath (`expression`
//! asserts and variables, `compareToSourceExpression`) goes through [`fhirpath`], a thin layer
//! over octofhir-fhirpath; XPath 1.0 `path` and `compareToSourcePath` through sxd-xpath over
//! the FHIR XML of the answer; `contentType`/`accept` xml send and ask for FHIR XML; and the
//! Touchstone placeholders include `${DATE, T, <unit>, <offset>}`.

mod asserts;
mod exec;
mod expression;
pub mod fhirpath;
mod fixtures;
mod operation;
mod placeholders;
mod report;
mod variables;
mod xml_body;
mod xpath;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

pub use exec::TestScriptRun;

/// The largest TestScript or fixture file read: 16 MiB.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One R4 `TestScript`, as JSON, with the file it came from (fixtures are found next to it).
#[derive(Debug, Clone)]
pub struct TestScript {
    /// `TestScript.name` (or `id`, or the file name).
    pub name: String,
    /// The file it came from, or a label for a script given as text.
    pub origin: String,
    /// The folder fixture references are relative to (`None`: the current folder).
    pub dir: Option<PathBuf>,
    /// The resource as JSON (XML is converted on loading).
    pub resource: Value,
}

impl TestScript {
    /// A script from its JSON text. `origin` names it in errors and findings.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let resource: Value = serde_json::from_str(text).map_err(|e| Error::TestScript {
            origin: origin.to_owned(),
            reason: format!("not JSON: {e}"),
        })?;
        Self::from_value(resource, origin)
    }

    /// A script from its FHIR XML text, converted to JSON by `healthanalyzer_fhir::xml_to_json`.
    pub fn from_xml(text: &str, origin: &str) -> Result<Self> {
        let json = xml_to_json(text).map_err(|reason| Error::TestScript {
            origin: origin.to_owned(),
            reason,
        })?;
        Self::from_value(json, origin)
    }

    /// A script from a parsed JSON resource: it must be a `TestScript` whose `setup`, `test`
    /// and `teardown` hold actions.
    pub fn from_value(resource: Value, origin: &str) -> Result<Self> {
        let bad = |reason: String| Error::TestScript {
            origin: origin.to_owned(),
            reason,
        };
        if resource["resourceType"] != "TestScript" {
            return Err(bad(format!(
                "resourceType is {}, not TestScript",
                resource["resourceType"]
            )));
        }
        for (key, want_array) in [("fixture", true), ("variable", true), ("test", true)] {
            let v = &resource[key];
            if !v.is_null() && v.is_array() != want_array {
                return Err(bad(format!("TestScript.{key} must be an array")));
            }
        }
        for (i, t) in resource["test"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if !t["action"].is_array() {
                return Err(bad(format!("TestScript.test[{i}].action must be an array")));
            }
        }
        for part in ["setup", "teardown"] {
            let v = &resource[part];
            if !v.is_null() && !v["action"].is_array() {
                return Err(bad(format!("TestScript.{part}.action must be an array")));
            }
        }
        let name = resource["name"]
            .as_str()
            .or_else(|| resource["id"].as_str())
            .unwrap_or(origin)
            .to_owned();
        Ok(Self {
            name,
            origin: origin.to_owned(),
            dir: None,
            resource,
        })
    }

    /// A script file: `.xml` (or text starting with `<`) is FHIR XML, anything else JSON.
    /// Fixture references are relative to the file's folder.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = read_text(path)?;
        let origin = path.display().to_string();
        let mut script = if is_xml(path, &text) {
            Self::from_xml(&text, &origin)?
        } else {
            Self::from_json(&text, &origin)?
        };
        script.dir = path.parent().map(Path::to_owned);
        Ok(script)
    }
}

/// The scripts in a file, or in a folder (its `.json` and `.xml` files holding a `TestScript`,
/// in name order; other resources there, fixtures say, are left alone).
pub fn load(path: &Path) -> Result<Vec<TestScript>> {
    if !path.is_dir() {
        return Ok(vec![TestScript::from_file(path)?]);
    }
    let entries = std::fs::read_dir(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| {
                    x.eq_ignore_ascii_case("json") || x.eq_ignore_ascii_case("xml")
                })
        })
        .collect();
    files.sort();
    let mut scripts = Vec::new();
    for f in files {
        let text = read_text(&f)?;
        let looks_like_script = text.contains("\"TestScript\"") || text.contains("<TestScript");
        if looks_like_script {
            scripts.push(TestScript::from_file(&f)?);
        }
    }
    if scripts.is_empty() {
        return Err(Error::TestScript {
            origin: path.display().to_string(),
            reason: "the folder holds no TestScript (.json or .xml)".to_owned(),
        });
    }
    Ok(scripts)
}

fn read_text(path: &Path) -> Result<String> {
    let read = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > MAX_FILE_BYTES {
        return Err(Error::TestScript {
            origin: path.display().to_string(),
            reason: format!("{len} bytes, more than the limit of {MAX_FILE_BYTES}"),
        });
    }
    std::fs::read_to_string(path).map_err(read)
}

fn is_xml(path: &Path, text: &str) -> bool {
    path.extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("xml"))
        || text.trim_start().starts_with('<')
}

/// FHIR XML to FHIR JSON ([`healthanalyzer_fhir::xml_to_json`]: fhirbolt's element model,
/// R4, strict; a panic of its reader is an error).
pub(crate) fn xml_to_json(text: &str) -> std::result::Result<Value, String> {
    let json = healthanalyzer_fhir::xml_to_json(text).map_err(|e| e.to_string())?;
    serde_json::from_str(&json).map_err(|e| format!("cannot convert the XML to JSON: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn xml_becomes_fhir_json() {
        let s = TestScript::from_xml(
            r#"<TestScript xmlns="http://hl7.org/fhir"><name value="x"/><status value="draft"/>
               <variable><name value="v"/><defaultValue value="1"/></variable>
               <test><action><assert><response value="okay"/></assert></action></test>
               </TestScript>"#,
            "inline",
        )
        .unwrap();
        assert_eq!(s.name, "x");
        assert_eq!(s.resource["variable"][0]["defaultValue"], "1");
        assert_eq!(
            s.resource["test"][0]["action"][0]["assert"]["response"],
            "okay"
        );
    }

    #[test]
    fn what_is_not_a_testscript_is_an_error_naming_it() {
        let e = TestScript::from_json(r#"{"resourceType":"Patient"}"#, "p.json").unwrap_err();
        assert!(e.to_string().contains("p.json"), "{e}");
        assert!(e.to_string().contains("not TestScript"), "{e}");
        let e = TestScript::from_json(r#"{"resourceType":"TestScript","test":{}}"#, "t.json")
            .unwrap_err();
        assert!(e.to_string().contains("TestScript.test"), "{e}");
        let e = TestScript::from_xml("<Patient", "t.xml").unwrap_err();
        assert!(e.to_string().contains("t.xml"), "{e}");
    }
}
