//! The conformance kit must fail stores that break the contract: two deliberately broken stores.

use std::sync::Arc;

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, KindId, Measurement, MeasurementId, Value};
use healthanalyzer_store::backend::check_batch;
use healthanalyzer_store::{
    Checkpoint, Filter, MeasurementStore, MemoryStore, Page, Query, Result, WriteSummary, testkit,
};

/// What to break.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Writes the good rows of a batch before rejecting the bad one.
    NotAtomic,
    /// Drops trailing zeros of decimals (107.50 -> 107.5), as an f64 column would.
    LosesScale,
}

#[derive(Debug)]
struct Broken {
    inner: MemoryStore,
    fault: Fault,
}

#[async_trait]
impl MeasurementStore for Broken {
    async fn write(&self, batch: &[Measurement], cp: Option<&Checkpoint>) -> Result<WriteSummary> {
        match self.fault {
            Fault::NotAtomic => {
                let good: Vec<_> = batch
                    .iter()
                    .filter(|m| m.id == m.provenance.measurement_id())
                    .cloned()
                    .collect();
                self.inner.write(&good, None).await?;
                check_batch(batch)?;
                self.inner.write(&[], cp).await
            }
            Fault::LosesScale => {
                let lossy: Vec<_> = batch
                    .iter()
                    .cloned()
                    .map(|mut m| {
                        if let Value::Quantity(o) = &mut m.value {
                            o.quantity.value = o.quantity.value.normalize();
                        }
                        m
                    })
                    .collect();
                self.inner.write(&lossy, cp).await
            }
        }
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
}

fn broken(fault: Fault) -> Arc<Broken> {
    Arc::new(Broken {
        inner: MemoryStore::new(),
        fault,
    })
}

#[tokio::test]
async fn a_non_atomic_store_fails_the_atomicity_check() {
    let store = broken(Fault::NotAtomic);
    let s = store.clone();
    let r = tokio::spawn(async move { testkit::batch_and_checkpoint_are_atomic(&*s).await }).await;
    assert!(
        r.is_err_and(|e| e.is_panic()),
        "the kit accepted a non-atomic store"
    );
    // The same store passes the checks it does not break.
    testkit::sort_orders(&*store).await;
}

#[tokio::test]
async fn a_store_losing_decimal_scale_fails_the_exactness_check() {
    let store = broken(Fault::LosesScale);
    let s = store.clone();
    let r =
        tokio::spawn(async move { testkit::reads_back_exactly_what_was_written(&*s).await }).await;
    assert!(
        r.is_err_and(|e| e.is_panic()),
        "the kit accepted a lossy store"
    );
}
