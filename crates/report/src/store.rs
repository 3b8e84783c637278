//! [`Report::from_store`]: the report of what a store holds, built one patient at a time.

use std::collections::BTreeMap;
use std::ops::Bound;

use healthanalyzer_analysis::{self as analysis, Point, RuleSet, SeriesKey, subject_key};
use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::{Catalog, Identifier};
use healthanalyzer_store::{Filter, Order, Query, Store};

use crate::build::{Builder, GlucoseCount, Period, name};
use crate::{Error, Options, Report};

/// The kinds whose original unit chooses the glucose unit.
const GLUCOSE_KINDS: [&str; 2] = ["blood-glucose", "capillary-glucose"];

/// Measurements asked for at a time, newest first, when looking for a patient's latest reading.
const LATEST_PAGE: usize = 4;

impl Report {
    /// The report of what `store` holds (of `patient`, or of every patient with
    /// measurements), at `options.now`: the report [`Report::build`] makes of all the store's
    /// measurements of those patients and their subjects, equal to it, built one patient at a
    /// time (feature `store`).
    ///
    /// Alerts see every stored measurement of a patient up to "now" (a stale-data rule needs
    /// the last one, however old); statistics and charts cover `options.days`.
    ///
    /// # Memory
    /// At most **one patient's readings** are held at a time, however many patients the store
    /// holds. The patients come from [`subjects`](healthanalyzer_store::MeasurementStore::measured_subjects)
    /// (identifiers only); each patient's measurements are then read a page at a
    /// time (the store's preferred batch size, at least 1,000, and never more than that
    /// patient has), each page turned into numeric points (time, value, id) and dropped, and
    /// the patient's section built from the points before the next patient is read. A first,
    /// cheaper pass reads per patient the latest reading up to "now" (newest first, a page of
    /// 4; only with [`Options::follow_data`], whose period may end at the latest reading of
    /// all patients) and the glucose readings (only when [`Options::glucose_unit`] is not
    /// set), a page at a time, keeping only counts. Each patient's subject record is looked up
    /// by identifier. What grows with the store is the report itself, one section per
    /// patient, and the list of identifiers. The store's [`Query`] cannot leave out the kept
    /// payloads of the measurements, so a page carries them until it is turned into points.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails (its error says whether a retry can help);
    /// [`Error::Options`] when the period does not fit the calendar.
    pub async fn from_store(
        store: &dyn Store,
        catalog: &Catalog,
        rules: &RuleSet,
        options: &Options,
        patient: Option<&Identifier>,
    ) -> Result<Report, Error> {
        let ids = match patient {
            Some(p) => vec![p.clone()],
            None => store.measured_subjects().await?,
        };
        // Patients as the report shows them, by `system|value` key (which two identifiers,
        // with and without a system, could share).
        let mut patients: BTreeMap<String, Vec<Identifier>> = BTreeMap::new();
        for id in ids {
            patients.entry(subject_key(&id)).or_default().push(id);
        }
        let page = store.preferred_batch_size().max(1000);

        // What depends on every patient: where the period ends, and the glucose unit.
        let mut latest = None;
        if options.follow_data {
            for id in patients.values().flatten() {
                latest = latest.max(latest_reading(store, id, catalog, options.now).await?);
            }
        }
        let mut glucose = GlucoseCount::default();
        if options.glucose_unit.is_none() {
            for id in patients.values().flatten() {
                count_glucose(store, id, catalog, page, &mut glucose).await?;
            }
        }
        let period = Period::new(options, latest)?;
        let glucose_unit = options.glucose_unit.unwrap_or_else(|| glucose.unit());

        let mut builder = Builder::new(catalog, rules, options, period, glucose_unit);
        for (key, ids) in &patients {
            let mut all: BTreeMap<SeriesKey, Vec<Point>> = BTreeMap::new();
            let mut names = BTreeMap::new();
            for id in ids {
                read_series(store, id, catalog, page, &mut all).await?;
                // A subject found by another of its identifiers names the patient of that one.
                if let Some(s) = store.subject(id).await?
                    && subject_key(&s.id) == *key
                    && let Some(n) = name(&s)
                {
                    names.insert(key.clone(), n);
                }
            }
            // Points in time order, as `analysis::series` sorts a whole history (the pages
            // came in that order: this keeps it).
            for points in all.values_mut() {
                points.sort_by_key(|p| p.at);
            }
            builder.add(&all, &names);
        }
        Ok(builder.finish())
    }
}

/// The latest reading of `id` at or before `now`: the newest measurement that is a reading.
async fn latest_reading(
    store: &dyn Store,
    id: &Identifier,
    catalog: &Catalog,
    now: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    let filter = Filter::subject(id.clone()).between(Bound::Unbounded, Bound::Included(now));
    let mut query = Query::new(filter, LATEST_PAGE).order(Order::Descending);
    loop {
        let page = store.query(&query).await?;
        let series = analysis::series(&page.items, catalog);
        // Newest first: the first page with a reading holds the latest one.
        if let Some(at) = series.values().flatten().map(|p| p.at).max() {
            return Ok(Some(at));
        }
        match page.next {
            Some(next) => query.page = Some(next),
            None => return Ok(None),
        }
    }
}

/// Counts the glucose readings of `id` by the unit they came in.
async fn count_glucose(
    store: &dyn Store,
    id: &Identifier,
    catalog: &Catalog,
    page: usize,
    count: &mut GlucoseCount,
) -> Result<(), Error> {
    let filter = Filter::subject(id.clone()).kinds(GLUCOSE_KINDS);
    let mut query = Query::new(filter, page);
    loop {
        let page = store.query(&query).await?;
        count.add(&page.items, catalog);
        match page.next {
            Some(next) => query.page = Some(next),
            None => return Ok(()),
        }
    }
}

/// Adds the series of `id` to `all`, a page of measurements at a time. Readings after "now"
/// are read too: a patient who has only those is in the report, without readings.
async fn read_series(
    store: &dyn Store,
    id: &Identifier,
    catalog: &Catalog,
    page: usize,
    all: &mut BTreeMap<SeriesKey, Vec<Point>>,
) -> Result<(), Error> {
    let mut query = Query::new(Filter::subject(id.clone()), page);
    loop {
        let page = store.query(&query).await?;
        for (key, points) in analysis::series(&page.items, catalog) {
            all.entry(key).or_default().extend(points);
        }
        match page.next {
            Some(next) => query.page = Some(next),
            None => return Ok(()),
        }
    }
}
