//! FHIR files: NDJSON streamed line by line; a resource or a Bundle read whole.

use std::path::Path;

use healthanalyzer_fhir::{
    Contents, MAX_BUNDLE_BYTES, ReadOptions, read_bundle, read_ndjson, read_observation,
    read_patient,
};
use healthanalyzer_source::{Error, Rejected, Result};
use serde::Deserialize;

use crate::lines::Parse;
use crate::position;
use crate::{FileOptions, Item};

/// What one NDJSON line holds.
pub(crate) fn ndjson_line<'a>(options: &'a FileOptions, source_id: &'a str) -> Parse<'a> {
    Box::new(move |text: &str, location: &str| {
        let read = ReadOptions::new(options.catalog, source_id).with_validation(options.validation);
        match read_ndjson(text, &read) {
            Ok(c) => items(c, location, options),
            Err(e) => vec![Item::Rejected(Rejected {
                location: location.to_string(),
                reason: e.to_string(),
            })],
        }
    })
}

fn items(c: Contents, location: &str, options: &FileOptions) -> Vec<Item> {
    let mut out = Vec::new();
    for e in c.errors {
        // A Bundle entry's error names its entry (`entry[3].resource.Observation.code`).
        out.push(Item::Rejected(Rejected {
            location: location.to_string(),
            reason: e.error.to_string(),
        }));
    }
    out.extend(c.subjects.into_iter().map(Item::Subject));
    out.extend(
        c.measurements
            .into_iter()
            .map(|m| options.check(m, location)),
    );
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Peek {
    resource_type: String,
}

/// A resource or a Bundle, read whole (up to the Bundle limit).
pub(crate) fn read_whole(path: &Path, options: &FileOptions, source_id: &str) -> Result<Vec<Item>> {
    let text = position::read_whole(
        path,
        MAX_BUNDLE_BYTES as u64,
        "export it as NDJSON, which is streamed",
    )?;
    let bad = |reason: String| Error::BadData {
        location: path.display().to_string(),
        reason,
    };
    let read = ReadOptions::new(options.catalog, source_id).with_validation(options.validation);
    let peek: Peek = serde_json::from_str(&text).map_err(|e| bad(format!("not FHIR JSON: {e}")))?;
    let record = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let location = path.display().to_string();
    let contents = match peek.resource_type.as_str() {
        "Bundle" => read_bundle(&text, &read).map_err(|e| bad(e.to_string()))?,
        "Observation" => match read_observation(&text, &read, Some(&record)) {
            Ok(m) => Contents {
                measurements: vec![m],
                ..Contents::default()
            },
            Err(e) => {
                return Ok(vec![Item::Rejected(Rejected {
                    location,
                    reason: e.to_string(),
                })]);
            }
        },
        "Patient" => Contents {
            subjects: vec![read_patient(&text).map_err(|e| bad(e.to_string()))?],
            ..Contents::default()
        },
        other => {
            return Err(bad(format!(
                "a {other} holds no measurements; give an Observation, a Patient, a Bundle or NDJSON"
            )));
        }
    };
    Ok(items(contents, &location, options))
}
