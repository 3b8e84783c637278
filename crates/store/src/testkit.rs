//! The conformance kit: checks every [`MeasurementStore`] must pass.
//!
//! Each check is a public `async fn` taking `&dyn MeasurementStore` and panicking with a message
//! when the store breaks the contract, so it runs inside any test harness and any async runtime.
//! Every check needs only **a working store**: it writes under its own fresh subject and source
//! ids (a per-call nonce), so checks can share one store, and a store that already holds data
//! (a shared PostgreSQL database) works too. Rows are left behind for inspection.
//! [`run_all`] runs every measurement check; [`run_subject_checks`] the checks of a
//! [`SubjectStore`].

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use healthanalyzer_model::jiff::{SignedDuration, Timestamp, tz};
use healthanalyzer_model::{
    BodySite, Context, DateTime, DeviceRef, Effective, Identifier, KindId, Measurement,
    MeasurementId, Provenance, Status, Value, parse_decimal,
};

use crate::backend::SortKey;
use crate::{
    Checkpoint, Conflict, ConflictReason, Document, DocumentQuery, Error, Filter, MeasurementStore,
    MeasurementStoreExt, Order, PageToken, Precondition, Query, RecordKey, SubjectStore, WriteSet,
    WriteSetStore,
};
use healthanalyzer_model::{Gender, HumanName, Subject};

/// A fresh namespace for one check: `kit-<name>-<nonce>`.
fn ns(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = Timestamp::now().as_nanosecond();
    format!("kit-{name}-{t:x}-{n}")
}

fn base() -> Timestamp {
    Timestamp::from_second(1_704_067_200).unwrap_or(Timestamp::UNIX_EPOCH) // 2024-01-01T00:00:00Z
}

/// A heart-rate measurement of `subject` from `source`, record `i`, `i` minutes after 2024-01-01.
pub fn heart_rate(source: &str, subject: &str, i: i64, bpm: i64) -> Measurement {
    let at = base() + SignedDuration::from_mins(i);
    Measurement::new(
        Provenance::new(source, format!("r{i}")),
        Identifier::local(subject),
        "heart-rate",
        Value::quantity(bpm.into(), "/min"),
        DateTime::from_timestamp(at, tz::Offset::from_hours(1).unwrap_or(tz::Offset::UTC)),
    )
}

/// Asserts `got` is exactly `want`: equal, and with the same text form. `Decimal`'s `==` ignores
/// scale (`107.50 == 107.5`), so equality alone would let a store drop trailing zeros; the `Debug`
/// text shows every decimal with its scale and every time as written.
fn assert_exact(got: Option<&Measurement>, want: &Measurement, what: &str) {
    assert_eq!(
        got,
        Some(want),
        "{what}: read back differs from what was written"
    );
    assert_eq!(
        format!("{got:?}"),
        format!("{:?}", Some(want)),
        "{what}: read back differs in precision (decimal scale or time text)"
    );
}

fn dec(s: &str) -> healthanalyzer_model::Decimal {
    parse_decimal(s).unwrap_or_default()
}

/// Runs every check of a [`SubjectStore`].
pub async fn run_subject_checks(store: &dyn SubjectStore) {
    subjects_found_by_any_identifier(store).await;
    subject_identifiers_are_unique(store).await;
    subjects_page_through_the_list(store).await;
}

/// Runs every measurement check.
pub async fn run_all(store: &dyn MeasurementStore) {
    upsert_is_idempotent(store).await;
    a_correction_may_move_a_measurement_to_another_subject(store).await;
    batch_and_checkpoint_are_atomic(store).await;
    reads_back_exactly_what_was_written(store).await;
    query_filters_and_bounds(store).await;
    sort_orders(store).await;
    paging_survives_concurrent_inserts(store, 10_000).await;
    bad_page_tokens_are_rejected(store).await;
    latest_per_kind(store).await;
    delete_removes_rows(store).await;
    subject_counts_agree_with_counts(store).await;
    large_batch(store, 100_000).await;
}

/// Writing the same batch twice stores it once; a changed value replaces the old one.
pub async fn upsert_is_idempotent(store: &dyn MeasurementStore) {
    let (src, subj) = (ns("idem-src"), ns("idem-subj"));
    let batch: Vec<_> = (0..50)
        .map(|i| heart_rate(&src, &subj, i, 60 + i))
        .collect();
    let first = store.write(&batch, None).await.expect("first write");
    assert_eq!(
        first.inserted, 50,
        "first write inserts every row: {first:?}"
    );
    let again = store.write(&batch, None).await.expect("replay");
    assert_eq!(
        (again.inserted, again.updated, again.unchanged),
        (0, 0, 50),
        "a replay must change nothing: {again:?}"
    );
    let filter = Filter::subject(Identifier::local(&subj));
    assert_eq!(store.count(&filter).await.expect("count"), 50);
    // A change of decimal scale alone (72 -> 72.0) is a change: it is what the source said.
    let mut rescaled = batch[3].clone();
    rescaled.value = Value::quantity(dec(&format!("{}.0", 60 + 3)), "/min");
    let w = store
        .write(std::slice::from_ref(&rescaled), None)
        .await
        .expect("rescaled");
    assert_eq!(w.updated, 1, "a scale-only change is an update: {w:?}");
    assert_exact(
        store.get(&rescaled.id).await.expect("get").as_ref(),
        &rescaled,
        "rescaled",
    );
    let mut corrected = batch[7].clone();
    corrected.value = Value::quantity(99.into(), "/min");
    corrected.status = Status::Corrected;
    let w = store
        .write(&[corrected.clone()], None)
        .await
        .expect("correction");
    assert_eq!(w.updated, 1, "{w:?}");
    assert_eq!(
        store.get(&corrected.id).await.expect("get"),
        Some(corrected)
    );
    assert_eq!(
        store.count(&filter).await.expect("count"),
        50,
        "a correction adds no row"
    );
}

/// A source that corrects the subject of a record: the id stays, the measurement moves.
pub async fn a_correction_may_move_a_measurement_to_another_subject(store: &dyn MeasurementStore) {
    let (src, a, b) = (ns("move-src"), ns("move-a"), ns("move-b"));
    let m = heart_rate(&src, &a, 1, 70);
    store
        .write(std::slice::from_ref(&m), None)
        .await
        .expect("write");
    let mut moved = m.clone();
    moved.subject = Identifier::local(&b);
    let w = store
        .write(std::slice::from_ref(&moved), None)
        .await
        .expect("move");
    assert_eq!(
        (w.inserted, w.updated),
        (0, 1),
        "a move is an update: {w:?}"
    );
    assert_eq!(store.get(&m.id).await.expect("get"), Some(moved));
    for (who, n) in [(&a, 0), (&b, 1)] {
        let f = Filter::subject(Identifier::local(who));
        assert_eq!(store.count(&f).await.expect("count"), n);
        assert_eq!(
            store
                .query(&Query::new(f, 10))
                .await
                .expect("query")
                .items
                .len() as u64,
            n
        );
    }
}

/// A batch with one bad measurement fails and leaves neither its rows nor its checkpoint.
pub async fn batch_and_checkpoint_are_atomic(store: &dyn MeasurementStore) {
    let (src, subj) = (ns("atomic-src"), ns("atomic-subj"));
    let good: Vec<_> = (0..10).map(|i| heart_rate(&src, &subj, i, 70)).collect();
    store
        .write(&good, Some(&Checkpoint::new(&src, "cursor-1")))
        .await
        .expect("good batch");
    let mut next: Vec<_> = (10..20).map(|i| heart_rate(&src, &subj, i, 70)).collect();
    next[9].id = MeasurementId::from_source("someone-else", "x"); // does not match provenance
    let err = store
        .write(&next, Some(&Checkpoint::new(&src, "cursor-2")))
        .await
        .expect_err("a batch with a bad measurement must fail");
    assert!(
        matches!(err, Error::InvalidInput { .. }),
        "expected InvalidInput, got {err}"
    );
    let cp = store.checkpoint(&src).await.expect("checkpoint");
    assert_eq!(
        cp.map(|c| c.cursor),
        Some("cursor-1".into()),
        "checkpoint must not move"
    );
    for m in &next[..9] {
        assert_eq!(
            store.get(&m.id).await.expect("get"),
            None,
            "no row of a failed batch"
        );
    }
    assert_eq!(
        store
            .count(&Filter::subject(Identifier::local(&subj)))
            .await
            .expect("count"),
        10
    );
    // An empty batch can move the checkpoint alone.
    store
        .write(&[], Some(&Checkpoint::new(&src, "{\"offset\":20}")))
        .await
        .expect("checkpoint only");
    let cp = store.checkpoint(&src).await.expect("checkpoint");
    assert_eq!(cp.map(|c| c.cursor), Some("{\"offset\":20}".into()));
    assert_eq!(
        store.checkpoint(&ns("never")).await.expect("checkpoint"),
        None
    );
}

/// Decimals keep their scale, times their offset and precision, payloads their bytes.
pub async fn reads_back_exactly_what_was_written(store: &dyn MeasurementStore) {
    let (src, subj) = (ns("exact-src"), ns("exact-subj"));
    let cases = [
        (
            "body-weight",
            "107.50",
            "kg",
            "2024-03-31T02:30:00.120+02:00",
        ),
        (
            "body-temperature",
            "36.60",
            "Cel",
            "2024-10-27T02:30:00+05:45",
        ),
        (
            "blood-glucose",
            "0.0050",
            "mg/dL",
            "2024-10-27T01:30:00-03:30",
        ),
        ("oxygen-saturation", "97", "%", "2024-06-01T12:00:00Z"),
        ("heart-rate", "60", "/min", "2024-06-01T12:00:00-00:00"),
        (
            "body-height",
            "1E+2",
            "cm",
            "2024-06-01T12:00:00.123456789+00:00",
        ),
    ];
    let mut batch = Vec::new();
    for (i, (kind, v, unit, t)) in cases.iter().enumerate() {
        let value = parse_decimal(v).unwrap_or_default();
        let mut m = Measurement::new(
            Provenance::new(&src, format!("r{i}")).with_payload(
                "application/fhir+json",
                format!("{{\"resourceType\":\"Observation\",\"valueQuantity\":{{\"value\":{v}}},\"note\":\"æøå ✓\"}}"),
            ),
            Identifier::local(&subj),
            *kind,
            Value::quantity(value, *unit),
            DateTime::parse(t).expect("test time"),
        );
        m.context = Context {
            site: Some(BodySite::Other("left little toe".into())),
            method: Some("oscillometry".into()),
            ..Context::default()
        };
        m.device = Some(DeviceRef {
            identifier: Some(Identifier::new("urn:ieee:eui64", "00-1C-05-FF-FE-00-12-34")),
            ..DeviceRef::default()
        });
        m.issued = Some(DateTime::parse("2024-11-01").expect("date"));
        batch.push(m);
    }
    let mut period = heart_rate(&src, &subj, 1000, 61);
    period.kind = KindId::new("steps");
    period.value = Value::quantity(dec("10432"), "{steps}");
    period.effective = Effective::Period {
        start: DateTime::parse("2024-03-31T00:00:00+01:00").expect("t"),
        end: Some(DateTime::parse("2024-04-01T00:00:00+02:00").expect("t")),
    };
    batch.push(period);
    store.write(&batch, None).await.expect("write");
    for m in &batch {
        let back = store.get(&m.id).await.expect("get");
        assert_exact(back.as_ref(), m, "get");
    }
    let all = store
        .query_all(
            &Filter::subject(Identifier::local(&subj)),
            Order::Ascending,
            3,
        )
        .await
        .expect("query");
    assert_eq!(all.len(), batch.len());
    for m in &all {
        let want = batch
            .iter()
            .find(|b| b.id == m.id)
            .expect("query returned an unknown row");
        assert_exact(Some(m), want, "query");
    }
}

