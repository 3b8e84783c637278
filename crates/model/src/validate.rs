//! Validation and normalisation of measurements against a [`Catalog`].
//!
//! Both are functions the caller chooses to apply; neither panics, whatever the input. A
//! [`Validator`] reports every problem it finds at once, each naming the field, the reason and the
//! offending value (never a personal identifier), so a person can fix a record in one go.

use std::collections::HashSet;

use jiff::{SignedDuration, Timestamp};

use crate::catalog::{Catalog, Constraint, KindDef, ValueSpec};
use crate::error::{Error, Result, ValidationErrors};
use crate::measurement::{ComponentValue, Measurement, Observed, Value};
use crate::quantity::Quantity;

/// Checks and normalises measurements. Cheap to build; borrow one per batch.
#[derive(Debug, Clone)]
pub struct Validator<'c> {
    catalog: &'c Catalog,
    now: Timestamp,
    future_tolerance: SignedDuration,
    identifiers: IdentifierPolicy,
}

/// What validation does with a subject identifier that fails its national system's rules (a
/// 7-digit number under the FNR system, a BSN that fails the 11-test): published test dossiers
/// carry such numbers. ADR 0010.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum IdentifierPolicy {
    /// Accept the reading; the subject is shown as carrying an identifier that fails the
    /// national rules ([`Identifier::national_issue`](crate::Identifier::national_issue)) in
    /// reports, the dashboard and the API.
    /// The default: test data loads.
    #[default]
    Mark,
    /// Refuse the reading, with the reason (production data from a national register).
    Refuse,
}

impl std::str::FromStr for IdentifierPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mark" => Ok(Self::Mark),
            "refuse" => Ok(Self::Refuse),
            other => Err(Error::Catalog(format!(
                "identifier policy {other:?}: expected mark or refuse"
            ))),
        }
    }
}

impl<'c> Validator<'c> {
    /// A validator for `catalog`, judging "the future" against the system clock now, with a
    /// tolerance of 10 minutes for clock skew between devices.
    pub fn new(catalog: &'c Catalog) -> Self {
        Self {
            catalog,
            now: Timestamp::now(),
            future_tolerance: SignedDuration::from_mins(10),
            identifiers: IdentifierPolicy::Mark,
        }
    }

    /// What to do with identifiers that fail their national rules (default: mark them).
    pub fn identifiers(mut self, policy: IdentifierPolicy) -> Self {
        self.identifiers = policy;
        self
    }

    /// Judges "the future" against `now` instead of the system clock (for tests and replays).
    pub fn at(mut self, now: Timestamp) -> Self {
        self.now = now;
        self
    }

    /// How far in the future a time may lie before it is an error.
    pub fn future_tolerance(mut self, tolerance: SignedDuration) -> Self {
        self.future_tolerance = tolerance;
        self
    }

    /// Checks a measurement: a known kind; for each quantity a unit the kind accepts and a value
    /// in the plausible range; for panels every required component present, no unknown or
    /// repeated component, and the catalog's constraints (systolic above diastolic); times not
    /// in the future beyond the tolerance and periods that do not end before they start; a
    /// well-formed subject identifier; an id that matches the provenance.
    pub fn validate(&self, m: &Measurement) -> Result<()> {
        let mut errs = ValidationErrors::default();
        self.check(m, &mut errs);
        errs.into_result()
    }

    /// Validates, then converts every quantity to its canonical unit, keeping the recorded
    /// quantity in [`Observed::original`]. Normalising twice changes nothing.
    pub fn normalize(&self, mut m: Measurement) -> Result<Measurement> {
        self.validate(&m)?;
        let kind = self.catalog.require(m.kind.as_str())?;
        match (&mut m.value, &kind.value) {
            (Value::Quantity(o), Some(spec)) => canonicalize(o, spec, kind.id.as_str())?,
            (Value::Components(cs), None) => {
                for c in cs {
                    let (ComponentValue::Quantity(o), Some(def)) =
                        (&mut c.value, kind.component(c.id.as_str()))
                    else {
                        continue;
                    };
                    canonicalize(o, &def.value, def.id.as_str())?;
                }
            }
            _ => {}
        }
        Ok(m)
    }

    fn check(&self, m: &Measurement, errs: &mut ValidationErrors) {
        if let Err(reason) = m.subject.check_format() {
            // An empty value is never an identifier; a national rule is the policy's call.
            if self.identifiers == IdentifierPolicy::Refuse || m.subject.national_issue().is_none()
            {
                errs.push("subject", reason, None);
            }
        }
        if m.provenance.source_id.is_empty() {
            errs.push("provenance.source_id", "must not be empty", None);
        }
        if m.provenance.record_id.is_empty() {
            errs.push("provenance.record_id", "must not be empty", None);
        }
        if m.id != m.provenance.measurement_id() {
            errs.push(
                "id",
                "does not match the id derived from provenance (source_id, record_id)",
                Some(m.id.to_string()),
            );
        }
        self.check_times(m, errs);
        match self.catalog.kind(m.kind.as_str()) {
            None => errs.push(
                "kind",
                "is not in the catalog",
                Some(m.kind.as_str().chars().take(64).collect()),
            ),
            Some(kind) => check_value(kind, &m.value, errs),
        }
    }

