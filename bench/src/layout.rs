//! `layout-bench`: candidate SQLite layouts for imported measurements, measured side by side on
//! the same rows (issue "Ingest and serve at the machine's speed", ADR 0008).
//!
//! ```text
//! cargo run --release -p healthanalyzer-bench --bin layout-bench -- [--days 228] [--patients 1000] [--batch 100000]
//!     [--only N | --from N] [--also N]...   (LAYOUT_TRACE=1 prints every transaction's rate)
//! ```
//!
//! It simulates patients, writes their Observations as FHIR NDJSON, reads them back through the
//! NDJSON file source (so every row carries the kept resource, as an import's rows do), then
//! inserts the same rows into one fresh file per layout with bare prepared statements, in
//! transactions of `--batch` rows. Encoding (JSON, compression) is timed apart from the insert.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use healthanalyzer_fhir::{WriteOptions, write_observation};
use healthanalyzer_model::{Catalog, Measurement};
use healthanalyzer_source::Cursor;
use healthanalyzer_source::testkit::pull_all;
use healthanalyzer_source_sim::{SimConfig, SimSource};
use healthanalyzer_store::backend::identifier_key;
use rusqlite::{Connection, params};

struct Layout {
    name: &'static str,
    ddl: &'static str,
    insert: &'static str,
    /// The columns: `Text` for today's v3 body, `Split` for body without payload + payload.
    encoding: Encoding,
    dict: bool,
    /// How each transaction writes its rows.
    method: Method,
}

/// How a transaction writes its rows.
#[derive(Clone, Copy, PartialEq)]
enum Method {
    /// One prepared insert per row, every index kept up to date row by row (today).
    Rows,
    /// The bulk path: the secondary (`CREATE INDEX`) indexes dropped, the rows inserted, the
    /// indexes built again by `CREATE INDEX` (a sort), all in the one transaction. The first
    /// transaction goes into an empty table; later ones show the cost of rebuilding over a table
    /// that has grown.
    Rebuild,
    /// As `Rebuild`, but every row in one transaction whatever `--batch` says (a first import
    /// written as one set).
    RebuildOneSet,
    /// The transaction's rows staged in a TEMP table, then inserted sorted by
    /// (subject, kind, time).
    Staged,
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    /// v3: the whole measurement, payload inside, as JSON text.
    Text,
    /// The measurement without payload as JSON, the payload's text apart, uncompressed.
    Split,
    /// As `Split`, the payload zstd-compressed (level 1), no dictionary.
    Zstd,
    /// As `Split`, the payload zstd-compressed with a dictionary trained on the first rows.
    ZstdDict,
}

const V3_DDL: &str = "
    CREATE TABLE measurement (id BLOB NOT NULL UNIQUE, subject TEXT NOT NULL, kind TEXT NOT NULL,
        t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1);
    CREATE INDEX m_skt ON measurement (subject, kind, t_s, t_ns, id);
    CREATE INDEX m_st ON measurement (subject, t_s, t_ns, id);
    CREATE INDEX m_t ON measurement (t_s, t_ns, id);";

/// Schema 3's indexes over a table whose payload is a column of its own.
const SPLIT_DDL: &str = "
    CREATE TABLE measurement (id BLOB NOT NULL UNIQUE, subject TEXT NOT NULL, kind TEXT NOT NULL,
        t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB, version INTEGER NOT NULL DEFAULT 1);
    CREATE INDEX m_skt ON measurement (subject, kind, t_s, t_ns, id);
    CREATE INDEX m_st ON measurement (subject, t_s, t_ns, id);
    CREATE INDEX m_t ON measurement (t_s, t_ns, id);";

/// The insert of every layout with a payload column.
const INSERT: &str = "INSERT INTO measurement (id, subject, kind, t_s, t_ns, body, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

