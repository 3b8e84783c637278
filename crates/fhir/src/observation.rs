//! Observation <-> Measurement.

use healthanalyzer_model::{
    AbsentReason, BodySite, Catalog, CodeMatch, Component, ComponentValue, Context, DateTime,
    DeviceRef, Effective, Identifier, KindDef, Measurement, Observed, Provenance, Quantity, Status,
    Value, ValueSpec, parse_decimal, systems,
};
use serde_json::{Map, Value as Json, json};

use crate::error::{Error, Result, check_size, expect_type};
use crate::profile::{Profile, WriteOptions, apply_to_observation};
use crate::raw::{RawComponent, RawConcept, RawObservation, RawQuantity, RawReference, Text};

/// The media type of the original payload kept in a measurement's provenance.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The identifier system under which a literal reference (`Patient/123`) stands for a subject
/// whose identifier is not known (an Observation read on its own).
pub const REFERENCE_SYSTEM: &str = "urn:healthanalyzer:fhir-reference";

/// The largest resource accepted, in bytes.
pub const MAX_RESOURCE_BYTES: usize = 4 * 1024 * 1024;

/// The identifier system of URIs; a measurement's own identifier is `urn:uuid:<its id>` in it.
pub const URI_SYSTEM: &str = "urn:ietf:rfc:3986";

const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const ABSENT_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";

/// How to read an Observation.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions<'c> {
    /// The catalog that maps codes to kinds.
    pub catalog: &'c Catalog,
    /// The id of the source the resource came from (part of the measurement's identity).
    pub source_id: &'c str,
    /// How much of each resource is checked ([`Validation::Strict`] unless asked).
    pub validation: Validation,
}

impl<'c> ReadOptions<'c> {
    /// Options for a source, with the default [`Validation::Strict`].
    pub fn new(catalog: &'c Catalog, source_id: &'c str) -> Self {
        Self {
            catalog,
            source_id,
            validation: Validation::Strict,
        }
    }

    /// The same options with another validation policy.
    pub fn with_validation(mut self, validation: Validation) -> Self {
        self.validation = validation;
        self
    }
}

/// How much of a resource is checked before it is mapped: one policy for every entry point
/// (the server, `import`, `sync`, the checker), so the same resource gets the same verdict.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// The whole resource against the FHIR R4 model ([`check_strict`](crate::check_strict)):
    /// an element R4 does not define, a wrong type or a wrong cardinality refuses it, as the
    /// server does. The default.
    #[default]
    Strict,
    /// Only what the mapping reads is checked (the code, subject, time and value); anything
    /// else is kept in the payload unexamined. Several times faster on bulk input; for data
    /// whose source is trusted to send valid R4.
    Lenient,
}

impl std::str::FromStr for Validation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "strict" => Ok(Self::Strict),
            "lenient" => Ok(Self::Lenient),
            other => Err(Error::value(
                "validation",
                format!("{other:?}: expected strict or lenient"),
            )),
        }
    }
}

fn text<'s>(c: &'s Option<Text<'_>>) -> Option<&'s str> {
    c.as_deref()
}

/// Reads an Observation (FHIR R4 JSON) into a measurement, keeping the resource as it came in
/// [`Provenance::payload`]. The record id is the resource's `id`; an Observation without one
/// gets `record_id`, which the caller must supply (a Bundle `fullUrl`, a line number).
pub fn read_observation(
    json: &str,
    options: &ReadOptions<'_>,
    record_id: Option<&str>,
) -> Result<Measurement> {
    check_size(json, "Observation")?;
    let raw: RawObservation<'_> =
        serde_json::from_str(json).map_err(|e| Error::structure("Observation", json_reason(&e)))?;
    // The mapping first: its errors name the element. The whole R4 model after, for what the
    // mapping does not read.
    let m = map_observation(&raw, json, options, record_id)?;
    if options.validation == Validation::Strict {
        crate::strict::check_strict(json)?;
    }
    Ok(m)
}

/// The record id of an Observation without `id`: its first business identifier with a system
/// and a value (`identifier:system|value`), else the first with a value. The same identifier,
/// the same record, so importing the file again changes nothing.
fn identifier_record(raw: &RawObservation<'_>) -> Option<String> {
    let ids = raw.identifier.as_deref()?;
    let with_value =
        |i: &&crate::raw::RawIdentifier<'_>| text(&i.value).is_some_and(|v| !v.is_empty());
    let best = ids
        .iter()
        .filter(with_value)
        .find(|i| text(&i.system).is_some())
        .or_else(|| ids.iter().find(with_value))?;
    Some(format!(
        "identifier:{}|{}",
        text(&best.system).unwrap_or_default(),
        text(&best.value).unwrap_or_default()
    ))
}

fn json_reason(e: &serde_json::Error) -> String {
    // serde_json's message without the input (it names types, lines and columns only).
    e.to_string()
}

