//! Mock vendor clouds for tests (feature `testkit`): an OAuth2 authorisation server that
//! speaks each vendor's [`Dialect`], rotates refresh tokens and can revoke a grant, to put
//! beside a vendor's data routes on the source test kit's
//! [`MockServer`](healthanalyzer_source::testkit::mock::MockServer).
//!
//! ```
//! use healthanalyzer_source::testkit::mock::{MockResponse, MockServer, RecordedRequest};
//! use healthanalyzer_source_cloud::Dialect;
//! use healthanalyzer_source_cloud::testkit::OAuthMock;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let oauth = OAuthMock::new(Dialect::Standard, "/oauth2/authorize", "/oauth2/token");
//! let vendor = oauth.clone();
//! let server = MockServer::start(move |r: &RecordedRequest| {
//!     if let Some(answer) = vendor.respond(r) {
//!         return answer; // the OAuth2 endpoints
//!     }
//!     match vendor.account(r) {
//!         Ok(_account) => MockResponse::new(200).json("{\"records\": []}"),
//!         Err(refused) => refused, // a 401 the vendor's way
//!     }
//! })
//! .await?;
//! // A grant as `connect` would have saved it, for the account "anna".
//! let grant = oauth.issue("anna");
//! assert!(oauth.accepts_refresh(grant.refresh_token.as_ref().expect("refresh token")));
//! # let _ = server;
//! # Ok(()) }
//! ```
//!
//! # How it rotates
//!
//! Every refresh gives a new access token and a new refresh token. The refresh token used
//! stays valid until one of its successors is used (its access token on an API request, or
//! its refresh token on a refresh); then it, and every older one, is void. That is the
//! window in which a client that died between the vendor's answer and saving it still holds
//! a working token, and why a client must save the new grant *before* it uses it: a client
//! that used the new access token first and died before saving is left with a void refresh
//! token, which this mock refuses as the vendors do.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use healthanalyzer_source::testkit::mock::{MockResponse, RecordedRequest};
use sha2::{Digest, Sha256};

use crate::oauth::{Dialect, now};
use crate::token::{Grant, Secret};

/// The client id the mock accepts unless told otherwise.
pub const CLIENT_ID: &str = "mock-client";
/// The client secret the mock accepts unless told otherwise.
pub const CLIENT_SECRET: &str = "mock-client-secret-0123456789";
/// How long past its stated expiry the mock still accepts an access token: 30 seconds.
pub const GRACE_SECONDS: i64 = 30;

#[derive(Debug)]
struct Pending {
    account: String,
    challenge: String,
    redirect_uri: String,
}

#[derive(Debug, Clone)]
struct Issued {
    account: String,
    generation: u64,
    expires_at: i64,
}

#[derive(Debug, Default)]
struct State {
    counter: u64,
    codes: HashMap<String, Pending>,
    access: HashMap<String, Issued>,
    refresh: HashMap<String, Issued>,
    /// Per account: refresh tokens of an older generation are void.
    floor: HashMap<String, u64>,
    revoked: HashSet<String>,
    log_in_as: Option<String>,
    refreshes: usize,
    exchanges: usize,
    /// Every token issued, for tests that look for them where they must not be.
    issued: Vec<String>,
}

/// A mock OAuth2 authorisation server; clones share their state.
#[derive(Debug, Clone)]
pub struct OAuthMock {
    dialect: Dialect,
    authorize_path: String,
    token_path: String,
    client_id: String,
    client_secret: String,
    expires_in: i64,
    state: Arc<Mutex<State>>,
}

