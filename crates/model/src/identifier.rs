//! Identifiers of people and devices, and the code systems the model speaks of.

use std::fmt;

/// URIs of the identifier and code systems the model knows.
pub mod systems {
    /// Danish personal identification number (CPR).
    pub const CPR: &str = "urn:oid:1.2.208.176.1.2";
    /// Dutch citizen service number (BSN).
    pub const BSN: &str = "http://fhir.nl/fhir/NamingSystem/bsn";
    /// Norwegian national identity number (fødselsnummer, FNR).
    pub const FNR: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
    /// Norwegian D-number (for people not in the population register).
    pub const DNR: &str = "urn:oid:2.16.578.1.12.4.1.4.2";
    /// LOINC.
    pub const LOINC: &str = "http://loinc.org";
    /// SNOMED CT.
    pub const SNOMED: &str = "http://snomed.info/sct";
    /// UCUM units.
    pub const UCUM: &str = "http://unitsofmeasure.org";
    /// ISO/IEEE 11073-10101 medical device nomenclature (MDC).
    pub const MDC: &str = "urn:iso:std:iso:11073:10101";
    /// The NPU terminology under its Danish OID (MedCom, the FUT infrastructure, dk-core
    /// before 3.0; the DNK codes are in it too).
    pub const NPU: &str = "urn:oid:1.2.208.176.2.1";
    /// The NPU terminology under the URI HL7 Denmark's dk-core uses from 3.0 on.
    pub const NPU_URI: &str = "http://npu-terminology.org";
    /// The Norwegian laboratory code list (NLK), which carries the NPU codes; the `NPU/NLK`
    /// slice of HL7 Norway's VkpObservation.
    pub const NLK: &str = "urn:oid:2.16.578.1.12.4.1.1.7280";
    /// MedCom's own measurement codes (MCS…, the FUT infrastructure's
    /// `urn:oid:1.2.208.184.100.8`).
    pub const MEDCOM: &str = "urn:oid:1.2.208.184.100.8";
}

/// An identifier: a value within a system (a URI). A subject with no national identifier uses
/// a local system of the source, or none.
///
/// Identifiers of people and devices, and the code systems the model speaks of.
///
/// A personal identifier (Danish CPR, Dutch BSN, Norwegian FNR or D-number) is personal data:
/// [`Identifier`]'s `Debug` output redacts the value, so an identifier that ends up in a log line
/// by accident does not leak. Use [`Identifier::value`] deliberately where the value is needed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Identifier {
    /// The system URI (e.g. [`systems::CPR`]); `None` for a bare local id.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub system: Option<String>,
    /// The value within the system.
    pub value: String,
}

impl Identifier {
    /// An identifier in a system.
    pub fn new(system: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            system: Some(system.into()),
            value: value.into(),
        }
    }

    /// A local identifier without a system.
    pub fn local(value: impl Into<String>) -> Self {
        Self {
            system: None,
            value: value.into(),
        }
    }

    /// A Danish CPR number (format is checked by [`check_format`](Self::check_format)).
    pub fn cpr(value: impl Into<String>) -> Self {
        Self::new(systems::CPR, value)
    }

    /// A Dutch BSN.
    pub fn bsn(value: impl Into<String>) -> Self {
        Self::new(systems::BSN, value)
    }

    /// A Norwegian FNR.
    pub fn fnr(value: impl Into<String>) -> Self {
        Self::new(systems::FNR, value)
    }

    /// The value. Personal data for the national systems: do not log it above `debug`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Which national system this is, if any.
    pub fn national_system(&self) -> Option<NationalId> {
        match self.system.as_deref()? {
            systems::CPR => Some(NationalId::Cpr),
            systems::BSN => Some(NationalId::Bsn),
            systems::FNR => Some(NationalId::Fnr),
            systems::DNR => Some(NationalId::Dnr),
            _ => None,
        }
    }

    /// Checks the value's format for the national systems (other systems: non-empty only).
    /// Returns the reason it is wrong; the reason never contains the value.
    pub fn check_format(&self) -> Result<(), &'static str> {
        if self.value.trim().is_empty() {
            return Err("the identifier value is empty");
        }
        match self.national_system() {
            Some(NationalId::Cpr) => check_cpr(&self.value),
            Some(NationalId::Bsn) => check_bsn(&self.value),
            Some(NationalId::Fnr) => check_fnr(&self.value, false),
            Some(NationalId::Dnr) => check_fnr(&self.value, true),
            None => Ok(()),
        }
    }

    /// Why the value fails its national system's rules (length, date, check digits), when it
    /// is non-empty and does: a test number, most often. `None` for valid numbers and for
    /// other systems. The reason never contains the value.
    pub fn national_issue(&self) -> Option<&'static str> {
        if self.value.trim().is_empty() {
            return None;
        }
        self.national_system()?;
        self.check_format().err()
    }

    /// The `system|value` form (the value alone without a system) that
    /// [`FromStr`](std::str::FromStr) reads back. It holds the value: personal data for the
    /// national systems, not for logs above `debug`.
    pub fn key(&self) -> String {
        match &self.system {
            Some(s) => format!("{s}|{}", self.value),
            None => self.value.clone(),
        }
    }

    /// A form safe for logs: the system and the value's length, never the value.
    pub fn redacted(&self) -> Redacted<'_> {
        Redacted(self)
    }
}

