//! The rules of the national profiles and exchanges, checked on FHIR JSON: Denmark's FUT
//! (`ehealth-observation` and the `$submit-measurement` Parameters), Norway's VKP/PMD
//! (`VkpObservation` and the `pmd-Bundle-Observation` batch) and the Netherlands' nl-core
//! vital signs.
//!
//! Each check returns every broken rule it finds as a [`Violation`] with the rule's stable name
//! and the element's location (`Bundle.entry[2].fullUrl`); an empty list means the resource
//! keeps every rule checked here. The checks never panic, whatever JSON they are given, and
//! their messages never quote a value of the input (an identifier such as a CPR, FNR or BSN,
//! or a measured value).
//!
//! What is checked is what the implementation guides' definitions state (each rule names the
//! FSH or StructureDefinition it comes from); it is not a full profile validation (no
//! terminology server, no invariants of the base specification). See `docs/fhir-profiles.md`.
//!
//! ```
//! use healthanalyzer_fhir::rules::check_pmd_bundle;
//! use serde_json::json;
//!
//! let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": []});
//! let violations = check_pmd_bundle(&bundle);
//! assert_eq!(violations[0].rule, "pmd-bundle.type");
//! assert_eq!(violations[0].location, "Bundle.type");
//! ```

use std::collections::HashSet;
use std::fmt;

use healthanalyzer_model::systems;
use serde_json::Value as Json;

/// The canonical URL of FUT's `ehealth-observation` profile.
pub const EHEALTH_OBSERVATION_PROFILE: &str =
    "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-observation";
/// The URL of the extension naming the EpisodeOfCare an Observation belongs to (HL7's
/// `workflow-episodeOfCare`, required once by `ehealth-observation`).
pub const EPISODE_OF_CARE_EXTENSION: &str =
    "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare";
/// The URL of FUT's `ehealth-resolved-timing` extension.
pub const RESOLVED_TIMING_EXTENSION: &str =
    "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-resolved-timing";
/// The code system of the resolved-timing `type` (`Resolved`, `Unresolved`, `Adhoc`, `Extra`).
pub const RESOLVED_TIMING_TYPE_SYSTEM: &str = "http://ehealth.sundhed.dk/cs/resolved-timing-type";
/// The codes of [`RESOLVED_TIMING_TYPE_SYSTEM`]
/// (`CodeSystem-ehealth-resolved-timing-type.json`).
pub const RESOLVED_TIMING_TYPES: &[&str] = &["Resolved", "Unresolved", "Adhoc", "Extra"];
/// The code systems of FUT's observation code value set
/// `http://ehealth.sundhed.dk/vs/observation-codes` (`ValueSet-ehealth-observation-codes.json`):
/// NPU (with the DNK codes), MedCom's measurement codes, SKS and LOINC.
pub const EHEALTH_OBSERVATION_CODE_SYSTEMS: &[&str] = &[
    systems::NPU,
    systems::MEDCOM,
    "urn:oid:1.2.208.176.2.4",
    systems::LOINC,
];

/// The canonical URL of HL7 Norway's general `VkpObservation` profile.
pub const VKP_OBSERVATION_PROFILE: &str =
    "http://hl7.no/fhir/vkpobservation/StructureDefinition/vkp-Observation";
/// The canonical URL of HL7 Norway's `pmd-Bundle-Observation` profile (the batch sent to
/// Pasientens måledata).
pub const PMD_BUNDLE_PROFILE: &str =
    "http://hl7.no/fhir/vkpobservation/StructureDefinition/pmd-Bundle-Observation";
/// The Norwegian help number (felles hjelpenummer, FHN), the third subject identifier system
/// VKP allows beside FNR and DNR.
pub const FHN_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.3";
/// The Norwegian organisation number (ORG), an identifier system of a VKP organisation
/// performer.
pub const ORG_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.101";
/// The Norwegian RESH number, the other identifier system of a VKP organisation performer.
pub const RESH_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.102";
/// The subject identifier systems VKP allows (`VkpSubjectIdentifiersCodeSystem.fsh`): FNR,
/// DNR, FHN.
pub const VKP_SUBJECT_SYSTEMS: &[&str] = &[systems::FNR, systems::DNR, FHN_SYSTEM];

/// HL7 Norway's VKP profiles with their own code: the profile id (after
/// `http://hl7.no/fhir/vkpobservation/StructureDefinition/`), the LOINC code its HL7
/// vital-signs parent fixes (`None` for profiles derived from VkpObservation or Observation),
/// and the SNOMED CT code of its SCT slice with whether the slice is required (`1..*`).
pub const VKP_PROFILES: &[VkpProfile] = &[
    VkpProfile::vital("vkp-Observation-Bloodpressure", "85354-9", "75367002"),
    VkpProfile::vital("vkp-Observation-Bodytemp", "8310-5", "276885007"),
    VkpProfile::vital("vkp-Observation-Bodyweight", "29463-7", "27113001"),
    VkpProfile::vital("vkp-Observation-Heartrate", "8867-4", "364075005"),
    VkpProfile::vital("vkp-Observation-Oxygensat", "2708-6", "431314004"),
    VkpProfile::vital("vkp-Observation-Resprate", "9279-1", "86290005"),
    VkpProfile {
        id: "vkp-Observation-Consciousness",
        loinc: None,
        sct: "1104441000000107",
        sct_required: false,
        practitioner_only: true,
    },
    VkpProfile {
        id: "vkp-Observation-CFSscore",
        loinc: None,
        sct: "763264000",
        sct_required: true,
        practitioner_only: false,
    },
    VkpProfile {
        id: "vkp-Observation-NEWS2score",
        loinc: None,
        sct: "1104051000000101",
        sct_required: true,
        practitioner_only: false,
    },
];

