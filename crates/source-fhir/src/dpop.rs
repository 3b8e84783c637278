//! DPoP (RFC 9449) proofs the client signs: an EC P-256 key, one fresh proof per request.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use healthanalyzer_source::Error;
use healthanalyzer_source::http::reqwest::Url;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

/// An EC P-256 private key that signs DPoP proofs (RFC 9449, ES256), for
/// [`ServerConfig::dpop`](crate::ServerConfig::dpop). Cheap to clone; the private key never
/// shows in `Debug` or in errors.
///
/// ```
/// use healthanalyzer_source_fhir::DpopKey;
///
/// let key = DpopKey::generate()?;
/// // What a token is bound to (`cnf.jkt`), e.g. for a token file's `jkt=`:
/// assert_eq!(key.thumbprint().len(), 43);
/// # Ok::<(), healthanalyzer_source::Error>(())
/// ```
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<Inner>,
}

struct Inner {
    pair: EcdsaKeyPair,
    jwk: Value,
    thumbprint: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.inner.thumbprint)
            .finish_non_exhaustive()
    }
}

/// The DER of `id-ecPublicKey` and `prime256v1`, the AlgorithmIdentifier of a PKCS#8 P-256 key.
const P256_ALGORITHM: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

impl DpopKey {
    /// A new random key (kept in memory only): for tests, or a client that registers its key
    /// anew each run.
    ///
    /// # Errors
    /// [`Error::Config`] when the system's random source fails.
    pub fn generate() -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| Error::Config("cannot make a DPoP key: no system randomness".into()))?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// A key from PEM text: PKCS#8 (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey
    /// -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes) or SEC1 (`-----BEGIN EC
    /// PRIVATE KEY-----`, as `openssl ecparam -name prime256v1 -genkey` writes). Either must
    /// be a P-256 key that holds its public key too.
    ///
    /// # Errors
    /// [`Error::Config`] saying what is wrong with the key (never showing it).
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let (label, der) = pem_block(pem)?;
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8(&der),
            "EC PRIVATE KEY" => Self::from_pkcs8(&sec1_to_pkcs8(&der)),
            other => Err(Error::Config(format!(
                "the DPoP key is a PEM {other:?}; give an EC P-256 private key (PRIVATE KEY or EC PRIVATE KEY)"
            ))),
        }
    }

    /// A key from a PEM file (see [`from_pem`](Self::from_pem)).
    ///
    /// # Errors
    /// [`Error::Config`] naming the file when it cannot be read or holds no usable key.
    pub fn from_pem_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read the DPoP key {}: {e}", path.display()))
        })?;
        Self::from_pem(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng).map_err(|e| {
                Error::Config(format!(
                    "the DPoP key is not a usable EC P-256 private key ({e})"
                ))
            })?;
        let point = pair.public_key().as_ref();
        let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint =
            b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref());
        Ok(DpopKey {
            inner: Arc::new(Inner {
                jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                pair,
                thumbprint,
                rng,
            }),
        })
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key (base64url): what a token bound to
    /// this key carries as `cnf.jkt`.
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// The public key as a JWK (`kty`, `crv`, `x`, `y`).
    pub fn public_jwk(&self) -> &Value {
        &self.inner.jwk
    }

    /// A new proof for one request: `htm` = `method`, `htu` = `url` without query and
    /// fragment, `iat` = now, a random `jti`, `ath` = the hash of `access_token` (when sent
    /// with one), and the server's `nonce` when it asked for one.
    ///
    /// # Errors
    /// [`Error::Other`] when the system's random source fails.
    pub fn proof(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, Error> {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let mut id = [0u8; 16];
        self.inner.rng.fill(&mut id).map_err(|_| no_randomness())?;
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = json!({"htm": method, "htu": htu.as_str(), "iat": iat, "jti": b64(&id)});
        if let Some(t) = access_token {
            claims["ath"] = json!(b64(ring::digest::digest(
                &ring::digest::SHA256,
                t.as_bytes()
            )
            .as_ref()));
        }
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.inner.jwk});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .inner
            .pair
            .sign(&self.inner.rng, input.as_bytes())
            .map_err(|_| no_randomness())?;
        Ok(format!("{input}.{}", b64(sig.as_ref())))
    }
}

