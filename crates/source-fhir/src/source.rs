//! Observations (and their Patients) from a FHIR server, incrementally.

use std::time::Duration;

use async_trait::async_trait;
use healthanalyzer_fhir::{ReadOptions, Validation, read_bundle};
use healthanalyzer_model::{Catalog, DateTime, Identifier};
use healthanalyzer_source::http::reqwest::Url;
use healthanalyzer_source::{Batch, Cursor, Error, Rejected, Result, Source};
use serde::{Deserialize, Serialize};

use crate::chains::Shape;
use crate::client::{FhirClient, Payload, redact};

/// Which Observations to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// `category` tokens (`vital-signs`); empty for any.
    pub categories: Vec<String>,
    /// `code` tokens (`http://loinc.org|85354-9`); empty for any.
    pub codes: Vec<String>,
    /// A `patient` (`Patient/123`) or `subject:identifier` (`urn:oid:…|0101701234`) to read
    /// one person's Observations only. Under [`Shape::Fut`] the `patient` parameter of
    /// `$search-measurements` (a reference); under [`Shape::Pmd`] the `patient.identifier`
    /// (`system|value`, required); under [`Shape::Medmij`] none may be given (the patient is
    /// the token's).
    pub patient: Option<String>,
    /// Ask the server to include the Observations' Patients (`_include=Observation:subject`),
    /// so subjects resolve to their national identifiers.
    pub include_patients: bool,
    /// The most pages one search may take (a guard against `next` links that loop).
    pub max_pages: u32,
    /// How to read: the plain search (the default) or a national chain's shape.
    pub shape: Shape,
    /// [`Shape::Fut`]: the `episodeOfCare` of `$search-measurements` (`EpisodeOfCare/<id>`
    /// or the care-plan service's absolute URL); with or instead of `patient`.
    pub episode_of_care: Option<String>,
    /// [`Shape::Fut`]: the identifier (`urn:oid:1.2.208.176.1.2|<CPR>`) to give measurements
    /// of `patient`, whose Observations name it only by a reference into the patient service.
    pub subject: Option<Identifier>,
    /// [`Shape::Fut`]: how far before the end of the last period each search starts (FUT
    /// searches by the time measured, so a measurement submitted up to this late is still
    /// found). Default two days.
    pub overlap: Duration,
}

impl Default for Query {
    /// Vital signs of everyone, with their Patients.
    fn default() -> Self {
        Query {
            categories: vec!["vital-signs".into()],
            codes: Vec::new(),
            patient: None,
            include_patients: true,
            max_pages: 100_000,
            shape: Shape::Search,
            episode_of_care: None,
            subject: None,
            overlap: Duration::from_secs(2 * 24 * 3600),
        }
    }
}

/// The cursor: the high-water mark of `meta.lastUpdated` (what is older was read), the highest
/// seen in the search under way, and the page being read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// Read everything updated up to this instant (as the server wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) since: Option<String>,
    /// The latest `lastUpdated` of the search under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max: Option<String>,
    /// The page being read (a search URL or a `next` link), if a search is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) page: Option<String>,
    /// Measurements of that page already delivered.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) skip: usize,
    /// Pages read in this search.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub(crate) pages: u32,
    /// [`Shape::Fut`]: the last period searched was cut short (the server found too many
    /// submissions in it), so the next one starts where it ended, without the overlap, and
    /// the sync goes on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) more: bool,
    /// [`Shape::Fut`]: the period under way (`max`) was cut short: after it the sync goes on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) cut: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

#[derive(Deserialize)]
struct Link {
    relation: String,
    url: String,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "lastUpdated", default)]
    last_updated: Option<String>,
}

#[derive(Deserialize)]
struct EntryResource {
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    resource: Option<EntryResource>,
}

/// What the cursor needs of a searchset page.
#[derive(Deserialize)]
struct Page {
    #[serde(rename = "resourceType")]
    resource_type: String,
    #[serde(default)]
    link: Vec<Link>,
    #[serde(default)]
    entry: Vec<Entry>,
}

/// A FHIR server as a source of measurements.
///
/// Each sync searches `Observation` for what was updated since the last one
/// (`_lastUpdated=gt…`), page by page along the server's `next` links; the cursor holds the
/// high-water mark and the page under way, so a sync stopped half-way resumes on the same page.
/// Updates within the same instant as the high-water mark, made after the search that set it,
/// are missed (servers keep milliseconds; this is rare, and a full re-sync from an empty
/// cursor recovers it).
#[derive(Debug, Clone)]
pub struct FhirSource {
    pub(crate) id: String,
    pub(crate) client: FhirClient,
    pub(crate) query: Query,
    pub(crate) catalog: &'static Catalog,
    pub(crate) validation: Validation,
}

