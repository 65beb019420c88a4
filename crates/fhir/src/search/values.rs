//! Turning the values a parameter's expression selects into [`IndexValue`]s, by parameter
//! type and FHIR datatype, following the R4 search specification (§3.1.1.4 and the type
//! sections):
//!
//! - **string**: string/markdown (and other string-like primitives); HumanName → `family`,
//!   each `given`, `text`, each `prefix`, each `suffix`, one value each; Address → each
//!   `line`, `city`, `district`, `state`, `postalCode`, `country`, `text`.
//! - **token**: code/string/id/uri... → `code`; boolean → `"true"`/`"false"`; Coding →
//!   system + code (+ display as `text`); CodeableConcept → one value per coding, plus one
//!   with only `text` for its `text`; Identifier → system + value as `code`, its `type`'s
//!   codings as `type_system`/`type_code` (one value per type coding) and `type.text` as
//!   `text`; ContactPoint → `value` as `code`, no system. Texts are [`normalize_string`]ed.
//! - **date**: date/dateTime/instant → the range the precision covers (`2019` → the whole
//!   year; `2019-05-01T10:00Z` → that minute; `...:05.12` → those 10 ms); offsets are
//!   applied to get UTC; a value without a time zone (every `date`, and a dateTime without
//!   time) is taken as UTC. Period → start's low .. end's high (a missing end is open:
//!   `i64::MAX`; a missing start `i64::MIN`). Timing → each `event`, and `repeat.boundsPeriod`.
//! - **reference**: Reference → `reference` parsed (`Type/id`, `Type/id/_history/n`, absolute
//!   URLs ending in `Type/id` — these also keep `url`; `urn:uuid:`, `urn:oid:`, `#contained`
//!   → `url` only) and `identifier` → `identifier_system`/`identifier_value`;
//!   canonical/uri → `url` with any `|version` removed; an inline resource
//!   (`Bundle.entry[0].resource`) → its type and id.
//! - **quantity**: Quantity (and Age, Duration, Count, Distance, SimpleQuantity) → value,
//!   system, code, unit, with low/high from the value's precision (`5.4` → 5.35..5.45,
//!   `100` → 99.5..100.5); Money → value with its currency as `code` (system
//!   `urn:iso:std:iso:4217`); Range → `value` = low (else high), `low`/`high` = the bounds
//!   (open: ±∞), units from whichever bound has them. SampledData gives nothing.
//! - **number**: integer/decimal as quantity, without units. **uri**: the string as written.

use super::fhirpath::{Item, type_name};
use super::{IndexValue, ParamType, normalize_string};
use serde_json::Value;

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The FHIR type of an item: from the definitions, else guessed from the JSON.
fn datatype<'a>(it: &Item<'a>) -> &'a str {
    if let Some(t) = type_name(it) {
        return t;
    }
    match it.v {
        Value::String(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "decimal",
        Value::Object(o) => {
            if o.contains_key("resourceType") {
                "Resource"
            } else if o.contains_key("coding") {
                "CodeableConcept"
            } else if o.contains_key("reference") {
                "Reference"
            } else if o.contains_key("start") || o.contains_key("end") {
                "Period"
            } else if o.contains_key("family") || o.contains_key("given") {
                "HumanName"
            } else if o.contains_key("value") && (o.contains_key("unit") || o.contains_key("code"))
            {
                "Quantity"
            } else if o.contains_key("code") {
                "Coding"
            } else if o.contains_key("value") {
                "Identifier"
            } else {
                ""
            }
        }
        _ => "",
    }
}

