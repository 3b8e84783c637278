//! DPoP (RFC 9449): proofs of possession for DPoP-bound access tokens.
//!
//! A token bound to a key (a JWT's `cnf.jkt`, a token file's `jkt=`) is accepted only as
//! `Authorization: DPoP <token>` with one `DPoP` header holding a proof: a JWT with `typ`
//! `dpop+jwt`, signed (ES256, RS256 or EdDSA) by the public key in its `jwk` header, whose
//! RFC 7638 thumbprint is the token's `jkt`, and claiming `htm` (the method), `htu` (the
//! request's URL without query and fragment, under the server's base URL), `iat` (recent),
//! `jti` (never seen before within the window) and `ath` (the hash of the token). The checks
//! follow RFC 9449 §4.3 and §7.1; the server issues no nonces.
//!
//! The replay cache is per process: a proof replayed against another replica of the server is
//! not caught there (only the `iat` window limits it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;

/// The JWS algorithms a proof may be signed with, as the `algs` of a DPoP challenge.
pub(crate) const ALGS: &str = "ES256 RS256 EdDSA";

/// The longest DPoP header accepted, in bytes (a 4096-bit RSA key's proof fits easily).
const MAX_PROOF_BYTES: usize = 8 * 1024;

/// The longest `jti` accepted, in bytes.
const MAX_JTI_BYTES: usize = 256;

/// How DPoP proofs are checked (RFC 9449). Put it in the server's configuration
/// (`ServerConfig::dpop`) to turn DPoP on; without it, DPoP-bound tokens are taken as bearer
/// tokens, as before.
///
/// Clones share one replay cache.
#[derive(Clone)]
pub struct DpopConfig {
    /// How old a proof may be: its `iat` at most this long ago. Default 60 s.
    pub window: Duration,
    /// The clock difference allowed between client and server: an `iat` at most this far
    /// in the future (and the window stretched by as much). Default 5 s.
    pub clock_skew: Duration,
    /// Refuse tokens that are not DPoP-bound (as HelseID deployments do). Default `false`:
    /// unbound tokens keep working as bearer tokens.
    pub require_bound_tokens: bool,
    /// The most proofs remembered against replay; when that many are still inside their
    /// window, further requests get 503 until some expire. Default 100 000.
    pub replay_capacity: usize,
    replay: Arc<Mutex<ReplayCache>>,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            clock_skew: Duration::from_secs(5),
            require_bound_tokens: false,
            replay_capacity: 100_000,
            replay: Arc::new(Mutex::new(ReplayCache::default())),
        }
    }
}

impl std::fmt::Debug for DpopConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopConfig")
            .field("window", &self.window)
            .field("clock_skew", &self.clock_skew)
            .field("require_bound_tokens", &self.require_bound_tokens)
            .field("replay_capacity", &self.replay_capacity)
            .finish_non_exhaustive()
    }
}

/// The `jti`s seen, with when they may be forgotten (in insertion order, which is expiry
/// order: every entry lives as long).
#[derive(Default)]
struct ReplayCache {
    seen: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl ReplayCache {
    fn forget_expired(&mut self, now: Instant) {
        while let Some((until, _)) = self.order.front() {
            if *until > now {
                break;
            }
            if let Some((_, jti)) = self.order.pop_front() {
                self.seen.remove(&jti);
            }
        }
    }
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProofError {
    /// A check of RFC 9449 §4.3 failed; the text says which (never quoting the token).
    Invalid(String),
    /// The replay cache is full of live proofs.
    Busy,
}

fn invalid(why: impl Into<String>) -> ProofError {
    ProofError::Invalid(why.into())
}

/// What the request was: for the `htm`, `htu` and `ath` checks.
pub(crate) struct Presented<'a> {
    /// The HTTP method.
    pub(crate) method: &'a str,
    /// The request's public URL without query and fragment.
    pub(crate) url: &'a str,
    /// The access token sent with the proof.
    pub(crate) token: &'a str,
    /// The thumbprint the token is bound to.
    pub(crate) jkt: &'a str,
}

impl DpopConfig {
    /// Checks one proof for a request (RFC 9449 §4.3, §7.1) and remembers its `jti`.
    pub(crate) fn check(&self, proof: &str, req: &Presented<'_>) -> Result<(), ProofError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.check_at(proof, req, now, Instant::now())
    }

