//! `query_with_total` answers a bounded page and its total on the calling thread, counting at
//! most a capped number of matches there and going to the blocking pool beyond it. Whichever
//! way a search goes, its total is the filter's count and its page is the page `query` gives,
//! at every size around the cut points (a page holding every match, the page size, the cap).

use std::ops::Bound;

use healthanalyzer_model::Measurement;
use healthanalyzer_store::{Filter, MeasurementStore, Order, Query, testkit};
use healthanalyzer_store_sqlite::SqliteStore;

/// More rows than the inline count's cap (2,000).
const ROWS: i64 = 2_150;

fn ids(items: &[Measurement]) -> Vec<String> {
    items.iter().map(|m| m.id.as_uuid().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_are_exact_on_both_sides_of_the_inline_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("totals.db"))
        .await
        .expect("open");
    let mine: Vec<Measurement> = (0..ROWS)
        .map(|i| testkit::heart_rate("src", "p1", i, 60 + i % 40))
        .collect();
    // Another subject's rows in the same time range, which no count may include.
    let theirs: Vec<Measurement> = (0..300)
        .map(|i| testkit::heart_rate("other-src", "p2", i, 70))
        .collect();
    store.write(&mine, None).await.expect("write p1");
    store.write(&theirs, None).await.expect("write p2");
    let subject = mine[0].subject.clone();
    let kind = mine[0].kind.clone();
    for n in [0, 1, 49, 50, 51, 120, 1_999, 2_000, 2_001, ROWS] {
        // The first `n` of p1's rows: effective times strictly before row `n`'s.
        let to = match mine.get(usize::try_from(n).expect("n")) {
            Some(m) => Bound::Excluded(m.effective.instant()),
            None => Bound::Unbounded,
        };
        for filter in [
            Filter::subject(subject.clone()).between(Bound::Unbounded, to),
            Filter::subject(subject.clone())
                .kinds([kind.clone()])
                .between(Bound::Unbounded, to),
        ] {
            for order in [Order::Ascending, Order::Descending] {
                let count = store.count(&filter).await.expect("count");
                assert_eq!(count, u64::try_from(n).expect("n"), "count of {n}");
                let mut q = Query::new(filter.clone(), 50).order(order);
                // The first page, then one later page (whose total is still the filter's).
                for page_no in 0..2 {
                    let plain = store.query(&q).await.expect("query");
                    let (page, total) = store.query_with_total(&q).await.expect("with total");
                    assert_eq!(
                        total, count,
                        "{n} matches, {order:?}, page {page_no}: total"
                    );
                    assert_eq!(
                        ids(&page.items),
                        ids(&plain.items),
                        "{n} matches, {order:?}, page {page_no}: the page"
                    );
                    assert_eq!(page.next.is_some(), plain.next.is_some());
                    assert!(page.items.iter().all(|m| m.subject == subject));
                    let Some(next) = page.next else { break };
                    q.page = Some(next);
                }
            }
        }
    }
}
