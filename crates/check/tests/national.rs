//! The national suites (`fut`, `pmd`, `medmij`) against our own server: every step passes;
//! and against our server behind a proxy that breaks one rule at a time: each fault is found
//! and given to the party that should fix it.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use healthanalyzer_check::{Outcome, Owner, Run, Runner, Severity, report, suites};
use healthanalyzer_server::{AuthConfig, FhirServer, ServerConfig};
use healthanalyzer_store::Store;
use healthanalyzer_store_sqlite::SqliteStore;

/// The MedMij patient token (a patient-context token for `Patient/medmij-check`).
const PGO_TOKEN: &str = "pgo-token-0123456789abcdef";
const PGO_PATIENT: &str = "medmij-check";

/// Our server on SQLite, with a token file when `tokens` is given; stops when dropped.
struct Server {
    base: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn server(tokens: Option<&str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    server_on(dir, &db, tokens).await
}

/// Our server over the SQLite file `db` (a sync may write it at the same time).
async fn server_on(dir: tempfile::TempDir, db: &Path, tokens: Option<&str>) -> Server {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db).await.unwrap());
    let auth = tokens.map(|t| {
        let file = dir.path().join("tokens");
        std::fs::write(&file, t).unwrap();
        AuthConfig::from_token_file(&file).unwrap()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = FhirServer::new(store).config(ServerConfig {
        auth,
        ..ServerConfig::default()
    });
    tokio::spawn(async move {
        let _ = server
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    Server {
        base: format!("http://{addr}/fhir"),
        _dir: dir,
        stop: Some(tx),
    }
}

fn pgo_tokens() -> String {
    format!("pgo {PGO_TOKEN} patient/*.cruds patient={PGO_PATIENT}\n")
}

fn pgo_runner(base: &str) -> Runner {
    Runner::new(base)
        .unwrap()
        .header("Authorization", &format!("Bearer {PGO_TOKEN}"))
        .var("patient", PGO_PATIENT)
}

fn assert_clean(run: &Run) {
    assert_eq!(run.findings().count(), 0, "{}", report::summary(run));
    for s in &run.scenarios {
        for st in &s.steps {
            assert_eq!(st.outcome, Outcome::Passed, "{} / {}", s.name, st.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fut_suite_passes_against_our_server() {
    let own = server(None).await;
    let run = Runner::new(&own.base)
        .unwrap()
        .run(&[suites::builtin("fut").unwrap()])
        .await;
    assert_clean(&run);
}

/// With a FUT-style token limited to one patient and one episode of care, as a citizen's
/// device gets it: the same suite passes (the refusals are then 403s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fut_suite_passes_with_a_patient_and_episode_token() {
    let own = server(Some(
        "citizen fut-token-0123456789abcdef patient/*.cruds patient=76312 \
         episode_of_care=https://careplan.cit-measurement-2050.local/fhir/EpisodeOfCare/39765\n",
    ))
    .await;
    let run = Runner::new(&own.base)
        .unwrap()
        .header("Authorization", "Bearer fut-token-0123456789abcdef")
        .run(&[suites::builtin("fut").unwrap()])
        .await;
    assert_clean(&run);
    // Without the token, nothing is let in: the first step is a finding.
    let run = Runner::new(&own.base)
        .unwrap()
        .run(&[suites::builtin("fut").unwrap()])
        .await;
    common::finding(&run, "submit a measurement", "Status 401");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pmd_suite_passes_against_our_server() {
    let own = server(None).await;
    let run = Runner::new(&own.base)
        .unwrap()
        .run(&[suites::builtin("pmd").unwrap()])
        .await;
    assert_clean(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_medmij_suite_passes_against_our_server_with_a_patient_token() {
    let own = server(Some(&pgo_tokens())).await;
    let run = pgo_runner(&own.base)
        .run(&[suites::builtin("medmij").unwrap()])
        .await;
    assert_clean(&run);
}

// ---------------------------------------------------------------------------------------------
// Our server behind a proxy that breaks one national rule.
// ---------------------------------------------------------------------------------------------

/// What the proxy breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Batch-response entries lose their fullUrl.
    DropFullUrls,
    /// A POST `_search` answers with a self link carrying the form body as it was sent (the
    /// national person number in it).
    EchoNationalIdInSelfLink,
    /// A refused `$submit-measurement` or batch is answered 200 as if it were stored.
    AcceptRefused,
    /// Observations read back lose `basedOn` and `meta.profile`, and a logical subject
    /// becomes a reference.
    DropProfileElements,
    /// Self links lose the `code` parameter.
    DropCodeFromSelfLinks,
}

struct Proxy {
    base: String,
    _server: Server,
}

async fn proxy(fault: Fault, tokens: Option<&str>) -> Proxy {
    use axum::body::Bytes;
    use axum::extract::{OriginalUri, State};
    use axum::http::{HeaderMap, Method, StatusCode};
    use axum::response::{IntoResponse, Response};

    let own = server(tokens).await;
    let target = own.base.trim_end_matches("/fhir").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    healthanalyzer_source::http::install_crypto_provider();
    let client = reqwest::Client::new();

    async fn forward(
        State((client, target, fault)): State<(reqwest::Client, String, Fault)>,
        method: Method,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let mut req = client.request(
            reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
            format!("{target}{path}"),
        );
        for name in ["authorization", "content-type", "prefer", "accept"] {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                req = req.header(name, v);
            }
        }
        let sent = String::from_utf8_lossy(&body).into_owned();
        let answer = req.body(body.to_vec()).send().await.unwrap();
        let mut status = answer.status().as_u16();
        let location = answer
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = answer.text().await.unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let is_post = method == Method::POST;
        match fault {
            Fault::DropFullUrls if json["type"] == "batch-response" => {
                if let Some(list) = json["entry"].as_array_mut() {
                    for e in list {
                        e.as_object_mut().unwrap().remove("fullUrl");
                    }
                }
            }
            Fault::EchoNationalIdInSelfLink if is_post && path.ends_with("/_search") => {
                if let Some(links) = json["link"].as_array_mut() {
                    for l in links {
                        if l["relation"] == "self" {
                            l["url"] = format!("{target}{path}?{sent}").into();
                        }
                    }
                }
            }
            Fault::AcceptRefused
                if is_post && (400..500).contains(&status) && sent.contains("\"entry\"") =>
            {
                let sent: serde_json::Value = serde_json::from_str(&sent).unwrap();
                let bundle = sent
                    .pointer("/parameter/0/resource")
                    .cloned()
                    .unwrap_or(sent);
                let kind = if bundle["type"] == "batch" {
                    "batch-response"
                } else {
                    "transaction-response"
                };
                let n = bundle["entry"].as_array().map_or(0, Vec::len);
                let answered: Vec<serde_json::Value> = (0..n)
                    .map(|i| {
                        serde_json::json!({"response": {"status": "201 Created",
                        "location": format!("Observation/accepted-{i}/_history/1")}})
                    })
                    .collect();
                status = 200;
                json =
                    serde_json::json!({"resourceType": "Bundle", "type": kind, "entry": answered});
            }
            Fault::DropProfileElements => {
                fn strip(v: &mut serde_json::Value) {
                    if v["resourceType"] == "Observation" {
                        let o = v.as_object_mut().unwrap();
                        o.remove("basedOn");
                        o.remove("meta");
                        // A logical subject (PMD's FNR) turned into a reference.
                        if o.get("subject")
                            .is_some_and(|s| s.get("identifier").is_some())
                        {
                            o.insert(
                                "subject".into(),
                                serde_json::json!({"reference": "Patient/replaced"}),
                            );
                        }
                    }
                    if let Some(list) = v.get_mut("entry").and_then(|e| e.as_array_mut()) {
                        for e in list {
                            if let Some(r) = e.get_mut("resource") {
                                strip(r);
                            }
                        }
                    }
                }
                if !is_post || path.contains("search") {
                    strip(&mut json);
                }
            }
            Fault::DropCodeFromSelfLinks => {
                if let Some(links) = json["link"].as_array_mut() {
                    for l in links {
                        if l["relation"] == "self"
                            && let Some(u) = l["url"].as_str()
                        {
                            let (head, query) = u.split_once('?').unwrap_or((u, ""));
                            let kept: Vec<&str> = query
                                .split('&')
                                .filter(|p| !p.starts_with("code="))
                                .collect();
                            l["url"] = format!("{head}?{}", kept.join("&")).into();
                        }
                    }
                }
            }
            _ => {}
        }
        let mut res = (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/fhir+json")],
            if json.is_null() {
                text
            } else {
                json.to_string()
            },
        )
            .into_response();
        if let Some(l) = location {
            res.headers_mut().insert("location", l.parse().unwrap());
        }
        res
    }

    let app = axum::Router::new()
        .fallback(forward)
        .with_state((client, target, fault));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Proxy {
        base: format!("http://{addr}/fhir"),
        _server: own,
    }
}

async fn run_through(fault: Fault, suite: &str) -> Run {
    let medmij = suite == "medmij";
    let tokens = pgo_tokens();
    let p = proxy(fault, medmij.then_some(tokens.as_str())).await;
    let runner = if medmij {
        pgo_runner(&p.base)
    } else {
        Runner::new(&p.base).unwrap()
    };
    runner.run(&[suites::builtin(suite).unwrap()]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_full_urls_are_the_receivers() {
    for suite in ["pmd", "medmij"] {
        let run = run_through(Fault::DropFullUrls, suite).await;
        let step = if suite == "pmd" {
            "send a PMD batch"
        } else {
            "send a batch with return=representation"
        };
        let f = common::finding(&run, step, "entry[0].fullUrl is missing");
        common::assert_owner(f, Owner::Receiver, Severity::Error);
        assert!(f.reason.contains("pmd-Bundle-Response"), "{}", f.reason);
        common::finding(&run, step, "entry[1].fullUrl is missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_national_id_in_a_self_link_is_the_receivers() {
    let run = run_through(Fault::EchoNationalIdInSelfLink, "pmd").await;
    let f = common::finding(
        &run,
        "read back by patient.identifier",
        "A national person number the suite sent appears in a URL the server returned: link[0].url",
    );
    common::assert_owner(f, Owner::Receiver, Severity::Error);
    // The finding names where, never the number.
    assert!(!f.message.contains("14038010086"), "{}", f.message);
    common::finding(
        &run,
        "read back by patient.identifier and code",
        "appears in a URL the server returned",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_bad_submissions_are_the_receivers() {
    let run = run_through(Fault::AcceptRefused, "fut").await;
    for step in [
        "two patients refused",
        "two episodes of care refused",
        "an observation without basedOn refused",
    ] {
        let f = common::finding(&run, step, "Status 200, expected 4xx");
        common::assert_owner(f, Owner::Receiver, Severity::Error);
        assert!(f.reason.contains("wrong on purpose"), "{}", f.reason);
    }
    let run = run_through(Fault::AcceptRefused, "pmd").await;
    let f = common::finding(
        &run,
        "an entry without fullUrl refused",
        "Status 200, expected 4xx",
    );
    common::assert_owner(f, Owner::Receiver, Severity::Error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_elements_lost_on_read_are_the_receivers() {
    let run = run_through(Fault::DropProfileElements, "fut").await;
    for step in [
        "search measurements by patient",
        "search measurements by episode of care",
        "read a submitted observation",
    ] {
        let f = common::finding(
            &run,
            step,
            "fut-observation rule `ehealth-observation.basedOn` broken at",
        );
        common::assert_owner(f, Owner::Receiver, Severity::Error);
        common::finding(&run, step, "`ehealth-observation.meta.profile`");
    }
    let f = common::finding(
        &run,
        "read a submitted observation",
        "broken at Observation.basedOn",
    );
    assert!(f.reason.contains("lost or changed"), "{}", f.reason);
    let run = run_through(Fault::DropProfileElements, "medmij").await;
    let f = common::finding(
        &run,
        "blood pressure by code",
        "nl-core rule `nl-core.meta.profile` broken at entry[0].resource (Observation.meta.profile)",
    );
    common::assert_owner(f, Owner::Receiver, Severity::Error);
    let run = run_through(Fault::DropProfileElements, "pmd").await;
    let f = common::finding(
        &run,
        "read back by patient.identifier",
        "vkp-observation rule `vkp-observation.subject` broken at entry[0].resource (Observation.subject.identifier)",
    );
    common::assert_owner(f, Owner::Receiver, Severity::Error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_links_that_drop_a_parameter_are_the_receivers() {
    let run = run_through(Fault::DropCodeFromSelfLinks, "medmij").await;
    let f = common::finding(
        &run,
        "blood pressure by code",
        "The self link does not name 1 of the parameters sent: code=http://loinc.org|85354-9.",
    );
    common::assert_owner(f, Owner::Receiver, Severity::Error);
    common::finding(&run, "lastn by code", "code=http://loinc.org|85354-9");
    // The searches without a code are not touched.
    let day = run.scenarios[0]
        .steps
        .iter()
        .find(|s| s.name == "vital signs of the day")
        .unwrap();
    assert_eq!(day.outcome, Outcome::Passed, "{}", report::summary(&run));
    let run = run_through(Fault::DropCodeFromSelfLinks, "pmd").await;
    common::finding(
        &run,
        "read back by patient.identifier and code",
        "code=http://loinc.org|29463-7",
    );
}

/// The suite's own data keeps the profiles it claims (`request.rules`): a body that breaks
/// one is the data's finding, and the request still goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_data_that_breaks_its_profile_is_the_datas() {
    let own = server(None).await;
    let suite = suites::builtin("pmd").unwrap();
    let mut text = String::new();
    for st in &suite.steps {
        if st.name == "send a PMD batch" {
            let Some(healthanalyzer_check::Body::Text(t)) = &st.request.as_ref().unwrap().body
            else {
                panic!("the batch is a text body");
            };
            text = t.replace("\"urn:uuid:3c0b4a9e-5d1f-4e7a-9b2d-${run}\"", "\"\"");
        }
    }
    assert!(text.contains("\"fullUrl\": \"\""), "{text}");
    let mut broken = suite.clone();
    for st in &mut broken.steps {
        if st.name == "send a PMD batch" {
            st.request.as_mut().unwrap().body =
                Some(healthanalyzer_check::Body::Text(text.clone()));
        }
    }
    let run = Runner::new(&own.base).unwrap().run(&[broken]).await;
    let f = common::finding(
        &run,
        "send a PMD batch",
        "The body sent breaks its profile: pmd-bundle rule `pmd-bundle.entry.fullUrl` broken at Bundle.entry[1].fullUrl",
    );
    common::assert_owner(f, Owner::Data, Severity::Error);
}

// ---------------------------------------------------------------------------------------------
// The chains end to end: source -> `healthanalyzer sync` -> our server -> read back.
// ---------------------------------------------------------------------------------------------

/// The `healthanalyzer` program: `$HEALTHANALYZER_BIN`, or the one built beside this test
/// (`target/debug/healthanalyzer`, built by `cargo build -p healthanalyzer` or any workspace
/// build). `None`, with a notice, when neither is there.
fn healthanalyzer_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HEALTHANALYZER_BIN").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let beside = exe.parent()?.parent()?.join("healthanalyzer");
    if beside.is_file() {
        return Some(beside);
    }
    assert!(
        std::env::var("HEALTHANALYZER_REQUIRE_CHAIN").as_deref() != Ok("1"),
        "HEALTHANALYZER_REQUIRE_CHAIN=1 but no healthanalyzer program at {} (set HEALTHANALYZER_BIN)",
        beside.display()
    );
    eprintln!(
        "notice: no healthanalyzer program at {} and HEALTHANALYZER_BIN is not set; the national chains are not run end to end (cargo build -p healthanalyzer)",
        beside.display()
    );
    None
}

/// Runs the `chain-<country>` suite: a source server (our own, with `tokens`), a sync with the
/// `[[source]]` table `source`, and our server over the sync's store as the receiver.
async fn run_chain(
    suite: &str,
    source: &str,
    tokens: Option<&str>,
    runner: impl Fn(&str) -> Runner,
) -> Option<Run> {
    let bin = healthanalyzer_bin()?;
    let sender = server(tokens).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("receiver.db");
    let config = dir.path().join("chain.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"sqlite:{}\"\n\n[[source]]\n{source}",
            db.display()
        ),
    )
    .unwrap();
    let sync = if source.is_empty() {
        // No sync at all: what the comparison must catch.
        "true".to_owned()
    } else {
        format!("'{}' sync --config '{}'", bin.display(), config.display())
    };
    let receiver = server_on(dir, &db, tokens).await;
    let run = runner(&receiver.base)
        .var("source", &sender.base)
        .var("sync", &sync)
        .run(&[suites::builtin(suite).unwrap()])
        .await;
    Some(run)
}

/// Runs a chain suite (see [`run_chain`]) and asserts that it found nothing.
async fn assert_chain_clean(
    suite: &str,
    source: &str,
    tokens: Option<&str>,
    runner: impl Fn(&str) -> Runner,
) {
    if let Some(run) = run_chain(suite, source, tokens, runner).await {
        assert_clean(&run);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pmd_chain_end_to_end() {
    assert_chain_clean(
        "chain-pmd",
        "id = \"pmd\"\nkind = \"fhir\"\nshape = \"pmd\"\nbase_url = \"${CHAIN_SOURCE}\"\npatient = \"${CHAIN_PATIENT}\"\n",
        None,
        |b| Runner::new(b).unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fut_chain_end_to_end() {
    assert_chain_clean(
        "chain-fut",
        "id = \"fut\"\nkind = \"fhir\"\nshape = \"fut\"\nbase_url = \"${CHAIN_SOURCE}\"\npatient = \"${CHAIN_PATIENT}\"\nepisode_of_care = \"${CHAIN_EPISODE}\"\nsubject = \"${CHAIN_SUBJECT}\"\n",
        None,
        |b| Runner::new(b).unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_medmij_chain_end_to_end() {
    let tokens = pgo_tokens();
    assert_chain_clean(
        "chain-medmij",
        &format!("id = \"pgo\"\nkind = \"fhir\"\nshape = \"medmij\"\nbase_url = \"${{CHAIN_SOURCE}}\"\ntoken = \"{PGO_TOKEN}\"\n"),
        Some(&tokens),
        pgo_runner,
    )
    .await;
}

/// A receiving side that never syncs: every reading is lost, and the comparison says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_without_a_sync_loses_every_reading() {
    let Some(run) = run_chain("chain-pmd", "", None, |b| Runner::new(b).unwrap()).await else {
        return;
    };
    let lost: Vec<_> = run
        .findings()
        .filter(|f| f.step == "compare" && f.message.starts_with("Lost:"))
        .collect();
    assert_eq!(lost.len(), 2, "{}", report::summary(&run));
    for f in &lost {
        common::assert_owner(f, Owner::Receiver, Severity::Error);
    }
    // The readings were found at the sender: the source is not to blame.
    assert!(
        !run.findings().any(|f| f.owner == Owner::Sender),
        "{}",
        report::summary(&run)
    );
}
