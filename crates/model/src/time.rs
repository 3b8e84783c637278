//! Points in time exactly as a source wrote them.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil;
use jiff::tz;

use crate::error::{Error, Result};

/// How precisely a [`DateTime`] was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Precision {
    /// `2024`
    Year,
    /// `2024-03`
    Month,
    /// `2024-03-31`
    Day,
    /// `2024-03-31T08:15:00+02:00`
    Second,
    /// `2024-03-31T08:15:00.1+02:00` to `…00.123456789+02:00`: the number of fraction digits (1–9).
    Fraction(u8),
}

impl Precision {
    /// True for [`Year`](Self::Year), [`Month`](Self::Month) and [`Day`](Self::Day): no time of
    /// day and no offset.
    pub fn is_date_only(self) -> bool {
        matches!(self, Self::Year | Self::Month | Self::Day)
    }
}

/// The UTC offset as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Offset {
    /// Written `Z`.
    Utc,
    /// Written `-00:00`: the instant is known in UTC but the local offset is not (RFC 3339 §4.3).
    UnknownLocal,
    /// Written `±hh:mm` (including `+00:00`).
    Fixed(tz::Offset),
}

impl Offset {
    /// The offset from UTC (zero for [`Utc`](Self::Utc) and [`UnknownLocal`](Self::UnknownLocal)).
    pub fn to_jiff(self) -> tz::Offset {
        match self {
            Self::Utc | Self::UnknownLocal => tz::Offset::UTC,
            Self::Fixed(o) => o,
        }
    }
}

/// A date or a date-time as recorded: wall clock, offset and precision.
///
/// Equality is textual (the same reading, offset and precision); compare [`instant`](Self::instant)
/// to ask whether two values denote the same moment.
///
/// Points in time exactly as a source wrote them.
///
/// Health data crosses time zones and daylight-saving changes, and the analysis of "a day" must use
/// the patient's own wall clock. So a [`DateTime`] keeps three things: the wall-clock reading, the
/// UTC offset written beside it (including whether it was written `Z`, `+00:00` or `-00:00`), and
/// the precision (a year, a month, a day, seconds, or seconds with 1 to 9 fraction digits). Its
/// text form reproduces the input exactly, so `2024-03-31T02:30:00.120+02:00` never turns into
/// `2024-03-31T00:30:00.12Z`. See `docs/adr/0003-time.md`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateTime {
    civil: civil::DateTime,
    offset: Option<Offset>,
    precision: Precision,
}

impl DateTime {
    /// Parses the FHIR `dateTime`/`instant` form (a profile of RFC 3339 / ISO 8601): `YYYY`,
    /// `YYYY-MM`, `YYYY-MM-DD`, or `YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|±hh:mm)`. A time of day must
    /// carry an offset; leap seconds (`:60`) are rejected.
    pub fn parse(input: &str) -> Result<Self> {
        Parser {
            s: input.as_bytes(),
            pos: 0,
            input,
        }
        .parse()
    }

    /// A date-time at a timestamp, read on the wall clock of `offset`, with as many fraction
    /// digits as the timestamp needs (none for whole seconds).
    pub fn from_timestamp(ts: Timestamp, offset: tz::Offset) -> Self {
        let civil = offset.to_datetime(ts);
        Self {
            civil,
            offset: Some(Offset::Fixed(offset)),
            precision: precision_for_nanos(civil.subsec_nanosecond()),
        }
    }

    /// A UTC date-time written with `Z`.
    pub fn utc(ts: Timestamp) -> Self {
        let mut dt = Self::from_timestamp(ts, tz::Offset::UTC);
        dt.offset = Some(Offset::Utc);
        dt
    }

    /// The date-time of a zoned value, keeping its current UTC offset.
    pub fn from_zoned(zoned: &jiff::Zoned) -> Self {
        Self::from_timestamp(zoned.timestamp(), zoned.offset())
    }

    /// A date without a time of day (precision [`Precision::Day`]).
    pub fn from_date(date: civil::Date) -> Self {
        Self {
            civil: date.to_datetime(civil::Time::midnight()),
            offset: None,
            precision: Precision::Day,
        }
    }

