//! `healthanalyzer.toml`: the store, the sources, the rules and the report settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use healthanalyzer_analysis::RuleSet;
use healthanalyzer_model::Identifier;
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_source::Source;
use serde::Deserialize;

use crate::Error;

/// The default store: an SQLite file in the working directory.
pub const DEFAULT_STORE: &str = "sqlite:healthanalyzer.db";

/// The environment variable that overrides the configured store URL.
pub const STORE_ENV: &str = "HEALTHANALYZER_DB";

/// A whole configuration file.
///
/// ```toml
/// store = "sqlite:healthanalyzer.db"    # or postgres://…; $HEALTHANALYZER_DB overrides it
///
/// [sync]
/// concurrency = 4
/// batch_size = 1000
///
/// [[source]]
/// id = "ward-sim"                        # part of every measurement id: keep it stable
/// kind = "sim"
/// patients = 12
/// days = 30
///
/// [[source]]
/// id = "clinic"
/// kind = "fhir"
/// base_url = "https://fhir.example.org/r4"
/// token = "${CLINIC_TOKEN}"              # from the environment: keep secrets out of files
///
/// [rules]                                # or rules_file = "rules.toml"
/// [[rules.threshold]]
/// kind = "oxygen-saturation"
/// red_low = 88
/// yellow_low = 92
///
/// [report]
/// days = 90
/// time_zone = "Europe/Copenhagen"
///
/// [export]
/// profile = "vital-signs"                # or dk-core, nl-core, no-basis, fut, pmd (vkp)
/// ```
///
/// The `fut` and `pmd` export profiles take settings of their own under `[export.fut]` and
/// `[export.pmd]`: see [`Config::export_options`] and `docs/configuration.md`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store URL (see [`open_store`](crate::open_store)); [`DEFAULT_STORE`] if absent.
    #[serde(default)]
    pub store: Option<String>,
    /// How syncs run.
    #[serde(default)]
    pub sync: SyncSection,
    /// The sources.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceSpec>,
    /// Rules written inline.
    #[serde(default)]
    pub rules: Option<RuleSet>,
    /// Rules in a file of their own (relative to the configuration file).
    #[serde(default)]
    pub rules_file: Option<PathBuf>,
    /// Report settings.
    #[serde(default)]
    pub report: ReportSection,
    /// Export settings, read through [`Config::export_options`].
    #[serde(default)]
    export: ExportSection,
    /// The configuration file's folder: relative paths are resolved against it.
    #[serde(skip)]
    pub base: PathBuf,
}

/// `[sync]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// Measurements per pull and per transaction (default: the store's preference).
    pub batch_size: Option<usize>,
    /// Sources pulled at the same time (default 4).
    pub concurrency: Option<usize>,
    /// Attempts at a pull or a write before a source fails (default 6; 1 means no retries).
    pub max_attempts: Option<u32>,
    /// Subject identifiers that fail their national rules (test numbers): `mark` (default:
    /// stored, and shown as such) or `refuse`.
    #[serde(default)]
    pub identifiers: healthanalyzer_model::IdentifierPolicy,
}

/// `[report]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    /// The title.
    pub title: Option<String>,
    /// The period in days (default 90).
    pub days: Option<u32>,
    /// The patients' IANA time zone (default: the system's).
    pub time_zone: Option<String>,
    /// The unit glucose is shown in, `mmol/L` or `mg/dL` (default: the unit most glucose
    /// readings came in, mmol/L when they do not say).
    pub glucose_unit: Option<String>,
}

/// `[export]`: the profile and the settings of the exchange profiles.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportSection {
    profile: Option<String>,
    fut: Option<FutSection>,
    pmd: Option<PmdSection>,
}

/// `[export.fut]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FutSection {
    patient_base: Option<String>,
    careplan_base: Option<String>,
    organization_base: Option<String>,
    #[serde(default)]
    subject: Vec<FutSubjectSection>,
}

