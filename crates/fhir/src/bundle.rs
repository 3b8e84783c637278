//! Bundles in (collection, transaction, batch, searchset, message, …) and out (collection,
//! transaction with conditional create, searchset), and NDJSON.

use std::borrow::Cow;
use std::collections::HashMap;

use healthanalyzer_model::{DeviceRef, Identifier, Measurement, MeasurementId, Subject};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value as Json, json};

use crate::device::{merge, read_device, write_device};
use crate::error::{Error, Result, expect_type};
use crate::observation::{
    REFERENCE_SYSTEM, ReadOptions, URI_SYSTEM, Validation, map_observation, observation_text,
    reference_json, write_observation,
};
use crate::patient::{read_patient, write_patient};
use crate::profile::{Profile, WriteOptions, phd_identifier};
use crate::raw::{RawObservation, Text};
use crate::strict::check_strict;

/// The largest Bundle or NDJSON text accepted, in bytes.
pub const MAX_BUNDLE_BYTES: usize = 512 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle<'a> {
    #[serde(borrow)]
    resource_type: Cow<'a, str>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    entry: Option<Vec<RawEntry<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry<'a> {
    #[serde(borrow, default)]
    full_url: Option<Text<'a>>,
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Peek<'a> {
    #[serde(borrow)]
    resource_type: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
}

/// An entry that could not be mapped; the rest of the Bundle is still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    /// The entry's index in `Bundle.entry` (or the line number, from 1, in NDJSON).
    pub index: usize,
    /// What is wrong, with a path inside the entry's resource.
    pub error: Error,
}

/// What a Bundle held.
#[derive(Debug, Default)]
pub struct Contents {
    /// The Bundle's type (`collection`, `transaction`, `searchset`, …); empty for NDJSON.
    pub bundle_type: String,
    /// The Observations, subjects resolved to their Patient's identifier where the Bundle holds
    /// the Patient.
    pub measurements: Vec<Measurement>,
    /// The Patients.
    pub subjects: Vec<Subject>,
    /// The Devices (Observations referring to one carry what it says, too).
    pub devices: Vec<DeviceRef>,
    /// Entries of other resource types (a MessageHeader, a Practitioner …), by index and type.
    pub skipped: Vec<(usize, String)>,
    /// Entries that could not be mapped.
    pub errors: Vec<EntryError>,
}

/// Reads a Bundle of any type: its Patients and Observations, with references between entries
/// resolved (`urn:uuid:` full URLs, `Patient/{id}`, absolute URLs). An Observation without an
/// `id` gets its entry's `fullUrl` as record id. A bad entry is reported in
/// [`Contents::errors`] and does not stop the others; a Bundle that is not one is an error.
pub fn read_bundle(json: &str, options: &ReadOptions<'_>) -> Result<Contents> {
    if json.len() > MAX_BUNDLE_BYTES {
        return Err(Error::TooLarge {
            path: "Bundle".into(),
            reason: format!(
                "{} bytes, more than the limit of {MAX_BUNDLE_BYTES}",
                json.len()
            ),
        });
    }
    let raw: RawBundle<'_> =
        serde_json::from_str(json).map_err(|e| Error::structure("Bundle", e.to_string()))?;
    expect_type(&raw.resource_type, "Bundle")?;
    let mut out = Contents {
        bundle_type: raw.kind.as_deref().unwrap_or_default().to_string(),
        ..Contents::default()
    };
    let entries = raw.entry.unwrap_or_default();
    let items: Vec<(usize, Option<&str>, &str)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.resource.map(|r| (i, e.full_url.as_deref(), r.get())))
        .collect();
    read_items(&items, options, &mut out, Layout::Entries { depth: 0 });
    Ok(out)
}

