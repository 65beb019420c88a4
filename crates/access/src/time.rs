//! Just enough calendar for access decisions: a civil [`Date`] (birth dates, hand-over
//! dates) and a [`Timestamp`] (seconds since the Unix epoch, UTC) for "now" and expiries.
//!
//! Kept here rather than pulling in a date crate: the decision needs only ordering,
//! "add N years" and "add N seconds". Callers holding a `time::OffsetDateTime` convert
//! with `Timestamp::from_unix(t.unix_timestamp())`. All comparisons are in UTC; a
//! birthday therefore starts at midnight UTC (01:00 BST in summer).

use crate::AccessError;

/// A calendar date (proleptic Gregorian), e.g. a FHIR `date` such as `Patient.birthDate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

/// An instant: whole seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Date {
    /// A date, if it exists in the calendar.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        (1..=12)
            .contains(&month)
            .then_some(())
            .filter(|()| day >= 1 && day <= days_in_month(year, month))
            .map(|()| Date { year, month, day })
    }

    /// Parses a full FHIR `date` (`YYYY-MM-DD`). Partial dates (`YYYY`, `YYYY-MM`) are
    /// rejected: an age cannot be decided from them.
    pub fn parse(s: &str) -> Result<Date, AccessError> {
        let bad = || AccessError::InvalidDate(s.to_owned());
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let year: i32 = s[0..4].parse().map_err(|_| bad())?;
        let month: u8 = s[5..7].parse().map_err(|_| bad())?;
        let day: u8 = s[8..10].parse().map_err(|_| bad())?;
        Date::new(year, month, day).ok_or_else(bad)
    }

    pub fn year(self) -> i32 {
        self.year
    }
    pub fn month(self) -> u8 {
        self.month
    }
    pub fn day(self) -> u8 {
        self.day
    }

    /// The same day `years` later. 29 February becomes 1 March in a common year (the
    /// day on which someone born on 29 February attains an age in England and Wales).
    pub fn add_years(self, years: i32) -> Date {
        let year = self.year + years;
        if self.month == 2 && self.day == 29 && days_in_month(year, 2) == 28 {
            Date {
                year,
                month: 3,
                day: 1,
            }
        } else {
            Date { year, ..self }
        }
    }

    /// Midnight UTC at the start of this date.
    pub fn start(self) -> Timestamp {
        Timestamp(days_from_civil(self.year, self.month, self.day) * 86_400)
    }

    /// Days since 1970-01-01.
    fn days(self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// Whole days from `self` to `later` (negative if `later` is earlier).
    pub fn days_until(self, later: Date) -> i64 {
        later.days() - self.days()
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Timestamp {
    pub const fn from_unix(seconds: i64) -> Timestamp {
        Timestamp(seconds)
    }
    pub const fn unix(self) -> i64 {
        self.0
    }
    /// The UTC calendar date this instant falls on.
    pub fn date(self) -> Date {
        let (year, month, day) = civil_from_days(self.0.div_euclid(86_400));
        Date { year, month, day }
    }
    pub const fn plus_seconds(self, seconds: i64) -> Timestamp {
        Timestamp(self.0 + seconds)
    }

    /// Is this instant in the period from `start` (inclusive) to `end` (exclusive), either
    /// open when `None` — FHIR's reading of a `Period` for "in force now".
    pub fn within(self, start: Option<Timestamp>, end: Option<Timestamp>) -> bool {
        start.is_none_or(|s| s <= self) && end.is_none_or(|e| self < e)
    }

    /// Parses a FHIR `instant`/`dateTime` with a time and zone
    /// (`2026-05-01T09:30:00Z`, `2026-05-01T10:30:00.123+01:00`), or a bare date
    /// (`2026-05-01`, meaning its start in UTC). Fractions of a second are dropped.
    pub fn parse(s: &str) -> Result<Timestamp, AccessError> {
        let bad = || AccessError::InvalidDate(s.to_owned());
        if s.len() == 10 {
            return Ok(Date::parse(s)?.start());
        }
        if s.len() < 20 || s.as_bytes()[10] != b'T' {
            return Err(bad());
        }
        let date = Date::parse(&s[..10])?;
        let t = &s[11..];
        let field = |r: std::ops::Range<usize>| -> Result<i64, AccessError> {
            t.get(r).and_then(|x| x.parse().ok()).ok_or_else(bad)
        };
        if t.as_bytes().get(2) != Some(&b':') || t.as_bytes().get(5) != Some(&b':') {
            return Err(bad());
        }
        let (h, m, sec) = (field(0..2)?, field(3..5)?, field(6..8)?);
        if h > 23 || m > 59 || sec > 60 {
            return Err(bad());
        }
        let mut rest = &t[8..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            rest = &frac[digits..];
        }
        let offset = match rest {
            "Z" => 0,
            z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) => {
                let oh: i64 = z[1..3].parse().map_err(|_| bad())?;
                let om: i64 = z[4..6].parse().map_err(|_| bad())?;
                let v = oh * 3600 + om * 60;
                if z.starts_with('-') { -v } else { v }
            }
            _ => return Err(bad()),
        };
        Ok(Timestamp(date.start().0 + h * 3600 + m * 60 + sec - offset))
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil / civil-from-days (public domain algorithms).
fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_days() {
        for s in [
            "1970-01-01",
            "2000-02-29",
            "2024-12-31",
            "1969-07-20",
            "2100-03-01",
        ] {
            let d = Date::parse(s).unwrap();
            assert_eq!(d.start().date(), d, "{s}");
            assert_eq!(d.to_string(), s);
        }
        assert_eq!(Date::parse("1970-01-02").unwrap().start().unix(), 86_400);
        assert!(Date::parse("2023-02-29").is_err());
        assert!(Date::parse("2023-13-01").is_err());
        assert!(Date::parse("2023-1-01").is_err());
    }

    #[test]
    fn leap_day_birthdays_fall_on_first_of_march() {
        let d = Date::parse("2008-02-29").unwrap();
        assert_eq!(d.add_years(16), Date::parse("2024-02-29").unwrap());
        assert_eq!(d.add_years(17), Date::parse("2025-03-01").unwrap());
    }

    #[test]
    fn parses_instants_with_zones() {
        let z = Timestamp::parse("2026-05-01T09:30:00Z").unwrap();
        assert_eq!(
            Timestamp::parse("2026-05-01T10:30:00.123+01:00").unwrap(),
            z
        );
        assert_eq!(z.date(), Date::parse("2026-05-01").unwrap());
        assert_eq!(
            Timestamp::parse("2026-05-01").unwrap(),
            Date::parse("2026-05-01").unwrap().start()
        );
        assert!(Timestamp::parse("2026-05-01T09:30Z").is_err());
        assert!(Timestamp::parse("2026-05-01 09:30:00Z").is_err());
    }
}
