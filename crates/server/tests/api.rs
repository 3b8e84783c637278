//! The FHIR API over a real SQLite store and real HTTP: every interaction, the protocol details,
//! and an OperationOutcome with the right status for every error.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{bp, start, weight};
use healthanalyzer_server::ServerConfig;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn create_read_update_delete_with_versions() {
    let s = start(ServerConfig::default()).await;
    let pid = s.patient("Versions").await;
    let created = s
        .post(
            "Observation",
            &weight(&pid, "2026-01-02T08:00:00+01:00", 81.5),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.header("location"),
        Some(format!("{}/Observation/{id}/_history/1", s.base).as_str())
    );
    assert_eq!(created.header("etag"), Some("W/\"1\""));
    assert!(created.header("last-modified").is_some());
    assert_eq!(created.body["meta"]["versionId"], "1");
    let updated_at = created.body["meta"]["lastUpdated"].as_str().unwrap();
    assert!(
        updated_at.ends_with('Z') && updated_at.len() == 24,
        "{updated_at}"
    );

    let read = s.get(&format!("Observation/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(
        read.body, created.body,
        "read equals the created representation"
    );
    assert_eq!(read.body["valueQuantity"]["value"], 81.5);
    assert_eq!(read.body["effectiveDateTime"], "2026-01-02T08:00:00+01:00");

    // Update: version 2; a stale If-Match is refused with 412 and changes nothing.
    let mut body = read.body.clone();
    body["valueQuantity"]["value"] = json!(82.0);
    let a = s
        .send(
            Method::PUT,
            &format!("Observation/{id}"),
            Some(&body),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["meta"]["versionId"], "2");
    assert_eq!(a.header("etag"), Some("W/\"2\""));
    body["valueQuantity"]["value"] = json!(90.0);
    let stale = s
        .send(
            Method::PUT,
            &format!("Observation/{id}"),
            Some(&body),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    assert!(stale.outcome().contains("version 2"));
    let read = s.get(&format!("Observation/{id}")).await;
    assert_eq!(read.body["valueQuantity"]["value"], 82.0);
    assert_eq!(read.body["meta"]["versionId"], "2");

    // The body's id must be the URL's.
    let mut other = body.clone();
    other["id"] = json!("something-else");
    let a = s.put(&format!("Observation/{id}"), &other).await;
    assert_eq!(a.status, 400);
    a.outcome();
    // The server assigns Observation ids: no update-as-create.
    let mut new = weight(&pid, "2026-01-03T08:00:00Z", 80.0);
    new["id"] = json!("client-chosen");
    let a = s.put("Observation/client-chosen", &new).await;
    assert_eq!(a.status, 405, "{}", a.text);
    a.outcome();

    // Delete: 204, then 404 on read, and a second delete is still 204.
    assert_eq!(s.delete(&format!("Observation/{id}")).await.status, 204);
    let gone = s.get(&format!("Observation/{id}")).await;
    assert_eq!(gone.status, 404);
    gone.outcome();
    assert_eq!(s.delete(&format!("Observation/{id}")).await.status, 204);
}

#[tokio::test]
async fn patients_update_as_create_search_and_delete_rules() {
    let s = start(ServerConfig::default()).await;
    let p = json!({"resourceType": "Patient", "id": "example",
                   "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
                   "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
                   "gender": "male", "birthDate": "1974-12-25"});
    let a = s.put("Patient/example", &p).await;
    assert_eq!(a.status, 201, "update-as-create: {}", a.text);
    assert_eq!(a.body["id"], "example");
    let a = s.put("Patient/example", &p).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["meta"]["versionId"], "2");
    let read = s.get("Patient/example").await;
    assert_eq!(read.body["name"], p["name"]);
    assert_eq!(read.body["identifier"], p["identifier"]);

    let other = s.patient("Other").await;
    let search = |q: &'static str| {
        let s = &s;
        async move { s.search_ids(q).await.0 }
    };
    assert_eq!(search("Patient?name=chal").await, vec!["example"]);
    assert_eq!(search("Patient?family=Other").await, vec![other.clone()]);
    assert_eq!(search("Patient?given=JAM").await, vec!["example"]);
    assert_eq!(
        search("Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|12345").await,
        vec!["example"]
    );
    assert_eq!(search("Patient?identifier=12345").await, vec!["example"]);
    assert!(
        search("Patient?identifier=urn:other|12345")
            .await
            .is_empty()
    );
    assert_eq!(search("Patient?birthdate=1974").await, vec!["example"]);
    assert_eq!(
        search("Patient?birthdate=lt1960").await,
        vec![other.clone()]
    );
    let mut all = search("Patient?_count=1").await;
    all.sort();
    let mut want = vec!["example".to_string(), other.clone()];
    want.sort();
    assert_eq!(all, want, "paging over Patients with _count=1");
    let count = s.get("Patient?_summary=count").await;
    assert_eq!(count.body["total"], 2);
    assert!(count.body.get("entry").is_none());

    // The same identifier on a second Patient: 409.
    let mut dup = p.clone();
    dup.as_object_mut().unwrap().remove("id");
    let a = s.post("Patient", &dup).await;
    assert_eq!(a.status, 409, "{}", a.text);
    a.outcome();
    // … unless asked conditionally: the existing one comes back with 200.
    let a = s
        .send(
            Method::POST,
            "Patient",
            Some(&dup),
            &[(
                "if-none-exist",
                "identifier=urn:oid:1.2.36.146.595.217.0.1|12345",
            )],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["id"], "example");

    // A Patient with Observations cannot be deleted; without them it can.
    let oid = s
        .observation(&weight("example", "2026-01-02T08:00:00Z", 80.0))
        .await;
    let a = s.delete("Patient/example").await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert!(a.outcome().contains("1 Observations"));
    assert_eq!(s.delete(&format!("Observation/{oid}")).await.status, 204);
    assert_eq!(s.delete("Patient/example").await.status, 204);
    assert_eq!(s.get("Patient/example").await.status, 404);
}

