//! The strict reference path: fhirbolt's typed R4 model, in Strict mode.
//!
//! This is the one place fhirbolt's generic deserializer is instantiated (each instantiation
//! compiles the whole R4 model again). fhirbolt panics on some input (an empty array such as
//! `"performer": []`) and loops in its Lax and Compatibility modes on unknown fields holding
//! arrays of objects, so: Strict mode only, a size bound, and panics caught and turned into
//! errors.

use std::panic::{AssertUnwindSafe, catch_unwind};

use std::borrow::Cow;

use fhirbolt::model::r4::Resource;
use fhirbolt::model::r4::resources::{
    Observation, ObservationComponent, ObservationComponentValue, ObservationEffective,
    ObservationValue,
};
use fhirbolt::model::r4::types as fb;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use healthanalyzer_model::Measurement;
use serde::de::IgnoredAny;

use crate::error::{Error, Result};
use crate::observation::{MAX_RESOURCE_BYTES, ReadOptions, map_observation};
use crate::r4check::{self, Verdict, fast_check};
use crate::raw::{
    RawCoding, RawComponent, RawConcept, RawIdentifier, RawNumber, RawObservation, RawPeriod,
    RawQuantity, RawReference, Text,
};

/// Checks a resource against the full FHIR R4 model (every element known, of the right type and
/// cardinality), as fhirbolt's Strict mode sees it. The fast path maps only what it needs; this
/// is the reference it is held to.
///
/// One walk over the JSON guided by fhirbolt's generated R4 tables gives the verdict for the
/// common resource ([`r4check::fast_check`](crate::r4check::fast_check)); where that walk is not
/// sure, fhirbolt's typed model decides, so the verdict is always fhirbolt Strict's
/// (`docs/adr/0017-strict-check-at-serde-speed.md`). A refusal names the element where it can.
///
/// fhirbolt takes a single object where R4 wants an array (`"coding": {…}`); for the elements
/// an Observation's mapping reads, the fast path's own structure is checked as well, so that
/// every entry point (the server, `import`, `sync`, the checker) gives one verdict.
pub fn check_strict(json: &str) -> Result<()> {
    if json.len() <= MAX_RESOURCE_BYTES
        && let Verdict::Valid(t) = fast_check(json)
    {
        // The walk holds every element the mapping reads to its R4 shape (strings, arrays of
        // objects, objects) and refuses repeated keys: what the mapping's structure needs, so
        // it need not be parsed again here.
        debug_assert!(
            t != "Observation" || serde_json::from_str::<RawObservation<'_>>(json).is_ok(),
            "the walk accepted an Observation the mapping's structure refuses"
        );
        return Ok(());
    }
    if matches!(parse_named(json)?, Resource::Observation(_)) {
        serde_json::from_str::<RawObservation<'_>>(json)
            .map(drop)
            .map_err(|e| Error::structure("Observation", e.to_string()))
    } else {
        Ok(())
    }
}

/// fhirbolt's verdict alone (no fast walk, no mapping structure): the reference
/// [`r4check::fhirbolt_check`](crate::r4check::fhirbolt_check) exposes.
pub(crate) fn check_fhirbolt(json: &str) -> Result<()> {
    parse(json).map(drop)
}

/// [`parse`], a refusal named by the element the walk refused where fhirbolt's message names
/// the same element (fhirbolt's own messages carry no path).
fn parse_named(json: &str) -> Result<Resource> {
    parse(json).map_err(|e| match e {
        Error::Structure { path, reason } => {
            let named = r4check::refusal_path(json).filter(|p| {
                let last = p.rsplit('.').next().unwrap_or(p);
                let last = last.split('[').next().unwrap_or(last);
                reason.contains(&format!("`{last}`"))
            });
            Error::Structure {
                path: named.unwrap_or(path),
                reason,
            }
        }
        other => other,
    })
}

/// Reads an Observation through fhirbolt's full R4 model (Strict mode) instead of the fast
/// path: the whole resource is checked first, then mapped as [`read_observation`] maps it.
/// Several times slower; for input that should be held to the whole R4 model, and the
/// reference the fast path is tested against (for every input the fast path accepts and
/// fhirbolt reads, both give the same measurement).
///
/// [`read_observation`]: crate::read_observation
pub fn read_observation_strict(
    json: &str,
    options: &ReadOptions<'_>,
    record_id: Option<&str>,
) -> Result<Measurement> {
    let resource = parse(json)?;
    let Resource::Observation(o) = &resource else {
        return Err(Error::value(
            "resourceType",
            "expected Observation, found another resource type",
        ));
    };
    map_observation(&observation(o), json, options, record_id)
}

/// The one generic instantiation of fhirbolt's deserializer in the workspace.
fn parse(json: &str) -> Result<Resource> {
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
        fhirbolt::json::from_str::<Resource>(json, Some(config))
    }));
    match parsed {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(Error::structure("Resource", e.to_string())),
        Err(_) => Err(Error::structure(
            "Resource",
            "the FHIR parser failed on this input (an empty array or another construct FHIR forbids)",
        )),
    }
}

