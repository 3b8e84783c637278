//! Write sets on PostgreSQL: one transaction (READ COMMITTED) per set.
//!
//! Records with a precondition, every subject and every document are first locked with transaction-level
//! advisory locks keyed by a hash of the record's id (or identifier), all of the set's keys in
//! one sorted statement so that two sets never wait for each other in a cycle. Inside those
//! locks a precondition is read and the write made with no other writer in between, in this
//! process or another one. Measurements without a precondition (sync batches) take no lock:
//! their upsert is one `UNNEST` statement, and a version-checked write beside them still holds,
//! since its `UPDATE … WHERE version = N` is re-checked by PostgreSQL against the row it waited
//! for. The reasons are in `docs/adr/0007-write-sets.md`.

use std::collections::{HashMap, HashSet};

use healthanalyzer_model::{Identifier, Measurement, MeasurementId};
use healthanalyzer_store::backend::{identifier_key, parse_identifier_key};
use healthanalyzer_store::{
    Applied, Conflict, ConflictReason, Error, MeasurementWrite, Precondition, RecordKey, Result,
    WriteSet, WriteSummary,
};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::documents;
use crate::error::{bad_row, db};
use crate::store::Columns;

type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// A 64-bit lock key: FNV-1a over a tag and the record's key.
fn lock_key(tag: u8, key: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(tag).chain(key.iter().copied()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

fn measurement_lock(id: &MeasurementId) -> i64 {
    lock_key(b'm', id.as_uuid().as_bytes())
}

fn document_lock(resource_type: &str, id: &str) -> i64 {
    lock_key(b'd', &documents::lock_bytes(resource_type, id))
}

fn identifier_lock(id: &Identifier) -> i64 {
    lock_key(b's', identifier_key(id).as_bytes())
}

/// Every lock the set needs, sorted and deduplicated.
fn locks(set: &WriteSet) -> Vec<i64> {
    let mut keys: Vec<i64> = Vec::new();
    for d in &set.deletions {
        match &d.record {
            RecordKey::Measurement(id) if d.precondition != Precondition::Any => {
                keys.push(measurement_lock(id))
            }
            RecordKey::Measurement(_) => {}
            RecordKey::Subject(id) => keys.push(identifier_lock(id)),
            RecordKey::Document { resource_type, id } => {
                keys.push(document_lock(resource_type, id))
            }
        }
    }
    for w in &set.subjects {
        let s = &w.subject;
        keys.extend(
            std::iter::once(&s.id)
                .chain(&s.other_ids)
                .map(identifier_lock),
        );
    }
    for w in &set.measurements {
        if w.precondition != Precondition::Any {
            keys.push(measurement_lock(&w.measurement.id));
        }
    }
    // Every document, whatever its precondition: an upsert reads the stored version to count
    // it up, and documents are few.
    for w in &set.documents {
        keys.push(document_lock(&w.document.resource_type, &w.document.id));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn failed(c: Conflict) -> Error {
    Error::PreconditionFailed(Box::new(c))
}

fn is_deadlock(e: &Error) -> bool {
    let Error::Unavailable {
        source: Some(source),
        ..
    } = e
    else {
        return false;
    };
    source
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|c| *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// Applies `set` on a pooled connection, retrying a few times when PostgreSQL picked it as a
/// deadlock victim (it rolled the transaction back, so nothing of it was written).
pub(crate) async fn apply(
    client: &mut deadpool_postgres::Object,
    set: &WriteSet,
) -> Result<Applied> {
    set.check()?;
    // The rows without precondition, encoded (JSON, zstd) before the transaction begins; a bulk
    // set's on the blocking pool, so the caller's next batch is parsed meanwhile on another core.
    let plain: Vec<&Measurement> = set
        .measurements
        .iter()
        .filter(|w| w.precondition == Precondition::Any)
        .map(|w| &w.measurement)
        .collect();
    let columns = if plain.len() >= BULK_ROWS {
        let owned: Vec<Measurement> = plain.into_iter().cloned().collect();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&Measurement> = owned.iter().collect();
            Columns::of(&refs)
        })
        .await
        .map_err(|e| Error::invalid("measurements", format!("encoding stopped: {e}")))??
    } else {
        Columns::of(&plain)?
    };
    let mut attempt = 0;
    loop {
        match apply_once(client, set, &columns).await {
            Err(e) if attempt < 4 && is_deadlock(&e) => attempt += 1,
            other => return other,
        }
    }
}

async fn apply_once(
    client: &mut deadpool_postgres::Object,
    set: &WriteSet,
    plain: &Columns,
) -> Result<Applied> {
    let tx = client.transaction().await.map_err(db)?;
    let keys = locks(set);
    if !keys.is_empty() {
        let stmt = tx
            .prepare_cached(
                "SELECT pg_advisory_xact_lock(k) FROM UNNEST($1::int8[]) WITH ORDINALITY AS l(k, o) ORDER BY o",
            )
            .await
            .map_err(db)?;
        tx.query(&stmt, &[&keys]).await.map_err(db)?;
    }
    let mut applied = Applied::default();
    delete(&tx, set, &mut applied).await?;
    if !set.subjects.is_empty() {
        put_subjects(&tx, set, &mut applied).await?;
    }
    put_measurements(&tx, &set.measurements, plain, &mut applied).await?;
    if !set.documents.is_empty() {
        documents::put(&tx, &set.documents, &mut applied).await?;
    }
    if let Some(cp) = &set.checkpoint {
        tx.execute(
            "INSERT INTO checkpoint (source_id, cursor) VALUES ($1, $2)
             ON CONFLICT (source_id) DO UPDATE SET cursor = excluded.cursor",
            &[&cp.source_id, &cp.cursor],
        )
        .await
        .map_err(db)?;
    }
    // Dropping this future before the commit drops the transaction: PostgreSQL rolls it back.
    tx.commit().await.map_err(db)?;
    Ok(applied)
}

async fn measurement_version(tx: &Tx<'_>, id: Uuid) -> Result<Option<(i32, u64)>> {
    let row = tx
        .query_opt(
            "SELECT sid, version FROM measurement WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(db)?;
    row.map(|r| {
        let subject: i32 = r.try_get(0).map_err(db)?;
        let v: i64 = r.try_get(1).map_err(db)?;
        Ok((subject, v.max(1) as u64))
    })
    .transpose()
}

async fn subject_version(tx: &Tx<'_>, key: &str) -> Result<Option<(String, u64)>> {
    let row = tx
        .query_opt("SELECT body, version FROM subject WHERE key = $1", &[&key])
        .await
        .map_err(db)?;
    row.map(|r| {
        let body: String = r.try_get(0).map_err(db)?;
        let v: i64 = r.try_get(1).map_err(db)?;
        Ok((body, v.max(1) as u64))
    })
    .transpose()
}

async fn delete(tx: &Tx<'_>, set: &WriteSet, applied: &mut Applied) -> Result<()> {
    let mut plain: Vec<Uuid> = Vec::new();
    for d in &set.deletions {
        match &d.record {
            RecordKey::Measurement(id) if d.precondition == Precondition::Any => {
                plain.push(*id.as_uuid())
            }
            RecordKey::Measurement(id) => {
                let stored = measurement_version(tx, *id.as_uuid()).await?;
                d.precondition
                    .check(&d.record, stored.as_ref().map(|s| s.1))?;
                if stored.is_some() {
                    applied.deleted += tx
                        .execute("DELETE FROM measurement WHERE id = $1", &[id.as_uuid()])
                        .await
                        .map_err(db)?;
                }
            }
            RecordKey::Document { resource_type, id } => {
                if documents::delete(tx, &d.record, resource_type, id, d.precondition).await? {
                    applied.deleted += 1;
                }
            }
            RecordKey::Subject(primary) => {
                let key = identifier_key(primary);
                let stored = subject_version(tx, &key).await?;
                d.precondition
                    .check(&d.record, stored.as_ref().map(|s| s.1))?;
                if stored.is_some() {
                    applied.deleted += tx
                        .execute("DELETE FROM subject WHERE key = $1", &[&key])
                        .await
                        .map_err(db)?;
                    tx.execute("DELETE FROM subject_identifier WHERE subject = $1", &[&key])
                        .await
                        .map_err(db)?;
                }
            }
        }
    }
    if !plain.is_empty() {
        applied.deleted += tx
            .execute("DELETE FROM measurement WHERE id = ANY($1)", &[&plain])
            .await
            .map_err(db)?;
    }
    Ok(())
}

async fn put_subjects(tx: &Tx<'_>, set: &WriteSet, applied: &mut Applied) -> Result<()> {
    // Set-wise, a fixed number of statements whatever the number of subjects. Identifiers first,
    // for all subjects of the set together: one may hand an identifier to another. The advisory
    // locks on every identifier are held, so these reads stay true.
    let keys: Vec<String> = set
        .subjects
        .iter()
        .map(|w| identifier_key(&w.subject.id))
        .collect();
    let rewritten: HashSet<&str> = keys.iter().map(String::as_str).collect();
    // Every identifier of the set -> the index of the subject that claims it (unique: checked).
    let mut claims: HashMap<String, usize> = HashMap::new();
    for (i, w) in set.subjects.iter().enumerate() {
        let s = &w.subject;
        for id in std::iter::once(&s.id).chain(&s.other_ids) {
            claims.insert(identifier_key(id), i);
        }
    }
    let all: Vec<&str> = claims.keys().map(String::as_str).collect();
    let held = tx
        .query(
            "SELECT identifier, subject FROM subject_identifier WHERE identifier = ANY($1)",
            &[&all],
        )
        .await
        .map_err(db)?;
    for row in &held {
        let identifier: String = row.try_get(0).map_err(db)?;
        let owner: String = row.try_get(1).map_err(db)?;
        let Some(&i) = claims.get(&identifier) else {
            continue;
        };
        if owner != keys[i] && !rewritten.contains(owner.as_str()) {
            let owner =
                parse_identifier_key(&owner).ok_or_else(|| bad_row("subject key", &owner))?;
            let identifier = parse_identifier_key(&identifier)
                .ok_or_else(|| bad_row("identifier", &identifier))?;
            return Err(failed(Conflict {
                record: RecordKey::Subject(set.subjects[i].subject.id.clone()),
                reason: ConflictReason::IdentifierTaken { identifier, owner },
            }));
        }
    }
    let mut stored: HashMap<String, (String, u64)> = HashMap::new();
    for r in tx
        .query(
            "SELECT key, body, version FROM subject WHERE key = ANY($1)",
            &[&keys],
        )
        .await
        .map_err(db)?
    {
        let v: i64 = r.try_get(2).map_err(db)?;
        stored.insert(
            r.try_get(0).map_err(db)?,
            (r.try_get(1).map_err(db)?, v.max(1) as u64),
        );
    }
    // What changes: key, body, version; and every identifier of a changed subject.
    let (mut put_keys, mut put_bodies, mut put_versions) = (Vec::new(), Vec::new(), Vec::new());
    let (mut alias, mut alias_owner) = (Vec::new(), Vec::new());
    for (w, key) in set.subjects.iter().zip(&keys) {
        let s = &w.subject;
        let body = serde_json::to_string(s)
            .map_err(|e| Error::invalid("subject", format!("cannot be encoded: {e}")))?;
        let old = stored.get(key);
        w.precondition
            .check(&RecordKey::Subject(s.id.clone()), old.map(|o| o.1))?;
        let version = match old {
            Some((old_body, v)) if *old_body == body => {
                applied.subjects.unchanged += 1;
                applied.subject_versions.push(*v);
                continue;
            }
            Some((_, v)) => {
                applied.subjects.updated += 1;
                v + 1
            }
            None => {
                applied.subjects.inserted += 1;
                1
            }
        };
        for id in std::iter::once(&s.id).chain(&s.other_ids) {
            alias.push(identifier_key(id));
            alias_owner.push(key.as_str());
        }
        put_keys.push(key.as_str());
        put_bodies.push(body);
        put_versions.push(i64::try_from(version).unwrap_or(i64::MAX));
        applied.subject_versions.push(version);
    }
    if put_keys.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO subject (key, body, version)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[])
         ON CONFLICT (key) DO UPDATE SET body = excluded.body, version = excluded.version",
        &[&put_keys, &put_bodies, &put_versions],
    )
    .await
    .map_err(db)?;
    tx.execute(
        "DELETE FROM subject_identifier WHERE subject = ANY($1)",
        &[&put_keys],
    )
    .await
    .map_err(db)?;
    tx.execute(
        "INSERT INTO subject_identifier (identifier, subject)
         SELECT * FROM UNNEST($1::text[], $2::text[])
         ON CONFLICT (identifier) DO UPDATE SET subject = excluded.subject",
        &[&alias, &alias_owner],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// A dictionary table: `series` (subject keys) or `kind_name` (kind names).
#[derive(Clone, Copy)]
enum Dictionary {
    Series,
    Kind,
}

impl Dictionary {
    fn select(self) -> &'static str {
        match self {
            Self::Series => "SELECT key, sid FROM series WHERE key = ANY($1)",
            Self::Kind => "SELECT name, kid FROM kind_name WHERE name = ANY($1)",
        }
    }

    fn insert(self) -> &'static str {
        // In key order, so two sets adding the same keys wait for each other without a cycle.
        match self {
            Self::Series => {
                "INSERT INTO series (key) SELECT k FROM UNNEST($1::text[]) AS k ORDER BY k
                 ON CONFLICT (key) DO NOTHING"
            }
            Self::Kind => {
                "INSERT INTO kind_name (name) SELECT k FROM UNNEST($1::text[]) AS k ORDER BY k
                 ON CONFLICT (name) DO NOTHING"
            }
        }
    }
}

/// The dictionary numbers of `names` (distinct), adding those that are new. Rows are never
/// changed or deleted; one added by a set that rolls back goes with it. A key another
/// transaction is adding makes the insert wait for it, and the second read (a new snapshot,
/// READ COMMITTED) then sees it.
async fn numbers(tx: &Tx<'_>, dict: Dictionary, names: &[&str]) -> Result<HashMap<String, i32>> {
    let read = |rows: Vec<tokio_postgres::Row>, into: &mut HashMap<String, i32>| -> Result<()> {
        for r in rows {
            into.insert(r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?);
        }
        Ok(())
    };
    let mut found = HashMap::with_capacity(names.len());
    let stmt = tx.prepare_cached(dict.select()).await.map_err(db)?;
    read(tx.query(&stmt, &[&names]).await.map_err(db)?, &mut found)?;
    if found.len() < names.len() {
        let new: Vec<&str> = names
            .iter()
            .filter(|n| !found.contains_key(**n))
            .copied()
            .collect();
        tx.execute(dict.insert(), &[&new]).await.map_err(db)?;
        read(tx.query(&stmt, &[&new]).await.map_err(db)?, &mut found)?;
    }
    Ok(found)
}

/// The dictionary number of each of `names`, in order.
async fn numbered(tx: &Tx<'_>, dict: Dictionary, names: &[String]) -> Result<Vec<i32>> {
    let mut distinct: Vec<&str> = names.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let found = numbers(tx, dict, &distinct).await?;
    names
        .iter()
        .map(|n| {
            found
                .get(n)
                .copied()
                .ok_or_else(|| bad_row("dictionary", "a key just added is missing"))
        })
        .collect()
}

async fn put_measurements(
    tx: &Tx<'_>,
    writes: &[MeasurementWrite],
    plain: &Columns,
    applied: &mut Applied,
) -> Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut versions: HashMap<MeasurementId, u64> = HashMap::new();
    // Without preconditions (`plain`, encoded by the caller): one bulk upsert.
    if !plain.id.is_empty() || plain.repeats > 0 {
        let summary = upsert(tx, plain, &mut versions).await?;
        add(&mut applied.measurements, summary);
    }
    // With preconditions: one at a time, under their locks.
    for w in writes
        .iter()
        .filter(|w| w.precondition != Precondition::Any)
    {
        let m = &w.measurement;
        let record = RecordKey::Measurement(m.id);
        let id = *m.id.as_uuid();
        let stored = measurement_version(tx, id).await?;
        w.precondition
            .check(&record, stored.as_ref().map(|s| s.1))?;
        let c = Columns::of(&[m])?;
        let sid = numbered(tx, Dictionary::Series, &c.subject).await?[0];
        let kid = numbered(tx, Dictionary::Kind, &c.kind).await?[0];
        let (s, ns) = (c.t_s[0], c.t_ns[0]);
        let (body, payload_type, payload) = (&c.body[0], &c.payload_type[0], &c.payload[0]);
        let insert = |v: i64| async move {
            tx.execute(
                "INSERT INTO measurement (id, sid, kid, t_s, t_ns, body, payload_type, payload, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[&id, &sid, &kid, &s, &ns, body, payload_type, payload, &v],
            )
            .await
            .map_err(db)
        };
        let version = match stored {
            None => {
                insert(1).await?;
                applied.measurements.inserted += 1;
                1
            }
            Some((old_subject, v)) if old_subject == sid => {
                let n = tx
                    .execute(
                        "UPDATE measurement SET kid = $3, t_s = $4, t_ns = $5, body = $6,
                                payload_type = $7, payload = $8, version = $9
                         WHERE id = $1 AND sid = $2
                           AND (body, payload_type, payload) IS DISTINCT FROM ($6, $7, $8)",
                        &[
                            &id,
                            &sid,
                            &kid,
                            &s,
                            &ns,
                            body,
                            payload_type,
                            payload,
                            &((v + 1) as i64),
                        ],
                    )
                    .await
                    .map_err(db)?;
                if n == 0 {
                    applied.measurements.unchanged += 1;
                    v
                } else {
                    applied.measurements.updated += 1;
                    v + 1
                }
            }
            Some((old_subject, v)) => {
                // A corrected subject: the row moves (the subject is part of the key).
                tx.execute(
                    "DELETE FROM measurement WHERE id = $1 AND sid = $2",
                    &[&id, &old_subject],
                )
                .await
                .map_err(db)?;
                insert((v + 1) as i64).await?;
                applied.measurements.updated += 1;
                v + 1
            }
        };
        versions.insert(m.id, version);
    }
    applied.measurement_versions = writes
        .iter()
        .map(|w| versions.get(&w.measurement.id).copied().unwrap_or(1))
        .collect();
    Ok(())
}

fn add(total: &mut WriteSummary, more: WriteSummary) {
    total.inserted += more.inserted;
    total.updated += more.updated;
    total.unchanged += more.unchanged;
}

/// From this many rows, a batch goes to the server with binary `COPY` into a staging table
/// (ADR 0015); below it, as arrays of one `UNNEST` statement.
pub(crate) const BULK_ROWS: usize = 1_000;

/// The upsert, from `UNNEST` of the arrays ($1 … $8) or from the staging table.
fn upsert_sql(from: &str) -> String {
    format!(
        "WITH up AS (
           INSERT INTO measurement AS m (id, sid, kid, t_s, t_ns, body, payload_type, payload, version)
           SELECT id, sid, kid, t_s, t_ns, body, payload_type, payload, 1 FROM {from}
           ON CONFLICT (id, sid) DO UPDATE
             SET kid = excluded.kid, t_s = excluded.t_s, t_ns = excluded.t_ns, body = excluded.body,
                 payload_type = excluded.payload_type, payload = excluded.payload,
                 version = m.version + 1
             WHERE (m.body, m.payload_type, m.payload)
                   IS DISTINCT FROM (excluded.body, excluded.payload_type, excluded.payload)
           RETURNING m.id, m.version, (m.xmax = 0) AS inserted)
         SELECT count(*) FILTER (WHERE inserted),
                COALESCE(array_agg(id) FILTER (WHERE NOT inserted), '{{}}'),
                COALESCE(array_agg(version) FILTER (WHERE NOT inserted), '{{}}')
         FROM up"
    )
}

