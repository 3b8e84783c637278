//! A team's own connector kind through the command line library: named in
//! `healthanalyzer.toml`, synced by `run`, with the exit codes of the built-in kinds.

use std::sync::Arc;

use clap::Parser;
use healthanalyzer_cli::{Cli, Failure, Registry, run};
use healthanalyzer_model::{DateTime, Identifier, Measurement, Provenance, Value};
use healthanalyzer_source::StaticSource;
use healthanalyzer_store::Filter;

fn readings(n: i64) -> Vec<Measurement> {
    (0..n)
        .map(|i| {
            Measurement::new(
                Provenance::new("gateway", format!("r{i}")),
                Identifier::local("p1"),
                "heart-rate",
                Value::quantity((60 + i).into(), "/min"),
                DateTime::parse(&format!("2024-01-01T08:{i:02}:00Z")).expect("time"),
            )
        })
        .collect()
}

fn registry() -> Registry {
    let mut registry = Registry::builtin();
    registry.register("gateway", |spec, _cx| {
        Ok(Arc::new(StaticSource::new(spec.id.clone(), readings(25))))
    });
    registry
}

fn setup(kind: &str) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("healthanalyzer.toml");
    std::fs::write(
        &config,
        format!("[[source]]\nid = \"gateway\"\nkind = \"{kind}\"\n"),
    )
    .expect("write config");
    let db = format!("sqlite:{}", dir.path().join("h.db").display());
    (dir, config.display().to_string(), db)
}

#[tokio::test]
async fn a_registered_kind_syncs_like_a_built_in_one() {
    let (_dir, config, db) = setup("gateway");
    let args = [
        "healthanalyzer",
        "--config",
        &config,
        "--db",
        &db,
        "--json",
        "sync",
    ];
    run(Cli::parse_from(args), &registry()).await.expect("sync");
    let store = healthanalyzer_pipeline::open_store(&db)
        .await
        .expect("open");
    assert_eq!(store.count(&Filter::default()).await.expect("count"), 25);
    // Resumed from the saved cursor: nothing new, still exit 0.
    run(Cli::parse_from(args), &registry())
        .await
        .expect("sync again");
    assert_eq!(store.count(&Filter::default()).await.expect("count"), 25);
}

#[tokio::test]
async fn an_unknown_kind_is_a_usage_error_that_says_how_to_add_one() {
    let (_dir, config, db) = setup("gateway");
    let args = ["healthanalyzer", "--config", &config, "--db", &db, "sync"];
    let failure = run(Cli::parse_from(args), &Registry::builtin())
        .await
        .expect_err("gateway is not built in");
    assert_eq!(failure.exit_code(), 2);
    let Failure::Usage(message) = failure else {
        panic!("{failure:?}")
    };
    assert!(message.contains("unknown kind \"gateway\""), "{message}");
    assert!(message.contains("healthanalyzer_cli::main"), "{message}");
    assert!(message.contains("docs/connectors.md"), "{message}");
}