#[tokio::test]
async fn observation_search_by_code_category_and_date_prefixes() {
    let s = start(ServerConfig::default()).await;
    let pid = s.patient("Search").await;
    let other = s.patient("Bystander").await;
    let mut by_day = Vec::new();
    for day in 1..=9 {
        let when = format!("2024-05-0{day}T08:00:00Z");
        by_day.push(s.observation(&bp(&pid, &when, 120 + day, 80)).await);
    }
    let hr = s
        .observation(&json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": format!("Patient/{pid}")},
            "effectiveDateTime": "2024-05-03T09:00:00+02:00",
            "valueQuantity": {"value": 64, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
        }))
        .await;
    let w = s
        .observation(&weight(&other, "2024-05-03T08:00:00Z", 70.0))
        .await;

    let ids = |q: String| {
        let s = &s;
        async move {
            let mut v = s.search_ids(&q).await.0;
            v.sort();
            v
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let p = format!("patient={pid}");
    assert_eq!(ids(format!("Observation?{p}")).await.len(), 10);
    assert_eq!(
        ids(format!("Observation?subject=Patient/{pid}"))
            .await
            .len(),
        10
    );
    assert_eq!(
        ids(format!("Observation?subject={}/Patient/{pid}", s.base))
            .await
            .len(),
        10,
        "an absolute reference"
    );
    assert_eq!(
        ids(format!("Observation?{p}&code=8867-4")).await,
        vec![hr.clone()]
    );
    assert_eq!(
        ids(format!(
            "Observation?{p}&code=http://loinc.org|8867-4,http://loinc.org|85354-9"
        ))
        .await
        .len(),
        10,
        "comma = OR"
    );
    assert!(
        ids(format!(
            "Observation?{p}&code=http://snomed.info/sct|8867-4"
        ))
        .await
        .is_empty()
    );
    assert!(ids(format!("Observation?{p}&code=0000-0")).await.is_empty());
    assert_eq!(
        ids(format!("Observation?{p}&category=vital-signs"))
            .await
            .len(),
        10
    );
    assert!(
        ids(format!("Observation?{p}&category=laboratory"))
            .await
            .is_empty()
    );
    assert_eq!(ids("Observation?code=29463-7".to_string()).await, vec![w]);

    let bp_ids = |days: &[usize]| sorted(days.iter().map(|d| by_day[d - 1].clone()).collect());
    let q = |date: &str| format!("Observation?{p}&code=85354-9&date={date}");
    assert_eq!(ids(q("2024-05-03")).await, bp_ids(&[3]));
    assert_eq!(ids(q("eq2024-05-03")).await, bp_ids(&[3]));
    assert_eq!(
        ids(q("ne2024-05-03")).await,
        bp_ids(&[1, 2, 4, 5, 6, 7, 8, 9])
    );
    assert_eq!(ids(q("lt2024-05-03")).await, bp_ids(&[1, 2]));
    assert_eq!(ids(q("le2024-05-03")).await, bp_ids(&[1, 2, 3]));
    assert_eq!(ids(q("gt2024-05-07")).await, bp_ids(&[8, 9]));
    assert_eq!(ids(q("ge2024-05-07")).await, bp_ids(&[7, 8, 9]));
    assert_eq!(ids(q("sa2024-05-07")).await, bp_ids(&[8, 9]));
    assert_eq!(ids(q("eb2024-05-02")).await, bp_ids(&[1]));
    assert_eq!(ids(q("2024-05")).await.len(), 9);
    assert!(ids(q("2023")).await.is_empty());
    assert_eq!(ids(q("2024-05-05T08:00")).await, bp_ids(&[5]));
    assert_eq!(
        ids(q("2024-05-05T10:00:00%2B02:00")).await,
        bp_ids(&[5]),
        "an offset"
    );
    assert_eq!(
        ids(format!("{}&date=lt2024-05-06", q("ge2024-05-04"))).await,
        bp_ids(&[4, 5]),
        "two dates intersect"
    );

    // Sort and count.
    let desc = s
        .get(&format!(
            "Observation?{p}&code=85354-9&_sort=-date&_count=3"
        ))
        .await;
    let first: Vec<&str> = desc.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["effectiveDateTime"].as_str().unwrap())
        .collect();
    assert_eq!(
        first,
        [
            "2024-05-09T08:00:00Z",
            "2024-05-08T08:00:00Z",
            "2024-05-07T08:00:00Z"
        ]
    );
    assert_eq!(desc.body["total"], 9);
    let asc = s
        .get(&format!("Observation?{p}&code=85354-9&_sort=date&_count=1"))
        .await;
    assert_eq!(asc.body["entry"][0]["resource"]["id"], by_day[0].as_str());
    let count = s.get(&format!("Observation?{p}&_summary=count")).await;
    assert_eq!(count.body["total"], 10);
    assert!(count.body.get("entry").is_none());
    let ne_count = s
        .get(&format!("Observation?{p}&date=ne2024-05-03&_summary=count"))
        .await;
    assert_eq!(
        ne_count.body["total"], 8,
        "ne: 10 minus the BP and the heart rate of that day"
    );

    // _lastUpdated: everything was written just now.
    let today = healthanalyzer_model::jiff::Timestamp::now()
        .strftime("%Y-%m-%d")
        .to_string();
    assert_eq!(
        ids(format!("Observation?{p}&_lastUpdated=ge{today}"))
            .await
            .len(),
        10
    );
    assert!(
        ids(format!("Observation?{p}&_lastUpdated=lt{today}"))
            .await
            .is_empty()
    );
    // Bad parameters: 400 with an OperationOutcome naming the parameter.
    for bad in [
        "date=2024-13",
        "date=ap2024",
        "_sort=value",
        "_count=many",
        "patient=a,b",
        "_page=garbage",
    ] {
        let a = s.get(&format!("Observation?{p}&{bad}")).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.text);
        a.outcome();
    }
    // The type modifier on references.
    assert_eq!(
        ids(format!("Observation?subject:Patient={pid}"))
            .await
            .len(),
        10
    );
    // Unknown parameters: ignored, or 400 when the client asks for strict handling.
    let a = s
        .send(
            Method::GET,
            &format!("Observation?{p}&value-quantity=gt100"),
            None,
            &[("prefer", "handling=strict")],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.outcome().contains("value-quantity"));
    let a = s
        .send(
            Method::GET,
            &format!("Observation?{p}&_count=2"),
            None,
            &[("prefer", "handling=strict")],
        )
        .await;
    assert_eq!(
        a.status, 200,
        "known parameters pass under strict handling: {}",
        a.text
    );
    // The self link names what was applied, not what was ignored.
    let a = s.get(&format!("Observation?{p}&unknown-param=1")).await;
    let self_link = a.body["link"][0]["url"].as_str().unwrap();
    assert!(
        self_link.contains("patient=") && !self_link.contains("unknown"),
        "{self_link}"
    );
}

