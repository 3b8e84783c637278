//! Output profiles: the implementation guides a written resource conforms to, and what each
//! one adds. See `docs/fhir-profiles.md` for the reasoning behind every element.

use std::fmt;
use std::str::FromStr;

use healthanalyzer_model::{Catalog, Coding, Identifier, KindDef, Measurement, systems};
use serde_json::{Map, Value as Json, json};

use crate::error::Error;

/// The identifier system of an IEEE EUI-64 device system id, as the HL7 Personal Health Device
/// (PHD) implementation guide writes it on a Device.
pub const EUI64_SYSTEM: &str = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680";

const HL7_SD: &str = "http://hl7.org/fhir/StructureDefinition/";
const DK_SD: &str = "http://hl7.dk/fhir/core/StructureDefinition/";
const NL_SD: &str = "http://nictiz.nl/fhir/StructureDefinition/";
const NO_SD: &str = "http://hl7.no/fhir/StructureDefinition/";

/// The profiles written resources conform to.
///
/// The profile applies to what this crate builds: a fresh Observation or Patient gets the
/// profile's `meta.profile` and the elements the profile requires. A resource passed through
/// from its original payload is left as it came in under [`Profile::VitalSigns`]; under a
/// national profile the profile's `meta.profile` entries (and, for dk-core, the PHD
/// identifier) are added to it, and nothing is removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// HL7 international vital-signs profiles of FHIR R4 (`vitalsigns` and the specific one:
    /// `bp`, `heartrate`, `bodyweight` …). Kinds outside the vital signs (glucose, steps) carry
    /// their own category and no profile.
    #[default]
    VitalSigns,
    /// HL7 Denmark DK Core: `dk-core-basic-observation` for vital signs,
    /// `dk-core-observation` for the rest, `dk-core-patient`; and the PHD identifier
    /// `<EUI-64>-<patient id>-<patient id system>-<MDC code>-<time>` for conditional create
    /// when the device's EUI-64 is known.
    DkCore,
    /// Nictiz nl-core (zib 2020): `nl-core-BloodPressure`, `nl-core-HeartRate`,
    /// `nl-core-BodyWeight`, `nl-core-BodyHeight`, `nl-core-BodyTemperature`,
    /// `nl-core-O2Saturation`, on top of the international vital signs; `nl-core-Patient`.
    NlCore,
    /// HL7 Norway no-basis: `no-basis-Patient`. no-basis defines no Observation profile, so
    /// Observations follow the international vital signs.
    NoBasis,
}

