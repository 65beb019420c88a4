//! Time as FHIR and HTTP write it. Stored timestamps are microseconds since the epoch (UTC).

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

tokio::task_local! {
    /// The time [`now_us`] reads inside [`as_of`].
    static AS_OF: i64;
}

/// Now, in microseconds since the epoch (inside [`as_of`], the time it names).
pub fn now_us() -> i64 {
    if let Ok(t) = AS_OF.try_with(|t| *t) {
        return t;
    }
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
}

/// Runs `f` with the clock reading `us` (never later than now): only the demo region uses
/// this, so that its history carries the dates it would have had — care teams formed months
/// ago, a clinician's entries, the family's additions weeks later, the reviews after them —
/// written through the same path as everything else, each stamp (`meta.lastUpdated`,
/// `Provenance.recorded`, `QuestionnaireResponse.authored`, the audit's `recorded`) at its
/// time.
pub(crate) async fn as_of<F: std::future::Future>(us: i64, f: F) -> F::Output {
    AS_OF.scope(us.min(now_us()), f).await
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

/// An HTTP-date (IMF-fixdate) for `Last-Modified`, e.g. `Thu, 26 Nov 2026 03:50:00 GMT`.
/// Written by hand: it is on every read, and the general formatter costs several times more.
pub fn http_date(us: i64) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let dt = datetime(us);
    let two = |n: u8| [b'0' + n / 10, b'0' + n % 10];
    let mut out = String::with_capacity(29);
    out.push_str(DAYS[dt.weekday().number_days_from_monday() as usize]);
    out.push_str(", ");
    out.extend(two(dt.day()).map(char::from));
    out.push(' ');
    out.push_str(MONTHS[dt.month() as usize - 1]);
    out.push(' ');
    out.push_str(&dt.year().to_string());
    out.push(' ');
    for (i, n) in [dt.hour(), dt.minute(), dt.second()]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(':');
        }
        out.extend(two(n).map(char::from));
    }
    out.push_str(" GMT");
    out
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
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(951_782_400_000_000),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
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
