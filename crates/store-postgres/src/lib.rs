//! The PostgreSQL store of [Health Analyzer](https://github.com/os2health/health-analyzer): one
//! shared database for a municipality's servers and sync jobs.
//!
//! It implements [`MeasurementStore`](healthanalyzer_store::MeasurementStore) and
//! [`SubjectStore`](healthanalyzer_store::SubjectStore) and passes the conformance kit of
//! `healthanalyzer-store` against a real server.
//!
//! - **Bulk writes**: a batch is one `INSERT … SELECT FROM UNNEST($1::uuid[], …) ON CONFLICT`
//!   statement, not one insert per row, in the same transaction as the source's checkpoint.
//! - **A connection pool** (deadpool) shared by every clone of the store.
//! - **Keyed by subject**: every measurement table's key starts with the subject, so the schema
//!   can be distributed with Citus (`docs/postgres.md`).
//! - **Versioned schema**, migrated on connect under an advisory lock (replicas starting together
//!   migrate once); tables of the same name that are not ours are refused.
//!
//! # Quick start
//!
//! ```no_run
//! use healthanalyzer_store::{Filter, MeasurementStore};
//! use healthanalyzer_store_postgres::PostgresStore;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect("postgres://ha@db.example/health?pool_max_size=16").await?;
//! println!("{} measurements", store.count(&Filter::default()).await?);
//! # Ok(()) }
//! ```
//!
//! # URLs
//!
//! Any libpq-style `postgres://` or `postgresql://` URL that `tokio-postgres` accepts (host, port,
//! user, password, dbname, `options=-csearch_path%3Dmy_schema`, `connect_timeout`, …), plus
//! `pool_max_size` (default 16), `sslmode` and `sslrootcert`.
//!
//! # TLS
//!
//! Connections use TLS (rustls, ring) as libpq's `sslmode` says: `disable`, `prefer` (the
//! default: TLS when the server offers it, else plain), `require` (TLS, certificate not checked),
//! `verify-ca` (checked against the roots) and `verify-full` (also for the host name).
//! `sslrootcert=<PEM file>` gives the roots; without it `verify-ca` and `verify-full` use the
//! system's. See [`SslMode`], and [`TlsOptions`] with
//! [`PostgresStore::connect_with_tls`] to set them in code.
//!
//! ```no_run
//! # use healthanalyzer_store_postgres::PostgresStore;
//! # async fn demo() -> Result<(), healthanalyzer_store_postgres::PostgresError> {
//! let store = PostgresStore::connect(
//!     "postgres://ha@db.example/health?sslmode=verify-full&sslrootcert=/etc/health/db-ca.pem",
//! )
//! .await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod codec;
mod documents;
mod error;
mod schema;
mod store;
mod tls;
mod writer;

pub use error::PostgresError;
pub use schema::SCHEMA_VERSION;
pub use store::PostgresStore;
pub use tls::{RootCerts, SslMode, TlsOptions};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
