//! File connectors of [Health Analyzer](https://github.com/os2health/health-analyzer): a
//! [`FileSource`] reads one file as a [`Source`]:
//!
//! | format | how it is read | record ids (stable across re-imports) |
//! |---|---|---|
//! | FHIR NDJSON (`.ndjson`) | streamed, line by line | the resource `id` |
//! | FHIR resource or Bundle (`.json`) | whole (up to 512 MiB), references between entries resolved | the resource `id`, else the entry's `fullUrl` |
//! | CSV ([`CsvMapping`]: presets for the OMRON connect export and the "Blood Pressure Monitor" app, or your own columns) | streamed, record by record | the mapping's key columns and the kind |
//! | Nightscout entries: the API's JSON array, or the tab-separated export | JSON whole, TSV streamed | `_id`, else the kind and `date` |
//! | Apple Health `export.xml`: heart rate, weight, height, BMI, temperature, SpO2, respiratory rate, glucose, steps, and blood-pressure correlations | streamed with a pull parser, element by element | type, source and times (HealthKit exports no ids) |
//! | Withings API responses: `getmeas` (weight, height, blood pressure, pulse, temperature, SpO2) and `getactivity` (daily steps) | whole | the measure group id and the kind; the day |
//! | Open mHealth data points (or bare bodies; one, or an array): blood pressure, weight, height, heart rate, glucose, temperature, SpO2, respiratory rate, BMI, steps | whole | `header.id`, else file and index |
//!
//! Memory stays bounded for streamed formats whatever the file size: a pull reads its batch
//! and no more. The cursor is a position in the file stamped with a hash of what was read
//! before it (up to 64 KiB), so importing the same file again creates nothing twice, a file
//! that grew at its end continues where it stopped, and a cursor handed to another file is
//! refused. A file read whole is one unit: any change to it refuses old cursors.
//!
//! Each measurement is normalised and checked against the catalog (units converted, plausible
//! ranges): a bad record (a 312/315 mmHg blood pressure, a date that does not parse) is
//! reported in [`Batch::rejected`](healthanalyzer_source::Batch::rejected) with file, line and
//! reason, counted, and the good records around it are kept. [`FileOptions::strict`] makes the
//! first bad record an error instead.
//!
//! Features:
//!
//! - `fhir` (default): FHIR NDJSON, resources and Bundles, read by `healthanalyzer-fhir` (which
//!   brings the FHIR R4 model). Without it a FHIR file is refused with [`Error::Config`]
//!   saying so, and [`FileOptions`] has no `validation`.
//! - `tzdb-bundle`: the IANA time zone database bundled into the binary, for machines without
//!   `/usr/share/zoneinfo` (Windows); the system's database is still preferred where found.
//!
//! ```no_run
//! use healthanalyzer_model::{Identifier, systems};
//! use healthanalyzer_source::{Cursor, Source};
//! use healthanalyzer_source_files::{FileOptions, FileSource};
//!
//! # async fn demo() -> Result<(), healthanalyzer_source::Error> {
//! // An OMRON connect export of one person's readings.
//! let options = FileOptions::new(Identifier::new(systems::CPR, "0101701234"));
//! let source = FileSource::detect("omron-export", "export.csv", options)?;
//! let batch = source.pull(&Cursor::start(), 1000).await?;
//! for bad in &batch.rejected {
//!     eprintln!("{}: {}", bad.location, bad.reason);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod apple;
mod csv;
#[cfg(feature = "fhir")]
mod fhir;
mod lines;
pub mod nightscout;
mod omh;
mod position;
pub mod withings;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use healthanalyzer_model::{Catalog, Identifier, Measurement, Subject, Validator};
use healthanalyzer_source::{Batch, Cursor, Error, Rejected, Result, Source};
use jiff::tz::TimeZone;

pub use crate::csv::{CsvMapping, TimeColumn, TimeFormat, ValueColumn};
use crate::position::Position;

/// How to read a file's records.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// The catalog that checks and normalises measurements.
    pub catalog: &'static Catalog,
    /// Who the file is about, when its records do not say (a personal export).
    pub subject: Identifier,
    /// The identifier system of a CSV subject column's values.
    pub subject_system: String,
    /// The time zone of times written without an offset (default UTC).
    pub zone: TimeZone,
    /// Stop at the first bad record (an error) instead of reporting it and going on.
    pub strict: bool,
    /// How much of each FHIR resource is checked (default: the whole R4 model, as the server
    /// checks it).
    #[cfg(feature = "fhir")]
    pub validation: healthanalyzer_fhir::Validation,
    /// What to do with subject identifiers that fail their national rules (default: mark).
    pub identifiers: healthanalyzer_model::IdentifierPolicy,
}

