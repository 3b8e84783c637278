//! Documents (FHIR resources kept beside the measurements) on PostgreSQL: their tables, their
//! writes inside a write set's transaction, and their reads.
//!
//! `document` holds one row per document (keyed by type and id): the span as the instants a
//! search compares (`lo`, `hi`; both [`NO_SPAN`] without a span) and which of `start` and `end`
//! were given, the keys as written (`text[]`, in their order) and the body. `document_key` is the
//! search index, keyed by `(resource_type, key, lo_s, lo_ns, id)`: a search by a key and a period
//! is one range of its primary key in the order of the results, each further key one probe.
//! Ids and keys compare by byte (`COLLATE "C"`), as in every other store.
//!
//! Every document a set writes or deletes is locked first with the set's other advisory locks
//! (`writer.rs`), whatever its precondition: documents are few per set, and under the lock the
//! stored version is read and the write made with no other writer in between.

use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_store::{
    Applied, Document, DocumentQuery, DocumentWrite, Precondition, RecordKey, Result, Versioned,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::{bad_row, db};
use crate::store::split_nanos;

type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// Schema 3: documents and their search keys.
pub(crate) const V3: &str = r#"
    CREATE TABLE document (
        resource_type text COLLATE "C" NOT NULL,
        id            text COLLATE "C" NOT NULL,
        version       bigint   NOT NULL,
        span          smallint NOT NULL,  -- which bounds were given: 1 start, 2 end, 3 both, 0 none
        lo_s          bigint   NOT NULL,  -- the span searched: start (or end), whole seconds ...
        lo_ns         int      NOT NULL,  -- ... and nanoseconds; -2^63 without a span
        hi_s          bigint   NOT NULL,  -- end (or start)
        hi_ns         int      NOT NULL,
        keys          text[]   NOT NULL,  -- the search keys as written
        body          text     NOT NULL,  -- the resource's JSON text as given
        PRIMARY KEY (resource_type, id)
    );
    CREATE INDEX document_type_span ON document (resource_type, lo_s, lo_ns, id);
    CREATE TABLE document_key (
        resource_type text COLLATE "C" NOT NULL,
        key           text COLLATE "C" NOT NULL,
        lo_s          bigint NOT NULL,
        lo_ns         int    NOT NULL,
        id            text COLLATE "C" NOT NULL,
        hi_s          bigint NOT NULL,
        hi_ns         int    NOT NULL,
        PRIMARY KEY (resource_type, key, lo_s, lo_ns, id)
    );
"#;

/// `lo_s` and `hi_s` of a document without a span: below every instant, so such documents sort
/// first and never meet a bound.
const NO_SPAN: i64 = i64::MIN;

/// The advisory lock key of a document (FNV-1a over a tag, its type and its id).
pub(crate) fn lock_bytes(resource_type: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(resource_type.len() + id.len() + 1);
    key.extend_from_slice(resource_type.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

/// A document's columns.
#[derive(PartialEq)]
struct Columns {
    span: i16,
    lo: (i64, i32),
    hi: (i64, i32),
    keys: Vec<String>,
    body: String,
}

impl Columns {
    fn of(d: &Document) -> Self {
        let split = |t: Timestamp| split_nanos(t.as_nanosecond());
        let (lo, hi) = match d.effective_span() {
            Some((s, e)) => (split(s), split(e)),
            None => ((NO_SPAN, 0), (NO_SPAN, 0)),
        };
        Self {
            span: i16::from(d.start.is_some()) | (i16::from(d.end.is_some()) << 1),
            lo,
            hi,
            keys: d.keys.clone(),
            body: d.body.clone(),
        }
    }
}

/// The stored version and columns of a document (the caller holds its advisory lock).
async fn stored(tx: &Tx<'_>, resource_type: &str, id: &str) -> Result<Option<(u64, Columns)>> {
    let row = tx
        .query_opt(
            "SELECT version, span, lo_s, lo_ns, hi_s, hi_ns, keys, body FROM document
             WHERE resource_type = $1 AND id = $2",
            &[&resource_type, &id],
        )
        .await
        .map_err(db)?;
    row.map(|r| {
        let get_err = |e| bad_row("document", e);
        let version: i64 = r.try_get(0).map_err(get_err)?;
        Ok((
            version.max(1) as u64,
            Columns {
                span: r.try_get(1).map_err(get_err)?,
                lo: (
                    r.try_get(2).map_err(get_err)?,
                    r.try_get(3).map_err(get_err)?,
                ),
                hi: (
                    r.try_get(4).map_err(get_err)?,
                    r.try_get(5).map_err(get_err)?,
                ),
                keys: r.try_get(6).map_err(get_err)?,
                body: r.try_get(7).map_err(get_err)?,
            },
        ))
    })
    .transpose()
}

async fn drop_keys(tx: &Tx<'_>, resource_type: &str, id: &str, old: &Columns) -> Result<()> {
    tx.execute(
        "DELETE FROM document_key
         WHERE resource_type = $1 AND key = ANY($2) AND lo_s = $3 AND lo_ns = $4 AND id = $5",
        &[&resource_type, &old.keys, &old.lo.0, &old.lo.1, &id],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Deletes a document under its precondition; true when one was there.
pub(crate) async fn delete(
    tx: &Tx<'_>,
    record: &RecordKey,
    resource_type: &str,
    id: &str,
    precondition: Precondition,
) -> Result<bool> {
    let old = stored(tx, resource_type, id).await?;
    precondition.check(record, old.as_ref().map(|o| o.0))?;
    let Some((_, old)) = old else {
        return Ok(false);
    };
    drop_keys(tx, resource_type, id, &old).await?;
    tx.execute(
        "DELETE FROM document WHERE resource_type = $1 AND id = $2",
        &[&resource_type, &id],
    )
    .await
    .map_err(db)?;
    Ok(true)
}

/// Puts the set's documents, after its measurements.
pub(crate) async fn put(
    tx: &Tx<'_>,
    writes: &[DocumentWrite],
    applied: &mut Applied,
) -> Result<()> {
    for w in writes {
        let d = &w.document;
        let new = Columns::of(d);
        let old = stored(tx, &d.resource_type, &d.id).await?;
        w.precondition.check(
            &RecordKey::document(&d.resource_type, &d.id),
            old.as_ref().map(|o| o.0),
        )?;
        let version = match old {
            Some((v, old)) if old == new => {
                applied.documents.unchanged += 1;
                applied.document_versions.push(v);
                continue;
            }
            Some((v, old)) => {
                drop_keys(tx, &d.resource_type, &d.id, &old).await?;
                applied.documents.updated += 1;
                v + 1
            }
            None => {
                applied.documents.inserted += 1;
                1
            }
        };
        let v = i64::try_from(version).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO document (resource_type, id, version, span, lo_s, lo_ns, hi_s, hi_ns, keys, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (resource_type, id) DO UPDATE SET
                version = excluded.version, span = excluded.span, lo_s = excluded.lo_s,
                lo_ns = excluded.lo_ns, hi_s = excluded.hi_s, hi_ns = excluded.hi_ns,
                keys = excluded.keys, body = excluded.body",
            &[
                &d.resource_type,
                &d.id,
                &v,
                &new.span,
                &new.lo.0,
                &new.lo.1,
                &new.hi.0,
                &new.hi.1,
                &new.keys,
                &new.body,
            ],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "INSERT INTO document_key (resource_type, key, lo_s, lo_ns, id, hi_s, hi_ns)
             SELECT $1, k, $3, $4, $5, $6, $7 FROM UNNEST($2::text[]) AS k
             ON CONFLICT DO NOTHING",
            &[
                &d.resource_type,
                &new.keys,
                &new.lo.0,
                &new.lo.1,
                &d.id,
                &new.hi.0,
                &new.hi.1,
            ],
        )
        .await
        .map_err(db)?;
        applied.document_versions.push(version);
    }
    Ok(())
}

/// The document columns a read selects, in [`decode`]'s order.
const COLUMNS: &str =
    "d.resource_type, d.id, d.version, d.span, d.lo_s, d.lo_ns, d.hi_s, d.hi_ns, d.keys, d.body";

fn instant(s: i64, ns: i32) -> Result<Timestamp> {
    Timestamp::new(s, ns).map_err(|e| bad_row("document's span", e))
}

fn decode(r: &Row) -> Result<Versioned<Document>> {
    let get_err = |e| bad_row("document", e);
    let version: i64 = r.try_get(2).map_err(get_err)?;
    let span: i16 = r.try_get(3).map_err(get_err)?;
    let (lo_s, lo_ns, hi_s, hi_ns): (i64, i32, i64, i32) = (
        r.try_get(4).map_err(get_err)?,
        r.try_get(5).map_err(get_err)?,
        r.try_get(6).map_err(get_err)?,
        r.try_get(7).map_err(get_err)?,
    );
    Ok(Versioned {
        value: Document {
            resource_type: r.try_get(0).map_err(get_err)?,
            id: r.try_get(1).map_err(get_err)?,
            keys: r.try_get(8).map_err(get_err)?,
            start: (span & 1 != 0).then(|| instant(lo_s, lo_ns)).transpose()?,
            end: (span & 2 != 0).then(|| instant(hi_s, hi_ns)).transpose()?,
            body: r.try_get(9).map_err(get_err)?,
        },
        version: version.max(1) as u64,
    })
}

/// The document of that type and id.
pub(crate) async fn get(
    client: &tokio_postgres::Client,
    resource_type: &str,
    id: &str,
) -> Result<Option<Versioned<Document>>> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM document d WHERE d.resource_type = $1 AND d.id = $2"),
            &[&resource_type, &id],
        )
        .await
        .map_err(db)?;
    row.as_ref().map(decode).transpose()
}

/// The documents a query finds: a range of `document_key` on the first key (or of
/// `document_type_span` without keys), each further key one probe.
pub(crate) async fn find(
    client: &tokio_postgres::Client,
    q: &DocumentQuery,
) -> Result<Vec<Versioned<Document>>> {
    if q.limit == 0 {
        return Ok(Vec::new());
    }
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(q.resource_type.clone())];
    let mut arg = |v: Box<dyn ToSql + Sync + Send>| {
        args.push(v);
        format!("${}", args.len())
    };
    let (from, t) = match q.keys.first() {
        Some(first) => {
            let key = arg(Box::new(first.clone()));
            (
                format!(
                    "document_key t JOIN document d ON d.resource_type = t.resource_type AND d.id = t.id
                     WHERE t.resource_type = $1 AND t.key = {key}"
                ),
                "t",
            )
        }
        None => ("document d WHERE d.resource_type = $1".to_string(), "d"),
    };
    let mut sql = format!("SELECT {COLUMNS} FROM {from}");
    for key in q.keys.iter().skip(1) {
        let key = arg(Box::new(key.clone()));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM document_key o WHERE o.resource_type = $1 AND o.key = {key}
                 AND o.lo_s = {t}.lo_s AND o.lo_ns = {t}.lo_ns AND o.id = {t}.id)"
        ));
    }
    if q.from.is_some() || q.to.is_some() {
        sql.push_str(&format!(" AND {t}.lo_s > {NO_SPAN}"));
    }
    if let Some(from) = q.from {
        let (s, ns) = split_nanos(from.as_nanosecond());
        let (s, ns) = (arg(Box::new(s)), arg(Box::new(ns)));
        sql.push_str(&format!(" AND ({t}.hi_s, {t}.hi_ns) >= ({s}, {ns})"));
    }
    if let Some(to) = q.to {
        let (s, ns) = split_nanos(to.as_nanosecond());
        let (s, ns) = (arg(Box::new(s)), arg(Box::new(ns)));
        sql.push_str(&format!(" AND ({t}.lo_s, {t}.lo_ns) <= ({s}, {ns})"));
    }
    let limit = arg(Box::new(i64::try_from(q.limit).unwrap_or(i64::MAX)));
    sql.push_str(&format!(
        " ORDER BY {t}.lo_s, {t}.lo_ns, {t}.id LIMIT {limit}"
    ));
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = client.query(&sql, &params).await.map_err(db)?;
    rows.iter().map(decode).collect()
}
