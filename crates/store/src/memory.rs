//! An in-memory store: for tests, demos and as the reference implementation of the contract.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::RwLock;

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, KindId, Measurement, MeasurementId, Subject};

use crate::error::{Error, Result};
use crate::query::{Filter, Order, Page, PageToken, Query, SortKey};
use crate::store::{Checkpoint, MeasurementStore, WriteSummary, check_batch};
use crate::subject::{SubjectStore, check_subjects};

#[derive(Debug, Default)]
struct State {
    rows: HashMap<MeasurementId, Measurement>,
    order: BTreeMap<SortKey, MeasurementId>,
    checkpoints: HashMap<String, Checkpoint>,
    subjects: HashMap<Identifier, Subject>,
    /// Every identifier of a stored subject -> its primary identifier.
    aliases: HashMap<Identifier, Identifier>,
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
impl MeasurementStore for MemoryStore {
    async fn write(
        &self,
        batch: &[Measurement],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteSummary> {
        check_batch(batch)?;
        let mut st = self.write_lock()?;
        let mut summary = WriteSummary::default();
        for m in batch {
            match st.rows.insert(m.id, m.clone()) {
                None => summary.inserted += 1,
                // `==` ignores decimal scale (107.50 == 107.5); the SQL stores compare the
                // stored text, so compare the full text form too, to count alike.
                Some(old) if old == *m && format!("{old:?}") == format!("{m:?}") => {
                    summary.unchanged += 1
                }
                Some(old) => {
                    summary.updated += 1;
                    st.order.remove(&SortKey::of(&old));
                }
            }
            st.order.insert(SortKey::of(m), m.id);
        }
        if let Some(cp) = checkpoint {
            st.checkpoints.insert(cp.source_id.clone(), cp.clone());
        }
        Ok(summary)
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
        }
        let next = if more {
            items
                .last()
                .map(|m| PageToken::after(query.order, SortKey::of(m)))
        } else {
            None
        };
        Ok(Page { items, next })
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

    async fn subjects(&self) -> Result<Vec<Identifier>> {
        let st = self.read()?;
        let mut subjects: Vec<Identifier> = st.rows.values().map(|m| m.subject.clone()).collect();
        subjects.sort();
        subjects.dedup();
        Ok(subjects)
    }

    async fn delete(&self, ids: &[MeasurementId]) -> Result<u64> {
        let mut st = self.write_lock()?;
        let mut n = 0;
        for id in ids {
            if let Some(old) = st.rows.remove(id) {
                st.order.remove(&SortKey::of(&old));
                n += 1;
            }
        }
        Ok(n)
    }

    async fn checkpoint(&self, source_id: &str) -> Result<Option<Checkpoint>> {
        Ok(self.read()?.checkpoints.get(source_id).cloned())
    }
}

#[async_trait]
impl SubjectStore for MemoryStore {
    async fn put_subjects(&self, subjects: &[Subject]) -> Result<WriteSummary> {
        check_subjects(subjects)?;
        let mut st = self.write_lock()?;
        let rewritten: std::collections::HashSet<&Identifier> =
            subjects.iter().map(|s| &s.id).collect();
        for (i, s) in subjects.iter().enumerate() {
            for alias in std::iter::once(&s.id).chain(&s.other_ids) {
                if let Some(owner) = st.aliases.get(alias)
                    && *owner != s.id
                    && !rewritten.contains(owner)
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
        let mut summary = WriteSummary::default();
        for s in subjects {
            match st.subjects.insert(s.id.clone(), s.clone()) {
                None => summary.inserted += 1,
                Some(old) if old == *s => summary.unchanged += 1,
                Some(old) => {
                    summary.updated += 1;
                    release_aliases(&mut st.aliases, &old);
                }
            }
            for alias in std::iter::once(&s.id).chain(&s.other_ids) {
                st.aliases.insert(alias.clone(), s.id.clone());
            }
        }
        Ok(summary)
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
        all.sort_by_cached_key(|s| crate::subject::identifier_key(&s.id));
        Ok(all)
    }

    async fn delete_subject(&self, id: &Identifier) -> Result<bool> {
        let mut st = self.write_lock()?;
        let Some(old) = st.subjects.remove(id) else {
            return Ok(false);
        };
        release_aliases(&mut st.aliases, &old);
        Ok(true)
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
