//! The test kit's mock HTTP server, spoken to in plain HTTP/1.1: scripted entries by route and
//! count, a 404 for what nothing answers, closures, chunked bodies, the requests recorded.

use healthanalyzer_source::testkit::mock::{
    MockResponse, MockServer, RecordedRequest, Route, Script,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `head` (a request line and headers, without the blank line) and `body`, and returns
/// the whole response as text.
async fn send(server: &MockServer, head: &str, body: &str) -> String {
    let mut s = TcpStream::connect(server.addr()).await.expect("connect");
    let request = format!(
        "{head}\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn scripted_entries_answer_in_order_and_as_often_as_they_say() {
    let server = MockServer::start(
        Script::new()
            .on(
                Route::any().times(1),
                MockResponse::new(429).header("Retry-After", "2"),
            )
            .on(
                Route::get("/v1/readings").query("page", "2"),
                MockResponse::new(200).json(r#"{"page":2}"#),
            )
            .on(
                Route::get("/v1/readings").header("x-api-key", "k1"),
                MockResponse::new(200).json(r#"{"page":1}"#),
            ),
    )
    .await
    .expect("a server");

    let first = send(&server, "GET /v1/readings?page=2 HTTP/1.1", "").await;
    assert!(first.starts_with("HTTP/1.1 429"), "{first}");
    assert!(
        first.to_ascii_lowercase().contains("retry-after: 2"),
        "{first}"
    );

    let second = send(&server, "GET /v1/readings?page=2 HTTP/1.1", "").await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(second.ends_with(r#"{"page":2}"#), "{second}");
    assert!(
        second
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{second}"
    );

    let keyed = send(&server, "GET /v1/readings HTTP/1.1\r\nX-API-Key: k1", "").await;
    assert!(keyed.ends_with(r#"{"page":1}"#), "{keyed}");

    // No entry answers: without the key, another method.
    let unkeyed = send(&server, "GET /v1/readings HTTP/1.1", "").await;
    assert!(unkeyed.starts_with("HTTP/1.1 404"), "{unkeyed}");
    assert!(
        unkeyed.contains("no scripted response (left) for GET /v1/readings"),
        "{unkeyed}"
    );
    let posted = send(&server, "POST /v1/readings?a+b=c%26d HTTP/1.1", "hello").await;
    assert!(posted.starts_with("HTTP/1.1 404"), "{posted}");

    let seen = server.requests();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/v1/readings");
    assert_eq!(seen[0].query.as_deref(), Some("page=2"));
    assert_eq!(seen[0].query_param("page").as_deref(), Some("2"));
    assert_eq!(seen[2].header("X-Api-Key"), Some("k1"));
    assert_eq!(seen[3].header("x-api-key"), None);
    assert_eq!(seen[4].method, "POST");
    assert_eq!(seen[4].body_text(), "hello");
    assert_eq!(
        seen[4].query_pairs(),
        vec![("a b".to_string(), "c&d".to_string())]
    );
}

#[tokio::test]
async fn a_closure_answers_and_a_chunked_body_has_no_length() {
    let server = MockServer::start(|r: &RecordedRequest| {
        let n = r.query_param("n").unwrap_or_default();
        MockResponse::new(200).body(format!("n was {n}")).chunked(3)
    })
    .await
    .expect("a server");
    let out = send(&server, "GET /echo?n=42 HTTP/1.1", "").await;
    let lower = out.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked"), "{out}");
    assert!(!lower.contains("content-length"), "{out}");
    // Chunks of three bytes: "n w", "as ", "42".
    assert!(
        out.contains("3\r\nn w\r\n3\r\nas \r\n2\r\n42\r\n0\r\n"),
        "{out}"
    );

    let fixed = MockServer::start(MockResponse::new(503))
        .await
        .expect("a server");
    for _ in 0..2 {
        let out = send(&fixed, "GET /anything HTTP/1.1", "").await;
        assert!(out.starts_with("HTTP/1.1 503"), "{out}");
        assert!(
            out.to_ascii_lowercase().contains("content-length: 0"),
            "{out}"
        );
    }
    assert_eq!(fixed.requests().len(), 2);
    assert_eq!(fixed.url("/a?b=1"), format!("{}/a?b=1", fixed.uri()));
}