fn no_randomness() -> Error {
    Error::Other {
        reason: "cannot sign a DPoP proof: the system's random source failed".into(),
        retryable: true,
        cause: None,
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The first PEM block: its label and its bytes.
fn pem_block(pem: &str) -> Result<(String, Vec<u8>), Error> {
    let bad = |why: &str| Error::Config(format!("the DPoP key is not PEM: {why}"));
    let mut lines = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    let label = lines
        .next()
        .and_then(|l| l.strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| bad("no -----BEGIN …----- line"))?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for l in lines {
        if l == end {
            ended = true;
            break;
        }
        body.push_str(l);
    }
    if !ended {
        return Err(bad(&format!("no {end} line")));
    }
    let der = STANDARD
        .decode(body)
        .map_err(|_| bad("the text between BEGIN and END is not base64"))?;
    Ok((label, der))
}

/// A DER length.
fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

/// A SEC1 `ECPrivateKey` wrapped as PKCS#8 v1 for the P-256 curve (RFC 5915, RFC 5208).
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    let mut octets = vec![0x04];
    der_len(sec1.len(), &mut octets);
    octets.extend_from_slice(sec1);
    let mut inner = vec![0x02, 0x01, 0x00];
    inner.extend_from_slice(P256_ALGORITHM);
    inner.extend(octets);
    let mut out = vec![0x30];
    der_len(inner.len(), &mut out);
    out.extend(inner);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl ecparam -name prime256v1 -genkey -noout` (SEC1) and the same key through
    /// `openssl pkcs8 -topk8 -nocrypt` (PKCS#8): a throwaway test key.
    const SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIIoz1OWykhMzwZMtN9zhNWq6RXfWFwFXDt1CPxliq1XEoAoGCCqGSM49
AwEHoUQDQgAE/9lkCyPsCKIF3s10kBxFfWrB+vLl1hFCyAJ1ksJVZ/awIiFXCvFH
BoDw8Dpkw+oJ64YM3QIm5DqkH/tr/L6Z2g==
-----END EC PRIVATE KEY-----
";
    const PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgijPU5bKSEzPBky03
3OE1arpFd9YXAVcO3UI/GWKrVcShRANCAAT/2WQLI+wIogXezXSQHEV9asH68uXW
EULIAnWSwlVn9rAiIVcK8UcGgPDwOmTD6gnrhgzdAibkOqQf+2v8vpna
-----END PRIVATE KEY-----
";
    /// Its RFC 7638 thumbprint, computed apart (Python hashlib over `openssl ec -pubout`).
    const THUMBPRINT: &str = "OpGBsGN3k7WlRS9C3D076Op_261JQ7NjPMeLcWYSQEU";

    #[test]
    fn sec1_and_pkcs8_pem_give_the_same_key() {
        let a = DpopKey::from_pem(SEC1).expect("SEC1");
        let b = DpopKey::from_pem(PKCS8).expect("PKCS#8");
        assert_eq!(a.thumbprint(), THUMBPRINT);
        assert_eq!(b.thumbprint(), THUMBPRINT);
        assert_eq!(a.public_jwk(), b.public_jwk());
        for bad in [
            "",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            let e = DpopKey::from_pem(bad).expect_err(bad);
            assert!(matches!(e, Error::Config(_)), "{e:?}");
        }
        assert!(!format!("{a:?}").contains("MHcCAQEE"));
        assert!(format!("{a:?}").contains(THUMBPRINT));
    }

    #[test]
    fn a_proof_names_the_request_without_its_query_and_hashes_the_token() {
        let key = DpopKey::generate().expect("key");
        let url = Url::parse("https://fhir.example/fhir/Observation?patient=1#f").expect("url");
        let p = key
            .proof("GET", &url, Some("tok"), Some("n-1"))
            .expect("proof");
        let parts: Vec<&str> = p.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |s: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).expect("b64")).expect("json")
        };
        let (h, c) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(h["typ"], "dpop+jwt");
        assert_eq!(h["alg"], "ES256");
        assert_eq!(&h["jwk"], key.public_jwk());
        assert_eq!(c["htm"], "GET");
        assert_eq!(c["htu"], "https://fhir.example/fhir/Observation");
        assert_eq!(c["nonce"], "n-1");
        assert_eq!(
            c["ath"],
            b64(ring::digest::digest(&ring::digest::SHA256, b"tok").as_ref())
        );
        let again = key.proof("GET", &url, None, None).expect("proof");
        let c2 = decode(again.split('.').nth(1).expect("claims"));
        assert_ne!(c["jti"], c2["jti"], "every proof has its own jti");
        assert!(c2.get("ath").is_none() && c2.get("nonce").is_none());
        // The signature verifies with the public key.
        let point = key.inner.pair.public_key().as_ref().to_vec();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("sig");
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("the signature verifies");
    }
}
