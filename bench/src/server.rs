//! `server-bench`: the FHIR server under a real load generator (`wrk`, Debian's package), in
//! the shapes of the Blaze load tests:
//!
//! - (a) a transaction Bundle of 1 Patient + 1 blood-pressure Observation, 32 and 128 clients;
//! - (b) read of one Patient (a random one of the store's);
//! - (c) Observation search by patient + code + date over a store of about a million
//!   Observations.
//!
//! Beside each, the store alone doing the same work in the same run (the ceiling the HTTP
//! layer can reach). SQLite always; PostgreSQL too when `HEALTHANALYZER_POSTGRES_URL` is set.
//! `wrk` and the server share this machine's cores: the figures are for the pair.
//!
//! `cargo run --release -p healthanalyzer-bench --bin server-bench -- [--patients N] [--days N]
//! [--seconds N] [--postgres-only] [--tx-only] [--no-tx]` (`--tx-only`: the transaction shape
//! alone, with the store committing the same write sets beside it; `--no-tx`: the read and
//! search shapes only).
//!
//! **Helios HFS beside ours** (SQLite runs only). Build HFS into its own target dir, so that it
//! does not lock ours:
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/hfs-target nice cargo install helios-hfs --version 0.2.7 \
//!     --no-default-features --features R4,sqlite --root /tmp/hfs
//! HEALTHANALYZER_HFS_BIN=/tmp/hfs/bin/hfs \
//!     cargo run --release -p healthanalyzer-bench --bin server-bench -- --no-tx --hfs-search
//! ```
//!
//! HFS reads its search parameters from `search-parameters-r4.json` in its data folder (the
//! HFS repository's `crates/fhir-gen/resources/R4/search-parameters.json`, 2.2 MB). The bench
//! writes one holding the R4 definitions these shapes use (Patient `identifier`, Observation
//! `patient`, `subject`, `code`, `date`); `HEALTHANALYZER_HFS_SEARCH_PARAMETERS` names the full
//! file instead. The bench starts HFS in a temporary folder (its own `fhir.db`, that
//! file copied to `data/`), `PUT`s every Patient of our store into it under the same id, and runs
//! (b) against both in the same run, printing ours / HFS. With `--hfs-search` it also loads
//! into HFS the Observations that (c) matches (every patient's 30-day window: the same answers,
//! in a database far smaller than ours, which favours HFS) and runs (c) against it with
//! `_count=50&_total=accurate` (our default page and total). Without `HEALTHANALYZER_HFS_BIN`
//! the bench says so and runs ours only.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::io::Write;
use std::ops::Bound;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use healthanalyzer_model::jiff::{SignedDuration, Timestamp};
use healthanalyzer_model::{Identifier, KindId};
use healthanalyzer_server::{FhirServer, ServerConfig};
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_sim::{SimConfig, SimSource};
use healthanalyzer_store::{Filter, Precondition, Query, Store, WriteSet};
use serde_json::Value;

/// The allocator the server binary uses (see `bins/healthanalyzer-server-bin`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn ms(text: &str) -> f64 {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => f64::NAN,
    }
}

fn wrk(url: &str, script: &str, conns: u32, seconds: u32) -> Wrk {
    let dir = tempfile::tempdir().unwrap();
    let lua = dir.path().join("s.lua");
    std::fs::write(&lua, script).unwrap();
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{seconds}s"),
            "--latency",
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(&lua)
        .arg(url)
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut r = Wrk {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        non_2xx: 0,
    };
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(f64::NAN);
        } else if let Some(v) = l.strip_prefix("50%") {
            r.p50_ms = ms(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            r.p99_ms = ms(v);
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().unwrap_or(0);
        }
    }
    if r.rps.is_nan() {
        eprintln!(
            "wrk said:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    r
}

async fn fill(store: &Arc<dyn Store>, patients: usize, days: u32) -> (u64, Timestamp, Timestamp) {
    let sim = SimSource::new(SimConfig {
        patients,
        days,
        ..SimConfig::default()
    })
    .unwrap();
    // Demographics, as a FHIR source would bring them.
    let subjects: Vec<healthanalyzer_model::Subject> = sim
        .subjects()
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut s = healthanalyzer_model::Subject::new(id.clone());
            s.name = Some(healthanalyzer_model::HumanName {
                family: Some(format!("Bench{i}")),
                given: vec!["Test".into()],
                text: None,
            });
            s
        })
        .collect();
    store.put_subjects(&subjects).await.unwrap();
    let mut cursor = Cursor::start();
    let mut n = 0u64;
    let (mut lo, mut hi) = (Timestamp::MAX, Timestamp::MIN);
    loop {
        let b = sim.pull(&cursor, 10_000).await.unwrap();
        if !b.subjects.is_empty() {
            store.put_subjects(&b.subjects).await.unwrap();
        }
        for m in &b.measurements {
            let t = m.effective.instant();
            lo = lo.min(t);
            hi = hi.max(t);
        }
        store.write(&b.measurements, None).await.unwrap();
        n += b.measurements.len() as u64;
        cursor = b.cursor;
        if b.exhausted {
            return (n, lo, hi);
        }
    }
}

