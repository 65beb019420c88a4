//! Validation of a resource against the R4 structure definitions.
//!
//! One walk over the JSON checks, for every element: that its name is defined, its JSON
//! shape (object, array, primitive), primitive formats, cardinality, choice types, primitive
//! extensions (`_birthDate`), required bindings, reference formats, nested resources and
//! NHS Numbers. FHIRPath invariants are not evaluated.
//!
//! # Expressions
//!
//! Each issue names its element with a FHIRPath-style expression: `Patient.name[0].given[1]`,
//! `Bundle.entry[2].resource.subject.reference` (nested resources continue the outer path).
//! Choice types follow one convention:
//! - an issue about the choice as a whole (two values given, a required choice missing) is
//!   reported at the choice element as the definitions name it: `Observation.value[x]`;
//! - an issue with a value that is present is reported at its JSON property:
//!   `Observation.valueQuantity.value`, `Observation.effectiveDateTime`.
//!
//! Extensions on primitives (`_given`) are reported at the primitive they extend, as
//! FHIRPath sees them: `Patient.name[0].given[1].extension[0].url`.
//!
//! # Issue codes
//!
//! All issues are errors: `invalid` (resourceType missing, not a string or not a concrete R4
//! resource type), `structure` (unknown element, wrong JSON shape, empty or misaligned
//! arrays, misplaced null, two values for one choice), `required` (an element with min ≥ 1
//! missing), `value` (a primitive's format, a reference's form or target type, an NHS
//! Number) and `code-invalid` (a code outside a required binding's value set; Codings are
//! checked only when their system is one of the value set's).
//!
//! The walk builds the expression in one reused buffer, so a valid resource costs no
//! allocation beyond that buffer and the empty issue list.

pub(crate) mod primitives;
mod reference;

use crate::defs::{Defs, Elem, NodeId, Prim, Ty, defs};
use crate::nhs_number::{self, NhsNumber, NhsNumberError};
use crate::{Issue, IssueType};
use serde_json::{Map, Value};

/// Checks `resource` (a parsed JSON body) against the R4 definitions; an empty list means valid.
pub fn validate(resource: &Value) -> Vec<Issue> {
    let mut w = Walker {
        d: defs(),
        path: String::with_capacity(128),
        issues: Vec::new(),
        local_ids: Vec::new(),
        frame: 0,
    };
    w.resource(resource, false);
    w.issues
}

struct Walker<'a> {
    d: &'static Defs,
    path: String,
    issues: Vec<Issue>,
    /// Ids of the contained resources of the resources being walked; `frame` is where the
    /// innermost container's ids start.
    local_ids: Vec<&'a str>,
    frame: usize,
}

impl<'a> Walker<'a> {
    fn error(&mut self, code: IssueType, msg: impl Into<String>) {
        self.issues.push(Issue::error(code, self.path.clone(), msg));
    }

    fn push_key(&mut self, key: &str) -> usize {
        let mark = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(key);
        mark
    }

    fn push_index(&mut self, i: usize) -> usize {
        use std::fmt::Write;
        let mark = self.path.len();
        let _ = write!(self.path, "[{i}]");
        mark
    }

    fn pop(&mut self, mark: usize) {
        self.path.truncate(mark);
    }

