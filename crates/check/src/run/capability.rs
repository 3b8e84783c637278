//! The server's CapabilityStatement: which features it declares.

use serde_json::Value;
use tracing::warn;

use super::http::{BodyError, MAX_RESPONSE_BYTES, read_body};

use super::{Outcome, Runner, StepResult};
use crate::scenario::Severity;

impl Runner {
    /// The server's CapabilityStatement, to tell "not supported" from "broken".
    pub(super) async fn capability(&self) -> Option<Value> {
        let mut req = self
            .client
            .get(format!("{}/metadata", self.base))
            .header("Accept", "application/fhir+json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = tokio::time::timeout(self.timeout, req.send())
            .await
            .ok()?
            .ok()?;
        let text = match tokio::time::timeout(self.timeout, read_body(resp))
            .await
            .ok()?
        {
            Ok(text) => text,
            Err(BodyError::TooLarge { .. }) => {
                warn!(
                    "the CapabilityStatement is larger than {} MiB: not read, so no feature \
                     counts as declared or undeclared",
                    MAX_RESPONSE_BYTES >> 20
                );
                return None;
            }
            Err(BodyError::Broken(_)) => return None,
        };
        let v: Value = serde_json::from_str(&text).ok()?;
        (v.get("resourceType").and_then(Value::as_str) == Some("CapabilityStatement")).then_some(v)
    }
}

/// Whether a CapabilityStatement declares a feature: `Type/$op` (an operation), `Type?param`
/// (a search parameter), `Type:interaction` (an interaction), or `transaction`/`batch`.
pub fn declares(capability: &Value, feature: &str) -> bool {
    let rest = capability.pointer("/rest/0").unwrap_or(&Value::Null);
    let resource = |ty: &str| {
        rest.get("resource")
            .and_then(Value::as_array)
            .and_then(|rs| {
                rs.iter()
                    .find(|r| r.get("type").and_then(Value::as_str) == Some(ty))
            })
    };
    let named = |list: Option<&Value>, key: &str, want: &str| {
        list.and_then(Value::as_array).is_some_and(|l| {
            l.iter()
                .any(|x| x.get(key).and_then(Value::as_str) == Some(want))
        })
    };
    if let Some((ty, op)) = feature.split_once("/$") {
        return resource(ty).is_some_and(|r| named(r.get("operation"), "name", op))
            || named(rest.get("operation"), "name", op);
    }
    if let Some((ty, param)) = feature.split_once('?') {
        return resource(ty).is_some_and(|r| named(r.get("searchParam"), "name", param));
    }
    if let Some((ty, interaction)) = feature.split_once(':') {
        return resource(ty).is_some_and(|r| named(r.get("interaction"), "code", interaction));
    }
    named(rest.get("interaction"), "code", feature)
}

/// Turns a failed step whose feature the server does not declare into one warning.
pub(super) fn not_supported(result: &mut StepResult, feature: &str) {
    let first = result.findings.first().cloned();
    if let Some(mut f) = first {
        f.severity = Severity::Warning;
        f.message = format!(
            "Not supported: {feature} (not declared in the CapabilityStatement). {}",
            f.message
        );
        f.reason = format!(
            "The server does not claim this feature, so this is a gap to know about rather than \
             a fault; it is the {}'s to add if the chain needs it.",
            f.owner.as_str()
        );
        result.findings = vec![f];
        result.outcome = Outcome::Warned;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn capability_features() {
        let cap = json!({"resourceType": "CapabilityStatement", "rest": [{
            "interaction": [{"code": "transaction"}],
            "resource": [{"type": "Observation",
                "interaction": [{"code": "read"}, {"code": "create"}],
                "searchParam": [{"name": "date"}],
                "operation": [{"name": "lastn"}]}]}]});
        assert!(declares(&cap, "Observation/$lastn"));
        assert!(!declares(&cap, "Observation/$stats"));
        assert!(declares(&cap, "Observation?date"));
        assert!(!declares(&cap, "Observation?code"));
        assert!(declares(&cap, "Observation:create"));
        assert!(!declares(&cap, "Observation:delete"));
        assert!(!declares(&cap, "Patient:read"));
        assert!(declares(&cap, "transaction"));
        assert!(!declares(&cap, "batch"));
    }
}
