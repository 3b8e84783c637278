//! Commands: a step that runs a program.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::results::EXCERPT_CHARS;
use super::{State, StepCtx, Stop, sub};
use crate::scenario::{CommandLine, Owner, Severity};

/// The most of a command's output the checker keeps: the last 1 MiB of stdout and of stderr.
/// The rest is read and dropped (so the command never blocks on a full pipe), and the step gets
/// an info finding that says the output was cut; the report quotes the end of what was kept.
pub const MAX_COMMAND_OUTPUT_BYTES: usize = 1024 * 1024;

pub(super) async fn command(
    state: &State,
    c: &crate::scenario::Command,
    ctx: &mut StepCtx<'_>,
) -> std::result::Result<i32, Stop> {
    let args: Vec<String> = match &c.run {
        CommandLine::Line(line) => shell_words::split(&sub(line, &state.vars)?)
            .map_err(|e| Stop::Skip(format!("cannot split the command line: {e}")))?,
        CommandLine::Args(args) => args
            .iter()
            .map(|a| sub(a, &state.vars))
            .collect::<std::result::Result<_, _>>()?,
    };
    let Some((program, rest)) = args.split_first() else {
        return Err(Stop::Skip("the command is empty".to_owned()));
    };
    ctx.exchange.request = format!("$ {}", shell_words::join(&args));
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest).stdin(Stdio::null()).kill_on_drop(true);
    for (k, v) in &c.env {
        cmd.env(k, sub(v, &state.vars)?);
    }
    if let Some(dir) = &c.cwd {
        cmd.current_dir(dir);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let clock = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            ctx.finding(
                format!("Cannot start `{program}`: {e}."),
                Owner::Data,
                "The scenario names a program this machine cannot run: install it or pass its \
                 path in a variable.",
                false,
            );
            return Err(Stop::Done);
        }
    };
    // Both pipes are read at once to their end, so the command never blocks on a full one.
    let (stdout, stderr) = tokio::join!(
        read_tail(child.stdout.take(), MAX_COMMAND_OUTPUT_BYTES),
        read_tail(child.stderr.take(), MAX_COMMAND_OUTPUT_BYTES)
    );
    let status = match child.wait().await {
        Ok(s) => s,
        Err(e) => {
            ctx.finding(
                format!("Cannot learn how `{program}` ended: {e}."),
                Owner::Data,
                "The operating system did not report the command's exit status.",
                false,
            );
            return Err(Stop::Done);
        }
    };
    ctx.exchange.elapsed = clock.elapsed();
    let code = status.code().unwrap_or(-1);
    ctx.exchange.status = Some(code);
    let mut text = String::from_utf8_lossy(&stderr.kept).into_owned();
    text.push_str(&String::from_utf8_lossy(&stdout.kept));
    // The end of the output is where a failing command says why.
    let tail: String = {
        let chars: Vec<char> = text.chars().collect();
        chars[chars.len().saturating_sub(EXCERPT_CHARS)..]
            .iter()
            .collect()
    };
    ctx.exchange.response_excerpt = (!tail.trim().is_empty()).then_some(tail);
    let cut: Vec<String> = [("stdout", &stdout), ("stderr", &stderr)]
        .iter()
        .filter(|(_, t)| t.was_cut())
        .map(|(name, t)| format!("{} bytes on {name}", t.total))
        .collect();
    if !cut.is_empty() {
        ctx.finding_with(
            Severity::Info,
            format!(
                "The command's output was cut: it printed {}; the checker keeps the last {} MiB \
                 of each stream, and quotes the end of that.",
                cut.join(" and "),
                MAX_COMMAND_OUTPUT_BYTES >> 20
            ),
            Owner::Data,
            "Not a fault: a long output is read to its end but only its last part is held in \
             memory. Run the command with less logging to see all of it.",
        );
    }
    Ok(code)
}

