//! Formats of the FHIR R4 primitive datatypes (spec §2.24.0.1), hand-written: no regex
//! engine, nothing allocated unless a value is wrong.

use crate::defs::Prim;
use serde_json::Value;

/// Checks a JSON value against primitive type `p`; `Err` holds a plain-English reason.
pub(crate) fn check(p: Prim, v: &Value) -> Result<(), String> {
    match p {
        Prim::Boolean => match v {
            Value::Bool(_) => Ok(()),
            _ => Err(format!(
                "expected a boolean (true or false), found {}",
                describe(v)
            )),
        },
        Prim::Integer | Prim::PositiveInt | Prim::UnsignedInt => {
            let Value::Number(n) = v else {
                return Err(format!(
                    "expected {} (a JSON number), found {}",
                    with_article(p),
                    describe(v)
                ));
            };
            check_integer(p, &n.to_string())
        }
        Prim::Decimal => {
            let Value::Number(n) = v else {
                return Err(format!(
                    "expected a decimal (a JSON number), found {}",
                    describe(v)
                ));
            };
            let text = n.to_string();
            if !is_decimal(&text) {
                return Err(format!("'{n}' is not a valid decimal"));
            }
            // Stored and indexed as a 64-bit float: beyond its range the value would become
            // infinite (SQLite refuses it as NULL, PostgreSQL keeps NaN).
            if !text.parse::<f64>().is_ok_and(f64::is_finite) {
                let shown: String = text.chars().take(40).collect();
                return Err(format!(
                    "{shown} is out of range for a decimal (at most about 1.8e308 either way)"
                ));
            }
            Ok(())
        }
        _ => {
            let Value::String(s) = v else {
                return Err(format!(
                    "expected {} (a JSON string), found {}",
                    with_article(p),
                    describe(v)
                ));
            };
            check_string(p, s)
        }
    }
}

/// "a date", "an instant", "a uri": the type's name with its indefinite article.
fn with_article(p: Prim) -> String {
    let an = matches!(
        p,
        Prim::Id | Prim::Instant | Prim::Integer | Prim::Oid | Prim::UnsignedInt | Prim::Xhtml
    );
    format!("{} {}", if an { "an" } else { "a" }, p.name())
}

/// Whether `v` has the JSON kind `p` is carried as (boolean, number or string).
pub(crate) fn json_kind_matches(p: Prim, v: &Value) -> bool {
    match p {
        Prim::Boolean => v.is_boolean(),
        Prim::Integer | Prim::PositiveInt | Prim::UnsignedInt | Prim::Decimal => v.is_number(),
        _ => v.is_string(),
    }
}

