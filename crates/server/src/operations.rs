//! The Observation operations `$lastn` and `$stats` (FHIR R4), computed from the store with
//! `healthanalyzer-analysis`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use healthanalyzer_analysis::{Summary, percentile, series};
use healthanalyzer_model::KindDef;
use healthanalyzer_model::jiff::{SignedDuration, Timestamp};
use healthanalyzer_store::MeasurementStoreExt;
use serde_json::{Value, json};
use std::ops::Bound;

use crate::auth::{Access, limited_to, restrict_search};
use crate::error::{ApiError, ApiResult};
use crate::http::{check_format, fhir_response};
use crate::observation::{Spec, observation_json};
use crate::patient::format_of;
use crate::resource::base_url;
use crate::search::{DateParam, params, searchset};
use crate::state::AppState;

const STATISTICS_SYSTEM: &str = "http://hl7.org/fhir/observation-statistics";
const UCUM: &str = "http://unitsofmeasure.org";

/// The statistics `$stats` computes.
pub(crate) const STATISTICS: &[&str] = &[
    "average",
    "minimum",
    "maximum",
    "count",
    "median",
    "std-dev",
    "sum",
    "variance",
    "20-percent",
    "80-percent",
    "4-lower",
    "4-upper",
];

fn patient_param(pairs: &[(String, String)], op: &str) -> ApiResult<Vec<(String, String)>> {
    let who: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| {
            crate::auth::is_patient_param(k)
                || crate::search::PATIENT_IDENTIFIER_PARAMS.contains(&k.as_str())
        })
        .cloned()
        .collect();
    if who.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{op} needs patient (or subject, or patient.identifier): the Patient whose Observations to use"
        ))
        .at("patient"));
    }
    Ok(who)
}

/// `GET /Observation/$lastn?patient=…&code=…&category=…&max=…`: the latest `max` (default 1)
/// Observations of each code.
pub(crate) async fn lastn(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let pairs = params(query.as_deref());
    crate::search::refuse_national_in_url(&pairs, "Observation")?;
    lastn_of(&state, &access, &headers, pairs).await
}

/// `POST /Observation/$lastn` with the parameters in the URL and an
/// `application/x-www-form-urlencoded` body, combined.
pub(crate) async fn lastn_post(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    crate::search::check_search_scope(&access, "Observation")?;
    let pairs =
        crate::search::post_search_params(query.as_deref(), &headers, &body, "Observation")?;
    lastn_of(&state, &access, &headers, pairs).await
}

async fn lastn_of(
    state: &AppState,
    access: &Option<Extension<Access>>,
    headers: &HeaderMap,
    mut pairs: Vec<(String, String)>,
) -> ApiResult<Response> {
    crate::search::refuse_unsupported_modifiers(&pairs)?;
    restrict_search(&mut pairs, limited_to(access).as_deref())?;
    check_format(headers, format_of(&pairs))?;
    let base = base_url(state, headers);
    let mut use_pairs = patient_param(&pairs, "$lastn")?;
    use_pairs.extend(
        pairs
            .iter()
            .filter(|(k, _)| k == "code" || k == "category")
            .cloned(),
    );
    let max = match pairs.iter().find(|(k, _)| k == "max") {
        None => 1,
        Some((_, v)) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1_000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("max={v}: expected a whole number from 1 to 1000"))
                    .at("max")
            })?,
    };
    let spec = Spec::parse(state, &use_pairs, false).await?;
    let mut entries = Vec::new();
    if let (false, Some(subject)) = (spec.is_empty(), spec.filter().subject.clone()) {
        let latest = state
            .store
            .latest(&subject, &spec.filter().kinds, max)
            .await
            .map_err(|e| ApiError::from_store(&e))?;
        for m in &latest {
            entries.push((
                format!("{base}/Observation/{}", m.id.as_uuid()),
                Value::Object(observation_json(state, m)?),
            ));
        }
    }
    // What the operation used, in the canonical order (a national person number as the
    // Patient it named).
    let mut self_pairs = spec.applied().to_vec();
    self_pairs.push(("max".into(), max.to_string()));
    let self_link = format!(
        "{base}/Observation/$lastn?{}",
        crate::search::query_string(&crate::search::canonical(self_pairs))
    );
    let total = entries.len() as u64;
    Ok(fhir_response(
        StatusCode::OK,
        &searchset(&self_link, None, Some(total), entries),
    ))
}

