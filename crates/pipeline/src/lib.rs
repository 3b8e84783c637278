//! The wiring of [Health Analyzer](https://github.com/os2health/health-analyzer): what turns
//! configuration into running parts.
//!
//! - [`open_store`]: a store from a URL (`sqlite:health.db`, `postgres://…`, `memory:`).
//! - [`Config`]: `healthanalyzer.toml` (the store, `[[source]]` tables, rules, report
//!   settings), with `${NAME}` taken from the environment so secrets stay out of files, and
//!   unknown keys refused with the source and key named.
//! - [`Registry`]: connector kinds by name (`sim`, `files`, `fhir`, the device clouds of
//!   [`cloud`] with one source per citizen, and an embedder's own).
//! - [`sync`]: the engine. Sources pulled concurrently with a bound; every measurement
//!   validated and normalised; each batch written **with its cursor** in one transaction;
//!   retries with backoff; progress [`Event`]s; a [`StopFlag`] that finishes the batch in
//!   hand. Killed at any point, the next sync resumes from the last stored cursor, and nothing
//!   is stored twice.
//!
//! ```
//! use std::sync::Arc;
//! use healthanalyzer_pipeline::{Config, Outcome, Registry, StopFlag, SyncOptions, open_store, sync};
//! use healthanalyzer_store::Filter;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), healthanalyzer_pipeline::Error> {
//! let config = Config::parse(r#"
//!     [[source]]
//!     id = "ward"
//!     kind = "sim"
//!     patients = 2
//!     days = 3
//! "#)?;
//! let sources = Registry::builtin().build_all(&config)?;
//! let store = open_store("sqlite::memory:").await?;
//! let summaries = sync(store.clone(), &sources, &SyncOptions::default(), &StopFlag::new(), &|_| {}).await;
//! assert_eq!(summaries[0].outcome, Outcome::Complete);
//! assert_eq!(store.count(&Filter::default()).await?, summaries[0].inserted);
//! # Ok(()) }
//! ```
//!
//! # Opening a store
//!
//! ```
//! use healthanalyzer_pipeline::open_store;
//! use healthanalyzer_store::Filter;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), healthanalyzer_pipeline::Error> {
//! let store = open_store("sqlite::memory:").await?;
//! assert_eq!(store.count(&Filter::default()).await?, 0);
//! # Ok(()) }
//! ```
//!
//! # Store URLs
//!
//! | URL | Store | Feature |
//! |---|---|---|
//! | `memory:` | `healthanalyzer_store::MemoryStore` (nothing persists) | always |
//! | `sqlite:path/to.db`, `sqlite:///abs/path.db`, `sqlite::memory:` | `healthanalyzer_store_sqlite::SqliteStore` | `sqlite` (default) |
//! | `postgres://user@host:port/db`, `postgresql://…` | `healthanalyzer_store_postgres::PostgresStore` | `postgres` (default) |
//!
//! Each backend documents its own parameters; unknown parameters are an error.
//!
//! # Feature flags
//!
//! - `sqlite` (default): `sqlite:` URLs.
//! - `postgres` (default): `postgres://` URLs.

#![warn(missing_docs)]

mod config;
mod connectors;
mod export;
mod sync;
mod tasks;

pub use config::{
    BuildContext, Builder, CONFIG_FILE, Config, DEFAULT_STORE, Registry, ReportRequest,
    ReportSection, STORE_ENV, SourceSpec, SyncSection, time_zone,
};
pub use connectors::{
    FORMATS, cloud_source, file_source, file_source_id, find_cloud_source, format,
};
pub use export::{export_bundle, export_ndjson, push};
pub use healthanalyzer_source_cloud as cloud;
pub use sync::{
    Event, Outcome, SourceSummary, StopFlag, SyncFailure, SyncOptions, check_sources, sync,
};
pub use tasks::{
    DEMO_RULES, DemoOptions, DemoRun, PatientRow, demo, demo_source, patients, report, reset_cursor,
};

use std::sync::Arc;

use healthanalyzer_store::{MemoryStore, Store};

/// What can go wrong while wiring things up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL's scheme names no store this build has.
    #[error(
        "unknown store URL scheme in {scheme:?}: expected one of {known} (a scheme missing from that list was left out of this build by its cargo features)"
    )]
    UnknownScheme {
        /// The scheme as given (the rest of the URL is left out: it may hold a password).
        scheme: String,
        /// The schemes this build knows.
        known: String,
    },
    /// The configuration is wrong: the message says where and what to change.
    #[error("configuration: {0}")]
    Config(String),
    /// Output could not be written (a full disk, a closed pipe: see
    /// [`is_broken_pipe`](Self::is_broken_pipe)).
    #[error("{what}")]
    Output {
        /// What was being written.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A FHIR server refused what was pushed to it, or could not be reached.
    #[error("pushing to the FHIR server")]
    Push(#[source] healthanalyzer_source::Error),
    /// A measurement or patient had no FHIR form.
    #[error("writing FHIR")]
    Fhir(#[from] healthanalyzer_fhir::Error),
    /// A report could not be made.
    #[error(transparent)]
    Report(#[from] healthanalyzer_report::Error),
    /// The store failed to open or to answer.
    #[error(transparent)]
    Store(#[from] healthanalyzer_store::Error),
}

impl Error {
    /// True when output failed because its reader went away (`healthanalyzer … | head`): not
    /// a failure of the command.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// An error and its causes in one line, `error: cause: cause…`: what a user should read.
/// Health Analyzer's errors never repeat their cause in their own message, so each part is
/// printed once.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// The URL schemes [`open_store`] accepts in this build.
pub fn store_schemes() -> Vec<&'static str> {
    let mut s = vec!["memory:"];
    if cfg!(feature = "sqlite") {
        s.push("sqlite:");
    }
    if cfg!(feature = "postgres") {
        s.extend(["postgres://", "postgresql://"]);
    }
    s
}

/// Opens the store a URL names (see the table in the crate docs), creating and migrating its
/// schema as needed.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, Error> {
    if url == "memory:" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    #[cfg(feature = "sqlite")]
    if url.starts_with("sqlite:") {
        let store = healthanalyzer_store_sqlite::SqliteStore::open_url(url)
            .await
            .map_err(healthanalyzer_store::Error::from)?;
        return Ok(Arc::new(store));
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = healthanalyzer_store_postgres::PostgresStore::connect(url)
            .await
            .map_err(healthanalyzer_store::Error::from)?;
        return Ok(Arc::new(store));
    }
    let scheme = url.split_once(':').map_or(url, |(s, _)| s);
    Err(Error::UnknownScheme {
        scheme: scheme.chars().take(32).collect(),
        known: store_schemes().join(", "),
    })
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
