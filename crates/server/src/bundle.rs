//! `POST /fhir` with a transaction (all or nothing) or batch (each entry on its own) Bundle.

use std::collections::{HashMap, HashSet};

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use healthanalyzer_fhir::rules::{PMD_BUNDLE_PROFILE, check_pmd_bundle};
use healthanalyzer_model::{Identifier, Measurement, MeasurementId};
use healthanalyzer_store::{Applied, ConflictReason, Filter, Precondition, RecordKey, WriteSet};
use serde_json::{Map, Value, json};
use tower::ServiceExt;
use uuid::Uuid;

use crate::auth::{Access, check_subject, compartment, outside_compartment};
use crate::error::{ApiError, ApiResult};
use crate::http::{Return, fhir_response, json_body, prefer_return};
use crate::observation::{API_SOURCE, Pending, get_versioned, to_measurement};
use crate::patient::{WRITE_ATTEMPTS, lost_race, prepare_create, prepare_put, refused, resolve};
use crate::resource::{base_url, check_version, now_instant, parse_resource, set_version, stamp};
use crate::state::AppState;

/// One entry of the request Bundle.
struct Entry {
    full_url: Option<String>,
    resource: Option<Map<String, Value>>,
    method: String,
    url: String,
    if_match: Option<String>,
    if_none_exist: Option<String>,
}

fn entries(bundle: &Map<String, Value>, max: usize) -> ApiResult<Vec<Entry>> {
    let list = match bundle.get("entry") {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(ApiError::bad_request("Bundle.entry must be an array").at("Bundle.entry"));
        }
    };
    if list.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-costly",
            format!(
                "the Bundle has {} entries; this server takes at most {max} per Bundle: split it",
                list.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let at = |what: &str| format!("Bundle.entry[{i}].{what}");
        let req = e.get("request").ok_or_else(|| {
            ApiError::bad_request(format!("{}: required", at("request"))).at(at("request"))
        })?;
        let method = req
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::bad_request(format!("{}: required", at("request.method")))
                    .at(at("request.method"))
            })?
            .to_string();
        let url = req
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::bad_request(format!("{}: required", at("request.url")))
                    .at(at("request.url"))
            })?
            .to_string();
        let resource = match e.get("resource") {
            None => None,
            Some(Value::Object(o)) => Some(o.clone()),
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "{}: must be a resource",
                    at("resource")
                )));
            }
        };
        out.push(Entry {
            full_url: e.get("fullUrl").and_then(Value::as_str).map(str::to_string),
            resource,
            method,
            url,
            if_match: req
                .get("ifMatch")
                .and_then(Value::as_str)
                .map(str::to_string),
            if_none_exist: req
                .get("ifNoneExist")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    Ok(out)
}

/// `POST /fhir`.
pub(crate) async fn post(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let access = access.map_or(Access::Open, |a| a.0);
    let text = json_body(&headers, &body)?;
    let bundle = parse_resource(&text, "Bundle")?;
    if claims_profile(&bundle, PMD_BUNDLE_PROFILE)
        && let Some(refused) = check_pmd(&bundle)
    {
        return Ok(refused);
    }
    let kind = bundle.get("type").and_then(Value::as_str).unwrap_or("");
    let list = entries(&bundle, state.config.max_bundle_entries)?;
    match kind {
        "transaction" => transaction(&state, &access, &headers, list).await,
        "batch" => batch(&state, &access, &headers, list).await,
        other => Err(ApiError::bad_request(format!(
            "POST /fhir takes a transaction or batch Bundle; this one is {other:?}"
        ))
        .at("Bundle.type")),
    }
}

/// Whether a resource claims a profile in `meta.profile` (with or without a `|version`).
fn claims_profile(resource: &Map<String, Value>, profile: &str) -> bool {
    resource
        .get("meta")
        .and_then(|m| m.get("profile"))
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .any(|p| p == profile || p.split_once('|').is_some_and(|(url, _)| url == profile))
        })
}

