//! Shows and times search-index extraction.
//! `cargo run --release -p passport-fhir --example search_index [file.json …]`
//! With files: prints each file's index entries. Without: times `extract` on a few typical
//! examples from testdata/fhir-examples.

use std::time::Instant;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/fhir-examples/");

fn load(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("JSON")
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if !files.is_empty() {
        for f in files {
            for e in fhir::search::extract(&load(&f)) {
                println!("{} {:?}", e.param, e.value);
            }
        }
        return;
    }
    fhir::search::preload();
    for rel in [
        "uk-core-stu2/Patient/UKCore-Patient-RichardSmith-Example.json",
        "hl7-r4-core/Patient/Patient-example.json",
        "hl7-r4-core/Observation/Observation-body-temperature.json",
        "uk-core-stu2/Observation/UKCore-Observation-24HourBloodPressure-Example.json",
    ] {
        let r = load(&format!("{EXAMPLES}{rel}"));
        let n = 20_000;
        let t = Instant::now();
        let mut count = 0;
        for _ in 0..n {
            count += std::hint::black_box(fhir::search::extract(std::hint::black_box(&r))).len();
        }
        println!(
            "{rel}: {:?} per extract ({} entries)",
            t.elapsed() / n,
            count / n as usize
        );
    }
}
