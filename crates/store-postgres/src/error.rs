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
    #[error("cannot connect to PostgreSQL: {source}")]
    Connect {
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
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
    #[error("migrating the PostgreSQL schema to version {version} failed (rolled back): {source}")]
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
        match e {
            PostgresError::Url { reason } => StoreError::invalid("url", reason),
            e @ (PostgresError::Connect { .. } | PostgresError::Pool { .. }) => {
                StoreError::Unavailable {
                    reason: e.to_string(),
                    retryable: true,
                    source: Some(Box::new(e)),
                }
            }
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