const VKP_SD: &str = "http://hl7.no/fhir/vkpobservation/StructureDefinition/";
const NL_SD: &str = "http://nictiz.nl/fhir/StructureDefinition/";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// One VKP Observation profile with its own code (see [`VKP_PROFILES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VkpProfile {
    /// The profile's id, e.g. `vkp-Observation-Bodyweight`.
    pub id: &'static str,
    /// The LOINC code the HL7 vital-signs parent profile fixes, if it has one.
    pub loinc: Option<&'static str>,
    /// The SNOMED CT code of the profile's SCT slice.
    pub sct: &'static str,
    /// Whether the SCT slice is `1..*` (CFS and NEWS2); it is `0..* MS` elsewhere.
    pub sct_required: bool,
    /// Whether `performer` is `only Reference(Practitioner)` identified by FNR (the vital-sign
    /// profiles and Consciousness), so that an organisation performer does not fit.
    pub practitioner_only: bool,
}

impl VkpProfile {
    const fn vital(id: &'static str, loinc: &'static str, sct: &'static str) -> Self {
        VkpProfile {
            id,
            loinc: Some(loinc),
            sct,
            sct_required: false,
            practitioner_only: true,
        }
    }

    /// The profile's canonical URL.
    pub fn url(&self) -> String {
        format!("{VKP_SD}{}", self.id)
    }

    /// The specific VKP profile of an Observation coded with this LOINC code, if there is one.
    pub fn by_loinc(code: &str) -> Option<&'static VkpProfile> {
        VKP_PROFILES.iter().find(|p| p.loinc == Some(code))
    }
}

/// One broken rule of a national profile or exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's stable name, e.g. "ehealth-observation.basedOn", "pmd-bundle.entry.fullUrl".
    pub rule: &'static str,
    /// Where, as a FHIRPath-like location with indexes: `Bundle.entry[2].fullUrl`.
    pub location: String,
    /// What is wrong and what would be right, in words a user can act on. Never quotes an
    /// identifier value (CPR/FNR/BSN) or a measured value.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.location, self.message, self.rule)
    }
}

/// Collects violations under a location prefix.
struct Out<'a> {
    prefix: String,
    list: &'a mut Vec<Violation>,
}

impl Out<'_> {
    fn push(&mut self, rule: &'static str, path: &str, message: impl Into<String>) {
        self.list.push(Violation {
            rule,
            location: format!("{}{path}", self.prefix),
            message: message.into(),
        });
    }
}

fn arr<'j>(v: &'j Json, key: &str) -> &'j [Json] {
    match v.get(key) {
        Some(Json::Array(a)) => a,
        _ => &[],
    }
}

fn text<'j>(v: &'j Json, key: &str) -> Option<&'j str> {
    v.get(key)?.as_str().filter(|s| !s.trim().is_empty())
}

/// The resource type a literal reference points at (`Patient` for `Patient/1`,
/// `https://x/fhir/Patient/1` or `Patient/1/_history/2`); `None` for `urn:uuid:` and the like.
fn reference_type(reference: &str) -> Option<&str> {
    let parts: Vec<&str> = reference.split('/').collect();
    let n = parts.len();
    let (ty, id) = if n >= 4 && parts[n - 2] == "_history" {
        (parts[n - 4], parts[n - 3])
    } else if n >= 2 {
        (parts[n - 2], parts[n - 1])
    } else {
        return None;
    };
    let is_type = ty.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && ty.chars().all(|c| c.is_ascii_alphabetic());
    (is_type && !id.is_empty()).then_some(ty)
}

fn references_type(reference: &Json, ty: &str) -> bool {
    text(reference, "reference").and_then(reference_type) == Some(ty)
}

fn has_profile(resource: &Json, url: &str) -> bool {
    resource
        .get("meta")
        .map(|m| arr(m, "profile").iter().any(|p| p.as_str() == Some(url)))
        .unwrap_or(false)
}

fn codings(concept: Option<&Json>) -> &[Json] {
    concept.map(|c| arr(c, "coding")).unwrap_or(&[])
}

fn has_coding(concept: Option<&Json>, system: &str, code: &str) -> bool {
    codings(concept)
        .iter()
        .any(|c| c.get("system").and_then(Json::as_str) == Some(system) && c["code"] == code)
}

const EFFECTIVE: &[&str] = &[
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveInstant",
    "effectiveTiming",
];

fn has_effective(resource: &Json) -> bool {
    EFFECTIVE.iter().any(|k| resource.get(*k).is_some())
}

/// Checks the resource is an Observation; reports it under `rule` otherwise.
fn is_observation(resource: &Json, rule: &'static str, out: &mut Out<'_>) -> bool {
    if resource.get("resourceType").and_then(Json::as_str) == Some("Observation") {
        return true;
    }
    out.push(
        rule,
        "",
        "expected an Observation (a JSON object with \"resourceType\": \"Observation\")",
    );
    false
}

