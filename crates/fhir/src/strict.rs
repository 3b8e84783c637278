//! The strict reference path: fhirbolt's typed R4 model, in Strict mode.
//!
//! This is the one place fhirbolt's generic deserializer is instantiated (each instantiation
//! compiles the whole R4 model again). fhirbolt panics on some input (an empty array such as
//! `"performer": []`) and loops in its Lax and Compatibility modes on unknown fields holding
//! arrays of objects, so: Strict mode only, a size bound, and panics caught and turned into
//! errors.

use std::panic::{AssertUnwindSafe, catch_unwind};

use fhirbolt::serde::{DeserializationConfig, DeserializationMode};

use crate::error::{Error, Result};
use crate::observation::MAX_RESOURCE_BYTES;

/// Checks a resource against the full FHIR R4 model (every element known, of the right type and
/// cardinality), as fhirbolt's Strict mode sees it. The fast path maps only what it needs; this
/// is the reference it is held to.
pub fn check_strict(json: &str) -> Result<()> {
    if json.len() > MAX_RESOURCE_BYTES {
        return Err(Error::TooLarge {
            path: "Resource".into(),
            reason: format!(
                "{} bytes, more than the limit of {MAX_RESOURCE_BYTES}",
                json.len()
            ),
        });
    }
    let config = DeserializationConfig {
        mode: DeserializationMode::Strict,
    };
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        fhirbolt::json::from_str::<fhirbolt::model::r4::Resource>(json, Some(config)).map(drop)
    }));
    match parsed {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::structure("Resource", e.to_string())),
        Err(_) => Err(Error::structure(
            "Resource",
            "the FHIR parser failed on this input (an empty array or another construct FHIR forbids)",
        )),
    }
}
