//! TLS against a real server: `.ci/start-postgres` runs one with `ssl=on`, a certificate for
//! `localhost` and `127.0.0.1`, and its CA in `HEALTHANALYZER_POSTGRES_CA`. Plain connections stay
//! allowed, so each mode can be checked on the server's side (`pg_stat_ssl`).

mod common;

use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicU64, Ordering};

use healthanalyzer_store::{MeasurementStore, testkit};
use healthanalyzer_store_postgres::{PostgresError, PostgresStore, SslMode, TlsOptions};
use tokio_postgres::NoTls;

/// The server's URL and its CA, or `None` when either is missing (the test is skipped).
fn server(test: &str) -> Option<(String, String)> {
    let url = common::url(test)?;
    let ca = common::ca(test)?;
    Some((url, ca))
}

/// `url` with more query parameters.
fn with(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// `url` with its host replaced (the user, port, path and query kept).
fn with_host(url: &str, host: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((u, hp)) => (format!("{u}@"), hp),
        None => (String::new(), authority),
    };
    let port = host_port
        .rsplit_once(':')
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    format!("{scheme}://{user}{host}{port}{tail}")
}

/// The IP address the URL's host resolves to.
fn address_of(url: &str) -> String {
    let config: tokio_postgres::Config = url.parse().expect("a URL tokio-postgres reads");
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("a TCP host, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    (host.as_str(), port)
        .to_socket_addrs()
        .expect("resolve")
        .next()
        .expect("an address")
        .ip()
        .to_string()
}

/// A name no other test's sessions carry, for finding this store's sessions on the server.
fn application_name(label: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "ha_tls_{label}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether each open session named `name` is encrypted, as the server sees it.
async fn sessions_encrypted(plain_url: &str, name: &str) -> Vec<bool> {
    let (client, conn) = tokio_postgres::connect(plain_url, NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(conn);
    client
        .query(
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
             WHERE a.application_name = $1",
            &[&name],
        )
        .await
        .expect("pg_stat_ssl")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Connects a store with `params`, writes a measurement and reads it back, and asserts how its
/// sessions are encrypted on the server.
async fn round_trip(url: &str, host: Option<&str>, params: &str, encrypted: bool) {
    let name = application_name("rt");
    let mut store_url = with(url, &format!("{params}&application_name={name}"));
    if let Some(host) = host {
        store_url = with_host(&store_url, host);
    }
    let store = PostgresStore::connect(&store_url)
        .await
        .unwrap_or_else(|e| panic!("connect with {params} (host {host:?}): {e:?}"));
    let m = testkit::heart_rate("tls", &name, 1, 61);
    store
        .write(std::slice::from_ref(&m), None)
        .await
        .expect("write");
    assert_eq!(store.get(&m.id).await.expect("read"), Some(m), "{params}");
    // The store's own sessions, as the server sees them (the pool keeps them open).
    let sessions = sessions_encrypted(url, &name).await;
    assert!(!sessions.is_empty(), "{params}: the store has no session");
    assert!(
        sessions.iter().all(|s| *s == encrypted),
        "{params} (host {host:?}): sessions encrypted {sessions:?}, want {encrypted}"
    );
    drop(store);
}

/// Every error of the chain, joined as `{:#}` would.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(err) = next {
        out.push_str(": ");
        out.push_str(&err.to_string());
        next = err.source();
    }
    out
}

/// A PEM file under the system's temporary directory, removed on drop.
struct TempPem(std::path::PathBuf);

impl TempPem {
    fn new(label: &str, pem: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "ha-pg-{label}-{}-{}.pem",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, pem).expect("write the PEM file");
        Self(path)
    }
}

impl Drop for TempPem {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A CA the server's certificate was not signed by (self-signed, for `localhost` too).
fn wrong_ca() -> TempPem {
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a CA");
    TempPem::new("wrong-ca", &ca.cert.pem())
}

#[tokio::test]
async fn verify_full_with_the_servers_ca_is_encrypted() {
    let Some((url, ca)) = server("verify_full_with_the_servers_ca_is_encrypted") else {
        return;
    };
    let url = common::fresh_schema(&url, "tls_full").await;
    let verify = |mode: &str| format!("sslmode={mode}&sslrootcert={ca}");
    // By name (the certificate's DNS name) and by address (its IP address name).
    round_trip(&url, Some("localhost"), &verify("verify-full"), true).await;
    round_trip(&url, Some("127.0.0.1"), &verify("verify-full"), true).await;
    round_trip(&url, Some("localhost"), &verify("verify-ca"), true).await;
}

#[tokio::test]
async fn each_sslmode_encrypts_as_libpq_does() {
    let Some((url, ca)) = server("each_sslmode_encrypts_as_libpq_does") else {
        return;
    };
    let url = common::fresh_schema(&url, "tls_modes").await;
    round_trip(&url, None, "sslmode=disable", false).await;
    round_trip(&url, None, "sslmode=require", true).await;
    round_trip(&url, None, "sslmode=prefer", true).await;
    // No sslmode: libpq's default, prefer; the server offers TLS.
    round_trip(&url, None, "connect_timeout=10", true).await;
    // `require` with a root certificate checks the chain, as libpq; the right CA passes.
    round_trip(
        &url,
        None,
        &format!("sslmode=require&sslrootcert={ca}"),
        true,
    )
    .await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let Some((url, _)) = server("a_certificate_from_another_ca_is_refused") else {
        return;
    };
    let url = common::fresh_schema(&url, "tls_wrong_ca").await;
    let wrong = wrong_ca();
    let wrong = wrong.0.display();
    for mode in ["verify-full", "verify-ca", "require"] {
        let name = application_name("wrong");
        let store_url = with_host(
            &with(
                &url,
                &format!("sslmode={mode}&sslrootcert={wrong}&application_name={name}"),
            ),
            "localhost",
        );
        let err = PostgresStore::connect(&store_url)
            .await
            .expect_err("a certificate the CA did not sign");
        let text = chain(&err);
        assert!(
            matches!(err, PostgresError::Certificate { .. }),
            "{mode}: {text}"
        );
        assert!(
            err.to_string()
                .contains("certificate could not be verified")
                && err.to_string().contains(&format!("sslmode={mode}")),
            "{mode}: {text}"
        );
        // rustls' reason is in the chain, once.
        assert_eq!(
            text.matches("invalid peer certificate").count(),
            1,
            "{mode}: {text}"
        );
        // Through the store's portable error (what `open_store` returns): not worth retrying.
        let store_err = healthanalyzer_store::Error::from(err);
        assert!(!store_err.is_retryable(), "{mode}: {store_err}");
        assert!(
            chain(&store_err).contains("certificate could not be verified"),
            "{store_err}"
        );
        assert!(
            sessions_encrypted(&url, &name).await.is_empty(),
            "{mode}: nothing may have connected"
        );
    }
    // `prefer` with that CA: the check fails, so the session falls back to plain, as libpq's.
    round_trip(
        &url,
        Some("localhost"),
        &format!("sslmode=prefer&sslrootcert={wrong}"),
        false,
    )
    .await;
}

#[tokio::test]
async fn verify_full_checks_the_host_name() {
    let Some((url, ca)) = server("verify_full_checks_the_host_name") else {
        return;
    };
    let url = common::fresh_schema(&url, "tls_name").await;
    // Connect to the server's address while naming a host its certificate is not for.
    let address = address_of(&url);
    let other = format!("sslrootcert={ca}&hostaddr={address}");
    let misnamed = |mode: &str| {
        with_host(
            &with(&url, &format!("sslmode={mode}&{other}")),
            "db.invalid",
        )
    };
    let err = PostgresStore::connect(&misnamed("verify-full"))
        .await
        .expect_err("the certificate is not for db.invalid");
    let text = chain(&err);
    assert!(matches!(err, PostgresError::Certificate { .. }), "{text}");
    assert!(text.contains("db.invalid"), "{text}");
    // verify-ca checks the chain only: the same connection passes.
    round_trip(
        &url,
        Some("db.invalid"),
        &format!("sslmode=verify-ca&{other}"),
        true,
    )
    .await;
}

#[tokio::test]
async fn verify_full_without_sslrootcert_uses_the_system_roots() {
    let Some((url, _)) = server("verify_full_without_sslrootcert_uses_the_system_roots") else {
        return;
    };
    let url = with_host(&with(&url, "sslmode=verify-full"), "localhost");
    let err = PostgresStore::connect(&url)
        .await
        .expect_err("the test CA is no system root");
    let text = chain(&err);
    // Either the system has roots (and the test CA is not among them), or it has none.
    match err {
        PostgresError::Certificate { .. } => {
            assert!(text.contains("invalid peer certificate"), "{text}");
        }
        PostgresError::Tls { .. } => assert!(text.contains("sslrootcert"), "{text}"),
        _ => panic!("neither a certificate nor a TLS setup error: {text}"),
    }
}

#[tokio::test]
async fn connect_with_tls_takes_the_options_as_given() {
    let Some((url, ca)) = server("connect_with_tls_takes_the_options_as_given") else {
        return;
    };
    let url = common::fresh_schema(&url, "tls_api").await;
    let name = application_name("api");
    let mut config: tokio_postgres::Config = with(&url, &format!("application_name={name}"))
        .parse()
        .expect("config");
    // The configuration's own mode is not used: the options are.
    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let tls = TlsOptions::new(SslMode::VerifyFull).with_root_cert_file(&ca);
    let store = PostgresStore::connect_with_tls(config, 2, tls)
        .await
        .expect("connect");
    let sessions = sessions_encrypted(&url, &name).await;
    assert!(
        !sessions.is_empty() && sessions.iter().all(|s| *s),
        "{sessions:?}"
    );
    drop(store);
}

#[tokio::test]
async fn bad_tls_settings_are_clear_errors() {
    // No server is needed: these fail before connecting.
    for (url, says) in [
        (
            "postgres://u:secret@127.0.0.1:1/db?sslmode=verify",
            "disable, prefer, require, verify-ca, verify-full",
        ),
        (
            "postgres://u:secret@127.0.0.1:1/db?sslmode=require&sslrootcert=system",
            "sslmode=verify-full",
        ),
    ] {
        let err = PostgresStore::connect(url).await.expect_err(url);
        let text = err.to_string();
        assert!(matches!(err, PostgresError::Url { .. }), "{text}");
        assert!(text.contains(says) && !text.contains("secret"), "{text}");
    }
    let missing = std::env::temp_dir().join("ha-pg-no-such-ca.pem");
    let err = PostgresStore::connect(&format!(
        "postgres://u@127.0.0.1:1/db?sslmode=verify-full&sslrootcert={}",
        missing.display()
    ))
    .await
    .expect_err("no such file");
    assert!(matches!(err, PostgresError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("ha-pg-no-such-ca.pem"), "{err}");
}