/// A Bundle claiming `pmd-Bundle-Observation` is checked against it whole before anything is
/// done (`rules::check_pmd_bundle`: a batch of Observations only, each with a unique
/// `fullUrl` and `request.method` POST or PUT, each a VkpObservation): when it breaks a rule,
/// 400 with an OperationOutcome of one issue per violation, located by its `expression`, and
/// nothing is written.
fn check_pmd(bundle: &Map<String, Value>) -> Option<Response> {
    let violations = check_pmd_bundle(&Value::Object(bundle.clone()));
    if violations.is_empty() {
        return None;
    }
    let issue: Vec<Value> = violations
        .iter()
        .map(|v| {
            json!({
                "severity": "error",
                "code": "invariant",
                "details": {"coding": [{"system": PMD_RULE_SYSTEM, "code": v.rule}]},
                "diagnostics": format!("{}: {}", v.location, v.message),
                "expression": [v.location],
            })
        })
        .collect();
    tracing::debug!(violations = violations.len(), "PMD batch refused");
    Some(fhir_response(
        StatusCode::BAD_REQUEST,
        &json!({"resourceType": "OperationOutcome", "issue": issue}),
    ))
}

/// The system of the rule names in a refused PMD batch's issues (`details.coding`).
const PMD_RULE_SYSTEM: &str = "urn:healthanalyzer:rule";

/// A batch: every entry through the API on its own, as if sent alone.
async fn batch(
    state: &AppState,
    access: &Access,
    headers: &HeaderMap,
    list: Vec<Entry>,
) -> ApiResult<Response> {
    let Some(api) = state.api.get().cloned() else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "the API router is not ready",
        ));
    };
    let base = base_url(state, headers);
    let mut out = Vec::with_capacity(list.len());
    for e in list {
        let uri = format!("/{}", e.url.trim_start_matches('/'));
        let mut req = Request::builder()
            .method(e.method.as_str())
            .uri(&uri)
            .extension(access.clone());
        for name in [header::HOST, header::ACCEPT] {
            if let Some(v) = headers.get(&name) {
                req = req.header(name, v.clone());
            }
        }
        if let Some(v) = headers.get("prefer") {
            req = req.header("prefer", v.clone());
        }
        if let Some(m) = &e.if_match {
            req = req.header(header::IF_MATCH, m.as_str());
        }
        if let Some(c) = &e.if_none_exist {
            req = req.header("if-none-exist", c.as_str());
        }
        let body = match &e.resource {
            Some(r) => {
                req = req.header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/fhir+json"),
                );
                Body::from(Value::Object(r.clone()).to_string())
            }
            None => Body::empty(),
        };
        let Ok(request) = req.body(body) else {
            let mut entry = json!({"response": {"status": "400 Bad Request", "outcome":
                ApiError::bad_request(format!("request.url {:?} is not a valid URL", e.url)).outcome()}});
            if let (Some(f), Some(o)) = (&e.full_url, entry.as_object_mut()) {
                o.insert("fullUrl".into(), Value::String(f.clone()));
            }
            out.push(entry);
            continue;
        };
        let res = match api.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        out.push(response_entry(res, e.full_url.as_deref(), &base).await);
    }
    Ok(fhir_response(
        StatusCode::OK,
        &response_bundle("batch-response", out),
    ))
}

