//! The write path: write sets checked and applied inside one `BEGIN IMMEDIATE` transaction, and
//! group commit.
//!
//! Every write of the store is a write set, sent to the store's writer thread. The thread takes
//! every set waiting on its channel and applies them in one transaction, each inside its own
//! savepoint, so a set whose precondition fails is rolled back alone while its neighbours commit
//! with one fsync between them. A set whose caller has gone (its future dropped, say by a
//! request time limit) before the commit is left out: before committing, the transaction is
//! rolled back and redone without it.
//!
//! (A first version let each caller queue its set and then take the connection itself on the
//! blocking pool. Under 32 concurrent writers the pool's threads all waited on the connection,
//! new sets waited ~10 ms for a thread, and commits held 1.2 sets on average: no grouping.)

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use healthanalyzer_model::Identifier;
use healthanalyzer_store::backend::{identifier_key, parse_identifier_key};
use healthanalyzer_store::{
    Applied, Conflict, ConflictReason, Error, Precondition, RecordKey, Result, WriteSet,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::documents::{self, DocRow};
use crate::error::{bad_row, db};
use crate::rows::{self, Row, id_bytes};

/// At most this many sets, or about this many records, go into one transaction.
const GROUP_SETS: usize = 256;
const GROUP_RECORDS: usize = 100_000;

/// A write set with its rows encoded, ready for the transaction.
pub(crate) struct Prepared {
    set: WriteSet,
    rows: Vec<Row>,
    subject_keys: Vec<String>,
    subject_bodies: Vec<String>,
    documents: Vec<DocRow>,
}

impl Prepared {
    pub(crate) fn of(mut set: WriteSet) -> Result<Self> {
        set.check()?;

        let rows = set
            .measurements
            .iter_mut()
            .map(|w| Row::of(&mut w.measurement))
            .collect::<Result<Vec<_>>>()?;
        let subject_keys = set
            .subjects
            .iter()
            .map(|w| identifier_key(&w.subject.id))
            .collect();
        let subject_bodies = set
            .subjects
            .iter()
            .map(|w| rows::encode_subject(&w.subject))
            .collect::<Result<Vec<_>>>()?;
        let documents = set
            .documents
            .iter()
            .map(|w| DocRow::of(&w.document))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            set,
            rows,
            subject_keys,
            subject_bodies,
            documents,
        })
    }
}

/// A set sent to the writer, encoded by its caller (so that encoding, compression above all,
/// runs beside the writer rather than on it), and where its outcome goes.
pub(crate) struct Request {
    pub(crate) set: Prepared,
    pub(crate) reply: oneshot::Sender<Result<Applied>>,
}

/// Sets of at most this many records are encoded on the caller's thread; larger ones on the
/// blocking pool (an import batch should not hold up an async worker).
pub(crate) const CALLER_ENCODES: usize = 64;

impl Prepared {
    pub(crate) fn size(&self) -> usize {
        size(&self.set)
    }
}

/// A set in a group.
struct Job {
    prepared: Prepared,
    reply: oneshot::Sender<Result<Applied>>,
}

fn size(set: &WriteSet) -> usize {
    set.measurements.len() + set.subjects.len() + set.documents.len() + set.deletions.len() + 1
}

/// How many transactions the writer committed and how many write sets they held.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) transactions: AtomicU64,
    pub(crate) sets: AtomicU64,
    /// Committed sets that took the bulk path.
    pub(crate) bulk_sets: AtomicU64,
}

/// Starts the writer thread of a store: it applies what arrives on the returned channel, and
/// ends when every sender is gone (the store is dropped).
pub(crate) fn spawn(conn: Arc<Mutex<Connection>>, stats: Arc<Stats>) -> std::io::Result<Writer> {
    let (tx, rx) = mpsc::channel::<Request>();
    let thread = std::thread::Builder::new()
        .name("healthanalyzer-sqlite-writer".into())
        .spawn(move || run(&conn, &rx, &stats))?;
    Ok(Writer {
        jobs: Some(tx),
        thread: Some(thread),
    })
}

