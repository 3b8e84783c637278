//! Observations (and their Patients) from a FHIR server, incrementally.

use async_trait::async_trait;
use healthanalyzer_fhir::{ReadOptions, Validation, read_bundle};
use healthanalyzer_model::{Catalog, DateTime};
use healthanalyzer_source::http::reqwest::Url;
use healthanalyzer_source::{Batch, Cursor, Error, Rejected, Result, Source};
use serde::{Deserialize, Serialize};

use crate::client::{FhirClient, redact};

/// Which Observations to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// `category` tokens (`vital-signs`); empty for any.
    pub categories: Vec<String>,
    /// `code` tokens (`http://loinc.org|85354-9`); empty for any.
    pub codes: Vec<String>,
    /// A `patient` (`Patient/123`) or `subject:identifier` (`urn:oid:…|0101701234`) to read
    /// one person's Observations only.
    pub patient: Option<String>,
    /// Ask the server to include the Observations' Patients (`_include=Observation:subject`),
    /// so subjects resolve to their national identifiers.
    pub include_patients: bool,
    /// The most pages one search may take (a guard against `next` links that loop).
    pub max_pages: u32,
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
        }
    }
}

/// The cursor: the high-water mark of `meta.lastUpdated` (what is older was read), the highest
/// seen in the search under way, and the page being read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    /// Read everything updated up to this instant (as the server wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// The latest `lastUpdated` of the search under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<String>,
    /// The page being read (a search URL or a `next` link), if a search is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page: Option<String>,
    /// Measurements of that page already delivered.
    #[serde(default, skip_serializing_if = "is_zero")]
    skip: usize,
    /// Pages read in this search.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pages: u32,
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
    id: String,
    client: FhirClient,
    query: Query,
    catalog: &'static Catalog,
    validation: Validation,
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

    /// The first page of a search for what was updated after `since`.
    fn search(&self, since: Option<&str>, count: usize) -> Result<Url> {
        let mut url = self.client.url("Observation")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("_count", &count.to_string());
            if !self.query.categories.is_empty() {
                q.append_pair("category", &self.query.categories.join(","));
            }
            if !self.query.codes.is_empty() {
                q.append_pair("code", &self.query.codes.join(","));
            }
            if let Some(p) = &self.query.patient {
                if p.contains('|') {
                    q.append_pair("subject:identifier", p);
                } else {
                    q.append_pair("patient", p);
                }
            }
            if let Some(s) = since {
                q.append_pair("_lastUpdated", &format!("gt{s}"));
            }
            if self.query.include_patients {
                q.append_pair("_include", "Observation:subject");
            }
        }
        Ok(url)
    }

    fn decode(cursor: &Cursor) -> Result<Position> {
        if cursor.is_start() {
            return Ok(Position::default());
        }
        serde_json::from_str(cursor.as_str()).map_err(|_| Error::BadCursor {
            reason: "not a FHIR source cursor".into(),
        })
    }

    fn encode(p: &Position) -> Cursor {
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

    /// One search for a single Observation: the server answers and accepts the credentials.
    async fn check(&self) -> Result<()> {
        let url = self.search(None, 1)?;
        self.client.get(&url).await.map(|_| ())
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> Result<Batch> {
        let limit = limit.max(1);
        let mut at = Self::decode(cursor)?;
        let url = match &at.page {
            Some(page) => {
                let url = Url::parse(page).map_err(|_| Error::BadCursor {
                    reason: "the page in the cursor is not a URL".into(),
                })?;
                if !self.client.same_origin(&url) {
                    return Err(Error::BadCursor {
                        reason: "the page in the cursor is on another server".into(),
                    });
                }
                url
            }
            None => self.search(at.since.as_deref(), limit.min(1000))?,
        };
        let text = self.client.get(&url).await?;
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
            // The page holds more than the limit: the next pull reads it again from here.
            let next = Position {
                page: Some(url.to_string()),
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
