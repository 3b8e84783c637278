//! Patient: logical ids for subjects, and the Patient interactions.
//!
//! A subject's Patient id is the id the server gave it (kept as the identifier
//! `urn:healthanalyzer:fhir-reference|Patient/<id>`, which is also how a synced Patient keeps
//! its source server's id), or else a UUID derived from its primary identifier, so that
//! subjects which came from files or the simulator have a stable Patient id too.
//!
//! Searching (`GET /Patient`, and the `If-None-Exist` of a create) is in [`search`].

mod search;

pub(crate) use search::{search, search_post};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use healthanalyzer_fhir::{REFERENCE_SYSTEM, check_strict, read_patient, write_patient};
use healthanalyzer_model::{Identifier, Subject};
use healthanalyzer_store::backend::identifier_key;
use healthanalyzer_store::{Conflict, ConflictReason, Filter, Precondition, WriteSet};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::{Access, limited_to, outside_compartment};
use crate::error::{ApiError, ApiResult};
use crate::http::{
    check_format, if_match, json_body, prefer_return, read_response, write_response,
};
use crate::resource::{
    base_url, check_version, now_instant, parse_resource, set_version, stamp, update_body,
    valid_id, version_of,
};
use crate::search::params;
use crate::state::AppState;

/// The namespace of derived Patient ids.
const PATIENT_NS: Uuid = Uuid::from_u128(0x5b0e_2c4a_7d1f_5e3b_9a6c_0f4e_8d2b_1a37);

/// The Patient id derived from a subject identifier.
pub(crate) fn derived_id(id: &Identifier) -> String {
    Uuid::new_v5(&PATIENT_NS, identifier_key(id).as_bytes()).to_string()
}

fn alias_id(id: &Identifier) -> Option<&str> {
    (id.system.as_deref() == Some(REFERENCE_SYSTEM))
        .then(|| id.value.strip_prefix("Patient/"))
        .flatten()
}

/// The Patient id of a subject.
pub(crate) fn logical_id(s: &Subject) -> String {
    std::iter::once(&s.id)
        .chain(&s.other_ids)
        .find_map(alias_id)
        .map_or_else(|| derived_id(&s.id), str::to_string)
}

/// The Patient id of a measurement's subject identifier, without a store lookup when the
/// identifier is itself a reference.
pub(crate) fn logical_id_of(id: &Identifier) -> String {
    alias_id(id).map_or_else(|| derived_id(id), str::to_string)
}

/// A Patient id resolved: the subject's primary identifier and its record, if the store has
/// one (measurements may arrive before demographics).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) primary: Identifier,
    pub(crate) subject: Option<Subject>,
    /// The store's version of the subject (1 when it has no record).
    pub(crate) version: u64,
}

/// Finds the subject behind a Patient id.
pub(crate) async fn resolve(state: &AppState, logical: &str) -> ApiResult<Option<Resolved>> {
    if !valid_id(logical) {
        return Ok(None);
    }
    // A derived id seen before: one lookup.
    if let Some(r) = from_derived(state, logical).await? {
        return Ok(Some(r));
    }
    let store = &state.store;
    let alias = Identifier::new(REFERENCE_SYSTEM, format!("Patient/{logical}"));
    if let Some(v) = store
        .subject_versioned(&alias)
        .await
        .map_err(|e| ApiError::from_store(&e))?
    {
        return Ok(Some(Resolved {
            primary: v.value.id.clone(),
            subject: Some(v.value),
            version: v.version,
        }));
    }
    // Measurements that name `Patient/<id>` with no Patient resource anywhere (a Bulk export's
    // Observation.ndjson alone): that reference is the Patient, and can be read and searched.
    if !store
        .latest(&alias, &[], 1)
        .await
        .map_err(|e| ApiError::from_store(&e))?
        .is_empty()
    {
        return Ok(Some(Resolved {
            primary: alias,
            subject: None,
            version: 1,
        }));
    }
    if Uuid::parse_str(logical).is_err() {
        return Ok(None);
    }
    // Perhaps a subject that arrived since the ids were last listed: list them again, at most
    // every few seconds (a stream of unknown ids must not turn into a stream of full scans).
    {
        let mut last = state.derived_listed.lock().await;
        if last.is_some_and(|t| t.elapsed() < DERIVED_RELIST) {
            return Ok(None);
        }
        let mut found: Vec<(String, Identifier)> = Vec::new();
        for s in store
            .list_subjects()
            .await
            .map_err(|e| ApiError::from_store(&e))?
        {
            found.push((derived_id(&s.id), s.id));
        }
        for id in store
            .measured_subjects()
            .await
            .map_err(|e| ApiError::from_store(&e))?
        {
            found.push((derived_id(&id), id));
        }
        if let Ok(mut m) = state.derived_ids.write() {
            m.extend(found);
        }
        *last = Some(std::time::Instant::now());
    }
    from_derived(state, logical).await
}

