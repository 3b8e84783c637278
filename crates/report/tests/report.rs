//! The report: built from simulated patients, rendered as HTML, Markdown and JSON.

use healthanalyzer_analysis::RuleSet;
use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_model::{
    Catalog, DateTime, HumanName, Identifier, Measurement, Provenance, Subject, Value,
    parse_decimal,
};
use healthanalyzer_report::{Options, Report, SCHEMA, Status};
use healthanalyzer_source::{Cursor, testkit};
use healthanalyzer_source_sim::{SimConfig, SimSource};
use proptest::prelude::*;

const RULES: &str = r#"
[[threshold]]
kind = "oxygen-saturation"
red_low = 88
yellow_low = 92
[[threshold]]
kind = "blood-pressure.systolic"
red_high = 180
yellow_high = 150
[[threshold]]
kind = "capillary-glucose"
red_low = 54
yellow_low = 70
yellow_high = 250
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

fn copenhagen() -> TimeZone {
    TimeZone::get("Europe/Copenhagen").expect("tzdb")
}

fn sim_report(data: &[Measurement], now: &str) -> Report {
    let rules = RuleSet::from_toml(RULES).expect("rules");
    let now: Timestamp = now.parse().expect("now");
    let mut options = Options::new(now, copenhagen());
    options.days = 30;
    Report::build(data, &[], Catalog::builtin(), &rules, &options).expect("report")
}

/// The patient number of a simulated subject (`sim-5-1` is 1).
fn n(subject: &str) -> &str {
    subject.rsplit('-').next().unwrap_or("")
}

#[tokio::test]
async fn patients_come_most_urgent_first_with_the_right_alerts() {
    let data = simulated(20).await;
    let r = sim_report(&data, "2024-01-21T12:00:00+01:00");
    assert_eq!(r.schema, SCHEMA);
    assert_eq!(r.totals.patients, 6);
    assert_eq!(r.totals.red + r.totals.yellow + r.totals.ok, 6);
    let statuses: Vec<Status> = r.patients.iter().map(|p| p.status).collect();
    let mut sorted = statuses.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(statuses, sorted, "most urgent first");

    // The heart-failure patient (1) is red for weight gain, the lapsed one (5) yellow.
    let hf = r.patients.iter().find(|p| n(&p.subject) == "1").expect("1");
    assert_eq!(hf.status, Status::Red);
    assert!(hf.alerts.iter().any(|a| a.rule == "weight gain"), "{hf:?}");
    let lapsed = r.patients.iter().find(|p| n(&p.subject) == "5").expect("5");
    assert_eq!(lapsed.status, Status::Yellow);
    assert_eq!(lapsed.alerts[0].rule, "no blood pressure");
    // The lapsed patient stopped after 10 days; their last reading is that old.
    assert!(
        lapsed.last_reading.as_deref() < Some("2024-01-11"),
        "{:?}",
        lapsed.last_reading
    );
    // A steady patient (0) has no alert.
    let steady = r.patients.iter().find(|p| n(&p.subject) == "0").expect("0");
    assert_eq!(steady.status, Status::Ok);
    assert_eq!(r.patients.last().map(|p| p.status), Some(Status::Ok));

    // Mid-way the COPD patient (2) is red on SpO2, and on top.
    let dip = sim_report(&data, "2024-01-12T21:00:00+01:00");
    let copd = &dip.patients[0];
    assert_eq!(n(&copd.subject), "2", "{:?}", dip.patients[0]);
    assert!(
        copd.alerts
            .iter()
            .any(|a| a.rule == "threshold:oxygen-saturation" && a.severity == Status::Red)
    );
}

