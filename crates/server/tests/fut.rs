//! Denmark's FUT measurement exchange over real HTTP: `$submit-measurement` (FUT's rules, one
//! write set with the server's Provenance, token context), `$search-measurements` and
//! `$search-measurements-bundle-limit` (one collection Bundle per submission), the
//! OperationDefinitions and the CapabilityStatement; every answer passes the independent
//! validators (`$HEALTHANALYZER_FHIR_TOOLS/validate_fhir.py`, R4 and R4B) when they are there.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use common::Answer;
use healthanalyzer_model::{Identifier, KindId, Measurement, MeasurementId, Subject};
use healthanalyzer_server::{AuthConfig, FhirServer, Grant, Scope, ServerConfig};
use healthanalyzer_store::{
    Applied, Checkpoint, Document, DocumentQuery, Error, Filter, MeasurementStore, MemoryStore,
    Page, Query, Result, SubjectStore, Versioned, WriteSet, WriteSetStore, WriteSummary,
};
use serde_json::{Value, json};

const EOC_EXTENSION: &str = "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare";
const PATIENT: &str = "https://patient.cit-measurement-2050.local/fhir/Patient/76312";
const OTHER_PATIENT: &str = "https://patient.cit-measurement-2050.local/fhir/Patient/555";
const EPISODE: &str = "https://careplan.cit-measurement-2050.local/fhir/EpisodeOfCare/39765";
const OTHER_EPISODE: &str = "https://careplan.cit-measurement-2050.local/fhir/EpisodeOfCare/1";
const SERVICE_REQUEST: &str =
    "https://careplan.cit-measurement-2050.local/fhir/ServiceRequest/37067";
const DEVICE: &str = "https://device.cit-measurement-2050.local/fhir/Device/40397";

// ---------------------------------------------------------------------------------------------
// A memory store whose apply can be made to fail, and that remembers what it was given.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Switch {
    inner: MemoryStore,
    fail: AtomicBool,
    applies: AtomicUsize,
    /// (measurements, documents) of every write set applied or refused.
    sets: Mutex<Vec<(usize, usize)>>,
}

#[async_trait]
impl MeasurementStore for Switch {
    async fn write(&self, b: &[Measurement], cp: Option<&Checkpoint>) -> Result<WriteSummary> {
        self.inner.write(b, cp).await
    }
    async fn get(&self, id: &MeasurementId) -> Result<Option<Measurement>> {
        self.inner.get(id).await
    }
    async fn query(&self, q: &Query) -> Result<Page> {
        self.inner.query(q).await
    }
    async fn count(&self, f: &Filter) -> Result<u64> {
        self.inner.count(f).await
    }
    async fn latest(&self, s: &Identifier, k: &[KindId], n: usize) -> Result<Vec<Measurement>> {
        self.inner.latest(s, k, n).await
    }
    async fn measured_subjects(&self) -> Result<Vec<Identifier>> {
        self.inner.measured_subjects().await
    }
    async fn delete(&self, ids: &[MeasurementId]) -> Result<u64> {
        self.inner.delete(ids).await
    }
    async fn checkpoint(&self, s: &str) -> Result<Option<Checkpoint>> {
        self.inner.checkpoint(s).await
    }
}

#[async_trait]
impl SubjectStore for Switch {
    async fn put_subjects(&self, s: &[Subject]) -> Result<WriteSummary> {
        self.inner.put_subjects(s).await
    }
    async fn subject(&self, id: &Identifier) -> Result<Option<Subject>> {
        self.inner.subject(id).await
    }
    async fn list_subjects(&self) -> Result<Vec<Subject>> {
        self.inner.list_subjects().await
    }
    async fn subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Subject>> {
        self.inner.subjects_page(after, limit).await
    }
    async fn delete_subject(&self, id: &Identifier) -> Result<bool> {
        self.inner.delete_subject(id).await
    }
}

#[async_trait]
impl WriteSetStore for Switch {
    async fn apply(&self, set: &WriteSet) -> Result<Applied> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        self.sets
            .lock()
            .unwrap()
            .push((set.measurements.len(), set.documents.len()));
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                reason: "made to fail by the test".into(),
                retryable: true,
                source: None,
            });
        }
        self.inner.apply(set).await
    }
    async fn get_versioned(&self, id: &MeasurementId) -> Result<Option<Versioned<Measurement>>> {
        self.inner.get_versioned(id).await
    }
    async fn subject_versioned(&self, id: &Identifier) -> Result<Option<Versioned<Subject>>> {
        self.inner.subject_versioned(id).await
    }
    async fn document(&self, ty: &str, id: &str) -> Result<Option<Versioned<Document>>> {
        self.inner.document(ty, id).await
    }
    async fn find_documents(&self, q: &DocumentQuery) -> Result<Vec<Versioned<Document>>> {
        self.inner.find_documents(q).await
    }
    async fn unrecorded_subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Identifier>> {
        self.inner.unrecorded_subjects_page(after, limit).await
    }
}