/// How often the derived Patient ids may be listed again.
const DERIVED_RELIST: std::time::Duration = std::time::Duration::from_secs(2);

async fn from_derived(state: &AppState, logical: &str) -> ApiResult<Option<Resolved>> {
    let cached = state
        .derived_ids
        .read()
        .ok()
        .and_then(|m| m.get(logical).cloned());
    let Some(id) = cached else {
        return Ok(None);
    };
    let found = state
        .store
        .subject_versioned(&id)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    Ok(Some(match found {
        Some(v) => Resolved {
            primary: v.value.id.clone(),
            subject: Some(v.value),
            version: v.version,
        },
        None => Resolved {
            primary: id,
            subject: None,
            version: 1,
        },
    }))
}

/// Resolves a reference to a Patient (`123`, `Patient/123`, `<base>/Patient/123`).
pub(crate) async fn resolve_reference(
    state: &AppState,
    reference: &str,
) -> ApiResult<Option<Resolved>> {
    let id = match reference.rsplit_once("Patient/") {
        Some((_, id)) => id,
        None if !reference.contains('/') => reference,
        None => return Ok(None),
    };
    resolve(state, id.split('/').next().unwrap_or(id)).await
}

/// The Patient resource of a subject: what the client sent (with the server's id and meta), or,
/// for subjects from other sources, one written from the demographics.
pub(crate) fn patient_json(subject: &Subject) -> ApiResult<Map<String, Value>> {
    let mut p = patient_body(subject)?;
    mark_identifiers(subject, &mut p);
    Ok(p)
}

/// The system of the tags this server adds.
pub(crate) const TAG_SYSTEM: &str = "urn:healthanalyzer:tag";

/// A Patient whose identifier fails its national system's rules (a test number) is served
/// with a `meta.tag` saying so (ADR 0010): accepted, and visibly so.
fn mark_identifiers(subject: &Subject, p: &mut Map<String, Value>) {
    let failing = std::iter::once(&subject.id)
        .chain(subject.other_ids.iter())
        .find_map(healthanalyzer_model::Identifier::national_issue);
    let Some(reason) = failing else { return };
    let tag = serde_json::json!({
        "system": TAG_SYSTEM,
        "code": "identifier-fails-national-rules",
        "display": format!("An identifier fails its national rules ({reason}): test data?"),
    });
    let meta = p.entry("meta").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        let tags = meta
            .entry("tag")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(tags) = tags
            && !tags
                .iter()
                .any(|t| t.get("system") == Some(&Value::from(TAG_SYSTEM)))
        {
            tags.push(tag);
        }
    }
}

fn patient_body(subject: &Subject) -> ApiResult<Map<String, Value>> {
    let id = logical_id(subject);
    if let Some(p) = &subject.payload
        && p.media_type == healthanalyzer_fhir::FHIR_JSON
        && let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(&p.content)
        && o.get("resourceType").and_then(Value::as_str) == Some("Patient")
    {
        o.insert("id".into(), Value::String(id.clone()));
        if o.get("meta").is_none_or(|m| m.get("versionId").is_none()) {
            return Ok(stamp(o, &id, 1, None));
        }
        return Ok(o);
    }
    let mut written = match write_patient(subject, healthanalyzer_fhir::Profile::VitalSigns) {
        Ok(Value::Object(o)) => o,
        Ok(_) => Map::new(),
        Err(e) => return Err(ApiError::from_fhir(&e)),
    };
    written.insert("id".into(), Value::String(id.clone()));
    Ok(stamp(written, &id, 1, None))
}

/// The subject a client's Patient resource describes, with its Patient id and version.
fn subject_from(resource: Map<String, Value>) -> ApiResult<(Subject, Value)> {
    let value = Value::Object(resource);
    let text = value.to_string();
    check_strict(&text).map_err(|e| ApiError::from_fhir(&e))?;
    let subject = read_patient(&text).map_err(|e| ApiError::from_fhir(&e))?;
    Ok((subject, value))
}