/// Reads NDJSON (one resource per line, as FHIR Bulk Data exports write it): Patients and
/// Observations, references resolved as in a Bundle. Errors are reported by line (from 1).
pub fn read_ndjson(text: &str, options: &ReadOptions<'_>) -> Result<Contents> {
    if text.len() > MAX_BUNDLE_BYTES {
        return Err(Error::TooLarge {
            path: "NDJSON".into(),
            reason: format!(
                "{} bytes, more than the limit of {MAX_BUNDLE_BYTES}",
                text.len()
            ),
        });
    }
    let mut out = Contents::default();
    // Each line is parsed once, as the resource it holds (no separate pass to find its end).
    let items: Vec<(usize, Option<&str>, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, None, line.trim()))
        .filter(|(_, _, line)| !line.is_empty())
        .collect();
    read_items(&items, options, &mut out, Layout::Lines);
    Ok(out)
}

/// Where the items read come from: a Bundle's entries (errors are `entry[i].resource.…`, and
/// how deep the Bundle is nested), or NDJSON lines (errors are the resource's own path; the
/// caller names the line).
#[derive(Clone, Copy)]
enum Layout {
    Entries { depth: usize },
    Lines,
}

fn prefixed(e: Error, index: usize, layout: Layout) -> EntryError {
    if matches!(layout, Layout::Lines) {
        return EntryError { index, error: e };
    }
    let error = match e {
        Error::Structure { path, reason } => Error::Structure {
            path: format!("entry[{index}].resource.{path}"),
            reason,
        },
        Error::Required { path } => Error::Required {
            path: format!("entry[{index}].resource.{path}"),
        },
        Error::Value { path, reason } => Error::Value {
            path: format!("entry[{index}].resource.{path}"),
            reason,
        },
        Error::NotSupported { path, reason } => Error::NotSupported {
            path: format!("entry[{index}].resource.{path}"),
            reason,
        },
        Error::TooLarge { path, reason } => Error::TooLarge {
            path: format!("entry[{index}].resource.{path}"),
            reason,
        },
    };
    EntryError { index, error }
}

/// How deep Bundles may nest inside Bundles.
const MAX_NESTING: usize = 4;