/// Helios HFS, started for this run in a folder of its own (stopped when dropped).
struct Hfs {
    child: std::process::Child,
    /// Its FHIR base (`http://127.0.0.1:<port>`: HFS serves at the root).
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Hfs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts HFS when `HEALTHANALYZER_HFS_BIN` says where it is (with the search parameters of
/// `HEALTHANALYZER_HFS_SEARCH_PARAMETERS`, else [`search_parameters`]); says why not otherwise.
async fn start_hfs(http: &reqwest::Client) -> Option<Hfs> {
    let Some(bin) = std::env::var_os("HEALTHANALYZER_HFS_BIN") else {
        println!(
            "\n(Helios HFS skipped: HEALTHANALYZER_HFS_BIN is not set; see this bench's doc comment)"
        );
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let target = data.join("search-parameters-r4.json");
    match std::env::var_os("HEALTHANALYZER_HFS_SEARCH_PARAMETERS") {
        Some(params) => {
            std::fs::copy(&params, &target)
                .expect("HEALTHANALYZER_HFS_SEARCH_PARAMETERS names a readable file");
        }
        None => {
            println!(
                "\n(Helios HFS gets the R4 search parameters of these shapes only; \
                 HEALTHANALYZER_HFS_SEARCH_PARAMETERS names a full search-parameters-r4.json)"
            );
            std::fs::write(&target, search_parameters().to_string()).unwrap();
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("hfs.log")).unwrap();
    let child = Command::new(bin)
        .current_dir(dir.path())
        .env("HFS_SERVER_HOST", "127.0.0.1")
        .env("HFS_SERVER_PORT", port.to_string())
        .env("HFS_BASE_URL", &url)
        .env("HFS_LOG_LEVEL", "warn")
        .env("HFS_DATA_DIR", &data)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("HEALTHANALYZER_HFS_BIN runs");
    let hfs = Hfs { child, url, dir };
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Ok(r) = http.get(format!("{}/metadata", hfs.url)).send().await
            && r.status().is_success()
        {
            return Some(hfs);
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(hfs.dir.path().join("hfs.log")).unwrap_or_default();
            println!("\n(Helios HFS did not answer /metadata within 120 s; its log:\n{log})");
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The R4 SearchParameters the shapes use, as HL7 defines them (url, code, type, base,
/// expression and target as in the R4 specification's `search-parameters.json`, the
/// multi-resource ones narrowed to Observation): what HFS needs to answer (c) in its data folder.
fn search_parameters() -> Value {
    let param = |id: &str, code: &str, kind: &str, expression: &str, target: Option<&str>| {
        let mut p = serde_json::json!({
            "resourceType": "SearchParameter",
            "id": id,
            "url": format!("http://hl7.org/fhir/SearchParameter/{id}"),
            "name": code,
            "status": "active",
            "code": code,
            "base": [expression.split('.').next().unwrap_or("Observation")],
            "type": kind,
            "expression": expression,
        });
        if let Some(t) = target {
            p["target"] = serde_json::json!([t]);
        }
        serde_json::json!({ "fullUrl": format!("http://hl7.org/fhir/SearchParameter/{id}"), "resource": p })
    };
    serde_json::json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            param("Patient-identifier", "identifier", "token", "Patient.identifier", None),
            param(
                "clinical-patient",
                "patient",
                "reference",
                "Observation.subject.where(resolve() is Patient)",
                Some("Patient"),
            ),
            param("Observation-subject", "subject", "reference", "Observation.subject", Some("Patient")),
            param("clinical-code", "code", "token", "Observation.code", None),
            param("clinical-date", "date", "date", "Observation.effective", None),
        ],
    })
}

/// `PUT`s each resource (`Type/id`, body) into HFS, 8 at a time; the count that failed.
async fn put_all(http: &reqwest::Client, base: &str, resources: Vec<(String, Value)>) -> usize {
    let resources = Arc::new(std::sync::Mutex::new(resources));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, base, resources) = (http.clone(), base.to_string(), resources.clone());
        tasks.push(tokio::spawn(async move {
            let mut failed = 0;
            loop {
                let Some((path, body)) = resources.lock().unwrap().pop() else {
                    return failed;
                };
                let ok = http
                    .put(format!("{base}/{path}"))
                    .header("Content-Type", "application/fhir+json")
                    .header("Prefer", "return=minimal")
                    .body(body.to_string())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    failed += 1;
                }
            }
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.unwrap();
    }
    failed
}

/// A resource as HFS should store it: ours without `meta` (HFS keeps its own versions).
fn for_hfs(mut resource: Value) -> Value {
    if let Some(o) = resource.as_object_mut() {
        o.remove("meta");
    }
    resource
}

fn lua_list(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
    format!("ids = {{{}}}\n", quoted.join(","))
}

/// The write set of one Blaze-shaped transaction: a new subject and a new blood-pressure
/// measurement, each "must not exist", as the server builds it.
fn tx_set(template: &healthanalyzer_model::Measurement, i: u64) -> WriteSet {
    let subject = healthanalyzer_model::Subject::new(Identifier::new(
        "urn:bench:tx",
        format!("{}-{i}", std::process::id()),
    ));
    let mut m = template.clone();
    m.subject = subject.id.clone();
    m.provenance.record_id = format!("bench-{}-{i}", std::process::id());
    m.id = m.provenance.measurement_id();
    WriteSet::new()
        .put_subject(subject, Precondition::Absent)
        .put_measurement(m, Precondition::Absent)
}

/// The store alone committing transaction-shaped write sets: one client, then `clients`
/// concurrent ones (what group commit can coalesce), each for `seconds`.
async fn store_tx(store: &Arc<dyn Store>, clients: u32, seconds: u32) -> (f64, f64) {
    let template = healthanalyzer_source_sim::SimSource::new(SimConfig {
        patients: 1,
        days: 1,
        ..SimConfig::default()
    })
    .unwrap()
    .pull(&Cursor::start(), 10)
    .await
    .unwrap()
    .measurements
    .into_iter()
    .find(|m| m.kind.as_str() == "blood-pressure")
    .unwrap();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let one = {
        let deadline = Instant::now() + std::time::Duration::from_secs(u64::from(seconds));
        let t = Instant::now();
        let mut n = 0u64;
        while Instant::now() < deadline {
            let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            store.apply(&tx_set(&template, i)).await.unwrap();
            n += 1;
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(u64::from(seconds));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (store, counter, template) = (store.clone(), counter.clone(), template.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                store.apply(&tx_set(&template, i)).await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut n = 0;
    for task in tasks {
        n += task.await.unwrap();
    }
    (one, n as f64 / t.elapsed().as_secs_f64())
}

#[allow(clippy::too_many_lines)]
async fn run(
    label: &str,
    store: Arc<dyn Store>,
    sqlite: Option<healthanalyzer_store_sqlite::SqliteStore>,
    patients: usize,
    days: u32,
    seconds: u32,
    shapes: Shapes,
) {
    let tx_only = shapes.tx_only;
    println!("\n## {label}\n");
    let (_, lo, hi) = if tx_only {
        // A few patients only: the transaction shape does not read the data.
        fill(&store, 10, 1).await
    } else {
        let t = Instant::now();
        let filled = fill(&store, patients, days).await;
        println!(
            "filled {} measurements of {patients} patients in {:.1} s",
            filled.0,
            t.elapsed().as_secs_f64()
        );
        filled
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = FhirServer::new(store.clone())
        .dashboard(None)
        .config(ServerConfig::default());
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
    let base = format!("http://{addr}/fhir");

    // Patient ids, as the API names them.
    healthanalyzer_source::http::install_crypto_provider();
    let http = reqwest::Client::new();
    let body: Value = serde_json::from_str(
        &http
            .get(format!("{base}/Patient?_count=1000"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let patients_json: Vec<Value> = body["entry"]
        .as_array()
        .unwrap_or_else(|| panic!("no Patients listed: {body}"))
        .iter()
        .map(|e| e["resource"].clone())
        .collect();
    let ids: Vec<String> = patients_json
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    // A 30-day window in the middle of the data.
    let mid = lo + (hi.duration_since(lo) / 2);
    let from = mid.strftime("%Y-%m-%d").to_string();
    let to = (mid + SignedDuration::from_hours(24 * 30))
        .strftime("%Y-%m-%d")
        .to_string();
    let sample = http
        .get(format!(
            "{base}/Observation?patient={}&code=http://loinc.org|85354-9&date=ge{from}&date=lt{to}",
            ids[0]
        ))
        .send()
        .await
        .unwrap();
    let sample: Value = serde_json::from_str(&sample.text().await.unwrap()).unwrap();
    println!(
        "search sample: {} matches for one patient over 30 days ({from} to {to}); {} patients",
        sample["total"],
        ids.len()
    );

    let read_at = |prefix: &str| {
        format!(
            "{}request = function()\n  return wrk.format(\"GET\", \"{prefix}/Patient/\" .. ids[math.random(#ids)])\nend\n",
            lua_list(&ids)
        )
    };
    let search_at = |prefix: &str, extra: &str| {
        format!(
            "{}request = function()\n  return wrk.format(\"GET\", \"{prefix}/Observation?patient=\" .. ids[math.random(#ids)] .. \"&code=http%3A%2F%2Floinc.org%7C85354-9&date=ge{from}&date=lt{to}{extra}\")\nend\n",
            lua_list(&ids)
        )
    };
    let read = read_at("/fhir");
    let search = search_at("/fhir", "");
    let tx = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.headers["Prefer"] = "return=minimal"
wrk.body = [[{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:0b9f1d8e-7c77-4a51-9e3b-2f1f5d6c0001","resource":{"resourceType":"Patient","name":[{"family":"Load","given":["Test"]}],"gender":"female","birthDate":"1950-01-01"},"request":{"method":"POST","url":"Patient"}},
 {"fullUrl":"urn:uuid:0b9f1d8e-7c77-4a51-9e3b-2f1f5d6c0002","resource":{"resourceType":"Observation","status":"final",
  "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
  "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
  "subject":{"reference":"urn:uuid:0b9f1d8e-7c77-4a51-9e3b-2f1f5d6c0001"},
  "effectiveDateTime":"2024-05-06T07:08:09+02:00",
  "component":[
   {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":128,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
   {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":82,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]},
  "request":{"method":"POST","url":"Observation"}}]}]]
"#;

    println!("\n| shape | clients | requests/s | p50 ms | p99 ms | non-2xx |");
    println!("|---|---:|---:|---:|---:|---:|");
    let show = |name: &str, c: u32, w: &Wrk| {
        println!(
            "| {name} | {c} | {:.0} | {:.2} | {:.2} | {} |",
            w.rps, w.p50_ms, w.p99_ms, w.non_2xx
        );
        let _ = std::io::stdout().flush();
    };
    let url = format!("http://{addr}/fhir");
    if !shapes.no_tx {
        transactions(&url, tx, &store, sqlite.as_ref(), seconds).await;
    }
    if tx_only {
        return;
    }
    let w = wrk(&format!("{url}/Patient"), &read, 32, seconds);
    show("(b) read Patient", 32, &w);
    let ours_read = w.rps;
    let w = wrk(&format!("{url}/Observation"), &search, 32, seconds);
    show("(c) search patient + code + date", 32, &w);
    let ours_search = w;

    if shapes.hfs
        && let Some(hfs) = start_hfs(&http).await
    {
        let t = Instant::now();
        let resources = patients_json
            .iter()
            .map(|p| {
                (
                    format!("Patient/{}", p["id"].as_str().unwrap()),
                    for_hfs(p.clone()),
                )
            })
            .collect();
        let failed = put_all(&http, &hfs.url, resources).await;
        println!(
            "\nHelios HFS ({}): {} Patients PUT in {:.1} s ({failed} failed)",
            hfs.url,
            ids.len(),
            t.elapsed().as_secs_f64()
        );
        let sample = http
            .get(format!("{}/Patient/{}", hfs.url, ids[0]))
            .send()
            .await
            .unwrap();
        println!("HFS read sample: {}", sample.status());
        let w = wrk(&format!("{}/Patient", hfs.url), &read_at(""), 32, seconds);
        show("(b) read Patient: Helios HFS", 32, &w);
        println!(
            "\n(b) ours / Helios HFS, same run: **{:.2}x** ({ours_read:.0} / {:.0} req/s)",
            ours_read / w.rps,
            w.rps
        );
        if shapes.hfs_search {
            // The Observations (c) matches, every patient's window: HFS holds these only.
            let t = Instant::now();
            let mut resources = Vec::new();
            for id in &ids {
                let page: Value = serde_json::from_str(
                    &http
                        .get(format!(
                            "{base}/Observation?patient={id}&code=http://loinc.org|85354-9&date=ge{from}&date=lt{to}&_count=1000"
                        ))
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap(),
                )
                .unwrap();
                for e in page["entry"].as_array().into_iter().flatten() {
                    let r = &e["resource"];
                    resources.push((
                        format!("Observation/{}", r["id"].as_str().unwrap()),
                        for_hfs(r.clone()),
                    ));
                }
            }
            let n = resources.len();
            let failed = put_all(&http, &hfs.url, resources).await;
            println!(
                "HFS: {n} Observations (the windows (c) searches) PUT in {:.1} s ({failed} failed)",
                t.elapsed().as_secs_f64()
            );
            let sample: Value = serde_json::from_str(
                &http
                    .get(format!(
                        "{}/Observation?patient={}&code=http://loinc.org|85354-9&date=ge{from}&date=lt{to}&_count=50&_total=accurate",
                        hfs.url, ids[0]
                    ))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
            )
            .unwrap_or_default();
            println!(
                "HFS search sample: total {}, {} entries",
                sample["total"],
                sample["entry"].as_array().map_or(0, Vec::len)
            );
            let w = wrk(
                &format!("{}/Observation", hfs.url),
                &search_at("", "&_count=50&_total=accurate"),
                32,
                seconds,
            );
            show("(c) search: Helios HFS (the matching rows only)", 32, &w);
            println!(
                "\n(c) ours / Helios HFS, same run: **{:.2}x** req/s; p99 {:.1} vs {:.1} ms",
                ours_search.rps / w.rps,
                ours_search.p99_ms,
                w.p99_ms
            );
        }
    }

    store_alone(&store, &from, &to).await;
}

/// Shape (a) at 32 and 128 clients, then the store alone committing the same write sets.
async fn transactions(
    url: &str,
    tx: &str,
    store: &Arc<dyn Store>,
    sqlite: Option<&healthanalyzer_store_sqlite::SqliteStore>,
    seconds: u32,
) {
    let show = |name: &str, c: u32, w: &Wrk| {
        println!(
            "| {name} | {c} | {:.0} | {:.2} | {:.2} | {} |",
            w.rps, w.p50_ms, w.p99_ms, w.non_2xx
        );
        let _ = std::io::stdout().flush();
    };
    let url = url.to_string();
    let mut tx_rps = f64::NAN;
    let groups = |before: (u64, u64)| {
        sqlite.map_or(String::new(), |s| {
            let (t, n) = s.commit_stats();
            let (t, n) = (t - before.0, n - before.1);
            format!(
                " ({n} write sets in {t} commits: {:.1} per commit)",
                n as f64 / t.max(1) as f64
            )
        })
    };
    let stats = || {
        sqlite.map_or(
            (0, 0),
            healthanalyzer_store_sqlite::SqliteStore::commit_stats,
        )
    };
    for c in [32, 128] {
        let before = stats();
        let w = wrk(&url, tx, c, seconds);
        show("(a) transaction: Patient + BP Observation", c, &w);
        println!("{}", groups(before));
        if c == 32 {
            tx_rps = w.rps;
        }
    }
    let before = stats();
    let (one, many) = store_tx(store, 32, seconds).await;
    println!("store alone{}", groups(before));
    println!(
        "\nThe store alone committing the same write sets (1 subject + 1 measurement, each must not \
         exist), same run: 1 client {one:.0}/s, 32 clients {many:.0}/s (group commit). \
         The server at 32 clients: {:.2} of the store's 32-client rate, {:.1}x its 1-client rate.",
        tx_rps / many,
        tx_rps / one
    );
}

/// The store alone doing (b)'s and (c)'s work, one client, in process.
async fn store_alone(store: &Arc<dyn Store>, from: &str, to: &str) {
    println!("\nThe store alone, same run (one client, in-process):\n");
    let subjects = store.list_subjects().await.unwrap();
    let subject_ids: Vec<Identifier> = subjects.iter().map(|s| s.id.clone()).collect();
    let k = 2_000;
    let t = Instant::now();
    for i in 0..k {
        let s = &subject_ids[i % subject_ids.len()];
        let _ = store.subject(s).await.unwrap();
    }
    let read_store = f64::from(k as u32) / t.elapsed().as_secs_f64();
    let from_ts: Timestamp = format!("{from}T00:00:00Z").parse().unwrap();
    let to_ts: Timestamp = format!("{to}T00:00:00Z").parse().unwrap();
    let mut lat = Vec::with_capacity(k);
    for i in 0..k {
        let filter = Filter {
            subject: Some(subject_ids[i % subject_ids.len()].clone()),
            kinds: vec![KindId::from("blood-pressure")],
            from: Bound::Included(from_ts),
            to: Bound::Excluded(to_ts),
        };
        let t = Instant::now();
        let _ = store.count(&filter).await.unwrap();
        let _ = store.query(&Query::new(filter, 50)).await.unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    let search_store = k as f64 / (lat.iter().sum::<f64>() / 1e3);
    println!("| work | per second | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    println!("| (b) subject by identifier | {read_store:.0} | | |");
    println!(
        "| (c) count + first page of 50 | {search_store:.0} | {:.2} | {:.2} |",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
}

/// Which shapes a run measures.
#[derive(Clone, Copy)]
struct Shapes {
    /// (a) alone.
    tx_only: bool,
    /// (b) and (c) only.
    no_tx: bool,
    /// Helios HFS beside ours, when it is set up (the SQLite run).
    hfs: bool,
    /// (c) against HFS too (loads the matching Observations into it).
    hfs_search: bool,
}

fn main() {
    let mut patients = 1000;
    let mut days = 228;
    let mut seconds = 10;
    let mut postgres_only = false;
    let mut shapes = Shapes {
        tx_only: false,
        no_tx: false,
        hfs: true,
        hfs_search: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse::<u32>().ok())
                .expect("a number")
        };
        match a.as_str() {
            "--patients" => patients = value() as usize,
            "--days" => days = value(),
            "--seconds" => seconds = value(),
            "--postgres-only" => postgres_only = true,
            "--tx-only" => shapes.tx_only = true,
            "--no-tx" => shapes.no_tx = true,
            "--hfs-search" => shapes.hfs_search = true,
            other => panic!("unknown argument {other}"),
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "# server-bench: {patients} patients x {days} days, {seconds} s per shape, {cores} cores (wrk and the server share them)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if !postgres_only {
            let dir = tempfile::tempdir().unwrap();
            let sqlite =
                healthanalyzer_store_sqlite::SqliteStore::open(dir.path().join("bench.db"))
                    .await
                    .unwrap();
            let store: Arc<dyn Store> = Arc::new(sqlite.clone());
            run(
                "SQLite",
                store,
                Some(sqlite),
                patients,
                days,
                seconds,
                shapes,
            )
            .await;
        }
        match std::env::var("HEALTHANALYZER_POSTGRES_URL") {
            Ok(url) => {
                let store: Arc<dyn Store> = Arc::new(
                    healthanalyzer_store_postgres::PostgresStore::connect(&url)
                        .await
                        .unwrap(),
                );
                let shapes = Shapes {
                    hfs: false,
                    ..shapes
                };
                run("PostgreSQL", store, None, patients, days, seconds, shapes).await;
            }
            Err(_) => println!("\n(PostgreSQL skipped: HEALTHANALYZER_POSTGRES_URL is not set)"),
        }
    });
}
