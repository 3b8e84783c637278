//! HL7 FHIR R4 mapping of [Health Analyzer](https://github.com/os2health/health-analyzer):
//! Observations to and from measurements (work in progress: Patient, Device, Bundles, profiles
//! and the fhirbolt reference path follow).
//!
//! # Quick start
//!
//! ```
//! use healthanalyzer_fhir::{ReadOptions, read_observation, write_observation};
//! use healthanalyzer_model::Catalog;
//!
//! let json = r#"{"resourceType": "Observation", "id": "w1", "status": "final",
//!   "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
//!   "subject": {"reference": "Patient/p1"},
//!   "effectiveDateTime": "2024-03-31T08:15:00+02:00",
//!   "valueQuantity": {"value": 72.40, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}"#;
//! let options = ReadOptions { catalog: Catalog::builtin(), source_id: "clinic" };
//! let m = read_observation(json, &options, None)?;
//! assert_eq!(m.kind, "body-weight");
//! assert_eq!(m.value.as_quantity().unwrap().value.to_string(), "72.40");
//! // Written back, the resource is what came in.
//! let back = write_observation(&m, Catalog::builtin())?;
//! assert_eq!(back, serde_json::from_str::<serde_json::Value>(json)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod error;
mod observation;
mod patient;
mod raw;
mod strict;

pub use error::{Error, Result, operation_outcome};
pub use observation::{
    FHIR_JSON, MAX_RESOURCE_BYTES, REFERENCE_SYSTEM, ReadOptions, read_observation,
    write_observation,
};
pub use patient::{read_patient, write_patient};
pub use strict::check_strict;
