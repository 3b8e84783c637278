//! The Dexcom connector against a mock Dexcom API v3 with the crate's OAuth2 mock on the same
//! server. There is no Dexcom fixture: the bodies are built here from Dexcom's published API
//! reference (developer.dexcom.com: `GET /v3/users/self/egvs` answers
//! `{"recordType":"egv","recordVersion":"3.0","userId","records":[{"recordId","systemTime",
//! "displayTime","transmitterId","transmitterTicks","value","status","trend","trendRate",
//! "unit","rateUnit","displayDevice","transmitterGeneration"}]}`; `GET
//! /v3/users/self/dataRange` answers `{"recordType":"dataRange","recordVersion":"3.0",
//! "userId","calibrations","egvs","events"}` with `start`/`end` `systemTime`/`displayTime`;
//! receiver records carry no UTC offset, app records do).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthanalyzer_model::Measurement;
use healthanalyzer_source::testkit::mock::{MockResponse, MockServer, RecordedRequest};
use healthanalyzer_source::testkit::{pull_all, run_all};
use healthanalyzer_source::{Batch, Cursor, Error, Source};
use healthanalyzer_source_cloud::testkit::{CLIENT_ID, CLIENT_SECRET, OAuthMock};
use healthanalyzer_source_cloud::{
    CloudSource, Dialect, GrantKey, MemoryTokenStore, Settings, TokenStore, Vendor,
};
use serde_json::{Value as Json, json};

const SUBJECT: &str = "urn:oid:1.2.208.176.1.2|0101701234";
const ACCOUNT: &str = "anna-at-dexcom";
/// A transmitter id, which must never show in a measurement, an error or a log.
const TRANSMITTER: &str = "8HX3LM";
const LOGIN: &str = "/v2/oauth2/login";
const TOKEN: &str = "/v2/oauth2/token";

/// 2024-03-10T00:00:00Z.
const T0: i64 = 1_710_028_800_000;
const FIVE_MINUTES: i64 = 300_000;

