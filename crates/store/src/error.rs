//! The crate's error type, with kinds portable across backends.

/// Result alias with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error from a backend driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a store. The variants are the same for every backend, so a caller can
/// act on them without knowing which database is behind the trait.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing asked for does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The write conflicts with itself (two subjects of one batch share an identifier).
    #[error("conflict: {reason}")]
    Conflict {
        /// Why.
        reason: String,
    },
    /// A precondition of a write set failed against the stored state (a version, "must not
    /// exist", an identifier another subject holds); nothing of the set was written.
    #[error("precondition failed: {0}")]
    PreconditionFailed(Box<crate::writeset::Conflict>),
    /// The store cannot be reached or is busy. Retry later when `retryable`.
    #[error("store unavailable ({}): {reason}", if *retryable { "retry later" } else { "check the configuration" })]
    Unavailable {
        /// Why.
        reason: String,
        /// Whether retrying the same call can succeed.
        retryable: bool,
        /// The driver's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The input was rejected; nothing was written.
    #[error("invalid input: {field}: {reason}")]
    InvalidInput {
        /// The field or parameter at fault.
        field: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// Any other backend failure.
    #[error("{backend} store error")]
    Backend {
        /// The backend (`sqlite`, `postgres`, …).
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// An [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The conflict, when this is [`Error::PreconditionFailed`].
    pub fn conflict(&self) -> Option<&crate::writeset::Conflict> {
        match self {
            Self::PreconditionFailed(c) => Some(c),
            _ => None,
        }
    }

    /// True when retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable {
                retryable: true,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message of the chain, joined as `{:#}` printers do.
    fn chain(e: &(dyn std::error::Error + 'static)) -> String {
        let mut text = e.to_string();
        let mut next = e.source();
        while let Some(c) = next {
            text = format!("{text}: {c}");
            next = c.source();
        }
        text
    }

    #[test]
    fn a_chain_prints_the_cause_once() {
        let e = Error::Backend {
            backend: "sqlite",
            source: "disk I/O error".into(),
        };
        assert_eq!(chain(&e), "sqlite store error: disk I/O error");
        let e = Error::Unavailable {
            reason: "database is locked".into(),
            retryable: true,
            source: Some("SQLITE_BUSY".into()),
        };
        let text = chain(&e);
        assert_eq!(text.matches("SQLITE_BUSY").count(), 1, "{text}");
    }
}
