//! What the sink sends in each chain's upload shape, as a recording mock sees it: FUT's
//! `$submit-measurement` Parameters, the PMD batch, the MedMij batch, each passing FHIR's R4
//! and R4B models (`$HEALTHANALYZER_FHIR_TOOLS/validate_fhir.py`, when set); and a PMD read cut
//! inside its first page resumes by POSTing the search again.
#![allow(clippy::print_stderr)]

mod chains_common;

use std::io::Write;

use chains_common::{FNR_SYSTEM, fnr, measurement, pull_all};
use healthanalyzer_fhir::{FutContext, FutPerformer, FutSubject, National, Profile, WriteOptions};
use healthanalyzer_model::{Catalog, Identifier};
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_fhir::{FhirClient, FhirSink, FhirSource, Query, ServerConfig, Shape};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs validate_fhir.py over `dir` when `$HEALTHANALYZER_FHIR_TOOLS` says where it is.
fn validate(dir: &std::path::Path, n: usize) {
    let Some(tools) = std::env::var_os("HEALTHANALYZER_FHIR_TOOLS").filter(|t| !t.is_empty())
    else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED validation of {n} pushed resources: HEALTHANALYZER_FHIR_TOOLS is not set"
        );
        return;
    };
    let out = std::process::Command::new("python3")
        .arg(std::path::PathBuf::from(tools).join("validate_fhir.py"))
        .arg(dir)
        .args(["--fhir-version", "both", "-q"])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "validate_fhir.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{n} passed, 0 failed")),
        "{stdout}"
    );
}

#[tokio::test]
async fn every_upload_shape_is_valid_fhir() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"resourceType": "Bundle", "type": "batch-response", "entry": []}),
        ))
        .mount(&server)
        .await;
    let client =
        FhirClient::new(ServerConfig::new(format!("{}/fhir", server.uri()))).expect("client");
    let cpr = Identifier::cpr("0101709995");
    let kari = Identifier::new(FNR_SYSTEM, fnr("140380"));
    let bsn = Identifier::new("http://fhir.nl/fhir/NamingSystem/bsn", "999999990");
    let national = National {
        fut: Some(FutContext {
            patient_base: "https://patient.test.local/fhir".into(),
            careplan_base: "https://careplan.test.local/fhir".into(),
            organization_base: "https://organization.test.local/fhir".into(),
            subjects: vec![FutSubject {
                subject: cpr.clone(),
                patient: "76312".into(),
                episode_of_care: "39765".into(),
                service_request: "37067".into(),
                service_request_version: "42".into(),
                performer: FutPerformer::Patient,
            }],
        }),
        pmd: None,
    };
    let of = |who: &Identifier| {
        vec![
            measurement(
                "home",
                "a",
                who,
                "heart-rate",
                "64",
                "/min",
                "2024-05-01T07:30:00+02:00",
            ),
            measurement(
                "home",
                "b",
                who,
                "body-weight",
                "72.40",
                "kg",
                "2024-05-01T07:30:00+02:00",
            ),
        ]
    };
    for (profile, who) in [
        (Profile::Fut, &cpr),
        (Profile::Pmd, &kari),
        (Profile::NlCore, &bsn),
    ] {
        let options = WriteOptions::new(Catalog::builtin())
            .with_profile(profile)
            .with_national(&national);
        let _ = FhirSink::new(client.clone(), options)
            .push(&[], &of(who))
            .await
            .expect("push");
    }
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 3, "one request per shape");
    assert!(requests[0].url.path().ends_with("/$submit-measurement"));
    let dir = std::env::temp_dir().join(format!("ha-chains-shapes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (i, r) in requests.iter().enumerate() {
        let body: Value = serde_json::from_slice(&r.body).expect("json");
        std::fs::write(dir.join(format!("{i}.json")), body.to_string()).expect("write");
    }
    let fut: Value = serde_json::from_slice(&requests[0].body).expect("json");
    assert_eq!(fut["resourceType"], "Parameters");
    assert_eq!(
        fut["parameter"][0]["resource"]["entry"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let pmd: Value = serde_json::from_slice(&requests[1].body).expect("json");
    assert_eq!(pmd["type"], "batch");
    assert!(
        pmd["meta"]["profile"]
            .to_string()
            .contains("pmd-Bundle-Observation")
    );
    validate(&dir, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_pmd_read_cut_inside_its_first_page_posts_the_search_again() {
    let server = MockServer::start().await;
    let number = fnr("140380");
    let observation = |id: &str, minute: u32| {
        json!({"resource": {"resourceType": "Observation", "id": id, "status": "final",
            "meta": {"lastUpdated": "2025-01-05T10:00:00Z"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"identifier": {"system": FNR_SYSTEM, "value": number}, "display": "Pasient"},
            "effectiveDateTime": format!("2025-01-01T08:{minute:02}:00Z"),
            "valueQuantity": {"value": 60, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}})
    };
    // A server that answers more than it was asked for, on one page.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resourceType": "Bundle", "type": "searchset",
            "entry": [observation("o1", 1), observation("o2", 2), observation("o3", 3)]})))
        .mount(&server)
        .await;
    let client =
        FhirClient::new(ServerConfig::new(format!("{}/fhir", server.uri()))).expect("client");
    let source = FhirSource::new(
        "pmd-in",
        client,
        Query {
            shape: Shape::Pmd,
            patient: Some(format!("{FNR_SYSTEM}|{number}")),
            ..Query::default()
        },
    );
    let first = source.pull(&Cursor::start(), 2).await.expect("pull");
    assert_eq!(first.measurements.len(), 2);
    assert!(!first.exhausted);
    assert!(
        !first.cursor.as_str().contains(&number),
        "the FNR is in the cursor"
    );
    let (rest, _, _) = pull_all(&source, first.cursor, 2).await;
    let ids: Vec<_> = first
        .measurements
        .iter()
        .chain(&rest)
        .map(|m| m.provenance.record_id.clone())
        .collect();
    assert_eq!(ids, ["o1", "o2", "o3"]);
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.method.as_str() == "POST"));
}

