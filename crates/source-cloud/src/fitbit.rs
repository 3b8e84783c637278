//! Fitbit Web API: one citizen's weight logs (and their BMI), daily resting heart rate, daily
//! steps and nightly SpO2 average.
//!
//! # How a pull reads
//!
//! A *pass* reads the four series in turn (weight, heart, steps, SpO2), each in windows of
//! as many days as Fitbit allows per request (31 for weight, 30 for SpO2, a year for the
//! others), from where the last pass left it to the citizen's today. A pass starts by
//! reading the profile (`GET /1/user/-/profile.json`) for the citizen's time zone: Fitbit
//! writes times on the citizen's wall clock, and the zone is kept in the cursor for the rest
//! of the pass.
//!
//! The cursor (JSON, `"src": "fitbit"`, version 1) holds the zone, the first day each series
//! reads next, the series being read, the key of the last item delivered within its window
//! (so a window with more than `limit` measurements is split), and fingerprints of what was
//! delivered for the days still settling. Once a series reaches today, the next pass reads
//! today and the three days before it again ([`SETTLING_DAYS`]: a tracker that syncs late
//! changes days that are over; same ids, so the day's value is updated, `preliminary` until
//! the day is over), and what it delivered unchanged is not delivered again: pulling from an
//! exhausted cursor gives an empty, exhausted batch until Fitbit has something new.
//!
//! # Rate limit
//!
//! Fitbit allows 150 requests per citizen an hour and says what is left in
//! `Fitbit-Rate-Limit-Remaining` (and when the hour is over in `Fitbit-Rate-Limit-Reset`,
//! seconds). When nothing is left, the next request is not sent: the pull is
//! [`Unavailable`](healthanalyzer_source::Error::Unavailable) with that wait. A 429 is
//! `Unavailable` with the `Retry-After` wait, or else the reset's.

mod map;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use healthanalyzer_model::{Catalog, Identifier, Validator};
use healthanalyzer_source::http;
use healthanalyzer_source::{Batch, Cursor, Error as SourceError, Result as SourceResult, Source};
use jiff::civil::Date;
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, ToSpan};
use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::Error;
use crate::oauth::Dialect;
use crate::session::Session;
use crate::setup::{Context, Defaults};

/// Fitbit's endpoints and scopes. `profile` is asked for besides the data scopes: the
/// profile gives the citizen's time zone, without which Fitbit's local times have no offset.
pub(crate) const DEFAULTS: Defaults = Defaults {
    api_base: "https://api.fitbit.com/",
    authorize: "https://www.fitbit.com/oauth2/authorize",
    token: "https://api.fitbit.com/oauth2/token",
    scopes: &[
        "weight",
        "heartrate",
        "activity",
        "oxygen_saturation",
        "profile",
    ],
    scope_separator: " ",
    dialect: Dialect::Basic,
};

/// The cursor's format version.
const CURSOR_VERSION: u32 = 1;

/// Days before today that every pass reads again: a tracker that syncs late (the last hours
/// of yesterday, uploaded this morning) changes days that are already over.
const SETTLING_DAYS: i64 = 3;

/// The first day a pass on `today` reads again.
fn settling_since(today: Date) -> Date {
    today
        .checked_sub(jiff::Span::new().days(SETTLING_DAYS))
        .unwrap_or(today)
}

/// The most requests one pull sends once it has something to return (a pass over a long
/// history takes several pulls). A pull with nothing yet goes on to the end of the pass, so
/// that pulling from an exhausted cursor ends exhausted.
const MAX_REQUESTS_PER_PULL: usize = 8;

/// The largest answer read.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The largest error answer read (for its `errorType`).
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The source of one citizen.
pub(crate) fn source(cx: Context) -> Result<Arc<dyn Source>, Error> {
    let session = cx.session.clone().ok_or_else(|| {
        Error::Config(format!(
            "source {}: Fitbit needs an OAuth2 app registration",
            cx.source_id
        ))
    })?;
    Ok(Arc::new(FitbitSource {
        id: cx.source_id,
        api: cx.api_base,
        since: cx.since,
        subject: cx.citizen.subject,
        session,
        pause: Mutex::new(None),
    }))
}

