//! The Nightscout connector against a mock Nightscout site: the real entries of
//! `$HEALTHANALYZER_FIXTURES/nightscout-cgm-remote-monitor/example.json` served as the API v1
//! serves them (newest first, `count` at a time), synthetic entries and treatments for paging
//! and faults, API v1 and v3.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthanalyzer_model::Measurement;
use healthanalyzer_source::testkit::mock::{MockResponse, MockServer, RecordedRequest};
use healthanalyzer_source::testkit::{pull_all, run_all};
use healthanalyzer_source::{Batch, Cursor, Error, Source};
use healthanalyzer_source_cloud::{CloudSource, Settings, Vendor};
use serde_json::{Value as Json, json};

const SUBJECT: &str = "urn:oid:1.2.208.176.1.2|0101701234";
const SECRET: &str = "correct-horse-battery-staple";
const TOKEN: &str = "readable-6d7a1f0b2c3e4d5f";

/// The fixture's entries, or `None` (with the notice) when the fixtures are not there.
fn fixture(test: &str) -> Option<Vec<Json>> {
    let Some(root) = std::env::var_os("HEALTHANALYZER_FIXTURES") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: HEALTHANALYZER_FIXTURES is not set (.ci/run sets it to ../shared/fixtures)"
        );
        return None;
    };
    let path = PathBuf::from(root).join("nightscout-cgm-remote-monitor/example.json");
    let text = std::fs::read_to_string(&path).expect("the Nightscout fixture");
    Some(serde_json::from_str(&text).expect("a JSON array"))
}

/// A mock Nightscout site.
#[derive(Default)]
struct Site {
    entries: Vec<Json>,
    treatments: Vec<Json>,
    /// The API_SECRET it accepts (as its SHA-1 in `api-secret`).
    secret: Option<String>,
    /// The access token it accepts (`?token=` on v1, exchanged for a JWT for v3).
    token: Option<String>,
    /// JWTs of an older generation are void (the site restarted).
    generation: u64,
    exchanges: usize,
    /// Answers given to the next data requests instead of the data.
    faults: VecDeque<MockResponse>,
}

type Shared = Arc<Mutex<Site>>;

fn sha1(text: &str) -> String {
    sha1_smol::Sha1::from(text).hexdigest()
}

