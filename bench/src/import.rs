//! `import-bench`: `healthanalyzer import` of a FHIR NDJSON file into SQLite, end to end (the
//! release binary as a child process), in observations per second and peak memory; beside it,
//! in the same run, each stage alone in-process: parsing the file, validation and
//! normalisation, and the SQLite store writing exactly the rows the import writes (its
//! ceiling).
//!
//! ```text
//! cargo build --release -p healthanalyzer
//! cargo run --release -p healthanalyzer-bench --bin import-bench -- [--days 228] [--patients 1000] [--files-only DIR]
//! ```
//!
//! With `HEALTHANALYZER_POSTGRES_URL` set (`.ci/start-postgres`) it also imports the whole file
//! into PostgreSQL (strict and lenient) and measures PostgreSQL's raw ceiling: the stored rows
//! sent again with binary `COPY` into an empty table of the same layout.
//! `HEALTHANALYZER_BIN` names another build of the binary.
//!
//! It writes the NDJSON (simulated patients, one Observation per line, Patients first) and a
//! quarter of it into a temporary folder, imports both, and prints the figures: memory that is
//! flat in the file size shows as the same peak for both files.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

#[path = "pg_copy.rs"]
mod pg_copy;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use healthanalyzer_fhir::{Profile, WriteOptions, write_observation, write_patient};
use healthanalyzer_model::{Catalog, Subject};
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_sim::{SimConfig, SimSource};
use healthanalyzer_store::MeasurementStore;

/// The peak resident memory of a running process, from `/proc` (kB).
fn peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU seconds (user + system, with reaped children) of the processes whose `comm` is `name`
/// (`None`: of this process's reaped children), from `/proc`.
fn cpu_seconds(name: Option<&str>) -> f64 {
    let ticks = |stat: &str, fields: &[usize]| -> f64 {
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
        let rest = stat.rsplit_once(") ").map(|r| r.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        fields
            .iter()
            .filter_map(|i| f.get(i - 3).and_then(|v| v.parse::<f64>().ok()))
            .sum::<f64>()
            / 100.0
    };
    match name {
        None => std::fs::read_to_string("/proc/self/stat")
            .map(|s| ticks(&s, &[16, 17]))
            .unwrap_or(0.0),
        Some(name) => std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|s| s.contains(&format!("({name})")))
            .map(|s| ticks(&s, &[14, 15, 16, 17]))
            .sum(),
    }
}

/// The peer: Python's `fhir.resources` (R4 models, from `../shared/tools/setup.sh`) parsing the
/// first `lines` Observations of `file`; returns (seconds, parsed), or `None` when it is not
/// installed.
fn fhir_resources(file: &Path, lines: usize) -> Option<(f64, u64)> {
    let home = std::env::var("FHIR_TOOLS_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/fhir-tools")
        });
    let python = home.join("venv-r4/bin/python");
    if !python.exists() {
        println!(
            "(fhir.resources not installed at {}: run ../shared/tools/setup.sh for the peer)",
            python.display()
        );
        return None;
    }
    let script = r#"
import sys, time
from fhir.resources.observation import Observation
path, limit = sys.argv[1], int(sys.argv[2])
lines = []
with open(path) as f:
    for line in f:
        if '"Observation"' in line:
            lines.append(line)
            if len(lines) >= limit:
                break
t = time.perf_counter()
for line in lines:
    Observation.parse_raw(line)
