//! [`Report::build`]: measurements analysed into the report document, and its helpers.

use std::collections::{BTreeMap, BTreeSet};

use healthanalyzer_analysis::{
    self as analysis, Alert, Point, RuleSet, SeriesKey, Summary, subject_key,
};
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_model::jiff::{SignedDuration, Timestamp};
use healthanalyzer_model::{Catalog, Measurement, Subject};

use crate::Error;
use crate::document::{
    AlertEntry, BloodPressureReport, DIARY_DAYS, DayEntry, DiaryDay, GlucoseReport, GlucoseUnit,
    MAX_RAW_POINTS, Options, PatientReport, PointEntry, PressureEntry, ProfileHour, Report, SCHEMA,
    SeriesReport, Status, SummaryEntry, ThresholdEntry, Totals, TrendEntry,
};

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

pub(crate) fn name(subject: &Subject) -> Option<String> {
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
        let all = analysis::series(measurements, catalog);
        let period = Period::new(options, latest_reading(&all, options.now))?;
        let glucose_unit = options
            .glucose_unit
            .unwrap_or_else(|| GlucoseCount::of(measurements, catalog).unit());
        let names: BTreeMap<String, String> = subjects
            .iter()
            .filter_map(|s| Some((subject_key(&s.id), name(s)?)))
            .collect();
        let mut builder = Builder::new(catalog, rules, options, period, glucose_unit);
        builder.add(&all, &names);
        Ok(builder.finish())
    }
}

/// The period a report covers, from its first instant (excluded) to its last.
pub(crate) struct Period {
    start: Timestamp,
    end: Timestamp,
    note: Option<String>,
}

impl Period {
    /// The period of `options`: `days` up to "now", or, when [`Options::follow_data`] and no
    /// reading falls in those days, up to `latest`, the latest reading at or before "now" of
    /// every series reported on ([`latest_reading`]).
    ///
    /// # Errors
    /// [`Error::Options`] when the period does not fit the calendar.
    pub(crate) fn new(options: &Options, latest: Option<Timestamp>) -> Result<Period, Error> {
        let (tz, now) = (&options.time_zone, options.now);
        let period = |end: Timestamp| {
            end.checked_sub(SignedDuration::from_hours(24 * i64::from(options.days)))
                .map_err(|e| Error::Options(format!("a period of {} days: {e}", options.days)))
        };
        let mut start = period(now)?;
        let mut end = now;
        let mut note = None;
        // A reading falls in the period exactly when the latest one up to "now" does.
        if options.follow_data
            && let Some(latest) = latest.filter(|&l| l <= start)
        {
            end = latest;
            start = period(end)?;
            note = Some(format!(
                "No reading in the {} days before {}: the period ends at the latest reading, {}.",
                options.days,
                now.to_zoned(tz.clone()).date(),
                local(latest, tz)
            ));
        }
        Ok(Period { start, end, note })
    }
}

/// The latest reading of `all` at or before `now`.
pub(crate) fn latest_reading(
    all: &BTreeMap<SeriesKey, Vec<Point>>,
    now: Timestamp,
) -> Option<Timestamp> {
    all.values()
        .filter_map(|p| p[..p.partition_point(|p| p.at <= now)].last())
        .map(|p| p.at)
        .max()
}

/// Glucose readings by the unit they came in.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GlucoseCount {
    mmol: usize,
    mg: usize,
}

impl GlucoseCount {
    /// The glucose readings of `measurements`, counted by their original unit.
    pub(crate) fn of(measurements: &[Measurement], catalog: &Catalog) -> GlucoseCount {
        let mut count = GlucoseCount::default();
        count.add(measurements, catalog);
        count
    }

    /// Counts the glucose readings of `measurements` too.
    pub(crate) fn add(&mut self, measurements: &[Measurement], catalog: &Catalog) {
        for m in measurements.iter().filter(|m| is_glucose(m.kind.as_str())) {
            if let healthanalyzer_model::Value::Quantity(o) = &m.value {
                let unit = o.original.as_ref().unwrap_or(&o.quantity).unit.as_str();
                let spec = catalog.kind(m.kind.as_str()).and_then(|k| k.value.as_ref());
                match spec.and_then(|s| s.unit_def(unit)).map(|d| d.code.as_str()) {
                    Some("mg/dL") => self.mg += 1,
                    Some("mmol/L") => self.mmol += 1,
                    _ => {}
                }
            }
        }
    }

    /// The unit most glucose readings came in; mmol/L when none says.
    pub(crate) fn unit(self) -> GlucoseUnit {
        if self.mg > self.mmol {
            GlucoseUnit::MgDl
        } else {
            GlucoseUnit::MmolL
        }
    }
}

/// Builds the patients' sections, a set of patients at a time, and then the report.
pub(crate) struct Builder<'a> {
    catalog: &'a Catalog,
    rules: &'a RuleSet,
    options: &'a Options,
    period: Period,
    glucose_unit: GlucoseUnit,
    patients: Vec<PatientReport>,
    readings: usize,
}

impl<'a> Builder<'a> {
    /// A report over `period`, with glucose in `glucose_unit`.
    pub(crate) fn new(
        catalog: &'a Catalog,
        rules: &'a RuleSet,
        options: &'a Options,
        period: Period,
        glucose_unit: GlucoseUnit,
    ) -> Builder<'a> {
        Builder {
            catalog,
            rules,
            options,
            period,
            glucose_unit,
            patients: Vec::new(),
            readings: 0,
        }
    }

    /// Adds the patients of `all`, which holds every series of each of them (alerts are
    /// evaluated on it); `names` gives names by `system|value` key. A patient must come in one
    /// call only.
    pub(crate) fn add(
        &mut self,
        all: &BTreeMap<SeriesKey, Vec<Point>>,
        names: &BTreeMap<String, String>,
    ) {
        let (catalog, rules, options) = (self.catalog, self.rules, self.options);
        let tz = &options.time_zone;
        let now = options.now;
        let (start, end) = (self.period.start, self.period.end);
        let glucose_unit = self.glucose_unit;
        let zone_of = |subject: &str| options.patient_zones.get(subject).unwrap_or(tz).clone();
        let alerts = rules.evaluate_in(all, now, &options.acks, &zone_of);

        let mut by_subject: BTreeMap<String, PatientBuilder<'_>> = BTreeMap::new();
        for (key, points) in all {
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

        self.patients.reserve(by_subject.len());
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
                self.readings += points.len();
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
            self.patients.push(PatientReport {
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
    }

    /// The report of every patient added: most urgent first, with the totals.
    pub(crate) fn finish(self) -> Report {
        let Builder {
            options,
            period,
            mut patients,
            readings,
            ..
        } = self;
        let tz = &options.time_zone;
        let now = options.now;
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
        Report {
            schema: SCHEMA.into(),
            title: options.title.clone(),
            generated_at: now.to_string(),
            time_zone: zone_name(tz, now),
            from: date(period.start),
            to: date(period.end),
            period_note: period.note,
            totals,
            patients,
        }
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