impl FhirSource {
    /// A source with id `id` reading `query` through `client`.
    pub fn new(id: impl Into<String>, client: FhirClient, query: Query) -> Self {
        FhirSource {
            id: id.into(),
            client,
            query,
            catalog: Catalog::builtin(),
            validation: Validation::Strict,
        }
    }

    /// How much of each Observation is checked (default: the whole R4 model, as our server
    /// checks it).
    pub fn with_validation(mut self, validation: Validation) -> Self {
        self.validation = validation;
        self
    }

    /// Checks that the [`Query`] fits its [`Shape`] (a `patient` as `system|value` under
    /// [`Shape::Pmd`], none under [`Shape::Medmij`], a patient or episode of care under
    /// [`Shape::Fut`]); every pull checks it too.
    ///
    /// # Errors
    /// [`Error::Config`] saying what to set.
    pub fn check_settings(&self) -> Result<()> {
        self.check_shape()
    }

    /// The parameters of a search for what was updated after `since`.
    fn parameters(&self, since: Option<&str>, count: usize) -> Vec<(&'static str, String)> {
        let mut q = vec![("_count", count.to_string())];
        if !self.query.categories.is_empty() {
            q.push(("category", self.query.categories.join(",")));
        }
        if !self.query.codes.is_empty() {
            q.push(("code", self.query.codes.join(",")));
        }
        if let Some(p) = &self.query.patient {
            match self.query.shape {
                // The patient is the token's.
                Shape::Medmij => {}
                Shape::Pmd => q.push(("patient.identifier", p.trim().to_string())),
                _ if p.contains('|') => q.push(("subject:identifier", p.clone())),
                _ => q.push(("patient", p.clone())),
            }
        }
        if let Some(s) = since {
            q.push(("_lastUpdated", format!("gt{s}")));
        }
        if self.query.include_patients {
            q.push(("_include", "Observation:subject".into()));
        }
        q
    }

    /// The first page of a search for what was updated after `since`, as a GET URL.
    fn search(&self, since: Option<&str>, count: usize) -> Result<Url> {
        let mut url = self.client.url("Observation")?;
        url.query_pairs_mut()
            .extend_pairs(self.parameters(since, count));
        Ok(url)
    }

    /// Whether the first page is a `POST Observation/_search`: always under [`Shape::Pmd`],
    /// and under [`Shape::Search`] when the patient is a national person number (CPR, BSN,
    /// FNR, D-number), which must never appear in a URL (servers and proxies log URLs).
    fn posts_search(&self) -> bool {
        match self.query.shape {
            Shape::Pmd => true,
            Shape::Search => self
                .query
                .patient
                .as_deref()
                .and_then(|p| p.trim().parse::<Identifier>().ok())
                .is_some_and(|i| i.national_system().is_some()),
            Shape::Fut | Shape::Medmij => false,
        }
    }

    /// The first page of a search: a GET of [`FhirSource::search`], or (see
    /// [`FhirSource::posts_search`]) a POST to `Observation/_search` with the parameters as a
    /// form body, so that a national number stays out of the URL. The URL read and the page.
    async fn first_page(&self, since: Option<&str>, count: usize) -> Result<(Url, String)> {
        if self.posts_search() {
            let url = self.client.url("Observation/_search")?;
            // Encoded as a query is (application/x-www-form-urlencoded), on a URL never sent.
            let mut form = Url::parse("http://form.invalid/")
                .map_err(|e| Error::Config(format!("a form body: {e}")))?;
            form.query_pairs_mut()
                .extend_pairs(self.parameters(since, count));
            let body = form.query().unwrap_or_default().to_string();
            let text = self.client.post(&url, &Payload::form(body), true).await?;
            return Ok((url, text));
        }
        let url = self.search(since, count)?;
        let text = self.client.get(&url).await?;
        Ok((url, text))
    }

    pub(crate) fn decode(cursor: &Cursor) -> Result<Position> {
        if cursor.is_start() {
            return Ok(Position::default());
        }
        serde_json::from_str(cursor.as_str()).map_err(|_| Error::BadCursor {
            reason: "not a FHIR source cursor".into(),
        })
    }

    pub(crate) fn encode(p: &Position) -> Cursor {
        Cursor::new(serde_json::to_string(p).unwrap_or_default())
    }
}

