//! The `http` helpers against the test kit's mock server: statuses with and without
//! `Retry-After` (seconds and HTTP-dates), refused credentials, bodies over the bound (with a
//! `Content-Length` and chunked), charsets, transport failures, and a client that builds in a
//! process where nothing installed a crypto provider.
#![cfg(feature = "http")]

use std::time::{Duration, SystemTime};

use healthanalyzer_source::Error;
use healthanalyzer_source::http::{self, reqwest};
use healthanalyzer_source::testkit::mock::{MockResponse, MockServer, Route, Script};

fn client() -> reqwest::Client {
    // Every test builds its client this way; nothing else in this binary installs a crypto
    // provider, so a `client_builder` that did not would panic here.
    let client = http::client_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("a client");
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    client
}

/// GETs `path` on `server` with the helpers, the way a connector does.
async fn fetch(server: &MockServer, path: &str, limit: usize) -> Result<String, Error> {
    let url = reqwest::Url::parse(&server.url(path)).expect("url");
    let location = http::redact(&url);
    let response = client()
        .get(url)
        .send()
        .await
        .map_err(|e| http::transport_error(&location, e))?;
    http::success_text(response, limit, &location).await
}

#[tokio::test]
async fn a_429_with_retry_after_seconds_is_retryable_after_that_wait() {
    let server = MockServer::start(MockResponse::new(429).header("Retry-After", "7"))
        .await
        .expect("server");
    let e = fetch(&server, "/v1/readings?access_token=s3cret", 1024)
        .await
        .expect_err("429");
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    let msg = e.to_string();
    assert!(msg.contains("429 Too Many Requests"), "{msg}");
    assert!(msg.contains("access_token=REDACTED"), "{msg}");
    assert!(!msg.contains("s3cret"), "the token leaked: {msg}");
    // The request came with the helper's user agent.
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("user-agent"), Some(http::USER_AGENT));
}

#[tokio::test]
async fn a_429_with_an_http_date_waits_until_then() {
    let then = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let server = MockServer::start(MockResponse::new(429).header("Retry-After", &then))
        .await
        .expect("server");
    let e = fetch(&server, "/", 1024).await.expect_err("429");
    let wait = e.retry_after().expect("a wait");
    // The date has whole seconds, and the request took a moment.
    assert!(
        wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
}

#[tokio::test]
async fn a_503_without_retry_after_is_retryable_with_no_wait_asked() {
    let server = MockServer::start(MockResponse::new(503))
        .await
        .expect("server");
    let e = fetch(&server, "/", 1024).await.expect_err("503");
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), None);
}

#[tokio::test]
async fn a_401_says_to_check_the_credentials_and_is_not_retried() {
    let server =
        MockServer::start(MockResponse::new(401).body("token expired for user 0101709995"))
            .await
            .expect("server");
    let e = fetch(&server, "/", 1024).await.expect_err("401");
    assert!(matches!(e, Error::Auth { .. }), "{e:?}");
    assert!(!e.is_retryable());
    let msg = e.to_string();
    assert!(msg.contains("check the credentials"), "{msg}");
    assert!(!msg.contains("0101709995"), "the body was quoted: {msg}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_naming_the_limit() {
    let big = "x".repeat(4096);
    let server = MockServer::start(
        Script::new()
            .on(
                Route::get("/sized"),
                MockResponse::new(200).body(big.clone()),
            )
            .on(
                Route::get("/chunked"),
                MockResponse::new(200).body(big.clone()).chunked(100),
            )
            .on(
                Route::get("/exact"),
                MockResponse::new(200).body("y".repeat(1024)).chunked(100),
            ),
    )
    .await
    .expect("server");
    for path in ["/sized", "/chunked"] {
        let e = fetch(&server, path, 1024).await.expect_err("too big");
        assert!(matches!(e, Error::BadData { .. }), "{path}: {e:?}");
        assert!(!e.is_retryable(), "{path}");
        assert!(
            e.to_string()
                .contains("larger than the limit of 1 KiB (1024 bytes)"),
            "{path}: {e}"
        );
    }
    // Exactly the limit is fine.
    assert_eq!(
        fetch(&server, "/exact", 1024).await.expect("at the limit"),
        "y".repeat(1024)
    );
    assert_eq!(
        fetch(&server, "/sized", http::DEFAULT_BODY_LIMIT)
            .await
            .expect("under the default")
            .len(),
        4096
    );
}

#[tokio::test]
async fn text_is_decoded_in_the_charset_the_content_type_names() {
    let server = MockServer::start(
        MockResponse::new(200)
            .header("content-type", "text/csv; charset=iso-8859-1")
            .body(b"caf\xe9".to_vec()),
    )
    .await
    .expect("server");
    assert_eq!(fetch(&server, "/", 1024).await.expect("text"), "café");
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retryable() {
    let server = MockServer::start(MockResponse::new(200).delay(Duration::from_secs(20)))
        .await
        .expect("server");
    let e = fetch(&server, "/", 1024).await.expect_err("hung");
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().contains("timed out"), "{e}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/x?token=t0k")).expect("url");
    let location = http::redact(&url);
    let e = client()
        .get(url)
        .send()
        .await
        .map_err(|e| http::transport_error(&location, e))
        .expect_err("nobody there");
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("could not connect"), "{e}");
    // Neither the message nor its cause repeats the URL's token.
    let mut chain = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        chain.push_str(&format!(" / {c}"));
        cause = c.source();
    }
    assert!(!chain.contains("t0k"), "{chain}");
}
