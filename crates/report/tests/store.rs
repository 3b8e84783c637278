//! `Report::from_store` (feature `store`, on in this crate's tests): the report `Report::build`
//! makes of everything a store holds, read one patient at a time.
#![cfg(feature = "store")]

use std::sync::Mutex;

use async_trait::async_trait;
use healthanalyzer_analysis::{Ack, RuleSet, subject_key};
use healthanalyzer_model::jiff::tz::{self, TimeZone};
use healthanalyzer_model::jiff::{SignedDuration, Timestamp};
use healthanalyzer_model::{
    Catalog, DateTime, HumanName, Identifier, KindId, Measurement, MeasurementId, Provenance,
    Subject, Value, parse_decimal, systems,
};
use healthanalyzer_report::{GlucoseUnit, Options, Report};
use healthanalyzer_source::{Cursor, testkit};
use healthanalyzer_source_sim::{SimConfig, SimSource};
use healthanalyzer_store::{
    Applied, Checkpoint, Filter, MeasurementStore, MeasurementStoreExt, MemoryStore, Order, Page,
    Query, Result as StoreResult, Store, SubjectStore, Versioned, WriteSet, WriteSetStore,
    WriteSummary,
};

fn sim(n: usize) -> Identifier {
    Identifier::new(
        healthanalyzer_source_sim::SUBJECT_SYSTEM,
        format!("sim-5-{n}"),
    )
}

/// A test CPR number (day 32): the report marks it.
fn test_cpr() -> Identifier {
    Identifier::new(systems::CPR, "3201709995")
}

/// Weighs in daily from 2024-01-14 to 2024-02-10, after every other patient's last reading;
/// neither first nor last in the store's order.
fn late() -> Identifier {
    Identifier::new("urn:late", "l")
}

/// Two identifiers, with and without a system, that the report shows as one patient.
fn twins() -> [Identifier; 2] {
    [
        Identifier::new("urn:twin", "t"),
        Identifier::local("urn:twin|t"),
    ]
}

fn named(id: &Identifier, text: &str) -> Subject {
    let mut s = Subject::new(id.clone());
    s.name = Some(HumanName {
        text: Some(text.into()),
        ..HumanName::default()
    });
    s
}

fn reading(
    who: &Identifier,
    n: usize,
    kind: &str,
    value: &str,
    unit: &str,
    at: Timestamp,
) -> Measurement {
    Measurement::new(
        Provenance::new("test", format!("{}-{kind}-{n}", who.value)),
        who.clone(),
        kind,
        Value::quantity(parse_decimal(value).expect("value"), unit),
        DateTime::from_timestamp(at, tz::offset(1)),
    )
}

fn t(s: &str) -> Timestamp {
    s.parse().expect("time")
}

/// Six simulated patients over 20 days (2024-01-01 to 20), a CGM patient with a test CPR
/// number (four days every five minutes, in mmol/L: more glucose readings than the simulated
/// diabetic's mg/dL ones, and more than a page), a patient who starts late and measures
/// longest, and two identifiers that make one patient; names for some.
async fn filled() -> MemoryStore {
    let store = MemoryStore::new();
    let source = SimSource::new(SimConfig {
        patients: 6,
        days: 20,
        seed: 5,
        ..SimConfig::default()
    })
    .expect("sim");
    let mut data: Vec<Measurement> = testkit::pull_all(&source, &Cursor::start(), 10_000)
        .await
        .into_iter()
        .flat_map(|b| b.measurements)
        .collect();
    let cgm_start = t("2024-01-10T00:00:00+01:00");
    for i in 0..4 * 288 {
        let mmol = format!("{:.1}", 4.0 + (i % 97) as f64 * 0.11);
        let at = cgm_start + SignedDuration::from_mins(5 * i as i64);
        data.push(reading(
            &test_cpr(),
            i,
            "capillary-glucose",
            &mmol,
            "mmol/L",
            at,
        ));
    }
    for day in 0..28 {
        let at = t("2024-01-14T07:00:00+01:00") + SignedDuration::from_hours(24 * day as i64);
        let kg = format!("{:.1}", 90.0 + (day % 5) as f64 * 0.9);
        data.push(reading(&late(), day, "body-weight", &kg, "kg", at));
    }
    for (n, twin) in twins().iter().enumerate() {
        for day in 0..3 {
            let at = t("2024-01-05T08:00:00+01:00") + SignedDuration::from_hours(24 * day as i64);
            let kg = format!("{}.{n}", 70 + 2 * day);
            data.push(reading(twin, day, "body-weight", &kg, "kg", at));
        }
    }
    for chunk in data.chunks(500) {
        store.write(chunk, None).await.expect("write");
    }
    store
        .put_subjects(&[
            named(&sim(1), "Anna Hjerte"),
            named(&sim(3), "Bo Sukker"),
            named(&test_cpr(), "Test Testesen"),
            named(&twins()[1], "Twin"),
        ])
        .await
        .expect("subjects");
    store
}

