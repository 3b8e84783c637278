//! The measurement and its parts.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::catalog::{ComponentId, KindId};
use crate::error::{Error, Result};
use crate::identifier::Identifier;
use crate::quantity::{Decimal, Quantity, UnitCode};
use crate::time::{DateTime, Effective};

/// The namespace of measurement ids: UUID v5 of the URL
/// `https://github.com/os2health/health-analyzer/measurement-id` in the URL namespace. Fixed
/// forever: changing it would change every id.
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0xb346c6a3_f5c9_51c5_901c_6f45c6318b06);

/// A measurement's id: a UUID v5 of its source id and the source's record id, so importing the
/// same record twice gives the same id (see `docs/adr/0002-measurement-identity.md`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct MeasurementId(Uuid);

impl MeasurementId {
    /// The id of record `record_id` of source `source_id`: UUID v5 in [`ID_NAMESPACE`] of the
    /// name `len(source_id) as u64 big-endian ‖ source_id ‖ record_id` (the length prefix keeps
    /// `("ab", "c")` and `("a", "bc")` apart).
    pub fn from_source(source_id: &str, record_id: &str) -> Self {
        let mut name = Vec::with_capacity(8 + source_id.len() + record_id.len());
        name.extend_from_slice(&(source_id.len() as u64).to_be_bytes());
        name.extend_from_slice(source_id.as_bytes());
        name.extend_from_slice(record_id.as_bytes());
        Self(Uuid::new_v5(&ID_NAMESPACE, &name))
    }

    /// An id from a UUID (e.g. one read back from a store).
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for MeasurementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for MeasurementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeasurementId({})", self.0.hyphenated())
    }
}

impl FromStr for MeasurementId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Uuid::try_parse(s)
            .map(Self)
            .map_err(|_| Error::InvalidCode {
                what: "measurement id",
                code: s.chars().take(64).collect(),
                expected: "a UUID such as 6f1c1d5e-8d8b-5c43-9a4e-2f0e5e7b6a10",
            })
    }
}

/// Defines a closed set of codes with a text form.
macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)*
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$(Self::$variant),*];

            /// The code.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    other => Err($crate::Error::InvalidCode {
                        what: $what,
                        code: other.chars().take(64).collect(),
                        expected: concat!($($text, " "),*),
                    }),
                }
            }
        }

        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Defines an open set of codes: known ones as variants, anything else as `Other(text)`.
macro_rules! open_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)*
            /// Any other value, as text.
            Other(String),
        }

        impl $name {
            /// The code (or the text of `Other`).
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(s) => s,
                }
            }

            /// The known value for a code, or `Other`.
            pub fn parse(s: &str) -> Self {
                match s {
                    $($text => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok(Self::parse(&s))
            }
        }
    };
}

pub(crate) use code_enum;

code_enum!(
    /// The status of a measurement (the FHIR observation-status codes).
    Status, "status" {
        /// Registered, no result yet.
        Registered = "registered",
        /// Preliminary result.
        Preliminary = "preliminary",
        /// Final result.
        Final = "final",
        /// Changed after being final.
        Amended = "amended",
        /// Corrected after being final.
        Corrected = "corrected",
        /// Cancelled: never completed.
        Cancelled = "cancelled",
        /// Recorded in error; to be ignored.
        EnteredInError = "entered-in-error",
        /// Status unknown.
        Unknown = "unknown",
    }
);

impl Status {
    /// True when the value can be used in analysis (`final`, `amended`, `corrected`,
    /// `preliminary`).
    pub fn is_usable(self) -> bool {
        matches!(
            self,
            Self::Final | Self::Amended | Self::Corrected | Self::Preliminary
        )
    }
}

code_enum!(
    /// Why a value is missing (the HL7 data-absent-reason codes).
    AbsentReason, "data-absent reason" {
        /// Unknown.
        Unknown = "unknown",
        /// Asked but unknown.
        AskedUnknown = "asked-unknown",
        /// Temporarily unknown.
        TempUnknown = "temp-unknown",
        /// Not asked.
        NotAsked = "not-asked",
        /// Asked but declined.
        AskedDeclined = "asked-declined",
        /// Masked (withheld for privacy).
        Masked = "masked",
        /// Not applicable.
        NotApplicable = "not-applicable",
        /// Unsupported.
        Unsupported = "unsupported",
        /// Given as text.
        AsText = "as-text",
        /// An error occurred.
        Error = "error",
        /// Not a number.
        NotANumber = "not-a-number",
        /// Negative infinity.
        NegativeInfinity = "negative-infinity",
        /// Positive infinity.
        PositiveInfinity = "positive-infinity",
        /// Not performed.
        NotPerformed = "not-performed",
        /// Not permitted.
        NotPermitted = "not-permitted",
    }
);

open_enum!(
    /// The body position during the measurement.
    BodyPosition {
        /// Sitting.
        Sitting = "sitting",
        /// Standing.
        Standing = "standing",
        /// Lying.
        Lying = "lying",
    }
);

