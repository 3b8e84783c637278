//! FHIR R4 server connector of [Health Analyzer](https://github.com/os2health/health-analyzer).
//!
//! - [`FhirSource`] reads Observations (vital signs by default) and the Patients they refer to
//!   from any FHIR R4 server, incrementally: each sync searches what was updated since the
//!   last (`_lastUpdated`), follows the server's `next` links page by page, and resumes on the
//!   page it stopped at.
//! - [`FhirSink`] pushes measurements as `transaction` Bundles of conditional creates, so a
//!   push repeated creates nothing twice.
//! - [`FhirClient`] is the connection both use: rustls, gzip, timeouts, bearer tokens or OAuth2
//!   client credentials (SMART backend services with a client secret), retries with backoff on
//!   timeouts, 429 and 5xx (honouring `Retry-After`), and errors that say whether retrying can
//!   help. Credentials are never sent to another host, whatever a `next` link says, error
//!   messages name URLs without their query (which may carry identifiers), and a response body
//!   is read up to a bound (`ServerConfig::body_limit`, 64 MiB by default). The generic parts
//!   are `healthanalyzer_source::http`'s.
//!
//! ```no_run
//! use healthanalyzer_fhir::{Profile, WriteOptions};
//! use healthanalyzer_model::Catalog;
//! use healthanalyzer_source::{Cursor, Source};
//! use healthanalyzer_source_fhir::{FhirClient, FhirSink, FhirSource, Query, ServerConfig};
//!
//! # async fn demo() -> Result<(), healthanalyzer_source::Error> {
//! let client = FhirClient::new(ServerConfig::new("http://127.0.0.1:8090/fhir"))?;
//! let source = FhirSource::new("clinic", client.clone(), Query::default());
//! let batch = source.pull(&Cursor::start(), 500).await?;
//!
//! let sink = FhirSink::new(client, WriteOptions::new(Catalog::builtin()).with_profile(Profile::DkCore));
//! let summary = sink.push(&batch.subjects, &batch.measurements).await?;
//! println!("{} created, {} already there", summary.created, summary.existing);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod client;
mod sink;
mod source;

pub use client::{Auth, FhirClient, ServerConfig};
pub use sink::{FhirSink, PushSummary};
pub use source::{FhirSource, Query};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
