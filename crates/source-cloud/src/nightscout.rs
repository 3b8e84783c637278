//! Nightscout: a CGM site a person runs themselves (`cgm-remote-monitor`), read through its
//! REST API v1 (the default) or v3 (`api_version = 3`).
//!
//! - **Authentication**: the site's `API_SECRET`, sent as its SHA-1 in the `api-secret`
//!   header (API v1 only: v3 does not take it), or an access token made in the site's admin
//!   tools: `?token=` on v1; on v3 exchanged at `/api/v2/authorization/request/<token>` for a
//!   JWT (`Authorization: Bearer`), renewed before it expires and once when the site refuses
//!   it (a restarted site voids its JWTs). Neither: a site anyone may read.
//! - **What is read**: CGM entries (`sgv`, kind `blood-glucose`, through the mapping the
//!   export-file reader uses, [`healthanalyzer_source_files::nightscout::entry`]) and the
//!   glucose of treatments (`glucose` in `units`; `glucoseType` "Finger" or "Manual":
//!   `capillary-glucose`, "Sensor": `blood-glucose`). Sensor codes (an `sgv` below
//!   40 mg/dL) are not readings: skipped.
//! - **Paging**: the entries first, then the treatments, each from a position in time (the
//!   instant reached and the records of that very millisecond already taken), so that a
//!   resumed pull neither skips nor repeats. API v1 answers newest first: a window of time
//!   is asked for, halved while it comes back full and widened while it comes back sparse,
//!   and read whole; v3 answers oldest first (`sort=date`) and is read a page at a time.
//!   Records dated more than 10 minutes ahead of the clock (a device clock set wrong) wait
//!   until the clock reaches them, so that they cannot take the position past the records
//!   before them.
//! - **Record ids**: the entry's `_id` (v1) or `identifier` (v3, which is the `_id` of the
//!   entries that have no identifier of their own); `treatment/<id>` for treatments.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use healthanalyzer_model::{
    Catalog, DateTime, Identifier, Measurement, Provenance, Validator, Value, parse_decimal,
};
use healthanalyzer_source::{Batch, Cursor, Error as SourceError, Rejected, Source, http};
use healthanalyzer_source_files::nightscout::{IdField, MappedEntry, entry, minutes_offset};
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Client, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tokio::sync::Mutex;

use crate::Error;
use crate::oauth::Dialect;
use crate::setup::{Context, Defaults};
use crate::token::Secret;

/// Nightscout's defaults: there is no vendor API, each citizen has a site of their own (the
/// citizen's `base_url`), and no OAuth2.
pub(crate) const DEFAULTS: Defaults = Defaults {
    api_base: "https://nightscout.invalid/",
    authorize: "/",
    token: "/",
    scopes: &[],
    scope_separator: " ",
    dialect: Dialect::Standard,
};

/// The most records one request asks for (API v3's largest `limit`).
const PAGE: usize = 1000;
/// The fewest records a v1 window asks for, however small the batch.
const MIN_PAGE: usize = 100;
/// The most requests one pull makes; it returns what it has after them.
const MAX_REQUESTS: usize = 16;
/// The largest response body read.
const BODY_LIMIT: usize = 16 * 1024 * 1024;
const DAY_MS: i64 = 86_400_000;
/// The widest v1 window.
const MAX_SPAN_MS: i64 = 366 * DAY_MS;
/// The first v1 window of entries: two days (576 readings of a CGM every 5 minutes).
const ENTRIES_SPAN_MS: i64 = 2 * DAY_MS;
/// The first v1 window of treatments.
const TREATMENTS_SPAN_MS: i64 = 30 * DAY_MS;
/// A JWT is renewed this long before it expires.
const JWT_MARGIN_SECONDS: i64 = 60;
/// The cursor format's version.
const CURSOR_VERSION: u32 = 1;
/// The v3 fields read of an entry.
const ENTRY_FIELDS: &str = "identifier,date,dateString,utcOffset,type,sgv,mbg,device";
/// The v3 fields read of a treatment.
const TREATMENT_FIELDS: &str = "identifier,created_at,date,utcOffset,glucose,glucoseType,units";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    V3,
}

impl Api {
    fn number(self) -> u8 {
        match self {
            Api::V1 => 1,
            Api::V3 => 3,
        }
    }