/// Reads the `system|value` form, the one FHIR token searches, configuration files and the
/// command line use: `system|value` names a system, `|value` says there is none, and a bare
/// `value` is a local identifier without a system.
///
/// ```
/// use healthanalyzer_model::{Identifier, systems};
///
/// let id: Identifier = "urn:oid:1.2.208.176.1.2|0101001234".parse()?;
/// assert_eq!(id, Identifier::cpr("0101001234"));
/// assert_eq!("|abc".parse::<Identifier>()?, Identifier::local("abc"));
/// assert_eq!("abc".parse::<Identifier>()?, Identifier::local("abc"));
/// assert!("https://example.org/ids|".parse::<Identifier>().is_err());
/// # let _ = systems::CPR;
/// # Ok::<(), healthanalyzer_model::Error>(())
/// ```
impl std::str::FromStr for Identifier {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, crate::Error> {
        let (system, value) = match s.split_once('|') {
            Some(("", v)) => (None, v),
            Some((sys, v)) => (Some(sys), v),
            None => (None, s),
        };
        if value.trim().is_empty() {
            return Err(crate::Error::InvalidIdentifier {
                reason: "the value is empty",
            });
        }
        if system.is_some_and(|s| s.trim() != s || s.chars().any(char::is_whitespace)) {
            return Err(crate::Error::InvalidIdentifier {
                reason: "the system holds white space",
            });
        }
        Ok(Identifier {
            system: system.map(str::to_string),
            value: value.to_string(),
        })
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier({})", self.redacted())
    }
}

/// A display of an [`Identifier`] without its value, from [`Identifier::redacted`].
pub struct Redacted<'a>(&'a Identifier);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let system = self.0.system.as_deref().unwrap_or("local");
        write!(
            f,
            "{system}|<{} chars redacted>",
            self.0.value.chars().count()
        )
    }
}

/// The national identifier systems whose format is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NationalId {
    /// Danish CPR.
    Cpr,
    /// Dutch BSN.
    Bsn,
    /// Norwegian FNR.
    Fnr,
    /// Norwegian D-number.
    Dnr,
}

fn digits<const N: usize>(s: &str) -> Option<[u32; N]> {
    let s = s.as_bytes();
    if s.len() != N {
        return None;
    }
    let mut out = [0u32; N];
    for (o, b) in out.iter_mut().zip(s) {
        if !b.is_ascii_digit() {
            return None;
        }
        *o = u32::from(b - b'0');
    }
    Some(out)
}

fn plausible_day_month(day: u32, month: u32) -> bool {
    (1..=31).contains(&day) && (1..=12).contains(&month)
}

/// CPR: 10 digits `DDMMYYSSSS` (an optional hyphen after the date is accepted). The modulus 11
/// check is not applied: numbers issued since 2007 need not satisfy it.
fn check_cpr(v: &str) -> Result<(), &'static str> {
    let compact: String = if v.len() == 11 && v.as_bytes()[6] == b'-' {
        v.chars().filter(|c| *c != '-').collect()
    } else {
        v.to_owned()
    };
    let d = digits::<10>(&compact).ok_or("a CPR number has 10 digits (DDMMYYSSSS)")?;
    if !plausible_day_month(d[0] * 10 + d[1], d[2] * 10 + d[3]) {
        return Err("a CPR number starts with a valid date (DDMMYY)");
    }
    Ok(())
}

/// BSN: 9 digits passing the "11-proef".
fn check_bsn(v: &str) -> Result<(), &'static str> {
    let d = digits::<9>(v).ok_or("a BSN has 9 digits")?;
    let sum: i64 = d[..8]
        .iter()
        .zip((2..=9).rev())
        .map(|(x, w)| i64::from(*x) * w)
        .sum::<i64>()
        - i64::from(d[8]);
    if sum == 0 || sum % 11 != 0 {
        return Err("the BSN fails the 11-test (check digit)");
    }
    Ok(())
}

