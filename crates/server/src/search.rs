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
/// `Patient` type of a reference, which says no more than the parameter itself, `:identifier`
/// (the Patient by a business identifier, `system|value`), and the chains to the Patient's
/// `identifier` ([`CHAINED_IDENTIFIER`]), which ask the same.
const SUPPORTED_MODIFIED: &[&str] = &[
    "patient:Patient",
    "subject:Patient",
    "patient:identifier",
    "subject:identifier",
    "patient.identifier",
    "subject.identifier",
    "patient:Patient.identifier",
    "subject:Patient.identifier",
];

/// The Observation parameters that name the Patient by one of its identifiers
/// (`system|value`): the `:identifier` modifier and the chains to `Patient.identifier`.
pub(crate) const PATIENT_IDENTIFIER_PARAMS: &[&str] = &[
    "patient.identifier",
    "subject.identifier",
    "patient:Patient.identifier",
    "subject:Patient.identifier",
    "patient:identifier",
    "subject:identifier",
];

/// The Norwegian H-number (helsepersonell-/hjelpenummer, FHN), which the model does not name.
pub(crate) const FHN: &str = "urn:oid:2.16.578.1.12.4.1.4.3";

/// The identifier systems of national person numbers: Danish CPR, Dutch BSN, Norwegian FNR,
/// D-number and H-number. Their values never appear in a URL this server reads or writes.
pub(crate) const NATIONAL_SYSTEMS: &[&str] = &[
    healthanalyzer_model::systems::CPR,
    healthanalyzer_model::systems::BSN,
    healthanalyzer_model::systems::FNR,
    healthanalyzer_model::systems::DNR,
    FHN,
];

/// Whether a `system|value` token names a national person number.
pub(crate) fn is_national_token(token: &str) -> bool {
    token
        .split_once('|')
        .is_some_and(|(system, _)| NATIONAL_SYSTEMS.contains(&system))
}

/// Whether a parameter takes identifiers (`system|value`): `identifier`, and every name that
/// ends in `.identifier` or `:identifier`.
fn takes_identifiers(name: &str) -> bool {
    name == "identifier" || name.ends_with(".identifier") || name.ends_with(":identifier")
}

/// Refuses a national person number in a URL's query (MedMij's rule, and the reason FHIR has
/// `POST [type]/_search`): 400 naming the parameter, telling the client to POST the search to
/// `[type]/_search` with a form body. The message never quotes the value.
pub(crate) fn refuse_national_in_url(pairs: &[(String, String)], ty: &str) -> ApiResult<()> {
    for (name, value) in pairs {
        if takes_identifiers(name) && value.split(',').any(is_national_token) {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "not-supported",
                format!(
                    "{name}: a national person number (CPR, BSN, FNR, D- or H-number) is not supported in a URL, \
                     where it would end up in logs and histories; send the search as POST [base]/{ty}/_search \
                     with the parameters in an application/x-www-form-urlencoded body"
                ),
            )
            .at(format!("http.{name}")));
        }
    }
    Ok(())
}

/// Checks a `system|value` token that names a Patient: a system that is an absolute URI and a
/// value; for the national systems, a value of the right shape (digits, length). 400 naming
/// the parameter otherwise; the message never quotes the value.
pub(crate) fn patient_identifier(
    name: &str,
    token: &str,
) -> ApiResult<healthanalyzer_model::Identifier> {
    let bad = |why: &str| {
        ApiError::bad_request(format!(
            "{name}: {why}; send system|value, the Patient's identifier with its system \
             (e.g. urn:oid:2.16.578.1.12.4.1.4.1|<fødselsnummer>)"
        ))
        .at(format!("http.{name}"))
    };
    let Some((system, value)) = token.split_once('|') else {
        return Err(bad("the identifier has no system"));
    };
    if value.is_empty() || value.contains('|') {
        return Err(bad("the identifier value is missing or holds a second '|'"));
    }
    let absolute = system.starts_with("urn:")
        || system.starts_with("http://")
        || system.starts_with("https://");
    if !absolute || system.contains(char::is_whitespace) {
        return Err(bad(
            "the identifier system is not an absolute URI (urn:…, http://… or https://…)",
        ));
    }
    if NATIONAL_SYSTEMS.contains(&system) {
        let digits = value.chars().filter(char::is_ascii_digit).count();
        let dash = value.chars().filter(|c| *c == '-').count();
        let shape = match system {
            healthanalyzer_model::systems::CPR => {
                digits == 10 && (dash == 0 || (dash == 1 && value.find('-') == Some(6)))
            }
            healthanalyzer_model::systems::BSN => digits == 9 && dash == 0,
            _ => digits == 11 && dash == 0,
        };
        if !shape || digits + dash != value.len() {
            return Err(bad(
                "the value is not a national person number of that system (CPR: 10 digits, BSN: 9, FNR, D- and H-number: 11)",
            ));
        }
    }
    Ok(healthanalyzer_model::Identifier::new(system, value))
}