/// Subject, kind and time filters, with inclusive and exclusive bounds at exact instants.
pub async fn query_filters_and_bounds(store: &dyn MeasurementStore) {
    let src = ns("filter-src");
    let (a, b) = (ns("filter-a"), ns("filter-b"));
    let mut batch: Vec<_> = (0..10).map(|i| heart_rate(&src, &a, i, 70)).collect();
    batch.extend((10..15).map(|i| heart_rate(&src, &b, i, 70)));
    let mut w = heart_rate(&src, &a, 100, 0);
    w.kind = KindId::new("body-weight");
    w.value = Value::quantity(dec("80.0"), "kg");
    batch.push(w);
    store.write(&batch, None).await.expect("write");
    let t = |i: i64| base() + SignedDuration::from_mins(i);
    let count = |f: Filter| async move { store.count(&f).await.expect("count") };
    let fa = Filter::subject(Identifier::local(&a));
    assert_eq!(count(fa.clone()).await, 11);
    assert_eq!(count(Filter::subject(Identifier::local(&b))).await, 5);
    assert_eq!(count(fa.clone().kinds(["heart-rate"])).await, 10);
    assert_eq!(count(fa.clone().kinds(["body-weight"])).await, 1);
    assert_eq!(
        count(fa.clone().kinds(["body-weight", "heart-rate"])).await,
        11
    );
    assert_eq!(count(fa.clone().kinds(["steps"])).await, 0);
    let hr = fa.clone().kinds(["heart-rate"]);
    for (from, to, expected) in [
        (Bound::Included(t(2)), Bound::Included(t(5)), 4),
        (Bound::Excluded(t(2)), Bound::Included(t(5)), 3),
        (Bound::Included(t(2)), Bound::Excluded(t(5)), 3),
        (Bound::Excluded(t(2)), Bound::Excluded(t(5)), 2),
        (Bound::Unbounded, Bound::Excluded(t(3)), 3),
        (Bound::Included(t(8)), Bound::Unbounded, 2),
        (Bound::Included(t(5)), Bound::Included(t(5)), 1),
        (Bound::Excluded(t(5)), Bound::Excluded(t(5)), 0),
        (Bound::Included(t(6)), Bound::Included(t(5)), 0),
    ] {
        let f = hr.clone().between(from, to);
        assert_eq!(count(f.clone()).await, expected, "count {from:?}..{to:?}");
        let items = store
            .query_all(&f, Order::Ascending, 2)
            .await
            .expect("query");
        assert_eq!(items.len() as u64, expected, "query {from:?}..{to:?}");
        assert!(items.iter().all(|m| f.matches(m)));
        // A page with its total: the page `query` gives and the count of the whole filter,
        // on the first page and on a later one (the total is never the remainder).
        let mut q = Query::new(f.clone(), 2).order(Order::Descending);
        loop {
            let (page, total) = store.query_with_total(&q).await.expect("query_with_total");
            assert_eq!(total, expected, "query_with_total's total {from:?}..{to:?}");
            let alone = store.query(&q).await.expect("query");
            assert_eq!(
                page.items, alone.items,
                "query_with_total's page {from:?}..{to:?}"
            );
            assert_eq!(
                page.next, alone.next,
                "query_with_total's next {from:?}..{to:?}"
            );
            match page.next {
                Some(next) => q.page = Some(next),
                None => break,
            }
        }
    }
    let subjects = store.measured_subjects().await.expect("subjects");
    assert!(subjects.contains(&Identifier::local(&a)) && subjects.contains(&Identifier::local(&b)));
    assert!(
        subjects.windows(2).all(|w| w[0] < w[1]),
        "subjects sorted and distinct"
    );
}

/// Ascending and descending by effective instant, ties broken by id.
pub async fn sort_orders(store: &dyn MeasurementStore) {
    let (src, subj) = (ns("sort-src"), ns("sort-subj"));
    // Written out of order, with three at the same instant.
    let mut batch: Vec<_> = [5, 1, 9, 3, 3, 3, 7]
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let mut m = heart_rate(&src, &subj, *i, 70);
            m.provenance.record_id = format!("rec{n}");
            m.id = m.provenance.measurement_id();
            m
        })
        .collect();
    store.write(&batch, None).await.expect("write");
    batch.sort_by_key(SortKey::of);
    let f = Filter::subject(Identifier::local(&subj));
    let asc = store.query_all(&f, Order::Ascending, 2).await.expect("asc");
    assert_eq!(asc, batch, "ascending by (instant, id)");
    let desc = store
        .query_all(&f, Order::Descending, 3)
        .await
        .expect("desc");
    batch.reverse();
    assert_eq!(desc, batch, "descending by (instant, id)");
}

/// Pages through `n` rows while rows are inserted before and after the cursor between pages:
/// no pre-existing row is lost or repeated, and rows inserted ahead of the cursor are seen.
pub async fn paging_survives_concurrent_inserts(store: &dyn MeasurementStore, n: i64) {
    let (src, subj) = (ns("page-src"), ns("page-subj"));
    let batch: Vec<_> = (0..n)
        .map(|i| heart_rate(&src, &subj, i * 10, 70))
        .collect();
    for chunk in batch.chunks(5_000) {
        store.write(chunk, None).await.expect("write");
    }
    for order in [Order::Ascending, Order::Descending] {
        let mut query = Query::new(Filter::subject(Identifier::local(&subj)), 137).order(order);
        let mut seen = Vec::new();
        let mut ahead = Vec::new();
        let mut extra = 0i64;
        loop {
            let page = store.query(&query).await.expect("page");
            assert!(page.items.len() <= 137);
            seen.extend(page.items.iter().map(|m| m.id));
            let Some(last) = page.items.last() else { break };
            // Insert one row behind the cursor and one ahead of it (odd minutes never collide
            // with the originals, which sit on multiples of 10).
            let cursor_min = last.effective.instant().duration_since(base()).as_mins();
            let (behind, before_or_after) = match order {
                Order::Ascending => (cursor_min - 3, cursor_min + 3),
                Order::Descending => (cursor_min + 3, cursor_min - 3),
            };
            extra += 1;
            let mut b = heart_rate(&src, &subj, behind, 71);
            b.provenance.record_id = format!("behind-{order:?}-{extra}");
            b.id = b.provenance.measurement_id();
            let mut a = heart_rate(&src, &subj, before_or_after, 72);
            a.provenance.record_id = format!("ahead-{order:?}-{extra}");
            a.id = a.provenance.measurement_id();
            let in_range = (0..n * 10).contains(&before_or_after);
            store
                .write(&[b, a.clone()], None)
                .await
                .expect("concurrent insert");
            if in_range && page.next.is_some() {
                ahead.push(a.id);
            }
            match page.next {
                Some(next) => query.page = Some(next),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{order:?}: a row was returned twice"
        );
        for m in &batch {
            assert!(
                unique.binary_search(&m.id).is_ok(),
                "{order:?}: a pre-existing row was skipped"
            );
        }
        for id in &ahead {
            assert!(
                unique.binary_search(id).is_ok(),
                "{order:?}: a row inserted ahead of the cursor was not seen"
            );
        }
    }
}

/// A mangled token, or one from the other sort order, is rejected as invalid input.
pub async fn bad_page_tokens_are_rejected(store: &dyn MeasurementStore) {
    let filter = Filter::subject(Identifier::local(ns("token")));
    for token in [
        "",
        "garbage",
        "a12.xyz",
        "a1.00",
        "x1.00000000000000000000000000000000",
    ] {
        let mut q = Query::new(filter.clone(), 10);
        q.page = Some(PageToken::from(token.to_string()));
        let err = store
            .query(&q)
            .await
            .expect_err("a bad token must be rejected");
        assert!(
            matches!(err, Error::InvalidInput { .. }),
            "{token:?}: {err}"
        );
    }
    let mut q = Query::new(filter.clone(), 10).order(Order::Descending);
    q.page = Some(PageToken::after(
        Order::Ascending,
        SortKey { nanos: 0, id: 0 },
    ));
    assert!(matches!(
        store.query(&q).await,
        Err(Error::InvalidInput { .. })
    ));
    let q = Query::new(filter, 0);
    assert!(
        matches!(store.query(&q).await, Err(Error::InvalidInput { .. })),
        "limit 0"
    );
}

/// The latest N of each kind for a subject, newest first.
pub async fn latest_per_kind(store: &dyn MeasurementStore) {
    let (src, subj) = (ns("lastn-src"), ns("lastn-subj"));
    let mut batch: Vec<_> = (0..20)
        .map(|i| heart_rate(&src, &subj, i, 60 + i))
        .collect();
    for i in 0..3 {
        let mut w = heart_rate(&src, &subj, 100 + i, 0);
        w.kind = KindId::new("body-weight");
        w.value = Value::quantity(dec("80.0"), "kg");
        w.provenance.record_id = format!("w{i}");
        w.id = w.provenance.measurement_id();
        batch.push(w);
    }
    batch.push(heart_rate(&src, &ns("lastn-other"), 500, 99));
    store.write(&batch, None).await.expect("write");
    let who = Identifier::local(&subj);
    let got = store
        .latest(&who, &[KindId::new("heart-rate")], 3)
        .await
        .expect("latest");
    let minutes: Vec<i64> = got
        .iter()
        .map(|m| m.effective.instant().duration_since(base()).as_mins())
        .collect();
    assert_eq!(minutes, vec![19, 18, 17]);
    let all = store.latest(&who, &[], 2).await.expect("latest");
    let kinds: Vec<&str> = all.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["body-weight", "body-weight", "heart-rate", "heart-rate"]
    );
    assert!(all.iter().all(|m| m.subject == who));
}

