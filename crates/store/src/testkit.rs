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

use crate::{
    Checkpoint, Error, Filter, MeasurementStore, MeasurementStoreExt, Order, PageToken, Query,
    SortKey, SubjectStore,
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
    }
    let subjects = store.subjects().await.expect("subjects");
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
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
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
