//! Open mHealth data points (blood pressure, body weight and height, heart rate, glucose, body
//! temperature, SpO2, respiratory rate, BMI, step count): one data point, a bare body, or an
//! array of them.

use std::path::Path;

use healthanalyzer_model::{
    Component, ComponentId, ComponentValue, DateTime, Effective, Measurement, Provenance, Quantity,
    UnitCode, Value, parse_decimal,
};
use healthanalyzer_source::{Error, Rejected, Result};
use jiff::SignedDuration;
use serde_json::Value as Json;

use crate::position::read_whole;
use crate::{FileOptions, Item};

/// The largest file read (data point files are small; a bulk export should be split).
const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Open mHealth units, as UCUM.
fn ucum(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "mmHg" => "mm[Hg]",
        "kPa" => "kPa",
        "kg" => "kg",
        "g" => "g",
        "lb" => "[lb_av]",
        "oz" => "[oz_av]",
        "cm" => "cm",
        "m" => "m",
        "mm" => "mm",
        "in" => "[in_i]",
        "ft" => "[ft_i]",
        "beats/min" => "/min",
        "breaths/min" => "/min",
        "mg/dL" => "mg/dL",
        "mmol/L" => "mmol/L",
        "C" => "Cel",
        "F" => "[degF]",
        "K" => "K",
        "%" => "%",
        "kg/m2" | "kg/m^2" => "kg/m2",
        _ => return None,
    })
}

/// A `{value, unit}` element as a quantity.
fn unit_value(body: &Json, key: &str) -> std::result::Result<Option<Quantity>, String> {
    let Some(v) = body.get(key) else {
        return Ok(None);
    };
    let number = v
        .get("value")
        .filter(|n| n.is_number())
        .ok_or_else(|| format!("`{key}.value` must be a number"))?;
    let unit = v
        .get("unit")
        .and_then(Json::as_str)
        .ok_or_else(|| format!("`{key}.unit` is missing"))?;
    let unit = ucum(unit)
        .ok_or_else(|| format!("`{key}.unit` {unit:?} is not an Open mHealth unit we know"))?;
    let value = parse_decimal(&number.to_string()).map_err(|e| format!("`{key}.value`: {e}"))?;
    Ok(Some(Quantity::new(value, UnitCode::from_static(unit))))
}

fn time(s: &Json, key: &str) -> std::result::Result<DateTime, String> {
    let text = s
        .get(key)
        .and_then(Json::as_str)
        .ok_or_else(|| format!("`{key}` is missing"))?;
    DateTime::parse(text).map_err(|e| format!("`{key}`: {e}"))
}

/// `effective_time_frame`: a date-time, or an interval with start and end or duration.
fn effective(body: &Json) -> std::result::Result<Effective, String> {
    let frame = body
        .get("effective_time_frame")
        .ok_or("`effective_time_frame` is missing, so the reading cannot be placed in time")?;
    if frame.get("date_time").is_some() {
        return Ok(Effective::At(time(frame, "date_time")?));
    }
    let interval = frame
        .get("time_interval")
        .ok_or("`effective_time_frame` has neither `date_time` nor `time_interval`")?;
    if interval.get("start_date_time").is_none() {
        return Err("a time interval without `start_date_time` (a date and part of day) cannot be placed in time".into());
    }
    let start = time(interval, "start_date_time")?;
    let end = if interval.get("end_date_time").is_some() {
        Some(time(interval, "end_date_time")?)
    } else if let Some(d) = interval.get("duration") {
        let value = d
            .get("value")
            .and_then(Json::as_f64)
            .ok_or("`duration.value` must be a number")?;
        let seconds = match d.get("unit").and_then(Json::as_str) {
            Some("sec") => 1.0,
            Some("min") => 60.0,
            Some("h") => 3600.0,
            Some("d") => 86_400.0,
            Some("wk") => 604_800.0,
            other => return Err(format!("`duration.unit` {other:?} is not one we convert")),
        };
        let span = SignedDuration::try_from_secs_f64(value * seconds)
            .map_err(|e| format!("`duration`: {e}"))?;
        let end = start
            .instant()
            .checked_add(span)
            .map_err(|e| format!("`duration`: {e}"))?;
        Some(DateTime::from_timestamp(
            end,
            start
                .offset()
                .map(|o| o.to_jiff())
                .unwrap_or(jiff::tz::Offset::UTC),
        ))
    } else {
        return Err("a `time_interval` needs `end_date_time` or `duration`".into());
    };
    Ok(Effective::Period { start, end })
}