    /// The same instant, offset and precision, with the fraction cut to `digits` (0–9) digits.
    /// Values of date precision are returned unchanged.
    pub fn with_fraction_digits(mut self, digits: u8) -> Self {
        if self.precision.is_date_only() {
            return self;
        }
        let digits = digits.min(9);
        let unit = 10i32.pow(u32::from(9 - digits));
        let nanos = self.civil.subsec_nanosecond();
        let kept = nanos - nanos % unit;
        self.civil = self
            .civil
            .with()
            .subsec_nanosecond(kept)
            .build()
            .unwrap_or(self.civil);
        self.precision = if digits == 0 {
            Precision::Second
        } else {
            Precision::Fraction(digits)
        };
        self
    }

    /// The instant this denotes. A date-only value denotes the start of that year, month or day
    /// in UTC (there is no offset to read it in).
    pub fn instant(&self) -> Timestamp {
        let offset = self.offset.map_or(tz::Offset::UTC, Offset::to_jiff);
        // The civil value was range checked on construction with this offset, so this cannot
        // fail; fall back to the UTC reading rather than panic.
        offset
            .to_timestamp(self.civil)
            .or_else(|_| tz::Offset::UTC.to_timestamp(self.civil))
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// The wall-clock reading as written (midnight for a date-only value).
    pub fn civil(&self) -> civil::DateTime {
        self.civil
    }

    /// The offset as written; `None` for a date-only value.
    pub fn offset(&self) -> Option<Offset> {
        self.offset
    }

    /// How precisely the value was written.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The same instant in another time zone (for a patient's local day), as a jiff `Zoned`.
    pub fn in_tz(&self, zone: tz::TimeZone) -> jiff::Zoned {
        self.instant().to_zoned(zone)
    }
}

fn precision_for_nanos(nanos: i32) -> Precision {
    if nanos == 0 {
        return Precision::Second;
    }
    let mut digits = 9u8;
    let mut n = nanos;
    while n % 10 == 0 {
        n /= 10;
        digits -= 1;
    }
    Precision::Fraction(digits)
}

impl fmt::Display for DateTime {
    /// Writes into a stack buffer and hands it to the formatter once: writing Observations,
    /// `write!`'s per-piece formatting was about 30 % of the time (`docs/benchmarks.md`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.civil;
        let year = c.year();
        if !(0..=9999).contains(&year) {
            return self.fmt_slow(f);
        }
        let mut b = Buf::default();
        b.digits(year.unsigned_abs().into(), 4);
        if self.precision != Precision::Year {
            b.byte(b'-');
            b.digits(c.month().unsigned_abs().into(), 2);
        }
        if !matches!(self.precision, Precision::Year | Precision::Month) {
            b.byte(b'-');
            b.digits(c.day().unsigned_abs().into(), 2);
        }
        if matches!(self.precision, Precision::Second | Precision::Fraction(_)) {
            b.byte(b'T');
            b.digits(c.hour().unsigned_abs().into(), 2);
            b.byte(b':');
            b.digits(c.minute().unsigned_abs().into(), 2);
            b.byte(b':');
            b.digits(c.second().unsigned_abs().into(), 2);
            if let Precision::Fraction(d) = self.precision {
                let d = u32::from(d.clamp(1, 9));
                let v = c.subsec_nanosecond().unsigned_abs() / 10u32.pow(9 - d);
                b.byte(b'.');
                b.digits(v, d as usize);
            }
            match self.offset {
                Some(Offset::Utc) => b.byte(b'Z'),
                Some(Offset::UnknownLocal) => b.bytes(b"-00:00"),
                Some(Offset::Fixed(o)) => {
                    let secs = o.seconds();
                    b.byte(if secs < 0 { b'-' } else { b'+' });
                    let secs = secs.unsigned_abs();
                    let hours = secs / 3600;
                    if hours > 99 {
                        return self.fmt_slow(f);
                    }
                    b.digits(hours, 2);
                    b.byte(b':');
                    b.digits((secs % 3600) / 60, 2);
                }
                None => {}
            }
        }
        f.write_str(b.as_str())
    }
}

/// ASCII digits and signs for [`DateTime`]'s `Display`: 35 bytes at most
/// (`2024-03-31T08:15:00.123456789+02:00`).
struct Buf {
    bytes: [u8; 40],
    len: usize,
}

