//! HTML and Markdown, from askama templates (`templates/`). Every value from the data is
//! escaped by the template engine; only the charts, which this crate draws, go in unescaped.

use askama::Template;
use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::jiff::tz::TimeZone;

use crate::Error;
use crate::chart;
use crate::document::{AlertEntry, PatientReport, Report, SeriesReport, Status};

/// Filters the templates use (askama's `filter_fn` makes them `pub`).
#[allow(unreachable_pub)]
mod filters {
    /// A number for people: at most `places` decimals, no trailing zeros, `-` for NaN.
    #[askama::filter_fn]
    pub(super) fn num(v: &f64, _: &dyn askama::Values, places: usize) -> askama::Result<String> {
        Ok(super::num(*v, places))
    }

    /// A report time (RFC 3339 with offset) as local `YYYY-MM-DD HH:MM`.
    #[askama::filter_fn]
    pub(super) fn when(v: &str, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(super::short_time(v))
    }

    /// Text for a Markdown table cell: `|` escaped, lines joined.
    #[askama::filter_fn]
    pub(super) fn cell<T: std::fmt::Display>(
        v: T,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(super::md_cell(&v.to_string()))
    }
}

pub(crate) fn num(v: f64, places: usize) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let s = format!("{v:.places$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Markdown special characters that would start formatting or break a table cell.
pub(crate) fn md_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '|' | '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A row of the overview.
struct Row<'a> {
    p: &'a PatientReport,
    href: String,
    top: Option<&'a AlertEntry>,
    red: usize,
    yellow: usize,
    kinds: String,
}

/// A chart with its caption.
struct Chart {
    title: String,
    caption: String,
    svg: String,
}

/// A patient's section.
struct Section<'a> {
    p: &'a PatientReport,
    anchor: String,
    charts: Vec<Chart>,
    agp: Option<String>,
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    r: &'a Report,
    /// Whether the page has the overview (a single patient's page has not).
    overview: bool,
    rows: Vec<Row<'a>>,
    sections: Vec<Section<'a>>,
}

#[derive(Template)]
#[template(path = "report.md")]
struct Markdown<'a> {
    r: &'a Report,
    rows: Vec<Row<'a>>,
}

fn rows<'a>(r: &'a Report, href: &dyn Fn(usize, &PatientReport) -> String) -> Vec<Row<'a>> {
    r.patients
        .iter()
        .enumerate()
        .map(|(i, p)| Row {
            p,
            href: href(i, p),
            top: p.alerts.first(),
            red: p
                .alerts
                .iter()
                .filter(|a| a.severity == Status::Red)
                .count(),
            yellow: p
                .alerts
                .iter()
                .filter(|a| a.severity == Status::Yellow)
                .count(),
            kinds: {
                // One name per kind: blood pressure once, not per component.
                let mut names: Vec<&str> = Vec::new();
                for s in &p.series {
                    let kind = s.kind.split('.').next().unwrap_or(&s.kind);
                    let name = crate::build::short_name(kind).unwrap_or(&s.display);
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                names.join(", ")
            },
        })
        .collect()
}

fn caption(s: &SeriesReport) -> String {
    let shown = if s.points.is_empty() {
        "daily range (band) and daily mean (line)"
    } else {
        "every reading"
    };
    format!(
        "{}: {} readings, {shown}; yellow and red bands are the alert thresholds, vertical lines the alerts.",
        s.display, s.summary.count
    )
}

fn section<'a>(r: &Report, i: usize, p: &'a PatientReport) -> Result<Section<'a>, Error> {
    // The period is the report's; the patient's own dates and hours are in their zone.
    let period_tz = zone(&r.time_zone);
    let tz = zone(&p.time_zone);
    let day = |d: &str, hour| {
        d.parse::<healthanalyzer_model::jiff::civil::Date>()
            .ok()
            .and_then(|d| d.at(hour, 0, 0, 0).to_zoned(period_tz.clone()).ok())
            .map(|z| z.timestamp().as_millisecond() as f64 / 1000.0)
            .unwrap_or(0.0)
    };
    let (from, to) = (day(&r.from, 0), day(&r.to, 23) + 3600.0);
    let mut charts = Vec::with_capacity(p.series.len());
    for s in &p.series {
        let alerts: Vec<&AlertEntry> = p.alerts.iter().filter(|a| a.kind == s.kind).collect();
        charts.push(Chart {
            title: format!("{} ({})", s.display, s.unit),
            caption: caption(s),
            svg: chart::series_chart(s, &alerts, from, to, &tz)?,
        });
    }
    let agp = match &p.glucose {
        Some(g) if !g.profile.is_empty() => Some(chart::agp_chart(g)?),
        _ => None,
    };
    Ok(Section {
        p,
        anchor: format!("patient-{i}"),
        charts,
        agp,
    })
}

/// The zone a report names (an IANA name, or an offset); UTC if it names none this build
/// knows.
fn zone(name: &str) -> TimeZone {
    if let Ok(tz) = TimeZone::get(name) {
        return tz;
    }
    // A fixed offset, as the report writes one (`+01:00`): read via a timestamp.
    format!("2000-01-01T00:00:00{name}")
        .parse::<healthanalyzer_model::jiff::Zoned>()
        .map(|z| TimeZone::fixed(z.offset()))
        .unwrap_or(TimeZone::UTC)
}

fn render_err(e: askama::Error) -> Error {
    Error::Template(e.to_string())
}

/// The whole report as one self-contained HTML page: the overview, then every patient's
/// section with charts.
pub(crate) fn page(r: &Report) -> Result<String, Error> {
    let sections = r
        .patients
        .iter()
        .enumerate()
        .map(|(i, p)| section(r, i, p))
        .collect::<Result<Vec<_>, _>>()?;
    Page {
        r,
        overview: true,
        rows: rows(r, &|i, _| format!("#patient-{i}")),
        sections,
    }
    .render()
    .map_err(render_err)
}

/// The overview alone (no patient sections), each row linking to `href(index, patient)`.
pub(crate) fn overview(
    r: &Report,
    href: &dyn Fn(usize, &PatientReport) -> String,
) -> Result<String, Error> {
    Page {
        r,
        overview: true,
        rows: rows(r, href),
        sections: Vec::new(),
    }
    .render()
    .map_err(render_err)
}

/// One patient's section as a page of its own; `None` if the report has no such patient.
pub(crate) fn patient(r: &Report, subject: &str) -> Result<Option<String>, Error> {
    let Some((i, p)) = r
        .patients
        .iter()
        .enumerate()
        .find(|(_, p)| p.subject == subject)
    else {
        return Ok(None);
    };
    Page {
        r,
        overview: false,
        rows: Vec::new(),
        sections: vec![section(r, i, p)?],
    }
    .render()
    .map(Some)
    .map_err(render_err)
}

/// The report as Markdown.
pub(crate) fn markdown(r: &Report) -> Result<String, Error> {
    Markdown {
        r,
        rows: rows(r, &|i, _| format!("#patient-{i}")),
    }
    .render()
    .map_err(render_err)
}

/// A timestamp shown as local `YYYY-MM-DD HH:MM` (the report's strings carry the offset).
pub(crate) fn short_time(at: &str) -> String {
    match at.parse::<Timestamp>() {
        Ok(_) if at.len() >= 16 => at[..16].replace('T', " "),
        _ => at.to_string(),
    }
}
