//! A whole check as the `healthanalyzer-check` command runs it: arguments as text in, a finished
//! run and its report files out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::run::{Run, Runner};
use crate::scenario::Scenario;
use crate::{report, suites};

/// Splits a variable argument, `NAME=VALUE` (`source=http://partner/fhir`): the name is trimmed,
/// the value kept as written (it may be empty). [`Error::BadVariable`] without `=` or with an
/// empty name.
pub fn parse_var(text: &str) -> Result<(String, String)> {
    text.split_once('=')
        .filter(|(name, _)| !name.trim().is_empty())
        .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
        .ok_or_else(|| Error::BadVariable(text.to_owned()))
}

/// Splits a header argument, `Name: value` (`X-Api-Key: …`): both trimmed. The name must be an
/// HTTP header name and the value one a header can carry. [`Error::BadHeader`] otherwise; its
/// message never quotes the value, which may be a token.
pub fn parse_header(text: &str) -> Result<(String, String)> {
    let Some((name, value)) = text.split_once(':') else {
        return Err(Error::BadHeader(
            "without `:` (not shown: it may hold a token)".to_owned(),
        ));
    };
    let (name, value) = (name.trim(), value.trim());
    if name.is_empty() {
        return Err(Error::BadHeader("with an empty name".to_owned()));
    }
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(Error::BadHeader(format!(
            "`{name}`: not a header name (letters, digits and `-`)"
        )));
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(Error::BadHeader(format!(
            "`{name}`: its value holds a character a header cannot carry (not shown)"
        )));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// A time limit in seconds as a [`Duration`]: [`Error::BadTimeout`] unless it is a positive
/// number a `Duration` can hold.
pub fn parse_timeout_secs(secs: f64) -> Result<Duration> {
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Error::BadTimeout(secs));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| Error::BadTimeout(secs))
}

/// A whole check as the command line gives it: what to run, against which server, and where to
/// write the reports. [`Options::run`] does everything the command does but print.
#[derive(Clone)]
pub struct Options {
    /// The FHIR base URL (the one `/metadata` hangs off); `None` is an [`Error::BaseUrl`].
    pub base: Option<String>,
    /// Built-in suites to run. With no suites and no scenario files: [`suites::DEFAULT`].
    pub suites: Vec<String>,
    /// Scenario files (TOML).
    pub scenarios: Vec<PathBuf>,
    /// Variables for the scenarios, `NAME=VALUE` each (see [`parse_var`]).
    pub vars: Vec<String>,
    /// Headers sent with every request, `Name: value` each (see [`parse_header`]).
    pub headers: Vec<String>,
    /// A bearer token, sent as `Authorization: Bearer …` with every request.
    pub token: Option<String>,
    /// Seconds a step may take (a step may set its own); default 10.
    pub timeout_secs: f64,
    /// Where to write JUnit XML.
    pub junit: Option<PathBuf>,
    /// Where to write the Markdown triage report.
    pub report: Option<PathBuf>,
    /// FHIR TestScript files or folders of them (JSON or XML), see
    /// [`testscript`](crate::testscript).
    pub testscripts: Vec<PathBuf>,
    /// TestScript destinations, `NAME=URL` each: NAME is a destination's index or its profile
    /// code; destinations not named go to `base`.
    pub dests: Vec<String>,
    /// A folder to write each script's FHIR `TestReport` (JSON) in.
    pub testreports: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            base: None,
            suites: Vec::new(),
            scenarios: Vec::new(),
            vars: Vec::new(),
            headers: Vec::new(),
            token: None,
            timeout_secs: 10.0,
            junit: None,
            report: None,
            testscripts: Vec::new(),
            dests: Vec::new(),
            testreports: None,
        }
    }
}

/// Header values and the token are left out: they may be secrets.
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("base", &self.base)
            .field("suites", &self.suites)
            .field("scenarios", &self.scenarios)
            .field("vars", &self.vars)
            .field(
                "headers",
                &format_args!("[{} not shown]", self.headers.len()),
            )
            .field("token", &self.token.as_ref().map(|_| "(not shown)"))
            .field("timeout_secs", &self.timeout_secs)
            .field("junit", &self.junit)
            .field("report", &self.report)
            .field("testscripts", &self.testscripts)
            .field("dests", &self.dests)
            .field("testreports", &self.testreports)
            .finish()
    }
}

