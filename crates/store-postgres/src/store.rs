//! The store: pool, queries and the trait implementations.

use std::collections::HashMap;
use std::ops::Bound;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::{Identifier, KindId, Measurement, MeasurementId, Subject};
use healthanalyzer_store::backend::{
    SortKey, check_subjects, identifier_key, parse_identifier_key, split_instant,
};
use healthanalyzer_store::{
    Applied, Checkpoint, Document, DocumentQuery, Filter, MeasurementStore, Order, Page,
    Precondition, Query, Result, SubjectStore, Versioned, WriteSet, WriteSetStore, WriteSummary,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::error::{PostgresError, bad_row, db, pool};
use crate::schema;
use crate::tls::{Connector, TlsOptions, is_certificate_error};

/// The PostgreSQL store. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's config holds the password: show only the pool's size.
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .finish()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` and migrates its schema to [`crate::SCHEMA_VERSION`].
    ///
    /// TLS is as the URL's `sslmode` and `sslrootcert` say, as in libpq (default `prefer`); see
    /// [`SslMode`](crate::SslMode) and the crate's documentation.
    pub async fn connect(url: &str) -> Result<Self, PostgresError> {
        let (config, max_size, tls) = parse_url(url)?;
        Self::connect_with_tls(config, max_size, tls).await
    }

    /// Connects with a ready `tokio-postgres` configuration and a pool of at most `max_size`
    /// connections, with TLS as the configuration's own `ssl_mode` says (`disable`, `prefer` or
    /// `require`, none of which checks the server's certificate). To check it, use
    /// [`connect_with_tls`](Self::connect_with_tls).
    pub async fn connect_with(
        config: tokio_postgres::Config,
        max_size: usize,
    ) -> Result<Self, PostgresError> {
        let tls = TlsOptions::of_config(&config);
        Self::connect_with_tls(config, max_size, tls).await
    }

    /// Connects with a ready `tokio-postgres` configuration, a pool of at most `max_size`
    /// connections and TLS as `tls` says (the configuration's `ssl_mode` is not used).
    ///
    /// A server certificate that fails the check is a [`PostgresError::Certificate`]; root
    /// certificates that cannot be loaded a [`PostgresError::Tls`].
    pub async fn connect_with_tls(
        config: tokio_postgres::Config,
        max_size: usize,
        tls: TlsOptions,
    ) -> Result<Self, PostgresError> {
        let connector = Connector::new(&tls)?;
        let mode = connector.mode();
        let manager = Manager::from_connect(
            config,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| PostgresError::Pool {
                reason: e.to_string(),
            })?;
        let mut client = pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(source) if is_certificate_error(&source) => {
                PostgresError::Certificate { mode, source }
            }
            deadpool_postgres::PoolError::Backend(source) => PostgresError::Connect { source },
            e => PostgresError::Pool {
                reason: e.to_string(),
            },
        })?;
        schema::migrate(&mut client).await?;
        drop(client);
        Ok(Self { pool })
    }

    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(pool)
    }
}

/// A page query's SQL and its filter.
fn page_sql(query: &Query) -> Result<(String, Where)> {
    let start = query.start()?;
    let mut w = Where::filter(&query.filter);
    if let Some(key) = start {
        w.after(query.order, key);
    }
    let order = match query.order {
        Order::Ascending => " ORDER BY t_s, t_ns, id",
        Order::Descending => " ORDER BY t_s DESC, t_ns DESC, id DESC",
    };
    let sql = format!(
        "SELECT {COLUMNS}, version FROM measurement{}{order} LIMIT {}",
        w.sql,
        query.limit.saturating_add(1).min(i64::MAX as usize)
    );
    Ok((sql, w))
}

/// The page of `query` its rows (one more than the limit, when there is a next page) make.
fn page_of(rows: &[tokio_postgres::Row], query: &Query) -> Result<Page> {
    let items = rows
        .iter()
        .map(|r| {
            let version: i64 = r.try_get(3).map_err(db)?;
            Ok((decode(r)?, version.max(1) as u64))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch_versioned(
        items,
        query.limit,
        query.order,
    ))
}

/// A count's SQL and its filter.
fn count_sql(filter: &Filter) -> (String, Where) {
    let w = Where::filter(filter);
    (format!("SELECT count(*) FROM measurement{}", w.sql), w)
}

fn count_of(row: &tokio_postgres::Row) -> Result<u64> {
    let n: i64 = row.try_get(0).map_err(db)?;
    Ok(n.max(0) as u64)
}

/// Splits a store URL into what `tokio-postgres` reads, the pool's size and the TLS options.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, usize, TlsOptions), PostgresError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(PostgresError::Url {
            reason: "expected postgres://user@host:port/database".into(),
        });
    }
    let mut max_size = 16;
    let (mut ssl_mode, mut root_cert) = (None, None);
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut kept = Vec::new();
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("pool_max_size", v)) => {
                max_size = v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    PostgresError::Url {
                        reason: "pool_max_size must be a whole number of at least 1".into(),
                    }
                })?;
            }
            // tokio-postgres knows only disable, prefer and require, and no sslrootcert: both are
            // ours. The last of a repeated key wins, as in libpq.
            Some(("sslmode", v)) => ssl_mode = Some(percent_decode("sslmode", v)?),
            Some(("sslrootcert", v)) => root_cert = Some(percent_decode("sslrootcert", v)?),
            _ => kept.push(pair),
        }
    }
    let tls = TlsOptions::from_params(ssl_mode.as_deref(), root_cert.as_deref())?;
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let config = url
        .parse::<tokio_postgres::Config>()
        .map_err(|e| PostgresError::Url {
            // The driver's message and its cause ("unknown option `x`"); neither holds the URL.
            reason: match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            },
        })?;
    Ok((config, max_size, tls))
}

/// A query value with its `%XX` escapes decoded (the value is not repeated in the error).
fn percent_decode(key: &str, value: &str) -> Result<String, PostgresError> {
    let bad = || PostgresError::Url {
        reason: format!("the value of {key} is not valid percent-encoded UTF-8"),
    };
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

pub(crate) fn split_nanos(nanos: i128) -> (i64, i32) {
    let (s, ns) = split_instant(nanos);
    (s, ns as i32) // below 1e9: fits
}

fn uuid(id: &MeasurementId) -> Uuid {
    *id.as_uuid()
}

/// A `WHERE` clause with numbered parameters.
#[derive(Default)]
struct Where {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    fn push(&mut self, p: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(p));
        format!("${}", self.params.len())
    }

    fn and(&mut self, clause: &str) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(clause);
    }

    fn bound(&mut self, bound: Bound<Timestamp>, inclusive: &str, exclusive: &str) {
        let (t, op) = match bound {
            Bound::Included(t) => (t, inclusive),
            Bound::Excluded(t) => (t, exclusive),
            Bound::Unbounded => return,
        };
        let (s, ns) = split_nanos(t.as_nanosecond());
        let (a, b) = (self.push(s), self.push(ns));
        self.and(&format!("(t_s, t_ns) {op} ({a}, {b})"));
    }

    fn filter(f: &Filter) -> Self {
        let mut w = Self::default();
        // Dictionary numbers looked up by the statement itself (one-time subplans, so the
        // index conditions stay on `sid` and `kid`).
        if let Some(subject) = &f.subject {
            let p = w.push(identifier_key(subject));
            w.and(&format!("sid = (SELECT sid FROM series WHERE key = {p})"));
        }
        if !f.kinds.is_empty() {
            let kinds: Vec<String> = f.kinds.iter().map(|k| k.as_str().to_string()).collect();
            let p = w.push(kinds);
            w.and(&format!(
                "kid = ANY(ARRAY(SELECT kid FROM kind_name WHERE name = ANY({p})))"
            ));
        }
        w.bound(f.from, ">=", ">");
        w.bound(f.to, "<=", "<");
        w
    }

    fn after(&mut self, order: Order, key: SortKey) {
        let (s, ns) = split_nanos(key.nanos);
        let (a, b, c) = (
            self.push(s),
            self.push(ns),
            self.push(Uuid::from_u128(key.id)),
        );
        let op = match order {
            Order::Ascending => ">",
            Order::Descending => "<",
        };
        self.and(&format!("(t_s, t_ns, id) {op} ({a}, {b}, {c})"));
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The columns [`decode`] reads, first in a `SELECT`.
pub(crate) const COLUMNS: &str = "body, payload_type, payload";

/// The measurement in a row whose first columns are [`COLUMNS`].
pub(crate) fn decode(row: &Row) -> Result<Measurement> {
    let body: &[u8] = row.try_get(0).map_err(db)?;
    let payload_type: Option<&str> = row.try_get(1).map_err(db)?;
    let payload: Option<&[u8]> = row.try_get(2).map_err(db)?;
    crate::codec::decode(body, payload_type, payload)
}

/// The columns of a batch, one array per column, deduplicated by id (the last occurrence wins)
/// and sorted by id (the primary key's first column), so concurrent writers lock rows in the
/// same order. Subjects and kinds are still their keys and names: the writer turns them into
/// dictionary numbers inside its transaction.
pub(crate) struct Columns {
    pub(crate) subject: Vec<String>,
    pub(crate) id: Vec<Uuid>,
    pub(crate) kind: Vec<String>,
    pub(crate) t_s: Vec<i64>,
    pub(crate) t_ns: Vec<i32>,
    pub(crate) body: Vec<Vec<u8>>,
    pub(crate) payload_type: Vec<Option<String>>,
    pub(crate) payload: Vec<Option<Vec<u8>>>,
    /// Earlier occurrences of a repeated id, dropped.
    pub(crate) repeats: u64,
}

impl Columns {
    pub(crate) fn of(batch: &[&Measurement]) -> Result<Self> {
        let mut last: HashMap<MeasurementId, usize> = HashMap::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            last.insert(m.id, i);
        }
        let mut rows: Vec<(Uuid, &Measurement)> = batch
            .iter()
            .enumerate()
            .filter(|(i, m)| last.get(&m.id) == Some(i))
            .map(|(_, m)| (uuid(&m.id), *m))
            .collect();
        rows.sort_unstable_by_key(|r| r.0);
        let n = rows.len();
        let mut c = Self {
            subject: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            t_s: Vec::with_capacity(n),
            t_ns: Vec::with_capacity(n),
            body: Vec::with_capacity(n),
            payload_type: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
            repeats: (batch.len() - n) as u64,
        };
        for (id, m) in rows {
            let (s, ns) = split_nanos(m.effective.instant().as_nanosecond());
            let e = crate::codec::encode(m)?;
            c.subject.push(identifier_key(&m.subject));
            c.id.push(id);
            c.kind.push(m.kind.as_str().to_string());
            c.t_s.push(s);
            c.t_ns.push(ns);
            c.body.push(e.body);
            c.payload_type.push(e.payload_type);
            c.payload.push(e.payload);
        }
        Ok(c)
    }
}

#[async_trait]
impl MeasurementStore for PostgresStore {
    async fn write(
        &self,
        batch: &[Measurement],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteSummary> {
        // The write set checks ids against provenance where it is encoded (`WriteSet::check`).
        Ok(self
            .apply(&WriteSet::batch(batch, checkpoint))
            .await?
            .measurements)
    }

    async fn get(&self, id: &MeasurementId) -> Result<Option<Measurement>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM measurement WHERE id = $1"),
                &[&uuid(id)],
            )
            .await
            .map_err(db)?;
        row.as_ref().map(decode).transpose()
    }

    async fn query(&self, query: &Query) -> Result<Page> {
        let (sql, w) = page_sql(query)?;
        let client = self.client().await?;
        let rows = client.query(&sql, &w.refs()).await.map_err(db)?;
        page_of(&rows, query)
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        let (sql, w) = count_sql(filter);
        let client = self.client().await?;
        let row = client.query_one(&sql, &w.refs()).await.map_err(db)?;
        count_of(&row)
    }

    /// Both on one pooled connection, pipelined: one round trip's wait instead of two.
    async fn query_with_total(&self, query: &Query) -> Result<(Page, u64)> {
        let (page, pw) = page_sql(query)?;
        let (count, cw) = count_sql(&query.filter);
        let client = self.client().await?;
        let (pr, cr) = (pw.refs(), cw.refs());
        let (rows, total) =
            tokio::try_join!(client.query(&page, &pr), client.query_one(&count, &cr))
                .map_err(db)?;
        Ok((page_of(&rows, query)?, count_of(&total)?))
    }

    async fn latest(
        &self,
        subject: &Identifier,
        kinds: &[KindId],
        n: usize,
    ) -> Result<Vec<Measurement>> {
        let key = identifier_key(subject);
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let kinds: Vec<String> = if kinds.is_empty() {
            client
                .query(
                    "SELECT k.name FROM kind_name k
                     WHERE EXISTS (SELECT 1 FROM measurement m
                                   WHERE m.sid = (SELECT sid FROM series WHERE key = $1) AND m.kid = k.kid)
                     ORDER BY k.name",
                    &[&key],
                )
                .await
                .map_err(db)?
                .iter()
                .map(|r| r.try_get(0).map_err(db))
                .collect::<Result<_>>()?
        } else {
            kinds.iter().map(|k| k.as_str().to_string()).collect()
        };
        // One index range scan per kind, in one round trip, kinds in the order asked.
        let rows = client
            .query(
                "SELECT l.body, l.payload_type, l.payload
                 FROM UNNEST($2::text[]) WITH ORDINALITY AS k(kind, ord)
                 JOIN kind_name n ON n.name = k.kind
                 CROSS JOIN LATERAL (
                   SELECT body, payload_type, payload, t_s, t_ns, id FROM measurement
                   WHERE sid = (SELECT sid FROM series WHERE key = $1) AND kid = n.kid
                   ORDER BY t_s DESC, t_ns DESC, id DESC LIMIT $3
                 ) l
                 ORDER BY k.ord, l.t_s DESC, l.t_ns DESC, l.id DESC",
                &[&key, &kinds, &n],
            )
            .await
            .map_err(db)?;
        rows.iter().map(decode).collect()
    }

    async fn measured_subjects(&self) -> Result<Vec<Identifier>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT s.key FROM series s
                 WHERE EXISTS (SELECT 1 FROM measurement m WHERE m.sid = s.sid)",
                &[],
            )
            .await
            .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: &str = row.try_get(0).map_err(db)?;
            out.push(parse_identifier_key(key).ok_or_else(|| bad_row("subject key", key))?);
        }
        out.sort();
        Ok(out)
    }

    async fn subject_counts(&self) -> Result<Vec<(Identifier, u64)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT s.key, c.n FROM (SELECT sid, COUNT(*) AS n FROM measurement GROUP BY sid) c
                 JOIN series s ON s.sid = c.sid",
                &[],
            )
            .await
            .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: &str = row.try_get(0).map_err(db)?;
            let n: i64 = row.try_get(1).map_err(db)?;
            out.push((
                parse_identifier_key(key).ok_or_else(|| bad_row("subject key", key))?,
                u64::try_from(n).unwrap_or(0),
            ));
        }
        out.sort();
        Ok(out)
    }

    async fn delete(&self, ids: &[MeasurementId]) -> Result<u64> {
        let set = WriteSet::delete_measurements(ids);
        Ok(self.apply(&set).await?.deleted)
    }

    /// 10,000: a batch this large goes through the bulk path (binary `COPY` into a staging
    /// table, one upsert), whose fixed costs per set (dictionary look-ups, the move check) it
    /// spreads thin.
    fn preferred_batch_size(&self) -> usize {
        10_000
    }

    async fn checkpoint(&self, source_id: &str) -> Result<Option<Checkpoint>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT cursor FROM checkpoint WHERE source_id = $1",
                &[&source_id],
            )
            .await
            .map_err(db)?;
        row.map(|r| {
            Ok(Checkpoint {
                source_id: source_id.to_string(),
                cursor: r.try_get(0).map_err(db)?,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl SubjectStore for PostgresStore {
    async fn put_subjects(&self, subjects: &[Subject]) -> Result<WriteSummary> {
        check_subjects(subjects)?;
        Ok(self.apply(&WriteSet::subjects(subjects)).await?.subjects)
    }

    async fn subject(&self, id: &Identifier) -> Result<Option<Subject>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT s.body FROM subject_identifier i JOIN subject s ON s.key = i.subject
                 WHERE i.identifier = $1",
                &[&identifier_key(id)],
            )
            .await
            .map_err(db)?;
        row.map(|r| {
            let body: &str = r.try_get(0).map_err(db)?;
            serde_json::from_str(body).map_err(|e| bad_row("subject", e))
        })
        .transpose()
    }

    async fn list_subjects(&self) -> Result<Vec<Subject>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT body FROM subject ORDER BY key COLLATE \"C\"", &[])
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let body: &str = r.try_get(0).map_err(db)?;
                serde_json::from_str(body).map_err(|e| bad_row("subject", e))
            })
            .collect()
    }

    /// Keys compared and sorted as bytes (`COLLATE "C"`, as `list_subjects`), whatever the
    /// database's collation.
    async fn subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Subject>> {
        // Every key is at least one character long, so each sorts after ''.
        let after = after.map(identifier_key).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT body FROM subject WHERE key COLLATE \"C\" > $1
                 ORDER BY key COLLATE \"C\" LIMIT $2",
                &[&after, &limit],
            )
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let body: &str = r.try_get(0).map_err(db)?;
                serde_json::from_str(body).map_err(|e| bad_row("subject", e))
            })
            .collect()
    }

    async fn delete_subject(&self, id: &Identifier) -> Result<bool> {
        let set = WriteSet::new().delete_subject(id.clone(), Precondition::Any);
        Ok(self.apply(&set).await?.deleted > 0)
    }
}

#[async_trait]
impl WriteSetStore for PostgresStore {
    async fn apply(&self, set: &WriteSet) -> Result<Applied> {
        let mut client = self.client().await?;
        crate::writer::apply(&mut client, set).await
    }

    async fn get_versioned(&self, id: &MeasurementId) -> Result<Option<Versioned<Measurement>>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS}, version FROM measurement WHERE id = $1"),
                &[&uuid(id)],
            )
            .await
            .map_err(db)?;
        row.map(|r| {
            let version: i64 = r.try_get(3).map_err(db)?;
            Ok(Versioned {
                value: decode(&r)?,
                version: version.max(1) as u64,
            })
        })
        .transpose()
    }

    async fn document(&self, resource_type: &str, id: &str) -> Result<Option<Versioned<Document>>> {
        let client = self.client().await?;
        crate::documents::get(&client, resource_type, id).await
    }

    /// A range of the `document_key` primary key on the first key (the most selective key
    /// should come first), each further key one probe of it.
    async fn find_documents(&self, query: &DocumentQuery) -> Result<Vec<Versioned<Document>>> {
        let client = self.client().await?;
        crate::documents::find(&client, query).await
    }

    async fn subject_versioned(&self, id: &Identifier) -> Result<Option<Versioned<Subject>>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT s.body, s.version FROM subject_identifier i JOIN subject s ON s.key = i.subject
                 WHERE i.identifier = $1",
                &[&identifier_key(id)],
            )
            .await
            .map_err(db)?;
        row.map(|r| {
            let body: &str = r.try_get(0).map_err(db)?;
            let version: i64 = r.try_get(1).map_err(db)?;
            Ok(Versioned {
                value: serde_json::from_str(body).map_err(|e| bad_row("subject", e))?,
                version: version.max(1) as u64,
            })
        })
        .transpose()
    }

    /// The distinct subjects of `measurement` after the key that no `subject_identifier` row
    /// holds, compared and sorted as bytes (`COLLATE "C"`); one query (a scan of the subject
    /// index, which with Citus runs on every shard).
    async fn unrecorded_subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Identifier>> {
        let after = after.map(identifier_key).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT d.key FROM series d
                 WHERE d.key COLLATE \"C\" > $1
                   AND EXISTS (SELECT 1 FROM measurement m WHERE m.sid = d.sid)
                   AND NOT EXISTS (SELECT 1 FROM subject_identifier i WHERE i.identifier = d.key)
                 ORDER BY d.key COLLATE \"C\" LIMIT $2",
                &[&after, &limit],
            )
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let key: &str = r.try_get(0).map_err(db)?;
                parse_identifier_key(key).ok_or_else(|| bad_row("subject key", key))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (c, n, tls) = parse_url("postgres://ha@127.0.0.1:5433/health?pool_max_size=4").unwrap();
        assert_eq!(n, 4);
        assert_eq!(c.get_dbname(), Some("health"));
        assert_eq!(c.get_user(), Some("ha"));
        assert_eq!(tls, TlsOptions::new(crate::SslMode::Prefer));
        let (_, n, _) = parse_url("postgresql://ha@h/db?connect_timeout=3").unwrap();
        assert_eq!(n, 16);
        for bad in [
            "sqlite:x.db",
            "postgres://h/db?pool_max_size=0",
            "postgres://h/db?no_such_option=1",
        ] {
            assert!(
                matches!(parse_url(bad), Err(PostgresError::Url { .. })),
                "{bad}"
            );
        }
        // The URL (which may hold a password) is not repeated in the error; the option at fault
        // is named.
        let err = parse_url("postgres://u:secret@h/db?no_such_option=1").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(err.to_string().contains("no_such_option"), "{err}");
    }

    #[test]
    fn sslmode_and_sslrootcert_are_read_from_the_url() {
        use crate::{RootCerts, SslMode};
        let tls = |url: &str| parse_url(url).map(|(_, _, t)| t);
        for mode in SslMode::ALL {
            let url = format!("postgres://u:pw@db.example/h?sslmode={mode}&pool_max_size=2");
            let (config, n, t) = parse_url(&url).unwrap();
            assert_eq!((t.mode(), n), (mode, 2), "{url}");
            // What is left goes to tokio-postgres, which would refuse verify-ca/verify-full.
            assert_eq!(config.get_hosts().len(), 1);
        }
        let t =
            tls("postgres://u@db.example/h?sslmode=verify-full&sslrootcert=/etc/ha/ca%20root.pem")
                .unwrap();
        assert_eq!(t.mode(), SslMode::VerifyFull);
        assert_eq!(
            t.root_cert_file(),
            Some(std::path::Path::new("/etc/ha/ca root.pem"))
        );
        // The last of a repeated key wins; sslrootcert=system means verify-full.
        let t = tls("postgres://h/d?sslmode=disable&sslmode=require").unwrap();
        assert_eq!(t.mode(), SslMode::Require);
        let t = tls("postgres://h/d?sslrootcert=system").unwrap();
        assert_eq!(
            (t.mode(), t.roots()),
            (SslMode::VerifyFull, &RootCerts::System)
        );
        // A bad sslmode names the accepted ones, and not the password.
        let err = tls("postgres://u:secret@h/d?sslmode=verify_full").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PostgresError::Url { .. }), "{text}");
        assert!(
            text.contains("\"verify_full\"")
                && text.contains("disable, prefer, require, verify-ca, verify-full")
                && !text.contains("secret"),
            "{text}"
        );
        for bad in [
            "postgres://h/d?sslrootcert=%ZZ",
            "postgres://h/d?sslrootcert=%C3",
            "postgres://h/d?sslrootcert=",
            "postgres://h/d?sslmode=require&sslrootcert=system",
        ] {
            assert!(matches!(tls(bad), Err(PostgresError::Url { .. })), "{bad}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("k", "a%2Fb%20c").unwrap(), "a/b c");
        assert_eq!(percent_decode("k", "%C3%A6").unwrap(), "æ");
        for bad in ["%", "%4", "%G0", "%FF"] {
            assert!(percent_decode("k", bad).is_err(), "{bad}");
        }
    }
}
