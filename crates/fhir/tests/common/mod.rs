//! Shared helpers: the example corpus in `testdata/fhir-examples` (in the repository).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/fhir-examples"
    ))
}

/// Every `.json` file under `dir`, sorted (deterministic order).
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn read_json(p: &Path) -> (String, Value) {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (text, v)
}

/// The examples (in `hl7-r4-core/` and `uk-core-stu2/`) whose resourceType the server supports.
pub fn supported_examples() -> Vec<(PathBuf, String, Value)> {
    let base = examples_dir();
    let mut out = Vec::new();
    for sub in ["hl7-r4-core", "uk-core-stu2"] {
        for p in json_files(&base.join(sub)) {
            let (text, v) = read_json(&p);
            let supported = v
                .get("resourceType")
                .and_then(Value::as_str)
                .is_some_and(fhir::types::is_supported);
            if supported {
                out.push((p, text, v));
            }
        }
    }
    out
}

pub fn name(p: &Path) -> String {
    p.strip_prefix(examples_dir())
        .unwrap_or(p)
        .display()
        .to_string()
}