/// What the pipeline did before: everything (of `patient`) in memory, then `Report::build`.
async fn everything(
    store: &dyn Store,
    rules: &RuleSet,
    options: &Options,
    patient: Option<&Identifier>,
) -> Report {
    let filter = Filter {
        subject: patient.cloned(),
        ..Filter::default()
    };
    let measurements = store
        .query_all(&filter, Order::Ascending, 1000)
        .await
        .expect("query");
    let ids = match patient {
        Some(p) => vec![p.clone()],
        None => store.measured_subjects().await.expect("subjects"),
    };
    let mut subjects = Vec::new();
    for id in ids {
        subjects.extend(store.subject(&id).await.expect("subject"));
    }
    Report::build(&measurements, &subjects, Catalog::builtin(), rules, options).expect("build")
}

async fn both(
    store: &dyn Store,
    rules: &RuleSet,
    options: &Options,
    patient: Option<&Identifier>,
) -> Report {
    let want = everything(store, rules, options, patient).await;
    let got = Report::from_store(store, Catalog::builtin(), rules, options, patient)
        .await
        .expect("from_store");
    assert_eq!(got, want);
    got
}

fn options(now: &str, days: u32) -> Options {
    let mut o = Options::new(t(now), TimeZone::get("Europe/Copenhagen").expect("tz"));
    o.days = days;
    o
}

fn patient<'a>(r: &'a Report, id: &Identifier) -> &'a healthanalyzer_report::PatientReport {
    r.patient(&subject_key(id))
        .unwrap_or_else(|| panic!("{} in the report", subject_key(id)))
}

