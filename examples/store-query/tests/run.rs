//! The example as a real process, on an SQLite file: run twice, the second run writes nothing.

use std::process::Command;

#[test]
fn writes_once_and_pages_newest_first() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite:{}", dir.path().join("e.db").display());
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_example-store-query"))
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
    assert!(first.contains("first write: 15 new"), "{first}");
    assert!(first.contains("Anna's weights since 2 March: 4"), "{first}");
    let pages: Vec<&str> = first.lines().filter(|l| l.contains("page")).collect();
    assert_eq!(pages.len(), 4, "{first}");
    assert!(
        pages[0].contains("2024-03-05") && pages[3].contains("page 2: 2024-03-02"),
        "{first}"
    );
    let second = run();
    assert!(second.contains("first write: 0 new"), "{second}");
}
