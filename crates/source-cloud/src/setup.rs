//! A cloud source's configuration: the vendor, the app registration, the token store and
//! the citizens, each of whom becomes a source of their own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use healthanalyzer_model::Identifier;
use healthanalyzer_source::{Source, http};
use jiff::Timestamp;
use reqwest::{Client, Url};
use serde::Deserialize;

use crate::Error;
use crate::connect::{connect, connect_pasted, is_loopback};
use crate::oauth::{Dialect, OAuthApp};
use crate::session::Session;
use crate::token::{FileTokenStore, Grant, GrantKey, Secret, TokenStore};

/// The token store's file name when the configuration names none, beside the configuration.
pub const DEFAULT_TOKEN_STORE: &str = "healthanalyzer-tokens.json";

/// How far back a citizen's first sync reaches when `since` is not set: 90 days.
pub const DEFAULT_HISTORY_DAYS: i64 = 90;

/// The redirect URI `connect` listens on when the configuration names none (register it
/// with the vendor app).
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";

/// The device clouds, by their `kind` in `healthanalyzer.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Vendor {
    /// Withings (Health Mate): scales, blood-pressure monitors, thermometers, oximeters.
    Withings,
    /// Fitbit Web API.
    Fitbit,
    /// iHealth: blood pressure, glucose, SpO2, weight.
    IHealth,
    /// Nightscout, a CGM site a person runs themselves (no OAuth2: an `API_SECRET` or a
    /// token per site).
    Nightscout,
    /// Dexcom API v3 (CGM).
    Dexcom,
}

/// Every cloud `kind`.
pub const KINDS: [&str; 5] = ["withings", "fitbit", "ihealth", "nightscout", "dexcom"];

/// A vendor's defaults: where its API and OAuth2 endpoints are, and what to ask for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    pub(crate) api_base: &'static str,
    pub(crate) authorize: &'static str,
    pub(crate) token: &'static str,
    pub(crate) scopes: &'static [&'static str],
    pub(crate) scope_separator: &'static str,
    pub(crate) dialect: Dialect,
}

impl Vendor {
    /// The vendor of a `kind`, if it is a cloud kind.
    pub fn from_kind(kind: &str) -> Option<Vendor> {
        Some(match kind {
            "withings" => Vendor::Withings,
            "fitbit" => Vendor::Fitbit,
            "ihealth" => Vendor::IHealth,
            "nightscout" => Vendor::Nightscout,
            "dexcom" => Vendor::Dexcom,
            _ => return None,
        })
    }

    /// Its `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Vendor::Withings => "withings",
            Vendor::Fitbit => "fitbit",
            Vendor::IHealth => "ihealth",
            Vendor::Nightscout => "nightscout",
            Vendor::Dexcom => "dexcom",
        }
    }

    /// Its name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Withings => "Withings",
            Vendor::Fitbit => "Fitbit",
            Vendor::IHealth => "iHealth",
            Vendor::Nightscout => "Nightscout",
            Vendor::Dexcom => "Dexcom",
        }
    }

    /// Whether it authorises with OAuth2 (all but Nightscout).
    pub fn uses_oauth(self) -> bool {
        self != Vendor::Nightscout
    }

    /// The defaults; Dexcom's sandbox when `sandbox`.
    pub(crate) fn defaults(self, sandbox: bool) -> Defaults {
        match self {
            Vendor::Withings => crate::withings::DEFAULTS,
            Vendor::Fitbit => crate::fitbit::DEFAULTS,
            Vendor::IHealth => crate::ihealth::DEFAULTS,
            Vendor::Nightscout => crate::nightscout::DEFAULTS,
            Vendor::Dexcom if sandbox => crate::dexcom::SANDBOX,
            Vendor::Dexcom => crate::dexcom::DEFAULTS,
        }
    }
}

