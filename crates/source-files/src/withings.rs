//! Withings API responses: `measure?action=getmeas` (body measures: weight, height, blood
//! pressure, pulse, temperature, SpO2) and `getactivity` (daily steps).
//!
//! The mapping of one `getmeas` measure group is public, [`measure_group`], so that the live
//! Withings connector (`healthanalyzer-source-cloud`) and this export-file reader give the
//! same measurements of the same group:
//!
//! ```
//! use healthanalyzer_model::Identifier;
//! use healthanalyzer_source_files::withings;
//!
//! let body = serde_json::json!({
//!     "timezone": "Europe/Paris",
//!     "measuregrps": [{ "grpid": 12, "category": 1, "date": 1594245600, "deviceid": "d1",
//!                       "model": "Body Cardio",
//!                       "measures": [{ "type": 1, "value": 72400, "unit": -3 }] }],
//! });
//! let zone = withings::zone(&body, &jiff::tz::TimeZone::UTC);
//! let subject = Identifier::new("urn:example:citizen", "anna");
//! let ms = withings::measure_group(&body["measuregrps"][0], &zone, &subject, "withings/anna")?;
//! assert_eq!(ms[0].kind, "body-weight");
//! assert_eq!(ms[0].value.as_quantity().map(|q| q.to_string()).as_deref(), Some("72.400 kg"));
//! assert_eq!(ms[0].provenance.record_id, "12/body-weight");
//! assert_eq!(ms[0].effective.start().to_string(), "2020-07-09T00:00:00+02:00");
//! assert_eq!(ms[0].device.as_ref().and_then(|d| d.model.as_deref()), Some("Body Cardio"));
//! # Ok::<(), String>(())
//! ```

use std::path::Path;

use healthanalyzer_model::{
    Component, ComponentId, ComponentValue, DateTime, Decimal, DeviceRef, Effective, Identifier,
    Measurement, Provenance, Quantity, UnitCode, Value,
};
use healthanalyzer_source::{Error, Rejected, Result};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value as Json;

use crate::position::read_whole;
use crate::{FileOptions, Item};

/// The largest response read.
const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The Withings measure types [`measure_group`] maps, as a `getmeas` request's `meastypes`
/// asks for them: 1 weight (kg), 4 height (m), 9 diastolic and 10 systolic blood pressure
/// (mmHg), 11 pulse (bpm), 12 temperature and 71 body temperature (°C), 54 SpO2 (%).
pub const MEASURE_TYPES: [i64; 8] = [1, 4, 9, 10, 11, 12, 54, 71];

/// The identifier system of a Withings `deviceid` in a measurement's [`DeviceRef`].
pub const DEVICE_ID_SYSTEM: &str = "urn:healthanalyzer:withings:deviceid";

/// Withings measure types we map: kind, component, UCUM unit.
fn measure(t: i64) -> Option<(&'static str, Option<&'static str>, &'static str)> {
    Some(match t {
        1 => ("body-weight", None, "kg"),
        4 => ("body-height", None, "m"),
        9 => ("blood-pressure", Some("diastolic"), "mm[Hg]"),
        10 => ("blood-pressure", Some("systolic"), "mm[Hg]"),
        11 => ("heart-rate", None, "/min"),
        12 | 71 => ("body-temperature", None, "Cel"),
        54 => ("oxygen-saturation", None, "%"),
        _ => return None,
    })
}

/// `value × 10^unit`, exactly.
fn scaled(value: i64, unit: i64) -> Option<Decimal> {
    if unit <= 0 {
        let scale = u32::try_from(-unit).ok().filter(|s| *s <= 28)?;
        Some(Decimal::new(value, scale))
    } else {
        let factor = 10i64.checked_pow(u32::try_from(unit).ok()?)?;
        Some(Decimal::from(value.checked_mul(factor)?))
    }
}

/// The time zone a `getmeas` or `getactivity` body (or an activity day) names in its
/// `timezone` (an IANA name such as `Europe/Paris`), or `fallback` when it names none this
/// machine knows.
pub fn zone(body: &Json, fallback: &TimeZone) -> TimeZone {
    body.get("timezone")
        .and_then(Json::as_str)
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or_else(|| fallback.clone())
}