/// `GET /Observation/$stats?patient=…&code=…&statistic=…[&duration=hours | &period=start/end]`.
pub(crate) async fn stats(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let pairs = params(query.as_deref());
    crate::search::refuse_national_in_url(&pairs, "Observation")?;
    stats_of(&state, &access, &headers, pairs).await
}

/// `POST /Observation/$stats` with the parameters in the URL and an
/// `application/x-www-form-urlencoded` body, combined.
pub(crate) async fn stats_post(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    crate::search::check_search_scope(&access, "Observation")?;
    let pairs =
        crate::search::post_search_params(query.as_deref(), &headers, &body, "Observation")?;
    stats_of(&state, &access, &headers, pairs).await
}

async fn stats_of(
    state: &AppState,
    access: &Option<Extension<Access>>,
    headers: &HeaderMap,
    mut pairs: Vec<(String, String)>,
) -> ApiResult<Response> {
    crate::search::refuse_unsupported_modifiers(&pairs)?;
    restrict_search(&mut pairs, limited_to(access).as_deref())?;
    check_format(headers, format_of(&pairs))?;
    let mut use_pairs = patient_param(&pairs, "$stats")?;
    // code (with system), or coding=system|code.
    let system = pairs
        .iter()
        .find(|(k, _)| k == "system")
        .map(|(_, v)| v.as_str());
    let mut codes = Vec::new();
    for (k, v) in &pairs {
        match k.as_str() {
            "code" => codes.extend(v.split(',').map(|c| match system {
                Some(s) if !c.contains('|') => format!("{s}|{c}"),
                _ => c.to_string(),
            })),
            "coding" => codes.extend(v.split(',').map(str::to_string)),
            _ => {}
        }
    }
    if codes.is_empty() {
        return Err(ApiError::bad_request(
            "$stats needs code (with system) or coding: what to compute statistics of",
        )
        .at("code"));
    }
    use_pairs.push(("code".into(), codes.join(",")));
    let wanted: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "statistic")
        .flat_map(|(_, v)| v.split(','))
        .collect();
    if wanted.is_empty() {
        return Err(ApiError::bad_request(format!(
            "$stats needs statistic: one or more of {}",
            STATISTICS.join(", ")
        ))
        .at("statistic"));
    }
    if let Some(bad) = wanted.iter().find(|s| !STATISTICS.contains(s)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not-supported",
            format!(
                "statistic {bad} is not supported; this server computes {}",
                STATISTICS.join(", ")
            ),
        )
        .at("statistic"));
    }
    let now = Timestamp::now();
    let mut range: (Option<Timestamp>, Option<Timestamp>) = (None, None);
    if let Some((_, d)) = pairs.iter().find(|(k, _)| k == "duration") {
        let hours: f64 = d
            .parse()
            .ok()
            .filter(|h: &f64| h.is_finite() && *h > 0.0 && *h < 1e6)
            .ok_or_else(|| {
                ApiError::bad_request(format!("duration={d}: expected a number of hours"))
                    .at("duration")
            })?;
        let span = SignedDuration::from_secs_f64(hours * 3600.0);
        range = (now.checked_sub(span).ok(), Some(now));
    }
    if let Some((_, p)) = pairs.iter().find(|(k, _)| k == "period") {
        let (a, b) = p.split_once('/').ok_or_else(|| {
            ApiError::bad_request(format!(
                "period={p}: expected start/end, e.g. 2024-01/2024-03"
            ))
            .at("period")
        })?;
        let start = (!a.is_empty())
            .then(|| DateParam::parse(a, "period"))
            .transpose()?;
        let end = (!b.is_empty())
            .then(|| DateParam::parse(b, "period"))
            .transpose()?;
        range = (start.map(|s| s.lo), end.map(|e| e.hi));
    }
    let mut spec = Spec::parse(state, &use_pairs, false).await?;
    if let Some(from) = range.0 {
        spec.filter_mut().from = Bound::Included(from);
    }
    if let Some(to) = range.1 {
        spec.filter_mut().to = Bound::Excluded(to);
    }
    let measurements = if spec.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .query_all(
                spec.filter(),
                healthanalyzer_store::Order::Ascending,
                10_000,
            )
            .await
            .map_err(|e| ApiError::from_store(&e))?
    };
    let include = pairs.iter().any(|(k, v)| k == "include" && v == "true");
    // The Patient as the client named it (its id is the one the client knows; by identifier,
    // that identifier, and a national person number as the Patient id it named).
    let subject = match spec
        .applied()
        .iter()
        .find(|(k, _)| crate::auth::is_patient_param(k))
    {
        Some((_, v)) => json!({"reference": match v.rsplit_once("Patient/") {
            Some((_, id)) => format!("Patient/{id}"),
            None => format!("Patient/{v}"),
        }}),
        None => match use_pairs.first().and_then(|(_, v)| v.split_once('|')) {
            Some((system, value)) => json!({"identifier": {"system": system, "value": value}}),
            None => json!({}),
        },
    };
    let mut parameter = Vec::new();
    for (key, points) in series(&measurements, &state.catalog) {
        let Some(kind) = state.catalog.kind(&key.kind) else {
            continue;
        };
        let values: Vec<f64> = points.iter().map(|p| p.value).collect();
        let Some(summary) = Summary::of(values.iter().copied()) else {
            continue;
        };
        let (coding, unit) = coding_and_unit(kind, key.component.as_deref());
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let mut component = Vec::new();
        for stat in &wanted {
            let value = statistic(stat, &summary, &values, &sorted);
            let mut q = json!({ "value": round(value) });
            if *stat != "count"
                && let (Some(u), Some(o)) = (&unit, q.as_object_mut())
            {
                o.insert("unit".into(), json!(u));
                o.insert("system".into(), json!(UCUM));
                o.insert("code".into(), json!(u));
            }
            component.push(json!({
                "code": {"coding": [{"system": STATISTICS_SYSTEM, "code": stat}]},
                "valueQuantity": q,
            }));
        }
        let start = range.0.or(points.first().map(|p| p.at));
        let end = range.1.or(points.last().map(|p| p.at));
        let mut period = serde_json::Map::new();
        if let Some(s) = start {
            period.insert("start".into(), json!(s.to_string()));
        }
        if let Some(e) = end {
            period.insert("end".into(), json!(e.to_string()));
        }
        parameter.push(json!({
            "name": "statistic",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [coding]},
                "subject": subject,
                "effectivePeriod": period,
                "component": component,
            }
        }));
    }
    if include {
        for m in &measurements {
            parameter.push(
                json!({"name": "source", "resource": Value::Object(observation_json(state, m)?)}),
            );
        }
    }
    Ok(fhir_response(
        StatusCode::OK,
        &json!({"resourceType": "Parameters", "parameter": parameter}),
    ))
}