/// The data Fitbit is read for, in the order a pass reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Series {
    /// Weight logs: `body/log/weight`.
    Weight,
    /// The daily resting heart rate: `activities/heart`.
    Heart,
    /// Daily steps: `activities/steps`.
    Steps,
    /// The nightly SpO2 average: `spo2`.
    Spo2,
}

impl Series {
    const ALL: [Series; 4] = [Series::Weight, Series::Heart, Series::Steps, Series::Spo2];

    /// Its name in record ids and messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Series::Weight => "weight",
            Series::Heart => "heart",
            Series::Steps => "steps",
            Series::Spo2 => "spo2",
        }
    }

    /// The most days one request may span.
    fn max_days(self) -> i64 {
        match self {
            Series::Weight => 31,
            Series::Spo2 => 30,
            Series::Heart | Series::Steps => 365,
        }
    }

    /// The path of the range `from..=to`.
    fn path(self, from: Date, to: Date) -> String {
        match self {
            Series::Weight => format!("1/user/-/body/log/weight/date/{from}/{to}.json"),
            Series::Heart => format!("1/user/-/activities/heart/date/{from}/{to}.json"),
            Series::Steps => format!("1/user/-/activities/steps/date/{from}/{to}.json"),
            Series::Spo2 => format!("1/user/-/spo2/date/{from}/{to}.json"),
        }
    }

    /// The scope it needs.
    fn scope(self) -> &'static str {
        match self {
            Series::Weight => "weight",
            Series::Heart => "heartrate",
            Series::Steps => "activity",
            Series::Spo2 => "oxygen_saturation",
        }
    }

    fn next(self) -> Option<Series> {
        let i = Series::ALL.iter().position(|s| *s == self)?;
        Series::ALL.get(i + 1).copied()
    }
}

/// The citizen's time zone as the profile gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Zone {
    /// The IANA name (`Europe/Copenhagen`), if the profile had one this build knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The offset from UTC in seconds when the profile was read (used when there is no
    /// name).
    offset: i32,
}

impl Zone {
    fn time_zone(&self) -> TimeZone {
        self.name
            .as_deref()
            .and_then(|n| TimeZone::get(n).ok())
            .unwrap_or_else(|| {
                TimeZone::fixed(Offset::from_seconds(self.offset).unwrap_or(Offset::UTC))
            })
    }

    fn text(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("{:+}s", self.offset),
        }
    }
}

/// What was delivered of a day that was not over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Seen {
    /// The series.
    s: Series,
    /// The day.
    d: String,
    /// The record's fingerprint.
    h: String,
}

/// The cursor, as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// `"fitbit"`: another source's cursor is refused.
    src: String,
    /// [`CURSOR_VERSION`].
    v: u32,
    /// The zone of the pass.
    #[serde(default)]
    zone: Zone,
    /// Per series, the first day the next window starts at.
    #[serde(default)]
    from: BTreeMap<Series, String>,
    /// The series being read; `None` between passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<Series>,
    /// The key of the last item delivered in the current window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// Items delivered for days that were not over, by record id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    seen: BTreeMap<String, Seen>,
}

fn bad_cursor(reason: impl Into<String>) -> SourceError {
    SourceError::BadCursor {
        reason: reason.into(),
    }
}

impl State {
    fn start() -> State {
        State {
            src: "fitbit".into(),
            v: CURSOR_VERSION,
            zone: Zone::default(),
            from: BTreeMap::new(),
            at: None,
            after: None,
            seen: BTreeMap::new(),
        }
    }

