//! Separate processes on one file: of several processes creating the same documents (each under
//! `Precondition::Absent`), exactly one wins each document, and the stored body is the winner's.
//!
//! The claimers are this test binary itself, re-run with `CLAIM_DB` set so that only
//! [`claimer`] does anything.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use healthanalyzer_store::{Document, Precondition, WriteSet, WriteSetStore};
use healthanalyzer_store_sqlite::SqliteStore;

const DOCUMENTS: usize = 8;
const PROCESSES: usize = 4;

fn body(process: &str, doc: usize) -> String {
    format!(r#"{{"resourceType":"Provenance","id":"claim-{doc}","process":"{process}"}}"#)
}

/// A claimer: opens the file, says it is ready, waits for a line on stdin, then tries to create
/// every document and says which it won.
#[tokio::test]
#[ignore = "the claiming half of the multi-process test; runs only as its child process"]
async fn claimer() {
    let (Ok(path), Ok(me)) = (std::env::var("CLAIM_DB"), std::env::var("CLAIM_PROCESS")) else {
        return;
    };
    let store = SqliteStore::open(&path).await.expect("claimer open");
    println!("claim:ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("go");
    for doc in 0..DOCUMENTS {
        let d = Document::new("Provenance", format!("claim-{doc}"), body(&me, doc))
            .key("patient|Patient/claimed");
        match store
            .apply(&WriteSet::new().put_document(d, Precondition::Absent))
            .await
        {
            Ok(_) => println!("claim:won {doc}"),
            Err(e) if e.conflict().is_some() => println!("claim:lost {doc}"),
            Err(e) => panic!("a create failed with something else: {e}"),
        }
    }
    println!("claim:end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_creating_one_document_make_one_winner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("claims.db");
    // Created (and migrated) before the claimers start.
    drop(SqliteStore::open(&path).await.expect("create"));
    let exe = std::env::current_exe().expect("test binary");
    let mut children = Vec::new();
    for p in 0..PROCESSES {
        let mut child = Command::new(&exe)
            .args(["claimer", "--exact", "--include-ignored", "--nocapture"])
            .env("CLAIM_DB", &path)
            .env("CLAIM_PROCESS", p.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn claimer");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        loop {
            let line = lines
                .next()
                .expect("the claimer ended early")
                .expect("read");
            if line == "claim:ready" {
                break;
            }
        }
        children.push((child, lines));
    }
    // All of them open and waiting: let them go together.
    for (child, _) in &mut children {
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("go");
        stdin.flush().expect("flush");
    }
    let mut winners: Vec<Vec<usize>> = vec![Vec::new(); DOCUMENTS];
    let mut answers = 0;
    for (p, (mut child, lines)) in children.into_iter().enumerate() {
        for line in lines {
            let line = line.expect("read");
            if let Some(doc) = line.strip_prefix("claim:won ") {
                winners[doc.parse::<usize>().expect("doc")].push(p);
                answers += 1;
            } else if line.starts_with("claim:lost ") {
                answers += 1;
            }
        }
        assert!(child.wait().expect("wait").success(), "claimer {p} failed");
    }
    assert_eq!(
        answers,
        DOCUMENTS * PROCESSES,
        "every claimer answered for every document"
    );
    let store = SqliteStore::open(&path).await.expect("reopen");
    for (doc, won) in winners.iter().enumerate() {
        assert_eq!(won.len(), 1, "document {doc} was won by processes {won:?}");
        let got = store
            .document("Provenance", &format!("claim-{doc}"))
            .await
            .expect("document")
            .expect("stored");
        assert_eq!(got.version, 1);
        assert_eq!(
            got.value.body,
            body(&won[0].to_string(), doc),
            "the winner's body"
        );
    }
}
