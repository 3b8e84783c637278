//! Search parameters: parsing the query string, date prefixes over partial dates, and the
//! searchset Bundle.

use std::ops::Bound;

use healthanalyzer_model::jiff::{Timestamp, ToSpan, civil, tz};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

/// The query string as name/value pairs, percent-decoded, in order.
pub(crate) fn params(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// Parameter names with a modifier that this server supports on Observation searches: the
/// `Patient` type of a reference, which says no more than the parameter itself, and
/// `:identifier` (the Patient by a business identifier, `system|value`).
const SUPPORTED_MODIFIED: &[&str] = &[
    "patient:Patient",
    "subject:Patient",
    "patient:identifier",
    "subject:identifier",
];

/// Refuses a search parameter with a modifier (`patient:missing`, `code:text`,
/// `date:missing`), a chain (`subject.identifier`, `patient.name`) or a reverse chain (`_has:…`)
/// that this server does not support: 400 with an OperationOutcome naming it. Dropping such a
/// parameter would answer a wider search than the one asked, across patients (R4's own
/// example OperationOutcome `searchfail` is the answer FHIR gives instead).
pub(crate) fn refuse_unsupported_modifiers(pairs: &[(String, String)]) -> ApiResult<()> {
    refuse_modifiers_but(pairs, SUPPORTED_MODIFIED)
}

/// [`refuse_unsupported_modifiers`] for a search whose supported modified names are `allowed`.
pub(crate) fn refuse_modifiers_but(pairs: &[(String, String)], allowed: &[&str]) -> ApiResult<()> {
    for (name, _) in pairs {
        if allowed.contains(&name.as_str()) {
            continue;
        }
        let what = if name.starts_with("_has") {
            Some(format!(
                "the reverse chain {name:?} is not supported by this server"
            ))
        } else if let Some((base, modifier)) = name.split_once(':') {
            Some(format!(
                "the {base:?} parameter has the modifier {modifier:?} which is not supported by this server"
            ))
        } else if let Some((base, chain)) = name.split_once('.') {
            Some(format!(
                "the {base:?} parameter is chained ({chain:?}), which is not supported by this server; for a Patient by identifier use patient:identifier=system|value"
            ))
        } else {
            None
        };
        if let Some(what) = what {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "not-supported",
                format!(
                    "{what}; the search was not run (see /fhir/metadata for what is supported)"
                ),
            )
            .at(format!("http.{name}")));
        }
    }
    Ok(())
}

/// The prefixes of FHIR date search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Sa,
    Eb,
}

/// One `date=` value: a prefix and the range its (partial) date stands for, `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateParam {
    pub(crate) prefix: Prefix,
    pub(crate) lo: Timestamp,
    pub(crate) hi: Timestamp,
}

