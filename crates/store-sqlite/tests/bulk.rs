//! The bulk path (ADR 0016): a large set into a table small beside it drops the measurement
//! table's secondary indexes, inserts, and builds them again, in the set's savepoint. It must
//! do exactly what the row-by-row path does (checked against the in-memory store, the reference
//! of the conformance kit), leave the indexes in place whatever happens, and survive SIGKILL
//! mid-write with the previous state.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use healthanalyzer_model::{Identifier, Measurement, Value};
use healthanalyzer_store::{
    Checkpoint, Filter, MeasurementStore, MemoryStore, Precondition, Query, WriteSet,
    WriteSetStore, testkit,
};
use healthanalyzer_store_sqlite::SqliteStore;

/// Larger than the bulk path's threshold (10,000 measurements).
const BULK: i64 = 12_000;
const SOURCE: &str = "bulk-src";

fn rows(subject: &str, from: i64, to: i64, bpm: i64) -> Vec<Measurement> {
    (from..to)
        .map(|i| testkit::heart_rate(SOURCE, subject, i, bpm + i % 50))
        .collect()
}

/// The names of the measurement table's indexes and `PRAGMA integrity_check`'s verdict.
fn inspect(path: &Path) -> (Vec<String>, String, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open read-only");
    let names = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'measurement'
             ORDER BY name",
        )
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .expect("indexes");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    let count: i64 = conn
        .query_row("SELECT count(*) FROM measurement", [], |r| r.get(0))
        .expect("count");
    (names, check, count)
}

const INDEXES: [&str; 4] = [
    "measurement_subject_kind_time",
    "measurement_subject_time",
    "measurement_time",
    "sqlite_autoindex_measurement_1",
];

async fn same_reads(sqlite: &SqliteStore, memory: &MemoryStore, what: &str) {
    for subject in ["bulk-a", "bulk-b"] {
        let filter = Filter {
            subject: Some(Identifier::local(subject)),
            ..Filter::default()
        };
        assert_eq!(
            sqlite.count(&filter).await.expect("count"),
            memory.count(&filter).await.expect("count"),
            "{what}: count of {subject}"
        );
        let q = Query::new(filter, 50);
        let (a, b) = (
            sqlite.query(&q).await.expect("query"),
            memory.query(&q).await.expect("query"),
        );
        assert_eq!(a.items, b.items, "{what}: first page of {subject}");
    }
    let all = Query::new(Filter::default(), 100);
    assert_eq!(
        sqlite.query(&all).await.expect("query").items,
        memory.query(&all).await.expect("query").items,
        "{what}: first page across subjects by time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_sets_do_what_row_sets_do_and_keep_the_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bulk.db");
    let sqlite = SqliteStore::open(&path).await.expect("open");
    let memory = MemoryStore::new();

    // 1. Into the empty table: the bulk path. A measurement twice in the set: inserted, then
    // updated by the second copy (a changed value) as on the row path.
    let mut first = rows("bulk-a", 0, BULK, 60);
    let mut again = first[7].clone();
    again.value = Value::quantity(199i64.into(), "/min");
    first.push(again);
    let set = WriteSet::batch(&first, Some(&Checkpoint::new(SOURCE, "1")));
    let (a, b) = (
        sqlite.apply(&set).await.expect("bulk apply"),
        memory.apply(&set).await.expect("memory apply"),
    );
    assert_eq!(a, b, "first bulk set: what it did");
    assert_eq!(sqlite.bulk_sets(), 1, "the first set took the bulk path");
    assert_eq!(a.measurements.inserted, BULK as u64);
    assert_eq!(a.measurements.updated, 1);
    same_reads(&sqlite, &memory, "after the first bulk set").await;
    let (names, check, count) = inspect(&path);
    assert_eq!(names, INDEXES, "the indexes after a bulk set");
    assert_eq!((check.as_str(), count), ("ok", BULK));

    // 2. The table (12,000) is no larger than the set: bulk again. Half the set is already
    // stored (unchanged, or changed: updated), half is new, some of another subject.
    let mut second = rows("bulk-a", BULK / 2, BULK, 60);
    for m in second.iter_mut().step_by(3) {
        m.value = Value::quantity(42i64.into(), "/min");
    }
    second.extend(rows("bulk-b", BULK, BULK + BULK / 2 + 10, 70));
    let set = WriteSet::batch(&second, Some(&Checkpoint::new(SOURCE, "2")));
    let (a, b) = (
        sqlite.apply(&set).await.expect("bulk apply"),
        memory.apply(&set).await.expect("memory apply"),
    );
    assert_eq!(a, b, "second bulk set: what it did");
    assert_eq!(sqlite.bulk_sets(), 2, "the second set took the bulk path");
    assert!(a.measurements.updated > 1000 && a.measurements.unchanged > 1000);
    same_reads(&sqlite, &memory, "after the second bulk set").await;

    // 3. A bulk set whose precondition fails half-way is rolled back whole, indexes and all.
    // 24,000 rows into 18,010.
    let mut third = rows("bulk-b", 3 * BULK, 5 * BULK, 80);
    let mut set = WriteSet::batch(&third, None);
    let taken = first[3].clone();
    set = set.put_measurement(taken, Precondition::Absent);
    third.clear();
    let before = sqlite.count(&Filter::default()).await.expect("count");
    let err = sqlite.apply(&set).await.expect_err("must not exist");
    assert!(
        matches!(err, healthanalyzer_store::Error::PreconditionFailed(_)),
        "{err}"
    );
    assert!(memory.apply(&set).await.is_err());
    assert_eq!(
        sqlite.count(&Filter::default()).await.expect("count"),
        before
    );
    same_reads(&sqlite, &memory, "after a failed bulk set").await;
    assert_eq!(sqlite.bulk_sets(), 2, "a failed set is not counted");

    // 4. The table now larger than a set: a set of 10,000 goes row by row.
    let fourth = rows("bulk-b", 5 * BULK, 5 * BULK + 10_000, 90);
    let set = WriteSet::batch(&fourth, None);
    assert_eq!(
        sqlite.apply(&set).await.expect("apply"),
        memory.apply(&set).await.expect("memory apply")
    );
    assert_eq!(sqlite.bulk_sets(), 2, "into a larger table: row by row");
    same_reads(&sqlite, &memory, "after a row-path set").await;
    let before = sqlite.count(&Filter::default()).await.expect("count");
    assert_eq!(
        sqlite
            .checkpoint(SOURCE)
            .await
            .expect("checkpoint")
            .map(|c| c.cursor),
        Some("2".into())
    );
    drop(sqlite);
    let (names, check, count) = inspect(&path);
    assert_eq!(names, INDEXES, "the indexes at the end");
    assert_eq!(check, "ok");
    assert_eq!(u64::try_from(count).ok(), Some(before));
}

