//! `POST [base]/$search-measurements` and `$search-measurements-bundle-limit`: the
//! submissions of a patient or an episode of care, each as a collection Bundle of what was
//! submitted together (its Observations, Media, QuestionnaireResponses and Provenances, and
//! the Provenance the server recorded).

use std::collections::BTreeMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use healthanalyzer_model::jiff::{Timestamp, ToSpan};
use healthanalyzer_store::{Document, DocumentQuery, Versioned};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    Context, SUBMISSION_KEY, audit, check_scope, episode_key, outside_context, patient_key,
    tag_matches, tail,
};
use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::http::{fhir_response, json_body};
use crate::observation::{get_versioned, observation_json};
use crate::resource::{base_url, now_instant, parse_resource, set_version};
use crate::search::DateParam;
use crate::state::AppState;

/// Which operation: the parameters each takes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Search,
    BundleLimit,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Self::Search => "search-measurements",
            Self::BundleLimit => "search-measurements-bundle-limit",
        }
    }
}

/// The parameters of a search, parsed.
#[derive(Debug, Default)]
struct Criteria {
    patient: Option<String>,
    episode_of_care: Option<(String, String)>,
    device: Option<String>,
    based_on: Vec<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    count: Option<usize>,
    /// `_tag`: (system, code); a submission matches when a resource of it has any of them.
    tags: Vec<(Option<String>, String)>,
    /// `end` of the bundle-limit search: the last submissions before it, newest first.
    descending: bool,
}

fn at(i: usize, what: &str) -> String {
    format!("Parameters.parameter[{i}].{what}")
}

fn bad(i: usize, what: &str, why: impl Into<String>) -> ApiError {
    let why = why.into();
    ApiError::bad_request(format!("{}: {why}", at(i, what))).at(at(i, what))
}

fn reference(p: &Value, i: usize, ty: &str) -> ApiResult<(String, String)> {
    let r = p
        .get("valueReference")
        .and_then(|r| r.get("reference"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad(
                i,
                "valueReference",
                format!("a Reference to a {ty} is required"),
            )
        })?;
    let t = tail(r, ty).ok_or_else(|| {
        bad(
            i,
            "valueReference.reference",
            format!("must be a reference to a {ty} ({ty}/<id>, relative or absolute)"),
        )
    })?;
    Ok((t, r.to_string()))
}

/// The `[lo, hi)` range of a FHIR dateTime (partial dates stand for their whole range).
fn range(value: &str, i: usize, what: &str) -> ApiResult<(Timestamp, Timestamp)> {
    if value.len() < 4 || !value.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        return Err(bad(
            i,
            what,
            "a dateTime (YYYY, YYYY-MM, YYYY-MM-DD or with a time and an offset) is required",
        ));
    }
    let d = DateParam::parse(value, &at(i, what))?;
    Ok((d.lo, d.hi))
}

/// The last instant of `[lo, hi)`.
fn before(hi: Timestamp) -> Timestamp {
    hi.checked_sub(1.nanosecond()).unwrap_or(hi)
}

