//! The PostgreSQL server under test: `HEALTHANALYZER_POSTGRES_URL` (see `.ci/start-postgres`).
//! Without it the tests print why they were skipped, and fail instead when
//! `HEALTHANALYZER_REQUIRE_POSTGRES=1` (CI sets it).

#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::NoTls;

/// The server's URL, or `None` (with a notice) when none is configured.
pub(crate) fn url(test: &str) -> Option<String> {
    match std::env::var("HEALTHANALYZER_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("HEALTHANALYZER_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{test}: HEALTHANALYZER_REQUIRE_POSTGRES=1 but HEALTHANALYZER_POSTGRES_URL is not set"
            );
            // Straight to the process's stderr: libtest captures `eprintln!`, and a skip must show.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no PostgreSQL server (HEALTHANALYZER_POSTGRES_URL unset). Start one with `eval \"$(.ci/start-postgres)\"` to run it."
            );
            None
        }
    }
}

/// A fresh, empty PostgreSQL schema on the server, and a URL whose `search_path` points at it.
pub(crate) async fn fresh_schema(url: &str, label: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "t_{label}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .await
        .expect("create schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{name}")
}

/// The PEM file of the CA that signed the server's TLS certificate
/// (`HEALTHANALYZER_POSTGRES_CA`, exported by `.ci/start-postgres`), or `None` (with a notice)
/// when none is configured; a failure instead when `HEALTHANALYZER_REQUIRE_POSTGRES=1`.
pub(crate) fn ca(test: &str) -> Option<String> {
    match std::env::var("HEALTHANALYZER_POSTGRES_CA") {
        Ok(ca) if !ca.is_empty() => Some(ca),
        _ => {
            assert!(
                std::env::var("HEALTHANALYZER_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{test}: HEALTHANALYZER_REQUIRE_POSTGRES=1 but HEALTHANALYZER_POSTGRES_CA (the CA of the server's TLS certificate) is not set"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no CA for the server's TLS certificate (HEALTHANALYZER_POSTGRES_CA unset). `eval \"$(.ci/start-postgres)\"` sets it."
            );
            None
        }
    }
}
