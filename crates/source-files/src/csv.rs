//! CSV with a column mapping, streamed record by record.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use healthanalyzer_model::{
    Component, ComponentId, ComponentValue, DateTime, DeviceRef, Identifier, Measurement,
    Provenance, Quantity, UnitCode, Value, parse_decimal,
};
use healthanalyzer_source::{Error, Rejected, Result};
use jiff::Timestamp;
use jiff::civil;
use jiff::tz::TimeZone;

use crate::position::{Position, io, open};
use crate::{FileOptions, Item, Record, RecordReader};

/// How a CSV file's columns become measurements. Column names are matched after trimming
/// spaces and a byte-order mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvMapping {
    /// The field separator; `None` picks the most frequent of `,`, `;` and tab in the header.
    pub delimiter: Option<u8>,
    /// Decimals written with a comma (`72,4`).
    pub decimal_comma: bool,
    /// The column with the time, and how it is written.
    pub time: TimeColumn,
    /// A column with each row's IANA time zone (`Europe/Copenhagen`), when the file has one;
    /// otherwise the zone of [`FileOptions::zone`] applies to times without an offset.
    pub zone_column: Option<String>,
    /// The columns that identify a row across exports (its measurement ids derive from
    /// them); empty means the line number, which is stable only while the file is only ever
    /// appended to.
    pub record_key: Vec<String>,
    /// A column naming the person, under [`FileOptions::subject_system`]; without one every
    /// row is [`FileOptions::subject`].
    pub subject_column: Option<String>,
    /// A column naming the device model.
    pub device_column: Option<String>,
    /// The value columns.
    pub values: Vec<ValueColumn>,
    /// Cell texts that mean "no value" (besides an empty cell).
    pub nulls: Vec<String>,
}

/// The time column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeColumn {
    /// Its header.
    pub column: String,
    /// How it is written.
    pub format: TimeFormat,
}

/// How times are written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeFormat {
    /// Milliseconds since 1970-01-01T00:00Z.
    UnixMillis,
    /// Seconds since 1970-01-01T00:00Z.
    UnixSeconds,
    /// RFC 3339 / ISO 8601 with an offset (`2024-05-01T07:31:00+02:00`).
    Rfc3339,
    /// A `strftime` pattern without offset (`%Y/%m/%d %H:%M`), read in the row's zone.
    Pattern(String),
}

/// A column holding one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueColumn {
    /// Its header.
    pub column: String,
    /// The catalog kind (`heart-rate`, `blood-pressure`).
    pub kind: String,
    /// For a panel kind, the component (`systolic`); columns of one panel make one measurement.
    pub component: Option<String>,
    /// The UCUM unit of the numbers (any unit the catalog accepts for the kind).
    pub unit: String,
}

impl ValueColumn {
    /// A column of a single-valued kind.
    pub fn new(column: &str, kind: &str, unit: &str) -> Self {
        ValueColumn {
            column: column.into(),
            kind: kind.into(),
            component: None,
            unit: unit.into(),
        }
    }

    /// A column of one component of a panel.
    pub fn component(column: &str, kind: &str, component: &str, unit: &str) -> Self {
        ValueColumn {
            component: Some(component.into()),
            ..ValueColumn::new(column, kind, unit)
        }
    }
}

impl CsvMapping {
    /// The OMRON connect app's CSV export: `Measurement Date` (`2024/11/21 11:40`) with an
    /// IANA `Timezone` column, `SYS(mmHg)`, `DIA(mmHg)`, `Pulse(bpm)` and `Device`.
    pub fn omron_connect() -> Self {
        CsvMapping {
            delimiter: Some(b','),
            decimal_comma: false,
            time: TimeColumn {
                column: "Measurement Date".into(),
                format: TimeFormat::Pattern("%Y/%m/%d %H:%M".into()),
            },
            zone_column: Some("Timezone".into()),
            record_key: vec!["Measurement Date".into(), "Device".into()],
            subject_column: None,
            device_column: Some("Device".into()),
            values: vec![
                ValueColumn::component("SYS(mmHg)", "blood-pressure", "systolic", "mm[Hg]"),
                ValueColumn::component("DIA(mmHg)", "blood-pressure", "diastolic", "mm[Hg]"),
                ValueColumn::new("Pulse(bpm)", "heart-rate", "/min"),
            ],
            nulls: Vec::new(),
        }
    }

