//! The catalog of measurement kinds: data, not code.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use crate::error::{Error, Result};
use crate::quantity::{Conversion, Decimal, Quantity, UnitCode, static_str_newtype};

static_str_newtype!(
    /// The id of a measurement kind in the catalog, e.g. `blood-pressure` or `body-weight`.
    KindId,
    crate::catalog::intern_kind
);

static_str_newtype!(
    /// The id of a component within a panel kind, e.g. `systolic`.
    ComponentId,
    crate::catalog::intern_component
);

/// A code in a code system.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Coding {
    /// The code system URI (see [`systems`](crate::systems)).
    pub system: Cow<'static, str>,
    /// The code.
    pub code: Cow<'static, str>,
    /// A human-readable display for the code.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub display: Option<Cow<'static, str>>,
    /// The UCUM unit the code itself names, for codes that name one (NPU's `NPU03794`
    /// "height = ? m", `NPU03011` a fraction): a written Observation carries the coding only
    /// when its value is written in this unit. `None`: any accepted unit.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub unit: Option<Cow<'static, str>>,
}

impl Coding {
    /// A coding with a display.
    pub fn new(
        system: impl Into<Cow<'static, str>>,
        code: impl Into<Cow<'static, str>>,
        display: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            system: system.into(),
            code: code.into(),
            display: Some(display.into()),
            unit: None,
        }
    }

    /// True when a value written in `unit` may carry this coding.
    pub fn fits_unit(&self, unit: Option<&str>) -> bool {
        match (&self.unit, unit) {
            (Some(own), Some(u)) => own == u,
            _ => true,
        }
    }
}

impl fmt::Display for Coding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.system, self.code)
    }
}

/// A unit a kind accepts, with its conversion to the kind's canonical unit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UnitDef {
    /// The UCUM code.
    pub code: UnitCode,
    /// How a value in this unit becomes a value in the canonical unit.
    pub to_canonical: Conversion,
    /// Other spellings met in the wild that mean this unit (`mmHg`, `lbs`, `°C`, `bpm`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub aliases: Vec<Cow<'static, str>>,
}

/// An inclusive range of plausible values, in the canonical unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Range {
    /// The lowest plausible value.
    pub min: Decimal,
    /// The highest plausible value.
    pub max: Decimal,
}

impl Range {
    /// True when `v` lies within the range.
    pub fn contains(&self, v: Decimal) -> bool {
        self.min <= v && v <= self.max
    }
}

/// What a quantity of a kind (or component) looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ValueSpec {
    /// The canonical UCUM unit; measurements are normalised to it.
    pub unit: UnitCode,
    /// Every accepted unit, the canonical one included.
    pub units: Vec<UnitDef>,
    /// The plausible range in the canonical unit.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub range: Option<Range>,
}

impl ValueSpec {
    /// The accepted unit that `unit` names, by UCUM code or by alias.
    pub fn unit_def(&self, unit: &str) -> Option<&UnitDef> {
        self.units.iter().find(|u| u.code == unit).or_else(|| {
            self.units
                .iter()
                .find(|u| u.aliases.iter().any(|a| a == unit))
        })
    }

    /// The accepted UCUM codes, comma separated (for messages).
    pub fn accepted(&self) -> String {
        let codes: Vec<&str> = self.units.iter().map(|u| u.code.as_str()).collect();
        codes.join(", ")
    }

    /// `q` in the canonical unit (unchanged when it already is). `what` names the kind or
    /// component in the error.
    pub fn to_canonical(&self, q: &Quantity, what: &str) -> Result<Quantity> {
        let def = self
            .unit_def(q.unit.as_str())
            .ok_or_else(|| Error::UnknownUnit {
                kind: what.to_owned(),
                unit: q.unit.to_string(),
                accepted: self.accepted(),
            })?;
        let value = def
            .to_canonical
            .apply(q.value)
            .ok_or_else(|| Error::Overflow {
                value: q.value.to_string(),
                from: q.unit.to_string(),
                to: self.unit.to_string(),
            })?;
        Ok(Quantity {
            value,
            unit: self.unit.clone(),
        })
    }

    /// `q` converted to `unit` (any accepted unit), by way of the canonical unit.
    pub fn convert(&self, q: &Quantity, unit: &str, what: &str) -> Result<Quantity> {
        let canonical = self.to_canonical(q, what)?;
        let target = self.unit_def(unit).ok_or_else(|| Error::UnknownUnit {
            kind: what.to_owned(),
            unit: unit.to_owned(),
            accepted: self.accepted(),
        })?;
        let value = target
            .to_canonical
            .invert(canonical.value)
            .ok_or_else(|| Error::Overflow {
                value: canonical.value.to_string(),
                from: self.unit.to_string(),
                to: unit.to_owned(),
            })?;
        Ok(Quantity {
            value,
            unit: target.code.clone(),
        })
    }
}

