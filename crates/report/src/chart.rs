//! SVG charts, drawn with plotters.

use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::jiff::tz::TimeZone;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::Error;
use crate::document::{AlertEntry, GlucoseReport, SeriesReport, Status};

/// Chart size in SVG pixels; the page scales it to its width.
const WIDTH: u32 = 860;
const HEIGHT: u32 = 260;

const LINE: RGBColor = RGBColor(37, 99, 235);
const RED: RGBColor = RGBColor(220, 38, 38);
const YELLOW: RGBColor = RGBColor(217, 164, 6);
const GREEN: RGBColor = RGBColor(22, 163, 74);
const GRID: RGBColor = RGBColor(229, 231, 235);
const AXIS: RGBColor = RGBColor(75, 85, 99);

fn chart_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::Chart(e.to_string())
}

fn status_color(s: Status) -> RGBColor {
    match s {
        Status::Red => RED,
        Status::Yellow => YELLOW,
        Status::Ok => GREEN,
    }
}

fn parse(at: &str) -> Option<f64> {
    at.parse::<Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

/// Local noon of a `YYYY-MM-DD` date, as seconds since the epoch.
fn noon(date: &str, tz: &TimeZone) -> Option<f64> {
    let d: healthanalyzer_model::jiff::civil::Date = date.parse().ok()?;
    let t = d.at(12, 0, 0, 0).to_zoned(tz.clone()).ok()?.timestamp();
    Some(t.as_millisecond() as f64 / 1000.0)
}

fn date_label(x: f64, tz: &TimeZone) -> String {
    Timestamp::from_millisecond((x * 1000.0) as i64)
        .map(|t| t.to_zoned(tz.clone()).strftime("%-d %b").to_string())
        .unwrap_or_default()
}

fn render(
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), Error>,
) -> Result<String, Error> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        draw(&root)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// A series over the period: every reading (line and dots), or for a long series the daily
/// range (band) and mean (line); the threshold's yellow and red zones as bands; each alert
/// on this series as a vertical line in its colour.
pub(crate) fn series_chart(
    s: &SeriesReport,
    alerts: &[&AlertEntry],
    from: f64,
    to: f64,
    tz: &TimeZone,
) -> Result<String, Error> {
    let raw: Vec<(f64, f64)> = s
        .points
        .iter()
        .filter_map(|p| Some((parse(&p.at)?, p.value)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    let days: Vec<(f64, f64, f64, f64)> = if raw.is_empty() {
        s.daily
            .iter()
            .filter_map(|d| Some((noon(&d.date, tz)?, d.min, d.mean, d.max)))
            .filter(|(_, a, b, c)| a.is_finite() && b.is_finite() && c.is_finite())
            .collect()
    } else {
        Vec::new()
    };
    let values = raw
        .iter()
        .map(|p| p.1)
        .chain(days.iter().flat_map(|d| [d.1, d.3]));
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let t = s.threshold.as_ref();
    let limits = t
        .into_iter()
        .flat_map(|t| [t.red_low, t.yellow_low, t.yellow_high, t.red_high])
        .flatten()
        .filter(|v| v.is_finite());
    for l in limits {
        lo = lo.min(l);
        hi = hi.max(l);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-9);
    let (y0, y1) = (lo - pad, hi + pad);
    let (x0, x1) = if to > from {
        (from, to)
    } else {
        (from, from + 1.0)
    };
    render(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|x| date_label(*x, tz))
            .y_desc(s.unit.as_str())
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .label_style(("sans-serif", 12).into_font().color(&AXIS))
            .draw()
            .map_err(chart_err)?;
        if let Some(t) = t {
            let band = |a: Option<f64>, b: Option<f64>, c: RGBColor| {
                let (a, b) = (a.unwrap_or(y0).max(y0), b.unwrap_or(y1).min(y1));
                (a < b).then(|| Rectangle::new([(x0, a), (x1, b)], c.mix(0.14).filled()))
            };
            let bands = [
                t.red_low.and_then(|r| band(None, Some(r), RED)),
                t.yellow_low
                    .and_then(|y| band(t.red_low.or(Some(y0)), Some(y), YELLOW)),
                t.yellow_high
                    .and_then(|y| band(Some(y), t.red_high.or(Some(y1)), YELLOW)),
                t.red_high.and_then(|r| band(Some(r), None, RED)),
            ];
            chart
                .draw_series(bands.into_iter().flatten())
                .map_err(chart_err)?;
        }
        for a in alerts {
            let Some(x) = parse(&a.at).filter(|x| (x0..=x1).contains(x)) else {
                continue;
            };
            let c = status_color(a.severity);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, y0), (x, y1)],
                    c.stroke_width(2),
                )))
                .map_err(chart_err)?;
            chart
                .draw_series(std::iter::once(TriangleMarker::new((x, y1), 7, c.filled())))
                .map_err(chart_err)?;
        }
        if raw.is_empty() {
            let mut band: Vec<(f64, f64)> = days.iter().map(|d| (d.0, d.3)).collect();
            band.extend(days.iter().rev().map(|d| (d.0, d.1)));
            chart
                .draw_series(std::iter::once(Polygon::new(band, LINE.mix(0.2).filled())))
                .map_err(chart_err)?;
            chart
                .draw_series(LineSeries::new(
                    days.iter().map(|d| (d.0, d.2)),
                    LINE.stroke_width(2),
                ))
                .map_err(chart_err)?;
        } else {
            chart
                .draw_series(LineSeries::new(raw.iter().copied(), LINE.stroke_width(1)))
                .map_err(chart_err)?;
            chart
                .draw_series(raw.iter().map(|p| Circle::new(*p, 2, LINE.filled())))
                .map_err(chart_err)?;
        }
        Ok(())
    })
}

