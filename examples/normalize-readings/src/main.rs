//! Validates and normalises readings given as `kind,value,unit,time` lines on standard input,
//! printing each normalised measurement as JSON or the reasons it was rejected.
//!
//! ```text
//! printf 'body-weight,185,lb,2024-03-31T08:15:00+02:00\nheart-rate,312,/min,2024-03-31T08:16:00+02:00\n' \
//!   | cargo run -p example-normalize-readings
//! ```
#![allow(clippy::print_stdout)]

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use healthanalyzer_model::{
    Catalog, DateTime, Identifier, Measurement, Provenance, Validator, Value, parse_decimal,
};

fn reading(line: &str, line_no: usize) -> Result<Measurement, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [kind, value, unit, time] = fields[..] else {
        return Err("expected 4 fields: kind,value,unit,time".into());
    };
    let value = parse_decimal(value).map_err(|e| e.to_string())?;
    let time = DateTime::parse(time).map_err(|e| e.to_string())?;
    Ok(Measurement::new(
        Provenance::new("stdin", format!("line-{line_no}")),
        Identifier::local("example-patient"),
        kind,
        Value::quantity(value, unit),
        time,
    ))
}

fn main() -> ExitCode {
    let validator = Validator::new(Catalog::builtin());
    let mut out = io::stdout().lock();
    let mut rejected = 0;
    for (i, line) in io::stdin().lock().lines().enumerate() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let result =
            reading(&line, i + 1).and_then(|m| validator.normalize(m).map_err(|e| e.to_string()));
        let written = match result {
            Ok(m) => match serde_json::to_string(&m) {
                Ok(json) => writeln!(out, "{json}"),
                Err(e) => writeln!(out, "line {}: cannot serialise: {e}", i + 1),
            },
            Err(reason) => {
                rejected += 1;
                writeln!(out, "line {}: rejected: {reason}", i + 1)
            }
        };
        if written.is_err() {
            return ExitCode::FAILURE;
        }
    }
    if rejected > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
