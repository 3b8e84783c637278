//! Summaries, daily and weekly aggregates (in the subject's time zone), trends.

use healthanalyzer_model::jiff::civil::{Date, ISOWeekDate};
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_model::jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::series::Point;

/// A summary of values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// How many finite values.
    pub count: usize,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// The arithmetic mean.
    pub mean: f64,
    /// The median (the 50th percentile).
    pub median: f64,
    /// The sample standard deviation (0 for one value).
    pub sd: f64,
    /// The 5th, 25th, 75th and 95th percentiles (linear interpolation between order
    /// statistics, as spreadsheets and NumPy's default do).
    pub p5: f64,
    /// The 25th percentile.
    pub p25: f64,
    /// The 75th percentile.
    pub p75: f64,
    /// The 95th percentile.
    pub p95: f64,
}

/// The `p`th percentile (0 to 100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !p.is_finite() {
        return None;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
}

impl Summary {
    /// The summary of `values`; NaN and infinite values are left out. `None` when nothing is
    /// left.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Summary> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        // Kahan-free but stable enough: values are measurements, not sums of extremes.
        let mean = v.iter().sum::<f64>() / n;
        let mean = mean.clamp(v[0], v[v.len() - 1]);
        let sd = if v.len() > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let pct = |p| percentile(&v, p).unwrap_or(f64::NAN);
        Some(Summary {
            count: v.len(),
            min: v[0],
            max: v[v.len() - 1],
            mean,
            median: pct(50.0),
            sd,
            p5: pct(5.0),
            p25: pct(25.0),
            p75: pct(75.0),
            p95: pct(95.0),
        })
    }

    /// The summary of a series' values.
    pub fn of_points(points: &[Point]) -> Option<Summary> {
        Summary::of(points.iter().map(|p| p.value))
    }
}

/// The values of one local calendar day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// The date, in the time zone given.
    pub date: Date,
    /// Its summary.
    pub summary: Summary,
}

/// Points grouped by the calendar day they fall on in `tz`. A day across a DST change has 23
/// or 25 hours; every point still lands on the date its local clock showed.
pub fn daily(points: &[Point], tz: &TimeZone) -> Vec<Day> {
    group(points, |p| p.at.to_zoned(tz.clone()).date())
        .into_iter()
        .filter_map(|(date, values)| Summary::of(values).map(|summary| Day { date, summary }))
        .collect()
}

/// The values of one ISO week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// The ISO year.
    pub year: i16,
    /// The ISO week (1 to 53).
    pub week: i8,
    /// Its summary.
    pub summary: Summary,
}

/// Points grouped by ISO week (Monday to Sunday) in `tz`.
pub fn weekly(points: &[Point], tz: &TimeZone) -> Vec<Week> {
    group(points, |p| {
        let w: ISOWeekDate = p.at.to_zoned(tz.clone()).date().iso_week_date();
        (w.year(), w.week())
    })
    .into_iter()
    .filter_map(|((year, week), values)| {
        Summary::of(values).map(|summary| Week {
            year,
            week,
            summary,
        })
    })
    .collect()
}

fn group<K: Ord + Copy>(points: &[Point], key: impl Fn(&Point) -> K) -> Vec<(K, Vec<f64>)> {
    let mut map: std::collections::BTreeMap<K, Vec<f64>> = std::collections::BTreeMap::new();
    for p in points {
        map.entry(key(p)).or_default().push(p.value);
    }
    map.into_iter().collect()
}

/// A least-squares trend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trend {
    /// The change per week, in the kind's unit.
    pub slope_per_week: f64,
    /// How many points it rests on.
    pub points: usize,
}

/// The share of a trend's window its points must span (first to last): a slope read off
/// three days of a 30-day window would be extrapolated, not measured.
pub const TREND_MIN_COVERAGE: f64 = 0.5;

/// The least-squares slope of the points in the `days` before `end` (inclusive), per week;
/// `None` with fewer than three points, or points that span less than
/// [`TREND_MIN_COVERAGE`] of the window ("too little data").
pub fn trend(points: &[Point], end: Timestamp, days: i64) -> Option<Trend> {
    let start = end
        .checked_sub(SignedDuration::from_hours(24 * days))
        .ok()?;
    let window: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.at > start && p.at <= end && p.value.is_finite())
        .map(|p| {
            let weeks = p.at.duration_since(start).as_secs_f64() / (7.0 * 86_400.0);
            (weeks, p.value)
        })
        .collect();
    if window.len() < 3 {
        return None;
    }
    let span_weeks = window.iter().map(|w| w.0).fold(f64::NAN, f64::max)
        - window.iter().map(|w| w.0).fold(f64::NAN, f64::min);
    if span_weeks < TREND_MIN_COVERAGE * days as f64 / 7.0 {
        return None;
    }
    let n = window.len() as f64;
    let mx = window.iter().map(|w| w.0).sum::<f64>() / n;
    let my = window.iter().map(|w| w.1).sum::<f64>() / n;
    let sxx: f64 = window.iter().map(|w| (w.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = window.iter().map(|w| (w.0 - mx) * (w.1 - my)).sum();
    Some(Trend {
        slope_per_week: sxy / sxx,
        points: window.len(),
    })
}
