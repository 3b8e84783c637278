//! Bearer-token authentication and SMART on FHIR v2 scopes.
//!
//! Tokens come from a token file (opaque tokens with their scopes) or are JWTs signed with
//! HS256 (a shared secret) or RS256 (an RSA public key), carrying `scope` (space-separated) or
//! `scp`, `exp`, and for patient-context scopes a `patient` claim. A patient-scoped token sees
//! and writes only its own compartment.
//!
//! Context claims ([`Grant::patient`], [`Grant::episode_of_care`]): the Patient comes from the
//! `patient` claim (SMART), or else from FUT's `context.patient_id` (a Patient reference, often
//! absolute, of which the id after the last `Patient/` is kept). The EpisodeOfCare comes from a
//! plain `episode_of_care` claim, or else from FUT's `context.episode_of_care_id` (as in the
//! Danish eHealth tokens: `"context": {"episode_of_care_id": "https://…/EpisodeOfCare/32584",
//! "patient_id": "https://…/Patient/75288"}`), kept as the reference the token carries. Every access is written to the audit log (target
//! `healthanalyzer_server::audit`): who (the token's name or client), what (interaction and
//! resource type), when, and the outcome; never identifiers or values.

use std::collections::HashMap;
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::dpop::{self, DpopConfig};
use crate::error::{ApiError, Error};
use crate::http::RequestId;
use crate::state::AppState;

/// What a request may do: everything (authentication off) or what its token grants.
#[derive(Debug, Clone)]
pub enum Access {
    /// Authentication is off.
    Open,
    /// A verified token.
    Token(Grant),
}

/// The rights of a verified token.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// Who, for the audit log: the token's name, or the JWT's `client_id`/`azp`.
    pub who: String,
    /// The scopes.
    pub scopes: Vec<Scope>,
    /// The Patient id of a patient-context token.
    pub patient: Option<String>,
    /// The EpisodeOfCare a FUT-style token is limited to, as the reference the token carries
    /// (`https://careplan.example/fhir/EpisodeOfCare/39765` or `EpisodeOfCare/39765`); compare
    /// with [`Grant::allows_episode_of_care`].
    pub episode_of_care: Option<String>,
    /// The RFC 7638 SHA-256 thumbprint (base64url) of the key the token is bound to: a JWT's
    /// `cnf.jkt` claim, or a token file's `jkt=` word. With DPoP on (the server's DPoP
    /// setting), such a token is accepted only as `Authorization: DPoP <token>` with a proof
    /// signed by that key (RFC 9449).
    pub jkt: Option<String>,
}

/// A SMART scope: `patient|user|system` `/` `Type|*` `.` permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `patient`, `user` or `system`.
    pub context: String,
    /// A resource type or `*`.
    pub resource: String,
    /// The permissions, as SMART v2 letters (`c`, `r`, `u`, `d`, `s`).
    pub permissions: String,
}

impl Scope {
    /// Parses a SMART v1 (`.read`, `.write`, `.*`) or v2 (`.cruds` letters) scope. Scopes with
    /// search restrictions (`?category=…`) and non-resource scopes (`openid`, `launch`) give
    /// no access here (`None`).
    pub fn parse(s: &str) -> Option<Scope> {
        if s.contains('?') {
            return None;
        }
        let (context, rest) = s.split_once('/')?;
        if !matches!(context, "patient" | "user" | "system") {
            return None;
        }
        let (resource, perms) = rest.split_once('.')?;
        let permissions = match perms {
            "read" => "rs".to_string(),
            "write" => "cud".to_string(),
            "*" => "cruds".to_string(),
            p if !p.is_empty() && p.chars().all(|c| "cruds".contains(c)) => p.to_string(),
            _ => return None,
        };
        Some(Scope {
            context: context.to_string(),
            resource: resource.to_string(),
            permissions,
        })
    }
}

impl Grant {
    /// Whether the token allows `permission` (a SMART v2 letter) on `resource`.
    pub fn allows(&self, resource: &str, permission: char) -> bool {
        self.scopes.iter().any(|s| {
            (s.resource == "*" || s.resource == resource)
                && s.permissions.contains(permission)
                && (s.context != "patient" || self.patient.is_some())
        })
    }