// ---------------------------------------------------------------------------------------------
// Denmark: FUT
// ---------------------------------------------------------------------------------------------

/// Checks an Observation against FUT's `ehealth-observation` profile
/// (`dk-fut/input/fsh/ehealth-observation.fsh`, `ehealth-ext-resolved-timing.fsh`).
///
/// Rules (locations under `Observation`):
/// - `ehealth-observation.resourceType`: the resource is an Observation.
/// - `ehealth-observation.meta.profile`: `meta.profile` claims [`EHEALTH_OBSERVATION_PROFILE`].
/// - `ehealth-observation.status`: `status` is present (1..1 in R4; a submission wants `final`).
/// - `ehealth-observation.basedOn`: `basedOn 1..1`, `only Reference(ehealth-servicerequest)`,
///   aggregation `referenced`: exactly one literal reference to a ServiceRequest.
/// - `ehealth-observation.subject`: `subject 1..1 only Reference(ehealth-patient)`, referenced:
///   a literal reference to a Patient.
/// - `ehealth-observation.effective`: `effective[x] 1..1`.
/// - `ehealth-observation.performer`: `performer 1..1`, referenced: exactly one literal
///   reference (to a Practitioner, Organization, Patient or RelatedPerson).
/// - `ehealth-observation.code`: `code from http://ehealth.sundhed.dk/vs/observation-codes`:
///   a coding in one of [`EHEALTH_OBSERVATION_CODE_SYSTEMS`].
/// - `ehealth-observation.value`: `value[x] only Quantity or CodeableConcept` (and the same
///   for every component).
/// - `ehealth-observation.extension.episodeOfCare`: the `workflow-episodeOfCare` extension
///   `1..1`, its `valueReference` a reference to an EpisodeOfCare.
/// - `ehealth-observation.extension.resolvedTiming`: the `ehealth-resolved-timing` extension
///   `1..1`.
/// - `ehealth-resolved-timing.serviceRequestVersionId`: in it, `serviceRequestVersionId 1..1`
///   with a `valueId`.
/// - `ehealth-resolved-timing.type`: in it, `type 1..1` with a `valueCodeableConcept` coded
///   from [`RESOLVED_TIMING_TYPE_SYSTEM`].
pub fn check_fut_observation(resource: &Json) -> Vec<Violation> {
    let mut list = Vec::new();
    fut_observation(
        resource,
        &mut Out {
            prefix: "Observation".into(),
            list: &mut list,
        },
    );
    list
}

fn fut_observation(o: &Json, out: &mut Out<'_>) {
    if !is_observation(o, "ehealth-observation.resourceType", out) {
        return;
    }
    if !has_profile(o, EHEALTH_OBSERVATION_PROFILE) {
        out.push(
            "ehealth-observation.meta.profile",
            ".meta.profile",
            format!("meta.profile must list {EHEALTH_OBSERVATION_PROFILE}"),
        );
    }
    if text(o, "status").is_none() {
        out.push(
            "ehealth-observation.status",
            ".status",
            "status is required (final for a submitted measurement)",
        );
    }
    let based_on = arr(o, "basedOn");
    if based_on.len() != 1 {
        out.push(
            "ehealth-observation.basedOn",
            ".basedOn",
            format!(
                "basedOn must hold exactly one reference to the ServiceRequest the measurement \
                 fulfils (found {})",
                based_on.len()
            ),
        );
    } else if !references_type(&based_on[0], "ServiceRequest") {
        out.push(
            "ehealth-observation.basedOn",
            ".basedOn[0].reference",
            "basedOn must be a literal reference to a ServiceRequest ([base]/ServiceRequest/[id])",
        );
    }
    match o.get("subject") {
        Some(s) if references_type(s, "Patient") => {}
        Some(_) => out.push(
            "ehealth-observation.subject",
            ".subject.reference",
            "subject must be a literal reference to a Patient ([base]/Patient/[id]); a logical \
             identifier is not accepted",
        ),
        None => out.push(
            "ehealth-observation.subject",
            ".subject",
            "subject is required: a literal reference to the Patient",
        ),
    }
    if !has_effective(o) {
        out.push(
            "ehealth-observation.effective",
            ".effective[x]",
            "effective[x] is required: when the measurement was taken",
        );
    }
    let performer = arr(o, "performer");
    if performer.len() != 1 || text(&performer[0], "reference").is_none() {
        out.push(
            "ehealth-observation.performer",
            ".performer",
            format!(
                "performer must hold exactly one literal reference (Practitioner, Organization, \
                 Patient or RelatedPerson; found {} performers)",
                performer.len()
            ),
        );
    }
    let coded = codings(o.get("code")).iter().any(|c| {
        c.get("system")
            .and_then(Json::as_str)
            .is_some_and(|s| EHEALTH_OBSERVATION_CODE_SYSTEMS.contains(&s))
            && text(c, "code").is_some()
    });
    if !coded {
        out.push(
            "ehealth-observation.code",
            ".code",
            format!(
                "code must hold a coding from FUT's observation-codes value set (systems {})",
                EHEALTH_OBSERVATION_CODE_SYSTEMS.join(", ")
            ),
        );
    }
    fut_value(o, "", out);
    for (i, c) in arr(o, "component").iter().enumerate() {
        fut_value(c, &format!(".component[{i}]"), out);
    }
    fut_extensions(o, out);
}

