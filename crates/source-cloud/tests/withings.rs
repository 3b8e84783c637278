//! The Withings connector against a mock Withings: the OAuth2 endpoints (`OAuthMock`, the
//! Withings dialect) and `POST /measure` (`getmeas`) on one mock server, answering with the
//! real response bodies of the fixtures and with synthetic pages.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthanalyzer_model::{Identifier, Measurement, MeasurementId};
use healthanalyzer_source::testkit::mock::{MockResponse, MockServer, RecordedRequest};
use healthanalyzer_source::testkit::{self, pull_all};
use healthanalyzer_source::{Batch, Cursor, Error as SourceError, Source, http};
use healthanalyzer_source_cloud::testkit::{CLIENT_ID, CLIENT_SECRET, OAuthMock};
use healthanalyzer_source_cloud::{
    CloudSource, Dialect, Grant, GrantKey, MemoryTokenStore, Settings, TokenStore, Vendor,
};
use serde_json::{Value as Json, json};

const AUTHORIZE: &str = "/oauth2_user/authorize2";
const TOKEN: &str = "/v2/oauth2";
const SUBJECT: &str = "urn:healthanalyzer:test-citizen|C-4711";
/// 2015-01-01T00:00:00Z, the `since` of every test.
const SINCE: i64 = 1_420_070_400;
/// Where the citizen's measurements come from.
const SOURCE: &str = "withings/anna";

// ---------------------------------------------------------------------------------------
// Helpers

/// A fixture of `openmhealth-shimmer-api-samples/withings`, or `None` (and a notice) when
/// `HEALTHANALYZER_FIXTURES` is not set.
fn fixture(test: &str, name: &str) -> Option<String> {
    let Some(root) = std::env::var_os("HEALTHANALYZER_FIXTURES") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: HEALTHANALYZER_FIXTURES is not set (.ci/run sets it to ../shared/fixtures)"
        );
        return None;
    };
    let path = PathBuf::from(root)
        .join("openmhealth-shimmer-api-samples/withings")
        .join(name);
    Some(
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the fixture {} cannot be read: {e}", path.display())),
    )
}

/// A request's form fields.
fn form(r: &RecordedRequest) -> HashMap<String, String> {
    form_pairs(&r.body_text())
}

fn form_pairs(text: &str) -> HashMap<String, String> {
    form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

fn measure_requests(server: &MockServer) -> Vec<RecordedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/measure")
        .collect()
}

fn bearer(r: &RecordedRequest) -> String {
    r.header("authorization").unwrap_or_default().to_string()
}

/// A mock Withings: the OAuth2 endpoints, and `/measure` answered by `data` for requests
/// whose access token the OAuth2 mock accepts (others get Withings' status 401).
async fn withings(
    oauth: &OAuthMock,
    data: impl Fn(&RecordedRequest) -> MockResponse + Send + Sync + 'static,
) -> MockServer {
    let o = oauth.clone();
    MockServer::start(move |r: &RecordedRequest| {
        if let Some(answer) = o.respond(r) {
            return answer;
        }
        if r.path != "/measure" || r.method != "POST" {
            return MockResponse::new(404).body("not a Withings route");
        }
        match o.account(r) {
            Ok(_) => data(r),
            Err(refused) => refused,
        }
    })
    .await
    .expect("a mock server")
}

fn oauth() -> OAuthMock {
    OAuthMock::new(Dialect::Withings, AUTHORIZE, TOKEN)
}

/// The cloud source `withings` with the citizen `anna`, pointed at `server`, with `extra`
/// settings.
fn cloud(server: &MockServer, extra: Json) -> CloudSource {
    let mut settings = json!({
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "base_url": server.uri(),
        "authorize_url": server.url(AUTHORIZE),
        "token_url": server.url(TOKEN),
        "since": "2015-01-01",
        "citizen": [{ "name": "anna", "subject": SUBJECT }],
    });
    if let (Json::Object(s), Json::Object(e)) = (&mut settings, extra) {
        s.extend(e);
    }
    let settings: Settings = serde_json::from_value(settings).expect("settings");
    CloudSource::new(
        Vendor::Withings,
        "withings",
        settings,
        &std::env::temp_dir(),
    )
    .expect("a cloud source")
}

fn key() -> GrantKey {
    GrantKey::new("withings", "anna")
}

/// A token store holding a grant of `account` for anna.
fn store_with(oauth: &OAuthMock) -> (Arc<MemoryTokenStore>, Grant) {
    let store = Arc::new(MemoryTokenStore::new());
    let grant = oauth.issue("account");
    store.save(&key(), &grant).expect("saved");
    (store, grant)
}

