//! Observation: every measurement in the store is an Observation; Observations written through
//! the API become measurements, keeping the resource as sent as their provenance.

use std::ops::Bound;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use healthanalyzer_fhir::{FHIR_JSON, ReadOptions, WriteOptions, check_strict, read_observation};
use healthanalyzer_model::{
    Catalog, Identifier, KindId, Measurement, MeasurementId, Payload, Subject, Validator,
};
use healthanalyzer_store::{Filter, Order, PageToken, Precondition, Query, Versioned, WriteSet};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::{Access, check_subject, limited_to, restrict_search};
use crate::error::{ApiError, ApiResult};
use crate::http::{
    Return, check_format, fhir_response, if_match, json_body, prefer_return, read_response,
    write_response,
};
use crate::patient::{
    WRITE_ATTEMPTS, format_of, logical_id_of, lost_race, no_content, resolve_reference,
};
use crate::resource::{
    base_url, check_version, now_instant, parse_resource, set_version, stamp, update_body,
    version_of,
};
use crate::search::{DateParam, Paging, max_lower, min_upper, params, query_string, searchset};
use crate::state::AppState;

/// Patients created in the same transaction: `Patient/<id>` to their primary identifier.
pub(crate) type Pending = std::collections::HashMap<String, Identifier>;

/// The source id of measurements created through the API.
pub const API_SOURCE: &str = "fhir-api";

pub(crate) fn token_record(system: &str, value: &str) -> String {
    format!("identifier|{system}|{value}")
}

/// The Observation of a measurement: the resource as the client sent it (with the server's id
/// and meta), or one written from the measurement.
pub(crate) fn observation_json(state: &AppState, m: &Measurement) -> ApiResult<Map<String, Value>> {
    observation_json_with(&state.catalog, m)
}

fn observation_json_with(catalog: &Catalog, m: &Measurement) -> ApiResult<Map<String, Value>> {
    let id = m.id.as_uuid().to_string();
    if let Some(p) = &m.provenance.payload
        && p.media_type == FHIR_JSON
        && let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(&p.content)
        && o.get("resourceType").and_then(Value::as_str) == Some("Observation")
    {
        if o.get("meta").is_some_and(|m| m.get("versionId").is_some()) {
            o.insert("id".into(), Value::String(id));
            return Ok(o);
        }
        return Ok(stamp(o, &id, 1, None));
    }
    let written = healthanalyzer_fhir::write_observation(m, &WriteOptions::new(catalog))
        .map_err(|e| ApiError::from_fhir(&e))?;
    let Value::Object(mut o) = written else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "the Observation could not be written",
        ));
    };
    if let Some(Value::Object(subject)) = o.get_mut("subject")
        && !subject.contains_key("reference")
    {
        subject.insert(
            "reference".into(),
            Value::String(format!("Patient/{}", logical_id_of(&m.subject))),
        );
    }
    Ok(stamp(o, &id, 1, None))
}

/// Checks and maps a client's Observation (already stamped with id and meta) into the
/// measurement to store under (`source`, `record`).
pub(crate) async fn to_measurement(
    state: &AppState,
    resource: Map<String, Value>,
    source: &str,
    record: &str,
    pending: &Pending,
) -> ApiResult<(Measurement, Value)> {
    let value = Value::Object(resource);
    let text = value.to_string();
    check_strict(&text).map_err(|e| ApiError::from_fhir(&e))?;
    let reference = value
        .get("subject")
        .and_then(|s| s.get("reference"))
        .and_then(Value::as_str);
    let primary = match reference {
        Some(r) if pending.contains_key(r) => pending[r].clone(),
        Some(r) => {
            let resolved = resolve_reference(state, r).await?.ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "Observation.subject refers to {r}, which this server does not know; \
                     create the Patient first (or in the same transaction)"
                ))
                .at("Observation.subject")
            })?;
            resolved.primary
        }
        None => {
            let ident = value.get("subject").and_then(|s| s.get("identifier"));
            let id = ident
                .and_then(|i| {
                    let v = i.get("value")?.as_str()?;
                    Some(match i.get("system").and_then(Value::as_str) {
                        Some(s) => Identifier::new(s, v),
                        None => Identifier::local(v),
                    })
                })
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "Observation.subject is required: a reference to a Patient on this server",
                    )
                    .at("Observation.subject")
                })?;
            let s = state
                .store
                .subject(&id)
                .await
                .map_err(|e| ApiError::from_store(&e))?
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "Observation.subject.identifier matches no Patient on this server; \
                         create the Patient first",
                    )
                    .at("Observation.subject")
                })?;
            s.id
        }
    };
    let mut bare = value.clone();
    if let Some(o) = bare.as_object_mut() {
        o.remove("id");
    }
    // Checked against the whole R4 model above (check_strict): the mapping need not again.
    let options = ReadOptions::new(&state.catalog, source)
        .with_validation(healthanalyzer_fhir::Validation::Lenient);
    let m = read_observation(&bare.to_string(), &options, Some(record))
        .map_err(|e| ApiError::from_fhir(&e))?;
    let mut m = Validator::new(&state.catalog)
        .identifiers(state.config.identifiers)
        .normalize(m)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    m.subject = primary;
    m.provenance.payload = Some(Payload {
        media_type: FHIR_JSON.into(),
        content: text,
    });
    Ok((m, value))
}

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

