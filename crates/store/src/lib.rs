//! Storage traits of [Health Analyzer](https://github.com/os2health/health-analyzer).
//!
//! A store keeps measurements, each source's sync checkpoint, subjects' demographics and
//! [`Document`]s (FHIR resources kept beside the measurements, such as a submission's
//! Provenance). This crate is light (no database driver, no runtime): it holds the
//! [`MeasurementStore`], [`SubjectStore`] and [`WriteSetStore`] traits with their contracts ([`Store`] is all three;
//! a [`WriteSet`] commits records under preconditions, all or nothing), the query and page
//! types, an in-memory store ([`MemoryStore`]), and, behind the `testkit` feature, the
//! **conformance kit** that every implementation runs, ours (memory, SQLite, PostgreSQL) and
//! yours.
//!
//! # Quick start
//!
//! ```
//! use healthanalyzer_model::{DateTime, Identifier, Measurement, Provenance, Value, parse_decimal};
//! use healthanalyzer_store::{Checkpoint, Filter, MemoryStore, MeasurementStore, Query};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let m = Measurement::new(
//!     Provenance::new("scale", "r1"),
//!     Identifier::local("p1"),
//!     "body-weight",
//!     Value::quantity(parse_decimal("72.40")?, "kg"),
//!     DateTime::parse("2024-03-31T08:15:00+02:00")?,
//! );
//! // The batch and the source's cursor are stored together, or not at all.
//! store.write(&[m.clone()], Some(&Checkpoint::new("scale", "offset=1"))).await?;
//! // A replay changes nothing.
//! assert_eq!(store.write(&[m.clone()], None).await?.unchanged, 1);
//!
//! let page = store.query(&Query::new(Filter::subject(Identifier::local("p1")), 100)).await?;
//! assert_eq!(page.items, vec![m]);
//! # Ok(()) }
//! # fn main() { let _ = demo; }
//! ```
//!
//! # Write sets
//!
//! Everything a request or a sync batch writes goes into one [`WriteSet`], each record under a
//! [`Precondition`]; the store checks them inside its transaction, so they hold against every
//! other writer, and commits all of it or nothing:
//!
//! ```
//! use healthanalyzer_model::{DateTime, Identifier, Measurement, Provenance, Subject, Value, parse_decimal};
//! use healthanalyzer_store::{ConflictReason, MemoryStore, Precondition, WriteSet, WriteSetStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let who = Subject::new(Identifier::new("urn:oid:1.2.208.176.1.2", "0101709995"));
//! let m = Measurement::new(
//!     Provenance::new("scale", "r1"),
//!     who.id.clone(),
//!     "body-weight",
//!     Value::quantity(parse_decimal("72.40")?, "kg"),
//!     DateTime::parse("2024-03-31T08:15:00+02:00")?,
//! );
//! let create = WriteSet::new()
//!     .put_subject(who, Precondition::Absent)
//!     .put_measurement(m.clone(), Precondition::Absent);
//! let applied = store.apply(&create).await?;
//! assert_eq!(applied.measurement_versions, vec![1]);
//!
//! // An update at a version that is no longer current fails, naming the record; nothing changes.
//! let stale = WriteSet::new().put_measurement(m.clone(), Precondition::Version(7));
//! let err = store.apply(&stale).await.unwrap_err();
//! let conflict = err.conflict().expect("a precondition failure");
//! assert_eq!(conflict.reason, ConflictReason::Version { expected: 7, found: 1 });
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! - `testkit`: the `testkit` module, public `async fn`s taking `&dyn MeasurementStore`, plus
//!   `run_all`.
//!
//! # Implementing the trait
//!
//! Implement the eight required methods of [`MeasurementStore`], honouring the contract written
//! on the trait; conveniences come from [`MeasurementStoreExt`] for free. Then, in your tests:
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     let store = MyStore::open_temp().await.unwrap();
//!     healthanalyzer_store::testkit::run_all(&store).await;
//! }
//! ```

#![warn(missing_docs)]

mod document;
mod error;
mod memory;
mod query;
mod store;
mod subject;
#[cfg(feature = "testkit")]
pub mod testkit;
mod writeset;

pub use document::{Document, DocumentQuery, DocumentWrite};
pub use error::{BoxError, Error, Result};
pub use memory::MemoryStore;
pub use query::{Filter, Order, Page, PageToken, Query};
pub use store::{Checkpoint, MeasurementStore, MeasurementStoreExt, WriteSummary};
pub use subject::{Store, SubjectStore};

/// Helpers for writing a store backend: the stored form of keys and instants and the input
/// checks every backend makes, so two backends agree on them. An application using a store
/// needs none of them.
pub mod backend {
    pub use crate::query::{SortKey, split_instant};
    pub use crate::store::check_batch;
    pub use crate::subject::{check_subjects, identifier_key, parse_identifier_key};
}
pub use writeset::{
    Applied, Conflict, ConflictReason, Deletion, MeasurementWrite, Precondition, RecordKey,
    SubjectWrite, Versioned, WriteSet, WriteSetStore,
};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
