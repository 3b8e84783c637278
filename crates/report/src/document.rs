//! The report document: what every output format shows, and the JSON format itself.

use std::collections::{BTreeMap, BTreeSet};

use healthanalyzer_analysis::{
    self as analysis, Ack, Alert, Point, RuleSet, SeriesKey, Severity, Summary, subject_key,
};
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_model::jiff::{SignedDuration, Timestamp};
use healthanalyzer_model::{Catalog, Measurement, Subject};
use schemars::JsonSchema;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PointEntry {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The value, in the series' unit.
    pub value: f64,
}

/// The limits that apply to a series; a value beyond a limit raises an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PressureEntry {
    /// Systolic.
    pub systolic: f64,
    /// Diastolic.
    pub diastolic: f64,
    /// Readings averaged.
    pub readings: usize,
}

/// A day of the blood-pressure diary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiaryDay {
    /// The local date.
    pub date: String,
    /// The mean of that morning's readings.
    pub morning: Option<PressureEntry>,
    /// The mean of that evening's readings.
    pub evening: Option<PressureEntry>,
}

fn local(at: Timestamp, tz: &TimeZone) -> String {
    at.display_with_offset(tz.to_offset(at)).to_string()
}

fn zone_name(tz: &TimeZone, now: Timestamp) -> String {
    tz.iana_name()
        .map(str::to_string)
        .unwrap_or_else(|| tz.to_offset(now).to_string())
}

fn is_glucose(kind: &str) -> bool {
    kind == "blood-glucose" || kind == "capillary-glucose"
}

/// A short name for people, for the built-in kinds; `None` for others (the catalog's display,
/// a LOINC long name such as "Blood pressure panel with all children optional", is used then).
pub(crate) fn short_name(label: &str) -> Option<&'static str> {
    Some(match label {
        "blood-pressure" => "Blood pressure",
        "blood-pressure.systolic" => "Systolic blood pressure",
        "blood-pressure.diastolic" => "Diastolic blood pressure",
        "mean-blood-pressure" => "Mean blood pressure",
        "heart-rate" => "Heart rate",
        "body-weight" => "Body weight",
        "body-height" => "Body height",
        "bmi" => "Body mass index",
        "body-temperature" => "Body temperature",
        "oxygen-saturation" => "Oxygen saturation",
        "respiratory-rate" => "Respiratory rate",
        "blood-glucose" => "Blood glucose",
        "capillary-glucose" => "Capillary glucose",
        "steps" => "Steps",
        "head-circumference" => "Head circumference",
        _ => return None,
    })
}

fn display(catalog: &Catalog, key: &SeriesKey) -> (String, String) {
    let label = key.label();
    let Some(def) = catalog.kind(&key.kind) else {
        return (label, String::new());
    };
    let short = short_name(&label).map(str::to_string);
    match &key.component {
        Some(c) => match def.component(c) {
            Some(cd) => (
                short.unwrap_or_else(|| format!("{}: {}", def.display, cd.display)),
                cd.value.unit.to_string(),
            ),
            None => (label, String::new()),
        },
        None => (
            short.unwrap_or_else(|| def.display.to_string()),
            def.value
                .as_ref()
                .map(|v| v.unit.to_string())
                .unwrap_or_default(),
        ),
    }
}

fn name(subject: &Subject) -> Option<String> {
    let n = subject.name.as_ref()?;
    if let Some(t) = &n.text {
        return Some(t.clone());
    }
    let mut parts: Vec<&str> = n.given.iter().map(String::as_str).collect();
    parts.extend(n.family.as_deref());
    (!parts.is_empty()).then(|| parts.join(" "))
}