    fn parse(cursor: &Cursor) -> SourceResult<State> {
        if cursor.is_start() {
            return Ok(State::start());
        }
        let st: State = serde_json::from_str(cursor.as_str())
            .map_err(|_| bad_cursor("it is not a Fitbit cursor"))?;
        if st.src != "fitbit" {
            return Err(bad_cursor("it is not a Fitbit cursor"));
        }
        if st.v != CURSOR_VERSION {
            return Err(bad_cursor(format!(
                "it is a Fitbit cursor of version {}, this build reads version {CURSOR_VERSION}",
                st.v
            )));
        }
        let dates_ok = st.from.values().all(|d| d.parse::<Date>().is_ok())
            && st.seen.values().all(|s| s.d.parse::<Date>().is_ok());
        if !dates_ok {
            return Err(bad_cursor("a Fitbit cursor with a date that is not one"));
        }
        if st.at.is_some() && st.from.len() != Series::ALL.len() {
            return Err(bad_cursor("a Fitbit cursor in a pass without its days"));
        }
        Ok(st)
    }

    fn cursor(&self) -> Cursor {
        // A struct of strings, numbers and maps with string keys always serialises.
        Cursor::new(serde_json::to_string(self).unwrap_or_default())
    }

    fn start_of(&self, series: Series) -> Option<Date> {
        self.from.get(&series).and_then(|d| d.parse().ok())
    }

    /// Starts a pass in `zone`: series never read start at the day `since` falls on.
    fn begin(&mut self, zone: Zone, since: Timestamp) {
        let first = since.to_zoned(zone.time_zone()).date();
        for s in Series::ALL {
            self.from.entry(s).or_insert_with(|| first.to_string());
        }
        self.zone = zone;
        self.at = Some(Series::Weight);
        self.after = None;
    }

    /// The window of `series` is read up to `end`; `today` is the citizen's, `settling` the
    /// first day that is read again next pass.
    fn finish_window(&mut self, series: Series, end: Date, today: Date, settling: Date) {
        self.after = None;
        let next = if end >= today {
            // The days still settling are read again next pass; this pass moves on.
            self.at = series.next();
            settling
        } else {
            end.tomorrow().unwrap_or(end)
        };
        self.from.insert(series, next.to_string());
        let next = next.to_string();
        // Fingerprints of days the series will not read again are dropped. Dates as
        // YYYY-MM-DD compare as text.
        self.seen.retain(|_, s| s.s != series || s.d >= next);
    }
}

/// One citizen's Fitbit.
struct FitbitSource {
    id: String,
    api: Url,
    since: Timestamp,
    subject: Identifier,
    session: Arc<Session>,
    /// Until when Fitbit's hourly quota is used up.
    pause: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for FitbitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No token, no subject: the id names the citizen.
        f.debug_struct("FitbitSource")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// An answer, or the missing scope that prevented it.
enum Reply {
    Body(Json),
    MissingScope,
}

/// The `errorType` (and `fieldName`) of Fitbit's error answer
/// (`{"errors": [{"errorType", "fieldName", "message"}], "success": false}`): codes, never
/// the message, which may quote the request.
fn error_type(json: &Json) -> Option<String> {
    let e = json.pointer("/errors/0")?;
    let t = e.get("errorType").and_then(Json::as_str)?;
    let safe = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .take(64)
            .collect::<String>()
    };
    Some(match e.get("fieldName").and_then(Json::as_str) {
        Some(f) if !f.is_empty() => format!("{} (field {})", safe(t), safe(f)),
        _ => safe(t),
    })
}

