//! `store-bench`: writes N measurements (default 1,000,000) in batches of 1,000 through each
//! store, then queries one subject's year of one kind; beside it, in the same run, the raw
//! ceiling of the database: the same rows with a bare prepared statement in one transaction
//! (SQLite) and with binary COPY (PostgreSQL), into the same table and indexes.
//!
//! ```text
//! cargo run --release -p healthanalyzer-bench -- [--rows N] [--queries Q]
//! ```
//!
//! PostgreSQL runs when `HEALTHANALYZER_POSTGRES_URL` is set (`eval "$(.ci/start-postgres)"`);
//! each run uses a fresh schema. Results are printed as a Markdown table.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

mod pg_copy;

use std::ops::Bound;
use std::time::{Duration, Instant};

use healthanalyzer_model::jiff::{SignedDuration, Timestamp, tz};
use healthanalyzer_model::{DateTime, Identifier, Measurement, Provenance, Value};
use healthanalyzer_store::backend::identifier_key;
use healthanalyzer_store::{Filter, MeasurementStore, Query};
use healthanalyzer_store_postgres::PostgresStore;
use healthanalyzer_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

const SUBJECTS: i64 = 500;
const BATCH: usize = 1_000;

type Error = Box<dyn std::error::Error>;

fn start() -> Timestamp {
    Timestamp::from_second(1_672_531_200).unwrap() // 2023-01-01T00:00:00Z
}

/// `rows` measurements: 500 subjects, alternating heart rate and body weight, spread evenly
/// over two years per subject, in the order a sync would bring them (by subject, then time).
fn dataset(rows: i64) -> Vec<Measurement> {
    let per_subject = rows / SUBJECTS;
    let step = SignedDuration::from_secs(2 * 365 * 86_400 / per_subject.max(1));
    let offset = tz::Offset::from_hours(1).unwrap();
    let mut out = Vec::with_capacity(rows as usize);
    for s in 0..SUBJECTS {
        for i in 0..per_subject {
            let at = start() + step * (i as i32) + SignedDuration::from_secs(s);
            let (kind, value) = if i % 2 == 0 {
                (
                    "heart-rate",
                    Value::quantity((55 + (i + s) % 40).into(), "/min"),
                )
            } else {
                (
                    "body-weight",
                    Value::quantity(
                        healthanalyzer_model::parse_decimal(&format!("{}.{}", 60 + s % 40, i % 10))
                            .unwrap(),
                        "kg",
                    ),
                )
            };
            out.push(Measurement::new(
                Provenance::new("bench", format!("s{s}-r{i}")),
                Identifier::new("urn:bench:subject", format!("subject-{s:04}")),
                kind,
                value,
                DateTime::from_timestamp(at, offset),
            ));
        }
    }
    out
}

/// The columns both stores keep, precomputed (the raw ceiling gets them for free).
struct RawRow {
    id: uuid::Uuid,
    subject: String,
    kind: String,
    t_s: i64,
    t_ns: i32,
    body: String,
}

fn raw_rows(data: &[Measurement]) -> Vec<RawRow> {
    data.iter()
        .map(|m| {
            let n = m.effective.instant().as_nanosecond();
            RawRow {
                id: *m.id.as_uuid(),
                subject: identifier_key(&m.subject),
                kind: m.kind.as_str().to_string(),
                t_s: n.div_euclid(1_000_000_000) as i64,
                t_ns: n.rem_euclid(1_000_000_000) as i32,
                body: serde_json::to_string(m).unwrap(),
            }
        })
        .collect()
}

struct Figures {
    name: String,
    write: Duration,
    rows: usize,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.write.as_secs_f64()
    }
}

async fn write_all(
    store: &dyn MeasurementStore,
    data: &[Measurement],
    batch: usize,
) -> Result<Duration, Error> {
    let t = Instant::now();
    for (k, chunk) in data.chunks(batch).enumerate() {
        store.write(chunk, None).await?;
        if k % (200_000 / batch).max(1) == 0 {
            eprint!(".");
        }
    }
    eprintln!();
    Ok(t.elapsed())
}

/// Median and 95th percentile of `q` queries for one subject's 2023 of heart rate.
async fn query_latency(
    store: &dyn MeasurementStore,
    q: usize,
) -> Result<(Duration, Duration, usize), Error> {
    let from = start();
    let to = start() + SignedDuration::from_hours(365 * 24);
    let mut times = Vec::with_capacity(q);
    let mut rows = 0;
    for i in 0..q {
        let subject = Identifier::new(
            "urn:bench:subject",
            format!("subject-{:04}", (i as i64 * 37) % SUBJECTS),
        );
        let filter = Filter::subject(subject)
            .kinds(["heart-rate"])
            .between(Bound::Included(from), Bound::Excluded(to));
        let t = Instant::now();
        let page = store.query(&Query::new(filter, 10_000)).await?;
        times.push(t.elapsed());
        assert!(page.next.is_none(), "one page holds a subject's year");
        rows = page.items.len();
    }
    times.sort();
    Ok((times[q / 2], times[q * 95 / 100], rows))
}

