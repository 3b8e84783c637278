//! iHealth (OpenAPI v2): one citizen's blood pressure, glucose, SpO2 and weight readings.
//!
//! # How a pull reads
//!
//! A *pass* reads each data API the app has a service version (`sv`) for, in turn (bp,
//! glucose, spo2, weight): `GET /openapiv2/user/{UserID}/{api}.json/` with the app's
//! `client_id`, `client_secret`, `sc` and `sv`, the citizen's `access_token`, a window of
//! measurement times (`start_time`, `end_time`, unix seconds) and `page_index` from 1 until
//! `NextPageUrl` is empty. A first pass starts at the configured `since`; later ones look 30
//! days back, to catch readings a meter uploaded late, and take only the records whose
//! `LastChangeTime` is after what earlier passes delivered.
//!
//! The cursor (JSON, `"src": "ihealth"`, version 1) holds, per data API, the window start of
//! the next pass and the `LastChangeTime` delivered up to; within a pass, the API being read,
//! the window, the page and how many of its entries were delivered, so a page with more than
//! `limit` measurements is split. Pulling from an exhausted cursor reads the APIs again and
//! gives an empty, exhausted batch until iHealth has something new.
//!
//! iHealth answers errors in the body (`{"Error", "ErrorCode", "ErrorDescription"}`), with
//! HTTP 200 or an error status. The hourly limit (`limits_hour_error`, 5,000 requests an
//! hour per app, 500 for an unpaid one) is [`Unavailable`](SourceError::Unavailable) with
//! `Retry-After`'s wait, or an hour.

mod map;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use healthanalyzer_model::{Catalog, Identifier, Validator};
use healthanalyzer_source::http;
use healthanalyzer_source::{Batch, Cursor, Error as SourceError, Result as SourceResult, Source};
use jiff::Timestamp;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::Error;
use crate::oauth::Dialect;
use crate::session::{Answer, Session};
use crate::setup::{Context, Defaults};
use crate::token::{Grant, Secret};

/// iHealth's endpoints and scopes ("API names").
pub(crate) const DEFAULTS: Defaults = Defaults {
    api_base: "https://openapi.ihealthlabs.com/",
    authorize: "https://oauthuser.ihealthlabs.com/OpenApiV2/OAuthv2/userauthorization/",
    token: "https://oauthuser.ihealthlabs.com/OpenApiV2/OAuthv2/userauthorization/",
    scopes: &["OpenApiBP", "OpenApiBG", "OpenApiSpO2", "OpenApiWeight"],
    scope_separator: " ",
    dialect: Dialect::IHealth,
};

/// The cursor's format version.
const CURSOR_VERSION: u32 = 1;

/// The most requests one pull sends once it has something to return. A pull with nothing
/// yet goes on to the end of the pass, so that pulling from an exhausted cursor ends
/// exhausted.
const MAX_REQUESTS_PER_PULL: usize = 8;

/// The most pages one data API is read in one pass (50 records each).
const MAX_PAGES: u32 = 2_000;

/// How far back a pass after the first looks for readings uploaded late: 30 days.
const LOOKBACK_SECONDS: i64 = 30 * 86_400;

/// The margin on iHealth's time window: `MDate` is a wall-clock time written as if it were
/// UTC, up to 14 hours off the instant, so the window reaches a day further each way.
const WINDOW_MARGIN_SECONDS: i64 = 86_400;

/// Records changed this close to a pass's start are taken again by the next pass: one may
/// change while the pages are read, and iHealth's clock is not ours.
const CHANGE_MARGIN_SECONDS: i64 = 600;

/// The largest answer read.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The data APIs, in the order a pass reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// Blood pressure: `bp.json`, `BPDataList`.
    Bp,
    /// Blood glucose: `glucose.json`, `BGDataList`.
    Glucose,
    /// Blood oxygen: `spo2.json`, `BODataList`.
    Spo2,
    /// Weight: `weight.json`, `WeightDataList`.
    Weight,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Bp, Kind::Glucose, Kind::Spo2, Kind::Weight];

    /// Its name: the key of `ihealth_sv`, the first part of record ids.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Bp => "bp",
            Kind::Glucose => "glucose",
            Kind::Spo2 => "spo2",
            Kind::Weight => "weight",
        }
    }

    fn list(self) -> &'static str {
        match self {
            Kind::Bp => "BPDataList",
            Kind::Glucose => "BGDataList",
            Kind::Spo2 => "BODataList",
            Kind::Weight => "WeightDataList",
        }
    }

    fn unit_field(self) -> &'static str {
        match self {
            Kind::Bp => "BPUnit",
            Kind::Glucose => "BGUnit",
            Kind::Spo2 => "",
            Kind::Weight => "WeightUnit",
        }
    }
}

