//! The national measurement chains' read shapes: Denmark's FUT (`$search-measurements`),
//! Norway's PMD (`POST Observation/_search` by `patient.identifier`) and the Netherlands'
//! MedMij (searches with a patient-context token, no `patient` parameter).

use std::fmt;
use std::str::FromStr;

use healthanalyzer_fhir::{REFERENCE_SYSTEM, ReadOptions, read_bundle};
use healthanalyzer_model::Measurement;
use healthanalyzer_model::jiff::{SignedDuration, Timestamp};
use healthanalyzer_source::{Batch, Error, Rejected, Result};
use serde_json::{Value, json};

use crate::client::{Payload, redact};
use crate::source::{FhirSource, Position};

/// How a [`FhirSource`] reads: the plain FHIR search, or one national chain's own shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Shape {
    /// `GET [base]/Observation?…&_lastUpdated=gt…`, page by page (any FHIR R4 server).
    #[default]
    Search,
    /// Denmark's FUT: `POST [base]/$search-measurements` with a `Parameters` of the
    /// patient and/or episode of care and a `period` from the cursor to now; the answer is a
    /// collection of one Bundle per submission.
    Fut,
    /// Norway's PMD: `POST [base]/Observation/_search` with the form body
    /// `patient.identifier=<system>|<value>` (the person's FNR, DNR or FHN), so the national
    /// number is never in a URL; then the server's `next` links.
    Pmd,
    /// The Netherlands' MedMij (a PGO's reads): `GET [base]/Observation?category=…&code=…`
    /// without a `patient` parameter: the patient is the token's.
    Medmij,
}

impl Shape {
    /// Every shape, for tools that list them.
    pub const ALL: &'static [Shape] = &[Shape::Search, Shape::Fut, Shape::Pmd, Shape::Medmij];

    /// The name in configuration: `search`, `fut`, `pmd`, `medmij`.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Search => "search",
            Shape::Fut => "fut",
            Shape::Pmd => "pmd",
            Shape::Medmij => "medmij",
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Shape {
    type Err = Error;

    /// A shape by name (`vkp` is PMD too).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "search" => Ok(Shape::Search),
            "fut" => Ok(Shape::Fut),
            "pmd" | "vkp" => Ok(Shape::Pmd),
            "medmij" => Ok(Shape::Medmij),
            other => Err(Error::Config(format!(
                "unknown read shape {other:?}; known: search, fut, pmd, medmij"
            ))),
        }
    }
}