/// The device of a measure group: its `deviceid` (as an identifier in
/// [`DEVICE_ID_SYSTEM`]) and its `model` name, with Withings as the manufacturer; `None` when
/// the group names neither (a measure entered by hand).
fn device(g: &Json) -> Option<DeviceRef> {
    let text = |name: &str| {
        g.get(name)
            .and_then(Json::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let id = text("deviceid");
    let model = text("model");
    if id.is_none() && model.is_none() {
        return None;
    }
    Some(DeviceRef {
        identifier: id.map(|v| Identifier::new(DEVICE_ID_SYSTEM, v)),
        display: model.clone(),
        manufacturer: Some("Withings".into()),
        model,
        ..DeviceRef::default()
    })
}

/// One `getmeas` measure group as measurements: one per kind in it (the systolic and
/// diastolic pressures together as one `blood-pressure` panel; a pulse beside them as its own
/// `heart-rate`), each `value × 10^unit` exactly in the catalog's UCUM unit (see
/// [`MEASURE_TYPES`]); measure types not mapped are left out.
///
/// - The record id is `<grpid>/<kind>` (`366956482/blood-pressure`), so a group that is
///   modified and read again gives the same measurement ids: an update, not a duplicate.
/// - The time is the group's `date`, with the offset `zone` has at that instant (the body's
///   `timezone`: [`zone`]).
/// - The device is the group's `deviceid` and `model`, where it has them.
/// - A goal (`category` 2) is not a measurement: it gives none.
///
/// The measurements are not validated against the catalog yet (the caller does that).
///
/// # Errors
/// Why the group cannot be read (a missing `grpid`, `date` or `measures`, a measure that is
/// not whole numbers, a value out of range), for a [`Rejected`] entry: the text names the
/// field, never the value.
pub fn measure_group(
    g: &Json,
    zone: &TimeZone,
    subject: &Identifier,
    source_id: &str,
) -> std::result::Result<Vec<Measurement>, String> {
    // Category 2 is a goal the user set, not a measurement.
    if g.get("category").and_then(Json::as_i64) == Some(2) {
        return Ok(Vec::new());
    }
    let grpid = g
        .get("grpid")
        .and_then(Json::as_i64)
        .ok_or("`grpid` is missing")?;
    let date = g
        .get("date")
        .and_then(Json::as_i64)
        .ok_or("`date` is missing")?;
    let ts = Timestamp::from_second(date).map_err(|e| format!("`date`: {e}"))?;
    let when = DateTime::from_timestamp(ts, zone.to_offset(ts));
    let mut by_kind: Vec<(&'static str, Vec<Component>, Option<Quantity>)> = Vec::new();
    for m in g
        .get("measures")
        .and_then(Json::as_array)
        .ok_or("`measures` is missing")?
    {
        let (Some(t), Some(v), Some(u)) = (
            m.get("type").and_then(Json::as_i64),
            m.get("value").and_then(Json::as_i64),
            m.get("unit").and_then(Json::as_i64),
        ) else {
            return Err("a measure needs whole-number `type`, `value` and `unit`".into());
        };
        let Some((kind, component, unit)) = measure(t) else {
            continue;
        };
        let value = scaled(v, u).ok_or("a measure's value is out of range")?;
        let q = Quantity::new(value, UnitCode::from_static(unit));
        let slot = match by_kind.iter().position(|(k, _, _)| *k == kind) {
            Some(i) => i,
            None => {
                by_kind.push((kind, Vec::new(), None));
                by_kind.len() - 1
            }
        };
        match component {
            Some(c) => by_kind[slot].1.push(Component {
                id: ComponentId::from_static(c),
                value: ComponentValue::Quantity(q.into()),
            }),
            None => by_kind[slot].2 = Some(q),
        }
    }
    let device = device(g);
    Ok(by_kind
        .into_iter()
        .map(|(kind, components, single)| {
            let value = match single {
                Some(q) => Value::Quantity(q.into()),
                None => Value::Components(components),
            };
            let mut m = Measurement::new(
                Provenance::new(source_id, format!("{grpid}/{kind}")),
                subject.clone(),
                kind,
                value,
                when,
            );
            m.device.clone_from(&device);
            m
        })
        .collect())
}

/// One day of activity: the day's steps.
fn activity(
    a: &Json,
    tz: &TimeZone,
    options: &FileOptions,
    source_id: &str,
) -> std::result::Result<Option<Measurement>, String> {
    let Some(steps) = a.get("steps") else {
        return Ok(None);
    };
    let steps = steps.as_u64().ok_or("`steps` must be a whole number")?;
    let date = a
        .get("date")
        .and_then(Json::as_str)
        .ok_or("`date` is missing")?;
    let tz = zone(a, tz);
    let day: jiff::civil::Date = date.parse().map_err(|e| format!("`date`: {e}"))?;
    let start = day
        .to_zoned(tz.clone())
        .map_err(|e| format!("`date`: {e}"))?;
    let end = start.tomorrow().map_err(|e| format!("`date`: {e}"))?;
    Ok(Some(Measurement::new(
        Provenance::new(source_id, format!("activity/{date}")),
        options.subject.clone(),
        "steps",
        Value::quantity(steps.into(), UnitCode::from_static("{steps}")),
        Effective::Period {
            start: DateTime::from_zoned(&start),
            end: Some(DateTime::from_zoned(&end)),
        },
    )))
}

/// A `getmeas` or `getactivity` response, read whole.
pub(crate) fn read(path: &Path, options: &FileOptions, source_id: &str) -> Result<Vec<Item>> {
    let text = read_whole(path, MAX_BYTES, "split it into several responses")?;
    let bad = |reason: String| Error::BadData {
        location: path.display().to_string(),
        reason,
    };
    let json: Json = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if let Some(status) = json.get("status").and_then(Json::as_i64)
        && status != 0
    {
        return Err(bad(format!(
            "the Withings response has status {status} (an error)"
        )));
    }
    let body = json.get("body").ok_or_else(|| bad("no `body`".into()))?;
    let tz = zone(body, &options.zone);
    let mut out = Vec::new();
    let reject = |location: String, reason: String| Item::Rejected(Rejected { location, reason });
    if let Some(groups) = body.get("measuregrps").and_then(Json::as_array) {
        for (i, g) in groups.iter().enumerate() {
            let location = format!("{} measuregrps[{i}]", path.display());
            match measure_group(g, &tz, &options.subject, source_id) {
                Ok(ms) => out.extend(ms.into_iter().map(|m| options.check(m, &location))),
                Err(reason) => out.push(reject(location, reason)),
            }
        }
    } else if let Some(days) = body.get("activities").and_then(Json::as_array) {
        for (i, a) in days.iter().enumerate() {
            let location = format!("{} activities[{i}]", path.display());
            match activity(a, &tz, options, source_id) {
                Ok(Some(m)) => out.push(options.check(m, &location)),
                Ok(None) => {}
                Err(reason) => out.push(reject(location, reason)),
            }
        }
    } else {
        return Err(bad(
            "neither `measuregrps` (getmeas) nor `activities` (getactivity) in the body".into(),
        ));
    }
    Ok(out)
}
