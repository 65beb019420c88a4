//! Search: `GET /fhir/{type}?…`, `POST /fhir/{type}/_search`, compartment search
//! `GET /fhir/Patient/{id}/{type}?…` and `GET /fhir/Patient/{id}/$everything`.
//!
//! The query string is parsed into a [`domain::types::search::SearchQuery`] (one indexed
//! SQL statement per page), and the `searchset` Bundle is written as bytes around the stored
//! bodies ([`super::response::BundleWriter`]). Paging is keyset, both ways, so pages stay
//! correct while others write: `next` links carry `_cursor`, the opaque position after the
//! page's last row; `previous` links carry `_before`, the position of the page's first row
//! (the store runs the query in reverse order from there and turns the page round).
//!
//! * `_summary=true`: the elements the R4 definitions mark `isSummary` (`fhir::defs::is_summary`).
//!
//! * `_count`: default [`DEFAULT_COUNT`], at most [`MAX_COUNT`].
//! * `_total`: `none` (no total unless the whole result fits on the first page, when it is
//!   free), `estimate` and `accurate` (counted); the default is `none`.
//! * Unknown parameters: ignored and reported in an OperationOutcome entry
//!   (`search.mode = outcome`) unless `Prefer: handling=strict`, when they are a 400.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use domain::types::SystemMatch;
use domain::types::search::{
    Condition, Cursor, EverythingQuery, Filter, Match, Prefix, SearchQuery, Second, SortBy,
    SortKey, SortValue, StringMode, Table, UriMode, Visibility,
};
use fhir::search::{ParamType, SearchParam};
use serde_json::Value;

use super::paging::PageSealer;
use super::request;
use super::request::require_supported;
use super::response::BundleWriter;
use crate::AppState;
use crate::audit::Interaction;
use crate::authz::{Caller, Guard};
use crate::clock;
use crate::error::{ApiError, ApiResult};

pub const DEFAULT_COUNT: usize = 20;
pub const MAX_COUNT: usize = 1000;
/// Most resources `_include`/`_revinclude` add to one page.
const MAX_INCLUDED: usize = 1000;
/// Most rounds of `:iterate`.
const MAX_ITERATE: usize = 4;

/// A problem with one parameter.
enum ParamError {
    /// Not a parameter this server knows (lenient: ignored).
    Unknown(String),
    /// Known but wrongly used (always a 400).
    Bad(String),
}

type PResult<T> = Result<T, ParamError>;

