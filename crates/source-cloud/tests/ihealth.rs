//! The iHealth connector against a mock of iHealth's OpenAPI v2 with an OAuth2 server
//! (token requests as GET queries) on the same port.
//!
//! Shimmer's real iHealth answers are served from `$HEALTHANALYZER_FIXTURES`; units, paging,
//! late uploads and the faults are synthetic bodies built here.

#![allow(clippy::print_stderr)] // the skip notice

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use healthanalyzer_model::{MealRelation, Measurement, Provenance, Quantity};
use healthanalyzer_source::http::{self, reqwest};
use healthanalyzer_source::testkit::mock::{MockResponse, MockServer, RecordedRequest};
use healthanalyzer_source::testkit::{pull_all, run_all};
use healthanalyzer_source::{Batch, Cursor, Error as SourceError, Source};
use healthanalyzer_source_cloud::testkit::{CLIENT_ID, CLIENT_SECRET, OAuthMock};
use healthanalyzer_source_cloud::{
    CloudSource, Dialect, Grant, GrantKey, MemoryTokenStore, Settings, TokenStore, Vendor,
};
use jiff::Timestamp;
use serde_json::{Value as Json, json};

const SUBJECT: &str = "urn:oid:1.2.208.176.1.2|0101701234";
const SC: &str = "sc-0123456789abcdef";

const KINDS: [(&str, &str, &str); 4] = [
    ("bp", "BPDataList", "BPUnit"),
    ("glucose", "BGDataList", "BGUnit"),
    ("spo2", "BODataList", ""),
    ("weight", "WeightDataList", "WeightUnit"),
];

fn sv(kind: &str) -> String {
    format!("sv-{kind}-fedcba9876543210")
}

