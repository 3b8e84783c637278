//! The worked configurations of the national chains (docs/chains/*.toml) parse, build
//! their FHIR source in the chain's read shape and give the export profile they name; settings
//! that do not fit a shape are refused with a message that says what to set.

use healthanalyzer_fhir::Profile;
use healthanalyzer_pipeline::{Config, Registry};

/// An example with its `${VAR}` placeholders filled in, parsed.
fn example(name: &str) -> Config {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/chains")
        .join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).expect("the example");
    let mut filled = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        filled.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after.find('}').expect("a closed ${");
        filled.push_str("test-token-0123456789");
        rest = &after[end + 1..];
    }
    filled.push_str(rest);
    Config::parse(&filled).unwrap_or_else(|e| panic!("{name}.toml: {e}"))
}

#[test]
fn each_chain_example_parses_builds_its_source_and_names_its_export_profile() {
    for (name, source_id, profile) in [
        ("fut", "fut", Profile::Fut),
        ("pmd", "pmd", Profile::Pmd),
        ("medmij", "pgo", Profile::NlCore),
    ] {
        let config = example(name);
        let sources = Registry::builtin()
            .build_all(&config)
            .unwrap_or_else(|e| panic!("{name}.toml: {e}"));
        assert_eq!(sources.len(), 1, "{name}");
        assert_eq!(sources[0].id(), source_id, "{name}");
        assert_eq!(sources[0].kind(), "fhir", "{name}");
        assert_eq!(
            config.sources[0]
                .options
                .get("shape")
                .and_then(|v| v.as_str()),
            Some(name)
        );
        let (got, national) = config
            .export_options(None)
            .unwrap_or_else(|e| panic!("{name}.toml: {e}"));
        assert_eq!(got, profile, "{name}");
        if profile == Profile::Fut {
            let fut = national.fut.expect("the FUT settings");
            assert_eq!(fut.subjects.len(), 1);
            // What the export submits is what the source reads back: the same patient.
            let patient = config.sources[0]
                .options
                .get("patient")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            assert_eq!(patient, Some(fut.patient_reference(&fut.subjects[0])));
        }
    }
}

fn fhir_source(extra: &str) -> Result<(), String> {
    let text = format!(
        "[[source]]\nid = \"s\"\nkind = \"fhir\"\nbase_url = \"http://127.0.0.1:9/fhir\"\ntoken = \"t\"\n{extra}\n"
    );
    let config = Config::parse(&text).map_err(|e| e.to_string())?;
    Registry::builtin()
        .build_all(&config)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn settings_that_do_not_fit_the_shape_are_named() {
    assert!(fhir_source("shape = \"search\"").is_ok());
    let cases = [
        ("shape = \"medmij\"\npatient = \"Patient/1\"", "the token's"),
        ("shape = \"pmd\"", "system|value"),
        ("shape = \"pmd\"\npatient = \"Patient/1\"", "system|value"),
        ("shape = \"fut\"", "episode_of_care"),
        ("shape = \"fhir\"", "shape: unknown read shape"),
        ("subject = \"urn:test|1\"", "shape = \"fut\" only"),
        ("episode_of_care = \"EpisodeOfCare/1\"", "fut shape only"),
        (
            "shape = \"fut\"\npatient = \"Patient/1\"\noverlap_hours = -1",
            "overlap_hours",
        ),
    ];
    for (extra, said) in cases {
        let e = fhir_source(extra).expect_err(extra);
        assert!(e.contains(said), "{extra}: {e}");
        assert!(e.contains("source s"), "{extra}: the source is named: {e}");
    }
    // MedMij reads the patient of a token: none is an error.
    let text = "[[source]]\nid = \"s\"\nkind = \"fhir\"\nbase_url = \"http://127.0.0.1:9/fhir\"\nshape = \"medmij\"\n";
    let config = Config::parse(text).expect("parses");
    let e = Registry::builtin()
        .build_all(&config)
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("patient-context token")),
        "{e:?}"
    );
    // The fut shape with an episode of care only, and a subject for its measurements.
    assert!(
        fhir_source("shape = \"fut\"\nepisode_of_care = \"EpisodeOfCare/1\"\nsubject = \"urn:oid:1.2.208.176.1.2|0101709995\"").is_ok()
    );
}