fn bad<T>(msg: impl Into<String>) -> PResult<T> {
    Err(ParamError::Bad(msg.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Summary {
    None,
    True,
    Text,
    Data,
    Count,
}

#[derive(Debug, Clone)]
struct Include {
    source_type: String,
    param: Option<String>,
    target_type: Option<String>,
    iterate: bool,
    reverse: bool,
}

struct Parsed {
    query: SearchQuery,
    includes: Vec<Include>,
    summary: Summary,
    elements: Option<Vec<String>>,
    total: Option<bool>,
    ignored: Vec<String>,
}

/// Splits on commas not escaped by a backslash, unescaping `\,` `\$` `\|` `\\`.
fn split_or(v: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().unwrap().push(n);
                }
            }
            ',' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn prefix_of(v: &str) -> (Prefix, &str) {
    let p = match v.get(..2) {
        Some("eq") => Prefix::Eq,
        Some("ne") => Prefix::Ne,
        Some("gt") => Prefix::Gt,
        Some("lt") => Prefix::Lt,
        Some("ge") => Prefix::Ge,
        Some("le") => Prefix::Le,
        Some("sa") => Prefix::Sa,
        Some("eb") => Prefix::Eb,
        Some("ap") => Prefix::Ap,
        _ => return (Prefix::Eq, v),
    };
    (p, &v[2..])
}

/// The inclusive range (µs, UTC) a FHIR date/dateTime/instant covers at its precision.
/// Without a time zone, UTC is assumed.
pub fn date_range(s: &str) -> Option<(i64, i64)> {
    let bytes = s.as_bytes();
    if !bytes.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let (year, rest) = (s.get(..4)?, &s[4..]);
    let y: i32 = year.parse().ok()?;
    match s.len() {
        4 => {
            let lo = clock::parse_fhir_datetime(s)?;
            let hi = clock::parse_fhir_datetime(&format!("{:04}", y + 1))?;
            return Some((lo, hi - 1));
        }
        7 => {
            let m: u32 = rest.get(1..3)?.parse().ok()?;
            if !(1..=12).contains(&m) {
                return None;
            }
            let lo = clock::parse_fhir_datetime(s)?;
            let next = if m == 12 {
                format!("{:04}-01", y + 1)
            } else {
                format!("{:04}-{:02}", y, m + 1)
            };
            return Some((lo, clock::parse_fhir_datetime(&next)? - 1));
        }
        10 => {
            let lo = clock::parse_fhir_datetime(s)?;
            return Some((lo, lo + 86_400_000_000 - 1));
        }
        _ => {}
    }
    let (date, time) = s.split_once('T')?;
    // Split the zone off the time.
    let zpos = time.find(['Z', '+', '-']).unwrap_or(time.len());
    let (clock_part, zone) = time.split_at(zpos);
    let (clock_full, width) = match clock_part.len() {
        5 => (format!("{clock_part}:00"), 60_000_000),
        8 => (clock_part.to_owned(), 1_000_000),
        n if n > 9 && clock_part.as_bytes()[8] == b'.' => {
            let digits = (n - 9).min(6) as u32;
            (clock_part.to_owned(), 10_i64.pow(6 - digits))
        }
        _ => return None,
    };
    let lo = clock::parse_fhir_datetime(&format!("{date}T{clock_full}{zone}"))?;
    Some((lo, lo + width - 1))
}

/// A number as written and the range its precision implies (`5.4` → 5.35..5.45).
fn number_range(s: &str) -> Option<(f64, f64, f64)> {
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let half = 0.5 * 10f64.powi(exp - decimals);
    Some((v, v - half, v + half))
}

fn token_value(v: &str) -> (SystemMatch, Option<String>) {
    match v.split_once('|') {
        None => (SystemMatch::Any, Some(v.to_owned())),
        Some(("", code)) => (SystemMatch::Absent, Some(code.to_owned())),
        Some((system, "")) => (SystemMatch::Is(system.to_owned()), None),
        Some((system, code)) => (SystemMatch::Is(system.to_owned()), Some(code.to_owned())),
    }
}

fn date_cond(name: &str, v: &str) -> PResult<(Prefix, i64, i64)> {
    let (prefix, rest) = prefix_of(v);
    match date_range(rest) {
        Some((lo, hi)) => Ok((prefix, lo, hi)),
        None => bad(format!(
            "{name}: '{v}' is not a date (e.g. 2019, 2019-05-01, ge2019-05-01T10:00:00Z)"
        )),
    }
}

fn number_cond(name: &str, v: &str) -> PResult<(Prefix, f64, f64, f64)> {
    let (prefix, rest) = prefix_of(v);
    match number_range(rest) {
        Some((x, l, h)) => Ok((prefix, x, l, h)),
        None => bad(format!("{name}: '{v}' is not a number")),
    }
}

fn table_of(p: &SearchParam) -> Option<Table> {
    Table::for_kind(p.kind)
}

/// Is this parameter one the server can search (declared in the CapabilityStatement)?
pub fn searchable(p: &SearchParam) -> bool {
    match p.kind {
        ParamType::Special => false,
        ParamType::Composite => {
            p.components.len() == 2
                && p.components[0].kind == ParamType::Token
                && matches!(
                    p.components[1].kind,
                    ParamType::Token
                        | ParamType::Quantity
                        | ParamType::Number
                        | ParamType::Date
                        | ParamType::String
                )
        }
        _ => true,
    }
}

/// The conditions (an OR group) `name=value` means on `ty`. `name` may carry a modifier,
/// a chain (`subject:Patient.name`) or be a reverse chain (`_has:…`).
fn conditions(base: &str, ty: &str, name: &str, value: &str) -> PResult<Vec<Condition>> {
    if let Some(rest) = name.strip_prefix("_has:") {
        let mut parts = rest.splitn(3, ':');
        let (Some(source), Some(param), Some(inner)) = (parts.next(), parts.next(), parts.next())
        else {
            return bad(format!("{name}: expected _has:Type:reference:parameter"));
        };
        if !fhir::types::is_supported(source) {
            return bad(format!("{name}: {source} is not a supported type"));
        }
        match fhir::search::param(source, param) {
            Some(p) if p.kind == ParamType::Reference => {}
            _ => {
                return bad(format!(
                    "{name}: {source} has no reference parameter {param}"
                ));
            }
        }
        let inner = conditions(base, source, inner, value)?;
        return Ok(inner
            .into_iter()
            .map(|c| Condition::Has {
                source_type: source.to_owned(),
                param: param.to_owned(),
                inner: Box::new(c),
            })
            .collect());
    }
    if let Some((head, rest)) = name.split_once('.') {
        let (code, modifier) = match head.split_once(':') {
            Some((c, m)) => (c, Some(m)),
            None => (head, None),
        };
        let Some(p) = fhir::search::param(ty, code) else {
            return Err(ParamError::Unknown(name.to_owned()));
        };
        if p.kind != ParamType::Reference {
            return bad(format!("{name}: {code} is not a reference parameter"));
        }
        let chained = rest.split([':', '.']).next().unwrap_or(rest);
        let types: Vec<String> = match modifier {
            Some(t) => vec![t.to_owned()],
            None => {
                let candidates: Vec<String> = if p.targets.is_empty() {
                    fhir::types::SUPPORTED_TYPES
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                } else {
                    p.targets.clone()
                };
                candidates
                    .into_iter()
                    .filter(|t| {
                        fhir::types::is_supported(t)
                            && (fhir::search::param(t, chained).is_some()
                                || chained == "_id"
                                || chained.starts_with("_has"))
                    })
                    .collect()
            }
        };
        if types.is_empty() {
            return bad(format!(
                "{name}: no target of {code} has a parameter {chained}"
            ));
        }
        let mut out = Vec::new();
        for t in types {
            if !fhir::types::is_supported(&t) {
                return bad(format!("{name}: {t} is not a supported type"));
            }
            for c in conditions(base, &t, rest, value)? {
                out.push(Condition::Chain {
                    param: code.to_owned(),
                    target_types: vec![t.clone()],
                    inner: Box::new(c),
                });
            }
        }
        return Ok(out);
    }
    let (code, modifier) = match name.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (name, None),
    };
    let values = split_or(value);
    if values.iter().any(String::is_empty) {
        return bad(format!("{name}: empty value"));
    }
    if code == "_id" && modifier.is_none() {
        return Ok(values.into_iter().map(|id| Condition::Id { id }).collect());
    }
    if code == "_lastUpdated" && modifier.is_none() {
        return values
            .iter()
            .map(|v| {
                let (prefix, low_us, high_us) = date_cond(name, v)?;
                Ok(Condition::LastUpdated {
                    prefix,
                    low_us,
                    high_us,
                })
            })
            .collect();
    }
    let Some(p) = fhir::search::param(ty, code) else {
        return Err(ParamError::Unknown(name.to_owned()));
    };
    if !searchable(p) {
        return Err(ParamError::Unknown(name.to_owned()));
    }
    let table = table_of(p).expect("searchable parameters have a table");
    if modifier == Some("missing") {
        let missing = match value {
            "true" => true,
            "false" => false,
            _ => return bad(format!("{name}: expected true or false")),
        };
        return Ok(vec![Condition::Missing {
            param: code.to_owned(),
            table,
            missing,
        }]);
    }
    let param = code.to_owned();
    let mut out = Vec::with_capacity(values.len());
    for v in &values {
        let v = v.as_str();
        let c = match (p.kind, modifier) {
            (ParamType::Token, None | Some("not")) => {
                let (system, code) = token_value(v);
                Condition::Token {
                    param: param.clone(),
                    system,
                    code,
                    not: modifier.is_some(),
                }
            }
            (ParamType::Token, Some("text")) => Condition::TokenText {
                param: param.clone(),
                text: fhir::search::normalize_string(v),
            },
            (ParamType::Token, Some("of-type")) => {
                let mut parts = v.splitn(3, '|');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(s), Some(c), Some(val)) if !c.is_empty() && !val.is_empty() => {
                        Condition::TokenOfType {
                            param: param.clone(),
                            type_system: s.to_owned(),
                            type_code: c.to_owned(),
                            value: val.to_owned(),
                        }
                    }
                    _ => return bad(format!("{name}: expected system|code|value")),
                }
            }
            (ParamType::String, None | Some("contains")) => Condition::String {
                param: param.clone(),
                value: fhir::search::normalize_string(v),
                mode: if modifier.is_some() {
                    StringMode::Contains
                } else {
                    StringMode::StartsWith
                },
            },
            (ParamType::String, Some("exact")) => Condition::String {
                param: param.clone(),
                value: v.to_owned(),
                mode: StringMode::Exact,
            },
            (ParamType::Date, None) => {
                let (prefix, low_us, high_us) = date_cond(name, v)?;
                Condition::Date {
                    param: param.clone(),
                    prefix,
                    low_us,
                    high_us,
                }
            }
            (ParamType::Number, None) => {
                let (prefix, value, low, high) = number_cond(name, v)?;
                Condition::Number {
                    param: param.clone(),
                    prefix,
                    value,
                    low,
                    high,
                    system: None,
                    code: None,
                }
            }
            (ParamType::Quantity, None) => {
                let mut parts = v.splitn(3, '|');
                let num = parts.next().unwrap_or("");
                let system = parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
                let unit = parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
                let (prefix, value, low, high) = number_cond(name, num)?;
                Condition::Number {
                    param: param.clone(),
                    prefix,
                    value,
                    low,
                    high,
                    system,
                    code: unit,
                }
            }
            (ParamType::Reference, Some("identifier")) => {
                let (system, value) = token_value(v);
                let Some(value) = value else {
                    return bad(format!("{name}: expected [system|]value"));
                };
                Condition::ReferenceIdentifier {
                    param: param.clone(),
                    system,
                    value,
                }
            }
            (ParamType::Reference, m) => {
                let type_modifier = match m {
                    None => None,
                    Some(t) if fhir::defs::is_resource_type(t) => Some(t.to_owned()),
                    Some(other) => {
                        return bad(format!("{name}: modifier :{other} is not supported"));
                    }
                };
                reference_condition(base, &param, type_modifier, v)
            }
            (ParamType::Uri, None | Some("above") | Some("below")) => Condition::Uri {
                param: param.clone(),
                value: v.to_owned(),
                mode: match modifier {
                    Some("above") => UriMode::Above,
                    Some("below") => UriMode::Below,
                    _ => UriMode::Exact,
                },
            },
            (ParamType::Composite, None) => composite_condition(name, p, v)?,
            (_, Some(m)) => {
                return bad(format!("{name}: modifier :{m} is not supported here"));
            }
            _ => return Err(ParamError::Unknown(name.to_owned())),
        };
        out.push(c);
    }
    Ok(out)
}

