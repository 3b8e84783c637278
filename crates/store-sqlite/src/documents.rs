//! Documents (FHIR resources kept beside the measurements): their tables, their writes inside a
//! write set's transaction, and their reads.
//!
//! `document` holds one row per document: its span as the instants a search compares (`lo`,
//! `hi`; both [`NO_SPAN`] when it has none) and which of `start` and `end` were given, the keys
//! as written (a JSON array, so they read back in their order) and the body packed
//! (`codec.rs`). `document_key` is the search index: one row per (type, key, document),
//! clustered (`WITHOUT ROWID`) on `(resource_type, key, lo_s, lo_ns, id)`, so a search by a key
//! and a period is one range of it, already in the order of the results (start, then id), and
//! each further key of the search one probe of the same primary key. The span's end is in the
//! row too, so the overlap is decided without reading the document.

use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_store::{
    Applied, Document, DocumentQuery, DocumentWrite, Error, Precondition, RecordKey, Result,
    Versioned,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{bad_row, db};
use crate::rows::split_nanos;

/// Schema 5: documents and their search keys.
pub(crate) const V5: &str = "
    CREATE TABLE document (
        n             INTEGER PRIMARY KEY,
        resource_type TEXT    NOT NULL,
        id            TEXT    NOT NULL,
        version       INTEGER NOT NULL,
        span          INTEGER NOT NULL,  -- which bounds were given: 1 start, 2 end, 3 both, 0 none
        lo_s          INTEGER NOT NULL,  -- the span searched: start (or end) in whole seconds ...
        lo_ns         INTEGER NOT NULL,  -- ... and nanoseconds; -2^63 without a span
        hi_s          INTEGER NOT NULL,  -- end (or start)
        hi_ns         INTEGER NOT NULL,
        keys          TEXT    NOT NULL,  -- the search keys as written, a JSON array
        body          BLOB    NOT NULL,  -- the resource's JSON text, packed (codec.rs)
        UNIQUE (resource_type, id)
    );
    CREATE INDEX document_type_span ON document (resource_type, lo_s, lo_ns, id);
    CREATE TABLE document_key (
        resource_type TEXT    NOT NULL,
        key           TEXT    NOT NULL,
        lo_s          INTEGER NOT NULL,
        lo_ns         INTEGER NOT NULL,
        id            TEXT    NOT NULL,
        hi_s          INTEGER NOT NULL,
        hi_ns         INTEGER NOT NULL,
        doc           INTEGER NOT NULL,  -- document.n
        PRIMARY KEY (resource_type, key, lo_s, lo_ns, id)
    ) WITHOUT ROWID;
";

/// `lo_s` and `hi_s` of a document without a span: below every instant, so such documents sort
/// first and never meet a bound.
const NO_SPAN: i64 = i64::MIN;

/// A document encoded for its row.
pub(crate) struct DocRow {
    span: i64,
    lo: (i64, i64),
    hi: (i64, i64),
    keys: String,
    body: Vec<u8>,
}

impl DocRow {
    pub(crate) fn of(d: &Document) -> Result<Self> {
        let split = |t: Timestamp| split_nanos(t.as_nanosecond());
        let (lo, hi) = match d.effective_span() {
            Some((s, e)) => (split(s), split(e)),
            None => ((NO_SPAN, 0), (NO_SPAN, 0)),
        };
        let keys = serde_json::to_string(&d.keys).map_err(|e| Error::Backend {
            backend: "sqlite",
            source: Box::new(e),
        })?;
        Ok(Self {
            span: i64::from(d.start.is_some()) | (i64::from(d.end.is_some()) << 1),
            lo,
            hi,
            keys,
            body: crate::codec::pack(d.body.as_bytes()),
        })
    }
}

/// What is stored of a document, for a write.
struct Stored {
    n: i64,
    version: u64,
    span: i64,
    lo: (i64, i64),
    hi: (i64, i64),
    keys: String,
    body: Vec<u8>,
}

fn stored(conn: &Connection, resource_type: &str, id: &str) -> Result<Option<Stored>> {
    conn.prepare_cached(
        "SELECT n, version, span, lo_s, lo_ns, hi_s, hi_ns, keys, body FROM document
         WHERE resource_type = ?1 AND id = ?2",
    )
    .and_then(|mut s| {
        s.query_row([resource_type, id], |r| {
            Ok(Stored {
                n: r.get(0)?,
                version: r.get::<_, i64>(1)?.max(1) as u64,
                span: r.get(2)?,
                lo: (r.get(3)?, r.get(4)?),
                hi: (r.get(5)?, r.get(6)?),
                keys: r.get(7)?,
                body: r.get(8)?,
            })
        })
        .optional()
    })
    .map_err(db)
}

fn parse_keys(keys: &str) -> Result<Vec<String>> {
    serde_json::from_str(keys).map_err(|e| bad_row("document's keys", e))
}

/// Removes the index rows of a stored document.
fn drop_keys(conn: &Connection, resource_type: &str, id: &str, old: &Stored) -> Result<()> {
    let mut del = conn
        .prepare_cached(
            "DELETE FROM document_key
             WHERE resource_type = ?1 AND key = ?2 AND lo_s = ?3 AND lo_ns = ?4 AND id = ?5",
        )
        .map_err(db)?;
    for key in parse_keys(&old.keys)? {
        del.execute(params![resource_type, key, old.lo.0, old.lo.1, id])
            .map_err(db)?;
    }
    Ok(())
}

fn add_keys(conn: &Connection, d: &Document, row: &DocRow, n: i64) -> Result<()> {
    let mut add = conn
        .prepare_cached(
            "INSERT INTO document_key (resource_type, key, lo_s, lo_ns, id, hi_s, hi_ns, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        )
        .map_err(db)?;
    for key in &d.keys {
        add.execute(params![
            d.resource_type,
            key,
            row.lo.0,
            row.lo.1,
            d.id,
            row.hi.0,
            row.hi.1,
            n
        ])
        .map_err(db)?;
    }
    Ok(())
}

/// Deletes a document under its precondition (in the set's transaction); true when one was
/// there.
pub(crate) fn delete(
    conn: &Connection,
    record: &RecordKey,
    resource_type: &str,
    id: &str,
    precondition: Precondition,
) -> Result<bool> {
    let old = stored(conn, resource_type, id)?;
    precondition.check(record, old.as_ref().map(|o| o.version))?;
    let Some(old) = old else {
        return Ok(false);
    };
    drop_keys(conn, resource_type, id, &old)?;
    conn.prepare_cached("DELETE FROM document WHERE n = ?1")
        .and_then(|mut s| s.execute([old.n]))
        .map_err(db)?;
    Ok(true)
}

/// Puts the set's documents (in the set's transaction), after its measurements.
pub(crate) fn put(
    conn: &Connection,
    writes: &[DocumentWrite],
    rows: &[DocRow],
    applied: &mut Applied,
) -> Result<()> {
    for (w, row) in writes.iter().zip(rows) {
        let d = &w.document;
        let old = stored(conn, &d.resource_type, &d.id)?;
        let record = || RecordKey::document(&d.resource_type, &d.id);
        w.precondition
            .check(&record(), old.as_ref().map(|o| o.version))?;
        let version = match old {
            Some(old)
                if old.span == row.span
                    && old.lo == row.lo
                    && old.hi == row.hi
                    && old.keys == row.keys
                    && old.body == row.body =>
            {
                applied.documents.unchanged += 1;
                old.version
            }
            Some(old) => {
                drop_keys(conn, &d.resource_type, &d.id, &old)?;
                let version = old.version + 1;
                conn.prepare_cached(
                    "UPDATE document SET version = ?2, span = ?3, lo_s = ?4, lo_ns = ?5,
                            hi_s = ?6, hi_ns = ?7, keys = ?8, body = ?9
                     WHERE n = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        old.n,
                        i64::try_from(version).unwrap_or(i64::MAX),
                        row.span,
                        row.lo.0,
                        row.lo.1,
                        row.hi.0,
                        row.hi.1,
                        row.keys,
                        row.body
                    ])
                })
                .map_err(db)?;
                add_keys(conn, d, row, old.n)?;
                applied.documents.updated += 1;
                version
            }
            None => {
                let n: i64 = conn
                    .prepare_cached(
                        "INSERT INTO document
                            (resource_type, id, version, span, lo_s, lo_ns, hi_s, hi_ns, keys, body)
                         VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING n",
                    )
                    .and_then(|mut s| {
                        s.query_row(
                            params![
                                d.resource_type,
                                d.id,
                                row.span,
                                row.lo.0,
                                row.lo.1,
                                row.hi.0,
                                row.hi.1,
                                row.keys,
                                row.body
                            ],
                            |r| r.get(0),
                        )
                    })
                    .map_err(db)?;
                add_keys(conn, d, row, n)?;
                applied.documents.inserted += 1;
                1
            }
        };
        applied.document_versions.push(version);
    }
    Ok(())
}