/// A POST `_search` body: `application/x-www-form-urlencoded` name/value pairs, percent-decoded,
/// in order. An empty body without a media type is no parameters; any other media type is 415.
pub(crate) fn form_body(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> ApiResult<Vec<(String, String)>> {
    let media = headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?"))
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match media.as_deref() {
        Some("application/x-www-form-urlencoded") => {}
        None if body.is_empty() => return Ok(Vec::new()),
        other => {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                format!(
                    "a search POSTed to _search takes its parameters as application/x-www-form-urlencoded; \
                     this body is {}",
                    other.map_or("without a Content-Type".to_string(), |t| format!("{t:?}"))
                ),
            )
            .at("http.Content-Type"));
        }
    }
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::bad_request("the form body is not UTF-8"));
    }
    Ok(form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

/// The parameters a POST `_search` runs with: those of the URL, then those of the body (FHIR
/// R4 search.html: the server combines both). The URL's must not carry a national person
/// number ([`refuse_national_in_url`]).
pub(crate) fn post_search_params(
    query: Option<&str>,
    headers: &axum::http::HeaderMap,
    body: &[u8],
    ty: &str,
) -> ApiResult<Vec<(String, String)>> {
    let mut pairs = params(query);
    refuse_national_in_url(&pairs, ty)?;
    pairs.extend(form_body(headers, body)?);
    Ok(pairs)
}

/// Refuses a search the token's scopes do not allow (`s` on `ty`): the interactions the
/// authorization layer does not see as searches (POST `_search`, POST operations) check here.
pub(crate) fn check_search_scope(
    access: &Option<axum::Extension<crate::auth::Access>>,
    ty: &str,
) -> ApiResult<()> {
    if let Some(axum::Extension(crate::auth::Access::Token(grant))) = access
        && !grant.allows(ty, 's')
    {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!("the token's scopes do not allow 's' on {ty}"),
        ));
    }
    Ok(())
}

/// The result parameters in the order self and next links carry them, after the criteria.
const RESULT_ORDER: &[&str] = &[
    "_sort", "_include", "_count", "_summary", "_total", "_format", "_page",
];

