//! The vendor-independent parts: the token store, the authorisation flow, and sessions
//! that refresh (saving a rotated grant before using it) and give up on a revoked grant.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthanalyzer_source::testkit::mock::{MockResponse, MockServer, RecordedRequest};
use healthanalyzer_source_cloud::testkit::{CLIENT_ID, CLIENT_SECRET, OAuthMock};
use healthanalyzer_source_cloud::{
    Dialect, Error, FileTokenStore, Grant, GrantKey, MemoryTokenStore, OAuthApp, Secret, Session,
    TokenStore, connect, connect_pasted,
};
use reqwest::Url;

fn app(server: &MockServer, oauth: &OAuthMock, dialect: Dialect) -> OAuthApp {
    OAuthApp {
        vendor: "Mockcloud",
        dialect,
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        authorize_url: Url::parse(&server.url(oauth.authorize_path())).expect("url"),
        token_url: Url::parse(&server.url(oauth.token_path())).expect("url"),
        redirect_uri: Url::parse("http://127.0.0.1:0/callback").expect("url"),
        scopes: vec!["metrics".into(), "offline_access".into()],
        scope_separator: " ",
    }
}

/// A mock vendor: the OAuth2 endpoints, and `/data` that answers with the account's name.
async fn vendor(oauth: &OAuthMock) -> MockServer {
    let o = oauth.clone();
    MockServer::start(move |r: &RecordedRequest| {
        if let Some(answer) = o.respond(r) {
            return answer;
        }
        match o.account(r) {
            Ok(account) => MockResponse::new(200).json(format!("{{\"account\":\"{account}\"}}")),
            Err(refused) => refused,
        }
    })
    .await
    .expect("mock server")
}

fn http() -> reqwest::Client {
    healthanalyzer_source::http::client_builder()
        .build()
        .expect("client")
}

fn grant(access: &str, refresh: &str) -> Grant {
    Grant {
        access_token: Secret::new(access),
        refresh_token: Some(Secret::new(refresh)),
        expires_at: Some(2_000_000_000),
        scope: Some("metrics".into()),
        user_id: Some("u1".into()),
        obtained_at: 1_700_000_000,
    }
}

