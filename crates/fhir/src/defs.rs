//! The R4 definitions (`data/r4-definitions.json`, written by `tools/gen_definitions.py`),
//! loaded once into lookup tables the validator and the mutation generator walk.
//!
//! Every complex datatype and every resource becomes a `Node`; so does every backbone
//! element inside one (e.g. `Patient.contact`). A node maps each JSON property name that may
//! appear in an object of that shape to the element it belongs to and the datatype it
//! carries: a choice element `value[x]` contributes one property per allowed type
//! (`valueString`, `valueQuantity`, ...).

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

static DATA: &str = include_str!("../data/r4-definitions.json");

/// FNV-1a: the keys hashed here are short, trusted element names; SipHash is slower for them.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
pub(crate) type FastSet<K> = HashSet<K, BuildHasherDefault<Fnv>>;

/// Index of a [`Node`] in [`Defs::nodes`].
pub(crate) type NodeId = u32;

/// The FHIR primitive datatypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prim {
    Base64Binary,
    Boolean,
    Canonical,
    Code,
    Date,
    DateTime,
    Decimal,
    Id,
    Instant,
    Integer,
    Markdown,
    Oid,
    PositiveInt,
    String,
    Time,
    UnsignedInt,
    Uri,
    Url,
    Uuid,
    Xhtml,
}

impl Prim {
    pub fn from_name(name: &str) -> Option<Prim> {
        Some(match name {
            "base64Binary" => Prim::Base64Binary,
            "boolean" => Prim::Boolean,
            "canonical" => Prim::Canonical,
            "code" => Prim::Code,
            "date" => Prim::Date,
            "dateTime" => Prim::DateTime,
            "decimal" => Prim::Decimal,
            "id" => Prim::Id,
            "instant" => Prim::Instant,
            "integer" => Prim::Integer,
            "markdown" => Prim::Markdown,
            "oid" => Prim::Oid,
            "positiveInt" => Prim::PositiveInt,
            "string" => Prim::String,
            "time" => Prim::Time,
            "unsignedInt" => Prim::UnsignedInt,
            "uri" => Prim::Uri,
            "url" => Prim::Url,
            "uuid" => Prim::Uuid,
            "xhtml" => Prim::Xhtml,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Prim::Base64Binary => "base64Binary",
            Prim::Boolean => "boolean",
            Prim::Canonical => "canonical",
            Prim::Code => "code",
            Prim::Date => "date",
            Prim::DateTime => "dateTime",
            Prim::Decimal => "decimal",
            Prim::Id => "id",
            Prim::Instant => "instant",
            Prim::Integer => "integer",
            Prim::Markdown => "markdown",
            Prim::Oid => "oid",
            Prim::PositiveInt => "positiveInt",
            Prim::String => "string",
            Prim::Time => "time",
            Prim::UnsignedInt => "unsignedInt",
            Prim::Uri => "uri",
            Prim::Url => "url",
            Prim::Uuid => "uuid",
            Prim::Xhtml => "xhtml",
        }
    }
}

/// The datatype a JSON property carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Prim(Prim),
    /// A complex datatype or a backbone element.
    Complex(NodeId),
    /// A whole resource, whose own `resourceType` says which.
    Resource,
}

/// One element of a node: `name`, `given`, `value[x]`, ...
#[derive(Debug)]
pub(crate) struct Elem {
    /// The element's name without `[x]` (`value` for `value[x]`).
    pub name: Box<str>,
    /// The name as the definitions spell it, with `[x]` for a choice.
    pub display: Box<str>,
    pub min: u32,
    /// `None` for `*`.
    pub max: Option<u32>,
    /// Whether the JSON form is an array (the base definition allows more than one).
    pub array: bool,
    pub choice: bool,
    /// The allowed types with the JSON property name each is carried under.
    pub types: Vec<ElemType>,
    /// Required binding: index into [`Defs::value_sets`].
    pub binding: Option<u32>,
    /// Resource types a Reference may point at (empty: any).
    pub targets: Vec<Box<str>>,
    /// `isSummary`: part of the `_summary=true` form.
    pub summary: bool,
}

/// One allowed type of an element and the JSON property carrying it.
#[derive(Debug)]
pub(crate) struct ElemType {
    /// `given`, `valueQuantity`.
    pub name: Box<str>,
    /// `_given`, `_valueQuantity`: where a primitive's id and extensions go.
    pub underscore: Box<str>,
    pub ty: Ty,
}

/// A complex datatype, a resource or a backbone element.
#[derive(Debug)]
pub(crate) struct Node {
    /// Definition path: `Patient`, `Patient.contact`, `HumanName`.
    pub path: Box<str>,
    pub elems: Vec<Elem>,
    /// JSON property name → (element index, datatype).
    pub props: FastMap<Box<str>, (u8, Ty)>,
    /// Indices of elements with min ≥ 1.
    pub required: Vec<u8>,
}

