//! Protocol plumbing: FHIR JSON responses, request ids, time limits, and OperationOutcomes for
//! the errors axum produces itself (unknown route, wrong method, body too large).

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// The FHIR JSON media type.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The correlation header, echoed on every response.
pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of a request (from `X-Request-Id` when the client sent a usable one).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A JSON body as `application/fhir+json`.
pub(crate) fn fhir_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json; charset=utf-8"),
        )],
        bytes,
    )
        .into_response()
}

/// A FHIR JSON response of bytes already serialised.
pub(crate) fn fhir_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json; charset=utf-8"),
        )],
        bytes,
    )
        .into_response()
}

fn usable_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_string())
}

/// Takes or makes the request id, logs the request at debug level (method, path, status, time:
/// never query strings, which may hold identifiers), and echoes the id.
pub(crate) async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(usable_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let mut res = next.run(req).await;
    let status = res.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if status >= 500 {
        tracing::warn!(request_id = %id, %method, path = %redact_path(&path), status, ms, "request failed");
    } else {
        tracing::debug!(request_id = %id, %method, path = %redact_path(&path), status, ms, "request");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    res
}

/// A path for the log: resource type and operation kept, ids replaced by `:id`.
pub(crate) fn redact_path(path: &str) -> String {
    path.split('/')
        .enumerate()
        .map(|(i, seg)| {
            let keep = i < 2
                || seg.is_empty()
                || seg.starts_with('$')
                || seg.starts_with('_')
                || seg.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                || seg == "metadata";
            if keep { seg } else { ":id" }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Ends a request that takes longer than the configured limit with 503 and an OperationOutcome.
pub(crate) async fn time_limit(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let limit: Duration = state.config.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} ms and was abandoned",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

/// Gives the bare errors of the routing layer (404 unknown path, 405 wrong method, 413 body
/// too large, 415, 400 from extractors) an OperationOutcome body.
pub(crate) async fn outcome_for_bare_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let res = next.run(req).await;
    let status = res.status();
    let is_fhir = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(FHIR_JSON) || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_fhir {
        return res;
    }
    let (code, text) = match status {
        StatusCode::NOT_FOUND => (
            "not-supported",
            "no such resource type or interaction on this server (see /fhir/metadata)".to_string(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "not-supported",
            format!("{method} is not supported here (see /fhir/metadata)"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too-long",
            "the request body is larger than the server accepts".to_string(),
        ),
        _ => {
            let (parts, body) = res.into_parts();
            let bytes = axum::body::to_bytes(body, 64 * 1024)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let _ = parts;
            return ApiError::new(status, "invalid", text).into_response();
        }
    };
    let mut out = ApiError::new(status, code, text).into_response();
    if let Some(allow) = res.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

/// Refuses `_format` and `Accept` values this server cannot answer (it speaks JSON only).
pub(crate) fn check_format(headers: &HeaderMap, format: Option<&str>) -> Result<(), ApiError> {
    if let Some(f) = format {
        let ok = matches!(
            f,
            "json" | "application/json" | FHIR_JSON | "application/fhir json"
        ) || f.starts_with("application/fhir+json;");
        if !ok {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "not-supported",
                format!("_format={f} is not supported; this server speaks JSON (_format=json)"),
            ));
        }
        return Ok(());
    }
    if let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        let ok = accept.split(',').any(|part| {
            let t = part.split(';').next().unwrap_or("").trim();
            matches!(
                t,
                "" | "*/*" | "application/*" | "application/json" | FHIR_JSON | "text/html"
            )
        });
        if !ok {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "not-supported",
                format!(
                    "Accept: {accept} cannot be served; this server answers application/fhir+json"
                ),
            ));
        }
    }
    Ok(())
}

/// With `Prefer: handling=strict`, search parameters the server does not know are an error
/// (400) instead of being ignored.
pub(crate) fn check_strict_handling(
    headers: &HeaderMap,
    ignored: &[String],
) -> Result<(), ApiError> {
    let strict = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "handling=strict");
    if strict && !ignored.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not-supported",
            format!(
                "unknown search parameters: {} (see /fhir/metadata); without Prefer: handling=strict they are ignored",
                ignored.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Parses a request body as a JSON object, after checking its media type.
pub(crate) fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let t = ct.split(';').next().unwrap_or("").trim();
        if !matches!(t, FHIR_JSON | "application/json" | "text/json" | "") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                format!("Content-Type {t} is not supported; send application/fhir+json"),
            ));
        }
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send a FHIR resource",
        ));
    }
    Ok(text.to_string())
}

