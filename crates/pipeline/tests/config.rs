//! `healthanalyzer.toml`: parsing, errors that say what to fix, the registry.

use std::sync::{Arc, Mutex};

use healthanalyzer_pipeline::{BuildContext, Config, Registry, SourceSpec};
use healthanalyzer_source::{Source, StaticSource};

const EXAMPLE: &str = r#"
store = "sqlite:ward.db"

[sync]
concurrency = 2
batch_size = 500

[[source]]
id = "ward-sim"
kind = "sim"
patients = 12
days = 30
start = "2024-02-01"

[rules]
[[rules.threshold]]
kind = "oxygen-saturation"
red_low = 88

[report]
days = 60
time_zone = "Europe/Oslo"
"#;

fn err(text: &str) -> String {
    match Config::parse(text) {
        Ok(c) => match Registry::builtin().build_all(&c) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_documented_example_parses_and_builds() {
    let c = Config::parse(EXAMPLE).expect("parse");
    assert_eq!(c.store.as_deref(), Some("sqlite:ward.db"));
    assert_eq!(c.sync.concurrency, Some(2));
    assert_eq!(c.rules().expect("rules").thresholds[0].red_low, Some(88.0));
    assert_eq!(c.report.days, Some(60));
    assert_eq!(c.time_zone().expect("tz").iana_name(), Some("Europe/Oslo"));
    let sources = Registry::builtin().build_all(&c).expect("build");
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].id(), "ward-sim");
    assert_eq!(sources[0].kind(), "sim");
}

#[test]
fn mistakes_give_one_clear_message() {
    let e = err("stor = \"sqlite:x.db\"\n");
    assert!(e.contains("unknown field `stor`"), "{e}");

    let e = err("[[source]]\nid = \"a\"\nkind = \"sim\"\npatiens = 3\n");
    assert!(
        e.contains("source a (kind sim)") && e.contains("patiens"),
        "{e}"
    );

    let e = err("[[source]]\nid = \"a\"\nkind = \"ftp\"\n");
    assert!(
        e.contains("unknown kind \"ftp\"")
            && e.contains(
                "known kinds: dexcom, fhir, files, fitbit, ihealth, nightscout, sim, withings."
            ),
        "{e}"
    );

    let e = err("[[source]]\nid = \"a\"\nkind = \"sim\"\n[[source]]\nid = \"a\"\nkind = \"sim\"\n");
    assert!(e.contains("two sources have the id \"a\""), "{e}");

    let e = err("[[source]]\nid = \"f\"\nkind = \"files\"\npath = \"/nonexistent/x.csv\"\n");
    assert!(
        e.contains("source f") && e.contains("does not exist"),
        "{e}"
    );

    let e = err("[[source]]\nid = \"f\"\nkind = \"files\"\npath = \"x\"\nformat = \"excel\"\n");
    assert!(e.contains("source f"), "{e}");

    let e = err(
        "[[source]]\nid = \"c\"\nkind = \"fhir\"\nbase_url = \"http://x\"\ntoken = \"${HEALTHANALYZER_TEST_SURELY_UNSET}\"\n",
    );
    assert!(
        e.contains("${HEALTHANALYZER_TEST_SURELY_UNSET}, which is not set"),
        "{e}"
    );

    let e = err(
        "[[source]]\nid = \"c\"\nkind = \"fhir\"\nbase_url = \"http://x\"\ntoken = \"t\"\nclient_id = \"me\"\n",
    );
    assert!(e.contains("either `token`"), "{e}");

    let c = Config::parse("[report]\ntime_zone = \"Mars/Olympus\"\n").expect("parse");
    let e = c.time_zone().expect_err("no such zone").to_string();
    assert!(e.contains("Mars/Olympus") && e.contains("IANA name"), "{e}");
}