/// FNR / D-number: 11 digits `DDMMYYIIICC` with two modulus 11 check digits. D-numbers add 4 to
/// the first digit; synthetic test numbers add 4 (H-numbers) or 8 (Tenor) to the month.
fn check_fnr(v: &str, d_number: bool) -> Result<(), &'static str> {
    let d = digits::<11>(v).ok_or("an FNR or D-number has 11 digits")?;
    let mut day = d[0] * 10 + d[1];
    if d_number {
        if day < 41 {
            return Err("a D-number's day is 41 to 71 (day + 40)");
        }
        day -= 40;
    }
    let mut month = d[2] * 10 + d[3];
    if month > 80 {
        month -= 80;
    } else if month > 40 {
        month -= 40;
    }
    if !plausible_day_month(day, month) {
        return Err("the number does not start with a valid date");
    }
    let w1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    let w2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let check = |weights: &[u32]| {
        let s: u32 = weights.iter().zip(d.iter()).map(|(w, x)| w * x).sum();
        match 11 - s % 11 {
            11 => Some(0),
            10 => None,
            k => Some(k),
        }
    };
    if check(&w1) != Some(d[9]) || check(&w2) != Some(d[10]) {
        return Err("the check digits do not match");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_system_value_form_round_trips(
            system in "[a-z]{1,8}:[A-Za-z0-9.:/-]{0,30}",
            value in "[^\\s][^\n]{0,20}",
        ) {
            let id: Identifier = format!("{system}|{value}").parse().expect("parses");
            prop_assert_eq!(&id, &Identifier::new(&system, &value));
            prop_assert_eq!(id.key().parse::<Identifier>().expect("parses"), id);
            let local: Identifier = format!("|{value}").parse().expect("parses");
            prop_assert_eq!(local, Identifier::local(&value));
        }

        #[test]
        fn any_text_parses_or_errs_without_showing_the_value(text in "\\PC{0,40}") {
            match text.parse::<Identifier>() {
                Ok(id) => prop_assert!(!id.value.trim().is_empty()),
                Err(e) => {
                    let message = e.to_string();
                    let value = text.split_once('|').map_or(text.as_str(), |(_, v)| v);
                    prop_assert!(value.trim().len() < 3 || !message.contains(value.trim()), "{}", message);
                }
            }
        }
    }

    #[test]
    fn bad_identifiers_say_what_is_wrong() {
        for (text, reason) in [
            ("", "the value is empty"),
            ("|", "the value is empty"),
            ("urn:oid:1.2.208.176.1.2|  ", "the value is empty"),
            ("urn:oid:1 2|123", "the system holds white space"),
        ] {
            match text.parse::<Identifier>() {
                Err(crate::Error::InvalidIdentifier { reason: r }) => {
                    assert_eq!(r, reason, "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let bare: Identifier = "abc|def|ghi".parse().expect("parses");
        assert_eq!(bare, Identifier::new("abc", "def|ghi"));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let id = Identifier::cpr("0101901234");
        let dbg = format!("{id:?}");
        assert!(!dbg.contains("0101901234"), "{dbg}");
        assert!(dbg.contains("10 chars redacted"), "{dbg}");
    }

    #[test]
    fn national_formats() {
        assert!(Identifier::cpr("0101901234").check_format().is_ok());
        assert!(Identifier::cpr("010190-1234").check_format().is_ok());
        assert!(Identifier::cpr("3213901234").check_format().is_err());
        assert!(Identifier::cpr("12345").check_format().is_err());
        // 111222333 is the well-known valid test BSN.
        assert!(Identifier::bsn("111222333").check_format().is_ok());
        assert!(Identifier::bsn("111222334").check_format().is_err());
        assert!(Identifier::bsn("000000000").check_format().is_err());
        // A synthetic FNR with valid check digits (01010112345 has wrong ones).
        assert!(Identifier::fnr("01010100050").check_format().is_ok());
        assert!(Identifier::fnr("01010112345").check_format().is_err());
        let dnr = |v: &str| Identifier::new(systems::DNR, v).check_format();
        assert!(dnr("41010100044").is_ok());
        assert!(dnr("41010100050").is_err());
        assert!(dnr("01010100050").is_err(), "an FNR is not a D-number");
        assert!(Identifier::local("p-1").check_format().is_ok());
        assert!(Identifier::local(" ").check_format().is_err());
    }
}
