//! Documents: FHIR resources kept beside the measurements (a Provenance of a submission, a
//! Media, a QuestionnaireResponse), written in the same write sets, found by exact keys and by
//! the time span they cover.
//!
//! A store does not read a document's body: it keeps the JSON text as given and returns it byte
//! for byte. What a search needs is given beside it: the keys (exact-match strings such as
//! `"patient|Patient/123"`) and the time span.
//!
//! ```
//! use healthanalyzer_model::jiff::Timestamp;
//! use healthanalyzer_store::{Document, DocumentQuery, MemoryStore, Precondition, WriteSet, WriteSetStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let t: Timestamp = "2026-03-01T08:00:00Z".parse()?;
//! let provenance = Document::new("Provenance", "p1", r#"{"resourceType":"Provenance","id":"p1"}"#)
//!     .key("patient|Patient/42")
//!     .key("target|Observation/o1")
//!     .span(t, t);
//! let set = WriteSet::new().put_document(provenance.clone(), Precondition::Absent);
//! assert_eq!(store.apply(&set).await?.document_versions, vec![1]);
//!
//! let found = store
//!     .find_documents(&DocumentQuery::new("Provenance", 10).key("patient|Patient/42").period(Some(t), None))
//!     .await?;
//! assert_eq!(found[0].value, provenance);
//! // Created once: a second create of the same document fails and changes nothing.
//! assert!(store.apply(&set).await.unwrap_err().conflict().is_some());
//! # Ok(()) }
//! ```

use healthanalyzer_model::jiff::Timestamp;

use crate::error::{Error, Result};
use crate::writeset::Precondition;

/// A FHIR resource kept beside the measurements: a Provenance, Media or QuestionnaireResponse.
///
/// Keyed by `(resource_type, id)`. A store gives every field back exactly as written (the keys
/// in the same order, the body byte for byte).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Document {
    /// The FHIR resource type, e.g. `"Provenance"`.
    pub resource_type: String,
    /// Its logical id.
    pub id: String,
    /// Exact-match search keys, e.g. `"patient|<reference>"`, `"episode-of-care|<reference>"`,
    /// `"target|Observation/<id>"`; the store indexes them (a key given twice counts once).
    pub keys: Vec<String>,
    /// The start of the time span it covers (for a Provenance: the earliest effective time of
    /// the submitted resources), for period searches; `None` when it has none.
    ///
    /// With only one of `start` and `end` given, the span is that one instant.
    pub start: Option<Timestamp>,
    /// The end of the time span it covers (inclusive); `None` when it has none.
    pub end: Option<Timestamp>,
    /// The resource as JSON text (stored and read back byte for byte).
    pub body: String,
}

impl Document {
    /// A document without keys or span.
    pub fn new(
        resource_type: impl Into<String>,
        id: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self {
            resource_type: resource_type.into(),
            id: id.into(),
            keys: Vec::new(),
            start: None,
            end: None,
            body: body.into(),
        }
    }

    /// Adds a search key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Sets the time span (inclusive at both ends).
    pub fn span(mut self, start: Timestamp, end: Timestamp) -> Self {
        self.start = Some(start);
        self.end = Some(end);
        self
    }

    /// The span a search compares, `(start, end)`: one missing bound is the other one (an
    /// instant); `None` when the document has neither.
    pub fn effective_span(&self) -> Option<(Timestamp, Timestamp)> {
        match (self.start, self.end) {
            (None, None) => None,
            (Some(s), None) => Some((s, s)),
            (None, Some(e)) => Some((e, e)),
            (Some(s), Some(e)) => Some((s, e)),
        }
    }

    /// Checks what every store rejects before writing: an empty type or id, a start after the
    /// end, and NUL characters (which some databases cannot keep in text). `field` names the
    /// document in the message, e.g. `documents[2]`.
    pub fn check(&self, field: &str) -> Result<()> {
        let bad = |what: &str, reason: &str| Err(Error::invalid(format!("{field}.{what}"), reason));
        if self.resource_type.is_empty()
            || !self
                .resource_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        {
            return bad(
                "resource_type",
                "must be a FHIR resource type (letters and digits, e.g. Provenance); nothing was written",
            );
        }
        if self.id.is_empty() || self.id.contains('\0') {
            return bad(
                "id",
                "must be a non-empty logical id without NUL characters; nothing was written",
            );
        }
        if let Some(i) = self.keys.iter().position(|k| k.contains('\0')) {
            return bad(
                &format!("keys[{i}]"),
                "must not contain NUL characters; nothing was written",
            );
        }
        if self.body.contains('\0') {
            return bad(
                "body",
                "must not contain NUL characters (escape them in the JSON as \\u0000); nothing was written",
            );
        }
        if let (Some(s), Some(e)) = (self.start, self.end)
            && s > e
        {
            return bad(
                "start",
                "is after the end; give the span as start <= end; nothing was written",
            );
        }
        Ok(())
    }
}

/// A document to put, under a precondition (the same rules as for measurements: versions start
/// at 1 and go up by one on every write that changes the document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentWrite {
    /// The document (keyed by its type and id).
    pub document: Document,
    /// What must hold first.
    pub precondition: Precondition,
}

/// A search for documents of one type: by keys and by period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentQuery {
    /// The resource type, e.g. `"Provenance"`.
    pub resource_type: String,
    /// Documents carrying every one of these keys (none: every document of the type).
    pub keys: Vec<String>,
    /// Only documents whose span ends at or after this instant. A document without a span
    /// matches only when both `from` and `to` are `None`.
    pub from: Option<Timestamp>,
    /// Only documents whose span starts at or before this instant.
    pub to: Option<Timestamp>,
    /// At most this many documents.
    pub limit: usize,
}

impl DocumentQuery {
    /// Every document of `resource_type`, at most `limit`.
    pub fn new(resource_type: impl Into<String>, limit: usize) -> Self {
        Self {
            resource_type: resource_type.into(),
            keys: Vec::new(),
            from: None,
            to: None,
            limit,
        }
    }

    /// Adds a key every result must carry.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Only documents whose span overlaps `[from, to]` (each bound inclusive, each optional).
    pub fn period(mut self, from: Option<Timestamp>, to: Option<Timestamp>) -> Self {
        self.from = from;
        self.to = to;
        self
    }

    /// True when `doc` is a result of this query (limit aside).
    pub fn matches(&self, doc: &Document) -> bool {
        if doc.resource_type != self.resource_type
            || !self.keys.iter().all(|k| doc.keys.contains(k))
        {
            return false;
        }
        if self.from.is_none() && self.to.is_none() {
            return true;
        }
        let Some((start, end)) = doc.effective_span() else {
            return false;
        };
        self.from.is_none_or(|from| end >= from) && self.to.is_none_or(|to| start <= to)
    }

    /// The order of results: documents without a span first, then by the start of their span,
    /// then by id (byte order).
    pub fn sort_key(doc: &Document) -> (Option<Timestamp>, &str) {
        (doc.effective_span().map(|(s, _)| s), doc.id.as_str())
    }
}