/// How often a write without `If-Match` is retried when another writer changed the resource
/// between its read and its commit.
pub(crate) const WRITE_ATTEMPTS: usize = 8;

/// The answer to a Patient write refused by the store: an identifier another Patient holds is
/// 409 naming that Patient; a version another writer moved is 412.
pub(crate) async fn refused(state: &AppState, e: &healthanalyzer_store::Error) -> ApiError {
    if let Some(Conflict {
        reason: ConflictReason::IdentifierTaken { owner, .. },
        ..
    }) = e.conflict()
    {
        let other = match state.store.subject(owner).await {
            Ok(Some(s)) => logical_id(&s),
            _ => logical_id_of(owner),
        };
        return ApiError::conflict(format!(
            "Patient/{other} already has one of this Patient's identifiers; update that Patient, \
             or create conditionally with If-None-Exist: identifier=system|value"
        ))
        .at("Patient.identifier");
    }
    ApiError::from_store(e)
}

/// True when `e` is a lost race that a retry (reading again) can win.
pub(crate) fn lost_race(e: &healthanalyzer_store::Error) -> bool {
    matches!(
        e.conflict().map(|c| &c.reason),
        Some(
            ConflictReason::Version { .. }
                | ConflictReason::Missing
                | ConflictReason::Exists { .. }
        )
    )
}

/// 403 unless a compartment token names this Patient (or the token has no compartment).
fn in_compartment(access: &Option<Extension<Access>>, id: &str) -> ApiResult<()> {
    match limited_to(access) {
        Some(p) if p != id => Err(outside_compartment()),
        _ => Ok(()),
    }
}

/// The answer to a conditional create that found `total` Patients, the first of them `found`.
fn found_response(
    base: &str,
    found: &[Subject],
    total: u64,
    headers: &HeaderMap,
) -> ApiResult<Option<Response>> {
    match found {
        [] => Ok(None),
        [one] if total == 1 => {
            let p = patient_json(one)?;
            let id = logical_id(one);
            Ok(Some(write_response(
                StatusCode::OK,
                &format!("{base}/Patient/{id}/_history/{}", version_of(&p)),
                &Value::Object(p),
                prefer_return(headers),
            )))
        }
        _ => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "duplicate",
            format!("If-None-Exist matches {total} Patients; make the condition specific"),
        )),
    }
}

/// `POST /Patient` (with `If-None-Exist: identifier=system|value` for a conditional create).
///
/// The create is one write set with "must not exist"; the store refuses an identifier another
/// Patient holds, in this process or another one, so of concurrent conditional creates of one
/// identifier exactly one creates and the others find it (200) or get 409.
pub(crate) async fn create(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if limited_to(&access).is_some() {
        return Err(outside_compartment());
    }
    let text = json_body(&headers, &body)?;
    let resource = parse_resource(&text, "Patient")?;
    let base = base_url(&state, &headers);
    let condition = match headers.get("if-none-exist") {
        Some(cond) => Some(params(Some(
            cond.to_str()
                .map_err(|_| ApiError::bad_request("If-None-Exist is not ASCII"))?
                .trim_start_matches('?'),
        ))),
        None => None,
    };
    if let Some(pairs) = &condition {
        let (total, found) = search::conditional_matches(&state, pairs).await?;
        if let Some(r) = found_response(&base, &found, total, &headers)? {
            return Ok(r);
        }
    }
    let id = Uuid::new_v4().to_string();
    let (subject, value) = prepare_create(resource, &id)?;
    let set = WriteSet::new().put_subject(subject, Precondition::Absent);
    if let Err(e) = state.store.apply(&set).await {
        // Another process created the Patient since the search: it is the one found.
        if let Some(pairs) = &condition
            && e.conflict().is_some()
        {
            let (total, found) = search::conditional_matches(&state, pairs).await?;
            if let Some(r) = found_response(&base, &found, total, &headers)? {
                return Ok(r);
            }
        }
        return Err(refused(&state, &e).await);
    }
    tracing::debug!(resource = "Patient", "created");
    Ok(write_response(
        StatusCode::CREATED,
        &format!("{base}/Patient/{id}/_history/1"),
        &value,
        prefer_return(&headers),
    ))
}

