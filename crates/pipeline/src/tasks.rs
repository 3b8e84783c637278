//! What the CLI and the server do with a store, as functions an embedder can call too.

use std::sync::Arc;

use healthanalyzer_analysis::RuleSet;
use healthanalyzer_model::jiff::{Timestamp, ToSpan, Zoned};
use healthanalyzer_model::{Catalog, Identifier, Measurement, Subject};
use healthanalyzer_report::{Options, Report};
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_sim::{SimConfig, SimSource};
use healthanalyzer_store::{Checkpoint, Filter, MeasurementStoreExt, Order, Query, Store};

use crate::Error;

/// The rules of the demo, a home-monitoring programme in miniature: SpO2, blood pressure and
/// glucose thresholds, the heart-failure weight rule and a stale-data rule.
pub const DEMO_RULES: &str = r#"
[[threshold]]
kind = "oxygen-saturation"
red_low = 88
yellow_low = 92

[[threshold]]
kind = "blood-pressure.systolic"
red_high = 180
yellow_high = 150

[[threshold]]
kind = "capillary-glucose"
red_low = 54
yellow_low = 70
yellow_high = 250
red_high = 400

[[delta]]
name = "weight gain"
kind = "body-weight"
rise = 2.0
within_days = 3
severity = "red"

[[stale]]
name = "no blood pressure"
kind = "blood-pressure.systolic"
days = 3
severity = "yellow"
"#;

/// The demo's simulated patients: `patients` people measuring for `days` days, up to
/// yesterday (so the report, at today's date, sees recent data), as source `demo-sim`.
///
/// # Errors
/// [`Error::Config`] for zero patients or days.
pub fn demo_source(patients: usize, days: u32) -> Result<Arc<dyn Source>, Error> {
    let today = Zoned::now().date();
    let start = today
        .checked_sub(i64::from(days).days())
        .map_err(|e| Error::Config(format!("{days} days: {e}")))?;
    let sim = SimSource::new(SimConfig {
        source_id: "demo-sim".into(),
        patients,
        days,
        start,
        ..SimConfig::default()
    })
    .map_err(|e| Error::Config(e.to_string()))?;
    Ok(Arc::new(sim))
}

/// The measurements (of one patient, or everyone) taken since `since`, and the patients
/// they are about.
///
/// # Errors
/// [`Error::Store`].
pub async fn load(
    store: &dyn Store,
    patient: Option<&Identifier>,
    since: Option<Timestamp>,
) -> Result<(Vec<Subject>, Vec<Measurement>), Error> {
    let mut filter = Filter {
        subject: patient.cloned(),
        ..Filter::default()
    };
    if let Some(s) = since {
        filter.from = std::ops::Bound::Included(s);
    }
    let measurements = store
        .query_all(
            &filter,
            Order::Ascending,
            store.preferred_batch_size().max(1000),
        )
        .await?;
    let ids: Vec<Identifier> = match patient {
        Some(p) => vec![p.clone()],
        None => store.subjects().await?,
    };
    let mut subjects = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(s) = store.subject(&id).await? {
            subjects.push(s);
        }
    }
    Ok((subjects, measurements))
}

/// The report of what `store` holds (of one patient, or everyone), at `options.now`.
///
/// Alerts see every stored measurement of the patients (a stale-data rule needs the last one,
/// however old); statistics and charts cover `options.days`.
///
/// # Errors
/// [`Error::Store`], or [`Error::Report`] for a period the calendar cannot hold.
pub async fn report(
    store: &dyn Store,
    rules: &RuleSet,
    options: &Options,
    patient: Option<&Identifier>,
) -> Result<Report, Error> {
    let (subjects, measurements) = load(store, patient, None).await?;
    Ok(Report::build(
        &measurements,
        &subjects,
        Catalog::builtin(),
        rules,
        options,
    )?)
}

/// Forgets a source's saved cursor: its next sync starts from the beginning (ids keep what it
/// re-reads from being stored twice).
///
/// # Errors
/// [`Error::Store`].
pub async fn reset_cursor(store: &dyn Store, source_id: &str) -> Result<(), Error> {
    store
        .write(
            &[],
            Some(&Checkpoint::new(source_id, Cursor::start().as_str())),
        )
        .await?;
    Ok(())
}

/// Writes FHIR NDJSON of what `store` holds (of one patient, or everyone; taken since
/// `since`): the Patients, then one Observation per line, a page at a time, so memory stays
/// flat however much is exported. Returns how many patients and measurements were written.
///
/// # Errors
/// [`Error::Store`]; [`Error::Output`] when writing fails or a measurement has no FHIR form.
pub async fn export_ndjson(
    store: &dyn Store,
    patient: Option<&Identifier>,
    since: Option<Timestamp>,
    options: &healthanalyzer_fhir::WriteOptions<'_>,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(usize, usize), Error> {
    let ids: Vec<Identifier> = match patient {
        Some(p) => vec![p.clone()],
        None => store.subjects().await?,
    };
    let mut subjects = Vec::new();
    for id in ids {
        if let Some(s) = store.subject(&id).await? {
            subjects.push(s);
        }
    }
    let write = |out: &mut (dyn std::io::Write + Send), text: String| {
        out.write_all(text.as_bytes())
            .map_err(|e| Error::Output(format!("writing NDJSON: {e}")))
    };
    let text = healthanalyzer_fhir::write_ndjson(&subjects, &[], options)
        .map_err(|e| Error::Output(e.to_string()))?;
    write(out, text)?;
    let mut filter = Filter {
        subject: patient.cloned(),
        ..Filter::default()
    };
    if let Some(s) = since {
        filter.from = std::ops::Bound::Included(s);
    }
    let mut query = Query::new(filter, store.preferred_batch_size().max(1000));
    let mut n = 0;
    loop {
        let page = store.query(&query).await?;
        n += page.items.len();
        let text = healthanalyzer_fhir::write_ndjson(&[], &page.items, options)
            .map_err(|e| Error::Output(e.to_string()))?;
        write(out, text)?;
        match page.next {
            Some(t) => query.page = Some(t),
            None => break,
        }
    }
    out.flush()
        .map_err(|e| Error::Output(format!("writing NDJSON: {e}")))?;
    Ok((subjects.len(), n))
}
