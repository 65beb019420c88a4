//! Prints the mutants of an example: `cargo run -p passport-fhir --example show_mutants FILE`.
fn main() {
    let path = std::env::args().nth(1).expect("a FHIR JSON file");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for m in fhir::mutation::mutants(&v) {
        let issues = fhir::validate(&m.resource);
        let hit = issues
            .iter()
            .find(|i| i.expression.starts_with(&m.expected_expression));
        println!(
            "[{}] {}\n    expect {} -> {}",
            m.rule,
            m.description,
            m.expected_expression,
            hit.map_or("NOT REPORTED".to_owned(), |i| format!(
                "{}: {}",
                i.code.code(),
                i.diagnostics
            ))
        );
    }
}