/// The fixture folder, or `None` (and a notice) when the variable is not set.
fn fixtures(test: &str) -> Option<PathBuf> {
    match std::env::var_os("HEALTHANALYZER_FIXTURES") {
        Some(dir) => Some(PathBuf::from(dir).join("openmhealth-shimmer-api-samples/ihealth")),
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

/// What the mock iHealth holds, and how it misbehaves.
struct Data {
    /// Records by data API (`bp`, `glucose`, `spo2`, `weight`).
    records: BTreeMap<String, Vec<Json>>,
    /// The unit code of each API's answers.
    units: BTreeMap<String, Json>,
    /// Records per page.
    page_length: usize,
    /// One-shot answers to the first request whose path contains the text, before the
    /// token is checked.
    faults: Vec<(String, MockResponse)>,
}

impl Default for Data {
    fn default() -> Data {
        Data {
            records: BTreeMap::new(),
            units: BTreeMap::new(),
            page_length: 50,
            faults: Vec::new(),
        }
    }
}

/// A mock iHealth: the API and its OAuth2 endpoints.
struct Fake {
    server: MockServer,
    oauth: OAuthMock,
    data: Arc<Mutex<Data>>,
}

fn body_error(error: &str, code: i64, description: &str) -> MockResponse {
    MockResponse::new(200).json(
        json!({"Error": error, "ErrorCode": code, "ErrorDescription": description}).to_string(),
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
    let account = match oauth.account(r) {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let Some((user, kind)) = r
        .path
        .strip_prefix("/openapiv2/user/")
        .and_then(|p| p.strip_suffix(".json/"))
        .and_then(|p| p.split_once('/'))
    else {
        return MockResponse::new(404).body("no such API");
    };
    let Some((_, list, unit)) = KINDS.iter().find(|(k, _, _)| *k == kind) else {
        return MockResponse::new(404).body("no such API");
    };
    let q = |n: &str| r.query_param(n).unwrap_or_default();
    if user != account
        || q("client_id") != CLIENT_ID
        || q("client_secret") != CLIENT_SECRET
        || q("sc") != SC
        || q("sv") != sv(kind)
        || q("locale") != "default"
    {
        return body_error("invalid_request", 4001, "the parameters are not the app's");
    }
    let (Ok(start), Ok(end), Ok(page)) = (
        q("start_time").parse::<i64>(),
        q("end_time").parse::<i64>(),
        q("page_index").parse::<usize>(),
    ) else {
        return body_error("invalid_request", 4002, "start_time, end_time, page_index");
    };
    let all: Vec<Json> = d
        .records
        .get(kind)
        .into_iter()
        .flatten()
        .filter(|rec| {
            rec["MDate"]
                .as_i64()
                .is_some_and(|m| m >= start && m <= end)
        })
        .cloned()
        .collect();
    let n = d.page_length;
    let on_page: Vec<Json> = all.iter().skip((page - 1) * n).take(n).cloned().collect();
    let more = page * n < all.len();
    let mut body = json!({
        *list: on_page,
        "CurrentRecordCount": on_page.len(),
        "NextPageUrl": if more { format!("https://openapi.ihealthlabs.com/openapiv2/user/{user}/{kind}.json/?page_index={}", page + 1) } else { String::new() },
        "PageLength": n,
        "PageNumber": page,
        "PrevPageUrl": "",
        "RecordCount": all.len(),
    });
    if !unit.is_empty() {
        body[*unit] = d.units.get(kind).cloned().unwrap_or(json!(0));
    }
    MockResponse::new(200).json(body.to_string())
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
            .filter(|r| r.path.starts_with("/openapiv2/"))
            .collect()
    }

    fn settings(&self, since: &str, extra: Json) -> Json {
        let mut settings = json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "base_url": self.server.uri(),
            "authorize_url": self.server.url("/oauth/authorize"),
            "token_url": self.server.url("/oauth/token"),
            "redirect_uri": "http://127.0.0.1:0/callback",
            "since": since,
            "ihealth_sc": SC,
            "ihealth_sv": { "bp": sv("bp"), "glucose": sv("glucose"), "spo2": sv("spo2"), "weight": sv("weight") },
            "citizen": [{ "name": "citizen-name", "subject": SUBJECT }],
        });
        if let (Json::Object(s), Json::Object(e)) = (&mut settings, extra) {
            s.extend(e);
        }
        settings
    }

    /// The cloud source, with `extra` settings.
    fn cloud(&self, since: &str, extra: Json) -> CloudSource {
        let settings: Settings =
            serde_json::from_value(self.settings(since, extra)).expect("settings");
        CloudSource::new(Vendor::IHealth, "id", settings, Path::new(".")).expect("a cloud source")
    }
}

fn oauth() -> OAuthMock {
    OAuthMock::new(Dialect::IHealth, "/oauth/authorize", "/oauth/token")
}

fn key() -> GrantKey {
    GrantKey::new("id", "citizen-name")
}

/// A token store holding a grant for the mock's `account` (its iHealth UserID).
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

fn original(m: &Measurement) -> Option<Quantity> {
    match &m.value {
        healthanalyzer_model::Value::Quantity(o) => o.original.clone(),
        _ => None,
    }
}

fn pressure(m: &Measurement) -> (String, String, String) {
    let s = m.value.component("systolic").expect("systolic");
    let d = m.value.component("diastolic").expect("diastolic");
    (s.value.to_string(), d.value.to_string(), s.unit.to_string())
}

/// Serves fixture answers (`kind` → file) and pulls everything since 2015-09-01.
async fn pull_fixtures(
    dir: &Path,
    files: &[(&str, &str)],
) -> (Vec<Measurement>, Vec<healthanalyzer_source::Rejected>) {
    let mut data = Data::default();
    for (kind, file) in files {
        let body = fixture(dir, file);
        let (_, list, unit) = KINDS.iter().find(|(k, _, _)| k == kind).expect("a kind");
        data.records.insert(
            kind.to_string(),
            body[*list].as_array().expect("a list").clone(),
        );
        if !unit.is_empty() {
            data.units.insert(kind.to_string(), body[*unit].clone());
        }
    }
    let fake = Fake::start(oauth(), data).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud("2015-09-01", json!({})), &store);
    let batches = pull_all(source.as_ref(), &Cursor::start(), 1000).await;
    let rejected = batches.iter().flat_map(|b| b.rejected.clone()).collect();
    (all_measurements(&batches), rejected)
}