fn read_items(
    items: &[(usize, Option<&str>, &str)],
    options: &ReadOptions<'_>,
    out: &mut Contents,
    layout: Layout,
) {
    let depth = match layout {
        Layout::Entries { depth } => depth,
        Layout::Lines => 0,
    };
    let strict = options.validation == Validation::Strict;
    // Patients and Devices first: every name an Observation may use for one. Each entry is parsed once as
    // an Observation (the common case); other resources are told apart by the type that parse
    // found, or, when it failed, by a second look at `resourceType` alone.
    let mut names: HashMap<String, Identifier> = HashMap::new();
    let mut devices: HashMap<String, DeviceRef> = HashMap::new();
    let mut observations = Vec::new();
    for &(i, full_url, text) in items {
        let (resource_type, id) = match serde_json::from_str::<RawObservation<'_>>(text) {
            Ok(r) if r.resource_type == "Observation" => {
                observations.push((i, full_url, text, Ok(r)));
                continue;
            }
            Ok(r) => (r.resource_type, r.id),
            Err(obs_err) => match serde_json::from_str::<Peek<'_>>(text) {
                Ok(p) if p.resource_type == "Observation" => {
                    let e = Error::structure("Observation", obs_err.to_string());
                    observations.push((i, full_url, text, Err(e)));
                    continue;
                }
                Ok(p) => (p.resource_type, p.id),
                Err(e) => {
                    out.errors.push(prefixed(
                        Error::structure("resourceType", e.to_string()),
                        i,
                        layout,
                    ));
                    continue;
                }
            },
        };
        if strict
            && matches!(&*resource_type, "Patient" | "Device")
            && let Err(e) = check_strict(text)
        {
            out.errors.push(prefixed(e, i, layout));
            continue;
        }
        match &*resource_type {
            "Patient" => match read_patient(text) {
                Ok(s) => {
                    if let Some(url) = full_url {
                        names.insert(url.to_string(), s.id.clone());
                    }
                    if let Some(id) = id.as_deref() {
                        names.insert(format!("Patient/{id}"), s.id.clone());
                    }
                    out.subjects.push(s);
                }
                Err(e) => out.errors.push(prefixed(e, i, layout)),
            },
            "Device" => match read_device(text) {
                Ok(d) => {
                    if let Some(url) = full_url {
                        devices.insert(url.to_string(), d.clone());
                    }
                    if let Some(id) = id.as_deref() {
                        devices.insert(format!("Device/{id}"), d.clone());
                    }
                    out.devices.push(d);
                }
                Err(e) => out.errors.push(prefixed(e, i, layout)),
            },
            // A Bundle of Bundles (a batch of documents, say): read each in turn.
            "Bundle" if depth < MAX_NESTING => match serde_json::from_str::<RawBundle<'_>>(text) {
                Ok(inner) => {
                    let entries = inner.entry.unwrap_or_default();
                    let items: Vec<(usize, Option<&str>, &str)> = entries
                        .iter()
                        .enumerate()
                        .filter_map(|(j, e)| {
                            e.resource.map(|r| (j, e.full_url.as_deref(), r.get()))
                        })
                        .collect();
                    let mut nested = Contents::default();
                    read_items(
                        &items,
                        options,
                        &mut nested,
                        Layout::Entries { depth: depth + 1 },
                    );
                    out.measurements.extend(nested.measurements);
                    out.subjects.extend(nested.subjects);
                    out.devices.extend(nested.devices);
                    out.skipped
                        .extend(nested.skipped.into_iter().map(|(_, t)| (i, t)));
                    out.errors.extend(
                        nested
                            .errors
                            .into_iter()
                            .map(|e| prefixed(e.error, i, layout)),
                    );
                }
                Err(e) => out.errors.push(prefixed(
                    Error::structure("Bundle", e.to_string()),
                    i,
                    layout,
                )),
            },
            other => out.skipped.push((i, other.to_string())),
        }
    }
    for (i, full_url, text, raw) in observations {
        let parsed = raw.and_then(|r| {
            let m = map_observation(&r, text, options, full_url)?;
            if strict {
                check_strict(text)?;
            }
            Ok(m)
        });
        match parsed {
            Ok(mut m) => {
                if m.subject.system.as_deref() == Some(REFERENCE_SYSTEM) {
                    let reference = m.subject.value.as_str();
                    // `Patient/1`, or an absolute URL ending in it, or a urn:uuid full URL.
                    let found = names.get(reference).or_else(|| {
                        let tail = reference.rsplit('/').take(2).collect::<Vec<_>>();
                        match tail.as_slice() {
                            [id, "Patient"] => names.get(&format!("Patient/{id}")),
                            _ => None,
                        }
                    });
                    if let Some(id) = found {
                        m.subject = id.clone();
                    }
                }
                if let Some(device) = &mut m.device
                    && let Some(reference) = device.reference.as_deref()
                {
                    let found = devices.get(reference).or_else(|| {
                        let tail = reference.rsplit('/').take(2).collect::<Vec<_>>();
                        match tail.as_slice() {
                            [id, "Device"] => devices.get(&format!("Device/{id}")),
                            _ => None,
                        }
                    });
                    if let Some(d) = found {
                        merge(device, d);
                    }
                }
                out.measurements.push(m);
            }
            Err(e) => out.errors.push(prefixed(e, i, layout)),
        }
    }
}

/// The kind of Bundle to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    /// A `collection`: resources side by side.
    Collection,
    /// A `transaction` that creates each resource only if no resource with its identifier
    /// exists (`ifNoneExist`), so sending it twice creates nothing twice.
    Transaction,
    /// A `searchset` (a search result page), with `total` set to the number of entries.
    Searchset,
}

fn full_url(namespace: &str, id: &Identifier) -> String {
    let key = format!("{}|{}", id.system.as_deref().unwrap_or_default(), id.value);
    format!("urn:uuid:{}", MeasurementId::from_source(namespace, &key))
}

