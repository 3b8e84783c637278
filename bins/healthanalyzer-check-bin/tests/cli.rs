//! The `healthanalyzer-check` binary: exit codes, the files it writes, its errors.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use healthanalyzer_server::FhirServer;
use healthanalyzer_store::Store;
use healthanalyzer_store_sqlite::SqliteStore;

struct Api {
    base: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = FhirServer::new(store)
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    Api {
        base: format!("http://{addr}/fhir"),
        _dir: dir,
        _stop: tx,
    }
}

async fn check(args: &[&str], cwd: &Path) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_healthanalyzer-check"))
        .args(args)
        .current_dir(cwd)
        .env_remove("HEALTHANALYZER_CHECK_BASE")
        .env_remove("HEALTHANALYZER_CHECK_TOKEN")
        .output()
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_exits_0_and_writes_junit_and_the_triage_report() {
    let api = api().await;
    let dir = tempfile::tempdir().unwrap();
    let o = check(
        &[
            "--base",
            &api.base,
            "--junit",
            "out.xml",
            "--report",
            "triage.md",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("vital-signs"), "{stdout}");
    assert!(stdout.contains("0 errors, 0 warnings"), "{stdout}");
    // Progress goes to stderr, one line a step, without identifiers or values.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("step=create blood-pressure"), "{stderr}");
    let junit = std::fs::read_to_string(dir.path().join("out.xml")).unwrap();
    assert!(junit.contains("<testsuite name=\"vital-signs\""), "{junit}");
    assert!(junit.contains("<testsuite name=\"errors\""), "{junit}");
    let md = std::fs::read_to_string(dir.path().join("triage.md")).unwrap();
    assert!(md.starts_with("# Triage report: http://127.0.0.1:"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_finding_exits_1_and_a_bad_scenario_exits_2() {
    let api = api().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.toml"),
        r#"
name = "mine"
[[steps]]
name = "metadata says R5"
request = { url = "metadata" }
expect = { status = 200, body = [{ path = "fhirVersion", equals = "5.0.0" }] }
"#,
    )
    .unwrap();
    let o = check(
        &[
            "--base",
            &api.base,
            "--scenario",
            "mine.toml",
            "--report",
            "t.md",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("ERROR mine / metadata says R5 [receiver] fhirVersion: expected \"5.0.0\", found \"4.0.1\""),
        "{stdout}"
    );
    let md = std::fs::read_to_string(dir.path().join("t.md")).unwrap();
    assert!(
        md.contains("### E1. error · receiver · mine › metadata says R5"),
        "{md}"
    );

    std::fs::write(
        dir.path().join("bad.toml"),
        "name = \"bad\"\n[[steps]]\nname = \"x\"\n",
    )
    .unwrap();
    let o = check(&["--base", &api.base, "--scenario", "bad.toml"], dir.path()).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("step `x`"),
        "{stderr}"
    );
    assert!(o.stdout.is_empty(), "nothing ran: {}", text(&o));

    for args in [
        vec!["--base", "ftp://x/fhir"],
        vec!["--base", &api.base, "--suite", "nope"],
        vec!["--base", &api.base, "--var", "novalue"],
        vec!["--suite", "errors"],
        // The chain without its source: every step would be skipped, which must not pass.
        vec!["--base", &api.base, "--suite", "chain"],
    ] {
        let o = check(&args, dir.path()).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    }
    let o = check(&["--base", &api.base, "--suite", "chain"], dir.path()).await;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("scenario chain needs `source`: pass --var NAME=VALUE"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_names_the_suites() {
    let dir = tempfile::tempdir().unwrap();
    let o = check(&["--list"], dir.path()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for name in ["vital-signs", "errors", "chain"] {
        assert!(stdout.contains(name), "{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_is_no_panic_and_keeps_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_healthanalyzer-check"))
        .arg("--list")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        text(&o)
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_say_what_is_wrong_once_and_never_quote_a_header_value() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing is sent for any of these, so no server is needed behind the base URL.
    let base = "http://127.0.0.1:9/fhir";
    for (args, says) in [
        (
            vec!["--base", base, "--header", "Authorization Bearer s3cr3t"],
            "header without `:`",
        ),
        (
            vec!["--base", base, "--header", ": s3cr3t"],
            "header with an empty name",
        ),
        (
            vec!["--base", base, "--var", "=s3cr3t"],
            "is not NAME=VALUE",
        ),
        (
            vec!["--base", base, "--timeout-secs", "0"],
            "time limit 0 s: want a positive number of seconds",
        ),
    ] {
        let o = check(&args, dir.path()).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        if args[2] == "--header" {
            assert!(!stderr.contains("s3cr3t"), "{args:?}: {stderr}");
        }
    }
    // A file that cannot be read: the message and its cause, the cause once.
    let o = check(&["--base", base, "--scenario", "missing.toml"], dir.path()).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let cause = std::fs::read("/nonexistent/missing.toml")
        .unwrap_err()
        .to_string();
    assert!(
        stderr.contains("cannot read scenario file missing.toml: "),
        "{stderr}"
    );
    assert_eq!(stderr.matches(&cause).count(), 1, "{cause}: {stderr}");
}

/// `--testscript` runs FHIR TestScripts: a clean one exits 0, one the script itself gets wrong
/// exits 1; each writes its TestReport where `--testreports` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testscripts_run_with_exit_codes_and_testreports() {
    let api = api().await;
    let dir = tempfile::tempdir().unwrap();
    let scripts =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/check/tests/testscripts");
    let own = scripts.join("own/server.json");
    let dest = format!("1={}", api.base);
    let out = check(
        &[
            "--base",
            &api.base,
            "--testscript",
            own.to_str().unwrap(),
            "--var",
            "given=Ada",
            "--dest",
            &dest,
            "--testreports",
            "reports",
            "--junit",
            "junit.xml",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report =
        std::fs::read_to_string(dir.path().join("reports/own-server-json.testreport.json"))
            .unwrap();
    assert!(
        report.contains("\"resourceType\": \"TestReport\""),
        "{report}"
    );
    assert!(report.contains("\"result\": \"pass\""), "{report}");
    assert!(!report.contains("\"result\": \"fail\""), "{report}");
    let mismatch = scripts.join("mismatch/put-mismatch.json");
    let out = check(
        &[
            "--base",
            &api.base,
            "--testscript",
            mismatch.to_str().unwrap(),
            "--testreports",
            "reports",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("[script]"),
        "{}",
        text(&out)
    );
    let out = check(
        &["--base", &api.base, "--testscript", "no-such.json"],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = check(
        &[
            "--base",
            &api.base,
            "--testscript",
            own.to_str().unwrap(),
            "--dest",
            "1=ftp://x",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