    /// The export of the open-source "Blood Pressure Monitor" Android app (all its versions):
    /// `timestampUnixMs`, `systolic`, `diastolic`, `pulse`; `null` for a missing value; comma
    /// or semicolon separated.
    pub fn bp_monitor_app() -> Self {
        CsvMapping {
            delimiter: None,
            decimal_comma: false,
            time: TimeColumn {
                column: "timestampUnixMs".into(),
                format: TimeFormat::UnixMillis,
            },
            zone_column: None,
            record_key: vec!["timestampUnixMs".into()],
            subject_column: None,
            device_column: None,
            values: vec![
                ValueColumn::component("systolic", "blood-pressure", "systolic", "mm[Hg]"),
                ValueColumn::component("diastolic", "blood-pressure", "diastolic", "mm[Hg]"),
                ValueColumn::new("pulse", "heart-rate", "/min"),
            ],
            nulls: vec!["null".into()],
        }
    }
}

/// Column indexes, resolved from the header once.
struct Columns {
    time: usize,
    zone: Option<usize>,
    key: Vec<usize>,
    subject: Option<usize>,
    device: Option<usize>,
    values: Vec<(usize, ValueColumn)>,
}

fn clean(header: &str) -> &str {
    header.trim_start_matches('\u{feff}').trim()
}

fn resolve(headers: &csv::StringRecord, m: &CsvMapping, path: &Path) -> Result<Columns> {
    let find = |name: &str| headers.iter().position(|h| clean(h) == name);
    let need = |name: &str| {
        find(name).ok_or_else(|| Error::BadData {
            location: format!("{}:1", path.display()),
            reason: format!(
                "no column {name:?} in the header (columns: {})",
                headers.iter().map(clean).collect::<Vec<_>>().join(", ")
            ),
        })
    };
    let mut values = Vec::new();
    for v in &m.values {
        // A mapped value column missing from this file (an older export) is left out.
        if let Some(i) = find(&v.column) {
            values.push((i, v.clone()));
        }
    }
    if values.is_empty() {
        return Err(Error::BadData {
            location: format!("{}:1", path.display()),
            reason: "none of the mapped value columns is in the header".into(),
        });
    }
    Ok(Columns {
        time: need(&m.time.column)?,
        zone: m.zone_column.as_deref().map(need).transpose()?,
        key: m
            .record_key
            .iter()
            .map(|k| need(k))
            .collect::<Result<_>>()?,
        subject: m.subject_column.as_deref().map(need).transpose()?,
        device: m.device_column.as_deref().and_then(find),
        values,
    })
}

fn detect_delimiter(header_line: &str) -> u8 {
    [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| header_line.bytes().filter(|b| b == d).count())
        .unwrap_or(b',')
}

/// A CSV file read record by record from a position.
pub(crate) struct CsvReader<'a> {
    reader: csv::Reader<BufReader<std::fs::File>>,
    columns: Columns,
    mapping: &'a CsvMapping,
    options: &'a FileOptions,
    source_id: &'a str,
    path: &'a Path,
    base: u64,
    base_line: u64,
    record: csv::StringRecord,
}

impl<'a> CsvReader<'a> {
    pub(crate) fn open(
        path: &'a Path,
        mapping: &'a CsvMapping,
        options: &'a FileOptions,
        source_id: &'a str,
        at: Position,
    ) -> Result<Self> {
        let mut file = BufReader::new(open(path)?);
        let mut header_line = String::new();
        let header_len = file.read_line(&mut header_line).map_err(|e| io(path, e))? as u64;
        let delimiter = mapping
            .delimiter
            .unwrap_or_else(|| detect_delimiter(&header_line));
        let headers = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .from_reader(header_line.as_bytes())
            .records()
            .next()
            .transpose()
            .map_err(|e| Error::BadData {
                location: format!("{}:1", path.display()),
                reason: format!("the header is not CSV: {e}"),
            })?
            .ok_or_else(|| Error::BadData {
                location: format!("{}:1", path.display()),
                reason: "the file is empty".into(),
            })?;
        let columns = resolve(&headers, mapping, path)?;
        let (base, base_line) = if at.offset == 0 {
            (header_len, 2)
        } else {
            (at.offset, at.line)
        };
        file.seek(SeekFrom::Start(base)).map_err(|e| io(path, e))?;
        let reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(file);
        Ok(CsvReader {
            reader,
            columns,
            mapping,
            options,
            source_id,
            path,
            base,
            base_line,
            record: csv::StringRecord::new(),
        })
    }

    fn here(&self) -> Position {
        let p = self.reader.position();
        Position {
            offset: self.base + p.byte(),
            line: self.base_line + p.line().saturating_sub(1),
            part: 0,
        }
    }
}

