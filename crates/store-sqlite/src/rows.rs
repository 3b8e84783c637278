//! Measurements and subjects as rows, and queries as SQL.

use std::ops::Bound;

use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::{Measurement, MeasurementId, Subject};
use healthanalyzer_store::backend::{SortKey, identifier_key, split_instant};
use healthanalyzer_store::{Filter, Order, Result};
use rusqlite::types::Value;

use crate::codec;
use crate::error::bad_row;

/// `(t_s, t_ns)` of an instant in nanoseconds (see [`split_instant`]).
pub(crate) fn split_nanos(nanos: i128) -> (i64, i64) {
    let (s, ns) = split_instant(nanos);
    (s, i64::from(ns))
}

pub(crate) fn id_bytes(id: &MeasurementId) -> [u8; 16] {
    id.as_uuid().as_u128().to_be_bytes()
}

/// The columns of a measurement, ready to bind (schema 4, ADR 0008). The subject and kind are
/// keys of the `series` and `kind_name` dictionaries; the writer turns them into their numbers.
pub(crate) struct Row {
    pub(crate) id: [u8; 16],
    pub(crate) subject: String,
    pub(crate) kind: String,
    pub(crate) t_s: i64,
    pub(crate) t_ns: i64,
    /// The measurement without its kept record, as JSON, packed ([`codec::pack`]).
    pub(crate) body: Vec<u8>,
    /// The kept record's media type.
    pub(crate) payload_type: Option<String>,
    /// The kept record, packed.
    pub(crate) payload: Option<Vec<u8>>,
}

impl Row {
    /// The row of `m`, whose kept record it takes (the write path needs only the row after
    /// this, and a batch's records are most of its memory).
    pub(crate) fn of(m: &mut Measurement) -> Result<Self> {
        let (t_s, t_ns) = split_nanos(m.effective.instant().as_nanosecond());
        let (body, payload_type, payload) = encode_parts(m)?;
        Ok(Self {
            id: id_bytes(&m.id),
            subject: identifier_key(&m.subject),
            kind: m.kind.as_str().to_string(),
            t_s,
            t_ns,
            body,
            payload_type,
            payload,
        })
    }
}

/// The `body`, `payload_type` and `payload` columns of a measurement.
pub(crate) type Parts = (Vec<u8>, Option<String>, Option<Vec<u8>>);

/// A measurement's body, payload type and payload columns; its payload is taken out.
pub(crate) fn encode_parts(m: &mut Measurement) -> Result<Parts> {
    let payload = m.provenance.payload.take();
    // The body without the kept record (often kilobytes, which JSON would escape).
    let body = serde_json::to_vec(&*m).map_err(|e| {
        healthanalyzer_store::Error::invalid("measurement", format!("cannot be encoded: {e}"))
    })?;
    let (payload_type, payload) = match payload {
        Some(p) => (Some(p.media_type), Some(codec::pack(p.content.as_bytes()))),
        None => (None, None),
    };
    Ok((codec::pack(&body), payload_type, payload))
}

/// A measurement from its body, payload type and payload columns.
pub(crate) fn decode(
    body: &[u8],
    payload_type: Option<String>,
    payload: Option<&[u8]>,
) -> Result<Measurement> {
    let body = codec::unpack(body).map_err(|e| bad_row("measurement", e))?;
    let mut m: Measurement =
        serde_json::from_slice(&body).map_err(|e| bad_row("measurement", e))?;
    if let (Some(media_type), Some(packed)) = (payload_type, payload) {
        let content = codec::unpack(packed).map_err(|e| bad_row("measurement payload", e))?;
        let content = String::from_utf8(content).map_err(|e| bad_row("measurement payload", e))?;
        m.provenance.payload = Some(healthanalyzer_model::Payload {
            media_type,
            content,
        });
    }
    Ok(m)
}

pub(crate) fn decode_subject(body: &str) -> Result<Subject> {
    serde_json::from_str(body).map_err(|e| bad_row("subject", e))
}

pub(crate) fn encode_subject(s: &Subject) -> Result<String> {
    serde_json::to_string(s).map_err(|e| {
        healthanalyzer_store::Error::invalid("subject", format!("cannot be encoded: {e}"))
    })
}

/// A `WHERE` clause with its parameters.
#[derive(Default)]
pub(crate) struct Where {
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
}

impl Where {
    fn and(&mut self, clause: &str) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(clause);
    }

    fn bound(&mut self, bound: Bound<Timestamp>, inclusive: &str, exclusive: &str) {
        let (t, op) = match bound {
            Bound::Included(t) => (t, inclusive),
            Bound::Excluded(t) => (t, exclusive),
            Bound::Unbounded => return,
        };
        let (s, ns) = split_nanos(t.as_nanosecond());
        self.and(&format!("(t_s, t_ns) {op} (?, ?)"));
        self.params.push(Value::Integer(s));
        self.params.push(Value::Integer(ns));
    }

    /// The filter's conditions.
    pub(crate) fn filter(f: &Filter) -> Self {
        let mut w = Self::default();
        if let Some(subject) = &f.subject {
            w.and("subject = (SELECT n FROM series WHERE key = ?)");
            w.params.push(Value::Text(identifier_key(subject)));
        }
        match f.kinds.len() {
            0 => {}
            1 => {
                w.and("kind = (SELECT n FROM kind_name WHERE name = ?)");
                w.params.push(Value::Text(f.kinds[0].as_str().into()));
            }
            n => {
                w.and(&format!(
                    "kind IN (SELECT n FROM kind_name WHERE name IN ({}))",
                    vec!["?"; n].join(", ")
                ));
                w.params
                    .extend(f.kinds.iter().map(|k| Value::Text(k.as_str().into())));
            }
        }
        w.bound(f.from, ">=", ">");
        w.bound(f.to, "<=", "<");
        w
    }

    /// Keyset continuation strictly after `key` in `order`.
    pub(crate) fn after(&mut self, order: Order, key: SortKey) {
        let (s, ns) = split_nanos(key.nanos);
        self.and(match order {
            Order::Ascending => "(t_s, t_ns, id) > (?, ?, ?)",
            Order::Descending => "(t_s, t_ns, id) < (?, ?, ?)",
        });
        self.params.push(Value::Integer(s));
        self.params.push(Value::Integer(ns));
        self.params.push(Value::Blob(key.id.to_be_bytes().to_vec()));
    }
}

pub(crate) fn order_by(order: Order) -> &'static str {
    match order {
        Order::Ascending => " ORDER BY t_s, t_ns, id",
        Order::Descending => " ORDER BY t_s DESC, t_ns DESC, id DESC",
    }
}
