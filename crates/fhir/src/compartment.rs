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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::ParamType;
    use crate::search::param;

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
