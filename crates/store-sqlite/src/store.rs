//! The store: connections, options, and the trait implementations.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, KindId, Measurement, MeasurementId, Subject};
use healthanalyzer_store::{
    Checkpoint, Error, Filter, MeasurementStore, Page, Query, Result, SubjectStore, WriteSummary,
    check_batch, check_subjects, identifier_key, parse_identifier_key,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::error::{SqliteError, bad_row, db};
use crate::rows::{self, Row, Where, id_bytes};
use crate::schema::{self, Found, SCHEMA_VERSION};

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is on disk when `write` returns, even after a power cut (the default).
    #[default]
    Full,
    /// A commit survives a crash of the process but may be lost to a power cut or an OS crash;
    /// batches and checkpoints stay consistent either way. Faster on slow disks.
    Normal,
}

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a write waits for another writer (another process) before failing with a
    /// retryable [`Error::Unavailable`]. Default 5 s.
    pub busy_timeout: Duration,
    /// Durability of commits. Default [`Synchronous::Full`].
    pub synchronous: Synchronous,
    /// At most this many reading connections (reads run in parallel with the one writer).
    /// Default 4.
    pub readers: usize,
    /// SQLite's page cache per connection, in MiB. Default 32. A large import into a large
    /// file gains from more: index pages stay cached instead of being read back.
    pub cache_mib: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Full,
            readers: 4,
            cache_mib: 32,
        }
    }
}

#[derive(Debug)]
enum Location {
    File(PathBuf),
    Memory,
}

#[derive(Debug)]
struct Inner {
    location: Location,
    options: SqliteOptions,
    writer: Mutex<Connection>,
    /// Idle reading connections (files only; an in-memory database has just the writer).
    readers: Mutex<Vec<Connection>>,
}

/// The SQLite store. Cheap to clone (an `Arc` inside); every clone shares the connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl SqliteStore {
    /// Opens (creating and migrating as needed) the database file at `path`, with default
    /// options.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, SqliteError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the database file at `path` with `options`.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Self, SqliteError> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || open_file(path, options, SCHEMA_VERSION))
            .await
            .map_err(|e| SqliteError::Url {
                url: String::new(),
                reason: format!("the opening task failed: {e}"),
            })?
    }

    /// A private in-memory database (one connection; gone when the last clone is dropped).
    pub fn memory() -> Result<Self, SqliteError> {
        let path = PathBuf::from(":memory:");
        let mut conn = Connection::open_in_memory().map_err(|source| SqliteError::Open {
            path: path.clone(),
            source,
        })?;
        schema::migrate(&mut conn, &path, SCHEMA_VERSION)?;
        Ok(Self::from_parts(
            Location::Memory,
            SqliteOptions::default(),
            conn,
        ))
    }

    /// Opens a store from a URL: `sqlite:path`, `sqlite://path`, `sqlite:///abs/path` or
    /// `sqlite::memory:`, with optional `busy_timeout_ms`, `synchronous` (`full`, `normal`),
    /// `readers` and `cache_mib` parameters.
    pub async fn open_url(url: &str) -> Result<Self, SqliteError> {
        let (target, options) = parse_url(url)?;
        match target {
            None => Self::memory(),
            Some(path) => Self::open_with(path, options).await,
        }
    }

    /// The file behind the store (`None` for an in-memory database).
    pub fn path(&self) -> Option<&Path> {
        match &self.inner.location {
            Location::File(p) => Some(p),
            Location::Memory => None,
        }
    }

    fn from_parts(location: Location, options: SqliteOptions, writer: Connection) -> Self {
        Self {
            inner: Arc::new(Inner {
                location,
                options,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Runs `f` with the writing connection on the blocking pool.
    async fn with_writer<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let mut conn = lock(&inner.writer)?;
            f(&mut conn)
        })
        .await
    }

    /// Runs `f` with a reading connection on the blocking pool.
    async fn with_reader<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let path = match &inner.location {
                Location::Memory => return f(&*lock(&inner.writer)?),
                Location::File(p) => p,
            };
            let idle = lock(&inner.readers)?.pop();
            let conn = match idle {
                Some(c) => c,
                None => open_reader(path, &inner.options)?,
            };
            let out = f(&conn);
            let mut idle = lock(&inner.readers)?;
            if idle.len() < inner.options.readers.max(1) {
                idle.push(conn);
            }
            out
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Backend {
            backend: "sqlite",
            source: format!("a database task failed: {e}").into(),
        })?
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| Error::Unavailable {
        reason: "a database connection was poisoned by a panic in another task".into(),
        retryable: false,
        source: None,
    })
}

