//! The person measurements are about.

use std::fmt;

use crate::identifier::Identifier;
use crate::measurement::Payload;
use crate::measurement::code_enum;
use crate::time::DateTime;

code_enum!(
    /// Administrative gender (the FHIR administrative-gender codes).
    Gender, "gender" {
        /// Male.
        Male = "male",
        /// Female.
        Female = "female",
        /// Other.
        Other = "other",
        /// Unknown.
        Unknown = "unknown",
    }
);

/// A person's name. Personal data: its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct HumanName {
    /// Family name.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub family: Option<String>,
    /// Given names, in order.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Vec::is_empty"))]
    pub given: Vec<String>,
    /// The full name as text.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub text: Option<String>,
}

impl fmt::Debug for HumanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HumanName(<redacted>)")
    }
}

/// A subject (patient): identifiers and the little demographic data analysis and reports need.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Subject {
    /// The primary identifier: the one measurements refer to.
    pub id: Identifier,
    /// Other identifiers of the same person.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub other_ids: Vec<Identifier>,
    /// Name.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub name: Option<HumanName>,
    /// Administrative gender.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub gender: Option<Gender>,
    /// Birth date (a date of year, month or day precision).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub birth_date: Option<DateTime>,
    /// The IANA time zone the person lives in (`Europe/Copenhagen`), for daily analysis.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub time_zone: Option<String>,
    /// The record the subject was read from (a FHIR Patient, say), kept so that writing it back
    /// loses nothing the model does not hold.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub payload: Option<Payload>,
}

impl Subject {
    /// A subject with only an identifier.
    pub fn new(id: Identifier) -> Self {
        Self {
            id,
            other_ids: Vec::new(),
            name: None,
            gender: None,
            birth_date: None,
            time_zone: None,
            payload: None,
        }
    }
}
