//! The Observation interactions on one resource: create (also conditional), read, update and
//! delete.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use healthanalyzer_model::{Measurement, MeasurementId};
use healthanalyzer_store::{Precondition, Versioned, WriteSet};
use serde_json::Value;
use uuid::Uuid;

use super::mapping::{to_measurement, versioned_json};
use super::{API_SOURCE, Pending, Spec};
use crate::auth::{Access, check_subject, limited_to, restrict_search};
use crate::error::{ApiError, ApiResult};
use crate::http::{
    Return, check_format, if_match, json_body, prefer_return, read_response, write_response,
};
use crate::patient::{WRITE_ATTEMPTS, format_of, lost_race, no_content};
use crate::resource::{base_url, check_version, now_instant, parse_resource, stamp, update_body};
use crate::search::params;
use crate::state::AppState;

fn parse_id(id: &str) -> Option<MeasurementId> {
    Uuid::parse_str(id).ok().map(MeasurementId::from_uuid)
}

pub(crate) async fn get_versioned(
    state: &AppState,
    id: &str,
) -> ApiResult<Option<Versioned<Measurement>>> {
    let Some(mid) = parse_id(id) else {
        return Ok(None);
    };
    state
        .store
        .get_versioned(&mid)
        .await
        .map_err(|e| ApiError::from_store(&e))
}

/// The answer to a conditional create that found `found`.
fn found_response(
    state: &AppState,
    base: &str,
    found: &[Versioned<Measurement>],
    prefer: Return,
) -> ApiResult<Option<Response>> {
    match found {
        [] => Ok(None),
        [v] => {
            let o = versioned_json(state, v)?;
            Ok(Some(write_response(
                StatusCode::OK,
                &format!(
                    "{base}/Observation/{}/_history/{}",
                    v.value.id.as_uuid(),
                    v.version
                ),
                &Value::Object(o),
                prefer,
            )))
        }
        _ => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "duplicate",
            "If-None-Exist matches more than one Observation; make the condition specific",
        )),
    }
}

/// `POST /Observation` (with `If-None-Exist` for a conditional create).
///
/// One write set with "must not exist". A conditional create on an identifier stores under an
/// id derived from it, so of concurrent creates of one identifier, in any number of processes,
/// the store lets exactly one through; the others find it (200).
pub(crate) async fn create(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let limit = limited_to(&access);
    let text = json_body(&headers, &body)?;
    let resource = parse_resource(&text, "Observation")?;
    let base = base_url(&state, &headers);
    let prefer = prefer_return(&headers);
    // The record id: from the condition's identifier for a conditional create (so the next
    // one with the same identifier finds it), else fresh: a plain POST always creates.
    let mut record: Option<String> = None;
    let mut condition: Option<Spec> = None;
    if let Some(cond) = headers.get("if-none-exist") {
        let cond = cond
            .to_str()
            .map_err(|_| ApiError::bad_request("If-None-Exist is not ASCII"))?;
        let mut pairs = params(Some(cond.trim_start_matches('?')));
        restrict_search(&mut pairs, limit.as_deref())?;
        let spec = Spec::parse(&state, &pairs, true).await?;
        record = spec.identifier_record.clone();
        let found = spec.first(&state, 2).await?;
        if let Some(r) = found_response(&state, &base, &found, prefer)? {
            return Ok(r);
        }
        condition = Some(spec);
    }
    let record = record.unwrap_or_else(|| Uuid::new_v4().to_string());
    let mid = MeasurementId::from_source(API_SOURCE, &record);
    let id = mid.as_uuid().to_string();
    let stamped = stamp(resource, &id, 1, Some(&now_instant()));
    let (m, value) = to_measurement(&state, stamped, API_SOURCE, &record, &Pending::new()).await?;
    check_subject(&state, limit.as_deref(), &m.subject).await?;
    let kind = m.kind.clone();
    let set = WriteSet::new().put_measurement(m, Precondition::Absent);
    if let Err(e) = state.store.apply(&set).await {
        if let Some(spec) = &condition
            && e.conflict().is_some()
        {
            // Created by another request since the search: that one is the answer.
            let found = spec.first(&state, 2).await?;
            if let Some(r) = found_response(&state, &base, &found, prefer)? {
                return Ok(r);
            }
        }
        return Err(ApiError::from_store(&e));
    }
    tracing::debug!(resource = "Observation", kind = %kind, "created");
    Ok(write_response(
        StatusCode::CREATED,
        &format!("{base}/Observation/{id}/_history/1"),
        &value,
        prefer,
    ))
}

/// `GET /Observation/{id}`.
pub(crate) async fn read(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let pairs = params(query.as_deref());
    check_format(&headers, format_of(&pairs))?;
    let v = get_versioned(&state, &id).await?.ok_or_else(|| {
        ApiError::not_found(format!("Observation/{id} is not known to this server"))
    })?;
    check_subject(&state, limited_to(&access).as_deref(), &v.value.subject).await?;
    Ok(read_response(&Value::Object(versioned_json(&state, &v)?)))
}

/// `PUT /Observation/{id}`: version + 1, `If-Match` honoured. The server assigns Observation
/// ids, so an update of an unknown id is refused (405). One write set at the version read;
/// without `If-Match`, a write that lost a race with another writer reads again and retries.
pub(crate) async fn update(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let limit = limited_to(&access);
    let resource = update_body(&headers, &body, "Observation", &id)?;
    let wanted = if_match(&headers)?;
    let base = base_url(&state, &headers);
    let mut attempt = 0;
    loop {
        let Some(old) = get_versioned(&state, &id).await? else {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "not-supported",
                format!(
                    "Observation/{id} does not exist and this server assigns Observation ids: create it with POST"
                ),
            ));
        };
        check_subject(&state, limit.as_deref(), &old.value.subject).await?;
        check_version(wanted.as_deref(), old.version, &format!("Observation/{id}"))?;
        let stamped = stamp(resource.clone(), &id, old.version + 1, Some(&now_instant()));
        let (m, value) = to_measurement(
            &state,
            stamped,
            &old.value.provenance.source_id,
            &old.value.provenance.record_id,
            &Pending::new(),
        )
        .await?;
        check_subject(&state, limit.as_deref(), &m.subject).await?;
        let set = WriteSet::new().put_measurement(m, Precondition::Version(old.version));
        match state.store.apply(&set).await {
            Ok(applied) => {
                let version = applied
                    .measurement_versions
                    .first()
                    .copied()
                    .unwrap_or(old.version + 1);
                return Ok(write_response(
                    StatusCode::OK,
                    &format!("{base}/Observation/{id}/_history/{version}"),
                    &value,
                    prefer_return(&headers),
                ));
            }
            Err(e) if wanted.is_none() && lost_race(&e) && attempt + 1 < WRITE_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(ApiError::from_store(&e)),
        }
    }
}

/// `DELETE /Observation/{id}` (204, also when there was nothing to delete).
pub(crate) async fn delete(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if let Some(mid) = parse_id(&id) {
        let mut precondition = Precondition::Any;
        if let Some(limit) = limited_to(&access) {
            match get_versioned(&state, &id).await? {
                Some(v) => {
                    check_subject(&state, Some(&limit), &v.value.subject).await?;
                    // Deleted only as checked: not after another writer moved it elsewhere.
                    precondition = Precondition::Version(v.version);
                }
                None => return Ok(no_content()),
            }
        }
        state
            .store
            .apply(&WriteSet::new().delete_measurement(mid, precondition))
            .await
            .map_err(|e| ApiError::from_store(&e))?;
    }
    Ok(no_content())
}