impl Default for Buf {
    fn default() -> Self {
        Self {
            bytes: [0; 40],
            len: 0,
        }
    }
}

impl Buf {
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn bytes(&mut self, bs: &[u8]) {
        for &b in bs {
            self.byte(b);
        }
    }

    /// `v` in `width` digits, zero-padded (`v` must fit).
    fn digits(&mut self, mut v: u32, width: usize) {
        let start = self.len;
        for _ in 0..width {
            self.byte(b'0');
        }
        for i in (start..self.len).rev() {
            self.bytes[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII is ever written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl DateTime {
    /// The `Display` form through `write!`, for years outside 0000–9999 and offsets of 100
    /// hours or more (neither can be parsed; both can be built), and as the reference the fast
    /// path is tested against.
    fn fmt_slow(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.civil;
        write!(f, "{:04}", c.year())?;
        if self.precision == Precision::Year {
            return Ok(());
        }
        write!(f, "-{:02}", c.month())?;
        if self.precision == Precision::Month {
            return Ok(());
        }
        write!(f, "-{:02}", c.day())?;
        if self.precision == Precision::Day {
            return Ok(());
        }
        write!(f, "T{:02}:{:02}:{:02}", c.hour(), c.minute(), c.second())?;
        if let Precision::Fraction(d) = self.precision {
            let d = u32::from(d.clamp(1, 9));
            let v = c.subsec_nanosecond() / 10i32.pow(9 - d);
            write!(f, ".{:0width$}", v, width = d as usize)?;
        }
        match self.offset {
            Some(Offset::Utc) => f.write_str("Z"),
            Some(Offset::UnknownLocal) => f.write_str("-00:00"),
            Some(Offset::Fixed(o)) => {
                let secs = o.seconds();
                let sign = if secs < 0 { '-' } else { '+' };
                let secs = secs.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", secs / 3600, (secs % 3600) / 60)
            }
            None => Ok(()),
        }
    }
}

impl fmt::Debug for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DateTime({self})")
    }
}

impl FromStr for DateTime {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    input: &'a str,
}

impl Parser<'_> {
    fn err(&self, reason: &'static str) -> Error {
        Error::InvalidDateTime {
            input: self.input.chars().take(64).collect(),
            reason,
        }
    }

    fn digits(&mut self, n: usize, what: &'static str) -> Result<i32> {
        let end = self.pos + n;
        let bytes = self.s.get(self.pos..end).ok_or_else(|| self.err(what))?;
        let mut v = 0i32;
        for b in bytes {
            if !b.is_ascii_digit() {
                return Err(self.err(what));
            }
            v = v * 10 + i32::from(b - b'0');
        }
        self.pos = end;
        Ok(v)
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<()> {
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn at_end(&self) -> bool {
        self.pos == self.s.len()
    }

    fn parse(mut self) -> Result<DateTime> {
        let year = self.digits(4, "the year must be four digits")?;
        if year == 0 {
            return Err(self.err("year 0000 does not exist"));
        }
        let mut precision = Precision::Year;
        let (mut month, mut day) = (1, 1);
        if !self.at_end() {
            self.expect(b'-', "expected '-' after the year")?;
            month = self.digits(2, "the month must be two digits")?;
            if !(1..=12).contains(&month) {
                return Err(self.err("the month must be 01 to 12"));
            }
            precision = Precision::Month;
            if !self.at_end() {
                self.expect(b'-', "expected '-' after the month")?;
                day = self.digits(2, "the day must be two digits")?;
                precision = Precision::Day;
            }
        }
        // Both come from two-digit fields, so the narrowing casts cannot truncate.
        let date = civil::Date::new(year as i16, month as i8, day as i8)
            .map_err(|_| self.err("no such day in that month"))?;
        if self.at_end() {
            return Ok(DateTime {
                civil: date.to_datetime(civil::Time::midnight()),
                offset: None,
                precision,
            });
        }
        if precision != Precision::Day {
            return Err(self.err("a time of day needs a full date before it"));
        }
        self.expect(b'T', "expected 'T' between the date and the time")?;
        let hour = self.digits(2, "the hour must be two digits")?;
        self.expect(b':', "expected ':' after the hour")?;
        let minute = self.digits(2, "the minute must be two digits")?;
        self.expect(
            b':',
            "expected ':' and seconds after the minute (seconds are required)",
        )?;
        let second = self.digits(2, "the second must be two digits")?;
        if hour > 23 || minute > 59 {
            return Err(self.err("the time of day is out of range"));
        }
        if second == 60 {
            return Err(self.err("leap seconds are not supported"));
        }
        if second > 59 {
            return Err(self.err("the second must be 00 to 59"));
        }
        let mut nanos = 0i32;
        precision = Precision::Second;
        if self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            let start = self.pos;
            while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                self.pos += 1;
            }
            let n = self.pos - start;
            if n == 0 {
                return Err(self.err("expected digits after the decimal point"));
            }
            if n > 9 {
                return Err(self.err("at most 9 fraction digits (nanoseconds) are supported"));
            }
            for b in &self.s[start..self.pos] {
                nanos = nanos * 10 + i32::from(b - b'0');
            }
            nanos *= 10i32.pow(9 - n as u32);
            precision = Precision::Fraction(n as u8);
        }
        let offset = match self.s.get(self.pos) {
            Some(b'Z') => {
                self.pos += 1;
                Offset::Utc
            }
            Some(&sign @ (b'+' | b'-')) => {
                self.pos += 1;
                let oh = self.digits(2, "the offset hours must be two digits")?;
                self.expect(b':', "expected ':' in the offset")?;
                let om = self.digits(2, "the offset minutes must be two digits")?;
                if om > 59 || oh > 14 || (oh == 14 && om > 0) {
                    return Err(self.err("the offset must be between -14:00 and +14:00"));
                }
                let secs = (oh * 3600 + om * 60) * if sign == b'-' { -1 } else { 1 };
                if secs == 0 && sign == b'-' {
                    Offset::UnknownLocal
                } else {
                    Offset::Fixed(
                        tz::Offset::from_seconds(secs)
                            .map_err(|_| self.err("the offset is out of range"))?,
                    )
                }
            }
            None => return Err(self.err("a time of day must have an offset (Z or ±hh:mm)")),
            Some(_) => return Err(self.err("expected Z or ±hh:mm after the time")),
        };
        if !self.at_end() {
            return Err(self.err("unexpected text after the offset"));
        }
        let time = civil::Time::new(hour as i8, minute as i8, second as i8, nanos)
            .map_err(|_| self.err("the time of day is out of range"))?;
        let civil = date.to_datetime(time);
        // Reject readings whose instant falls outside the supported range.
        offset
            .to_jiff()
            .to_timestamp(civil)
            .map_err(|_| self.err("the instant is outside the supported range"))?;
        Ok(DateTime {
            civil,
            offset: Some(offset),
            precision,
        })
    }
}

/// When a measurement applies: an instant, or a period (a 24-hour step count, a night's SpO2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Effective {
    /// A point in time.
    At(DateTime),
    /// A period; an open end means "still running" or "not recorded".
    Period {
        /// The start of the period.
        start: DateTime,
        /// The end of the period, if known.
        end: Option<DateTime>,
    },
}

