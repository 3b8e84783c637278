//! The built-in suites: `vital-signs` (made from the measurement catalog), `errors` and `chain`,
//! the national exchanges `fut` (Denmark), `pmd` (Norway) and `medmij` (the Netherlands), and
//! their chains end to end `chain-fut`, `chain-pmd`, `chain-medmij` (TOML files in `suites/`,
//! which double as examples of the format).

use std::collections::BTreeMap;

use healthanalyzer_model::{Catalog, KindDef};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::scenario::{
    Capture, Check, Count, Expect, Request, Scenario, Severity, StatusSpec, Step,
};

/// The names of the built-in suites.
pub const SUITES: [&str; 9] = [
    "vital-signs",
    "errors",
    "chain",
    "fut",
    "pmd",
    "medmij",
    "chain-fut",
    "chain-pmd",
    "chain-medmij",
];

/// The suites run when neither a suite nor a scenario file is named (the chain needs a source;
/// the national suites need a server that speaks the national exchange, and `medmij` a
/// patient's token).
pub const DEFAULT: [&str; 2] = ["vital-signs", "errors"];

const ERRORS: &str = include_str!("../suites/errors.toml");
const CHAIN: &str = include_str!("../suites/chain.toml");
const FUT: &str = include_str!("../suites/fut.toml");
const PMD: &str = include_str!("../suites/pmd.toml");
const MEDMIJ: &str = include_str!("../suites/medmij.toml");
const CHAIN_FUT: &str = include_str!("../suites/chain-fut.toml");
const CHAIN_PMD: &str = include_str!("../suites/chain-pmd.toml");
const CHAIN_MEDMIJ: &str = include_str!("../suites/chain-medmij.toml");

/// A built-in suite by name.
pub fn builtin(name: &str) -> Result<Scenario> {
    match name {
        "vital-signs" => Ok(vital_signs(Catalog::builtin(), jiff::Timestamp::now())),
        "errors" => Scenario::from_toml(ERRORS, "built-in suite errors"),
        "chain" => Scenario::from_toml(CHAIN, "built-in suite chain"),
        "fut" => Scenario::from_toml(FUT, "built-in suite fut"),
        "pmd" => Scenario::from_toml(PMD, "built-in suite pmd"),
        "medmij" => Scenario::from_toml(MEDMIJ, "built-in suite medmij"),
        "chain-fut" => Scenario::from_toml(CHAIN_FUT, "built-in suite chain-fut"),
        "chain-pmd" => Scenario::from_toml(CHAIN_PMD, "built-in suite chain-pmd"),
        "chain-medmij" => Scenario::from_toml(CHAIN_MEDMIJ, "built-in suite chain-medmij"),
        other => Err(Error::UnknownSuite(other.to_owned())),
    }
}

/// The built-in suites, one line each: the name and what it checks (what `--list` prints).
pub fn list() -> Result<String> {
    let mut text = String::new();
    for name in SUITES {
        let s = builtin(name)?;
        text.push_str(&format!("{name:<12} {}\n", s.description));
    }
    Ok(text)
}

/// A typical reading of a built-in kind or component, so the suite's data looks like real
/// data; other kinds get the middle of their plausible range.
fn typical(id: &str) -> Option<f64> {
    Some(match id {
        "systolic" => 128.0,
        "diastolic" => 82.0,
        "mean-blood-pressure" => 97.0,
        "heart-rate" => 68.0,
        "body-weight" => 72.4,
        "body-height" => 176.5,
        "head-circumference" => 56.0,
        "bmi" => 23.4,
        "body-temperature" => 36.8,
        "respiratory-rate" => 14.0,
        "oxygen-saturation" => 97.0,
        "blood-glucose" => 104.0,
        "capillary-glucose" => 98.0,
        "steps" => 8421.0,
        _ => return None,
    })
}

fn value_for(id: &str, spec: &healthanalyzer_model::ValueSpec) -> f64 {
    typical(id).unwrap_or_else(|| {
        spec.range.map_or(1.0, |r| {
            let lo: f64 = r.min.to_string().parse().unwrap_or(0.0);
            let hi: f64 = r.max.to_string().parse().unwrap_or(lo);
            ((lo + hi) / 2.0 * 10.0).round() / 10.0
        })
    })
}

