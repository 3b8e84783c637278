//! The write-set checks of the conformance kit must fail stores that break that contract: a
//! store that writes a set record by record, and one that checks preconditions with a read
//! before it writes (what the server did with a process-wide lock, which another process does
//! not share).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, KindId, Measurement, MeasurementId, Subject};
use healthanalyzer_store::{
    Applied, Checkpoint, Document, DocumentQuery, Filter, MeasurementStore, MemoryStore, Page,
    Precondition, Query, RecordKey, Result, SubjectStore, Versioned, WriteSet, WriteSetStore,
    WriteSummary, testkit,
};

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Applies each record as its own write: what came before a failed precondition stays.
    RecordByRecord,
    /// Reads the stored versions, yields, then writes unconditionally.
    CheckThenWrite,
    /// A naive group commit: sets waiting together are merged into one, so one set's conflict
    /// fails all of them.
    SharedFate,
}

#[derive(Debug, Default)]
struct Group {
    next: u64,
    waiting: Vec<(u64, WriteSet)>,
    outcomes:
        std::collections::HashMap<u64, std::result::Result<(), healthanalyzer_store::Conflict>>,
}

#[derive(Debug)]
struct Broken {
    inner: MemoryStore,
    fault: Fault,
    group: std::sync::Mutex<Group>,
}

use testkit::yield_now;

#[async_trait]
impl WriteSetStore for Broken {
    async fn apply(&self, set: &WriteSet) -> Result<Applied> {
        match self.fault {
            Fault::RecordByRecord => {
                let mut applied = Applied::default();
                for d in &set.deletions {
                    let one = WriteSet {
                        deletions: vec![d.clone()],
                        ..WriteSet::default()
                    };
                    applied.deleted += self.inner.apply(&one).await?.deleted;
                    yield_now().await;
                }
                for w in &set.subjects {
                    let one = WriteSet::new().put_subject(w.subject.clone(), w.precondition);
                    let a = self.inner.apply(&one).await?;
                    applied.subject_versions.extend(a.subject_versions);
                    yield_now().await;
                }
                for w in &set.measurements {
                    let one =
                        WriteSet::new().put_measurement(w.measurement.clone(), w.precondition);
                    let a = self.inner.apply(&one).await?;
                    applied.measurement_versions.extend(a.measurement_versions);
                    yield_now().await;
                }
                for w in &set.documents {
                    let one = WriteSet::new().put_document(w.document.clone(), w.precondition);
                    let a = self.inner.apply(&one).await?;
                    applied.document_versions.extend(a.document_versions);
                    yield_now().await;
                }
                if let Some(cp) = &set.checkpoint {
                    self.inner
                        .apply(&WriteSet::new().checkpoint(cp.clone()))
                        .await?;
                }
                Ok(applied)
            }
            Fault::SharedFate => {
                let me = {
                    let mut g = self.group.lock().expect("group lock");
                    g.next += 1;
                    let me = g.next;
                    g.waiting.push((me, set.clone()));
                    me
                };
                yield_now().await;
                loop {
                    let taken = std::mem::take(&mut self.group.lock().expect("group lock").waiting);
                    if let [(id, alone)] = taken.as_slice()
                        && *id == me
                    {
                        return self.inner.apply(alone).await;
                    }
                    if !taken.is_empty() {
                        let mut merged = WriteSet::new();
                        for (_, s) in &taken {
                            merged.deletions.extend(s.deletions.iter().cloned());
                            merged.subjects.extend(s.subjects.iter().cloned());
                            merged.measurements.extend(s.measurements.iter().cloned());
                            merged.documents.extend(s.documents.iter().cloned());
                        }
                        let outcome = match self.inner.apply(&merged).await {
                            Ok(_) => Ok(()),
                            Err(e) => Err(e.conflict().cloned().expect("a conflict")),
                        };
                        let mut g = self.group.lock().expect("group lock");
                        for (id, _) in taken {
                            g.outcomes.insert(id, outcome.clone());
                        }
                    }
                    if let Some(outcome) =
                        self.group.lock().expect("group lock").outcomes.remove(&me)
                    {
                        return outcome.map(|()| Applied::default()).map_err(|c| {
                            healthanalyzer_store::Error::PreconditionFailed(Box::new(c))
                        });
                    }
                    yield_now().await;
                }
            }
            Fault::CheckThenWrite => {
                for w in &set.measurements {
                    let stored = self
                        .inner
                        .get_versioned(&w.measurement.id)
                        .await?
                        .map(|v| v.version);
                    w.precondition
                        .check(&RecordKey::Measurement(w.measurement.id), stored)?;
                }
                for w in &set.subjects {
                    let stored = self
                        .inner
                        .subject_versioned(&w.subject.id)
                        .await?
                        .map(|v| v.version);
                    w.precondition
                        .check(&RecordKey::Subject(w.subject.id.clone()), stored)?;
                }
                for w in &set.documents {
                    let d = &w.document;
                    let stored = self
                        .inner
                        .document(&d.resource_type, &d.id)
                        .await?
                        .map(|v| v.version);
                    w.precondition
                        .check(&RecordKey::document(&d.resource_type, &d.id), stored)?;
                }
                yield_now().await;
                let mut unchecked = set.clone();
                for w in &mut unchecked.measurements {
                    w.precondition = Precondition::Any;
                }
                for w in &mut unchecked.subjects {
                    w.precondition = Precondition::Any;
                }
                for w in &mut unchecked.documents {
                    w.precondition = Precondition::Any;
                }
                self.inner.apply(&unchecked).await
            }
        }
    }
    async fn get_versioned(&self, id: &MeasurementId) -> Result<Option<Versioned<Measurement>>> {
        self.inner.get_versioned(id).await
    }
    async fn subject_versioned(&self, id: &Identifier) -> Result<Option<Versioned<Subject>>> {
        self.inner.subject_versioned(id).await
    }
    async fn document(&self, resource_type: &str, id: &str) -> Result<Option<Versioned<Document>>> {
        self.inner.document(resource_type, id).await
    }
    async fn find_documents(&self, query: &DocumentQuery) -> Result<Vec<Versioned<Document>>> {
        self.inner.find_documents(query).await
    }
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
    async fn delete_subject(&self, id: &Identifier) -> Result<bool> {
        self.inner.delete_subject(id).await
    }
}

