//! iHealth's answers as measurements: blood pressure (with its pulse), glucose, SpO2 (with
//! its pulse) and weight (with its BMI).

use healthanalyzer_model::{
    Component, ComponentId, ComponentValue, DateTime, Decimal, DeviceRef, Identifier, MealRelation,
    Measurement, Provenance, Quantity, Validator, Value, parse_decimal,
};
use healthanalyzer_source::Rejected;
use jiff::Timestamp;
use jiff::tz::Offset;
use serde_json::Value as Json;

use super::Kind;

/// What the mapping needs besides the answer.
pub(super) struct Ctx<'a> {
    /// The citizen's source id, the first half of every measurement id.
    pub(super) source_id: &'a str,
    /// Whom the measurements are about.
    pub(super) subject: &'a Identifier,
    /// Where a first sync starts: readings before it are left out.
    pub(super) since: Timestamp,
    /// Records changed at or before this time (`LastChangeTime`) were delivered by an
    /// earlier pass.
    pub(super) delivered_until: Option<i64>,
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

/// What one page holds.
pub(super) struct Page {
    /// Its entries, in the order of the page.
    pub(super) entries: Vec<Entry>,
    /// The latest `LastChangeTime` on it.
    pub(super) changed: Option<i64>,
    /// Whether another page follows (`NextPageUrl` is set).
    pub(super) more: bool,
}