fn header_seconds(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl FitbitSource {
    fn quota_wait(&self) -> Option<Duration> {
        let mut pause = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        match *pause {
            Some(until) if until > Instant::now() => Some(until - Instant::now()),
            Some(_) => {
                *pause = None;
                None
            }
            None => None,
        }
    }

    fn note_quota(&self, headers: &HeaderMap) {
        let Some(remaining) = header_seconds(headers, "fitbit-rate-limit-remaining") else {
            return;
        };
        let mut pause = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        *pause = if remaining == 0 {
            // Without a reset, the quota is an hour's.
            let reset = header_seconds(headers, "fitbit-rate-limit-reset").unwrap_or(3600);
            Some(Instant::now() + Duration::from_secs(reset))
        } else {
            None
        };
    }

    /// `GET {api}/{path}` with the citizen's token.
    async fn get(&self, path: &str) -> SourceResult<Reply> {
        if let Some(wait) = self.quota_wait() {
            return Err(SourceError::Unavailable {
                reason: format!(
                    "Fitbit's hourly quota of requests for {} is used up; it is renewed in {} s",
                    self.id,
                    wait.as_secs()
                ),
                retry_after: Some(wait),
                cause: None,
            });
        }
        let url = self
            .api
            .join(path)
            .map_err(|e| SourceError::Config(format!("source {}: the API URL: {e}", self.id)))?;
        let location = http::without_query(&url);
        let response = self
            .session
            .send(&location, |client, token| {
                client
                    .get(url.clone())
                    .bearer_auth(token.expose())
                    .header(ACCEPT, "application/json")
            })
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        self.note_quota(&headers);
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = http::retry_after(&headers).or_else(|| {
                header_seconds(&headers, "fitbit-rate-limit-reset").map(Duration::from_secs)
            });
            return Err(SourceError::Unavailable {
                reason: format!(
                    "{location} answered {status}: Fitbit allows 150 requests per citizen an hour"
                ),
                retry_after: wait,
                cause: None,
            });
        }
        if !status.is_success() {
            let text = http::read_text(response, ERROR_BODY_LIMIT, &location)
                .await
                .unwrap_or_default();
            let code = serde_json::from_str::<Json>(&text)
                .ok()
                .as_ref()
                .and_then(error_type);
            let scope = code.as_deref().is_some_and(|c| {
                c.starts_with("insufficient_scope") || c.starts_with("insufficient_permissions")
            });
            if status == StatusCode::FORBIDDEN && scope {
                return Ok(Reply::MissingScope);
            }
            return Err(http::status_error(
                status,
                &headers,
                &location,
                code.map(|c| format!("error {c}")).as_deref(),
            ));
        }
        let text = http::read_text(response, BODY_LIMIT, &location).await?;
        let json: Json = serde_json::from_str(&text).map_err(|e| SourceError::BadData {
            location: location.clone(),
            reason: format!("the answer is not JSON ({e})"),
        })?;
        // An error inside a successful answer.
        if json.get("success") == Some(&Json::Bool(false)) || json.pointer("/errors/0").is_some() {
            let code = error_type(&json).unwrap_or_else(|| "unknown".into());
            if code.starts_with("system") {
                return Err(SourceError::Unavailable {
                    reason: format!("{location}: Fitbit answered error {code}"),
                    retry_after: None,
                    cause: None,
                });
            }
            return Err(SourceError::BadData {
                location,
                reason: format!("Fitbit answered error {code}"),
            });
        }
        Ok(Reply::Body(json))
    }

    /// The citizen's time zone, from their profile.
    async fn profile(&self) -> SourceResult<Zone> {
        let json = match self.get("1/user/-/profile.json").await? {
            Reply::Body(j) => j,
            Reply::MissingScope => {
                let key = self.session.key();
                return Err(SourceError::Authorization {
                    reason: format!(
                        "citizen {} of source {} did not allow Fitbit's `profile` scope, which gives their time zone: run `healthanalyzer connect {} --subject {}` again and allow it",
                        key.citizen, key.source, key.source, key.citizen
                    ),
                });
            }
        };
        let user = json.get("user");
        let name = user
            .and_then(|u| u.get("timezone"))
            .and_then(Json::as_str)
            .filter(|n| TimeZone::get(n).is_ok())
            .map(str::to_string);
        let offset = user
            .and_then(|u| u.get("offsetFromUTCMillis"))
            .and_then(Json::as_i64)
            .and_then(|ms| i32::try_from(ms / 1000).ok())
            .filter(|s| Offset::from_seconds(*s).is_ok());
        match (name, offset) {
            (None, None) => Err(SourceError::BadData {
                location: "Fitbit's profile".into(),
                reason: "it has neither `timezone` nor `offsetFromUTCMillis`".into(),
            }),
            (name, offset) => Ok(Zone {
                name,
                offset: offset.unwrap_or(0),
            }),
        }
    }
}

