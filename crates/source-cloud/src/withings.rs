//! Withings: a citizen's body measures (`POST /measure`, `action=getmeas`), incrementally by
//! `lastupdate`, a page (`offset`) at a time.
//!
//! The mapping of a measure group is the export-file reader's
//! ([`healthanalyzer_source_files::withings::measure_group`]): a `getmeas` answer read live
//! and the same answer saved to a file give the same measurements.
//!
//! # The cursor
//!
//! A sweep asks for the groups created or modified since `lastupdate`, page by page. The
//! cursor (JSON, `{"cursor": "withings-getmeas/1", …}`) holds the sweep's `lastupdate`, the
//! page's `offset`, how many of the page's items (measurements and rejected groups) were
//! delivered (`at`, so a page bigger than the batch limit is split), and the `updatetime` the
//! sweep's first page gave (`next`): when the sweep ends, the next one starts there. A group
//! modified again comes again with the same measurement ids: an update, not a duplicate.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, Measurement};
use healthanalyzer_source::{Batch, Cursor, Rejected, Source, http};
use healthanalyzer_source_files::withings as mapping;
use jiff::tz::TimeZone;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::Error;
use crate::oauth::{Dialect, WithingsStatus, withings_status};
use crate::session::Answer;
use crate::session::Session;
use crate::setup::{Context, Defaults};

type SourceError = healthanalyzer_source::Error;
type SourceResult<T> = healthanalyzer_source::Result<T>;

/// Withings's endpoints and scopes (developer.withings.com): the API at
/// `wbsapi.withings.net`, the token endpoint `/v2/oauth2` beside it, the authorisation page
/// at `account.withings.com`; only `user.metrics` (body measures) is read.
pub(crate) const DEFAULTS: Defaults = Defaults {
    api_base: "https://wbsapi.withings.net/",
    authorize: "https://account.withings.com/oauth2_user/authorize2",
    token: "/v2/oauth2",
    scopes: &["user.metrics"],
    scope_separator: ",",
    dialect: Dialect::Withings,
};

/// The largest `getmeas` answer read (a page of body measures is a few hundred KiB).
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The wait after status 601 (too many requests) when the answer names none: Withings counts
/// requests per minute.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The cursor's format and version.
const CURSOR_FORMAT: &str = "withings-getmeas/1";

/// The source of one citizen.
pub(crate) fn source(cx: Context) -> Result<Arc<dyn Source>, Error> {
    let session = cx.session.clone().ok_or_else(|| {
        Error::Config(format!(
            "source {}: Withings needs an OAuth2 app registration",
            cx.source_id
        ))
    })?;
    let url = cx
        .api_base
        .join("measure")
        .map_err(|e| Error::Config(format!("source {}: base_url: {e}", cx.source_id)))?;
    Ok(Arc::new(Withings {
        location: format!("Withings getmeas ({})", http::without_query(&url)),
        id: cx.source_id,
        subject: cx.citizen.subject,
        since: cx.since.as_second(),
        url,
        session,
    }))
}

/// One citizen's Withings body measures.
struct Withings {
    id: String,
    subject: Identifier,
    /// A first sync's `lastupdate`, seconds since 1970.
    since: i64,
    /// `{base}/measure`.
    url: Url,
    /// The request, for messages.
    location: String,
    session: Arc<Session>,
}

impl std::fmt::Debug for Withings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No subject, no token: the id names the citizen by their configured name.
        f.debug_struct("Withings")
            .field("id", &self.id)
            .field("url", &self.location)
            .finish_non_exhaustive()
    }
}

/// Where a sweep is: the cursor's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Position {
    /// [`CURSOR_FORMAT`].
    cursor: String,
    /// The sweep's `lastupdate`, seconds since 1970.
    lastupdate: i64,
    /// The page's `offset` (0: the sweep's first page).
    offset: u64,
    /// The page's items delivered already.
    at: usize,
    /// The `updatetime` of the sweep's first page: where the next sweep starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<i64>,
}

impl Position {
    fn sweep(lastupdate: i64) -> Position {
        Position {
            cursor: CURSOR_FORMAT.to_string(),
            lastupdate,
            offset: 0,
            at: 0,
            next: None,
        }
    }

