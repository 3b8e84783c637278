//! FHIR out of a store: NDJSON, a collection Bundle, or transactions pushed to a FHIR server,
//! a page of the store at a time so memory stays flat whatever the store holds.

use std::collections::HashSet;
use std::io::Write;

use healthanalyzer_fhir::{BundleKind, WriteOptions};
use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::{Identifier, Measurement, Subject};
use healthanalyzer_source_fhir::{FhirSink, PushSummary};
use healthanalyzer_store::{Filter, Query, Store};

use crate::Error;

/// The patients to export: one, or every one with measurements.
async fn subjects_of(
    store: &dyn Store,
    patient: Option<&Identifier>,
) -> Result<Vec<Subject>, Error> {
    let ids: Vec<Identifier> = match patient {
        Some(p) => vec![p.clone()],
        None => store.measured_subjects().await?,
    };
    let mut subjects = Vec::new();
    for id in ids {
        if let Some(s) = store.subject(&id).await? {
            subjects.push(s);
        }
    }
    Ok(subjects)
}

/// The store's measurements (of one patient, or everyone; taken since `since`), a page at a
/// time.
struct Pages<'s> {
    store: &'s dyn Store,
    query: Option<Query>,
}

impl<'s> Pages<'s> {
    fn new(store: &'s dyn Store, patient: Option<&Identifier>, since: Option<Timestamp>) -> Self {
        let mut filter = Filter {
            subject: patient.cloned(),
            ..Filter::default()
        };
        if let Some(s) = since {
            filter.from = std::ops::Bound::Included(s);
        }
        let size = store.preferred_batch_size().max(1000);
        Pages {
            store,
            query: Some(Query::new(filter, size)),
        }
    }

    /// The next page; `None` after the last.
    async fn next(&mut self) -> Result<Option<Vec<Measurement>>, Error> {
        let Some(query) = self.query.as_mut() else {
            return Ok(None);
        };
        let page = self.store.query(query).await?;
        match page.next {
            Some(t) => query.page = Some(t),
            None => self.query = None,
        }
        Ok(Some(page.items))
    }
}

fn output(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |source| Error::Output {
        what: what.to_string(),
        source,
    }
}

/// Writes FHIR NDJSON of what `store` holds (of one patient, or everyone; taken since
/// `since`): the Patients, then one Observation per line, a page at a time, so memory stays
/// flat however much is exported. Returns how many patients and measurements were written.
///
/// # Errors
/// [`Error::Store`]; [`Error::Output`] when writing fails; [`Error::Fhir`] when a measurement
/// has no FHIR form.
pub async fn export_ndjson(
    store: &dyn Store,
    patient: Option<&Identifier>,
    since: Option<Timestamp>,
    options: &WriteOptions<'_>,
    out: &mut (dyn Write + Send),
) -> Result<(usize, usize), Error> {
    let subjects = subjects_of(store, patient).await?;
    let text = healthanalyzer_fhir::write_ndjson(&subjects, &[], options)?;
    out.write_all(text.as_bytes())
        .map_err(output("writing NDJSON"))?;
    let mut pages = Pages::new(store, patient, since);
    let mut n = 0;
    while let Some(page) = pages.next().await? {
        n += page.len();
        let text = healthanalyzer_fhir::write_ndjson(&[], &page, options)?;
        out.write_all(text.as_bytes())
            .map_err(output("writing NDJSON"))?;
    }
    out.flush().map_err(output("writing NDJSON"))?;
    Ok((subjects.len(), n))
}

/// Writes a FHIR `collection` Bundle of what `store` holds (of one patient, or everyone; taken
/// since `since`), the same entries as [`healthanalyzer_fhir::write_bundle`] would make: the
/// Patients, each Device once, then the Observations. It is written a page of the store at a
/// time, so memory stays flat however large the Bundle. Returns how many patients and
/// measurements were written.
///
/// # Errors
/// As [`export_ndjson`].
pub async fn export_bundle(
    store: &dyn Store,
    patient: Option<&Identifier>,
    since: Option<Timestamp>,
    options: &WriteOptions<'_>,
    out: &mut (dyn Write + Send),
) -> Result<(usize, usize), Error> {
    const WHAT: &str = "writing the Bundle";
    let subjects = subjects_of(store, patient).await?;
    out.write_all(br#"{"resourceType":"Bundle","type":"collection","entry":["#)
        .map_err(output(WHAT))?;
    let mut first = true;
    let mut seen: HashSet<String> = HashSet::new();
    // Each entry as text (kept payloads spliced as stored, no `serde_json::Value` per
    // Observation), written straight to `out`.
    let mut entries =
        |out: &mut (dyn Write + Send), list: Vec<(String, String)>| -> Result<(), Error> {
            for (url, text) in list {
                // A Device named by several pages is written once (fullUrls are unique, bdl-7).
                if !seen.insert(url) {
                    continue;
                }
                if !first {
                    out.write_all(b",").map_err(output(WHAT))?;
                }
                first = false;
                out.write_all(text.as_bytes()).map_err(output(WHAT))?;
            }
            Ok(())
        };
    entries(
        out,
        healthanalyzer_fhir::write_bundle_entries_text(
            BundleKind::Collection,
            &subjects,
            &[],
            options,
        )?,
    )?;
    let mut pages = Pages::new(store, patient, since);
    let mut n = 0;
    while let Some(page) = pages.next().await? {
        n += page.len();
        // Observations only: their Patients were written first. Only Device fullUrls repeat.
        let list = healthanalyzer_fhir::write_bundle_entries_text(
            BundleKind::Collection,
            &[],
            &page,
            options,
        )?;
        entries(out, list)?;
    }
    out.write_all(b"]}\n").map_err(output(WHAT))?;
    out.flush().map_err(output(WHAT))?;
    Ok((subjects.len(), n))
}

/// Pushes what `store` holds (of one patient, or everyone; taken since `since`) to a FHIR
/// server through `sink`, a page of the store at a time, in the upload shape of the sink's
/// profile: transactions of conditional creates, or under `fut` one `$submit-measurement` per
/// submission, under `pmd` a pmd-Bundle-Observation batch, under `nl-core` a MedMij batch
/// (see [`FhirSink`]). Returns how many patients and measurements were pushed, and what the
/// server said; measurements it refused one by one are in [`PushSummary::refused`] (the rest
/// were pushed).
///
/// # Errors
/// [`Error::Store`]; [`Error::Push`] when the server refuses a transaction or cannot be
/// reached (what was pushed before stays: a conditional create makes a second push add
/// nothing).
pub async fn push(
    store: &dyn Store,
    patient: Option<&Identifier>,
    since: Option<Timestamp>,
    sink: &FhirSink<'_>,
) -> Result<(usize, usize, PushSummary), Error> {
    let subjects = subjects_of(store, patient).await?;
    let mut pages = Pages::new(store, patient, since);
    let mut total = PushSummary::default();
    let mut n = 0;
    while let Some(page) = pages.next().await? {
        n += page.len();
        total.add(sink.push(&subjects, &page).await.map_err(Error::Push)?);
    }
    Ok((subjects.len(), n, total))
}
