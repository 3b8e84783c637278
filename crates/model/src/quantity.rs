//! Exact quantities and unit conversion.

use std::borrow::Cow;
use std::fmt;

pub use rust_decimal::Decimal;
use rust_decimal::RoundingStrategy;

use crate::error::{Error, Result};

macro_rules! static_str_newtype {
    ($(#[$meta:meta])* $name:ident, $intern:path) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Cow<'static, str>);

        impl $name {
            /// Wraps a static string without allocating.
            pub const fn from_static(s: &'static str) -> Self {
                Self(Cow::Borrowed(s))
            }

            /// Wraps any string; a string the built-in catalog knows is interned (no allocation
            /// is kept).
            pub fn new(s: impl Into<String> + AsRef<str>) -> Self {
                match $intern(s.as_ref()) {
                    Some(st) => Self(Cow::Borrowed(st)),
                    None => Self(Cow::Owned(s.into())),
                }
            }

            /// The string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::new(s)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = <Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok(match $intern(&s) {
                    Some(st) => Self(Cow::Borrowed(st)),
                    None => Self(Cow::Owned(s.into_owned())),
                })
            }
        }
    };
}

pub(crate) use static_str_newtype;

static_str_newtype!(
    /// A UCUM unit code such as `kg`, `mm[Hg]`, `/min` or `{steps}`.
    ///
    /// Codes the built-in catalog knows are held without allocation.
    UnitCode,
    crate::catalog::intern_unit
);

/// A value with its UCUM unit.
///
/// Equality compares values numerically (`Decimal`'s `==`: `107.50 == 107.5`) and units by code;
/// compare `value.to_string()` or `value.scale()` too where the written precision matters.
///
/// Exact quantities and unit conversion.
///
/// Values are [`Decimal`]s (from `rust_decimal`), never `f64`: `107.50` keeps its two decimal
/// places through parsing, storage and serialisation, and a conversion such as pounds to kilograms
/// is computed exactly and then rounded by one documented rule (see [`Conversion`] and
/// `docs/adr/0004-precision.md`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Quantity {
    /// The value, exactly as given (its scale, e.g. the two places of `107.50`, is kept).
    pub value: Decimal,
    /// The UCUM code of the unit.
    pub unit: UnitCode,
}

impl Quantity {
    /// A quantity.
    pub fn new(value: Decimal, unit: impl Into<UnitCode>) -> Self {
        Self {
            value,
            unit: unit.into(),
        }
    }

    /// Parses the value from text (see [`parse_decimal`]).
    pub fn parse(value: &str, unit: impl Into<UnitCode>) -> Result<Self> {
        Ok(Self::new(parse_decimal(value)?, unit))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.value, self.unit)
    }
}

/// Parses a decimal in the JSON/FHIR grammar `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`,
/// keeping its scale (`107.50` stays `107.50`). At most 28 significant digits are supported;
/// more give an error rather than a silently rounded value.
pub fn parse_decimal(input: &str) -> Result<Decimal> {
    let err = |reason| Error::InvalidDecimal {
        input: input.chars().take(64).collect(),
        reason,
    };
    let b = input.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int_len = i - int_start;
    if int_len == 0 {
        return Err(err("expected a digit"));
    }
    if int_len > 1 && b[int_start] == b'0' {
        return Err(err("leading zeros are not allowed"));
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == frac_start {
            return Err(err("expected digits after the decimal point"));
        }
    }
    let mantissa_end = i;
    let mut exponent = None;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return Err(err("expected digits in the exponent"));
        }
        exponent = Some(&input[mantissa_end + 1..i]);
    }
    if i != b.len() {
        return Err(err("unexpected characters in a number"));
    }
    let mantissa = &input[..mantissa_end];
    let base = Decimal::from_str_exact(mantissa)
        .map_err(|_| err("too many digits (at most 28 significant digits are supported)"))?;
    match exponent {
        None => Ok(base),
        Some(e) => {
            let e: i64 = e
                .trim_start_matches('+')
                .parse()
                .map_err(|_| err("exponent out of range"))?;
            scale_by_power_of_ten(base, e).ok_or_else(|| err("exponent out of range"))
        }
    }
}

fn scale_by_power_of_ten(mut v: Decimal, e: i64) -> Option<Decimal> {
    if e.unsigned_abs() > 56 {
        return None;
    }
    let ten = Decimal::TEN;
    if e >= 0 {
        // Use up fraction digits first, so 1.5e2 is 150 (not 150.0).
        let from_scale = v.scale().min(u32::try_from(e).ok()?);
        v.set_scale(v.scale() - from_scale).ok()?;
        for _ in 0..(e - i64::from(from_scale)) {
            v = v.checked_mul(ten)?;
        }
    } else {
        let new_scale = v.scale() + u32::try_from(-e).ok()?;
        if new_scale > 28 {
            return None;
        }
        v.set_scale(new_scale).ok()?;
    }
    Some(v)
}

/// The number of significant digits a decimal is written with (`0.0050` has 2, `1500` has 4).
pub fn significant_digits(v: Decimal) -> u32 {
    let m = v.mantissa().unsigned_abs();
    if m == 0 { 1 } else { m.ilog10() + 1 }
}

/// `floor(log10(|v|))` for a non-zero decimal.
fn floor_log10(v: Decimal) -> i64 {
    let m = v.mantissa().unsigned_abs().max(1);
    i64::from(m.ilog10()) - i64::from(v.scale())
}

