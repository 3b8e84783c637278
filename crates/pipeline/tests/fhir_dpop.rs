//! The FHIR source's `dpop_key`: a P-256 key file beside the configuration turns DPoP on; a
//! missing or unusable one is a configuration error naming the file.

use healthanalyzer_pipeline::{Config, Registry};

/// A throwaway test key (`openssl ecparam -name prime256v1 -genkey -noout`).
const KEY: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIIoz1OWykhMzwZMtN9zhNWq6RXfWFwFXDt1CPxliq1XEoAoGCCqGSM49
AwEHoUQDQgAE/9lkCyPsCKIF3s10kBxFfWrB+vLl1hFCyAJ1ksJVZ/awIiFXCvFH
BoDw8Dpkw+oJ64YM3QIm5DqkH/tr/L6Z2g==
-----END EC PRIVATE KEY-----
";

fn build(dir: &std::path::Path, key: &str) -> Result<usize, String> {
    let text = format!(
        "[[source]]\nid = \"helseid\"\nkind = \"fhir\"\nbase_url = \"https://fhir.example/fhir\"\ntoken = \"t\"\ndpop_key = \"{key}\"\n"
    );
    let path = dir.join("healthanalyzer.toml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let c = Config::load(&path).map_err(|e| e.to_string())?;
    Registry::builtin()
        .build_all(&c)
        .map(|s| s.len())
        .map_err(|e| e.to_string())
}

#[test]
fn a_dpop_key_is_read_relative_to_the_configuration() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("dpop.pem"), KEY).expect("key");
    assert_eq!(build(dir.path(), "dpop.pem"), Ok(1));
    let e = build(dir.path(), "missing.pem").expect_err("missing");
    assert!(e.contains("dpop_key") && e.contains("missing.pem"), "{e}");
    std::fs::write(
        dir.path().join("public.pem"),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .expect("write");
    let e = build(dir.path(), "public.pem").expect_err("a public key");
    assert!(e.contains("EC P-256 private key"), "{e}");
}