/// The handle of a writer thread. Dropping it stops the thread after the sets already sent and
/// waits for it, so that once a store is dropped its file is closed (another program may then
/// open it exclusively).
pub(crate) struct Writer {
    jobs: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("running", &self.jobs.is_some())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Sends a set to the thread; `false` when the thread is gone.
    pub(crate) fn send(&self, request: Request) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(request).is_ok())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take()); // the thread's `recv` now ends
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Mutex<Connection>, rx: &mpsc::Receiver<Request>, stats: &Stats) {
    let mut carried: Option<Request> = None;
    let mut keys = Keys::default();
    loop {
        let first = match carried.take() {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        // Everything waiting, up to the group's bounds.
        let mut records = first.set.size();
        let mut group = vec![first];
        while group.len() < GROUP_SETS {
            match rx.try_recv() {
                Ok(r) if records + r.set.size() > GROUP_RECORDS => {
                    carried = Some(r);
                    break;
                }
                Ok(r) => {
                    records += r.set.size();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        let mut jobs = Vec::with_capacity(group.len());
        for r in group {
            if r.reply.is_closed() {
                continue; // its caller is gone: nothing to write for it
            }
            jobs.push(Job {
                prepared: r.set,
                reply: r.reply,
            });
        }
        if jobs.is_empty() {
            continue;
        }
        let n = jobs.len() as u64;
        let Ok(mut conn) = conn.lock() else {
            for job in jobs {
                let _ = job.reply.send(Err(Error::Unavailable {
                    reason: "a database connection was poisoned by a panic in another task".into(),
                    retryable: false,
                    source: None,
                }));
            }
            continue;
        };
        if let Some(bulk) = run_group(&mut conn, jobs, &mut keys) {
            stats.transactions.fetch_add(1, Ordering::Relaxed);
            stats.sets.fetch_add(n, Ordering::Relaxed);
            stats.bulk_sets.fetch_add(bulk, Ordering::Relaxed);
        }
    }
}

/// A copy of an error for every set of a failed group (store errors are not `Clone`).
fn copy_of(e: &Error) -> Error {
    match e {
        Error::Unavailable {
            reason, retryable, ..
        } => Error::Unavailable {
            reason: reason.clone(),
            retryable: *retryable,
            source: None,
        },
        other => Error::Backend {
            backend: "sqlite",
            source: other.to_string().into(),
        },
    }
}

/// Applies a group; when it committed, how many of its sets took the bulk path.
fn run_group(conn: &mut Connection, mut jobs: Vec<Job>, keys: &mut Keys) -> Option<u64> {
    // Callers that are gone are not written for.
    jobs.retain(|j| !j.reply.is_closed());
    while !jobs.is_empty() {
        match try_group(conn, &jobs, keys) {
            Err(e) => {
                for job in jobs {
                    let _ = job.reply.send(Err(copy_of(&e)));
                }
                return None;
            }
            Ok(None) => {
                // A caller left while its set was applied: redo the group without it.
                jobs.retain(|j| !j.reply.is_closed());
            }
            Ok(Some((results, bulk))) => {
                for (job, r) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(r);
                }
                return Some(bulk);
            }
        }
    }
    None
}

/// Each set's outcome, and how many sets took the bulk path.
type Outcomes = (Vec<Result<Applied>>, u64);

/// One transaction over `jobs`: `Ok(None)` when it was rolled back because a caller left.
fn try_group(conn: &mut Connection, jobs: &[Job], keys: &mut Keys) -> Result<Option<Outcomes>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let mut results = Vec::with_capacity(jobs.len());
    // Savepoints by cached statements (rusqlite's `Savepoint` parses its SQL every time).
    let run = |sql: &str| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map_err(db)
    };
    let mut added = NewKeys::default();
    let mut bulk_sets = 0;
    for job in jobs {
        run("SAVEPOINT write_set")?;
        let mut new = NewKeys::default();
        let mut bulk = false;
        match apply_one(&tx, &job.prepared, keys, &mut new, &mut bulk) {
            Ok(applied) => {
                run("RELEASE write_set")?;
                bulk_sets += u64::from(bulk);
                added.series.extend(new.series);
                added.kinds.extend(new.kinds);
                results.push(Ok(applied));
            }
            Err(e) => {
                run("ROLLBACK TO write_set")?;
                run("RELEASE write_set")?;
                results.push(Err(e));
            }
        }
    }
    let left = jobs
        .iter()
        .zip(&results)
        .any(|(j, r)| r.is_ok() && j.reply.is_closed());
    if left {
        return Ok(None); // dropping `tx` rolls it back
    }
    tx.commit().map_err(db)?;
    keys.absorb(added);
    Ok(Some((results, bulk_sets)))
}

fn conflict(record: RecordKey, reason: ConflictReason) -> Error {
    Error::PreconditionFailed(Box::new(Conflict { record, reason }))
}

fn version_of(conn: &Connection, sql: &str, key: &dyn rusqlite::ToSql) -> Result<Option<u64>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row([key], |r| r.get::<_, i64>(0)).optional())
        .map(|v| v.map(|v| v.max(1) as u64))
        .map_err(db)
}