impl Switch {
    /// Every measurement and document in the store.
    async fn contents(&self) -> (u64, usize) {
        let mut measurements = 0;
        for s in self.inner.measured_subjects().await.unwrap() {
            measurements += self.inner.count(&Filter::subject(s)).await.unwrap();
        }
        let mut documents = 0;
        for ty in ["Provenance", "Media", "QuestionnaireResponse"] {
            documents += self
                .inner
                .find_documents(&DocumentQuery::new(ty, 10_000))
                .await
                .unwrap()
                .len();
        }
        (measurements, documents)
    }
}

// ---------------------------------------------------------------------------------------------
// A server over it, and a client.
// ---------------------------------------------------------------------------------------------

struct Fut {
    base: String,
    store: Arc<Switch>,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Where the answers are kept for the validators.
    out: tempfile::TempDir,
    saved: AtomicUsize,
}

impl Drop for Fut {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn start(auth: Option<AuthConfig>) -> Fut {
    let store = Arc::new(Switch::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = FhirServer::new(store.clone()).config(ServerConfig {
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
    Fut {
        base: format!("http://{addr}/fhir"),
        store,
        http: common::client(),
        stop: Some(tx),
        out: tempfile::tempdir().unwrap(),
        saved: AtomicUsize::new(0),
    }
}

impl Fut {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        common::send_to(&self.http, &self.base, method, path, body, &headers).await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body), None)
            .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    /// Keeps an answer for the validators.
    fn save(&self, name: &str, body: &Value) {
        assert!(body.get("resourceType").is_some(), "{name}: {body}");
        std::fs::write(
            self.out.path().join(format!("{name}.json")),
            body.to_string(),
        )
        .unwrap();
        self.saved.fetch_add(1, Ordering::SeqCst);
    }

    /// Runs the validators over every answer saved, when they are there.
    fn validate(&self) {
        let n = self.saved.load(Ordering::SeqCst);
        let Some(tools) = std::env::var_os("HEALTHANALYZER_FHIR_TOOLS").filter(|t| !t.is_empty())
        else {
            assert!(
                std::env::var("HEALTHANALYZER_REQUIRE_FHIR").as_deref() != Ok("1"),
                "HEALTHANALYZER_REQUIRE_FHIR=1 but HEALTHANALYZER_FHIR_TOOLS is not set"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED validation of {n} FUT answers: HEALTHANALYZER_FHIR_TOOLS is not set (.ci/run sets it to ../shared/tools)"
            );
            return;
        };
        let script = PathBuf::from(tools).join("validate_fhir.py");
        let res = std::process::Command::new("python3")
            .arg(&script)
            .arg(self.out.path())
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

// ---------------------------------------------------------------------------------------------
// Submissions, as FUT's example shows them.
// ---------------------------------------------------------------------------------------------

fn resolved_timing() -> Value {
    json!({"url": "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-resolved-timing",
           "extension": [
               {"url": "serviceRequestVersionId", "valueId": "42"},
               {"url": "type", "valueCodeableConcept": {"coding": [
                   {"system": "http://ehealth.sundhed.dk/cs/resolved-timing-type", "code": "Adhoc"}]}}]})
}

/// An ehealth-observation: a body weight with its NPU code.
fn observation(patient: &str, episode: &str, when: &str, kg: f64) -> Value {
    json!({
        "resourceType": "Observation",
        "meta": {"profile": ["http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-observation"]},
        "extension": [
            {"url": EOC_EXTENSION, "valueReference": {"reference": episode}},
            resolved_timing()
        ],
        "basedOn": [{"reference": SERVICE_REQUEST}],
        "status": "final",
        "code": {"coding": [{"system": "urn:oid:1.2.208.176.2.1", "code": "NPU03804",
                             "display": "Pt—Legeme; masse = ? kg"}]},
        "subject": {"reference": patient},
        "effectiveDateTime": when,
        "performer": [{"reference": patient}],
        "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
        "device": {"reference": DEVICE}
    })
}

fn media(patient: &str, episode: &str, when: &str) -> Value {
    json!({
        "resourceType": "Media",
        "meta": {"profile": ["http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-media"],
                 "tag": [{"system": "http://ehealth.sundhed.dk/cs/ehealth-system", "code": "xa"}]},
        "extension": [
            {"url": EOC_EXTENSION, "valueReference": {"reference": episode}},
            resolved_timing()
        ],
        "basedOn": [{"reference": SERVICE_REQUEST}],
        "status": "completed",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/media-type", "code": "image"}]},
        "subject": {"reference": patient},
        "createdDateTime": when,
        "content": {"contentType": "text/plain", "data": "ZTc0ZWViMGEtMTE4MC00MzQ4LWEyMjgtOWViNDcyNTE3Mjlm"}
    })
}

fn questionnaire_response(patient: &str, episode: &str, when: &str) -> Value {
    json!({
        "resourceType": "QuestionnaireResponse",
        "extension": [
            {"url": EOC_EXTENSION, "valueReference": {"reference": episode}},
            resolved_timing()
        ],
        "basedOn": [{"reference": SERVICE_REQUEST}],
        "questionnaire": "https://questionnaire.cit-measurement-2050.local/fhir/Questionnaire/5196",
        "status": "completed",
        "subject": {"reference": patient},
        "authored": when
    })
}

/// A Provenance of the client's (FUT's "reuse"), targeting another entry by its fullUrl.
fn reuse(target: &str) -> Value {
    json!({
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": "2025-02-06T14:41:00+00:00",
        "policy": ["http://ehealth.sundhed.dk/policy/ehealth/reuse-of-measurement-chosen-by-citizen"],
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "CREATE"}]},
        "agent": [{"who": {"reference": PATIENT}}]
    })
}

fn entry(n: usize, resource: Value) -> Value {
    let ty = resource["resourceType"].as_str().unwrap().to_string();
    json!({"fullUrl": format!("urn:uuid:00000000-0000-4000-8000-{n:012}"),
           "resource": resource,
           "request": {"method": "POST", "url": ty}})
}

fn submission(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "measurement", "resource":
        {"resourceType": "Bundle", "type": "transaction", "entry": entries}}]})
}

