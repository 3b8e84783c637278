//! Schema 4's row encoding: the measurement's model JSON without its kept record (`body`), and
//! the kept record apart (`payload`), each packed: a tag byte, then the bytes as they are (tag 0:
//! short or incompressible) or zstd level 1 (tag 1). Unpacking gives back exactly the packed
//! bytes, so the original payload reads back byte for byte.
//!
//! There is no trained dictionary here (SQLite's codec has one, ADR 0008); see ADR 0015.

use std::cell::RefCell;

use healthanalyzer_model::{Measurement, Payload};
use healthanalyzer_store::{Error, Result};

use crate::error::bad_row;

/// Bytes stored as they are.
const RAW: u8 = 0;
/// zstd level 1, no dictionary.
const ZSTD: u8 = 1;
/// Shorter inputs stay raw: zstd's frame would eat the gain.
const MIN_PACK: usize = 64;

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// Packs `bytes` (tag byte first).
pub(crate) fn pack(bytes: &[u8]) -> Vec<u8> {
    let packed = if bytes.len() < MIN_PACK {
        None
    } else {
        COMPRESSOR.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_none() {
                *c = zstd::bulk::Compressor::new(1).ok();
            }
            // The frame records the content size, which `unpack` reads.
            c.as_mut()?.compress(bytes).ok()
        })
    };
    let mut out;
    match packed {
        Some(z) if z.len() + 1 < bytes.len() => {
            out = Vec::with_capacity(z.len() + 1);
            out.push(ZSTD);
            out.extend_from_slice(&z);
        }
        _ => {
            out = Vec::with_capacity(bytes.len() + 1);
            out.push(RAW);
            out.extend_from_slice(bytes);
        }
    }
    out
}

/// The bytes `packed` was made from.
pub(crate) fn unpack(packed: &[u8]) -> std::result::Result<Vec<u8>, String> {
    match packed.split_first() {
        Some((&RAW, rest)) => Ok(rest.to_vec()),
        Some((&ZSTD, rest)) => {
            let size = zstd::zstd_safe::get_frame_content_size(rest)
                .ok()
                .flatten()
                .ok_or("a packed value without its size")?;
            // A damaged size must not make us allocate without bound: values are rows.
            if size > 1 << 30 {
                return Err("a packed value claims more than 1 GiB".into());
            }
            zstd::bulk::decompress(rest, size as usize).map_err(|e| e.to_string())
        }
        Some((tag, _)) => Err(format!("unknown packing tag {tag}")),
        None => Err("an empty packed value".into()),
    }
}

/// A measurement's stored columns: the packed body, the kept record's media type and the
/// packed record.
pub(crate) struct Encoded {
    /// The model JSON without the kept record, packed.
    pub(crate) body: Vec<u8>,
    /// The kept record's media type.
    pub(crate) payload_type: Option<String>,
    /// The kept record, packed.
    pub(crate) payload: Option<Vec<u8>>,
}

/// Encodes `m` into its stored columns.
pub(crate) fn encode(m: &Measurement) -> Result<Encoded> {
    let bad =
        |e: serde_json::Error| Error::invalid("measurement", format!("cannot be encoded: {e}"));
    let (json, payload) = match &m.provenance.payload {
        None => (serde_json::to_vec(m).map_err(bad)?, None),
        Some(p) => {
            let mut bare = m.clone();
            bare.provenance.payload = None;
            (serde_json::to_vec(&bare).map_err(bad)?, Some(p))
        }
    };
    Ok(Encoded {
        body: pack(&json),
        payload_type: payload.map(|p| p.media_type.clone()),
        payload: payload.map(|p| pack(p.content.as_bytes())),
    })
}

/// Decodes stored columns back into the measurement.
pub(crate) fn decode(
    body: &[u8],
    payload_type: Option<&str>,
    payload: Option<&[u8]>,
) -> Result<Measurement> {
    let json = unpack(body).map_err(|e| bad_row("measurement", e))?;
    let mut m: Measurement =
        serde_json::from_slice(&json).map_err(|e| bad_row("measurement", e))?;
    if let Some(packed) = payload {
        let bytes = unpack(packed).map_err(|e| bad_row("measurement payload", e))?;
        let content = String::from_utf8(bytes).map_err(|e| bad_row("measurement payload", e))?;
        m.provenance.payload = Some(Payload {
            media_type: payload_type.unwrap_or_default().to_string(),
            content,
        });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_reads_back_exactly() {
        let fhir = r#"{"resourceType":"Observation","id":"x","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}"#.repeat(3);
        for bytes in [&b""[..], b"short", fhir.as_bytes(), &[0xff; 300][..]] {
            let p = pack(bytes);
            assert_eq!(unpack(&p).unwrap(), bytes);
        }
        assert_eq!(pack(fhir.as_bytes())[0], ZSTD);
        assert!(pack(fhir.as_bytes()).len() < fhir.len() / 3);
        assert_eq!(pack(b"short")[0], RAW);
    }

    #[test]
    fn damaged_values_are_errors() {
        assert!(unpack(&[]).is_err());
        assert!(unpack(&[7, 1, 2]).is_err());
        assert!(unpack(&[ZSTD, 1, 2, 3]).is_err());
        let mut p = pack("abc".repeat(100).as_bytes());
        p.truncate(p.len() - 2);
        assert!(unpack(&p).is_err());
    }
}