#[tokio::test]
async fn the_fixtures_map_every_value_at_the_offset_it_was_measured_at() {
    let Some(dir) = fixtures("the_fixtures_map_every_value_at_the_offset_it_was_measured_at")
    else {
        return;
    };
    let (all, rejected) = pull_fixtures(
        &dir,
        &[
            ("bp", "ihealth-bp.json"),
            ("glucose", "ihealth-glucose.json"),
            ("spo2", "ihealth-spo2.json"),
            ("weight", "ihealth-weight.json"),
        ],
    )
    .await;
    assert!(rejected.is_empty(), "{rejected:?}");
    let summary: Vec<(String, String, String)> = all
        .iter()
        .map(|m| {
            (
                m.provenance.record_id.clone(),
                m.kind.to_string(),
                m.effective.start().to_string(),
            )
        })
        .collect();
    let expected = [
        (
            "bp/c62b84d9d4b7480a8ff2aef1465aa454",
            "blood-pressure",
            "2015-09-17T12:04:23-08:00",
        ),
        (
            "bp/c62b84d9d4b7480a8ff2aef1465aa454/hr",
            "heart-rate",
            "2015-09-17T12:04:23-08:00",
        ),
        (
            "bp/d6c08fb0bde6dc50db5c5f305a76c455",
            "blood-pressure",
            "2015-09-17T14:07:45-06:00",
        ),
        (
            "bp/d6c08fb0bde6dc50db5c5f305a76c455/hr",
            "heart-rate",
            "2015-09-17T14:07:45-06:00",
        ),
        (
            "glucose/f706b6152f684c0e9185b1fa6b7c5148",
            "capillary-glucose",
            "2015-09-17T12:03:27-08:00",
        ),
        (
            "glucose/b0d61f8df4214f938a8d05d0ac583baa",
            "capillary-glucose",
            "2015-09-24T14:44:40-06:00",
        ),
        (
            "spo2/d7fb9db14b0fc3e8e1635720c28bda64",
            "oxygen-saturation",
            "2015-09-23T15:46:00-06:00",
        ),
        (
            "spo2/d7fb9db14b0fc3e8e1635720c28bda64/hr",
            "heart-rate",
            "2015-09-23T15:46:00-06:00",
        ),
        (
            "spo2/217e56a104cf8462f4977fd8bf743ca5",
            "oxygen-saturation",
            "2015-09-24T15:03:00-06:00",
        ),
        (
            "spo2/217e56a104cf8462f4977fd8bf743ca5/hr",
            "heart-rate",
            "2015-09-24T15:03:00-06:00",
        ),
        (
            "weight/5fe5893c418b48cd8da7954f8b6c2f36",
            "body-weight",
            "2015-09-17T12:04:09-08:00",
        ),
        (
            "weight/5fe5893c418b48cd8da7954f8b6c2f36/bmi",
            "bmi",
            "2015-09-17T12:04:09-08:00",
        ),
        (
            "weight/b702a3a5e998f2fca268df6daaa69871",
            "body-weight",
            "2015-09-17T14:07:57-06:00",
        ),
        (
            "weight/b702a3a5e998f2fca268df6daaa69871/bmi",
            "bmi",
            "2015-09-17T14:07:57-06:00",
        ),
    ];
    assert_eq!(
        summary,
        expected
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect::<Vec<_>>()
    );
    for m in &all {
        assert_eq!(m.id, id(&m.provenance.record_id), "ids from the DataID");
        assert_eq!(m.subject, SUBJECT.parse().expect("an identifier"));
    }
    // Values and units, each as recorded.
    assert_eq!(
        pressure(&all[0]),
        ("120".into(), "90".into(), "mm[Hg]".into())
    );
    assert_eq!(quantity(&all[1]), ("100".into(), "/min".into()));
    assert_eq!(
        pressure(&all[2]),
        ("130".into(), "95".into(), "mm[Hg]".into())
    );
    assert_eq!(quantity(&all[3]), ("75".into(), "/min".into()));
    assert_eq!(quantity(&all[4]), ("60".into(), "mg/dL".into()));
    assert_eq!(all[4].context.meal, Some(MealRelation::BeforeMeal));
    assert_eq!(quantity(&all[5]), ("70".into(), "mg/dL".into()));
    assert_eq!(all[5].context.meal, Some(MealRelation::AfterMeal));
    assert_eq!(quantity(&all[6]), ("99".into(), "%".into()));
    assert_eq!(quantity(&all[7]), ("80".into(), "/min".into()));
    assert_eq!(quantity(&all[8]), ("90".into(), "%".into()));
    assert_eq!(quantity(&all[9]), ("65".into(), "/min".into()));
    assert_eq!(quantity(&all[10]), ("77.5643875134944".into(), "kg".into()));
    assert_eq!(
        quantity(&all[11]),
        ("22.56052563257619".into(), "kg/m2".into())
    );
    assert_eq!(
        quantity(&all[12]),
        ("77.56438446044922".into(), "kg".into())
    );
    assert_eq!(
        quantity(&all[13]),
        ("22.56052398681641".into(), "kg/m2".into())
    );
    // A reading from a meter names iHealth as its maker; one typed in names no device.
    for (i, from_device) in [
        (0, true),
        (2, false),
        (4, true),
        (5, false),
        (6, true),
        (8, false),
        (10, true),
        (12, false),
    ] {
        assert_eq!(
            all[i]
                .device
                .as_ref()
                .and_then(|d| d.manufacturer.as_deref()),
            from_device.then_some("iHealth"),
            "{}",
            all[i].provenance.record_id
        );
    }
}

