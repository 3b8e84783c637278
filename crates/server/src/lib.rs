//! Health Analyzer's FHIR R4 REST server, as an [axum] router another service can mount.
//!
//! Every measurement in a Health Analyzer store (SQLite, PostgreSQL, memory, your own) is an
//! Observation under `/fhir`, and every subject a Patient. Observations written through the
//! API are validated against the measurement catalog, normalised like a sync normalises them,
//! and keep the resource as sent, so they read back with every element they had (plus `id`
//! and `meta`).
//!
//! - `GET /fhir/metadata`: the CapabilityStatement.
//! - Patient: read, create (conditional with `If-None-Exist`), update (`PUT`, also creating
//!   with the client's id), delete, search (`identifier`, `name`, `family`, `given`,
//!   `birthdate`, `_id`, `_count`).
//! - Observation: read, create (201 with `Location`, `ETag`, `meta.versionId` and
//!   `lastUpdated`; conditional with `If-None-Exist`), update (`PUT`, `If-Match`, 412 on a
//!   version conflict), delete, search (`patient`, `subject`, `code`, `category`, `date` with
//!   every prefix but `ap` and partial dates, `_count`, `_sort=date|-date`,
//!   `_summary=count`), with `next` links that stay correct while others insert. A
//!   conditional create on `identifier=system|value` is idempotent: the next one with the
//!   same condition finds the first.
//! - `POST /fhir/Patient/_search`, `POST /fhir/Observation/_search` (and `$lastn`, `$stats`)
//!   with `application/x-www-form-urlencoded` bodies; chained `patient.identifier`; national
//!   person numbers only in POST bodies, never in a URL or a link.
//! - Denmark's FUT: `POST /fhir/$submit-measurement` (a transaction Bundle of one Patient's
//!   Observations, Media, QuestionnaireResponses and Provenances, checked against FUT's rules
//!   and stored with a Provenance the server records, all or nothing), `$search-measurements`
//!   and `$search-measurements-bundle-limit` (one Bundle per submission), their
//!   OperationDefinitions, and reads of the kept Provenance, Media and QuestionnaireResponse.
//! - Protocol: `application/fhir+json` (`_format=json`), `Prefer: return=minimal |
//!   representation | OperationOutcome`, an OperationOutcome for every error, a body limit
//!   (413), a request time limit (503), `X-Request-Id` echoed, `/healthz`.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use healthanalyzer_server::{FhirServer, ServerConfig};
//! use healthanalyzer_store::MemoryStore;
//!
//! # async fn run() -> Result<(), healthanalyzer_server::Error> {
//! let server = FhirServer::new(Arc::new(MemoryStore::new())).config(ServerConfig::default());
//! // Mount it in your own axum application …
//! let app: axum::Router = axum::Router::new().merge(server.router());
//! # let _ = app;
//! // … or let it serve until Ctrl-C.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod auth;
mod bundle;
mod capability;
mod dashboard;
mod dpop;
mod error;
mod fut;
mod http;
mod observation;
mod operations;
mod patient;
mod resource;
mod search;
mod state;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use healthanalyzer_model::Catalog;
use healthanalyzer_store::Store;
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::{Access, AuthConfig, AuthFiles, Grant, JwtConfig, Scope};
pub use dashboard::DashboardConfig;
pub use dpop::DpopConfig;
pub use error::Error;
/// What [`ServerConfig::identifiers`] takes (from the model).
pub use healthanalyzer_model::IdentifierPolicy;
/// What [`DashboardConfig::glucose_unit`] takes (from the report crate).
pub use healthanalyzer_report::GlucoseUnit;
pub use http::{FHIR_JSON, RequestId};
pub use observation::API_SOURCE;
pub use state::ServerConfig;

use crate::error::ApiError;
use crate::state::{AppState, Shared};

/// A FHIR server over a store: build it, then take its [`router`](Self::router) or
/// [`serve`](Self::serve) it.
#[derive(Debug, Clone)]
pub struct FhirServer {
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    config: ServerConfig,
    dashboard: Option<DashboardConfig>,
}