impl DateParam {
    /// Parses `ge2024-05`, `2024-05-06T07:08:09+02:00`, `lt2020` … A date or time without an
    /// offset is taken in UTC.
    pub(crate) fn parse(value: &str, name: &str) -> ApiResult<Self> {
        let bad = |why: &str| {
            ApiError::bad_request(format!(
                "{name}={value}: {why}; expected [eq|ne|lt|le|gt|ge|sa|eb]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]]]]"
            ))
            .at(name.to_string())
        };
        let (prefix, rest) = match value.get(..2) {
            Some("eq") => (Prefix::Eq, &value[2..]),
            Some("ne") => (Prefix::Ne, &value[2..]),
            Some("lt") => (Prefix::Lt, &value[2..]),
            Some("le") => (Prefix::Le, &value[2..]),
            Some("gt") => (Prefix::Gt, &value[2..]),
            Some("ge") => (Prefix::Ge, &value[2..]),
            Some("sa") => (Prefix::Sa, &value[2..]),
            Some("eb") => (Prefix::Eb, &value[2..]),
            Some("ap") => return Err(bad("the prefix ap (approximately) is not supported")),
            _ => (Prefix::Eq, value),
        };
        let (date_part, time_part) = match rest.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (rest, None),
        };
        let num = |s: &str, len: usize| -> Option<i16> {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let mut parts = date_part.split('-');
        let year = parts
            .next()
            .and_then(|y| num(y, 4))
            .ok_or_else(|| bad("no four-digit year"))?;
        let month = parts
            .next()
            .map(|m| num(m, 2).ok_or_else(|| bad("bad month")))
            .transpose()?;
        let day = parts
            .next()
            .map(|d| num(d, 2).ok_or_else(|| bad("bad day")))
            .transpose()?;
        if parts.next().is_some() {
            return Err(bad("too many date parts"));
        }
        let date = civil::Date::new(year, month.unwrap_or(1) as i8, day.unwrap_or(1) as i8)
            .map_err(|_| bad("no such date"))?;
        let (lo, hi) = match time_part {
            None => {
                let lo = date
                    .to_zoned(tz::TimeZone::UTC)
                    .map_err(|_| bad("out of range"))?;
                let step = match (month, day) {
                    (None, _) => 1.year(),
                    (Some(_), None) => 1.month(),
                    (Some(_), Some(_)) => 1.day(),
                };
                let hi = lo.checked_add(step).map_err(|_| bad("out of range"))?;
                (lo.timestamp(), hi.timestamp())
            }
            Some(t) => {
                if day.is_none() {
                    return Err(bad("a time needs a full date"));
                }
                let (clock, offset) = split_offset(t).ok_or_else(|| bad("bad time zone"))?;
                let mut hms = clock.split(':');
                let h = hms
                    .next()
                    .and_then(|x| num(x, 2))
                    .ok_or_else(|| bad("bad hour"))?;
                let m = hms
                    .next()
                    .and_then(|x| num(x, 2))
                    .ok_or_else(|| bad("bad minute"))?;
                let (s, frac, step) = match hms.next() {
                    None => (0, 0, 1.minute()),
                    Some(sec) => {
                        let (whole, frac) = match sec.split_once('.') {
                            Some((w, f)) => (w, Some(f)),
                            None => (sec, None),
                        };
                        let s = num(whole, 2).ok_or_else(|| bad("bad second"))?;
                        match frac {
                            None => (s, 0, 1.second()),
                            Some(f)
                                if !f.is_empty()
                                    && f.len() <= 9
                                    && f.bytes().all(|b| b.is_ascii_digit()) =>
                            {
                                let digits = f.len() as u32;
                                let n: i64 = f.parse().map_err(|_| bad("bad fraction"))?;
                                let nanos = n * 10_i64.pow(9 - digits);
                                (s, nanos as i32, 10_i64.pow(9 - digits).nanoseconds())
                            }
                            Some(_) => return Err(bad("bad fraction of a second")),
                        }
                    }
                };
                if hms.next().is_some() {
                    return Err(bad("bad time"));
                }
                let time = civil::Time::new(h as i8, m as i8, s as i8, frac)
                    .map_err(|_| bad("no such time"))?;
                let lo = date
                    .to_datetime(time)
                    .to_zoned(tz::TimeZone::fixed(offset))
                    .map_err(|_| bad("out of range"))?;
                let hi = lo.checked_add(step).map_err(|_| bad("out of range"))?;
                (lo.timestamp(), hi.timestamp())
            }
        };
        Ok(Self { prefix, lo, hi })
    }

    /// The bounds a store query can apply for a point in time; `None` for `ne`, which is a
    /// filter on the results.
    pub(crate) fn bounds(&self) -> Option<(Bound<Timestamp>, Bound<Timestamp>)> {
        use Bound::{Excluded, Included, Unbounded};
        Some(match self.prefix {
            Prefix::Eq => (Included(self.lo), Excluded(self.hi)),
            Prefix::Ne => return None,
            Prefix::Lt | Prefix::Eb => (Unbounded, Excluded(self.lo)),
            Prefix::Le => (Unbounded, Excluded(self.hi)),
            Prefix::Gt | Prefix::Sa => (Included(self.hi), Unbounded),
            Prefix::Ge => (Included(self.lo), Unbounded),
        })
    }