/// Appends the index values of one selected item.
pub(crate) fn convert(kind: ParamType, it: &Item<'_>, out: &mut Vec<IndexValue>) {
    let t = datatype(it);
    let v = it.v;
    match kind {
        ParamType::String => string_values(t, v, out),
        ParamType::Token => token_values(t, v, out),
        ParamType::Date => date_values(t, v, out),
        ParamType::Reference => reference_values(t, v, out),
        ParamType::Quantity => quantity_values(t, v, out),
        ParamType::Number => {
            if let Value::Number(n) = v
                && let Some((value, low, high)) = precision_range(n.as_str())
            {
                out.push(IndexValue::Number { value, low, high });
            }
        }
        ParamType::Uri => {
            if let Value::String(x) = v {
                out.push(IndexValue::Uri { value: x.clone() });
            }
        }
        ParamType::Composite | ParamType::Special => {}
    }
}

fn push_string(x: &str, out: &mut Vec<IndexValue>) {
    if x.trim().is_empty() {
        return;
    }
    out.push(IndexValue::String {
        normalized: normalize_string(x),
        exact: x.to_owned(),
    });
}

fn push_strings_of(v: &Value, key: &str, out: &mut Vec<IndexValue>) {
    match v.get(key) {
        Some(Value::String(x)) => push_string(x, out),
        Some(Value::Array(a)) => {
            for x in a {
                if let Value::String(x) = x {
                    push_string(x, out);
                }
            }
        }
        _ => {}
    }
}

