//! The FHIR source against a mock server: paging, retries on 429 (honouring Retry-After) and
//! 5xx, a hung connection, a malformed page, `next` links that loop or leave the server, refused
//! credentials, OAuth2 client credentials, and a page over the body limit (this one against the
//! test kit's own mock server).

use std::time::{Duration, Instant};

use healthanalyzer_source::{Cursor, Error, RetryPolicy, Source, testkit};
use healthanalyzer_source_fhir::{Auth, FhirClient, FhirSource, Query, ServerConfig};
use serde_json::{Value as Json, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn observation(i: usize) -> Json {
    json!({
        "resourceType": "Observation", "id": format!("o{i}"), "status": "final",
        "meta": {"lastUpdated": format!("2024-05-01T07:{:02}:00.000Z", i % 60)},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": format!("2024-05-01T07:{:02}:00+02:00", i % 60),
        "valueQuantity": {"value": 60 + i, "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

fn searchset(entries: Vec<Json>, next: Option<String>) -> Json {
    let mut b = json!({
        "resourceType": "Bundle", "type": "searchset",
        "entry": entries.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>(),
    });
    if let Some(n) = next {
        b["link"] = json!([{"relation": "next", "url": n}]);
    }
    b
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(3),
        multiplier: 2,
    }
}

fn source(server: &MockServer, auth: Auth) -> FhirSource {
    let mut config = ServerConfig::new(format!("{}/fhir", server.uri()));
    config.retry = quick();
    config.timeout = Duration::from_millis(500);
    config.auth = auth;
    FhirSource::new(
        "mock",
        FhirClient::new(config).expect("client"),
        Query::default(),
    )
}

/// A paged server: 7 Observations, 3 per page, `_offset` paging, `_lastUpdated=gt` honoured.
struct Paged;

impl Respond for Paged {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let q: std::collections::HashMap<String, String> =
            req.url.query_pairs().into_owned().collect();
        let count: usize = q
            .get("_count")
            .and_then(|c| c.parse().ok())
            .unwrap_or(3)
            .min(3);
        let offset: usize = q.get("_offset").and_then(|c| c.parse().ok()).unwrap_or(0);
        let since = q
            .get("_lastUpdated")
            .map(|s| s.trim_start_matches("gt").to_string());
        let all: Vec<Json> = (0..7)
            .map(observation)
            .filter(|o| {
                since
                    .as_deref()
                    .is_none_or(|s| o["meta"]["lastUpdated"].as_str().unwrap_or("") > s)
            })
            .collect();
        let page: Vec<Json> = all.iter().skip(offset).take(count).cloned().collect();
        let next = (offset + count < all.len()).then(|| {
            let mut u = req.url.clone();
            u.query_pairs_mut().clear();
            for (k, v) in &q {
                if k != "_offset" {
                    u.query_pairs_mut().append_pair(k, v);
                }
            }
            u.query_pairs_mut()
                .append_pair("_offset", &(offset + count).to_string());
            // A link relative to the server (the source resolves it against the page's URL).
            format!("{}?{}", u.path(), u.query().unwrap_or(""))
        });
        ResponseTemplate::new(200).set_body_json(searchset(page, next))
    }
}

#[tokio::test]
async fn paging_is_followed_and_the_source_keeps_the_contract() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fhir/Observation"))
        .respond_with(Paged)
        .mount(&server)
        .await;
    let a = source(&server, Auth::None);
    let b = source(&server, Auth::None);
    let batches = testkit::pull_all(&a, &Cursor::start(), 2).await;
    let n: usize = batches.iter().map(|b| b.measurements.len()).sum();
    assert_eq!(n, 7);
    testkit::run_all(&a, &b, 2).await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_for_and_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(Paged)
        .mount(&server)
        .await;
    let s = source(&server, Auth::None);
    let t = Instant::now();
    let b = s.pull(&Cursor::start(), 10).await.expect("retried");
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        t.elapsed()
    );
    assert_eq!(b.measurements.len(), 3);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_as_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(Paged)
        .mount(&server)
        .await;
    let s = source(&server, Auth::None);
    assert_eq!(
        s.pull(&Cursor::start(), 10)
            .await
            .expect("third time")
            .measurements
            .len(),
        3
    );

    let down = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception", "diagnostics": "database is down"}]})))
        .expect(4)
        .mount(&down)
        .await;
    let e = source(&down, Auth::None)
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("down");
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("database is down"), "{e}");
}

#[tokio::test]
async fn a_hung_connection_times_out_as_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let t = Instant::now();
    let e = source(&server, Auth::None)
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("hung");
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().contains("timed out"), "{e}");
    // Four attempts of 0.5 s and short waits, not ten seconds each.
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_malformed_page_is_bad_data_and_names_the_url_without_its_query() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("{\"resourceType\": \"Bundle\", \"entry\": [tru"),
        )
        .mount(&server)
        .await;
    let s = FhirSource::new(
        "mock",
        FhirClient::new(ServerConfig::new(format!("{}/fhir", server.uri()))).expect("client"),
        Query {
            patient: Some("Patient/0101709995".into()),
            ..Query::default()
        },
    );
    let e = s.pull(&Cursor::start(), 10).await.expect_err("malformed");
    assert!(matches!(e, Error::BadData { .. }), "{e:?}");
    assert!(!e.is_retryable());
    assert!(
        !e.to_string().contains("0101709995"),
        "the query leaked into the error: {e}"
    );
}