print(time.perf_counter() - t, len(lines))
"#;
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(file)
        .arg(lines.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Runs the import into SQLite; returns (wall time, peak RSS in kB, imported count).
fn import(bin: &Path, db: &Path, file: &Path, validation: &str) -> (Duration, u64, u64) {
    let _ = std::fs::remove_file(db);
    import_url(bin, &format!("sqlite:{}", db.display()), file, validation)
}

/// Runs the import into the store at `url` with `--validation validation`; returns (wall
/// time, peak RSS in kB, imported count).
fn import_url(bin: &Path, url: &str, file: &Path, validation: &str) -> (Duration, u64, u64) {
    let t = Instant::now();
    let mut child = Command::new(bin)
        .arg("--db")
        .arg(url)
        .arg("--json")
        .arg("import")
        .arg("--validation")
        .arg(validation)
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Some(kb) = peak_kb(child.id()) {
            peak = peak.max(kb);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t.elapsed();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inserted = v[0]["inserted"].as_u64().unwrap();
    assert_eq!(v[0]["rejected"], 0, "{v}");
    (took, peak, inserted)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut patients = 1000;
    let mut days = 228;
    let mut files_only: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--patients" => patients = args.next().and_then(|v| v.parse().ok()).expect("a number"),
            "--days" => days = args.next().and_then(|v| v.parse().ok()).expect("a number"),
            // Only write the two NDJSON files into a folder, and stop (for profiling an import).
            "--files-only" => files_only = Some(args.next().map(PathBuf::from).expect("a folder")),
            other => panic!("unknown argument {other}"),
        }
    }
    // The release binary of the workspace, or another build of it (`HEALTHANALYZER_BIN`).
    let bin = std::env::var_os("HEALTHANALYZER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/healthanalyzer")
        });
    // Writing the files alone needs no binary.
    assert!(
        files_only.is_some() || bin.exists(),
        "build the binary first: cargo build --release -p healthanalyzer"
    );
    let temp = tempfile::tempdir().unwrap();
    let dir = files_only.as_deref().unwrap_or(temp.path());
    let sim = SimSource::new(SimConfig {
        patients,
        days,
        ..SimConfig::default()
    })
    .unwrap();
    let catalog = Catalog::builtin();
    let options = WriteOptions::new(catalog);
    let full = dir.join("all.ndjson");
    let quarter = dir.join("quarter.ndjson");
    let mut w_full = std::io::BufWriter::new(std::fs::File::create(&full).unwrap());
    let mut w_quarter = std::io::BufWriter::new(std::fs::File::create(&quarter).unwrap());
    for id in sim.subjects() {
        let line = write_patient(&Subject::new(id.clone()), Profile::VitalSigns)
            .unwrap()
            .to_string();
        writeln!(w_full, "{line}").unwrap();
        writeln!(w_quarter, "{line}").unwrap();
    }
    let mut cursor = Cursor::start();
    let mut n = 0u64;
    loop {
        let b = sim.pull(&cursor, 10_000).await.unwrap();
        for m in &b.measurements {
            let line = write_observation(m, &options).unwrap().to_string();
            writeln!(w_full, "{line}").unwrap();
            if n.is_multiple_of(4) {
                writeln!(w_quarter, "{line}").unwrap();
            }
            n += 1;
        }
        cursor = b.cursor;
        if b.exhausted {
            break;
        }
    }
    w_full.flush().unwrap();
    w_quarter.flush().unwrap();
    drop((w_full, w_quarter));
    if files_only.is_some() {
        println!("wrote {} and {}", full.display(), quarter.display());
        return;
    }
    let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64 / 1e6;

    // The same file read in-process, stage by stage: parsing (the file source), validation
    // and normalisation, then the store alone writing exactly the rows the import writes.
    let source = healthanalyzer_pipeline::file_source(
        "file:all.ndjson",
        &full,
        Some("fhir-ndjson"),
        healthanalyzer_source_files::FileOptions::new(healthanalyzer_model::Identifier::local("x")),
    )
    .unwrap();
    let t = Instant::now();
    let mut rows = Vec::new();
    let mut cursor = Cursor::start();
    loop {
        let b = source.pull(&cursor, 10_000).await.unwrap();
        rows.extend(b.measurements);
        cursor = b.cursor;
        if b.exhausted {
            break;
        }
    }
    let parse = t.elapsed();
    let t = Instant::now();
    let validator = healthanalyzer_model::Validator::new(catalog);
    let rows: Vec<_> = rows
        .into_iter()
        .map(|m| validator.normalize(m).unwrap())
        .collect();
    let validate = t.elapsed();
    let mut ceilings = Vec::new();
    for cache in [32, 256] {
        let store_db = dir.join(format!("store-{cache}.db"));
        let store = healthanalyzer_store_sqlite::SqliteStore::open_url(&format!(
            "sqlite:{}?cache_mib={cache}",
            store_db.display()
        ))
        .await
        .unwrap();
        let t = Instant::now();
        for chunk in rows.chunks(store.preferred_batch_size()) {
            store.write(chunk, None).await.unwrap();
        }
        ceilings.push((cache, t.elapsed()));
    }
    let ceiling = ceilings[0].1;
    drop(rows);

    let peer = fhir_resources(&full, 100_000);
    let (t_q, peak_q, n_q) = import(&bin, &dir.join("q.db"), &quarter, "strict");
    let (t_f, peak_f, n_f) = import(&bin, &dir.join("f.db"), &full, "strict");
    let (t_l, peak_l, n_l) = import(&bin, &dir.join("l.db"), &full, "lenient");
    // PostgreSQL, when a server is given (`.ci/start-postgres` makes a throwaway one): fresh
    // schemas, so each import starts from an empty store as the SQLite one does; then its raw
    // ceiling, the rows the lenient import stored sent again with binary COPY into an empty
    // table of the same layout and indexes.
    let postgres = match std::env::var("HEALTHANALYZER_POSTGRES_URL") {
        Ok(url) => {
            let strict = import_url(
                &bin,
                &pg_schema(&url, "import_bench").await,
                &full,
                "strict",
            );
            let lenient_url = pg_schema(&url, "import_bench_lenient").await;
            // Where the lenient import's time went: the CLI's CPU, the server's CPU (every
            // `postgres` process of the machine: run it on a cluster of its own), and the wall.
            let (client0, server0) = (cpu_seconds(None), cpu_seconds(Some("postgres")));
            let lenient = import_url(&bin, &lenient_url, &full, "lenient");
            println!(
                "PostgreSQL lenient import: {:.1} s wall, CLI CPU {:.1} s, server CPU {:.1} s (2 cores)",
                lenient.0.as_secs_f64(),
                cpu_seconds(None) - client0,
                cpu_seconds(Some("postgres")) - server0
            );
            let ceiling = pg_copy::ceiling(&url, "import_bench_lenient", "import_bench_ceiling")
                .await
                .unwrap();
            Some((strict, lenient, ceiling))
        }
        Err(_) => {
            println!("(PostgreSQL skipped: HEALTHANALYZER_POSTGRES_URL is not set)");
            None
        }
    };
    assert_eq!(n_f, n);
    let mut pg_ratios = None;
    let rate = |k: u64, d: Duration| k as f64 / d.as_secs_f64();
    println!(
        "{n} Observations ({:.0} MB NDJSON) and {} Patients; the release binary as a child process",
        size(&full),
        sim.subjects().len()
    );
    println!();
    println!("| run | measurements | s | measurements/s | peak RSS, MiB |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| `healthanalyzer import`, quarter file ({:.0} MB) | {n_q} | {:.1} | {:.0} | {:.1} |",
        size(&quarter),
        t_q.as_secs_f64(),
        rate(n_q, t_q),
        peak_q as f64 / 1024.0
    );
    println!(
        "| `healthanalyzer import`, whole file ({:.0} MB) | {n_f} | {:.1} | {:.0} | {:.1} |",
        size(&full),
        t_f.as_secs_f64(),
        rate(n_f, t_f),
        peak_f as f64 / 1024.0
    );
    println!(
        "| `healthanalyzer import --validation lenient`, whole file | {n_l} | {:.1} | {:.0} | {:.1} |",
        t_l.as_secs_f64(),
        rate(n_l, t_l),
        peak_l as f64 / 1024.0
    );
    if let Some(((t_p, peak_p, n_p), (t_pl, peak_pl, n_pl), (t_c, n_c))) = postgres {
        println!(
            "| `healthanalyzer import` into PostgreSQL, whole file | {n_p} | {:.1} | {:.0} | {:.1} |",
            t_p.as_secs_f64(),
            rate(n_p, t_p),
            peak_p as f64 / 1024.0
        );
        println!(
            "| `healthanalyzer import --validation lenient` into PostgreSQL, whole file | {n_pl} | {:.1} | {:.0} | {:.1} |",
            t_pl.as_secs_f64(),
            rate(n_pl, t_pl),
            peak_pl as f64 / 1024.0
        );
        println!(
            "| PostgreSQL raw ceiling: the stored rows again, binary COPY into an empty table of the same layout | {n_c} | {:.1} | {:.0} | |",
            t_c.as_secs_f64(),
            rate(n_c, t_c)
        );
        pg_ratios = Some((rate(n_p, t_p), rate(n_pl, t_pl), rate(n_c, t_c)));
    }
    println!(
        "| in-process, parse only (the NDJSON file source) | {n} | {:.1} | {:.0} | |",
        parse.as_secs_f64(),
        rate(n, parse)
    );
    println!(
        "| in-process, validate and normalise only | {n} | {:.1} | {:.0} | |",
        validate.as_secs_f64(),
        rate(n, validate)
    );
    for (cache, d) in &ceilings {
        println!(
            "| in-process, store only: the same rows into SQLite, cache {cache} MiB | {n} | {:.1} | {:.0} | |",
            d.as_secs_f64(),
            rate(n, *d)
        );
    }
    let peer_rate = peer.map(|(secs, k)| k as f64 / secs);
    if let Some((secs, k)) = peer {
        println!(
            "| peer: Python fhir.resources 6.4.0 parsing the first {k} Observations (parse only) | {k} | {secs:.1} | {:.0} | |",
            k as f64 / secs
        );
        println!();
        println!(
            "import (end to end, whole file) / fhir.resources parse alone: {:.1}x",
            rate(n_f, t_f) / (k as f64 / secs)
        );
    }
    println!();
    println!(
        "import / store ceiling: {:.2}; import / (parse + validate + store, one after another): {:.2}; peak memory whole / quarter: {:.2}; strict / lenient: {:.2}",
        rate(n_f, t_f) / rate(n, ceiling),
        rate(n_f, t_f) / rate(n, parse + validate + ceiling),
        peak_f as f64 / peak_q.max(1) as f64,
        rate(n_f, t_f) / rate(n_l, t_l)
    );
    if let Some((strict, lenient, ceiling)) = pg_ratios {
        print!(
            "PostgreSQL: import / raw ceiling {:.2} (lenient {:.2}); strict / lenient {:.2}",
            strict / ceiling,
            lenient / ceiling,
            strict / lenient
        );
        match peer_rate {
            Some(p) => println!(
                "; import / fhir.resources {:.1}x (lenient {:.1}x)",
                strict / p,
                lenient / p
            ),
            None => println!(),
        }
    }
}

/// A fresh schema `name` on the server at `url`; returns the URL whose `search_path` is it.
async fn pg_schema(url: &str, name: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{name}")
}