open_enum!(
    /// The blood-pressure cuff size used.
    CuffSize {
        /// Small adult / child cuff.
        Small = "small",
        /// Standard adult cuff.
        Adult = "adult",
        /// Large adult cuff.
        Large = "large",
        /// Extra large / thigh cuff.
        ExtraLarge = "extra-large",
    }
);

open_enum!(
    /// Where on the body the measurement was taken.
    BodySite {
        /// Left upper arm.
        LeftArm = "left-arm",
        /// Right upper arm.
        RightArm = "right-arm",
        /// Left wrist.
        LeftWrist = "left-wrist",
        /// Right wrist.
        RightWrist = "right-wrist",
        /// A finger.
        Finger = "finger",
        /// An ear lobe.
        Ear = "ear",
        /// Oral.
        Oral = "oral",
        /// Axillary.
        Axillary = "axillary",
        /// Rectal.
        Rectal = "rectal",
        /// Tympanic membrane.
        Tympanic = "tympanic",
        /// Forehead.
        Forehead = "forehead",
    }
);

open_enum!(
    /// A measurement's relation to a meal (glucose).
    MealRelation {
        /// Fasting.
        Fasting = "fasting",
        /// Before a meal.
        BeforeMeal = "before-meal",
        /// After a meal.
        AfterMeal = "after-meal",
        /// At bedtime.
        Bedtime = "bedtime",
    }
);

/// The circumstances of a measurement. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct Context {
    /// Body position.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub body_position: Option<BodyPosition>,
    /// Cuff size.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cuff_size: Option<CuffSize>,
    /// Measurement site.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub site: Option<BodySite>,
    /// Method, as text (e.g. `auscultation`, `oscillometry`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub method: Option<String>,
    /// Relation to a meal.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub meal: Option<MealRelation>,
}

impl Context {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The device that took a measurement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct DeviceRef {
    /// A device identifier (an IEEE EUI-64, a serial number within the manufacturer's system).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub identifier: Option<Identifier>,
    /// The source's own reference to the device (e.g. `Device/123`), kept as given.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub reference: Option<String>,
    /// A display name.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub display: Option<String>,
    /// Manufacturer.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub manufacturer: Option<String>,
    /// Model.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub model: Option<String>,
}

/// The original record a measurement was made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Payload {
    /// Its media type (`application/fhir+json`, `text/csv`, `application/xml`, …).
    pub media_type: String,
    /// The record as the source sent it.
    pub content: String,
}

/// A reader's note, kept in memory beside a payload, that the payload reads back as the
/// measurement it was made into: a fingerprint the reader made of the measurement's content and
/// of the payload, so a writer can tell "unchanged" without reading the payload again (it makes
/// the fingerprint of the measurement as it is now and compares).
///
/// It never makes two provenances differ (`==` is always true, it hashes nothing), it is not
/// serialised (a measurement read back from a store has none), and its `Debug` is omitted from
/// [`Provenance`]'s. Without one a writer checks the payload the slow way.
#[derive(Clone, Copy, Default)]
pub struct PayloadMark(Option<u64>);

impl PayloadMark {
    /// A mark holding `fingerprint`.
    pub const fn new(fingerprint: u64) -> Self {
        Self(Some(fingerprint))
    }

    /// The fingerprint, if a reader left one.
    pub const fn get(self) -> Option<u64> {
        self.0
    }
}

impl std::fmt::Debug for PayloadMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "PayloadMark(..)"
        } else {
            "PayloadMark(None)"
        })
    }
}

impl PartialEq for PayloadMark {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PayloadMark {}

impl std::hash::Hash for PayloadMark {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// Where a measurement came from.
#[derive(Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Provenance {
    /// The id of the configured source (stable across runs).
    pub source_id: String,
    /// The record's id within the source (a FHIR resource id, a CSV line key, …).
    pub record_id: String,
    /// The original record, if kept.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub payload: Option<Payload>,
    /// The reader's note that [`payload`](Self::payload) reads back as this measurement (see
    /// [`PayloadMark`]); in memory only, never serialised, never compared.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub payload_mark: PayloadMark,
}

impl std::fmt::Debug for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As derived before the mark was added: the mark is a cache, not content.
        f.debug_struct("Provenance")
            .field("source_id", &self.source_id)
            .field("record_id", &self.record_id)
            .field("payload", &self.payload)
            .finish()
    }
}

impl Provenance {
    /// Provenance without a payload.
    pub fn new(source_id: impl Into<String>, record_id: impl Into<String>) -> Self {
        Self {
            source_id: source_id.into(),
            record_id: record_id.into(),
            payload: None,
            payload_mark: PayloadMark::default(),
        }
    }

    /// The same, with the original record.
    pub fn with_payload(
        mut self,
        media_type: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        self.payload = Some(Payload {
            media_type: media_type.into(),
            content: content.into(),
        });
        self.payload_mark = PayloadMark::default();
        self
    }

    /// The measurement id this provenance implies.
    pub fn measurement_id(&self) -> MeasurementId {
        MeasurementId::from_source(&self.source_id, &self.record_id)
    }
}

