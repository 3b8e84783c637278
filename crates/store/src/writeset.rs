//! Write sets: subjects, measurements, documents, deletions and a checkpoint committed together,
//! or not at all, each record under its own precondition, checked inside the store's transaction.
//!
//! This is what makes many server and sync processes on one store safe (see
//! `docs/adr/0007-write-sets.md`): a version check or a "must not exist" is not a read in the
//! caller followed by a write, with a gap in between for another process, but part of the
//! commit.

use std::fmt;

use async_trait::async_trait;
use healthanalyzer_model::{Identifier, Measurement, MeasurementId, Subject};

use crate::document::{Document, DocumentQuery, DocumentWrite};
use crate::error::Result;
use crate::store::{Checkpoint, MeasurementStore, WriteSummary};
use crate::subject::{SubjectStore, identifier_key};

/// What must hold of a record, in the store at commit time, for its write to apply.
///
/// The third rule, "no other record carries this identifier", needs no variant: a subject's
/// identifiers are always unique in a store (a write giving one to a second subject fails with
/// [`ConflictReason::IdentifierTaken`]), and a measurement's id is derived from its identity
/// (model ADR 0002), so [`Precondition::Absent`] on the id derived from a business identifier
/// says "no measurement carries this identifier yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Precondition {
    /// None: an upsert (a put) or a delete of whatever is there.
    #[default]
    Any,
    /// The record must not exist (a create).
    Absent,
    /// The record must exist at exactly this version (an update with `If-Match`, or a
    /// read-modify-write).
    Version(u64),
}

impl Precondition {
    /// Checks the precondition against the stored version (`None`: the record is absent): a
    /// failure is [`Error::PreconditionFailed`](crate::Error::PreconditionFailed) naming `record`.
    pub fn check(self, record: &RecordKey, stored: Option<u64>) -> Result<()> {
        let reason = match (self, stored) {
            (Self::Any, _) | (Self::Absent, None) => return Ok(()),
            (Self::Version(v), Some(found)) if v == found => return Ok(()),
            (Self::Absent, Some(version)) => ConflictReason::Exists { version },
            (Self::Version(_), None) => ConflictReason::Missing,
            (Self::Version(expected), Some(found)) => ConflictReason::Version { expected, found },
        };
        Err(crate::Error::PreconditionFailed(Box::new(Conflict {
            record: record.clone(),
            reason,
        })))
    }
}

/// The record a write or a conflict is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    /// A measurement, by id.
    Measurement(MeasurementId),
    /// A subject, by primary identifier.
    Subject(Identifier),
    /// A document (a FHIR resource kept beside the measurements), by resource type and id.
    Document {
        /// The resource type, e.g. `"Provenance"`.
        resource_type: String,
        /// Its logical id.
        id: String,
    },
}

impl RecordKey {
    /// The key of a document.
    pub fn document(resource_type: impl Into<String>, id: impl Into<String>) -> Self {
        Self::Document {
            resource_type: resource_type.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Measurement(id) => write!(f, "measurement {id}"),
            // Identifiers of people are personal data: only their system and a redacted value.
            Self::Subject(id) => write!(f, "subject {}", id.redacted()),
            // A resource's type and logical id name no person.
            Self::Document { resource_type, id } => write!(f, "document {resource_type}/{id}"),
        }
    }
}

/// Why a write set was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictReason {
    /// [`Precondition::Absent`], but the record exists.
    Exists {
        /// Its stored version.
        version: u64,
    },
    /// [`Precondition::Version`], but the record does not exist.
    Missing,
    /// [`Precondition::Version`], but the record is at another version.
    Version {
        /// The version the write expected.
        expected: u64,
        /// The version stored.
        found: u64,
    },
    /// A subject would take an identifier that another stored subject holds.
    IdentifierTaken {
        /// The identifier.
        identifier: Identifier,
        /// The primary identifier of the subject that holds it.
        owner: Identifier,
    },
}

/// A failed precondition: which record, and why. Nothing of the write set was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The record whose precondition failed.
    pub record: RecordKey,
    /// Why.
    pub reason: ConflictReason,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = &self.record;
        match &self.reason {
            ConflictReason::Exists { version } => {
                write!(f, "{record} already exists (at version {version})")?
            }
            ConflictReason::Missing => write!(f, "{record} does not exist")?,
            ConflictReason::Version { expected, found } => write!(
                f,
                "{record} is at version {found}, not {expected}; read it again and retry"
            )?,
            ConflictReason::IdentifierTaken { identifier, .. } => write!(
                f,
                "{record}: identifier {} belongs to another stored subject",
                identifier.redacted()
            )?,
        }
        f.write_str("; nothing of the write set was written")
    }
}

impl std::error::Error for Conflict {}

/// A subject to put, under a precondition.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectWrite {
    /// The subject (keyed by its primary identifier).
    pub subject: Subject,
    /// What must hold first.
    pub precondition: Precondition,
}

/// A measurement to put, under a precondition.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementWrite {
    /// The measurement (keyed by its id).
    pub measurement: Measurement,
    /// What must hold first.
    pub precondition: Precondition,
}

