//! The Netherlands' MedMij end to end against our own server: `FhirSink` under
//! `Profile::NlCore` sends a batch with `Prefer: return=representation` (conditional creates, so
//! a second push creates nothing); the FHIR source with `shape = medmij` reads with a
//! patient-context token and no `patient` parameter.

mod chains_common;

use std::collections::BTreeSet;

use chains_common::{ADMIN, BSN_SYSTEM, grant, ours, pull_all, said};
use healthanalyzer_fhir::{Profile, WriteOptions};
use healthanalyzer_model::{Catalog, Identifier};
use healthanalyzer_source::http::reqwest::Method;
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_fhir::{FhirClient, FhirSink, FhirSource, Query, ServerConfig, Shape};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ANNE: &str = "anne-token-0123456789abcdef";
/// A BSN that passes the eleven test.
const BSN: &str = "999999990";

fn medmij() -> Query {
    Query {
        shape: Shape::Medmij,
        ..Query::default()
    }
}

#[tokio::test]
async fn a_pgo_pushes_a_batch_and_reads_its_patient_from_the_token() {
    let s = ours(vec![(ANNE, grant("anne", "patient/*.crs", Some("anne")))]).await;
    let anne = Identifier::new(BSN_SYSTEM, BSN);
    let bob = Identifier::new("urn:test:mrn", "bob");
    s.patient("anne", BSN_SYSTEM, BSN, Some(ADMIN)).await;
    s.patient("bob", "urn:test:mrn", "bob", Some(ADMIN)).await;
    let m = |record: &str, who: &Identifier, kind: &str, v: &str, unit: &str, when: &str| {
        chains_common::measurement("pgo", record, who, kind, v, unit, when)
    };
    let hers = vec![
        m(
            "a",
            &anne,
            "body-weight",
            "68.20",
            "kg",
            "2025-03-01T08:00:00+01:00",
        ),
        m(
            "b",
            &anne,
            "heart-rate",
            "71",
            "/min",
            "2025-03-01T08:01:00+01:00",
        ),
    ];
    let his = m(
        "c",
        &bob,
        "heart-rate",
        "80",
        "/min",
        "2025-03-01T08:02:00+01:00",
    );
    let options = WriteOptions::new(Catalog::builtin()).with_profile(Profile::NlCore);
    let sink = FhirSink::new(s.client(Some(ANNE)), options);
    let mut batch = hers.clone();
    batch.push(his.clone());
    let summary = sink.push(&[], &batch).await.expect("push");
    assert_eq!(
        (summary.created, summary.existing, summary.bundles),
        (2, 0, 1),
        "{summary:?}"
    );
    assert_eq!(summary.refused.len(), 1, "{summary:?}");
    assert_eq!(summary.refused[0].measurement, his.id);
    assert!(summary.refused[0].status.starts_with("403"), "{summary:?}");
    // Pushed again: conditional creates find what the first made.
    let again = sink.push(&[], &hers).await.expect("push");
    assert_eq!((again.created, again.existing), (0, 2), "{again:?}");
    // Bob's, stored by the admin: Anne's token must not read it.
    let bob_hr = json!({"resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/bob"},
        "effectiveDateTime": "2025-03-01T09:00:00+01:00",
        "valueQuantity": {"value": 81, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}});
    let (status, body) = s
        .send(Method::POST, "Observation", Some(&bob_hr), Some(ADMIN))
        .await;
    assert_eq!(status, 201, "{body}");

    // Read with Anne's token, one per page: hers only, named by her BSN.
    let source = FhirSource::new("pgo-in", s.client(Some(ANNE)), medmij());
    source.check().await.expect("check");
    let (read, cursor, _) = pull_all(&source, Cursor::start(), 1).await;
    let got: BTreeSet<_> = read.iter().map(said).collect();
    let want: BTreeSet<_> = hers.iter().map(said).collect();
    assert_eq!(got, want, "{read:?}");
    assert!(read.iter().all(|m| m.subject == anne), "{read:?}");
    let (later, _, _) = pull_all(&source, cursor, 10).await;
    assert!(later.is_empty(), "{later:?}");
}

#[tokio::test]
async fn a_medmij_search_sends_no_patient_and_the_batch_asks_for_the_representation() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fhir/Observation"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"resourceType": "Bundle", "type": "searchset", "entry": []})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/fhir/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"resourceType": "Bundle", "type": "batch-response", "entry": []}),
        ))
        .mount(&server)
        .await;
    let client =
        FhirClient::new(ServerConfig::new(format!("{}/fhir", server.uri()))).expect("client");
    let source = FhirSource::new(
        "pgo-in",
        client.clone(),
        Query {
            codes: vec!["http://loinc.org|85354-9".into()],
            ..medmij()
        },
    );
    let (read, _, _) = pull_all(&source, Cursor::start(), 10).await;
    assert!(read.is_empty());
    let anne = Identifier::new(BSN_SYSTEM, BSN);
    let hr = chains_common::measurement(
        "pgo",
        "a",
        &anne,
        "heart-rate",
        "71",
        "/min",
        "2025-03-01T08:01:00+01:00",
    );
    let summary = FhirSink::new(
        client,
        WriteOptions::new(Catalog::builtin()).with_profile(Profile::NlCore),
    )
    .push(&[], std::slice::from_ref(&hr))
    .await
    .expect("push");
    // The server answered no entry for it: reported, not counted.
    assert_eq!(summary.refused.len(), 1, "{summary:?}");
    assert_eq!(summary.refused[0].status, "no answer");

    let requests = server.received_requests().await.expect("recorded");
    let get = requests
        .iter()
        .find(|r| r.method.as_str() == "GET")
        .expect("a search");
    let names: Vec<String> = get.url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("patient") || n.starts_with("subject")),
        "{names:?}"
    );
    assert!(
        names.contains(&"code".to_string()) && names.contains(&"category".to_string()),
        "{names:?}"
    );
    let post = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .expect("a batch");
    assert_eq!(
        post.headers.get("prefer").and_then(|v| v.to_str().ok()),
        Some("return=representation")
    );
    let bundle: serde_json::Value = serde_json::from_slice(&post.body).expect("json");
    assert_eq!(bundle["type"], "batch");
    let entry = &bundle["entry"][0];
    assert_eq!(entry["fullUrl"], format!("urn:uuid:{}", hr.id));
    assert_eq!(entry["request"]["method"], "POST");
    assert!(
        entry["request"]["ifNoneExist"]
            .as_str()
            .is_some_and(|c| c.starts_with("identifier="))
    );
    assert_eq!(entry["resource"]["subject"]["identifier"]["value"], BSN);
    let profiles = entry["resource"]["meta"]["profile"].to_string();
    assert!(profiles.contains("nl-core-HeartRate"), "{profiles}");
}

#[test]
fn a_medmij_source_takes_no_patient() {
    let client = FhirClient::new(ServerConfig::new("http://127.0.0.1:9/fhir")).expect("client");
    let source = FhirSource::new(
        "pgo-in",
        client,
        Query {
            patient: Some("Patient/anne".into()),
            ..medmij()
        },
    );
    let e = source.check_settings().expect_err("a patient");
    assert!(e.to_string().contains("token"), "{e}");
}