fn reference_condition(
    base: &str,
    param: &str,
    type_modifier: Option<String>,
    v: &str,
) -> Condition {
    let local = v
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix("/fhir/"))
        .unwrap_or(v);
    let local = local.split("/_history/").next().unwrap_or(local);
    if !local.contains("://") {
        // Any R4 resource type, not only the served ones: a reference may point elsewhere
        // (`Location/1`), and the index keeps its type and id all the same.
        if let Some((t, id)) = local.split_once('/')
            && fhir::defs::is_resource_type(t)
            && !id.contains('/')
        {
            return Condition::Reference {
                param: param.to_owned(),
                target_type: Some(t.to_owned()),
                target_id: Some(id.to_owned()),
                url: None,
            };
        }
        if !local.contains('/') {
            return Condition::Reference {
                param: param.to_owned(),
                target_type: type_modifier,
                target_id: Some(local.to_owned()),
                url: None,
            };
        }
    }
    Condition::Reference {
        param: param.to_owned(),
        target_type: None,
        target_id: None,
        url: Some(v.to_owned()),
    }
}

fn composite_condition(name: &str, p: &SearchParam, v: &str) -> PResult<Condition> {
    let Some((first, second)) = v.split_once('$') else {
        return bad(format!("{name}: expected first$second"));
    };
    let (system, code) = token_value(first);
    let Some(code) = code else {
        return bad(format!("{name}: the first component needs a code"));
    };
    let second = match p.components[1].kind {
        ParamType::Token => {
            let (system, code) = token_value(second);
            let Some(code) = code else {
                return bad(format!("{name}: the second component needs a code"));
            };
            Second::Token { system, code }
        }
        ParamType::Quantity | ParamType::Number => {
            let num = second.split('|').next().unwrap_or("");
            let (prefix, value, low, high) = number_cond(name, num)?;
            Second::Number {
                prefix,
                value,
                low,
                high,
            }
        }
        ParamType::Date => {
            let (prefix, low_us, high_us) = date_cond(name, second)?;
            Second::Date {
                prefix,
                low_us,
                high_us,
            }
        }
        _ => Second::String {
            value: fhir::search::normalize_string(second),
        },
    };
    Ok(Condition::Composite {
        param: p.code.clone(),
        system,
        code,
        second,
    })
}

