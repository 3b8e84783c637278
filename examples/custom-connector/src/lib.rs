//! A connector for the (made-up) PulseBand wearable's JSON export: the whole of what a
//! hackathon team writes to bring a new source into Health Analyzer. See `docs/connectors.md`.

use async_trait::async_trait;
use healthanalyzer_model::{DateTime, Identifier, Measurement, Provenance, Value, parse_decimal};
use healthanalyzer_source::{Batch, Cursor, Error, Rejected, Source};
use serde::Deserialize;

#[derive(Deserialize)]
struct Export {
    user: String,
    readings: Vec<Reading>,
}

#[derive(Deserialize)]
struct Reading {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    value: Option<serde_json::Number>,
    at: String,
}

/// The PulseBand export as a source. The cursor is how many readings were delivered.
pub struct PulseBand {
    export: Export,
}

// By hand, so that logs show neither the user nor the readings.
impl std::fmt::Debug for PulseBand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulseBand")
            .field("readings", &self.export.readings.len())
            .finish_non_exhaustive()
    }
}

impl PulseBand {
    /// Reads an export file's text.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let export = serde_json::from_str(text).map_err(|e| Error::BadData {
            location: format!("line {}", e.line()),
            reason: format!("not a PulseBand export: {e}"),
        })?;
        Ok(PulseBand { export })
    }

    /// One reading as a measurement, or why it cannot be one (naming the field, not the value).
    fn measurement(&self, r: &Reading) -> Result<Measurement, String> {
        let (kind, unit) = match r.kind.as_str() {
            "hr" => ("heart-rate", "/min"),
            "spo2" => ("oxygen-saturation", "%"),
            "temp" => ("body-temperature", "Cel"),
            other => return Err(format!("unknown reading type {other:?}")),
        };
        let value = r.value.as_ref().ok_or("`value` is missing")?;
        let value = parse_decimal(&value.to_string()).map_err(|e| format!("`value`: {e}"))?;
        let at = DateTime::parse(&r.at).map_err(|e| format!("`at`: {e}"))?;
        Ok(Measurement::new(
            // The source id and the reading's own id make the measurement id: stable.
            Provenance::new(self.id(), r.id.as_str()),
            Identifier::new("urn:example:pulseband:user", self.export.user.as_str()),
            kind,
            Value::quantity(value, unit),
            at,
        ))
    }
}

#[async_trait]
impl Source for PulseBand {
    fn id(&self) -> &str {
        "pulseband"
    }

    fn kind(&self) -> &str {
        "pulseband-json"
    }

    async fn pull(&self, cursor: &Cursor, limit: usize) -> Result<Batch, Error> {
        let all = &self.export.readings;
        let from = match cursor.as_str() {
            "" => 0,
            text => text
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= all.len())
                .ok_or_else(|| Error::BadCursor {
                    reason: "expected a reading count".into(),
                })?,
        };
        let mut batch = Batch::default();
        // At most `limit` readings, good or bad; the bad ones are reported, not fatal.
        let to = from.saturating_add(limit.max(1)).min(all.len());
        for (i, r) in all[from..to].iter().enumerate() {
            match self.measurement(r) {
                Ok(m) => batch.measurements.push(m),
                Err(reason) => batch.rejected.push(Rejected {
                    location: format!("readings[{}] ({})", from + i, r.id),
                    reason,
                }),
            }
        }
        batch.cursor = Cursor::new(to.to_string());
        batch.exhausted = to == all.len();
        Ok(batch)
    }
}
