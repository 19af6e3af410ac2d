//! Parsing the times a query may give: unix seconds, RFC 3339, or relative
//! to now (`now`, `-24h`, `-30m`, `-7d`, `-2w`, `-90s`, `now-1h`).

/// Parses `s` into unix seconds, with `now` for relative forms.
pub fn parse_time(s: &str, now: f64) -> Result<f64, String> {
    let s = s.trim();
    let err = || {
        let s = crate::validate::clip(s);
        format!("time {s:?} is not unix seconds, RFC 3339 (2026-11-25T10:00:00Z) or relative (-24h, now)")
    };
    if s == "now" {
        return Ok(now);
    }
    let rel = s.strip_prefix("now").unwrap_or(s);
    if let Some(d) = rel.strip_prefix('-') {
        return parse_duration(d)
            .map(|secs| now - secs as f64)
            .ok_or_else(err);
    }
    if let Some(d) = rel.strip_prefix('+').filter(|_| s.starts_with("now")) {
        return parse_duration(d)
            .map(|secs| now + secs as f64)
            .ok_or_else(err);
    }
    if let Ok(v) = s.parse::<f64>() {
        return if v.is_finite() { Ok(v) } else { Err(err()) };
    }
    parse_rfc3339(s).ok_or_else(err)
}

/// `90s`, `30m`, `24h`, `7d`, `2w` -> seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()]
        .parse()
        .ok()
        .filter(|n| *n >= 0)?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|v| range.contains(v))
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`; `t` and a space also separate.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    if !s.is_ascii() || s.len() < 20 {
        return None;
    }
    let (date, rest) = (s.get(..10)?, s.get(11..)?);
    if !matches!(s.as_bytes()[10], b'T' | b't' | b' ') || &date[4..5] != "-" || &date[7..8] != "-" {
        return None;
    }
    let (y, mo, d) = (
        num(&date[..4], 0..=9999)?,
        num(&date[5..7], 1..=12)?,
        num(&date[8..10], 1..=31)?,
    );
    if rest.len() < 9 || &rest[2..3] != ":" || &rest[5..6] != ":" {
        return None;
    }
    let (h, mi, sec) = (
        num(&rest[..2], 0..=23)?,
        num(&rest[3..5], 0..=59)?,
        num(&rest[6..8], 0..=60)?,
    );
    let mut tail = &rest[8..];
    let mut frac = 0.0;
    if let Some(f) = tail.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        frac = format!("0.{}", &f[..digits]).parse().ok()?;
        tail = &f[digits..];
    }
    let offset = match tail {
        "Z" | "z" => 0,
        t if t.len() == 6 && (t.starts_with('+') || t.starts_with('-')) && &t[3..4] == ":" => {
            let secs = num(&t[1..3], 0..=23)? * 3_600 + num(&t[4..6], 0..=59)? * 60;
            if t.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3_600 + mi * 60 + sec - offset) as f64 + frac)
}

/// Civil date `(year, month, day)` of a day count since 1970-01-01 (inverse
/// of `days_from_civil`).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `2026-11-25T10:00:00Z` for whole unix seconds.
pub fn format_rfc3339(ts: i64) -> String {
    let (days, secs) = (ts.div_euclid(86_400), ts.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: f64 = 1_764_100_000.0;

    #[test]
    fn forms() {
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time("-24h", NOW), Ok(NOW - 86_400.0));
        assert_eq!(parse_time("now-30m", NOW), Ok(NOW - 1_800.0));
        assert_eq!(parse_time("-7d", NOW), Ok(NOW - 604_800.0));
        assert_eq!(parse_time("1764100000", NOW), Ok(1_764_100_000.0));
        assert_eq!(parse_time("1764100000.5", NOW), Ok(1_764_100_000.5));
        assert_eq!(parse_time("2025-11-25T19:46:40Z", NOW), Ok(1_764_100_000.0));
        assert_eq!(
            parse_time("2025-11-25T20:46:40+01:00", NOW),
            Ok(1_764_100_000.0)
        );
        assert_eq!(
            parse_time("2025-11-25T19:46:40.25Z", NOW),
            Ok(1_764_100_000.25)
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z", NOW), Ok(0.0));
        assert_eq!(parse_time("2000-03-01T00:00:00Z", NOW), Ok(951_868_800.0));
        for bad in [
            "",
            "yesterday",
            "-5x",
            "2025-13-01T00:00:00Z",
            "2025-11-25",
            "NaN",
            "inf",
            "-h",
            "2025-11-25T19:46:40",
        ] {
            assert!(parse_time(bad, NOW).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_time(&s, NOW);
        }

        #[test]
        fn unix_round_trip(days in 0i64..80_000, secs in 0i64..86_400) {
            // Build the RFC 3339 text from an independent civil conversion.
            let t = days * 86_400 + secs;
            let (y, m, d) = slow_civil_from_days(days);
            let text = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60);
            prop_assert_eq!(parse_rfc3339(&text), Some(t as f64));
            prop_assert_eq!(format_rfc3339(t), text);
        }
    }

    fn slow_civil_from_days(z: i64) -> (i64, i64, i64) {
        // Walk years and months: slow but obviously right.
        let mut days = z;
        let mut y = 1970;
        loop {
            let len = if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                366
            } else {
                365
            };
            if days < len {
                break;
            }
            days -= len;
            y += 1;
        }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let lens = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut m = 0;
        while days >= lens[m] {
            days -= lens[m];
            m += 1;
        }
        (y, m as i64 + 1, days + 1)
    }
}