impl Node {
    pub fn prop(&self, key: &str) -> Option<(u8, Ty)> {
        self.props.get(key).copied()
    }
}

#[derive(Debug)]
pub(crate) struct ValueSet {
    pub url: Box<str>,
    pub by_system: FastMap<Box<str>, FastSet<Box<str>>>,
    pub all: FastSet<Box<str>>,
}

#[derive(Debug)]
pub(crate) struct TypeInfo {
    pub kind: Kind,
    pub is_abstract: bool,
    pub node: Option<NodeId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Resource,
    Complex,
    Primitive,
}

#[derive(Debug)]
pub(crate) struct Defs {
    pub nodes: Vec<Node>,
    pub types: FastMap<Box<str>, TypeInfo>,
    pub value_sets: Vec<ValueSet>,
    pub element: NodeId,
    pub reference: NodeId,
    pub identifier: NodeId,
    pub coding: NodeId,
    pub codeable_concept: NodeId,
}

impl Defs {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// The root node of a concrete (non-abstract) resource type.
    pub fn resource(&self, name: &str) -> Option<NodeId> {
        match self.types.get(name) {
            Some(t) if t.kind == Kind::Resource && !t.is_abstract => t.node,
            _ => None,
        }
    }

    pub fn is_resource_type(&self, name: &str) -> bool {
        self.resource(name).is_some()
    }
}

/// The definitions, parsed on first use.
pub(crate) fn defs() -> &'static Defs {
    static DEFS: OnceLock<Defs> = OnceLock::new();
    DEFS.get_or_init(|| build(DATA))
}

/// Loads the definitions now (about 15 ms in release) rather than on the first
/// validation; a server calls this at start-up.
pub fn preload() {
    let _ = defs();
}

/// Every concrete R4 resource type name, sorted.
pub fn resource_types() -> Vec<&'static str> {
    let d = defs();
    let mut v: Vec<&'static str> = d
        .types
        .iter()
        .filter(|(_, t)| t.kind == Kind::Resource && !t.is_abstract)
        .map(|(k, _)| &**k)
        .collect();
    v.sort_unstable();
    v
}

/// Whether `name` is a concrete R4 resource type.
pub fn is_resource_type(name: &str) -> bool {
    defs().is_resource_type(name)
}

/// Whether the JSON property `property` of a `resource_type` resource (`birthDate`,
/// `deceasedBoolean`, `_birthDate`) is an element the definitions mark `isSummary`, i.e.
/// kept by `_summary=true`. `false` for unknown types and properties.
pub fn is_summary(resource_type: &str, property: &str) -> bool {
    let d = defs();
    let Some(node) = d.resource(resource_type) else {
        return false;
    };
    let node = d.node(node);
    let key = property.strip_prefix('_').unwrap_or(property);
    node.prop(key)
        .is_some_and(|(i, _)| node.elems[usize::from(i)].summary)
}

#[derive(Deserialize)]
struct RawFile {
    types: HashMap<String, RawType>,
    #[serde(rename = "valueSets")]
    value_sets: Vec<RawValueSet>,
}

#[derive(Deserialize)]
struct RawType {
    kind: String,
    #[serde(rename = "abstract")]
    is_abstract: bool,
    elements: Vec<RawElem>,
}

#[derive(Deserialize)]
struct RawElem {
    p: String,
    n: u32,
    x: String,
    #[serde(default)]
    t: Vec<String>,
    r: Option<String>,
    #[serde(default)]
    tp: Vec<String>,
    b: Option<u32>,
    /// `isSummary` (1), absent when false.
    #[serde(default)]
    s: u8,
}