#[tokio::test]
async fn paging_stays_correct_while_others_insert() {
    let s = start(ServerConfig::default()).await;
    let pid = s.patient("Paging").await;
    let mut want = Vec::new();
    for i in 0..25 {
        let when = format!("2024-06-{:02}T08:00:00Z", i + 1);
        want.push(s.observation(&weight(&pid, &when, 70.0 + i as f64)).await);
    }
    // Page through with _count=4; after each page, insert one reading before the cursor and
    // one after the last: none is repeated, none of the original 25 is missed.
    let mut url = format!("{}/Observation?patient={pid}&_count=4", s.base);
    let mut seen = Vec::new();
    let mut n = 0;
    loop {
        let a = s.get(&url).await;
        for e in a.body["entry"].as_array().cloned().unwrap_or_default() {
            seen.push(e["resource"]["id"].as_str().unwrap().to_string());
        }
        n += 1;
        s.observation(&weight(&pid, &format!("2024-05-{:02}T08:00:00Z", n), 60.0))
            .await;
        s.observation(&weight(&pid, &format!("2024-08-{:02}T08:00:00Z", n), 90.0))
            .await;
        match a.body["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(l) => url = l["url"].as_str().unwrap().to_string(),
            None => break,
        }
        assert!(n < 100, "no end of pages");
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "no Observation twice");
    for id in &want {
        assert!(seen.contains(id), "{id} missed");
    }
}

#[tokio::test]
async fn conditional_create_and_identifiers() {
    let s = start(ServerConfig::default()).await;
    let pid = s.patient("Conditional").await;
    let mut o = weight(&pid, "2024-06-01T08:00:00Z", 70.0);
    o["identifier"] = json!([{"system": "urn:test:reading", "value": "r-1"}]);
    let cond = [("if-none-exist", "identifier=urn:test:reading|r-1")];
    let a = s.send(Method::POST, "Observation", Some(&o), &cond).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_string();
    let b = s.send(Method::POST, "Observation", Some(&o), &cond).await;
    assert_eq!(
        b.status, 200,
        "the second conditional create finds the first: {}",
        b.text
    );
    assert_eq!(b.body["id"], id.as_str());
    // A plain POST always creates, also with an identifier already stored (the HL7 examples
    // share one identifier between three blood-pressure Observations).
    let c = s.post("Observation", &o).await;
    assert_eq!(c.status, 201, "{}", c.text);
    assert_ne!(c.body["id"], id.as_str());
    // A condition on another identifier creates, and is then found by the same condition.
    let other = [("if-none-exist", "identifier=urn:test:reading|r-2")];
    let e = s.send(Method::POST, "Observation", Some(&o), &other).await;
    assert_eq!(e.status, 201, "{}", e.text);
    let f = s.send(Method::POST, "Observation", Some(&o), &other).await;
    assert_eq!((f.status, &f.body["id"]), (200, &e.body["id"]));
    // Searching by identifier is refused rather than answered wrongly.
    let g = s.get("Observation?identifier=urn:test:reading|r-1").await;
    assert_eq!(g.status, 400);
    assert!(g.outcome().contains("If-None-Exist"));
    // A condition on patient and date that matches two: 412.
    s.observation(&weight(&pid, "2024-06-01T09:00:00Z", 70.5))
        .await;
    let d = s
        .send(
            Method::POST,
            "Observation",
            Some(&weight(&pid, "2024-06-01T10:00:00Z", 71.0)),
            &[("if-none-exist", &format!("patient={pid}&date=2024-06-01"))],
        )
        .await;
    assert_eq!(d.status, 412, "{}", d.text);
    d.outcome();
}

#[tokio::test]
async fn validation_errors_get_the_right_status_and_an_outcome() {
    let s = start(ServerConfig {
        max_body_bytes: 64 * 1024,
        ..ServerConfig::default()
    })
    .await;
    let pid = s.patient("Errors").await;
    let cases: Vec<(&str, Value, u16)> = vec![
        (
            "unknown subject",
            weight("no-such-patient", "2024-01-01T00:00:00Z", 70.0),
            422,
        ),
        (
            "contained subject",
            {
                let mut o = weight(&pid, "2024-01-01T00:00:00Z", 70.0);
                o["subject"] = json!({"reference": "#p1"});
                o
            },
            422,
        ),
        (
            "a code outside the catalog",
            {
                let mut o = weight(&pid, "2024-01-01T00:00:00Z", 70.0);
                o["code"] = json!({"coding": [{"system": "http://loinc.org", "code": "2345-7"}]});
                o
            },
            422,
        ),
        (
            "an implausible value",
            weight(&pid, "2024-01-01T00:00:00Z", 7000.0),
            422,
        ),
        (
            "a unit that is not a weight",
            {
                let mut o = weight(&pid, "2024-01-01T00:00:00Z", 70.0);
                o["valueQuantity"]["code"] = json!("mm[Hg]");
                o
            },
            422,
        ),
        (
            "a date in the future",
            weight(&pid, "2999-01-01T00:00:00Z", 70.0),
            422,
        ),
        (
            "a wrong datatype",
            {
                let mut o = weight(&pid, "2024-01-01T00:00:00Z", 70.0);
                o["status"] = json!(7);
                o
            },
            400,
        ),
        (
            "an unknown element",
            {
                let mut o = weight(&pid, "2024-01-01T00:00:00Z", 70.0);
                o["colour"] = json!("blue");
                o
            },
            400,
        ),
        (
            "another resource type",
            json!({"resourceType": "Patient"}),
            400,
        ),
        ("not an object", json!([1, 2]), 400),
    ];
    for (what, body, status) in cases {
        let a = s.post("Observation", &body).await;
        assert_eq!(a.status, status, "{what}: {}", a.text);
        let d = a.outcome();
        assert!(!d.is_empty(), "{what}: diagnostics");
    }
    // Nothing of the above was stored.
    assert!(
        s.search_ids(&format!("Observation?patient={pid}"))
            .await
            .0
            .is_empty()
    );

    let big = json!({"resourceType": "Observation", "note": [{"text": "x".repeat(100 * 1024)}]});
    let a = s.post("Observation", &big).await;
    assert_eq!(a.status, 413, "{}", a.text);
    a.outcome();
    let a = s
        .send(
            Method::POST,
            "Observation",
            None,
            &[("content-type", "application/fhir+xml")],
        )
        .await;
    assert_eq!(a.status, 415, "{}", a.text);
    a.outcome();
    let a = s.send(Method::PATCH, "Observation/x", None, &[]).await;
    assert_eq!(a.status, 405, "{}", a.text);
    a.outcome();
    let a = s.get("Encounter/1").await;
    assert_eq!(a.status, 404, "{}", a.text);
    a.outcome();
    let a = s.get("metadata?_format=xml").await;
    assert_eq!(a.status, 406, "{}", a.text);
    a.outcome();
    let a = s
        .send(
            Method::GET,
            "metadata",
            None,
            &[("accept", "application/fhir+xml")],
        )
        .await;
    assert_eq!(a.status, 406);
    assert_eq!(s.get("metadata?_format=json").await.status, 200);
}

