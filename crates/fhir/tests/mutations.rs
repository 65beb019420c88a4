//! Every mutant of every supported example is refused at the expected element.

mod common;

use std::collections::BTreeMap;

#[test]
fn every_mutant_is_refused_at_its_element() {
    let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut total = 0;
    for (path, _, v) in common::supported_examples() {
        if !fhir::validate(&v).is_empty() {
            continue; // the genuinely invalid examples (see conformance.rs)
        }
        for m in fhir::mutation::mutants(&v) {
            total += 1;
            *per_rule.entry(m.rule).or_default() += 1;
            let issues = fhir::validate(&m.resource);
            let hit = issues.iter().any(|i| {
                i.severity == fhir::Severity::Error
                    && i.expression.starts_with(&m.expected_expression)
            });
            if !hit {
                failures.push(format!(
                    "{}: [{}] {} — expected an error at {}, got {:?}",
                    common::name(&path),
                    m.rule,
                    m.description,
                    m.expected_expression,
                    issues
                        .iter()
                        .map(|i| (&i.expression, &i.diagnostics))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    println!("{total} mutants: {per_rule:?}");
    for rule in [
        "wrong-type",
        "missing-required",
        "bad-code",
        "two-choice-values",
        "bad-date",
        "unknown-element",
        "bad-nhs-number",
    ] {
        assert!(
            per_rule.get(rule).copied().unwrap_or(0) > 10,
            "few mutants for {rule}: {per_rule:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {total} mutants accepted:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn mutants_are_deterministic() {
    for (_, _, v) in common::supported_examples().into_iter().take(20) {
        assert_eq!(fhir::mutation::mutants(&v), fhir::mutation::mutants(&v));
    }
}
