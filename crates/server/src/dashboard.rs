//! The web dashboard: the patient overview (red first) at `/` and a page per patient at
//! `/patient/{id}`, rendered by `healthanalyzer-report` from the store. Pages link by Patient
//! id, never by a national identifier.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use healthanalyzer_analysis::{RuleSet, subject_key};
use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_report::{Options, Report};

use crate::auth::Access;
use crate::error::ApiError;
use crate::patient::{derived_id, logical_id, resolve};
use crate::state::AppState;

/// What the dashboard shows.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// The alert rules.
    pub rules: Arc<RuleSet>,
    /// The title of the pages.
    pub title: String,
    /// How many days the statistics and charts cover.
    pub days: u32,
    /// The patients' time zone.
    pub time_zone: TimeZone,
    /// How long a built overview is reused (building one reads every measurement).
    pub cache_for: Duration,
    /// The unit glucose is shown in; `None`: the unit the glucose data came in (mmol/L when
    /// it does not say).
    pub glucose_unit: Option<healthanalyzer_report::GlucoseUnit>,
}

impl DashboardConfig {
    /// The dashboard with these alert rules, 30 days, the system's time zone, and a 30-second
    /// cache.
    pub fn new(rules: RuleSet) -> Self {
        Self {
            rules: Arc::new(rules),
            title: "Health Analyzer".into(),
            days: 30,
            time_zone: TimeZone::system(),
            cache_for: Duration::from_secs(30),
            glucose_unit: None,
        }
    }

    /// The dashboard with the rules of a TOML file (the format of `healthanalyzer report
    /// --rules`).
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the file and what is wrong in it.
    pub fn from_rules_file(path: &std::path::Path) -> Result<Self, crate::Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| crate::Error::Config(format!("rules {}: {e}", path.display())))?;
        let rules = RuleSet::from_toml(&text)
            .map_err(|e| crate::Error::Config(format!("rules {}: {e}", path.display())))?;
        Ok(Self::new(rules))
    }

    /// The dashboard with the demo rules ([`RuleSet::demo`]), titled as such: their
    /// thresholds are an illustration, not a clinic's.
    pub fn demo() -> Self {
        Self {
            title: "Health Analyzer (demo thresholds)".into(),
            ..Self::new(RuleSet::demo())
        }
    }
}

/// The cached overview: when it was built, the report, and subject key -> Patient id.
pub(crate) type Cached = Option<(Instant, Arc<(Report, HashMap<String, String>)>)>;

fn forbidden_unless_clinician(access: &Option<Extension<Access>>) -> Result<(), ApiError> {
    match access.as_ref().map(|a| &a.0) {
        None | Some(Access::Open) => Ok(()),
        Some(Access::Token(g))
            if g.compartment().is_none()
                && g.allows("Patient", 'r')
                && g.allows("Observation", 'r') =>
        {
            Ok(())
        }
        Some(Access::Token(_)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the dashboard needs a user or system token that may read Patients and Observations",
        )),
    }
}

async fn overview_report(
    state: &AppState,
    config: &DashboardConfig,
) -> Result<Arc<(Report, HashMap<String, String>)>, ApiError> {
    if let Some((at, r)) = state.dashboard_cache.read().await.as_ref()
        && at.elapsed() < config.cache_for
    {
        return Ok(r.clone());
    }
    let mut cache = state.dashboard_cache.write().await;
    if let Some((at, r)) = cache.as_ref()
        && at.elapsed() < config.cache_for
    {
        return Ok(r.clone());
    }
    let report = build(state, config, None).await?;
    let mut ids = HashMap::new();
    for id in state
        .store
        .measured_subjects()
        .await
        .map_err(|e| ApiError::from_store(&e))?
    {
        ids.insert(subject_key(&id), derived_id(&id));
    }
    for s in state
        .store
        .list_subjects()
        .await
        .map_err(|e| ApiError::from_store(&e))?
    {
        ids.insert(subject_key(&s.id), logical_id(&s));
    }
    let built = Arc::new((report, ids));
    *cache = Some((Instant::now(), built.clone()));
    Ok(built)
}

async fn build(
    state: &AppState,
    config: &DashboardConfig,
    patient: Option<&healthanalyzer_model::Identifier>,
) -> Result<Report, ApiError> {
    let mut options = Options::new(Timestamp::now(), config.time_zone.clone());
    options.title = config.title.clone();
    options.days = config.days;
    options.glucose_unit = config.glucose_unit;
    Report::from_store(
        state.store.as_ref(),
        &state.catalog,
        &config.rules,
        &options,
        patient,
    )
    .await
    .map_err(|e| {
        tracing::error!(
            error = &e as &dyn std::error::Error,
            "dashboard report failed"
        );
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "the report could not be built; see the server log",
        )
    })
}

fn page(html: String) -> Response {
    let mut r = Html(html).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Self-contained pages: nothing is loaded from anywhere, no script runs.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `GET /`: the overview.
pub(crate) async fn overview(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
) -> Result<Response, ApiError> {
    forbidden_unless_clinician(&access)?;
    let Some(config) = state.dashboard.clone() else {
        return Err(ApiError::not_found(
            "the dashboard is switched off on this server",
        ));
    };
    let built = overview_report(&state, &config).await?;
    let (report, ids) = (&built.0, &built.1);
    let html = report
        .to_overview_html(|_, p| {
            let id = ids.get(&p.subject).map_or("unknown", String::as_str);
            format!("patient/{id}")
        })
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                e.to_string(),
            )
        })?;
    Ok(page(html))
}

/// `GET /patient/{id}`: one patient's page.
pub(crate) async fn patient(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    forbidden_unless_clinician(&access)?;
    let Some(config) = state.dashboard.clone() else {
        return Err(ApiError::not_found(
            "the dashboard is switched off on this server",
        ));
    };
    let r = resolve(&state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no Patient {id} on this server")))?;
    let report = build(&state, &config, Some(&r.primary)).await?;
    let html = report
        .to_patient_html(&subject_key(&r.primary))
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                e.to_string(),
            )
        })?
        .ok_or_else(|| ApiError::not_found(format!("Patient {id} has no measurements")))?;
    Ok(page(html))
}