impl OAuthMock {
    /// A server speaking `dialect` with its authorisation endpoint at `authorize_path` and
    /// its token endpoint at `token_path`, for the client [`CLIENT_ID`] / [`CLIENT_SECRET`];
    /// access tokens live an hour.
    pub fn new(dialect: Dialect, authorize_path: &str, token_path: &str) -> OAuthMock {
        OAuthMock {
            dialect,
            authorize_path: authorize_path.to_string(),
            token_path: token_path.to_string(),
            client_id: CLIENT_ID.to_string(),
            client_secret: CLIENT_SECRET.to_string(),
            expires_in: 3600,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Access tokens are said to live `seconds`. The mock accepts one up to
    /// [`GRACE_SECONDS`] past that (clocks differ): with 0, a client that refreshes before
    /// expiry refreshes before every request, and its fresh tokens are accepted; with
    /// `-GRACE_SECONDS` or less, tokens are refused as expired when issued.
    pub fn expires_in(mut self, seconds: i64) -> OAuthMock {
        self.expires_in = seconds;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The authorisation endpoint's path.
    pub fn authorize_path(&self) -> &str {
        &self.authorize_path
    }

    /// The token endpoint's path.
    pub fn token_path(&self) -> &str {
        &self.token_path
    }

    fn issue_locked(&self, s: &mut State, account: &str, generation: u64) -> Grant {
        s.counter += 1;
        let n = s.counter;
        let access = format!(
            "at-{account}-{n}-{}",
            URL_SAFE_NO_PAD.encode(n.to_be_bytes())
        );
        let refresh = format!(
            "rt-{account}-{n}-{}",
            URL_SAFE_NO_PAD.encode(n.to_le_bytes())
        );
        let obtained_at = now();
        let expires_at = obtained_at + self.expires_in;
        let issued = Issued {
            account: account.to_string(),
            generation,
            expires_at,
        };
        s.access.insert(access.clone(), issued.clone());
        s.refresh.insert(refresh.clone(), issued);
        s.issued.push(access.clone());
        s.issued.push(refresh.clone());
        Grant {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new(refresh)),
            expires_at: Some(expires_at),
            scope: None,
            user_id: Some(account.to_string()),
            obtained_at,
        }
    }

    /// A grant for `account`, as `connect` would have saved it (to put in a token store).
    pub fn issue(&self, account: &str) -> Grant {
        let mut s = self.lock();
        s.revoked.remove(account);
        let generation = s.floor.get(account).copied().unwrap_or(0);
        self.issue_locked(&mut s, account, generation)
    }

    /// Whom the next authorisation in the "browser" logs in as (`None`: the citizen refuses,
    /// and the redirect carries `error=access_denied`).
    pub fn log_in_as(&self, account: Option<&str>) {
        self.lock().log_in_as = account.map(str::to_string);
    }

    /// Revokes every token of `account`, as a citizen who disconnects the app does; a new
    /// authorisation ([`issue`](Self::issue), or the authorisation endpoint) grants again.
    pub fn revoke(&self, account: &str) {
        let mut s = self.lock();
        s.revoked.insert(account.to_string());
        s.access.retain(|_, i| i.account != account);
        s.refresh.retain(|_, i| i.account != account);
    }

    /// Whether `refresh_token` would be accepted now.
    pub fn accepts_refresh(&self, refresh_token: &Secret) -> bool {
        let s = self.lock();
        valid_refresh(&s, refresh_token.expose()).is_some()
    }

    /// Refreshes answered with a new grant so far.
    pub fn refreshes(&self) -> usize {
        self.lock().refreshes
    }

    /// Every access and refresh token issued so far, and the client secret: what must never
    /// appear in a log, an error or `Debug` output.
    pub fn secrets(&self) -> Vec<String> {
        let mut all = self.lock().issued.clone();
        all.push(self.client_secret.clone());
        all
    }

    /// Codes exchanged for a grant so far.
    pub fn exchanges(&self) -> usize {
        self.lock().exchanges
    }

    /// The account an API request's access token belongs to (from `Authorization: Bearer`,
    /// or the `access_token` query parameter), or the vendor's answer to a missing, unknown,
    /// expired or revoked token. Using a token voids the refresh tokens older than it.
    ///
    /// # Errors
    /// The refusal to send back: HTTP 401 (Withings: HTTP 200 with `status` 401).
    pub fn account(&self, request: &RecordedRequest) -> Result<String, MockResponse> {
        let token = request
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_string)
            .or_else(|| request.query_param("access_token"));
        let mut s = self.lock();
        let issued = token
            .as_deref()
            .and_then(|t| s.access.get(t))
            .filter(|i| i.expires_at + GRACE_SECONDS > now() && !s.revoked.contains(&i.account))
            .cloned();
        match issued {
            Some(i) => {
                let floor = s.floor.entry(i.account.clone()).or_insert(0);
                *floor = (*floor).max(i.generation);
                Ok(i.account)
            }
            None => Err(self.unauthorized()),
        }
    }

    fn unauthorized(&self) -> MockResponse {
        match self.dialect {
            Dialect::Withings => MockResponse::new(200)
                .json(r#"{"status":401,"error":"XRequestID: Not provided invalid_token: The access token provided is invalid"}"#),
            Dialect::IHealth => MockResponse::new(401)
                .json(r#"{"Error":"invalid_token","ErrorCode":1000,"ErrorDescription":"access token is invalid"}"#),
            _ => MockResponse::new(401)
                .header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
                .json(r#"{"error":"invalid_token"}"#),
        }
    }

    /// The answer of the authorisation or the token endpoint, or `None` for any other
    /// request (the vendor's data routes answer those).
    pub fn respond(&self, request: &RecordedRequest) -> Option<MockResponse> {
        if request.path == self.authorize_path {
            return Some(self.authorize(request));
        }
        if request.path == self.token_path {
            return Some(self.token(request));
        }
        None
    }

    fn authorize(&self, r: &RecordedRequest) -> MockResponse {
        let q = |n: &str| r.query_param(n).unwrap_or_default();
        if q("response_type") != "code" || q("client_id") != self.client_id {
            return MockResponse::new(400).body("unknown client or response type");
        }
        if q("code_challenge_method") != "S256" || q("code_challenge").is_empty() {
            return MockResponse::new(400).body("PKCE (S256) is required");
        }
        let redirect = q("redirect_uri");
        let state = q("state");
        let mut s = self.lock();
        let location = match s.log_in_as.clone() {
            Some(account) => {
                s.counter += 1;
                let code = format!("code-{}", s.counter);
                s.codes.insert(
                    code.clone(),
                    Pending {
                        account,
                        challenge: q("code_challenge"),
                        redirect_uri: redirect.clone(),
                    },
                );
                with_query(&redirect, &[("code", &code), ("state", &state)])
            }
            None => with_query(&redirect, &[("error", "access_denied"), ("state", &state)]),
        };
        MockResponse::new(302).header("Location", &location)
    }

    fn token(&self, r: &RecordedRequest) -> MockResponse {
        // iHealth sends its token requests as GET queries, everyone else as forms.
        let params: HashMap<String, String> = if self.dialect == Dialect::IHealth {
            r.query_pairs().into_iter().collect()
        } else {
            form_urlencoded::parse(r.body_text().as_bytes())
                .into_owned()
                .collect()
        };
        let p = |n: &str| params.get(n).cloned().unwrap_or_default();
        let client_ok = match self.dialect {
            Dialect::Basic => {
                let expected = format!(
                    "Basic {}",
                    STANDARD.encode(format!("{}:{}", self.client_id, self.client_secret))
                );
                r.header("authorization") == Some(expected.as_str())
            }
            _ => p("client_id") == self.client_id && p("client_secret") == self.client_secret,
        };
        if self.dialect == Dialect::Withings && p("action") != "requesttoken" {
            return MockResponse::new(200).json(r#"{"status":2554,"error":"Unknown action"}"#);
        }
        if !client_ok {
            return self.refused(401, "invalid_client");
        }
        let mut s = self.lock();
        match p("grant_type").as_str() {
            "authorization_code" => {
                let Some(pending) = s.codes.remove(&p("code")) else {
                    return self.refused(400, "invalid_grant");
                };
                let challenge =
                    URL_SAFE_NO_PAD.encode(Sha256::digest(p("code_verifier").as_bytes()));
                if challenge != pending.challenge || p("redirect_uri") != pending.redirect_uri {
                    return self.refused(400, "invalid_grant");
                }
                s.revoked.remove(&pending.account);
                s.exchanges += 1;
                let generation = s.floor.get(&pending.account).copied().unwrap_or(0);
                let grant = self.issue_locked(&mut s, &pending.account, generation);
                self.granted(&grant)
            }
            "refresh_token" => {
                let token = p("refresh_token");
                let Some(issued) = valid_refresh(&s, &token) else {
                    return self.refused(400, "invalid_grant");
                };
                // Using a refresh token voids the older ones, as using an access token does.
                let floor = s.floor.entry(issued.account.clone()).or_insert(0);
                *floor = (*floor).max(issued.generation);
                s.refreshes += 1;
                let grant = self.issue_locked(&mut s, &issued.account, issued.generation + 1);
                self.granted(&grant)
            }
            _ => self.refused(400, "unsupported_grant_type"),
        }
    }

    fn granted(&self, g: &Grant) -> MockResponse {
        let access = g.access_token.expose();
        let refresh = g
            .refresh_token
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default();
        let user = g.user_id.clone().unwrap_or_default();
        let body = match self.dialect {
            Dialect::Withings => serde_json::json!({
                "status": 0,
                "body": {
                    "userid": user, "access_token": access, "refresh_token": refresh,
                    "expires_in": self.expires_in, "scope": "user.metrics,user.activity",
                    "token_type": "Bearer",
                }
            }),
            Dialect::IHealth => serde_json::json!({
                "APIName": "OpenApiBP OpenApiBG OpenApiSpO2 OpenApiWeight",
                "AccessToken": access, "RefreshToken": refresh, "Expires": self.expires_in,
                "RefreshTokenExpires": 31_536_000, "UserID": user, "client_para": "",
            }),
            _ => serde_json::json!({
                "access_token": access, "refresh_token": refresh, "expires_in": self.expires_in,
                "token_type": "Bearer", "user_id": user, "scope": "offline_access",
            }),
        };
        MockResponse::new(200).json(body.to_string())
    }

    fn refused(&self, status: u16, error: &str) -> MockResponse {
        match self.dialect {
            Dialect::Withings => MockResponse::new(200).json(
                serde_json::json!({"status": 503, "error": format!("Invalid Params: {error}")})
                    .to_string(),
            ),
            Dialect::IHealth => MockResponse::new(400).json(
                serde_json::json!({"Error": error, "ErrorCode": 4003,
                    "ErrorDescription": "the token is invalid or has expired"})
                .to_string(),
            ),
            Dialect::Basic => MockResponse::new(status).json(
                serde_json::json!({"errors": [{"errorType": error, "message": "refused"}], "success": false})
                    .to_string(),
            ),
            _ => MockResponse::new(status)
                .json(serde_json::json!({"error": error}).to_string()),
        }
    }
}

fn valid_refresh(s: &State, token: &str) -> Option<Issued> {
    let issued = s.refresh.get(token)?;
    let floor = s.floor.get(&issued.account).copied().unwrap_or(0);
    (!s.revoked.contains(&issued.account) && issued.generation >= floor).then(|| issued.clone())
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = String::from(base);
    out.push(if base.contains('?') { '&' } else { '?' });
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        form.append_pair(k, v);
    }
    out.push_str(&form.finish());
    out
}
