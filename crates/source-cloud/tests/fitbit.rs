//! The Fitbit connector against a mock of the Fitbit Web API with an OAuth2 server (HTTP
//! Basic client authentication, rotating refresh tokens) on the same port.
//!
//! Shimmer's real Fitbit answers are served from `$HEALTHANALYZER_FIXTURES`; paging, today's
//! updates and the faults are synthetic bodies built here.

#![allow(clippy::print_stderr)] // the skip notice

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use healthanalyzer_model::{Effective, Measurement, Provenance, Status};
use healthanalyzer_source::http::{self, reqwest};
use healthanalyzer_source::testkit::mock::{MockResponse, MockServer, RecordedRequest};
use healthanalyzer_source::testkit::{pull_all, run_all};
use healthanalyzer_source::{Batch, Cursor, Error as SourceError, Source};
use healthanalyzer_source_cloud::testkit::{CLIENT_ID, CLIENT_SECRET, OAuthMock};
use healthanalyzer_source_cloud::{
    CloudSource, Dialect, Grant, GrantKey, MemoryTokenStore, Settings, TokenStore, Vendor,
};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value as Json, json};

const ZONE: &str = "Europe/Copenhagen";
const SUBJECT: &str = "urn:oid:1.2.208.176.1.2|0101701234";

/// The fixture folder, or `None` (and a notice) when the variable is not set.
fn fixtures(test: &str) -> Option<PathBuf> {
    match std::env::var_os("HEALTHANALYZER_FIXTURES") {
        Some(dir) => Some(PathBuf::from(dir).join("openmhealth-shimmer-api-samples/fitbit")),
        None => {
            eprintln!(
                "SKIPPED {test}: HEALTHANALYZER_FIXTURES is not set (.ci/run sets it to ../shared/fixtures)"
            );
            None
        }
    }
}

