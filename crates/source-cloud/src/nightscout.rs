//! Nightscout.

use std::sync::Arc;

use healthanalyzer_source::Source;

use crate::Error;
use crate::oauth::Dialect;
use crate::setup::{Context, Defaults};

/// Nightscout's endpoints and scopes.
pub(crate) const DEFAULTS: Defaults = Defaults {
    api_base: "https://example.invalid/",
    authorize: "https://example.invalid/authorize",
    token: "https://example.invalid/token",
    scopes: &[],
    scope_separator: " ",
    dialect: Dialect::Standard,
};

/// The source of one citizen.
pub(crate) fn source(cx: Context) -> Result<Arc<dyn Source>, Error> {
    Err(Error::Config(format!(
        "source {}: the Nightscout connector is not built yet",
        cx.source_id
    )))
}