/// The document columns a read selects, in [`decode`]'s order.
const COLUMNS: &str =
    "d.resource_type, d.id, d.version, d.span, d.lo_s, d.lo_ns, d.hi_s, d.hi_ns, d.keys, d.body";

fn instant(s: i64, ns: i64) -> Result<Timestamp> {
    i32::try_from(ns)
        .ok()
        .and_then(|ns| Timestamp::new(s, ns).ok())
        .ok_or_else(|| bad_row("document's span", format!("{s}s {ns}ns")))
}

fn decode(r: &rusqlite::Row<'_>) -> Result<Versioned<Document>> {
    let get_err = |e| bad_row("document", e);
    let span: i64 = r.get(3).map_err(get_err)?;
    let (lo_s, lo_ns, hi_s, hi_ns): (i64, i64, i64, i64) = (
        r.get(4).map_err(get_err)?,
        r.get(5).map_err(get_err)?,
        r.get(6).map_err(get_err)?,
        r.get(7).map_err(get_err)?,
    );
    let keys: String = r.get(8).map_err(get_err)?;
    let body = r
        .get_ref(9)
        .and_then(|v| Ok(v.as_blob()?))
        .map_err(get_err)?;
    let body = crate::codec::unpack(body).map_err(|e| bad_row("document body", e))?;
    let body = String::from_utf8(body).map_err(|e| bad_row("document body", e))?;
    let version: i64 = r.get(2).map_err(get_err)?;
    Ok(Versioned {
        value: Document {
            resource_type: r.get(0).map_err(get_err)?,
            id: r.get(1).map_err(get_err)?,
            keys: parse_keys(&keys)?,
            start: (span & 1 != 0).then(|| instant(lo_s, lo_ns)).transpose()?,
            end: (span & 2 != 0).then(|| instant(hi_s, hi_ns)).transpose()?,
            body,
        },
        version: version.max(1) as u64,
    })
}

