//! The subset of FHIRPath the R4 search parameters of the supported types use, parsed once
//! (when the definitions load) into a small tree and evaluated over `serde_json::Value`.
//!
//! Supported: paths (`Patient.name.given`), choice elements (`Observation.value` selects
//! `valueQuantity`, `valueString`, ...), indexers (`entry[0]`), `|` unions, `where(...)`,
//! `exists()`, `as(T)` / `ofType(T)` / `(x as T)`, `x is T`, `resolve() is T` (true when a
//! Reference's literal reference, or an inline resource, has type `T`; nothing is fetched),
//! `=` / `!=` against values, `and` / `or`, string, boolean and integer literals.
//!
//! Types: evaluation carries each value's FHIR type (from the R4 structure definitions in
//! [`crate::defs`]) so `as(Quantity)` sees that `valueQuantity` is a Quantity and value
//! conversion knows a `telecom` is a ContactPoint rather than an Identifier.

use crate::defs::{Kind, NodeId, Prim, Ty, defs};
use serde_json::{Map, Value};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `$this`: the context item (the resource, or the element a composite's component is
    /// evaluated on).
    This,
    /// A leading type name (`Patient` in `Patient.name`): the context, if it is a resource of
    /// that type.
    TypeRoot(Box<str>),
    /// `base.a.b.c`: member steps (each also matching a choice element's typed properties).
    Path(Box<Expr>, Vec<Box<str>>),
    /// `base[n]`.
    Index(Box<Expr>, usize),
    /// `base.where(criteria)`.
    Where(Box<Expr>, Box<Expr>),
    /// `base.as(T)`, `base.ofType(T)`, `(base as T)`.
    As(Box<Expr>, Box<str>),
    /// `base is T`.
    Is(Box<Expr>, Box<str>),
    /// `base.resolve() is T`.
    RefIs(Box<Expr>, Box<str>),
    /// `base.exists()`.
    Exists(Box<Expr>),
    /// `a | b | ...`.
    Union(Vec<Expr>),
    /// `a = b` (`negate`: `a != b`).
    Eq(Box<Expr>, Box<Expr>, bool),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// A string, boolean or integer literal.
    Lit(Value),
}

/// One value selected by an expression, with its FHIR type when known.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub v: &'a Value,
    pub ty: Option<Ty>,
}

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

fn bool_item(b: bool) -> Item<'static> {
    Item {
        v: if b { &TRUE } else { &FALSE },
        ty: Some(Ty::Prim(Prim::Boolean)),
    }
}