#[tokio::test]
async fn from_store_gives_the_report_build_gives_of_everything() {
    let store = filled().await;
    let rules = RuleSet::demo();

    // In the data, with an acknowledged alert, a snoozed one and patients in other zones.
    let mut o = options("2024-01-21T12:00:00+01:00", 30);
    o.acks = vec![
        Ack {
            rule: "weight gain".into(),
            subject: subject_key(&sim(1)),
            at: t("2024-02-01T00:00:00Z"),
            until: None,
        },
        Ack {
            rule: "no blood pressure".into(),
            subject: subject_key(&sim(5)),
            at: t("2024-01-01T00:00:00Z"),
            until: Some(t("2024-03-01T00:00:00Z")),
        },
    ];
    o.patient_zones.insert(
        subject_key(&sim(2)),
        TimeZone::get("America/New_York").expect("tz"),
    );
    o.patient_zones
        .insert(subject_key(&test_cpr()), TimeZone::UTC);
    let r = both(&store, &rules, &o, None).await;
    assert_eq!(
        r.totals.patients, 9,
        "six simulated, CGM, late, the twins as one"
    );
    assert!(r.totals.red > 0 && r.totals.ok > 0, "{:?}", r.totals);
    assert_eq!(r.period_note, None);
    // Glucose in the unit most readings came in over all patients: the CGM's mmol/L, also
    // for the simulated diabetic who measures in mg/dL.
    let diabetic = patient(&r, &sim(3));
    assert_eq!(diabetic.name.as_deref(), Some("Bo Sukker"));
    assert_eq!(
        diabetic.glucose.as_ref().map(|g| g.unit.as_str()),
        Some("mmol/L")
    );
    let cgm = patient(&r, &test_cpr());
    assert!(cgm.identifier_note.is_some(), "{cgm:?}");
    assert_eq!(cgm.time_zone, "UTC");
    assert_eq!(patient(&r, &sim(2)).time_zone, "America/New_York");
    assert!(
        !patient(&r, &sim(1))
            .alerts
            .iter()
            .any(|a| a.rule == "weight gain")
    );
    let twin = patient(&r, &twins()[0]);
    assert_eq!(twin.name.as_deref(), Some("Twin"));
    // One series per identifier, as `Report::build` has them.
    assert_eq!(twin.series.len(), 2, "{twin:?}");

    // Long after the data: the period follows it to the latest reading of all, the late
    // patient's, for everyone.
    let o = options("2024-06-01T12:00:00+02:00", 30);
    let r = both(&store, &rules, &o, None).await;
    assert!(r.period_note.is_some());
    assert_eq!(
        (r.from.as_str(), r.to.as_str()),
        ("2024-01-11", "2024-02-10")
    );
    // The same, said not to follow the data: nothing in the period, the alerts remain.
    let mut fixed = o.clone();
    fixed.follow_data = false;
    let r = both(&store, &rules, &fixed, None).await;
    assert_eq!(r.totals.readings, 0);
    assert!(r.totals.yellow > 0);

    // Mid-way, in mg/dL, a week: readings after "now" are left out, and the late patient,
    // who has only those, is listed without any.
    let mut o = options("2024-01-12T21:00:00+01:00", 7);
    o.glucose_unit = Some(GlucoseUnit::MgDl);
    o.follow_data = false;
    let r = both(&store, &rules, &o, None).await;
    let l = patient(&r, &late());
    assert!(l.series.is_empty() && l.last_reading.is_none(), "{l:?}");
    assert_eq!(
        patient(&r, &test_cpr())
            .glucose
            .as_ref()
            .map(|g| g.unit.as_str()),
        Some("mg/dL")
    );

    // One patient.
    let o = options("2024-01-21T12:00:00+01:00", 30);
    let r = both(&store, &rules, &o, Some(&sim(3))).await;
    assert_eq!(r.totals.patients, 1);
    // Their own readings choose their glucose unit then.
    assert_eq!(
        r.patients[0].glucose.as_ref().map(|g| g.unit.as_str()),
        Some("mg/dL")
    );
    let r = both(&store, &rules, &o, Some(&Identifier::local("nobody"))).await;
    assert_eq!(r.totals.patients, 0);
}

#[tokio::test]
async fn from_store_holds_one_patient_at_a_time() {
    let store = Counting {
        inner: filled().await,
        handed_out: Mutex::default(),
    };
    let rules = RuleSet::demo();
    let mut per_subject = Vec::new();
    for id in store.inner.measured_subjects().await.expect("subjects") {
        let n = store
            .inner
            .count(&Filter::subject(id.clone()))
            .await
            .expect("count");
        per_subject.push((id, usize::try_from(n).expect("count")));
    }
    let total: usize = per_subject.iter().map(|(_, n)| n).sum();
    let largest = per_subject.iter().map(|(_, n)| *n).max().unwrap_or(0);
    // Several patients, the largest with more than a page of 1,000 (read in two).
    assert!(
        per_subject.len() >= 8 && largest > 1000 && total > largest + 500,
        "{per_subject:?}"
    );

    let o = options("2024-06-01T12:00:00+02:00", 30);
    let future = Report::from_store(&store, Catalog::builtin(), &rules, &o, None);
    assert_send(&future);
    let r = future.await.expect("from_store");
    assert_eq!(r.totals.patients, 9);

    let log = store.handed_out.lock().expect("log").clone();
    assert!(!log.is_empty());
    assert!(
        log.iter().all(|(who, _)| who.is_some()),
        "a query over several patients: {log:?}"
    );
    // Measurements handed out between two switches of subject, per run of one subject.
    let mut runs: Vec<(Identifier, usize)> = Vec::new();
    for (who, n) in log.into_iter().filter_map(|(w, n)| Some((w?, n))) {
        match runs.last_mut() {
            Some((last, sum)) if *last == who => *sum += n,
            _ => runs.push((who, n)),
        }
    }
    for (who, n) in &runs {
        let has = per_subject
            .iter()
            .find(|(id, _)| id == who)
            .map_or(0, |(_, n)| *n);
        assert!(
            *n <= has,
            "{n} measurements of {who:?} at once, who has {has}"
        );
    }
    let most = runs.iter().map(|(_, n)| *n).max().unwrap_or(0);
    assert!(most <= largest && most < total, "{most} of {total}");
    // Each patient's latest reading, glucose readings, then everything.
    assert_eq!(runs.len(), 3 * per_subject.len(), "{runs:?}");
}

