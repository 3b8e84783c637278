//! One citizen's authorised session at a vendor: a valid access token on demand, refreshed
//! before it expires, the new grant saved before it is used.

use std::future::Future;
use std::sync::Arc;

use healthanalyzer_source::http;
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use tokio::sync::Mutex;

use crate::Error;
use crate::oauth::{OAuthApp, TokenFailure, now};
use crate::token::{Grant, GrantKey, Secret, TokenStore};

/// How long before its expiry an access token is refreshed: 5 minutes.
pub const REFRESH_MARGIN_SECONDS: i64 = 300;

/// A citizen's authorisation at one vendor, shared by the requests of their source.
///
/// [`token`](Session::token) gives an access token that is valid for at least
/// [`REFRESH_MARGIN_SECONDS`], refreshing first when needed. A refresh takes the store's
/// [`lock_refresh`](TokenStore::lock_refresh), reads the grant again (another process may
/// have refreshed already), asks the vendor, **saves the new
/// grant, and only then uses it**: a vendor that rotates refresh tokens voids the old one
/// when the new one is first used, so whenever the process dies, the store holds a refresh
/// token that works.
#[derive(Debug)]
pub struct Session {
    app: Arc<OAuthApp>,
    http: Client,
    store: Arc<dyn TokenStore>,
    key: GrantKey,
    current: Mutex<Option<Grant>>,
}

impl Session {
    /// The session of the citizen under `key`, with the grants in `store`.
    pub fn new(
        app: Arc<OAuthApp>,
        http: Client,
        store: Arc<dyn TokenStore>,
        key: GrantKey,
    ) -> Session {
        Session {
            app,
            http,
            store,
            key,
            current: Mutex::new(None),
        }
    }

    /// The vendor app.
    pub fn app(&self) -> &OAuthApp {
        &self.app
    }

    /// Whose session it is.
    pub fn key(&self) -> &GrantKey {
        &self.key
    }

    /// The HTTP client.
    pub fn http(&self) -> &Client {
        &self.http
    }

    fn revoked(&self) -> Error {
        Error::GrantRevoked {
            vendor: self.app.vendor,
            source_id: self.key.source.clone(),
            citizen: self.key.citizen.clone(),
        }
    }

    async fn load(&self) -> Result<Grant, Error> {
        let store = Arc::clone(&self.store);
        let key = self.key.clone();
        let loaded = tokio::task::spawn_blocking(move || store.load(&key))
            .await
            .map_err(|e| Error::Config(format!("the token store's task failed: {e}")))??;
        loaded.ok_or_else(|| Error::NotConnected {
            vendor: self.app.vendor,
            source_id: self.key.source.clone(),
            citizen: self.key.citizen.clone(),
        })
    }

    async fn save(&self, grant: &Grant) -> Result<(), Error> {
        let store = Arc::clone(&self.store);
        let key = self.key.clone();
        let grant = grant.clone();
        tokio::task::spawn_blocking(move || store.save(&key, &grant))
            .await
            .map_err(|e| Error::Config(format!("the token store's task failed: {e}")))?
    }

