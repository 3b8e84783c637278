//! The official HL7 R4 vital-sign examples (`$HEALTHANALYZER_FIXTURES/hl7-fhir-r4-examples`)
//! through the API: their Patients are PUT, every vital-sign Observation is POSTed and read
//! back equal to what was sent (apart from `id` and `meta`), and every response body passes the
//! independent validators (`$HEALTHANALYZER_FHIR_TOOLS/validate_fhir.py`, R4 and R4B).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::io::Write;
use std::path::PathBuf;

use common::start;
use healthanalyzer_server::ServerConfig;
use serde_json::Value;

fn skip(what: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}");
}

fn without_id_and_meta(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
        o.remove("meta");
    }
    v
}

#[tokio::test]
async fn vital_sign_examples_post_and_read_back_equal() {
    let Some(fixtures) = std::env::var_os("HEALTHANALYZER_FIXTURES") else {
        skip(
            "vital_sign_examples_post_and_read_back_equal: HEALTHANALYZER_FIXTURES is not set (.ci/run sets it)",
        );
        return;
    };
    let dir = PathBuf::from(fixtures).join("hl7-fhir-r4-examples");
    let s = start(ServerConfig::default()).await;
    let out = tempfile::tempdir().unwrap();
    let mut saved = 0;
    let mut save = |name: &str, body: &Value| {
        std::fs::write(out.path().join(format!("{name}.json")), body.to_string()).unwrap();
        saved += 1;
    };

    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("observation"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut posted = 0;
    let mut refused = Vec::new();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("\"vital-signs\"") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let sent: Value = serde_json::from_str(&text).unwrap();
        // Its Patient first, from the examples when there is one, with the example's id.
        let reference = sent["subject"]["reference"].as_str().unwrap();
        let pid = reference.strip_prefix("Patient/").unwrap();
        if s.get(&format!("Patient/{pid}")).await.status == 404 {
            let file = dir.join("patient").join(format!("Patient-{pid}.json"));
            let patient: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let a = s.put(&format!("Patient/{pid}"), &patient).await;
            assert_eq!(a.status, 201, "Patient/{pid}: {}", a.text);
            save(&format!("patient-{pid}-created"), &a.body);
            let back = s.get(&format!("Patient/{pid}")).await;
            assert_eq!(
                without_id_and_meta(&back.body),
                without_id_and_meta(&patient),
                "Patient/{pid} read back"
            );
            save(&format!("patient-{pid}-read"), &back.body);
        }
        let a = s.post("Observation", &sent).await;
        if a.status != 201 {
            // Refused: an OperationOutcome, and the reason must be the catalog, nothing else.
            let why = a.outcome();
            refused.push(format!("{name}: HTTP {} {why}", a.status));
            save(&format!("{name}-refused"), &a.body);
            continue;
        }
        posted += 1;
        save(&format!("{name}-created"), &a.body);
        let id = a.body["id"].as_str().unwrap();
        assert_ne!(Some(id), sent["id"].as_str(), "the server assigns ids");
        let back = s.get(&format!("Observation/{id}")).await;
        assert_eq!(back.status, 200);
        assert_eq!(
            without_id_and_meta(&back.body),
            without_id_and_meta(&sent),
            "{name}: read back differs from what was sent"
        );
        // meta elements the example had (profiles, tags) are kept beside versionId.
        if let Some(meta) = sent["meta"].as_object() {
            for (k, v) in meta {
                if k != "versionId" && k != "lastUpdated" {
                    assert_eq!(&back.body["meta"][k], v, "{name}: meta.{k}");
                }
            }
        }
        save(&format!("{name}-read"), &back.body);
    }
    assert!(posted >= 15, "only {posted} posted; refused: {refused:#?}");
    assert_eq!(
        refused.len(),
        1,
        "only the vitals panel (no value of its own) is refused: {refused:#?}"
    );
    assert!(
        refused[0].starts_with("Observation-vitals-panel: HTTP 422"),
        "{refused:?}"
    );

    // Search results and the CapabilityStatement too.
    for (name, q) in [
        ("search-example", "Observation?patient=example&_count=5"),
        ("search-f201", "Observation?subject=Patient/f201"),
        ("search-code", "Observation?code=http://loinc.org|85354-9"),
        ("search-patient", "Patient?name=chalmers"),
        ("metadata", "metadata"),
    ] {
        let a = s.get(q).await;
        assert_eq!(a.status, 200, "{q}: {}", a.text);
        save(name, &a.body);
    }
    let example = s.get("Observation?patient=example&_summary=count").await;
    assert_eq!(
        example.body["total"].as_u64(),
        Some(posted as u64 - 1),
        "all but f202 (Patient/f201) are Patient/example's"
    );
    let n = saved;

    match std::env::var_os("HEALTHANALYZER_FHIR_TOOLS").filter(|t| !t.is_empty()) {
        None => {
            assert!(
                std::env::var("HEALTHANALYZER_REQUIRE_FHIR").as_deref() != Ok("1"),
                "HEALTHANALYZER_REQUIRE_FHIR=1 but HEALTHANALYZER_FHIR_TOOLS is not set: the server's responses cannot be validated"
            );
            skip(
                "validation of the server's responses: HEALTHANALYZER_FHIR_TOOLS is not set (.ci/run sets it to ../shared/tools)",
            )
        }
        Some(tools) => {
            let script = PathBuf::from(tools).join("validate_fhir.py");
            let res = std::process::Command::new("python3")
                .arg(&script)
                .arg(out.path())
                .args(["--fhir-version", "both", "-q"])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&res.stdout);
            assert!(
                res.status.success(),
                "validate_fhir.py failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&res.stderr)
            );
            assert!(
                stdout.contains(&format!("{n} passed, 0 failed")),
                "expected {n} files validated: {stdout}"
            );
        }
    }
}