pub(crate) fn map_observation(
    raw: &RawObservation<'_>,
    json: &str,
    options: &ReadOptions<'_>,
    record_id: Option<&str>,
) -> Result<Measurement> {
    expect_type(&raw.resource_type, "Observation")?;
    let status: Status = text(&raw.status)
        .ok_or_else(|| Error::required("Observation.status"))?
        .parse()
        .map_err(|e: healthanalyzer_model::Error| {
            Error::value("Observation.status", e.to_string())
        })?;
    let code = raw
        .code
        .as_ref()
        .ok_or_else(|| Error::required("Observation.code"))?;
    let found = lookup(options.catalog, code).ok_or_else(|| {
        Error::unsupported(
            "Observation.code",
            format!(
                "no coding matches a kind in the catalog (codings: {})",
                describe(code)
            ),
        )
    })?;
    let kind = found.kind();
    let subject = raw
        .subject
        .as_ref()
        .ok_or_else(|| Error::required("Observation.subject"))
        .and_then(|r| subject_identifier(r, "Observation.subject"))?;
    let effective = effective(raw)?;
    let value = value(raw, kind, &found)?;
    let record = match (text(&raw.id), record_id) {
        (Some(id), _) => id.to_string(),
        (None, Some(r)) => r.to_string(),
        // The record id: the resource's id, else the caller's (a Bundle entry's fullUrl, a file
        // name), else a business identifier.
        (None, None) => identifier_record(raw)
            .ok_or_else(|| Error::required("Observation.id (or an identifier with a value)"))?,
    };
    let provenance = Provenance::new(options.source_id, record).with_payload(FHIR_JSON, json);
    let mut m = Measurement::new(provenance, subject, kind.id.clone(), value, effective);
    m.status = status;
    if let Some(issued) = text(&raw.issued) {
        m.issued = Some(
            DateTime::parse(issued)
                .map_err(|e| Error::value("Observation.issued", e.to_string()))?,
        );
    }
    if let Some(device) = &raw.device {
        m.device = Some(device_ref(device, "Observation.device")?);
    }
    m.context = context(raw);
    crate::mark::mark(&mut m, raw.id.is_some());
    Ok(m)
}

fn lookup<'c>(catalog: &'c Catalog, code: &RawConcept<'_>) -> Option<CodeMatch<'c>> {
    code.codings()
        .iter()
        .find_map(|c| catalog.lookup(c.system.as_deref()?, c.code.as_deref()?))
}