fn broken(fault: Fault) -> Arc<Broken> {
    Arc::new(Broken {
        inner: MemoryStore::new(),
        fault,
        group: std::sync::Mutex::default(),
    })
}

/// Runs one kit check on its own task and says whether it failed.
async fn fails<F>(check: F) -> bool
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(check).await.is_err_and(|e| e.is_panic())
}

#[tokio::test]
async fn a_set_written_record_by_record_fails_the_atomicity_checks() {
    let s = broken(Fault::RecordByRecord);
    let store = s.clone();
    assert!(
        fails(async move { testkit::write_set_is_all_or_nothing(&*store).await }).await,
        "the kit accepted a store that keeps part of a failed set"
    );
    let store = s.clone();
    assert!(
        fails(async move { testkit::a_dropped_write_set_commits_all_or_none(&*store).await }).await,
        "the kit accepted a store that keeps part of a dropped set"
    );
    // The same store passes what it does not break: its sets of one record are atomic.
    testkit::concurrent_conditional_creates_make_one_record(&[&*s], 16).await;
}

#[tokio::test]
async fn a_store_checking_before_it_writes_fails_the_concurrency_checks() {
    let s = broken(Fault::CheckThenWrite);
    let store = s.clone();
    assert!(
        fails(async move {
            testkit::concurrent_compare_and_set_loses_nothing(
                &[&*store],
                16,
                Duration::from_secs(1),
            )
            .await
        })
        .await,
        "the kit accepted lost updates"
    );
    let store = s.clone();
    assert!(
        fails(async move {
            testkit::concurrent_conditional_creates_make_one_record(&[&*store], 16).await
        })
        .await,
        "the kit accepted duplicate creates"
    );
    // Without concurrency it looks right: the checks above are what catch it.
    testkit::write_set_is_all_or_nothing(&*s).await;
    testkit::versions_are_kept_by_the_store(&*s).await;
}

#[tokio::test]
async fn a_group_commit_that_fails_neighbours_fails_the_independence_check() {
    let s = broken(Fault::SharedFate);
    let store = s.clone();
    assert!(
        fails(async move { testkit::a_conflict_never_fails_another_set(&*store).await }).await,
        "the kit accepted a store where one set's conflict failed its neighbours"
    );
    // Alone, each set keeps its own outcome.
    testkit::write_set_is_all_or_nothing(&*s).await;
}

#[tokio::test]
async fn documents_written_record_by_record_or_checked_before_writing_fail_the_kit() {
    let s = broken(Fault::RecordByRecord);
    let store = s.clone();
    assert!(
        fails(async move { testkit::a_failed_document_fails_the_whole_set(&*store).await }).await,
        "the kit accepted a store that keeps part of a set whose document failed"
    );
    let s = broken(Fault::CheckThenWrite);
    let store = s.clone();
    assert!(
        fails(async move { testkit::concurrent_document_creates_make_one(&[&*store], 16).await })
            .await,
        "the kit accepted duplicate creates of a document"
    );
    // Without concurrency it looks right.
    testkit::document_versions_are_kept_by_the_store(&*s).await;
    testkit::a_failed_document_fails_the_whole_set(&*s).await;
}