    fn ids(self) -> IdField {
        match self {
            Api::V1 => IdField::Id,
            Api::V3 => IdField::Identifier,
        }
    }
}

/// How the site is told who asks.
enum Credential {
    /// Nothing: a site anyone may read.
    Open,
    /// The SHA-1 (hex) of the site's `API_SECRET`, as the `api-secret` header (as good as
    /// the secret itself).
    Secret(Secret),
    /// An access token of the site's admin tools.
    Token(Secret),
}

/// A JWT of API v3 and when to renew it (seconds since 1970).
struct Jwt {
    token: Secret,
    renew_at: i64,
}

/// The two collections read, in the order they are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Collection {
    Entries,
    Treatments,
}

impl Collection {
    fn name(self) -> &'static str {
        match self {
            Collection::Entries => "entry",
            Collection::Treatments => "treatment",
        }
    }
}

/// Where a collection was left: every record before `at` (milliseconds since 1970) is taken,
/// and of the records at `at`, those in `seen`. `span` is the width of the next v1 window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Position {
    at: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<String>,
    span: i64,
}

/// The cursor: `{"v":1,"nightscout":1,"next":"entries","entries":{…},"treatments":{…}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    v: u32,
    /// The API version it was written for (also what marks a cursor as Nightscout's).
    nightscout: u8,
    /// The collection read next.
    next: Collection,
    entries: Position,
    treatments: Position,
}

impl State {
    fn position(&mut self, c: Collection) -> &mut Position {
        match c {
            Collection::Entries => &mut self.entries,
            Collection::Treatments => &mut self.treatments,
        }
    }
}

/// A record as the site sent it, with its place in the order they are taken in.
struct Row {
    at: i64,
    key: String,
    raw: Json,
}

/// How far the records of a page reach.
enum End {
    /// To the present: nothing after them for now.
    Present,
    /// v1: the window up to `hi` (inclusive) was read whole; `sparse` when it held less than
    /// half a page.
    Closed { hi: i64, sparse: bool },
    /// v3: a full page, more may follow.
    More,
}

/// What one window (v1) or page (v3) gave: the records after the position, in order.
struct Page {
    rows: Vec<Row>,
    end: End,
    span: i64,
}

/// One citizen's Nightscout site.
struct Nightscout {
    id: String,
    source: String,
    citizen: String,
    site: Url,
    subject: Identifier,
    api: Api,
    credential: Credential,
    http: Client,
    since_ms: i64,
    jwt: Mutex<Option<Jwt>>,
}

impl fmt::Debug for Nightscout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The site's address, the credentials and the subject stay out.
        f.debug_struct("Nightscout")
            .field("id", &self.id)
            .field("api_version", &self.api.number())
            .finish_non_exhaustive()
    }
}

/// The source of one citizen.
pub(crate) fn source(cx: Context) -> Result<Arc<dyn Source>, Error> {
    let Context {
        source_id,
        api_base,
        since,
        citizen,
        http,
        settings,
        ..
    } = cx;
    let source = source_id
        .strip_suffix(&format!("/{}", citizen.name))
        .unwrap_or(&source_id)
        .to_string();
    let api = match settings.api_version.unwrap_or(1) {
        1 => Api::V1,
        3 => Api::V3,
        n => {
            return Err(Error::Config(format!(
                "source {source}: `api_version` {n} is not one Nightscout speaks: 1 (the default) or 3"
            )));
        }
    };
    let who = format!("source {source}: citizen {}", citizen.name);
    let credential = match (citizen.api_secret, citizen.token) {
        (Some(_), Some(_)) => {
            return Err(Error::Config(format!(
                "{who}: give the site's `api_secret` or a `token`, not both"
            )));
        }
        (Some(s), None) if s.is_empty() => {
            return Err(Error::Config(format!("{who}: `api_secret` is empty")));
        }
        (None, Some(t)) if t.is_empty() => {
            return Err(Error::Config(format!("{who}: `token` is empty")));
        }
        (Some(_), None) if api == Api::V3 => {
            return Err(Error::Config(format!(
                "{who}: Nightscout's API v3 does not accept the API_SECRET: make an access token in the site's admin tools (a subject with the `readable` role) and give it as `token`, or read API v1"
            )));
        }
        (Some(s), None) => {
            Credential::Secret(Secret::new(sha1_smol::Sha1::from(s.expose()).hexdigest()))
        }
        (None, Some(t)) => Credential::Token(t),
        (None, None) => Credential::Open,
    };
    Ok(Arc::new(Nightscout {
        id: source_id,
        source,
        citizen: citizen.name,
        site: api_base,
        subject: citizen.subject,
        api,
        credential,
        http,
        since_ms: since.as_millisecond(),
        jwt: Mutex::new(None),
    }))
}

