//! The checker against a deliberately broken FHIR server: wrong status codes, components lost
//! on read, a `next` link loop, an operation that stalls for 30 s, dropped data at a source,
//! and refusals of good and bad data. Each fault must be found and given to the right owner.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{assert_owner, finding};
use healthanalyzer_check::{Outcome, Owner, Runner, Scenario, Severity, report, suites};
use serde_json::{Value, json};

#[derive(Default)]
struct Db {
    patients: usize,
    observations: Vec<Value>,
    /// Answer 200 instead of 201 to a created body weight.
    wrong_create_status: bool,
}

type Shared = Arc<Mutex<Db>>;

fn fhir(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

fn outcome(status: StatusCode, text: &str) -> Response {
    fhir(
        status,
        &json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": text}]}),
    )
}

async fn metadata() -> Response {
    fhir(
        StatusCode::OK,
        &json!({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
            "fhirVersion": "4.0.1", "format": ["json"], "rest": [{"mode": "server", "resource": [
                {"type": "Patient", "interaction": [{"code": "create"}, {"code": "delete"}]},
                {"type": "Observation",
                 "interaction": [{"code": "create"}, {"code": "read"}, {"code": "delete"}, {"code": "search-type"}],
                 "searchParam": [{"name": "patient", "type": "reference"}, {"name": "subject", "type": "reference"},
                                 {"name": "code", "type": "token"}, {"name": "date", "type": "date"}],
                 "operation": [{"name": "lastn", "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn"}]}]}]}),
    )
}

async fn create_patient(State(db): State<Shared>) -> Response {
    let n = {
        let mut db = db.lock().unwrap();
        db.patients += 1;
        db.patients
    };
    let mut r = fhir(
        StatusCode::CREATED,
        &json!({"resourceType": "Patient", "id": format!("p{n}")}),
    );
    r.headers_mut().insert(
        header::LOCATION,
        format!("/fhir/Patient/p{n}").parse().unwrap(),
    );
    r
}

fn code_of(o: &Value) -> &str {
    o.pointer("/code/coding/0/code")
        .and_then(Value::as_str)
        .unwrap_or("")
}

async fn create_observation(State(db): State<Shared>, body: Bytes) -> Response {
    let Ok(mut o) = serde_json::from_slice::<Value>(&body) else {
        // Fault: malformed JSON crashes the handler (500 instead of 400).
        return (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response();
    };
    if !o["status"].is_string() && !o["status"].is_null() {
        return outcome(StatusCode::BAD_REQUEST, "Observation.status: not a code");
    }
    if o.pointer("/meta/tag/0/code").and_then(Value::as_str) == Some("refuse-me") {
        return outcome(StatusCode::BAD_REQUEST, "we do not take these");
    }
    let (id, wrong_status) = {
        let mut db = db.lock().unwrap();
        let id = format!("o{}", db.observations.len() + 1);
        o["id"] = json!(id);
        // Fault at a source: oxygen saturation is acknowledged but never stored.
        if code_of(&o) != "59408-5" {
            db.observations.push(o.clone());
        }
        (id, db.wrong_create_status)
    };
    // Fault: body weight is created with 200 instead of 201.
    let status = if wrong_status && code_of(&o) == "29463-7" {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut r = fhir(status, &o);
    r.headers_mut().insert(
        header::LOCATION,
        format!("/fhir/Observation/{id}/_history/1")
            .parse()
            .unwrap(),
    );
    r
}

async fn read_observation(State(db): State<Shared>, Path(id): Path<String>) -> Response {
    if id == "$lastn" {
        // Fault: the operation stalls.
        tokio::time::sleep(Duration::from_secs(30)).await;
        return fhir(
            StatusCode::OK,
            &json!({"resourceType": "Bundle", "type": "searchset"}),
        );
    }
    let found = db
        .lock()
        .unwrap()
        .observations
        .iter()
        .find(|o| o["id"] == id.as_str())
        .cloned();
    match found {
        Some(mut o) => {
            // Fault: components are lost on the way out.
            if let Some(m) = o.as_object_mut() {
                m.remove("component");
            }
            fhir(StatusCode::OK, &o)
        }
        // Fault: an unknown id is "found", empty.
        None => fhir(StatusCode::OK, &json!({"resourceType": "Observation"})),
    }
}

async fn delete_any() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn search(
    State(db): State<Shared>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let query = uri.query().unwrap_or("");
    let pairs: Vec<(String, String)> = form_pairs(query);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let patient = get("patient")
        .or_else(|| get("subject"))
        .map(|p| p.trim_start_matches("Patient/").to_owned());
    let code = get("code").map(|c| c.rsplit('|').next().unwrap_or("").to_owned());
    let count: usize = get("_count").and_then(|c| c.parse().ok()).unwrap_or(50);
    let page: usize = get("page").and_then(|c| c.parse().ok()).unwrap_or(1);
    let all: Vec<Value> = db
        .lock()
        .unwrap()
        .observations
        .iter()
        .filter(|o| {
            patient.as_ref().is_none_or(|p| {
                o.pointer("/subject/reference").and_then(Value::as_str)
                    == Some(&format!("Patient/{p}"))
            })
        })
        .filter(|o| code.as_ref().is_none_or(|c| code_of(o) == c))
        .cloned()
        .collect();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let this = format!("http://{host}{uri}");
    let start = (page - 1) * count;
    let entries: Vec<Value> = all
        .iter()
        .skip(start)
        .take(count)
        .map(|o| json!({"resource": o}))
        .collect();
    let mut links = vec![json!({"relation": "self", "url": this})];
    if start + count < all.len() {
        // Fault: from page 2 on, the next link is the page itself.
        let next = if page >= 2 {
            this.clone()
        } else {
            format!("{this}&page=2")
        };
        links.push(json!({"relation": "next", "url": next}));
    }
    fhir(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "searchset", "total": all.len(), "link": links, "entry": entries}),
    )
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%7C", "|").replace("%7c", "|")))
        .collect()
}

async fn broken_server(wrong_create_status: bool) -> String {
    let db: Shared = Arc::new(Mutex::new(Db {
        wrong_create_status,
        ..Db::default()
    }));
    let app = Router::new()
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/Patient", axum::routing::post(create_patient))
        .route("/fhir/Patient/{id}", axum::routing::delete(delete_any))
        .route("/fhir/Observation", get(search).post(create_observation))
        .route(
            "/fhir/Observation/{id}",
            get(read_observation).delete(delete_any),
        )
        .with_state(db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/fhir")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_is_found_and_given_to_its_owner() {
    let base = broken_server(false).await;
    let runner = Runner::new(&base).unwrap().timeout(Duration::from_secs(2));
    let scenarios = [
        suites::builtin("vital-signs").unwrap(),
        suites::builtin("errors").unwrap(),
    ];
    let clock = Instant::now();
    let run = runner.run(&scenarios).await;
    // The 30-second stall is cut at the step's limit: the run does not hang on it.
    assert!(
        clock.elapsed() < Duration::from_secs(25),
        "{:?}",
        clock.elapsed()
    );
    eprintln!("{}", report::summary(&run));

    // Components lost on read.
    let f = finding(
        &run,
        "read blood-pressure",
        "component[code.coding.code=8480-6].valueQuantity.value: expected 128",
    );
    assert_owner(f, Owner::Receiver, Severity::Error);
    assert!(
        f.message.ends_with("expected 128, found nothing"),
        "{}",
        f.message
    );
    // The next-link loop.
    let f = finding(
        &run,
        "paging",
        "Paging loops: page 2's `next` link leads back to page 2",
    );
    assert_owner(f, Owner::Receiver, Severity::Error);
    // One finding for the one fault: the short count is its consequence, not another fault.
    assert_eq!(run.findings().filter(|f| f.step == "paging").count(), 1);
    // The stall: declared in the CapabilityStatement, so an error, not "not supported".
    let f = finding(&run, "lastn", "did not answer within 2 s");
    assert_owner(f, Owner::Receiver, Severity::Error);
    assert!(f.transport);
    let lastn = run.scenarios[0]
        .steps
        .iter()
        .find(|s| s.name == "lastn")
        .unwrap();
    assert!(
        lastn.elapsed < Duration::from_secs(5),
        "{:?}",
        lastn.elapsed
    );
    // A crash on malformed JSON.
    let f = finding(&run, "malformed JSON", "Status 500, expected 4xx");
    assert_owner(f, Owner::Receiver, Severity::Error);
    assert!(f.reason.contains("5xx"), "{}", f.reason);
    // An unknown id that is "found".
    let f = finding(&run, "unknown Observation", "Status 200, expected 404");
    assert_owner(f, Owner::Receiver, Severity::Error);
    // A bare 404 without an OperationOutcome (axum's own).
    let f = finding(&run, "unknown resource type", "not an OperationOutcome");
    assert_owner(f, Owner::Receiver, Severity::Error);
    // Invalid data accepted.
    let f = finding(&run, "missing status and code", "Status 201, expected 4xx");
    assert_owner(f, Owner::Receiver, Severity::Error);

    // Nothing here is the sender's or the data's.
    assert!(
        run.findings().all(|f| f.owner == Owner::Receiver),
        "{}",
        report::summary(&run)
    );
    assert!(run.has_errors());

    // Every finding in the triage report carries the request and its correlation id.
    let md = report::markdown(&run);
    for needle in [
        ". error · receiver · vital-signs › paging",
        "- **Request:** `GET http://127.0.0.1:",
        &format!("- **X-Request-Id:** `hc-{}-", run.run_id),
        "(not echoed by the server)",
        "| vital-signs | Observation/$lastn | yes | no (0/1) |",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in\n{md}");
    }
    let junit = report::junit(&run);
    assert!(
        junit.contains("<error message=\"The server did not answer within 2 s"),
        "{junit}"
    );
    common::validate_junit(&junit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_create_status_fails_the_create_and_skips_what_depends_on_it() {
    let base = broken_server(true).await;
    let run = Runner::new(&base)
        .unwrap()
        .run(&[suites::builtin("vital-signs").unwrap()])
        .await;
    let f = finding(&run, "create body-weight", "Status 200, expected 201");
    assert_owner(f, Owner::Receiver, Severity::Error);
    let steps = &run.scenarios[0].steps;
    for name in [
        "read body-weight",
        "search body-weight by code",
        "paging",
        "lastn",
    ] {
        let st = steps.iter().find(|s| s.name == name).unwrap();
        assert!(
            matches!(&st.outcome, Outcome::Skipped(r) if r == "step `create body-weight` did not pass"),
            "{name}: {:?}",
            st.outcome
        );
    }
    let md = report::markdown(&run);
    assert!(md.contains("## Skipped steps"), "{md}");
    assert!(
        md.contains("- vital-signs › read body-weight: step `create body-weight` did not pass")
    );
    let junit = report::junit(&run);
    assert!(junit.contains("<skipped>step `create body-weight` did not pass</skipped>"));
    assert!(
        junit.contains("<failure message=\"Status 200, expected 201."),
        "{junit}"
    );
    common::validate_junit(&junit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_bad_data_go_to_the_data_and_of_good_data_to_the_receiver() {
    let base = broken_server(false).await;
    let scenario = Scenario::from_toml(
        r#"
name = "refusals"
[[steps]]
name = "invalid data"
request = { method = "POST", url = "Observation", body = { resourceType = "Observation", status = 5, code = { text = "x" } } }
expect = { status = 201 }
[[steps]]
name = "valid data"
request = { method = "POST", url = "Observation", body = { resourceType = "Observation", status = "final", meta = { tag = [{ code = "refuse-me" }] }, code = { text = "x" } } }
expect = { status = 201 }
"#,
        "test",
    )
    .unwrap();
    let run = Runner::new(&base).unwrap().run(&[scenario]).await;
    let f = finding(&run, "invalid data", "Status 400, expected 201");
    assert_owner(f, Owner::Data, Severity::Error);
    assert!(
        f.message.contains("Observation.status: not a code"),
        "{}",
        f.message
    );
    assert!(f.reason.contains("fix the test data"), "{}", f.reason);
    let f = finding(&run, "valid data", "Status 400, expected 201");
    assert_owner(f, Owner::Receiver, Severity::Error);
    assert!(f.reason.contains("valid FHIR R4"), "{}", f.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_drops_data_is_the_senders_fault() {
    let base = broken_server(false).await;
    let run = Runner::new(&base)
        .unwrap()
        .var("source", &base)
        .var("sync", "true")
        .run(&[suites::builtin("chain").unwrap()])
        .await;
    // The source said 201 to the oxygen saturation, but does not have it.
    let f = finding(&run, "read back at the source", "3 entries, expected 4");
    assert_owner(f, Owner::Sender, Severity::Error);
    let compare = run.scenarios[0]
        .steps
        .iter()
        .find(|s| s.name == "compare")
        .unwrap();
    assert!(
        matches!(compare.outcome, Outcome::Skipped(_)),
        "{:?}",
        compare.outcome
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_finding_for_every_step_not_a_hang() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let run = Runner::new(&format!("http://{addr}/fhir"))
        .unwrap()
        .timeout(Duration::from_secs(2))
        .run(&[suites::builtin("errors").unwrap()])
        .await;
    let f = finding(&run, "create patient", "could not connect");
    assert_owner(f, Owner::Receiver, Severity::Error);
    assert!(f.transport);
    let f = finding(&run, "unknown Observation", "could not connect");
    assert!(f.transport);
    assert!(run.has_errors());
}
