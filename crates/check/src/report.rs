//! What a run produces: a console summary, JUnit XML and a Markdown triage report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::run::{Finding, Outcome, Run};
use crate::scenario::{Owner, Severity};

fn ordered(run: &Run) -> Vec<&Finding> {
    let mut all: Vec<&Finding> = run.findings().collect();
    // Errors first, then warnings; run order within each.
    all.sort_by_key(|f| f.severity);
    all
}

fn totals(run: &Run) -> (usize, usize) {
    let errors = run
        .findings()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = run
        .findings()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    (errors, warnings)
}

/// A few lines for a terminal: each scenario's step counts and every error and warning.
pub fn summary(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "healthanalyzer-check: {} (run {})",
        run.base_url, run.run_id
    );
    for s in &run.scenarios {
        let mut c = (0, 0, 0, 0);
        for st in &s.steps {
            match st.outcome {
                Outcome::Passed => c.0 += 1,
                Outcome::Warned => c.1 += 1,
                Outcome::Failed => c.2 += 1,
                Outcome::Skipped(_) => c.3 += 1,
            }
        }
        let _ = writeln!(
            out,
            "  {:<14} {:>3} steps: {} passed, {} with warnings, {} failed, {} skipped ({:.1} s)",
            s.name,
            s.steps.len(),
            c.0,
            c.1,
            c.2,
            c.3,
            s.elapsed.as_secs_f64()
        );
    }
    for f in ordered(run) {
        let tag = match f.severity {
            Severity::Error => "ERROR",
            Severity::Warning => "WARN ",
            Severity::Info => "INFO ",
        };
        let _ = writeln!(
            out,
            "  {tag} {} / {} [{}] {}",
            f.scenario,
            f.step,
            f.owner.as_str(),
            f.message
        );
    }
    let (errors, warnings) = totals(run);
    let _ = writeln!(
        out,
        "{errors} errors, {warnings} warnings in {:.1} s: {}",
        run.elapsed.as_secs_f64(),
        if errors == 0 { "PASSED" } else { "FAILED" }
    );
    out
}

/// Escapes text for XML and drops characters XML 1.0 cannot hold.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn finding_text(f: &Finding) -> String {
    let mut t = format!(
        "{}\nOwner: {} ({})\n",
        f.message,
        f.owner.as_str(),
        f.reason
    );
    if let Some(x) = &f.exchange {
        let _ = writeln!(t, "Request: {}", x.request);
        if let Some(id) = &x.request_id {
            let _ = writeln!(t, "X-Request-Id: {id}");
        }
        if let Some(status) = x.status {
            let _ = writeln!(t, "Status: {status}");
        }
        if let Some(r) = &x.response_excerpt {
            let _ = writeln!(t, "Response (start):\n{r}");
        }
    }
    t
}

/// JUnit XML (the Jenkins/Ant schema): a test suite per scenario and a test case per step.
/// An error finding is a `<failure>` (an `<error>` when the server could not be reached or did
/// not answer in time), a skipped step is `<skipped>`, warnings go to `<system-out>`.
pub fn junit(run: &Run) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    let mut suites = String::new();
    let timestamp = run.started.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    for (i, s) in run.scenarios.iter().enumerate() {
        let (mut sf, mut se, mut ss) = (0, 0, 0);
        let mut cases = String::new();
        for st in &s.steps {
            let _ = write!(
                cases,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                xml(&format!("{}: {}", st.phase.as_str(), st.name)),
                xml(&s.name),
                st.elapsed.as_secs_f64()
            );
            let errs: Vec<&Finding> = st
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .collect();
            let notes: Vec<&Finding> = st
                .findings
                .iter()
                .filter(|f| f.severity != Severity::Error)
                .collect();
            let skipped = match &st.outcome {
                Outcome::Skipped(r) => Some(r),
                _ => None,
            };
            if errs.is_empty() && notes.is_empty() && skipped.is_none() {
                cases.push_str("/>\n");
                continue;
            }
            cases.push_str(">\n");
            if let Some(r) = skipped {
                ss += 1;
                let _ = writeln!(cases, "      <skipped>{}</skipped>", xml(r));
            }
            // The schema wants every <error> before any <failure>.
            for f in errs.iter().filter(|f| f.transport) {
                se += 1;
                let _ = writeln!(
                    cases,
                    "      <error message=\"{}\" type=\"{}\">{}</error>",
                    xml(&f.message),
                    f.owner.as_str(),
                    xml(&finding_text(f))
                );
            }
            for f in errs.iter().filter(|f| !f.transport) {
                sf += 1;
                let _ = writeln!(
                    cases,
                    "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                    xml(&f.message),
                    f.owner.as_str(),
                    xml(&finding_text(f))
                );
            }
            if !notes.is_empty() {
                let text: Vec<String> = notes
                    .iter()
                    .map(|f| format!("{}: {}", f.severity.as_str(), finding_text(f)))
                    .collect();
                let _ = writeln!(
                    cases,
                    "      <system-out>{}</system-out>",
                    xml(&text.join("\n"))
                );
            }
            cases.push_str("    </testcase>\n");
        }
        tests += s.steps.len();
        failures += sf;
        errors += se;
        let _ = write!(
            suites,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{sf}\" errors=\"{se}\" skipped=\"{ss}\" time=\"{:.3}\" timestamp=\"{timestamp}\" id=\"{i}\" package=\"healthanalyzer-check\">\n    <properties>\n      <property name=\"base_url\" value=\"{}\"/>\n      <property name=\"run_id\" value=\"{}\"/>\n    </properties>\n{cases}  </testsuite>\n",
            xml(&s.name),
            s.steps.len(),
            s.elapsed.as_secs_f64(),
            xml(&run.base_url),
            xml(&run.run_id),
        );
    }
    let _ = write!(
        out,
        "<testsuites name=\"healthanalyzer-check\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">\n{suites}</testsuites>\n",
        run.elapsed.as_secs_f64()
    );
    out
}