fn parse_sort(ty: &str, v: &str) -> PResult<Vec<SortKey>> {
    let mut keys = Vec::new();
    for part in v.split(',').filter(|s| !s.is_empty()) {
        let (descending, code) = match part.strip_prefix('-') {
            Some(c) => (true, c),
            None => (false, part),
        };
        let by = match code {
            "_id" => SortBy::Id,
            "_lastUpdated" => SortBy::LastUpdated,
            _ => match fhir::search::param(ty, code) {
                Some(p) if searchable(p) => SortBy::Param {
                    param: code.to_owned(),
                    table: table_of(p).expect("searchable"),
                },
                _ => return bad(format!("_sort: {ty} has no parameter {code} to sort by")),
            },
        };
        keys.push(SortKey { by, descending });
    }
    Ok(keys)
}

fn parse_include(ty: &str, v: &str, iterate: bool, reverse: bool) -> PResult<Include> {
    if v == "*" {
        return Ok(Include {
            source_type: ty.to_owned(),
            param: None,
            target_type: None,
            iterate,
            reverse,
        });
    }
    let mut parts = v.split(':');
    let source = parts.next().unwrap_or("");
    let param = parts.next();
    let target = parts.next();
    if !fhir::types::is_supported(source) {
        return bad(format!("_include: {source} is not a supported type"));
    }
    let param = match param {
        None | Some("*") => None,
        Some(code) => match fhir::search::param(source, code) {
            Some(p) if p.kind == ParamType::Reference => Some(code.to_owned()),
            _ => {
                return bad(format!(
                    "_include: {source} has no reference parameter {code}"
                ));
            }
        },
    };
    if let Some(t) = target
        && !fhir::types::is_supported(t)
    {
        return bad(format!("_include: {t} is not a supported type"));
    }
    Ok(Include {
        source_type: source.to_owned(),
        param,
        target_type: target.map(str::to_owned),
        iterate,
        reverse,
    })
}

fn decode_cursor(sealer: &PageSealer, v: &str) -> PResult<Cursor> {
    let err = || ParamError::Bad("_cursor: not a page position this server made".into());
    let Some(v) = sealer.open(v) else {
        return Err(err());
    };
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&v) else {
        return Err(err());
    };
    let Some((Value::String(id), values)) = items.split_last() else {
        return Err(err());
    };
    let values = values
        .iter()
        .map(|x| match x {
            Value::Null => Ok(SortValue::Null),
            Value::String(s) => Ok(SortValue::Text(s.clone())),
            Value::Number(n) => n.as_i64().map(SortValue::Int).ok_or_else(err),
            Value::Object(o) => o
                .get("r")
                .and_then(Value::as_f64)
                .map(SortValue::Real)
                .ok_or_else(err),
            _ => Err(err()),
        })
        .collect::<PResult<Vec<_>>>()?;
    Ok(Cursor {
        values,
        id: id.clone(),
    })
}

fn encode_cursor(sealer: &PageSealer, c: &Cursor) -> String {
    let mut items: Vec<Value> = c
        .values
        .iter()
        .map(|v| match v {
            SortValue::Null => Value::Null,
            SortValue::Int(i) => Value::from(*i),
            SortValue::Real(f) => serde_json::json!({ "r": f }),
            SortValue::Text(s) => Value::from(s.as_str()),
        })
        .collect();
    items.push(Value::from(c.id.as_str()));
    sealer.seal(&Value::Array(items).to_string())
}

