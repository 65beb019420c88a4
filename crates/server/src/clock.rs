//! Time as FHIR and HTTP write it. Stored timestamps are microseconds since the epoch (UTC).

use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::{OffsetDateTime, UtcOffset};

/// Now, in microseconds since the epoch.
pub fn now_us() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
}

fn datetime(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A FHIR `instant` with microseconds, e.g. `2026-11-26T03:50:00.123456Z`.
pub fn instant(us: i64) -> String {
    let dt = datetime(us);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.microsecond()
    )
}

/// An HTTP-date for `Last-Modified`, e.g. `Thu, 26 Nov 2026 03:50:00 GMT`.
pub fn http_date(us: i64) -> String {
    let s = datetime(us).format(&Rfc2822).unwrap_or_default();
    // RFC 2822 ends in "+0000"; HTTP wants "GMT".
    s.trim_end_matches("+0000").trim_end().to_owned() + " GMT"
}

/// Parses a FHIR `instant`/`dateTime` (`_since`, `_at`) into microseconds. A date or
/// dateTime without a time zone is taken as UTC; partial dates (`2026`, `2026-11`,
/// `2026-11-26`) mean their first instant.
pub fn parse_fhir_datetime(s: &str) -> Option<i64> {
    let full = match s.len() {
        4 => format!("{s}-01-01T00:00:00Z"),
        7 => format!("{s}-01T00:00:00Z"),
        10 => format!("{s}T00:00:00Z"),
        _ if s.contains('T') && !has_zone(s) => format!("{s}Z"),
        _ => s.to_owned(),
    };
    let dt = OffsetDateTime::parse(&full, &Rfc3339).ok()?;
    Some((dt.to_offset(UtcOffset::UTC).unix_timestamp_nanos() / 1_000) as i64)
}

fn has_zone(s: &str) -> bool {
    let time = s.split_once('T').map_or("", |(_, t)| t);
    time.ends_with('Z') || time.contains('+') || time.contains('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let us = 1_764_128_000_123_456; // 2025-11-26T03:33:20.123456Z
        assert_eq!(instant(us), "2025-11-26T03:33:20.123456Z");
        assert_eq!(http_date(us), "Wed, 26 Nov 2025 03:33:20 GMT");
        assert_eq!(parse_fhir_datetime(&instant(us)), Some(us));
    }

    #[test]
    fn parses_partial_and_zoned() {
        let day = parse_fhir_datetime("2025-11-26").unwrap();
        assert_eq!(parse_fhir_datetime("2025-11-26T00:00:00Z"), Some(day));
        assert_eq!(parse_fhir_datetime("2025-11-26T01:00:00+01:00"), Some(day));
        assert_eq!(parse_fhir_datetime("2025-11-26T00:00:00"), Some(day));
        assert!(parse_fhir_datetime("2025").unwrap() < day);
        assert_eq!(parse_fhir_datetime("yesterday"), None);
    }
}
