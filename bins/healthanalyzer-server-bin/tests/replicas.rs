//! Many processes, one truth: `healthanalyzer-server` processes sharing one store lose no update
//! and create no duplicate, and a process killed with SIGKILL in a storm of transactions leaves
//! every transaction whole or absent. On SQLite (one file) and on PostgreSQL
//! (`HEALTHANALYZER_POSTGRES_URL`; required when `HEALTHANALYZER_REQUIRE_POSTGRES=1`).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A server process; killed when dropped.
struct Proc {
    child: Child,
    base: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port over `db` and waits for its address.
fn start(db: &str) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_healthanalyzer-server"))
        .args(["--db", db, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn,healthanalyzer_server=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line.clone()).is_err() && line.contains("ERROR") {
                let _ = writeln!(std::io::stderr(), "server: {line}");
            }
        }
    });
    let mut seen = Vec::new();
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no address announced; log: {seen:#?}"));
        let found = line
            .split("FHIR API at ")
            .nth(1)
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string());
        seen.push(line);
        if let Some(base) = found {
            break base;
        }
    };
    Proc { child, base }
}

fn client() -> reqwest::Client {
    healthanalyzer_source::http::install_crypto_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A small deterministic generator (no dependency needed for picking resources).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
    headers: &[(&str, String)],
) -> (u16, Value) {
    let mut req = http.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/fhir+json")
            .body(b.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The answers to conditional creates, per shared identifier: status and resource id.
type Answers = HashMap<String, Vec<(u16, String)>>;

fn heart_rate(patient: &str, bpm: u64) -> Value {
    json!({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": "2024-05-01T08:00:00Z",
        "valueQuantity": {"value": bpm, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

fn assert_outcome(status: u16, body: &Value, what: &str) {
    assert!(
        matches!(status, 409 | 412),
        "{what}: a loser must get 409 or 412, got {status}: {body}"
    );
    assert_eq!(body["resourceType"], "OperationOutcome", "{what}: {body}");
}

/// Two processes on `db`, 64 clients for 10 s: `If-Match` updates of 10 shared Patients and 10
/// shared Observations, and `If-None-Exist` creates of 4 shared Patient and 4 shared Observation
/// identifiers.
async fn no_lost_update_across_processes(db: &str) {
    let procs = [start(db), start(db)];
    let bases: Vec<String> = procs.iter().map(|p| p.base.clone()).collect();
    let http = client();
    let run = std::process::id();
    // The shared resources, created through the first process.
    let mut resources: Vec<String> = Vec::new();
    for i in 0..10 {
        let (status, body) = send(
            &http,
            reqwest::Method::POST,
            &format!("{}/Patient", bases[0]),
            Some(&json!({"resourceType": "Patient", "name": [{"family": format!("Shared{i}")}],
                          "identifier": [{"system": "urn:test:replicas", "value": format!("{run}-p{i}")}]})),
            &[],
        )
        .await;
        assert_eq!(status, 201, "{body}");
        resources.push(format!("Patient/{}", body["id"].as_str().unwrap()));
    }
    let owner = resources[0].trim_start_matches("Patient/").to_string();
    for i in 0..10 {
        let (status, body) = send(
            &http,
            reqwest::Method::POST,
            &format!("{}/Observation", bases[0]),
            Some(&heart_rate(&owner, 60 + i)),
            &[],
        )
        .await;
        assert_eq!(status, 201, "{body}");
        resources.push(format!("Observation/{}", body["id"].as_str().unwrap()));
    }
    let resources = Arc::new(resources);
    let wins: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let created: Arc<Mutex<Answers>> = Arc::default();
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let (http, bases, resources, wins, created, counter, owner) = (
            http.clone(),
            bases.clone(),
            resources.clone(),
            wins.clone(),
            created.clone(),
            counter.clone(),
            owner.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t + 1) * 0x2545_f491));
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let read_at = &bases[rng.below(2)];
                let write_at = &bases[rng.below(2)];
                if rng.below(8) == 0 {
                    // A conditional create of a shared identifier.
                    let k = rng.below(4);
                    let (key, url, body, condition) = if rng.below(2) == 0 {
                        let value = format!("{run}-c{k}");
                        (
                            format!("Patient {k}"),
                            format!("{write_at}/Patient"),
                            json!({"resourceType": "Patient",
                                   "identifier": [{"system": "urn:test:replicas-cond", "value": value}]}),
                            format!("identifier=urn:test:replicas-cond|{value}"),
                        )
                    } else {
                        let value = format!("{run}-o{k}");
                        let mut body = heart_rate(&owner, 70);
                        body["identifier"] =
                            json!([{"system": "urn:test:replicas-cond", "value": value}]);
                        (
                            format!("Observation {k}"),
                            format!("{write_at}/Observation"),
                            body,
                            format!("identifier=urn:test:replicas-cond|{value}"),
                        )
                    };
                    let (status, answer) = send(
                        &http,
                        reqwest::Method::POST,
                        &url,
                        Some(&body),
                        &[("if-none-exist", condition)],
                    )
                    .await;
                    match status {
                        200 | 201 => created.lock().unwrap().entry(key).or_default().push((
                            status,
                            answer["id"].as_str().unwrap_or("").to_string(),
                        )),
                        _ => assert_outcome(status, &answer, "a conditional create"),
                    }
                    continue;
                }
                let r = &resources[rng.below(resources.len())];
                let (status, mut current) =
                    send(&http, reqwest::Method::GET, &format!("{read_at}/{r}"), None, &[]).await;
                assert_eq!(status, 200, "{r}: {current}");
                let version = current["meta"]["versionId"].as_str().unwrap().to_string();
                if r.starts_with("Patient/") {
                    current["name"] = json!([{"family": "Shared", "given": [format!("v{n}")]}]);
                } else {
                    current["valueQuantity"]["value"] = json!(40 + n % 150);
                }
                let (status, answer) = send(
                    &http,
                    reqwest::Method::PUT,
                    &format!("{write_at}/{r}"),
                    Some(&current),
                    &[("if-match", format!("W/\"{version}\""))],
                )
                .await;
                match status {
                    200 => *wins.lock().unwrap().entry(r.clone()).or_default() += 1,
                    _ => assert_outcome(status, &answer, r),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let wins = wins.lock().unwrap().clone();
    let mut total = 0;
    for r in resources.iter() {
        let (status, body) = send(
            &http,
            reqwest::Method::GET,
            &format!("{}/{r}", bases[1]),
            None,
            &[],
        )
        .await;
        assert_eq!(status, 200);
        let version: u64 = body["meta"]["versionId"].as_str().unwrap().parse().unwrap();
        let won = wins.get(r).copied().unwrap_or(0);
        total += won;
        assert_eq!(
            version,
            won + 1,
            "{r}: {won} updates were answered 2xx, so the version must be {}; it is {version} (lost updates)",
            won + 1
        );
    }
    assert!(
        total > 20,
        "too few updates succeeded ({total}) to show anything"
    );
    let created = created.lock().unwrap().clone();
    for (key, answers) in &created {
        let fresh = answers.iter().filter(|(s, _)| *s == 201).count();
        assert_eq!(fresh, 1, "{key}: {fresh} creates answered 201");
        let ids: std::collections::HashSet<&String> = answers.iter().map(|(_, id)| id).collect();
        assert_eq!(
            ids.len(),
            1,
            "{key}: the answers name {} resources",
            ids.len()
        );
    }
    for k in 0..4 {
        let (status, body) = send(
            &http,
            reqwest::Method::GET,
            &format!(
                "{}/Patient?identifier=urn:test:replicas-cond|{run}-c{k}",
                bases[0]
            ),
            None,
            &[],
        )
        .await;
        assert_eq!(status, 200);
        let n = body["entry"].as_array().map_or(0, Vec::len);
        assert!(n <= 1, "{n} Patients carry the conditional identifier c{k}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "two processes on {}: {total} If-Match updates won, {} conditional identifiers, no update lost",
        db.split(':').next().unwrap_or(""),
        created.len()
    );
}

/// Ten times: a storm of transactions (a Patient and two Observations each, tagged), the server
/// killed with SIGKILL at a random moment. After a restart every tagged transaction is wholly
/// there or wholly absent.
async fn sigkill_leaves_whole_transactions(db: &str) {
    let http = client();
    let run = std::process::id();
    let tried = Arc::new(AtomicU64::new(0));
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ u64::from(run));
    for _ in 0..10 {
        let server = start(db);
        let base = server.base.clone();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (http, base, tried) = (http.clone(), base.clone(), tried.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let k = tried.fetch_add(1, Ordering::Relaxed);
                    let bundle = storm_bundle(run, k);
                    let sent = http
                        .post(base.as_str())
                        .header("content-type", "application/fhir+json")
                        .body(bundle.to_string())
                        .send()
                        .await;
                    match sent {
                        Ok(res) if res.status().is_success() => {}
                        Ok(res) => panic!("a storm transaction was refused: {}", res.status()),
                        Err(_) => return, // the server is gone
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(200 + rng.below(1_300) as u64)).await;
        drop(server); // SIGKILL
        for t in tasks {
            t.await.unwrap();
        }
    }
    let server = start(db);
    let attempted = tried.load(Ordering::Relaxed);
    // Every stored storm Patient (tag -> id), and every stored Observation's Patient.
    let mut patients: HashMap<String, String> = HashMap::new();
    for entry in all(&http, &format!("{}/Patient?_count=1000", server.base)).await {
        let r = &entry["resource"];
        let tag = r["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["system"] == "urn:test:storm")
            .and_then(|i| i["value"].as_str());
        if let Some(tag) = tag {
            let id = r["id"].as_str().unwrap().to_string();
            assert!(
                patients.insert(tag.to_string(), id).is_none(),
                "transaction {tag} stored twice"
            );
        }
    }
    let mut per_patient: HashMap<String, u64> = HashMap::new();
    let observations = all(
        &http,
        &format!(
            "{}/Observation?code=http://loinc.org|8867-4&_count=1000",
            server.base
        ),
    )
    .await;
    for entry in &observations {
        let reference = entry["resource"]["subject"]["reference"].as_str().unwrap();
        *per_patient
            .entry(reference.trim_start_matches("Patient/").to_string())
            .or_default() += 1;
    }
    let ids: std::collections::HashSet<&String> = patients.values().collect();
    for (tag, id) in &patients {
        let n = per_patient.get(id).copied().unwrap_or(0);
        assert_eq!(
            n, 2,
            "transaction {tag}: its Patient is stored with {n} of its 2 Observations"
        );
    }
    for (patient, n) in &per_patient {
        assert!(
            ids.contains(patient),
            "{n} Observations stored for a Patient that is not: part of a transaction was kept"
        );
    }
    let whole = patients.len() as u64;
    assert_eq!(observations.len() as u64, 2 * whole);
    assert!(whole > 0, "no transaction committed before the kills");
    assert!(
        whole < attempted,
        "no kill landed inside a transaction storm"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SIGKILL storm on {}: {attempted} transactions tried over 10 kills, {whole} whole, none partial",
        db.split(':').next().unwrap_or("")
    );
}

/// Every entry of a search, following `next` links.
async fn all(http: &reqwest::Client, first: &str) -> Vec<Value> {
    let mut url = first.to_string();
    let mut out = Vec::new();
    for _ in 0..1_000 {
        let (status, body) = send(http, reqwest::Method::GET, &url, None, &[]).await;
        assert_eq!(status, 200, "{url}: {body}");
        out.extend(body["entry"].as_array().cloned().unwrap_or_default());
        let next = body["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next")
            .and_then(|l| l["url"].as_str());
        match next {
            Some(n) => url = n.to_string(),
            None => return out,
        }
    }
    panic!("a next-link loop at {first}");
}

fn storm_bundle(run: u32, k: u64) -> Value {
    let patient = format!("urn:uuid:00000000-0000-4000-8000-{k:012}");
    let obs = |minute: u64| {
        json!({"resource": {
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": patient},
            "effectiveDateTime": format!("2024-05-01T08:{minute:02}:00Z"),
            "valueQuantity": {"value": 60 + minute, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}},
          "request": {"method": "POST", "url": "Observation"}})
    };
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": patient,
         "resource": {"resourceType": "Patient",
                      "identifier": [{"system": "urn:test:storm", "value": format!("{run}-{k}")}]},
         "request": {"method": "POST", "url": "Patient"}},
        obs(1), obs(2),
    ]})
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("shared.db").display())
}

/// A fresh schema on the test PostgreSQL server, or `None` (with a notice) when there is none.
async fn postgres_url(test: &str) -> Option<String> {
    let url = match std::env::var("HEALTHANALYZER_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("HEALTHANALYZER_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{test}: HEALTHANALYZER_REQUIRE_POSTGRES=1 but HEALTHANALYZER_POSTGRES_URL is not set"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no PostgreSQL server (HEALTHANALYZER_POSTGRES_URL unset)"
            );
            return None;
        }
    };
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "t_replicas_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-csearch_path%3D{name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_sqlite_file_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    no_lost_update_across_processes(&sqlite_url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_database_lose_no_update() {
    let Some(url) = postgres_url("two_processes_on_one_postgres_database_lose_no_update").await
    else {
        return;
    };
    no_lost_update_across_processes(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_a_transaction_storm_on_sqlite_leaves_whole_transactions() {
    let dir = tempfile::tempdir().unwrap();
    sigkill_leaves_whole_transactions(&sqlite_url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_a_transaction_storm_on_postgres_leaves_whole_transactions() {
    let Some(url) =
        postgres_url("sigkill_in_a_transaction_storm_on_postgres_leaves_whole_transactions").await
    else {
        return;
    };
    sigkill_leaves_whole_transactions(&url).await;
}
