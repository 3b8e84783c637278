//! The OperationDefinitions of the FUT operations, as this server implements them: each
//! names FUT's definition as its `base` and lists only the parameters this server takes.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::http::read_response;
use crate::resource::base_url;
use crate::state::AppState;

/// FUT's canonical URLs of its OperationDefinitions.
const FUT_BASE: &str = "http://ehealth.sundhed.dk/fhir/OperationDefinition";

/// The system-level operations of this server: (code, OperationDefinition id).
pub(crate) const OPERATIONS: &[(&str, &str)] = &[
    ("submit-measurement", "submit-measurement"),
    ("search-measurements", "search-measurements"),
    (
        "search-measurements-bundle-limit",
        "search-measurements-bundle-limit",
    ),
];

/// An `in` or `out` parameter.
fn param(name: &str, use_: &str, min: u32, max: &str, ty: &str, doc: &str) -> Value {
    json!({"name": name, "use": use_, "min": min, "max": max, "type": ty, "documentation": doc})
}

fn search_in_params() -> Vec<Value> {
    vec![
        param(
            "patient",
            "in",
            0,
            "1",
            "Reference",
            "The Patient the submissions are about (compared by Patient/<id>).",
        ),
        param(
            "episodeOfCare",
            "in",
            0,
            "1",
            "Reference",
            "The EpisodeOfCare the submissions belong to (compared by EpisodeOfCare/<id>).",
        ),
        param(
            "device",
            "in",
            0,
            "1",
            "Reference",
            "Only submissions with an Observation whose device is this Device.",
        ),
        param(
            "based-on",
            "in",
            0,
            "*",
            "Reference",
            "Only submissions with a resource based on any of these ServiceRequests.",
        ),
        param(
            "_tag",
            "in",
            0,
            "*",
            "Coding",
            "A filter on what the other parameters found: only submissions with a resource tagged (meta.tag) with any of these (a Coding, or a string system|code; no system: any).",
        ),
    ]
}

/// The OperationDefinition with this id, for a server at `base`.
pub(crate) fn operation_definition(base: &str, id: &str) -> Option<Value> {
    let (code, title, description, affects, params): (&str, &str, &str, bool, Vec<Value>) = match id
    {
        "submit-measurement" => (
            "submit-measurement",
            "Submit measurement",
            "Stores one measurement: a transaction Bundle of Observations (ehealth-observation), Media, QuestionnaireResponses and Provenances that all refer to one Patient and one EpisodeOfCare, with Observations final and Media/QuestionnaireResponses completed. Everything is stored in one transaction with a Provenance the server records (target: every submitted resource; policy: coherent-submitted-measurement), or nothing is. References between entries (urn:uuid fullUrls) are resolved to the ids the server assigns. Answer: a transaction-response Bundle with a 201 and a location per entry; its link 'provenance' names the recorded Provenance.",
            true,
            vec![
                param(
                    "measurement",
                    "in",
                    1,
                    "1",
                    "Bundle",
                    "A transaction Bundle of Observation, Media, QuestionnaireResponse and Provenance entries, each POSTed to its type.",
                ),
                param(
                    "return",
                    "out",
                    1,
                    "1",
                    "Bundle",
                    "The transaction-response Bundle (returned as the body itself).",
                ),
            ],
        ),
        "search-measurements" => {
            let mut p = search_in_params();
            p.push(param(
                    "period",
                    "in",
                    1,
                    "1",
                    "Period",
                    "Submissions whose resources' effective, created or authored times overlap this period (start or end or both).",
                ));
            p.push(param(
                "return",
                "out",
                1,
                "1",
                "Bundle",
                "A collection Bundle of collection Bundles, one per submission, ordered by time.",
            ));
            (
                "search-measurements",
                "Search measurements",
                "The submissions (each as a collection Bundle of its Observations, Media, QuestionnaireResponses and Provenances) of a patient or an episode of care whose times overlap a period. 'period' is required, and 'patient' or 'episodeOfCare' or both. '_tag' filters what the others found; any other parameter is refused, never ignored.",
                false,
                p,
            )
        }
        "search-measurements-bundle-limit" => {
            let mut p = search_in_params();
            p.push(param(
                "count",
                "in",
                1,
                "1",
                "integer",
                "The number of submissions to return, 1 to 100.",
            ));
            p.push(param(
                "start",
                "in",
                0,
                "1",
                "dateTime",
                "The first submissions at or after this time, in ascending order.",
            ));
            p.push(param(
                "end",
                "in",
                0,
                "1",
                "dateTime",
                "The last submissions at or before this time, in descending order.",
            ));
            p.push(param(
                "return",
                "out",
                1,
                "1",
                "Bundle",
                "A collection Bundle of at most 'count' collection Bundles, one per submission.",
            ));
            (
                "search-measurements-bundle-limit",
                "Search measurements bundle limit",
                "As search-measurements, but a number of submissions ('count', at most 100) from 'start' on (ascending) or up to 'end' (descending); exactly one of them. 'patient', 'episodeOfCare' or 'based-on' is required.",
                false,
                p,
            )
        }
        _ => return None,
    };
    Some(json!({
        "resourceType": "OperationDefinition",
        "id": id,
        "url": format!("{base}/OperationDefinition/{id}"),
        "name": title.split(' ').map(|w| {
            let mut c = w.chars();
            c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
        }).collect::<String>(),
        "title": title,
        "status": "active",
        "kind": "operation",
        "publisher": "Health Analyzer contributors",
        "description": description,
        "affectsState": affects,
        "code": code,
        "base": format!("{FUT_BASE}/-s-{code}"),
        "system": true,
        "type": false,
        "instance": false,
        "parameter": params,
    }))
}

/// `GET /fhir/OperationDefinition/{id}`.
pub(crate) async fn read_definition(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let base = base_url(&state, &headers);
    let def = operation_definition(&base, &id).ok_or_else(|| {
        ApiError::not_found(format!(
            "OperationDefinition/{id} is not known to this server (see /fhir/metadata)"
        ))
    })?;
    Ok(read_response(&def))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_definition_with_its_code() {
        for (code, id) in OPERATIONS {
            let d = operation_definition("http://h/fhir", id).unwrap_or_default();
            assert_eq!(d["code"], *code);
            assert_eq!(
                d["url"],
                format!("http://h/fhir/OperationDefinition/{id}").as_str()
            );
            assert!(d["parameter"].as_array().is_some_and(|p| p.len() >= 2));
        }
        assert!(operation_definition("http://h/fhir", "nope").is_none());
    }
}
