//! Fitbit's answers as measurements: weight logs (with their BMI), the daily resting heart
//! rate, daily steps and the nightly SpO2 average.

use healthanalyzer_model::{
    DateTime, Decimal, DeviceRef, Effective, Identifier, Measurement, Provenance, Status,
    Validator, Value, parse_decimal,
};
use healthanalyzer_source::Rejected;
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::Series;

/// What the mapping needs besides the answer.
pub(super) struct Ctx<'a> {
    /// The citizen's source id, the first half of every measurement id.
    pub(super) source_id: &'a str,
    /// Whom the measurements are about.
    pub(super) subject: &'a Identifier,
    /// The citizen's time zone at Fitbit (their profile's).
    pub(super) zone: &'a TimeZone,
    /// The same, as the cursor keeps it (part of each record's fingerprint).
    pub(super) zone_text: &'a str,
    /// Where a first sync starts: weight logs before it are left out.
    pub(super) since: Timestamp,
    /// The citizen's day today: its daily values are not over yet.
    pub(super) today: Date,
    /// Checks and normalises each measurement.
    pub(super) validator: &'a Validator<'a>,
}

/// A measurement, or why a record is not one.
pub(super) enum Entry {
    /// A measurement, checked and normalised.
    Measurement(Box<Measurement>),
    /// A record that cannot be a measurement.
    Rejected(Rejected),
}

/// One thing a window's answer holds, with where it sorts.
pub(super) struct Item {
    /// The position within the window: items are delivered in this order, and the cursor
    /// keeps the key of the last one delivered.
    pub(super) key: String,
    /// The citizen's day it belongs to.
    pub(super) day: Date,
    /// The record id (a rejected record's location).
    pub(super) id: String,
    /// A fingerprint of the record as Fitbit sent it, to tell an update from a repeat.
    pub(super) hash: String,
    /// The measurement, or the rejection.
    pub(super) entry: Entry,
}

/// The items of one answer for `series`; `window_start` is the day a record without a
/// readable date is counted under.
///
/// # Errors
/// The answer is not of the shape Fitbit documents (the reason, naming what is missing).
pub(super) fn items(
    series: Series,
    body: &Json,
    window_start: Date,
    cx: &Ctx<'_>,
) -> Result<Vec<Item>, String> {
    match series {
        Series::Weight => weight_logs(body, window_start, cx),
        Series::Heart => daily(
            series,
            list(body, "activities-heart")?,
            window_start,
            cx,
            |r| match r.get("value")? {
                // Fitbit leaves `restingHeartRate` out on days it could not estimate it; an
                // older answer has a text `value` that is not the resting heart rate.
                Json::Object(v) => Some(v.get("restingHeartRate")),
                _ => Some(None),
            },
        ),
        Series::Steps => daily(
            series,
            list(body, "activities-steps")?,
            window_start,
            cx,
            |r| r.get("value").map(Some),
        ),
        Series::Spo2 => {
            // An interval is an array; a range without data may come as `{}`.
            let records: &[Json] = match body {
                Json::Array(a) => a,
                Json::Object(o) if o.is_empty() => &[],
                _ => return Err("the SpO2 answer is not a list".into()),
            };
            daily(series, records, window_start, cx, |r| {
                match r.get("value")? {
                    Json::Object(v) => Some(v.get("avg")),
                    _ => Some(None),
                }
            })
        }
    }
}

fn list<'b>(body: &'b Json, name: &str) -> Result<&'b [Json], String> {
    match body.get(name) {
        Some(Json::Array(a)) => Ok(a),
        _ => Err(format!("the answer has no `{name}` list")),
    }
}

/// A JSON number or numeric text as an exact decimal (a float as its shortest text, which is
/// what Fitbit wrote).
pub(super) fn decimal(v: &Json) -> Option<Decimal> {
    match v {
        Json::Number(n) => parse_decimal(&n.to_string()).ok(),
        Json::String(s) => parse_decimal(s.trim()).ok(),
        _ => None,
    }
}

