//! Patient <-> Subject.
//!
//! The subject's primary identifier is the first national personal identifier of the Patient
//! (CPR, BSN, FNR, D-number), else its first identifier with a value, else its literal reference
//! (`Patient/{id}` under [`REFERENCE_SYSTEM`]). A Patient with an `id` also gets that reference
//! among its other identifiers, so an Observation that says `"subject": {"reference":
//! "Patient/123"}` finds it (a `SubjectStore` looks subjects up by any identifier).

use std::borrow::Cow;

use healthanalyzer_model::{DateTime, Gender, HumanName, Identifier, Payload, Subject, systems};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::error::{Error, Result, check_size, expect_type};
use crate::observation::{FHIR_JSON, REFERENCE_SYSTEM};
use crate::profile::{Profile, apply_to_patient};
use crate::raw::{RawIdentifier, Text};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawName<'a> {
    #[serde(borrow, default, rename = "use")]
    use_: Option<Text<'a>>,
    #[serde(borrow, default)]
    family: Option<Text<'a>>,
    #[serde(borrow, default)]
    given: Option<Vec<Text<'a>>>,
    #[serde(borrow, default)]
    text: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPatient<'a> {
    #[serde(borrow)]
    resource_type: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    identifier: Option<Vec<RawIdentifier<'a>>>,
    #[serde(borrow, default)]
    name: Option<Vec<RawName<'a>>>,
    #[serde(borrow, default)]
    gender: Option<Text<'a>>,
    #[serde(borrow, default)]
    birth_date: Option<Text<'a>>,
}

const NATIONAL: &[&str] = &[systems::CPR, systems::BSN, systems::FNR, systems::DNR];

/// Reads a Patient (FHIR R4 JSON) into a subject, keeping the resource in
/// [`Subject::payload`].
pub fn read_patient(json: &str) -> Result<Subject> {
    check_size(json, "Patient")?;
    let raw: RawPatient<'_> =
        serde_json::from_str(json).map_err(|e| Error::structure("Patient", e.to_string()))?;
    expect_type(&raw.resource_type, "Patient")?;
    let mut ids: Vec<Identifier> = Vec::new();
    for (i, id) in raw
        .identifier
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        // An identifier without a value (only an extension, say) identifies nobody.
        let Some(value) = id.value.as_deref() else {
            continue;
        };
        if value.is_empty() {
            return Err(Error::value(
                format!("Patient.identifier[{i}].value"),
                "empty",
            ));
        }
        ids.push(match id.system.as_deref() {
            Some(s) => Identifier::new(s, value),
            None => Identifier::local(value),
        });
    }
    if let Some(id) = raw.id.as_deref() {
        ids.push(Identifier::new(REFERENCE_SYSTEM, format!("Patient/{id}")));
    }
    let primary = ids
        .iter()
        .position(|i| i.system.as_deref().is_some_and(|s| NATIONAL.contains(&s)))
        .unwrap_or(0);
    if ids.is_empty() {
        return Err(Error::required("Patient.identifier"));
    }
    let id = ids.remove(primary);
    let mut subject = Subject::new(id);
    subject.other_ids = ids;
    let names = raw.name.as_deref().unwrap_or_default();
    let name = names
        .iter()
        .find(|n| n.use_.as_deref() == Some("official"))
        .or_else(|| names.first());
    subject.name = name.map(|n| HumanName {
        family: n.family.as_deref().map(str::to_string),
        given: n
            .given
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|g| g.to_string())
            .collect(),
        text: n.text.as_deref().map(str::to_string),
    });
    if let Some(g) = raw.gender.as_deref() {
        subject.gender = Some(
            g.parse::<Gender>()
                .map_err(|e| Error::value("Patient.gender", e.to_string()))?,
        );
    }
    if let Some(b) = raw.birth_date.as_deref() {
        subject.birth_date =
            Some(DateTime::parse(b).map_err(|e| Error::value("Patient.birthDate", e.to_string()))?);
    }
    subject.payload = Some(Payload {
        media_type: FHIR_JSON.into(),
        content: json.to_string(),
    });
    Ok(subject)
}

/// Writes a subject as a FHIR R4 Patient (JSON): the resource it was read from when the subject
/// still says what that resource says, else a fresh Patient. A national `profile` adds its
/// `meta.profile` entry (see [`Profile`]).
pub fn write_patient(s: &Subject, profile: Profile) -> Result<Json> {
    let mut out = write_plain(s)?;
    if profile != Profile::VitalSigns
        && let Json::Object(o) = &mut out
    {
        apply_to_patient(o, profile);
    }
    Ok(out)
}

fn write_plain(s: &Subject) -> Result<Json> {
    if let Some(p) = &s.payload
        && p.media_type == FHIR_JSON
        && let Ok(original) = serde_json::from_str::<Json>(&p.content)
        && let Ok(again) = read_patient(&p.content)
        && again.id == s.id
        && again.other_ids == s.other_ids
        && again.name == s.name
        && again.gender == s.gender
        && format!("{:?}", again.birth_date) == format!("{:?}", s.birth_date)
    {
        return Ok(original);
    }
    let mut o = Map::new();
    o.insert("resourceType".into(), "Patient".into());
    let all = std::iter::once(&s.id).chain(&s.other_ids);
    let mut identifiers = Vec::new();
    for i in all {
        match (&i.system, i.value.as_str()) {
            (Some(sys), v) if sys == REFERENCE_SYSTEM => {
                if let Some(id) = v.strip_prefix("Patient/") {
                    o.insert("id".into(), id.into());
                }
            }
            (Some(sys), v) => identifiers.push(json!({ "system": sys, "value": v })),
            (None, v) => identifiers.push(json!({ "value": v })),
        }
    }
    if !identifiers.is_empty() {
        o.insert("identifier".into(), Json::Array(identifiers));
    }
    if let Some(n) = &s.name {
        let mut name = Map::new();
        name.insert("use".into(), "official".into());
        if let Some(t) = &n.text {
            name.insert("text".into(), t.as_str().into());
        }
        if let Some(f) = &n.family {
            name.insert("family".into(), f.as_str().into());
        }
        if !n.given.is_empty() {
            name.insert("given".into(), json!(n.given));
        }
        o.insert("name".into(), json!([name]));
    }
    if let Some(g) = s.gender {
        o.insert("gender".into(), g.as_str().into());
    }
    if let Some(b) = &s.birth_date {
        o.insert("birthDate".into(), b.to_string().into());
    }
    Ok(Json::Object(o))
}