// fhirbolt's primitives (String, Uri, Code, DateTime, Instant, Decimal) each hold their text in
// `value`.
macro_rules! text {
    ($e:expr) => {
        $e.as_ref()
            .and_then(|p| p.value.as_deref())
            .map(Text::borrowed)
    };
}

fn coding(c: &fb::Coding) -> RawCoding<'_> {
    RawCoding {
        system: text!(c.system),
        code: text!(c.code),
        display: text!(c.display),
    }
}

fn concept(c: &fb::CodeableConcept) -> RawConcept<'_> {
    RawConcept {
        coding: (!c.coding.is_empty()).then(|| c.coding.iter().map(coding).collect()),
        text: text!(c.text),
    }
}

fn reference(r: &fb::Reference) -> RawReference<'_> {
    RawReference {
        reference: text!(r.reference),
        identifier: r.identifier.as_ref().map(|i| RawIdentifier {
            system: text!(i.system),
            value: text!(i.value),
        }),
        display: text!(r.display),
    }
}

fn quantity(q: &fb::Quantity) -> RawQuantity<'_> {
    RawQuantity {
        value: q
            .value
            .as_ref()
            .and_then(|d| d.value.as_deref())
            .map(|t| RawNumber(Cow::Borrowed(t))),
        unit: text!(q.unit),
        system: text!(q.system),
        code: text!(q.code),
        comparator: q.comparator.as_ref().map(|_| IgnoredAny),
    }
}

/// The `value[x]` fields of the fast path's view, from fhirbolt's choice.
macro_rules! values {
    ($raw:ident, $value:expr, $choice:ident) => {
        match $value {
            Some($choice::Quantity(q)) => $raw.value_quantity = Some(quantity(q)),
            Some($choice::CodeableConcept(_)) => $raw.value_codeable_concept = Some(IgnoredAny),
            Some($choice::String(_)) => $raw.value_string = Some(IgnoredAny),
            Some($choice::Boolean(_)) => $raw.value_boolean = Some(IgnoredAny),
            Some($choice::Integer(_)) => $raw.value_integer = Some(IgnoredAny),
            Some($choice::Range(_)) => $raw.value_range = Some(IgnoredAny),
            Some($choice::Ratio(_)) => $raw.value_ratio = Some(IgnoredAny),
            Some($choice::SampledData(_)) => $raw.value_sampled_data = Some(IgnoredAny),
            Some($choice::Time(_)) => $raw.value_time = Some(IgnoredAny),
            Some($choice::DateTime(_)) => $raw.value_date_time = Some(IgnoredAny),
            Some($choice::Period(_)) => $raw.value_period = Some(IgnoredAny),
            Some($choice::Invalid) | None => {}
        }
    };
}

fn component(c: &ObservationComponent) -> RawComponent<'_> {
    let mut raw = RawComponent {
        code: Some(concept(&c.code)),
        value_quantity: None,
        data_absent_reason: c.data_absent_reason.as_deref().map(concept),
        value_codeable_concept: None,
        value_string: None,
        value_boolean: None,
        value_integer: None,
        value_range: None,
        value_ratio: None,
        value_sampled_data: None,
        value_time: None,
        value_date_time: None,
        value_period: None,
    };
    values!(raw, &c.value, ObservationComponentValue);
    raw
}

fn observation(o: &Observation) -> RawObservation<'_> {
    let mut raw = RawObservation {
        resource_type: Cow::Borrowed("Observation"),
        id: text!(o.id),
        identifier: (!o.identifier.is_empty()).then(|| {
            o.identifier
                .iter()
                .map(|i| RawIdentifier {
                    system: text!(i.system),
                    value: text!(i.value),
                })
                .collect()
        }),
        status: o.status.value.as_deref().map(Text::borrowed),
        code: Some(concept(&o.code)),
        subject: o.subject.as_deref().map(reference),
        effective_date_time: None,
        effective_instant: None,
        effective_period: None,
        effective_timing: None,
        issued: text!(o.issued),
        value_quantity: None,
        data_absent_reason: o.data_absent_reason.as_deref().map(concept),
        body_site: o.body_site.as_deref().map(concept),
        method: o.method.as_deref().map(concept),
        device: o.device.as_deref().map(reference),
        component: (!o.component.is_empty()).then(|| o.component.iter().map(component).collect()),
        value_codeable_concept: None,
        value_string: None,
        value_boolean: None,
        value_integer: None,
        value_range: None,
        value_ratio: None,
        value_sampled_data: None,
        value_time: None,
        value_date_time: None,
        value_period: None,
    };
    match &o.effective {
        Some(ObservationEffective::DateTime(t)) => {
            raw.effective_date_time = t.value.as_deref().map(Text::borrowed);
        }
        Some(ObservationEffective::Instant(t)) => {
            raw.effective_instant = t.value.as_deref().map(Text::borrowed);
        }
        Some(ObservationEffective::Period(p)) => {
            raw.effective_period = Some(RawPeriod {
                start: text!(p.start),
                end: text!(p.end),
            });
        }
        Some(ObservationEffective::Timing(_)) => raw.effective_timing = Some(IgnoredAny),
        Some(ObservationEffective::Invalid) | None => {}
    }
    values!(raw, &o.value, ObservationValue);
    raw
}
