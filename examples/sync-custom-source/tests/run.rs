//! The example as a real process: the team's own kind through the whole command line.

use std::process::{Command, Output};

fn run(db: &str, args: &[&str]) -> Output {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/healthanalyzer.toml");
    Command::new(env!("CARGO_BIN_EXE_example-sync-custom-source"))
        .args(["--config", config, "--db", db])
        .args(args)
        .output()
        .expect("run")
}

#[test]
fn the_custom_kind_syncs_resumes_and_reports_refusals_by_exit_code() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite:{}", dir.path().join("band.db").display());
    let text = |o: &Output| String::from_utf8_lossy(&o.stdout).to_string();
    // One record of the export has no value: refused, so exit 3 with the valid ones stored.
    let first = run(&db, &["sync"]);
    assert_eq!(first.status.code(), Some(3), "{}", text(&first));
    assert!(
        text(&first).contains(
            "pulseband (pulseband-json): 7 pulled, 7 new, 0 changed, 0 unchanged, 1 rejected"
        ),
        "{}",
        text(&first)
    );
    assert!(
        text(&first).contains("`value` is missing"),
        "{}",
        text(&first)
    );
    // Resumed from the stored cursor: nothing new, nothing refused.
    let second = run(&db, &["sync", "--accept-partial"]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        text(&second).contains("pulseband (pulseband-json): 0 pulled, 0 new"),
        "{}",
        text(&second)
    );
    // The other commands see what it stored.
    let patients = run(&db, &["--json", "patients"]);
    assert!(patients.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&patients.stdout).expect("json");
    let total: u64 = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["measurements"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        total, 7,
        "the 7 pulled; the refused record is not among them: {rows}"
    );
}