/// Anna's source, with grants in `store`.
fn anna(server: &MockServer, store: &Arc<MemoryTokenStore>, extra: Json) -> Arc<dyn Source> {
    let cloud = cloud(server, extra).with_token_store(store.clone() as Arc<dyn TokenStore>);
    let mut sources = cloud.sources().expect("sources");
    assert_eq!(sources.len(), 1);
    sources.remove(0)
}

fn ok_body(body: Json) -> MockResponse {
    MockResponse::new(200).json(json!({ "status": 0, "body": body }).to_string())
}

fn status_body(status: i64) -> MockResponse {
    MockResponse::new(200)
        .json(json!({ "status": status, "error": "Some error text", "body": {} }).to_string())
}

/// A synthetic measure group.
fn group(grpid: i64, date: i64, measures: &[(i64, i64, i64)]) -> Json {
    json!({
        "grpid": grpid, "attrib": 0, "category": 1, "date": date, "created": date + 30,
        "modified": date + 60, "deviceid": null,
        "measures": measures.iter().map(|(t, v, u)| json!({"type": t, "value": v, "unit": u})).collect::<Vec<_>>(),
    })
}

/// `n` groups from 2024-05-01, of every mapped kind: a blood pressure with pulse, a weight
/// (from a scale that names itself), an SpO2 with a temperature, a height.
fn groups(n: usize) -> Vec<Json> {
    let start = 1_714_550_400; // 2024-05-01T08:00:00Z
    (0..n)
        .map(|i| {
            let grpid = 5_000 + i as i64;
            let date = start + 3_600 * i as i64;
            match i % 4 {
                0 => group(
                    grpid,
                    date,
                    &[(10, 120 + i as i64, 0), (9, 80, 0), (11, 60 + i as i64, 0)],
                ),
                1 => {
                    let mut g = group(grpid, date, &[(1, 72_400 + i as i64, -3)]);
                    g["deviceid"] = json!(format!("scale-{i}"));
                    g["model"] = json!("Body Cardio");
                    g
                }
                2 => group(grpid, date, &[(54, 97, 0), (71, 3_680, -2)]),
                _ => group(grpid, date, &[(4, 175, -2)]),
            }
        })
        .collect()
}

/// A Withings that pages `groups` by `lastupdate` (groups modified at or after it), `page`
/// at a time, answering `updatetime` = the clock.
#[derive(Clone)]
struct Paged {
    groups: Arc<Mutex<Vec<Json>>>,
    clock: Arc<AtomicI64>,
    page: usize,
}

impl Paged {
    fn new(groups: Vec<Json>, page: usize) -> Paged {
        let latest = groups
            .iter()
            .filter_map(|g| g["modified"].as_i64())
            .max()
            .unwrap_or(SINCE);
        Paged {
            groups: Arc::new(Mutex::new(groups)),
            clock: Arc::new(AtomicI64::new(latest + 100)),
            page,
        }
    }

    fn respond(&self, r: &RecordedRequest) -> MockResponse {
        let f = form(r);
        assert_eq!(f.get("action").map(String::as_str), Some("getmeas"));
        let lastupdate: i64 = f
            .get("lastupdate")
            .and_then(|v| v.parse().ok())
            .expect("a lastupdate");
        let offset: usize = f.get("offset").map_or(0, |v| v.parse().expect("offset"));
        let category: i64 = f
            .get("category")
            .map_or(1, |v| v.parse().expect("category"));
        let all: Vec<Json> = self
            .groups
            .lock()
            .expect("groups")
            .iter()
            .filter(|g| g["modified"].as_i64().unwrap_or(0) >= lastupdate)
            .filter(|g| g["category"].as_i64() == Some(category))
            .cloned()
            .collect();
        let end = (offset + self.page).min(all.len());
        let page = all.get(offset..end).unwrap_or_default().to_vec();
        let more = end < all.len();
        let mut body = json!({
            "updatetime": self.clock.load(Ordering::SeqCst),
            "timezone": "Europe/Copenhagen",
            "more": i32::from(more),
            "measuregrps": page,
        });
        if more {
            body["offset"] = json!(end);
        }
        ok_body(body)
    }

    /// Changes group `grpid` with `change`, marking it modified now, and moves the clock on.
    fn modify(&self, grpid: i64, change: impl FnOnce(&mut Json)) {
        let now = self.clock.fetch_add(100, Ordering::SeqCst);
        let mut groups = self.groups.lock().expect("groups");
        let g = groups
            .iter_mut()
            .find(|g| g["grpid"] == json!(grpid))
            .expect("the group");
        change(g);
        g["modified"] = json!(now + 10);
    }
}