#[tokio::test]
async fn records_without_a_value_are_skipped_and_empty_answers_give_nothing() {
    let Some(dir) = fixtures("records_without_a_value_are_skipped_and_empty_answers_give_nothing")
    else {
        return;
    };
    // A pressure without a pulse: the pressure only.
    let (all, rejected) = pull_fixtures(&dir, &[("bp", "ihealth-bp-no-heart-rate.json")]).await;
    assert!(rejected.is_empty());
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].kind, "blood-pressure");
    assert_eq!(
        pressure(&all[0]),
        ("130".into(), "95".into(), "mm[Hg]".into())
    );
    // An SpO2 reading without a pulse: the SpO2 only.
    let (all, rejected) = pull_fixtures(&dir, &[("spo2", "ihealth-spo2-no-heart-rate.json")]).await;
    assert!(rejected.is_empty());
    assert_eq!(all.len(), 1);
    assert_eq!(quantity(&all[0]), ("99".into(), "%".into()));
    // iHealth writes 0 for what was not measured: no SpO2, no pulse, no weight, no BMI,
    // and nothing rejected.
    let (all, rejected) = pull_fixtures(
        &dir,
        &[
            ("spo2", "ihealth-spo2-no-oxygen-saturation.json"),
            ("weight", "ihealth-weight-no-weight-value.json"),
        ],
    )
    .await;
    assert!(
        all.is_empty() && rejected.is_empty(),
        "{all:?} {rejected:?}"
    );
    let (all, rejected) = pull_fixtures(
        &dir,
        &[
            ("bp", "ihealth-bp-empty.json"),
            ("glucose", "ihealth-glucose-empty.json"),
            ("spo2", "ihealth-spo2-empty.json"),
            ("weight", "ihealth-weight-empty.json"),
        ],
    )
    .await;
    assert!(all.is_empty() && rejected.is_empty());
}

/// A synthetic reading `days` back, measured at +01:00 and uploaded an hour later.
fn reading(kind: &str, i: i64, fields: Json) -> Json {
    let utc = Timestamp::now().as_second() - i * 86_400;
    let mut r = json!({
        "DataID": format!("{kind}{i:030}"),
        "DataSource": if i % 2 == 0 { "FromDevice" } else { "Manual" },
        "LastChangeTime": utc + 3600,
        "MDate": utc + 3600,
        "TimeZone": "+0100",
        "Note": "",
    });
    if let (Json::Object(r), Json::Object(f)) = (&mut r, fields) {
        r.extend(f);
    }
    r
}

