//! The sync engine: sources into a store, resumable, idempotent, concurrent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use healthanalyzer_model::{Catalog, Validator};
use healthanalyzer_source::{Batch, Cursor, Rejected, RetryPolicy, Source};
use healthanalyzer_store::{Checkpoint, Precondition, Store, SubjectWrite, WriteSet, WriteSummary};

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Measurements asked of a source per pull, and written per transaction; `None`: the
    /// store's preferred batch size.
    pub batch_size: Option<usize>,
    /// Sources pulled at the same time (at least 1).
    pub concurrency: usize,
    /// Retries of a source's retryable errors (timeouts, 429, 5xx) and of a store's.
    pub retry: RetryPolicy,
    /// The catalog measurements are validated and normalised against.
    pub catalog: &'static Catalog,
    /// Rejections kept per source in its summary (all are counted).
    pub keep_rejected: usize,
    /// What to do with subject identifiers that fail their national rules (default: mark).
    pub identifiers: healthanalyzer_model::IdentifierPolicy,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            batch_size: None,
            concurrency: 4,
            retry: RetryPolicy::default(),
            catalog: Catalog::builtin(),
            keep_rejected: 100,
            identifiers: healthanalyzer_model::IdentifierPolicy::Mark,
        }
    }
}

/// Asks a running sync to stop: every source finishes the batch in hand, saves its cursor and
/// stops. Clones share the flag (hand one to a Ctrl-C handler).
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag not yet raised.
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    /// Raises the flag.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the flag is raised.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a sync reports while it runs. Events carry counts, never values or identifiers of
/// patients: they are safe to log.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A source starts, from its saved cursor (`resumed`) or from the beginning.
    Started {
        /// The source's id.
        source: String,
        /// Its kind.
        kind: String,
        /// Whether a saved cursor was found.
        resumed: bool,
    },
    /// A batch was stored with its cursor.
    Stored {
        /// The source's id.
        source: String,
        /// Measurements pulled in this batch.
        pulled: usize,
        /// What the write did.
        write: WriteSummary,
        /// Records rejected in this batch.
        rejected: usize,
        /// Measurements pulled so far from this source in this run.
        total: u64,
    },
    /// A retryable error; the engine waits and tries again.
    Retrying {
        /// The source's id.
        source: String,
        /// The attempt that failed (1 is the first).
        attempt: u32,
        /// What went wrong.
        reason: String,
        /// How long the engine waits.
        wait: Duration,
    },
    /// A source is done (completely, stopped or failed).
    Finished(SourceSummary),
}

/// How a source's sync ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Everything the source had is stored.
    Complete,
    /// Stopped on request after a stored batch; the next sync resumes there.
    Stopped,
    /// Failed; what was stored before stays, with its cursor, and the next sync resumes there.
    Failed(SyncFailure),
}

