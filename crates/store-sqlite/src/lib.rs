//! The embedded SQLite store of [Health Analyzer](https://github.com/os2health/health-analyzer):
//! measurements, sync checkpoints and subjects in one file, with no server to set up.
//!
//! It implements [`MeasurementStore`](healthanalyzer_store::MeasurementStore) and
//! [`SubjectStore`](healthanalyzer_store::SubjectStore) from `healthanalyzer-store` and passes
//! that crate's conformance kit. SQLite is compiled in (the `bundled` build of `rusqlite`).
//!
//! - **WAL** journal: one writer and many concurrent readers, also across processes (the CLI
//!   syncing while the server reads). Writes wait up to the busy timeout for another writer.
//! - **Atomic batches**: a batch and its source's checkpoint are one transaction, so a crash
//!   (even `SIGKILL`) leaves the batch with its checkpoint or neither.
//! - **Versioned schema**: a file of an older version migrates on open, one transaction per
//!   step. A file that is not ours, is corrupt, or is newer than this build is refused with a
//!   clear [`SqliteError`] and never modified.
//! - **Compact rows** (schema 4, ADR 0008): subjects and kinds as dictionary numbers, the kept
//!   original record apart from the body, both compressed with zstd and a dictionary trained on
//!   FHIR Observations. The original reads back byte for byte.
//! - **Off the executor**: every call runs on Tokio's blocking pool, so it needs a Tokio runtime.
//!
//! # Quick start
//!
//! ```
//! use healthanalyzer_model::{DateTime, Identifier, Measurement, Provenance, Value, parse_decimal};
//! use healthanalyzer_store::{Checkpoint, Filter, MeasurementStore, Query};
//! use healthanalyzer_store_sqlite::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("health.db");
//! let store = SqliteStore::open(&path).await?; // created and migrated when new
//! let m = Measurement::new(
//!     Provenance::new("scale", "r1"),
//!     Identifier::local("p1"),
//!     "body-weight",
//!     Value::quantity(parse_decimal("72.40")?, "kg"),
//!     DateTime::parse("2024-03-31T08:15:00+02:00")?,
//! );
//! store.write(&[m.clone()], Some(&Checkpoint::new("scale", "offset=1"))).await?;
//! let page = store.query(&Query::new(Filter::subject(Identifier::local("p1")), 100)).await?;
//! assert_eq!(page.items, vec![m]);
//! # Ok(()) }
//! ```
//!
//! # URLs
//!
//! [`SqliteStore::open_url`] takes `sqlite:path/to.db`, `sqlite://relative/path.db`,
//! `sqlite:///absolute/path.db` or `sqlite::memory:`, with optional parameters
//! `?busy_timeout_ms=5000&synchronous=full&readers=4&cache_mib=32` (see [`SqliteOptions`]). Unknown
//! parameters are an error.
//!
//! # Schema
//!
//! One row per measurement: the id, the subject key, the kind, the effective instant (seconds and
//! nanoseconds) as indexed columns, and the whole measurement as JSON, so it reads back exactly.
//! Indexes serve (subject, kind, time), (subject, time) and (time). Documents (schema 5: FHIR
//! resources kept beside the measurements, such as a submission's Provenance) have a row each
//! and a clustered key index on (type, key, start of span, id), so a search by keys and period
//! is one index range in result order. See the `schema` module source for the migrations.

#![warn(missing_docs)]

mod codec;
mod documents;
mod error;
mod rows;
mod schema;
mod store;
mod writer;

pub use error::SqliteError;
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use store::{SqliteOptions, SqliteStore, Synchronous};

#[doc(hidden)]
pub use store::{create_at_version, open_at_version};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
