//! `apple-bench`: streams a generated Apple Health `export.xml` of the given size (1 GiB by
//! default) through the file source, in batches of 10,000 as a sync would, and reports the
//! throughput and the process's peak resident memory (from `/proc/self/status`), beside the
//! file's size.
//!
//! ```text
//! cargo run --release -p healthanalyzer-bench --bin apple-bench -- [--mib 1024] [--keep PATH]
//! ```

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::{BufWriter, Write};
use std::time::Instant;

use healthanalyzer_model::{Identifier, systems};
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_files::{FileOptions, FileSource, Format};

/// Peak resident set size of this process, in KiB (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn generate(path: &std::path::Path, bytes: u64) -> std::io::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    write!(
        w,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE HealthData [\n<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>\n]>\n<HealthData locale=\"da_DK\">\n <ExportDate value=\"2024-05-02 20:00:00 +0200\"/>\n <Me HKCharacteristicTypeIdentifierDateOfBirth=\"1970-01-01\"/>\n"
    )?;
    let mut written = 0u64;
    let mut i = 0u64;
    while written < bytes {
        let day = 1 + (i / 1440) % 28;
        let (h, m) = ((i / 60) % 24, i % 60);
        let t = format!("2024-05-{day:02} {h:02}:{m:02}:00 +0200");
        let chunk = match i % 8 {
            0..=3 => format!(
                " <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"Apple Watch\" sourceVersion=\"10.4\" device=\"&lt;&lt;HKDevice: 0x28&gt;, name:Apple Watch, manufacturer:Apple&gt;\" unit=\"count/min\" creationDate=\"{t}\" startDate=\"{t}\" endDate=\"{t}\" value=\"{}\">\n  <MetadataEntry key=\"HKMetadataKeyHeartRateMotionContext\" value=\"0\"/>\n </Record>\n",
                55 + i % 40
            ),
            4 => format!(
                " <Record type=\"HKQuantityTypeIdentifierActiveEnergyBurned\" sourceName=\"Apple Watch\" unit=\"kcal\" creationDate=\"{t}\" startDate=\"{t}\" endDate=\"{t}\" value=\"0.5\"/>\n"
            ),
            5 => format!(
                " <Record type=\"HKQuantityTypeIdentifierStepCount\" sourceName=\"iPhone\" unit=\"count\" creationDate=\"{t}\" startDate=\"{t}\" endDate=\"{t}\" value=\"{}\"/>\n",
                i % 300
            ),
            6 => format!(
                " <Correlation type=\"HKCorrelationTypeIdentifierBloodPressure\" sourceName=\"Omron\" creationDate=\"{t}\" startDate=\"{t}\" endDate=\"{t}\">\n  <Record type=\"HKQuantityTypeIdentifierBloodPressureSystolic\" sourceName=\"Omron\" unit=\"mmHg\" startDate=\"{t}\" endDate=\"{t}\" value=\"{}\"/>\n  <Record type=\"HKQuantityTypeIdentifierBloodPressureDiastolic\" sourceName=\"Omron\" unit=\"mmHg\" startDate=\"{t}\" endDate=\"{t}\" value=\"{}\"/>\n </Correlation>\n",
                110 + i % 30,
                70 + i % 15
            ),
            _ => format!(
                " <Workout workoutActivityType=\"HKWorkoutActivityTypeWalking\" startDate=\"{t}\" endDate=\"{t}\">\n  <WorkoutRoute><Location date=\"{t}\" latitude=\"55.6\" longitude=\"12.5\"/><Location date=\"{t}\" latitude=\"55.6\" longitude=\"12.5\"/></WorkoutRoute>\n </Workout>\n"
            ),
        };
        w.write_all(chunk.as_bytes())?;
        written += chunk.len() as u64;
        i += 1;
    }
    w.write_all(b"</HealthData>\n")?;
    w.flush()?;
    Ok(written)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut mib: u64 = 1024;
    let mut keep = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mib" => mib = args.next().and_then(|v| v.parse().ok()).expect("--mib N"),
            "--keep" => keep = args.next(),
            other => panic!("unknown argument {other}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = keep
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("export.xml"));
    let t = Instant::now();
    let size = generate(&path, mib << 20).unwrap();
    let generated = t.elapsed();
    let rss_before = peak_rss_kib().unwrap_or(0);
    let source = FileSource::new(
        "apple",
        &path,
        Format::AppleHealth,
        FileOptions::new(Identifier::new(systems::CPR, "0101709995")),
    );
    let t = Instant::now();
    let mut cursor = Cursor::start();
    let (mut n, mut rejected, mut batches) = (0usize, 0usize, 0usize);
    loop {
        let b = source.pull(&cursor, 10_000).await.unwrap();
        n += b.measurements.len();
        rejected += b.rejected.len();
        batches += 1;
        cursor = b.cursor;
        if b.exhausted {
            break;
        }
    }
    let read = t.elapsed();
    let peak = peak_rss_kib().unwrap_or(0);
    println!(
        "Apple Health export of {:.0} MiB (generated in {:.1} s), one thread",
        size as f64 / 1048576.0,
        generated.as_secs_f64()
    );
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| measurements read | {n} ({rejected} rejected, {batches} batches) |");
    println!("| time | {:.1} s |", read.as_secs_f64());
    println!(
        "| throughput | {:.0} MiB/s, {:.0} measurements/s |",
        size as f64 / 1048576.0 / read.as_secs_f64(),
        n as f64 / read.as_secs_f64()
    );
    println!(
        "| peak RSS before reading | {:.1} MiB |",
        rss_before as f64 / 1024.0
    );
    println!(
        "| peak RSS after reading | {:.1} MiB |",
        peak as f64 / 1024.0
    );
    println!(
        "| peak RSS / file size | {:.3} |",
        peak as f64 * 1024.0 / size as f64
    );
}