#[tokio::test]
async fn next_links_that_loop_or_leave_the_server_are_refused() {
    let server = MockServer::start().await;
    let me = format!("{}/fhir/Observation?_count=10&page=1", server.uri());
    Mock::given(method("GET"))
        .and(query_param("page", "1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(searchset(vec![observation(1)], Some(me.clone()))),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(searchset(vec![observation(0)], Some(me))),
        )
        .mount(&server)
        .await;
    let s = source(&server, Auth::None);
    let first = s.pull(&Cursor::start(), 10).await.expect("first page");
    let e = s.pull(&first.cursor, 10).await.expect_err("loop");
    assert!(e.to_string().contains("points to the page itself"), "{e}");

    let other = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(searchset(
            vec![observation(0)],
            Some("https://attacker.example/fhir/Observation?page=2".into()),
        )))
        .mount(&other)
        .await;
    let e = source(&other, Auth::Bearer("secret".into()))
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("another host");
    assert!(e.to_string().contains("another server"), "{e}");
}

#[tokio::test]
async fn refused_credentials_are_an_auth_error_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    let e = source(&server, Auth::Bearer("expired".into()))
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("401");
    assert!(matches!(e, Error::Auth { .. }), "{e:?}");
    assert!(!e.to_string().contains("expired"), "the token leaked: {e}");
}

#[tokio::test]
async fn client_credentials_fetch_a_token_once_and_send_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("authorization", "Basic YXBwOnMzY3JldA=="))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(Paged)
        .mount(&server)
        .await;
    let s = source(
        &server,
        Auth::ClientCredentials {
            token_url: format!("{}/token", server.uri()),
            client_id: "app".into(),
            client_secret: "s3cret".into(),
            scope: Some("system/Observation.read".into()),
        },
    );
    let all = testkit::pull_all(&s, &Cursor::start(), 3).await;
    assert_eq!(all.iter().map(|b| b.measurements.len()).sum::<usize>(), 7);
}

/// `check` asks for one Observation with the credentials: a server that refuses them fails the
/// check (not retryable), one that answers passes it, and nothing is pulled.
#[tokio::test]
async fn the_check_sees_refused_credentials_before_any_pull() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fhir/Observation"))
        .and(query_param("_count", "1"))
        .and(header("authorization", "Bearer good"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(searchset(vec![observation(1)], None)),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "login", "diagnostics": "bad token"}]
        })))
        .mount(&server)
        .await;
    source(&server, Auth::Bearer("good".into()))
        .check()
        .await
        .expect("accepted");
    let e = source(&server, Auth::Bearer("wrong".into()))
        .check()
        .await
        .expect_err("refused");
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(!e.is_retryable());
    // A port nobody listens on (wiremock keeps dropped servers in a pool, answering 404).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut config = ServerConfig::new(format!("http://127.0.0.1:{port}/fhir"));
    config.retry = RetryPolicy::none();
    let e = FhirSource::new(
        "x",
        FhirClient::new(config).expect("client"),
        Query::default(),
    )
    .check()
    .await
    .expect_err("nobody there");
    assert!(e.is_retryable(), "{e}");
}

/// A page larger than the body limit is a clear error naming the limit, not retried, and read
/// no further than the limit, whether the server says its length or sends it chunked.
#[tokio::test]
async fn a_page_over_the_body_limit_is_refused_naming_the_limit() {
    use healthanalyzer_source::testkit::mock::{self, MockResponse, Route, Script};
    let page = searchset((0..40).map(observation).collect(), None).to_string();
    assert!(page.len() > 4096, "{}", page.len());
    let server = mock::MockServer::start(
        Script::new()
            .on(
                Route::get("/fhir/Observation").query("_count", "10"),
                MockResponse::new(200)
                    .header("content-type", "application/fhir+json")
                    .body(page.clone()),
            )
            .on(
                Route::get("/fhir/Observation"),
                MockResponse::new(200)
                    .header("content-type", "application/fhir+json")
                    .body(page)
                    .chunked(512),
            ),
    )
    .await
    .expect("a server");
    let with_limit = |limit: usize| {
        let mut config = ServerConfig::new(format!("{}/fhir", server.uri()));
        config.retry = quick();
        config.body_limit = limit;
        FhirSource::new(
            "mock",
            FhirClient::new(config).expect("client"),
            Query::default(),
        )
    };
    // `_count=10` is answered with a Content-Length, `_count=20` chunked.
    for count in [10, 20] {
        let e = with_limit(4096)
            .pull(&Cursor::start(), count)
            .await
            .expect_err("too big");
        assert!(matches!(e, Error::BadData { .. }), "{e:?}");
        assert!(!e.is_retryable(), "{e}");
        assert!(
            e.to_string()
                .contains("larger than the limit of 4 KiB (4096 bytes)"),
            "{e}"
        );
    }
    assert_eq!(server.requests().len(), 2, "a page too big was retried");
    // Under the default limit the same pages read.
    for count in [10, 20] {
        let batch = with_limit(healthanalyzer_source::http::DEFAULT_BODY_LIMIT)
            .pull(&Cursor::start(), count)
            .await
            .expect("under the limit");
        assert_eq!(batch.measurements.len(), count);
    }
}