fn layouts() -> Vec<Layout> {
    vec![
        Layout {
            name: "v3 today: text body with the payload inside, 4 indexes",
            ddl: V3_DDL,
            insert: "INSERT INTO measurement (id, subject, kind, t_s, t_ns, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            encoding: Encoding::Text,
            dict: false,
            method: Method::Rows,
        },
        Layout {
            name: "v3 indexes, payload in its own column, uncompressed",
            ddl: SPLIT_DDL,
            insert: INSERT,
            encoding: Encoding::Split,
            dict: false,
            method: Method::Rows,
        },
        Layout {
            name: "v3 indexes, payload zstd",
            ddl: SPLIT_DDL,
            insert: INSERT,
            encoding: Encoding::Zstd,
            dict: false,
            method: Method::Rows,
        },
        Layout {
            name: "v3 indexes, payload zstd with a trained dictionary",
            ddl: SPLIT_DDL,
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: false,
            method: Method::Rows,
        },
        Layout {
            name: "dictionary keys (subject, kind integers), payload zstd+dict, 4 indexes",
            ddl: "CREATE TABLE measurement (id BLOB NOT NULL UNIQUE, subject INTEGER NOT NULL, kind INTEGER NOT NULL,
                t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB, version INTEGER NOT NULL DEFAULT 1);
                CREATE INDEX m_skt ON measurement (subject, kind, t_s, t_ns, id);
                CREATE INDEX m_st ON measurement (subject, t_s, t_ns, id);
                CREATE INDEX m_t ON measurement (t_s, t_ns, id);",
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Rows,
        },
        Layout {
            name: "dictionary keys, payload zstd+dict, without the subject-time index (3 indexes)",
            ddl: "CREATE TABLE measurement (id BLOB NOT NULL UNIQUE, subject INTEGER NOT NULL, kind INTEGER NOT NULL,
                t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB, version INTEGER NOT NULL DEFAULT 1);
                CREATE INDEX m_skt ON measurement (subject, kind, t_s, t_ns, id);
                CREATE INDEX m_t ON measurement (t_s, t_ns, id);",
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Rows,
        },
        Layout {
            name: "clustered WITHOUT ROWID on (subject, kind, t, id), payload zstd+dict inline, id + time indexes",
            ddl: "CREATE TABLE measurement (subject INTEGER NOT NULL, kind INTEGER NOT NULL,
                t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, id BLOB NOT NULL, body BLOB NOT NULL, payload BLOB,
                version INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (subject, kind, t_s, t_ns, id)) WITHOUT ROWID;
                CREATE UNIQUE INDEX m_id ON measurement (id);
                CREATE INDEX m_t ON measurement (t_s, t_ns, id);",
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Rows,
        },
        Layout {
            name: "no secondary index at all (diagnostic: the row bytes alone)",
            ddl: "CREATE TABLE measurement (id BLOB NOT NULL, subject INTEGER NOT NULL, kind INTEGER NOT NULL,
                t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB, version INTEGER NOT NULL DEFAULT 1);",
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Rows,
        },
        Layout {
            name: "diagnostic: the id index alone",
            ddl: "CREATE TABLE measurement (id BLOB NOT NULL UNIQUE, subject INTEGER NOT NULL, kind INTEGER NOT NULL,
                t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB, version INTEGER NOT NULL DEFAULT 1);",
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Rows,
        },
        Layout {
            name: "diagnostic: the (subject, kind, time, id) index alone",
            ddl: "CREATE TABLE measurement (id BLOB NOT NULL, subject INTEGER NOT NULL, kind INTEGER NOT NULL,
                t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB, version INTEGER NOT NULL DEFAULT 1);
                CREATE INDEX m_skt ON measurement (subject, kind, t_s, t_ns, id);",
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Rows,
        },
        Layout {
            name: "diagnostic: the (time, id) index alone",
            ddl: "CREATE TABLE measurement (id BLOB NOT NULL, subject INTEGER NOT NULL, kind INTEGER NOT NULL,
                t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB, version INTEGER NOT NULL DEFAULT 1);
                CREATE INDEX m_t ON measurement (t_s, t_ns, id);",
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Rows,
        },
        Layout {
            name: "diagnostic: the id index alone, on the id's first 8 bytes as an integer",
            ddl: "CREATE TABLE measurement (id BLOB NOT NULL, subject INTEGER NOT NULL, kind INTEGER NOT NULL,
                t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB, version INTEGER NOT NULL DEFAULT 1, h INTEGER);
                CREATE INDEX m_h ON measurement (h);",
            insert: "INSERT INTO measurement (id, subject, kind, t_s, t_ns, body, payload, h) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Rows,
        },
        Layout {
            name: "bulk path: schema 5, per transaction the 3 secondary indexes dropped, rows inserted, indexes rebuilt",
            ddl: SCHEMA5_DDL,
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Rebuild,
        },
        Layout {
            name: "bulk path: schema 5, every row in one transaction, indexes dropped and rebuilt (a first import as one set)",
            ddl: SCHEMA5_DDL,
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::RebuildOneSet,
        },
        Layout {
            name: "schema 5, each transaction staged in a TEMP table and inserted sorted by (subject, kind, time)",
            ddl: SCHEMA5_DDL,
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Staged,
        },
        Layout {
            name: "schema 5 without the global time index (3 indexes)",
            ddl: "CREATE TABLE measurement (id BLOB NOT NULL UNIQUE, subject INTEGER NOT NULL, kind INTEGER NOT NULL,
                t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB, version INTEGER NOT NULL DEFAULT 1);
                CREATE INDEX m_skt ON measurement (subject, kind, t_s, t_ns, id);
                CREATE INDEX m_st ON measurement (subject, t_s, t_ns, id);",
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Rows,
        },
        Layout {
            name: "schema 5 with the global time index on t_s alone (narrower entries)",
            ddl: "CREATE TABLE measurement (id BLOB NOT NULL UNIQUE, subject INTEGER NOT NULL, kind INTEGER NOT NULL,
                t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB, version INTEGER NOT NULL DEFAULT 1);
                CREATE INDEX m_skt ON measurement (subject, kind, t_s, t_ns, id);
                CREATE INDEX m_st ON measurement (subject, t_s, t_ns, id);
                CREATE INDEX m_t ON measurement (t_s);",
            insert: INSERT,
            encoding: Encoding::ZstdDict,
            dict: true,
            method: Method::Rows,
        },
    ]
}

