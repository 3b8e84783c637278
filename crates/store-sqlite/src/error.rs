//! Errors of opening a database, and the mapping of SQLite's errors to the store's portable kinds.

use std::path::PathBuf;

use healthanalyzer_store::Error as StoreError;
use rusqlite::ErrorCode;

/// Why a database could not be opened. Every variant except [`SqliteError::Open`] and
/// [`SqliteError::Migrate`] is found before anything is written: the file is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The URL is not a `sqlite:` URL this crate understands.
    #[error("invalid SQLite store URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// The file is not an SQLite database at all.
    #[error(
        "{path} is not an SQLite database (its header is not SQLite's); refusing to use it, the file was not changed"
    )]
    NotSqlite {
        /// The file.
        path: PathBuf,
    },
    /// The file is an SQLite database of another application.
    #[error(
        "{path} is an SQLite database of another application ({what}); refusing to use it, the file was not changed. Choose a new file for Health Analyzer"
    )]
    NotOurs {
        /// The file.
        path: PathBuf,
        /// What it holds instead (its application id or its tables).
        what: String,
    },
    /// The file is damaged.
    #[error(
        "{path} is corrupt ({detail}); the file was not changed. Restore it from a backup, or try `sqlite3 {path} .recover`"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The file was written by a newer Health Analyzer.
    #[error(
        "{path} has schema version {found}, newer than this build understands ({supported}); the file was not changed. Upgrade Health Analyzer"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// SQLite could not open or read the file (permissions, missing directory, locked).
    #[error("cannot open SQLite database {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The store's writer thread could not be started (the system is out of threads or memory).
    #[error("cannot start the SQLite store's writer thread")]
    Writer {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A schema migration failed; it was rolled back and the file keeps its previous version.
    #[error("migrating {path} to schema version {version} failed (rolled back)")]
    Migrate {
        /// The file.
        path: PathBuf,
        /// The version being applied.
        version: i64,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

impl From<SqliteError> for StoreError {
    fn from(e: SqliteError) -> Self {
        match e {
            SqliteError::Url { url, reason } => {
                StoreError::invalid("url", format!("{url}: {reason}"))
            }
            SqliteError::Open { ref source, .. } if is_busy(source) => StoreError::Unavailable {
                reason: e.to_string(),
                retryable: true,
                source: Some(Box::new(e)),
            },
            e => StoreError::Backend {
                backend: "sqlite",
                source: Box::new(e),
            },
        }
    }
}

fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        code(e),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

pub(crate) fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        code(e),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Maps an SQLite error met while serving a call to the store's portable kinds.
pub(crate) fn db(e: rusqlite::Error) -> StoreError {
    match code(&e) {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable {
            reason: "the database is locked by another writer and the busy timeout ran out".into(),
            retryable: true,
            source: Some(Box::new(e)),
        },
        Some(ErrorCode::DiskFull) => StoreError::Unavailable {
            reason: "the disk is full; free space, then retry".into(),
            retryable: true,
            source: Some(Box::new(e)),
        },
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            StoreError::Unavailable {
                reason: "the database file cannot be written (permissions or a read-only disk)"
                    .into(),
                retryable: false,
                source: Some(Box::new(e)),
            }
        }
        _ => StoreError::Backend {
            backend: "sqlite",
            source: Box::new(e),
        },
    }
}

/// A stored row that does not decode: the file was changed behind our back.
pub(crate) fn bad_row(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        backend: "sqlite",
        source: format!("a stored {what} does not decode ({e}); the database was changed outside Health Analyzer").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_prints_the_cause_once() {
        let e = SqliteError::Writer {
            source: std::io::Error::other("out of threads"),
        };
        let mut text = e.to_string();
        let mut next = std::error::Error::source(&e);
        while let Some(c) = next {
            text = format!("{text}: {c}");
            next = c.source();
        }
        assert_eq!(
            text,
            "cannot start the SQLite store's writer thread: out of threads"
        );
    }
}