fn round(v: f64) -> Value {
    let r = (v * 1e4).round() / 1e4;
    serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number)
}

fn statistic(stat: &str, s: &Summary, values: &[f64], sorted: &[f64]) -> f64 {
    match stat {
        "average" => s.mean,
        "minimum" => s.min,
        "maximum" => s.max,
        "count" => s.count as f64,
        "median" => s.median,
        "std-dev" => s.sd,
        "variance" => s.sd * s.sd,
        "sum" => values.iter().sum(),
        "20-percent" => percentile(sorted, 20.0).unwrap_or(f64::NAN),
        "80-percent" => percentile(sorted, 80.0).unwrap_or(f64::NAN),
        "4-lower" => s.p25,
        "4-upper" => s.p75,
        _ => f64::NAN,
    }
}

fn coding_and_unit(kind: &KindDef, component: Option<&str>) -> (Value, Option<String>) {
    let (codings, unit) = match component.and_then(|c| kind.component(c)) {
        Some(c) => (&c.codings, Some(c.value.unit.to_string())),
        None => (
            &kind.codings,
            kind.value.as_ref().map(|v| v.unit.to_string()),
        ),
    };
    let coding = codings
        .first()
        .map_or(Value::Null, |c| json!({"system": c.system, "code": c.code}));
    (coding, unit)
}