fn fut_value(o: &Json, path: &str, out: &mut Out<'_>) {
    let Some(obj) = o.as_object() else { return };
    for key in obj.keys() {
        if key.starts_with("value")
            && key.len() > 5
            && key != "valueQuantity"
            && key != "valueCodeableConcept"
        {
            out.push(
                "ehealth-observation.value",
                &format!("{path}.value[x]"),
                "value[x] must be a valueQuantity or a valueCodeableConcept",
            );
        }
    }
}

fn fut_extensions(o: &Json, out: &mut Out<'_>) {
    let ext = arr(o, "extension");
    let with = |url: &str| -> Vec<(usize, &Json)> {
        ext.iter()
            .enumerate()
            .filter(|(_, e)| e.get("url").and_then(Json::as_str) == Some(url))
            .collect()
    };
    let episode = with(EPISODE_OF_CARE_EXTENSION);
    match episode.as_slice() {
        [(i, e)] => {
            if !e
                .get("valueReference")
                .is_some_and(|r| references_type(r, "EpisodeOfCare"))
            {
                out.push(
                    "ehealth-observation.extension.episodeOfCare",
                    &format!(".extension[{i}].valueReference"),
                    "the episodeOfCare extension's valueReference must be a literal reference to \
                     an EpisodeOfCare ([base]/EpisodeOfCare/[id])",
                );
            }
        }
        _ => out.push(
            "ehealth-observation.extension.episodeOfCare",
            ".extension",
            format!(
                "the extension {EPISODE_OF_CARE_EXTENSION} must be present exactly once (found {})",
                episode.len()
            ),
        ),
    }
    let timing = with(RESOLVED_TIMING_EXTENSION);
    let [(i, t)] = timing.as_slice() else {
        out.push(
            "ehealth-observation.extension.resolvedTiming",
            ".extension",
            format!(
                "the extension {RESOLVED_TIMING_EXTENSION} must be present exactly once (found {})",
                timing.len()
            ),
        );
        return;
    };
    let inner = arr(t, "extension");
    let sub = |url: &str| -> Vec<&Json> {
        inner
            .iter()
            .filter(|e| e.get("url").and_then(Json::as_str) == Some(url))
            .collect()
    };
    let version = sub("serviceRequestVersionId");
    if !matches!(version.as_slice(), [v] if text(v, "valueId").is_some()) {
        out.push(
            "ehealth-resolved-timing.serviceRequestVersionId",
            &format!(".extension[{i}].extension"),
            "the resolved-timing extension must hold one serviceRequestVersionId with a valueId \
             (the version of the ServiceRequest in basedOn)",
        );
    }
    let ty = sub("type");
    let typed = matches!(ty.as_slice(), [t] if codings(t.get("valueCodeableConcept")).iter().any(|c| {
        c.get("system").and_then(Json::as_str) == Some(RESOLVED_TIMING_TYPE_SYSTEM)
            && c.get("code").and_then(Json::as_str).is_some_and(|code| RESOLVED_TIMING_TYPES.contains(&code))
    }));
    if !typed {
        out.push(
            "ehealth-resolved-timing.type",
            &format!(".extension[{i}].extension"),
            format!(
                "the resolved-timing extension must hold one type with a valueCodeableConcept \
                 coded in {RESOLVED_TIMING_TYPE_SYSTEM} ({})",
                RESOLVED_TIMING_TYPES.join(", ")
            ),
        );
    }
}

/// The resource types a FUT submission may hold (`OperationDefinition--s-submit-measurement`).
pub const FUT_SUBMISSION_TYPES: &[&str] = &[
    "Observation",
    "Media",
    "QuestionnaireResponse",
    "Provenance",
];

