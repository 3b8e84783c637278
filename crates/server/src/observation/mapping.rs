//! The mapping between measurements and Observations: what a stored measurement is served as,
//! and the measurement a client's Observation becomes.

use axum::http::StatusCode;
use healthanalyzer_fhir::{FHIR_JSON, ReadOptions, WriteOptions, check_strict, read_observation};
use healthanalyzer_model::{Catalog, Identifier, Measurement, Payload, Validator};
use healthanalyzer_store::Versioned;
use serde_json::{Map, Value};

use super::Pending;
use crate::error::{ApiError, ApiResult};
use crate::patient::{logical_id_of, resolve_reference};
use crate::resource::{set_version, stamp};
use crate::state::AppState;

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
#[cfg(test)]
pub(crate) fn versioned_text(catalog: &Catalog, v: &Versioned<Measurement>) -> ApiResult<String> {
    versioned_text_as(catalog, v, subject_reference(&v.value.subject).as_deref())
}

/// The `subject.reference` a measurement of `subject` is served with, when the identifier is
/// not itself a reference (`Patient/<derived id>`: a UUID v5, worth computing once per
/// subject of a page).
pub(crate) fn subject_reference(subject: &Identifier) -> Option<String> {
    (subject.system.as_deref() != Some(healthanalyzer_fhir::REFERENCE_SYSTEM))
        .then(|| format!("Patient/{}", logical_id_of(subject)))
}

/// [`versioned_text`] with the subject's reference already made ([`subject_reference`]).
pub(crate) fn versioned_text_as(
    catalog: &Catalog,
    v: &Versioned<Measurement>,
    reference: Option<&str>,
) -> ApiResult<String> {
    let m = &v.value;
    let served = healthanalyzer_fhir::Served {
        version: v.version,
        subject_reference: reference,
    };
    if let Some(text) =
        healthanalyzer_fhir::write_served_observation_text(m, &WriteOptions::new(catalog), served)
            .map_err(|e| ApiError::from_fhir(&e))?
    {
        return Ok(text);
    }
    Ok(Value::Object(versioned_json_with(catalog, v)?).to_string())
}

/// `meta.lastUpdated` of a measurement's stored resource, if it has one (Observations written
/// through the API do; synced ones carry what their source said, if anything).
pub(super) fn last_updated(m: &Measurement) -> Option<healthanalyzer_model::jiff::Timestamp> {
    let p = m.provenance.payload.as_ref()?;
    let v: Value = serde_json::from_str(&p.content).ok()?;
    v.get("meta")?.get("lastUpdated")?.as_str()?.parse().ok()
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
