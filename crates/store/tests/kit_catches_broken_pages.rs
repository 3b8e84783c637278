//! The conformance kit must fail stores whose pages break the contract: deliberately broken
//! subject listings and search totals over a memory store.

use std::sync::Arc;

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, KindId, Measurement, MeasurementId, Subject};
use healthanalyzer_store::backend::identifier_key;
use healthanalyzer_store::{
    Applied, Checkpoint, Filter, MeasurementStore, MemoryStore, Page, Query, Result, SubjectStore,
    Versioned, WriteSet, WriteSetStore, WriteSummary, testkit,
};

/// What to break.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Pages in the order of identifiers (system, then value) rather than of their keys.
    IdentifierOrder,
    /// Starts a page at `after` itself: the last subject of a page comes again.
    Inclusive,
    /// Lists measured subjects held as another identifier of a subject record.
    OtherIdsListed,
    /// `query_with_total` on a later page counts only what is left from that page on (a total
    /// that shrinks as a client pages).
    RemainderTotal,
}

#[derive(Debug)]
struct Broken {
    inner: MemoryStore,
    fault: Fault,
}

#[async_trait]
impl MeasurementStore for Broken {
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
        if self.fault != Fault::RemainderTotal || q.page.is_none() {
            return Ok((page, self.inner.count(&q.filter).await?));
        }
        let mut rest = q.clone();
        rest.limit = usize::MAX;
        let left = self.inner.query(&rest).await?.items.len() as u64;
        Ok((page, left))
    }
}

#[async_trait]
impl SubjectStore for Broken {
    async fn put_subjects(&self, subjects: &[Subject]) -> Result<WriteSummary> {
        self.inner.put_subjects(subjects).await
    }
    async fn subject(&self, id: &Identifier) -> Result<Option<Subject>> {
        self.inner.subject(id).await
    }
    async fn list_subjects(&self) -> Result<Vec<Subject>> {
        self.inner.list_subjects().await
    }
    async fn subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Subject>> {
        let mut all = self.inner.list_subjects().await?;
        match self.fault {
            Fault::IdentifierOrder => {
                all.sort_by(|a, b| a.id.cmp(&b.id));
                let start = after.map_or(0, |a| all.partition_point(|s| s.id <= *a));
                Ok(all.into_iter().skip(start).take(limit).collect())
            }
            Fault::Inclusive => {
                let after = after.map(identifier_key);
                Ok(all
                    .into_iter()
                    .filter(|s| after.as_ref().is_none_or(|a| identifier_key(&s.id) >= *a))
                    .take(limit)
                    .collect())
            }
            Fault::OtherIdsListed | Fault::RemainderTotal => {
                self.inner.subjects_page(after, limit).await
            }
        }
    }
    async fn delete_subject(&self, id: &Identifier) -> Result<bool> {
        self.inner.delete_subject(id).await
    }
}

