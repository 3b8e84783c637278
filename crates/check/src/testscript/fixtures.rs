//! TestScript fixtures (contained, `Type/id` files or paths next to the script) and what an
//! operation's `sourceId` and `targetId` point at.

use std::path::Path;

use serde_json::Value;

use super::TestScript;
use super::exec::{Resp, State, list};
use crate::run::http::header;

pub(super) fn load_fixtures(st: &mut State<'_>) {
    let script = st.script;
    for f in list(&script.resource["fixture"]) {
        let Some(id) = f["id"].as_str() else { continue };
        let Some(reference) = f["resource"]["reference"].as_str() else {
            st.fixture_errors.insert(
                id.to_owned(),
                format!("fixture `{id}` has no resource.reference"),
            );
            continue;
        };
        match fixture(script, reference) {
            Ok(v) => {
                st.fixtures.insert(id.to_owned(), v);
            }
            Err(e) => {
                st.fixture_errors
                    .insert(id.to_owned(), format!("fixture `{id}` ({reference}): {e}"));
            }
        }
    }
}

/// A fixture: `#id` (contained), `Type/id` (a file `Type-id.json` or `.xml` next to the script)
/// or a file relative to the script.
pub(super) fn fixture(script: &TestScript, reference: &str) -> std::result::Result<Value, String> {
    if let Some(id) = reference.strip_prefix('#') {
        return list(&script.resource["contained"])
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .ok_or_else(|| format!("the script contains no resource with id `{id}`"));
    }
    let dir = script.dir.clone().unwrap_or_default();
    let typed = reference.split_once('/').filter(|(t, id)| {
        t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && t.chars().all(|c| c.is_ascii_alphabetic())
            && !id.contains('/')
            && !id.contains('.')
    });
    let candidates: Vec<std::path::PathBuf> = match typed {
        Some((t, id)) => vec![
            dir.join(format!("{t}-{id}.json")),
            dir.join(format!("{t}-{id}.xml")),
        ],
        None => vec![dir.join(reference)],
    };
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        return Err(format!(
            "no file {}",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    };
    read_fixture(path)
}

pub(super) fn read_fixture(path: &Path) -> std::result::Result<Value, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if len > super::MAX_FILE_BYTES {
        return Err(format!("{} is larger than 16 MiB", path.display()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if super::is_xml(path, &text) {
        super::xml_to_json(&text)
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
    }
}

/// A fixture or an earlier response's body, by id.
pub(super) fn source(st: &State<'_>, id: &str) -> std::result::Result<Value, String> {
    if let Some(v) = st.fixtures.get(id) {
        return Ok(v.clone());
    }
    if let Some(r) = st.responses.get(id) {
        return r
            .body
            .clone()
            .ok_or_else(|| format!("response `{id}` has no JSON body"));
    }
    Err(st
        .fixture_errors
        .get(id)
        .cloned()
        .unwrap_or_else(|| format!("`{id}` names no fixture and no earlier response")))
}

/// (type, id, version) of what a response is about: its body, else its Location.
pub(super) fn identity(r: &Resp) -> Option<(String, String, Option<String>)> {
    if let Some(b) = &r.body
        && let (Some(t), Some(id)) = (b["resourceType"].as_str(), b["id"].as_str())
        && t != "OperationOutcome"
    {
        let v = b["meta"]["versionId"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| etag_version(r));
        return Some((t.to_owned(), id.to_owned(), v));
    }
    let loc = header(&r.headers, "location")?;
    let parts: Vec<&str> = loc.split('/').collect();
    let at = parts.iter().rposition(|p| *p == "_history");
    let (t, id, v) = match at {
        Some(i) if i >= 2 => (
            parts[i - 2],
            parts[i - 1],
            parts.get(i + 1).map(|s| (*s).to_owned()),
        ),
        _ if parts.len() >= 2 => (parts[parts.len() - 2], parts[parts.len() - 1], None),
        _ => return None,
    };
    Some((t.to_owned(), id.to_owned(), v))
}

pub(super) fn etag_version(r: &Resp) -> Option<String> {
    let e = header(&r.headers, "etag")?;
    Some(e.trim_start_matches("W/").trim_matches('"').to_owned())
}

/// What a targetId points at: a response's resource, a created fixture, or a fixture's own id.
pub(super) fn target_of(st: &State<'_>, id: &str) -> Option<(String, String, Option<String>)> {
    if let Some(r) = st.responses.get(id) {
        return identity(r);
    }
    if let Some((t, i)) = st.created.get(id) {
        return Some((t.clone(), i.clone(), None));
    }
    let f = st.fixtures.get(id)?;
    Some((
        f["resourceType"].as_str()?.to_owned(),
        f["id"].as_str()?.to_owned(),
        f["meta"]["versionId"].as_str().map(str::to_owned),
    ))
}