#[tokio::test]
async fn each_patient_has_series_glucose_and_blood_pressure_where_measured() {
    let data = simulated(20).await;
    let r = sim_report(&data, "2024-01-21T12:00:00+01:00");
    let diabetes = r.patients.iter().find(|p| n(&p.subject) == "3").expect("3");
    let g = diabetes.glucose.as_ref().expect("glucose");
    // Four readings a day for 20 days.
    assert_eq!(g.readings, 80);
    assert_eq!(g.days_with_data, 20);
    let sum = g.very_low + g.low + g.in_range + g.high + g.very_high;
    assert!((sum - 100.0).abs() < 1e-9, "{sum}");
    // The profile holds every reading once, by local hour, each percentile band ordered;
    // after breakfast (09:00) is higher than before it (07:00).
    assert_eq!(g.profile.iter().map(|h| h.readings).sum::<usize>(), 80);
    for h in &g.profile {
        assert!(h.p5 <= h.p25 && h.p25 <= h.p50 && h.p50 <= h.p75 && h.p75 <= h.p95);
    }
    let median = |hour| g.profile.iter().find(|h| h.hour == hour).map(|h| h.p50);
    assert!(median(9) > median(7), "{:?}", g.profile);
    assert!(diabetes.blood_pressure.is_none());

    let steady = r.patients.iter().find(|p| n(&p.subject) == "0").expect("0");
    let bp = steady.blood_pressure.as_ref().expect("bp");
    assert_eq!(bp.days, 20);
    assert_eq!(bp.diary.len(), healthanalyzer_report::DIARY_DAYS);
    assert_eq!(bp.diary.last().map(|d| d.date.as_str()), Some("2024-01-20"));
    let morning = bp.morning.as_ref().expect("morning");
    let evening = bp.evening.as_ref().expect("evening");
    // The simulator's rhythm: higher in the morning.
    assert!(morning.systolic > evening.systolic);
    assert_eq!(morning.readings + evening.readings, bp.overall.readings);
    let kinds: Vec<&str> = steady.series.iter().map(|s| s.kind.as_str()).collect();
    assert!(kinds.contains(&"blood-pressure.systolic") && kinds.contains(&"body-weight"));
    let sys = steady
        .series
        .iter()
        .find(|s| s.kind == "blood-pressure.systolic")
        .expect("systolic");
    assert_eq!(sys.unit, "mm[Hg]");
    assert_eq!(sys.summary.count, 40);
    assert_eq!(sys.points.len(), 40);
    assert_eq!(sys.daily.len(), 20);
    assert_eq!(
        sys.threshold.as_ref().and_then(|t| t.yellow_high),
        Some(150.0)
    );
    assert!(sys.summary.min <= sys.summary.mean && sys.summary.mean <= sys.summary.max);
}

