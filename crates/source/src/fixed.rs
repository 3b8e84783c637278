//! A source over a list held in memory, for tests and examples.

use async_trait::async_trait;
use healthanalyzer_model::Measurement;

use crate::batch::{Batch, Cursor};
use crate::error::{Error, Result};
use crate::source::Source;

/// A source that serves a fixed list of measurements, in order. Its cursor is the position in
/// the list.
#[derive(Debug, Clone)]
pub struct StaticSource {
    id: String,
    items: Vec<Measurement>,
}

impl StaticSource {
    /// A source with id `id` serving `items`.
    pub fn new(id: impl Into<String>, items: Vec<Measurement>) -> Self {
        StaticSource {
            id: id.into(),
            items,
        }
    }

    fn position(&self, cursor: &Cursor) -> Result<usize> {
        if cursor.is_start() {
            return Ok(0);
        }
        let bad = |reason: &str| Error::BadCursor {
            reason: reason.to_string(),
        };
        let at: usize = cursor
            .as_str()
            .parse()
            .map_err(|_| bad("expected a position in the list"))?;
        if at > self.items.len() {
            return Err(bad("the position is past the end of the list"));
        }
        Ok(at)
    }
}

#[async_trait]
impl Source for StaticSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        "static"
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> Result<Batch> {
        let from = self.position(cursor)?;
        let to = from.saturating_add(limit.max(1)).min(self.items.len());
        Ok(Batch {
            measurements: self.items[from..to].to_vec(),
            cursor: Cursor::new(to.to_string()),
            exhausted: to == self.items.len(),
            ..Batch::default()
        })
    }
}
