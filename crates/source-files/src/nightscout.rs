//! Nightscout CGM entries: the API's JSON array, or its tab-separated export.

use std::path::Path;

use healthanalyzer_model::{DateTime, Measurement, Provenance, Value, parse_decimal};
use healthanalyzer_source::{Error, Rejected, Result};
use jiff::Timestamp;
use serde::Deserialize;

use crate::lines::Parse;
use crate::position::read_whole;
use crate::{FileOptions, Item};

/// The largest JSON entries file read (Nightscout API pages are small; exports are TSV).
const MAX_JSON_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "_id", default)]
    id: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    sgv: Option<serde_json::Value>,
    #[serde(default)]
    mbg: Option<serde_json::Value>,
    #[serde(default)]
    date: Option<i64>,
    #[serde(rename = "dateString", default)]
    date_string: Option<String>,
}

fn number(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.trim().to_string()),
        _ => None,
    }
}

/// A glucose measurement at `ms` since 1970, in the zone the entry's own date string shows
/// (else the configured one).
fn glucose(
    options: &FileOptions,
    source_id: &str,
    record: String,
    kind: &'static str,
    mg_dl: &str,
    ms: i64,
    shown: Option<&str>,
) -> std::result::Result<Measurement, String> {
    let value = parse_decimal(mg_dl).map_err(|e| format!("glucose value: {e}"))?;
    let ts = Timestamp::from_millisecond(ms).map_err(|e| format!("date: {e}"))?;
    let offset = shown
        .and_then(|s| DateTime::parse(s).ok())
        .and_then(|d| d.offset())
        .map(|o| o.to_jiff())
        .unwrap_or_else(|| options.zone.to_offset(ts));
    Ok(Measurement::new(
        Provenance::new(source_id, record),
        options.subject.clone(),
        kind,
        Value::quantity(value, "mg/dL"),
        DateTime::from_timestamp(ts, offset),
    ))
}

fn keep(
    options: &FileOptions,
    location: &str,
    m: std::result::Result<Measurement, String>,
) -> Item {
    match m {
        Ok(m) => options.check(m, location),
        Err(reason) => Item::Rejected(Rejected {
            location: location.to_string(),
            reason,
        }),
    }
}

/// The API's `entries` JSON array, read whole.
pub(crate) fn read_json(path: &Path, options: &FileOptions, source_id: &str) -> Result<Vec<Item>> {
    let text = read_whole(
        path,
        MAX_JSON_BYTES,
        "split it into pages, or export TSV, which is streamed",
    )?;
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| Error::BadData {
            location: path.display().to_string(),
            reason: format!("not a Nightscout entries array: {e}"),
        })?;
    let mut out = Vec::new();
    for (i, raw) in entries.into_iter().enumerate() {
        let location = format!("{} entry[{i}]", path.display());
        let reject = |reason: String| {
            Item::Rejected(Rejected {
                location: location.clone(),
                reason,
            })
        };
        let entry: Entry = match serde_json::from_value(raw) {
            Ok(e) => e,
            Err(e) => {
                out.push(reject(e.to_string()));
                continue;
            }
        };
        let (kind, value) = match (entry.kind.as_deref(), &entry.sgv, &entry.mbg) {
            (Some("sgv") | None, Some(v), _) => ("blood-glucose", v),
            (Some("mbg"), _, Some(v)) => ("capillary-glucose", v),
            // Calibrations and treatments are not measurements.
            (Some(_), _, _) => continue,
            (None, None, _) => {
                out.push(reject("neither `sgv` nor `type`".into()));
                continue;
            }
        };
        let Some(ms) = entry.date else {
            out.push(reject("`date` (milliseconds) is missing".into()));
            continue;
        };
        let Some(v) = number(value) else {
            out.push(reject("the glucose value is not a number".into()));
            continue;
        };
        let record = entry.id.unwrap_or_else(|| format!("{kind}@{ms}"));
        let m = glucose(
            options,
            source_id,
            record,
            kind,
            &v,
            ms,
            entry.date_string.as_deref(),
        );
        out.push(keep(options, &location, m));
    }
    Ok(out)
}

/// One line of the tab-separated export (`dateString`, `date`, `sgv`, `direction`, `device`).
pub(crate) fn tsv_line<'a>(options: &'a FileOptions, source_id: &'a str) -> Parse<'a> {
    Box::new(move |text: &str, location: &str| {
        let cells: Vec<&str> = text.split('\t').collect();
        let reject = |reason: &str| {
            vec![Item::Rejected(Rejected {
                location: location.to_string(),
                reason: reason.to_string(),
            })]
        };
        let (Some(ms), Some(sgv)) = (cells.get(1), cells.get(2)) else {
            return reject("expected dateString, date, sgv, … separated by tabs");
        };
        let Ok(ms) = ms.trim().parse::<i64>() else {
            return reject("`date` is not milliseconds since 1970");
        };
        let m = glucose(
            options,
            source_id,
            format!("sgv@{ms}"),
            "blood-glucose",
            sgv.trim(),
            ms,
            None,
        );
        vec![keep(options, location, m)]
    })
}