impl Effective {
    /// The time a measurement sorts by: the instant, or the start of the period.
    pub fn start(&self) -> &DateTime {
        match self {
            Self::At(t) | Self::Period { start: t, .. } => t,
        }
    }

    /// The instant of [`start`](Self::start).
    pub fn instant(&self) -> Timestamp {
        self.start().instant()
    }
}

impl From<DateTime> for Effective {
    fn from(t: DateTime) -> Self {
        Self::At(t)
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::DateTime;
    use serde::de::{self, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::fmt;

    impl Serialize for DateTime {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self)
        }
    }

    impl<'de> Deserialize<'de> for DateTime {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = DateTime;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a date or date-time string such as 2024-03-31T08:15:00+02:00")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<DateTime, E> {
                    DateTime::parse(v).map_err(E::custom)
                }
            }
            d.deserialize_str(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Slow<'a>(&'a DateTime);

    impl fmt::Display for Slow<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt_slow(f)
        }
    }

    proptest! {
        /// The buffered `Display` writes what `write!` piece by piece wrote, for every
        /// precision and offset style.
        #[test]
        fn display_is_the_reference_form(
            secs in -62_000_000_000i64..253_000_000_000,
            nanos in 0i32..1_000_000_000,
            offset_min in -840i32..=840,
            style in 0u8..4,
            precision in 0u8..14,
        ) {
            let ts = jiff::Timestamp::new(secs, nanos).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let off = tz::Offset::from_seconds(offset_min * 60).unwrap_or(tz::Offset::UTC);
            let mut dt = DateTime::from_timestamp(ts, off);
            dt.offset = match style {
                0 => Some(Offset::Utc),
                1 => Some(Offset::UnknownLocal),
                2 => Some(Offset::Fixed(off)),
                _ => None,
            };
            dt.precision = match precision {
                0 => Precision::Year,
                1 => Precision::Month,
                2 => Precision::Day,
                3 => Precision::Second,
                n => Precision::Fraction(n - 4),
            };
            prop_assert_eq!(dt.to_string(), Slow(&dt).to_string());
        }
    }

    #[test]
    fn round_trips_every_precision_and_offset_style() {
        for s in [
            "2024",
            "2024-02",
            "2024-02-29",
            "2024-03-31T02:30:00+02:00",
            "2024-03-31T02:30:00.1+02:00",
            "2024-03-31T02:30:00.120+02:00",
            "2024-03-31T02:30:00.123456789-09:30",
            "2024-03-31T00:30:00Z",
            "2024-03-31T00:30:00+00:00",
            "2024-03-31T00:30:00-00:00",
            "0001-01-01T00:00:00+14:00",
        ] {
            let dt = DateTime::parse(s).unwrap();
            assert_eq!(dt.to_string(), s);
        }
    }

    #[test]
    fn keeps_offset_and_instant() {
        let a = DateTime::parse("2024-10-27T02:30:00+02:00").unwrap();
        let b = DateTime::parse("2024-10-27T00:30:00Z").unwrap();
        assert_ne!(a, b, "textually different");
        assert_eq!(a.instant(), b.instant(), "but the same instant");
        assert_eq!(
            a.offset(),
            Some(Offset::Fixed(tz::Offset::from_hours(2).unwrap()))
        );
        assert_eq!(a.civil().hour(), 2);
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for (s, reason) in [
            ("", "four digits"),
            ("yesterday", "four digits"),
            ("2024-13", "01 to 12"),
            ("2023-02-29", "no such day"),
            ("2024-03-31T10:00:00", "must have an offset"),
            ("2024-03-31T10:00+02:00", "seconds are required"),
            ("2024-03-31T24:00:00Z", "out of range"),
            ("2024-03-31T23:59:60Z", "leap seconds"),
            ("2024-03-31T10:00:00+15:00", "-14:00 and +14:00"),
            ("2024-03-31T10:00:00.Z", "digits after the decimal point"),
            ("2024-03-31T10:00:00.1234567890Z", "at most 9"),
            ("2024-03-31T10:00:00Zjunk", "unexpected text"),
            ("0000", "0000"),
            ("2024-03-31 10:00:00Z", "expected 'T'"),
        ] {
            let err = DateTime::parse(s).unwrap_err().to_string();
            assert!(err.contains(reason), "{s:?}: {err}");
        }
    }

    #[test]
    fn from_timestamp_uses_minimal_fraction_digits() {
        let ts: Timestamp = "2024-01-01T00:00:00.25Z".parse().unwrap();
        let dt = DateTime::from_timestamp(ts, tz::Offset::from_hours(1).unwrap());
        assert_eq!(dt.to_string(), "2024-01-01T01:00:00.25+01:00");
        assert_eq!(DateTime::utc(ts).to_string(), "2024-01-01T00:00:00.25Z");
        assert_eq!(
            DateTime::utc(ts).with_fraction_digits(0).to_string(),
            "2024-01-01T00:00:00Z"
        );
    }

    #[test]
    fn date_only_denotes_utc_midnight() {
        let d = DateTime::parse("2024-06").unwrap();
        assert_eq!(d.instant().to_string(), "2024-06-01T00:00:00Z");
        assert_eq!(d.offset(), None);
        assert!(d.precision().is_date_only());
    }
}
