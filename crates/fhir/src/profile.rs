//! Output profiles: the implementation guides a written resource conforms to, and what each
//! one adds. See `docs/fhir-profiles.md` for the reasoning behind every element.

use std::fmt;
use std::str::FromStr;

use healthanalyzer_model::{Catalog, Coding, Identifier, KindDef, Measurement, Status, systems};
use serde_json::{Map, Value as Json, json};

use crate::error::{Error, Result};
use crate::rules::{
    EHEALTH_OBSERVATION_PROFILE, EPISODE_OF_CARE_EXTENSION, ORG_SYSTEM, PMD_BUNDLE_PROFILE,
    RESH_SYSTEM, RESOLVED_TIMING_EXTENSION, RESOLVED_TIMING_TYPE_SYSTEM, VKP_OBSERVATION_PROFILE,
    VKP_SUBJECT_SYSTEMS, VkpProfile,
};

/// The identifier system of an IEEE EUI-64 device system id, as the HL7 Personal Health Device
/// (PHD) implementation guide writes it on a Device.
pub const EUI64_SYSTEM: &str = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680";

pub(crate) const HL7_SD: &str = "http://hl7.org/fhir/StructureDefinition/";
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
    /// Denmark's FUT eHealth infrastructure: `ehealth-observation`, with the EpisodeOfCare and
    /// resolved-timing extensions, `basedOn` the ServiceRequest, a performer and the subject as
    /// an absolute reference into the patient service, all from the [`FutContext`] of
    /// [`WriteOptions::national`] (writing without one is an error).
    Fut,
    /// Norway's Pasientens måledata (PMD) with HL7 Norway's VKP profiles:
    /// `vkp-Observation-Bodyweight` and the other specific ones per kind (the general
    /// `vkp-Observation` otherwise), the subject as a logical FNR/DNR/FHN identifier with a
    /// display, SNOMED CT codings, and performers from the [`PmdContext`] of
    /// [`WriteOptions::national`] (defaults without one). Also called `vkp`.
    Pmd,
}

impl Profile {
    /// Every profile that writes from the model alone, for tools that list them. The
    /// exchange profiles, which need settings the model does not hold, are in
    /// [`Profile::EXCHANGES`].
    pub const ALL: &'static [Profile] = &[
        Profile::VitalSigns,
        Profile::DkCore,
        Profile::NlCore,
        Profile::NoBasis,
    ];

    /// The profiles of a national exchange, which need [`National`] settings in
    /// [`WriteOptions::national`]: FUT and PMD.
    pub const EXCHANGES: &'static [Profile] = &[Profile::Fut, Profile::Pmd];

    /// The name used in configuration and on the command line (`vital-signs`, `dk-core`,
    /// `nl-core`, `no-basis`, `fut`, `pmd`; `vkp` also reads as `pmd`).
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::VitalSigns => "vital-signs",
            Profile::DkCore => "dk-core",
            Profile::NlCore => "nl-core",
            Profile::NoBasis => "no-basis",
            Profile::Fut => "fut",
            Profile::Pmd => "pmd",
        }
    }

    /// [`observation_profiles`](Self::observation_profiles) under [`Profile::VitalSigns`]
    /// without building them: the suffixes after `http://hl7.org/fhir/StructureDefinition/`
    /// (none, `vitalsigns`, or `vitalsigns` and the kind's own), for the text writer.
    pub(crate) fn vital_signs_profile_suffixes(kind: &KindDef) -> [Option<&'static str>; 2] {
        if kind.category != "vital-signs" {
            return [None, None];
        }
        [Some("vitalsigns"), by_loinc(kind, HL7_SPECIFIC)]
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
            Profile::Fut => vec![EHEALTH_OBSERVATION_PROFILE.to_string()],
            Profile::Pmd => vec![
                vkp_profile(kind)
                    .map_or_else(|| VKP_OBSERVATION_PROFILE.to_string(), VkpProfile::url),
            ],
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
            Profile::DkCore | Profile::Fut => self.observation_profiles(kind),
            Profile::Pmd => vec![VKP_OBSERVATION_PROFILE.to_string()],
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
            Profile::DkCore | Profile::Fut => Some(format!("{DK_SD}dk-core-patient")),
            Profile::NlCore => Some(format!("{NL_SD}nl-core-Patient")),
            Profile::NoBasis | Profile::Pmd => Some(format!("{NO_SD}no-basis-Patient")),
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
        if s == "vkp" {
            return Ok(Profile::Pmd);
        }
        Profile::ALL
            .iter()
            .chain(Profile::EXCHANGES)
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
                            .chain(Profile::EXCHANGES)
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
    /// The settings of the exchange profiles ([`Profile::Fut`], [`Profile::Pmd`]): base URLs
    /// and per-subject references the model does not hold. `None` for the other profiles.
    pub national: Option<&'c National>,
}