fn ids(batches: &[Batch]) -> Vec<MeasurementId> {
    batches
        .iter()
        .flat_map(|b| b.measurements.iter().map(|m| m.id))
        .collect()
}

fn all_measurements(batches: &[Batch]) -> Vec<Measurement> {
    batches
        .iter()
        .flat_map(|b| b.measurements.iter().cloned())
        .collect()
}

fn cursor_json(c: &Cursor) -> Json {
    serde_json::from_str(c.as_str()).expect("a JSON cursor")
}

// ---------------------------------------------------------------------------------------
// The fixtures' mapping

/// What a measurement is, as text: kind, value (or components), time, record id.
fn describe(m: &Measurement) -> (String, String, String, String) {
    let value = match m.value.as_quantity() {
        Some(q) => q.to_string(),
        None => format!(
            "{}/{}",
            m.value.component("systolic").expect("systolic"),
            m.value.component("diastolic").expect("diastolic")
        ),
    };
    (
        m.kind.to_string(),
        value,
        m.effective.start().to_string(),
        m.provenance.record_id.clone(),
    )
}

#[tokio::test]
async fn the_fixture_body_measures_map_to_kinds_values_units_times_and_ids() {
    let test = "the_fixture_body_measures_map_to_kinds_values_units_times_and_ids";
    let Some(body) = fixture(test, "withings-body-measures.json") else {
        return;
    };
    let oauth = oauth();
    let server = withings(&oauth, move |_| MockResponse::new(200).json(body.clone())).await;
    let (store, grant) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    assert_eq!(source.id(), SOURCE);
    assert_eq!(source.kind(), "withings");
    let batch = source.pull(&Cursor::start(), 100).await.expect("a batch");
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    let got: Vec<_> = batch.measurements.iter().map(describe).collect();
    let s = |a: &str, b: &str, c: &str, d: &str| {
        (a.to_string(), b.to_string(), c.to_string(), d.to_string())
    };
    // America/Los_Angeles: PDT (-07:00) from 8 March 2015, PST (-08:00) before.
    assert_eq!(
        got,
        vec![
            s(
                "blood-pressure",
                "104 mm[Hg]/68 mm[Hg]",
                "2015-05-30T23:06:23-07:00",
                "366956482/blood-pressure"
            ),
            s(
                "heart-rate",
                "41 /min",
                "2015-05-30T23:06:23-07:00",
                "366956482/heart-rate"
            ),
            s(
                "body-weight",
                "74.126 kg",
                "2015-05-30T23:06:23-07:00",
                "366956482/body-weight"
            ),
            s(
                "body-weight",
                "74.128 kg",
                "2015-04-20T10:13:56-07:00",
                "347186704/body-weight"
            ),
            s(
                "heart-rate",
                "51 /min",
                "2015-03-02T08:28:55-08:00",
                "323560022/heart-rate"
            ),
            s(
                "heart-rate",
                "47 /min",
                "2015-02-26T13:57:17-08:00",
                "321858727/heart-rate"
            ),
            s(
                "body-height",
                "1.930 m",
                "2015-02-23T11:24:49-08:00",
                "320419189/body-height"
            ),
            s(
                "body-temperature",
                "37 Cel",
                "2015-02-23T11:24:49-08:00",
                "320419189/body-temperature"
            ),
        ]
    );
    let subject: Identifier = SUBJECT.parse().expect("subject");
    for m in &batch.measurements {
        assert_eq!(m.subject, subject);
        assert_eq!(m.provenance.source_id, SOURCE);
        assert_eq!(
            m.id,
            MeasurementId::from_source(SOURCE, &m.provenance.record_id)
        );
        // The fixture names no device.
        assert_eq!(m.device, None);
    }
    // The blood pressure is one panel of both pressures, exactly as sent.
    let bp = &batch.measurements[0];
    assert_eq!(
        bp.value.component("systolic").map(|q| q.unit.as_str()),
        Some("mm[Hg]")
    );
    // One page, nothing more: exhausted, and the next sweep starts at its `updatetime`.
    assert!(batch.exhausted);
    let c = cursor_json(&batch.cursor);
    assert_eq!(c["cursor"], "withings-getmeas/1");
    assert_eq!(c["lastupdate"], 1_435_524_025);
    assert_eq!(c["offset"], 0);
    // The request: a form POST with the bearer token and what the API needs.
    let sent = measure_requests(&server);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "POST");
    assert_eq!(
        bearer(&sent[0]),
        format!("Bearer {}", grant.access_token.expose())
    );
    let f = form(&sent[0]);
    assert_eq!(f["action"], "getmeas");
    assert_eq!(f["meastypes"], "1,4,9,10,11,12,54,71");
    assert_eq!(f["category"], "1");
    assert_eq!(f["lastupdate"], SINCE.to_string());
    assert!(!f.contains_key("offset"), "the first page has no offset");
}

