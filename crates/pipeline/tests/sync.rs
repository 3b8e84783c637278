//! The sync engine against a real SQLite file: resume, retries, failures, stop, rejections,
//! and futures dropped at arbitrary points.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use healthanalyzer_model::{DateTime, Identifier, Measurement, Provenance, Value, parse_decimal};
use healthanalyzer_pipeline::{Event, Outcome, StopFlag, SyncOptions, open_store, sync};
use healthanalyzer_source::{Batch, Cursor, Error, RetryPolicy, Source, StaticSource};
use healthanalyzer_source_sim::{SimConfig, SimSource};
use healthanalyzer_store::{Filter, MeasurementStoreExt, Order, Store};

fn sim(patients: usize, days: u32) -> Arc<SimSource> {
    Arc::new(
        SimSource::new(SimConfig {
            patients,
            days,
            // Recent enough for the validator's "not in the future" and old enough to be past.
            start: "2024-01-01".parse().expect("date"),
            ..SimConfig::default()
        })
        .expect("sim"),
    )
}

fn fast() -> SyncOptions {
    SyncOptions {
        batch_size: Some(100),
        retry: RetryPolicy {
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        ..SyncOptions::default()
    }
}

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("h.db").display());
    let store = open_store(&url).await.expect("open");
    (dir, store)
}

async fn count(store: &dyn Store) -> u64 {
    store.count(&Filter::default()).await.expect("count")
}

fn quiet() -> impl Fn(Event) + Send + Sync {
    |_| {}
}

#[tokio::test]
async fn a_sync_stores_everything_once_and_a_second_sync_resumes_with_nothing_new() {
    let (_dir, store) = sqlite().await;
    let source = sim(6, 10);
    let total = source.total();
    let sources: Vec<Arc<dyn Source>> = vec![source];
    let events = Mutex::new(Vec::new());
    let record = |e: Event| events.lock().expect("lock").push(e);
    let first = sync(store.clone(), &sources, &fast(), &StopFlag::new(), &record).await;
    assert_eq!(first[0].outcome, Outcome::Complete);
    assert_eq!(first[0].pulled, total);
    assert_eq!(first[0].inserted, total);
    assert_eq!(first[0].batches, total.div_ceil(100));
    assert_eq!(count(store.as_ref()).await, total);
    {
        let events = events.lock().expect("lock");
        assert!(matches!(&events[0], Event::Started { resumed: false, .. }));
        assert!(matches!(events.last(), Some(Event::Finished(_))));
        let stored = events
            .iter()
            .filter(|e| matches!(e, Event::Stored { .. }))
            .count();
        assert_eq!(stored as u64, first[0].batches);
    }
    events.lock().expect("lock").clear();
    let second = sync(store.clone(), &sources, &fast(), &StopFlag::new(), &record).await;
    assert_eq!(second[0].outcome, Outcome::Complete);
    assert_eq!(second[0].inserted, 0);
    assert_eq!(second[0].pulled, 0, "resumed at the end");
    assert!(matches!(
        &events.lock().expect("lock")[0],
        Event::Started { resumed: true, .. }
    ));
    assert_eq!(count(store.as_ref()).await, total);
}

/// Fails every other pull with a retryable error, or always with a permanent one.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn Source>,
    calls: AtomicUsize,
    permanent: bool,
}

#[async_trait]
impl Source for Flaky {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn kind(&self) -> &str {
        "flaky"
    }
    async fn pull(&self, cursor: &Cursor, limit: usize) -> healthanalyzer_source::Result<Batch> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.permanent {
            return Err(Error::Auth {
                reason: "the token was refused".into(),
            });
        }
        if n.is_multiple_of(2) {
            return Err(Error::unavailable("HTTP 503"));
        }
        self.inner.pull(cursor, limit).await
    }
}

