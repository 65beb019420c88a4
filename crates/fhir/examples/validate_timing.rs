//! Quick timing of definition loading and of validating a typical Patient.
//! `cargo run --release -p passport-fhir --example validate_timing [file.json]`

use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/fhir-examples/uk-core-stu2/Patient/UKCore-Patient-RichardSmith-Example.json"
        )
        .to_owned()
    });
    let text = std::fs::read_to_string(&path).expect("example file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");

    let t = Instant::now();
    let first = fhir::validate(&v);
    println!(
        "first validate (loads definitions): {:?}, {} issues",
        t.elapsed(),
        first.len()
    );

    let n = 20_000;
    let t = Instant::now();
    let mut issues = 0;
    for _ in 0..n {
        issues += std::hint::black_box(fhir::validate(std::hint::black_box(&v))).len();
    }
    let per = t.elapsed() / n;
    println!(
        "validate {} ({} bytes): {per:?} per call ({issues} issues)",
        path.rsplit('/').next().unwrap(),
        text.len()
    );

    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::from_str::<serde_json::Value>(&text).unwrap());
    }
    println!("for comparison, parsing it: {:?} per call", t.elapsed() / n);
}
