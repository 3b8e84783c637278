//! The report document: what every output format shows, and the JSON format itself. How a
//! report is built from measurements is in `build.rs`.

use std::collections::BTreeMap;

use healthanalyzer_analysis::{self as analysis, Ack, Severity};
use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The `schema` value of documents in this format. A new major number means a field changed
/// meaning or went away; added fields do not change it.
pub const SCHEMA: &str = "healthanalyzer-report/2";

/// A series with at most this many readings in the period keeps them all in
/// [`SeriesReport::points`]; a longer one is charted from its daily aggregates.
pub const MAX_RAW_POINTS: usize = 600;

/// Days shown in the blood-pressure diary (the last ones of the period).
pub const DIARY_DAYS: usize = 14;

/// What to report on.
#[derive(Debug, Clone)]
pub struct Options {
    /// The report's title.
    pub title: String,
    /// The report's "now": alerts are evaluated at this instant, measurements after it are
    /// left out, and the period ends here.
    pub now: Timestamp,
    /// The period's length in days, ending at `now`: summaries, daily aggregates, charts and
    /// the glucose and blood-pressure statistics cover it. Alerts look at all history up to
    /// `now` (a stale-data rule needs to know the last reading, however old).
    pub days: u32,
    /// The patients' time zone: days, hours of the day and every time shown are in it.
    pub time_zone: TimeZone,
    /// Patients who live in another zone, by `system|value` key: their days, hours and times
    /// are in their own zone.
    pub patient_zones: BTreeMap<String, TimeZone>,
    /// Acknowledged and snoozed alerts.
    pub acks: Vec<Ack>,
    /// When no reading falls in the period ending at `now`, end it at the latest reading
    /// instead (an imported history), and say so in [`Report::period_note`]. True by default;
    /// false when the caller chose `now` on purpose.
    pub follow_data: bool,
    /// The unit glucose is shown in; `None`: the unit most of the glucose readings came in
    /// (mmol/L when they do not say).
    pub glucose_unit: Option<GlucoseUnit>,
}

/// A unit to show glucose in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum GlucoseUnit {
    /// Millimoles per litre, as clinics in Denmark, Norway and the Netherlands read it.
    #[serde(rename = "mmol/L")]
    MmolL,
    /// Milligrams per decilitre (the canonical unit).
    #[serde(rename = "mg/dL")]
    MgDl,
}

impl GlucoseUnit {
    /// The UCUM code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MmolL => "mmol/L",
            Self::MgDl => "mg/dL",
        }
    }

    /// A value in mg/dL in this unit.
    pub fn from_mg_dl(self, v: f64) -> f64 {
        match self {
            Self::MmolL => v / analysis::MG_DL_PER_MMOL_L,
            Self::MgDl => v,
        }
    }
}

impl std::str::FromStr for GlucoseUnit {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "mmol/L" | "mmol/l" => Ok(Self::MmolL),
            "mg/dL" | "mg/dl" => Ok(Self::MgDl),
            other => Err(Error::Options(format!(
                "glucose unit {other:?}: use mmol/L or mg/dL"
            ))),
        }
    }
}

impl Options {
    /// A 90-day report ending at `now`, in `time_zone`, with no acknowledgements.
    pub fn new(now: Timestamp, time_zone: TimeZone) -> Options {
        Options {
            title: "Health Analyzer report".into(),
            now,
            days: 90,
            time_zone,
            patient_zones: BTreeMap::new(),
            acks: Vec::new(),
            follow_data: true,
            glucose_unit: None,
        }
    }
}

/// The status of a patient: their most severe alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// No alert.
    Ok,
    /// At least one yellow alert, no red one.
    Yellow,
    /// At least one red alert.
    Red,
}

impl Status {
    /// `ok`, `yellow` or `red`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Yellow => "yellow",
            Status::Red => "red",
        }
    }
}

impl From<Severity> for Status {
    fn from(s: Severity) -> Status {
        match s {
            Severity::Yellow => Status::Yellow,
            Severity::Red => Status::Red,
        }
    }
}