#[tokio::test]
async fn a_fixture_of_goals_only_gives_no_measurement() {
    let test = "a_fixture_of_goals_only_gives_no_measurement";
    let Some(body) = fixture(test, "withings-body-measures-only-goal.json") else {
        return;
    };
    let oauth = oauth();
    let server = withings(&oauth, move |_| MockResponse::new(200).json(body.clone())).await;
    let (store, _) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    let batch = source.pull(&Cursor::start(), 100).await.expect("a batch");
    assert!(batch.measurements.is_empty());
    assert!(batch.rejected.is_empty(), "a goal is not a bad record");
    assert!(batch.exhausted);
}

#[tokio::test]
async fn the_fixture_groups_paged_keep_the_source_contract() {
    let test = "the_fixture_groups_paged_keep_the_source_contract";
    let Some(text) = fixture(test, "withings-body-measures.json") else {
        return;
    };
    let body: Json = serde_json::from_str(&text).expect("JSON");
    let mut groups = body["body"]["measuregrps"]
        .as_array()
        .expect("groups")
        .clone();
    for g in &mut groups {
        g["modified"] = g["date"].clone();
    }
    let oauth = oauth();
    let paged = Paged::new(groups, 2);
    let p = paged.clone();
    let server = withings(&oauth, move |r| p.respond(r)).await;
    let (store, _) = store_with(&oauth);
    let a = anna(&server, &store, json!({}));
    let b = anna(&server, &store, json!({}));
    testkit::run_all(a.as_ref(), b.as_ref(), 1).await;
    testkit::run_all(a.as_ref(), b.as_ref(), 3).await;
    let all = pull_all(a.as_ref(), &Cursor::start(), 2).await;
    assert_eq!(ids(&all).len(), 8);
}

// ---------------------------------------------------------------------------------------
// Paging, resuming, incremental sweeps

#[tokio::test]
async fn synthetic_pages_keep_the_source_contract() {
    let oauth = oauth();
    let paged = Paged::new(groups(11), 3);
    let p = paged.clone();
    let server = withings(&oauth, move |r| p.respond(r)).await;
    let (store, _) = store_with(&oauth);
    let a = anna(&server, &store, json!({}));
    let b = anna(&server, &store, json!({}));
    for limit in [1, 2, 5] {
        testkit::run_all(a.as_ref(), b.as_ref(), limit).await;
    }
}

