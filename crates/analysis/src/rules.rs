//! Rules and alerts: red/yellow thresholds per kind (everyone, patient groups, single patients,
//! the OpenTele model), delta rules (weight up 2 kg within 3 days), stale-data rules; alerts can
//! be acknowledged or snoozed.

use std::collections::BTreeMap;

use healthanalyzer_model::jiff::tz::TimeZone;
use healthanalyzer_model::jiff::{SignedDuration, Timestamp};
use healthanalyzer_model::{Catalog, Identifier, MeasurementId, Quantity};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::series::{Point, SeriesKey};

/// The rules of the demo, a home-monitoring programme in miniature: SpO2, blood pressure and
/// glucose thresholds, the heart-failure weight rule and a stale-data rule.
pub const DEMO_RULES: &str = r#"
[[threshold]]
kind = "oxygen-saturation"
red_low = 88
yellow_low = 92

[[threshold]]
kind = "blood-pressure.systolic"
red_high = 180
yellow_high = 150

[[threshold]]
kind = "capillary-glucose"
red_low = 54
yellow_low = 70
yellow_high = 250
red_high = 400

[[delta]]
name = "weight gain"
kind = "body-weight"
rise = 2.0
within_days = 3
severity = "red"

[[stale]]
name = "no blood pressure"
kind = "blood-pressure.systolic"
days = 3
severity = "yellow"
"#;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Look at it soon.
    Yellow,
    /// Act now.
    Red,
}

/// Red and yellow limits for one kind (or panel component: `blood-pressure.systolic`), in the
/// kind's canonical unit. A value above a `high` limit or below a `low` one is flagged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// The kind, or `kind.component`.
    pub kind: String,
    /// Red above this.
    #[serde(default)]
    pub red_high: Option<f64>,
    /// Yellow above this.
    #[serde(default)]
    pub yellow_high: Option<f64>,
    /// Yellow below this.
    #[serde(default)]
    pub yellow_low: Option<f64>,
    /// Red below this.
    #[serde(default)]
    pub red_low: Option<f64>,
    /// The unit the limits are written in, when it is not the kind's canonical one (glucose
    /// limits in `mmol/L`, say): [`RuleSet::from_toml`] converts them and clears this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl Threshold {
    /// The limits converted from `unit` to the canonical unit of the kind or component.
    fn make_canonical(&mut self, catalog: &Catalog) -> Result<(), Error> {
        let Some(unit) = self.unit.take() else {
            return Ok(());
        };
        let (kind, component) = match self.kind.split_once('.') {
            Some((k, c)) => (k, Some(c)),
            None => (self.kind.as_str(), None),
        };
        let def = catalog
            .kind(kind)
            .ok_or_else(|| Error::Rules(format!("threshold for {:?}: no such kind", self.kind)))?;
        let spec = match component {
            Some(c) => def.component(c).map(|c| &c.value),
            None => def.value.as_ref(),
        }
        .ok_or_else(|| Error::Rules(format!("threshold for {:?}: no such value", self.kind)))?;
        let label = self.kind.clone();
        for v in [
            &mut self.red_high,
            &mut self.yellow_high,
            &mut self.yellow_low,
            &mut self.red_low,
        ]
        .into_iter()
        .flatten()
        {
            let q = Quantity::parse(&v.to_string(), unit.as_str())
                .and_then(|q| spec.to_canonical(&q, &label))
                .map_err(|e| Error::Rules(format!("threshold for {label:?}: {e}")))?;
            *v = q.value.to_string().parse().unwrap_or(*v);
        }
        Ok(())
    }

    /// The severity of a value, if it is flagged, with the limit it crossed.
    pub fn judge(&self, v: f64) -> Option<(Severity, &'static str, f64)> {
        let checks = [
            (self.red_high, Severity::Red, "above", true),
            (self.red_low, Severity::Red, "below", false),
            (self.yellow_high, Severity::Yellow, "above", true),
            (self.yellow_low, Severity::Yellow, "below", false),
        ];
        checks
            .into_iter()
            .find_map(|(limit, severity, word, high)| {
                let limit = limit?;
                let crossed = if high { v > limit } else { v < limit };
                crossed.then_some((severity, word, limit))
            })
    }
}

/// A patient group with its own thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Its name (`heart-failure`).
    pub name: String,
    /// Its members, as `system|value` identifiers.
    #[serde(default)]
    pub members: Vec<String>,
    /// Its thresholds, over the defaults.
    #[serde(default, rename = "threshold")]
    pub thresholds: Vec<Threshold>,
}

/// One patient's own thresholds, over their group's and the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientRules {
    /// The patient, as a `system|value` identifier.
    pub subject: String,
    /// Their thresholds.
    #[serde(default, rename = "threshold")]
    pub thresholds: Vec<Threshold>,
}