/// A record to delete, under a precondition ([`Precondition::Any`]: whether or not it exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The record.
    pub record: RecordKey,
    /// What must hold first.
    pub precondition: Precondition,
}

/// Writes committed together or not at all.
///
/// Applied in this order, each precondition checked against the state the earlier ones left
/// (so a set may delete a record and create it anew): deletions, then subjects (their
/// identifiers checked together, as by [`SubjectStore::put_subjects`]), then measurements, then
/// documents, then the checkpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteSet {
    /// Records to delete.
    pub deletions: Vec<Deletion>,
    /// Subjects to put.
    pub subjects: Vec<SubjectWrite>,
    /// Measurements to put.
    pub measurements: Vec<MeasurementWrite>,
    /// Documents to put (after the measurements).
    pub documents: Vec<DocumentWrite>,
    /// The source position to save with the rest.
    pub checkpoint: Option<Checkpoint>,
}

impl WriteSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sync batch: measurements upserted with the source's new cursor (what
    /// [`MeasurementStore::write`] does).
    pub fn batch(batch: &[Measurement], checkpoint: Option<&Checkpoint>) -> Self {
        Self {
            measurements: batch
                .iter()
                .map(|m| MeasurementWrite {
                    measurement: m.clone(),
                    precondition: Precondition::Any,
                })
                .collect(),
            checkpoint: checkpoint.cloned(),
            ..Self::default()
        }
    }

    /// Subjects upserted (what [`SubjectStore::put_subjects`] does).
    pub fn subjects(subjects: &[Subject]) -> Self {
        Self {
            subjects: subjects
                .iter()
                .map(|s| SubjectWrite {
                    subject: s.clone(),
                    precondition: Precondition::Any,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Deletions of measurements, whether or not they exist (what
    /// [`MeasurementStore::delete`] does).
    pub fn delete_measurements(ids: &[MeasurementId]) -> Self {
        Self {
            deletions: ids
                .iter()
                .map(|id| Deletion {
                    record: RecordKey::Measurement(*id),
                    precondition: Precondition::Any,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Adds a subject.
    pub fn put_subject(mut self, subject: Subject, precondition: Precondition) -> Self {
        self.subjects.push(SubjectWrite {
            subject,
            precondition,
        });
        self
    }

    /// Adds a measurement.
    pub fn put_measurement(mut self, measurement: Measurement, precondition: Precondition) -> Self {
        self.measurements.push(MeasurementWrite {
            measurement,
            precondition,
        });
        self
    }

    /// Adds the deletion of a measurement.
    pub fn delete_measurement(mut self, id: MeasurementId, precondition: Precondition) -> Self {
        self.deletions.push(Deletion {
            record: RecordKey::Measurement(id),
            precondition,
        });
        self
    }

    /// Adds the deletion of a subject (by primary identifier; not its measurements).
    pub fn delete_subject(mut self, id: Identifier, precondition: Precondition) -> Self {
        self.deletions.push(Deletion {
            record: RecordKey::Subject(id),
            precondition,
        });
        self
    }

    /// Adds a document.
    pub fn put_document(mut self, document: Document, precondition: Precondition) -> Self {
        self.documents.push(DocumentWrite {
            document,
            precondition,
        });
        self
    }

    /// Adds the deletion of a document.
    pub fn delete_document(
        mut self,
        resource_type: impl Into<String>,
        id: impl Into<String>,
        precondition: Precondition,
    ) -> Self {
        self.deletions.push(Deletion {
            record: RecordKey::document(resource_type, id),
            precondition,
        });
        self
    }

    /// Sets the checkpoint.
    pub fn checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.checkpoint = Some(checkpoint);
        self
    }

    /// True when the set writes nothing.
    pub fn is_empty(&self) -> bool {
        self.deletions.is_empty()
            && self.subjects.is_empty()
            && self.measurements.is_empty()
            && self.documents.is_empty()
            && self.checkpoint.is_none()
    }

    /// Checks what every store rejects before touching its data: measurement ids that do not
    /// match their provenance, identifiers shared by two subjects of the set, and documents that
    /// [`Document::check`] refuses (also the type and id of a document's deletion).
    pub fn check(&self) -> Result<()> {
        for (i, w) in self.documents.iter().enumerate() {
            w.document.check(&format!("documents[{i}]"))?;
        }
        for (i, d) in self.deletions.iter().enumerate() {
            if let RecordKey::Document { resource_type, id } = &d.record {
                Document::new(resource_type.as_str(), id.as_str(), "")
                    .check(&format!("deletions[{i}]"))?;
            }
        }
        for (i, w) in self.measurements.iter().enumerate() {
            let m = &w.measurement;
            if m.id != m.provenance.measurement_id() {
                return Err(crate::Error::invalid(
                    format!("measurements[{i}].id"),
                    "does not match the id derived from provenance (source_id, record_id); nothing was written",
                ));
            }
        }
        let subjects: Vec<&Subject> = self.subjects.iter().map(|w| &w.subject).collect();
        crate::subject::check_subject_refs(&subjects)
    }
}

/// What a write set did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Subjects inserted, updated, unchanged.
    pub subjects: WriteSummary,
    /// Measurements inserted, updated, unchanged.
    pub measurements: WriteSummary,
    /// How many of the deletions found a record.
    pub deleted: u64,
    /// The version each subject write left, in the order of [`WriteSet::subjects`].
    pub subject_versions: Vec<u64>,
    /// The version each measurement write left, in the order of [`WriteSet::measurements`].
    pub measurement_versions: Vec<u64>,
    /// Documents inserted, updated, unchanged.
    pub documents: WriteSummary,
    /// The version each document write left, in the order of [`WriteSet::documents`].
    pub document_versions: Vec<u64>,
}

/// A record with the version the store keeps for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The record.
    pub value: T,
    /// Its version: 1 when first written, one more each time a write changes it.
    pub version: u64,
}

/// Atomic write sets with per-record preconditions, and versioned reads.
///
/// # Contract
/// - **All or nothing.** [`apply`](Self::apply) commits the whole set or nothing: a failed
///   precondition fails it with [`Error::PreconditionFailed`](crate::Error::PreconditionFailed),
///   naming the record, and nothing of the set is written.
/// - **Checked inside the commit.** Preconditions hold against every other writer, in this
///   process or another one on the same database: of concurrent writes expecting one version,
///   exactly one succeeds; of concurrent creates of one record (or of subjects sharing an
///   identifier), exactly one succeeds.
/// - **Versions are the store's.** A record is at version 1 when first written and one higher
///   after each write that changes it; a write of identical content leaves it. A deleted record
///   that is written again starts at 1.
/// - **Independent outcomes.** A store may commit concurrent sets together (group commit), but
///   one set's conflict never fails another set.
/// - **Cancel-safety.** Dropping an `apply` future commits all of the set or none of it; a set
///   whose caller is gone before the commit is not committed.
/// - The upserts of [`MeasurementStore::write`] and [`SubjectStore::put_subjects`] are write
///   sets with [`Precondition::Any`], and bump versions the same way.
/// - **Documents** are records like the others: the same preconditions, versions and atomicity
///   (a document is unchanged when every field of it is equal), read back exactly as written.
///
/// `testkit::run_write_set_checks` (feature `testkit`) checks all of this.
#[async_trait]
pub trait WriteSetStore: MeasurementStore + SubjectStore {
    /// Commits `set` atomically, checking each record's precondition inside the transaction.
    async fn apply(&self, set: &WriteSet) -> Result<Applied>;

    /// The measurement with that id, with its version.
    async fn get_versioned(&self, id: &MeasurementId) -> Result<Option<Versioned<Measurement>>>;

    /// The subject that has `id` among its identifiers, with its version.
    async fn subject_versioned(&self, id: &Identifier) -> Result<Option<Versioned<Subject>>>;

    /// The document of `resource_type` with logical id `id`, with its version.
    async fn document(&self, resource_type: &str, id: &str) -> Result<Option<Versioned<Document>>>;

    /// The documents that [`DocumentQuery::matches`], at most [`DocumentQuery::limit`], in the
    /// order of [`DocumentQuery::sort_key`]: those without a span first, then by the start of
    /// their span, then by id.
    async fn find_documents(&self, query: &DocumentQuery) -> Result<Vec<Versioned<Document>>>;

    /// One page of the subjects known only from their measurements: those of
    /// [`MeasurementStore::measured_subjects`] that no stored subject holds as its primary or other
    /// identifier (measurements that came without demographics, from a CSV file or the
    /// simulator). Keyset paging as [`SubjectStore::subjects_page`]: up to `limit`
    /// identifiers in the order of their keys ([`identifier_key`]), each sorting strictly after
    /// the key of `after` (from the first when `None`); a page shorter than `limit` is the
    /// last.
    ///
    /// With [`SubjectStore::subjects_page`] this lists every subject a store knows, each once
    /// and a page at a time: a FHIR server's Patients. The default filters
    /// [`MeasurementStore::measured_subjects`] (every measured subject in memory at once) and looks
    /// each candidate up with [`SubjectStore::subject`]; our backends answer with one query.
    async fn unrecorded_subjects_page(
        &self,
        after: Option<&Identifier>,
        limit: usize,
    ) -> Result<Vec<Identifier>> {
        let after = after.map(identifier_key);
        let mut measured: Vec<(String, Identifier)> = self
            .measured_subjects()
            .await?
            .into_iter()
            .map(|id| (identifier_key(&id), id))
            .filter(|(key, _)| after.as_ref().is_none_or(|a| key > a))
            .collect();
        measured.sort_by(|a, b| a.0.cmp(&b.0));
        let mut page = Vec::new();
        for (_, id) in measured {
            if page.len() >= limit {
                break;
            }
            if self.subject(&id).await?.is_none() {
                page.push(id);
            }
        }
        Ok(page)
    }
}