/// The end of what a command printed on one stream.
#[derive(Debug, Default)]
struct Tail {
    /// The last bytes, at most the bound.
    kept: Vec<u8>,
    /// How many bytes the stream carried in all.
    total: u64,
}

impl Tail {
    fn was_cut(&self) -> bool {
        self.total > self.kept.len() as u64
    }
}

/// Reads a stream to its end, keeping its last `bound` bytes. A read error ends it (what was
/// read is kept).
async fn read_tail(stream: Option<impl AsyncRead + Unpin>, bound: usize) -> Tail {
    let Some(mut stream) = stream else {
        return Tail::default();
    };
    let mut kept: VecDeque<u8> = VecDeque::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        // Only the part that can stay is copied in, then the oldest bytes make room.
        let chunk = &buf[n.saturating_sub(bound)..n];
        kept.extend(chunk);
        if kept.len() > bound {
            kept.drain(..kept.len() - bound);
        }
    }
    Tail {
        kept: kept.into(),
        total,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::{BTreeMap, HashMap, HashSet};

    use super::*;
    use crate::run::Exchange;
    use crate::scenario::Step;

    /// `sh -c script`, its stdout piped.
    fn sh(script: &str) -> tokio::process::Child {
        tokio::process::Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    #[tokio::test]
    async fn a_long_output_is_read_to_its_end_and_only_its_tail_kept() {
        let bound = MAX_COMMAND_OUTPUT_BYTES;
        let printed = 3 * bound + 5;
        let mut child = sh(&format!("head -c {} /dev/zero; printf END", printed - 3));
        let tail = read_tail(child.stdout.take(), bound).await;
        assert!(child.wait().await.unwrap().success());
        assert_eq!(tail.total, printed as u64);
        assert!(tail.kept.len() <= bound, "{}", tail.kept.len());
        assert_eq!(tail.kept.len(), bound);
        assert!(tail.kept.ends_with(b"\0END"));
        assert!(tail.was_cut());

        let mut child = sh("printf short");
        let tail = read_tail(child.stdout.take(), bound).await;
        assert_eq!(tail.kept, b"short");
        assert!(!tail.was_cut());
    }

    async fn run(script: &str) -> (i32, Vec<(Severity, String)>, Option<String>) {
        let step: Step = toml::from_str(&format!(
            "name = \"noisy\"\ncommand = {{ run = [\"sh\", \"-c\", {script:?}] }}"
        ))
        .unwrap();
        let state = State {
            vars: BTreeMap::new(),
            passed: HashSet::new(),
            entries: HashMap::new(),
        };
        let mut ctx = StepCtx {
            scenario: "bounds",
            step: &step,
            owner: Owner::Receiver,
            findings: Vec::new(),
            exchange: Exchange::default(),
            sent: None,
        };
        let Some(c) = &step.command else { panic!() };
        let code = command(&state, c, &mut ctx).await.unwrap_or(-100);
        let findings = ctx
            .findings
            .iter()
            .map(|f| (f.severity, f.message.clone()))
            .collect();
        (code, findings, ctx.exchange.response_excerpt)
    }

    #[tokio::test]
    async fn a_command_step_says_its_output_was_cut() {
        let printed = 2 * MAX_COMMAND_OUTPUT_BYTES + 1;
        let (code, findings, excerpt) = run(&format!(
            "echo failing >&2; head -c {printed} /dev/zero | tr '\\0' x; exit 3"
        ))
        .await;
        assert_eq!(code, 3);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].0, Severity::Info);
        assert!(
            findings[0].1.starts_with(&format!(
                "The command's output was cut: it printed {printed} bytes on stdout; the checker \
                 keeps the last 1 MiB of each stream"
            )),
            "{findings:?}"
        );
        let excerpt = excerpt.unwrap();
        assert_eq!(excerpt, "x".repeat(EXCERPT_CHARS));

        let (code, findings, excerpt) = run("echo fine; echo why >&2").await;
        assert_eq!(code, 0);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(excerpt.as_deref(), Some("why\nfine\n"));
    }
}
