//! Home blood pressure and adherence.

use std::collections::{BTreeMap, BTreeSet};

use healthanalyzer_model::jiff::civil::Date;
use healthanalyzer_model::jiff::tz::TimeZone;
use serde::Serialize;

use crate::series::Point;

/// Mean systolic and diastolic pressure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pressure {
    /// Systolic, mmHg.
    pub systolic: f64,
    /// Diastolic, mmHg.
    pub diastolic: f64,
    /// Readings averaged.
    pub readings: usize,
}

/// Home blood pressure: the means of morning and evening readings over the days measured, as
/// home monitoring guidelines ask (ESH: morning and evening, several days).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HomeBp {
    /// Readings before noon, local time.
    pub morning: Option<Pressure>,
    /// Readings from noon on.
    pub evening: Option<Pressure>,
    /// All readings.
    pub overall: Pressure,
    /// Days with a reading.
    pub days: usize,
}

fn mean(pairs: &[(f64, f64)]) -> Option<Pressure> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    Some(Pressure {
        systolic: pairs.iter().map(|p| p.0).sum::<f64>() / n,
        diastolic: pairs.iter().map(|p| p.1).sum::<f64>() / n,
        readings: pairs.len(),
    })
}

/// The blood-pressure readings of a subject's systolic and diastolic series: each systolic
/// point with the diastolic value of the same measurement, or, for lone component readings
/// (systolic and diastolic sent as two Observations, ADR 0009), with the diastolic value taken
/// at the same instant. Points without a finite partner are left out.
pub fn bp_pairs<'p>(systolic: &'p [Point], diastolic: &[Point]) -> Vec<(&'p Point, f64)> {
    let by_id: BTreeMap<_, f64> = diastolic.iter().map(|p| (p.id, p.value)).collect();
    let by_time: BTreeMap<_, f64> = diastolic.iter().map(|p| (p.at, p.value)).collect();
    systolic
        .iter()
        .filter_map(|s| {
            let d = *by_id.get(&s.id).or_else(|| by_time.get(&s.at))?;
            (s.value.is_finite() && d.is_finite()).then_some((s, d))
        })
        .collect()
}

/// Home blood pressure from the systolic and diastolic series of one subject (paired by
/// [`bp_pairs`]), in the subject's time zone.
pub fn home_bp(systolic: &[Point], diastolic: &[Point], tz: &TimeZone) -> Option<HomeBp> {
    let mut morning = Vec::new();
    let mut evening = Vec::new();
    let mut days = BTreeSet::new();
    for (s, d) in bp_pairs(systolic, diastolic) {
        let local = s.at.to_zoned(tz.clone());
        days.insert(local.date());
        if local.hour() < 12 {
            morning.push((s.value, d));
        } else {
            evening.push((s.value, d));
        }
    }
    let all: Vec<(f64, f64)> = morning.iter().chain(&evening).copied().collect();
    Some(HomeBp {
        morning: mean(&morning),
        evening: mean(&evening),
        overall: mean(&all)?,
        days: days.len(),
    })
}

/// Measurements taken against a schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adherence {
    /// Measurements the schedule asked for.
    pub expected: usize,
    /// Those taken (at most the scheduled number counts per day).
    pub taken: usize,
    /// `taken / expected`, 0 to 1.
    pub ratio: f64,
    /// Days with fewer measurements than scheduled.
    pub days_short: Vec<Date>,
}

/// Adherence to `per_day` measurements a day from `from` to `to` (inclusive), local dates in
/// `tz`.
pub fn adherence(
    points: &[Point],
    tz: &TimeZone,
    per_day: usize,
    from: Date,
    to: Date,
) -> Adherence {
    let mut by_day: BTreeMap<Date, usize> = BTreeMap::new();
    for p in points {
        *by_day.entry(p.at.to_zoned(tz.clone()).date()).or_default() += 1;
    }
    let mut expected = 0;
    let mut taken = 0;
    let mut days_short = Vec::new();
    let mut day = from;
    while day <= to {
        let n = by_day.get(&day).copied().unwrap_or(0);
        expected += per_day;
        taken += n.min(per_day);
        if n < per_day {
            days_short.push(day);
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    Adherence {
        expected,
        taken,
        ratio: if expected == 0 {
            1.0
        } else {
            taken as f64 / expected as f64
        },
        days_short,
    }
}
