//! Synthetic patients for [Health Analyzer](https://github.com/os2health/health-analyzer) demos,
//! tests and benchmarks, as a [`Source`].
//!
//! `N` patients × `D` days, each patient following a [`Scenario`] (assigned in turn):
//!
//! | scenario | measures, per day | what happens |
//! |---|---|---|
//! | [`Scenario::Steady`] | blood pressure and pulse morning and evening, weight | a daily rhythm: higher in the morning |
//! | [`Scenario::HeartFailure`] | the same | weight climbs 3 kg over the last three days (fluid retention), enough for a "2 kg in 3 days" rule whatever the daily noise |
//! | [`Scenario::Copd`] | SpO2 and pulse three times, respiratory rate | SpO2 dips to about 87 % for two days mid-way (an exacerbation), breathing faster |
//! | [`Scenario::Diabetes`] | glucose before and after breakfast and dinner, weight | after-meal peaks |
//! | [`Scenario::Active`] | steps (per day), resting pulse | a weekly rhythm |
//! | [`Scenario::Lapsed`] | like steady | stops measuring after half the days (stale data) |
//!
//! Everything is a pure function of the seed and the position, so any cursor can be resumed in
//! O(1) and two runs give the same measurements, ids included. Subjects are identified under
//! [`SUBJECT_SYSTEM`], never with a real national identifier.
//!
//! ```
//! use healthanalyzer_source::{Cursor, Source};
//! use healthanalyzer_source_sim::{SimConfig, SimSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), healthanalyzer_source::Error> {
//! let sim = SimSource::new(SimConfig { patients: 6, days: 14, ..SimConfig::default() })?;
//! let batch = sim.pull(&Cursor::start(), 100).await?;
//! assert_eq!(batch.measurements.len(), 100);
//! // 14 days of 5, 5, 7, 5 and 2 measurements; the lapsed patient's 5 for 7 days.
//! assert_eq!(sim.total(), 371);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use async_trait::async_trait;
use healthanalyzer_model::jiff::{Timestamp, civil, tz};
use healthanalyzer_model::{
    DateTime, Decimal, Effective, Identifier, KindId, Measurement, Provenance, UnitCode, Value,
};
use healthanalyzer_source::{Batch, Cursor, Error, Result, Source};

/// The identifier system of simulated patients (`sim-<seed>-<n>`).
pub const SUBJECT_SYSTEM: &str = "urn:healthanalyzer:sim:patient";

/// What a simulated patient measures and what happens to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scenario {
    /// Stable blood pressure with a daily rhythm; weight.
    Steady,
    /// Weight climbs 3 kg in the last three days.
    HeartFailure,
    /// SpO2 dips for two days mid-way.
    Copd,
    /// Meal-related glucose.
    Diabetes,
    /// Daily steps with a weekly rhythm.
    Active,
    /// Stops measuring after half the days.
    Lapsed,
}

impl Scenario {
    /// Every scenario, in the order patients are assigned them.
    pub const ALL: &'static [Scenario] = &[
        Scenario::Steady,
        Scenario::HeartFailure,
        Scenario::Copd,
        Scenario::Diabetes,
        Scenario::Active,
        Scenario::Lapsed,
    ];

    /// The scenario of patient `n` (from 0).
    pub fn of_patient(n: usize) -> Scenario {
        Scenario::ALL[n % Scenario::ALL.len()]
    }

    fn slots(self) -> &'static [Slot] {
        use Measure::*;
        const BP_DAY: &[Slot] = &[
            Slot(6 * 60 + 50, BloodPressure),
            Slot(6 * 60 + 51, Pulse),
            Slot(7 * 60, Weight),
            Slot(21 * 60, BloodPressure),
            Slot(21 * 60 + 1, Pulse),
        ];
        match self {
            Scenario::Steady | Scenario::HeartFailure | Scenario::Lapsed => BP_DAY,
            Scenario::Copd => &[
                Slot(8 * 60, Spo2),
                Slot(8 * 60 + 1, Pulse),
                Slot(8 * 60 + 2, Respiration),
                Slot(13 * 60, Spo2),
                Slot(13 * 60 + 1, Pulse),
                Slot(20 * 60, Spo2),
                Slot(20 * 60 + 1, Pulse),
            ],
            Scenario::Diabetes => &[
                Slot(7 * 60, GlucoseFasting),
                Slot(7 * 60 + 5, Weight),
                Slot(9 * 60 + 30, GlucoseAfterMeal),
                Slot(17 * 60 + 30, GlucoseFasting),
                Slot(20 * 60, GlucoseAfterMeal),
            ],
            Scenario::Active => &[Slot(0, Steps), Slot(7 * 60 + 15, Pulse)],
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Measure {
    BloodPressure,
    Pulse,
    Weight,
    Spo2,
    Respiration,
    GlucoseFasting,
    GlucoseAfterMeal,
    Steps,
}

/// A measurement a patient takes every day, at minutes after midnight.
#[derive(Debug, Clone, Copy)]
struct Slot(u32, Measure);

/// How to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The source id (part of every measurement id).
    pub source_id: String,
    /// Same seed, same data.
    pub seed: u64,
    /// How many patients.
    pub patients: usize,
    /// How many days.
    pub days: u32,
    /// The first day.
    pub start: civil::Date,
    /// The patients' clock (UTC offset).
    pub offset: tz::Offset,
}

