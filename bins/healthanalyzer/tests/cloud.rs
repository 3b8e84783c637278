//! Device clouds end to end: `healthanalyzer sync` and `healthanalyzer connect` as real
//! processes against a mock Withings (its OAuth2 endpoints with rotating refresh tokens, and
//! `getmeas` paged by `offset`), with the grants in the token file.

#![allow(clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use healthanalyzer_source::testkit::mock::{MockResponse, MockServer, RecordedRequest};
use healthanalyzer_source_cloud::testkit::{CLIENT_SECRET, OAuthMock};
use healthanalyzer_source_cloud::{Dialect, FileTokenStore, GrantKey, TokenStore};

const AUTHORIZE: &str = "/oauth2_user/authorize2";
const TOKEN: &str = "/v2/oauth2";
/// Measure groups per `getmeas` page.
const PAGE: usize = 5;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_healthanalyzer"));
    c.env_remove("HEALTHANALYZER_DB");
    // Everything the program logs, to look for secrets in it.
    c.env("RUST_LOG", "trace");
    c
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A mock Withings: per account, weight groups modified one minute apart in January 2026;
/// `getmeas` pages through the ones modified since `lastupdate`.
#[derive(Clone)]
struct Withings {
    oauth: OAuthMock,
    groups: Arc<BTreeMap<String, usize>>,
    /// Revoke an account's grant once this many of its pages were served.
    revoke_after: Arc<Mutex<HashMap<String, usize>>>,
    served: Arc<Mutex<HashMap<String, usize>>>,
    /// The `offset`s asked for, per account, in order (requests of an empty range, such as
    /// a connector's check, left out).
    offsets: Arc<Mutex<Vec<(String, usize)>>>,
    delay: Duration,
}

const FIRST_MODIFIED: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

impl Withings {
    fn new(oauth: OAuthMock, groups: &[(&str, usize)], delay: Duration) -> Withings {
        Withings {
            oauth,
            groups: Arc::new(groups.iter().map(|(a, n)| (a.to_string(), *n)).collect()),
            revoke_after: Arc::default(),
            served: Arc::default(),
            offsets: Arc::default(),
            delay,
        }
    }

