//! An in-memory store: for tests, demos and as the reference implementation of the contract.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::RwLock;

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, KindId, Measurement, MeasurementId, Subject};

use crate::document::{Document, DocumentQuery};
use crate::error::{Error, Result};
use crate::query::{Filter, Order, Page, PageToken, Query, SortKey};
use crate::store::{Checkpoint, MeasurementStore, WriteSummary};
use crate::subject::{SubjectStore, check_subjects, identifier_key};
use crate::writeset::{
    Applied, Conflict, ConflictReason, Precondition, RecordKey, Versioned, WriteSet, WriteSetStore,
};

#[derive(Debug, Default)]
struct State {
    rows: HashMap<MeasurementId, Measurement>,
    order: BTreeMap<SortKey, MeasurementId>,
    measurement_versions: HashMap<MeasurementId, u64>,
    checkpoints: HashMap<String, Checkpoint>,
    subjects: HashMap<Identifier, Subject>,
    subject_versions: HashMap<Identifier, u64>,
    /// Every identifier of a stored subject -> its primary identifier.
    aliases: HashMap<Identifier, Identifier>,
    /// Documents by (resource type, id), with their versions.
    documents: HashMap<DocKey, (Document, u64)>,
}

/// A document's key: (resource type, id).
type DocKey = (String, String);

/// What to put back when a write set fails half-way.
enum Undo {
    Measurement(MeasurementId, Option<Box<(Measurement, u64)>>),
    Subject(Identifier, Option<Box<(Subject, u64)>>),
    Document(DocKey, Option<Box<(Document, u64)>>),
}

impl State {
    /// Replaces (or removes) a measurement; returns what was there.
    fn set_measurement(
        &mut self,
        id: MeasurementId,
        new: Option<(Measurement, u64)>,
    ) -> Option<(Measurement, u64)> {
        let old = self.rows.remove(&id).map(|old| {
            self.order.remove(&SortKey::of(&old));
            let v = self.measurement_versions.remove(&id).unwrap_or(1);
            (old, v)
        });
        if let Some((m, v)) = new {
            self.order.insert(SortKey::of(&m), id);
            self.rows.insert(id, m);
            self.measurement_versions.insert(id, v);
        }
        old
    }

    /// Replaces (or removes) a subject and its identifiers; returns what was there.
    fn set_subject(
        &mut self,
        id: &Identifier,
        new: Option<(Subject, u64)>,
    ) -> Option<(Subject, u64)> {
        let old = self.subjects.remove(id).map(|old| {
            release_aliases(&mut self.aliases, &old);
            let v = self.subject_versions.remove(id).unwrap_or(1);
            (old, v)
        });
        if let Some((s, v)) = new {
            for alias in std::iter::once(&s.id).chain(&s.other_ids) {
                self.aliases.insert(alias.clone(), s.id.clone());
            }
            self.subject_versions.insert(s.id.clone(), v);
            self.subjects.insert(s.id.clone(), s);
        }
        old
    }

    fn undo(&mut self, log: Vec<Undo>) {
        for u in log.into_iter().rev() {
            match u {
                Undo::Measurement(id, old) => {
                    self.set_measurement(id, old.map(|b| *b));
                }
                Undo::Subject(id, old) => {
                    self.set_subject(&id, old.map(|b| *b));
                }
                Undo::Document(key, old) => {
                    match old {
                        Some(b) => self.documents.insert(key, *b),
                        None => self.documents.remove(&key),
                    };
                }
            }
        }
    }

    /// Applies a write set: all of it, or (after undoing what it did) none of it.
    fn apply(&mut self, set: &WriteSet) -> Result<Applied> {
        set.check()?;
        let mut log = Vec::new();
        let out = self.apply_logged(set, &mut log);
        if out.is_err() {
            self.undo(log);
        }
        out
    }