#[test]
fn the_token_file_is_private_replaced_whole_and_never_quoted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/tokens.json");
    let store = FileTokenStore::new(&path);
    let anna = GrantKey::new("withings", "anna");
    let bo = GrantKey::new("withings", "bo");
    assert_eq!(store.load(&anna).expect("load of a missing file"), None);
    store.save(&anna, &grant("A1", "R1")).expect("save");
    store.save(&bo, &grant("B1", "S1")).expect("save");
    store.save(&anna, &grant("A2", "R2")).expect("save");
    assert_eq!(store.load(&anna).expect("load"), Some(grant("A2", "R2")));
    assert_eq!(store.load(&bo).expect("load"), Some(grant("B1", "S1")));
    store.remove(&bo).expect("remove");
    assert_eq!(store.load(&bo).expect("load"), None);
    // No temporary file is left beside it.
    let names: Vec<String> = std::fs::read_dir(path.parent().expect("folder"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n == "tokens.json" || n == "tokens.json.lock"),
        "{names:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A file others can read is refused, and the message says how to fix it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = store.load(&anna).expect_err("a readable token file");
        assert!(matches!(e, Error::TokenFileMode { .. }), "{e:?}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    // A damaged file is an error that quotes none of it.
    std::fs::write(
        &path,
        "{\"version\":1,\"grants\":{\"withings/anna\":{\"access_token\":\"SECRET-A\",",
    )
    .expect("write");
    let e = store.load(&anna).expect_err("a damaged file");
    assert!(matches!(e, Error::TokenFile { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("SECRET-A"), "{e}");
}

#[test]
fn grants_and_secrets_never_show_in_debug_output() {
    let g = grant("ACCESS-123", "REFRESH-456");
    let text = format!("{g:?} {:?} {}", g.access_token, g.access_token);
    assert!(
        !text.contains("ACCESS-123") && !text.contains("REFRESH-456"),
        "{text}"
    );
    assert!(
        !text.contains("u1"),
        "the vendor's user id is not shown either: {text}"
    );
}

#[test]
fn saves_from_many_threads_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokens.json");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = FileTokenStore::new(&path);
            std::thread::spawn(move || {
                for i in 0..10 {
                    let key = GrantKey::new("fitbit", format!("c{t}-{i}"));
                    store
                        .save(&key, &grant(&format!("A{t}{i}"), "R"))
                        .expect("save");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let store = FileTokenStore::new(&path);
    for t in 0..8 {
        for i in 0..10 {
            let got = store
                .load(&GrantKey::new("fitbit", format!("c{t}-{i}")))
                .expect("load")
                .expect("kept");
            assert_eq!(got.access_token.expose(), format!("A{t}{i}"));
        }
    }
}

/// Plays the browser: opens the URL `connect` announced, following the vendor's redirect to
/// the loopback address.
fn browse(url: Url) -> tokio::task::JoinHandle<Result<String, reqwest::Error>> {
    tokio::spawn(async move {
        let response = reqwest::get(url).await?;
        response.text().await
    })
}

#[tokio::test]
async fn connect_runs_the_code_flow_with_pkce_and_keeps_the_grant() {
    for dialect in [
        Dialect::Standard,
        Dialect::Basic,
        Dialect::Withings,
        Dialect::IHealth,
    ] {
        let oauth = OAuthMock::new(dialect, "/authorize", "/token");
        let server = vendor(&oauth).await;
        let app = app(&server, &oauth, dialect);
        let store = MemoryTokenStore::new();
        let key = GrantKey::new("cloud", "anna");
        oauth.log_in_as(Some("anna-account"));
        let (tx, rx) = std::sync::mpsc::channel();
        let client = http();
        let flow = connect(
            &app,
            &client,
            &store,
            &key,
            Duration::from_secs(20),
            |url| {
                tx.send(url.clone()).expect("send");
            },
        );
        let browser = async {
            // `announce` has run by the time the flow first waits.
            tokio::task::yield_now().await;
            loop {
                if let Ok(url) = rx.try_recv() {
                    return browse(url).await.expect("join").expect("browser");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let (granted, page) = tokio::join!(flow, browser);
        let granted = granted.unwrap_or_else(|e| panic!("{dialect:?}: {e}"));
        assert!(page.contains("Connected"), "{dialect:?}: {page}");
        assert_eq!(store.load(&key).expect("load"), Some(granted.clone()));
        assert_eq!(granted.user_id.as_deref(), Some("anna-account"));
        assert_eq!(oauth.exchanges(), 1, "{dialect:?}");
        // The authorisation request carried PKCE and the state; the exchange the verifier
        // (the mock refuses an exchange whose verifier does not match the challenge).
        let asked = server
            .requests()
            .into_iter()
            .find(|r| r.path == "/authorize")
            .expect("an authorisation request");
        assert_eq!(
            asked.query_param("code_challenge_method").as_deref(),
            Some("S256")
        );
        assert_eq!(asked.query_param("state").map(|s| s.len()), Some(22));
        let redirect = asked.query_param("redirect_uri").expect("redirect_uri");
        assert!(
            redirect.starts_with("http://127.0.0.1:")
                && !redirect.starts_with("http://127.0.0.1:0/"),
            "{redirect}"
        );
    }
}

#[tokio::test]
async fn a_refusal_in_the_browser_ends_connect_with_an_error_that_says_so() {
    let oauth = OAuthMock::new(Dialect::Standard, "/authorize", "/token");
    let server = vendor(&oauth).await;
    let app = app(&server, &oauth, Dialect::Standard);
    let store = MemoryTokenStore::new();
    let key = GrantKey::new("cloud", "anna");
    oauth.log_in_as(None);
    let (tx, rx) = std::sync::mpsc::channel();
    let client = http();
    let flow = connect(
        &app,
        &client,
        &store,
        &key,
        Duration::from_secs(20),
        |url| {
            tx.send(url.clone()).expect("send");
        },
    );
    let browser = async {
        loop {
            if let Ok(url) = rx.try_recv() {
                // A stray request with another state first: ignored, not fatal.
                let mut stray = url.clone();
                let redirect: Url = url
                    .query_pairs()
                    .find(|(k, _)| k == "redirect_uri")
                    .map(|(_, v)| v.parse().expect("url"))
                    .expect("redirect_uri");
                stray = redirect
                    .join("/callback?code=x&state=forged")
                    .unwrap_or(stray);
                let forged = reqwest::get(stray).await.expect("stray").status();
                assert_eq!(forged, 400);
                return browse(url).await.expect("join").expect("browser");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (result, _) = tokio::join!(flow, browser);
    let e = result.expect_err("a refusal");
    assert!(matches!(e, Error::Authorization(_)), "{e:?}");
    assert!(e.to_string().contains("access_denied"), "{e}");
    assert_eq!(store.load(&key).expect("load"), None);
    assert_eq!(oauth.exchanges(), 0);
}

#[tokio::test]
async fn a_redirect_uri_that_is_not_loopback_is_refused_before_anything_is_sent() {
    let oauth = OAuthMock::new(Dialect::Standard, "/authorize", "/token");
    let server = vendor(&oauth).await;
    let mut app = app(&server, &oauth, Dialect::Standard);
    app.redirect_uri = Url::parse("https://example.org/callback").expect("url");
    let announced = AtomicUsize::new(0);
    let e = connect(
        &app,
        &http(),
        &MemoryTokenStore::new(),
        &GrantKey::new("cloud", "anna"),
        Duration::from_secs(5),
        |_| {
            announced.fetch_add(1, Ordering::SeqCst);
        },
    )
    .await
    .expect_err("not loopback");
    assert!(e.to_string().contains("loopback"), "{e}");
    assert_eq!(announced.load(Ordering::SeqCst), 0);
}

/// A token store that records, at every save, whether the vendor had already seen the
/// access token being saved: it must not have.
#[derive(Debug)]
struct Watching {
    inner: MemoryTokenStore,
    server_requests: Arc<Mutex<Vec<RecordedRequest>>>,
    used_before_saved: AtomicUsize,
    saves: AtomicUsize,
}

impl TokenStore for Watching {
    fn load(&self, key: &GrantKey) -> Result<Option<Grant>, Error> {
        self.inner.load(key)
    }
    fn save(&self, key: &GrantKey, grant: &Grant) -> Result<(), Error> {
        let bearer = format!("Bearer {}", grant.access_token.expose());
        let seen = self
            .server_requests
            .lock()
            .expect("lock")
            .iter()
            .any(|r| r.header("authorization") == Some(bearer.as_str()));
        if seen {
            self.used_before_saved.fetch_add(1, Ordering::SeqCst);
        }
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.save(key, grant)
    }
    fn remove(&self, key: &GrantKey) -> Result<(), Error> {
        self.inner.remove(key)
    }
}

#[tokio::test]
async fn a_session_refreshes_before_expiry_and_saves_the_rotated_grant_before_using_it() {
    // Access tokens that are expired when issued: every request needs a refresh first.
    let oauth = OAuthMock::new(Dialect::Standard, "/authorize", "/token").expires_in(0);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let o = oauth.clone();
    let log = Arc::clone(&seen);
    let server = MockServer::start(move |r: &RecordedRequest| {
        log.lock().expect("lock").push(r.clone());
        if let Some(answer) = o.respond(r) {
            return answer;
        }
        match o.account(r) {
            Ok(account) => MockResponse::new(200).json(format!("{{\"account\":\"{account}\"}}")),
            Err(refused) => refused,
        }
    })
    .await
    .expect("mock");
    let key = GrantKey::new("cloud", "anna");
    let store = Arc::new(Watching {
        inner: MemoryTokenStore::new(),
        server_requests: Arc::clone(&seen),
        used_before_saved: AtomicUsize::new(0),
        saves: AtomicUsize::new(0),
    });
    let first = oauth.issue("anna-account");
    store.inner.save(&key, &first).expect("seed");
    let session = Session::new(
        Arc::new(app(&server, &oauth, Dialect::Standard)),
        http(),
        store.clone(),
        key.clone(),
    );
    let url = server.url("/data");
    for _ in 0..3 {
        let response = session
            .send("the data", |c, token| {
                c.get(&url).bearer_auth(token.expose())
            })
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
        assert!(
            response
                .text()
                .await
                .expect("body")
                .contains("anna-account")
        );
    }
    assert_eq!(oauth.refreshes(), 3);
    assert_eq!(store.saves.load(Ordering::SeqCst), 3);
    assert_eq!(store.used_before_saved.load(Ordering::SeqCst), 0);
    // The first refresh token was used up: only the saved one works.
    assert!(!oauth.accepts_refresh(first.refresh_token.as_ref().expect("rt")));
    let kept = store.load(&key).expect("load").expect("kept");
    assert!(oauth.accepts_refresh(kept.refresh_token.as_ref().expect("rt")));
}

#[tokio::test]
async fn a_revoked_grant_names_the_citizen_never_the_token_and_is_not_retried() {
    // Expired on issue: the first request refreshes, and Withings' token endpoint refuses
    // (HTTP 200, status 503) the revoked grant's refresh token.
    let oauth = OAuthMock::new(Dialect::Withings, "/authorize", "/v2/oauth2").expires_in(0);
    let server = vendor(&oauth).await;
    let key = GrantKey::new("withings", "carl");
    let store = Arc::new(MemoryTokenStore::new());
    let g = oauth.issue("carl-account");
    store.save(&key, &g).expect("seed");
    oauth.revoke("carl-account");
    let session = Session::new(
        Arc::new(app(&server, &oauth, Dialect::Withings)),
        http(),
        store,
        key,
    );
    let url = server.url("/data");
    let e = session
        .send("the data", |c, token| {
            c.get(&url).bearer_auth(token.expose())
        })
        .await
        .expect_err("revoked");
    let e = match e {
        Error::GrantRevoked { .. } => e,
        other => panic!("expected GrantRevoked, got {other:?}"),
    };
    let text = e.to_string();
    assert!(
        text.contains("carl") && text.contains("healthanalyzer connect withings --subject carl"),
        "{text}"
    );
    let access = g.access_token.expose();
    let refresh = g.refresh_token.as_ref().expect("rt").expose();
    let source: healthanalyzer_source::Error = e.into();
    let all = format!("{source} {source:?}");
    assert!(!all.contains(access) && !all.contains(refresh), "{all}");
    assert!(matches!(
        source,
        healthanalyzer_source::Error::Authorization { .. }
    ));
    assert!(!source.is_retryable());
}

#[tokio::test]
async fn a_citizen_never_connected_is_told_to_run_connect() {
    let oauth = OAuthMock::new(Dialect::Basic, "/authorize", "/token");
    let server = vendor(&oauth).await;
    let session = Session::new(
        Arc::new(app(&server, &oauth, Dialect::Basic)),
        http(),
        Arc::new(MemoryTokenStore::new()),
        GrantKey::new("fitbit", "dora"),
    );
    let e = session.token().await.expect_err("not connected");
    assert!(matches!(e, Error::NotConnected { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("healthanalyzer connect fitbit --subject dora"),
        "{e}"
    );
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[test]
fn no_vendor_source_shows_a_secret_or_an_identifier_in_its_debug_output() {
    use healthanalyzer_source_cloud::{CitizenSettings, CloudSource, Settings, Vendor};
    let folder = tempfile::tempdir().expect("tempdir");
    for vendor in [
        Vendor::Withings,
        Vendor::Fitbit,
        Vendor::IHealth,
        Vendor::Nightscout,
        Vendor::Dexcom,
    ] {
        let oauth = vendor.uses_oauth();
        let settings = Settings {
            client_id: oauth.then(|| "the-client".to_string()),
            client_secret: oauth.then(|| "CLIENT-SECRET-XYZ".to_string()),
            ihealth_sc: (vendor == Vendor::IHealth).then(|| "SC-SECRET-XYZ".to_string()),
            ihealth_sv: (vendor == Vendor::IHealth).then(|| {
                ["bp", "glucose", "spo2", "weight"]
                    .into_iter()
                    .map(|k| (k.to_string(), format!("SV-{k}-XYZ")))
                    .collect()
            }),
            citizens: vec![CitizenSettings {
                name: "anna".into(),
                subject: "urn:oid:1.2.208.176.1.2|0101709995".into(),
                base_url: (!oauth).then(|| "https://anna.example.org/ns".to_string()),
                api_secret: (!oauth).then(|| "API-SECRET-XYZ".to_string()),
                token: None,
            }],
            ..Settings::default()
        };
        let store = Arc::new(MemoryTokenStore::new());
        store
            .save(
                &GrantKey::new("src", "anna"),
                &grant("ACCESS-XYZ", "REFRESH-XYZ"),
            )
            .expect("seed");
        let cloud = CloudSource::new(vendor, "src", settings, folder.path())
            .unwrap_or_else(|e| panic!("{vendor:?}: {e}"))
            .with_token_store(store);
        let sources = cloud
            .sources()
            .unwrap_or_else(|e| panic!("{vendor:?}: {e}"));
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].id(), "src/anna");
        assert_eq!(sources[0].kind(), vendor.kind());
        let text = format!("{cloud:?} {:?} {:?}", sources[0], cloud.citizens());
        for secret in ["XYZ", "0101709995"] {
            assert!(!text.contains(secret), "{vendor:?} shows {secret}: {text}");
        }
    }
}

/// The address the vendor sends the browser to, without following it (the browser of a
/// vendor whose redirect URI is a page elsewhere).
async fn redirected_to(url: &Url) -> String {
    let client = healthanalyzer_source::http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client.get(url.clone()).send().await.expect("authorize");
    assert_eq!(response.status(), 302);
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_string()
}

// Several threads: the pasted answer is read on the flow's thread, while the mock answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_loopback_redirect_the_address_the_browser_ended_on_is_pasted() {
    let oauth = OAuthMock::new(Dialect::Withings, "/authorize", "/v2/oauth2");
    let server = vendor(&oauth).await;
    let mut app = app(&server, &oauth, Dialect::Withings);
    // Withings accepts neither localhost nor IP addresses as redirect URIs.
    app.redirect_uri = Url::parse("https://care.example.org/withings/callback").expect("url");
    assert!(!healthanalyzer_source_cloud::is_loopback(&app.redirect_uri));
    oauth.log_in_as(Some("anna-account"));
    let store = MemoryTokenStore::new();
    let key = GrantKey::new("withings", "anna");
    let client = http();

    // The pasted address of another authorisation (another state) is refused.
    let (tx, rx) = std::sync::mpsc::channel();
    let first = connect_pasted(
        &app,
        &client,
        &store,
        &key,
        |u| tx.send(u.clone()).expect("send"),
        || Ok("https://care.example.org/withings/callback?code=abc&state=someone-else\n".into()),
    )
    .await
    .expect_err("another state");
    assert!(first.to_string().contains("state differs"), "{first}");
    let _ = rx.try_recv();
    // Something that is not an address at all.
    let e = connect_pasted(&app, &client, &store, &key, |_| {}, || Ok("hello\n".into()))
        .await
        .expect_err("not an address");
    assert!(e.to_string().contains("code="), "{e}");

    // The real one: announce hands over the URL, the "browser" is sent to the redirect URI
    // with the code, and that address is pasted.
    let announced = Arc::new(Mutex::new(None));
    let a = Arc::clone(&announced);
    let location = {
        // The answer is read after announce ran, on the same task: fetch it in between.
        let url_slot = Arc::clone(&announced);
        let handle = tokio::runtime::Handle::current();
        move || {
            let url: Url = url_slot.lock().expect("lock").clone().expect("announced");
            let location = std::thread::spawn(move || handle.block_on(redirected_to(&url)))
                .join()
                .expect("browser");
            Ok(format!("{location}\n"))
        }
    };
    let grant = connect_pasted(
        &app,
        &client,
        &store,
        &key,
        move |u| {
            *a.lock().expect("lock") = Some(u.clone());
        },
        location,
    )
    .await
    .expect("connected");
    assert_eq!(store.load(&key).expect("load"), Some(grant));
    assert_eq!(oauth.exchanges(), 1);
    let asked = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/authorize")
        .expect("an authorisation request");
    assert_eq!(
        asked.query_param("redirect_uri").as_deref(),
        Some("https://care.example.org/withings/callback")
    );
}