#[async_trait]
impl Source for FitbitSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        "fitbit"
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> SourceResult<Batch> {
        let mut st = State::parse(cursor)?;
        let limit = limit.max(1);
        let mut batch = Batch::default();
        let mut requests = 0;
        if st.at.is_none() {
            let zone = self.profile().await?;
            requests += 1;
            st.begin(zone, self.since);
        }
        // Starting a pass is no progress of its own: a failure before a window was read is
        // the pull's error.
        let started = st.cursor();
        let zone = st.zone.time_zone();
        let zone_text = st.zone.text();
        let today = Timestamp::now().to_zoned(zone.clone()).date();
        let settling = settling_since(today);
        let validator = Validator::new(Catalog::builtin());
        let cx = map::Ctx {
            source_id: &self.id,
            subject: &self.subject,
            zone: &zone,
            zone_text: &zone_text,
            since: self.since,
            today,
            validator: &validator,
        };
        let mut count = 0;
        'series: while let Some(series) = st.at {
            let Some(from) = st.start_of(series) else {
                return Err(bad_cursor("a Fitbit cursor in a pass without its days"));
            };
            if from > today {
                // The citizen's zone moved west since the last pass.
                st.at = series.next();
                st.after = None;
                continue;
            }
            let holds = !batch.measurements.is_empty() || !batch.rejected.is_empty();
            if holds && requests >= MAX_REQUESTS_PER_PULL {
                break;
            }
            let end = from
                .checked_add((series.max_days() - 1).days())
                .map_or(today, |e| e.min(today));
            let reply = self.get(&series.path(from, end)).await;
            requests += 1;
            let body = match reply {
                Ok(Reply::Body(b)) => b,
                Ok(Reply::MissingScope) => {
                    tracing::warn!(
                        source = %self.id,
                        scope = series.scope(),
                        "the citizen did not allow this Fitbit scope: its data is not read (connect again to allow it)"
                    );
                    st.at = series.next();
                    st.after = None;
                    continue;
                }
                // What was read so far is kept; the next pull meets the failure again.
                Err(e) if e.is_retryable() && st.cursor() != started => {
                    tracing::debug!(source = %self.id, error = %e, "the pull ends early");
                    break;
                }
                Err(e) => return Err(e),
            };
            let mut items =
                map::items(series, &body, from, &cx).map_err(|reason| SourceError::BadData {
                    location: format!("Fitbit's {} from {from} to {end}", series.name()),
                    reason,
                })?;
            items.sort_by(|a, b| a.key.cmp(&b.key));
            for item in items {
                if st.after.as_ref().is_some_and(|a| item.key <= *a) {
                    continue;
                }
                if count >= limit {
                    // The rest of the window goes to the next pull.
                    break 'series;
                }
                st.after = Some(item.key.clone());
                if st.seen.get(&item.id).is_some_and(|s| s.h == item.hash) {
                    continue;
                }
                if item.day >= settling {
                    st.seen.insert(
                        item.id.clone(),
                        Seen {
                            s: series,
                            d: item.day.to_string(),
                            h: item.hash.clone(),
                        },
                    );
                }
                match item.entry {
                    map::Entry::Measurement(m) => {
                        batch.measurements.push(*m);
                        count += 1;
                    }
                    map::Entry::Rejected(r) => batch.rejected.push(r),
                }
            }
            st.finish_window(series, end, today, settling);
            if count >= limit {
                break;
            }
        }
        batch.exhausted = st.at.is_none();
        batch.cursor = st.cursor();
        Ok(batch)
    }

    async fn check(&self) -> SourceResult<()> {
        self.profile().await.map(|_| ())
    }
}
