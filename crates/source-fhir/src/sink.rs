//! Measurements to a FHIR server: transaction Bundles of conditional creates, or the upload
//! shape of a national chain (FUT's `$submit-measurement`, a PMD batch, a MedMij batch).

use std::collections::{HashMap, HashSet};

use healthanalyzer_fhir::{
    BundleKind, Profile, URI_SYSTEM, WriteOptions, fut_submission, pmd_bundle, write_bundle,
    write_observation,
};
use healthanalyzer_model::{Measurement, MeasurementId, Subject};
use healthanalyzer_source::{Error, Result};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{FhirClient, Payload};

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushSummary {
    /// Resources the server created.
    pub created: usize,
    /// Resources it already had (the conditional create matched).
    pub existing: usize,
    /// Requests sent: transaction or batch Bundles, or FUT submissions.
    pub bundles: usize,
    /// Measurements the server refused (an entry of a batch, a whole FUT submission) or that
    /// could not be written in the profile's shape, one by one; the others were pushed.
    pub refused: Vec<Refused>,
}

impl PushSummary {
    /// Adds what another push did.
    pub fn add(&mut self, other: PushSummary) {
        self.created += other.created;
        self.existing += other.existing;
        self.bundles += other.bundles;
        self.refused.extend(other.refused);
    }
}

/// A measurement that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The measurement.
    pub measurement: MeasurementId,
    /// The entry's `response.status` (`422 Unprocessable Entity`), or `not sent` when it
    /// could not be written in the shape the profile asks for.
    pub status: String,
    /// What the server said (its OperationOutcome's diagnostics), or what is wrong with the
    /// measurement. Never a value or an identifier the server did not write itself.
    pub reason: String,
}

/// The status of a measurement that was never sent.
const NOT_SENT: &str = "not sent";

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    status: String,
    #[serde(default)]
    outcome: Option<Value>,
}

#[derive(Deserialize)]
struct ResponseEntry {
    #[serde(rename = "fullUrl", default)]
    full_url: Option<String>,
    #[serde(default)]
    response: Option<Response>,
}

#[derive(Deserialize)]
struct TransactionResponse {
    #[serde(default)]
    entry: Vec<ResponseEntry>,
}

