//! Measurements to a FHIR server, as transaction Bundles of conditional creates.

use std::collections::HashSet;

use healthanalyzer_fhir::{BundleKind, WriteOptions, write_bundle};
use healthanalyzer_model::{Measurement, Subject};
use healthanalyzer_source::{Error, Result};
use serde::Deserialize;

use crate::client::FhirClient;

/// What a push did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushSummary {
    /// Resources the server created.
    pub created: usize,
    /// Resources it already had (the conditional create matched).
    pub existing: usize,
    /// Transaction Bundles sent.
    pub bundles: usize,
}

#[derive(Deserialize)]
struct Response {
    status: String,
}

#[derive(Deserialize)]
struct ResponseEntry {
    #[serde(default)]
    response: Option<Response>,
}

#[derive(Deserialize)]
struct TransactionResponse {
    #[serde(default)]
    entry: Vec<ResponseEntry>,
}

/// Pushes measurements to a FHIR server.
///
/// Each batch goes as one `transaction` Bundle: the Patients and Devices it refers to and its
/// Observations, each a conditional create on its identifier, so a push repeated (after a
/// failure, or twice by mistake) creates nothing twice.
#[derive(Debug, Clone)]
pub struct FhirSink<'c> {
    client: FhirClient,
    options: WriteOptions<'c>,
    batch: usize,
}

impl<'c> FhirSink<'c> {
    /// A sink writing through `client` as `options` say (the profile among them), 200
    /// measurements per Bundle.
    pub fn new(client: FhirClient, options: WriteOptions<'c>) -> Self {
        FhirSink {
            client,
            options,
            batch: 200,
        }
    }

    /// The same sink with another number of measurements per Bundle.
    pub fn with_batch(self, batch: usize) -> Self {
        FhirSink {
            batch: batch.max(1),
            ..self
        }
    }

    /// Pushes `measurements`, with those of `subjects` they refer to.
    pub async fn push(
        &self,
        subjects: &[Subject],
        measurements: &[Measurement],
    ) -> Result<PushSummary> {
        let mut summary = PushSummary::default();
        for chunk in measurements.chunks(self.batch) {
            let ids: HashSet<_> = chunk.iter().map(|m| &m.subject).collect();
            let who: Vec<Subject> = subjects
                .iter()
                .filter(|s| ids.contains(&s.id))
                .cloned()
                .collect();
            let bundle = write_bundle(BundleKind::Transaction, &who, chunk, &self.options)
                .map_err(|e| Error::BadData {
                    location: "push".into(),
                    reason: e.to_string(),
                })?;
            let body = serde_json::to_string(&bundle).map_err(|e| Error::Other {
                reason: format!("writing the Bundle: {e}"),
                retryable: false,
                cause: None,
            })?;
            let text = self.client.post_bundle(body).await?;
            let response: TransactionResponse =
                serde_json::from_str(&text).map_err(|e| Error::BadData {
                    location: self.client.base().to_string(),
                    reason: format!("the transaction response is not a Bundle: {e}"),
                })?;
            for e in response.entry {
                let status = e.response.map(|r| r.status).unwrap_or_default();
                match status.split_whitespace().next() {
                    Some("201") => summary.created += 1,
                    Some("200") => summary.existing += 1,
                    _ => {
                        return Err(Error::BadData {
                            location: self.client.base().to_string(),
                            reason: format!("an entry of the transaction answered {status:?}"),
                        });
                    }
                }
            }
            summary.bundles += 1;
        }
        Ok(summary)
    }
}