/// `GET /Patient/{id}`.
pub(crate) async fn read(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    in_compartment(&access, &id)?;
    let pairs = params(query.as_deref());
    check_format(&headers, format_of(&pairs))?;
    let r = resolve(&state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Patient/{id} is not known to this server")))?;
    let version = r.version;
    let subject = r.subject.unwrap_or_else(|| Subject::new(r.primary));
    let mut p = patient_json(&subject)?;
    set_version(&mut p, version);
    Ok(read_response(&Value::Object(p)))
}

pub(crate) fn format_of(pairs: &[(String, String)]) -> Option<&str> {
    pairs
        .iter()
        .find(|(k, _)| k == "_format")
        .map(|(_, v)| v.as_str())
}

/// `PUT /Patient/{id}`: an update (version + 1, `If-Match` honoured), or a create with the
/// client's id when the server has no such Patient. One write set at the version read; without
/// `If-Match`, a write that lost a race with another writer reads again and retries.
pub(crate) async fn update(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    in_compartment(&access, &id)?;
    let resource = update_body(&headers, &body, "Patient", &id)?;
    let wanted = if_match(&headers)?;
    let base = base_url(&state, &headers);
    let mut attempt = 0;
    let (put, version) = loop {
        let put = prepare_put(&state, &id, resource.clone(), wanted.as_deref()).await?;
        let set = WriteSet::new().put_subject(put.subject.clone(), put.precondition);
        match state.store.apply(&set).await {
            Ok(applied) => {
                let v = applied
                    .subject_versions
                    .first()
                    .copied()
                    .unwrap_or(put.version);
                break (put, v);
            }
            Err(e) if wanted.is_none() && lost_race(&e) && attempt + 1 < WRITE_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(refused(&state, &e).await),
        }
    };
    let status = if !put.existed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(write_response(
        status,
        &format!("{base}/Patient/{id}/_history/{version}"),
        &put.value,
        prefer_return(&headers),
    ))
}

/// A Patient update (or create with the client's id), checked and ready to store.
pub(crate) struct PreparedPut {
    pub(crate) subject: Subject,
    pub(crate) value: Value,
    pub(crate) version: u64,
    /// Whether the Patient existed (update) or not (create).
    pub(crate) existed: bool,
    /// What the store must find: the subject at the version read, or none.
    pub(crate) precondition: Precondition,
}

/// Checks a PUT of Patient `id` against the stored version (`If-Match`), and keeps the primary
/// identifier of an existing Patient.
pub(crate) async fn prepare_put(
    state: &AppState,
    id: &str,
    resource: Map<String, Value>,
    wanted: Option<&str>,
) -> ApiResult<PreparedPut> {
    let existing = resolve(state, id).await?;
    let (version, precondition) = match &existing {
        Some(r) => {
            check_version(wanted, r.version, &format!("Patient/{id}"))?;
            match r.subject {
                Some(_) => (r.version + 1, Precondition::Version(r.version)),
                // Measurements without demographics: the record is new.
                None => (1, Precondition::Absent),
            }
        }
        None => {
            if wanted.is_some() {
                return Err(ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "not-found",
                    format!("Patient/{id} does not exist, so If-Match cannot match"),
                ));
            }
            (1, Precondition::Absent)
        }
    };
    let stamped = stamp(resource, id, version, Some(&now_instant()));
    let (mut subject, value) = subject_from(stamped)?;
    if let Some(old) = &existing {
        // The primary identifier is the subject's identity in the store: it stays.
        if subject.id != old.primary {
            let mut others = vec![subject.id.clone()];
            others.extend(subject.other_ids.drain(..).filter(|i| *i != old.primary));
            subject.id = old.primary.clone();
            subject.other_ids = others;
        }
    }
    Ok(PreparedPut {
        subject,
        value,
        version,
        existed: existing.is_some(),
        precondition,
    })
}

/// A Patient create: a new id, checked and ready to store (the store checks its identifiers).
pub(crate) fn prepare_create(
    resource: Map<String, Value>,
    id: &str,
) -> ApiResult<(Subject, Value)> {
    let stamped = stamp(resource, id, 1, Some(&now_instant()));
    subject_from(stamped)
}

/// `DELETE /Patient/{id}`: refused with 409 while Observations refer to the Patient.
pub(crate) async fn delete(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    in_compartment(&access, &id)?;
    let Some(r) = resolve(&state, &id).await? else {
        return Ok(no_content());
    };
    let n = state
        .store
        .count(&Filter::subject(r.primary.clone()))
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    if n > 0 {
        return Err(ApiError::conflict(format!(
            "Patient/{id} has {n} Observations; delete them first"
        )));
    }
    state
        .store
        .apply(&WriteSet::new().delete_subject(r.primary, Precondition::Any))
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    Ok(no_content())
}

pub(crate) fn no_content() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}