fn configure(conn: &Connection, options: &SqliteOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    // Negative: KiB rather than pages.
    conn.pragma_update(None, "cache_size", -(i64::from(options.cache_mib) * 1024))?;
    // Fold the WAL back into the file every ~32 MiB instead of every 4 MiB: fewer, larger
    // checkpoints (each one syncs the file) during bulk syncs.
    conn.pragma_update(None, "wal_autocheckpoint", 8_192)?;
    Ok(())
}

fn open_reader(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db)?;
    configure(&conn, options).map_err(db)?;
    Ok(conn)
}

fn open_file(
    path: PathBuf,
    options: SqliteOptions,
    target: i64,
) -> Result<SqliteStore, SqliteError> {
    // Check before opening read-write: a file that is not ours must not be touched.
    schema::inspect(&path)?;
    let open_err = |source| SqliteError::Open {
        path: path.clone(),
        source,
    };
    let mut conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    configure(&conn, &options).map_err(open_err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::Open {
            path: path.clone(),
            source: rusqlite::Error::InvalidParameterName(format!(
                "the file system does not support WAL (journal mode stayed {mode})"
            )),
        });
    }
    let sync = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(open_err)?;
    schema::migrate(&mut conn, &path, target)?;
    Ok(SqliteStore::from_parts(Location::File(path), options, conn))
}

/// Creates (or migrates) a database file at exactly schema `version`, for migration tests.
#[doc(hidden)]
pub fn create_at_version(path: &Path, version: i64) -> Result<(), SqliteError> {
    if let Found::Ours(v) = schema::inspect(path)?
        && v > version
    {
        return Err(SqliteError::TooNew {
            path: path.into(),
            found: v,
            supported: version,
        });
    }
    open_file(path.into(), SqliteOptions::default(), version).map(drop)
}

fn parse_url(url: &str) -> Result<(Option<PathBuf>, SqliteOptions), SqliteError> {
    let bad = |reason: &str| SqliteError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let rest = url
        .strip_prefix("sqlite:")
        .ok_or_else(|| bad("expected sqlite:path, sqlite://path or sqlite::memory:"))?;
    let (target, query) = match rest.split_once('?') {
        Some((t, q)) => (t, Some(q)),
        None => (rest, None),
    };
    let target = target.strip_prefix("//").unwrap_or(target);
    if target.is_empty() {
        return Err(bad(
            "no path; use sqlite:path/to/file.db or sqlite::memory:",
        ));
    }
    let mut options = SqliteOptions::default();
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "busy_timeout_ms" => {
                let ms = v
                    .parse::<u64>()
                    .map_err(|_| bad("busy_timeout_ms must be a whole number of milliseconds"))?;
                options.busy_timeout = Duration::from_millis(ms);
            }
            "synchronous" => {
                options.synchronous = match v.to_ascii_lowercase().as_str() {
                    "full" => Synchronous::Full,
                    "normal" => Synchronous::Normal,
                    _ => return Err(bad("synchronous must be full or normal")),
                }
            }
            "readers" => {
                options.readers = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| bad("readers must be a whole number of at least 1"))?;
            }
            "cache_mib" => {
                options.cache_mib = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=65_536).contains(n))
                    .ok_or_else(|| bad("cache_mib must be a whole number from 1 to 65536"))?;
            }
            _ => {
                return Err(bad(&format!(
                    "unknown parameter {k:?}; known: busy_timeout_ms, synchronous, readers, cache_mib"
                )));
            }
        }
    }
    if target == ":memory:" {
        return Ok((None, options));
    }
    Ok((Some(PathBuf::from(target)), options))
}

