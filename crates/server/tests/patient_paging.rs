//! `GET /Patient` over more subjects than one store page: every Patient is reached by
//! following `next` links exactly once, in key order, with the right `total`, while the store
//! never hands out more than a page of subjects per call and is never asked for all of them.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use healthanalyzer_model::{
    DateTime, HumanName, Identifier, KindId, Measurement, MeasurementId, Provenance, Subject,
    Value as Reading,
};
use healthanalyzer_server::{FhirServer, ServerConfig};
use healthanalyzer_store::backend::identifier_key;
use healthanalyzer_store::{
    Applied, Checkpoint, Filter, MeasurementStore, MemoryStore, Page, Query, Result, SubjectStore,
    Versioned, WriteSet, WriteSetStore, WriteSummary,
};
use serde_json::Value;

/// The largest page the server may ask the store for (its `STORE_PAGE`).
const STORE_PAGE: usize = 1_000;
/// `urn:healthanalyzer:fhir-reference`: identifiers that carry a Patient id.
const REFERENCE: &str = "urn:healthanalyzer:fhir-reference";

/// What the search asked of the store.
#[derive(Debug, Default)]
struct Calls {
    list_subjects: AtomicUsize,
    subjects: AtomicUsize,
    pages: AtomicUsize,
    largest_limit: AtomicUsize,
    largest_page: AtomicUsize,
}

impl Calls {
    fn page(&self, limit: usize, handed_out: usize) {
        self.pages.fetch_add(1, Ordering::SeqCst);
        self.largest_limit.fetch_max(limit, Ordering::SeqCst);
        self.largest_page.fetch_max(handed_out, Ordering::SeqCst);
        assert!(
            handed_out <= limit,
            "the store handed out {handed_out} for a limit of {limit}"
        );
    }
}

/// A memory store that counts what it is asked.
#[derive(Debug, Default)]
struct Counted {
    inner: MemoryStore,
    calls: Arc<Calls>,
}

