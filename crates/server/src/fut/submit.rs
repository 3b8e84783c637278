//! `POST [base]/$submit-measurement`: one measurement (a transaction Bundle of Observations,
//! Media, QuestionnaireResponses and Provenances of one Patient and one EpisodeOfCare), checked
//! against FUT's rules and stored with a Provenance the server records, in ONE write set.

use std::collections::{BTreeSet, HashMap, HashSet};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use healthanalyzer_fhir::REFERENCE_SYSTEM;
use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::{DateTime, Effective, Identifier, MeasurementId};
use healthanalyzer_store::{
    ConflictReason, Document, DocumentQuery, Precondition, RecordKey, WriteSet,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    Context, EPISODE_OF_CARE_EXTENSION, Issue, PROVENANCE_PROFILE, SUBMISSION_KEY,
    SUBMISSION_POLICY, audit, check_scope, episode_key, outside_context, patient_key, refusal,
    tail,
};
use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::http::{fhir_response, json_body};
use crate::observation::{API_SOURCE, Pending, get_versioned, to_measurement, token_record};
use crate::patient::resolve_reference;
use crate::resource::{base_url, now_instant, parse_resource, stamp};
use crate::state::AppState;

/// Where the entries of the `measurement` Bundle are, as the rule checker names them.
const ENTRY: &str = "Parameters.parameter[0].resource.entry";

/// One entry of the submission, checked.
struct Entry {
    ty: String,
    full_url: Option<String>,
    resource: Map<String, Value>,
    /// `identifier=system|value` of `request.ifNoneExist`: the entry's id is derived from it.
    condition: Option<(String, String)>,
}

/// What an entry becomes: its id, and for an Observation the record id its measurement id is
/// derived from.
struct Target {
    ty: String,
    id: String,
    record: Option<String>,
}

impl Target {
    fn reference(&self) -> String {
        format!("{}/{}", self.ty, self.id)
    }
}

/// `POST /fhir/$submit-measurement`.
pub(crate) async fn submit_measurement(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    request_id: Option<Extension<crate::http::RequestId>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let access = access.map_or(Access::Open, |a| a.0);
    let res = match submit(&state, &access, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    audit(
        &access,
        request_id.as_ref().map(|r| &r.0),
        "submit-measurement",
        res.status(),
    );
    res
}

fn at(i: usize, what: &str) -> String {
    if what.is_empty() {
        format!("{ENTRY}[{i}]")
    } else {
        format!("{ENTRY}[{i}].{what}")
    }
}

/// An error of entry `i`: its expression moved under the entry (`Observation.code` becomes
/// `….entry[i].resource.code`).
fn in_entry(i: usize, mut e: ApiError) -> ApiError {
    e.diagnostics = format!("{}: {}", at(i, ""), e.diagnostics);
    let inner = e.expression.take().unwrap_or_default();
    e.expression = Some(match inner.split_once('.') {
        Some((_, rest)) if !rest.is_empty() => at(i, &format!("resource.{rest}")),
        _ => at(i, "resource"),
    });
    e
}

/// The `measurement` Bundle of the Parameters (the rule checker reports everything else).
fn measurement(params: &Map<String, Value>) -> Option<&Map<String, Value>> {
    match params
        .get("parameter")
        .and_then(Value::as_array)?
        .as_slice()
    {
        [p] if p.get("name").and_then(Value::as_str) == Some("measurement") => {
            p.get("resource").and_then(Value::as_object)
        }
        _ => None,
    }
}

/// `identifier=system|value`, the one form of `ifNoneExist` a submission takes.
fn condition(text: &str) -> Option<(String, String)> {
    let v = text.trim_start_matches('?').strip_prefix("identifier=")?;
    let (system, value) = v.split_once('|')?;
    let decode = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    let (system, value) = (decode(system)?, decode(value)?);
    (!system.is_empty() && !value.is_empty() && !value.contains('|')).then_some((system, value))
}

/// The entries, or the issues that refuse the submission (besides the rule checker's).
fn entries(bundle: &Map<String, Value>, issues: &mut Vec<Issue>) -> Vec<Entry> {
    let mut out = Vec::new();
    let list = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, e) in list.iter().enumerate() {
        let Some(resource) = e.get("resource").and_then(Value::as_object) else {
            continue;
        };
        let ty = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let request = e.get("request");
        let url = request.and_then(|r| r.get("url")).and_then(Value::as_str);
        if url.is_some_and(|u| u.trim_start_matches('/') != ty) {
            issues.push(Issue {
                code: "invalid",
                diagnostics: format!(
                    "{}: a submitted {ty} is POSTed to {ty}, not to another url",
                    at(i, "request.url")
                ),
                expression: at(i, "request.url"),
            });
        }
        let cond = match request
            .and_then(|r| r.get("ifNoneExist"))
            .and_then(Value::as_str)
        {
            None => None,
            Some(c) => {
                let parsed = condition(c);
                if parsed.is_none() {
                    issues.push(Issue {
                        code: "not-supported",
                        diagnostics: format!(
                            "{}: the only condition a submission takes is identifier=system|value",
                            at(i, "request.ifNoneExist")
                        ),
                        expression: at(i, "request.ifNoneExist"),
                    });
                }
                parsed
            }
        };
        out.push(Entry {
            ty,
            full_url: e.get("fullUrl").and_then(Value::as_str).map(str::to_string),
            resource: resource.clone(),
            condition: cond,
        });
    }
    out
}

