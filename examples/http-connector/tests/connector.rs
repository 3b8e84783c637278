//! The CuffCloud connector against the test kit's mock server playing the API: it keeps the
//! source contract with readings that share an update time across page boundaries, gives blood
//! pressure and pulse from one reading, stops between them when the batch is full, and turns a
//! 429 and refused credentials into the errors the sync engine acts on.

use std::time::Duration;

use example_http_connector::CuffCloud;
use healthanalyzer_source::testkit::mock::{
    MockResponse, MockServer, RecordedRequest, Route, Script,
};
use healthanalyzer_source::{Cursor, Error, Source, testkit};
use serde_json::{Value as Json, json};

/// The API's readings: three share one update time, two another; r6 has a time that is not
/// one.
fn readings() -> Vec<Json> {
    let r = |id: &str, user: &str, updated: &str, sys: Json, dia: Json, pulse: Json| {
        json!({
            "id": id, "user": user, "updated": format!("2024-05-01T{updated}Z"),
            "taken_at": "2024-05-01T07:58:00+02:00",
            "systolic": sys, "diastolic": dia, "pulse": pulse
        })
    };
    let mut all = vec![
        r("r1", "u1", "06:00:00", json!(128), json!(82), json!(64)),
        r("r2", "u1", "06:00:00", json!(131), json!(85), json!(70)),
        r("r3", "u2", "06:00:00", json!(140), json!(90), Json::Null),
        r("r4", "u2", "06:05:00", Json::Null, Json::Null, json!(72)),
        r("r5", "u1", "06:05:00", json!(125), Json::Null, Json::Null),
        r("r6", "u1", "06:10:00", json!(120), json!(80), json!(60)),
        r("r7", "u2", "06:10:00", json!(135), json!(88), json!(75)),
        r("r8", "u1", "06:20:00", json!(122), json!(79), json!(61)),
    ];
    all[5]["taken_at"] = json!("yesterday");
    all
}

/// The API: `since` inclusive, ordered by (updated, id), `limit`, a bearer token.
fn api(request: &RecordedRequest) -> MockResponse {
    if request.header("authorization") != Some("Bearer good") {
        return MockResponse::new(401).json(r#"{"error": "invalid token"}"#);
    }
    let since = request.query_param("since");
    let limit: usize = request
        .query_param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100);
    let mut all: Vec<Json> = readings()
        .into_iter()
        .filter(|r| {
            since
                .as_deref()
                .is_none_or(|s| r["updated"].as_str() >= Some(s))
        })
        .collect();
    all.sort_by_key(|r| (r["updated"].to_string(), r["id"].to_string()));
    let more = all.len() > limit;
    all.truncate(limit);
    MockResponse::new(200).json(json!({"readings": all, "more": more}).to_string())
}

fn source(server: &MockServer, token: &str, page: usize) -> CuffCloud {
    CuffCloud::new("cuff", &server.uri(), token)
        .expect("a source")
        .with_page(page)
}

#[tokio::test]
async fn it_keeps_the_source_contract_across_shared_update_times() {
    let server = MockServer::start(api).await.expect("a server");
    for (page, limit) in [(2, 1), (2, 3), (1, 2), (100, 5)] {
        let a = source(&server, "good", page);
        let b = source(&server, "good", page);
        testkit::run_all(&a, &b, limit).await;
    }
    let all = testkit::pull_all(&source(&server, "good", 2), &Cursor::start(), 3).await;
    let measurements: usize = all.iter().map(|b| b.measurements.len()).sum();
    assert_eq!(measurements, 11);
    // After r1 and r2 the boundary's update time is asked for again, and r3 (which shares it)
    // is read, not skipped.
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.query_param("since").as_deref() == Some("2024-05-01T06:00:00Z")),
        "the boundary was not asked for again"
    );
}

#[tokio::test]
async fn one_reading_gives_blood_pressure_and_pulse_and_a_batch_can_stop_between_them() {
    let server = MockServer::start(api).await.expect("a server");
    let s = source(&server, "good", 100);
    let first = s.pull(&Cursor::start(), 1).await.expect("pull");
    assert_eq!(first.measurements.len(), 1);
    assert!(!first.exhausted);
    let second = s.pull(&first.cursor, 1).await.expect("pull");
    let (bp, pulse) = (&first.measurements[0], &second.measurements[0]);
    assert_eq!(bp.provenance.record_id, "r1/blood-pressure");
    assert_eq!(pulse.provenance.record_id, "r1/heart-rate");
    assert_eq!(bp.kind.as_str(), "blood-pressure");
    assert_eq!(pulse.kind.as_str(), "heart-rate");
    assert_eq!(bp.effective, pulse.effective);
    assert_eq!(
        bp.value.component("systolic").map(|q| q.value.to_string()),
        Some("128".into())
    );
    assert_eq!(
        bp.value.component("diastolic").map(|q| q.value.to_string()),
        Some("82".into())
    );
    assert_ne!(bp.id, pulse.id);

    let all = testkit::pull_all(&s, &Cursor::start(), 100).await;
    let ms: Vec<_> = all.iter().flat_map(|b| &b.measurements).collect();
    let r5 = ms
        .iter()
        .find(|m| m.provenance.record_id == "r5/blood-pressure")
        .expect("r5");
    assert!(r5.value.is_lone_component(), "{:?}", r5.value);
    let rejected: Vec<_> = all.iter().flat_map(|b| &b.rejected).collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].location, "reading r6");
    assert!(
        rejected[0].reason.contains("`taken_at`"),
        "{}",
        rejected[0].reason
    );
}

#[tokio::test]
async fn a_429_is_retryable_after_its_wait_and_the_next_pull_reads() {
    let server = MockServer::start(
        Script::new()
            .on(
                Route::any().times(1),
                MockResponse::new(429).header("Retry-After", "3"),
            )
            .on(Route::get("/v1/readings"), api),
    )
    .await
    .expect("a server");
    let s = source(&server, "good", 100);
    let e = s.pull(&Cursor::start(), 10).await.expect_err("throttled");
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    let b = s.pull(&Cursor::start(), 10).await.expect("read");
    // Ten items: nine measurements and r6's rejection.
    assert_eq!((b.measurements.len(), b.rejected.len()), (9, 1));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn refused_credentials_say_so_without_the_token() {
    let server = MockServer::start(api).await.expect("a server");
    let s = source(&server, "wr0ng", 100);
    for e in [
        s.check().await.expect_err("refused"),
        s.pull(&Cursor::start(), 10).await.expect_err("refused"),
    ] {
        assert!(matches!(e, Error::Auth { .. }), "{e:?}");
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("check the credentials"), "{e}");
        assert!(!e.to_string().contains("wr0ng"), "the token leaked: {e}");
    }
    assert!(!format!("{s:?}").contains("wr0ng"));
}
