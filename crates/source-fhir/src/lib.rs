//! FHIR R4 server connector of [Health Analyzer](https://github.com/os2health/health-analyzer).
//!
//! - [`FhirSource`] reads Observations (vital signs by default) and the Patients they refer to
//!   from any FHIR R4 server, incrementally: each sync searches what was updated since the
//!   last (`_lastUpdated`), follows the server's `next` links page by page, and resumes on the
//!   page it stopped at.
//!   With [`Query::shape`] it reads a national chain's own shape instead ([`Shape`]):
//!   Denmark's FUT (`$search-measurements` by patient or episode of care and period), Norway's
//!   PMD (`POST Observation/_search` with `patient.identifier` in the form body, never in a
//!   URL) or the Netherlands' MedMij (searches with a patient-context token and no `patient`).
//! - [`FhirSink`] pushes measurements as `transaction` Bundles of conditional creates, so a
//!   push repeated creates nothing twice; under the exchange profiles in the chain's own upload
//!   shape: FUT's `$submit-measurement` (one submission per measurement time), a PMD
//!   `pmd-Bundle-Observation` batch, a MedMij batch with `Prefer: return=representation`.
//!   Entries the server refuses are reported one by one ([`PushSummary::refused`]).
//! - [`FhirClient`] is the connection both use: rustls, gzip, timeouts, bearer tokens or OAuth2
//!   client credentials (SMART backend services with a client secret), retries with backoff on
//!   timeouts, 429 and 5xx (honouring `Retry-After`), and errors that say whether retrying can
//!   help. Credentials are never sent to another host, whatever a `next` link says, error
//!   messages name URLs without their query (which may carry identifiers), and a response body
//!   is read up to a bound (`ServerConfig::body_limit`, 64 MiB by default). The generic parts
//!   are `healthanalyzer_source::http`'s.
//! - DPoP (RFC 9449): with a [`DpopKey`] in `ServerConfig::dpop`, tokens are sent as
//!   `Authorization: DPoP` with a fresh proof per request, answering `DPoP-Nonce` challenges.
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
//!
//! Norway's PMD read shape: one person by FNR, in the body of `POST Observation/_search`, and
//! a PMD batch out, whose refused entries are reported one by one:
//!
//! ```no_run
//! use healthanalyzer_fhir::{Profile, WriteOptions};
//! use healthanalyzer_model::Catalog;
//! use healthanalyzer_source::{Cursor, Source};
//! use healthanalyzer_source_fhir::{FhirClient, FhirSink, FhirSource, Query, ServerConfig, Shape};
//!
//! # async fn demo() -> Result<(), healthanalyzer_source::Error> {
//! let client = FhirClient::new(ServerConfig::new("http://127.0.0.1:8090/fhir"))?;
//! let query = Query {
//!     shape: Shape::Pmd,
//!     patient: Some("urn:oid:2.16.578.1.12.4.1.4.1|14038010086".into()),
//!     ..Query::default()
//! };
//! let source = FhirSource::new("pmd", client.clone(), query);
//! source.check_settings()?;
//! let batch = source.pull(&Cursor::start(), 500).await?;
//!
//! let sink = FhirSink::new(client, WriteOptions::new(Catalog::builtin()).with_profile(Profile::Pmd));
//! let summary = sink.push(&batch.subjects, &batch.measurements).await?;
//! for r in &summary.refused {
//!     println!("measurement {} refused ({}): {}", r.measurement, r.status, r.reason);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod chains;
mod client;
mod dpop;
mod sink;
mod source;

pub use chains::Shape;
pub use client::{Auth, FhirClient, ServerConfig};
pub use dpop::DpopKey;
pub use sink::{FhirSink, PushSummary, Refused};
pub use source::{FhirSource, Query};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
