//! What the CLI and the server do with a store, as functions an embedder can call too.

use std::sync::Arc;

use healthanalyzer_analysis::RuleSet;
use healthanalyzer_model::jiff::{Timestamp, ToSpan, Zoned};
use healthanalyzer_model::{Catalog, Identifier};
use healthanalyzer_report::{Options, Report};
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_sim::{SimConfig, SimSource};
use healthanalyzer_store::{Checkpoint, Filter, Store};

use crate::Error;

/// The rules of the demo (from the analysis crate, [`RuleSet::demo`]).
pub use healthanalyzer_analysis::DEMO_RULES;

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

/// The report of what `store` holds (of one patient, or everyone), at `options.now`.
///
/// Alerts see every stored measurement of the patients (a stale-data rule needs the last one,
/// however old); statistics and charts cover `options.days`. Built one patient at a time
/// ([`Report::from_store`]): memory follows the largest patient's history, not the store.
///
/// # Errors
/// [`Error::Store`], or [`Error::Report`] for a period the calendar cannot hold.
pub async fn report(
    store: &dyn Store,
    rules: &RuleSet,
    options: &Options,
    patient: Option<&Identifier>,
) -> Result<Report, Error> {
    Ok(Report::from_store(store, Catalog::builtin(), rules, options, patient).await?)
}

/// A patient in the store, from [`patients`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRow {
    /// The identifier.
    pub id: Identifier,
    /// The name, when the store holds one (the text, else the family name).
    pub name: Option<String>,
    /// How many measurements are stored under the identifier.
    pub measurements: u64,
}

/// Every subject with measurements, sorted, with its name and how many measurements it has:
/// two store calls, whatever the number of patients.
///
/// # Errors
/// [`Error::Store`].
pub async fn patients(store: &dyn Store) -> Result<Vec<PatientRow>, Error> {
    let counts = store.subject_counts().await?;
    let mut names: std::collections::HashMap<Identifier, String> = store
        .list_subjects()
        .await?
        .into_iter()
        .filter_map(|s| {
            let name = s.name.and_then(|n| n.text.or(n.family))?;
            Some((s.id, name))
        })
        .collect();
    Ok(counts
        .into_iter()
        .map(|(id, measurements)| PatientRow {
            name: names.remove(&id),
            id,
            measurements,
        })
        .collect())
}

/// What [`demo`] does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated patients.
    pub patients: usize,
    /// Days of measurements, up to yesterday.
    pub days: u32,
    /// Where the HTML report goes.
    pub out: std::path::PathBuf,
    /// Where the demo's rules are written for later `alerts` and `report` runs, unless the
    /// file exists; `None`: nowhere.
    pub rules_file: Option<std::path::PathBuf>,
    /// The report's time zone.
    pub time_zone: healthanalyzer_model::jiff::tz::TimeZone,
    /// How the simulated source is synced (`[sync]` of the configuration, say).
    pub sync: crate::SyncOptions,
}

/// What [`demo`] did.
#[derive(Debug, Clone)]
pub struct DemoRun {
    /// The sync of the simulated source.
    pub sync: crate::SourceSummary,
    /// The report, when the sync completed (`None` when it was stopped or failed).
    pub report: Option<Report>,
    /// Measurements in the store afterwards.
    pub total: u64,
}

/// The demo: simulated patients ([`demo_source`]) synced into `store` from the start (the
/// same ids each run, so a second run the same day stores nothing new), analysed with
/// [`DEMO_RULES`], and an HTML report written to `options.out`.
///
/// # Errors
/// [`Error::Config`] for zero patients or days; [`Error::Store`]; [`Error::Output`] when a
/// file cannot be written.
pub async fn demo(
    store: Arc<dyn Store>,
    options: &DemoOptions,
    stop: &crate::StopFlag,
    on_event: &(dyn Fn(crate::Event) + Send + Sync),
) -> Result<DemoRun, Error> {
    let source = demo_source(options.patients, options.days)?;
    reset_cursor(store.as_ref(), source.id()).await?;
    let mut summaries = crate::sync(
        store.clone(),
        std::slice::from_ref(&source),
        &options.sync,
        stop,
        on_event,
    )
    .await;
    let sync = summaries.remove(0);
    let total = store.count(&Filter::default()).await?;
    if sync.outcome != crate::Outcome::Complete {
        return Ok(DemoRun {
            sync,
            report: None,
            total,
        });
    }
    let rules = RuleSet::demo();
    let mut report_options = Options::new(Timestamp::now(), options.time_zone.clone());
    report_options.days = options.days;
    report_options.title = format!(
        "Health Analyzer demo: {} simulated patients",
        options.patients
    );
    let report = report(store.as_ref(), &rules, &report_options, None).await?;
    let html = report.to_html()?;
    std::fs::write(&options.out, html).map_err(|e| Error::Output {
        what: format!("writing {}", options.out.display()),
        source: e,
    })?;
    if let Some(f) = &options.rules_file
        && !f.exists()
    {
        std::fs::write(f, DEMO_RULES.trim_start()).map_err(|e| Error::Output {
            what: format!("writing {}", f.display()),
            source: e,
        })?;
    }
    Ok(DemoRun {
        sync,
        report: Some(report),
        total,
    })
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