/// Why a source's sync failed: the step, and the source's or the store's error as its
/// [`source`](std::error::Error::source) (walk the chain for the whole story).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SyncFailure {
    /// The source's check failed, so it was not pulled.
    #[error("checking the source")]
    Check(#[source] Arc<healthanalyzer_source::Error>),
    /// The saved cursor could not be read.
    #[error("reading the saved cursor")]
    Checkpoint(#[source] Arc<healthanalyzer_store::Error>),
    /// The source failed (after the retries its error allowed).
    #[error("pulling from the source")]
    Pull(#[source] Arc<healthanalyzer_source::Error>),
    /// `Patient/<id>` references could not be looked up.
    #[error("linking references to Patients")]
    Link(#[source] Arc<healthanalyzer_store::Error>),
    /// A batch could not be stored (after the retries the store's error allowed).
    #[error("storing a batch")]
    Store(#[source] Arc<healthanalyzer_store::Error>),
}

impl SyncFailure {
    /// The whole chain in one line, `step: cause: cause…`, for a summary or a log.
    pub fn chain(&self) -> String {
        crate::error_chain(self)
    }
}

/// Two failures are equal when they failed at the same step for the same stated reasons.
impl PartialEq for SyncFailure {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.chain() == other.chain()
    }
}

/// What a sync did for one source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSummary {
    /// The source's id.
    pub source: String,
    /// Its kind.
    pub kind: String,
    /// Measurements pulled.
    pub pulled: u64,
    /// New measurements stored.
    pub inserted: u64,
    /// Stored measurements changed (corrections).
    pub updated: u64,
    /// Measurements already stored as they were (replays).
    pub unchanged: u64,
    /// Records rejected (by the source, or by validation), counted.
    pub rejected_count: u64,
    /// The first rejections, with where and why.
    pub rejected: Vec<Rejected>,
    /// Batches stored.
    pub batches: u64,
    /// Wall time.
    pub duration: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

impl SourceSummary {
    /// The summary of a source that was not pulled because its [`Source::check`] failed
    /// with `error` ([`check_sources`]).
    pub fn not_started(source: &dyn Source, error: healthanalyzer_source::Error) -> SourceSummary {
        let mut s = SourceSummary::new(source);
        s.outcome = Outcome::Failed(SyncFailure::Check(Arc::new(error)));
        s
    }

    fn new(source: &dyn Source) -> SourceSummary {
        SourceSummary {
            source: source.id().to_string(),
            kind: source.kind().to_string(),
            pulled: 0,
            inserted: 0,
            updated: 0,
            unchanged: 0,
            rejected_count: 0,
            rejected: Vec::new(),
            batches: 0,
            duration: Duration::ZERO,
            outcome: Outcome::Complete,
        }
    }
}

/// Syncs every source into `store`, `options.concurrency` at a time, and returns a summary
/// per source in the order given.
///
/// For each source: read its checkpoint, pull batches from there, validate and normalise every
/// measurement (an invalid one is rejected with its reason, not stored), store the subjects,
/// then write the batch **and** its cursor in one transaction. Retryable errors are retried
/// with backoff; a source that fails stops alone, the others go on. A sync killed at any point
/// resumes from the last stored cursor, and ids derived from provenance make a replayed batch
/// change nothing: nothing is lost and nothing stored twice.
pub async fn sync(
    store: Arc<dyn Store>,
    sources: &[Arc<dyn Source>],
    options: &SyncOptions,
    stop: &StopFlag,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Vec<SourceSummary> {
    let mut done: Vec<(usize, SourceSummary)> =
        futures_util::stream::iter(sources.iter().enumerate())
            .map(|(i, source)| {
                let store = Arc::clone(&store);
                async move {
                    let summary =
                        sync_one(store.as_ref(), source.as_ref(), options, stop, on_event).await;
                    on_event(Event::Finished(summary.clone()));
                    (i, summary)
                }
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, s)| s).collect()
}

/// Runs every source's [`Source::check`] (concurrently, up to `options.concurrency`) and
/// gives the failures as `(source id, error)`: call it before opening the store, so that a
/// sync that cannot start writes nothing.
///
/// A failure that is one person's ([`Authorization`](healthanalyzer_source::Error::Authorization):
/// a citizen's revoked grant at a device cloud) need not stop the others: leave that source
/// out, sync the rest, and report it with [`SourceSummary::not_started`].
pub async fn check_sources(
    sources: &[Arc<dyn Source>],
    options: &SyncOptions,
) -> Vec<(String, healthanalyzer_source::Error)> {
    futures_util::stream::iter(sources)
        .map(|s| async move { s.check().await.err().map(|e| (s.id().to_string(), e)) })
        .buffered(options.concurrency.max(1))
        .filter_map(|r| async move { r })
        .collect()
        .await
}

/// A store error as a source error, so one retry policy judges both.
fn as_source_error(e: &healthanalyzer_store::Error) -> healthanalyzer_source::Error {
    match e {
        healthanalyzer_store::Error::Unavailable {
            retryable: true, ..
        } => healthanalyzer_source::Error::unavailable(e.to_string()),
        _ => healthanalyzer_source::Error::Config(e.to_string()),
    }
}

/// Runs a store operation with the retry policy.
async fn with_retry<T, F, Fut>(
    options: &SyncOptions,
    source: &str,
    on_event: &(dyn Fn(Event) + Send + Sync),
    mut op: F,
) -> Result<T, healthanalyzer_store::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, healthanalyzer_store::Error>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => match options.retry.jittered_delay(attempt, &as_source_error(&e)) {
                Some(wait) => {
                    on_event(Event::Retrying {
                        source: source.to_string(),
                        attempt,
                        reason: crate::error_chain(&e),
                        wait,
                    });
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                None => return Err(e),
            },
        }
    }
}

async fn sync_one(
    store: &dyn Store,
    source: &dyn Source,
    options: &SyncOptions,
    stop: &StopFlag,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> SourceSummary {
    let started = Instant::now();
    let mut summary = SourceSummary::new(source);
    summary.outcome = run(store, source, options, stop, on_event, &mut summary)
        .await
        .unwrap_or_else(Outcome::Failed);
    summary.duration = started.elapsed();
    summary
}

async fn run(
    store: &dyn Store,
    source: &dyn Source,
    options: &SyncOptions,
    stop: &StopFlag,
    on_event: &(dyn Fn(Event) + Send + Sync),
    summary: &mut SourceSummary,
) -> Result<Outcome, SyncFailure> {
    let id = source.id();
    let saved = with_retry(options, id, on_event, || store.checkpoint(id))
        .await
        .map_err(|e| SyncFailure::Checkpoint(Arc::new(e)))?;
    on_event(Event::Started {
        source: id.to_string(),
        kind: source.kind().to_string(),
        resumed: saved.is_some(),
    });
    let cursor = saved.map_or_else(Cursor::start, |c| Cursor::new(c.cursor));
    let size = options
        .batch_size
        .unwrap_or_else(|| store.preferred_batch_size())
        .max(1);
    if stop.is_stopped() {
        return Ok(Outcome::Stopped);
    }
    // Batch N is written while batch N+1 is pulled and validated: the write of N saves N's
    // cursor, so N+1 never depends on anything unstored. A failure drops the batch pulled
    // ahead; the next sync pulls it again from the saved cursor.
    let mut ready = prepare(source, &cursor, size, options, on_event).await?;
    let mut links = Links::default();
    loop {
        // `Patient/<id>` references to the Patients they name: known before (in the store),
        // in this batch, or arriving now for measurements stored before.
        links
            .link(store, &mut ready, options, id, on_event)
            .await
            .map_err(|e| SyncFailure::Link(Arc::new(e)))?;
        // Patients, measurements and the cursor: one write set, committed together.
        let checkpoint = Checkpoint::new(id, ready.cursor.as_str());
        let mut set = WriteSet::batch(&ready.good, Some(&checkpoint));
        set.subjects = ready
            .subjects
            .iter()
            .map(|s| SubjectWrite {
                subject: s.clone(),
                precondition: Precondition::Any,
            })
            .collect();
        let write = async {
            with_retry(options, id, on_event, || store.apply(&set))
                .await
                .map(|applied| applied.measurements)
        };
        let more = !ready.exhausted && !stop.is_stopped();
        let (write, next) = if more {
            let (w, n) = tokio::join!(
                write,
                prepare(source, &ready.cursor, size, options, on_event)
            );
            (w, Some(n))
        } else {
            (write.await, None)
        };
        let write = write.map_err(|e| SyncFailure::Store(Arc::new(e)))?;
        summary.pulled += ready.pulled as u64;
        summary.inserted += write.inserted;
        summary.updated += write.updated;
        summary.unchanged += write.unchanged;
        summary.batches += 1;
        summary.rejected_count += ready.rejected.len() as u64;
        let room = options.keep_rejected.saturating_sub(summary.rejected.len());
        let n = ready.rejected.len();
        summary
            .rejected
            .extend(std::mem::take(&mut ready.rejected).into_iter().take(room));
        on_event(Event::Stored {
            source: id.to_string(),
            pulled: ready.pulled,
            write,
            rejected: n,
            total: summary.pulled,
        });
        if ready.exhausted {
            return Ok(Outcome::Complete);
        }
        match next {
            // Stopped: the batch in hand is stored, nothing more is pulled.
            None => return Ok(Outcome::Stopped),
            // A batch pulled ahead when the stop came is in hand too: the loop stores it and
            // pulls nothing more.
            Some(next) => ready = next?,
        }
    }
}

/// Links measurements whose subject is a literal reference (`Patient/p5`, from an NDJSON line
/// or an Observation read without its Patient) to the Patient with that id, wherever it is:
/// stored before, in the same batch, or arriving later (the measurements already stored under
/// the reference are then moved to the Patient, in the batch's write set).
#[derive(Default)]
struct Links {
    /// Reference identifiers found to name a stored subject: its primary identifier.
    known: std::collections::HashMap<
        healthanalyzer_model::Identifier,
        healthanalyzer_model::Identifier,
    >,
    /// References whose earlier measurements this run has moved to their Patient already: a
    /// Patient sent again in a later batch (a FHIR source's `_include`) is not looked up again,
    /// and what arrives under the reference after is linked through `known`.
    relinked: std::collections::HashSet<healthanalyzer_model::Identifier>,
}

impl Links {
    async fn link(
        &mut self,
        store: &dyn Store,
        ready: &mut Ready,
        options: &SyncOptions,
        source: &str,
        on_event: &(dyn Fn(Event) + Send + Sync),
    ) -> healthanalyzer_store::Result<()> {
        use healthanalyzer_model::Identifier;
        let is_reference =
            |id: &Identifier| id.system.as_deref() == Some(healthanalyzer_fhir::REFERENCE_SYSTEM);
        // The batch's own Patients first.
        for s in &ready.subjects {
            for alias in s.other_ids.iter().filter(|i| is_reference(i)) {
                self.known.insert(alias.clone(), s.id.clone());
            }
        }
        let mut unknown: Vec<Identifier> = Vec::new();
        for m in &ready.good {
            if is_reference(&m.subject)
                && !self.known.contains_key(&m.subject)
                && !unknown.contains(&m.subject)
            {
                unknown.push(m.subject.clone());
            }
        }
        for alias in unknown {
            let found = with_retry(options, source, on_event, || store.subject(&alias)).await?;
            if let Some(s) = found {
                self.known.insert(alias, s.id);
            }
        }
        for m in &mut ready.good {
            if let Some(primary) = self.known.get(&m.subject) {
                m.subject = primary.clone();
            }
        }
        // Measurements stored before under a reference this batch's Patients carry.
        let mut moved = Vec::new();
        for s in &ready.subjects {
            for alias in s.other_ids.iter().filter(|i| is_reference(i)) {
                if !self.relinked.insert(alias.clone()) {
                    continue;
                }
                let filter = healthanalyzer_store::Filter {
                    subject: Some(alias.clone()),
                    ..healthanalyzer_store::Filter::default()
                };
                let before = with_retry(options, source, on_event, || {
                    healthanalyzer_store::MeasurementStoreExt::query_all(
                        store,
                        &filter,
                        healthanalyzer_store::Order::Ascending,
                        1_000,
                    )
                })
                .await?;
                for mut m in before {
                    m.subject = s.id.clone();
                    moved.push(m);
                }
            }
        }
        let ids: std::collections::HashSet<_> = ready.good.iter().map(|m| m.id).collect();
        ready
            .good
            .extend(moved.into_iter().filter(|m| !ids.contains(&m.id)));
        Ok(())
    }
}

/// A pulled and validated batch, ready to store.
struct Ready {
    good: Vec<healthanalyzer_model::Measurement>,
    subjects: Vec<healthanalyzer_model::Subject>,
    rejected: Vec<Rejected>,
    pulled: usize,
    cursor: Cursor,
    exhausted: bool,
}

/// Pulls a batch (with retries) and validates and normalises its measurements.
async fn prepare(
    source: &dyn Source,
    cursor: &Cursor,
    size: usize,
    options: &SyncOptions,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Result<Ready, SyncFailure> {
    let id = source.id();
    let batch: Batch = options
        .retry
        .run(
            || source.pull(cursor, size),
            tokio::time::sleep,
            |attempt, e, wait| {
                on_event(Event::Retrying {
                    source: id.to_string(),
                    attempt,
                    reason: crate::error_chain(e),
                    wait,
                })
            },
        )
        .await
        .map_err(|e| SyncFailure::Pull(Arc::new(e)))?;
    let validator = Validator::new(options.catalog).identifiers(options.identifiers);
    let pulled = batch.measurements.len();
    let mut good = Vec::with_capacity(pulled);
    let mut rejected = batch.rejected;
    for m in batch.measurements {
        let location = format!("record {}", m.provenance.record_id);
        match validator.normalize(m) {
            Ok(m) => good.push(m),
            Err(e) => rejected.push(Rejected {
                location,
                reason: crate::error_chain(&e),
            }),
        }
    }
    Ok(Ready {
        good,
        subjects: batch.subjects,
        rejected,
        pulled,
        cursor: batch.cursor,
        exhausted: batch.exhausted,
    })
}