fn fingerprint(record: &Json, cx: &Ctx<'_>, open: bool) -> String {
    let mut h = Sha256::new();
    h.update(record.to_string().as_bytes());
    h.update([0]);
    h.update(cx.zone_text.as_bytes());
    h.update([u8::from(open)]);
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A record that sorts after every dated one, keyed by its content.
fn undated(record: &Json, cx: &Ctx<'_>) -> String {
    format!("~{}", fingerprint(record, cx, false))
}

fn checked(m: Measurement, location: &str, cx: &Ctx<'_>) -> Entry {
    match cx.validator.normalize(m) {
        Ok(m) => Entry::Measurement(Box::new(m)),
        Err(e) => Entry::Rejected(Rejected {
            location: location.to_string(),
            reason: e.to_string(),
        }),
    }
}

fn rejected(location: String, reason: impl Into<String>) -> Entry {
    Entry::Rejected(Rejected {
        location,
        reason: reason.into(),
    })
}

/// The scale a weight log names in `source`, if a device took it (`API`, `Web` and `Manual`
/// logs were typed in, or written by another app).
fn device(source: Option<&str>) -> Option<DeviceRef> {
    let source = source.map(str::trim).filter(|s| !s.is_empty())?;
    if matches!(source, "API" | "Web" | "Manual" | "Mobile") {
        return None;
    }
    let fitbit = source.starts_with("Aria");
    Some(DeviceRef {
        manufacturer: fitbit.then(|| "Fitbit".to_string()),
        model: fitbit.then(|| source.to_string()),
        display: Some(source.to_string()),
        ..DeviceRef::default()
    })
}

/// `GET /1/user/-/body/log/weight/date/{start}/{end}.json`: `{"weight": [{"bmi", "date",
/// "logId", "time", "weight", "source"}]}`, in kg (no `Accept-Language` is sent), at the
/// citizen's local time.
fn weight_logs(body: &Json, window_start: Date, cx: &Ctx<'_>) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    for (i, r) in list(body, "weight")?.iter().enumerate() {
        let log_id = r.get("logId").and_then(Json::as_u64);
        let location = match log_id {
            Some(id) => format!("Fitbit weight log {id}"),
            None => format!("Fitbit weight log #{}", i + 1),
        };
        let date = r
            .get("date")
            .and_then(Json::as_str)
            .and_then(|d| d.parse::<Date>().ok());
        let time = r
            .get("time")
            .and_then(Json::as_str)
            .and_then(|t| t.parse::<Time>().ok());
        let (Some(log_id), Some(date), Some(time)) = (log_id, date, time) else {
            out.push(Item {
                key: undated(r, cx),
                day: window_start,
                id: location.clone(),
                hash: fingerprint(r, cx, false),
                entry: rejected(
                    location,
                    "`logId`, `date` (YYYY-MM-DD) or `time` (hh:mm:ss) is missing or unreadable",
                ),
            });
            continue;
        };
        let zoned = match date.to_datetime(time).to_zoned(cx.zone.clone()) {
            Ok(z) => z,
            Err(e) => {
                out.push(Item {
                    key: undated(r, cx),
                    day: date,
                    id: location.clone(),
                    hash: fingerprint(r, cx, false),
                    entry: rejected(location, format!("`date` and `time`: {e}")),
                });
                continue;
            }
        };
        if zoned.timestamp() < cx.since {
            continue;
        }
        let when = DateTime::from_zoned(&zoned);
        let key = format!("{date}T{time}#{log_id:020}");
        let hash = fingerprint(r, cx, false);
        let device = device(r.get("source").and_then(Json::as_str));
        let measurement = |kind: &str, value: Value, record: String| {
            let mut m = Measurement::new(
                Provenance::new(cx.source_id, record),
                cx.subject.clone(),
                kind,
                value,
                when,
            );
            m.device = device.clone();
            m
        };
        let entry = match r.get("weight").and_then(decimal) {
            Some(kg) => checked(
                measurement("body-weight", Value::quantity(kg, "kg"), log_id.to_string()),
                &location,
                cx,
            ),
            None => rejected(location.clone(), "`weight` is missing or not a number"),
        };
        out.push(Item {
            key: format!("{key}#0"),
            day: date,
            id: log_id.to_string(),
            hash: hash.clone(),
            entry,
        });
        // Fitbit computes the BMI from the weight and the profile's height; 0 when it has no
        // height.
        if let Some(bmi) = r
            .get("bmi")
            .and_then(decimal)
            .filter(|b| *b > Decimal::ZERO)
        {
            let id = format!("{log_id}/bmi");
            out.push(Item {
                key: format!("{key}#1"),
                day: date,
                entry: checked(
                    measurement("bmi", Value::quantity(bmi, "kg/m2"), id.clone()),
                    &format!("{location} (bmi)"),
                    cx,
                ),
                id,
                hash,
            });
        }
    }
    Ok(out)
}

