//! The storage trait and its extension.

use std::fmt::Debug;

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, KindId, Measurement, MeasurementId};

use crate::error::{Error, Result};
use crate::query::{Filter, Order, Page, Query};

/// A source's saved position: the cursor to resume from after the batches stored so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The source's id.
    pub source_id: String,
    /// The opaque cursor the source handed out (text or JSON; the store does not interpret it).
    pub cursor: String,
}

impl Checkpoint {
    /// A checkpoint.
    pub fn new(source_id: impl Into<String>, cursor: impl Into<String>) -> Self {
        Self {
            source_id: source_id.into(),
            cursor: cursor.into(),
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteSummary {
    /// New ids.
    pub inserted: u64,
    /// Existing ids whose content changed (a correction).
    pub updated: u64,
    /// Existing ids stored with identical content (a replay).
    pub unchanged: u64,
}

/// Stores measurements and sync checkpoints.
///
/// # Contract
/// - **Idempotent upsert by id.** Writing a measurement whose id is stored replaces it; writing
///   the same content again changes nothing. Ids are derived from provenance (model ADR 0002).
/// - **Atomic batch + checkpoint.** [`write`](Self::write) stores the whole batch *and* the
///   checkpoint, or nothing: a batch with one rejected measurement (an id that does not match its
///   provenance) fails with [`Error::InvalidInput`] and leaves neither rows nor checkpoint. Within
///   one batch, a repeated id keeps the last occurrence.
/// - **Exactness.** A measurement reads back equal (`==`) to what was written: decimals with their
///   scale, times with their offset and precision, the original payload.
/// - **Keyset paging.** [`query`](Self::query) sorts by effective instant then id, and a page
///   token continues strictly after the last key it returned, so rows inserted while a client
///   pages are never repeated and pre-existing rows never skipped.
/// - **Cancel-safety.** Dropping a `write` future either commits all of it or none of it.
/// - **No unbounded blocking.** Implementations on blocking drivers move work off the async
///   executor and bound waits (busy timeouts); they never hold a lock across an `.await` of the
///   caller.
/// - **Retries are the caller's.** A store does not retry by itself; it reports
///   [`Error::Unavailable`] with `retryable` and the caller (the sync engine) backs off.
///
/// Run `testkit::run_all` (feature `testkit`) against your
/// implementation to check all of this.
#[async_trait]
pub trait MeasurementStore: Debug + Send + Sync + 'static {
    /// Upserts `batch` and, when given, saves `checkpoint`, atomically.
    async fn write(
        &self,
        batch: &[Measurement],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteSummary>;

    /// The measurement with that id.
    async fn get(&self, id: &MeasurementId) -> Result<Option<Measurement>>;

    /// One page of a query.
    async fn query(&self, query: &Query) -> Result<Page>;

    /// How many measurements pass `filter`.
    async fn count(&self, filter: &Filter) -> Result<u64>;

    /// One page of a query and how many measurements pass its filter (a search with a
    /// total): what [`count`](Self::count) and then [`query`](Self::query) answer. The default
    /// calls the two; a backend that can answer both in one trip to its database (one thread
    /// hand-off, one connection) should.
    async fn query_with_total(&self, query: &Query) -> Result<(Page, u64)> {
        let total = self.count(&query.filter).await?;
        Ok((self.query(query).await?, total))
    }

    /// The latest `n` measurements of each kind for a subject (FHIR `$lastn`), newest first
    /// within a kind; kinds in the order given, or by kind id when `kinds` is empty.
    async fn latest(
        &self,
        subject: &Identifier,
        kinds: &[KindId],
        n: usize,
    ) -> Result<Vec<Measurement>>;

    /// The identifiers measurements are stored under (every subject with at least one
    /// measurement, sorted), whether or not a subject record holds them; the records
    /// themselves (demographics) are [`SubjectStore::list_subjects`](crate::SubjectStore::list_subjects).
    async fn measured_subjects(&self) -> Result<Vec<Identifier>>;

    /// Every subject with at least one measurement, sorted, with how many it has. The default
    /// asks [`count`](Self::count) once per subject; a backend that can count in one query
    /// should.
    async fn subject_counts(&self) -> Result<Vec<(Identifier, u64)>> {
        let mut out = Vec::new();
        for id in self.measured_subjects().await? {
            let n = self
                .count(&Filter {
                    subject: Some(id.clone()),
                    ..Filter::default()
                })
                .await?;
            out.push((id, n));
        }
        Ok(out)
    }

    /// Deletes these ids; returns how many existed.
    async fn delete(&self, ids: &[MeasurementId]) -> Result<u64>;

    /// The saved checkpoint of a source.
    async fn checkpoint(&self, source_id: &str) -> Result<Option<Checkpoint>>;

    /// How many measurements a writer should put in one [`write`](Self::write) for bulk work
    /// (a first sync, an import). Any size is correct; this one is fast. The default is 1,000.
    fn preferred_batch_size(&self) -> usize {
        1_000
    }
}

/// Conveniences over any [`MeasurementStore`].
#[async_trait]
pub trait MeasurementStoreExt: MeasurementStore {
    /// Every measurement passing `filter`, following pages of `page_size`.
    async fn query_all(
        &self,
        filter: &Filter,
        order: Order,
        page_size: usize,
    ) -> Result<Vec<Measurement>> {
        let mut query = Query::new(filter.clone(), page_size).order(order);
        let mut out = Vec::new();
        loop {
            let page = self.query(&query).await?;
            out.extend(page.items);
            match page.next {
                Some(next) => query.page = Some(next),
                None => return Ok(out),
            }
        }
    }
}

impl<T: MeasurementStore + ?Sized> MeasurementStoreExt for T {}

/// Checks the parts of a batch every store rejects: an id that does not match its provenance.
/// Stores call it before writing, or check the same inside their transaction.
pub fn check_batch(batch: &[Measurement]) -> Result<()> {
    for (i, m) in batch.iter().enumerate() {
        if m.id != m.provenance.measurement_id() {
            return Err(Error::invalid(
                format!("batch[{i}].id"),
                "does not match the id derived from provenance (source_id, record_id); nothing was written",
            ));
        }
    }
    Ok(())
}