    /// Whether a target range `[lo, hi)` matches (FHIR's rules for ranges; a point is
    /// `[t, t + 1 ns)`).
    pub(crate) fn matches(&self, lo: Timestamp, hi: Timestamp) -> bool {
        let eq = self.lo <= lo && hi <= self.hi;
        match self.prefix {
            Prefix::Eq => eq,
            Prefix::Ne => !eq,
            Prefix::Lt => lo < self.lo,
            Prefix::Le => lo < self.hi,
            Prefix::Gt => hi > self.hi,
            Prefix::Ge => hi > self.lo,
            Prefix::Sa => lo >= self.hi,
            Prefix::Eb => hi <= self.lo,
        }
    }
}

fn split_offset(t: &str) -> Option<(&str, tz::Offset)> {
    if let Some(clock) = t.strip_suffix('Z') {
        return Some((clock, tz::Offset::UTC));
    }
    if let Some(i) = t.rfind(['+', '-']) {
        let (clock, off) = t.split_at(i);
        let sign: i32 = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let secs = sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60);
        return Some((clock, tz::Offset::from_seconds(secs).ok()?));
    }
    Some((t, tz::Offset::UTC))
}

/// Intersects two lower bounds (the later wins).
pub(crate) fn max_lower(a: Bound<Timestamp>, b: Bound<Timestamp>) -> Bound<Timestamp> {
    use Bound::{Excluded, Included, Unbounded};
    match (a, b) {
        (Unbounded, x) | (x, Unbounded) => x,
        (Included(x), Included(y)) => Included(x.max(y)),
        (Excluded(x), Excluded(y)) => Excluded(x.max(y)),
        (Included(i), Excluded(e)) | (Excluded(e), Included(i)) => {
            if i > e {
                Included(i)
            } else {
                Excluded(e)
            }
        }
    }
}

/// Intersects two upper bounds (the earlier wins).
pub(crate) fn min_upper(a: Bound<Timestamp>, b: Bound<Timestamp>) -> Bound<Timestamp> {
    use Bound::{Excluded, Included, Unbounded};
    match (a, b) {
        (Unbounded, x) | (x, Unbounded) => x,
        (Included(x), Included(y)) => Included(x.min(y)),
        (Excluded(x), Excluded(y)) => Excluded(x.min(y)),
        (Included(i), Excluded(e)) | (Excluded(e), Included(i)) => {
            if i < e {
                Included(i)
            } else {
                Excluded(e)
            }
        }
    }
}

/// `_count`: the default when absent, lowered to the maximum when above it.
fn count_param(value: Option<&str>, default: usize, max: usize) -> ApiResult<usize> {
    match value {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map(|n| n.min(max)).map_err(|_| {
            ApiError::bad_request(format!("_count={v}: expected a whole number")).at("_count")
        }),
    }
}

/// The result-control parameters every search takes.
#[derive(Debug, Clone)]
pub(crate) struct Paging {
    /// `_count`: the default when absent, lowered to the maximum when above it.
    pub(crate) count: usize,
    /// `_page`: where the previous page ended.
    pub(crate) page: Option<String>,
    /// `_summary=count` (or `_count=0`): the total only.
    pub(crate) only_total: bool,
    /// Not `_total=none`.
    pub(crate) want_total: bool,
}

impl Paging {
    pub(crate) fn parse(pairs: &[(String, String)], default: usize, max: usize) -> ApiResult<Self> {
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let count = count_param(value("_count"), default, max)?;
        Ok(Self {
            count,
            page: value("_page").map(str::to_string),
            only_total: count == 0 || value("_summary") == Some("count"),
            want_total: value("_total") != Some("none"),
        })
    }
}

