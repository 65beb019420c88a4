//! Test support: builds, for one search parameter of one type, two valid resources that
//! differ in that parameter's value (A and B) and the search value that must find A and not
//! B. Everything is derived from the parameter's definition (its FHIRPath expression, type
//! and components) and the R4 element definitions (`crates/fhir/data/r4-definitions.json`:
//! the datatype, cardinality, required children and required bindings of each element).
//!
//! A resource starts as the type's minimal valid form (every element with min ≥ 1 filled,
//! recursively, with a third value C), and the parameter's path is then written with A's or
//! B's value: intermediate elements are created (with their own required children), the last
//! element replaced. Choice elements take the type named by `as T` / `.as(T)`, else the first
//! type the parameter's kind can index. `.where(resolve() is X)` makes a reference to `X/…`,
//! `.where(field='v')` sets `field`, `entry[0].resource` (an inline resource) becomes a
//! minimal resource of the parameter's target type with an id.
#![allow(dead_code)]

use std::collections::HashMap;

use fhir::search::{ParamType, SearchParam};
use serde::Deserialize;
use serde_json::{Map, Value, json};

const WORDS: [&str; 3] = ["Ashford", "Bexley", "Crowther"];
const DATES: [&str; 3] = ["2001-02-03", "2005-06-07", "2009-10-11"];
const INTS: [i64; 3] = [11, 42, 73];
const DECIMALS: [f64; 3] = [11.5, 42.25, 73.5];
const CODE_SYSTEM: &str = "http://example.org/codes";
const ID_SYSTEM: &str = "http://example.org/ids";
const UCUM: &str = "http://unitsofmeasure.org";

#[derive(Deserialize)]
struct RawFile {
    types: HashMap<String, TypeDef>,
    #[serde(rename = "valueSets")]
    value_sets: Vec<RawValueSet>,
}

#[derive(Deserialize)]
struct TypeDef {
    kind: String,
    elements: Vec<El>,
}

#[derive(Deserialize, Clone)]
struct El {
    p: String,
    n: u32,
    x: String,
    #[serde(default)]
    t: Vec<String>,
    r: Option<String>,
    #[serde(default)]
    tp: Vec<String>,
    b: Option<usize>,
}

impl El {
    fn array(&self) -> bool {
        self.x != "1" && self.x != "0"
    }
    fn name(&self) -> &str {
        let last = self.p.rsplit('.').next().unwrap_or(&self.p);
        last.trim_end_matches("[x]")
    }
    fn choice(&self) -> bool {
        self.p.ends_with("[x]")
    }
}

#[derive(Deserialize)]
struct RawValueSet {
    codes: HashMap<String, Vec<String>>,
}

/// A place elements live: a resource or datatype (`prefix` empty) or a backbone element
/// inside one (`prefix` = `contact.`).
#[derive(Clone, Debug)]
struct Node {
    ty: String,
    prefix: String,
}

/// One step of a path: an element name with what the expression says about it.
#[derive(Clone, Debug, Default)]
struct Seg {
    name: String,
    as_type: Option<String>,
    resolve_is: Option<String>,
    where_eq: Option<(String, String)>,
}

/// A parsed expression branch: the steps below the resource (empty: the resource itself).
#[derive(Clone, Debug)]
struct Branch {
    segs: Vec<Seg>,
    /// `X.exists() and X != false`: a boolean-valued expression over the choice X.
    boolean_test: bool,
}

/// What to write at the end of a path: a value of variant `k` for a parameter of `kind`
/// (`boolean_test`: the expression tests the element, see [`Branch`]; `targets`: the
/// parameter's reference targets).
#[derive(Clone, Copy)]
struct Want<'t> {
    kind: ParamType,
    k: usize,
    boolean_test: bool,
    targets: &'t [String],
}

/// What the generator made for one parameter.
#[derive(Debug, Clone)]
pub struct Case {
    pub resource_type: String,
    pub param: String,
    pub a: Value,
    pub b: Value,
    /// More resources that must not be found (for composites: each component differing).
    pub others: Vec<Value>,
    /// The search value that must find A and not B.
    pub value: String,
}