fn reference_of(v: Option<&Value>) -> Option<&str> {
    v?.get("reference")?.as_str()
}

fn episode_of(resource: &Map<String, Value>) -> Option<&str> {
    resource
        .get("extension")?
        .as_array()?
        .iter()
        .filter(|e| e.get("url").and_then(Value::as_str) == Some(EPISODE_OF_CARE_EXTENSION))
        .find_map(|e| reference_of(e.get("valueReference")))
}

/// The instants a dateTime (or a Period) covers, as a span.
fn span_of(v: Option<&Value>) -> Option<(Timestamp, Timestamp)> {
    let v = v?;
    if let Some(s) = v.as_str() {
        let t = DateTime::parse(s).ok()?.instant();
        return Some((t, t));
    }
    let start = v
        .get("start")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse(s).ok());
    let end = v
        .get("end")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse(s).ok());
    match (start, end) {
        (Some(s), Some(e)) => Some((s.instant(), e.instant().max(s.instant()))),
        (Some(t), None) | (None, Some(t)) => Some((t.instant(), t.instant())),
        (None, None) => None,
    }
}

/// The time of a kept document: a Media's `created[x]`, a QuestionnaireResponse's `authored`.
fn document_span(resource: &Map<String, Value>) -> Option<(Timestamp, Timestamp)> {
    match resource.get("resourceType").and_then(Value::as_str)? {
        "Media" => span_of(
            resource
                .get("createdDateTime")
                .or_else(|| resource.get("createdPeriod")),
        ),
        "QuestionnaireResponse" => span_of(resource.get("authored")),
        _ => None,
    }
}

fn widen(span: &mut Option<(Timestamp, Timestamp)>, add: Option<(Timestamp, Timestamp)>) {
    if let Some((s, e)) = add {
        *span = Some(match *span {
            None => (s, e),
            Some((a, b)) => (a.min(s), b.max(e)),
        });
    }
}

/// `based-on|ServiceRequest/<id>` of every `basedOn`.
fn based_on_keys(resource: &Map<String, Value>, keys: &mut BTreeSet<String>) {
    for r in resource
        .get("basedOn")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if let Some(t) = reference_of(Some(r)).and_then(|r| tail(r, "ServiceRequest")) {
            keys.insert(format!("based-on|{t}"));
        }
    }
}

