//! Reports of [Health Analyzer](https://github.com/os2health/health-analyzer) analyses.
//!
//! [`Report::build`] analyses measurements with `healthanalyzer-analysis` (summaries, daily
//! aggregates and trends in the patients' time zone, rules and alerts, glucose statistics,
//! home blood pressure) and keeps the result as one document, which renders as:
//!
//! - **HTML** ([`Report::to_html`]): one self-contained page that opens offline (inline CSS
//!   and SVG, no script, no external asset). An overview of every patient, most urgent first,
//!   then per patient the alerts, a table of every measure, a chart of each over the period
//!   with the threshold bands and the alerts marked, an AGP-style glucose profile and a
//!   blood-pressure diary. [`Report::to_overview_html`] renders the overview alone,
//!   [`Report::to_patient_html`] one patient.
//! - **Markdown** ([`Report::to_markdown`]): the overview and per-patient tables, for a
//!   repository or a hackathon's results page.
//! - **JSON** ([`Report::to_json`], [`Report::from_json`]): the document itself, for other
//!   programs; `Report::schema_json` (feature `schema`) gives its JSON Schema (also in
//!   `docs/report.schema.json`).
//!
//! `Report::from_store` (feature `store`) builds the same report from a `healthanalyzer-store`
//! store, holding one patient's readings at a time.
//!
//! Charts are drawn with plotters' SVG backend, the pages with askama templates, which
//! escape every value that comes from the data.
//!
//! ```
//! use healthanalyzer_analysis::RuleSet;
//! use healthanalyzer_model::jiff::{Timestamp, tz::TimeZone};
//! use healthanalyzer_model::{Catalog, DateTime, Identifier, Measurement, Provenance, Value, parse_decimal};
//! use healthanalyzer_report::{Options, Report, Status};
//!
//! let spo2 = |day: u8, pct: &str| Measurement::new(
//!     Provenance::new("oximeter", format!("r{day}")),
//!     Identifier::local("p1"),
//!     "oxygen-saturation",
//!     Value::quantity(parse_decimal(pct).unwrap(), "%"),
//!     DateTime::parse(&format!("2024-03-{day:02}T08:00:00+01:00")).unwrap(),
//! );
//! let data = [spo2(1, "96"), spo2(2, "94"), spo2(3, "87")];
//! let rules = RuleSet::from_toml("[[threshold]]\nkind = \"oxygen-saturation\"\nred_low = 88\n")?;
//! let now: Timestamp = "2024-03-03T12:00:00Z".parse().unwrap();
//! let options = Options::new(now, TimeZone::get("Europe/Copenhagen").unwrap());
//! let report = Report::build(&data, &[], Catalog::builtin(), &rules, &options)?;
//!
//! assert_eq!(report.patients[0].status, Status::Red);
//! let html = report.to_html()?;
//! assert!(html.contains("<svg") && html.contains("oxygen-saturation 87 is below the red limit 88"));
//! assert_eq!(Report::from_json(&report.to_json())?, report);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! - `schema`: `Report::schema_json`, the JSON Schema of the document (adds `schemars`).
//! - `store`: `Report::from_store`, a report built from a store (`healthanalyzer-store`, the
//!   light trait crate) one patient at a time, so memory is bounded by the largest patient.
//! - `tzdb-bundle`: the IANA time zone database bundled into the binary (the feature of
//!   `healthanalyzer-analysis`), for machines without `/usr/share/zoneinfo` (Windows).

#![warn(missing_docs)]

mod build;
mod chart;
mod document;
mod html;
#[cfg(feature = "store")]
mod store;

pub use document::{
    AlertEntry, BloodPressureReport, DIARY_DAYS, DayEntry, DiaryDay, GlucoseReport, GlucoseUnit,
    MAX_RAW_POINTS, Options, PatientReport, PointEntry, PressureEntry, ProfileHour, Report, SCHEMA,
    SeriesReport, Status, SummaryEntry, ThresholdEntry, Totals, TrendEntry,
};

/// What can go wrong in making a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options describe no period the calendar holds.
    #[error("report options: {0}")]
    Options(String),
    /// A JSON document is not a report of this format.
    #[error("report JSON: {0}")]
    Json(String),
    /// A template failed to render (a bug: please report it).
    #[error("report template: {0}")]
    Template(String),
    /// A chart failed to draw (a bug: please report it).
    #[error("report chart: {0}")]
    Chart(String),
    /// The store could not be read (feature `store`); the cause says why and whether a retry
    /// can help.
    #[cfg(feature = "store")]
    #[error("reading the store for the report")]
    Store(#[from] healthanalyzer_store::Error),
}

impl Report {
    /// The whole report as one self-contained HTML page.
    ///
    /// # Errors
    /// [`Error::Template`] or [`Error::Chart`], which would be bugs.
    pub fn to_html(&self) -> Result<String, Error> {
        html::page(self)
    }

    /// The overview alone as an HTML page, each patient linking to `href(index, patient)`
    /// (a dashboard's patient page, say).
    ///
    /// # Errors
    /// [`Error::Template`], which would be a bug.
    pub fn to_overview_html(
        &self,
        href: impl Fn(usize, &PatientReport) -> String,
    ) -> Result<String, Error> {
        html::overview(self, &href)
    }

    /// One patient's section (alerts, statistics, charts) as a page of its own, for the
    /// `system|value` key `subject`; `Ok(None)` if the report has no such patient.
    ///
    /// # Errors
    /// [`Error::Template`] or [`Error::Chart`], which would be bugs.
    pub fn to_patient_html(&self, subject: &str) -> Result<Option<String>, Error> {
        html::patient(self, subject)
    }

    /// The report as Markdown (GitHub-flavoured tables).
    ///
    /// # Errors
    /// [`Error::Template`], which would be a bug.
    pub fn to_markdown(&self) -> Result<String, Error> {
        html::markdown(self)
    }
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
