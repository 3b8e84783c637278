//! HL7 FHIR R4 mapping of [Health Analyzer](https://github.com/os2health/health-analyzer):
//! Observations to and from measurements, Patients to and from subjects, Devices to and from
//! device references, Bundles (read any type, references between entries resolved; write
//! collection, conditional transaction and searchset) and NDJSON.
//!
//! - **Profiles** on output ([`Profile`]): the HL7 international vital signs (default), HL7
//!   Denmark's dk-core (with the PHD identifier for idempotent conditional create), Nictiz
//!   nl-core (zib 2020) and HL7 Norway's no-basis; and the national exchanges, Denmark's FUT
//!   (`ehealth-observation`, [`fut_submission`]) and Norway's PMD (VKP profiles,
//!   [`pmd_bundle`]), with their settings in [`National`]. `docs/fhir-profiles.md` in the
//!   repository lists what each adds.
//! - **Rules** of those national profiles and exchanges, checked on any FHIR JSON:
//!   [`rules`] (each broken rule a [`rules::Violation`] with its name and location).
//! - **Exact both ways**: decimals keep their digits (`107.50`), times their offset and
//!   precision; a resource read here keeps its original text, and writing the measurement back
//!   returns it unchanged unless the measurement changed.
//! - **Units**: a quantity in an accepted non-canonical unit (pounds, inches, Fahrenheit) is
//!   converted to the kind's canonical unit and the recorded quantity is kept.
//! - **Errors** name the element (`Observation.component[1].valueQuantity.value`) and convert to
//!   an `OperationOutcome`; bad input never panics.
//! - **Fast path**: the mapping reads the elements it needs with serde, borrowing from the
//!   input; [`check_strict`] holds a resource to fhirbolt's full R4 model. No fhirbolt type is
//!   part of this crate's API.
//! - **Strict at serde speed**: [`r4check`] walks the JSON once, guided by fhirbolt's generated
//!   R4 tables, and gives fhirbolt Strict's verdict without building its typed model; where it
//!   is not sure, fhirbolt decides.
//!
//! # A note for embedders
//!
//! This crate turns on serde_json's `arbitrary_precision`, `preserve_order` and `raw_value`
//! features (fhirbolt needs the first two, and exact decimals need them too). Cargo unifies
//! features, so in a build that includes this crate every `serde_json::Value` keeps numbers as
//! their text and objects in their order.
//!
//! # Reading a Bundle
//!
//! ```
//! use healthanalyzer_fhir::{ReadOptions, read_bundle};
//! use healthanalyzer_model::Catalog;
//!
//! let bundle = r#"{"resourceType": "Bundle", "type": "collection", "entry": [
//!   {"fullUrl": "urn:uuid:0b3f0c5e-0000-4000-8000-000000000001",
//!    "resource": {"resourceType": "Patient", "identifier": [
//!      {"system": "urn:oid:1.2.208.176.1.2", "value": "0101701234"}]}},
//!   {"resource": {"resourceType": "Observation", "id": "hr1", "status": "final",
//!    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
//!    "subject": {"reference": "urn:uuid:0b3f0c5e-0000-4000-8000-000000000001"},
//!    "effectiveDateTime": "2024-05-01T07:31:00+02:00",
//!    "valueQuantity": {"value": 64, "system": "http://unitsofmeasure.org", "code": "/min"}}}]}"#;
//! let options = ReadOptions::new(Catalog::builtin(), "clinic");
//! let contents = read_bundle(bundle, &options)?;
//! assert!(contents.errors.is_empty());
//! // The reference between entries resolved to the Patient's CPR number.
//! assert_eq!(contents.measurements[0].subject, contents.subjects[0].id);
//! # Ok::<(), healthanalyzer_fhir::Error>(())
//! ```
//!
//! # Writing a transaction
//!
//! Every entry is a conditional create (`ifNoneExist`), so sending the Bundle twice stores
//! nothing twice. Here the measurements read above go to a server following dk-core:
//!
//! ```
//! # use healthanalyzer_fhir::{ReadOptions, read_bundle};
//! # use healthanalyzer_model::Catalog;
//! # let bundle = r#"{"resourceType": "Bundle", "type": "collection", "entry": [
//! #   {"resource": {"resourceType": "Patient", "identifier": [
//! #      {"system": "urn:oid:1.2.208.176.1.2", "value": "0101701234"}]}},
//! #   {"resource": {"resourceType": "Observation", "id": "hr1", "status": "final",
//! #    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
//! #    "subject": {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101701234"}},
//! #    "effectiveDateTime": "2024-05-01T07:31:00+02:00",
//! #    "valueQuantity": {"value": 64, "system": "http://unitsofmeasure.org", "code": "/min"}}}]}"#;
//! # let contents = read_bundle(bundle, &ReadOptions::new(Catalog::builtin(), "clinic"))?;
//! use healthanalyzer_fhir::{BundleKind, Profile, WriteOptions, write_bundle};
//!
//! let options = WriteOptions::new(Catalog::builtin()).with_profile(Profile::DkCore);
//! let tx = write_bundle(
//!     BundleKind::Transaction,
//!     &contents.subjects,
//!     &contents.measurements,
//!     &options,
//! )?;
//! let entries = tx["entry"].as_array().map(Vec::len);
//! assert_eq!(entries, Some(2));
//! assert_eq!(tx["entry"][1]["request"]["ifNoneExist"].as_str().map(|q| q.starts_with("identifier=")), Some(true));
//! // POST it to the server's base URL with `Content-Type: application/fhir+json`.
//! # Ok::<(), healthanalyzer_fhir::Error>(())
//! ```
//!
//! # Reading and writing one Observation
//!
//! ```
//! use healthanalyzer_fhir::{ReadOptions, WriteOptions, read_observation, write_observation};
//! use healthanalyzer_model::Catalog;
//!
//! let json = r#"{"resourceType": "Observation", "id": "w1", "status": "final",
//!   "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
//!   "subject": {"reference": "Patient/p1"},
//!   "effectiveDateTime": "2024-03-31T08:15:00+02:00",
//!   "valueQuantity": {"value": 72.40, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}"#;
//! let options = ReadOptions::new(Catalog::builtin(), "clinic");
//! let m = read_observation(json, &options, None)?;
//! assert_eq!(m.kind, "body-weight");
//! assert_eq!(m.value.as_quantity().unwrap().value.to_string(), "72.40");
//! // Written back, the resource is what came in.
//! let back = write_observation(&m, &WriteOptions::new(Catalog::builtin()))?;
//! assert_eq!(back, serde_json::from_str::<serde_json::Value>(json)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod bundle;
mod device;
mod error;
mod mark;
mod observation;
mod patient;
mod profile;
pub mod r4check;
mod raw;
pub mod rules;
mod strict;
mod xml;

pub use bundle::{
    BundleKind, Contents, EntryError, MAX_BUNDLE_BYTES, read_bundle, read_ndjson, write_bundle,
    write_bundle_entries_text, write_bundle_text, write_ndjson,
};
pub use device::{read_device, write_device};
pub use error::{Error, Result, operation_outcome};
pub use observation::{
    FHIR_JSON, MAX_RESOURCE_BYTES, REFERENCE_SYSTEM, ReadOptions, Served, URI_SYSTEM, Validation,
    read_observation, write_observation, write_observation_text, write_served_observation_text,
};
pub use patient::{read_patient, write_patient};
pub use profile::{
    DEFAULT_SUBJECT_DISPLAY, EUI64_SYSTEM, FutContext, FutPerformer, FutSubject, National,
    PmdContext, Profile, WriteOptions, fut_submission, phd_identifier, pmd_bundle,
};
pub use strict::{check_strict, read_observation_strict};
pub use xml::{MAX_XML_DEPTH, json_to_xml, xml_to_json};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