/// A quantity as normalised, and as recorded where that differs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Observed {
    /// The quantity (in the kind's canonical unit once normalised). Serialised inline:
    /// `{"value": "83.91", "unit": "kg", "original": {…}}`.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub quantity: Quantity,
    /// The quantity as the source recorded it, when normalisation converted it.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub original: Option<Quantity>,
}

impl From<Quantity> for Observed {
    fn from(quantity: Quantity) -> Self {
        Self {
            quantity,
            original: None,
        }
    }
}

/// The value of one component of a panel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ComponentValue {
    /// A quantity.
    Quantity(Observed),
    /// No value, for this reason.
    Absent(AbsentReason),
}

/// One component of a panel (systolic 120 `mm[Hg]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Component {
    /// Which component.
    pub id: ComponentId,
    /// Its value.
    pub value: ComponentValue,
}

/// A measurement's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Value {
    /// A single quantity.
    Quantity(Observed),
    /// The components of a panel (blood pressure).
    Components(Vec<Component>),
    /// No value, for this reason.
    Absent(AbsentReason),
}

impl Value {
    /// A single quantity.
    pub fn quantity(value: Decimal, unit: impl Into<UnitCode>) -> Self {
        Self::Quantity(Quantity::new(value, unit).into())
    }

    /// A blood-pressure panel in `mm[Hg]`.
    pub fn blood_pressure(systolic: Decimal, diastolic: Decimal) -> Self {
        let c = |id: &'static str, v| Component {
            id: ComponentId::from_static(id),
            value: ComponentValue::Quantity(
                Quantity::new(v, UnitCode::from_static("mm[Hg]")).into(),
            ),
        };
        Self::Components(vec![c("systolic", systolic), c("diastolic", diastolic)])
    }

    /// The quantity of a single-valued measurement.
    pub fn as_quantity(&self) -> Option<&Quantity> {
        match self {
            Self::Quantity(o) => Some(&o.quantity),
            _ => None,
        }
    }

    /// The quantity of a component, if present with a value.
    pub fn component(&self, id: &str) -> Option<&Quantity> {
        match self {
            Self::Components(cs) => cs.iter().find(|c| c.id == id).and_then(|c| match &c.value {
                ComponentValue::Quantity(o) => Some(&o.quantity),
                ComponentValue::Absent(_) => None,
            }),
            _ => None,
        }
    }

    /// True for a lone component reading: a panel kind's value with one component only, as
    /// FHIR sends a systolic or a diastolic pressure on its own (ADR 0009). It is validated,
    /// stored and written as that one Observation, and analysed in the component's series.
    pub fn is_lone_component(&self) -> bool {
        matches!(self, Self::Components(cs) if cs.len() == 1)
    }
}

/// One health measurement: who, what, when, the value, how and from where.
///
/// The model knows nothing of FHIR, SQL or HTTP; mappings live in other crates. Build one with
/// [`Measurement::new`] and set the optional fields directly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Measurement {
    /// Stable id, derived from the provenance.
    pub id: MeasurementId,
    /// The person measured (CPR/BSN/FNR or a local id).
    pub subject: Identifier,
    /// The kind (a catalog id).
    pub kind: KindId,
    /// The value.
    pub value: Value,
    /// The status.
    pub status: Status,
    /// When it applies.
    pub effective: Effective,
    /// When it was made available (recorded, uploaded), if known.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub issued: Option<DateTime>,
    /// The device that took it.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub device: Option<DeviceRef>,
    /// Circumstances.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Context::is_empty")
    )]
    pub context: Context,
    /// Where it came from.
    pub provenance: Provenance,
}

impl Measurement {
    /// A final measurement with its id derived from `provenance`.
    pub fn new(
        provenance: Provenance,
        subject: Identifier,
        kind: impl Into<KindId>,
        value: Value,
        effective: impl Into<Effective>,
    ) -> Self {
        Self {
            id: provenance.measurement_id(),
            subject,
            kind: kind.into(),
            value,
            status: Status::Final,
            effective: effective.into(),
            issued: None,
            device: None,
            context: Context::default(),
            provenance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_matches_an_independent_implementation() {
        // Computed with Python's uuid module: uuid5(ns, pack(">Q", 9) + b"omron-csv" + b"row-17").
        let id = MeasurementId::from_source("omron-csv", "row-17");
        assert_eq!(id.to_string(), "c61b2aa0-4ab6-56e6-b5f9-c9a2e5c2e312");
        assert_eq!(id.as_uuid().get_version_num(), 5);
    }

    #[test]
    fn id_separates_source_and_record() {
        assert_ne!(
            MeasurementId::from_source("ab", "c"),
            MeasurementId::from_source("a", "bc")
        );
    }

    #[test]
    fn codes_parse_and_print() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), *s);
        }
        let e = "bogus".parse::<Status>().unwrap_err().to_string();
        assert!(e.contains("final") && e.contains("bogus"), "{e}");
        assert_eq!(BodySite::parse("left-arm"), BodySite::LeftArm);
        assert_eq!(BodySite::parse("toe"), BodySite::Other("toe".into()));
    }
}