pub struct Generator {
    types: HashMap<String, TypeDef>,
    value_sets: Vec<Vec<String>>,
}

impl Default for Generator {
    fn default() -> Self {
        Self::new()
    }
}

impl Generator {
    pub fn new() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fhir/data/r4-definitions.json"
        );
        let raw: RawFile =
            serde_json::from_slice(&std::fs::read(path).expect("definitions")).expect("JSON");
        let value_sets = raw
            .value_sets
            .into_iter()
            .map(|vs| {
                let mut systems: Vec<(String, Vec<String>)> = vs.codes.into_iter().collect();
                systems.sort();
                systems.into_iter().flat_map(|(_, c)| c).collect()
            })
            .collect();
        Generator {
            types: raw.types,
            value_sets,
        }
    }

    fn children(&self, node: &Node) -> Vec<&El> {
        let Some(t) = self.types.get(&node.ty) else {
            return Vec::new();
        };
        t.elements
            .iter()
            .filter(|e| {
                e.p.strip_prefix(node.prefix.as_str())
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains('.'))
            })
            .collect()
    }

    fn elem(&self, node: &Node, name: &str) -> Option<El> {
        self.children(node)
            .into_iter()
            .find(|e| e.name() == name)
            .cloned()
    }

    /// The node an element's object value has, given the chosen type.
    fn node_of(&self, node: &Node, el: &El, ty: &str) -> Option<Node> {
        if let Some(r) = &el.r {
            let r = r.trim_start_matches('#');
            let (t, p) = r.split_once('.')?;
            return Some(Node {
                ty: t.to_owned(),
                prefix: format!("{p}."),
            });
        }
        let own = format!("{}.", el.p);
        if self.types[&node.ty]
            .elements
            .iter()
            .any(|e| e.p.starts_with(&own))
        {
            return Some(Node {
                ty: node.ty.clone(),
                prefix: own,
            });
        }
        match self.types.get(ty) {
            Some(t) if t.kind != "primitive-type" && t.kind != "resource" => Some(Node {
                ty: ty.to_owned(),
                prefix: String::new(),
            }),
            _ => None,
        }
    }

    /// An object with every required child of `node` filled with value C.
    fn required(&self, node: &Node, skip: Option<&str>) -> Map<String, Value> {
        let mut m = Map::new();
        for el in self.children(node) {
            if el.n == 0 || el.x == "0" || Some(el.name()) == skip {
                continue;
            }
            let ty =
                el.t.first()
                    .map(String::as_str)
                    .unwrap_or("BackboneElement");
            let (prop, v) = self.value_of(node, el, ty, 2, None);
            m.insert(prop, if el.array() { json!([v]) } else { v });
        }
        m
    }

    /// A minimal valid resource of `ty`.
    pub fn minimal(&self, ty: &str) -> Value {
        let mut m = self.required(
            &Node {
                ty: ty.to_owned(),
                prefix: String::new(),
            },
            None,
        );
        m.insert("resourceType".into(), json!(ty));
        Value::Object(m)
    }

    /// The JSON property and value (variant `k`) of `el` with type `ty`; `target` is the
    /// resource type a reference must point at.
    fn value_of(
        &self,
        node: &Node,
        el: &El,
        ty: &str,
        k: usize,
        target: Option<&str>,
    ) -> (String, Value) {
        let prop = if el.choice() {
            let mut c = ty.chars();
            let cap = c
                .next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str());
            format!("{}{}", el.name(), cap.unwrap_or_default())
        } else {
            el.name().to_owned()
        };
        let w = WORDS[k];
        let lw = w.to_lowercase();
        let d = DATES[k];
        let q =
            |code: &str| json!({"value": DECIMALS[k], "unit": code, "system": UCUM, "code": code});
        let target = target
            .map(str::to_owned)
            .unwrap_or_else(|| self.reference_target(el));
        let v = match ty {
            "code" => match el.b {
                Some(b) => {
                    let codes = &self.value_sets[b];
                    json!(codes[k % codes.len()])
                }
                None => json!(format!("c-{lw}")),
            },
            "string" | "markdown" => json!(w),
            "id" => json!(lw),
            "uri" | "url" => json!(format!("http://example.org/{lw}")),
            "canonical" => json!(format!("http://example.org/fhir/{target}/{lw}")),
            "oid" => json!(format!("urn:oid:1.2.{}", k + 1)),
            "uuid" => json!(format!("urn:uuid:00000000-0000-4000-8000-00000000000{k}")),
            "boolean" => json!(k == 0),
            "date" => json!(d),
            "dateTime" => json!(d),
            "instant" => json!(format!("{d}T10:00:00Z")),
            "time" => json!("10:00:00"),
            "integer" | "positiveInt" | "unsignedInt" => json!(INTS[k]),
            "decimal" => json!(DECIMALS[k]),
            "base64Binary" => json!("AAAA"),
            "Coding" => json!({"system": CODE_SYSTEM, "code": format!("c-{lw}"), "display": w}),
            "CodeableConcept" => {
                json!({"coding": [{"system": CODE_SYSTEM, "code": format!("c-{lw}"), "display": w}], "text": w})
            }
            "Identifier" => json!({"system": ID_SYSTEM, "value": format!("id-{lw}")}),
            "ContactPoint" => {
                json!({"system": "phone", "value": format!("tel-{lw}"), "use": "home"})
            }
            "HumanName" => json!({"family": w, "given": [w]}),
            "Address" => {
                json!({"use": "home", "line": [w], "city": w, "state": w, "postalCode": w, "country": w})
            }
            "Period" => json!({"start": d, "end": d}),
            "Timing" => json!({"event": [format!("{d}T10:00:00Z")]}),
            "Reference" => json!({"reference": format!("{target}/ref-{lw}")}),
            "Quantity" | "SimpleQuantity" => q("mg"),
            "Age" => q("a"),
            "Duration" => q("min"),
            "Distance" => q("m"),
            "Count" => json!({"value": INTS[k], "system": UCUM, "code": "1"}),
            "Money" => json!({"value": DECIMALS[k], "currency": "GBP"}),
            "Range" => {
                json!({"low": q("mg"), "high": {"value": 100.0 + DECIMALS[k], "unit": "mg", "system": UCUM, "code": "mg"}})
            }
            "Attachment" => json!({"contentType": "text/plain", "title": w}),
            "Annotation" => json!({"text": w}),
            "Resource" => {
                let mut r = self.minimal(&target);
                r["id"] = json!(format!("res-{lw}"));
                r
            }
            _ => match self.node_of(node, el, ty) {
                Some(n) => {
                    let m = self.required(&n, None);
                    if m.is_empty() {
                        // Nothing required: one element, so the object is not empty.
                        json!({"id": format!("e{k}")})
                    } else {
                        Value::Object(m)
                    }
                }
                None => json!(w),
            },
        };
        (prop, v)
    }

    /// The type a reference of `el` points at: a supported target, else the first, else
    /// Patient.
    fn reference_target(&self, el: &El) -> String {
        let tps: Vec<&String> = el.tp.iter().filter(|t| *t != "Resource").collect();
        tps.iter()
            .find(|t| fhir::types::is_supported(t))
            .or(tps.first())
            .map(|t| t.to_string())
            .unwrap_or_else(|| "Patient".into())
    }

    /// The search value of variant `k` of a value of type `ty` for a parameter of `kind`.
    fn search_value(&self, kind: ParamType, ty: &str, v: &Value, composite: bool) -> String {
        let s = |key: &str| v[key].as_str().unwrap_or("").to_owned();
        match ty {
            "Coding" => format!("{}|{}", s("system"), s("code")),
            "CodeableConcept" => format!(
                "{}|{}",
                v["coding"][0]["system"].as_str().unwrap_or(""),
                v["coding"][0]["code"].as_str().unwrap_or("")
            ),
            "Identifier" => format!("{}|{}", s("system"), s("value")),
            "ContactPoint" => s("value"),
            "HumanName" => s("family"),
            "Address" => s("city"),
            "Period" => s("start"),
            "Timing" => v["event"][0].as_str().unwrap_or("")[..10].to_owned(),
            "instant" => v.as_str().unwrap_or("")[..10].to_owned(),
            "Reference" => s("reference"),
            "Resource" => format!("{}/{}", s("resourceType"), s("id")),
            "Quantity" | "SimpleQuantity" | "Age" | "Duration" | "Distance" | "Count"
                if !composite =>
            {
                format!("{}|{}|{}", v["value"], s("system"), s("code"))
            }
            "Quantity" | "SimpleQuantity" | "Age" | "Duration" | "Distance" | "Count" | "Money" => {
                v["value"].to_string()
            }
            "Range" => v["low"]["value"].to_string(),
            _ => match v {
                Value::String(x) => x.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => {
                    let _ = kind;
                    other.to_string()
                }
            },
        }
    }

    /// The types a parameter of `kind` indexes, in the order a choice is resolved.
    fn preferred(kind: ParamType) -> &'static [&'static str] {
        match kind {
            ParamType::Date => &["dateTime", "date", "Period", "instant", "Timing"],
            ParamType::Quantity => &["Quantity", "Age", "Duration", "Money", "Range", "Count"],
            ParamType::String => &["string", "markdown", "HumanName", "Address"],
            ParamType::Token => &[
                "CodeableConcept",
                "Coding",
                "code",
                "boolean",
                "Identifier",
                "string",
                "uri",
            ],
            ParamType::Reference => &["Reference", "canonical", "uri"],
            ParamType::Number => &["integer", "decimal"],
            ParamType::Uri => &["uri", "url", "canonical"],
            _ => &[],
        }
    }

    /// Writes `segs` below `obj` (a value of `node`); the last element gets variant `k` for a
    /// parameter of `kind` (or, with `leaf`, that value). Returns the search value.
    fn write(
        &self,
        obj: &mut Map<String, Value>,
        node: &Node,
        segs: &[Seg],
        want: &Want<'_>,
    ) -> Result<String, String> {
        let Want {
            kind,
            k,
            boolean_test,
            targets,
        } = *want;
        let (seg, rest) = segs.split_first().ok_or("empty path")?;
        let el = self
            .elem(node, &seg.name)
            .ok_or_else(|| format!("no element {}{} in {}", node.prefix, seg.name, node.ty))?;
        let ty: String = if el.r.is_some() {
            "BackboneElement".into()
        } else if let Some(t) = &seg.as_type {
            el.t.iter()
                .find(|x| x.eq_ignore_ascii_case(t))
                .cloned()
                .ok_or_else(|| format!("{} has no type {t}", el.p))?
        } else if el.t.len() == 1 {
            el.t[0].clone()
        } else if boolean_test {
            "boolean".into()
        } else {
            let pref = Self::preferred(kind);
            pref.iter()
                .find(|p| el.t.iter().any(|t| t == *p))
                .map(|s| s.to_string())
                .ok_or_else(|| format!("{}: no type of {:?} for {kind:?}", el.p, el.t))?
        };
        if el.choice() {
            // One choice at a time: drop whatever type the base filled in.
            let name = el.name().to_owned();
            obj.retain(|key, _| {
                !(key.starts_with(&name)
                    && key[name.len()..].starts_with(|c: char| c.is_ascii_uppercase()))
            });
        }
        if rest.is_empty() {
            let target = seg.resolve_is.clone().or_else(|| {
                targets
                    .iter()
                    .find(|t| fhir::types::is_supported(t))
                    .or(targets.first())
                    .cloned()
            });
            let (prop, mut v) = self.value_of(node, &el, &ty, k, target.as_deref());
            if boolean_test {
                v = json!(k == 0);
            }
            if let Some((f, val)) = &seg.where_eq
                && let Value::Object(m) = &mut v
            {
                m.insert(f.clone(), json!(val));
            }
            let sv = if boolean_test {
                (k == 0).to_string()
            } else {
                self.search_value(kind, &ty, &v, false)
            };
            obj.insert(prop, if el.array() { json!([v]) } else { v });
            return Ok(sv);
        }
        let child = self
            .node_of(node, &el, &ty)
            .ok_or_else(|| format!("{} ({ty}) has no elements", el.p))?;
        let (prop, _) = self.value_of(node, &el, &ty, 2, None);
        let slot = obj.entry(prop).or_insert(Value::Null);
        if el.array() {
            if !slot.is_array() || slot.as_array().unwrap().is_empty() {
                *slot = json!([Value::Object(self.required(&child, None))]);
            }
            let item = &mut slot.as_array_mut().unwrap()[0];
            if !item.is_object() {
                *item = Value::Object(self.required(&child, None));
            }
            let m = item.as_object_mut().unwrap();
            self.write(m, &child, rest, want)
        } else {
            if !slot.is_object() {
                *slot = Value::Object(self.required(&child, None));
            }
            let m = slot.as_object_mut().unwrap();
            self.write(m, &child, rest, want)
        }
    }

    /// Resource `k` (0: A, 1: B) for `p`, with the search value for it. For a composite,
    /// `k2` is the second component's variant (the first's is `k`).
    fn variant(&self, p: &SearchParam, k: usize, k2: usize) -> Result<(Value, String), String> {
        let ty = &p.resource_type;
        let root = Node {
            ty: ty.clone(),
            prefix: String::new(),
        };
        let mut r = self.minimal(ty);
        let branch = first_branch(ty, &p.expression)
            .ok_or_else(|| format!("cannot construct a path for '{}'", p.expression))?;
        if p.kind == ParamType::Composite {
            // Both components inside the element the composite's expression selects.
            let (el_map, el_node) = self.descend(&mut r, &root, &branch.segs)?;
            let mut values = Vec::new();
            for (i, c) in p.components.iter().enumerate() {
                let cb = first_branch("", &c.expression)
                    .ok_or_else(|| format!("component '{}'", c.expression))?;
                let ki = if i == 0 { k } else { k2 };
                values.push(self.write_component(el_map, &el_node, &cb, c.kind, ki)?);
            }
            return Ok((r, values.join("$")));
        }
        let obj = r.as_object_mut().unwrap();
        let want = Want {
            kind: p.kind,
            k,
            boolean_test: branch.boolean_test,
            targets: &p.targets,
        };
        let sv = self.write(obj, &root, &branch.segs, &want)?;
        Ok((r, sv))
    }

    fn write_component(
        &self,
        m: &mut Map<String, Value>,
        node: &Node,
        b: &Branch,
        kind: ParamType,
        k: usize,
    ) -> Result<String, String> {
        let want = Want {
            kind,
            k,
            boolean_test: false,
            targets: &[],
        };
        let sv = self.write(m, node, &b.segs, &want)?;
        // Composite values: quantities by number only.
        Ok(match kind {
            ParamType::Quantity => sv.split('|').next().unwrap_or("").to_owned(),
            _ => sv,
        })
    }

    /// Walks (creating) the elements `segs` name below `v` and returns the last one's object.
    fn descend<'v>(
        &self,
        v: &'v mut Value,
        node: &Node,
        segs: &[Seg],
    ) -> Result<(&'v mut Map<String, Value>, Node), String> {
        let Some((seg, rest)) = segs.split_first() else {
            return Ok((v.as_object_mut().unwrap(), node.clone()));
        };
        let el = self
            .elem(node, &seg.name)
            .ok_or_else(|| format!("no element {} in {}", seg.name, node.ty))?;
        let ty =
            el.t.first()
                .cloned()
                .unwrap_or_else(|| "BackboneElement".into());
        let child = self
            .node_of(node, &el, &ty)
            .ok_or_else(|| format!("{} has no elements", el.p))?;
        let m = v.as_object_mut().unwrap();
        let slot = m
            .entry(el.name().to_owned())
            .or_insert_with(|| Value::Object(self.required(&child, None)));
        if el.array() {
            if !slot.is_array() {
                *slot = json!([Value::Object(self.required(&child, None))]);
            }
            let item = &mut slot.as_array_mut().unwrap()[0];
            self.descend(item, &child, rest)
        } else {
            self.descend(slot, &child, rest)
        }
    }

    /// The case for parameter `p`, or why it cannot be built.
    pub fn case(&self, p: &SearchParam) -> Result<Case, String> {
        let (a, value) = self.variant(p, 0, 0)?;
        // A composite's B shares A's first component, and its C A's second: each component
        // must count, and they must come from the same element.
        let (b, vb) = self.variant(p, 1, 1)?;
        let (b, others) = if p.kind == ParamType::Composite {
            let (b, _) = self.variant(p, 0, 1)?;
            let (c, _) = self.variant(p, 1, 0)?;
            (b, vec![c])
        } else {
            (b, Vec::new())
        };
        if value == vb {
            return Err(format!("A and B have the same search value {value}"));
        }
        Ok(Case {
            resource_type: p.resource_type.clone(),
            param: p.code.clone(),
            a,
            b,
            others,
            value,
        })
    }
}