    fn check_times(&self, m: &Measurement, errs: &mut ValidationErrors) {
        let limit = self
            .now
            .checked_add(self.future_tolerance)
            .unwrap_or(Timestamp::MAX);
        let mut future = |field: &str, t: &crate::DateTime| {
            if t.instant() > limit {
                errs.push(
                    field,
                    format!(
                        "lies in the future (more than {} after {})",
                        humanize(self.future_tolerance),
                        self.now
                    ),
                    Some(t.to_string()),
                );
            }
        };
        match &m.effective {
            crate::Effective::At(t) => future("effective", t),
            crate::Effective::Period { start, end } => {
                future("effective.start", start);
                if let Some(end) = end {
                    future("effective.end", end);
                }
            }
        }
        if let Some(issued) = &m.issued {
            future("issued", issued);
        }
        if let crate::Effective::Period {
            start,
            end: Some(end),
        } = &m.effective
            && end.instant() < start.instant()
        {
            errs.push(
                "effective.end",
                "is before the start of the period",
                Some(end.to_string()),
            );
        }
    }
}

fn humanize(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

fn check_value(kind: &KindDef, value: &Value, errs: &mut ValidationErrors) {
    match (value, &kind.value) {
        (Value::Absent(_), _) => {}
        (Value::Quantity(o), Some(spec)) => check_quantity("value", &o.quantity, spec, errs),
        (Value::Quantity(_), None) => errs.push(
            "value",
            format!(
                "{} is a panel: give its components ({})",
                kind.id,
                component_list(kind)
            ),
            None,
        ),
        (Value::Components(_), Some(_)) => errs.push(
            "value",
            format!("{} takes a single quantity, not components", kind.id),
            None,
        ),
        (Value::Components(cs), None) => {
            let mut seen = HashSet::new();
            for c in cs {
                let field = format!("value.{}", c.id);
                if !seen.insert(c.id.as_str()) {
                    errs.push(field, "is given more than once", None);
                    continue;
                }
                match kind.component(c.id.as_str()) {
                    None => errs.push(
                        field,
                        format!(
                            "is not a component of {} (expected: {})",
                            kind.id,
                            component_list(kind)
                        ),
                        None,
                    ),
                    Some(def) => {
                        if let ComponentValue::Quantity(o) = &c.value {
                            check_quantity(&field, &o.quantity, &def.value, errs);
                        }
                    }
                }
            }
            // One component alone is a lone component reading (FHIR's own Observation of a
            // systolic pressure, say: ADR 0009); a panel reading has every required one.
            let lone = cs.len() == 1;
            for def in kind.components.iter().filter(|d| d.required && !lone) {
                if !seen.contains(def.id.as_str()) {
                    errs.push(
                        format!("value.{}", def.id),
                        "is missing (give a value or a data-absent reason)",
                        None,
                    );
                }
            }
            for constraint in &kind.constraints {
                let Constraint::Greater { greater, lesser } = constraint;
                let canonical = |id: &str| {
                    let def = kind.component(id)?;
                    let q = value.component(id)?;
                    def.value.to_canonical(q, id).ok()
                };
                if let (Some(g), Some(l)) =
                    (canonical(greater.as_str()), canonical(lesser.as_str()))
                    && g.value <= l.value
                {
                    errs.push(
                        format!("value.{greater}"),
                        format!("must be greater than {lesser}"),
                        Some(format!("{greater} {g}, {lesser} {l}")),
                    );
                }
            }
        }
    }
}

fn component_list(kind: &KindDef) -> String {
    let ids: Vec<&str> = kind.components.iter().map(|c| c.id.as_str()).collect();
    ids.join(", ")
}

fn check_quantity(field: &str, q: &Quantity, spec: &ValueSpec, errs: &mut ValidationErrors) {
    match spec.to_canonical(q, field) {
        Err(Error::UnknownUnit { accepted, .. }) => errs.push(
            format!("{field}.unit"),
            format!("is not accepted here; accepted units: {accepted}"),
            Some(q.unit.as_str().chars().take(64).collect()),
        ),
        Err(_) => errs.push(
            field,
            "cannot be converted to the canonical unit (out of range)",
            Some(q.to_string()),
        ),
        Ok(c) => {
            if let Some(r) = &spec.range
                && !r.contains(c.value)
            {
                errs.push(
                    field,
                    format!(
                        "is outside the plausible range {} to {} {}",
                        r.min, r.max, spec.unit
                    ),
                    Some(q.to_string()),
                );
            }
        }
    }
}

fn canonicalize(o: &mut Observed, spec: &ValueSpec, what: &str) -> Result<()> {
    if o.quantity.unit == spec.unit {
        return Ok(());
    }
    let canonical = spec.to_canonical(&o.quantity, what)?;
    let recorded = std::mem::replace(&mut o.quantity, canonical);
    if o.original.is_none() {
        o.original = Some(recorded);
    }
    Ok(())
}
