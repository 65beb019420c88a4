//! docs/DEMO.md's table is the demo's sign-ins, row for row (`domain::demo::table`).
//! With `PASSPORT_WRITE_DEMO_TABLE=1` the test writes the table into the file instead.

#[test]
fn docs_demo_md_lists_every_demo_sign_in() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/DEMO.md");
    let doc = std::fs::read_to_string(&path).expect("docs/DEMO.md");
    let table = domain::demo::table();
    let start = doc.find("| role | sector |").expect("the table");
    let end = doc[start..]
        .find("\n\n")
        .map_or(doc.len(), |e| start + e + 1);
    if std::env::var("PASSPORT_WRITE_DEMO_TABLE").is_ok() {
        let new = format!("{}{}{}", &doc[..start], table, &doc[end..]);
        std::fs::write(&path, new).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..end],
        table,
        "docs/DEMO.md's table is out of date"
    );
}