    fn parse(cursor: &Cursor, since: i64) -> SourceResult<Position> {
        if cursor.is_start() {
            return Ok(Position::sweep(since));
        }
        let bad = |reason: &str| SourceError::BadCursor {
            reason: reason.to_string(),
        };
        let p: Position = serde_json::from_str(cursor.as_str())
            .map_err(|_| bad("it is not a Withings cursor"))?;
        if p.cursor != CURSOR_FORMAT {
            return Err(bad(
                "it is a Withings cursor of another format or version than this one reads (withings-getmeas/1)",
            ));
        }
        if p.offset > 0 && p.next.is_none() {
            return Err(bad("a Withings cursor inside a sweep without its `next`"));
        }
        Ok(p)
    }

    fn to_cursor(&self) -> Cursor {
        // A struct of strings and numbers always serialises.
        Cursor::new(serde_json::to_string(self).unwrap_or_default())
    }
}

/// The `offset` and `more` of a page, read leniently (Withings writes `more` as 0/1, older
/// answers as a boolean).
fn more(body: &Json) -> bool {
    match body.get("more") {
        Some(Json::Bool(b)) => *b,
        Some(Json::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    }
}

impl Withings {
    fn bad_data(&self, reason: impl Into<String>) -> SourceError {
        SourceError::BadData {
            location: self.location.clone(),
            reason: reason.into(),
        }
    }

    /// A `getmeas` request's `body`, for the groups modified since `lastupdate`, from
    /// `offset`. A refused access token (HTTP 401, or status 401 and friends in the body) is
    /// refreshed once; refused again, the grant is revoked.
    async fn getmeas(&self, lastupdate: i64, offset: u64) -> SourceResult<Json> {
        let types = mapping::MEASURE_TYPES
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut form = vec![
            ("action", "getmeas".to_string()),
            ("meastypes", types),
            ("category", "1".to_string()),
            ("lastupdate", lastupdate.to_string()),
        ];
        if offset > 0 {
            form.push(("offset", offset.to_string()));
        }
        let answer = self
            .session
            .request(
                &self.location,
                |client, grant| {
                    Ok(client
                        .post(self.url.clone())
                        .bearer_auth(grant.access_token.expose())
                        .form(&form))
                },
                |response| self.read_getmeas(response),
            )
            .await;
        answer.map_err(SourceError::from)
    }

    /// A `getmeas` answer's `body`, or what its `status` says.
    async fn read_getmeas(&self, response: reqwest::Response) -> Result<Answer<Json>, Error> {
        let retry_after = http::retry_after(response.headers());
        let text = http::success_text(response, BODY_LIMIT, &self.location).await?;
        // serde_json's messages can quote the data: say where only.
        let json: Json = serde_json::from_str(&text).map_err(|e| {
            self.bad_data(format!(
                "the answer is not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let code = json
            .get("status")
            .and_then(Json::as_i64)
            .ok_or_else(|| self.bad_data("the answer has no `status`"))?;
        let failed = match withings_status(code) {
            WithingsStatus::Ok => {
                let Json::Object(mut answer) = json else {
                    return Err(self.bad_data("the answer is not a JSON object").into());
                };
                return match answer.remove("body") {
                    Some(body @ Json::Object(_)) => Ok(Answer::Read(body)),
                    _ => Err(self
                        .bad_data("the answer has status 0 and no `body` object")
                        .into()),
                };
            }
            WithingsStatus::AuthFailed => return Ok(Answer::TokenRefused),
            WithingsStatus::RateLimited => SourceError::Unavailable {
                reason: format!("{}: too many requests (Withings status 601)", self.location),
                retry_after: Some(retry_after.unwrap_or(RATE_LIMIT_WAIT)),
                cause: None,
            },
            WithingsStatus::Transient => SourceError::Unavailable {
                reason: format!(
                    "{}: Withings status {code} (an unknown error at Withings)",
                    self.location
                ),
                retry_after,
                cause: None,
            },
            WithingsStatus::InvalidParams => {
                self.bad_data("Withings answered status 503 (invalid parameters)")
            }
            WithingsStatus::Other => self.bad_data(format!("Withings answered status {code}")),
        };
        Err(failed.into())
    }

    /// Where a group is, for a rejected entry: its id, else its place in the page.
    fn group_location(&self, g: &Json, offset: u64, index: usize) -> String {
        match g.get("grpid").and_then(Json::as_i64) {
            Some(id) => format!("{}: Withings measure group {id}", self.id),
            None => format!(
                "{}: Withings getmeas page at offset {offset}, measuregrps[{index}]",
                self.id
            ),
        }
    }
}

#[async_trait]
impl Source for Withings {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        "withings"
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> SourceResult<Batch> {
        let limit = limit.max(1);
        let pos = Position::parse(cursor, self.since)?;
        let body = self.getmeas(pos.lastupdate, pos.offset).await?;
        let groups = match body.get("measuregrps") {
            Some(Json::Array(g)) => g.as_slice(),
            None | Some(Json::Null) => &[],
            Some(_) => return Err(self.bad_data("`measuregrps` is not an array")),
        };
        let next = match pos.next {
            Some(n) => n,
            None => body
                .get("updatetime")
                .and_then(Json::as_i64)
                .ok_or_else(|| self.bad_data("the answer has no `updatetime`"))?
                .max(pos.lastupdate),
        };
        let more = more(&body);
        let zone = mapping::zone(&body, &TimeZone::UTC);
        // A page's items: measurements, and groups that could not be read.
        let mut items: Vec<Result<Measurement, Rejected>> = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            match mapping::measure_group(g, &zone, &self.subject, &self.id) {
                Ok(ms) => items.extend(ms.into_iter().map(Ok)),
                Err(reason) => items.push(Err(Rejected {
                    location: self.group_location(g, pos.offset, i),
                    reason,
                })),
            }
        }
        tracing::debug!(
            source = %self.id,
            offset = pos.offset,
            groups = groups.len(),
            more,
            "read a Withings getmeas page"
        );
        let total = items.len();
        let mut at = pos.at.min(total);
        let mut batch = Batch::default();
        for item in items.into_iter().skip(at) {
            match item {
                Ok(m) => {
                    if batch.measurements.len() == limit {
                        break;
                    }
                    batch.measurements.push(m);
                }
                Err(r) => batch.rejected.push(r),
            }
            at += 1;
        }
        let position = if at < total {
            Position {
                at,
                next: Some(next),
                ..pos
            }
        } else if more {
            let offset = body
                .get("offset")
                .and_then(Json::as_u64)
                .unwrap_or(pos.offset.saturating_add(groups.len() as u64));
            if offset <= pos.offset {
                return Err(self.bad_data(
                    "the answer says there is more, at an offset that does not move on",
                ));
            }
            Position {
                offset,
                at: 0,
                next: Some(next),
                ..pos
            }
        } else {
            batch.exhausted = true;
            Position::sweep(next)
        };
        batch.cursor = position.to_cursor();
        Ok(batch)
    }

    /// A `getmeas` of what changed from now on: an authorised request that reads nearly
    /// nothing.
    async fn check(&self) -> SourceResult<()> {
        self.getmeas(jiff::Timestamp::now().as_second(), 0)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_foreign_ones_are_refused() {
        let p = Position {
            at: 3,
            offset: 20,
            next: Some(1_700_000_100),
            ..Position::sweep(1_700_000_000)
        };
        let c = p.to_cursor();
        assert!(c.as_str().contains("withings-getmeas/1"), "{c}");
        assert_eq!(Position::parse(&c, 0).expect("ours"), p);
        assert_eq!(
            Position::parse(&Cursor::start(), 42).expect("start"),
            Position::sweep(42)
        );
        for bad in [
            "-1",
            "{}",
            r#"{"cursor":"withings-getmeas/2","lastupdate":1,"offset":0,"at":0}"#,
            r#"{"cursor":"withings-getmeas/1","lastupdate":1,"offset":5,"at":0}"#,
            r#"{"cursor":"withings-getmeas/1","lastupdate":1,"offset":0,"at":0,"x":1}"#,
        ] {
            let e = Position::parse(&Cursor::new(bad), 0).expect_err(bad);
            assert!(matches!(e, SourceError::BadCursor { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn more_is_read_as_a_number_or_a_boolean() {
        assert!(more(&serde_json::json!({"more": 1})));
        assert!(more(&serde_json::json!({"more": true})));
        assert!(!more(&serde_json::json!({"more": 0})));
        assert!(!more(&serde_json::json!({})));
    }
}
