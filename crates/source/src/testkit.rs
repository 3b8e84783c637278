//! The connector test kit: checks any [`Source`] against the trait's contract.
//!
//! Each check is an `async fn` that panics with a message naming the broken rule, so it runs
//! inside any test on any runtime:
//!
//! ```ignore
//! #[tokio::test]
//! async fn my_connector_keeps_the_contract() {
//!     let a = MySource::new(config());
//!     let b = MySource::new(config()); // a second instance, configured the same
//!     healthanalyzer_source::testkit::run_all(&a, &b, 7).await;
//! }
//! ```
//!
//! Use a small `limit` (a handful) so the data spans many batches: the resume check pulls
//! again from every cursor the source hands out (from at most 64 of them, spread evenly).
//!
//! For an HTTP connector, [`mock`] is a mock HTTP server to point it at: scripted responses
//! (a 429 with `Retry-After`, a 401, a page too big), and the requests it sent.

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use healthanalyzer_model::MeasurementId;

use crate::batch::{Batch, Cursor};
use crate::source::Source;

pub mod mock;

/// The batch size the resume check compares small batches with.
pub const WHOLE: usize = 100_000;

/// The most batches [`pull_all`] takes before it calls the source endless.
pub const MAX_BATCHES: usize = 1_000_000;

/// Pulls from `from` until the source is exhausted, checking every batch against `limit`.
/// Returns the batches in order.
///
/// # Panics
///
/// When a pull fails, a batch holds more than `limit` measurements, or the source neither
/// advances nor ends.
pub async fn pull_all(source: &dyn Source, from: &Cursor, limit: usize) -> Vec<Batch> {
    let mut batches: Vec<Batch> = Vec::new();
    let mut cursor = from.clone();
    loop {
        let batch = match source.pull(&cursor, limit).await {
            Ok(b) => b,
            Err(e) => panic!(
                "{} ({}): pull from cursor {:?} failed: {e}",
                source.id(),
                source.kind(),
                cursor.as_str()
            ),
        };
        assert!(
            batch.measurements.len() <= limit,
            "{}: a batch held {} measurements, more than the limit of {limit}",
            source.id(),
            batch.measurements.len()
        );
        let stuck = !batch.exhausted
            && batch.cursor == cursor
            && batch.measurements.is_empty()
            && batch.rejected.is_empty();
        assert!(
            !stuck,
            "{}: an empty batch that is not exhausted left the cursor where it was ({:?}): the sync would loop forever",
            source.id(),
            cursor.as_str()
        );
        assert!(
            batches.len() < MAX_BATCHES,
            "{}: more than {MAX_BATCHES} batches without being exhausted",
            source.id()
        );
        cursor = batch.cursor.clone();
        let done = batch.exhausted;
        batches.push(batch);
        if done {
            return batches;
        }
    }
}

fn ids(batches: &[Batch]) -> Vec<MeasurementId> {
    batches
        .iter()
        .flat_map(|b| b.measurements.iter().map(|m| m.id))
        .collect()
}

/// Pulling from every cursor the source hands out gives exactly what came after it: the
/// measurements before the cursor and those after it make the whole, nothing lost, nothing
/// twice. Also: no measurement id appears twice in one full pull, and pulling in batches of
/// `limit` gives what pulling in batches of [`WHOLE`] gives.
pub async fn check_resume_from_every_cursor(source: &dyn Source, limit: usize) {
    let all = pull_all(source, &Cursor::start(), limit).await;
    let full = ids(&all);
    let mut seen = HashSet::new();
    for id in &full {
        assert!(
            seen.insert(*id),
            "{}: measurement {id} came twice in one pull from the start",
            source.id()
        );
    }
    // Batch boundaries must not matter: the same data in (nearly) one batch.
    let whole = ids(&pull_all(source, &Cursor::start(), WHOLE).await);
    assert_eq!(
        whole.len(),
        full.len(),
        "{}: pulling in batches of {limit} gave {} measurements, in batches of {WHOLE} {}: the cursor loses or repeats records at batch boundaries",
        source.id(),
        full.len(),
        whole.len()
    );
    assert_eq!(
        whole,
        full,
        "{}: pulling in batches of {limit} gave other measurements than in batches of {WHOLE}",
        source.id()
    );
    // The cursor after batch i, with the ids before it.
    let stride = (all.len() / 64).max(1);
    let mut before = 0;
    for (i, batch) in all.iter().enumerate() {
        before += batch.measurements.len();
        if i % stride != 0 && i + 1 != all.len() {
            continue;
        }
        let rest = ids(&pull_all(source, &batch.cursor, limit).await);
        let mut joined = full[..before].to_vec();
        joined.extend(rest);
        assert_eq!(
            joined.len(),
            full.len(),
            "{}: resuming after batch {i} (cursor {:?}) gave {} measurements in all, not {}: {}",
            source.id(),
            batch.cursor.as_str(),
            joined.len(),
            full.len(),
            if joined.len() < full.len() {
                "some were lost"
            } else {
                "some came twice"
            }
        );
        assert_eq!(
            joined,
            full,
            "{}: resuming after batch {i} (cursor {:?}) gave other measurements than one pull",
            source.id(),
            batch.cursor.as_str()
        );
    }
}