/// A report: the overview of every patient, most urgent first, and each patient's details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Report {
    /// The format of this document: `healthanalyzer-report/2` ([`SCHEMA`]).
    pub schema: String,
    /// The title.
    pub title: String,
    /// The report's "now" (RFC 3339, UTC).
    pub generated_at: String,
    /// The time zone of every date and local time in the report (an IANA name, or a fixed
    /// offset such as `+01:00`).
    pub time_zone: String,
    /// The first day of the period (local date, `YYYY-MM-DD`).
    pub from: String,
    /// The last day of the period (local date).
    pub to: String,
    /// Why the period is not the one asked for, when it is not: no reading fell in the days
    /// before "now", so it ends at the latest reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_note: Option<String>,
    /// Counts over all patients.
    pub totals: Totals,
    /// The patients, red first, then yellow, then the rest; within a status, more alerts
    /// first, then by subject.
    pub patients: Vec<PatientReport>,
}

/// Counts over all patients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Totals {
    /// Patients in the report.
    pub patients: usize,
    /// Patients with a red alert.
    pub red: usize,
    /// Patients whose worst alert is yellow.
    pub yellow: usize,
    /// Patients without alerts.
    pub ok: usize,
    /// Readings in the period, over all series.
    pub readings: usize,
}

/// One patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PatientReport {
    /// The patient's identifier, `system|value` (or the value alone).
    pub subject: String,
    /// The patient's name, when known.
    pub name: Option<String>,
    /// When the patient's identifier fails its national system's rules (a test number, or a
    /// typing error): why. Such readings are kept and shown, marked (ADR 0010).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier_note: Option<String>,
    /// The time zone of this patient's dates and times (the report's, unless set per patient).
    pub time_zone: String,
    /// The most severe alert.
    pub status: Status,
    /// The alerts, most severe first, then newest first.
    pub alerts: Vec<AlertEntry>,
    /// When the patient last measured anything (RFC 3339 with the local offset).
    pub last_reading: Option<String>,
    /// One entry per kind (and blood-pressure component) measured in the period.
    pub series: Vec<SeriesReport>,
    /// Glucose statistics, when the patient measured glucose in the period.
    pub glucose: Option<GlucoseReport>,
    /// Home blood pressure, when the patient measured it in the period.
    pub blood_pressure: Option<BloodPressureReport>,
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AlertEntry {
    /// `yellow` or `red`.
    pub severity: Status,
    /// The rule that raised it: a rule's name, or `threshold:<kind>`.
    pub rule: String,
    /// The kind (`kind.component` for a component).
    pub kind: String,
    /// When the triggering measurement was taken (RFC 3339, local offset).
    pub at: String,
    /// What happened, for a clinician.
    pub message: String,
    /// The ids of the measurements that triggered it.
    pub measurements: Vec<String>,
}

/// A numeric series: one kind, or one component of a panel, of one patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SeriesReport {
    /// `kind` or `kind.component` (`blood-pressure.systolic`).
    pub kind: String,
    /// For people: `Body weight`, `Blood pressure: systolic`.
    pub display: String,
    /// The UCUM unit of every value.
    pub unit: String,
    /// Statistics of the period's readings.
    pub summary: SummaryEntry,
    /// Least-squares trends over the last 7, 30 and 90 days, where there are two readings.
    pub trends: Vec<TrendEntry>,
    /// One row per local day with readings.
    pub daily: Vec<DayEntry>,
    /// Every reading of the period when there are at most 600 ([`MAX_RAW_POINTS`]), else
    /// empty: chart the daily aggregates instead.
    pub points: Vec<PointEntry>,
    /// The patient's threshold for this series, if a rule sets one.
    pub threshold: Option<ThresholdEntry>,
}

/// Summary statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SummaryEntry {
    /// Readings.
    pub count: usize,
    /// The first reading's time (RFC 3339, local offset).
    pub first: String,
    /// The last reading's time.
    pub last: String,
    /// The last reading's value.
    pub latest: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// Sample standard deviation (0 for one reading).
    pub sd: f64,
    /// 5th percentile.
    pub p5: f64,
    /// 95th percentile.
    pub p95: f64,
}

/// A trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TrendEntry {
    /// The window, in days up to the report's "now".
    pub days: u32,
    /// Change per week (unit per week); `None`: too little data (the readings in the window
    /// span less than half of it, or are fewer than three).
    pub slope_per_week: Option<f64>,
    /// Readings in the window (those the trend was fitted to, when there is one).
    pub points: usize,
}

