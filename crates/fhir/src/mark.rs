//! The payload mark ([`PayloadMark`]): when an Observation is read, a fingerprint of what the
//! measurement says and of the text it was read from; when it is written back, the same
//! fingerprint of the measurement as it is now. Equal, the kept payload still says what the
//! measurement says and is spliced in without being read again; different (or no mark: a
//! measurement from a store), the writer reads the payload again to find out, as before.
//!
//! The fingerprint covers what `same_content` and the subject comparison of the write-back
//! compare: kind, status, effective and issued times, device, context, subject and the value,
//! its decimals with their scale (`107.50` is not `107.5` here, although `Decimal`'s `==` says
//! so), and the payload text itself, so a payload replaced or edited in place is not taken
//! for the one that was read. It is a 64-bit non-cryptographic hash keyed per process: an
//! accidental match of a changed measurement has a chance of about 2^-64.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::OnceLock;

use healthanalyzer_model::{ComponentValue, Measurement, Observed, PayloadMark, Quantity, Value};

/// A word-at-a-time multiply-rotate hasher (FxHash's step), with a final avalanche.
struct Fold(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Fold {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(K);
    }
}

impl Hasher for Fold {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(w));
        self.add(bytes.len() as u64);
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // murmur3's fmix64.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The process's key: the fingerprints are never stored, so they need not be stable.
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
}

fn quantity(h: &mut Fold, q: &Quantity) {
    // `serialize` holds the scale and the sign: 107.50 and 107.5 differ.
    h.write(&q.value.serialize());
    h.write(q.unit.as_str().as_bytes());
}

fn observed(h: &mut Fold, o: &Observed) {
    quantity(h, &o.quantity);
    match &o.original {
        Some(q) => {
            h.write_u8(1);
            quantity(h, q);
        }
        None => h.write_u8(0),
    }
}

fn value(h: &mut Fold, v: &Value) {
    match v {
        Value::Quantity(o) => {
            h.write_u8(0);
            observed(h, o);
        }
        Value::Absent(r) => {
            h.write_u8(1);
            r.hash(h);
        }
        Value::Components(cs) => {
            h.write_u8(2);
            h.write_usize(cs.len());
            for c in cs {
                c.id.hash(h);
                match &c.value {
                    ComponentValue::Quantity(o) => {
                        h.write_u8(0);
                        observed(h, o);
                    }
                    ComponentValue::Absent(r) => {
                        h.write_u8(1);
                        r.hash(h);
                    }
                }
            }
        }
    }
}

/// The hasher after `m` and `payload`, before the last input (whether the payload has an `id`).
fn prefix(m: &Measurement, payload: &str) -> Fold {
    let mut h = Fold(seed());
    m.kind.hash(&mut h);
    m.status.hash(&mut h);
    m.effective.hash(&mut h);
    m.issued.hash(&mut h);
    m.device.hash(&mut h);
    m.context.hash(&mut h);
    m.subject.hash(&mut h);
    value(&mut h, &m.value);
    h.write(payload.as_bytes());
    h
}

fn finish(mut h: Fold, has_id: bool) -> u64 {
    h.write_u8(u8::from(has_id));
    h.finish()
}

/// The fingerprint of `m` over `payload`; `has_id` is whether the payload has a top-level
/// `id` (NDJSON needs one, so the writer learns it from the mark too).
pub(crate) fn fingerprint(m: &Measurement, payload: &str, has_id: bool) -> u64 {
    finish(prefix(m, payload), has_id)
}

/// Marks `m`'s payload as reading back as `m` (called by the reader, once `m` is made).
pub(crate) fn mark(m: &mut Measurement, has_id: bool) {
    let Some(p) = &m.provenance.payload else {
        return;
    };
    let f = fingerprint(m, &p.content, has_id);
    m.provenance.payload_mark = PayloadMark::new(f);
}

/// Whether `m`'s payload is marked as reading back as `m` as it is now: `Some(has_id)` when
/// it is (with whether the payload has an `id`), `None` when there is no mark or it differs.
pub(crate) fn unchanged(m: &Measurement) -> Option<bool> {
    let want = m.provenance.payload_mark.get()?;
    let p = m.provenance.payload.as_ref()?;
    let h = prefix(m, &p.content);
    [true, false]
        .into_iter()
        .find(|&has_id| finish(Fold(h.0), has_id) == want)
}
