//! The example as a real process: a second sync into the same file finds nothing new.

use std::process::Command;

#[test]
fn syncs_the_custom_source_and_resumes() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite:{}", dir.path().join("band.db").display());
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_example-sync-custom-source"))
            .arg(&url)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = run();
    assert!(
        first.contains("pulseband: 7 pulled, 7 new, 1 rejected (Complete)"),
        "{first}"
    );
    assert!(first.contains("`value` is missing"), "{first}");
    let second = run();
    assert!(
        second.contains("pulseband: 0 pulled, 0 new, 0 rejected (Complete)"),
        "{second}"
    );
}
