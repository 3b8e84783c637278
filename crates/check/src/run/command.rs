//! Commands: a step that runs a program.

use std::time::Instant;

use super::results::EXCERPT_CHARS;
use super::{State, StepCtx, Stop, sub};
use crate::scenario::{CommandLine, Owner};

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
    cmd.args(rest)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in &c.env {
        cmd.env(k, sub(v, &state.vars)?);
    }
    if let Some(dir) = &c.cwd {
        cmd.current_dir(dir);
    }
    let clock = Instant::now();
    let out = match cmd.output().await {
        Ok(o) => o,
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
    ctx.exchange.elapsed = clock.elapsed();
    let code = out.status.code().unwrap_or(-1);
    ctx.exchange.status = Some(code);
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    // The end of the output is where a failing command says why.
    let tail: String = {
        let chars: Vec<char> = text.chars().collect();
        chars[chars.len().saturating_sub(EXCERPT_CHARS)..]
            .iter()
            .collect()
    };
    ctx.exchange.response_excerpt = (!tail.trim().is_empty()).then_some(tail);
    Ok(code)
}