/// An instant as FUT's `period` takes it: UTC, whole seconds.
fn instant(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl FhirSource {
    /// Checks that the query fits its shape, with a message that says what to set.
    pub(crate) fn check_shape(&self) -> Result<()> {
        let q = &self.query;
        let patient = q
            .patient
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        match q.shape {
            Shape::Search => {
                if q.episode_of_care.is_some() {
                    return Err(Error::Config(
                        "episode_of_care is read by the fut shape only".into(),
                    ));
                }
            }
            Shape::Fut => {
                if patient.is_none() && q.episode_of_care.is_none() {
                    return Err(Error::Config(
                        "the fut shape searches one patient or episode of care: set `patient` \
                         (Patient/<id> or the patient service's absolute URL) or \
                         `episode_of_care` (EpisodeOfCare/<id> or its absolute URL)"
                            .into(),
                    ));
                }
                if patient.is_some_and(|p| p.contains('|')) {
                    return Err(Error::Config(
                        "the fut shape takes `patient` as a reference (Patient/<id>), not as \
                         system|value"
                            .into(),
                    ));
                }
            }
            Shape::Pmd => {
                if !patient.is_some_and(|p| p.contains('|')) {
                    return Err(Error::Config(
                        "the pmd shape reads one person by national identifier: set `patient` \
                         to system|value (FNR urn:oid:2.16.578.1.12.4.1.4.1, DNR \
                         urn:oid:2.16.578.1.12.4.1.4.2 or FHN urn:oid:2.16.578.1.12.4.1.4.3)"
                            .into(),
                    ));
                }
                if q.episode_of_care.is_some() {
                    return Err(Error::Config(
                        "episode_of_care is read by the fut shape only".into(),
                    ));
                }
            }
            Shape::Medmij => {
                if patient.is_some() {
                    return Err(Error::Config(
                        "the medmij shape sends no patient: the patient is the token's; leave \
                         `patient` out"
                            .into(),
                    ));
                }
                if q.episode_of_care.is_some() {
                    return Err(Error::Config(
                        "episode_of_care is read by the fut shape only".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The `Parameters` of one `$search-measurements`: the patient and/or episode of care,
    /// and `period` from `start` (open when `None`) to `end`.
    fn fut_parameters(&self, start: Option<Timestamp>, end: Timestamp) -> Value {
        let mut params = Vec::new();
        if let Some(p) = self.query.patient.as_deref() {
            params.push(json!({"name": "patient", "valueReference": {"reference": p.trim()}}));
        }
        if let Some(e) = self.query.episode_of_care.as_deref() {
            params
                .push(json!({"name": "episodeOfCare", "valueReference": {"reference": e.trim()}}));
        }
        let mut period = serde_json::Map::new();
        if let Some(s) = start {
            period.insert("start".into(), Value::String(instant(s)));
        }
        period.insert("end".into(), Value::String(instant(end)));
        params.push(json!({"name": "period", "valuePeriod": period}));
        json!({"resourceType": "Parameters", "parameter": params})
    }

    /// One `$search-measurements` for what was measured from `start` to `end`.
    pub(crate) async fn fut_search(
        &self,
        start: Option<Timestamp>,
        end: Timestamp,
    ) -> Result<String> {
        let url = self.client.url("$search-measurements")?;
        let body = self.fut_parameters(start, end).to_string();
        self.client.post(&url, &Payload::fhir(body), true).await
    }

    /// A pull of the fut shape. The cursor holds the end of the last period searched
    /// (`since`); a search under way, its end (`max`) and how many of its measurements were
    /// delivered (`skip`), so a cut sync resumes where it stopped. Each period starts
    /// [`Query::overlap`](crate::Query::overlap) before the last one ended: FUT searches by
    /// the time measured, and a measurement submitted late is found by the next sync. A period
    /// with more submissions than the server answers at once (422) is halved until it fits,
    /// and the pulls after it search on from its end until they reach now.
    pub(crate) async fn pull_fut(&self, at: Position, limit: usize) -> Result<Batch> {
        let bad_cursor = |what: &str| Error::BadCursor {
            reason: format!("the {what} in the cursor is not an instant"),
        };
        let mut end = match at.max.as_deref() {
            Some(m) => m
                .parse::<Timestamp>()
                .map_err(|_| bad_cursor("period end"))?,
            None => Timestamp::now(),
        };
        let since = at
            .since
            .as_deref()
            .map(|s| {
                s.parse::<Timestamp>()
                    .map_err(|_| bad_cursor("period start"))
            })
            .transpose()?;
        let overlap = if at.more {
            SignedDuration::ZERO
        } else {
            SignedDuration::try_from(self.query.overlap).unwrap_or(SignedDuration::ZERO)
        };
        let start = since.map(|s| s.checked_sub(overlap).unwrap_or(s));
        // A period holding more submissions than the server answers at once (422) is halved
        // until it fits; the next pull searches the rest.
        let mut shrunk = false;
        let text = loop {
            match self.fut_search(start, end).await {
                Ok(t) => break t,
                Err(Error::BadData { location, reason })
                    if reason.starts_with("the server answered 422") =>
                {
                    let from = start.unwrap_or(Timestamp::UNIX_EPOCH);
                    let half = end.duration_since(from) / 2;
                    if half < SignedDuration::from_secs(1) {
                        return Err(Error::BadData { location, reason });
                    }
                    end = from.checked_add(half).unwrap_or(end);
                    shrunk = true;
                }
                Err(e) => return Err(e),
            }
        };
        let location = redact(&self.client.url("$search-measurements")?);
        let read = ReadOptions::new(self.catalog, &self.id).with_validation(self.validation);
        let contents = read_bundle(&text, &read).map_err(|e| Error::BadData {
            location: location.clone(),
            reason: format!("the answer to $search-measurements is not a Bundle: {e}"),
        })?;
        let mut measurements = contents.measurements;
        self.name_subjects(&mut measurements);
        let available = measurements.len();
        // A period cut short is not the one the skip counted in.
        let from = if shrunk { 0 } else { at.skip.min(available) };
        let to = from.saturating_add(limit).min(available);
        let mut batch = Batch {
            measurements: measurements.drain(from..to).collect(),
            ..Batch::default()
        };
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
            batch.cursor = Self::encode(&Position {
                since: at.since,
                max: Some(instant(end)),
                skip: to,
                more: at.more,
                cut: shrunk || at.cut,
                ..Position::default()
            });
        } else {
            // Done with this period: the next starts at its end. When it was cut short
            // (now, or before), the search goes on to now.
            let more = shrunk || at.cut;
            batch.cursor = Self::encode(&Position {
                since: Some(instant(end)),
                more,
                ..Position::default()
            });
            batch.exhausted = !more;
        }
        Ok(batch)
    }

    /// Gives measurements whose subject is a reference to the configured patient the
    /// configured [`Query::subject`](crate::Query::subject) (FUT names the patient by an
    /// absolute URL into its patient service).
    pub(crate) fn name_subjects(&self, measurements: &mut [Measurement]) {
        let (Some(subject), Some(patient)) = (&self.query.subject, &self.query.patient) else {
            return;
        };
        let tail = |r: &str| -> Option<String> {
            let mut parts = r.trim().trim_end_matches('/').rsplit('/');
            let id = parts.next()?;
            let ty = parts.next()?;
            Some(format!("{ty}/{id}"))
        };
        let Some(wanted) = tail(patient) else { return };
        for m in measurements {
            if m.subject.system.as_deref() == Some(REFERENCE_SYSTEM)
                && tail(m.subject.value()).as_deref() == Some(wanted.as_str())
            {
                m.subject = subject.clone();
            }
        }
    }
}