/// `tag|<system>|<code>` of every `meta.tag`, for `_tag` searches.
fn tag_keys(resource: &Map<String, Value>, keys: &mut BTreeSet<String>) {
    for t in resource
        .get("meta")
        .and_then(|m| m.get("tag"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if let Some(code) = t.get("code").and_then(Value::as_str) {
            let system = t.get("system").and_then(Value::as_str).unwrap_or_default();
            keys.insert(super::tag_key(system, code));
        }
    }
}

/// The agent of the Provenance: the token's Patient, else the token's name.
fn agent_who(access: &Access, patient_reference: &str) -> Value {
    match access {
        Access::Token(g) if g.patient.is_some() => json!({"reference": patient_reference}),
        Access::Token(g) => json!({"display": format!("client {}", g.who)}),
        Access::Open => json!({"display": "a client of a server without authentication"}),
    }
}

async fn submit(
    state: &AppState,
    access: &Access,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let text = json_body(headers, body)?;
    let params = parse_resource(&text, "Parameters")?;
    // 1. FUT's rules, and what this server needs beyond them: every problem at once.
    let mut issues: Vec<Issue> =
        healthanalyzer_fhir::rules::check_fut_submission(&Value::Object(params.clone()))
            .into_iter()
            .map(|v| Issue {
                code: "invariant",
                diagnostics: format!("{}: {} (rule {})", v.location, v.message, v.rule),
                expression: v.location,
            })
            .collect();
    let Some(bundle) = measurement(&params) else {
        return Ok(refusal(StatusCode::UNPROCESSABLE_ENTITY, &issues));
    };
    let count = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if count > state.config.max_bundle_entries {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-costly",
            format!(
                "the measurement Bundle has {count} entries; this server takes at most {} (submit-measurement is for one measurement at a time)",
                state.config.max_bundle_entries
            ),
        )
        .at(ENTRY));
    }
    let list = entries(bundle, &mut issues);
    // The Patient and the EpisodeOfCare (the checker made sure there is one of each).
    let first = list.iter().enumerate().find(|(_, e)| e.ty != "Provenance");
    let patient_reference = first
        .and_then(|(_, e)| reference_of(e.resource.get("subject")))
        .map(str::to_string);
    let episode_reference = first
        .and_then(|(_, e)| episode_of(&e.resource))
        .map(str::to_string);
    let first_at = first.map_or(0, |(i, _)| i);
    let patient = patient_reference
        .as_deref()
        .and_then(|r| tail(r, "Patient"));
    let episode = episode_reference
        .as_deref()
        .and_then(|r| tail(r, "EpisodeOfCare"));
    if patient.is_none() {
        issues.push(Issue {
            code: "required",
            diagnostics: format!(
                "{}: the submission's resources need a subject that is a reference to a Patient",
                at(first_at, "resource.subject")
            ),
            expression: at(first_at, "resource.subject"),
        });
    }
    if episode.is_none() {
        issues.push(Issue {
            code: "required",
            diagnostics: format!(
                "{}: the submission's resources need the workflow-episodeOfCare extension with a reference to an EpisodeOfCare",
                at(first_at, "resource.extension")
            ),
            expression: at(first_at, "resource.extension"),
        });
    }
    let mut seen = HashSet::new();
    issues.retain(|i| seen.insert((i.expression.clone(), i.diagnostics.clone())));
    if !issues.is_empty() {
        return Ok(refusal(StatusCode::UNPROCESSABLE_ENTITY, &issues));
    }
    let (Some(patient), Some(episode), Some(patient_reference), Some(episode_reference)) =
        (patient, episode, patient_reference, episode_reference)
    else {
        return Err(ApiError::unprocessable("the submission names no Patient"));
    };

    // 2. The token: its scopes, and its Patient and EpisodeOfCare context.
    for ty in list.iter().map(|e| e.ty.as_str()).collect::<BTreeSet<_>>() {
        check_scope(access, ty, 'c')?;
    }
    let context = Context::of(access);
    if !context.allows_patient(&patient) {
        return Err(outside_context(
            "Patient",
            &at(first_at, "resource.subject"),
        ));
    }
    if !context.allows_episode_of_care(&episode_reference) {
        return Err(outside_context(
            "EpisodeOfCare",
            &at(first_at, "resource.extension"),
        ));
    }

    // 3. Ids, and fullUrl -> Type/id.
    let mut targets: Vec<Target> = Vec::with_capacity(list.len());
    let mut map: HashMap<String, String> = HashMap::new();
    let mut ids = HashSet::new();
    for (i, e) in list.iter().enumerate() {
        let record = e.condition.as_ref().map(|(s, v)| token_record(s, v));
        let (id, record) = if e.ty == "Observation" {
            let record = record.unwrap_or_else(|| Uuid::new_v4().to_string());
            let id = MeasurementId::from_source(API_SOURCE, &record)
                .as_uuid()
                .to_string();
            (id, Some(record))
        } else {
            let id = match &record {
                Some(r) => MeasurementId::from_source(&format!("fut-{}", e.ty), r)
                    .as_uuid()
                    .to_string(),
                None => Uuid::new_v4().to_string(),
            };
            (id, None)
        };
        let target = Target {
            ty: e.ty.clone(),
            id,
            record,
        };
        if !ids.insert(target.reference()) {
            return Err(ApiError::bad_request(format!(
                "{}: two entries of the submission have the same ifNoneExist identifier",
                at(i, "request.ifNoneExist")
            ))
            .at(at(i, "request.ifNoneExist")));
        }
        if let Some(f) = &e.full_url {
            map.insert(f.clone(), target.reference());
        }
        targets.push(target);
    }

    // 4. Everything into one write set.
    let primary = match resolve_reference(state, &patient_reference).await? {
        Some(r) => r.primary,
        // FUT's Patients live in another service: the reference names the Patient, as a
        // measurement naming `Patient/<id>` without a Patient resource does.
        None => Identifier::new(REFERENCE_SYSTEM, patient.clone()),
    };
    let mut pending: Pending = HashMap::new();
    for e in &list {
        if let Some(r) = reference_of(e.resource.get("subject")) {
            pending.insert(r.to_string(), primary.clone());
        }
    }
    let now = now_instant();
    let mut set = WriteSet::new();
    let mut records: HashMap<RecordKey, usize> = HashMap::new();
    let mut span: Option<(Timestamp, Timestamp)> = None;
    let mut provenance_keys: BTreeSet<String> = BTreeSet::new();
    let common_keys = [patient_key(&patient), episode_key(&episode)];
    let mut slots: Vec<Option<usize>> = vec![None; list.len()];
    for (i, (e, t)) in list.iter().zip(&targets).enumerate() {
        let mut v = Value::Object(e.resource.clone());
        crate::bundle::rewrite_references(&mut v, &map);
        let Value::Object(resource) = v else { continue };
        based_on_keys(&resource, &mut provenance_keys);
        tag_keys(&resource, &mut provenance_keys);
        let stamped = stamp(resource, &t.id, 1, Some(&now));
        if e.ty == "Observation" {
            if let Some(d) = reference_of(stamped.get("device")).and_then(|r| tail(r, "Device")) {
                provenance_keys.insert(format!("device|{d}"));
            }
            let record = t.record.clone().unwrap_or_default();
            let (m, _) = to_measurement(state, stamped, API_SOURCE, &record, &pending)
                .await
                .map_err(|x| in_entry(i, x))?;
            let (s, end) = match &m.effective {
                Effective::At(t) => (t.instant(), t.instant()),
                Effective::Period { start, end } => (
                    start.instant(),
                    end.map_or(start.instant(), |e| e.instant().max(start.instant())),
                ),
            };
            widen(&mut span, Some((s, end)));
            records.insert(RecordKey::Measurement(m.id), i);
            slots[i] = Some(set.measurements.len());
            set = set.put_measurement(m, Precondition::Absent);
        } else {
            let own = document_span(&stamped);
            widen(&mut span, own);
            let mut keys: BTreeSet<String> = common_keys.iter().cloned().collect();
            based_on_keys(&stamped, &mut keys);
            if e.ty == "Provenance" {
                for r in stamped
                    .get("target")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    if let Some(r) = reference_of(Some(r)) {
                        keys.insert(format!("target|{r}"));
                    }
                }
            }
            let mut doc = Document::new(
                e.ty.as_str(),
                t.id.as_str(),
                Value::Object(stamped).to_string(),
            );
            doc.keys = keys.into_iter().collect();
            if let Some((s, end)) = own {
                doc = doc.span(s, end);
            }
            records.insert(RecordKey::document(e.ty.as_str(), t.id.as_str()), i);
            set = set.put_document(doc, Precondition::Absent);
        }
    }
    // The Provenance the server records for the submission.
    let provenance_id = Uuid::new_v4().to_string();
    let mut provenance = json!({
        "resourceType": "Provenance",
        "id": provenance_id,
        "meta": {"versionId": "1", "lastUpdated": now, "profile": [PROVENANCE_PROFILE]},
        "target": targets.iter().map(|t| json!({"reference": t.reference()})).collect::<Vec<_>>(),
        "recorded": now,
        "policy": [SUBMISSION_POLICY],
        "activity": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            "code": "CREATE",
            "display": "create"
        }]},
        "agent": [{
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "code": "author",
                "display": "Author"
            }]},
            "who": agent_who(access, &patient_reference)
        }]
    });
    if let (Some((s, e)), Some(o)) = (span, provenance.as_object_mut()) {
        o.insert(
            "occurredPeriod".into(),
            json!({"start": s.to_string(), "end": e.to_string()}),
        );
    }
    let mut keys: BTreeSet<String> = common_keys.iter().cloned().collect();
    keys.insert(SUBMISSION_KEY.to_string());
    keys.extend(targets.iter().map(|t| format!("target|{}", t.reference())));
    keys.extend(provenance_keys);
    let mut doc = Document::new("Provenance", provenance_id.as_str(), provenance.to_string());
    doc.keys = keys.into_iter().collect();
    if let Some((s, e)) = span {
        doc = doc.span(s, e);
    }
    set = set.put_document(doc, Precondition::Absent);

    // 5. One write set: all of it, or nothing.
    let base = base_url(state, headers);
    match state.store.apply(&set).await {
        Ok(applied) => {
            let entries = targets
                .iter()
                .zip(&slots)
                .map(|(t, slot)| {
                    let version = slot
                        .and_then(|s| applied.measurement_versions.get(s).copied())
                        .unwrap_or(1);
                    entry_response(&base, t, version, "201 Created", &now)
                })
                .collect();
            tracing::debug!(entries = targets.len(), "measurement submitted");
            Ok(response(&base, &provenance_id, entries))
        }
        Err(e) => {
            let entry = e.conflict().and_then(|c| records.get(&c.record).copied());
            let exists = matches!(
                e.conflict().map(|c| &c.reason),
                Some(ConflictReason::Exists { .. })
            );
            match entry {
                Some(i) if exists && list[i].condition.is_some() => {
                    replay(state, &base, &list, &targets, i).await
                }
                Some(i) => Err(in_entry(i, ApiError::from_store(&e))),
                None => Err(ApiError::from_store(&e)),
            }
        }
    }
}