impl Default for SimConfig {
    /// Six patients (one per scenario), 30 days from 2024-01-01, at UTC+1, seed 1.
    fn default() -> Self {
        SimConfig {
            source_id: "sim".into(),
            seed: 1,
            patients: 6,
            days: 30,
            start: civil::date(2024, 1, 1),
            offset: tz::offset(1),
        }
    }
}

/// The simulator as a source. Its cursor is the position in the stream (patient by patient,
/// day by day).
#[derive(Debug, Clone)]
pub struct SimSource {
    config: SimConfig,
    /// `ends[p]`: the stream position after patient `p`'s last measurement.
    ends: Vec<u64>,
    subjects: Vec<Identifier>,
    start: Timestamp,
}

impl SimSource {
    /// A simulator, or a configuration error (no days, a start date out of range).
    pub fn new(config: SimConfig) -> Result<Self> {
        if config.days == 0 {
            return Err(Error::Config(
                "the simulation needs at least one day".into(),
            ));
        }
        let start = config
            .start
            .to_zoned(tz::TimeZone::fixed(config.offset))
            .map_err(|e| Error::Config(format!("start date: {e}")))?
            .timestamp();
        let mut ends = Vec::with_capacity(config.patients);
        let mut total = 0u64;
        for p in 0..config.patients {
            let s = Scenario::of_patient(p);
            total += s.slots().len() as u64 * u64::from(active_days(s, config.days));
            ends.push(total);
        }
        let subjects = (0..config.patients)
            .map(|p| Identifier::new(SUBJECT_SYSTEM, format!("sim-{}-{p}", config.seed)))
            .collect();
        Ok(SimSource {
            config,
            ends,
            subjects,
            start,
        })
    }

    /// How many measurements the simulation holds.
    pub fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The subjects, patient by patient.
    pub fn subjects(&self) -> &[Identifier] {
        &self.subjects
    }

    /// The measurement at stream position `at` (below [`SimSource::total`]).
    pub fn measurement(&self, at: u64) -> Option<Measurement> {
        let p = self.ends.partition_point(|&end| end <= at);
        let begin = if p == 0 { 0 } else { self.ends[p - 1] };
        let scenario = Scenario::of_patient(p);
        let slots = scenario.slots();
        let within = at.checked_sub(begin)?;
        let day = u32::try_from(within / slots.len() as u64).ok()?;
        let Slot(minute, measure) = slots[(within % slots.len() as u64) as usize];
        if p >= self.subjects.len() || day >= active_days(scenario, self.config.days) {
            return None;
        }
        let rng = Noise::new(
            self.config.seed,
            p as u64,
            u64::from(day),
            u64::from(minute),
        );
        let person = Noise::new(self.config.seed, p as u64, 0, u64::MAX);
        let days = self.config.days;
        // Scales are read at the same minute every morning; steps are a day's total.
        let jitter = if matches!(measure, Measure::Steps | Measure::Weight) {
            0
        } else {
            rng.int(7, 0, 20) as i64 - 10
        };
        let seconds = i64::from(day) * 86_400 + i64::from(minute) * 60 + jitter * 60;
        let at_ts = Timestamp::from_second(self.start.as_second() + seconds).ok()?;
        let when = DateTime::from_timestamp(at_ts, self.config.offset);
        let morning = minute < 12 * 60;
        let (kind, value) = match measure {
            Measure::BloodPressure => {
                let base = 118 + person.int(1, 0, 24) as i64;
                let sys = base + if morning { 6 } else { 0 } + rng.int(2, 0, 12) as i64 - 6;
                let dia = sys * 6 / 10 + rng.int(3, 0, 8) as i64 - 4;
                (
                    KindId::from_static("blood-pressure"),
                    Value::blood_pressure(Decimal::from(sys), Decimal::from(dia)),
                )
            }
            Measure::Pulse => {
                let base = 58 + person.int(2, 0, 20) as i64;
                let copd = matches!(scenario, Scenario::Copd) && exacerbation(day, days);
                let v = base + if copd { 18 } else { 0 } + rng.int(4, 0, 10) as i64 - 5;
                (q("heart-rate"), qty(Decimal::from(v), "/min"))
            }
            Measure::Weight => {
                // Tenths of a kilogram.
                let base = 650 + person.int(3, 0, 350) as i64;
                let mut tenths = base + rng.int(5, 0, 6) as i64 - 3;
                if matches!(scenario, Scenario::HeartFailure) {
                    // +1 kg a day over the last three days: the final weight is 3 kg (less at
                    // most 0.5 kg of daily noise) above the one exactly three days before.
                    let climb_start = days.saturating_sub(4);
                    if day > climb_start {
                        tenths += i64::from((day - climb_start).min(3)) * 10;
                    }
                }
                (q("body-weight"), qty(Decimal::new(tenths, 1), "kg"))
            }
            Measure::Spo2 => {
                let dip = exacerbation(day, days);
                let v = if dip { 85 } else { 93 } + rng.int(6, 0, 4) as i64;
                (q("oxygen-saturation"), qty(Decimal::from(v), "%"))
            }
            Measure::Respiration => {
                let v = if exacerbation(day, days) { 24 } else { 16 } + rng.int(8, 0, 4) as i64;
                (q("respiratory-rate"), qty(Decimal::from(v), "/min"))
            }
            Measure::GlucoseFasting | Measure::GlucoseAfterMeal => {
                let base = 105 + person.int(4, 0, 30) as i64;
                let meal = if matches!(measure, Measure::GlucoseAfterMeal) {
                    60 + rng.int(9, 0, 50) as i64
                } else {
                    0
                };
                let v = base + meal + rng.int(10, 0, 16) as i64 - 8;
                (q("capillary-glucose"), qty(Decimal::from(v), "mg/dL"))
            }
            Measure::Steps => {
                let weekday =
                    (self.config.start.weekday().to_monday_zero_offset() as u32 + day) % 7;
                let weekend = weekday >= 5;
                let v = 6000 + person.int(11, 0, 4000) as i64 + if weekend { 3000 } else { 0 }
                    - rng.int(12, 0, 5000) as i64;
                let end = Timestamp::from_second(at_ts.as_second() + 86_399).ok()?;
                let effective = Effective::Period {
                    start: when,
                    end: Some(DateTime::from_timestamp(end, self.config.offset)),
                };
                return Some(self.make(
                    p,
                    day,
                    minute,
                    q("steps"),
                    qty(Decimal::from(v.max(0)), "{steps}"),
                    effective,
                ));
            }
        };
        Some(self.make(p, day, minute, kind, value, Effective::At(when)))
    }