/// A component of a panel kind (systolic and diastolic of blood pressure).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ComponentDef {
    /// The component's id within the kind.
    pub id: ComponentId,
    /// A display name.
    pub display: Cow<'static, str>,
    /// Its codings; the first is the primary (LOINC) code.
    pub codings: Vec<Coding>,
    /// Its value.
    pub value: ValueSpec,
    /// Whether a measurement of the kind must have this component (with a value or a reason
    /// for its absence).
    #[cfg_attr(feature = "serde", serde(default))]
    pub required: bool,
}

/// A rule between two components, checked by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case", tag = "rule"))]
pub enum Constraint {
    /// `greater` must be strictly greater than `lesser` when both have values (systolic above
    /// diastolic).
    Greater {
        /// The component that must be greater.
        greater: ComponentId,
        /// The component that must be smaller.
        lesser: ComponentId,
    },
}

/// One kind of measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KindDef {
    /// The kind's id.
    pub id: KindId,
    /// A display name in English.
    pub display: Cow<'static, str>,
    /// The observation category it belongs to (`vital-signs`, `activity`, `laboratory`).
    pub category: Cow<'static, str>,
    /// Its codings; the first is the primary LOINC code, the rest mean the same kind.
    pub codings: Vec<Coding>,
    /// The value of a single-valued kind; `None` for a panel.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub value: Option<ValueSpec>,
    /// The components of a panel.
    #[cfg_attr(feature = "serde", serde(default))]
    pub components: Vec<ComponentDef>,
    /// Rules between components.
    #[cfg_attr(feature = "serde", serde(default))]
    pub constraints: Vec<Constraint>,
}

impl KindDef {
    /// The primary coding (LOINC for every built-in kind).
    pub fn primary(&self) -> Option<&Coding> {
        self.codings.first()
    }

    /// The component with that id.
    pub fn component(&self, id: &str) -> Option<&ComponentDef> {
        self.components.iter().find(|c| c.id == id)
    }

    /// True for a kind whose value is a set of components.
    pub fn is_panel(&self) -> bool {
        self.value.is_none()
    }
}

/// What a coding names: a kind, or one component of a panel kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMatch<'a> {
    /// A whole kind.
    Kind(&'a KindDef),
    /// A component of a panel (a systolic reading sent on its own, for instance).
    Component(&'a KindDef, &'a ComponentDef),
}

impl<'a> CodeMatch<'a> {
    /// The kind, whichever it matched.
    pub fn kind(&self) -> &'a KindDef {
        match self {
            Self::Kind(k) | Self::Component(k, _) => k,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Kind(usize),
    Component(usize, usize),
}

/// A set of kinds with O(1) look-up by id and by any coding.
///
/// The catalog of measurement kinds: data, not code.
///
/// Each [`KindDef`] says what a kind is (its LOINC code and display, and every other coding that
/// means the same thing: alternative LOINC codes, SNOMED CT, IEEE 11073 MDC, Danish NPU), its
/// canonical UCUM unit and the units it accepts with their exact [`Conversion`]s, a plausible
/// range, and for panels such as blood pressure its components. [`Catalog::builtin`] holds the
/// kinds Health Analyzer supports out of the box; a new kind is one more `KindDef` (which can be
/// read from JSON or TOML with serde) passed to [`Catalog::with_kinds`].
///
/// Looking a kind up by any of its codings ([`Catalog::lookup`]) is a hash look-up, O(1), and
/// allocates nothing.
#[derive(Debug, Clone)]
pub struct Catalog {
    kinds: Vec<KindDef>,
    by_id: HashMap<KindId, usize>,
    by_coding: HashMap<String, HashMap<String, Target>>,
}

impl Catalog {
    /// A catalog of the given kinds. Fails when two kinds share an id, or two kinds or
    /// components share a coding, or a kind is neither single-valued nor a panel.
    pub fn new(kinds: impl IntoIterator<Item = KindDef>) -> Result<Self> {
        let mut cat = Catalog {
            kinds: Vec::new(),
            by_id: HashMap::new(),
            by_coding: HashMap::new(),
        };
        for kind in kinds {
            cat.insert(kind)?;
        }
        Ok(cat)
    }

    /// The built-in catalog (see `docs/catalog.md` for its table).
    pub fn builtin() -> &'static Catalog {
        &BUILTIN
    }

    /// The built-in kinds plus `extra` ones.
    pub fn with_kinds(extra: impl IntoIterator<Item = KindDef>) -> Result<Self> {
        let mut cat = BUILTIN.clone();
        for kind in extra {
            cat.insert(kind)?;
        }
        Ok(cat)
    }

