//! How rows keep their bytes (schema 4, ADR 0008): a measurement's body (its JSON without the
//! kept record) and its kept record are each stored as one tag byte and the bytes.
//!
//! - tag 0: the bytes as they are (short records, and records that do not compress);
//! - tag 1: zstd, level 1, with the dictionary `dictionary/records-v1.zdict` (trained on model
//!   JSON and FHIR Observations by the `train-dictionary` bench binary).
//!
//! A new dictionary needs a new tag: rows written with the old one still need it to be read.
//! Unpacking gives back exactly the bytes that were packed; provenance is never approximated.

use std::cell::RefCell;
use std::sync::OnceLock;

use zstd::dict::{DecoderDictionary, EncoderDictionary};

const RAW: u8 = 0;
const ZSTD_V1: u8 = 1;
const LEVEL: i32 = 1;
/// Shorter records are kept raw: the frame header would eat what compression saves.
const MIN_COMPRESSED: usize = 64;
/// The largest record unpacked (a guard against a corrupt frame header asking for more).
const MAX_RECORD: usize = 256 << 20;

static DICTIONARY: &[u8] = include_bytes!("../dictionary/records-v1.zdict");

fn encoder() -> &'static EncoderDictionary<'static> {
    static D: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    D.get_or_init(|| EncoderDictionary::copy(DICTIONARY, LEVEL))
}

fn decoder() -> &'static DecoderDictionary<'static> {
    static D: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    D.get_or_init(|| DecoderDictionary::copy(DICTIONARY))
}

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `bytes` packed: a tag byte, then the bytes raw or compressed, whichever is shorter.
pub(crate) fn pack(bytes: &[u8]) -> Vec<u8> {
    if bytes.len() >= MIN_COMPRESSED {
        let compressed = COMPRESSOR.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_none() {
                *c = zstd::bulk::Compressor::with_prepared_dictionary(encoder()).ok();
            }
            let c = c.as_mut()?;
            // zstd writes from the start of the buffer: the tag goes in front afterwards.
            let mut out = Vec::with_capacity(1 + zstd::zstd_safe::compress_bound(bytes.len()));
            c.compress_to_buffer(bytes, &mut out).ok()?;
            out.insert(0, ZSTD_V1);
            Some(out)
        });
        if let Some(out) = compressed
            && out.len() < bytes.len() + 1
        {
            return out;
        }
    }
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(RAW);
    out.extend_from_slice(bytes);
    out
}

/// The bytes that [`pack`] was given; an error names what is wrong with a damaged value.
pub(crate) fn unpack(packed: &[u8]) -> Result<Vec<u8>, String> {
    match packed.split_first() {
        Some((&RAW, rest)) => Ok(rest.to_vec()),
        Some((&ZSTD_V1, frame)) => {
            let size = match zstd::zstd_safe::get_frame_content_size(frame) {
                Ok(Some(n)) if n <= MAX_RECORD as u64 => n as usize,
                Ok(Some(n)) => return Err(format!("a compressed record claims {n} bytes")),
                Ok(None) | Err(_) => return Err("a compressed record has no valid frame".into()),
            };
            DECOMPRESSOR.with(|d| {
                let mut d = d.borrow_mut();
                if d.is_none() {
                    *d = Some(
                        zstd::bulk::Decompressor::with_prepared_dictionary(decoder())
                            .map_err(|e| format!("zstd: {e}"))?,
                    );
                }
                let Some(d) = d.as_mut() else {
                    return Err("zstd: no decompressor".into());
                };
                let mut out = Vec::with_capacity(size);
                d.decompress_to_buffer(frame, &mut out)
                    .map_err(|e| format!("a compressed record does not decompress: {e}"))?;
                if out.len() != size {
                    return Err("a compressed record is shorter than its frame says".into());
                }
                Ok(out)
            })
        }
        Some((tag, _)) => Err(format!(
            "record format {tag} is unknown to this build (written by a newer one?)"
        )),
        None => Err("an empty record".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_fhir_observation_shrinks_several_times() {
        let obs = r#"{"resourceType":"Observation","id":"bp-1","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/bp"]},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel with all children optional"}]},"subject":{"reference":"Patient/example"},"effectiveDateTime":"2026-03-01T08:30:00+01:00","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6","display":"Systolic blood pressure"}]},"valueQuantity":{"value":121,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4","display":"Diastolic blood pressure"}]},"valueQuantity":{"value":79,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}"#;
        let packed = pack(obs.as_bytes());
        assert_eq!(packed[0], ZSTD_V1);
        assert!(
            packed.len() * 3 < obs.len(),
            "{} bytes packed from {}",
            packed.len(),
            obs.len()
        );
        assert_eq!(unpack(&packed).expect("unpack"), obs.as_bytes());
    }

    #[test]
    fn short_and_incompressible_records_stay_raw() {
        assert_eq!(pack(b"x,1"), b"\0x,1");
        let noise: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let packed = pack(&noise);
        assert!(packed.len() <= noise.len() + 1);
        assert_eq!(unpack(&packed).expect("unpack"), noise);
    }

    #[test]
    fn damaged_values_are_errors() {
        assert!(unpack(b"").is_err());
        assert!(
            unpack(&[7, 1, 2])
                .expect_err("unknown tag")
                .contains("format 7")
        );
        assert!(unpack(&[ZSTD_V1, 1, 2, 3]).is_err());
        let mut packed = pack("the same words again and again, ".repeat(10).as_bytes());
        let n = packed.len();
        packed.truncate(n - 3);
        assert!(unpack(&packed).is_err());
    }

    proptest! {
        #[test]
        fn every_record_reads_back_exactly(bytes in proptest::collection::vec(any::<u8>(), 0..3000),
                                           text in "[ -~]{0,2000}") {
            prop_assert_eq!(unpack(&pack(&bytes)).expect("bytes"), bytes);
            prop_assert_eq!(unpack(&pack(text.as_bytes())).expect("text"), text.as_bytes());
        }

        #[test]
        fn any_value_unpacks_or_errs_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = unpack(&bytes);
            let mut tagged = vec![ZSTD_V1];
            tagged.extend_from_slice(&bytes);
            let _ = unpack(&tagged);
        }
    }
}
