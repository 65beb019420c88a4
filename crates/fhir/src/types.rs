//! The resource types the REST API serves. The CapabilityStatement is built from this list,
//! so it names exactly what is implemented.

/// Resource types with a REST endpoint at `/fhir/{type}`.
pub const SUPPORTED_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "Appointment",
    "AuditEvent",
    "Binary",
    "Bundle",
    "CarePlan",
    "CareTeam",
    "Communication",
    "Composition",
    "Condition",
    "Consent",
    "Device",
    "DocumentReference",
    "Encounter",
    "Endpoint",
    "Flag",
    "Goal",
    "Group",
    "Immunization",
    "Medication",
    "MedicationStatement",
    "Observation",
    "Organization",
    "Patient",
    "Person",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "Subscription",
];

pub fn is_supported(resource_type: &str) -> bool {
    SUPPORTED_TYPES.binary_search(&resource_type).is_ok()
}

/// A FHIR logical id: `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_so_binary_search_works() {
        let mut sorted = SUPPORTED_TYPES.to_vec();
        sorted.sort();
        assert_eq!(sorted, SUPPORTED_TYPES);
        assert!(is_supported("Patient"));
        assert!(!is_supported("Basic"));
    }

    #[test]
    fn ids() {
        assert!(is_valid_id("a-B.9"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id(&"x".repeat(65)));
    }
}
