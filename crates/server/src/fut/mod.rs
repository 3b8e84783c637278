//! Denmark's FUT (eHealth Infrastructure) measurement exchange: `$submit-measurement`,
//! `$search-measurements` and `$search-measurements-bundle-limit`, the OperationDefinitions
//! this server serves for them, and reads of the documents a submission keeps beside the
//! measurements (Provenance, Media, QuestionnaireResponse).
//!
//! - [`submit`]: a submission checked (`healthanalyzer_fhir::rules::check_fut_submission`),
//!   its Observations turned into measurements, the rest kept as documents, and one
//!   Provenance recorded by the server, all in one write set;
//! - [`search`]: the submissions of a patient or an episode of care in a period, each as a
//!   collection Bundle;
//! - [`definitions`]: the OperationDefinition resources;
//! - [`read`]: `GET Provenance/{id}`, `Media/{id}`, `QuestionnaireResponse/{id}`.

mod definitions;
mod read;
mod search;
mod submit;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

pub(crate) use definitions::{OPERATIONS, operation_definition, read_definition};
pub(crate) use read::read_document;
pub(crate) use search::{search_measurements, search_measurements_bundle_limit};
pub(crate) use submit::submit_measurement;

use crate::auth::Access;
use crate::error::ApiError;

/// The workflow extension that names an eHealth resource's EpisodeOfCare.
pub(crate) const EPISODE_OF_CARE_EXTENSION: &str =
    "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare";
/// The policy of the Provenance the server records for a submission (FUT's
/// `ehealth-provenance-policies`: "Coherent submitted measurement").
pub(crate) const SUBMISSION_POLICY: &str =
    "http://ehealth.sundhed.dk/policy/ehealth/coherent-submitted-measurement";
/// FUT's Provenance profile.
pub(crate) const PROVENANCE_PROFILE: &str =
    "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-provenance";
/// The document key every server-recorded submission Provenance carries.
pub(crate) const SUBMISSION_KEY: &str = "submission|fut";
/// The resource types kept as documents (everything of a submission but Observations).
pub(crate) const DOCUMENT_TYPES: &[&str] = &["Provenance", "Media", "QuestionnaireResponse"];

/// `Type/id` of a reference to a `ty` (relative, absolute or `Type/id/_history/n`), or `None`
/// when it names no `ty`. Keys and token context compare these, so an absolute reference to
/// another service's `Patient/75288` and `Patient/75288` are the same Patient.
pub(crate) fn tail(reference: &str, ty: &str) -> Option<String> {
    let marker = format!("{ty}/");
    let id = match reference.rfind(&marker) {
        Some(i) if i == 0 || reference[..i].ends_with('/') => &reference[i + marker.len()..],
        Some(_) => return None,
        None if !reference.is_empty() && !reference.contains('/') && !reference.contains(':') => {
            reference
        }
        None => return None,
    };
    let id = id.split(['/', '?', '#']).next().unwrap_or("");
    crate::resource::valid_id(id).then(|| format!("{ty}/{id}"))
}

/// The document key of a patient reference (`patient|Patient/<id>`).
pub(crate) fn patient_key(tail: &str) -> String {
    format!("patient|{tail}")
}

/// The document key of an EpisodeOfCare reference (`episode-of-care|EpisodeOfCare/<id>`).
pub(crate) fn episode_key(tail: &str) -> String {
    format!("episode-of-care|{tail}")
}

/// The document key of a `meta.tag` of a submitted resource (`tag|<system>|<code>`).
pub(crate) fn tag_key(system: &str, code: &str) -> String {
    format!("tag|{system}|{code}")
}

/// Whether a document key is a tag matching `_tag` `(system, code)` (no system: any).
pub(crate) fn tag_matches(key: &str, system: Option<&str>, code: &str) -> bool {
    let Some((s, c)) = key.strip_prefix("tag|").and_then(|k| k.rsplit_once('|')) else {
        return false;
    };
    c == code && system.is_none_or(|want| want == s)
}

/// What the request's token limits these operations to: its Patient (as `Patient/<id>`) and
/// its EpisodeOfCare (the reference the token carries). A token carrying a patient or an
/// episode-of-care context is limited to it, whatever its scopes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    pub(crate) patient: Option<String>,
    pub(crate) grant: Option<crate::auth::Grant>,
}

