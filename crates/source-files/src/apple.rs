//! Apple Health `export.xml`, streamed element by element with a pull parser: memory stays
//! bounded whatever the export's size. Quantity records of the kinds we map, and blood-pressure
//! correlations, become measurements; everything else (workouts, activity summaries, other
//! record types) is passed over.

use std::collections::HashMap;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use healthanalyzer_model::{
    Component, ComponentId, ComponentValue, DateTime, DeviceRef, Effective, Measurement,
    Provenance, Quantity, UnitCode, Value, parse_decimal,
};
use healthanalyzer_source::{Error, Rejected, Result};
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

use crate::position::{Position, io, open};
use crate::{FileOptions, Item, Record, RecordReader};

const SYSTOLIC: &str = "HKQuantityTypeIdentifierBloodPressureSystolic";
const DIASTOLIC: &str = "HKQuantityTypeIdentifierBloodPressureDiastolic";

/// HealthKit quantity types we map, with the kind.
fn kind_of(hk: &str) -> Option<&'static str> {
    Some(match hk {
        "HKQuantityTypeIdentifierHeartRate" => "heart-rate",
        "HKQuantityTypeIdentifierBodyMass" => "body-weight",
        "HKQuantityTypeIdentifierHeight" => "body-height",
        "HKQuantityTypeIdentifierBodyMassIndex" => "bmi",
        "HKQuantityTypeIdentifierBodyTemperature" => "body-temperature",
        "HKQuantityTypeIdentifierOxygenSaturation" => "oxygen-saturation",
        "HKQuantityTypeIdentifierRespiratoryRate" => "respiratory-rate",
        "HKQuantityTypeIdentifierBloodGlucose" => "blood-glucose",
        "HKQuantityTypeIdentifierStepCount" => "steps",
        _ => return None,
    })
}

/// HealthKit unit strings as UCUM, for a kind.
fn ucum(kind: &str, unit: &str) -> Option<&'static str> {
    Some(match (kind, unit) {
        ("heart-rate" | "respiratory-rate", "count/min") => "/min",
        ("body-weight", "kg") => "kg",
        ("body-weight", "g") => "g",
        ("body-weight", "lb") => "[lb_av]",
        ("body-weight", "oz") => "[oz_av]",
        ("body-height", "cm") => "cm",
        ("body-height", "m") => "m",
        ("body-height", "in") => "[in_i]",
        ("body-height", "ft") => "[ft_i]",
        ("bmi", "count") => "kg/m2",
        ("body-temperature", "degC") => "Cel",
        ("body-temperature", "degF") => "[degF]",
        // HealthKit writes saturation as a fraction (0.97) with the unit "%".
        ("oxygen-saturation", "%") => "1",
        ("blood-glucose", "mg/dL") => "mg/dL",
        ("blood-glucose", u) if u.starts_with("mmol") && u.ends_with("/L") => "mmol/L",
        ("steps", "count") => "{steps}",
        (_, "mmHg") => "mm[Hg]",
        _ => return None,
    })
}

/// `2019-05-01 07:31:00 +0200`.
fn time(text: &str) -> std::result::Result<DateTime, String> {
    let zoned = jiff::fmt::strtime::parse("%Y-%m-%d %H:%M:%S %z", text)
        .and_then(|t| t.to_timestamp().map(|ts| (ts, t.offset())))
        .map_err(|e| format!("date {text:?}: {e}"))?;
    let (ts, offset) = zoned;
    Ok(DateTime::from_timestamp(
        ts,
        offset.unwrap_or(jiff::tz::Offset::UTC),
    ))
}

fn attributes(e: &BytesStart<'_>) -> std::result::Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("attribute: {e}"))?;
        let key = a.key.as_ref().to_string();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("attribute {key}: {e}"))?;
        out.insert(key, value.into_owned());
    }
    Ok(out)
}

fn get<'a>(a: &'a HashMap<String, String>, key: &str) -> std::result::Result<&'a str, String> {
    a.get(key)
        .map(String::as_str)
        .ok_or_else(|| format!("`{key}` is missing"))
}