fn sqlite_raw(path: &std::path::Path, rows: &[RawRow], per_tx: usize) -> Result<Duration, Error> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -32_768)?;
    conn.pragma_update(None, "wal_autocheckpoint", 8_192)?;
    // Schema 4 keys subjects and kinds by dictionary numbers (ADR 0008); the ceiling gets them
    // precomputed, like the rest of each row.
    let mut numbers = std::collections::HashMap::new();
    let keys: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| {
            let mut number = |k: &str| {
                let n = numbers.len() as i64;
                *numbers.entry(k.to_string()).or_insert(n)
            };
            (number(&r.subject), number(&r.kind))
        })
        .collect();
    let t = Instant::now();
    for (chunk, keys) in rows.chunks(per_tx).zip(keys.chunks(per_tx)) {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO measurement (id, subject, kind, t_s, t_ns, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (r, (subject, kind)) in chunk.iter().zip(keys) {
                stmt.execute(rusqlite::params![
                    &r.id.as_u128().to_be_bytes()[..],
                    subject,
                    kind,
                    r.t_s,
                    r.t_ns,
                    r.body
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(t.elapsed())
}

async fn pg_schema(url: &str, name: &str) -> Result<String, Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .await?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options=-csearch_path%3D{name}"))
}

fn query_note(name: &str, p50: Duration, p95: Duration, rows: usize) -> String {
    format!(
        "{name}: query one subject × one kind × one year ({rows} rows): median {:.2} ms, p95 {:.2} ms",
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let mut rows: i64 = 1_000_000;
    let mut queries: usize = 200;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rows" => rows = args.next().ok_or("--rows N")?.parse()?,
            "--queries" => queries = args.next().ok_or("--queries Q")?.parse()?,
            other => {
                return Err(format!("unknown argument {other}; use --rows N --queries Q").into());
            }
        }
    }
    eprintln!("generating {rows} measurements ...");
    let data = dataset(rows);
    let t = Instant::now();
    let raw = raw_rows(&data);
    let encode = t.elapsed();
    let n = data.len();
    let dir = tempfile::tempdir()?;
    let mut table = Vec::new();
    let mut notes = Vec::new();

    // SQLite: the raw ceiling first, then the store with both durability settings.
    eprintln!("sqlite raw ...");
    let raw_path = dir.path().join("raw.db");
    drop(SqliteStore::open(&raw_path).await?); // same schema and indexes
    let sqlite_ceiling = Figures {
        name: "SQLite raw: prepared INSERT, one transaction".into(),
        write: sqlite_raw(&raw_path, &raw, raw.len().max(1))?,
        rows: n,
    };
    // A diagnostic beside the ceiling: the same bare statement, committed every 1,000 rows.
    // The gap to the ceiling is what small transactions cost SQLite itself.
    eprintln!("sqlite raw, batched ...");
    let batched_path = dir.path().join("raw-batched.db");
    drop(SqliteStore::open(&batched_path).await?);
    let sqlite_batched = Figures {
        name: format!("SQLite raw, committed every {BATCH} rows (diagnostic)"),
        write: sqlite_raw(&batched_path, &raw, BATCH)?,
        rows: n,
    };
    for (batch, sync) in [
        (BATCH, Synchronous::Normal),
        (BATCH, Synchronous::Full),
        (10 * BATCH, Synchronous::Normal),
    ] {
        eprintln!("sqlite store {batch} {sync:?} ...");
        let path = dir.path().join(format!("store-{batch}-{sync:?}.db"));
        let store = SqliteStore::open_with(
            &path,
            SqliteOptions {
                synchronous: sync,
                ..SqliteOptions::default()
            },
        )
        .await?;
        let write = write_all(&store, &data, batch).await?;
        let (p50, p95, got) = query_latency(&store, queries).await?;
        let f = Figures {
            name: format!("SQLite store, batches of {batch}, synchronous={sync:?}"),
            write,
            rows: n,
        };
        notes.push(query_note(&f.name, p50, p95, got));
        table.push((f, sqlite_ceiling.rate()));
    }
    let ceiling_rate = sqlite_ceiling.rate();
    table.push((sqlite_batched, ceiling_rate));
    table.push((sqlite_ceiling, ceiling_rate));

    match std::env::var("HEALTHANALYZER_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            eprintln!("postgres store ...");
            let store_url = pg_schema(&url, "bench_store").await?;
            let store = PostgresStore::connect(&store_url).await?;
            let write = write_all(&store, &data, BATCH).await?;
            let (client, conn) = tokio_postgres::connect(&store_url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.batch_execute("ANALYZE measurement").await?;
            let (p50, p95, got) = query_latency(&store, queries).await?;
            let f = Figures {
                name: format!("PostgreSQL store, batches of {BATCH} (bulk COPY + one upsert)"),
                write,
                rows: n,
            };
            notes.push(query_note(&f.name, p50, p95, got));
            eprintln!("postgres raw ...");
            let pg_ceiling = Figures {
                name: "PostgreSQL raw: the stored rows again, binary COPY, one transaction".into(),
                write: pg_copy::ceiling(&url, "bench_store", "bench_raw").await?.0,
                rows: n,
            };
            let rate = pg_ceiling.rate();
            table.push((f, rate));
            table.push((pg_ceiling, rate));
        }
        _ => eprintln!("PostgreSQL skipped: HEALTHANALYZER_POSTGRES_URL is not set"),
    }

    println!("Machine: {}; {n} rows, {SUBJECTS} subjects", machine());
    println!();
    println!("| run | time (s) | rows/s | share of its raw ceiling |");
    println!("|---|---:|---:|---:|");
    for (f, ceiling) in &table {
        println!(
            "| {} | {:.2} | {:.0} | {:.0}% |",
            f.name,
            f.write.as_secs_f64(),
            f.rate(),
            100.0 * f.rate() / ceiling
        );
    }
    println!();
    println!(
        "- Encoding the rows (JSON body, keys) alone, outside any database: {:.2} s ({:.0} rows/s); the raw ceilings get it for free.",
        encode.as_secs_f64(),
        n as f64 / encode.as_secs_f64()
    );
    for n in notes {
        println!("- {n}");
    }
    Ok(())
}
