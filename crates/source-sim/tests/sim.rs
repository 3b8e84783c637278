//! The simulator keeps the source contract and its scenarios say what they promise.

use std::collections::HashMap;

use healthanalyzer_model::{Catalog, Measurement, Validator, Value};
use healthanalyzer_source::{Cursor, testkit};
use healthanalyzer_source_sim::{Scenario, SimConfig, SimSource};

fn sim(patients: usize, days: u32, seed: u64) -> SimSource {
    SimSource::new(SimConfig {
        patients,
        days,
        seed,
        ..SimConfig::default()
    })
    .expect("config")
}

async fn everything(s: &SimSource) -> Vec<Measurement> {
    testkit::pull_all(s, &Cursor::start(), 10_000)
        .await
        .into_iter()
        .flat_map(|b| b.measurements)
        .collect()
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Quantity(q) => q.quantity.value.to_string().parse().expect("number"),
        other => panic!("not a quantity: {other:?}"),
    }
}

fn of<'a>(all: &'a [Measurement], patient: usize, kind: &str) -> Vec<&'a Measurement> {
    all.iter()
        .filter(|m| m.subject.value.ends_with(&format!("-{patient}")) && m.kind.as_str() == kind)
        .collect()
}

fn day(m: &Measurement) -> i8 {
    m.effective.start().civil().day()
}

#[tokio::test]
async fn the_simulator_keeps_the_source_contract() {
    testkit::run_all(&sim(7, 5, 3), &sim(7, 5, 3), 9).await;
}

#[tokio::test]
async fn every_measurement_is_valid_and_the_count_is_what_total_says() {
    let s = sim(12, 20, 1);
    let all = everything(&s).await;
    assert_eq!(all.len() as u64, s.total());
    let validator = Validator::new(Catalog::builtin());
    for m in &all {
        validator
            .validate(m)
            .unwrap_or_else(|e| panic!("{} {:?}: {e}", m.kind.as_str(), m.value));
    }
    // Every scenario is present.
    let kinds: std::collections::HashSet<&str> = all.iter().map(|m| m.kind.as_str()).collect();
    for k in [
        "blood-pressure",
        "heart-rate",
        "body-weight",
        "oxygen-saturation",
        "respiratory-rate",
        "capillary-glucose",
        "steps",
    ] {
        assert!(kinds.contains(k), "{k} missing");
    }
}

#[tokio::test]
async fn the_same_seed_gives_the_same_data_and_another_seed_other_values() {
    let a = everything(&sim(6, 10, 42)).await;
    let b = everything(&sim(6, 10, 42)).await;
    assert_eq!(a, b);
    let c = everything(&sim(6, 10, 43)).await;
    assert_eq!(a.len(), c.len());
    let differ = a.iter().zip(&c).filter(|(x, y)| x.value != y.value).count();
    assert!(
        differ > a.len() / 2,
        "only {differ} of {} values differ",
        a.len()
    );
}

#[tokio::test]
async fn the_heart_failure_patient_gains_three_kilos_in_three_days() {
    let days = 20;
    let all = everything(&sim(6, days, 7)).await;
    assert_eq!(Scenario::of_patient(1), Scenario::HeartFailure);
    let weights = of(&all, 1, "body-weight");
    assert_eq!(weights.len(), days as usize);
    let early: f64 = weights[..10].iter().map(|m| number(&m.value)).sum::<f64>() / 10.0;
    let last = number(&weights[days as usize - 1].value);
    let three_before = number(&weights[days as usize - 4].value);
    assert!(last - early > 2.0, "early {early}, last {last}");
    // Weighed at the same minute every day: exactly three days apart, 3 kg less at most 0.5
    // kg of noise, so a "2 kg within 3 days" rule always sees it.
    assert!(
        last - three_before >= 2.5 - 1e-9,
        "three days before {three_before}, last {last}"
    );
    let at = |m: &healthanalyzer_model::Measurement| m.effective.start().instant();
    assert_eq!(
        at(weights[days as usize - 1]).duration_since(at(weights[days as usize - 4])),
        healthanalyzer_model::jiff::SignedDuration::from_hours(72)
    );
    // A steady patient does not.
    let steady = of(&all, 0, "body-weight");
    let spread = steady
        .iter()
        .map(|m| number(&m.value))
        .fold(f64::MIN, f64::max)
        - steady
            .iter()
            .map(|m| number(&m.value))
            .fold(f64::MAX, f64::min);
    assert!(spread < 1.0, "steady weight varies by {spread}");
}

#[tokio::test]
async fn the_copd_patient_dips_mid_way_and_the_lapsed_patient_stops() {
    let days = 20u32;
    let all = everything(&sim(6, days, 7)).await;
    let spo2 = of(&all, 2, "oxygen-saturation");
    let mut by_day: HashMap<i8, Vec<f64>> = HashMap::new();
    for m in &spo2 {
        by_day.entry(day(m)).or_default().push(number(&m.value));
    }
    let low_days: Vec<i8> = {
        let mut d: Vec<i8> = by_day
            .iter()
            .filter(|(_, v)| v.iter().all(|x| *x < 90.0))
            .map(|(d, _)| *d)
            .collect();
        d.sort();
        d
    };
    // Days 10 and 11 from the start (2024-01-01), that is the 11th and 12th.
    assert_eq!(low_days, vec![11, 12]);
    let lapsed = of(&all, 5, "blood-pressure");
    assert_eq!(lapsed.len(), 2 * (days as usize / 2));
    assert!(lapsed.iter().all(|m| day(m) <= 10));
}

#[tokio::test]
async fn blood_pressure_is_higher_in_the_morning_and_glucose_after_meals() {
    let all = everything(&sim(6, 30, 11)).await;
    let mut morning = Vec::new();
    let mut evening = Vec::new();
    for m in of(&all, 0, "blood-pressure") {
        let Value::Components(c) = &m.value else {
            panic!("a panel")
        };
        let Some(sys) = c.iter().find(|c| c.id.as_str() == "systolic") else {
            panic!("systolic")
        };
        let v: f64 = match &sys.value {
            healthanalyzer_model::ComponentValue::Quantity(q) => {
                q.quantity.value.to_string().parse().expect("n")
            }
            _ => panic!("value"),
        };
        if m.effective.start().civil().hour() < 12 {
            morning.push(v);
        } else {
            evening.push(v);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&morning) > mean(&evening) + 3.0);
    let glucose = of(&all, 3, "capillary-glucose");
    let mut after = Vec::new();
    let mut before = Vec::new();
    for m in glucose {
        let h = m.effective.start().civil().hour();
        if h == 9 || h == 19 || h == 20 {
            after.push(number(&m.value));
        } else {
            before.push(number(&m.value));
        }
    }
    assert!(mean(&after) > mean(&before) + 40.0);
}

#[test]
fn no_days_is_a_configuration_error() {
    let e = SimSource::new(SimConfig {
        days: 0,
        ..SimConfig::default()
    })
    .expect_err("no days");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("at least one day"));
}