/// Two instances configured the same give the same measurement ids, in the same order: a
/// re-import updates instead of duplicating.
pub async fn check_ids_are_stable(first: &dyn Source, second: &dyn Source, limit: usize) {
    assert_eq!(
        first.id(),
        second.id(),
        "the two instances must be configured the same"
    );
    let a = ids(&pull_all(first, &Cursor::start(), limit).await);
    let b = ids(&pull_all(second, &Cursor::start(), limit).await);
    assert_eq!(
        a,
        b,
        "{}: two runs gave different measurement ids; derive them from the source's own record ids",
        first.id()
    );
}

/// Once exhausted, pulling again from the last cursor gives an empty, exhausted batch (twice
/// over).
pub async fn check_exhausted_stays_exhausted(source: &dyn Source, limit: usize) {
    let all = pull_all(source, &Cursor::start(), limit).await;
    let Some(last) = all.last() else {
        unreachable!("pull_all returns at least one batch");
    };
    let mut cursor = last.cursor.clone();
    for round in 1..=2 {
        let again = source
            .pull(&cursor, limit)
            .await
            .unwrap_or_else(|e| panic!("{}: pulling an exhausted source failed: {e}", source.id()));
        assert!(
            again.exhausted && again.measurements.is_empty(),
            "{}: pull {round} after exhaustion gave {} measurements (exhausted: {})",
            source.id(),
            again.measurements.len(),
            again.exhausted
        );
        cursor = again.cursor;
    }
}

/// A cursor the source never wrote is refused with an error that retrying cannot help.
pub async fn check_bad_cursor_is_refused(source: &dyn Source) {
    for bad in ["\u{1}not a cursor\u{1}", "{\"unterminated", "-1"] {
        match source.pull(&Cursor::new(bad), 5).await {
            Ok(_) => panic!(
                "{}: the cursor {bad:?} was accepted; refuse cursors this source did not write (Error::BadCursor)",
                source.id()
            ),
            Err(e) => assert!(
                !e.is_retryable(),
                "{}: a bad cursor gave a retryable error ({e}); retrying cannot fix it",
                source.id()
            ),
        }
    }
}

/// A pull dropped before it finished (cancelled, timed out) changes nothing: the next pull
/// from the same cursor gives what an untouched source gives.
pub async fn check_cancelled_pull_changes_nothing(source: &dyn Source, limit: usize) {
    let reference = pull_all(source, &Cursor::start(), limit).await;
    let mut cursors = vec![Cursor::start()];
    cursors.extend(reference.iter().take(3).map(|b| b.cursor.clone()));
    for cursor in cursors {
        let expected = ids(&pull_all(source, &cursor, limit).await);
        // Start a pull, let it run until it first waits, then drop it.
        {
            let mut pull = pin!(source.pull(&cursor, limit));
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(Err(e)) = pull.as_mut().poll(&mut cx) {
                panic!("{}: pull failed: {e}", source.id());
            }
        }
        let after = ids(&pull_all(source, &cursor, limit).await);
        assert_eq!(
            after,
            expected,
            "{}: after a pull from {:?} was dropped half-way, pulling again gave other measurements",
            source.id(),
            cursor.as_str()
        );
    }
}

/// Every check: resume, stable ids (with a second instance configured the same), exhaustion,
/// bad cursors, cancellation.
pub async fn run_all(source: &dyn Source, second: &dyn Source, limit: usize) {
    check_resume_from_every_cursor(source, limit).await;
    check_ids_are_stable(source, second, limit).await;
    check_exhausted_stays_exhausted(source, limit).await;
    check_bad_cursor_is_refused(source).await;
    check_cancelled_pull_changes_nothing(source, limit).await;
}