/// Builds a query string from pairs (percent-encoded).
pub(crate) fn query_string(pairs: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Adds `_include`d resources to a searchset (after the matches, `search.mode` include).
#[cfg(test)]
pub(crate) fn add_included(bundle: &mut Value, included: Vec<(String, Value)>) {
    if included.is_empty() {
        return;
    }
    let Some(o) = bundle.as_object_mut() else {
        return;
    };
    let entries = o.entry("entry").or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = entries {
        list.extend(included.into_iter().map(|(full_url, resource)| {
            json!({"fullUrl": full_url, "resource": resource, "search": {"mode": "include"}})
        }));
    }
}

/// `bundle` (a searchset without entries) serialised with `matches` and then `included` as its
/// entries, each resource given as JSON text: what [`searchset`] and [`add_included`] build,
/// without a `Value` per resource.
pub(crate) fn splice_entries(
    bundle: &Value,
    matches: &[(String, String)],
    included: &[(String, String)],
) -> Vec<u8> {
    let mut out = serde_json::to_vec(bundle).unwrap_or_default();
    if (matches.is_empty() && included.is_empty()) || out.last() != Some(&b'}') {
        return out;
    }
    out.pop();
    out.extend_from_slice(b",\"entry\":[");
    let all = matches
        .iter()
        .map(|e| (e, "match"))
        .chain(included.iter().map(|e| (e, "include")));
    for (i, ((url, resource), mode)) in all.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"fullUrl\":");
        out.extend_from_slice(&serde_json::to_vec(url).unwrap_or_default());
        out.extend_from_slice(b",\"resource\":");
        out.extend_from_slice(resource.as_bytes());
        out.extend_from_slice(b",\"search\":{\"mode\":\"");
        out.extend_from_slice(mode.as_bytes());
        out.extend_from_slice(b"\"}}");
    }
    out.extend_from_slice(b"]}");
    out
}