/// The source of one citizen.
pub(crate) fn source(cx: Context) -> Result<Arc<dyn Source>, Error> {
    let s = &cx.source_id;
    let session = cx.session.clone().ok_or_else(|| {
        Error::Config(format!(
            "source {s}: iHealth needs an OAuth2 app registration"
        ))
    })?;
    let sc = cx
        .settings
        .ihealth_sc
        .clone()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            Error::Config(format!(
                "source {s}: iHealth needs `ihealth_sc`, the app's service code from iHealth's developer portal (see docs/connectors/ihealth.md)"
            ))
        })?;
    let given = cx.settings.ihealth_sv.clone().unwrap_or_default();
    if let Some(unknown) = given
        .keys()
        .find(|k| !Kind::ALL.iter().any(|kind| kind.name() == k.as_str()))
    {
        return Err(Error::Config(format!(
            "source {s}: `ihealth_sv` has no data API {unknown:?}; the APIs are bp, glucose, spo2 and weight"
        )));
    }
    let sv: BTreeMap<Kind, Secret> = Kind::ALL
        .into_iter()
        .filter_map(|k| {
            given
                .get(k.name())
                .filter(|v| !v.trim().is_empty())
                .map(|v| (k, Secret::new(v.clone())))
        })
        .collect();
    if sv.is_empty() {
        return Err(Error::Config(format!(
            "source {s}: iHealth needs `ihealth_sv`, the app's service version per data API: {{ bp = \"…\", glucose = \"…\", spo2 = \"…\", weight = \"…\" }} (those the app may read)"
        )));
    }
    Ok(Arc::new(IHealthSource {
        id: cx.source_id,
        api: cx.api_base,
        since: cx.since,
        subject: cx.citizen.subject,
        session,
        sc: Secret::new(sc),
        sv,
    }))
}

/// What earlier passes covered of one data API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Done {
    /// The window start (`start_time`) of the next pass.
    from: i64,
    /// Records changed at or before this `LastChangeTime` were delivered.
    changed: i64,
}

/// The pass being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pass {
    /// When the pass began (unix seconds).
    began: i64,
    /// The data API being read.
    at: Kind,
    /// Its window (`start_time`, `end_time`).
    start: i64,
    end: i64,
    /// The page being read, from 1.
    page: u32,
    /// Entries of the page delivered.
    skip: usize,
    /// The latest `LastChangeTime` read of this API in this pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changed: Option<i64>,
}

/// The cursor, as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// `"ihealth"`: another source's cursor is refused.
    src: String,
    /// [`CURSOR_VERSION`].
    v: u32,
    /// Per data API, what earlier passes covered.
    #[serde(default)]
    done: BTreeMap<Kind, Done>,
    /// The pass being read; `None` between passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pass: Option<Pass>,
}

fn bad_cursor(reason: impl Into<String>) -> SourceError {
    SourceError::BadCursor {
        reason: reason.into(),
    }
}

impl State {
    fn parse(cursor: &Cursor) -> SourceResult<State> {
        if cursor.is_start() {
            return Ok(State {
                src: "ihealth".into(),
                v: CURSOR_VERSION,
                done: BTreeMap::new(),
                pass: None,
            });
        }
        let st: State = serde_json::from_str(cursor.as_str())
            .map_err(|_| bad_cursor("it is not an iHealth cursor"))?;
        if st.src != "ihealth" {
            return Err(bad_cursor("it is not an iHealth cursor"));
        }
        if st.v != CURSOR_VERSION {
            return Err(bad_cursor(format!(
                "it is an iHealth cursor of version {}, this build reads version {CURSOR_VERSION}",
                st.v
            )));
        }
        if st.pass.is_some_and(|p| p.page == 0 || p.end < p.start) {
            return Err(bad_cursor(
                "an iHealth cursor with a window that is not one",
            ));
        }
        Ok(st)
    }

    fn cursor(&self) -> Cursor {
        // A struct of strings, numbers and maps with string keys always serialises.
        Cursor::new(serde_json::to_string(self).unwrap_or_default())
    }
}

/// One citizen's iHealth.
struct IHealthSource {
    id: String,
    api: Url,
    since: Timestamp,
    subject: Identifier,
    session: Arc<Session>,
    sc: Secret,
    /// The service version per data API; only these are read.
    sv: BTreeMap<Kind, Secret>,
}

impl std::fmt::Debug for IHealthSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No token, no secret, no subject: the id names the citizen.
        f.debug_struct("IHealthSource")
            .field("id", &self.id)
            .field("apis", &self.sv.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What went wrong in an answer, from its `Error` and `ErrorCode`.
enum Refusal {
    /// The access token was refused.
    Token,
    /// The app's hourly limit is reached.
    Limit,
    /// Anything else: the codes, safe to quote.
    Other(String),
}

fn safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect()
}