/// Parses the search parameters (already split into pairs) for a search on `ty`.
fn parse(st: &AppState, ty: &str, pairs: &[(String, String)], strict: bool) -> ApiResult<Parsed> {
    let base = st.config.base();
    let mut parsed = Parsed {
        query: SearchQuery {
            resource_type: ty.to_owned(),
            filters: Vec::new(),
            sort: Vec::new(),
            count: DEFAULT_COUNT,
            after: None,
            before: None,
            total: false,
        },
        includes: Vec::new(),
        summary: Summary::None,
        elements: None,
        total: None,
        ignored: Vec::new(),
    };
    let mut problems = Vec::new();
    for (name, value) in pairs {
        let r: PResult<()> = (|| {
            match name.as_str() {
                "_count" => {
                    let n: usize = value
                        .parse()
                        .map_err(|_| ParamError::Bad("_count: expected a whole number".into()))?;
                    parsed.query.count = n.min(MAX_COUNT);
                }
                "_sort" => parsed.query.sort = parse_sort(ty, value)?,
                "_cursor" => parsed.query.after = Some(decode_cursor(&st.pages, value)?),
                "_before" => parsed.query.before = Some(decode_cursor(&st.pages, value)?),
                "_include" | "_include:iterate" | "_revinclude" | "_revinclude:iterate" => {
                    for v in value.split(',') {
                        parsed.includes.push(parse_include(
                            ty,
                            v,
                            name.ends_with(":iterate"),
                            name.starts_with("_rev"),
                        )?);
                    }
                }
                "_summary" => {
                    parsed.summary = match value.as_str() {
                        "true" => Summary::True,
                        "false" => Summary::None,
                        "text" => Summary::Text,
                        "data" => Summary::Data,
                        "count" => Summary::Count,
                        _ => return bad("_summary: expected true, false, text, data or count"),
                    }
                }
                "_elements" => {
                    parsed.elements = Some(
                        value
                            .split(',')
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect(),
                    )
                }
                "_total" => {
                    parsed.total = match value.as_str() {
                        "none" => Some(false),
                        "estimate" | "accurate" => Some(true),
                        _ => return bad("_total: expected none, estimate or accurate"),
                    }
                }
                "_format" | "_pretty" => {}
                _ => {
                    let any_of = conditions(base, ty, name, value)?;
                    parsed.query.filters.push(Filter { any_of });
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => {}
            Err(ParamError::Unknown(n)) => {
                if strict {
                    problems.push(fhir::Issue::error(
                        fhir::IssueType::NotSupported,
                        "",
                        format!("unknown search parameter '{n}' for {ty}"),
                    ));
                } else {
                    parsed.ignored.push(n);
                }
            }
            Err(ParamError::Bad(m)) => {
                problems.push(fhir::Issue::error(fhir::IssueType::Invalid, "", m))
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems));
    }
    Ok(parsed)
}

/// Ids of the current resources of `ty` matching every criterion (conditional create,
/// update, delete and transaction conditional references): the same parsing and SQL as a
/// search, strictly (an unknown parameter is a 400, never ignored), at most `limit` ids.
pub async fn matching_ids(
    guard: &mut Guard<'_>,
    ty: &str,
    criteria: &[(String, String)],
    limit: usize,
) -> ApiResult<Vec<String>> {
    let st = guard.st;
    let mut parsed = parse(st, ty, criteria, true)?;
    parsed.query.count = limit;
    let views = guard.views().await?;
    let result = st
        .domain
        .records()
        .search(&parsed.query, Visibility::Caller(&views.searching()))
        .await?;
    Ok(result.matches.into_iter().map(|m| m.id).collect())
}

fn strict(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split([',', ';'])
                .any(|p| p.trim().eq_ignore_ascii_case("handling=strict"))
        })
    })
}

