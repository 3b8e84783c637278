//! OAuth2 as the vendors speak it: the authorisation URL with PKCE, the code exchange and
//! the refresh, each vendor's dialect of the token endpoint.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use healthanalyzer_source::http;
use reqwest::{Client, StatusCode, Url};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::token::{Grant, Secret};

/// How a vendor's token endpoint is spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// RFC 6749: a form POST with the client's id and secret in the body, a JSON token
    /// response, `{"error": "invalid_grant"}` for a refused grant (Dexcom).
    Standard,
    /// RFC 6749 with the client authenticated by HTTP Basic (Fitbit).
    Basic,
    /// Withings: a form POST to `/v2/oauth2` with `action=requesttoken`, answered with HTTP
    /// 200 and `{"status": 0, "body": {…}}`; a refusal is a non-zero `status`.
    Withings,
    /// iHealth: a GET with the client's id and secret in the query, answered with
    /// `{"AccessToken", "RefreshToken", "Expires", "UserID"}` or `{"ErrorCode", …}`.
    IHealth,
}

/// A vendor app registration: who the client is and where its OAuth2 endpoints are.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    /// The vendor, for messages (`"Withings"`).
    pub vendor: &'static str,
    /// How its token endpoint is spoken.
    pub dialect: Dialect,
    /// The client id of the app registration.
    pub client_id: String,
    /// The client secret of the app registration.
    pub client_secret: Secret,
    /// Where the citizen's browser is sent to authorise.
    pub authorize_url: Url,
    /// The token endpoint.
    pub token_url: Url,
    /// The redirect URI registered with the app: a loopback address
    /// (`http://127.0.0.1:8765/callback`) that `connect` listens on.
    pub redirect_uri: Url,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// How the vendor separates scopes (`" "`; Withings `","`).
    pub scope_separator: &'static str,
}

/// A PKCE (RFC 7636) verifier and its S256 challenge.
#[derive(Clone)]
pub struct Pkce {
    verifier: Secret,
    challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce").finish_non_exhaustive()
    }
}

impl Pkce {
    /// A fresh verifier (32 random bytes, 43 characters) and its challenge.
    ///
    /// # Errors
    /// The system's random number generator failed.
    pub fn new() -> Result<Pkce, Error> {
        Ok(Pkce::from_verifier(random_text(32)?))
    }

    /// The challenge of a given verifier.
    pub fn from_verifier(verifier: impl Into<String>) -> Pkce {
        let verifier = verifier.into();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier: Secret::new(verifier),
            challenge,
        }
    }

    /// The verifier, sent with the code exchange.
    pub fn verifier(&self) -> &Secret {
        &self.verifier
    }

    /// The S256 challenge, sent with the authorisation request.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

/// `bytes` random bytes as base64url text (for PKCE verifiers and `state` values).
///
/// # Errors
/// The system's random number generator failed.
pub fn random_text(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| {
        Error::Authorization(format!("the system's random number generator failed: {e}"))
    })?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// Why a token request did not give a grant.
#[derive(Debug)]
pub(crate) enum TokenFailure {
    /// The vendor refused the code or the refresh token.
    Refused,
    /// Anything else.
    Failed(Error),
}

