//! The `Source` trait.

use async_trait::async_trait;

use crate::batch::{Batch, Cursor};
use crate::error::Result;

/// A place measurements come from: a FHIR server, a folder of exports, a device cloud, a
/// simulator.
///
/// # Contract
///
/// - **Resumable**: `pull(cursor, limit)` returns the measurements after `cursor`, at most
///   `limit` of them, and the cursor to continue from. Pulling from any cursor a batch
///   returned gives exactly what came after it: nothing lost, nothing twice.
/// - **Stable ids**: the same record gives the same measurement id on every run
///   (`Provenance::new(source_id, record_id)` derives it), so a re-import updates rather than
///   duplicates.
/// - **No hidden state**: everything needed to resume is in the cursor. A pull that is
///   dropped half-way (cancelled, timed out) leaves nothing behind; the next pull from the same
///   cursor gives the same batch.
/// - **Exhaustion**: when nothing is left, the batch says `exhausted`; pulling again from its
///   cursor returns an empty, exhausted batch until new data arrives.
/// - **Errors** say whether retrying can help ([`Error::is_retryable`](crate::Error)); one
///   bad record is not an error but a [`Rejected`](crate::Rejected) entry in the batch.
///
/// The connector test kit (feature `testkit`) checks all of this for any implementation.
///
/// A source is `Debug` (for the sync engine's logs and errors; write it by hand when the
/// source holds a token or a person's data, and leave those out) and `'static` (it owns its
/// configuration and connections, so it can be shared as an `Arc<dyn Source>` across tasks).
#[async_trait]
pub trait Source: std::fmt::Debug + Send + Sync + 'static {
    /// The source's stable id, part of every measurement id it produces (`"clinic-fhir"`,
    /// `"omron-export"`). Changing it makes every measurement new.
    fn id(&self) -> &str;

    /// What kind of source it is (`"fhir"`, `"csv"`, `"sim"`), for logs and progress.
    fn kind(&self) -> &str;

    /// The measurements after `cursor`, at most `limit` (at least 1) of them.
    async fn pull(&self, cursor: &Cursor, limit: usize) -> Result<Batch>;

    /// A cheap check that the source can be read at all (the server answers, the credentials
    /// are accepted, the file is there), run before anything is written, so that a sync that
    /// cannot start leaves nothing behind. The default checks nothing.
    async fn check(&self) -> Result<()> {
        Ok(())
    }
}