/// A change too large within a time (the heart-failure rule: weight up 2 kg within 3 days).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaRule {
    /// Its name, shown on the alert.
    pub name: String,
    /// The kind, or `kind.component`.
    pub kind: String,
    /// Alert when the value rose by at least this much…
    #[serde(default)]
    pub rise: Option<f64>,
    /// …or fell by at least this much…
    #[serde(default)]
    pub fall: Option<f64>,
    /// …within this many days.
    pub within_days: f64,
    /// How urgent.
    pub severity: Severity,
}

/// No measurement of a kind for too long (a patient who stopped measuring).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaleRule {
    /// Its name, shown on the alert.
    pub name: String,
    /// The kind (or `kind.component`); the rule applies to patients who have measured it.
    pub kind: String,
    /// Alert after this many days without one.
    pub days: f64,
    /// How urgent.
    pub severity: Severity,
}

/// A set of rules, usually read from TOML ([`RuleSet::from_toml`]).
///
/// ```toml
/// [[threshold]]
/// kind = "oxygen-saturation"
/// red_low = 88
/// yellow_low = 92
///
/// [[group]]
/// name = "copd"
/// members = ["urn:oid:1.2.208.176.1.2|0101709995"]
/// [[group.threshold]]
/// kind = "oxygen-saturation"
/// red_low = 85
/// yellow_low = 88
///
/// [[delta]]
/// name = "weight gain"
/// kind = "body-weight"
/// rise = 2.0
/// within_days = 3
/// severity = "red"
///
/// [[stale]]
/// name = "no blood pressure"
/// kind = "blood-pressure.systolic"
/// days = 3
/// severity = "yellow"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// Thresholds for everyone.
    #[serde(default, rename = "threshold")]
    pub thresholds: Vec<Threshold>,
    /// Patient groups.
    #[serde(default, rename = "group")]
    pub groups: Vec<Group>,
    /// Single patients.
    #[serde(default, rename = "patient")]
    pub patients: Vec<PatientRules>,
    /// Delta rules.
    #[serde(default, rename = "delta")]
    pub deltas: Vec<DeltaRule>,
    /// Stale-data rules.
    #[serde(default, rename = "stale")]
    pub stale: Vec<StaleRule>,
}

/// An alert's acknowledgement or snooze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The rule (its name, or `threshold:<kind>`).
    pub rule: String,
    /// The patient, `system|value`.
    pub subject: String,
    /// Acknowledged at: what triggered until then is seen.
    pub at: Timestamp,
    /// Snoozed until: nothing of this rule for this patient before then.
    #[serde(default)]
    pub until: Option<Timestamp>,
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// How urgent.
    pub severity: Severity,
    /// The rule that raised it (`threshold:oxygen-saturation`, `weight gain`).
    pub rule: String,
    /// The patient.
    pub subject: Identifier,
    /// The kind (or `kind.component`).
    pub kind: String,
    /// When the triggering measurement was taken (for a stale rule, the last one).
    pub at: Timestamp,
    /// What happened, for a clinician (it quotes values: keep it out of logs).
    pub message: String,
    /// The measurements that triggered it.
    pub measurements: Vec<MeasurementId>,
}

/// `system|value` (or the value alone).
pub fn subject_key(id: &Identifier) -> String {
    id.key()
}

