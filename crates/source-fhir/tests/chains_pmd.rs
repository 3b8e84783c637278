//! Norway's PMD end to end against our own server: `FhirSink` under `Profile::Pmd` sends a
//! pmd-Bundle-Observation batch and reads the batch-response entry by entry (a refused entry is
//! reported by its measurement); the FHIR source with `shape = pmd` reads one person by FNR
//! with `POST Observation/_search`, never with the number in a URL.

mod chains_common;

use std::collections::BTreeSet;

use chains_common::{ADMIN, FNR_SYSTEM, fnr, grant, ours, pull_all, said};
use healthanalyzer_fhir::{Profile, WriteOptions};
use healthanalyzer_model::{Catalog, Identifier};
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_fhir::{FhirClient, FhirSink, FhirSource, Query, ServerConfig, Shape};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KARI: &str = "kari-token-0123456789abcdef";

fn pmd_query(number: &Identifier) -> Query {
    Query {
        shape: Shape::Pmd,
        patient: Some(format!("{FNR_SYSTEM}|{}", number.value())),
        ..Query::default()
    }
}

#[tokio::test]
async fn pmd_batch_entries_are_answered_one_by_one_and_read_back_by_fnr() {
    let s = ours(vec![(KARI, grant("kari", "patient/*.crs", Some("kari")))]).await;
    let kari = Identifier::new(FNR_SYSTEM, fnr("140380"));
    let ola = Identifier::new(FNR_SYSTEM, fnr("020290"));
    s.patient("kari", FNR_SYSTEM, kari.value(), Some(ADMIN))
        .await;
    s.patient("ola", FNR_SYSTEM, ola.value(), Some(ADMIN)).await;
    let options = WriteOptions::new(Catalog::builtin()).with_profile(Profile::Pmd);
    let m = |record: &str, who: &Identifier, kind: &str, v: &str, unit: &str, when: &str| {
        chains_common::measurement("home", record, who, kind, v, unit, when)
    };
    let first = vec![
        m(
            "a",
            &kari,
            "body-weight",
            "61.5",
            "kg",
            "2025-01-01T08:00:00+01:00",
        ),
        m(
            "b",
            &kari,
            "heart-rate",
            "58",
            "/min",
            "2025-01-02T08:00:00+01:00",
        ),
    ];
    let summary = FhirSink::new(s.client(Some(ADMIN)), options)
        .push(&[], &first)
        .await
        .expect("push");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    assert_eq!((summary.created, summary.bundles), (2, 1), "{summary:?}");
    // The same push again (a retry, or twice by mistake): conditional creates, nothing new.
    let again = FhirSink::new(s.client(Some(ADMIN)), options)
        .push(&[], &first)
        .await
        .expect("push again");
    assert!(again.refused.is_empty(), "{:?}", again.refused);
    assert_eq!((again.created, again.existing), (0, 2), "{again:?}");

    // Kari's own token may write hers, not Ola's: one entry refused, reported by measurement,
    // and the rest of the batch stored.
    let mixed = vec![
        m(
            "c",
            &kari,
            "body-weight",
            "61.2",
            "kg",
            "2025-01-03T08:00:00+01:00",
        ),
        m(
            "d",
            &ola,
            "body-weight",
            "90.0",
            "kg",
            "2025-01-03T08:00:00+01:00",
        ),
    ];
    let summary = FhirSink::new(s.client(Some(KARI)), options)
        .push(&[], &mixed)
        .await
        .expect("a refused entry is not a failed push");
    assert_eq!(summary.created, 1, "{summary:?}");
    assert_eq!(summary.refused.len(), 1, "{summary:?}");
    let refused = &summary.refused[0];
    assert_eq!(
        refused.measurement, mixed[1].id,
        "the refusal names Ola's measurement"
    );
    assert!(refused.status.starts_with("403"), "{refused:?}");
    assert!(
        !refused.reason.contains(ola.value()),
        "the FNR leaked: {refused:?}"
    );

    // A measurement PMD cannot take (no FNR, DNR or FHN) is reported and not sent.
    let local = Identifier::new("urn:test:mrn", "kari");
    let summary = FhirSink::new(s.client(Some(ADMIN)), options)
        .push(
            &[],
            &[m(
                "e",
                &local,
                "heart-rate",
                "60",
                "/min",
                "2025-01-04T08:00:00+01:00",
            )],
        )
        .await
        .expect("push");
    assert_eq!(
        (summary.bundles, summary.refused.len()),
        (0, 1),
        "{summary:?}"
    );
    assert_eq!(summary.refused[0].status, "not sent");

    // Read back by FNR, one per page: POST _search, then the server's next links.
    let source = FhirSource::new("pmd-in", s.client(Some(ADMIN)), pmd_query(&kari));
    source.check().await.expect("check");
    let (read, cursor, pulls) = pull_all(&source, Cursor::start(), 1).await;
    assert!(pulls >= 3, "one page each: {pulls}");
    let got: BTreeSet<_> = read.iter().map(said).collect();
    let want: BTreeSet<_> = [&first[0], &first[1], &mixed[0]]
        .into_iter()
        .map(said)
        .collect();
    assert_eq!(got, want);
    assert!(read.iter().all(|m| m.subject == kari), "{read:?}");
    let ids: BTreeSet<_> = read.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 3, "distinct records");
    // Nothing new: the next sync delivers nothing.
    let (again, _, _) = pull_all(&source, cursor, 10).await;
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn the_fnr_goes_in_the_post_body_and_never_in_a_url() {
    let server = MockServer::start().await;
    let number = fnr("140380");
    let observation = |id: &str, when: &str| {
        json!({"fullUrl": format!("{}/fhir/Observation/{id}", server.uri()),
               "resource": {"resourceType": "Observation", "id": id, "status": "final",
            "meta": {"lastUpdated": "2025-01-05T10:00:00Z"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"identifier": {"system": FNR_SYSTEM, "value": number}, "display": "Pasient"},
            "effectiveDateTime": when,
            "valueQuantity": {"value": 60, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}})
    };
    Mock::given(method("POST"))
        .and(path("/fhir/Observation/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resourceType": "Bundle", "type": "searchset",
            "link": [{"relation": "next", "url": format!("{}/fhir/Observation?_page=2&patient=p1", server.uri())}],
            "entry": [observation("o1", "2025-01-01T08:00:00Z")]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fhir/Observation"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resourceType": "Bundle", "type": "searchset",
            "entry": [observation("o2", "2025-01-02T08:00:00Z")]})))
        .mount(&server)
        .await;
    let client =
        FhirClient::new(ServerConfig::new(format!("{}/fhir", server.uri()))).expect("client");
    let kari = Identifier::new(FNR_SYSTEM, number.clone());
    let source = FhirSource::new("pmd-in", client, pmd_query(&kari));
    let (read, _, _) = pull_all(&source, Cursor::start(), 10).await;
    assert_eq!(read.len(), 2);
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert!(
            !r.url.as_str().contains(&number),
            "the FNR is in a URL: {}",
            r.url
        );
    }
    let post = &requests[0];
    assert_eq!(post.method.as_str(), "POST");
    assert_eq!(
        post.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-www-form-urlencoded")
    );
    let body = String::from_utf8_lossy(&post.body);
    let pairs: Vec<(String, String)> = body
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":").replace("%7C", "|")))
        .collect();
    assert!(
        pairs.contains(&(
            "patient.identifier".into(),
            format!("{FNR_SYSTEM}|{number}")
        )),
        "{body}"
    );
}

#[test]
fn a_pmd_source_needs_the_patient_as_system_and_value() {
    let client = FhirClient::new(ServerConfig::new("http://127.0.0.1:9/fhir")).expect("client");
    let by_reference = FhirSource::new(
        "pmd-in",
        client.clone(),
        Query {
            shape: Shape::Pmd,
            patient: Some("Patient/kari".into()),
            ..Query::default()
        },
    );
    let e = by_reference.check_settings().expect_err("a reference");
    assert!(e.to_string().contains("system|value"), "{e}");
    let none = FhirSource::new(
        "pmd-in",
        client,
        Query {
            shape: Shape::Pmd,
            ..Query::default()
        },
    );
    assert!(none.check_settings().is_err());
}