/// The diagnostics of an OperationOutcome, joined.
fn diagnostics(outcome: Option<&Value>) -> String {
    let said: Vec<&str> = outcome
        .and_then(|o| o.get("issue"))
        .and_then(Value::as_array)
        .map(|issues| {
            issues
                .iter()
                .filter_map(|i| i.get("diagnostics").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let text = said.join("; ");
    text.chars().take(300).collect()
}

/// Pushes measurements to a FHIR server.
///
/// By default (and under the profiles `vital-signs`, `dk-core`, `no-basis`) each batch goes
/// as one `transaction` Bundle: the Patients and Devices it refers to and its Observations,
/// each a conditional create on its identifier, so a push repeated (after a failure, or twice
/// by mistake) creates nothing twice. Under the exchange profiles the chain's own shape:
///
/// - [`Profile::Fut`]: one `POST [base]/$submit-measurement` per submission, built by
///   [`fut_submission`]: the measurements of one FUT patient and episode of care taken at the
///   same time (FUT's submit-measurement "is intended for uploading single measurements, not
///   bulk uploads"). Every entry is a conditional create on the Observation's own identifier,
///   so a submission sent again is a replay that stores nothing twice. A submission the server refuses (4xx) is reported for each of its
///   measurements ([`PushSummary::refused`]) and the push goes on.
/// - [`Profile::Pmd`]: a `pmd-Bundle-Observation` batch ([`pmd_bundle`]) of conditional
///   creates, so a push repeated creates nothing twice; the batch-response
///   is read entry by entry, matched by `fullUrl`, and a refused entry is reported by its
///   measurement.
/// - [`Profile::NlCore`]: a MedMij `batch` of the Observations (each a conditional create on
///   its identifier, the subject by its identifier) with `Prefer: return=representation`,
///   read entry by entry as for PMD.
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

    /// Pushes `measurements`, with those of `subjects` they refer to, in the shape the
    /// profile asks for.
    ///
    /// # Errors
    /// The server cannot be reached, refuses the credentials, or answers what is not a
    /// Bundle; under the default shape also a refused transaction. Measurements refused one by
    /// one are in [`PushSummary::refused`], not errors.
    pub async fn push(
        &self,
        subjects: &[Subject],
        measurements: &[Measurement],
    ) -> Result<PushSummary> {
        match self.options.profile {
            Profile::Fut => self.push_fut(measurements).await,
            Profile::Pmd => self.push_batches(measurements, Chain::Pmd).await,
            Profile::NlCore => self.push_batches(measurements, Chain::Medmij).await,
            _ => self.push_transactions(subjects, measurements).await,
        }
    }

    async fn push_transactions(
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
            let text = self.client.post_bundle(to_text(&bundle)?).await?;
            let response = self.response(&text, "transaction")?;
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

    fn response(&self, text: &str, what: &str) -> Result<TransactionResponse> {
        serde_json::from_str(text).map_err(|e| Error::BadData {
            location: self.client.base().to_string(),
            reason: format!("the {what} response is not a Bundle: {e}"),
        })
    }

    /// FUT: one `$submit-measurement` per submission group.
    async fn push_fut(&self, measurements: &[Measurement]) -> Result<PushSummary> {
        let mut summary = PushSummary::default();
        let url = self.client.url("$submit-measurement")?;
        for group in fut_groups(measurements, &self.options) {
            let parameters = match fut_submission(&group, &self.options) {
                Ok(p) => p,
                Err(e) => {
                    refuse_all(&mut summary, &group, NOT_SENT, &e.to_string());
                    continue;
                }
            };
            // Every entry is a conditional create on the Observation's own identifier, so a
            // submission sent again is a replay (200 per entry, nothing stored twice): safe to
            // repeat on a timeout.
            let answer = self
                .client
                .post(&url, &Payload::fhir(to_text(&parameters)?), true)
                .await;
            summary.bundles += 1;
            let text = match answer {
                Ok(t) => t,
                // The server refused the submission (its rules, its content): reported for
                // each measurement; the others go on.
                Err(Error::BadData { reason, .. }) => {
                    refuse_all(&mut summary, &group, "refused", &reason);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let response = self.response(&text, "$submit-measurement")?;
            let sent: Vec<String> = group.iter().map(|m| format!("urn:uuid:{}", m.id)).collect();
            // The transaction-response has one entry per submitted resource, in order.
            let mut answered: HashMap<String, Response> = HashMap::new();
            for (i, e) in response.entry.into_iter().enumerate() {
                let key = e
                    .full_url
                    .filter(|u| sent.contains(u))
                    .or_else(|| sent.get(i).cloned());
                if let (Some(k), Some(r)) = (key, e.response) {
                    answered.entry(k).or_insert(r);
                }
            }
            tally(&mut summary, &group, &mut answered);
        }
        Ok(summary)
    }

    /// PMD and MedMij: batches, read entry by entry.
    async fn push_batches(
        &self,
        measurements: &[Measurement],
        chain: Chain,
    ) -> Result<PushSummary> {
        let mut summary = PushSummary::default();
        for chunk in measurements.chunks(self.batch) {
            // What cannot be written in the chain's shape is reported and left out.
            let mut good: Vec<Measurement> = Vec::with_capacity(chunk.len());
            let mut bundle = match chain.bundle(chunk, &self.options) {
                Ok(b) => {
                    good.extend_from_slice(chunk);
                    b
                }
                Err(_) => {
                    for m in chunk {
                        match chain.bundle(std::slice::from_ref(m), &self.options) {
                            Ok(_) => good.push(m.clone()),
                            Err(e) => refuse_all(
                                &mut summary,
                                std::slice::from_ref(m),
                                NOT_SENT,
                                &e.to_string(),
                            ),
                        }
                    }
                    if good.is_empty() {
                        continue;
                    }
                    chain
                        .bundle(&good, &self.options)
                        .map_err(|e| Error::BadData {
                            location: "push".into(),
                            reason: e.to_string(),
                        })?
                }
            };
            if let Some(o) = bundle.as_object_mut() {
                o.insert("type".into(), Value::String("batch".into()));
            }
            let mut payload = Payload::fhir(to_text(&bundle)?);
            payload.prefer = chain.prefer();
            let base = self.client.base().clone();
            // PMD's and MedMij's entries are conditional creates on the Observation's own
            // identifier: safe to send again on a timeout.
            let text = self.client.post(&base, &payload, true).await?;
            summary.bundles += 1;
            let response = self.response(&text, "batch")?;
            let sent: Vec<String> = good.iter().map(|m| format!("urn:uuid:{}", m.id)).collect();
            let mut answered: HashMap<String, Response> = HashMap::new();
            for (i, e) in response.entry.into_iter().enumerate() {
                // Matched by the echoed fullUrl (PMD's batch-response rule); an entry without
                // one by its place, as FHIR orders batch-responses.
                let key = match e.full_url {
                    Some(u) if sent.contains(&u) => Some(u),
                    Some(u) => {
                        return Err(Error::BadData {
                            location: self.client.base().to_string(),
                            reason: format!(
                                "the batch-response names the entry {u:?}, which was not sent"
                            ),
                        });
                    }
                    None => sent.get(i).cloned(),
                };
                if let (Some(k), Some(r)) = (key, e.response) {
                    answered.entry(k).or_insert(r);
                }
            }
            tally(&mut summary, &good, &mut answered);
        }
        Ok(summary)
    }
}

/// The batch shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    Pmd,
    Medmij,
}

impl Chain {
    fn prefer(self) -> Option<&'static str> {
        match self {
            Chain::Pmd => None,
            Chain::Medmij => Some("return=representation"),
        }
    }

    fn bundle(
        self,
        measurements: &[Measurement],
        options: &WriteOptions<'_>,
    ) -> healthanalyzer_fhir::Result<Value> {
        match self {
            Chain::Pmd => pmd_bundle(measurements, options),
            Chain::Medmij => medmij_batch(measurements, options),
        }
    }
}

/// A MedMij batch: each measurement's Observation (as [`write_observation`] writes it under
/// the profile, the subject by its identifier), a conditional create on the Observation's
/// `urn:uuid:<measurement id>` identifier, so a push repeated creates nothing twice. Batch
/// entries cannot refer to each other, so there are no Patient or Device entries.
fn medmij_batch(
    measurements: &[Measurement],
    options: &WriteOptions<'_>,
) -> healthanalyzer_fhir::Result<Value> {
    let mut entries = Vec::with_capacity(measurements.len());
    for m in measurements {
        let mut resource = write_observation(m, options)?;
        let own = format!("urn:uuid:{}", m.id);
        if let Some(o) = resource.as_object_mut() {
            let ids = o
                .entry("identifier")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = ids
                && !list
                    .iter()
                    .any(|i| i["value"] == own.as_str() && i["system"] == URI_SYSTEM)
            {
                list.push(json!({"system": URI_SYSTEM, "value": own}));
            }
        }
        entries.push(json!({
            "fullUrl": own,
            "resource": resource,
            "request": {
                "method": "POST",
                "url": "Observation",
                "ifNoneExist": format!("identifier={URI_SYSTEM}|{own}"),
            },
        }));
    }
    Ok(json!({"resourceType": "Bundle", "type": "batch", "entry": entries}))
}

/// FUT's submissions: the measurements of one FUT patient and episode of care taken at the
/// same instant, in the order they first appear. Measurements of subjects without FUT
/// settings make groups of their own, which [`fut_submission`] refuses with a message.
fn fut_groups(measurements: &[Measurement], options: &WriteOptions<'_>) -> Vec<Vec<Measurement>> {
    let fut = options.national.and_then(|n| n.fut.as_ref());
    let mut order: Vec<Vec<Measurement>> = Vec::new();
    // (FUT patient and episode of care, or the subject when it has none; the instant).
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for m in measurements {
        let place = fut.and_then(|f| f.subject(&m.subject)).map_or_else(
            || format!("subject {}", m.subject.key()),
            |s| format!("{}\n{}", s.patient, s.episode_of_care),
        );
        let key = (place, m.effective.start().instant().to_string());
        match index.get(&key) {
            Some(&i) => order[i].push(m.clone()),
            None => {
                index.insert(key, order.len());
                order.push(vec![m.clone()]);
            }
        }
    }
    order
}

fn refuse_all(summary: &mut PushSummary, group: &[Measurement], status: &str, reason: &str) {
    for m in group {
        summary.refused.push(Refused {
            measurement: m.id,
            status: status.to_string(),
            reason: reason.to_string(),
        });
    }
}

/// Counts each measurement's answer: 201 created, 200 there already, anything else (or none)
/// refused.
fn tally(
    summary: &mut PushSummary,
    sent: &[Measurement],
    answered: &mut HashMap<String, Response>,
) {
    for m in sent {
        let key = format!("urn:uuid:{}", m.id);
        match answered.remove(&key) {
            Some(r) => match r.status.split_whitespace().next() {
                Some("201") => summary.created += 1,
                Some("200") => summary.existing += 1,
                _ => summary.refused.push(Refused {
                    measurement: m.id,
                    status: r.status.clone(),
                    reason: diagnostics(r.outcome.as_ref()),
                }),
            },
            None => summary.refused.push(Refused {
                measurement: m.id,
                status: "no answer".into(),
                reason: "the server's response has no entry for this measurement".into(),
            }),
        }
    }
}

fn to_text(v: &Value) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Other {
        reason: format!("writing the Bundle: {e}"),
        retryable: false,
        cause: None,
    })
}
