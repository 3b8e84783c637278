//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong before or around a run (a finding about the server under test is not an
/// error: it is a [`Finding`](crate::Finding) in the [`Run`](crate::Run)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scenario file could not be read.
    #[error("cannot read scenario file {path}")]
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
    /// A TestScript is not valid JSON or FHIR XML, or not an R4 `TestScript`.
    #[error("TestScript {origin}: {reason}")]
    TestScript {
        /// The file it came from.
        origin: String,
        /// What is wrong, naming the element where it is known.
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
    #[error("no built-in suite `{0}` (there are: {list})", list = crate::suites::SUITES.join(", "))]
    UnknownSuite(String),
    /// Scenarios use variables that nothing sets.
    #[error("scenario {scenario} needs {}: pass --var NAME=VALUE", .names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))]
    UnsetVariables {
        /// The scenario.
        scenario: String,
        /// The variables.
        names: Vec<String>,
    },
    /// A `--var` argument is not `NAME=VALUE` (or its name is empty).
    #[error("variable `{0}` is not NAME=VALUE")]
    BadVariable(String),
    /// A `--header` argument is not `Name: value`, or not one HTTP can carry. The message says
    /// what is wrong and never quotes the value (it may be a token).
    #[error("header {0}: want \"Name: value\"")]
    BadHeader(String),
    /// A time limit (`--timeout-secs`) is not a positive number of seconds.
    #[error("time limit {0} s: want a positive number of seconds")]
    BadTimeout(f64),
    /// The base URL is not an http(s) URL.
    #[error("base URL `{0}` must start with http:// or https://")]
    BaseUrl(String),
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// A report could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// The message followed by its causes, each once, `: `-separated: what a command line
    /// prints (the [`Display`](std::fmt::Display) of an `Error` is its own message only).
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole chain of an error as an anyhow-style `{:#}` would print it.
    fn chain(e: &(dyn std::error::Error + 'static)) -> String {
        let mut parts = vec![e.to_string()];
        let mut cause = e.source();
        while let Some(c) = cause {
            parts.push(c.to_string());
            cause = c.source();
        }
        parts.join(": ")
    }

    #[test]
    fn a_cause_is_printed_once() {
        let cause = "disk on fire (os error 5)";
        for e in [
            Error::Read {
                path: "mine.toml".into(),
                source: std::io::Error::other(cause),
            },
            Error::Write {
                path: "junit.xml".into(),
                source: std::io::Error::other(cause),
            },
        ] {
            assert!(std::error::Error::source(&e).is_some(), "{e:?}");
            for text in [chain(&e), e.with_causes()] {
                assert_eq!(text.matches(cause).count(), 1, "{text}");
            }
            assert!(!e.to_string().contains(cause), "{e}");
        }
        let e = Error::Read {
            path: "mine.toml".into(),
            source: std::io::Error::other(cause),
        };
        assert_eq!(
            e.with_causes(),
            format!("cannot read scenario file mine.toml: {cause}")
        );
    }
}