/// Seconds since 1970, now.
pub(crate) fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl OAuthApp {
    /// The URL the citizen opens to authorise: response type `code`, the client id, the
    /// redirect URI, the scopes, `state` and the PKCE challenge (S256).
    pub fn authorization_url(&self, state: &str, pkce: &Pkce) -> Url {
        let mut url = self.authorize_url.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", self.redirect_uri.as_str())
            .append_pair("scope", &self.scopes.join(self.scope_separator))
            .append_pair("state", state)
            .append_pair("code_challenge", pkce.challenge())
            .append_pair("code_challenge_method", "S256");
        if self.dialect == Dialect::IHealth {
            // iHealth names its scopes "API names".
            let names = self.scopes.join(" ");
            url.query_pairs_mut()
                .append_pair("APIName", &names)
                .append_pair("RequiredAPIName", &names)
                .append_pair("IsNew", "true");
        }
        url
    }

    /// Exchanges an authorisation code for a grant.
    pub(crate) async fn exchange(
        &self,
        http: &Client,
        code: &str,
        pkce: &Pkce,
    ) -> Result<Grant, TokenFailure> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", pkce.verifier().expose()),
        ];
        if self.dialect == Dialect::IHealth {
            form.push(("response_type", "code"));
        }
        self.token_request(http, form).await
    }

    /// Exchanges a refresh token for a new grant. A vendor that does not send a new refresh
    /// token keeps the old one valid: the old one is carried over.
    pub(crate) async fn refresh(
        &self,
        http: &Client,
        grant: &Grant,
    ) -> Result<Grant, TokenFailure> {
        let Some(refresh) = grant.refresh_token.as_ref() else {
            return Err(TokenFailure::Refused);
        };
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose()),
        ];
        if self.dialect == Dialect::IHealth {
            form.push(("response_type", "refresh_token"));
            form.push(("redirect_uri", self.redirect_uri.as_str()));
        }
        let mut fresh = self.token_request(http, form).await?;
        if fresh.refresh_token.is_none() {
            fresh.refresh_token = grant.refresh_token.clone();
        }
        if fresh.user_id.is_none() {
            fresh.user_id = grant.user_id.clone();
        }
        Ok(fresh)
    }

    fn failed(&self, reason: impl Into<String>, retryable: bool) -> TokenFailure {
        TokenFailure::Failed(Error::TokenEndpoint {
            vendor: self.vendor,
            reason: reason.into(),
            retryable,
            retry_after: None,
            cause: None,
        })
    }

    async fn token_request(
        &self,
        http: &Client,
        mut form: Vec<(&str, &str)>,
    ) -> Result<Grant, TokenFailure> {
        let request = match self.dialect {
            Dialect::Standard => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.expose()));
                http.post(self.token_url.clone()).form(&form)
            }
            Dialect::Basic => {
                form.push(("client_id", &self.client_id));
                http.post(self.token_url.clone())
                    .basic_auth(&self.client_id, Some(self.client_secret.expose()))
                    .form(&form)
            }
            Dialect::Withings => {
                form.push(("action", "requesttoken"));
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.expose()));
                http.post(self.token_url.clone()).form(&form)
            }
            Dialect::IHealth => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.expose()));
                http.get(self.token_url.clone()).query(&form)
            }
        };
        let location = format!("{}'s token endpoint", self.vendor);
        let response = request.send().await.map_err(|e| {
            TokenFailure::Failed(Error::Source(http::transport_error(&location, e)))
        })?;
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        let body = http::read_text(response, 1 << 20, &location)
            .await
            .map_err(|e| TokenFailure::Failed(Error::Source(e)))?;
        let json: Option<Json> = serde_json::from_str(&body).ok();
        match self.dialect {
            Dialect::Standard | Dialect::Basic => self.standard(status, retry_after, json),
            Dialect::Withings => self.withings(status, retry_after, json),
            Dialect::IHealth => self.ihealth(status, retry_after, json),
        }
    }

    fn http_failure(&self, status: StatusCode, retry_after: Option<Duration>) -> TokenFailure {
        let retryable = status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error();
        TokenFailure::Failed(Error::TokenEndpoint {
            vendor: self.vendor,
            reason: format!("answered {status}"),
            retryable,
            retry_after,
            cause: None,
        })
    }

    fn standard(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        json: Option<Json>,
    ) -> Result<Grant, TokenFailure> {
        if status.is_success() {
            let json =
                json.ok_or_else(|| self.failed("answered with a body that is not JSON", false))?;
            return self.grant(
                &json,
                "access_token",
                "refresh_token",
                "expires_in",
                "user_id",
            );
        }
        // RFC 6749 §5.2; Fitbit writes `{"errors": [{"errorType": "invalid_grant"}]}`.
        let code = json.as_ref().and_then(|j| {
            j.get("error")
                .and_then(Json::as_str)
                .map(str::to_owned)
                .or_else(|| {
                    j.pointer("/errors/0/errorType")
                        .and_then(Json::as_str)
                        .map(str::to_owned)
                })
        });
        match code.as_deref() {
            Some("invalid_grant" | "invalid_token" | "expired_token") => Err(TokenFailure::Refused),
            Some(code) if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS => {
                Err(self.failed(format!("answered {status} ({})", safe_code(code)), false))
            }
            _ => Err(self.http_failure(status, retry_after)),
        }
    }

    fn withings(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        json: Option<Json>,
    ) -> Result<Grant, TokenFailure> {
        if !status.is_success() {
            return Err(self.http_failure(status, retry_after));
        }
        let json =
            json.ok_or_else(|| self.failed("answered with a body that is not JSON", false))?;
        let code = json
            .get("status")
            .and_then(Json::as_i64)
            .ok_or_else(|| self.failed("answered without a `status`", false))?;
        match withings_status(code) {
            WithingsStatus::Ok => {
                let body = json
                    .get("body")
                    .ok_or_else(|| self.failed("answered status 0 without a `body`", false))?;
                self.grant(
                    body,
                    "access_token",
                    "refresh_token",
                    "expires_in",
                    "userid",
                )
            }
            // The token endpoint answers "invalid params" (503) for a refresh token it does
            // not know.
            WithingsStatus::AuthFailed | WithingsStatus::InvalidParams => {
                Err(TokenFailure::Refused)
            }
            WithingsStatus::RateLimited => Err(TokenFailure::Failed(Error::TokenEndpoint {
                vendor: self.vendor,
                reason: "too many requests (status 601)".into(),
                retryable: true,
                retry_after: Some(retry_after.unwrap_or(Duration::from_secs(60))),
                cause: None,
            })),
            WithingsStatus::Transient => Err(self.failed(
                format!("status {code} (an unknown error at Withings)"),
                true,
            )),
            WithingsStatus::Other => Err(self.failed(format!("status {code}"), false)),
        }
    }

    fn ihealth(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        json: Option<Json>,
    ) -> Result<Grant, TokenFailure> {
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(self.http_failure(status, retry_after));
        }
        let json =
            json.ok_or_else(|| self.failed(format!("answered {status} without JSON"), false))?;
        if json.get("AccessToken").is_some() && status.is_success() {
            let mut grant =
                self.grant(&json, "AccessToken", "RefreshToken", "Expires", "UserID")?;
            if grant.user_id.as_deref() == Some("") {
                grant.user_id = None;
            }
            return Ok(grant);
        }
        // iHealth says what is wrong in `ErrorDescription`; a refused token names the token.
        let refused = json
            .get("ErrorDescription")
            .and_then(Json::as_str)
            .is_some_and(|d| d.to_ascii_lowercase().contains("token"))
            || status == StatusCode::UNAUTHORIZED;
        if refused {
            return Err(TokenFailure::Refused);
        }
        let code = json
            .get("ErrorCode")
            .map(|c| c.to_string())
            .unwrap_or_else(|| "none".into());
        Err(self.failed(
            format!("answered {status}, error code {}", safe_code(&code)),
            false,
        ))
    }

    /// A grant from a token response's fields.
    fn grant(
        &self,
        json: &Json,
        access: &str,
        refresh: &str,
        expires_in: &str,
        user_id: &str,
    ) -> Result<Grant, TokenFailure> {
        let text = |name: &str| -> Option<String> {
            match json.get(name)? {
                Json::String(s) if !s.is_empty() => Some(s.clone()),
                Json::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let access_token = text(access)
            .ok_or_else(|| self.failed(format!("answered without `{access}`"), false))?;
        let expires = json.get(expires_in).and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        });
        let obtained_at = now();
        Ok(Grant {
            access_token: Secret::new(access_token),
            refresh_token: text(refresh).map(Secret::new),
            expires_at: expires.map(|s| obtained_at.saturating_add(s)),
            scope: text("scope"),
            user_id: text(user_id),
            obtained_at,
        })
    }
}

