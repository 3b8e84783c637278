//! The deliberately broken FHIR server the checker's tests run against: wrong status codes,
//! components lost on read, an unknown id "found" empty, a `next` link loop, an operation that
//! stalls for 30 s, oxygen saturation acknowledged but never stored, malformed JSON answered
//! with 500, and a refusal of good data (tagged `refuse-me`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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

/// Starts the broken server on a free port; its FHIR base URL. With `wrong_create_status`, a
/// created body weight is answered 200 instead of 201.
pub async fn broken_server(wrong_create_status: bool) -> String {
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