#[tokio::test]
async fn a_long_series_is_charted_from_daily_aggregates() {
    // 200 days of four glucose readings a day: 800 readings, over MAX_RAW_POINTS.
    let data = simulated(200).await;
    let r = sim_report(&data, "2024-07-19T12:00:00+02:00");
    let diabetes = r.patients.iter().find(|p| n(&p.subject) == "3").expect("3");
    let glucose = |p: &healthanalyzer_report::PatientReport| {
        p.series
            .iter()
            .find(|s| s.kind == "capillary-glucose")
            .cloned()
            .expect("glucose series")
    };
    let s = glucose(diabetes);
    // The period is 30 days: about 120 readings (the first day's start is cut off at
    // noon), every one kept.
    assert!(
        (116..=120).contains(&s.summary.count),
        "{}",
        s.summary.count
    );
    assert_eq!(s.points.len(), s.summary.count);
    let rules = RuleSet::from_toml(RULES).expect("rules");
    let mut options = Options::new(
        "2024-07-19T12:00:00+02:00".parse().expect("t"),
        copenhagen(),
    );
    options.days = 200;
    let long = Report::build(&data, &[], Catalog::builtin(), &rules, &options).expect("report");
    let diabetes = long
        .patients
        .iter()
        .find(|p| n(&p.subject) == "3")
        .expect("3");
    let s = glucose(diabetes);
    assert!(s.summary.count > healthanalyzer_report::MAX_RAW_POINTS);
    assert!(s.points.is_empty());
    assert!(s.daily.len() >= 199, "{}", s.daily.len());
    // It still charts: band and mean line.
    let html = long.to_html().expect("html");
    assert!(html.contains("daily range (band) and daily mean (line)"));
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[tokio::test]
async fn the_html_is_self_contained_with_a_chart_per_series() {
    let data = simulated(20).await;
    let r = sim_report(&data, "2024-01-21T12:00:00+01:00");
    let html = r.to_html().expect("html");
    let series: usize = r.patients.iter().map(|p| p.series.len()).sum();
    let agp = r
        .patients
        .iter()
        .filter(|p| p.glucose.as_ref().is_some_and(|g| !g.profile.is_empty()))
        .count();
    assert_eq!(agp, 1);
    assert_eq!(count(&html, "<svg"), series + agp);
    assert_eq!(count(&html, "<section class=\"patient\""), 6);
    assert_eq!(
        count(&html, "<table class=\"diary\">"),
        3,
        "patients 0, 1 and 5 measure BP"
    );
    // Nothing to fetch: no script, no stylesheet link, no image or remote URL.
    for banned in [
        "<script", "<link", "<img", "src=", "url(", "https://", "@import",
    ] {
        assert!(!html.contains(banned), "{banned}");
    }
    // The only absolute URL is the SVG namespace.
    assert_eq!(
        count(&html, "http://"),
        count(&html, "xmlns=\"http://www.w3.org/2000/svg\"")
    );
    // The overview links every patient's section.
    for i in 0..6 {
        assert!(html.contains(&format!("href=\"#patient-{i}\"")));
        assert!(html.contains(&format!("id=\"patient-{i}\"")));
    }
    // The threshold bands are drawn (red and yellow zones of systolic pressure).
    assert!(html.contains("fill=\"#DC2626\"") && html.contains("fill=\"#D9A406\""));

    let overview = r
        .to_overview_html(|_, p| format!("/patients/{}", p.subject))
        .expect("overview");
    assert_eq!(count(&overview, "<svg"), 0);
    assert_eq!(count(&overview, "<tr class="), 6);
    assert!(overview.contains("href=\"/patients/urn:healthanalyzer:sim:patient|sim-5-1\""));

    let one = r
        .to_patient_html("urn:healthanalyzer:sim:patient|sim-5-3")
        .expect("render")
        .expect("patient 3");
    assert_eq!(count(&one, "<section class=\"patient\""), 1);
    assert!(!one.contains("id=\"overview\"") && !one.contains("href=\"#overview\""));
    let three = &r
        .patient("urn:healthanalyzer:sim:patient|sim-5-3")
        .expect("3");
    assert_eq!(
        count(&one, "<svg"),
        three.series.len() + 1,
        "series and the AGP"
    );
    assert!(r.to_patient_html("urn:nobody|x").expect("render").is_none());
}

fn weight(subject: &Identifier, day: u8, kg: &str) -> Measurement {
    Measurement::new(
        Provenance::new("scale", format!("{}-{day}", subject.value)),
        subject.clone(),
        "body-weight",
        Value::quantity(parse_decimal(kg).expect("kg"), "kg"),
        DateTime::parse(&format!("2024-03-{day:02}T07:30:00+01:00")).expect("t"),
    )
}

fn named(id: &Identifier, text: &str) -> Subject {
    let mut s = Subject::new(id.clone());
    s.name = Some(HumanName {
        text: Some(text.into()),
        ..HumanName::default()
    });
    s
}

#[test]
fn names_and_messages_are_escaped() {
    let id = Identifier::new("urn:test", "a<b>|c");
    let evil = "<script>alert('x')</script> *bold* | pipe";
    let data = [weight(&id, 1, "80"), weight(&id, 3, "83")];
    let rules = RuleSet::from_toml(RULES).expect("rules");
    let options = Options::new("2024-03-04T00:00:00Z".parse().expect("t"), copenhagen());
    let r = Report::build(
        &data,
        &[named(&id, evil)],
        Catalog::builtin(),
        &rules,
        &options,
    )
    .expect("report");
    assert_eq!(r.patients[0].name.as_deref(), Some(evil));
    let html = r.to_html().expect("html");
    assert!(!html.contains("<script"));
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "{html}"
    );
    assert!(!html.contains("a<b>"));
    let md = r.to_markdown().expect("md");
    assert!(
        md.contains("\\<script\\>alert('x')\\</script\\> \\*bold\\* \\| pipe"),
        "{md}"
    );
    assert!(md.contains("urn:test\\|a\\<b\\>\\|c"), "{md}");
}