/// An error code from a vendor, shown only when it looks like one (letters, digits, `_`,
/// `-`, `.`, at most 40 of them): a body is never quoted.
fn safe_code(code: &str) -> &str {
    let ok = code.len() <= 40
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok { code } else { "not shown" }
}

/// What a Withings `status` means (developer.withings.com, "Response status").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithingsStatus {
    /// 0: the operation succeeded.
    Ok,
    /// 100, 101, 102, 200, 250, 283, 401: the token (or the user it names) is not accepted.
    AuthFailed,
    /// 503: invalid parameters (also what the token endpoint says of an unknown refresh
    /// token).
    InvalidParams,
    /// 601: too many requests.
    RateLimited,
    /// 2555 and 201, 214, 277: an unknown error at Withings; worth another try.
    Transient,
    /// Anything else (a wrong action, a deactivated user).
    Other,
}

/// The meaning of a Withings `status` code.
pub fn withings_status(code: i64) -> WithingsStatus {
    match code {
        0 => WithingsStatus::Ok,
        100 | 101 | 102 | 200 | 250 | 283 | 401 => WithingsStatus::AuthFailed,
        503 => WithingsStatus::InvalidParams,
        601 => WithingsStatus::RateLimited,
        201 | 214 | 277 | 2555 => WithingsStatus::Transient,
        _ => WithingsStatus::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s_example() {
        // RFC 7636, appendix B.
        let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(p.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn a_fresh_verifier_is_43_url_safe_characters_and_never_repeats() {
        let a = Pkce::new().expect("random");
        let b = Pkce::new().expect("random");
        assert_eq!(a.verifier().expose().len(), 43);
        assert!(
            a.verifier()
                .expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a.verifier(), b.verifier());
        assert_eq!(format!("{a:?}"), "Pkce { .. }");
    }

    #[test]
    fn only_code_like_text_is_quoted() {
        assert_eq!(safe_code("invalid_request"), "invalid_request");
        assert_eq!(safe_code("{\"access_token\":\"x\"}"), "not shown");
    }
}