    fn insert(&mut self, kind: KindDef) -> Result<()> {
        if self.by_id.contains_key(kind.id.as_str()) {
            return Err(Error::Catalog(format!("duplicate kind id {:?}", kind.id)));
        }
        if kind.value.is_some() != kind.components.is_empty() {
            return Err(Error::Catalog(format!(
                "kind {:?} must have either a value or components, not both or neither",
                kind.id
            )));
        }
        if kind.codings.is_empty() {
            return Err(Error::Catalog(format!("kind {:?} has no coding", kind.id)));
        }
        let idx = self.kinds.len();
        let mut entries: Vec<(&Coding, Target)> = kind
            .codings
            .iter()
            .map(|c| (c, Target::Kind(idx)))
            .collect();
        for (ci, comp) in kind.components.iter().enumerate() {
            entries.extend(comp.codings.iter().map(|c| (c, Target::Component(idx, ci))));
        }
        for (coding, _) in &entries {
            if self.coding(&coding.system, &coding.code).is_some() {
                return Err(Error::Catalog(format!(
                    "coding {coding} of kind {:?} is already used by another kind",
                    kind.id
                )));
            }
        }
        for (coding, target) in entries {
            self.by_coding
                .entry(coding.system.to_string())
                .or_default()
                .insert(coding.code.to_string(), target);
        }
        self.by_id.insert(kind.id.clone(), idx);
        self.kinds.push(kind);
        Ok(())
    }

    fn coding(&self, system: &str, code: &str) -> Option<Target> {
        self.by_coding.get(system)?.get(code).copied()
    }

    /// The kind or component that a coding names. O(1), no allocation.
    pub fn lookup(&self, system: &str, code: &str) -> Option<CodeMatch<'_>> {
        Some(match self.coding(system, code)? {
            Target::Kind(k) => CodeMatch::Kind(&self.kinds[k]),
            Target::Component(k, c) => {
                CodeMatch::Component(&self.kinds[k], &self.kinds[k].components[c])
            }
        })
    }

    /// The first of several codings (a CodeableConcept) that names a kind or component.
    pub fn lookup_any<'c>(
        &self,
        codings: impl IntoIterator<Item = (&'c str, &'c str)>,
    ) -> Option<CodeMatch<'_>> {
        codings
            .into_iter()
            .find_map(|(system, code)| self.lookup(system, code))
    }

    /// The kind with that id.
    pub fn kind(&self, id: &str) -> Option<&KindDef> {
        self.by_id.get(id).map(|&i| &self.kinds[i])
    }

    /// The kind with that id, or [`Error::UnknownKind`].
    pub fn require(&self, id: &str) -> Result<&KindDef> {
        self.kind(id)
            .ok_or_else(|| Error::UnknownKind(id.to_owned()))
    }

    /// Every kind, in the order they were added.
    pub fn kinds(&self) -> &[KindDef] {
        &self.kinds
    }
}

static BUILTIN: LazyLock<Catalog> = LazyLock::new(|| {
    // The built-in table is checked by a unit test, so this cannot fail at run time; keep the
    // kinds that do insert rather than panic if it ever did.
    let mut cat = Catalog {
        kinds: Vec::new(),
        by_id: HashMap::new(),
        by_coding: HashMap::new(),
    };
    for kind in crate::builtin::kinds() {
        let _ = cat.insert(kind);
    }
    cat
});

macro_rules! interner {
    ($name:ident: $($s:literal),* $(,)?) => {
        pub(crate) fn $name(s: &str) -> Option<&'static str> {
            match s {
                $($s => Some($s),)*
                _ => None,
            }
        }
    };
}

interner!(intern_kind:
    "blood-pressure", "mean-blood-pressure", "heart-rate", "body-weight", "body-height",
    "head-circumference", "bmi", "body-temperature", "respiratory-rate", "oxygen-saturation",
    "blood-glucose", "capillary-glucose", "steps",
);

interner!(intern_component: "systolic", "diastolic");

interner!(intern_unit:
    "mm[Hg]", "kPa", "/min", "kg", "g", "[lb_av]", "[oz_av]", "cm", "m", "mm", "[in_i]", "[ft_i]",
    "kg/m2", "Cel", "[degF]", "K", "%", "1", "mg/dL", "mmol/L", "{steps}",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_is_consistent_and_nothing_is_dropped() {
        let kinds = crate::builtin::kinds();
        let n = kinds.len();
        let cat = Catalog::new(kinds).expect("the built-in table must be consistent");
        assert_eq!(cat.kinds().len(), n);
        assert_eq!(Catalog::builtin().kinds().len(), n);
    }

    #[test]
    fn interners_cover_every_builtin_string() {
        for k in Catalog::builtin().kinds() {
            assert_eq!(intern_kind(k.id.as_str()), Some(k.id.as_str()));
            let specs = k.value.iter().chain(k.components.iter().map(|c| &c.value));
            for spec in specs {
                for u in &spec.units {
                    assert_eq!(intern_unit(u.code.as_str()), Some(u.code.as_str()));
                }
            }
            for c in &k.components {
                assert_eq!(intern_component(c.id.as_str()), Some(c.id.as_str()));
            }
        }
    }
}