/// Parameters in the canonical order of this server's links: the criteria by name (the values
/// of one name in the order given), then the result parameters ([`RESULT_ORDER`]); a pair given
/// twice is kept once.
pub(crate) fn canonical(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.sort_by(|(a, _), (b, _)| {
        let rank = |k: &str| RESULT_ORDER.iter().position(|r| *r == k);
        match (rank(a), rank(b)) {
            (None, None) => a.cmp(b),
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(&y),
        }
    });
    let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for p in pairs {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The result parameters a search used, for its links: `_count` (as applied), `_summary=count`,
/// `_total=none` and `_format`, when given.
pub(crate) fn result_params(pairs: &[(String, String)], paging: &Paging) -> Vec<(String, String)> {
    let mut out = vec![("_count".to_string(), paging.count.to_string())];
    for (k, v) in pairs {
        let used = match k.as_str() {
            "_summary" => v == "count",
            "_total" => v == "none",
            "_format" => true,
            _ => false,
        };
        if used {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

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

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn links_carry_criteria_by_name_then_result_parameters_in_a_fixed_order() {
        let got = canonical(pairs(&[
            ("_page", "t"),
            ("_count", "5"),
            ("patient", "a"),
            ("date", "lt2025"),
            ("_sort", "-date"),
            ("code", "x"),
            ("date", "ge2024"),
            ("patient", "a"),
            ("_total", "none"),
            ("_include", "Observation:subject"),
        ]));
        assert_eq!(
            got,
            pairs(&[
                ("code", "x"),
                ("date", "lt2025"),
                ("date", "ge2024"),
                ("patient", "a"),
                ("_sort", "-date"),
                ("_include", "Observation:subject"),
                ("_count", "5"),
                ("_total", "none"),
                ("_page", "t"),
            ])
        );
    }

    #[test]
    fn patient_identifiers_need_a_uri_system_and_a_value_of_the_right_shape() {
        let fnr = healthanalyzer_model::systems::FNR;
        let cpr = healthanalyzer_model::systems::CPR;
        let bsn = healthanalyzer_model::systems::BSN;
        for ok in [
            format!("{fnr}|14038012345"),
            format!("{cpr}|0101011234"),
            format!("{cpr}|010101-1234"),
            format!("{bsn}|999999990"),
            "urn:test:mrn|Anne".to_string(),
            "https://example.org/ids|a b".to_string(),
        ] {
            assert!(
                patient_identifier("patient.identifier", &ok).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "14038012345".to_string(),
            format!("{fnr}|"),
            format!("{fnr}|1403801234"),
            format!("{fnr}|1403801234x"),
            format!("{cpr}|01010-11234"),
            format!("{bsn}|99999999"),
            "mrn|1".to_string(),
            "|1".to_string(),
            format!("{fnr}|14038012345|1"),
        ] {
            let e = patient_identifier("subject.identifier", &bad).err();
            let e = e.unwrap_or_else(|| panic!("{bad} passed"));
            assert_eq!(e.expression.as_deref(), Some("http.subject.identifier"));
            assert!(!e.diagnostics.contains("1403801"), "{}", e.diagnostics);
        }
    }

    #[test]
    fn national_numbers_are_refused_in_urls_only_in_identifier_parameters() {
        let fnr = format!("{}|14038012345", healthanalyzer_model::systems::FNR);
        for name in [
            "identifier",
            "patient.identifier",
            "subject:Patient.identifier",
            "patient:identifier",
        ] {
            let e = refuse_national_in_url(&pairs(&[(name, &format!("urn:a|1,{fnr}"))]), "X");
            let e = e.err().unwrap_or_else(|| panic!("{name} passed"));
            assert_eq!(e.expression, Some(format!("http.{name}")));
            assert!(e.diagnostics.contains("POST [base]/X/_search"));
            assert!(!e.diagnostics.contains("14038012345"));
        }
        assert!(refuse_national_in_url(&pairs(&[("identifier", "urn:a|1")]), "X").is_ok());
        // Not an identifier parameter: no opinion.
        assert!(refuse_national_in_url(&pairs(&[("code", &fnr)]), "X").is_ok());
    }

    #[test]
    fn form_bodies_need_their_media_type() {
        use axum::http::{HeaderMap, HeaderValue, header};
        let with = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            h
        };
        let got = form_body(
            &with("application/x-www-form-urlencoded; charset=utf-8"),
            b"a=1&b=x%7Cy&a=2",
        );
        assert_eq!(
            got.ok(),
            Some(pairs(&[("a", "1"), ("b", "x|y"), ("a", "2")]))
        );
        assert_eq!(form_body(&HeaderMap::new(), b"").ok(), Some(Vec::new()));
        for (headers, body) in [
            (with("application/fhir+json"), &b"{}"[..]),
            (with("text/plain"), &b"a=1"[..]),
            (HeaderMap::new(), &b"a=1"[..]),
        ] {
            let e = form_body(&headers, body).err();
            assert_eq!(
                e.map(|e| e.status),
                Some(axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE)
            );
        }
        assert!(form_body(&with("application/x-www-form-urlencoded"), b"a=%ff").is_ok());
        assert!(
            form_body(
                &with("application/x-www-form-urlencoded"),
                &[b'a', b'=', 0xff]
            )
            .is_err()
        );
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