fn fixture(dir: &Path, name: &str) -> Json {
    let text =
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// What the mock Fitbit holds, and how it misbehaves.
#[derive(Default)]
struct Data {
    profile: Json,
    /// Records by series (`weight`, `heart`, `steps`, `spo2`), each with its date.
    records: BTreeMap<&'static str, Vec<Json>>,
    /// Fields the heart answer carries besides its list (the intraday fixture's series).
    heart_extra: Option<(String, Json)>,
    /// One-shot answers to the first request whose path contains the text, before the
    /// token is checked.
    faults: Vec<(String, MockResponse)>,
    /// Headers added to every data answer.
    headers: Vec<(String, String)>,
}

/// A mock Fitbit: the API and its OAuth2 endpoints.
struct Fake {
    server: MockServer,
    oauth: OAuthMock,
    data: Arc<Mutex<Data>>,
}

fn series_of(path: &str) -> Option<(&'static str, &str)> {
    let rest = path.strip_prefix("/1/user/-/")?;
    [
        ("weight", "body/log/weight/date/"),
        ("heart", "activities/heart/date/"),
        ("steps", "activities/steps/date/"),
        ("spo2", "spo2/date/"),
    ]
    .into_iter()
    .find_map(|(name, prefix)| rest.strip_prefix(prefix).map(|r| (name, r)))
}

fn date_of(record: &Json) -> Option<Date> {
    record
        .get("date")
        .or_else(|| record.get("dateTime"))
        .and_then(Json::as_str)?
        .parse()
        .ok()
}

fn validation_error(message: &str) -> MockResponse {
    MockResponse::new(400).json(
        json!({"errors": [{"errorType": "validation", "fieldName": "endDate", "message": message}], "success": false})
            .to_string(),
    )
}

fn respond(oauth: &OAuthMock, data: &Mutex<Data>, r: &RecordedRequest) -> MockResponse {
    if let Some(answer) = oauth.respond(r) {
        return answer;
    }
    let mut d = data.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = d
        .faults
        .iter()
        .position(|(p, _)| r.path.contains(p.as_str()))
    {
        return d.faults.remove(i).1;
    }
    if let Err(refused) = oauth.account(r) {
        return refused;
    }
    if r.header("accept-language").is_some() {
        return validation_error("the connector must not ask for other units");
    }
    let body = if r.path == "/1/user/-/profile.json" {
        d.profile.clone()
    } else {
        let Some((series, range)) = series_of(&r.path) else {
            return MockResponse::new(404).json(r#"{"errors":[{"errorType":"not_found"}]}"#);
        };
        let Some((from, to)) = range
            .strip_suffix(".json")
            .and_then(|r| r.split_once('/'))
            .and_then(|(a, b)| Some((a.parse::<Date>().ok()?, b.parse::<Date>().ok()?)))
        else {
            return validation_error("not a date range");
        };
        let most = match series {
            "weight" => 31,
            "spo2" => 30,
            _ => 365,
        };
        if to < from || from.until(to).map_or(true, |s| s.get_days() >= most) {
            return validation_error("the range is too long");
        }
        let list: Vec<Json> = d
            .records
            .get(series)
            .into_iter()
            .flatten()
            .filter(|rec| date_of(rec).is_some_and(|day| day >= from && day <= to))
            .cloned()
            .collect();
        match series {
            "weight" => json!({ "weight": list }),
            "steps" => json!({ "activities-steps": list }),
            "heart" => {
                let mut body = json!({ "activities-heart": list });
                if let (Some((name, extra)), false) = (&d.heart_extra, list.is_empty()) {
                    body[name.as_str()] = extra.clone();
                }
                body
            }
            _ => Json::Array(list),
        }
    };
    let mut answer = MockResponse::new(200);
    for (n, v) in &d.headers {
        answer = answer.header(n, v);
    }
    answer.json(body.to_string())
}

impl Fake {
    async fn start(oauth: OAuthMock, data: Data) -> Fake {
        let data = Arc::new(Mutex::new(data));
        let (o, d) = (oauth.clone(), Arc::clone(&data));
        let server = MockServer::start(move |r: &RecordedRequest| respond(&o, &d, r))
            .await
            .expect("the mock server starts");
        Fake {
            server,
            oauth,
            data,
        }
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The requests to the data API (not the OAuth2 endpoints).
    fn api_requests(&self) -> Vec<RecordedRequest> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/1/"))
            .collect()
    }

    /// The cloud source, with `extra` settings.
    fn cloud(&self, since: &str, extra: Json) -> CloudSource {
        let mut settings = json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "base_url": self.server.uri(),
            "authorize_url": self.server.url("/oauth2/authorize"),
            "token_url": self.server.url("/oauth2/token"),
            "redirect_uri": "http://127.0.0.1:0/callback",
            "since": since,
            "citizen": [{ "name": "citizen-name", "subject": SUBJECT }],
        });
        if let (Json::Object(s), Json::Object(e)) = (&mut settings, extra) {
            s.extend(e);
        }
        let settings: Settings = serde_json::from_value(settings).expect("settings");
        CloudSource::new(Vendor::Fitbit, "id", settings, Path::new(".")).expect("a cloud source")
    }
}

fn oauth() -> OAuthMock {
    OAuthMock::new(Dialect::Basic, "/oauth2/authorize", "/oauth2/token")
}

fn key() -> GrantKey {
    GrantKey::new("id", "citizen-name")
}

/// A token store holding a grant for the mock's `account`.
fn store(oauth: &OAuthMock) -> (Arc<MemoryTokenStore>, Grant) {
    let store = Arc::new(MemoryTokenStore::new());
    let grant = oauth.issue("account");
    store.save(&key(), &grant).expect("saved");
    (store, grant)
}

fn source_of(cloud: CloudSource, store: &Arc<MemoryTokenStore>) -> Arc<dyn Source> {
    let store: Arc<dyn TokenStore> = store.clone();
    let mut sources = cloud.with_token_store(store).sources().expect("sources");
    assert_eq!(sources.len(), 1);
    sources.remove(0)
}

fn profile() -> Json {
    json!({"user": {"timezone": ZONE, "offsetFromUTCMillis": 3_600_000, "displayName": "A"}})
}

fn id(record: &str) -> healthanalyzer_model::MeasurementId {
    Provenance::new("id/citizen-name", record).measurement_id()
}