/// `[[export.fut.subject]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FutSubjectSection {
    identifier: Option<String>,
    patient: Option<String>,
    episode_of_care: Option<String>,
    service_request: Option<String>,
    service_request_version: Option<String>,
    performer: Option<String>,
}

/// `[export.pmd]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PmdSection {
    subject_display: Option<String>,
    author: Option<String>,
    author_display: Option<String>,
    organization: Option<String>,
    organization_display: Option<String>,
}

/// The value of a required `[export.…]` key, or an error naming it and what it holds.
fn required<'a>(value: &'a Option<String>, key: &str, what: &str) -> Result<&'a str, Error> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Error::Config(format!(
            "{key} is required by the fut profile: {what}"
        ))),
    }
}

fn base_url(value: &Option<String>, key: &str, what: &str) -> Result<String, Error> {
    let v = required(value, key, what)?;
    if !(v.starts_with("https://") || v.starts_with("http://")) {
        return Err(Error::Config(format!(
            "{key} must be an absolute http(s) URL ({what})"
        )));
    }
    Ok(v.trim_end_matches('/').to_string())
}

/// A logical id of a FHIR resource (`[A-Za-z0-9\-.]{1,64}`).
fn logical_id(value: &Option<String>, key: &str, what: &str) -> Result<String, Error> {
    let v = required(value, key, what)?;
    if v.len() > 64
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(Error::Config(format!(
            "{key} must be a FHIR logical id (letters, digits, '-' and '.', at most 64): {what}"
        )));
    }
    Ok(v.to_string())
}

impl FutSection {
    fn context(&self) -> Result<healthanalyzer_fhir::FutContext, Error> {
        use healthanalyzer_fhir::{FutContext, FutPerformer, FutSubject};
        let patient_base = base_url(
            &self.patient_base,
            "export.fut.patient_base",
            "the FHIR base URL of FUT's patient service, e.g. https://patient.<environment>/fhir",
        )?;
        let careplan_base = base_url(
            &self.careplan_base,
            "export.fut.careplan_base",
            "the FHIR base URL of FUT's care-plan service (EpisodeOfCare, ServiceRequest)",
        )?;
        let organization_base = base_url(
            &self.organization_base,
            "export.fut.organization_base",
            "the FHIR base URL of FUT's organization service (Practitioner, Organization)",
        )?;
        let mut subjects = Vec::with_capacity(self.subject.len());
        for (i, s) in self.subject.iter().enumerate() {
            let at = |key: &str| format!("export.fut.subject[{i}].{key}");
            let text = required(
                &s.identifier,
                &at("identifier"),
                "the subject as `system|value`, e.g. urn:oid:1.2.208.176.1.2|<CPR number>",
            )?;
            let subject: Identifier = text
                .parse()
                .map_err(|e| Error::Config(format!("{}: {e}", at("identifier"))))?;
            let performer = match s.performer.as_deref().map(str::trim) {
                None | Some("patient") => FutPerformer::Patient,
                Some(p) => match p.split_once('/') {
                    Some(("Practitioner", id)) => FutPerformer::Practitioner(logical_id(
                        &Some(id.to_string()),
                        &at("performer"),
                        "the Practitioner's id",
                    )?),
                    Some(("Organization", id)) => FutPerformer::Organization(logical_id(
                        &Some(id.to_string()),
                        &at("performer"),
                        "the Organization's id",
                    )?),
                    _ => {
                        return Err(Error::Config(format!(
                            "{} must be \"patient\" (the default), \"Practitioner/<id>\" or \"Organization/<id>\"",
                            at("performer")
                        )));
                    }
                },
            };
            let subject = FutSubject {
                patient: logical_id(
                    &s.patient,
                    &at("patient"),
                    "the id of the subject's Patient in the patient service",
                )?,
                episode_of_care: logical_id(
                    &s.episode_of_care,
                    &at("episode_of_care"),
                    "the id of the EpisodeOfCare the measurements belong to",
                )?,
                service_request: logical_id(
                    &s.service_request,
                    &at("service_request"),
                    "the id of the ServiceRequest the measurements fulfil",
                )?,
                service_request_version: logical_id(
                    &s.service_request_version,
                    &at("service_request_version"),
                    "the version id of that ServiceRequest",
                )?,
                subject,
                performer,
            };
            if subjects
                .iter()
                .any(|o: &FutSubject| o.subject == subject.subject)
            {
                return Err(Error::Config(format!(
                    "{}: the same subject is listed twice under [[export.fut.subject]]",
                    at("identifier")
                )));
            }
            subjects.push(subject);
        }
        Ok(FutContext {
            patient_base,
            careplan_base,
            organization_base,
            subjects,
        })
    }
}

