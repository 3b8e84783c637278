//! Helpers for HTTP connectors (feature `http`): what every connector of a web API needs and
//! gets subtly wrong when it writes it again.
//!
//! - [`client_builder`]: a [`reqwest::ClientBuilder`] that works in any process. The workspace
//!   builds reqwest without a built-in TLS crypto provider (`rustls-no-provider`), and
//!   `reqwest::Client::builder().build()` panics when none is installed; this installs the
//!   *ring* provider once (a provider the process installed already is kept), sets a user
//!   agent and default timeouts.
//! - [`status_error`]: an HTTP status to the source [`Error`] the sync engine acts on:
//!   retryable for 408, 425, 429 and 5xx (with the [`Retry-After`](retry_after) wait),
//!   [`Error::Auth`] for 401 and 403, [`Error::Config`] for 404, [`Error::BadData`] for the
//!   rest.
//! - [`retry_after`] / [`parse_retry_after`]: `Retry-After` in both forms, delay-seconds and
//!   HTTP-date.
//! - [`transport_error`]: a reqwest failure to an [`Error`]: timeouts and connection failures
//!   are retryable; the cause is kept without its URL.
//! - [`redact`] and [`without_query`]: a URL fit for an error message: no user info, no
//!   values of token-like query parameters (or no query at all).
//! - [`read_body`] / [`read_text`] / [`success_text`]: a response body read up to a bound
//!   ([`DEFAULT_BODY_LIMIT`], 64 MiB, unless you pass another), so a connector never holds an
//!   unbounded response: a larger one is a clear, non-retryable error naming the limit.
//!
//! reqwest is re-exported ([`reqwest`]): use it, and your connector's requests and ours share
//! one version.
//!
//! ```no_run
//! use healthanalyzer_source::Error;
//! use healthanalyzer_source::http::{self, reqwest};
//!
//! # async fn demo() -> Result<(), Error> {
//! let client = http::client_builder()
//!     .build()
//!     .map_err(|e| Error::Config(format!("the HTTP client: {e}")))?;
//! let url = reqwest::Url::parse("https://api.example.org/v1/readings?since=2024-05-01&api_key=s3cret")
//!     .map_err(|e| Error::Config(format!("the API URL: {e}")))?;
//! // For messages: "https://api.example.org/v1/readings?since=2024-05-01&api_key=REDACTED".
//! let location = http::redact(&url);
//! let response = client
//!     .get(url)
//!     .send()
//!     .await
//!     .map_err(|e| http::transport_error(&location, e))?;
//! // A 429 is retryable with its Retry-After wait, a 401 says to check the credentials, a
//! // body over 64 MiB is refused.
//! let text = http::success_text(response, http::DEFAULT_BODY_LIMIT, &location).await?;
//! # let _ = text;
//! # Ok(()) }
//! ```

use std::sync::Once;
use std::time::{Duration, SystemTime};

pub use reqwest;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};

use crate::error::{Error, Result};

/// The largest response body [`read_body`] takes when the connector names no other bound:
/// 64 MiB. A FHIR page of 1,000 Observations is about 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The time a request may take, the body included, unless the connector sets another:
/// 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The time connecting may take, unless the connector sets another: 10 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The user agent [`client_builder`] sets: `healthanalyzer/<version>`.
pub const USER_AGENT: &str = concat!("healthanalyzer/", env!("CARGO_PKG_VERSION"));

/// Installs the *ring* rustls crypto provider as the process default, once. When the process
/// (or a library in it) installed a provider already, that one stays and this does nothing.
///
/// [`client_builder`] calls it; call it yourself before building a reqwest or rustls client
/// any other way (a test's own client, a server's TLS config).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Another thread may install one between the check and this: theirs is kept,
            // and the error saying so means nothing to us.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// A reqwest client builder that can build in any process: the crypto provider installed
/// ([`install_crypto_provider`]), the [`USER_AGENT`], a [`DEFAULT_TIMEOUT`] per request and a
/// [`DEFAULT_CONNECT_TIMEOUT`]. Set anything on it again to change it (`.timeout(…)`).
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(DEFAULT_TIMEOUT)
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
}

