//! The crate's error: where in the JSON, and why; convertible to a FHIR `OperationOutcome`.

use serde_json::{Value, json};

/// Result alias with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with a FHIR resource, or why it cannot be mapped. Every variant names the
/// place (a FHIRPath-like JSON path such as `Observation.component[1].valueQuantity.value`) and a
/// reason a person can act on; none repeats identifiers or measured values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not JSON, or JSON of the wrong shape (a string where an object belongs, …).
    #[error("{path}: {reason}")]
    Structure {
        /// Where.
        path: String,
        /// Why.
        reason: String,
    },
    /// A required element is missing.
    #[error("{path}: required but missing")]
    Required {
        /// Where.
        path: String,
    },
    /// An element has a value FHIR or this mapping does not accept.
    #[error("{path}: {reason}")]
    Value {
        /// Where.
        path: String,
        /// Why, and what would be accepted.
        reason: String,
    },
    /// Valid FHIR that this toolkit does not map (an Observation of a kind not in the catalog, a
    /// `valueString` where a quantity is expected).
    #[error("{path}: not supported: {reason}")]
    NotSupported {
        /// Where.
        path: String,
        /// What is not supported.
        reason: String,
    },
    /// The input is larger or deeper than the limits.
    #[error("{path}: too large: {reason}")]
    TooLarge {
        /// Where.
        path: String,
        /// Which limit.
        reason: String,
    },
}

impl Error {
    pub(crate) fn structure(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Structure {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn value(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Value {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn required(path: impl Into<String>) -> Self {
        Self::Required { path: path.into() }
    }

    pub(crate) fn unsupported(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::NotSupported {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The path of the offending element.
    pub fn path(&self) -> &str {
        match self {
            Self::Structure { path, .. }
            | Self::Required { path }
            | Self::Value { path, .. }
            | Self::NotSupported { path, .. }
            | Self::TooLarge { path, .. } => path,
        }
    }

    /// The FHIR `IssueType` code of this error.
    pub fn issue_code(&self) -> &'static str {
        match self {
            Self::Structure { .. } => "structure",
            Self::Required { .. } => "required",
            Self::Value { .. } => "value",
            Self::NotSupported { .. } => "not-supported",
            Self::TooLarge { .. } => "too-long",
        }
    }

    /// The error as a FHIR R4 `OperationOutcome` (severity `error`).
    pub fn to_operation_outcome(&self) -> Value {
        operation_outcome(std::slice::from_ref(self))
    }
}

/// Several errors as one `OperationOutcome`, one issue each.
pub fn operation_outcome(errors: &[Error]) -> Value {
    let issues: Vec<Value> = errors
        .iter()
        .map(|e| {
            json!({
                "severity": "error",
                "code": e.issue_code(),
                "diagnostics": e.to_string(),
                "expression": [e.path()],
            })
        })
        .collect();
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

/// Refuses a resource text over [`MAX_RESOURCE_BYTES`](crate::MAX_RESOURCE_BYTES).
pub(crate) fn check_size(json: &str, what: &str) -> Result<()> {
    let max = crate::MAX_RESOURCE_BYTES;
    if json.len() > max {
        return Err(Error::TooLarge {
            path: what.into(),
            reason: format!("{} bytes, more than the limit of {max}", json.len()),
        });
    }
    Ok(())
}

/// Refuses a resource of another type than `expected` (naming what was found, shortened).
pub(crate) fn expect_type(found: &str, expected: &str) -> Result<()> {
    if found == expected {
        return Ok(());
    }
    Err(Error::value(
        "resourceType",
        format!(
            "expected {expected}, found {}",
            found.chars().take(40).collect::<String>()
        ),
    ))
}