fn civil(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .expect("ts")
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// An EGV of a receiver (no offsets; its display clock an hour ahead of UTC).
fn receiver_egv(i: usize, at: i64, value: Json) -> Json {
    json!({
        "recordId": format!("{:08x}-5a7e-4450-89c8-{:012x}", i, i),
        "systemTime": civil(at),
        "displayTime": civil(at + 3_600_000),
        "transmitterId": TRANSMITTER,
        "transmitterTicks": 5_000_000 + i * 300,
        "value": value,
        "status": null,
        "trend": "flat",
        "trendRate": 0.1,
        "unit": "mg/dL",
        "rateUnit": "mg/dL/min",
        "displayDevice": "receiver",
        "transmitterGeneration": "g6",
    })
}

/// `n` EGVs every 5 minutes from [`T0`] with a LOW every 40th and a HIGH every 41st; every
/// 15th has a twin of the same second from the phone app (with offsets).
fn synthetic(n: usize, from: i64) -> Vec<Json> {
    let mut out = Vec::new();
    for i in 0..n {
        let at = from + i as i64 * FIVE_MINUTES;
        let value = json!(80 + (i % 90));
        let mut r = receiver_egv(i, at, value);
        if i % 40 == 39 {
            r["status"] = json!("low");
            r["value"] = json!(39);
        } else if i % 41 == 40 {
            r["status"] = json!("high");
            r["value"] = json!(401);
        }
        out.push(r);
        if i % 15 == 7 {
            let mut app = receiver_egv(i + 1_000_000, at, json!(120));
            app["systemTime"] = json!(format!("{}+00:00", civil(at)));
            app["displayTime"] = json!(format!("{}+01:00", civil(at + 3_600_000)));
            app["displayDevice"] = json!("iOS");
            app["transmitterGeneration"] = json!("g7");
            out.push(app);
        }
    }
    out
}

fn instant(r: &Json) -> i64 {
    let text = r["systemTime"].as_str().expect("systemTime");
    let text = text.strip_suffix("+00:00").unwrap_or(text);
    let civil: jiff::civil::DateTime = text.parse().expect("civil");
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("zoned")
        .timestamp()
        .as_millisecond()
}

/// The mock Dexcom API.
struct Api {
    records: Vec<Json>,
    faults: VecDeque<MockResponse>,
}

type Shared = Arc<Mutex<Api>>;

fn range(records: &[Json]) -> Json {
    let first = records.iter().min_by_key(|r| instant(r));
    let last = records.iter().max_by_key(|r| instant(r));
    let egvs = match (first, last) {
        (Some(a), Some(b)) => json!({
            "start": {"systemTime": civil(instant(a)), "displayTime": a["displayTime"]},
            "end": {"systemTime": civil(instant(b)), "displayTime": b["displayTime"]},
        }),
        _ => Json::Null,
    };
    json!({"recordType": "dataRange", "recordVersion": "3.0", "userId": "b7e49d4c",
        "calibrations": null, "egvs": egvs, "events": null})
}

fn respond(oauth: &OAuthMock, api: &Shared, r: &RecordedRequest) -> MockResponse {
    if let Some(answer) = oauth.respond(r) {
        return answer;
    }
    if let Err(refused) = oauth.account(r) {
        return refused;
    }
    let mut api = api.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(fault) = api.faults.pop_front() {
        return fault;
    }
    match r.path.as_str() {
        "/v3/users/self/dataRange" => MockResponse::new(200).json(range(&api.records).to_string()),
        "/v3/users/self/egvs" => {
            let time = |name: &str| -> Option<i64> {
                let text = r.query_param(name)?;
                let civil: jiff::civil::DateTime = text.parse().ok()?;
                Some(
                    civil
                        .to_zoned(jiff::tz::TimeZone::UTC)
                        .ok()?
                        .timestamp()
                        .as_millisecond(),
                )
            };
            let (Some(start), Some(end)) = (time("startDate"), time("endDate")) else {
                return MockResponse::new(400).json(r#"{"error":"invalid startDate or endDate"}"#);
            };
            if end - start > 30 * 86_400_000 || end < start {
                return MockResponse::new(400)
                    .json(r#"{"error":"the time window may not exceed 30 days"}"#);
            }
            let mut records: Vec<&Json> = api
                .records
                .iter()
                .filter(|e| (start..=end).contains(&instant(e)))
                .collect();
            // Newest first: the connector must not rely on the order.
            records.sort_by_key(|e| std::cmp::Reverse(instant(e)));
            MockResponse::new(200).json(
                json!({"recordType": "egv", "recordVersion": "3.0", "userId": "b7e49d4c",
                    "records": records})
                .to_string(),
            )
        }
        _ => MockResponse::new(404).json(r#"{"error":"not found"}"#),
    }
}

struct Setup {
    server: MockServer,
    oauth: OAuthMock,
    api: Shared,
    store: Arc<MemoryTokenStore>,
}

async fn start(records: Vec<Json>, oauth: OAuthMock) -> Setup {
    let api: Shared = Arc::new(Mutex::new(Api {
        records,
        faults: VecDeque::new(),
    }));
    let (o, a) = (oauth.clone(), api.clone());
    let server = MockServer::start(move |r: &RecordedRequest| respond(&o, &a, r))
        .await
        .expect("mock server");
    Setup {
        server,
        oauth,
        api,
        store: Arc::new(MemoryTokenStore::new()),
    }
}

fn oauth() -> OAuthMock {
    OAuthMock::new(Dialect::Standard, LOGIN, TOKEN)
}

impl Setup {
    fn settings(&self, extra: Json) -> Settings {
        let mut s = json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "base_url": self.server.uri(),
            "authorize_url": self.server.url(LOGIN),
            "token_url": self.server.url(TOKEN),
            "redirect_uri": "http://127.0.0.1:0/callback",
            "since": "2024-01-01",
            "timeout_seconds": 5,
            "citizen": [{"name": "anna", "subject": SUBJECT}],
        });
        if let (Some(a), Json::Object(b)) = (s.as_object_mut(), extra) {
            a.extend(b);
        }
        serde_json::from_value(s).expect("settings")
    }

    fn cloud(&self, extra: Json) -> CloudSource {
        let store: Arc<dyn TokenStore> = self.store.clone();
        CloudSource::new(
            Vendor::Dexcom,
            "dexcom",
            self.settings(extra),
            std::path::Path::new("."),
        )
        .expect("a cloud source")
        .with_token_store(store)
    }

    /// A grant for the account, as `connect` would have kept it.
    fn connected(&self) {
        self.store
            .save(&key(), &self.oauth.issue(ACCOUNT))
            .expect("saved");
    }

    fn source(&self) -> Arc<dyn Source> {
        self.cloud(json!({})).sources().expect("sources").remove(0)
    }
}

fn key() -> GrantKey {
    GrantKey::new("dexcom", "anna")
}

fn all(batches: &[Batch]) -> Vec<&Measurement> {
    batches.iter().flat_map(|b| &b.measurements).collect()
}

fn value(m: &Measurement) -> String {
    m.value
        .as_quantity()
        .map(|q| q.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn connect_exchanges_the_code_and_the_grant_reads_the_egvs() {
    let s = start(synthetic(20, T0), oauth()).await;
    s.oauth.log_in_as(Some(ACCOUNT));
    let cloud = s.cloud(json!({}));
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    // The browser: opens the announced URL and follows the redirect to the loopback address.
    let browser = tokio::spawn(async move {
        let url = rx.await.expect("the announced URL");
        let client = healthanalyzer_source::http::client_builder()
            .build()
            .expect("a client");
        let page = client
            .get(&url)
            .send()
            .await
            .expect("the browser's request");
        (
            url,
            page.status().as_u16(),
            page.text().await.unwrap_or_default(),
        )
    });
    let grant = cloud
        .connect("anna", Duration::from_secs(20), |url| {
            let _ = tx.send(url.to_string());
        })
        .await
        .expect("connected");
    let (url, status, page) = browser.await.expect("the browser");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Connected"), "{page}");
    assert!(url.starts_with(&s.server.url(LOGIN)), "{url}");
    let authorize = s
        .server
        .requests()
        .into_iter()
        .find(|r| r.path == LOGIN)
        .expect("the authorisation request");
    assert_eq!(
        authorize.query_param("scope").as_deref(),
        Some("offline_access")
    );
    assert_eq!(
        authorize.query_param("response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        authorize.query_param("client_id").as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(
        authorize.query_param("code_challenge_method").as_deref(),
        Some("S256")
    );
    let redirect = authorize
        .query_param("redirect_uri")
        .expect("a redirect URI");
    assert!(
        redirect.starts_with("http://127.0.0.1:") && !redirect.contains(":0/"),
        "{redirect}"
    );
    assert_eq!(s.oauth.exchanges(), 1);
    assert_eq!(s.store.load(&key()).expect("store"), Some(grant));
    // The saved grant reads the citizen's EGVs.
    let dexcom = cloud.sources().expect("sources").remove(0);
    dexcom.check().await.expect("authorised");
    let got = pull_all(dexcom.as_ref(), &Cursor::start(), 100).await;
    assert_eq!(all(&got).len(), 20 + 1);
}

#[tokio::test]
async fn the_default_endpoints_are_dexcoms_and_the_sandbox_is_chosen_by_a_setting() {
    let s = start(Vec::new(), oauth()).await;
    for (sandbox, base) in [
        (false, "https://api.dexcom.com/v2/oauth2/login?"),
        (true, "https://sandbox-api.dexcom.com/v2/oauth2/login?"),
    ] {
        let settings: Settings = serde_json::from_value(json!({
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "sandbox": sandbox,
            "redirect_uri": "http://127.0.0.1:0/callback",
            "citizen": [{"name": "anna", "subject": SUBJECT}],
        }))
        .expect("settings");
        let store: Arc<dyn TokenStore> = s.store.clone();
        let cloud = CloudSource::new(
            Vendor::Dexcom,
            "dexcom",
            settings,
            std::path::Path::new("."),
        )
        .expect("cloud")
        .with_token_store(store);
        let mut announced = String::new();
        // Nobody opens it: connect gives up after its (short) wait.
        let e = cloud
            .connect("anna", Duration::from_millis(200), |url| {
                announced = url.to_string();
            })
            .await
            .expect_err("no browser");
        assert!(e.to_string().contains("no answer from the browser"), "{e}");
        assert!(announced.starts_with(base), "{announced}");
        assert!(announced.contains("scope=offline_access"), "{announced}");
    }
}

#[tokio::test]
async fn the_egvs_map_to_glucose_with_offsets_devices_and_low_and_high_skipped() {
    let mut records = synthetic(10, T0);
    let at = T0 + 10 * FIVE_MINUTES;
    // In mmol/L; a LOW as a code; a record without a unit Dexcom knows.
    let mut mmol = receiver_egv(50, at, json!(6.1));
    mmol["unit"] = json!("mmol/L");
    records.push(mmol);
    records.push(receiver_egv(51, at + FIVE_MINUTES, json!(12)));
    let mut unknown = receiver_egv(52, at + 2 * FIVE_MINUTES, json!(100));
    unknown["unit"] = json!("unknown");
    records.push(unknown);
    let s = start(records, oauth()).await;
    s.connected();
    let dexcom = s.source();
    let batches = pull_all(dexcom.as_ref(), &Cursor::start(), 100).await;
    let got = all(&batches);
    let rejected: Vec<_> = batches.iter().flat_map(|b| &b.rejected).collect();
    // Ten from the receiver, the app's twin of one, the one in mmol/L.
    assert_eq!(got.len(), 10 + 1 + 1, "{batches:?}");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].location.contains("00000034-5a7e"),
        "{rejected:?}"
    );
    assert!(rejected[0].reason.contains("`unit`"), "{rejected:?}");
    assert!(got.iter().all(|m| m.kind == "blood-glucose"));
    assert!(got.iter().all(|m| m.subject.value() == "0101701234"));
    // In order of system time, on the display's wall clock.
    assert_eq!(
        got[0].provenance.record_id,
        "00000000-5a7e-4450-89c8-000000000000"
    );
    assert_eq!(got[0].provenance.source_id, "dexcom/anna");
    assert_eq!(value(got[0]), "80 mg/dL");
    assert_eq!(
        got[0].effective.start().to_string(),
        "2024-03-10T01:00:00+01:00"
    );
    let d = got[0].device.as_ref().expect("a device");
    assert_eq!(d.manufacturer.as_deref(), Some("Dexcom"));
    assert_eq!(d.model.as_deref(), Some("G6"));
    assert_eq!(d.display.as_deref(), Some("Dexcom G6 (receiver)"));
    // The phone app's twin of the same second: its own offsets.
    let app = got
        .iter()
        .find(|m| m.provenance.record_id.starts_with("000f4247"))
        .expect("the app's record");
    assert_eq!(
        app.effective.start().to_string(),
        "2024-03-10T01:35:00+01:00"
    );
    assert_eq!(
        app.device.as_ref().and_then(|d| d.display.as_deref()),
        Some("Dexcom G7 (iOS app)")
    );
    // mmol/L normalised to the catalog's mg/dL.
    let q = got
        .iter()
        .find(|m| m.provenance.record_id.starts_with("00000032"))
        .and_then(|m| m.value.as_quantity())
        .expect("the mmol/L reading");
    assert_eq!(q.unit.as_str(), "mg/dL");
    assert!(q.value > 109.into() && q.value < 111.into(), "{q}");
    // The transmitter's id is nowhere.
    assert!(!format!("{batches:?}").contains(TRANSMITTER));
    assert!(
        !format!("{dexcom:?}").contains(TRANSMITTER)
            && !format!("{dexcom:?}").contains("0101701234")
    );
    // A first sync starts where the EGVs start, not at `since` two months earlier.
    let egvs: Vec<_> = s
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v3/users/self/egvs")
        .collect();
    assert_eq!(
        egvs[0].query_param("startDate").as_deref(),
        Some("2024-03-09T23:59:59")
    );
}

#[tokio::test]
async fn the_connector_keeps_the_source_contract() {
    let s = start(synthetic(120, T0), oauth()).await;
    s.connected();
    let (a, b) = (s.source(), s.source());
    run_all(a.as_ref(), b.as_ref(), 7).await;
}

#[tokio::test]
async fn months_are_read_in_windows_under_30_days_and_batches_keep_the_limit() {
    // 70 days of readings after a gap.
    let records = synthetic(70 * 288, T0);
    let expected = records.iter().filter(|r| r["status"].is_null()).count();
    let s = start(records, oauth()).await;
    s.connected();
    let dexcom = s.source();
    let whole = pull_all(dexcom.as_ref(), &Cursor::start(), 100_000).await;
    let ids: Vec<_> = all(&whole).iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), expected);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no reading twice");
    let times: Vec<_> = all(&whole).iter().map(|m| m.effective.instant()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let windows = s
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v3/users/self/egvs")
        .count();
    assert!(windows >= 3, "{windows}");
    // The mock refuses windows over 30 days, so none was asked; smaller batches give the same.
    let small = pull_all(dexcom.as_ref(), &Cursor::start(), 2500).await;
    assert!(small.iter().all(|b| b.measurements.len() <= 2500));
    let small_ids: Vec<_> = all(&small).iter().map(|m| m.id).collect();
    assert_eq!(small_ids, ids);
}

#[tokio::test]
async fn access_tokens_are_refreshed_and_the_rotated_grant_is_kept() {
    let s = start(synthetic(60, T0), oauth().expires_in(0)).await;
    s.connected();
    let first = s.store.load(&key()).expect("store").expect("a grant");
    let dexcom = s.source();
    let got = pull_all(dexcom.as_ref(), &Cursor::start(), 10).await;
    // Sixty, less a LOW and a HIGH, and four twins.
    assert_eq!(all(&got).len(), 60 - 2 + 4);
    // Every request needed a fresh token; each refresh rotated the refresh token, and the
    // store holds the newest, which still works, while the first is void.
    let data_requests = s
        .server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v3/"))
        .count();
    assert!(
        s.oauth.refreshes() >= data_requests,
        "{} {data_requests}",
        s.oauth.refreshes()
    );
    let kept = s.store.load(&key()).expect("store").expect("a grant");
    let refresh = kept.refresh_token.as_ref().expect("a refresh token");
    assert!(s.oauth.accepts_refresh(refresh));
    assert!(
        !s.oauth
            .accepts_refresh(first.refresh_token.as_ref().expect("refresh"))
    );
}

#[tokio::test]
async fn a_revoked_grant_is_an_authorization_error_naming_the_citizen_not_the_token() {
    let s = start(synthetic(10, T0), oauth()).await;
    s.connected();
    let grant = s.store.load(&key()).expect("store").expect("a grant");
    s.oauth.revoke(ACCOUNT);
    let dexcom = s.source();
    for e in [
        dexcom.check().await.expect_err("revoked"),
        dexcom
            .pull(&Cursor::start(), 10)
            .await
            .expect_err("revoked"),
    ] {
        assert!(matches!(e, Error::Authorization { .. }), "{e:?}");
        assert!(!e.is_retryable());
        let msg = e.to_string();
        assert!(
            msg.contains("citizen anna") && msg.contains("connect dexcom"),
            "{msg}"
        );
        for secret in [
            grant.access_token.expose(),
            grant.refresh_token.as_ref().expect("refresh").expose(),
        ] {
            assert!(
                !msg.contains(secret) && !format!("{e:?}").contains(secret),
                "{msg}"
            );
        }
    }
    // A citizen never connected: the same kind of error, before any data request.
    let t = start(synthetic(10, T0), oauth()).await;
    let e = t.source().check().await.expect_err("not connected");
    assert!(matches!(e, Error::Authorization { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("healthanalyzer connect dexcom --subject anna"),
        "{e}"
    );
    assert!(t.server.requests().is_empty());
}

#[tokio::test]
async fn too_many_requests_is_retryable_with_and_without_retry_after() {
    let s = start(synthetic(10, T0), oauth()).await;
    s.connected();
    let dexcom = s.source();
    s.api.lock().expect("api").faults.extend([
        MockResponse::new(429).header("Retry-After", "30"),
        MockResponse::new(200).json(range(&synthetic(10, T0)).to_string()),
        MockResponse::new(429),
    ]);
    let e = dexcom.pull(&Cursor::start(), 5).await.expect_err("429");
    assert!(
        matches!(e, Error::Unavailable { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    // The data range went through, the EGVs did not.
    let e = dexcom.pull(&Cursor::start(), 5).await.expect_err("429");
    assert!(
        matches!(e, Error::Unavailable { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(e.retry_after(), None);
    let batch = dexcom
        .pull(&Cursor::start(), 5)
        .await
        .expect("then it goes through");
    assert_eq!(batch.measurements.len(), 5);
}

#[tokio::test]
async fn an_error_in_the_body_of_a_200_is_an_error() {
    let s = start(synthetic(10, T0), oauth()).await;
    s.connected();
    let dexcom = s.source();
    s.api.lock().expect("api").faults.extend([
        MockResponse::new(200)
            .json(r#"{"error":"invalid_request","error_description":"startDate is after endDate"}"#),
        MockResponse::new(200).json(
            r#"{"fault":{"faultstring":"Rate limit quota violation","detail":{"errorcode":"policies.ratelimit.QuotaViolation"}}}"#,
        ),
        MockResponse::new(200).json(r#"{"recordType":"calibration","recordVersion":"3.0","records":[]}"#),
    ]);
    let e = dexcom
        .pull(&Cursor::start(), 5)
        .await
        .expect_err("an error");
    assert!(
        matches!(e, Error::BadData { .. }) && !e.is_retryable(),
        "{e:?}"
    );
    assert!(e.to_string().contains("invalid_request"), "{e}");
    assert!(!e.to_string().contains("startDate is after"), "{e}");
    let e = dexcom.pull(&Cursor::start(), 5).await.expect_err("a quota");
    assert!(e.is_retryable(), "{e:?}");
    let e = dexcom
        .pull(&Cursor::start(), 5)
        .await
        .expect_err("not a data range");
    assert!(matches!(e, Error::BadData { .. }), "{e:?}");
}

#[tokio::test]
async fn a_hung_api_times_out_as_a_retryable_error() {
    let s = start(synthetic(10, T0), oauth()).await;
    s.connected();
    let dexcom = s
        .cloud(json!({"timeout_seconds": 0.5}))
        .sources()
        .expect("sources")
        .remove(0);
    s.api.lock().expect("api").faults.push_back(
        MockResponse::new(200)
            .json("{}")
            .delay(Duration::from_secs(5)),
    );
    let e = dexcom
        .pull(&Cursor::start(), 5)
        .await
        .expect_err("timed out");
    assert!(
        matches!(e, Error::Unavailable { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[tokio::test]
async fn an_exhausted_cursor_gives_nothing_until_dexcom_publishes_more() {
    let s = start(synthetic(30, T0), oauth()).await;
    s.connected();
    let dexcom = s.source();
    let batches = pull_all(dexcom.as_ref(), &Cursor::start(), 1000).await;
    let end = batches.last().expect("a batch").cursor.clone();
    let again = dexcom.pull(&end, 1000).await.expect("pull");
    assert!(again.exhausted && again.measurements.is_empty());
    assert_eq!(again.cursor, end);
    // Dexcom publishes the next reading.
    s.api
        .lock()
        .expect("api")
        .records
        .push(receiver_egv(99, T0 + 30 * FIVE_MINUTES, json!(111)));
    let fresh = dexcom.pull(&end, 1000).await.expect("pull");
    assert_eq!(fresh.measurements.len(), 1);
    assert_eq!(value(&fresh.measurements[0]), "111 mg/dL");
    assert!(fresh.exhausted);
    // A receiver clock a year ahead: its EGV waits for the clock (neither read nor refused),
    // and the source still comes to an end.
    let now = jiff::Timestamp::now().as_millisecond();
    s.api
        .lock()
        .expect("api")
        .records
        .push(receiver_egv(100, now + 365 * 86_400_000, json!(150)));
    let ahead = pull_all(dexcom.as_ref(), &fresh.cursor, 1000).await;
    assert!(all(&ahead).is_empty());
    assert!(ahead.iter().all(|b| b.rejected.is_empty()), "{ahead:?}");
    // A cursor of another kind of source is refused.
    let e = dexcom
        .pull(&Cursor::new(r#"{"v":1,"nightscout":1}"#), 5)
        .await
        .expect_err("refused");
    assert!(matches!(e, Error::BadCursor { .. }), "{e:?}");
}

#[tokio::test]
async fn a_gap_of_months_is_crossed_in_a_few_requests() {
    let mut records = synthetic(3 * 288, T0);
    let later = T0 + 200 * 86_400_000;
    records.extend(synthetic(3 * 288, later).into_iter().map(|mut r| {
        let id = r["recordId"]
            .as_str()
            .expect("id")
            .replacen("5a7e", "6b8f", 1);
        r["recordId"] = json!(id);
        r
    }));
    let expected = records.iter().filter(|r| r["status"].is_null()).count();
    let s = start(records, oauth()).await;
    s.connected();
    let dexcom = s.source();
    let batches = pull_all(dexcom.as_ref(), &Cursor::start(), 500).await;
    assert_eq!(all(&batches).len(), expected);
    let windows = s
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/v3/users/self/egvs")
        .count();
    // 200 empty days in windows of a batch (under two days) would be over a hundred.
    assert!(windows < 40, "{windows} requests");
}