#[test]
fn an_embedder_registers_its_own_connector() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut registry = Registry::builtin();
    let log = seen.clone();
    registry.register("pulseband", move |spec: &SourceSpec, _: &BuildContext| {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct O {
            device: String,
            home: String,
        }
        let o: O = spec.options()?;
        log.lock()
            .expect("lock")
            .push(format!("{} {}", o.device, o.home));
        let s: Arc<dyn Source> = Arc::new(StaticSource::new(&spec.id, Vec::new()));
        Ok(s)
    });
    // ${HOME} comes from the environment.
    let home = std::env::var("HOME").unwrap_or_default();
    let c = Config::parse(
        "[[source]]\nid = \"band\"\nkind = \"pulseband\"\ndevice = \"PB-1\"\nhome = \"at ${HOME}!\"\n",
    )
    .expect("parse");
    let sources = registry.build_all(&c).expect("build");
    assert_eq!(sources[0].id(), "band");
    assert_eq!(seen.lock().expect("lock")[0], format!("PB-1 at {home}!"));
    assert!(registry.kinds().contains(&"pulseband"));
}

/// The example in docs/configuration.md parses, rules included.
#[test]
fn the_configuration_doc_example_is_valid() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
    )
    .expect("docs/configuration.md");
    let block = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block");
    let c = Config::parse(block).expect("the documented configuration");
    assert_eq!(c.sources.len(), 3);
    let rules = c.rules().expect("rules");
    assert_eq!(rules.groups[0].thresholds[0].red_low, Some(85.0));
    assert_eq!(
        rules
            .threshold_for(
                "urn:oid:1.2.208.176.1.2|0101709995",
                "blood-pressure.systolic"
            )
            .and_then(|t| t.yellow_high),
        Some(160.0)
    );
    assert_eq!(c.report.title.as_deref(), Some("Ward 3, home monitoring"));
    // The sim source builds as documented.
    let sim = &c.sources[0];
    let built = Registry::builtin()
        .build(sim, &BuildContext::default())
        .expect("sim source");
    assert_eq!(built.len(), 1);
    assert_eq!(built[0].id(), "ward-sim");
}

const CLOUD: &str = r#"
[[source]]
id = "withings"
kind = "withings"
client_id = "app"
client_secret = "${HEALTHANALYZER_TEST_CLOUD_SECRET}"

[[source.citizen]]
name = "anna"
subject = "urn:oid:1.2.208.176.1.2|0101709995"

[[source.citizen]]
name = "bo"
subject = "urn:oid:1.2.208.176.1.2|0202709996"
"#;

#[test]
fn a_device_cloud_is_a_source_per_citizen_and_its_mistakes_are_named() {
    let text = CLOUD.replace("${HEALTHANALYZER_TEST_CLOUD_SECRET}", "s3cret");
    let c = Config::parse(&text).expect("parse");
    let sources = Registry::builtin().build_all(&c).expect("build");
    let ids: Vec<&str> = sources.iter().map(|s| s.id()).collect();
    assert_eq!(ids, ["withings/anna", "withings/bo"]);
    assert!(sources.iter().all(|s| s.kind() == "withings"));

    // connect finds the source by id or by kind, and the citizen by name.
    let cloud = healthanalyzer_pipeline::find_cloud_source(&c, "withings").expect("by kind");
    assert_eq!(cloud.citizen("bo").expect("bo").name, "bo");
    let e = cloud.citizen("carl").expect_err("no carl").to_string();
    assert!(e.contains("anna, bo"), "{e}");
    let e = healthanalyzer_pipeline::find_cloud_source(&c, "fitbit")
        .expect_err("none")
        .to_string();
    assert!(e.contains("withings (withings)"), "{e}");

    let e = err(&text.replace(
        "client_id = \"app\"",
        "client_id = \"app\"\nclient_secrett = \"x\"",
    ));
    assert!(
        e.contains("source withings (kind withings)") && e.contains("client_secrett"),
        "{e}"
    );
    let e = err(&text.replace("client_id = \"app\"\n", ""));
    assert!(
        e.contains("client_id") && e.contains("docs/connectors/withings.md"),
        "{e}"
    );
    let e = err(&text.replace("name = \"bo\"", "name = \"0202709996\"\nnam = \"x\""));
    assert!(e.contains("nam"), "{e}");
    let e = err(&text.replace("name = \"bo\"", "name = \"anna\""));
    assert!(e.contains("citizen anna is listed twice"), "{e}");
    let e = err(&text.replace("name = \"bo\"", "name = \"b o\""));
    assert!(e.contains("letters, digits"), "{e}");
    let e = err(&text.replace("kind = \"withings\"", "kind = \"withings\"\nsandbox = true"));
    assert!(e.contains("`sandbox` is a Dexcom setting"), "{e}");
    let e = err(&text.replace(
        "kind = \"withings\"",
        "kind = \"withings\"\napi_version = 3",
    ));
    assert!(
        e.contains("`api_version` is a Nightscout setting, not a Withings one"),
        "{e}"
    );
    // No message quotes the secret or a subject's identifier.
    for e in [
        err(&text.replace("client_id = \"app\"\n", "")),
        err(&text.replace("name = \"bo\"", "name = \"anna\"")),
    ] {
        assert!(!e.contains("s3cret") && !e.contains("0101709995"), "{e}");
    }
}