fn quantity(value: f64, unit: &str) -> Value {
    json!({"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit})
}

/// One Observation of `kind` for `Patient/${patient}` at `when`, and the checks that its
/// read-back must pass.
pub(crate) fn observation(kind: &KindDef, when: &str) -> Option<(Value, Vec<Check>)> {
    let primary = kind.primary()?;
    let mut checks = vec![
        check("resourceType", json!("Observation")),
        check("code.coding[0].code", json!(primary.code)),
        check("subject.reference", json!("Patient/${patient}")),
        check("effectiveDateTime", json!(when)),
    ];
    let mut obs = json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": kind.category,
        }]}],
        "code": {
            "coding": [{"system": primary.system, "code": primary.code, "display": kind.display}],
            "text": kind.display,
        },
        "subject": {"reference": "Patient/${patient}"},
        "effectiveDateTime": when,
    });
    if let Some(spec) = &kind.value {
        let v = value_for(kind.id.as_str(), spec);
        obs["valueQuantity"] = quantity(v, spec.unit.as_str());
        checks.push(approx("valueQuantity.value", v));
        checks.push(check("valueQuantity.code", json!(spec.unit.as_str())));
    } else {
        let mut components = Vec::new();
        for c in &kind.components {
            let coding = c.codings.first()?;
            let v = value_for(c.id.as_str(), &c.value);
            components.push(json!({
                "code": {"coding": [{"system": coding.system, "code": coding.code, "display": c.display}]},
                "valueQuantity": quantity(v, c.value.unit.as_str()),
            }));
            checks.push(approx(
                &format!(
                    "component[code.coding.code={}].valueQuantity.value",
                    coding.code
                ),
                v,
            ));
        }
        obs["component"] = Value::Array(components);
    }
    Some((obs, checks))
}

fn blank(path: &str) -> Check {
    Check {
        path: path.to_owned(),
        exists: None,
        equals: None,
        contains: None,
        matches: None,
        approx: None,
        tolerance: None,
        count: None,
    }
}

fn check(path: &str, equals: Value) -> Check {
    Check {
        equals: Some(equals),
        ..blank(path)
    }
}

fn approx(path: &str, value: f64) -> Check {
    Check {
        approx: Some(value),
        tolerance: Some(1e-9),
        ..blank(path)
    }
}

fn step(name: &str, description: &str, request: Request, expect: Expect) -> Step {
    Step {
        name: name.to_owned(),
        description: description.to_owned(),
        request: Some(request),
        command: None,
        compare: None,
        expect,
        capture: BTreeMap::new(),
        depends_on: Vec::new(),
        timeout_secs: None,
        owner: None,
        severity: None,
        feature: None,
    }
}

fn get(url: String) -> Request {
    Request {
        method: "GET".to_owned(),
        url,
        headers: BTreeMap::new(),
        body: None,
        body_file: None,
        follow_next: None,
        rules: Vec::new(),
    }
}

fn status(s: u16) -> Option<StatusSpec> {
    Some(StatusSpec::One(s))
}

fn search(url: String) -> Request {
    Request {
        follow_next: Some(50),
        ..get(url)
    }
}

fn found(n: u64) -> Expect {
    Expect {
        status: status(200),
        resource_type: Some("Bundle".to_owned()),
        entries: Some(Count::Exactly(n)),
        unique_entries: true,
        ..Expect::default()
    }
}