/// Checks a `$submit-measurement` request: the `Parameters` (or the transaction `Bundle` of
/// its `measurement` parameter alone) against FUT's operation
/// (`dk-fut/input/resources/OperationDefinition--s-submit-measurement.json`,
/// `input/pagecontent/POST_submit-measurement.md`), and every Observation in it against
/// [`check_fut_observation`] (located under `Parameters.parameter[0].resource.entry[i].resource`).
///
/// Rules:
/// - `fut-submission.parameter`: a Parameters holds exactly one parameter, `measurement`,
///   whose `resource` is a Bundle (a Bundle given alone is taken as that resource).
/// - `fut-submission.type`: the Bundle's `type` is `transaction`.
/// - `fut-submission.entry`: the Bundle holds at least one entry.
/// - `fut-submission.entry.resource`: every entry holds an Observation, Media,
///   QuestionnaireResponse or Provenance.
/// - `fut-submission.entry.fullUrl`: every entry has a `fullUrl`.
/// - `fut-submission.entry.request`: every entry has a `request` with method `POST` and a `url`.
/// - `fut-submission.status`: every Observation is `final`.
/// - `fut-submission.patient`: every Observation, Media and QuestionnaireResponse has the same
///   `subject` reference (reported at the first that differs from the first entry's).
/// - `fut-submission.episodeOfCare`: they all carry the same `workflow-episodeOfCare` reference.
pub fn check_fut_submission(parameters_or_bundle: &Json) -> Vec<Violation> {
    let mut list = Vec::new();
    let root = parameters_or_bundle;
    let (bundle, prefix) = match root.get("resourceType").and_then(Json::as_str) {
        Some("Bundle") => (root, "Bundle".to_string()),
        Some("Parameters") => {
            let params = arr(root, "parameter");
            let measurement = match params {
                [p] if p.get("name").and_then(Json::as_str) == Some("measurement") => {
                    p.get("resource").filter(|r| r["resourceType"] == "Bundle")
                }
                _ => None,
            };
            match measurement {
                Some(b) => (b, "Parameters.parameter[0].resource".to_string()),
                None => {
                    list.push(Violation {
                        rule: "fut-submission.parameter",
                        location: "Parameters.parameter".into(),
                        message: format!(
                            "the Parameters must hold exactly one parameter named measurement \
                             whose resource is a transaction Bundle (found {} parameters)",
                            params.len()
                        ),
                    });
                    return list;
                }
            }
        }
        _ => {
            list.push(Violation {
                rule: "fut-submission.parameter",
                location: "Parameters".into(),
                message: "expected a Parameters resource with a measurement parameter holding a \
                          transaction Bundle"
                    .into(),
            });
            return list;
        }
    };
    let mut out = Out {
        prefix,
        list: &mut list,
    };
    if bundle.get("type").and_then(Json::as_str) != Some("transaction") {
        out.push(
            "fut-submission.type",
            ".type",
            "the measurement Bundle's type must be transaction",
        );
    }
    let entries = arr(bundle, "entry");
    if entries.is_empty() {
        out.push(
            "fut-submission.entry",
            ".entry",
            "the measurement Bundle must hold at least one entry",
        );
    }
    let mut patient: Option<&str> = None;
    let mut episode: Option<&str> = None;
    for (i, entry) in entries.iter().enumerate() {
        let at = format!(".entry[{i}]");
        if text(entry, "fullUrl").is_none() {
            out.push(
                "fut-submission.entry.fullUrl",
                &format!("{at}.fullUrl"),
                "every entry needs a fullUrl (urn:uuid:<uuid> for a new resource)",
            );
        }
        let request = entry.get("request");
        let post = request.and_then(|r| r.get("method")).and_then(Json::as_str) == Some("POST");
        if !post || request.and_then(|r| text(r, "url")).is_none() {
            out.push(
                "fut-submission.entry.request",
                &format!("{at}.request"),
                "every entry needs a request with method POST and the resource type as url",
            );
        }
        let resource = entry.get("resource");
        let ty = resource
            .and_then(|r| r.get("resourceType"))
            .and_then(Json::as_str);
        let Some(ty) = ty.filter(|t| FUT_SUBMISSION_TYPES.contains(t)) else {
            out.push(
                "fut-submission.entry.resource",
                &format!("{at}.resource"),
                format!(
                    "every entry must hold one of {}",
                    FUT_SUBMISSION_TYPES.join(", ")
                ),
            );
            continue;
        };
        let Some(resource) = resource else { continue };
        if ty == "Observation" {
            if resource.get("status").and_then(Json::as_str) != Some("final") {
                out.push(
                    "fut-submission.status",
                    &format!("{at}.resource.status"),
                    "a submitted Observation's status must be final",
                );
            }
            let mut inner = Out {
                prefix: format!("{}{at}.resource", out.prefix),
                list: &mut *out.list,
            };
            fut_observation(resource, &mut inner);
        }
        if ty == "Provenance" {
            continue;
        }
        if let Some(s) = resource.get("subject").and_then(|s| text(s, "reference")) {
            match patient {
                None => patient = Some(s),
                Some(p) if p != s => out.push(
                    "fut-submission.patient",
                    &format!("{at}.resource.subject"),
                    "every entry of a submission must have the same Patient as subject as the \
                     first entry",
                ),
                Some(_) => {}
            }
        }
        let eoc = arr(resource, "extension")
            .iter()
            .filter(|e| e.get("url").and_then(Json::as_str) == Some(EPISODE_OF_CARE_EXTENSION))
            .find_map(|e| e.get("valueReference").and_then(|r| text(r, "reference")));
        if let Some(e) = eoc {
            match episode {
                None => episode = Some(e),
                Some(p) if p != e => out.push(
                    "fut-submission.episodeOfCare",
                    &format!("{at}.resource.extension"),
                    "every entry of a submission must belong to the same EpisodeOfCare as the \
                     first entry",
                ),
                Some(_) => {}
            }
        }
    }
    list
}

// ---------------------------------------------------------------------------------------------
// Norway: VKP / PMD
// ---------------------------------------------------------------------------------------------

