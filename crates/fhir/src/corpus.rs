//! Facts about the shared example corpus (`testdata/fhir-examples`) for tests here and in the
//! server: published examples of supported types that are genuinely invalid per the R4
//! specification, so the validator is right to refuse them. (The files in
//! `known-invalid/` are listed in that folder's SOURCES.md and are not repeated here.)

/// `(path under testdata/fhir-examples, expression of the one error, reason)`.
pub const GENUINELY_INVALID_EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "hl7-r4-core/Observation/Observation-clinical-gender.json",
        "Observation.performer[0].reference",
        "performer refers to Encounter/example, but Observation.performer may only reference \
         Practitioner, PractitionerRole, Organization, CareTeam, Patient or RelatedPerson",
    ),
    (
        "uk-core-stu2/Provenance/UKCore-Provenance-RARecordConsent-Example.json",
        "Provenance.agent[0].onBehalfOf.reference",
        "'Organization/https://fhir.hl7.org.uk/StructureDefinition/UKCore-Organization' is not \
         Type/id: the id part is a URL (ids are [A-Za-z0-9-.]{1,64})",
    ),
];

/// Whether the example at `path` (anything ending in one of the listed relative paths) is
/// listed in [`GENUINELY_INVALID_EXAMPLES`].
pub fn is_genuinely_invalid(path: &str) -> bool {
    let path = path.replace('\\', "/");
    GENUINELY_INVALID_EXAMPLES
        .iter()
        .any(|(p, _, _)| path.ends_with(p))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_by_suffix() {
        assert!(super::is_genuinely_invalid(
            "/x/testdata/fhir-examples/hl7-r4-core/Observation/Observation-clinical-gender.json"
        ));
        assert!(!super::is_genuinely_invalid(
            "hl7-r4-core/Observation/Observation-example.json"
        ));
    }
}
