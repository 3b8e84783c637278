//! `healthanalyzer-server`: the FHIR R4 API over a Health Analyzer store.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use std::path::PathBuf;

use healthanalyzer_server::{
    AuthConfig, AuthFiles, DashboardConfig, DpopConfig, FhirServer, GlucoseUnit, ServerConfig,
};

/// Serves the Patients and Observations of a Health Analyzer store as a FHIR R4 REST API
/// under /fhir (CapabilityStatement at /fhir/metadata; health at /healthz).
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "\
Logging: RUST_LOG (default info; debug logs every request with its X-Request-Id).
Exit codes: 0 stopped by Ctrl-C or SIGTERM, 1 the server failed, 2 bad arguments or store."
)]
struct Cli {
    /// The store: sqlite:PATH, postgres://…, or memory:.
    #[arg(
        long,
        env = "HEALTHANALYZER_DB",
        default_value = "sqlite:healthanalyzer.db"
    )]
    db: String,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The public base URL of the API (for links), e.g. `https://fhir.example.org/fhir`.
    /// Default: `http://<Host header>/fhir`.
    #[arg(long)]
    base_url: Option<String>,
    /// The largest request body accepted, in MiB.
    #[arg(long, default_value_t = 8)]
    max_body_mib: usize,
    /// Requests taking longer than this many seconds are abandoned (503).
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Bearer tokens: a file of `NAME TOKEN SCOPE… [patient=ID] [episode_of_care=REF]
    /// [jkt=THUMBPRINT]` lines (SMART scopes such as user/*.rs or patient/Observation.cruds;
    /// `jkt=` binds the token to a DPoP key). Turns authentication on.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Accept JWTs signed with HS256 under the secret in this file. Turns authentication on.
    #[arg(long, value_name = "PATH", conflicts_with = "jwt_rs256_public_key")]
    jwt_hs256_secret_file: Option<PathBuf>,
    /// Accept JWTs signed with RS256 under this RSA public key (PEM). Turns authentication on.
    #[arg(long, value_name = "PATH")]
    jwt_rs256_public_key: Option<PathBuf>,
    /// The `iss` a JWT must carry.
    #[arg(long)]
    jwt_issuer: Option<String>,
    /// The `aud` a JWT must carry.
    #[arg(long)]
    jwt_audience: Option<String>,
    /// DPoP (RFC 9449): a DPoP-bound token (a JWT's `cnf.jkt`, a token file's `jkt=`) is
    /// accepted only as `Authorization: DPoP <token>` with a valid `DPoP` proof. Needs
    /// authentication on; set --base-url to the URL clients use (proofs name it).
    #[arg(long)]
    dpop: bool,
    /// With --dpop: refuse tokens that are not DPoP-bound (HelseID-style deployments).
    #[arg(long, requires = "dpop")]
    dpop_required: bool,
    /// With --dpop: how old a proof may be, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    dpop_window_secs: u64,
    /// With --dpop: the clock difference allowed between clients and this server, in seconds.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    dpop_clock_skew_secs: u64,
    /// Subject identifiers that fail their national rules (test numbers): `mark` them (a
    /// `meta.tag` on the Patient) or `refuse` their Observations (422).
    #[arg(long, default_value = "mark", value_parser = ["mark", "refuse"])]
    identifiers: String,
    /// Glucose on the dashboard in `mmol/L` or `mg/dL` (default: the unit the data came in,
    /// mmol/L when it does not say).
    #[arg(long, value_parser = ["mmol/L", "mg/dL"])]
    glucose_unit: Option<String>,
    /// The dashboard's alert rules (TOML, as `healthanalyzer report --rules`). Without it the
    /// dashboard runs on the demo's thresholds and says so in its title.
    #[arg(long, value_name = "FILE", conflicts_with = "no_dashboard")]
    rules: Option<PathBuf>,
    /// The days the dashboard's statistics and charts cover.
    #[arg(long, default_value_t = 30)]
    dashboard_days: u32,
    /// The patients' IANA time zone on the dashboard (default: the system's).
    #[arg(long)]
    time_zone: Option<String>,
    /// No dashboard: `/` answers 404; the FHIR API only.
    #[arg(long)]
    no_dashboard: bool,
}

impl Cli {
    fn auth_files(&self) -> AuthFiles {
        AuthFiles {
            token_file: self.token_file.clone(),
            hs256_secret_file: self.jwt_hs256_secret_file.clone(),
            rs256_public_key: self.jwt_rs256_public_key.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        }
    }

    /// The DPoP settings of `--dpop…`; `None` without `--dpop`.
    fn dpop(&self, auth_on: bool) -> Result<Option<DpopConfig>, String> {
        if !self.dpop {
            return Ok(None);
        }
        if !auth_on {
            return Err(
                "--dpop needs authentication: give --token-file, --jwt-hs256-secret-file or --jwt-rs256-public-key"
                    .into(),
            );
        }
        if self.dpop_window_secs == 0 {
            return Err("--dpop-window-secs must be at least 1".into());
        }
        if self.base_url.is_none() {
            tracing::warn!(
                "--dpop without --base-url: proofs must name http://<Host header>/fhir/…; behind a proxy or TLS, set --base-url to the URL clients use"
            );
        }
        let mut d = DpopConfig::default();
        d.window = Duration::from_secs(self.dpop_window_secs);
        d.clock_skew = Duration::from_secs(self.dpop_clock_skew_secs);
        d.require_bound_tokens = self.dpop_required;
        Ok(Some(d))
    }

    /// The dashboard, from `--rules`, `--dashboard-days`, `--time-zone`, `--glucose-unit`.
    fn dashboard(&self) -> Result<Option<DashboardConfig>, String> {
        if self.no_dashboard {
            return Ok(None);
        }
        let mut d = match &self.rules {
            Some(p) => DashboardConfig::from_rules_file(p).map_err(|e| e.to_string())?,
            None => {
                tracing::warn!(
                    "the dashboard uses the demo thresholds: pass --rules FILE with the clinic's, or --no-dashboard"
                );
                DashboardConfig::demo()
            }
        };
        d.days = self.dashboard_days.max(1);
        if let Some(z) = &self.time_zone {
            d.time_zone = healthanalyzer_model::jiff::tz::TimeZone::get(z).map_err(|e| {
                format!("time zone {z:?}: {e} (use an IANA name such as Europe/Copenhagen)")
            })?;
        }
        d.glucose_unit = match self.glucose_unit.as_deref() {
            Some("mg/dL") => Some(GlucoseUnit::MgDl),
            Some(_) => Some(GlucoseUnit::MmolL),
            None => None,
        };
        Ok(Some(d))
    }
}

/// mimalloc: the server makes many small allocations per request (JSON values, FHIR elements);
/// in `server-bench` it raised the transaction shape from 2,593 to 3,060 tx/s.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let store = match healthanalyzer_pipeline::open_store(&cli.db).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{}", healthanalyzer_pipeline::error_chain(&e));
            return ExitCode::from(2);
        }
    };
    let auth = match AuthConfig::from_files(&cli.auth_files()) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let dpop = match cli.dpop(auth.is_some()) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let dashboard = match cli.dashboard() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = ServerConfig {
        auth,
        dpop,
        base_url: cli.base_url.clone(),
        max_body_bytes: cli.max_body_mib.saturating_mul(1024 * 1024),
        request_timeout: Duration::from_secs(cli.timeout_secs.max(1)),
        identifiers: if cli.identifiers == "refuse" {
            healthanalyzer_server::IdentifierPolicy::Refuse
        } else {
            healthanalyzer_server::IdentifierPolicy::Mark
        },
        ..ServerConfig::default()
    };
    let server = FhirServer::new(store).config(config).dashboard(dashboard);
    match server.run(cli.listen, store_kind(&cli.db)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ healthanalyzer_server::Error::Bind { .. }) => {
            tracing::error!("{}", healthanalyzer_pipeline::error_chain(&e));
            ExitCode::from(2)
        }
        Err(e) => {
            tracing::error!("{}", healthanalyzer_pipeline::error_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// The store's kind only: a URL may carry a password.
fn store_kind(url: &str) -> &str {
    url.split(':').next().unwrap_or("?")
}
