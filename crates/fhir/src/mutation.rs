//! A generated mutation corpus: from a valid resource, copies that each break one rule.
//!
//! Used by this crate's tests and by the server's HTTP tests: every mutant must be refused,
//! with an issue whose expression equals (or starts with) [`Mutant::expected_expression`].
//! The walk follows the R4 definitions (so it finds required elements, bound codes, choice
//! elements, dates and Identifiers anywhere, nested resources included) and the output
//! depends only on the input.

use crate::defs::{Defs, Elem, NodeId, Prim, Ty, defs};
use crate::nhs_number;
use serde_json::{Value, json};

/// One broken copy of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutant {
    /// Which rule is broken: `wrong-type`, `missing-required`, `bad-code`,
    /// `two-choice-values`, `bad-date`, `unknown-element`, `bad-nhs-number`.
    pub rule: &'static str,
    pub description: String,
    pub resource: Value,
    /// Where the validator must report the problem.
    pub expected_expression: String,
}

/// At most this many mutants per rule and kind of site, to keep the corpus small.
const PER_RULE: usize = 3;

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// An element value found in the resource.
struct Site {
    expr: String,
    ptr: Vec<Seg>,
    elem: &'static Elem,
    ty: Ty,
    /// The JSON property name (`valueQuantity`, `given`).
    key: String,
}

/// An object of a known shape found in the resource.
struct Obj {
    expr: String,
    ptr: Vec<Seg>,
    node: NodeId,
    resource_root: bool,
}

#[derive(Default)]
struct Found {
    sites: Vec<Site>,
    objects: Vec<Obj>,
}

fn walk_resource(d: &'static Defs, v: &Value, expr: &str, ptr: &[Seg], f: &mut Found) {
    let Some(Value::String(rt)) = v.get("resourceType") else {
        return;
    };
    let Some(node) = d.resource(rt) else { return };
    let expr = if expr.is_empty() {
        rt.clone()
    } else {
        expr.to_owned()
    };
    walk_object(d, v, node, &expr, ptr, true, f);
}

fn walk_object(
    d: &'static Defs,
    v: &Value,
    node: NodeId,
    expr: &str,
    ptr: &[Seg],
    root: bool,
    f: &mut Found,
) {
    let Value::Object(map) = v else { return };
    f.objects.push(Obj {
        expr: expr.to_owned(),
        ptr: ptr.to_vec(),
        node,
        resource_root: root,
    });
    let n = d.node(node);
    for (key, value) in map {
        let Some((idx, ty)) = n.prop(key) else {
            continue;
        };
        let elem = &n.elems[idx as usize];
        let mut kptr = ptr.to_vec();
        kptr.push(Seg::Key(key.clone()));
        let kexpr = format!("{expr}.{key}");
        let items: Vec<(String, Vec<Seg>, &Value)> = match value {
            Value::Array(a) if elem.array => a
                .iter()
                .enumerate()
                .filter(|(_, x)| !x.is_null())
                .map(|(i, x)| {
                    let mut p = kptr.clone();
                    p.push(Seg::Index(i));
                    (format!("{kexpr}[{i}]"), p, x)
                })
                .collect(),
            _ => vec![(kexpr, kptr, value)],
        };
        for (e, p, x) in items {
            f.sites.push(Site {
                expr: e.clone(),
                ptr: p.clone(),
                elem,
                ty,
                key: key.clone(),
            });
            match ty {
                Ty::Complex(c) => walk_object(d, x, c, &e, &p, false, f),
                Ty::Resource => walk_resource(d, x, &e, &p, f),
                Ty::Prim(_) => {}
            }
        }
    }
}

fn get_mut<'v>(root: &'v mut Value, ptr: &[Seg]) -> &'v mut Value {
    let mut cur = root;
    for s in ptr {
        cur = match s {
            Seg::Key(k) => &mut cur[k.as_str()],
            Seg::Index(i) => &mut cur[*i],
        };
    }
    cur
}