#[async_trait]
impl WriteSetStore for Broken {
    async fn apply(&self, set: &WriteSet) -> Result<Applied> {
        self.inner.apply(set).await
    }
    async fn get_versioned(&self, id: &MeasurementId) -> Result<Option<Versioned<Measurement>>> {
        self.inner.get_versioned(id).await
    }
    async fn subject_versioned(&self, id: &Identifier) -> Result<Option<Versioned<Subject>>> {
        self.inner.subject_versioned(id).await
    }
    async fn document(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<Versioned<healthanalyzer_store::Document>>> {
        self.inner.document(resource_type, id).await
    }
    async fn find_documents(
        &self,
        query: &healthanalyzer_store::DocumentQuery,
    ) -> Result<Vec<Versioned<healthanalyzer_store::Document>>> {
        self.inner.find_documents(query).await
    }
    async fn unrecorded_subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Identifier>> {
        if self.fault != Fault::OtherIdsListed {
            return self.inner.unrecorded_subjects_page(after, limit).await;
        }
        // Leaves out the primary identifiers of records only.
        let after = after.map(identifier_key);
        let mut out = Vec::new();
        let mut measured = self.inner.measured_subjects().await?;
        measured.sort_by_cached_key(identifier_key);
        for id in measured {
            if after.as_ref().is_some_and(|a| identifier_key(&id) <= *a) {
                continue;
            }
            let primary = self.inner.subject(&id).await?.is_some_and(|s| s.id == id);
            if !primary && out.len() < limit {
                out.push(id);
            }
        }
        Ok(out)
    }
}

fn broken(fault: Fault) -> Arc<Broken> {
    Arc::new(Broken {
        inner: MemoryStore::new(),
        fault,
    })
}

/// True when the check panics on `store`.
async fn fails<F, Fut>(store: Arc<Broken>, check: F) -> bool
where
    F: FnOnce(Arc<Broken>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(check(store))
        .await
        .is_err_and(|e| e.is_panic())
}

#[tokio::test]
async fn pages_in_identifier_order_fail_the_paging_check() {
    let store = broken(Fault::IdentifierOrder);
    assert!(
        fails(store.clone(), |s| async move {
            testkit::subjects_page_through_the_list(&*s).await
        })
        .await,
        "the kit accepted pages in identifier order"
    );
    // The listing it does not break passes.
    testkit::unrecorded_subjects_are_paged(&*store).await;
}

#[tokio::test]
async fn pages_that_repeat_their_start_fail_the_paging_check() {
    let store = broken(Fault::Inclusive);
    assert!(
        fails(store, |s| async move {
            testkit::subjects_page_through_the_list(&*s).await
        })
        .await,
        "the kit accepted pages that repeat the subject they continue after"
    );
}

#[tokio::test]
async fn listing_other_identifiers_of_records_fails_the_unrecorded_check() {
    let store = broken(Fault::OtherIdsListed);
    assert!(
        fails(store.clone(), |s| async move {
            testkit::unrecorded_subjects_are_paged(&*s).await
        })
        .await,
        "the kit accepted a record's other identifier among the unrecorded subjects"
    );
    testkit::subjects_page_through_the_list(&*store).await;
}

#[tokio::test]
async fn a_total_of_the_remainder_fails_the_filter_check() {
    assert!(
        fails(broken(Fault::RemainderTotal), |s| async move {
            testkit::query_filters_and_bounds(&*s).await
        })
        .await,
        "the kit accepted a total that shrinks as a client pages"
    );
    // A store whose totals are right (only its listings are broken) passes it.
    testkit::query_filters_and_bounds(&*broken(Fault::Inclusive)).await;
}

#[tokio::test]
async fn the_default_listings_pass() {
    /// Implements only what the traits require: the listings are the defaults.
    #[derive(Debug, Default)]
    struct Plain(MemoryStore);
    #[async_trait]
    impl MeasurementStore for Plain {
        async fn write(&self, b: &[Measurement], cp: Option<&Checkpoint>) -> Result<WriteSummary> {
            self.0.write(b, cp).await
        }
        async fn get(&self, id: &MeasurementId) -> Result<Option<Measurement>> {
            self.0.get(id).await
        }
        async fn query(&self, q: &Query) -> Result<Page> {
            self.0.query(q).await
        }
        async fn count(&self, f: &Filter) -> Result<u64> {
            self.0.count(f).await
        }
        async fn latest(&self, s: &Identifier, k: &[KindId], n: usize) -> Result<Vec<Measurement>> {
            self.0.latest(s, k, n).await
        }
        async fn measured_subjects(&self) -> Result<Vec<Identifier>> {
            self.0.measured_subjects().await
        }
        async fn delete(&self, ids: &[MeasurementId]) -> Result<u64> {
            self.0.delete(ids).await
        }
        async fn checkpoint(&self, s: &str) -> Result<Option<Checkpoint>> {
            self.0.checkpoint(s).await
        }
    }
    #[async_trait]
    impl SubjectStore for Plain {
        async fn put_subjects(&self, s: &[Subject]) -> Result<WriteSummary> {
            self.0.put_subjects(s).await
        }
        async fn subject(&self, id: &Identifier) -> Result<Option<Subject>> {
            self.0.subject(id).await
        }
        async fn list_subjects(&self) -> Result<Vec<Subject>> {
            self.0.list_subjects().await
        }
        async fn delete_subject(&self, id: &Identifier) -> Result<bool> {
            self.0.delete_subject(id).await
        }
    }
    #[async_trait]
    impl WriteSetStore for Plain {
        async fn apply(&self, set: &WriteSet) -> Result<Applied> {
            self.0.apply(set).await
        }
        async fn get_versioned(
            &self,
            id: &MeasurementId,
        ) -> Result<Option<Versioned<Measurement>>> {
            self.0.get_versioned(id).await
        }
        async fn subject_versioned(&self, id: &Identifier) -> Result<Option<Versioned<Subject>>> {
            self.0.subject_versioned(id).await
        }
        async fn document(
            &self,
            resource_type: &str,
            id: &str,
        ) -> Result<Option<Versioned<healthanalyzer_store::Document>>> {
            self.0.document(resource_type, id).await
        }
        async fn find_documents(
            &self,
            query: &healthanalyzer_store::DocumentQuery,
        ) -> Result<Vec<Versioned<healthanalyzer_store::Document>>> {
            self.0.find_documents(query).await
        }
    }
    let store = Plain::default();
    testkit::subjects_page_through_the_list(&store).await;
    testkit::unrecorded_subjects_are_paged(&store).await;
}