    fn check_at(
        &self,
        proof: &str,
        req: &Presented<'_>,
        now: u64,
        instant: Instant,
    ) -> Result<(), ProofError> {
        if proof.len() > MAX_PROOF_BYTES {
            return Err(invalid(format!(
                "the DPoP proof is longer than {MAX_PROOF_BYTES} bytes"
            )));
        }
        let mut parts = proof.trim().split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid(
                "the DPoP proof is not a signed JWT (three base64url parts)",
            ));
        };
        let header = json_part(h, "header")?;
        let claims = json_part(c, "claims")?;
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| invalid("the DPoP proof's signature is not base64url"))?;
        if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
            return Err(invalid("the DPoP proof's typ header is not \"dpop+jwt\""));
        }
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let Some(jwk) = header.get("jwk").filter(|j| j.is_object()) else {
            return Err(invalid("the DPoP proof has no jwk header (its public key)"));
        };
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|k| jwk.get(*k).is_some())
        {
            return Err(invalid(
                "the DPoP proof's jwk header holds a private key; send only the public key",
            ));
        }
        let signing_input = &proof.trim()[..h.len() + 1 + c.len()];
        verify_signature(alg, jwk, signing_input.as_bytes(), &sig)?;

        let method = claims.get("htm").and_then(Value::as_str);
        if method != Some(req.method) {
            return Err(invalid(format!(
                "the DPoP proof's htm is not this request's method {}",
                req.method
            )));
        }
        let htu = claims.get("htu").and_then(Value::as_str).unwrap_or("");
        if normalise_url(htu) != normalise_url(req.url) {
            return Err(invalid(format!(
                "the DPoP proof's htu is not this request's URL {}",
                req.url
            )));
        }
        let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
            return Err(invalid("the DPoP proof has no iat (seconds since 1970)"));
        };
        let skew = self.clock_skew.as_secs() as i64;
        let oldest = now as i64 - self.window.as_secs() as i64 - skew;
        if iat < oldest {
            return Err(invalid(format!(
                "the DPoP proof's iat is {}s old, more than the {}s allowed; make a new proof for every request",
                now as i64 - iat,
                self.window.as_secs()
            )));
        }
        if iat > now as i64 + skew {
            return Err(invalid(format!(
                "the DPoP proof's iat is {}s in the future; check the client's clock",
                iat - now as i64
            )));
        }
        let ath = claims.get("ath").and_then(Value::as_str);
        let expected = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            req.token.as_bytes(),
        ));
        if ath != Some(expected.as_str()) {
            return Err(invalid(
                "the DPoP proof's ath is not the base64url SHA-256 hash of the access token sent",
            ));
        }
        let Some(thumbprint) = jwk_thumbprint(jwk) else {
            return Err(invalid(
                "the DPoP proof's jwk is not an EC, RSA or OKP public key",
            ));
        };
        if thumbprint != req.jkt {
            return Err(invalid(
                "the DPoP proof's key is not the one the access token is bound to (cnf.jkt)",
            ));
        }
        let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
        if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
            return Err(invalid(format!(
                "the DPoP proof needs a jti, a unique id of at most {MAX_JTI_BYTES} bytes"
            )));
        }
        self.remember(jti, instant)
    }

    /// Records `jti`; refuses one already seen.
    fn remember(&self, jti: &str, now: Instant) -> Result<(), ProofError> {
        let mut cache = self
            .replay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.forget_expired(now);
        if cache.seen.contains_key(jti) {
            return Err(invalid(
                "the DPoP proof's jti was used before: a replayed proof; make a new proof for every request",
            ));
        }
        if cache.seen.len() >= self.replay_capacity.max(1) {
            return Err(ProofError::Busy);
        }
        let until = now + self.window + self.clock_skew * 2;
        cache.seen.insert(jti.to_string(), until);
        cache.order.push_back((until, jti.to_string()));
        Ok(())
    }
}

fn json_part(part: &str, what: &str) -> Result<Value, ProofError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| invalid(format!("the DPoP proof's {what} is not base64url")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(invalid(format!(
            "the DPoP proof's {what} is not a JSON object"
        ))),
    }
}

fn b64_member(jwk: &Value, name: &str) -> Result<Vec<u8>, ProofError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .ok_or_else(|| {
            invalid(format!(
                "the DPoP proof's jwk has no base64url member {name:?}"
            ))
        })
}

