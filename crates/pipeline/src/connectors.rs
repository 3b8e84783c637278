//! The built-in connector kinds of [`Registry::builtin`](crate::Registry::builtin).

use std::path::Path;
use std::sync::Arc;

use healthanalyzer_model::jiff::civil::Date;
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_source::Source;
use healthanalyzer_source_cloud::{CloudSource, Settings, Vendor};
use healthanalyzer_source_fhir::{Auth, FhirClient, FhirSource, Query, ServerConfig, Shape};
use healthanalyzer_source_files::{CsvMapping, FileOptions, FileSource, Format};
use healthanalyzer_source_sim::{SimConfig, SimSource};
use serde::Deserialize;

use crate::Error;
use crate::config::{BuildContext, Config, SourceSpec, identifier, seconds};

/// `kind = "sim"`: simulated patients.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimOptions {
    #[serde(default)]
    patients: Option<usize>,
    #[serde(default)]
    days: Option<u32>,
    #[serde(default)]
    seed: Option<u64>,
    /// The first day, `YYYY-MM-DD` (default 2024-01-01).
    #[serde(default)]
    start: Option<String>,
}

pub(crate) fn sim(spec: &SourceSpec, _: &BuildContext) -> Result<Arc<dyn Source>, Error> {
    let o: SimOptions = spec.options()?;
    let mut config = SimConfig {
        source_id: spec.id.clone(),
        ..SimConfig::default()
    };
    if let Some(p) = o.patients {
        config.patients = p;
    }
    if let Some(d) = o.days {
        config.days = d;
    }
    if let Some(s) = o.seed {
        config.seed = s;
    }
    if let Some(start) = o.start {
        config.start = start.parse::<Date>().map_err(|e| {
            Error::Config(format!(
                "source {}: start {start:?}: {e} (write YYYY-MM-DD)",
                spec.id
            ))
        })?;
    }
    let s =
        SimSource::new(config).map_err(|e| Error::Config(format!("source {}: {e}", spec.id)))?;
    Ok(Arc::new(s))
}

/// `kind = "files"`: one file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOptionsToml {
    path: String,
    #[serde(default)]
    format: Option<String>,
    /// Who the file is about, `system|value`, when its records do not say.
    #[serde(default)]
    subject: Option<String>,
    /// The identifier system of a CSV subject column.
    #[serde(default)]
    subject_system: Option<String>,
    /// The zone of times without an offset.
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    strict: bool,
    /// `strict` (default: the whole FHIR R4 model, as the server checks) or `lenient`.
    #[serde(default)]
    validation: healthanalyzer_fhir::Validation,
}

/// The format names `kind = "files"` and `healthanalyzer import --format` accept.
pub const FORMATS: &[&str] = &[
    "auto",
    "fhir-ndjson",
    "fhir-json",
    "omron-connect",
    "bp-monitor-app",
    "nightscout-json",
    "nightscout-tsv",
    "open-mhealth",
    "apple-health",
    "withings",
];

/// A format by name; `None` for `auto`.
pub fn format(name: &str) -> Result<Option<Format>, Error> {
    Ok(Some(match name {
        "auto" => return Ok(None),
        "fhir-ndjson" => Format::FhirNdjson,
        "fhir-json" => Format::FhirJson,
        "omron-connect" => Format::Csv(CsvMapping::omron_connect()),
        "bp-monitor-app" => Format::Csv(CsvMapping::bp_monitor_app()),
        "nightscout-json" => Format::NightscoutJson,
        "nightscout-tsv" => Format::NightscoutTsv,
        "open-mhealth" => Format::OpenMhealth,
        "apple-health" => Format::AppleHealth,
        "withings" => Format::Withings,
        other => {
            return Err(Error::Config(format!(
                "unknown format {other:?}; known: {}",
                FORMATS.join(", ")
            )));
        }
    }))
}

/// A file source for `path`: the format by name, or detected.
pub fn file_source(
    id: &str,
    path: &std::path::Path,
    format_name: Option<&str>,
    options: FileOptions,
) -> Result<FileSource, Error> {
    match format(format_name.unwrap_or("auto"))? {
        Some(f) => Ok(FileSource::new(id, path, f, options)),
        None => FileSource::detect(id, path, options)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display()))),
    }
}

