//! Writes what this crate emits for the shared fixtures into a folder, for the independent
//! validators (`../shared/tools/validate_fhir.py`, run by `.ci/run`):
//!
//! ```text
//! cargo run -p healthanalyzer-fhir --example emit -- FIXTURES_DIR OUT_DIR
//! ```
//!
//! For each HL7 vital-sign Observation and Patient example: the resource written back (from its
//! payload), and written fresh from the model alone under every output profile; a collection, a
//! conditional transaction and a searchset Bundle of them all under every profile; and, per
//! profile, a home-monitoring transaction with one reading of every catalog kind from a device
//! known by its EUI-64 (so Devices and the dk-core PHD identifier are validated too).

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};

use healthanalyzer_fhir::EUI64_SYSTEM;
use healthanalyzer_fhir::{
    BundleKind, Profile, ReadOptions, WriteOptions, read_observation, read_patient, write_bundle,
    write_observation, write_patient,
};
use healthanalyzer_model::{
    Catalog, DateTime, Decimal, DeviceRef, Effective, Identifier, Measurement, Provenance, Subject,
    Value, ValueSpec, systems,
};

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
    let options = ReadOptions::new(catalog, "hl7-examples");
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
            &write_observation(&m, &WriteOptions::new(catalog))?,
        )?;
        let mut bare = m.clone();
        bare.provenance.payload = None;
        for &profile in Profile::ALL {
            let options = WriteOptions::new(catalog).with_profile(profile);
            write(
                format!("{stem}.fresh.{profile}.json"),
                &write_observation(&bare, &options)?,
            )?;
        }
        measurements.push(m);
    }
    let mut subjects = Vec::new();
    for path in files(&examples.join("patient"))? {
        let text = std::fs::read_to_string(&path)?;
        let s = read_patient(&text)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("x");
        let mut bare = s.clone();
        bare.payload = None;
        for &profile in Profile::ALL {
            write(
                format!("{stem}.fresh.{profile}.json"),
                &write_patient(&bare, profile)?,
            )?;
        }
        subjects.push(s);
    }
    for &profile in Profile::ALL {
        let options = WriteOptions::new(catalog).with_profile(profile);
        for (kind, name) in [
            (BundleKind::Collection, "collection"),
            (BundleKind::Transaction, "transaction"),
            (BundleKind::Searchset, "searchset"),
        ] {
            write(
                format!("Bundle-{name}.{profile}.json"),
                &write_bundle(kind, &subjects, &measurements, &options)?,
            )?;
        }
        let (subject, readings) = home_monitoring(catalog, profile)?;
        write(
            format!("Bundle-home-monitoring.{profile}.json"),
            &write_bundle(BundleKind::Transaction, &[subject], &readings, &options)?,
        )?;
    }
    eprintln!(
        "emitted {} observations (back, and fresh per profile), {} patients and 4 bundles per profile into {}",
        measurements.len(),
        subjects.len(),
        out.display()
    );
    Ok(())
}

/// One reading of every kind in the catalog from a home monitor known by its EUI-64, for a
/// patient known by the profile's national identifier.
fn home_monitoring(
    catalog: &Catalog,
    profile: Profile,
) -> Result<(Subject, Vec<Measurement>), Error> {
    let id = match profile {
        Profile::NlCore => Identifier::new(systems::BSN, "999911120"),
        Profile::NoBasis => Identifier::new(systems::FNR, "13116900216"),
        _ => Identifier::new(systems::CPR, "0101709995"),
    };
    let device = DeviceRef {
        identifier: Some(Identifier::new(EUI64_SYSTEM, "74E8FFFEFF051C00")),
        display: Some("Home monitor".into()),
        manufacturer: Some("Acme".into()),
        model: Some("HM-1".into()),
        ..DeviceRef::default()
    };
    let at = DateTime::parse("2024-05-01T07:31:00+02:00")?;
    let mut readings = Vec::new();
    for kind in catalog.kinds() {
        let value = match (&kind.value, kind.components.as_slice()) {
            (Some(spec), _) => Value::quantity(middle(spec)?, spec.unit.clone()),
            (None, [sys, dia, ..]) => {
                Value::blood_pressure(middle(&sys.value)?, middle(&dia.value)?)
            }
            _ => continue,
        };
        let mut m = Measurement::new(
            Provenance::new("home-monitor", kind.id.as_str()),
            id.clone(),
            kind.id.clone(),
            value,
            Effective::At(at),
        );
        m.device = Some(device.clone());
        readings.push(m);
    }
    Ok((Subject::new(id), readings))
}

/// The middle of a kind's plausible range, rounded to a whole number.
fn middle(spec: &ValueSpec) -> Result<Decimal, Error> {
    let range = spec.range.as_ref().ok_or("no plausible range")?;
    Ok(((range.min + range.max) / Decimal::from(2)).round())
}
