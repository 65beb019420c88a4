//! The published examples: valid ones pass, known-invalid ones fail at the right element.

mod common;

use fhir::{IssueType, Severity};

/// Published examples of supported types that are genuinely invalid per the R4
/// specification, with the reason and where: see `fhir::corpus`.
use fhir::corpus::GENUINELY_INVALID_EXAMPLES as GENUINELY_INVALID;

#[test]
fn supported_examples_are_valid() {
    let examples = common::supported_examples();
    assert!(
        examples.len() > 100,
        "found only {} examples",
        examples.len()
    );
    let mut failures = Vec::new();
    for (path, _, v) in &examples {
        let name = common::name(path);
        let errors: Vec<_> = fhir::validate(v)
            .into_iter()
            .filter(|i| i.severity == Severity::Error)
            .collect();
        if let Some((_, expr, _)) = GENUINELY_INVALID.iter().find(|(n, _, _)| *n == name) {
            if !errors.iter().any(|i| i.expression == *expr) || errors.len() != 1 {
                failures.push(format!(
                    "{name}: expected exactly one error at {expr}, got {errors:#?}"
                ));
            }
            continue;
        }
        if !errors.is_empty() {
            failures.push(format!("{name}: {errors:#?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} examples rejected:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Examples of types the server does not serve (so not part of the conformance set) that
/// are genuinely invalid: relative references must be `Type/id`, not a bare id.
const OTHER_TYPES_INVALID: &[(&str, &str)] = &[
    (
        "uk-core-stu2/MedicationDispense/UKCore-MedicationDispense-Amoxicillin-Example.json",
        "MedicationDispense.authorizingPrescription[0].reference",
    ),
    (
        "uk-core-stu2/MedicationDispense/UKCore-MedicationDispense-CiprofloxacinIV-Example.json",
        "MedicationDispense.authorizingPrescription[0].reference",
    ),
    (
        "uk-core-stu2/MedicationDispense/UKCore-MedicationDispense-CiprofloxacinOral-Example.json",
        "MedicationDispense.authorizingPrescription[0].reference",
    ),
];

/// The validator knows every R4 type, not only the served ones: examples of the other types
/// (DiagnosticReport, Task, MessageHeader, ...) validate too.
#[test]
fn examples_of_other_types_are_valid() {
    let base = common::examples_dir();
    let mut checked = 0;
    let mut failures = Vec::new();
    for sub in ["hl7-r4-core", "uk-core-stu2"] {
        for p in common::json_files(&base.join(sub)) {
            let (_, v) = common::read_json(&p);
            let rt = v["resourceType"].as_str().unwrap_or("");
            if fhir::types::is_supported(rt) {
                continue;
            }
            checked += 1;
            let name = common::name(&p);
            let errors = fhir::validate(&v);
            let expected: Vec<&str> = OTHER_TYPES_INVALID
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, e)| *e)
                .collect();
            let found: Vec<&str> = errors.iter().map(|i| i.expression.as_str()).collect();
            if found != expected {
                failures.push(format!(
                    "{name}: expected errors at {expected:?}, got {errors:#?}"
                ));
            }
        }
    }
    assert!(checked > 30, "only {checked} examples of other types");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn genuinely_invalid_list_is_current() {
    for (name, _, _) in GENUINELY_INVALID {
        assert!(
            common::examples_dir().join(name).exists(),
            "{name} no longer exists"
        );
    }
}

fn errors_of(file: &str) -> Vec<fhir::Issue> {
    let (_, v) = common::read_json(&common::examples_dir().join("known-invalid").join(file));
    fhir::validate(&v)
}

#[test]
fn known_invalid_baby_patient_nhs_number() {
    let errors = errors_of("UKCore-Patient-BabyPatient-Example.json");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].code, IssueType::Value);
    assert_eq!(errors[0].expression, "Patient.identifier[0].value");
    assert_eq!(
        errors[0].diagnostics,
        "NHS Number 9912003890 fails the modulus-11 check digit"
    );
}

#[test]
fn known_invalid_condition_episode_two_choice_values() {
    let errors = errors_of("Extension-UKCore-ConditionEpisode-Example.json");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].code, IssueType::Structure);
    assert_eq!(errors[0].expression, "Condition.extension[0].value[x]");
    assert!(
        errors[0].diagnostics.contains("valueCode")
            && errors[0].diagnostics.contains("valueCodeableConcept")
    );
}

#[test]
fn known_invalid_questionnaire_nested_items_without_link_id() {
    let errors = errors_of("Questionnaire-qs1.json");
    assert!(!errors.is_empty());
    for e in &errors {
        assert_eq!(e.code, IssueType::Required, "{e:?}");
        assert!(
            e.expression.starts_with("Questionnaire.item[0].item["),
            "{e:?}"
        );
        assert!(e.expression.ends_with("].linkId"), "{e:?}");
    }
    assert!(
        errors
            .iter()
            .any(|e| e.expression == "Questionnaire.item[0].item[0].linkId")
    );
    assert!(
        errors
            .iter()
            .any(|e| e.expression == "Questionnaire.item[0].item[15].item[0].linkId")
    );
}

#[test]
fn every_known_invalid_file_is_refused() {
    let files = common::json_files(&common::examples_dir().join("known-invalid"));
    assert!(!files.is_empty());
    for p in files {
        let (_, v) = common::read_json(&p);
        assert!(
            fhir::validate(&v)
                .iter()
                .any(|i| i.severity == Severity::Error),
            "{} accepted",
            p.display()
        );
    }
}