/// Some weeks of synthetic readings of every API, in pages of `page_length`.
fn synthetic(page_length: usize) -> Data {
    let mut d = Data {
        page_length,
        ..Data::default()
    };
    for i in 1..=15i64 {
        let records = &mut d.records;
        records.entry("bp".into()).or_default().push(reading(
            "bp",
            i,
            json!({"HP": 120 + i, "LP": 80, "HR": if i % 3 == 0 { 0 } else { 60 + i }, "BPL": 3, "IsArr": 1}),
        ));
        if i % 2 == 0 {
            records.entry("glucose".into()).or_default().push(reading(
                "bg",
                i,
                json!({"BG": 90 + i, "DinnerSituation": "Before_dinner"}),
            ));
        }
        if i % 3 == 0 {
            records.entry("spo2".into()).or_default().push(reading(
                "bo",
                i,
                json!({"BO": 95, "HR": 70}),
            ));
        }
        if i % 4 == 0 {
            records.entry("weight".into()).or_default().push(reading(
                "w",
                i,
                json!({"WeightValue": 80.25, "BMI": 24.5}),
            ));
        }
    }
    d
}

fn since() -> String {
    Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(20 * 24))
        .expect("a time")
        .to_string()
}

#[tokio::test]
async fn the_connector_keeps_the_source_contract() {
    let fake = Fake::start(oauth(), synthetic(4)).await;
    let (store, _) = store(&fake.oauth);
    let first = source_of(fake.cloud(&since(), json!({})), &store);
    let second = source_of(fake.cloud(&since(), json!({})), &store);
    run_all(first.as_ref(), second.as_ref(), 5).await;
}

#[tokio::test]
async fn pages_are_read_to_the_end_and_split_at_the_limit() {
    let fake = Fake::start(oauth(), synthetic(4)).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let whole = all_measurements(&pull_all(source.as_ref(), &Cursor::start(), 1000).await);
    let count = |kind: &str| whole.iter().filter(|m| m.kind == kind).count();
    // 15 pressures with 10 pulses, 7 glucose readings, 5 SpO2 with their pulses, 3 weights
    // with their BMI.
    assert_eq!(count("blood-pressure"), 15);
    assert_eq!(count("heart-rate"), 15);
    assert_eq!(count("capillary-glucose"), 7);
    assert_eq!(count("oxygen-saturation"), 5);
    assert_eq!(count("body-weight"), 3);
    assert_eq!(count("bmi"), 3);
    let bp_pages: Vec<String> = fake
        .api_requests()
        .iter()
        .filter(|r| r.path.ends_with("/bp.json/"))
        .map(|r| r.query_param("page_index").unwrap_or_default())
        .collect();
    assert_eq!(bp_pages, ["1", "2", "3", "4"], "15 records in pages of 4");
    let first = &fake.api_requests()[0];
    assert_eq!(first.path, "/openapiv2/user/account/bp.json/");
    assert_eq!(
        first.query_param("start_time"),
        Some((since().parse::<Timestamp>().expect("since").as_second() - 86_400).to_string()),
        "a first pass starts at `since` (a day earlier: MDate is a wall-clock time)"
    );
    let small = pull_all(source.as_ref(), &Cursor::start(), 3).await;
    assert!(small.iter().all(|b| b.measurements.len() <= 3));
    let ids: Vec<_> = all_measurements(&small).iter().map(|m| m.id).collect();
    assert_eq!(ids, whole.iter().map(|m| m.id).collect::<Vec<_>>());
}

#[tokio::test]
async fn later_passes_take_late_uploads_and_edits_but_nothing_twice() {
    let fake = Fake::start(oauth(), synthetic(50)).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let batches = pull_all(source.as_ref(), &Cursor::start(), 1000).await;
    let done = batches.last().expect("a batch").cursor.clone();
    let again = source.pull(&done, 1000).await.expect("pulled");
    assert!(again.exhausted && again.measurements.is_empty());
    assert!(again.rejected.is_empty());

    // A reading measured ten days ago, uploaded just now; and an edit of an old one.
    let now = Timestamp::now().as_second();
    {
        let mut d = fake.data();
        let mut late = reading("bp", 10, json!({"HP": 150, "LP": 95, "HR": 0}));
        late["DataID"] = json!("late-upload");
        late["LastChangeTime"] = json!(now - 700);
        d.records.get_mut("bp").expect("bp").push(late);
        let weight = &mut d.records.get_mut("weight").expect("weight")[0];
        weight["WeightValue"] = json!(79.5);
        weight["LastChangeTime"] = json!(now - 650);
    }
    let update = source.pull(&again.cursor, 1000).await.expect("pulled");
    assert!(update.exhausted);
    let got: Vec<(String, String)> = update
        .measurements
        .iter()
        .map(|m| (m.provenance.record_id.clone(), m.kind.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("bp/late-upload".to_string(), "blood-pressure".to_string()),
            (format!("weight/w{:030}", 4), "body-weight".to_string()),
            (format!("weight/w{:030}/bmi", 4), "bmi".to_string()),
        ]
    );
    assert_eq!(quantity(&update.measurements[1]).0, "79.5");
    let after = source.pull(&update.cursor, 1000).await.expect("pulled");
    assert!(after.exhausted && after.measurements.is_empty());
}

