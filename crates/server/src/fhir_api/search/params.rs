//! Reading a search's parameters into the store's query: criteria of every parameter
//! type, modifiers and prefixes, chains and `_has`, `_sort`, `_include`/`_revinclude`,
//! `_count`, `_summary`/`_elements` and sealed page positions.

use super::*;

pub(super) enum ParamError {
    /// Not a parameter this server knows (lenient: ignored).
    Unknown(String),
    /// Known but wrongly used (always a 400).
    Bad(String),
}

pub(super) type PResult<T> = Result<T, ParamError>;

pub(super) fn bad<T>(msg: impl Into<String>) -> PResult<T> {
    Err(ParamError::Bad(msg.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Summary {
    None,
    True,
    Text,
    Data,
    Count,
}

#[derive(Debug, Clone)]
pub(super) struct Include {
    pub(super) source_type: String,
    pub(super) param: Option<String>,
    pub(super) target_type: Option<String>,
    pub(super) iterate: bool,
    pub(super) reverse: bool,
}

pub(super) struct Parsed {
    pub(super) query: SearchQuery,
    pub(super) includes: Vec<Include>,
    pub(super) summary: Summary,
    pub(super) elements: Option<Vec<String>>,
    pub(super) total: Option<bool>,
    pub(super) ignored: Vec<String>,
}

/// Splits on commas not escaped by a backslash, unescaping `\,` `\$` `\|` `\\`.
pub(super) fn split_or(v: &str) -> Vec<String> {
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

pub(super) fn prefix_of(v: &str) -> (Prefix, &str) {
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
pub(super) fn number_range(s: &str) -> Option<(f64, f64, f64)> {
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

pub(super) fn token_value(v: &str) -> (SystemMatch, Option<String>) {
    match v.split_once('|') {
        None => (SystemMatch::Any, Some(v.to_owned())),
        Some(("", code)) => (SystemMatch::Absent, Some(code.to_owned())),
        Some((system, "")) => (SystemMatch::Is(system.to_owned()), None),
        Some((system, code)) => (SystemMatch::Is(system.to_owned()), Some(code.to_owned())),
    }
}

pub(super) fn date_cond(name: &str, v: &str) -> PResult<(Prefix, i64, i64)> {
    let (prefix, rest) = prefix_of(v);
    match date_range(rest) {
        Some((lo, hi)) => Ok((prefix, lo, hi)),
        None => bad(format!(
            "{name}: '{v}' is not a date (e.g. 2019, 2019-05-01, ge2019-05-01T10:00:00Z)"
        )),
    }
}

pub(super) fn number_cond(name: &str, v: &str) -> PResult<(Prefix, f64, f64, f64)> {
    let (prefix, rest) = prefix_of(v);
    match number_range(rest) {
        Some((x, l, h)) => Ok((prefix, x, l, h)),
        None => bad(format!("{name}: '{v}' is not a number")),
    }
}

pub(super) fn table_of(p: &SearchParam) -> Option<Table> {
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
pub(super) fn conditions(base: &str, ty: &str, name: &str, value: &str) -> PResult<Vec<Condition>> {
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

pub(super) fn reference_condition(
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

pub(super) fn composite_condition(name: &str, p: &SearchParam, v: &str) -> PResult<Condition> {
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

pub(super) fn parse_sort(ty: &str, v: &str) -> PResult<Vec<SortKey>> {
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

pub(super) fn parse_include(ty: &str, v: &str, iterate: bool, reverse: bool) -> PResult<Include> {
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

pub(super) fn decode_cursor(sealer: &PageSealer, v: &str) -> PResult<Cursor> {
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

pub(super) fn encode_cursor(sealer: &PageSealer, c: &Cursor) -> String {
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
pub(super) fn parse(
    st: &AppState,
    ty: &str,
    pairs: &[(String, String)],
    strict: bool,
) -> ApiResult<Parsed> {
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
    let (max_criteria, max_values) = (st.config.max_search_criteria, st.config.max_search_values);
    for (name, value) in pairs {
        // Limits first, so that a hostile search costs no more than a refusal.
        let criteria = parsed.query.filters.len() + parsed.query.sort.len() + parsed.includes.len();
        if criteria > max_criteria {
            return Err(too_many_criteria(max_criteria));
        }
        if value.len() > 1 && split_or(value).len() > max_values {
            return Err(too_costly(format!(
                "the search parameter {name} has more than {max_values} values, the server's \
                 limit (--max-search-values)"
            )));
        }
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
    if parsed.query.filters.len() + parsed.query.sort.len() + parsed.includes.len() > max_criteria {
        return Err(too_many_criteria(max_criteria));
    }
    Ok(parsed)
}

fn too_many_criteria(max: usize) -> ApiError {
    too_costly(format!(
        "this search has more than {max} criteria (search parameters, _sort keys and _include \
         values), the server's limit (--max-search-criteria)"
    ))
}

/// A search over one of the server's limits: 400, naming the limit.
fn too_costly(message: String) -> ApiError {
    ApiError::BadRequest(vec![fhir::Issue::error(
        fhir::IssueType::TooCostly,
        "",
        message,
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;

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
