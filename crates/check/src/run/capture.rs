//! Captures: values a response gives to later steps.

use super::http::{Response, header};
use super::{State, StepCtx};
use crate::path::{ElementPath, text_of};
use crate::scenario::Capture;

pub(super) fn capture(state: &mut State, ctx: &mut StepCtx<'_>, resp: &Response) {
    for (var, cap) in &ctx.step.capture {
        match captured(cap, resp) {
            Some(v) => {
                state.vars.insert(var.clone(), v);
            }
            None => {
                let from = cap.path.as_deref().map_or_else(
                    || format!("header {}", cap.header.as_deref().unwrap_or("")),
                    |p| format!("element {p}"),
                );
                let owner = ctx.owner;
                ctx.finding(
                    format!("Could not capture `{var}` from {from}."),
                    owner,
                    "The answer lacks a value later steps need (a created resource's id in \
                     `Location`, say).",
                    false,
                );
            }
        }
    }
}

fn captured(cap: &Capture, resp: &Response) -> Option<String> {
    let raw = match (&cap.path, &cap.header) {
        (Some(p), _) => ElementPath::parse(p)
            .ok()?
            .first(resp.body.as_ref()?)
            .and_then(text_of)?,
        (None, Some(h)) => header(&resp.headers, h)?,
        (None, None) => return None,
    };
    match &cap.regex {
        None => Some(raw),
        Some(re) => {
            let caps = regex::Regex::new(re).ok()?.captures(&raw)?;
            caps.get(1)
                .or_else(|| caps.get(0))
                .map(|m| m.as_str().to_owned())
        }
    }
}