impl FhirServer {
    /// A server over `store` with the built-in catalog and the default configuration.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            catalog: Arc::new(Catalog::builtin().clone()),
            config: ServerConfig::default(),
            dashboard: None,
        }
    }

    /// Sets the dashboard (`None`, the default: no dashboard; `/` answers 404). There are no
    /// default thresholds: pass the clinic's rules ([`DashboardConfig::new`]), or the demo's
    /// ([`DashboardConfig::demo`]) to try it out.
    pub fn dashboard(mut self, dashboard: Option<DashboardConfig>) -> Self {
        self.dashboard = dashboard;
        self
    }

    /// Uses another catalog of measurement kinds (codes the API accepts and searches by).
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Arc::new(catalog);
        self
    }

    /// Sets the configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// The router: the FHIR API under `/fhir` and `/healthz`.
    pub fn router(&self) -> Router {
        let state = AppState::new(Shared {
            store: self.store.clone(),
            catalog: self.catalog.clone(),
            config: Arc::new(self.config.clone()),
            derived_ids: Arc::new(RwLock::new(HashMap::new())),
            derived_listed: Arc::new(tokio::sync::Mutex::new(None)),
            api: Arc::new(std::sync::OnceLock::new()),
            dashboard: self.dashboard.clone(),
            dashboard_cache: Arc::new(tokio::sync::RwLock::new(None)),
        });
        let fhir = Router::new()
            .route("/metadata", get(metadata))
            .route("/Patient", get(patient::search).post(patient::create))
            .route("/Patient/_search", post(patient::search_post))
            .route(
                "/Patient/{id}",
                get(patient::read)
                    .put(patient::update)
                    .delete(patient::delete),
            )
            .route(
                "/Observation",
                get(observation::search).post(observation::create),
            )
            .route("/Observation/_search", post(observation::search_post))
            .route(
                "/Observation/$lastn",
                get(operations::lastn).post(operations::lastn_post),
            )
            .route(
                "/Observation/$stats",
                get(operations::stats).post(operations::stats_post),
            )
            .route("/OperationDefinition/{id}", get(fut::read_definition))
            .route("/Provenance/{id}", get(fut::read_document))
            .route("/Media/{id}", get(fut::read_document))
            .route("/QuestionnaireResponse/{id}", get(fut::read_document))
            .route(
                "/Observation/{id}",
                get(observation::read)
                    .put(observation::update)
                    .delete(observation::delete),
            );
        let fhir = fhir.layer(axum::middleware::from_fn(auth::authorize));
        let _ = state.api.set(
            fhir.clone()
                .layer(axum::middleware::from_fn(http::outcome_for_bare_errors))
                .with_state(state.clone()),
        );
        Router::new()
            .nest("/fhir", fhir)
            .route("/fhir/", axum::routing::post(bundle::post))
            .route("/fhir", axum::routing::post(bundle::post))
            // FUT's operations check scopes and context themselves (each type they write).
            .route(
                "/fhir/$submit-measurement",
                axum::routing::post(fut::submit_measurement),
            )
            .route(
                "/fhir/$search-measurements",
                axum::routing::post(fut::search_measurements),
            )
            .route(
                "/fhir/$search-measurements-bundle-limit",
                axum::routing::post(fut::search_measurements_bundle_limit),
            )
            .route("/healthz", get(healthz))
            .route("/", get(dashboard::overview))
            .route("/patient/{id}", get(dashboard::patient))
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                http::time_limit,
            ))
            .layer(axum::middleware::from_fn(http::outcome_for_bare_errors))
            .layer(CatchPanicLayer::custom(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "exception",
                    "the server failed on this request; see its log",
                )
                .into_response()
            }))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::authenticate,
            ))
            .layer(axum::middleware::from_fn(http::request_id))
            .with_state(state)
    }

    /// Serves the router on `listener` until `shutdown` completes, then finishes the requests
    /// in flight (graceful shutdown).
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }

    /// What a deployment runs: listens on `addr`, warns when that is beyond this machine
    /// without authentication, installs the Ctrl-C and SIGTERM handlers
    /// ([`shutdown_signal`]), announces the address (`FHIR API at http://…/fhir`, with
    /// `store_label`, which must not hold a password) and serves until a signal, finishing the
    /// requests in flight.
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be listened on; [`Error::Io`] when serving fails.
    pub async fn run(&self, addr: std::net::SocketAddr, store_label: &str) -> Result<(), Error> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener.local_addr().unwrap_or(addr);
        let auth_on = self.config.auth.is_some();
        if !addr.ip().is_loopback() && !auth_on {
            tracing::warn!(
                "listening on {addr}, beyond this machine, WITHOUT authentication: anyone who can reach it can read and change health data"
            );
        }
        // Before the address is announced: a SIGTERM sent as soon as the server says it is up
        // is a graceful stop, never the default kill.
        let shutdown = shutdown_signal();
        tracing::info!(
            "FHIR API at http://{addr}/fhir (store: {store_label}, authentication {})",
            if auth_on { "on" } else { "off" }
        );
        self.serve(listener, shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn metadata(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = search::params(query.as_deref());
    http::check_format(&headers, patient::format_of(&pairs))?;
    let base = resource::base_url(&state, &headers);
    Ok(http::fhir_response(
        StatusCode::OK,
        &capability::capability_statement(&base),
    ))
}

/// `GET /healthz`: 200 when the store answers, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.checkpoint("healthz").await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// A shutdown future for [`FhirServer::serve`]: completes on Ctrl-C or (on Unix) SIGTERM, the
/// signal a service manager or a container runtime stops a process with. The handlers are
/// installed when this is called, not when the future is first polled, so a stop sent as soon
/// as the server says it is up is a graceful one, never the default kill.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let term = async {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            () = term => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