/// The Observation of a stored measurement, at the store's version.
pub(crate) fn versioned_json(
    state: &AppState,
    v: &Versioned<Measurement>,
) -> ApiResult<Map<String, Value>> {
    versioned_json_with(&state.catalog, v)
}

fn versioned_json_with(
    catalog: &Catalog,
    v: &Versioned<Measurement>,
) -> ApiResult<Map<String, Value>> {
    let mut o = observation_json_with(catalog, &v.value)?;
    set_version(&mut o, v.version);
    Ok(o)
}

/// [`versioned_json`] as JSON text: a fresh Observation is written straight from the model
/// (no `Value`, ADR 0008's companion in `docs/benchmarks.md`), anything else is stamped and
/// serialised. The two give the same text (tested below).
pub(crate) fn versioned_text(catalog: &Catalog, v: &Versioned<Measurement>) -> ApiResult<String> {
    let m = &v.value;
    let reference = (m.subject.system.as_deref() != Some(healthanalyzer_fhir::REFERENCE_SYSTEM))
        .then(|| format!("Patient/{}", logical_id_of(&m.subject)));
    let served = healthanalyzer_fhir::Served {
        version: v.version,
        subject_reference: reference.as_deref(),
    };
    if let Some(text) =
        healthanalyzer_fhir::write_served_observation_text(m, &WriteOptions::new(catalog), served)
            .map_err(|e| ApiError::from_fhir(&e))?
    {
        return Ok(text);
    }
    Ok(Value::Object(versioned_json_with(catalog, v)?).to_string())
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

/// `meta.lastUpdated` of a measurement's stored resource, if it has one (Observations written
/// through the API do; synced ones carry what their source said, if anything).
fn last_updated(m: &Measurement) -> Option<healthanalyzer_model::jiff::Timestamp> {
    let p = m.provenance.payload.as_ref()?;
    let v: Value = serde_json::from_str(&p.content).ok()?;
    v.get("meta")?.get("lastUpdated")?.as_str()?.parse().ok()
}

/// An Observation search, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    filter: Filter,
    /// Nothing can match (an unknown patient or code): no store query needed.
    empty: bool,
    /// `ne` dates, applied to the results.
    not_in: Vec<DateParam>,
    /// `_lastUpdated`, applied to the results (`meta.lastUpdated` of the stored resource).
    last_updated: Vec<DateParam>,
    /// A single measurement by business identifier (conditional creates only).
    by_identifier: Option<MeasurementId>,
    /// The record id a conditional create on an identifier stores under.
    identifier_record: Option<String>,
    order: Order,
    /// The parameters applied, for the self and next links.
    applied: Vec<(String, String)>,
    /// The parameters this server does not know (ignored, or 400 with `Prefer: handling=strict`).
    ignored: Vec<String>,
    /// `_include=Observation:subject` (or `:patient`): the page's Patients join the Bundle.
    include_subject: bool,
    /// What `code` asked for: kinds whose own code it names (all their readings), and panel
    /// components whose code it names (their lone readings only: ADR 0009).
    code_scope: Option<CodeScope>,
}

/// Kinds a `code` search names whole, and (kind, component) pairs whose lone readings it names.
type CodeScope = (Vec<KindId>, Vec<(KindId, String)>);

