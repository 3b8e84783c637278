//! Glucose statistics as the international consensus on time in range defines them (Battelino
//! et al., Diabetes Care 2019) and the AGP report uses.

use std::collections::BTreeSet;

use healthanalyzer_model::jiff::tz::TimeZone;
use serde::Serialize;

use crate::series::Point;
use crate::stats::Summary;

/// mg/dL per mmol/L of glucose (molar mass 180.156 g/mol).
pub const MG_DL_PER_MMOL_L: f64 = 18.0156;

/// Glucose statistics over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlucoseStats {
    /// Readings used.
    pub readings: usize,
    /// Percentage of readings below 54 mg/dL (very low, level 2).
    pub very_low: f64,
    /// 54 to 69 mg/dL (low, level 1).
    pub low: f64,
    /// 70 to 180 mg/dL (in range).
    pub in_range: f64,
    /// 181 to 250 mg/dL (high, level 1).
    pub high: f64,
    /// Above 250 mg/dL (very high, level 2).
    pub very_high: f64,
    /// Mean glucose, mg/dL.
    pub mean: f64,
    /// Glucose management indicator, %: 3.31 + 0.02392 × mean (mg/dL).
    pub gmi: f64,
    /// Coefficient of variation, %: 100 × SD / mean (stable at or below 36 %).
    pub cv: f64,
    /// Calendar days (in the time zone given) with at least one reading.
    pub days_with_data: usize,
}

/// The statistics of glucose readings in mg/dL (a series of the catalog's glucose kinds, whose
/// canonical unit is mg/dL; convert mmol/L with [`MG_DL_PER_MMOL_L`]). The range edges are
/// the consensus ones on readings as CGMs report them (whole mg/dL): a reading of 69.5 counts
/// as low, 180.5 as high. `None` without readings.
pub fn glucose(points: &[Point], tz: &TimeZone) -> Option<GlucoseStats> {
    let values: Vec<f64> = points
        .iter()
        .map(|p| p.value)
        .filter(|v| v.is_finite())
        .collect();
    let summary = Summary::of(values.iter().copied())?;
    let n = values.len() as f64;
    let share =
        |f: &dyn Fn(f64) -> bool| 100.0 * values.iter().filter(|v| f(**v)).count() as f64 / n;
    let very_low = share(&|v| v < 54.0);
    let low = share(&|v| (54.0..70.0).contains(&v));
    let high = share(&|v| v > 180.0 && v <= 250.0);
    let very_high = share(&|v| v > 250.0);
    // What is left is in range, so the five always sum to 100.
    let in_range = 100.0 - very_low - low - high - very_high;
    let days: BTreeSet<_> = points
        .iter()
        .filter(|p| p.value.is_finite())
        .map(|p| p.at.to_zoned(tz.clone()).date())
        .collect();
    Some(GlucoseStats {
        readings: values.len(),
        very_low,
        low,
        in_range,
        high,
        very_high,
        mean: summary.mean,
        gmi: 3.31 + 0.02392 * summary.mean,
        cv: if summary.mean > 0.0 {
            100.0 * summary.sd / summary.mean
        } else {
            0.0
        },
        days_with_data: days.len(),
    })
}