/// A cloud `[[source]]`'s options in `healthanalyzer.toml` (the keys besides `id` and
/// `kind`). Unknown keys are errors.
///
/// ```toml
/// [[source]]
/// id = "withings"                      # part of every measurement id: keep it stable
/// kind = "withings"
/// client_id = "${WITHINGS_CLIENT_ID}"  # the app registration, from the environment
/// client_secret = "${WITHINGS_CLIENT_SECRET}"
/// since = "2026-01-01"                 # how far back a first sync reaches (default 90 days)
///
/// [[source.citizen]]
/// name = "anna"                        # used in commands, logs and the token store
/// subject = "urn:oid:1.2.208.176.1.2|0101701234"
/// ```
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The app registration's client id (OAuth2 vendors).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The app registration's client secret (OAuth2 vendors).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The API's base URL, instead of the vendor's (a regional endpoint, a mock).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The authorisation endpoint, instead of the vendor's.
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// The token endpoint, instead of the vendor's.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The loopback redirect URI registered with the app (default [`DEFAULT_REDIRECT_URI`]).
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// The scopes to ask for, instead of the vendor's default ones.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The token store file, relative to the configuration (default
    /// [`DEFAULT_TOKEN_STORE`]).
    #[serde(default)]
    pub token_store: Option<PathBuf>,
    /// How far back a first sync reaches: a date (`2026-01-01`, midnight UTC) or an instant
    /// (default [`DEFAULT_HISTORY_DAYS`] days before the first sync).
    #[serde(default)]
    pub since: Option<String>,
    /// Dexcom only: the sandbox (`https://sandbox-api.dexcom.com`) instead of production.
    #[serde(default)]
    pub sandbox: Option<bool>,
    /// Seconds a request may take (default 30).
    #[serde(default)]
    pub timeout_seconds: Option<f64>,
    /// iHealth only: the app's service code (`sc`), from iHealth's developer portal.
    #[serde(default)]
    pub ihealth_sc: Option<String>,
    /// iHealth only: the app's service version (`sv`) per data API, from iHealth's developer
    /// portal: `{ bp = "…", glucose = "…", spo2 = "…", weight = "…" }`.
    #[serde(default)]
    pub ihealth_sv: Option<std::collections::BTreeMap<String, String>>,
    /// Nightscout only: the API version to read, 1 (default) or 3.
    #[serde(default)]
    pub api_version: Option<u8>,
    /// The citizens, each with their own account at the vendor.
    #[serde(default, rename = "citizen")]
    pub citizens: Vec<CitizenSettings>,
}

/// A `[[source.citizen]]` table.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitizenSettings {
    /// The name the configuration and the commands know the citizen by (letters, digits,
    /// `-`, `_`, `.`): it is part of the source id, so keep it stable. Never a CPR, BSN or
    /// FNR number: names show in logs and messages.
    pub name: String,
    /// Whom the measurements are about, `system|value`.
    pub subject: String,
    /// Nightscout only: the citizen's site.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Nightscout only: the site's `API_SECRET` (sent as its SHA-1, as Nightscout expects).
    #[serde(default)]
    pub api_secret: Option<String>,
    /// Nightscout only: an access token made in the site's admin tools (instead of the
    /// secret).
    #[serde(default)]
    pub token: Option<String>,
}

/// `(redacted)` for a secret that is there.
fn shown(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "(redacted)")
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("client_id", &self.client_id)
            .field("client_secret", &shown(&self.client_secret))
            .field("base_url", &self.base_url)
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .field("token_store", &self.token_store)
            .field("since", &self.since)
            .field("sandbox", &self.sandbox)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("ihealth_sc", &shown(&self.ihealth_sc))
            .field("ihealth_sv", &self.ihealth_sv.as_ref().map(|m| m.len()))
            .field("api_version", &self.api_version)
            .field("citizens", &self.citizens)
            .finish()
    }
}

impl std::fmt::Debug for CitizenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The subject's identifier is personal data, the secrets are secrets.
        f.debug_struct("CitizenSettings")
            .field("name", &self.name)
            .field("base_url", &self.base_url.as_ref().map(|_| "(set)"))
            .field("api_secret", &shown(&self.api_secret))
            .field("token", &shown(&self.token))
            .finish_non_exhaustive()
    }
}

/// A citizen of a cloud source.
#[derive(Clone)]
pub struct Citizen {
    /// Their name in the configuration.
    pub name: String,
    /// Whom their measurements are about.
    pub subject: Identifier,
    /// Nightscout: their site, instead of the source's `base_url`.
    pub base_url: Option<Url>,
    /// Nightscout: the site's `API_SECRET`.
    pub api_secret: Option<Secret>,
    /// Nightscout: an access token.
    pub token: Option<Secret>,
}

impl std::fmt::Debug for Citizen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The subject's identifier is personal data: the name is enough to know whom.
        f.debug_struct("Citizen")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a vendor module gets to build one citizen's source.