/// A code fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let mut longest = 0;
    let mut current = 0;
    for ch in text.chars() {
        if ch == '`' {
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

fn code_block(out: &mut String, text: &str) {
    let f = fence(text);
    let lang = if text.trim_start().starts_with(['{', '[']) {
        "json"
    } else {
        "text"
    };
    let _ = writeln!(out, "{f}{lang}\n{}\n{f}\n", text.trim_end());
}

/// Inline code that survives backticks and line breaks in the text.
fn inline(text: &str) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    let f = if one_line.contains('`') { "`` " } else { "`" };
    let close = if one_line.contains('`') { " ``" } else { "`" };
    format!("{f}{one_line}{close}")
}

/// Table cells cannot hold `|` or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A Markdown triage report: who should act on what, each finding with the step, the request,
/// the correlation id and the start of the answer.
pub fn markdown(run: &Run) -> String {
    let mut out = String::new();
    let (errors, warnings) = totals(run);
    let (passed, warned, failed, skipped) = run.counts();
    let _ = writeln!(out, "# Triage report: {}\n", cell(&run.base_url));
    let _ = writeln!(
        out,
        "Run `{}` started {} and took {:.1} s. {} steps: {passed} passed, {warned} passed with \
         warnings, {failed} failed, {skipped} skipped. **{errors} errors, {warnings} warnings: {}.**\n",
        run.run_id,
        run.started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        run.elapsed.as_secs_f64(),
        passed + warned + failed + skipped,
        if errors == 0 { "passed" } else { "failed" }
    );
    let _ = writeln!(
        out,
        "Every request carried an `X-Request-Id` (`hc-{}-…`): search the server's logs for it.\n",
        run.run_id
    );

    let _ = writeln!(out, "## Who should act\n");
    let mut by_owner: BTreeMap<Owner, (usize, usize)> = BTreeMap::new();
    for f in run.findings() {
        let e = by_owner.entry(f.owner).or_default();
        match f.severity {
            Severity::Error => e.0 += 1,
            Severity::Warning => e.1 += 1,
            Severity::Info => {}
        }
    }
    if by_owner.is_empty() {
        let _ = writeln!(out, "Nobody: there are no findings.\n");
    } else {
        let _ = writeln!(
            out,
            "| owner | errors | warnings | means |\n|---|---:|---:|---|"
        );
        for (owner, (e, w)) in &by_owner {
            let means = match owner {
                Owner::Sender => "the source system or client that sends the data",
                Owner::Receiver => "the server or exchange that receives, stores and serves it",
                Owner::Data => "the test data (or the profile it should follow)",
                Owner::Script => {
                    "the test script itself (it contradicts FHIR, or asks for what the checker \
                     cannot evaluate yet)"
                }
            };
            let _ = writeln!(out, "| {} | {e} | {w} | {means} |", owner.as_str());
        }
        out.push('\n');
    }

    // One row per scenario and feature: declared or not, and how many of its steps passed.
    let mut features: Vec<(&str, &str, Option<bool>, usize, usize)> = Vec::new();
    for f in run.scenarios.iter().flat_map(|s| &s.features) {
        match features
            .iter_mut()
            .find(|r| r.0 == f.scenario && r.1 == f.feature)
        {
            Some(row) => {
                row.3 += usize::from(f.works);
                row.4 += 1;
            }
            None => features.push((&f.scenario, &f.feature, f.declared, usize::from(f.works), 1)),
        }
    }
    if !features.is_empty() {
        let _ = writeln!(
            out,
            "## Features\n\n| scenario | feature | declared in CapabilityStatement | works (steps passed) |\n|---|---|---|---|"
        );
        for (scenario, feature, declared, ok, all) in features {
            let declared = match declared {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown (no CapabilityStatement)",
            };
            let works = if ok == all {
                "yes"
            } else if ok == 0 {
                "no"
            } else {
                "partly"
            };
            let _ = writeln!(
                out,
                "| {} | {} | {declared} | {works} ({ok}/{all}) |",
                cell(scenario),
                cell(feature)
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Findings\n");
    let all = ordered(run);
    if all.is_empty() {
        let _ = writeln!(out, "None.\n");
    }
    for (i, f) in all.iter().enumerate() {
        let tag = match f.severity {
            Severity::Error => 'E',
            Severity::Warning => 'W',
            Severity::Info => 'I',
        };
        let _ = writeln!(
            out,
            "### {tag}{}. {} · {} · {} › {}\n",
            i + 1,
            f.severity.as_str(),
            f.owner.as_str(),
            cell(&f.scenario),
            cell(&f.step)
        );
        let _ = writeln!(out, "- **What:** {}", f.message.replace('\n', " "));
        let _ = writeln!(out, "- **Owner:** {}. {}", f.owner.as_str(), f.reason);
        if let Some(x) = &f.exchange {
            let _ = writeln!(out, "- **Request:** {}", inline(&x.request));
            if let Some(id) = &x.request_id {
                let echoed = match &x.echoed_request_id {
                    Some(e) if e == id => "echoed by the server".to_owned(),
                    Some(e) => format!("the server answered with its own id {}", inline(e)),
                    None => "not echoed by the server".to_owned(),
                };
                let _ = writeln!(out, "- **X-Request-Id:** `{id}` ({echoed})");
            }
            if let Some(status) = x.status {
                let _ = writeln!(
                    out,
                    "- **Answer:** {status} after {} ms",
                    x.elapsed.as_millis()
                );
            }
            for (k, v) in &x.headers {
                let _ = writeln!(out, "- **{k}:** {}", inline(v));
            }
            out.push('\n');
            if let Some(b) = &x.request_body {
                let _ = writeln!(out, "Sent:\n");
                code_block(&mut out, b);
            }
            if let Some(r) = &x.response_excerpt {
                let _ = writeln!(out, "Answer (start):\n");
                code_block(&mut out, r);
            }
        } else {
            out.push('\n');
        }
    }

    let skipped: Vec<_> = run
        .scenarios
        .iter()
        .flat_map(|s| s.steps.iter().map(move |st| (s, st)))
        .filter_map(|(s, st)| match &st.outcome {
            Outcome::Skipped(r) => Some((s, st, r)),
            _ => None,
        })
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(out, "## Skipped steps\n");
        for (s, st, r) in skipped {
            let _ = writeln!(out, "- {} › {}: {}", s.name, st.name, r);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn xml_escapes_and_drops_what_xml_cannot_hold() {
        assert_eq!(
            xml("a<b & \"c\" 'd'>"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"
        );
        assert_eq!(xml("bell\u{7}tab\t"), "bell\u{FFFD}tab\t");
    }

    #[test]
    fn fences_outgrow_the_text() {
        assert_eq!(fence("no ticks"), "```");
        assert_eq!(fence("has ```` four"), "`````");
        assert_eq!(inline("a`b"), "`` a`b ``");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }

    proptest! {
        #[test]
        fn escaped_text_has_no_markup(s in "\\PC{0,80}") {
            let x = xml(&s);
            prop_assert!(!x.contains('<') && !x.contains('>') && !x.contains('"'));
            prop_assert!(x.chars().all(|c| c == '\t' || c == '\n' || c == '\r' || (c as u32) >= 0x20));
        }
    }
}