/// The document of that type and id.
pub(crate) fn get(
    conn: &Connection,
    resource_type: &str,
    id: &str,
) -> Result<Option<Versioned<Document>>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM document d WHERE d.resource_type = ?1 AND d.id = ?2"
        ))
        .map_err(db)?;
    let mut rows = stmt.query([resource_type, id]).map_err(db)?;
    rows.next().map_err(db)?.map(decode).transpose()
}

/// The documents a query finds: a range of `document_key` on the first key (or of
/// `document_type_span` without keys), each further key one probe.
pub(crate) fn find(conn: &Connection, q: &DocumentQuery) -> Result<Vec<Versioned<Document>>> {
    if q.limit == 0 {
        return Ok(Vec::new());
    }
    let (sql, args) = query_sql(q);
    let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args.iter()))
        .map_err(db)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db)? {
        out.push(decode(r)?);
    }
    Ok(out)
}

/// The SQL of a search and its parameters.
fn query_sql(q: &DocumentQuery) -> (String, Vec<Value>) {
    let mut args: Vec<Value> = vec![Value::Text(q.resource_type.clone())];
    let mut arg = |v: Value| {
        args.push(v);
        format!("?{}", args.len())
    };
    // `t` is the table whose span columns and id decide: the first key's index rows, or the
    // documents themselves.
    let (from, t) = match q.keys.first() {
        Some(first) => {
            let key = arg(Value::Text(first.clone()));
            (
                format!(
                    "document_key t JOIN document d ON d.n = t.doc
                     WHERE t.resource_type = ?1 AND t.key = {key}"
                ),
                "t",
            )
        }
        None => ("document d WHERE d.resource_type = ?1".to_string(), "d"),
    };
    let mut sql = format!("SELECT {COLUMNS} FROM {from}");
    for key in q.keys.iter().skip(1) {
        let key = arg(Value::Text(key.clone()));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM document_key o WHERE o.resource_type = ?1 AND o.key = {key}
                 AND o.lo_s = {t}.lo_s AND o.lo_ns = {t}.lo_ns AND o.id = {t}.id)"
        ));
    }
    if q.from.is_some() || q.to.is_some() {
        sql.push_str(&format!(" AND {t}.lo_s > {NO_SPAN}"));
    }
    if let Some(from) = q.from {
        let (s, ns) = split_nanos(from.as_nanosecond());
        let (s, ns) = (arg(Value::Integer(s)), arg(Value::Integer(ns)));
        sql.push_str(&format!(" AND ({t}.hi_s, {t}.hi_ns) >= ({s}, {ns})"));
    }
    if let Some(to) = q.to {
        let (s, ns) = split_nanos(to.as_nanosecond());
        let (s, ns) = (arg(Value::Integer(s)), arg(Value::Integer(ns)));
        sql.push_str(&format!(" AND ({t}.lo_s, {t}.lo_ns) <= ({s}, {ns})"));
    }
    let limit = arg(Value::Integer(i64::try_from(q.limit).unwrap_or(i64::MAX)));
    sql.push_str(&format!(
        " ORDER BY {t}.lo_s, {t}.lo_ns, {t}.id LIMIT {limit}"
    ));
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of a search by keys and period: a range of the clustered key index, in its
    /// order (no sort), each further key a primary-key probe, the document by its row number.
    #[test]
    fn a_search_is_one_index_range_without_a_sort() {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::schema::migrate(
            &mut conn,
            std::path::Path::new(":memory:"),
            crate::SCHEMA_VERSION,
        )
        .expect("migrate");
        let t = Timestamp::UNIX_EPOCH;
        let q = DocumentQuery::new("Provenance", 10)
            .key("patient|Patient/1")
            .key("episode-of-care|EpisodeOfCare/2")
            .period(Some(t), Some(t));
        // `find` with EXPLAIN QUERY PLAN in front: the same SQL text.
        let plan = {
            let sql = capture_sql(&q);
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan");
            let args = capture_args(&q);
            stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
                r.get::<_, String>(3)
            })
            .expect("query")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows")
            .join("\n")
        };
        assert!(!plan.contains("TEMP B-TREE"), "sorted apart: {plan}");
        assert!(plan.contains("SEARCH t USING PRIMARY KEY"), "{plan}");
        assert!(plan.contains("SEARCH o EXISTS USING PRIMARY KEY"), "{plan}");
        assert!(
            plan.contains("SEARCH d USING INTEGER PRIMARY KEY"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN"), "{plan}");
        let q = DocumentQuery::new("Provenance", 10).period(None, Some(t));
        let sql = capture_sql(&q);
        let plan = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan")
            .query_map(rusqlite::params_from_iter(capture_args(&q).iter()), |r| {
                r.get::<_, String>(3)
            })
            .expect("query")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows")
            .join("\n");
        assert!(plan.contains("document_type_span"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    fn capture_sql(q: &DocumentQuery) -> String {
        query_sql(q).0
    }

    fn capture_args(q: &DocumentQuery) -> Vec<Value> {
        query_sql(q).1
    }
}
