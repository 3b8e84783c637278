//! Writes what this crate emits for the shared fixtures into a folder, for the independent
//! validators (`../shared/tools/validate_fhir.py`, run by `.ci/run`):
//!
//! ```text
//! cargo run -p healthanalyzer-fhir --example emit -- FIXTURES_DIR OUT_DIR
//! ```
//!
//! For each HL7 vital-sign Observation and Patient example: the resource written back (from its
//! payload) and written fresh from the model alone; plus a collection, a conditional
//! transaction and a searchset Bundle of them all.

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};

use healthanalyzer_fhir::{
    BundleKind, ReadOptions, read_observation, read_patient, write_bundle, write_observation,
    write_patient,
};
use healthanalyzer_model::Catalog;

type Error = Box<dyn std::error::Error>;

fn files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    out.sort();
    Ok(out)
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(fixtures), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: emit FIXTURES_DIR OUT_DIR".into());
    };
    let examples = Path::new(&fixtures).join("hl7-fhir-r4-examples");
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let catalog = Catalog::builtin();
    let options = ReadOptions {
        catalog,
        source_id: "hl7-examples",
    };
    let write = |name: String, v: &serde_json::Value| -> Result<(), Error> {
        std::fs::write(out.join(name), serde_json::to_string_pretty(v)?)?;
        Ok(())
    };
    let mut measurements = Vec::new();
    for path in files(&examples.join("observation"))? {
        let text = std::fs::read_to_string(&path)?;
        if !text.contains("\"vital-signs\"") {
            continue;
        }
        let Ok(m) = read_observation(&text, &options, None) else {
            continue;
        };
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("x");
        write(
            format!("{stem}.back.json"),
            &write_observation(&m, catalog)?,
        )?;
        let mut bare = m.clone();
        bare.provenance.payload = None;
        write(
            format!("{stem}.fresh.json"),
            &write_observation(&bare, catalog)?,
        )?;
        measurements.push(m);
    }
    let mut subjects = Vec::new();
    for path in files(&examples.join("patient"))? {
        let text = std::fs::read_to_string(&path)?;
        let s = read_patient(&text)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("x");
        let mut bare = s.clone();
        bare.payload = None;
        write(format!("{stem}.fresh.json"), &write_patient(&bare)?)?;
        subjects.push(s);
    }
    for (kind, name) in [
        (BundleKind::Collection, "collection"),
        (BundleKind::Transaction, "transaction"),
        (BundleKind::Searchset, "searchset"),
    ] {
        write(
            format!("Bundle-{name}.json"),
            &write_bundle(kind, &subjects, &measurements, catalog)?,
        )?;
    }
    eprintln!(
        "emitted {} observations (back and fresh), {} patients and 3 bundles into {}",
        measurements.len(),
        subjects.len(),
        out.display()
    );
    Ok(())
}