#[tokio::test]
async fn long_ranges_are_paged_and_a_killed_sync_resumes_mid_range() {
    let oauth = oauth();
    // 11 groups: 3 blood pressures with pulse, 3 weights, 3 SpO2 with temperature, 2
    // heights: 17 measurements, on pages of 3 groups.
    let paged = Paged::new(groups(11), 3);
    let p = paged.clone();
    let server = withings(&oauth, move |r| p.respond(r)).await;
    let (store, _) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    let all = pull_all(source.as_ref(), &Cursor::start(), 2).await;
    let full = ids(&all);
    assert_eq!(full.len(), 17);
    let unique: std::collections::HashSet<_> = full.iter().collect();
    assert_eq!(unique.len(), 17, "nothing twice");
    for b in &all {
        assert!(b.measurements.len() <= 2, "limit honoured");
    }
    // Every page asked for once at least, at the offsets the answers gave, in one sweep.
    let sent = measure_requests(&server);
    let offsets: std::collections::BTreeSet<String> = sent
        .iter()
        .map(|r| form(r).get("offset").cloned().unwrap_or_else(|| "0".into()))
        .collect();
    assert_eq!(
        offsets.into_iter().collect::<Vec<_>>(),
        vec!["0", "3", "6", "9"]
    );
    assert!(
        sent.iter()
            .all(|r| form(r)["lastupdate"] == SINCE.to_string()),
        "one sweep from since"
    );
    // A page bigger than the limit is split through the cursor: some cursor points inside
    // a page.
    assert!(
        all.iter()
            .any(|b| cursor_json(&b.cursor)["at"].as_u64() > Some(0)),
        "no cursor inside a page"
    );

    // A sync killed after its third batch: a new process, a new source from the same
    // configuration, resumes from the saved cursor.
    let saved = all[2].cursor.clone();
    let restarted = anna(&server, &store, json!({}));
    let rest = pull_all(restarted.as_ref(), &saved, 2).await;
    let mut joined = ids(&all[..3]);
    joined.extend(ids(&rest));
    assert_eq!(
        joined, full,
        "resumed mid-range: nothing lost, nothing twice"
    );

    // Exhausted: pulling again gives nothing, from where the sweep's first page said.
    let end = all.last().expect("a batch").cursor.clone();
    let first_updatetime = paged.clock.load(Ordering::SeqCst);
    assert_eq!(cursor_json(&end)["lastupdate"], first_updatetime);
    let again = source.pull(&end, 2).await.expect("a pull");
    assert!(again.exhausted && again.measurements.is_empty());

    // A group modified at Withings (a weight corrected) comes again, with the same ids: an
    // update, not a duplicate.
    paged.modify(5_001, |g| g["measures"][0]["value"] = json!(71_000));
    let update = pull_all(source.as_ref(), &again.cursor, 2).await;
    let changed = all_measurements(&update);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].provenance.record_id, "5001/body-weight");
    assert!(full.contains(&changed[0].id), "the same id as before");
    assert_eq!(
        changed[0].value.as_quantity().map(ToString::to_string),
        Some("71.000 kg".into())
    );
    let last = measure_requests(&server);
    assert_eq!(
        form(last.last().expect("a request"))["lastupdate"],
        first_updatetime.to_string(),
        "the second sweep starts at the first sweep's updatetime"
    );
    let end = update.last().expect("a batch").cursor.clone();
    let nothing = source.pull(&end, 2).await.expect("a pull");
    assert!(nothing.exhausted && nothing.measurements.is_empty());
}

#[tokio::test]
async fn the_device_and_the_offset_of_the_timezone_are_kept() {
    let oauth = oauth();
    let server = withings(&oauth, |_| {
        let mut g = group(9, 1_719_828_000, &[(10, 131, 0), (9, 84, 0), (11, 71, 0)]);
        g["deviceid"] = json!("a1b2c3d4e5");
        g["model"] = json!("BPM Connect");
        g["modelid"] = json!(44);
        ok_body(json!({
            "updatetime": 1_719_900_000, "timezone": "Europe/Copenhagen", "more": 0,
            "measuregrps": [g],
        }))
    })
    .await;
    let (store, _) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    let batch = source.pull(&Cursor::start(), 10).await.expect("a batch");
    assert_eq!(batch.measurements.len(), 2);
    for m in &batch.measurements {
        let d = m.device.as_ref().expect("a device");
        assert_eq!(d.model.as_deref(), Some("BPM Connect"));
        assert_eq!(d.manufacturer.as_deref(), Some("Withings"));
        assert_eq!(
            d.identifier.as_ref().map(|i| i.value.as_str()),
            Some("a1b2c3d4e5")
        );
        // 2024-07-01T10:00:00Z in Copenhagen's summer time.
        assert_eq!(m.effective.start().to_string(), "2024-07-01T12:00:00+02:00");
    }
    let bp = &batch.measurements[0];
    assert_eq!(
        bp.value.component("systolic").map(ToString::to_string),
        Some("131 mm[Hg]".into())
    );
    assert_eq!(
        bp.value.component("diastolic").map(ToString::to_string),
        Some("84 mm[Hg]".into())
    );
    assert_eq!(batch.measurements[1].kind, "heart-rate");
}

#[tokio::test]
async fn a_bad_group_is_rejected_and_the_others_are_kept() {
    let oauth = oauth();
    let server = withings(&oauth, |_| {
        let mut no_date = group(2, 1_719_828_000, &[(1, 70_000, -3)]);
        no_date.as_object_mut().expect("object").remove("date");
        ok_body(json!({
            "updatetime": 1_719_900_000, "timezone": "Europe/Copenhagen", "more": 0,
            "measuregrps": [
                group(1, 1_719_828_000, &[(1, 70_000, -3)]),
                no_date,
                { "grpid": 3, "category": 1, "date": 1_719_828_000,
                  "measures": [{ "type": 11, "value": "x", "unit": 0 }] },
                group(4, 1_719_828_000, &[(54, 98, 0)]),
            ],
        }))
    })
    .await;
    let (store, _) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    let batch = source.pull(&Cursor::start(), 10).await.expect("a batch");
    let kept: Vec<_> = batch
        .measurements
        .iter()
        .map(|m| m.provenance.record_id.as_str())
        .collect();
    assert_eq!(kept, ["1/body-weight", "4/oxygen-saturation"]);
    assert_eq!(batch.rejected.len(), 2);
    assert!(
        batch.rejected[0].location.contains("group 2"),
        "{:?}",
        batch.rejected
    );
    assert!(
        batch.rejected[0].reason.contains("`date`"),
        "{:?}",
        batch.rejected
    );
    assert!(
        batch.rejected[1].location.contains("group 3"),
        "{:?}",
        batch.rejected
    );
    assert!(
        batch.rejected[1].reason.contains("`value`"),
        "{:?}",
        batch.rejected
    );
    // A limit of 1 splits the page and reports each bad group once.
    let batches = pull_all(source.as_ref(), &Cursor::start(), 1).await;
    assert_eq!(ids(&batches).len(), 2);
    assert_eq!(batches.iter().map(|b| b.rejected.len()).sum::<usize>(), 2);
}