impl RecordReader for CsvReader<'_> {
    fn next_record(&mut self) -> Result<Option<Record>> {
        let start = self.here();
        let location = format!("{}:{}", self.path.display(), start.line);
        let items = match self.reader.read_record(&mut self.record) {
            Ok(false) => return Ok(None),
            Ok(true) => match row(
                &self.record,
                &self.columns,
                self.mapping,
                self.options,
                self.source_id,
                start.line,
            ) {
                Ok(ms) => ms
                    .into_iter()
                    .map(|m| self.options.check(m, &location))
                    .collect(),
                Err(reason) => vec![Item::Rejected(Rejected { location, reason })],
            },
            Err(e) => vec![Item::Rejected(Rejected {
                location,
                reason: format!("not a CSV record: {e}"),
            })],
        };
        Ok(Some(Record {
            start,
            after: self.here(),
            items,
        }))
    }
}

fn row(
    r: &csv::StringRecord,
    c: &Columns,
    mapping: &CsvMapping,
    options: &FileOptions,
    source_id: &str,
    line: u64,
) -> std::result::Result<Vec<Measurement>, String> {
    let cell = |i: usize| r.get(i).map(str::trim).unwrap_or("");
    let is_null = |s: &str| s.is_empty() || mapping.nulls.iter().any(|n| n == s);
    let zone = match c.zone {
        Some(i) => TimeZone::get(cell(i)).map_err(|e| {
            format!(
                "column {:?}: {e}",
                mapping.zone_column.as_deref().unwrap_or("")
            )
        })?,
        None => options.zone.clone(),
    };
    let when = time(cell(c.time), &mapping.time.format, &zone)
        .map_err(|e| format!("column {:?}: {e}", mapping.time.column))?;
    let subject = match c.subject {
        Some(i) if !cell(i).is_empty() => Identifier::new(options.subject_system.clone(), cell(i)),
        Some(_) => return Err("the subject column is empty".into()),
        None => options.subject.clone(),
    };
    let key = if c.key.is_empty() {
        format!("line {line}")
    } else {
        c.key.iter().map(|&i| cell(i)).collect::<Vec<_>>().join("|")
    };
    let device = c
        .device
        .map(&cell)
        .filter(|d| !d.is_empty())
        .map(|d| DeviceRef {
            display: Some(d.to_string()),
            model: Some(d.to_string()),
            ..DeviceRef::default()
        });
    // Columns of one kind make one measurement, in the mapping's order.
    let mut kinds: Vec<&str> = Vec::new();
    for (_, v) in &c.values {
        if !kinds.contains(&v.kind.as_str()) {
            kinds.push(&v.kind);
        }
    }
    let mut out = Vec::new();
    for kind in kinds {
        let mut single = None;
        let mut components = Vec::new();
        for (i, v) in c.values.iter().filter(|(_, v)| v.kind == kind) {
            let text = cell(*i);
            if is_null(text) {
                continue;
            }
            let text = if mapping.decimal_comma {
                text.replace(',', ".")
            } else {
                text.to_string()
            };
            let value = parse_decimal(&text).map_err(|e| format!("column {:?}: {e}", v.column))?;
            let q = Quantity::new(value, UnitCode::new(v.unit.as_str()));
            match &v.component {
                Some(id) => components.push(Component {
                    id: ComponentId::new(id.as_str()),
                    value: ComponentValue::Quantity(q.into()),
                }),
                None => single = Some(q),
            }
        }
        let value = match (single, components.is_empty()) {
            (Some(q), _) => Value::Quantity(q.into()),
            (None, false) => Value::Components(components),
            (None, true) => continue,
        };
        let mut m = Measurement::new(
            Provenance::new(source_id, format!("{key}/{kind}")),
            subject.clone(),
            kind,
            value,
            when,
        );
        m.device.clone_from(&device);
        out.push(m);
    }
    if out.is_empty() {
        return Err("no values in the row".into());
    }
    Ok(out)
}

fn time(text: &str, format: &TimeFormat, zone: &TimeZone) -> std::result::Result<DateTime, String> {
    let at_zone = |ts: Timestamp| DateTime::from_timestamp(ts, zone.to_offset(ts));
    match format {
        TimeFormat::UnixMillis => {
            let ms: i64 = text
                .parse()
                .map_err(|_| "expected milliseconds since 1970".to_string())?;
            Timestamp::from_millisecond(ms)
                .map(at_zone)
                .map_err(|e| e.to_string())
        }
        TimeFormat::UnixSeconds => {
            let s: i64 = text
                .parse()
                .map_err(|_| "expected seconds since 1970".to_string())?;
            Timestamp::from_second(s)
                .map(at_zone)
                .map_err(|e| e.to_string())
        }
        TimeFormat::Rfc3339 => DateTime::parse(text).map_err(|e| e.to_string()),
        TimeFormat::Pattern(p) => {
            let civil = civil::DateTime::strptime(p, text).map_err(|e| e.to_string())?;
            let zoned = civil.to_zoned(zone.clone()).map_err(|e| e.to_string())?;
            Ok(DateTime::from_zoned(&zoned))
        }
    }
}