    /// Whether `reference` (an EpisodeOfCare reference, absolute or `EpisodeOfCare/<id>`) is
    /// inside the token's episode-of-care context: always when the token names none; else when
    /// both are the same reference, or, when either is relative, when their `EpisodeOfCare/<id>`
    /// tails are equal (two absolute references on different hosts differ).
    pub fn allows_episode_of_care(&self, reference: &str) -> bool {
        let Some(mine) = self.episode_of_care.as_deref() else {
            return true;
        };
        same_reference(mine, reference, "EpisodeOfCare")
    }

    /// The Patient compartment this token is limited to: `Some` when every scope that could
    /// apply is a patient scope.
    pub fn compartment(&self) -> Option<&str> {
        let only_patient = self.scopes.iter().all(|s| s.context == "patient");
        if only_patient {
            self.patient.as_deref()
        } else {
            None
        }
    }
}

/// Whether two references to a `ty` are the same: equal, or, when either is relative, with
/// equal `ty/<id>` tails.
fn same_reference(a: &str, b: &str, ty: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    if a == b {
        return true;
    }
    let absolute = |r: &str| r.contains("://");
    if absolute(a) && absolute(b) {
        return false;
    }
    let marker = format!("{ty}/");
    let tail = |r: &'_ str| -> Option<String> {
        let at = r.rfind(&marker)?;
        let id = &r[at + marker.len()..];
        let id = id.split('/').next().unwrap_or("");
        (!id.is_empty() && (at == 0 || r[..at].ends_with('/'))).then(|| format!("{marker}{id}"))
    };
    matches!((tail(a), tail(b)), (Some(x), Some(y)) if x == y)
}

/// The id after the last `Patient/` of a reference (`https://…/Patient/75288` -> `75288`), or
/// the text itself when it has none.
fn patient_id(reference: &str) -> String {
    let r = reference.trim();
    let id = r.rsplit_once("Patient/").map_or(r, |(_, id)| id);
    id.split('/').next().unwrap_or(id).to_string()
}

/// Where a deployment keeps its credentials, for [`AuthConfig::from_files`].
#[derive(Debug, Clone, Default)]
pub struct AuthFiles {
    /// A token file of `NAME TOKEN SCOPE… [patient=ID]` lines.
    pub token_file: Option<std::path::PathBuf>,
    /// A file holding the HS256 secret of the JWTs accepted.
    pub hs256_secret_file: Option<std::path::PathBuf>,
    /// An RSA public key (PEM) the JWTs accepted are signed under (RS256).
    pub rs256_public_key: Option<std::path::PathBuf>,
    /// The `iss` a JWT must carry.
    pub issuer: Option<String>,
    /// The `aud` a JWT must carry.
    pub audience: Option<String>,
}

/// How tokens are checked.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// Opaque tokens: token -> grant.
    pub tokens: HashMap<String, Grant>,
    /// JWT verification.
    pub jwt: Option<JwtConfig>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("tokens", &self.tokens.len())
            .field("jwt", &self.jwt.as_ref().map(|j| j.algorithm))
            .finish()
    }
}

/// JWT verification: the key, and optionally the required issuer and audience.
#[derive(Clone)]
pub struct JwtConfig {
    /// HS256 or RS256.
    pub algorithm: Algorithm,
    /// The key to verify with.
    pub key: DecodingKey,
    /// The required `iss`, if any.
    pub issuer: Option<String>,
    /// The required `aud`, if any.
    pub audience: Option<String>,
}

impl JwtConfig {
    /// The shortest HS256 secret accepted: 32 bytes, the hash's size (RFC 7518 §3.2).
    pub const HS256_MIN_SECRET: usize = 32;

    /// HS256 with a shared secret of at least [`HS256_MIN_SECRET`](Self::HS256_MIN_SECRET)
    /// bytes.
    ///
    /// # Errors
    /// [`Error::Config`] for a shorter secret (it can be guessed).
    pub fn hs256(secret: &[u8]) -> Result<Self, Error> {
        if secret.len() < Self::HS256_MIN_SECRET {
            return Err(Error::Config(format!(
                "the HS256 secret is {} bytes; use at least {} random bytes (e.g. `openssl rand -hex 32`)",
                secret.len(),
                Self::HS256_MIN_SECRET
            )));
        }
        Ok(Self {
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
            issuer: None,
            audience: None,
        })
    }