/// Observation, Observation, Media, QuestionnaireResponse, and a Provenance on the first.
fn full(when: &str) -> Value {
    submission(vec![
        entry(1, observation(PATIENT, EPISODE, when, 81.5)),
        entry(2, observation(PATIENT, EPISODE, when, 81.7)),
        entry(3, media(PATIENT, EPISODE, when)),
        entry(4, questionnaire_response(PATIENT, EPISODE, when)),
        entry(5, reuse("urn:uuid:00000000-0000-4000-8000-000000000001")),
    ])
}

fn search(patient: Option<&str>, episode: Option<&str>, start: &str, end: Option<&str>) -> Value {
    let mut p = Vec::new();
    if let Some(r) = patient {
        p.push(json!({"name": "patient", "valueReference": {"reference": r}}));
    }
    if let Some(r) = episode {
        p.push(json!({"name": "episodeOfCare", "valueReference": {"reference": r}}));
    }
    let mut period = json!({"start": start});
    if let Some(e) = end {
        period["end"] = json!(e);
    }
    p.push(json!({"name": "period", "valuePeriod": period}));
    json!({"resourceType": "Parameters", "parameter": p})
}

/// `Type/id` of a response entry's location (`<base>/Type/id/_history/1`).
fn located(base: &str, e: &Value) -> String {
    let loc = e["response"]["location"].as_str().unwrap();
    let rest = loc
        .strip_prefix(&format!("{base}/"))
        .unwrap_or_else(|| panic!("{loc}"));
    rest.split("/_history/").next().unwrap().to_string()
}