impl<'c> WriteOptions<'c> {
    /// Options for the international vital-signs profiles.
    pub fn new(catalog: &'c Catalog) -> Self {
        WriteOptions {
            catalog,
            profile: Profile::VitalSigns,
            national: None,
        }
    }

    /// The same options with another profile.
    pub fn with_profile(self, profile: Profile) -> Self {
        WriteOptions { profile, ..self }
    }

    /// The same options with the settings of the exchange profiles.
    pub fn with_national(self, national: &'c National) -> Self {
        WriteOptions {
            national: Some(national),
            ..self
        }
    }
}

/// The settings of the national exchange profiles: what a FUT or PMD resource needs that the
/// model does not hold.
///
/// ```
/// use healthanalyzer_fhir::{FutContext, FutPerformer, FutSubject, National, Profile, WriteOptions};
/// use healthanalyzer_model::{Catalog, Identifier};
///
/// let national = National {
///     fut: Some(FutContext {
///         patient_base: "https://patient.example.dk/fhir".into(),
///         careplan_base: "https://careplan.example.dk/fhir".into(),
///         organization_base: "https://organization.example.dk/fhir".into(),
///         subjects: vec![FutSubject {
///             subject: Identifier::cpr("0101709995"),
///             patient: "76312".into(),
///             episode_of_care: "39765".into(),
///             service_request: "37067".into(),
///             service_request_version: "42".into(),
///             performer: FutPerformer::Patient,
///         }],
///     }),
///     pmd: None,
/// };
/// let options = WriteOptions::new(Catalog::builtin())
///     .with_profile(Profile::Fut)
///     .with_national(&national);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct National {
    /// Denmark's FUT: needed to write under [`Profile::Fut`].
    pub fut: Option<FutContext>,
    /// Norway's PMD: optional under [`Profile::Pmd`] (without it, no performer is written and
    /// the subject's display is [`DEFAULT_SUBJECT_DISPLAY`]).
    pub pmd: Option<PmdContext>,
}

/// Where FUT's resources live and which of them each subject's measurements belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FutContext {
    /// The FHIR base URL of FUT's patient service (`https://patient.<env>/fhir`); the
    /// Observation's subject (and a patient performer) is an absolute URL under it.
    pub patient_base: String,
    /// The FHIR base URL of FUT's care-plan service, which holds the EpisodeOfCare and the
    /// ServiceRequest.
    pub careplan_base: String,
    /// The FHIR base URL of FUT's organization service, which holds the Practitioners and
    /// Organizations a performer may name.
    pub organization_base: String,
    /// Per subject: its FUT patient, episode of care and service request.
    pub subjects: Vec<FutSubject>,
}

/// One subject's place in FUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FutSubject {
    /// The subject as the measurements name it (a CPR number, usually).
    pub subject: Identifier,
    /// The logical id of its Patient in the patient service.
    pub patient: String,
    /// The logical id of the EpisodeOfCare (care-plan service) the measurements belong to.
    pub episode_of_care: String,
    /// The logical id of the ServiceRequest (care-plan service) they fulfil.
    pub service_request: String,
    /// The ServiceRequest's version id, for the resolved-timing extension.
    pub service_request_version: String,
    /// Who performed the measurements.
    pub performer: FutPerformer,
}

/// The performer of a FUT Observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FutPerformer {
    /// The patient measured themself (home monitoring): the subject's Patient.
    Patient,
    /// A Practitioner of the organization service, by logical id.
    Practitioner(String),
    /// An Organization of the organization service, by logical id.
    Organization(String),
}

impl FutContext {
    /// The settings of the subject `id`, if configured.
    pub fn subject(&self, id: &Identifier) -> Option<&FutSubject> {
        self.subjects.iter().find(|s| &s.subject == id)
    }

    /// The absolute URL of the subject's Patient.
    pub fn patient_reference(&self, s: &FutSubject) -> String {
        format!(
            "{}/Patient/{}",
            self.patient_base.trim_end_matches('/'),
            s.patient
        )
    }

    /// The absolute URL of the subject's EpisodeOfCare.
    pub fn episode_of_care_reference(&self, s: &FutSubject) -> String {
        format!(
            "{}/EpisodeOfCare/{}",
            self.careplan_base.trim_end_matches('/'),
            s.episode_of_care
        )
    }

