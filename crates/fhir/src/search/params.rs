//! The search parameter definitions (`data/r4-search-params.json`, written by
//! `tools/gen_search_params.py` from HL7's R4 SearchParameters), loaded once with every
//! expression parsed.

use super::ParamType;
use super::fhirpath::{self, Expr};
use crate::defs::FastMap;
use serde::Deserialize;
use std::sync::OnceLock;

static DATA: &str = include_str!("../../data/r4-search-params.json");

/// One search parameter of one resource type (R4's multi-type parameters, such as
/// `patient` or `code`, become one `SearchParam` per type, each with only that type's part
/// of the expression).
#[derive(Debug, Clone)]
pub struct SearchParam {
    /// The name used in a search: `birthdate`, `subject`, `_id`, `code-value-quantity`.
    pub code: String,
    /// The resource type it belongs to.
    pub resource_type: String,
    pub kind: ParamType,
    /// The FHIRPath expression selecting the values (for this type only), e.g.
    /// `Patient.birthDate`, `(Observation.value as Quantity) | (Observation.value as SampledData)`.
    /// For a composite: the elements each combination of component values is taken from.
    pub expression: String,
    /// For `reference` parameters: the resource types the reference may point at, sorted
    /// (empty: any type).
    pub targets: Vec<String>,
    /// For `composite` parameters: the components, in order.
    pub components: Vec<Component>,
    pub(crate) expr: Expr,
}

/// One component of a composite parameter: the type of the parameter its definition names
/// (so a search value is parsed as that type), and an expression evaluated on each element
/// the composite's [`SearchParam::expression`] selects (e.g. `code`, `value.as(Quantity)`).
#[derive(Debug, Clone)]
pub struct Component {
    pub kind: ParamType,
    pub expression: String,
    pub(crate) expr: Expr,
}

impl ParamType {
    /// The R4 `SearchParameter.type` code (`token`, `date`, ...).
    pub fn from_code(code: &str) -> Option<ParamType> {
        Some(match code {
            "number" => ParamType::Number,
            "date" => ParamType::Date,
            "string" => ParamType::String,
            "token" => ParamType::Token,
            "reference" => ParamType::Reference,
            "composite" => ParamType::Composite,
            "quantity" => ParamType::Quantity,
            "uri" => ParamType::Uri,
            "special" => ParamType::Special,
            _ => return None,
        })
    }

    /// The R4 `SearchParameter.type` code.
    pub fn code(self) -> &'static str {
        match self {
            ParamType::Number => "number",
            ParamType::Date => "date",
            ParamType::String => "string",
            ParamType::Token => "token",
            ParamType::Reference => "reference",
            ParamType::Composite => "composite",
            ParamType::Quantity => "quantity",
            ParamType::Uri => "uri",
            ParamType::Special => "special",
        }
    }
}

pub(crate) struct Registry {
    pub by_type: FastMap<Box<str>, Vec<SearchParam>>,
    /// Patient compartment: resource type → parameter codes (`{def}`: the Patient itself).
    pub patient_compartment: FastMap<Box<str>, Vec<String>>,
}

#[derive(Deserialize)]
struct RawFile {
    params: std::collections::BTreeMap<String, Vec<RawParam>>,
    compartments:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>>,
}

#[derive(Deserialize)]
struct RawParam {
    code: String,
    #[serde(rename = "type")]
    kind: String,
    expression: String,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    components: Vec<RawComponent>,
}

#[derive(Deserialize)]
struct RawComponent {
    #[serde(rename = "type")]
    kind: String,
    expression: String,
}

fn kind(code: &str) -> Result<ParamType, String> {
    ParamType::from_code(code).ok_or_else(|| format!("unknown parameter type {code}"))
}

/// Parses the data file; an `Err` names the first parameter that could not be loaded.
pub(crate) fn build(data: &str) -> Result<Registry, String> {
    let raw: RawFile = serde_json::from_str(data).map_err(|e| e.to_string())?;
    let mut by_type = FastMap::default();
    for (t, params) in raw.params {
        let mut v = Vec::with_capacity(params.len());
        for p in params {
            let what = |m: String| format!("{t}.{}: {m}", p.code);
            let expr = fhirpath::parse(&p.expression).map_err(what)?;
            let mut components = Vec::new();
            for c in &p.components {
                components.push(Component {
                    kind: kind(&c.kind).map_err(what)?,
                    expression: c.expression.clone(),
                    expr: fhirpath::parse(&c.expression).map_err(what)?,
                });
            }
            v.push(SearchParam {
                kind: kind(&p.kind).map_err(what)?,
                code: p.code,
                resource_type: t.clone(),
                expression: p.expression,
                targets: p.targets,
                components,
                expr,
            });
        }
        v.sort_by(|a, b| a.code.cmp(&b.code));
        by_type.insert(t.into_boxed_str(), v);
    }
    let mut patient_compartment = FastMap::default();
    if let Some(m) = raw.compartments.get("Patient") {
        for (t, codes) in m {
            patient_compartment.insert(t.as_str().into(), codes.clone());
        }
    }
    Ok(Registry {
        by_type,
        patient_compartment,
    })
}

pub(crate) fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| build(DATA).expect("r4-search-params.json loads"))
}

/// Every search parameter of `resource_type`, sorted by code (empty for an unknown or
/// unsupported type). Includes `_id`, `_lastUpdated`, `_profile`, `_security`, `_tag`.
pub fn params_for(resource_type: &str) -> &'static [SearchParam] {
    registry()
        .by_type
        .get(resource_type)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The parameter `code` of `resource_type`.
pub fn param(resource_type: &str, code: &str) -> Option<&'static SearchParam> {
    let ps = params_for(resource_type);
    ps.binary_search_by(|p| p.code.as_str().cmp(code))
        .ok()
        .map(|i| &ps[i])
}

/// Loads the definitions now rather than on first use (a server calls this at start-up).
pub fn preload() {
    let _ = registry();
}
