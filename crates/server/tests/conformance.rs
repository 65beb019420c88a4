//! The shared example corpus through HTTP: every example of a supported type is accepted
//! and reads back equal (apart from server-owned meta and id, decimals compared exactly);
//! every known-invalid file is refused. Then the generated mutation corpus: each mutant is
//! refused with an issue at the broken element.

mod common;
use common::*;
use std::path::PathBuf;

fn examples() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for corpus in ["hl7-r4-core", "uk-core-stu2"] {
        let root = examples_dir().join(corpus);
        let mut dirs: Vec<_> = std::fs::read_dir(&root)
            .expect("examples folder")
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        for dir in dirs {
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            for f in files {
                let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
                let t = v["resourceType"].as_str().unwrap_or("");
                // AuditEvents are written by the server only (a client's POST is a 405,
                // tests/audit.rs); the validator checks those examples in crates/fhir.
                if fhir::types::is_supported(t) && t != "AuditEvent" {
                    out.push((f, v));
                }
            }
        }
    }
    assert!(
        out.len() > 200,
        "expected the whole corpus, found {}",
        out.len()
    );
    out
}

/// The resource without what the server owns: `id`, `meta.versionId`, `meta.lastUpdated`.
fn comparable(mut v: Value) -> Value {
    let obj = v.as_object_mut().unwrap();
    obj.remove("id");
    if let Some(Value::Object(meta)) = obj.get_mut("meta") {
        meta.remove("versionId");
        meta.remove("lastUpdated");
        if meta.is_empty() {
            obj.remove("meta");
        }
    }
    v
}

on_both_databases!(
    every_supported_example_is_accepted_and_reads_back_equal,
    |srv| {
        let mut refused_as_listed = 0;
        let mut failures = Vec::new();
        for (path, example) in examples() {
            let t = example["resourceType"].as_str().unwrap().to_owned();
            let resp = srv.post(&format!("/fhir/{t}"), &example).await;
            if fhir::corpus::is_genuinely_invalid(&path.to_string_lossy()) {
                // Published, but invalid for a reason fhir::corpus records: refused.
                expect_outcome(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
                refused_as_listed += 1;
                continue;
            }
            if resp.status() != StatusCode::CREATED {
                failures.push(format!(
                    "{}: {} {}",
                    path.display(),
                    resp.status(),
                    resp.text().await.unwrap()
                ));
                continue;
            }
            let loc = resp.headers()["location"].to_str().unwrap().to_owned();
            let id = loc.split('/').rev().nth(2).unwrap().to_owned();
            let read: Value = serde_json::from_str(
                &srv.get(&format!("/fhir/{t}/{id}"))
                    .await
                    .text()
                    .await
                    .unwrap(),
            )
            .unwrap();
            // An example without a section gets its type's default (docs/SECURITY.md §5),
            // appended to meta.tag; everything else reads back as sent.
            let mut expected = example.clone();
            if let Value::Object(m) = &mut expected {
                access::ensure_sections(m, None);
            }
            // serde_json with arbitrary_precision compares numbers by their text: 1.50 != 1.5.
            if comparable(read) != comparable(expected) {
                failures.push(format!("{}: read back differs", path.display()));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert_eq!(
            refused_as_listed,
            fhir::corpus::GENUINELY_INVALID_EXAMPLES.len()
        );
    }
);

on_both_databases!(known_invalid_examples_are_refused, |srv| {
    let dir = examples_dir().join("known-invalid");
    let mut n = 0;
    for f in std::fs::read_dir(dir).unwrap() {
        let path = f.unwrap().path();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let t = v["resourceType"].as_str().unwrap();
        let resp = srv.post(&format!("/fhir/{t}"), &v).await;
        let oo = expect_outcome(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(!expressions(&oo).is_empty(), "{}: {oo}", path.display());
        n += 1;
    }
    assert_eq!(n, 3);
    let h = json_body(srv.get("/fhir/_history").await).await;
    assert!(h.get("entry").is_none(), "{h}");
});

on_both_databases!(every_mutant_is_refused_at_the_broken_element, |srv| {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut rules = std::collections::BTreeSet::new();
    for (path, example) in examples() {
        if fhir::corpus::is_genuinely_invalid(&path.to_string_lossy()) {
            continue;
        }
        let t = example["resourceType"].as_str().unwrap().to_owned();
        for m in fhir::mutation::mutants(&example) {
            rules.insert(m.rule);
            let resp = srv.post(&format!("/fhir/{t}"), &m.resource).await;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let exprs = expressions(&body);
            let located = exprs.iter().any(|e| e.starts_with(&m.expected_expression));
            if status != StatusCode::UNPROCESSABLE_ENTITY || !located {
                failures.push(format!(
                    "{} [{}] {}: {status} {exprs:?}",
                    path.display(),
                    m.rule,
                    m.description
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} mutants not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for rule in [
        "wrong-type",
        "missing-required",
        "bad-code",
        "two-choice-values",
        "bad-date",
        "unknown-element",
        "bad-nhs-number",
    ] {
        assert!(rules.contains(rule), "no mutant for rule {rule}: {rules:?}");
    }
    assert!(checked > 500, "only {checked} mutants");
    let h = json_body(srv.get("/fhir/_history?_count=1").await).await;
    assert!(h.get("entry").is_none(), "no mutant was stored: {h}");
});