    fn respond(&self, r: &RecordedRequest) -> MockResponse {
        if let Some(answer) = self.oauth.respond(r) {
            return answer;
        }
        if r.path != "/measure" {
            return MockResponse::new(404);
        }
        let account = match self.oauth.account(r) {
            Ok(a) => a,
            Err(refused) => return refused,
        };
        let form: HashMap<String, String> = form_pairs(&r.body_text());
        if form.get("action").map(String::as_str) != Some("getmeas") {
            return MockResponse::new(200).json(r#"{"status":2554,"error":"Unknown action"}"#);
        }
        let lastupdate: i64 = form
            .get("lastupdate")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let offset: usize = form.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
        let n = self.groups.get(&account).copied().unwrap_or(0);
        if lastupdate < FIRST_MODIFIED + 60 * n as i64 {
            self.offsets
                .lock()
                .expect("lock")
                .push((account.clone(), offset));
        }
        let all: Vec<usize> = (0..n)
            .filter(|i| FIRST_MODIFIED + 60 * *i as i64 >= lastupdate)
            .collect();
        let page: Vec<serde_json::Value> = all
            .iter()
            .skip(offset)
            .take(PAGE)
            .map(|i| {
                let at = FIRST_MODIFIED + 60 * *i as i64;
                serde_json::json!({
                    "grpid": 1_000 * (account.len() as i64) + *i as i64,
                    "attrib": 0, "date": at, "created": at, "modified": at, "category": 1,
                    "deviceid": "d1", "measures": [{"value": 70_000 + *i as i64, "type": 1, "unit": -3}],
                })
            })
            .collect();
        let more = offset + page.len() < all.len();
        let body = serde_json::json!({
            "status": 0,
            "body": {
                "updatetime": FIRST_MODIFIED + 60 * n as i64, "timezone": "Europe/Copenhagen",
                "measuregrps": page, "more": if more { 1 } else { 0 }, "offset": offset + PAGE,
            }
        });
        // Pages with groups in them (a connector's check may ask for an empty range).
        if !page.is_empty() {
            let mut served = self.served.lock().expect("lock");
            let count = served.entry(account.clone()).or_insert(0);
            *count += 1;
            if self.revoke_after.lock().expect("lock").get(&account) == Some(count) {
                self.oauth.revoke(&account);
            }
        }
        MockResponse::new(200)
            .json(body.to_string())
            .delay(self.delay)
    }
}

fn form_pairs(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2C", ",")))
        .collect()
}

async fn start(withings: &Withings) -> MockServer {
    let w = withings.clone();
    MockServer::start(move |r: &RecordedRequest| w.respond(r))
        .await
        .expect("mock server")
}

fn config(dir: &Path, server: &MockServer, citizens: &[&str], batch: usize) -> PathBuf {
    let mut text = format!(
        r#"store = "sqlite:{db}"

[sync]
batch_size = {batch}
max_attempts = 2

[[source]]
id = "withings"
kind = "withings"
client_id = "mock-client"
client_secret = "${{TEST_WITHINGS_SECRET}}"
base_url = "{base}"
authorize_url = "{base}{AUTHORIZE}"
token_url = "{base}{TOKEN}"
redirect_uri = "http://127.0.0.1:0/callback"
token_store = "tokens.json"
since = "2025-12-01"
"#,
        db = dir.join("h.db").display(),
        base = server.uri(),
    );
    for c in citizens {
        text.push_str(&format!(
            "\n[[source.citizen]]\nname = \"{c}\"\nsubject = \"urn:healthanalyzer:test|citizen-{c}\"\n"
        ));
    }
    let path = dir.join("healthanalyzer.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = bin();
    c.current_dir(dir)
        .args(args)
        .env("TEST_WITHINGS_SECRET", CLIENT_SECRET);
    c
}

async fn run(dir: &Path, args: &[&str]) -> Output {
    let mut c = command(dir, args);
    tokio::task::spawn_blocking(move || c.output().expect("run healthanalyzer"))
        .await
        .expect("join")
}

/// Measurements stored per subject value.
async fn stored(dir: &Path) -> BTreeMap<String, u64> {
    let o = run(dir, &["--json", "patients"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|p| {
            (
                p["subject"].as_str().expect("subject").to_string(),
                p["measurements"].as_u64().expect("count"),
            )
        })
        .collect()
}

fn seed(dir: &Path, oauth: &OAuthMock, citizens: &[&str]) {
    let store = FileTokenStore::new(dir.join("tokens.json"));
    for c in citizens {
        store
            .save(&GrantKey::new("withings", *c), &oauth.issue(c))
            .expect("seed");
    }
}

fn no_secrets(oauth: &OAuthMock, outputs: &[&Output]) {
    let all: String = outputs.iter().map(|o| text(o)).collect();
    assert!(
        all.contains("TRACE") || all.contains("DEBUG"),
        "logs were written: {all}"
    );
    for secret in oauth.secrets() {
        assert!(!all.contains(&secret), "a secret is in the output:\n{all}");
    }
    // Nor the subjects' identifiers.
    assert!(!all.contains("citizen-anna"), "{all}");
}

/// The authorisation URL a running `connect` prints on stderr, and the thread that keeps
/// reading its stderr (joined, it gives all of it).
async fn announced_url(
    child: &mut std::process::Child,
) -> (String, std::thread::JoinHandle<String>) {
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reader = std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("line");
            if line.trim().starts_with("http")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line.trim().to_string());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .expect("the URL is printed")
        .expect("url");
    (url, reader)
}

/// Runs `healthanalyzer connect withings --subject NAME` and plays the browser.
async fn connect(dir: &Path, name: &str) -> Output {
    let mut c = command(
        dir,
        &[
            "connect",
            "withings",
            "--subject",
            name,
            "--timeout-seconds",
            "60",
        ],
    );
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn connect");
    let (url, reader) = announced_url(&mut child).await;
    // The browser follows the vendor's redirect to the loopback address connect listens on.
    let browser = healthanalyzer_source::http::client_builder()
        .build()
        .expect("client");
    let page = browser
        .get(&url)
        .send()
        .await
        .expect("browser")
        .text()
        .await
        .expect("page");
    assert!(page.contains("Connected"), "{page}");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    let stderr = reader.join().expect("reader");
    Output {
        status: out.status,
        stdout: out.stdout,
        stderr: stderr.into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_fails_its_citizen_alone_and_connect_lets_the_next_sync_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let oauth = OAuthMock::new(Dialect::Withings, AUTHORIZE, TOKEN);
    let withings = Withings::new(
        oauth.clone(),
        &[("anna", 12), ("bo", 7), ("carl", 12)],
        Duration::ZERO,
    );
    // Carl revokes the app after his first page was read.
    withings
        .revoke_after
        .lock()
        .expect("lock")
        .insert("carl".into(), 1);
    let server = start(&withings).await;
    config(dir.path(), &server, &["anna", "bo", "carl"], PAGE);
    seed(dir.path(), &oauth, &["anna", "bo", "carl"]);

    let first = run(dir.path(), &["sync"]).await;
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    let out = text(&first);
    assert!(
        out.contains("withings/carl")
            && out.contains("healthanalyzer connect withings --subject carl"),
        "{out}"
    );
    let counts = stored(dir.path()).await;
    assert_eq!(
        counts.get("urn:healthanalyzer:test|citizen-anna"),
        Some(&12),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("urn:healthanalyzer:test|citizen-bo"),
        Some(&7),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("urn:healthanalyzer:test|citizen-carl"),
        Some(&(PAGE as u64)),
        "{counts:?}"
    );

    // Without a new grant, the next sync fails Carl before it starts, and the others go on.
    let second = run(dir.path(), &["sync"]).await;
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    assert!(
        text(&second).contains("--subject carl"),
        "{}",
        text(&second)
    );

    // Carl connects again (in the "browser"), and the next sync picks up after his first page.
    oauth.log_in_as(Some("carl"));
    let connected = connect(dir.path(), "carl").await;
    assert!(connected.status.success(), "{}", text(&connected));
    assert!(
        text(&connected).contains("connected citizen carl"),
        "{}",
        text(&connected)
    );
    withings.offsets.lock().expect("lock").clear();
    let third = run(dir.path(), &["sync"]).await;
    assert!(third.status.success(), "{}", text(&third));
    let counts = stored(dir.path()).await;
    assert_eq!(
        counts.get("urn:healthanalyzer:test|citizen-carl"),
        Some(&12),
        "{counts:?}"
    );
    assert_eq!(
        counts.values().sum::<u64>(),
        31,
        "nothing twice: {counts:?}"
    );
    let carl_offsets: Vec<usize> = withings
        .offsets
        .lock()
        .expect("lock")
        .iter()
        .filter(|(a, _)| a == "carl")
        .map(|(_, o)| *o)
        .collect();
    assert_eq!(
        carl_offsets.first(),
        Some(&PAGE),
        "resumed mid-range: {carl_offsets:?}"
    );

    no_secrets(&oauth, &[&first, &second, &connected, &third]);
}

/// A random number below `n`, from the standard library's random hash keys.
fn random_below(n: u64) -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % n.max(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_just_after_a_refresh_the_token_file_always_holds_a_working_refresh_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every access token is due for a refresh when issued: every request refreshes first, and
    // the refresh token rotates each time.
    let oauth = OAuthMock::new(Dialect::Withings, AUTHORIZE, TOKEN).expires_in(0);
    let groups = 60;
    let withings = Withings::new(oauth.clone(), &[("anna", groups)], Duration::from_millis(5));
    let server = start(&withings).await;
    config(dir.path(), &server, &["anna"], PAGE);
    seed(dir.path(), &oauth, &["anna"]);
    let tokens = FileTokenStore::new(dir.path().join("tokens.json"));
    let key = GrantKey::new("withings", "anna");
    let mut kills = 0;
    for round in 0..10 {
        let before = oauth.refreshes();
        let mut child = command(dir.path(), &["sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let started = Instant::now();
        while oauth.refreshes() == before && started.elapsed() < Duration::from_secs(20) {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_micros(random_below(15_000))).await;
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
        let kept = tokens
            .load(&key)
            .expect("the token file reads")
            .expect("a grant is kept");
        let refresh = kept.refresh_token.expect("a refresh token");
        assert!(
            oauth.accepts_refresh(&refresh),
            "round {round}: the kept refresh token no longer works"
        );
    }
    assert!(kills >= 5, "only {kills} kills landed while a sync ran");
    // And the data: a last sync completes, nothing lost, nothing twice.
    let last = run(dir.path(), &["sync"]).await;
    assert!(last.status.success(), "{}", text(&last));
    let counts = stored(dir.path()).await;
    assert_eq!(
        counts.get("urn:healthanalyzer:test|citizen-anna"),
        Some(&(groups as u64)),
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_takes_the_pasted_address_when_the_redirect_uri_is_not_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let oauth = OAuthMock::new(Dialect::Withings, AUTHORIZE, TOKEN);
    let withings = Withings::new(oauth.clone(), &[("dora", 3)], Duration::ZERO);
    let server = start(&withings).await;
    let path = config(dir.path(), &server, &["dora"], PAGE);
    // Withings accepts neither localhost nor an IP address as the redirect URI.
    let edited = std::fs::read_to_string(&path).expect("config").replace(
        "redirect_uri = \"http://127.0.0.1:0/callback\"",
        "redirect_uri = \"https://care.example.org/withings/callback\"",
    );
    std::fs::write(&path, edited).expect("config");
    oauth.log_in_as(Some("dora"));
    let mut c = command(dir.path(), &["connect", "withings", "--subject", "dora"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn connect");
    let mut stdin = child.stdin.take().expect("stdin");
    let (url, reader) = announced_url(&mut child).await;
    // The browser is sent to the redirect URI (a page that need not exist): take its address.
    let browser = healthanalyzer_source::http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = browser.get(&url).send().await.expect("authorize");
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a redirect")
        .to_string();
    assert!(
        location.starts_with("https://care.example.org/withings/callback?code="),
        "{location}"
    );
    std::io::Write::write_all(&mut stdin, format!("{location}\n").as_bytes()).expect("paste");
    drop(stdin);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    let stderr = reader.join().expect("reader");
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("paste it here"), "{stderr}");
    let kept = FileTokenStore::new(dir.path().join("tokens.json"))
        .load(&GrantKey::new("withings", "dora"))
        .expect("load")
        .expect("kept");
    assert!(oauth.accepts_refresh(kept.refresh_token.as_ref().expect("rt")));
    let synced = run(dir.path(), &["sync"]).await;
    assert!(synced.status.success(), "{}", text(&synced));
    assert_eq!(
        stored(dir.path())
            .await
            .get("urn:healthanalyzer:test|citizen-dora"),
        Some(&3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_refreshing_one_token_file_never_void_each_others_grant() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every request refreshes first and the refresh token rotates: two syncs of the same
    // citizen at once refresh all the time.
    let oauth = OAuthMock::new(Dialect::Withings, AUTHORIZE, TOKEN).expires_in(0);
    let groups = 100;
    let withings = Withings::new(oauth.clone(), &[("anna", groups)], Duration::from_millis(3));
    let server = start(&withings).await;
    config(dir.path(), &server, &["anna"], PAGE);
    seed(dir.path(), &oauth, &["anna"]);
    // Two stores, one token file: the processes share only the grants.
    let a = run(dir.path(), &["--db", "sqlite:a.db", "--json", "sync"]);
    let b = run(dir.path(), &["--db", "sqlite:b.db", "--json", "sync"]);
    let (a, b) = tokio::join!(a, b);
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    assert!(
        oauth.refreshes() >= 2 * groups / PAGE,
        "{} refreshes",
        oauth.refreshes()
    );
    for db in ["sqlite:a.db", "sqlite:b.db"] {
        let o = run(dir.path(), &["--db", db, "--json", "patients"]).await;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(
            v[0]["measurements"].as_u64(),
            Some(groups as u64),
            "{db}: {v}"
        );
    }
    let kept = FileTokenStore::new(dir.path().join("tokens.json"))
        .load(&GrantKey::new("withings", "anna"))
        .expect("load")
        .expect("kept");
    assert!(oauth.accepts_refresh(kept.refresh_token.as_ref().expect("rt")));
}