    fn make(
        &self,
        p: usize,
        day: u32,
        minute: u32,
        kind: KindId,
        value: Value,
        effective: Effective,
    ) -> Measurement {
        let record = format!("{p}/{day}/{minute}");
        Measurement::new(
            Provenance::new(self.config.source_id.clone(), record),
            self.subjects[p].clone(),
            kind,
            value,
            effective,
        )
    }

    fn position(&self, cursor: &Cursor) -> Result<u64> {
        if cursor.is_start() {
            return Ok(0);
        }
        let at: u64 = cursor.as_str().parse().map_err(|_| Error::BadCursor {
            reason: "expected a position in the simulation".into(),
        })?;
        if at > self.total() {
            return Err(Error::BadCursor {
                reason: "the position is past the end of the simulation; was it made with another configuration?".into(),
            });
        }
        Ok(at)
    }
}

fn q(kind: &'static str) -> KindId {
    KindId::from_static(kind)
}

fn qty(v: Decimal, unit: &'static str) -> Value {
    Value::quantity(v, UnitCode::from_static(unit))
}

/// Days a scenario's patient measures.
fn active_days(s: Scenario, days: u32) -> u32 {
    match s {
        Scenario::Lapsed => days.div_ceil(2),
        _ => days,
    }
}

/// The two exacerbation days of a COPD patient, mid-way.
fn exacerbation(day: u32, days: u32) -> bool {
    let mid = days / 2;
    day == mid || day == mid + 1
}

/// Deterministic noise from a position: SplitMix64 of the mixed inputs.
#[derive(Debug, Clone, Copy)]
struct Noise(u64);

impl Noise {
    fn new(seed: u64, patient: u64, day: u64, slot: u64) -> Self {
        let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
        for v in [patient, day, slot] {
            h = mix(h ^ v);
        }
        Noise(h)
    }

    /// A number in `[lo, hi)` for draw `k`.
    fn int(self, k: u64, lo: u64, hi: u64) -> u64 {
        lo + mix(self.0 ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03)) % (hi - lo).max(1)
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[async_trait]
impl Source for SimSource {
    fn id(&self) -> &str {
        &self.config.source_id
    }

    fn kind(&self) -> &str {
        "sim"
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> Result<Batch> {
        let from = self.position(cursor)?;
        let to = from.saturating_add(limit.max(1) as u64).min(self.total());
        let measurements: Vec<Measurement> =
            (from..to).filter_map(|at| self.measurement(at)).collect();
        Ok(Batch {
            measurements,
            cursor: Cursor::new(to.to_string()),
            exhausted: to == self.total(),
            ..Batch::default()
        })
    }
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