fn pairs_of(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub async fn type_get(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(resource_type): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    request::check_accept(&headers)?;
    let pairs = pairs_of(q.as_deref().unwrap_or(""));
    let mut guard = Guard::new(&st, &caller);
    guard.require_scope(&resource_type, access::Action::Search)?;
    if resource_type == "AuditEvent" {
        return super::audit_search::search(&mut guard, &pairs).await;
    }
    run(&mut guard, &resource_type, None, pairs, &headers).await
}

pub async fn type_post(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(resource_type): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require_supported(&resource_type)?;
    request::check_accept(&headers)?;
    request::require_media_type(&headers, &["application/x-www-form-urlencoded"])?;
    let bytes = request::read_body(&headers, body, st.config.max_body_bytes).await?;
    let mut pairs = pairs_of(q.as_deref().unwrap_or(""));
    pairs.extend(pairs_of(&String::from_utf8_lossy(&bytes)));
    let mut guard = Guard::new(&st, &caller);
    guard.require_scope(&resource_type, access::Action::Search)?;
    if resource_type == "AuditEvent" {
        return super::audit_search::search(&mut guard, &pairs).await;
    }
    run(&mut guard, &resource_type, None, pairs, &headers).await
}

/// `GET /fhir/Patient/{id}/{type}` (compartment search) and `…/$everything`.
pub async fn compartment(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Arc<Caller>>,
    Path((ctype, id, member)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_supported(&ctype)?;
    request::check_accept(&headers)?;
    if ctype != "Patient" {
        return Err(ApiError::NotFound(format!(
            "only the Patient compartment is supported, not {ctype}"
        )));
    }
    let pairs = pairs_of(q.as_deref().unwrap_or(""));
    let mut guard = Guard::new(&st, &caller);
    if member == "$everything" {
        return everything(&mut guard, &id, pairs).await;
    }
    require_supported(&member)?;
    guard.require_scope(&member, access::Action::Search)?;
    let params: Vec<&String> = fhir::compartment::patient_params(&member)
        .iter()
        .filter(|p| p.as_str() != fhir::compartment::SELF)
        .collect();
    let mut any_of: Vec<Condition> = params
        .iter()
        .map(|p| Condition::Reference {
            param: p.to_string(),
            target_type: Some("Patient".into()),
            target_id: Some(id.clone()),
            url: None,
        })
        .collect();
    if member == "Patient" {
        any_of.push(Condition::Id { id: id.clone() });
    }
    if any_of.is_empty() {
        return Err(ApiError::NotFound(format!(
            "{member} is not in the Patient compartment"
        )));
    }
    run(
        &mut guard,
        &member,
        Some((format!("Patient/{id}/{member}"), Filter { any_of })),
        pairs,
        &headers,
    )
    .await
}

/// Parses, searches and writes the searchset bundle. `compartment`: the path (after
/// `/fhir/`) and the extra filter of a compartment search.
async fn run(
    guard: &mut Guard<'_>,
    ty: &str,
    compartment: Option<(String, Filter)>,
    pairs: Vec<(String, String)>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let st = guard.st;
    let base = st.config.base();
    let mut parsed = parse(st, ty, &pairs, strict(headers))?;
    let path = match &compartment {
        Some((p, _)) => format!("{base}/fhir/{p}"),
        None => format!("{base}/fhir/{ty}"),
    };
    if let Some((_, f)) = compartment {
        parsed.query.filters.push(f);
    }
    let count_only = parsed.summary == Summary::Count;
    // Every statement runs inside the caller's view (criteria, chains, `_has`, sort keys,
    // paging and totals see only what the caller may see); the decision then checks each
    // match again and redacts it.
    parsed.query.total = count_only || parsed.total == Some(true);
    if count_only {
        parsed.query.count = 0;
    }
    let views = guard.views().await?;
    let mut result = st
        .domain
        .records()
        .search(&parsed.query, Visibility::Caller(&views.searching()))
        .await?;
    if count_only {
        result.matches.clear();
        result.next = None;
        result.previous = None;
    }
    let single_page =
        parsed.query.after.is_none() && parsed.query.before.is_none() && result.next.is_none();
    result.matches = visible(guard, result.matches).await?;
    let mut total = result.total;
    if total.is_none() && single_page && !count_only && parsed.total != Some(false) {
        total = Some(result.matches.len() as u64);
    }

    // _include / _revinclude.
    let mut included: Vec<Match> = Vec::new();
    if !parsed.includes.is_empty() && !result.matches.is_empty() {
        let mut seen: HashSet<(String, String)> = result
            .matches
            .iter()
            .map(|m| (m.resource_type.clone(), m.id.clone()))
            .collect();
        let mut frontier: Vec<Match> = result.matches.clone();
        for round in 0..=MAX_ITERATE {
            let mut found = Vec::new();
            for inc in &parsed.includes {
                if round > 0 && !inc.iterate {
                    continue;
                }
                if inc.reverse {
                    let target_types: HashSet<&str> =
                        frontier.iter().map(|m| m.resource_type.as_str()).collect();
                    for tt in target_types {
                        let ids: Vec<String> = frontier
                            .iter()
                            .filter(|m| m.resource_type == tt)
                            .map(|m| m.id.clone())
                            .collect();
                        found.extend(
                            st.domain
                                .records()
                                .revinclude(&inc.source_type, inc.param.as_deref(), tt, &ids)
                                .await?,
                        );
                    }
                } else {
                    let ids: Vec<String> = frontier
                        .iter()
                        .filter(|m| m.resource_type == inc.source_type)
                        .map(|m| m.id.clone())
                        .collect();
                    found.extend(
                        st.domain
                            .records()
                            .include(
                                &inc.source_type,
                                &ids,
                                inc.param.as_deref(),
                                inc.target_type.as_deref(),
                            )
                            .await?,
                    );
                }
            }
            // Included resources pass the same decision as matches, in every round: a
            // hidden resource never leads an iteration on to others.
            let fresh = found
                .into_iter()
                .filter(|m| seen.insert((m.resource_type.clone(), m.id.clone())))
                .collect();
            frontier = visible(guard, fresh).await?;
            included.extend(frontier.iter().cloned());
            if frontier.is_empty() || included.len() >= MAX_INCLUDED {
                break;
            }
        }
        included.truncate(MAX_INCLUDED);
    }

    // Links: every parameter as given, but the page position.
    let kept: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "_cursor" && k != "_before")
        .collect();
    let link = |position: Option<(&str, &Cursor)>| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            ser.append_pair(k, v);
        }
        if let Some((name, c)) = position {
            ser.append_pair(name, &encode_cursor(&st.pages, c));
        }
        let q = ser.finish();
        if q.is_empty() {
            path.clone()
        } else {
            format!("{path}?{q}")
        }
    };

    let mut w = BundleWriter::new("searchset", total);
    let here = match (&parsed.query.before, &parsed.query.after) {
        (Some(b), _) => Some(("_before", b)),
        (None, Some(a)) => Some(("_cursor", a)),
        (None, None) => None,
    };
    w.link("self", &link(here));
    if here.is_some() {
        w.link("first", &link(None));
    }
    if !count_only {
        if let Some(prev) = &result.previous {
            w.link("previous", &link(Some(("_before", prev))));
        }
        if let Some(next) = &result.next {
            w.link("next", &link(Some(("_cursor", next))));
        }
    }
    let entries = result
        .matches
        .iter()
        .map(|m| (m, "match"))
        .chain(included.iter().map(|m| (m, "include")));
    for (m, mode) in entries {
        if count_only {
            break;
        }
        let full_url = format!("{base}/fhir/{}/{}", m.resource_type, m.id);
        let subsetted;
        let body: &[u8] = match (parsed.summary, &parsed.elements) {
            (Summary::None, None) => &m.body,
            (summary, elements) => {
                subsetted = subset(&m.body, summary, elements.as_deref());
                &subsetted
            }
        };
        w.entry(Some(&full_url), Some(body), |w| {
            w.raw(br#","search":{"mode":"#).string(mode).raw(b"}");
        });
    }
    if !parsed.ignored.is_empty() {
        let issues: Vec<fhir::Issue> = parsed
            .ignored
            .iter()
            .map(|n| {
                fhir::Issue::warning(
                    fhir::IssueType::NotSupported,
                    "",
                    format!("unknown search parameter '{n}' for {ty} was ignored"),
                )
            })
            .collect();
        let oo = fhir::outcome::operation_outcome(&issues);
        let oo = serde_json::to_vec(&oo).unwrap_or_default();
        w.entry(None, Some(&oo), |w| {
            w.raw(br#","search":{"mode":"outcome"}"#);
        });
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter())
        .finish();
    let note =
        crate::authz::audit::Note::search(guard, Interaction::SearchType, Some(ty), Some(query));
    Ok(note.attach(w.finish()))
}

/// The matches the caller may see, bodies redacted where an address is hidden from them.
/// Matches the store found inside the caller's view pass (the view is the decision); for
/// `_include`d resources this is where the decision is made.
async fn visible(guard: &mut Guard<'_>, matches: Vec<Match>) -> ApiResult<Vec<Match>> {
    let mut out = Vec::with_capacity(matches.len());
    for mut m in matches {
        if let Some(body) = guard.readable(access::Action::Search, &m.body).await? {
            m.body = body;
            out.push(m);
        }
    }
    Ok(out)
}

/// A subset of a stored body (`_summary`, `_elements`), tagged `SUBSETTED`. The one place
/// search parses a stored body: the client asked for something other than what is stored.
fn subset(body: &[u8], summary: Summary, elements: Option<&[String]>) -> Vec<u8> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    const ALWAYS: &[&str] = &["resourceType", "id", "meta"];
    match (summary, elements) {
        (Summary::Text, _) => map.retain(|k, _| ALWAYS.contains(&k.as_str()) || k == "text"),
        (Summary::Data, _) => {
            map.remove("text");
        }
        // The elements the R4 definitions mark `isSummary` (for the type the body says).
        (Summary::True, _) => {
            let rt = map
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            map.retain(|k, _| ALWAYS.contains(&k.as_str()) || fhir::defs::is_summary(&rt, k))
        }
        (_, Some(els)) => {
            map.retain(|k, _| ALWAYS.contains(&k.as_str()) || els.iter().any(|e| e == k))
        }
        _ => return body.to_vec(),
    }
    let meta = map
        .entry("meta")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(meta) = meta {
        let tags = meta
            .entry("tag")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(tags) = tags {
            tags.push(serde_json::json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                "code": "SUBSETTED"
            }));
        }
    }
    serde_json::to_vec(&Value::Object(map)).unwrap_or_else(|_| body.to_vec())
}