fn all_measurements(batches: &[Batch]) -> Vec<Measurement> {
    batches
        .iter()
        .flat_map(|b| b.measurements.iter().cloned())
        .collect()
}

fn quantity(m: &Measurement) -> (String, String) {
    let q = m.value.as_quantity().expect("a quantity");
    (q.value.to_string(), q.unit.to_string())
}

fn period(m: &Measurement) -> (String, Option<String>) {
    match &m.effective {
        Effective::Period { start, end } => (start.to_string(), end.map(|e| e.to_string())),
        other => panic!("a period, not {other:?}"),
    }
}

fn today() -> Date {
    Timestamp::now()
        .to_zoned(TimeZone::get(ZONE).expect("zone"))
        .date()
}

fn day(back: i64) -> Date {
    today().checked_sub(back.days()).expect("a date")
}

/// Some weeks of synthetic data ending today.
fn synthetic() -> Data {
    let mut d = Data {
        profile: profile(),
        ..Data::default()
    };
    for i in 1..=39i64 {
        let date = day(i).to_string();
        if i % 3 == 0 {
            d.records.entry("weight").or_default().push(json!({
                "bmi": 22.5 + (i as f64) / 10.0, "date": date, "logId": 1_700_000_000_000i64 + i,
                "time": "07:30:00", "weight": 70.0 + (i as f64) / 10.0, "source": "Aria"
            }));
        }
        if i % 2 == 0 {
            d.records.entry("heart").or_default().push(json!({
                "dateTime": date, "value": {"customHeartRateZones": [], "heartRateZones": [], "restingHeartRate": 55 + i % 10}
            }));
        }
        d.records.entry("steps").or_default().push(json!({
            "dateTime": date, "value": if i % 7 == 0 { "0".to_string() } else { (1000 + i * 37).to_string() }
        }));
        if i % 4 == 0 {
            // Fitbit's reference shape: https://dev.fitbit.com/build/reference/web-api/spo2/
            d.records.entry("spo2").or_default().push(json!({
                "dateTime": date, "value": {"avg": 95.5 + (i as f64) / 100.0, "min": 92.0, "max": 99.0}
            }));
        }
    }
    d.records
        .entry("steps")
        .or_default()
        .push(json!({"dateTime": today().to_string(), "value": "812"}));
    d
}

fn since() -> String {
    day(41).to_string()
}