#[tokio::test]
async fn unit_codes_are_mapped_exactly_and_an_unknown_one_is_a_rejection() {
    let mut data = Data::default();
    data.records.insert(
        "bp".into(),
        vec![reading("bp", 2, json!({"HP": 16, "LP": 10.5, "HR": 61}))],
    );
    data.units.insert("bp".into(), json!(1));
    data.records.insert(
        "glucose".into(),
        vec![reading(
            "bg",
            2,
            json!({"BG": 5.4, "DinnerSituation": "At_midnight"}),
        )],
    );
    data.units.insert("glucose".into(), json!(1));
    data.records.insert(
        "weight".into(),
        vec![reading("w", 2, json!({"WeightValue": 12.5, "BMI": 0}))],
    );
    data.units.insert("weight".into(), json!(2));
    let fake = Fake::start(oauth(), data).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let batches = pull_all(source.as_ref(), &Cursor::start(), 1000).await;
    let all = all_measurements(&batches);
    assert_eq!(all.len(), 4, "{all:?}");
    // kPa, normalised to mm[Hg] through the catalog.
    let bp = &all[0];
    assert_eq!(bp.kind, "blood-pressure");
    let systolic = bp.value.component("systolic").expect("systolic");
    assert_eq!(systolic.unit.as_str(), "mm[Hg]");
    assert!(
        (systolic.value.to_string().parse::<f64>().expect("a number") - 120.0).abs() < 0.1,
        "16 kPa is 120 mm[Hg]: {systolic}"
    );
    assert_eq!(quantity(&all[1]), ("61".into(), "/min".into()));
    // mmol/L, normalised to mg/dL; the recorded quantity is kept.
    assert_eq!(all[2].kind, "capillary-glucose");
    assert_eq!(
        original(&all[2]),
        Some(Quantity::parse("5.4", "mmol/L").expect("a quantity"))
    );
    assert_eq!(
        all[2].context.meal,
        Some(MealRelation::Other("at-midnight".into()))
    );
    // Stone: 14 pounds each, normalised to kg.
    assert_eq!(all[3].kind, "body-weight");
    assert_eq!(
        original(&all[3]),
        Some(Quantity::parse("175.0", "[lb_av]").expect("a quantity"))
    );
    assert_eq!(quantity(&all[3]).1, "kg");

    // A unit code iHealth does not document: each record is a rejection, not an error.
    fake.data().units.insert("bp".into(), json!(7));
    let batches = pull_all(source.as_ref(), &Cursor::start(), 1000).await;
    let rejected: Vec<_> = batches.iter().flat_map(|b| b.rejected.clone()).collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].reason.contains("`BPUnit` 7"), "{rejected:?}");
    assert!(rejected[0].location.contains(&format!("bp{:030}", 2)));
    assert_eq!(
        all_measurements(&batches).len(),
        3,
        "the other APIs are read"
    );
}

#[tokio::test]
async fn connect_exchanges_the_code_and_the_grant_names_the_user() {
    let fake = Fake::start(oauth(), synthetic(50)).await;
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
    assert_eq!(
        grant.user_id.as_deref(),
        Some("account"),
        "iHealth's UserID"
    );
    assert_eq!(store.load(&key()).expect("loaded"), Some(grant));
    let authorize = fake
        .server
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth/authorize")
        .expect("the browser opened the authorisation URL");
    assert_eq!(
        authorize.query_param("APIName").as_deref(),
        Some("OpenApiBP OpenApiBG OpenApiSpO2 OpenApiWeight")
    );
    let token = fake
        .server
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth/token")
        .expect("the code was exchanged");
    assert_eq!(token.method, "GET", "iHealth's token requests are GETs");
    let source = cloud.sources().expect("sources").remove(0);
    source.check().await.expect("the grant works");
    let all = all_measurements(&pull_all(source.as_ref(), &Cursor::start(), 1000).await);
    assert_eq!(all.len(), 48);
}