impl Report {
    /// Analyses `measurements` and builds the report. `subjects` supplies names (a patient
    /// without an entry is shown by identifier); `rules` the thresholds, delta and
    /// stale-data rules.
    ///
    /// # Errors
    /// [`Error::Options`] when the period does not fit the calendar (`days` too large).
    pub fn build(
        measurements: &[Measurement],
        subjects: &[Subject],
        catalog: &Catalog,
        rules: &RuleSet,
        options: &Options,
    ) -> Result<Report, Error> {
        let tz = &options.time_zone;
        let now = options.now;
        let period = |end: Timestamp| {
            end.checked_sub(SignedDuration::from_hours(24 * i64::from(options.days)))
                .map_err(|e| Error::Options(format!("a period of {} days: {e}", options.days)))
        };
        let mut start = period(now)?;
        let all = analysis::series(measurements, catalog);
        let zone_of = |subject: &str| options.patient_zones.get(subject).unwrap_or(tz).clone();
        let alerts = rules.evaluate_in(&all, now, &options.acks, &zone_of);
        // The period ends at "now", or, when nothing falls in it, at the latest reading.
        let mut end = now;
        let mut period_note = None;
        let in_period = |from: Timestamp, to: Timestamp| {
            all.values()
                .any(|p| p.iter().any(|p| p.at > from && p.at <= to))
        };
        if options.follow_data && !in_period(start, now) {
            let latest = all
                .values()
                .filter_map(|p| p[..p.partition_point(|p| p.at <= now)].last())
                .map(|p| p.at)
                .max();
            if let Some(latest) = latest {
                end = latest;
                start = period(end)?;
                period_note = Some(format!(
                    "No reading in the {} days before {}: the period ends at the latest reading, {}.",
                    options.days,
                    now.to_zoned(tz.clone()).date(),
                    local(latest, tz)
                ));
            }
        }
        let glucose_unit = options
            .glucose_unit
            .unwrap_or_else(|| glucose_unit_of(measurements, catalog));
        let names: BTreeMap<String, String> = subjects
            .iter()
            .filter_map(|s| Some((subject_key(&s.id), name(s)?)))
            .collect();

        let mut by_subject: BTreeMap<String, PatientBuilder<'_>> = BTreeMap::new();
        for (key, points) in &all {
            let upto = &points[..points.partition_point(|p| p.at <= now)];
            let entry = by_subject.entry(subject_key(&key.subject)).or_default();
            if entry.id.is_none() {
                entry.id = Some(key.subject.clone());
            }
            if let Some(last) = upto.last() {
                entry.last = entry.last.max(Some(last.at));
            }
            let upto = &upto[..upto.partition_point(|p| p.at <= end)];
            let from = upto.partition_point(|p| p.at < start);
            entry.series.push((key, &upto[from..]));
        }
        let mut alerts_by: BTreeMap<String, Vec<&Alert>> = BTreeMap::new();
        for a in &alerts {
            alerts_by
                .entry(subject_key(&a.subject))
                .or_default()
                .push(a);
        }

        let mut patients = Vec::with_capacity(by_subject.len());
        let mut readings = 0;
        for (subject, b) in by_subject {
            let tz = options.patient_zones.get(&subject).unwrap_or(tz);
            let mine = alerts_by.remove(&subject).unwrap_or_default();
            let status = mine
                .iter()
                .map(|a| Status::from(a.severity))
                .max()
                .unwrap_or(Status::Ok);
            let mut series = Vec::new();
            let mut glucose = None;
            let mut systolic: &[Point] = &[];
            let mut diastolic: &[Point] = &[];
            for (key, points) in &b.series {
                if points.is_empty() {
                    continue;
                }
                readings += points.len();
                let shown = Shown {
                    end,
                    glucose: glucose_unit,
                };
                if let Some(s) = series_report(key, points, catalog, rules, &subject, tz, shown) {
                    series.push(s);
                }
                if is_glucose(&key.kind) && glucose.is_none() {
                    glucose = glucose_report(&key.kind, points, tz, glucose_unit);
                }
                if key.kind == "blood-pressure" {
                    match key.component.as_deref() {
                        Some("systolic") => systolic = points,
                        Some("diastolic") => diastolic = points,
                        _ => {}
                    }
                }
            }
            let identifier_note = b.id.as_ref().and_then(|id| {
                let reason = id.national_issue()?;
                let system = match id.national_system()? {
                    healthanalyzer_model::NationalId::Cpr => "CPR",
                    healthanalyzer_model::NationalId::Bsn => "BSN",
                    healthanalyzer_model::NationalId::Fnr => "FNR",
                    healthanalyzer_model::NationalId::Dnr => "D-number",
                };
                Some(format!(
                    "The identifier fails the {system} rules ({reason}): test data, or a typing error."
                ))
            });
            patients.push(PatientReport {
                name: names.get(&subject).cloned(),
                identifier_note,
                time_zone: zone_name(tz, now),
                subject,
                status,
                alerts: mine.iter().map(|a| alert_entry(a, tz)).collect(),
                last_reading: b.last.map(|t| local(t, tz)),
                series,
                glucose,
                blood_pressure: bp_report(systolic, diastolic, tz),
            });
        }
        patients.sort_by(|a, b| {
            b.status
                .cmp(&a.status)
                .then_with(|| red_count(b).cmp(&red_count(a)))
                .then_with(|| b.alerts.len().cmp(&a.alerts.len()))
                .then_with(|| a.subject.cmp(&b.subject))
        });
        let count = |s: Status| patients.iter().filter(|p| p.status == s).count();
        let totals = Totals {
            patients: patients.len(),
            red: count(Status::Red),
            yellow: count(Status::Yellow),
            ok: count(Status::Ok),
            readings,
        };
        let date = |t: Timestamp| t.to_zoned(tz.clone()).date().to_string();
        Ok(Report {
            schema: SCHEMA.into(),
            title: options.title.clone(),
            generated_at: now.to_string(),
            time_zone: zone_name(tz, now),
            from: date(start),
            to: date(end),
            period_note,
            totals,
            patients,
        })
    }

