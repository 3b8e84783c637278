//! DPoP (RFC 9449) over real HTTP: one test per check a proof must pass, plus the passing
//! cases (ES256, EdDSA and RS256 keys, a token file entry bound with `jkt=`).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Answer, TestServer, start};
use healthanalyzer_server::{AuthConfig, DpopConfig, Grant, JwtConfig, Scope, ServerConfig};
use jsonwebtoken::{EncodingKey, Header};
use reqwest::Method;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-for-hs256";
const BEARER: &str = "plain-bearer-token-0123456789";
const BOUND_OPAQUE: &str = "bound-opaque-token-0123456789";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A key that signs proofs: its public JWK and a signing function.
enum Key {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

impl Key {
    fn es256() -> Key {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Key::Es256(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }

    fn eddsa() -> Key {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Key::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    fn rs256() -> Key {
        let pem = include_str!("keys/test-rs256-private.pem");
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(der)
            .unwrap();
        Key::Rs256(RsaKeyPair::from_pkcs8(&der).unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            Key::Es256(_) => "ES256",
            Key::EdDsa(_) => "EdDSA",
            Key::Rs256(_) => "RS256",
        }
    }

    fn jwk(&self) -> Value {
        match self {
            Key::Es256(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            Key::EdDsa(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
            Key::Rs256(k) => {
                let c: signature::RsaPublicKeyComponents<Vec<u8>> = k.public().into();
                json!({"kty": "RSA", "n": b64(&c.n), "e": b64(&c.e)})
            }
        }
    }

    /// The RFC 7638 thumbprint, computed here independently of the server.
    fn jkt(&self) -> String {
        let j = self.jwk();
        let canonical = match self {
            Key::Es256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                j["x"].as_str().unwrap(),
                j["y"].as_str().unwrap()
            ),
            Key::EdDsa(_) => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                j["x"].as_str().unwrap()
            ),
            Key::Rs256(_) => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                j["e"].as_str().unwrap(),
                j["n"].as_str().unwrap()
            ),
        };
        b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Key::Es256(k) => k.sign(&rng, input).unwrap().as_ref().to_vec(),
            Key::EdDsa(k) => k.sign(input).as_ref().to_vec(),
            Key::Rs256(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut sig)
                    .unwrap();
                sig
            }
        }
    }
}

