//! The Touchstone placeholders TestScripts use: `${UUID}`, `${CURRENTDATE}`,
//! `${CURRENTDATETIME}` and `${DATE, <var>, <unit>, <offset>}`.
//!
//! `${DATE, T, D, -20}` is the date (or date-time) in variable `T` moved by the offset: the
//! form Nictiz's generators write (`\$\{DATE, T, [YMD], [+-]\d+\}`, spaces after the commas
//! optional). Units: `Y` years, `M` months, `W` weeks, `D` days; on a date-time also `H`
//! hours, `MI` minutes and `S` seconds. The offset is a whole number with an optional sign.
//! The result has the form of `T`: a date stays a date. `T` is an ordinary variable: `--var
//! T=2026-01-01`, or a script variable whose `defaultValue` is `${CURRENTDATE}`.

/// The value of a built-in placeholder: `Ok(None)` when `name` is none, `Err` when it is a
/// malformed one (the message names it). `lookup` gives a variable's value (for `DATE`'s
/// base).
pub(super) fn builtin(
    name: &str,
    lookup: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Option<String>, String> {
    match name {
        "UUID" => return Ok(Some(uuid::Uuid::new_v4().to_string())),
        "CURRENTDATE" => return Ok(Some(jiff::Zoned::now().date().to_string())),
        "CURRENTDATETIME" => {
            let now = jiff::Zoned::now()
                .round(jiff::Unit::Second)
                .map_err(|e| format!("`${{CURRENTDATETIME}}`: {e}"))?;
            return Ok(Some(now.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()));
        }
        _ => {}
    }
    let Some(args) = name
        .strip_prefix("DATE")
        .and_then(|r| r.trim_start().strip_prefix(','))
    else {
        return Ok(None);
    };
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    let malformed = |why: String| {
        format!(
            "malformed placeholder `${{{name}}}`: {why} (the form is ${{DATE, T, <Y|M|W|D|H|MI|S>, <offset>}})"
        )
    };
    let [var, unit, offset] = parts[..] else {
        return Err(malformed(format!("{} arguments, not 3", parts.len())));
    };
    if var.is_empty() {
        return Err(malformed("no variable names the base date".to_owned()));
    }
    let base = lookup(var).map_err(|e| malformed(format!("its base `{var}`: {e}")))?;
    shift(&base, unit, offset).map(Some).map_err(malformed)
}

/// A variable's `defaultValue` with the built-in placeholders in it substituted
/// (`${CURRENTDATE}`, as Nictiz's `T` has); other `${…}` stay as written. A `DATE` offset
/// cannot be a default (its base would be looked up from inside a lookup).
pub(super) fn in_default(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let Some(end) = tail.find('}') else {
            out.push_str(&rest[at..]);
            return Ok(out);
        };
        let name = tail[..end].trim();
        let mut no_lookup = |v: &str| {
            Err(format!(
                "a defaultValue cannot hold a DATE offset (based on `{v}`); put it where the variable is used"
            ))
        };
        match builtin(name, &mut no_lookup)? {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[at..at + 2 + end + 1]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `base` (a FHIR date or dateTime) moved by `offset` `unit`s, in the form of `base`.
pub(super) fn shift(base: &str, unit: &str, offset: &str) -> Result<String, String> {
    let n: i64 = offset
        .strip_prefix('+')
        .unwrap_or(offset)
        .parse()
        .map_err(|_| format!("offset `{offset}` is not a whole number"))?;
    let span = match unit {
        "Y" => jiff::Span::new().try_years(n),
        "M" => jiff::Span::new().try_months(n),
        "W" => jiff::Span::new().try_weeks(n),
        "D" => jiff::Span::new().try_days(n),
        "H" => jiff::Span::new().try_hours(n),
        "MI" => jiff::Span::new().try_minutes(n),
        "S" => jiff::Span::new().try_seconds(n),
        other => return Err(format!("unit `{other}` is not one of Y, M, W, D, H, MI, S")),
    }
    .map_err(|_| format!("offset `{offset}` is out of range"))?;
    let base = base.trim();
    if base.len() == 10 {
        if matches!(unit, "H" | "MI" | "S") {
            return Err(format!(
                "unit `{unit}` moves a time, and the base `{base}` is a date"
            ));
        }
        let d: jiff::civil::Date = base
            .parse()
            .map_err(|_| format!("the base `{base}` is not a date (YYYY-MM-DD)"))?;
        let moved = d
            .checked_add(span)
            .map_err(|_| format!("`{base}` moved by {offset} {unit} is out of range"))?;
        return Ok(moved.to_string());
    }
    let bad_base =
        || format!("the base `{base}` is not a date (YYYY-MM-DD) or a date-time with an offset");
    let ts: jiff::Timestamp = base.parse().map_err(|_| bad_base())?;
    let zone_offset = offset_of(base).ok_or_else(bad_base)?;
    let moved = ts
        .to_zoned(jiff::tz::TimeZone::fixed(zone_offset))
        .checked_add(span)
        .map_err(|_| format!("`{base}` moved by {offset} {unit} is out of range"))?;
    let fraction = if base.contains('.') { "%.f" } else { "" };
    let zone = if base.ends_with('Z') { "Z" } else { "%:z" };
    Ok(moved
        .strftime(&format!("%Y-%m-%dT%H:%M:%S{fraction}{zone}"))
        .to_string())
}

/// The fixed offset a dateTime text ends with (`Z`, `+01:00`).
fn offset_of(base: &str) -> Option<jiff::tz::Offset> {
    if base.ends_with('Z') {
        return Some(jiff::tz::Offset::UTC);
    }
    let tail = base.get(base.len().checked_sub(6)?..)?;
    let sign = match tail.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = tail[1..].split_once(':')?;
    let secs = sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60);
    jiff::tz::Offset::from_seconds(secs).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with_t(name: &str, t: &str) -> Result<Option<String>, String> {
        let t = t.to_owned();
        builtin(name, &mut |v| {
            if v == "T" {
                Ok(t.clone())
            } else {
                Err(format!("no variable `{v}`"))
            }
        })
    }

    #[test]
    fn dates_move_by_each_unit() {
        assert_eq!(shift("2026-01-31", "D", "-20").unwrap(), "2026-01-11");
        assert_eq!(shift("2026-01-31", "M", "+1").unwrap(), "2026-02-28");
        assert_eq!(shift("2024-02-29", "Y", "1").unwrap(), "2025-02-28");
        assert_eq!(shift("2026-01-01", "W", "-1").unwrap(), "2025-12-25");
        assert_eq!(
            shift("2026-01-01T10:00:00+01:00", "H", "-11").unwrap(),
            "2025-12-31T23:00:00+01:00"
        );
        assert_eq!(
            shift("2026-01-01T10:00:00Z", "MI", "90").unwrap(),
            "2026-01-01T11:30:00Z"
        );
        assert_eq!(
            shift("2026-03-01T00:00:00-05:00", "D", "-1").unwrap(),
            "2026-02-28T00:00:00-05:00"
        );
    }

    #[test]
    fn the_nictiz_forms_are_read_with_or_without_spaces() {
        assert_eq!(
            with_t("DATE, T, D, -355", "2026-01-01").unwrap().as_deref(),
            Some("2025-01-11")
        );
        assert_eq!(
            with_t("DATE, T, D,-21", "2026-01-22").unwrap().as_deref(),
            Some("2026-01-01")
        );
        assert_eq!(
            with_t("DATE,T,Y,+2", "2026-01-22").unwrap().as_deref(),
            Some("2028-01-22")
        );
        assert_eq!(with_t("NOT-A-PLACEHOLDER", "x").unwrap(), None);
        assert_eq!(with_t("DATEOFBIRTH", "x").unwrap(), None);
    }

    #[test]
    fn builtins_have_their_forms() {
        let today = with_t("CURRENTDATE", "").unwrap().unwrap();
        assert_eq!(today.len(), 10, "{today}");
        today.parse::<jiff::civil::Date>().unwrap();
        let now = with_t("CURRENTDATETIME", "").unwrap().unwrap();
        assert_eq!(now.len(), 25, "{now}");
        // A date-time placeholder can be the base of a DATE offset.
        shift(&now, "H", "1").unwrap();
        let u = with_t("UUID", "").unwrap().unwrap();
        uuid::Uuid::parse_str(&u).unwrap();
    }

    #[test]
    fn defaults_get_the_builtins_and_keep_the_rest() {
        let d = in_default("${CURRENTDATE}").unwrap();
        assert_eq!(d, jiff::Zoned::now().date().to_string());
        assert_eq!(in_default("a ${other} b ${").unwrap(), "a ${other} b ${");
        let e = in_default("${DATE, T, D, 1}").unwrap_err();
        assert!(e.contains("`${DATE, T, D, 1}`"), "{e}");
    }

    #[test]
    fn a_malformed_placeholder_names_itself_and_what_is_wrong() {
        for (p, why) in [
            ("DATE, T, Q, 1", "unit `Q`"),
            ("DATE, T, D", "2 arguments"),
            ("DATE, T, D, 1.5", "offset `1.5`"),
            ("DATE, T, D, x", "offset `x`"),
            ("DATE, U, D, 1", "no variable `U`"),
            ("DATE, , D, 1", "no variable names"),
            ("DATE, T, H, 1", "is a date"),
            ("DATE, T, Y, 99999999", "out of range"),
        ] {
            let e = with_t(p, "2026-01-01").unwrap_err();
            assert!(e.contains(&format!("`${{{p}}}`")), "{p}: {e}");
            assert!(e.contains(why), "{p}: {e}");
        }
        let e = with_t("DATE, T, D, 1", "01-01-2026").unwrap_err();
        assert!(e.contains("not a date"), "{e}");
    }
}