#[tokio::test]
async fn retryable_errors_are_retried_and_a_failing_source_fails_alone() {
    let (_dir, store) = sqlite().await;
    let good = sim(3, 5);
    let total = good.total();
    let flaky: Arc<dyn Source> = Arc::new(Flaky {
        inner: good,
        calls: AtomicUsize::new(0),
        permanent: false,
    });
    let broken: Arc<dyn Source> = Arc::new(Flaky {
        inner: Arc::new(StaticSource::new("broken", Vec::new())),
        calls: AtomicUsize::new(0),
        permanent: true,
    });
    let retries = AtomicUsize::new(0);
    let on_event = |e: Event| {
        if let Event::Retrying { .. } = e {
            retries.fetch_add(1, Ordering::SeqCst);
        }
    };
    let out = sync(
        store.clone(),
        &[flaky, broken],
        &fast(),
        &StopFlag::new(),
        &on_event,
    )
    .await;
    assert_eq!(out[0].outcome, Outcome::Complete);
    assert_eq!(out[0].inserted, total);
    assert!(retries.load(Ordering::SeqCst) as u64 >= out[0].batches);
    match &out[1].outcome {
        Outcome::Failed(why) => {
            assert!(
                matches!(why, healthanalyzer_pipeline::SyncFailure::Pull(_)),
                "{why:?}"
            );
            let chain = why.chain();
            assert!(chain.starts_with("pulling from the source: "), "{chain}");
            assert_eq!(chain.matches("token was refused").count(), 1, "{chain}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out[1].source, "broken");
    assert_eq!(count(store.as_ref()).await, total);
}

#[tokio::test]
async fn invalid_measurements_are_rejected_with_reasons_and_the_rest_stored() {
    let (_dir, store) = sqlite().await;
    let pulse = |id: &str, v: &str| {
        Measurement::new(
            Provenance::new("hand", id),
            Identifier::new("urn:test", "p1"),
            "heart-rate",
            Value::quantity(parse_decimal(v).expect("v"), "/min"),
            DateTime::parse("2024-03-01T08:00:00+01:00").expect("t"),
        )
    };
    let lb = Measurement::new(
        Provenance::new("hand", "w"),
        Identifier::new("urn:test", "p1"),
        "body-weight",
        Value::quantity(parse_decimal("185").expect("v"), "[lb_av]"),
        DateTime::parse("2024-03-01T08:00:00+01:00").expect("t"),
    );
    let source: Arc<dyn Source> = Arc::new(StaticSource::new(
        "hand",
        vec![pulse("a", "64"), pulse("b", "312"), lb],
    ));
    let out = sync(
        store.clone(),
        &[source],
        &fast(),
        &StopFlag::new(),
        &quiet(),
    )
    .await;
    assert_eq!(out[0].outcome, Outcome::Complete);
    assert_eq!(out[0].inserted, 2);
    assert_eq!(out[0].rejected_count, 1);
    assert_eq!(out[0].rejected[0].location, "record b");
    assert!(
        out[0].rejected[0].reason.contains("312"),
        "{:?}",
        out[0].rejected
    );
    // Stored normalised: pounds became kilograms.
    let all = store
        .query_all(&Filter::default(), Order::Ascending, 100)
        .await
        .expect("query");
    let weight = all
        .iter()
        .find(|m| m.kind.as_str() == "body-weight")
        .expect("weight");
    match &weight.value {
        Value::Quantity(o) => assert_eq!(o.quantity.unit.as_str(), "kg"),
        other => panic!("{other:?}"),
    }
}

/// Raises the stop flag once it has served `after` pulls.
#[derive(Debug)]
struct StopAfter {
    inner: Arc<dyn Source>,
    stop: StopFlag,
    after: usize,
    calls: AtomicUsize,
}

#[async_trait]
impl Source for StopAfter {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn kind(&self) -> &str {
        self.inner.kind()
    }
    async fn pull(&self, cursor: &Cursor, limit: usize) -> healthanalyzer_source::Result<Batch> {
        let b = self.inner.pull(cursor, limit).await;
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 >= self.after {
            self.stop.stop();
        }
        b
    }
}

#[tokio::test]
async fn a_stop_finishes_the_batch_in_hand_and_the_next_sync_goes_on_from_there() {
    let (_dir, store) = sqlite().await;
    let inner = sim(6, 30);
    let total = inner.total();
    assert!(total > 400);
    let stop = StopFlag::new();
    let source: Arc<dyn Source> = Arc::new(StopAfter {
        inner: inner.clone(),
        stop: stop.clone(),
        after: 3,
        calls: AtomicUsize::new(0),
    });
    let out = sync(store.clone(), &[source], &fast(), &stop, &quiet()).await;
    assert_eq!(out[0].outcome, Outcome::Stopped);
    // The third batch, in hand when the flag went up, was stored with its cursor.
    assert_eq!(out[0].batches, 3);
    assert_eq!(count(store.as_ref()).await, 300);
    let cp = store
        .checkpoint(inner.id())
        .await
        .expect("cp")
        .expect("saved");
    assert!(!Cursor::new(cp.cursor).is_start());
    let sources: Vec<Arc<dyn Source>> = vec![inner];
    let rest = sync(store.clone(), &sources, &fast(), &StopFlag::new(), &quiet()).await;
    assert_eq!(rest[0].outcome, Outcome::Complete);
    assert_eq!(rest[0].pulled, total - 300);
    assert_eq!(rest[0].unchanged, 0, "nothing pulled twice");
    assert_eq!(count(store.as_ref()).await, total);
}

#[tokio::test]
async fn a_sync_dropped_at_any_point_and_run_again_ends_with_exactly_the_same_rows() {
    let (_dir, reference) = sqlite().await;
    let source = sim(6, 12);
    let sources: Vec<Arc<dyn Source>> = vec![source.clone()];
    sync(
        reference.clone(),
        &sources,
        &fast(),
        &StopFlag::new(),
        &quiet(),
    )
    .await;
    let want = reference
        .query_all(&Filter::default(), Order::Ascending, 1000)
        .await
        .expect("all");

    let (_dir2, store) = sqlite().await;
    // Cut the sync off after growing amounts of time, then let one run finish.
    for micros in [50u64, 400, 2_000, 6_000, 15_000] {
        let _ = tokio::time::timeout(
            Duration::from_micros(micros),
            sync(store.clone(), &sources, &fast(), &StopFlag::new(), &quiet()),
        )
        .await;
    }
    let out = sync(store.clone(), &sources, &fast(), &StopFlag::new(), &quiet()).await;
    assert_eq!(out[0].outcome, Outcome::Complete);
    let got = store
        .query_all(&Filter::default(), Order::Ascending, 1000)
        .await
        .expect("all");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the same rows, equal in every field");
}