fn describe(code: &RawConcept<'_>) -> String {
    let list: Vec<String> = code
        .codings()
        .iter()
        .take(5)
        .map(|c| {
            format!(
                "{}|{}",
                c.system.as_deref().unwrap_or("-"),
                c.code.as_deref().unwrap_or("-")
            )
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

fn subject_identifier(r: &RawReference<'_>, path: &str) -> Result<Identifier> {
    if let Some(id) = &r.identifier
        && let Some(value) = id.value.as_deref()
    {
        return Ok(match id.system.as_deref() {
            Some(system) => Identifier::new(system, value),
            None => Identifier::local(value),
        });
    }
    match r.reference.as_deref() {
        Some(reference) if !reference.is_empty() => {
            Ok(Identifier::new(REFERENCE_SYSTEM, reference))
        }
        _ => Err(Error::value(
            path,
            "a reference needs `reference` or `identifier.value`",
        )),
    }
}

fn device_ref(r: &RawReference<'_>, path: &str) -> Result<DeviceRef> {
    let identifier = match &r.identifier {
        Some(id) => Some(match (id.system.as_deref(), id.value.as_deref()) {
            (Some(s), Some(v)) => Identifier::new(s, v),
            (None, Some(v)) => Identifier::local(v),
            (_, None) => return Err(Error::required(format!("{path}.identifier.value"))),
        }),
        None => None,
    };
    Ok(DeviceRef {
        identifier,
        reference: r.reference.as_deref().map(str::to_string),
        display: r.display.as_deref().map(str::to_string),
        ..DeviceRef::default()
    })
}

fn effective(raw: &RawObservation<'_>) -> Result<Effective> {
    let parse =
        |s: &str, path: &str| DateTime::parse(s).map_err(|e| Error::value(path, e.to_string()));
    let present = [
        raw.effective_date_time.is_some(),
        raw.effective_instant.is_some(),
        raw.effective_period.is_some(),
        raw.effective_timing.is_some(),
    ]
    .iter()
    .filter(|p| **p)
    .count();
    if present > 1 {
        return Err(Error::value(
            "Observation.effective[x]",
            "more than one effective[x] element",
        ));
    }
    if let Some(t) = text(&raw.effective_date_time) {
        return Ok(Effective::At(parse(t, "Observation.effectiveDateTime")?));
    }
    if let Some(t) = text(&raw.effective_instant) {
        return Ok(Effective::At(parse(t, "Observation.effectiveInstant")?));
    }
    if let Some(p) = &raw.effective_period {
        let start = text(&p.start).ok_or_else(|| {
            Error::unsupported(
                "Observation.effectivePeriod.start",
                "a period without a start cannot be placed in time",
            )
        })?;
        let start = parse(start, "Observation.effectivePeriod.start")?;
        let end = text(&p.end)
            .map(|e| parse(e, "Observation.effectivePeriod.end"))
            .transpose()?;
        return Ok(Effective::Period { start, end });
    }
    if raw.effective_timing.is_some() {
        return Err(Error::unsupported(
            "Observation.effectiveTiming",
            "use effectiveDateTime or effectivePeriod",
        ));
    }
    // No clinically relevant time: the time it was recorded is the best we know (HL7's own
    // example f202 does this). A fresh write then states it as effectiveDateTime.
    if let Some(t) = text(&raw.issued) {
        return Ok(Effective::At(parse(t, "Observation.issued")?));
    }
    Err(Error::required("Observation.effective[x]"))
}

/// Names an element below a base path, formatted only when an error needs it (`at("value")`
/// is `Observation.component[1].valueQuantity.value`; `at("")` the base itself).
type At<'a> = &'a dyn Fn(&str) -> String;

fn at_base(base: &str, tail: &str) -> String {
    if tail.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{tail}")
    }
}

fn quantity(q: &RawQuantity<'_>, at: At<'_>) -> Result<Quantity> {
    if q.comparator.is_some() {
        return Err(Error::unsupported(
            at("comparator"),
            "a bound (<, >) is not a measured value",
        ));
    }
    let number = q
        .value
        .as_ref()
        .ok_or_else(|| Error::required(at("value")))?;
    let text: &str = &number.0;
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(Error::structure(
            at("value"),
            "must be a JSON number (not a string, object or array)",
        ));
    }
    let value = parse_decimal(text).map_err(|e| Error::value(at("value"), e.to_string()))?;
    let unit = match (q.system.as_deref(), q.code.as_deref(), q.unit.as_deref()) {
        (Some(systems::UCUM), Some(code), _) => code,
        (None, Some(code), _) => code,
        (None, None, Some(unit)) => unit,
        (Some(other), _, _) if other != systems::UCUM => {
            return Err(Error::unsupported(
                at("system"),
                format!("units must be UCUM ({}), not {other}", systems::UCUM),
            ));
        }
        _ => return Err(Error::required(at("code"))),
    };
    Ok(Quantity::new(value, unit))
}

/// The quantity in the canonical unit of `spec`, keeping what was recorded when it differs
/// (185 `[lb_av]` becomes 83.915 kg with the pounds kept).
fn observed(q: Quantity, spec: &ValueSpec, at: At<'_>) -> Result<Observed> {
    if q.unit == spec.unit {
        return Ok(Observed::from(q));
    }
    let canonical = spec
        .to_canonical(&q, &at(""))
        .map_err(|e| Error::value(at("code"), e.to_string()))?;
    Ok(Observed {
        quantity: canonical,
        original: Some(q),
    })
}

fn absent(c: &RawConcept<'_>, path: &str) -> Result<AbsentReason> {
    let code = c
        .codings()
        .iter()
        .find(|c| c.system.as_deref() == Some(ABSENT_SYSTEM))
        .and_then(|c| c.code.as_deref())
        .ok_or_else(|| Error::required(format!("{path}.coding.code")))?;
    code.parse()
        .map_err(|e: healthanalyzer_model::Error| Error::value(path, e.to_string()))
}

fn value(raw: &RawObservation<'_>, kind: &KindDef, found: &CodeMatch<'_>) -> Result<Value> {
    if let Some(other) = raw.other_value() {
        return Err(Error::unsupported(
            format!("Observation.{other}"),
            "only valueQuantity is mapped",
        ));
    }
    match (&raw.value_quantity, &raw.data_absent_reason) {
        (Some(_), Some(_)) => {
            return Err(Error::value(
                "Observation.dataAbsentReason",
                "present together with a value",
            ));
        }
        (Some(q), None) => {
            let path = "Observation.valueQuantity";
            let at = |tail: &str| at_base(path, tail);
            let q = quantity(q, &at)?;
            return Ok(match found {
                CodeMatch::Component(_, def) => Value::Components(vec![Component {
                    id: def.id.clone(),
                    value: ComponentValue::Quantity(observed(q, &def.value, &at)?),
                }]),
                CodeMatch::Kind(k) => match &k.value {
                    Some(spec) => Value::Quantity(observed(q, spec, &at)?),
                    None => {
                        return Err(Error::unsupported(
                            path,
                            format!("{} is a panel: its values go in components", k.id.as_str()),
                        ));
                    }
                },
            });
        }
        (None, Some(reason)) if !kind.is_panel() => {
            return Ok(Value::Absent(absent(
                reason,
                "Observation.dataAbsentReason",
            )?));
        }
        _ => {}
    }
    if !kind.is_panel() {
        return Err(Error::required("Observation.value[x]"));
    }
    let components = raw.component.as_deref().unwrap_or_default();
    if components.is_empty() {
        if let Some(reason) = &raw.data_absent_reason {
            return Ok(Value::Absent(absent(
                reason,
                "Observation.dataAbsentReason",
            )?));
        }
        return Err(Error::required("Observation.component"));
    }
    let mut out = Vec::with_capacity(components.len());
    for (i, c) in components.iter().enumerate() {
        let at = |tail: &str| at_base(&format!("Observation.component[{i}]"), tail);
        if let Some(comp) = component(c, kind, &at)? {
            out.push(comp);
        }
    }
    if out.is_empty() {
        return Err(Error::unsupported(
            "Observation.component",
            format!("no component is one of {}", kind.id.as_str()),
        ));
    }
    Ok(Value::Components(out))
}

/// A component of the panel, or `None` for a component the kind does not define (it stays in
/// the payload).
fn component(c: &RawComponent<'_>, kind: &KindDef, at: At<'_>) -> Result<Option<Component>> {
    let code = c.code.as_ref().ok_or_else(|| Error::required(at("code")))?;
    let def = kind.components.iter().find(|d| {
        code.codings().iter().any(|cc| {
            d.codings.iter().any(|k| {
                Some(&*k.system) == cc.system.as_deref() && Some(&*k.code) == cc.code.as_deref()
            })
        })
    });
    let Some(def) = def else {
        return Ok(None);
    };
    if let Some(other) = c.other_value() {
        return Err(Error::unsupported(
            at(other),
            "only valueQuantity is mapped",
        ));
    }
    let value = match (&c.value_quantity, &c.data_absent_reason) {
        (Some(q), None) => {
            let at = |tail: &str| at_base(&at("valueQuantity"), tail);
            ComponentValue::Quantity(observed(quantity(q, &at)?, &def.value, &at)?)
        }
        (None, Some(r)) => ComponentValue::Absent(absent(r, &at("dataAbsentReason"))?),
        (Some(_), Some(_)) => {
            return Err(Error::value(
                at("dataAbsentReason"),
                "present together with a value",
            ));
        }
        (None, None) => return Err(Error::required(at("value[x]"))),
    };
    Ok(Some(Component {
        id: def.id.clone(),
        value,
    }))
}

fn context(raw: &RawObservation<'_>) -> Context {
    let mut ctx = Context::default();
    if let Some(site) = &raw.body_site {
        let label = site
            .text
            .as_deref()
            .or_else(|| site.codings().iter().find_map(|c| c.display.as_deref()))
            .or_else(|| site.codings().iter().find_map(|c| c.code.as_deref()));
        ctx.site = label.map(BodySite::parse);
    }
    if let Some(method) = &raw.method {
        ctx.method = method
            .text
            .as_deref()
            .or_else(|| method.codings().iter().find_map(|c| c.display.as_deref()))
            .map(str::to_string);
    }
    ctx
}

/// Writes a measurement as a FHIR R4 Observation (JSON).
///
/// A measurement read from FHIR carries the resource it came from. When the measurement still
/// says what that resource says, the resource is written back unchanged. When it changed (a
/// correction, a subject resolved inside a Bundle), only the elements it changed are written
/// anew, over the original, so identifiers, interpretations, notes and extensions survive.
/// Without a FHIR payload, a fresh Observation following the HL7 vital-signs profile is built.
///
/// `options.profile` says which profiles a fresh Observation follows, and what a national
/// profile adds to a passed-through one (see [`Profile`]).
pub fn write_observation(m: &Measurement, options: &WriteOptions<'_>) -> Result<Json> {
    let catalog = options.catalog;
    let mut out = write_plain(m, catalog, options.profile)?;
    if options.profile != Profile::VitalSigns
        && let Json::Object(o) = &mut out
        && let Some(kind) = catalog.kind(m.kind.as_str())
    {
        apply_to_observation(o, m, kind, options)?;
    }
    Ok(out)
}

fn write_plain(m: &Measurement, catalog: &Catalog, profile: Profile) -> Result<Json> {
    if let Some(p) = &m.provenance.payload
        && p.media_type == FHIR_JSON
        && let Ok(Json::Object(mut original)) = serde_json::from_str::<Json>(&p.content)
    {
        if crate::mark::unchanged(m).is_some() {
            return Ok(Json::Object(original));
        }
        // The kept payload was checked when it came in.
        let options =
            ReadOptions::new(catalog, &m.provenance.source_id).with_validation(Validation::Lenient);
        if let Ok(before) = read_observation(&p.content, &options, Some(&m.provenance.record_id)) {
            if same_content(&before, m) && before.subject == m.subject {
                return Ok(Json::Object(original));
            }
            // Changed (a correction, or a subject resolved inside a Bundle): the elements the
            // measurement changed are written anew over the original, and everything else the
            // original held (identifiers, interpretation, notes, extensions …) stays.
            let Json::Object(fresh) = fresh_observation(m, catalog, profile)? else {
                return fresh_observation(m, catalog, profile);
            };
            let mut replace: Vec<&[&str]> = Vec::new();
            if before.subject != m.subject {
                replace.push(&["subject"]);
            }
            if before.kind != m.kind {
                replace.push(&["code", "meta"]);
            }
            if before.status != m.status {
                replace.push(&["status"]);
            }
            if format!("{:?}", before.effective) != format!("{:?}", m.effective) {
                replace.push(&["effectiveDateTime", "effectiveInstant", "effectivePeriod"]);
            }
            if format!("{:?}", before.issued) != format!("{:?}", m.issued) {
                replace.push(&["issued"]);
            }
            if before.kind != m.kind || format!("{:?}", before.value) != format!("{:?}", m.value) {
                replace.push(&["valueQuantity", "dataAbsentReason", "component"]);
            }
            if before.device != m.device {
                replace.push(&["device"]);
            }
            if before.context.site != m.context.site {
                replace.push(&["bodySite"]);
            }
            if before.context.method != m.context.method {
                replace.push(&["method"]);
            }
            for key in replace.into_iter().flatten() {
                original.shift_remove(*key);
                if let Some(v) = fresh.get(*key) {
                    original.insert((*key).to_string(), v.clone());
                }
            }
            return Ok(Json::Object(original));
        }
    }
    fresh_observation(m, catalog, profile)
}

/// Equal in everything the mapping reads but the subject (ids and payload aside), with
/// decimals at the same scale.
fn same_content(a: &Measurement, b: &Measurement) -> bool {
    a.kind == b.kind
        && a.status == b.status
        && a.effective == b.effective
        && a.issued == b.issued
        && a.device == b.device
        && a.context == b.context
        && format!("{:?}", a.value) == format!("{:?}", b.value)
        && format!("{:?}", a.effective) == format!("{:?}", b.effective)
}

fn number(d: &healthanalyzer_model::Decimal) -> Result<Json> {
    // With serde_json's arbitrary precision, the number keeps its exact text (107.50).
    serde_json::from_str::<Json>(&d.to_string())
        .map_err(|e| Error::value("Observation.valueQuantity.value", e.to_string()))
}

/// A quantity as the source recorded it (the profiles accept the units we convert from), so a
/// re-read converts it again to the same measurement.
fn quantity_json(o: &Observed) -> Result<Json> {
    let q = o.original.as_ref().unwrap_or(&o.quantity);
    Ok(json!({
        "value": number(&q.value)?,
        "unit": q.unit.as_str(),
        "system": systems::UCUM,
        "code": q.unit.as_str(),
    }))
}

fn absent_json(r: &AbsentReason) -> Json {
    json!({ "coding": [{ "system": ABSENT_SYSTEM, "code": r.as_str() }] })
}

/// The kind's codes: the first of each code system (the catalog lists a system's primary code
/// first; later ones are alternatives an input may use, such as the 24-hour steps code or the
/// molar glucose code, which would not say the same thing as the written value), plus the extra
/// codes `profile` asks for. A code that names its unit (NPU's) is written only beside a value
/// in that unit (`unit`, the written one).
fn codeable(
    codings: &[healthanalyzer_model::Coding],
    text: &str,
    profile: Profile,
    unit: Option<&str>,
) -> Json {
    let mut seen: Vec<&str> = Vec::new();
    let list: Vec<Json> = codings
        .iter()
        .filter(|c| {
            let first = !seen.contains(&&*c.system) && !read_only(c);
            seen.push(&c.system);
            (first || profile.wants_coding(c)) && c.fits_unit(unit)
        })
        .map(|c| {
            let mut o = Map::new();
            o.insert("system".into(), Json::from(&*c.system));
            o.insert("code".into(), Json::from(&*c.code));
            if let Some(d) = &c.display {
                o.insert("display".into(), Json::from(&**d));
            }
            Json::Object(o)
        })
        .collect();
    json!({ "coding": list, "text": text })
}

pub(crate) fn reference_json(id: &Identifier) -> Json {
    match (&id.system, id.value.as_str()) {
        (Some(s), v) if s == REFERENCE_SYSTEM => json!({ "reference": v }),
        (Some(s), v) => json!({ "identifier": { "system": s, "value": v } }),
        (None, v) => json!({ "identifier": { "value": v } }),
    }
}

fn category_json(category: &str) -> Json {
    let display = match category {
        "vital-signs" => Some("Vital Signs"),
        "laboratory" => Some("Laboratory"),
        "activity" => Some("Activity"),
        "survey" => Some("Survey"),
        "exam" => Some("Exam"),
        _ => None,
    };
    let mut coding = Map::new();
    coding.insert("system".into(), OBS_CATEGORY.into());
    coding.insert("code".into(), category.into());
    if let Some(d) = display {
        coding.insert("display".into(), d.into());
    }
    let mut c = Map::new();
    c.insert("coding".into(), Json::Array(vec![Json::Object(coding)]));
    if let Some(d) = display {
        c.insert("text".into(), d.into());
    }
    Json::Array(vec![Json::Object(c)])
}

fn fresh_observation(m: &Measurement, catalog: &Catalog, profile: Profile) -> Result<Json> {
    let kind = catalog.kind(m.kind.as_str()).ok_or_else(|| {
        Error::unsupported(
            "Observation.code",
            format!("unknown kind {}", m.kind.as_str()),
        )
    })?;
    // A lone component reading (a systolic pressure on its own) is written as FHIR sends it:
    // an Observation coded with the component's code and holding its value.
    let lone = match &m.value {
        Value::Components(cs) if m.value.is_lone_component() => {
            let c = &cs[0];
            let def = kind.component(c.id.as_str()).ok_or_else(|| {
                Error::unsupported(
                    "Observation.code",
                    format!("{} has no component {}", kind.id.as_str(), c.id.as_str()),
                )
            })?;
            Some((def, c))
        }
        _ => None,
    };
    let mut o = Map::new();
    o.insert("resourceType".into(), "Observation".into());
    o.insert("id".into(), m.id.to_string().into());
    let profiles = match lone {
        Some(_) => profile.component_profiles(kind),
        None => profile.observation_profiles(kind),
    };
    if !profiles.is_empty() {
        o.insert("meta".into(), json!({ "profile": profiles }));
    }
    o.insert(
        "identifier".into(),
        json!([{ "system": URI_SYSTEM, "value": format!("urn:uuid:{}", m.id) }]),
    );
    o.insert("status".into(), m.status.as_str().into());
    o.insert("category".into(), category_json(&kind.category));
    o.insert(
        "code".into(),
        match lone {
            Some((def, c)) => codeable(
                &def.codings,
                &def.display,
                profile,
                component_unit(&c.value),
            ),
            None => codeable(&kind.codings, &kind.display, profile, value_unit(&m.value)),
        },
    );
    o.insert("subject".into(), reference_json(&m.subject));
    match &m.effective {
        Effective::At(t) => {
            o.insert("effectiveDateTime".into(), t.to_string().into());
        }
        Effective::Period { start, end } => {
            let mut p = Map::new();
            p.insert("start".into(), start.to_string().into());
            if let Some(e) = end {
                p.insert("end".into(), e.to_string().into());
            }
            o.insert("effectivePeriod".into(), Json::Object(p));
        }
    }
    if let Some(issued) = &m.issued {
        o.insert("issued".into(), issued.to_string().into());
    }
    match &m.value {
        _ if lone.is_some() => {
            if let Some((_, c)) = lone {
                match &c.value {
                    ComponentValue::Quantity(q) => {
                        o.insert("valueQuantity".into(), quantity_json(q)?);
                    }
                    ComponentValue::Absent(r) => {
                        o.insert("dataAbsentReason".into(), absent_json(r));
                    }
                }
            }
        }
        Value::Quantity(q) => {
            o.insert("valueQuantity".into(), quantity_json(q)?);
        }
        Value::Absent(r) => {
            o.insert("dataAbsentReason".into(), absent_json(r));
        }
        Value::Components(cs) => {
            let mut list = Vec::with_capacity(cs.len());
            for c in cs {
                let def = kind.component(c.id.as_str()).ok_or_else(|| {
                    Error::unsupported(
                        "Observation.component.code",
                        format!("{} has no component {}", kind.id.as_str(), c.id.as_str()),
                    )
                })?;
                let mut e = Map::new();
                let unit = component_unit(&c.value);
                e.insert(
                    "code".into(),
                    codeable(&def.codings, &def.display, profile, unit),
                );
                match &c.value {
                    ComponentValue::Quantity(q) => {
                        e.insert("valueQuantity".into(), quantity_json(q)?);
                    }
                    ComponentValue::Absent(r) => {
                        e.insert("dataAbsentReason".into(), absent_json(r));
                    }
                }
                list.push(Json::Object(e));
            }
            o.insert("component".into(), Json::Array(list));
        }
    }
    if let Some(site) = &m.context.site {
        o.insert("bodySite".into(), json!({ "text": site.as_str() }));
    }
    if let Some(method) = &m.context.method {
        o.insert("method".into(), json!({ "text": method }));
    }
    if let Some(d) = &m.device {
        let mut r = Map::new();
        if let Some(reference) = &d.reference {
            r.insert("reference".into(), reference.as_str().into());
        }
        if let Some(id) = &d.identifier {
            let mut i = Map::new();
            if let Some(s) = &id.system {
                i.insert("system".into(), s.as_str().into());
            }
            i.insert("value".into(), id.value.as_str().into());
            r.insert("identifier".into(), Json::Object(i));
        }
        if let Some(display) = &d.display {
            r.insert("display".into(), display.as_str().into());
        }
        if !r.is_empty() {
            o.insert("device".into(), Json::Object(r));
        }
    }
    Ok(Json::Object(o))
}

/// The Observation of `m` as compact JSON text: equal, as JSON, to
/// [`write_observation`]`(m, options)`, and written without building a `serde_json::Value`.
///
/// - A fresh Observation (no kept FHIR payload) in the vital-signs profile is written straight
///   from the model, byte for byte what `write_observation(..).to_string()` gives.
/// - A kept FHIR payload that still says what the measurement says is spliced in as its source
///   wrote it (line breaks between tokens removed, so it stays one NDJSON line): its numbers,
///   escapes and key order are the source's own.
/// - Anything else (a changed measurement over a kept payload, a national profile) takes the
///   `write_observation` path.
///
/// ```
/// use healthanalyzer_fhir::{WriteOptions, write_observation, write_observation_text};
/// use healthanalyzer_model::{Catalog, DateTime, Identifier, Measurement, Provenance, Value, parse_decimal};
///
/// let m = Measurement::new(
///     Provenance::new("scale", "r1"),
///     Identifier::local("p1"),
///     "body-weight",
///     Value::quantity(parse_decimal("72.40")?, "kg"),
///     DateTime::parse("2024-03-31T08:15:00+02:00")?,
/// );
/// let options = WriteOptions::new(Catalog::builtin());
/// let text = write_observation_text(&m, &options)?;
/// assert_eq!(text, write_observation(&m, &options)?.to_string());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_observation_text(m: &Measurement, options: &WriteOptions<'_>) -> Result<String> {
    let mut out = String::new();
    observation_text(&mut out, m, options)?;
    Ok(out)
}

