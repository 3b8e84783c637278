//! Answers and outputs larger than the checker holds: an endless response body, a declared
//! length of a terabyte, a command that prints megabytes. Each is a clear finding, not a hang or
//! an out-of-memory.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use healthanalyzer_check::{
    MAX_COMMAND_OUTPUT_BYTES, MAX_RESPONSE_BYTES, Outcome, Owner, Runner, Scenario, Severity,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A FHIR base on a free port: `/fhir/endless` answers 200 with a chunked body that never ends,
/// `/fhir/huge` declares a terabyte and sends nothing, anything else is a 404.
async fn oversized_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req);
                if line.starts_with("GET /fhir/endless ") {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n\
                                Transfer-Encoding: chunked\r\n\r\n";
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    // `[1,[1,[1,…`: JSON that never closes.
                    let piece = "[1,".repeat(0x10000 / 3);
                    let chunk = format!("{:x}\r\n{piece}\r\n", piece.len());
                    while sock.write_all(chunk.as_bytes()).await.is_ok() {}
                } else if line.starts_with("GET /fhir/huge ") {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n\
                                Content-Length: 1099511627776\r\n\r\n";
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    // Nothing more, until the client hangs up.
                    while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                } else {
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                }
            });
        }
    });
    format!("http://{addr}/fhir")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_answers_and_outputs_are_findings_not_hangs() {
    assert_eq!(MAX_RESPONSE_BYTES, 16 * 1024 * 1024);
    let base = oversized_server().await;
    let printed = MAX_COMMAND_OUTPUT_BYTES + 4096;
    let scenario = Scenario::from_toml(
        &format!(
            r#"
name = "bounds"
[[steps]]
name = "endless"
request = {{ url = "endless" }}
expect = {{ status = 200 }}
[[steps]]
name = "huge"
request = {{ url = "huge" }}
expect = {{ status = 200 }}
[[steps]]
name = "noisy"
command = {{ run = ["sh", "-c", "head -c {printed} /dev/zero | tr '\\0' y"] }}
"#
        ),
        "inline",
    )
    .unwrap();
    // Far longer than any of this takes: a finding about the time limit would be a hang.
    let runner = Runner::new(&base)
        .unwrap()
        .timeout(Duration::from_secs(120));
    let run = runner.run(&[scenario]).await;
    let steps = &run.scenarios[0].steps;
    let step = |name: &str| steps.iter().find(|s| s.name == name).unwrap();

    let endless = step("endless");
    assert_eq!(endless.outcome, Outcome::Failed);
    assert_eq!(endless.findings.len(), 1, "{:#?}", endless.findings);
    let f = &endless.findings[0];
    assert_eq!(
        f.message,
        "The answer is larger than 16 MiB, the most the checker reads: it was refused after its \
         first 16 MiB."
    );
    assert_eq!(
        (f.severity, f.owner, f.transport),
        (Severity::Error, Owner::Receiver, false)
    );
    let x = f.exchange.as_ref().unwrap();
    assert_eq!(x.status, Some(200));
    let quoted = x.response_excerpt.as_deref().unwrap();
    assert!(quoted.starts_with("[1,[1,"), "{quoted}");
    assert!(
        quoted.ends_with("(cut: more than 16 MiB in all)"),
        "{quoted}"
    );
    assert!(quoted.len() < 8 * 1024, "{}", quoted.len());

    let huge = step("huge");
    assert_eq!(huge.outcome, Outcome::Failed);
    assert_eq!(huge.findings.len(), 1, "{:#?}", huge.findings);
    assert_eq!(
        huge.findings[0].message,
        "The answer is 1099511627776 bytes (its Content-Length), more than the 16 MiB the \
         checker reads: it was refused unread."
    );

    let noisy = step("noisy");
    assert_eq!(noisy.outcome, Outcome::Passed, "{:#?}", noisy.findings);
    assert_eq!(noisy.findings.len(), 1, "{:#?}", noisy.findings);
    let f = &noisy.findings[0];
    assert_eq!(f.severity, Severity::Info);
    assert!(
        f.message.starts_with(&format!(
            "The command's output was cut: it printed {printed} bytes on stdout;"
        )),
        "{}",
        f.message
    );
    let quoted = f
        .exchange
        .as_ref()
        .unwrap()
        .response_excerpt
        .as_deref()
        .unwrap();
    assert!(quoted.len() <= MAX_COMMAND_OUTPUT_BYTES);
    assert!(quoted.bytes().all(|b| b == b'y'), "{quoted}");
}
