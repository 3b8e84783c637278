//! Your own connector in the sync engine: register a kind, describe the source in TOML, sync.
//!
//! ```text
//! cargo run -p example-sync-custom-source                       # into sqlite::memory:
//! cargo run -p example-sync-custom-source -- sqlite:band.db     # run twice: nothing new
//! ```
//!
//! The connector is `examples/custom-connector` (a made-up wristband's JSON export).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;

use example_custom_connector::PulseBand;
use healthanalyzer_pipeline::{
    BuildContext, Config, Error, Event, Registry, SourceSpec, StopFlag, SyncOptions, sync,
};
use healthanalyzer_source::Source;

const CONFIG: &str = r#"
[[source]]
id = "pulseband"     # PulseBand names itself; keep the two the same
kind = "pulseband"
export = "../custom-connector/data/pulseband.json"
"#;

/// The options of a `kind = "pulseband"` source.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PulseBandOptions {
    /// The export file, relative to the configuration.
    export: String,
}

fn pulseband(spec: &SourceSpec, cx: &BuildContext) -> Result<Arc<dyn Source>, Error> {
    let o: PulseBandOptions = spec.options()?;
    let path = cx.base.join(&o.export);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Config(format!("source {}: {}: {e}", spec.id, path.display())))?;
    let band = PulseBand::from_json(&text)
        .map_err(|e| Error::Config(format!("source {}: {e}", spec.id)))?;
    Ok(Arc::new(band))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite::memory:".into());
    let mut registry = Registry::builtin();
    registry.register("pulseband", pulseband);
    let result = async {
        let mut config = Config::parse(CONFIG)?;
        config.base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
        let sources = registry.build_all(&config)?;
        let store = healthanalyzer_pipeline::open_store(&url).await?;
        let on_event = |e: Event| {
            if let Event::Stored { source, pulled, .. } = e {
                println!("{source}: stored a batch of {pulled}");
            }
        };
        Ok::<_, Error>(
            sync(
                store,
                &sources,
                &SyncOptions::default(),
                &StopFlag::new(),
                &on_event,
            )
            .await,
        )
    }
    .await;
    match result {
        Ok(summaries) => {
            for s in summaries {
                println!(
                    "{}: {} pulled, {} new, {} rejected ({:?})",
                    s.source, s.pulled, s.inserted, s.rejected_count, s.outcome
                );
                for r in &s.rejected {
                    println!("  rejected {}: {}", r.location, r.reason);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