    fn apply_logged(&mut self, set: &WriteSet, log: &mut Vec<Undo>) -> Result<Applied> {
        let conflict = |c: Conflict| Error::PreconditionFailed(Box::new(c));
        let mut applied = Applied::default();
        for d in &set.deletions {
            match &d.record {
                RecordKey::Measurement(id) => {
                    d.precondition
                        .check(&d.record, self.measurement_versions.get(id).copied())?;
                    let old = self.set_measurement(*id, None);
                    applied.deleted += u64::from(old.is_some());
                    log.push(Undo::Measurement(*id, old.map(Box::new)));
                }
                RecordKey::Subject(id) => {
                    d.precondition
                        .check(&d.record, self.subject_versions.get(id).copied())?;
                    let old = self.set_subject(id, None);
                    applied.deleted += u64::from(old.is_some());
                    log.push(Undo::Subject(id.clone(), old.map(Box::new)));
                }
                RecordKey::Document { resource_type, id } => {
                    let key = (resource_type.clone(), id.clone());
                    d.precondition
                        .check(&d.record, self.documents.get(&key).map(|(_, v)| *v))?;
                    let old = self.documents.remove(&key);
                    applied.deleted += u64::from(old.is_some());
                    log.push(Undo::Document(key, old.map(Box::new)));
                }
            }
        }
        // Identifiers are checked for the subjects together: one may give up an identifier that
        // another of the same set takes.
        let rewritten: std::collections::HashSet<&Identifier> =
            set.subjects.iter().map(|w| &w.subject.id).collect();
        for w in &set.subjects {
            let s = &w.subject;
            for alias in std::iter::once(&s.id).chain(&s.other_ids) {
                if let Some(owner) = self.aliases.get(alias)
                    && *owner != s.id
                    && !rewritten.contains(owner)
                {
                    return Err(conflict(Conflict {
                        record: RecordKey::Subject(s.id.clone()),
                        reason: ConflictReason::IdentifierTaken {
                            identifier: alias.clone(),
                            owner: owner.clone(),
                        },
                    }));
                }
            }
        }
        for w in &set.subjects {
            let s = &w.subject;
            let key = RecordKey::Subject(s.id.clone());
            let stored = self.subject_versions.get(&s.id).copied();
            w.precondition.check(&key, stored)?;
            let version = match (stored, self.subjects.get(&s.id)) {
                (Some(v), Some(old)) if old == s => {
                    applied.subjects.unchanged += 1;
                    v
                }
                (Some(v), _) => {
                    applied.subjects.updated += 1;
                    v + 1
                }
                (None, _) => {
                    applied.subjects.inserted += 1;
                    1
                }
            };
            let old = self.set_subject(&s.id, Some((s.clone(), version)));
            log.push(Undo::Subject(s.id.clone(), old.map(Box::new)));
            applied.subject_versions.push(version);
        }
        for w in &set.measurements {
            let m = &w.measurement;
            let key = RecordKey::Measurement(m.id);
            let stored = self.measurement_versions.get(&m.id).copied();
            w.precondition.check(&key, stored)?;
            let version = match (stored, self.rows.get(&m.id)) {
                // `==` ignores decimal scale (107.50 == 107.5); the SQL stores compare the
                // stored text, so compare the full text form too, to count alike.
                (Some(v), Some(old)) if old == m && format!("{old:?}") == format!("{m:?}") => {
                    applied.measurements.unchanged += 1;
                    v
                }
                (Some(v), _) => {
                    applied.measurements.updated += 1;
                    v + 1
                }
                (None, _) => {
                    applied.measurements.inserted += 1;
                    1
                }
            };
            let old = self.set_measurement(m.id, Some((m.clone(), version)));
            log.push(Undo::Measurement(m.id, old.map(Box::new)));
            applied.measurement_versions.push(version);
        }
        for w in &set.documents {
            let doc = &w.document;
            let key = (doc.resource_type.clone(), doc.id.clone());
            let record = RecordKey::document(&doc.resource_type, &doc.id);
            let stored = self.documents.get(&key);
            w.precondition.check(&record, stored.map(|(_, v)| *v))?;
            let version = match stored {
                Some((old, v)) if old == doc => {
                    applied.documents.unchanged += 1;
                    *v
                }
                Some((_, v)) => {
                    applied.documents.updated += 1;
                    v + 1
                }
                None => {
                    applied.documents.inserted += 1;
                    1
                }
            };
            let old = self.documents.insert(key.clone(), (doc.clone(), version));
            log.push(Undo::Document(key, old.map(Box::new)));
            applied.document_versions.push(version);
        }
        if let Some(cp) = &set.checkpoint {
            self.checkpoints.insert(cp.source_id.clone(), cp.clone());
        }
        Ok(applied)
    }
}

/// A [`MeasurementStore`] and [`SubjectStore`] in memory. Every call is atomic under one lock; nothing survives the
/// process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: RwLock<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, State>> {
        self.state.read().map_err(|_| poisoned())
    }

    fn write_lock(&self) -> Result<std::sync::RwLockWriteGuard<'_, State>> {
        self.state.write().map_err(|_| poisoned())
    }
}