/// [`write_observation_text`] appended to `out`; `Some(has_id)` when the text is a kept
/// payload whose mark says whether it has a top-level `id`, else `None` (a fresh text has one).
pub(crate) fn observation_text(
    out: &mut String,
    m: &Measurement,
    options: &WriteOptions<'_>,
) -> Result<Option<bool>> {
    if let Some(p) = &m.provenance.payload
        && p.media_type == FHIR_JSON
    {
        if options.profile == Profile::VitalSigns
            && let Some(has_id) = splice(out, m, &p.content, options.catalog)
        {
            return Ok(has_id);
        }
        out.push_str(&write_observation(m, options)?.to_string());
        return Ok(None);
    }
    if options.profile != Profile::VitalSigns || m.value.is_lone_component() {
        out.push_str(&write_observation(m, options)?.to_string());
        return Ok(None);
    }
    let mut w = JsonText(std::mem::take(out));
    w.0.reserve(1024);
    let r = fresh_text(&mut w, m, options.catalog, None);
    *out = w.0;
    r.map(|()| None)
}

/// What a FHIR server adds to an Observation it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served<'a> {
    /// `meta.versionId`, after the profiles in `meta`.
    pub version: u64,
    /// A literal reference (`Patient/<id>`) added after the subject's identifier, when the
    /// subject is known by an identifier only.
    pub subject_reference: Option<&'a str>,
}