/// The record id: type, source and times (HealthKit exports no ids; these are stable across
/// exports).
fn record_id(a: &HashMap<String, String>) -> String {
    let g = |k: &str| a.get(k).map(String::as_str).unwrap_or("");
    format!(
        "{}|{}|{}|{}",
        g("type"),
        g("sourceName"),
        g("startDate"),
        g("endDate")
    )
}

fn quantity(kind: &str, a: &HashMap<String, String>) -> std::result::Result<Quantity, String> {
    let unit = get(a, "unit")?;
    let ucum = ucum(kind, unit).ok_or_else(|| format!("unit {unit:?} is not one we convert"))?;
    let value = parse_decimal(get(a, "value")?).map_err(|e| format!("`value`: {e}"))?;
    Ok(Quantity::new(value, UnitCode::from_static(ucum)))
}

fn device(a: &HashMap<String, String>) -> Option<DeviceRef> {
    let source = a.get("sourceName")?;
    Some(DeviceRef {
        display: Some(source.clone()),
        ..DeviceRef::default()
    })
}

/// A top-level `Record` of a kind we map.
fn record(
    a: &HashMap<String, String>,
    options: &FileOptions,
    source_id: &str,
) -> std::result::Result<Option<Measurement>, String> {
    let hk = get(a, "type")?;
    let Some(kind) = kind_of(hk) else {
        return Ok(None);
    };
    let q = quantity(kind, a)?;
    let start = time(get(a, "startDate")?)?;
    let effective = if kind == "steps" {
        Effective::Period {
            start,
            end: Some(time(get(a, "endDate")?)?),
        }
    } else {
        Effective::At(start)
    };
    let mut m = Measurement::new(
        Provenance::new(source_id, record_id(a)),
        options.subject.clone(),
        kind,
        Value::Quantity(q.into()),
        effective,
    );
    m.device = device(a);
    Ok(Some(m))
}

/// An `export.xml` read from a position, one top-level element at a time.
pub(crate) struct AppleReader<'a> {
    reader: quick_xml::Reader<BufReader<std::fs::File>>,
    base: u64,
    options: &'a FileOptions,
    source_id: &'a str,
    path: &'a Path,
    buf: Vec<u8>,
    inner: Vec<u8>,
    /// Whether the reader is inside `HealthData` (true when resuming from an offset).
    inside: bool,
}

impl<'a> AppleReader<'a> {
    pub(crate) fn open(
        path: &'a Path,
        options: &'a FileOptions,
        source_id: &'a str,
        at: Position,
    ) -> Result<Self> {
        let mut file = BufReader::with_capacity(256 * 1024, open(path)?);
        file.seek(SeekFrom::Start(at.offset))
            .map_err(|e| io(path, e))?;
        let mut reader = quick_xml::Reader::from_reader(file);
        reader.config_mut().trim_text(true);
        // Resumed inside `HealthData`, the reader never saw its start tag.
        reader.config_mut().allow_unmatched_ends = at.offset > 0;
        Ok(AppleReader {
            reader,
            base: at.offset,
            options,
            source_id,
            path,
            buf: Vec::new(),
            inner: Vec::new(),
            inside: at.offset > 0,
        })
    }

    fn here(&self) -> Position {
        Position {
            offset: self.base + self.reader.buffer_position(),
            line: 0,
            part: 0,
        }
    }

    fn bad(&self, reason: String) -> Error {
        Error::BadData {
            location: format!("{} byte {}", self.path.display(), self.here().offset),
            reason: format!("not an Apple Health export: {reason}"),
        }
    }

    /// A blood-pressure `Correlation`: its systolic and diastolic records.
    fn correlation(
        &mut self,
        a: &HashMap<String, String>,
    ) -> std::result::Result<Vec<Item>, String> {
        let mut systolic = None;
        let mut diastolic = None;
        loop {
            self.inner.clear();
            let event = self
                .reader
                .read_event_into(&mut self.inner)
                .map_err(|e| format!("inside a correlation: {e}"))?;
            match event {
                Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "Record" => {
                    let r = attributes(&e)?;
                    match r.get("type").map(String::as_str) {
                        Some(SYSTOLIC) => systolic = Some(quantity("blood-pressure", &r)?),
                        Some(DIASTOLIC) => diastolic = Some(quantity("blood-pressure", &r)?),
                        _ => {}
                    }
                }
                Event::End(e) if e.local_name().as_ref() == "Correlation" => break,
                Event::Eof => return Err("the export ends inside a correlation".into()),
                _ => {}
            }
        }
        let mut components = Vec::new();
        for (id, q) in [("systolic", systolic), ("diastolic", diastolic)] {
            if let Some(q) = q {
                components.push(Component {
                    id: ComponentId::from_static(id),
                    value: ComponentValue::Quantity(q.into()),
                });
            }
        }
        let mut m = Measurement::new(
            Provenance::new(self.source_id, record_id(a)),
            self.options.subject.clone(),
            "blood-pressure",
            Value::Components(components),
            Effective::At(time(get(a, "startDate")?)?),
        );
        m.device = device(a);
        Ok(vec![self.options.check(m, &self.location())])
    }

