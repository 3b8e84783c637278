//! Errors of connecting, and the mapping of PostgreSQL's errors to the store's portable kinds.

use healthanalyzer_store::Error as StoreError;
use tokio_postgres::error::SqlState;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The URL is not one this crate understands.
    #[error("invalid PostgreSQL store URL: {reason}")]
    Url {
        /// What is wrong and what would be accepted (the URL is not repeated: it may hold a
        /// password).
        reason: String,
    },
    /// The server could not be reached, or refused the login.
    #[error("cannot connect to PostgreSQL")]
    Connect {
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server's TLS certificate did not pass the check `sslmode` asks for (`verify-ca`,
    /// `verify-full`, or `require` with `sslrootcert`).
    #[error(
        "the PostgreSQL server's TLS certificate could not be verified (sslmode={mode}); check that sslrootcert holds the CA that signed it (and, with verify-full, that the certificate names the URL's host)"
    )]
    Certificate {
        /// The mode the connection was made with.
        mode: crate::SslMode,
        /// The driver's error (its chain holds rustls' reason).
        #[source]
        source: tokio_postgres::Error,
    },
    /// TLS cannot be set up: the root certificates cannot be read or used.
    #[error("cannot set up TLS for PostgreSQL: {reason}")]
    Tls {
        /// What is wrong, and what to give instead.
        reason: String,
    },
    /// No connection could be had from the pool.
    #[error("cannot get a PostgreSQL connection: {reason}")]
    Pool {
        /// Why.
        reason: String,
    },
    /// The database (schema) holds tables of the same names that are not ours.
    #[error(
        "the PostgreSQL schema holds a table {table:?} that Health Analyzer did not create; refusing to use it, nothing was changed. Use another database or set search_path (options=-csearch_path%3D...)"
    )]
    NotOurs {
        /// The table in the way.
        table: String,
    },
    /// The schema was created by a newer Health Analyzer.
    #[error(
        "the PostgreSQL schema has version {found}, newer than this build understands ({supported}); nothing was changed. Upgrade Health Analyzer"
    )]
    TooNew {
        /// Its version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// A schema migration failed; it was rolled back.
    #[error("migrating the PostgreSQL schema to version {version} failed (rolled back)")]
    Migrate {
        /// The version being applied.
        version: i64,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl From<PostgresError> for StoreError {
    fn from(e: PostgresError) -> Self {
        // `Unavailable` says what failed in `reason` and carries the driver's error (not `e`,
        // whose message is `reason`) as its source, so a `{:#}` chain shows each part once.
        let message = e.to_string();
        let unavailable =
            |retryable, source: Option<tokio_postgres::Error>| StoreError::Unavailable {
                reason: message,
                retryable,
                source: source.map(|s| Box::new(s) as healthanalyzer_store::BoxError),
            };
        match e {
            PostgresError::Url { reason } => StoreError::invalid("url", reason),
            PostgresError::Connect { source } => unavailable(true, Some(source)),
            PostgresError::Pool { .. } => unavailable(true, None),
            // Retrying cannot help: the configuration (or the server's certificate) must change.
            PostgresError::Certificate { source, .. } => unavailable(false, Some(source)),
            PostgresError::Tls { .. } => unavailable(false, None),
            e => StoreError::Backend {
                backend: "postgres",
                source: Box::new(e),
            },
        }
    }
}

/// Maps a driver error met while serving a call to the store's portable kinds.
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    let retry = |reason: &str, e: tokio_postgres::Error| StoreError::Unavailable {
        reason: reason.into(),
        retryable: true,
        source: Some(Box::new(e)),
    };
    if e.is_closed() {
        return retry("the connection to PostgreSQL was lost", e);
    }
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            retry("the write collided with a concurrent one", e)
        }
        Some(c)
            if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            retry("PostgreSQL is not accepting work right now", e)
        }
        Some(c) if *c == SqlState::DISK_FULL => retry("PostgreSQL's disk is full", e),
        None => retry("the PostgreSQL connection failed", e),
        _ => StoreError::Backend {
            backend: "postgres",
            source: Box::new(e),
        },
    }
}