#[test]
fn markdown_snapshot() {
    let a = Identifier::new("urn:test", "anna");
    let b = Identifier::new("urn:test", "bo");
    let mut data = vec![
        weight(&a, 1, "80.0"),
        weight(&a, 2, "80.6"),
        weight(&a, 3, "82.4"),
    ];
    data.extend([weight(&b, 1, "70.2"), weight(&b, 3, "70.0")]);
    let rules = RuleSet::from_toml(RULES).expect("rules");
    let mut options = Options::new("2024-03-03T12:00:00Z".parse().expect("t"), copenhagen());
    options.days = 7;
    options.title = "Ward 3".into();
    let r = Report::build(
        &data,
        &[named(&a, "Anna A."), named(&b, "Bo B.")],
        Catalog::builtin(),
        &rules,
        &options,
    )
    .expect("report");
    insta::assert_snapshot!(r.to_markdown().expect("md"));
}

#[test]
fn json_round_trips() {
    let id = Identifier::new("urn:test", "anna");
    let data = [weight(&id, 1, "80.0"), weight(&id, 2, "80.5")];
    let rules = RuleSet::from_toml(RULES).expect("rules");
    let options = Options::new("2024-03-03T12:00:00Z".parse().expect("t"), copenhagen());
    let r = Report::build(&data, &[], Catalog::builtin(), &rules, &options).expect("report");
    let json = r.to_json();
    assert_eq!(Report::from_json(&json).expect("read back"), r);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["patients"][0]["series"][0]["unit"], "kg");
    assert_eq!(v["time_zone"], "Europe/Copenhagen");
    assert_eq!(v["from"], "2023-12-04");

    let wrong = json.replace(SCHEMA, "healthanalyzer-report/3");
    let e = Report::from_json(&wrong).expect_err("a newer format");
    assert!(e.to_string().contains("healthanalyzer-report/3"), "{e}");
    assert!(Report::from_json("{\"schema\": 1}").is_err());
}

/// Feature `schema`, on in this crate's tests (its dev-dependency on itself).
#[cfg(feature = "schema")]
#[test]
fn the_committed_schema_is_current() {
    let committed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/report.schema.json");
    let schema = Report::schema_json() + "\n";
    if std::env::var_os("HEALTHANALYZER_UPDATE_SCHEMA").is_some() {
        std::fs::write(&committed, &schema).expect("write schema");
    }
    let on_disk = std::fs::read_to_string(&committed).unwrap_or_default();
    // Compared as JSON values: key order depends on serde_json's features in the build.
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).ok();
    assert!(
        parse(&on_disk).is_some() && parse(&on_disk) == parse(&schema),
        "docs/report.schema.json is out of date: run the test with HEALTHANALYZER_UPDATE_SCHEMA=1 and review the diff"
    );
}

