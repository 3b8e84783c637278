//! The shared fixtures beside the project, found through `HEALTHANALYZER_FIXTURES`.

use std::io::Write;
use std::path::PathBuf;

/// `$HEALTHANALYZER_FIXTURES/hl7-fhir-r4-examples`, or `None` with a notice on stderr (written
/// straight to the process's stderr: libtest captures `eprintln!`, and a skip must show).
pub(crate) fn hl7_examples(test: &str) -> Option<PathBuf> {
    match std::env::var_os("HEALTHANALYZER_FIXTURES") {
        Some(dir) => Some(PathBuf::from(dir).join("hl7-fhir-r4-examples")),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: HEALTHANALYZER_FIXTURES is not set (.ci/run sets it to ../shared/fixtures)"
            );
            None
        }
    }
}