/// The `vital-signs` suite for a catalog: each kind created, read back equal, found by
/// patient, code and date; paging; `$lastn`. Times are `now` minus a day, a minute apart.
pub fn vital_signs(catalog: &Catalog, now: jiff::Timestamp) -> Scenario {
    let start = now
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap_or(now)
        .round(jiff::Unit::Minute)
        .unwrap_or(now);
    let kinds: Vec<(&KindDef, String, Value, Vec<Check>)> = catalog
        .kinds()
        .iter()
        .enumerate()
        .filter_map(|(i, k)| {
            let at = start
                .checked_add(jiff::SignedDuration::from_mins(
                    i64::try_from(i).unwrap_or(0),
                ))
                .ok()?;
            let when = at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let (obs, checks) = observation(k, &when)?;
            Some((k, when, obs, checks))
        })
        .collect();
    let n = kinds.len() as u64;
    let end = start
        .checked_add(jiff::SignedDuration::from_mins(
            i64::try_from(n).unwrap_or(0),
        ))
        .unwrap_or(start);
    let fmt = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();

    let mut setup = Vec::new();
    let metadata = step(
        "metadata",
        "The CapabilityStatement.",
        get("metadata".to_owned()),
        Expect {
            status: status(200),
            resource_type: Some("CapabilityStatement".to_owned()),
            body: vec![Check {
                matches: Some("^4\\.0".to_owned()),
                ..blank("fhirVersion")
            }],
            ..Expect::default()
        },
    );
    setup.push(metadata);
    let mut patient = step(
        "create patient",
        "The Patient every Observation refers to.",
        Request {
            method: "POST".to_owned(),
            body: Some(crate::scenario::Body::Json(json!({
                "resourceType": "Patient",
                "identifier": [{"system": "urn:healthanalyzer:check", "value": "vital-signs-${run}"}],
                "name": [{"family": "Vital", "given": ["Check"]}],
                "birthDate": "1948-05-17",
            }))),
            ..get("Patient".to_owned())
        },
        Expect {
            status: status(201),
            ..Expect::default()
        },
    );
    patient
        .capture
        .insert("patient".to_owned(), location("Patient"));
    setup.push(patient);

    let mut steps = Vec::new();
    let mut teardown = Vec::new();
    for (kind, _, obs, checks) in &kinds {
        let id = kind.id.as_str();
        let var = format!("obs_{}", id.replace('-', "_"));
        let mut create = step(
            &format!("create {id}"),
            &format!("POST a {} Observation.", kind.display),
            Request {
                method: "POST".to_owned(),
                body: Some(crate::scenario::Body::Json(obs.clone())),
                ..get("Observation".to_owned())
            },
            Expect {
                status: status(201),
                headers: vec![Check {
                    exists: Some(true),
                    ..blank("Location")
                }],
                ..Expect::default()
            },
        );
        create.depends_on = vec!["create patient".to_owned()];
        create.capture.insert(var.clone(), location("Observation"));
        steps.push(create);

        let mut read = step(
            &format!("read {id}"),
            "Read back: the same code, subject, time and values.",
            get(format!("Observation/${{{var}}}")),
            Expect {
                status: status(200),
                body: checks.clone(),
                ..Expect::default()
            },
        );
        read.depends_on = vec![format!("create {id}")];
        steps.push(read);

        let primary = kind.primary().map(|c| format!("{}%7C{}", c.system, c.code));
        let mut by_code = step(
            &format!("search {id} by code"),
            "Found by patient and code (system|code), and only it.",
            search(format!(
                "Observation?patient=${{patient}}&code={}",
                primary.unwrap_or_default()
            )),
            Expect {
                body: vec![check("entry[0].resource.id", json!(format!("${{{var}}}")))],
                ..found(1)
            },
        );
        by_code.depends_on = vec![format!("create {id}")];
        by_code.feature = Some("Observation?code".to_owned());
        steps.push(by_code);

        let mut delete = step(
            &format!("delete {id}"),
            "Clean up.",
            Request {
                method: "DELETE".to_owned(),
                ..get(format!("Observation/${{{var}}}"))
            },
            Expect {
                status: Some(StatusSpec::Any(vec![200, 202, 204])),
                ..Expect::default()
            },
        );
        delete.depends_on = vec![format!("create {id}")];
        delete.severity = Some(Severity::Warning);
        delete.feature = Some("Observation:delete".to_owned());
        teardown.push(delete);
    }
    let creates: Vec<String> = kinds
        .iter()
        .map(|(k, ..)| format!("create {}", k.id.as_str()))
        .collect();
    let mut add =
        |name: &str, description: &str, url: String, expect: Expect, feature: Option<&str>| {
            let mut s = step(name, description, search(url), expect);
            s.depends_on.clone_from(&creates);
            s.feature = feature.map(str::to_owned);
            steps.push(s);
        };
    add(
        "search by patient",
        "Every Observation of the Patient, once.",
        "Observation?patient=${patient}&_count=100".to_owned(),
        found(n),
        Some("Observation?patient"),
    );
    add(
        "search by subject",
        "The same with subject=Patient/id.",
        "Observation?subject=Patient/${patient}&_count=100".to_owned(),
        found(n),
        Some("Observation?subject"),
    );
    add(
        "search by date range",
        "date=ge…&date=lt… around the readings finds them all.",
        format!(
            "Observation?patient=${{patient}}&date=ge{}&date=lt{}&_count=100",
            fmt(start),
            fmt(end)
        ),
        found(n),
        Some("Observation?date"),
    );
    add(
        "search before the readings",
        "date=lt the first reading finds none.",
        format!("Observation?patient=${{patient}}&date=lt{}", fmt(start)),
        found(0),
        Some("Observation?date"),
    );
    add(
        "paging",
        "_count=3 with next links: every Observation once, no page repeated.",
        "Observation?patient=${patient}&_count=3".to_owned(),
        found(n),
        None,
    );
    add(
        "lastn",
        "Observation/$lastn?max=1: the latest of each code.",
        "Observation/$lastn?patient=${patient}&max=1".to_owned(),
        found(n),
        Some("Observation/$lastn"),
    );
    let mut delete_patient = step(
        "delete patient",
        "Clean up.",
        Request {
            method: "DELETE".to_owned(),
            ..get("Patient/${patient}".to_owned())
        },
        Expect {
            status: Some(StatusSpec::Any(vec![200, 202, 204])),
            ..Expect::default()
        },
    );
    delete_patient.depends_on = vec!["create patient".to_owned()];
    delete_patient.severity = Some(Severity::Warning);
    delete_patient.feature = Some("Patient:delete".to_owned());
    teardown.push(delete_patient);

    Scenario {
        name: "vital-signs".to_owned(),
        description: format!(
            "Each of the {n} catalog kinds created, read back equal, found by patient, code and date; paging; $lastn."
        ),
        vars: BTreeMap::new(),
        setup,
        steps,
        teardown,
        dir: None,
    }
}