/// A batch-response entry from the answer to one entry: it echoes the request entry's
/// `fullUrl` (PMD's batch-response rule: each answer is matched to its entry), else names what
/// was written or read (under `base`). The body is the entry's `resource`, or its `response.outcome` when it is an
/// OperationOutcome (an error, or the answer `Prefer: return=OperationOutcome` asks for); with
/// `return=minimal` a write has none.
async fn response_entry(res: Response, full_url: Option<&str>, base: &str) -> Value {
    let status = res.status();
    let h = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let mut response = Map::new();
    response.insert(
        "status".into(),
        Value::String(format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )),
    );
    for (name, key) in [
        (header::LOCATION, "location"),
        (header::ETAG, "etag"),
        (header::LAST_MODIFIED, "lastModified"),
    ] {
        if let Some(v) = h.get(name).and_then(|v| v.to_str().ok()) {
            let v = match key {
                "lastModified" => match http_date_instant(v) {
                    Some(i) => i,
                    None => continue,
                },
                _ => v.to_string(),
            };
            response.insert(key.into(), Value::String(v));
        }
    }
    let mut entry = Map::new();
    match full_url {
        Some(f) => {
            entry.insert("fullUrl".into(), Value::String(f.to_string()));
        }
        None if !status.is_success() => {}
        None => {
            let read = body.as_ref().and_then(|b| {
                let ty = b.get("resourceType")?.as_str()?;
                let id = b.get("id")?.as_str()?;
                (!matches!(ty, "Bundle" | "OperationOutcome" | "Parameters"))
                    .then(|| format!("{base}/{ty}/{id}"))
            });
            let written = response
                .get("location")
                .and_then(Value::as_str)
                .map(|loc| strip_history(loc).to_string());
            if let Some(url) = written.or(read) {
                entry.insert("fullUrl".into(), Value::String(url));
            }
        }
    }
    match body {
        Some(b)
            if !status.is_success()
                || b.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") =>
        {
            response.insert("outcome".into(), b);
        }
        Some(b) => {
            entry.insert("resource".into(), b);
        }
        None => {}
    }
    entry.insert("response".into(), Value::Object(response));
    Value::Object(entry)
}

/// An HTTP date (`Mon, 23 Nov 2026 06:00:00 GMT`) as a FHIR instant.
fn http_date_instant(date: &str) -> Option<String> {
    let t = healthanalyzer_model::jiff::fmt::rfc2822::parse(date).ok()?;
    Some(t.timestamp().to_string())
}

fn strip_history(location: &str) -> &str {
    location.split("/_history/").next().unwrap_or(location)
}

fn response_bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "id": Uuid::new_v4().to_string(),
        "meta": {"lastUpdated": now_instant()},
        "type": kind,
        "entry": entries,
    })
}

/// Replaces every `reference` that names a Bundle entry's `fullUrl` with the entry's new
/// `Type/id` (also for `$submit-measurement`, `fut::submit`).
pub(crate) fn rewrite_references(v: &mut Value, map: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "reference"
                    && let Value::String(s) = x
                    && let Some(new) = map.get(s.as_str())
                {
                    *s = new.clone();
                } else {
                    rewrite_references(x, map);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_references(x, map)),
        _ => {}
    }
}

/// What a transaction entry will do once everything is checked.
enum Planned {
    /// A Patient or an Observation written.
    Written(Written),
    Deleted,
}

/// A resource a transaction writes, and where the store reports its version.
struct Written {
    ty: &'static str,
    id: String,
    value: Value,
    created: bool,
    slot: Slot,
}

/// A write's place in the write set.
enum Slot {
    Subject(usize),
    Measurement(usize),
}

fn in_entry(i: usize, mut e: ApiError) -> ApiError {
    e.diagnostics = format!("Bundle.entry[{i}]: {}", e.diagnostics);
    let inner = e.expression.take().unwrap_or_default();
    e.expression = Some(if inner.is_empty() {
        format!("Bundle.entry[{i}]")
    } else {
        format!(
            "Bundle.entry[{i}].resource.{}",
            inner
                .split_once('.')
                .map_or(inner.as_str(), |(_, rest)| rest)
        )
    });
    e
}

/// A transaction: every entry is checked and mapped first (a bad one fails the Bundle with
/// nothing written), then the whole Bundle is **one write set**: every create "must not
/// exist", every update and delete is at the version read. The store commits all of it or none
/// of it, so a time limit, a dropped connection or a killed process leaves nothing half-done.
/// When another writer changed a resource between the read and the commit, a Bundle without
/// `If-Match` is read and tried again; with `If-Match`, the entry's conflict is the answer.
async fn transaction(
    state: &AppState,
    access: &Access,
    headers: &HeaderMap,
    list: Vec<Entry>,
) -> ApiResult<Response> {
    let retry = list.iter().all(|e| e.if_match.is_none());
    let mut attempt = 0;
    loop {
        let (set, planned) = plan_transaction(state, access, &list).await?;
        match state.store.apply(&set).await {
            Ok(applied) => return Ok(transaction_response(state, headers, planned, &applied)),
            Err(e) if retry && lost_race(&e) && attempt + 1 < WRITE_ATTEMPTS => attempt += 1,
            Err(e) => {
                let entry = e
                    .conflict()
                    .and_then(|c| planned.records.get(&c.record).copied());
                let err = match &e.conflict().map(|c| &c.reason) {
                    Some(ConflictReason::IdentifierTaken { .. }) => refused(state, &e).await,
                    _ => ApiError::from_store(&e),
                };
                return Err(match entry {
                    Some(i) => in_entry(i, err),
                    None => err,
                });
            }
        }
    }
}

