//! DPoP (RFC 9449) from the client: end to end against Health Analyzer's own server with DPoP
//! on (a source reads with a DPoP-bound token, page by page), and against mocks that demand a
//! nonce (the FHIR server with a 401, the token endpoint with a 400).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use healthanalyzer_server::{
    AuthConfig, DpopConfig, FhirServer, Grant, Scope, ServerConfig as HttpConfig,
};
use healthanalyzer_source::{Cursor, Error, RetryPolicy, Source, testkit};
use healthanalyzer_source_fhir::{Auth, DpopKey, FhirClient, FhirSource, Query, ServerConfig};
use healthanalyzer_store::MemoryStore;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const BOUND: &str = "bound-token-0123456789abcdef";

/// Our server on a free port, with DPoP on and one token bound to `jkt`; stops when dropped.
struct Ours {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn ours(jkt: &str) -> Ours {
    let mut tokens = HashMap::new();
    tokens.insert(
        BOUND.to_string(),
        Grant {
            who: "dpop-client".into(),
            scopes: vec![Scope::parse("system/*.cruds").expect("scope")],
            jkt: Some(jkt.to_string()),
            ..Grant::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}/fhir");
    let config = HttpConfig {
        base_url: Some(base.clone()),
        auth: Some(AuthConfig { tokens, jwt: None }),
        dpop: Some(DpopConfig::default()),
        ..HttpConfig::default()
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
    Ours { base, _stop: tx }
}

fn client(base: &str, auth: Auth, key: Option<DpopKey>) -> FhirClient {
    let mut config = ServerConfig::new(base);
    config.auth = auth;
    config.dpop = key;
    config.retry = RetryPolicy::none();
    FhirClient::new(config).expect("client")
}

/// A heart rate of Patient `patient`, measured at minute `i`.
fn heart_rate(patient: &str, i: usize) -> Value {
    json!({
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": format!("2024-05-01T07:{i:02}:00+02:00"),
        "valueQuantity": {"value": 60 + i, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

#[tokio::test]
async fn a_source_reads_with_a_bound_token_from_our_server() {
    let key = DpopKey::generate().expect("key");
    let server = ours(key.thumbprint()).await;
    // Written through the API with proofs from the key's public `proof`.
    healthanalyzer_source::http::install_crypto_provider();
    let http = healthanalyzer_source::http::client_builder()
        .build()
        .expect("http");
    let post = |path: &str, body: Value| {
        let url =
            healthanalyzer_source::http::reqwest::Url::parse(&format!("{}/{path}", server.base))
                .expect("url");
        let proof = key.proof("POST", &url, Some(BOUND), None).expect("proof");
        http.post(url)
            .header("authorization", format!("DPoP {BOUND}"))
            .header("dpop", proof)
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
    };
    let a = post("Patient", json!({"resourceType": "Patient"}))
        .await
        .expect("sent");
    assert_eq!(a.status(), 201);
    let patient: Value = serde_json::from_str(&a.text().await.expect("body")).expect("json");
    let patient = patient["id"].as_str().expect("id").to_string();
    let written = 12;
    for i in 0..written {
        let a = post("Observation", heart_rate(&patient, i))
            .await
            .expect("sent");
        assert_eq!(a.status(), 201);
    }

    let c = client(&server.base, Auth::Bearer(BOUND.into()), Some(key.clone()));
    // Small pages: many requests, each with its own proof (a replayed jti would be refused).
    let source = FhirSource::new("ours", c, Query::default());
    source.check().await.expect("check with DPoP");
    let read: usize = testkit::pull_all(&source, &Cursor::start(), 7)
        .await
        .iter()
        .map(|b| b.measurements.len())
        .sum();
    assert_eq!(read, written);

    // The same token without the key goes as Bearer, which a bound token may not.
    let plain = FhirSource::new(
        "ours",
        client(&server.base, Auth::Bearer(BOUND.into()), None),
        Query::default(),
    );
    let e = plain.check().await.expect_err("a bound token as Bearer");
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(e.to_string().contains("DPoP-bound"), "{e}");
    // Another key than the bound one.
    let other = FhirSource::new(
        "ours",
        client(
            &server.base,
            Auth::Bearer(BOUND.into()),
            Some(DpopKey::generate().expect("key")),
        ),
        Query::default(),
    );
    let e = other.check().await.expect_err("another key");
    assert!(matches!(e, Error::Auth { .. }), "{e}");
}

/// The claims of a request's DPoP proof (`Null` without one).
fn proof_claims(req: &Request) -> Value {
    req.headers
        .get("dpop")
        .and_then(|v| v.to_str().ok())
        .and_then(|p| p.split('.').nth(1).map(str::to_string))
        .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

fn searchset() -> Value {
    json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
        "resourceType": "Observation", "id": "o1", "status": "final",
        "meta": {"lastUpdated": "2024-05-01T07:00:00.000Z"},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-05-01T07:00:00+02:00",
        "valueQuantity": {"value": 61, "system": "http://unitsofmeasure.org", "code": "/min"}
    }, "search": {"mode": "match"}}]})
}

/// A FHIR server that wants `nonce` in every proof: 401 `use_dpop_nonce` otherwise.
struct WantsNonce {
    nonce: &'static str,
    refusals: Arc<AtomicUsize>,
}

impl Respond for WantsNonce {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if proof_claims(req)["nonce"] == self.nonce {
            return ResponseTemplate::new(200)
                .insert_header("content-type", "application/fhir+json")
                .set_body_json(searchset());
        }
        self.refusals.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(401)
            .insert_header(
                "www-authenticate",
                "DPoP error=\"use_dpop_nonce\", error_description=\"Resource server requires nonce in DPoP proof\"",
            )
            .insert_header("dpop-nonce", self.nonce)
    }
}

#[tokio::test]
async fn a_nonce_challenge_is_answered_once_and_the_nonce_kept() {
    let server = MockServer::start().await;
    let refusals = Arc::new(AtomicUsize::new(0));
    Mock::given(method("GET"))
        .and(path("/fhir/Observation"))
        .respond_with(WantsNonce {
            nonce: "n-42",
            refusals: refusals.clone(),
        })
        .mount(&server)
        .await;
    let key = DpopKey::generate().expect("key");
    let source = FhirSource::new(
        "mock",
        client(
            &format!("{}/fhir", server.uri()),
            Auth::Bearer("tok".into()),
            Some(key),
        ),
        Query::default(),
    );
    source.check().await.expect("answered the nonce challenge");
    let b = source.pull(&Cursor::start(), 10).await.expect("pull");
    assert_eq!(b.measurements.len(), 1);
    // One refusal only: the second request carried the nonce at once.
    assert_eq!(refusals.load(Ordering::SeqCst), 1);
    let reqs = server.received_requests().await.expect("recorded");
    assert_eq!(reqs.len(), 3);
    let claims: Vec<Value> = reqs.iter().map(proof_claims).collect();
    assert!(claims[0].get("nonce").is_none(), "{}", claims[0]);
    assert_eq!(claims[1]["nonce"], "n-42");
    assert_eq!(claims[2]["nonce"], "n-42");
    let jtis: std::collections::BTreeSet<&str> =
        claims.iter().filter_map(|c| c["jti"].as_str()).collect();
    assert_eq!(jtis.len(), 3, "a fresh jti per request");
    for (r, c) in reqs.iter().zip(&claims) {
        assert_eq!(
            r.headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some("DPoP tok")
        );
        assert_eq!(c["htm"], "GET");
        assert_eq!(c["htu"], format!("{}/fhir/Observation", server.uri()));
        assert_eq!(c["ath"], ath("tok"));
    }
}

#[tokio::test]
async fn a_server_that_keeps_asking_for_a_nonce_is_asked_twice_then_refused() {
    let stubborn = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", "DPoP error=\"use_dpop_nonce\"")
                .insert_header("dpop-nonce", "moving"),
        )
        .mount(&stubborn)
        .await;
    let source = FhirSource::new(
        "mock",
        client(
            &format!("{}/fhir", stubborn.uri()),
            Auth::Bearer("tok".into()),
            Some(DpopKey::generate().expect("key")),
        ),
        Query::default(),
    );
    let e = source.check().await.expect_err("refused");
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert_eq!(
        stubborn.received_requests().await.expect("recorded").len(),
        2,
        "one retry with the nonce, no loop"
    );
    // Without a key a nonce challenge is just a refusal.
    let plain = FhirSource::new(
        "mock",
        client(
            &format!("{}/fhir", stubborn.uri()),
            Auth::Bearer("tok".into()),
            None,
        ),
        Query::default(),
    );
    assert!(plain.check().await.is_err());
    assert_eq!(
        stubborn.received_requests().await.expect("recorded").len(),
        3
    );
}

