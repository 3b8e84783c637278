//! The store: connections, options, and the trait implementations.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, KindId, Measurement, MeasurementId, Subject};
use healthanalyzer_store::backend::{check_subjects, identifier_key, parse_identifier_key};
use healthanalyzer_store::{
    Applied, Checkpoint, Document, DocumentQuery, Error, Filter, MeasurementStore, Page,
    Precondition, Query, Result, SubjectStore, Versioned, WriteSet, WriteSetStore, WriteSummary,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{SqliteError, bad_row, db};
use crate::rows::{self, Where, id_bytes};
use crate::schema::{self, Found, SCHEMA_VERSION};
use crate::writer::{self, Request};

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
    /// The writing connection: the writer thread's (and, for an in-memory database, the
    /// readers' too).
    writer: Arc<Mutex<Connection>>,
    /// Where write sets go: the writer thread (group commit, see `writer.rs`).
    jobs: writer::Writer,
    stats: Arc<writer::Stats>,
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
        Self::from_parts(Location::Memory, SqliteOptions::default(), conn)
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

    /// How many transactions this handle's writer has committed, and how many write sets they
    /// held together (group commit: the second is the larger under concurrent writes).
    pub fn commit_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.inner.stats.transactions.load(Relaxed),
            self.inner.stats.sets.load(Relaxed),
        )
    }

    /// How many committed write sets of this handle's writer took the bulk path (ADR 0016:
    /// secondary indexes dropped and built again around a large set), for tests and benches.
    #[doc(hidden)]
    pub fn bulk_sets(&self) -> u64 {
        self.inner
            .stats
            .bulk_sets
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The file behind the store (`None` for an in-memory database).
    pub fn path(&self) -> Option<&Path> {
        match &self.inner.location {
            Location::File(p) => Some(p),
            Location::Memory => None,
        }
    }

    fn from_parts(
        location: Location,
        options: SqliteOptions,
        writer: Connection,
    ) -> Result<Self, SqliteError> {
        let writer = Arc::new(Mutex::new(writer));
        let stats = Arc::new(writer::Stats::default());
        let jobs = writer::spawn(Arc::clone(&writer), Arc::clone(&stats))
            .map_err(|source| SqliteError::Writer { source })?;
        Ok(Self {
            inner: Arc::new(Inner {
                location,
                options,
                writer,
                jobs,
                stats,
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Applies a write set through the writer thread (group commit): it commits the set with
    /// whatever else is waiting. Dropping this future before the commit leaves the set out.
    async fn submit(&self, set: WriteSet) -> Result<Applied> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let set = if set.measurements.len() + set.subjects.len() + set.documents.len()
            <= writer::CALLER_ENCODES
        {
            writer::Prepared::of(set)?
        } else {
            blocking(move || writer::Prepared::of(set)).await?
        };
        if !self.inner.jobs.send(Request { set, reply }) {
            return Err(Error::Unavailable {
                reason: "the store's writer thread has stopped (it panicked)".into(),
                retryable: false,
                source: None,
            });
        }
        answer.await.unwrap_or_else(|_| {
            Err(Error::Backend {
                backend: "sqlite",
                source: "the writer thread ended without an answer (it panicked)".into(),
            })
        })
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
            give_back(&inner, conn)?;
            out
        })
        .await
    }

    /// Runs a point read (one row by its key), or a page bounded by its limit
    /// ([`bounded_page`]), on the calling thread with an idle reading connection. Such a read
    /// takes microseconds, less than handing it to the blocking pool and back: those two
    /// thread switches were about half of a Patient read's CPU under load, and 18 % of an
    /// Observation search's (server-bench profiles, docs/benchmarks.md). With no idle
    /// connection (opening one takes milliseconds) and for in-memory stores (whose one
    /// connection the writer holds), it goes to the pool as [`Self::with_reader`].
    async fn with_point_reader<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if matches!(self.inner.location, Location::Memory) {
            return self.with_reader(f).await;
        }
        let Some(conn) = lock(&self.inner.readers)?.pop() else {
            return self.with_reader(f).await;
        };
        let out = f(&conn);
        give_back(&self.inner, conn)?;
        out
    }
}

/// The largest page run on the calling thread (see [`bounded_page`]).
const INLINE_PAGE_ROWS: usize = 100;

/// Whether a page query's work is bounded by its limit, so that it may run on the calling
/// thread like a point read: one subject and at most one kind, so that one index
/// (`measurement_subject_kind_time` or `measurement_subject_time`) yields the rows in the
/// page's order and the scan stops after `limit + 1` of them, with no sort of all matches
/// (held by the `bounded_pages_are_index_ordered` test's query plans), and a small limit.
fn bounded_page(query: &Query) -> bool {
    query.filter.subject.is_some()
        && query.filter.kinds.len() <= 1
        && query.limit <= INLINE_PAGE_ROWS
}

/// A page query as SQL and its parameters.
struct PageSql {
    sql: String,
    params: Vec<rusqlite::types::Value>,
    limit: usize,
    order: healthanalyzer_store::Order,
}

fn page_sql(query: &Query) -> Result<PageSql> {
    let start = query.start()?;
    let mut w = Where::filter(&query.filter);
    if let Some(key) = start {
        w.after(query.order, key);
    }
    let sql = format!(
        "SELECT {COLUMNS}, version FROM measurement{}{} LIMIT {}",
        w.sql,
        rows::order_by(query.order),
        query.limit.saturating_add(1).min(i64::MAX as usize)
    );
    Ok(PageSql {
        sql,
        params: w.params,
        limit: query.limit,
        order: query.order,
    })
}

impl PageSql {
    fn run(&self, conn: &Connection) -> Result<Page> {
        let mut stmt = conn.prepare_cached(&self.sql).map_err(db)?;
        let mut found = stmt
            .query(rusqlite::params_from_iter(self.params.iter()))
            .map_err(db)?;
        let mut items = Vec::new();
        while let Some(row) = found.next().map_err(db)? {
            let version: i64 = row.get(3).map_err(db)?;
            items.push((decode_row(row)?, version.max(1) as u64));
        }
        Ok(Page::from_overfetch_versioned(
            items, self.limit, self.order,
        ))
    }
}

/// The most matches [`MeasurementStore::query_with_total`] counts on the calling thread.
const INLINE_COUNT_ROWS: u64 = 2_000;

/// A count of the filter's matches that stops after `cap + 1` of them: the filter's count when
/// it is at most `cap`.
fn capped_count_sql(filter: &Filter, cap: u64) -> Where {
    let mut w = Where::filter(filter);
    w.sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM measurement{} LIMIT {})",
        w.sql,
        cap.saturating_add(1)
    );
    w
}

