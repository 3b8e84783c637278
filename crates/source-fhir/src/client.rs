//! The HTTP side: one reqwest client, authentication, status codes to errors, retries. The
//! generic parts (the crypto provider, statuses, `Retry-After`, transport errors, bounded
//! bodies) are `healthanalyzer_source::http`'s.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use healthanalyzer_source::http::{self, reqwest};
use healthanalyzer_source::{Error, RetryPolicy};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::dpop::DpopKey;

/// The media type of FHIR JSON.
const FHIR_JSON: &str = "application/fhir+json";

/// A request body, its media type and the `Prefer` header that goes with it.
#[derive(Debug, Clone)]
pub(crate) struct Payload {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub text: String,
    /// `Prefer` (`return=representation`), if any.
    pub prefer: Option<&'static str>,
}

impl Payload {
    /// FHIR JSON.
    pub(crate) fn fhir(text: String) -> Self {
        Payload {
            content_type: FHIR_JSON,
            text,
            prefer: None,
        }
    }

    /// An `application/x-www-form-urlencoded` body (a `POST [type]/_search`).
    pub(crate) fn form(text: String) -> Self {
        Payload {
            content_type: "application/x-www-form-urlencoded",
            text,
            prefer: None,
        }
    }
}

/// How to authenticate to the server.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Auth {
    /// No authentication (a test server, a server behind a trusted network).
    #[default]
    None,
    /// A bearer token obtained elsewhere.
    Bearer(String),
    /// OAuth2 client credentials (SMART backend services with a client secret): a token is
    /// fetched from `token_url` and renewed before it expires.
    ClientCredentials {
        /// The token endpoint.
        token_url: String,
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
        /// The scopes to ask for (`system/Observation.read system/Patient.read`).
        scope: Option<String>,
    },
}

impl std::fmt::Debug for Auth {
    // Secrets never reach logs or error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer(…)"),
            Auth::ClientCredentials {
                token_url,
                client_id,
                ..
            } => f
                .debug_struct("ClientCredentials")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

/// How to reach a FHIR server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The base URL (`https://fhir.example.org/fhir`), the one `/metadata` hangs off.
    pub base_url: String,
    /// Authentication.
    pub auth: Auth,
    /// The time one request may take, connection included.
    pub timeout: Duration,
    /// Retries of timeouts, 429 and 5xx.
    pub retry: RetryPolicy,
    /// The largest response body read, in bytes; a larger page (or token answer) is refused
    /// with an error naming the limit. Default [`http::DEFAULT_BODY_LIMIT`] (64 MiB).
    pub body_limit: usize,
    /// DPoP (RFC 9449): with a key, the token is sent as `Authorization: DPoP <token>` with
    /// a fresh proof signed by the key on every request (and on the token request of
    /// [`Auth::ClientCredentials`], which then asks for a DPoP-bound token). A server's
    /// `DPoP-Nonce` challenge (`use_dpop_nonce`) is answered by one retry with the nonce,
    /// which later proofs carry too. `None` (the default): plain bearer tokens.
    pub dpop: Option<DpopKey>,
}