fn parse(params: &Map<String, Value>, op: Operation) -> ApiResult<Criteria> {
    let mut c = Criteria::default();
    let mut period = false;
    let mut start: Option<Timestamp> = None;
    let mut end: Option<Timestamp> = None;
    let list = match params.get("parameter") {
        None => &Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(
                ApiError::bad_request("Parameters.parameter must be an array")
                    .at("Parameters.parameter"),
            );
        }
    };
    let mut seen: Vec<&str> = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let repeatable = matches!(name, "based-on" | "_tag");
        if !repeatable && seen.contains(&name) {
            return Err(bad(i, "name", format!("{name} may be given once")));
        }
        seen.push(name);
        match (name, op) {
            ("patient", _) => c.patient = Some(reference(p, i, "Patient")?.0),
            ("episodeOfCare", _) => c.episode_of_care = Some(reference(p, i, "EpisodeOfCare")?),
            ("device", _) => c.device = Some(reference(p, i, "Device")?.0),
            ("based-on", _) => c.based_on.push(reference(p, i, "ServiceRequest")?.0),
            ("period", Operation::Search) => {
                let v = p
                    .get("valuePeriod")
                    .ok_or_else(|| bad(i, "valuePeriod", "a Period is required"))?;
                let s = v.get("start").and_then(Value::as_str);
                let e = v.get("end").and_then(Value::as_str);
                if s.is_none() && e.is_none() {
                    return Err(bad(
                        i,
                        "valuePeriod",
                        "give the period a start, an end or both",
                    ));
                }
                if let Some(s) = s {
                    c.from = Some(range(s, i, "valuePeriod.start")?.0);
                }
                if let Some(e) = e {
                    c.to = Some(before(range(e, i, "valuePeriod.end")?.1));
                }
                if let (Some(f), Some(t)) = (c.from, c.to)
                    && f > t
                {
                    return Err(bad(i, "valuePeriod", "the period's start is after its end"));
                }
                period = true;
            }
            ("count", Operation::BundleLimit) => {
                let n = p
                    .get("valueInteger")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| bad(i, "valueInteger", "an integer is required"))?;
                if !(1..=100).contains(&n) {
                    return Err(bad(i, "valueInteger", "count must be 1 to 100"));
                }
                c.count = usize::try_from(n).ok();
            }
            ("start", Operation::BundleLimit) => {
                let v = p
                    .get("valueDateTime")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(i, "valueDateTime", "a dateTime is required"))?;
                start = Some(range(v, i, "valueDateTime")?.0);
            }
            ("end", Operation::BundleLimit) => {
                let v = p
                    .get("valueDateTime")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(i, "valueDateTime", "a dateTime is required"))?;
                end = Some(before(range(v, i, "valueDateTime")?.1));
            }
            ("_tag", _) => {
                let (system, code) = match (p.get("valueCoding"), p.get("valueString")) {
                    (Some(c), _) => (
                        c.get("system").and_then(Value::as_str).map(str::to_string),
                        c.get("code").and_then(Value::as_str).map(str::to_string),
                    ),
                    (None, Some(Value::String(t))) => match t.rsplit_once('|') {
                        Some((s, c)) => {
                            ((!s.is_empty()).then(|| s.to_string()), Some(c.to_string()))
                        }
                        None => (None, Some(t.clone())),
                    },
                    _ => (None, None),
                };
                let code = code.filter(|c| !c.is_empty()).ok_or_else(|| {
                    bad(
                        i,
                        "valueCoding",
                        "a Coding with a code (or a valueString system|code) is required",
                    )
                })?;
                c.tags.push((system, code));
            }
            (other, _) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    format!(
                        "{}: {other:?} is not a parameter of ${} on this server; the search was not run",
                        at(i, "name"),
                        op.name()
                    ),
                )
                .at(at(i, "name")));
            }
        }
    }
    match op {
        Operation::Search => {
            if !period {
                return Err(ApiError::bad_request(
                    "period is required (a Period with a start, an end or both)",
                )
                .at("Parameters.parameter"));
            }
            if c.patient.is_none() && c.episode_of_care.is_none() {
                return Err(
                    ApiError::bad_request("patient or episodeOfCare is required")
                        .at("Parameters.parameter"),
                );
            }
        }
        Operation::BundleLimit => {
            if c.count.is_none() {
                return Err(ApiError::bad_request("count is required (1 to 100)")
                    .at("Parameters.parameter"));
            }
            match (start, end) {
                (Some(s), None) => c.from = Some(s),
                (None, Some(e)) => {
                    c.to = Some(e);
                    c.descending = true;
                }
                _ => {
                    return Err(
                        ApiError::bad_request("give start or end, exactly one of them")
                            .at("Parameters.parameter"),
                    );
                }
            }
            if c.patient.is_none() && c.episode_of_care.is_none() && c.based_on.is_empty() {
                return Err(ApiError::bad_request(
                    "patient, episodeOfCare or based-on is required",
                )
                .at("Parameters.parameter"));
            }
        }
    }
    Ok(c)
}

/// `POST /fhir/$search-measurements`.
pub(crate) async fn search_measurements(
    state: State<AppState>,
    access: Option<Extension<Access>>,
    request_id: Option<Extension<crate::http::RequestId>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(state, access, request_id, headers, body, Operation::Search).await
}

/// `POST /fhir/$search-measurements-bundle-limit`.
pub(crate) async fn search_measurements_bundle_limit(
    state: State<AppState>,
    access: Option<Extension<Access>>,
    request_id: Option<Extension<crate::http::RequestId>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(
        state,
        access,
        request_id,
        headers,
        body,
        Operation::BundleLimit,
    )
    .await
}

async fn run(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    request_id: Option<Extension<crate::http::RequestId>>,
    headers: HeaderMap,
    body: Bytes,
    op: Operation,
) -> Response {
    let access = access.map_or(Access::Open, |a| a.0);
    let res = match search(&state, &access, &headers, &body, op).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    audit(
        &access,
        request_id.as_ref().map(|r| &r.0),
        op.name(),
        res.status(),
    );
    res
}