/// The source id of an imported file when none is given: `file:<file name>` (the name only,
/// so the same file imported from another folder keeps its ids).
pub fn file_source_id(path: &Path) -> String {
    format!(
        "file:{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    )
}

pub(crate) fn files(spec: &SourceSpec, cx: &BuildContext) -> Result<Arc<dyn Source>, Error> {
    let o: FileOptionsToml = spec.options()?;
    let mut options = FileOptions::new(identifier(
        o.subject.as_deref().unwrap_or("unknown"),
        "subject",
        &spec.id,
    )?);
    if let Some(s) = o.subject_system {
        options.subject_system = s;
    }
    if let Some(z) = o.time_zone {
        options.zone = TimeZone::get(&z)
            .map_err(|e| Error::Config(format!("source {}: time_zone {z:?}: {e}", spec.id)))?;
    }
    options.strict = o.strict;
    options.validation = o.validation;
    let path = cx.base.join(&o.path);
    if !path.exists() {
        return Err(Error::Config(format!(
            "source {}: {} does not exist",
            spec.id,
            path.display()
        )));
    }
    let s = file_source(&spec.id, &path, o.format.as_deref(), options)
        .map_err(|e| Error::Config(format!("source {}: {e}", spec.id)))?;
    Ok(Arc::new(s))
}

/// `kind = "fhir"`: a FHIR R4 server.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FhirOptions {
    base_url: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_url: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    /// DPoP (RFC 9449): an EC P-256 private key (PEM, relative to the configuration file);
    /// the token then goes with a proof signed by it on every request.
    #[serde(default)]
    dpop_key: Option<std::path::PathBuf>,
    /// Observation categories (default `["vital-signs"]`; `[]` for every category).
    #[serde(default)]
    categories: Option<Vec<String>>,
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    patient: Option<String>,
    #[serde(default)]
    include_patients: Option<bool>,
    #[serde(default)]
    timeout_seconds: Option<f64>,
    /// `strict` (default) or `lenient`.
    #[serde(default)]
    validation: healthanalyzer_fhir::Validation,
    /// The read shape: `search` (default), `fut`, `pmd` (or `vkp`) or `medmij`.
    #[serde(default)]
    shape: Option<String>,
    /// `fut`: the EpisodeOfCare to search.
    #[serde(default)]
    episode_of_care: Option<String>,
    /// `fut`: the identifier (`system|value`) of the `patient`'s measurements.
    #[serde(default)]
    subject: Option<String>,
    /// `fut`: how far back each period search reaches before the last one's end, in hours.
    #[serde(default)]
    overlap_hours: Option<f64>,
}