    /// RS256 with an RSA public key in PEM.
    pub fn rs256_pem(pem: &[u8]) -> Result<Self, Error> {
        let key = DecodingKey::from_rsa_pem(pem).map_err(|e| {
            Error::Config(format!("the RS256 public key is not an RSA PEM key: {e}"))
        })?;
        Ok(Self {
            algorithm: Algorithm::RS256,
            key,
            issuer: None,
            audience: None,
        })
    }
}

impl AuthConfig {
    /// The authentication a deployment's files describe (each optional; all `None`: no
    /// authentication, `Ok(None)`): opaque tokens from a token file
    /// ([`from_token_file`](Self::from_token_file)), and JWTs verified with an HS256 secret
    /// (the file's bytes, white space around them trimmed) or an RS256 public key (PEM).
    ///
    /// # Errors
    /// [`Error::Config`] naming a file that cannot be read or holds no usable key.
    pub fn from_files(files: &AuthFiles) -> Result<Option<Self>, Error> {
        let mut auth = match &files.token_file {
            Some(p) => Some(AuthConfig::from_token_file(p)?),
            None => None,
        };
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| Error::Config(format!("cannot read {}: {e}", p.display())))
        };
        let jwt = match (&files.hs256_secret_file, &files.rs256_public_key) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "give an HS256 secret or an RS256 public key, not both".into(),
                ));
            }
            (Some(p), None) => Some(
                JwtConfig::hs256(read(p)?.trim_ascii())
                    .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?,
            ),
            (None, Some(p)) => Some(
                JwtConfig::rs256_pem(&read(p)?)
                    .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?,
            ),
            (None, None) => None,
        };
        if let Some(mut j) = jwt {
            j.issuer = files.issuer.clone();
            j.audience = files.audience.clone();
            auth.get_or_insert_with(AuthConfig::default).jwt = Some(j);
        }
        Ok(auth)
    }

    /// Reads a token file: one token per line, `NAME TOKEN SCOPE… [patient=ID]
    /// [episode_of_care=REFERENCE] [jkt=THUMBPRINT]`; `#` starts a comment. Example:
    /// `dashboard 6f1c… user/*.rs` or `app-anne 91ab… patient/*.cruds patient=123
    /// episode_of_care=EpisodeOfCare/7`. `jkt=` binds the token to a DPoP key (see
    /// [`Grant::jkt`]).
    pub fn from_token_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read the token file {}: {e}",
                path.display()
            ))
        })?;
        let mut tokens = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(name), Some(token)) = (words.next(), words.next()) else {
                return Err(Error::Config(format!(
                    "{}:{}: expected NAME TOKEN SCOPE… [patient=ID]",
                    path.display(),
                    n + 1
                )));
            };
            if token.len() < 16 {
                return Err(Error::Config(format!(
                    "{}:{}: the token is shorter than 16 characters; use a long random one",
                    path.display(),
                    n + 1
                )));
            }
            let mut grant = Grant {
                who: name.to_string(),
                scopes: Vec::new(),
                patient: None,
                episode_of_care: None,
                jkt: None,
            };
            for w in words {
                if let Some(p) = w.strip_prefix("patient=") {
                    grant.patient = Some(p.to_string());
                } else if let Some(e) = w.strip_prefix("episode_of_care=") {
                    grant.episode_of_care = Some(e.to_string());
                } else if let Some(j) = w.strip_prefix("jkt=") {
                    grant.jkt = Some(j.to_string());
                } else {
                    grant.scopes.push(Scope::parse(w).ok_or_else(|| {
                        Error::Config(format!(
                            "{}:{}: {w:?} is not a SMART scope this server grants (e.g. user/*.rs, patient/Observation.cruds)",
                            path.display(),
                            n + 1
                        ))
                    })?);
                }
            }
            if grant.scopes.iter().any(|s| s.context == "patient") && grant.patient.is_none() {
                return Err(Error::Config(format!(
                    "{}:{}: patient/ scopes need patient=ID",
                    path.display(),
                    n + 1
                )));
            }
            tokens.insert(token.to_string(), grant);
        }
        Ok(Self { tokens, jwt: None })
    }

    /// The rights of `token` (an opaque token of the token file, or a JWT verified under
    /// [`jwt`](Self::jwt)), with its context claims; `None` when it is not valid here.
    pub fn grant(&self, token: &str) -> Option<Grant> {
        self.verify(token).ok()
    }

    /// Verifies a bearer token.
    fn verify(&self, token: &str) -> Result<Grant, String> {
        if let Some(g) = self.tokens.get(token) {
            return Ok(g.clone());
        }
        let Some(jwt) = &self.jwt else {
            return Err("the token is not known".into());
        };
        let mut v = Validation::new(jwt.algorithm);
        v.set_required_spec_claims(&["exp"]);
        v.leeway = 30;
        if let Some(i) = &jwt.issuer {
            v.set_issuer(&[i]);
        }
        match &jwt.audience {
            Some(a) => v.set_audience(&[a]),
            None => v.validate_aud = false,
        }
        let data =
            jsonwebtoken::decode::<Value>(token, &jwt.key, &v).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "the token has expired".to_string()
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "the token's signature is wrong".to_string()
                }
                other => format!("the token is not valid: {other:?}"),
            })?;
        let claims = data.claims;
        let scope_text: Vec<String> = match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(s)), _) => s.split_whitespace().map(str::to_string).collect(),
            (_, Some(Value::Array(a))) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let who = ["client_id", "azp"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(Value::as_str))
            .unwrap_or("jwt")
            .to_string();
        Ok(Grant {
            who,
            scopes: scope_text.iter().filter_map(|s| Scope::parse(s)).collect(),
            patient: claims
                .get("patient")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    claims
                        .pointer("/context/patient_id")
                        .and_then(Value::as_str)
                        .map(patient_id)
                })
                .filter(|p| !p.is_empty()),
            episode_of_care: claims
                .get("episode_of_care")
                .or_else(|| claims.pointer("/context/episode_of_care_id"))
                .and_then(Value::as_str)
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty()),
            jkt: claims
                .pointer("/cnf/jkt")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