impl Profile {
    /// Every profile, for tools that list them.
    pub const ALL: &'static [Profile] = &[
        Profile::VitalSigns,
        Profile::DkCore,
        Profile::NlCore,
        Profile::NoBasis,
    ];

    /// The name used in configuration and on the command line (`vital-signs`, `dk-core`,
    /// `nl-core`, `no-basis`).
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::VitalSigns => "vital-signs",
            Profile::DkCore => "dk-core",
            Profile::NlCore => "nl-core",
            Profile::NoBasis => "no-basis",
        }
    }

    /// The `meta.profile` URLs of an Observation of `kind`.
    pub fn observation_profiles(self, kind: &KindDef) -> Vec<String> {
        let vital = kind.category == "vital-signs";
        let hl7 = || {
            let mut v = Vec::new();
            if vital {
                v.push(format!("{HL7_SD}vitalsigns"));
                if let Some(specific) = by_loinc(kind, HL7_SPECIFIC) {
                    v.push(format!("{HL7_SD}{specific}"));
                }
            }
            v
        };
        match self {
            Profile::VitalSigns | Profile::NoBasis => hl7(),
            Profile::DkCore => {
                let basic = vital && loinc(kind).next().is_some();
                vec![format!(
                    "{DK_SD}{}",
                    if basic {
                        "dk-core-basic-observation"
                    } else {
                        "dk-core-observation"
                    }
                )]
            }
            Profile::NlCore => {
                let mut v = Vec::new();
                if vital && let Some(nl) = by_loinc(kind, NL_CORE) {
                    v.push(format!("{NL_SD}{nl}"));
                }
                v.extend(hl7());
                v
            }
        }
    }

    /// The profiles of a lone component reading of `kind` (a systolic pressure on its own):
    /// the general ones, not the panel's own (HL7's `bp`, nl-core-BloodPressure), whose
    /// code and components it does not have.
    pub fn component_profiles(self, kind: &KindDef) -> Vec<String> {
        let vital = kind.category == "vital-signs";
        match self {
            Profile::VitalSigns | Profile::NoBasis | Profile::NlCore if vital => {
                vec![format!("{HL7_SD}vitalsigns")]
            }
            Profile::VitalSigns | Profile::NoBasis | Profile::NlCore => Vec::new(),
            Profile::DkCore => self.observation_profiles(kind),
        }
    }

    /// Whether a code beyond the first of its system belongs on a fresh Observation: nl-core
    /// writes oxygen saturation with both 2708-6 and the pulse-oximetry code 59408-5, as
    /// Nictiz's own conversions do.
    pub(crate) fn wants_coding(self, c: &Coding) -> bool {
        self == Profile::NlCore && c.system == systems::LOINC && c.code == "59408-5"
    }

    /// The `meta.profile` URL of a Patient, if the profile has one.
    pub fn patient_profile(self) -> Option<String> {
        match self {
            Profile::VitalSigns => None,
            Profile::DkCore => Some(format!("{DK_SD}dk-core-patient")),
            Profile::NlCore => Some(format!("{NL_SD}nl-core-Patient")),
            Profile::NoBasis => Some(format!("{NO_SD}no-basis-Patient")),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Profile::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                Error::value(
                    "profile",
                    format!(
                        "unknown profile {:?}; use one of {}",
                        s.chars().take(40).collect::<String>(),
                        Profile::ALL
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }
}

/// How to write resources.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions<'c> {
    /// The catalog that holds each kind's codes, display and units.
    pub catalog: &'c Catalog,
    /// The profiles to conform to.
    pub profile: Profile,
}

impl<'c> WriteOptions<'c> {
    /// Options for the international vital-signs profiles.
    pub fn new(catalog: &'c Catalog) -> Self {
        WriteOptions {
            catalog,
            profile: Profile::VitalSigns,
        }
    }

    /// The same options with another profile.
    pub fn with_profile(self, profile: Profile) -> Self {
        WriteOptions { profile, ..self }
    }
}

/// HL7 R4 vital-signs profiles by the LOINC code they fix.
const HL7_SPECIFIC: &[(&str, &str)] = &[
    ("85354-9", "bp"),
    ("8867-4", "heartrate"),
    ("29463-7", "bodyweight"),
    ("8302-2", "bodyheight"),
    ("8310-5", "bodytemp"),
    ("9279-1", "resprate"),
    ("2708-6", "oxygensat"),
    ("39156-5", "bmi"),
    ("9843-4", "headcircum"),
];

/// Nictiz nl-core (zib 2020) vital-sign profiles by the LOINC code of their kind.
const NL_CORE: &[(&str, &str)] = &[
    ("85354-9", "nl-core-BloodPressure"),
    ("8867-4", "nl-core-HeartRate"),
    ("29463-7", "nl-core-BodyWeight"),
    ("8302-2", "nl-core-BodyHeight"),
    ("8310-5", "nl-core-BodyTemperature"),
    ("2708-6", "nl-core-O2Saturation"),
];

fn loinc(kind: &KindDef) -> impl Iterator<Item = &str> {
    kind.codings
        .iter()
        .filter(|c| c.system == systems::LOINC)
        .map(|c| &*c.code)
}

fn by_loinc(kind: &KindDef, table: &[(&str, &'static str)]) -> Option<&'static str> {
    loinc(kind).find_map(|code| table.iter().find(|(c, _)| *c == code).map(|(_, p)| *p))
}

/// The PHD conditional-create identifier of a measurement, when it can be made: the device has
/// an EUI-64, the subject an identifier with a system, and the kind an IEEE 11073 (MDC) code.
///
/// `<EUI-64>-<patient id>-<patient id system>-<MDC code>-<time>`, the time being the start of
/// `effective` on the clock it was recorded in, as `YYYYMMDDhhmmss.ff` (the PHD reported time
/// stamp). The value and unit the PHD guide also appends are left out, so a corrected value
/// updates its Observation instead of making a second one.
pub fn phd_identifier(m: &Measurement, kind: &KindDef) -> Option<String> {
    let device = m.device.as_ref()?.identifier.as_ref()?;
    if device.system.as_deref() != Some(EUI64_SYSTEM) {
        return None;
    }
    let Identifier {
        system: Some(subject_system),
        value: subject,
        ..
    } = &m.subject
    else {
        return None;
    };
    if subject_system == crate::observation::REFERENCE_SYSTEM {
        return None;
    }
    let mdc = kind.codings.iter().find(|c| c.system == systems::MDC)?;
    let t = m.effective.start().civil();
    Some(format!(
        "{}-{}-{}-{}-{:04}{:02}{:02}{:02}{:02}{:02}.{:02}",
        device.value.to_ascii_uppercase(),
        subject,
        subject_system,
        mdc.code,
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.subsec_nanosecond() / 10_000_000,
    ))
}

/// Adds what `profile` requires to an Observation written for `m`: the `meta.profile` entries
/// missing from it and, for dk-core, the PHD identifier. Nothing is removed.
pub(crate) fn apply_to_observation(
    o: &mut Map<String, Json>,
    m: &Measurement,
    kind: &KindDef,
    profile: Profile,
) {
    add_profiles(o, profile.observation_profiles(kind));
    if profile == Profile::DkCore
        && let Some(phd) = phd_identifier(m, kind)
    {
        let ids = o
            .entry("identifier")
            .or_insert_with(|| Json::Array(Vec::new()));
        if let Json::Array(list) = ids
            && !list.iter().any(|i| i["value"] == phd.as_str())
        {
            list.push(json!({ "value": phd }));
        }
    }
}

/// Adds the patient profile's `meta.profile` entry, if any.
pub(crate) fn apply_to_patient(o: &mut Map<String, Json>, profile: Profile) {
    add_profiles(o, profile.patient_profile().into_iter().collect());
}

fn add_profiles(o: &mut Map<String, Json>, urls: Vec<String>) {
    if urls.is_empty() {
        return;
    }
    let meta = o.entry("meta").or_insert_with(|| Json::Object(Map::new()));
    let Json::Object(meta) = meta else { return };
    let list = meta
        .entry("profile")
        .or_insert_with(|| Json::Array(Vec::new()));
    let Json::Array(list) = list else { return };
    for url in urls {
        if !list.iter().any(|p| p == url.as_str()) {
            list.push(Json::String(url));
        }
    }
}