fn arb_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..400).prop_map(|v| v.to_string()),
        (-5.0f64..1e6).prop_map(|v| format!("{v:.3}")),
        Just("1e300".to_string()),
        Just("0".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any readings, names and periods: every format renders, the counts add up, patients come
    /// most urgent first, and JSON reads back.
    #[test]
    fn any_input_renders(
        readings in proptest::collection::vec((0usize..4, 0u8..3, 1u8..29, 0u8..24, arb_value()), 0..60),
        name in "\\PC{0,12}",
        days in 0u32..100_000,
    ) {
        let kinds = [("body-weight", "kg"), ("heart-rate", "/min"), ("capillary-glucose", "mg/dL"), ("oxygen-saturation", "%")];
        let data: Vec<Measurement> = readings.iter().enumerate().filter_map(|(i, (k, who, day, hour, v))| {
            let (kind, unit) = kinds[*k];
            Some(Measurement::new(
                Provenance::new("p", i.to_string()),
                Identifier::new("urn:p", format!("{who}")),
                kind,
                Value::quantity(parse_decimal(v).ok()?, unit),
                DateTime::parse(&format!("2024-03-{day:02}T{hour:02}:00:00+01:00")).ok()?,
            ))
        }).collect();
        let rules = RuleSet::from_toml(RULES).expect("rules");
        let mut options = Options::new("2024-03-20T00:00:00Z".parse().expect("t"), copenhagen());
        options.days = days;
        let subjects = [named(&Identifier::new("urn:p", "0"), &name)];
        match Report::build(&data, &subjects, Catalog::builtin(), &rules, &options) {
            Ok(r) => {
                prop_assert_eq!(r.totals.red + r.totals.yellow + r.totals.ok, r.patients.len());
                prop_assert!(r.patients.windows(2).all(|w| w[0].status >= w[1].status));
                prop_assert!(r.to_html().is_ok());
                prop_assert!(r.to_markdown().is_ok());
                prop_assert_eq!(Report::from_json(&r.to_json()).expect("json"), r);
            }
            Err(e) => prop_assert!(e.to_string().contains("days"), "{}", e),
        }
    }
}

#[test]
fn a_patient_in_another_zone_has_their_own_days() {
    let a = Identifier::new("urn:test", "anna");
    let b = Identifier::new("urn:test", "bo");
    let at = |id: &Identifier, when: &str| {
        Measurement::new(
            Provenance::new("scale", format!("{}-{when}", id.value)),
            id.clone(),
            "body-weight",
            Value::quantity(parse_decimal("70").expect("kg"), "kg"),
            DateTime::parse(when).expect("t"),
        )
    };
    // 03:00 UTC on 2 March: the 2nd in Copenhagen, still the 1st in New York.
    let data = [
        at(&a, "2024-03-02T03:00:00Z"),
        at(&b, "2024-03-02T03:00:00Z"),
    ];
    let rules = RuleSet::default();
    let mut options = Options::new("2024-03-03T00:00:00Z".parse().expect("t"), copenhagen());
    options.patient_zones.insert(
        "urn:test|bo".into(),
        TimeZone::get("America/New_York").expect("tz"),
    );
    let r = Report::build(&data, &[], Catalog::builtin(), &rules, &options).expect("report");
    let anna = r.patient("urn:test|anna").expect("anna");
    let bo = r.patient("urn:test|bo").expect("bo");
    assert_eq!(anna.time_zone, "Europe/Copenhagen");
    assert_eq!(bo.time_zone, "America/New_York");
    assert_eq!(anna.series[0].daily[0].date, "2024-03-02");
    assert_eq!(bo.series[0].daily[0].date, "2024-03-01");
    assert_eq!(
        bo.last_reading.as_deref(),
        Some("2024-03-01T22:00:00-05:00")
    );
    let html = r.to_html().expect("html");
    assert_eq!(count(&html, "times in America/New_York"), 1);
}

/// A reading of `kind` at `at` (RFC 3339), `value` in `unit`, normalised by the catalog.
fn reading(subject: &Identifier, kind: &str, at: &str, value: &str, unit: &str) -> Measurement {
    let m = Measurement::new(
        Provenance::new("t", format!("{kind}-{at}")),
        subject.clone(),
        kind,
        Value::quantity(parse_decimal(value).expect("value"), unit),
        DateTime::parse(at).expect("t"),
    );
    healthanalyzer_model::Validator::new(Catalog::builtin())
        .normalize(m)
        .expect("valid")
}