// ---------------------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Sym(&'static str),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'\'' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err("unterminated string".into()),
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let e = *b.get(i + 1).ok_or("bad escape")?;
                            v.push(match e {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                other => other as char,
                            });
                            i += 2;
                        }
                        Some(_) => {
                            let ch = s[i..].chars().next().unwrap_or('\0');
                            v.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            b'0'..=b'9' => {
                let st = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n = s[st..i].parse().map_err(|_| "bad number")?;
                out.push(Tok::Int(n));
            }
            b'!' if b.get(i + 1) == Some(&b'=') => {
                out.push(Tok::Sym("!="));
                i += 2;
            }
            b'.' | b'(' | b')' | b'[' | b']' | b'|' | b'=' | b',' => {
                out.push(Tok::Sym(match c {
                    b'.' => ".",
                    b'(' => "(",
                    b')' => ")",
                    b'[' => "[",
                    b']' => "]",
                    b'|' => "|",
                    b'=' => "=",
                    _ => ",",
                }));
                i += 1;
            }
            b'$' | b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                let st = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Ident(s[st..i].to_owned()));
            }
            _ => return Err(format!("unexpected character {:?}", c as char)),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if *x == s)
    }
    fn is_kw(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(x)) if x == s)
    }
    fn expect(&mut self, s: &str) -> Result<(), String> {
        if self.is_sym(s) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{s}` at token {}", self.pos))
        }
    }
    fn ident(&mut self) -> Result<String, String> {
        match self.toks.get(self.pos) {
            Some(Tok::Ident(x)) => {
                self.pos += 1;
                Ok(x.clone())
            }
            _ => Err(format!("expected a name at token {}", self.pos)),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.is_kw("or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.eq()?;
        while self.is_kw("and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.eq()?));
        }
        Ok(e)
    }
    fn eq(&mut self) -> Result<Expr, String> {
        let e = self.union()?;
        for (s, neg) in [("=", false), ("!=", true)] {
            if self.is_sym(s) {
                self.pos += 1;
                return Ok(Expr::Eq(Box::new(e), Box::new(self.union()?), neg));
            }
        }
        Ok(e)
    }
    fn union(&mut self) -> Result<Expr, String> {
        let mut v = vec![self.typed()?];
        while self.is_sym("|") {
            self.pos += 1;
            v.push(self.typed()?);
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap_or(Expr::This)
        } else {
            Expr::Union(v)
        })
    }
    fn typed(&mut self) -> Result<Expr, String> {
        let mut e = self.postfix()?;
        loop {
            if self.is_kw("as") {
                self.pos += 1;
                e = Expr::As(Box::new(e), self.type_name()?.into());
            } else if self.is_kw("is") {
                self.pos += 1;
                let t = self.type_name()?;
                e = match e {
                    Expr::Path(b, steps) if steps.last().map(|s| &**s) == Some("\u{0}resolve") => {
                        let mut steps = steps;
                        steps.pop();
                        Expr::RefIs(Box::new(path_or_base(*b, steps)), t.into())
                    }
                    other => Expr::Is(Box::new(other), t.into()),
                };
            } else {
                return Ok(e);
            }
        }
    }
    fn type_name(&mut self) -> Result<String, String> {
        let mut t = self.ident()?;
        // Qualified names (`FHIR.Quantity`, `System.String`): keep the last part.
        while self.is_sym(".") {
            self.pos += 1;
            t = self.ident()?;
        }
        Ok(t)
    }

    /// A term followed by `.member`, `.function(...)` and `[n]`.
    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = self.term()?;
        loop {
            if self.is_sym(".") {
                self.pos += 1;
                let name = self.ident()?;
                if self.is_sym("(") {
                    e = self.function(e, &name)?;
                } else {
                    e = push_step(e, name);
                }
            } else if self.is_sym("[") {
                self.pos += 1;
                let n = match self.toks.get(self.pos) {
                    Some(Tok::Int(n)) => *n,
                    _ => return Err("expected an index".into()),
                };
                self.pos += 1;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), usize::try_from(n).map_err(|_| "bad index")?);
            } else {
                return Ok(e);
            }
        }
    }

    fn term(&mut self) -> Result<Expr, String> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Sym("(")) => {
                self.pos += 1;
                let e = self.or()?;
                self.expect(")")?;
                Ok(e)
            }
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Expr::Lit(Value::String(s)))
            }
            Some(Tok::Int(n)) => {
                self.pos += 1;
                Ok(Expr::Lit(Value::from(n)))
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                match name.as_str() {
                    "true" => return Ok(Expr::Lit(Value::Bool(true))),
                    "false" => return Ok(Expr::Lit(Value::Bool(false))),
                    "$this" => return Ok(Expr::This),
                    _ => {}
                }
                if self.is_sym("(") {
                    return self.function(Expr::This, &name);
                }
                if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    Ok(Expr::TypeRoot(name.into()))
                } else {
                    Ok(Expr::Path(Box::new(Expr::This), vec![name.into()]))
                }
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }

    /// `name(` has been read up to the `(`.
    fn function(&mut self, base: Expr, name: &str) -> Result<Expr, String> {
        self.expect("(")?;
        let e = match name {
            "where" => {
                let c = self.or()?;
                Expr::Where(Box::new(base), Box::new(c))
            }
            "as" | "ofType" => Expr::As(Box::new(base), self.type_name()?.into()),
            "exists" => {
                if self.is_sym(")") {
                    Expr::Exists(Box::new(base))
                } else {
                    let c = self.or()?;
                    Expr::Exists(Box::new(Expr::Where(Box::new(base), Box::new(c))))
                }
            }
            // Only as `resolve() is T`: marked here, turned into `RefIs` by `typed`.
            "resolve" => push_step(base, "\u{0}resolve".into()),
            _ => return Err(format!("unsupported function {name}()")),
        };
        self.expect(")")?;
        Ok(e)
    }
}

fn push_step(e: Expr, name: String) -> Expr {
    match e {
        Expr::Path(b, mut steps) => {
            steps.push(name.into());
            Expr::Path(b, steps)
        }
        other => Expr::Path(Box::new(other), vec![name.into()]),
    }
}

fn path_or_base(base: Expr, steps: Vec<Box<str>>) -> Expr {
    if steps.is_empty() {
        base
    } else {
        Expr::Path(Box::new(base), steps)
    }
}

fn check(e: &Expr) -> Result<(), String> {
    let sub: Vec<&Expr> = match e {
        Expr::Path(b, steps) => {
            if steps.iter().any(|s| s.starts_with('\u{0}')) {
                return Err("resolve() is only supported as `resolve() is Type`".into());
            }
            vec![b]
        }
        Expr::Index(b, _)
        | Expr::As(b, _)
        | Expr::Is(b, _)
        | Expr::RefIs(b, _)
        | Expr::Exists(b) => vec![b],
        Expr::Where(a, b) | Expr::Eq(a, b, _) | Expr::And(a, b) | Expr::Or(a, b) => vec![a, b],
        Expr::Union(v) => v.iter().collect(),
        _ => vec![],
    };
    sub.into_iter().try_for_each(check)
}

/// The leading type names (`Patient` in `Patient.name`) an expression uses.
#[cfg(test)]
pub fn type_roots(e: &Expr) -> Vec<&str> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match e {
            Expr::TypeRoot(t) => out.push(&**t),
            Expr::Path(b, _)
            | Expr::Index(b, _)
            | Expr::As(b, _)
            | Expr::Is(b, _)
            | Expr::RefIs(b, _)
            | Expr::Exists(b) => stack.push(b),
            Expr::Where(a, b) | Expr::Eq(a, b, _) | Expr::And(a, b) | Expr::Or(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            Expr::Union(v) => stack.extend(v),
            Expr::This | Expr::Lit(_) => {}
        }
    }
    out
}

/// Parses an expression of the supported subset.
pub fn parse(s: &str) -> Result<Expr, String> {
    let mut p = Parser {
        toks: lex(s)?,
        pos: 0,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected {:?}", p.toks[p.pos]));
    }
    check(&e)?;
    Ok(e)
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// The FHIR type name of an item: `string`, `HumanName`, `Patient`, ... (`None` if unknown).
pub fn type_name<'a>(it: &Item<'a>) -> Option<&'a str> {
    match it.ty? {
        Ty::Prim(p) => Some(p.name()),
        Ty::Complex(n) => Some(&defs().node(n).path),
        Ty::Resource => it.v.get("resourceType").and_then(Value::as_str),
    }
}

fn node_of(it: &Item<'_>) -> Option<NodeId> {
    match it.ty? {
        Ty::Complex(n) => Some(n),
        Ty::Resource => defs().resource(it.v.get("resourceType")?.as_str()?),
        Ty::Prim(_) => None,
    }
}

/// The datatype a JSON property suffix names: `Quantity`, `DateTime` → dateTime.
fn ty_from_suffix(suffix: &str) -> Option<Ty> {
    let d = defs();
    if let Some(t) = d.types.get(suffix)
        && t.kind == Kind::Complex
    {
        return t.node.map(Ty::Complex);
    }
    let mut c = suffix.chars();
    let first = c.next()?.to_ascii_lowercase();
    let name: String = std::iter::once(first).chain(c).collect();
    Prim::from_name(&name).map(Ty::Prim)
}

fn push_flat<'a>(v: &'a Value, ty: Option<Ty>, out: &mut Vec<Item<'a>>) {
    match v {
        Value::Array(a) => out.extend(a.iter().filter(|x| !x.is_null()).map(|x| Item { v: x, ty })),
        Value::Null => {}
        _ => out.push(Item { v, ty }),
    }
}

fn children<'a>(it: Item<'a>, name: &str, out: &mut Vec<Item<'a>>) {
    let Value::Object(obj) = it.v else { return };
    let node = node_of(&it).map(|n| defs().node(n));
    if let Some(v) = obj.get(name) {
        let ty = match (node, it.ty) {
            (Some(n), _) => n.prop(name).map(|(_, t)| t),
            _ => None,
        };
        push_flat(v, ty, out);
        return;
    }
    match node {
        Some(n) => {
            if let Some(e) = n.elems.iter().find(|e| e.choice && &*e.name == name) {
                for t in &e.types {
                    if let Some(v) = obj.get(&*t.name) {
                        push_flat(v, Some(t.ty), out);
                    }
                }
            }
        }
        None => choice_by_shape(obj, name, out),
    }
}

fn choice_by_shape<'a>(obj: &'a Map<String, Value>, name: &str, out: &mut Vec<Item<'a>>) {
    for (k, v) in obj {
        if let Some(suffix) = k.strip_prefix(name)
            && suffix.starts_with(|c: char| c.is_ascii_uppercase())
        {
            push_flat(v, ty_from_suffix(suffix), out);
        }
    }
}

const QUANTITY_PROFILES: &[&str] = &[
    "Age",
    "Count",
    "Distance",
    "Duration",
    "MoneyQuantity",
    "SimpleQuantity",
];

fn is_type(it: &Item<'_>, t: &str) -> bool {
    match type_name(it) {
        Some(n) => n.eq_ignore_ascii_case(t) || (t == "Quantity" && QUANTITY_PROFILES.contains(&n)),
        None => false,
    }
}

/// The type a reference points at: `Patient` for `Patient/1`, `.../Patient/1/_history/2`,
/// or an inline `Patient` resource.
pub fn reference_type(v: &Value) -> Option<&str> {
    if let Some(rt) = v.get("resourceType").and_then(Value::as_str) {
        return Some(rt);
    }
    let r = v.get("reference")?.as_str()?;
    super::values::parse_reference(r).map(|(t, _)| t)
}

fn truthy(items: &[Item<'_>]) -> bool {
    matches!(
        items,
        [Item {
            v: Value::Bool(true),
            ..
        }]
    )
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => {
            x.as_str() == y.as_str() || x.as_f64().is_some_and(|f| y.as_f64() == Some(f))
        }
        _ => false,
    }
}

/// Evaluates `e` with `ctx` as `$this`, appending the results to `out`.
pub fn eval<'a>(e: &'a Expr, ctx: Item<'a>, out: &mut Vec<Item<'a>>) {
    match e {
        Expr::This => out.push(ctx),
        Expr::TypeRoot(t) => {
            if is_type(&ctx, t) || ctx.ty.is_none() {
                out.push(ctx);
            }
        }
        Expr::Path(base, steps) => {
            let mut cur = Vec::new();
            eval(base, ctx, &mut cur);
            for (i, s) in steps.iter().enumerate() {
                if i + 1 == steps.len() {
                    for it in cur {
                        children(it, s, out);
                    }
                    return;
                }
                let mut next = Vec::with_capacity(cur.len());
                for it in cur {
                    children(it, s, &mut next);
                }
                cur = next;
            }
        }
        Expr::Index(base, n) => {
            let mut cur = Vec::new();
            eval(base, ctx, &mut cur);
            if let Some(it) = cur.get(*n) {
                out.push(*it);
            }
        }
        Expr::Where(base, crit) => {
            let mut cur = Vec::new();
            eval(base, ctx, &mut cur);
            let mut tmp = Vec::new();
            for it in cur {
                tmp.clear();
                eval(crit, it, &mut tmp);
                if truthy(&tmp) {
                    out.push(it);
                }
            }
        }
        Expr::As(base, t) => {
            let mut cur = Vec::new();
            eval(base, ctx, &mut cur);
            out.extend(cur.into_iter().filter(|it| is_type(it, t)));
        }
        Expr::Is(base, t) => {
            let mut cur = Vec::new();
            eval(base, ctx, &mut cur);
            if let [it] = cur.as_slice() {
                out.push(bool_item(is_type(it, t)));
            }
        }
        Expr::RefIs(base, t) => {
            let mut cur = Vec::new();
            eval(base, ctx, &mut cur);
            if let [it] = cur.as_slice() {
                out.push(bool_item(reference_type(it.v) == Some(&**t)));
            }
        }
        Expr::Exists(base) => {
            let mut cur = Vec::new();
            eval(base, ctx, &mut cur);
            out.push(bool_item(!cur.is_empty()));
        }
        Expr::Union(v) => {
            let start = out.len();
            for x in v {
                let mut cur = Vec::new();
                eval(x, ctx, &mut cur);
                for it in cur {
                    // `|` removes duplicates (the same JSON value reached twice).
                    if !out[start..].iter().any(|o| std::ptr::eq(o.v, it.v)) {
                        out.push(it);
                    }
                }
            }
        }
        Expr::Eq(a, b, neg) => {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            eval(a, ctx, &mut x);
            eval(b, ctx, &mut y);
            if x.is_empty() || y.is_empty() {
                return;
            }
            let same = x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| equal(p.v, q.v));
            out.push(bool_item(same != *neg));
        }
        Expr::And(a, b) => {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            eval(a, ctx, &mut x);
            eval(b, ctx, &mut y);
            let (l, r) = (as_bool(&x), as_bool(&y));
            match (l, r) {
                (Some(false), _) | (_, Some(false)) => out.push(bool_item(false)),
                (Some(true), Some(true)) => out.push(bool_item(true)),
                _ => {}
            }
        }
        Expr::Or(a, b) => {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            eval(a, ctx, &mut x);
            eval(b, ctx, &mut y);
            match (as_bool(&x), as_bool(&y)) {
                (Some(true), _) | (_, Some(true)) => out.push(bool_item(true)),
                (Some(false), Some(false)) => out.push(bool_item(false)),
                _ => {}
            }
        }
        Expr::Lit(v) => out.push(Item { v, ty: None }),
    }
}

fn as_bool(items: &[Item<'_>]) -> Option<bool> {
    match items {
        [
            Item {
                v: Value::Bool(b), ..
            },
        ] => Some(*b),
        [] => None,
        // FHIRPath: a non-empty single non-boolean collection is `true`.
        [_] => Some(true),
        _ => None,
    }
}

/// A resource as the context item.
pub fn root_item(resource: &Value) -> Item<'_> {
    Item {
        v: resource,
        ty: Some(Ty::Resource),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strs(e: &str, r: &Value) -> Vec<String> {
        let e = parse(e).unwrap();
        let mut out = Vec::new();
        eval(&e, root_item(r), &mut out);
        out.iter()
            .map(|i| match i.v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }

    #[test]
    fn parses_the_forms_used() {
        for e in [
            "Patient.name.given",
            "(Observation.value as Quantity) | (Observation.value as SampledData)",
            "Patient.telecom.where(system='email')",
            "Patient.deceased.exists() and Patient.deceased != false",
            "CarePlan.subject.where(resolve() is Patient)",
            "Bundle.entry[0].resource",
            "value.as(DateTime) | value.as(Period)",
            "Condition.abatement.as(Age)",
            "Observation.value.ofType(Quantity)",
        ] {
            parse(e).unwrap_or_else(|m| panic!("{e}: {m}"));
        }
        assert!(parse("Patient.name.foo()").is_err());
        assert!(parse("Patient.link.other.resolve()").is_err());
        assert!(parse("Patient.name[").is_err());
    }

    #[test]
    fn evaluates() {
        let p = json!({"resourceType": "Patient", "id": "1",
            "name": [{"family": "A", "given": ["B", "C"]}],
            "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "e"}],
            "deceasedDateTime": "2020-01-01",
            "link": [{"other": {"reference": "RelatedPerson/2"}}, {"other": {"reference": "Patient/3"}}]});
        assert_eq!(strs("Patient.name.given", &p), ["B", "C"]);
        assert_eq!(
            strs("Patient.name.given | Patient.name.family", &p),
            ["B", "C", "A"]
        );
        assert_eq!(
            strs("Patient.telecom.where(system='email').value", &p),
            ["e"]
        );
        assert_eq!(
            strs(
                "Patient.deceased.exists() and Patient.deceased != false",
                &p
            ),
            ["true"]
        );
        assert_eq!(strs("(Patient.deceased as dateTime)", &p), ["2020-01-01"]);
        assert!(strs("(Patient.deceased as boolean)", &p).is_empty());
        assert_eq!(
            strs(
                "Patient.link.other.where(resolve() is Patient).reference",
                &p
            ),
            ["Patient/3"]
        );
        assert_eq!(strs("Patient.telecom[1].system", &p), ["email"]);
        assert!(strs("Observation.status", &p).is_empty());
        let q = json!({"resourceType": "Patient", "deceasedBoolean": false});
        assert_eq!(
            strs(
                "Patient.deceased.exists() and Patient.deceased != false",
                &q
            ),
            ["false"]
        );
        let o = json!({"resourceType": "Observation", "valueQuantity": {"value": 5.4}});
        assert_eq!(strs("Observation.value.as(Quantity).value", &o), ["5.4"]);
        assert_eq!(
            strs("Observation.value.ofType(Quantity).value", &o),
            ["5.4"]
        );
    }
}
