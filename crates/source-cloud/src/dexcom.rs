//! Dexcom API v3 (developer.dexcom.com): a citizen's estimated glucose values (EGVs).
//!
//! - **Authorisation**: OAuth2 (the standard dialect) at `/v2/oauth2/login` and
//!   `/v2/oauth2/token` of the API's base, scope `offline_access`; refresh tokens are single
//!   use and rotate, which the [`Session`](crate::Session) saves before use.
//! - **Base**: `https://api.dexcom.com` (US); `https://api.dexcom.eu` (outside the US) and
//!   `https://api.dexcom.jp` (Japan) through `base_url`; `https://sandbox-api.dexcom.com`
//!   with `sandbox = true`.
//! - **What is read**: `GET /v3/users/self/dataRange` (where the EGVs start and end: also the
//!   cheap `check()`, the start of a first sync that skips empty months, and the end a pull
//!   stops at, since Dexcom publishes readings with a delay), then
//!   `GET /v3/users/self/egvs?startDate=…&endDate=…` (UTC system time, no offset, at most 30
//!   days a request). Each EGV is a `blood-glucose` measurement in its `unit`, at its
//!   `systemTime`, on the wall clock of its `displayTime` (its own offset, else the
//!   difference from the system time, to the quarter hour). Values Dexcom shows as LOW or HIGH
//!   (`status` "low"/"high", or below 40 mg/dL or above 400 mg/dL) are not readings: skipped.
//!   The device is the transmitter generation and the display device; the transmitter's id is
//!   not kept.
//! - **Paging**: by system time, from a position (the instant reached and the records of that
//!   very millisecond already taken), in windows sized to the batch, so that a resumed pull
//!   neither skips nor repeats.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use healthanalyzer_model::{
    Catalog, DateTime, Decimal, DeviceRef, Identifier, Measurement, Provenance, Validator, Value,
    parse_decimal,
};
use healthanalyzer_source::{Batch, Cursor, Error as SourceError, Rejected, Source, http};
use jiff::Timestamp;
use jiff::fmt::temporal::Pieces;
use jiff::tz::Offset;
use reqwest::Url;
use reqwest::header::ACCEPT;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::Error;
use crate::oauth::Dialect;
use crate::session::Session;
use crate::setup::{Context, Defaults};

/// Dexcom's production endpoints (US) and scope.
pub(crate) const DEFAULTS: Defaults = Defaults {
    api_base: "https://api.dexcom.com/",
    authorize: "/v2/oauth2/login",
    token: "/v2/oauth2/token",
    scopes: &["offline_access"],
    scope_separator: " ",
    dialect: Dialect::Standard,
};

/// Dexcom's sandbox (`sandbox = true`): its own app registrations and sandbox users.
pub(crate) const SANDBOX: Defaults = Defaults {
    api_base: "https://sandbox-api.dexcom.com/",
    ..DEFAULTS
};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// The widest window asked for: under Dexcom's 30 days, with the second asked before it.
const MAX_WINDOW_MS: i64 = 29 * DAY_MS;
/// The narrowest window asked for.
const MIN_WINDOW_MS: i64 = DAY_MS;
/// A CGM reads every 5 minutes: a window is sized to hold about a batch.
const READING_MS: i64 = 5 * MINUTE_MS;
/// The most requests one pull makes; it returns what it has after them.
const MAX_REQUESTS: usize = 16;
/// The largest response body read (30 days of 5-minute EGVs are about 4 MiB).
const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// How far ahead of the clock an EGV may be read.
const FUTURE_MS: i64 = 10 * MINUTE_MS;
/// The cursor format's version.
const CURSOR_VERSION: u32 = 1;
/// Dexcom shows LOW below this (mg/dL)…
const LOWEST_MG_DL: i64 = 40;
/// …and HIGH above this.
const HIGHEST_MG_DL: i64 = 400;

/// The cursor: every EGV before `at` (milliseconds since 1970, system time) is taken, and of
/// those at `at`, the ones in `seen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    v: u32,
    /// Marks the cursor as Dexcom's (the API version read).
    dexcom: u8,
    at: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<String>,
}