/// Sends the batch into the session's staging table (made on first use, emptied at every
/// commit) with binary `COPY`.
async fn stage(tx: &Tx<'_>, c: &Columns, sid: &[i32], kid: &[i32]) -> Result<()> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TEMP TABLE IF NOT EXISTS ha_staging (
             id uuid, sid int, kid int, t_s bigint, t_ns int, body bytea, payload_type text, payload bytea
         ) ON COMMIT DELETE ROWS",
    )
    .await
    .map_err(db)?;
    let sink = tx
        .copy_in("COPY ha_staging FROM STDIN BINARY")
        .await
        .map_err(db)?;
    let types = [
        Type::UUID,
        Type::INT4,
        Type::INT4,
        Type::INT8,
        Type::INT4,
        Type::BYTEA,
        Type::TEXT,
        Type::BYTEA,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for i in 0..c.id.len() {
        writer
            .as_mut()
            .write(&[
                &c.id[i],
                &sid[i],
                &kid[i],
                &c.t_s[i],
                &c.t_ns[i],
                &c.body[i],
                &c.payload_type[i],
                &c.payload[i],
            ])
            .await
            .map_err(db)?;
    }
    writer.finish().await.map_err(db)?;
    Ok(())
}

/// Upserts a batch in `tx`: rows whose subject changed are moved (keeping their version count),
/// then one upsert (from `UNNEST`, or from the staging table for a bulk batch); the version of
/// every id that is not at 1 goes into `versions`.
async fn upsert(
    tx: &Tx<'_>,
    c: &Columns,
    versions: &mut HashMap<MeasurementId, u64>,
) -> Result<WriteSummary> {
    let mut summary = WriteSummary {
        unchanged: c.repeats,
        ..WriteSummary::default()
    };
    if c.id.is_empty() {
        return Ok(summary);
    }
    let sid = numbered(tx, Dictionary::Series, &c.subject).await?;
    let kid = numbered(tx, Dictionary::Kind, &c.kind).await?;
    // An id stored under another subject (a corrected subject) is moved, counted as an update.
    let move_stmt = tx
        .prepare_cached(
            // `id = ANY` probes the primary key (new ids find nothing); the pair test runs only
            // on ids that exist.
            "DELETE FROM measurement
             WHERE id = ANY($1::uuid[])
               AND (id, sid) NOT IN (SELECT * FROM UNNEST($1::uuid[], $2::int4[]))
             RETURNING id, version",
        )
        .await
        .map_err(db)?;
    let moved_rows = tx.query(&move_stmt, &[&c.id, &sid]).await.map_err(db)?;
    let mut moved: Vec<(Uuid, i64)> = Vec::with_capacity(moved_rows.len());
    for r in &moved_rows {
        moved.push((r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?));
    }
    let row = if c.id.len() >= BULK_ROWS {
        stage(tx, c, &sid, &kid).await?;
        let stmt = tx
            .prepare_cached(&upsert_sql("ha_staging"))
            .await
            .map_err(db)?;
        tx.query_one(&stmt, &[]).await.map_err(db)?
    } else {
        let stmt = tx
            .prepare_cached(&upsert_sql(
                "UNNEST($1::uuid[], $2::int4[], $3::int4[], $4::int8[], $5::int4[], $6::bytea[], $7::text[], $8::bytea[])
                   AS u(id, sid, kid, t_s, t_ns, body, payload_type, payload)",
            ))
            .await
            .map_err(db)?;
        tx.query_one(
            &stmt,
            &[
                &c.id,
                &sid,
                &kid,
                &c.t_s,
                &c.t_ns,
                &c.body,
                &c.payload_type,
                &c.payload,
            ],
        )
        .await
        .map_err(db)?
    };
    let inserted: i64 = row.try_get(0).map_err(db)?;
    let updated_ids: Vec<Uuid> = row.try_get(1).map_err(db)?;
    let updated_versions: Vec<i64> = row.try_get(2).map_err(db)?;
    for (id, v) in updated_ids.iter().zip(&updated_versions) {
        versions.insert(MeasurementId::from_uuid(*id), (*v).max(1) as u64);
    }
    summary.inserted = inserted.max(0) as u64;
    summary.updated = updated_ids.len() as u64;
    // Moved rows were inserted anew under their new subject: they are updates, one version on.
    if !moved.is_empty() {
        let ids: Vec<Uuid> = moved.iter().map(|m| m.0).collect();
        let next: Vec<i64> = moved.iter().map(|m| m.1 + 1).collect();
        tx.execute(
            "UPDATE measurement SET version = x.v FROM UNNEST($1::uuid[], $2::int8[]) AS x(id, v)
             WHERE measurement.id = x.id",
            &[&ids, &next],
        )
        .await
        .map_err(db)?;
        for (id, v) in ids.iter().zip(&next) {
            versions.insert(MeasurementId::from_uuid(*id), (*v).max(1) as u64);
        }
    }
    let moved_n = moved.len() as u64;
    summary.inserted = summary.inserted.saturating_sub(moved_n);
    summary.updated += moved_n;
    let written = inserted.max(0) as u64 + updated_ids.len() as u64;
    let unchanged = c.id.len() as u64 - written;
    summary.unchanged += unchanged;
    // Unchanged rows returned nothing: read the versions that are not 1 (a first import has
    // none to read).
    if unchanged > 0 {
        for r in tx
            .query(
                "SELECT id, version FROM measurement WHERE id = ANY($1) AND version <> 1",
                &[&c.id],
            )
            .await
            .map_err(db)?
        {
            let id: Uuid = r.try_get(0).map_err(db)?;
            let v: i64 = r.try_get(1).map_err(db)?;
            versions
                .entry(MeasurementId::from_uuid(id))
                .or_insert(v.max(1) as u64);
        }
    }
    Ok(summary)
}