fn assert_send<T: Send>(_: &T) {}

/// A store that records, for every measurement query, whose measurements it handed out and
/// how many.
#[derive(Debug)]
struct Counting {
    inner: MemoryStore,
    handed_out: Mutex<Vec<(Option<Identifier>, usize)>>,
}

impl Counting {
    fn record(&self, who: Option<&Identifier>, n: usize) {
        if let Ok(mut log) = self.handed_out.lock() {
            log.push((who.cloned(), n));
        }
    }
}

#[async_trait]
impl MeasurementStore for Counting {
    async fn write(
        &self,
        batch: &[Measurement],
        checkpoint: Option<&Checkpoint>,
    ) -> StoreResult<WriteSummary> {
        self.inner.write(batch, checkpoint).await
    }

    async fn get(&self, id: &MeasurementId) -> StoreResult<Option<Measurement>> {
        let m = self.inner.get(id).await?;
        self.record(None, usize::from(m.is_some()));
        Ok(m)
    }

    async fn query(&self, query: &Query) -> StoreResult<Page> {
        let page = self.inner.query(query).await?;
        self.record(query.filter.subject.as_ref(), page.items.len());
        Ok(page)
    }

    async fn count(&self, filter: &Filter) -> StoreResult<u64> {
        self.inner.count(filter).await
    }

    async fn latest(
        &self,
        subject: &Identifier,
        kinds: &[KindId],
        n: usize,
    ) -> StoreResult<Vec<Measurement>> {
        let v = self.inner.latest(subject, kinds, n).await?;
        self.record(Some(subject), v.len());
        Ok(v)
    }

    async fn measured_subjects(&self) -> StoreResult<Vec<Identifier>> {
        self.inner.measured_subjects().await
    }

    async fn delete(&self, ids: &[MeasurementId]) -> StoreResult<u64> {
        self.inner.delete(ids).await
    }

    async fn checkpoint(&self, source_id: &str) -> StoreResult<Option<Checkpoint>> {
        self.inner.checkpoint(source_id).await
    }

    fn preferred_batch_size(&self) -> usize {
        self.inner.preferred_batch_size()
    }
}

#[async_trait]
impl SubjectStore for Counting {
    async fn put_subjects(&self, subjects: &[Subject]) -> StoreResult<WriteSummary> {
        self.inner.put_subjects(subjects).await
    }

    async fn subject(&self, id: &Identifier) -> StoreResult<Option<Subject>> {
        self.inner.subject(id).await
    }

    async fn list_subjects(&self) -> StoreResult<Vec<Subject>> {
        self.inner.list_subjects().await
    }

    async fn delete_subject(&self, id: &Identifier) -> StoreResult<bool> {
        self.inner.delete_subject(id).await
    }
}

#[async_trait]
impl WriteSetStore for Counting {
    async fn apply(&self, set: &WriteSet) -> StoreResult<Applied> {
        self.inner.apply(set).await
    }

    async fn get_versioned(
        &self,
        id: &MeasurementId,
    ) -> StoreResult<Option<Versioned<Measurement>>> {
        let m = self.inner.get_versioned(id).await?;
        self.record(None, usize::from(m.is_some()));
        Ok(m)
    }

    async fn subject_versioned(&self, id: &Identifier) -> StoreResult<Option<Versioned<Subject>>> {
        self.inner.subject_versioned(id).await
    }
    async fn document(
        &self,
        resource_type: &str,
        id: &str,
    ) -> StoreResult<Option<Versioned<healthanalyzer_store::Document>>> {
        self.inner.document(resource_type, id).await
    }

    async fn find_documents(
        &self,
        query: &healthanalyzer_store::DocumentQuery,
    ) -> StoreResult<Vec<Versioned<healthanalyzer_store::Document>>> {
        self.inner.find_documents(query).await
    }
}