/// The later of two `lastUpdated` texts, by instant.
fn later(a: Option<String>, b: &str) -> Option<String> {
    let Ok(bt) = DateTime::parse(b) else { return a };
    match &a {
        Some(at) if DateTime::parse(at).is_ok_and(|at| at.instant() >= bt.instant()) => a,
        _ => Some(b.to_string()),
    }
}

#[async_trait]
impl Source for FhirSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        "fhir"
    }

    /// One search for a single Observation (under [`Shape::Fut`], a `$search-measurements`
    /// of the last minute): the server answers and accepts the credentials.
    async fn check(&self) -> Result<()> {
        self.check_shape()?;
        if self.query.shape == Shape::Fut {
            let now = healthanalyzer_model::jiff::Timestamp::now();
            let start = now
                .checked_sub(healthanalyzer_model::jiff::SignedDuration::from_secs(60))
                .ok();
            return self.fut_search(start, now).await.map(|_| ());
        }
        self.first_page(None, 1).await.map(|_| ())
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> Result<Batch> {
        self.check_shape()?;
        let limit = limit.max(1);
        let mut at = Self::decode(cursor)?;
        if self.query.shape == Shape::Fut {
            return self.pull_fut(at, limit).await;
        }
        let (url, text) = match &at.page {
            Some(page) => {
                let url = Url::parse(page).map_err(|_| Error::BadCursor {
                    reason: "the page in the cursor is not a URL".into(),
                })?;
                if !self.client.same_origin(&url) {
                    return Err(Error::BadCursor {
                        reason: "the page in the cursor is on another server".into(),
                    });
                }
                let text = self.client.get(&url).await?;
                (url, text)
            }
            None => {
                self.first_page(at.since.as_deref(), limit.min(1000))
                    .await?
            }
        };
        let first_post = at.page.is_none() && self.posts_search();
        let location = redact(&url);
        let bad = |reason: String| Error::BadData {
            location: location.clone(),
            reason,
        };
        let page: Page = serde_json::from_str(&text)
            .map_err(|e| bad(format!("the page is not a FHIR Bundle: {e}")))?;
        if page.resource_type != "Bundle" {
            return Err(bad(format!(
                "expected a Bundle, got a {}",
                page.resource_type
            )));
        }
        let read = ReadOptions::new(self.catalog, &self.id).with_validation(self.validation);
        let contents = read_bundle(&text, &read).map_err(|e| bad(e.to_string()))?;
        let mut max = at.max.take();
        for e in &page.entry {
            if let Some(t) = e
                .resource
                .as_ref()
                .and_then(|r| r.meta.as_ref())
                .and_then(|m| m.last_updated.as_deref())
            {
                max = later(max, t);
            }
        }
        let mut batch = Batch::default();
        let available = contents.measurements.len();
        let from = at.skip.min(available);
        let to = from.saturating_add(limit).min(available);
        batch.measurements = contents.measurements[from..to].to_vec();
        if from == 0 {
            batch.subjects = contents.subjects;
            batch.rejected = contents
                .errors
                .into_iter()
                .map(|e| Rejected {
                    location: format!("{location} entry[{}]", e.index),
                    reason: e.error.to_string(),
                })
                .collect();
        }
        if to < available {
            // The page holds more than the limit: the next pull reads it again from here
            // (the first page of a PMD search by POSTing the search again).
            let next = Position {
                page: (!first_post).then(|| url.to_string()),
                skip: to,
                max,
                ..at
            };
            batch.cursor = Self::encode(&next);
            return Ok(batch);
        }
        let next_link = page
            .link
            .iter()
            .find(|l| l.relation == "next")
            .map(|l| url.join(&l.url))
            .transpose()
            .map_err(|e| bad(format!("the `next` link is not a URL: {e}")))?;
        match next_link {
            Some(next) => {
                if next == url {
                    return Err(bad("the `next` link points to the page itself".into()));
                }
                if !self.client.same_origin(&next) {
                    return Err(bad(
                        "the `next` link leads to another server; credentials are not sent there"
                            .into(),
                    ));
                }
                if at.pages + 1 >= self.query.max_pages {
                    return Err(bad(format!(
                        "more than {} pages in one search: do the `next` links loop?",
                        self.query.max_pages
                    )));
                }
                batch.cursor = Self::encode(&Position {
                    since: at.since,
                    max,
                    page: Some(next.to_string()),
                    skip: 0,
                    pages: at.pages + 1,
                    more: false,
                    cut: false,
                });
            }
            None => {
                // The search is complete: what it saw is now read.
                let since = max.or(at.since);
                batch.cursor = Self::encode(&Position {
                    since,
                    ..Position::default()
                });
                batch.exhausted = true;
            }
        }
        Ok(batch)
    }
}