/// A token endpoint that wants a nonce in the DPoP proof of the token request.
struct TokenWantsNonce;

impl Respond for TokenWantsNonce {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let c = proof_claims(req);
        if c["nonce"] == "as-1" && c["htm"] == "POST" && c.get("ath").is_none() {
            return ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "bound-1", "token_type": "DPoP", "expires_in": 3600}),
            );
        }
        ResponseTemplate::new(400)
            .insert_header("dpop-nonce", "as-1")
            .set_body_json(json!({"error": "use_dpop_nonce", "error_description": "Authorization server requires nonce in DPoP proof"}))
    }
}

#[tokio::test]
async fn client_credentials_ask_for_a_bound_token_with_a_proof_and_a_nonce() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(TokenWantsNonce)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fhir/Observation"))
        .and(wiremock::matchers::header("authorization", "DPoP bound-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(searchset()))
        .mount(&server)
        .await;
    let key = DpopKey::generate().expect("key");
    let source = FhirSource::new(
        "mock",
        client(
            &format!("{}/fhir", server.uri()),
            Auth::ClientCredentials {
                token_url: format!("{}/token", server.uri()),
                client_id: "app".into(),
                client_secret: "s3cret".into(),
                scope: None,
            },
            Some(key),
        ),
        Query::default(),
    );
    let b = source.pull(&Cursor::start(), 10).await.expect("pull");
    assert_eq!(b.measurements.len(), 1);
    let reqs = server.received_requests().await.expect("recorded");
    let token_proof = proof_claims(&reqs[0]);
    assert_eq!(
        token_proof["htu"],
        format!("{}/token", server.uri()),
        "{token_proof}"
    );
    let fhir = reqs
        .iter()
        .find(|r| r.url.path() == "/fhir/Observation")
        .expect("a FHIR request");
    assert_eq!(proof_claims(fhir)["ath"], ath("bound-1"));
}