// ---------------------------------------------------------------------------------------
// OAuth2: connect, refresh with rotation, revocation

#[tokio::test]
async fn connect_exchanges_the_code_the_browser_brings_back() {
    let oauth = oauth();
    oauth.log_in_as(Some("account"));
    let paged = Paged::new(groups(2), 10);
    let p = paged.clone();
    let server = withings(&oauth, move |r| p.respond(r)).await;
    let store = Arc::new(MemoryTokenStore::new());
    let cloud = cloud(
        &server,
        json!({ "redirect_uri": "http://127.0.0.1:0/callback" }),
    )
    .with_token_store(store.clone() as Arc<dyn TokenStore>);
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let connecting = cloud.connect("anna", Duration::from_secs(30), move |url| {
        let _ = tx.send(url.to_string());
    });
    let browser = async move {
        let url = rx.await.expect("the URL announced");
        // The browser: the authorisation page redirects to the loopback callback.
        let client = http::client_builder().build().expect("a client");
        let page = client
            .get(&url)
            .send()
            .await
            .expect("the browser's request");
        (url, page.status(), page.text().await.unwrap_or_default())
    };
    let (grant, (url, status, page)) = tokio::join!(connecting, browser);
    let grant = grant.expect("connected");
    assert!(status.is_success(), "{status}: {page}");
    assert!(page.contains("Connected"), "{page}");
    // The authorisation URL asks for what the connector reads, Withings' way.
    let url = reqwest::Url::parse(&url).expect("a URL");
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(url.path(), AUTHORIZE);
    assert_eq!(q["scope"], "user.metrics");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["redirect_uri"].starts_with("http://127.0.0.1:"));
    assert!(
        !q["redirect_uri"].starts_with("http://127.0.0.1:0/"),
        "the port taken is sent"
    );
    assert_eq!(oauth.exchanges(), 1);
    // The grant is kept, and reads the citizen's data.
    assert_eq!(store.load(&key()).expect("store"), Some(grant.clone()));
    let exchange = server
        .requests()
        .into_iter()
        .find(|r| r.path == TOKEN)
        .expect("a token request");
    let f = form_pairs(&exchange.body_text());
    assert_eq!(f["action"], "requesttoken");
    assert_eq!(f["grant_type"], "authorization_code");
    let source = cloud.sources().expect("sources").remove(0);
    let batch = source.pull(&Cursor::start(), 100).await.expect("a pull");
    assert_eq!(batch.measurements.len(), 3);
    assert_eq!(
        bearer(measure_requests(&server).last().expect("a request")),
        format!("Bearer {}", grant.access_token.expose())
    );
}

#[tokio::test]
async fn a_refresh_rotates_the_tokens_and_saves_the_new_grant_before_using_it() {
    // Access tokens expired when issued: every request is preceded by a refresh.
    let oauth = oauth().expires_in(0);
    let paged = Paged::new(groups(6), 2);
    let p = paged.clone();
    let server = withings(&oauth, move |r| p.respond(r)).await;
    let (store, seeded) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    let batches = pull_all(source.as_ref(), &Cursor::start(), 100).await;
    assert_eq!(ids(&batches).len(), 9);
    let sent = measure_requests(&server);
    assert_eq!(sent.len(), 3, "three pages");
    assert_eq!(oauth.refreshes(), 3, "a refresh before every request");
    let tokens: std::collections::HashSet<String> = sent.iter().map(bearer).collect();
    assert_eq!(tokens.len(), 3, "a new access token for every request");
    // The store holds the newest grant; its refresh token works, the seeded one is void.
    let kept = store.load(&key()).expect("store").expect("a grant");
    assert_ne!(kept.refresh_token, seeded.refresh_token);
    assert!(oauth.accepts_refresh(kept.refresh_token.as_ref().expect("refresh token")));
    assert!(!oauth.accepts_refresh(seeded.refresh_token.as_ref().expect("refresh token")));
    assert_eq!(
        bearer(sent.last().expect("a request")),
        format!("Bearer {}", kept.access_token.expose()),
        "the grant used last is the one saved"
    );
}