/// The wait a response's `Retry-After` header asks for, if it has one that parses (see
/// [`parse_retry_after`]).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

/// A `Retry-After` value (RFC 9110 §10.2.3) as a wait from `now`: delay-seconds (`120`), or an
/// HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`, and the obsolete RFC 850 and asctime forms).
/// A date in the past is no wait; a value that is neither is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Seconds too many for a u64 are a wait longer than any policy accepts.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An HTTP status that is not a success as the source error the sync engine acts on.
///
/// `location` names the request in the message (a [`redact`]ed URL, "the token endpoint");
/// `detail` is what the server said, if the connector extracted something safe to show
/// (a FHIR OperationOutcome's diagnostics); never the raw body, which may quote personal data.
///
/// | status | error | retried |
/// |---|---|---|
/// | 408, 425, 429, 5xx | [`Error::Unavailable`] with the `Retry-After` wait | yes |
/// | 401, 403 | [`Error::Auth`] ("check the credentials in the configuration") | no |
/// | 404 | [`Error::Config`] ("check the URL in the configuration") | no |
/// | any other | [`Error::BadData`] | no |
pub fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    location: &str,
    detail: Option<&str>,
) -> Error {
    let said = match detail.map(str::trim) {
        Some(d) if !d.is_empty() => format!(": {d}"),
        _ => String::new(),
    };
    match status.as_u16() {
        401 | 403 => Error::Auth {
            reason: format!("{location} answered {status}{said}"),
        },
        408 | 425 | 429 | 500..=599 => Error::Unavailable {
            reason: format!("{location} answered {status}{said}"),
            retry_after: retry_after(headers),
            cause: None,
        },
        404 => Error::Config(format!(
            "{location} answered {status}{said}: check the URL in the configuration"
        )),
        _ => Error::BadData {
            location: location.to_string(),
            reason: format!("the server answered {status}{said}"),
        },
    }
}

/// A reqwest failure as the source error: timeouts and failed or dropped connections are
/// [`Error::Unavailable`] (retryable); a request that cannot be built and too many redirects
/// are not. The reqwest error is kept as the cause, without its URL (the query may carry a
/// token or an identifier); `location` names the request instead.
pub fn transport_error(location: &str, error: reqwest::Error) -> Error {
    let cause = Box::new(error.without_url());
    if cause.is_builder() {
        return Error::Other {
            reason: format!("{location}: the request could not be made"),
            retryable: false,
            cause: Some(cause),
        };
    }
    if cause.is_redirect() {
        return Error::Other {
            reason: format!("{location}: too many redirects, or a redirect loop"),
            retryable: false,
            cause: Some(cause),
        };
    }
    let what = if cause.is_timeout() {
        "timed out"
    } else if cause.is_connect() {
        "could not connect"
    } else {
        "the connection failed"
    };
    Error::Unavailable {
        reason: format!("{location}: {what}"),
        retry_after: None,
        cause: Some(cause),
    }
}

/// Whether a query parameter's value is a secret: its name (any case) contains `token`,
/// `secret`, `password`, `passwd`, `apikey`, `api_key`, `api-key`, `signature`, `credential`,
/// `auth` or `session`, or is `key`, `sig`, `code`, `pwd` or `pass`.
pub fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    const CONTAINS: [&str; 11] = [
        "token",
        "secret",
        "password",
        "passwd",
        "apikey",
        "api_key",
        "api-key",
        "signature",
        "credential",
        "auth",
        "session",
    ];
    const EXACTLY: [&str; 5] = ["key", "sig", "code", "pwd", "pass"];
    CONTAINS.iter().any(|c| name.contains(c)) || EXACTLY.contains(&name.as_str())
}