/// Schema 5's measurement table (as schema 4's) and its indexes, in the bench's column names.
const SCHEMA5_DDL: &str = "CREATE TABLE measurement (id BLOB NOT NULL UNIQUE, subject INTEGER NOT NULL, kind INTEGER NOT NULL,
    t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB, version INTEGER NOT NULL DEFAULT 1);
    CREATE INDEX m_skt ON measurement (subject, kind, t_s, t_ns, id);
    CREATE INDEX m_st ON measurement (subject, t_s, t_ns, id);
    CREATE INDEX m_t ON measurement (t_s, t_ns, id);";

/// The `CREATE INDEX` statements of a layout, with the names they create.
fn secondary_indexes(ddl: &str) -> Vec<(String, String)> {
    ddl.split(';')
        .map(str::trim)
        .filter(|s| s.starts_with("CREATE INDEX"))
        .map(|s| {
            let name = s.split_whitespace().nth(2).unwrap().to_string();
            (name, s.to_string())
        })
        .collect()
}

struct Encoded {
    id: [u8; 16],
    subject: String,
    subject_n: i64,
    kind: String,
    kind_n: i64,
    t_s: i64,
    t_ns: i64,
    body: Vec<u8>,
    payload: Option<Vec<u8>>,
}

fn encode(rows: &[Measurement], encoding: Encoding, dict: Option<&[u8]>) -> Vec<Encoded> {
    let dict = dict.unwrap_or(&[]);
    let mut subjects: HashMap<String, i64> = HashMap::new();
    let mut kinds: HashMap<String, i64> = HashMap::new();
    let mut compressor = Some(zstd::bulk::Compressor::with_dictionary(1, dict).unwrap());
    let mut plain = zstd::bulk::Compressor::new(1).unwrap();
    rows.iter()
        .map(|m| {
            let subject = identifier_key(&m.subject);
            let n = subjects.len() as i64;
            let subject_n = *subjects.entry(subject.clone()).or_insert(n);
            let kind = m.kind.as_str().to_string();
            let n = kinds.len() as i64;
            let kind_n = *kinds.entry(kind.clone()).or_insert(n);
            let nanos = m.effective.instant().as_nanosecond();
            let t_s = nanos.div_euclid(1_000_000_000) as i64;
            let t_ns = nanos.rem_euclid(1_000_000_000) as i64;
            let (body, payload) = if encoding == Encoding::Text {
                (serde_json::to_vec(m).unwrap(), None)
            } else {
                let mut bare = m.clone();
                let payload = bare.provenance.payload.take().map(|p| p.content);
                let body = serde_json::to_vec(&bare).unwrap();
                let payload = payload.map(|p| match encoding {
                    Encoding::Split => p.into_bytes(),
                    Encoding::Zstd => plain.compress(p.as_bytes()).unwrap(),
                    _ => compressor.as_mut().unwrap().compress(p.as_bytes()).unwrap(),
                });
                (body, payload)
            };
            Encoded {
                id: m.id.as_uuid().as_u128().to_be_bytes(),
                subject,
                subject_n,
                kind,
                kind_n,
                t_s,
                t_ns,
                body,
                payload,
            }
        })
        .collect()
}