fn unauthorized(why: &str, dpop: Option<&DpopConfig>) -> Response {
    let how = if dpop.is_some() {
        "send Authorization: Bearer <token>, or DPoP <token> with a DPoP proof for a DPoP-bound token"
    } else {
        "send Authorization: Bearer <token>"
    };
    let mut r =
        ApiError::new(StatusCode::UNAUTHORIZED, "login", format!("{why}; {how}")).into_response();
    let h = r.headers_mut();
    h.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"healthanalyzer\""),
    );
    if dpop.is_some()
        && let Ok(v) = HeaderValue::from_str(&format!("DPoP algs=\"{}\"", dpop::ALGS))
    {
        h.append(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// 401 for a DPoP failure (RFC 9449 §7.1): `WWW-Authenticate: DPoP error="…"` and an
/// OperationOutcome saying which check failed.
fn dpop_refused(error: &'static str, why: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "login", why).into_response();
    let challenge = format!("DPoP error=\"{error}\", algs=\"{}\"", dpop::ALGS);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The credentials of an `Authorization` header: the scheme (`Bearer` or `DPoP`, any case)
/// and the token.
fn credentials(value: &str) -> Option<(Scheme, String)> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return None;
    };
    Some((scheme, token.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// The public URL of this request for the DPoP `htu` check: the server's base URL (the
/// configured one, else `http://<Host>/fhir`) with `/fhir` replaced by the request's path.
fn public_url(state: &AppState, req: &Request) -> String {
    let base = crate::resource::base_url(state, req.headers());
    let root = base.strip_suffix("/fhir").unwrap_or(&base);
    format!("{root}{}", req.uri().path())
}

/// Authenticates the request (when auth is on) and puts its [`Access`] in the extensions;
/// `/fhir/metadata` and `/healthz` stay open. With DPoP on, a DPoP-bound token must come as
/// `Authorization: DPoP <token>` with a valid `DPoP` proof.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(auth) = state.config.auth.as_ref() else {
        req.extensions_mut().insert(Access::Open);
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/fhir/metadata" || path == "/healthz" {
        req.extensions_mut().insert(Access::Open);
        return next.run(req).await;
    }
    let dpop = state.config.dpop.as_ref();
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(credentials)
        .filter(|(scheme, _)| *scheme == Scheme::Bearer || dpop.is_some());
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let Some((scheme, token)) = presented else {
        tracing::info!(target: "healthanalyzer_server::audit", request_id, who = "-", outcome = 401, "access refused: no token");
        return unauthorized("this server needs a bearer token", dpop);
    };
    let grant = match auth.verify(&token) {
        Ok(grant) => grant,
        Err(why) => {
            tracing::info!(target: "healthanalyzer_server::audit", request_id, who = "-", outcome = 401, reason = %why, "access refused");
            return unauthorized(&why, dpop);
        }
    };
    if let Some(dpop) = dpop
        && let Some(refused) = check_dpop(dpop, &state, &req, scheme, &token, &grant)
    {
        tracing::info!(target: "healthanalyzer_server::audit", request_id, who = %grant.who, outcome = refused.status().as_u16(), "access refused: DPoP");
        return refused;
    }
    req.extensions_mut().insert(Access::Token(grant));
    next.run(req).await
}

/// The DPoP rules (RFC 9449 §7.1): a bound token only under the DPoP scheme with one valid
/// proof; the DPoP scheme only for a bound token; unbound tokens refused when so configured.
/// `Some`: the refusal to answer with.
fn check_dpop(
    dpop: &DpopConfig,
    state: &AppState,
    req: &Request,
    scheme: Scheme,
    token: &str,
    grant: &Grant,
) -> Option<Response> {
    const PROOF: &str = "invalid_dpop_proof";
    let Some(jkt) = grant.jkt.as_deref() else {
        if scheme == Scheme::Dpop {
            return Some(dpop_refused(
                "invalid_token",
                "the token is not DPoP-bound (it has no cnf.jkt); send it as Authorization: Bearer <token>",
            ));
        }
        if dpop.require_bound_tokens {
            return Some(dpop_refused(
                "invalid_token",
                "this server accepts only DPoP-bound tokens; ask the authorization server for a DPoP token",
            ));
        }
        return None;
    };
    if scheme == Scheme::Bearer {
        return Some(dpop_refused(
            PROOF,
            "the token is DPoP-bound: send it as Authorization: DPoP <token> with a DPoP proof header, not as Bearer",
        ));
    }
    let mut proofs = req.headers().get_all("dpop").iter();
    let (Some(proof), None) = (proofs.next(), proofs.next()) else {
        return Some(dpop_refused(
            PROOF,
            "a DPoP-bound token needs exactly one DPoP header holding a proof (RFC 9449)",
        ));
    };
    let Ok(proof) = proof.to_str() else {
        return Some(dpop_refused(PROOF, "the DPoP header is not ASCII"));
    };
    let url = public_url(state, req);
    let presented = dpop::Presented {
        method: req.method().as_str(),
        url: &url,
        token,
        jkt,
    };
    match dpop.check(proof, &presented) {
        Ok(()) => None,
        Err(dpop::ProofError::Invalid(why)) => Some(dpop_refused(PROOF, &why)),
        Err(dpop::ProofError::Busy) => {
            let mut r = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "too many DPoP proofs to remember right now; retry in a moment",
            )
            .into_response();
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(dpop.window.as_secs().max(1)),
            );
            Some(r)
        }
    }
}