/// An EGV as Dexcom sent it, with its place in the order they are taken in.
struct Row {
    at: i64,
    key: String,
    raw: Json,
}

/// One citizen's Dexcom account.
struct Dexcom {
    id: String,
    api: Url,
    subject: Identifier,
    session: Arc<Session>,
    since_ms: i64,
}

impl fmt::Debug for Dexcom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The subject and the session's tokens stay out.
        f.debug_struct("Dexcom")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The source of one citizen.
pub(crate) fn source(cx: Context) -> Result<Arc<dyn Source>, Error> {
    let Some(session) = cx.session else {
        return Err(Error::Config(format!(
            "source {}: Dexcom needs the app registration's `client_id` and `client_secret`",
            cx.source_id
        )));
    };
    Ok(Arc::new(Dexcom {
        id: cx.source_id,
        api: cx.api_base,
        subject: cx.citizen.subject,
        session,
        since_ms: cx.since.as_millisecond(),
    }))
}

/// A Dexcom time: `2024-03-10T07:35:07` (no offset: UTC for a system time), or with an
/// offset (records of the mobile apps). The instant, and the offset written, if any.
fn parse_time(text: &str) -> Option<(Timestamp, Option<Offset>)> {
    let pieces = Pieces::parse(text).ok()?;
    let civil = pieces.date().to_datetime(pieces.time()?);
    let offset = pieces.to_numeric_offset();
    let ts = offset.unwrap_or(Offset::UTC).to_timestamp(civil).ok()?;
    Some((ts, offset))
}

/// The wall clock of a reading: its `displayTime`'s own offset, else the difference between
/// its display and system times to the nearest quarter hour (UTC when that is more than 14
/// hours, or there is no display time).
fn local_offset(system: Timestamp, display: Option<&str>) -> Offset {
    let Some((shown, offset)) = display.and_then(parse_time) else {
        return Offset::UTC;
    };
    if let Some(o) = offset {
        return o;
    }
    // Read without an offset, `shown` is the display clock's reading taken as UTC.
    let seconds = shown.as_second() - system.as_second();
    let quarters = (seconds as f64 / 900.0).round() as i64;
    if quarters.abs() > 14 * 4 {
        return Offset::UTC;
    }
    i32::try_from(quarters * 900)
        .ok()
        .and_then(|s| Offset::from_seconds(s).ok())
        .unwrap_or(Offset::UTC)
}

