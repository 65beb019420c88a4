mod common;
#[test]
#[ignore]
fn survey() {
    let base = common::examples_dir();
    let mut bad = 0;
    let mut n = 0;
    for sub in ["hl7-r4-core", "uk-core-stu2", "known-invalid"] {
        for p in common::json_files(&base.join(sub)) {
            let (_, v) = common::read_json(&p);
            n += 1;
            let issues = fhir::validate(&v);
            if !issues.is_empty() {
                bad += 1;
                println!("== {} ({})", common::name(&p), v["resourceType"]);
                for i in issues.iter().take(6) {
                    println!("   {:?} {} :: {}", i.code, i.expression, i.diagnostics);
                }
            }
        }
    }
    println!("{bad} of {n} with issues");
}