#[async_trait]
impl MeasurementStore for Counted {
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
        self.calls.subjects.fetch_add(1, Ordering::SeqCst);
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
impl SubjectStore for Counted {
    async fn put_subjects(&self, s: &[Subject]) -> Result<WriteSummary> {
        self.inner.put_subjects(s).await
    }
    async fn subject(&self, id: &Identifier) -> Result<Option<Subject>> {
        self.inner.subject(id).await
    }
    async fn list_subjects(&self) -> Result<Vec<Subject>> {
        self.calls.list_subjects.fetch_add(1, Ordering::SeqCst);
        self.inner.list_subjects().await
    }
    async fn subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Subject>> {
        let page = self.inner.subjects_page(after, limit).await?;
        self.calls.page(limit, page.len());
        Ok(page)
    }
    async fn delete_subject(&self, id: &Identifier) -> Result<bool> {
        self.inner.delete_subject(id).await
    }
}

#[async_trait]
impl WriteSetStore for Counted {
    async fn apply(&self, set: &WriteSet) -> Result<Applied> {
        self.inner.apply(set).await
    }
    async fn get_versioned(&self, id: &MeasurementId) -> Result<Option<Versioned<Measurement>>> {
        self.inner.get_versioned(id).await
    }
    async fn subject_versioned(&self, id: &Identifier) -> Result<Option<Versioned<Subject>>> {
        self.inner.subject_versioned(id).await
    }
    async fn document(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<Versioned<healthanalyzer_store::Document>>> {
        self.inner.document(resource_type, id).await
    }
    async fn find_documents(
        &self,
        query: &healthanalyzer_store::DocumentQuery,
    ) -> Result<Vec<Versioned<healthanalyzer_store::Document>>> {
        self.inner.find_documents(query).await
    }
    async fn unrecorded_subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Identifier>> {
        let page = self.inner.unrecorded_subjects_page(after, limit).await?;
        self.calls.page(limit, page.len());
        Ok(page)
    }
}

fn reading(subject: &Identifier, record: usize) -> Measurement {
    Measurement::new(
        Provenance::new("paging-test", format!("r{record}")),
        subject.clone(),
        "heart-rate",
        Reading::quantity(70.into(), "/min"),
        DateTime::parse("2024-03-01T08:00:00Z").unwrap(),
    )
}

/// 2,500 subject records (every tenth with a server-assigned Patient id) and 300 subjects known
/// only from their measurements (every seventh by a `Patient/<id>` reference), plus
/// measurements of records under their primary and their other identifiers (which are the
/// records' Patients, not more). Returns the store and each Patient's label (see [`label`])
/// in the order of its key.
async fn populated() -> (Arc<Counted>, Vec<String>) {
    let store = Arc::new(Counted::default());
    let mut patients: Vec<(String, String)> = Vec::new();
    let mut subjects = Vec::new();
    let mut readings = Vec::new();
    for i in 0..2_500 {
        let mut s = Subject::new(Identifier::new("urn:test:mrn", format!("p{i:04}")));
        s.name = Some(HumanName {
            family: Some(format!("F{i:04}")),
            given: Vec::new(),
            text: None,
        });
        if i % 10 == 0 {
            s.other_ids
                .push(Identifier::new(REFERENCE, format!("Patient/srv-{i}")));
        }
        s.other_ids
            .push(Identifier::new("urn:test:other", format!("o{i:04}")));
        if i % 5 == 0 {
            readings.push(reading(&s.id, readings.len()));
            readings.push(reading(&s.other_ids[s.other_ids.len() - 1], readings.len()));
        }
        patients.push((identifier_key(&s.id), format!("F{i:04}")));
        subjects.push(s);
    }
    for i in 0..300 {
        let (id, label) = if i % 7 == 0 {
            (
                Identifier::new(REFERENCE, format!("Patient/m{i}")),
                format!("m{i}"),
            )
        } else {
            (
                Identifier::new("urn:test:device", format!("d{i:03}")),
                format!("d{i:03}"),
            )
        };
        readings.push(reading(&id, readings.len()));
        patients.push((identifier_key(&id), label));
    }
    store.put_subjects(&subjects).await.unwrap();
    store.write(&readings, None).await.unwrap();
    patients.sort();
    (
        store,
        patients.into_iter().map(|(_, label)| label).collect(),
    )
}

/// A Patient of a searchset: its family name, else its identifier's value, else its id.
fn label(entry: &Value) -> String {
    let r = &entry["resource"];
    r["name"][0]["family"]
        .as_str()
        .or_else(|| r["identifier"][0]["value"].as_str())
        .or_else(|| r["id"].as_str())
        .unwrap()
        .to_string()
}

fn next_link(page: &Value) -> Option<String> {
    page["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_string)
}

/// Serves `store`; returns its FHIR base URL.
async fn serve(store: Arc<Counted>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = FhirServer::new(store).config(ServerConfig::default());
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
    format!("http://{addr}/fhir")
}

async fn get(http: &reqwest::Client, url: &str) -> Value {
    let res = http.get(url).send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(status, 200, "{url}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Follows `next` links from `query`, sending page `i` to `bases[i % bases.len()]` (replicas
/// over one store); returns the labels in order, the pages' totals and how many pages.
async fn follow(
    http: &reqwest::Client,
    bases: &[&str],
    query: &str,
) -> (Vec<String>, Vec<Option<u64>>, usize) {
    let mut url = format!("{}/{query}", bases[0]);
    let (mut labels, mut totals, mut pages) = (Vec::new(), Vec::new(), 0);
    loop {
        let page = get(http, &url).await;
        assert_eq!(page["type"], "searchset");
        totals.push(page["total"].as_u64());
        labels.extend(page["entry"].as_array().into_iter().flatten().map(label));
        pages += 1;
        assert!(pages < 100, "a next-link loop");
        match next_link(&page) {
            Some(next) => {
                let base = bases[pages % bases.len()];
                url = next.replacen(bases[0], base, 1);
            }
            None => return (labels, totals, pages),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_patient_is_reached_once_in_order_a_store_page_at_a_time() {
    let (store, want) = populated().await;
    assert_eq!(want.len(), 2_800);
    let calls = store.calls.clone();
    let a = serve(store.clone()).await;
    // A second server on the same store: its pages continue from tokens the first handed out
    // (whose derived ids it has never seen), as a replica behind a load balancer would.
    let b = serve(store).await;
    let http = common::client();

    for (bases, count) in [
        (vec![a.as_str()], 1_000),
        (vec![a.as_str(), b.as_str()], 333),
    ] {
        let (labels, totals, pages) =
            follow(&http, &bases, &format!("Patient?_count={count}")).await;
        assert_eq!(
            labels, want,
            "_count={count}: every Patient once, in key order"
        );
        assert_eq!(pages, want.len().div_ceil(count), "_count={count}");
        assert!(
            totals.iter().all(|t| *t == Some(2_800)),
            "_count={count}: total on every page: {totals:?}"
        );
    }

    // _total=none: the same Patients without a total, each page read only as far as it needs.
    let before = calls.pages.load(Ordering::SeqCst);
    let (labels, totals, pages) = follow(&http, &[&a], "Patient?_count=100&_total=none").await;
    assert_eq!(labels, want);
    assert!(totals.iter().all(Option::is_none), "{totals:?}");
    // One store page of each listing per page: a total would need four.
    let store_calls = calls.pages.load(Ordering::SeqCst) - before;
    assert!(
        store_calls <= 2 * pages,
        "{store_calls} store pages for {pages} pages of 100 without a total"
    );

    // A page that ends on a Patient known only by a `Patient/<id>` reference continues on the
    // replica too.
    let first = get(&http, &format!("{a}/Patient?_count=20")).await;
    assert_eq!(label(&first["entry"][19]), want[19]);
    assert!(want[19].starts_with('m'), "{}", want[19]);
    let second = get(&http, &next_link(&first).unwrap().replacen(&a, &b, 1)).await;
    let labels: Vec<String> = second["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(label)
        .collect();
    assert_eq!(labels, want[20..40]);

    // A filter over store pages: families F1000 to F1999.
    let (labels, totals, _) = follow(&http, &[&b, &a], "Patient?name=f1&_count=400").await;
    let ones: Vec<String> = want
        .iter()
        .filter(|l| l.starts_with("F1"))
        .cloned()
        .collect();
    assert_eq!(labels, ones);
    assert!(totals.iter().all(|t| *t == Some(1_000)), "{totals:?}");

    let count = get(&http, &format!("{a}/Patient?_summary=count")).await;
    assert_eq!(count["total"], 2_800);
    assert!(count.get("entry").is_none());

    // An identifier with its system is looked up: no listing at all.
    let before = calls.pages.load(Ordering::SeqCst);
    let one = get(
        &http,
        &format!("{a}/Patient?identifier=urn:test:other|o0042"),
    )
    .await;
    assert_eq!(one["total"], 1);
    assert_eq!(label(&one["entry"][0]), "F0042");
    let device = get(
        &http,
        &format!("{a}/Patient?identifier=urn:test:device|d005"),
    )
    .await;
    assert_eq!(device["total"], 1);
    assert_eq!(label(&device["entry"][0]), "d005");
    assert_eq!(calls.pages.load(Ordering::SeqCst), before);

    assert_eq!(
        calls.list_subjects.load(Ordering::SeqCst),
        0,
        "list_subjects"
    );
    assert_eq!(calls.subjects.load(Ordering::SeqCst), 0, "subjects");
    assert!(calls.largest_limit.load(Ordering::SeqCst) <= STORE_PAGE);
    assert!(calls.largest_page.load(Ordering::SeqCst) <= STORE_PAGE);
    assert_eq!(
        calls.largest_page.load(Ordering::SeqCst),
        STORE_PAGE,
        "the listing took full store pages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_token_of_a_patient_no_longer_listed_is_a_400() {
    let (store, _) = populated().await;
    let a = serve(store.clone()).await;
    let b = serve(store.clone()).await;
    let http = common::client();
    let first = get(&http, &format!("{a}/Patient?name=f00&_count=10")).await;
    let next = next_link(&first).unwrap();
    // The first server remembers where its token points, even once the Patient is gone; a
    // replica that never saw it looks for it and says to start again.
    assert_eq!(label(&first["entry"][9]), "F0009");
    store
        .delete_subject(&Identifier::new("urn:test:mrn", "p0009"))
        .await
        .unwrap();
    let from_a = get(&http, &next).await;
    assert_eq!(label(&from_a["entry"][0]), "F0010");
    let res = http.get(next.replacen(&a, &b, 1)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let outcome: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(outcome["issue"][0]["expression"][0], "_page");
}
