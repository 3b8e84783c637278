//! Nightscout CGM entries: the API's JSON array, or its tab-separated export.
//!
//! The mapping of one entry of the API's JSON is public, [`entry`], so that the live
//! Nightscout connector (`healthanalyzer-source-cloud`) and this export-file reader give the
//! same measurement, with the same id, of the same entry:
//!
//! ```
//! use healthanalyzer_model::Identifier;
//! use healthanalyzer_source_files::nightscout::{self, IdField, MappedEntry};
//!
//! let raw = serde_json::json!({
//!     "_id": "5f0c9b3e2a1d4c0012345678", "type": "sgv", "sgv": 178,
//!     "date": 1405767555000_i64, "dateString": "2014-07-19T03:59:15.000-07:00",
//!     "device": "dexcom",
//! });
//! let subject = Identifier::new("urn:example:citizen", "anna");
//! let zone = jiff::tz::TimeZone::UTC;
//! let MappedEntry::Glucose(m) = nightscout::entry(&raw, IdField::Id, &zone, &subject, "ns/anna")? else {
//!     panic!("a reading");
//! };
//! assert_eq!(m.kind, "blood-glucose");
//! assert_eq!(m.value.as_quantity().map(|q| q.to_string()).as_deref(), Some("178 mg/dL"));
//! assert_eq!(m.provenance.record_id, "5f0c9b3e2a1d4c0012345678");
//! assert_eq!(m.effective.start().to_string(), "2014-07-19T03:59:15-07:00");
//! assert_eq!(m.device.and_then(|d| d.display).as_deref(), Some("dexcom"));
//!
//! // An sgv below 40 mg/dL is a sensor code, not a glucose level.
//! let code = serde_json::json!({ "type": "sgv", "sgv": "5", "date": 1405792155000_i64 });
//! let mapped = nightscout::entry(&code, IdField::Id, &zone, &subject, "ns/anna")?;
//! assert!(matches!(mapped, MappedEntry::SensorCode(_)));
//! # Ok::<(), String>(())
//! ```

use std::path::Path;

use healthanalyzer_model::{
    DateTime, DeviceRef, Identifier, Measurement, Provenance, Value, parse_decimal,
};
use healthanalyzer_source::{Error, Rejected, Result};
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::lines::Parse;
use crate::position::read_whole;
use crate::{FileOptions, Item};

/// The largest JSON entries file read (Nightscout API pages are small; exports are TSV).
const MAX_JSON_BYTES: u64 = 256 * 1024 * 1024;

/// CGM values (`sgv`) below this many mg/dL are not glucose levels but the codes CGMs and
/// their uploaders write for a sensor state (Dexcom's 1 "sensor not active", 5 "no antenna",
/// 9 "absolute deviation", 10 "power deviation", 39 "low"…): [`MappedEntry::SensorCode`].
pub const LOWEST_READING_MG_DL: i64 = 40;

/// Which field of an entry holds its record id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdField {
    /// `_id`, the database id of the API v1 and of exports.
    Id,
    /// `identifier`, the API v3's (which is the `_id` of entries that have no identifier of
    /// their own).
    Identifier,
}

impl IdField {
    /// The field's name.
    pub fn name(self) -> &'static str {
        match self {
            IdField::Id => "_id",
            IdField::Identifier => "identifier",
        }
    }
}

/// One Nightscout entry, mapped by [`entry`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MappedEntry {
    /// A glucose reading: a CGM `sgv` (kind `blood-glucose`) or a meter `mbg` entry (kind
    /// `capillary-glucose`), in mg/dL as Nightscout stores them, not yet checked against the
    /// catalog.
    Glucose(Measurement),
    /// An `sgv` below [`LOWEST_READING_MG_DL`]: a sensor code, not a glucose level, with the
    /// measurement it would make. The live connector skips these; the file reader reads them
    /// as it always has, and the catalog's plausible range refuses the codes below 10 mg/dL.
    SensorCode(Measurement),
    /// Not a glucose reading: a calibration (`cal`), or any other type.
    NotGlucose,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "_id", default)]
    id: Option<String>,
    #[serde(default)]
    identifier: Option<Json>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    sgv: Option<Json>,
    #[serde(default)]
    mbg: Option<Json>,
    #[serde(default)]
    date: Option<i64>,
    #[serde(rename = "dateString", default)]
    date_string: Option<String>,
    #[serde(rename = "utcOffset", default)]
    utc_offset: Option<Json>,
    #[serde(default)]
    device: Option<Json>,
}

