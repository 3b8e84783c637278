//! Observation: every measurement in the store is an Observation; Observations written through
//! the API become measurements, keeping the resource as sent as their provenance.
//!
//! - [`mapping`]: measurement to Observation and back;
//! - [`crud`]: create (also conditional), read, update, delete;
//! - [`search_params`]: the search parameters, parsed into a [`Spec`];
//! - [`search`]: a [`Spec`] run against the store, and `GET /Observation`.

mod crud;
mod mapping;
mod search;
mod search_params;

use healthanalyzer_model::Identifier;

pub(crate) use crud::{create, delete, get_versioned, read, update};
pub(crate) use mapping::{observation_json, to_measurement};
pub(crate) use search::{search, search_post};
pub(crate) use search_params::{SEARCH_PARAMS, Spec};

/// Patients created in the same transaction: `Patient/<id>` to their primary identifier.
pub(crate) type Pending = std::collections::HashMap<String, Identifier>;

/// The source id of measurements created through the API.
pub const API_SOURCE: &str = "fhir-api";

pub(crate) fn token_record(system: &str, value: &str) -> String {
    format!("identifier|{system}|{value}")
}
