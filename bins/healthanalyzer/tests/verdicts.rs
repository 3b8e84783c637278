//! One validity policy for every entry point: the same resource gets the same verdict from
//! `healthanalyzer import`, from the FHIR server, and from the checker's own judgement of what
//! it sent.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;

use healthanalyzer_check::{Owner, Runner, Scenario};
use healthanalyzer_server::FhirServer;
use healthanalyzer_store::Store;
use healthanalyzer_store_sqlite::SqliteStore;
use serde_json::{Value, json};

fn heart_rate() -> Value {
    json!({
        "resourceType": "Observation", "id": "v1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"identifier": {"system": "urn:test:mrn", "value": "verdicts"}},
        "effectiveDateTime": "2025-03-01T08:00:00Z",
        "valueQuantity": {"value": 61, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

/// The resources, each with whether it is valid FHIR R4.
fn cases() -> Vec<(&'static str, Value, bool)> {
    let mut unknown = heart_rate();
    unknown["colour"] = json!("blue");
    let mut nested_unknown = heart_rate();
    nested_unknown["code"]["coding"][0]["weight"] = json!(3);
    let mut wrong_type = heart_rate();
    wrong_type["status"] = json!(5);
    let mut wrong_cardinality = heart_rate();
    wrong_cardinality["code"]["coding"] = json!({"system": "http://loinc.org", "code": "8867-4"});
    vec![
        ("valid", heart_rate(), true),
        ("an element R4 does not define", unknown, false),
        ("an unknown element inside a Coding", nested_unknown, false),
        ("a number for a code", wrong_type, false),
        ("an object for an array", wrong_cardinality, false),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_the_server_and_the_checker_agree_on_what_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    let (_stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = FhirServer::new(store)
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    // reqwest is built with `rustls-no-provider` in the workspace: plain HTTP needs a provider too.
    healthanalyzer_source::http::install_crypto_provider();
    let client = reqwest::Client::new();
    // The server takes Observations of Patients it knows.
    let r = client
        .post(format!("{base}/Patient"))
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": "verdicts"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    for (i, (what, resource, valid)) in cases().into_iter().enumerate() {
        // import
        let file = dir.path().join(format!("case{i}.ndjson"));
        std::fs::write(&file, format!("{resource}\n")).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_healthanalyzer"))
            .env_remove("HEALTHANALYZER_DB")
            .current_dir(dir.path())
            .args(["--db", &format!("sqlite:i{i}.db"), "--json", "import"])
            .arg(&file)
            .output()
            .unwrap();
        let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
        let imported = summary[0]["inserted"] == 1;
        assert_eq!(
            o.status.code(),
            Some(if valid { 0 } else { 3 }),
            "{what}: {summary}"
        );

        // the server
        let mut body = resource.clone();
        body.as_object_mut().unwrap().remove("id");
        let r = client
            .post(format!("{base}/Observation"))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer = r.text().await.unwrap();
        let accepted = status == 201;
        assert!(accepted || !valid, "{what}: {status} {answer}");
        if !valid {
            assert_eq!(status, 400, "{what}: {answer}");
        }

        // the checker: a step that expects the create to succeed; when the server refuses,
        // the checker judges the resource itself with the same policy.
        let scenario = Scenario::from_toml(
            &format!(
                "name = \"verdict\"\n[[steps]]\nname = \"create\"\nrequest = {{ method = \"POST\", url = \"Observation\", body = '''{body}''' }}\nexpect = {{ status = 201 }}\n"
            ),
            "verdicts.rs",
        )
        .unwrap();
        let run = Runner::new(&base).unwrap().run(&[scenario]).await;
        let findings: Vec<_> = run.findings().collect();
        let checker_says_valid = findings.iter().all(|f| f.owner != Owner::Data);

        assert_eq!(imported, valid, "import on {what}");
        assert_eq!(accepted, valid, "server on {what}");
        assert_eq!(checker_says_valid, valid, "checker on {what}: {findings:?}");
        if !valid {
            assert!(
                findings.iter().any(|f| f.owner == Owner::Data),
                "{what}: {findings:?}"
            );
        }
    }
}