/// Checks an Observation against HL7 Norway's VKP profiles
/// (`no-vkp/input/fsh/profiles/VkpObservation*.fsh`). The specific profile is the one the
/// resource claims in `meta.profile` (see [`VKP_PROFILES`]); without one, the general
/// `VkpObservation` rules apply.
///
/// Rules (locations under `Observation`):
/// - `vkp-observation.resourceType`: the resource is an Observation.
/// - `vkp-observation.subject`: `subject 1..` with a logical `identifier` holding a `value`
///   ("VKP always references a Patient Resource using a norwegian national id number … in a
///   logical identifier in the subject.identifier element").
/// - `vkp-observation.subject.identifier.system`: `subject.identifier.system from
///   VkpSubjectIdentifiersValueSet (required)`: FNR, DNR or FHN.
/// - `vkp-observation.subject.display`: `subject.display` (MS; "the Name of the patient should
///   be given in the subject.display element") is present.
/// - `vkp-observation.performer`: every performer is identified by an `identifier`: the
///   `author` slice with system FNR (`VkpPerformerIdentifiersValueSet`) or the `organization`
///   slice with system ORG or RESH (`VkpPerformerOrganizationIdentifiersValueSet`). Under a
///   profile with `performer only Reference(Practitioner)` (the vital-sign ones and
///   Consciousness), only FNR.
/// - `vkp-observation.code.loinc`: under a vital-sign profile, the LOINC code its HL7 parent
///   fixes (`85354-9` for `vkp-Observation-Bloodpressure`, …).
/// - `vkp-observation.code.sct`: under CFS and NEWS2, the SNOMED CT code of their `SCT 1..*`
///   slice.
/// - `vkp-observation.category`: under a vital-sign profile, the `vital-signs` category its HL7
///   parent requires.
/// - `vkp-observation.effective`: under a vital-sign profile, `effective[x]` (required by HL7
///   `vitalsigns`).
pub fn check_vkp_observation(resource: &Json) -> Vec<Violation> {
    let mut list = Vec::new();
    vkp_observation(
        resource,
        &mut Out {
            prefix: "Observation".into(),
            list: &mut list,
        },
    );
    list
}

fn vkp_observation(o: &Json, out: &mut Out<'_>) {
    if !is_observation(o, "vkp-observation.resourceType", out) {
        return;
    }
    let profile = VKP_PROFILES.iter().find(|p| has_profile(o, &p.url()));
    match o.get("subject") {
        None => out.push(
            "vkp-observation.subject",
            ".subject",
            "subject is required: a logical identifier (FNR, DNR or FHN) of the patient",
        ),
        Some(s) => {
            match s.get("identifier") {
                Some(id) if text(id, "value").is_some() => {
                    let system = id.get("system").and_then(Json::as_str);
                    if !system.is_some_and(|s| VKP_SUBJECT_SYSTEMS.contains(&s)) {
                        out.push(
                            "vkp-observation.subject.identifier.system",
                            ".subject.identifier.system",
                            format!(
                                "subject.identifier.system must be FNR, DNR or FHN ({})",
                                VKP_SUBJECT_SYSTEMS.join(", ")
                            ),
                        );
                    }
                }
                _ => out.push(
                    "vkp-observation.subject",
                    ".subject.identifier",
                    "subject must carry a logical identifier with a system and value (FNR, DNR \
                     or FHN of the patient)",
                ),
            }
            if text(s, "display").is_none() {
                out.push(
                    "vkp-observation.subject.display",
                    ".subject.display",
                    "subject.display is expected beside the identifier (a name or a neutral \
                     text; never the national number)",
                );
            }
        }
    }
    let practitioner_only = profile.is_some_and(|p| p.practitioner_only);
    for (i, p) in arr(o, "performer").iter().enumerate() {
        let system = p
            .get("identifier")
            .filter(|id| text(id, "value").is_some())
            .and_then(|id| id.get("system"))
            .and_then(Json::as_str);
        let ok = match system {
            Some(s) if s == systems::FNR => true,
            Some(s) if s == ORG_SYSTEM || s == RESH_SYSTEM => !practitioner_only,
            _ => false,
        };
        if !ok {
            let message = if practitioner_only {
                "this VKP profile allows only a Practitioner performer with an FNR identifier \
                 (an organisation performer belongs to the general vkp-Observation)"
                    .to_string()
            } else {
                format!(
                    "a performer must carry an identifier: an author with system FNR ({}) or an \
                     organisation with system ORG ({ORG_SYSTEM}) or RESH ({RESH_SYSTEM})",
                    systems::FNR
                )
            };
            out.push(
                "vkp-observation.performer",
                &format!(".performer[{i}].identifier"),
                message,
            );
        }
    }
    let Some(profile) = profile else { return };
    if let Some(loinc) = profile.loinc {
        if !has_coding(o.get("code"), systems::LOINC, loinc) {
            out.push(
                "vkp-observation.code.loinc",
                ".code.coding",
                format!("{} requires the LOINC coding {loinc} in code", profile.id),
            );
        }
        let vital = arr(o, "category")
            .iter()
            .any(|c| has_coding(Some(c), OBSERVATION_CATEGORY, "vital-signs"));
        if !vital {
            out.push(
                "vkp-observation.category",
                ".category",
                format!("{} requires the category vital-signs", profile.id),
            );
        }
        if !has_effective(o) {
            out.push(
                "vkp-observation.effective",
                ".effective[x]",
                format!("{} requires effective[x]", profile.id),
            );
        }
    }
    if profile.sct_required && !has_coding(o.get("code"), systems::SNOMED, profile.sct) {
        out.push(
            "vkp-observation.code.sct",
            ".code.coding",
            format!(
                "{} requires the SNOMED CT coding {} in code",
                profile.id, profile.sct
            ),
        );
    }
}