fn unauthorized() -> MockResponse {
    MockResponse::new(401)
        .json(r#"{"status":401,"message":"Unauthorized","description":"Invalid/Missing"}"#)
}

fn int(r: &RecordedRequest, name: &str) -> Option<i64> {
    r.query_param(name).and_then(|v| v.parse().ok())
}

fn date(e: &Json) -> i64 {
    e["date"].as_i64().unwrap_or_default()
}

fn glucose(t: &Json) -> f64 {
    match &t["glucose"] {
        Json::Number(n) => n.as_f64().unwrap_or_default(),
        Json::String(s) => s.parse().unwrap_or_default(),
        _ => 0.0,
    }
}

fn created(t: &Json) -> String {
    t["created_at"].as_str().unwrap_or_default().to_string()
}

/// The v3 form of a document: `identifier` (the `_id` when it has none), no `_id`.
fn v3(doc: &Json) -> Json {
    let mut doc = doc.clone();
    if let Some(o) = doc.as_object_mut() {
        let id = o.remove("_id");
        if !o.contains_key("identifier")
            && let Some(id) = id
        {
            o.insert("identifier".into(), id);
        }
    }
    doc
}

fn respond(site: &Shared, r: &RecordedRequest) -> MockResponse {
    let mut s = site.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(token) = r.path.strip_prefix("/api/v2/authorization/request/") {
        if s.token.as_deref() != Some(token) {
            return unauthorized();
        }
        s.exchanges += 1;
        let exp = jiff::Timestamp::now().as_second() + 8 * 3600;
        return MockResponse::new(200).json(
            json!({"token": format!("jwt-{}", s.generation), "sub": "reader",
                   "permissionGroups": [["*:*:read"]], "iat": exp - 8 * 3600, "exp": exp})
            .to_string(),
        );
    }
    let v3_path = r.path.starts_with("/api/v3/");
    let authorised = if v3_path {
        let jwt = format!("Bearer jwt-{}", s.generation);
        s.token.is_none() || r.header("authorization") == Some(jwt.as_str())
    } else {
        let by_secret = s
            .secret
            .as_deref()
            .is_some_and(|x| r.header("api-secret") == Some(sha1(x).as_str()));
        let by_token = s.token.is_some() && r.query_param("token") == s.token;
        (s.secret.is_none() && s.token.is_none()) || by_secret || by_token
    };
    if !authorised {
        return if v3_path {
            MockResponse::new(401)
                .json(r#"{"status":401,"message":"Missing or bad access token or JWT"}"#)
        } else {
            unauthorized()
        };
    }
    if let Some(fault) = s.faults.pop_front() {
        return fault;
    }
    match r.path.as_str() {
        "/api/v1/entries/sgv.json" => {
            let mut list: Vec<&Json> = s
                .entries
                .iter()
                .filter(|e| e["type"].as_str().is_none_or(|t| t == "sgv"))
                .filter(|e| int(r, "find[date][$gte]").is_none_or(|x| date(e) >= x))
                .filter(|e| int(r, "find[date][$gt]").is_none_or(|x| date(e) > x))
                .filter(|e| int(r, "find[date][$lte]").is_none_or(|x| date(e) <= x))
                .filter(|e| int(r, "find[date][$lt]").is_none_or(|x| date(e) < x))
                .collect();
            // Newest first, as Nightscout sorts them; `count` defaults to 10.
            list.sort_by_key(|e| std::cmp::Reverse(date(e)));
            list.truncate(int(r, "count").unwrap_or(10) as usize);
            MockResponse::new(200).json(serde_json::to_string(&list).expect("json"))
        }
        "/api/v1/treatments.json" => {
            let from = r.query_param("find[created_at][$gte]");
            let to = r.query_param("find[created_at][$lte]");
            let more = int(r, "find[glucose][$gt]");
            let mut list: Vec<&Json> = s
                .treatments
                .iter()
                .filter(|t| from.as_ref().is_none_or(|x| created(t) >= *x))
                .filter(|t| to.as_ref().is_none_or(|x| created(t) <= *x))
                .filter(|t| more.is_none_or(|x| glucose(t) > x as f64))
                .collect();
            list.sort_by_key(|t| std::cmp::Reverse(created(t)));
            if let Some(n) = int(r, "count") {
                list.truncate(n as usize);
            }
            MockResponse::new(200).json(serde_json::to_string(&list).expect("json"))
        }
        "/api/v3/entries" => {
            let from = int(r, "date$gte");
            let to = int(r, "date$lte");
            let mut list: Vec<Json> = s
                .entries
                .iter()
                .filter(|e| {
                    r.query_param("type")
                        .is_none_or(|t| e["type"].as_str() == Some(t.as_str()))
                })
                .filter(|e| from.is_none_or(|x| date(e) >= x))
                .filter(|e| to.is_none_or(|x| date(e) <= x))
                .map(v3)
                .collect();
            list.sort_by(|a, b| {
                (date(a), a["identifier"].as_str()).cmp(&(date(b), b["identifier"].as_str()))
            });
            list.truncate(int(r, "limit").unwrap_or(1000) as usize);
            MockResponse::new(200).json(json!({"status": 200, "result": list}).to_string())
        }
        "/api/v3/treatments" => {
            let from = r.query_param("created_at$gte");
            let to = r.query_param("created_at$lte");
            let more = int(r, "glucose$gt");
            let mut list: Vec<Json> = s
                .treatments
                .iter()
                .filter(|t| from.as_ref().is_none_or(|x| created(t) >= *x))
                .filter(|t| to.as_ref().is_none_or(|x| created(t) <= *x))
                .filter(|t| more.is_none_or(|x| glucose(t) > x as f64))
                .map(v3)
                .collect();
            list.sort_by(|a, b| {
                (created(a), a["identifier"].as_str()).cmp(&(created(b), b["identifier"].as_str()))
            });
            list.truncate(int(r, "limit").unwrap_or(1000) as usize);
            MockResponse::new(200).json(json!({"status": 200, "result": list}).to_string())
        }
        _ => MockResponse::new(404).json(r#"{"status":404,"message":"Not found"}"#),
    }
}

async fn start(site: Site) -> (MockServer, Shared) {
    let shared: Shared = Arc::new(Mutex::new(site));
    let responder = shared.clone();
    let server = MockServer::start(move |r: &RecordedRequest| respond(&responder, r))
        .await
        .expect("mock server");
    (server, shared)
}

/// A source `ns/anna` reading the mock, with `citizen` merged into the citizen's table and
/// `extra` into the source's.
fn source(server: &MockServer, citizen: Json, extra: Json) -> Arc<dyn Source> {
    cloud(server, citizen, extra)
        .sources()
        .expect("sources")
        .remove(0)
}

fn cloud(server: &MockServer, citizen: Json, extra: Json) -> CloudSource {
    let mut c = json!({"name": "anna", "subject": SUBJECT, "base_url": server.uri()});
    merge(&mut c, citizen);
    let mut s = json!({"since": "2014-07-01", "timeout_seconds": 5, "citizen": [c]});
    merge(&mut s, extra);
    let settings: Settings = serde_json::from_value(s).expect("settings");
    CloudSource::new(
        Vendor::Nightscout,
        "ns",
        settings,
        std::path::Path::new("."),
    )
    .expect("a cloud source")
}

fn merge(into: &mut Json, from: Json) {
    if let (Some(a), Json::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
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

/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200_000;
const FIVE_MINUTES: i64 = 300_000;

/// `n` CGM entries every 5 minutes from [`T0`] (on the wall clock of UTC+1), with a sensor
/// code every 50th, a bad value at 77, and two entries sharing the millisecond of each tenth.
fn synthetic_entries(n: usize) -> Vec<Json> {
    let mut out = Vec::new();
    for i in 0..n {
        let at = T0 + i as i64 * FIVE_MINUTES;
        let sgv: Json = match i {
            77 => json!("n/a"),
            i if i % 50 == 49 => json!(5),
            i => json!(90 + (i % 60)),
        };
        let local = jiff::Timestamp::from_millisecond(at)
            .expect("ts")
            .strftime("%Y-%m-%dT%H:%M:%S.000Z")
            .to_string();
        out.push(
            json!({"_id": format!("{:024x}", i * 2), "type": "sgv", "sgv": sgv,
            "date": at, "dateString": local, "utcOffset": 60, "device": "xDrip-DexcomG6",
            "direction": "Flat"}),
        );
        if i % 10 == 3 {
            out.push(
                json!({"_id": format!("{:024x}", i * 2 + 1), "type": "sgv", "sgv": 150,
                "date": at, "dateString": local, "utcOffset": 60, "device": "xDrip-DexcomG6"}),
            );
        }
    }
    out
}

/// Finger sticks every 6 hours (mg/dl and mmol in turn), with temporary basals between them.
fn synthetic_treatments(n: usize) -> Vec<Json> {
    let mut out = Vec::new();
    for i in 0..n {
        let at = T0 + i as i64 * 6 * 3_600_000;
        let iso = jiff::Timestamp::from_millisecond(at)
            .expect("ts")
            .strftime("%Y-%m-%dT%H:%M:%S.000Z")
            .to_string();
        let (g, units) = if i % 2 == 0 {
            (json!(110 + i), "mg/dl")
        } else {
            (json!(6.5), "mmol")
        };
        out.push(
            json!({"_id": format!("t{i:04}"), "eventType": "BG Check", "glucose": g,
            "glucoseType": "Finger", "units": units, "created_at": iso, "utcOffset": 60,
            "enteredBy": "someone"}),
        );
        out.push(
            json!({"_id": format!("b{i:04}"), "eventType": "Temp Basal", "rate": 0.5,
            "duration": 30, "created_at": iso, "utcOffset": 60}),
        );
    }
    out
}

fn synthetic(secret: bool) -> Site {
    Site {
        entries: synthetic_entries(300),
        treatments: synthetic_treatments(12),
        secret: secret.then(|| SECRET.to_string()),
        ..Site::default()
    }
}

#[tokio::test]
async fn the_fixture_entries_map_to_glucose_with_their_offsets_and_the_sensor_codes_skipped() {
    let Some(entries) = fixture(
        "the_fixture_entries_map_to_glucose_with_their_offsets_and_the_sensor_codes_skipped",
    ) else {
        return;
    };
    let (server, _site) = start(Site {
        entries: entries.clone(),
        secret: Some(SECRET.into()),
        ..Site::default()
    })
    .await;
    let ns = source(&server, json!({"api_secret": SECRET}), json!({}));
    ns.check().await.expect("the secret is accepted");
    let batches = pull_all(ns.as_ref(), &Cursor::start(), 1000).await;
    let got = all(&batches);
    let rejected: usize = batches.iter().map(|b| b.rejected.len()).sum();
    // 30 entries, of which 12 are the sensor code 5: skipped, not rejected.
    let readings: Vec<&Json> = entries.iter().filter(|e| e["sgv"] != "5").collect();
    assert_eq!(got.len(), 18);
    assert_eq!(readings.len(), 18);
    assert_eq!(rejected, 0, "{batches:?}");
    assert!(got.iter().all(|m| m.kind == "blood-glucose"));
    assert!(got.iter().all(|m| !value(m).starts_with("5 ")));
    assert!(
        got.iter()
            .all(|m| m.device.as_ref().and_then(|d| d.display.as_deref()) == Some("dexcom"))
    );
    assert!(got.iter().all(|m| m.subject.value() == "0101701234"));
    // Oldest first, each the value, time and offset of its entry.
    let mut expected = readings.clone();
    expected.sort_by_key(|e| date(e));
    for (m, e) in got.iter().zip(&expected) {
        assert_eq!(
            value(m),
            format!("{} mg/dL", e["sgv"].as_str().expect("sgv"))
        );
        assert_eq!(m.effective.instant().as_millisecond(), date(e));
        assert_eq!(m.provenance.record_id, format!("blood-glucose@{}", date(e)));
        assert_eq!(m.provenance.source_id, "ns/anna");
    }
    assert_eq!(
        got[0].effective.start().to_string(),
        "2014-07-19T02:34:15-07:00"
    );
    assert_eq!(value(got[0]), "169 mg/dL");
    let last = got.last().expect("a reading");
    assert_eq!(
        last.effective.start().to_string(),
        "2014-07-19T03:59:15-07:00"
    );
    assert_eq!(value(last), "178 mg/dL");
    // The export-file reader maps the same entries to the same measurement ids.
    let path = PathBuf::from(std::env::var_os("HEALTHANALYZER_FIXTURES").expect("set"))
        .join("nightscout-cgm-remote-monitor/example.json");
    let options = healthanalyzer_source_files::FileOptions::new(SUBJECT.parse().expect("id"));
    let file = healthanalyzer_source_files::FileSource::detect("ns/anna", &path, options)
        .expect("the fixture is a Nightscout file");
    let from_file = pull_all(&file, &Cursor::start(), 1000).await;
    let mut file_ids: Vec<_> = all(&from_file).iter().map(|m| m.id).collect();
    let mut live_ids: Vec<_> = got.iter().map(|m| m.id).collect();
    file_ids.sort();
    live_ids.sort();
    assert_eq!(file_ids, live_ids);
    // Asked as the API v1 is: by date, `count` at a time, with the secret's SHA-1.
    let requests = server.requests();
    let entries_asked: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/api/v1/entries/sgv.json")
        .collect();
    assert!(entries_asked.len() >= 2);
    for r in &entries_asked {
        assert_eq!(r.header("api-secret"), Some(sha1(SECRET).as_str()));
        assert!(r.query_param("token").is_none());
    }
    assert!(
        entries_asked
            .iter()
            .skip(1)
            .all(|r| r.query_param("find[date][$gte]").is_some() && int(r, "count").is_some())
    );
}

#[tokio::test]
async fn the_api_v1_connector_keeps_the_source_contract() {
    let (server, _site) = start(synthetic(true)).await;
    let a = source(
        &server,
        json!({"api_secret": SECRET}),
        json!({"since": "2023-12-31"}),
    );
    let b = source(
        &server,
        json!({"api_secret": SECRET}),
        json!({"since": "2023-12-31"}),
    );
    run_all(a.as_ref(), b.as_ref(), 7).await;
}

#[tokio::test]
async fn the_api_v3_connector_keeps_the_source_contract() {
    let mut site = synthetic(false);
    site.token = Some(TOKEN.into());
    let (server, shared) = start(site).await;
    let extra = json!({"since": "2023-12-31", "api_version": 3});
    let a = source(&server, json!({"token": TOKEN}), extra.clone());
    let b = source(&server, json!({"token": TOKEN}), extra);
    run_all(a.as_ref(), b.as_ref(), 7).await;
    // One JWT per source, used as a bearer token; the access token never in a v3 request.
    assert_eq!(shared.lock().expect("site").exchanges, 2);
    for r in server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v3/"))
    {
        assert_eq!(r.header("authorization"), Some("Bearer jwt-0"));
        assert!(!r.query.as_deref().unwrap_or("").contains(TOKEN));
    }
}

#[tokio::test]
async fn entries_and_treatments_are_read_in_order_with_codes_skipped_and_bad_values_reported() {
    for version in [1, 3] {
        let mut site = synthetic(false);
        site.token = Some(TOKEN.into());
        let (server, _site) = start(site).await;
        let ns = source(
            &server,
            json!({"token": TOKEN}),
            json!({"since": "2023-12-31", "api_version": version}),
        );
        let batches = pull_all(ns.as_ref(), &Cursor::start(), 1000).await;
        let got = all(&batches);
        let rejected: Vec<_> = batches.iter().flat_map(|b| &b.rejected).collect();
        // 300 entries and 30 sharing a millisecond, 6 sensor codes, 1 bad value; 12 finger
        // sticks (the temporary basals have no glucose).
        let entries: Vec<_> = got.iter().filter(|m| m.kind == "blood-glucose").collect();
        let sticks: Vec<_> = got
            .iter()
            .filter(|m| m.kind == "capillary-glucose")
            .collect();
        assert_eq!(entries.len(), 330 - 6 - 1, "API v{version}");
        assert_eq!(sticks.len(), 12, "API v{version}");
        assert_eq!(rejected.len(), 1, "API v{version}: {rejected:?}");
        assert!(rejected[0].location.contains(&format!("{:024x}", 77 * 2)));
        assert!(rejected[0].reason.contains("glucose value"), "{rejected:?}");
        // Entries first, each oldest first, on the wall clock of their utcOffset.
        assert!(
            got[..entries.len()]
                .iter()
                .all(|m| m.kind == "blood-glucose")
        );
        let times: Vec<_> = entries.iter().map(|m| m.effective.instant()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(
            entries[0].effective.start().to_string(),
            "2024-01-01T01:00:00+01:00"
        );
        assert_eq!(entries[0].provenance.record_id, format!("{:024x}", 0));
        assert_eq!(
            entries[0]
                .device
                .as_ref()
                .and_then(|d| d.display.as_deref()),
            Some("xDrip-DexcomG6")
        );
        // Finger sticks in mg/dl and mmol, normalised to the catalog's mg/dL.
        assert_eq!(sticks[0].provenance.record_id, "treatment/t0000");
        assert_eq!(value(sticks[0]), "110 mg/dL");
        assert_eq!(
            sticks[0].effective.start().to_string(),
            "2024-01-01T01:00:00+01:00"
        );
        let mmol = sticks[1].value.as_quantity().expect("a quantity");
        assert_eq!(mmol.unit.as_str(), "mg/dL");
        assert!(
            (mmol.value - rust_decimal(117)).abs() < rust_decimal(1),
            "{mmol}"
        );
    }
}

fn rust_decimal(n: i64) -> healthanalyzer_model::Decimal {
    healthanalyzer_model::Decimal::from(n)
}

#[tokio::test]
async fn long_ranges_are_paged_by_windows_that_halve_while_full_and_batches_keep_the_limit() {
    let (server, _site) = start(Site {
        entries: synthetic_entries(3000),
        ..Site::default()
    })
    .await;
    let ns = source(&server, json!({}), json!({"since": "2023-12-31"}));
    let batches = pull_all(ns.as_ref(), &Cursor::start(), 1000).await;
    assert!(batches.len() >= 3);
    let got = all(&batches);
    assert_eq!(got.len(), 3300 - 60 - 1);
    let mut ids: Vec<_> = got.iter().map(|m| m.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "no reading twice");
    let requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/entries/sgv.json")
        .collect();
    assert!(
        requests
            .iter()
            .all(|r| int(r, "count").is_some_and(|c| c <= 1000))
    );
    // Windows that came back full were asked again from the same instant, narrower, with
    // an upper bound.
    assert!(requests.windows(2).any(|w| {
        w[0].query_param("find[date][$gte]") == w[1].query_param("find[date][$gte]")
            && int(&w[1], "find[date][$lte]")
                .is_some_and(|hi| int(&w[0], "find[date][$lte]").is_none_or(|before| hi < before))
    }));
    assert!(
        requests
            .iter()
            .any(|r| r.query_param("find[date][$lte]").is_some())
    );
    // Small batches split the site's pages through the cursor.
    let small = pull_all(ns.as_ref(), &Cursor::start(), 40).await;
    assert!(small.iter().all(|b| b.measurements.len() <= 40));
    let small_ids: Vec<_> = all(&small).iter().map(|m| m.id).collect();
    assert_eq!(small_ids, got.iter().map(|m| m.id).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_exhausted_cursor_gives_nothing_until_a_new_reading_arrives() {
    let (server, site) = start(synthetic(true)).await;
    let ns = source(
        &server,
        json!({"api_secret": SECRET}),
        json!({"since": "2023-12-31"}),
    );
    let batches = pull_all(ns.as_ref(), &Cursor::start(), 500).await;
    let end = batches.last().expect("a batch").cursor.clone();
    let again = ns.pull(&end, 500).await.expect("pull");
    assert!(again.exhausted && again.measurements.is_empty());
    assert_eq!(again.cursor, end);
    let now = jiff::Timestamp::now().as_millisecond();
    {
        let mut s = site.lock().expect("site");
        s.entries
            .push(json!({"_id": "new", "type": "sgv", "sgv": 101,
            "date": now - 120_000, "utcOffset": 60}));
        // A device clock a year ahead: not read until the clock gets there.
        s.entries
            .push(json!({"_id": "ahead", "type": "sgv", "sgv": 102,
            "date": now + 365 * 86_400_000, "utcOffset": 60}));
    }
    let fresh = ns.pull(&end, 500).await.expect("pull");
    assert_eq!(fresh.measurements.len(), 1);
    assert_eq!(fresh.measurements[0].provenance.record_id, "new");
    assert!(fresh.exhausted);
    let after = ns.pull(&fresh.cursor, 500).await.expect("pull");
    assert!(after.exhausted && after.measurements.is_empty());
    // So the readings after the one that is ahead are still read.
    site.lock()
        .expect("site")
        .entries
        .push(json!({"_id": "next", "type": "sgv",
        "sgv": 103, "date": now - 60_000, "utcOffset": 60}));
    let next = ns.pull(&after.cursor, 500).await.expect("pull");
    let ids: Vec<_> = next
        .measurements
        .iter()
        .map(|m| m.provenance.record_id.as_str())
        .collect();
    assert_eq!(ids, ["next"]);
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_naming_the_citizen_and_the_setting() {
    let (server, _site) = start(synthetic(true)).await;
    let wrong = "not-the-secret-at-all";
    let ns = source(&server, json!({"api_secret": wrong}), json!({}));
    for e in [
        ns.check().await.expect_err("refused"),
        ns.pull(&Cursor::start(), 10).await.expect_err("refused"),
    ] {
        assert!(matches!(e, Error::Auth { .. }), "{e:?}");
        assert!(!e.is_retryable());
        let msg = e.to_string();
        assert!(
            msg.contains("citizen anna") && msg.contains("source ns"),
            "{msg}"
        );
        assert!(msg.contains("`api_secret`"), "{msg}");
        assert!(!msg.contains(wrong) && !msg.contains(&sha1(wrong)), "{msg}");
        assert!(!format!("{e:?}").contains(&sha1(wrong)));
    }
    let shown = format!("{ns:?}");
    assert!(
        !shown.contains(wrong) && !shown.contains(&sha1(wrong)),
        "{shown}"
    );
    assert!(
        !shown.contains(&server.uri()) && !shown.contains("0101701234"),
        "{shown}"
    );
    // A token the site does not know names the token, not the secret.
    let mut site = synthetic(false);
    site.token = Some(TOKEN.into());
    let (server, _site) = start(site).await;
    for version in [1, 3] {
        let ns = source(
            &server,
            json!({"token": "stranger-0000"}),
            json!({"api_version": version}),
        );
        let e = ns.pull(&Cursor::start(), 10).await.expect_err("refused");
        assert!(matches!(e, Error::Auth { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("`token`") && msg.contains("citizen anna"),
            "{msg}"
        );
        assert!(!msg.contains("stranger-0000"), "{msg}");
    }
}

#[tokio::test]
async fn a_jwt_the_site_no_longer_knows_is_renewed_once() {
    let mut site = synthetic(false);
    site.token = Some(TOKEN.into());
    let (server, shared) = start(site).await;
    let ns = source(
        &server,
        json!({"token": TOKEN}),
        json!({"since": "2023-12-31", "api_version": 3}),
    );
    let first = ns.pull(&Cursor::start(), 20).await.expect("pull");
    assert_eq!(shared.lock().expect("site").exchanges, 1);
    // The site restarts: its JWTs are void.
    shared.lock().expect("site").generation += 1;
    let second = ns
        .pull(&first.cursor, 20)
        .await
        .expect("pull after a restart");
    assert_eq!(second.measurements.len(), 20);
    assert_eq!(shared.lock().expect("site").exchanges, 2);
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.header("authorization") == Some("Bearer jwt-1"))
    );
}

#[tokio::test]
async fn too_many_requests_is_retryable_with_and_without_retry_after() {
    let (server, site) = start(synthetic(true)).await;
    let ns = source(
        &server,
        json!({"api_secret": SECRET}),
        json!({"since": "2023-12-31"}),
    );
    site.lock().expect("site").faults.extend([
        MockResponse::new(429).header("Retry-After", "7"),
        MockResponse::new(429),
    ]);
    let e = ns.pull(&Cursor::start(), 10).await.expect_err("429");
    assert!(
        matches!(e, Error::Unavailable { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    let e = ns.pull(&Cursor::start(), 10).await.expect_err("429");
    assert!(
        matches!(e, Error::Unavailable { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(e.retry_after(), None);
    // And then the same pull goes through.
    let batch = ns.pull(&Cursor::start(), 10).await.expect("pull");
    assert_eq!(batch.measurements.len(), 10);
}

#[tokio::test]
async fn a_status_in_the_body_of_a_200_is_an_error() {
    let mut site = synthetic(false);
    site.token = Some(TOKEN.into());
    let (server, shared) = start(site).await;
    let ns = source(
        &server,
        json!({"token": TOKEN}),
        json!({"since": "2023-12-31", "api_version": 3}),
    );
    shared.lock().expect("site").faults.extend([
        MockResponse::new(200).json(r#"{"status":500,"message":"Database error"}"#),
        MockResponse::new(200)
            .json(r#"{"status":403,"message":"Missing permission api:entries:read"}"#),
        MockResponse::new(200).json(r#"{"status":200,"result":{"not":"a list"}}"#),
    ]);
    let e = ns
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("500 in the body");
    assert!(
        matches!(e, Error::Unavailable { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert!(e.to_string().contains("in the body"), "{e}");
    let e = ns
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("403 in the body");
    assert!(matches!(e, Error::Auth { .. }), "{e:?}");
    assert!(e.to_string().contains("`readable` role"), "{e}");
    let e = ns.pull(&Cursor::start(), 10).await.expect_err("not a list");
    assert!(
        matches!(e, Error::BadData { .. }) && !e.is_retryable(),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_hung_site_times_out_as_a_retryable_error() {
    let (server, site) = start(synthetic(true)).await;
    let ns = source(
        &server,
        json!({"api_secret": SECRET}),
        json!({"timeout_seconds": 0.5}),
    );
    site.lock().expect("site").faults.push_back(
        MockResponse::new(200)
            .json("[]")
            .delay(Duration::from_secs(5)),
    );
    let e = ns.pull(&Cursor::start(), 10).await.expect_err("timed out");
    assert!(
        matches!(e, Error::Unavailable { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[tokio::test]
async fn cursors_of_other_sources_and_versions_are_refused() {
    let (server, _site) = start(synthetic(true)).await;
    let v1 = source(&server, json!({"api_secret": SECRET}), json!({}));
    let batch = v1.pull(&Cursor::start(), 5).await.expect("pull");
    let mut site = synthetic(false);
    site.token = Some(TOKEN.into());
    let (server3, _site) = start(site).await;
    let v3 = source(&server3, json!({"token": TOKEN}), json!({"api_version": 3}));
    for (bad, src) in [
        (batch.cursor.clone(), &v3),
        (Cursor::new(r#"{"v":1,"dexcom":true}"#), &v1),
        (Cursor::new("2024-01-01"), &v1),
    ] {
        let e = src.pull(&bad, 5).await.expect_err("refused");
        assert!(matches!(e, Error::BadCursor { .. }), "{e:?}");
    }
}

#[tokio::test]
async fn the_configuration_is_checked_before_anything_is_asked() {
    let (server, _site) = start(Site::default()).await;
    let msg = |citizen: Json, extra: Json| {
        let mut c = json!({"name": "anna", "subject": SUBJECT, "base_url": server.uri()});
        merge(&mut c, citizen);
        let mut s = json!({"citizen": [c]});
        merge(&mut s, extra);
        let settings: Settings = serde_json::from_value(s).expect("settings");
        CloudSource::new(
            Vendor::Nightscout,
            "ns",
            settings,
            std::path::Path::new("."),
        )
        .and_then(|c| c.sources())
        .expect_err("refused")
        .to_string()
    };
    let m = msg(json!({"api_secret": SECRET}), json!({"api_version": 3}));
    assert!(m.contains("`token`") && m.contains("citizen anna"), "{m}");
    assert!(!m.contains(SECRET), "{m}");
    let m = msg(json!({"api_secret": SECRET, "token": TOKEN}), json!({}));
    assert!(m.contains("not both"), "{m}");
    let m = msg(json!({}), json!({"api_version": 2}));
    assert!(m.contains("`api_version`"), "{m}");
    // Nightscout is not authorised with `connect`.
    let c = cloud(&server, json!({"api_secret": SECRET}), json!({}));
    let e = c
        .connect("anna", Duration::from_secs(1), |_| {})
        .await
        .expect_err("no OAuth2");
    assert!(e.to_string().contains("`api_secret` or `token`"), "{e}");
    // Building asks nothing of the site.
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_dense_burst_is_narrowed_down_to_across_pulls() {
    // 3,000 records a millisecond apart (an uploader's replay) at the start of the range: the
    // first window of two days must be halved more often than one pull asks.
    let from: i64 = 1_420_070_400_000; // 2015-01-01, the `since`
    let burst = (0..3000).map(|i| from + i);
    let after = (1..=20).map(|i| from + i * 86_400_000);
    let entries: Vec<Json> = burst
        .chain(after)
        .enumerate()
        .map(|(i, at)| json!({"_id": format!("{i:024x}"), "type": "sgv", "sgv": 100, "date": at}))
        .collect();
    let (server, _site) = start(Site {
        entries,
        ..Site::default()
    })
    .await;
    let ns = source(&server, json!({}), json!({"since": "2015-01-01"}));
    let batches = pull_all(ns.as_ref(), &Cursor::start(), 1000).await;
    assert_eq!(all(&batches).len(), 3000 + 20);
}