fn location(ty: &str) -> Capture {
    Capture {
        path: None,
        header: Some("Location".to_owned()),
        regex: Some(format!("{ty}/([^/?#]+)")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use healthanalyzer_fhir::{ReadOptions, read_observation};

    #[test]
    fn the_list_names_every_suite_with_its_description() {
        let text = list().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), SUITES.len(), "{text}");
        for (line, name) in lines.iter().zip(SUITES) {
            let description = builtin(name).unwrap().description;
            assert!(!description.is_empty(), "{name}");
            assert!(
                line.starts_with(name) && line.ends_with(&description),
                "{line}"
            );
        }
        assert!(DEFAULT.iter().all(|d| SUITES.contains(d)));
    }

    #[test]
    fn every_builtin_suite_loads_and_validates() {
        for name in SUITES {
            let s = builtin(name).unwrap();
            s.validate().unwrap();
            assert_eq!(s.name, name);
        }
        assert!(
            builtin("nope")
                .unwrap_err()
                .to_string()
                .contains("vital-signs")
        );
    }

    #[test]
    fn the_vital_signs_data_is_valid_for_every_kind() {
        let catalog = Catalog::builtin();
        let s = vital_signs(catalog, "2026-11-23T10:00:00Z".parse().unwrap());
        let creates: Vec<&Step> = s
            .steps
            .iter()
            .filter(|st| st.name.starts_with("create "))
            .collect();
        assert_eq!(creates.len(), catalog.kinds().len());
        let options = ReadOptions::new(catalog, "check");
        for st in creates {
            let Some(crate::scenario::Body::Json(body)) = &st.request.as_ref().unwrap().body else {
                panic!("{} has no JSON body", st.name);
            };
            let text = body.to_string().replace("${patient}", "p1");
            healthanalyzer_fhir::check_strict(&text).unwrap();
            let m = read_observation(&text, &options, Some("check-1"))
                .unwrap_or_else(|e| panic!("{}: {e}", st.name));
            assert_eq!(format!("create {}", m.kind.as_str()), st.name);
        }
    }
}
