//! The clinical-safety hazard log (`docs/clinical-safety/hazard-log.md`) names, for each
//! control, the test that shows it works. This holds the log to that: every test it names
//! exists (as a `fn` or an `on_both_databases!` test in the file it names), and every
//! hazard names at least one test.

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `path::name` references in backticks.
fn references(text: &str) -> Vec<(String, String)> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|r| {
            let (path, name) = r.rsplit_once("::")?;
            (path.ends_with(".rs") && !name.is_empty()).then(|| (path.to_owned(), name.to_owned()))
        })
        .collect()
}

/// Whether `source` defines the test `name`: `fn name(`, or `on_both_databases!(name,`
/// (with any spacing).
fn defines(source: &str, name: &str) -> bool {
    if source.contains(&format!("fn {name}(")) {
        return true;
    }
    source.split("on_both_databases!(").skip(1).any(|rest| {
        rest.trim_start()
            .strip_prefix(name)
            .is_some_and(|after| after.trim_start().starts_with(','))
    })
}

#[test]
fn every_test_the_hazard_log_names_exists() {
    let root = repository();
    let log = std::fs::read_to_string(root.join("docs/clinical-safety/hazard-log.md"))
        .expect("the hazard log");
    let hazards: Vec<&str> = log.split("\n### H").skip(1).collect();
    assert!(hazards.len() >= 8, "only {} hazards", hazards.len());
    let mut missing = Vec::new();
    for hazard in &hazards {
        let title = hazard.lines().next().unwrap_or_default();
        let refs = references(hazard);
        if refs.is_empty() {
            missing.push(format!("H{title}: names no test"));
        }
        for (path, name) in refs {
            match std::fs::read_to_string(root.join(&path)) {
                Ok(source) if defines(&source, &name) => {}
                Ok(_) => missing.push(format!("H{title}: no test `{name}` in {path}")),
                Err(_) => missing.push(format!("H{title}: no file {path}")),
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_checker_tells_a_real_test_from_a_missing_one() {
    let source = "on_both_databases!(\n    some_test,\n |srv| {});\n#[test]\nfn plain() {}";
    assert!(defines(source, "some_test"));
    assert!(defines(source, "plain"));
    assert!(!defines(source, "some"));
    assert!(!defines(source, "missing"));
    assert_eq!(
        references("see `a/b.rs::c` and `not a ref` and `x.rs::`"),
        [("a/b.rs".to_owned(), "c".to_owned())]
    );
}