const MEASUREMENT_VERSION: &str = "SELECT version FROM measurement WHERE id = ?1";
const SUBJECT_VERSION: &str = "SELECT version FROM subject WHERE key = ?1";

/// Applies one set in the current transaction (or savepoint); `bulk` is set when its
/// measurements took the bulk path.
fn apply_one(
    conn: &Connection,
    p: &Prepared,
    keys: &Keys,
    new: &mut NewKeys,
    bulk: &mut bool,
) -> Result<Applied> {
    let set = &p.set;
    let mut applied = Applied::default();
    for d in &set.deletions {
        match &d.record {
            RecordKey::Measurement(id) => {
                let id = id_bytes(id);
                let stored = version_of(conn, MEASUREMENT_VERSION, &&id[..])?;
                d.precondition.check(&d.record, stored)?;
                if stored.is_some() {
                    conn.prepare_cached("DELETE FROM measurement WHERE id = ?1")
                        .and_then(|mut s| s.execute([&id[..]]))
                        .map_err(db)?;
                    applied.deleted += 1;
                }
            }
            RecordKey::Document { resource_type, id } => {
                if documents::delete(conn, &d.record, resource_type, id, d.precondition)? {
                    applied.deleted += 1;
                }
            }
            RecordKey::Subject(primary) => {
                let key = identifier_key(primary);
                let stored = version_of(conn, SUBJECT_VERSION, &key)?;
                d.precondition.check(&d.record, stored)?;
                if stored.is_some() {
                    conn.prepare_cached("DELETE FROM subject WHERE key = ?1")
                        .and_then(|mut s| s.execute([&key]))
                        .map_err(db)?;
                    conn.prepare_cached("DELETE FROM subject_identifier WHERE subject = ?1")
                        .and_then(|mut s| s.execute([&key]))
                        .map_err(db)?;
                    applied.deleted += 1;
                }
            }
        }
    }
    if !set.subjects.is_empty() {
        put_subjects(conn, p, &mut applied)?;
    }
    *bulk = put_measurements(conn, p, &mut applied, keys, new)?;
    if !set.documents.is_empty() {
        documents::put(conn, &set.documents, &p.documents, &mut applied)?;
    }
    if let Some(cp) = &set.checkpoint {
        conn.prepare_cached(
            "INSERT INTO checkpoint (source_id, cursor) VALUES (?1, ?2)
             ON CONFLICT (source_id) DO UPDATE SET cursor = excluded.cursor",
        )
        .and_then(|mut s| s.execute(params![cp.source_id, cp.cursor]))
        .map_err(db)?;
    }
    Ok(applied)
}

/// The numbers of `series` and `kind_name` keys that are committed (those rows are never changed
/// or deleted, so a committed number stays right, also across processes).
#[derive(Default)]
struct Keys {
    series: HashMap<String, i64>,
    kinds: HashMap<String, i64>,
}

/// Keys a set added, kept apart until its transaction commits: a set rolled back to its
/// savepoint takes its new dictionary rows with it.
#[derive(Default)]
struct NewKeys {
    series: HashMap<String, i64>,
    kinds: HashMap<String, i64>,
}

impl Keys {
    fn absorb(&mut self, new: NewKeys) {
        self.series.extend(new.series);
        self.kinds.extend(new.kinds);
    }
}

/// The number of `key` in a dictionary table (`series` or `kind_name`), added when new.
fn key_number(
    conn: &Connection,
    committed: &HashMap<String, i64>,
    new: &mut HashMap<String, i64>,
    table: &str,
    key: &str,
) -> Result<i64> {
    if let Some(n) = committed.get(key).or_else(|| new.get(key)) {
        return Ok(*n);
    }
    let column = if table == "series" { "key" } else { "name" };
    let found: Option<i64> = conn
        .prepare_cached(&format!("SELECT n FROM {table} WHERE {column} = ?1"))
        .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
        .map_err(db)?;
    let n = match found {
        Some(n) => n,
        None => conn
            .prepare_cached(&format!(
                "INSERT INTO {table} ({column}) VALUES (?1) RETURNING n"
            ))
            .and_then(|mut s| s.query_row([key], |r| r.get(0)))
            .map_err(db)?,
    };
    new.insert(key.to_string(), n);
    Ok(n)
}

