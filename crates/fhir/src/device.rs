//! Device <-> device reference.

use std::borrow::Cow;

use healthanalyzer_model::{DeviceRef, Identifier};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::error::{Error, Result, check_size, expect_type};
use crate::profile::EUI64_SYSTEM;
use crate::raw::{RawIdentifier, Text};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDeviceName<'a> {
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDevice<'a> {
    #[serde(borrow)]
    resource_type: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    identifier: Option<Vec<RawIdentifier<'a>>>,
    #[serde(borrow, default)]
    manufacturer: Option<Text<'a>>,
    #[serde(borrow, default)]
    device_name: Option<Vec<RawDeviceName<'a>>>,
    #[serde(borrow, default)]
    model_number: Option<Text<'a>>,
}

/// Reads a Device (FHIR R4 JSON) as the device reference an Observation carries: its
/// identifier (an IEEE EUI-64 when it has one, else the first), `Device/<id>`, its
/// user-friendly name, manufacturer and model.
pub fn read_device(json: &str) -> Result<DeviceRef> {
    check_size(json, "Device")?;
    let raw: RawDevice<'_> =
        serde_json::from_str(json).map_err(|e| Error::structure("Device", e.to_string()))?;
    expect_type(&raw.resource_type, "Device")?;
    let ids = raw.identifier.as_deref().unwrap_or_default();
    for (i, id) in ids.iter().enumerate() {
        if id.value.as_deref().is_none_or(str::is_empty) {
            return Err(Error::required(format!("Device.identifier[{i}].value")));
        }
    }
    let identifier = ids
        .iter()
        .find(|i| i.system.as_deref() == Some(EUI64_SYSTEM))
        .or_else(|| ids.first())
        .and_then(|i| {
            let value = i.value.as_deref()?;
            Some(match i.system.as_deref() {
                Some(s) => Identifier::new(s, value),
                None => Identifier::local(value),
            })
        });
    let names = raw.device_name.as_deref().unwrap_or_default();
    let name_of = |kind: &str| {
        names
            .iter()
            .find(|n| n.kind.as_deref() == Some(kind))
            .and_then(|n| n.name.as_deref())
            .map(str::to_string)
    };
    let display = name_of("user-friendly-name").or_else(|| {
        names
            .iter()
            .find_map(|n| n.name.as_deref().map(str::to_string))
    });
    let model = raw
        .model_number
        .as_deref()
        .map(str::to_string)
        .or_else(|| name_of("model-name"));
    Ok(DeviceRef {
        identifier,
        reference: raw.id.as_deref().map(|id| format!("Device/{id}")),
        display,
        manufacturer: raw.manufacturer.as_deref().map(str::to_string),
        model,
    })
}

/// Writes a device reference as a FHIR R4 Device: identifier, `deviceName` (its display, as
/// the user-friendly name), manufacturer and `modelNumber`; `id` from a `Device/<id>`
/// reference.
pub fn write_device(d: &DeviceRef) -> Json {
    let mut o = Map::new();
    o.insert("resourceType".into(), "Device".into());
    if let Some(id) = d
        .reference
        .as_deref()
        .and_then(|r| r.strip_prefix("Device/"))
        && !id.contains('/')
    {
        o.insert("id".into(), id.into());
    }
    if let Some(i) = &d.identifier {
        let mut id = Map::new();
        if let Some(s) = &i.system {
            id.insert("system".into(), s.as_str().into());
        }
        id.insert("value".into(), i.value.as_str().into());
        o.insert("identifier".into(), Json::Array(vec![Json::Object(id)]));
    }
    if let Some(m) = &d.manufacturer {
        o.insert("manufacturer".into(), m.as_str().into());
    }
    if let Some(n) = &d.display {
        o.insert(
            "deviceName".into(),
            json!([{ "name": n, "type": "user-friendly-name" }]),
        );
    }
    if let Some(m) = &d.model {
        o.insert("modelNumber".into(), m.as_str().into());
    }
    Json::Object(o)
}

/// Fills what a Bundle's Device says into an Observation's reference to it; what the
/// Observation said itself wins.
pub(crate) fn merge(into: &mut DeviceRef, from: &DeviceRef) {
    if into.identifier.is_none() {
        into.identifier.clone_from(&from.identifier);
    }
    if into.display.is_none() {
        into.display.clone_from(&from.display);
    }
    if into.manufacturer.is_none() {
        into.manufacturer.clone_from(&from.manufacturer);
    }
    if into.model.is_none() {
        into.model.clone_from(&from.model);
    }
}