/// A valid sample value of primitive type `p`.
fn sample(p: Prim) -> Value {
    match p {
        Prim::Boolean => json!(true),
        Prim::Integer | Prim::UnsignedInt | Prim::PositiveInt | Prim::Decimal => json!(1),
        Prim::Date | Prim::DateTime => json!("2020-01-01"),
        Prim::Instant => json!("2020-01-01T00:00:00Z"),
        Prim::Time => json!("10:00:00"),
        Prim::Oid => json!("urn:oid:1.2.3"),
        Prim::Uuid => json!("urn:uuid:c757873d-ec9a-4326-a141-556f43239520"),
        Prim::Base64Binary => json!("AAAA"),
        Prim::Xhtml => json!("<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"),
        Prim::Uri | Prim::Url | Prim::Canonical => json!("http://example.org/x"),
        Prim::String | Prim::Markdown | Prim::Code | Prim::Id => json!("x"),
    }
}

/// Mutants of `resource` (a valid resource), each breaking one rule; deterministic.
pub fn mutants(resource: &Value) -> Vec<Mutant> {
    let d = defs();
    let mut f = Found::default();
    walk_resource(d, resource, "", &[], &mut f);
    let Some(root) = f.objects.first() else {
        return Vec::new();
    };
    let root_expr = root.expr.clone();
    let mut out = Vec::new();
    let mut push = |rule: &'static str,
                    description: String,
                    ptr: &[Seg],
                    change: &dyn Fn(&mut Value),
                    expected: String| {
        let mut r = resource.clone();
        change(get_mut(&mut r, ptr));
        out.push(Mutant {
            rule,
            description,
            resource: r,
            expected_expression: expected,
        });
    };

    // wrong-type: a string where an object is expected, in and out of arrays; a string
    // where a boolean or a number is expected; a number where a string is expected.
    let mut kinds_done = [0usize; 5];
    for s in &f.sites {
        let kind = match s.ty {
            Ty::Complex(_) if s.elem.array => 0,
            Ty::Complex(_) => 1,
            Ty::Prim(Prim::Boolean) => 2,
            Ty::Prim(Prim::Integer | Prim::Decimal | Prim::PositiveInt | Prim::UnsignedInt) => 3,
            Ty::Prim(_) => 4,
            Ty::Resource => continue,
        };
        if kinds_done[kind] >= 1 {
            continue;
        }
        kinds_done[kind] += 1;
        let (desc, new): (String, Value) = match kind {
            0 | 1 => (
                format!("{}: an object replaced by a string", s.expr),
                json!("not an object"),
            ),
            2 => (
                format!("{}: a boolean given as a string", s.expr),
                json!("true"),
            ),
            3 => {
                let text = get_num_text(resource, &s.ptr);
                (
                    format!("{}: a number given as a string", s.expr),
                    json!(text),
                )
            }
            _ => (
                format!("{}: a string replaced by a number", s.expr),
                json!(42),
            ),
        };
        push(
            "wrong-type",
            desc,
            &s.ptr,
            &move |v: &mut Value| *v = new.clone(),
            s.expr.clone(),
        );
    }

    // missing-required: remove a present element with min ≥ 1 (and its `_` twin).
    let mut n = 0;
    'objects: for o in &f.objects {
        let node = d.node(o.node);
        let Some(Value::Object(map)) = get_ref(resource, &o.ptr) else {
            continue;
        };
        for &r in &node.required {
            if n >= PER_RULE {
                break 'objects;
            }
            let elem = &node.elems[r as usize];
            let keys: Vec<String> = elem
                .types
                .iter()
                .flat_map(|t| [t.name.to_string(), t.underscore.to_string()])
                .filter(|k| map.contains_key(k))
                .collect();
            if keys.is_empty() {
                continue;
            }
            n += 1;
            let expected = format!("{}.{}", o.expr, elem.display);
            push(
                "missing-required",
                format!("{expected}: required element removed"),
                &o.ptr,
                &move |v: &mut Value| {
                    if let Value::Object(m) = v {
                        for k in &keys {
                            m.shift_remove(k);
                        }
                    }
                },
                expected,
            );
        }
    }

    // bad-code: a code, or a Coding in the value set's system, under a required binding.
    let mut n = 0;
    for s in &f.sites {
        if n >= PER_RULE {
            break;
        }
        let Some(b) = s.elem.binding else { continue };
        match s.ty {
            Ty::Prim(Prim::Code) => {
                n += 1;
                push(
                    "bad-code",
                    format!("{}: a code outside the required value set", s.expr),
                    &s.ptr,
                    &|v: &mut Value| *v = json!("not-a-real-code"),
                    s.expr.clone(),
                );
            }
            Ty::Complex(c) if c == d.coding || c == d.codeable_concept => {
                let vs = &d.value_sets[b as usize];
                let Some(target) = get_ref(resource, &s.ptr) else {
                    continue;
                };
                let (ptr, expr) = if c == d.coding {
                    (s.ptr.clone(), s.expr.clone())
                } else {
                    let Some(Value::Array(codings)) = target.get("coding") else {
                        continue;
                    };
                    let Some(i) = codings.iter().position(|c| {
                        c.get("system")
                            .and_then(Value::as_str)
                            .is_some_and(|sys| vs.by_system.contains_key(sys))
                    }) else {
                        continue;
                    };
                    let mut p = s.ptr.clone();
                    p.push(Seg::Key("coding".into()));
                    p.push(Seg::Index(i));
                    (p, format!("{}.coding[{i}]", s.expr))
                };
                let coding = get_ref(resource, &ptr);
                let in_vs = coding
                    .and_then(|c| c.get("system"))
                    .and_then(Value::as_str)
                    .is_some_and(|sys| vs.by_system.contains_key(sys));
                if !in_vs {
                    continue;
                }
                n += 1;
                push(
                    "bad-code",
                    format!("{expr}.code: a code outside the required value set"),
                    &ptr,
                    &|v: &mut Value| v["code"] = json!("not-a-real-code"),
                    format!("{expr}.code"),
                );
            }
            _ => {}
        }
    }

    // two-choice-values: a second type beside a choice value.
    let mut n = 0;
    for s in &f.sites {
        if n >= PER_RULE {
            break;
        }
        if !s.elem.choice {
            continue;
        }
        let Some(alt) = s
            .elem
            .types
            .iter()
            .find(|t| *t.name != *s.key && matches!(t.ty, Ty::Prim(_)))
        else {
            continue;
        };
        let Ty::Prim(p) = alt.ty else { continue };
        n += 1;
        let parent = &s.ptr[..s.ptr.len() - 1];
        let parent_expr = s.expr[..s.expr.len() - s.key.len() - 1].to_owned();
        let (key, alt_name, value) = (s.key.clone(), alt.name.to_string(), sample(p));
        push(
            "two-choice-values",
            format!("{parent_expr}: '{alt_name}' added beside '{key}'"),
            parent,
            &move |v: &mut Value| {
                if let Value::Object(m) = v {
                    let at = m.keys().position(|k| *k == key).map_or(m.len(), |i| i + 1);
                    m.shift_insert(at, alt_name.clone(), value.clone());
                }
            },
            format!("{parent_expr}.{}", s.elem.display),
        );
    }

    // bad-date: an impossible month and day.
    let mut n = 0;
    for s in &f.sites {
        if n < PER_RULE && matches!(s.ty, Ty::Prim(Prim::Date | Prim::DateTime | Prim::Instant)) {
            n += 1;
            push(
                "bad-date",
                format!("{}: the date 2019-13-45", s.expr),
                &s.ptr,
                &|v: &mut Value| *v = json!("2019-13-45"),
                s.expr.clone(),
            );
        }
    }
    let is_patient = resource.get("resourceType").and_then(Value::as_str) == Some("Patient");
    if n == 0 && is_patient {
        push(
            "bad-date",
            "Patient.birthDate: the date 2019-13-45 added".into(),
            &[],
            &|v: &mut Value| v["birthDate"] = json!("2019-13-45"),
            "Patient.birthDate".into(),
        );
    }

    // unknown-element: at the root and in the first non-resource object.
    push(
        "unknown-element",
        format!("{root_expr}.unknownElement added"),
        &[],
        &|v: &mut Value| v["unknownElement"] = json!("x"),
        format!("{root_expr}.unknownElement"),
    );
    if let Some(o) = f.objects.iter().find(|o| !o.resource_root) {
        push(
            "unknown-element",
            format!("{}.unknownElement added", o.expr),
            &o.ptr,
            &|v: &mut Value| v["unknownElement"] = json!("x"),
            format!("{}.unknownElement", o.expr),
        );
    }

    // bad-nhs-number: the last digit of every NHS Number changed; a Patient without one gets one.
    let mut n = 0;
    for s in &f.sites {
        if s.ty != Ty::Complex(d.identifier) {
            continue;
        }
        let Some(ident) = get_ref(resource, &s.ptr) else {
            continue;
        };
        if ident.get("system").and_then(Value::as_str) != Some(nhs_number::SYSTEM) {
            continue;
        }
        let Some(value) = ident.get("value").and_then(Value::as_str) else {
            continue;
        };
        let mut bytes = value.as_bytes().to_vec();
        if let Some(last) = bytes.last_mut().filter(|b| b.is_ascii_digit()) {
            *last = b'0' + (*last - b'0' + 1) % 10;
        }
        let broken = String::from_utf8(bytes).unwrap_or_default();
        n += 1;
        push(
            "bad-nhs-number",
            format!(
                "{}.value: NHS Number {broken} with a wrong check digit",
                s.expr
            ),
            &s.ptr,
            &move |v: &mut Value| v["value"] = json!(broken.clone()),
            format!("{}.value", s.expr),
        );
    }
    if n == 0 && is_patient {
        let index = match resource.get("identifier") {
            Some(Value::Array(a)) => a.len(),
            _ => 0,
        };
        push(
            "bad-nhs-number",
            "Patient.identifier: an NHS Number with a wrong check digit added".into(),
            &[],
            &|v: &mut Value| {
                let ident = json!({"system": nhs_number::SYSTEM, "value": "9434765918"});
                match v.get_mut("identifier") {
                    Some(Value::Array(a)) => a.push(ident),
                    _ => v["identifier"] = json!([ident]),
                }
            },
            format!("Patient.identifier[{index}].value"),
        );
    }
    out
}