/// An integer that iHealth writes as a number or as text (`"HR": "106"`).
fn integer(v: Option<&Json>) -> Option<i64> {
    match v? {
        Json::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON number or numeric text as an exact decimal (a float as its shortest text, which is
/// what iHealth wrote).
fn decimal(v: Option<&Json>) -> Option<Decimal> {
    match v? {
        Json::Number(n) => parse_decimal(&n.to_string()).ok(),
        Json::String(s) => parse_decimal(s.trim()).ok(),
        _ => None,
    }
}

/// A value iHealth recorded: present, a number, not 0 (iHealth writes 0 for "not measured").
fn reading(record: &Json, field: &str) -> Option<Decimal> {
    decimal(record.get(field)).filter(|d| !d.is_zero())
}

/// `TimeZone`: `"-0800"`, `"+01:00"`, `"+2"`, or the same as a number (`-800`, `2`).
pub(super) fn offset(v: &Json) -> Option<Offset> {
    let text = match v {
        Json::String(s) => s.trim().to_string(),
        Json::Number(n) => n.as_i64()?.to_string(),
        _ => return None,
    };
    let (sign, digits) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text.as_str()),
    };
    let (hours, minutes): (i32, i32) = match digits.split_once(':') {
        Some((h, m)) => (h.parse().ok()?, m.parse().ok()?),
        None if digits.len() <= 2 => (digits.parse().ok()?, 0),
        None if digits.len() <= 4 => {
            let n: i32 = digits.parse().ok()?;
            (n / 100, n % 100)
        }
        None => return None,
    };
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b':') || hours > 14 || minutes >= 60 {
        return None;
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

/// When a record was measured. `MDate` is the wall-clock time of the measurement written as
/// if it were UTC, `TimeZone` the offset it was measured at (as Shimmer's mapper reads them).
fn measured(record: &Json) -> Result<DateTime, String> {
    let local = integer(record.get("MDate")).ok_or("`MDate` is missing or not a number")?;
    let offset = record
        .get("TimeZone")
        .and_then(offset)
        .ok_or("`TimeZone` is missing or not an offset such as -0800")?;
    let instant = local
        .checked_sub(i64::from(offset.seconds()))
        .and_then(|s| Timestamp::from_second(s).ok())
        .ok_or("`MDate` is out of range")?;
    Ok(DateTime::from_timestamp(instant, offset))
}

fn device(record: &Json) -> Option<DeviceRef> {
    // "FromDevice" is a reading an iHealth meter sent; "Manual" one typed in the app.
    (record.get("DataSource").and_then(Json::as_str) == Some("FromDevice")).then(|| DeviceRef {
        manufacturer: Some("iHealth".into()),
        ..DeviceRef::default()
    })
}

fn meal(record: &Json) -> Option<MealRelation> {
    let situation = record.get("DinnerSituation").and_then(Json::as_str)?;
    if situation.starts_with("Before_") {
        Some(MealRelation::BeforeMeal)
    } else if situation.starts_with("After_") {
        Some(MealRelation::AfterMeal)
    } else if situation == "At_midnight" {
        Some(MealRelation::Other("at-midnight".into()))
    } else {
        None
    }
}

/// The unit a list's unit code names, or why it is none.
fn unit(kind: Kind, code: Option<i64>) -> Result<Unit, String> {
    let (field, units): (&str, &[(i64, Unit)]) = match kind {
        Kind::Bp => (
            "BPUnit",
            &[(0, Unit::Ucum("mm[Hg]")), (1, Unit::Ucum("kPa"))],
        ),
        Kind::Glucose => (
            "BGUnit",
            &[(0, Unit::Ucum("mg/dL")), (1, Unit::Ucum("mmol/L"))],
        ),
        Kind::Weight => (
            "WeightUnit",
            &[
                (0, Unit::Ucum("kg")),
                (1, Unit::Ucum("[lb_av]")),
                (2, Unit::Stone),
            ],
        ),
        Kind::Spo2 => return Ok(Unit::Ucum("%")),
    };
    let Some(code) = code else {
        return Err(format!("the answer has no `{field}`"));
    };
    units
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, u)| *u)
        .ok_or_else(|| {
            format!(
                "`{field}` {code} is not a unit iHealth documents ({})",
                match kind {
                    Kind::Bp => "0 mmHg, 1 kPa",
                    Kind::Glucose => "0 mg/dL, 1 mmol/L",
                    _ => "0 kg, 1 lbs, 2 stone",
                }
            )
        })
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Ucum(&'static str),
    /// Stones of 14 pounds; the catalog has no stone, so the value is kept in pounds.
    Stone,
}

impl Unit {
    fn quantity(self, v: Decimal) -> Option<Quantity> {
        match self {
            Unit::Ucum(u) => Some(Quantity::new(v, u)),
            Unit::Stone => v
                .checked_mul(Decimal::from(14))
                .map(|lb| Quantity::new(lb, "[lb_av]")),
        }
    }
}

/// The entries of one page of `kind`.
///
/// # Errors
/// The page is not of the shape iHealth documents (the reason, naming what is missing).
pub(super) fn page(kind: Kind, body: &Json, cx: &Ctx<'_>) -> Result<Page, String> {
    let list = match body.get(kind.list()) {
        Some(Json::Array(a)) => a.as_slice(),
        Some(Json::Null) | None if body.get("RecordCount").is_some() => &[],
        _ => return Err(format!("the answer has no `{}` list", kind.list())),
    };
    let more = body
        .get("NextPageUrl")
        .and_then(Json::as_str)
        .is_some_and(|u| !u.trim().is_empty());
    let unit = unit(kind, integer(body.get(kind.unit_field())));
    let mut entries = Vec::new();
    let mut changed: Option<i64> = None;
    for (i, r) in list.iter().enumerate() {
        let data_id = r
            .get("DataID")
            .and_then(Json::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let location = match data_id {
            Some(d) => format!("iHealth {} record {d}", kind.name()),
            None => format!("iHealth {} record #{}", kind.name(), i + 1),
        };
        let reject = |reason: String| {
            Entry::Rejected(Rejected {
                location: location.clone(),
                reason,
            })
        };
        // A record without a change time counts as changed long ago: the first pass takes
        // it, later ones do not take it again.
        let last_change = integer(r.get("LastChangeTime")).unwrap_or(0);
        if cx.delivered_until.is_some_and(|d| last_change <= d) {
            continue;
        }
        changed = Some(changed.map_or(last_change, |c| c.max(last_change)));
        let Some(data_id) = data_id else {
            entries.push(reject("`DataID` is missing".into()));
            continue;
        };
        let when = match measured(r) {
            Ok(w) => w,
            Err(reason) => {
                entries.push(reject(reason));
                continue;
            }
        };
        if when.instant() < cx.since {
            continue;
        }
        let record_id = format!("{}/{data_id}", kind.name());
        let build = |record: String, kind_id: &str, value: Value| {
            let mut m = Measurement::new(
                Provenance::new(cx.source_id, record),
                cx.subject.clone(),
                kind_id,
                value,
                when,
            );
            m.device = device(r);
            m
        };
        let check = |m: Measurement, location: &str| match cx.validator.normalize(m) {
            Ok(m) => Entry::Measurement(Box::new(m)),
            Err(e) => Entry::Rejected(Rejected {
                location: location.to_string(),
                reason: e.to_string(),
            }),
        };
        let quantity = |v: Decimal, u: Unit, field: &str| {
            u.quantity(v)
                .map(|q| Value::Quantity(q.into()))
                .ok_or_else(|| format!("`{field}` is out of range"))
        };
        // The pulse measured with a blood pressure or an SpO2 reading, as its own measurement.
        let pulse = |entries: &mut Vec<Entry>| {
            if let Some(hr) = reading(r, "HR") {
                entries.push(check(
                    build(
                        format!("{record_id}/hr"),
                        "heart-rate",
                        Value::quantity(hr, "/min"),
                    ),
                    &format!("{location} (HR)"),
                ));
            }
        };
        // The list's unit: a code iHealth does not document rejects the reading (not its
        // pulse, which has a unit of its own).
        let unit = match &unit {
            Ok(u) => *u,
            Err(reason) => {
                entries.push(reject(reason.clone()));
                if matches!(kind, Kind::Bp | Kind::Spo2) {
                    pulse(&mut entries);
                }
                continue;
            }
        };
        match kind {
            Kind::Bp => {
                let (Some(systolic), Some(diastolic)) = (reading(r, "HP"), reading(r, "LP")) else {
                    entries.push(reject(
                        "`HP` (systolic) or `LP` (diastolic) is missing or 0".into(),
                    ));
                    pulse(&mut entries);
                    continue;
                };
                let Unit::Ucum(u) = unit else {
                    entries.push(reject("not a pressure unit".into()));
                    pulse(&mut entries);
                    continue;
                };
                let c = |id: &'static str, v: Decimal| Component {
                    id: ComponentId::from_static(id),
                    value: ComponentValue::Quantity(Quantity::new(v, u).into()),
                };
                let value =
                    Value::Components(vec![c("systolic", systolic), c("diastolic", diastolic)]);
                entries.push(check(
                    build(record_id.clone(), "blood-pressure", value),
                    &location,
                ));
                pulse(&mut entries);
            }
            Kind::Glucose => {
                // A record without a value: nothing was measured.
                let Some(bg) = reading(r, "BG") else { continue };
                match quantity(bg, unit, "BG") {
                    Ok(value) => {
                        let mut m = build(record_id.clone(), "capillary-glucose", value);
                        m.context.meal = meal(r);
                        entries.push(check(m, &location));
                    }
                    Err(reason) => entries.push(reject(reason)),
                }
            }
            Kind::Spo2 => {
                if let Some(bo) = reading(r, "BO") {
                    entries.push(check(
                        build(
                            record_id.clone(),
                            "oxygen-saturation",
                            Value::quantity(bo, "%"),
                        ),
                        &location,
                    ));
                }
                pulse(&mut entries);
            }
            Kind::Weight => {
                if let Some(w) = reading(r, "WeightValue") {
                    match quantity(w, unit, "WeightValue") {
                        Ok(value) => entries.push(check(
                            build(record_id.clone(), "body-weight", value),
                            &location,
                        )),
                        Err(reason) => entries.push(reject(reason)),
                    }
                }
                if let Some(bmi) = reading(r, "BMI") {
                    entries.push(check(
                        build(
                            format!("{record_id}/bmi"),
                            "bmi",
                            Value::quantity(bmi, "kg/m2"),
                        ),
                        &format!("{location} (BMI)"),
                    ));
                }
            }
        }
    }
    Ok(Page {
        entries,
        changed,
        more,
    })
}
