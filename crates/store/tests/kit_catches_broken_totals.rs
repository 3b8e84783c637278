//! The conformance kit must fail a store whose search totals break the contract of
//! `query_with_total`: a deliberately broken one over a memory store.

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, KindId, Measurement, MeasurementId};
use healthanalyzer_store::{
    Checkpoint, Filter, MeasurementStore, MemoryStore, Page, Query, Result, WriteSummary, testkit,
};

/// A memory store whose `query_with_total`, when `broken`, counts on a later page only what is
/// left from that page on (a total that shrinks as a client pages); else the whole filter.
#[derive(Debug)]
struct Remainder {
    inner: MemoryStore,
    broken: bool,
}

#[async_trait]
impl MeasurementStore for Remainder {
    async fn write(&self, batch: &[Measurement], cp: Option<&Checkpoint>) -> Result<WriteSummary> {
        self.inner.write(batch, cp).await
    }
    async fn get(&self, id: &MeasurementId) -> Result<Option<Measurement>> {
        self.inner.get(id).await
    }
    async fn query(&self, q: &Query) -> Result<Page> {
        self.inner.query(q).await
    }
    async fn count(&self, f: &Filter) -> Result<u64> {
        self.inner.count(f).await
    }
    async fn latest(&self, s: &Identifier, k: &[KindId], n: usize) -> Result<Vec<Measurement>> {
        self.inner.latest(s, k, n).await
    }
    async fn measured_subjects(&self) -> Result<Vec<Identifier>> {
        self.inner.measured_subjects().await
    }
    async fn delete(&self, ids: &[MeasurementId]) -> Result<u64> {
        self.inner.delete(ids).await
    }
    async fn checkpoint(&self, s: &str) -> Result<Option<Checkpoint>> {
        self.inner.checkpoint(s).await
    }
    async fn query_with_total(&self, q: &Query) -> Result<(Page, u64)> {
        let page = self.inner.query(q).await?;
        if !self.broken || q.page.is_none() {
            return Ok((page, self.inner.count(&q.filter).await?));
        }
        let mut rest = q.clone();
        rest.limit = usize::MAX;
        let left = self.inner.query(&rest).await?.items.len() as u64;
        Ok((page, left))
    }
}

async fn passes(broken: bool) -> bool {
    let store = std::sync::Arc::new(Remainder {
        inner: MemoryStore::new(),
        broken,
    });
    let handle = tokio::spawn(async move { testkit::query_filters_and_bounds(&*store).await });
    handle.await.is_ok()
}

#[tokio::test]
async fn a_total_of_the_remainder_fails_the_filter_check() {
    assert!(!passes(true).await, "the kit passed a shrinking total");
}

#[tokio::test]
async fn the_default_total_passes() {
    assert!(passes(false).await);
}