pub(crate) fn fhir(spec: &SourceSpec, cx: &BuildContext) -> Result<Arc<dyn Source>, Error> {
    let o: FhirOptions = spec.options()?;
    let mut config = ServerConfig::new(o.base_url);
    // The sync engine retries (one policy, `[sync] max_attempts`), not the client as well.
    config.retry = healthanalyzer_source::RetryPolicy::none();
    let config_auth_none = o.token.is_none() && o.token_url.is_none();
    config.auth = match (o.token, o.token_url, o.client_id, o.client_secret) {
        (Some(t), None, None, None) => Auth::Bearer(t),
        (None, Some(token_url), Some(client_id), Some(client_secret)) => Auth::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope: o.scope,
        },
        (None, None, None, None) => Auth::None,
        _ => {
            return Err(Error::Config(format!(
                "source {}: give either `token`, or all of `token_url`, `client_id` and `client_secret`",
                spec.id
            )));
        }
    };
    if let Some(t) = o.timeout_seconds {
        config.timeout = seconds(t, "timeout_seconds", &spec.id)?;
    }
    if let Some(k) = &o.dpop_key {
        config.dpop = Some(
            healthanalyzer_source_fhir::DpopKey::from_pem_file(&cx.base.join(k))
                .map_err(|e| Error::Config(format!("source {}: dpop_key: {e}", spec.id)))?,
        );
    }
    let client =
        FhirClient::new(config).map_err(|e| Error::Config(format!("source {}: {e}", spec.id)))?;
    let mut query = Query::default();
    if let Some(c) = o.categories {
        query.categories = c;
    }
    query.codes = o.codes;
    query.patient = o.patient;
    if let Some(i) = o.include_patients {
        query.include_patients = i;
    }
    if let Some(shape) = &o.shape {
        query.shape = shape.parse::<Shape>().map_err(|e| match e {
            healthanalyzer_source::Error::Config(m) => {
                Error::Config(format!("source {}: shape: {m}", spec.id))
            }
            other => Error::Config(format!("source {}: shape: {other}", spec.id)),
        })?;
    }
    query.episode_of_care = o.episode_of_care;
    if let Some(text) = &o.subject {
        if query.shape != Shape::Fut {
            return Err(Error::Config(format!(
                "source {}: `subject` is read by shape = \"fut\" only (the others find the identifier in what the server answers)",
                spec.id
            )));
        }
        query.subject = Some(identifier(text, "subject", &spec.id)?);
    }
    if let Some(h) = o.overlap_hours {
        if query.shape != Shape::Fut {
            return Err(Error::Config(format!(
                "source {}: `overlap_hours` is read by shape = \"fut\" only",
                spec.id
            )));
        }
        query.overlap = std::time::Duration::try_from_secs_f64(h * 3600.0).map_err(|_| {
            Error::Config(format!(
                "source {}: overlap_hours must be a number of hours, 0 or more",
                spec.id
            ))
        })?;
    }
    if query.shape == Shape::Medmij && config_auth_none {
        return Err(Error::Config(format!(
            "source {}: shape = \"medmij\" reads the patient of the token: give `token` (a patient-context token) or the client credentials",
            spec.id
        )));
    }
    let source = FhirSource::new(&spec.id, client, query).with_validation(o.validation);
    // Settings that do not fit the shape (a patient under medmij, none under pmd) are named
    // now, not at the first sync.
    source.check_settings().map_err(|e| match e {
        healthanalyzer_source::Error::Config(m) => {
            Error::Config(format!("source {}: {m}", spec.id))
        }
        other => Error::Config(format!("source {}: {other}", spec.id)),
    })?;
    Ok(Arc::new(source))
}

/// The device clouds (`kind = "withings"`, `"fitbit"`, `"ihealth"`, `"nightscout"`,
/// `"dexcom"`): one source per citizen.
pub(crate) fn cloud(spec: &SourceSpec, cx: &BuildContext) -> Result<Vec<Arc<dyn Source>>, Error> {
    cloud_source(spec, cx)?
        .sources()
        .map_err(|e| Error::Config(e.to_string()))
}

/// A device cloud's `[[source]]`, resolved: its citizens' sources, or `connect` for one of
/// them.
///
/// # Errors
/// [`Error::Config`] when `spec` is not a device cloud, or its options are wrong.
pub fn cloud_source(spec: &SourceSpec, cx: &BuildContext) -> Result<CloudSource, Error> {
    let vendor = Vendor::from_kind(&spec.kind).ok_or_else(|| {
        Error::Config(format!(
            "source {} is of kind {}, not a device cloud ({})",
            spec.id,
            spec.kind,
            healthanalyzer_source_cloud::KINDS.join(", ")
        ))
    })?;
    let settings: Settings = spec.options()?;
    CloudSource::new(vendor, &spec.id, settings, &cx.base).map_err(|e| Error::Config(e.to_string()))
}

/// The device cloud `[[source]]` named `name` in `config`: the source with that id, or the
/// only one of that kind (`withings`).
///
/// # Errors
/// [`Error::Config`] when there is none, or several of that kind, or it is not a device
/// cloud.
pub fn find_cloud_source(config: &Config, name: &str) -> Result<CloudSource, Error> {
    let by_id = config.sources.iter().find(|s| s.id == name);
    let spec = match by_id {
        Some(s) => s,
        None => {
            let of_kind: Vec<&SourceSpec> =
                config.sources.iter().filter(|s| s.kind == name).collect();
            match of_kind.as_slice() {
                [one] => *one,
                [] => {
                    return Err(Error::Config(format!(
                        "no [[source]] has the id or kind {name:?}; the sources: {}",
                        config
                            .sources
                            .iter()
                            .map(|s| format!("{} ({})", s.id, s.kind))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                several => {
                    return Err(Error::Config(format!(
                        "several sources are of kind {name}: name one by its id ({})",
                        several
                            .iter()
                            .map(|s| s.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
    };
    let cx = BuildContext {
        base: config.base.clone(),
    };
    cloud_source(spec, &cx)
}