/// The kind and value of a body.
fn value(body: &Json) -> std::result::Result<(&'static str, Value), String> {
    if body.get("systolic_blood_pressure").is_some()
        || body.get("diastolic_blood_pressure").is_some()
    {
        let mut c = Vec::new();
        for (key, id) in [
            ("systolic_blood_pressure", "systolic"),
            ("diastolic_blood_pressure", "diastolic"),
        ] {
            if let Some(q) = unit_value(body, key)? {
                c.push(Component {
                    id: ComponentId::from_static(id),
                    value: ComponentValue::Quantity(q.into()),
                });
            }
        }
        return Ok(("blood-pressure", Value::Components(c)));
    }
    if let Some(steps) = body.get("step_count") {
        let n = steps.get("value").unwrap_or(steps);
        let n = n.as_u64().ok_or("`step_count` must be a whole number")?;
        return Ok((
            "steps",
            Value::quantity(n.into(), UnitCode::from_static("{steps}")),
        ));
    }
    let glucose = match body.get("specimen_source").map(|s| s.as_str()) {
        None => "blood-glucose",
        Some(Some("capillary blood")) => "capillary-glucose",
        Some(Some("interstitial fluid" | "plasma" | "serum" | "tissue fluid" | "whole blood")) => {
            "blood-glucose"
        }
        Some(_) => return Err("`specimen_source` is not one Open mHealth defines".into()),
    };
    for (key, kind) in [
        ("body_weight", "body-weight"),
        ("body_height", "body-height"),
        ("heart_rate", "heart-rate"),
        ("blood_glucose", glucose),
        ("body_temperature", "body-temperature"),
        ("oxygen_saturation", "oxygen-saturation"),
        ("respiratory_rate", "respiratory-rate"),
        ("body_mass_index", "bmi"),
    ] {
        if let Some(q) = unit_value(body, key)? {
            return Ok((kind, Value::Quantity(q.into())));
        }
    }
    Err("no measure this connector reads (blood pressure, weight, height, heart rate, glucose, temperature, SpO2, respiratory rate, BMI, steps)".into())
}

/// One data point (or bare body) as a measurement.
fn measurement(
    point: &Json,
    options: &FileOptions,
    source_id: &str,
    fallback_id: &str,
) -> std::result::Result<Measurement, String> {
    let (body, record) = match (point.get("header"), point.get("body")) {
        (Some(h), Some(b)) => (
            b,
            h.get("id")
                .and_then(Json::as_str)
                .ok_or("`header.id` is missing")?
                .to_string(),
        ),
        _ => (point, fallback_id.to_string()),
    };
    if let Some(stat) = body.get("descriptive_statistic").and_then(Json::as_str) {
        return Err(format!(
            "a descriptive statistic ({stat}) over a period, not a measurement"
        ));
    }
    let (kind, value) = value(body)?;
    let effective = effective(body)?;
    Ok(Measurement::new(
        Provenance::new(source_id, record),
        options.subject.clone(),
        kind,
        value,
        effective,
    ))
}

/// A file of one data point, one body, or an array of them.
pub(crate) fn read(path: &Path, options: &FileOptions, source_id: &str) -> Result<Vec<Item>> {
    let text = read_whole(path, MAX_BYTES, "split it into several files")?;
    let json: Json = serde_json::from_str(&text).map_err(|e| Error::BadData {
        location: path.display().to_string(),
        reason: format!("not JSON: {e}"),
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let points = match json {
        Json::Array(a) => a,
        other => vec![other],
    };
    Ok(points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let location = format!("{}[{i}]", path.display());
            match measurement(p, options, source_id, &format!("{name}[{i}]")) {
                Ok(m) => options.check(m, &location),
                Err(reason) => Item::Rejected(Rejected { location, reason }),
            }
        })
        .collect())
}