fn entry_response(base: &str, t: &Target, version: u64, status: &str, now: &str) -> Value {
    json!({"response": {
        "status": status,
        "location": format!("{base}/{}/{}/_history/{version}", t.ty, t.id),
        "etag": format!("W/\"{version}\""),
        "lastModified": now,
    }})
}

/// The transaction-response: an entry per submitted entry, in order, and a link to the
/// Provenance the server recorded.
fn response(base: &str, provenance_id: &str, entries: Vec<Value>) -> Response {
    fhir_response(
        StatusCode::OK,
        &json!({
            "resourceType": "Bundle",
            "id": Uuid::new_v4().to_string(),
            "meta": {"lastUpdated": now_instant()},
            "type": "transaction-response",
            "link": [{"relation": "provenance", "url": format!("{base}/Provenance/{provenance_id}")}],
            "entry": entries,
        }),
    )
}

/// A conditional entry was stored before. When the whole submission is one stored before
/// (every entry conditional, the same set of resources under one recorded Provenance), it is
/// a replay: the answer is that submission's, 200 per entry, and nothing is written. Anything
/// else is a conflict naming the entry.
async fn replay(
    state: &AppState,
    base: &str,
    list: &[Entry],
    targets: &[Target],
    i: usize,
) -> ApiResult<Response> {
    let conflict = || {
        in_entry(
            i,
            ApiError::conflict(
                "this entry's ifNoneExist identifier belongs to a resource of another submission; nothing was written (send that submission again unchanged, or leave the entry out)",
            ),
        )
    };
    if list.iter().any(|e| e.condition.is_none()) {
        return Err(conflict());
    }
    let wanted: BTreeSet<String> = targets.iter().map(Target::reference).collect();
    let query = DocumentQuery::new("Provenance", 2)
        .key(SUBMISSION_KEY)
        .key(format!("target|{}", targets[i].reference()));
    let found = state
        .store
        .find_documents(&query)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    for doc in found {
        let Ok(body) = serde_json::from_str::<Value>(&doc.value.body) else {
            continue;
        };
        let had: BTreeSet<String> = body
            .get("target")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|t| reference_of(Some(t)).map(str::to_string))
            .collect();
        if had != wanted {
            continue;
        }
        let now = now_instant();
        let mut entries = Vec::with_capacity(targets.len());
        for t in targets {
            let version = if t.ty == "Observation" {
                get_versioned(state, &t.id).await?.map(|v| v.version)
            } else {
                state
                    .store
                    .document(&t.ty, &t.id)
                    .await
                    .map_err(|e| ApiError::from_store(&e))?
                    .map(|v| v.version)
            };
            entries.push(entry_response(
                base,
                t,
                version.unwrap_or(1),
                "200 OK",
                &now,
            ));
        }
        return Ok(response(base, &doc.value.id, entries));
    }
    Err(conflict())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_identifier_tokens() {
        assert_eq!(
            condition("identifier=urn:ietf:rfc:3986|urn:uuid:1"),
            Some(("urn:ietf:rfc:3986".into(), "urn:uuid:1".into()))
        );
        assert_eq!(
            condition("identifier=http%3A%2F%2Fx|a%20b"),
            Some(("http://x".into(), "a b".into()))
        );
        for bad in [
            "code=1",
            "identifier=x",
            "identifier=|v",
            "identifier=s|",
            "",
        ] {
            assert_eq!(condition(bad), None, "{bad}");
        }
    }

    #[test]
    fn spans_of_times_and_periods() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(
            span_of(Some(&json!("2025-02-06T14:40:50+01:00"))),
            Some((t("2025-02-06T13:40:50Z"), t("2025-02-06T13:40:50Z")))
        );
        assert_eq!(
            span_of(Some(
                &json!({"start": "2025-01-15T00:00:00Z", "end": "2025-01-16T00:00:00Z"})
            )),
            Some((t("2025-01-15T00:00:00Z"), t("2025-01-16T00:00:00Z")))
        );
        assert_eq!(span_of(Some(&json!({}))), None);
        assert_eq!(span_of(None), None);
        let mut span = None;
        widen(
            &mut span,
            Some((t("2025-01-02T00:00:00Z"), t("2025-01-03T00:00:00Z"))),
        );
        widen(
            &mut span,
            Some((t("2025-01-01T00:00:00Z"), t("2025-01-02T00:00:00Z"))),
        );
        assert_eq!(
            span,
            Some((t("2025-01-01T00:00:00Z"), t("2025-01-03T00:00:00Z")))
        );
    }

    #[test]
    fn errors_move_under_their_entry() {
        let e = in_entry(
            2,
            ApiError::unprocessable("bad code").at("Observation.code"),
        );
        assert_eq!(
            e.expression.as_deref(),
            Some("Parameters.parameter[0].resource.entry[2].resource.code")
        );
        assert!(
            e.diagnostics
                .starts_with("Parameters.parameter[0].resource.entry[2]: ")
        );
    }
}