fn string_values(t: &str, v: &Value, out: &mut Vec<IndexValue>) {
    match (t, v) {
        (_, Value::String(x)) => push_string(x, out),
        ("HumanName", _) => {
            for k in ["family", "given", "text", "prefix", "suffix"] {
                push_strings_of(v, k, out);
            }
        }
        ("Address", _) => {
            for k in [
                "line",
                "city",
                "district",
                "state",
                "postalCode",
                "country",
                "text",
            ] {
                push_strings_of(v, k, out);
            }
        }
        ("CodeableConcept", _) => push_strings_of(v, "text", out),
        ("Coding", _) => push_strings_of(v, "display", out),
        _ => {}
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(normalize_string)
        .filter(|x| !x.is_empty())
}

fn token(system: Option<String>, code: Option<String>, text: Option<String>) -> IndexValue {
    IndexValue::Token {
        system,
        code,
        text,
        type_system: None,
        type_code: None,
    }
}

fn coding_token(c: &Value) -> Option<IndexValue> {
    let (system, code, text) = (s(c, "system"), s(c, "code"), text(c, "display"));
    if system.is_none() && code.is_none() && text.is_none() {
        return None;
    }
    Some(token(system, code, text))
}

fn token_values(t: &str, v: &Value, out: &mut Vec<IndexValue>) {
    match v {
        Value::String(x) => return out.push(token(None, Some(x.clone()), None)),
        Value::Bool(b) => {
            let code = if *b { "true" } else { "false" };
            return out.push(token(None, Some(code.to_owned()), None));
        }
        Value::Number(n) => return out.push(token(None, Some(n.as_str().to_owned()), None)),
        _ => {}
    }
    match t {
        "Coding" => out.extend(coding_token(v)),
        "CodeableConcept" => {
            if let Some(Value::Array(cs)) = v.get("coding") {
                out.extend(cs.iter().filter_map(coding_token));
            }
            if let Some(x) = text(v, "text") {
                out.push(token(None, None, Some(x)));
            }
        }
        "Identifier" => {
            let (system, code) = (s(v, "system"), s(v, "value"));
            let ty = v.get("type");
            let ty_text = ty.and_then(|t| text(t, "text"));
            let codings: Vec<&Value> = match ty.and_then(|t| t.get("coding")) {
                Some(Value::Array(cs)) => cs.iter().collect(),
                _ => Vec::new(),
            };
            if system.is_none() && code.is_none() && codings.is_empty() {
                return;
            }
            if codings.is_empty() {
                return out.push(IndexValue::Token {
                    system,
                    code,
                    text: ty_text,
                    type_system: None,
                    type_code: None,
                });
            }
            for c in codings {
                out.push(IndexValue::Token {
                    system: system.clone(),
                    code: code.clone(),
                    text: ty_text.clone(),
                    type_system: s(c, "system"),
                    type_code: s(c, "code"),
                });
            }
        }
        "ContactPoint" => {
            if let Some(x) = s(v, "value") {
                out.push(token(None, Some(x), None));
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Dates

const US_PER_SEC: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SEC;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = b.get(at..at + n)?;
    if !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(part.iter().fold(0, |a, d| a * 10 + i64::from(d - b'0')))
}

/// The inclusive range, in µs since the epoch (UTC), a FHIR date, dateTime or instant
/// covers given its precision. `None` if it is not one.
pub fn date_range(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    let y = digits(b, 0, 4)?;
    if b.len() == 4 {
        let lo = days_from_civil(y, 1, 1) * US_PER_DAY;
        return Some((lo, days_from_civil(y + 1, 1, 1) * US_PER_DAY - 1));
    }
    if b.get(4) != Some(&b'-') {
        return None;
    }
    let m = digits(b, 5, 2).filter(|m| (1..=12).contains(m))?;
    if b.len() == 7 {
        let lo = days_from_civil(y, m, 1) * US_PER_DAY;
        return Some((lo, lo + days_in_month(y, m) * US_PER_DAY - 1));
    }
    if b.get(7) != Some(&b'-') {
        return None;
    }
    let d = digits(b, 8, 2).filter(|d| (1..=days_in_month(y, m)).contains(d))?;
    let day = days_from_civil(y, m, d) * US_PER_DAY;
    if b.len() == 10 {
        return Some((day, day + US_PER_DAY - 1));
    }
    if b.get(10) != Some(&b'T') {
        return None;
    }
    let h = digits(b, 11, 2).filter(|h| *h <= 24)?;
    if b.get(13) != Some(&b':') {
        return None;
    }
    let mi = digits(b, 14, 2).filter(|m| *m <= 59)?;
    let mut i = 16;
    let mut sec = 0;
    let mut frac = 0;
    let mut width = 60 * US_PER_SEC;
    if b.get(i) == Some(&b':') {
        sec = digits(b, i + 1, 2).filter(|s| *s <= 60)?;
        i += 3;
        width = US_PER_SEC;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let st = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let n = i - st;
            if n == 0 {
                return None;
            }
            let mut scale = US_PER_SEC;
            for &c in &b[st..i.min(st + 6)] {
                scale /= 10;
                frac += i64::from(c - b'0') * scale;
            }
            width = scale.max(1);
        }
    }
    let offset = match b.get(i) {
        None => 0,
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(&c @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(b, i + 1, 2).filter(|h| *h <= 14)?;
            let om = digits(b, i + 4, 2).filter(|m| *m <= 59)?;
            let o = (oh * 60 + om) * 60 * US_PER_SEC;
            if c == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let lo = day + ((h * 60 + mi) * 60 + sec) * US_PER_SEC + frac - offset;
    Some((lo, lo + width - 1))
}

fn period_range(v: &Value) -> Option<(i64, i64)> {
    let start = v.get("start").and_then(Value::as_str).and_then(date_range);
    let end = v.get("end").and_then(Value::as_str).and_then(date_range);
    if start.is_none() && end.is_none() {
        return None;
    }
    Some((
        start.map_or(i64::MIN, |r| r.0),
        end.map_or(i64::MAX, |r| r.1),
    ))
}

fn date_values(t: &str, v: &Value, out: &mut Vec<IndexValue>) {
    let push = |out: &mut Vec<IndexValue>, r: Option<(i64, i64)>| {
        if let Some((low_us, high_us)) = r {
            out.push(IndexValue::Date { low_us, high_us });
        }
    };
    match (t, v) {
        (_, Value::String(x)) => push(out, date_range(x)),
        ("Period", _) => push(out, period_range(v)),
        ("Timing", _) => {
            if let Some(Value::Array(evs)) = v.get("event") {
                for e in evs {
                    push(out, e.as_str().and_then(date_range));
                }
            }
            if let Some(p) = v.get("repeat").and_then(|r| r.get("boundsPeriod")) {
                push(out, period_range(p));
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// References

/// `Type/id` at the end of a reference (`Patient/1`, `Patient/1/_history/2`,
/// `https://x/fhir/Patient/1`): the type and the id, if the type is an R4 resource type
/// and the id a valid id.
pub fn parse_reference(r: &str) -> Option<(&str, &str)> {
    let r = r.split(['?', '#']).next()?;
    let mut parts = r.rsplit('/');
    let mut last = parts.next()?;
    let mut before = parts.next()?;
    if before == "_history" {
        let id = parts.next()?;
        let ty = parts.next()?;
        before = ty;
        last = id;
    }
    let ok_type = before.starts_with(|c: char| c.is_ascii_uppercase())
        && crate::defs::is_resource_type(before);
    (ok_type && crate::types::is_valid_id(last)).then_some((before, last))
}

fn reference_values(t: &str, v: &Value, out: &mut Vec<IndexValue>) {
    match v {
        Value::String(x) => {
            // canonical / uri
            let url = x.split('|').next().unwrap_or(x);
            out.push(IndexValue::Reference {
                target_type: None,
                target_id: None,
                url: Some(url.to_owned()),
                identifier_system: None,
                identifier_value: None,
            });
            return;
        }
        Value::Object(_) => {}
        _ => return,
    }
    if let (Some(rt), Some(id)) = (
        v.get("resourceType").and_then(Value::as_str),
        v.get("id").and_then(Value::as_str),
    ) {
        out.push(IndexValue::Reference {
            target_type: Some(rt.to_owned()),
            target_id: Some(id.to_owned()),
            url: None,
            identifier_system: None,
            identifier_value: None,
        });
        return;
    }
    if t != "Reference" && !t.is_empty() {
        return;
    }
    let (mut target_type, mut target_id, mut url) = (None, None, None);
    if let Some(r) = v.get("reference").and_then(Value::as_str) {
        let absolute = r.contains("://");
        let opaque = r.starts_with("urn:") || r.starts_with('#');
        if !opaque && let Some((ty, id)) = parse_reference(r) {
            target_type = Some(ty.to_owned());
            target_id = Some(id.to_owned());
        }
        if absolute || opaque {
            url = Some(r.to_owned());
        }
    }
    let ident = v.get("identifier");
    let identifier_system = ident.and_then(|i| s(i, "system"));
    let identifier_value = ident.and_then(|i| s(i, "value"));
    if target_type.is_none() && url.is_none() && identifier_value.is_none() {
        return;
    }
    out.push(IndexValue::Reference {
        target_type,
        target_id,
        url,
        identifier_system,
        identifier_value,
    });
}

// ---------------------------------------------------------------------------------------
// Quantities and numbers

/// A decimal's value and the range its precision implies: `5.4` → (5.4, 5.35, 5.45),
/// `100` → (100, 99.5, 100.5), `1.50e2` → (150, 149.5, 150.5).
pub fn precision_range(text: &str) -> Option<(f64, f64, f64)> {
    let value: f64 = text.parse().ok()?;
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let decimals = mantissa.find('.').map_or(0, |i| mantissa.len() - i - 1) as i32;
    let half = 0.5 * 10f64.powi(exp - decimals);
    Some((value, value - half, value + half))
}

fn number_text(v: &Value, key: &str) -> Option<(f64, f64, f64)> {
    match v.get(key)? {
        Value::Number(n) => precision_range(n.as_str()),
        _ => None,
    }
}

fn quantity_values(t: &str, v: &Value, out: &mut Vec<IndexValue>) {
    match t {
        "Money" => {
            if let Some((value, low, high)) = number_text(v, "value") {
                let code = s(v, "currency");
                out.push(IndexValue::Quantity {
                    value,
                    low,
                    high,
                    system: code.as_ref().map(|_| "urn:iso:std:iso:4217".to_owned()),
                    unit: code.clone(),
                    code,
                });
            }
        }
        "Range" => {
            let lo = v.get("low");
            let hi = v.get("high");
            let l = lo.and_then(|q| number_text(q, "value"));
            let h = hi.and_then(|q| number_text(q, "value"));
            let Some(value) = l.or(h).map(|x| x.0) else {
                return;
            };
            let units = lo
                .filter(|q| q.get("code").is_some() || q.get("unit").is_some())
                .or(hi);
            out.push(IndexValue::Quantity {
                value,
                low: l.map_or(f64::NEG_INFINITY, |x| x.0),
                high: h.map_or(f64::INFINITY, |x| x.0),
                system: units.and_then(|u| s(u, "system")),
                code: units.and_then(|u| s(u, "code")),
                unit: units.and_then(|u| s(u, "unit")),
            });
        }
        "SampledData" => {}
        _ => {
            if let Some((value, low, high)) = number_text(v, "value") {
                out.push(IndexValue::Quantity {
                    value,
                    low,
                    high,
                    system: s(v, "system"),
                    code: s(v, "code"),
                    unit: s(v, "unit"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y2019: i64 = 1_546_300_800_000_000;

    #[test]
    fn dates() {
        assert_eq!(date_range("2019"), Some((Y2019, 1_577_836_800_000_000 - 1)));
        assert_eq!(
            date_range("2019-02"),
            Some((1_548_979_200_000_000, 1_551_398_400_000_000 - 1))
        );
        assert_eq!(
            date_range("2020-02-29"),
            Some((1_582_934_400_000_000, 1_583_020_800_000_000 - 1))
        );
        assert_eq!(date_range("2019-02-29"), None);
        let t = date_range("2019-01-01T10:00:00Z").unwrap();
        assert_eq!(t, (Y2019 + 36_000_000_000, Y2019 + 36_001_000_000 - 1));
        assert_eq!(date_range("2019-01-01T11:00:00+01:00").unwrap(), t);
        assert_eq!(date_range("2019-01-01T05:00:00-05:00").unwrap(), t);
        assert_eq!(
            date_range("2019-01-01T10:00:00.25Z").unwrap(),
            (Y2019 + 36_000_250_000, Y2019 + 36_000_260_000 - 1)
        );
        assert_eq!(
            date_range("2019-01-01T10:00Z").unwrap(),
            (Y2019 + 36_000_000_000, Y2019 + 36_060_000_000 - 1)
        );
        assert_eq!(date_range("1960-01-01").unwrap().0, -315_619_200_000_000);
        for bad in [
            "",
            "19",
            "2019-13",
            "2019-1-01",
            "2019-01-01T",
            "2019-01-01T10:00:00X",
        ] {
            assert_eq!(date_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn precision() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let (v, l, h) = precision_range("5.4").unwrap();
        assert!(close(v, 5.4) && close(l, 5.35) && close(h, 5.45));
        let (v, l, h) = precision_range("100").unwrap();
        assert!(close(v, 100.0) && close(l, 99.5) && close(h, 100.5));
        let (v, l, h) = precision_range("1.50e2").unwrap();
        assert!(close(v, 150.0) && close(l, 149.5) && close(h, 150.5));
        assert!(precision_range("x").is_none());
    }

    #[test]
    fn references() {
        assert_eq!(parse_reference("Patient/1"), Some(("Patient", "1")));
        assert_eq!(
            parse_reference("Patient/1/_history/3"),
            Some(("Patient", "1"))
        );
        assert_eq!(
            parse_reference("https://x.org/fhir/Observation/a.b-c"),
            Some(("Observation", "a.b-c"))
        );
        assert_eq!(parse_reference("urn:uuid:1234"), None);
        assert_eq!(parse_reference("Nope/1"), None);
        assert_eq!(parse_reference("1"), None);
    }
}
