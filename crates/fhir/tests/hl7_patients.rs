//! Every HL7 R4 Patient example reads into a subject and writes back equal as JSON; written
//! fresh from the subject alone, it reads back into the same subject.

mod common;

use healthanalyzer_fhir::{Profile, read_patient, write_patient};
use serde_json::Value;

#[test]
fn patient_examples_round_trip_exactly() {
    let Some(dir) = common::hl7_examples("patient_examples_round_trip_exactly") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(dir.join("patient"))
        .expect("patients")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 22);
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().expect("name").to_string_lossy();
        let text = std::fs::read_to_string(path).expect("read");
        let s = match read_patient(&text) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let back = write_patient(&s, Profile::VitalSigns).expect("write");
        let input: Value = serde_json::from_str(&text).expect("json");
        if back != input {
            failures.push(format!("{name}: written back differs"));
        }
        let mut bare = s.clone();
        bare.payload = None;
        let fresh = write_patient(&bare, Profile::VitalSigns).expect("fresh");
        let again = read_patient(&fresh.to_string()).expect("read fresh");
        if (&again.id, &again.other_ids, &again.name, again.gender)
            != (&s.id, &s.other_ids, &s.name, s.gender)
            || format!("{:?}", again.birth_date) != format!("{:?}", s.birth_date)
        {
            failures.push(format!("{name}: a fresh Patient reads back differently"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