/// Deleted rows are gone from get, query and count; deleting twice reports zero.
pub async fn delete_removes_rows(store: &dyn MeasurementStore) {
    let (src, subj) = (ns("del-src"), ns("del-subj"));
    let batch: Vec<_> = (0..5).map(|i| heart_rate(&src, &subj, i, 70)).collect();
    store.write(&batch, None).await.expect("write");
    let ids = [
        batch[1].id,
        batch[3].id,
        MeasurementId::from_source("nobody", "x"),
    ];
    assert_eq!(store.delete(&ids).await.expect("delete"), 2);
    assert_eq!(store.delete(&ids).await.expect("delete again"), 0);
    assert_eq!(store.get(&batch[1].id).await.expect("get"), None);
    let f = Filter::subject(Identifier::local(&subj));
    assert_eq!(store.count(&f).await.expect("count"), 3);
    let left = store
        .query_all(&f, Order::Ascending, 10)
        .await
        .expect("query");
    assert_eq!(
        left,
        vec![batch[0].clone(), batch[2].clone(), batch[4].clone()]
    );
    // A deleted row can be written again.
    store.write(&batch[1..2], None).await.expect("rewrite");
    assert_eq!(store.count(&f).await.expect("count"), 4);
}

/// [`MeasurementStore::subject_counts`] lists every subject of [`MeasurementStore::measured_subjects`],
/// sorted, each with what [`MeasurementStore::count`] says; a subject whose measurements
/// were all deleted is gone from both.
pub async fn subject_counts_agree_with_counts(store: &dyn MeasurementStore) {
    let (a, b, c) = (ns("counts-a"), ns("counts-b"), ns("counts-c"));
    // One source per subject: the record ids (r0, r1, …) repeat.
    let mut batch: Vec<_> = (0..3).map(|i| heart_rate(&a, &a, i, 70)).collect();
    batch.extend((0..7).map(|i| heart_rate(&b, &b, i, 70)));
    batch.push(heart_rate(&c, &c, 0, 70));
    store.write(&batch, None).await.expect("write");
    store.delete(&[batch[10].id]).await.expect("delete");
    let counts = store.subject_counts().await.expect("subject_counts");
    let ids: Vec<Identifier> = counts.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        ids,
        store.measured_subjects().await.expect("subjects"),
        "the same subjects, sorted"
    );
    for (id, n) in &counts {
        let want = store
            .count(&Filter::subject(id.clone()))
            .await
            .expect("count");
        assert_eq!(*n, want, "count of {}", id.redacted());
    }
    let of = |v: &str| counts.iter().find(|(id, _)| id.value == v).map(|(_, n)| *n);
    assert_eq!(of(&a), Some(3));
    assert_eq!(of(&b), Some(7));
    assert_eq!(of(&c), None, "a subject whose one measurement was deleted");
}

/// One batch of `n` rows (100,000 in `run_all`) is stored whole.
pub async fn large_batch(store: &dyn MeasurementStore, n: i64) {
    let (src, subj) = (ns("large-src"), ns("large-subj"));
    let batch: Vec<_> = (0..n)
        .map(|i| heart_rate(&src, &subj, i, 40 + i % 100))
        .collect();
    let w = store
        .write(&batch, Some(&Checkpoint::new(&src, "end")))
        .await
        .expect("large write");
    assert_eq!(w.inserted, n as u64);
    let f = Filter::subject(Identifier::local(&subj));
    assert_eq!(store.count(&f).await.expect("count"), n as u64);
    let last = store.get(&batch[batch.len() - 1].id).await.expect("get");
    assert_eq!(last.as_ref(), batch.last());
}

fn subject(primary: &str, others: &[&str]) -> Subject {
    let mut s = Subject::new(Identifier::new("urn:oid:1.2.208.176.1.2", primary));
    s.other_ids = others
        .iter()
        .map(|o| Identifier::new("urn:kit:other", *o))
        .collect();
    s.name = Some(HumanName {
        family: Some("Ærø-Ødegård".into()),
        given: vec!["Åse".into(), "Marie".into()],
        text: None,
    });
    s.gender = Some(Gender::Female);
    s.birth_date = Some(DateTime::parse("1950-02").expect("date"));
    s.time_zone = Some("Europe/Copenhagen".into());
    s
}

/// A subject reads back exactly, by its primary identifier and by each other identifier; an
/// update replaces it (and its identifiers); delete removes it.
pub async fn subjects_found_by_any_identifier(store: &dyn SubjectStore) {
    let (p, o1, o2) = (ns("subj-p"), ns("subj-o1"), ns("subj-o2"));
    let s = subject(&p, &[&o1, &o2]);
    let w = store
        .put_subjects(std::slice::from_ref(&s))
        .await
        .expect("put");
    assert_eq!((w.inserted, w.updated, w.unchanged), (1, 0, 0), "{w:?}");
    let w = store
        .put_subjects(std::slice::from_ref(&s))
        .await
        .expect("replay");
    assert_eq!((w.inserted, w.updated, w.unchanged), (0, 0, 1), "{w:?}");
    for id in std::iter::once(&s.id).chain(&s.other_ids) {
        let got = store.subject(id).await.expect("subject");
        assert_eq!(got.as_ref(), Some(&s), "lookup by {}", id.redacted());
        assert_eq!(format!("{got:?}"), format!("{:?}", Some(&s)));
    }
    assert_eq!(
        store
            .subject(&Identifier::new("urn:kit:other", ns("nobody")))
            .await
            .expect("subject"),
        None
    );
    // Same value, other system: another identifier.
    assert_eq!(
        store
            .subject(&Identifier::local(&p))
            .await
            .expect("subject"),
        None
    );
    let mut moved = s.clone();
    moved.other_ids.truncate(1);
    moved.gender = Some(Gender::Other);
    let w = store.put_subjects(&[moved.clone()]).await.expect("update");
    assert_eq!(w.updated, 1, "{w:?}");
    assert_eq!(
        store.subject(&s.other_ids[1]).await.expect("subject"),
        None,
        "an identifier removed by an update no longer finds the subject"
    );
    assert_eq!(
        store.subject(&s.other_ids[0]).await.expect("subject"),
        Some(moved.clone())
    );
    let listed = store.list_subjects().await.expect("list");
    assert_eq!(
        listed.iter().filter(|x| x.id == s.id).collect::<Vec<_>>(),
        vec![&moved],
        "list_subjects holds the subject once, as last written"
    );
    let keys: Vec<String> = listed
        .iter()
        .map(|x| crate::subject::identifier_key(&x.id))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "list_subjects is ordered by primary identifier key"
    );
    assert!(store.delete_subject(&s.id).await.expect("delete"));
    assert!(!store.delete_subject(&s.id).await.expect("delete again"));
    assert!(
        !store
            .list_subjects()
            .await
            .expect("list")
            .iter()
            .any(|x| x.id == s.id),
        "a deleted subject is no longer listed"
    );
    assert_eq!(store.subject(&s.other_ids[0]).await.expect("subject"), None);
}

/// An identifier belongs to one subject: a batch or a write that would share one fails with
/// [`Error::Conflict`] and writes nothing.
pub async fn subject_identifiers_are_unique(store: &dyn SubjectStore) {
    let (a, b, shared, c) = (ns("uniq-a"), ns("uniq-b"), ns("uniq-shared"), ns("uniq-c"));
    let first = subject(&a, &[&shared]);
    store
        .put_subjects(std::slice::from_ref(&first))
        .await
        .expect("put");
    let thief = subject(&b, &[&shared]);
    let bystander = subject(&c, &[]);
    let err = store
        .put_subjects(&[bystander.clone(), thief.clone()])
        .await
        .expect_err("an identifier of another subject must be refused");
    assert!(
        matches!(
            err.conflict(),
            Some(Conflict { record: RecordKey::Subject(id), reason: ConflictReason::IdentifierTaken { .. } })
                if *id == thief.id
        ),
        "expected the thief's identifier conflict, got {err}"
    );
    assert_eq!(
        store.subject(&bystander.id).await.expect("subject"),
        None,
        "a refused batch writes nothing"
    );
    assert_eq!(
        store.subject(&thief.other_ids[0]).await.expect("subject"),
        Some(first.clone())
    );
    let x = ns("x");
    let err = store
        .put_subjects(&[subject(&c, &[&x]), subject(&ns("d"), &[&x])])
        .await
        .expect_err("two subjects of one batch sharing an identifier");
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    // Handing an identifier over within one batch is fine, in either order.
    let mut released = first.clone();
    released.other_ids.clear();
    store
        .put_subjects(&[thief.clone(), released.clone()])
        .await
        .expect("hand over");
    assert_eq!(
        store.subject(&thief.other_ids[0]).await.expect("subject"),
        Some(thief.clone())
    );
    assert_eq!(
        store.subject(&first.id).await.expect("subject"),
        Some(released.clone())
    );
    store
        .put_subjects(&[released, first.clone()])
        .await
        .expect_err("taking it back while the other subject still holds it");
    let mut thief_released = thief.clone();
    thief_released.other_ids.clear();
    store
        .put_subjects(&[first.clone(), thief_released])
        .await
        .expect("hand back");
    assert_eq!(
        store.subject(&thief.other_ids[0]).await.expect("subject"),
        Some(first)
    );
}

/// Identifiers whose keys sort otherwise than the identifiers do, and otherwise than a
/// database's language-aware collation would: without a system (`-…`, after every system),
/// upper case before lower case, `|` and `\` in a system (escaped in the key), a multibyte
/// system. Each value starts with `n`.
fn awkward_identifiers(n: &str, system: &str) -> Vec<Identifier> {
    vec![
        Identifier::local(format!("{n}-local")),
        Identifier::new(system, format!("{n}-b")),
        Identifier::new(system, format!("{n}-a")),
        Identifier::new(system.to_uppercase(), format!("{n}-upper")),
        Identifier::new(format!("{system}|x"), format!("{n}-bar")),
        Identifier::new(format!("{system}\\y"), format!("{n}-backslash")),
        Identifier::new(format!("{system}é"), format!("{n}-accent")),
    ]
}

fn sorted_by_key<T>(mut items: Vec<T>, id: impl Fn(&T) -> &Identifier) -> Vec<T> {
    items.sort_by_cached_key(|x| crate::subject::identifier_key(id(x)));
    items
}

/// Asserts the keys of `ids` sort strictly ascending.
fn assert_key_order<'a>(ids: impl Iterator<Item = &'a Identifier>, what: &str) {
    let keys: Vec<String> = ids.map(crate::subject::identifier_key).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "{what}: not strictly in key order (identifier_key, compared as bytes)"
    );
}

