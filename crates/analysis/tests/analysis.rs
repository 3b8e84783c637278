//! Analysis against hand-computed examples, the simulator's scenarios, DST days and properties.

use healthanalyzer_analysis::{
    Ack, DEMO_RULES, Point, RuleSet, Severity, Summary, adherence, daily, glucose, home_bp, series,
    trend, weekly,
};
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_model::jiff::{SignedDuration, Timestamp, civil};
use healthanalyzer_model::{Catalog, Measurement, MeasurementId, Value, parse_decimal};
use healthanalyzer_source::{Cursor, testkit};
use healthanalyzer_source_sim::{SimConfig, SimSource};
use proptest::prelude::*;

fn cph() -> TimeZone {
    TimeZone::get("Europe/Copenhagen").expect("tz")
}

fn point(at: &str, value: f64) -> Point {
    Point {
        at: at.parse().expect("time"),
        value,
        id: MeasurementId::from_source("t", at),
    }
}

#[test]
fn glucose_statistics_match_a_worked_example() {
    // Ten readings over two days; by hand:
    // very low (<54): 40 -> 10 %; low (54-69): 60, 54 -> 20 %; in range (70-180): 100, 150,
    // 180, 70 -> 40 %; high (181-250): 200, 250 -> 20 %; very high (>250): 300 -> 10 %.
    // mean = 1404 / 10 = 140.4; GMI = 3.31 + 0.02392 x 140.4 = 6.668368;
    // sum of squared deviations = 73294.4, SD = sqrt(73294.4 / 9) = 90.24312…;
    // CV = 100 x SD / mean = 64.2757… %.
    let values = [
        40.0, 60.0, 100.0, 150.0, 200.0, 300.0, 180.0, 70.0, 54.0, 250.0,
    ];
    let points: Vec<Point> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            // 22:30 UTC is 23:30 in Copenhagen (winter): still the same local day; the last
            // five fall on the next UTC day and the next local day.
            let day = if i < 5 { 1 } else { 2 };
            point(&format!("2024-01-0{day}T{:02}:30:00Z", 18 + i % 5), *v)
        })
        .collect();
    let g = glucose(&points, &cph()).expect("stats");
    assert_eq!(g.readings, 10);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    assert!(close(g.very_low, 10.0) && close(g.low, 20.0) && close(g.in_range, 40.0));
    assert!(close(g.high, 20.0) && close(g.very_high, 10.0));
    assert!(close(g.mean, 140.4));
    assert!(close(g.gmi, 6.668368));
    assert!((g.cv - 64.2757).abs() < 1e-3, "{}", g.cv);
    assert_eq!(g.days_with_data, 2);
}

#[test]
fn a_dst_day_keeps_every_reading_on_its_local_date() {
    // 2024-03-31 in Copenhagen has 23 hours: 00:30 local is 23:30 UTC the day before, 23:30
    // local is 21:30 UTC.
    let points = [
        point("2024-03-30T23:30:00Z", 1.0),
        point("2024-03-31T21:30:00Z", 3.0),
        point("2024-03-31T22:30:00Z", 10.0), // 00:30 on 1 April
    ];
    let days = daily(&points, &cph());
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].date, civil::date(2024, 3, 31));
    assert_eq!(days[0].summary.count, 2);
    assert_eq!(days[0].summary.mean, 2.0);
    assert_eq!(days[1].date, civil::date(2024, 4, 1));
    // 31 March is a Sunday (ISO week 13), 1 April a Monday (week 14).
    let weeks = weekly(&points, &cph());
    assert_eq!(
        weeks
            .iter()
            .map(|w| (w.week, w.summary.count))
            .collect::<Vec<_>>(),
        [(13, 2), (14, 1)]
    );
    // The autumn change: 27 October 2024 has 25 hours.
    let autumn = [
        point("2024-10-26T22:30:00Z", 1.0), // 00:30 CEST on the 27th
        point("2024-10-27T22:30:00Z", 2.0), // 23:30 CET on the 27th
    ];
    let days = daily(&autumn, &cph());
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].date, civil::date(2024, 10, 27));
}