fn get_ref<'v>(root: &'v Value, ptr: &[Seg]) -> Option<&'v Value> {
    let mut cur = root;
    for s in ptr {
        cur = match s {
            Seg::Key(k) => cur.get(k.as_str())?,
            Seg::Index(i) => cur.get(*i)?,
        };
    }
    Some(cur)
}

fn get_num_text(root: &Value, ptr: &[Seg]) -> String {
    match get_ref(root, ptr) {
        Some(Value::Number(n)) => n.to_string(),
        _ => "1".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_mutants_are_refused_where_expected() {
        let p = json!({"resourceType": "Patient", "active": true, "gender": "male",
            "name": [{"family": "F", "given": ["G"]}], "link": [{"other": {"reference": "Patient/2"}, "type": "seealso"}],
            "multipleBirthInteger": 2});
        assert!(crate::validate(&p).is_empty());
        let ms = mutants(&p);
        let rules: std::collections::BTreeSet<&str> = ms.iter().map(|m| m.rule).collect();
        assert_eq!(rules.len(), 7, "{rules:?}");
        for m in &ms {
            assert_ne!(m.resource, p, "{} changed nothing", m.description);
            let issues = crate::validate(&m.resource);
            assert!(
                issues
                    .iter()
                    .any(|i| i.expression.starts_with(&m.expected_expression)),
                "{}: {} not reported at {}: {issues:#?}",
                m.rule,
                m.description,
                m.expected_expression
            );
        }
        assert_eq!(ms, mutants(&p), "deterministic");
    }
}