async fn search(
    state: &AppState,
    access: &Access,
    headers: &HeaderMap,
    body: &Bytes,
    op: Operation,
) -> ApiResult<Response> {
    check_scope(access, "Observation", 's')?;
    let text = json_body(headers, body)?;
    let params = parse_resource(&text, "Parameters")?;
    let mut c = parse(&params, op)?;
    // The token's context limits the search: another Patient or EpisodeOfCare is 403, none
    // named is the token's.
    let context = Context::of(access);
    match (&c.patient, &context.patient) {
        (Some(p), Some(_)) if !context.allows_patient(p) => {
            return Err(outside_context("Patient", "Parameters.parameter"));
        }
        (None, Some(mine)) => c.patient = Some(mine.clone()),
        _ => {}
    }
    match (&c.episode_of_care, context.episode_of_care()) {
        (Some((_, r)), Some(_)) if !context.allows_episode_of_care(r) => {
            return Err(outside_context("EpisodeOfCare", "Parameters.parameter"));
        }
        (None, Some(mine)) => {
            if let Some(t) = tail(mine, "EpisodeOfCare") {
                c.episode_of_care = Some((t, mine.to_string()));
            }
        }
        _ => {}
    }

    let mut keys = vec![SUBMISSION_KEY.to_string()];
    if let Some(p) = &c.patient {
        keys.push(patient_key(p));
    }
    if let Some((e, _)) = &c.episode_of_care {
        keys.push(episode_key(e));
    }
    if let Some(d) = &c.device {
        keys.push(format!("device|{d}"));
    }
    // How many submissions one answer may hold (the bundle-limit search: `count`; one that
    // reads backwards from `end` looks at up to `max_count` to find the last ones).
    let max = state.config.max_count;
    let limit = match (c.count, c.descending) {
        (Some(n), false) if c.tags.is_empty() => n,
        _ => max + 1,
    };
    // based-on: any of them (one query each, merged).
    let alternatives: Vec<Option<String>> = if c.based_on.is_empty() {
        vec![None]
    } else {
        c.based_on
            .iter()
            .map(|b| Some(format!("based-on|{b}")))
            .collect()
    };
    let mut found: BTreeMap<(Option<Timestamp>, String), Versioned<Document>> = BTreeMap::new();
    for alt in alternatives {
        let mut q = DocumentQuery::new("Provenance", limit).period(c.from, c.to);
        q.keys = keys.clone();
        if let Some(k) = alt {
            q.keys.push(k);
        }
        let docs = state
            .store
            .find_documents(&q)
            .await
            .map_err(|e| ApiError::from_store(&e))?;
        for d in docs {
            found.insert((d.value.start, d.value.id.clone()), d);
        }
    }
    if !c.tags.is_empty() && found.len() > max {
        return Err(too_many(max));
    }
    let mut docs: Vec<Versioned<Document>> = found.into_values().collect();
    // _tag filters what the other parameters found.
    if !c.tags.is_empty() {
        docs.retain(|d| {
            d.value.keys.iter().any(|k| {
                c.tags
                    .iter()
                    .any(|(system, code)| tag_matches(k, system.as_deref(), code))
            })
        });
    }
    match (c.count, c.descending) {
        (Some(n), false) => docs.truncate(n),
        (Some(n), true) => {
            if docs.len() > max {
                return Err(too_many(max));
            }
            docs.reverse();
            docs.truncate(n);
        }
        (None, _) => {
            if docs.len() > max {
                return Err(too_many(max));
            }
        }
    }
    let base = base_url(state, headers);
    let mut entries = Vec::with_capacity(docs.len());
    for d in &docs {
        entries.push(json!({
            "fullUrl": format!("urn:uuid:{}", Uuid::new_v4()),
            "resource": submission(state, &base, d).await?,
        }));
    }
    tracing::debug!(
        submissions = entries.len(),
        operation = op.name(),
        "searched"
    );
    Ok(fhir_response(
        StatusCode::OK,
        &json!({
            "resourceType": "Bundle",
            "id": Uuid::new_v4().to_string(),
            "meta": {"lastUpdated": now_instant()},
            "type": "collection",
            "entry": entries,
        }),
    ))
}

fn too_many(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "too-costly",
        format!(
            "more than {max} submissions match; narrow the period (or use $search-measurements-bundle-limit with a count)"
        ),
    )
    .at("Parameters.parameter")
}