/// Asserts a page's keys sort strictly after the key of `after` and strictly ascending (so
/// following pages always ends).
fn assert_continues<'a>(
    after: Option<&Identifier>,
    page: impl Iterator<Item = &'a Identifier>,
    what: &str,
) {
    let mut previous = after.map(crate::subject::identifier_key);
    for id in page {
        let key = crate::subject::identifier_key(id);
        assert!(
            previous.as_ref().is_none_or(|p| key > *p),
            "{what}: a page must continue strictly after `after`, in key order"
        );
        previous = Some(key);
    }
}

/// Follows pages of `limit` from `after` to the first short page.
async fn all_subject_pages(
    store: &dyn SubjectStore,
    mut after: Option<Identifier>,
    limit: usize,
) -> Vec<Subject> {
    let mut out = Vec::new();
    loop {
        let page = store
            .subjects_page(after.as_ref(), limit)
            .await
            .expect("subjects_page");
        assert!(
            page.len() <= limit,
            "subjects_page({limit}) handed out {} subjects",
            page.len()
        );
        assert_continues(after.as_ref(), page.iter().map(|s| &s.id), "subjects_page");
        let last = page.len() < limit;
        if let Some(s) = page.last() {
            after = Some(s.id.clone());
        }
        out.extend(page);
        if last {
            return out;
        }
    }
}

/// [`SubjectStore::subjects_page`] pages through exactly what
/// [`SubjectStore::list_subjects`] lists, in its order (primary identifier keys, compared as
/// bytes), at any page size; `after` need not be stored; a deleted subject is not listed.
pub async fn subjects_page_through_the_list(store: &dyn SubjectStore) {
    let n = ns("page");
    let mut mine: Vec<Subject> = awkward_identifiers(&n, "urn:kit:page")
        .into_iter()
        .map(Subject::new)
        .collect();
    mine.push(subject(&format!("{n}-full"), &[&format!("{n}-other")]));
    store.put_subjects(&mine).await.expect("put");
    let gone = Subject::new(Identifier::new("urn:kit:page", format!("{n}-gone")));
    store
        .put_subjects(std::slice::from_ref(&gone))
        .await
        .expect("put");
    assert!(store.delete_subject(&gone.id).await.expect("delete"));
    let mine = sorted_by_key(mine, |s| &s.id);
    let own = |list: &[Subject]| -> Vec<Subject> {
        list.iter()
            .filter(|s| s.id.value.starts_with(&n))
            .cloned()
            .collect()
    };
    for limit in [1, 2, 3, 1_000] {
        let listed = store.list_subjects().await.expect("list");
        let paged = all_subject_pages(store, None, limit).await;
        assert_key_order(paged.iter().map(|s| &s.id), "subjects_page");
        assert_eq!(
            own(&paged),
            mine,
            "pages of {limit}: the check's subjects, each once, in key order, as written"
        );
        // Unless another writer changed the store meanwhile, the pages are the list.
        if store.list_subjects().await.expect("list") == listed {
            assert_eq!(
                paged, listed,
                "pages of {limit} hold what list_subjects does"
            );
        }
    }
    // After an identifier that is not stored: from where it would be.
    let from = Identifier::new("urn:kit:page", format!("{n}-a0"));
    let key = crate::subject::identifier_key(&from);
    let want: Vec<Subject> = mine
        .iter()
        .filter(|s| crate::subject::identifier_key(&s.id) > key)
        .cloned()
        .collect();
    assert_eq!(
        own(&all_subject_pages(store, Some(from), 2).await),
        want,
        "pages after an identifier that is not stored"
    );
    assert!(
        store
            .subjects_page(None, 0)
            .await
            .expect("subjects_page")
            .is_empty(),
        "a page of 0"
    );
}

// ---------------------------------------------------------------------------------------------
// Write sets

/// Runs every check of a [`WriteSetStore`]. `replicas` are more handles on the same database
/// (another connection pool, another open of the same file), so that the concurrency checks
/// also run across handles, as separate processes would; pass `&[]` when there are none.
/// `contention` is how long each concurrency check runs (the contract's checks use 5 s).
/// Includes [`run_document_checks`].
pub async fn run_write_set_checks(
    store: &dyn WriteSetStore,
    replicas: &[&dyn WriteSetStore],
    contention: std::time::Duration,
) {
    write_set_is_all_or_nothing(store).await;
    unrecorded_subjects_are_paged(store).await;
    versions_are_kept_by_the_store(store).await;
    a_dropped_write_set_commits_all_or_none(store).await;
    a_conflict_never_fails_another_set(store).await;
    let mut handles = vec![store];
    handles.extend_from_slice(replicas);
    concurrent_compare_and_set_loses_nothing(&handles, 16, contention).await;
    concurrent_conditional_creates_make_one_record(&handles, 16).await;
    run_document_checks(&handles).await;
}

/// Follows pages of [`WriteSetStore::unrecorded_subjects_page`] of `limit` from `after` to the
/// first short page.
async fn all_unrecorded_pages(
    store: &dyn WriteSetStore,
    mut after: Option<Identifier>,
    limit: usize,
) -> Vec<Identifier> {
    let mut out = Vec::new();
    loop {
        let page = store
            .unrecorded_subjects_page(after.as_ref(), limit)
            .await
            .expect("unrecorded_subjects_page");
        assert!(
            page.len() <= limit,
            "unrecorded_subjects_page({limit}) handed out {} identifiers",
            page.len()
        );
        assert_continues(after.as_ref(), page.iter(), "unrecorded_subjects_page");
        let last = page.len() < limit;
        if let Some(id) = page.last() {
            after = Some(id.clone());
        }
        out.extend(page);
        if last {
            return out;
        }
    }
}

/// [`WriteSetStore::unrecorded_subjects_page`] pages through the measured subjects that no
/// stored subject holds (as primary or other identifier), each once, in key order, at any page
/// size: not a subject's identifiers, not a subject whose measurements were all deleted, and
/// no longer one that a subject record takes up.
pub async fn unrecorded_subjects_are_paged(store: &dyn WriteSetStore) {
    let (n, src) = (ns("unrec"), ns("unrec-src"));
    let bare = awkward_identifiers(&n, "urn:kit:unrec");
    let mut recorded = Subject::new(Identifier::new("urn:kit:unrec", format!("{n}-recorded")));
    recorded
        .other_ids
        .push(Identifier::new("urn:kit:unrec-other", format!("{n}-other")));
    let emptied = Identifier::new("urn:kit:unrec", format!("{n}-emptied"));
    let measured: Vec<&Identifier> = bare
        .iter()
        .chain([&recorded.id, &recorded.other_ids[0], &emptied])
        .collect();
    let batch: Vec<Measurement> = measured
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut m = heart_rate(&src, "nobody", i as i64, 70);
            m.subject = (*id).clone();
            m
        })
        .collect();
    store.write(&batch, None).await.expect("write");
    store
        .put_subjects(std::slice::from_ref(&recorded))
        .await
        .expect("put");
    let last = batch.last().map(|m| m.id).expect("a measurement");
    assert_eq!(store.delete(&[last]).await.expect("delete"), 1);
    let want = sorted_by_key(bare.clone(), |id| id);
    let own = |list: &[Identifier]| -> Vec<Identifier> {
        list.iter()
            .filter(|id| id.value.starts_with(&n))
            .cloned()
            .collect()
    };
    for limit in [1, 2, 1_000] {
        let paged = all_unrecorded_pages(store, None, limit).await;
        assert_key_order(paged.iter(), "unrecorded_subjects_page");
        assert_eq!(
            own(&paged),
            want,
            "pages of {limit}: the check's subjects without a record, each once, in key order"
        );
    }
    // Unless another writer changed the store meanwhile, the pages are the measured subjects
    // without a record.
    let before = store.measured_subjects().await.expect("subjects");
    let paged = all_unrecorded_pages(store, None, 1_000).await;
    let mut expected = Vec::new();
    for id in &before {
        if store.subject(id).await.expect("subject").is_none() {
            expected.push(id.clone());
        }
    }
    if store.measured_subjects().await.expect("subjects") == before {
        assert_eq!(
            paged,
            sorted_by_key(expected, |id| id),
            "the pages hold the subjects() that subject() does not find"
        );
    }
    let from = Identifier::new("urn:kit:unrec", format!("{n}-a0"));
    let key = crate::subject::identifier_key(&from);
    let after: Vec<Identifier> = want
        .iter()
        .filter(|id| crate::subject::identifier_key(id) > key)
        .cloned()
        .collect();
    assert_eq!(
        own(&all_unrecorded_pages(store, Some(from), 2).await),
        after,
        "pages after an identifier that is not stored"
    );
    // A record that takes up an identifier takes it out of the listing.
    let mut taker = recorded.clone();
    taker.other_ids.push(want[0].clone());
    store.put_subjects(&[taker]).await.expect("put");
    assert_eq!(
        own(&all_unrecorded_pages(store, None, 3).await),
        want[1..].to_vec(),
        "an identifier a subject holds is not listed"
    );
}

