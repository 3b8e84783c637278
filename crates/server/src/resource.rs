//! Helpers shared by the resource handlers: ids, versions, `meta`, base URLs.

use axum::http::{HeaderMap, header};
use healthanalyzer_model::jiff::Timestamp;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The base URL of the FHIR API for this request (`http://host:port/fhir`).
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(b) = &state.config.base_url {
        return b.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}/fhir")
}

/// Now, as a FHIR `instant` with milliseconds.
pub(crate) fn now_instant() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// True for a valid FHIR logical id (`[A-Za-z0-9\-\.]{1,64}`).
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Parses a request body into a JSON object of the expected resource type.
pub(crate) fn parse_resource(text: &str, expected: &str) -> ApiResult<Map<String, Value>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::bad_request(format!("the body is not valid JSON: {e}")).at(expected.to_string())
    })?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object (a FHIR resource)",
        ));
    };
    match map.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == expected => Ok(map),
        Some(t) => Err(ApiError::bad_request(format!(
            "this endpoint takes {expected} resources; the body is a {t}"
        ))
        .at("resourceType")),
        None => Err(ApiError::bad_request("the body has no resourceType").at("resourceType")),
    }
}

/// The body of an update (`PUT Type/{id}`): a valid id in the URL, a resource of the type,
/// and the same id in the body.
pub(crate) fn update_body(
    headers: &axum::http::HeaderMap,
    body: &axum::body::Bytes,
    ty: &str,
    id: &str,
) -> ApiResult<Map<String, Value>> {
    if !valid_id(id) {
        return Err(ApiError::bad_request(format!(
            "{id:?} is not a valid FHIR id ([A-Za-z0-9-.], at most 64)"
        )));
    }
    let text = crate::http::json_body(headers, body)?;
    let resource = parse_resource(&text, ty)?;
    match resource.get("id").and_then(Value::as_str) {
        Some(body_id) if body_id == id => Ok(resource),
        Some(body_id) => Err(ApiError::bad_request(format!(
            "the body's id ({body_id}) differs from the URL's ({id})"
        ))
        .at(format!("{ty}.id"))),
        None => Err(
            ApiError::bad_request("an update needs the resource's id in the body")
                .at(format!("{ty}.id")),
        ),
    }
}

/// The version of a stored resource (`meta.versionId`; 1 when absent or not a number).
pub(crate) fn version_of(resource: &Map<String, Value>) -> u64 {
    resource
        .get("meta")
        .and_then(|m| m.get("versionId"))
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Sets `meta.versionId` to the store's version of the resource.
pub(crate) fn set_version(resource: &mut Map<String, Value>, version: u64) {
    if let Some(Value::Object(meta)) = resource.get_mut("meta") {
        meta.insert("versionId".into(), Value::String(version.to_string()));
    } else {
        let mut meta = Map::new();
        meta.insert("versionId".into(), Value::String(version.to_string()));
        resource.insert("meta".into(), Value::Object(meta));
    }
}

/// Sets `id`, `meta.versionId` and `meta.lastUpdated`, keeping the rest of `meta` (profiles,
/// tags, security labels) as the client sent it. `id` goes first, as FHIR writes it.
pub(crate) fn stamp(
    resource: Map<String, Value>,
    id: &str,
    version: u64,
    last_updated: Option<&str>,
) -> Map<String, Value> {
    let mut out = Map::with_capacity(resource.len() + 2);
    let mut meta = match resource.get("meta") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    meta.insert("versionId".into(), Value::String(version.to_string()));
    match last_updated {
        Some(t) => {
            meta.insert("lastUpdated".into(), Value::String(t.to_string()));
        }
        None => {
            meta.remove("lastUpdated");
        }
    }
    if let Some(t) = resource.get("resourceType") {
        out.insert("resourceType".into(), t.clone());
    }
    out.insert("id".into(), Value::String(id.to_string()));
    out.insert("meta".into(), Value::Object(meta));
    for (k, v) in resource {
        if !matches!(k.as_str(), "resourceType" | "id" | "meta") {
            out.insert(k, v);
        }
    }
    out
}

/// Checks `If-Match` against the current version: 412 on a mismatch.
pub(crate) fn check_version(wanted: Option<&str>, current: u64, what: &str) -> ApiResult<()> {
    match wanted {
        Some(v) if v != current.to_string() => Err(ApiError::new(
            axum::http::StatusCode::PRECONDITION_FAILED,
            "conflict",
            format!("{what} is at version {current}, not {v} (If-Match); read it again and retry"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_fhir_id_rule() {
        for ok in ["a", "123", "example", "A-b.c", &"x".repeat(64)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "a_b", "é", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn stamping_sets_id_and_version_and_keeps_other_meta() {
        let r: Map<String, Value> = serde_json::from_str(
            r#"{"resourceType":"Patient","meta":{"profile":["p"],"versionId":"9"},"id":"old","gender":"male"}"#,
        )
        .unwrap_or_default();
        let s = stamp(r, "new", 2, Some("2026-01-01T00:00:00.000Z"));
        assert_eq!(s["id"], "new");
        assert_eq!(s["gender"], "male");
        assert_eq!(s["meta"]["profile"], serde_json::json!(["p"]));
        assert_eq!(s["meta"]["versionId"], "2");
        assert_eq!(version_of(&s), 2);
        assert!(check_version(Some("2"), 2, "x").is_ok());
        assert!(check_version(Some("1"), 2, "x").is_err());
        assert!(check_version(None, 2, "x").is_ok());
    }
}
