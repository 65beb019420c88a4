//! Dates as people write and read them (NHS.UK style: "27 March 2019"), and the three-box
//! date input's answer as a FHIR date.

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A FHIR date (`YYYY-MM-DD`, or the date part of a dateTime) as people write it: "27 March
/// 2019"; `None` if it is not one.
pub fn long_date(ymd: &str) -> Option<String> {
    let mut it = ymd.get(..10).unwrap_or(ymd).splitn(3, '-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    let m: usize = m.parse().ok()?;
    let d: u8 = d.parse().ok()?;
    Some(format!("{d} {} {y}", MONTHS.get(m.checked_sub(1)?)?))
}

/// The day, month and year boxes of a date input as a FHIR date, if they make a real date
/// (leap years included) from 1900 on.
pub fn parse_parts(day: &str, month: &str, year: &str) -> Option<String> {
    let d: u32 = day.trim().parse().ok()?;
    let m: u32 = month.trim().parse().ok()?;
    let y: i32 = year.trim().parse().ok()?;
    if year.trim().len() != 4 || y < 1900 {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(y, month, u8::try_from(d).ok()?).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    ))
}

/// Today's date (UTC) as a FHIR date.
pub fn today() -> String {
    let now =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(crate::clock::now_us()) * 1_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_people_write_them() {
        assert_eq!(long_date("2019-03-27").as_deref(), Some("27 March 2019"));
        assert_eq!(
            long_date("2019-03-07T10:00:00Z").as_deref(),
            Some("7 March 2019")
        );
        assert_eq!(long_date("2019-13-07"), None);
        assert_eq!(
            parse_parts("29", "2", "2024").as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(parse_parts("29", "2", "2023"), None);
        assert_eq!(parse_parts("31", "4", "2020"), None);
        assert_eq!(parse_parts("1", "1", "24"), None);
        assert_eq!(parse_parts("x", "1", "2024"), None);
        assert_eq!(today().len(), 10);
    }
}
