//! Crash safety: a writer process is killed with SIGKILL mid-batch, again and again; after each
//! kill the store reopens with every batch either whole and checkpointed, or absent.
//!
//! The writer is this test binary itself, re-run with `CRASH_WRITER_DB` set so that only
//! [`crash_writer`] does anything.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use healthanalyzer_model::Identifier;
use healthanalyzer_store::{Checkpoint, Filter, MeasurementStore, testkit};
use healthanalyzer_store_sqlite::SqliteStore;

const BATCH: i64 = 20_000;
const SOURCE: &str = "crash-src";
const SUBJECT: &str = "crash-subject";

/// The writer: resumes after its checkpoint and writes batches forever, saying when each one
/// starts. Does nothing unless started by [`sigkill_mid_batch_leaves_whole_batches_only`].
#[tokio::test]
#[ignore = "the writer half of the crash test; runs only as its child process"]
async fn crash_writer() {
    let Ok(path) = std::env::var("CRASH_WRITER_DB") else {
        return;
    };
    let store = SqliteStore::open(&path).await.expect("writer open");
    let mut k = match store.checkpoint(SOURCE).await.expect("checkpoint") {
        Some(cp) => cp.cursor.parse::<i64>().expect("cursor") + 1,
        None => 0,
    };
    loop {
        let batch: Vec<_> = (k * BATCH..(k + 1) * BATCH)
            .map(|i| testkit::heart_rate(SOURCE, SUBJECT, i, 40 + i % 100))
            .collect();
        println!("crash:begin {k}");
        store
            .write(&batch, Some(&Checkpoint::new(SOURCE, k.to_string())))
            .await
            .expect("write");
        println!("crash:done {k}");
        k += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_leaves_whole_batches_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().expect("test binary");
    let mut mid_batch = 0;
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args([
                "crash_writer",
                "--exact",
                "--include-ignored",
                "--nocapture",
            ])
            .env("CRASH_WRITER_DB", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Let it commit at least one batch, then kill it at a varying point of the next one.
        let mut begun = 0;
        let mut done = None;
        while begun < 2 {
            let line = lines
                .next()
                .expect("the writer ended early")
                .expect("read writer output");
            if line.starts_with("crash:begin ") {
                begun += 1;
            } else if let Some(k) = line.strip_prefix("crash:done ") {
                done = Some(k.parse::<i64>().expect("batch number"));
            }
        }
        std::thread::sleep(Duration::from_millis(7 + round * 13));
        child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix
        let status = child.wait().expect("wait");
        assert!(!status.success(), "the writer was killed");

        let store = SqliteStore::open(&path)
            .await
            .expect("reopen after SIGKILL");
        let cp = store
            .checkpoint(SOURCE)
            .await
            .expect("checkpoint")
            .expect("at least one batch was committed");
        let last: i64 = cp.cursor.parse().expect("cursor");
        assert!(done.is_none_or(|d| last >= d), "a committed batch was lost");
        let rows = store
            .count(&Filter::subject(Identifier::local(SUBJECT)))
            .await
            .expect("count");
        assert_eq!(
            rows,
            ((last + 1) * BATCH) as u64,
            "round {round}: rows must be exactly the checkpointed batches (checkpoint {last})"
        );
        // The first and last row of the next batch are both absent.
        for i in [(last + 1) * BATCH, (last + 2) * BATCH - 1] {
            let m = testkit::heart_rate(SOURCE, SUBJECT, i, 40 + i % 100);
            assert_eq!(store.get(&m.id).await.expect("get"), None);
        }
        let conn = rusqlite::Connection::open(&path).expect("raw");
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(integrity, "ok");
        // The kill landed while batch `done + 1` was being written when that batch is absent.
        if done.is_some_and(|d| last == d) {
            mid_batch += 1;
        }
        drop(store);
    }
    println!("crash test: 6 kills, {mid_batch} while a batch was being written");
}