#[tokio::test]
async fn protocol_details() {
    let s = start(ServerConfig::default()).await;
    let pid = s.patient("Protocol").await;
    // X-Request-Id: echoed when sent, made up when not.
    let a = s
        .send(
            Method::GET,
            "metadata",
            None,
            &[("x-request-id", "triage-42")],
        )
        .await;
    assert_eq!(a.header("x-request-id"), Some("triage-42"));
    let b = s.get("metadata").await;
    assert_eq!(b.header("x-request-id").map(str::len), Some(36));
    let e = s
        .send(
            Method::GET,
            "Observation/nope",
            None,
            &[("x-request-id", "triage-43")],
        )
        .await;
    assert_eq!(e.header("x-request-id"), Some("triage-43"), "errors too");

    // Prefer.
    let o = weight(&pid, "2024-01-01T00:00:00Z", 70.0);
    let a = s
        .send(
            Method::POST,
            "Observation",
            Some(&o),
            &[("prefer", "return=minimal")],
        )
        .await;
    assert_eq!(a.status, 201);
    assert!(a.text.is_empty(), "{}", a.text);
    assert!(a.header("location").is_some());
    let mut o2 = o.clone();
    o2["effectiveDateTime"] = json!("2024-01-02T00:00:00Z");
    let a = s
        .send(
            Method::POST,
            "Observation",
            Some(&o2),
            &[("prefer", "return=OperationOutcome")],
        )
        .await;
    assert_eq!(a.status, 201);
    assert_eq!(a.body["resourceType"], "OperationOutcome");
    assert_eq!(a.body["issue"][0]["severity"], "information");

    // The CapabilityStatement names every search parameter that works.
    let caps = s.get("metadata").await.body;
    let obs = caps["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Observation")
        .unwrap()
        .clone();
    let names: Vec<&str> = obs["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for n in [
        "patient",
        "subject",
        "code",
        "category",
        "date",
        "_lastUpdated",
        "_count",
        "_sort",
        "_summary",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(
        !names.contains(&"identifier"),
        "identifier is not searchable, so not declared"
    );
    let health = common::client()
        .get(s.base.replace("/fhir", "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

/// A store whose checkpoint lookups (what `/healthz` asks) take a second.
#[derive(Debug)]
struct SlowStore(healthanalyzer_store::MemoryStore);

#[async_trait::async_trait]
impl healthanalyzer_store::MeasurementStore for SlowStore {
    async fn write(
        &self,
        batch: &[healthanalyzer_model::Measurement],
        checkpoint: Option<&healthanalyzer_store::Checkpoint>,
    ) -> healthanalyzer_store::Result<healthanalyzer_store::WriteSummary> {
        self.0.write(batch, checkpoint).await
    }
    async fn get(
        &self,
        id: &healthanalyzer_model::MeasurementId,
    ) -> healthanalyzer_store::Result<Option<healthanalyzer_model::Measurement>> {
        self.0.get(id).await
    }
    async fn query(
        &self,
        query: &healthanalyzer_store::Query,
    ) -> healthanalyzer_store::Result<healthanalyzer_store::Page> {
        self.0.query(query).await
    }
    async fn count(
        &self,
        filter: &healthanalyzer_store::Filter,
    ) -> healthanalyzer_store::Result<u64> {
        self.0.count(filter).await
    }
    async fn latest(
        &self,
        subject: &healthanalyzer_model::Identifier,
        kinds: &[healthanalyzer_model::KindId],
        n: usize,
    ) -> healthanalyzer_store::Result<Vec<healthanalyzer_model::Measurement>> {
        self.0.latest(subject, kinds, n).await
    }
    async fn measured_subjects(
        &self,
    ) -> healthanalyzer_store::Result<Vec<healthanalyzer_model::Identifier>> {
        self.0.measured_subjects().await
    }
    async fn delete(
        &self,
        ids: &[healthanalyzer_model::MeasurementId],
    ) -> healthanalyzer_store::Result<u64> {
        self.0.delete(ids).await
    }
    async fn checkpoint(
        &self,
        source_id: &str,
    ) -> healthanalyzer_store::Result<Option<healthanalyzer_store::Checkpoint>> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.0.checkpoint(source_id).await
    }
}

#[async_trait::async_trait]
impl healthanalyzer_store::WriteSetStore for SlowStore {
    async fn apply(
        &self,
        set: &healthanalyzer_store::WriteSet,
    ) -> healthanalyzer_store::Result<healthanalyzer_store::Applied> {
        self.0.apply(set).await
    }
    async fn get_versioned(
        &self,
        id: &healthanalyzer_model::MeasurementId,
    ) -> healthanalyzer_store::Result<
        Option<healthanalyzer_store::Versioned<healthanalyzer_model::Measurement>>,
    > {
        self.0.get_versioned(id).await
    }
    async fn subject_versioned(
        &self,
        id: &healthanalyzer_model::Identifier,
    ) -> healthanalyzer_store::Result<
        Option<healthanalyzer_store::Versioned<healthanalyzer_model::Subject>>,
    > {
        self.0.subject_versioned(id).await
    }
    async fn document(
        &self,
        resource_type: &str,
        id: &str,
    ) -> healthanalyzer_store::Result<
        Option<healthanalyzer_store::Versioned<healthanalyzer_store::Document>>,
    > {
        self.0.document(resource_type, id).await
    }
    async fn find_documents(
        &self,
        query: &healthanalyzer_store::DocumentQuery,
    ) -> healthanalyzer_store::Result<
        Vec<healthanalyzer_store::Versioned<healthanalyzer_store::Document>>,
    > {
        self.0.find_documents(query).await
    }
}

#[async_trait::async_trait]
impl healthanalyzer_store::SubjectStore for SlowStore {
    async fn put_subjects(
        &self,
        subjects: &[healthanalyzer_model::Subject],
    ) -> healthanalyzer_store::Result<healthanalyzer_store::WriteSummary> {
        self.0.put_subjects(subjects).await
    }
    async fn subject(
        &self,
        id: &healthanalyzer_model::Identifier,
    ) -> healthanalyzer_store::Result<Option<healthanalyzer_model::Subject>> {
        self.0.subject(id).await
    }
    async fn list_subjects(
        &self,
    ) -> healthanalyzer_store::Result<Vec<healthanalyzer_model::Subject>> {
        self.0.list_subjects().await
    }
    async fn delete_subject(
        &self,
        id: &healthanalyzer_model::Identifier,
    ) -> healthanalyzer_store::Result<bool> {
        self.0.delete_subject(id).await
    }
}

#[tokio::test]
async fn a_slow_request_is_ended_with_503_and_an_outcome() {
    let server = healthanalyzer_server::FhirServer::new(std::sync::Arc::new(SlowStore(
        healthanalyzer_store::MemoryStore::new(),
    )))
    .config(ServerConfig {
        request_timeout: Duration::from_millis(100),
        ..ServerConfig::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
    let res = common::client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "timeout");
    // A request that needs no slow store call still answers.
    let res = common::client()
        .get(format!("http://{addr}/fhir/metadata"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

fn tx_bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

#[tokio::test]
async fn a_transaction_is_all_or_nothing_and_resolves_urn_uuids() {
    let s = start(ServerConfig::default()).await;
    let patient = json!({"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": "tx-1"}],
                         "name": [{"family": "Transaction"}]});
    let obs = bp("IGNORED", "2024-03-01T08:00:00Z", 131, 84);
    let mut obs_urn = obs.clone();
    obs_urn["subject"] = json!({"reference": "urn:uuid:6f0c8a6e-0000-4000-8000-000000000001"});
    let good = tx_bundle(
        "transaction",
        vec![
            json!({"fullUrl": "urn:uuid:6f0c8a6e-0000-4000-8000-000000000001", "resource": patient,
               "request": {"method": "POST", "url": "Patient"}}),
            json!({"fullUrl": "urn:uuid:6f0c8a6e-0000-4000-8000-000000000002", "resource": obs_urn,
               "request": {"method": "POST", "url": "Observation"}}),
        ],
    );
    let a = s.post("", &good).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["type"], "transaction-response");
    let entries = a.body["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["response"]["status"], "201 Created");
    let pid = entries[0]["resource"]["id"].as_str().unwrap();
    let oid = entries[1]["resource"]["id"].as_str().unwrap();
    let read = s.get(&format!("Observation/{oid}")).await;
    assert_eq!(
        read.body["subject"]["reference"],
        format!("Patient/{pid}"),
        "urn:uuid resolved"
    );
    assert_eq!(
        s.search_ids(&format!("Observation?patient={pid}")).await.0,
        vec![oid.to_string()]
    );
    assert!(
        entries[1]["response"]["location"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Observation/{oid}/_history/1"))
    );

    // A transaction whose last entry is invalid writes nothing at all.
    let p2 = json!({"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": "tx-2"}]});
    let mut bad_obs = bp("x", "2024-03-02T08:00:00Z", 131, 84);
    bad_obs["subject"] = json!({"reference": "urn:uuid:6f0c8a6e-0000-4000-8000-000000000003"});
    bad_obs["code"] = json!({"coding": [{"system": "http://loinc.org", "code": "2345-7"}]});
    let bad = tx_bundle(
        "transaction",
        vec![
            json!({"fullUrl": "urn:uuid:6f0c8a6e-0000-4000-8000-000000000003", "resource": p2,
               "request": {"method": "POST", "url": "Patient"}}),
            json!({"resource": bp(pid, "2024-03-02T08:00:00Z", 120, 80), "request": {"method": "POST", "url": "Observation"}}),
            json!({"resource": bad_obs, "request": {"method": "POST", "url": "Observation"}}),
        ],
    );
    let a = s.post("", &bad).await;
    assert_eq!(a.status, 422, "{}", a.text);
    let d = a.outcome();
    assert!(d.starts_with("Bundle.entry[2]"), "{d}");
    assert!(
        s.search_ids("Patient?identifier=urn:test:mrn|tx-2")
            .await
            .0
            .is_empty(),
        "no Patient written"
    );
    assert_eq!(
        s.search_ids(&format!("Observation?patient={pid}"))
            .await
            .0
            .len(),
        1,
        "no Observation written"
    );

    // Update and delete in one transaction, with ifMatch.
    let mut changed = read.body.clone();
    changed["status"] = json!("amended");
    let t = tx_bundle(
        "transaction",
        vec![
            json!({"resource": changed, "request": {"method": "PUT", "url": format!("Observation/{oid}"), "ifMatch": "W/\"1\""}}),
        ],
    );
    let a = s.post("", &t).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["entry"][0]["response"]["status"], "200 OK");
    assert_eq!(
        s.get(&format!("Observation/{oid}")).await.body["meta"]["versionId"],
        "2"
    );
    let stale = s.post("", &t).await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    let t = tx_bundle(
        "transaction",
        vec![
            json!({"request": {"method": "DELETE", "url": format!("Observation/{oid}")}}),
            json!({"request": {"method": "DELETE", "url": format!("Patient/{pid}")}}),
        ],
    );
    let a = s.post("", &t).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(s.get(&format!("Patient/{pid}")).await.status, 404);

    // Limits and shapes.
    let small = start(ServerConfig {
        max_bundle_entries: 2,
        ..ServerConfig::default()
    })
    .await;
    let three = tx_bundle(
        "transaction",
        (0..3)
            .map(|_| json!({"request": {"method": "DELETE", "url": "Observation/x"}}))
            .collect(),
    );
    let a = small.post("", &three).await;
    assert_eq!(a.status, 413, "{}", a.text);
    a.outcome();
    let a = s.post("", &tx_bundle("collection", vec![])).await;
    assert_eq!(a.status, 400);
    a.outcome();
    let a = s
        .post(
            "",
            &tx_bundle(
                "transaction",
                vec![json!({"request": {"method": "GET", "url": "Patient"}})],
            ),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.outcome().contains("batch"));
}

#[tokio::test]
async fn a_batch_runs_each_entry_on_its_own() {
    let s = start(ServerConfig::default()).await;
    let pid = s.patient("Batch").await;
    let b = tx_bundle(
        "batch",
        vec![
            json!({"resource": weight(&pid, "2024-03-01T08:00:00Z", 80.0), "request": {"method": "POST", "url": "Observation"}}),
            json!({"resource": weight("nobody", "2024-03-01T08:00:00Z", 80.0), "request": {"method": "POST", "url": "Observation"}}),
            json!({"request": {"method": "GET", "url": format!("Observation?patient={pid}")}}),
            json!({"request": {"method": "GET", "url": "Observation/does-not-exist"}}),
            json!({"resource": weight(&pid, "2024-03-02T08:00:00Z", 80.5), "request": {"method": "POST", "url": "Observation",
               "ifNoneExist": "identifier=urn:test:b|1"}}),
        ],
    );
    // The base URL with a trailing slash works as well.
    let a = s
        .send(Method::POST, &format!("{}/", s.base), Some(&b), &[])
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["type"], "batch-response");
    let st: Vec<&str> = a.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        st,
        [
            "201 Created",
            "422 Unprocessable Entity",
            "200 OK",
            "404 Not Found",
            "201 Created"
        ]
    );
    assert_eq!(
        a.body["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(a.body["entry"][2]["resource"]["type"], "searchset");
    assert_eq!(
        s.search_ids(&format!("Observation?patient={pid}"))
            .await
            .0
            .len(),
        2
    );
}

#[tokio::test]
async fn lastn_and_stats() {
    let s = start(ServerConfig::default()).await;
    let pid = s.patient("Operations").await;
    let other = s.patient("OtherOps").await;
    for (day, kg) in [(1, 80.0), (2, 81.0), (3, 82.0), (4, 83.0)] {
        s.observation(&weight(&pid, &format!("2024-04-0{day}T07:00:00Z"), kg))
            .await;
    }
    for (day, sys, dia) in [(1, 120, 80), (2, 130, 84), (3, 140, 88)] {
        s.observation(&bp(&pid, &format!("2024-04-0{day}T08:00:00Z"), sys, dia))
            .await;
    }
    s.observation(&weight(&other, "2024-04-05T07:00:00Z", 60.0))
        .await;

    let a = s
        .get(&format!("Observation/$lastn?patient={pid}&max=2"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let got: Vec<(String, String)> = a.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let r = &e["resource"];
            (
                r["code"]["coding"][0]["code"].as_str().unwrap().to_string(),
                r["effectiveDateTime"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.contains(&("29463-7".into(), "2024-04-04T07:00:00Z".into())));
    assert!(got.contains(&("29463-7".into(), "2024-04-03T07:00:00Z".into())));
    assert!(got.contains(&("85354-9".into(), "2024-04-03T08:00:00Z".into())));
    assert!(!got.contains(&("29463-7".into(), "2024-04-02T07:00:00Z".into())));
    let a = s
        .get(&format!("Observation/$lastn?patient={pid}&code=85354-9"))
        .await;
    assert_eq!(
        a.body["entry"].as_array().unwrap().len(),
        1,
        "max defaults to 1, code narrows"
    );
    assert_eq!(
        s.get("Observation/$lastn?max=2").await.status,
        400,
        "a patient is required"
    );

    let a = s
        .get(&format!(
            "Observation/$stats?patient={pid}&code=29463-7&system=http://loinc.org&statistic=average,minimum,maximum,count,median,sum"
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["resourceType"], "Parameters");
    let params = a.body["parameter"].as_array().unwrap();
    assert_eq!(params.len(), 1);
    let obs = &params[0]["resource"];
    assert_eq!(obs["code"]["coding"][0]["code"], "29463-7");
    assert_eq!(obs["subject"]["reference"], format!("Patient/{pid}"));
    let stat = |name: &str| {
        obs["component"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"]["coding"][0]["code"] == name)
            .map(|c| c["valueQuantity"]["value"].as_f64().unwrap())
    };
    assert_eq!(stat("average"), Some(81.5));
    assert_eq!(stat("minimum"), Some(80.0));
    assert_eq!(stat("maximum"), Some(83.0));
    assert_eq!(stat("count"), Some(4.0));
    assert_eq!(stat("median"), Some(81.5));
    assert_eq!(stat("sum"), Some(326.0));
    assert_eq!(obs["component"][0]["valueQuantity"]["code"], "kg");

    // Blood pressure: one statistic per component; a period narrows.
    let a = s
        .get(&format!("Observation/$stats?patient={pid}&coding=http://loinc.org|85354-9&statistic=maximum&period=2024-04-01/2024-04-02"))
        .await;
    let params = a.body["parameter"].as_array().unwrap();
    let by_code: Vec<(String, f64)> = params
        .iter()
        .map(|p| {
            (
                p["resource"]["code"]["coding"][0]["code"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                p["resource"]["component"][0]["valueQuantity"]["value"]
                    .as_f64()
                    .unwrap(),
            )
        })
        .collect();
    assert!(by_code.contains(&("8480-6".into(), 130.0)), "{by_code:?}");
    assert!(by_code.contains(&("8462-4".into(), 84.0)), "{by_code:?}");

    for bad in [
        format!("Observation/$stats?patient={pid}&code=29463-7"),
        format!("Observation/$stats?patient={pid}&code=29463-7&statistic=kurtosis"),
        format!("Observation/$stats?patient={pid}&statistic=average"),
        "Observation/$stats?code=29463-7&statistic=average".to_string(),
        format!("Observation/$stats?patient={pid}&code=29463-7&statistic=average&duration=-1"),
    ] {
        let a = s.get(&bad).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.text);
        a.outcome();
    }
}

#[tokio::test]
async fn subjects_without_demographics_are_patients_too() {
    let s = start(ServerConfig::default()).await;
    // A measurement stored by a sync of a source that brings no Patient records.
    let m = healthanalyzer_store::testkit::heart_rate("sim", "no-demographics", 1, 64);
    s.store.write(&[m], None).await.unwrap();
    let (ids, _) = s.search_ids("Patient").await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    let p = s.get(&format!("Patient/{}", ids[0])).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let o = s
        .search_ids(&format!("Observation?patient={}", ids[0]))
        .await
        .0;
    assert_eq!(o.len(), 1);
    let obs = s.get(&format!("Observation/{}", o[0])).await;
    assert_eq!(
        obs.body["subject"]["reference"],
        format!("Patient/{}", ids[0])
    );
}

#[tokio::test]
async fn include_adds_the_patients_of_the_page_once() {
    let s = common::start(ServerConfig::default()).await;
    let anna = s.patient("Include").await;
    let bo = s.patient("Other").await;
    for (p, when) in [
        (&anna, "2024-05-01T08:00:00Z"),
        (&anna, "2024-05-02T08:00:00Z"),
        (&bo, "2024-05-03T08:00:00Z"),
    ] {
        s.observation(&common::weight(p, when, 70.5)).await;
    }
    for include in ["Observation:subject", "Observation:patient"] {
        let a = s
            .get(&format!(
                "Observation?code=29463-7&_include={include}&_count=10"
            ))
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let entries = a.body["entry"].as_array().unwrap();
        let modes: Vec<&str> = entries
            .iter()
            .map(|e| e["search"]["mode"].as_str().unwrap())
            .collect();
        assert_eq!(
            modes,
            ["match", "match", "match", "include", "include"],
            "{}",
            a.text
        );
        let mut included: Vec<&str> = entries[3..]
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap())
            .collect();
        included.sort_unstable();
        let mut want = vec![anna.as_str(), bo.as_str()];
        want.sort_unstable();
        assert_eq!(included, want);
        assert_eq!(entries[3]["resource"]["resourceType"], "Patient");
        // The matches' total does not count the included Patients.
        assert_eq!(a.body["total"], 3, "{}", a.text);
    }
    // Paged: the next page includes its own Patients, and the next link keeps _include.
    let first = s
        .get(&format!(
            "Observation?patient={anna}&_include=Observation:subject&_count=1"
        ))
        .await;
    let next = first.body["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .unwrap()
        .to_owned();
    assert!(
        next.contains("_include=Observation%3Asubject")
            || next.contains("_include=Observation:subject"),
        "{next}"
    );
    let second = s.get(&next).await;
    let modes: Vec<&str> = second.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["search"]["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["match", "include"]);
    // An include this server does not do is ignored, or refused under strict handling.
    let a = s.get("Observation?_include=Observation:performer").await;
    assert_eq!(a.status, 200);
    let a = s
        .send(
            reqwest::Method::GET,
            "Observation?_include=Observation:performer",
            None,
            &[("Prefer", "handling=strict")],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.outcome().contains("_include=Observation:performer"));
}

/// A sync rewrites an Observation the API created, with a payload that carries its source
/// server's `versionId`: reads, searches and `If-Match` all go by the store's version.
#[tokio::test]
async fn reads_searches_and_if_match_use_the_store_version() {
    let s = start(ServerConfig::default()).await;
    let p = s.patient("Versions").await;
    let id = s
        .observation(&weight(&p, "2024-03-01T08:00:00Z", 70.5))
        .await;
    let mid = healthanalyzer_model::MeasurementId::from_uuid(id.parse().unwrap());
    let mut m = s.store.get(&mid).await.unwrap().unwrap();
    let payload = m.provenance.payload.as_mut().unwrap();
    assert!(
        payload.content.contains(r#""versionId":"1""#),
        "{}",
        payload.content
    );
    payload.content = payload
        .content
        .replace(r#""versionId":"1""#, r#""versionId":"7""#)
        .replace("70.5", "71.5");
    m.value = healthanalyzer_model::Value::quantity(
        healthanalyzer_model::parse_decimal("71.5").unwrap(),
        "kg",
    );
    s.store.write(&[m], None).await.unwrap();
    let read = s.get(&format!("Observation/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["meta"]["versionId"], "2", "{}", read.text);
    assert_eq!(read.header("etag"), Some("W/\"2\""));
    let found = s.get(&format!("Observation?patient={p}")).await;
    assert_eq!(
        found.body["entry"][0]["resource"]["meta"]["versionId"], "2",
        "{}",
        found.text
    );
    let mut body = read.body.clone();
    body["valueQuantity"]["value"] = json!(72.0);
    let stale = s
        .send(
            Method::PUT,
            &format!("Observation/{id}"),
            Some(&body),
            &[("if-match", "W/\"7\"")],
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    let ok = s
        .send(
            Method::PUT,
            &format!("Observation/{id}"),
            Some(&body),
            &[("if-match", "W/\"2\"")],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["meta"]["versionId"], "3");
}

#[tokio::test]
async fn a_modifier_or_chain_the_server_does_not_support_is_a_400_never_a_wider_search() {
    let s = start(ServerConfig::default()).await;
    let a = s.patient("Asked").await;
    let b = s.patient("Other").await;
    s.observation(&weight(&a, "2024-05-03T08:00:00Z", 70.0))
        .await;
    s.observation(&weight(&b, "2024-05-03T08:00:00Z", 90.0))
        .await;
    let refused = [
        ("Observation?patient:missing=true", "patient:missing"),
        (
            "Observation?subject.identifier=urn:oid:1.2.208.176.1.2|0101011234",
            "subject.identifier",
        ),
        ("Observation?patient.name=Asked", "patient.name"),
        ("Observation?code:text=weight", "code:text"),
        ("Observation?date:missing=false", "date:missing"),
        (
            "Observation?_has:Device:patient:type=x",
            "_has:Device:patient:type",
        ),
        ("Patient?identifier:of-type=x", "identifier:of-type"),
        ("Patient?name:exact=Asked", "name:exact"),
        ("Observation/$lastn?patient:missing=x", "patient:missing"),
        (
            "Observation/$stats?patient:missing=true&code=http://loinc.org|29463-7&statistic=average",
            "patient:missing",
        ),
    ];
    for (query, name) in refused {
        let r = s.get(query).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text);
        assert_eq!(r.body["resourceType"], "OperationOutcome", "{query}");
        assert_eq!(r.body["issue"][0]["code"], "not-supported", "{query}");
        assert_eq!(
            r.body["issue"][0]["expression"][0],
            format!("http.{name}"),
            "{query}"
        );
        assert!(r.outcome().contains("not supported"), "{query}: {}", r.text);
    }
    // The Patient type modifier says no more than the plain parameter.
    let (ids, _) = s
        .search_ids(&format!("Observation?patient:Patient={a}"))
        .await;
    assert_eq!(ids.len(), 1);
    let (ids, _) = s
        .search_ids(&format!("Observation?subject:Patient=Patient/{b}"))
        .await;
    assert_eq!(ids.len(), 1);
    // :identifier finds the Patient by its identifier, and only that Patient.
    let (ids, _) = s
        .search_ids("Observation?patient:identifier=urn:test:mrn|Asked")
        .await;
    assert_eq!(ids.len(), 1);
    let (ids, _) = s
        .search_ids("Observation?subject:identifier=urn:test:mrn|Nobody")
        .await;
    assert!(ids.is_empty());
    let r = s.get("Observation?patient:identifier=Asked").await;
    assert_eq!(r.status, 400, "{}", r.text);
    // An unknown plain parameter stays lenient, and strict on request.
    let (ids, _) = s
        .search_ids(&format!("Observation?patient={a}&foo=1"))
        .await;
    assert_eq!(ids.len(), 1);
    let r = s
        .send(
            Method::GET,
            "Patient?foo=1",
            None,
            &[("prefer", "handling=strict")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.outcome().contains("foo"), "{}", r.text);
}

#[tokio::test]
async fn lone_blood_pressure_components_are_stored_read_back_and_found_by_their_code() {
    let s = start(ServerConfig::default()).await;
    let pid = s.patient("Lone").await;
    let lone = |code: &str, v: i64| {
        json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "urn:oid:1.2.208.176.2.1", "code": code}]},
            "subject": {"reference": format!("Patient/{pid}")},
            "effectiveDateTime": "2026-11-15T07:30:00+01:00",
            "valueQuantity": {"value": v, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}
        })
    };
    let sys = s.observation(&lone("DNK05472", 141)).await;
    let dia = s.observation(&lone("DNK05473", 88)).await;
    let panel = s
        .observation(&bp(&pid, "2026-11-16T07:30:00+01:00", 130, 80))
        .await;
    let read = s.get(&format!("Observation/{sys}")).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["code"]["coding"][0]["code"], "DNK05472");
    assert_eq!(read.body["valueQuantity"]["value"], 141);
    assert!(read.body.get("component").is_none());

    let ids = |q: String| {
        let s = &s;
        async move {
            let mut v = s.search_ids(&q).await.0;
            v.sort();
            v
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let p = format!("patient={pid}");
    assert_eq!(
        ids(format!(
            "Observation?{p}&code=urn:oid:1.2.208.176.2.1|DNK05472"
        ))
        .await,
        vec![sys.clone()]
    );
    // Any coding of the component finds its lone readings, and only those.
    assert_eq!(
        ids(format!("Observation?{p}&code=http://loinc.org|8462-4")).await,
        vec![dia.clone()]
    );
    assert_eq!(
        ids(format!("Observation?{p}&code=8480-6,8462-4")).await,
        sorted(vec![sys.clone(), dia.clone()])
    );
    // The panel's code finds the panel, not the lone readings.
    assert_eq!(
        ids(format!("Observation?{p}&code=http://loinc.org|85354-9")).await,
        vec![panel.clone()]
    );
    assert_eq!(ids(format!("Observation?{p}")).await.len(), 3);
}

#[tokio::test]
async fn a_test_identifier_is_accepted_and_marked_unless_the_server_refuses_them() {
    let test_fnr = json!({"resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": "1234567"}]});
    let hr = json!({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": "1234567"}},
        "effectiveDateTime": "2026-11-15T07:30:00+01:00",
        "valueQuantity": {"value": 64, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    });
    let s = start(ServerConfig::default()).await;
    let p = s.post("Patient", &test_fnr).await;
    assert_eq!(p.status, 201, "{}", p.text);
    let pid = p.body["id"].as_str().unwrap().to_string();
    s.observation(&hr).await;
    let read = s.get(&format!("Patient/{pid}")).await;
    let tags = read.body["meta"]["tag"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        tags.iter()
            .any(|t| t["code"] == "identifier-fails-national-rules"),
        "{}",
        read.text
    );
    assert!(
        !read.text.contains("\"display\":\"1234567"),
        "the tag does not repeat the number"
    );

    let strict = start(ServerConfig {
        identifiers: healthanalyzer_server::IdentifierPolicy::Refuse,
        ..ServerConfig::default()
    })
    .await;
    assert_eq!(strict.post("Patient", &test_fnr).await.status, 201);
    let refused = strict.post("Observation", &hr).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.outcome().contains("11 digits"), "{}", refused.text);
}