/// A search query on an identifier, as `ifNoneExist` takes it: FHIR's search escapes (`\|`,
/// `\,`, `\$`, `\\`), then percent-encoding of what a URL query cannot hold as is.
fn identifier_query(system: Option<&str>, value: &str) -> String {
    let token = match system {
        Some(s) => format!("{}|{}", search_escape(s), search_escape(value)),
        None => search_escape(value),
    };
    format!("identifier={}", percent_encode(&token))
}

fn search_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '|' | ',' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        // RFC 3986 query characters less `&`, `=` and `+` (they would change the query), plus
        // `|` and `\` as FHIR writes them in tokens.
        if b.is_ascii_alphanumeric() || b"-._~!*'();:@,/?|$\\".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn request(kind: BundleKind, resource_type: &str, query: String) -> Option<Json> {
    (kind == BundleKind::Transaction)
        .then(|| json!({ "method": "POST", "url": resource_type, "ifNoneExist": query }))
}

/// Writes Patients, Devices and Observations as a Bundle, following `options.profile`.
///
/// - A Device entry is written for every distinct device identifier the measurements carry.
/// - In a transaction, each resource is a conditional create on an identifier: a Patient's
///   primary identifier, a Device's identifier, and for an Observation its own
///   `urn:uuid:<id>` (or, under [`Profile::DkCore`], the PHD identifier when it can be made,
///   so a reading sent by two gateways is stored once). Observations refer to the Patient and
///   Device of the same Bundle by full URL.
///
/// ```
/// use healthanalyzer_fhir::{BundleKind, Profile, WriteOptions, write_bundle};
/// use healthanalyzer_model::{
///     Catalog, DateTime, Effective, Identifier, Measurement, Provenance, Subject, Value,
///     parse_decimal, systems,
/// };
///
/// let cpr = Identifier::new(systems::CPR, "0101701234");
/// let m = Measurement::new(
///     Provenance::new("home-monitor", "reading-1"),
///     cpr.clone(),
///     "heart-rate",
///     Value::quantity(parse_decimal("64")?, "/min"),
///     Effective::At(DateTime::parse("2024-05-01T07:31:00+02:00")?),
/// );
/// let options = WriteOptions::new(Catalog::builtin()).with_profile(Profile::DkCore);
/// let tx = write_bundle(BundleKind::Transaction, &[Subject::new(cpr)], &[m], &options)?;
/// assert_eq!(tx["type"], "transaction");
/// // Sending it twice creates nothing twice: each entry is created only if none exists.
/// assert_eq!(
///     tx["entry"][0]["request"]["ifNoneExist"],
///     "identifier=urn:oid:1.2.208.176.1.2|0101701234"
/// );
/// // The Observation refers to the Patient entry and follows dk-core.
/// let obs = &tx["entry"][1]["resource"];
/// assert_eq!(obs["subject"]["reference"], tx["entry"][0]["fullUrl"]);
/// assert_eq!(
///     obs["meta"]["profile"][0],
///     "http://hl7.dk/fhir/core/StructureDefinition/dk-core-basic-observation"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_bundle(
    kind: BundleKind,
    subjects: &[Subject],
    measurements: &[Measurement],
    options: &WriteOptions<'_>,
) -> Result<Json> {
    let mut entries = Vec::with_capacity(subjects.len() + measurements.len());
    let mut patient_urls: HashMap<&Identifier, String> = HashMap::new();
    let search = |mode: &str| (kind == BundleKind::Searchset).then(|| json!({ "mode": mode }));
    let mut push = |url: String, resource: Json, request: Option<Json>, search: Option<Json>| {
        let mut e = json!({ "fullUrl": url, "resource": resource });
        if let Some(r) = request {
            e["request"] = r;
        }
        if let Some(s) = search {
            e["search"] = s;
        }
        entries.push(e);
    };
    for s in subjects {
        let url = full_url("urn:healthanalyzer:patient", &s.id);
        patient_urls.insert(&s.id, url.clone());
        let query = identifier_query(s.id.system.as_deref(), &s.id.value);
        push(
            url,
            write_patient(s, options.profile)?,
            request(kind, "Patient", query),
            search("include"),
        );
    }
    let mut device_urls: HashMap<&Identifier, String> = HashMap::new();
    for d in measurements.iter().filter_map(|m| m.device.as_ref()) {
        let Some(id) = &d.identifier else { continue };
        if device_urls.contains_key(id) {
            continue;
        }
        let url = full_url("urn:healthanalyzer:device", id);
        device_urls.insert(id, url.clone());
        let query = identifier_query(id.system.as_deref(), &id.value);
        push(
            url,
            write_device(d),
            request(kind, "Device", query),
            search("include"),
        );
    }
    for m in measurements {
        let mut resource = write_observation(m, options)?;
        let own = format!("urn:uuid:{}", m.id);
        let mut query = identifier_query(Some(URI_SYSTEM), &own);
        if kind == BundleKind::Transaction {
            ensure_identifier(&mut resource, &own);
            if let Some(url) = patient_urls.get(&m.subject) {
                resource["subject"] = json!({ "reference": url });
            } else if m.subject.system.as_deref() != Some(REFERENCE_SYSTEM) {
                resource["subject"] = reference_json(&m.subject);
            }
            if let Some(url) = m
                .device
                .as_ref()
                .and_then(|d| d.identifier.as_ref())
                .and_then(|id| device_urls.get(id))
            {
                resource["device"] = json!({ "reference": url });
            }
            if options.profile == Profile::DkCore
                && let Some(kind_def) = options.catalog.kind(m.kind.as_str())
                && let Some(phd) = phd_identifier(m, kind_def)
            {
                query = identifier_query(None, &phd);
            }
        }
        push(
            own,
            resource,
            request(kind, "Observation", query),
            search("match"),
        );
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": match kind {
            BundleKind::Collection => "collection",
            BundleKind::Transaction => "transaction",
            BundleKind::Searchset => "searchset",
        },
    });
    if kind == BundleKind::Searchset {
        bundle["total"] = json!(measurements.len());
    }
    bundle["entry"] = Json::Array(entries);
    Ok(bundle)
}