/// A failed precondition in the middle of a set fails all of it, names the record, and writes
/// nothing: neither the subject, the measurements before it, nor the checkpoint.
pub async fn write_set_is_all_or_nothing(store: &dyn WriteSetStore) {
    let (src, subj) = (ns("set-src"), ns("set-subj"));
    let existing = heart_rate(&src, &subj, 0, 60);
    let doomed = heart_rate(&src, &subj, 3, 63);
    store
        .apply(
            &WriteSet::new()
                .put_measurement(existing.clone(), Precondition::Absent)
                .put_measurement(doomed.clone(), Precondition::Absent),
        )
        .await
        .expect("creates of new records");
    let fresh = heart_rate(&src, &subj, 1, 61);
    let after = heart_rate(&src, &subj, 2, 62);
    let missing = heart_rate(&src, &subj, 99, 1);
    let person = Subject::new(Identifier::local(&subj));
    // Three ways to fail in the middle, one per precondition.
    let cases: Vec<(Precondition, Measurement, ConflictReason)> = vec![
        (
            Precondition::Absent,
            heart_rate(&src, &subj, 0, 99),
            ConflictReason::Exists { version: 1 },
        ),
        (
            Precondition::Version(7),
            heart_rate(&src, &subj, 0, 99),
            ConflictReason::Version {
                expected: 7,
                found: 1,
            },
        ),
        (
            Precondition::Version(1),
            missing.clone(),
            ConflictReason::Missing,
        ),
    ];
    for (pre, bad, reason) in cases {
        let target = bad.id;
        let set = WriteSet::new()
            .delete_measurement(doomed.id, Precondition::Version(1))
            .put_subject(person.clone(), Precondition::Absent)
            .put_measurement(fresh.clone(), Precondition::Absent)
            .put_measurement(bad, pre)
            .put_measurement(after.clone(), Precondition::Any)
            .checkpoint(Checkpoint::new(&src, "must-not-be-saved"));
        let err = store
            .apply(&set)
            .await
            .expect_err("a set with a failed precondition must fail");
        let conflict = err
            .conflict()
            .unwrap_or_else(|| panic!("expected Error::PreconditionFailed, got {err}"));
        assert_eq!(conflict.record, RecordKey::Measurement(target), "{err}");
        assert_eq!(conflict.reason, reason, "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&target.to_string()),
            "the message names the record: {text}"
        );
        assert_eq!(
            store.get(&fresh.id).await.expect("get"),
            None,
            "{pre:?}: a measurement before the failure was written"
        );
        assert_eq!(
            store.get(&after.id).await.expect("get"),
            None,
            "{pre:?}: a measurement after the failure was written"
        );
        assert_eq!(
            store.get(&missing.id).await.expect("get"),
            None,
            "{pre:?}: the failing measurement was written"
        );
        assert_eq!(
            store.subject(&person.id).await.expect("subject"),
            None,
            "{pre:?}: the subject was written"
        );
        assert_eq!(
            store.checkpoint(&src).await.expect("checkpoint"),
            None,
            "{pre:?}: the checkpoint moved"
        );
        let kept = store.get_versioned(&doomed.id).await.expect("get");
        assert_eq!(
            kept.map(|v| (v.value, v.version)),
            Some((doomed.clone(), 1)),
            "{pre:?}: the deletion of a failed set was kept"
        );
        let kept = store.get_versioned(&existing.id).await.expect("get");
        assert_eq!(
            kept.map(|v| (v.value, v.version)),
            Some((existing.clone(), 1)),
            "{pre:?}: the record of the failed precondition changed"
        );
    }
    // A subject taking another subject's identifier fails the set too, naming the subject.
    let owner = Subject {
        other_ids: vec![Identifier::new("urn:kit:mrn", &subj)],
        ..Subject::new(Identifier::local(ns("set-owner")))
    };
    store
        .apply(&WriteSet::new().put_subject(owner.clone(), Precondition::Absent))
        .await
        .expect("owner");
    let thief = Subject {
        other_ids: owner.other_ids.clone(),
        ..Subject::new(Identifier::local(ns("set-thief")))
    };
    let err = store
        .apply(
            &WriteSet::new()
                .put_measurement(fresh.clone(), Precondition::Any)
                .put_subject(thief.clone(), Precondition::Any),
        )
        .await
        .expect_err("an identifier of another subject");
    let conflict = err
        .conflict()
        .unwrap_or_else(|| panic!("expected Error::PreconditionFailed, got {err}"));
    assert_eq!(
        conflict.record,
        RecordKey::Subject(thief.id.clone()),
        "{err}"
    );
    assert!(
        matches!(&conflict.reason, ConflictReason::IdentifierTaken { owner: o, .. } if *o == owner.id),
        "{err}"
    );
    assert_eq!(store.get(&fresh.id).await.expect("get"), None);
    assert_eq!(store.subject(&thief.id).await.expect("subject"), None);
    // The same set without the conflict commits whole.
    let applied = store
        .apply(
            &WriteSet::new()
                .put_subject(person.clone(), Precondition::Absent)
                .put_measurement(fresh.clone(), Precondition::Absent)
                .put_measurement(after.clone(), Precondition::Any)
                .checkpoint(Checkpoint::new(&src, "saved")),
        )
        .await
        .expect("a set whose preconditions hold");
    assert_eq!(applied.measurements.inserted, 2);
    assert_eq!(applied.subjects.inserted, 1);
    assert_eq!(applied.measurement_versions, vec![1, 1]);
    assert_eq!(applied.subject_versions, vec![1]);
    assert_eq!(
        store.get(&fresh.id).await.expect("get").as_ref(),
        Some(&fresh)
    );
    assert_eq!(
        store.subject(&person.id).await.expect("subject").as_ref(),
        Some(&person)
    );
    assert_eq!(
        store
            .checkpoint(&src)
            .await
            .expect("checkpoint")
            .map(|c| c.cursor),
        Some("saved".into())
    );
}