impl PmdSection {
    fn context(&self) -> Result<healthanalyzer_fhir::PmdContext, Error> {
        let mut c = healthanalyzer_fhir::PmdContext::default();
        if let Some(d) = &self.subject_display {
            c.subject_display = d.clone();
        }
        let party = |id: &Option<String>,
                     display: &Option<String>,
                     key: &str,
                     default: &str|
         -> Result<Option<(Identifier, String)>, Error> {
            let Some(text) = id else { return Ok(None) };
            let id: Identifier = text
                .parse()
                .map_err(|e| Error::Config(format!("export.pmd.{key}: {e}")))?;
            let display = display.clone().unwrap_or_else(|| default.to_string());
            Ok(Some((id, display)))
        };
        c.author = party(
            &self.author,
            &self.author_display,
            "author",
            "Helsepersonell",
        )?;
        c.organization = party(
            &self.organization,
            &self.organization_display,
            "organization",
            "Virksomhet",
        )?;
        c.check()
            .map_err(|e| Error::Config(format!("export.{e}")))?;
        Ok(c)
    }
}

/// A `[[source]]` table: its id, its kind, and the kind's own options.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceSpec {
    /// The source's id.
    pub id: String,
    /// The connector kind: `sim`, `files`, `fhir`, or one an embedder registered.
    pub kind: String,
    /// Every other key, for the connector to read.
    #[serde(flatten)]
    pub options: toml::Table,
}