/// The set's measurements; true when they took the bulk path.
fn put_measurements(
    conn: &Connection,
    p: &Prepared,
    applied: &mut Applied,
    keys: &Keys,
    new: &mut NewKeys,
) -> Result<bool> {
    if p.rows.is_empty() {
        return Ok(false);
    }
    let bulk = is_bulk(conn, p.rows.len())?;
    if bulk {
        conn.execute_batch(crate::schema::DROP_SECONDARY_INDEXES)
            .map_err(db)?;
    }
    put_rows(conn, p, applied, keys, new)?;
    if bulk {
        // A sort per index, far cheaper than the rows' b-tree inserts one by one. Inside the
        // set's savepoint: a failure, a rollback or a crash leaves the indexes as they were.
        conn.execute_batch(crate::schema::SECONDARY_INDEXES)
            .map_err(db)?;
    }
    Ok(bulk)
}

/// A set of at least this many measurements may take the bulk path.
pub(crate) const BULK_MIN_ROWS: usize = 10_000;

/// Whether a set of `rows` measurements takes the bulk path (ADR 0016): its secondary indexes
/// are dropped before its rows go in and built again after, in its savepoint. It pays when the
/// set is large and the table is small beside it (a first import or a first sync): the rebuild
/// reads the whole table, so into a large table the per-row inserts are cheaper. The table's
/// size is bounded by its largest rowid (one b-tree descent; rowids are never reused below it).
fn is_bulk(conn: &Connection, rows: usize) -> Result<bool> {
    if rows < BULK_MIN_ROWS {
        return Ok(false);
    }
    let most: i64 = conn
        .prepare_cached("SELECT coalesce(max(rowid), 0) FROM measurement")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db)?;
    Ok(usize::try_from(most).unwrap_or(usize::MAX) <= rows.saturating_mul(BULK_TABLE_PER_SET))
}

/// The bulk path is taken while the table holds at most this many rows per row of the set.
pub(crate) const BULK_TABLE_PER_SET: usize = 1;

/// The set's measurements, row by row; the unique id index keeps the upsert semantics (and a
/// duplicate within the set) the same on the bulk path.
fn put_rows(
    conn: &Connection,
    p: &Prepared,
    applied: &mut Applied,
    keys: &Keys,
    new: &mut NewKeys,
) -> Result<()> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO measurement (id, subject, kind, t_s, t_ns, body, payload_type, payload, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1) ON CONFLICT (id) DO NOTHING",
        )
        .map_err(db)?;
    // Unchanged: the same body and kept record (the body holds the subject, kind and time the
    // other columns are made from). Packing is deterministic (one dictionary, one level), so
    // equal records have equal bytes.
    let mut update = conn
        .prepare_cached(
            "UPDATE measurement SET subject = ?2, kind = ?3, t_s = ?4, t_ns = ?5, body = ?6,
                    payload_type = ?7, payload = ?8, version = version + 1
             WHERE id = ?1 AND (body IS NOT ?6 OR payload_type IS NOT ?7 OR payload IS NOT ?8)
             RETURNING version",
        )
        .map_err(db)?;
    let mut update_at = conn
        .prepare_cached(
            "UPDATE measurement SET subject = ?2, kind = ?3, t_s = ?4, t_ns = ?5, body = ?6,
                    payload_type = ?7, payload = ?8,
                    version = version + (body IS NOT ?6 OR payload_type IS NOT ?7 OR payload IS NOT ?8)
             WHERE id = ?1 AND version = ?9 RETURNING version",
        )
        .map_err(db)?;
    applied.measurement_versions.reserve(p.rows.len());
    for (w, r) in p.set.measurements.iter().zip(&p.rows) {
        let record = || RecordKey::Measurement(w.measurement.id);
        let subject = key_number(conn, &keys.series, &mut new.series, "series", &r.subject)?;
        let kind = key_number(conn, &keys.kinds, &mut new.kinds, "kind_name", &r.kind)?;
        let row = params![
            &r.id[..],
            subject,
            kind,
            r.t_s,
            r.t_ns,
            r.body,
            r.payload_type,
            r.payload
        ];
        let version = match w.precondition {
            Precondition::Any | Precondition::Absent => {
                if insert.execute(row).map_err(db)? == 1 {
                    applied.measurements.inserted += 1;
                    1
                } else if let Precondition::Absent = w.precondition {
                    let found = version_of(conn, MEASUREMENT_VERSION, &&r.id[..])?.unwrap_or(1);
                    return Err(conflict(
                        record(),
                        ConflictReason::Exists { version: found },
                    ));
                } else if let Some(v) = update
                    .query_row(row, |x| x.get::<_, i64>(0))
                    .optional()
                    .map_err(db)?
                {
                    applied.measurements.updated += 1;
                    v as u64
                } else {
                    applied.measurements.unchanged += 1;
                    version_of(conn, MEASUREMENT_VERSION, &&r.id[..])?.unwrap_or(1)
                }
            }
            Precondition::Version(want) => {
                let wanted = i64::try_from(want).unwrap_or(i64::MAX);
                let done = update_at
                    .query_row(
                        params![
                            &r.id[..],
                            subject,
                            kind,
                            r.t_s,
                            r.t_ns,
                            r.body,
                            r.payload_type,
                            r.payload,
                            wanted
                        ],
                        |x| x.get::<_, i64>(0),
                    )
                    .optional()
                    .map_err(db)?;
                match done {
                    Some(v) if v as u64 == want => {
                        applied.measurements.unchanged += 1;
                        want
                    }
                    Some(v) => {
                        applied.measurements.updated += 1;
                        v as u64
                    }
                    None => {
                        let stored = version_of(conn, MEASUREMENT_VERSION, &&r.id[..])?;
                        return Err(w
                            .precondition
                            .check(&record(), stored)
                            .err()
                            .unwrap_or_else(|| conflict(record(), ConflictReason::Missing)));
                    }
                }
            }
        };
        applied.measurement_versions.push(version);
    }
    Ok(())
}