/// A short description of a JSON value's kind, for messages.
pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_integer(p: Prim, text: &str) -> Result<(), String> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let well_formed = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !well_formed {
        return Err(format!(
            "'{text}' is not a valid {}: expected a whole number",
            p.name()
        ));
    }
    let value: i64 = match digits.parse::<i64>() {
        Ok(v) if digits.len() <= 11 => {
            if neg {
                -v
            } else {
                v
            }
        }
        _ => return Err(format!("{text} is out of range for {} (32-bit)", p.name())),
    };
    let (lo, hi) = match p {
        Prim::PositiveInt => (1, i64::from(i32::MAX)),
        Prim::UnsignedInt => (0, i64::from(i32::MAX)),
        _ => (i64::from(i32::MIN), i64::from(i32::MAX)),
    };
    if value < lo || value > hi {
        return Err(match p {
            Prim::PositiveInt if value < 1 => {
                format!("{text} is not a positiveInt: must be 1 or more")
            }
            Prim::UnsignedInt if value < 0 => {
                format!("{text} is not an unsignedInt: must not be negative")
            }
            _ => format!("{text} is out of range for {} (32-bit)", p.name()),
        });
    }
    Ok(())
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
pub(crate) fn is_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_len = i - start;
    if int_len == 0 || (int_len > 1 && b[start] == b'0') {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == f {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

fn check_string(p: Prim, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!(
            "{} must not be empty (R4: strings SHALL NOT be empty)",
            with_article(p)
        ));
    }
    if s.len() > 1024 * 1024 && p != Prim::Base64Binary {
        return Err(format!("{} must be at most 1 MB", with_article(p)));
    }
    // R4 §2.24.0.1: no character below U+0020 except tab, carriage return and line feed
    // (PostgreSQL cannot store U+0000 in text at all).
    if let Some(c) = s
        .chars()
        .find(|c| *c < ' ' && !matches!(c, '\t' | '\r' | '\n'))
    {
        return Err(format!(
            "{} must not contain the control character U+{:04X}",
            with_article(p),
            u32::from(c)
        ));
    }
    let ok = match p {
        Prim::String | Prim::Markdown => true,
        Prim::Code => is_code(s),
        Prim::Id => crate::types::is_valid_id(s),
        Prim::Uri | Prim::Url | Prim::Canonical => !s.chars().any(char::is_whitespace),
        Prim::Oid => is_oid(s),
        Prim::Uuid => is_uuid(s),
        Prim::Base64Binary => is_base64(s),
        Prim::Xhtml => s.trim_start().starts_with("<div"),
        Prim::Date => is_date(s),
        Prim::DateTime => is_date_time(s),
        Prim::Instant => is_instant(s),
        Prim::Time => is_time(s),
        Prim::Boolean | Prim::Integer | Prim::PositiveInt | Prim::UnsignedInt | Prim::Decimal => {
            unreachable!("not a string type")
        }
    };
    if ok {
        return Ok(());
    }
    let shown: String = s.chars().take(80).collect();
    Err(match p {
        Prim::Code => {
            format!("'{shown}' is not a valid code: no leading, trailing or repeated whitespace")
        }
        Prim::Id => format!("'{shown}' is not a valid id: 1-64 characters from A-Z a-z 0-9 - ."),
        Prim::Uri | Prim::Url | Prim::Canonical => format!(
            "'{shown}' is not a valid {}: must not contain whitespace",
            p.name()
        ),
        Prim::Oid => format!("'{shown}' is not a valid oid: expected urn:oid:<dotted numbers>"),
        Prim::Uuid => format!("'{shown}' is not a valid uuid: expected urn:uuid:<lower-case uuid>"),
        Prim::Base64Binary => "not valid base64".to_owned(),
        Prim::Xhtml => "xhtml must be a <div> element".to_owned(),
        Prim::Date => {
            format!("'{shown}' is not a valid date: expected YYYY, YYYY-MM or YYYY-MM-DD")
        }
        Prim::DateTime => format!(
            "'{shown}' is not a valid dateTime: expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss(.sss) with a timezone (Z or +hh:mm)"
        ),
        Prim::Instant => format!(
            "'{shown}' is not a valid instant: expected YYYY-MM-DDThh:mm:ss(.sss) with a timezone (Z or +hh:mm)"
        ),
        Prim::Time => {
            format!("'{shown}' is not a valid time: expected hh:mm:ss(.sss), no timezone")
        }
        _ => format!("'{shown}' is not a valid {}", p.name()),
    })
}

/// `[^\s]+(\s[^\s]+)*`: no leading or trailing whitespace, never two whitespace
/// characters in a row.
pub(crate) fn is_code(s: &str) -> bool {
    let mut prev_ws = true; // so leading whitespace fails
    for c in s.chars() {
        let ws = c.is_whitespace();
        if ws && prev_ws {
            return false;
        }
        prev_ws = ws;
    }
    !s.is_empty() && !prev_ws
}

/// `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`
pub(crate) fn is_oid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:oid:") else {
        return false;
    };
    is_bare_oid(rest)
}

pub(crate) fn is_bare_oid(rest: &str) -> bool {
    let mut parts = rest.split('.');
    if !matches!(parts.next(), Some("0" | "1" | "2")) {
        return false;
    }
    let mut n = 0;
    for part in parts {
        n += 1;
        if part.is_empty()
            || !part.bytes().all(|b| b.is_ascii_digit())
            || (part.len() > 1 && part.starts_with('0'))
        {
            return false;
        }
    }
    n > 0
}

/// `urn:uuid:` followed by a lower-case 8-4-4-4-12 hex uuid.
pub(crate) fn is_uuid(s: &str) -> bool {
    s.strip_prefix("urn:uuid:").is_some_and(is_bare_uuid)
}