    /// The patient with this `system|value` key.
    pub fn patient(&self, subject: &str) -> Option<&PatientReport> {
        self.patients.iter().find(|p| p.subject == subject)
    }

    /// The report as pretty-printed JSON (the format [`Report::schema_json`] describes).
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

    /// The JSON Schema (draft 2020-12) of the report document, pretty-printed.
    pub fn schema_json() -> String {
        let schema = schemars::schema_for!(Report);
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    }
}

fn red_count(p: &PatientReport) -> usize {
    p.alerts
        .iter()
        .filter(|a| a.severity == Status::Red)
        .count()
}

#[derive(Default)]
struct PatientBuilder<'a> {
    id: Option<healthanalyzer_model::Identifier>,
    last: Option<Timestamp>,
    series: Vec<(&'a SeriesKey, &'a [Point])>,
}

fn alert_entry(a: &Alert, tz: &TimeZone) -> AlertEntry {
    AlertEntry {
        severity: a.severity.into(),
        rule: a.rule.clone(),
        kind: a.kind.clone(),
        at: local(a.at, tz),
        message: a.message.clone(),
        measurements: a.measurements.iter().map(ToString::to_string).collect(),
    }
}

/// How a series is shown: the period's end, and glucose's unit.
#[derive(Clone, Copy)]
struct Shown {
    end: Timestamp,
    glucose: GlucoseUnit,
}

/// The unit most glucose readings came in (by their original unit); mmol/L when none says.
fn glucose_unit_of(measurements: &[Measurement], catalog: &Catalog) -> GlucoseUnit {
    let (mut mmol, mut mg) = (0usize, 0usize);
    for m in measurements.iter().filter(|m| is_glucose(m.kind.as_str())) {
        if let healthanalyzer_model::Value::Quantity(o) = &m.value {
            let unit = o.original.as_ref().unwrap_or(&o.quantity).unit.as_str();
            let spec = catalog.kind(m.kind.as_str()).and_then(|k| k.value.as_ref());
            match spec.and_then(|s| s.unit_def(unit)).map(|d| d.code.as_str()) {
                Some("mg/dL") => mg += 1,
                Some("mmol/L") => mmol += 1,
                _ => {}
            }
        }
    }
    if mg > mmol {
        GlucoseUnit::MgDl
    } else {
        GlucoseUnit::MmolL
    }
}

fn series_report(
    key: &SeriesKey,
    points: &[Point],
    catalog: &Catalog,
    rules: &RuleSet,
    subject: &str,
    tz: &TimeZone,
    shown: Shown,
) -> Option<SeriesReport> {
    // Glucose in the unit shown: the points converted once, everything below follows.
    let converted: Vec<Point>;
    let glucose = is_glucose(&key.kind);
    let conv = |v: f64| {
        if glucose {
            shown.glucose.from_mg_dl(v)
        } else {
            v
        }
    };
    let points = if glucose && shown.glucose != GlucoseUnit::MgDl {
        converted = points
            .iter()
            .map(|p| Point {
                value: conv(p.value),
                ..*p
            })
            .collect();
        &converted[..]
    } else {
        points
    };
    let finite: Vec<&Point> = points.iter().filter(|p| p.value.is_finite()).collect();
    let (first, last) = (finite.first()?, finite.last()?);
    let s = Summary::of(finite.iter().map(|p| p.value))?;
    let mut sorted: Vec<f64> = finite.iter().map(|p| p.value).collect();
    sorted.sort_by(f64::total_cmp);
    let pct = |p| analysis::percentile(&sorted, p).unwrap_or(f64::NAN);
    let (display, unit) = display(catalog, key);
    let unit = if glucose {
        shown.glucose.as_str().to_string()
    } else {
        unit
    };
    let label = key.label();
    Some(SeriesReport {
        summary: SummaryEntry {
            count: s.count,
            first: local(first.at, tz),
            last: local(last.at, tz),
            latest: last.value,
            min: s.min,
            max: s.max,
            mean: s.mean,
            median: s.median,
            sd: s.sd,
            p5: pct(5.0),
            p95: pct(95.0),
        },
        trends: [7, 30, 90]
            .into_iter()
            .filter_map(|days| {
                let in_window = trend_window(points, shown.end, days);
                if in_window == 0 {
                    return None;
                }
                let t = analysis::trend(points, shown.end, i64::from(days));
                Some(TrendEntry {
                    days,
                    slope_per_week: t.map(|t| t.slope_per_week),
                    points: t.map_or(in_window, |t| t.points),
                })
            })
            .collect(),
        daily: analysis::daily(points, tz)
            .into_iter()
            .map(|d| DayEntry {
                date: d.date.to_string(),
                count: d.summary.count,
                min: d.summary.min,
                mean: d.summary.mean,
                max: d.summary.max,
            })
            .collect(),
        points: if finite.len() <= MAX_RAW_POINTS {
            finite
                .iter()
                .map(|p| PointEntry {
                    at: p.at.to_string(),
                    value: p.value,
                })
                .collect()
        } else {
            Vec::new()
        },
        threshold: rules
            .threshold_for(subject, &label)
            .map(|t| ThresholdEntry {
                red_high: t.red_high.map(conv),
                yellow_high: t.yellow_high.map(conv),
                yellow_low: t.yellow_low.map(conv),
                red_low: t.red_low.map(conv),
            }),
        kind: label,
        display,
        unit,
    })
}