impl FileOptions {
    /// Options for a file about `subject`, with the built-in catalog, UTC for times without an
    /// offset, bad records reported.
    pub fn new(subject: Identifier) -> Self {
        FileOptions {
            catalog: Catalog::builtin(),
            subject,
            subject_system: "urn:healthanalyzer:file-subject".into(),
            zone: TimeZone::UTC,
            strict: false,
            #[cfg(feature = "fhir")]
            validation: healthanalyzer_fhir::Validation::Strict,
            identifiers: healthanalyzer_model::IdentifierPolicy::Mark,
        }
    }

    /// Normalises a measurement, or says why it cannot be one.
    fn check(&self, m: Measurement, location: &str) -> Item {
        match Validator::new(self.catalog)
            .identifiers(self.identifiers)
            .normalize(m)
        {
            Ok(m) => Item::Measurement(m),
            Err(e) => Item::Rejected(Rejected {
                location: location.to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

/// A file format.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// FHIR NDJSON: one resource per line.
    FhirNdjson,
    /// One FHIR resource, or a Bundle.
    FhirJson,
    /// CSV read with a column mapping.
    Csv(CsvMapping),
    /// Nightscout's `entries` JSON array.
    NightscoutJson,
    /// Nightscout's tab-separated entries export.
    NightscoutTsv,
    /// Open mHealth data points (or bare bodies), one or an array.
    OpenMhealth,
    /// An Apple Health `export.xml`.
    AppleHealth,
    /// A Withings API response (`getmeas` body measures or `getactivity` steps).
    Withings,
}

impl Format {
    /// Guesses a file's format from its name and first bytes; an error says what to give
    /// instead.
    pub fn detect(path: &Path) -> Result<Format> {
        let head = {
            use std::io::Read;
            let mut buf = Vec::with_capacity(4096);
            position::open(path)?
                .take(4096)
                .read_to_end(&mut buf)
                .map_err(|e| position::io(path, e))?;
            String::from_utf8_lossy(&buf).into_owned()
        };
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let body = head.trim_start_matches('\u{feff}').trim_start();
        let first_line = body.lines().next().unwrap_or("");
        let format = match ext.as_str() {
            "ndjson" | "jsonl" => Some(Format::FhirNdjson),
            _ if body.starts_with('<') && head.contains("<HealthData") => Some(Format::AppleHealth),
            _ if body.starts_with('{')
                && first_line.contains("\"resourceType\"")
                && first_line.trim_end().ends_with('}') =>
            {
                Some(Format::FhirNdjson)
            }
            _ if body.starts_with('{') && body.contains("\"resourceType\"") => {
                Some(Format::FhirJson)
            }
            _ if body.starts_with('[')
                && (body.contains("\"sgv\"") || body.contains("\"dateString\"")) =>
            {
                Some(Format::NightscoutJson)
            }
            _ if body.starts_with('{')
                && (body.contains("\"measuregrps\"") || body.contains("\"activities\"")) =>
            {
                Some(Format::Withings)
            }
            _ if body.starts_with(['[', '{']) && OMH_KEYS.iter().any(|k| body.contains(k)) => {
                Some(Format::OpenMhealth)
            }
            _ if body.starts_with('[') => Some(Format::NightscoutJson),
            _ if body.starts_with('{') => Some(Format::FhirJson),
            "tsv" => Some(Format::NightscoutTsv),
            _ if first_line.contains("SYS(mmHg)") => Some(Format::Csv(CsvMapping::omron_connect())),
            _ if first_line.contains("timestampUnixMs") => {
                Some(Format::Csv(CsvMapping::bp_monitor_app()))
            }
            _ => None,
        };
        format.ok_or_else(|| Error::Config(format!(
            "{}: the format is not recognised; FHIR (.json, .ndjson), Nightscout (.json, .tsv), Open mHealth (.json), Withings (.json), Apple Health (export.xml) and the OMRON connect and Blood Pressure Monitor CSV exports are; for another CSV give a column mapping",
            path.display()
        )))
    }

    /// Whether this build reads the format (FHIR needs the `fhir` feature).
    fn supported(&self) -> bool {
        cfg!(feature = "fhir") || !matches!(self, Format::FhirNdjson | Format::FhirJson)
    }

    fn streamed(&self) -> bool {
        matches!(
            self,
            Format::FhirNdjson | Format::Csv(_) | Format::NightscoutTsv | Format::AppleHealth
        )
    }
}

/// The error for a FHIR file given to a build without the `fhir` feature.
fn fhir_not_built(path: &Path) -> Error {
    Error::Config(format!(
        "{}: a FHIR file, and this build reads none (healthanalyzer-source-files without its `fhir` feature); build with the feature, or give the data as another format",
        path.display()
    ))
}

/// Keys that mark Open mHealth JSON.
const OMH_KEYS: &[&str] = &[
    "\"effective_time_frame\"",
    "\"schema_id\"",
    "\"step_count\"",
];

/// What a record of a file gives. (Measurements are nearly every item: boxing them to shrink
/// the rarer variants would cost an allocation each.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum Item {
    Measurement(Measurement),
    /// Only FHIR files carry patients.
    #[cfg_attr(not(feature = "fhir"), allow(dead_code))]
    Subject(Subject),
    Rejected(Rejected),
}

/// One record read from a streamed file, with where it starts and where the next begins.
pub(crate) struct Record {
    pub(crate) start: Position,
    pub(crate) after: Position,
    pub(crate) items: Vec<Item>,
}

/// A streamed format's reader.
pub(crate) trait RecordReader {
    /// The next record, or `None` at the end of the file.
    fn next_record(&mut self) -> Result<Option<Record>>;
}

/// One file as a source.
#[derive(Clone)]
pub struct FileSource {
    inner: Arc<Inner>,
}

/// A whole file's stamp: the hash of its first 64 KiB and its length.
type Stamp = (u64, u64);

struct Inner {
    id: String,
    path: PathBuf,
    format: Format,
    options: FileOptions,
    /// A whole-file format's items, by file identity (parsed once, not on every pull).
    whole: Mutex<Option<(Stamp, Arc<Vec<Item>>)>>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("id", &self.inner.id)
            .field("path", &self.inner.path)
            .field("format", &self.inner.format)
            .finish_non_exhaustive()
    }
}

impl FileSource {
    /// A source reading `path` in `format`, with id `id` (part of every measurement id: keep it
    /// the same for the same data).
    pub fn new(
        id: impl Into<String>,
        path: impl Into<PathBuf>,
        format: Format,
        options: FileOptions,
    ) -> Self {
        FileSource {
            inner: Arc::new(Inner {
                id: id.into(),
                path: path.into(),
                format,
                options,
                whole: Mutex::new(None),
            }),
        }
    }

    /// A source for `path` in the format [`Format::detect`] finds; a FHIR file is an error in a
    /// build without the `fhir` feature.
    pub fn detect(
        id: impl Into<String>,
        path: impl Into<PathBuf>,
        options: FileOptions,
    ) -> Result<Self> {
        let path = path.into();
        let format = Format::detect(&path)?;
        if !format.supported() {
            return Err(fhir_not_built(&path));
        }
        Ok(FileSource::new(id, path, format, options))
    }

    /// The file's format.
    pub fn format(&self) -> &Format {
        &self.inner.format
    }
}

impl Inner {
    fn pull(&self, cursor: &Cursor, limit: usize) -> Result<Batch> {
        let limit = limit.max(1);
        if !self.format.supported() {
            return Err(fhir_not_built(&self.path));
        }
        let mut batch = if self.format.streamed() {
            // The part already read must be unchanged; a file that grew at its end continues.
            let at = match position::parse(cursor)? {
                None => Position::default(),
                Some((hash, n, at)) => {
                    if position::prefix_hash(&self.path, n)? != hash {
                        return Err(position::other_file());
                    }
                    at
                }
            };
            self.pull_streamed(at, limit)?
        } else {
            // A whole file is one unit: any change makes it another file.
            let len = position::len(&self.path)?;
            let hash = position::prefix_hash(&self.path, len)?;
            let at = match position::parse(cursor)? {
                None => Position::default(),
                Some((h, n, at)) if h == hash && n == len => at,
                Some(_) => return Err(position::other_file()),
            };
            self.pull_whole((hash, len), at, limit)?
        };
        if self.options.strict
            && let Some(first) = batch.rejected.first()
        {
            return Err(Error::BadData {
                location: first.location.clone(),
                reason: first.reason.clone(),
            });
        }
        batch.rejected.shrink_to_fit();
        Ok(batch)
    }

    /// The cursor for a position in a streamed file: stamped with the bytes before it.
    fn stamp(&self, at: Position) -> Result<Cursor> {
        let n = at.offset.min(64 * 1024);
        Ok(position::cursor(
            position::prefix_hash(&self.path, n)?,
            n,
            at,
        ))
    }

    fn pull_streamed(&self, at: Position, limit: usize) -> Result<Batch> {
        let o = &self.options;
        let id = self.id.as_str();
        let mut reader: Box<dyn RecordReader + '_> = match &self.format {
            Format::Csv(mapping) => Box::new(csv::CsvReader::open(&self.path, mapping, o, id, at)?),
            Format::AppleHealth => Box::new(apple::AppleReader::open(&self.path, o, id, at)?),
            #[cfg(feature = "fhir")]
            Format::FhirNdjson => Box::new(lines::LineReader::open(
                &self.path,
                at,
                fhir::ndjson_line(o, id),
            )?),
            #[cfg(not(feature = "fhir"))]
            Format::FhirNdjson => return Err(fhir_not_built(&self.path)),
            _ => Box::new(lines::LineReader::open(
                &self.path,
                at,
                nightscout::tsv_line(o, id),
            )?),
        };
        let mut batch = Batch::default();
        let mut skip = at.part;
        // Where the next record starts.
        let mut next = Position { part: 0, ..at };
        loop {
            let Some(record) = reader.next_record()? else {
                batch.exhausted = true;
                batch.cursor = self.stamp(next)?;
                return Ok(batch);
            };
            let total = record.items.len();
            let mut delivered = 0;
            for item in record.items {
                if delivered < skip {
                    delivered += 1;
                    continue;
                }
                if matches!(item, Item::Measurement(_)) && batch.measurements.len() >= limit {
                    break;
                }
                take(&mut batch, item);
                delivered += 1;
            }
            skip = 0;
            if delivered < total {
                // The batch is full inside this record: resume inside it.
                batch.cursor = self.stamp(Position {
                    part: delivered,
                    ..record.start
                })?;
                return Ok(batch);
            }
            next = record.after;
            if batch.measurements.len() >= limit {
                batch.cursor = self.stamp(next)?;
                return Ok(batch);
            }
        }
    }

    fn pull_whole(&self, (hash, len): (u64, u64), at: Position, limit: usize) -> Result<Batch> {
        let items = self.whole_items((hash, len))?;
        let from = usize::try_from(at.offset).unwrap_or(usize::MAX);
        if from > items.len() {
            return Err(Error::BadCursor {
                reason: "the position is past the end of the file's records".into(),
            });
        }
        let mut batch = Batch::default();
        let mut next = from;
        for item in &items[from..] {
            if matches!(item, Item::Measurement(_)) && batch.measurements.len() >= limit {
                break;
            }
            take(
                &mut batch,
                match item {
                    Item::Measurement(m) => Item::Measurement(m.clone()),
                    Item::Subject(s) => Item::Subject(s.clone()),
                    Item::Rejected(r) => Item::Rejected(r.clone()),
                },
            );
            next += 1;
        }
        batch.exhausted = next == items.len();
        batch.cursor = position::cursor(
            hash,
            len,
            Position {
                offset: next as u64,
                line: 0,
                part: 0,
            },
        );
        Ok(batch)
    }

    fn whole_items(&self, stamp: (u64, u64)) -> Result<Arc<Vec<Item>>> {
        let mut cache = self
            .whole
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((id, items)) = cache.as_ref()
            && *id == stamp
        {
            return Ok(items.clone());
        }
        let items = Arc::new(match &self.format {
            #[cfg(feature = "fhir")]
            Format::FhirJson => fhir::read_whole(&self.path, &self.options, &self.id)?,
            #[cfg(not(feature = "fhir"))]
            Format::FhirJson => return Err(fhir_not_built(&self.path)),
            Format::OpenMhealth => omh::read(&self.path, &self.options, &self.id)?,
            Format::Withings => withings::read(&self.path, &self.options, &self.id)?,
            _ => nightscout::read_json(&self.path, &self.options, &self.id)?,
        });
        *cache = Some((stamp, items.clone()));
        Ok(items)
    }
}

fn take(batch: &mut Batch, item: Item) {
    match item {
        Item::Measurement(m) => batch.measurements.push(m),
        Item::Subject(s) => batch.subjects.push(s),
        Item::Rejected(r) => batch.rejected.push(r),
    }
}

#[async_trait]
impl Source for FileSource {
    fn id(&self) -> &str {
        &self.inner.id
    }

    fn kind(&self) -> &str {
        match self.inner.format {
            Format::FhirNdjson | Format::FhirJson => "fhir-file",
            Format::Csv(_) => "csv",
            Format::NightscoutJson | Format::NightscoutTsv => "nightscout",
            Format::OpenMhealth => "open-mhealth",
            Format::AppleHealth => "apple-health",
            Format::Withings => "withings",
        }
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> Result<Batch> {
        let inner = self.inner.clone();
        let cursor = cursor.clone();
        // File reading blocks: it runs on the blocking pool, not on the async workers.
        tokio::task::spawn_blocking(move || inner.pull(&cursor, limit))
            .await
            .map_err(|e| Error::Other {
                reason: format!("the file reader stopped: {e}"),
                retryable: false,
                cause: None,
            })?
    }
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