/// The error an answer carries, if it carries one.
fn refusal(json: &Json) -> Option<Refusal> {
    let error = json.get("Error").and_then(Json::as_str).unwrap_or_default();
    let code = match json.get("ErrorCode") {
        Some(Json::Number(n)) => n.to_string(),
        Some(Json::String(s)) => s.trim().to_string(),
        _ => String::new(),
    };
    if error.is_empty() && matches!(code.as_str(), "" | "0") {
        return None;
    }
    let description = json
        .get("ErrorDescription")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    if error.contains("limit") || code == "503" || description.contains("limit") {
        return Some(Refusal::Limit);
    }
    if error.contains("token") || description.contains("token") {
        return Some(Refusal::Token);
    }
    Some(Refusal::Other(match (safe(error), safe(&code)) {
        (e, c) if e.is_empty() => format!("error code {c}"),
        (e, c) if c.is_empty() => format!("error {e}"),
        (e, c) => format!("error {e} (code {c})"),
    }))
}

/// An iHealth answer: the page, a refused token, or what its error says.
async fn read_page(response: reqwest::Response, location: &str) -> Result<Answer<Json>, Error> {
    let location = location.to_string();
    let status = response.status();
    let headers = response.headers().clone();
    let text = http::read_text(response, BODY_LIMIT, &location).await?;
    let json: Option<Json> = serde_json::from_str(&text).ok();
    let refused = json.as_ref().and_then(refusal);
    if matches!(refused, Some(Refusal::Token)) {
        return Ok(Answer::TokenRefused);
    }
    let failed = match refused {
        Some(Refusal::Limit) => SourceError::Unavailable {
            reason: format!("{location}: the app's hourly limit of requests at iHealth is reached"),
            retry_after: Some(http::retry_after(&headers).unwrap_or(Duration::from_secs(3600))),
            cause: None,
        },
        Some(Refusal::Other(code)) if status.is_success() => SourceError::BadData {
            location,
            reason: format!("iHealth answered {code}"),
        },
        Some(Refusal::Other(code)) if status.is_client_error() => {
            http::status_error(status, &headers, &location, Some(&code))
        }
        _ if !status.is_success() => http::status_error(status, &headers, &location, None),
        _ => {
            return json.map(Answer::Read).ok_or_else(|| {
                SourceError::BadData {
                    location,
                    reason: "the answer is not JSON".into(),
                }
                .into()
            });
        }
    };
    Err(failed.into())
}

impl IHealthSource {
    fn url(&self, grant: &Grant, kind: Kind, window: (i64, i64), page: u32) -> SourceResult<Url> {
        let key = self.session.key();
        let user = grant.user_id.as_deref().filter(|u| !u.is_empty()).ok_or_else(|| {
            SourceError::Authorization {
                reason: format!(
                    "the iHealth grant of citizen {} of source {} names no user (UserID): run `healthanalyzer connect {} --subject {}` again",
                    key.citizen, key.source, key.source, key.citizen
                ),
            }
        })?;
        let mut url = self
            .api
            .join("openapiv2/user/")
            .map_err(|e| SourceError::Config(format!("source {}: the API URL: {e}", self.id)))?;
        url.path_segments_mut()
            .map_err(|()| SourceError::Config(format!("source {}: the API URL", self.id)))?
            .pop_if_empty()
            .push(user)
            .push(&format!("{}.json", kind.name()))
            // iHealth's paths end in `/`.
            .push("");
        let app = self.session.app();
        let sv = self.sv.get(&kind).map(Secret::expose).unwrap_or_default();
        url.query_pairs_mut()
            .append_pair("client_id", &app.client_id)
            .append_pair("client_secret", app.client_secret.expose())
            .append_pair("access_token", grant.access_token.expose())
            .append_pair("sc", self.sc.expose())
            .append_pair("sv", sv)
            .append_pair("start_time", &window.0.to_string())
            .append_pair("end_time", &window.1.to_string())
            .append_pair("page_index", &page.to_string())
            .append_pair("locale", "default");
        Ok(url)
    }

    /// One page of `kind`, refreshing the grant once when iHealth refuses the token.
    async fn page(&self, kind: Kind, window: (i64, i64), page: u32) -> SourceResult<Json> {
        // Neither the user id nor the query (it holds the secrets) goes into messages.
        let location = format!("iHealth's {}.json (page {page})", kind.name());
        let answer = self
            .session
            .request(
                &location,
                |client, grant| Ok(client.get(self.url(grant, kind, window, page)?)),
                |response| read_page(response, &location),
            )
            .await;
        answer.map_err(SourceError::from)
    }

    /// The window start of a first pass.
    fn first_start(&self) -> i64 {
        self.since.as_second() - WINDOW_MARGIN_SECONDS
    }