#[tokio::test]
async fn the_fixtures_map_to_weights_bmis_and_steps_at_the_citizens_local_time() {
    let Some(dir) =
        fixtures("the_fixtures_map_to_weights_bmis_and_steps_at_the_citizens_local_time")
    else {
        return;
    };
    let weight = fixture(&dir, "fitbit-body-log-weight.json");
    let steps = fixture(&dir, "fitbit-activities-steps-timeseries.json");
    let heart = fixture(&dir, "fitbit-activities-heart-1d-1m-intraday.json");
    let mut data = Data {
        profile: profile(),
        ..Data::default()
    };
    data.records.insert(
        "weight",
        weight["weight"].as_array().expect("weight").clone(),
    );
    data.records.insert(
        "steps",
        steps["activities-steps"].as_array().expect("steps").clone(),
    );
    data.records.insert(
        "heart",
        heart["activities-heart"].as_array().expect("heart").clone(),
    );
    data.heart_extra = Some((
        "activities-heart-intraday".into(),
        heart["activities-heart-intraday"].clone(),
    ));
    let fake = Fake::start(oauth(), data).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud("2015-05-01", json!({})), &store);
    let batches = pull_all(source.as_ref(), &Cursor::start(), 1000).await;
    assert!(
        batches.iter().all(|b| b.rejected.is_empty()),
        "nothing rejected"
    );
    let all = all_measurements(&batches);

    let weights: Vec<_> = all.iter().filter(|m| m.kind == "body-weight").collect();
    let expected = [
        ("1431541739000", "56.7", "2015-05-13T18:28:59+02:00"),
        ("1431604317000", "55.9", "2015-05-14T11:51:57+02:00"),
        ("1432318326000", "58.1", "2015-05-22T18:12:06+02:00"),
        ("1432480525000", "57.2", "2015-05-24T15:15:25+02:00"),
    ];
    assert_eq!(weights.len(), expected.len());
    for (m, (log, kg, at)) in weights.iter().zip(expected) {
        assert_eq!(m.id, id(log), "the id is the logId");
        assert_eq!(m.provenance.record_id, log);
        assert_eq!(quantity(m), (kg.to_string(), "kg".to_string()));
        assert_eq!(m.effective.start().to_string(), at);
        assert_eq!(m.subject, SUBJECT.parse().expect("an identifier"));
        assert_eq!(m.status, Status::Final);
        assert_eq!(m.device, None, "the fixture names no source");
    }
    let bmis: Vec<_> = all.iter().filter(|m| m.kind == "bmi").collect();
    let expected = [
        ("1431541739000/bmi", "21.48"),
        ("1431604317000/bmi", "21.17"),
        ("1432318326000/bmi", "21.99"),
        ("1432480525000/bmi", "21.65"),
    ];
    assert_eq!(bmis.len(), expected.len());
    for (m, (record, value)) in bmis.iter().zip(expected) {
        assert_eq!(m.id, id(record));
        assert_eq!(quantity(m), (value.to_string(), "kg/m2".to_string()));
    }

    let steps: Vec<_> = all.iter().filter(|m| m.kind == "steps").collect();
    // The day of 0 steps is a day the tracker was not worn: no reading.
    assert_eq!(steps.len(), 2, "{steps:?}");
    for (m, (date, value, start, end)) in steps.iter().zip([
        (
            "2015-08-23",
            "175",
            "2015-08-23T00:00:00+02:00",
            "2015-08-24T00:00:00+02:00",
        ),
        (
            "2015-08-24",
            "2937",
            "2015-08-24T00:00:00+02:00",
            "2015-08-25T00:00:00+02:00",
        ),
    ]) {
        assert_eq!(m.id, id(&format!("steps/{date}")));
        assert_eq!(quantity(m), (value.to_string(), "{steps}".to_string()));
        assert_eq!(period(m), (start.to_string(), Some(end.to_string())));
    }
    // The intraday fixture's daily entry has no `restingHeartRate` (an old `value` of text),
    // and the minute series is not read.
    assert!(
        all.iter().all(|m| m.kind != "heart-rate"),
        "no heart rate from the intraday answer"
    );
    assert_eq!(all.len(), 10);
    // Every request asked for at most the days Fitbit allows, from the start date on.
    let weight_requests: Vec<_> = fake
        .api_requests()
        .into_iter()
        .filter(|r| r.path.contains("/weight/"))
        .collect();
    assert!(
        weight_requests[0]
            .path
            .ends_with("/date/2015-05-01/2015-05-31.json"),
        "{}",
        weight_requests[0].path
    );
}

#[tokio::test]
async fn the_heart_rate_is_the_daily_resting_one_and_spo2_the_nightly_average() {
    let mut data = Data {
        profile: profile(),
        ..Data::default()
    };
    let d = day(3).to_string();
    data.records.insert(
        "heart",
        vec![
            json!({"dateTime": d, "value": {"customHeartRateZones": [], "heartRateZones": [], "restingHeartRate": 61}}),
            // A day without an estimate.
            json!({"dateTime": day(2).to_string(), "value": {"heartRateZones": []}}),
        ],
    );
    data.records.insert(
        "spo2",
        vec![json!({"dateTime": d, "value": {"avg": 97.5, "min": 94.0, "max": 100.0}})],
    );
    let fake = Fake::start(oauth(), data).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let all = all_measurements(&pull_all(source.as_ref(), &Cursor::start(), 100).await);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0].kind, "heart-rate");
    assert_eq!(all[0].id, id(&format!("heart/{d}")));
    assert_eq!(quantity(&all[0]), ("61".into(), "/min".into()));
    assert_eq!(all[1].kind, "oxygen-saturation");
    assert_eq!(all[1].id, id(&format!("spo2/{d}")));
    assert_eq!(quantity(&all[1]), ("97.5".into(), "%".into()));
    let (start, end) = period(&all[1]);
    assert!(start.starts_with(&format!("{d}T00:00:00+")), "{start}");
    assert!(end.is_some(), "a day that is over has an end");
}