#[test]
fn summaries_percentiles_and_trends() {
    let s = Summary::of([4.0, 1.0, 3.0, 2.0, f64::NAN, f64::INFINITY]).expect("summary");
    assert_eq!(
        (s.count, s.min, s.max, s.mean, s.median),
        (4, 1.0, 4.0, 2.5, 2.5)
    );
    assert!((s.sd - 1.2909944).abs() < 1e-6);
    assert_eq!((s.p25, s.p75), (1.75, 3.25));
    assert!(Summary::of([]).is_none());
    // One kilogram a week, over 30 days.
    let end: Timestamp = "2024-02-01T00:00:00Z".parse().expect("t");
    let points: Vec<Point> = (0..30)
        .map(|d| Point {
            at: end - SignedDuration::from_hours(24 * (29 - d)),
            value: 80.0 + d as f64 / 7.0,
            id: MeasurementId::from_source("t", &d.to_string()),
        })
        .collect();
    let t = trend(&points, end, 30).expect("trend");
    assert!((t.slope_per_week - 1.0).abs() < 1e-9);
    assert_eq!(t.points, 30);
    assert_eq!(trend(&points, end, 7).expect("week").points, 7);
    assert!(trend(&points[..1], end, 30).is_none());
}

fn bp(at: &str, sys: i64, dia: i64) -> Measurement {
    Measurement::new(
        healthanalyzer_model::Provenance::new("t", at),
        healthanalyzer_model::Identifier::local("p1"),
        "blood-pressure",
        Value::blood_pressure(sys.into(), dia.into()),
        healthanalyzer_model::DateTime::parse(at).expect("time"),
    )
}

#[test]
fn home_blood_pressure_averages_mornings_and_evenings() {
    let data = [
        bp("2024-05-01T07:00:00+02:00", 140, 90),
        bp("2024-05-01T21:00:00+02:00", 130, 80),
        bp("2024-05-02T07:10:00+02:00", 136, 88),
        bp("2024-05-02T21:00:00+02:00", 126, 78),
    ];
    let s = series(&data, Catalog::builtin());
    let key = |c: &str| {
        s.iter()
            .find(|(k, _)| k.component.as_deref() == Some(c))
            .map(|(_, v)| v.clone())
            .expect("series")
    };
    let h = home_bp(&key("systolic"), &key("diastolic"), &cph()).expect("home bp");
    let m = h.morning.expect("morning");
    let e = h.evening.expect("evening");
    assert_eq!((m.systolic, m.diastolic, m.readings), (138.0, 89.0, 2));
    assert_eq!((e.systolic, e.diastolic), (128.0, 79.0));
    assert_eq!((h.overall.systolic, h.days), (133.0, 2));
    let a = adherence(
        &key("systolic"),
        &cph(),
        2,
        civil::date(2024, 5, 1),
        civil::date(2024, 5, 3),
    );
    assert_eq!((a.expected, a.taken), (6, 4));
    assert_eq!(a.days_short, vec![civil::date(2024, 5, 3)]);
}

/// A lone component reading: a systolic or a diastolic pressure sent on its own.
fn lone(at: &str, component: &str, v: i64) -> Measurement {
    Measurement::new(
        healthanalyzer_model::Provenance::new("t", format!("{at}-{component}")),
        healthanalyzer_model::Identifier::local("p1"),
        "blood-pressure",
        Value::Components(vec![healthanalyzer_model::Component {
            id: healthanalyzer_model::ComponentId::new(component),
            value: healthanalyzer_model::ComponentValue::Quantity(
                healthanalyzer_model::Quantity::new(v.into(), "mm[Hg]").into(),
            ),
        }]),
        healthanalyzer_model::DateTime::parse(at).expect("time"),
    )
}

#[test]
fn lone_systolic_and_diastolic_readings_pair_up_by_time() {
    let data = [
        lone("2024-05-01T07:00:00+02:00", "systolic", 140),
        lone("2024-05-01T07:00:00+02:00", "diastolic", 90),
        lone("2024-05-01T21:00:00+02:00", "systolic", 130),
        lone("2024-05-01T21:00:00+02:00", "diastolic", 80),
        // A systolic reading without its diastolic one is in the systolic series only.
        lone("2024-05-02T07:00:00+02:00", "systolic", 150),
    ];
    let s = series(&data, Catalog::builtin());
    let key = |c: &str| {
        s.iter()
            .find(|(k, _)| k.component.as_deref() == Some(c))
            .map(|(_, v)| v.clone())
            .expect("series")
    };
    assert_eq!(key("systolic").len(), 3);
    assert_eq!(key("diastolic").len(), 2);
    let h = home_bp(&key("systolic"), &key("diastolic"), &cph()).expect("home bp");
    assert_eq!(
        (h.overall.systolic, h.overall.diastolic, h.overall.readings),
        (135.0, 85.0, 2)
    );
}