/// Versions start at 1, go up by one per changing write (whoever writes: a set, an upsert, a
/// subject put), stay on an identical write, and a deletion under a version check needs the
/// current one.
pub async fn versions_are_kept_by_the_store(store: &dyn WriteSetStore) {
    let (src, subj) = (ns("ver-src"), ns("ver-subj"));
    let m1 = heart_rate(&src, &subj, 0, 60);
    let version = |v: Option<crate::Versioned<Measurement>>| v.map(|v| v.version);
    store
        .write(std::slice::from_ref(&m1), None)
        .await
        .expect("write");
    assert_eq!(
        version(store.get_versioned(&m1.id).await.expect("get")),
        Some(1)
    );
    store
        .write(std::slice::from_ref(&m1), None)
        .await
        .expect("replay");
    assert_eq!(
        version(store.get_versioned(&m1.id).await.expect("get")),
        Some(1),
        "a replay changed the version"
    );
    let m2 = heart_rate(&src, &subj, 0, 61);
    let applied = store
        .apply(&WriteSet::new().put_measurement(m2.clone(), Precondition::Version(1)))
        .await
        .expect("update at version 1");
    assert_eq!(applied.measurement_versions, vec![2]);
    assert_eq!(applied.measurements.updated, 1);
    let got = store
        .get_versioned(&m2.id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!((got.value, got.version), (m2.clone(), 2));
    let m3 = heart_rate(&src, &subj, 0, 62);
    store
        .write(std::slice::from_ref(&m3), None)
        .await
        .expect("upsert");
    assert_eq!(
        version(store.get_versioned(&m3.id).await.expect("get")),
        Some(3),
        "an upsert did not bump"
    );
    let err = store
        .apply(&WriteSet::new().delete_measurement(m1.id, Precondition::Version(2)))
        .await
        .expect_err("a deletion at a stale version");
    assert!(
        matches!(
            err.conflict(),
            Some(Conflict {
                reason: ConflictReason::Version {
                    expected: 2,
                    found: 3
                },
                ..
            })
        ),
        "{err}"
    );
    let applied = store
        .apply(&WriteSet::new().delete_measurement(m1.id, Precondition::Version(3)))
        .await
        .expect("a deletion at the current version");
    assert_eq!(applied.deleted, 1);
    assert_eq!(store.get(&m1.id).await.expect("get"), None);
    let applied = store
        .apply(&WriteSet::new().put_measurement(m1.clone(), Precondition::Absent))
        .await
        .expect("written anew");
    assert_eq!(
        applied.measurement_versions,
        vec![1],
        "a record written anew starts at 1"
    );
    // Subjects the same way, found by any identifier.
    let alias = Identifier::new("urn:kit:mrn", &subj);
    let s1 = Subject {
        other_ids: vec![alias.clone()],
        ..Subject::new(Identifier::local(&subj))
    };
    store
        .put_subjects(std::slice::from_ref(&s1))
        .await
        .expect("put");
    let got = store
        .subject_versioned(&alias)
        .await
        .expect("subject")
        .expect("stored");
    assert_eq!((got.value, got.version), (s1.clone(), 1));
    store
        .put_subjects(std::slice::from_ref(&s1))
        .await
        .expect("replay");
    let s2 = Subject {
        gender: Some(Gender::Female),
        ..s1.clone()
    };
    let err = store
        .apply(&WriteSet::new().put_subject(s2.clone(), Precondition::Version(2)))
        .await
        .expect_err("a subject at a version it is not at");
    assert!(
        matches!(err.conflict(), Some(Conflict { record: RecordKey::Subject(id), reason: ConflictReason::Version { expected: 2, found: 1 } }) if *id == s1.id),
        "{err}"
    );
    let applied = store
        .apply(&WriteSet::new().put_subject(s2.clone(), Precondition::Version(1)))
        .await
        .expect("subject update");
    assert_eq!(applied.subject_versions, vec![2]);
    let got = store
        .subject_versioned(&s1.id)
        .await
        .expect("subject")
        .expect("stored");
    assert_eq!((got.value, got.version), (s2, 2));
    assert_eq!(
        store
            .subject_versioned(&Identifier::local(ns("nobody")))
            .await
            .expect("subject"),
        None
    );
    assert_eq!(
        store
            .get_versioned(&heart_rate(&src, &subj, 5, 1).id)
            .await
            .expect("get"),
        None
    );
}

/// Polls `fut` once, with a waker that does nothing.
fn poll_once<F: std::future::Future + ?Sized>(fut: std::pin::Pin<&mut F>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    fut.poll(&mut cx).is_ready()
}

/// A write set future dropped after 0, 1, 2 … polls (wherever that leaves it: queued, in the
/// middle of its transaction, committing) leaves all of the set or none of it.
pub async fn a_dropped_write_set_commits_all_or_none(store: &dyn WriteSetStore) {
    let (src, subj) = (ns("drop-src"), ns("drop-subj"));
    let mut sets = Vec::new();
    for polls in 0..24usize {
        let batch: Vec<Measurement> = (0..50)
            .map(|i| heart_rate(&src, &subj, (polls * 100 + i) as i64, 70))
            .collect();
        let cursor = format!("after-{polls}");
        let mut set = WriteSet::batch(
            &batch,
            Some(&Checkpoint::new(format!("{src}-{polls}"), &cursor)),
        );
        set.subjects.push(crate::SubjectWrite {
            subject: Subject::new(Identifier::local(format!("{subj}-{polls}"))),
            precondition: Precondition::Absent,
        });
        {
            let mut fut = store.apply(&set);
            for _ in 0..polls {
                if poll_once(fut.as_mut()) {
                    break;
                }
                // Give threads and sockets a moment between polls.
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
        sets.push((polls, batch, set));
    }
    // Whatever a dropped future left running has finished once a later write has committed
    // (stores commit in order) and a moment has passed.
    for _ in 0..3 {
        store
            .apply(&WriteSet::new().checkpoint(Checkpoint::new(ns("drop-fence"), "x")))
            .await
            .expect("a later write");
    }
    for (polls, batch, set) in &sets {
        let mut present = 0;
        for m in batch {
            present += usize::from(store.get(&m.id).await.expect("get").is_some());
        }
        let cp = store
            .checkpoint(
                &set.checkpoint
                    .as_ref()
                    .map(|c| c.source_id.clone())
                    .unwrap_or_default(),
            )
            .await
            .expect("checkpoint");
        let subject = store
            .subject(&set.subjects[0].subject.id)
            .await
            .expect("subject");
        let all = present == batch.len() && cp.is_some() && subject.is_some();
        let none = present == 0 && cp.is_none() && subject.is_none();
        assert!(
            all || none,
            "a write set dropped after {polls} polls left part of itself: {present} of {} measurements, checkpoint {}, subject {}",
            batch.len(),
            if cp.is_some() { "saved" } else { "not saved" },
            if subject.is_some() {
                "stored"
            } else {
                "absent"
            },
        );
    }
}

/// Polls several futures together in this task until all are done (the kit needs no runtime
/// of its own).
async fn join_all<'a, T>(
    futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>>,
) -> Vec<T> {
    let mut futs: Vec<Option<std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>>> =
        futs.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, res) in futs.iter_mut().zip(out.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *res = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Sets written at once, every other one with a failing precondition: each good set commits and
/// each bad one fails alone (a store that commits sets together keeps their outcomes apart).
pub async fn a_conflict_never_fails_another_set(store: &dyn WriteSetStore) {
    let (src, subj) = (ns("group-src"), ns("group-subj"));
    let taken = heart_rate(&src, &subj, 10_000, 60);
    store
        .write(std::slice::from_ref(&taken), None)
        .await
        .expect("write");
    let mut futs = Vec::new();
    let mut expect = Vec::new();
    for i in 0..32i64 {
        let good = i % 2 == 0;
        let mut set =
            WriteSet::new().put_measurement(heart_rate(&src, &subj, i, 70), Precondition::Absent);
        if !good {
            set = set.put_measurement(taken.clone(), Precondition::Absent);
        }
        expect.push((good, heart_rate(&src, &subj, i, 70).id));
        futs.push(Box::pin(async move { store.apply(&set).await })
            as std::pin::Pin<
                Box<dyn std::future::Future<Output = crate::Result<crate::Applied>> + Send + '_>,
            >);
    }
    let results = join_all(futs).await;
    for ((good, id), r) in expect.iter().zip(results) {
        match (good, r) {
            (true, Ok(_)) => {}
            (true, Err(e)) => panic!("a good set failed beside conflicting ones: {e}"),
            (false, Err(e)) if e.conflict().is_some() => {}
            (false, Err(e)) => panic!("a conflicting set failed with something else: {e}"),
            (false, Ok(_)) => panic!("a set whose record exists was created again"),
        }
        let present = store.get(id).await.expect("get").is_some();
        assert_eq!(present, *good, "measurement {id}");
    }
}

/// `tasks` tasks (spread over the handles) read a record's version and write it back at that
/// version, again and again for `duration`: the final version is one more than the successful
/// writes, and no two writes succeeded on the same version.
pub async fn concurrent_compare_and_set_loses_nothing(
    handles: &[&dyn WriteSetStore],
    tasks: usize,
    duration: std::time::Duration,
) {
    let (src, subj) = (ns("cas-src"), ns("cas-subj"));
    let first = heart_rate(&src, &subj, 0, 40);
    handles[0]
        .apply(&WriteSet::new().put_measurement(first.clone(), Precondition::Absent))
        .await
        .expect("create");
    let deadline = std::time::Instant::now() + duration;
    let mut futs = Vec::new();
    for t in 0..tasks {
        let store = handles[t % handles.len()];
        let (src, subj) = (src.clone(), subj.clone());
        futs.push(Box::pin(async move {
            let mut won: Vec<u64> = Vec::new();
            let mut lost = 0u64;
            let mut n = 0i64;
            while std::time::Instant::now() < deadline {
                let current = store
                    .get_versioned(&first_id(&src, &subj))
                    .await
                    .expect("get")
                    .expect("the record exists");
                n += 1;
                let next = heart_rate(&src, &subj, 0, 40 + (t as i64 * 1000 + n) % 200);
                match store
                    .apply(
                        &WriteSet::new()
                            .put_measurement(next, Precondition::Version(current.version)),
                    )
                    .await
                {
                    Ok(applied) => {
                        let v = applied.measurement_versions.first().copied().unwrap_or(0);
                        // An identical value would leave the version; values vary per write.
                        assert!(
                            v == current.version + 1 || v == current.version,
                            "a write at version {} left version {v}",
                            current.version
                        );
                        if v == current.version + 1 {
                            won.push(v);
                        }
                    }
                    Err(e) if e.conflict().is_some() => lost += 1,
                    Err(e) if e.is_retryable() => lost += 1,
                    Err(e) => panic!("compare-and-set failed with {e}"),
                }
                // Let the other tasks of this thread run (a store that answers at once would
                // otherwise never interleave them).
                yield_now().await;
            }
            (won, lost)
        })
            as std::pin::Pin<
                Box<dyn std::future::Future<Output = (Vec<u64>, u64)> + Send + '_>,
            >);
    }
    let results = join_all(futs).await;
    let mut won: Vec<u64> = results
        .iter()
        .flat_map(|(w, _)| w.iter().copied())
        .collect();
    let lost: u64 = results.iter().map(|(_, l)| l).sum();
    let last = handles[0]
        .get_versioned(&first.id)
        .await
        .expect("get")
        .expect("stored")
        .version;
    won.sort_unstable();
    let n = won.len();
    won.dedup();
    assert_eq!(won.len(), n, "two writes succeeded on the same version");
    assert_eq!(
        last,
        1 + n as u64,
        "lost updates: {n} compare-and-set writes succeeded ({lost} lost the race), but the record is at version {last}"
    );
    assert!(n > 0, "no compare-and-set write succeeded in {duration:?}");
}

fn first_id(src: &str, subj: &str) -> MeasurementId {
    heart_rate(src, subj, 0, 0).id
}

/// A future that is pending once, so that other futures polled by the same task run (for a
/// store under test that wants to give way between two steps, as a real one waits on I/O).
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

/// `tasks` concurrent creates of one measurement id, and of subjects sharing one identifier:
/// exactly one of each succeeds; every other one fails with a conflict naming the record.
pub async fn concurrent_conditional_creates_make_one_record(
    handles: &[&dyn WriteSetStore],
    tasks: usize,
) {
    let (src, subj) = (ns("once-src"), ns("once-subj"));
    let shared = Identifier::new("urn:kit:mrn", ns("once-shared"));
    let m = heart_rate(&src, &subj, 0, 70);
    let mut futs = Vec::new();
    for t in 0..tasks {
        let store = handles[t % handles.len()];
        let mut mine = m.clone();
        mine.value = Value::quantity((60 + t as i64).into(), "/min");
        let person = Subject {
            other_ids: vec![shared.clone()],
            ..Subject::new(Identifier::local(format!("{subj}-{t}")))
        };
        futs.push(Box::pin(async move {
            let a = store
                .apply(&WriteSet::new().put_measurement(mine, Precondition::Absent))
                .await;
            let b = store
                .apply(&WriteSet::new().put_subject(person, Precondition::Absent))
                .await;
            (a, b)
        })
            as std::pin::Pin<
                Box<
                    dyn std::future::Future<
                            Output = (crate::Result<crate::Applied>, crate::Result<crate::Applied>),
                        > + Send
                        + '_,
                >,
            >);
    }
    let results = join_all(futs).await;
    let mut measurement_wins = 0;
    let mut subject_wins = 0;
    for (a, b) in results {
        match a {
            Ok(_) => measurement_wins += 1,
            Err(e) => assert!(
                matches!(e.conflict(), Some(Conflict { record: RecordKey::Measurement(id), reason: ConflictReason::Exists { .. } }) if *id == m.id),
                "a losing create failed with something else: {e}"
            ),
        }
        match b {
            Ok(_) => subject_wins += 1,
            Err(e) => assert!(
                matches!(
                    e.conflict(),
                    Some(Conflict {
                        reason: ConflictReason::IdentifierTaken { .. },
                        ..
                    })
                ),
                "a losing subject create failed with something else: {e}"
            ),
        }
    }
    assert_eq!(
        measurement_wins, 1,
        "{measurement_wins} concurrent creates of one measurement succeeded"
    );
    assert_eq!(
        subject_wins, 1,
        "{subject_wins} subjects were created with one shared identifier"
    );
    let holder = handles[0].subject(&shared).await.expect("subject");
    assert!(holder.is_some(), "the winning subject holds the identifier");
}

/// Records as a build before store-kept versions wrote them (ADR 0007), for a store's migration
/// test: write them with the old schema, migrate, then call [`migrated_versions_are_kept`].
/// One measurement written through the FHIR API at version 4 (its kept resource says so), two
/// without a version (no payload; a payload that is not JSON), and a subject at version 9.
#[derive(Debug, Clone)]
pub struct LegacyRecords {
    /// The measurements, each with the version it must have after the migration.
    pub measurements: Vec<(Measurement, u64)>,
    /// The subject, with the version it must have after the migration.
    pub subject: (Subject, u64),
}

/// The records of [`LegacyRecords`].
pub fn legacy_records() -> LegacyRecords {
    use healthanalyzer_model::Payload;
    let mut api = heart_rate("fhir-api", "p", 1, 61);
    api.provenance.payload = Some(Payload {
        media_type: "application/fhir+json".into(),
        content: r#"{"resourceType":"Observation","meta":{"versionId":"4"}}"#.into(),
    });
    let plain = heart_rate("src", "p", 2, 62);
    let mut not_json = heart_rate("src", "p", 3, 63);
    not_json.provenance.payload = Some(Payload {
        media_type: "text/csv".into(),
        content: "versionId,7".into(),
    });
    let subject = Subject {
        payload: Some(Payload {
            media_type: "application/fhir+json".into(),
            content: r#"{"resourceType":"Patient","meta":{"versionId":"9"}}"#.into(),
        }),
        ..Subject::new(Identifier::local("p"))
    };
    LegacyRecords {
        measurements: vec![(api, 4), (plain, 1), (not_json, 1)],
        subject: (subject, 9),
    }
}

/// After a migration, every record of [`legacy_records`] reads back whole at its version.
pub async fn migrated_versions_are_kept(store: &dyn WriteSetStore) {
    let legacy = legacy_records();
    for (m, version) in &legacy.measurements {
        let got = store.get_versioned(&m.id).await.expect("get");
        assert_eq!(
            got.map(|v| (v.value, v.version)),
            Some((m.clone(), *version)),
            "measurement {} after the migration",
            m.id
        );
    }
    let (subject, version) = &legacy.subject;
    let got = store.subject_versioned(&subject.id).await.expect("subject");
    assert_eq!(
        got.map(|v| (v.value, v.version)),
        Some((subject.clone(), *version)),
        "the subject after the migration"
    );
}

// Documents

/// Runs every check of documents ([`WriteSetStore::document`], [`WriteSetStore::find_documents`]
/// and documents in write sets). `handles` as for [`run_write_set_checks`]: the first is the store,
/// the others more handles on the same database.
pub async fn run_document_checks(handles: &[&dyn WriteSetStore]) {
    let store = handles[0];
    documents_read_back_exactly(store).await;
    documents_are_found_by_keys_and_period(store).await;
    a_failed_document_fails_the_whole_set(store).await;
    documents_are_deleted(store).await;
    document_versions_are_kept_by_the_store(store).await;
    concurrent_document_creates_make_one(handles, 16).await;
}

/// A resource type no other check (or data already in a shared database) uses: letters and
/// digits only, as a FHIR type.
fn doc_type() -> String {
    ns("doc")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .replacen("kitdoc", "KitDoc", 1)
}

fn at(minutes: i64) -> Timestamp {
    base() + SignedDuration::from_mins(minutes)
}

fn doc(resource_type: &str, id: &str, keys: &[&str], span: Option<(i64, i64)>) -> Document {
    let mut d = Document::new(
        resource_type,
        id,
        format!(r#"{{"resourceType":"{resource_type}","id":"{id}"}}"#),
    );
    d.keys = keys.iter().map(|k| k.to_string()).collect();
    if let Some((s, e)) = span {
        d = d.span(at(s), at(e));
    }
    d
}

async fn create_documents(store: &dyn WriteSetStore, docs: &[Document]) {
    let mut set = WriteSet::new();
    for d in docs {
        set = set.put_document(d.clone(), Precondition::Absent);
    }
    let applied = store.apply(&set).await.expect("creates of new documents");
    assert_eq!(
        applied.document_versions,
        vec![1; docs.len()],
        "new documents start at version 1"
    );
    assert_eq!(applied.documents.inserted, docs.len() as u64);
}

/// A search case: what it tests, keys, from, to, and the ids expected in order.
type SearchCase<'a> = (
    &'a str,
    Vec<&'a str>,
    Option<Timestamp>,
    Option<Timestamp>,
    Vec<&'a str>,
);

fn ids(found: &[crate::Versioned<Document>]) -> Vec<&str> {
    found.iter().map(|v| v.value.id.as_str()).collect()
}

/// A document reads back exactly as written: the body byte for byte (whitespace, escapes,
/// characters outside ASCII, a large body), the keys in their order, the span to the
/// nanosecond; a document of another type with the same id is another record.
pub async fn documents_read_back_exactly(store: &dyn WriteSetStore) {
    let ty = doc_type();
    let other = format!("{ty}Other");
    let body = "{ \"resourceType\" : \"Provenance\",\n\t\"id\":\"a\", \"note\": \"\\u00e6\\\"x\\\" æøå 🩺\",\"n\":1.50 }  ";
    let mut written = Document::new(&ty, "a", body)
        .key("patient|Patient/kit-1")
        .key("episode-of-care|EpisodeOfCare/kit-2")
        .key("patient|Patient/kit-1");
    written.start = Some(at(0) + SignedDuration::from_nanos(123_456_789));
    written.end = Some(at(90) + SignedDuration::from_nanos(1));
    let large = Document::new(
        &ty,
        "large",
        format!(
            r#"{{"resourceType":"Media","content":{{"data":"{}"}}}}"#,
            "QUJD".repeat(64 * 1024)
        ),
    );
    let mut start_only = doc(&ty, "start-only", &[], None);
    start_only.start = Some(at(5));
    let mut end_only = doc(&ty, "end-only", &[], None);
    end_only.end = Some(at(6));
    let twin = Document::new(&other, "a", "{}");
    create_documents(
        store,
        &[
            written.clone(),
            large.clone(),
            start_only.clone(),
            end_only.clone(),
            twin.clone(),
        ],
    )
    .await;
    for want in [&written, &large, &start_only, &end_only, &twin] {
        let got = store
            .document(&want.resource_type, &want.id)
            .await
            .expect("document")
            .unwrap_or_else(|| panic!("document {} was not stored", want.id));
        assert_eq!(got.version, 1);
        assert_eq!(
            got.value.body.as_bytes(),
            want.body.as_bytes(),
            "document {}/{}: the body did not read back byte for byte",
            want.resource_type,
            want.id
        );
        assert_eq!(
            &got.value, want,
            "document {}/{} read back differs",
            want.resource_type, want.id
        );
    }
    assert_eq!(
        store.document(&ty, "missing").await.expect("document"),
        None,
        "a document never written was found"
    );
    assert_eq!(
        store.document(&other, "large").await.expect("document"),
        None,
        "a document was found under another resource type"
    );
}

/// [`WriteSetStore::find_documents`]: only the type asked for; every key must match (AND);
/// spans overlap the period with both bounds inclusive, to the nanosecond; documents without a
/// span only when there are no bounds; results ordered (spanless, start, id) and cut at the
/// limit; a rewritten document is found by its new keys only, a deleted one not at all.
pub async fn documents_are_found_by_keys_and_period(store: &dyn WriteSetStore) {
    let ty = doc_type();
    let (p, e, e2) = (ns("patient|Patient/"), ns("eoc|EpisodeOfCare/"), ns("eoc|"));
    let (p, e, e2) = (p.as_str(), e.as_str(), e2.as_str());
    let mut b = doc(&ty, "b", &[p], None);
    b.start = Some(at(5)); // an instant, by its start alone
    let docs = vec![
        doc(&ty, "a", &[p, e], Some((0, 10))),
        b,
        doc(&ty, "c", &[e, p], Some((20, 30))),
        doc(&ty, "d", &[p], None),
        doc(&ty, "e", &[p, e2], Some((20, 25))),
        doc(&ty, "f", &[e], Some((0, 100))),
        // Same keys, another type: never found by a search of `ty`.
        doc(&format!("{ty}Other"), "a", &[p, e], Some((0, 100))),
    ];
    create_documents(store, &docs).await;
    let find = |keys: &[&str], from: Option<Timestamp>, to: Option<Timestamp>, limit: usize| {
        let mut q = DocumentQuery::new(&ty, limit).period(from, to);
        q.keys = keys.iter().map(|k| k.to_string()).collect();
        async move { store.find_documents(&q).await.expect("find_documents") }
    };
    let ns1 = SignedDuration::from_nanos(1);
    let nobody = ns("nobody|");
    let cases: Vec<SearchCase<'_>> = vec![
        (
            "one key, no period",
            vec![p],
            None,
            None,
            vec!["d", "a", "b", "c", "e"],
        ),
        ("two keys", vec![p, e], None, None, vec!["a", "c"]),
        (
            "two keys, given the other way",
            vec![e, p],
            None,
            None,
            vec!["a", "c"],
        ),
        (
            "no keys",
            vec![],
            None,
            None,
            vec!["d", "a", "f", "b", "c", "e"],
        ),
        (
            "a key nobody has",
            vec![nobody.as_str()],
            None,
            None,
            vec![],
        ),
        (
            "both bounds on span ends",
            vec![p],
            Some(at(10)),
            Some(at(20)),
            vec!["a", "c", "e"],
        ),
        (
            "between spans",
            vec![p],
            Some(at(10) + ns1),
            Some(at(20) - ns1),
            vec![],
        ),
        (
            "an instant inside",
            vec![p],
            Some(at(5)),
            Some(at(5)),
            vec!["a", "b"],
        ),
        ("from alone", vec![p], Some(at(26)), None, vec!["c"]),
        (
            "from alone, on an end",
            vec![p],
            Some(at(25)),
            None,
            vec!["c", "e"],
        ),
        ("to alone", vec![p], None, Some(at(4)), vec!["a"]),
        (
            "to alone, on a start",
            vec![p],
            None,
            Some(at(5)),
            vec!["a", "b"],
        ),
        ("keys and period", vec![p, e], Some(at(11)), None, vec!["c"]),
        ("after everything", vec![p], Some(at(31)), None, vec![]),
    ];
    for (what, keys, from, to, want) in cases {
        let got = find(&keys, from, to, 100).await;
        assert_eq!(ids(&got), want, "find_documents: {what}");
        assert!(
            got.iter()
                .all(|v| v.value.resource_type == ty && v.version == 1),
            "find_documents: {what}: another type or a wrong version"
        );
    }
    let got = find(&[p], None, None, 2).await;
    assert_eq!(
        ids(&got),
        vec!["d", "a"],
        "the limit keeps the first in order"
    );
    assert!(find(&[p], None, None, 0).await.is_empty(), "limit 0");
    let got = find(&[e], Some(at(0)), None, 1).await;
    assert_eq!(ids(&got), vec!["a"], "equal starts are ordered by id");
    // By byte, not by a locale's collation: "Y" (0x59) before "x" (0x78) before "é".
    let tie = ns("tie|");
    create_documents(
        store,
        &[
            doc(&ty, "x", &[&tie], Some((60, 61))),
            doc(&ty, "é", &[&tie], Some((60, 60))),
            doc(&ty, "Y", &[&tie], Some((60, 62))),
        ],
    )
    .await;
    assert_eq!(
        ids(&find(&[&tie], None, None, 100).await),
        vec!["Y", "x", "é"],
        "ids of equal starts in byte order"
    );
    let got = find(&[p], None, None, 100).await;
    assert_eq!(
        got.iter()
            .find(|v| v.value.id == "a")
            .map(|v| v.value.clone()),
        Some(docs[0].clone()),
        "a search returns the document as written"
    );
    // Rewritten with other keys and span: found by the new ones only.
    let moved = doc(&ty, "a", &[e2], Some((40, 50)));
    store
        .apply(&WriteSet::new().put_document(moved.clone(), Precondition::Version(1)))
        .await
        .expect("rewrite");
    assert_eq!(
        ids(&find(&[p, e], None, None, 100).await),
        vec!["c"],
        "old keys"
    );
    assert_eq!(
        ids(&find(&[e2], Some(at(45)), None, 100).await),
        vec!["a"],
        "new keys and span"
    );
    assert!(
        find(&[e2], Some(at(0)), Some(at(10)), 100)
            .await
            .iter()
            .all(|v| v.value.id != "a"),
        "found by its old span"
    );
    store
        .apply(&WriteSet::new().delete_document(&ty, "c", Precondition::Version(1)))
        .await
        .expect("delete");
    assert_eq!(
        ids(&find(&[p], None, None, 100).await),
        vec!["d", "b", "e"],
        "after a rewrite and a deletion"
    );
}

/// A write set whose document precondition fails (after measurements, a subject, other
/// documents and a document deletion in the same set) writes nothing, and the conflict names
/// the document.
pub async fn a_failed_document_fails_the_whole_set(store: &dyn WriteSetStore) {
    let ty = doc_type();
    let (src, subj) = (ns("docset-src"), ns("docset-subj"));
    let key = ns("patient|");
    let existing = doc(&ty, "existing", &[&key], Some((0, 1)));
    let doomed = doc(&ty, "doomed", &[&key], None);
    create_documents(store, &[existing.clone(), doomed.clone()]).await;
    let m1 = heart_rate(&src, &subj, 0, 60);
    let m2 = heart_rate(&src, &subj, 1, 61);
    let person = Subject::new(Identifier::local(&subj));
    let fresh = doc(&ty, "fresh", &[&key], Some((0, 1)));
    let changed = doc(&ty, "existing", &[&key, "changed"], Some((0, 1)));
    let cases = [
        (Precondition::Absent, ConflictReason::Exists { version: 1 }),
        (
            Precondition::Version(7),
            ConflictReason::Version {
                expected: 7,
                found: 1,
            },
        ),
    ];
    for (pre, reason) in cases {
        let set = WriteSet::new()
            .delete_document(&ty, "doomed", Precondition::Version(1))
            .put_subject(person.clone(), Precondition::Absent)
            .put_measurement(m1.clone(), Precondition::Absent)
            .put_measurement(m2.clone(), Precondition::Any)
            .put_document(fresh.clone(), Precondition::Absent)
            .put_document(changed.clone(), pre)
            .checkpoint(Checkpoint::new(&src, "must-not-be-saved"));
        let err = store
            .apply(&set)
            .await
            .expect_err("a set whose document precondition fails");
        let conflict = err
            .conflict()
            .unwrap_or_else(|| panic!("not a precondition failure: {err}"));
        assert_eq!(
            conflict.record,
            RecordKey::document(&ty, "existing"),
            "the conflict names another record"
        );
        assert_eq!(conflict.reason, reason);
        let text = conflict.to_string();
        assert!(
            text.contains(&format!("{ty}/existing")),
            "the message does not name the document: {text}"
        );
        for m in [&m1, &m2] {
            assert_eq!(
                store.get(&m.id).await.expect("get"),
                None,
                "a measurement of the failed set was written"
            );
        }
        assert_eq!(store.subject(&person.id).await.expect("subject"), None);
        assert_eq!(store.checkpoint(&src).await.expect("checkpoint"), None);
        assert_eq!(
            store.document(&ty, "fresh").await.expect("document"),
            None,
            "a document of the failed set was written"
        );
        let kept = store.document(&ty, "existing").await.expect("document");
        assert_eq!(
            kept.map(|v| (v.value, v.version)),
            Some((existing.clone(), 1))
        );
        let kept = store.document(&ty, "doomed").await.expect("document");
        assert_eq!(
            kept.map(|v| v.version),
            Some(1),
            "the deletion of the failed set was kept"
        );
        let found = store
            .find_documents(&DocumentQuery::new(&ty, 10).key(&key))
            .await
            .expect("find_documents");
        assert_eq!(
            ids(&found),
            vec!["doomed", "existing"],
            "the index of the failed set"
        );
    }
    // A failing measurement fails the documents beside it too.
    store
        .write(std::slice::from_ref(&m1), None)
        .await
        .expect("write");
    let set = WriteSet::new()
        .put_document(fresh.clone(), Precondition::Absent)
        .put_measurement(m1.clone(), Precondition::Absent);
    let err = store
        .apply(&set)
        .await
        .expect_err("an existing measurement");
    assert!(
        matches!(err.conflict(), Some(Conflict { record: RecordKey::Measurement(id), .. }) if *id == m1.id),
        "{err}"
    );
    assert_eq!(store.document(&ty, "fresh").await.expect("document"), None);
}

/// Deleting a document: under [`Precondition::Any`] whether or not it exists, under a version
/// only at that version; it is gone from reads and searches; written anew it starts at 1.
pub async fn documents_are_deleted(store: &dyn WriteSetStore) {
    let ty = doc_type();
    let key = ns("patient|");
    let d = doc(&ty, "x", &[&key], Some((0, 1)));
    create_documents(store, std::slice::from_ref(&d)).await;
    let applied = store
        .apply(&WriteSet::new().delete_document(&ty, "never-written", Precondition::Any))
        .await
        .expect("a deletion of nothing");
    assert_eq!(applied.deleted, 0);
    let err = store
        .apply(&WriteSet::new().delete_document(&ty, "never-written", Precondition::Version(1)))
        .await
        .expect_err("a versioned deletion of nothing");
    assert!(
        matches!(
            err.conflict(),
            Some(Conflict {
                reason: ConflictReason::Missing,
                ..
            })
        ),
        "{err}"
    );
    let err = store
        .apply(&WriteSet::new().delete_document(&ty, "x", Precondition::Absent))
        .await
        .expect_err("a deletion that needs it absent");
    assert!(
        matches!(
            err.conflict(),
            Some(Conflict {
                reason: ConflictReason::Exists { version: 1 },
                ..
            })
        ),
        "{err}"
    );
    let applied = store
        .apply(&WriteSet::new().delete_document(&ty, "x", Precondition::Any))
        .await
        .expect("delete");
    assert_eq!(applied.deleted, 1);
    assert_eq!(store.document(&ty, "x").await.expect("document"), None);
    assert!(
        store
            .find_documents(&DocumentQuery::new(&ty, 10).key(&key))
            .await
            .expect("find_documents")
            .is_empty(),
        "a deleted document was found"
    );
    let applied = store
        .apply(&WriteSet::new().put_document(d.clone(), Precondition::Absent))
        .await
        .expect("written anew");
    assert_eq!(
        applied.document_versions,
        vec![1],
        "written anew starts at 1"
    );
    // A set may delete a document and create it anew.
    let again = doc(&ty, "x", &[&key, "again"], None);
    let applied = store
        .apply(
            &WriteSet::new()
                .delete_document(&ty, "x", Precondition::Version(1))
                .put_document(again.clone(), Precondition::Absent),
        )
        .await
        .expect("delete and create in one set");
    assert_eq!((applied.deleted, applied.document_versions), (1, vec![1]));
    let got = store.document(&ty, "x").await.expect("document");
    assert_eq!(got.map(|v| v.value), Some(again));
}

/// Document versions: 1 when created, unchanged by an identical write, one more for each write
/// that changes any field (the body, a key, the span); preconditions checked as for
/// measurements.
pub async fn document_versions_are_kept_by_the_store(store: &dyn WriteSetStore) {
    let ty = doc_type();
    let v1 = doc(&ty, "v", &["k1"], Some((0, 1)));
    let put = |d: &Document, pre: Precondition| {
        let set = WriteSet::new().put_document(d.clone(), pre);
        async move { store.apply(&set).await }
    };
    let a = put(&v1, Precondition::Any)
        .await
        .expect("upsert of a new document");
    assert_eq!((a.documents.inserted, a.document_versions), (1, vec![1]));
    let a = put(&v1, Precondition::Any).await.expect("replay");
    assert_eq!(
        (a.documents.unchanged, a.document_versions),
        (1, vec![1]),
        "an identical write changed the version"
    );
    let a = put(&v1, Precondition::Version(1))
        .await
        .expect("identical at version 1");
    assert_eq!(a.document_versions, vec![1]);
    let mut body = v1.clone();
    body.body.push(' ');
    let mut keys = body.clone();
    keys.keys.push("k2".into());
    let mut span = keys.clone();
    span.end = Some(at(2));
    let mut version = 1;
    for (what, next) in [("body", &body), ("keys", &keys), ("span", &span)] {
        let a = put(next, Precondition::Version(version))
            .await
            .unwrap_or_else(|e| panic!("update of the {what}: {e}"));
        version += 1;
        assert_eq!(
            (a.documents.updated, a.document_versions.clone()),
            (1, vec![version]),
            "a changed {what} did not bump the version"
        );
        let got = store
            .document(&ty, "v")
            .await
            .expect("document")
            .expect("stored");
        assert_eq!((&got.value, got.version), (next, version));
    }
    let err = put(&v1, Precondition::Version(1)).await.expect_err("stale");
    assert!(
        matches!(err.conflict(), Some(Conflict { record, reason: ConflictReason::Version { expected: 1, found: 4 } }) if *record == RecordKey::document(&ty, "v")),
        "{err}"
    );
    let err = put(&v1, Precondition::Absent).await.expect_err("exists");
    assert!(
        matches!(
            err.conflict(),
            Some(Conflict {
                reason: ConflictReason::Exists { version: 4 },
                ..
            })
        ),
        "{err}"
    );
    let err = put(&doc(&ty, "w", &[], None), Precondition::Version(1))
        .await
        .expect_err("missing");
    assert!(
        matches!(
            err.conflict(),
            Some(Conflict {
                reason: ConflictReason::Missing,
                ..
            })
        ),
        "{err}"
    );
    let a = put(&v1, Precondition::Any).await.expect("upsert back");
    assert_eq!(a.document_versions, vec![5], "an upsert that changes bumps");
    assert_eq!(
        store.document(&ty, "w").await.expect("document"),
        None,
        "a failed write left a document"
    );
    // Refused before anything is written: what no store can keep.
    for bad in [
        doc("", "x", &[], None),
        doc("Not a type", "x", &[], None),
        doc(&ty, "", &[], None),
        Document::new(&ty, "x", "{\"a\":\"\0\"}"),
        doc(&ty, "x", &[], Some((10, 9))),
    ] {
        let err = put(&bad, Precondition::Any)
            .await
            .expect_err("a bad document");
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }
    assert_eq!(store.document(&ty, "x").await.expect("document"), None);
}

/// `tasks` concurrent creates of one document (spread over the handles, as processes would be):
/// exactly one succeeds; every other one fails with a conflict naming the document.
pub async fn concurrent_document_creates_make_one(handles: &[&dyn WriteSetStore], tasks: usize) {
    let ty = doc_type();
    let mut futs = Vec::new();
    for t in 0..tasks {
        let store = handles[t % handles.len()];
        let mine = Document::new(&ty, "once", format!("{{\"task\":{t}}}")).key("k");
        futs.push(Box::pin(async move {
            store
                .apply(&WriteSet::new().put_document(mine, Precondition::Absent))
                .await
        })
            as std::pin::Pin<
                Box<dyn std::future::Future<Output = crate::Result<crate::Applied>> + Send + '_>,
            >);
    }
    let mut wins = 0;
    for r in join_all(futs).await {
        match r {
            Ok(_) => wins += 1,
            Err(e) => assert!(
                matches!(e.conflict(), Some(Conflict { record, reason: ConflictReason::Exists { .. } }) if *record == RecordKey::document(&ty, "once")),
                "a losing create failed with something else: {e}"
            ),
        }
    }
    assert_eq!(
        wins, 1,
        "{wins} concurrent creates of one document succeeded"
    );
    let got = handles[0].document(&ty, "once").await.expect("document");
    assert_eq!(got.map(|v| v.version), Some(1));
}