/// The citizen's day `day` as a period: from its start to the next day's, or still running
/// when the day is not over.
fn day_period(day: Date, open: bool, zone: &TimeZone) -> Result<Effective, String> {
    let start_of = |d: Date| {
        d.to_zoned(zone.clone())
            .and_then(|z| z.start_of_day())
            .map(|z| DateTime::from_zoned(&z))
            .map_err(|e| format!("the day {d}: {e}"))
    };
    let start = start_of(day)?;
    let end = if open {
        None
    } else {
        let next = day.tomorrow().map_err(|e| format!("the day {day}: {e}"))?;
        Some(start_of(next)?)
    };
    Ok(Effective::Period { start, end })
}

/// One value a day (`{"dateTime": "2015-08-23", "value": …}`), as a measurement over the
/// citizen's day; `value` picks the value out of a record (`None`: the field is missing,
/// `Some(None)`: the record has no value that day).
fn daily(
    series: Series,
    records: &[Json],
    window_start: Date,
    cx: &Ctx<'_>,
    value: impl Fn(&Json) -> Option<Option<&Json>>,
) -> Result<Vec<Item>, String> {
    let (kind, unit) = match series {
        Series::Heart => ("heart-rate", "/min"),
        Series::Steps => ("steps", "{steps}"),
        Series::Spo2 => ("oxygen-saturation", "%"),
        Series::Weight => return Err("weight logs are not daily values".into()),
    };
    let name = series.name();
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let Some(day) = r
            .get("dateTime")
            .and_then(Json::as_str)
            .and_then(|d| d.parse::<Date>().ok())
        else {
            let location = format!("Fitbit {name} #{}", i + 1);
            out.push(Item {
                key: undated(r, cx),
                day: window_start,
                id: location.clone(),
                hash: fingerprint(r, cx, false),
                entry: rejected(location, "`dateTime` is missing or not a date (YYYY-MM-DD)"),
            });
            continue;
        };
        let id = format!("{name}/{day}");
        let location = format!("Fitbit {name} of {day}");
        let open = day >= cx.today;
        let hash = fingerprint(r, cx, open);
        let entry = match value(r) {
            None => rejected(location, "`value` is missing"),
            // No estimate that day.
            Some(None) => continue,
            Some(Some(v)) => match decimal(v) {
                None => rejected(location, "`value` is not a number"),
                // Fitbit reports 0 steps for every day the tracker was not worn or has not
                // synced yet: that is no reading, not a reading of 0.
                Some(d) if d.is_zero() => continue,
                Some(d) => match day_period(day, open, cx.zone) {
                    Err(reason) => rejected(location, reason),
                    Ok(effective) => {
                        let mut m = Measurement::new(
                            Provenance::new(cx.source_id, id.clone()),
                            cx.subject.clone(),
                            kind,
                            Value::quantity(d, unit),
                            effective,
                        );
                        // A day that is not over may still change.
                        if open {
                            m.status = Status::Preliminary;
                        }
                        checked(m, &location, cx)
                    }
                },
            },
        };
        out.push(Item {
            key: day.to_string(),
            day,
            id,
            hash,
            entry,
        });
    }
    Ok(out)
}
