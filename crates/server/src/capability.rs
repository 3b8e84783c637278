//! The CapabilityStatement: exactly what this server supports.

use serde_json::{Value, json};

use crate::fut::{OPERATIONS, operation_definition};
use crate::observation::SEARCH_PARAMS;

/// The CapabilityStatement for a server at `base`.
pub(crate) fn capability_statement(base: &str) -> Value {
    let interactions = |codes: &[&str]| -> Vec<Value> {
        codes
            .iter()
            .map(|c| match *c {
                "search-type" => json!({
                    "code": c,
                    "documentation": "GET [type]?… and POST [type]/_search with the parameters in an \
                        application/x-www-form-urlencoded body (the URL's and the body's combined). \
                        A national person number (CPR, BSN, FNR, D- or H-number) is taken only in a \
                        POST body, never in a URL; links never carry one. The self link names every \
                        parameter used, in a canonical order, and none that was ignored."
                }),
                _ => json!({ "code": c }),
            })
            .collect()
    };
    let params = |list: &[(&str, &str, &str)]| -> Vec<Value> {
        list.iter()
            .map(|(name, ty, doc)| json!({ "name": name, "type": ty, "documentation": doc }))
            .collect()
    };
    let common = [
        ("_count", "number", "Page size (default 50, at most 1000)"),
        ("_summary", "token", "count: only the total"),
    ];
    let mut obs_params = params(SEARCH_PARAMS);
    obs_params.extend(params(&common));
    obs_params.push(json!({"name": "_sort", "type": "token", "documentation": "date or -date"}));
    let mut patient_params = params(&[
        (
            "identifier",
            "token",
            "A Patient identifier: system|value, or value",
        ),
        (
            "name",
            "string",
            "Starts a word of the family or given name (case-insensitive)",
        ),
        ("family", "string", "As name"),
        ("given", "string", "As name"),
        ("birthdate", "date", "The birth date, with prefixes"),
        ("_id", "token", "The Patient id"),
    ]);
    patient_params.extend(params(&common));
    // FUT's system-level operations, each with the OperationDefinition this server serves.
    let operations: Vec<Value> = OPERATIONS
        .iter()
        .map(|(code, id)| {
            let definition = operation_definition(base, id);
            json!({
                "name": code,
                "definition": format!("{base}/OperationDefinition/{id}"),
                "documentation": definition
                    .as_ref()
                    .and_then(|d| d.get("description").cloned())
                    .unwrap_or(Value::Null),
            })
        })
        .collect();
    let kept = |ty: &str, doc: &str| {
        json!({
            "type": ty,
            "interaction": interactions(&["read"]),
            "documentation": doc,
        })
    };
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "Health Analyzer contributors",
        "kind": "instance",
        "software": {
            "name": "Health Analyzer FHIR server",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "implementation": {
            "description": "Health Analyzer: measurements (vital signs, weight, glucose, steps) as FHIR R4 Observations",
            "url": base,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "interaction": [
                {"code": "transaction", "documentation": "POST Type, PUT Type/id and DELETE Type/id of Patient and Observation; urn:uuid references resolved; all or nothing"},
                {"code": "batch", "documentation": "Any interaction of this server per entry, each on its own"}
            ],
            "documentation": "Observations must have a code from the measurement catalog and a subject that is a Patient on this server. The server assigns Observation ids. Conditional create (If-None-Exist) takes the Observation search parameters, and identifier=system|value: a create with that condition stores under it, so repeating it finds the first.",
            "resource": [
                {
                    "type": "Patient",
                    "profile": "http://hl7.org/fhir/StructureDefinition/Patient",
                    "interaction": interactions(&["read", "create", "update", "delete", "search-type"]),
                    "versioning": "versioned-update",
                    "readHistory": false,
                    "updateCreate": true,
                    "conditionalCreate": true,
                    "conditionalUpdate": false,
                    "conditionalDelete": "not-supported",
                    "searchParam": patient_params,
                },
                {
                    "type": "Observation",
                    "profile": "http://hl7.org/fhir/StructureDefinition/Observation",
                    "supportedProfile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"],
                    "interaction": interactions(&["read", "create", "update", "delete", "search-type"]),
                    "versioning": "versioned-update",
                    "readHistory": false,
                    "updateCreate": false,
                    "conditionalCreate": true,
                    "conditionalUpdate": false,
                    "conditionalDelete": "not-supported",
                    "searchInclude": ["Observation:subject", "Observation:patient"],
                    "searchParam": obs_params,
                    "operation": [
                        {"name": "lastn", "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn"},
                        {"name": "stats", "definition": "http://hl7.org/fhir/OperationDefinition/Observation-stats"}
                    ],
                },
                kept("Provenance", "The Provenance recorded for each $submit-measurement (and those submitted with it)"),
                kept("Media", "Media submitted with $submit-measurement"),
                kept("QuestionnaireResponse", "QuestionnaireResponses submitted with $submit-measurement"),
                {"type": "OperationDefinition", "interaction": interactions(&["read"])}
            ],
            "operation": operations,
        }],
    })
}
