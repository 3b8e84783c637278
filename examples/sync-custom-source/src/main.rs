//! Your own connector in the `healthanalyzer` command line: register its kind, name it in
//! `healthanalyzer.toml`, and every command works with it (`sync` with progress, Ctrl-C,
//! `--db`, `--json` and the exit codes; `patients`, `report`, `export` on what it stored).
//!
//! ```text
//! cd examples/sync-custom-source
//! cargo run -p example-sync-custom-source -- sync --accept-partial   # into healthanalyzer.db
//! cargo run -p example-sync-custom-source -- patients
//! ```
//!
//! The connector is `examples/custom-connector` (a made-up wristband's JSON export).

use std::process::ExitCode;
use std::sync::Arc;

use example_custom_connector::PulseBand;
use healthanalyzer_pipeline::{BuildContext, Error, Registry, SourceSpec};
use healthanalyzer_source::Source;

/// The options of a `kind = "pulseband"` source.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PulseBandOptions {
    /// The export file, relative to the configuration.
    export: String,
}

/// Builds a `kind = "pulseband"` source from its `[[source]]` table.
fn pulseband(spec: &SourceSpec, cx: &BuildContext) -> Result<Arc<dyn Source>, Error> {
    let o: PulseBandOptions = spec.options()?;
    let path = cx.base.join(&o.export);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Config(format!("source {}: {}: {e}", spec.id, path.display())))?;
    let band = PulseBand::from_json(&text)
        .map_err(|e| Error::Config(format!("source {}: {e}", spec.id)))?;
    Ok(Arc::new(band))
}

fn main() -> ExitCode {
    let mut registry = Registry::builtin();
    registry.register("pulseband", pulseband);
    healthanalyzer_cli::main(registry)
}