/// A fresh Observation in the vital-signs profile as a server serves it: the text
/// [`write_observation_text`] writes, with `meta.versionId` after the profiles and the
/// subject's literal reference after its identifier, in one pass. `None` when `m` is not
/// written fresh (it keeps a FHIR payload, or the profile is a national one): the caller then
/// stamps the [`write_observation`] value itself.
pub fn write_served_observation_text(
    m: &Measurement,
    options: &WriteOptions<'_>,
    served: Served<'_>,
) -> Result<Option<String>> {
    if options.profile != Profile::VitalSigns
        || m.value.is_lone_component()
        || m.provenance
            .payload
            .as_ref()
            .is_some_and(|p| p.media_type == FHIR_JSON)
    {
        return Ok(None);
    }
    let mut w = JsonText::with_capacity(1024);
    fresh_text(&mut w, m, options.catalog, Some(served))?;
    Ok(Some(w.0))
}

/// The kept payload as one line, appended to `out`, when it is an Observation object that
/// reads back to `m`: `Some(Some(has_id))` when the payload's mark said so (no re-read),
/// `Some(None)` when a re-read did, `None` (nothing appended) when it does not read back to `m`.
fn splice(
    out: &mut String,
    m: &Measurement,
    content: &str,
    catalog: &Catalog,
) -> Option<Option<bool>> {
    let marked = crate::mark::unchanged(m);
    if marked.is_none() {
        // The kept payload was checked when it came in.
        let options =
            ReadOptions::new(catalog, &m.provenance.source_id).with_validation(Validation::Lenient);
        let before = read_observation(content, &options, Some(&m.provenance.record_id)).ok()?;
        if !(same_content(&before, m) && before.subject == m.subject) {
            return None;
        }
    }
    let trimmed = content.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    // JSON strings cannot hold a raw line break, so every one is whitespace between tokens.
    if trimmed.contains(['\n', '\r']) {
        out.extend(trimmed.chars().filter(|c| !matches!(c, '\n' | '\r')));
    } else {
        out.push_str(trimmed);
    }
    Some(marked)
}