/// `Prefer: return=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Return {
    Minimal,
    Representation,
    OperationOutcome,
}

pub(crate) fn prefer_return(headers: &HeaderMap) -> Return {
    let prefer = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix("return="));
    match prefer {
        Some("minimal") => Return::Minimal,
        Some("OperationOutcome") => Return::OperationOutcome,
        _ => Return::Representation,
    }
}

/// A successful write's answer: the status, `Location`, `ETag`, `Last-Modified`, and a body as
/// `Prefer` asks.
pub(crate) fn write_response(
    status: StatusCode,
    location: &str,
    resource: &Value,
    prefer: Return,
) -> Response {
    let meta = resource.get("meta");
    let version = meta
        .and_then(|m| m.get("versionId"))
        .and_then(Value::as_str)
        .unwrap_or("1");
    let mut res = match prefer {
        Return::Representation => fhir_response(status, resource),
        Return::Minimal => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = status;
            r
        }
        Return::OperationOutcome => fhir_response(
            status,
            &serde_json::json!({
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "information", "code": "informational",
                           "diagnostics": format!("stored as {location}")}]
            }),
        ),
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v.clone());
        h.insert(header::CONTENT_LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{version}\"")) {
        h.insert(header::ETAG, v);
    }
    if let Some(lm) = meta
        .and_then(|m| m.get("lastUpdated"))
        .and_then(Value::as_str)
        .and_then(http_date)
        && let Ok(v) = HeaderValue::from_str(&lm)
    {
        h.insert(header::LAST_MODIFIED, v);
    }
    res
}

/// A read's answer: 200 with `ETag` and `Last-Modified`.
pub(crate) fn read_response(resource: &Value) -> Response {
    let mut res = write_response(StatusCode::OK, "", resource, Return::Representation);
    res.headers_mut().remove(header::LOCATION);
    res.headers_mut().remove(header::CONTENT_LOCATION);
    res
}

/// An RFC 3339 instant as an HTTP date (`Mon, 23 Nov 2026 06:00:00 GMT`).
fn http_date(instant: &str) -> Option<String> {
    let ts: healthanalyzer_model::jiff::Timestamp = instant.parse().ok()?;
    Some(ts.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

/// The version an `If-Match` header asks for (`W/"3"`, `"3"` or `3`).
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match is not ASCII"))?
        .trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    let s = s.trim_matches('"');
    if s.is_empty() {
        return Err(ApiError::bad_request(
            "If-Match is empty; send W/\"<versionId>\"",
        ));
    }
    Ok(Some(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_logged_without_ids() {
        assert_eq!(redact_path("/fhir/Patient/123"), "/fhir/Patient/:id");
        assert_eq!(
            redact_path("/fhir/Observation/abc/_history/2"),
            "/fhir/Observation/:id/_history/:id"
        );
        assert_eq!(
            redact_path("/fhir/Observation/$lastn"),
            "/fhir/Observation/$lastn"
        );
        assert_eq!(redact_path("/fhir/metadata"), "/fhir/metadata");
        assert_eq!(redact_path("/patient/0101701234"), "/patient/:id");
    }

    #[test]
    fn if_match_accepts_weak_strong_and_bare_versions() {
        for (h, want) in [("W/\"3\"", "3"), ("\"4\"", "4"), ("5", "5")] {
            let mut m = HeaderMap::new();
            m.insert(header::IF_MATCH, HeaderValue::from_static(h));
            assert_eq!(if_match(&m).ok().flatten().as_deref(), Some(want), "{h}");
        }
        let mut m = HeaderMap::new();
        m.insert(header::IF_MATCH, HeaderValue::from_static("W/\"\""));
        assert!(if_match(&m).is_err());
    }
}