fn put_subjects(conn: &Connection, p: &Prepared, applied: &mut Applied) -> Result<()> {
    let set = &p.set;
    // Identifiers first, for all subjects of the set together: one may hand an identifier to
    // another.
    let rewritten: HashSet<&str> = p.subject_keys.iter().map(String::as_str).collect();
    {
        let mut owner = conn
            .prepare_cached("SELECT subject FROM subject_identifier WHERE identifier = ?1")
            .map_err(db)?;
        for (w, key) in set.subjects.iter().zip(&p.subject_keys) {
            let s = &w.subject;
            for alias in std::iter::once(&s.id).chain(&s.other_ids) {
                let held: Option<String> = owner
                    .query_row([identifier_key(alias)], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                if let Some(held) = held
                    && held != *key
                    && !rewritten.contains(held.as_str())
                {
                    let owner: Identifier =
                        parse_identifier_key(&held).ok_or_else(|| bad_row("subject key", &held))?;
                    return Err(conflict(
                        RecordKey::Subject(s.id.clone()),
                        ConflictReason::IdentifierTaken {
                            identifier: alias.clone(),
                            owner,
                        },
                    ));
                }
            }
        }
    }
    let mut current = conn
        .prepare_cached("SELECT body, version FROM subject WHERE key = ?1")
        .map_err(db)?;
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO subject (key, body, version) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET body = excluded.body, version = excluded.version",
        )
        .map_err(db)?;
    let mut release = conn
        .prepare_cached("DELETE FROM subject_identifier WHERE subject = ?1")
        .map_err(db)?;
    let mut claim = conn
        .prepare_cached(
            "INSERT INTO subject_identifier (identifier, subject) VALUES (?1, ?2)
             ON CONFLICT (identifier) DO UPDATE SET subject = excluded.subject",
        )
        .map_err(db)?;
    for ((w, key), body) in set
        .subjects
        .iter()
        .zip(&p.subject_keys)
        .zip(&p.subject_bodies)
    {
        let s = &w.subject;
        let old: Option<(String, i64)> = current
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db)?;
        let stored = old.as_ref().map(|(_, v)| (*v).max(1) as u64);
        w.precondition
            .check(&RecordKey::Subject(s.id.clone()), stored)?;
        let version = match (&old, stored) {
            (Some((old, _)), Some(v)) if old == body => {
                applied.subjects.unchanged += 1;
                applied.subject_versions.push(v);
                continue;
            }
            (_, Some(v)) => {
                applied.subjects.updated += 1;
                v + 1
            }
            (_, None) => {
                applied.subjects.inserted += 1;
                1
            }
        };
        upsert
            .execute(params![
                key,
                body,
                i64::try_from(version).unwrap_or(i64::MAX)
            ])
            .map_err(db)?;
        release.execute([key]).map_err(db)?;
        for alias in std::iter::once(&s.id).chain(&s.other_ids) {
            claim
                .execute(params![identifier_key(alias), key])
                .map_err(db)?;
        }
        applied.subject_versions.push(version);
    }
    Ok(())
}