/// How far ahead of the clock a record may be read: a record dated later (a device clock
/// set wrong) waits until the clock reaches it, instead of taking the position past the
/// records that come before it. The catalog's validation allows as much.
const FUTURE_MS: i64 = 10 * 60_000;

/// The latest instant read now.
fn ceiling() -> i64 {
    Timestamp::now().as_millisecond().saturating_add(FUTURE_MS)
}

/// `ms` as Nightscout writes `created_at`: `2014-07-19T17:49:15.000Z`.
fn iso(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A JSON number, or a number written as a string.
fn number(v: &Json) -> Option<String> {
    match v {
        Json::Number(n) => Some(n.to_string()),
        Json::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// The instant of a record, in milliseconds: an entry's `date`, a treatment's `created_at`
/// (else its v3 `date`).
fn instant(c: Collection, raw: &Json) -> Option<i64> {
    let date = || {
        raw.get("date")
            .and_then(|d| d.as_i64().or_else(|| d.as_f64().map(|f| f as i64)))
    };
    match c {
        Collection::Entries => date(),
        Collection::Treatments => raw
            .get("created_at")
            .and_then(Json::as_str)
            .and_then(|s| s.parse::<Timestamp>().ok())
            .map(|t| t.as_millisecond())
            .or_else(date),
    }
}

/// The place of a record among those of the same millisecond: its id, else a digest of it.
fn key(ids: IdField, raw: &Json) -> String {
    match raw.get(ids.name()) {
        Some(Json::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            let digest = sha1_smol::Sha1::from(raw.to_string()).hexdigest();
            format!("#{}", &digest[..16])
        }
    }
}

/// Maps a treatment's glucose, `None` when it has none.
fn treatment(
    raw: &Json,
    ids: IdField,
    subject: &Identifier,
    source_id: &str,
) -> Result<Option<Measurement>, String> {
    let Some(text) = raw.get("glucose").and_then(number) else {
        return Ok(None);
    };
    let value = parse_decimal(&text).map_err(|e| format!("`glucose`: {e}"))?;
    if value <= 0.into() {
        return Ok(None);
    }
    let unit = match raw
        .get("units")
        .and_then(Json::as_str)
        .map(|u| u.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("mg/dl") => "mg/dL",
        Some("mmol" | "mmol/l") => "mmol/L",
        Some(_) => return Err("`units` is neither \"mg/dl\" nor \"mmol\"".into()),
        None => return Err("`units` is missing, so the glucose value has no unit".into()),
    };
    let kind = match raw.get("glucoseType").and_then(Json::as_str) {
        None | Some("Finger" | "Manual") => "capillary-glucose",
        Some("Sensor") => "blood-glucose",
        Some(_) => return Err("`glucoseType` is not \"Finger\", \"Sensor\" or \"Manual\"".into()),
    };
    let created = raw.get("created_at").and_then(Json::as_str);
    let at = instant(Collection::Treatments, raw)
        .ok_or("`created_at` is missing or not an ISO 8601 instant")?;
    let ts = Timestamp::from_millisecond(at).map_err(|e| format!("`created_at`: {e}"))?;
    let offset = raw
        .get("utcOffset")
        .and_then(minutes_offset)
        .or_else(|| {
            created
                .and_then(|c| DateTime::parse(c).ok())
                .and_then(|d| d.offset())
                .map(|o| o.to_jiff())
        })
        .unwrap_or(Offset::UTC);
    let record = match raw.get(ids.name()) {
        Some(Json::String(id)) if !id.is_empty() => format!("treatment/{id}"),
        _ => format!("treatment@{at}"),
    };
    Ok(Some(Measurement::new(
        Provenance::new(source_id, record),
        subject.clone(),
        kind,
        Value::quantity(value, unit),
        DateTime::from_timestamp(ts, offset),
    )))
}

/// The position after `taken` (records after `pos`, in order).
fn after(pos: &Position, taken: &[Row], span: i64) -> Position {
    let Some(last) = taken.last() else {
        return Position {
            span,
            ..pos.clone()
        };
    };
    let mut seen: Vec<String> = if last.at == pos.at {
        pos.seen.clone()
    } else {
        Vec::new()
    };
    seen.extend(
        taken
            .iter()
            .filter(|r| r.at == last.at)
            .map(|r| r.key.clone()),
    );
    Position {
        at: last.at,
        seen,
        span,
    }
}

impl Nightscout {
    fn bad_cursor(&self, reason: &str) -> SourceError {
        SourceError::BadCursor {
            reason: format!("{}: {reason}", self.id),
        }
    }

    /// The cursor's state; the start (at `since`) for the empty cursor.
    fn state(&self, cursor: &Cursor) -> Result<State, SourceError> {
        if cursor.is_start() {
            let start = |span| Position {
                at: self.since_ms,
                seen: Vec::new(),
                span,
            };
            return Ok(State {
                v: CURSOR_VERSION,
                nightscout: self.api.number(),
                next: Collection::Entries,
                entries: start(ENTRIES_SPAN_MS),
                treatments: start(TREATMENTS_SPAN_MS),
            });
        }
        let state: State = serde_json::from_str(cursor.as_str())
            .map_err(|_| self.bad_cursor("not a cursor of a Nightscout source"))?;
        if state.v != CURSOR_VERSION {
            return Err(self.bad_cursor(&format!(
                "a cursor of format version {} (this version reads {CURSOR_VERSION})",
                state.v
            )));
        }
        if state.nightscout != self.api.number() {
            return Err(self.bad_cursor(&format!(
                "a cursor of API v{}, and the source now reads API v{}",
                state.nightscout,
                self.api.number()
            )));
        }
        Ok(state)
    }

    /// The site refused the credentials: which setting to fix.
    fn refused(&self, status: StatusCode) -> SourceError {
        let fix = match (&self.credential, status) {
            (Credential::Open, _) => {
                "the site does not let anyone read it: give the citizen's `token` (or, for API v1, the site's `api_secret`)"
            }
            (_, StatusCode::FORBIDDEN) => {
                "the credentials may not read this: give the token's subject the `readable` role in the site's admin tools"
            }
            (Credential::Secret(_), _) => {
                "fix the citizen's `api_secret`: it must be the site's API_SECRET"
            }
            (Credential::Token(_), _) => {
                "fix the citizen's `token`: an access token from the site's admin tools"
            }
        };
        SourceError::Auth {
            reason: format!(
                "the Nightscout site of citizen {} of source {} answered {status}: {fix}",
                self.citizen, self.source
            ),
        }
    }

    /// A v3 JWT: the one at hand unless `renew`, else a new one for the access token.
    async fn jwt(&self, renew: bool) -> Result<Secret, SourceError> {
        let mut cached = self.jwt.lock().await;
        let now = Timestamp::now().as_second();
        if !renew
            && let Some(j) = cached.as_ref()
            && j.renew_at > now
        {
            return Ok(j.token.clone());
        }
        let Credential::Token(token) = &self.credential else {
            return Err(SourceError::Config(format!(
                "{}: API v3 needs the citizen's `token`",
                self.id
            )));
        };
        let location = format!("{}: Nightscout /api/v2/authorization/request", self.id);
        let mut url = self
            .site
            .join("api/v2/authorization/request/")
            .map_err(|e| SourceError::Config(format!("{location}: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| {
                SourceError::Config(format!("{location}: the site is not a URL with a path"))
            })?
            .pop_if_empty()
            .push(token.expose());
        let response = self
            .http
            .get(url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| http::transport_error(&location, e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.refused(StatusCode::UNAUTHORIZED));
        }
        if status == StatusCode::NOT_FOUND {
            return Err(SourceError::Config(format!(
                "{location} answered {status}: the site has no API v3 (a Nightscout before version 14?); set `api_version = 1`"
            )));
        }
        let text = http::success_text(response, 1 << 20, &location).await?;
        let json: Json = serde_json::from_str(&text).map_err(|_| SourceError::BadData {
            location: location.clone(),
            reason: "the answer is not JSON".into(),
        })?;
        let Some(jwt) = json
            .get("token")
            .and_then(Json::as_str)
            .filter(|t| !t.is_empty())
        else {
            return Err(SourceError::BadData {
                location,
                reason: "the answer has no `token`".into(),
            });
        };
        let renew_at = json
            .get("exp")
            .and_then(Json::as_i64)
            .map_or(now + 3600, |exp| exp - JWT_MARGIN_SECONDS);
        let token = Secret::new(jwt);
        *cached = Some(Jwt {
            token: token.clone(),
            renew_at,
        });
        tracing::debug!(source = %self.id, "obtained a Nightscout JWT");
        Ok(token)
    }

    /// `GET <site>/<path>?<query>` with the credentials, as JSON. A 401 or 403 (in the HTTP
    /// status, or in a body's `status`) is [`SourceError::Auth`] naming the setting to fix.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Json, SourceError> {
        let location = format!("{}: Nightscout /{path}", self.id);
        let mut url = self
            .site
            .join(path)
            .map_err(|e| SourceError::Config(format!("{location}: {e}")))?;
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
            if let (Api::V1, Credential::Token(t)) = (self.api, &self.credential) {
                pairs.append_pair("token", t.expose());
            }
        }
        let renewable = self.api == Api::V3 && matches!(self.credential, Credential::Token(_));
        for attempt in 0..2 {
            let mut request = self
                .http
                .get(url.clone())
                .header(ACCEPT, "application/json");
            match &self.credential {
                Credential::Secret(hash) => {
                    // Marked sensitive, as reqwest marks a bearer token: never shown in a
                    // header's `Debug`.
                    let mut value = HeaderValue::from_str(hash.expose()).map_err(|_| {
                        SourceError::Config(format!(
                            "{}: the API_SECRET's hash is not a header",
                            self.id
                        ))
                    })?;
                    value.set_sensitive(true);
                    request = request.header("api-secret", value);
                }
                Credential::Token(_) if self.api == Api::V3 => {
                    request = request.bearer_auth(self.jwt(attempt > 0).await?.expose());
                }
                _ => {}
            }
            let response = request
                .send()
                .await
                .map_err(|e| http::transport_error(&location, e))?;
            let mut status = response.status();
            let headers = response.headers().clone();
            let mut in_body = false;
            if status.is_success() {
                let text = http::read_text(response, BODY_LIMIT, &location).await?;
                let json: Json = serde_json::from_str(&text).map_err(|e| SourceError::BadData {
                    location: location.clone(),
                    reason: format!(
                        "the answer is not JSON ({:?} error at line {}, column {})",
                        e.classify(),
                        e.line(),
                        e.column()
                    ),
                })?;
                // API v3 (and some proxies) say what went wrong in the body's `status`.
                match json
                    .get("status")
                    .and_then(Json::as_u64)
                    .and_then(|s| u16::try_from(s).ok())
                    .and_then(|s| StatusCode::from_u16(s).ok())
                {
                    Some(s) if !s.is_success() => {
                        status = s;
                        in_body = true;
                    }
                    _ => return Ok(json),
                }
            }
            if status == StatusCode::UNAUTHORIZED && renewable && attempt == 0 {
                // The JWT may be void (the site restarted): a new one, once.
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(self.refused(status));
            }
            let detail = in_body.then_some("the status in the body of an HTTP 200 answer");
            return Err(http::status_error(status, &headers, &location, detail));
        }
        Err(self.refused(StatusCode::UNAUTHORIZED))
    }

    /// One request for the records of `c` from `from` to `to` (both inclusive), at most
    /// `count`.
    async fn fetch(
        &self,
        c: Collection,
        from: i64,
        to: i64,
        count: usize,
    ) -> Result<Vec<Json>, SourceError> {
        let mut q: Vec<(&str, String)> = Vec::new();
        let (path, body) = match (self.api, c) {
            (Api::V1, Collection::Entries) => {
                q.push(("find[date][$gte]", from.to_string()));
                q.push(("find[date][$lte]", to.to_string()));
                q.push(("count", count.to_string()));
                (
                    "api/v1/entries/sgv.json",
                    self.get("api/v1/entries/sgv.json", &q).await?,
                )
            }
            (Api::V1, Collection::Treatments) => {
                q.push(("find[created_at][$gte]", iso(from)));
                q.push(("find[created_at][$lte]", iso(to)));
                q.push(("find[glucose][$gt]", "0".into()));
                q.push(("count", count.to_string()));
                (
                    "api/v1/treatments.json",
                    self.get("api/v1/treatments.json", &q).await?,
                )
            }
            (Api::V3, Collection::Entries) => {
                q.push(("date$gte", from.to_string()));
                q.push(("date$lte", to.to_string()));
                q.push(("type", "sgv".into()));
                q.push(("sort", "date".into()));
                q.push(("limit", count.to_string()));
                q.push(("fields", ENTRY_FIELDS.into()));
                ("api/v3/entries", self.get("api/v3/entries", &q).await?)
            }
            (Api::V3, Collection::Treatments) => {
                q.push(("created_at$gte", iso(from)));
                q.push(("created_at$lte", iso(to)));
                q.push(("glucose$gt", "0".into()));
                q.push(("sort", "created_at".into()));
                q.push(("limit", count.to_string()));
                q.push(("fields", TREATMENT_FIELDS.into()));
                (
                    "api/v3/treatments",
                    self.get("api/v3/treatments", &q).await?,
                )
            }
        };
        let list = match (self.api, body) {
            (Api::V1, Json::Array(list)) => list,
            (Api::V3, Json::Object(mut o)) => match o.remove("result") {
                Some(Json::Array(list)) => list,
                _ => return Err(self.not_a_list(path, c)),
            },
            _ => return Err(self.not_a_list(path, c)),
        };
        Ok(list)
    }

    fn not_a_list(&self, path: &str, c: Collection) -> SourceError {
        SourceError::BadData {
            location: format!("{}: Nightscout /{path}", self.id),
            reason: format!("the answer is not a list of {}s", c.name()),
        }
    }

    /// The records of an answer after `pos` (up to `hi`), in the order they are taken in.
    fn rows(&self, c: Collection, list: Vec<Json>, pos: &Position, hi: i64) -> Vec<Row> {
        let ids = self.api.ids();
        let mut rows: Vec<Row> = list
            .into_iter()
            .map(|raw| Row {
                // A record the site matched but whose time cannot be read is placed at the
                // position, and reported once.
                at: instant(c, &raw).unwrap_or(pos.at),
                key: key(ids, &raw),
                raw,
            })
            .filter(|r| {
                r.at >= pos.at && r.at <= hi && !(r.at == pos.at && pos.seen.contains(&r.key))
            })
            .collect();
        rows.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));
        rows.dedup_by(|a, b| a.at == b.at && a.key == b.key);
        rows
    }

    /// API v1: the records of a window from `pos`, read whole (a window that comes back full
    /// is halved and asked again), or the width reached when the pull's requests ran out
    /// first.
    async fn window(
        &self,
        c: Collection,
        pos: &Position,
        want: usize,
        requests: &mut usize,
    ) -> Result<Result<Page, i64>, SourceError> {
        let ceiling = ceiling();
        let mut span = pos.span.clamp(0, MAX_SPAN_MS);
        let mut bounded = false;
        loop {
            if *requests >= MAX_REQUESTS {
                // The next pull goes on narrowing from here.
                return Ok(Err(span));
            }
            let open = !bounded && pos.at.saturating_add(span) >= ceiling;
            let hi = if open {
                ceiling
            } else {
                pos.at.saturating_add(span)
            };
            // The records of the position's millisecond come again: room for them.
            let count = (want.max(MIN_PAGE) + pos.seen.len())
                .min(PAGE)
                .max(pos.seen.len() + 1);
            let list = self.fetch(c, pos.at, hi, count).await?;
            *requests += 1;
            if list.len() >= count {
                // The site answered its newest `count`: the oldest may be missing.
                if span == 0 {
                    return Err(SourceError::BadData {
                        location: format!("{}: Nightscout {}s", self.id, c.name()),
                        reason: format!("more than {count} records of one millisecond"),
                    });
                }
                if open {
                    span = span.min(ceiling.saturating_sub(pos.at).max(0));
                }
                span /= 2;
                bounded = true;
                continue;
            }
            let sparse = list.len() * 2 < count;
            let rows = self.rows(c, list, pos, hi);
            let end = if open {
                End::Present
            } else {
                End::Closed { hi, sparse }
            };
            return Ok(Ok(Page { rows, end, span }));
        }
    }

    /// API v3: a page of the records from `pos`, oldest first, or `Err` when the pull's
    /// requests ran out.
    async fn page(
        &self,
        c: Collection,
        pos: &Position,
        want: usize,
        requests: &mut usize,
    ) -> Result<Result<Page, i64>, SourceError> {
        if *requests >= MAX_REQUESTS {
            return Ok(Err(pos.span));
        }
        let count = (want + pos.seen.len() + 1).min(PAGE);
        let ceiling = ceiling();
        let list = self.fetch(c, pos.at, ceiling, count).await?;
        *requests += 1;
        let full = list.len() >= count;
        let rows = self.rows(c, list, pos, ceiling);
        if full && rows.is_empty() {
            return Err(SourceError::BadData {
                location: format!("{}: Nightscout {}s", self.id, c.name()),
                reason: format!("more than {PAGE} records of one millisecond"),
            });
        }
        let end = if full { End::More } else { End::Present };
        Ok(Ok(Page {
            rows,
            end,
            span: pos.span,
        }))
    }

    /// Turns a record into the batch's measurement, a rejection, or nothing (a sensor code, a
    /// treatment without glucose).
    fn take(&self, c: Collection, row: Row, batch: &mut Batch) {
        let ids = self.api.ids();
        let mapped = match c {
            Collection::Entries => {
                match entry(&row.raw, ids, &TimeZone::UTC, &self.subject, &self.id) {
                    Ok(MappedEntry::Glucose(m)) => Ok(Some(m)),
                    Ok(_) => Ok(None),
                    Err(reason) => Err(reason),
                }
            }
            Collection::Treatments => treatment(&row.raw, ids, &self.subject, &self.id),
        };
        let location = format!("{} {}", c.name(), row.key);
        let checked = mapped.and_then(|m| {
            m.map(|m| {
                Validator::new(Catalog::builtin())
                    .normalize(m)
                    .map_err(|e| e.to_string())
            })
            .transpose()
        });
        match checked {
            Ok(Some(m)) => batch.measurements.push(m),
            Ok(None) => {}
            Err(reason) => batch.rejected.push(Rejected { location, reason }),
        }
    }
}