fn fmt(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl RuleSet {
    /// Rules from TOML. Unknown keys are errors (a misspelt `yelow_low` must not pass silently).
    pub fn from_toml(text: &str) -> Result<RuleSet, Error> {
        let mut rules: RuleSet = toml::from_str(text).map_err(|e| Error::Rules(e.to_string()))?;
        // Limits written in another accepted unit (`unit = "mmol/L"`) become canonical.
        let catalog = Catalog::builtin();
        for t in rules
            .thresholds
            .iter_mut()
            .chain(
                rules
                    .groups
                    .iter_mut()
                    .flat_map(|g| g.thresholds.iter_mut()),
            )
            .chain(
                rules
                    .patients
                    .iter_mut()
                    .flat_map(|p| p.thresholds.iter_mut()),
            )
        {
            t.make_canonical(catalog)?;
        }
        for d in &rules.deltas {
            if d.rise.is_none() && d.fall.is_none() {
                return Err(Error::Rules(format!(
                    "delta rule {:?} needs `rise` or `fall`",
                    d.name
                )));
            }
        }
        Ok(rules)
    }

    /// The demo's rules, [`DEMO_RULES`], read.
    pub fn demo() -> RuleSet {
        // A constant of this crate, read in its tests: it cannot fail to parse.
        RuleSet::from_toml(DEMO_RULES).expect("DEMO_RULES are valid rules")
    }

    /// The threshold that applies to `subject`'s `label`: theirs, else their group's, else
    /// everyone's.
    pub fn threshold_for(&self, subject: &str, label: &str) -> Option<&Threshold> {
        let own = self
            .patients
            .iter()
            .filter(|p| p.subject == subject)
            .flat_map(|p| &p.thresholds)
            .find(|t| t.kind == label);
        let group = || {
            self.groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == subject))
                .flat_map(|g| &g.thresholds)
                .find(|t| t.kind == label)
        };
        own.or_else(group)
            .or_else(|| self.thresholds.iter().find(|t| t.kind == label))
    }

    /// The alerts `series` raise at `now` (measurements after `now` are not yet known), less
    /// those acknowledged or snoozed, most severe first, then newest first. Thresholds judge
    /// each series' latest value: the patient's state now.
    pub fn evaluate(
        &self,
        series: &BTreeMap<SeriesKey, Vec<Point>>,
        now: Timestamp,
        acks: &[Ack],
    ) -> Vec<Alert> {
        self.evaluate_in(series, now, acks, &|_| TimeZone::UTC)
    }

    /// [`RuleSet::evaluate`], with the times in alert texts in each subject's zone (`zone`
    /// gives it from the subject's `system|value` key), as the rest of a report shows them.
    pub fn evaluate_in(
        &self,
        series: &BTreeMap<SeriesKey, Vec<Point>>,
        now: Timestamp,
        acks: &[Ack],
        zone: &dyn Fn(&str) -> TimeZone,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for (key, points) in series {
            let points = &points[..points.partition_point(|p| p.at <= now)];
            let subject = subject_key(&key.subject);
            let label = key.label();
            let Some(last) = points.last() else { continue };
            if let Some(t) = self.threshold_for(&subject, &label)
                && let Some((severity, word, limit)) = t.judge(last.value)
            {
                alerts.push(Alert {
                    severity,
                    rule: format!("threshold:{label}"),
                    subject: key.subject.clone(),
                    kind: label.clone(),
                    at: last.at,
                    message: format!(
                        "{label} {} is {word} the {severity:?} limit {}",
                        fmt(last.value),
                        fmt(limit)
                    )
                    .to_lowercase(),
                    measurements: vec![last.id],
                });
            }
            for d in self.deltas.iter().filter(|d| d.kind == label) {
                if let Some(a) = delta(d, key, points) {
                    alerts.push(a);
                }
            }
            for s in self.stale.iter().filter(|s| s.kind == label) {
                let limit = SignedDuration::from_secs_f64(s.days * 86_400.0);
                if now.duration_since(last.at) > limit {
                    alerts.push(Alert {
                        severity: s.severity,
                        rule: s.name.clone(),
                        subject: key.subject.clone(),
                        kind: label.clone(),
                        at: last.at,
                        message: format!(
                            "no {label} for {} days (last {})",
                            fmt(now.duration_since(last.at).as_secs_f64() / 86_400.0),
                            last.at
                                .display_with_offset(zone(&subject).to_offset(last.at))
                        ),
                        measurements: vec![last.id],
                    });
                }
            }
        }
        alerts.retain(|a| {
            let who = subject_key(&a.subject);
            !acks.iter().any(|k| {
                k.rule == a.rule
                    && k.subject == who
                    && (a.at <= k.at || k.until.is_some_and(|u| now < u))
            })
        });
        alerts.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.at.cmp(&a.at)));
        alerts
    }
}

/// The latest point that changed by the rule's amount from a point within the rule's time.
fn delta(d: &DeltaRule, key: &SeriesKey, points: &[Point]) -> Option<Alert> {
    let within = SignedDuration::from_secs_f64(d.within_days.max(0.0) * 86_400.0);
    for (i, p) in points.iter().enumerate().rev() {
        let earliest = p.at.checked_sub(within).ok()?;
        for q in points[..i].iter().filter(|q| q.at >= earliest) {
            let change = p.value - q.value;
            let hit = d.rise.is_some_and(|r| change >= r) || d.fall.is_some_and(|f| -change >= f);
            if hit {
                let label = key.label();
                return Some(Alert {
                    severity: d.severity,
                    rule: d.name.clone(),
                    subject: key.subject.clone(),
                    kind: label.clone(),
                    at: p.at,
                    message: format!(
                        "{label} changed by {} within {} days ({} to {})",
                        fmt(change),
                        fmt(p.at.duration_since(q.at).as_secs_f64() / 86_400.0),
                        fmt(q.value),
                        fmt(p.value)
                    ),
                    measurements: vec![q.id, p.id],
                });
            }
        }
    }
    None
}