/// A transaction checked and mapped: what to answer per entry once its write set committed.
struct PlannedTransaction {
    plans: Vec<Option<Planned>>,
    now: String,
    /// Which entry wrote which record (to name the entry of a conflict).
    records: HashMap<RecordKey, usize>,
}

async fn plan_transaction(
    state: &AppState,
    access: &Access,
    list: &[Entry],
) -> ApiResult<(WriteSet, PlannedTransaction)> {
    let limit = compartment(Some(access));

    // 1. Ids for the new resources, and fullUrl -> Type/id.
    let mut targets: Vec<(String, String)> = Vec::with_capacity(list.len());
    let mut map: HashMap<String, String> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (i, e) in list.iter().enumerate() {
        let (ty, id) = match (
            e.method.as_str(),
            e.url.trim_start_matches('/').split_once('/'),
        ) {
            ("POST", None) => {
                if e.if_none_exist.is_some() {
                    return Err(in_entry(
                        i,
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "not-supported",
                            "ifNoneExist is supported in batch Bundles, not in transactions",
                        ),
                    ));
                }
                let ty = e.url.trim_start_matches('/').to_string();
                let id = match ty.as_str() {
                    "Observation" => {
                        MeasurementId::from_source(API_SOURCE, &Uuid::new_v4().to_string())
                            .as_uuid()
                            .to_string()
                    }
                    _ => Uuid::new_v4().to_string(),
                };
                (ty, id)
            }
            ("PUT" | "DELETE", Some((ty, id))) if !id.contains('/') && !id.contains('?') => {
                (ty.to_string(), id.to_string())
            }
            (m, _) => {
                return Err(in_entry(
                    i,
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "not-supported",
                        format!(
                            "{m} {} is not supported in a transaction (POST Type, PUT Type/id, DELETE Type/id; use a batch for reads and searches)",
                            e.url
                        ),
                    ),
                ));
            }
        };
        if !matches!(ty.as_str(), "Patient" | "Observation") {
            return Err(in_entry(
                i,
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not-supported",
                    format!("{ty} is not a resource type of this server (Patient, Observation)"),
                ),
            ));
        }
        if let Access::Token(grant) = access {
            let letter = match e.method.as_str() {
                "POST" => 'c',
                "PUT" => 'u',
                _ => 'd',
            };
            if !grant.allows(&ty, letter) {
                return Err(in_entry(
                    i,
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!("the token's scopes do not allow '{letter}' on {ty}"),
                    ),
                ));
            }
            if ty == "Patient" && limit.as_deref().is_some_and(|p| p != id) {
                return Err(in_entry(i, outside_compartment()));
            }
        }
        if !seen.insert(format!("{ty}/{id}")) {
            return Err(in_entry(
                i,
                ApiError::bad_request(format!("{ty}/{id} appears twice in the transaction")),
            ));
        }
        if let Some(f) = &e.full_url {
            map.insert(f.clone(), format!("{ty}/{id}"));
        }
        targets.push((ty, id));
    }

    // 2. Check and map everything into one write set.
    let mut set = WriteSet::new();
    let mut records: HashMap<RecordKey, usize> = HashMap::new();
    let mut pending: Pending = HashMap::new();
    let mut plans: Vec<Option<Planned>> = (0..list.len()).map(|_| None).collect();
    let now = now_instant();
    // Patients first: Observations may refer to them.
    for (i, e) in list.iter().enumerate() {
        let (ty, id) = &targets[i];
        if ty != "Patient" || e.method == "DELETE" {
            continue;
        }
        let mut resource = e
            .resource
            .clone()
            .ok_or_else(|| in_entry(i, ApiError::bad_request("a Patient is required")))?;
        if resource.get("resourceType").and_then(Value::as_str) != Some("Patient") {
            return Err(in_entry(
                i,
                ApiError::bad_request("the resource is not a Patient").at("Patient.resourceType"),
            ));
        }
        let mut v = Value::Object(std::mem::take(&mut resource));
        rewrite_references(&mut v, &map);
        let Value::Object(mut resource) = v else {
            continue;
        };
        let (subject, value, created, precondition) = if e.method == "POST" {
            let (subject, value) = prepare_create(resource, id).map_err(|x| in_entry(i, x))?;
            (subject, value, true, Precondition::Absent)
        } else {
            if resource.get("id").and_then(Value::as_str) != Some(id.as_str()) {
                resource.insert("id".into(), Value::String(id.clone()));
            }
            let put = prepare_put(state, id, resource, e.if_match.as_deref().map(trim_etag))
                .await
                .map_err(|x| in_entry(i, x))?;
            (put.subject, put.value, !put.existed, put.precondition)
        };
        pending.insert(format!("Patient/{id}"), subject.id.clone());
        records.insert(RecordKey::Subject(subject.id.clone()), i);
        plans[i] = Some(Planned::Written(Written {
            ty: "Patient",
            id: id.clone(),
            value,
            created,
            slot: Slot::Subject(set.subjects.len()),
        }));
        set = set.put_subject(subject, precondition);
    }
    let mut leaving: Vec<Measurement> = Vec::new();
    let mut delete_patients: Vec<(usize, Identifier)> = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let (ty, id) = &targets[i];
        if e.method == "DELETE" {
            if ty == "Observation" {
                if let Some(old) = get_versioned(state, id).await.map_err(|x| in_entry(i, x))? {
                    check_subject(state, limit.as_deref(), &old.value.subject)
                        .await
                        .map_err(|x| in_entry(i, x))?;
                    records.insert(RecordKey::Measurement(old.value.id), i);
                    set = set.delete_measurement(old.value.id, Precondition::Version(old.version));
                    leaving.push(old.value);
                }
            } else if let Some(r) = resolve(state, id).await.map_err(|x| in_entry(i, x))? {
                if r.subject.is_some() {
                    records.insert(RecordKey::Subject(r.primary.clone()), i);
                    set = set.delete_subject(r.primary.clone(), Precondition::Version(r.version));
                }
                delete_patients.push((i, r.primary));
            }
            plans[i] = Some(Planned::Deleted);
            continue;
        }
        if ty != "Observation" {
            continue;
        }
        let resource = e
            .resource
            .clone()
            .ok_or_else(|| in_entry(i, ApiError::bad_request("an Observation is required")))?;
        if resource.get("resourceType").and_then(Value::as_str) != Some("Observation") {
            return Err(in_entry(
                i,
                ApiError::bad_request("the resource is not an Observation")
                    .at("Observation.resourceType"),
            ));
        }
        let mut v = Value::Object(resource);
        rewrite_references(&mut v, &map);
        let Value::Object(resource) = v else { continue };
        let (m, value, created, precondition) = if e.method == "POST" {
            let record = Uuid::new_v4().to_string();
            let mid = MeasurementId::from_source(API_SOURCE, &record);
            let id = mid.as_uuid().to_string();
            targets[i].1 = id.clone();
            let stamped = stamp(resource, &id, 1, Some(&now));
            let (m, value) = to_measurement(state, stamped, API_SOURCE, &record, &pending)
                .await
                .map_err(|x| in_entry(i, x))?;
            (m, value, true, Precondition::Absent)
        } else {
            let old = get_versioned(state, id).await.map_err(|x| in_entry(i, x))?.ok_or_else(|| in_entry(i, ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED, "not-supported",
                format!("Observation/{id} does not exist and this server assigns Observation ids: create it with POST"))))?;
            check_version(
                e.if_match.as_deref().map(trim_etag),
                old.version,
                &format!("Observation/{id}"),
            )
            .map_err(|x| in_entry(i, x))?;
            let stamped = stamp(resource, id, old.version + 1, Some(&now));
            let (m, value) = to_measurement(
                state,
                stamped,
                &old.value.provenance.source_id,
                &old.value.provenance.record_id,
                &pending,
            )
            .await
            .map_err(|x| in_entry(i, x))?;
            check_subject(state, limit.as_deref(), &old.value.subject)
                .await
                .map_err(|x| in_entry(i, x))?;
            (m, value, false, Precondition::Version(old.version))
        };
        check_subject(state, limit.as_deref(), &m.subject)
            .await
            .map_err(|x| in_entry(i, x))?;
        records.insert(RecordKey::Measurement(m.id), i);
        plans[i] = Some(Planned::Written(Written {
            ty: "Observation",
            id: targets[i].1.clone(),
            value,
            created,
            slot: Slot::Measurement(set.measurements.len()),
        }));
        set = set.put_measurement(m, precondition);
    }
    for (i, primary) in &delete_patients {
        let n = state
            .store
            .count(&Filter::subject(primary.clone()))
            .await
            .map_err(|e| ApiError::from_store(&e))?;
        let gone = leaving.iter().filter(|m| m.subject == *primary).count() as u64;
        let arriving = set
            .measurements
            .iter()
            .any(|w| w.measurement.subject == *primary);
        if n > gone || arriving {
            return Err(in_entry(
                *i,
                ApiError::conflict("the Patient has Observations; delete them first"),
            ));
        }
    }
    Ok((
        set,
        PlannedTransaction {
            plans,
            now,
            records,
        },
    ))
}