#[async_trait]
impl Source for Nightscout {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        "nightscout"
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> healthanalyzer_source::Result<Batch> {
        let limit = limit.max(1);
        let mut state = self.state(cursor)?;
        let mut batch = Batch::default();
        let mut requests = 0;
        let mut taken = 0;
        let exhausted = loop {
            let want = limit - taken;
            if want == 0 {
                break false;
            }
            let c = state.next;
            let pos = state.position(c).clone();
            let page = match self.api {
                Api::V1 => self.window(c, &pos, want, &mut requests).await?,
                Api::V3 => self.page(c, &pos, want, &mut requests).await?,
            };
            let page = match page {
                Ok(page) => page,
                Err(span) => {
                    state.position(c).span = span;
                    break false;
                }
            };
            let all = page.rows.len();
            let rows: Vec<Row> = page.rows.into_iter().take(want).collect();
            let cut = rows.len() < all;
            let next = match page.end {
                End::Closed { hi, sparse } if !cut => Position {
                    at: hi.saturating_add(1),
                    seen: Vec::new(),
                    span: if sparse {
                        page.span.saturating_mul(2).clamp(1, MAX_SPAN_MS)
                    } else {
                        page.span
                    },
                },
                _ => after(&pos, &rows, page.span),
            };
            let present = !cut && matches!(page.end, End::Present);
            taken += rows.len();
            for row in rows {
                self.take(c, row, &mut batch);
            }
            *state.position(c) = next;
            if present {
                match c {
                    Collection::Entries => state.next = Collection::Treatments,
                    Collection::Treatments => {
                        state.next = Collection::Entries;
                        break true;
                    }
                }
            }
        };
        tracing::debug!(
            source = %self.id,
            requests,
            measurements = batch.measurements.len(),
            rejected = batch.rejected.len(),
            exhausted,
            "pulled from Nightscout"
        );
        batch.cursor =
            Cursor::new(
                serde_json::to_string(&state).map_err(|e| SourceError::Other {
                    reason: format!("{}: the cursor cannot be written", self.id),
                    retryable: false,
                    cause: Some(Box::new(e)),
                })?,
            );
        batch.exhausted = exhausted;
        Ok(batch)
    }