pub(crate) fn is_bare_uuid(u: &str) -> bool {
    let b = u.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// Base64 (RFC 4648 alphabet), whitespace allowed between characters, padding at the end.
pub(crate) fn is_base64(s: &str) -> bool {
    let mut n = 0usize;
    let mut pad = 0usize;
    for c in s.bytes() {
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            b'=' => pad += 1,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' if pad == 0 => {}
            _ => return false,
        }
        n += 1;
    }
    n > 0 && n.is_multiple_of(4) && pad <= 2
}

fn two(b: &[u8], i: usize) -> Option<u32> {
    let (x, y) = (*b.get(i)?, *b.get(i + 1)?);
    if x.is_ascii_digit() && y.is_ascii_digit() {
        Some(u32::from(x - b'0') * 10 + u32::from(y - b'0'))
    } else {
        None
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses the date part (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`) at the start of `b`;
/// returns its length and whether it is a full date.
fn date_prefix(b: &[u8]) -> Option<(usize, bool)> {
    if b.len() < 4 || !b[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let year = two(b, 0)? * 100 + two(b, 2)?;
    if year == 0 {
        return None;
    }
    if b.len() == 4 || b[4] != b'-' {
        return Some((4, false));
    }
    let month = two(b, 5)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    if b.len() == 7 || b[7] != b'-' {
        return Some((7, false));
    }
    let day = two(b, 8)?;
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some((10, true))
}

/// `hh:mm:ss(.f+)?` at the start of `b`; returns its length.
fn time_prefix(b: &[u8]) -> Option<usize> {
    let h = two(b, 0)?;
    let m = two(b, 3)?;
    let s = two(b, 6)?;
    if b[2] != b':' || b[5] != b':' || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut i = 8;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == f {
            return None;
        }
    }
    Some(i)
}

/// `Z` or `(+|-)hh:mm` with hh:mm ≤ 14:00, exactly filling `b`.
fn timezone(b: &[u8]) -> bool {
    match b {
        [b'Z'] => true,
        [b'+' | b'-', _, _, b':', _, _] => match (two(b, 1), two(b, 4)) {
            (Some(h), Some(m)) => m <= 59 && (h < 14 || (h == 14 && m == 0)),
            _ => false,
        },
        _ => false,
    }
}

pub(crate) fn is_date(s: &str) -> bool {
    date_prefix(s.as_bytes()).is_some_and(|(n, _)| n == s.len())
}

pub(crate) fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let Some((n, full)) = date_prefix(b) else {
        return false;
    };
    if n == b.len() {
        return true;
    }
    if !full || b[n] != b'T' {
        return false;
    }
    let rest = &b[n + 1..];
    match time_prefix(rest) {
        Some(t) => timezone(&rest[t..]),
        None => false,
    }
}

pub(crate) fn is_instant(s: &str) -> bool {
    let b = s.as_bytes();
    matches!(date_prefix(b), Some((10, true))) && b.len() > 10 && b[10] == b'T' && is_date_time(s)
}

pub(crate) fn is_time(s: &str) -> bool {
    time_prefix(s.as_bytes()) == Some(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn dates() {
        for ok in [
            "2019",
            "2019-02",
            "2019-02-28",
            "2020-02-29",
            "0001",
            "2000-02-29",
        ] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in [
            "",
            "19",
            "0000",
            "2019-13",
            "2019-00",
            "2019-1",
            "2019-02-29",
            "1900-02-29",
            "2019-13-45",
            "2019-04-31",
            "2019-02-28T10:00:00Z",
            "2019-",
            "2019-02-",
            "20190228",
            " 2019",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    #[test]
    fn date_times() {
        for ok in [
            "2019",
            "2019-02",
            "2019-02-28",
            "2019-02-28T10:11:12Z",
            "2019-02-28T10:11:12.123+01:00",
            "2019-02-28T23:59:60-14:00",
            "2019-02-28T00:00:00+14:00",
            "2019-02-28T00:00:00.5Z",
        ] {
            assert!(is_date_time(ok), "{ok}");
        }
        for bad in [
            "2019-02-28T10:11:12", // time without timezone
            "2019-02-28T10:11Z",   // seconds required
            "2019-02T10:11:12Z",   // time needs a full date
            "2019-02-28T24:00:00Z",
            "2019-02-28T10:60:00Z",
            "2019-02-28T10:11:12+14:30",
            "2019-02-28T10:11:12+1:00",
            "2019-02-28T10:11:12.Z",
            "2019-02-28 10:11:12Z",
            "2019-02-28T10:11:12ZZ",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
    }

    #[test]
    fn instants_and_times() {
        assert!(is_instant("2015-02-07T13:28:17.239+02:00"));
        assert!(is_instant("2015-02-07T13:28:17Z"));
        assert!(!is_instant("2015-02-07"));
        assert!(!is_instant("2015-02-07T13:28:17"));
        assert!(!is_instant("2015"));
        assert!(is_time("13:28:17"));
        assert!(is_time("13:28:17.5"));
        assert!(!is_time("13:28"));
        assert!(!is_time("25:00:00"));
        assert!(!is_time("13:28:17Z"));
    }

    #[test]
    fn numbers() {
        assert!(check(Prim::Integer, &num("-5")).is_ok());
        assert!(check(Prim::Integer, &num("2147483647")).is_ok());
        assert!(check(Prim::Integer, &num("2147483648")).is_err());
        assert!(check(Prim::Integer, &num("-2147483648")).is_ok());
        assert!(check(Prim::Integer, &num("1.0")).is_err());
        assert!(check(Prim::Integer, &num("1e3")).is_err());
        assert!(check(Prim::Integer, &json!("1")).is_err());
        assert!(check(Prim::PositiveInt, &num("0")).is_err());
        assert!(check(Prim::PositiveInt, &num("1")).is_ok());
        assert!(check(Prim::UnsignedInt, &num("0")).is_ok());
        assert!(check(Prim::UnsignedInt, &num("-1")).is_err());
        assert!(check(Prim::UnsignedInt, &num("99999999999999999999")).is_err());
        assert!(check(Prim::Decimal, &num("1.50")).is_ok());
        assert!(check(Prim::Decimal, &num("-0.0")).is_ok());
        assert!(check(Prim::Decimal, &num("1e-3")).is_ok());
        assert!(check(Prim::Decimal, &json!("1.5")).is_err());
        assert!(is_decimal("0.5") && !is_decimal("01.5") && !is_decimal("1.") && !is_decimal(".5"));
        assert!(check(Prim::Boolean, &json!(true)).is_ok());
        assert!(check(Prim::Boolean, &json!("true")).is_err());
    }

    #[test]
    fn strings() {
        assert!(check(Prim::String, &json!("")).is_err());
        assert!(check(Prim::String, &json!(" x ")).is_ok());
        assert!(check(Prim::String, &json!(5)).is_err());
        for ok in ["final", "a b", "a\tb", "x-y.z"] {
            assert!(is_code(ok), "{ok:?}");
        }
        for bad in ["", " a", "a ", "a  b", "a\t b", "\n", "a\n"] {
            assert!(!is_code(bad), "{bad:?}");
        }
        assert!(check(Prim::Id, &json!("a.B-9")).is_ok());
        assert!(check(Prim::Id, &json!("a_b")).is_err());
        assert!(check(Prim::Uri, &json!("http://x/y")).is_ok());
        assert!(check(Prim::Uri, &json!("http://x/ y")).is_err());
        assert!(
            is_oid("urn:oid:1.2.840.113619")
                && !is_oid("urn:oid:3.1")
                && !is_oid("urn:oid:1")
                && !is_oid("urn:oid:1.02")
        );
        assert!(is_uuid("urn:uuid:c757873d-ec9a-4326-a141-556f43239520"));
        assert!(!is_uuid("urn:uuid:C757873D-EC9A-4326-A141-556F43239520"));
        assert!(!is_uuid("c757873d-ec9a-4326-a141-556f43239520"));
        assert!(
            is_base64("aGVsbG8=")
                && is_base64("aGVs\nbG8h")
                && !is_base64("aGVsbG8")
                && !is_base64("a=Vs")
        );
        assert!(
            check(
                Prim::Xhtml,
                &json!("<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>")
            )
            .is_ok()
        );
        assert!(check(Prim::Xhtml, &json!("<p>x</p>")).is_err());
    }
}