const RULES: &str = r#"
[[threshold]]
kind = "oxygen-saturation"
red_low = 88
yellow_low = 92

[[threshold]]
kind = "blood-pressure.systolic"
red_high = 180
yellow_high = 150

[[delta]]
name = "weight gain"
kind = "body-weight"
rise = 2.0
within_days = 3
severity = "red"

[[stale]]
name = "no blood pressure"
kind = "blood-pressure.systolic"
days = 3
severity = "yellow"
"#;

async fn simulated(days: u32) -> Vec<Measurement> {
    let sim = SimSource::new(SimConfig {
        patients: 6,
        days,
        seed: 5,
        ..SimConfig::default()
    })
    .expect("sim");
    testkit::pull_all(&sim, &Cursor::start(), 10_000)
        .await
        .into_iter()
        .flat_map(|b| b.measurements)
        .collect()
}

#[tokio::test]
async fn the_simulated_patients_raise_the_right_alerts() {
    let rules = RuleSet::from_toml(RULES).expect("rules");
    let data = simulated(20).await;
    let s = series(&data, Catalog::builtin());
    let who = |a: &healthanalyzer_analysis::Alert| {
        a.subject.value.rsplit('-').next().unwrap_or("").to_string()
    };
    // The end of the period (20 days from 1 January, UTC+1).
    let end: Timestamp = "2024-01-21T12:00:00+01:00".parse().expect("t");
    let alerts = rules.evaluate(&s, end, &[]);
    let summary: Vec<(String, String, Severity)> = alerts
        .iter()
        .map(|a| (who(a), a.rule.clone(), a.severity))
        .collect();
    // Patient 1 (heart failure) gained weight; patient 5 (lapsed) stopped measuring.
    assert!(
        summary.contains(&("1".into(), "weight gain".into(), Severity::Red)),
        "{summary:?}"
    );
    assert!(
        summary.contains(&("5".into(), "no blood pressure".into(), Severity::Yellow)),
        "{summary:?}"
    );
    assert!(
        !summary
            .iter()
            .any(|(p, r, _)| p == "0" && r == "weight gain"),
        "{summary:?}"
    );
    // Red first.
    assert_eq!(alerts[0].severity, Severity::Red);
    // Mid-way, during the exacerbation, patient 2 (COPD) is red on SpO2; before it, not.
    let dip: Timestamp = "2024-01-12T21:00:00+01:00".parse().expect("t");
    let at_dip = rules.evaluate(&s, dip, &[]);
    assert!(
        at_dip.iter().any(|a| who(a) == "2"
            && a.rule == "threshold:oxygen-saturation"
            && a.severity == Severity::Red),
        "{at_dip:?}"
    );
    let before: Timestamp = "2024-01-08T21:00:00+01:00".parse().expect("t");
    assert!(
        !rules
            .evaluate(&s, before, &[])
            .iter()
            .any(|a| a.rule == "threshold:oxygen-saturation")
    );

    // Acknowledged: gone until it triggers again; snoozed: gone until then.
    let hf = alerts.iter().find(|a| who(a) == "1").expect("alert");
    let ack = Ack {
        rule: hf.rule.clone(),
        subject: healthanalyzer_analysis::subject_key(&hf.subject),
        at: hf.at,
        until: None,
    };
    let after = rules.evaluate(&s, end, std::slice::from_ref(&ack));
    assert!(
        !after
            .iter()
            .any(|a| who(a) == "1" && a.rule == "weight gain")
    );
    let snooze = Ack {
        at: "2000-01-01T00:00:00Z".parse().expect("t"),
        until: Some(end + SignedDuration::from_hours(1)),
        ..ack
    };
    assert!(
        !rules
            .evaluate(&s, end, std::slice::from_ref(&snooze))
            .iter()
            .any(|a| who(a) == "1" && a.rule == "weight gain")
    );
    let later = end + SignedDuration::from_hours(2);
    assert!(
        rules
            .evaluate(&s, later, &[snooze])
            .iter()
            .any(|a| who(a) == "1" && a.rule == "weight gain")
    );
}