/// The transaction-response, in the order of the request, with the versions the store gave.
fn transaction_response(
    state: &AppState,
    headers: &HeaderMap,
    planned: PlannedTransaction,
    applied: &Applied,
) -> Response {
    let base = base_url(state, headers);
    let prefer = prefer_return(headers);
    let now = planned.now;
    let mut out = Vec::with_capacity(planned.plans.len());
    for plan in planned.plans {
        let entry = match plan {
            Some(Planned::Written(w)) => {
                let version = match w.slot {
                    Slot::Subject(i) => applied.subject_versions.get(i),
                    Slot::Measurement(i) => applied.measurement_versions.get(i),
                };
                entry_response(&base, w, version.copied(), &now, prefer)
            }
            Some(Planned::Deleted) => json!({"response": {"status": "204 No Content"}}),
            None => json!({"response": {"status": "200 OK"}}),
        };
        out.push(entry);
    }
    tracing::debug!(entries = out.len(), "transaction committed");
    fhir_response(
        StatusCode::OK,
        &response_bundle("transaction-response", out),
    )
}

fn entry_response(
    base: &str,
    written: Written,
    version: Option<u64>,
    now: &str,
    prefer: Return,
) -> Value {
    let Written {
        ty,
        id,
        mut value,
        created,
        ..
    } = written;
    let version = version.unwrap_or(1);
    if let Some(o) = value.as_object_mut() {
        set_version(o, version);
    }
    let mut entry = json!({
        "fullUrl": format!("{base}/{ty}/{id}"),
        "response": {
            "status": if created { "201 Created" } else { "200 OK" },
            "location": format!("{ty}/{id}/_history/{version}"),
            "etag": format!("W/\"{version}\""),
            "lastModified": now,
        }
    });
    match (prefer, entry.as_object_mut()) {
        (Return::Representation, Some(o)) => {
            o.insert("resource".into(), value);
        }
        (Return::OperationOutcome, Some(o)) => {
            let outcome = json!({
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "information", "code": "informational",
                           "diagnostics": format!("stored as {ty}/{id}/_history/{version}")}]
            });
            if let Some(Value::Object(r)) = o.get_mut("response") {
                r.insert("outcome".into(), outcome);
            }
        }
        _ => {}
    }
    entry
}

fn trim_etag(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix("W/").unwrap_or(s).trim_matches('"')
}