#[tokio::test]
async fn the_connector_keeps_the_source_contract() {
    let fake = Fake::start(oauth(), synthetic()).await;
    let (store, _) = store(&fake.oauth);
    let first = source_of(fake.cloud(&since(), json!({})), &store);
    let second = source_of(fake.cloud(&since(), json!({})), &store);
    run_all(first.as_ref(), second.as_ref(), 7).await;
}

#[tokio::test]
async fn long_ranges_are_read_in_windows_fitbit_allows_and_batches_keep_the_limit() {
    let fake = Fake::start(oauth(), synthetic()).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let whole = all_measurements(&pull_all(source.as_ref(), &Cursor::start(), 1000).await);
    // 13 weight logs with their BMI, 19 resting heart rates, 34 step days (5 of 0 steps)
    // and today's, 9 SpO2 nights.
    let count = |kind: &str| whole.iter().filter(|m| m.kind == kind).count();
    assert_eq!(count("body-weight"), 13);
    assert_eq!(count("bmi"), 13);
    assert_eq!(count("heart-rate"), 19);
    assert_eq!(count("steps"), 35);
    assert_eq!(count("oxygen-saturation"), 9);
    let weight: Vec<String> = fake
        .api_requests()
        .into_iter()
        .filter(|r| r.path.contains("/weight/"))
        .map(|r| r.path)
        .collect();
    let first = since();
    assert_eq!(
        weight,
        vec![
            format!("/1/user/-/body/log/weight/date/{first}/{}.json", day(11)),
            format!(
                "/1/user/-/body/log/weight/date/{}/{}.json",
                day(10),
                today()
            ),
        ],
        "two windows of at most 31 days, the second ending today"
    );
    // A small limit splits Fitbit's answers through the cursor: the same measurements, in
    // the same order, none twice.
    let small = pull_all(source.as_ref(), &Cursor::start(), 2).await;
    assert!(small.iter().all(|b| b.measurements.len() <= 2));
    assert!(small.len() > whole.len() / 2);
    let ids: Vec<_> = all_measurements(&small).iter().map(|m| m.id).collect();
    assert_eq!(ids, whole.iter().map(|m| m.id).collect::<Vec<_>>());
    let scale = whole
        .iter()
        .find(|m| m.kind == "body-weight")
        .and_then(|m| m.device.clone())
        .expect("the Aria is the device");
    assert_eq!(scale.manufacturer.as_deref(), Some("Fitbit"));
    assert_eq!(scale.model.as_deref(), Some("Aria"));
}

#[tokio::test]
async fn today_is_read_again_and_delivered_again_only_when_it_changed() {
    let fake = Fake::start(oauth(), synthetic()).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let batches = pull_all(source.as_ref(), &Cursor::start(), 1000).await;
    let today_id = id(&format!("steps/{}", today()));
    let first = all_measurements(&batches)
        .into_iter()
        .find(|m| m.id == today_id)
        .expect("today's steps");
    assert_eq!(quantity(&first).0, "812");
    assert_eq!(first.status, Status::Preliminary, "the day is not over");
    assert_eq!(
        period(&first).1,
        None,
        "a day that is not over has no end yet"
    );
    let done = batches.last().expect("a batch").cursor.clone();

    // Nothing new: an empty, exhausted batch, though today (and the three days before it,
    // which a late sync can still change) was asked for again.
    let before = fake.api_requests().len();
    let again = source.pull(&done, 1000).await.expect("pulled");
    assert!(again.exhausted && again.measurements.is_empty());
    let asked: Vec<_> = fake.api_requests()[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        asked
            .iter()
            .any(|p| p.contains(&format!("/steps/date/{}/{}.json", day(3), today()))),
        "{asked:?}"
    );

    // Later that day: more steps. The same id, the new value.
    for r in fake.data().records.get_mut("steps").expect("steps") {
        if r["dateTime"] == json!(today().to_string()) {
            r["value"] = json!("4711");
        }
    }
    let update = source.pull(&again.cursor, 1000).await.expect("pulled");
    assert_eq!(update.measurements.len(), 1, "{:?}", update.measurements);
    assert_eq!(update.measurements[0].id, today_id);
    assert_eq!(quantity(&update.measurements[0]).0, "4711");
    assert!(update.exhausted);
    let after = source.pull(&update.cursor, 1000).await.expect("pulled");
    assert!(after.measurements.is_empty() && after.exhausted);
}