/// Verifies the JWS signature with the `jwk`, for the algorithms of [`ALGS`].
fn verify_signature(
    alg: &str,
    jwk: &Value,
    signing_input: &[u8],
    sig: &[u8],
) -> Result<(), ProofError> {
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
    let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or("");
    let bad_key = || {
        invalid(format!(
            "the DPoP proof's jwk (kty {kty:?}) does not fit its alg {alg}"
        ))
    };
    let verified = match alg {
        "ES256" => {
            if kty != "EC" || crv != "P-256" {
                return Err(bad_key());
            }
            let (x, y) = (b64_member(jwk, "x")?, b64_member(jwk, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(bad_key());
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signing_input, sig)
        }
        "RS256" => {
            if kty != "RSA" {
                return Err(bad_key());
            }
            let (n, e) = (b64_member(jwk, "n")?, b64_member(jwk, "e")?);
            signature::RsaPublicKeyComponents { n, e }.verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                signing_input,
                sig,
            )
        }
        "EdDSA" => {
            if kty != "OKP" || crv != "Ed25519" {
                return Err(bad_key());
            }
            let x = b64_member(jwk, "x")?;
            UnparsedPublicKey::new(&signature::ED25519, x).verify(signing_input, sig)
        }
        other => {
            return Err(invalid(format!(
                "the DPoP proof's alg {other:?} is not one of {ALGS}"
            )));
        }
    };
    verified.map_err(|_| {
        invalid("the DPoP proof's signature does not verify with the key in its jwk header")
    })
}

/// The RFC 7638 SHA-256 thumbprint (base64url) of a public JWK: EC, RSA or OKP.
pub(crate) fn jwk_thumbprint(jwk: &Value) -> Option<String> {
    let s = |k: &str| {
        jwk.get(k)
            .and_then(Value::as_str)
            .map(|v| Value::from(v).to_string())
    };
    let canonical = match jwk.get("kty").and_then(Value::as_str)? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            s("crv")?,
            s("x")?,
            s("y")?
        ),
        "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, s("e")?, s("n")?),
        "OKP" => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, s("crv")?, s("x")?),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    )))
}

/// A URL for the `htu` comparison (RFC 9449 §4.3: without query and fragment, after
/// syntax-based normalisation): scheme and host in lower case, the default port dropped.
pub(crate) fn normalise_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or("");
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let mut authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => Some(":443"),
        "http" => Some(":80"),
        _ => None,
    };
    if let Some(p) = default_port
        && authority.ends_with(p)
    {
        authority.truncate(authority.len() - p.len());
    }
    let path = if path.is_empty() { "/" } else { path };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        assert_eq!(
            jwk_thumbprint(&serde_json::json!({"kty": "oct", "k": "x"})),
            None
        );
    }

    #[test]
    fn urls_compare_without_query_case_of_host_or_default_port() {
        assert_eq!(
            normalise_url("HTTPS://Fhir.Example:443/fhir/Observation?patient=1#x"),
            "https://fhir.example/fhir/Observation"
        );
        assert_eq!(
            normalise_url("http://127.0.0.1:8080/fhir"),
            "http://127.0.0.1:8080/fhir"
        );
        assert_ne!(
            normalise_url("https://fhir.example/fhir/Observation"),
            normalise_url("https://fhir.example/fhir/observation")
        );
    }

    #[test]
    fn the_replay_cache_forgets_after_the_window_and_refuses_when_full() {
        let config = DpopConfig {
            replay_capacity: 2,
            ..DpopConfig::default()
        };
        let t0 = Instant::now();
        assert_eq!(config.remember("a", t0), Ok(()));
        assert!(
            matches!(config.remember("a", t0), Err(ProofError::Invalid(m)) if m.contains("replayed"))
        );
        assert_eq!(config.remember("b", t0), Ok(()));
        assert_eq!(config.remember("c", t0), Err(ProofError::Busy));
        // After the window (plus twice the skew), "a" may be forgotten: its iat is too old by
        // then anyway.
        let later = t0 + config.window + config.clock_skew * 2;
        assert_eq!(config.remember("c", later), Ok(()));
        assert_eq!(config.remember("a", later), Ok(()));
    }
}