#[derive(Debug, Clone)]
pub struct Context {
    /// The vendor.
    pub vendor: Vendor,
    /// The citizen's source id: `<source id>/<citizen name>`.
    pub source_id: String,
    /// The API's base URL (for Nightscout: the citizen's site).
    pub api_base: Url,
    /// Where a first sync starts.
    pub since: Timestamp,
    /// The citizen.
    pub citizen: Citizen,
    /// Their OAuth2 session (`None` for Nightscout).
    pub session: Option<Arc<Session>>,
    /// The HTTP client.
    pub http: Client,
    /// The source's settings (its citizens left out), for the vendor's own ones.
    pub settings: Arc<Settings>,
}

/// A cloud source's configuration, resolved: build its citizens' sources, or connect one.
#[derive(Debug, Clone)]
pub struct CloudSource {
    vendor: Vendor,
    source_id: String,
    api_base: Option<Url>,
    app: Option<Arc<OAuthApp>>,
    store: Arc<dyn TokenStore>,
    store_path: Option<PathBuf>,
    http: Client,
    since: Timestamp,
    citizens: Vec<Citizen>,
    settings: Arc<Settings>,
}

fn url(text: &str, what: &str, source: &str) -> Result<Url, Error> {
    let u = Url::parse(text)
        .map_err(|e| Error::Config(format!("source {source}: {what} is not a URL ({e})")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "source {source}: {what} must be an http or https URL"
        )));
    }
    Ok(u)
}

/// A base URL with a path that ends in `/`, so that joining keeps its path.
fn base(mut u: Url) -> Url {
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    u
}