    /// A grant whose access token is valid for at least [`REFRESH_MARGIN_SECONDS`].
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::GrantRevoked`], a failing token endpoint or store.
    pub async fn token(&self) -> Result<Grant, Error> {
        let mut current = self.current.lock().await;
        if let Some(g) = current.as_ref()
            && !g.expires_within(now(), REFRESH_MARGIN_SECONDS)
        {
            return Ok(g.clone());
        }
        let grant = self.refreshed(None).await?;
        *current = Some(grant.clone());
        Ok(grant)
    }

    /// After the vendor refused `rejected` (HTTP 401, or Withings' status 401): a refreshed
    /// grant, unless the session has moved on to another token meanwhile.
    ///
    /// # Errors
    /// As [`token`](Session::token); [`Error::GrantRevoked`] when the vendor refuses the
    /// refresh too.
    pub async fn after_rejection(&self, rejected: &Secret) -> Result<Grant, Error> {
        let mut current = self.current.lock().await;
        if let Some(g) = current.as_ref()
            && &g.access_token != rejected
            && !g.expires_within(now(), REFRESH_MARGIN_SECONDS)
        {
            return Ok(g.clone());
        }
        let grant = self.refreshed(Some(rejected)).await?;
        *current = Some(grant.clone());
        Ok(grant)
    }

    /// The stored grant if it is good, else a refreshed one, saved before it is returned.
    async fn refreshed(&self, rejected: Option<&Secret>) -> Result<Grant, Error> {
        // Another process may be refreshing this grant: wait for it, then read what it saved.
        let store = Arc::clone(&self.store);
        let key = self.key.clone();
        let _refreshing = tokio::task::spawn_blocking(move || store.lock_refresh(&key))
            .await
            .map_err(|e| Error::Config(format!("the token store's task failed: {e}")))??;
        let stored = self.load().await?;
        let usable = !stored.expires_within(now(), REFRESH_MARGIN_SECONDS)
            && rejected.is_none_or(|r| &stored.access_token != r);
        if usable {
            return Ok(stored);
        }
        let fresh = match self.app.refresh(&self.http, &stored).await {
            Ok(g) => g,
            Err(TokenFailure::Refused) => return Err(self.revoked()),
            Err(TokenFailure::Failed(e)) => return Err(e),
        };
        // Saved before it is used: see the type's documentation.
        self.save(&fresh).await?;
        tracing::debug!(source = %self.key.source, citizen = %self.key.citizen, "refreshed the grant");
        Ok(fresh)
    }

    /// Sends the request `build` makes with a valid grant and hands the response to `read`,
    /// refreshing the grant once when the vendor refuses the access token: with HTTP 401, or
    /// inside an answer (Withings' status 401 in a 200, iHealth's `invalid_token`), which
    /// `read` says with [`Answer::TokenRefused`]. Refused again with a fresh token, the grant
    /// no longer reaches the data: [`Error::GrantRevoked`]. `build` and `read` are called at
    /// most twice.
    ///
    /// `location` names the request in errors (a [`http::redact`]ed URL, never one whose
    /// query holds a token).
    ///
    /// # Errors
    /// A transport failure ([`http::transport_error`]), what `build` or `read` return,
    /// [`Error::GrantRevoked`], the token's own errors.
    pub async fn request<T, Fut>(
        &self,
        location: &str,
        build: impl Fn(&Client, &Grant) -> Result<RequestBuilder, Error>,
        mut read: impl FnMut(Response) -> Fut,
    ) -> Result<T, Error>
    where
        Fut: Future<Output = Result<Answer<T>, Error>>,
    {
        let mut grant = self.token().await?;
        for attempt in 0..2 {
            if attempt > 0 {
                grant = self.after_rejection(&grant.access_token).await?;
            }
            let response = build(&self.http, &grant)?
                .send()
                .await
                .map_err(|e| http::transport_error(location, e))?;
            if response.status() == StatusCode::UNAUTHORIZED {
                continue;
            }
            match read(response).await? {
                Answer::Read(value) => return Ok(value),
                Answer::TokenRefused => continue,
            }
        }
        Err(self.revoked())
    }

    /// [`request`](Self::request) for a vendor that refuses a token with HTTP 401 only:
    /// the response, whatever its status otherwise (read it with [`http::success_text`] or
    /// the vendor's own rules).
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn send(
        &self,
        location: &str,
        build: impl Fn(&Client, &Secret) -> RequestBuilder,
    ) -> Result<Response, Error> {
        self.request(
            location,
            |client, grant| Ok(build(client, &grant.access_token)),
            |response| async move { Ok(Answer::Read(response)) },
        )
        .await
    }
}

/// What a [`Session::request`] reader made of a vendor's answer.
#[derive(Debug)]
pub enum Answer<T> {
    /// The answer, read.
    Read(T),
    /// The vendor refused the access token inside its answer: refresh and ask again.
    TokenRefused,
}