impl Config {
    /// Reads a configuration file.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file and what is wrong in it.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "{}: {e} (write one from the example in docs/configuration.md)",
                path.display()
            ))
        })?;
        let mut c =
            Config::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        c.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(c)
    }

    /// The configuration a command runs with: `explicit` when given (it must exist), else
    /// `healthanalyzer.toml` in the working directory when there is one, else the defaults.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file and what is wrong in it.
    pub fn find(explicit: Option<&Path>) -> Result<Config, Error> {
        match explicit {
            Some(path) => Config::load(path),
            None if Path::new(CONFIG_FILE).exists() => Config::load(Path::new(CONFIG_FILE)),
            None => Ok(Config::default()),
        }
    }

    /// The sync options `[sync]` sets (the rest as [`SyncOptions::default`](crate::SyncOptions)).
    pub fn sync_options(&self) -> crate::SyncOptions {
        let mut options = crate::SyncOptions {
            batch_size: self.sync.batch_size,
            ..crate::SyncOptions::default()
        };
        if let Some(n) = self.sync.concurrency {
            options.concurrency = n.max(1);
        }
        if let Some(n) = self.sync.max_attempts {
            options.retry.max_attempts = n.max(1);
        }
        options.identifiers = self.sync.identifiers;
        options
    }

    /// The rules and report options for a report or an alert listing: what `request` says,
    /// else `[report]` and the rules of this configuration, else the defaults (90 days, the
    /// system's time zone, no rules).
    ///
    /// A "now" given on purpose is kept; the default one follows the data (an imported history
    /// that ends before today is reported up to its last reading).
    ///
    /// # Errors
    /// [`Error::Config`] for a rules file that cannot be read, an unknown time zone or glucose
    /// unit.
    pub fn report_setup(
        &self,
        request: &ReportRequest,
    ) -> Result<(RuleSet, healthanalyzer_report::Options), Error> {
        let rules = match &request.rules_file {
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| Error::Config(format!("rules {}: {e}", f.display())))?;
                RuleSet::from_toml(&text)
                    .map_err(|e| Error::Config(format!("rules {}: {e}", f.display())))?
            }
            None => self.rules()?,
        };
        let tz = match &request.time_zone {
            Some(z) => time_zone(z)?,
            None => self.time_zone()?,
        };
        let mut options = healthanalyzer_report::Options::new(
            request
                .at
                .unwrap_or_else(healthanalyzer_model::jiff::Timestamp::now),
            tz,
        );
        options.follow_data = request.at.is_none();
        options.days = request.days.or(self.report.days).unwrap_or(90);
        if let Some(u) = request
            .glucose_unit
            .as_deref()
            .or(self.report.glucose_unit.as_deref())
        {
            options.glucose_unit = Some(u.parse().map_err(|e: healthanalyzer_report::Error| {
                Error::Config(format!("report.glucose_unit: {e}"))
            })?);
        }
        if let Some(t) = &self.report.title {
            options.title = t.clone();
        }
        Ok((rules, options))
    }

    /// The export profile and the settings it needs: `explicit` (the command line's
    /// `--profile`) when given, else `[export] profile`, else `vital-signs`; with the `fut`
    /// profile the `[export.fut]` settings (required, every key checked), with `pmd` the
    /// `[export.pmd]` ones (optional: defaults without them).
    ///
    /// # Errors
    /// [`Error::Config`] naming the unknown profile or the missing or wrong setting.
    pub fn export_options(
        &self,
        explicit: Option<&str>,
    ) -> Result<(healthanalyzer_fhir::Profile, healthanalyzer_fhir::National), Error> {
        use healthanalyzer_fhir::{National, Profile};
        let name = explicit
            .or(self.export.profile.as_deref())
            .unwrap_or("vital-signs");
        let profile: Profile = name.parse().map_err(|e: healthanalyzer_fhir::Error| {
            Error::Config(format!("export.profile: {e}"))
        })?;
        let mut national = National::default();
        match profile {
            Profile::Fut => {
                let Some(fut) = &self.export.fut else {
                    return Err(Error::Config(
                        "the fut profile needs an [export.fut] section: patient_base, \
                         careplan_base, organization_base and a [[export.fut.subject]] per \
                         patient (see docs/configuration.md)"
                            .into(),
                    ));
                };
                national.fut = Some(fut.context()?);
            }
            Profile::Pmd => {
                national.pmd = Some(self.export.pmd.clone().unwrap_or_default().context()?);
            }
            _ => {}
        }
        Ok((profile, national))
    }

    /// Parses a configuration; relative paths resolve against the working directory.
    ///
    /// # Errors
    /// [`Error::Config`] with what is wrong (an unknown key is an error, not ignored).
    pub fn parse(text: &str) -> Result<Config, Error> {
        let c: Config = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        let mut ids = std::collections::BTreeSet::new();
        for s in &c.sources {
            if s.id.trim().is_empty() {
                return Err(Error::Config("a [[source]] has an empty id".into()));
            }
            if !ids.insert(s.id.as_str()) {
                return Err(Error::Config(format!(
                    "two sources have the id {:?}; ids must differ (they are part of every measurement id)",
                    s.id
                )));
            }
        }
        if c.rules.is_some() && c.rules_file.is_some() {
            return Err(Error::Config(
                "both [rules] and rules_file are set; keep one".into(),
            ));
        }
        Ok(c)
    }

    /// The store URL: `$HEALTHANALYZER_DB`, else the file's, else [`DEFAULT_STORE`].
    pub fn store_url(&self) -> String {
        std::env::var(STORE_ENV)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| self.store.clone())
            .unwrap_or_else(|| DEFAULT_STORE.to_string())
    }

    /// The rules: inline, from `rules_file`, or none.
    ///
    /// # Errors
    /// [`Error::Config`] when the rules file cannot be read or is not rules.
    pub fn rules(&self) -> Result<RuleSet, Error> {
        if let Some(r) = &self.rules {
            return Ok(r.clone());
        }
        let Some(file) = &self.rules_file else {
            return Ok(RuleSet::default());
        };
        let path = self.base.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Config(format!("rules_file {}: {e}", path.display())))?;
        RuleSet::from_toml(&text)
            .map_err(|e| Error::Config(format!("rules_file {}: {e}", path.display())))
    }

    /// The report's time zone.
    ///
    /// # Errors
    /// [`Error::Config`] for a zone name the time-zone database does not know.
    pub fn time_zone(&self) -> Result<TimeZone, Error> {
        match &self.report.time_zone {
            Some(name) => TimeZone::get(name).map_err(|e| {
                Error::Config(format!(
                    "report.time_zone {name:?}: {e} (use an IANA name such as Europe/Copenhagen)"
                ))
            }),
            None => Ok(TimeZone::system()),
        }
    }
}