fn since(text: Option<&str>, source: &str) -> Result<Timestamp, Error> {
    let Some(text) = text else {
        return Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_hours(24 * DEFAULT_HISTORY_DAYS))
            .map_err(|e| Error::Config(format!("source {source}: the default start: {e}")));
    };
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let day: jiff::civil::Date = text.parse().map_err(|_| {
        Error::Config(format!(
            "source {source}: `since` must be a date (2026-01-01) or an RFC 3339 instant"
        ))
    })?;
    day.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| Error::Config(format!("source {source}: `since`: {e}")))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl CloudSource {
    /// The source `source_id` of `vendor` with `settings`; relative paths resolve against
    /// `folder` (the configuration's).
    ///
    /// # Errors
    /// [`Error::Config`] naming the source and the setting.
    pub fn new(
        vendor: Vendor,
        source_id: &str,
        settings: Settings,
        folder: &Path,
    ) -> Result<CloudSource, Error> {
        let s = source_id;
        let sandbox = settings.sandbox.unwrap_or(false);
        if settings.sandbox.is_some() && vendor != Vendor::Dexcom {
            return Err(Error::Config(format!(
                "source {s}: `sandbox` is a Dexcom setting, not a {} one",
                vendor.name()
            )));
        }
        for (set, key, owner) in [
            (
                settings.api_version.is_some(),
                "api_version",
                Vendor::Nightscout,
            ),
            (settings.ihealth_sc.is_some(), "ihealth_sc", Vendor::IHealth),
            (settings.ihealth_sv.is_some(), "ihealth_sv", Vendor::IHealth),
        ] {
            if set && vendor != owner {
                return Err(Error::Config(format!(
                    "source {s}: `{key}` is a {} setting, not a {} one",
                    owner.name(),
                    vendor.name()
                )));
            }
        }
        let defaults = vendor.defaults(sandbox);
        let mut timeout = http::DEFAULT_TIMEOUT;
        if let Some(t) = settings.timeout_seconds {
            timeout = Duration::try_from_secs_f64(t)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "source {s}: timeout_seconds must be a positive number of seconds"
                    ))
                })?;
        }
        let client = http::client_builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Config(format!("source {s}: the HTTP client: {e}")))?;
        let api_base = match (&settings.base_url, vendor) {
            (Some(u), _) => Some(base(url(u, "base_url", s)?)),
            (None, Vendor::Nightscout) => None,
            (None, _) => Some(base(url(defaults.api_base, "base_url", s)?)),
        };
        let app = if vendor.uses_oauth() {
            let (Some(client_id), Some(client_secret)) =
                (settings.client_id.clone(), settings.client_secret.clone())
            else {
                return Err(Error::Config(format!(
                    "source {s}: {} needs `client_id` and `client_secret` (the app registration; see docs/connectors/{}.md)",
                    vendor.name(),
                    vendor.kind()
                )));
            };
            let api = api_base
                .clone()
                .ok_or_else(|| Error::Config(format!("source {s}: no base_url")))?;
            let endpoint = |given: &Option<String>, default: &str, what: &str| match given {
                Some(u) => url(u, what, s),
                // The defaults are relative to the API's base when they start with `/`, so
                // that `base_url` alone moves everything (a mock, a regional endpoint).
                None if default.starts_with('/') => api
                    .join(default.trim_start_matches('/'))
                    .map_err(|e| Error::Config(format!("source {s}: {what}: {e}"))),
                None => url(default, what, s),
            };
            Some(Arc::new(OAuthApp {
                vendor: vendor.name(),
                dialect: defaults.dialect,
                client_id,
                client_secret: Secret::new(client_secret),
                authorize_url: endpoint(
                    &settings.authorize_url,
                    defaults.authorize,
                    "authorize_url",
                )?,
                token_url: endpoint(&settings.token_url, defaults.token, "token_url")?,
                redirect_uri: url(
                    settings
                        .redirect_uri
                        .as_deref()
                        .unwrap_or(DEFAULT_REDIRECT_URI),
                    "redirect_uri",
                    s,
                )?,
                scopes: settings
                    .scopes
                    .clone()
                    .unwrap_or_else(|| defaults.scopes.iter().map(|x| x.to_string()).collect()),
                scope_separator: defaults.scope_separator,
            }))
        } else {
            if settings.client_id.is_some() || settings.client_secret.is_some() {
                return Err(Error::Config(format!(
                    "source {s}: Nightscout has no app registration: give each citizen's `api_secret` or `token` instead of `client_id`/`client_secret`"
                )));
            }
            None
        };
        let mut settings = settings;
        let listed = std::mem::take(&mut settings.citizens);
        let mut citizens = Vec::with_capacity(listed.len());
        for c in listed {
            if !valid_name(&c.name) {
                return Err(Error::Config(format!(
                    "source {s}: a citizen's `name` must be 1 to 64 letters, digits, `-`, `_` or `.`"
                )));
            }
            if citizens.iter().any(|o: &Citizen| o.name == c.name) {
                return Err(Error::Config(format!(
                    "source {s}: citizen {} is listed twice",
                    c.name
                )));
            }
            let subject: Identifier = c.subject.parse().map_err(|e| {
                Error::Config(format!("source {s}: citizen {}: subject: {e}", c.name))
            })?;
            let nightscout_only =
                c.base_url.is_some() || c.api_secret.is_some() || c.token.is_some();
            if nightscout_only && vendor != Vendor::Nightscout {
                return Err(Error::Config(format!(
                    "source {s}: citizen {}: `base_url`, `api_secret` and `token` are Nightscout settings; {} citizens are authorised with `healthanalyzer connect`",
                    c.name,
                    vendor.name()
                )));
            }
            let site = c
                .base_url
                .as_deref()
                .map(|u| url(u, "the citizen's base_url", s).map(base))
                .transpose()?;
            if vendor == Vendor::Nightscout && site.is_none() && api_base.is_none() {
                return Err(Error::Config(format!(
                    "source {s}: citizen {}: Nightscout needs the citizen's site as `base_url`",
                    c.name
                )));
            }
            citizens.push(Citizen {
                name: c.name,
                subject,
                base_url: site,
                api_secret: c.api_secret.map(Secret::new),
                token: c.token.map(Secret::new),
            });
        }
        let store_path = folder.join(
            settings
                .token_store
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_TOKEN_STORE)),
        );
        Ok(CloudSource {
            vendor,
            source_id: source_id.to_string(),
            api_base,
            app,
            store: Arc::new(FileTokenStore::new(store_path.clone())),
            store_path: Some(store_path),
            http: client,
            since: since(settings.since.as_deref(), s)?,
            citizens,
            settings: Arc::new(settings),
        })
    }

    /// The same, with grants kept in `store` instead of the file.
    pub fn with_token_store(mut self, store: Arc<dyn TokenStore>) -> CloudSource {
        self.store = store;
        self.store_path = None;
        self
    }

    /// The vendor.
    pub fn vendor(&self) -> Vendor {
        self.vendor
    }

    /// The token store's file, unless another store was given.
    pub fn token_store_path(&self) -> Option<&Path> {
        self.store_path.as_deref()
    }

    /// The citizens.
    pub fn citizens(&self) -> &[Citizen] {
        &self.citizens
    }

    /// The citizen called `name` (or whose subject is `name`, `system|value`).
    ///
    /// # Errors
    /// [`Error::Config`] listing the names there are.
    pub fn citizen(&self, name: &str) -> Result<&Citizen, Error> {
        let by_subject: Option<Identifier> =
            name.contains('|').then(|| name.parse().ok()).flatten();
        self.citizens
            .iter()
            .find(|c| c.name == name || by_subject.as_ref() == Some(&c.subject))
            .ok_or_else(|| {
                Error::Config(format!(
                    "source {} has no citizen {}; its citizens: {}",
                    self.source_id,
                    if by_subject.is_some() {
                        "with that subject"
                    } else {
                        name
                    },
                    self.citizens
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    fn context(&self, citizen: &Citizen) -> Result<Context, Error> {
        let api_base = citizen
            .base_url
            .clone()
            .or_else(|| self.api_base.clone())
            .ok_or_else(|| Error::Config(format!("source {}: no base_url", self.source_id)))?;
        Ok(Context {
            vendor: self.vendor,
            source_id: format!("{}/{}", self.source_id, citizen.name),
            api_base,
            since: self.since,
            citizen: citizen.clone(),
            session: self.app.as_ref().map(|app| {
                Arc::new(Session::new(
                    Arc::clone(app),
                    self.http.clone(),
                    Arc::clone(&self.store),
                    GrantKey::new(&self.source_id, &citizen.name),
                ))
            }),
            http: self.http.clone(),
            settings: Arc::clone(&self.settings),
        })
    }

    /// One source per citizen, with the source id `<source id>/<citizen name>`. Building
    /// reads no token: a citizen who is not connected yet fails their own sync, with an error
    /// that says to run `connect`, and the others go on.
    ///
    /// # Errors
    /// [`Error::Config`].
    pub fn sources(&self) -> Result<Vec<Arc<dyn Source>>, Error> {
        self.citizens
            .iter()
            .map(|c| {
                let cx = self.context(c)?;
                match self.vendor {
                    Vendor::Withings => crate::withings::source(cx),
                    Vendor::Fitbit => crate::fitbit::source(cx),
                    Vendor::IHealth => crate::ihealth::source(cx),
                    Vendor::Nightscout => crate::nightscout::source(cx),
                    Vendor::Dexcom => crate::dexcom::source(cx),
                }
            })
            .collect()
    }

    /// Authorises the citizen `name` ([`connect`](crate::connect())): `announce` gets the
    /// URL to open in a browser. Waits up to `timeout` for the browser to come back.
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown citizen or a vendor without OAuth2 (Nightscout);
    /// what [`connect`](crate::connect()) returns.
    pub async fn connect(
        &self,
        name: &str,
        timeout: Duration,
        announce: impl FnOnce(&Url),
    ) -> Result<Grant, Error> {
        let citizen = self.citizen(name)?;
        let Some(app) = &self.app else {
            return Err(Error::Config(format!(
                "source {}: {} is not authorised with connect: put the site's `api_secret` or `token` in the citizen's table",
                self.source_id,
                self.vendor.name()
            )));
        };
        let key = GrantKey::new(&self.source_id, &citizen.name);
        connect(
            app,
            &self.http,
            self.store.as_ref(),
            &key,
            timeout,
            announce,
        )
        .await
    }

    /// Whether `connect` listens for the browser (the redirect URI is a loopback address),
    /// or the address the browser ends on has to be pasted
    /// ([`connect_or_paste`](Self::connect_or_paste)).
    pub fn listens_for_the_browser(&self) -> bool {
        self.app
            .as_ref()
            .is_some_and(|a| is_loopback(&a.redirect_uri))
    }

    /// Authorises the citizen `name` whatever the redirect URI: on a loopback address as
    /// [`connect`](Self::connect) does; on any other (Withings accepts no loopback address),
    /// `answer` reads the address the citizen's browser ended on
    /// ([`connect_pasted`](crate::connect_pasted)).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_or_paste(
        &self,
        name: &str,
        timeout: Duration,
        announce: impl FnOnce(&Url),
        answer: impl FnOnce() -> std::io::Result<String>,
    ) -> Result<Grant, Error> {
        let citizen = self.citizen(name)?;
        match &self.app {
            Some(app) if !is_loopback(&app.redirect_uri) => {
                let key = GrantKey::new(&self.source_id, &citizen.name);
                connect_pasted(app, &self.http, self.store.as_ref(), &key, announce, answer).await
            }
            _ => self.connect(name, timeout, announce).await,
        }
    }
}