impl ServerConfig {
    /// A server at `base_url`, without authentication, 30 s per request, the default retries,
    /// bodies up to 64 MiB.
    pub fn new(base_url: impl Into<String>) -> Self {
        ServerConfig {
            base_url: base_url.into(),
            auth: Auth::None,
            timeout: http::DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            body_limit: http::DEFAULT_BODY_LIMIT,
            dpop: None,
        }
    }
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

/// A token in hand: the token, whether it is DPoP-bound, and until when it is used.
#[derive(Clone)]
struct Held {
    token: String,
    bound: bool,
    until: Instant,
}

/// A FHIR server connection, shared by sources and sinks (cheap to clone).
#[derive(Clone)]
pub struct FhirClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FhirClient {
    // The token in hand never reaches logs or error messages, nor the base URL's user info.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirClient")
            .field("base", &redact(&self.inner.base))
            .field("auth", &self.inner.config.auth)
            .field("timeout", &self.inner.config.timeout)
            .field("retry", &self.inner.config.retry)
            .field("body_limit", &self.inner.config.body_limit)
            .field("dpop", &self.inner.config.dpop)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    config: ServerConfig,
    token: Mutex<Option<Held>>,
    /// The last `DPoP-Nonce` of the FHIR server and of the token endpoint.
    nonce: Mutex<Option<String>>,
    token_nonce: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `DPoP-Nonce` of an answer, if it has a usable one.
fn dpop_nonce(headers: &HeaderMap) -> Option<String> {
    headers
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 1_024)
        .map(str::to_string)
}

/// Whether a 401's challenge asks for a DPoP nonce (RFC 9449 §9).
fn asks_for_nonce(headers: &HeaderMap) -> bool {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.contains("use_dpop_nonce"))
}

/// The URL without its query (which may carry identifiers) and without user info.
pub(crate) fn redact(url: &Url) -> String {
    http::without_query(url)
}

