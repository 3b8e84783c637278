//! The REST shapes of the national measurement chains, over real HTTP: `POST [type]/_search`
//! with form bodies, the chained `patient.identifier` (PMD's read), national person numbers
//! kept out of every URL, self links that name exactly what a search used, batch Bundles that
//! echo `fullUrl` and apply `Prefer` per entry, and the Patient of a patient-context token.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use common::{Answer, TestServer, start, weight};
use healthanalyzer_server::{AuthConfig, ServerConfig};
use reqwest::Method;
use serde_json::{Value, json};

const FNR_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
const BSN_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/bsn";
const CPR_SYSTEM: &str = "urn:oid:1.2.208.176.1.2";
/// A BSN that passes the eleven test.
const BSN: &str = "999999990";

/// A fødselsnummer with valid check digits, for a birth date `ddmmyy`.
fn fnr(ddmmyy: &str) -> String {
    let w1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    let w2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let check = |digits: &[u32], weights: &[u32]| -> Option<u32> {
        let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
        match 11 - sum % 11 {
            11 => Some(0),
            10 => None,
            k => Some(k),
        }
    };
    for individual in 100..1000 {
        let mut d: Vec<u32> = format!("{ddmmyy}{individual}")
            .chars()
            .map(|c| c.to_digit(10).unwrap())
            .collect();
        let Some(k1) = check(&d, &w1) else { continue };
        d.push(k1);
        let Some(k2) = check(&d, &w2) else { continue };
        d.push(k2);
        return d.iter().map(|x| x.to_string()).collect();
    }
    panic!("no valid FNR for {ddmmyy}");
}

