//! A connector for the (made-up) CuffCloud web API of a blood-pressure cuff: what a team writes
//! to bring a web API into Health Analyzer. It shows what `docs/connectors.md` explains under
//! "HTTP connectors" and "APIs paged by time":
//!
//! - HTTP with `healthanalyzer_source::http`: a client that builds in any process, statuses and
//!   transport failures as the errors the sync engine acts on, URLs redacted, bodies bounded;
//! - an API paged by update time, where readings that share an update time fall on both sides
//!   of a page boundary: the boundary is asked for again and the cursor is the (update time, id)
//!   of the last reading delivered, so nothing is lost and nothing comes twice;
//! - one reading giving two measurements (blood pressure and pulse) with record ids
//!   `{reading}/{kind}`, and a cursor that can stop between them (the batch limit counts
//!   measurements, not readings).
//!
//! The API: `GET {base}/v1/readings?since=T&limit=N`, with `Authorization: Bearer <token>`,
//! answers `{"readings": […], "more": true|false}`: the readings updated at or after `T` (all
//! of them without `since`), ordered by update time and then id, at most `N`.

use std::cmp::Ordering;

use async_trait::async_trait;
use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::{
    Component, ComponentId, ComponentValue, DateTime, Identifier, Measurement, Provenance,
    Quantity, UnitCode, Value, parse_decimal,
};
use healthanalyzer_source::http::{self, reqwest};
use healthanalyzer_source::{Batch, Cursor, Error, Rejected, Source};
use serde::{Deserialize, Serialize};

/// The most readings one request asks for.
pub const MAX_PAGE: usize = 1000;

#[derive(Deserialize)]
struct Page {
    readings: Vec<Reading>,
    #[serde(default)]
    more: bool,
}

#[derive(Deserialize)]
struct Reading {
    id: String,
    user: String,
    /// When the server last changed the reading (RFC 3339): what the API pages by.
    updated: String,
    /// When it was measured, with the cuff's UTC offset.
    taken_at: String,
    systolic: Option<serde_json::Number>,
    diastolic: Option<serde_json::Number>,
    pulse: Option<serde_json::Number>,
}

/// The cursor: every reading before (`updated`, `id`) in the API's order is delivered, and the
/// first `part` items (measurements or a rejection) of that reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    updated: String,
    id: String,
    part: usize,
}

/// The CuffCloud API as a source.
pub struct CuffCloud {
    id: String,
    base: reqwest::Url,
    token: String,
    client: reqwest::Client,
    page: usize,
}

// By hand: the token stays out of logs.
impl std::fmt::Debug for CuffCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CuffCloud")
            .field("id", &self.id)
            .field("base", &http::redact(&self.base))
            .finish_non_exhaustive()
    }
}

impl CuffCloud {
    /// A source with id `id` reading the API at `base_url` with a bearer `token`.
    pub fn new(id: &str, base_url: &str, token: &str) -> Result<Self, Error> {
        let mut base = reqwest::Url::parse(base_url)
            .map_err(|e| Error::Config(format!("the CuffCloud URL: {e}")))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let client = http::client_builder()
            .build()
            .map_err(|e| Error::Config(format!("the HTTP client: {e}")))?;
        Ok(CuffCloud {
            id: id.into(),
            base,
            token: token.into(),
            client,
            page: 100,
        })
    }

    /// The same source asking for pages of `readings` (default 100; small in tests, so that
    /// page boundaries fall among readings that share an update time).
    pub fn with_page(self, readings: usize) -> Self {
        CuffCloud {
            page: readings.clamp(1, MAX_PAGE),
            ..self
        }
    }

    /// One page of readings updated at or after `since`.
    async fn fetch(&self, since: Option<&str>, limit: usize) -> Result<Page, Error> {
        let mut url = self
            .base
            .join("v1/readings")
            .map_err(|e| Error::Config(format!("the CuffCloud URL: {e}")))?;
        if let Some(s) = since {
            url.query_pairs_mut().append_pair("since", s);
        }
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        let location = http::redact(&url);
        let response = (self.client.get(url).bearer_auth(&self.token).send().await)
            .map_err(|e| http::transport_error(&location, e))?;
        let text = http::success_text(response, http::DEFAULT_BODY_LIMIT, &location).await?;
        // serde's message can quote a value: say where instead.
        serde_json::from_str(&text).map_err(|e| Error::BadData {
            location,
            reason: format!(
                "not a CuffCloud page (line {}, column {})",
                e.line(),
                e.column()
            ),
        })
    }