/// What an API request does: the resource type and the SMART permission letter.
fn interaction(method: &Method, path: &str) -> Option<(String, char)> {
    let rest = path.trim_start_matches('/');
    let rest = rest
        .strip_prefix("fhir")
        .unwrap_or(rest)
        .trim_start_matches('/');
    let mut parts = rest.split('/');
    let ty = parts.next().unwrap_or("");
    let second = parts.next();
    if ty.is_empty() || ty == "metadata" {
        return None;
    }
    // FUT's system-level operations read or write Observations (and what comes with them).
    match (method.as_str(), ty) {
        ("POST", "$submit-measurement") => return Some(("Observation".into(), 'c')),
        ("GET" | "POST", op) if op.starts_with("$search-measurements") => {
            return Some(("Observation".into(), 's'));
        }
        _ => {}
    }
    let letter = match (method.as_str(), second) {
        ("GET", None) => 's',
        ("GET", Some(op)) if op.starts_with('$') => 's',
        ("GET", Some(_)) => 'r',
        // `POST [type]/_search` and operations by POST (`$lastn`, `$stats`) only read.
        ("POST", Some(op)) if op == "_search" || op.starts_with('$') => 's',
        ("POST", None) => 'c',
        ("PUT", Some(_)) => 'u',
        ("DELETE", Some(_)) => 'd',
        _ => return None,
    };
    Some((ty.to_string(), letter))
}