fn number(v: &Json) -> Option<String> {
    match v {
        Json::Number(n) => Some(n.to_string()),
        Json::String(s) => Some(s.trim().to_string()),
        _ => None,
    }
}

/// The offset of Nightscout's `utcOffset` (minutes east of UTC, a whole number within a
/// day), when it is one: for entries and treatments alike.
pub fn minutes_offset(v: &Json) -> Option<Offset> {
    let minutes = v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|m| m.fract() == 0.0 && m.abs() <= 1440.0)
            .map(|m| m as i64)
    })?;
    let seconds = i32::try_from(minutes.checked_mul(60)?).ok()?;
    Offset::from_seconds(seconds).ok()
}

/// A glucose measurement at `ms` since 1970, on the wall clock of `offset` when given, else
/// of the zone the entry's own date string shows, else of `zone`.
#[allow(clippy::too_many_arguments)]
fn glucose(
    zone: &TimeZone,
    subject: &Identifier,
    source_id: &str,
    record: String,
    kind: &'static str,
    mg_dl: &str,
    ms: i64,
    offset: Option<Offset>,
    shown: Option<&str>,
) -> std::result::Result<Measurement, String> {
    let value = parse_decimal(mg_dl).map_err(|e| format!("glucose value: {e}"))?;
    let ts = Timestamp::from_millisecond(ms).map_err(|e| format!("date: {e}"))?;
    let offset = offset
        .or_else(|| {
            shown
                .and_then(|s| DateTime::parse(s).ok())
                .and_then(|d| d.offset())
                .map(|o| o.to_jiff())
        })
        .unwrap_or_else(|| zone.to_offset(ts));
    Ok(Measurement::new(
        Provenance::new(source_id, record),
        subject.clone(),
        kind,
        Value::quantity(value, "mg/dL"),
        DateTime::from_timestamp(ts, offset),
    ))
}