    /// A reading's measurements: blood pressure and pulse, each with the record id
    /// `{reading}/{kind}`; or why the reading cannot be read (naming the field).
    fn measurements(&self, r: &Reading) -> Result<Vec<Measurement>, String> {
        let at = DateTime::parse(&r.taken_at).map_err(|e| format!("`taken_at`: {e}"))?;
        let number = |field: &str, n: &serde_json::Number| {
            parse_decimal(&n.to_string()).map_err(|e| format!("`{field}`: {e}"))
        };
        let one = |kind: &str, value: Value| {
            Measurement::new(
                Provenance::new(self.id(), format!("{}/{kind}", r.id)),
                Identifier::new("urn:example:cuffcloud:user", r.user.as_str()),
                kind,
                value,
                at,
            )
        };
        let mut out = Vec::new();
        let mut pressure = Vec::new();
        for (field, n) in [("systolic", &r.systolic), ("diastolic", &r.diastolic)] {
            if let Some(n) = n {
                let mmhg = Quantity::new(number(field, n)?, UnitCode::from_static("mm[Hg]"));
                pressure.push(Component {
                    id: ComponentId::from_static(field),
                    value: ComponentValue::Quantity(mmhg.into()),
                });
            }
        }
        // One of the two alone is a lone component reading of the panel (ADR 0009).
        if !pressure.is_empty() {
            out.push(one("blood-pressure", Value::Components(pressure)));
        }
        if let Some(n) = &r.pulse {
            out.push(one(
                "heart-rate",
                Value::quantity(number("pulse", n)?, "/min"),
            ));
        }
        if out.is_empty() {
            return Err("none of `systolic`, `diastolic` and `pulse`".into());
        }
        Ok(out)
    }
}

fn instant(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

#[async_trait]
impl Source for CuffCloud {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        "cuffcloud"
    }

    async fn check(&self) -> Result<(), Error> {
        self.fetch(None, 1).await.map(|_| ())
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> Result<Batch, Error> {
        let bad_cursor = || Error::BadCursor {
            reason: "not a CuffCloud cursor".into(),
        };
        let from: Option<(Position, Timestamp)> = if cursor.is_start() {
            None
        } else {
            let p: Position = serde_json::from_str(cursor.as_str()).map_err(|_| bad_cursor())?;
            let t = instant(&p.updated).ok_or_else(bad_cursor)?;
            Some((p, t))
        };
        let limit = limit.max(1);
        let mut size = limit.min(self.page);
        loop {
            // The boundary's update time again (`since` is inclusive): readings that share it
            // and were not delivered yet are on this page; those delivered are skipped by id.
            let page = self
                .fetch(from.as_ref().map(|(p, _)| p.updated.as_str()), size)
                .await?;
            let mut batch = Batch::default();
            let mut last = from.as_ref().map(|(p, _)| p.clone());
            for r in &page.readings {
                let t = instant(&r.updated).ok_or_else(|| Error::BadData {
                    location: format!("reading {}", r.id),
                    reason: "`updated` is not an RFC 3339 time".into(),
                })?;
                let skip = match &from {
                    Some((p, pt)) => match (t, r.id.as_str()).cmp(&(*pt, p.id.as_str())) {
                        Ordering::Less => continue,
                        Ordering::Equal => p.part,
                        Ordering::Greater => 0,
                    },
                    None => 0,
                };
                let items: Vec<Result<Measurement, String>> = match self.measurements(r) {
                    Ok(ms) => ms.into_iter().map(Ok).collect(),
                    Err(reason) => vec![Err(reason)],
                };
                for (k, item) in items.into_iter().enumerate().skip(skip) {
                    if batch.measurements.len() + batch.rejected.len() == limit {
                        // Full, possibly half-way through a reading: the cursor says where.
                        batch.cursor = encode(last.as_ref());
                        return Ok(batch);
                    }
                    match item {
                        Ok(m) => batch.measurements.push(m),
                        Err(reason) => batch.rejected.push(Rejected {
                            location: format!("reading {}", r.id),
                            reason,
                        }),
                    }
                    last = Some(Position {
                        updated: r.updated.clone(),
                        id: r.id.clone(),
                        part: k + 1,
                    });
                }
            }
            let nothing_new = batch.measurements.is_empty() && batch.rejected.is_empty();
            if nothing_new && page.more {
                // A whole page at the boundary, all delivered: more readings share that update
                // time than a page holds. Ask for a bigger page.
                if size >= MAX_PAGE {
                    return Err(Error::BadData {
                        location: "v1/readings".into(),
                        reason: format!("more than {MAX_PAGE} readings share one update time"),
                    });
                }
                size = (size * 2).min(MAX_PAGE);
                continue;
            }
            batch.cursor = encode(last.as_ref());
            batch.exhausted = !page.more;
            return Ok(batch);
        }
    }
}

fn encode(p: Option<&Position>) -> Cursor {
    match p {
        Some(p) => Cursor::new(serde_json::to_string(p).unwrap_or_default()),
        None => Cursor::start(),
    }
}
