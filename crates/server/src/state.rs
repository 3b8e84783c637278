//! The server's configuration and shared state.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use healthanalyzer_model::{Catalog, Identifier};
use healthanalyzer_store::Store;
use tokio::sync::Mutex;

/// How the server behaves. [`Default`] is right for a local or hackathon server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The public base URL of the FHIR API (`https://example.org/fhir`), used in `Location`,
    /// `fullUrl` and paging links. `None`: taken from each request's `Host` header as
    /// `http://<host>/fhir`.
    pub base_url: Option<String>,
    /// The largest request body accepted, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// The most entries a transaction or batch Bundle may hold (more: 413).
    pub max_bundle_entries: usize,
    /// A request taking longer than this is abandoned with 503.
    pub request_timeout: Duration,
    /// The page size of a search without `_count`.
    pub default_count: usize,
    /// The largest page size a search may ask for (`_count` above it is lowered to it).
    pub max_count: usize,
    /// Bearer-token authentication; `None`: off (everyone may do everything).
    pub auth: Option<crate::auth::AuthConfig>,
    /// DPoP (RFC 9449) for DPoP-bound tokens, when [`auth`](Self::auth) is on; `None` (the
    /// default): off, a bound token is taken as a bearer token and the `DPoP` scheme is not
    /// accepted. With DPoP on, set [`base_url`](Self::base_url) to the public URL clients use:
    /// proofs name it (`htu`).
    pub dpop: Option<crate::dpop::DpopConfig>,
    /// What to do with subject identifiers that fail their national rules: mark them (a
    /// `meta.tag` on the Patient, the default) or refuse the Observation (422).
    pub identifiers: healthanalyzer_model::IdentifierPolicy,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            max_body_bytes: 8 * 1024 * 1024,
            max_bundle_entries: 1_000,
            request_timeout: Duration::from_secs(30),
            default_count: 50,
            max_count: 1_000,
            auth: None,
            dpop: None,
            identifiers: healthanalyzer_model::IdentifierPolicy::Mark,
        }
    }
}

/// What every handler shares: one reference count to clone (axum clones the state for every
/// layer and extractor of every request).
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl AppState {
    /// The state of a server.
    pub(crate) fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The shared state behind an [`AppState`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) config: Arc<ServerConfig>,
    /// Derived Patient ids (of subjects without a server-assigned id) to their identifiers.
    pub(crate) derived_ids: Arc<RwLock<HashMap<String, Identifier>>>,
    /// When the derived ids were last listed.
    pub(crate) derived_listed: Arc<Mutex<Option<std::time::Instant>>>,
    /// The dashboard's settings; `None`: no dashboard.
    pub(crate) dashboard: Option<crate::dashboard::DashboardConfig>,
    /// The dashboard's last overview.
    pub(crate) dashboard_cache: Arc<tokio::sync::RwLock<crate::dashboard::Cached>>,
    /// The FHIR routes, for the entries of a batch Bundle.
    pub(crate) api: Arc<std::sync::OnceLock<axum::Router>>,
}