#[tokio::test]
async fn a_status_401_in_the_body_refreshes_once_and_goes_on() {
    let oauth = oauth();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let paged = Paged::new(groups(2), 10);
    let server = withings(&oauth, move |r| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            // Withings' answer to an access token it no longer takes.
            MockResponse::new(200).json(
                r#"{"status":401,"body":{},"error":"XRequestID: Not provided invalid_token: The access token provided is invalid"}"#,
            )
        } else {
            paged.respond(r)
        }
    })
    .await;
    let (store, seeded) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    let batch = source.pull(&Cursor::start(), 100).await.expect("a pull");
    assert_eq!(batch.measurements.len(), 3);
    assert_eq!(oauth.refreshes(), 1);
    let sent = measure_requests(&server);
    assert_eq!(sent.len(), 2);
    assert_eq!(
        bearer(&sent[0]),
        format!("Bearer {}", seeded.access_token.expose())
    );
    assert_ne!(
        bearer(&sent[1]),
        bearer(&sent[0]),
        "retried with the new token"
    );
}

#[tokio::test]
async fn a_token_refused_after_a_refresh_is_a_revoked_grant_without_a_loop() {
    let oauth = oauth();
    let server = withings(&oauth, |_| status_body(401)).await;
    let (store, _) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    let e = source
        .pull(&Cursor::start(), 100)
        .await
        .expect_err("refused");
    assert!(matches!(e, SourceError::Authorization { .. }), "{e}");
    assert!(e.to_string().contains("anna"), "{e}");
    assert_eq!(oauth.refreshes(), 1, "one refresh");
    assert_eq!(measure_requests(&server).len(), 2, "one retry");
}

#[tokio::test]
async fn a_revoked_grant_is_an_authorization_error_naming_the_citizen_not_the_token() {
    let oauth = oauth();
    let paged = Paged::new(groups(2), 10);
    let server = withings(&oauth, move |r| paged.respond(r)).await;
    let (store, seeded) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    source.check().await.expect("connected");
    source.pull(&Cursor::start(), 100).await.expect("a pull");
    // The citizen disconnects the app at Withings.
    oauth.revoke("account");
    for e in [
        source
            .pull(&Cursor::start(), 100)
            .await
            .expect_err("revoked"),
        source.check().await.expect_err("revoked"),
    ] {
        assert!(matches!(e, SourceError::Authorization { .. }), "{e}");
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(text.contains("citizen anna"), "{text}");
        assert!(
            text.contains("healthanalyzer connect withings --subject anna"),
            "{text}"
        );
        assert!(!text.contains(seeded.access_token.expose()), "{text}");
        let refresh = seeded.refresh_token.as_ref().expect("refresh token");
        assert!(!text.contains(refresh.expose()), "{text}");
        assert!(!text.contains("C-4711"), "{text}");
    }
}

#[tokio::test]
async fn a_citizen_not_connected_yet_fails_check_before_anything_is_written() {
    let oauth = oauth();
    let server = withings(&oauth, |_| status_body(0)).await;
    let store = Arc::new(MemoryTokenStore::new());
    let source = anna(&server, &store, json!({}));
    let e = source.check().await.expect_err("not connected");
    assert!(matches!(e, SourceError::Authorization { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("healthanalyzer connect withings --subject anna"),
        "{e}"
    );
    assert!(measure_requests(&server).is_empty());
}

#[tokio::test]
async fn check_makes_one_cheap_authorised_request() {
    let oauth = oauth();
    let paged = Paged::new(groups(3), 10);
    let server = withings(&oauth, move |r| paged.respond(r)).await;
    let (store, seeded) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    source.check().await.expect("check");
    let sent = measure_requests(&server);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        bearer(&sent[0]),
        format!("Bearer {}", seeded.access_token.expose())
    );
    let lastupdate: i64 = form(&sent[0])["lastupdate"].parse().expect("a number");
    assert!(
        lastupdate > 1_700_000_000,
        "what changed from now on, not the history"
    );
}

// ---------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn http_429_is_unavailable_with_and_without_retry_after() {
    let oauth = oauth();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let paged = Paged::new(groups(2), 10);
    let server = withings(&oauth, move |r| match c.fetch_add(1, Ordering::SeqCst) {
        0 => MockResponse::new(429).header("Retry-After", "7"),
        1 => MockResponse::new(429),
        _ => paged.respond(r),
    })
    .await;
    let (store, _) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    let e = source
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("throttled");
    assert!(matches!(e, SourceError::Unavailable { .. }), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    let e = source
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("throttled");
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.retry_after(), None);
    let batch = source
        .pull(&Cursor::start(), 10)
        .await
        .expect("then answered");
    assert_eq!(batch.measurements.len(), 3);
}