const CHILD_DB: &str = "BULK_CRASH_WRITER_DB";
const KEPT: i64 = 500;

/// The child: writes a small committed set, then one large bulk set, saying when each starts
/// and ends. Does nothing unless started by [`sigkill_mid_bulk_write_leaves_the_previous_state`].
#[tokio::test]
#[ignore = "the writer half of the bulk crash test; runs only as its child process"]
async fn bulk_crash_writer() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return;
    };
    let store = SqliteStore::open(&path).await.expect("writer open");
    if store.count(&Filter::default()).await.expect("count") == 0 {
        store
            .write(&rows("crash", 0, KEPT, 60), None)
            .await
            .expect("first write");
    }
    let big = rows("crash", KEPT, KEPT + 4 * BULK, 60);
    println!("bulk:begin");
    store.write(&big, None).await.expect("bulk write");
    println!("bulk:done");
}

/// Starts the writer child on `path`; returns it and its stdout lines once it has printed
/// `bulk:begin`.
fn start_writer(
    exe: &Path,
    path: &Path,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(exe)
        .args([
            "bulk_crash_writer",
            "--exact",
            "--include-ignored",
            "--nocapture",
        ])
        .env(CHILD_DB, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("the writer ended early")
            .expect("read writer output");
        if line == "bulk:begin" {
            break;
        }
    }
    (child, lines)
}

/// Waits until another connection holds the write lock on `path` (the writer's transaction is
/// open).
fn wait_for_lock(path: &Path, round: usize) {
    let probe = rusqlite::Connection::open(path).expect("probe");
    probe.busy_timeout(Duration::ZERO).expect("no busy wait");
    let mut waited = 0;
    loop {
        match probe.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => probe.execute_batch("ROLLBACK").expect("rollback"),
            Err(_) => return, // busy: the child is writing
        }
        std::thread::sleep(Duration::from_millis(2));
        waited += 1;
        assert!(
            waited < 30_000,
            "round {round}: the writer never took the lock"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_bulk_write_leaves_the_previous_state() {
    let exe = std::env::current_exe().expect("test binary");
    // First, how long the set's transaction takes on this machine, uncut: the kill points are
    // fractions of it, so that they land mid-write on a fast machine and on a loaded one.
    let calibration = {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("calibrate.db");
        let (mut child, mut lines) = start_writer(&exe, &path);
        wait_for_lock(&path, 0);
        let locked = std::time::Instant::now();
        assert!(
            lines.any(|l| l.is_ok_and(|l| l == "bulk:done")),
            "the uncut writer did not finish"
        );
        let took = locked.elapsed();
        let _ = child.wait();
        took
    };
    let mut killed_mid_write = 0;
    // Kill points after the set's transaction began: while its rows go in, while its indexes
    // are built, while it commits.
    for (round, fraction) in [0.0, 0.1, 0.25, 0.45, 0.65, 0.85].into_iter().enumerate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("crash.db");
        let (mut child, mut lines) = start_writer(&exe, &path);
        wait_for_lock(&path, round);
        std::thread::sleep(calibration.mul_f64(fraction));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let done = lines.any(|l| l.is_ok_and(|l| l == "bulk:done"));
        let (names, check, count) = inspect(&path);
        assert_eq!(check, "ok", "round {round}: integrity after SIGKILL");
        assert_eq!(names, INDEXES, "round {round}: the indexes after SIGKILL");
        if done {
            assert_eq!(count, KEPT + 4 * BULK, "round {round}: the whole set");
        } else {
            // The kill can land after the commit but before `bulk:done` is printed: then the
            // whole set is there. Anything between the two states is a torn write.
            assert!(
                count == KEPT || count == KEPT + 4 * BULK,
                "round {round}: {count} rows after SIGKILL, neither the previous state ({KEPT}) \
                 nor the whole set ({})",
                KEPT + 4 * BULK
            );
            if count == KEPT {
                killed_mid_write += 1;
            }
        }
        // The file opens and takes the set afterwards, on the bulk path again.
        let store = SqliteStore::open(&path).await.expect("reopen");
        let n = store.count(&Filter::default()).await.expect("count");
        assert_eq!(i64::try_from(n).ok(), Some(count), "round {round}");
    }
    assert!(
        killed_mid_write >= 3,
        "only {killed_mid_write} of 6 kills landed mid-write (an uncut write took {calibration:?})"
    );
}