/// [`write_bundle`] as JSON text, for a collection or a searchset without building a
/// `serde_json::Value` per Observation: each Observation is
/// [`write_observation_text`](crate::write_observation_text)'s (a kept payload spliced as
/// stored, in its own key order and escapes), so the Bundle is equal as JSON to
/// [`write_bundle`]'s. A transaction, whose Observations' references are rewritten to the
/// Bundle's entries, is [`write_bundle`]'s written out.
pub fn write_bundle_text(
    kind: BundleKind,
    subjects: &[Subject],
    measurements: &[Measurement],
    options: &WriteOptions<'_>,
) -> Result<String> {
    if kind == BundleKind::Transaction {
        return Ok(write_bundle(kind, subjects, measurements, options)?.to_string());
    }
    let entries = write_bundle_entries_text(kind, subjects, measurements, options)?;
    let mut out =
        String::with_capacity(128 + entries.iter().map(|(_, e)| e.len() + 1).sum::<usize>());
    out.push_str(if kind == BundleKind::Searchset {
        "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":"
    } else {
        "{\"resourceType\":\"Bundle\",\"type\":\"collection\""
    });
    if kind == BundleKind::Searchset {
        out.push_str(&measurements.len().to_string());
    }
    out.push_str(",\"entry\":[");
    for (i, (_, e)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e);
    }
    out.push_str("]}");
    Ok(out)
}