pub(crate) fn pool(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db(e),
        e => StoreError::Unavailable {
            reason: format!("no PostgreSQL connection available: {e}"),
            retryable: true,
            source: None,
        },
    }
}

/// A stored row that does not decode: the database was changed behind our back.
pub(crate) fn bad_row(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        backend: "postgres",
        source: format!(
            "a stored {what} does not decode ({e}); the database was changed outside Health Analyzer"
        )
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    /// A real driver error with a cause of its own: "invalid connection string", caused by
    /// "invalid value for option `sslmode`".
    fn driver_error() -> tokio_postgres::Error {
        match "sslmode=bogus".parse::<tokio_postgres::Config>() {
            Err(e) => e,
            Ok(_) => panic!("tokio-postgres accepted sslmode=bogus"),
        }
    }

    /// Each error of the chain, top first, by its own message (what `{:#}` joins with ": ").
    fn links(e: &(dyn Error + 'static)) -> Vec<String> {
        let mut out = Vec::new();
        let mut next = Some(e);
        while let Some(err) = next {
            out.push(err.to_string());
            next = err.source();
        }
        out
    }

    /// Every cause's text appears exactly once in the whole chain.
    fn each_cause_once(e: &(dyn Error + 'static), depth: usize) {
        let links = links(e);
        let full = links.join(": ");
        assert_eq!(links.len(), depth, "{full}");
        for cause in &links[1..] {
            assert_eq!(
                full.matches(cause.as_str()).count(),
                1,
                "{cause:?} in {full:?}"
            );
        }
    }

    #[test]
    fn no_message_repeats_its_source() {
        let driver = links(&driver_error());
        assert_eq!(driver.len(), 2, "{driver:?}");
        let with_sources = || {
            [
                PostgresError::Connect {
                    source: driver_error(),
                },
                PostgresError::Certificate {
                    mode: crate::SslMode::VerifyFull,
                    source: driver_error(),
                },
                PostgresError::Migrate {
                    version: 3,
                    source: driver_error(),
                },
            ]
        };
        for e in with_sources() {
            each_cause_once(&e, 3);
            assert!(e.to_string().len() > 10, "{e}");
        }
        // As the store's portable error: Connect and Certificate become Unavailable with the
        // driver's error as the source; Migrate a Backend error with ours as the source.
        for (e, depth) in with_sources().into_iter().zip([3, 3, 4]) {
            let store = StoreError::from(e);
            each_cause_once(&store, depth);
        }
        each_cause_once(&db(driver_error()), 3);
        // Without a source, the reason is said once.
        for (e, reason) in [
            (
                PostgresError::Pool {
                    reason: "timed out".into(),
                },
                "timed out",
            ),
            (
                PostgresError::Tls {
                    reason: "sslrootcert x.pem holds no PEM certificate".into(),
                },
                "holds no PEM certificate",
            ),
        ] {
            let store = StoreError::from(e);
            let links = links(&store);
            assert_eq!(links.len(), 1, "{links:?}");
            assert_eq!(links[0].matches(reason).count(), 1, "{links:?}");
        }
    }

    #[test]
    fn certificate_and_tls_errors_are_not_retryable() {
        let cert = StoreError::from(PostgresError::Certificate {
            mode: crate::SslMode::VerifyCa,
            source: driver_error(),
        });
        assert!(!cert.is_retryable(), "{cert}");
        assert!(cert.to_string().contains("could not be verified"), "{cert}");
        let tls = StoreError::from(PostgresError::Tls {
            reason: "no roots".into(),
        });
        assert!(!tls.is_retryable(), "{tls}");
        let connect = StoreError::from(PostgresError::Connect {
            source: driver_error(),
        });
        assert!(connect.is_retryable(), "{connect}");
    }
}