/// A searchset Bundle.
pub(crate) fn searchset(
    self_link: &str,
    next_link: Option<&str>,
    total: Option<u64>,
    entries: Vec<(String, Value)>,
) -> Value {
    let mut links = vec![json!({"relation": "self", "url": self_link})];
    if let Some(n) = next_link {
        links.push(json!({"relation": "next", "url": n}));
    }
    let entry: Vec<Value> = entries
        .into_iter()
        .map(|(full_url, resource)| {
            json!({"fullUrl": full_url, "resource": resource, "search": {"mode": "match"}})
        })
        .collect();
    let mut b = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"lastUpdated": crate::resource::now_instant()},
        "type": "searchset",
        "link": links,
    });
    if let Some(o) = b.as_object_mut() {
        if let Some(t) = total {
            o.insert("total".into(), json!(t));
        }
        if !entry.is_empty() {
            o.insert("entry".into(), Value::Array(entry));
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::ops::RangeBounds;

    #[test]
    fn spliced_entries_are_the_bundle_that_values_build() {
        let resource = |i: u32| json!({"resourceType": "Observation", "id": format!("o{i}"), "note": [{"text": "a \"quoted\" \\ note"}]});
        let matches: Vec<(String, Value)> = (0..3)
            .map(|i| (format!("http://x/Observation/o{i}?a=\"b\""), resource(i)))
            .collect();
        let included = [(
            "http://x/Patient/p".to_string(),
            json!({"resourceType": "Patient", "id": "p"}),
        )];
        let text = |list: &[(String, Value)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(u, r)| (u.clone(), r.to_string()))
                .collect()
        };
        for (m, inc) in [
            (&matches[..], &included[..]),
            (&matches[..], &[][..]),
            (&[][..], &included[..]),
            (&[][..], &[][..]),
        ] {
            let empty = searchset(
                "http://x/Observation?_count=3",
                Some("http://x/next"),
                Some(7),
                Vec::new(),
            );
            let mut built = searchset(
                "http://x/Observation?_count=3",
                Some("http://x/next"),
                Some(7),
                m.to_vec(),
            );
            add_included(&mut built, inc.to_vec());
            // The Bundle's own id and time differ between two calls: take them from `empty`.
            built["id"] = empty["id"].clone();
            built["meta"] = empty["meta"].clone();
            let spliced = splice_entries(&empty, &text(m), &text(inc));
            assert_eq!(
                String::from_utf8(spliced).expect("utf-8"),
                built.to_string(),
                "{} matches, {} included",
                m.len(),
                inc.len()
            );
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn partial_dates_stand_for_ranges() {
        for (v, lo, hi) in [
            ("2024", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
            ("2024-02", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"),
            ("2024-02-29", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"),
            (
                "2024-05-06T07:08",
                "2024-05-06T07:08:00Z",
                "2024-05-06T07:09:00Z",
            ),
            (
                "2024-05-06T07:08:09+02:00",
                "2024-05-06T05:08:09Z",
                "2024-05-06T05:08:10Z",
            ),
            (
                "2024-05-06T07:08:09.5Z",
                "2024-05-06T07:08:09.5Z",
                "2024-05-06T07:08:09.6Z",
            ),
            (
                "2024-05-06T07:08:09-03:30",
                "2024-05-06T10:38:09Z",
                "2024-05-06T10:38:10Z",
            ),
        ] {
            let p = DateParam::parse(v, "date").unwrap_or_else(|e| panic!("{v}: {e:?}"));
            assert_eq!((p.lo, p.hi), (ts(lo), ts(hi)), "{v}");
        }
    }

    #[test]
    fn prefixes_follow_fhir_for_points() {
        let at = |s: &str| {
            let t = ts(s);
            (t, t + 1.nanosecond())
        };
        let m = |q: &str, t: &str| {
            let (lo, hi) = at(t);
            DateParam::parse(q, "date")
                .map(|p| p.matches(lo, hi))
                .unwrap_or(false)
        };
        assert!(m("2024-05", "2024-05-31T23:59:59Z"));
        assert!(!m("2024-05", "2024-06-01T00:00:00Z"));
        assert!(m("ne2024-05", "2024-06-01T00:00:00Z"));
        assert!(!m("ne2024-05", "2024-05-02T00:00:00Z"));
        assert!(m("lt2020-01-01", "2019-12-31T23:59:59Z"));
        assert!(!m("lt2020-01-01", "2020-01-01T00:00:00Z"));
        assert!(m("le2020-01-01", "2020-01-01T23:00:00Z"));
        assert!(!m("le2020-01-01", "2020-01-02T00:00:00Z"));
        assert!(m("gt2020-01-01", "2020-01-02T00:00:00Z"));
        assert!(!m("gt2020-01-01", "2020-01-01T12:00:00Z"));
        assert!(m("ge2020-01-01", "2020-01-01T00:00:00Z"));
        assert!(!m("ge2020-01-01", "2019-12-31T23:59:59Z"));
        assert!(m("sa2020", "2021-01-01T00:00:00Z"));
        assert!(m("eb2020", "2019-12-31T00:00:00Z"));
        assert!(!m("eb2020", "2020-06-01T00:00:00Z"));
    }

    #[test]
    fn bad_dates_are_refused_with_the_reason() {
        for bad in [
            "",
            "20",
            "2024-13",
            "2024-02-30",
            "2024-01-01T25:00",
            "ap2024",
            "2024-01T10:00",
            "xx2024",
            "2024-01-01T10:00+2",
        ] {
            assert!(DateParam::parse(bad, "date").is_err(), "{bad}");
        }
    }

    proptest! {
        /// The store bounds and the point rule agree for every prefix, date and instant.
        #[test]
        fn bounds_agree_with_matches(
            prefix in prop::sample::select(vec!["", "eq", "ne", "lt", "le", "gt", "ge", "sa", "eb"]),
            day in 0i64..3_000,
            precision in 0usize..4,
            offset_s in -400_000i64..400_000,
        ) {
            let date = civil::date(2020, 1, 1).checked_add(day.days()).unwrap_or(civil::date(2020, 1, 1));
            let text = match precision {
                0 => format!("{}", date.year()),
                1 => format!("{}-{:02}", date.year(), date.month()),
                2 => date.to_string(),
                _ => format!("{date}T12:30:15Z"),
            };
            let p = DateParam::parse(&format!("{prefix}{text}"), "date").expect("parses");
            let t = p.lo.checked_add(offset_s.seconds()).unwrap_or(p.lo);
            let hit = p.matches(t, t + 1.nanosecond());
            match p.bounds() {
                None => prop_assert_eq!(hit, !(p.lo <= t && t < p.hi)),
                Some((from, to)) => {
                    let inside = (from, to).contains(&t);
                    prop_assert_eq!(hit, inside);
                }
            }
        }

        /// Any text at all: an error or a value, never a panic.
        #[test]
        fn any_text_is_an_error_or_a_range(s in "\\PC{0,40}") {
            if let Ok(p) = DateParam::parse(&s, "date") {
                prop_assert!(p.lo < p.hi);
            }
        }
    }
}
