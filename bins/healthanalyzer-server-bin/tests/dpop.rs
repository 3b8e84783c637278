//! The binary's `--dpop` flags: a token file entry bound with `jkt=` passes with a proof and
//! is refused as Bearer; `--dpop` without authentication exits 2.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use healthanalyzer_source::http::reqwest::Url;
use healthanalyzer_source_fhir::DpopKey;

const BOUND: &str = "bound-0123456789abcdef0123";
const PLAIN: &str = "plain-0123456789abcdef0123";

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_bound_token_needs_its_proof_and_plain_tokens_keep_working() {
    let key = DpopKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!(
            "helseid-app {BOUND} system/*.cruds jkt={}\nplain-app {PLAIN} system/*.rs\n",
            key.thumbprint()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_healthanalyzer-server"))
        .args([
            "--db",
            "memory:",
            "--listen",
            "127.0.0.1:0",
            "--no-dashboard",
        ])
        .args(["--token-file", &tokens.display().to_string()])
        .args(["--dpop", "--dpop-window-secs", "30"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let running = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut log = Vec::new();
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no address announced: {log:#?}"));
        if let Some(rest) = line.split("FHIR API at ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        log.push(line);
    };
    assert!(
        log.iter().any(|l| l.contains("--dpop without --base-url")),
        "{log:#?}"
    );
    healthanalyzer_source::http::install_crypto_provider();
    let http = healthanalyzer_source::http::reqwest::Client::new();
    let url = Url::parse(&format!("{base}/Patient")).unwrap();
    let proof = key.proof("GET", &url, Some(BOUND), None).unwrap();
    let ok = http
        .get(url.clone())
        .header("authorization", format!("DPoP {BOUND}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let bearer = http
        .get(url.clone())
        .bearer_auth(BOUND)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 401);
    let challenge = bearer
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        challenge.contains("error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    let plain = http.get(url).bearer_auth(PLAIN).send().await.unwrap();
    assert_eq!(plain.status().as_u16(), 200);
    drop(running);
}

#[test]
fn dpop_without_authentication_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_healthanalyzer-server"))
        .args(["--db", "memory:", "--listen", "127.0.0.1:0", "--dpop"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--dpop needs authentication"), "{err}");
}
