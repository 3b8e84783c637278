//! `sim-bench`: how fast the simulator makes measurements, pulled in batches of 10,000 as a
//! sync would, on one thread; beside it, in the same run, the cost of the measurement id alone
//! (the UUID v5 every measurement carries) as a floor.
//!
//! ```text
//! cargo run --release -p healthanalyzer-bench --bin sim-bench -- [--patients 1000] [--days 365]
//! ```

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use healthanalyzer_model::MeasurementId;
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_sim::{SimConfig, SimSource};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut patients = 1000;
    let mut days = 365;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse().ok()).expect("a number");
        match a.as_str() {
            "--patients" => patients = value(),
            "--days" => days = value() as u32,
            other => panic!("unknown argument {other}"),
        }
    }
    let sim = SimSource::new(SimConfig {
        patients,
        days,
        ..SimConfig::default()
    })
    .unwrap();
    let t = Instant::now();
    let mut cursor = Cursor::start();
    let mut n = 0usize;
    loop {
        let batch = sim.pull(&cursor, 10_000).await.unwrap();
        n += batch.measurements.len();
        cursor = batch.cursor;
        if batch.exhausted {
            break;
        }
    }
    let made = t.elapsed();
    let t = Instant::now();
    let mut x = 0u8;
    for i in 0..n {
        x ^= MeasurementId::from_source("sim", &i.to_string())
            .as_uuid()
            .as_bytes()[0];
    }
    std::hint::black_box(x);
    let ids = t.elapsed();
    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!("{patients} patients x {days} days: {n} measurements, one thread");
    println!();
    println!("| run | time (ms) | measurements/s |");
    println!("|---|---:|---:|");
    println!(
        "| simulate (pull in batches of 10,000) | {:.0} | {:.0} |",
        made.as_secs_f64() * 1e3,
        rate(made)
    );
    println!(
        "| the measurement ids alone (UUID v5) | {:.0} | {:.0} |",
        ids.as_secs_f64() * 1e3,
        rate(ids)
    );
}