/// A signed JWS of `header` and `claims` (any content: the tests break them on purpose).
fn jws(key: &Key, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

fn ath(token: &str) -> String {
    b64(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

fn jti() -> String {
    uuid_like()
}

fn uuid_like() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).unwrap();
    b64(&b)
}

/// A good proof's header and claims for `method` on `url` with `token`.
fn parts(key: &Key, method: &str, url: &str, token: &str) -> (Value, Value) {
    (
        json!({"typ": "dpop+jwt", "alg": key.alg(), "jwk": key.jwk()}),
        json!({"htm": method, "htu": url, "iat": now(), "jti": jti(), "ath": ath(token)}),
    )
}

fn bound_jwt(jkt: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &json!({"scope": "system/*.cruds", "exp": now() + 600, "client_id": "bound-app", "cnf": {"jkt": jkt}}),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

async fn server(bound_opaque_jkt: &str) -> TestServer {
    let mut tokens = HashMap::new();
    let scopes = vec![Scope::parse("system/*.cruds").unwrap()];
    tokens.insert(
        BEARER.to_string(),
        Grant {
            who: "bearer-app".into(),
            scopes: scopes.clone(),
            ..Grant::default()
        },
    );
    tokens.insert(
        BOUND_OPAQUE.to_string(),
        Grant {
            who: "bound-opaque".into(),
            scopes,
            jkt: Some(bound_opaque_jkt.to_string()),
            ..Grant::default()
        },
    );
    start(ServerConfig {
        auth: Some(AuthConfig {
            tokens,
            jwt: Some(JwtConfig::hs256(SECRET).unwrap()),
        }),
        dpop: Some(DpopConfig::default()),
        ..ServerConfig::default()
    })
    .await
}

async fn send(
    s: &TestServer,
    method: Method,
    path: &str,
    authorization: &str,
    proof: Option<&str>,
) -> Answer {
    let mut headers = vec![("authorization", authorization)];
    if let Some(p) = proof {
        headers.push(("dpop", p));
    }
    let body = (method == Method::POST).then(|| json!({"resourceType": "Patient"}));
    s.send(method, path, body.as_ref(), &headers).await
}

/// Asserts a DPoP refusal: 401, the RFC 9449 challenge, an OperationOutcome containing
/// `says`, and the token nowhere in the answer.
fn refused(a: &Answer, says: &str, token: &str) {
    assert_eq!(a.status, 401, "{}", a.text);
    let challenge = a.header("www-authenticate").unwrap_or("");
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains("error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    let why = a.outcome();
    assert!(why.contains(says), "expected {says:?} in {why:?}");
    assert!(!a.text.contains(token), "the token is quoted: {}", a.text);
}

struct Case {
    s: TestServer,
    key: Key,
    token: String,
    url: String,
}

async fn case() -> Case {
    let key = Key::es256();
    let s = server(&key.jkt()).await;
    let token = bound_jwt(&key.jkt());
    let url = format!("{}/Patient", s.base);
    Case { s, key, token, url }
}

impl Case {
    async fn get(&self, header: &Value, claims: &Value) -> Answer {
        let proof = jws(&self.key, header, claims);
        send(
            &self.s,
            Method::GET,
            "Patient",
            &format!("DPoP {}", self.token),
            Some(&proof),
        )
        .await
    }
}

#[tokio::test]
async fn a_good_proof_passes_for_every_key_type_and_method() {
    for key in [Key::es256(), Key::eddsa(), Key::rs256()] {
        let s = server(&key.jkt()).await;
        let token = bound_jwt(&key.jkt());
        for (method, path) in [(Method::GET, "Patient"), (Method::POST, "Patient")] {
            let url = format!("{}/{path}", s.base);
            let (h, c) = parts(&key, method.as_str(), &url, &token);
            let a = send(
                &s,
                method.clone(),
                path,
                &format!("DPoP {token}"),
                Some(&jws(&key, &h, &c)),
            )
            .await;
            assert!(
                a.status == 200 || a.status == 201,
                "{}: {}",
                key.alg(),
                a.text
            );
        }
        // The query is not part of htu; the scheme name is case-insensitive.
        let url = format!("{}/Patient", s.base);
        let (h, c) = parts(&key, "GET", &url, &token);
        let a = send(
            &s,
            Method::GET,
            "Patient?name=x",
            &format!("dpop {token}"),
            Some(&jws(&key, &h, &c)),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
}

#[tokio::test]
async fn a_token_file_entry_bound_with_jkt_needs_a_proof_and_plain_tokens_still_work() {
    let key = Key::es256();
    let s = server(&key.jkt()).await;
    let url = format!("{}/Patient", s.base);
    let (h, c) = parts(&key, "GET", &url, BOUND_OPAQUE);
    let a = send(
        &s,
        Method::GET,
        "Patient",
        &format!("DPoP {BOUND_OPAQUE}"),
        Some(&jws(&key, &h, &c)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = send(
        &s,
        Method::GET,
        "Patient",
        &format!("Bearer {BOUND_OPAQUE}"),
        None,
    )
    .await;
    refused(&a, "DPoP-bound", BOUND_OPAQUE);
    // An unbound token keeps working as Bearer, but not under the DPoP scheme.
    let a = send(
        &s,
        Method::GET,
        "Patient",
        &format!("Bearer {BEARER}"),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let (h, c) = parts(&key, "GET", &url, BEARER);
    let a = send(
        &s,
        Method::GET,
        "Patient",
        &format!("DPoP {BEARER}"),
        Some(&jws(&key, &h, &c)),
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(a.outcome().contains("not DPoP-bound"), "{}", a.text);
    assert!(
        a.header("www-authenticate")
            .is_some_and(|h| h.contains("error=\"invalid_token\"")),
        "{:?}",
        a.header("www-authenticate")
    );
}

#[tokio::test]
async fn a_bound_token_sent_as_bearer_is_refused() {
    let c = case().await;
    let (h, cl) = parts(&c.key, "GET", &c.url, &c.token);
    // Even with a good proof beside it.
    let a = send(
        &c.s,
        Method::GET,
        "Patient",
        &format!("Bearer {}", c.token),
        Some(&jws(&c.key, &h, &cl)),
    )
    .await;
    refused(&a, "not as Bearer", &c.token);
}

#[tokio::test]
async fn a_missing_proof_is_refused() {
    let c = case().await;
    let a = send(
        &c.s,
        Method::GET,
        "Patient",
        &format!("DPoP {}", c.token),
        None,
    )
    .await;
    refused(&a, "exactly one DPoP header", &c.token);
}

#[tokio::test]
async fn a_wrong_htm_is_refused() {
    let c = case().await;
    let (h, mut cl) = parts(&c.key, "GET", &c.url, &c.token);
    cl["htm"] = json!("POST");
    refused(&c.get(&h, &cl).await, "htm", &c.token);
}

#[tokio::test]
async fn a_wrong_htu_is_refused() {
    let c = case().await;
    let (h, mut cl) = parts(&c.key, "GET", &c.url, &c.token);
    cl["htu"] = json!(format!("{}/Observation", c.s.base));
    refused(&c.get(&h, &cl).await, "htu", &c.token);
    cl["htu"] = json!("https://another.example/fhir/Patient");
    cl["jti"] = json!(jti());
    refused(&c.get(&h, &cl).await, "htu", &c.token);
}

#[tokio::test]
async fn an_old_iat_is_refused() {
    let c = case().await;
    let (h, mut cl) = parts(&c.key, "GET", &c.url, &c.token);
    cl["iat"] = json!(now() - 3_600);
    refused(&c.get(&h, &cl).await, "old", &c.token);
}

#[tokio::test]
async fn a_future_iat_is_refused() {
    let c = case().await;
    let (h, mut cl) = parts(&c.key, "GET", &c.url, &c.token);
    cl["iat"] = json!(now() + 3_600);
    refused(&c.get(&h, &cl).await, "future", &c.token);
}

#[tokio::test]
async fn a_replayed_jti_is_refused() {
    let c = case().await;
    let (h, cl) = parts(&c.key, "GET", &c.url, &c.token);
    assert_eq!(c.get(&h, &cl).await.status, 200);
    // The same proof again, and a new proof reusing its jti.
    refused(&c.get(&h, &cl).await, "jti was used before", &c.token);
    let (h2, mut cl2) = parts(&c.key, "GET", &c.url, &c.token);
    cl2["jti"] = cl["jti"].clone();
    refused(&c.get(&h2, &cl2).await, "jti was used before", &c.token);
}

#[tokio::test]
async fn a_wrong_ath_is_refused() {
    let c = case().await;
    let (h, mut cl) = parts(&c.key, "GET", &c.url, &c.token);
    cl["ath"] = json!(ath("another-token"));
    refused(&c.get(&h, &cl).await, "ath", &c.token);
    let (h, mut cl) = parts(&c.key, "GET", &c.url, &c.token);
    cl.as_object_mut().unwrap().remove("ath");
    refused(&c.get(&h, &cl).await, "ath", &c.token);
}

#[tokio::test]
async fn a_proof_from_another_key_than_the_bound_one_is_refused() {
    let c = case().await;
    let other = Key::es256();
    let (h, cl) = parts(&other, "GET", &c.url, &c.token);
    let proof = jws(&other, &h, &cl);
    let a = send(
        &c.s,
        Method::GET,
        "Patient",
        &format!("DPoP {}", c.token),
        Some(&proof),
    )
    .await;
    refused(&a, "not the one the access token is bound to", &c.token);
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let c = case().await;
    // Signed by another key, but naming the bound key in its jwk header.
    let other = Key::es256();
    let (h, cl) = parts(&c.key, "GET", &c.url, &c.token);
    let proof = jws(&other, &h, &cl);
    let a = send(
        &c.s,
        Method::GET,
        "Patient",
        &format!("DPoP {}", c.token),
        Some(&proof),
    )
    .await;
    refused(&a, "signature does not verify", &c.token);
    // A good proof with its claims changed after signing.
    let (h, cl) = parts(&c.key, "GET", &c.url, &c.token);
    let good = jws(&c.key, &h, &cl);
    let mut changed = cl.clone();
    changed["htm"] = json!("DELETE");
    let mut pieces: Vec<String> = good.split('.').map(str::to_string).collect();
    pieces[1] = b64(changed.to_string().as_bytes());
    let a = send(
        &c.s,
        Method::GET,
        "Patient",
        &format!("DPoP {}", c.token),
        Some(&pieces.join(".")),
    )
    .await;
    refused(&a, "signature does not verify", &c.token);
}

#[tokio::test]
async fn a_wrong_typ_alg_or_a_private_key_in_the_header_is_refused() {
    let c = case().await;
    let (mut h, cl) = parts(&c.key, "GET", &c.url, &c.token);
    h["typ"] = json!("JWT");
    refused(&c.get(&h, &cl).await, "typ", &c.token);
    let (mut h, cl) = parts(&c.key, "GET", &c.url, &c.token);
    h["alg"] = json!("none");
    refused(&c.get(&h, &cl).await, "alg", &c.token);
    let (mut h, cl) = parts(&c.key, "GET", &c.url, &c.token);
    h["jwk"]["d"] = json!("c2VjcmV0");
    refused(&c.get(&h, &cl).await, "private key", &c.token);
    let a = send(
        &c.s,
        Method::GET,
        "Patient",
        &format!("DPoP {}", c.token),
        Some("not-a-jwt"),
    )
    .await;
    refused(&a, "not a signed JWT", &c.token);
}

#[tokio::test]
async fn with_dpop_off_a_bound_token_is_a_bearer_token_and_the_dpop_scheme_unknown() {
    let key = Key::es256();
    let token = bound_jwt(&key.jkt());
    let s = start(ServerConfig {
        auth: Some(AuthConfig {
            tokens: HashMap::new(),
            jwt: Some(JwtConfig::hs256(SECRET).unwrap()),
        }),
        ..ServerConfig::default()
    })
    .await;
    let a = send(&s, Method::GET, "Patient", &format!("Bearer {token}"), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = send(&s, Method::GET, "Patient", &format!("DPoP {token}"), None).await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert_eq!(
        a.header("www-authenticate"),
        Some("Bearer realm=\"healthanalyzer\"")
    );
}

#[tokio::test]
async fn required_binding_refuses_plain_bearer_tokens_and_a_401_offers_both_schemes() {
    let key = Key::es256();
    let mut dpop = DpopConfig::default();
    dpop.require_bound_tokens = true;
    let mut tokens = HashMap::new();
    tokens.insert(
        BEARER.to_string(),
        Grant {
            who: "bearer-app".into(),
            scopes: vec![Scope::parse("system/*.cruds").unwrap()],
            ..Grant::default()
        },
    );
    let s = start(ServerConfig {
        auth: Some(AuthConfig {
            tokens,
            jwt: Some(JwtConfig::hs256(SECRET).unwrap()),
        }),
        dpop: Some(dpop),
        ..ServerConfig::default()
    })
    .await;
    let a = send(
        &s,
        Method::GET,
        "Patient",
        &format!("Bearer {BEARER}"),
        None,
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(a.outcome().contains("only DPoP-bound"), "{}", a.text);
    let token = bound_jwt(&key.jkt());
    let url = format!("{}/Patient", s.base);
    let (h, c) = parts(&key, "GET", &url, &token);
    let a = send(
        &s,
        Method::GET,
        "Patient",
        &format!("DPoP {token}"),
        Some(&jws(&key, &h, &c)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = s.get("Patient").await;
    assert_eq!(a.status, 401);
    let challenges: Vec<&str> = a
        .headers
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Bearer"))
            && challenges.iter().any(|c| c.starts_with("DPoP algs=")),
        "{challenges:?}"
    );
}