/// Sends `form` as an `application/x-www-form-urlencoded` body.
async fn post_form(s: &TestServer, path: &str, form: &str, headers: &[(&str, &str)]) -> Answer {
    let url = format!("{}/{}", s.base, path.trim_start_matches('/'));
    let mut req = s
        .http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req).await
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn full_urls(a: &Answer) -> Vec<String> {
    a.body["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap_or("").to_string())
        .collect()
}

fn link(a: &Answer, relation: &str) -> Option<String> {
    a.body["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(str::to_string)
}

/// Every URL of an answer: its links, the entries' fullUrls, the Location headers, and the
/// entries' `response.location`.
fn urls(a: &Answer) -> Vec<String> {
    let mut out: Vec<String> = a.body["link"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l["url"].as_str().map(str::to_string))
        .collect();
    for e in a.body["entry"].as_array().cloned().unwrap_or_default() {
        for u in [&e["fullUrl"], &e["response"]["location"]] {
            if let Some(u) = u.as_str() {
                out.push(u.to_string());
            }
        }
    }
    for h in ["location", "content-location"] {
        if let Some(v) = a.header(h) {
            out.push(v.to_string());
        }
    }
    out
}

/// A Patient with one identifier, created; its id.
async fn patient_with(s: &TestServer, family: &str, system: &str, value: &str) -> String {
    let a = s
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "name": [{"family": family, "given": ["Kari"]}],
                    "identifier": [{"system": system, "value": value}],
                    "birthDate": "1980-03-14", "gender": "female"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.body["id"].as_str().unwrap().to_string()
}

/// A body weight whose subject is only a logical identifier (PMD's VkpObservation).
fn weight_by_identifier(system: &str, value: &str, when: &str, kg: f64) -> Value {
    let mut o = weight("x", when, kg);
    o["subject"] =
        json!({"identifier": {"system": system, "value": value}, "display": "Kari Nordmann"});
    o
}

#[tokio::test]
async fn post_search_with_a_form_body_gives_the_entries_of_the_same_get() {
    let s = start(ServerConfig::default()).await;
    let a = s.patient("Formby").await;
    let b = s.patient("Other").await;
    for (i, when) in [
        "2024-01-03T08:00:00Z",
        "2024-02-03T08:00:00Z",
        "2024-03-03T08:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        s.observation(&weight(&a, when, 70.0 + i as f64)).await;
        s.observation(&common::bp(&a, when, 120, 80)).await;
        s.observation(&weight(&b, when, 90.0)).await;
    }
    let observation_searches: Vec<Vec<(&str, String)>> = vec![
        vec![("patient", a.clone())],
        vec![("subject", format!("Patient/{a}"))],
        vec![("patient:Patient", a.clone())],
        vec![("patient:identifier", "urn:test:mrn|Formby".into())],
        vec![("patient.identifier", "urn:test:mrn|Formby".into())],
        vec![("subject:Patient.identifier", "urn:test:mrn|Other".into())],
        vec![
            ("patient", a.clone()),
            ("code", "http://loinc.org|29463-7".into()),
        ],
        vec![("patient", a.clone()), ("category", "vital-signs".into())],
        vec![
            ("patient", a.clone()),
            ("date", "ge2024-02".into()),
            ("date", "lt2024-03-05".into()),
        ],
        vec![("patient", a.clone()), ("date", "ne2024-02".into())],
        vec![("patient", a.clone()), ("_lastUpdated", "ge2020".into())],
        vec![
            ("patient", a.clone()),
            ("_sort", "-date".into()),
            ("_count", "2".into()),
        ],
        vec![
            ("patient", a.clone()),
            ("_include", "Observation:subject".into()),
        ],
        vec![("patient", a.clone()), ("_summary", "count".into())],
        vec![("code", "85354-9".into()), ("_total", "none".into())],
    ];
    for search in &observation_searches {
        let pairs: Vec<(&str, &str)> = search.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let query = form(&pairs);
        let get = s.get(&format!("Observation?{query}")).await;
        assert_eq!(get.status, 200, "GET {query}: {}", get.text);
        let post = post_form(&s, "Observation/_search", &query, &[]).await;
        assert_eq!(post.status, 200, "POST {query}: {}", post.text);
        assert_eq!(full_urls(&post), full_urls(&get), "{query}");
        assert_eq!(post.body["total"], get.body["total"], "{query}");
        assert_eq!(link(&post, "self"), link(&get, "self"), "{query}");
        assert!(
            link(&post, "self")
                .unwrap()
                .starts_with(&format!("{}/Observation?", s.base)),
            "the self link of a POST is the GET of it: {query}"
        );
        // Half in the URL, half in the body: both count.
        let (in_url, in_body) = pairs.split_at(pairs.len() / 2);
        let split = post_form(
            &s,
            &format!("Observation/_search?{}", form(in_url)),
            &form(in_body),
            &[],
        )
        .await;
        assert_eq!(split.status, 200, "{query}: {}", split.text);
        assert_eq!(full_urls(&split), full_urls(&get), "URL and body: {query}");
    }
    // Something matched: the comparisons above compared something.
    let get = s.get(&format!("Observation?patient={a}")).await;
    assert_eq!(full_urls(&get).len(), 6);

    let patient_searches = [
        "identifier=urn:test:mrn|Formby",
        "identifier=Other",
        "name=form",
        "family=other&given=",
        "birthdate=1950-03-14&_count=1",
        "_id=nope",
        "_summary=count",
    ];
    for query in patient_searches {
        let get = s.get(&format!("Patient?{query}")).await;
        assert_eq!(get.status, 200, "GET {query}: {}", get.text);
        let post = post_form(&s, "Patient/_search", query, &[]).await;
        assert_eq!(post.status, 200, "POST {query}: {}", post.text);
        assert_eq!(full_urls(&post), full_urls(&get), "{query}");
        assert_eq!(post.body["total"], get.body["total"], "{query}");
        assert_eq!(link(&post, "self"), link(&get, "self"), "{query}");
    }
    let post = post_form(&s, "Patient/_search", "name=form", &[]).await;
    assert_eq!(full_urls(&post), vec![format!("{}/Patient/{a}", s.base)]);

    // $lastn and $stats take a form body too.
    let query = format!("patient={a}&code=http://loinc.org|29463-7&max=2");
    let get = s.get(&format!("Observation/$lastn?{query}")).await;
    let post = post_form(&s, "Observation/$lastn", &query, &[]).await;
    assert_eq!(post.status, 200, "{}", post.text);
    assert_eq!(full_urls(&post).len(), 2);
    assert_eq!(full_urls(&post), full_urls(&get));
    assert_eq!(link(&post, "self"), link(&get, "self"));
    let query = format!("patient={a}&code=http://loinc.org|29463-7&statistic=average,count");
    let get = s.get(&format!("Observation/$stats?{query}")).await;
    let post = post_form(&s, "Observation/$stats", &query, &[]).await;
    assert_eq!(post.status, 200, "{}", post.text);
    assert_eq!(post.body["parameter"], get.body["parameter"]);
    assert_eq!(
        post.body["parameter"][0]["resource"]["component"][0]["valueQuantity"]["value"],
        71.0
    );

    // A body of another media type: 415 with an OperationOutcome; no body at all: the URL's
    // parameters alone.
    for path in [
        "Observation/_search",
        "Patient/_search",
        "Observation/$lastn",
    ] {
        let r = s
            .send(Method::POST, path, Some(&json!({"patient": a})), &[])
            .await;
        assert_eq!(r.status, 415, "{path}: {}", r.text);
        assert!(r.outcome().contains("x-www-form-urlencoded"), "{}", r.text);
    }
    let r = answer(
        s.http
            .post(format!("{}/Observation/_search?patient={a}", s.base))
            .header("content-type", "text/plain")
            .body(format!("patient={b}")),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text);
    let r = answer(
        s.http
            .post(format!("{}/Observation/_search?patient={a}", s.base)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(full_urls(&r).len(), 6);
    // GET on _search is not a search.
    assert_ne!(s.get("Observation/_search").await.status, 200);
}

#[tokio::test]
async fn pmd_reads_measurements_by_the_patients_fnr_with_post_search_only() {
    let s = start(ServerConfig::default()).await;
    let number = fnr("140380");
    let kari = patient_with(&s, "Nordmann", FNR_SYSTEM, &number).await;
    let other = patient_with(&s, "Hansen", FNR_SYSTEM, &fnr("020290")).await;
    // Measurements sent the PMD way: the subject only by its FNR.
    for (i, when) in ["2025-01-01T08:00:00Z", "2025-01-02T08:00:00Z"]
        .iter()
        .enumerate()
    {
        let a = s
            .post(
                "Observation",
                &weight_by_identifier(FNR_SYSTEM, &number, when, 60.0 + i as f64),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    s.observation(&weight(&other, "2025-01-01T08:00:00Z", 99.0))
        .await;
    // Stored under Kari: the search by her Patient id finds them.
    let by_id = s.get(&format!("Observation?patient={kari}")).await;
    assert_eq!(full_urls(&by_id).len(), 2, "{}", by_id.text);

    let token = format!("{FNR_SYSTEM}|{number}");
    for name in [
        "patient.identifier",
        "subject.identifier",
        "subject:Patient.identifier",
        "patient:identifier",
    ] {
        let post = post_form(&s, "Observation/_search", &form(&[(name, &token)]), &[]).await;
        assert_eq!(post.status, 200, "{name}: {}", post.text);
        assert_eq!(full_urls(&post), full_urls(&by_id), "{name}");
        for e in post.body["entry"].as_array().unwrap() {
            assert_eq!(
                e["resource"]["subject"]["identifier"]["value"],
                number.as_str()
            );
        }
        // The same by GET: refused, telling the client to POST.
        let get = s
            .get(&format!("Observation?{}", form(&[(name, &token)])))
            .await;
        assert_eq!(get.status, 400, "{name}: {}", get.text);
        let why = get.outcome();
        assert!(why.contains("POST") && why.contains("_search"), "{why}");
        assert!(!get.text.contains(&number), "the refusal quotes no number");
        assert_eq!(
            get.body["issue"][0]["expression"][0],
            format!("http.{name}")
        );
    }
    // An FNR nobody has: nothing (and no error).
    let none = post_form(
        &s,
        "Observation/_search",
        &form(&[(
            "patient.identifier",
            &format!("{FNR_SYSTEM}|{}", fnr("010101")),
        )]),
        &[],
    )
    .await;
    assert_eq!(none.status, 200, "{}", none.text);
    assert!(full_urls(&none).is_empty());
    // Malformed tokens and systems that are not URIs: 400 naming the parameter, quoting no value.
    for bad in [
        "12345678901".to_string(),
        format!("{FNR_SYSTEM}|"),
        format!("{FNR_SYSTEM}|1403801234"),
        format!("{FNR_SYSTEM}|14038O12345"),
        "fnr|14038012345".to_string(),
        format!("|{number}"),
        format!("{FNR_SYSTEM}|{number}|x"),
    ] {
        let r = post_form(
            &s,
            "Observation/_search",
            &form(&[("patient.identifier", &bad)]),
            &[],
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        r.outcome();
        assert_eq!(
            r.body["issue"][0]["expression"][0],
            "http.patient.identifier"
        );
        assert!(!r.text.contains(&number), "{}", r.text);
    }
    // Another chain stays refused, never a wider search.
    let r = post_form(&s, "Observation/_search", "patient.name=Nordmann", &[]).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["issue"][0]["expression"][0], "http.patient.name");
    // $lastn by FNR: POST only.
    let body = form(&[("patient.identifier", &token), ("max", "5")]);
    let r = post_form(&s, "Observation/$lastn", &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(full_urls(&r).len(), 2);
    assert!(
        urls(&r).iter().all(|u| !u.contains(&number)),
        "{:?}",
        urls(&r)
    );
    let r = s.get(&format!("Observation/$lastn?{body}")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s
        .get(&format!(
            "Observation/$stats?{}&code=http://loinc.org|29463-7&statistic=count",
            form(&[("patient.identifier", &token)])
        ))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn no_link_of_a_search_by_a_national_number_carries_it() {
    let s = start(ServerConfig::default()).await;
    let number = fnr("250575");
    let kari = patient_with(&s, "Nordmann", FNR_SYSTEM, &number).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let when = format!("2025-02-0{}T08:00:00Z", i + 1);
        ids.push(
            s.observation(&weight_by_identifier(FNR_SYSTEM, &number, &when, 60.0))
                .await,
        );
    }
    let token = format!("{FNR_SYSTEM}|{number}");
    let first = post_form(
        &s,
        "Observation/_search",
        &form(&[("patient.identifier", &token), ("_count", "2")]),
        &[],
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text);
    // The links name the Patient the number resolved to: the same search, by GET.
    assert_eq!(
        link(&first, "self").unwrap(),
        format!("{}/Observation?patient={kari}&_count=2", s.base)
    );
    let mut seen = full_urls(&first);
    let mut answers = vec![first];
    while let Some(next) = link(answers.last().unwrap(), "next") {
        let a = s.get(&next).await;
        assert_eq!(a.status, 200, "{next}: {}", a.text);
        seen.extend(full_urls(&a));
        answers.push(a);
        assert!(answers.len() < 5, "a next-link loop");
    }
    let want: Vec<String> = ids
        .iter()
        .map(|id| format!("{}/Observation/{id}", s.base))
        .collect();
    assert_eq!(seen, want, "the next links page through the same search");
    for a in &answers {
        for u in urls(a) {
            assert!(!u.contains(&number), "{u}");
        }
    }
    // A Patient search by BSN: POST only; its links name the Patient id.
    let anna = patient_with(&s, "Jansen", BSN_SYSTEM, BSN).await;
    let a = post_form(
        &s,
        "Patient/_search",
        &form(&[("identifier", &format!("{BSN_SYSTEM}|{BSN}"))]),
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(full_urls(&a), vec![format!("{}/Patient/{anna}", s.base)]);
    assert_eq!(
        link(&a, "self").unwrap(),
        format!("{}/Patient?_id={anna}&_count=50", s.base)
    );
    assert!(urls(&a).iter().all(|u| !u.contains(BSN)), "{:?}", urls(&a));
    // Its self link is the same search.
    let again = s.get(&link(&a, "self").unwrap()).await;
    assert_eq!(full_urls(&again), full_urls(&a));
    // Through GET: refused, for BSN, FNR and CPR alike, and in the URL of a POST too.
    for token in [
        format!("{BSN_SYSTEM}|{BSN}"),
        format!("{FNR_SYSTEM}|{number}"),
        format!("{CPR_SYSTEM}|0101011234"),
    ] {
        let q = form(&[("identifier", &token)]);
        let r = s.get(&format!("Patient?{q}")).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(
            r.outcome().contains("POST [base]/Patient/_search"),
            "{}",
            r.text
        );
        assert_eq!(r.body["issue"][0]["expression"][0], "http.identifier");
        let r = post_form(&s, &format!("Patient/_search?{q}"), "", &[]).await;
        assert_eq!(r.status, 400, "{}", r.text);
        let q = form(&[("subject.identifier", &token)]);
        let r = post_form(&s, &format!("Observation/_search?{q}"), "", &[]).await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
    // A national number among other identifiers needs every one with its system.
    let r = post_form(
        &s,
        "Patient/_search",
        &form(&[("identifier", &format!("{BSN_SYSTEM}|{BSN},Jansen"))]),
        &[],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(!r.text.contains(BSN));
}

#[tokio::test]
async fn self_links_name_every_parameter_used_in_a_canonical_order_and_none_ignored() {
    let s = start(ServerConfig::default()).await;
    let a = s.patient("Links").await;
    s.observation(&weight(&a, "2024-05-01T08:00:00Z", 70.0))
        .await;
    let base = &s.base;
    let cases = [
        (
            format!(
                "Observation?_count=5&date=ge2024&foo=1&code=http://loinc.org|29463-7&patient={a}&_sort=-date&_total=none&date=lt2025"
            ),
            format!(
                "{base}/Observation?code=http%3A%2F%2Floinc.org%7C29463-7&date=ge2024&date=lt2025&patient={a}&_sort=-date&_count=5&_total=none"
            ),
        ),
        (
            format!("Observation?_summary=count&subject=Patient/{a}&_format=json"),
            format!(
                "{base}/Observation?subject=Patient%2F{a}&_count=50&_summary=count&_format=json"
            ),
        ),
        (
            format!(
                "Observation?_include=Observation:subject&_include=Observation:nothing&patient={a}&_summary=text"
            ),
            format!("{base}/Observation?patient={a}&_include=Observation%3Asubject&_count=50"),
        ),
        (
            "Patient?given=kari&_total=none&family=links&bar=2&_count=3".to_string(),
            format!("{base}/Patient?family=links&given=kari&_count=3&_total=none"),
        ),
        (
            "Patient?_summary=count&identifier=urn:test:mrn|Links".to_string(),
            format!("{base}/Patient?identifier=urn%3Atest%3Amrn%7CLinks&_count=50&_summary=count"),
        ),
    ];
    for (query, want) in &cases {
        let r = s.get(query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert_eq!(link(&r, "self").as_deref(), Some(want.as_str()), "{query}");
        // The self link is the same search: it answers the same.
        let again = s.get(want).await;
        assert_eq!(full_urls(&again), full_urls(&r), "{query}");
        assert_eq!(again.body["total"], r.body["total"], "{query}");
        assert_eq!(
            link(&again, "self").as_deref(),
            Some(want.as_str()),
            "{query}"
        );
    }
    // An unknown parameter: left out of the link, or refused under strict handling.
    let r = s
        .send(
            Method::GET,
            &format!("Observation?patient={a}&foo=1"),
            None,
            &[("prefer", "handling=strict")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.outcome().contains("foo"));
    let r = post_form(
        &s,
        "Observation/_search",
        &format!("patient={a}&foo=1"),
        &[("prefer", "handling=strict")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // A next link is the self link and the page.
    s.observation(&weight(&a, "2024-05-02T08:00:00Z", 71.0))
        .await;
    let r = s.get(&format!("Observation?patient={a}&_count=1")).await;
    let next = link(&r, "next").unwrap();
    assert!(
        next.starts_with(&format!("{base}/Observation?patient={a}&_count=1&_page=")),
        "{next}"
    );
    let r = s.get(&next).await;
    assert_eq!(link(&r, "self").as_deref(), Some(next.as_str()));
}

/// A batch of three: a create with a `urn:uuid` fullUrl, an update-as-create of a Patient with
/// an absolute fullUrl, and a create that fails (no subject).
fn three_entry_batch(patient: &str) -> Value {
    let mut bad = weight(patient, "2024-06-01T08:00:00Z", 1.0);
    bad.as_object_mut().unwrap().remove("subject");
    json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"fullUrl": "urn:uuid:0b4f8b0e-9a33-4c40-b3c5-000000000001",
         "resource": weight(patient, "2024-06-01T08:00:00Z", 70.0),
         "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "http://example.org/fhir/Patient/batch-patient",
         "resource": {"resourceType": "Patient", "id": "batch-patient", "name": [{"family": "Batch"}]},
         "request": {"method": "PUT", "url": "Patient/batch-patient"}},
        {"fullUrl": "urn:uuid:0b4f8b0e-9a33-4c40-b3c5-000000000003",
         "resource": bad,
         "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": format!("Patient/{patient}")}}
    ]})
}

#[tokio::test]
async fn batch_entries_echo_their_full_url_and_follow_prefer() {
    let s = start(ServerConfig::default()).await;
    let p = s.patient("Batch").await;
    let mut stored = 0;
    for prefer in [
        None,
        Some("minimal"),
        Some("representation"),
        Some("OperationOutcome"),
    ] {
        let header = prefer.map(|p| format!("return={p}"));
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("prefer", h.as_str())).collect();
        let r = s
            .send(Method::POST, "", Some(&three_entry_batch(&p)), &headers)
            .await;
        assert_eq!(r.status, 200, "{prefer:?}: {}", r.text);
        assert_eq!(r.body["type"], "batch-response");
        let entries = r.body["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 4);
        // fullUrl: the request entry's, for success and failure alike.
        assert_eq!(
            entries[0]["fullUrl"],
            "urn:uuid:0b4f8b0e-9a33-4c40-b3c5-000000000001"
        );
        assert_eq!(
            entries[1]["fullUrl"],
            "http://example.org/fhir/Patient/batch-patient"
        );
        assert_eq!(
            entries[2]["fullUrl"],
            "urn:uuid:0b4f8b0e-9a33-4c40-b3c5-000000000003"
        );
        assert!(
            entries[2]["response"]["status"]
                .as_str()
                .unwrap()
                .starts_with("422")
        );
        assert_eq!(
            entries[2]["response"]["outcome"]["resourceType"],
            "OperationOutcome"
        );
        assert!(entries[2].get("resource").is_none());
        // Without a fullUrl in the request: where the resource is.
        assert_eq!(entries[3]["fullUrl"], format!("{}/Patient/{p}", s.base));
        assert_eq!(
            entries[3]["resource"]["id"],
            p.as_str(),
            "a read keeps its resource"
        );
        for e in &entries[..2] {
            let response = &e["response"];
            assert!(response["location"].as_str().is_some(), "{e}");
            assert!(response["etag"].as_str().is_some(), "{e}");
            match prefer {
                Some("minimal") => {
                    assert!(e.get("resource").is_none(), "{e}");
                    assert!(response.get("outcome").is_none(), "{e}");
                }
                Some("OperationOutcome") => {
                    assert!(e.get("resource").is_none(), "{e}");
                    assert_eq!(
                        response["outcome"]["resourceType"], "OperationOutcome",
                        "{e}"
                    );
                    assert_eq!(response["outcome"]["issue"][0]["severity"], "information");
                }
                _ => {
                    assert!(e["resource"]["meta"]["versionId"].is_string(), "{e}");
                    assert!(response.get("outcome").is_none(), "{e}");
                }
            }
        }
        stored += 1;
        // What is stored: one Observation per batch (the failing entry wrote nothing).
        let (ids, _) = s.search_ids(&format!("Observation?patient={p}")).await;
        assert_eq!(ids.len(), stored, "{prefer:?}");
    }

    // A transaction answers each Prefer too.
    for prefer in ["minimal", "representation", "OperationOutcome"] {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:5b3a2f64-0c1e-4f6e-9d0a-00000000000a",
             "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": weight("x", "2024-07-01T08:00:00Z", 80.0),
             "request": {"method": "POST", "url": "Observation"}}
        ]});
        let mut bundle = bundle;
        bundle["entry"][1]["resource"]["subject"] =
            json!({"reference": "urn:uuid:5b3a2f64-0c1e-4f6e-9d0a-00000000000a"});
        let header = format!("return={prefer}");
        let r = s
            .send(
                Method::POST,
                "",
                Some(&bundle),
                &[("prefer", header.as_str())],
            )
            .await;
        assert_eq!(r.status, 200, "{prefer}: {}", r.text);
        assert_eq!(r.body["type"], "transaction-response");
        for e in r.body["entry"].as_array().unwrap() {
            assert!(e["response"]["status"].as_str().unwrap().starts_with("201"));
            match prefer {
                "minimal" => {
                    assert!(
                        e.get("resource").is_none() && e["response"].get("outcome").is_none(),
                        "{e}"
                    )
                }
                "OperationOutcome" => {
                    assert!(e.get("resource").is_none(), "{e}");
                    assert_eq!(e["response"]["outcome"]["resourceType"], "OperationOutcome");
                }
                _ => assert!(e["resource"]["id"].is_string(), "{e}"),
            }
        }
        let pid = r.body["entry"][0]["response"]["location"]
            .as_str()
            .unwrap()
            .split('/')
            .nth(1)
            .unwrap()
            .to_string();
        let (ids, _) = s.search_ids(&format!("Observation?patient={pid}")).await;
        assert_eq!(
            ids.len(),
            1,
            "{prefer}: the transaction stored its Observation"
        );
    }
}

const ADMIN: &str = "admin-token-0123456789abcdef";
const ANNE: &str = "anne-token-0123456789abcdef";
const PATIENTS_ONLY: &str = "patients-token-0123456789abcdef";

async fn with_tokens() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(
        &file,
        format!(
            "admin {ADMIN} system/*.cruds\nanne {ANNE} patient/*.rs patient=anne\npatients {PATIENTS_ONLY} user/Patient.rs\n"
        ),
    )
    .unwrap();
    let auth = AuthConfig::from_token_file(&file).unwrap();
    let s = start(ServerConfig {
        auth: Some(auth),
        ..ServerConfig::default()
    })
    .await;
    (s, dir)
}

#[tokio::test]
async fn a_patient_token_searches_its_patient_by_get_post_and_lastn() {
    let (s, _dir) = with_tokens().await;
    let admin = format!("Bearer {ADMIN}");
    let anne_auth = format!("Bearer {ANNE}");
    let as_admin = [("authorization", admin.as_str())];
    let as_anne = [("authorization", anne_auth.as_str())];
    let bob_number = fnr("111185");
    for (id, system, value) in [
        ("anne", "urn:test:mrn", "Anne"),
        ("bob", FNR_SYSTEM, bob_number.as_str()),
    ] {
        let p = json!({"resourceType": "Patient", "id": id, "name": [{"family": id}],
                       "identifier": [{"system": system, "value": value}]});
        let r = s
            .send(Method::PUT, &format!("Patient/{id}"), Some(&p), &as_admin)
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        for day in 1..=2 {
            let o = weight(id, &format!("2025-03-0{day}T08:00:00Z"), 70.0);
            let r = s
                .send(Method::POST, "Observation", Some(&o), &as_admin)
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
        }
    }
    let subjects = |a: &Answer| -> Vec<String> {
        a.body["entry"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                e["resource"]["subject"]["reference"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    // No patient parameter: the token's Patient, by GET, POST _search and $lastn alike.
    let r = s.send(Method::GET, "Observation", None, &as_anne).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(subjects(&r), vec!["Patient/anne", "Patient/anne"]);
    assert_eq!(
        link(&r, "self").unwrap(),
        format!("{}/Observation?patient=anne&_count=50", s.base)
    );
    let r = post_form(&s, "Observation/_search", "", &as_anne).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(subjects(&r), vec!["Patient/anne", "Patient/anne"]);
    let r = post_form(
        &s,
        "Observation/_search",
        "code=http://loinc.org|29463-7",
        &as_anne,
    )
    .await;
    assert_eq!(subjects(&r), vec!["Patient/anne", "Patient/anne"]);
    for lastn in [
        s.send(Method::GET, "Observation/$lastn?max=5", None, &as_anne)
            .await,
        post_form(&s, "Observation/$lastn", "max=5", &as_anne).await,
    ] {
        assert_eq!(lastn.status, 200, "{}", lastn.text);
        assert_eq!(subjects(&lastn), vec!["Patient/anne", "Patient/anne"]);
    }
    let r = post_form(&s, "Patient/_search", "", &as_anne).await;
    assert_eq!(full_urls(&r), vec![format!("{}/Patient/anne", s.base)]);
    // Another Patient named: 403, as for GET; by identifier: nothing of theirs.
    for r in [
        s.send(Method::GET, "Observation?patient=bob", None, &as_anne)
            .await,
        post_form(&s, "Observation/_search", "patient=bob", &as_anne).await,
        post_form(&s, "Observation/_search", "subject=Patient/bob", &as_anne).await,
        post_form(&s, "Observation/$lastn", "patient=bob", &as_anne).await,
    ] {
        assert_eq!(r.status, 403, "{}", r.text);
        r.outcome();
    }
    let r = post_form(
        &s,
        "Observation/_search",
        &form(&[("patient.identifier", &format!("{FNR_SYSTEM}|{bob_number}"))]),
        &as_anne,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(subjects(&r).is_empty(), "{}", r.text);
    // The admin's search by Bob's FNR finds his.
    let r = post_form(
        &s,
        "Observation/_search",
        &form(&[("patient.identifier", &format!("{FNR_SYSTEM}|{bob_number}"))]),
        &as_admin,
    )
    .await;
    assert_eq!(subjects(&r), vec!["Patient/bob", "Patient/bob"]);
    // POST _search needs the search scope, like GET: none without a token, 403 without `s`.
    let patients_only = format!("Bearer {PATIENTS_ONLY}");
    for path in [
        "Observation/_search",
        "Observation/$lastn",
        "Observation/$stats",
    ] {
        let r = post_form(
            &s,
            path,
            "patient=anne",
            &[("authorization", patients_only.as_str())],
        )
        .await;
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        let r = post_form(&s, path, "patient=anne", &[]).await;
        assert_eq!(r.status, 401, "{path}: {}", r.text);
    }
    let r = post_form(
        &s,
        "Patient/_search",
        "",
        &[("authorization", patients_only.as_str())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn the_capability_statement_lists_post_search_and_the_chain() {
    let s = start(ServerConfig::default()).await;
    let r = s.get("metadata").await;
    assert_eq!(r.status, 200);
    let resources = r.body["rest"][0]["resource"].as_array().unwrap();
    for ty in ["Patient", "Observation"] {
        let res = resources.iter().find(|x| x["type"] == ty).unwrap();
        let search = res["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["code"] == "search-type")
            .unwrap();
        assert!(
            search["documentation"]
                .as_str()
                .unwrap()
                .contains("_search"),
            "{ty}"
        );
    }
    let obs = resources
        .iter()
        .find(|x| x["type"] == "Observation")
        .unwrap();
    let names: Vec<&str> = obs["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"patient.identifier"), "{names:?}");
    assert!(names.contains(&"subject.identifier"), "{names:?}");
}

const PMD_BUNDLE: &str =
    "http://hl7.no/fhir/vkpobservation/StructureDefinition/pmd-Bundle-Observation";

/// A VKP body weight of the Patient with FNR `number`.
fn vkp_weight(number: &str, when: &str, kg: f64) -> Value {
    json!({
        "resourceType": "Observation",
        "meta": {"profile": ["http://hl7.no/fhir/vkpobservation/StructureDefinition/vkp-Observation-Bodyweight"]},
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [
            {"system": "http://loinc.org", "code": "29463-7"},
            {"system": "http://snomed.info/sct", "code": "27113001"}]},
        "subject": {"identifier": {"system": FNR_SYSTEM, "value": number}, "display": "Pasient"},
        "effectiveDateTime": when,
        "performer": [{"identifier": {"system": FNR_SYSTEM, "value": "13116900216"}, "display": "Helsepersonell"}],
        "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    })
}

/// How many Observations a POST search by the FNR `number` finds.
async fn stored(s: &TestServer, number: &str) -> usize {
    let body = form(&[("patient.identifier", &format!("{FNR_SYSTEM}|{number}"))]);
    let r = post_form(s, "Observation/_search", &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    full_urls(&r).len()
}

fn pmd_batch(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "meta": {"profile": [PMD_BUNDLE]}, "type": "batch", "entry": entries})
}

fn pmd_entry(full_url: &str, resource: Value) -> Value {
    json!({"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": "Observation"}})
}

#[tokio::test]
async fn a_pmd_batch_is_checked_whole_and_answered_with_its_full_urls() {
    let s = start(ServerConfig::default()).await;
    let number = fnr("300666");
    patient_with(&s, "Nordmann", FNR_SYSTEM, &number).await;
    let good = pmd_batch(vec![
        pmd_entry(
            "urn:uuid:7f1c3a52-1b7e-4a0c-9e1d-000000000001",
            vkp_weight(&number, "2025-04-01T08:00:00+02:00", 72.4),
        ),
        pmd_entry(
            "urn:uuid:7f1c3a52-1b7e-4a0c-9e1d-000000000002",
            vkp_weight(&number, "2025-04-02T08:00:00+02:00", 72.1),
        ),
    ]);
    let r = s.post("", &good).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "batch-response");
    let entries = r.body["entry"].as_array().unwrap();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["fullUrl"], good["entry"][i]["fullUrl"], "{e}");
        assert!(
            e["response"]["status"].as_str().unwrap().starts_with("201"),
            "{e}"
        );
    }
    assert!(urls(&r).iter().all(|u| !u.contains(&number)));
    assert_eq!(stored(&s, &number).await, 2);

    // Broken rules: refused whole, each violation located, nothing written.
    let mut no_display = vkp_weight(&number, "2025-04-03T08:00:00+02:00", 70.0);
    no_display["subject"]
        .as_object_mut()
        .unwrap()
        .remove("display");
    let mut entries = vec![
        pmd_entry(
            "urn:uuid:7f1c3a52-1b7e-4a0c-9e1d-000000000003",
            vkp_weight(&number, "2025-04-03T08:00:00+02:00", 70.0),
        ),
        json!({"resource": vkp_weight(&number, "2025-04-04T08:00:00+02:00", 70.0),
               "request": {"method": "POST", "url": "Observation"}}),
        pmd_entry("urn:uuid:7f1c3a52-1b7e-4a0c-9e1d-000000000003", no_display),
        pmd_entry(
            "urn:uuid:7f1c3a52-1b7e-4a0c-9e1d-000000000005",
            json!({"resourceType": "Patient", "name": [{"family": "X"}]}),
        ),
    ];
    entries[3]["request"]["method"] = json!("DELETE");
    let bad = pmd_batch(entries);
    let r = s.post("", &bad).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    let expressions: Vec<&str> = r.body["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["severity"], "error");
            assert!(i["diagnostics"].as_str().is_some_and(|d| !d.is_empty()));
            i["expression"][0].as_str().unwrap()
        })
        .collect();
    for want in [
        "Bundle.entry[1].fullUrl",
        "Bundle.entry[2].fullUrl",
        "Bundle.entry[2].resource.subject.display",
        "Bundle.entry[3].request.method",
        "Bundle.entry[3].resource",
    ] {
        assert!(expressions.contains(&want), "{want} in {expressions:?}");
    }
    assert!(!r.text.contains(&number), "no issue quotes the FNR");
    assert_eq!(
        stored(&s, &number).await,
        2,
        "nothing of the refused batch was written"
    );
    // A transaction claiming the profile is refused too.
    let mut tx = good.clone();
    tx["type"] = json!("transaction");
    let r = s.post("", &tx).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["issue"][0]["expression"][0], "Bundle.type");
    assert_eq!(stored(&s, &number).await, 2);

    // Without the profile, an entry without fullUrl stays allowed.
    let plain = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": vkp_weight(&number, "2025-04-05T08:00:00+02:00", 71.0),
         "request": {"method": "POST", "url": "Observation"}}]});
    let r = s.post("", &plain).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["entry"][0]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("201")
    );
    assert_eq!(stored(&s, &number).await, 3);
}

#[tokio::test]
async fn the_new_answers_are_valid_fhir() {
    let s = start(ServerConfig::default()).await;
    let number = fnr("121288");
    let p = patient_with(&s, "Valid", FNR_SYSTEM, &number).await;
    s.observation(&weight(&p, "2025-05-01T08:00:00Z", 70.0))
        .await;
    let out = tempfile::tempdir().unwrap();
    let mut saved = 0;
    let mut save = |name: &str, a: &Answer| {
        assert!(a.body.is_object(), "{name}: {}", a.text);
        std::fs::write(out.path().join(format!("{name}.json")), a.text.as_bytes()).unwrap();
        saved += 1;
    };
    let token = format!("{FNR_SYSTEM}|{number}");
    save(
        "post-search",
        &post_form(
            &s,
            "Observation/_search",
            &form(&[
                ("patient.identifier", &token),
                ("_include", "Observation:subject"),
            ]),
            &[],
        )
        .await,
    );
    save(
        "post-patient-search",
        &post_form(&s, "Patient/_search", &form(&[("identifier", &token)]), &[]).await,
    );
    save(
        "post-lastn",
        &post_form(
            &s,
            "Observation/$lastn",
            &form(&[("patient.identifier", &token)]),
            &[],
        )
        .await,
    );
    save(
        "national-in-url",
        &s.get(&format!(
            "Observation?{}",
            form(&[("patient.identifier", &token)])
        ))
        .await,
    );
    save(
        "wrong-media-type",
        &s.send(Method::POST, "Observation/_search", Some(&json!({})), &[])
            .await,
    );
    for prefer in ["minimal", "representation", "OperationOutcome"] {
        let header = format!("return={prefer}");
        let r = s
            .send(
                Method::POST,
                "",
                Some(&three_entry_batch(&p)),
                &[("prefer", header.as_str())],
            )
            .await;
        save(&format!("batch-{prefer}"), &r);
        let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": weight(&p, "2025-05-02T08:00:00Z", 71.0),
             "request": {"method": "POST", "url": "Observation"}}]});
        let r = s
            .send(Method::POST, "", Some(&tx), &[("prefer", header.as_str())])
            .await;
        save(&format!("transaction-{prefer}"), &r);
    }
    let bad = pmd_batch(vec![
        json!({"resource": vkp_weight(&number, "2025-05-03T08:00:00Z", 70.0),
                                    "request": {"method": "DELETE", "url": "Observation"}}),
    ]);
    let r = s.post("", &bad).await;
    assert_eq!(r.status, 400);
    save("pmd-refused", &r);
    let good = pmd_batch(vec![pmd_entry(
        "urn:uuid:1e0c9f36-3f1a-4c55-8d0b-000000000001",
        vkp_weight(&number, "2025-05-03T08:00:00Z", 70.0),
    )]);
    save("pmd-batch-response", &s.post("", &good).await);
    save("metadata", &s.get("metadata").await);
    let n = saved;

    match std::env::var_os("HEALTHANALYZER_FHIR_TOOLS").filter(|t| !t.is_empty()) {
        None => {
            assert!(
                std::env::var("HEALTHANALYZER_REQUIRE_FHIR").as_deref() != Ok("1"),
                "HEALTHANALYZER_REQUIRE_FHIR=1 but HEALTHANALYZER_FHIR_TOOLS is not set"
            );
            eprintln!(
                "skipped: validation of the answers: HEALTHANALYZER_FHIR_TOOLS is not set (.ci/run sets it to ../shared/tools)"
            );
        }
        Some(tools) => {
            let res = std::process::Command::new("python3")
                .arg(std::path::PathBuf::from(tools).join("validate_fhir.py"))
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
