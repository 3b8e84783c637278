//! Cursors and batches.

use std::fmt;

use healthanalyzer_model::{Measurement, Subject};

/// A position in a source, written by the source and opaque to everyone else: a `_lastUpdated`
/// instant, a file offset, a page link. The sync engine stores it with each batch and hands it
/// back on the next pull. The empty cursor is the start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cursor(String);

impl Cursor {
    /// The start of the source.
    pub fn start() -> Self {
        Cursor(String::new())
    }

    /// A cursor from its saved text.
    pub fn new(text: impl Into<String>) -> Self {
        Cursor(text.into())
    }

    /// Its text, to save.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is the start.
    pub fn is_start(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Cursor {
    fn from(s: String) -> Self {
        Cursor(s)
    }
}

impl From<&str> for Cursor {
    fn from(s: &str) -> Self {
        Cursor(s.to_string())
    }
}

/// A record the source could not turn into a measurement. It is reported and counted, and the
/// records around it are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Where it is: a record id, `file.csv:17`, `entry[3]`.
    pub location: String,
    /// Why, naming the field. It may quote the value (a plausibility check says what it
    /// got): it is the user's own data, reported back to them, so do not log reasons at info
    /// level.
    pub reason: String,
}

/// What one pull returns.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The measurements, at most the `limit` asked for.
    pub measurements: Vec<Measurement>,
    /// People the source described alongside (FHIR Patients, a file's header), to store with
    /// the measurements.
    pub subjects: Vec<Subject>,
    /// Records that could not be read.
    pub rejected: Vec<Rejected>,
    /// The cursor to save once this batch is stored; the next pull starts from it.
    pub cursor: Cursor,
    /// Whether the source has nothing more for now. An exhausted source pulled again from
    /// its cursor returns an empty, exhausted batch until it has new data.
    pub exhausted: bool,
}

impl Batch {
    /// An empty batch that ends the source at `cursor`.
    pub fn done(cursor: Cursor) -> Self {
        Batch {
            cursor,
            exhausted: true,
            ..Batch::default()
        }
    }
}
