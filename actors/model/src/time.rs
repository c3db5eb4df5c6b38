//! Kubernetes' timestamps as text: whole-second RFC 3339 (`metav1.Time`, most timestamps of
//! an object) to and from Unix seconds, and RFC 3339 with microseconds (`metav1.MicroTime`,
//! a Lease's `renewTime`). Pure: the instant comes from the caller.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats Unix seconds as `2026-11-25T21:54:07Z` (Kubernetes' whole-second `Time`).
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Parses an RFC 3339 time (`2026-11-25T21:54:07Z`, fractions and offsets allowed) into Unix
/// seconds, fractions dropped. `None` when malformed.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let o = rest.get(1..)?;
            if o.len() != 5 || o.as_bytes()[2] != b':' {
                return None;
            }
            let oh: i64 = o[0..2].parse().ok()?;
            let om: i64 = o[3..5].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days-from-civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// `t` as `2026-11-25T21:54:07.123456Z` (instants before 1970 read as 1970).
pub fn format_rfc3339_micros(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let whole = format_rfc3339(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    format!("{}.{:06}Z", whole.trim_end_matches('Z'), d.subsec_micros())
}

/// `t` as whole-second RFC 3339.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format_rfc3339(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_945_447), "2026-11-29T09:44:07Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn micro_times() {
        use std::time::Duration;
        let t = UNIX_EPOCH + Duration::from_micros(1_795_945_447_000_042);
        assert_eq!(format_rfc3339_micros(t), "2026-11-29T09:44:07.000042Z");
        assert_eq!(rfc3339(t), "2026-11-29T09:44:07Z");
        assert_eq!(
            parse_rfc3339(&format_rfc3339_micros(t)),
            Some(1_795_945_447)
        );
    }

    #[test]
    fn rfc3339_parses_what_it_formats_and_more() {
        for secs in [0, 951_782_400, 1_795_945_447, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&format_rfc3339(secs)), Some(secs));
        }
        assert_eq!(
            parse_rfc3339("2026-11-29T09:44:07.123456Z"),
            Some(1_795_945_447)
        );
        assert_eq!(
            parse_rfc3339("2026-11-29T10:44:07+01:00"),
            Some(1_795_945_447)
        );
        for bad in [
            "",
            "2026-11-29",
            "2026-13-29T09:44:07Z",
            "2026-11-29T09:44:07",
            "x026-11-29T09:44:07Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