/// One submission as a collection Bundle: its resources in the order they were submitted
/// (those deleted since are left out), then the Provenance the server recorded.
async fn submission(state: &AppState, base: &str, p: &Versioned<Document>) -> ApiResult<Value> {
    let provenance: Value = serde_json::from_str(&p.value.body).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "a stored Provenance is not JSON; see the server log",
        )
    })?;
    let mut entries = Vec::new();
    let targets = provenance
        .get("target")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for t in targets {
        let Some((ty, id)) = t
            .get("reference")
            .and_then(Value::as_str)
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        let resource = if ty == "Observation" {
            match get_versioned(state, id).await? {
                Some(v) => {
                    let mut o = observation_json(state, &v.value)?;
                    set_version(&mut o, v.version);
                    Some(Value::Object(o))
                }
                None => None,
            }
        } else {
            state
                .store
                .document(ty, id)
                .await
                .map_err(|e| ApiError::from_store(&e))?
                .and_then(|v| document_json(&v))
        };
        if let Some(r) = resource {
            entries.push(json!({"fullUrl": format!("{base}/{ty}/{id}"), "resource": r}));
        }
    }
    if let Some(r) = document_json(p) {
        entries
            .push(json!({"fullUrl": format!("{base}/Provenance/{}", p.value.id), "resource": r}));
    }
    Ok(json!({"resourceType": "Bundle", "type": "collection", "entry": entries}))
}

/// A stored document's resource, at the store's version.
pub(crate) fn document_json(v: &Versioned<Document>) -> Option<Value> {
    let mut o: Map<String, Value> = serde_json::from_str(&v.value.body).ok()?;
    set_version(&mut o, v.version);
    Some(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: Value) -> Map<String, Value> {
        let v = json!({"resourceType": "Parameters", "parameter": list});
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn search_parameters_are_required_and_checked() {
        let p = |r: &str| json!({"name": "patient", "valueReference": {"reference": r}});
        let period = json!({"name": "period", "valuePeriod": {"start": "2024-10-21T00:00:00+00:00", "end": "2024-10"}});
        let c = parse(
            &params(json!([p("https://x/fhir/Patient/7"), period])),
            Operation::Search,
        )
        .unwrap_or_default();
        assert_eq!(c.patient.as_deref(), Some("Patient/7"));
        assert_eq!(c.from, "2024-10-21T00:00:00Z".parse().ok());
        assert_eq!(c.to, "2024-10-31T23:59:59.999999999Z".parse().ok());

        let no_period = parse(&params(json!([p("Patient/7")])), Operation::Search);
        assert!(no_period.is_err_and(|e| e.diagnostics.contains("period")));
        let no_patient = parse(&params(json!([period])), Operation::Search);
        assert!(no_patient.is_err_and(|e| e.diagnostics.contains("patient or episodeOfCare")));
        let tag = json!({"name": "_tag", "valueCoding": {"system": "http://s", "code": "x"}});
        let token = json!({"name": "_tag", "valueString": "y"});
        let c = parse(
            &params(json!([p("Patient/7"), period, tag, token])),
            Operation::Search,
        )
        .unwrap_or_default();
        assert_eq!(
            c.tags,
            vec![
                (Some("http://s".to_string()), "x".to_string()),
                (None, "y".to_string())
            ]
        );
        let empty = json!({"name": "_tag", "valueCoding": {"system": "http://s"}});
        let e = parse(
            &params(json!([p("Patient/7"), period, empty])),
            Operation::Search,
        );
        assert!(e.is_err_and(
            |e| e.expression.as_deref() == Some("Parameters.parameter[2].valueCoding")
        ));
        let count = json!({"name": "count", "valueInteger": 5});
        let e = parse(
            &params(json!([p("Patient/7"), period, count])),
            Operation::Search,
        );
        assert!(e.is_err_and(|e| e.diagnostics.contains("\"count\"")));
        let wrong = parse(
            &params(json!([p("EpisodeOfCare/1"), period])),
            Operation::Search,
        );
        assert!(
            wrong.is_err_and(|e| e.expression.as_deref()
                == Some("Parameters.parameter[0].valueReference.reference"))
        );
    }

    #[test]
    fn bundle_limit_takes_count_and_start_or_end() {
        let p = json!({"name": "patient", "valueReference": {"reference": "Patient/7"}});
        let n = |n: i64| json!({"name": "count", "valueInteger": n});
        let start = json!({"name": "start", "valueDateTime": "2025-01-16T00:00:00+00:00"});
        let end = json!({"name": "end", "valueDateTime": "2025-01-16"});
        let c =
            parse(&params(json!([p, n(10), start])), Operation::BundleLimit).unwrap_or_default();
        assert_eq!((c.count, c.descending), (Some(10), false));
        let c = parse(&params(json!([p, n(10), end])), Operation::BundleLimit).unwrap_or_default();
        assert!(c.descending);
        assert_eq!(c.to, "2025-01-16T23:59:59.999999999Z".parse().ok());
        assert!(parse(&params(json!([p, n(101), start])), Operation::BundleLimit).is_err());
        assert!(
            parse(
                &params(json!([p, n(10), start, end])),
                Operation::BundleLimit
            )
            .is_err()
        );
        assert!(parse(&params(json!([p, start])), Operation::BundleLimit).is_err());
        assert!(parse(&params(json!([n(10), start])), Operation::BundleLimit).is_err());
    }
}