const FUT: &str = r#"
[export]
profile = "fut"

[export.fut]
patient_base = "https://patient.example.dk/fhir/"
careplan_base = "https://careplan.example.dk/fhir"
organization_base = "https://organization.example.dk/fhir"

[[export.fut.subject]]
identifier = "urn:oid:1.2.208.176.1.2|0101709995"
patient = "76312"
episode_of_care = "39765"
service_request = "37067"
service_request_version = "42"

[[export.fut.subject]]
identifier = "urn:oid:1.2.208.176.1.2|0202709996"
patient = "76313"
episode_of_care = "39766"
service_request = "37068"
service_request_version = "3"
performer = "Practitioner/501"
"#;

fn export_err(text: &str, explicit: Option<&str>) -> String {
    let c = Config::parse(text).expect("parses");
    match c.export_options(explicit) {
        Ok((p, _)) => panic!("accepted as {p}: {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_fut_export_settings_become_the_fut_context() {
    use healthanalyzer_fhir::{FutPerformer, Profile};
    use healthanalyzer_model::Identifier;
    let c = Config::parse(FUT).expect("parses");
    let (profile, national) = c.export_options(None).expect("fut");
    assert_eq!(profile, Profile::Fut);
    let fut = national.fut.expect("the FUT context");
    // A trailing slash is dropped, so references do not get two.
    assert_eq!(fut.patient_base, "https://patient.example.dk/fhir");
    assert_eq!(fut.subjects.len(), 2);
    let second = fut
        .subject(&Identifier::cpr("0202709996"))
        .expect("second subject");
    assert_eq!(second.performer, FutPerformer::Practitioner("501".into()));
    assert_eq!(
        fut.subject(&Identifier::cpr("0101709995"))
            .map(|s| &s.performer),
        Some(&FutPerformer::Patient)
    );
    assert!(national.pmd.is_none());
    // The command line's --profile wins over [export] profile.
    let (profile, national) = c.export_options(Some("dk-core")).expect("dk-core");
    assert_eq!(profile, Profile::DkCore);
    assert!(national.fut.is_none());
}

#[test]
fn a_missing_or_wrong_fut_setting_is_named() {
    let e = export_err("", Some("fut"));
    assert!(
        e.contains("[export.fut]") && e.contains("patient_base"),
        "{e}"
    );
    let e = export_err(
        &FUT.replace("patient_base = \"https://patient.example.dk/fhir/\"\n", ""),
        None,
    );
    assert!(e.contains("export.fut.patient_base is required"), "{e}");
    let e = export_err(
        &FUT.replace(
            "careplan_base = \"https://careplan.example.dk/fhir\"",
            "careplan_base = \"careplan.example.dk\"",
        ),
        None,
    );
    assert!(
        e.contains("export.fut.careplan_base must be an absolute http(s) URL"),
        "{e}"
    );
    let e = export_err(&FUT.replace("episode_of_care = \"39766\"\n", ""), None);
    assert!(
        e.contains("export.fut.subject[1].episode_of_care is required"),
        "{e}"
    );
    let e = export_err(&FUT.replace("Practitioner/501", "Device/1"), None);
    assert!(e.contains("export.fut.subject[1].performer must be"), "{e}");
    let e = export_err(
        &FUT.replace(
            "service_request = \"37067\"",
            "service_request = \"ServiceRequest/37067\"",
        ),
        None,
    );
    assert!(
        e.contains("export.fut.subject[0].service_request must be a FHIR logical id"),
        "{e}"
    );
    let e = export_err(&FUT.replace("0202709996", "0101709995"), None);
    assert!(e.contains("listed twice"), "{e}");
    assert!(
        !e.contains("0101709995"),
        "the message does not repeat the CPR number: {e}"
    );
    // An unknown key is refused, not ignored.
    let e = Config::parse(&FUT.replace("[export.fut]\n", "[export.fut]\npatient_url = \"x\"\n"))
        .expect_err("unknown key")
        .to_string();
    assert!(e.contains("patient_url"), "{e}");
}

#[test]
fn the_pmd_export_settings_are_optional_and_checked() {
    use healthanalyzer_fhir::{DEFAULT_SUBJECT_DISPLAY, Profile};
    let c = Config::parse("[export]\nprofile = \"vkp\"\n").expect("parses");
    let (profile, national) = c.export_options(None).expect("defaults");
    assert_eq!(profile, Profile::Pmd);
    let pmd = national.pmd.expect("defaults");
    assert_eq!(pmd.subject_display, DEFAULT_SUBJECT_DISPLAY);
    assert!(pmd.author.is_none() && pmd.organization.is_none());
    let c = Config::parse(
        r#"
[export]
profile = "pmd"
[export.pmd]
subject_display = "Innbygger"
author = "urn:oid:2.16.578.1.12.4.1.4.1|13116900216"
organization = "urn:oid:2.16.578.1.12.4.1.4.102|4001031"
organization_display = "Sykehuset"
"#,
    )
    .expect("parses");
    let pmd = c.export_options(None).expect("pmd").1.pmd.expect("pmd");
    assert_eq!(pmd.subject_display, "Innbygger");
    assert_eq!(
        pmd.organization.as_ref().map(|o| o.1.as_str()),
        Some("Sykehuset")
    );
    let e = export_err(
        "[export.pmd]\norganization = \"urn:oid:1.2.3|4001031\"\n",
        Some("pmd"),
    );
    assert!(
        e.contains("export.pmd.organization") && e.contains("ORG"),
        "{e}"
    );
    let e = export_err("[export]\nprofile = \"pmd-no\"\n", None);
    assert!(
        e.contains("export.profile") && e.contains("fut") && e.contains("pmd"),
        "{e}"
    );
}

#[test]
fn the_configuration_doc_export_example_is_valid() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
    )
    .expect("docs/configuration.md");
    let block = doc
        .split("## Export profiles")
        .nth(1)
        .and_then(|s| s.split("```toml\n").nth(1))
        .and_then(|b| b.split("```").next())
        .expect("the export toml block");
    let c = Config::parse(block).expect("the documented export settings");
    let (profile, national) = c.export_options(None).expect("fut");
    assert_eq!(profile, healthanalyzer_fhir::Profile::Fut);
    assert_eq!(national.fut.map(|f| f.subjects.len()), Some(1));
    let pmd = c
        .export_options(Some("pmd"))
        .expect("pmd")
        .1
        .pmd
        .expect("pmd");
    assert_eq!(pmd.subject_display, "Pasient");
}