    /// The absolute URL of the subject's ServiceRequest.
    pub fn service_request_reference(&self, s: &FutSubject) -> String {
        format!(
            "{}/ServiceRequest/{}",
            self.careplan_base.trim_end_matches('/'),
            s.service_request
        )
    }

    /// The absolute URL of the performer.
    pub fn performer_reference(&self, s: &FutSubject) -> String {
        let org = self.organization_base.trim_end_matches('/');
        match &s.performer {
            FutPerformer::Patient => self.patient_reference(s),
            FutPerformer::Practitioner(id) => format!("{org}/Practitioner/{id}"),
            FutPerformer::Organization(id) => format!("{org}/Organization/{id}"),
        }
    }
}

/// The subject display PMD output uses when none is configured: a neutral word, never the
/// national number.
pub const DEFAULT_SUBJECT_DISPLAY: &str = "Pasient";

/// What PMD (VKP) Observations say beyond the measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmdContext {
    /// `subject.display` of every Observation: a neutral text (the model holds no names to
    /// send, and the national number must not appear here).
    pub subject_display: String,
    /// The author performer: a practitioner by FNR (the `author` slice), with a display.
    pub author: Option<(Identifier, String)>,
    /// The organisation responsible for the data (the `organization` slice, "opprinnelig
    /// dataansvarlig virksomhet"), by ORG or RESH number, with a display. VKP's vital-sign
    /// profiles allow only a Practitioner performer, so it is written on the Observations of
    /// kinds under the general `vkp-Observation` only.
    pub organization: Option<(Identifier, String)>,
}

impl Default for PmdContext {
    fn default() -> Self {
        PmdContext {
            subject_display: DEFAULT_SUBJECT_DISPLAY.into(),
            author: None,
            organization: None,
        }
    }
}

