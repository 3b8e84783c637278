//! This crate's error.

use std::path::PathBuf;
use std::time::Duration;

use healthanalyzer_source::BoxError;

/// What can go wrong with a device cloud: its authorisation, the token store, the
/// configuration, or the source itself.
///
/// Messages name the citizen by the name the configuration gives them and never quote a
/// token, a secret, an identifier or a measured value. Turned into a
/// [`healthanalyzer_source::Error`] (what a [`Source`](healthanalyzer_source::Source)
/// returns), a missing, revoked or expired grant is
/// [`Authorization`](healthanalyzer_source::Error::Authorization): not retried, and the other
/// citizens' syncs go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No grant is kept for the citizen: they have not been connected yet.
    #[error(
        "no {vendor} grant is kept for citizen {citizen} of source {source_id}: run `healthanalyzer connect {source_id} --subject {citizen}`"
    )]
    NotConnected {
        /// The vendor (`"Withings"`).
        vendor: &'static str,
        /// The source's id in the configuration.
        source_id: String,
        /// The citizen's name in the configuration.
        citizen: String,
    },
    /// The vendor refused the citizen's refresh token: the grant was revoked (by the citizen,
    /// in the vendor's app) or has expired.
    #[error(
        "the {vendor} grant of citizen {citizen} of source {source_id} was revoked or has expired: run `healthanalyzer connect {source_id} --subject {citizen}` again"
    )]
    GrantRevoked {
        /// The vendor.
        vendor: &'static str,
        /// The source's id in the configuration.
        source_id: String,
        /// The citizen's name in the configuration.
        citizen: String,
    },
    /// The vendor's token endpoint failed (not a refusal of the grant: those are
    /// [`Error::GrantRevoked`]).
    #[error("{vendor}'s token endpoint: {reason}")]
    TokenEndpoint {
        /// The vendor.
        vendor: &'static str,
        /// What happened, without the response body (it may hold tokens).
        reason: String,
        /// Whether trying again can help (a timeout, a 5xx, a rate limit).
        retryable: bool,
        /// The wait the vendor asked for.
        retry_after: Option<Duration>,
        /// The underlying error.
        #[source]
        cause: Option<BoxError>,
    },
    /// The authorisation in the browser did not complete (refused, timed out, an answer that
    /// is not the one asked for).
    #[error("authorisation: {0}")]
    Authorization(String),
    /// The token store cannot be read or written.
    #[error("the token store {path} {what}", path = path.display())]
    TokenStore {
        /// The file.
        path: PathBuf,
        /// What failed ("cannot be written").
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The token store holds something this version cannot read.
    #[error(
        "the token store {path}: {reason}; move it away and connect the citizens again",
        path = path.display()
    )]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, without quoting the file.
        reason: String,
    },
    /// The token file can be read by other users.
    #[error(
        "the token store {path} can be read by other users (mode {mode:o}): make it private with `chmod 600 {path}`",
        path = path.display()
    )]
    TokenFileMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A setting is missing or wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// The source failed (an API request, its data).
    #[error(transparent)]
    Source(#[from] healthanalyzer_source::Error),
}

impl From<Error> for healthanalyzer_source::Error {
    fn from(e: Error) -> Self {
        use healthanalyzer_source::Error as S;
        match e {
            Error::Source(s) => s,
            Error::NotConnected { .. } | Error::GrantRevoked { .. } => S::Authorization {
                reason: e.to_string(),
            },
            Error::TokenEndpoint {
                vendor,
                reason,
                retryable: true,
                retry_after,
                cause,
            } => S::Unavailable {
                reason: format!("{vendor}'s token endpoint: {reason}"),
                retry_after,
                cause,
            },
            Error::Config(reason) => S::Config(reason),
            other => S::Other {
                reason: "the device cloud's authorisation failed".into(),
                retryable: false,
                cause: Some(Box::new(other)),
            },
        }
    }
}