/// The Observation search parameters this server supports (also in the CapabilityStatement).
pub(crate) const SEARCH_PARAMS: &[(&str, &str, &str)] = &[
    (
        "patient",
        "reference",
        "The Patient the Observation is about",
    ),
    (
        "subject",
        "reference",
        "The subject (a Patient) of the Observation",
    ),
    (
        "code",
        "token",
        "Observation.code: system|code, code, comma-separated for OR",
    ),
    (
        "category",
        "token",
        "Observation.category, e.g. vital-signs",
    ),
    (
        "date",
        "date",
        "Observation.effective, with eq/ne/lt/le/gt/ge/sa/eb and partial dates",
    ),
    (
        "_lastUpdated",
        "date",
        "meta.lastUpdated, as date; filtered over the other parameters' results \
         (Observations from sources without meta.lastUpdated never match)",
    ),
];

impl Spec {
    /// Parses search parameters; `conditional`: for `If-None-Exist`, where `identifier` is
    /// allowed too.
    pub(crate) async fn parse(
        state: &AppState,
        pairs: &[(String, String)],
        conditional: bool,
    ) -> ApiResult<Self> {
        crate::search::refuse_unsupported_modifiers(pairs)?;
        let mut spec = Spec {
            filter: Filter::default(),
            empty: false,
            not_in: Vec::new(),
            last_updated: Vec::new(),
            by_identifier: None,
            identifier_record: None,
            order: Order::Ascending,
            applied: Vec::new(),
            ignored: Vec::new(),
            include_subject: false,
            code_scope: None,
        };
        let mut kinds: Option<Vec<KindId>> = None;
        let restrict = |kinds: &mut Option<Vec<KindId>>, allowed: Vec<KindId>| {
            *kinds = Some(match kinds.take() {
                None => allowed,
                Some(k) => k.into_iter().filter(|x| allowed.contains(x)).collect(),
            });
        };
        for (k, v) in pairs {
            match k.as_str() {
                name if crate::auth::is_patient_param(name) => {
                    if v.contains(',') {
                        return Err(ApiError::bad_request(format!(
                            "{name}: one Patient per search (no comma-separated list)"
                        ))
                        .at(name.to_string()));
                    }
                    match resolve_reference(state, v).await? {
                        Some(r) => {
                            if spec
                                .filter
                                .subject
                                .as_ref()
                                .is_some_and(|s| *s != r.primary)
                            {
                                spec.empty = true;
                            }
                            spec.filter.subject = Some(r.primary);
                        }
                        None => spec.empty = true,
                    }
                }
                "patient:identifier" | "subject:identifier" => {
                    let wanted = match v.parse::<healthanalyzer_model::Identifier>() {
                        Ok(id) if id.system.is_some() => id,
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "{k}: send system|value (the Patient's identifier with its system)"
                            ))
                            .at(k.clone()));
                        }
                    };
                    // The subject that identifier names (a Patient's primary identifier, or one
                    // of its others), else measurements stored under it directly.
                    let primary = match state
                        .store
                        .subject(&wanted)
                        .await
                        .map_err(|e| ApiError::from_store(&e))?
                    {
                        Some(s) => s.id,
                        None => wanted,
                    };
                    if spec.filter.subject.as_ref().is_some_and(|s| *s != primary) {
                        spec.empty = true;
                    }
                    spec.filter.subject = Some(primary);
                }
                "code" => {
                    let names = |codings: &[healthanalyzer_model::Coding]| {
                        v.split(',').any(|tok| {
                            let (sys, code) = match tok.split_once('|') {
                                Some((s, c)) => (Some(s), c),
                                None => (None, tok),
                            };
                            codings.iter().any(|c| {
                                c.code == code && sys.is_none_or(|s| s.is_empty() || s == c.system)
                            })
                        })
                    };
                    let mut whole = Vec::new();
                    let mut lone = Vec::new();
                    for kind in state.catalog.kinds() {
                        if names(&kind.codings) {
                            whole.push(kind.id.clone());
                        }
                        for comp in &kind.components {
                            if names(&comp.codings) {
                                lone.push((kind.id.clone(), comp.id.to_string()));
                            }
                        }
                    }
                    let mut allowed = whole.clone();
                    allowed.extend(lone.iter().map(|(k, _)| k.clone()));
                    allowed.dedup();
                    restrict(&mut kinds, allowed);
                    spec.code_scope = Some(match spec.code_scope.take() {
                        None => (whole, lone),
                        // Two `code` parameters: both must hold.
                        Some((w, l)) => (
                            w.into_iter().filter(|k| whole.contains(k)).collect(),
                            l.into_iter().filter(|x| lone.contains(x)).collect(),
                        ),
                    });
                }
                "category" => {
                    let allowed: Vec<KindId> = state
                        .catalog
                        .kinds()
                        .iter()
                        .filter(|kind| {
                            v.split(',').any(|tok| {
                                let code = tok.rsplit('|').next().unwrap_or(tok);
                                kind.category == code
                            })
                        })
                        .map(|kind| kind.id.clone())
                        .collect();
                    restrict(&mut kinds, allowed);
                }
                "date" => {
                    let p = DateParam::parse(v, "date")?;
                    match p.bounds() {
                        Some((from, to)) => {
                            spec.filter.from = max_lower(spec.filter.from, from);
                            spec.filter.to = min_upper(spec.filter.to, to);
                        }
                        None => spec.not_in.push(p),
                    }
                }
                "_lastUpdated" => spec.last_updated.push(DateParam::parse(v, "_lastUpdated")?),
                "identifier" if !conditional => {
                    return Err(ApiError::bad_request(
                        "Observation search by identifier is not supported (no identifier index); \
                         for idempotent creates send If-None-Exist: identifier=system|value",
                    )
                    .at("identifier"));
                }
                "identifier" => {
                    let Some((system, value)) = v.split_once('|') else {
                        return Err(ApiError::bad_request(
                            "identifier: send system|value (this server finds Observations by identifiers with a system)",
                        )
                        .at("identifier"));
                    };
                    let record = token_record(system, value);
                    let mid = MeasurementId::from_source(API_SOURCE, &record);
                    if spec.by_identifier.is_some_and(|x| x != mid) {
                        spec.empty = true;
                    }
                    spec.by_identifier = Some(mid);
                    spec.identifier_record = Some(record);
                }
                "_sort" => {
                    spec.order = match v.as_str() {
                        "date" => Order::Ascending,
                        "-date" => Order::Descending,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "_sort={other} is not supported; use date or -date"
                            ))
                            .at("_sort"));
                        }
                    };
                }
                "_include" => match v.as_str() {
                    "Observation:subject"
                    | "Observation:patient"
                    | "Observation:subject:Patient"
                    | "Observation:patient:Patient" => spec.include_subject = true,
                    other => {
                        spec.ignored.push(format!("_include={other}"));
                        continue;
                    }
                },
                "_count" | "_page" | "_summary" | "_total" | "_format" => continue,
                other => {
                    spec.ignored.push(other.to_string());
                    continue;
                }
            }
            spec.applied.push((k.clone(), v.clone()));
        }
        if let Some(k) = kinds {
            if k.is_empty() {
                spec.empty = true;
            }
            spec.filter.kinds = k;
        }
        if matches!((&spec.filter.from, &spec.filter.to), (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) if a > b)
        {
            spec.empty = true;
        }
        Ok(spec)
    }

    /// True when nothing can match.
    pub(crate) fn is_empty(&self) -> bool {
        self.empty
    }

    /// The store filter.
    pub(crate) fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The store filter, to narrow further.
    pub(crate) fn filter_mut(&mut self) -> &mut Filter {
        &mut self.filter
    }

    fn keep(&self, m: &Measurement) -> bool {
        if let Some((whole, lone)) = &self.code_scope {
            // A lone component reading's code is its component's; a panel's is the panel's.
            let matches = match &m.value {
                healthanalyzer_model::Value::Components(cs) if m.value.is_lone_component() => lone
                    .iter()
                    .any(|(k, c)| *k == m.kind && cs[0].id.as_str() == c),
                _ => whole.contains(&m.kind),
            };
            if !matches {
                return false;
            }
        }
        let t = m.effective.instant();
        let hi = t
            .checked_add(healthanalyzer_model::jiff::SignedDuration::from_nanos(1))
            .unwrap_or(t);
        self.not_in.iter().all(|p| p.matches(t, hi))
            && (self.last_updated.is_empty() || {
                let updated = last_updated(m);
                updated.is_some_and(|u| {
                    let u_hi = u
                        .checked_add(healthanalyzer_model::jiff::SignedDuration::from_nanos(1))
                        .unwrap_or(u);
                    self.last_updated.iter().all(|p| p.matches(u, u_hi))
                })
            })
    }

    /// Up to `n` matches from the start (for conditional creates).
    pub(crate) async fn first(
        &self,
        state: &AppState,
        n: usize,
    ) -> ApiResult<Vec<Versioned<Measurement>>> {
        let (items, _) = self.page(state, n, None).await?;
        Ok(items)
    }

    /// One page of matches, each with the store's version, and the token of the next.
    async fn page(
        &self,
        state: &AppState,
        count: usize,
        token: Option<String>,
    ) -> ApiResult<(Vec<Versioned<Measurement>>, Option<PageToken>)> {
        if self.empty {
            return Ok((Vec::new(), None));
        }
        if let Some(mid) = &self.by_identifier {
            let m = state
                .store
                .get_versioned(mid)
                .await
                .map_err(|e| ApiError::from_store(&e))?;
            let items = m
                .into_iter()
                .filter(|v| self.filter.matches(&v.value) && self.keep(&v.value))
                .take(count)
                .collect();
            return Ok((items, None));
        }
        let mut q = Query::new(self.filter.clone(), count.max(1)).order(self.order);
        q.page = token.map(PageToken::from);
        let page = state.store.query(&q).await.map_err(|e| match e {
            healthanalyzer_store::Error::InvalidInput { .. } => ApiError::bad_request(
                "_page is not a page token of this search; start the search again",
            )
            .at("_page"),
            other => ApiError::from_store(&other),
        })?;
        let versions = page.versions;
        let mut items = Vec::with_capacity(page.items.len());
        for (i, m) in page.items.into_iter().enumerate() {
            if !self.keep(&m) {
                continue;
            }
            // A store that keeps no versions: the one in the kept resource, else 1.
            let version = match versions.get(i) {
                Some(v) => *v,
                None => version_of(&observation_json(state, &m)?),
            };
            items.push(Versioned { value: m, version });
        }
        Ok((items, page.next))
    }

    async fn total(&self, state: &AppState) -> ApiResult<Option<u64>> {
        if self.empty {
            return Ok(Some(0));
        }
        if self.by_identifier.is_some() {
            return Ok(None);
        }
        let all = state
            .store
            .count(&self.filter)
            .await
            .map_err(|e| ApiError::from_store(&e))?;
        if !self.last_updated.is_empty() {
            return Ok(None);
        }
        if self.not_in.is_empty() {
            return Ok(Some(all));
        }
        if let [p] = self.not_in.as_slice() {
            let mut inside = self.filter.clone();
            inside.from = max_lower(inside.from, Bound::Included(p.lo));
            inside.to = min_upper(inside.to, Bound::Excluded(p.hi));
            let n = state
                .store
                .count(&inside)
                .await
                .map_err(|e| ApiError::from_store(&e))?;
            return Ok(Some(all.saturating_sub(n)));
        }
        Ok(None)
    }
}