/// `GET /fhir/Patient/{id}/$everything`: the patient and every resource in its
/// compartment, by (type, id), keyset-paged; `_count`, `_since`, `_type`.
async fn everything(
    guard: &mut Guard<'_>,
    id: &str,
    pairs: Vec<(String, String)>,
) -> ApiResult<Response> {
    let st = guard.st;
    let base = st.config.base();
    // The operation reads the child's Patient record: the token must cover Patient (the
    // other types it does not cover are left out of the result, not refused), and the
    // caller must be able to see that record, or there is no child.
    guard.require_scope("Patient", access::Action::Read)?;
    let patient = st
        .domain
        .records()
        .read("Patient", id)
        .await?
        .filter(|s| !s.deleted);
    let seen = match &patient {
        Some(p) => guard
            .readable(access::Action::Read, &p.body)
            .await?
            .is_some(),
        None => false,
    };
    if !seen {
        return Err(crate::authz::not_found("Patient", id));
    }
    let mut count = DEFAULT_COUNT;
    let mut since_us = None;
    let mut types: Option<Vec<String>> = None;
    let mut after = None;
    for (k, v) in &pairs {
        match k.as_str() {
            "_count" => {
                count = v
                    .parse::<usize>()
                    .map_err(|_| ApiError::bad_request("", "_count: expected a whole number"))?
                    .clamp(1, MAX_COUNT)
            }
            "_since" => {
                since_us =
                    Some(clock::parse_fhir_datetime(v).ok_or_else(|| {
                        ApiError::bad_request("", "_since: expected a FHIR instant")
                    })?)
            }
            "_type" => types = Some(v.split(',').map(str::to_owned).collect()),
            "_cursor" => {
                let bad =
                    || ApiError::bad_request("", "_cursor: not a page position this server made");
                let v = st.pages.open(v).ok_or_else(bad)?;
                let c: Vec<String> = serde_json::from_str(&v).map_err(|_| {
                    ApiError::bad_request("", "_cursor: not a page position this server made")
                })?;
                let [t, i] = <[String; 2]>::try_from(c).map_err(|_| {
                    ApiError::bad_request("", "_cursor: not a page position this server made")
                })?;
                after = Some((t, i));
            }
            _ => {}
        }
    }
    let wanted = |t: &str| types.as_ref().is_none_or(|ts| ts.iter().any(|x| x == t));
    let members: Vec<(String, Vec<String>)> = fhir::types::SUPPORTED_TYPES
        .iter()
        .filter(|t| wanted(t))
        .map(|t| {
            (
                t.to_string(),
                fhir::compartment::patient_params(t)
                    .iter()
                    .filter(|p| p.as_str() != fhir::compartment::SELF)
                    .cloned()
                    .collect(),
            )
        })
        .collect();
    let q = EverythingQuery {
        patient_id: id.to_owned(),
        members,
        since_us,
        count,
        after,
    };
    let views = guard.views().await?;
    let mut rows = st
        .domain
        .records()
        .everything(&q, Visibility::Caller(&views.searching()))
        .await?;
    if !wanted("Patient") {
        rows.retain(|m| !(m.resource_type == "Patient" && m.id == id));
    }
    let more = rows.len() > count;
    rows.truncate(count);
    // The rows are the caller's view already; the decision checks and redacts each.
    let last_row = rows.last().map(|m| (m.resource_type.clone(), m.id.clone()));
    let rows = visible(guard, rows).await?;
    let path = format!("{base}/fhir/Patient/{id}/$everything");
    let kept: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "_cursor").collect();
    let link = |cursor: Option<String>| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            ser.append_pair(k, v);
        }
        if let Some(c) = cursor {
            ser.append_pair("_cursor", &c);
        }
        let q = ser.finish();
        if q.is_empty() {
            path.clone()
        } else {
            format!("{path}?{q}")
        }
    };
    let mut w = BundleWriter::new("searchset", None);
    w.link(
        "self",
        &link(
            q.after
                .as_ref()
                .map(|(t, i)| st.pages.seal(&serde_json::json!([t, i]).to_string())),
        ),
    );
    if more && let Some((t, i)) = &last_row {
        w.link(
            "next",
            &link(Some(st.pages.seal(&serde_json::json!([t, i]).to_string()))),
        );
    }
    for m in &rows {
        let full_url = format!("{base}/fhir/{}/{}", m.resource_type, m.id);
        w.entry(Some(&full_url), Some(&m.body), |w| {
            w.raw(br#","search":{"mode":"match"}"#);
        });
    }
    let note =
        crate::authz::audit::Note::search(guard, Interaction::Operation, Some("Patient"), None);
    Ok(note.attach(w.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_ranges_follow_precision() {
        let (lo, hi) = date_range("2019").unwrap();
        assert_eq!(
            lo,
            clock::parse_fhir_datetime("2019-01-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            hi + 1,
            clock::parse_fhir_datetime("2020-01-01T00:00:00Z").unwrap()
        );
        let (lo, hi) = date_range("2019-12").unwrap();
        assert_eq!(hi + 1, clock::parse_fhir_datetime("2020-01-01").unwrap());
        assert!(lo < hi);
        let (lo, hi) = date_range("2019-05-01T10:00+01:00").unwrap();
        assert_eq!(
            lo,
            clock::parse_fhir_datetime("2019-05-01T09:00:00Z").unwrap()
        );
        assert_eq!(hi - lo, 60_000_000 - 1);
        let (lo, hi) = date_range("2019-05-01T10:00:00.5Z").unwrap();
        assert_eq!(hi - lo, 100_000 - 1);
        assert!(date_range("yesterday").is_none());
        assert!(date_range("2019-13").is_none());
    }

    #[test]
    fn numbers_carry_precision() {
        let (v, l, h) = number_range("5.4").unwrap();
        assert_eq!(v, 5.4);
        assert!((l - 5.35).abs() < 1e-9 && (h - 5.45).abs() < 1e-9);
        let (_, l, h) = number_range("100").unwrap();
        assert!((l - 99.5).abs() < 1e-9 && (h - 100.5).abs() < 1e-9);
    }

    #[test]
    fn or_values_split_on_unescaped_commas() {
        assert_eq!(split_or(r"a,b\,c"), vec!["a".to_owned(), "b,c".to_owned()]);
    }
}