    fn location(&self) -> String {
        format!("{} byte {}", self.path.display(), self.here().offset)
    }
}

impl AppleReader<'_> {
    /// What a top-level `Record` gives.
    fn record_items(&self, e: &BytesStart<'_>, location: String) -> Vec<Item> {
        let a = match attributes(e) {
            Ok(a) => a,
            Err(reason) => return vec![Item::Rejected(Rejected { location, reason })],
        };
        match a.get("type").map(String::as_str) {
            // Blood pressure comes in correlations; the loose halves HealthKit also exports
            // would be read twice.
            Some(SYSTOLIC | DIASTOLIC) => Vec::new(),
            _ => match record(&a, self.options, self.source_id) {
                Ok(Some(m)) => vec![self.options.check(m, &location)],
                Ok(None) => Vec::new(),
                Err(reason) => vec![Item::Rejected(Rejected { location, reason })],
            },
        }
    }

    fn skip_to_end(&mut self, name: &str) -> Result<()> {
        self.inner.clear();
        let mut inner = std::mem::take(&mut self.inner);
        let done = self
            .reader
            .read_to_end_into(quick_xml::name::QName(name), &mut inner)
            .map(drop)
            .map_err(|e| self.bad(e.to_string()));
        self.inner = inner;
        done
    }
}

impl RecordReader for AppleReader<'_> {
    fn next_record(&mut self) -> Result<Option<Record>> {
        let mut buf = std::mem::take(&mut self.buf);
        let out = loop {
            let start = self.here();
            buf.clear();
            let event = match self.reader.read_event_into(&mut buf) {
                Ok(e) => e,
                Err(e) => break Err(self.bad(e.to_string())),
            };
            let location = format!("{} byte {}", self.path.display(), start.offset);
            let items = match event {
                Event::Eof => break Ok(None),
                Event::End(e) if e.local_name().as_ref() == "HealthData" => break Ok(None),
                Event::Start(e) if !self.inside => {
                    if e.local_name().as_ref() == "HealthData" {
                        self.inside = true;
                    }
                    continue;
                }
                Event::Empty(e) if self.inside => match e.local_name().as_ref() {
                    "Record" => self.record_items(&e, location),
                    _ => Vec::new(),
                },
                Event::Start(e) if self.inside => {
                    let name = e.local_name().as_ref().to_string();
                    let items = match name.as_str() {
                        "Record" => self.record_items(&e, location.clone()),
                        "Correlation" => match attributes(&e) {
                            Ok(a)
                                if a.get("type").map(String::as_str)
                                    == Some("HKCorrelationTypeIdentifierBloodPressure") =>
                            {
                                // Reads up to the correlation's end tag.
                                let items = self.correlation(&a).unwrap_or_else(|reason| {
                                    vec![Item::Rejected(Rejected {
                                        location: location.clone(),
                                        reason,
                                    })]
                                });
                                break Ok(Some(Record {
                                    start,
                                    after: self.here(),
                                    items,
                                }));
                            }
                            Ok(_) => Vec::new(),
                            Err(reason) => vec![Item::Rejected(Rejected {
                                location: location.clone(),
                                reason,
                            })],
                        },
                        _ => Vec::new(),
                    };
                    if let Err(e) = self.skip_to_end(&name) {
                        break Err(e);
                    }
                    items
                }
                // The declaration, the document type, text, comments.
                _ => continue,
            };
            break Ok(Some(Record {
                start,
                after: self.here(),
                items,
            }));
        };
        self.buf = buf;
        out
    }
}