/// A JSON text being written; strings are escaped as serde_json escapes them.
struct JsonText(String);

impl JsonText {
    fn with_capacity(n: usize) -> Self {
        Self(String::with_capacity(n))
    }

    fn raw(&mut self, s: &str) {
        self.0.push_str(s);
    }

    fn string(&mut self, s: &str) {
        self.0.push('"');
        let bytes = s.as_bytes();
        // Eight bytes at a time while none needs an escape (most text: codes, systems,
        // displays), then byte by byte from the first word that has one.
        let mut clean = 0;
        while let Some(word) = bytes.get(clean..clean + 8) {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(word);
            if needs_escape(u64::from_le_bytes(eight)) {
                break;
            }
            clean += 8;
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate().skip(clean) {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.push_str(&s[start..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.0.push_str("\\u00");
                self.0.push(HEX[usize::from(b >> 4)] as char);
                self.0.push(HEX[usize::from(b & 0xf)] as char);
            } else {
                self.0.push_str(escape);
            }
            start = i + 1;
        }
        self.0.push_str(&s[start..]);
        self.0.push('"');
    }

    /// `"key":` after a `{` or a `,` the caller wrote.
    fn key(&mut self, k: &str) {
        self.string(k);
        self.0.push(':');
    }

    fn field(&mut self, k: &str, v: &str) {
        self.key(k);
        self.string(v);
    }

    fn display(&mut self, v: &dyn std::fmt::Display) {
        use std::fmt::Write;
        self.0.push('"');
        let start = self.0.len();
        let _ = write!(self.0, "{v}");
        if self.0[start..]
            .bytes()
            .any(|b| b == b'"' || b == b'\\' || b < 0x20)
        {
            let s = self.0.split_off(start);
            self.0.pop();
            self.string(&s);
        } else {
            self.0.push('"');
        }
    }
}

/// Whether any of the eight bytes of `word` is one JSON escapes: below 0x20, `"` or `\`.
/// (The word tests "has a byte below n" and "has a zero byte", exact as yes/no answers: a
/// high bit survives where the subtraction borrowed into a byte that had it clear; bytes of
/// 0x80 and above, UTF-8's, never count.)
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    (below | zero(quote) | zero(backslash)) & HIGH != 0
}

/// Whether `s` (a decimal's text) is a JSON number as written.
fn json_number(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "1"));
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'))
        && !frac.is_empty()
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// A decimal's JSON number text appended to `out`, or the error `number` gives for it.
fn number_text(out: &mut String, d: &healthanalyzer_model::Decimal) -> Result<()> {
    use std::fmt::Write;
    let start = out.len();
    let _ = write!(out, "{d}");
    if !json_number(&out[start..]) {
        out.truncate(start);
        out.push_str(&number(d)?.to_string());
    }
    Ok(())
}

