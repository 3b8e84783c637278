//! A write cut off before it commits leaves nothing: a transaction Bundle stopped by the request
//! time limit, and one whose client disconnects before the answer. The store is made slow for
//! the test the way a busy database is: another connection holds SQLite's write lock, so the
//! server's write set waits in the store's writer queue when the request is cut.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use healthanalyzer_server::{FhirServer, ServerConfig};
use healthanalyzer_store::Store;
use healthanalyzer_store_sqlite::SqliteStore;
use serde_json::{Value, json};

struct Server {
    addr: std::net::SocketAddr,
    db: std::path::PathBuf,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn start(timeout: Duration) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cut.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = FhirServer::new(store.clone()).config(ServerConfig {
        request_timeout: timeout,
        ..ServerConfig::default()
    });
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
    Server {
        addr,
        db,
        store,
        _dir: dir,
    }
}

/// Holds the database's write lock from another connection until the returned sender is
/// dropped or sent to.
fn hold_write_lock(db: &std::path::Path) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let db = db.to_path_buf();
    std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        held_tx.send(()).unwrap();
        let _ = rx.recv();
        conn.execute_batch("ROLLBACK").unwrap();
    });
    held_rx.recv().unwrap();
    tx
}

/// A transaction Bundle: a Patient with identifier `tag` and two Observations referring to it.
fn bundle(tag: &str) -> Value {
    let obs = |when: &str, bpm: i64| {
        json!({"resource": {
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "urn:uuid:9c2d0d7e-7a43-4c55-a3a2-5f2b1b0c9d11"},
            "effectiveDateTime": when,
            "valueQuantity": {"value": bpm, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}},
          "request": {"method": "POST", "url": "Observation"}})
    };
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:9c2d0d7e-7a43-4c55-a3a2-5f2b1b0c9d11",
         "resource": {"resourceType": "Patient",
                      "identifier": [{"system": "urn:test:cut", "value": tag}]},
         "request": {"method": "POST", "url": "Patient"}},
        obs("2024-05-01T08:00:00Z", 61),
        obs("2024-05-01T09:00:00Z", 62),
    ]})
}

/// Nothing of the Bundle tagged `tag` is stored: no Patient, no Observation.
async fn nothing_of(store: &dyn Store, tag: &str) {
    let who = healthanalyzer_model::Identifier::new("urn:test:cut", tag);
    assert_eq!(
        store.subject(&who).await.unwrap(),
        None,
        "the cut transaction's Patient was stored"
    );
    let subjects = store.list_subjects().await.unwrap();
    assert!(subjects.is_empty(), "{} Patients stored", subjects.len());
    let n = store
        .count(&healthanalyzer_store::Filter::default())
        .await
        .unwrap();
    assert_eq!(n, 0, "{n} Observations of the cut transaction were stored");
}

/// After the lock is released, the store's writer has run: a later write has committed.
async fn settle(store: &dyn Store) {
    for _ in 0..50 {
        if store
            .put_subjects(&[healthanalyzer_model::Subject::new(
                healthanalyzer_model::Identifier::local("fence"),
            )])
            .await
            .is_ok()
        {
            store
                .delete_subject(&healthanalyzer_model::Identifier::local("fence"))
                .await
                .unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store never took a write again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cut_by_the_time_limit_leaves_nothing() {
    let s = start(Duration::from_millis(300)).await;
    let lock = hold_write_lock(&s.db);
    let res = common::client()
        .post(format!("http://{}/fhir", s.addr))
        .header("content-type", "application/fhir+json")
        .body(bundle("timed-out").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        503,
        "the request was not cut by the time limit"
    );
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["issue"][0]["code"], "timeout");
    // The store frees up only now, with the write set still in its queue.
    drop(lock);
    settle(&*s.store).await;
    nothing_of(&*s.store, "timed-out").await;
    // The same Bundle, not cut, is stored whole.
    let res = common::client()
        .post(format!("http://{}/fhir", s.addr))
        .header("content-type", "application/fhir+json")
        .body(bundle("whole").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
    assert_eq!(
        s.store
            .count(&healthanalyzer_store::Filter::default())
            .await
            .unwrap(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_before_the_answer_leaves_nothing() {
    let s = start(Duration::from_secs(30)).await;
    let lock = hold_write_lock(&s.db);
    let body = bundle("gone").to_string();
    let addr = s.addr;
    tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        write!(
            conn,
            "POST /fhir HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        conn.flush().unwrap();
        // The request is in; the client gives up before any answer.
        std::thread::sleep(Duration::from_millis(500));
        conn.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert!(
            !matches!(conn.read(&mut buf), Ok(n) if n > 0),
            "the server answered while the store was locked"
        );
        drop(conn);
    })
    .await
    .unwrap();
    // Let the server notice the closed connection, then free the store.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(lock);
    settle(&*s.store).await;
    nothing_of(&*s.store, "gone").await;
}