/// A count as SQL and its parameters.
fn count_sql(filter: &Filter) -> Where {
    let mut w = Where::filter(filter);
    w.sql = format!("SELECT count(*) FROM measurement{}", w.sql);
    w
}

fn count_on(conn: &Connection, count: &Where) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached(&count.sql)
        .and_then(|mut s| {
            s.query_row(rusqlite::params_from_iter(count.params.iter()), |r| {
                r.get(0)
            })
        })
        .map_err(db)?;
    Ok(n.max(0) as u64)
}

/// Returns a reading connection to the idle ones, or closes it when enough are idle.
fn give_back(inner: &Inner, conn: Connection) -> Result<()> {
    let mut idle = lock(&inner.readers)?;
    if idle.len() < inner.options.readers.max(1) {
        idle.push(conn);
    }
    Ok(())
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
    SqliteStore::from_parts(Location::File(path), options, conn)
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

/// Opens a store on a file migrated to exactly schema `version` (created when new), for
/// migration tests: it writes measurements, subjects and checkpoints as a build of that schema
/// would (a set with documents needs schema 5).
#[doc(hidden)]
pub async fn open_at_version(path: &Path, version: i64) -> Result<SqliteStore, SqliteError> {
    create_at_version(path, version)?;
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || open_file(path, SqliteOptions::default(), version))
        .await
        .map_err(|e| SqliteError::Url {
            url: String::new(),
            reason: format!("the opening task failed: {e}"),
        })?
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

/// The measurement of a row whose first columns are `body, payload_type, payload`.
fn decode_row(row: &rusqlite::Row<'_>) -> Result<Measurement> {
    let body = row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(db)?;
    let payload_type: Option<String> = row.get(1).map_err(db)?;
    let payload = row
        .get_ref(2)
        .and_then(|v| Ok(v.as_blob_or_null()?))
        .map_err(db)?;
    rows::decode(body, payload_type, payload)
}

/// The measurement columns a read selects, in [`decode_row`]'s order.
const COLUMNS: &str = "body, payload_type, payload";

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
        out.push(decode_row(row)?);
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
        // The write set checks ids against provenance where it is encoded (`WriteSet::check`).
        Ok(self
            .submit(WriteSet::batch(batch, checkpoint))
            .await?
            .measurements)
    }

    async fn get(&self, id: &MeasurementId) -> Result<Option<Measurement>> {
        let id = id_bytes(id);
        self.with_point_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body, payload_type, payload FROM measurement WHERE id = ?1")
                .map_err(db)?;
            let mut found = stmt.query([&id[..]]).map_err(db)?;
            found.next().map_err(db)?.map(decode_row).transpose()
        })
        .await
    }

    async fn query(&self, query: &Query) -> Result<Page> {
        let page = page_sql(query)?;
        if bounded_page(query) {
            return self.with_point_reader(move |conn| page.run(conn)).await;
        }
        self.with_reader(move |conn| page.run(conn)).await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        let count = count_sql(filter);
        self.with_reader(move |conn| count_on(conn, &count)).await
    }

    /// A bounded page (one subject, at most one kind, a small limit) and its total run on the
    /// calling thread in one read transaction: a first page holding every match is its own
    /// total; otherwise the count stops after 2,000 index entries. Only when
    /// there are more matches than that, or the page is not bounded, do both run in one
    /// blocking-pool task and one read transaction. Either way the total and the page come
    /// from the same snapshot, and a search pays at most one thread hand-off.
    async fn query_with_total(&self, query: &Query) -> Result<(Page, u64)> {
        if bounded_page(query) {
            let first = page_sql(query)?;
            let capped = capped_count_sql(&query.filter, INLINE_COUNT_ROWS);
            let whole = query.page.is_none();
            let inline = self
                .with_point_reader(move |conn| {
                    let tx = conn.unchecked_transaction().map_err(db)?;
                    let page = first.run(&tx)?;
                    let total = if whole && page.next.is_none() {
                        Some(page.items.len() as u64)
                    } else {
                        Some(count_on(&tx, &capped)?).filter(|n| *n <= INLINE_COUNT_ROWS)
                    };
                    tx.finish().map_err(db)?;
                    Ok(total.map(|total| (page, total)))
                })
                .await?;
            if let Some(answer) = inline {
                return Ok(answer);
            }
        }
        let page = page_sql(query)?;
        let count = count_sql(&query.filter);
        self.with_reader(move |conn| {
            let tx = conn.unchecked_transaction().map_err(db)?;
            let total = count_on(&tx, &count)?;
            let page = page.run(&tx)?;
            tx.finish().map_err(db)?;
            Ok((page, total))
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
                    "SELECT k.name FROM kind_name k
                     WHERE EXISTS (SELECT 1 FROM measurement m
                                   WHERE m.subject = (SELECT n FROM series WHERE key = ?1)
                                     AND m.kind = k.n)
                     ORDER BY k.name",
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
                    "SELECT body, payload_type, payload FROM measurement
                     WHERE subject = (SELECT n FROM series WHERE key = ?1)
                       AND kind = (SELECT n FROM kind_name WHERE name = ?2)
                     ORDER BY t_s DESC, t_ns DESC, id DESC LIMIT ?3",
                    &[key.clone().into(), kind.into(), n.into()],
                )?);
            }
            Ok(out)
        })
        .await
    }

    async fn measured_subjects(&self) -> Result<Vec<Identifier>> {
        self.with_reader(|conn| {
            let keys = conn
                .prepare_cached(
                    "SELECT key FROM series s
                     WHERE EXISTS (SELECT 1 FROM measurement m WHERE m.subject = s.n)",
                )
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

    async fn subject_counts(&self) -> Result<Vec<(Identifier, u64)>> {
        self.with_reader(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT s.key, COUNT(*) FROM measurement m JOIN series s ON s.n = m.subject
                     GROUP BY m.subject",
                )
                .and_then(|mut s| {
                    s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(db)?;
            let mut out = rows
                .iter()
                .map(|(k, n)| {
                    let id = parse_identifier_key(k).ok_or_else(|| bad_row("subject key", k))?;
                    Ok((id, u64::try_from(*n).unwrap_or(0)))
                })
                .collect::<Result<Vec<_>>>()?;
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn delete(&self, ids: &[MeasurementId]) -> Result<u64> {
        let set = WriteSet::delete_measurements(ids);
        Ok(self.submit(set).await?.deleted)
    }

    async fn checkpoint(&self, source_id: &str) -> Result<Option<Checkpoint>> {
        let source_id = source_id.to_string();
        self.with_point_reader(move |conn| {
            let cursor: Option<String> = conn
                .prepare_cached("SELECT cursor FROM checkpoint WHERE source_id = ?1")
                .and_then(|mut s| s.query_row([&source_id], |r| r.get(0)).optional())
                .map_err(db)?;
            Ok(cursor.map(|cursor| Checkpoint { source_id, cursor }))
        })
        .await
    }

    /// 25,000: every commit rewrites the index pages it touched, and the id index is random, so
    /// small commits cost SQLite more than the rows do. Measured on an import of a million
    /// Observations: 22,000/s at 10,000 (190 MiB), 31,000/s at 25,000 (357 MiB), 34,000/s at
    /// 50,000 (730 MiB); see `docs/benchmarks.md`.
    fn preferred_batch_size(&self) -> usize {
        25_000
    }
}

#[async_trait]
impl SubjectStore for SqliteStore {
    async fn put_subjects(&self, subjects: &[Subject]) -> Result<WriteSummary> {
        check_subjects(subjects)?;
        Ok(self.submit(WriteSet::subjects(subjects)).await?.subjects)
    }

    async fn subject(&self, id: &Identifier) -> Result<Option<Subject>> {
        let key = identifier_key(id);
        self.with_point_reader(move |conn| {
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

    /// One range of the `subject` table's key (its primary key index; SQLite compares text
    /// as bytes, the keys' order).
    async fn subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Subject>> {
        // Every key is at least one character long, so each sorts after ''.
        let after = after.map(identifier_key).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_reader(move |conn| {
            let bodies = conn
                .prepare_cached("SELECT body FROM subject WHERE key > ?1 ORDER BY key LIMIT ?2")
                .and_then(|mut s| {
                    s.query_map(rusqlite::params![after, limit], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(db)?;
            bodies.iter().map(|b| rows::decode_subject(b)).collect()
        })
        .await
    }

    async fn delete_subject(&self, id: &Identifier) -> Result<bool> {
        let set = WriteSet::new().delete_subject(id.clone(), Precondition::Any);
        Ok(self.submit(set).await?.deleted > 0)
    }
}

#[async_trait]
impl WriteSetStore for SqliteStore {
    async fn apply(&self, set: &WriteSet) -> Result<Applied> {
        // Checked where it is encoded (`Prepared::of`).
        self.submit(set.clone()).await
    }

    async fn get_versioned(&self, id: &MeasurementId) -> Result<Option<Versioned<Measurement>>> {
        let id = id_bytes(id);
        self.with_point_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body, payload_type, payload, version FROM measurement WHERE id = ?1",
                )
                .map_err(db)?;
            let mut found = stmt.query([&id[..]]).map_err(db)?;
            found
                .next()
                .map_err(db)?
                .map(|row| {
                    let version: i64 = row.get(3).map_err(db)?;
                    Ok(Versioned {
                        value: decode_row(row)?,
                        version: version.max(1) as u64,
                    })
                })
                .transpose()
        })
        .await
    }

    async fn subject_versioned(&self, id: &Identifier) -> Result<Option<Versioned<Subject>>> {
        let key = identifier_key(id);
        self.with_point_reader(move |conn| {
            let row: Option<(String, i64)> = conn
                .prepare_cached(
                    "SELECT s.body, s.version FROM subject_identifier i JOIN subject s ON s.key = i.subject
                     WHERE i.identifier = ?1",
                )
                .and_then(|mut s| s.query_row([&key], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(db)?;
            row.map(|(body, version)| {
                Ok(Versioned {
                    value: rows::decode_subject(&body)?,
                    version: version.max(1) as u64,
                })
            })
            .transpose()
        })
        .await
    }

    async fn document(&self, resource_type: &str, id: &str) -> Result<Option<Versioned<Document>>> {
        let (resource_type, id) = (resource_type.to_string(), id.to_string());
        self.with_point_reader(move |conn| crate::documents::get(conn, &resource_type, &id))
            .await
    }

    /// A range of the `document_key` index on the first key (the most selective key should come
    /// first), each further key one probe of it.
    async fn find_documents(&self, query: &DocumentQuery) -> Result<Vec<Versioned<Document>>> {
        let query = query.clone();
        self.with_reader(move |conn| crate::documents::find(conn, &query))
            .await
    }

    /// One range of the `series` dictionary's key index: the subjects with a measurement
    /// (one index probe each) that no subject record holds (one probe of `subject_identifier`).
    async fn unrecorded_subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Identifier>> {
        let after = after.map(identifier_key).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_reader(move |conn| {
            let keys = conn
                .prepare_cached(
                    "SELECT s.key FROM series s
                     WHERE s.key > ?1
                       AND EXISTS (SELECT 1 FROM measurement m WHERE m.subject = s.n)
                       AND NOT EXISTS (SELECT 1 FROM subject_identifier i WHERE i.identifier = s.key)
                     ORDER BY s.key LIMIT ?2",
                )
                .and_then(|mut s| {
                    s.query_map(rusqlite::params![after, limit], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(db)?;
            keys.iter()
                .map(|k| parse_identifier_key(k).ok_or_else(|| bad_row("subject key", k)))
                .collect()
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

    /// The query plans of every page shape [`bounded_page`] runs on the calling thread: one
    /// index range in the page's order, no sort of all matches, and a capped count on a
    /// covering index. Two kinds go to the pool: SQLite reads the subject's time index and
    /// skips every other kind's rows, so the page's limit does not bound the work.
    #[test]
    fn bounded_pages_are_index_ordered() {
        use healthanalyzer_store::Order;
        use healthanalyzer_store::backend::SortKey;
        use std::ops::Bound;
        let store = SqliteStore::memory().unwrap();
        let conn = store.inner.writer.lock().unwrap();
        let explain = |w: &Where| -> String {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", w.sql))
                .unwrap();
            let details = stmt
                .query_map(rusqlite::params_from_iter(w.params.iter()), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap();
            details.join(" | ")
        };
        let plan = |q: &Query, after: bool| -> String {
            let mut w = Where::filter(&q.filter);
            if after {
                w.after(q.order, SortKey { nanos: 5, id: 7 });
            }
            w.sql = format!(
                "SELECT {COLUMNS}, version FROM measurement{}{} LIMIT 51",
                w.sql,
                rows::order_by(q.order)
            );
            explain(&w)
        };
        let t = |s: i64| healthanalyzer_model::jiff::Timestamp::from_second(s).unwrap();
        let subject = Filter::subject(Identifier::local("p1"));
        let shapes = [
            subject.clone(),
            subject.clone().kinds(["blood-pressure"]),
            subject
                .clone()
                .kinds(["blood-pressure"])
                .between(Bound::Included(t(1_000)), Bound::Excluded(t(9_000))),
            subject
                .clone()
                .between(Bound::Excluded(t(1_000)), Bound::Unbounded),
        ];
        for filter in shapes {
            for order in [Order::Ascending, Order::Descending] {
                let q = Query::new(filter.clone(), 50).order(order);
                assert!(bounded_page(&q), "{filter:?}");
                // Its capped count reads index entries only.
                let count = explain(&capped_count_sql(&filter, INLINE_COUNT_ROWS));
                assert!(
                    count.contains("USING COVERING INDEX measurement_subject"),
                    "{filter:?}: {count}"
                );
                for after in [false, true] {
                    let plan = plan(&q, after);
                    let index = if filter.kinds.is_empty() {
                        "USING INDEX measurement_subject_time (subject=?"
                    } else {
                        "USING INDEX measurement_subject_kind_time (subject=? AND kind=?"
                    };
                    assert!(
                        !plan.contains("TEMP B-TREE") && plan.contains(index),
                        "{filter:?} {order:?} after={after}: {plan}"
                    );
                }
            }
        }
        // Two kinds: the subject's time index, with every other kind's rows read and skipped,
        // so the work is not bounded by the page.
        let two = Query::new(subject.clone().kinds(["blood-pressure", "pulse"]), 50);
        assert!(!bounded_page(&two));
        assert!(
            !plan(&two, false).contains("measurement_subject_kind_time"),
            "{}",
            plan(&two, false)
        );
        assert!(!bounded_page(&Query::new(Filter::default(), 50)));
        assert!(!bounded_page(&Query::new(subject, INLINE_PAGE_ROWS + 1)));
    }
}