fn coding_text(w: &mut JsonText, system: &str, code: &str, display: Option<&str>) {
    w.raw("{");
    w.field("system", system);
    w.raw(",");
    w.field("code", code);
    if let Some(d) = display {
        w.raw(",");
        w.field("display", d);
    }
    w.raw("}");
}

/// Codings the catalog reads but does not write: NPU under dk-core's URI and under Norway's
/// NLK say what the NPU coding under the Danish OID says, which is written.
fn read_only(c: &healthanalyzer_model::Coding) -> bool {
    c.system == systems::NPU_URI || c.system == systems::NLK
}

/// The written unit of a quantity (the original one, when kept).
fn written_unit(o: &Observed) -> &str {
    o.original.as_ref().unwrap_or(&o.quantity).unit.as_str()
}

/// The written unit of a single-valued measurement's value, if it has one.
fn value_unit(v: &Value) -> Option<&str> {
    match v {
        Value::Quantity(q) => Some(written_unit(q)),
        _ => None,
    }
}

/// The written unit of a component's value, if it has one.
fn component_unit(v: &ComponentValue) -> Option<&str> {
    match v {
        ComponentValue::Quantity(q) => Some(written_unit(q)),
        ComponentValue::Absent(_) => None,
    }
}

fn codeable_text(
    w: &mut JsonText,
    codings: &[healthanalyzer_model::Coding],
    text: &str,
    unit: Option<&str>,
) {
    w.raw("{\"coding\":[");
    let mut first = true;
    for (i, c) in codings.iter().enumerate() {
        // The first coding of its system (no allocation: the codings before it are the seen).
        let new = !codings[..i].iter().any(|p| p.system == c.system) && !read_only(c);
        if !(new || Profile::VitalSigns.wants_coding(c)) || !c.fits_unit(unit) {
            continue;
        }
        if !first {
            w.raw(",");
        }
        first = false;
        coding_text(w, &c.system, &c.code, c.display.as_deref());
    }
    w.raw("],");
    w.field("text", text);
    w.raw("}");
}

fn quantity_text(w: &mut JsonText, o: &Observed) -> Result<()> {
    let q = o.original.as_ref().unwrap_or(&o.quantity);
    w.raw("{\"value\":");
    number_text(&mut w.0, &q.value)?;
    w.raw(",");
    w.field("unit", q.unit.as_str());
    w.raw(",");
    w.field("system", systems::UCUM);
    w.raw(",");
    w.field("code", q.unit.as_str());
    w.raw("}");
    Ok(())
}

fn absent_text(w: &mut JsonText, r: &AbsentReason) {
    w.raw("{\"coding\":[");
    coding_text(w, ABSENT_SYSTEM, r.as_str(), None);
    w.raw("]}");
}