impl Options {
    /// The scenarios and a runner set up for them. Fails, before anything is sent, when an
    /// argument is wrong (no base URL, a bad time limit, variable or header), a suite or
    /// scenario file cannot be loaded, or a scenario uses a variable nothing sets.
    pub fn prepare(&self) -> Result<(Runner, Vec<Scenario>)> {
        let base = self
            .base
            .as_deref()
            .ok_or_else(|| Error::BaseUrl("(none given: pass --base URL)".to_owned()))?;
        let timeout = parse_timeout_secs(self.timeout_secs)?;
        let mut scenarios = Vec::new();
        if self.suites.is_empty() && self.scenarios.is_empty() && self.testscripts.is_empty() {
            for name in suites::DEFAULT {
                scenarios.push(suites::builtin(name)?);
            }
        }
        for name in &self.suites {
            scenarios.push(suites::builtin(name)?);
        }
        for file in &self.scenarios {
            scenarios.push(Scenario::from_file(file)?);
        }
        let mut runner = Runner::new(base)?.timeout(timeout);
        for v in &self.vars {
            let (name, value) = parse_var(v)?;
            runner = runner.var(&name, &value);
        }
        for d in &self.dests {
            let (name, url) = parse_var(d)?;
            runner = runner.destination(&name, &url)?;
        }
        for h in &self.headers {
            let (name, value) = parse_header(h)?;
            runner = runner.header(&name, &value);
        }
        if let Some(t) = &self.token {
            let value = format!("Bearer {t}");
            if reqwest::header::HeaderValue::from_str(&value).is_err() {
                return Err(Error::BadHeader(
                    "`Authorization`: the token holds a character a header cannot carry (not \
                     shown)"
                        .to_owned(),
                ));
            }
            runner = runner.header("Authorization", &value);
        }
        runner.check_variables(&scenarios)?;
        Ok((runner, scenarios))
    }

