//! Authentication and SMART scopes: every endpoint with no token, a wrong token, an expired
//! token and a token for another patient; scope misses; HS256 and RS256 JWTs and token files.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::{TestServer, bp, start, weight};
use healthanalyzer_server::{AuthConfig, Grant, JwtConfig, Scope, ServerConfig};
use jsonwebtoken::{EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-for-hs256";
const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789abcdef";

fn jwt(claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn grant(who: &str, scopes: &[&str]) -> Grant {
    Grant {
        who: who.into(),
        scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
        ..Grant::default()
    }
}

async fn server() -> TestServer {
    let mut tokens = HashMap::new();
    tokens.insert(ADMIN.to_string(), grant("admin", &["system/*.cruds"]));
    tokens.insert(
        READER.to_string(),
        grant("reader", &["user/Observation.rs"]),
    );
    start(ServerConfig {
        auth: Some(AuthConfig {
            tokens,
            jwt: Some(JwtConfig::hs256(SECRET).expect("secret")),
        }),
        ..ServerConfig::default()
    })
    .await
}

async fn as_token(
    s: &TestServer,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> common::Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    s.send(method, path, body, &headers).await
}

struct World {
    a: String,
    b: String,
    oa: String,
    ob: String,
}

async fn world(s: &TestServer) -> World {
    let mut ids = Vec::new();
    for family in ["Anne", "Bert"] {
        let p = json!({"resourceType": "Patient", "name": [{"family": family}]});
        let a = as_token(s, Some(ADMIN), Method::POST, "Patient", Some(&p)).await;
        assert_eq!(a.status, 201, "{}", a.text);
        ids.push(a.body["id"].as_str().unwrap().to_string());
    }
    let mut obs = Vec::new();
    for pid in &ids {
        let a = as_token(
            s,
            Some(ADMIN),
            Method::POST,
            "Observation",
            Some(&weight(pid, "2024-01-01T08:00:00Z", 70.0)),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.text);
        obs.push(a.body["id"].as_str().unwrap().to_string());
    }
    World {
        a: ids[0].clone(),
        b: ids[1].clone(),
        oa: obs[0].clone(),
        ob: obs[1].clone(),
    }
}

/// Every endpoint, with a body where it takes one.
fn endpoints(w: &World) -> Vec<(Method, String, Option<Value>)> {
    let mut read_back = weight(&w.a, "2024-01-01T08:00:00Z", 71.0);
    read_back["id"] = json!(w.oa);
    let mut patient = json!({"resourceType": "Patient", "name": [{"family": "Anne"}]});
    patient["id"] = json!(w.a);
    vec![
        (Method::GET, format!("Patient/{}", w.a), None),
        (Method::GET, "Patient?name=anne".into(), None),
        (
            Method::POST,
            "Patient".into(),
            Some(json!({"resourceType": "Patient"})),
        ),
        (Method::PUT, format!("Patient/{}", w.a), Some(patient)),
        (Method::DELETE, format!("Patient/{}", w.a), None),
        (Method::GET, format!("Observation/{}", w.oa), None),
        (Method::GET, format!("Observation?patient={}", w.a), None),
        (
            Method::POST,
            "Observation".into(),
            Some(weight(&w.a, "2024-01-02T08:00:00Z", 70.0)),
        ),
        (
            Method::PUT,
            format!("Observation/{}", w.oa),
            Some(read_back),
        ),
        (Method::DELETE, format!("Observation/{}", w.oa), None),
        (
            Method::GET,
            format!("Observation/$lastn?patient={}", w.a),
            None,
        ),
        (
            Method::GET,
            format!(
                "Observation/$stats?patient={}&code=29463-7&statistic=average",
                w.a
            ),
            None,
        ),
        (
            Method::POST,
            String::new(),
            Some(json!({"resourceType": "Bundle", "type": "batch", "entry": []})),
        ),
    ]
}

#[tokio::test]
async fn no_token_a_wrong_token_and_an_expired_token_get_401_everywhere() {
    let s = server().await;
    let w = world(&s).await;
    let expired =
        jwt(json!({"scope": "system/*.cruds", "exp": now() - 3_600, "client_id": "late"}));
    let forged = jsonwebtoken::encode(
        &Header::default(),
        &json!({"scope": "system/*.cruds", "exp": now() + 3_600}),
        &EncodingKey::from_secret(b"another-secret-that-is-long-enough-too"),
    )
    .unwrap();
    for (label, token) in [
        ("no token", None),
        ("unknown token", Some("not-a-token-we-issued-0000")),
        ("expired JWT", Some(expired.as_str())),
        ("JWT signed with another key", Some(forged.as_str())),
        ("not a JWT", Some("abc.def.ghi")),
    ] {
        for (method, path, body) in endpoints(&w) {
            let a = as_token(&s, token, method.clone(), &path, body.as_ref()).await;
            assert_eq!(a.status, 401, "{label}: {method} {path}: {}", a.text);
            let why = a.outcome();
            assert!(
                a.header("www-authenticate")
                    .is_some_and(|h| h.starts_with("Bearer")),
                "{label}"
            );
            if label == "expired JWT" {
                assert!(why.contains("expired"), "{why}");
            }
        }
    }
    // The CapabilityStatement and the health check stay open.
    assert_eq!(
        as_token(&s, None, Method::GET, "metadata", None)
            .await
            .status,
        200
    );
    // Nothing was changed by the refused requests.
    let a = as_token(
        &s,
        Some(ADMIN),
        Method::GET,
        &format!("Observation/{}", w.oa),
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.body["valueQuantity"]["value"].as_f64()),
        (200, Some(70.0))
    );
}

#[tokio::test]
async fn a_patient_token_sees_and_writes_only_its_own_compartment() {
    let s = server().await;
    let w = world(&s).await;
    let anne = jwt(
        json!({"scope": "patient/*.cruds", "patient": w.a, "exp": now() + 3_600, "client_id": "anne-app"}),
    );
    let t = Some(anne.as_str());
    // Bert's things: 403 for every interaction.
    let mut bert_obs = weight(&w.b, "2024-01-01T08:00:00Z", 99.0);
    bert_obs["id"] = json!(w.ob);
    let mut bert = json!({"resourceType": "Patient", "name": [{"family": "Bert"}]});
    bert["id"] = json!(w.b);
    for (method, path, body) in [
        (Method::GET, format!("Patient/{}", w.b), None),
        (Method::PUT, format!("Patient/{}", w.b), Some(bert)),
        (Method::DELETE, format!("Patient/{}", w.b), None),
        (
            Method::POST,
            "Patient".to_string(),
            Some(json!({"resourceType": "Patient"})),
        ),
        (Method::GET, format!("Observation/{}", w.ob), None),
        (Method::PUT, format!("Observation/{}", w.ob), Some(bert_obs)),
        (Method::DELETE, format!("Observation/{}", w.ob), None),
        (Method::GET, format!("Observation?patient={}", w.b), None),
        (
            Method::GET,
            format!("Observation?subject=Patient/{}", w.b),
            None,
        ),
        (
            Method::GET,
            format!("Observation?subject:Patient={}", w.b),
            None,
        ),
        (
            Method::POST,
            "Observation".to_string(),
            Some(weight(&w.b, "2024-01-03T08:00:00Z", 80.0)),
        ),
        (
            Method::GET,
            format!("Observation/$lastn?patient={}", w.b),
            None,
        ),
        (
            Method::GET,
            format!(
                "Observation/$stats?patient={}&code=29463-7&statistic=average",
                w.b
            ),
            None,
        ),
        (
            Method::POST,
            String::new(),
            Some(
                json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": weight(&w.b, "2024-01-04T08:00:00Z", 80.0), "request": {"method": "POST", "url": "Observation"}}]}),
            ),
        ),
        (
            Method::POST,
            String::new(),
            Some(
                json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": format!("Observation/{}", w.ob)}}]}),
            ),
        ),
    ] {
        let a = as_token(&s, t, method.clone(), &path, body.as_ref()).await;
        assert_eq!(a.status, 403, "{method} {path}: {}", a.text);
        a.outcome();
    }
    // A batch runs each entry under the same token.
    let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Observation/{}", w.ob)}},
        {"request": {"method": "GET", "url": format!("Observation/{}", w.oa)}}]});
    let a = as_token(&s, t, Method::POST, "", Some(&b)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["entry"][0]["response"]["status"], "403 Forbidden");
    assert_eq!(a.body["entry"][1]["response"]["status"], "200 OK");
    // Bert's data is untouched.
    let a = as_token(
        &s,
        Some(ADMIN),
        Method::GET,
        &format!("Observation?patient={}", w.b),
        None,
    )
    .await;
    assert_eq!(a.body["total"], 1);
    assert_eq!(
        a.body["entry"][0]["resource"]["valueQuantity"]["value"],
        70.0
    );

    // Her own: allowed, and searches without a patient are limited to her.
    assert_eq!(
        as_token(&s, t, Method::GET, &format!("Patient/{}", w.a), None)
            .await
            .status,
        200
    );
    let a = as_token(&s, t, Method::GET, "Observation", None).await;
    assert_eq!(a.status, 200);
    let ids: Vec<&str> = a.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [w.oa.as_str()]);
    let a = as_token(&s, t, Method::GET, "Patient", None).await;
    assert_eq!(a.body["total"], 1, "Patient search shows only her");
    let a = as_token(
        &s,
        t,
        Method::POST,
        "Observation",
        Some(&bp(&w.a, "2024-01-05T08:00:00Z", 120, 80)),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let a = as_token(&s, t, Method::GET, "Observation/$lastn?max=5", None).await;
    assert_eq!(a.body["entry"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn scopes_limit_interactions_and_resource_types() {
    let s = server().await;
    let w = world(&s).await;
    let r = Some(READER);
    assert_eq!(
        as_token(&s, r, Method::GET, &format!("Observation/{}", w.oa), None)
            .await
            .status,
        200
    );
    assert_eq!(
        as_token(
            &s,
            r,
            Method::GET,
            &format!("Observation?patient={}", w.b),
            None
        )
        .await
        .status,
        200
    );
    for (method, path, body) in [
        (
            Method::POST,
            "Observation".to_string(),
            Some(weight(&w.a, "2024-01-02T08:00:00Z", 70.0)),
        ),
        (Method::DELETE, format!("Observation/{}", w.oa), None),
        (Method::GET, format!("Patient/{}", w.a), None),
        (
            Method::POST,
            String::new(),
            Some(
                json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": weight(&w.a, "2024-01-04T08:00:00Z", 80.0), "request": {"method": "POST", "url": "Observation"}}]}),
            ),
        ),
    ] {
        let a = as_token(&s, r, method.clone(), &path, body.as_ref()).await;
        assert_eq!(a.status, 403, "{method} {path}: {}", a.text);
        assert!(a.outcome().contains("scopes"), "{}", a.text);
    }
    // A v1 scope in a JWT.
    let v1 = jwt(json!({"scope": "user/Patient.read user/Observation.write", "exp": now() + 600}));
    assert_eq!(
        as_token(
            &s,
            Some(&v1),
            Method::GET,
            &format!("Patient/{}", w.b),
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        as_token(
            &s,
            Some(&v1),
            Method::GET,
            &format!("Observation/{}", w.oa),
            None
        )
        .await
        .status,
        403
    );
    let a = as_token(
        &s,
        Some(&v1),
        Method::POST,
        "Observation",
        Some(&weight(&w.b, "2024-01-06T08:00:00Z", 70.0)),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    // A patient scope without a patient claim grants nothing.
    let orphan = jwt(json!({"scope": "patient/*.rs", "exp": now() + 600}));
    assert_eq!(
        as_token(
            &s,
            Some(&orphan),
            Method::GET,
            &format!("Observation/{}", w.oa),
            None
        )
        .await
        .status,
        403
    );
}

#[tokio::test]
async fn rs256_tokens_from_a_public_key() {
    let public = include_bytes!("keys/test-rs256-public.pem");
    let private = include_bytes!("keys/test-rs256-private.pem");
    let s = start(ServerConfig {
        auth: Some(AuthConfig {
            tokens: HashMap::new(),
            jwt: Some(JwtConfig::rs256_pem(public).unwrap()),
        }),
        ..ServerConfig::default()
    })
    .await;
    let good = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({"scope": "system/*.cruds", "exp": now() + 600}),
        &EncodingKey::from_rsa_pem(private).unwrap(),
    )
    .unwrap();
    let a = as_token(&s, Some(&good), Method::GET, "Patient", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // An HS256 token (signed with the public key's bytes as the secret: the classic attack)
    // is refused.
    let confused = jsonwebtoken::encode(
        &Header::default(),
        &json!({"scope": "system/*.cruds", "exp": now() + 600}),
        &EncodingKey::from_secret(public),
    )
    .unwrap();
    assert_eq!(
        as_token(&s, Some(&confused), Method::GET, "Patient", None)
            .await
            .status,
        401
    );
    assert!(JwtConfig::rs256_pem(b"not a key").is_err());
}

#[tokio::test]
async fn context_claims_give_the_patient_and_the_episode_of_care() {
    let auth = AuthConfig {
        tokens: HashMap::new(),
        jwt: Some(JwtConfig::hs256(SECRET).unwrap()),
    };
    // Plain claims.
    let plain = jwt(json!({"scope": "patient/*.rs", "patient": "p1",
        "episode_of_care": "EpisodeOfCare/39765", "exp": now() + 600}));
    let g = auth.grant(&plain).unwrap();
    assert_eq!(g.patient.as_deref(), Some("p1"));
    assert_eq!(g.episode_of_care.as_deref(), Some("EpisodeOfCare/39765"));
    // FUT's context claim (as in the Danish eHealth tokens).
    let fut = jwt(
        json!({"user_id": "u", "user_type": "PATIENT", "exp": now() + 600,
        "context": {"episode_of_care_id": "https://careplan.example/fhir/EpisodeOfCare/32584",
                    "patient_id": "https://patient.example/fhir/Patient/75288", "team_on_eoc": false}}),
    );
    let g = auth.grant(&fut).unwrap();
    assert_eq!(g.patient.as_deref(), Some("75288"));
    assert_eq!(
        g.episode_of_care.as_deref(),
        Some("https://careplan.example/fhir/EpisodeOfCare/32584")
    );
    assert!(g.allows_episode_of_care("EpisodeOfCare/32584"));
    assert!(!g.allows_episode_of_care("EpisodeOfCare/39765"));
    // The plain claims win over the context.
    let both = jwt(
        json!({"patient": "p1", "episode_of_care": "EpisodeOfCare/1", "exp": now() + 600,
        "context": {"episode_of_care_id": "EpisodeOfCare/2", "patient_id": "Patient/p2"}}),
    );
    let g = auth.grant(&both).unwrap();
    assert_eq!(
        (g.patient.as_deref(), g.episode_of_care.as_deref()),
        (Some("p1"), Some("EpisodeOfCare/1"))
    );
    // No context: neither.
    let none = jwt(json!({"scope": "system/*.rs", "exp": now() + 600}));
    let g = auth.grant(&none).unwrap();
    assert_eq!((g.patient, g.episode_of_care, g.jkt), (None, None, None));
    let bound = jwt(
        json!({"scope": "system/*.rs", "exp": now() + 600, "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
    );
    assert_eq!(
        auth.grant(&bound).unwrap().jkt.as_deref(),
        Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    );
    assert!(auth.grant("not-a-token-we-issued-0000").is_none());

    // Over HTTP: a FUT context patient limits a patient-scoped token to that compartment.
    let s = server().await;
    let w = world(&s).await;
    let t = jwt(json!({"scope": "patient/*.rs", "exp": now() + 600,
        "context": {"patient_id": format!("https://patient.example/fhir/Patient/{}", w.a),
                    "episode_of_care_id": "https://careplan.example/fhir/EpisodeOfCare/1"}}));
    let a = as_token(&s, Some(&t), Method::GET, "Observation", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let ids: Vec<&str> = a.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [w.oa.as_str()]);
    let a = as_token(
        &s,
        Some(&t),
        Method::GET,
        &format!("Observation/{}", w.ob),
        None,
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.text);
}

#[test]
fn token_files_are_read_and_bad_lines_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("tokens");
    std::fs::write(
        &good,
        "# name token scopes\ndashboard 0123456789abcdef0123 user/*.rs\nanne fedcba98765432100000 patient/*.cruds patient=p1 episode_of_care=EpisodeOfCare/7\n",
    )
    .unwrap();
    let cfg = AuthConfig::from_token_file(&good).unwrap();
    assert_eq!(cfg.tokens.len(), 2);
    assert_eq!(
        cfg.tokens["fedcba98765432100000"].patient.as_deref(),
        Some("p1")
    );
    assert_eq!(
        cfg.tokens["fedcba98765432100000"]
            .episode_of_care
            .as_deref(),
        Some("EpisodeOfCare/7")
    );
    assert_eq!(cfg.tokens["0123456789abcdef0123"].episode_of_care, None);
    for (text, why) in [
        ("x short user/*.rs\n", "shorter than 16"),
        ("x 0123456789abcdef0123 admin/*\n", "not a SMART scope"),
        ("x 0123456789abcdef0123 patient/*.rs\n", "patient=ID"),
        ("lonely\n", "NAME TOKEN"),
    ] {
        let p = dir.path().join("bad");
        std::fs::write(&p, text).unwrap();
        let e = AuthConfig::from_token_file(&p).unwrap_err().to_string();
        assert!(e.contains(why) && e.contains("bad:1"), "{text}: {e}");
    }
}
