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

use healthanalyzer_model::{Identifier, MeasurementId};
use healthanalyzer_store::backend::{identifier_key, parse_identifier_key};
use healthanalyzer_store::{
    Applied, Conflict, ConflictReason, Error, MeasurementWrite, Precondition, RecordKey, Result,
    WriteSet, WriteSummary,
};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::documents;
use crate::error::{bad_row, db};
use crate::store::{Columns, split_nanos};

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
    let mut attempt = 0;
    loop {
        match apply_once(client, set).await {
            Err(e) if attempt < 4 && is_deadlock(&e) => attempt += 1,
            other => return other,
        }
    }
}

async fn apply_once(client: &mut deadpool_postgres::Object, set: &WriteSet) -> Result<Applied> {
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
    put_measurements(&tx, &set.measurements, &mut applied).await?;
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

async fn measurement_version(tx: &Tx<'_>, id: Uuid) -> Result<Option<(String, u64)>> {
    let row = tx
        .query_opt(
            "SELECT subject, version FROM measurement WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(db)?;
    row.map(|r| {
        let subject: String = r.try_get(0).map_err(db)?;
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
    // Identifiers first, for all subjects of the set together: one may hand an identifier to
    // another. The advisory locks on every identifier are held, so this read stays true.
    let keys: Vec<String> = set
        .subjects
        .iter()
        .map(|w| identifier_key(&w.subject.id))
        .collect();
    let rewritten: HashSet<&str> = keys.iter().map(String::as_str).collect();
    for (w, key) in set.subjects.iter().zip(&keys) {
        let s = &w.subject;
        let aliases: Vec<Identifier> = std::iter::once(&s.id)
            .chain(&s.other_ids)
            .cloned()
            .collect();
        let alias_keys: Vec<String> = aliases.iter().map(identifier_key).collect();
        let held = tx
            .query(
                "SELECT identifier, subject FROM subject_identifier WHERE identifier = ANY($1)",
                &[&alias_keys],
            )
            .await
            .map_err(db)?;
        for row in &held {
            let identifier: String = row.try_get(0).map_err(db)?;
            let owner: String = row.try_get(1).map_err(db)?;
            if owner != *key && !rewritten.contains(owner.as_str()) {
                let owner =
                    parse_identifier_key(&owner).ok_or_else(|| bad_row("subject key", &owner))?;
                let identifier = parse_identifier_key(&identifier)
                    .ok_or_else(|| bad_row("identifier", &identifier))?;
                return Err(failed(Conflict {
                    record: RecordKey::Subject(s.id.clone()),
                    reason: ConflictReason::IdentifierTaken { identifier, owner },
                }));
            }
        }
    }
    for (w, key) in set.subjects.iter().zip(&keys) {
        let s = &w.subject;
        let body = serde_json::to_string(s)
            .map_err(|e| Error::invalid("subject", format!("cannot be encoded: {e}")))?;
        let old = subject_version(tx, key).await?;
        w.precondition
            .check(&RecordKey::Subject(s.id.clone()), old.as_ref().map(|o| o.1))?;
        let version = match &old {
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
        let aliases: Vec<String> = std::iter::once(&s.id)
            .chain(&s.other_ids)
            .map(identifier_key)
            .collect();
        let v = i64::try_from(version).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO subject (key, body, version) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET body = excluded.body, version = excluded.version",
            &[key, &body, &v],
        )
        .await
        .map_err(db)?;
        tx.execute("DELETE FROM subject_identifier WHERE subject = $1", &[key])
            .await
            .map_err(db)?;
        tx.execute(
            "INSERT INTO subject_identifier (identifier, subject)
             SELECT a, $2 FROM UNNEST($1::text[]) AS a
             ON CONFLICT (identifier) DO UPDATE SET subject = excluded.subject",
            &[&aliases, key],
        )
        .await
        .map_err(db)?;
        applied.subject_versions.push(version);
    }
    Ok(())
}

async fn put_measurements(
    tx: &Tx<'_>,
    writes: &[MeasurementWrite],
    applied: &mut Applied,
) -> Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut versions: HashMap<MeasurementId, u64> = HashMap::new();
    // Without preconditions: one bulk upsert.
    let plain: Vec<healthanalyzer_model::Measurement> = writes
        .iter()
        .filter(|w| w.precondition == Precondition::Any)
        .map(|w| w.measurement.clone())
        .collect();
    if !plain.is_empty() {
        let columns = Columns::of(&plain)?;
        let summary = upsert(tx, &columns, &mut versions).await?;
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
        let subject = identifier_key(&m.subject);
        let body = serde_json::to_string(m)
            .map_err(|e| Error::invalid("measurement", format!("cannot be encoded: {e}")))?;
        let (s, ns) = split_nanos(m.effective.instant().as_nanosecond());
        let kind = m.kind.as_str();
        let version = match stored {
            None => {
                tx.execute(
                    "INSERT INTO measurement (subject, id, kind, t_s, t_ns, body, version)
                     VALUES ($1, $2, $3, $4, $5, $6, 1)",
                    &[&subject, &id, &kind, &s, &ns, &body],
                )
                .await
                .map_err(db)?;
                applied.measurements.inserted += 1;
                1
            }
            Some((old_subject, v)) if old_subject == subject => {
                let n = tx
                    .execute(
                        "UPDATE measurement SET kind = $3, t_s = $4, t_ns = $5, body = $6, version = $7
                         WHERE subject = $1 AND id = $2 AND body IS DISTINCT FROM $6",
                        &[&subject, &id, &kind, &s, &ns, &body, &((v + 1) as i64)],
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
                    "DELETE FROM measurement WHERE subject = $1 AND id = $2",
                    &[&old_subject, &id],
                )
                .await
                .map_err(db)?;
                tx.execute(
                    "INSERT INTO measurement (subject, id, kind, t_s, t_ns, body, version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&subject, &id, &kind, &s, &ns, &body, &((v + 1) as i64)],
                )
                .await
                .map_err(db)?;
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

/// Upserts a batch in `tx`: rows whose subject changed are moved (keeping their version count),
/// then one UNNEST upsert; the version of every id goes into `versions`.
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
    // An id stored under another subject (a corrected subject) is moved, counted as an update.
    let move_stmt = tx
        .prepare_cached(
            // `id = ANY` probes the id index (new ids find nothing); the pair test runs only
            // on ids that exist.
            "DELETE FROM measurement
             WHERE id = ANY($1::uuid[])
               AND (subject, id) NOT IN (SELECT * FROM UNNEST($2::text[], $1::uuid[]))
             RETURNING id, version",
        )
        .await
        .map_err(db)?;
    let upsert_stmt = tx
        .prepare_cached(
            "INSERT INTO measurement AS m (subject, id, kind, t_s, t_ns, body, version)
             SELECT s, i, k, ts, tn, b, 1
             FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::int8[], $5::int4[], $6::text[]) AS u(s, i, k, ts, tn, b)
             ON CONFLICT (subject, id) DO UPDATE
               SET kind = excluded.kind, t_s = excluded.t_s, t_ns = excluded.t_ns, body = excluded.body,
                   version = m.version + 1
               WHERE m.body IS DISTINCT FROM excluded.body
             RETURNING id, version, (xmax = 0) AS inserted",
        )
        .await
        .map_err(db)?;
    let moved_rows = tx
        .query(&move_stmt, &[&c.id, &c.subject])
        .await
        .map_err(db)?;
    let mut moved: Vec<(Uuid, i64)> = Vec::with_capacity(moved_rows.len());
    for r in &moved_rows {
        moved.push((r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?));
    }
    let rows = tx
        .query(
            &upsert_stmt,
            &[&c.subject, &c.id, &c.kind, &c.t_s, &c.t_ns, &c.body],
        )
        .await
        .map_err(db)?;
    for row in &rows {
        let id: Uuid = row.try_get(0).map_err(db)?;
        let v: i64 = row.try_get(1).map_err(db)?;
        versions.insert(MeasurementId::from_uuid(id), v.max(1) as u64);
        if row.try_get::<_, bool>(2).map_err(db)? {
            summary.inserted += 1;
        } else {
            summary.updated += 1;
        }
    }
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
    summary.unchanged += c.id.len() as u64 - rows.len() as u64;
    // Unchanged rows returned nothing: read their versions.
    let missing: Vec<Uuid> =
        c.id.iter()
            .filter(|id| !versions.contains_key(&MeasurementId::from_uuid(**id)))
            .copied()
            .collect();
    if !missing.is_empty() {
        for r in tx
            .query(
                "SELECT id, version FROM measurement WHERE id = ANY($1)",
                &[&missing],
            )
            .await
            .map_err(db)?
        {
            let id: Uuid = r.try_get(0).map_err(db)?;
            let v: i64 = r.try_get(1).map_err(db)?;
            versions.insert(MeasurementId::from_uuid(id), v.max(1) as u64);
        }
    }
    Ok(summary)
}