/// Checks a batch sent to Pasientens måledata against `pmd-Bundle-Observation`
/// (`no-vkp/input/fsh/profiles/VkpBundleObservation.fsh`, `valuesets/PmdBundleRequests.fsh`,
/// `input/pages/batch-bundle.md`), and every Observation in it against
/// [`check_vkp_observation`] (located under `Bundle.entry[i].resource`).
///
/// Rules:
/// - `pmd-bundle.resourceType`: the resource is a Bundle.
/// - `pmd-bundle.type`: `type = #batch`.
/// - `pmd-bundle.entry.resource`: `entry.resource only Observation`.
/// - `pmd-bundle.entry.fullUrl`: `entry.fullUrl 1..1`, unique within the Bundle ("Uniqe id is
///   mandatory for reference in response").
/// - `pmd-bundle.entry.request`: `entry.request 1..1`, `method from PmdBundleRequests`: POST or
///   PUT.
pub fn check_pmd_bundle(bundle: &Json) -> Vec<Violation> {
    let mut list = Vec::new();
    let mut out = Out {
        prefix: "Bundle".into(),
        list: &mut list,
    };
    if bundle.get("resourceType").and_then(Json::as_str) != Some("Bundle") {
        out.push(
            "pmd-bundle.resourceType",
            "",
            "expected a Bundle (a JSON object with \"resourceType\": \"Bundle\")",
        );
        return list;
    }
    if bundle.get("type").and_then(Json::as_str) != Some("batch") {
        out.push(
            "pmd-bundle.type",
            ".type",
            "a pmd-Bundle-Observation's type must be batch",
        );
    }
    let mut seen = HashSet::new();
    for (i, entry) in arr(bundle, "entry").iter().enumerate() {
        let at = format!(".entry[{i}]");
        match text(entry, "fullUrl") {
            None => out.push(
                "pmd-bundle.entry.fullUrl",
                &format!("{at}.fullUrl"),
                "every entry needs a fullUrl (unique within the Bundle; the response echoes it)",
            ),
            Some(url) if !seen.insert(url) => out.push(
                "pmd-bundle.entry.fullUrl",
                &format!("{at}.fullUrl"),
                "this fullUrl is used by an earlier entry; every entry needs its own",
            ),
            Some(_) => {}
        }
        let method = entry
            .get("request")
            .and_then(|r| r.get("method"))
            .and_then(Json::as_str);
        if !matches!(method, Some("POST" | "PUT")) {
            out.push(
                "pmd-bundle.entry.request",
                &format!("{at}.request.method"),
                "every entry needs a request with method POST or PUT",
            );
        }
        match entry.get("resource") {
            Some(r) if r.get("resourceType").and_then(Json::as_str) == Some("Observation") => {
                let mut inner = Out {
                    prefix: format!("Bundle{at}.resource"),
                    list: &mut *out.list,
                };
                vkp_observation(r, &mut inner);
            }
            _ => out.push(
                "pmd-bundle.entry.resource",
                &format!("{at}.resource"),
                "a pmd-Bundle-Observation holds only Observations",
            ),
        }
    }
    list
}

// ---------------------------------------------------------------------------------------------
// Netherlands: nl-core
// ---------------------------------------------------------------------------------------------

/// A Nictiz nl-core (zib 2020) vital-sign profile and what its zib fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlCoreProfile {
    /// The profile id, e.g. `nl-core-BodyWeight`.
    pub id: &'static str,
    /// The codings the zib's `code` pattern holds (system, code).
    pub code: &'static [(&'static str, &'static str)],
    /// The UCUM code the zib's `valueQuantity` pattern fixes, if any.
    pub unit: Option<&'static str>,
    /// Required components: their LOINC code and the UCUM code of their value.
    pub components: &'static [(&'static str, &'static str)],
}

impl NlCoreProfile {
    /// The profile's canonical URL.
    pub fn url(&self) -> String {
        format!("{NL_SD}{}", self.id)
    }
}

/// The nl-core vital-sign profiles (`nl-zib2020/resources/zib/zib-*.xml`, the patterns of
/// their differentials; every one derives from `pattern-VitalSigns`).
pub const NL_CORE_PROFILES: &[NlCoreProfile] = &[
    NlCoreProfile {
        id: "nl-core-BloodPressure",
        code: &[(systems::LOINC, "85354-9")],
        unit: None,
        components: &[("8480-6", "mm[Hg]"), ("8462-4", "mm[Hg]")],
    },
    NlCoreProfile {
        id: "nl-core-BodyWeight",
        code: &[(systems::LOINC, "29463-7")],
        unit: None,
        components: &[],
    },
    NlCoreProfile {
        id: "nl-core-BodyHeight",
        code: &[(systems::LOINC, "8302-2")],
        unit: None,
        components: &[],
    },
    NlCoreProfile {
        id: "nl-core-BodyTemperature",
        code: &[(systems::LOINC, "8310-5")],
        unit: Some("Cel"),
        components: &[],
    },
    NlCoreProfile {
        id: "nl-core-HeartRate",
        code: &[(systems::LOINC, "8867-4")],
        unit: Some("/min"),
        components: &[],
    },
    NlCoreProfile {
        id: "nl-core-O2Saturation",
        code: &[(systems::LOINC, "2708-6"), (systems::LOINC, "59408-5")],
        unit: Some("%"),
        components: &[],
    },
    NlCoreProfile {
        id: "nl-core-PulseRate",
        code: &[(systems::SNOMED, "366199006")],
        unit: None,
        components: &[],
    },
    NlCoreProfile {
        id: "nl-core-PulseRate.PulseRateValue",
        code: &[(systems::LOINC, "8893-0")],
        unit: Some("/min"),
        components: &[],
    },
    NlCoreProfile {
        id: "nl-core-PulseRate.PulseRegularity",
        code: &[(systems::LOINC, "44969-4")],
        unit: None,
        components: &[],
    },
    NlCoreProfile {
        id: "nl-core-HeartRate.HeartbeatRegularity",
        code: &[(systems::SNOMED, "301112006")],
        unit: None,
        components: &[],
    },
];