#[derive(Deserialize)]
struct RawValueSet {
    url: String,
    codes: HashMap<String, Vec<String>>,
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn build(data: &str) -> Defs {
    let raw: RawFile = serde_json::from_str(data).expect("r4-definitions.json is valid");
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_path: HashMap<String, NodeId> = HashMap::new();
    let mut types: FastMap<Box<str>, TypeInfo> = FastMap::default();
    let new_node = |nodes: &mut Vec<Node>, by_path: &mut HashMap<String, NodeId>, path: &str| {
        let id = nodes.len() as NodeId;
        nodes.push(Node {
            path: path.into(),
            elems: Vec::new(),
            props: FastMap::default(),
            required: Vec::new(),
        });
        by_path.insert(path.to_owned(), id);
        id
    };

    // Sorted so node numbering (and so everything derived from it) is deterministic.
    let mut names: Vec<&String> = raw.types.keys().collect();
    names.sort();

    // Pass 1: a node for each complex type and resource, and each backbone element.
    for name in &names {
        let t = &raw.types[*name];
        let kind = match t.kind.as_str() {
            "resource" => Kind::Resource,
            "primitive-type" => Kind::Primitive,
            _ => Kind::Complex,
        };
        let node = if kind == Kind::Primitive {
            None
        } else {
            let root = new_node(&mut nodes, &mut by_path, name);
            let paths: HashSet<&str> = t.elements.iter().map(|e| e.p.as_str()).collect();
            for e in &t.elements {
                if let Some((parent, _)) = e.p.rsplit_once('.')
                    && paths.contains(parent)
                    && !by_path.contains_key(&format!("{name}.{parent}"))
                {
                    new_node(&mut nodes, &mut by_path, &format!("{name}.{parent}"));
                }
            }
            Some(root)
        };
        types.insert(
            name.as_str().into(),
            TypeInfo {
                kind,
                is_abstract: t.is_abstract,
                node,
            },
        );
    }

    // Pass 2: the elements of each node.
    let resolve = |code: &str, full: &str| -> Ty {
        if let Some(n) = by_path.get(full) {
            return Ty::Complex(*n);
        }
        if let Some(p) = Prim::from_name(code) {
            return Ty::Prim(p);
        }
        match types.get(code) {
            Some(TypeInfo {
                kind: Kind::Resource,
                ..
            }) => Ty::Resource,
            Some(TypeInfo { node: Some(n), .. }) => Ty::Complex(*n),
            _ => panic!("unknown type {code} at {full}"),
        }
    };
    let mut pending: Vec<(NodeId, Elem)> = Vec::new();
    for name in &names {
        let t = &raw.types[*name];
        if t.kind == "primitive-type" {
            continue;
        }
        for e in &t.elements {
            let (parent, elem_name) = match e.p.rsplit_once('.') {
                Some((p, n)) => (format!("{name}.{p}"), n),
                None => ((*name).clone(), e.p.as_str()),
            };
            let parent_id = by_path[&parent];
            let full = format!("{name}.{}", e.p);
            let choice = elem_name.ends_with("[x]");
            let base = elem_name.trim_end_matches("[x]");
            let types_for: Vec<(String, Ty)> = if let Some(r) = &e.r {
                let target = *by_path
                    .get(r.as_str())
                    .unwrap_or_else(|| panic!("contentReference {r}"));
                vec![(base.to_owned(), Ty::Complex(target))]
            } else if choice {
                e.t.iter()
                    .map(|c| (format!("{base}{}", capitalise(c)), resolve(c, "")))
                    .collect()
            } else {
                let code = e.t.first().map(String::as_str).unwrap_or("Element");
                vec![(base.to_owned(), resolve(code, &full))]
            };
            let max = if e.x == "*" {
                None
            } else {
                Some(e.x.parse::<u32>().expect("max is a number or *"))
            };
            pending.push((
                parent_id,
                Elem {
                    name: base.into(),
                    display: elem_name.into(),
                    min: e.n,
                    array: max != Some(1) && max != Some(0),
                    max,
                    choice,
                    types: types_for
                        .into_iter()
                        .map(|(name, ty)| ElemType {
                            underscore: format!("_{name}").into_boxed_str(),
                            name: name.into_boxed_str(),
                            ty,
                        })
                        .collect(),
                    binding: e.b,
                    summary: e.s != 0,
                    targets: e
                        .tp
                        .iter()
                        .filter(|t| t.as_str() != "Resource")
                        .map(|t| t.as_str().into())
                        .collect(),
                },
            ));
            if e.tp.iter().any(|t| t == "Resource")
                && let Some((_, el)) = pending.last_mut()
            {
                el.targets.clear();
            }
        }
    }
    for (parent, elem) in pending {
        let node = &mut nodes[parent as usize];
        let idx = node.elems.len();
        assert!(idx < 128, "node {} has too many elements", node.path);
        for t in &elem.types {
            node.props.insert(t.name.clone(), (idx as u8, t.ty));
        }
        if elem.min > 0 {
            node.required.push(idx as u8);
        }
        node.elems.push(elem);
    }

    let value_sets = raw
        .value_sets
        .into_iter()
        .map(|vs| {
            let mut all = FastSet::default();
            let mut by_system: FastMap<Box<str>, FastSet<Box<str>>> = FastMap::default();
            for (system, codes) in vs.codes {
                let set = by_system.entry(system.into_boxed_str()).or_default();
                for c in codes {
                    all.insert(c.clone().into_boxed_str());
                    set.insert(c.into_boxed_str());
                }
            }
            ValueSet {
                url: vs.url.into_boxed_str(),
                by_system,
                all,
            }
        })
        .collect();

    let id_of = |n: &str| by_path[n];
    Defs {
        element: id_of("Element"),
        reference: id_of("Reference"),
        identifier: id_of("Identifier"),
        coding: id_of("Coding"),
        codeable_concept: id_of("CodeableConcept"),
        nodes,
        types,
        value_sets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_is_small() {
        assert!(DATA.len() < 3 * 1024 * 1024, "{} bytes", DATA.len());
    }

    #[test]
    fn loads_every_resource_type() {
        let d = defs();
        assert!(resource_types().len() >= 145);
        for t in crate::types::SUPPORTED_TYPES {
            assert!(is_resource_type(t), "{t}");
        }
        assert!(!is_resource_type("DomainResource"));
        assert!(!is_resource_type("HumanName"));
        let patient = d.node(d.resource("Patient").unwrap());
        assert!(patient.prop("birthDate").is_some());
        assert!(patient.prop("deceasedBoolean").is_some());
        assert!(patient.prop("deceased").is_none());
        let q = d.node(d.resource("Questionnaire").unwrap());
        let (_, Ty::Complex(item)) = q.prop("item").unwrap() else {
            panic!()
        };
        let (_, Ty::Complex(nested)) = d.node(item).prop("item").unwrap() else {
            panic!()
        };
        assert_eq!(item, nested, "contentReference resolves to the same node");
    }

    #[test]
    fn summary_flags() {
        for p in [
            "id",
            "meta",
            "identifier",
            "name",
            "birthDate",
            "deceasedBoolean",
            "_birthDate",
        ] {
            assert!(is_summary("Patient", p), "{p}");
        }
        for p in ["text", "contact", "communication", "photo", "nope"] {
            assert!(!is_summary("Patient", p), "{p}");
        }
        assert!(is_summary("Observation", "valueQuantity"));
        assert!(!is_summary("Observation", "note"));
        assert!(!is_summary("NotAType", "id"));
    }
}

/// One step of an element path, as FHIR JSON carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The JSON property (`reaction`, `onsetDateTime`).
    pub name: String,
    /// Whether the property holds an array.
    pub array: bool,
    /// The datatype: a primitive's name (`code`, `string`), a complex type's
    /// (`CodeableConcept`), or a backbone element's path (`AllergyIntolerance.reaction`).
    pub type_name: String,
}

/// The JSON shape of an element path such as `AllergyIntolerance.reaction.severity` (each
/// step after the resource type), or `None` if the path names no element. What lets a
/// template say where an answer goes (`Questionnaire.item.definition`) without code that
/// knows each resource's layout.
pub fn path_shape(path: &str) -> Option<Vec<Step>> {
    let d = defs();
    let mut parts = path.split('.');
    let mut node = d.resource(parts.next()?)?;
    let mut out = Vec::new();
    for (i, part) in parts.enumerate() {
        if i > 0 && out.last().is_some_and(|s: &Step| s.type_name == "Resource") {
            return None;
        }
        let n = d.node(node);
        let (idx, ty) = n.prop(part)?;
        let elem = &n.elems[idx as usize];
        let type_name = match ty {
            Ty::Prim(p) => p.name().to_owned(),
            Ty::Complex(id) => {
                node = id;
                d.node(id).path.to_string()
            }
            Ty::Resource => "Resource".to_owned(),
        };
        out.push(Step {
            name: part.to_owned(),
            array: elem.array,
            type_name,
        });
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod path_tests {
    use super::path_shape;

    #[test]
    fn element_paths_have_their_json_shape() {
        let s = path_shape("AllergyIntolerance.reaction.severity").unwrap();
        assert_eq!(
            s.iter()
                .map(|s| (s.name.as_str(), s.array, s.type_name.as_str()))
                .collect::<Vec<_>>(),
            [
                ("reaction", true, "AllergyIntolerance.reaction"),
                ("severity", false, "code")
            ]
        );
        let m = path_shape("MedicationStatement.dosage.route").unwrap();
        assert_eq!(
            (m[0].array, m[1].type_name.as_str()),
            (true, "CodeableConcept")
        );
        let o = path_shape("AllergyIntolerance.onsetDateTime").unwrap();
        assert_eq!(o[0].type_name, "dateTime");
        let t = path_shape("RelatedPerson.telecom").unwrap();
        assert_eq!(
            (t[0].array, t[0].type_name.as_str()),
            (true, "ContactPoint")
        );
        assert!(path_shape("AllergyIntolerance.nonsense").is_none());
        assert!(path_shape("Nonsense.code").is_none());
        assert!(path_shape("Condition").is_none());
    }
}
