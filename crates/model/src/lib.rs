//! The health measurement model of [Health Analyzer](https://github.com/os2health/health-analyzer).
//!
//! Every connector, store, mapping and analysis in Health Analyzer speaks this model; other Rust
//! projects can depend on it alone. It has no I/O, no async and knows nothing of FHIR, SQL or HTTP.
//!
//! - [`Measurement`]: who ([`Identifier`]: CPR, BSN, FNR or a local id), what ([`KindId`]), the
//!   [`Value`] (a quantity, a panel's components, or a reason it is absent), when ([`Effective`],
//!   keeping the original UTC offset), [`Status`], device, [`Context`] and [`Provenance`].
//! - The [`Catalog`] of kinds, as data: LOINC, SNOMED CT, IEEE 11073 and NPU codings, units and
//!   plausible ranges; looked up by any coding in O(1).
//! - Exact [`Quantity`]s ([`Decimal`], never `f64`) and unit conversion with a documented rounding
//!   rule ([`Conversion`]).
//! - [`Validator`]: validation and normalisation with errors that name field, reason and value.
//! - Stable identity: [`MeasurementId::from_source`] (UUID v5 of source id and record id).
//!
//! # Quick start
//!
//! ```
//! use healthanalyzer_model::{
//!     Catalog, DateTime, Identifier, Measurement, Provenance, Quantity, Validator, Value,
//!     parse_decimal, systems,
//! };
//!
//! # fn main() -> Result<(), healthanalyzer_model::Error> {
//! // A weight of 185 lb, as a US scale reports it.
//! let m = Measurement::new(
//!     Provenance::new("scale-export", "row-1"),
//!     Identifier::cpr("0101901234"),
//!     "body-weight",
//!     Value::quantity(parse_decimal("185")?, "[lb_av]"),
//!     DateTime::parse("2024-03-31T08:15:00+02:00")?,
//! );
//!
//! // Look the kind up by its IEEE 11073 code, as a device would send it.
//! let kind = Catalog::builtin().lookup(systems::MDC, "188736").unwrap().kind();
//! assert_eq!(kind.id, "body-weight");
//!
//! // Normalise to the canonical unit; the recorded quantity is kept.
//! let m = Validator::new(Catalog::builtin()).normalize(m)?;
//! let Value::Quantity(observed) = &m.value else { unreachable!() };
//! assert_eq!(observed.quantity, Quantity::parse("83.91", "kg")?);
//! assert_eq!(observed.original, Some(Quantity::parse("185", "[lb_av]")?));
//!
//! // Importing the same record again yields the same id.
//! assert_eq!(m.id, Provenance::new("scale-export", "row-1").measurement_id());
//!
//! // The offset as written is kept.
//! assert_eq!(m.effective.start().to_string(), "2024-03-31T08:15:00+02:00");
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! - `serde` (default): `Serialize`/`Deserialize` for every public type. Decimals serialise as
//!   strings (`"107.50"`) so their scale survives any format; date-times as their text form.
//!
//! # Personal data
//!
//! [`Identifier`] and [`HumanName`] redact themselves in `Debug` output, so a measurement logged
//! by accident does not leak a CPR number. Error messages never contain identifier values.

#![warn(missing_docs)]

mod builtin;
mod catalog;
mod error;
mod identifier;
mod measurement;
mod quantity;
mod subject;
mod time;
mod validate;

pub use catalog::{
    Catalog, CodeMatch, Coding, ComponentDef, ComponentId, Constraint, KindDef, KindId, Range,
    UnitDef, ValueSpec,
};
pub use error::{Error, Result, ValidationErrors, ValidationIssue};
pub use identifier::{Identifier, NationalId, Redacted, systems};
pub use measurement::{
    AbsentReason, BodyPosition, BodySite, Component, ComponentValue, Context, CuffSize, DeviceRef,
    ID_NAMESPACE, MealRelation, Measurement, MeasurementId, Observed, Payload, PayloadMark,
    Provenance, Status, Value,
};
pub use quantity::{Conversion, Decimal, Quantity, UnitCode, parse_decimal, significant_digits};
pub use subject::{Gender, HumanName, Subject};
pub use time::{DateTime, Effective, Offset, Precision};
pub use validate::{IdentifierPolicy, Validator};

/// Re-export of the time crate the model uses, so callers can name its types at the same version.
pub use jiff;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
