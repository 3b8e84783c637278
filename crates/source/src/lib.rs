//! The source (connector) trait of [Health Analyzer](https://github.com/os2health/health-analyzer).
//!
//! A [`Source`] is where measurements come from: a FHIR server, a folder of exports, a device
//! cloud, a simulator. The sync engine asks it for a [`Batch`] after a [`Cursor`], stores the
//! batch and the batch's cursor together, and asks again, until the source says it is
//! exhausted. A sync killed at any point resumes from the last stored cursor.
//!
//! This crate is light by default (no runtime, no HTTP client): the trait and its contract,
//! cursors and batches, an [`Error`] that says whether retrying can help, a [`RetryPolicy`]
//! (exponential backoff with full jitter, honouring `Retry-After`), a [`StaticSource`] for tests.
//! Two features add more:
//!
//! | feature | module | what |
//! |---|---|---|
//! | `testkit` | `testkit` | **the connector test kit** that every connector runs, ours and yours; and `testkit::mock`, a mock HTTP server to test an HTTP connector against |
//! | `http` | `http` | helpers for HTTP connectors: a reqwest client builder that works in any process (it installs the rustls crypto provider), HTTP statuses and transport failures to [`Error`], `Retry-After` in both forms, URLs redacted for messages, response bodies read up to a bound (64 MiB by default) |
//!
//! # Writing a connector
//!
//! ```
//! use async_trait::async_trait;
//! use healthanalyzer_model::{
//!     DateTime, Identifier, Measurement, Provenance, Value, parse_decimal,
//! };
//! use healthanalyzer_source::{Batch, Cursor, Error, Source};
//!
//! /// Readings of a made-up scale: (record id, patient, kg, time).
//! #[derive(Debug)]
//! struct Scale {
//!     readings: Vec<(&'static str, &'static str, &'static str, &'static str)>,
//! }
//!
//! #[async_trait]
//! impl Source for Scale {
//!     fn id(&self) -> &str { "acme-scale" }
//!     fn kind(&self) -> &str { "example" }
//!
//!     async fn pull(&self, cursor: &Cursor, limit: usize) -> Result<Batch, Error> {
//!         // The cursor is the number of readings already delivered.
//!         let from: usize = if cursor.is_start() { 0 } else {
//!             cursor.as_str().parse().map_err(|_| Error::BadCursor {
//!                 reason: "expected a count of readings".into(),
//!             })?
//!         };
//!         let mut batch = Batch::default();
//!         for (record, patient, kg, at) in self.readings.iter().skip(from).take(limit) {
//!             let value = parse_decimal(kg).map_err(|e| Error::BadData {
//!                 location: (*record).into(),
//!                 reason: e.to_string(),
//!             })?;
//!             let at = DateTime::parse(at).map_err(|e| Error::BadData {
//!                 location: (*record).into(),
//!                 reason: e.to_string(),
//!             })?;
//!             batch.measurements.push(Measurement::new(
//!                 // Source id + the record's own id: the measurement id is stable.
//!                 Provenance::new(self.id(), *record),
//!                 Identifier::local(*patient),
//!                 "body-weight",
//!                 Value::quantity(value, "kg"),
//!                 at,
//!             ));
//!         }
//!         let to = (from + batch.measurements.len()).min(self.readings.len());
//!         batch.cursor = Cursor::new(to.to_string());
//!         batch.exhausted = to == self.readings.len();
//!         Ok(batch)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let scale = Scale { readings: vec![
//!     ("r1", "p1", "72.4", "2024-03-31T08:15:00+02:00"),
//!     ("r2", "p1", "72.1", "2024-04-01T08:10:00+02:00"),
//! ]};
//! let first = scale.pull(&Cursor::start(), 1).await?;
//! assert_eq!(first.measurements.len(), 1);
//! let second = scale.pull(&first.cursor, 1).await?;
//! assert!(second.exhausted);
//! # Ok(()) }
//! ```
//!
//! Then prove it keeps the contract, in its tests (feature `testkit`):
//!
//! ```ignore
//! healthanalyzer_source::testkit::run_all(&scale, &Scale::new(), 1).await;
//! ```
//!
//! # An HTTP connector
//!
//! With the `http` feature, a connector of a web API maps what can go wrong the way the sync
//! engine expects (a 429 is retried after its `Retry-After`, a 401 says to check the
//! credentials, a response over the body limit is refused, not held):
//!
//! ```no_run
//! # #[cfg(feature = "http")]
//! # mod with_http {
//! use healthanalyzer_source::http::{self, reqwest};
//! use healthanalyzer_source::Error;
//!
//! /// GET `url` and its body as text, or the error the sync engine acts on.
//! pub async fn fetch(client: &reqwest::Client, url: reqwest::Url) -> Result<String, Error> {
//!     // The URL for messages: no user info, no token values.
//!     let location = http::redact(&url);
//!     let response = client
//!         .get(url)
//!         .send()
//!         .await
//!         .map_err(|e| http::transport_error(&location, e))?;
//!     http::success_text(response, http::DEFAULT_BODY_LIMIT, &location).await
//! }
//!
//! pub fn client() -> Result<reqwest::Client, Error> {
//!     // Installs the rustls crypto provider first: `reqwest::Client::builder().build()`
//!     // panics without one.
//!     http::client_builder()
//!         .build()
//!         .map_err(|e| Error::Config(format!("the HTTP client: {e}")))
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! `docs/connectors.md` in the repository walks through it step by step.

#![warn(missing_docs)]

mod batch;
mod error;
mod fixed;
#[cfg(feature = "http")]
pub mod http;
mod retry;
mod source;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use batch::{Batch, Cursor, Rejected};
pub use error::{BoxError, Error, Result};
pub use fixed::StaticSource;
pub use retry::RetryPolicy;
pub use source::Source;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