    /// The pass of `kind` begun at `began`.
    fn pass_of(&self, st: &State, kind: Kind, began: i64) -> Pass {
        let start = st
            .done
            .get(&kind)
            .map_or_else(|| self.first_start(), |d| d.from);
        Pass {
            began,
            at: kind,
            start,
            end: began + 2 * WINDOW_MARGIN_SECONDS,
            page: 1,
            skip: 0,
            changed: None,
        }
    }

    /// The data API read after `kind`, if any.
    fn after(&self, kind: Kind) -> Option<Kind> {
        self.sv.keys().copied().find(|k| *k > kind)
    }
}

#[async_trait]
impl Source for IHealthSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        "ihealth"
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> SourceResult<Batch> {
        let mut st = State::parse(cursor)?;
        let limit = limit.max(1);
        let mut batch = Batch::default();
        if st.pass.is_none() {
            let Some(first) = self.sv.keys().next().copied() else {
                return Ok(Batch::done(cursor.clone()));
            };
            st.pass = Some(self.pass_of(&st, first, Timestamp::now().as_second()));
        }
        // Starting a pass is no progress of its own: a failure before anything was read is
        // the pull's error.
        let started = st.cursor();
        let validator = Validator::new(Catalog::builtin());
        let mut count = 0;
        let mut requests = 0;
        while let Some(mut pass) = st.pass {
            if !self.sv.contains_key(&pass.at) {
                // The configuration no longer reads this API.
                st.pass = self
                    .after(pass.at)
                    .map(|k| self.pass_of(&st, k, pass.began));
                continue;
            }
            let holds = !batch.measurements.is_empty() || !batch.rejected.is_empty();
            if (holds && requests >= MAX_REQUESTS_PER_PULL) || count >= limit {
                break;
            }
            if pass.page > MAX_PAGES {
                return Err(SourceError::BadData {
                    location: format!("iHealth's {}.json", pass.at.name()),
                    reason: format!("more than {MAX_PAGES} pages: the paging does not end"),
                });
            }
            let body = self.page(pass.at, (pass.start, pass.end), pass.page).await;
            requests += 1;
            let body = match body {
                Ok(b) => b,
                // What was read so far is kept; the next pull meets the failure again.
                Err(e) if e.is_retryable() && st.cursor() != started => {
                    tracing::debug!(source = %self.id, error = %e, "the pull ends early");
                    break;
                }
                Err(e) => return Err(e),
            };
            let cx = map::Ctx {
                source_id: &self.id,
                subject: &self.subject,
                since: self.since,
                delivered_until: st.done.get(&pass.at).map(|d| d.changed),
                validator: &validator,
            };
            let page = map::page(pass.at, &body, &cx).map_err(|reason| SourceError::BadData {
                location: format!("iHealth's {}.json (page {})", pass.at.name(), pass.page),
                reason,
            })?;
            pass.changed = match (pass.changed, page.changed) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            let total = page.entries.len();
            for entry in page.entries.into_iter().skip(pass.skip) {
                if count >= limit {
                    break;
                }
                pass.skip += 1;
                match entry {
                    map::Entry::Measurement(m) => {
                        batch.measurements.push(*m);
                        count += 1;
                    }
                    map::Entry::Rejected(r) => batch.rejected.push(r),
                }
            }
            if pass.skip < total {
                // The rest of the page goes to the next pull.
                st.pass = Some(pass);
                break;
            }
            if page.more {
                pass.page += 1;
                pass.skip = 0;
                st.pass = Some(pass);
                continue;
            }
            // This API is read: the next pass looks back from now, for what changes later.
            let before = st.done.get(&pass.at).map(|d| d.changed);
            let read = match (before, pass.changed) {
                (Some(a), Some(b)) => a.max(b),
                (a, b) => a.or(b).unwrap_or(0),
            };
            st.done.insert(
                pass.at,
                Done {
                    from: (pass.began - LOOKBACK_SECONDS - WINDOW_MARGIN_SECONDS)
                        .max(self.first_start()),
                    changed: read
                        .min(pass.began - CHANGE_MARGIN_SECONDS)
                        .max(before.unwrap_or(0)),
                },
            );
            st.pass = self
                .after(pass.at)
                .map(|k| self.pass_of(&st, k, pass.began));
        }
        batch.exhausted = st.pass.is_none();
        batch.cursor = st.cursor();
        Ok(batch)
    }

    async fn check(&self) -> SourceResult<()> {
        let Some(kind) = self.sv.keys().next().copied() else {
            return Ok(());
        };
        let now = Timestamp::now().as_second();
        self.page(
            kind,
            (now - WINDOW_MARGIN_SECONDS, now + WINDOW_MARGIN_SECONDS),
            1,
        )
        .await
        .map(|_| ())
    }
}