impl Context {
    pub(crate) fn of(access: &Access) -> Self {
        match access {
            Access::Open => Self::default(),
            Access::Token(g) => Self {
                patient: g.patient.as_deref().and_then(|p| tail(p, "Patient")),
                grant: Some(g.clone()),
            },
        }
    }

    /// The token's EpisodeOfCare reference, if it names one.
    pub(crate) fn episode_of_care(&self) -> Option<&str> {
        self.grant.as_ref()?.episode_of_care.as_deref()
    }

    /// Whether a Patient (`Patient/<id>`) is inside the token's context.
    pub(crate) fn allows_patient(&self, patient: &str) -> bool {
        self.patient.as_deref().is_none_or(|p| p == patient)
    }

    /// Whether an EpisodeOfCare reference is inside the token's context.
    pub(crate) fn allows_episode_of_care(&self, reference: &str) -> bool {
        self.grant
            .as_ref()
            .is_none_or(|g| g.allows_episode_of_care(reference))
    }
}

/// 403: outside the token's patient or episode-of-care context.
pub(crate) fn outside_context(what: &str, expression: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("the token is limited to one {what}, and this request names another"),
    )
    .at(expression)
}

/// 403 unless the token's scopes allow `letter` on `ty`.
pub(crate) fn check_scope(access: &Access, ty: &str, letter: char) -> Result<(), ApiError> {
    match access {
        Access::Token(g) if !g.allows(ty, letter) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the token's scopes do not allow '{letter}' on {ty}"),
        )),
        _ => Ok(()),
    }
}

/// One issue of an OperationOutcome answer.
#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub(crate) code: &'static str,
    pub(crate) diagnostics: String,
    pub(crate) expression: String,
}

/// An OperationOutcome with one error issue per problem.
pub(crate) fn refusal(status: StatusCode, issues: &[Issue]) -> Response {
    let issue: Vec<Value> = issues
        .iter()
        .map(|i| {
            json!({
                "severity": "error",
                "code": i.code,
                "diagnostics": i.diagnostics,
                "expression": [i.expression],
            })
        })
        .collect();
    crate::http::fhir_response(
        status,
        &json!({"resourceType": "OperationOutcome", "issue": issue}),
    )
}

/// Writes the audit line of an operation (the request id, who, which operation, the outcome;
/// never identifiers or values).
pub(crate) fn audit(
    access: &Access,
    request_id: Option<&crate::http::RequestId>,
    operation: &str,
    status: StatusCode,
) {
    let who = match access {
        Access::Open => "-",
        Access::Token(g) => g.who.as_str(),
    };
    tracing::info!(
        target: "healthanalyzer_server::audit",
        request_id = request_id.map_or("", |r| r.0.as_str()),
        who = %who,
        operation = %operation,
        outcome = status.as_u16(),
        "access"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_compare_by_type_and_id() {
        assert_eq!(
            tail(
                "https://patient.cit-measurement-2050.local/fhir/Patient/76312",
                "Patient"
            )
            .as_deref(),
            Some("Patient/76312")
        );
        assert_eq!(
            tail("Patient/7/_history/2", "Patient").as_deref(),
            Some("Patient/7")
        );
        assert_eq!(tail("7", "Patient").as_deref(), Some("Patient/7"));
        assert_eq!(tail("EpisodeOfCare/1", "Patient"), None);
        assert_eq!(tail("urn:uuid:1234", "Patient"), None);
        assert_eq!(tail("Patient/a b", "Patient"), None);
        assert_eq!(tail("XPatient/1", "Patient"), None);
    }

    #[test]
    fn tags_match_by_system_and_code() {
        let k = tag_key("http://ehealth.sundhed.dk/cs/ehealth-system", "xa");
        assert!(tag_matches(
            &k,
            Some("http://ehealth.sundhed.dk/cs/ehealth-system"),
            "xa"
        ));
        assert!(tag_matches(&k, None, "xa"));
        assert!(!tag_matches(&k, Some("http://other"), "xa"));
        assert!(!tag_matches(&k, None, "xb"));
        assert!(!tag_matches("patient|Patient/xa", None, "xa"));
    }
}
