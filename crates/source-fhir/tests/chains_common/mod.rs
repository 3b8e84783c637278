//! What the chain tests share: our own server on a free port (with tokens when asked), a
//! client, measurements, valid national numbers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use healthanalyzer_model::{DateTime, Identifier, Measurement, Provenance, Value, parse_decimal};
use healthanalyzer_server::{AuthConfig, FhirServer, Grant, Scope, ServerConfig as HttpConfig};
use healthanalyzer_source::http::reqwest;
use healthanalyzer_source::{Cursor, RetryPolicy, Source};
use healthanalyzer_source_fhir::{Auth, FhirClient, ServerConfig};
use healthanalyzer_store::MemoryStore;
use serde_json::Value as Json;

pub(crate) const ADMIN: &str = "admin-token-0123456789abcdef";
pub(crate) const FNR_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
pub(crate) const BSN_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/bsn";

/// Health Analyzer's own server on a free port; stops when dropped.
pub(crate) struct Ours {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A token for `who` with `scopes`, limited to Patient `patient` when given.
pub(crate) fn grant(who: &str, scopes: &str, patient: Option<&str>) -> Grant {
    Grant {
        who: who.into(),
        scopes: scopes
            .split_whitespace()
            .map(|s| Scope::parse(s).expect("scope"))
            .collect(),
        patient: patient.map(str::to_string),
        ..Grant::default()
    }
}

/// Our server; with `tokens`, only those are accepted, and [`ADMIN`] may do everything.
pub(crate) async fn ours(tokens: Vec<(&str, Grant)>) -> Ours {
    ours_with(tokens, HttpConfig::default()).await
}

/// Our server with `config` (its base URL and tokens set here).
pub(crate) async fn ours_with(tokens: Vec<(&str, Grant)>, config: HttpConfig) -> Ours {
    let auth = if tokens.is_empty() {
        None
    } else {
        let mut map = HashMap::new();
        map.insert(ADMIN.to_string(), grant("admin", "system/*.cruds", None));
        for (t, g) in tokens {
            map.insert(t.to_string(), g);
        }
        Some(AuthConfig {
            tokens: map,
            jwt: None,
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}/fhir");
    let config = HttpConfig {
        base_url: Some(base.clone()),
        auth,
        ..config
    };
    let server = FhirServer::new(Arc::new(MemoryStore::new())).config(config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = server
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    Ours {
        base,
        http: healthanalyzer_source::http::client_builder()
            .build()
            .expect("http client"),
        _stop: tx,
    }
}

impl Ours {
    /// Sends `body` (FHIR JSON) with `token`; the status and the answer.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Json>,
        token: Option<&str>,
    ) -> (u16, Json) {
        let mut req = self.http.request(
            method,
            format!("{}/{}", self.base, path.trim_start_matches('/')),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/fhir+json")
                .body(b.to_string());
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Json::Null))
    }

    /// PUTs a Patient `id` with one identifier, as the admin.
    pub(crate) async fn patient(&self, id: &str, system: &str, value: &str, token: Option<&str>) {
        let p = serde_json::json!({"resourceType": "Patient", "id": id, "name": [{"family": id}],
                                   "identifier": [{"system": system, "value": value}]});
        let (status, body) = self
            .send(
                reqwest::Method::PUT,
                &format!("Patient/{id}"),
                Some(&p),
                token,
            )
            .await;
        assert!(status == 201 || status == 200, "{status}: {body}");
    }

    /// A client of this server, with `token` when given, without retries.
    pub(crate) fn client(&self, token: Option<&str>) -> FhirClient {
        let mut config = ServerConfig::new(&self.base);
        if let Some(t) = token {
            config.auth = Auth::Bearer(t.to_string());
        }
        config.retry = RetryPolicy::none();
        FhirClient::new(config).expect("client")
    }
}

/// A measurement of `subject` from source `source`, record `record`.
pub(crate) fn measurement(
    source: &str,
    record: &str,
    subject: &Identifier,
    kind: &str,
    value: &str,
    unit: &str,
    when: &str,
) -> Measurement {
    Measurement::new(
        Provenance::new(source, record),
        subject.clone(),
        kind,
        Value::quantity(parse_decimal(value).expect("value"), unit),
        DateTime::parse(when).expect("time"),
    )
}

/// What a measurement says, to compare what was pushed with what was read:
/// (kind, instant, value).
pub(crate) fn said(m: &Measurement) -> (String, String, String) {
    let value = m
        .value
        .as_quantity()
        .map(|q| q.value.to_string())
        .unwrap_or_default();
    (
        m.kind.to_string(),
        m.effective.start().instant().to_string(),
        value,
    )
}

/// Pulls until the source says it is exhausted; what it delivered and the cursor after.
pub(crate) async fn pull_all(
    source: &dyn Source,
    mut cursor: Cursor,
    limit: usize,
) -> (Vec<Measurement>, Cursor, usize) {
    let mut out = Vec::new();
    let mut pulls = 0;
    loop {
        let batch = source.pull(&cursor, limit).await.expect("pull");
        pulls += 1;
        assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
        assert!(batch.measurements.len() <= limit);
        out.extend(batch.measurements);
        cursor = batch.cursor;
        if batch.exhausted {
            return (out, cursor, pulls);
        }
        assert!(pulls < 100, "the source never said it was done");
    }
}

/// A fødselsnummer with valid check digits for the birth date `ddmmyy`.
pub(crate) fn fnr(ddmmyy: &str) -> String {
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
            .filter_map(|c| c.to_digit(10))
            .collect();
        let Some(k1) = check(&d, &w1) else { continue };
        d.push(k1);
        let Some(k2) = check(&d, &w2) else { continue };
        d.push(k2);
        return d.iter().map(|x| x.to_string()).collect();
    }
    panic!("no valid FNR for {ddmmyy}");
}