/// The ambulatory glucose profile: by hour of the day, the 5-95 % band, the 25-75 % band and
/// the median, over the target range 70-180 mg/dL (in the report's glucose unit).
pub(crate) fn agp_chart(g: &GlucoseReport) -> Result<String, Error> {
    let hours: Vec<_> = g
        .profile
        .iter()
        .filter(|h| {
            [h.p5, h.p25, h.p50, h.p75, h.p95]
                .iter()
                .all(|v| v.is_finite())
        })
        .collect();
    let [_, low, high, _] = g.limits;
    // 300 and 600 mg/dL, in the unit shown.
    let scale = g.limits[2] / 180.0;
    let top = hours
        .iter()
        .map(|h| h.p95)
        .fold(300.0 * scale, f64::max)
        .min(600.0 * scale);
    render(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..24.0, 0.0..top + 10.0 * scale)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .x_labels(9)
            .y_labels(7)
            .x_label_formatter(&|h| format!("{:02}:00", *h as u32))
            .y_desc(g.unit.as_str())
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .label_style(("sans-serif", 12).into_font().color(&AXIS))
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, low), (24.0, high)],
                GREEN.mix(0.08).filled(),
            )))
            .map_err(chart_err)?;
        for limit in [low, high] {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, limit), (24.0, limit)],
                    GREEN.stroke_width(1),
                )))
                .map_err(chart_err)?;
        }
        // Hours without readings break the bands and the line: nothing is drawn across a gap.
        let x = |h: u8| f64::from(h) + 0.5;
        let mut runs: Vec<Vec<&crate::document::ProfileHour>> = Vec::new();
        for h in &hours {
            match runs.last_mut() {
                Some(run) if run.last().is_some_and(|l| l.hour + 1 == h.hour) => run.push(h),
                _ => runs.push(vec![h]),
            }
        }
        for run in &runs {
            // A lone hour is drawn half an hour wide.
            let xs = |h: &crate::document::ProfileHour| {
                if run.len() == 1 {
                    vec![x(h.hour) - 0.25, x(h.hour) + 0.25]
                } else {
                    vec![x(h.hour)]
                }
            };
            let band = |lo: fn(&crate::document::ProfileHour) -> f64,
                        hi: fn(&crate::document::ProfileHour) -> f64| {
                let mut v: Vec<(f64, f64)> = run
                    .iter()
                    .flat_map(|h| xs(h).into_iter().map(|x| (x, hi(h))))
                    .collect();
                v.extend(
                    run.iter()
                        .rev()
                        .flat_map(|h| xs(h).into_iter().rev().map(|x| (x, lo(h)))),
                );
                v
            };
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band(|h| h.p5, |h| h.p95),
                    LINE.mix(0.15).filled(),
                )))
                .map_err(chart_err)?;
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band(|h| h.p25, |h| h.p75),
                    LINE.mix(0.35).filled(),
                )))
                .map_err(chart_err)?;
            chart
                .draw_series(LineSeries::new(
                    run.iter()
                        .flat_map(|h| xs(h).into_iter().map(|x| (x, h.p50))),
                    LINE.stroke_width(3),
                ))
                .map_err(chart_err)?;
        }
        Ok(())
    })
}