/// `GET /Observation?…`.
pub(crate) async fn search(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let mut pairs = params(query.as_deref());
    check_format(&headers, format_of(&pairs))?;
    restrict_search(&mut pairs, limited_to(&access).as_deref())?;
    let base = base_url(&state, &headers);
    let spec = Spec::parse(&state, &pairs, false).await?;
    crate::http::check_strict_handling(&headers, &spec.ignored)?;
    let paging = Paging::parse(&pairs, state.config.default_count, state.config.max_count)?;
    let (count, token) = (paging.count, paging.page.clone());
    let mut self_pairs = spec.applied.clone();
    self_pairs.push(("_count".into(), count.to_string()));
    if paging.only_total {
        let total = spec.total(&state).await?;
        let self_link = format!("{base}/Observation?{}", query_string(&self_pairs));
        return Ok(fhir_response(
            StatusCode::OK,
            &searchset(&self_link, None, total, Vec::new()),
        ));
    }
    let total = if paging.want_total && token.is_none() {
        spec.total(&state).await?
    } else {
        None
    };
    let (items, next) = spec.page(&state, count, token.clone()).await?;
    let next_link = next.map(|t| {
        let mut p = self_pairs.clone();
        p.push(("_page".into(), t.as_str().to_string()));
        format!("{base}/Observation?{}", query_string(&p))
    });
    if let Some(t) = token {
        self_pairs.push(("_page".into(), t));
    }
    let self_link = format!("{base}/Observation?{}", query_string(&self_pairs));
    // The matches are written as text and spliced into the Bundle: building a `Value` per
    // Observation and serialising it was most of a search's time (`docs/benchmarks.md`).
    let mut entries = Vec::with_capacity(items.len());
    for v in &items {
        entries.push((
            format!("{base}/Observation/{}", v.value.id.as_uuid()),
            versioned_text(&state.catalog, v)?,
        ));
    }
    let bundle = searchset(&self_link, next_link.as_deref(), total, Vec::new());
    let mut included = Vec::new();
    if spec.include_subject {
        let mut seen = std::collections::HashSet::new();
        for m in items.iter().map(|v| &v.value) {
            if !seen.insert(&m.subject) {
                continue;
            }
            let subject = state
                .store
                .subject(&m.subject)
                .await
                .map_err(|e| ApiError::from_store(&e))?
                .unwrap_or_else(|| Subject::new(m.subject.clone()));
            included.push((
                format!("{base}/Patient/{}", crate::patient::logical_id(&subject)),
                Value::Object(crate::patient::patient_json(&subject)?).to_string(),
            ));
        }
    }
    Ok(crate::http::fhir_bytes(
        StatusCode::OK,
        crate::search::splice_entries(&bundle, &entries, &included),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthanalyzer_model::{DateTime, DeviceRef, Payload, Provenance, parse_decimal};

    fn measurement(
        kind: &str,
        value: healthanalyzer_model::Value,
        subject: Identifier,
    ) -> Measurement {
        Measurement::new(
            Provenance::new("src", format!("r-{kind}")),
            subject,
            kind,
            value,
            DateTime::parse("2024-03-31T08:15:00.250+02:00").unwrap_or_else(|_| unreachable!()),
        )
    }

    /// The text a search writes for an Observation is the stamped value's text, byte for
    /// byte, for fresh Observations of every shape and for kept payloads alike.
    #[test]
    fn versioned_text_is_the_stamped_value() {
        let catalog = Catalog::builtin();
        let q = |s: &str, u: &str| {
            healthanalyzer_model::Value::quantity(parse_decimal(s).unwrap_or_default(), u)
        };
        let mut cases = vec![
            measurement(
                "heart-rate",
                q("61", "/min"),
                Identifier::new("urn:oid:1.2.3", "p\"1"),
            ),
            measurement("steps", q("9000", "{steps}"), Identifier::local("p2")),
            measurement(
                "blood-pressure",
                healthanalyzer_model::Value::blood_pressure(
                    parse_decimal("121").unwrap_or_default(),
                    parse_decimal("79.5").unwrap_or_default(),
                ),
                Identifier::new(healthanalyzer_fhir::REFERENCE_SYSTEM, "Patient/p3"),
            ),
        ];
        let mut with_device = cases[0].clone();
        with_device.device = Some(DeviceRef {
            display: Some("cuff".into()),
            ..DeviceRef::default()
        });
        with_device.context.method = Some("seated".into());
        cases.push(with_device);
        let mut csv = cases[1].clone();
        csv.provenance.payload = Some(Payload {
            media_type: "text/csv".into(),
            content: "p2,9000".into(),
        });
        cases.push(csv);
        let mut kept = cases[0].clone();
        kept.provenance.payload = Some(Payload {
            media_type: healthanalyzer_fhir::FHIR_JSON.into(),
            content: r#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#
                .into(),
        });
        cases.push(kept);
        for (i, m) in cases.into_iter().enumerate() {
            for version in [1, 7] {
                let v = Versioned {
                    value: m.clone(),
                    version,
                };
                let text = versioned_text(catalog, &v).unwrap_or_else(|e| panic!("{i}: {e:?}"));
                let value =
                    versioned_json_with(catalog, &v).unwrap_or_else(|e| panic!("{i}: {e:?}"));
                assert_eq!(
                    text,
                    Value::Object(value).to_string(),
                    "case {i}, version {version}"
                );
            }
        }
    }
}