/// A local day's aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DayEntry {
    /// The local date.
    pub date: String,
    /// Readings that day.
    pub count: usize,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Largest.
    pub max: f64,
}

/// A reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PointEntry {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The value, in the series' unit.
    pub value: f64,
}

/// The limits that apply to a series; a value beyond a limit raises an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ThresholdEntry {
    /// Red above.
    pub red_high: Option<f64>,
    /// Yellow above.
    pub yellow_high: Option<f64>,
    /// Yellow below.
    pub yellow_low: Option<f64>,
    /// Red below.
    pub red_low: Option<f64>,
}

/// Glucose statistics as the international consensus (and the AGP report) defines them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GlucoseReport {
    /// The series they come from (`blood-glucose` or `capillary-glucose`).
    pub kind: String,
    /// Readings.
    pub readings: usize,
    /// % of readings below 54 mg/dL.
    pub very_low: f64,
    /// % from 54 to 69 mg/dL.
    pub low: f64,
    /// % from 70 to 180 mg/dL: time in range.
    pub in_range: f64,
    /// % from 181 to 250 mg/dL.
    pub high: f64,
    /// % above 250 mg/dL.
    pub very_high: f64,
    /// The unit of `mean`, `limits` and `profile`: `mmol/L` or `mg/dL`.
    pub unit: String,
    /// The range limits in that unit: 54, 70, 180 and 250 mg/dL (3.0, 3.9, 10.0, 13.9 mmol/L).
    pub limits: [f64; 4],
    /// Mean, in `unit`.
    pub mean: f64,
    /// Glucose management indicator, %.
    pub gmi: f64,
    /// Coefficient of variation, %.
    pub cv: f64,
    /// Local days with readings.
    pub days_with_data: usize,
    /// The ambulatory glucose profile: percentiles of the readings by local hour of the day
    /// (hours without readings are left out).
    pub profile: Vec<ProfileHour>,
}

/// One hour of the ambulatory glucose profile (mg/dL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProfileHour {
    /// The local hour, 0 to 23.
    pub hour: u8,
    /// Readings in this hour over the period.
    pub readings: usize,
    /// 5th percentile.
    pub p5: f64,
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 95th percentile.
    pub p95: f64,
}

/// Home blood pressure (mmHg): readings before noon are morning, the rest evening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BloodPressureReport {
    /// Mean of the morning readings.
    pub morning: Option<PressureEntry>,
    /// Mean of the evening readings.
    pub evening: Option<PressureEntry>,
    /// Mean of all readings.
    pub overall: PressureEntry,
    /// Local days with readings.
    pub days: usize,
    /// The last 14 ([`DIARY_DAYS`]) days of the period with readings, oldest first.
    pub diary: Vec<DiaryDay>,
}

/// A mean blood pressure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PressureEntry {
    /// Systolic.
    pub systolic: f64,
    /// Diastolic.
    pub diastolic: f64,
    /// Readings averaged.
    pub readings: usize,
}

/// A day of the blood-pressure diary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DiaryDay {
    /// The local date.
    pub date: String,
    /// The mean of that morning's readings.
    pub morning: Option<PressureEntry>,
    /// The mean of that evening's readings.
    pub evening: Option<PressureEntry>,
}

impl Report {
    /// The patient with this `system|value` key.
    pub fn patient(&self, subject: &str) -> Option<&PatientReport> {
        self.patients.iter().find(|p| p.subject == subject)
    }

    /// The report as pretty-printed JSON (the format `docs/report.schema.json` describes).
    pub fn to_json(&self) -> String {
        // Every field is a string, a number, a bool or a list or struct of them: it cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A report from its JSON.
    ///
    /// # Errors
    /// [`Error::Json`] when `text` is not a report of this format.
    pub fn from_json(text: &str) -> Result<Report, Error> {
        let r: Report = serde_json::from_str(text).map_err(|e| Error::Json(e.to_string()))?;
        if r.schema != SCHEMA {
            return Err(Error::Json(format!(
                "schema {:?}: this version reads {SCHEMA}",
                r.schema
            )));
        }
        Ok(r)
    }

    /// The JSON Schema (draft 2020-12) of the report document, pretty-printed (feature
    /// `schema`).
    #[cfg(feature = "schema")]
    pub fn schema_json() -> String {
        let schema = schemars::schema_for!(Report);
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    }
}