#[test]
fn patient_and_group_thresholds_win_over_everyone_s() {
    let rules = RuleSet::from_toml(
        r#"
        [[threshold]]
        kind = "oxygen-saturation"
        red_low = 88
        [[group]]
        name = "copd"
        members = ["urn:x|a", "urn:x|b"]
        [[group.threshold]]
        kind = "oxygen-saturation"
        red_low = 85
        [[patient]]
        subject = "urn:x|b"
        [[patient.threshold]]
        kind = "oxygen-saturation"
        red_low = 80
        "#,
    )
    .expect("rules");
    let limit = |s: &str| {
        rules
            .threshold_for(s, "oxygen-saturation")
            .and_then(|t| t.red_low)
    };
    assert_eq!(limit("urn:x|c"), Some(88.0));
    assert_eq!(limit("urn:x|a"), Some(85.0));
    assert_eq!(limit("urn:x|b"), Some(80.0));
}

#[test]
fn rules_with_a_misspelt_key_or_no_change_are_refused() {
    let e = RuleSet::from_toml("[[threshold]]\nkind = \"heart-rate\"\nyelow_low = 40\n")
        .expect_err("typo");
    assert!(e.to_string().contains("yelow_low"), "{e}");
    let e = RuleSet::from_toml(
        "[[delta]]\nname = \"x\"\nkind = \"body-weight\"\nwithin_days = 3\nseverity = \"red\"\n",
    )
    .expect_err("no rise or fall");
    assert!(e.to_string().contains("`rise` or `fall`"), "{e}");
}

fn points_strategy() -> impl Strategy<Value = Vec<Point>> {
    prop::collection::vec((0i64..2_000_000, 20.0f64..400.0), 0..200).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (s, value))| Point {
                at: Timestamp::from_second(1_700_000_000 + s * 60).unwrap_or(Timestamp::UNIX_EPOCH),
                value,
                id: MeasurementId::from_source("p", &i.to_string()),
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn time_in_ranges_sums_to_100(points in points_strategy()) {
        if let Some(g) = glucose(&points, &TimeZone::UTC) {
            let sum = g.very_low + g.low + g.in_range + g.high + g.very_high;
            prop_assert!((sum - 100.0).abs() < 1e-9, "{sum}");
            prop_assert!([g.very_low, g.low, g.in_range, g.high, g.very_high].iter().all(|p| *p >= -1e-9));
        }
    }

    #[test]
    fn the_mean_lies_between_min_and_max(values in prop::collection::vec(prop::num::f64::ANY, 0..100)) {
        // Any floats, NaN and infinities included: no panic, and a sane summary.
        if let Some(s) = Summary::of(values) {
            prop_assert!(s.min <= s.mean && s.mean <= s.max, "{s:?}");
            prop_assert!(s.min <= s.median && s.median <= s.max);
        }
    }

    #[test]
    fn a_point_outside_a_window_changes_nothing_in_it(points in points_strategy(), extra_value in 0.0f64..500.0) {
        let end = Timestamp::from_second(1_700_000_000 + 1_000_000 * 60).unwrap_or(Timestamp::UNIX_EPOCH);
        let before = trend(&points, end, 30);
        let mut more = points.clone();
        // After the window's end, and long before its start.
        more.push(Point { at: end + SignedDuration::from_hours(1), value: extra_value, id: MeasurementId::from_source("x", "1") });
        more.push(Point { at: end - SignedDuration::from_hours(24 * 365), value: extra_value, id: MeasurementId::from_source("x", "2") });
        prop_assert_eq!(trend(&more, end, 30), before);
        // A day's summary ignores points of other days.
        let extra_days: Vec<_> = more[points.len()..]
            .iter()
            .map(|p| p.at.to_zoned(TimeZone::UTC).date())
            .collect();
        let days_more = daily(&more, &TimeZone::UTC);
        for d in daily(&points, &TimeZone::UTC) {
            if extra_days.contains(&d.date) {
                continue;
            }
            let m = days_more.iter().find(|m| m.date == d.date);
            prop_assert_eq!(m.map(|m| &m.summary), Some(&d.summary));
        }
    }
}