fn insert(
    path: &Path,
    layout: &Layout,
    rows: &[Encoded],
    batch: usize,
    sorted: bool,
    cache: i64,
) -> Duration {
    let _ = std::fs::remove_file(path);
    let mut conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.pragma_update(None, "cache_size", -cache * 1024)
        .unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 8192)
        .unwrap();
    conn.execute_batch(layout.ddl).unwrap();
    let indexes = secondary_indexes(layout.ddl);
    let batch = if layout.method == Method::RebuildOneSet {
        rows.len().max(1)
    } else {
        batch
    };
    if layout.method == Method::Staged {
        conn.execute_batch(
            "CREATE TEMP TABLE stage (id BLOB NOT NULL, subject INTEGER NOT NULL, kind INTEGER NOT NULL,
                t_s INTEGER NOT NULL, t_ns INTEGER NOT NULL, body BLOB NOT NULL, payload BLOB)",
        )
        .unwrap();
    }
    let t = Instant::now();
    let trace = std::env::var_os("LAYOUT_TRACE").is_some();
    for (k, chunk) in rows.chunks(batch).enumerate() {
        let started = Instant::now();
        let mut order: Vec<&Encoded> = chunk.iter().collect();
        if sorted {
            order.sort_unstable_by_key(|r| r.id);
        }
        let tx = conn.transaction().unwrap();
        let rebuild = matches!(layout.method, Method::Rebuild | Method::RebuildOneSet);
        if rebuild {
            for (name, _) in &indexes {
                tx.execute_batch(&format!("DROP INDEX {name}")).unwrap();
            }
        }
        {
            let insert = if layout.method == Method::Staged {
                "INSERT INTO stage (id, subject, kind, t_s, t_ns, body, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            } else {
                layout.insert
            };
            let mut s = tx.prepare_cached(insert).unwrap();
            for r in order {
                if layout.encoding == Encoding::Text {
                    s.execute(params![
                        &r.id[..],
                        r.subject,
                        r.kind,
                        r.t_s,
                        r.t_ns,
                        std::str::from_utf8(&r.body).unwrap()
                    ])
                    .unwrap();
                } else if layout.insert.contains("?8") {
                    s.execute(params![
                        &r.id[..],
                        r.subject_n,
                        r.kind_n,
                        r.t_s,
                        r.t_ns,
                        r.body,
                        r.payload,
                        i64::from_be_bytes(r.id[..8].try_into().unwrap())
                    ])
                    .unwrap();
                } else if layout.dict {
                    s.execute(params![
                        &r.id[..],
                        r.subject_n,
                        r.kind_n,
                        r.t_s,
                        r.t_ns,
                        r.body,
                        r.payload
                    ])
                    .unwrap();
                } else {
                    s.execute(params![
                        &r.id[..],
                        r.subject,
                        r.kind,
                        r.t_s,
                        r.t_ns,
                        r.body,
                        r.payload
                    ])
                    .unwrap();
                }
            }
        }
        if layout.method == Method::Staged {
            tx.execute_batch(
                "INSERT INTO measurement (id, subject, kind, t_s, t_ns, body, payload)
                 SELECT id, subject, kind, t_s, t_ns, body, payload FROM stage
                 ORDER BY subject, kind, t_s, t_ns;
                 DELETE FROM stage;",
            )
            .unwrap();
        }
        if rebuild {
            for (_, create) in &indexes {
                tx.execute_batch(create).unwrap();
            }
        }
        tx.commit().unwrap();
        if trace {
            println!(
                "  transaction {k}: {} rows into {}: {:.0} rows/s",
                chunk.len(),
                k * batch,
                chunk.len() as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    t.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut patients = 1000;
    let mut days = 228;
    let mut batch = 100_000;
    let mut only: Option<usize> = None;
    let mut from = 0;
    let mut sorted = false;
    let mut cache: i64 = 32;
    let mut migration = false;
    let mut also: Vec<usize> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse::<i64>().ok())
                .expect("a number")
        };
        match a.as_str() {
            "--patients" => patients = value() as usize,
            "--days" => days = value() as u32,
            "--batch" => batch = value() as usize,
            "--only" => only = Some(value() as usize),
            "--from" => from = value() as usize,
            "--also" => also.push(value() as usize),
            "--sorted" => sorted = value() == 1,
            "--cache" => cache = value(),
            "--migration" => migration = value() == 1,
            other => panic!("unknown argument {other}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = SimSource::new(SimConfig {
        patients,
        days,
        ..SimConfig::default()
    })
    .unwrap();
    let options = WriteOptions::new(Catalog::builtin());
    let file = dir.path().join("all.ndjson");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    for b in pull_all(&sim, &Cursor::start(), 10_000).await {
        for m in &b.measurements {
            writeln!(w, "{}", write_observation(m, &options).unwrap()).unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);
    let source = healthanalyzer_pipeline::file_source(
        "file:all.ndjson",
        &file,
        Some("fhir-ndjson"),
        healthanalyzer_source_files::FileOptions::new(healthanalyzer_model::Identifier::local("x")),
    )
    .unwrap();
    let rows: Vec<Measurement> = pull_all(&source, &Cursor::start(), 10_000)
        .await
        .into_iter()
        .flat_map(|b| b.measurements)
        .collect();
    if migration {
        // A schema 3 file holding these rows, as the previous release wrote them, opened by
        // this build: the time of the migration to schema 4.
        let path = dir.path().join("v3.db");
        healthanalyzer_store_sqlite::create_at_version(&path, 3).unwrap();
        let encoded = encode(&rows, Encoding::Text, None);
        let t = Instant::now();
        {
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            {
                let mut s = tx
                    .prepare("INSERT INTO measurement (id, subject, kind, t_s, t_ns, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                    .unwrap();
                for r in &encoded {
                    s.execute(params![
                        &r.id[..],
                        r.subject,
                        r.kind,
                        r.t_s,
                        r.t_ns,
                        std::str::from_utf8(&r.body).unwrap()
                    ])
                    .unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let filled = t.elapsed();
        let before = std::fs::metadata(&path).unwrap().len();
        let t = Instant::now();
        let store = healthanalyzer_store_sqlite::SqliteStore::open(&path)
            .await
            .unwrap();
        let took = t.elapsed();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("VACUUM").unwrap();
        drop(conn);
        let after = std::fs::metadata(&path).unwrap().len();
        println!(
            "migration of a schema 3 file of {} rows ({:.0} MB, filled in {:.1} s) to schema 4: {:.1} s, {:.0} rows/s; {:.0} MB after VACUUM",
            rows.len(),
            before as f64 / 1e6,
            filled.as_secs_f64(),
            took.as_secs_f64(),
            rows.len() as f64 / took.as_secs_f64(),
            after as f64 / 1e6
        );
        return;
    }
    let samples: Vec<&[u8]> = rows
        .iter()
        .step_by((rows.len() / 2000).max(1))
        .filter_map(|m| m.provenance.payload.as_ref().map(|p| p.content.as_bytes()))
        .collect();
    let t = Instant::now();
    let dict = zstd::dict::from_samples(&samples, 16 * 1024).unwrap();
    let train = t.elapsed();
    println!(
        "{} rows, batches of {batch}; dictionary of {} bytes trained on {} payloads in {:.2} s",
        rows.len(),
        dict.len(),
        samples.len(),
        train.as_secs_f64()
    );
    println!();
    println!("| layout | encode rows/s | insert rows/s | bytes/row on disk |");
    println!("|---|---:|---:|---:|");
    for (i, layout) in layouts().iter().enumerate() {
        if !also.contains(&i) && (only.is_some_and(|o| o != i) || i < from) {
            continue;
        }
        let t = Instant::now();
        let encoded = encode(&rows, layout.encoding, Some(&dict[..]));
        let enc = t.elapsed();
        let path = dir.path().join(format!("l{i}.db"));
        let took = insert(&path, layout, &encoded, batch, sorted, cache);
        let size = std::fs::metadata(&path).unwrap().len();
        println!(
            "| {} | {:.0} | {:.0} | {:.0} |",
            layout.name,
            rows.len() as f64 / enc.as_secs_f64(),
            rows.len() as f64 / took.as_secs_f64(),
            size as f64 / rows.len() as f64
        );
        let _ = std::fs::remove_file(&path);
    }
}
