//! Errors: the crate's own, and the HTTP error every handler answers with (an OperationOutcome).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What can go wrong while setting up or running the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be listened on.
    #[error("cannot listen on {addr} (is the address free and allowed?)")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection loop failed.
    #[error("server I/O")]
    Io(#[from] std::io::Error),
    /// The configuration is inconsistent.
    #[error("server configuration: {0}")]
    Config(String),
}

/// A FHIR error answer: an HTTP status and one OperationOutcome issue.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    /// The FHIR `IssueType` code (`invalid`, `not-found`, `conflict` …).
    pub(crate) code: &'static str,
    pub(crate) diagnostics: String,
    /// The element the issue is about (FHIRPath), if known.
    pub(crate) expression: Option<String>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        diagnostics: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    pub(crate) fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    pub(crate) fn bad_request(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", diagnostics)
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", what)
    }

    pub(crate) fn unprocessable(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "processing", diagnostics)
    }

    pub(crate) fn conflict(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", diagnostics)
    }

    /// A mapping error of the FHIR crate: structure problems (bad JSON, unknown elements,
    /// wrong types) are 400; a well-formed resource this server cannot accept is 422.
    pub(crate) fn from_fhir(e: &healthanalyzer_fhir::Error) -> Self {
        let status = match e {
            healthanalyzer_fhir::Error::Structure { .. } => StatusCode::BAD_REQUEST,
            healthanalyzer_fhir::Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, e.issue_code(), e.to_string()).at(e.path().to_string())
    }

    /// A store failure: conflicts are 409, a store that is down 503, the rest 500. The
    /// diagnostics name the kind of failure only (store messages may carry identifiers).
    pub(crate) fn from_store(e: &healthanalyzer_store::Error) -> Self {
        use healthanalyzer_store::Error as S;
        match e {
            S::Conflict { reason } => Self::conflict(reason.clone()),
            S::PreconditionFailed(c) => {
                use healthanalyzer_store::ConflictReason as R;
                match c.reason {
                    // Another writer got there first: the client reads again and retries.
                    R::Version { .. } | R::Missing => {
                        Self::new(StatusCode::PRECONDITION_FAILED, "conflict", e.to_string())
                    }
                    _ => Self::new(StatusCode::CONFLICT, "duplicate", e.to_string()),
                }
            }
            S::NotFound { .. } => Self::not_found(e.to_string()),
            S::Unavailable { .. } => {
                tracing::warn!(error = %e, "store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "transient",
                    "the store is unavailable; retry later",
                )
            }
            S::InvalidInput { .. } => Self::unprocessable(e.to_string()),
            _ => {
                tracing::error!(error = %e, "store failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "exception",
                    "the store failed; see the server log",
                )
            }
        }
    }

    /// The OperationOutcome body.
    pub(crate) fn outcome(&self) -> Value {
        let mut issue = json!({
            "severity": "error",
            "code": self.code,
            "diagnostics": self.diagnostics,
        });
        if let (Some(e), Some(o)) = (&self.expression, issue.as_object_mut()) {
            o.insert("expression".into(), json!([e]));
        }
        json!({ "resourceType": "OperationOutcome", "issue": [issue] })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::http::fhir_response(self.status, &self.outcome())
    }
}

/// The handlers' result.
pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;