    /// [`prepare`](Self::prepare)s, runs the scenarios and writes the JUnit XML and the triage
    /// report where asked. What the server got wrong is in the [`Run`]
    /// ([`Run::has_errors`] decides the exit code); an `Err` means nothing ran or a report could
    /// not be written.
    ///
    /// TestScripts ([`testscripts`](Self::testscripts)) run after the scenarios, into the same
    /// [`Run`]; each one's `TestReport` goes to [`testreports`](Self::testreports) as
    /// `<name>.testreport.json`.
    pub async fn run(&self) -> Result<Run> {
        let (runner, scenarios) = self.prepare()?;
        let mut scripts = Vec::new();
        for path in &self.testscripts {
            scripts.extend(crate::testscript::load(path)?);
        }
        let mut run = runner.run(&scenarios).await;
        if !scripts.is_empty() {
            let ran = runner.run_testscripts(&scripts).await;
            if let Some(dir) = &self.testreports {
                std::fs::create_dir_all(dir).map_err(|source| Error::Write {
                    path: dir.clone(),
                    source,
                })?;
                for (script, report) in scripts.iter().zip(&ran.reports) {
                    let file: String = script
                        .name
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    let text = serde_json::to_string_pretty(report).unwrap_or_default();
                    write(&dir.join(format!("{file}.testreport.json")), &text)?;
                }
            }
            run.scenarios.extend(ran.run.scenarios);
            run.elapsed += ran.run.elapsed;
        }
        if let Some(path) = &self.junit {
            write(path, &report::junit(&run))?;
        }
        if let Some(path) = &self.report {
            write(path, &report::markdown(&run))?;
        }
        Ok(run)
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn variables_are_name_equals_value() {
        assert_eq!(
            parse_var("source=http://partner/fhir?a=b").unwrap(),
            ("source".to_owned(), "http://partner/fhir?a=b".to_owned())
        );
        assert_eq!(
            parse_var(" code =29463-7").unwrap(),
            ("code".to_owned(), "29463-7".to_owned())
        );
        assert_eq!(
            parse_var("empty=").unwrap(),
            ("empty".to_owned(), String::new())
        );
        for bad in ["novalue", "=value", "  =value", ""] {
            let e = parse_var(bad).unwrap_err();
            assert!(
                matches!(&e, Error::BadVariable(t) if t == bad),
                "{bad:?}: {e:?}"
            );
        }
    }

    #[test]
    fn headers_are_name_colon_value_and_never_quote_the_value() {
        assert_eq!(
            parse_header("X-Api-Key:  s3cr3t ").unwrap(),
            ("X-Api-Key".to_owned(), "s3cr3t".to_owned())
        );
        assert_eq!(
            parse_header("Authorization: Bearer a:b").unwrap(),
            ("Authorization".to_owned(), "Bearer a:b".to_owned())
        );
        for (bad, says) in [
            ("Authorization Bearer s3cr3t", "without `:`"),
            (": s3cr3t", "empty name"),
            ("   : s3cr3t", "empty name"),
            ("X Api: s3cr3t", "`X Api`: not a header name"),
            ("X-Api: s3cr3t\u{7f}", "`X-Api`: its value"),
        ] {
            let e = parse_header(bad).unwrap_err();
            assert!(matches!(e, Error::BadHeader(_)), "{bad:?}: {e:?}");
            let text = e.to_string();
            assert!(text.contains(says), "{bad:?}: {text}");
            assert!(!text.contains("s3cr3t"), "{bad:?}: {text}");
        }
    }

    #[test]
    fn time_limits_are_positive_seconds() {
        assert_eq!(
            parse_timeout_secs(2.5).unwrap(),
            Duration::from_millis(2500)
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e30] {
            assert!(
                matches!(parse_timeout_secs(bad), Err(Error::BadTimeout(_))),
                "{bad}"
            );
        }
    }

    fn options(base: &str) -> Options {
        Options {
            base: Some(base.to_owned()),
            ..Options::default()
        }
    }

    #[test]
    fn prepare_checks_every_argument_before_anything_is_sent() {
        let (_, scenarios) = options("http://127.0.0.1:9/fhir").prepare().unwrap();
        let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, suites::DEFAULT);

        let refused = |o: Options| o.prepare().map(|_| ()).unwrap_err();
        assert!(matches!(refused(Options::default()), Error::BaseUrl(_)));
        assert!(matches!(refused(options("ftp://x")), Error::BaseUrl(_)));
        assert!(matches!(
            refused(Options {
                timeout_secs: 0.0,
                ..options("http://x")
            }),
            Error::BadTimeout(_)
        ));
        assert!(matches!(
            refused(Options {
                vars: vec!["novalue".to_owned()],
                ..options("http://x")
            }),
            Error::BadVariable(_)
        ));
        assert!(matches!(
            refused(Options {
                headers: vec!["Authorization Bearer t".to_owned()],
                ..options("http://x")
            }),
            Error::BadHeader(_)
        ));
        assert!(matches!(
            refused(Options {
                token: Some("t\u{7f}".to_owned()),
                ..options("http://x")
            }),
            Error::BadHeader(_)
        ));
        assert!(matches!(
            refused(Options {
                suites: vec!["nope".to_owned()],
                ..options("http://x")
            }),
            Error::UnknownSuite(_)
        ));
        // The chain without its source: every step would be skipped, which must not pass.
        let chain = Options {
            suites: vec!["chain".to_owned()],
            ..options("http://x")
        };
        assert!(matches!(
            refused(chain.clone()),
            Error::UnsetVariables { .. }
        ));
        assert!(
            Options {
                vars: vec!["source=http://y/fhir".to_owned()],
                ..chain
            }
            .prepare()
            .is_ok()
        );
    }

    #[test]
    fn debug_shows_no_secrets() {
        let o = Options {
            headers: vec!["X-Api-Key: s3cr3t".to_owned()],
            token: Some("t0k3n".to_owned()),
            ..options("http://x")
        };
        let text = format!("{o:?}");
        assert!(
            !text.contains("s3cr3t") && !text.contains("t0k3n"),
            "{text}"
        );
        assert!(text.contains("http://x"), "{text}");
    }
}
