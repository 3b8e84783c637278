//! The model example the README points to, run as a real process.

#![allow(clippy::unwrap_used)] // In tests a panic is a failure with a message.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn normalises_good_lines_and_rejects_bad_ones_with_reasons() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-normalize-readings"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"body-weight,185,lb,2024-03-31T08:15:00+02:00\n\
              heart-rate,312,/min,2024-03-31T08:16:00+02:00\n\
              heart-rate,72,/min,yesterday\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains(r#""value":"83.91","unit":"kg","original":{"value":"185","unit":"lb"}"#),
        "{text}"
    );
    assert!(
        lines[1].starts_with("line 2: rejected:") && lines[1].contains("plausible range 20 to 300"),
        "{text}"
    );
    assert!(
        lines[2].contains("invalid date/time \"yesterday\""),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(2), "rejections give exit code 2");
}