/// [`fresh_observation`] in the vital-signs profile, written as text in the same order.
fn fresh_text(
    w: &mut JsonText,
    m: &Measurement,
    catalog: &Catalog,
    served: Option<Served<'_>>,
) -> Result<()> {
    let kind = catalog.kind(m.kind.as_str()).ok_or_else(|| {
        Error::unsupported(
            "Observation.code",
            format!("unknown kind {}", m.kind.as_str()),
        )
    })?;
    // The id's hyphenated form, written twice (hex digits and hyphens need no escapes).
    let mut id_buf = [0u8; 36];
    let id = m.id.as_uuid().hyphenated().encode_lower(&mut id_buf);
    w.raw("{\"resourceType\":\"Observation\",\"id\":\"");
    w.raw(id);
    w.raw("\"");
    let profiles = Profile::vital_signs_profile_suffixes(kind);
    let any_profile = profiles[0].is_some();
    if any_profile || served.is_some() {
        w.raw(",\"meta\":{");
        if any_profile {
            w.raw("\"profile\":[");
            for (i, p) in profiles.iter().flatten().enumerate() {
                if i > 0 {
                    w.raw(",");
                }
                // The URLs are plain ASCII without quotes or backslashes.
                w.raw("\"");
                w.raw(crate::profile::HL7_SD);
                w.raw(p);
                w.raw("\"");
            }
            w.raw("]");
        }
        if let Some(s) = served {
            if any_profile {
                w.raw(",");
            }
            w.raw("\"versionId\":");
            w.display(&s.version);
        }
        w.raw("}");
    }
    w.raw(",\"identifier\":[{");
    w.field("system", URI_SYSTEM);
    w.raw(",\"value\":\"urn:uuid:");
    w.raw(id);
    w.raw("\"}],");
    w.field("status", m.status.as_str());
    w.raw(",\"category\":[{\"coding\":[");
    let display = match &*kind.category {
        "vital-signs" => Some("Vital Signs"),
        "laboratory" => Some("Laboratory"),
        "activity" => Some("Activity"),
        "survey" => Some("Survey"),
        "exam" => Some("Exam"),
        _ => None,
    };
    coding_text(w, OBS_CATEGORY, &kind.category, display);
    w.raw("]");
    if let Some(d) = display {
        w.raw(",");
        w.field("text", d);
    }
    w.raw("}],\"code\":");
    let unit = value_unit(&m.value);
    codeable_text(w, &kind.codings, &kind.display, unit);
    w.raw(",\"subject\":");
    match (&m.subject.system, m.subject.value.as_str()) {
        (Some(s), v) if s == REFERENCE_SYSTEM => {
            w.raw("{");
            w.field("reference", v);
            w.raw("}");
        }
        (system, v) => {
            w.raw("{\"identifier\":{");
            if let Some(s) = system {
                w.field("system", s);
                w.raw(",");
            }
            w.field("value", v);
            w.raw("}");
            if let Some(r) = served.and_then(|s| s.subject_reference) {
                w.raw(",");
                w.field("reference", r);
            }
            w.raw("}");
        }
    }
    match &m.effective {
        Effective::At(t) => {
            w.raw(",\"effectiveDateTime\":");
            w.display(t);
        }
        Effective::Period { start, end } => {
            w.raw(",\"effectivePeriod\":{\"start\":");
            w.display(start);
            if let Some(e) = end {
                w.raw(",\"end\":");
                w.display(e);
            }
            w.raw("}");
        }
    }
    if let Some(issued) = &m.issued {
        w.raw(",\"issued\":");
        w.display(issued);
    }
    match &m.value {
        Value::Quantity(q) => {
            w.raw(",\"valueQuantity\":");
            quantity_text(w, q)?;
        }
        Value::Absent(r) => {
            w.raw(",\"dataAbsentReason\":");
            absent_text(w, r);
        }
        Value::Components(cs) => {
            w.raw(",\"component\":[");
            for (i, c) in cs.iter().enumerate() {
                let def = kind.component(c.id.as_str()).ok_or_else(|| {
                    Error::unsupported(
                        "Observation.component.code",
                        format!("{} has no component {}", kind.id.as_str(), c.id.as_str()),
                    )
                })?;
                if i > 0 {
                    w.raw(",");
                }
                w.raw("{\"code\":");
                let unit = component_unit(&c.value);
                codeable_text(w, &def.codings, &def.display, unit);
                match &c.value {
                    ComponentValue::Quantity(q) => {
                        w.raw(",\"valueQuantity\":");
                        quantity_text(w, q)?;
                    }
                    ComponentValue::Absent(r) => {
                        w.raw(",\"dataAbsentReason\":");
                        absent_text(w, r);
                    }
                }
                w.raw("}");
            }
            w.raw("]");
        }
    }
    if let Some(site) = &m.context.site {
        w.raw(",\"bodySite\":{");
        w.field("text", site.as_str());
        w.raw("}");
    }
    if let Some(method) = &m.context.method {
        w.raw(",\"method\":{");
        w.field("text", method.as_str());
        w.raw("}");
    }
    if let Some(d) = &m.device
        && (d.reference.is_some() || d.identifier.is_some() || d.display.is_some())
    {
        w.raw(",\"device\":{");
        let mut first = true;
        let mut sep = |w: &mut JsonText| {
            if !first {
                w.raw(",");
            }
            first = false;
        };
        if let Some(reference) = &d.reference {
            sep(w);
            w.field("reference", reference.as_str());
        }
        if let Some(id) = &d.identifier {
            sep(w);
            w.raw("\"identifier\":{");
            if let Some(s) = &id.system {
                w.field("system", s.as_str());
                w.raw(",");
            }
            w.field("value", id.value.as_str());
            w.raw("}");
        }
        if let Some(display) = &d.display {
            sep(w);
            w.field("display", display.as_str());
        }
        w.raw("}");
    }
    w.raw("}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::needs_escape;

    fn escaped(b: u8) -> bool {
        b < 0x20 || b == b'"' || b == b'\\'
    }

    /// Every pair of byte values at every pair of places in an otherwise plain word: the word
    /// test answers what the byte test answers (borrows between neighbours included).
    #[test]
    fn the_word_test_agrees_with_the_byte_test() {
        for (i, j) in [(0, 1), (3, 4), (6, 7), (0, 7), (2, 5)] {
            for a in 0..=255u8 {
                for b in 0..=255u8 {
                    let mut word = *b"plaintxt";
                    word[i] = a;
                    word[j] = b;
                    assert_eq!(
                        needs_escape(u64::from_le_bytes(word)),
                        escaped(a) || escaped(b),
                        "{word:?}"
                    );
                }
            }
        }
    }
}
