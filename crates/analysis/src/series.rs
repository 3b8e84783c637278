//! Measurements as numeric series: one per subject, kind and component.

use std::collections::{BTreeMap, HashMap};

use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::{
    Catalog, ComponentValue, Decimal, Identifier, KindDef, Measurement, MeasurementId, Quantity,
    Status, Value, ValueSpec,
};

/// One value of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// When (the start of the measurement's effective time).
    pub at: Timestamp,
    /// The value in the kind's canonical unit.
    pub value: f64,
    /// The measurement it came from.
    pub id: MeasurementId,
}

/// What a series is of: a subject's kind, or one component of a panel (`systolic`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    /// The subject.
    pub subject: Identifier,
    /// The kind (`heart-rate`, `blood-pressure`).
    pub kind: String,
    /// The component of a panel kind (`systolic`), or `None`.
    pub component: Option<String>,
}

impl SeriesKey {
    /// `kind` or `kind.component`, for messages and rule matching.
    pub fn label(&self) -> String {
        match &self.component {
            Some(c) => format!("{}.{c}", self.kind),
            None => self.kind.clone(),
        }
    }
}

/// A decimal as a float (exact enough for statistics: 28 significant digits become 15-17).
pub fn to_f64(d: Decimal) -> Option<f64> {
    f64::try_from(d).ok().filter(|v| v.is_finite())
}

fn canonical(q: &Quantity, spec: &ValueSpec, what: &str) -> Option<f64> {
    if q.unit == spec.unit {
        return to_f64(q.value);
    }
    to_f64(spec.to_canonical(q, what).ok()?.value)
}

/// The numeric series in `measurements`, each sorted by time. Measurements that are cancelled,
/// entered in error or without a value are left out; values are converted to the kind's
/// canonical unit (a measurement that was never normalised still counts).
pub fn series(measurements: &[Measurement], catalog: &Catalog) -> BTreeMap<SeriesKey, Vec<Point>> {
    // Grouped under borrowed keys first: one owned key per series, not per point.
    let mut groups: HashMap<(&Identifier, &str, Option<&str>), Vec<Point>> = HashMap::new();
    let mut kinds: HashMap<&str, Option<&KindDef>> = HashMap::new();
    for m in measurements {
        if matches!(m.status, Status::Cancelled | Status::EnteredInError) {
            continue;
        }
        let kind = m.kind.as_str();
        let Some(def) = *kinds.entry(kind).or_insert_with(|| catalog.kind(kind)) else {
            continue;
        };
        let at = m.effective.start().instant();
        match &m.value {
            Value::Quantity(o) => {
                if let Some(spec) = &def.value
                    && let Some(value) = canonical(&o.quantity, spec, kind)
                {
                    groups
                        .entry((&m.subject, kind, None))
                        .or_default()
                        .push(Point {
                            at,
                            value,
                            id: m.id,
                        });
                }
            }
            Value::Components(cs) => {
                for c in cs {
                    if let ComponentValue::Quantity(o) = &c.value
                        && let Some(def) = def.component(c.id.as_str())
                        && let Some(value) = canonical(&o.quantity, &def.value, kind)
                    {
                        groups
                            .entry((&m.subject, kind, Some(c.id.as_str())))
                            .or_default()
                            .push(Point {
                                at,
                                value,
                                id: m.id,
                            });
                    }
                }
            }
            Value::Absent(_) => {}
        }
    }
    groups
        .into_iter()
        .map(|((subject, kind, component), mut points)| {
            points.sort_by_key(|p| p.at);
            (
                SeriesKey {
                    subject: subject.clone(),
                    kind: kind.to_string(),
                    component: component.map(str::to_string),
                },
                points,
            )
        })
        .collect()
}