#[tokio::test]
async fn a_plain_search_by_a_national_number_posts_it_and_by_another_system_gets_it() {
    let server = MockServer::start().await;
    let empty = json!({"resourceType": "Bundle", "type": "searchset", "entry": []});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty.clone()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty))
        .mount(&server)
        .await;
    let client =
        FhirClient::new(ServerConfig::new(format!("{}/fhir", server.uri()))).expect("client");
    let source = |patient: String| {
        FhirSource::new(
            "plain-in",
            client.clone(),
            Query {
                shape: Shape::Search,
                patient: Some(patient),
                ..Query::default()
            },
        )
    };
    let cpr = "0101709995";
    let by_cpr = source(format!("{}|{cpr}", healthanalyzer_model::systems::CPR));
    let batch = by_cpr
        .pull(&Cursor::start(), 10)
        .await
        .expect("pull by CPR");
    assert!(batch.exhausted);
    let mrn = "mrn-4711";
    let by_mrn = source(format!("https://hospital.test.local/mrn|{mrn}"));
    by_mrn
        .pull(&Cursor::start(), 10)
        .await
        .expect("pull by MRN");

    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (post, get) = (&requests[0], &requests[1]);
    assert_eq!(post.method.as_str(), "POST");
    assert!(
        post.url.path().ends_with("/Observation/_search"),
        "{}",
        post.url
    );
    assert!(!post.url.as_str().contains(cpr), "the CPR is in the URL");
    let body = String::from_utf8_lossy(&post.body);
    assert!(
        body.contains("subject%3Aidentifier=urn%3Aoid%3A1.2.208.176.1.2%7C") && body.contains(cpr),
        "the CPR search is not in the form body: {body}"
    );
    assert_eq!(get.method.as_str(), "GET");
    assert!(get.url.as_str().contains(mrn), "{}", get.url);
}