fn read_measurements(
    conn: &Connection,
    sql: &str,
    params: &[rusqlite::types::Value],
) -> Result<Vec<Measurement>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(db)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db)? {
        let body: String = row.get(0).map_err(db)?;
        out.push(rows::decode(&body)?);
    }
    Ok(out)
}

#[async_trait]
impl MeasurementStore for SqliteStore {
    async fn write(
        &self,
        batch: &[Measurement],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteSummary> {
        let batch = batch.to_vec();
        let checkpoint = checkpoint.cloned();
        self.with_writer(move |conn| {
            check_batch(&batch)?;
            let rows = batch.iter().map(Row::of).collect::<Result<Vec<_>>>()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let mut summary = WriteSummary::default();
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO measurement (id, subject, kind, t_s, t_ns, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                    )
                    .map_err(db)?;
                let mut update = tx
                    .prepare_cached(
                        "UPDATE measurement SET subject = ?2, kind = ?3, t_s = ?4, t_ns = ?5, body = ?6
                         WHERE id = ?1 AND body IS NOT ?6",
                    )
                    .map_err(db)?;
                for r in &rows {
                    let p = params![&r.id[..], r.subject, r.kind, r.t_s, r.t_ns, r.body];
                    if insert.execute(p).map_err(db)? == 1 {
                        summary.inserted += 1;
                    } else if update.execute(p).map_err(db)? == 1 {
                        summary.updated += 1;
                    } else {
                        summary.unchanged += 1;
                    }
                }
                if let Some(cp) = &checkpoint {
                    tx.prepare_cached(
                        "INSERT INTO checkpoint (source_id, cursor) VALUES (?1, ?2)
                         ON CONFLICT (source_id) DO UPDATE SET cursor = excluded.cursor",
                    )
                    .and_then(|mut s| s.execute(params![cp.source_id, cp.cursor]))
                    .map_err(db)?;
                }
            }
            tx.commit().map_err(db)?;
            Ok(summary)
        })
        .await
    }