/// Checks the token's scopes for the interaction and writes the audit line.
pub(crate) async fn authorize(req: Request, next: Next) -> Response {
    let access = req
        .extensions()
        .get::<Access>()
        .cloned()
        .unwrap_or(Access::Open);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let Access::Token(grant) = &access else {
        return next.run(req).await;
    };
    let what = interaction(&method, &path);
    if let Some((ty, letter)) = &what
        && !grant.allows(ty, *letter)
    {
        tracing::info!(target: "healthanalyzer_server::audit", request_id, who = %grant.who, %method, resource = %ty, outcome = 403, "access refused: scope");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the token's scopes do not allow '{letter}' on {ty}"),
        )
        .into_response();
    }
    let res = next.run(req).await;
    let (ty, letter) = what.unwrap_or_else(|| ("Bundle".into(), 'c'));
    tracing::info!(
        target: "healthanalyzer_server::audit",
        request_id,
        who = %grant.who,
        patient_scoped = grant.compartment().is_some(),
        interaction = %letter,
        resource = %ty,
        outcome = res.status().as_u16(),
        "access"
    );
    res
}

/// The compartment a request is limited to, if any.
pub(crate) fn compartment(access: Option<&Access>) -> Option<String> {
    match access {
        Some(Access::Token(g)) => g.compartment().map(str::to_string),
        _ => None,
    }
}

/// The compartment of a handler's `Access` extension.
pub(crate) fn limited_to(access: &Option<axum::Extension<Access>>) -> Option<String> {
    compartment(access.as_ref().map(|a| &a.0))
}

/// Limits search parameters to the compartment: a `patient`/`subject` naming another Patient
/// is 403; without one, `patient=<the compartment>` is added.
pub(crate) fn restrict_search(
    pairs: &mut Vec<(String, String)>,
    compartment: Option<&str>,
) -> Result<(), ApiError> {
    let Some(p) = compartment else { return Ok(()) };
    let mut named = false;
    for (k, v) in pairs.iter() {
        if is_patient_param(k) {
            named = true;
            let id = v.rsplit_once("Patient/").map_or(v.as_str(), |(_, id)| id);
            if id != p {
                return Err(outside_compartment());
            }
        }
    }
    if !named {
        pairs.push(("patient".into(), p.to_string()));
    }
    Ok(())
}

/// `patient`, `subject`, and the same with the `:Patient` type modifier.
pub(crate) fn is_patient_param(name: &str) -> bool {
    matches!(
        name,
        "patient" | "subject" | "patient:Patient" | "subject:Patient"
    )
}

/// Checks that a subject is the compartment's Patient.
pub(crate) async fn check_subject(
    state: &AppState,
    compartment: Option<&str>,
    subject: &healthanalyzer_model::Identifier,
) -> Result<(), ApiError> {
    let Some(p) = compartment else { return Ok(()) };
    match crate::patient::resolve(state, p).await? {
        Some(r) if r.primary == *subject => Ok(()),
        _ => Err(outside_compartment()),
    }
}