#[tokio::test]
async fn connect_exchanges_the_code_and_the_grant_reads_the_api() {
    let fake = Fake::start(oauth(), synthetic()).await;
    fake.oauth.log_in_as(Some("account"));
    let store = Arc::new(MemoryTokenStore::new());
    let dyn_store: Arc<dyn TokenStore> = store.clone();
    let cloud = fake.cloud(&since(), json!({})).with_token_store(dyn_store);
    let browser = http::client_builder().build().expect("a client");
    let mut opened = None;
    let grant = cloud
        .connect(
            "citizen-name",
            Duration::from_secs(30),
            |url: &reqwest::Url| {
                let url = url.clone();
                // The browser: the mock's authorisation endpoint redirects to the loopback
                // callback `connect` listens on.
                opened = Some(tokio::spawn(async move {
                    browser.get(url).send().await.map(|r| r.status())
                }));
            },
        )
        .await
        .expect("connected");
    let status = opened
        .expect("a URL was announced")
        .await
        .expect("the browser ran")
        .expect("the browser got an answer");
    assert!(status.is_success(), "{status}");
    assert_eq!(fake.oauth.exchanges(), 1);
    let authorize = fake
        .server
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth2/authorize")
        .expect("the browser opened the authorisation URL");
    assert_eq!(
        authorize.query_param("scope").as_deref(),
        Some("weight heartrate activity oxygen_saturation profile")
    );
    assert_eq!(
        authorize.query_param("client_id").as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(
        store.load(&key()).expect("loaded"),
        Some(grant),
        "the grant is kept"
    );
    let token = fake
        .server
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth2/token")
        .expect("the code was exchanged");
    assert!(
        token
            .header("authorization")
            .is_some_and(|h| h.starts_with("Basic ")),
        "Fitbit's token endpoint authenticates the client with HTTP Basic"
    );
    let source = cloud.sources().expect("sources").remove(0);
    source.check().await.expect("the grant works");
    let all = all_measurements(&pull_all(source.as_ref(), &Cursor::start(), 1000).await);
    assert!(!all.is_empty());
}

#[tokio::test]
async fn a_refresh_rotates_the_token_and_the_new_one_is_saved_before_use() {
    // Tokens that live a minute are refreshed before every request (the session refreshes
    // five minutes ahead).
    let fake = Fake::start(oauth().expires_in(60), synthetic()).await;
    let (store, seeded) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let all = all_measurements(&pull_all(source.as_ref(), &Cursor::start(), 1000).await);
    assert!(!all.is_empty());
    let requests = fake.api_requests().len();
    assert!(requests >= 2);
    assert_eq!(fake.oauth.refreshes(), requests, "one refresh per request");
    let kept = store.load(&key()).expect("loaded").expect("a grant");
    let kept_refresh = kept.refresh_token.clone().expect("a refresh token");
    assert!(
        fake.oauth.accepts_refresh(&kept_refresh),
        "the kept one works"
    );
    let seeded_refresh = seeded.refresh_token.clone().expect("a refresh token");
    assert!(
        !fake.oauth.accepts_refresh(&seeded_refresh),
        "the first one was rotated away"
    );
    assert_ne!(kept.access_token, seeded.access_token);
}

#[tokio::test]
async fn a_revoked_grant_is_an_authorization_error_naming_the_citizen_not_the_token() {
    let fake = Fake::start(oauth(), synthetic()).await;
    let (store, grant) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    fake.oauth.revoke("account");
    for result in [
        source.check().await.err(),
        source.pull(&Cursor::start(), 10).await.err(),
    ] {
        let e = result.expect("refused");
        assert!(matches!(e, SourceError::Authorization { .. }), "{e:?}");
        assert!(!e.is_retryable());
        let text = format!("{e} {e:?}");
        assert!(text.contains("citizen-name"), "{text}");
        assert!(text.contains("healthanalyzer connect id --subject citizen-name"));
        assert!(!text.contains(grant.access_token.expose()), "{text}");
        let refresh = grant.refresh_token.as_ref().expect("refresh");
        assert!(!text.contains(refresh.expose()), "{text}");
        assert!(!text.contains("0101701234"), "no subject in {text}");
    }
    let debug = format!("{source:?}");
    assert!(!debug.contains("0101701234") && !debug.contains(grant.access_token.expose()));
}

#[tokio::test]
async fn a_429_waits_as_retry_after_says_or_else_until_fitbits_reset() {
    let fake = Fake::start(oauth(), synthetic()).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let throttled = |extra: &[(&str, &str)]| {
        let mut r = MockResponse::new(429)
            .json(r#"{"errors":[{"errorType":"system","message":"Too Many Requests"}]}"#);
        for (n, v) in extra {
            r = r.header(n, v);
        }
        r
    };
    for (headers, wait) in [
        (
            vec![("Retry-After", "7"), ("Fitbit-Rate-Limit-Reset", "1")],
            Some(7),
        ),
        (vec![("Fitbit-Rate-Limit-Reset", "1200")], Some(1200)),
        (vec![], None),
    ] {
        fake.data()
            .faults
            .push(("profile.json".into(), throttled(&headers)));
        let e = source
            .pull(&Cursor::start(), 10)
            .await
            .expect_err("throttled");
        assert!(matches!(e, SourceError::Unavailable { .. }), "{e:?}");
        assert!(e.is_retryable());
        assert_eq!(
            e.retry_after(),
            wait.map(Duration::from_secs),
            "{headers:?}"
        );
        assert!(e.to_string().contains("429"), "{e}");
    }
}

#[tokio::test]
async fn a_used_up_quota_sends_no_request_and_says_how_long_to_wait() {
    let mut data = synthetic();
    data.headers = vec![
        ("Fitbit-Rate-Limit-Limit".into(), "150".into()),
        ("Fitbit-Rate-Limit-Remaining".into(), "0".into()),
        ("Fitbit-Rate-Limit-Reset".into(), "900".into()),
    ];
    let fake = Fake::start(oauth(), data).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    // The profile is answered and uses the last request of the hour: the next request is
    // not sent.
    for _ in 0..2 {
        let e = source
            .pull(&Cursor::start(), 10)
            .await
            .expect_err("no quota");
        assert!(matches!(e, SourceError::Unavailable { .. }), "{e:?}");
        let wait = e.retry_after().expect("a wait");
        assert!(
            wait <= Duration::from_secs(900) && wait > Duration::from_secs(800),
            "{wait:?}"
        );
        assert!(e.to_string().contains("quota"), "{e}");
    }
    assert_eq!(fake.api_requests().len(), 1, "no request was sent");
}

#[tokio::test]
async fn error_answers_say_whether_to_retry_and_quote_only_fitbits_codes() {
    let fake = Fake::start(oauth(), synthetic()).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    // An error status inside HTTP 200.
    fake.data().faults.push((
        "profile.json".into(),
        MockResponse::new(200).json(
            r#"{"errors":[{"errorType":"system","message":"the server of anna@example.org is down"}],"success":false}"#,
        ),
    ));
    let e = source.pull(&Cursor::start(), 10).await.expect_err("failed");
    assert!(
        matches!(e, SourceError::Unavailable { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert!(e.to_string().contains("system"), "{e}");
    assert!(!e.to_string().contains("anna@example.org"), "{e}");
    // A request Fitbit refuses: not retried.
    fake.data().faults.push((
        "/weight/".into(),
        validation_error("Invalid date range for anna@example.org"),
    ));
    let e = source.pull(&Cursor::start(), 10).await.expect_err("failed");
    assert!(matches!(e, SourceError::BadData { .. }), "{e:?}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("validation (field endDate)"), "{e}");
    assert!(!e.to_string().contains("anna@example.org"), "{e}");
    // A body that is not JSON.
    fake.data().faults.push((
        "profile.json".into(),
        MockResponse::new(200).body("<html>maintenance</html>"),
    ));
    let e = source.pull(&Cursor::start(), 10).await.expect_err("failed");
    assert!(matches!(e, SourceError::BadData { .. }), "{e:?}");
}

#[tokio::test]
async fn a_hung_connection_ends_with_the_configured_timeout_as_a_retryable_error() {
    let fake = Fake::start(oauth(), synthetic()).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(
        fake.cloud(&since(), json!({"timeout_seconds": 0.3})),
        &store,
    );
    fake.data().faults.push((
        "profile.json".into(),
        MockResponse::new(200)
            .json(profile().to_string())
            .delay(Duration::from_secs(10)),
    ));
    let e = tokio::time::timeout(Duration::from_secs(8), source.pull(&Cursor::start(), 10))
        .await
        .expect("the pull ends before the answer would come")
        .expect_err("timed out");
    assert!(matches!(e, SourceError::Unavailable { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[tokio::test]
async fn a_scope_the_citizen_did_not_allow_skips_its_data_only() {
    let fake = Fake::start(oauth(), synthetic()).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let forbidden = || {
        MockResponse::new(403).json(
            r#"{"errors":[{"errorType":"insufficient_scope","message":"This application does not have permission to access spo2 data"}],"success":false}"#,
        )
    };
    fake.data().faults.push(("/spo2/".into(), forbidden()));
    let all = all_measurements(&pull_all(source.as_ref(), &Cursor::start(), 1000).await);
    assert!(all.iter().all(|m| m.kind != "oxygen-saturation"));
    assert!(all.iter().any(|m| m.kind == "steps"));
    // Without the profile there is no time zone: the citizen must connect again.
    fake.data()
        .faults
        .push(("profile.json".into(), forbidden()));
    let e = source.check().await.expect_err("refused");
    assert!(matches!(e, SourceError::Authorization { .. }), "{e:?}");
    assert!(e.to_string().contains("`profile`") && e.to_string().contains("citizen-name"));
}

#[tokio::test]
async fn cursors_of_others_are_refused() {
    let fake = Fake::start(oauth(), synthetic()).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    for bad in [
        r#"{"src":"ihealth","v":1}"#,
        r#"{"src":"fitbit","v":2}"#,
        r#"{"src":"fitbit","v":1,"from":{"weight":"yesterday"}}"#,
        "[]",
    ] {
        let e = source.pull(&Cursor::new(bad), 5).await.expect_err(bad);
        assert!(matches!(e, SourceError::BadCursor { .. }), "{bad}: {e:?}");
    }
    assert!(fake.api_requests().is_empty(), "nothing was asked");
}

#[tokio::test]
async fn a_day_a_tracker_synced_late_is_read_again_and_updated() {
    let fake = Fake::start(oauth(), synthetic()).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let batches = pull_all(source.as_ref(), &Cursor::start(), 1000).await;
    let done = batches.last().expect("a batch").cursor.clone();
    let yesterday = day(1).to_string();
    let yesterday_id = id(&format!("steps/{yesterday}"));
    let before = all_measurements(&batches)
        .into_iter()
        .find(|m| m.id == yesterday_id)
        .expect("yesterday's steps");
    // This morning the tracker uploads yesterday's last hours.
    let mut changed = false;
    for r in fake.data().records.get_mut("steps").expect("steps") {
        if r["dateTime"] == json!(yesterday) {
            r["value"] = json!("12345");
            changed = true;
        }
    }
    assert!(changed, "the synthetic data has yesterday");
    let update = source.pull(&done, 1000).await.expect("pulled");
    let after: Vec<_> = update
        .measurements
        .iter()
        .filter(|m| m.id == yesterday_id)
        .collect();
    assert_eq!(after.len(), 1, "{:?}", update.measurements);
    assert_eq!(quantity(after[0]).0, "12345");
    assert_ne!(quantity(&before).0, "12345");
    assert_eq!(
        update.measurements.len(),
        1,
        "only what changed comes again"
    );
    // A day that is over is final.
    assert_eq!(after[0].status, Status::Final);
    let again = source.pull(&update.cursor, 1000).await.expect("pulled");
    assert!(again.measurements.is_empty() && again.exhausted);
}
