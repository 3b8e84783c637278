//! Live device-cloud connectors of [Health Analyzer](https://github.com/os2health/health-analyzer):
//! **Withings**, **Fitbit**, **iHealth**, **Nightscout** and **Dexcom**, each a
//! [`Source`](healthanalyzer_source::Source) per citizen.
//!
//! A municipality runs one configuration for many citizens, each with their own account at
//! the vendor. A [`CloudSource`] is one `[[source]]` of `healthanalyzer.toml`: the vendor,
//! the app registration (client id and secret), the token store, and the citizens, each of
//! whom becomes a source of their own (`<source id>/<citizen name>`), so that one citizen's
//! revoked grant fails their sync only.
//!
//! # Authorisation
//!
//! - [`connect()`] runs the OAuth2 authorisation-code flow with PKCE (RFC 7636) and a
//!   loopback redirect (RFC 8252): it prints the URL to open, listens on `127.0.0.1` for the
//!   browser's redirect, exchanges the code and keeps the [`Grant`] in a [`TokenStore`].
//! - [`FileTokenStore`], the default store, is one JSON file only its owner can read (0600),
//!   replaced atomically on every change.
//! - A [`Session`] gives each request a valid access token, refreshing it before it
//!   expires. The new grant is **saved before it is used**: Withings, Fitbit and Dexcom
//!   rotate refresh tokens, and the old one is void once the new one is used, so a crash at
//!   any moment leaves a refresh token that works.
//! - A revoked or expired grant is
//!   [`Authorization`](healthanalyzer_source::Error::Authorization) error naming the
//!   citizen (never the token) and saying to run `connect` again; it is not retried.
//!
//! Secrets are [`Secret`]s: their `Debug` and `Display` never show them.
//!
//! # Example
//!
//! ```
//! use healthanalyzer_source_cloud::{CloudSource, Settings, Vendor};
//!
//! let settings: Settings = serde_json::from_value(serde_json::json!({
//!     "client_id": "my-app",
//!     "client_secret": "my-secret",
//!     "citizen": [{ "name": "anna", "subject": "urn:oid:1.2.208.176.1.2|0101701234" }],
//! }))?;
//! let cloud = CloudSource::new(Vendor::Withings, "withings", settings, "/etc/healthanalyzer".as_ref())?;
//! let sources = cloud.sources()?;
//! assert_eq!(sources[0].id(), "withings/anna");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! docs/connectors/ in the repository has a page per vendor: the app registration, the
//! scopes, and a configuration to copy.

#![warn(missing_docs)]

mod connect;
mod dexcom;
mod error;
mod fitbit;
mod ihealth;
mod nightscout;
mod oauth;
mod session;
mod setup;
#[cfg(feature = "testkit")]
pub mod testkit;
mod token;
mod withings;

pub use connect::{DEFAULT_CONNECT_TIMEOUT, connect, connect_pasted, is_loopback};
pub use error::Error;
pub use oauth::{Dialect, OAuthApp, Pkce, WithingsStatus, random_text, withings_status};
pub use session::{Answer, REFRESH_MARGIN_SECONDS, Session};
pub use setup::{
    Citizen, CitizenSettings, CloudSource, Context, DEFAULT_HISTORY_DAYS, DEFAULT_REDIRECT_URI,
    DEFAULT_TOKEN_STORE, KINDS, Settings, Vendor,
};
pub use token::{
    FileTokenStore, Grant, GrantKey, MemoryTokenStore, RefreshLock, Secret, TokenStore,
};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