/// Readings in a trend's window, `days` up to `end`.
fn trend_window(points: &[Point], end: Timestamp, days: u32) -> usize {
    let Ok(start) = end.checked_sub(SignedDuration::from_hours(24 * i64::from(days))) else {
        return 0;
    };
    points
        .iter()
        .filter(|p| p.at > start && p.at <= end && p.value.is_finite())
        .count()
}

fn glucose_report(
    kind: &str,
    points: &[Point],
    tz: &TimeZone,
    unit: GlucoseUnit,
) -> Option<GlucoseReport> {
    let g = analysis::glucose(points, tz)?;
    let mut hours: [Vec<f64>; 24] = Default::default();
    for p in points.iter().filter(|p| p.value.is_finite()) {
        let h = p.at.to_zoned(tz.clone()).hour();
        if let Some(bin) = usize::try_from(h).ok().and_then(|h| hours.get_mut(h)) {
            bin.push(p.value);
        }
    }
    let profile = hours
        .iter_mut()
        .zip(0u8..)
        .filter(|(v, _)| !v.is_empty())
        .map(|(v, hour)| {
            v.sort_by(f64::total_cmp);
            let pct = |p| unit.from_mg_dl(analysis::percentile(v, p).unwrap_or(f64::NAN));
            ProfileHour {
                hour,
                readings: v.len(),
                p5: pct(5.0),
                p25: pct(25.0),
                p50: pct(50.0),
                p75: pct(75.0),
                p95: pct(95.0),
            }
        })
        .collect();
    Some(GlucoseReport {
        kind: kind.to_string(),
        readings: g.readings,
        very_low: g.very_low,
        low: g.low,
        in_range: g.in_range,
        high: g.high,
        very_high: g.very_high,
        unit: unit.as_str().to_string(),
        // The international consensus on time in range gives both spellings of its limits.
        limits: match unit {
            GlucoseUnit::MgDl => [54.0, 70.0, 180.0, 250.0],
            GlucoseUnit::MmolL => [3.0, 3.9, 10.0, 13.9],
        },
        mean: unit.from_mg_dl(g.mean),
        gmi: g.gmi,
        cv: g.cv,
        days_with_data: g.days_with_data,
        profile,
    })
}

fn pressure(p: analysis::Pressure) -> PressureEntry {
    PressureEntry {
        systolic: p.systolic,
        diastolic: p.diastolic,
        readings: p.readings,
    }
}

fn bp_report(
    systolic: &[Point],
    diastolic: &[Point],
    tz: &TimeZone,
) -> Option<BloodPressureReport> {
    let home = analysis::home_bp(systolic, diastolic, tz)?;
    // (date, evening?) -> readings, paired as home_bp pairs them.
    let mut halves: BTreeMap<(String, bool), Vec<(f64, f64)>> = BTreeMap::new();
    let mut days = BTreeSet::new();
    for (s, d) in analysis::bp_pairs(systolic, diastolic) {
        let z = s.at.to_zoned(tz.clone());
        let date = z.date().to_string();
        days.insert(date.clone());
        halves
            .entry((date, z.hour() >= 12))
            .or_default()
            .push((s.value, d));
    }
    let mean = |v: Option<&Vec<(f64, f64)>>| {
        let v = v.filter(|v| !v.is_empty())?;
        let n = v.len() as f64;
        Some(PressureEntry {
            systolic: v.iter().map(|p| p.0).sum::<f64>() / n,
            diastolic: v.iter().map(|p| p.1).sum::<f64>() / n,
            readings: v.len(),
        })
    };
    let skip = days.len().saturating_sub(DIARY_DAYS);
    let diary = days
        .into_iter()
        .skip(skip)
        .map(|date| DiaryDay {
            morning: mean(halves.get(&(date.clone(), false))),
            evening: mean(halves.get(&(date.clone(), true))),
            date,
        })
        .collect();
    Some(BloodPressureReport {
        morning: home.morning.map(pressure),
        evening: home.evening.map(pressure),
        overall: pressure(home.overall),
        days: home.days,
        diary,
    })
}
