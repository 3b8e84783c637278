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

/// The schema as a build of `version` (2 or 3) left it, frozen here (the migrations are the
/// crate's; these are what older releases wrote), at `version` in the meta table.
pub(crate) async fn old_schema(client: &tokio_postgres::Client, version: i64) {
    assert!((2..=3).contains(&version));
    client
        .batch_execute(
            r#"
            CREATE TABLE healthanalyzer_meta (key text PRIMARY KEY, value text NOT NULL);
            INSERT INTO healthanalyzer_meta VALUES ('application', 'health-analyzer'), ('schema_version', '0');
            CREATE TABLE measurement (
                subject text NOT NULL, id uuid NOT NULL, kind text NOT NULL,
                t_s bigint NOT NULL, t_ns int NOT NULL, body text NOT NULL,
                version bigint NOT NULL DEFAULT 1,
                PRIMARY KEY (subject, id));
            CREATE INDEX measurement_id ON measurement (id);
            CREATE INDEX measurement_subject_kind_time ON measurement (subject, kind, t_s, t_ns, id);
            CREATE INDEX measurement_subject_time ON measurement (subject, t_s, t_ns, id);
            CREATE INDEX measurement_time ON measurement (t_s, t_ns, id);
            CREATE TABLE checkpoint (source_id text NOT NULL PRIMARY KEY, cursor text NOT NULL);
            CREATE TABLE subject (key text NOT NULL PRIMARY KEY, body text NOT NULL,
                version bigint NOT NULL DEFAULT 1);
            CREATE TABLE subject_identifier (identifier text NOT NULL PRIMARY KEY, subject text NOT NULL);
            CREATE INDEX subject_identifier_subject ON subject_identifier (subject);
            "#,
        )
        .await
        .expect("an old schema");
    if version == 3 {
        client
            .batch_execute(
                r#"
                CREATE TABLE document (
                    resource_type text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL,
                    version bigint NOT NULL, span smallint NOT NULL,
                    lo_s bigint NOT NULL, lo_ns int NOT NULL, hi_s bigint NOT NULL, hi_ns int NOT NULL,
                    keys text[] NOT NULL, body text NOT NULL,
                    PRIMARY KEY (resource_type, id));
                CREATE INDEX document_type_span ON document (resource_type, lo_s, lo_ns, id);
                CREATE TABLE document_key (
                    resource_type text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL,
                    lo_s bigint NOT NULL, lo_ns int NOT NULL, id text COLLATE "C" NOT NULL,
                    hi_s bigint NOT NULL, hi_ns int NOT NULL,
                    PRIMARY KEY (resource_type, key, lo_s, lo_ns, id));
                "#,
            )
            .await
            .expect("schema 3's documents");
    }
    client
        .execute(
            "UPDATE healthanalyzer_meta SET value = $1 WHERE key = 'schema_version'",
            &[&version.to_string()],
        )
        .await
        .expect("version");
}

/// A measurement row as schemas 2 and 3 kept it (the model JSON as text, the kept record inside).
pub(crate) async fn old_measurement(
    client: &tokio_postgres::Client,
    m: &healthanalyzer_model::Measurement,
    version: i64,
) {
    let nanos = m.effective.instant().as_nanosecond();
    let (s, ns) = healthanalyzer_store::backend::split_instant(nanos);
    client
        .execute(
            "INSERT INTO measurement (subject, id, kind, t_s, t_ns, body, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &healthanalyzer_store::backend::identifier_key(&m.subject),
                m.id.as_uuid(),
                &m.kind.as_str(),
                &s,
                &(ns as i32),
                &serde_json::to_string(m).expect("json"),
                &version,
            ],
        )
        .await
        .expect("an old row");
}