fn poisoned() -> Error {
    Error::Unavailable {
        reason: "the in-memory store was poisoned by a panic in another thread".into(),
        retryable: false,
        source: None,
    }
}

#[async_trait]
impl WriteSetStore for MemoryStore {
    async fn apply(&self, set: &WriteSet) -> Result<Applied> {
        self.write_lock()?.apply(set)
    }

    async fn get_versioned(&self, id: &MeasurementId) -> Result<Option<Versioned<Measurement>>> {
        let st = self.read()?;
        Ok(st.rows.get(id).map(|m| Versioned {
            value: m.clone(),
            version: st.measurement_versions.get(id).copied().unwrap_or(1),
        }))
    }

    async fn subject_versioned(&self, id: &Identifier) -> Result<Option<Versioned<Subject>>> {
        let st = self.read()?;
        Ok(st
            .aliases
            .get(id)
            .and_then(|primary| st.subjects.get(primary))
            .map(|s| Versioned {
                value: s.clone(),
                version: st.subject_versions.get(&s.id).copied().unwrap_or(1),
            }))
    }

    async fn document(&self, resource_type: &str, id: &str) -> Result<Option<Versioned<Document>>> {
        let st = self.read()?;
        Ok(st
            .documents
            .get(&(resource_type.to_string(), id.to_string()))
            .map(|(doc, version)| Versioned {
                value: doc.clone(),
                version: *version,
            }))
    }

    async fn find_documents(&self, query: &DocumentQuery) -> Result<Vec<Versioned<Document>>> {
        let st = self.read()?;
        let mut found: Vec<&(Document, u64)> = st
            .documents
            .values()
            .filter(|(doc, _)| query.matches(doc))
            .collect();
        found.sort_by(|a, b| DocumentQuery::sort_key(&a.0).cmp(&DocumentQuery::sort_key(&b.0)));
        Ok(found
            .into_iter()
            .take(query.limit)
            .map(|(doc, version)| Versioned {
                value: doc.clone(),
                version: *version,
            })
            .collect())
    }

    async fn unrecorded_subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Identifier>> {
        let st = self.read()?;
        let unrecorded: std::collections::HashSet<&Identifier> = st
            .rows
            .values()
            .map(|m| &m.subject)
            .filter(|id| !st.aliases.contains_key(*id))
            .collect();
        let page = first_after(
            unrecorded.into_iter().map(|id| (identifier_key(id), id)),
            after,
            limit,
        );
        Ok(page.into_iter().cloned().collect())
    }
}

/// The `limit` items with the smallest keys after the key of `after`, in key order.
fn first_after<T>(
    items: impl Iterator<Item = (String, T)>,
    after: Option<&Identifier>,
    limit: usize,
) -> Vec<T> {
    let after = after.map(identifier_key);
    let mut page: Vec<(String, T)> = items
        .filter(|(key, _)| after.as_ref().is_none_or(|a| key > a))
        .collect();
    if page.len() > limit {
        page.select_nth_unstable_by(limit, |a, b| a.0.cmp(&b.0));
        page.truncate(limit);
    }
    page.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    page.into_iter().map(|(_, item)| item).collect()
}

