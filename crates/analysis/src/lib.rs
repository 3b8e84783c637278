//! Analysis of [Health Analyzer](https://github.com/os2health/health-analyzer) measurements:
//! pure functions, no I/O.
//!
//! - [`series`]: measurements as numeric series per subject, kind and component, in the
//!   kind's canonical unit;
//! - [`Summary`] (count, min, max, mean, median, SD, percentiles), [`daily`] and [`weekly`]
//!   aggregates in the subject's time zone (a DST day has 23 or 25 hours and every reading
//!   keeps its local date), least-squares [`trend`]s per week;
//! - [`RuleSet`]: red/yellow thresholds for everyone, patient groups and single patients (the
//!   OpenTele model), delta rules, stale-data rules, read from TOML; alerts carry severity,
//!   rule, time and the measurements that raised them, and can be acknowledged or snoozed;
//! - [`glucose`]: time in ranges, mean, GMI, CV and days with data, as the international
//!   consensus defines them;
//! - [`home_bp`]: morning and evening home blood pressure; [`adherence`] to a schedule.
//!
//! ```
//! use healthanalyzer_analysis::{RuleSet, Severity, series};
//! use healthanalyzer_model::jiff::Timestamp;
//! use healthanalyzer_model::{Catalog, DateTime, Identifier, Measurement, Provenance, Value, parse_decimal};
//!
//! let weigh = |day: u8, kg: &str| Measurement::new(
//!     Provenance::new("scale", format!("r{day}")),
//!     Identifier::local("p1"),
//!     "body-weight",
//!     Value::quantity(parse_decimal(kg).unwrap(), "kg"),
//!     DateTime::parse(&format!("2024-03-{day:02}T07:00:00+01:00")).unwrap(),
//! );
//! let data = [weigh(1, "80.1"), weigh(2, "80.9"), weigh(3, "81.6"), weigh(4, "82.4")];
//! let rules = RuleSet::from_toml(r#"
//!     [[delta]]
//!     name = "weight gain"
//!     kind = "body-weight"
//!     rise = 2.0
//!     within_days = 3
//!     severity = "red"
//! "#)?;
//! let now: Timestamp = "2024-03-04T12:00:00Z".parse().unwrap();
//! let alerts = rules.evaluate(&series(&data, Catalog::builtin()), now, &[]);
//! assert_eq!(alerts.len(), 1);
//! assert_eq!(alerts[0].severity, Severity::Red);
//! assert_eq!(alerts[0].message, "body-weight changed by 2.3 within 3 days (80.1 to 82.4)");
//! # Ok::<(), healthanalyzer_analysis::Error>(())
//! ```
//!
//! [`DEMO_RULES`] (read with [`RuleSet::demo`]) are the rules of the demo: a home-monitoring
//! programme in miniature.
//!
//! # Feature flags
//!
//! - `tz-system` (default): time zones from the system's database (`/usr/share/zoneinfo`, or
//!   `TZDIR`), and the system's own zone.
//! - `tzdb-bundle`: the IANA time zone database bundled into the binary, for machines without
//!   one (Windows). A binary that must run there enables it; where the system has a database,
//!   that one is still used (it is updated with the system).

#![warn(missing_docs)]

mod bp;
mod glucose;
mod rules;
mod series;
mod stats;

pub use bp::{Adherence, HomeBp, Pressure, adherence, bp_pairs, home_bp};
pub use glucose::{GlucoseStats, MG_DL_PER_MMOL_L, glucose};
pub use rules::{
    Ack, Alert, DEMO_RULES, DeltaRule, Group, PatientRules, RuleSet, Severity, StaleRule,
    Threshold, subject_key,
};
pub use series::{Point, SeriesKey, series, to_f64};
pub use stats::{Day, Summary, TREND_MIN_COVERAGE, Trend, Week, daily, percentile, trend, weekly};

/// What can go wrong in analysis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The rules are not valid TOML, or not rules.
    #[error("rules: {0}")]
    Rules(String),
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