#[tokio::test]
async fn withings_error_statuses_inside_http_200() {
    let oauth = oauth();
    let next = Arc::new(Mutex::new(MockResponse::new(200)));
    let n = next.clone();
    let server = withings(&oauth, move |_| n.lock().expect("next").clone()).await;
    let (store, _) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    let answer = |r: MockResponse| *next.lock().expect("next") = r;

    // 601: too many requests, retried after a minute (or the wait the answer names).
    answer(status_body(601));
    let e = source.pull(&Cursor::start(), 10).await.expect_err("601");
    assert!(matches!(e, SourceError::Unavailable { .. }), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    answer(status_body(601).header("Retry-After", "12"));
    let e = source.pull(&Cursor::start(), 10).await.expect_err("601");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(12)));
    // 2555: an unknown error at Withings, worth another try.
    answer(status_body(2555));
    let e = source.pull(&Cursor::start(), 10).await.expect_err("2555");
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("2555"), "{e}");
    // 503 (invalid parameters) and others: retrying cannot help.
    for code in [503, 2554, 522] {
        answer(status_body(code));
        let e = source
            .pull(&Cursor::start(), 10)
            .await
            .expect_err("an error");
        assert!(!e.is_retryable(), "{code}: {e}");
        assert!(e.to_string().contains(&code.to_string()), "{e}");
        // The vendor's text is not quoted.
        assert!(!e.to_string().contains("Some error text"), "{e}");
    }
    // A body that is not JSON, or has no status.
    answer(MockResponse::new(200).json("<html>"));
    let e = source
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("not JSON");
    assert!(matches!(e, SourceError::BadData { .. }), "{e}");
    answer(MockResponse::new(200).json("{}"));
    let e = source
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("no status");
    assert!(e.to_string().contains("`status`"), "{e}");
    // HTTP 5xx is retryable.
    answer(MockResponse::new(502));
    let e = source.pull(&Cursor::start(), 10).await.expect_err("502");
    assert!(e.is_retryable(), "{e}");
}

#[tokio::test]
async fn a_hung_connection_ends_with_the_configured_timeout_as_a_retryable_error() {
    let oauth = oauth();
    let server = withings(&oauth, |_| status_body(0).delay(Duration::from_secs(30))).await;
    let (store, _) = store_with(&oauth);
    let source = anna(&server, &store, json!({ "timeout_seconds": 0.5 }));
    let e = source
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("timed out");
    assert!(matches!(e, SourceError::Unavailable { .. }), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert_eq!(measure_requests(&server).len(), 1);
}

#[tokio::test]
async fn a_cursor_of_another_source_is_refused() {
    let oauth = oauth();
    let server = withings(&oauth, |_| status_body(0)).await;
    let (store, _) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    for bad in [
        "42",
        r#"{"lastUpdated":"2024-01-01T00:00:00Z"}"#,
        r#"{"cursor":"withings-getmeas/9","lastupdate":1,"offset":0,"at":0}"#,
    ] {
        let e = source.pull(&Cursor::new(bad), 10).await.expect_err(bad);
        assert!(matches!(e, SourceError::BadCursor { .. }), "{bad}: {e}");
    }
    assert!(
        measure_requests(&server).is_empty(),
        "refused before asking"
    );
}

#[tokio::test]
async fn debug_shows_neither_tokens_nor_the_subject() {
    let oauth = oauth();
    let server = withings(&oauth, |_| status_body(0)).await;
    let (store, grant) = store_with(&oauth);
    let source = anna(&server, &store, json!({}));
    source.check().await.ok();
    let text = format!("{source:?}");
    assert!(text.contains(SOURCE), "{text}");
    assert!(!text.contains("C-4711"), "{text}");
    assert!(!text.contains(grant.access_token.expose()), "{text}");
    assert!(!text.contains(CLIENT_SECRET), "{text}");
}
