//! `train-dictionary`: trains the zstd dictionary that the SQLite store compresses kept records
//! with (`crates/store-sqlite/dictionary/records-v1.zdict`, ADR 0008).
//!
//! ```text
//! cargo run --release -p healthanalyzer-bench --bin train-dictionary -- OUT.zdict
//! ```
//!
//! The samples are what the store keeps: measurements in the model's JSON form (without their
//! payload) and FHIR R4 Observations as each of the writer's profiles shapes them, for every
//! kind the simulator makes. The dictionary only changes how well rows compress, never what
//! reads back; a new one must get a new format tag in the store's codec, since rows written
//! with the old one keep needing it.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use healthanalyzer_fhir::{Profile, WriteOptions, write_observation};
use healthanalyzer_model::Catalog;
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_sim::{SimConfig, SimSource};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: train-dictionary OUT.zdict");
    let sim = SimSource::new(SimConfig {
        patients: 60,
        days: 30,
        ..SimConfig::default()
    })
    .unwrap();
    let catalog = Catalog::builtin();
    let batch = sim.pull(&Cursor::start(), usize::MAX).await.unwrap();
    let mut samples: Vec<Vec<u8>> = Vec::new();
    for (i, m) in batch.measurements.iter().enumerate().step_by(7) {
        let mut bare = m.clone();
        bare.provenance.payload = None;
        samples.push(serde_json::to_vec(&bare).unwrap());
        let profile = Profile::ALL[i % Profile::ALL.len()];
        let mut options = WriteOptions::new(catalog);
        options.profile = profile;
        samples.push(
            write_observation(m, &options)
                .unwrap()
                .to_string()
                .into_bytes(),
        );
    }
    let dict = zstd::dict::from_samples(&samples, 16 * 1024).unwrap();
    std::fs::write(&out, &dict).unwrap();
    println!(
        "{} bytes from {} samples ({} measurements) -> {out}",
        dict.len(),
        samples.len(),
        batch.measurements.len()
    );
}
