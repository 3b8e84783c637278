//! The crate's error type.

use std::fmt;

/// Result alias with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `healthanalyzer-model`.
///
/// Every variant names what was wrong and, where it helps, what would be accepted instead, so a
/// message can be shown to the person who supplied the input. No variant carries a measurement
/// value or a personal identifier in its `Display` output except where the caller passed it in
/// as the offending input (dates, units and decimals are not personal data on their own).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A date or date-time string could not be parsed.
    #[error(
        "invalid date/time {input:?}: {reason} (expected e.g. 2024-03-31, 2024-03-31T08:15:00+02:00 or 2024-03-31T06:15:00Z)"
    )]
    InvalidDateTime {
        /// The text that was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A decimal number could not be parsed or is out of the supported range.
    #[error("invalid decimal {input:?}: {reason}")]
    InvalidDecimal {
        /// The text that was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A code is not one of a closed set (a status, a data-absent reason, a gender).
    #[error("invalid {what} {code:?}; expected one of: {expected}")]
    InvalidCode {
        /// What the code is for.
        what: &'static str,
        /// The code that was given.
        code: String,
        /// The accepted codes.
        expected: &'static str,
    },
    /// A measurement kind id or code is not in the catalog.
    #[error(
        "unknown measurement kind {0:?}: add it to the catalog or map the code to a known kind"
    )]
    UnknownKind(String),
    /// A unit is not one the kind accepts.
    #[error("unit {unit:?} is not accepted for {kind}; accepted units: {accepted}")]
    UnknownUnit {
        /// The kind (or `kind.component`) the unit was given for.
        kind: String,
        /// The unit that was given.
        unit: String,
        /// The accepted UCUM codes, comma separated.
        accepted: String,
    },
    /// A conversion left the range of exact decimal arithmetic (about 28 significant digits).
    #[error("converting {value} {from} to {to} overflows exact decimal arithmetic")]
    Overflow {
        /// The value that was converted.
        value: String,
        /// The unit converted from.
        from: String,
        /// The unit converted to.
        to: String,
    },
    /// A catalog definition is inconsistent (the same coding for two kinds, a duplicate id, …).
    #[error("invalid catalog: {0}")]
    Catalog(String),
    /// An identifier in `system|value` form could not be read. The message never holds the
    /// value (it may be a national identification number).
    #[error("invalid identifier: {reason} (write system|value, |value or value)")]
    InvalidIdentifier {
        /// What is wrong.
        reason: &'static str,
    },
    /// A measurement failed validation; the list says every field that is wrong and why.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

/// What is wrong with one field of a measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ValidationIssue {
    /// The field, as a path into [`Measurement`](crate::Measurement), e.g. `value.systolic`.
    pub field: String,
    /// Why it is wrong.
    pub reason: String,
    /// The offending value as text, where showing it helps (never a personal identifier).
    pub value: Option<String>,
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)?;
        if let Some(v) = &self.value {
            write!(f, " (got {v})")?;
        }
        Ok(())
    }
}

/// One or more [`ValidationIssue`]s found in one measurement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ValidationErrors {
    /// The issues, in the order the fields were checked.
    pub issues: Vec<ValidationIssue>,
}

impl ValidationErrors {
    /// Adds an issue.
    pub fn push(
        &mut self,
        field: impl Into<String>,
        reason: impl Into<String>,
        value: Option<String>,
    ) {
        self.issues.push(ValidationIssue {
            field: field.into(),
            reason: reason.into(),
            value,
        });
    }

    /// True when no issue was found.
    pub fn is_empty(&self) -> bool {
        self.issues.is_empty()
    }

    /// `Ok(())` when empty, otherwise `Err(Error::Invalid(self))`.
    pub fn into_result(self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self))
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid measurement: ")?;
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}