impl PmdContext {
    /// Checks the identifier systems: the author's FNR, the organisation's ORG or RESH.
    ///
    /// # Errors
    /// [`Error::Value`] naming the setting that is wrong.
    pub fn check(&self) -> Result<()> {
        if let Some((id, _)) = &self.author
            && id.system.as_deref() != Some(systems::FNR)
        {
            return Err(Error::value(
                "pmd.author",
                format!("a VKP author is identified by FNR ({})", systems::FNR),
            ));
        }
        if let Some((id, _)) = &self.organization
            && !matches!(id.system.as_deref(), Some(ORG_SYSTEM | RESH_SYSTEM))
        {
            return Err(Error::value(
                "pmd.organization",
                format!(
                    "a VKP organisation is identified by ORG ({ORG_SYSTEM}) or RESH ({RESH_SYSTEM})"
                ),
            ));
        }
        if self.subject_display.trim().is_empty() {
            return Err(Error::value(
                "pmd.subject_display",
                "the subject display must not be empty",
            ));
        }
        Ok(())
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

/// The specific VKP profile of a kind, by its LOINC code.
fn vkp_profile(kind: &KindDef) -> Option<&'static VkpProfile> {
    loinc(kind).find_map(VkpProfile::by_loinc)
}

/// Adds what the profile of `options` requires to an Observation written for `m`: the
/// `meta.profile` entries missing from it; for dk-core the PHD identifier; for FUT and PMD the
/// elements of [`apply_fut`] and [`apply_pmd`]. Nothing else is removed.
pub(crate) fn apply_to_observation(
    o: &mut Map<String, Json>,
    m: &Measurement,
    kind: &KindDef,
    options: &WriteOptions<'_>,
) -> Result<()> {
    let profile = options.profile;
    let lone = m.value.is_lone_component();
    // A lone component under PMD is no panel: the general VKP profile, not the kind's own.
    add_profiles(
        o,
        if lone && profile == Profile::Pmd {
            profile.component_profiles(kind)
        } else {
            profile.observation_profiles(kind)
        },
    );
    match profile {
        Profile::DkCore => {
            if let Some(phd) = phd_identifier(m, kind) {
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
        Profile::Fut => apply_fut(o, m, options)?,
        Profile::Pmd => apply_pmd(o, m, kind, lone, options)?,
        Profile::VitalSigns | Profile::NlCore | Profile::NoBasis => {}
    }
    Ok(())
}

/// The config key a FUT subject goes under (named in errors).
const FUT_SUBJECT_KEY: &str = "[[export.fut.subject]]";

/// FUT: status `final`, `subject` the FUT Patient (replaced: FUT accepts only its own
/// patient's absolute URL), and, when missing, `basedOn`, `performer` and the EpisodeOfCare
/// and resolved-timing (`Adhoc`) extensions.
fn apply_fut(o: &mut Map<String, Json>, m: &Measurement, options: &WriteOptions<'_>) -> Result<()> {
    let Some(fut) = options.national.and_then(|n| n.fut.as_ref()) else {
        return Err(Error::value(
            "Observation.subject",
            format!(
                "the fut profile needs the FUT settings (base URLs and subjects): add an \
                 [export.fut] section with a {FUT_SUBJECT_KEY} for subject {}",
                m.subject.redacted()
            ),
        ));
    };
    let Some(s) = fut.subject(&m.subject) else {
        return Err(Error::value(
            "Observation.subject",
            format!(
                "no FUT patient, episode of care and service request for subject {}: add a \
                 {FUT_SUBJECT_KEY} entry with its identifier to the configuration",
                m.subject.redacted()
            ),
        ));
    };
    if !matches!(
        m.status,
        Status::Final | Status::Amended | Status::Corrected
    ) {
        return Err(Error::value(
            "Observation.status",
            format!(
                "FUT takes final measurements only; this one is {}",
                m.status.as_str()
            ),
        ));
    }
    o.insert("status".into(), "final".into());
    o.insert(
        "subject".into(),
        json!({ "reference": fut.patient_reference(s) }),
    );
    let ext = o
        .entry("extension")
        .or_insert_with(|| Json::Array(Vec::new()));
    if let Json::Array(list) = ext {
        let has = |list: &[Json], url: &str| list.iter().any(|e| e["url"] == url);
        if !has(list, EPISODE_OF_CARE_EXTENSION) {
            list.push(json!({
                "url": EPISODE_OF_CARE_EXTENSION,
                "valueReference": { "reference": fut.episode_of_care_reference(s) },
            }));
        }
        if !has(list, RESOLVED_TIMING_EXTENSION) {
            list.push(json!({
                "url": RESOLVED_TIMING_EXTENSION,
                "extension": [
                    { "url": "serviceRequestVersionId", "valueId": s.service_request_version },
                    { "url": "type", "valueCodeableConcept": { "coding": [
                        { "system": RESOLVED_TIMING_TYPE_SYSTEM, "code": "Adhoc" }] } },
                ],
            }));
        }
    }
    if !o.contains_key("basedOn") {
        o.insert(
            "basedOn".into(),
            json!([{ "reference": fut.service_request_reference(s) }]),
        );
    }
    if !o.contains_key("performer") {
        o.insert(
            "performer".into(),
            json!([{ "reference": fut.performer_reference(s) }]),
        );
    }
    Ok(())
}

/// PMD: `subject` as the logical FNR/DNR/FHN identifier with a display (replacing any literal
/// reference), the VKP profile's SNOMED CT coding when missing, and the configured performers
/// when the Observation has none.
fn apply_pmd(
    o: &mut Map<String, Json>,
    m: &Measurement,
    kind: &KindDef,
    lone: bool,
    options: &WriteOptions<'_>,
) -> Result<()> {
    let default = PmdContext::default();
    let pmd = options
        .national
        .and_then(|n| n.pmd.as_ref())
        .unwrap_or(&default);
    let system = m.subject.system.as_deref();
    let Some(system) = system.filter(|s| VKP_SUBJECT_SYSTEMS.contains(s)) else {
        return Err(Error::value(
            "Observation.subject",
            format!(
                "PMD identifies the patient by FNR, DNR or FHN ({}); subject {} has another \
                 identifier",
                VKP_SUBJECT_SYSTEMS.join(", "),
                m.subject.redacted()
            ),
        ));
    };
    o.insert(
        "subject".into(),
        json!({
            "identifier": { "system": system, "value": m.subject.value() },
            "display": pmd.subject_display,
        }),
    );
    let specific = (!lone).then(|| vkp_profile(kind)).flatten();
    if let Some(p) = specific
        && let Some(Json::Object(code)) = o.get_mut("code")
    {
        let coding = code
            .entry("coding")
            .or_insert_with(|| Json::Array(Vec::new()));
        if let Json::Array(list) = coding
            && !list
                .iter()
                .any(|c| c["system"] == systems::SNOMED && c["code"] == p.sct)
        {
            list.push(json!({ "system": systems::SNOMED, "code": p.sct }));
        }
    }
    if !o.contains_key("performer") {
        let practitioner_only = specific.is_some_and(|p| p.practitioner_only);
        let mut list = Vec::new();
        if let Some((id, display)) = &pmd.author {
            list.push(performer_json(id, display));
        }
        if let Some((id, display)) = &pmd.organization
            && !practitioner_only
        {
            list.push(performer_json(id, display));
        }
        if !list.is_empty() {
            o.insert("performer".into(), Json::Array(list));
        }
    }
    Ok(())
}

fn performer_json(id: &Identifier, display: &str) -> Json {
    json!({
        "identifier": { "system": id.system.as_deref().unwrap_or_default(), "value": id.value() },
        "display": display,
    })
}

/// A `pmd-Bundle-Observation`: a batch of the measurements' Observations under
/// [`Profile::Pmd`] (whatever profile `options` names), each entry with `fullUrl`
/// `urn:uuid:<measurement id>` and `request` `POST Observation`, a conditional create
/// (`ifNoneExist` `identifier=urn:ietf:rfc:3986|urn:uuid:<measurement id>`, the Observation's
/// own identifier) so a batch sent again creates nothing twice. (PMD allows PUT too, but a
/// server that assigns Observation ids refuses a PUT of an id it does not have.) The answer,
/// a batch-response, echoes each fullUrl.
///
/// # Errors
/// The first measurement that cannot be written under PMD (a subject without an FNR, DNR or
/// FHN, an unknown kind).
pub fn pmd_bundle(measurements: &[Measurement], options: &WriteOptions<'_>) -> Result<Json> {
    let options = options.with_profile(Profile::Pmd);
    if let Some(p) = options.national.and_then(|n| n.pmd.as_ref()) {
        p.check()?;
    }
    let mut entries = Vec::with_capacity(measurements.len());
    for m in measurements {
        entries.push(json!({
            "fullUrl": format!("urn:uuid:{}", m.id),
            "resource": crate::observation::write_observation(m, &options)?,
            "request": {
                "method": "POST",
                "url": "Observation",
                "ifNoneExist": own_identifier_condition(m),
            },
        }));
    }
    Ok(json!({
        "resourceType": "Bundle",
        "meta": { "profile": [PMD_BUNDLE_PROFILE] },
        "type": "batch",
        "entry": entries,
    }))
}

/// The `Parameters` of FUT's `$submit-measurement` for measurements of one patient in one
/// episode of care: a `measurement` parameter holding a transaction Bundle of their
/// Observations under [`Profile::Fut`], each entry `fullUrl` `urn:uuid:<measurement id>` and
/// `request` `POST Observation` with `ifNoneExist` `identifier=urn:ietf:rfc:3986|urn:uuid:<measurement
/// id>` (the Observation's own identifier): every entry conditional, so a submission sent
/// again is a replay that creates nothing. FUT means it for one measurement (or one set taken together)
/// at a time, not for bulk upload.
///
/// # Errors
/// No measurements; a measurement that cannot be written under FUT (no [`FutContext`] for its
/// subject, not final); measurements of more than one FUT patient or episode of care.
pub fn fut_submission(measurements: &[Measurement], options: &WriteOptions<'_>) -> Result<Json> {
    let options = options.with_profile(Profile::Fut);
    let Some(first) = measurements.first() else {
        return Err(Error::value(
            "Parameters.parameter",
            "a submission needs at least one measurement",
        ));
    };
    let mut entries = Vec::with_capacity(measurements.len());
    let key = |m: &Measurement| {
        options
            .national
            .and_then(|n| n.fut.as_ref())
            .and_then(|f| f.subject(&m.subject))
            .map(|s| (s.patient.clone(), s.episode_of_care.clone()))
    };
    let expected = key(first);
    for (i, m) in measurements.iter().enumerate() {
        let resource = crate::observation::write_observation(m, &options)?;
        if key(m) != expected {
            return Err(Error::value(
                format!("Parameters.parameter[0].resource.entry[{i}]"),
                "a submission holds the measurements of one FUT patient and one episode of care; \
                 send the others in a submission of their own",
            ));
        }
        entries.push(json!({
            "fullUrl": format!("urn:uuid:{}", m.id),
            "resource": resource,
            "request": {
                "method": "POST",
                "url": "Observation",
                "ifNoneExist": own_identifier_condition(m),
            },
        }));
    }
    Ok(json!({
        "resourceType": "Parameters",
        "parameter": [{
            "name": "measurement",
            "resource": { "resourceType": "Bundle", "type": "transaction", "entry": entries },
        }],
    }))
}

/// `identifier=<URI system>|urn:uuid:<measurement id>`: the conditional create on the stable
/// identifier the writer puts in `Observation.identifier`, so a push sent again creates
/// nothing twice.
fn own_identifier_condition(m: &Measurement) -> String {
    format!(
        "identifier={}|urn:uuid:{}",
        crate::observation::URI_SYSTEM,
        m.id
    )
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