#[tokio::test]
async fn a_refresh_rotates_the_token_and_keeps_the_user() {
    // Tokens that live a minute are refreshed before every request.
    let fake = Fake::start(oauth().expires_in(60), synthetic(50)).await;
    let (store, seeded) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let all = all_measurements(&pull_all(source.as_ref(), &Cursor::start(), 1000).await);
    assert_eq!(all.len(), 48);
    let requests = fake.api_requests().len();
    assert_eq!(requests, 4, "a page of each API");
    assert_eq!(fake.oauth.refreshes(), requests, "one refresh per request");
    let kept = store.load(&key()).expect("loaded").expect("a grant");
    assert_eq!(kept.user_id.as_deref(), Some("account"));
    assert!(
        fake.oauth
            .accepts_refresh(kept.refresh_token.as_ref().expect("a refresh token"))
    );
    assert!(
        !fake
            .oauth
            .accepts_refresh(seeded.refresh_token.as_ref().expect("a refresh token")),
        "the first one was rotated away"
    );
}

#[tokio::test]
async fn a_token_refused_in_a_body_is_refreshed_once_and_a_revoked_grant_is_an_authorization_error()
{
    let fake = Fake::start(oauth(), synthetic(50)).await;
    let (store, grant) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    // iHealth may refuse a token in an HTTP 200 body: the session refreshes once.
    fake.data().faults.push((
        "/bp.json/".into(),
        body_error("invalid_token", 4008, "the access token is invalid"),
    ));
    let all = all_measurements(&pull_all(source.as_ref(), &Cursor::start(), 1000).await);
    assert_eq!(all.len(), 48);
    assert_eq!(fake.oauth.refreshes(), 1);

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
        for secret in [
            grant.access_token.expose(),
            grant.refresh_token.as_ref().expect("refresh").expose(),
            CLIENT_SECRET,
            SC,
            &sv("bp"),
            "0101701234",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    let debug = format!("{source:?}");
    for secret in [CLIENT_SECRET, SC, &sv("bp"), "0101701234"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[tokio::test]
async fn limits_and_429s_are_unavailable_with_the_wait_asked_for() {
    let fake = Fake::start(oauth(), synthetic(50)).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    let limit = json!({"BackValue": "null", "Error": "limits_hour_error", "ErrorCode": "503", "ErrorDescription": "Reached the one-hour access limit"}).to_string();
    for (answer, wait) in [
        (MockResponse::new(429).header("Retry-After", "30"), Some(30)),
        (MockResponse::new(429), None),
        // iHealth's own limit, in an HTTP 200 body: within the hour.
        (MockResponse::new(200).json(limit.clone()), Some(3600)),
        (
            MockResponse::new(503)
                .header("Retry-After", "120")
                .json(limit.clone()),
            Some(120),
        ),
    ] {
        fake.data().faults.push(("/bp.json/".into(), answer));
        let e = source
            .pull(&Cursor::start(), 10)
            .await
            .expect_err("refused");
        assert!(matches!(e, SourceError::Unavailable { .. }), "{e:?}");
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), wait.map(Duration::from_secs), "{e}");
        assert!(!e.to_string().contains(CLIENT_SECRET), "{e}");
    }
}

#[tokio::test]
async fn an_error_in_a_body_is_not_retried_and_quotes_only_the_codes() {
    let fake = Fake::start(oauth(), synthetic(50)).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    fake.data().faults.push((
        "/bp.json/".into(),
        body_error(
            "invalid_sv",
            4005,
            "sv sv-bp-fedcba9876543210 is not valid for anna@example.org",
        ),
    ));
    let e = source
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("refused");
    assert!(matches!(e, SourceError::BadData { .. }), "{e:?}");
    assert!(!e.is_retryable());
    let text = e.to_string();
    assert!(
        text.contains("invalid_sv") && text.contains("4005"),
        "{text}"
    );
    assert!(!text.contains("anna@example.org") && !text.contains(&sv("bp")));
    // The same as HTTP 400.
    fake.data().faults.push((
        "/bp.json/".into(),
        MockResponse::new(400).json(
            json!({"Error": "invalid_request", "ErrorCode": 4001, "ErrorDescription": "x"})
                .to_string(),
        ),
    ));
    let e = source
        .pull(&Cursor::start(), 10)
        .await
        .expect_err("refused");
    assert!(!e.is_retryable(), "{e:?}");
    assert!(e.to_string().contains("invalid_request"), "{e}");
    // A request with the app's parameters wrong (here: answered by the mock as iHealth does).
    let wrong = source_of(
        fake.cloud(&since(), json!({"ihealth_sc": "not-the-app-s"})),
        &Arc::new({
            let s = MemoryTokenStore::new();
            s.save(&key(), &fake.oauth.issue("account")).expect("saved");
            s
        }),
    );
    let e = wrong.pull(&Cursor::start(), 10).await.expect_err("refused");
    assert!(e.to_string().contains("4001"), "{e}");
}

#[tokio::test]
async fn a_hung_connection_ends_with_the_configured_timeout_as_a_retryable_error() {
    let fake = Fake::start(oauth(), synthetic(50)).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(
        fake.cloud(&since(), json!({"timeout_seconds": 0.3})),
        &store,
    );
    fake.data().faults.push((
        "/bp.json/".into(),
        MockResponse::new(200)
            .json(r#"{"BPDataList":[],"BPUnit":0,"NextPageUrl":"","RecordCount":0}"#)
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
async fn only_the_apis_with_a_service_version_are_read() {
    let fake = Fake::start(oauth(), synthetic(50)).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(
        fake.cloud(
            &since(),
            json!({"ihealth_sv": {"bp": sv("bp"), "weight": sv("weight")}}),
        ),
        &store,
    );
    let all = all_measurements(&pull_all(source.as_ref(), &Cursor::start(), 1000).await);
    assert!(all.iter().all(|m| matches!(
        m.kind.as_str(),
        "blood-pressure" | "heart-rate" | "body-weight" | "bmi"
    )));
    let paths: Vec<String> = fake.api_requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/openapiv2/user/account/bp.json/",
            "/openapiv2/user/account/weight.json/"
        ]
    );
}

#[tokio::test]
async fn the_app_settings_are_checked_when_the_source_is_built() {
    let fake = Fake::start(oauth(), Data::default()).await;
    for (extra, expected) in [
        (json!({"ihealth_sc": null}), "`ihealth_sc`"),
        (json!({"ihealth_sv": {}}), "`ihealth_sv`"),
        (
            json!({"ihealth_sv": {"bloodpressure": "x"}}),
            "\"bloodpressure\"",
        ),
    ] {
        let mut settings = fake.settings(&since(), extra.clone());
        if let Some(o) = settings.as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
        let settings: Settings = serde_json::from_value(settings).expect("settings");
        let cloud = CloudSource::new(Vendor::IHealth, "id", settings, Path::new("."))
            .expect("a cloud source");
        let e = cloud.sources().expect_err("refused");
        assert!(e.to_string().contains(expected), "{extra}: {e}");
    }
}

#[tokio::test]
async fn cursors_of_others_are_refused() {
    let fake = Fake::start(oauth(), synthetic(50)).await;
    let (store, _) = store(&fake.oauth);
    let source = source_of(fake.cloud(&since(), json!({})), &store);
    for bad in [
        r#"{"src":"fitbit","v":1}"#,
        r#"{"src":"ihealth","v":9}"#,
        r#"{"src":"ihealth","v":1,"pass":{"began":1,"at":"bp","start":5,"end":1,"page":1,"skip":0}}"#,
        r#"{"src":"ihealth","v":1,"done":{"ecg":{"from":1,"changed":1}}}"#,
    ] {
        let e = source.pull(&Cursor::new(bad), 5).await.expect_err(bad);
        assert!(matches!(e, SourceError::BadCursor { .. }), "{bad}: {e:?}");
    }
    assert!(fake.api_requests().is_empty(), "nothing was asked");
}