#[test]
fn an_imported_history_is_reported_at_its_own_end_and_says_so() {
    let id = Identifier::new("urn:test", "synthea");
    let data: Vec<Measurement> = (1..=5)
        .map(|d| {
            reading(
                &id,
                "body-weight",
                &format!("2020-10-{d:02}T08:00:00Z"),
                "80",
                "kg",
            )
        })
        .collect();
    let now: Timestamp = "2026-12-01T12:00:00Z".parse().expect("t");
    let rules = RuleSet::default();
    let r = Report::build(
        &data,
        &[],
        Catalog::builtin(),
        &rules,
        &Options::new(now, copenhagen()),
    )
    .expect("report");
    assert_eq!(r.totals.readings, 5);
    assert_eq!(r.to, "2020-10-05");
    let note = r.period_note.as_deref().expect("a note");
    assert!(note.contains("latest reading"), "{note}");
    assert!(r.to_markdown().expect("md").contains(note));
    // A "now" chosen on purpose is kept: nothing in the period.
    let mut fixed = Options::new(now, copenhagen());
    fixed.follow_data = false;
    let r = Report::build(&data, &[], Catalog::builtin(), &rules, &fixed).expect("report");
    assert_eq!((r.totals.readings, r.period_note.as_deref()), (0, None));
    assert_eq!(r.to, "2026-12-01");
}

#[test]
fn alert_texts_give_times_in_the_report_zone() {
    let id = Identifier::new("urn:test", "stale");
    let data = [reading(
        &id,
        "body-weight",
        "2026-11-15T19:59:00Z",
        "80",
        "kg",
    )];
    let rules = RuleSet::from_toml(
        "[[stale]]\nname = \"no weight\"\nkind = \"body-weight\"\ndays = 3\nseverity = \"yellow\"\n",
    )
    .expect("rules");
    let now: Timestamp = "2026-12-01T12:00:00Z".parse().expect("t");
    let r = Report::build(
        &data,
        &[],
        Catalog::builtin(),
        &rules,
        &Options::new(now, copenhagen()),
    )
    .expect("report");
    let message = &r.patients[0].alerts[0].message;
    assert!(message.contains("2026-11-15T20:59:00+01:00"), "{message}");
    assert!(!message.contains("19:59:00Z"), "{message}");
}

#[test]
fn glucose_is_shown_in_the_unit_it_came_in_or_the_one_configured() {
    let id = Identifier::new("urn:test", "glucose");
    let data: Vec<Measurement> = (0..10)
        .map(|i| {
            reading(
                &id,
                "capillary-glucose",
                &format!("2026-11-{:02}T08:00:00Z", 10 + i),
                "7.0",
                "mmol/L",
            )
        })
        .collect();
    let now: Timestamp = "2026-12-01T12:00:00Z".parse().expect("t");
    let rules = RuleSet::from_toml(
        "[[threshold]]\nkind = \"capillary-glucose\"\nunit = \"mmol/L\"\nyellow_high = 10\n",
    )
    .expect("rules");
    let series = |r: &Report| r.patients[0].series[0].clone();
    let r = Report::build(
        &data,
        &[],
        Catalog::builtin(),
        &rules,
        &Options::new(now, copenhagen()),
    )
    .expect("report");
    let s = series(&r);
    assert_eq!(s.unit, "mmol/L");
    assert!((s.summary.mean - 7.0).abs() < 0.01, "{}", s.summary.mean);
    let limit = s.threshold.and_then(|t| t.yellow_high).expect("threshold");
    assert!((limit - 10.0).abs() < 0.01, "{limit}");
    let g = r.patients[0].glucose.clone().expect("glucose");
    assert_eq!(g.unit, "mmol/L");
    assert!(
        (g.mean - 7.0).abs() < 0.01 && (g.limits[1] - 3.9).abs() < 0.01,
        "{g:?}"
    );
    assert!(r.to_html().expect("html").contains("mmol/L"));

    let mut mg = Options::new(now, copenhagen());
    mg.glucose_unit = Some(healthanalyzer_report::GlucoseUnit::MgDl);
    let r = Report::build(&data, &[], Catalog::builtin(), &rules, &mg).expect("report");
    let s = series(&r);
    assert_eq!(s.unit, "mg/dL");
    assert!((s.summary.mean - 126.1).abs() < 0.2, "{}", s.summary.mean);
}