/// The query form of a time: `2024-03-10T07:35:07` (UTC).
fn query_time(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// An error code from Dexcom, shown only when it looks like one.
fn safe_code(code: &str) -> &str {
    let ok = !code.is_empty()
        && code.len() <= 60
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok { code } else { "not shown" }
}

/// The device of an EGV: the transmitter generation and the display device (never the
/// transmitter's id).
fn device(raw: &Json) -> DeviceRef {
    let model = match raw.get("transmitterGeneration").and_then(Json::as_str) {
        Some("g4") => Some("G4".to_string()),
        Some("g5") => Some("G5".to_string()),
        Some("g6") => Some("G6".to_string()),
        Some("g6+") => Some("G6+".to_string()),
        Some("g7") => Some("G7".to_string()),
        Some("dexcomPro") => Some("Dexcom Pro".to_string()),
        Some(other) if other != "unknown" && safe_code(other) == other => Some(other.to_string()),
        _ => None,
    };
    let via = match raw.get("displayDevice").and_then(Json::as_str) {
        Some("receiver") => Some("receiver"),
        Some("iOS") => Some("iOS app"),
        Some("android") => Some("Android app"),
        _ => None,
    };
    let display = match (&model, via) {
        (Some(m), Some(v)) => format!("Dexcom {m} ({v})"),
        (Some(m), None) => format!("Dexcom {m}"),
        (None, Some(v)) => format!("Dexcom ({v})"),
        (None, None) => "Dexcom".to_string(),
    };
    DeviceRef {
        manufacturer: Some("Dexcom".into()),
        model,
        display: Some(display),
        ..DeviceRef::default()
    }
}

/// Maps one EGV, `None` for one that is not a reading (LOW, HIGH, no value).
fn egv(raw: &Json, subject: &Identifier, source_id: &str) -> Result<Option<Measurement>, String> {
    let record = match raw.get("recordId").and_then(Json::as_str) {
        Some(id) if !id.is_empty() => id,
        _ => return Err("`recordId` is missing".into()),
    };
    let (ts, _) = raw
        .get("systemTime")
        .and_then(Json::as_str)
        .and_then(parse_time)
        .ok_or("`systemTime` is missing or not an ISO 8601 time")?;
    if matches!(
        raw.get("status").and_then(Json::as_str),
        Some("low" | "high")
    ) {
        return Ok(None);
    }
    let text = match raw.get("value") {
        None | Some(Json::Null) => return Ok(None),
        Some(Json::Number(n)) => n.to_string(),
        Some(_) => return Err("`value` is not a number".into()),
    };
    let value = parse_decimal(&text).map_err(|e| format!("`value`: {e}"))?;
    let (unit, lowest, highest) = match raw.get("unit").and_then(Json::as_str) {
        Some("mg/dL") => ("mg/dL", LOWEST_MG_DL.into(), HIGHEST_MG_DL.into()),
        // 40 and 400 mg/dL in mmol/L, as Dexcom's displays round them.
        Some("mmol/L") => ("mmol/L", Decimal::new(22, 1), Decimal::new(222, 1)),
        _ => return Err("`unit` is neither mg/dL nor mmol/L".into()),
    };
    if value < lowest || value > highest {
        return Ok(None);
    }
    let offset = local_offset(ts, raw.get("displayTime").and_then(Json::as_str));
    let mut m = Measurement::new(
        Provenance::new(source_id, record),
        subject.clone(),
        "blood-glucose",
        Value::quantity(value, unit),
        DateTime::from_timestamp(ts, offset),
    );
    m.device = Some(device(raw));
    Ok(Some(m))
}

impl Dexcom {
    fn state(&self, cursor: &Cursor) -> Result<State, SourceError> {
        if cursor.is_start() {
            return Ok(State {
                v: CURSOR_VERSION,
                dexcom: 3,
                at: self.since_ms,
                seen: Vec::new(),
            });
        }
        let bad = |reason: &str| SourceError::BadCursor {
            reason: format!("{}: {reason}", self.id),
        };
        let state: State = serde_json::from_str(cursor.as_str())
            .map_err(|_| bad("not a cursor of a Dexcom source"))?;
        if state.v != CURSOR_VERSION || state.dexcom != 3 {
            return Err(bad(&format!(
                "a cursor of format version {} (this version reads {CURSOR_VERSION})",
                state.v
            )));
        }
        Ok(state)
    }

    fn cursor(&self, state: &State) -> Result<Cursor, SourceError> {
        serde_json::to_string(state)
            .map(Cursor::new)
            .map_err(|e| SourceError::Other {
                reason: format!("{}: the cursor cannot be written", self.id),
                retryable: false,
                cause: Some(Box::new(e)),
            })
    }

    /// `GET <api>/<path>?<query>` with the citizen's access token, as JSON.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Json, SourceError> {
        let location = format!("{}: Dexcom /{path}", self.id);
        let mut url = self
            .api
            .join(path)
            .map_err(|e| SourceError::Config(format!("{location}: {e}")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        let response = self
            .session
            .send(&location, |client, token| {
                client
                    .get(url.clone())
                    .bearer_auth(token.expose())
                    .header(ACCEPT, "application/json")
            })
            .await?;
        let text = http::success_text(response, BODY_LIMIT, &location).await?;
        let json: Json = serde_json::from_str(&text).map_err(|e| SourceError::BadData {
            location: location.clone(),
            reason: format!(
                "the answer is not JSON ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        })?;
        if let Some(e) = error_in_body(&json, &location) {
            return Err(e);
        }
        Ok(json)
    }

    /// Where the citizen's EGVs start and end (system time, milliseconds), `None` when
    /// there are none.
    async fn data_range(&self) -> Result<Option<(i64, i64)>, SourceError> {
        let path = "v3/users/self/dataRange";
        let json = self.get(path, &[]).await?;
        let location = format!("{}: Dexcom /{path}", self.id);
        if json
            .get("recordType")
            .and_then(Json::as_str)
            .is_some_and(|t| t != "dataRange")
        {
            return Err(SourceError::BadData {
                location,
                reason: "the answer is not a data range".into(),
            });
        }
        let egvs = match json.get("egvs") {
            None | Some(Json::Null) => return Ok(None),
            Some(e) => e,
        };
        let time = |end: &str| {
            egvs.get(end)
                .and_then(|e| e.get("systemTime"))
                .and_then(Json::as_str)
                .and_then(parse_time)
                .map(|(t, _)| t.as_millisecond())
        };
        match (time("start"), time("end")) {
            (Some(start), Some(end)) => Ok(Some((start, end.max(start)))),
            _ => Err(SourceError::BadData {
                location,
                reason: "the EGVs' range has no start or end system time".into(),
            }),
        }
    }

    /// The EGVs of `[from, to)` after `state`, in order.
    async fn window(&self, state: &State, to: i64) -> Result<Vec<Row>, SourceError> {
        let path = "v3/users/self/egvs";
        // A second early, so that whether Dexcom's start is inclusive or not, nothing at the
        // position is missed; the end is rounded up.
        let start = query_time(state.at.saturating_sub(1000));
        let end = query_time(to.saturating_add(999));
        let json = self
            .get(path, &[("startDate", start), ("endDate", end)])
            .await?;
        let location = format!("{}: Dexcom /{path}", self.id);
        if json
            .get("recordType")
            .and_then(Json::as_str)
            .is_some_and(|t| t != "egv")
        {
            return Err(SourceError::BadData {
                location,
                reason: "the answer is not a list of EGVs".into(),
            });
        }
        let Some(Json::Array(records)) = json.get("records") else {
            return Err(SourceError::BadData {
                location,
                reason: "the answer has no `records`".into(),
            });
        };
        let mut rows: Vec<Row> = records
            .iter()
            .map(|raw| {
                let at = raw
                    .get("systemTime")
                    .and_then(Json::as_str)
                    .and_then(parse_time)
                    .map(|(t, _)| t.as_millisecond());
                let key = match raw.get("recordId").and_then(Json::as_str) {
                    Some(id) if !id.is_empty() => id.to_string(),
                    _ => format!(
                        "#{}",
                        &sha1_smol::Sha1::from(raw.to_string()).hexdigest()[..16]
                    ),
                };
                // A record whose time cannot be read is placed at the position, and reported
                // once.
                Row {
                    at: at.unwrap_or(state.at),
                    key,
                    raw: raw.clone(),
                }
            })
            .filter(|r| {
                r.at >= state.at && r.at < to && !(r.at == state.at && state.seen.contains(&r.key))
            })
            .collect();
        rows.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));
        rows.dedup_by(|a, b| a.at == b.at && a.key == b.key);
        Ok(rows)
    }

    fn take(&self, row: Row, batch: &mut Batch) {
        let checked = egv(&row.raw, &self.subject, &self.id).and_then(|m| {
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
            Err(reason) => batch.rejected.push(Rejected {
                location: format!("EGV {}", row.key),
                reason,
            }),
        }
    }
}

/// An error Dexcom wrote in the body of an HTTP 200 answer (`{"error": …}`, `{"fault": …}`,
/// `{"errors": […]}`), as the source error.
fn error_in_body(json: &Json, location: &str) -> Option<SourceError> {
    if json.get("records").is_some() || json.get("recordType").is_some() {
        return None;
    }
    let code = json
        .get("error")
        .and_then(Json::as_str)
        .or_else(|| {
            json.pointer("/fault/detail/errorcode")
                .and_then(Json::as_str)
        })
        .or_else(|| json.pointer("/errors/0/code").and_then(Json::as_str))
        .or_else(|| (json.get("fault").is_some() || json.get("errors").is_some()).then_some(""))?;
    let code = safe_code(code);
    let lower = code.to_ascii_lowercase();
    if lower.contains("rate") || lower.contains("quota") || lower.contains("spikearrest") {
        return Some(SourceError::Unavailable {
            reason: format!("{location} answered HTTP 200 with the error {code}"),
            retry_after: None,
            cause: None,
        });
    }
    Some(SourceError::BadData {
        location: location.to_string(),
        reason: format!("Dexcom answered HTTP 200 with the error {code}"),
    })
}

/// The position after `taken` (records after `state`, in order).
fn after(state: &State, taken: &[Row]) -> State {
    let Some(last) = taken.last() else {
        return state.clone();
    };
    let mut seen = if last.at == state.at {
        state.seen.clone()
    } else {
        Vec::new()
    };
    seen.extend(
        taken
            .iter()
            .filter(|r| r.at == last.at)
            .map(|r| r.key.clone()),
    );
    State {
        at: last.at,
        seen,
        ..state.clone()
    }
}

#[async_trait]
impl Source for Dexcom {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        "dexcom"
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> healthanalyzer_source::Result<Batch> {
        let limit = limit.max(1);
        let mut state = self.state(cursor)?;
        let Some((first, last)) = self.data_range().await? else {
            return Ok(Batch::done(self.cursor(&state)?));
        };
        let mut requests = 1;
        if state.at < first {
            // Nothing is older than the first EGV: skip the empty months.
            state.at = first;
            state.seen.clear();
        }
        // Up to the last EGV Dexcom has published, a later pull reads what it publishes next;
        // not beyond the clock (and the 10 minutes the catalog allows), so that an EGV of a
        // device clock set ahead waits for the clock instead of taking the position past the
        // EGVs before it.
        let ceiling = Timestamp::now().as_millisecond().saturating_add(FUTURE_MS);
        let latest = last.saturating_add(1).min(ceiling);
        let mut batch = Batch::default();
        let mut taken = 0;
        // Empty windows (a gap in the wearing) make the next one of the pull wider.
        let mut widen = 1;
        let exhausted = loop {
            if state.at >= latest {
                break true;
            }
            let want = limit - taken;
            if want == 0 || requests >= MAX_REQUESTS {
                break false;
            }
            let span = i64::try_from(want)
                .unwrap_or(i64::MAX)
                .saturating_mul(READING_MS)
                .saturating_mul(widen)
                .clamp(MIN_WINDOW_MS, MAX_WINDOW_MS);
            let to = state.at.saturating_add(span).min(latest);
            let rows = self.window(&state, to).await?;
            requests += 1;
            let all = rows.len();
            let rows: Vec<Row> = rows.into_iter().take(want).collect();
            let cut = rows.len() < all;
            let last = to == latest;
            let next = if cut || last {
                // Within the window, or at the newest EGV: right after the last one taken,
                // so that what Dexcom publishes later of the same instants is read.
                after(&state, &rows)
            } else {
                State {
                    at: to,
                    seen: Vec::new(),
                    ..state.clone()
                }
            };
            if rows.is_empty() {
                widen = widen.saturating_mul(2);
            }
            taken += rows.len();
            for row in rows {
                self.take(row, &mut batch);
            }
            state = next;
            if cut {
                break false;
            }
            if last {
                break true;
            }
        };
        tracing::debug!(
            source = %self.id,
            requests,
            measurements = batch.measurements.len(),
            rejected = batch.rejected.len(),
            exhausted,
            "pulled from Dexcom"
        );
        batch.cursor = self.cursor(&state)?;
        batch.exhausted = exhausted;
        Ok(batch)
    }

    async fn check(&self) -> healthanalyzer_source::Result<()> {
        self.data_range().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_read_with_and_without_offsets() {
        let (t, o) = parse_time("2024-03-10T07:35:07").expect("a time");
        assert_eq!(t.to_string(), "2024-03-10T07:35:07Z");
        assert_eq!(o, None);
        let (t, o) = parse_time("2024-03-10T08:35:07+01:00").expect("a time");
        assert_eq!(t.to_string(), "2024-03-10T07:35:07Z");
        assert_eq!(o.map(|o| o.seconds()), Some(3600));
        assert!(parse_time("yesterday").is_none());
        assert_eq!(query_time(1_710_056_107_999), "2024-03-10T07:35:07");
    }

    #[test]
    fn the_wall_clock_is_the_display_times_offset_or_its_difference_to_the_quarter_hour() {
        let (system, _) = parse_time("2024-03-10T07:35:07").expect("a time");
        // A receiver: the display clock a few seconds off an hour ahead.
        assert_eq!(
            local_offset(system, Some("2024-03-10T08:35:31")).seconds(),
            3600
        );
        assert_eq!(
            local_offset(system, Some("2024-03-10T02:05:07")).seconds(),
            -19800
        );
        assert_eq!(
            local_offset(system, Some("2024-03-10T10:35:07-07:00")).seconds(),
            -25200
        );
        // A display clock set a day off: no offset can be read from it.
        assert_eq!(
            local_offset(system, Some("2024-03-11T07:35:07")).seconds(),
            0
        );
        assert_eq!(local_offset(system, None).seconds(), 0);
    }

    #[test]
    fn low_and_high_are_not_readings() {
        let subject = Identifier::new("urn:example:citizen", "anna");
        let at = |value: Json, status: Json, unit: &str| {
            json!({"recordId": "r1", "systemTime": "2024-03-10T07:35:07",
                "displayTime": "2024-03-10T08:35:07", "value": value, "status": status,
                "unit": unit, "transmitterGeneration": "g7", "displayDevice": "iOS"})
        };
        let mapped = |raw: Json| egv(&raw, &subject, "dexcom/anna");
        let m = mapped(at(json!(40), Json::Null, "mg/dL"))
            .expect("mapped")
            .expect("a reading");
        assert_eq!(m.effective.start().to_string(), "2024-03-10T08:35:07+01:00");
        let d = m.device.expect("a device");
        assert_eq!(d.model.as_deref(), Some("G7"));
        assert_eq!(d.display.as_deref(), Some("Dexcom G7 (iOS app)"));
        assert!(
            mapped(at(json!(400), json!("ok"), "mg/dL"))
                .expect("mapped")
                .is_some()
        );
        for (value, status, unit) in [
            (json!(39), Json::Null, "mg/dL"),
            (json!(401), Json::Null, "mg/dL"),
            (json!(120), json!("low"), "mg/dL"),
            (json!(120), json!("high"), "mg/dL"),
            (Json::Null, json!("ok"), "mg/dL"),
            (json!(2.1), Json::Null, "mmol/L"),
            (json!(22.3), Json::Null, "mmol/L"),
        ] {
            assert!(
                mapped(at(value.clone(), status, unit))
                    .expect("mapped")
                    .is_none(),
                "{value} {unit}"
            );
        }
        let e = mapped(at(json!(120), Json::Null, "unknown")).expect_err("no unit");
        assert!(e.contains("`unit`"), "{e}");
    }

    #[test]
    fn errors_in_a_200_body_are_read_and_records_are_not_errors() {
        let loc = "dexcom/anna: Dexcom /v3/users/self/egvs";
        assert!(error_in_body(&json!({"recordType": "egv", "records": []}), loc).is_none());
        let e = error_in_body(
            &json!({"error": "invalid_request", "error_description": "x"}),
            loc,
        )
        .expect("an error");
        assert!(
            matches!(e, SourceError::BadData { .. }) && e.to_string().contains("invalid_request")
        );
        let e = error_in_body(
            &json!({"fault": {"faultstring": "Rate limit quota violation",
                "detail": {"errorcode": "policies.ratelimit.QuotaViolation"}}}),
            loc,
        )
        .expect("an error");
        assert!(e.is_retryable(), "{e}");
    }
}
