//! A FHIR Bulk Data export imported as it comes (`Observation.ndjson` without Patients,
//! `Patient.ndjson` before or after, or both in one file): every Patient the server lists can
//! be read, and searched by with its id and its reference, and finds its Observations.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use healthanalyzer_server::FhirServer;
use healthanalyzer_store::Store;
use healthanalyzer_store_sqlite::SqliteStore;
use serde_json::Value;

fn observation(id: &str, patient: &str, day: u32) -> String {
    format!(
        r#"{{"resourceType":"Observation","id":"{id}","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"8867-4"}}]}},"subject":{{"reference":"Patient/{patient}"}},"effectiveDateTime":"2026-11-{day:02}T08:00:00Z","valueQuantity":{{"value":6{day},"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}}}"#
    )
}

fn patient(id: &str, cpr: &str) -> String {
    format!(
        r#"{{"resourceType":"Patient","id":"{id}","identifier":[{{"system":"urn:oid:1.2.208.176.1.2","value":"{cpr}"}}]}}"#
    )
}

fn import(dir: &Path, db: &str, file: &str, lines: &[String]) {
    std::fs::write(dir.join(file), lines.join("\n") + "\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_healthanalyzer"))
        .env_remove("HEALTHANALYZER_DB")
        .current_dir(dir)
        .args(["--db", db, "import", file])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Our server over `db`, asked `path`s; the answers as JSON.
struct Api {
    base: String,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Api {
    async fn over(db: &Path) -> Api {
        healthanalyzer_source::http::install_crypto_provider();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/fhir", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = FhirServer::new(store)
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await;
        });
        Api {
            base,
            client: reqwest::Client::new(),
            _stop: tx,
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}/{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The number of matches of an Observation search (`total`).
    async fn count(&self, query: &str) -> u64 {
        // POSTed: a national person number is never sent in a URL (the server refuses it there).
        let r = self
            .client
            .post(format!("{}/Observation/_search", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("{query}&_count=100"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value =
            serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{query}: {v}");
        v["entry"].as_array().map_or(0, |e| {
            e.iter()
                .filter(|e| e["resource"]["resourceType"] == "Observation")
                .count() as u64
        })
    }

    /// Every Patient is readable, and finds its Observations by id and by reference.
    async fn every_listed_patient_reaches_its_observations(&self, want: &[(&str, u64)]) {
        let (status, list) = self.get("Patient?_count=100").await;
        assert_eq!(status, 200, "{list}");
        let ids: Vec<String> = list["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
            .collect();
        for (id, n) in want {
            assert!(ids.iter().any(|i| i == id), "{id} not listed: {ids:?}");
            let (status, p) = self.get(&format!("Patient/{id}")).await;
            assert_eq!(status, 200, "Patient/{id}: {p}");
            assert_eq!(
                self.count(&format!("patient={id}")).await,
                *n,
                "patient={id}"
            );
            assert_eq!(
                self.count(&format!("patient=Patient/{id}")).await,
                *n,
                "patient=Patient/{id}"
            );
            let (_, inc) = self
                .get(&format!(
                    "Observation?patient={id}&_include=Observation:subject"
                ))
                .await;
            let included = inc["entry"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["resource"]["resourceType"] == "Patient")
                .count();
            assert_eq!(included, 1, "_include for {id}: {inc}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_alone_then_their_patients_later() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bulk.db");
    let url = format!("sqlite:{}", db.display());
    import(
        dir.path(),
        &url,
        "Observation.ndjson",
        &[
            observation("o1", "p5", 1),
            observation("o2", "p5", 2),
            observation("o3", "p6", 3),
        ],
    );
    {
        let api = Api::over(&db).await;
        api.every_listed_patient_reaches_its_observations(&[("p5", 2), ("p6", 1)])
            .await;
    }
    // The Patients arrive after: the Observations already stored are linked to them.
    import(
        dir.path(),
        &url,
        "Patient.ndjson",
        &[patient("p5", "0101010000"), patient("p6", "0202020000")],
    );
    let api = Api::over(&db).await;
    api.every_listed_patient_reaches_its_observations(&[("p5", 2), ("p6", 1)])
        .await;
    assert_eq!(
        api.count("patient:identifier=urn:oid:1.2.208.176.1.2|0101010000")
            .await,
        2
    );
    let (_, list) = api.get("Patient?_count=100").await;
    assert_eq!(
        list["total"], 2,
        "one Patient each, not a reference twin: {list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_first_in_the_same_file_or_before() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("one.db");
    let url = format!("sqlite:{}", db.display());
    import(
        dir.path(),
        &url,
        "export.ndjson",
        &[
            patient("p5", "0101010000"),
            observation("o1", "p5", 1),
            observation("o2", "p5", 2),
        ],
    );
    // A later file refers to the Patient imported before.
    import(
        dir.path(),
        &url,
        "more.ndjson",
        &[observation("o3", "p5", 3)],
    );
    let api = Api::over(&db).await;
    api.every_listed_patient_reaches_its_observations(&[("p5", 3)])
        .await;
    assert_eq!(
        api.count("patient:identifier=urn:oid:1.2.208.176.1.2|0101010000")
            .await,
        3
    );
    let (_, list) = api.get("Patient?_count=100").await;
    assert_eq!(list["total"], 1, "{list}");
}
