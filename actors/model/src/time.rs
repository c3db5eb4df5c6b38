//! Kubernetes' timestamps as text: whole-second RFC 3339 (`metav1.Time`, most timestamps of
//! an object) and RFC 3339 with microseconds (`metav1.MicroTime`, a Lease's `renewTime`).
//! Pure: the instant comes from the caller.

use std::time::{SystemTime, UNIX_EPOCH};

/// The civil date (year, month, day) of a day counted from 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's civil-from-days).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    (if mo <= 2 { y + 1 } else { y }, mo, d)
}

/// Unix seconds as `2026-11-25T21:54:07Z`.
pub fn format_rfc3339(secs: i64) -> String {
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
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
    use std::time::Duration;

    #[test]
    fn known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_945_447), "2026-11-29T09:44:07Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_795_945_447_000_042);
        assert_eq!(format_rfc3339_micros(t), "2026-11-29T09:44:07.000042Z");
        assert_eq!(rfc3339(t), "2026-11-29T09:44:07Z");
    }
}
