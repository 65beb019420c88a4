//! The Patient compartment (HL7's R4 CompartmentDefinition `patient`, carried in
//! `data/r4-search-params.json`): which search parameters of a resource link it to a Patient.
//!
//! A resource of type `T` is in Patient `p`'s compartment if any parameter in
//! [`patient_params`]`(T)` has a reference value `Patient/p` (see [`crate::search::extract`]).
//! A Patient resource is in its own compartment: its list starts with [`SELF`].

use crate::search::params::registry;

/// The marker (`{def}`, as CompartmentDefinitions write it) meaning "the Patient itself":
/// it is the first entry of `patient_params("Patient")`, followed by `link` (patients linked
/// to it).
pub const SELF: &str = "{def}";

/// What `$everything` reads for a Patient: each supported type that `wanted` accepts with
/// the parameters linking it to the Patient (the Patient itself is read by id).
pub fn everything_members(wanted: impl Fn(&str) -> bool) -> Vec<(String, Vec<String>)> {
    crate::types::SUPPORTED_TYPES
        .iter()
        .filter(|t| wanted(t))
        .map(|t| {
            (
                t.to_string(),
                patient_params(t)
                    .iter()
                    .filter(|p| p.as_str() != SELF)
                    .cloned()
                    .collect(),
            )
        })
        .collect()
}

/// The codes of the search parameters of `resource_type` that link it to a Patient (e.g.
/// `["patient", "recorder", "asserter"]` for AllergyIntolerance). Empty if the type is not
/// in the Patient compartment (or not supported). For `Patient`: `["{def}", "link"]`.
pub fn patient_params(resource_type: &str) -> &'static [String] {
    registry()
        .patient_compartment
        .get(resource_type)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Is every resource of `resource_type` in at most one child's record ([`patients_of`] never
/// gives it two)? True of `Patient` alone: a Patient is its own record whatever it links to.
/// Searches leave out their several-children test for such rows, which could never apply.
pub fn in_one_record(resource_type: &str) -> bool {
    resource_type == "Patient"
}

/// The ids of the Patients whose compartment `resource` is in — whose record it is, for
/// access decisions. A Patient is its own (its `link`s to other patients do not make it
/// theirs). Evaluates only the compartment parameters' expressions, not every search
/// parameter, since it runs for every resource a request returns. Relative references
/// (`Patient/x`) and absolute ones ending in `/Patient/x` both count. Sorted, no repeats.
pub fn patients_of(resource: &serde_json::Value) -> Vec<String> {
    use crate::search::{IndexValue, ParamType, params_for};
    let Some(rt) = resource
        .get("resourceType")
        .and_then(serde_json::Value::as_str)
    else {
        return Vec::new();
    };
    if rt == "Patient" {
        return resource
            .get("id")
            .and_then(serde_json::Value::as_str)
            .map(|id| vec![id.to_owned()])
            .unwrap_or_default();
    }
    let wanted = patient_params(rt);
    if wanted.is_empty() {
        return Vec::new();
    }
    let root = crate::search::fhirpath::root_item(resource);
    let mut items = Vec::new();
    let mut vals = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for p in params_for(rt) {
        if p.kind != ParamType::Reference || !wanted.contains(&p.code) {
            continue;
        }
        items.clear();
        crate::search::fhirpath::eval(&p.expr, root, &mut items);
        for it in &items {
            crate::search::values::convert(ParamType::Reference, it, &mut vals);
        }
        for v in vals.drain(..) {
            if let IndexValue::Reference {
                target_type: Some(t),
                target_id: Some(id),
                ..
            } = v
                && t == "Patient"
                && !out.contains(&id)
            {
                out.push(id);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::ParamType;
    use crate::search::param;

    #[test]
    fn the_patients_a_resource_belongs_to() {
        use serde_json::json;
        let obs = json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": "Patient/child-1"},
            "performer": [{"reference": "Patient/child-2"}, {"reference": "Practitioner/p"}]});
        assert_eq!(patients_of(&obs), ["child-1", "child-2"]);
        let abs = json!({"resourceType": "Condition",
            "subject": {"reference": "https://example.org/fhir/Patient/c9"}});
        assert_eq!(patients_of(&abs), ["c9"]);
        let me = json!({"resourceType": "Patient", "id": "c1",
            "link": [{"other": {"reference": "Patient/c2"}, "type": "seealso"}]});
        assert_eq!(patients_of(&me), ["c1"]);
        // Why searches may leave out a Patient's several-children test.
        assert!(in_one_record("Patient"));
        let linked = json!({"resourceType": "Patient", "id": "c1",
            "link": [{"other": {"reference": "Patient/c2"}, "type": "seealso"},
                     {"other": {"reference": "Patient/c3"}, "type": "refer"}],
            "generalPractitioner": [{"reference": "Patient/c4"}]});
        assert_eq!(patients_of(&linked), ["c1"]);
        assert!(!in_one_record("Observation") && !in_one_record("RelatedPerson"));
        let org = json!({"resourceType": "Organization", "id": "o"});
        assert!(patients_of(&org).is_empty());
        let rp = json!({"resourceType": "RelatedPerson", "patient": {"reference": "Patient/c3"}});
        assert_eq!(patients_of(&rp), ["c3"]);
    }

    #[test]
    fn compartment() {
        assert_eq!(patient_params("Patient"), [SELF, "link"]);
        assert_eq!(
            patient_params("AllergyIntolerance"),
            ["patient", "recorder", "asserter"]
        );
        assert_eq!(patient_params("Observation"), ["subject", "performer"]);
        assert!(patient_params("Organization").is_empty());
        assert!(patient_params("Nope").is_empty());
        for t in crate::types::SUPPORTED_TYPES {
            for c in patient_params(t) {
                if c != SELF {
                    let p = param(t, c).unwrap_or_else(|| panic!("{t}.{c}"));
                    assert_eq!(p.kind, ParamType::Reference, "{t}.{c}");
                }
            }
        }
    }
}