impl FhirClient {
    /// A client for `config`, or a configuration error (a base URL that does not parse, a TLS
    /// set-up that fails).
    pub fn new(config: ServerConfig) -> Result<Self, Error> {
        let mut base = Url::parse(config.base_url.trim_end_matches('/'))
            .map_err(|e| Error::Config(format!("the FHIR base URL: {e}")))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = http::client_builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(http::DEFAULT_CONNECT_TIMEOUT))
            .build()
            .map_err(|e| Error::Config(format!("the HTTP client: {e}")))?;
        Ok(FhirClient {
            inner: Arc::new(Inner {
                http,
                base,
                config,
                token: Mutex::new(None),
                nonce: Mutex::new(None),
                token_nonce: Mutex::new(None),
            }),
        })
    }

    /// The base URL, ending in `/`.
    pub fn base(&self) -> &Url {
        &self.inner.base
    }

    /// `path` (`Observation?code=…`) against the base URL.
    pub(crate) fn url(&self, path: &str) -> Result<Url, Error> {
        self.inner
            .base
            .join(path)
            .map_err(|e| Error::Config(format!("a URL on the server: {e}")))
    }

    /// Whether `url` is on the configured server (same scheme, host and port): credentials
    /// are never sent elsewhere, whatever a `next` link says.
    pub(crate) fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.inner.base.origin()
    }

    /// The token to send, and whether it goes with a DPoP proof.
    async fn token(&self) -> Result<Option<(String, bool)>, Error> {
        let dpop = self.inner.config.dpop.is_some();
        match &self.inner.config.auth {
            Auth::None => Ok(None),
            Auth::Bearer(t) => Ok(Some((t.clone(), dpop))),
            Auth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                if let Some(h) = lock(&self.inner.token).as_ref()
                    && Instant::now() < h.until
                {
                    return Ok(Some((h.token.clone(), h.bound)));
                }
                let mut form = vec![("grant_type", "client_credentials")];
                if let Some(s) = scope {
                    form.push(("scope", s));
                }
                let mut retried_nonce = false;
                let resp = loop {
                    let mut req = self
                        .inner
                        .http
                        .post(token_url)
                        .basic_auth(client_id, Some(client_secret))
                        .form(&form);
                    if let Some(key) = &self.inner.config.dpop {
                        let url = Url::parse(token_url)
                            .map_err(|e| Error::Config(format!("the token endpoint's URL: {e}")))?;
                        let nonce = lock(&self.inner.token_nonce).clone();
                        req = req.header("DPoP", key.proof("POST", &url, None, nonce.as_deref())?);
                    }
                    let resp = req
                        .send()
                        .await
                        .map_err(|e| http::transport_error("the token endpoint", e))?;
                    let nonce = dpop_nonce(resp.headers());
                    if dpop && let Some(n) = &nonce {
                        *lock(&self.inner.token_nonce) = Some(n.clone());
                    }
                    // RFC 9449 §8: an authorization server asks for a nonce with a 400
                    // `use_dpop_nonce` error and a `DPoP-Nonce` header.
                    if dpop
                        && !retried_nonce
                        && nonce.is_some()
                        && resp.status() == StatusCode::BAD_REQUEST
                    {
                        let body = http::read_text(
                            resp,
                            self.inner.config.body_limit,
                            "the token endpoint",
                        )
                        .await?;
                        if body.contains("use_dpop_nonce") {
                            retried_nonce = true;
                            continue;
                        }
                        return Err(Error::Auth {
                            reason: "the token endpoint refused the client credentials (400 Bad Request)".into(),
                        });
                    }
                    break resp;
                };
                let status = resp.status();
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST {
                    return Err(Error::Auth {
                        reason: format!(
                            "the token endpoint refused the client credentials ({status})"
                        ),
                    });
                }
                if !status.is_success() {
                    return Err(status_error(
                        status,
                        resp.headers(),
                        "the token endpoint",
                        "",
                    ));
                }
                let body =
                    http::read_text(resp, self.inner.config.body_limit, "the token endpoint")
                        .await?;
                let token: Token = serde_json::from_str(&body).map_err(|e| Error::Auth {
                    reason: format!("the token endpoint's answer is not an OAuth2 token: {e}"),
                })?;
                // A DPoP-bound token says `token_type: DPoP`; one that says `Bearer` was not
                // bound (the server does not do DPoP) and goes as a bearer token.
                let bound = dpop
                    && token
                        .token_type
                        .as_deref()
                        .is_none_or(|t| t.eq_ignore_ascii_case("dpop"));
                // Renew a minute early.
                let life =
                    Duration::from_secs(token.expires_in.unwrap_or(300).saturating_sub(60).max(1));
                *lock(&self.inner.token) = Some(Held {
                    token: token.access_token.clone(),
                    bound,
                    until: Instant::now() + life,
                });
                Ok(Some((token.access_token, bound)))
            }
        }
    }

    /// GET `url` as FHIR JSON, with retries.
    pub(crate) async fn get(&self, url: &Url) -> Result<String, Error> {
        self.with_retries(|| self.once(reqwest::Method::GET, url, None))
            .await
    }

    /// POST a Bundle to the base URL (a transaction or batch), with retries. A transaction
    /// with conditional creates is safe to repeat.
    pub(crate) async fn post_bundle(&self, body: String) -> Result<String, Error> {
        let base = self.inner.base.clone();
        let payload = Payload::fhir(body);
        self.with_retries(|| self.once(reqwest::Method::POST, &base, Some(&payload)))
            .await
    }

    /// POST `payload` to `url` (an operation, a `_search`, a batch): with retries when
    /// `repeatable` (a read, or a write that is safe to send twice), else once.
    pub(crate) async fn post(
        &self,
        url: &Url,
        payload: &Payload,
        repeatable: bool,
    ) -> Result<String, Error> {
        if repeatable {
            self.with_retries(|| self.once(reqwest::Method::POST, url, Some(payload)))
                .await
        } else {
            self.once(reqwest::Method::POST, url, Some(payload)).await
        }
    }

    async fn with_retries<F, Fut>(&self, op: F) -> Result<String, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<String, Error>>,
    {
        self.inner
            .config
            .retry
            .run(op, tokio::time::sleep, |_, _, _| {})
            .await
    }

    async fn once(
        &self,
        method: reqwest::Method,
        url: &Url,
        body: Option<&Payload>,
    ) -> Result<String, Error> {
        let token = self.token().await?;
        let where_ = redact(url);
        let mut retried_nonce = false;
        loop {
            let mut req = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .header(ACCEPT, FHIR_JSON);
            match (&token, &self.inner.config.dpop) {
                (Some((t, true)), Some(key)) => {
                    let nonce = lock(&self.inner.nonce).clone();
                    let proof = key.proof(method.as_str(), url, Some(t), nonce.as_deref())?;
                    req = req
                        .header(AUTHORIZATION, format!("DPoP {t}"))
                        .header("DPoP", proof);
                }
                (Some((t, _)), _) => req = req.bearer_auth(t),
                (None, _) => {}
            }
            if let Some(b) = body {
                req = req
                    .header(CONTENT_TYPE, b.content_type)
                    .body(b.text.clone());
                if let Some(p) = b.prefer {
                    req = req.header("Prefer", p);
                }
            }
            let resp = req
                .send()
                .await
                .map_err(|e| http::transport_error(&where_, e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let nonce = dpop_nonce(&headers);
            if self.inner.config.dpop.is_some()
                && let Some(n) = &nonce
            {
                *lock(&self.inner.nonce) = Some(n.clone());
            }
            // Bounded: a page (or an error's body) over the limit is refused, not held.
            let text = http::read_text(resp, self.inner.config.body_limit, &where_).await?;
            if status.is_success() {
                return Ok(text);
            }
            // RFC 9449 §9: the server wants a nonce in the proof; once, with the one it sent.
            if status == StatusCode::UNAUTHORIZED
                && matches!(token, Some((_, true)))
                && self.inner.config.dpop.is_some()
                && nonce.is_some()
                && asks_for_nonce(&headers)
                && !retried_nonce
            {
                retried_nonce = true;
                continue;
            }
            return Err(status_error(status, &headers, &where_, &text));
        }
    }
}

/// The diagnostics of an OperationOutcome, if the body is one.
fn diagnostics(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("issue")?.as_array().map(|issues| {
                issues
                    .iter()
                    .filter_map(|i| i.get("diagnostics").and_then(|d| d.as_str()))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        })
        .filter(|d| !d.is_empty())
        .map(|d| d.chars().take(300).collect::<String>())
        .unwrap_or_default()
}

/// A status that is not a success as an error: `healthanalyzer_source::http::status_error`
/// with the OperationOutcome's diagnostics, and a 404 that names what to check on a FHIR
/// server.
fn status_error(status: StatusCode, headers: &HeaderMap, where_: &str, body: &str) -> Error {
    if status == StatusCode::NOT_FOUND {
        return Error::Config(format!(
            "{where_} answered 404 Not Found: check the base URL and that the server offers this resource type"
        ));
    }
    let said = diagnostics(body);
    http::status_error(status, headers, where_, Some(&said))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_the_diagnostics_and_a_404_names_the_base_url() {
        let outcome = r#"{"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception", "diagnostics": "database is down"}]}"#;
        let e = status_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &HeaderMap::new(),
            "http://fhir.example/fhir/Observation",
            outcome,
        );
        assert!(e.is_retryable(), "{e}");
        assert!(
            e.to_string()
                .ends_with("answered 503 Service Unavailable: database is down"),
            "{e}"
        );
        let e = status_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), "x", "not json");
        assert!(matches!(e, Error::BadData { .. }), "{e:?}");
        assert!(
            e.to_string()
                .ends_with("the server answered 400 Bad Request"),
            "{e}"
        );
        let e = status_error(StatusCode::NOT_FOUND, &HeaderMap::new(), "x", outcome);
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert!(e.to_string().contains("check the base URL"), "{e}");
    }

    #[test]
    fn the_debug_form_shows_neither_the_token_nor_user_info() {
        let mut config = ServerConfig::new("https://me:pa55@fhir.example/fhir");
        config.auth = Auth::Bearer("s3cret".into());
        let client = FhirClient::new(config).expect("client");
        *lock(&client.inner.token) = Some(Held {
            token: "t0ken".into(),
            bound: false,
            until: Instant::now(),
        });
        let shown = format!("{client:?}");
        assert!(shown.contains("fhir.example/fhir"), "{shown}");
        for secret in ["s3cret", "t0ken", "pa55"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }
}