/// Maps one entry of Nightscout's `entries` JSON (API v1, v3 or an export): its `sgv` (or
/// `mbg`) in mg/dL at its `date` (milliseconds since 1970), on the wall clock of its
/// `utcOffset` (minutes), else of the offset its `dateString` shows, else of `zone`; its
/// `device` as the device's display name. The record id is the entry's `ids` field, else its
/// kind and date (`blood-glucose@1405767555000`).
///
/// # Errors
/// Why the entry is not a reading (a missing `date`, a value that is not a number), naming
/// the field, for a [`Rejected`] entry.
pub fn entry(
    raw: &Json,
    ids: IdField,
    zone: &TimeZone,
    subject: &Identifier,
    source_id: &str,
) -> std::result::Result<MappedEntry, String> {
    let entry = Entry::deserialize(raw).map_err(|e| e.to_string())?;
    let (kind, value) = match (entry.kind.as_deref(), &entry.sgv, &entry.mbg) {
        (Some("sgv") | None, Some(v), _) => ("blood-glucose", v),
        (Some("mbg"), _, Some(v)) => ("capillary-glucose", v),
        // Calibrations and treatments are not measurements.
        (Some(_), _, _) => return Ok(MappedEntry::NotGlucose),
        (None, None, _) => return Err("neither `sgv` nor `type`".into()),
    };
    let Some(ms) = entry.date else {
        return Err("`date` (milliseconds) is missing".into());
    };
    let Some(v) = number(value) else {
        return Err("the glucose value is not a number".into());
    };
    let id = match ids {
        IdField::Id => entry.id,
        IdField::Identifier => entry.identifier.as_ref().and_then(|i| match i {
            Json::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }),
    };
    let record = id.unwrap_or_else(|| format!("{kind}@{ms}"));
    let mut m = glucose(
        zone,
        subject,
        source_id,
        record,
        kind,
        &v,
        ms,
        entry.utc_offset.as_ref().and_then(minutes_offset),
        entry.date_string.as_deref(),
    )?;
    if let Some(Json::String(device)) = &entry.device
        && !device.trim().is_empty()
    {
        m.device = Some(DeviceRef {
            display: Some(device.trim().to_string()),
            ..DeviceRef::default()
        });
    }
    let code = kind == "blood-glucose"
        && m.value
            .as_quantity()
            .is_some_and(|q| q.value < LOWEST_READING_MG_DL.into());
    Ok(if code {
        MappedEntry::SensorCode(m)
    } else {
        MappedEntry::Glucose(m)
    })
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
    let entries: Vec<Json> = serde_json::from_str(&text).map_err(|e| Error::BadData {
        location: path.display().to_string(),
        reason: format!("not a Nightscout entries array: {e}"),
    })?;
    let mut out = Vec::new();
    for (i, raw) in entries.iter().enumerate() {
        let location = format!("{} entry[{i}]", path.display());
        let m = match entry(raw, IdField::Id, &options.zone, &options.subject, source_id) {
            // The file reader reads sensor codes as values, as it always has: the catalog's
            // plausible range refuses most of them.
            Ok(MappedEntry::Glucose(m) | MappedEntry::SensorCode(m)) => Ok(m),
            Ok(MappedEntry::NotGlucose) => continue,
            Err(reason) => Err(reason),
        };
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
            &options.zone,
            &options.subject,
            source_id,
            format!("sgv@{ms}"),
            "blood-glucose",
            sgv.trim(),
            ms,
            None,
            None,
        );
        vec![keep(options, location, m)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn subject() -> Identifier {
        Identifier::new("urn:example:citizen", "anna")
    }

    fn map(raw: Json, ids: IdField) -> std::result::Result<MappedEntry, String> {
        entry(&raw, ids, &TimeZone::UTC, &subject(), "ns")
    }

    #[test]
    fn utc_offset_wins_over_a_utc_date_string() {
        // Nightscout writes dateString in UTC and the local offset beside it.
        let raw = json!({"_id": "a1", "type": "sgv", "sgv": 120, "date": 1_700_000_000_000_i64,
            "dateString": "2023-11-14T22:13:20.000Z", "utcOffset": 60});
        let Ok(MappedEntry::Glucose(m)) = map(raw, IdField::Id) else {
            panic!("a reading");
        };
        assert_eq!(m.effective.start().to_string(), "2023-11-14T23:13:20+01:00");
    }

    #[test]
    fn the_v3_identifier_is_the_record_id_and_the_kind_and_date_without_one() {
        let raw = json!({"identifier": "6b1d", "_id": "x", "type": "sgv", "sgv": 99, "date": 5});
        let Ok(MappedEntry::Glucose(m)) = map(raw.clone(), IdField::Identifier) else {
            panic!("a reading");
        };
        assert_eq!(m.provenance.record_id, "6b1d");
        let Ok(MappedEntry::Glucose(m)) = map(raw, IdField::Id) else {
            panic!("a reading");
        };
        assert_eq!(m.provenance.record_id, "x");
        let Ok(MappedEntry::Glucose(m)) = map(json!({"sgv": 99, "date": 5}), IdField::Id) else {
            panic!("a reading");
        };
        assert_eq!(m.provenance.record_id, "blood-glucose@5");
    }

    #[test]
    fn codes_below_40_are_sensor_codes_and_40_is_a_reading() {
        let at = |v: i64| json!({"type": "sgv", "sgv": v, "date": 5});
        assert!(matches!(
            map(at(39), IdField::Id),
            Ok(MappedEntry::SensorCode(_))
        ));
        assert!(matches!(
            map(at(40), IdField::Id),
            Ok(MappedEntry::Glucose(_))
        ));
        // A meter reading is never a sensor code.
        let mbg = json!({"type": "mbg", "mbg": 20, "date": 5});
        assert!(matches!(map(mbg, IdField::Id), Ok(MappedEntry::Glucose(_))));
        let cal = json!({"type": "cal", "slope": 800, "date": 5});
        assert!(matches!(map(cal, IdField::Id), Ok(MappedEntry::NotGlucose)));
        let e = map(
            json!({"type": "sgv", "sgv": "high", "date": 5}),
            IdField::Id,
        );
        assert!(e.is_err_and(|r| r.contains("glucose value")));
    }
}