#[async_trait]
impl MeasurementStore for MemoryStore {
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
        Ok(self.read()?.rows.get(id).cloned())
    }

    async fn query(&self, query: &Query) -> Result<Page> {
        let start = query.start()?;
        let st = self.read()?;
        let lo = |b: Bound<healthanalyzer_model::jiff::Timestamp>| match b {
            Bound::Included(t) | Bound::Excluded(t) => SortKey {
                nanos: t.as_nanosecond(),
                id: 0,
            },
            Bound::Unbounded => SortKey {
                nanos: i128::MIN,
                id: 0,
            },
        };
        let hi = |b: Bound<healthanalyzer_model::jiff::Timestamp>| match b {
            Bound::Included(t) | Bound::Excluded(t) => SortKey {
                nanos: t.as_nanosecond(),
                id: u128::MAX,
            },
            Bound::Unbounded => SortKey {
                nanos: i128::MAX,
                id: u128::MAX,
            },
        };
        let (mut from, mut to) = (lo(query.filter.from), hi(query.filter.to));
        match (query.order, start) {
            (Order::Ascending, Some(k)) => from = from.max(k),
            (Order::Descending, Some(k)) => to = to.min(k),
            _ => {}
        }
        if from > to {
            return Ok(Page::default());
        }
        let range = st.order.range(from..=to);
        let keys: Box<dyn Iterator<Item = (&SortKey, &MeasurementId)>> = match query.order {
            Order::Ascending => Box::new(range),
            Order::Descending => Box::new(range.rev()),
        };
        let mut items = Vec::with_capacity(query.limit.min(1024));
        let mut versions = Vec::with_capacity(query.limit.min(1024));
        let mut more = false;
        for (key, id) in keys {
            if Some(*key) == start {
                continue;
            }
            let Some(m) = st.rows.get(id) else {
                continue;
            };
            if !query.filter.matches(m) {
                continue;
            }
            if items.len() == query.limit {
                more = true;
                break;
            }
            items.push(m.clone());
            versions.push(st.measurement_versions.get(id).copied().unwrap_or(1));
        }
        let next = if more {
            items
                .last()
                .map(|m| PageToken::after(query.order, SortKey::of(m)))
        } else {
            None
        };
        Ok(Page {
            items,
            next,
            versions,
        })
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        let st = self.read()?;
        Ok(st.rows.values().filter(|m| filter.matches(m)).count() as u64)
    }

    async fn latest(
        &self,
        subject: &Identifier,
        kinds: &[KindId],
        n: usize,
    ) -> Result<Vec<Measurement>> {
        let st = self.read()?;
        let mut mine: Vec<&Measurement> =
            st.rows.values().filter(|m| m.subject == *subject).collect();
        mine.sort_by_key(|m| std::cmp::Reverse(SortKey::of(m)));
        let mut kinds: Vec<KindId> = kinds.to_vec();
        if kinds.is_empty() {
            kinds = mine.iter().map(|m| m.kind.clone()).collect();
            kinds.sort();
            kinds.dedup();
        }
        let mut out = Vec::new();
        for kind in &kinds {
            out.extend(
                mine.iter()
                    .filter(|m| m.kind == *kind)
                    .take(n)
                    .map(|m| (*m).clone()),
            );
        }
        Ok(out)
    }

    async fn measured_subjects(&self) -> Result<Vec<Identifier>> {
        let st = self.read()?;
        let mut subjects: Vec<Identifier> = st.rows.values().map(|m| m.subject.clone()).collect();
        subjects.sort();
        subjects.dedup();
        Ok(subjects)
    }

    async fn delete(&self, ids: &[MeasurementId]) -> Result<u64> {
        let set = WriteSet::delete_measurements(ids);
        Ok(self.apply(&set).await?.deleted)
    }

    async fn checkpoint(&self, source_id: &str) -> Result<Option<Checkpoint>> {
        Ok(self.read()?.checkpoints.get(source_id).cloned())
    }
}

#[async_trait]
impl SubjectStore for MemoryStore {
    async fn put_subjects(&self, subjects: &[Subject]) -> Result<WriteSummary> {
        check_subjects(subjects)?;
        Ok(self.apply(&WriteSet::subjects(subjects)).await?.subjects)
    }

    async fn subject(&self, id: &Identifier) -> Result<Option<Subject>> {
        let st = self.read()?;
        Ok(st
            .aliases
            .get(id)
            .and_then(|primary| st.subjects.get(primary))
            .cloned())
    }

    async fn list_subjects(&self) -> Result<Vec<Subject>> {
        let st = self.read()?;
        let mut all: Vec<Subject> = st.subjects.values().cloned().collect();
        all.sort_by_cached_key(|s| identifier_key(&s.id));
        Ok(all)
    }

    async fn subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Subject>> {
        let st = self.read()?;
        let page = first_after(
            st.subjects.values().map(|s| (identifier_key(&s.id), s)),
            after,
            limit,
        );
        Ok(page.into_iter().cloned().collect())
    }

    async fn delete_subject(&self, id: &Identifier) -> Result<bool> {
        let set = WriteSet::new().delete_subject(id.clone(), Precondition::Any);
        Ok(self.apply(&set).await?.deleted > 0)
    }
}

/// Removes the identifiers of `old` that still point at it (an earlier subject of the same batch
/// may have taken one over).
fn release_aliases(aliases: &mut HashMap<Identifier, Identifier>, old: &Subject) {
    for alias in std::iter::once(&old.id).chain(&old.other_ids) {
        if aliases.get(alias) == Some(&old.id) {
            aliases.remove(alias);
        }
    }
}