    async fn get(&self, id: &MeasurementId) -> Result<Option<Measurement>> {
        let id = id_bytes(id);
        self.with_reader(move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM measurement WHERE id = ?1")
                .and_then(|mut s| s.query_row([&id[..]], |r| r.get(0)).optional())
                .map_err(db)?;
            body.as_deref().map(rows::decode).transpose()
        })
        .await
    }

    async fn query(&self, query: &Query) -> Result<Page> {
        let start = query.start()?;
        let mut w = Where::filter(&query.filter);
        if let Some(key) = start {
            w.after(query.order, key);
        }
        let limit = query.limit;
        let order = query.order;
        let sql = format!(
            "SELECT body FROM measurement{}{} LIMIT {}",
            w.sql,
            rows::order_by(order),
            limit.saturating_add(1).min(i64::MAX as usize)
        );
        self.with_reader(move |conn| {
            let items = read_measurements(conn, &sql, &w.params)?;
            Ok(Page::from_overfetch(items, limit, order))
        })
        .await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        let w = Where::filter(filter);
        let sql = format!("SELECT count(*) FROM measurement{}", w.sql);
        self.with_reader(move |conn| {
            let n: i64 = conn
                .prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_row(rusqlite::params_from_iter(w.params.iter()), |r| r.get(0))
                })
                .map_err(db)?;
            Ok(n.max(0) as u64)
        })
        .await
    }

    async fn latest(
        &self,
        subject: &Identifier,
        kinds: &[KindId],
        n: usize,
    ) -> Result<Vec<Measurement>> {
        let key = identifier_key(subject);
        let kinds: Vec<String> = kinds.iter().map(|k| k.as_str().to_string()).collect();
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.with_reader(move |conn| {
            let kinds = if kinds.is_empty() {
                conn.prepare_cached(
                    "SELECT DISTINCT kind FROM measurement WHERE subject = ?1 ORDER BY kind",
                )
                .and_then(|mut s| {
                    s.query_map([&key], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(db)?
            } else {
                kinds
            };
            let mut out = Vec::new();
            for kind in kinds {
                out.extend(read_measurements(
                    conn,
                    "SELECT body FROM measurement WHERE subject = ?1 AND kind = ?2
                     ORDER BY t_s DESC, t_ns DESC, id DESC LIMIT ?3",
                    &[key.clone().into(), kind.into(), n.into()],
                )?);
            }
            Ok(out)
        })
        .await
    }

    async fn subjects(&self) -> Result<Vec<Identifier>> {
        self.with_reader(|conn| {
            let keys = conn
                .prepare_cached("SELECT DISTINCT subject FROM measurement")
                .and_then(|mut s| {
                    s.query_map([], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(db)?;
            let mut out = keys
                .iter()
                .map(|k| parse_identifier_key(k).ok_or_else(|| bad_row("subject key", k)))
                .collect::<Result<Vec<_>>>()?;
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn delete(&self, ids: &[MeasurementId]) -> Result<u64> {
        let ids: Vec<[u8; 16]> = ids.iter().map(id_bytes).collect();
        self.with_writer(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let mut n = 0;
            {
                let mut del = tx
                    .prepare_cached("DELETE FROM measurement WHERE id = ?1")
                    .map_err(db)?;
                for id in &ids {
                    n += del.execute([&id[..]]).map_err(db)? as u64;
                }
            }
            tx.commit().map_err(db)?;
            Ok(n)
        })
        .await
    }

    async fn checkpoint(&self, source_id: &str) -> Result<Option<Checkpoint>> {
        let source_id = source_id.to_string();
        self.with_reader(move |conn| {
            let cursor: Option<String> = conn
                .prepare_cached("SELECT cursor FROM checkpoint WHERE source_id = ?1")
                .and_then(|mut s| s.query_row([&source_id], |r| r.get(0)).optional())
                .map_err(db)?;
            Ok(cursor.map(|cursor| Checkpoint { source_id, cursor }))
        })
        .await
    }

    /// 10,000: every commit rewrites the index pages it touched, and the id index is random, so
    /// small commits cost SQLite more than the rows do (see `docs/benchmarks.md`).
    fn preferred_batch_size(&self) -> usize {
        10_000
    }
}

#[async_trait]
impl SubjectStore for SqliteStore {
    async fn put_subjects(&self, subjects: &[Subject]) -> Result<WriteSummary> {
        let subjects = subjects.to_vec();
        self.with_writer(move |conn| {
            check_subjects(&subjects)?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let mut summary = WriteSummary::default();
            {
                let rewritten: HashSet<String> =
                    subjects.iter().map(|s| identifier_key(&s.id)).collect();
                let mut owner = tx
                    .prepare_cached("SELECT subject FROM subject_identifier WHERE identifier = ?1")
                    .map_err(db)?;
                for (i, s) in subjects.iter().enumerate() {
                    let key = identifier_key(&s.id);
                    for alias in std::iter::once(&s.id).chain(&s.other_ids) {
                        let held: Option<String> = owner
                            .query_row([identifier_key(alias)], |r| r.get(0))
                            .optional()
                            .map_err(db)?;
                        if let Some(held) = held
                            && held != key
                            && !rewritten.contains(&held)
                        {
                            return Err(Error::Conflict {
                                reason: format!(
                                    "subjects[{i}]: identifier {} belongs to another stored subject; nothing was written",
                                    alias.redacted()
                                ),
                            });
                        }
                    }
                }
                let mut current = tx
                    .prepare_cached("SELECT body FROM subject WHERE key = ?1")
                    .map_err(db)?;
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO subject (key, body) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET body = excluded.body",
                    )
                    .map_err(db)?;
                let mut release = tx
                    .prepare_cached("DELETE FROM subject_identifier WHERE subject = ?1")
                    .map_err(db)?;
                let mut claim = tx
                    .prepare_cached(
                        "INSERT INTO subject_identifier (identifier, subject) VALUES (?1, ?2)
                         ON CONFLICT (identifier) DO UPDATE SET subject = excluded.subject",
                    )
                    .map_err(db)?;
                for s in &subjects {
                    let key = identifier_key(&s.id);
                    let body = rows::encode_subject(s)?;
                    let old: Option<String> = current
                        .query_row([&key], |r| r.get(0))
                        .optional()
                        .map_err(db)?;
                    match old {
                        Some(old) if old == body => {
                            summary.unchanged += 1;
                            continue;
                        }
                        Some(_) => summary.updated += 1,
                        None => summary.inserted += 1,
                    }
                    upsert.execute(params![key, body]).map_err(db)?;
                    release.execute([&key]).map_err(db)?;
                    for alias in std::iter::once(&s.id).chain(&s.other_ids) {
                        claim
                            .execute(params![identifier_key(alias), key])
                            .map_err(db)?;
                    }
                }
            }
            tx.commit().map_err(db)?;
            Ok(summary)
        })
        .await
    }

    async fn subject(&self, id: &Identifier) -> Result<Option<Subject>> {
        let key = identifier_key(id);
        self.with_reader(move |conn| {
            let body: Option<String> = conn
                .prepare_cached(
                    "SELECT s.body FROM subject_identifier i JOIN subject s ON s.key = i.subject
                     WHERE i.identifier = ?1",
                )
                .and_then(|mut s| s.query_row([&key], |r| r.get(0)).optional())
                .map_err(db)?;
            body.as_deref().map(rows::decode_subject).transpose()
        })
        .await
    }

    async fn list_subjects(&self) -> Result<Vec<Subject>> {
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM subject ORDER BY key")
                .map_err(db)?;
            let bodies = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(db)?
                .collect::<std::result::Result<Vec<String>, _>>()
                .map_err(db)?;
            bodies.iter().map(|b| rows::decode_subject(b)).collect()
        })
        .await
    }

    async fn delete_subject(&self, id: &Identifier) -> Result<bool> {
        let key = identifier_key(id);
        self.with_writer(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let n = tx
                .execute("DELETE FROM subject WHERE key = ?1", [&key])
                .map_err(db)?;
            tx.execute("DELETE FROM subject_identifier WHERE subject = ?1", [&key])
                .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(n > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (p, o) = parse_url("sqlite:data/health.db").unwrap();
        assert_eq!(p, Some(PathBuf::from("data/health.db")));
        assert_eq!(o.synchronous, Synchronous::Full);
        let (p, _) = parse_url("sqlite:///var/lib/ha.db").unwrap();
        assert_eq!(p, Some(PathBuf::from("/var/lib/ha.db")));
        let (p, _) = parse_url("sqlite://rel.db").unwrap();
        assert_eq!(p, Some(PathBuf::from("rel.db")));
        let (p, o) = parse_url("sqlite::memory:?readers=2").unwrap();
        assert_eq!((p, o.readers), (None, 2));
        let (_, o) =
            parse_url("sqlite:x.db?busy_timeout_ms=250&synchronous=NORMAL&readers=8").unwrap();
        assert_eq!(o.busy_timeout, Duration::from_millis(250));
        assert_eq!(o.synchronous, Synchronous::Normal);
        assert_eq!(o.readers, 8);
        assert_eq!(o.cache_mib, 32);
        let (_, o) = parse_url("sqlite:x.db?cache_mib=256").unwrap();
        assert_eq!(o.cache_mib, 256);
        for bad in [
            "sqlite:x.db?cache_mib=0",
            "sqlite:x.db?cache_mib=lots",
            "postgres://x",
            "sqlite:",
            "sqlite://",
            "sqlite:x.db?cache=shared",
            "sqlite:x.db?readers=0",
            "sqlite:x.db?busy_timeout_ms=soon",
            "sqlite:x.db?synchronous=off",
        ] {
            let err = parse_url(bad).expect_err(bad);
            assert!(matches!(err, SqliteError::Url { .. }), "{bad}: {err}");
        }
    }
}