#[test]
fn measurements_become_series_in_canonical_units() {
    let lb = Measurement::new(
        healthanalyzer_model::Provenance::new("t", "w"),
        healthanalyzer_model::Identifier::local("p1"),
        "body-weight",
        Value::quantity(parse_decimal("185").expect("n"), "[lb_av]"),
        healthanalyzer_model::DateTime::parse("2024-05-01T07:00:00+02:00").expect("t"),
    );
    let s = series(&[lb], Catalog::builtin());
    let (_, points) = s.iter().next().expect("series");
    // 185 lb is 83.91 kg at the precision the source recorded (ADR 0004).
    assert!(
        (points[0].value - 83.91).abs() < 1e-9,
        "{}",
        points[0].value
    );
}

#[test]
fn glucose_thresholds_may_be_written_in_mmol_per_litre() {
    let rules = RuleSet::from_toml(
        r#"
[[threshold]]
kind = "capillary-glucose"
unit = "mmol/L"
red_high = 15
yellow_high = 10.0
yellow_low = 3.9
"#,
    )
    .expect("rules");
    let t = &rules.thresholds[0];
    assert_eq!(t.unit, None, "converted");
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 0.2);
    assert!(close(t.red_high, 270.2), "{t:?}");
    assert!(close(t.yellow_high, 180.2), "{t:?}");
    assert!(close(t.yellow_low, 70.3), "{t:?}");
    let mg = RuleSet::from_toml("[[threshold]]\nkind = \"capillary-glucose\"\nyellow_high = 180\n")
        .expect("rules");
    assert_eq!(mg.thresholds[0].yellow_high, Some(180.0));
    let bad = RuleSet::from_toml(
        "[[threshold]]\nkind = \"capillary-glucose\"\nunit = \"kg\"\nyellow_high = 1\n",
    );
    assert!(bad.is_err());
}

#[test]
fn a_trend_needs_readings_over_half_its_window() {
    let end: Timestamp = "2024-02-01T00:00:00Z".parse().expect("t");
    // Three days of readings, rising fast.
    let points: Vec<Point> = (0..6)
        .map(|i| Point {
            at: end - SignedDuration::from_hours(12 * (5 - i)),
            value: 120.0 + 10.0 * i as f64,
            id: MeasurementId::from_source("t", &i.to_string()),
        })
        .collect();
    assert!(
        trend(&points, end, 30).is_none(),
        "30 days from 2.5 days of data"
    );
    assert!(trend(&points, end, 7).is_none(), "7 days from 2.5 days");
    assert!(trend(&points, end, 4).is_some(), "4 days from 2.5 days");
}

#[test]
fn the_demo_rules_parse_with_their_thresholds() {
    let rules = RuleSet::demo();
    assert_eq!(RuleSet::from_toml(DEMO_RULES).expect("DEMO_RULES"), rules);
    let limits = |label: &str| {
        let t = rules
            .threshold_for("anyone", label)
            .unwrap_or_else(|| panic!("a threshold for {label}"));
        (t.red_low, t.yellow_low, t.yellow_high, t.red_high)
    };
    assert_eq!(
        limits("oxygen-saturation"),
        (Some(88.0), Some(92.0), None, None)
    );
    assert_eq!(
        limits("blood-pressure.systolic"),
        (None, None, Some(150.0), Some(180.0))
    );
    assert_eq!(
        limits("capillary-glucose"),
        (Some(54.0), Some(70.0), Some(250.0), Some(400.0))
    );
    assert_eq!(rules.thresholds.len(), 3);
    assert_eq!(rules.deltas.len(), 1);
    let d = &rules.deltas[0];
    assert_eq!(
        (
            d.name.as_str(),
            d.kind.as_str(),
            d.rise,
            d.fall,
            d.within_days,
            d.severity
        ),
        (
            "weight gain",
            "body-weight",
            Some(2.0),
            None,
            3.0,
            Severity::Red
        )
    );
    assert_eq!(rules.stale.len(), 1);
    let s = &rules.stale[0];
    assert_eq!(
        (s.name.as_str(), s.kind.as_str(), s.days, s.severity),
        (
            "no blood pressure",
            "blood-pressure.systolic",
            3.0,
            Severity::Yellow
        )
    );
}