    /// A whole resource, at the current path (empty at the top).
    fn resource(&mut self, v: &'a Value, contained: bool) {
        let Value::Object(map) = v else {
            self.error(
                IssueType::Structure,
                format!(
                    "expected a resource (a JSON object), found {}",
                    primitives::describe(v)
                ),
            );
            return;
        };
        let rt = match map.get("resourceType") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                let m = self.push_key("resourceType");
                self.error(
                    IssueType::Invalid,
                    format!(
                        "resourceType must be a string, found {}",
                        primitives::describe(other)
                    ),
                );
                self.pop(m);
                return;
            }
            None => {
                self.error(IssueType::Required, "the resource has no resourceType");
                return;
            }
        };
        let Some(node) = self.d.resource(rt) else {
            let msg = if self.d.types.contains_key(rt) {
                format!("'{rt}' is not a concrete FHIR R4 resource type")
            } else {
                format!("unknown resource type '{rt}': not a FHIR R4 resource type")
            };
            self.error(IssueType::Invalid, msg);
            return;
        };
        let top = self.path.is_empty();
        if top {
            self.path.push_str(rt);
        }
        // A contained resource resolves `#id` against its container's contained ids.
        let saved = (self.frame, self.local_ids.len());
        if !contained {
            self.frame = self.local_ids.len();
            if let Some(Value::Array(list)) = map.get("contained") {
                for r in list {
                    if let Some(Value::String(id)) = r.get("id") {
                        self.local_ids.push(id);
                    }
                }
            }
        }
        self.object(map, node, true);
        if !contained {
            self.local_ids.truncate(saved.1);
            self.frame = saved.0;
        }
        if top {
            self.path.clear();
        }
    }

    /// The properties of a JSON object of the shape `node_id`.
    fn object(&mut self, map: &'a Map<String, Value>, node_id: NodeId, resource_root: bool) {
        let node = self.d.node(node_id);
        let mut present: u128 = 0;
        let mut valued: u128 = 0;
        for (key, value) in map {
            if let Some(base) = key.strip_prefix('_') {
                match node.prop(base) {
                    Some((idx, Ty::Prim(_))) => {
                        present |= 1 << idx;
                        if !map.contains_key(base) {
                            let elem = &node.elems[idx as usize];
                            let m = self.push_key(base);
                            self.primitive_extensions_alone(elem, base, value);
                            self.pop(m);
                        }
                    }
                    _ => {
                        let m = self.push_key(key);
                        self.error(IssueType::Structure, format!("unknown element '{key}'"));
                        self.pop(m);
                    }
                }
                continue;
            }
            if resource_root && key == "resourceType" {
                continue;
            }
            let Some((idx, ty)) = node.prop(key) else {
                let m = self.push_key(key);
                let msg = unknown_message(node, key);
                self.error(IssueType::Structure, msg);
                self.pop(m);
                continue;
            };
            let bit = 1u128 << idx;
            let elem = &node.elems[idx as usize];
            if elem.choice && valued & bit != 0 {
                let first = map
                    .keys()
                    .find(|k| k.as_str() != key && node.prop(k).is_some_and(|(i, _)| i == idx))
                    .map_or("", String::as_str);
                let m = self.push_key(&elem.display);
                self.error(
                    IssueType::Structure,
                    format!(
                        "{} is a choice: only one value is allowed, found both '{first}' and '{key}'",
                        elem.display
                    ),
                );
                self.pop(m);
            }
            present |= bit;
            valued |= bit;
            let ext = if matches!(ty, Ty::Prim(_)) {
                underscore_of(elem, key).and_then(|u| map.get(u))
            } else {
                None
            };
            let m = self.push_key(key);
            self.element(elem, ty, value, ext);
            self.pop(m);
        }
        for &r in &node.required {
            if present & (1u128 << r) == 0 {
                let elem = &node.elems[r as usize];
                let m = self.push_key(&elem.display);
                let msg = if elem.choice {
                    format!(
                        "missing required element '{}' (one of its types must be given)",
                        elem.display
                    )
                } else {
                    format!("missing required element '{}'", elem.display)
                };
                self.error(IssueType::Required, msg);
                self.pop(m);
            }
        }
    }

    /// One property's value (`value`), at the current path (the property's name); `ext` is
    /// the matching `_name` value for primitives.
    fn element(&mut self, elem: &Elem, ty: Ty, value: &'a Value, ext: Option<&'a Value>) {
        if elem.max == Some(0) {
            self.error(
                IssueType::Structure,
                format!("element '{}' is not allowed here", elem.display),
            );
            return;
        }
        if !elem.array {
            match value {
                Value::Array(_) => self.error(
                    IssueType::Structure,
                    format!(
                        "element '{}' has at most one value: it must not be an array",
                        elem.display
                    ),
                ),
                Value::Null => self.error(IssueType::Structure, "null is not allowed here"),
                _ => self.item(elem, ty, value),
            }
            if let Some(x) = ext {
                self.extension_object(x);
            }
            return;
        }
        let Value::Array(items) = value else {
            self.error(
                IssueType::Structure,
                format!(
                    "element '{}' repeats: it must be an array, found {}",
                    elem.display,
                    primitives::describe(value)
                ),
            );
            return;
        };
        if items.is_empty() {
            self.error(IssueType::Structure, "arrays must not be empty");
        }
        if let Some(max) = elem.max
            && items.len() > max as usize
        {
            self.error(
                IssueType::Structure,
                format!(
                    "element '{}' allows at most {max} values, found {}",
                    elem.display,
                    items.len()
                ),
            );
        }
        let ext_items = match ext {
            None => None,
            Some(Value::Array(e)) => {
                if e.len() != items.len() {
                    self.error(
                        IssueType::Structure,
                        format!(
                            "the primitive extension array has {} entries but the values array has {}: they must align",
                            e.len(),
                            items.len()
                        ),
                    );
                }
                Some(e)
            }
            Some(_) => {
                self.error(
                    IssueType::Structure,
                    "the primitive extension of a repeating element must be an array",
                );
                None
            }
        };
        for (i, item) in items.iter().enumerate() {
            let m = self.push_index(i);
            let x = ext_items.and_then(|e| e.get(i)).filter(|v| !v.is_null());
            if item.is_null() {
                if x.is_none() {
                    self.error(
                        IssueType::Structure,
                        "null is only allowed in an array when the matching primitive extension entry is present",
                    );
                }
            } else {
                self.item(elem, ty, item);
            }
            if let Some(x) = x {
                self.extension_object(x);
            }
            self.pop(m);
        }
    }

    /// `_name` given without `name`: extensions only, no value.
    fn primitive_extensions_alone(&mut self, elem: &Elem, base: &str, value: &'a Value) {
        if elem.array {
            let Value::Array(items) = value else {
                self.error(
                    IssueType::Structure,
                    format!("'_{base}' must be an array: the element repeats"),
                );
                return;
            };
            if items.is_empty() {
                self.error(IssueType::Structure, "arrays must not be empty");
            }
            for (i, x) in items.iter().enumerate() {
                let m = self.push_index(i);
                if x.is_null() {
                    self.error(
                        IssueType::Structure,
                        "an entry with neither a value nor extensions",
                    );
                } else {
                    self.extension_object(x);
                }
                self.pop(m);
            }
        } else {
            self.extension_object(value);
        }
    }

    /// The `{id, extension}` object of a primitive, validated as an Element.
    fn extension_object(&mut self, x: &'a Value) {
        match x {
            Value::Object(m) if !m.is_empty() => self.object(m, self.d.element, false),
            Value::Object(_) => self.error(IssueType::Structure, "a primitive extension object must not be empty"),
            other => self.error(
                IssueType::Structure,
                format!(
                    "a primitive's extension (_element) must be an object with id/extension, found {}",
                    primitives::describe(other)
                ),
            ),
        }
    }

    /// One value (not an array) of type `ty`.
    fn item(&mut self, elem: &Elem, ty: Ty, v: &'a Value) {
        match ty {
            Ty::Prim(p) => {
                if let Err(msg) = primitives::check(p, v) {
                    let code = if primitives::json_kind_matches(p, v) {
                        IssueType::Value
                    } else {
                        IssueType::Structure
                    };
                    self.error(code, msg);
                } else if p == Prim::Code
                    && let (Some(b), Value::String(code)) = (elem.binding, v)
                {
                    let vs = &self.d.value_sets[b as usize];
                    if !vs.all.contains(code.as_str()) {
                        self.error(
                            IssueType::CodeInvalid,
                            format!(
                                "'{code}' is not a code of the required value set {}",
                                vs.url
                            ),
                        );
                    }
                }
            }
            Ty::Complex(n) => {
                let Value::Object(map) = v else {
                    let what = self.d.node(n).path.clone();
                    self.error(
                        IssueType::Structure,
                        format!(
                            "expected an object ({what}), found {}",
                            primitives::describe(v)
                        ),
                    );
                    return;
                };
                if map.is_empty() {
                    self.error(IssueType::Structure, "objects must not be empty");
                }
                self.object(map, n, false);
                if n == self.d.reference {
                    self.reference(elem, map);
                } else if n == self.d.identifier {
                    self.nhs_number(map);
                } else if let Some(b) = elem.binding {
                    if n == self.d.coding {
                        self.coding(b, map);
                    } else if n == self.d.codeable_concept
                        && let Some(Value::Array(codings)) = map.get("coding")
                    {
                        let m = self.push_key("coding");
                        for (i, c) in codings.iter().enumerate() {
                            if let Value::Object(c) = c {
                                let mi = self.push_index(i);
                                self.coding(b, c);
                                self.pop(mi);
                            }
                        }
                        self.pop(m);
                    }
                }
            }
            Ty::Resource => self.resource(v, &*elem.name == "contained"),
        }
    }

    /// A Coding under a required binding: its code must be in the value set when its system
    /// is one of the value set's.
    fn coding(&mut self, binding: u32, c: &Map<String, Value>) {
        let (Some(Value::String(system)), Some(Value::String(code))) =
            (c.get("system"), c.get("code"))
        else {
            return;
        };
        let vs = &self.d.value_sets[binding as usize];
        if let Some(codes) = vs.by_system.get(system.as_str())
            && !codes.contains(code.as_str())
        {
            let m = self.push_key("code");
            self.error(
                IssueType::CodeInvalid,
                format!(
                    "'{code}' is not a code of {system} allowed by the required value set {}",
                    vs.url
                ),
            );
            self.pop(m);
        }
    }

    fn reference(&mut self, elem: &Elem, map: &Map<String, Value>) {
        let Some(Value::String(r)) = map.get("reference") else {
            return;
        };
        let local = &self.local_ids[self.frame..];
        let result = reference::check(self.d, r, local, &elem.targets);
        if let Err(msg) = result {
            let m = self.push_key("reference");
            self.error(IssueType::Value, msg);
            self.pop(m);
        }
    }

    fn nhs_number(&mut self, map: &Map<String, Value>) {
        if map.get("system").and_then(Value::as_str) != Some(nhs_number::SYSTEM) {
            return;
        }
        let Some(Value::String(value)) = map.get("value") else {
            return;
        };
        let msg = match NhsNumber::parse(value) {
            Ok(_) => return,
            Err(NhsNumberError::Format) => format!("NHS Number '{value}' must be 10 digits"),
            Err(NhsNumberError::CheckDigit) => {
                format!("NHS Number {value} fails the modulus-11 check digit")
            }
        };
        let m = self.push_key("value");
        self.error(IssueType::Value, msg);
        self.pop(m);
    }
}

/// The `_name` property that carries the extensions of primitive property `key`.
fn underscore_of<'e>(elem: &'e Elem, key: &str) -> Option<&'e str> {
    elem.types
        .iter()
        .find(|t| &*t.name == key)
        .map(|t| &*t.underscore)
}

fn unknown_message(node: &crate::defs::Node, key: &str) -> String {
    for e in &node.elems {
        if e.choice && key.starts_with(&*e.name) && key.len() > e.name.len() {
            let allowed: Vec<&str> = e.types.iter().map(|t| &t.name[e.name.len()..]).collect();
            return format!(
                "unknown element '{key}': {} allows the types {}",
                e.display,
                allowed.join(", ")
            );
        }
    }
    format!("unknown element '{key}'")
}

#[cfg(test)]
mod tests;