/// The `Type/id` of each resource of each submission of a search answer.
fn grouped(answer: &Answer) -> Vec<Vec<String>> {
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["type"], "collection", "{}", answer.text);
    answer.body["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            assert!(e["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"));
            assert_eq!(e["resource"]["type"], "collection");
            e["resource"]["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    let r = &x["resource"];
                    format!(
                        "{}/{}",
                        r["resourceType"].as_str().unwrap(),
                        r["id"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_submission_is_stored_with_its_provenance_and_found_grouped() {
    let s = start(None).await;
    let a = s
        .post("$submit-measurement", &full("2025-02-06T14:40:50+00:00"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.save("submit-response", &a.body);
    assert_eq!(a.body["type"], "transaction-response");
    let entries = a.body["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 5, "one response entry per submitted entry");
    for e in entries {
        assert_eq!(e["response"]["status"], "201 Created", "{e}");
        assert_eq!(e["response"]["etag"], "W/\"1\"");
    }
    let submitted: Vec<String> = entries.iter().map(|e| located(&s.base, e)).collect();
    let types: Vec<&str> = submitted
        .iter()
        .map(|t| t.split('/').next().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Observation",
            "Observation",
            "Media",
            "QuestionnaireResponse",
            "Provenance"
        ]
    );
    // Observations read back as sent (FUT's extensions kept), with the server's id.
    for (t, kg) in submitted[..2].iter().zip([81.5, 81.7]) {
        let o = s.get(t).await;
        assert_eq!(o.status, 200, "{t}: {}", o.text);
        assert_eq!(o.body["valueQuantity"]["value"], kg);
        assert_eq!(
            o.body["extension"][0]["valueReference"]["reference"],
            EPISODE
        );
        assert_eq!(o.body["subject"]["reference"], PATIENT);
        assert_eq!(
            format!("Observation/{}", o.body["id"].as_str().unwrap()),
            *t
        );
        s.save(&format!("read-{}", t.replace('/', "-")), &o.body);
    }
    // Media, QuestionnaireResponse and the client's Provenance are kept; its target, a
    // urn:uuid fullUrl, now names the stored Observation.
    for t in &submitted[2..] {
        let d = s.get(t).await;
        assert_eq!(d.status, 200, "{t}: {}", d.text);
        assert_eq!(d.body["meta"]["versionId"], "1");
        s.save(&format!("read-{}", t.replace('/', "-")), &d.body);
    }
    let reused = s.get(&submitted[4]).await;
    assert_eq!(reused.body["target"][0]["reference"], submitted[0].as_str());

    // The server's Provenance: every submitted resource, now, the policy, the agent.
    let link = a.body["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "provenance")
        .and_then(|l| l["url"].as_str())
        .unwrap()
        .to_string();
    let p = s.get(&link).await;
    assert_eq!(p.status, 200, "{}", p.text);
    s.save("read-server-provenance", &p.body);
    let targets: Vec<&str> = p.body["target"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reference"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        submitted.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        p.body["policy"][0],
        "http://ehealth.sundhed.dk/policy/ehealth/coherent-submitted-measurement"
    );
    assert!(p.body["recorded"].as_str().unwrap().starts_with("20"));
    assert!(p.body["agent"][0]["who"].is_object());
    assert_eq!(p.body["occurredPeriod"]["start"], "2025-02-06T14:40:50Z");
    let provenance = format!("Provenance/{}", p.body["id"].as_str().unwrap());

    // A second submission, a day later.
    let b = s
        .post(
            "$submit-measurement",
            &submission(vec![entry(
                1,
                observation(PATIENT, EPISODE, "2025-02-07T09:00:00+01:00", 80.9),
            )]),
        )
        .await;
    assert_eq!(b.status, 200, "{}", b.text);
    let second = located(&s.base, &b.body["entry"][0]);

    // Found grouped, one Bundle per submission in time order, each with its resources and
    // the server's Provenance last.
    let found = s
        .post(
            "$search-measurements",
            &search(Some(PATIENT), None, "2025-02-01", None),
        )
        .await;
    s.save("search-response", &found.body);
    let groups = grouped(&found);
    assert_eq!(groups.len(), 2, "{}", found.text);
    let mut first = submitted.clone();
    first.push(provenance.clone());
    assert_eq!(groups[0], first);
    assert_eq!(groups[1].len(), 2);
    assert_eq!(groups[1][0], second);
    // By episode of care alone; by both; relative references are the same Patient.
    let by_episode = s
        .post(
            "$search-measurements",
            &search(None, Some(EPISODE), "2025-02-01", None),
        )
        .await;
    assert_eq!(grouped(&by_episode).len(), 2);
    let relative = s
        .post(
            "$search-measurements",
            &search(
                Some("Patient/76312"),
                Some("EpisodeOfCare/39765"),
                "2025-02-01",
                None,
            ),
        )
        .await;
    assert_eq!(grouped(&relative).len(), 2);
    // The period picks: a day with only the first; a period before both; another Patient.
    let day = s
        .post(
            "$search-measurements",
            &search(Some(PATIENT), None, "2025-02-06", Some("2025-02-06")),
        )
        .await;
    assert_eq!(grouped(&day), vec![first.clone()]);
    let before = s
        .post(
            "$search-measurements",
            &search(Some(PATIENT), None, "2024-01-01", Some("2025-02-05")),
        )
        .await;
    assert!(grouped(&before).is_empty());
    let other = s
        .post(
            "$search-measurements",
            &search(Some(OTHER_PATIENT), None, "2020", None),
        )
        .await;
    assert!(grouped(&other).is_empty());
    // based-on and device.
    let mut with = search(Some(PATIENT), None, "2025", None);
    with["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "based-on", "valueReference": {"reference": "ServiceRequest/37067"}}));
    with["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "device", "valueReference": {"reference": DEVICE}}));
    assert_eq!(
        grouped(&s.post("$search-measurements", &with).await).len(),
        2
    );
    let mut without = search(Some(PATIENT), None, "2025", None);
    without["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "based-on", "valueReference": {"reference": "ServiceRequest/1"}}));
    assert!(grouped(&s.post("$search-measurements", &without).await).is_empty());
    // _tag filters: only the first submission has a resource tagged xa.
    let tagged = |tag: Value| {
        let mut q = search(Some(PATIENT), None, "2025", None);
        q["parameter"].as_array_mut().unwrap().push(tag);
        q
    };
    let xa = tagged(json!({"name": "_tag", "valueCoding":
        {"system": "http://ehealth.sundhed.dk/cs/ehealth-system", "code": "xa"}}));
    assert_eq!(
        grouped(&s.post("$search-measurements", &xa).await),
        vec![first.clone()]
    );
    let token = tagged(
        json!({"name": "_tag", "valueString": "http://ehealth.sundhed.dk/cs/ehealth-system|xa"}),
    );
    assert_eq!(
        grouped(&s.post("$search-measurements", &token).await).len(),
        1
    );
    let other_system =
        tagged(json!({"name": "_tag", "valueCoding": {"system": "http://other", "code": "xa"}}));
    assert!(grouped(&s.post("$search-measurements", &other_system).await).is_empty());

    // The bundle-limit search: the first from start on, the last up to end.
    let limit = |from: &str, at: &str| {
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "patient", "valueReference": {"reference": PATIENT}},
            {"name": "count", "valueInteger": 1},
            {"name": from, "valueDateTime": at}]})
    };
    let l = s
        .post(
            "$search-measurements-bundle-limit",
            &limit("start", "2025-01-01"),
        )
        .await;
    s.save("search-limit-response", &l.body);
    assert_eq!(grouped(&l), vec![first.clone()]);
    let l = s
        .post(
            "$search-measurements-bundle-limit",
            &limit("end", "2025-12-31"),
        )
        .await;
    let g = grouped(&l);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0][0], second);

    // The Observations are ordinary measurements too: the Patient they name is searchable.
    let (ids, _) = common_search(&s, "Observation?patient=76312").await;
    assert_eq!(ids.len(), 3);
    s.validate();
}

async fn common_search(s: &Fut, q: &str) -> (Vec<String>, usize) {
    let a = s.get(q).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let ids = a.body["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    let n = ids.len();
    (ids, n)
}

/// Every refusal: a 4xx OperationOutcome with an issue at the element, and nothing written.
#[tokio::test]
async fn refusals_name_the_element_and_write_nothing() {
    let s = start(None).await;
    let when = "2025-02-06T14:40:50+00:00";
    let obs = || observation(PATIENT, EPISODE, when, 81.5);
    let mut not_final = obs();
    not_final["status"] = json!("preliminary");
    let mut no_episode = obs();
    no_episode["extension"] = json!([resolved_timing()]);
    let mut batch = submission(vec![entry(1, obs())]);
    batch["parameter"][0]["resource"]["type"] = json!("batch");
    let mut unknown_code = obs();
    unknown_code["code"]["coding"][0]["code"] = json!("NPU99999");
    let mut put = submission(vec![entry(1, obs())]);
    put["parameter"][0]["resource"]["entry"][0]["request"] =
        json!({"method": "PUT", "url": "Observation/1"});
    let mut extra = submission(vec![entry(1, obs())]);
    extra["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "other", "valueString": "x"}));
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "two patients",
            submission(vec![
                entry(1, obs()),
                entry(2, observation(OTHER_PATIENT, EPISODE, when, 80.0)),
            ]),
            422,
            "Parameters.parameter[0].resource.entry[1].resource.subject",
        ),
        (
            "two episodes",
            submission(vec![
                entry(1, obs()),
                entry(2, observation(PATIENT, OTHER_EPISODE, when, 80.0)),
            ]),
            422,
            "Parameters.parameter[0].resource.entry[1].resource.extension",
        ),
        (
            "not final",
            submission(vec![entry(1, obs()), entry(2, not_final)]),
            422,
            "Parameters.parameter[0].resource.entry[1].resource.status",
        ),
        (
            "a batch",
            batch,
            422,
            "Parameters.parameter[0].resource.type",
        ),
        (
            "a Patient inside",
            submission(vec![
                entry(1, obs()),
                entry(2, json!({"resourceType": "Patient", "id": "76312"})),
            ]),
            422,
            "Parameters.parameter[0].resource.entry[1].resource",
        ),
        (
            "no episode extension",
            submission(vec![entry(1, no_episode)]),
            422,
            "Parameters.parameter[0].resource.entry[0].resource.extension",
        ),
        (
            "a code outside the catalog",
            submission(vec![entry(1, obs()), entry(2, unknown_code)]),
            422,
            "Parameters.parameter[0].resource.entry[1].resource",
        ),
        (
            "a PUT",
            put,
            422,
            "Parameters.parameter[0].resource.entry[0].request",
        ),
        ("another parameter", extra, 422, "Parameters.parameter"),
        (
            "a Bundle, not Parameters",
            submission(vec![entry(1, obs())])["parameter"][0]["resource"].clone(),
            400,
            "resourceType",
        ),
    ];
    for (name, body, status, expression) in cases {
        let a = s.post("$submit-measurement", &body).await;
        assert_eq!(a.status, status, "{name}: {}", a.text);
        a.outcome();
        let issues = a.body["issue"].as_array().unwrap();
        assert!(
            issues.iter().any(|i| i["expression"][0]
                .as_str()
                .is_some_and(|e| e.starts_with(expression))),
            "{name}: no issue at {expression}: {}",
            a.text
        );
        assert_eq!(s.store.contents().await, (0, 0), "{name} wrote something");
        s.save(&format!("refusal-{}", name.replace(' ', "-")), &a.body);
    }
    // Several problems: an issue for each.
    let mut two = obs();
    two["status"] = json!("amended");
    let a = s
        .post(
            "$submit-measurement",
            &submission(vec![entry(1, two.clone()), entry(2, two)]),
        )
        .await;
    assert_eq!(a.status, 422);
    let at: BTreeSet<&str> = a.body["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["expression"][0].as_str())
        .collect();
    assert!(
        at.contains("Parameters.parameter[0].resource.entry[0].resource.status"),
        "{at:?}"
    );
    assert!(
        at.contains("Parameters.parameter[0].resource.entry[1].resource.status"),
        "{at:?}"
    );

    // Searches: every parameter checked, an unsupported one named, never ignored.
    let tag = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": PATIENT}},
        {"name": "period", "valuePeriod": {"start": "2025"}},
        {"name": "code", "valueString": "NPU03804"}]});
    let a = s.post("$search-measurements", &tag).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.outcome().contains("\"code\" is not a parameter"));
    assert_eq!(
        a.body["issue"][0]["expression"][0],
        "Parameters.parameter[2].name"
    );
    let no_period = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": PATIENT}}]});
    let a = s.post("$search-measurements", &no_period).await;
    assert_eq!(a.status, 400);
    assert!(a.outcome().contains("period"));
    let a = s
        .post("$search-measurements", &search(None, None, "2025", None))
        .await;
    assert_eq!(a.status, 400);
    assert!(a.outcome().contains("patient or episodeOfCare"));
    // No GET form: the parameters are not primitives.
    let a = s.get("$search-measurements").await;
    assert_eq!(a.status, 405, "{}", a.text);
    s.validate();
}

/// The whole submission goes to the store in one write set: when it fails, nothing is there.
#[tokio::test]
async fn the_submission_is_one_write_set() {
    let s = start(None).await;
    s.store.fail.store(true, Ordering::SeqCst);
    let a = s
        .post("$submit-measurement", &full("2025-02-06T14:40:50+00:00"))
        .await;
    assert_eq!(a.status, 503, "{}", a.text);
    a.outcome();
    assert_eq!(s.store.applies.load(Ordering::SeqCst), 1, "one apply");
    // Two measurements; Media, QuestionnaireResponse, the client's and the server's Provenance.
    assert_eq!(*s.store.sets.lock().unwrap(), vec![(2, 4)]);
    assert_eq!(s.store.contents().await, (0, 0));
    s.store.fail.store(false, Ordering::SeqCst);
    let a = s
        .post("$submit-measurement", &full("2025-02-06T14:40:50+00:00"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(s.store.applies.load(Ordering::SeqCst), 2);
    assert_eq!(s.store.contents().await, (2, 4));
}

/// A submission whose entries are all conditional (`ifNoneExist: identifier=…`) sent again is
/// a replay: the first one's answer, nothing written. Reusing one of its identifiers in
/// another submission is a conflict naming the entry, and writes nothing.
#[tokio::test]
async fn a_conditional_submission_sent_again_is_a_replay() {
    let s = start(None).await;
    let conditional = |body: &mut Value| {
        for (i, e) in body["parameter"][0]["resource"]["entry"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .enumerate()
        {
            e["request"]["ifNoneExist"] = json!(format!(
                "identifier=http://ehealth.sundhed.dk/id/ehealth-identifier|id-{i}"
            ));
        }
    };
    let mut body = full("2025-02-06T14:40:50+00:00");
    conditional(&mut body);
    let a = s.post("$submit-measurement", &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let first: Vec<String> = a.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| located(&s.base, e))
        .collect();
    let contents = s.store.contents().await;
    assert_eq!(contents, (2, 4));

    let again = s.post("$submit-measurement", &body).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let entries = again.body["entry"].as_array().unwrap();
    assert!(
        entries.iter().all(|e| e["response"]["status"] == "200 OK"),
        "{}",
        again.text
    );
    let second: Vec<String> = entries.iter().map(|e| located(&s.base, e)).collect();
    assert_eq!(first, second);
    assert_eq!(again.body["link"], a.body["link"], "the same Provenance");
    assert_eq!(
        s.store.contents().await,
        contents,
        "a replay writes nothing"
    );

    // One identifier of it in another submission.
    let mut other = submission(vec![
        entry(
            1,
            observation(PATIENT, EPISODE, "2025-03-01T08:00:00Z", 70.0),
        ),
        entry(
            2,
            observation(PATIENT, EPISODE, "2025-03-01T08:00:00Z", 71.0),
        ),
    ]);
    other["parameter"][0]["resource"]["entry"][1]["request"]["ifNoneExist"] =
        json!("identifier=http://ehealth.sundhed.dk/id/ehealth-identifier|id-0");
    let c = s.post("$submit-measurement", &other).await;
    assert_eq!(c.status, 409, "{}", c.text);
    c.outcome();
    assert_eq!(
        c.body["issue"][0]["expression"][0],
        "Parameters.parameter[0].resource.entry[1].resource"
    );
    assert_eq!(s.store.contents().await, contents);
    // An ifNoneExist of another form is refused, not ignored.
    let mut odd = submission(vec![entry(
        1,
        observation(PATIENT, EPISODE, "2025-03-01T08:00:00Z", 70.0),
    )]);
    odd["parameter"][0]["resource"]["entry"][0]["request"]["ifNoneExist"] = json!("code=NPU03804");
    let a = s.post("$submit-measurement", &odd).await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(
        a.body["issue"][0]["expression"][0],
        "Parameters.parameter[0].resource.entry[0].request.ifNoneExist"
    );
}

fn grant(who: &str, scopes: &[&str], patient: Option<&str>, episode: Option<&str>) -> Grant {
    Grant {
        who: who.into(),
        scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
        patient: patient.map(str::to_string),
        episode_of_care: episode.map(str::to_string),
        ..Grant::default()
    }
}

/// The token's Patient and EpisodeOfCare limit what may be submitted and found: another one
/// is 403, with nothing written; scopes are checked for every type submitted.
#[tokio::test]
async fn the_token_context_limits_submissions_and_searches() {
    let tokens: HashMap<String, Grant> = [
        (
            "patient-token-0123456789",
            grant("anne", &["patient/*.cruds"], Some("76312"), Some(EPISODE)),
        ),
        (
            "episode-token-0123456789",
            grant("clinic", &["system/*.cruds"], None, Some(OTHER_EPISODE)),
        ),
        (
            "system-token-0123456789a",
            grant("system", &["system/*.cruds"], None, None),
        ),
        (
            "obs-only-token-012345678",
            grant("scale", &["system/Observation.cr"], None, None),
        ),
        (
            "reader-token-0123456789a",
            grant("reader", &["system/*.rs"], None, None),
        ),
    ]
    .into_iter()
    .map(|(t, g)| (t.to_string(), g))
    .collect();
    let auth = AuthConfig {
        tokens,
        ..AuthConfig::default()
    };
    let s = start(Some(auth)).await;
    let send = |body: Value, token: &'static str| {
        let s = &s;
        async move {
            s.send(
                reqwest::Method::POST,
                "$submit-measurement",
                Some(&body),
                Some(token),
            )
            .await
        }
    };
    let one = |patient: &str, episode: &str| {
        submission(vec![entry(
            1,
            observation(patient, episode, "2025-02-06T14:40:50+00:00", 80.0),
        )])
    };
    // No token: 401.
    let a = s.post("$submit-measurement", &one(PATIENT, EPISODE)).await;
    assert_eq!(a.status, 401);
    // The patient's own: stored, with the Patient as the Provenance's agent.
    let a = send(one(PATIENT, EPISODE), "patient-token-0123456789").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let link = a.body["link"][0]["url"].as_str().unwrap().to_string();
    let p = s
        .send(
            reqwest::Method::GET,
            &link,
            None,
            Some("patient-token-0123456789"),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["agent"][0]["who"]["reference"], PATIENT);
    let contents = s.store.contents().await;
    assert_eq!(contents, (1, 1));
    // Another Patient, another EpisodeOfCare: 403, nothing written.
    for (body, token, at) in [
        (
            one(OTHER_PATIENT, EPISODE),
            "patient-token-0123456789",
            "subject",
        ),
        (
            one(PATIENT, OTHER_EPISODE),
            "patient-token-0123456789",
            "extension",
        ),
        (
            one(PATIENT, EPISODE),
            "episode-token-0123456789",
            "extension",
        ),
    ] {
        let a = send(body, token).await;
        assert_eq!(a.status, 403, "{token}: {}", a.text);
        a.outcome();
        assert_eq!(
            a.body["issue"][0]["expression"][0],
            format!("Parameters.parameter[0].resource.entry[0].resource.{at}").as_str()
        );
        assert_eq!(s.store.contents().await, contents);
    }
    // Scopes: 'c' on every type submitted.
    let with_media = submission(vec![
        entry(
            1,
            observation(PATIENT, EPISODE, "2025-02-06T14:40:50+00:00", 80.0),
        ),
        entry(2, media(PATIENT, EPISODE, "2025-02-06T14:40:50+00:00")),
    ]);
    let a = send(with_media.clone(), "obs-only-token-012345678").await;
    assert_eq!(a.status, 403, "{}", a.text);
    assert!(a.outcome().contains("Media"));
    let a = send(one(PATIENT, EPISODE), "reader-token-0123456789a").await;
    assert_eq!(a.status, 403);
    assert_eq!(s.store.contents().await, contents);
    let a = send(with_media, "system-token-0123456789a").await;
    assert_eq!(a.status, 200, "{}", a.text);

    // Searches: the token's Patient when none is named; another one is 403.
    let find = |body: Value, token: &'static str| {
        let s = &s;
        async move {
            s.send(
                reqwest::Method::POST,
                "$search-measurements",
                Some(&body),
                Some(token),
            )
            .await
        }
    };
    let own = find(
        search(None, Some(EPISODE), "2025", None),
        "patient-token-0123456789",
    )
    .await;
    assert_eq!(grouped(&own).len(), 2);
    let a = find(
        search(Some(OTHER_PATIENT), None, "2025", None),
        "patient-token-0123456789",
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.text);
    let a = find(
        search(Some(PATIENT), None, "2025", None),
        "episode-token-0123456789",
    )
    .await;
    assert_eq!(
        grouped(&a).len(),
        0,
        "limited to the token's EpisodeOfCare: {}",
        a.text
    );
    let a = find(
        search(Some(PATIENT), Some(EPISODE), "2025", None),
        "episode-token-0123456789",
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.text);
    let a = find(
        search(Some(PATIENT), None, "2025", None),
        "reader-token-0123456789a",
    )
    .await;
    assert_eq!(grouped(&a).len(), 2);
    // Reading a kept document outside the context.
    let p = s
        .send(
            reqwest::Method::GET,
            &link,
            None,
            Some("episode-token-0123456789"),
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.text);
}

#[tokio::test]
async fn the_capability_statement_names_the_operations_and_their_definitions() {
    let s = start(None).await;
    let meta = s.get("metadata").await;
    assert_eq!(meta.status, 200);
    s.save("metadata", &meta.body);
    let ops = meta.body["rest"][0]["operation"].as_array().unwrap();
    let names: Vec<&str> = ops.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "submit-measurement",
            "search-measurements",
            "search-measurements-bundle-limit"
        ]
    );
    for op in ops {
        let url = op["definition"].as_str().unwrap();
        assert!(url.starts_with(&s.base), "{url}");
        let d = s.get(url).await;
        assert_eq!(d.status, 200, "{url}: {}", d.text);
        assert_eq!(d.body["resourceType"], "OperationDefinition");
        assert_eq!(d.body["code"], op["name"]);
        assert_eq!(d.body["url"], url);
        assert_eq!(d.body["system"], true);
        assert!(
            d.body["base"]
                .as_str()
                .unwrap()
                .starts_with("http://ehealth.sundhed.dk/fhir/OperationDefinition/-s-")
        );
        s.save(
            &format!("definition-{}", op["name"].as_str().unwrap()),
            &d.body,
        );
    }
    let types: Vec<&str> = meta.body["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for t in [
        "Provenance",
        "Media",
        "QuestionnaireResponse",
        "OperationDefinition",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    let a = s.get("OperationDefinition/unknown").await;
    assert_eq!(a.status, 404);
    a.outcome();
    let a = s.get("Provenance/unknown").await;
    assert_eq!(a.status, 404);
    a.outcome();
    s.validate();
}

/// The same over a real SQLite store: stored in one write set, found again, read back.
#[tokio::test]
async fn a_submission_round_trips_through_sqlite() {
    let s = common::start(ServerConfig::default()).await;
    let a = s
        .post("$submit-measurement", &full("2025-02-06T14:40:50+00:00"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let submitted: Vec<String> = a.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| located(&s.base, e))
        .collect();
    for t in &submitted {
        let r = s.get(t).await;
        assert_eq!(r.status, 200, "{t}: {}", r.text);
    }
    let found = s
        .post(
            "$search-measurements",
            &search(None, Some(EPISODE), "2025-02-06", Some("2025-02-06")),
        )
        .await;
    let groups = grouped(&found);
    assert_eq!(groups.len(), 1, "{}", found.text);
    assert_eq!(groups[0][..5], submitted[..]);
    assert!(groups[0][5].starts_with("Provenance/"));
    let none = s
        .post(
            "$search-measurements",
            &search(None, Some(EPISODE), "2025-02-07", None),
        )
        .await;
    assert!(grouped(&none).is_empty());
}