/// `url` fit for an error message: without user info (`user:password@`) and fragment, the
/// values of secret query parameters ([`is_secret_parameter`]) replaced by `REDACTED`, the
/// rest of the query as it was.
///
/// Use [`without_query`] instead when the query can name a person (a FHIR search by
/// `patient`, an API filtered by user id): messages never carry identifiers.
pub fn redact(url: &Url) -> String {
    let mut out = without_query(url);
    if let Some(query) = url.query() {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                // The name is judged as the server reads it (`+` a space, `%XX` a byte).
                Some((name, _))
                    if form_urlencoded::parse(pair.as_bytes())
                        .next()
                        .is_some_and(|(n, _)| is_secret_parameter(&n)) =>
                {
                    format!("{name}=REDACTED")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `url` without user info, query and fragment: scheme, host, port and path only.
pub fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    // Only URLs that cannot have user info refuse these, and they have none.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// The error for a body over `limit`.
fn too_large(location: &str, limit: usize) -> Error {
    Error::BadData {
        location: location.to_string(),
        reason: format!(
            "the response body is larger than the limit of {} ({limit} bytes); ask for smaller pages, or raise the connector's body limit if the source really sends this much",
            human_bytes(limit)
        ),
    }
}

/// `67108864` as `64 MiB`, `1500` as `1500 B`.
fn human_bytes(n: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} B")
}

/// Reads `response`'s body, refusing one longer than `limit` bytes with a non-retryable
/// [`Error::BadData`] that names the limit: as soon as the `Content-Length` says so, else as
/// soon as that much arrived (a chunked or compressed body is counted as it is decoded, so a
/// small compressed body that inflates past the limit is refused too). `location` names the
/// request in errors. A connection that fails half-way is retryable ([`transport_error`]).
pub async fn read_body(mut response: Response, limit: usize, location: &str) -> Result<Vec<u8>> {
    let announced = response.content_length();
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large(location, limit));
    }
    // Trust the announcement for the first allocation only up to a point.
    let first = announced.map_or(0, |n| n.min(1 << 20) as usize);
    let mut body = Vec::with_capacity(first);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(location, e))?
    {
        if chunk.len() > limit - body.len() {
            return Err(too_large(location, limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// [`read_body`], decoded as text in the `charset` the `Content-Type` names (UTF-8 when it
/// names none or one unknown); bytes that are not text in it become U+FFFD.
pub async fn read_text(response: Response, limit: usize, location: &str) -> Result<String> {
    let encoding = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(charset)
        .and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    let body = read_body(response, limit, location).await?;
    Ok(encoding.decode(&body).0.into_owned())
}

/// The `charset` parameter of a `Content-Type` value.
fn charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// The body of a successful (2xx) response as text ([`read_text`], bounded by `limit`), or
/// for any other status the error [`status_error`] maps it to (with the `Retry-After` wait;
/// the body of an error response is not read, nor quoted).
pub async fn success_text(response: Response, limit: usize, location: &str) -> Result<String> {
    let status = response.status();
    if !status.is_success() {
        return Err(status_error(status, response.headers(), location, None));
    }
    read_text(response, limit, location).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 1994-11-06T08:49:37Z, the date of RFC 9110's examples.
    const NOV_6_1994: u64 = 784_111_777;

    #[test]
    fn retry_after_reads_delay_seconds() {
        assert_eq!(
            parse_retry_after("120", at(0)),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", at(0)), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", at(0)),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after("-5", at(0)), None);
        assert_eq!(parse_retry_after("1.5", at(0)), None);
        assert_eq!(parse_retry_after("soon", at(0)), None);
        assert_eq!(parse_retry_after("", at(0)), None);
    }

    #[test]
    fn retry_after_reads_all_three_http_date_forms() {
        let now = at(NOV_6_1994 - 90);
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(90)),
                "{date}"
            );
        }
        // A date in the past: no wait.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at(NOV_6_1994 + 5)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 31 Nov 1994 08:49:37 GMT", now),
            None
        );
    }

    #[test]
    fn retry_after_is_read_from_the_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "7".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }

    #[test]
    fn statuses_map_to_errors_that_say_whether_to_retry() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().expect("header"));
        for code in [408, 425, 429, 500, 502, 503, 504, 599] {
            let status = StatusCode::from_u16(code).expect("status");
            let e = status_error(status, &h, "https://api.example/x", None);
            assert!(
                matches!(e, Error::Unavailable { .. }) && e.is_retryable(),
                "{code}: {e:?}"
            );
            assert_eq!(e.retry_after(), Some(Duration::from_secs(3)), "{code}");
        }
        for code in [401, 403] {
            let e = status_error(
                StatusCode::from_u16(code).expect("status"),
                &HeaderMap::new(),
                "the token endpoint",
                Some("bad token"),
            );
            assert!(matches!(e, Error::Auth { .. }), "{code}: {e:?}");
            assert!(!e.is_retryable());
            let msg = e.to_string();
            assert!(msg.contains("check the credentials"), "{msg}");
            assert!(msg.contains("the token endpoint answered"), "{msg}");
            assert!(msg.contains(": bad token"), "{msg}");
        }
        let e = status_error(StatusCode::NOT_FOUND, &h, "https://api.example/x", None);
        assert!(matches!(e, Error::Config(_)) && !e.is_retryable(), "{e:?}");
        assert!(e.to_string().contains("check the URL"), "{e}");
        for code in [400, 409, 410, 422, 302] {
            let e = status_error(
                StatusCode::from_u16(code).expect("status"),
                &h,
                "https://api.example/x",
                Some("  "),
            );
            assert!(matches!(e, Error::BadData { .. }), "{code}: {e:?}");
            assert!(!e.is_retryable(), "{code}");
            assert!(!e.to_string().ends_with(": "), "{e}");
        }
    }

    #[test]
    fn redaction_drops_user_info_and_secret_values() {
        let u = Url::parse(
            "https://me:pa55@api.example:8443/v1/readings?since=2024-05-01&access_token=abc&API_KEY=k1&Signature=s&sig=x&key=y&page=2#frag",
        )
        .expect("url");
        let r = redact(&u);
        assert_eq!(
            r,
            "https://api.example:8443/v1/readings?since=2024-05-01&access_token=REDACTED&API_KEY=REDACTED&Signature=REDACTED&sig=REDACTED&key=REDACTED&page=2"
        );
        // A name written with escapes is judged as the server reads it.
        let u = Url::parse("https://api.example/x?access%5Ftoken=abc&a+token=b").expect("url");
        assert_eq!(
            redact(&u),
            "https://api.example/x?access%5Ftoken=REDACTED&a+token=REDACTED"
        );
        assert_eq!(
            without_query(&u),
            "https://api.example/x",
            "no query at all"
        );
        let u = Url::parse("https://api.example/x?flag&token").expect("url");
        assert_eq!(redact(&u), "https://api.example/x?flag&token");
        assert!(!is_secret_parameter("patient"));
        assert!(!is_secret_parameter("_count"));
        assert!(is_secret_parameter("X-Amz-Security-Token"));
        assert!(is_secret_parameter("client_secret"));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(DEFAULT_BODY_LIMIT), "64 MiB");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(1500), "1500 B");
        assert_eq!(human_bytes(3 << 30), "3 GiB");
    }

    #[test]
    fn the_charset_is_read_from_the_content_type() {
        assert_eq!(
            charset("text/csv; charset=windows-1252"),
            Some("windows-1252")
        );
        assert_eq!(charset("application/json;Charset=\"utf-8\""), Some("utf-8"));
        assert_eq!(charset("application/json"), None);
    }

    /// The only test of this binary that touches the process's crypto provider: one installed
    /// before is kept, and building a client still works.
    #[test]
    fn a_provider_installed_before_is_kept() {
        let mine = rustls::crypto::ring::default_provider();
        let _ = mine.install_default();
        let before = rustls::crypto::CryptoProvider::get_default()
            .map(std::sync::Arc::as_ptr)
            .expect("installed");
        install_crypto_provider();
        client_builder().build().expect("a client");
        let after = rustls::crypto::CryptoProvider::get_default()
            .map(std::sync::Arc::as_ptr)
            .expect("still installed");
        assert_eq!(before, after, "the provider installed first was replaced");
    }
}