/// The entries of [`write_bundle_text`]'s Bundle, each as its `fullUrl` and its JSON text, in
/// the Bundle's order: for a writer that streams a large Bundle a page at a time. A transaction's
/// entries are [`write_bundle`]'s, each written out.
pub fn write_bundle_entries_text(
    kind: BundleKind,
    subjects: &[Subject],
    measurements: &[Measurement],
    options: &WriteOptions<'_>,
) -> Result<Vec<(String, String)>> {
    if kind == BundleKind::Transaction {
        let bundle = write_bundle(kind, subjects, measurements, options)?;
        let Some(Json::Array(list)) = bundle.get("entry") else {
            return Ok(Vec::new());
        };
        return Ok(list
            .iter()
            .map(|e| {
                let url = e["fullUrl"].as_str().unwrap_or_default().to_string();
                (url, e.to_string())
            })
            .collect());
    }
    let searchset = kind == BundleKind::Searchset;
    let mut entries = Vec::with_capacity(subjects.len() + measurements.len());
    let mut entry = |url: String, resource: &str, mode: &str| {
        let mut out = String::with_capacity(resource.len() + url.len() + 64);
        out.push_str("{\"fullUrl\":");
        out.push_str(&Json::from(url.as_str()).to_string());
        out.push_str(",\"resource\":");
        out.push_str(resource);
        if searchset {
            out.push_str(",\"search\":{\"mode\":\"");
            out.push_str(mode);
            out.push_str("\"}");
        }
        out.push('}');
        entries.push((url, out));
    };
    for s in subjects {
        let url = full_url("urn:healthanalyzer:patient", &s.id);
        entry(
            url,
            &write_patient(s, options.profile)?.to_string(),
            "include",
        );
    }
    let mut devices: std::collections::HashSet<&Identifier> = std::collections::HashSet::new();
    for d in measurements.iter().filter_map(|m| m.device.as_ref()) {
        let Some(id) = &d.identifier else { continue };
        if !devices.insert(id) {
            continue;
        }
        let url = full_url("urn:healthanalyzer:device", id);
        entry(url, &write_device(d).to_string(), "include");
    }
    for m in measurements {
        let text = crate::observation::write_observation_text(m, options)?;
        entry(format!("urn:uuid:{}", m.id), &text, "match");
    }
    Ok(entries)
}

/// Adds `urn:uuid:<id>` to an Observation's identifiers unless it is there.
fn ensure_identifier(resource: &mut Json, own: &str) {
    let Json::Object(o) = resource else { return };
    let ids = o
        .entry("identifier")
        .or_insert_with(|| Json::Array(Vec::new()));
    if let Json::Array(list) = ids
        && !list
            .iter()
            .any(|i| i["value"] == own && i["system"] == URI_SYSTEM)
    {
        list.push(json!({ "system": URI_SYSTEM, "value": own }));
    }
}

/// Whether a resource's JSON text has a top-level `id` (scanned, not built).
fn has_id(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Top {
        id: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_str::<Top>(text).is_ok_and(|t| t.id.is_some())
}

/// Writes Patients then Observations as NDJSON, one resource per line.
pub fn write_ndjson(
    subjects: &[Subject],
    measurements: &[Measurement],
    options: &WriteOptions<'_>,
) -> Result<String> {
    let mut out = String::new();
    for s in subjects {
        out.push_str(&write_patient(s, options.profile)?.to_string());
        out.push('\n');
    }
    for m in measurements {
        let start = out.len();
        let known = observation_text(&mut out, m, options)?;
        // Every NDJSON resource needs an id (there is no fullUrl to stand in for it). A fresh
        // Observation has one; a kept payload may not (its mark says, else it is scanned).
        if m.provenance.payload.is_some() && !known.unwrap_or_else(|| has_id(&out[start..])) {
            let mut r: Json = serde_json::from_str(&out[start..])
                .map_err(|e| crate::Error::value("Observation", e.to_string()))?;
            if let Json::Object(o) = &mut r {
                o.insert("id".into(), m.id.to_string().into());
            }
            out.truncate(start);
            out.push_str(&r.to_string());
        }
        out.push('\n');
    }
    Ok(out)
}