/// The file [`Config::find`] reads when no other is named.
pub const CONFIG_FILE: &str = "healthanalyzer.toml";

/// What a caller asks of a report, over the configuration's `[report]` (each `None`: the
/// configuration's, else the default). See [`Config::report_setup`].
#[derive(Debug, Clone, Default)]
pub struct ReportRequest {
    /// Rules (TOML) from this file instead of the configuration's.
    pub rules_file: Option<PathBuf>,
    /// The report's "now" (default: now, following the data).
    pub at: Option<healthanalyzer_model::jiff::Timestamp>,
    /// The period in days.
    pub days: Option<u32>,
    /// The patients' IANA time zone.
    pub time_zone: Option<String>,
    /// `mmol/L` or `mg/dL`.
    pub glucose_unit: Option<String>,
}

/// The time zone an IANA name (`Europe/Copenhagen`) names.
///
/// # Errors
/// [`Error::Config`] for a name the time-zone database does not know.
pub fn time_zone(name: &str) -> Result<TimeZone, Error> {
    TimeZone::get(name).map_err(|e| {
        Error::Config(format!(
            "time zone {name:?}: {e} (use an IANA name such as Europe/Copenhagen)"
        ))
    })
}

/// Replaces `${NAME}` in every string of `value` with the environment variable `NAME`.
fn interpolate(value: &mut toml::Value, source: &str) -> Result<(), Error> {
    match value {
        toml::Value::String(s) => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    return Err(Error::Config(format!(
                        "source {source}: an unclosed ${{ in a value"
                    )));
                };
                let name = &after[..end];
                let v = std::env::var(name).map_err(|_| {
                    Error::Config(format!(
                        "source {source}: a value refers to ${{{name}}}, which is not set in the environment"
                    ))
                })?;
                out.push_str(&v);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Array(a) => {
            for v in a {
                interpolate(v, source)?;
            }
        }
        toml::Value::Table(t) => {
            for (_, v) in t.iter_mut() {
                interpolate(v, source)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl SourceSpec {
    /// The options as the connector's own type, with `${NAME}` taken from the environment.
    /// Unknown keys are errors naming the source.
    ///
    /// # Errors
    /// [`Error::Config`] naming the source and the key.
    pub fn options<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        let mut v = toml::Value::Table(self.options.clone());
        interpolate(&mut v, &self.id)?;
        v.try_into().map_err(|e: toml::de::Error| {
            Error::Config(format!(
                "source {} (kind {}): {}",
                self.id,
                self.kind,
                e.message()
            ))
        })
    }
}

/// What a connector builder gets besides its [`SourceSpec`].
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// The folder relative paths resolve against.
    pub base: PathBuf,
}

/// Builds the sources of one [`SourceSpec`]: one, or one per citizen for a device cloud.
pub type Builder =
    Arc<dyn Fn(&SourceSpec, &BuildContext) -> Result<Vec<Arc<dyn Source>>, Error> + Send + Sync>;

/// Connector kinds by name. [`Registry::builtin`] knows `sim`, `files`, `fhir` and the device
/// clouds (`withings`, `fitbit`, `ihealth`, `nightscout`, `dexcom`); an embedding project
/// [`register`](Registry::register)s its own.
#[derive(Clone, Default)]
pub struct Registry {
    builders: BTreeMap<String, Builder>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.builders.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// A registry with no kinds.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// The built-in kinds: `sim`, `files`, `fhir`, and the device clouds of
    /// `healthanalyzer-source-cloud` (`withings`, `fitbit`, `ihealth`, `nightscout`, `dexcom`),
    /// whose `[[source]]` is one source per citizen.
    pub fn builtin() -> Registry {
        let mut r = Registry::empty();
        r.register("sim", crate::connectors::sim);
        r.register("files", crate::connectors::files);
        r.register("fhir", crate::connectors::fhir);
        for kind in healthanalyzer_source_cloud::KINDS {
            r.register_many(kind, crate::connectors::cloud);
        }
        r
    }

    /// Adds (or replaces) a kind whose `[[source]]` is one source.
    pub fn register(
        &mut self,
        kind: &str,
        builder: impl Fn(&SourceSpec, &BuildContext) -> Result<Arc<dyn Source>, Error>
        + Send
        + Sync
        + 'static,
    ) -> &mut Registry {
        self.register_many(kind, move |spec, cx| builder(spec, cx).map(|s| vec![s]))
    }

    /// Adds (or replaces) a kind whose `[[source]]` may be several sources (a device cloud:
    /// one per citizen, each with its own id and checkpoint, so that one failing does not
    /// stop the others).
    pub fn register_many(
        &mut self,
        kind: &str,
        builder: impl Fn(&SourceSpec, &BuildContext) -> Result<Vec<Arc<dyn Source>>, Error>
        + Send
        + Sync
        + 'static,
    ) -> &mut Registry {
        self.builders.insert(kind.to_string(), Arc::new(builder));
        self
    }

    /// The kinds known.
    pub fn kinds(&self) -> Vec<&str> {
        self.builders.keys().map(String::as_str).collect()
    }

    /// Builds the sources of one `[[source]]`.
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown kind or bad options.
    pub fn build(
        &self,
        spec: &SourceSpec,
        cx: &BuildContext,
    ) -> Result<Vec<Arc<dyn Source>>, Error> {
        let b = self.builders.get(&spec.kind).ok_or_else(|| {
            Error::Config(format!(
                "source {}: unknown kind {:?}; known kinds: {}. A connector of your own: \
                 register its kind in a Registry and run the command line from a binary of \
                 your own with healthanalyzer_cli::main(registry) (docs/connectors.md, \
                 \"Your connector in the command line\")",
                spec.id,
                spec.kind,
                self.kinds().join(", ")
            ))
        })?;
        b(spec, cx)
    }

    /// Builds every source of a configuration, or fails on the first bad one (before anything
    /// is pulled or written).
    ///
    /// # Errors
    /// [`Error::Config`] naming the source.
    pub fn build_all(&self, config: &Config) -> Result<Vec<Arc<dyn Source>>, Error> {
        let cx = BuildContext {
            base: config.base.clone(),
        };
        let mut all = Vec::new();
        for spec in &config.sources {
            all.extend(self.build(spec, &cx)?);
        }
        Ok(all)
    }
}

/// A `system|value` patient reference (or a bare value), for `what` in source `source`.
pub(crate) fn identifier(text: &str, what: &str, source: &str) -> Result<Identifier, Error> {
    text.parse()
        .map_err(|e| Error::Config(format!("source {source}: {what}: {e}")))
}

/// Seconds as a duration, refusing nonsense.
pub(crate) fn seconds(v: f64, what: &str, source: &str) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(v).map_err(|_| {
        Error::Config(format!(
            "source {source}: {what} must be a positive number of seconds"
        ))
    })
}