    async fn check(&self) -> healthanalyzer_source::Result<()> {
        match self.api {
            Api::V1 => {
                let body = self
                    .get("api/v1/entries/sgv.json", &[("count", "1".into())])
                    .await?;
                if !body.is_array() {
                    return Err(self.not_a_list("api/v1/entries/sgv.json", Collection::Entries));
                }
            }
            Api::V3 => {
                let body = self
                    .get(
                        "api/v3/entries",
                        &[("limit", "1".into()), ("fields", "identifier".into())],
                    )
                    .await?;
                if !body.get("result").is_some_and(Json::is_array) {
                    return Err(self.not_a_list("api/v3/entries", Collection::Entries));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_at_is_written_as_nightscout_writes_it() {
        assert_eq!(iso(1_405_792_155_000), "2014-07-19T17:49:15.000Z");
        assert_eq!(iso(1_405_792_155_007), "2014-07-19T17:49:15.007Z");
    }

    #[test]
    fn a_finger_stick_in_mmol_is_capillary_glucose_on_its_own_wall_clock() {
        let subject = Identifier::new("urn:example:citizen", "anna");
        let raw = json!({"_id": "t1", "eventType": "BG Check", "glucose": 6.2, "units": "mmol",
            "glucoseType": "Finger", "created_at": "2024-03-01T07:30:00.000Z", "utcOffset": 60});
        let m = treatment(&raw, IdField::Id, &subject, "ns/anna")
            .expect("mapped")
            .expect("a glucose");
        assert_eq!(m.kind, "capillary-glucose");
        assert_eq!(
            m.value.as_quantity().map(|q| q.to_string()).as_deref(),
            Some("6.2 mmol/L")
        );
        assert_eq!(m.effective.start().to_string(), "2024-03-01T08:30:00+01:00");
        assert_eq!(m.provenance.record_id, "treatment/t1");
        let sensor = json!({"glucose": "140", "units": "mg/dl", "glucoseType": "Sensor",
            "created_at": "2024-03-01T07:30:00.000Z"});
        let m = treatment(&sensor, IdField::Id, &subject, "ns/anna")
            .expect("mapped")
            .expect("a glucose");
        assert_eq!(m.kind, "blood-glucose");
        assert_eq!(m.effective.start().to_string(), "2024-03-01T07:30:00+00:00");
        let none = json!({"eventType": "Temp Basal", "created_at": "2024-03-01T07:30:00.000Z"});
        assert!(
            treatment(&none, IdField::Id, &subject, "ns/anna")
                .expect("mapped")
                .is_none()
        );
        let unitless = json!({"glucose": 120, "created_at": "2024-03-01T07:30:00.000Z"});
        let e = treatment(&unitless, IdField::Id, &subject, "ns/anna").expect_err("no unit");
        assert!(e.contains("`units`"), "{e}");
    }

    #[test]
    fn the_position_after_records_keeps_the_ids_of_its_millisecond() {
        let row = |at, key: &str| Row {
            at,
            key: key.into(),
            raw: Json::Null,
        };
        let pos = Position {
            at: 10,
            seen: vec!["a".into()],
            span: 5,
        };
        let p = after(&pos, &[row(10, "b"), row(10, "c")], 5);
        assert_eq!(p.at, 10);
        assert_eq!(p.seen, ["a", "b", "c"]);
        let p = after(&pos, &[row(10, "b"), row(12, "d"), row(12, "e")], 7);
        assert_eq!(
            (p.at, p.seen.as_slice(), p.span),
            (12, &["d".to_string(), "e".into()][..], 7)
        );
        assert_eq!(after(&pos, &[], 9), Position { span: 9, ..pos });
    }
}
