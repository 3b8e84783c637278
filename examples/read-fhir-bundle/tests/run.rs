//! The example as a real process, on its built-in Bundle.

use std::process::Command;

#[test]
fn reads_the_bundle_normalises_and_reports_the_unusable_entry() {
    let out = Command::new(env!("CARGO_BIN_EXE_example-read-fhir-bundle"))
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("patient urn:example:mrn|12345 Jensen"),
        "{text}"
    );
    assert!(
        text.contains("body-weight 12345 2024-03-01T07:30:00+01:00 83.91 kg"),
        "{text}"
    );
    assert!(
        text.contains("systolic=142 mm[Hg] diastolic=88 mm[Hg]"),
        "{text}"
    );
    assert!(
        text.contains("entry 3 not used") && text.contains("0000-0"),
        "{text}"
    );
}