/// A linear conversion to a canonical unit: `canonical = (value + offset) × numerator ÷ denominator`.
///
/// Defined by exact decimals (`[lb_av]` → `kg` is `× 0.45359237`, `[degF]` → `Cel` is
/// `(value − 32) × 5 ÷ 9`), so no binary floating point enters.
///
/// **Rounding rule.** The result has exactly the input's decimal places plus
/// `1 − floor(log10(factor))` more: enough to carry the input's absolute resolution in the new
/// unit, plus one guard digit. The exact result is rounded half to even to that many places, or
/// padded with zeros when it is exact with fewer (the scale is how a value carries its resolution
/// into the next conversion). With this rule a round trip A → B → A, rounded back to the input's
/// places, returns the input exactly (a property test checks every unit pair), e.g.
/// `150 [lb_av]` → `68.04 kg`, `98.7 [degF]` → `37.056 Cel`, `5.5 mmol/L` → `99.1 mg/dL`,
/// `1500 g` → `1.5000 kg`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Conversion {
    /// Added to the value before scaling (e.g. −32 for Fahrenheit).
    #[cfg_attr(feature = "serde", serde(default))]
    pub offset: Decimal,
    /// Multiplied by.
    pub numerator: Decimal,
    /// Divided by.
    pub denominator: Decimal,
}

impl Conversion {
    /// The identity conversion.
    pub const IDENTITY: Self = Self {
        offset: Decimal::ZERO,
        numerator: Decimal::ONE,
        denominator: Decimal::ONE,
    };

    /// `value × factor`.
    pub const fn factor(factor: Decimal) -> Self {
        Self {
            offset: Decimal::ZERO,
            numerator: factor,
            denominator: Decimal::ONE,
        }
    }

    /// True for the identity.
    pub fn is_identity(&self) -> bool {
        self.offset.is_zero() && self.numerator == self.denominator
    }

    /// Applies the conversion (to the canonical unit), rounding by the rule above.
    /// `None` when exact decimal arithmetic overflows or the factor is zero.
    pub fn apply(&self, v: Decimal) -> Option<Decimal> {
        if self.is_identity() {
            return Some(v);
        }
        let exact = v
            .checked_add(self.offset)?
            .checked_mul(self.numerator)?
            .checked_div(self.denominator)?;
        round_for_factor(
            exact,
            v.scale(),
            self.numerator.checked_div(self.denominator)?,
        )
    }

    /// Applies the inverse (from the canonical unit), rounding by the same rule.
    pub fn invert(&self, canonical: Decimal) -> Option<Decimal> {
        if self.is_identity() {
            return Some(canonical);
        }
        let exact = canonical
            .checked_mul(self.denominator)?
            .checked_div(self.numerator)?
            .checked_sub(self.offset)?;
        round_for_factor(
            exact,
            canonical.scale(),
            self.denominator.checked_div(self.numerator)?,
        )
    }
}

fn round_for_factor(exact: Decimal, input_scale: u32, factor: Decimal) -> Option<Decimal> {
    if factor.is_zero() {
        return None;
    }
    let extra = 1 - floor_log10(factor.abs());
    let target = (i64::from(input_scale) + extra).clamp(0, 28) as u32;
    let mut v = exact.round_dp_with_strategy(target, RoundingStrategy::MidpointNearestEven);
    // Pad an exact result too: the scale is how the value carries its resolution onwards.
    v.rescale(target);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        parse_decimal(s).unwrap()
    }

    #[test]
    fn keeps_scale() {
        assert_eq!(d("107.50").to_string(), "107.50");
        assert_eq!(d("-0.0050").to_string(), "-0.0050");
        assert_eq!(d("1.5e2").to_string(), "150");
        assert_eq!(d("15E-1").to_string(), "1.5");
        assert_eq!(significant_digits(d("0.0050")), 2);
        assert_eq!(significant_digits(d("1500")), 4);
    }

    #[test]
    fn rejects_non_json_numbers() {
        for s in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "NaN", "inf", "1,5", " 1", "0x10", "+1",
        ] {
            assert!(parse_decimal(s).is_err(), "{s:?} should be rejected");
        }
        let e = parse_decimal("123456789012345678901234567890123").unwrap_err();
        assert!(e.to_string().contains("28 significant digits"), "{e}");
        assert!(parse_decimal("1e999999999999").is_err());
    }

    #[test]
    fn conversions_follow_the_rounding_rule() {
        let lb = Conversion::factor(d("0.45359237"));
        assert_eq!(lb.apply(d("150")).unwrap().to_string(), "68.04");
        assert_eq!(lb.apply(d("185")).unwrap().to_string(), "83.91");
        assert_eq!(lb.invert(d("68.04")).unwrap().to_string(), "150.003");
        let f = Conversion {
            offset: d("-32"),
            numerator: d("5"),
            denominator: d("9"),
        };
        assert_eq!(f.apply(d("98.6")).unwrap().to_string(), "37.000", "padded");
        assert_eq!(f.apply(d("98.7")).unwrap().to_string(), "37.056");
        assert_eq!(f.invert(d("37.0")).unwrap().to_string(), "98.60");
        assert_eq!(f.invert(d("37.06")).unwrap().to_string(), "98.708");
        let g = Conversion::factor(d("0.001"));
        assert_eq!(
            g.apply(d("1500")).unwrap().to_string(),
            "1.5000",
            "1 g resolution plus a guard digit"
        );
        assert!(Conversion::IDENTITY.apply(d("1.10")).unwrap().to_string() == "1.10");
    }
}