/// Splits `s` on `sep` outside parentheses and quotes.
fn split_top(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut depth, mut quoted) = (0, false);
    for c in s.chars() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            _ => {}
        }
        if c == sep && depth == 0 && !quoted {
            out.push(String::new());
        } else {
            out.last_mut().unwrap().push(c);
        }
    }
    out
}

/// The first branch of `expr` that is a plain path (with `as`, `where` and `[0]`) from
/// `ty` (empty `ty`: a relative expression, as a composite's components are).
fn first_branch(ty: &str, expr: &str) -> Option<Branch> {
    for b in split_top(expr, '|') {
        if let Some(x) = parse_branch(ty, b.trim()) {
            return Some(x);
        }
    }
    None
}

fn parse_branch(ty: &str, s: &str) -> Option<Branch> {
    // `X.exists() and X != false`
    if let Some((left, _)) = s.split_once(".exists() and ") {
        let mut b = parse_branch(ty, left)?;
        b.boolean_test = true;
        return Some(b);
    }
    let (inner, tail) = if let Some(rest) = s.strip_prefix('(') {
        let close = rest.rfind(')')?;
        (&rest[..close], &rest[close + 1..])
    } else {
        (s, "")
    };
    let (path, as_type) = match inner.split_once(" as ") {
        Some((p, t)) => (p.trim(), Some(t.trim().to_owned())),
        None => (inner, None),
    };
    let mut tokens = split_top(path, '.');
    if !ty.is_empty() {
        if tokens.first().map(String::as_str) != Some(ty) {
            return None;
        }
        tokens.remove(0);
    }
    let mut segs: Vec<Seg> = Vec::new();
    for t in &tokens {
        parse_token(t, &mut segs)?;
    }
    if let Some(t) = as_type {
        segs.last_mut()?.as_type = Some(t);
    }
    for t in split_top(tail, '.').iter().filter(|t| !t.is_empty()) {
        parse_token(t, &mut segs)?;
    }
    Some(Branch {
        segs,
        boolean_test: false,
    })
}

fn parse_token(t: &str, segs: &mut Vec<Seg>) -> Option<()> {
    if let Some(x) = t.strip_prefix("as(").and_then(|x| x.strip_suffix(')')) {
        segs.last_mut()?.as_type = Some(x.to_owned());
    } else if let Some(x) = t.strip_prefix("where(").and_then(|x| x.strip_suffix(')')) {
        if let Some(target) = x.strip_prefix("resolve() is ") {
            segs.last_mut()?.resolve_is = Some(target.trim().to_owned());
        } else if let Some((f, v)) = x.split_once('=') {
            segs.last_mut()?.where_eq =
                Some((f.trim().to_owned(), v.trim().trim_matches('\'').to_owned()));
        } else {
            return None;
        }
    } else if let Some(name) = t.strip_suffix("[0]") {
        segs.push(Seg {
            name: name.to_owned(),
            ..Default::default()
        });
    } else if t.chars().all(|c| c.is_ascii_alphanumeric()) && !t.is_empty() {
        segs.push(Seg {
            name: t.to_owned(),
            ..Default::default()
        });
    } else {
        return None;
    }
    Some(())
}
