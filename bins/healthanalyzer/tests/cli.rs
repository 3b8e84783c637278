//! The `healthanalyzer` binary end to end: real processes, real files, a real SQLite store.

#![allow(clippy::print_stderr)] // the skip notice

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_healthanalyzer"));
    c.env_remove("HEALTHANALYZER_DB");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run healthanalyzer")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stored(dir: &Path, db: &str) -> u64 {
    let o = run(dir, &["--db", db, "--json", "patients"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|p| p["measurements"].as_u64().expect("count"))
        .sum()
}

#[test]
fn demo_makes_a_report_with_the_expected_alerts() {
    let dir = tempfile::tempdir().expect("dir");
    let o = run(dir.path(), &["demo"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // 12 patients: two with heart failure (red), two who stopped measuring (yellow).
    assert!(out.contains("2 red, 2 yellow, 8 without alerts"), "{out}");
    let html =
        std::fs::read_to_string(dir.path().join("healthanalyzer-report.html")).expect("report");
    assert!(html.matches("weight gain").count() >= 2);
    assert!(html.contains("no blood pressure"));
    assert!(html.matches("<svg").count() > 20);
    assert!(dir.path().join("healthanalyzer.db").exists());

    // A second run the same day stores nothing new.
    let again = run(dir.path(), &["--json", "demo"]);
    assert!(again.status.success(), "{}", text(&again));
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(v["new"], 0);
    assert_eq!(v["red"], 2);

    // The alerts command with the rules the demo wrote.
    let alerts = run(
        dir.path(),
        &[
            "--json",
            "alerts",
            "--rules",
            "healthanalyzer-demo-rules.toml",
        ],
    );
    assert!(alerts.status.success(), "{}", text(&alerts));
    let v: serde_json::Value = serde_json::from_slice(&alerts.stdout).expect("json");
    let rules: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|a| a["rule"].as_str())
        .collect();
    assert_eq!(
        rules.iter().filter(|r| **r == "weight gain").count(),
        2,
        "{rules:?}"
    );
}

#[test]
fn importing_the_same_file_twice_changes_nothing_the_second_time() {
    let dir = tempfile::tempdir().expect("dir");
    let o = run(
        dir.path(),
        &[
            "--db",
            "sqlite:demo.db",
            "demo",
            "--patients",
            "6",
            "--days",
            "10",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        dir.path(),
        &[
            "--db",
            "sqlite:demo.db",
            "export",
            "--format",
            "ndjson",
            "--out",
            "all.ndjson",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let total = stored(dir.path(), "sqlite:demo.db");

    let first = run(
        dir.path(),
        &[
            "--db",
            "sqlite:imported.db",
            "--json",
            "import",
            "all.ndjson",
        ],
    );
    assert!(first.status.success(), "{}", text(&first));
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).expect("json");
    assert_eq!(v[0]["inserted"], total, "{v}");
    assert_eq!(v[0]["rejected"], 0, "{v}");
    assert_eq!(stored(dir.path(), "sqlite:imported.db"), total);

    let second = run(
        dir.path(),
        &[
            "--db",
            "sqlite:imported.db",
            "--json",
            "import",
            "all.ndjson",
        ],
    );
    assert!(second.status.success(), "{}", text(&second));
    let v: serde_json::Value = serde_json::from_slice(&second.stdout).expect("json");
    assert_eq!(v[0]["inserted"], 0, "{v}");
    assert_eq!(v[0]["updated"], 0, "{v}");
    assert_eq!(stored(dir.path(), "sqlite:imported.db"), total);
}

const SYNC_CONFIG: &str = r#"
[sync]
batch_size = 200

[[source]]
id = "ward"
kind = "sim"
patients = 120
days = 60
"#;

#[test]
fn a_sync_killed_again_and_again_ends_with_exactly_the_rows_of_one_uninterrupted_sync() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("healthanalyzer.toml"), SYNC_CONFIG).expect("config");
    let whole = run(dir.path(), &["--db", "sqlite:whole.db", "sync"]);
    assert!(whole.status.success(), "{}", text(&whole));
    let total = stored(dir.path(), "sqlite:whole.db");
    assert!(total > 20_000, "{total}");

    // SIGKILL after growing delays until a run finishes on its own.
    let mut partial = 0;
    let mut delay = Duration::from_millis(40);
    for _ in 0..12 {
        let mut child = bin()
            .current_dir(dir.path())
            .args(["--db", "sqlite:killed.db", "sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay);
        let finished = child.try_wait().expect("wait").is_some();
        if !finished {
            child.kill().expect("SIGKILL");
        }
        let _ = child.wait();
        let n = stored(dir.path(), "sqlite:killed.db");
        assert!(n <= total);
        if finished || n == total {
            break;
        }
        if n > 0 {
            partial += 1;
        }
        delay *= 2;
    }
    assert!(partial >= 1, "no kill landed mid-sync");
    let last = run(dir.path(), &["--db", "sqlite:killed.db", "sync"]);
    assert!(last.status.success(), "{}", text(&last));

    let export = |db: &str| {
        let o = run(dir.path(), &["--db", db, "export", "--format", "ndjson"]);
        assert!(o.status.success(), "{}", text(&o));
        o.stdout
    };
    let (a, b) = (export("sqlite:whole.db"), export("sqlite:killed.db"));
    assert_eq!(stored(dir.path(), "sqlite:killed.db"), total);
    assert!(a == b, "the same rows, byte for byte in FHIR");
}

fn expect_usage_error(dir: &Path, config: &str, needle: &str) {
    std::fs::write(dir.join("bad.toml"), config).expect("config");
    let o = run(
        dir,
        &["--config", "bad.toml", "--db", "sqlite:bad.db", "sync"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(!dir.join("bad.db").exists(), "nothing written");
}

/// A one-shot HTTP server answering every request with `status`.
fn answering(status: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login","diagnostics":"bad token"}]}"#;
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/fhir")
}

#[test]
fn bad_configuration_gives_one_clear_message_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    expect_usage_error(d, "stor = \"x\"\n", "unknown field `stor`");
    expect_usage_error(
        d,
        "[[source]]\nid = \"a\"\nkind = \"ftp\"\n",
        "unknown kind \"ftp\"",
    );
    expect_usage_error(
        d,
        "[[source]]\nid = \"a\"\nkind = \"sim\"\npateints = 3\n",
        "source a (kind sim)",
    );
    let o = run(d, &["--config", "missing.toml", "sync"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // Unreachable server and refused credentials: run-time failures (exit 1), found by the
    // sources' checks before the store is opened.
    for (url, needle) in [
        ("http://127.0.0.1:9/fhir".to_string(), "127.0.0.1:9"),
        (answering("401 Unauthorized"), "401"),
    ] {
        std::fs::write(
            d.join("fhir.toml"),
            format!(
                "[sync]\nmax_attempts = 1\n[[source]]\nid = \"clinic\"\nkind = \"fhir\"\nbase_url = \"{url}\"\ntoken = \"wrong\"\n"
            ),
        )
        .expect("config");
        let o = run(
            d,
            &["--config", "fhir.toml", "--db", "sqlite:fhir.db", "sync"],
        );
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let all = text(&o);
        assert!(
            all.contains("error: source clinic: ")
                && all.contains(needle)
                && all.contains("nothing was written"),
            "{all}"
        );
        assert!(
            !d.join("fhir.db").exists(),
            "nothing written, not even an empty database"
        );
    }
}

#[test]
fn ctrl_c_stores_the_batch_in_hand_exits_130_and_the_next_sync_goes_on() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("healthanalyzer.toml"), SYNC_CONFIG).expect("config");
    let whole = run(dir.path(), &["--db", "sqlite:whole.db", "sync"]);
    assert!(whole.status.success(), "{}", text(&whole));
    let total = stored(dir.path(), "sqlite:whole.db");

    let mut delay = Duration::from_millis(60);
    let mut interrupted = false;
    for _ in 0..8 {
        let child = bin()
            .current_dir(dir.path())
            .args(["--db", "sqlite:int.db", "sync"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay);
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let o = child.wait_with_output().expect("wait");
        if o.status.code() == Some(130) {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("stopping: storing the batch in hand"), "{err}");
            assert!(String::from_utf8_lossy(&o.stdout).contains("stopped (run again to go on)"));
            interrupted = true;
            break;
        }
        delay *= 2;
    }
    assert!(interrupted, "no interrupt landed mid-sync");
    let n = stored(dir.path(), "sqlite:int.db");
    assert!(n < total, "{n} of {total}");
    let rest = run(dir.path(), &["--db", "sqlite:int.db", "--json", "sync"]);
    assert!(rest.status.success(), "{}", text(&rest));
    let v: serde_json::Value = serde_json::from_slice(&rest.stdout).expect("json");
    assert_eq!(v[0]["unchanged"], 0, "resumed after the stored batch: {v}");
    assert_eq!(stored(dir.path(), "sqlite:int.db"), total);
}

/// The FHIR server for the round trip, or `None` (with a notice) when there is none.
fn fhir_server() -> Option<String> {
    match std::env::var("HEALTHANALYZER_FHIR_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("HEALTHANALYZER_REQUIRE_FHIR").as_deref() != Ok("1"),
                "HEALTHANALYZER_REQUIRE_FHIR=1 but HEALTHANALYZER_FHIR_URL is not set"
            );
            eprintln!("SKIPPED: set HEALTHANALYZER_FHIR_URL to a FHIR server (see README)");
            None
        }
    }
}

/// Per series of a patient: kind, count, min, max, mean, from `report --format json`.
fn series_of(dir: &Path, db: &str, patient: &str) -> Vec<(String, u64, String, String, String)> {
    let o = run(
        dir,
        &[
            "--db",
            db,
            "report",
            "--format",
            "json",
            "--patient",
            patient,
            "--days",
            "30",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    v["patients"][0]["series"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let f =
                        |k: &str| format!("{:.6}", s["summary"][k].as_f64().unwrap_or(f64::NAN));
                    (
                        s["kind"].as_str().unwrap_or_default().to_string(),
                        s["summary"]["count"].as_u64().unwrap_or(0),
                        f("min"),
                        f("max"),
                        f("mean"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn push_to_a_fhir_server_and_sync_back_round_trips() {
    let Some(url) = fhir_server() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let o = run(
        d,
        &[
            "--db",
            "sqlite:a.db",
            "demo",
            "--patients",
            "6",
            "--days",
            "5",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let push = run(
        d,
        &["--db", "sqlite:a.db", "--json", "export", "--push", &url],
    );
    assert!(push.status.success(), "{}", text(&push));
    // Pushing again creates nothing (conditional creates).
    let again = run(
        d,
        &["--db", "sqlite:a.db", "--json", "export", "--push", &url],
    );
    assert!(again.status.success(), "{}", text(&again));
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(v["created"], 0, "{v}");

    std::fs::write(
        d.join("healthanalyzer.toml"),
        format!(
            "[[source]]\nid = \"sekmet\"\nkind = \"fhir\"\nbase_url = \"{url}\"\ncategories = []\n"
        ),
    )
    .expect("config");
    let sync = run(d, &["--db", "sqlite:b.db", "--json", "sync"]);
    assert!(sync.status.success(), "{}", text(&sync));

    let patients = run(d, &["--db", "sqlite:a.db", "--json", "patients"]);
    let v: serde_json::Value = serde_json::from_slice(&patients.stdout).expect("json");
    let subjects: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["subject"].as_str().map(str::to_string))
        .collect();
    assert_eq!(subjects.len(), 6);
    for s in &subjects {
        let before = series_of(d, "sqlite:a.db", s);
        let after = series_of(d, "sqlite:b.db", s);
        assert!(!before.is_empty());
        assert_eq!(
            before, after,
            "{s}: every series back with the same readings"
        );
    }
}

/// One valid Observation and, per `bad`, one that is refused (an effective time that is no
/// date-time).
fn ndjson_with(bad: usize) -> String {
    let mut lines = vec![
        r#"{"resourceType":"Observation","id":"ok-1","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2025-03-01T08:00:00Z","valueQuantity":{"value":61,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}"#.to_owned(),
    ];
    for i in 0..bad {
        lines.push(format!(
            r#"{{"resourceType":"Observation","id":"bad-{i}","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"8867-4"}}]}},"subject":{{"reference":"Patient/p1"}},"effectiveDateTime":"yesterday","valueQuantity":{{"value":61,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}}}"#
        ));
    }
    lines.join("\n") + "\n"
}

#[test]
fn an_import_with_refused_records_exits_3_unless_partial_imports_are_accepted() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("mixed.ndjson"), ndjson_with(2)).expect("file");
    std::fs::write(dir.path().join("clean.ndjson"), ndjson_with(0)).expect("file");

    let o = run(
        dir.path(),
        &["--db", "sqlite:a.db", "--json", "import", "mixed.ndjson"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v[0]["rejected"], 2, "{v}");
    assert_eq!(v[0]["inserted"], 1, "{v}");
    assert_eq!(v[0]["rejections"].as_array().map(Vec::len), Some(2), "{v}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--accept-partial"),
        "{}",
        text(&o)
    );
    // The valid record is stored all the same.
    assert_eq!(stored(dir.path(), "sqlite:a.db"), 1);

    let o = run(
        dir.path(),
        &[
            "--db",
            "sqlite:b.db",
            "import",
            "--accept-partial",
            "mixed.ndjson",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("2 rejected"),
        "{}",
        text(&o)
    );

    let o = run(
        dir.path(),
        &["--db", "sqlite:c.db", "import", "clean.ndjson"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A file of which every record is refused stores nothing and is no success.
    let all_bad: String = ndjson_with(3)
        .lines()
        .skip(1)
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("bad.ndjson"), all_bad).expect("file");
    let o = run(dir.path(), &["--db", "sqlite:d.db", "import", "bad.ndjson"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(stored(dir.path(), "sqlite:d.db"), 0);
    let help = run(dir.path(), &["--help"]);
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("  3    import or sync"),
        "{}",
        text(&help)
    );
}

/// Runs the binary with its stdout a pipe whose reading end is already closed.
fn run_into_closed_pipe(dir: &Path, args: &[&str]) -> Output {
    let mut child = bin()
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    child.wait_with_output().expect("wait")
}

#[test]
fn every_command_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().expect("dir");
    let o = run(
        dir.path(),
        &[
            "--db",
            "sqlite:p.db",
            "demo",
            "--patients",
            "6",
            "--days",
            "5",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(dir.path().join("mixed.ndjson"), ndjson_with(1)).expect("file");
    let cases: &[(&[&str], i32)] = &[
        (&["--db", "sqlite:p.db", "patients"], 0),
        (&["--db", "sqlite:p.db", "--json", "patients"], 0),
        (
            &[
                "--db",
                "sqlite:p.db",
                "alerts",
                "--rules",
                "healthanalyzer-demo-rules.toml",
            ],
            0,
        ),
        (&["--db", "sqlite:p.db", "report", "--format", "md"], 0),
        (&["--db", "sqlite:p.db", "export", "--format", "ndjson"], 0),
        (&["--db", "sqlite:p.db", "export", "--format", "bundle"], 0),
        // The exit code is the one the command would have had.
        (&["--db", "sqlite:q.db", "import", "mixed.ndjson"], 3),
        (
            &[
                "--db",
                "sqlite:p.db",
                "demo",
                "--patients",
                "2",
                "--days",
                "2",
            ],
            0,
        ),
    ];
    for (args, code) in cases {
        let o = run_into_closed_pipe(dir.path(), args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {}", text(&o));
        assert!(!err.contains("Broken pipe"), "{args:?}: {}", text(&o));
        assert_eq!(o.status.code(), Some(*code), "{args:?}: {}", text(&o));
    }
}

#[test]
fn test_identifiers_load_and_are_marked_unless_the_configuration_refuses_them() {
    let dir = tempfile::tempdir().expect("dir");
    // A 7-digit number under the FNR system, as published IG examples carry.
    let line = r#"{"resourceType":"Observation","id":"t1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"identifier":{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"1234567"}},"effectiveDateTime":"2026-11-20T08:00:00Z","valueQuantity":{"value":61,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}"#;
    std::fs::write(dir.path().join("dossier.ndjson"), format!("{line}\n")).expect("file");
    let o = run(
        dir.path(),
        &["--db", "sqlite:a.db", "import", "dossier.ndjson"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(stored(dir.path(), "sqlite:a.db"), 1);
    let o = run(
        dir.path(),
        &[
            "--db",
            "sqlite:a.db",
            "report",
            "--format",
            "json",
            "--at",
            "2026-12-01T00:00:00Z",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let note = v["patients"][0]["identifier_note"]
        .as_str()
        .unwrap_or_default();
    assert!(note.contains("FNR rules"), "{v}");
    assert!(!note.contains("1234567"), "{note}");

    std::fs::write(
        dir.path().join("strict.toml"),
        "[sync]\nidentifiers = \"refuse\"\n",
    )
    .expect("config");
    let o = run(
        dir.path(),
        &[
            "--db",
            "sqlite:b.db",
            "--config",
            "strict.toml",
            "import",
            "dossier.ndjson",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("11 digits"),
        "{}",
        text(&o)
    );
}

#[test]
fn danish_home_readings_import_and_export_as_they_came() {
    let dir = tempfile::tempdir().expect("dir");
    let reading = |id: &str, code: &str, v: u32| {
        format!(
            r#"{{"resourceType":"Observation","id":"{id}","status":"final","code":{{"coding":[{{"system":"urn:oid:1.2.208.176.2.1","code":"{code}"}}]}},"subject":{{"identifier":{{"system":"urn:oid:1.2.208.176.1.2","value":"0101010000"}}}},"effectiveDateTime":"2026-11-15T07:30:00+01:00","valueQuantity":{{"value":{v},"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}}}"#
        )
    };
    let lines = [
        reading("sys-1", "DNK05472", 141),
        reading("dia-1", "DNK05473", 88),
    ];
    std::fs::write(dir.path().join("home.ndjson"), lines.join("\n") + "\n").expect("file");
    let o = run(
        dir.path(),
        &["--db", "sqlite:h.db", "import", "home.ndjson"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(stored(dir.path(), "sqlite:h.db"), 2);
    let o = run(
        dir.path(),
        &["--db", "sqlite:h.db", "export", "--format", "ndjson"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let exported: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.contains("\"Observation\""))
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    for line in &lines {
        let sent: serde_json::Value = serde_json::from_str(line).expect("json");
        assert!(exported.contains(&sent), "{line} not in\n{out}");
    }
    // Analysed as one blood pressure: the home blood pressure pairs the two halves.
    let o = run(
        dir.path(),
        &[
            "--db",
            "sqlite:h.db",
            "report",
            "--format",
            "json",
            "--at",
            "2026-11-20T00:00:00Z",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let bp = &v["patients"][0]["blood_pressure"]["overall"];
    assert_eq!(
        (bp["systolic"].as_f64(), bp["diastolic"].as_f64()),
        (Some(141.0), Some(88.0)),
        "{v}"
    );
}

#[test]
fn an_ndjson_line_without_id_takes_its_identifier_and_errors_name_the_line() {
    let dir = tempfile::tempdir().expect("dir");
    let body = r#""status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2025-03-01T08:00:00Z","valueQuantity":{"value":61,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}"#;
    let lines = [
        format!(
            r#"{{"resourceType":"Observation","identifier":[{{"system":"urn:test:obs","value":"a1"}}],{body}}}"#
        ),
        format!(r#"{{"resourceType":"Observation",{body}}}"#),
    ];
    std::fs::write(dir.path().join("noid.ndjson"), lines.join("\n") + "\n").expect("file");
    let o = run(
        dir.path(),
        &["--db", "sqlite:n.db", "--json", "import", "noid.ndjson"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v[0]["inserted"], 1, "{v}");
    let r = &v[0]["rejections"][0];
    assert!(
        r["location"].as_str().unwrap_or_default().ends_with(":2"),
        "{r}"
    );
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("Observation.id"), "{reason}");
    assert!(!reason.contains("entry["), "{reason}");
    // The same line again: the same record id from the identifier, nothing new.
    let again = run(
        dir.path(),
        &[
            "--db",
            "sqlite:n.db",
            "--json",
            "import",
            "--accept-partial",
            "noid.ndjson",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(v[0]["inserted"], 0, "{v}");
    assert_eq!(stored(dir.path(), "sqlite:n.db"), 1);
}
