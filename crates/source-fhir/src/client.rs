//! The HTTP side: one reqwest client, authentication, status codes to errors, retries.

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use healthanalyzer_model::jiff;
use healthanalyzer_source::{Error, RetryPolicy};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

/// The media type of FHIR JSON.
const FHIR_JSON: &str = "application/fhir+json";

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
}

impl ServerConfig {
    /// A server at `base_url`, without authentication, 30 s per request, the default retries.
    pub fn new(base_url: impl Into<String>) -> Self {
        ServerConfig {
            base_url: base_url.into(),
            auth: Auth::None,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A FHIR server connection, shared by sources and sinks (cheap to clone).
#[derive(Debug, Clone)]
pub struct FhirClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    config: ServerConfig,
    token: Mutex<Option<(String, Instant)>>,
}

fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The process may have chosen a provider already; that one is used then.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The URL without its query (which may carry identifiers) and without user info.
pub(crate) fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// `Retry-After`: seconds, or an HTTP date (RFC 9110 IMF-fixdate, an RFC 2822 date-time).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let wait = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

impl FhirClient {
    /// A client for `config`, or a configuration error (a base URL that does not parse, a TLS
    /// set-up that fails).
    pub fn new(config: ServerConfig) -> Result<Self, Error> {
        install_crypto();
        let mut base = Url::parse(config.base_url.trim_end_matches('/'))
            .map_err(|e| Error::Config(format!("the FHIR base URL: {e}")))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("healthanalyzer/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("the HTTP client: {e}")))?;
        Ok(FhirClient {
            inner: Arc::new(Inner {
                http,
                base,
                config,
                token: Mutex::new(None),
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

    async fn token(&self) -> Result<Option<String>, Error> {
        match &self.inner.config.auth {
            Auth::None => Ok(None),
            Auth::Bearer(t) => Ok(Some(t.clone())),
            Auth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                if let Some((t, until)) = self
                    .inner
                    .token
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_ref()
                    && Instant::now() < *until
                {
                    return Ok(Some(t.clone()));
                }
                let mut form = vec![("grant_type", "client_credentials")];
                if let Some(s) = scope {
                    form.push(("scope", s));
                }
                let resp = self
                    .inner
                    .http
                    .post(token_url)
                    .basic_auth(client_id, Some(client_secret))
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| transport("the token endpoint", e))?;
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
                let body = resp
                    .text()
                    .await
                    .map_err(|e| transport("the token endpoint", e))?;
                let token: Token = serde_json::from_str(&body).map_err(|e| Error::Auth {
                    reason: format!("the token endpoint's answer is not an OAuth2 token: {e}"),
                })?;
                // Renew a minute early.
                let life =
                    Duration::from_secs(token.expires_in.unwrap_or(300).saturating_sub(60).max(1));
                *self
                    .inner
                    .token
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((token.access_token.clone(), Instant::now() + life));
                Ok(Some(token.access_token))
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
        self.with_retries(|| self.once(reqwest::Method::POST, &base, Some(body.clone())))
            .await
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
        body: Option<String>,
    ) -> Result<String, Error> {
        let mut req = self
            .inner
            .http
            .request(method, url.clone())
            .header(ACCEPT, FHIR_JSON);
        if let Some(t) = self.token().await? {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header(CONTENT_TYPE, FHIR_JSON).body(b);
        }
        let where_ = redact(url);
        let resp = req.send().await.map_err(|e| transport(&where_, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| transport(&where_, e))?;
        if status.is_success() {
            return Ok(text);
        }
        Err(status_error(status, &headers, &where_, &text))
    }
}

fn transport(where_: &str, e: reqwest::Error) -> Error {
    // Timeouts, refused and dropped connections: the next attempt may do better.
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "the connection failed".to_string()
    };
    Error::Unavailable {
        reason: format!("{where_}: {what}"),
        retry_after: None,
        cause: Some(Box::new(e.without_url())),
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
        .map(|d| format!(": {}", d.chars().take(300).collect::<String>()))
        .unwrap_or_default()
}

fn status_error(status: StatusCode, headers: &HeaderMap, where_: &str, body: &str) -> Error {
    let said = diagnostics(body);
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Auth {
            reason: format!("{where_} answered {status}{said}"),
        },
        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => Error::Unavailable {
            reason: format!("{where_} answered {status}"),
            retry_after: retry_after(headers),
            cause: None,
        },
        s if s.is_server_error() => Error::Unavailable {
            reason: format!("{where_} answered {status}{said}"),
            retry_after: retry_after(headers),
            cause: None,
        },
        StatusCode::NOT_FOUND => Error::Config(format!(
            "{where_} answered 404 Not Found: check the base URL and that the server offers this resource type"
        )),
        _ => Error::BadData {
            location: where_.to_string(),
            reason: format!("the server answered {status}{said}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, v.parse().expect("header"));
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(90);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&soon)
            .expect("date");
        let wait = retry_after(&headers(&date)).expect("a wait");
        assert!(
            wait > Duration::from_secs(80) && wait <= Duration::from_secs(90),
            "{wait:?}"
        );
        // A date in the past: no wait.
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon")), None);
    }
}
