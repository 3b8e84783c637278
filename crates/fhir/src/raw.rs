//! The fast path's view of FHIR JSON: serde structs for the elements we map, borrowing strings
//! from the input. Elements we do not map are skipped here and kept in the original payload.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// A JSON string, borrowed from the input when it has no escapes. (serde borrows a bare
/// `Cow<str>` field marked `borrow`, but not one inside an `Option` or a `Vec`: those would
/// allocate every string.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'a> Text<'a> {
    pub(crate) fn borrowed(s: &'a str) -> Self {
        Text(Cow::Borrowed(s))
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct RawCoding<'a> {
    #[serde(borrow, default)]
    pub(crate) system: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(crate) code: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(crate) display: Option<Text<'a>>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct RawConcept<'a> {
    #[serde(borrow, default)]
    pub(crate) coding: Option<Vec<RawCoding<'a>>>,
    #[serde(borrow, default)]
    pub(crate) text: Option<Text<'a>>,
}

impl RawConcept<'_> {
    pub(crate) fn codings(&self) -> &[RawCoding<'_>] {
        self.coding.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct RawIdentifier<'a> {
    #[serde(borrow, default)]
    pub(crate) system: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(crate) value: Option<Text<'a>>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct RawReference<'a> {
    #[serde(borrow, default)]
    pub(crate) reference: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(crate) identifier: Option<RawIdentifier<'a>>,
    #[serde(borrow, default)]
    pub(crate) display: Option<Text<'a>>,
}

/// A JSON value's text as written: borrowed from the input by the fast path (no copy, and
/// exact whatever serde_json's number features), owned when the strict path builds it.
#[derive(Debug)]
pub(crate) struct RawNumber<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for RawNumber<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de serde_json::value::RawValue>::deserialize(d)?;
        Ok(RawNumber(Cow::Borrowed(raw.get())))
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawQuantity<'a> {
    /// The number's text as written.
    #[serde(borrow, default)]
    pub(crate) value: Option<RawNumber<'a>>,
    #[serde(borrow, default)]
    pub(crate) unit: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(crate) system: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(crate) code: Option<Text<'a>>,
    #[serde(default)]
    pub(crate) comparator: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct RawPeriod<'a> {
    #[serde(borrow, default)]
    pub(crate) start: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(crate) end: Option<Text<'a>>,
}

/// `value[x]` choices other than `valueQuantity` are listed as fields (not `#[serde(flatten)]`,
/// which would buffer the whole resource); present means "not a quantity".
macro_rules! other_values {
    ($t:ident) => {
        impl $t<'_> {
            /// The first `value[x]` present that is not `valueQuantity`.
            pub(crate) fn other_value(&self) -> Option<&'static str> {
                [
                    (
                        self.value_codeable_concept.is_some(),
                        "valueCodeableConcept",
                    ),
                    (self.value_string.is_some(), "valueString"),
                    (self.value_boolean.is_some(), "valueBoolean"),
                    (self.value_integer.is_some(), "valueInteger"),
                    (self.value_range.is_some(), "valueRange"),
                    (self.value_ratio.is_some(), "valueRatio"),
                    (self.value_sampled_data.is_some(), "valueSampledData"),
                    (self.value_time.is_some(), "valueTime"),
                    (self.value_date_time.is_some(), "valueDateTime"),
                    (self.value_period.is_some(), "valuePeriod"),
                ]
                .into_iter()
                .find_map(|(present, name)| present.then_some(name))
            }
        }
    };
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawComponent<'a> {
    #[serde(borrow, default)]
    pub(crate) code: Option<RawConcept<'a>>,
    #[serde(borrow, default)]
    pub(crate) value_quantity: Option<RawQuantity<'a>>,
    #[serde(borrow, default)]
    pub(crate) data_absent_reason: Option<RawConcept<'a>>,
    #[serde(default)]
    pub(crate) value_codeable_concept: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_string: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_boolean: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_integer: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_range: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_ratio: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_sampled_data: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_time: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_date_time: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_period: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawObservation<'a> {
    #[serde(borrow)]
    pub(crate) resource_type: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) id: Option<Text<'a>>,
    /// Business identifiers: the record id of an Observation that has no `id` and no entry
    /// `fullUrl` (an NDJSON line).
    #[serde(borrow, default)]
    pub(crate) identifier: Option<Vec<RawIdentifier<'a>>>,
    #[serde(borrow, default)]
    pub(crate) status: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(crate) code: Option<RawConcept<'a>>,
    #[serde(borrow, default)]
    pub(crate) subject: Option<RawReference<'a>>,
    #[serde(borrow, default)]
    pub(crate) effective_date_time: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(crate) effective_instant: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(crate) effective_period: Option<RawPeriod<'a>>,
    #[serde(default)]
    pub(crate) effective_timing: Option<IgnoredAny>,
    #[serde(borrow, default)]
    pub(crate) issued: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(crate) value_quantity: Option<RawQuantity<'a>>,
    #[serde(borrow, default)]
    pub(crate) data_absent_reason: Option<RawConcept<'a>>,
    #[serde(borrow, default)]
    pub(crate) body_site: Option<RawConcept<'a>>,
    #[serde(borrow, default)]
    pub(crate) method: Option<RawConcept<'a>>,
    #[serde(borrow, default)]
    pub(crate) device: Option<RawReference<'a>>,
    #[serde(borrow, default)]
    pub(crate) component: Option<Vec<RawComponent<'a>>>,
    #[serde(default)]
    pub(crate) value_codeable_concept: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_string: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_boolean: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_integer: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_range: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_ratio: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_sampled_data: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_time: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_date_time: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) value_period: Option<IgnoredAny>,
}

other_values!(RawComponent);
other_values!(RawObservation);
