//! A server on a free port over a fresh SQLite file, and a small HTTP client for it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::print_stderr)]

use std::sync::Arc;

use healthanalyzer_server::{FhirServer, ServerConfig};
use healthanalyzer_store::Store;
use healthanalyzer_store_sqlite::SqliteStore;
use serde_json::{Value, json};

/// A running server; stops when dropped.
pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A response: status, headers, parsed body (Null when empty or not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an OperationOutcome with an error issue and returns its diagnostics.
    pub fn outcome(&self) -> String {
        assert_eq!(
            self.body["resourceType"], "OperationOutcome",
            "HTTP {}: {}",
            self.status, self.text
        );
        assert_eq!(self.body["issue"][0]["severity"], "error", "{}", self.text);
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/fhir+json")),
            "{:?}",
            self.header("content-type")
        );
        self.body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// Sends one request to `base` (or to `path` when it is absolute) and reads the answer whole.
pub async fn send_to(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}/{}", base, path.trim_start_matches('/'))
    };
    let mut req = http.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/fhir+json")
            .body(b.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

pub async fn start(config: ServerConfig) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = FhirServer::new(store.clone()).config(config);
    tokio::spawn(async move {
        let _ = server
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    TestServer {
        base: format!("http://{addr}/fhir"),
        store,
        http: client(),
        _dir: dir,
        stop: Some(tx),
    }
}

impl TestServer {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        send_to(&self.http, &self.base, method, path, body, headers).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body), &[])
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(reqwest::Method::PUT, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(reqwest::Method::DELETE, path, None, &[]).await
    }

    /// Creates a Patient and returns its id.
    pub async fn patient(&self, family: &str) -> String {
        let a = self
            .post(
                "Patient",
                &json!({"resourceType": "Patient", "name": [{"family": family}],
                        "identifier": [{"system": "urn:test:mrn", "value": family}],
                        "birthDate": "1950-03-14", "gender": "female"}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        a.body["id"].as_str().unwrap().to_string()
    }

    /// Creates an Observation and returns its id.
    pub async fn observation(&self, body: &Value) -> String {
        let a = self.post("Observation", body).await;
        assert_eq!(a.status, 201, "{}", a.text);
        a.body["id"].as_str().unwrap().to_string()
    }

    /// Every resource id of a search, following `next` links; also the page count.
    pub async fn search_ids(&self, query: &str) -> (Vec<String>, usize) {
        let mut url = format!("{}/{}", self.base, query);
        let mut ids = Vec::new();
        let mut pages = 0;
        loop {
            let a = self.get(&url).await;
            assert_eq!(a.status, 200, "{url}: {}", a.text);
            assert_eq!(a.body["type"], "searchset");
            pages += 1;
            assert!(pages < 1_000, "a next-link loop");
            for e in a.body["entry"].as_array().cloned().unwrap_or_default() {
                ids.push(e["resource"]["id"].as_str().unwrap().to_string());
            }
            let next = a.body["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == "next")
                .and_then(|l| l["url"].as_str())
                .map(str::to_string);
            match next {
                Some(n) => url = n,
                None => return (ids, pages),
            }
        }
    }
}

/// An HTTP client (with a TLS crypto provider installed, which a workspace build may need).
pub fn client() -> reqwest::Client {
    healthanalyzer_source::http::install_crypto_provider();
    reqwest::Client::new()
}

/// A blood-pressure Observation.
pub fn bp(patient: &str, when: &str, sys: i64, dia: i64) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": when,
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": sys, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": dia, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
        ]
    })
}

/// A body-weight Observation.
pub fn weight(patient: &str, when: &str, kg: f64) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": when,
        "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    })
}
