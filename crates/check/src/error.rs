//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong before or around a run (a finding about the server under test is not an
/// error: it is a [`Finding`](crate::Finding) in the [`Run`](crate::Run)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scenario file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A scenario is not valid TOML or does not have the scenario format.
    #[error("scenario {origin}: {reason} (the format is described in docs/scenarios.md)")]
    Scenario {
        /// The file or built-in suite it came from.
        origin: String,
        /// What is wrong, with the line where the TOML parser knows it.
        reason: String,
    },
    /// An element path in a scenario cannot be parsed.
    #[error("element path `{path}`: {reason}")]
    Path {
        /// The path as written.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No built-in suite has that name.
    #[error("no built-in suite `{0}` (there are: vital-signs, errors, chain)")]
    UnknownSuite(String),
    /// Scenarios use variables that nothing sets.
    #[error("scenario {scenario} needs {}: pass --var NAME=VALUE", .names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))]
    UnsetVariables {
        /// The scenario.
        scenario: String,
        /// The variables.
        names: Vec<String>,
    },
    /// A `--var` argument is not `NAME=VALUE`.
    #[error("variable `{0}` is not NAME=VALUE")]
    BadVariable(String),
    /// The base URL is not an http(s) URL.
    #[error("base URL `{0}` must start with http:// or https://")]
    BaseUrl(String),
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// A report could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
