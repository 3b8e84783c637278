//! The source error: what went wrong, and whether trying again can help.

use std::time::Duration;

/// A boxed error from a lower layer (an HTTP client, a parser), kept as the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong when pulling from a source.
///
/// [`Error::is_retryable`] tells a sync engine whether to try again (with
/// [`RetryPolicy`](crate::RetryPolicy)); messages name the source's part in it and never
/// repeat personal identifiers or measured values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source is unreachable or overloaded for now (a timeout, HTTP 429 or 5xx, a dropped
    /// connection). Retrying later can help; `retry_after` is the wait the source asked for.
    #[error("source temporarily unavailable: {reason}")]
    Unavailable {
        /// What happened.
        reason: String,
        /// How long the source asked us to wait (HTTP `Retry-After`), if it said.
        retry_after: Option<Duration>,
        /// The underlying error.
        #[source]
        cause: Option<BoxError>,
    },
    /// The credentials were refused or have expired (HTTP 401/403). Fix the configuration.
    #[error("access refused by the source: {reason}; check the credentials in the configuration")]
    Auth {
        /// What the source said.
        reason: String,
    },
    /// A person's authorisation at the source is missing, was revoked or has expired (a device
    /// cloud's OAuth2 grant): that person has to authorise again, as `reason` says. Retrying
    /// cannot help; the sync of other people's sources goes on.
    #[error("authorisation needed: {reason}")]
    Authorization {
        /// Whose authorisation (a name from the configuration, never an identifier or a
        /// token) and what to run to renew it.
        reason: String,
    },
    /// The cursor is not one this source wrote (or the data it pointed into is gone).
    #[error("cursor not understood: {reason}; reset the source's checkpoint to start over")]
    BadCursor {
        /// Why it was refused.
        reason: String,
    },
    /// The source's data cannot be read as it is (a malformed page, a file that is not the
    /// format it claims). A single bad record is not an error: it goes in
    /// [`Batch::rejected`](crate::Batch::rejected).
    #[error("unreadable data at {location}: {reason}")]
    BadData {
        /// Where (a URL without query, a file and line, a record number).
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// The source is configured wrongly (a missing setting, an unknown option).
    #[error("configuration: {0}")]
    Config(String),
    /// Anything else, with whether a retry can help.
    #[error("{reason}")]
    Other {
        /// What happened.
        reason: String,
        /// Whether trying again can help.
        retryable: bool,
        /// The underlying error.
        #[source]
        cause: Option<BoxError>,
    },
}

impl Error {
    /// A transient failure, with no wait asked for.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Error::Unavailable {
            reason: reason.into(),
            retry_after: None,
            cause: None,
        }
    }

    /// Whether trying the same pull again can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable { .. } => true,
            Error::Other { retryable, .. } => *retryable,
            Error::Auth { .. }
            | Error::Authorization { .. }
            | Error::BadCursor { .. }
            | Error::BadData { .. }
            | Error::Config(_) => false,
        }
    }

    /// The wait the source asked for before the next attempt (HTTP `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