/// 403 for a resource outside the token's Patient compartment.
pub(crate) fn outside_compartment() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "the token is limited to one Patient's compartment, and this is outside it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_hs256_secret_is_refused_without_showing_it() {
        let short = b"0123456789abcdef0123456789abcde"; // 31 bytes
        match JwtConfig::hs256(short) {
            Err(Error::Config(m)) => {
                assert!(m.contains("31 bytes") && m.contains("at least 32"), "{m}");
                assert!(!m.contains("0123456789"), "{m}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a 31-byte secret was accepted"),
        }
        assert!(JwtConfig::hs256(b"0123456789abcdef0123456789abcdef").is_ok());
    }

    #[test]
    fn smart_scopes_v1_and_v2() {
        let s = Scope::parse("patient/Observation.rs").expect("v2");
        assert_eq!(
            (
                s.context.as_str(),
                s.resource.as_str(),
                s.permissions.as_str()
            ),
            ("patient", "Observation", "rs")
        );
        assert_eq!(
            Scope::parse("user/*.read").map(|s| s.permissions),
            Some("rs".into())
        );
        assert_eq!(
            Scope::parse("system/*.write").map(|s| s.permissions),
            Some("cud".into())
        );
        assert_eq!(
            Scope::parse("system/Patient.*").map(|s| s.permissions),
            Some("cruds".into())
        );
        for none in [
            "openid",
            "launch/patient",
            "patient/Observation.rs?category=vital-signs",
            "admin/*.rs",
            "user/*.x",
            "user/*.",
        ] {
            assert_eq!(Scope::parse(none), None, "{none}");
        }
        let g = Grant {
            who: "t".into(),
            scopes: vec![Scope::parse("patient/Observation.rs").expect("scope")],
            patient: Some("p1".into()),
            ..Grant::default()
        };
        assert!(g.allows("Observation", 'r'));
        assert!(!g.allows("Observation", 'c'));
        assert!(!g.allows("Patient", 'r'));
        assert_eq!(g.compartment(), Some("p1"));
        let no_patient = Grant {
            patient: None,
            ..g.clone()
        };
        assert!(
            !no_patient.allows("Observation", 'r'),
            "a patient scope without a patient grants nothing"
        );
    }

    #[test]
    fn episode_of_care_references_compare_by_tail_unless_both_are_absolute() {
        let g = |e: Option<&str>| Grant {
            who: "t".into(),
            scopes: Vec::new(),
            patient: None,
            episode_of_care: e.map(str::to_string),
            jkt: None,
        };
        assert!(g(None).allows_episode_of_care("EpisodeOfCare/1"));
        let abs = g(Some("https://careplan.example/fhir/EpisodeOfCare/39765"));
        assert!(abs.allows_episode_of_care("https://careplan.example/fhir/EpisodeOfCare/39765"));
        assert!(abs.allows_episode_of_care("EpisodeOfCare/39765"));
        assert!(!abs.allows_episode_of_care("EpisodeOfCare/3976"));
        assert!(!abs.allows_episode_of_care("https://other.example/fhir/EpisodeOfCare/39765"));
        assert!(
            !abs.allows_episode_of_care("https://careplan.example/fhir/NotEpisodeOfCare/39765")
        );
        let rel = g(Some("EpisodeOfCare/7"));
        assert!(rel.allows_episode_of_care("https://x.example/fhir/EpisodeOfCare/7"));
        assert!(!rel.allows_episode_of_care("EpisodeOfCare/8"));
        assert!(!rel.allows_episode_of_care("Patient/7"));
        assert_eq!(
            patient_id("https://patient.example/fhir/Patient/75288"),
            "75288"
        );
        assert_eq!(patient_id("75288"), "75288");
    }

    #[test]
    fn interactions_from_method_and_path() {
        assert_eq!(
            interaction(&Method::GET, "/fhir/Observation"),
            Some(("Observation".into(), 's'))
        );
        assert_eq!(
            interaction(&Method::GET, "/fhir/Observation/1"),
            Some(("Observation".into(), 'r'))
        );
        assert_eq!(
            interaction(&Method::GET, "/fhir/Observation/$lastn"),
            Some(("Observation".into(), 's'))
        );
        assert_eq!(
            interaction(&Method::POST, "/fhir/Patient"),
            Some(("Patient".into(), 'c'))
        );
        assert_eq!(
            interaction(&Method::PUT, "/fhir/Patient/1"),
            Some(("Patient".into(), 'u'))
        );
        assert_eq!(
            interaction(&Method::DELETE, "/Observation/1"),
            Some(("Observation".into(), 'd'))
        );
        assert_eq!(
            interaction(&Method::POST, "/fhir/Observation/_search"),
            Some(("Observation".into(), 's'))
        );
        assert_eq!(
            interaction(&Method::POST, "/fhir/Patient/_search"),
            Some(("Patient".into(), 's'))
        );
        assert_eq!(
            interaction(&Method::POST, "/fhir/Observation/$stats"),
            Some(("Observation".into(), 's'))
        );
        assert_eq!(
            interaction(&Method::POST, "/fhir/$submit-measurement"),
            Some(("Observation".into(), 'c'))
        );
        assert_eq!(
            interaction(&Method::POST, "/fhir/$search-measurements"),
            Some(("Observation".into(), 's'))
        );
        assert_eq!(
            interaction(&Method::POST, "/fhir/$search-measurements-bundle-limit"),
            Some(("Observation".into(), 's'))
        );
        assert_eq!(interaction(&Method::POST, "/fhir"), None);
        assert_eq!(interaction(&Method::GET, "/fhir/metadata"), None);
    }
}