/// Checks an Observation against the nl-core vital-sign profile it claims in `meta.profile`
/// (see [`NL_CORE_PROFILES`]; `nl-zib2020/resources/nl-core/nl-core-*.xml` and the zib and
/// `pattern-VitalSigns` they derive from).
///
/// Rules (locations under `Observation`):
/// - `nl-core.resourceType`: the resource is an Observation.
/// - `nl-core.meta.profile`: `meta.profile` claims one of the nl-core vital-sign profiles.
/// - `nl-core.category`: the `VSCat` slice of `pattern-VitalSigns` (`1..1`): the category
///   `vital-signs` of `observation-category`.
/// - `nl-core.code`: `code` holds every coding of the zib's pattern.
/// - `nl-core.subject`: `subject 1..1` (`pattern-VitalSigns`).
/// - `nl-core.effective`: `effective[x] 1..1` (`pattern-VitalSigns`).
/// - `nl-core.value.unit`: where the zib fixes the quantity (`Cel`, `/min`, `%`), the
///   `valueQuantity` has UCUM system and that code.
/// - `nl-core.component`: nl-core-BloodPressure's `SystolicBP` and `DiastolicBP` components
///   (`1..1`) with their LOINC code and a UCUM `mm[Hg]` quantity.
pub fn check_nl_core_observation(resource: &Json) -> Vec<Violation> {
    let mut list = Vec::new();
    let mut out = Out {
        prefix: "Observation".into(),
        list: &mut list,
    };
    if !is_observation(resource, "nl-core.resourceType", &mut out) {
        return list;
    }
    let o = resource;
    let Some(profile) = NL_CORE_PROFILES.iter().find(|p| has_profile(o, &p.url())) else {
        out.push(
            "nl-core.meta.profile",
            ".meta.profile",
            "meta.profile must claim an nl-core vital-sign profile (nl-core-BloodPressure, \
             nl-core-BodyWeight, …)",
        );
        return list;
    };
    let vital = arr(o, "category")
        .iter()
        .any(|c| has_coding(Some(c), OBSERVATION_CATEGORY, "vital-signs"));
    if !vital {
        out.push(
            "nl-core.category",
            ".category",
            format!(
                "{} requires the category vital-signs ({OBSERVATION_CATEGORY})",
                profile.id
            ),
        );
    }
    let missing: Vec<&str> = profile
        .code
        .iter()
        .filter(|(s, c)| !has_coding(o.get("code"), s, c))
        .map(|(_, c)| *c)
        .collect();
    if !missing.is_empty() {
        out.push(
            "nl-core.code",
            ".code",
            format!(
                "{} requires the coding(s) {} in code",
                profile.id,
                missing.join(", ")
            ),
        );
    }
    if o.get("subject").is_none() {
        out.push(
            "nl-core.subject",
            ".subject",
            "subject is required (a reference to the nl-core-Patient)",
        );
    }
    if !has_effective(o) {
        out.push(
            "nl-core.effective",
            ".effective[x]",
            "effective[x] is required: when the measurement was taken",
        );
    }
    if let Some(unit) = profile.unit
        && let Some(q) = o.get("valueQuantity")
        && !(q.get("system").and_then(Json::as_str) == Some(systems::UCUM) && q["code"] == unit)
    {
        out.push(
            "nl-core.value.unit",
            ".valueQuantity",
            format!(
                "{} requires the value in UCUM {unit} (system {})",
                profile.id,
                systems::UCUM
            ),
        );
    }
    for (loinc, unit) in profile.components {
        let found = arr(o, "component")
            .iter()
            .enumerate()
            .find(|(_, c)| has_coding(c.get("code"), systems::LOINC, loinc));
        match found {
            None => out.push(
                "nl-core.component",
                ".component",
                format!("{} requires a component coded LOINC {loinc}", profile.id),
            ),
            Some((i, c)) => {
                let q = c.get("valueQuantity");
                let ok = q.is_some_and(|q| {
                    q.get("system").and_then(Json::as_str) == Some(systems::UCUM)
                        && q["code"] == *unit
                });
                // A component without any value (dataAbsentReason) is left alone.
                if !ok && c.get("dataAbsentReason").is_none() {
                    out.push(
                        "nl-core.component",
                        &format!(".component[{i}].valueQuantity"),
                        format!(
                            "the component coded LOINC {loinc} requires its value in UCUM {unit}"
                        ),
                    );
                }
            }
        }
    }
    list
}
